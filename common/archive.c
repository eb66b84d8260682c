/* archive.c - zip archives from untrusted hands.  Every entry is validated at
 * open; data is inflated here from the raw stream so that every byte really
 * produced is counted; extraction goes to a staging directory renamed into
 * place only when all of it passed. */
#include "archive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>
#include <zlib.h>

#include "xalloc.h"

const struct tn_archive_limits tn_archive_limits_default = {
    .max_entries = 10000,
    .max_entry_bytes = 512ULL << 20,
    .max_total_bytes = 1ULL << 30,
    .max_ratio = 200,
};

#define CHUNK (64 * 1024)
#define SEGMENT_MAX 255 /* NAME_MAX of the file systems we extract to */
#define SHOWN_MAX 160	/* how much of a name an error message quotes */

struct entry {
	struct tn_archive_entry pub; /* first, so a public pointer casts back */
	zip_uint64_t index;
	uint64_t comp_size;
	uint32_t crc;
	uint16_t method;
};

/* An entry name without its trailing '/': "a" and "a/" share one key, so a
 * file and a directory of the same name are duplicates. */
struct key {
	const char *s;
	size_t len;
	struct entry *e;
};

struct tn_archive {
	zip_t *zip;
	struct tn_archive_limits lim;
	struct entry *entries;
	size_t n;
	struct key *keys; /* sorted, for duplicates and lookups */
};

/* ------------------------------------------------------------ messages */

/* Names come from the attacker and end up on terminals and in JSON: quote
 * at most SHOWN_MAX bytes of them, control characters and quotes as '?'. */
static void show_name(const char *name, char shown[SHOWN_MAX])
{
	size_t i;

	for (i = 0; name[i] && i < SHOWN_MAX - 4; i++) {
		unsigned char c = (unsigned char)name[i];

		shown[i] = c < 0x20 || c == 0x7f || c == '"' ? '?' : (char)c;
	}
	if (name[i]) {
		memcpy(shown + i, "...", 3);
		i += 3;
	}
	shown[i] = '\0';
}

static int vfail_entry(struct tn_error *err, enum tn_errcode code, int errnum, const char *name,
		       const char *fmt, va_list ap) TN_PRINTF(5, 0);

static int vfail_entry(struct tn_error *err, enum tn_errcode code, int errnum, const char *name,
		       const char *fmt, va_list ap)
{
	char shown[SHOWN_MAX];
	char detail[TN_ERROR_MESSAGE_MAX];

	show_name(name, shown);
	vsnprintf(detail, sizeof detail, fmt, ap);
	if (errnum)
		return tn_fail_errno(err, errnum, "entry \"%s\": %s", shown, detail);
	return tn_fail(err, code, "entry \"%s\": %s", shown, detail);
}

/* `return fail_entry(err, CODE, name, "...")`: the message names the entry. */
static int fail_entry(struct tn_error *err, enum tn_errcode code, const char *name, const char *fmt,
		      ...) TN_PRINTF(4, 5);

static int fail_entry(struct tn_error *err, enum tn_errcode code, const char *name, const char *fmt,
		      ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail_entry(err, code, 0, name, fmt, ap);
	va_end(ap);
	return rc;
}

/* The same with ": strerror(errnum)" and the code tn_fail_errno picks. */
static int fail_entry_errno(struct tn_error *err, int errnum, const char *name, const char *fmt,
			    ...) TN_PRINTF(4, 5);

static int fail_entry_errno(struct tn_error *err, int errnum, const char *name, const char *fmt,
			    ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail_entry(err, TN_E_IO, errnum ? errnum : EIO, name, fmt, ap);
	va_end(ap);
	return rc;
}

/* ------------------------------------------------------------ raw central directory */

#define EOCD_SIG 0x06054b50u
#define EOCD_SIZE 22
#define Z64_LOCATOR_SIG 0x07064b50u
#define Z64_LOCATOR_SIZE 20
#define Z64_EOCD_SIG 0x06064b50u
#define Z64_EOCD_SIZE 56
#define CDH_SIG 0x02014b50u
#define CDH_SIZE 46
#define EF_UNICODE_PATH 0x7075u

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* 0 when all n bytes at off were read; -1 otherwise (errno 0 at EOF). */
static int pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = 0;
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

static bool has_extra_field(const unsigned char *ef, size_t len, uint16_t id)
{
	size_t pos = 0;

	while (len - pos >= 4) {
		size_t flen = le16(ef + pos + 2);

		if (le16(ef + pos) == id)
			return true;
		if (flen > len - pos - 4)
			return false;
		pos += 4 + flen;
	}
	return false;
}

/* Finds the end of central directory record, which must be unique and end
 * the file exactly: a second candidate hidden in the comment, or bytes after
 * it, are how two zip readers come to see two different archives. */
