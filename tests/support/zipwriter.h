/* zipwriter.h - a small zip writer for tests: good archives and hostile
 * ones (lying sizes, symlinks, duplicates, bad CRCs, truncation), built
 * byte by byte so that every field is under the test's control. */
#ifndef TN_ZIPWRITER_H
#define TN_ZIPWRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zentry {
	const char *name;
	size_t name_len;  /* 0: strlen(name); set it for names with NULs */
	const void *data; /* uncompressed */
	size_t len;
	bool deflate;
	uint32_t attr;	  /* external attributes; 0: 0644 file or 0755 dir by name */
	uint16_t made_by; /* 0: Unix */
	uint16_t flags;	  /* general purpose bits; 1 = encrypted */
	uint16_t method;  /* 0: from deflate; else written as is */
	bool lie;	  /* declare `declared` as the uncompressed size */
	uint32_t declared;
	bool bad_crc;
	size_t cut;  /* bytes dropped from the end of the compressed data */
	size_t junk; /* zero bytes appended after the compressed data */
};

struct zopts {
	bool zip64;	     /* zip64 end record and locator */
	bool zip64_plain;    /* ... with the old end record's fields filled in too */
	bool zip64_liar;     /* ... counting one entry more than the old one */
	const char *comment; /* archive comment */
	size_t comment_len;
};

struct buf {
	unsigned char *p;
	size_t len, cap;
};

/* Builds a zip of n entries; data_off[i] (when not NULL) receives where
 * entry i's data starts.  o may be NULL.  The result's p is freed by the
 * caller. */
struct buf build_zip(const struct zentry *es, size_t n, const struct zopts *o, size_t *data_off);

/* Writes the zip to path; aborts on failure (a broken test machine). */
void write_zip_file(const char *path, const struct zentry *es, size_t n, const struct zopts *o);

#endif
