/* store.c - the server's SQLite database: schema and its migrations, one
 * connection per thread with its own cache of prepared statements, and the
 * functions of store.h.  All of the server's SQL lives in this file.
 *
 * Schema (migrations 1 to 5; times are RFC 3339 UTC text, which sorts by
 * time; JSON columns hold canonical JSON text, keys sorted, so equal values
 * are equal strings):
 *
 *   bundles(id, name, version, major, minor, micro, qualifier, sha256, size,
 *           manifest, created, created_by)
 *       UNIQUE(name, major, minor, micro, qualifier): versions are stored as
 *       their OSGi parts (qualifier '' when absent, which sorts first) so
 *       lists ORDER BY them; `version` is the canonical text derived from the
 *       parts, hence unique per name as well.
 *   distributions(id, name, version, major, minor, micro, qualifier, config,
 *           created, created_by)   UNIQUE(name, major, minor, micro, qualifier)
 *   distribution_bundles(distribution_id CASCADE, bundle_id RESTRICT, position)
 *       position keeps the order the uploader gave.
 *   clusters(id, name UNIQUE, description, provider, lb, current_revision_id,
 *           created, updated)
 *   cluster_revisions(id, cluster_id CASCADE, number, distribution_id RESTRICT,
 *           config, created, created_by)   UNIQUE(cluster_id, number)
 *   targets(seq, id 't-...' UNIQUE, cluster_id CASCADE, provider, instance,
 *           address, state, phase, health, generation, desired_release,
 *           actual_release, last_result, last_message, last_seen, inventory,
 *           config, token_hash UNIQUE, created, updated,
 *           [2] run_release, prepare_release, doc_body, doc_sig, doc_etag,
 *           bundles, logs, agent_port, [3] serves_port)
 *       seq (the rowid) gives lists their creation order; ids are random.
 *       token_hash is the sha256 of the agent's token (NULL: not enrolled,
 *       or revoked).  The desired document (DESIGN §2) is generation,
 *       run_release and prepare_release (RELEASE json or NULL), the lifecycle
 *       state, and the signed body exactly as served with its signature and
 *       etag; desired_release is run_release's id, kept for lists and
 *       counts.  bundles is the json array the agent last reported, logs a
 *       json object {bundle: log tail}, merged report by report; agent_port
 *       is its agent-check port (NULL: unknown), serves_port the port its
 *       running release serves on, as the agent reported it (NULL: none
 *       yet): the load balancer's member is address:serves_port.
 *   rollouts(seq, id 'r-...' UNIQUE, cluster_id CASCADE, from_revision_id,
 *           to_revision_id, state, strategy, created_by, created, updated)
 *       [2] at most one active (pending_approval, running, paused) per
 *       cluster: a partial unique index holds that, the functions name the
 *       rollout in the way first.
 *   rollout_targets(rollout_id CASCADE, target_id CASCADE, batch, state, message,
 *           [2] from_release, to_release, [4] switched_at, finished_at, prepared)
 *       RELEASE json of each side; state pending, switching, succeeded,
 *       failed, reverted (switched back by a halt or an abort) or skipped
 *       (never switched); switched_at the Unix time in ms its document was
 *       switched (the health timeout runs from it), finished_at when its
 *       result (succeeded or failed) came; prepared 1 once the
 *       agent staged to_release.
 *   rollout_approvals(id, rollout_id CASCADE, approved_by, at, batch)
 *   enrollment_tokens(id, token_hash UNIQUE, cluster_id CASCADE, target_id
 *           CASCADE, uses_left, expires, created_by, created)
 *       uses_left -1: revoked by an operator (0 is used up).
 *   api_tokens(name PRIMARY KEY, token_hash UNIQUE, role, expires, created,
 *           created_by, revoked_at)
 *   webhooks(seq, id 'w-...' UNIQUE, url, events, created, created_by,
 *           [5] since_event, delivered, failed)
 *       events is the json array of patterns; a webhook receives the events
 *       whose id is above since_event (the last one when it was made).
 *       delivered and failed count its finished deliveries, also those
 *       pruned since.
 *   [5] webhook_deliveries(id, webhook_id CASCADE, event_id, event, state,
 *           attempts, due_ms, last_ms, status, error, created)
 *       UNIQUE(webhook_id, event_id).  state: pending, delivered, failed.
 *       due_ms (ms since the Unix epoch) is when a pending one is tried
 *       next, last_ms when it was last tried or ended; status and error are
 *       those of the last attempt.  Finished rows beyond a webhook's newest
 *       few are pruned.
 *   [5] webhook_attempts(delivery_id CASCADE, number, at, status, error,
 *           duration_ms)   one row per attempt of a delivery.
 *   [5] webhook_scan(id = 1, last_event): the last event matched against
 *       the webhooks; the worker goes on from there after a restart.
 *   events(id AUTOINCREMENT, at, actor, action, object_type, object_id,
 *           outcome, detail)   AUTOINCREMENT: an id is never reused, even
 *       after the newest rows are gone, so SSE readers never miss one.
 *
 * References between revisions and rollouts are NO ACTION (checked at the
 * end of the statement), not RESTRICT (checked at once), so that deleting a
 * cluster may cascade through all of them in one statement. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "xalloc.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
/* enrollment_tokens.uses_left of a revoked token. */
#define ENROLL_REVOKED -1

/* How long a connection waits for another's write lock before giving up
 * with TN_E_UNAVAILABLE.  Transactions here are short; 5 s is a stuck one. */
#define BUSY_TIMEOUT_MS 5000
/* SQLite's memory, all connections together (mostly page caches). */
#define STORE_CACHE_TOTAL (4ll << 20)
/* Cursors are small; anything longer is not one of ours. */
#define CURSOR_MAX 4096

/* ------------------------------------------------------------ schema */

/* Each entry moves the schema from version i to i + 1 (PRAGMA user_version).
 * Entries are never edited once released: a change is a new entry. */
/* SQL is laid out as SQL, not as C. */
/* clang-format off */
static const char *const migrations[] = {
	/* 1: everything of DESIGN §2 */
	"CREATE TABLE bundles ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  version TEXT NOT NULL,"
	"  major INTEGER NOT NULL, minor INTEGER NOT NULL, micro INTEGER NOT NULL,"
	"  qualifier TEXT NOT NULL DEFAULT '',"
	"  sha256 TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  manifest TEXT NOT NULL,"
	"  created TEXT NOT NULL,"
	"  created_by TEXT NOT NULL,"
	"  UNIQUE (name, major, minor, micro, qualifier));"
	"CREATE INDEX bundles_sha256 ON bundles(sha256);"

	"CREATE TABLE distributions ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  version TEXT NOT NULL,"
	"  major INTEGER NOT NULL, minor INTEGER NOT NULL, micro INTEGER NOT NULL,"
	"  qualifier TEXT NOT NULL DEFAULT '',"
	"  config TEXT NOT NULL,"
	"  created TEXT NOT NULL,"
	"  created_by TEXT NOT NULL,"
	"  UNIQUE (name, major, minor, micro, qualifier));"

	"CREATE TABLE distribution_bundles ("
	"  distribution_id INTEGER NOT NULL REFERENCES distributions(id) ON DELETE CASCADE,"
	"  bundle_id INTEGER NOT NULL REFERENCES bundles(id) ON DELETE RESTRICT,"
	"  position INTEGER NOT NULL,"
	"  PRIMARY KEY (distribution_id, bundle_id)) WITHOUT ROWID;"
	"CREATE INDEX distribution_bundles_bundle ON distribution_bundles(bundle_id);"

	"CREATE TABLE clusters ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  description TEXT NOT NULL DEFAULT '',"
	"  provider TEXT,"
	"  lb TEXT,"
	"  current_revision_id INTEGER REFERENCES cluster_revisions(id),"
	"  created TEXT NOT NULL,"
	"  updated TEXT NOT NULL);"
	"CREATE INDEX clusters_current_revision ON clusters(current_revision_id);"

	"CREATE TABLE cluster_revisions ("
	"  id INTEGER PRIMARY KEY,"
	"  cluster_id INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,"
	"  number INTEGER NOT NULL,"
	"  distribution_id INTEGER REFERENCES distributions(id) ON DELETE RESTRICT,"
	"  config TEXT NOT NULL,"
	"  created TEXT NOT NULL,"
	"  created_by TEXT NOT NULL,"
	"  UNIQUE (cluster_id, number));"
	"CREATE INDEX cluster_revisions_distribution ON cluster_revisions(distribution_id);"

	"CREATE TABLE targets ("
	"  seq INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  cluster_id INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,"
	"  provider TEXT,"
	"  instance TEXT,"
	"  address TEXT,"
	"  state TEXT NOT NULL,"
	"  phase TEXT NOT NULL DEFAULT 'idle',"
	"  health TEXT NOT NULL DEFAULT 'unknown',"
	"  generation INTEGER NOT NULL DEFAULT 0,"
	"  desired_release TEXT,"
	"  actual_release TEXT,"
	"  last_result TEXT,"
	"  last_message TEXT,"
	"  last_seen TEXT,"
	"  inventory TEXT,"
	"  config TEXT NOT NULL DEFAULT '{}',"
	"  token_hash TEXT UNIQUE,"
	"  created TEXT NOT NULL,"
	"  updated TEXT NOT NULL);"
	"CREATE INDEX targets_cluster_state ON targets(cluster_id, state);"

	"CREATE TABLE rollouts ("
	"  seq INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  cluster_id INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,"
	"  from_revision_id INTEGER REFERENCES cluster_revisions(id),"
	"  to_revision_id INTEGER NOT NULL REFERENCES cluster_revisions(id),"
	"  state TEXT NOT NULL,"
	"  strategy TEXT NOT NULL,"
	"  created_by TEXT NOT NULL,"
	"  created TEXT NOT NULL,"
	"  updated TEXT NOT NULL);"
	"CREATE INDEX rollouts_cluster ON rollouts(cluster_id, state);"
	"CREATE INDEX rollouts_from ON rollouts(from_revision_id);"
	"CREATE INDEX rollouts_to ON rollouts(to_revision_id);"

	"CREATE TABLE rollout_targets ("
	"  rollout_id TEXT NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,"
	"  target_id TEXT NOT NULL REFERENCES targets(id) ON DELETE CASCADE,"
	"  batch INTEGER NOT NULL,"
	"  state TEXT NOT NULL,"
	"  message TEXT,"
	"  PRIMARY KEY (rollout_id, target_id)) WITHOUT ROWID;"
	"CREATE INDEX rollout_targets_target ON rollout_targets(target_id);"

	"CREATE TABLE rollout_approvals ("
	"  id INTEGER PRIMARY KEY,"
	"  rollout_id TEXT NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,"
	"  approved_by TEXT NOT NULL,"
	"  at TEXT NOT NULL,"
	"  batch INTEGER);"
	"CREATE INDEX rollout_approvals_rollout ON rollout_approvals(rollout_id);"

	"CREATE TABLE enrollment_tokens ("
	"  id INTEGER PRIMARY KEY,"
	"  token_hash TEXT NOT NULL UNIQUE,"
	"  cluster_id INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,"
	"  target_id TEXT REFERENCES targets(id) ON DELETE CASCADE,"
	"  uses_left INTEGER NOT NULL,"
	"  expires TEXT NOT NULL,"
	"  created_by TEXT NOT NULL,"
	"  created TEXT NOT NULL);"
	"CREATE INDEX enrollment_tokens_cluster ON enrollment_tokens(cluster_id);"
	"CREATE INDEX enrollment_tokens_target ON enrollment_tokens(target_id);"

	"CREATE TABLE api_tokens ("
	"  name TEXT PRIMARY KEY,"
	"  token_hash TEXT NOT NULL UNIQUE,"
	"  role TEXT NOT NULL,"
	"  expires TEXT,"
	"  created TEXT NOT NULL,"
	"  created_by TEXT NOT NULL,"
	"  revoked_at TEXT);"

	"CREATE TABLE webhooks ("
	"  seq INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  url TEXT NOT NULL,"
	"  events TEXT NOT NULL,"
	"  created TEXT NOT NULL,"
	"  created_by TEXT NOT NULL);"

	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  at TEXT NOT NULL,"
	"  actor TEXT NOT NULL,"
	"  action TEXT NOT NULL,"
	"  object_type TEXT,"
	"  object_id TEXT,"
	"  outcome TEXT,"
	"  detail TEXT);",

	/* 2: what agents and a minimal rollout need */
	"ALTER TABLE targets ADD COLUMN run_release TEXT;"
	"ALTER TABLE targets ADD COLUMN prepare_release TEXT;"
	"ALTER TABLE targets ADD COLUMN doc_body TEXT;"
	"ALTER TABLE targets ADD COLUMN doc_sig TEXT;"
	"ALTER TABLE targets ADD COLUMN doc_etag TEXT;"
	"ALTER TABLE targets ADD COLUMN bundles TEXT;"
	"ALTER TABLE targets ADD COLUMN logs TEXT;"
	"ALTER TABLE targets ADD COLUMN agent_port INTEGER;"
	"ALTER TABLE rollout_targets ADD COLUMN from_release TEXT;"
	"ALTER TABLE rollout_targets ADD COLUMN to_release TEXT;"
	"CREATE UNIQUE INDEX rollouts_one_active ON rollouts(cluster_id)"
	"  WHERE state IN ('pending_approval', 'running', 'paused');"
	"CREATE INDEX rollouts_cluster_seq ON rollouts(cluster_id, seq);",
	/* 3: where the load balancer sends a target's traffic */
	"ALTER TABLE targets ADD COLUMN serves_port INTEGER;",
	/* 4: the rollout orchestrator */
	"ALTER TABLE rollout_targets ADD COLUMN switched_at INTEGER;"
	"ALTER TABLE rollout_targets ADD COLUMN finished_at INTEGER;"
	"ALTER TABLE rollout_targets ADD COLUMN prepared INTEGER NOT NULL DEFAULT 0;",
	/* 5: webhook deliveries, their attempts, and how far events were matched */
	"ALTER TABLE webhooks ADD COLUMN since_event INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE webhooks ADD COLUMN delivered INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE webhooks ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE webhook_deliveries ("
	"  id INTEGER PRIMARY KEY,"
	"  webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,"
	"  event_id INTEGER NOT NULL,"
	"  event TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  due_ms INTEGER NOT NULL,"
	"  last_ms INTEGER,"
	"  status INTEGER,"
	"  error TEXT,"
	"  created TEXT NOT NULL,"
	"  UNIQUE (webhook_id, event_id));"
	"CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id, state, id);"
	"CREATE INDEX webhook_deliveries_due ON webhook_deliveries(due_ms)"
	"  WHERE state = 'pending';"
	"CREATE TABLE webhook_attempts ("
	"  delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,"
	"  number INTEGER NOT NULL,"
	"  at TEXT NOT NULL,"
	"  status INTEGER,"
	"  error TEXT,"
	"  duration_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (delivery_id, number)) WITHOUT ROWID;"
	"CREATE TABLE webhook_scan ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  last_event INTEGER NOT NULL);"
	"INSERT INTO webhook_scan (id, last_event) SELECT 1, coalesce(max(id), 0) FROM events;",
};

/* clang-format on */

int tn_store_schema_version(void)
{
	return (int)COUNT_OF(migrations);
}

/* ------------------------------------------------------------ statements */

/* Every statement the store runs, prepared once per connection on first use.
 * A list's "after" cursor is bound as the sort key of the last row shown;
 * the first page binds a key below every row ('' and -1), so one statement
 * serves both and the index is always usable. */
enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,

	ST_BUNDLE_FIND,
	ST_BUNDLE_INSERT,
	ST_BUNDLE_GET,
	ST_BUNDLE_LIST,
	ST_BUNDLE_LIST_NAME,
	ST_BUNDLE_USER,
	ST_BUNDLE_DELETE,
	ST_BLOB_REFERENCED,
	ST_BUNDLE_COUNT,

	ST_DIST_FIND,
	ST_DIST_INSERT,
	ST_DIST_BUNDLE_IDS,
	ST_DIST_BUNDLE_INSERT,
	ST_DIST_GET,
	ST_DIST_BUNDLES,
	ST_DIST_LIST,
	ST_DIST_LIST_NAME,
	ST_DIST_CURRENT_USER,
	ST_DIST_ROLLOUT_USER,
	ST_DIST_REVISION_USER,
	ST_DIST_DELETE,
	ST_DIST_COUNT,

	ST_CLUSTER_ID,
	ST_CLUSTER_INSERT,
	ST_REVISION_INSERT,
	ST_CLUSTER_SET_REVISION,
	ST_CLUSTER_GET,
	ST_CLUSTER_LIST,
	ST_CLUSTER_STATE_COUNTS,
	ST_CLUSTER_RELEASE_COUNTS,
	ST_CLUSTER_PATCH,
	ST_CLUSTER_LIVE_TARGETS,
	ST_CLUSTER_DELETE,
	ST_CLUSTER_COUNT,

	ST_TARGET_INSERT,
	ST_TARGET_GET,
	ST_TARGET_LIST,
	ST_TARGET_STATE_COUNTS,

	ST_TOKEN_DELETE_REVOKED,
	ST_TOKEN_INSERT,
	ST_TOKEN_LIST,
	ST_TOKEN_REVOKE,
	ST_TOKEN_EXISTS,
	ST_TOKEN_ACTIVE,

	ST_ENROLL_INSERT,

	ST_EVENT_INSERT,
	ST_EVENT_LIST,
	ST_EVENT_LAST,

	ST_TARGET_BY_TOKEN,
	ST_TARGET_REVOKE,
	ST_ENROLL_INSERT_BOUND,
	ST_ENROLL_FIND,
	ST_ENROLL_TARGET_STATE,
	ST_ENROLL_TARGET_SET,
	ST_ENROLL_USE,
	ST_ENROLL_REVOKE_FIND,
	ST_ENROLL_REVOKE,
	ST_DOC_GET,
	ST_DOC_PUT,
	ST_TARGET_GENERATION,
	ST_CLUSTER_TARGET_IDS,
	ST_TARGET_LOGS,
	ST_TARGET_UPDATE,
	ST_TARGET_SEEN,

	ST_ROLLOUT_ACTIVE,
	ST_REVISION_CURRENT,
	ST_ROLLOUT_INSERT,
	ST_TARGET_CLUSTER,
	ST_ROLLOUT_TARGET_INSERT,
	ST_ROLLOUT_GET,
	ST_ROLLOUT_LIST,
	ST_ROLLOUT_LIST_CLUSTER,
	ST_ROLLOUT_TARGETS,
	ST_ROLLOUT_APPROVALS,
	ST_ROLLOUT_SET_STATE,
	ST_ROLLOUT_FIND,
	ST_APPROVAL_INSERT,
	ST_ROLLOUT_TOUCH,
	ST_ROLLOUT_TARGET_SET,
	ST_ROLLOUT_FOR_TARGET,
	ST_ROLLOUT_TARGET_PREPARED,
	ST_ROLLOUT_IDS_ACTIVE,
	ST_ROLLOUT_CLUSTER_OF,
	ST_ROLLOUT_SUCCEEDED_REVISION,
	ST_REVISION_GET,

	ST_EVENT_GET,
	ST_WEBHOOK_INSERT,
	ST_WEBHOOK_GET,
	ST_WEBHOOK_LIST,
	ST_WEBHOOK_DELETE,
	ST_WEBHOOK_RECENT,
	ST_WEBHOOK_TRIES,
	ST_WEBHOOK_MATCHERS,
	ST_WEBHOOK_COUNT,
	ST_WEBHOOK_SCAN_GET,
	ST_WEBHOOK_SCAN_SET,
	ST_DELIVERY_INSERT,
	ST_DELIVERY_OVERFLOW,
	ST_DELIVERY_DUE,
	ST_DELIVERY_NEXT,
	ST_DELIVERY_FIND,
	ST_DELIVERY_SET,
	ST_DELIVERY_PRUNE,
	ST_ATTEMPT_INSERT,

	ST_COUNT
};

/* clang-format off */
#define VERSION_MATCH "major = ?2 AND minor = ?3 AND micro = ?4 AND qualifier = ?5"
#define BUNDLE_COLUMNS "name, version, sha256, size, created, created_by"
#define DIST_COLUMNS "id, name, version, config, created, created_by"
#define CLUSTER_SELECT                                                                             \
	"SELECT c.id, c.name, c.description, c.provider, c.lb, c.created, c.updated,"              \
	" r.number, d.name || '@' || d.version, r.config, r.created, r.created_by"                 \
	" FROM clusters c"                                                                         \
	" LEFT JOIN cluster_revisions r ON r.id = c.current_revision_id"                           \
	" LEFT JOIN distributions d ON d.id = r.distribution_id"
#define TARGET_SELECT                                                                              \
	"SELECT t.seq, t.id, c.name, t.provider, t.instance, t.address, t.state, t.phase,"         \
	" t.health, t.generation, t.desired_release, t.actual_release, t.last_result,"             \
	" t.last_message, t.last_seen, t.inventory, t.config, t.created, t.updated,"               \
	" t.bundles, t.agent_port, t.serves_port"                                                  \
	" FROM targets t JOIN clusters c ON c.id = t.cluster_id"