static int find_central_dir(int fd, uint64_t fsize, uint64_t *cd_off, uint64_t *cd_size,
			    uint64_t *count, uint64_t *cd_end_max, struct tn_error *err)
{
	size_t tail = fsize < EOCD_SIZE + 0xffff ? (size_t)fsize : EOCD_SIZE + 0xffff;
	unsigned char *buf = NULL;
	unsigned char z64[Z64_EOCD_SIZE], loc[Z64_LOCATOR_SIZE];
	const unsigned char *eocd = NULL;
	bool saturated, has_locator;
	uint64_t eocd_pos;
	int rc = 0;

	if (tail < EOCD_SIZE) {
		rc = tn_fail(err, TN_E_ARCHIVE_CORRUPT, "not a zip archive: too short");
		goto out;
	}
	buf = xmalloc(tail);
	if (pread_full(fd, buf, tail, fsize - tail) < 0) {
		rc = tn_fail_errno(err, errno, "reading the end of the archive");
		goto out;
	}
	for (size_t p = tail - EOCD_SIZE + 1; p-- > 0;) {
		if (le32(buf + p) != EOCD_SIG || p + EOCD_SIZE + le16(buf + p + 20) != tail)
			continue;
		if (eocd) {
			rc = tn_fail(err, TN_E_ARCHIVE_CORRUPT,
				     "two end of central directory records (one in the comment)");
			goto out;
		}
		eocd = buf + p;
	}
	if (!eocd) {
		rc = tn_fail(err, TN_E_ARCHIVE_CORRUPT,
			     "no end of central directory record at the end of the archive");
		goto out;
	}
	eocd_pos = fsize - tail + (uint64_t)(eocd - buf);
	if (le16(eocd + 4) || le16(eocd + 6) || le16(eocd + 8) != le16(eocd + 10)) {
		rc = tn_fail(err, TN_E_ARCHIVE_CORRUPT, "multi-disk archives are not supported");
		goto out;
	}
	*count = le16(eocd + 10);
	*cd_size = le32(eocd + 12);
	*cd_off = le32(eocd + 16);
	*cd_end_max = eocd_pos;
	/* A zip64 end record may be there even when no field needs it (zip
	 * writing from a pipe does that); when there, it is the one that
	 * counts, and must agree with every field the old record could hold. */
	saturated = *count == 0xffff || *cd_size == 0xffffffffu || *cd_off == 0xffffffffu;
	has_locator = eocd_pos >= Z64_LOCATOR_SIZE &&
		      pread_full(fd, loc, sizeof loc, eocd_pos - Z64_LOCATOR_SIZE) == 0 &&
		      le32(loc) == Z64_LOCATOR_SIG;
	if (saturated && !has_locator) {
		rc = tn_fail(err, TN_E_ARCHIVE_CORRUPT, "zip64 end locator missing");
		goto out;
	}
	if (has_locator) {
		uint64_t z64_pos = le64(loc + 8);

		if (z64_pos > eocd_pos - Z64_LOCATOR_SIZE ||
		    eocd_pos - Z64_LOCATOR_SIZE - z64_pos < Z64_EOCD_SIZE ||
		    pread_full(fd, z64, sizeof z64, z64_pos) < 0 || le32(z64) != Z64_EOCD_SIG) {
			rc = tn_fail(err, TN_E_ARCHIVE_CORRUPT, "zip64 end record missing");
			goto out;
		}
		if (le32(z64 + 16) || le32(z64 + 20) || le64(z64 + 24) != le64(z64 + 32)) {
			rc = tn_fail(err, TN_E_ARCHIVE_CORRUPT,
				     "multi-disk archives are not supported");
			goto out;
		}
		if ((*count != 0xffff && *count != le64(z64 + 32)) ||
		    (*cd_size != 0xffffffffu && *cd_size != le64(z64 + 40)) ||
		    (*cd_off != 0xffffffffu && *cd_off != le64(z64 + 48))) {
			rc = tn_fail(err, TN_E_ARCHIVE_CORRUPT,
				     "the zip64 end record disagrees with the end record");
			goto out;
		}
		*count = le64(z64 + 32);
		*cd_size = le64(z64 + 40);
		*cd_off = le64(z64 + 48);
		*cd_end_max = z64_pos;
	}
	if (*cd_off > *cd_end_max || *cd_size != *cd_end_max - *cd_off)
		rc = tn_fail(err, TN_E_ARCHIVE_CORRUPT,
			     "the central directory does not end where the end record is");
out:
	free(buf);
	return rc;
}

/* One name as the central directory spells it (NULs and all). */
struct raw_name {
	char *s; /* len bytes, then a NUL */
	size_t len;
	bool unicode; /* has an Info-ZIP Unicode path field overriding it */
};

static void free_raw_names(struct raw_name *names, size_t n)
{
	for (size_t i = 0; names && i < n; i++)
		free(names[i].s);
	free(names);
}

/* Reads the names of the central directory, at most max_entries of them
 * (TN_E_ARCHIVE_TOO_MANY beyond) and each at most TN_ARCHIVE_NAME_MAX bytes
 * long (TN_E_INVALID), so that what this holds stays small.  *names is
 * freed by the caller with free_raw_names, also on failure. */
