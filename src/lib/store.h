/* store.h — the backend-neutral store.
 *
 * The domain code (project.c, queue.c, ...) holds the rules; a backend only
 * keeps rows. Each backend is one file (store_sqlite.c; PostgreSQL later)
 * filling in `struct store_ops`. Callers see an opaque `struct store`.
 *
 * Conventions:
 *  - every op returns an enum tly_code; TLY_ENOTFOUND when a row is absent,
 *    TLY_ECONFLICT when a uniqueness rule refuses the write;
 *  - ids are row numbers (int64, > 0);
 *  - strings in records handed to a callback are valid only during the
 *    callback; records filled for the caller own their strings and are
 *    released with the matching *_clear function;
 *  - writes happen inside store_begin()/store_commit() (or _rollback()).
 */
#ifndef TLY_STORE_H
#define TLY_STORE_H

#include <stdint.h>

#include "err.h"

enum tly_role { TLY_ROLE_NONE = 0, TLY_ROLE_ANNOTATOR, TLY_ROLE_REVIEWER,
		TLY_ROLE_MANAGER, TLY_ROLE_OWNER };
enum tly_task_status { TLY_TASK_QUEUED = 0, TLY_TASK_IN_PROGRESS, TLY_TASK_COMPLETED,
		       TLY_TASK_CANCELED, TLY_TASK_NSTATUS };
enum tly_asg_status { TLY_ASG_ACTIVE = 0, TLY_ASG_SUBMITTED, TLY_ASG_RELEASED,
		      TLY_ASG_EXPIRED };

struct store;

struct store_org { int64_t id; char *name; int64_t created_at; };
struct store_key { int64_t id, user_id, org_id; enum tly_role role; int revoked; };
struct store_user { int64_t id; char *email; char *password_hash; };
struct store_project {
	int64_t id, org_id;
	char *name;
	char *schema;          /* normalized schema JSON */
	int64_t created_at;
};
struct store_task {
	int64_t id, project_id;
	char *unique_id;       /* NULL when none */
	int64_t priority;
	char *data, *metadata; /* JSON text; metadata NULL when none */
	enum tly_task_status status;
	int n_responses, n_leases;
	int64_t created_at;
	int is_gold;
	int slots;             /* at insert: max_responses (kept as max - responses - leases) */
	char *gold;            /* known answers (JSON) of a gold task, else NULL */
	char *consensus;       /* consensus JSON, NULL until the first response */
};
struct store_asg {
	int64_t id, task_id, project_id, user_id;
	enum tly_asg_status status;
	int64_t created_at, expires_at;
};
struct store_response {
	int64_t id, task_id, assignment_id, user_id;
	char *answers;
	int64_t duration_ms, created_at;
	int correct;           /* on a gold task: 1 right, 0 wrong; -1 not scored */
};
/* What the project knows of one annotator. */
struct store_stats {
	int64_t project_id, user_id;
	int answered, gold_seen, gold_correct;
	double quality;        /* estimated accuracy from the last fit; < 0 when none */
};
typedef int (*store_stats_cb)(void *arg, const struct store_stats *st);
typedef int (*store_answer_cb)(void *arg, const struct store_response *r, const struct store_stats *st);

typedef int (*store_org_cb)(void *arg, const struct store_org *o);
typedef int (*store_project_cb)(void *arg, const struct store_project *p);
typedef int (*store_task_cb)(void *arg, const struct store_task *t);
typedef int (*store_response_cb)(void *arg, const struct store_response *r);
typedef int (*store_asg_cb)(void *arg, const struct store_asg *a);

struct store_ops {
	const char *name;
	void (*close)(struct store *s);
	enum tly_code (*begin)(struct store *s, struct tly_err *err);
	enum tly_code (*commit)(struct store *s, struct tly_err *err);
	void (*rollback)(struct store *s);
	/* Like begin(), but inside an open transaction it sets no savepoint
	 * (a savepoint copies every page the operation touches again): for an
	 * operation that makes all its checks before its first write. A rollback
	 * after a write then dooms the whole outer transaction, whose commit()
	 * rolls everything back and fails. */
	enum tly_code (*begin_unguarded)(struct store *s, struct tly_err *err);
	/* A transaction that only reads (no write lock: writers go on), ended by
	 * commit() or rollback(): one snapshot and one lock for many statements,
	 * instead of one of each per statement. Nested, as begin_unguarded(). */
	enum tly_code (*begin_read)(struct store *s, struct tly_err *err);

