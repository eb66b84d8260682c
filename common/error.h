/* error.h - the one error idiom of Tender.
 *
 * Fallible functions return int: 0 on success, a negative value on failure.
 * They take an optional `struct tn_error *err` (may be NULL) which, on
 * failure, receives a code and a human message meant to be shown as is by
 * the HTTP layer (as {"error":{"code","message"}}) and by the CLI. */
#ifndef TN_ERROR_H
#define TN_ERROR_H

#include <stddef.h>

#define TN_MUST_CHECK __attribute__((warn_unused_result))
#define TN_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Error codes.  Each has a stable string name and the HTTP status it maps to
 * (see the table in error.c); add new codes there too. */
enum tn_errcode {
	TN_OK = 0,
	TN_E_INTERNAL,         /* a bug or an unexpected library failure */
	TN_E_IO,               /* a system call failed (disk, network) */
	TN_E_INVALID,          /* a value is malformed or out of range */
	TN_E_JSON,             /* a body is not well-formed JSON */
	TN_E_NOT_FOUND,
	TN_E_EXISTS,           /* already there, with different content */
	TN_E_CONFLICT,         /* the current state forbids the change */
	TN_E_TOO_LARGE,        /* a body or file is over its limit */
	TN_E_NO_SPACE,         /* the disk is full */
	TN_E_MEDIA_TYPE,       /* a body of a type the route does not take */
	TN_E_RANGE,            /* a byte range outside the resource */
	TN_E_UNAUTHORIZED,     /* no valid credentials */
	TN_E_FORBIDDEN,        /* valid credentials, not enough role */
	TN_E_METHOD,           /* the route exists, not with this method */
	TN_E_UNAVAILABLE,      /* try again later */
	TN_E_SIGNATURE,        /* a signature or digest does not verify */
	TN_E_UNRESOLVED,       /* bundle requirements do not resolve */
	/* Desired documents (agent side): each refusal has its own code. */
	TN_E_UNSIGNED,         /* a document that must be signed is not */
	TN_E_WRONG_TARGET,     /* a document meant for another target */
	TN_E_STALE,            /* an older generation than one already seen */
	/* Archives: each hostile shape has its own code. */
	TN_E_ARCHIVE_CORRUPT,    /* not a zip, truncated, CRC mismatch */
	TN_E_ARCHIVE_TRAVERSAL,  /* an entry name with a `..` segment */
	TN_E_ARCHIVE_ABSOLUTE,   /* an entry name that is an absolute path */
	TN_E_ARCHIVE_SYMLINK,    /* an entry that is not a file or directory */
	TN_E_ARCHIVE_DUPLICATE,  /* two entries with the same name */
	TN_E_ARCHIVE_TOO_MANY,   /* more entries than allowed */
	TN_E_ARCHIVE_TOO_LARGE,  /* more uncompressed bytes than allowed */
	TN_E_ARCHIVE_RATIO,      /* a compression ratio over the limit */
	TN_E_RATE_LIMITED,       /* too many bad credentials from one address */
	TN_E_COUNT
};

#define TN_ERROR_MESSAGE_MAX 512

struct tn_error {
	enum tn_errcode code;
	char message[TN_ERROR_MESSAGE_MAX];
};

/* Sets *err (when err is not NULL) and returns -code, so that a failure
 * reads `return tn_fail(err, TN_E_INVALID, "version %s: ...", s);`. */
int tn_fail(struct tn_error *err, enum tn_errcode code, const char *fmt, ...)
	TN_PRINTF(3, 4);

/* Like tn_fail, with ": <strerror(errnum)>" appended. */
int tn_fail_errno(struct tn_error *err, int errnum, const char *fmt, ...)
	TN_PRINTF(3, 4);

/* Puts `prefix: ` in front of the message already in err; returns
 * -err->code, for adding context while passing a failure up.  With a NULL
 * err the code is unknown and TN_E_INTERNAL is returned: callers that
 * need the code keep a local struct tn_error. */
int tn_error_prefix(struct tn_error *err, const char *fmt, ...) TN_PRINTF(2, 3);

void tn_error_clear(struct tn_error *err);

/* The stable string name of a code ("invalid", "archive_traversal", ...). */
const char *tn_errcode_name(enum tn_errcode code);

/* The HTTP status a code maps to (400, 404, 409, 413, ...). */
int tn_errcode_http_status(enum tn_errcode code);

/* How much of an input an error message quotes: enough to recognise it, not
 * so much that a hostile input crowds the reason out of the message. */
#define TN_SHOW_MAX 80

struct tn_shown {
	char s[TN_SHOW_MAX + 8];
};

/* Makes s[0..len) safe to put between quotes in a message that ends up on a
 * terminal or in JSON: '"' and '\' escaped, bytes outside printable ASCII as
 * \xNN, cut with "..." once it passes TN_SHOW_MAX.  Returns out->s. */
const char *tn_show(const char *s, size_t len, struct tn_shown *out);

#endif