#define ACTIVE_ROLLOUT "('pending_approval', 'running', 'paused')"
#define ROLLOUT_SELECT                                                                             \
	"SELECT o.seq, o.id, c.name, fd.name || '@' || fd.version,"                               \
	" td.name || '@' || td.version, fr.number, tr.number, o.state, o.strategy,"                \
	" o.created_by, o.created, o.updated"                                                      \
	" FROM rollouts o JOIN clusters c ON c.id = o.cluster_id"                                  \
	" LEFT JOIN cluster_revisions fr ON fr.id = o.from_revision_id"                            \
	" LEFT JOIN distributions fd ON fd.id = fr.distribution_id"                                \
	" JOIN cluster_revisions tr ON tr.id = o.to_revision_id"                                   \
	" LEFT JOIN distributions td ON td.id = tr.distribution_id"

/* A webhook with its counts and its last delivery tried or ended. */
#define WEBHOOK_SELECT                                                                             \
	"SELECT w.seq, w.id, w.url, w.events, w.created, w.created_by, w.delivered, w.failed,"    \
	" (SELECT count(*) FROM webhook_deliveries p"                                              \
	" WHERE p.webhook_id = w.id AND p.state = 'pending'),"                                     \
	" l.event_id, l.event, l.state, l.status, l.last_ms, l.attempts, l.error"                  \
	" FROM webhooks w LEFT JOIN webhook_deliveries l ON l.id ="                                \
	" (SELECT id FROM webhook_deliveries x WHERE x.webhook_id = w.id"                          \
	" AND x.last_ms IS NOT NULL ORDER BY x.last_ms DESC, x.id DESC LIMIT 1)"

static const char *const statement_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT nested",
	[ST_RELEASE] = "RELEASE nested",
	[ST_ROLLBACK_TO] = "ROLLBACK TO nested",

	[ST_BUNDLE_FIND] = "SELECT id, sha256 FROM bundles WHERE name = ?1 AND " VERSION_MATCH,
	[ST_BUNDLE_INSERT] = "INSERT INTO bundles (name, major, minor, micro, qualifier, version,"
			     " sha256, size, manifest, created, created_by)"
			     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[ST_BUNDLE_GET] = "SELECT " BUNDLE_COLUMNS ", manifest FROM bundles"
			  " WHERE name = ?1 AND " VERSION_MATCH,
	[ST_BUNDLE_LIST] = "SELECT " BUNDLE_COLUMNS ", major, minor, micro, qualifier FROM bundles"
			   " WHERE (name, major, minor, micro, qualifier) > (?1, ?2, ?3, ?4, ?5)"
			   " ORDER BY name, major, minor, micro, qualifier LIMIT ?6",
	[ST_BUNDLE_LIST_NAME] = "SELECT " BUNDLE_COLUMNS ", major, minor, micro, qualifier"
				" FROM bundles WHERE name = ?7"
				" AND (name, major, minor, micro, qualifier) > (?1, ?2, ?3, ?4, ?5)"
				" ORDER BY name, major, minor, micro, qualifier LIMIT ?6",
	[ST_BUNDLE_USER] = "SELECT d.name, d.version, count(*) OVER ()"
			   " FROM distribution_bundles x JOIN distributions d"
			   " ON d.id = x.distribution_id WHERE x.bundle_id = ?1"
			   " ORDER BY d.name, d.major, d.minor, d.micro, d.qualifier LIMIT 1",
	[ST_BUNDLE_DELETE] = "DELETE FROM bundles WHERE id = ?1",
	[ST_BLOB_REFERENCED] = "SELECT 1 FROM bundles WHERE sha256 = ?1 LIMIT 1",
	[ST_BUNDLE_COUNT] = "SELECT count(*) FROM bundles",

	[ST_DIST_FIND] = "SELECT id, config FROM distributions WHERE name = ?1 AND " VERSION_MATCH,
	[ST_DIST_INSERT] = "INSERT INTO distributions (name, major, minor, micro, qualifier,"
			   " version, config, created, created_by)"
			   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[ST_DIST_BUNDLE_IDS] = "SELECT bundle_id FROM distribution_bundles"
			       " WHERE distribution_id = ?1 ORDER BY bundle_id",
	[ST_DIST_BUNDLE_INSERT] = "INSERT INTO distribution_bundles (distribution_id, bundle_id,"
				  " position) VALUES (?1, ?2, ?3)",
	[ST_DIST_GET] = "SELECT " DIST_COLUMNS " FROM distributions"
			" WHERE name = ?1 AND " VERSION_MATCH,
	[ST_DIST_BUNDLES] = "SELECT b.name, b.version, b.sha256, b.size"
			    " FROM distribution_bundles x JOIN bundles b ON b.id = x.bundle_id"
			    " WHERE x.distribution_id = ?1 ORDER BY x.position",
	[ST_DIST_LIST] = "SELECT " DIST_COLUMNS ", major, minor, micro, qualifier FROM distributions"
			 " WHERE (name, major, minor, micro, qualifier) > (?1, ?2, ?3, ?4, ?5)"
			 " ORDER BY name, major, minor, micro, qualifier LIMIT ?6",
	[ST_DIST_LIST_NAME] = "SELECT " DIST_COLUMNS ", major, minor, micro, qualifier"
			      " FROM distributions WHERE name = ?7"
			      " AND (name, major, minor, micro, qualifier) > (?1, ?2, ?3, ?4, ?5)"
			      " ORDER BY name, major, minor, micro, qualifier LIMIT ?6",
	[ST_DIST_CURRENT_USER] = "SELECT c.name, r.number FROM clusters c"
				 " JOIN cluster_revisions r ON r.id = c.current_revision_id"
				 " WHERE r.distribution_id = ?1 ORDER BY c.name LIMIT 1",
	[ST_DIST_ROLLOUT_USER] = "SELECT o.id, o.state, c.name FROM rollouts o"
				 " JOIN clusters c ON c.id = o.cluster_id"
				 " JOIN cluster_revisions r"
				 " ON r.id IN (o.to_revision_id, o.from_revision_id)"
				 " WHERE r.distribution_id = ?1 AND o.state IN " ACTIVE_ROLLOUT
				 " ORDER BY o.seq LIMIT 1",
	[ST_DIST_REVISION_USER] = "SELECT c.name, r.number FROM cluster_revisions r"
				  " JOIN clusters c ON c.id = r.cluster_id"
				  " WHERE r.distribution_id = ?1"
				  " ORDER BY c.name, r.number DESC LIMIT 1",
	[ST_DIST_DELETE] = "DELETE FROM distributions WHERE id = ?1",
	[ST_DIST_COUNT] = "SELECT count(*) FROM distributions",

	[ST_CLUSTER_ID] = "SELECT id FROM clusters WHERE name = ?1",
	[ST_CLUSTER_INSERT] = "INSERT INTO clusters (name, description, provider, lb, created,"
			      " updated) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
	[ST_REVISION_INSERT] = "INSERT INTO cluster_revisions (cluster_id, number,"
			       " distribution_id, config, created, created_by)"
			       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_CLUSTER_SET_REVISION] = "UPDATE clusters SET current_revision_id = ?2 WHERE id = ?1",
	[ST_CLUSTER_GET] = CLUSTER_SELECT " WHERE c.name = ?1",
	[ST_CLUSTER_LIST] = CLUSTER_SELECT " WHERE c.name > ?1 ORDER BY c.name LIMIT ?2",
	[ST_CLUSTER_STATE_COUNTS] = "SELECT state, count(*) FROM targets"
				    " WHERE cluster_id = ?1 AND state <> 'removed'"
				    " GROUP BY state ORDER BY state",
	[ST_CLUSTER_RELEASE_COUNTS] = "SELECT actual_release, count(*) FROM targets"
				      " WHERE cluster_id = ?1 AND state <> 'removed'"
				      " AND actual_release IS NOT NULL"
				      " GROUP BY actual_release ORDER BY actual_release",
	[ST_CLUSTER_PATCH] = "UPDATE clusters SET description = coalesce(?2, description),"
			     " provider = coalesce(?3, provider), lb = coalesce(?4, lb),"
			     " updated = ?5 WHERE name = ?1",
	[ST_CLUSTER_LIVE_TARGETS] = "SELECT count(*) FROM targets"
				    " WHERE cluster_id = ?1 AND state <> 'removed'",
	[ST_CLUSTER_DELETE] = "DELETE FROM clusters WHERE id = ?1",
	[ST_CLUSTER_COUNT] = "SELECT count(*) FROM clusters",

	[ST_TARGET_INSERT] = "INSERT INTO targets (id, cluster_id, provider, instance, address,"
			     " state, inventory, config, created, updated)"
			     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
	[ST_TARGET_GET] = TARGET_SELECT " WHERE t.id = ?1",
	[ST_TARGET_LIST] = TARGET_SELECT " WHERE t.seq > ?1 AND (?2 IS NULL OR c.name = ?2)"
					 " AND (?3 IS NULL OR t.state = ?3) ORDER BY t.seq LIMIT ?4",
	[ST_TARGET_STATE_COUNTS] = "SELECT state, count(*) FROM targets WHERE state <> 'removed'"
				   " GROUP BY state ORDER BY state",

	[ST_TOKEN_DELETE_REVOKED] = "DELETE FROM api_tokens WHERE name = ?1"
				    " AND revoked_at IS NOT NULL",
	[ST_TOKEN_INSERT] = "INSERT INTO api_tokens (name, token_hash, role, expires, created,"
			    " created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_TOKEN_LIST] = "SELECT name, role, expires, created, created_by, revoked_at"
			  " FROM api_tokens WHERE name > ?1 ORDER BY name LIMIT ?2",
	[ST_TOKEN_REVOKE] = "UPDATE api_tokens SET revoked_at = ?2"
			    " WHERE name = ?1 AND revoked_at IS NULL",
	[ST_TOKEN_EXISTS] = "SELECT 1 FROM api_tokens WHERE name = ?1",
	[ST_TOKEN_ACTIVE] = "SELECT name, token_hash, role, expires FROM api_tokens"
			    " WHERE revoked_at IS NULL AND (expires IS NULL OR expires > ?1)"
			    " ORDER BY name",

	[ST_ENROLL_INSERT] = "INSERT INTO enrollment_tokens (token_hash, cluster_id, uses_left,"
			     " expires, created_by, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",

	[ST_EVENT_INSERT] = "INSERT INTO events (at, actor, action, object_type, object_id,"
			    " outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_EVENT_LIST] = "SELECT id, at, actor, action, object_type, object_id, outcome, detail"
			  " FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
	[ST_EVENT_LAST] = "SELECT coalesce(max(id), 0) FROM events",

	[ST_TARGET_BY_TOKEN] = "SELECT id FROM targets WHERE token_hash = ?1"
			       " AND state <> 'removed'",
	[ST_TARGET_REVOKE] = "UPDATE targets SET token_hash = NULL, updated = ?2 WHERE id = ?1",
	[ST_ENROLL_INSERT_BOUND] = "INSERT INTO enrollment_tokens (token_hash, cluster_id,"
				   " target_id, uses_left, expires, created_by, created)"
				   " SELECT ?1, cluster_id, id, 1, ?3, ?4, ?5 FROM targets"
				   " WHERE id = ?2",
	[ST_ENROLL_FIND] = "SELECT id, cluster_id, target_id, uses_left, expires"
			   " FROM enrollment_tokens WHERE token_hash = ?1",
	[ST_ENROLL_TARGET_STATE] = "SELECT state FROM targets WHERE id = ?1",
	[ST_ENROLL_TARGET_SET] = "UPDATE targets SET token_hash = ?2,"
				 " inventory = coalesce(?3, inventory),"
				 " address = coalesce(?4, address),"
				 " agent_port = coalesce(?5, agent_port),"
				 " state = CASE state WHEN 'provisioning' THEN 'enrolled'"
				 " ELSE state END, last_seen = ?6, updated = ?6 WHERE id = ?1",
	[ST_ENROLL_USE] = "UPDATE enrollment_tokens SET uses_left = uses_left - 1 WHERE id = ?1",
	[ST_ENROLL_REVOKE_FIND] = "SELECT e.id, c.name FROM enrollment_tokens e"
				  " JOIN clusters c ON c.id = e.cluster_id"
				  " WHERE e.token_hash = ?1 AND e.target_id IS NULL",
	[ST_ENROLL_REVOKE] = "UPDATE enrollment_tokens SET uses_left = -1 WHERE id = ?1",
	[ST_DOC_GET] = "SELECT c.name, t.state, t.generation, t.run_release, t.prepare_release,"
		       " t.config, c.lb, t.doc_body, t.doc_sig, t.doc_etag, t.agent_port"
		       " FROM targets t JOIN clusters c ON c.id = t.cluster_id WHERE t.id = ?1",
	[ST_DOC_PUT] = "UPDATE targets SET generation = ?2 + 1, run_release = ?3,"
		       " prepare_release = ?4, desired_release = ?5, state = coalesce(?6, state),"
		       " doc_body = ?7, doc_sig = ?8, doc_etag = ?9, updated = ?10"
		       " WHERE id = ?1 AND generation = ?2",
	[ST_TARGET_GENERATION] = "SELECT generation FROM targets WHERE id = ?1",
	[ST_CLUSTER_TARGET_IDS] = "SELECT id FROM targets WHERE cluster_id = ?1"
				  " AND state <> 'removed' ORDER BY seq",
	[ST_TARGET_LOGS] = "SELECT logs FROM targets WHERE id = ?1",
	[ST_TARGET_UPDATE] = "UPDATE targets SET state = coalesce(?2, state),"
			     " phase = coalesce(?3, phase), health = coalesce(?4, health),"
			     " actual_release = coalesce(?5, actual_release),"
			     " last_result = coalesce(?6, last_result),"
			     " last_message = coalesce(?7, last_message),"
			     " bundles = coalesce(?8, bundles), logs = coalesce(?9, logs),"
			     " last_seen = CASE WHEN ?10 THEN ?11 ELSE last_seen END,"
			     " instance = coalesce(?12, instance),"
			     " address = coalesce(?13, address), config = coalesce(?14, config),"
			     " serves_port = coalesce(?15, serves_port),"
			     " updated = ?11 WHERE id = ?1",

	[ST_TARGET_SEEN] = "UPDATE targets SET last_seen = ?2, updated = ?2 WHERE id = ?1",
	[ST_ROLLOUT_ACTIVE] = "SELECT id, state FROM rollouts WHERE cluster_id = ?1"
			      " AND state IN " ACTIVE_ROLLOUT " ORDER BY seq LIMIT 1",
	[ST_REVISION_CURRENT] = "SELECT c.current_revision_id, r.distribution_id,"
				" (SELECT coalesce(max(number), 0) FROM cluster_revisions"
				" WHERE cluster_id = c.id)"
				" FROM clusters c"
				" LEFT JOIN cluster_revisions r ON r.id = c.current_revision_id"
				" WHERE c.id = ?1",
	[ST_ROLLOUT_INSERT] = "INSERT INTO rollouts (id, cluster_id, from_revision_id,"
			      " to_revision_id, state, strategy, created_by, created, updated)"
			      " VALUES (?1, ?2, ?3, ?4, 'pending_approval', ?5, ?6, ?7, ?7)",
	[ST_TARGET_CLUSTER] = "SELECT cluster_id FROM targets WHERE id = ?1",
	[ST_ROLLOUT_TARGET_INSERT] = "INSERT INTO rollout_targets (rollout_id, target_id, batch,"
				     " state, from_release, to_release)"
				     " VALUES (?1, ?2, ?5, 'pending', ?3, ?4)",
	[ST_ROLLOUT_GET] = ROLLOUT_SELECT " WHERE o.id = ?1",
	[ST_ROLLOUT_LIST] = ROLLOUT_SELECT " WHERE o.seq < ?1 ORDER BY o.seq DESC LIMIT ?2",
	[ST_ROLLOUT_LIST_CLUSTER] = ROLLOUT_SELECT " WHERE o.seq < ?1 AND o.cluster_id ="
						   " (SELECT id FROM clusters WHERE name = ?3)"
						   " ORDER BY o.seq DESC LIMIT ?2",
	[ST_ROLLOUT_TARGETS] = "SELECT x.batch, x.target_id, x.state, x.message, x.from_release,"
			       " x.to_release, x.switched_at, x.prepared, x.finished_at"
			       " FROM rollout_targets x"
			       " JOIN targets t ON t.id = x.target_id"
			       " WHERE x.rollout_id = ?1 ORDER BY x.batch, t.seq",
	[ST_ROLLOUT_APPROVALS] = "SELECT approved_by, at, batch FROM rollout_approvals"
				 " WHERE rollout_id = ?1 ORDER BY id",
	[ST_ROLLOUT_SET_STATE] = "UPDATE rollouts SET state = ?2, updated = ?3 WHERE id = ?1",
	[ST_ROLLOUT_FIND] = "SELECT cluster_id, to_revision_id, state FROM rollouts WHERE id = ?1",
	[ST_APPROVAL_INSERT] = "INSERT INTO rollout_approvals (rollout_id, approved_by, at, batch)"
			       " VALUES (?1, ?2, ?3, ?4)",
	[ST_ROLLOUT_TOUCH] = "UPDATE rollouts SET updated = ?2 WHERE id = ?1",
	[ST_ROLLOUT_TARGET_SET] = "UPDATE rollout_targets SET state = ?3, message = ?4,"
				  " switched_at = CASE WHEN ?3 = 'switching' THEN ?5"
				  " ELSE switched_at END,"
				  " finished_at = CASE WHEN ?3 IN ('succeeded', 'failed') THEN ?5"
				  " ELSE finished_at END"
				  " WHERE rollout_id = ?1 AND target_id = ?2",
	[ST_ROLLOUT_TARGET_PREPARED] = "UPDATE rollout_targets SET prepared = 1"
				       " WHERE rollout_id = ?1 AND target_id = ?2",
	[ST_ROLLOUT_IDS_ACTIVE] = "SELECT id FROM rollouts WHERE state IN ('running', 'paused')"
				  " ORDER BY seq",
	[ST_ROLLOUT_CLUSTER_OF] = "SELECT cluster_id, (SELECT name FROM clusters"
				  " WHERE id = rollouts.cluster_id) FROM rollouts WHERE id = ?1",
	[ST_ROLLOUT_SUCCEEDED_REVISION] = "UPDATE clusters SET current_revision_id ="
					  " (SELECT to_revision_id FROM rollouts WHERE id = ?1),"
					  " updated = ?2"
					  " WHERE id = (SELECT cluster_id FROM rollouts WHERE id = ?1)",
	[ST_REVISION_GET] = "SELECT r.number, d.name || '@' || d.version, r.config"
			    " FROM cluster_revisions r JOIN clusters c ON c.id = r.cluster_id"
			    " LEFT JOIN distributions d ON d.id = r.distribution_id"
			    " WHERE c.name = ?1 AND r.number = ?2",
	[ST_ROLLOUT_FOR_TARGET] = "SELECT o.id, o.state, x.state, x.from_release, x.to_release"
				  " FROM rollout_targets x JOIN rollouts o ON o.id = x.rollout_id"
				  " WHERE x.target_id = ?1 AND o.state IN " ACTIVE_ROLLOUT
				  " ORDER BY o.seq DESC LIMIT 1",

	[ST_EVENT_GET] = "SELECT id, at, actor, action, object_type, object_id, outcome, detail"
			 " FROM events WHERE id = ?1",
	/* A webhook hears what happens after it is made. */
	[ST_WEBHOOK_INSERT] = "INSERT INTO webhooks (id, url, events, created, created_by,"
			      " since_event) VALUES (?1, ?2, ?3, ?4, ?5,"
			      " (SELECT coalesce(max(id), 0) FROM events))",
	[ST_WEBHOOK_GET] = WEBHOOK_SELECT " WHERE w.id = ?1",
	[ST_WEBHOOK_LIST] = WEBHOOK_SELECT " WHERE w.seq > ?1 ORDER BY w.seq LIMIT ?2",
	[ST_WEBHOOK_DELETE] = "DELETE FROM webhooks WHERE id = ?1",
	[ST_WEBHOOK_RECENT] = "SELECT id, event_id, event, state, attempts, status, error, created,"
			      " last_ms, due_ms FROM webhook_deliveries WHERE webhook_id = ?1"
			      " ORDER BY id DESC LIMIT ?2",
	[ST_WEBHOOK_TRIES] = "SELECT number, at, status, error, duration_ms FROM webhook_attempts"
			     " WHERE delivery_id = ?1 ORDER BY number",
	[ST_WEBHOOK_MATCHERS] = "SELECT id, events, since_event FROM webhooks ORDER BY seq",
	[ST_WEBHOOK_COUNT] = "UPDATE webhooks SET delivered = delivered + ?2,"
			     " failed = failed + ?3 WHERE id = ?1",
	[ST_WEBHOOK_SCAN_GET] = "SELECT last_event FROM webhook_scan WHERE id = 1",
	[ST_WEBHOOK_SCAN_SET] = "UPDATE webhook_scan SET last_event = ?1"
				" WHERE id = 1 AND last_event < ?1",
	/* Nothing when the webhook is gone, or already has this event. */
	[ST_DELIVERY_INSERT] = "INSERT OR IGNORE INTO webhook_deliveries (webhook_id, event_id,"
			       " event, state, due_ms, created)"
			       " SELECT id, ?2, ?3, 'pending', ?4, ?5 FROM webhooks WHERE id = ?1",
	/* The oldest pending ones beyond the newest ?2 of a webhook. */
	[ST_DELIVERY_OVERFLOW] = "UPDATE webhook_deliveries SET state = 'failed',"
				 " error = 'queue full', last_ms = ?3"
				 " WHERE id IN (SELECT id FROM webhook_deliveries"
				 " WHERE webhook_id = ?1 AND state = 'pending'"
				 " ORDER BY id DESC LIMIT -1 OFFSET ?2)",
	/* Of each webhook, its pending delivery due first: one at a time
	 * per webhook keeps its events in order. */
	[ST_DELIVERY_DUE] = "SELECT d.id, d.webhook_id, w.url, d.event_id, d.event, d.attempts"
			    " FROM (SELECT id, webhook_id, event_id, event, attempts, due_ms,"
			    " row_number() OVER (PARTITION BY webhook_id ORDER BY due_ms, id) AS n"
			    " FROM webhook_deliveries WHERE state = 'pending' AND due_ms <= ?1) d"
			    " JOIN webhooks w ON w.id = d.webhook_id"
			    " WHERE d.n = 1 ORDER BY d.due_ms, d.id LIMIT ?2",
	[ST_DELIVERY_NEXT] = "SELECT min(due_ms) FROM webhook_deliveries"
			     " WHERE state = 'pending' AND due_ms > ?1",
	[ST_DELIVERY_FIND] = "SELECT webhook_id, attempts FROM webhook_deliveries"
			     " WHERE id = ?1 AND state = 'pending'",
	[ST_DELIVERY_SET] = "UPDATE webhook_deliveries SET state = ?2, attempts = ?3, status = ?4,"
			    " error = ?5, last_ms = ?6, due_ms = ?7 WHERE id = ?1",
	/* Finished deliveries beyond the newest ?2 of a webhook. */
	[ST_DELIVERY_PRUNE] = "DELETE FROM webhook_deliveries WHERE webhook_id = ?1"
			      " AND state <> 'pending' AND id NOT IN (SELECT id"
			      " FROM webhook_deliveries WHERE webhook_id = ?1 AND state <> 'pending'"
			      " ORDER BY id DESC LIMIT ?2)",
	[ST_ATTEMPT_INSERT] = "INSERT INTO webhook_attempts (delivery_id, number, at, status,"
			      " error, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
};