	/* Deferred durability, for a server that acknowledges in groups: after
	 * defer_sync(), commit() no longer waits for the disk; a commit counts as
	 * durable once a later sync() returned. sync() and checkpoint() never
	 * touch the connection the other ops use, so a second and a third thread
	 * may call them while the first goes on writing. *checkpoint_due is set
	 * when the log has grown by ckpt_frames pages since the last one. */
	enum tly_code (*defer_sync)(struct store *s, int ckpt_frames, struct tly_err *err);
	enum tly_code (*sync)(struct store *s, int *checkpoint_due, struct tly_err *err);
	/* *left: log frames it could not copy yet (the writer kept writing) */
	enum tly_code (*checkpoint)(struct store *s, int *left, struct tly_err *err);

	/* caps the handle's page cache at kib KiB: a handle that only walks
	 * tables in order (an export's helper) gains nothing from a big one */
	enum tly_code (*cache_limit)(struct store *s, int kib, struct tly_err *err);
	/* changes whenever another connection commits (PRAGMA data_version) */
	enum tly_code (*data_version)(struct store *s, int64_t *v, struct tly_err *err);
	/* how many of this handle's writes were undone so far (a transaction or
	 * savepoint rolled back after writing, a commit that failed): what was
	 * read inside one, and kept in memory, may no longer be in the database */
	uint64_t (*undone)(struct store *s);
	enum tly_code (*meta_get)(struct store *s, const char *key, void *buf, int len, struct tly_err *err);
	/* the value as a new NUL-terminated string (free it) */
	enum tly_code (*meta_get_text)(struct store *s, const char *key, char **out, struct tly_err *err);
	enum tly_code (*meta_set)(struct store *s, const char *key, const void *buf, int len, struct tly_err *err);

	enum tly_code (*org_insert)(struct store *s, const char *name, int64_t now, int64_t *id, struct tly_err *err);
	enum tly_code (*org_get)(struct store *s, int64_t id, const char *name, struct store_org *o, struct tly_err *err);
	enum tly_code (*org_list)(struct store *s, store_org_cb cb, void *arg, struct tly_err *err);

	enum tly_code (*user_insert)(struct store *s, const char *email, const char *pwhash, int64_t now, int64_t *id, struct tly_err *err);
	enum tly_code (*user_get)(struct store *s, int64_t id, const char *email, struct store_user *u, struct tly_err *err);
	enum tly_code (*member_set)(struct store *s, int64_t org, int64_t user, enum tly_role role, struct tly_err *err);
	enum tly_code (*member_get)(struct store *s, int64_t org, int64_t user, enum tly_role *role, struct tly_err *err);
	/* the only org of a user; TLY_ECONFLICT when several, TLY_ENOTFOUND when none */
	enum tly_code (*member_sole_org)(struct store *s, int64_t user, int64_t *org, struct tly_err *err);

	enum tly_code (*key_insert)(struct store *s, int64_t user, int64_t org, const unsigned char *hash, int hashlen, int64_t now, int64_t *id, struct tly_err *err);
	enum tly_code (*key_lookup)(struct store *s, const unsigned char *hash, int hashlen, struct store_key *k, struct tly_err *err);
	enum tly_code (*key_revoke)(struct store *s, int64_t id, int64_t now, struct tly_err *err);

	enum tly_code (*project_insert)(struct store *s, const struct store_project *p, int64_t *id, struct tly_err *err);
	enum tly_code (*project_get)(struct store *s, int64_t id, struct store_project *p, struct tly_err *err);
	/* the org's projects with id > after, by id, at most limit */
	enum tly_code (*project_list)(struct store *s, int64_t org, int64_t after, int limit, store_project_cb cb, void *arg, struct tly_err *err);
	/* tasks by status, kept as counters (not a scan): O(1) at any size */
	enum tly_code (*project_counts)(struct store *s, int64_t project, int64_t counts[TLY_TASK_NSTATUS], struct tly_err *err);
	/* gold tasks of the project, any status */
	enum tly_code (*gold_count)(struct store *s, int64_t project, int64_t *n, struct tly_err *err);

