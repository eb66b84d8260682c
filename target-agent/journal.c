/* journal.c - see journal.h.  Two small JSON files: the identity rarely
 * changes; the progress file is rewritten at every step. */
#include "journal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "json.h"
#include "xalloc.h"

#define FILE_MAX (64 * 1024)

static const char *const phase_names[] = {"idle", "switching", "committing", "rolling_back"};

const char *tn_journal_phase_name(enum tn_journal_phase p)
{
	return (size_t)p < sizeof phase_names / sizeof phase_names[0] ? phase_names[p] : "idle";
}

void tn_journal_set(char **field, const char *value)
{
	free(*field);
	*field = value ? xstrdup(value) : NULL;
}

void tn_journal_clear(struct tn_journal *j)
{
	free(j->server);
	free(j->target_id);
	free(j->token);
	free(j->server_key);
	free(j->cluster);
	free(j->from);
	free(j->to);
	free(j->failed);
	free(j->message);
	memset(j, 0, sizeof *j);
}

static int read_json(const char *dir, const char *name, json_t **out, struct tn_error *err)
{
	char *path = xasprintf("%s/%s", dir, name);
	char *text = NULL;
	size_t len = 0;
	int rc = tn_read_file(path, FILE_MAX, &text, &len, err);

	if (rc == 0 && (rc = tn_json_parse_object(text, len, out, err)) != 0)
		tn_error_prefix(err, "%s", path);
	free(text);
	free(path);
	return rc;
}

static void take(char **field, json_t *obj, const char *key)
{
	const char *v = json_string_value(json_object_get(obj, key));

	tn_journal_set(field, v);
}

int tn_journal_load(const char *dir, struct tn_journal *j, struct tn_error *err)
{
	json_t *id = NULL, *prog = NULL;
	char *path = xasprintf("%s/agent.json", dir);
	bool exists = access(path, F_OK) == 0;
	const char *phase;
	int rc;

	memset(j, 0, sizeof *j);
	free(path);
	if (!exists)
		return tn_fail(err, TN_E_NOT_FOUND, "%s/agent.json: not enrolled yet", dir);
	if ((rc = read_json(dir, "agent.json", &id, err)) != 0)
		return rc;
	take(&j->server, id, "server");
	take(&j->target_id, id, "target_id");
	take(&j->token, id, "token");
	take(&j->server_key, id, "server_key");
	json_decref(id);
	if (!j->server || !j->target_id || !j->token || !j->server_key) {
		tn_journal_clear(j);
		return tn_fail(err, TN_E_INVALID,
			       "%s/agent.json: server, target_id, token and server_key are needed",
			       dir);
	}
	path = xasprintf("%s/journal.json", dir);
	exists = access(path, F_OK) == 0;
	free(path);
	if (!exists)
		return 0; /* never switched yet: idle */
	if ((rc = read_json(dir, "journal.json", &prog, err)) != 0) {
		tn_journal_clear(j);
		return rc;
	}
	j->generation = json_integer_value(json_object_get(prog, "generation"));
	phase = json_string_value(json_object_get(prog, "phase"));
	for (size_t p = 0; phase && p < sizeof phase_names / sizeof phase_names[0]; p++)
		if (strcmp(phase, phase_names[p]) == 0)
			j->phase = (enum tn_journal_phase)p;
	take(&j->cluster, prog, "cluster");
	take(&j->from, prog, "from");
	take(&j->to, prog, "to");
	j->switch_generation = json_integer_value(json_object_get(prog, "switch_generation"));
	take(&j->failed, prog, "failed");
	j->failed_generation = json_integer_value(json_object_get(prog, "failed_generation"));
	take(&j->message, prog, "message");
	json_decref(prog);
	return 0;
}

static int write_json(const char *dir, const char *name, json_t *obj, mode_t mode,
		      struct tn_error *err)
{
	char *path = xasprintf("%s/%s", dir, name);
	char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	int rc = tn_write_file_atomic(path, text, strlen(text), mode, err);

	free(text);
	free(path);
	return rc;
}

int tn_journal_save_identity(const char *dir, const struct tn_journal *j, struct tn_error *err)
{
	json_t *obj = json_pack("{s:s, s:s, s:s, s:s}", "server", j->server, "target_id",
				j->target_id, "token", j->token, "server_key", j->server_key);
	int rc = write_json(dir, "agent.json", obj, 0600, err);

	json_decref(obj);
	return rc;
}

int tn_journal_save(const char *dir, const struct tn_journal *j, struct tn_error *err)
{
	json_t *obj = json_pack("{s:I, s:s?, s:s, s:s?, s:s?, s:I, s:s?, s:I, s:s?}", "generation",
				(json_int_t)j->generation, "cluster", j->cluster, "phase",
				tn_journal_phase_name(j->phase),
				"from", j->from, "to", j->to, "switch_generation",
				(json_int_t)j->switch_generation, "failed", j->failed,
				"failed_generation", (json_int_t)j->failed_generation, "message",
				j->message);
	int rc = write_json(dir, "journal.json", obj, 0600, err);

	json_decref(obj);
	return rc;
}