/* clang-format on */

/* ------------------------------------------------------------ connections */

/* One thread's connection to one store. */
struct conn {
	struct tn_store *store;
	sqlite3 *db;
	sqlite3_stmt *stmts[ST_COUNT];
	int bind_rc; /* the first failed bind since the last step, reported by step() */
	int tx_depth; /* transactions open: the outer one, then savepoints */
	struct conn *prev, *next;
};

struct tn_store {
	char *path;
	/* Each thread's struct conn for this store; the destructor closes it
	 * when the thread exits. */
	pthread_key_t key;
	/* Guards conns: every open connection, so tn_store_close can close
	 * those of threads that are still alive. */
	pthread_mutex_t lock;
	struct conn *conns;
};

static void conn_close(struct conn *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(c->stmts[i]);
	/* _v2: never fails; a forgotten statement would make it a zombie
	 * rather than leave the file open behind our back. */
	sqlite3_close_v2(c->db);
	free(c);
}

static void conn_unlink_locked(struct tn_store *store, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		store->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* pthread key destructor: the thread is exiting. */
static void conn_thread_exit(void *value)
{
	struct conn *c = value;
	struct tn_store *store = c->store;

	pthread_mutex_lock(&store->lock);
	conn_unlink_locked(store, c);
	pthread_mutex_unlock(&store->lock);
	conn_close(c);
}

/* Maps a SQLite result to our codes; the message names what was being done. */
static int db_fail_rc(sqlite3 *db, int rc, struct tn_error *err, const char *what)
{
	enum tn_errcode code = TN_E_INTERNAL;
	const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = TN_E_UNAVAILABLE;
		break;
	case SQLITE_FULL:
		code = TN_E_NO_SPACE;
		break;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_PERM:
		code = TN_E_IO;
		break;
	default:
		break;
	}
	tn_log(code == TN_E_UNAVAILABLE ? TN_LOG_WARN : TN_LOG_ERROR, "store", "sqlite_error",
	       "{s:s, s:i, s:s}", "what", what, "rc", rc, "message", msg);
	/* Nothing of the change was kept: the transaction rolls back whole. */
	if (code == TN_E_NO_SPACE)
		return tn_fail(err, code,
			       "no space left on the server's disk: database: %s: %s; nothing "
			       "was changed",
			       what, msg);
	return tn_fail(err, code, "database: %s: %s", what, msg);
}

static int db_fail(struct conn *c, int rc, struct tn_error *err, const char *what)
{
	return db_fail_rc(c->db, rc, err, what);
}

static int exec_sql(sqlite3 *db, const char *sql, struct tn_error *err, const char *what)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc == SQLITE_OK)
		return 0;
	rc = tn_fail(err, (rc & 0xff) == SQLITE_BUSY ? TN_E_UNAVAILABLE : TN_E_INTERNAL,
		     "database: %s: %s", what, msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return rc;
}

/* Opens one connection with the settings every connection needs.  WAL mode
 * is a property of the file (set once by tn_store_open); foreign keys and
 * the busy timeout are per connection.
 *
 * synchronous=FULL, not NORMAL: in WAL, NORMAL may lose the last commits on
 * power loss (never corrupts).  Here a lost commit is worse than a slow one:
 * a target's generation that went backwards makes its agent refuse every
 * later desired document as a replay, and a 201 the client saw must hold.
 * FULL costs one fsync of the WAL per commit. */
static int conn_open_db(const char *path, int flags, sqlite3 **out, struct tn_error *err)
{
	sqlite3 *db = NULL;
	int rc;
	int ret = 0;

	/* NOMUTEX: a connection is only ever used by its own thread. */
	rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		ret = tn_fail(err, TN_E_IO, "database %s: %s", path,
			      db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	/* cache_size: SQLite's default 2 MiB page cache re-reads a fleet's
	 * targets table from the file at every pass (a rollout of 10,000
	 * targets spent most of its time in pread); 16 MiB per connection,
	 * taken only as used, and all of them together held to
	 * STORE_CACHE_TOTAL (tn_store_open). */
	ret = exec_sql(db,
		       "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;"
		       " PRAGMA cache_size = -16384;",
		       err, "connection settings");
	if (ret)
		goto out;
	*out = db;
	db = NULL;
out:
	sqlite3_close_v2(db);
	return ret;
}

static struct conn *conn_register(struct tn_store *store, sqlite3 *db)
{
	struct conn *c = xcalloc(1, sizeof *c);

	c->store = store;
	c->db = db;
	pthread_mutex_lock(&store->lock);
	c->next = store->conns;
	if (c->next)
		c->next->prev = c;
	store->conns = c;
	pthread_mutex_unlock(&store->lock);
	pthread_setspecific(store->key, c);
	return c;
}

/* The calling thread's connection to store, opened on first use. */
static int conn_get(struct tn_store *store, struct conn **out, struct tn_error *err)
{
	struct conn *c = pthread_getspecific(store->key);
	sqlite3 *db = NULL;
	int ret;

	if (!c) {
		ret = conn_open_db(store->path, SQLITE_OPEN_READWRITE, &db, err);
		if (ret)
			return ret;
		c = conn_register(store, db);
	}
	*out = c;
	return 0;
}

/* The connection's prepared statement id; reset it with stmt_done. */
static int stmt_get(struct conn *c, enum stmt_id id, sqlite3_stmt **out, struct tn_error *err)
{
	int rc;

	if (!c->stmts[id]) {
		rc = sqlite3_prepare_v3(c->db, statement_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					&c->stmts[id], NULL);
		if (rc != SQLITE_OK)
			return db_fail(c, rc, err, "prepare");
	}
	/* A bind failure left by a use that never reached step() must not
	 * fail this one. */
	c->bind_rc = SQLITE_OK;
	*out = c->stmts[id];
	return 0;
}

/* Resets a statement for its next use and drops its bindings; a statement
 * left mid-way would hold its read snapshot open.  NULL is a no-op, so the
 * out: label of every function can call it for each statement it may use. */
static void stmt_done(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

static void bind_check(struct conn *c, int rc)
{
	if (rc != SQLITE_OK && c->bind_rc == SQLITE_OK)
		c->bind_rc = rc;
}

static void bind_text(struct conn *c, sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		bind_check(c, sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT));
	else
		bind_check(c, sqlite3_bind_null(st, i));
}

static void bind_int(struct conn *c, sqlite3_stmt *st, int i, int64_t v)
{
	bind_check(c, sqlite3_bind_int64(st, i, v));
}

/* Binds major, minor, micro, qualifier at first .. first + 3. */
static void bind_version(struct conn *c, sqlite3_stmt *st, int first,
			 const struct tn_store_version *v)
{
	bind_int(c, st, first, v->major);
	bind_int(c, st, first + 1, v->minor);
	bind_int(c, st, first + 2, v->micro);
	bind_text(c, st, first + 3, v->qualifier ? v->qualifier : "");
}

/* sqlite3_step, or the error of a bind that failed before it. */
static int step(struct conn *c, sqlite3_stmt *st)
{
	int rc = c->bind_rc;

	if (rc != SQLITE_OK) {
		c->bind_rc = SQLITE_OK;
		return rc;
	}
	return sqlite3_step(st);
}

/* Runs a statement that returns no row. */
static int run_done(struct conn *c, sqlite3_stmt *st, struct tn_error *err, const char *what)
{
	int rc = step(c, st);

	if (rc != SQLITE_DONE)
		return db_fail(c, rc, err, what);
	return 0;
}

/* Runs a statement expected to return one row (SQLITE_ROW → 1), or none (0). */
static int run_row(struct conn *c, sqlite3_stmt *st, struct tn_error *err, const char *what)
{
	int rc = step(c, st);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return db_fail(c, rc, err, what);
}

static int run_simple(struct conn *c, enum stmt_id id, struct tn_error *err, const char *what)
{
	sqlite3_stmt *st = NULL;
	int ret = stmt_get(c, id, &st, err);

	if (!ret)
		ret = run_done(c, st, err, what);
	stmt_done(st);
	return ret;
}

/* BEGIN IMMEDIATE: every write takes the write lock at the start, so two
 * writers never both hold a read snapshot and then deadlock upgrading it.
 * Inside an open transaction (a function that writes called by one that
 * groups several writes) a savepoint nests instead, so the inner function
 * keeps its own begin/commit/rollback and the outer one decides. */
static int tx_begin(struct conn *c, struct tn_error *err)
{
	int ret = run_simple(c, c->tx_depth ? ST_SAVEPOINT : ST_BEGIN, err, "begin");

	if (ret == 0)
		c->tx_depth++;
	return ret;
}

static int tx_commit(struct conn *c, struct tn_error *err)
{
	int ret = run_simple(c, c->tx_depth > 1 ? ST_RELEASE : ST_COMMIT, err, "commit");

	if (ret == 0)
		c->tx_depth--;
	return ret;
}

/* Rolls back the innermost transaction when one is open (a failed COMMIT
 * may have ended it). */
static void tx_rollback(struct conn *c)
{
	if (c->tx_depth > 1) {
		if (run_simple(c, ST_ROLLBACK_TO, NULL, "rollback") ||
		    run_simple(c, ST_RELEASE, NULL, "rollback"))
			tn_log(TN_LOG_ERROR, "store", "rollback_failed", NULL);
		c->tx_depth--;
		return;
	}
	if (!sqlite3_get_autocommit(c->db) && run_simple(c, ST_ROLLBACK, NULL, "rollback"))
		tn_log(TN_LOG_ERROR, "store", "rollback_failed", NULL);
	c->tx_depth = 0;
}

static int count_query(struct tn_store *store, enum stmt_id id, int64_t *out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, id, &st, err);
	if (ret)
		goto out;
	ret = run_row(c, st, err, "count");
	if (ret < 0)
		goto out;
	*out = ret ? sqlite3_column_int64(st, 0) : 0;
	ret = 0;
out:
	stmt_done(st);
	return ret;
}

/* ------------------------------------------------------------ open, migrate, close */

static int read_user_version(sqlite3 *db, int *out, struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc;
	int ret = 0;

	rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = db_fail_rc(db, rc, err, "read schema version");
		goto out;
	}
	*out = sqlite3_column_int(st, 0);
out:
	sqlite3_finalize(st);
	return ret;
}

/* A file from a newer Tender: refuse before writing anything to it. */
static int check_not_newer(const char *path, int version, struct tn_error *err)
{
	if (version > tn_store_schema_version())
		return tn_fail(err, TN_E_INVALID,
			       "database %s has schema version %d, newer than this tender-server "
			       "knows (%d): run a newer tender-server or restore a backup",
			       path, version, tn_store_schema_version());
	if (version < 0)
		return tn_fail(err, TN_E_INVALID, "database %s has schema version %d", path,
			       version);
	return 0;
}

static int set_wal(sqlite3 *db, const char *path, struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc;
	int ret = 0;

	rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = db_fail_rc(db, rc, err, "journal_mode");
		goto out;
	}
	/* The pragma answers the mode now in force; a file system without
	 * shared memory keeps the old one, and readers would block writers. */
	if (strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
		ret = tn_fail(err, TN_E_IO, "database %s: cannot use WAL mode (journal_mode %s)",
			      path, (const char *)sqlite3_column_text(st, 0));
out:
	sqlite3_finalize(st);
	return ret;
}

/* Applies the pending migrations in one transaction.  The version is read
 * again under the write lock: another process may have migrated meanwhile. */
static int migrate(sqlite3 *db, const char *path, struct tn_error *err)
{
	char pragma[64];
	int version = 0;
	bool in_tx = false;
	int ret;

	ret = exec_sql(db, "BEGIN IMMEDIATE", err, "begin migration");
	if (ret)
		goto out;
	in_tx = true;
	ret = read_user_version(db, &version, err);
	if (ret)
		goto out;
	ret = check_not_newer(path, version, err);
	if (ret)
		goto out;
	if (version == tn_store_schema_version())
		goto out; /* commits the empty transaction below */
	for (int i = version; i < tn_store_schema_version(); i++) {
		ret = exec_sql(db, migrations[i], err, "migration");
		if (ret) {
			tn_error_prefix(err, "database %s: schema version %d", path, i + 1);
			goto out;
		}
	}
	/* PRAGMA takes no bound parameter; the value is our own integer. */
	snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", tn_store_schema_version());
	ret = exec_sql(db, pragma, err, "set schema version");
	if (ret)
		goto out;
	tn_log(TN_LOG_INFO, "store", "migrated", "{s:s, s:i, s:i}", "path", path, "from", version,
	       "to", tn_store_schema_version());
out:
	if (in_tx) {
		if (!ret)
			ret = exec_sql(db, "COMMIT", err, "commit migration");
		if (ret && !sqlite3_get_autocommit(db))
			(void)exec_sql(db, "ROLLBACK", NULL, "rollback migration");
	}
	return ret;
}

int tn_store_open(const char *path, struct tn_store **out, struct tn_error *err)
{
	struct tn_store *store = NULL;
	sqlite3 *db = NULL;
	int version = 0;
	int ret;

	/* Every thread has its connection and its page cache: ten of them
	 * filled by a fleet's enrollments held 100+ MB, and they grew with the
	 * database under a long run of rollouts.  The page caches of the whole
	 * process give pages back above this (the soft heap limit is enforced
	 * by the page cache since SQLite 3.7.3); the kernel's page cache keeps
	 * the file's pages close: 10,000 agents' rollout was as fast at 4 MiB
	 * as at 32 (docs/performance.md). */
	sqlite3_soft_heap_limit64(STORE_CACHE_TOTAL);
	ret = conn_open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &db, err);
	if (ret)
		goto out;
	ret = read_user_version(db, &version, err);
	if (ret)
		goto out;
	ret = check_not_newer(path, version, err);
	if (ret)
		goto out;
	ret = set_wal(db, path, err);
	if (ret)
		goto out;
	ret = migrate(db, path, err);
	if (ret)
		goto out;

	store = xcalloc(1, sizeof *store);
	store->path = xstrdup(path);
	pthread_mutex_init(&store->lock, NULL);
	if (pthread_key_create(&store->key, conn_thread_exit) != 0) {
		ret = tn_fail(err, TN_E_INTERNAL, "database %s: out of thread-local keys", path);
		goto out;
	}
	/* The connection that migrated becomes this thread's. */
	conn_register(store, db);
	db = NULL;
	tn_log(TN_LOG_INFO, "store", "opened", "{s:s, s:i}", "path", path, "schema",
	       tn_store_schema_version());
	*out = store;
	store = NULL;
out:
	if (store) {
		pthread_mutex_destroy(&store->lock);
		free(store->path);
		free(store);
	}
	sqlite3_close_v2(db);
	return ret;
}

void tn_store_close(struct tn_store *store)
{
	struct conn *list, *next;

	if (!store)
		return;
	pthread_mutex_lock(&store->lock);
	list = store->conns;
	store->conns = NULL;
	pthread_mutex_unlock(&store->lock);
	/* After this no thread's exit runs our destructor: the connections of
	 * threads still alive are closed here, once, with the rest. */
	pthread_setspecific(store->key, NULL);
	pthread_key_delete(store->key);
	for (struct conn *c = list; c; c = next) {
		next = c->next;
		conn_close(c);
	}
	pthread_mutex_destroy(&store->lock);
	free(store->path);
	free(store);
}

/* true when path + suffix exists (or cannot be checked). */
static bool sibling_exists(const char *path, const char *suffix)
{
	char *p = xasprintf("%s%s", path, suffix);
	bool exists = access(p, F_OK) == 0 || errno != ENOENT;

	free(p);
	return exists;
}

static void unlink_with_siblings(const char *path)
{
	static const char *const suffixes[] = {"", "-journal", "-wal", "-shm"};

	for (size_t i = 0; i < COUNT_OF(suffixes); i++) {
		char *p = xasprintf("%s%s", path, suffixes[i]);

		unlink(p);
		free(p);
	}
}

/* The backup copies everything in one step (-1) from a read snapshot of the
 * calling thread's connection.  In WAL a reader never blocks writers, and a
 * single step cannot be restarted by their commits, as steps of a few pages
 * at a time would be whenever another connection writes between them (for
 * ever, under steady load).  The loop retries only a busy source or dest. */
int tn_store_backup(struct tn_store *store, const char *dest_path, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3 *dest = NULL;
	sqlite3_backup *bk = NULL;
	char *tmp = NULL;
	int fd = -1;
	int rc, pages = 0;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	/* SQLite replays a -wal or hot -journal lying beside a database file
	 * onto it when opened: a stale one would corrupt the fresh copy. */
	if (sibling_exists(dest_path, "-wal") || sibling_exists(dest_path, "-journal")) {
		ret = tn_fail(err, TN_E_CONFLICT,
			      "backup %s: a -wal or -journal file is beside it (is it open?); "
			      "choose another name or remove them",
			      dest_path);
		goto out;
	}
	tmp = xasprintf("%s.tmp-XXXXXX", dest_path);
	fd = mkstemp(tmp);
	if (fd < 0) {
		ret = tn_fail_errno(err, errno, "backup %s", dest_path);
		free(tmp);
		tmp = NULL;
		goto out;
	}
	close(fd);
	fd = -1;
	ret = conn_open_db(tmp, SQLITE_OPEN_READWRITE, &dest, err);
	if (ret)
		goto out;
	bk = sqlite3_backup_init(dest, "main", c->db, "main");
	if (!bk) {
		ret = db_fail_rc(dest, sqlite3_errcode(dest), err, "backup");
		goto out;
	}
	for (int tries = 0;; tries++) {
		rc = sqlite3_backup_step(bk, -1);
		if (rc == SQLITE_DONE)
			break;
		if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && tries < 50) {
			sqlite3_sleep(100);
			continue;
		}
		ret = db_fail_rc(dest, rc, err, "backup");
		goto out;
	}
	pages = sqlite3_backup_pagecount(bk);
	rc = sqlite3_backup_finish(bk);
	bk = NULL;
	if (rc != SQLITE_OK) {
		ret = db_fail_rc(dest, rc, err, "backup");
		goto out;
	}
	/* The copy carries the source's WAL flag; make it one self-contained
	 * file (tn_store_open turns WAL on again). */
	ret = exec_sql(dest, "PRAGMA journal_mode = DELETE", err, "backup journal mode");
	if (ret)
		goto out;
	rc = sqlite3_close(dest);
	dest = NULL;
	if (rc != SQLITE_OK) {
		ret = tn_fail(err, TN_E_IO, "backup %s: close: %s", dest_path, sqlite3_errstr(rc));
		goto out;
	}
	fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		ret = tn_fail_errno(err, errno, "backup %s: fsync", dest_path);
		goto out;
	}
	if (rename(tmp, dest_path) != 0) {
		ret = tn_fail_errno(err, errno, "backup %s: rename", dest_path);
		goto out;
	}
	free(tmp);
	tmp = NULL;
	ret = tn_fsync_parent(dest_path, err);
	if (ret)
		goto out;
	tn_log(TN_LOG_INFO, "store", "backup", "{s:s, s:i}", "dest", dest_path, "pages", pages);
