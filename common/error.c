/* error.c - error codes, their names and HTTP statuses, and the helpers
 * that fill a struct tn_error. */
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	int http_status;
} codes[TN_E_COUNT] = {
	[TN_OK] = {"ok", 200},
	[TN_E_INTERNAL] = {"internal", 500},
	[TN_E_IO] = {"io", 500},
	[TN_E_INVALID] = {"invalid", 400},
	[TN_E_JSON] = {"malformed_json", 400},
	[TN_E_NOT_FOUND] = {"not_found", 404},
	[TN_E_EXISTS] = {"exists", 409},
	[TN_E_CONFLICT] = {"conflict", 409},
	[TN_E_TOO_LARGE] = {"too_large", 413},
	[TN_E_NO_SPACE] = {"no_space", 507},
	[TN_E_MEDIA_TYPE] = {"unsupported_media_type", 415},
	[TN_E_RANGE] = {"range_not_satisfiable", 416},
	[TN_E_UNAUTHORIZED] = {"unauthorized", 401},
	[TN_E_FORBIDDEN] = {"forbidden", 403},
	[TN_E_METHOD] = {"method_not_allowed", 405},
	[TN_E_UNAVAILABLE] = {"unavailable", 503},
	[TN_E_SIGNATURE] = {"bad_signature", 400},
	[TN_E_UNRESOLVED] = {"unresolved", 422},
	[TN_E_UNSIGNED] = {"unsigned", 400},
	[TN_E_WRONG_TARGET] = {"wrong_target", 400},
	[TN_E_STALE] = {"stale_generation", 409},
	[TN_E_ARCHIVE_CORRUPT] = {"archive_corrupt", 400},
	[TN_E_ARCHIVE_TRAVERSAL] = {"archive_traversal", 400},
	[TN_E_ARCHIVE_ABSOLUTE] = {"archive_absolute_path", 400},
	[TN_E_ARCHIVE_SYMLINK] = {"archive_not_regular", 400},
	[TN_E_ARCHIVE_DUPLICATE] = {"archive_duplicate", 400},
	[TN_E_ARCHIVE_TOO_MANY] = {"archive_too_many_entries", 400},
	[TN_E_ARCHIVE_TOO_LARGE] = {"archive_too_large", 413},
	[TN_E_ARCHIVE_RATIO] = {"archive_ratio", 400},
	[TN_E_RATE_LIMITED] = {"rate_limited", 429},
};

/* Appends ": text" to err->message, truncating to fit (intended: messages
 * are for people and must never overflow). */
static void append_reason(struct tn_error *err, const char *text)
{
	size_t used = strnlen(err->message, sizeof err->message - 1);
	size_t room = sizeof err->message - 1 - used;
	size_t n = strlen(text);

	if (room >= 2) {
		memcpy(err->message + used, ": ", 2);
		used += 2;
		room -= 2;
		if (n > room)
			n = room;
		memcpy(err->message + used, text, n);
		used += n;
	}
	err->message[used] = '\0';
}

static int fill(struct tn_error *err, enum tn_errcode code, const char *suffix,
		const char *fmt, va_list ap) TN_PRINTF(4, 0);

static int fill(struct tn_error *err, enum tn_errcode code, const char *suffix,
		const char *fmt, va_list ap)
{
	if (code <= TN_OK || code >= TN_E_COUNT)
		code = TN_E_INTERNAL;
	if (err) {
		err->code = code;
		vsnprintf(err->message, sizeof err->message, fmt, ap);
		if (suffix)
			append_reason(err, suffix);
	}
	return -(int)code;
}

int tn_fail(struct tn_error *err, enum tn_errcode code, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = fill(err, code, NULL, fmt, ap);
	va_end(ap);
	return rc;
}

int tn_fail_errno(struct tn_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = fill(err,
		  errnum == ENOSPC || errnum == EDQUOT ? TN_E_NO_SPACE
		  : errnum == EFBIG                    ? TN_E_TOO_LARGE
						       : TN_E_IO,
		  strerror(errnum), fmt, ap);
	va_end(ap);
	return rc;
}

int tn_error_prefix(struct tn_error *err, const char *fmt, ...)
{
	char old[TN_ERROR_MESSAGE_MAX];
	va_list ap;

	if (!err)
		return -(int)TN_E_INTERNAL;
	memcpy(old, err->message, sizeof old);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	append_reason(err, old);
	return -(int)err->code;
}

void tn_error_clear(struct tn_error *err)
{
	if (err) {
		err->code = TN_OK;
		err->message[0] = '\0';
	}
}

const char *tn_errcode_name(enum tn_errcode code)
{
	if (code < TN_OK || code >= TN_E_COUNT || !codes[code].name)
		return "internal";
	return codes[code].name;
}

int tn_errcode_http_status(enum tn_errcode code)
{
	if (code < TN_OK || code >= TN_E_COUNT || !codes[code].name)
		return 500;
	return codes[code].http_status;
}

/* Makes s[0..len) safe to put between quotes in a message that ends up on a
 * terminal or in JSON: '"' and '\' escaped, bytes outside printable ASCII as
 * \xNN, cut with "..." once it passes TN_SHOW_MAX.  Returns out->s. */
const char *tn_show(const char *s, size_t len, struct tn_shown *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[4];
		size_t k = 0;

		if (c == '"' || c == '\\') {
			esc[k++] = '\\';
			esc[k++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			esc[k++] = '\\';
			esc[k++] = 'x';
			esc[k++] = hex[c >> 4];
			esc[k++] = hex[c & 0xf];
		} else {
			esc[k++] = (char)c;
		}
		if (n + k > TN_SHOW_MAX) {
			memcpy(out->s + n, "...", 3);
			n += 3;
			break;
		}
		memcpy(out->s + n, esc, k);
		n += k;
	}
	out->s[n] = '\0';
	return out->s;
}
