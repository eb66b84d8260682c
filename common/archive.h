/* archive.h - reading and extracting untrusted zip archives (bundles,
 * distributions): every entry is checked before anything is written, real
 * decompressed bytes are counted, and extraction is all or nothing. */
#ifndef TN_ARCHIVE_H
#define TN_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Limits applied to an archive.  Sizes are uncompressed bytes; they are
 * checked against the declared sizes at open and again against the bytes
 * really produced while reading, since declared sizes lie. */
struct tn_archive_limits {
	uint64_t max_entries;	  /* files and directories */
	uint64_t max_entry_bytes; /* one entry, uncompressed */
	uint64_t max_total_bytes; /* all entries, uncompressed */
	/* uncompressed / compressed size of one entry; only checked for
	 * entries larger than TN_ARCHIVE_RATIO_MIN_BYTES, since small files
	 * of repeated bytes compress past any sane ratio and cost nothing;
	 * 0: no ratio limit (the size limits still hold). */
	uint32_t max_ratio;
};

#define TN_ARCHIVE_RATIO_MIN_BYTES (1024 * 1024)

/* Entry names longer than this (bytes), or with more segments, are
 * refused: they are not what bundles hold and would strain PATH_MAX. */
#define TN_ARCHIVE_NAME_MAX 1024
#define TN_ARCHIVE_DEPTH_MAX 64

/* 10,000 entries, 512 MiB per entry, 1 GiB in all, ratio 200. */
extern const struct tn_archive_limits tn_archive_limits_default;

struct tn_archive;

/* One validated entry, as the archive names it (directories end in '/'). */
struct tn_archive_entry {
	const char *name; /* borrowed: valid until tn_archive_close */
	uint64_t size;	  /* declared uncompressed size; 0 for directories */
	bool is_dir;
	bool is_exec; /* a file whose Unix mode has an exec bit */
};

/* Opens the zip at path and validates every entry against lim (NULL: the
 * defaults): names, types, duplicates, count, declared sizes and ratios,
 * compression method, encryption.  Each hostile shape fails with its own
 * TN_E_ARCHIVE_* code (malformed names that are not traversals or absolute
 * paths, encryption and unsupported methods: TN_E_INVALID) and a message
 * naming the entry.  On success *out is the caller's, freed with
 * tn_archive_close; lim is copied. */
int tn_archive_open(const char *path, const struct tn_archive_limits *lim, struct tn_archive **out,
		    struct tn_error *err) TN_MUST_CHECK;

/* Frees ar (NULL is fine). */
void tn_archive_close(struct tn_archive *ar);

/* Number of entries, and entry i (NULL when i is out of range); borrowed. */
size_t tn_archive_entry_count(const struct tn_archive *ar);
const struct tn_archive_entry *tn_archive_entry(const struct tn_archive *ar, size_t i);

/* The entry named exactly name (a directory with its trailing '/'), or
 * NULL; borrowed. */
const struct tn_archive_entry *tn_archive_find(const struct tn_archive *ar, const char *name);

/* Reads the file entry name into memory, refusing more than max_bytes of
 * real output (TN_E_ARCHIVE_TOO_LARGE).  *out is caller-freed and
 * NUL-terminated (the NUL is not counted in *len).  TN_E_NOT_FOUND when
 * there is no such entry, TN_E_INVALID for a directory, and
 * TN_E_ARCHIVE_CORRUPT for bad data (truncated stream, CRC mismatch). */
int tn_archive_read_entry(struct tn_archive *ar, const char *name, size_t max_bytes, char **out,
			  size_t *len, struct tn_error *err) TN_MUST_CHECK;

/* Reads every file entry's data to its end without keeping it: the real
 * sizes against the declared ones and the limits, the deflate streams and
 * the CRCs, as extraction would (the same codes and messages).  For a
 * server that keeps an archive it does not extract, so that a zip bomb or
 * a corrupt entry is refused at upload rather than found on the nodes. */
int tn_archive_verify(struct tn_archive *ar, struct tn_error *err) TN_MUST_CHECK;

/* Extracts every entry into dest_dir (no trailing '/'), which must not
 * exist (TN_E_EXISTS) and whose parent must.  Works in a fresh
 * "dest_dir.tmp-XXXXXX" beside it, counts the real bytes against the
 * limits, checks each CRC, fsyncs, and renames it into place only when
 * everything passed.  On failure nothing is left behind: neither dest_dir
 * nor the staging directory. */
int tn_archive_extract(struct tn_archive *ar, const char *dest_dir,
		       struct tn_error *err) TN_MUST_CHECK;

#endif