static int read_raw_names(int fd, uint64_t fsize, uint64_t max_entries, struct raw_name **names,
			  size_t *n, struct tn_error *err)
{
	unsigned char hdr[CDH_SIZE];
	unsigned char *extra = xmalloc(0xffff);
	uint64_t cd_off = 0, cd_size = 0, count = 0, cd_end = 0, pos, want;
	int rc;

	*names = NULL;
	*n = 0;
	rc = find_central_dir(fd, fsize, &cd_off, &cd_size, &count, &cd_end, err);
	if (rc)
		goto out;
	want = count > max_entries ? max_entries + 1 : count;
	*names = xcalloc(want ? want : 1, sizeof **names);
	pos = cd_off;
	for (size_t i = 0; i < want; i++) {
		struct raw_name *rn = &(*names)[i];
		size_t nlen, xlen, clen;

		if (cd_end - pos < CDH_SIZE || pread_full(fd, hdr, sizeof hdr, pos) < 0 ||
		    le32(hdr) != CDH_SIG) {
			rc = tn_fail(err, TN_E_ARCHIVE_CORRUPT,
				     "bad central directory header for entry %zu", i);
			goto out;
		}
		nlen = le16(hdr + 28);
		xlen = le16(hdr + 30);
		clen = le16(hdr + 32);
		rn->s = xmalloc(nlen + 1);
		rn->len = nlen;
		*n = i + 1; /* what free_raw_names frees */
		if (cd_end - pos - CDH_SIZE < nlen + xlen + clen ||
		    pread_full(fd, rn->s, nlen, pos + CDH_SIZE) < 0 ||
		    pread_full(fd, extra, xlen, pos + CDH_SIZE + nlen) < 0) {
			rc = tn_fail(err, TN_E_ARCHIVE_CORRUPT,
				     "central directory header %zu runs past its end", i);
			goto out;
		}
		rn->s[nlen] = '\0';
		rn->unicode = has_extra_field(extra, xlen, EF_UNICODE_PATH);
		if (nlen > TN_ARCHIVE_NAME_MAX) {
			rn->s[TN_ARCHIVE_NAME_MAX] = '\0';
			rc = fail_entry(err, TN_E_INVALID, rn->s,
					"name is %zu bytes, over the limit of %d", nlen,
					TN_ARCHIVE_NAME_MAX);
			goto out;
		}
		pos += CDH_SIZE + nlen + xlen + clen;
	}
	if (count > max_entries)
		rc = fail_entry(err, TN_E_ARCHIVE_TOO_MANY, (*names)[max_entries].s,
				"the archive holds %llu entries, over the limit of %llu",
				(unsigned long long)count, (unsigned long long)max_entries);
	else if (pos != cd_end)
		rc = tn_fail(err, TN_E_ARCHIVE_CORRUPT,
			     "%llu unexplained bytes at the end of the central directory",
			     (unsigned long long)(cd_end - pos));
out:
	free(extra);
	return rc;
}

/* libzip 1.7.3 turns NUL bytes in names into spaces and replaces a name by
 * its Info-ZIP Unicode path field, so its API can show neither a NUL nor a
 * central directory that another reader would see differently.  This reads
 * the central directory itself and refuses NULs, and any name that differs
 * from libzip's without a Unicode path field to explain it. */
static int check_central_dir(struct tn_archive *ar, int fd, uint64_t fsize, struct tn_error *err)
{
	struct raw_name *raw = NULL;
	size_t n = 0;
	int rc;

	rc = read_raw_names(fd, fsize, ar->lim.max_entries, &raw, &n, err);
	if (rc)
		goto out;
	if (n != ar->n) {
		rc = tn_fail(err, TN_E_ARCHIVE_CORRUPT,
			     "the end record counts %zu entries, libzip read %zu", n, ar->n);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *name = ar->entries[i].pub.name;

		if (memchr(raw[i].s, '\0', raw[i].len)) {
			rc = fail_entry(err, TN_E_INVALID, name, "name contains a NUL byte");
			goto out;
		}
		if ((strlen(name) != raw[i].len || memcmp(name, raw[i].s, raw[i].len)) &&
		    !raw[i].unicode) {
			rc = fail_entry(err, TN_E_ARCHIVE_CORRUPT, name,
					"the central directory names it differently");
			goto out;
		}
	}
out:
	free_raw_names(raw, n);
	return rc;
}

static int raw_cmp(const void *a, const void *b)
{
	const struct raw_name *x = a, *y = b;
	int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);

	if (c)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

/* With ZIP_CHECKCONS libzip refuses two entries of one name at open
 * (ZIP_ER_EXISTS) without saying which: find it, to name it. */
static int explain_duplicate(int fd, uint64_t fsize, const struct tn_archive_limits *lim,
			     struct tn_error *err)
{
	struct raw_name *raw = NULL;
	size_t n = 0;
	int rc;

	rc = read_raw_names(fd, fsize, lim->max_entries, &raw, &n, err);
	if (rc)
		goto out;
	qsort(raw, n, sizeof *raw, raw_cmp);
	for (size_t i = 1; i < n; i++) {
		if (raw_cmp(&raw[i - 1], &raw[i]) == 0) {
			rc = fail_entry(err, TN_E_ARCHIVE_DUPLICATE, raw[i].s,
					"appears twice in the archive");
			goto out;
		}
	}
	/* the same name only once decoded (Unicode path fields) */
	rc = tn_fail(err, TN_E_ARCHIVE_DUPLICATE,
		     "two entries have the same name once decoded (libzip: file already exists)");
out:
	free_raw_names(raw, n);
	return rc;
}

/* ------------------------------------------------------------ validation */

/* Checks a name segment by segment, never with strstr: "a/.." has no "../"
 * in it and is a traversal all the same.  '\\' separates segments for the
 * ".." test too, since "..\\x" is a traversal to Windows tools. */
static int check_name(const char *name, bool *is_dir, struct tn_error *err)
{
	size_t len = strlen(name);
	size_t depth = 0;
	const char *p, *seg;

	if (len == 0)
		return tn_fail(err, TN_E_INVALID, "entry \"\": empty name");
	if (len > TN_ARCHIVE_NAME_MAX)
		return fail_entry(err, TN_E_INVALID, name,
				  "name is %zu bytes, over the limit of %d", len,
				  TN_ARCHIVE_NAME_MAX);
	if (name[0] == '/' || name[0] == '\\')
		return fail_entry(err, TN_E_ARCHIVE_ABSOLUTE, name, "absolute path");
	for (seg = p = name;; p++) {
		if (*p == '/' || *p == '\\' || *p == '\0') {
			if (p - seg == 2 && seg[0] == '.' && seg[1] == '.')
				return fail_entry(err, TN_E_ARCHIVE_TRAVERSAL, name,
						  "\"..\" segment escapes the destination");
			seg = p + 1;
		}
		if (*p == '\0')
			break;
	}
	*is_dir = name[len - 1] == '/';
	if (*is_dir)
		len--;
	for (seg = p = name; p <= name + len; p++) {
		unsigned char c = (unsigned char)*p;

		if (p < name + len && c != '/') {
			if (c < 0x20 || c == 0x7f)
				return fail_entry(err, TN_E_INVALID, name,
						  "name contains control character 0x%02x", c);
			if (c == '\\')
				return fail_entry(err, TN_E_INVALID, name,
						  "name contains a backslash");
			continue;
		}
		if (p == seg)
			return fail_entry(err, TN_E_INVALID, name, "empty path segment");
		if (p - seg == 1 && seg[0] == '.')
			return fail_entry(err, TN_E_INVALID, name, "\".\" path segment");
		if (p - seg > SEGMENT_MAX)
			return fail_entry(err, TN_E_INVALID, name,
					  "a path segment is over %d bytes", SEGMENT_MAX);
		if (++depth > TN_ARCHIVE_DEPTH_MAX)
			return fail_entry(err, TN_E_INVALID, name, "more than %d path segments",
					  TN_ARCHIVE_DEPTH_MAX);
		seg = p + 1;
	}
	return 0;
}

