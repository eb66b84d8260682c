/* blobstore.h - content-addressed blob files under DATA/blobs/sha256/ab/abcdef...
 * Uploads are streamed into DATA/blobs/tmp/, hashed as they arrive, and renamed to
 * their address only once complete and fsynced: a blob is never visible half-written.
 *
 * Concurrency and the garbage-collection race
 * -------------------------------------------
 * Which blobs are live is known only to the database (bundle rows name their sha256).
 * A blob is committed into the tree a moment before the row that references it is
 * inserted; a collector running between the two would see it unreferenced and delete
 * it, leaving a row that names a missing blob.  So:
 *   - an upload holds tn_blobstore_lock(bs, TN_BLOBSTORE_SHARED) from just before
 *     tn_blob_writer_commit until its row is inserted (or the insert failed);
 *   - tn_blobstore_gc takes the lock exclusively itself, for its whole walk; so must
 *     any caller of tn_blob_remove that decides on references.
 * The lock is a writer-preferring pthread rwlock, not recursive: never take it twice
 * in one thread, and never call tn_blobstore_gc while holding it.
 * Streaming bytes into a writer (begin/write/flush) needs no lock: temp files live
 * outside the sha256 tree and the collector never looks at them.
 * A download that resolved a hash before its bundle was deleted may find the blob
 * gone (TN_E_NOT_FOUND) once gc has run; one that already has the fd keeps reading. */
#ifndef TN_BLOBSTORE_H
#define TN_BLOBSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define TN_BLOB_HEX_LEN 64 /* lowercase sha256; buffers need one more byte for the NUL */

struct tn_blobstore;
struct tn_blob_writer;

/* Creates DATA/blobs/{sha256,tmp} when missing, and removes what a crash left in
 * DATA/blobs/tmp (unfinished uploads).  Call once per data directory, before any
 * upload starts: a second opener of a live directory would delete the first one's
 * uploads in progress.  *out is freed with tn_blobstore_close. */
int tn_blobstore_open(const char *data_dir, struct tn_blobstore **out,
		      struct tn_error *err) TN_MUST_CHECK;

/* Frees bs (NULL is fine).  Every writer must be committed or aborted first. */
void tn_blobstore_close(struct tn_blobstore *bs);

/* FOR BENCHMARKS ONLY: false turns off every fsync (the file's and the directory's
 * at commit), so a committed blob may be lost or truncated by a power cut while its
 * row survives.  Default true.  Set it before any writer begins. */
void tn_blobstore_set_fsync(struct tn_blobstore *bs, bool enabled);

enum tn_blobstore_lock_mode { TN_BLOBSTORE_SHARED, TN_BLOBSTORE_EXCLUSIVE };

/* See "Concurrency" above.  Blocks until the lock is held. */
void tn_blobstore_lock(struct tn_blobstore *bs, enum tn_blobstore_lock_mode mode);
void tn_blobstore_unlock(struct tn_blobstore *bs);

/* ---- streaming writer ---- */

/* Starts an upload into a new DATA/blobs/tmp/upload-XXXXXX (created O_EXCL, mode
 * 0644).  At most max_bytes may be written (UINT64_MAX: no cap).  *out must end in
 * exactly one tn_blob_writer_commit or tn_blob_writer_abort, which free it. */
int tn_blob_writer_begin(struct tn_blobstore *bs, uint64_t max_bytes, struct tn_blob_writer **out,
			 struct tn_error *err) TN_MUST_CHECK;

/* Appends len bytes (borrowed; not kept after the call) and hashes them.
 * TN_E_TOO_LARGE when the total would pass max_bytes, checked before anything is
 * written.  After any failure the writer is spoiled: its commit fails, so abort it. */
int tn_blob_writer_write(struct tn_blob_writer *w, const void *data, size_t len,
			 struct tn_error *err) TN_MUST_CHECK;

/* Small writes are gathered in a buffer (a write(2) per few KiB costs as much as the
 * hashing); this pushes them to the file so that it holds every byte written so
 * far.  Call it before reading the file through tn_blob_writer_path. */