out:
	if (bk)
		sqlite3_backup_finish(bk);
	sqlite3_close_v2(dest);
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink_with_siblings(tmp);
		free(tmp);
	}
	return ret;
}

/* ------------------------------------------------------------ small helpers */

void tn_store_time_format(time_t t, char out[TN_STORE_TIME_LEN + 1])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) ||
	    strftime(out, TN_STORE_TIME_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm) != TN_STORE_TIME_LEN)
		memcpy(out, "1970-01-01T00:00:00Z", TN_STORE_TIME_LEN + 1);
}

void tn_store_now(char out[TN_STORE_TIME_LEN + 1])
{
	tn_store_time_format(time(NULL), out);
}

/* Exactly our format, so that text comparison is time comparison. */
static bool time_valid(const char *s)
{
	static const char pattern[] = "dddd-dd-ddTdd:dd:ddZ";

	if (strlen(s) != TN_STORE_TIME_LEN)
		return false;
	for (size_t i = 0; i < TN_STORE_TIME_LEN; i++)
		if (pattern[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pattern[i])
			return false;
	return true;
}

static bool sha256_hex_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == 64;
}

static bool in_list(const char *s, const char *const list[])
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static const char *const target_states[] = {
    "provisioning", "enrolled", "running", "draining", "removed", "failed", NULL,
};
static const char *const roles[] = {"viewer", "developer", "operator", "admin", NULL};

/* The qualifier rules of common/version.h, checked again here because the
 * canonical text is made from it. */
static int version_check(const struct tn_store_version *v, struct tn_error *err)
{
	const char *q = v->qualifier ? v->qualifier : "";
	size_t i;

	for (i = 0; q[i]; i++)
		if (!((q[i] >= 'a' && q[i] <= 'z') || (q[i] >= 'A' && q[i] <= 'Z') ||
		      (q[i] >= '0' && q[i] <= '9') || q[i] == '_' || q[i] == '-'))
			return tn_fail(err, TN_E_INVALID, "version qualifier: bad character");
	if (i > 64)
		return tn_fail(err, TN_E_INVALID, "version qualifier: longer than 64 characters");
	return 0;
}

/* Canonical "M.m.u[.q]"; caller frees. */
static char *version_text(const struct tn_store_version *v)
{
	const char *q = v->qualifier ? v->qualifier : "";

	return xasprintf("%" PRIu32 ".%" PRIu32 ".%" PRIu32 "%s%s", v->major, v->minor, v->micro,
			 *q ? "." : "", q);
}

/* Canonical JSON text of value, or of dflt when value is NULL; caller frees. */
static char *json_text(json_t *value, const char *dflt)
{
	return value ? tn_json_canonical(value) : xstrdup(dflt);
}

/* limit 0 → the default; above the maximum → the maximum. */
static unsigned clamp_limit(unsigned limit)
{
	if (limit == 0)
		return TN_STORE_LIMIT_DEFAULT;
	return limit > TN_STORE_LIMIT_MAX ? TN_STORE_LIMIT_MAX : limit;
}

/* "t-" and 16 characters of base32: 80 random bits. */
static int random_id(const char *prefix, char *out, size_t size, struct tn_error *err)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
	unsigned char raw[16];
	size_t got = 0;
	size_t plen = strlen(prefix);

	if (size < plen + sizeof raw + 1)
		return tn_fail(err, TN_E_INTERNAL, "random id: buffer too small");
	while (got < sizeof raw) {
		ssize_t n = getrandom(raw + got, sizeof raw - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tn_fail_errno(err, errno, "random id");
		got += (size_t)n;
	}
	memcpy(out, prefix, plen);
	for (size_t i = 0; i < sizeof raw; i++)
		out[plen + i] = alphabet[raw[i] & 31];
	out[plen + sizeof raw] = '\0';
	return 0;
}

/* ---- row → JSON.  A NULL column is JSON null. */

static json_t *col_str(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	json_t *v;

	if (!s)
		return json_null();
	/* Text came in through validated JSON or our own code; a non-UTF-8
	 * byte would make jansson refuse it, so show null, not a crash. */
	v = json_string(s);
	return v ? v : json_null();
}

static json_t *col_int(sqlite3_stmt *st, int i)
{
	return json_integer(sqlite3_column_int64(st, i));
}

static json_t *col_json(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	json_t *v;

	if (!s)
		return json_null();
	v = json_loads(s, JSON_DECODE_ANY, NULL);
	if (!v) {
		tn_log(TN_LOG_ERROR, "store", "bad_json_column", "{s:s}", "column",
		       sqlite3_column_name(st, i));
		return json_null();
	}
	return v;
}

static const char *col_cstr(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s ? s : "";
}

/* ---- cursors: base64url of the compact JSON array of the last row's sort
 * key.  Opaque to clients, URL-safe, and checked strictly on the way in. */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64url_encode(const unsigned char *in, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	char *p = out;
	size_t i = 0;

	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		*p++ = b64url[v >> 18];
		*p++ = b64url[(v >> 12) & 63];
		*p++ = b64url[(v >> 6) & 63];
		*p++ = b64url[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		*p++ = b64url[v >> 18];
		*p++ = b64url[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		*p++ = b64url[v >> 18];
		*p++ = b64url[(v >> 12) & 63];
		*p++ = b64url[(v >> 6) & 63];
	}
	*p = '\0';
	return out;
}

static int b64url_value(char ch)
{
	const char *p = ch ? strchr(b64url, ch) : NULL;

	return p ? (int)(p - b64url) : -1;
}

/* Decodes unpadded base64url; false on any other character or length. */
static bool b64url_decode(const char *s, unsigned char **out, size_t *outlen)
{
	size_t n = strlen(s);
	unsigned char *buf;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (n % 4 == 1)
		return false;
	buf = xmalloc(n * 3 / 4 + 1);
	for (size_t i = 0; i < n; i++) {
		int v = b64url_value(s[i]);

		if (v < 0) {
			free(buf);
			return false;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*out = buf;
	*outlen = o;
	return true;
}

/* Steals key. */
static char *cursor_encode(json_t *key)
{
	char *text = json_dumps(key, JSON_COMPACT | JSON_ENCODE_ANY);
	char *out =
	    b64url_encode((const unsigned char *)(text ? text : "null"), text ? strlen(text) : 4);

	free(text);
	json_decref(key);
	return out;
}

/* Decodes after and unpacks it with fmt (a json_unpack format for an
 * array); *root owns the strings unpacked, caller decrefs. */
static int cursor_decode(const char *after, json_t **root, struct tn_error *err, const char *fmt,
			 ...)
{
	unsigned char *raw = NULL;
	size_t len = 0;
	json_t *key = NULL;
	va_list ap;
	int rc = -1;

	if (strlen(after) <= CURSOR_MAX && b64url_decode(after, &raw, &len))
		key = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL);
	if (key) {
		va_start(ap, fmt);
		rc = json_vunpack_ex(key, NULL, JSON_STRICT, fmt, ap);
		va_end(ap);
	}
	free(raw);
	if (rc != 0) {
		json_decref(key);
		return tn_fail(err, TN_E_INVALID, "after: not a cursor from this list");
	}
	*root = key;
	return 0;
}

/* {"items": items, "next": next or null}; steals items and next. */
static json_t *page(json_t *items, char *next)
{
	json_t *out = json_pack("{s:o, s:s?}", "items", items, "next", next);

	free(next);
	return out;
}

/* ---- lists */

/* Builds one list item from the current row of st; may run other statements. */
typedef int (*row_fn)(struct conn *c, sqlite3_stmt *st, json_t **out, struct tn_error *err);
/* The cursor for the current row of st; caller frees. */
typedef char *(*key_fn)(sqlite3_stmt *st);

/* Steps st (bound with LIMIT limit + 1) into a page of at most limit items:
 * the extra row only tells that a next page exists. */
static int run_page(struct conn *c, sqlite3_stmt *st, unsigned limit, row_fn item, key_fn key,
		    json_t **out, struct tn_error *err)
{
	json_t *items = json_array();
	char *next = NULL;
	unsigned n = 0;
	int ret;

	while ((ret = run_row(c, st, err, "list")) == 1) {
		json_t *obj = NULL;

		if (n == limit) {
			/* a row beyond the page: next starts after the last shown */
			break;
		}
		ret = item(c, st, &obj, err);
		if (ret)
			goto out;
		json_array_append_new(items, obj);
		if (++n == limit) {
			free(next);
			next = key(st);
		}
	}
	if (ret < 0)
		goto out;
	if (ret == 0) {
		/* the rows ended within the page: no next page */
		free(next);
		next = NULL;
	}
	ret = 0;
	*out = page(items, next);
	items = NULL;
	next = NULL;
out:
	json_decref(items);
	free(next);
	return ret;
}

/* ------------------------------------------------------------ bundles */

/* Row: name, version, sha256, size, created, created_by, then (get) the
 * manifest or (list) major, minor, micro, qualifier. */
static int bundle_item(struct conn *c, sqlite3_stmt *st, json_t **out, struct tn_error *err)
{
	*out = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "name", col_str(st, 0), "version",
			 col_str(st, 1), "sha256", col_str(st, 2), "size", col_int(st, 3),
			 "created", col_str(st, 4), "created_by", col_str(st, 5));
	return 0;
}

/* The key of a versioned list row: [name, major, minor, micro, qualifier]
 * with name in column name_col and the parts in columns 6 to 9. */
static char *version_key(sqlite3_stmt *st, int name_col)
{
	return cursor_encode(json_pack("[sIIIs]", col_cstr(st, name_col),
				       (json_int_t)sqlite3_column_int64(st, 6),
				       (json_int_t)sqlite3_column_int64(st, 7),
				       (json_int_t)sqlite3_column_int64(st, 8), col_cstr(st, 9)));
}

static char *bundle_key(sqlite3_stmt *st)
{
	return version_key(st, 0);
}

/* Lists bundles or distributions (same shape of statement and key). */
static int versioned_list(struct tn_store *store, enum stmt_id all, enum stmt_id named, row_fn item,
			  key_fn key, const char *name, unsigned limit, const char *after,
			  json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	json_t *cursor = NULL;
	const char *cname = "", *cqual = "";
	json_int_t cmajor = -1, cminor = -1, cmicro = -1;
	int ret;

	limit = clamp_limit(limit);
	if (after) {
		ret = cursor_decode(after, &cursor, err, "[sIIIs]", &cname, &cmajor, &cminor,
				    &cmicro, &cqual);
		if (ret)
			goto out;
	}
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, name ? named : all, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, cname);
	bind_int(c, st, 2, cmajor);
	bind_int(c, st, 3, cminor);
	bind_int(c, st, 4, cmicro);
	bind_text(c, st, 5, cqual);
	bind_int(c, st, 6, (int64_t)limit + 1);
	if (name)
		bind_text(c, st, 7, name);
	ret = run_page(c, st, limit, item, key, out, err);
out:
	stmt_done(st);
	json_decref(cursor);
	return ret;
}

int tn_store_bundle_insert(struct tn_store *store, const char *name,
			   const struct tn_store_version *version, const char *sha256, int64_t size,
			   json_t *manifest, const char *actor, enum tn_store_outcome *outcome,
			   struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *find = NULL, *ins = NULL;
	char *vtext = NULL, *mtext = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	bool in_tx = false;
	int ret;

	ret = version_check(version, err);
	if (ret)
		goto out;
	if (!sha256_hex_valid(sha256) || size < 0 || !json_is_object(manifest)) {
		ret = tn_fail(err, TN_E_INVALID, "bundle %s: bad sha256, size or manifest", name);
		goto out;
	}
	vtext = version_text(version);
	mtext = tn_json_canonical(manifest);
	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;

	ret = stmt_get(c, ST_BUNDLE_FIND, &find, err);
	if (ret)
		goto out;
	bind_text(c, find, 1, name);
	bind_version(c, find, 2, version);
	ret = run_row(c, find, err, "find bundle");
	if (ret < 0)
		goto out;
	if (ret == 1) {
		/* Uploads are idempotent by content; a version is immutable. */
		if (strcmp(col_cstr(find, 1), sha256) == 0) {
			*outcome = TN_STORE_UNCHANGED;
			ret = 0;
		} else {
			ret = tn_fail(err, TN_E_EXISTS,
				      "bundle %s@%s already exists with other content (sha256 %s); "
				      "a version never changes: upload a new version",
				      name, vtext, col_cstr(find, 1));
		}
		goto out;
	}
	stmt_done(find);

	ret = stmt_get(c, ST_BUNDLE_INSERT, &ins, err);
	if (ret)
		goto out;
	bind_text(c, ins, 1, name);
	bind_version(c, ins, 2, version);
	bind_text(c, ins, 6, vtext);
	bind_text(c, ins, 7, sha256);
	bind_int(c, ins, 8, size);
	bind_text(c, ins, 9, mtext);
	bind_text(c, ins, 10, now);
	bind_text(c, ins, 11, actor);
	ret = run_done(c, ins, err, "insert bundle");
	if (ret)
		goto out;
	stmt_done(ins);
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
	*outcome = TN_STORE_CREATED;
out:
	stmt_done(find);
	stmt_done(ins);
	if (in_tx)
		tx_rollback(c);
	free(vtext);
	free(mtext);
	return ret;
}

/* Not-found message for name@version, the way users write it. */
static int not_found(struct tn_error *err, const char *what, const char *name,
		     const struct tn_store_version *version)
{
	char *vtext = version_text(version);
	int ret = tn_fail(err, TN_E_NOT_FOUND, "%s %s@%s not found", what, name, vtext);

	free(vtext);
	return ret;
}

int tn_store_bundle_get(struct tn_store *store, const char *name,
			const struct tn_store_version *version, json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_BUNDLE_GET, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, name);
	bind_version(c, st, 2, version);
	ret = run_row(c, st, err, "get bundle");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = not_found(err, "bundle", name, version);
		goto out;
	}
	ret = bundle_item(c, st, out, err);
	if (ret)
		goto out;
	json_object_set_new(*out, "manifest", col_json(st, 6));
out:
	stmt_done(st);
	return ret;
}

int tn_store_bundle_list(struct tn_store *store, const char *name, unsigned limit,
			 const char *after, json_t **out, struct tn_error *err)
{
	return versioned_list(store, ST_BUNDLE_LIST, ST_BUNDLE_LIST_NAME, bundle_item, bundle_key,
			      name, limit, after, out, err);
}

int tn_store_bundle_delete(struct tn_store *store, const char *name,
			   const struct tn_store_version *version, char **sha256_out,
			   struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *find = NULL, *user = NULL, *del = NULL;
	char *sha256 = NULL, *vtext = version_text(version);
	int64_t id;
	bool in_tx = false;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = stmt_get(c, ST_BUNDLE_FIND, &find, err);
	if (ret)
		goto out;
	bind_text(c, find, 1, name);
	bind_version(c, find, 2, version);
	ret = run_row(c, find, err, "find bundle");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = not_found(err, "bundle", name, version);
		goto out;
	}
	id = sqlite3_column_int64(find, 0);
	sha256 = xstrdup(col_cstr(find, 1));
	stmt_done(find);

	ret = stmt_get(c, ST_BUNDLE_USER, &user, err);
	if (ret)
		goto out;
	bind_int(c, user, 1, id);
	ret = run_row(c, user, err, "bundle users");
	if (ret < 0)
		goto out;
	if (ret == 1) {
		int64_t more = sqlite3_column_int64(user, 2) - 1;
		char others[48] = "";

		if (more > 0)
			snprintf(others, sizeof others, " (and %" PRId64 " more)", more);
		ret = tn_fail(err, TN_E_CONFLICT,
			      "bundle %s@%s is used by distribution %s@%s%s: delete those first",
			      name, vtext, col_cstr(user, 0), col_cstr(user, 1), others);
		goto out;
	}
	stmt_done(user);

	ret = stmt_get(c, ST_BUNDLE_DELETE, &del, err);
	if (ret)
		goto out;
	bind_int(c, del, 1, id);
	ret = run_done(c, del, err, "delete bundle");
	if (ret)
		goto out;
	stmt_done(del);
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
	if (sha256_out) {
		*sha256_out = sha256;
		sha256 = NULL;
	}
out:
	stmt_done(find);
	stmt_done(user);
	stmt_done(del);
	if (in_tx)
		tx_rollback(c);
	free(sha256);
	free(vtext);
	return ret;
}

int tn_store_blob_referenced(struct tn_store *store, const char *sha256, bool *out,
			     struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_BLOB_REFERENCED, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, sha256);
	ret = run_row(c, st, err, "blob referenced");
	if (ret < 0)
		goto out;
	*out = ret == 1;
	ret = 0;
out:
	stmt_done(st);
	return ret;
}

int tn_store_bundle_count(struct tn_store *store, int64_t *out, struct tn_error *err)
{
	return count_query(store, ST_BUNDLE_COUNT, out, err);
}

/* ------------------------------------------------------------ distributions */

/* Row: id, name, version, config, created, created_by (list: then the
 * version parts in 6 to 9). */
static int dist_item(struct conn *c, sqlite3_stmt *row, json_t **out, struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	json_t *bundles = json_array();
	int ret;

	ret = stmt_get(c, ST_DIST_BUNDLES, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, sqlite3_column_int64(row, 0));
	while ((ret = run_row(c, st, err, "distribution bundles")) == 1)
		json_array_append_new(bundles,
				      json_pack("{s:o, s:o, s:o, s:o}", "name", col_str(st, 0),
						"version", col_str(st, 1), "sha256", col_str(st, 2),
						"size", col_int(st, 3)));
	if (ret < 0)
		goto out;
	ret = 0;
	*out = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "name", col_str(row, 1), "version",
			 col_str(row, 2), "config", col_json(row, 3), "bundles", bundles, "created",
			 col_str(row, 4), "created_by", col_str(row, 5));
	bundles = NULL;
out:
	stmt_done(st);
	json_decref(bundles);
	return ret;
}

static char *dist_key(sqlite3_stmt *st)
{
	return version_key(st, 1);
}

static int cmp_int64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Looks a distribution up inside the caller's transaction: *id, or
 * TN_E_NOT_FOUND.  *config (when not NULL) gets its config text, caller frees. */
static int dist_find(struct conn *c, const char *name, const struct tn_store_version *version,
		     int64_t *id, char **config, struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	int ret;

	ret = stmt_get(c, ST_DIST_FIND, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, name);
	bind_version(c, st, 2, version);
	ret = run_row(c, st, err, "find distribution");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = not_found(err, "distribution", name, version);
		goto out;
	}
	*id = sqlite3_column_int64(st, 0);
	if (config)
		*config = xstrdup(col_cstr(st, 1));
	ret = 0;
out:
	stmt_done(st);
	return ret;
}

/* Whether distribution id has exactly the bundles of sorted ids[n]. */
static int dist_same_bundles(struct conn *c, int64_t id, const int64_t *ids, size_t n, bool *same,
			     struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	size_t i = 0;
	int ret;

	*same = true;
	ret = stmt_get(c, ST_DIST_BUNDLE_IDS, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, id);
	while ((ret = run_row(c, st, err, "distribution bundles")) == 1) {
		if (i >= n || sqlite3_column_int64(st, 0) != ids[i])
			*same = false;
		i++;
	}
	if (ret < 0)
		goto out;
	ret = 0;
	if (i != n)
		*same = false;
out:
	stmt_done(st);
	return ret;
}

