/* documents.c - see documents.h.  The cache maps a target id to its
 * current etag, body, signature and the blobs it may fetch; a poll that
 * changed nothing is answered from it without touching the store. */
#include "documents.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "digest.h"
#include "http.h"
#include "ingest.h"
#include "json.h"
#include "log.h"
#include "server.h"
#include "sign.h"
#include "store.h"
#include "version.h"
#include "xalloc.h"

#define BUCKETS 16384
/* last_seen is written at most this often per target... */
#define SEEN_WRITE_MS 5000
/* ...by the writer, which stores what the polls noted in one transaction
 * this often: 10,000 polling agents make one write a second, not 2,000
 * fsynced ones that a rollout's document writes would queue behind. */
#define SEEN_FLUSH_MS 1000

struct entry {
	char *target_id;
	char etag[65];
	char *body;
	char *signature;
	int64_t generation;
	char (*shas)[65]; /* the run and prepare releases' blobs */
	size_t nshas;
	uint64_t seen_written_ms; /* when last_seen last went to the store */
	bool seen_due;            /* a poll noted seen_at: for the writer */
	char seen_at[TN_STORE_TIME_LEN + 1];
	struct entry *next;
};

struct tn_documents {
	pthread_rwlock_t lock;
	struct entry *buckets[BUCKETS];
	/* the last_seen writer (none in in-process use: polls write it) */
	struct tn_server *srv;
	pthread_t writer;
	pthread_mutex_t writer_lock;
	pthread_cond_t writer_cond;
	bool writing, stopping;
};

static size_t bucket(const char *key)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return (size_t)(h % BUCKETS);
}

static void entry_free(struct entry *e)
{
	free(e->target_id);
	free(e->body);
	free(e->signature);
	free(e->shas);
	free(e);
}

struct tn_documents *tn_documents_new(void)
{
	struct tn_documents *d = xcalloc(1, sizeof *d);

	pthread_rwlock_init(&d->lock, NULL);
	pthread_mutex_init(&d->writer_lock, NULL);
	pthread_cond_init(&d->writer_cond, NULL);
	return d;
}

void tn_documents_free(struct tn_documents *d)
{
	if (!d)
		return;
	for (size_t b = 0; b < BUCKETS; b++)
		while (d->buckets[b]) {
			struct entry *e = d->buckets[b];

			d->buckets[b] = e->next;
			entry_free(e);
		}
	pthread_cond_destroy(&d->writer_cond);
	pthread_mutex_destroy(&d->writer_lock);
	pthread_rwlock_destroy(&d->lock);
	free(d);
}

/* Called with the lock held (either mode). */
static struct entry *find(struct tn_documents *d, const char *id)
{
	for (struct entry *e = d->buckets[bucket(id)]; e; e = e->next)
		if (strcmp(e->target_id, id) == 0)
			return e;
	return NULL;
}

/* The blobs a document lets its target fetch. */
static void collect_shas(struct entry *e, json_t *doc)
{
	static const char *const keys[] = {"run", "prepare"};

	for (size_t k = 0; k < 2; k++) {
		json_t *b;
		size_t i;

		json_array_foreach(json_object_get(json_object_get(doc, keys[k]), "bundles"), i, b) {
			const char *sha = json_string_value(json_object_get(b, "sha256"));

			if (!sha || strlen(sha) != 64)
				continue;
			e->shas = xrealloc(e->shas, (e->nshas + 1) * sizeof *e->shas);
			memcpy(e->shas[e->nshas++], sha, 65);
		}
	}
}

/* Puts (replacing) the cached document of a target; doc is body parsed
 * (borrowed), or NULL to parse it here. */
static void cache_put(struct tn_documents *d, const char *id, const char *body,
		      const char *signature, const char *etag, int64_t generation, json_t *doc)
{
	struct entry *e = xcalloc(1, sizeof *e);
	struct entry **link;

	doc = doc ? json_incref(doc) : json_loads(body, 0, NULL);

	e->target_id = xstrdup(id);
	e->body = xstrdup(body);
	e->signature = xstrdup(signature);
	snprintf(e->etag, sizeof e->etag, "%s", etag);
	e->generation = generation;
	collect_shas(e, doc);
	json_decref(doc);
	pthread_rwlock_wrlock(&d->lock);
	for (link = &d->buckets[bucket(id)]; *link; link = &(*link)->next)
		if (strcmp((*link)->target_id, id) == 0) {
			struct entry *old = *link;

			*link = old->next;
			entry_free(old);
			break;
		}
	e->next = d->buckets[bucket(id)];
	d->buckets[bucket(id)] = e;
	pthread_rwlock_unlock(&d->lock);
}