/* The type comes from the Unix mode in the external attributes when the
 * archive was made on Unix; elsewhere only the trailing '/' tells, and we
 * never create anything but files and directories anyway. */
static int check_type(struct tn_archive *ar, struct entry *e, struct tn_error *err)
{
	zip_uint8_t opsys;
	zip_uint32_t attr;
	unsigned mode, type;

	if (zip_file_get_external_attributes(ar->zip, e->index, 0, &opsys, &attr) < 0)
		return fail_entry(err, TN_E_ARCHIVE_CORRUPT, e->pub.name,
				  "no external attributes: %s", zip_strerror(ar->zip));
	if (opsys != ZIP_OPSYS_UNIX && opsys != ZIP_OPSYS_OS_X)
		return 0;
	mode = attr >> 16;
	type = mode & S_IFMT;
	if (type == S_IFLNK)
		return fail_entry(err, TN_E_ARCHIVE_SYMLINK, e->pub.name, "is a symbolic link");
	if (type != 0 && type != S_IFREG && type != S_IFDIR)
		return fail_entry(err, TN_E_ARCHIVE_SYMLINK, e->pub.name,
				  "is not a regular file or directory (mode %06o)", mode);
	if ((type == S_IFDIR) != e->pub.is_dir && type != 0)
		return fail_entry(err, TN_E_ARCHIVE_CORRUPT, e->pub.name,
				  type == S_IFDIR ? "mode says directory, name has no trailing '/'"
						  : "name ends in '/', mode says file");
	e->pub.is_exec = !e->pub.is_dir && (mode & 0111);
	return 0;
}

static int check_sizes(struct tn_archive *ar, struct entry *e, uint64_t *total,
		       struct tn_error *err)
{
	const zip_uint64_t need = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_CRC |
				  ZIP_STAT_COMP_METHOD | ZIP_STAT_ENCRYPTION_METHOD;
	const struct tn_archive_limits *lim = &ar->lim;
	const char *name = e->pub.name;
	zip_stat_t st;

	zip_stat_init(&st);
	if (zip_stat_index(ar->zip, e->index, 0, &st) < 0 || (st.valid & need) != need)
		return fail_entry(err, TN_E_ARCHIVE_CORRUPT, name, "cannot stat: %s",
				  zip_strerror(ar->zip));
	if (st.encryption_method != ZIP_EM_NONE)
		return fail_entry(err, TN_E_INVALID, name, "is encrypted");
	if (st.comp_method != ZIP_CM_STORE && st.comp_method != ZIP_CM_DEFLATE)
		return fail_entry(
		    err, TN_E_INVALID, name,
		    "compression method %u is not supported (only stored and deflate)",
		    (unsigned)st.comp_method);
	e->pub.size = st.size;
	e->comp_size = st.comp_size;
	e->crc = st.crc;
	e->method = st.comp_method;
	if (e->pub.is_dir && st.size)
		return fail_entry(err, TN_E_ARCHIVE_CORRUPT, name,
				  "directory declares %llu bytes of data",
				  (unsigned long long)st.size);
	if (st.comp_method == ZIP_CM_STORE && st.comp_size != st.size)
		return fail_entry(err, TN_E_ARCHIVE_CORRUPT, name,
				  "stored in %llu bytes, declares %llu",
				  (unsigned long long)st.comp_size, (unsigned long long)st.size);
	if (st.size > lim->max_entry_bytes)
		return fail_entry(err, TN_E_ARCHIVE_TOO_LARGE, name,
				  "declares %llu bytes, over the limit of %llu per entry",
				  (unsigned long long)st.size,
				  (unsigned long long)lim->max_entry_bytes);
	if (st.size > lim->max_total_bytes - *total)
		return fail_entry(err, TN_E_ARCHIVE_TOO_LARGE, name,
				  "brings the declared total over the limit of %llu bytes",
				  (unsigned long long)lim->max_total_bytes);
	*total += st.size;
	if (lim->max_ratio && st.size > TN_ARCHIVE_RATIO_MIN_BYTES &&
	    (st.comp_size == 0 || st.size / st.comp_size > lim->max_ratio))
		return fail_entry(
		    err, TN_E_ARCHIVE_RATIO, name,
		    "compression ratio of %llu:1 is over the limit of %u:1",
		    (unsigned long long)(st.comp_size ? st.size / st.comp_size : st.size),
		    lim->max_ratio);
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);

	if (c)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

/* Sorts the keys, then refuses two entries with one key and a file that
 * another entry needs as a directory (neither could be extracted as is). */