int tn_store_distribution_insert(struct tn_store *store, const char *name,
				 const struct tn_store_version *version, json_t *config,
				 const struct tn_store_bundle_ref *bundles, size_t n,
				 const char *actor, enum tn_store_outcome *outcome,
				 struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *find = NULL, *ins = NULL, *link = NULL;
	char *vtext = NULL, *ctext = NULL, *old_config = NULL;
	int64_t *ids = NULL, *sorted = NULL;
	int64_t dist_id = 0;
	char now[TN_STORE_TIME_LEN + 1];
	bool in_tx = false, same = false;
	int ret;

	ret = version_check(version, err);
	if (ret)
		goto out;
	if (config && !json_is_object(config)) {
		ret = tn_fail(err, TN_E_INVALID, "config: must be an object");
		goto out;
	}
	if (n == 0 || n > TN_STORE_DIST_BUNDLES_MAX) {
		ret = tn_fail(err, TN_E_INVALID, "bundles: between 1 and %d bundles are needed",
			      TN_STORE_DIST_BUNDLES_MAX);
		goto out;
	}
	/* One version of each bundle: bundle names key the config and the
	 * agent's view of the release. */
	for (size_t i = 0; i < n; i++) {
		ret = version_check(&bundles[i].version, err);
		if (ret)
			goto out;
		for (size_t j = 0; j < i; j++)
			if (strcmp(bundles[i].name, bundles[j].name) == 0) {
				ret = tn_fail(err, TN_E_INVALID,
					      "bundles[%zu]: %s is already listed as bundles[%zu]",
					      i, bundles[i].name, j);
				goto out;
			}
	}
	vtext = version_text(version);
	ctext = json_text(config, "{}");
	tn_store_now(now);
	ids = xcalloc(n, sizeof *ids);
	sorted = xcalloc(n, sizeof *sorted);

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = stmt_get(c, ST_BUNDLE_FIND, &find, err);
	if (ret)
		goto out;
	for (size_t i = 0; i < n; i++) {
		bind_text(c, find, 1, bundles[i].name);
		bind_version(c, find, 2, &bundles[i].version);
		ret = run_row(c, find, err, "find bundle");
		if (ret < 0)
			goto out;
		if (ret == 0) {
			char *bv = version_text(&bundles[i].version);

			ret = tn_fail(err, TN_E_NOT_FOUND, "bundles[%zu]: bundle %s@%s not found",
				      i, bundles[i].name, bv);
			free(bv);
			goto out;
		}
		ids[i] = sorted[i] = sqlite3_column_int64(find, 0);
		stmt_done(find);
	}
	qsort(sorted, n, sizeof *sorted, cmp_int64);

	ret = dist_find(c, name, version, &dist_id, &old_config, err);
	if (ret == 0) {
		ret = dist_same_bundles(c, dist_id, sorted, n, &same, err);
		if (ret)
			goto out;
		if (same && strcmp(old_config, ctext) == 0) {
			*outcome = TN_STORE_UNCHANGED;
		} else {
			ret = tn_fail(err, TN_E_EXISTS,
				      "distribution %s@%s already exists with other bundles or "
				      "config; a version never changes: upload a new version",
				      name, vtext);
		}
		goto out;
	}
	if (ret != -TN_E_NOT_FOUND)
		goto out;
	tn_error_clear(err);

	ret = stmt_get(c, ST_DIST_INSERT, &ins, err);
	if (ret)
		goto out;
	bind_text(c, ins, 1, name);
	bind_version(c, ins, 2, version);
	bind_text(c, ins, 6, vtext);
	bind_text(c, ins, 7, ctext);
	bind_text(c, ins, 8, now);
	bind_text(c, ins, 9, actor);
	ret = run_done(c, ins, err, "insert distribution");
	if (ret)
		goto out;
	stmt_done(ins);
	dist_id = sqlite3_last_insert_rowid(c->db);

	ret = stmt_get(c, ST_DIST_BUNDLE_INSERT, &link, err);
	if (ret)
		goto out;
	for (size_t i = 0; i < n; i++) {
		bind_int(c, link, 1, dist_id);
		bind_int(c, link, 2, ids[i]);
		bind_int(c, link, 3, (int64_t)i);
		ret = run_done(c, link, err, "insert distribution bundle");
		if (ret)
			goto out;
		stmt_done(link);
	}
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
	*outcome = TN_STORE_CREATED;
out:
	stmt_done(find);
	stmt_done(ins);
	stmt_done(link);
	if (in_tx)
		tx_rollback(c);
	free(vtext);
	free(ctext);
	free(old_config);
	free(ids);
	free(sorted);
	return ret;
}

int tn_store_distribution_ingest(struct tn_store *store, const char *name,
				 const struct tn_store_version *version, json_t *config,
				 const struct tn_store_new_bundle *fresh, size_t nfresh,
				 const struct tn_store_bundle_ref *bundles, size_t n,
				 const char *actor, enum tn_store_outcome *outcome,
				 struct tn_error *err)
{
	struct conn *c = NULL;
	enum tn_store_outcome ignored;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		return ret;
	ret = tx_begin(c, err);
	if (ret)
		return ret;
	for (size_t i = 0; i < nfresh && ret == 0; i++)
		ret = tn_store_bundle_insert(store, fresh[i].name, &fresh[i].version,
					     fresh[i].sha256, fresh[i].size, fresh[i].manifest, actor,
					     &ignored, err);
	if (ret == 0)
		ret = tn_store_distribution_insert(store, name, version, config, bundles, n, actor,
						   outcome, err);
	if (ret == 0)
		ret = tx_commit(c, err);
	if (ret)
		tx_rollback(c);
	return ret;
}

int tn_store_distribution_get(struct tn_store *store, const char *name,
			      const struct tn_store_version *version, json_t **out,
			      struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_DIST_GET, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, name);
	bind_version(c, st, 2, version);
	ret = run_row(c, st, err, "get distribution");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = not_found(err, "distribution", name, version);
		goto out;
	}
	ret = dist_item(c, st, out, err);
out:
	stmt_done(st);
	return ret;
}

int tn_store_distribution_list(struct tn_store *store, const char *name, unsigned limit,
			       const char *after, json_t **out, struct tn_error *err)
{
	return versioned_list(store, ST_DIST_LIST, ST_DIST_LIST_NAME, dist_item, dist_key, name,
			      limit, after, out, err);
}

int tn_store_distribution_delete(struct tn_store *store, const char *name,
				 const struct tn_store_version *version, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char *vtext = version_text(version);
	int64_t id = 0;
	bool in_tx = false;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = dist_find(c, name, version, &id, NULL, err);
	if (ret)
		goto out;

	/* Who still needs it, most pressing first. */
	ret = stmt_get(c, ST_DIST_CURRENT_USER, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, id);
	ret = run_row(c, st, err, "distribution users");
	if (ret < 0)
		goto out;
	if (ret == 1) {
		ret = tn_fail(err, TN_E_CONFLICT,
			      "distribution %s@%s is the current revision of cluster %s", name,
			      vtext, col_cstr(st, 0));
		goto out;
	}
	stmt_done(st);

	ret = stmt_get(c, ST_DIST_ROLLOUT_USER, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, id);
	ret = run_row(c, st, err, "distribution users");
	if (ret < 0)
		goto out;
	if (ret == 1) {
		ret = tn_fail(err, TN_E_CONFLICT,
			      "distribution %s@%s is used by rollout %s (%s) of cluster %s", name,
			      vtext, col_cstr(st, 0), col_cstr(st, 1), col_cstr(st, 2));
		goto out;
	}
	stmt_done(st);

	ret = stmt_get(c, ST_DIST_REVISION_USER, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, id);
	ret = run_row(c, st, err, "distribution users");
	if (ret < 0)
		goto out;
	if (ret == 1) {
		ret = tn_fail(err, TN_E_CONFLICT,
			      "distribution %s@%s is used by revision %" PRId64 " of cluster %s, "
			      "kept so that the cluster can go back to it",
			      name, vtext, (int64_t)sqlite3_column_int64(st, 1), col_cstr(st, 0));
		goto out;
	}
	stmt_done(st);

	ret = stmt_get(c, ST_DIST_DELETE, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, id);
	ret = run_done(c, st, err, "delete distribution");
	if (ret)
		goto out;
	stmt_done(st);
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	free(vtext);
	return ret;
}

int tn_store_distribution_count(struct tn_store *store, int64_t *out, struct tn_error *err)
{
	return count_query(store, ST_DIST_COUNT, out, err);
}

/* ------------------------------------------------------------ clusters */

/* cluster id by name inside the caller's transaction or read; TN_E_NOT_FOUND. */
static int cluster_find(struct conn *c, const char *name, int64_t *id, struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	int ret;

	ret = stmt_get(c, ST_CLUSTER_ID, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, name);
	ret = run_row(c, st, err, "find cluster");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "cluster %s not found", name);
		goto out;
	}
	*id = sqlite3_column_int64(st, 0);
	ret = 0;
out:
	stmt_done(st);
	return ret;
}

/* {state: n} for every state a counted target can be in (zeros included, so
 * gauges and forms keep their keys), from a statement of (state, count)
 * rows; cluster_id < 0 means a statement without parameter.  *total (may be
 * NULL) gets the sum. */
static int state_counts(struct conn *c, enum stmt_id id, int64_t cluster_id, json_t **out,
			int64_t *total, struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	json_t *counts = json_object();
	int64_t sum = 0;
	int ret;

	for (size_t i = 0; target_states[i]; i++)
		if (strcmp(target_states[i], "removed") != 0)
			json_object_set_new(counts, target_states[i], json_integer(0));
	ret = stmt_get(c, id, &st, err);
	if (ret)
		goto out;
	if (cluster_id >= 0)
		bind_int(c, st, 1, cluster_id);
	while ((ret = run_row(c, st, err, "count targets")) == 1) {
		json_object_set_new(counts, col_cstr(st, 0), col_int(st, 1));
		sum += sqlite3_column_int64(st, 1);
	}
	if (ret < 0)
		goto out;
	ret = 0;
	*out = counts;
	counts = NULL;
	if (total)
		*total = sum;
out:
	stmt_done(st);
	json_decref(counts);
	return ret;
}

/* Row (CLUSTER_SELECT): id, name, description, provider, lb, created,
 * updated, revision number, "dist@version", revision config, revision
 * created, revision created_by. */
/* The current revision of a ST_CLUSTER_GET row, or json null. */
static json_t *revision_item(sqlite3_stmt *row)
{
	if (sqlite3_column_type(row, 7) == SQLITE_NULL)
		return json_null();
	return json_pack("{s:o, s:o, s:o, s:o, s:o}", "number", col_int(row, 7), "distribution",
			 col_str(row, 8), "config", col_json(row, 9), "created", col_str(row, 10),
			 "created_by", col_str(row, 11));
}

static int cluster_item(struct conn *c, sqlite3_stmt *row, json_t **out, struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	json_t *by_state = NULL, *by_release = json_object(), *revision;
	int64_t id = sqlite3_column_int64(row, 0), total = 0;
	int ret;

	ret = state_counts(c, ST_CLUSTER_STATE_COUNTS, id, &by_state, &total, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_CLUSTER_RELEASE_COUNTS, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, id);
	while ((ret = run_row(c, st, err, "count releases")) == 1)
		json_object_set_new(by_release, col_cstr(st, 0), col_int(st, 1));
	if (ret < 0)
		goto out;
	ret = 0;
	revision = revision_item(row);
	*out = json_pack("{s:o, s:o, s:o, s:o, s:o, s:{s:I, s:o, s:o}, s:o, s:o}", "name",
			 col_str(row, 1), "description", col_str(row, 2), "provider",
			 col_str(row, 3), "lb", col_json(row, 4), "revision", revision, "targets",
			 "total", (json_int_t)total, "by_state", by_state, "by_release", by_release,
			 "created", col_str(row, 5), "updated", col_str(row, 6));
	by_state = by_release = NULL;
out:
	stmt_done(st);
	json_decref(by_state);
	json_decref(by_release);
	return ret;
}

static char *name_key(sqlite3_stmt *st)
{
	return cursor_encode(json_pack("[s]", col_cstr(st, 1)));
}

/* The cluster's item, or (!counts) its revision alone. */
static int cluster_read(struct tn_store *store, const char *name, bool counts, json_t **out,
			struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_CLUSTER_GET, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, name);
	ret = run_row(c, st, err, "get cluster");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "cluster %s not found", name);
		goto out;
	}
	if (!counts) {
		*out = revision_item(st);
		ret = 0;
		goto out;
	}
	/* The counts are read while this row's statement is still active, so
	 * from the same snapshot as the row. */
	ret = cluster_item(c, st, out, err);
out:
	stmt_done(st);
	return ret;
}

int tn_store_cluster_get(struct tn_store *store, const char *name, json_t **out,
			 struct tn_error *err)
{
	return cluster_read(store, name, true, out, err);
}

int tn_store_cluster_current_revision(struct tn_store *store, const char *name, json_t **out,
				      struct tn_error *err)
{
	return cluster_read(store, name, false, out, err);
}

int tn_store_cluster_create(struct tn_store *store, const char *name, const char *description,
			    const char *provider, json_t *lb,
			    const struct tn_store_bundle_ref *distribution, json_t *config,
			    const char *actor, json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char *lb_text = NULL, *ctext = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	int64_t dist_id = 0, cluster_id, revision_id;
	bool in_tx = false;
	int rc, ret;

	if ((config && !json_is_object(config)) || (lb && !json_is_object(lb))) {
		ret = tn_fail(err, TN_E_INVALID, "cluster %s: config and lb must be objects", name);
		goto out;
	}
	if (distribution) {
		ret = version_check(&distribution->version, err);
		if (ret)
			goto out;
	}
	lb_text = lb ? tn_json_canonical(lb) : NULL;
	ctext = json_text(config, "{}");
	tn_store_now(now);

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	if (distribution) {
		ret = dist_find(c, distribution->name, &distribution->version, &dist_id, NULL, err);
		if (ret)
			goto out;
	}

	ret = stmt_get(c, ST_CLUSTER_INSERT, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, name);
	bind_text(c, st, 2, description ? description : "");
	bind_text(c, st, 3, provider);
	bind_text(c, st, 4, lb_text);
	bind_text(c, st, 5, now);
	rc = step(c, st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		ret = tn_fail(err, TN_E_EXISTS, "cluster %s already exists", name);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(c, rc, err, "insert cluster");
		goto out;
	}
	stmt_done(st);
	cluster_id = sqlite3_last_insert_rowid(c->db);

	ret = stmt_get(c, ST_REVISION_INSERT, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, cluster_id);
	bind_int(c, st, 2, 1);
	if (distribution)
		bind_int(c, st, 3, dist_id);
	else
		bind_text(c, st, 3, NULL);
	bind_text(c, st, 4, ctext);
	bind_text(c, st, 5, now);
	bind_text(c, st, 6, actor);
	ret = run_done(c, st, err, "insert revision");
	if (ret)
		goto out;
	stmt_done(st);
	revision_id = sqlite3_last_insert_rowid(c->db);

	ret = stmt_get(c, ST_CLUSTER_SET_REVISION, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, cluster_id);
	bind_int(c, st, 2, revision_id);
	ret = run_done(c, st, err, "set revision");
	if (ret)
		goto out;
	stmt_done(st);
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
	if (out)
		ret = tn_store_cluster_get(store, name, out, err);
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	free(lb_text);
	free(ctext);
	return ret;
}

int tn_store_cluster_list(struct tn_store *store, unsigned limit, const char *after, json_t **out,
			  struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	json_t *cursor = NULL;
	const char *cname = "";
	int ret;

	limit = clamp_limit(limit);
	if (after) {
		ret = cursor_decode(after, &cursor, err, "[s]", &cname);
		if (ret)
			goto out;
	}
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_CLUSTER_LIST, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, cname);
	bind_int(c, st, 2, (int64_t)limit + 1);
	ret = run_page(c, st, limit, cluster_item, name_key, out, err);
out:
	stmt_done(st);
	json_decref(cursor);
	return ret;
}

int tn_store_cluster_patch(struct tn_store *store, const char *name, const char *description,
			   const char *provider, json_t *lb, json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char *lb_text = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	int ret;

	if (lb && !json_is_object(lb)) {
		ret = tn_fail(err, TN_E_INVALID, "lb: must be an object");
		goto out;
	}
	lb_text = lb ? tn_json_canonical(lb) : NULL;
	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	/* One statement: atomic without an explicit transaction. */
	ret = stmt_get(c, ST_CLUSTER_PATCH, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, name);
	bind_text(c, st, 2, description);
	bind_text(c, st, 3, provider);
	bind_text(c, st, 4, lb_text);
	bind_text(c, st, 5, now);
	ret = run_done(c, st, err, "patch cluster");
	if (ret)
		goto out;
	if (sqlite3_changes(c->db) == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "cluster %s not found", name);
		goto out;
	}
	stmt_done(st);
	if (out)
		ret = tn_store_cluster_get(store, name, out, err);
out:
	stmt_done(st);
	free(lb_text);
	return ret;
}

int tn_store_cluster_delete(struct tn_store *store, const char *name, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int64_t id = 0, live;
	bool in_tx = false;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = cluster_find(c, name, &id, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_CLUSTER_LIVE_TARGETS, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, id);
	ret = run_row(c, st, err, "count targets");
	if (ret < 0)
		goto out;
	live = ret ? sqlite3_column_int64(st, 0) : 0;
	ret = 0;
	if (live > 0) {
		ret = tn_fail(err, TN_E_CONFLICT,
			      "cluster %s still has %" PRId64
			      " target%s not removed: remove %s first",
			      name, live, live == 1 ? "" : "s", live == 1 ? "it" : "them");
		goto out;
	}
	stmt_done(st);
	/* Cascades to removed targets, revisions, rollouts, enrollment tokens. */
	ret = stmt_get(c, ST_CLUSTER_DELETE, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, id);
	ret = run_done(c, st, err, "delete cluster");
	if (ret)
		goto out;
	stmt_done(st);
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	return ret;
}

int tn_store_cluster_count(struct tn_store *store, int64_t *out, struct tn_error *err)
{
	return count_query(store, ST_CLUSTER_COUNT, out, err);
}

/* ------------------------------------------------------------ targets */

/* Row (TARGET_SELECT): seq, id, cluster, provider, instance, address, state,
 * phase, health, generation, desired_release, actual_release, last_result,
 * last_message, last_seen, inventory, config, created, updated, bundles,
 * agent_port, serves_port. */
static int target_item(struct conn *c, sqlite3_stmt *st, json_t **out, struct tn_error *err)
{
	json_t *last =
	    sqlite3_column_type(st, 12) == SQLITE_NULL
		? json_null()
		: json_pack("{s:o, s:o}", "result", col_str(st, 12), "message", col_str(st, 13));

	*out = json_pack(
	    "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:{s:o, s:o}, s:o, s:o, s:o,"
	    " s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "id", col_str(st, 1), "cluster", col_str(st, 2), "provider", col_str(st, 3), "instance",
	    col_str(st, 4), "address", col_str(st, 5), "state", col_str(st, 6), "phase",
	    col_str(st, 7), "health", col_str(st, 8), "desired", "release", col_str(st, 10),
	    "generation", col_int(st, 9), "actual", col_str(st, 11), "last_result", last,
	    "last_seen", col_str(st, 14), "inventory", col_json(st, 15), "config", col_json(st, 16),
	    "created", col_str(st, 17), "updated", col_str(st, 18), "bundles", col_json(st, 19),
	    "agent_port",
	    sqlite3_column_type(st, 20) == SQLITE_NULL ? json_null() : col_int(st, 20),
	    "serves_port",
	    sqlite3_column_type(st, 21) == SQLITE_NULL ? json_null() : col_int(st, 21));
	return 0;
}

static char *seq_key(sqlite3_stmt *st)
{
	return cursor_encode(json_pack("[I]", (json_int_t)sqlite3_column_int64(st, 0)));
}

int tn_store_target_create(struct tn_store *store, const struct tn_store_target_spec *spec,
			   json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char id[32];
	char *ctext = NULL, *itext = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	const char *state = spec->state ? spec->state : "provisioning";
	int64_t cluster_id = 0;
	bool in_tx = false;
	int rc, ret;

	if (!in_list(state, target_states)) {
		ret = tn_fail(err, TN_E_INVALID, "state: %s is not a target state", state);
		goto out;
	}
	if (spec->config && !json_is_object(spec->config)) {
		ret = tn_fail(err, TN_E_INVALID, "config: must be an object");
		goto out;
	}
	if (spec->id) {
		if (strlen(spec->id) >= sizeof id) {
			ret = tn_fail(err, TN_E_INVALID, "target id: too long");
			goto out;
		}
		snprintf(id, sizeof id, "%s", spec->id);
	} else {
		ret = random_id("t-", id, sizeof id, err);
		if (ret)
			goto out;
	}
	ctext = json_text(spec->config, "{}");
	itext = spec->inventory ? tn_json_canonical(spec->inventory) : NULL;
	tn_store_now(now);

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = cluster_find(c, spec->cluster, &cluster_id, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_TARGET_INSERT, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	bind_int(c, st, 2, cluster_id);
	bind_text(c, st, 3, spec->provider);
	bind_text(c, st, 4, spec->instance);
	bind_text(c, st, 5, spec->address);
	bind_text(c, st, 6, state);
	bind_text(c, st, 7, itext);
	bind_text(c, st, 8, ctext);
	bind_text(c, st, 9, now);
	rc = step(c, st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		ret = tn_fail(err, TN_E_EXISTS, "target %s already exists", id);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(c, rc, err, "insert target");
		goto out;
	}
	stmt_done(st);
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
	if (out)
		ret = tn_store_target_get(store, id, out, err);
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	free(ctext);
	free(itext);
	return ret;
}

int tn_store_target_get(struct tn_store *store, const char *id, json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_TARGET_GET, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	ret = run_row(c, st, err, "get target");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "target %s not found", id);
		goto out;
	}
	ret = target_item(c, st, out, err);
out:
	stmt_done(st);
	return ret;
}