void tn_documents_forget(struct tn_server *srv, const char *target_id)
{
	struct tn_documents *d = srv->documents;
	struct entry **link;

	pthread_rwlock_wrlock(&d->lock);
	for (link = &d->buckets[bucket(target_id)]; *link; link = &(*link)->next)
		if (strcmp((*link)->target_id, target_id) == 0) {
			struct entry *old = *link;

			*link = old->next;
			entry_free(old);
			break;
		}
	pthread_rwlock_unlock(&d->lock);
}

/* ------------------------------------------------------------ releases */

/* Merges layer (an object of bundle → values, may be NULL) over config for
 * the bundle `name` only. */
static void merge_layer(json_t *values, json_t *layer, const char *name)
{
	json_t *over = layer ? json_object_get(layer, name) : NULL;

	if (json_is_object(over))
		json_object_update(values, over);
}

int tn_release_build(struct tn_server *srv, const char *dist_ref, json_t *cluster_config,
		     json_t *target_config, json_t **out, struct tn_error *err)
{
	struct tn_version v;
	struct tn_store_version sv;
	char *name = NULL, *canon = NULL, *id = NULL;
	json_t *dist = NULL, *bundles = json_array(), *config = json_object(), *b;
	char hash[TN_SHA256_HEX_LEN + 1];
	size_t i;
	int rc;

	if ((rc = tn_ingest_split_ref(dist_ref, "distribution", &name, &sv, &v, err)) ||
	    (rc = tn_store_distribution_get(srv->store, name, &sv, &dist, err)))
		goto out;
	json_array_foreach(json_object_get(dist, "bundles"), i, b) {
		const char *bname = json_string_value(json_object_get(b, "name"));
		const char *bver = json_string_value(json_object_get(b, "version"));
		const char *sha = json_string_value(json_object_get(b, "sha256"));
		struct tn_version bv;
		struct tn_store_version bsv;
		struct tn_manifest *m = NULL;
		json_t *values;
		char *url;

		if ((rc = tn_version_parse(bver, &bv, err)))
			goto out;
		bsv = (struct tn_store_version){bv.major, bv.minor, bv.micro, bv.qualifier};
		if ((rc = tn_ingest_stored_manifest(srv->store, bname, &bsv, &m, NULL, err)))
			goto out;
		values = tn_manifest_config_defaults(m);
		tn_manifest_free(m);
		merge_layer(values, json_object_get(dist, "config"), bname);
		merge_layer(values, cluster_config, bname);
		merge_layer(values, target_config, bname);
		json_object_set_new(config, bname, values);
		url = xasprintf("/agent/v1/blobs/%s", sha);
		json_array_append_new(bundles, json_pack("{s:s, s:s, s:s, s:O, s:s}", "name", bname,
							 "version", bver, "sha256", sha, "size",
							 json_object_get(b, "size"), "url", url));
		free(url);
	}
	canon = tn_json_canonical(config);
	tn_sha256_hex(canon, strlen(canon), hash);
	id = xasprintf("%s@%s+%.12s", name, json_string_value(json_object_get(dist, "version")),
		       hash);
	*out = json_pack("{s:s, s:s, s:O, s:O, s:O}", "id", id, "distribution", name, "version",
			 json_object_get(dist, "version"), "bundles", bundles, "config", config);
out:
	free(id);
	free(canon);
	free(name);
	json_decref(dist);
	json_decref(bundles);
	json_decref(config);
	return rc;
}

/* ------------------------------------------------------------ documents */

static const char *doc_state(const char *target_state)
{
	if (strcmp(target_state, "draining") == 0)
		return "draining";
	if (strcmp(target_state, "removed") == 0)
		return "removed";
	return "active";
}

/* What the node learns of its load balancer: which driver asks it for its
 * state, and on which port.  The runtime API address stays on the server
 * (no node holds LB credentials). */
static json_t *doc_lb(json_t *lb, int agent_port)
{
	const char *driver = json_string_value(json_object_get(lb, "driver"));

	if (!driver || strcmp(driver, "none") == 0)
		return json_null();
	return agent_port > 0 ? json_pack("{s:s, s:i}", "driver", driver, "agent_port", agent_port)
			      : json_pack("{s:s}", "driver", driver);
}

/* A document written, to be cached and announced once its transaction
 * committed. */
struct written {
	char *body, *sig;
	json_t *doc; /* body, parsed */
	char etag[TN_SHA256_HEX_LEN + 1];
	int64_t generation;
};

/* Writes the target's next document inside the caller's transaction. */
static int write_one(struct tn_server *srv, const char *target_id, const struct tn_doc_change *ch,
		     struct written *w, struct tn_error *err)
{
	struct tn_store_doc cur = {0};
	json_t *run, *prepare, *doc = NULL;
	const char *state;
	int rc;