static int check_duplicates(struct tn_archive *ar, struct tn_error *err)
{
	ar->keys = xcalloc(ar->n ? ar->n : 1, sizeof *ar->keys);
	for (size_t i = 0; i < ar->n; i++) {
		struct entry *e = &ar->entries[i];

		ar->keys[i].s = e->pub.name;
		ar->keys[i].len = strlen(e->pub.name) - (e->pub.is_dir ? 1 : 0);
		ar->keys[i].e = e;
	}
	qsort(ar->keys, ar->n, sizeof *ar->keys, key_cmp);
	for (size_t i = 1; i < ar->n; i++) {
		const struct key *a = &ar->keys[i - 1], *b = &ar->keys[i];
		char shown[SHOWN_MAX];

		if (key_cmp(a, b))
			continue;
		if (a->e->index > b->e->index) {
			const struct key *t = a;

			a = b;
			b = t;
		}
		show_name(a->e->pub.name, shown);
		return fail_entry(err, TN_E_ARCHIVE_DUPLICATE, b->e->pub.name,
				  "duplicate of entry \"%s\"", shown);
	}
	for (size_t i = 0; i < ar->n; i++) {
		const struct key *k = &ar->keys[i];

		/* bounded by the name's length (TN_ARCHIVE_NAME_MAX) */
		for (size_t j = 0; j < k->len; j++) {
			struct key probe = {.s = k->s, .len = j};
			const struct key *hit;
			char shown[SHOWN_MAX];

			if (k->s[j] != '/')
				continue;
			hit = bsearch(&probe, ar->keys, ar->n, sizeof *ar->keys, key_cmp);
			if (!hit || hit->e->pub.is_dir)
				continue;
			show_name(hit->e->pub.name, shown);
			return fail_entry(err, TN_E_ARCHIVE_DUPLICATE, k->e->pub.name,
					  "lies under entry \"%s\", which is a file", shown);
		}
	}
	return 0;
}

/* ------------------------------------------------------------ open, close, lookups */

/* libzip reads the very file we read raw (one open, no second lookup of
 * the path that could find another file).  zip_fdopen would dup our
 * descriptor without FD_CLOEXEC (1.7.3), leaking it into the agent's
 * children: libzip gets a FILE on a close-on-exec duplicate instead. */
static zip_t *open_zip(int fd, int *zerr)
{
	zip_source_t *src = NULL;
	zip_t *za = NULL;
	FILE *fp = NULL;
	zip_error_t ze;
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	zip_error_init(&ze);
	if (dfd < 0 || !(fp = fdopen(dfd, "rb"))) {
		*zerr = ZIP_ER_OPEN;
		if (dfd >= 0)
			close(dfd);
		goto out;
	}
	src = zip_source_filep_create(fp, 0, -1, &ze);
	if (!src) {
		fclose(fp);
		*zerr = zip_error_code_zip(&ze);
		goto out;
	}
	za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
	if (!za) {
		zip_source_free(src);
		*zerr = zip_error_code_zip(&ze);
	}
out:
	zip_error_fini(&ze);
	return za;
}

int tn_archive_open(const char *path, const struct tn_archive_limits *lim, struct tn_archive **out,
		    struct tn_error *err)
{
	struct tn_archive *ar = xcalloc(1, sizeof *ar);
	int fd = -1, zerr = 0;
	uint64_t total = 0;
	zip_int64_t n;
	struct stat st;
	int rc = 0;

	*out = NULL;
	ar->lim = lim ? *lim : tn_archive_limits_default;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = tn_fail_errno(err, errno, "opening archive %s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = tn_fail(err, TN_E_INVALID, "archive %s is not a regular file", path);
		goto out;
	}
	ar->zip = open_zip(fd, &zerr);
	if (!ar->zip) {
		zip_error_t ze;

		zip_error_init_with_code(&ze, zerr);
		if (zerr == ZIP_ER_EXISTS)
			rc = explain_duplicate(fd, (uint64_t)st.st_size, &ar->lim, err);
		else
			rc = tn_fail(err,
				     zerr == ZIP_ER_MEMORY ? TN_E_INTERNAL
				     : zerr == ZIP_ER_OPEN ? TN_E_IO
							   : TN_E_ARCHIVE_CORRUPT,
				     "not a valid zip archive: %s", zip_error_strerror(&ze));
		zip_error_fini(&ze);
		goto out;
	}
	n = zip_get_num_entries(ar->zip, 0);
	if (n < 0) {
		rc = tn_fail(err, TN_E_INTERNAL, "libzip counts %lld entries", (long long)n);
		goto out;
	}
	if ((uint64_t)n > ar->lim.max_entries) {
		const char *name = zip_get_name(ar->zip, ar->lim.max_entries, ZIP_FL_ENC_RAW);

		rc = fail_entry(err, TN_E_ARCHIVE_TOO_MANY, name ? name : "?",
				"the archive holds %lld entries, over the limit of %llu",
				(long long)n, (unsigned long long)ar->lim.max_entries);
		goto out;
	}
	ar->n = (size_t)n;
	ar->entries = xcalloc(ar->n ? ar->n : 1, sizeof *ar->entries);
	for (size_t i = 0; i < ar->n; i++) {
		const char *name = zip_get_name(ar->zip, i, ZIP_FL_ENC_RAW);

		ar->entries[i].pub.name = xstrdup(name ? name : "");
		ar->entries[i].index = i;
	}
	rc = check_central_dir(ar, fd, (uint64_t)st.st_size, err);
	if (rc)
		goto out;
	for (size_t i = 0; i < ar->n; i++) {
		struct entry *e = &ar->entries[i];

		rc = check_name(e->pub.name, &e->pub.is_dir, err);
		if (!rc)
			rc = check_type(ar, e, err);
		if (!rc)
			rc = check_sizes(ar, e, &total, err);
		if (rc)
			goto out;
	}
	rc = check_duplicates(ar, err);
	if (rc)
		goto out;
	*out = ar;
	ar = NULL;
out:
	if (fd >= 0)
		close(fd);
	tn_archive_close(ar);
	return rc;
}