	/* TLY_ECONFLICT (and *id = the existing task) when unique_id is taken */
	enum tly_code (*task_insert)(struct store *s, const struct store_task *t, int64_t *id, struct tly_err *err);
	enum tly_code (*task_get)(struct store *s, int64_t id, struct store_task *t, struct tly_err *err);
	/* a project's tasks with after < id <= upto, by id, at most limit (status < 0: any) */
	enum tly_code (*task_list)(struct store *s, int64_t project, int status, int64_t after, int64_t upto, int limit, store_task_cb cb, void *arg, struct tly_err *err);
	/* the id of the project's n-th task (any status) with id > after, by
	 * id; 0 when it has fewer. Reads only an index: it cuts a walk into
	 * ranges that several connections can read at once */
	enum tly_code (*task_nth)(struct store *s, int64_t project, int64_t after, int n, int64_t *id, struct tly_err *err);
	/* consensus NULL keeps the stored one */
	/* `before` is the row as read (its id, project and status: the project's
	 * counts move with the status); the rest are the new values */
	enum tly_code (*task_update)(struct store *s, const struct store_task *before, enum tly_task_status status, int n_responses, int n_leases, const char *consensus, struct tly_err *err);
	/* next open task of the project with n_responses + n_leases < max that
	 * `user` was never assigned; highest priority, then lowest id; t is
	 * filled like task_get's */
	enum tly_code (*task_next)(struct store *s, int64_t project, int64_t user, int max, struct store_task *t, struct tly_err *err);

	/* next gold task of the project `user` was never assigned, by id */
	enum tly_code (*task_next_gold)(struct store *s, int64_t project, int64_t user, int64_t *id, struct tly_err *err);
	enum tly_code (*task_set_consensus)(struct store *s, int64_t id, const char *consensus, struct tly_err *err);

	/* zeros (quality -1) when the annotator has no row yet */
	enum tly_code (*stats_get)(struct store *s, int64_t project, int64_t user, struct store_stats *st, struct tly_err *err);
	enum tly_code (*stats_put)(struct store *s, const struct store_stats *st, struct tly_err *err);
	/* adds to an annotator's counters (making the row when needed) */
	enum tly_code (*stats_bump)(struct store *s, int64_t project, int64_t user, int answered, int gold_seen, int gold_correct, struct tly_err *err);
	enum tly_code (*stats_list)(struct store *s, int64_t project, store_stats_cb cb, void *arg, struct tly_err *err);

	/* TLY_ECONFLICT when (task, user) already has an assignment */
	enum tly_code (*asg_insert)(struct store *s, const struct store_asg *a, int64_t *id, struct tly_err *err);
	enum tly_code (*asg_get)(struct store *s, int64_t id, struct store_asg *a, struct tly_err *err);
	enum tly_code (*asg_update)(struct store *s, int64_t id, enum tly_asg_status status, int64_t expires_at, struct tly_err *err);
	/* the caller's live lease on the project, if any (TLY_ENOTFOUND otherwise) */
	enum tly_code (*asg_live)(struct store *s, int64_t project, int64_t user, int64_t now, struct store_asg *a, struct tly_err *err);
	/* active assignments of the project whose lease ended at or before now */
	enum tly_code (*asg_expired)(struct store *s, int64_t project, int64_t now, int limit, store_asg_cb cb, void *arg, struct tly_err *err);

	enum tly_code (*response_insert)(struct store *s, const struct store_response *r, int64_t *id, struct tly_err *err);
	enum tly_code (*response_list)(struct store *s, int64_t task, store_response_cb cb, void *arg, struct tly_err *err);
	/* task_list, each task followed by its responses (by id) and then one
	 * resp_cb(arg, NULL): one walk along each table instead of a lookup per
	 * task; only tasks with after < id <= upto. Either callback returning
	 * non-zero stops the walk. */
	enum tly_code (*task_list_responses)(struct store *s, int64_t project, int status, int64_t after, int64_t upto, int limit, store_task_cb task_cb, store_response_cb resp_cb, void *arg, struct tly_err *err);
	/* a task's responses with their annotators' stats on the project, in one pass */
	enum tly_code (*response_list_stats)(struct store *s, int64_t project, int64_t task, store_answer_cb cb, void *arg, struct tly_err *err);
};

struct store {
	const struct store_ops *ops;
};

/* Opens (creating when asked) a SQLite database file. */
enum tly_code store_sqlite_open(const char *path, int create, struct store **out, struct tly_err *err);

void store_org_clear(struct store_org *o);
void store_user_clear(struct store_user *u);
void store_project_clear(struct store_project *p);
void store_task_clear(struct store_task *t);

#endif
