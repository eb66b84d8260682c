/* journal.h - what the agent must remember across a crash, written with
 * write-temp + fsync + rename before every step (DESIGN §2 "Agent
 * phases"): who it is (server, target id, token, the server's pinned key),
 * the highest document generation it has seen, the switch in progress
 * (phase, from, to), and the releases it reported failed for a generation,
 * which it never retries on its own. */
#ifndef TN_JOURNAL_H
#define TN_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* The step in progress; a restarted agent resumes or rolls back from it. */
enum tn_journal_phase {
	TN_JOURNAL_IDLE,        /* nothing in flight: `to` (if set) runs */
	TN_JOURNAL_SWITCHING,   /* stopping `from`, pointing current, starting `to` */
	TN_JOURNAL_COMMITTING,  /* `to` started; its health decides */
	TN_JOURNAL_ROLLING_BACK /* `to` failed; going back to `from` */
};

struct tn_journal {
	/* identity (agent.json, mode 0600: it holds the token) */
	char *server;      /* base URL */
	char *target_id;
	char *token;
	char *server_key;  /* base64 of the Ed25519 public key */
	/* progress (journal.json) */
	int64_t generation; /* highest seen */
	char *cluster;      /* from the documents: {{cluster.name}} */
	enum tn_journal_phase phase;
	char *from;         /* release ids, or NULL */
	char *to;
	int64_t switch_generation; /* the generation that asked for `to` */
	char *failed;       /* the release reported failed ... */
	int64_t failed_generation; /* ... for this generation */
	char *message;      /* why it failed, for the report after a restart */
};

/* Loads DIR/agent.json and DIR/journal.json; a missing journal is an idle
 * one; a missing agent.json is TN_E_NOT_FOUND (not enrolled yet). */
int tn_journal_load(const char *dir, struct tn_journal *j, struct tn_error *err) TN_MUST_CHECK;
/* Writes the identity (mode 0600). */
int tn_journal_save_identity(const char *dir, const struct tn_journal *j, struct tn_error *err)
	TN_MUST_CHECK;
/* Writes the progress part, durably, before the step it announces. */
int tn_journal_save(const char *dir, const struct tn_journal *j, struct tn_error *err)
	TN_MUST_CHECK;
void tn_journal_clear(struct tn_journal *j);

/* Sets a string field (copied; NULL clears). */
void tn_journal_set(char **field, const char *value);

const char *tn_journal_phase_name(enum tn_journal_phase p);

#endif