int tn_store_target_list(struct tn_store *store, const char *cluster, const char *state,
			 unsigned limit, const char *after, json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	json_t *cursor = NULL;
	json_int_t seq = 0;
	int ret;

	limit = clamp_limit(limit);
	if (after) {
		ret = cursor_decode(after, &cursor, err, "[I]", &seq);
		if (ret)
			goto out;
	}
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_TARGET_LIST, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, seq);
	bind_text(c, st, 2, cluster);
	bind_text(c, st, 3, state);
	bind_int(c, st, 4, (int64_t)limit + 1);
	ret = run_page(c, st, limit, target_item, seq_key, out, err);
out:
	stmt_done(st);
	json_decref(cursor);
	return ret;
}

int tn_store_target_count_by_state(struct tn_store *store, const char *cluster, json_t **out,
				   struct tn_error *err)
{
	struct conn *c = NULL;
	int64_t id = -1;
	int ret;

	ret = conn_get(store, &c, err);
	if (!ret && cluster)
		ret = cluster_find(c, cluster, &id, err);
	if (!ret)
		ret = state_counts(c, cluster ? ST_CLUSTER_STATE_COUNTS : ST_TARGET_STATE_COUNTS,
				   id, out, NULL, err);
	return ret;
}

/* ------------------------------------------------------------ API tokens */

int tn_store_api_token_create(struct tn_store *store, const char *name, const char *token_hash,
			      const char *role, const char *expires, const char *actor,
			      struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	bool in_tx = false;
	int rc, ret;

	if (!in_list(role, roles)) {
		ret = tn_fail(err, TN_E_INVALID,
			      "role: %s is not one of viewer, developer, operator, admin", role);
		goto out;
	}
	if (!sha256_hex_valid(token_hash) || (expires && !time_valid(expires))) {
		ret = tn_fail(err, TN_E_INVALID, "token %s: bad hash or expiry time", name);
		goto out;
	}
	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	/* A revoked token's name can be taken again (rotation); its history
	 * stays in the event log. */
	ret = stmt_get(c, ST_TOKEN_DELETE_REVOKED, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, name);
	ret = run_done(c, st, err, "replace revoked token");
	if (ret)
		goto out;
	stmt_done(st);
	ret = stmt_get(c, ST_TOKEN_EXISTS, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, name);
	ret = run_row(c, st, err, "find token");
	if (ret < 0)
		goto out;
	if (ret == 1) {
		ret =
		    tn_fail(err, TN_E_EXISTS, "API token %s already exists: revoke it first", name);
		goto out;
	}
	stmt_done(st);
	ret = stmt_get(c, ST_TOKEN_INSERT, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, name);
	bind_text(c, st, 2, token_hash);
	bind_text(c, st, 3, role);
	bind_text(c, st, 4, expires);
	bind_text(c, st, 5, now);
	bind_text(c, st, 6, actor);
	rc = step(c, st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		ret =
		    tn_fail(err, TN_E_EXISTS, "API token %s: this secret is already in use", name);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(c, rc, err, "insert token");
		goto out;
	}
	stmt_done(st);
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	return ret;
}

/* Row: name, role, expires, created, created_by, revoked_at. */
static int token_item(struct conn *c, sqlite3_stmt *st, json_t **out, struct tn_error *err)
{
	*out = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "name", col_str(st, 0), "role",
			 col_str(st, 1), "expires", col_str(st, 2), "created", col_str(st, 3),
			 "created_by", col_str(st, 4), "revoked_at", col_str(st, 5));
	return 0;
}

static char *token_key(sqlite3_stmt *st)
{
	return cursor_encode(json_pack("[s]", col_cstr(st, 0)));
}

int tn_store_api_token_list(struct tn_store *store, unsigned limit, const char *after, json_t **out,
			    struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	json_t *cursor = NULL;
	const char *cname = "";
	int ret;

	limit = clamp_limit(limit);
	if (after) {
		ret = cursor_decode(after, &cursor, err, "[s]", &cname);
		if (ret)
			goto out;
	}
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_TOKEN_LIST, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, cname);
	bind_int(c, st, 2, (int64_t)limit + 1);
	ret = run_page(c, st, limit, token_item, token_key, out, err);
out:
	stmt_done(st);
	json_decref(cursor);
	return ret;
}

int tn_store_api_token_revoke(struct tn_store *store, const char *name, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	int ret;

	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_TOKEN_REVOKE, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, name);
	bind_text(c, st, 2, now);
	ret = run_done(c, st, err, "revoke token");
	if (ret)
		goto out;
	stmt_done(st);
	if (sqlite3_changes(c->db) > 0)
		goto out;
	/* Nothing changed: already revoked (fine) or unknown. */
	ret = stmt_get(c, ST_TOKEN_EXISTS, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, name);
	ret = run_row(c, st, err, "find token");
	if (ret < 0)
		goto out;
	ret = ret ? 0 : tn_fail(err, TN_E_NOT_FOUND, "API token %s not found", name);
out:
	stmt_done(st);
	return ret;
}

int tn_store_api_token_each_active(struct tn_store *store, tn_store_token_fn fn, void *ctx,
				   struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	json_t *rows = json_array();
	char now[TN_STORE_TIME_LEN + 1];
	size_t i;
	json_t *row;
	int ret;

	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_TOKEN_ACTIVE, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, now);
	while ((ret = run_row(c, st, err, "active tokens")) == 1)
		json_array_append_new(rows,
				      json_pack("[o, o, o, o]", col_str(st, 0), col_str(st, 1),
						col_str(st, 2), col_str(st, 3)));
	if (ret < 0)
		goto out;
	ret = 0;
	/* The statement is done before fn runs: fn may use the store. */
	stmt_done(st);
	st = NULL;
	json_array_foreach(rows, i, row)
	{
		ret = fn(ctx, json_string_value(json_array_get(row, 0)),
			 json_string_value(json_array_get(row, 1)),
			 json_string_value(json_array_get(row, 2)),
			 json_string_value(json_array_get(row, 3)));
		if (ret)
			break;
	}
out:
	stmt_done(st);
	json_decref(rows);
	return ret;
}

/* ------------------------------------------------------------ enrollment tokens */

int tn_store_enrollment_token_create(struct tn_store *store, const char *token_hash,
				     const char *cluster, int64_t uses, const char *expires,
				     const char *actor, json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	int64_t cluster_id = 0;
	bool in_tx = false;
	int rc, ret;

	if (!sha256_hex_valid(token_hash) || !time_valid(expires) || uses < 1) {
		ret = tn_fail(err, TN_E_INVALID,
			      "enrollment token: bad hash, expiry time or uses (at least 1)");
		goto out;
	}
	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = cluster_find(c, cluster, &cluster_id, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_ENROLL_INSERT, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, token_hash);
	bind_int(c, st, 2, cluster_id);
	bind_int(c, st, 3, uses);
	bind_text(c, st, 4, expires);
	bind_text(c, st, 5, actor);
	bind_text(c, st, 6, now);
	rc = step(c, st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		ret = tn_fail(err, TN_E_EXISTS, "enrollment token: this secret is already in use");
		goto out;
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(c, rc, err, "insert enrollment token");
		goto out;
	}
	stmt_done(st);
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
	if (out)
		*out = json_pack("{s:s, s:I, s:s}", "cluster", cluster, "uses", (json_int_t)uses,
				 "expires", expires);
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	return ret;
}

/* ------------------------------------------------------------ events */

int tn_store_event_append(struct tn_store *store, const char *actor, const char *action,
			  const char *object_type, const char *object_id, const char *outcome,
			  json_t *detail, int64_t *id, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char *dtext = detail ? tn_json_canonical(detail) : NULL;
	char now[TN_STORE_TIME_LEN + 1];
	int ret;

	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	/* One INSERT: its own transaction, taking the write lock up front. */
	ret = stmt_get(c, ST_EVENT_INSERT, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, now);
	bind_text(c, st, 2, actor);
	bind_text(c, st, 3, action);
	bind_text(c, st, 4, object_type);
	bind_text(c, st, 5, object_id);
	bind_text(c, st, 6, outcome);
	bind_text(c, st, 7, dtext);
	ret = run_done(c, st, err, "append event");
	if (ret)
		goto out;
	if (id)
		*id = sqlite3_last_insert_rowid(c->db);
out:
	stmt_done(st);
	free(dtext);
	return ret;
}

/* Row: id, at, actor, action, object_type, object_id, outcome, detail. */
static int event_item(struct conn *c, sqlite3_stmt *st, json_t **out, struct tn_error *err)
{
	*out = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", col_int(st, 0), "at",
			 col_str(st, 1), "actor", col_str(st, 2), "action", col_str(st, 3),
			 "object_type", col_str(st, 4), "object_id", col_str(st, 5), "outcome",
			 col_str(st, 6), "detail", col_json(st, 7));
	return 0;
}

/* Event cursors are plain ids, as in ?after=N and Last-Event-ID. */
static char *event_key(sqlite3_stmt *st)
{
	return xasprintf("%" PRId64, (int64_t)sqlite3_column_int64(st, 0));
}

static int parse_event_id(const char *s, int64_t *out, struct tn_error *err)
{
	int64_t v = 0;
	size_t i;

	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 18)
			return tn_fail(err, TN_E_INVALID, "after: not an event id");
		v = v * 10 + (s[i] - '0');
	}
	if (i == 0)
		return tn_fail(err, TN_E_INVALID, "after: not an event id");
	*out = v;
	return 0;
}

int tn_store_event_list(struct tn_store *store, const char *after, unsigned limit, json_t **out,
			struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int64_t from = 0;
	int ret;

	limit = clamp_limit(limit);
	if (after) {
		ret = parse_event_id(after, &from, err);
		if (ret)
			goto out;
	}
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_EVENT_LIST, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, from);
	bind_int(c, st, 2, (int64_t)limit + 1);
	ret = run_page(c, st, limit, event_item, event_key, out, err);
out:
	stmt_done(st);
	return ret;
}

int tn_store_event_last_id(struct tn_store *store, int64_t *out, struct tn_error *err)
{
	return count_query(store, ST_EVENT_LAST, out, err);
}

/* ------------------------------------------------------------ transactions */

int tn_store_begin(struct tn_store *store, struct tn_error *err)
{
	struct conn *c = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (!ret)
		ret = tx_begin(c, err);
	return ret;
}

int tn_store_commit(struct tn_store *store, struct tn_error *err)
{
	struct conn *c = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		return ret;
	if (c->tx_depth == 0)
		return tn_fail(err, TN_E_INTERNAL, "database: commit without a transaction");
	return tx_commit(c, err);
}

void tn_store_rollback(struct tn_store *store)
{
	/* No connection yet: no transaction either. */
	struct conn *c = pthread_getspecific(store->key);

	if (c && c->tx_depth > 0)
		tx_rollback(c);
}

/* ------------------------------------------------------------ agents */

static const char *const phases[] = {
    "idle", "preparing", "prepared", "switching", "committing", "rolling_back", NULL,
};
/* stale is the server's verdict on a silent agent, never an agent's report. */
static const char *const healths[] = {"unknown", "healthy", "unhealthy", "stale", NULL};
static const char *const results[] = {"succeeded", "failed", NULL};

/* The column's JSON, or NULL (not json null) for SQL NULL; caller decrefs. */
static json_t *col_json_opt(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NULL : col_json(st, i);
}

/* A copy of the column's text, or NULL for SQL NULL; caller frees. */
static char *col_dup(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s ? xstrdup(s) : NULL;
}

static json_t *col_int_opt(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null() : col_int(st, i);
}

int tn_store_target_enrollment_token_create(struct tn_store *store, const char *target_id,
					    const char *token_hash, const char *expires,
					    const char *actor, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	int rc, ret;

	if (!sha256_hex_valid(token_hash) || !time_valid(expires)) {
		ret = tn_fail(err, TN_E_INVALID, "enrollment token: bad hash or expiry time");
		goto out;
	}
	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	/* One statement: the target's cluster is read and the token written
	 * atomically. */
	ret = stmt_get(c, ST_ENROLL_INSERT_BOUND, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, token_hash);
	bind_text(c, st, 2, target_id);
	bind_text(c, st, 3, expires);
	bind_text(c, st, 4, actor);
	bind_text(c, st, 5, now);
	rc = step(c, st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		ret = tn_fail(err, TN_E_EXISTS, "enrollment token: this secret is already in use");
		goto out;
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(c, rc, err, "insert enrollment token");
		goto out;
	}
	if (sqlite3_changes(c->db) == 0)
		ret = tn_fail(err, TN_E_NOT_FOUND, "target %s not found", target_id);
out:
	stmt_done(st);
	return ret;
}

/* Checks that a bound token's target may enroll, inside the transaction. */
static int enroll_target_check(struct conn *c, const char *id, struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	const char *state;
	int ret;

	ret = stmt_get(c, ST_ENROLL_TARGET_STATE, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	ret = run_row(c, st, err, "find target");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		/* the token goes with its target: only a race gets here */
		ret = tn_fail(err, TN_E_NOT_FOUND, "target %s not found", id);
		goto out;
	}
	ret = 0;
	state = col_cstr(st, 0);
	if (strcmp(state, "provisioning") != 0 && strcmp(state, "enrolled") != 0)
		ret = tn_fail(err, TN_E_CONFLICT,
			      "target %s is %s: only a provisioning or enrolled target can enroll "
			      "with its token",
			      id, state);
out:
	stmt_done(st);
	return ret;
}

int tn_store_enroll(struct tn_store *store, const char *enroll_hash, const char *target_hash,
		    json_t *inventory, const char *address, int agent_port, char **target_id,
		    struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char *itext = NULL, *bound = NULL;
	char id[32] = "";
	char now[TN_STORE_TIME_LEN + 1];
	int64_t token_id = 0, cluster_id = 0;
	bool in_tx = false;
	int rc, ret;

	if (!sha256_hex_valid(target_hash)) {
		ret = tn_fail(err, TN_E_INVALID, "enroll: the target token hash is not sha256 hex");
		goto out;
	}
	if (inventory && !json_is_object(inventory)) {
		ret = tn_fail(err, TN_E_INVALID, "inventory: must be an object");
		goto out;
	}
	if (agent_port < 0 || agent_port > 65535) {
		ret = tn_fail(err, TN_E_INVALID, "agent_port: %d is not a port", agent_port);
		goto out;
	}
	itext = inventory ? tn_json_canonical(inventory) : NULL;
	tn_store_now(now);

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = stmt_get(c, ST_ENROLL_FIND, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, enroll_hash);
	ret = run_row(c, st, err, "find enrollment token");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_UNAUTHORIZED, "unknown enrollment token");
		goto out;
	}
	if (sqlite3_column_int64(st, 3) == ENROLL_REVOKED) {
		ret = tn_fail(err, TN_E_UNAUTHORIZED, "enrollment token revoked");
		goto out;
	}
	if (strcmp(col_cstr(st, 4), now) <= 0) {
		ret = tn_fail(err, TN_E_UNAUTHORIZED, "enrollment token expired at %s",
			      col_cstr(st, 4));
		goto out;
	}
	if (sqlite3_column_int64(st, 3) <= 0) {
		ret = tn_fail(err, TN_E_UNAUTHORIZED, "enrollment token used up");
		goto out;
	}
	token_id = sqlite3_column_int64(st, 0);
	cluster_id = sqlite3_column_int64(st, 1);
	bound = col_dup(st, 2);
	stmt_done(st);

	if (bound) {
		ret = enroll_target_check(c, bound, err);
		if (ret)
			goto out;
		snprintf(id, sizeof id, "%s", bound);
	} else {
		/* A hand enrollment: a new target, made as a provider would
		 * (provisioning), then enrolled below like any other. */
		ret = random_id("t-", id, sizeof id, err);
		if (ret)
			goto out;
		ret = stmt_get(c, ST_TARGET_INSERT, &st, err);
		if (ret)
			goto out;
		bind_text(c, st, 1, id);
		bind_int(c, st, 2, cluster_id);
		bind_text(c, st, 3, "manual");
		bind_text(c, st, 4, NULL);
		bind_text(c, st, 5, NULL);
		bind_text(c, st, 6, "provisioning");
		bind_text(c, st, 7, NULL);
		bind_text(c, st, 8, "{}");
		bind_text(c, st, 9, now);
		ret = run_done(c, st, err, "insert target");
		if (ret)
			goto out;
		stmt_done(st);
	}

	ret = stmt_get(c, ST_ENROLL_TARGET_SET, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	bind_text(c, st, 2, target_hash);
	bind_text(c, st, 3, itext);
	bind_text(c, st, 4, address);
	if (agent_port > 0)
		bind_int(c, st, 5, agent_port);
	else
		bind_text(c, st, 5, NULL);
	bind_text(c, st, 6, now);
	rc = step(c, st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		ret = tn_fail(err, TN_E_EXISTS, "enroll: this target token is already in use");
		goto out;
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(c, rc, err, "enroll target");
		goto out;
	}
	stmt_done(st);

	ret = stmt_get(c, ST_ENROLL_USE, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, token_id);
	ret = run_done(c, st, err, "use enrollment token");
	if (ret)
		goto out;
	stmt_done(st);
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
	*target_id = xstrdup(id);
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	free(itext);
	free(bound);
	return ret;
}

int tn_store_enrollment_token_revoke(struct tn_store *store, const char *token_hash,
				     char **cluster, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char *name = NULL;
	int64_t id;
	bool in_tx = false;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = stmt_get(c, ST_ENROLL_REVOKE_FIND, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, token_hash);
	ret = run_row(c, st, err, "find enrollment token");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "unknown enrollment token");
		goto out;
	}
	id = sqlite3_column_int64(st, 0);
	name = col_dup(st, 1);
	stmt_done(st);
	ret = stmt_get(c, ST_ENROLL_REVOKE, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, id);
	ret = run_done(c, st, err, "revoke enrollment token");
	if (ret)
		goto out;
	stmt_done(st);
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
	*cluster = name;
	name = NULL;
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	free(name);
	return ret;
}

int tn_store_target_by_token(struct tn_store *store, const char *hash, char **id,
			     struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_TARGET_BY_TOKEN, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, hash);
	ret = run_row(c, st, err, "find target by token");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "no target has this token");
		goto out;
	}
	ret = 0;
	*id = xstrdup(col_cstr(st, 0));
out:
	stmt_done(st);
	return ret;
}

int tn_store_target_revoke(struct tn_store *store, const char *id, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	int ret;

	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_TARGET_REVOKE, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	bind_text(c, st, 2, now);
	ret = run_done(c, st, err, "revoke target token");
	if (ret)
		goto out;
	if (sqlite3_changes(c->db) == 0)
		ret = tn_fail(err, TN_E_NOT_FOUND, "target %s not found", id);
out:
	stmt_done(st);
	return ret;
}

void tn_store_doc_clear(struct tn_store_doc *doc)
{
	if (!doc)
		return;
	free(doc->cluster);
	free(doc->state);
	json_decref(doc->run);
	json_decref(doc->prepare);
	json_decref(doc->config);
	json_decref(doc->lb);
	free(doc->body);
	free(doc->signature);
	free(doc->etag);
	memset(doc, 0, sizeof *doc);
}

int tn_store_doc_get(struct tn_store *store, const char *target_id, struct tn_store_doc *out,
		     struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret;

	memset(out, 0, sizeof *out);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_DOC_GET, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, target_id);
	ret = run_row(c, st, err, "get desired document");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "target %s not found", target_id);
		goto out;
	}
	ret = 0;
	out->cluster = xstrdup(col_cstr(st, 0));
	out->state = xstrdup(col_cstr(st, 1));
	out->generation = sqlite3_column_int64(st, 2);
	out->run = col_json_opt(st, 3);
	out->prepare = col_json_opt(st, 4);
	out->config = col_json_opt(st, 5);
	if (!json_is_object(out->config)) {
		json_decref(out->config);
		out->config = json_object();
	}
	out->lb = col_json_opt(st, 6);
	out->body = col_dup(st, 7);
	out->signature = col_dup(st, 8);
	out->etag = col_dup(st, 9);
	out->agent_port = sqlite3_column_int(st, 10);
out:
	stmt_done(st);
	return ret;
}

/* A RELEASE as doc_put takes it: NULL or an object with a string id. */
static int release_check(json_t *release, const char *what, struct tn_error *err)
{
	if (release && !json_is_string(json_object_get(release, "id")))
		return tn_fail(err, TN_E_INVALID, "%s: a release must be an object with an id",
			       what);
	return 0;
}

