/* api.h - requests to the Tender API as the commands of `tender` make them,
 * each ending in the exit status it earns: 0 for a 2xx, 1 for a refusal
 * (the server's message printed as is), 3 when the server cannot be
 * reached; lists followed through their `next` cursors; and the answer a
 * server gives to an endpoint it does not have yet turned into a plain
 * "this server does not support ... yet". */
#ifndef TN_CLI_API_H
#define TN_CLI_API_H

#include <jansson.h>
#include <stdbool.h>

#include "cli.h"
#include "http.h"

/* The session's HTTP client, made at the first call; borrowed. */
struct cli_http *cli_api_http(struct cli *cli);

/* Flags of cli_api_do. */
#define CLI_API_NEWER 1u /* the endpoint may be missing: say so plainly */

/* Performs method path with body (NULL, a JSON value, or a file: see
 * cli_body) and checks the answer.  On 2xx: CLI_EXIT_OK and, when out is
 * not NULL, *out the answer's JSON (NULL for an empty body; caller
 * decrefs).  Otherwise the reason is printed and the exit status
 * returned.  what names the command for CLI_API_NEWER's message
 * ("target copy").  status (may be NULL) receives the HTTP status. */
int cli_api_do(struct cli *cli, const char *method, const char *path, const struct cli_body *body,
	       unsigned flags, const char *what, long *status, json_t **out);

/* Shorthands: a request with an optional JSON body (borrowed). */
int cli_api(struct cli *cli, const char *method, const char *path, json_t *body, json_t **out);
int cli_api_newer(struct cli *cli, const char *what, const char *method, const char *path,
		  json_t *body, json_t **out);

/* GETs a list from after `after` (a cursor, or NULL for the start) and
 * follows `next` until the end, or until `limit` items when limit > 0.
 * *out is {"items": [...], "next": cursor|null} with every item fetched
 * (next is where a later call would go on); caller decrefs.  newer: NULL,
 * or the command's name when the endpoint may be missing (CLI_API_NEWER). */
int cli_api_list(struct cli *cli, const char *path, const char *after, long limit,
		 const char *newer, json_t **out);

/* A path from fmt whose every %s (the only conversion allowed) is
 * percent-encoded: cli_path("/api/v1/bundles/%s/%s", name, version).
 * Caller frees. */
char *cli_path(const char *fmt, ...);

/* Appends "?key=value" (or "&key=value") to *path when value is not NULL,
 * the value percent-encoded; *path is reallocated. */
void cli_query(char **path, const char *key, const char *value);

#endif