	memset(w, 0, sizeof *w);
	if ((rc = tn_store_doc_get(srv->store, target_id, &cur, err)))
		goto out;
	run = ch->set_run ? ch->run : cur.run;
	prepare = ch->set_prepare ? ch->prepare : cur.prepare;
	state = ch->state ? ch->state : cur.state;
	doc = json_pack("{s:s, s:s, s:I, s:s, s:O?, s:O?, s:o}", "target_id", target_id, "cluster",
			cur.cluster, "generation", (json_int_t)(cur.generation + 1), "state",
			doc_state(state), "run", run, "prepare", prepare, "lb",
			doc_lb(cur.lb, cur.agent_port));
	w->body = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	w->generation = cur.generation + 1;
	if ((rc = tn_sign_b64(srv->key, w->body, strlen(w->body), &w->sig, err)))
		goto out;
	tn_sha256_hex(w->body, strlen(w->body), w->etag);
	rc = tn_store_doc_put(srv->store, target_id, cur.generation, run, prepare, state, w->body,
			      w->sig, w->etag, err);
	w->doc = doc;
	doc = NULL;
out:
	tn_store_doc_clear(&cur);
	json_decref(doc);
	return rc;
}

static void written_clear(struct written *w)
{
	free(w->body);
	free(w->sig);
	json_decref(w->doc);
	memset(w, 0, sizeof *w);
}

/* After the commit: the cache serves it, and the target's long-polls wake. */
static void announce(struct tn_server *srv, const char *target_id, struct written *w)
{
	cache_put(srv->documents, target_id, w->body, w->sig, w->etag, w->generation, w->doc);
	if (srv->http)
		tn_http_wake_key(srv->http, target_id);
}

int tn_documents_change(struct tn_server *srv, const char *target_id,
			const struct tn_doc_change *ch, struct tn_error *err)
{
	struct tn_doc_change_item one = {target_id, *ch};

	return tn_documents_change_many(srv, &one, 1, err);
}

int tn_documents_change_many(struct tn_server *srv, const struct tn_doc_change_item *items,
			     size_t n, struct tn_error *err)
{
	struct written *w = xcalloc(n ? n : 1, sizeof *w);
	size_t i;
	int rc;

	if ((rc = tn_store_begin(srv->store, err)))
		goto out;
	for (i = 0; i < n && rc == 0; i++)
		rc = write_one(srv, items[i].target_id, &items[i].change, &w[i], err);
	if (rc == 0)
		rc = tn_store_commit(srv->store, err);
	else
		tn_store_rollback(srv->store);
	if (rc == 0)
		for (i = 0; i < n; i++)
			announce(srv, items[i].target_id, &w[i]);
out:
	for (i = 0; i < n; i++)
		written_clear(&w[i]);
	free(w);
	return rc;
}

int tn_documents_get(struct tn_server *srv, const char *target_id, struct tn_doc_view *out,
		     struct tn_error *err)
{
	struct tn_documents *d = srv->documents;
	struct tn_store_doc cur = {0};
	struct entry *e;
	int rc;

	memset(out, 0, sizeof *out);
	pthread_rwlock_rdlock(&d->lock);
	e = find(d, target_id);
	if (e) {
		out->body = xstrdup(e->body);
		out->signature = xstrdup(e->signature);
		memcpy(out->etag, e->etag, sizeof out->etag);
		out->generation = e->generation;
	}
	pthread_rwlock_unlock(&d->lock);
	if (e)
		return 0;
	if ((rc = tn_store_doc_get(srv->store, target_id, &cur, err)))
		return rc;
	if (!cur.body) {
		/* Enrolled before any document was written: write the first. */
		struct tn_doc_change none = {0};

		tn_store_doc_clear(&cur);
		if ((rc = tn_documents_change(srv, target_id, &none, err)))
			return rc;
		return tn_documents_get(srv, target_id, out, err);
	}
	/* A document stored before a rotation of the signing key (signkey.h)
	 * goes out signed by the current key: the same bytes, so the same
	 * ETag and generation, and the agents reach the key through its
	 * endorsements.  Kept in the cache, made again after a restart. */
	if (!cur.signature ||
	    tn_verify_b64(srv->key, cur.body, strlen(cur.body), cur.signature, NULL) != 0) {
		char *sig = NULL;

		if ((rc = tn_sign_b64(srv->key, cur.body, strlen(cur.body), &sig, err))) {
			tn_store_doc_clear(&cur);
			return rc;
		}
		free(cur.signature);
		cur.signature = sig;
	}
	cache_put(d, target_id, cur.body, cur.signature, cur.etag, cur.generation, NULL);
	out->body = xstrdup(cur.body);
	out->signature = xstrdup(cur.signature);
	snprintf(out->etag, sizeof out->etag, "%s", cur.etag);
	out->generation = cur.generation;
	tn_store_doc_clear(&cur);
	return 0;
}