int tn_store_doc_put(struct tn_store *store, const char *target_id, int64_t expected_generation,
		     json_t *run, json_t *prepare, const char *state, const char *body,
		     const char *signature, const char *etag, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char *run_text = NULL, *prep_text = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	bool in_tx = false;
	int ret;

	ret = release_check(run, "run", err);
	if (!ret)
		ret = release_check(prepare, "prepare", err);
	if (ret)
		goto out;
	if (state && !in_list(state, target_states)) {
		ret = tn_fail(err, TN_E_INVALID, "state: %s is not a target state", state);
		goto out;
	}
	run_text = run ? tn_json_canonical(run) : NULL;
	prep_text = prepare ? tn_json_canonical(prepare) : NULL;
	tn_store_now(now);

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	/* Compare-and-set on the generation: a document that went out can
	 * never be replaced by one with the same number. */
	ret = stmt_get(c, ST_DOC_PUT, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, target_id);
	bind_int(c, st, 2, expected_generation);
	bind_text(c, st, 3, run_text);
	bind_text(c, st, 4, prep_text);
	bind_text(c, st, 5, run ? json_string_value(json_object_get(run, "id")) : NULL);
	bind_text(c, st, 6, state);
	bind_text(c, st, 7, body);
	bind_text(c, st, 8, signature);
	bind_text(c, st, 9, etag);
	bind_text(c, st, 10, now);
	ret = run_done(c, st, err, "put desired document");
	if (ret)
		goto out;
	stmt_done(st);
	if (sqlite3_changes(c->db) == 0) {
		/* Which of the two: no such target, or another generation. */
		ret = stmt_get(c, ST_TARGET_GENERATION, &st, err);
		if (ret)
			goto out;
		bind_text(c, st, 1, target_id);
		ret = run_row(c, st, err, "target generation");
		if (ret < 0)
			goto out;
		if (ret == 0)
			ret = tn_fail(err, TN_E_NOT_FOUND, "target %s not found", target_id);
		else
			ret = tn_fail(err, TN_E_CONFLICT,
				      "target %s: the desired document is at generation %" PRId64
				      ", not %" PRId64 " (written meanwhile)",
				      target_id, (int64_t)sqlite3_column_int64(st, 0),
				      expected_generation);
		goto out;
	}
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	free(run_text);
	free(prep_text);
	return ret;
}

void tn_store_free_ids(char **ids)
{
	if (!ids)
		return;
	for (size_t i = 0; ids[i]; i++)
		free(ids[i]);
	free(ids);
}

int tn_store_cluster_target_ids(struct tn_store *store, const char *cluster, char ***ids, size_t *n,
				struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char **list = xcalloc(1, sizeof *list);
	size_t count = 0, cap = 0;
	int64_t cluster_id = 0;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = cluster_find(c, cluster, &cluster_id, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_CLUSTER_TARGET_IDS, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, cluster_id);
	while ((ret = run_row(c, st, err, "cluster targets")) == 1) {
		if (count + 1 >= cap) {
			cap = cap ? cap * 2 : 16;
			list = xrealloc(list, cap * sizeof *list);
		}
		list[count++] = xstrdup(col_cstr(st, 0));
		list[count] = NULL;
	}
	if (ret < 0)
		goto out;
	ret = 0;
	*ids = list;
	list = NULL;
	if (n)
		*n = count;
out:
	stmt_done(st);
	tn_store_free_ids(list);
	return ret;
}

static int target_update_check(const struct tn_store_target_update *u, struct tn_error *err)
{
	const char *key;
	json_t *value;

	if (u->state && !in_list(u->state, target_states))
		return tn_fail(err, TN_E_INVALID, "state: %s is not a target state", u->state);
	if (u->phase && !in_list(u->phase, phases))
		return tn_fail(err, TN_E_INVALID, "phase: %s is not a phase", u->phase);
	if (u->health && !in_list(u->health, healths))
		return tn_fail(err, TN_E_INVALID, "health: %s is not a health", u->health);
	if (u->last_result && !in_list(u->last_result, results))
		return tn_fail(err, TN_E_INVALID, "last_result: %s is not succeeded or failed",
			       u->last_result);
	if (u->bundles && !json_is_array(u->bundles))
		return tn_fail(err, TN_E_INVALID, "bundles: must be an array");
	if (u->logs && !json_is_object(u->logs))
		return tn_fail(err, TN_E_INVALID, "logs: must be an object");
	if (u->config && !json_is_object(u->config))
		return tn_fail(err, TN_E_INVALID, "config: must be an object");
	if (u->logs)
		json_object_foreach(u->logs, key, value)
		{
			if (!json_is_string(value))
				return tn_fail(err, TN_E_INVALID, "logs.%.*s: must be a string",
					       TN_SHOW_MAX, key);
		}
	return 0;
}

int tn_store_targets_seen(struct tn_store *store, const char *const *ids,
			  const char *const *times, size_t n, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	bool in_tx = false;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	for (size_t i = 0; i < n; i++) {
		ret = stmt_get(c, ST_TARGET_SEEN, &st, err);
		if (ret)
			goto out;
		bind_text(c, st, 1, ids[i]);
		bind_text(c, st, 2, times[i]);
		ret = run_done(c, st, err, "set last_seen");
		if (ret)
			goto out;
		stmt_done(st);
		st = NULL;
	}
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	return ret;
}

int tn_store_target_update(struct tn_store *store, const char *id,
			   const struct tn_store_target_update *u, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	json_t *logs = NULL;
	char *bundles_text = NULL, *logs_text = NULL, *config_text = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	bool in_tx = false;
	int ret;

	ret = target_update_check(u, err);
	if (ret)
		goto out;
	bundles_text = u->bundles ? tn_json_canonical(u->bundles) : NULL;
	config_text = u->config ? tn_json_canonical(u->config) : NULL;
	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	if (u->logs) {
		/* Merged: a report carries the tails that changed, not all. */
		ret = stmt_get(c, ST_TARGET_LOGS, &st, err);
		if (ret)
			goto out;
		bind_text(c, st, 1, id);
		ret = run_row(c, st, err, "target logs");
		if (ret < 0)
			goto out;
		if (ret == 0) {
			ret = tn_fail(err, TN_E_NOT_FOUND, "target %s not found", id);
			goto out;
		}
		ret = 0;
		logs = col_json_opt(st, 0);
		stmt_done(st);
		if (!json_is_object(logs)) {
			json_decref(logs);
			logs = json_object();
		}
		json_object_update(logs, u->logs);
		if (json_object_size(logs) > TN_STORE_DIST_BUNDLES_MAX) {
			ret = tn_fail(err, TN_E_INVALID, "logs: more than %d bundles",
				      TN_STORE_DIST_BUNDLES_MAX);
			goto out;
		}
		logs_text = tn_json_canonical(logs);
	}
	ret = stmt_get(c, ST_TARGET_UPDATE, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	bind_text(c, st, 2, u->state);
	bind_text(c, st, 3, u->phase);
	bind_text(c, st, 4, u->health);
	bind_text(c, st, 5, u->actual_release);
	bind_text(c, st, 6, u->last_result);
	bind_text(c, st, 7, u->last_message);
	bind_text(c, st, 8, bundles_text);
	bind_text(c, st, 9, logs_text);
	bind_int(c, st, 10, u->seen ? 1 : 0);
	bind_text(c, st, 11, now);
	bind_text(c, st, 12, u->instance);
	bind_text(c, st, 13, u->address);
	bind_text(c, st, 14, config_text);
	if (u->serves_port > 0)
		bind_int(c, st, 15, u->serves_port);
	ret = run_done(c, st, err, "update target");
	if (ret)
		goto out;
	stmt_done(st);
	if (sqlite3_changes(c->db) == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "target %s not found", id);
		goto out;
	}
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	json_decref(logs);
	free(bundles_text);
	free(logs_text);
	free(config_text);
	return ret;
}

int tn_store_target_logs(struct tn_store *store, const char *id, json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	json_t *logs;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_TARGET_LOGS, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	ret = run_row(c, st, err, "target logs");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "target %s not found", id);
		goto out;
	}
	ret = 0;
	logs = col_json_opt(st, 0);
	if (!json_is_object(logs)) {
		json_decref(logs);
		logs = json_object();
	}
	*out = logs;
out:
	stmt_done(st);
	return ret;
}

/* ------------------------------------------------------------ rollouts */

static const char *const rollout_states[] = {
    "pending_approval", "running", "paused", "succeeded", "failed", "rolled_back", "aborted", NULL,
};
static const char *const active_rollout_states[] = {"pending_approval", "running", "paused", NULL};

/* targets as rollout_create takes it: NULL or [{id, from_release?, to_release}]. */
static int rollout_targets_check(json_t *targets, struct tn_error *err)
{
	json_t *entry, *from, *to;
	const char *id;
	size_t i;

	if (!targets)
		return 0;
	if (!json_is_array(targets))
		return tn_fail(err, TN_E_INVALID, "targets: must be an array");
	json_array_foreach(targets, i, entry)
	{
		from = NULL;
		to = NULL;
		json_int_t batch = 0;

		if (json_unpack_ex(entry, NULL, JSON_STRICT, "{s:s, s?o, s:o, s?I}", "id", &id,
				   "from_release", &from, "to_release", &to, "batch", &batch) != 0 ||
		    !(from == NULL || json_is_null(from) || json_is_object(from)) ||
		    !json_is_object(to) || batch < 0 || batch > 100000)
			return tn_fail(err, TN_E_INVALID,
				       "targets[%zu]: must be {id, from_release: object|null, "
				       "to_release: object, batch?: 0..100000}",
				       i);
	}
	return 0;
}

/* Fails with TN_E_CONFLICT naming the cluster's active rollout, if any. */
static int rollout_none_active(struct conn *c, int64_t cluster_id, const char *cluster,
			       struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	int ret;

	ret = stmt_get(c, ST_ROLLOUT_ACTIVE, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, cluster_id);
	ret = run_row(c, st, err, "active rollout");
	if (ret < 0)
		goto out;
	if (ret == 1)
		ret = tn_fail(err, TN_E_CONFLICT,
			      "cluster %s already has rollout %s (%s): finish or abort it first",
			      cluster, col_cstr(st, 0), col_cstr(st, 1));
out:
	stmt_done(st);
	return ret;
}

/* Adds one rollout_targets row per entry, each target checked to be of
 * cluster_id. */
static int rollout_targets_insert(struct conn *c, const char *rollout_id, int64_t cluster_id,
				  const char *cluster, json_t *targets, struct tn_error *err)
{
	sqlite3_stmt *find = NULL, *ins = NULL;
	json_t *entry, *from, *to, *from_of = NULL, *to_of = NULL;
	char *from_text = NULL, *to_text = NULL;
	const char *tid;
	size_t i;
	int rc, ret = 0;

	/* A fleet's targets share a few releases (the caller passes the same
	 * objects): each is written out once, not once per target. */
	json_array_foreach(targets, i, entry)
	{
		tid = json_string_value(json_object_get(entry, "id"));
		from = json_object_get(entry, "from_release");
		to = json_object_get(entry, "to_release");
		ret = stmt_get(c, ST_TARGET_CLUSTER, &find, err);
		if (ret)
			goto out;
		bind_text(c, find, 1, tid);
		ret = run_row(c, find, err, "find target");
		if (ret < 0)
			goto out;
		if (ret == 0) {
			ret = tn_fail(err, TN_E_NOT_FOUND, "targets[%zu]: target %s not found", i,
				      tid);
			goto out;
		}
		if (sqlite3_column_int64(find, 0) != cluster_id) {
			ret = tn_fail(err, TN_E_INVALID,
				      "targets[%zu]: target %s is not in cluster %s", i, tid,
				      cluster);
			goto out;
		}
		stmt_done(find);
		if (from != from_of || !from_text) {
			free(from_text);
			from_text = json_is_object(from) ? tn_json_canonical(from) : NULL;
			from_of = from;
		}
		if (to != to_of || !to_text) {
			free(to_text);
			to_text = tn_json_canonical(to);
			to_of = to;
		}
		ret = stmt_get(c, ST_ROLLOUT_TARGET_INSERT, &ins, err);
		if (ret)
			goto out;
		bind_text(c, ins, 1, rollout_id);
		bind_text(c, ins, 2, tid);
		bind_text(c, ins, 3, from_text);
		bind_text(c, ins, 4, to_text);
		bind_int(c, ins, 5, json_integer_value(json_object_get(entry, "batch")));
		rc = step(c, ins);
		if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
			ret = tn_fail(err, TN_E_INVALID, "targets[%zu]: target %s is listed twice",
				      i, tid);
			goto out;
		}
		if (rc != SQLITE_DONE) {
			ret = db_fail(c, rc, err, "insert rollout target");
			goto out;
		}
		stmt_done(ins);
	}
	ret = 0;
out:
	stmt_done(find);
	stmt_done(ins);
	free(from_text);
	free(to_text);
	return ret;
}

int tn_store_rollout_create(struct tn_store *store, const char *cluster,
			    const struct tn_store_bundle_ref *distribution, json_t *config,
			    json_t *strategy, json_t *targets, const char *actor, char **id,
			    struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char *ctext = NULL, *stext = NULL;
	char rid[32];
	char now[TN_STORE_TIME_LEN + 1];
	int64_t cluster_id = 0, dist_id = 0, from_rev = 0, to_rev, number;
	bool in_tx = false, has_from;
	int rc, ret;

	if ((config && !json_is_object(config)) || (strategy && !json_is_object(strategy))) {
		ret = tn_fail(err, TN_E_INVALID, "rollout: config and strategy must be objects");
		goto out;
	}
	if (distribution) {
		ret = version_check(&distribution->version, err);
		if (ret)
			goto out;
	}
	ret = rollout_targets_check(targets, err);
	if (ret)
		goto out;
	ret = random_id("r-", rid, sizeof rid, err);
	if (ret)
		goto out;
	ctext = json_text(config, "{}");
	stext = json_text(strategy, "{}");
	tn_store_now(now);

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = cluster_find(c, cluster, &cluster_id, err);
	if (ret)
		goto out;
	ret = rollout_none_active(c, cluster_id, cluster, err);
	if (ret)
		goto out;

	ret = stmt_get(c, ST_REVISION_CURRENT, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, cluster_id);
	ret = run_row(c, st, err, "current revision");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "cluster %s not found", cluster);
		goto out;
	}
	has_from = sqlite3_column_type(st, 0) != SQLITE_NULL;
	from_rev = sqlite3_column_int64(st, 0);
	if (!distribution) {
		if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
			ret = tn_fail(err, TN_E_INVALID,
				      "cluster %s has no distribution yet: a rollout must name one",
				      cluster);
			goto out;
		}
		dist_id = sqlite3_column_int64(st, 1);
	}
	number = sqlite3_column_int64(st, 2) + 1;
	stmt_done(st);
	if (distribution) {
		ret = dist_find(c, distribution->name, &distribution->version, &dist_id, NULL, err);
		if (ret)
			goto out;
	}

	ret = stmt_get(c, ST_REVISION_INSERT, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, cluster_id);
	bind_int(c, st, 2, number);
	bind_int(c, st, 3, dist_id);
	bind_text(c, st, 4, ctext);
	bind_text(c, st, 5, now);
	bind_text(c, st, 6, actor);
	ret = run_done(c, st, err, "insert revision");
	if (ret)
		goto out;
	stmt_done(st);
	to_rev = sqlite3_last_insert_rowid(c->db);

	ret = stmt_get(c, ST_ROLLOUT_INSERT, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, rid);
	bind_int(c, st, 2, cluster_id);
	if (has_from)
		bind_int(c, st, 3, from_rev);
	else
		bind_text(c, st, 3, NULL);
	bind_int(c, st, 4, to_rev);
	bind_text(c, st, 5, stext);
	bind_text(c, st, 6, actor);
	bind_text(c, st, 7, now);
	rc = step(c, st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		/* rollouts_one_active, or an id drawn twice: neither expected
		 * after the check above */
		ret = tn_fail(err, TN_E_CONFLICT, "cluster %s: another rollout is active", cluster);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(c, rc, err, "insert rollout");
		goto out;
	}
	stmt_done(st);
	if (targets) {
		ret = rollout_targets_insert(c, rid, cluster_id, cluster, targets, err);
		if (ret)
			goto out;
	}
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
	*id = xstrdup(rid);
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	free(ctext);
	free(stext);
	return ret;
}

static bool target_state_final(const char *s)
{
	return strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0 ||
	       strcmp(s, "reverted") == 0 || strcmp(s, "skipped") == 0;
}

/* Sets the derived state of a finished-reading batch: done when every
 * target has its end, pending when none has begun, else the rollout's. */
static void batch_close(json_t *batch, bool done, bool begun, const char *rollout_state)
{
	if (batch)
		json_object_set_new(batch, "state", json_string(done     ? "done"
								 : begun ? rollout_state
									 : "pending"));
}

/* Row (ROLLOUT_SELECT): seq, id, cluster, from "n@v", to "n@v", from
 * number, to number, state, strategy, created_by, created, updated.  The
 * targets and approvals are read while the row's statement is active, so
 * from the same snapshot. */
static int rollout_item(struct conn *c, sqlite3_stmt *row, json_t **out, struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	json_t *batches = json_array(), *approvals = json_array(), *batch = NULL;
	const char *id = col_cstr(row, 1), *state = col_cstr(row, 7), *tstate;
	int64_t index = -1, prepared = 0;
	bool done = true, begun = false;
	int ret;

	ret = stmt_get(c, ST_ROLLOUT_TARGETS, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	while ((ret = run_row(c, st, err, "rollout targets")) == 1) {
		if (!batch || sqlite3_column_int64(st, 0) != index) {
			batch_close(batch, done, begun, state);
			index = sqlite3_column_int64(st, 0);
			batch = json_pack("{s:I, s:[]}", "index", (json_int_t)index, "targets");
			json_array_append_new(batches, batch);
			done = true;
			begun = false;
		}
		tstate = col_cstr(st, 2);
		if (!target_state_final(tstate))
			done = false;
		if (strcmp(tstate, "pending") != 0)
			begun = true;
		prepared += sqlite3_column_int(st, 7) != 0;
		json_array_append_new(
		    json_object_get(batch, "targets"),
		    json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b}", "id", col_str(st, 1),
			      "state", col_str(st, 2), "message", col_str(st, 3), "from_release",
			      col_json(st, 4), "to_release", col_json(st, 5), "switched_at",
			      col_int_opt(st, 6), "finished_at", col_int_opt(st, 8), "prepared",
			      sqlite3_column_int(st, 7) != 0));
	}
	if (ret < 0)
		goto out;
	batch_close(batch, done, begun, state);
	stmt_done(st);

	ret = stmt_get(c, ST_ROLLOUT_APPROVALS, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	while ((ret = run_row(c, st, err, "rollout approvals")) == 1)
		json_array_append_new(approvals,
				      json_pack("{s:o, s:o, s:o}", "by", col_str(st, 0), "at",
						col_str(st, 1), "batch", col_int_opt(st, 2)));
	if (ret < 0)
		goto out;
	ret = 0;
	*out = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o}",
			 "id", col_str(row, 1), "cluster", col_str(row, 2), "from", col_str(row, 3),
			 "to", col_str(row, 4), "from_revision", col_int_opt(row, 5), "to_revision",
			 col_int(row, 6), "state", col_str(row, 7), "strategy", col_json(row, 8),
			 "batches", batches, "approvals", approvals, "prepared",
			 (json_int_t)prepared, "created_by", col_str(row, 9), "created",
			 col_str(row, 10), "updated", col_str(row, 11));
	batches = approvals = NULL;
out:
	stmt_done(st);
	json_decref(batches);
	json_decref(approvals);
	return ret;
}

int tn_store_rollout_get(struct tn_store *store, const char *id, json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_ROLLOUT_GET, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	ret = run_row(c, st, err, "get rollout");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "rollout %s not found", id);
		goto out;
	}
	ret = rollout_item(c, st, out, err);
out:
	stmt_done(st);
	return ret;
}

int tn_store_rollout_list(struct tn_store *store, const char *cluster, unsigned limit,
			  const char *after, json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	json_t *cursor = NULL;
	json_int_t seq = INT64_MAX; /* newest first: the first page starts above every row */
	int ret;

	limit = clamp_limit(limit);
	if (after) {
		ret = cursor_decode(after, &cursor, err, "[I]", &seq);
		if (ret)
			goto out;
	}
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, cluster ? ST_ROLLOUT_LIST_CLUSTER : ST_ROLLOUT_LIST, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, seq);
	bind_int(c, st, 2, (int64_t)limit + 1);
	if (cluster)
		bind_text(c, st, 3, cluster);
	ret = run_page(c, st, limit, rollout_item, seq_key, out, err);
out:
	stmt_done(st);
	json_decref(cursor);
	return ret;
}

/* Unix time in milliseconds (wall clock: it outlives the process). */
static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tn_store_rollout_set_state(struct tn_store *store, const char *id, const char *state,
			       struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	bool in_tx = false;
	int rc, ret;

	if (!in_list(state, rollout_states)) {
		ret = tn_fail(err, TN_E_INVALID, "state: %s is not a rollout state", state);
		goto out;
	}
	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = stmt_get(c, ST_ROLLOUT_SET_STATE, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	bind_text(c, st, 2, state);
	bind_text(c, st, 3, now);
	rc = step(c, st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		ret = tn_fail(err, TN_E_CONFLICT,
			      "rollout %s: its cluster has another active rollout", id);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(c, rc, err, "set rollout state");
		goto out;
	}
	if (sqlite3_changes(c->db) == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "rollout %s not found", id);
		goto out;
	}
	stmt_done(st);
	/* Succeeded, the new revision is what the cluster runs: targets that
	 * enroll from now on start on it (DESIGN §2 Rollout).  Until then
	 * they start on the old one and join the rollout. */
	if (strcmp(state, "succeeded") == 0) {
		ret = stmt_get(c, ST_ROLLOUT_SUCCEEDED_REVISION, &st, err);
		if (ret)
			goto out;
		bind_text(c, st, 1, id);
		bind_text(c, st, 2, now);
		ret = run_done(c, st, err, "set revision");
		if (ret)
			goto out;
	}
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	return ret;
}

