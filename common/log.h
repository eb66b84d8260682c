/* log.h - one line per event, to stderr:
 *     level component event=NAME key=value ...
 * or, after tn_log_set_json(true), one JSON object per line with the same
 * fields plus "ts".  Fields are given as a jansson json_pack() format for an
 * object, so types are kept in JSON output:
 *     tn_log(TN_LOG_INFO, "store", "opened", "{s:s, s:I}", "path", p, "size", n);
 * A NULL format means no fields. */
#ifndef TN_LOG_H
#define TN_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum tn_log_level { TN_LOG_DEBUG, TN_LOG_INFO, TN_LOG_WARN, TN_LOG_ERROR };

void tn_log(enum tn_log_level level, const char *component, const char *event,
	    const char *fields_fmt, ...);

/* Messages below this level are dropped (default: info). */
void tn_log_set_level(enum tn_log_level level);
void tn_log_set_json(bool json);
/* Where lines go (default stderr); borrowed, for tests. */
void tn_log_set_stream(FILE *stream);

/* Parses "debug", "info", "warn", "error"; -1 for anything else. */
int tn_log_level_parse(const char *name);

#endif