int tn_blob_writer_flush(struct tn_blob_writer *w, struct tn_error *err) TN_MUST_CHECK;

/* The temp file's path (borrowed, valid until commit or abort), so a caller can
 * inspect what was uploaded (e.g. open the zip) before deciding to commit.  Only
 * read it: its bytes were hashed on the way in and must not change. */
const char *tn_blob_writer_path(const struct tn_blob_writer *w);

/* Bytes written so far. */
uint64_t tn_blob_writer_size(const struct tn_blob_writer *w);

/* Finishes the hash; when expected_hex is not NULL it must be 64 lowercase hex
 * digits (TN_E_INVALID) and equal the hash (TN_E_SIGNATURE).  Then fsyncs the file,
 * renames it to its address and fsyncs that directory.  A regular file of the same
 * size already at the address is kept and the temp file dropped (same address, same
 * bytes).  out_hex (may be NULL) receives the hash and *out_size (may be NULL) the
 * size.  Always frees w; on failure the temp file is removed and nothing new is at
 * the address, except when only the final directory fsync failed (the blob then stays:
 * right bytes, unreferenced, left to gc).  Hold the shared lock across this and the
 * row insert (see above). */
int tn_blob_writer_commit(struct tn_blob_writer *w, const char *expected_hex,
			  char out_hex[TN_BLOB_HEX_LEN + 1], uint64_t *out_size,
			  struct tn_error *err) TN_MUST_CHECK;

/* Removes the temp file and frees w (NULL is fine). */
void tn_blob_writer_abort(struct tn_blob_writer *w);

/* ---- blobs by address ---- */

/* true when hex is exactly 64 lowercase hex digits. */
bool tn_blob_hex_valid(const char *hex);

/* DATA/blobs/sha256/ab/abcd... for hex, whether or not it exists; TN_E_INVALID when
 * hex is not 64 lowercase hex digits.  *out is caller-freed. */
int tn_blob_path(const struct tn_blobstore *bs, const char *hex, char **out,
		 struct tn_error *err) TN_MUST_CHECK;

/* true when a regular file is at hex's address (false too for an invalid hex). */
bool tn_blob_exists(const struct tn_blobstore *bs, const char *hex);

/* Opens the blob read-only (O_CLOEXEC, never through a symlink), for sendfile.
 * *fd is the caller's to close; *size (may be NULL) is its length.  TN_E_NOT_FOUND
 * when absent, TN_E_INVALID for a bad hex. */
int tn_blob_open(const struct tn_blobstore *bs, const char *hex, int *fd, uint64_t *size,
		 struct tn_error *err) TN_MUST_CHECK;

/* Unlinks the blob; TN_E_NOT_FOUND when absent.  Deciding that it is unreferenced
 * and removing it must happen under the exclusive lock (see above). */
int tn_blob_remove(const struct tn_blobstore *bs, const char *hex,
		   struct tn_error *err) TN_MUST_CHECK;

/* ---- garbage collection ---- */

/* Answers whether a blob is still referenced: > 0 yes, 0 no, < 0 could not tell (with
 * err filled), which stops the collection: an unknown answer never deletes. */
typedef int (*tn_blob_referenced_fn)(void *ctx, const char *hex, struct tn_error *err);

/* Takes the exclusive lock, walks DATA/blobs/sha256/xx/ and removes every blob the
 * callback calls unreferenced.  Only the two levels of the tree are visited; entries
 * that are not directories named by two hex digits, or not regular files named by
 * their 64-digit hash under the matching directory, are skipped and never followed.
 * *removed_count and *removed_bytes (either may be NULL) count what was removed, also
 * when it stops on an error.  The callback must not take the blobstore lock. */
int tn_blobstore_gc(struct tn_blobstore *bs, tn_blob_referenced_fn is_referenced, void *ctx,
		    uint64_t *removed_count, uint64_t *removed_bytes,
		    struct tn_error *err) TN_MUST_CHECK;

#endif