void tn_archive_close(struct tn_archive *ar)
{
	if (!ar)
		return;
	if (ar->zip)
		zip_discard(ar->zip);
	for (size_t i = 0; ar->entries && i < ar->n; i++)
		free((char *)ar->entries[i].pub.name);
	free(ar->entries);
	free(ar->keys);
	free(ar);
}

size_t tn_archive_entry_count(const struct tn_archive *ar)
{
	return ar->n;
}

const struct tn_archive_entry *tn_archive_entry(const struct tn_archive *ar, size_t i)
{
	return i < ar->n ? &ar->entries[i].pub : NULL;
}

const struct tn_archive_entry *tn_archive_find(const struct tn_archive *ar, const char *name)
{
	size_t len = strlen(name);
	bool want_dir = len && name[len - 1] == '/';
	struct key probe = {.s = name, .len = want_dir ? len - 1 : len};
	const struct key *hit = bsearch(&probe, ar->keys, ar->n, sizeof *ar->keys, key_cmp);

	if (!hit || hit->e->pub.is_dir != want_dir)
		return NULL;
	return &hit->e->pub;
}

/* ------------------------------------------------------------ reading data */

/* Where inflated bytes go: a file, a buffer sized beforehand, or nowhere
 * (verification only counts and checks them). */
struct sink {
	int fd;
	char *buf;
	size_t len;
	bool discard;
};

