/* janitor.h - housekeeping in a worker thread: the blob garbage collector
 * runs at start and then every interval, removing blobs no bundle
 * references (left by a crash between a blob's commit and its row, or by
 * a refused ingest that could not clean up). */
#ifndef TN_JANITOR_H
#define TN_JANITOR_H

#include "error.h"

struct tn_server;
struct tn_janitor;

/* One collection now (in the calling thread); returns its error. */
int tn_janitor_collect(struct tn_server *srv, struct tn_error *err) TN_MUST_CHECK;
/* Starts the thread; interval_s between collections. */
struct tn_janitor *tn_janitor_start(struct tn_server *srv, unsigned interval_s);
/* Stops and joins the thread (NULL is a no-op). */
void tn_janitor_stop(struct tn_janitor *j);

#endif