void tn_doc_view_clear(struct tn_doc_view *v)
{
	free(v->body);
	free(v->signature);
	memset(v, 0, sizeof *v);
}

bool tn_documents_etag_is(struct tn_server *srv, const char *target_id, const char *etag)
{
	struct tn_documents *d = srv->documents;
	struct entry *e;
	bool same;

	pthread_rwlock_rdlock(&d->lock);
	e = find(d, target_id);
	same = e && strcmp(e->etag, etag) == 0;
	pthread_rwlock_unlock(&d->lock);
	return same;
}

bool tn_documents_blob_allowed(struct tn_server *srv, const char *target_id, const char *sha256)
{
	struct tn_documents *d = srv->documents;
	struct entry *e;
	bool allowed = false;

	pthread_rwlock_rdlock(&d->lock);
	e = find(d, target_id);
	for (size_t i = 0; e && i < e->nshas && !allowed; i++)
		allowed = strcmp(e->shas[i], sha256) == 0;
	pthread_rwlock_unlock(&d->lock);
	return allowed;
}

void tn_documents_seen(struct tn_server *srv, const char *target_id)
{
	struct tn_documents *d = srv->documents;
	struct tn_store_target_update u = {.seen = true};
	uint64_t now = tn_clock_ms();
	struct tn_error err;
	struct entry *e;
	bool due = false, writer = d->writing;

	pthread_rwlock_wrlock(&d->lock);
	e = find(d, target_id);
	if (e && now - e->seen_written_ms >= SEEN_WRITE_MS) {
		e->seen_written_ms = now;
		due = !writer;
		if (writer) {
			e->seen_due = true;
			tn_store_now(e->seen_at);
		}
	}
	pthread_rwlock_unlock(&d->lock);
	if (due && tn_store_target_update(srv->store, target_id, &u, &err) != 0)
		tn_log(TN_LOG_WARN, "documents", "seen_failed", "{s:s, s:s}", "target", target_id,
		       "message", err.message);
}

/* Stores every noted last_seen, in one transaction. */
static void seen_flush(struct tn_documents *d)
{
	size_t n = 0, cap = 0;
	char **ids = NULL, **times = NULL;
	struct tn_error err;

	pthread_rwlock_wrlock(&d->lock);
	for (size_t b = 0; b < BUCKETS; b++)
		for (struct entry *e = d->buckets[b]; e; e = e->next) {
			if (!e->seen_due)
				continue;
			if (n == cap) {
				cap = cap ? 2 * cap : 256;
				ids = xrealloc(ids, cap * sizeof *ids);
				times = xrealloc(times, cap * sizeof *times);
			}
			ids[n] = xstrdup(e->target_id);
			times[n++] = xstrdup(e->seen_at);
			e->seen_due = false;
		}
	pthread_rwlock_unlock(&d->lock);
	if (n && tn_store_targets_seen(d->srv->store, (const char *const *)ids,
				       (const char *const *)times, n, &err) != 0)
		tn_log(TN_LOG_WARN, "documents", "seen_failed", "{s:i, s:s}", "targets", (int)n,
		       "message", err.message);
	for (size_t i = 0; i < n; i++) {
		free(ids[i]);
		free(times[i]);
	}
	free(ids);
	free(times);
}

static void *seen_writer(void *arg)
{
	struct tn_documents *d = arg;
	bool stopping = false;

	pthread_setname_np(pthread_self(), "tn-seen");
	while (!stopping) {
		struct timespec until;

		pthread_mutex_lock(&d->writer_lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += (long)(SEEN_FLUSH_MS % 1000) * 1000000;
		until.tv_sec += SEEN_FLUSH_MS / 1000 + until.tv_nsec / 1000000000;
		until.tv_nsec %= 1000000000;
		while (!d->stopping &&
		       pthread_cond_timedwait(&d->writer_cond, &d->writer_lock, &until) == 0)
			;
		stopping = d->stopping;
		pthread_mutex_unlock(&d->writer_lock);
		seen_flush(d);
	}
	return NULL;
}

void tn_documents_start_writer(struct tn_server *srv)
{
	struct tn_documents *d = srv->documents;

	d->srv = srv;
	d->writing = true;
	pthread_create(&d->writer, NULL, seen_writer, d);
}

void tn_documents_stop_writer(struct tn_server *srv)
{
	struct tn_documents *d = srv->documents;

	if (!d->writing)
		return;
	pthread_mutex_lock(&d->writer_lock);
	d->stopping = true;
	pthread_cond_signal(&d->writer_cond);
	pthread_mutex_unlock(&d->writer_lock);
	pthread_join(d->writer, NULL); /* its last round stores what is left */
	d->writing = false;
}