static int sink_write(struct sink *s, const struct entry *e, const unsigned char *p, size_t n,
		      struct tn_error *err)
{
	if (s->discard)
		return 0;
	if (s->fd < 0) {
		memcpy(s->buf + s->len, p, n);
		s->len += n;
		return 0;
	}
	while (n) { /* each pass writes at least one byte or fails */
		ssize_t w = write(s->fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return fail_entry_errno(err, w < 0 ? errno : EIO, e->pub.name, "write");
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Counts n more bytes of real output for e, before they are written. */
static int account(const struct tn_archive *ar, const struct entry *e, uint64_t produced, size_t n,
		   uint64_t cap, uint64_t *total, struct tn_error *err)
{
	uint64_t now = produced + n;

	if (now > ar->lim.max_entry_bytes)
		return fail_entry(err, TN_E_ARCHIVE_TOO_LARGE, e->pub.name,
				  "inflates past the limit of %llu bytes per entry",
				  (unsigned long long)ar->lim.max_entry_bytes);
	if (now > cap)
		return fail_entry(err, TN_E_ARCHIVE_TOO_LARGE, e->pub.name,
				  "inflates past the limit of %llu bytes for this read",
				  (unsigned long long)cap);
	if (now > e->pub.size)
		return fail_entry(err, TN_E_ARCHIVE_TOO_LARGE, e->pub.name,
				  "inflates past its declared size of %llu bytes (a zip bomb?)",
				  (unsigned long long)e->pub.size);
	if (total) {
		if (n > ar->lim.max_total_bytes - *total)
			return fail_entry(err, TN_E_ARCHIVE_TOO_LARGE, e->pub.name,
					  "brings the archive past the limit of %llu bytes",
					  (unsigned long long)ar->lim.max_total_bytes);
		*total += n;
	}
	return 0;
}

/* zlib allocates through the project's one out-of-memory policy. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
	return xcalloc(items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
	free(p);
}

/* Copies entry e's data to s.  The stream is read as stored
 * (ZIP_FL_COMPRESSED) and inflated here, counting every byte produced: the
 * declared size is a claim, and libzip 1.7.3 hands out everything a lying
 * stream inflates to (64 MiB for a "1000 byte" entry), complaining at most
 * about the CRC at the very end.  So output past the declared size or a
 * limit is TN_E_ARCHIVE_TOO_LARGE as it happens, and a stream that ends
 * early or fails its CRC is TN_E_ARCHIVE_CORRUPT. */
static int copy_entry(struct tn_archive *ar, const struct entry *e, uint64_t cap, uint64_t *total,
		      struct sink *s, struct tn_error *err)
{
	unsigned char *in = xmalloc(CHUNK), *outb = NULL;
	zip_file_t *zf = NULL;
	z_stream zs = {.zalloc = z_alloc, .zfree = z_free};
	bool zs_live = false, ended = false;
	uLong crc = crc32(0, Z_NULL, 0);
	uint64_t produced = 0;
	int rc = 0;

	zf = zip_fopen_index(ar->zip, e->index, ZIP_FL_COMPRESSED);
	if (!zf) {
		rc = fail_entry(err, TN_E_ARCHIVE_CORRUPT, e->pub.name, "cannot open its data: %s",
				zip_strerror(ar->zip));
		goto out;
	}
	if (e->method == ZIP_CM_DEFLATE) {
		outb = xmalloc(CHUNK);
		if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
			rc = fail_entry(err, TN_E_INTERNAL, e->pub.name, "inflateInit2 failed");
			goto out;
		}
		zs_live = true;
	}
	/* Bounded: each pass consumes compressed bytes, of which libzip gives
	 * at most the entry's compressed size. */
	for (;;) {
		zip_int64_t n = zip_fread(zf, in, CHUNK);

		if (n < 0) {
			rc = fail_entry(err, TN_E_ARCHIVE_CORRUPT, e->pub.name,
					"reading its data: %s", zip_file_strerror(zf));
			goto out;
		}
		if (n == 0)
			break;
		if (e->method == ZIP_CM_STORE) {
			rc = account(ar, e, produced, (size_t)n, cap, total, err);
			if (rc)
				goto out;
			produced += (uint64_t)n;
			crc = crc32(crc, in, (uInt)n);
			rc = sink_write(s, e, in, (size_t)n, err);
			if (rc)
				goto out;
			continue;
		}
		if (ended) {
			rc = fail_entry(err, TN_E_ARCHIVE_CORRUPT, e->pub.name,
					"data after the end of its deflate stream");
			goto out;
		}
		zs.next_in = in;
		zs.avail_in = (uInt)n;
		/* Bounded: a pass that fills the buffer has produced CHUNK
		 * bytes, and account() caps those. */
		do {
			size_t have;
			int zr;

			zs.next_out = outb;
			zs.avail_out = CHUNK;
			zr = inflate(&zs, Z_NO_FLUSH);
			if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
				rc = fail_entry(err, TN_E_ARCHIVE_CORRUPT, e->pub.name,
						"invalid deflate data: %s",
						zs.msg ? zs.msg : "inflate failed");
				goto out;
			}
			have = CHUNK - zs.avail_out;
			rc = account(ar, e, produced, have, cap, total, err);
			if (rc)
				goto out;
			produced += have;
			crc = crc32(crc, outb, (uInt)have);
			rc = sink_write(s, e, outb, have, err);
			if (rc)
				goto out;
			if (zr == Z_STREAM_END) {
				ended = true;
				if (zs.avail_in) {
					rc = fail_entry(err, TN_E_ARCHIVE_CORRUPT, e->pub.name,
							"data after the end of its deflate stream");
					goto out;
				}
				break;
			}
		} while (zs.avail_out == 0);
	}
	if (e->method == ZIP_CM_DEFLATE && !ended) {
		rc = fail_entry(err, TN_E_ARCHIVE_CORRUPT, e->pub.name,
				"its deflate stream is cut short (truncated archive?)");
		goto out;
	}
	if (produced != e->pub.size) {
		rc = fail_entry(err, TN_E_ARCHIVE_CORRUPT, e->pub.name,
				"holds %llu bytes, not its declared %llu",
				(unsigned long long)produced, (unsigned long long)e->pub.size);
		goto out;
	}
	if (crc != e->crc)
		rc = fail_entry(err, TN_E_ARCHIVE_CORRUPT, e->pub.name,
				"CRC mismatch (data %08lx, declared %08lx)", (unsigned long)crc,
				(unsigned long)e->crc);
out:
	if (zs_live)
		inflateEnd(&zs);
	if (zf)
		zip_fclose(zf);
	free(in);
	free(outb);
	return rc;
}

int tn_archive_read_entry(struct tn_archive *ar, const char *name, size_t max_bytes, char **out,
			  size_t *len, struct tn_error *err)
{
	const struct entry *e = (const struct entry *)tn_archive_find(ar, name);
	struct sink s = {.fd = -1};
	int rc = 0;

	*out = NULL;
	*len = 0;
	if (!e) {
		rc = fail_entry(err, TN_E_NOT_FOUND, name, "not in the archive");
		goto out;
	}
	if (e->pub.is_dir) {
		rc = fail_entry(err, TN_E_INVALID, name, "is a directory");
		goto out;
	}
	if (e->pub.size > max_bytes) {
		rc = fail_entry(err, TN_E_ARCHIVE_TOO_LARGE, name,
				"declares %llu bytes, over the limit of %zu for this read",
				(unsigned long long)e->pub.size, max_bytes);
		goto out;
	}
	/* the declared size bounds the real output (copy_entry enforces it) */
	s.buf = xmalloc((size_t)e->pub.size + 1);
	rc = copy_entry(ar, e, max_bytes, NULL, &s, err);
	if (rc)
		goto out;
	s.buf[s.len] = '\0';
	*out = s.buf;
	*len = s.len;
	s.buf = NULL;
out:
	free(s.buf);
	return rc;
}

int tn_archive_verify(struct tn_archive *ar, struct tn_error *err)
{
	uint64_t total = 0;

	for (size_t i = 0; i < ar->n; i++) {
		const struct entry *e = &ar->entries[i];
		struct sink s = {.fd = -1, .discard = true};
		int rc;

		if (e->pub.is_dir)
			continue;
		rc = copy_entry(ar, e, UINT64_MAX, &total, &s, err);
		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------ extraction */

/* rm -rf of a tree only we have written, without following symlinks (there
 * are none, but a tree is removed as if there could be). */
static int remove_tree_at(int parent, const char *name, unsigned depth)
{
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	if (depth > TN_ARCHIVE_DEPTH_MAX + 1) {
		errno = ELOOP;
		return -1;
	}
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != ENOTDIR && errno != ELOOP)
			return -1;
		return unlinkat(parent, name, 0) < 0 && errno != ENOENT ? -1 : 0;
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	/* bounded by what we extracted: at most max_entries names */
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (remove_tree_at(fd, de->d_name, depth + 1) < 0)
			rc = -1;
	}
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = -1;
	return rc;
}

/* fsync of every directory of the staging tree, so that the rename makes
 * durable a tree whose entries are durable too. */
static int sync_tree(int fd, unsigned depth)
{
	struct dirent *de;
	DIR *d;
	int dup_fd, rc = 0;

	if (depth > TN_ARCHIVE_DEPTH_MAX + 1) {
		errno = ELOOP;
		return -1;
	}
	if (fsync(fd) < 0)
		return -1;
	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		return -1;
	d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return -1;
	}
	/* bounded by what we extracted: at most max_entries names */
	while (rc == 0 && (de = readdir(d))) {
		int sub;

		if ((de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) ||
		    !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0 && de->d_type == DT_UNKNOWN && errno == ENOTDIR)
			continue;
		if (sub < 0) {
			rc = -1;
			break;
		}
		rc = sync_tree(sub, depth + 1);
		close(sub);
	}
	closedir(d);
	return rc;
}

