/* tally.h — the public API of the tally library: organizations, users, keys,
 * projects, tasks, the claim/submit queue and exports.
 *
 * The library knows nothing of HTTP. Every operation takes the acting
 * principal (struct tly_actor) and answers TLY_ENOTFOUND for any object
 * outside the actor's organization: callers cannot tell "absent" from "not
 * yours". Object ids in and out are public ids (see ids.h).
 *
 * Results are jansson objects owned by the caller (json_decref them). Inputs
 * are borrowed. A struct tly is not thread-safe: one per thread. */
#ifndef TLY_TALLY_H
#define TLY_TALLY_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"
#include "ids.h"
#include "err.h"
#include "store.h"

struct tly;

struct tly_actor {
	int64_t user_id, org_id, key_id;
	enum tly_role role;
};

#define TLY_MAX_BATCH 10000  /* tasks per tly_tasks_add call */
#define TLY_KEY_MAX 64       /* buffer for a printable API key */
#define TLY_LIST_MAX 1000    /* most items in one page of a list */

/* Opens the database at path (creating it and its schema when create). */
enum tly_code tly_open(const char *path, int create, struct tly **out, struct tly_err *err);
void tly_close(struct tly *t);
struct store *tly_store(struct tly *t);

/* Roles by name ("owner", ...); TLY_ROLE_NONE when unknown. */
enum tly_role tly_role_parse(const char *s);
const char *tly_role_name(enum tly_role r);
const char *tly_task_status_name(enum tly_task_status s);
int tly_task_status_parse(const char *s); /* -1 when unknown */

/* ---- administration (the CLI's set-up commands) ------------------------- */
enum tly_code tly_org_add(struct tly *t, const char *name, char id_out[32], struct tly_err *err);
/* org given as "org_…" id or name */
enum tly_code tly_org_resolve(struct tly *t, const char *org, int64_t *id, struct tly_err *err);
enum tly_code tly_org_list(struct tly *t, json_t **out, struct tly_err *err);
/* Adds the user (or a membership for an existing one). password may be NULL. */
enum tly_code tly_user_add(struct tly *t, const char *org, const char *email, const char *role,
			   const char *password, char id_out[32], struct tly_err *err);
/* Creates an API key; org may be NULL when the user has a single membership.
 * key_out receives the only copy of the secret. */
enum tly_code tly_key_create(struct tly *t, const char *email, const char *org,
			     char key_out[TLY_KEY_MAX], char id_out[32], struct tly_err *err);
enum tly_code tly_key_revoke(struct tly *t, const char *key_id, struct tly_err *err);
/* Turns a presented API key into an actor; TLY_EUNAUTH when not valid. */
enum tly_code tly_authenticate(struct tly *t, const char *key, struct tly_actor *a,
			       struct tly_err *err);
/* The database's data version as the last tly_authenticate read it: it
 * changes when another connection or process commits (a key revoked from the
 * CLI); -1 when it could not be read. */
int64_t tly_seen_version(const struct tly *t);
/* Checks an email/password pair (for browser sessions). */
enum tly_code tly_password_check(struct tly *t, const char *email, const char *password,
				 int64_t *user_id, struct tly_err *err);
/* An owner actor for org (CLI administration). */
enum tly_code tly_actor_admin(struct tly *t, const char *org, struct tly_actor *a,
			      struct tly_err *err);
enum tly_code tly_me(struct tly *t, const struct tly_actor *a, json_t **out, struct tly_err *err);

/* ---- projects ------------------------------------------------------------ */
enum tly_code tly_project_create(struct tly *t, const struct tly_actor *a, const json_t *schema,
				 json_t **out, struct tly_err *err);
enum tly_code tly_project_get(struct tly *t, const struct tly_actor *a, const char *id,
			      json_t **out, struct tly_err *err);
/* The caller's organization's projects, oldest first, limit (1 to
 * TLY_LIST_MAX) at a time: {"projects":[…],"next_cursor":…|null}; cursor
 * NULL for the first page, else a next_cursor it gave. */
enum tly_code tly_project_list(struct tly *t, const struct tly_actor *a, const char *cursor,
			       int limit, json_t **out, struct tly_err *err);

/* ---- tasks --------------------------------------------------------------- */
/* tasks: a JSON array of task objects; all or nothing. *out:
 * {"created":[ids], "duplicates":[{"unique_id","id"}]}. */
enum tly_code tly_tasks_add(struct tly *t, const struct tly_actor *a, const char *project,
			    const json_t *tasks, json_t **out, struct tly_err *err);
enum tly_code tly_task_list(struct tly *t, const struct tly_actor *a, const char *project,
			    const char *status, const char *cursor, int limit, json_t **out,
			    struct tly_err *err);
enum tly_code tly_task_get(struct tly *t, const struct tly_actor *a, const char *id,
			   json_t **out, struct tly_err *err);
enum tly_code tly_task_cancel(struct tly *t, const struct tly_actor *a, const char *id,
			      json_t **out, struct tly_err *err);

/* ---- the queue ----------------------------------------------------------- */
/* *out is NULL (and TLY_OK returned) when no task is available. */
enum tly_code tly_claim(struct tly *t, const struct tly_actor *a, const char *project,
			json_t **out, struct tly_err *err);
/* body: {"answers":{...},"duration_ms":N,"next":true|false}; next: also
 * lease the caller's next task in the same transaction (see tly_claim_held) */
enum tly_code tly_submit(struct tly *t, const struct tly_actor *a, const char *assignment,
			 const json_t *body, json_t **out, struct tly_err *err);