int tn_store_rollout_set_prepared(struct tn_store *store, const char *rollout_id,
				  const char *target_id, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret = conn_get(store, &c, err);

	if (ret)
		goto out;
	ret = stmt_get(c, ST_ROLLOUT_TARGET_PREPARED, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, rollout_id);
	bind_text(c, st, 2, target_id);
	ret = run_done(c, st, err, "set rollout target prepared");
out:
	stmt_done(st);
	return ret;
}

int tn_store_rollout_ids_moving(struct tn_store *store, char ***ids, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	size_t n = 0;
	int ret;

	*ids = xcalloc(1, sizeof **ids);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_ROLLOUT_IDS_ACTIVE, &st, err);
	if (ret)
		goto out;
	while ((ret = run_row(c, st, err, "moving rollouts")) == 1) {
		*ids = xrealloc(*ids, (n + 2) * sizeof **ids);
		(*ids)[n++] = xstrdup(col_cstr(st, 0));
		(*ids)[n] = NULL;
	}
out:
	stmt_done(st);
	if (ret < 0) {
		tn_store_free_ids(*ids);
		*ids = NULL;
		return ret;
	}
	return 0;
}

int tn_store_rollout_add_targets(struct tn_store *store, const char *rollout_id, json_t *targets,
				 struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char *cluster = NULL;
	int64_t cluster_id;
	bool in_tx = false;
	int ret;

	ret = rollout_targets_check(targets, err);
	if (ret)
		goto out;
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = stmt_get(c, ST_ROLLOUT_CLUSTER_OF, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, rollout_id);
	ret = run_row(c, st, err, "rollout cluster");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "rollout %s not found", rollout_id);
		goto out;
	}
	cluster_id = sqlite3_column_int64(st, 0);
	cluster = xstrdup(col_cstr(st, 1));
	stmt_done(st);
	ret = rollout_targets_insert(c, rollout_id, cluster_id, cluster, targets, err);
	if (ret)
		goto out;
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	free(cluster);
	return ret;
}

int tn_store_cluster_revision(struct tn_store *store, const char *cluster, int64_t number,
			      json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret = conn_get(store, &c, err);

	if (ret)
		goto out;
	ret = stmt_get(c, ST_REVISION_GET, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, cluster);
	bind_int(c, st, 2, number);
	ret = run_row(c, st, err, "get revision");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "cluster %s has no revision %" PRId64, cluster,
			      number);
		goto out;
	}
	ret = 0;
	*out = json_pack("{s:o, s:o, s:o}", "number", col_int(st, 0), "distribution",
			 col_str(st, 1), "config", col_json(st, 2));
out:
	stmt_done(st);
	return ret;
}

/* Runs a one-row UPDATE rollouts SET updated = now. */
static int rollout_touch(struct conn *c, const char *id, const char *now, struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	int ret = stmt_get(c, ST_ROLLOUT_TOUCH, &st, err);

	if (!ret) {
		bind_text(c, st, 1, id);
		bind_text(c, st, 2, now);
		ret = run_done(c, st, err, "update rollout");
	}
	stmt_done(st);
	return ret;
}

int tn_store_rollout_approve(struct tn_store *store, const char *id, const char *actor, int batch,
			     struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	bool in_tx = false;
	int ret;

	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = stmt_get(c, ST_ROLLOUT_FIND, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	ret = run_row(c, st, err, "find rollout");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "rollout %s not found", id);
		goto out;
	}
	if (!in_list(col_cstr(st, 2), active_rollout_states)) {
		ret = tn_fail(err, TN_E_CONFLICT, "rollout %s is %s: there is nothing to approve",
			      id, col_cstr(st, 2));
		goto out;
	}
	stmt_done(st);

	ret = stmt_get(c, ST_APPROVAL_INSERT, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	bind_text(c, st, 2, actor);
	bind_text(c, st, 3, now);
	if (batch >= 0)
		bind_int(c, st, 4, batch);
	else
		bind_text(c, st, 4, NULL);
	ret = run_done(c, st, err, "insert approval");
	if (ret)
		goto out;
	stmt_done(st);

	ret = rollout_touch(c, id, now, err);
	if (ret)
		goto out;
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	return ret;
}

int tn_store_rollout_target_set(struct tn_store *store, const char *rollout_id,
				const char *target_id, const char *state, const char *message,
				struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	bool in_tx = false;
	int ret;

	if (!state || !*state) {
		ret = tn_fail(err, TN_E_INVALID, "rollout target state: must not be empty");
		goto out;
	}
	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = stmt_get(c, ST_ROLLOUT_TARGET_SET, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, rollout_id);
	bind_text(c, st, 2, target_id);
	bind_text(c, st, 3, state);
	bind_text(c, st, 4, message);
	bind_int(c, st, 5, now_ms());
	ret = run_done(c, st, err, "set rollout target");
	if (ret)
		goto out;
	stmt_done(st);
	if (sqlite3_changes(c->db) == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "target %s is not in rollout %s", target_id,
			      rollout_id);
		goto out;
	}
	ret = rollout_touch(c, rollout_id, now, err);
	if (ret)
		goto out;
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	return ret;
}

int tn_store_rollout_for_target(struct tn_store *store, const char *target_id, json_t **out,
				struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_ROLLOUT_FOR_TARGET, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, target_id);
	ret = run_row(c, st, err, "rollout for target");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "target %s is in no active rollout", target_id);
		goto out;
	}
	ret = 0;
	*out = json_pack("{s:o, s:o, s:o, s:o, s:o}", "rollout", col_str(st, 0), "state",
			 col_str(st, 1), "target_state", col_str(st, 2), "from_release",
			 col_json(st, 3), "to_release", col_json(st, 4));
out:
	stmt_done(st);
	return ret;
}

/* ------------------------------------------------------------ webhooks */

/* Newest deliveries shown by tn_store_webhook_get. */
#define WEBHOOK_RECENT 20

static const char *const delivery_states[] = {"pending", "delivered", "failed", NULL};

int tn_store_event_get(struct tn_store *store, int64_t id, json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_EVENT_GET, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, id);
	ret = run_row(c, st, err, "get event");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "event %" PRId64 " not found", id);
		goto out;
	}
	ret = event_item(c, st, out, err);
out:
	stmt_done(st);
	return ret;
}

/* RFC 3339 text of a time in ms since the epoch, or null for SQL NULL. */
static json_t *col_ms_time(sqlite3_stmt *st, int i)
{
	char text[TN_STORE_TIME_LEN + 1];

	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	tn_store_time_format((time_t)(sqlite3_column_int64(st, i) / 1000), text);
	return json_string(text);
}

/* Row of WEBHOOK_SELECT: seq, id, url, events, created, created_by,
 * delivered, failed, pending, then the last delivery's event_id, event,
 * state, status, last_ms, attempts, error (all NULL when none). */
static int webhook_item(struct conn *c, sqlite3_stmt *st, json_t **out, struct tn_error *err)
{
	json_t *last = json_null();

	(void)c;
	(void)err;
	if (sqlite3_column_type(st, 9) != SQLITE_NULL)
		last = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "event_id", col_int(st, 9),
				 "event", col_str(st, 10), "state", col_str(st, 11), "status",
				 col_int_opt(st, 12), "at", col_ms_time(st, 13), "attempts",
				 col_int(st, 14), "error", col_str(st, 15));
	*out = json_pack("{s:o, s:o, s:o, s:o, s:o, s:{s:o, s:o, s:o, s:o}}", "id", col_str(st, 1),
			 "url", col_str(st, 2), "events", col_json(st, 3), "created",
			 col_str(st, 4), "created_by", col_str(st, 5), "deliveries", "ok",
			 col_int(st, 6), "failed", col_int(st, 7), "pending", col_int(st, 8),
			 "last", last);
	return 0;
}

int tn_store_webhook_create(struct tn_store *store, const char *url, json_t *events,
			    const char *actor, json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char id[32], now[TN_STORE_TIME_LEN + 1];
	char *etext = NULL;
	int ret;

	if (!json_is_array(events)) {
		ret = tn_fail(err, TN_E_INVALID, "events: must be an array");
		goto out;
	}
	ret = random_id("w-", id, sizeof id, err);
	if (ret)
		goto out;
	etext = tn_json_canonical(events);
	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	/* One INSERT: its own transaction. */
	ret = stmt_get(c, ST_WEBHOOK_INSERT, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	bind_text(c, st, 2, url);
	bind_text(c, st, 3, etext);
	bind_text(c, st, 4, now);
	bind_text(c, st, 5, actor);
	ret = run_done(c, st, err, "insert webhook");
	if (ret)
		goto out;
	stmt_done(st);
	st = NULL;
	if (out) {
		/* Not get: its recent deliveries are none. */
		ret = stmt_get(c, ST_WEBHOOK_GET, &st, err);
		if (ret)
			goto out;
		bind_text(c, st, 1, id);
		ret = run_row(c, st, err, "get webhook");
		if (ret < 0)
			goto out;
		ret = ret ? webhook_item(c, st, out, err)
			  : tn_fail(err, TN_E_NOT_FOUND, "webhook %s not found", id);
	}
out:
	stmt_done(st);
	free(etext);
	return ret;
}

/* The attempts of delivery id: [{number, at, status, error, duration_ms}]. */
static int webhook_tries(struct conn *c, int64_t id, json_t **out, struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	json_t *tries = json_array();
	int ret;

	ret = stmt_get(c, ST_WEBHOOK_TRIES, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, id);
	while ((ret = run_row(c, st, err, "delivery attempts")) == 1)
		json_array_append_new(
		    tries, json_pack("{s:o, s:o, s:o, s:o, s:o}", "number", col_int(st, 0), "at",
				     col_str(st, 1), "status", col_int_opt(st, 2), "error",
				     col_str(st, 3), "duration_ms", col_int(st, 4)));
	if (ret < 0)
		goto out;
	ret = 0;
	*out = tries;
	tries = NULL;
out:
	stmt_done(st);
	json_decref(tries);
	return ret;
}

/* The newest deliveries of a webhook, each with its attempts. */
static int webhook_recent(struct conn *c, const char *id, json_t **out, struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	json_t *recent = json_array(), *d;
	size_t i;
	int ret;

	ret = stmt_get(c, ST_WEBHOOK_RECENT, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	bind_int(c, st, 2, WEBHOOK_RECENT);
	/* Row: id, event_id, event, state, attempts, status, error, created,
	 * last_ms, due_ms. */
	while ((ret = run_row(c, st, err, "recent deliveries")) == 1) {
		bool pending = strcmp(col_cstr(st, 3), "pending") == 0;

		json_array_append_new(
		    recent, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
				      col_int(st, 0), "event_id", col_int(st, 1), "event",
				      col_str(st, 2), "state", col_str(st, 3), "attempts",
				      col_int(st, 4), "status", col_int_opt(st, 5), "error",
				      col_str(st, 6), "created", col_str(st, 7), "at",
				      col_ms_time(st, 8), "next_attempt",
				      pending ? col_ms_time(st, 9) : json_null()));
	}
	if (ret < 0)
		goto out;
	stmt_done(st);
	st = NULL;
	ret = 0;
	/* The statement is done before the attempts are read (the same
	 * connection runs both). */
	json_array_foreach(recent, i, d) {
		json_t *tries = NULL;

		ret = webhook_tries(c, json_integer_value(json_object_get(d, "id")), &tries, err);
		if (ret)
			goto out;
		json_object_set_new(d, "tries", tries);
	}
	*out = recent;
	recent = NULL;
out:
	stmt_done(st);
	json_decref(recent);
	return ret;
}

int tn_store_webhook_get(struct tn_store *store, const char *id, json_t **out,
			 struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	json_t *hook = NULL, *recent = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_WEBHOOK_GET, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	ret = run_row(c, st, err, "get webhook");
	if (ret < 0)
		goto out;
	if (ret == 0) {
		ret = tn_fail(err, TN_E_NOT_FOUND, "webhook %s not found", id);
		goto out;
	}
	ret = webhook_item(c, st, &hook, err);
	if (ret)
		goto out;
	stmt_done(st);
	st = NULL;
	ret = webhook_recent(c, id, &recent, err);
	if (ret)
		goto out;
	json_object_set_new(hook, "recent", recent);
	*out = hook;
	hook = NULL;
out:
	stmt_done(st);
	json_decref(hook);
	return ret;
}

int tn_store_webhook_list(struct tn_store *store, unsigned limit, const char *after, json_t **out,
			  struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	json_t *cursor = NULL;
	json_int_t seq = 0;
	int ret;

	limit = clamp_limit(limit);
	if (after) {
		ret = cursor_decode(after, &cursor, err, "[I]", &seq);
		if (ret)
			goto out;
	}
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_WEBHOOK_LIST, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, seq);
	bind_int(c, st, 2, (int64_t)limit + 1);
	ret = run_page(c, st, limit, webhook_item, seq_key, out, err);
out:
	stmt_done(st);
	json_decref(cursor);
	return ret;
}

int tn_store_webhook_delete(struct tn_store *store, const char *id, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_WEBHOOK_DELETE, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	ret = run_done(c, st, err, "delete webhook");
	if (ret)
		goto out;
	if (sqlite3_changes(c->db) == 0)
		ret = tn_fail(err, TN_E_NOT_FOUND, "webhook %s not found", id);
out:
	stmt_done(st);
	return ret;
}

int tn_store_webhook_matchers(struct tn_store *store, json_t **out, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	json_t *all = json_array();
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_WEBHOOK_MATCHERS, &st, err);
	if (ret)
		goto out;
	while ((ret = run_row(c, st, err, "webhooks")) == 1)
		json_array_append_new(all, json_pack("{s:o, s:o, s:o}", "id", col_str(st, 0),
						     "events", col_json(st, 1), "since_event",
						     col_int(st, 2)));
	if (ret < 0)
		goto out;
	ret = 0;
	*out = all;
	all = NULL;
out:
	stmt_done(st);
	json_decref(all);
	return ret;
}

int tn_store_webhook_scan_get(struct tn_store *store, int64_t *out, struct tn_error *err)
{
	return count_query(store, ST_WEBHOOK_SCAN_GET, out, err);
}

int tn_store_webhook_scan_set(struct tn_store *store, int64_t last_event, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_WEBHOOK_SCAN_SET, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, last_event);
	ret = run_done(c, st, err, "webhook scan");
out:
	stmt_done(st);
	return ret;
}

/* Adds to a webhook's counts of finished deliveries. */
static int webhook_count(struct conn *c, const char *id, int64_t delivered, int64_t failed,
			 struct tn_error *err)
{
	sqlite3_stmt *st = NULL;
	int ret;

	ret = stmt_get(c, ST_WEBHOOK_COUNT, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, id);
	bind_int(c, st, 2, delivered);
	bind_int(c, st, 3, failed);
	ret = run_done(c, st, err, "count deliveries");
out:
	stmt_done(st);
	return ret;
}

int tn_store_webhook_enqueue(struct tn_store *store, const char *webhook_id, int64_t event_id,
			     const char *event, int64_t due_ms, unsigned max_pending,
			     unsigned *dropped, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char now[TN_STORE_TIME_LEN + 1];
	bool in_tx = false;
	int n = 0;
	int ret;

	if (dropped)
		*dropped = 0;
	tn_store_now(now);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = stmt_get(c, ST_DELIVERY_INSERT, &st, err);
	if (ret)
		goto out;
	bind_text(c, st, 1, webhook_id);
	bind_int(c, st, 2, event_id);
	bind_text(c, st, 3, event);
	bind_int(c, st, 4, due_ms);
	bind_text(c, st, 5, now);
	ret = run_done(c, st, err, "queue delivery");
	if (ret)
		goto out;
	stmt_done(st);
	st = NULL;
	if (sqlite3_changes(c->db) > 0) {
		ret = stmt_get(c, ST_DELIVERY_OVERFLOW, &st, err);
		if (ret)
			goto out;
		bind_text(c, st, 1, webhook_id);
		bind_int(c, st, 2, max_pending);
		bind_int(c, st, 3, due_ms);
		ret = run_done(c, st, err, "drop deliveries");
		if (ret)
			goto out;
		n = sqlite3_changes(c->db);
		if (n > 0 && (ret = webhook_count(c, webhook_id, 0, n, err)))
			goto out;
	}
	ret = tx_commit(c, err);
	if (ret)
		goto out;
	in_tx = false;
	if (dropped)
		*dropped = (unsigned)n;
out:
	stmt_done(st);
	if (in_tx)
		tx_rollback(c);
	return ret;
}

int tn_store_webhook_due(struct tn_store *store, int64_t now_ms, unsigned limit, json_t **out,
			 int64_t *next_ms, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	json_t *due = json_array();
	int ret;

	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = stmt_get(c, ST_DELIVERY_DUE, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, now_ms);
	bind_int(c, st, 2, limit);
	while ((ret = run_row(c, st, err, "due deliveries")) == 1)
		json_array_append_new(
		    due, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "id", col_int(st, 0), "webhook",
				   col_str(st, 1), "url", col_str(st, 2), "event_id",
				   col_int(st, 3), "event", col_str(st, 4), "attempts",
				   col_int(st, 5)));
	if (ret < 0)
		goto out;
	stmt_done(st);
	st = NULL;
	ret = stmt_get(c, ST_DELIVERY_NEXT, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, now_ms);
	ret = run_row(c, st, err, "next delivery");
	if (ret < 0)
		goto out;
	*next_ms = ret ? sqlite3_column_int64(st, 0) : 0; /* min() of nothing is NULL: 0 */
	ret = 0;
	*out = due;
	due = NULL;
out:
	stmt_done(st);
	json_decref(due);
	return ret;
}

int tn_store_webhook_attempt(struct tn_store *store, const struct tn_store_webhook_attempt *a,
			     bool *recorded, struct tn_error *err)
{
	struct conn *c = NULL;
	sqlite3_stmt *st = NULL;
	char at[TN_STORE_TIME_LEN + 1];
	char *webhook = NULL;
	int64_t number = 0;
	bool in_tx = false, pending;
	int ret;

	if (recorded)
		*recorded = false;
	if (!a->state || !in_list(a->state, delivery_states)) {
		ret = tn_fail(err, TN_E_INVALID, "delivery state: %s is not one of pending, "
						 "delivered, failed", a->state ? a->state : "(none)");
		goto out;
	}
	pending = strcmp(a->state, "pending") == 0;
	tn_store_time_format((time_t)(a->at_ms / 1000), at);
	ret = conn_get(store, &c, err);
	if (ret)
		goto out;
	ret = tx_begin(c, err);
	if (ret)
		goto out;
	in_tx = true;
	ret = stmt_get(c, ST_DELIVERY_FIND, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, a->delivery_id);
	ret = run_row(c, st, err, "find delivery");
	if (ret <= 0)
		goto out; /* gone: committed below, nothing written */
	webhook = xstrdup(col_cstr(st, 0));
	number = sqlite3_column_int64(st, 1) + 1;
	stmt_done(st);
	st = NULL;

	ret = stmt_get(c, ST_ATTEMPT_INSERT, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, a->delivery_id);
	bind_int(c, st, 2, number);
	bind_text(c, st, 3, at);
	if (a->status > 0)
		bind_int(c, st, 4, a->status);
	bind_text(c, st, 5, a->error);
	bind_int(c, st, 6, a->duration_ms);
	ret = run_done(c, st, err, "record attempt");
	if (ret)
		goto out;
	stmt_done(st);
	st = NULL;

	ret = stmt_get(c, ST_DELIVERY_SET, &st, err);
	if (ret)
		goto out;
	bind_int(c, st, 1, a->delivery_id);
	bind_text(c, st, 2, a->state);
	bind_int(c, st, 3, number);
	if (a->status > 0)
		bind_int(c, st, 4, a->status);
	bind_text(c, st, 5, a->error);
	bind_int(c, st, 6, a->at_ms + a->duration_ms);
	bind_int(c, st, 7, pending ? a->next_ms : a->at_ms + a->duration_ms);
	ret = run_done(c, st, err, "update delivery");
	if (ret)
		goto out;
	stmt_done(st);
	st = NULL;

	if (!pending) {
		bool ok = strcmp(a->state, "delivered") == 0;

		ret = webhook_count(c, webhook, ok, !ok, err);
		if (ret)
			goto out;
		ret = stmt_get(c, ST_DELIVERY_PRUNE, &st, err);
		if (ret)
			goto out;
		bind_text(c, st, 1, webhook);
		bind_int(c, st, 2, a->keep);
		ret = run_done(c, st, err, "prune deliveries");
		if (ret)
			goto out;
	}
	if (recorded)
		*recorded = true;
out:
	stmt_done(st);
	if (in_tx) {
		if (ret == 0 && (ret = tx_commit(c, err)) == 0)
			in_tx = false;
		if (in_tx)
			tx_rollback(c);
	}
	free(webhook);
	return ret;
}