/* Opens (creating it if needed) directory seg under *cur, replacing *cur;
 * O_NOFOLLOW so that nothing but a real directory is ever entered. */
static int enter_dir(int *cur, bool owned, const char *seg, const struct entry *e,
		     struct tn_error *err)
{
	int fd;

	if (mkdirat(*cur, seg, 0755) < 0 && errno != EEXIST)
		return fail_entry_errno(err, errno, e->pub.name, "mkdir %s", seg);
	fd = openat(*cur, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fail_entry_errno(err, errno, e->pub.name, "open directory %s", seg);
	if (owned)
		close(*cur);
	*cur = fd;
	return 0;
}

static int extract_entry(struct tn_archive *ar, const struct entry *e, int rootfd, uint64_t *total,
			 struct tn_error *err)
{
	char *path = xstrdup(e->pub.name);
	char *seg = path, *slash;
	int cur = rootfd, fd = -1, rc = 0;
	struct sink s;

	if (e->pub.is_dir)
		path[strlen(path) - 1] = '\0';
	/* bounded by the name's segments (TN_ARCHIVE_DEPTH_MAX) */
	while ((slash = strchr(seg, '/'))) {
		*slash = '\0';
		rc = enter_dir(&cur, cur != rootfd, seg, e, err);
		if (rc)
			goto out;
		seg = slash + 1;
	}
	if (e->pub.is_dir) {
		/* EEXIST: made earlier as the parent of an entry listed first */
		if (mkdirat(cur, seg, 0755) < 0 && errno != EEXIST)
			rc = fail_entry_errno(err, errno, e->pub.name, "mkdir");
		goto out;
	}
	fd = openat(cur, seg, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC,
		    e->pub.is_exec ? 0755 : 0644);
	if (fd < 0) {
		rc = fail_entry_errno(err, errno, e->pub.name, "create");
		goto out;
	}
	s = (struct sink){.fd = fd};
	rc = copy_entry(ar, e, UINT64_MAX, total, &s, err);
	if (rc)
		goto out;
	if (fsync(fd) < 0) {
		rc = fail_entry_errno(err, errno, e->pub.name, "fsync");
		goto out;
	}
	rc = close(fd) < 0 ? fail_entry_errno(err, errno, e->pub.name, "close") : 0;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	if (cur != rootfd)
		close(cur);
	free(path);
	return rc;
}

/* The rename must not replace a destination someone made meanwhile:
 * rename(2) would silently replace an empty directory. */
static int rename_noreplace(const char *from, const char *to)
{
	struct stat st;

	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* a file system without RENAME_NOREPLACE: check, then rename */
	if (lstat(to, &st) == 0) {
		errno = EEXIST;
		return -1;
	}
	return rename(from, to);
}

static int sync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir =
	    slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd < 0 || fsync(fd) < 0 ? -1 : 0;

	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

int tn_archive_extract(struct tn_archive *ar, const char *dest_dir, struct tn_error *err)
{
	char *stage = xasprintf("%s.tmp-XXXXXX", dest_dir);
	bool staged = false;
	int stagefd = -1, rc = 0;
	uint64_t total = 0;
	struct stat st;

	if (lstat(dest_dir, &st) == 0) {
		rc = tn_fail(err, TN_E_EXISTS, "destination %s already exists", dest_dir);
		goto out;
	}
	if (errno != ENOENT) {
		rc = tn_fail_errno(err, errno, "destination %s", dest_dir);
		goto out;
	}
	if (!mkdtemp(stage)) {
		rc = tn_fail_errno(err, errno, "creating staging directory %s", stage);
		goto out;
	}
	staged = true;
	stagefd = open(stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (stagefd < 0) {
		rc = tn_fail_errno(err, errno, "opening %s", stage);
		goto out;
	}
	for (size_t i = 0; i < ar->n; i++) {
		rc = extract_entry(ar, &ar->entries[i], stagefd, &total, err);
		if (rc)
			goto out;
	}
	/* mkdtemp made it 0700; it becomes an ordinary directory */
	if (fchmod(stagefd, 0755) < 0 || sync_tree(stagefd, 0) < 0) {
		rc = tn_fail_errno(err, errno, "syncing %s", stage);
		goto out;
	}
	if (rename_noreplace(stage, dest_dir) < 0) {
		rc = errno == EEXIST || errno == ENOTEMPTY
			 ? tn_fail(err, TN_E_EXISTS, "destination %s already exists", dest_dir)
			 : tn_fail_errno(err, errno, "renaming %s to %s", stage, dest_dir);
		goto out;
	}
	staged = false;
	if (sync_parent(dest_dir) < 0) {
		rc = tn_fail_errno(err, errno, "syncing the parent of %s", dest_dir);
		/* a failure leaves nothing behind, not even a tree that may
		 * not survive a crash */
		(void)remove_tree_at(AT_FDCWD, dest_dir, 0);
	}
out:
	if (stagefd >= 0)
		close(stagefd);
	/* Best effort: the failure being reported matters more than one in
	 * cleaning up after it. */
	if (staged && remove_tree_at(AT_FDCWD, stage, 0) < 0)
		rc = rc ? rc : tn_fail_errno(err, errno, "removing %s", stage);
	free(stage);
	return rc;
}