/* The same two, writing the reply as compact JSON text onto out (nothing
 * appended when no task is available): the hot path of the annotator loop
 * builds no JSON tree, and a task's stored data goes out as it is stored. */
enum tly_code tly_claim_text(struct tly *t, const struct tly_actor *a, const char *project,
			     struct tly_buf *out, struct tly_err *err);
enum tly_code tly_submit_text(struct tly *t, const struct tly_actor *a, const char *assignment,
			      const json_t *body, struct tly_buf *out, struct tly_err *err);
/* After tly_claim or tly_claim_text: 1 when that claim handed back a lease
 * its caller already held (a retried claim, or the task a submit with
 * "next": true leased) and wrote nothing; 0 otherwise. Such a reply depends
 * on nothing newer than the caller's own last write. */
int tly_claim_held(const struct tly *t);
/* After tly_submit_text: when it succeeded with "next": true and leased a new
 * task, the reply a claim right after it would give (the JSON text, *len
 * bytes), the project's public id in project and when the lease runs out (ms
 * since the epoch); else NULL. Valid until the next call on t. A front end may
 * hand that text back itself while nothing else touched the caller's lease
 * (see src/http/handback.h). */
const char *tly_submit_next_claim(struct tly *t, size_t *len, char project[TLY_ID_MAX],
				  int64_t *expires_at);
enum tly_code tly_release(struct tly *t, const struct tly_actor *a, const char *assignment,
			  json_t **out, struct tly_err *err);
enum tly_code tly_heartbeat(struct tly *t, const struct tly_actor *a, const char *assignment,
			    json_t **out, struct tly_err *err);

/* ---- export (streamed) --------------------------------------------------- */
struct tly_export;
enum tly_code tly_export_open(struct tly *t, const struct tly_actor *a, const char *project,
			      const char *format, const char *status, struct tly_export **out,
			      struct tly_err *err);
/* Appends up to max_tasks JSONL lines to buf; *done set when nothing is left. */
enum tly_code tly_export_next(struct tly_export *x, struct tly_buf *buf, int max_tasks,
			      int *done, struct tly_err *err);
/* Reads the rest through t, another handle on the same database (a reader
 * thread's own connection); the checks were made when x was opened. */
void tly_export_use(struct tly_export *x, struct tly *t);
/* Reads with n connections at once (n - 1 helper threads, each opening its
 * own on first need; 1 by default): the same lines in the same order, from
 * up to n cores. Call before the first tly_export_next; max_tasks must then
 * stay the same from call to call. n is clamped to 1..TLY_EXPORT_THREADS_MAX. */
#define TLY_EXPORT_THREADS_MAX 8
void tly_export_threads(struct tly_export *x, int n);
void tly_export_free(struct tly_export *x);

#endif

/* ---- import (streamed, one transaction) ----------------------------------
 * tly_import_begin opens a transaction; each tly_import_add checks one task
 * and writes it; tly_import_end commits (ok) or rolls everything back. */
struct tly_import;
enum tly_code tly_import_begin(struct tly *t, const struct tly_actor *a, const char *project,
			       struct tly_import **out, struct tly_err *err);
/* task: {"data":…,"unique_id":…,"priority":…,"metadata":…}. *created is set
 * to 1 when written, 0 when its unique_id was already there. */
enum tly_code tly_import_add(struct tly_import *im, const json_t *task, int *created,
			     struct tly_err *err);
enum tly_code tly_import_end(struct tly_import *im, int ok, long long *n_created,
			     long long *n_duplicates, struct tly_err *err);

/* An owner actor in the organization of `project` (CLI administration);
 * TLY_ENOTFOUND when there is no such project. */
enum tly_code tly_actor_for_project(struct tly *t, const char *project, struct tly_actor *a,
				    struct tly_err *err);

/* ---- quality (scoring.c) -------------------------------------------------- */
/* Refits the project's annotator model (Dawid-Skene with a prior) over every
 * categorical answer, rewrites each task's consensus, completes tasks that
 * reached the confidence target and stores each annotator's estimated
 * accuracy. Writes in batches of short transactions. *out: a summary. */
enum tly_code tly_quality_refit(struct tly *t, const struct tly_actor *a, const char *project,
				json_t **out, struct tly_err *err);
/* The project's quality report: counts, agreement per question, per-annotator
 * gold accuracy (Wilson interval), agreement with consensus, pause state.
 * The agreement figures come from a walk of every answer, kept by the handle
 * while the project's answers, statuses and fit stay the same; max_age
 * (seconds, 0-86400) lets a kept walk up to that old do even after they
 * changed. "as_of" is when that walk began. */
enum tly_code tly_quality_report(struct tly *t, const struct tly_actor *a, const char *project,
				 int max_age, json_t **out, struct tly_err *err);
/* A project whose refit is due (enough new answers since the last one):
 * writes its id and returns 1, else 0. Resets that project's counter. */
int tly_refit_due(struct tly *t, char project_out[32]);
/* Long operations (a refit) stop early, answering TLY_EINTERNAL "canceled",
 * once *flag becomes non-zero. flag is borrowed; NULL clears it. */
void tly_set_cancel(struct tly *t, const atomic_int *flag);
/* The database path this handle was opened on. */
const char *tly_path(const struct tly *t);
/* TLY_OK when the actor sees the project and holds at least `min` there
 * (TLY_ENOTFOUND / TLY_EFORBIDDEN otherwise). */
enum tly_code tly_project_access(struct tly *t, const struct tly_actor *a, const char *project,
				 enum tly_role min, struct tly_err *err);
