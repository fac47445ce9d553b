/* tallyint.h — internals shared by the library's domain files (tally.c,
 * auth.c, project.c, task.c, queue.c, export.c). Not for front ends. */
#ifndef TLY_TALLYINT_H
#define TLY_TALLYINT_H

#include "ids.h"
#include "schema.h"
#include "tally.h"

#define TLY__SCHEMA_CACHE 64

/* Projects never change once made: their rows and parsed schemas are kept,
 * until a write of this handle is undone (the project may have been made in
 * it, and its row id then goes to the next project made). */
struct tly__cached_schema {
	int64_t project_id, org_id, created_at;
	uint64_t undone;          /* the store's undone count when it was loaded */
	struct tly_schema schema; /* owned */
};

#define TLY__FIT_SLOTS 64
/* the key cache: 4-way sets, so that the 64 to 1,000 annotators of a busy
 * project do not evict each other (direct-mapped, 64 keys in 256 slots made
 * a key lookup query on about one request in eight) */
#define TLY__KEY_SETS 256
#define TLY__KEY_WAYS 4

struct tly__report_cache; /* report.c */

struct tly {
	struct store *store;
	char *path;
	const atomic_int *cancel;
	struct tly_idcodec ids;
	struct tly__cached_schema cache[TLY__SCHEMA_CACHE];
	/* answers since the last refit, per project (a small direct-mapped table) */
	struct {
		int64_t project_id;
		long long count, every, base, total; /* base: refit_every; total: answers */
		int seeded;    /* total was read from the project's counters (scoring.c) */
	} fits[TLY__FIT_SLOTS];
	int fit_due;   /* some slot reached its count: tly_refit_due has work */
	struct { int64_t project_id, at; } sweeps[TLY__FIT_SLOTS]; /* last lease sweep */
	/* authenticated keys, valid while no other connection has committed
	 * (a revocation or role change from the CLI invalidates them all) */
	struct {
		struct { unsigned char hash[32]; struct tly_actor a; int64_t version; int used; } way[TLY__KEY_WAYS];
		unsigned next; /* the way a miss replaces, round robin */
	} keys[TLY__KEY_SETS];
	struct tly__report_cache *reports; /* the last quality reports' walks */
	int64_t seen_version; /* the data version tly_authenticate read last */
	int claim_held; /* the last claim handed back a held lease, writing nothing */
	/* the claim reply for the lease the last submit with "next" made
	 * (tly_submit_next_claim): its text, its project, when it runs out */
	struct tly_buf next_claim;
	int64_t next_claim_project, next_claim_expires;
	int next_claim_ok;
};

/* A loaded project: the row (id, org_id, created_at; name and schema text are
 * not loaded) and its parsed schema (borrowed from the cache). */
struct tly__project {
	struct store_project row;              /* release with store_project_clear */
	const struct tly_schema *schema;
};

/* Loads project `id` (public id) if it belongs to the actor's org and the
 * actor has at least `min` role there. */
enum tly_code tly__project_load(struct tly *t, const struct tly_actor *a, const char *id,
				enum tly_role min, struct tly__project *p, struct tly_err *err);
/* Same by row id. */
enum tly_code tly__project_load_row(struct tly *t, const struct tly_actor *a, int64_t id,
				    enum tly_role min, struct tly__project *p, struct tly_err *err);
enum tly_code tly__role_check(const struct tly_actor *a, enum tly_role min, struct tly_err *err);

/* JSON helpers */
json_t *tly__id(struct tly *t, enum tly_kind k, int64_t n);
json_t *tly__time(int64_t ms);
/* The same as JSON text appended to b: "id", "time"; TLY_ETOOLARGE past b's cap. */
enum tly_code tly__buf_id(struct tly_buf *b, struct tly *t, enum tly_kind k, int64_t n);
enum tly_code tly__buf_time(struct tly_buf *b, int64_t ms);
/* The cap of a reply built as text (a task's data is far under it). */
#define TLY__REPLY_CAP ((size_t)1 << 30)
json_t *tly__parse_stored(const char *text);  /* stored JSON text -> json_t (null on fault) */
json_t *tly__project_json(struct tly *t, const struct tly__project *p, int with_counts);
json_t *tly__task_json(struct tly *t, const struct store_task *row, int with_responses);

/* Recomputes queued/in_progress from the counters; terminal states stay. */
enum tly_task_status tly__task_status(enum tly_task_status cur, int n_responses, int n_leases);

/* scoring.c: called by queue.c inside its transaction */
/* A task's first response, just written, and its annotator's counters. */
struct tly__answer {
	const json_t *answers;
	const struct store_stats *stats;
};
/* Computes a task's consensus from its stored responses (from `only`
 * instead, when not NULL: the task's one response): *text gets the JSON to
 * store (NULL when no categorical question was answered; free it);
 * *confident is 1 when every categorical question reached the project's
 * target (or the project has no target or no categorical question). */
enum tly_code tly__consensus_compute(struct tly *t, const struct tly__project *p,
				     const struct store_task *task, const struct tly__answer *only,
				     int *confident, char **text, struct tly_err *err);
/* 1 when the answers match every known answer of the gold task, else 0. */
int tly__gold_correct(const struct store_task *task, const json_t *answers);
/* 1 (and a reason) when the annotator is paused on the project. */
int tly__paused(const struct tly__project *p, const struct store_stats *st, char *why, size_t n);
/* Counts one new answer towards the project's next refit. */
void tly__note_answer(struct tly *t, const struct tly__project *p);
/* Every answered task of the project with its responses, through the
 * callbacks as task_list_responses calls them, each task exactly once (in
 * ranges of tasks by id, each range one read snapshot). A callback that
 * returns non-zero stops the walk (TLY_OK: the caller knows why); the
 * handle's cancel flag stops it too (TLY_EINTERNAL, "canceled"). */
enum tly_code tly__walk_answered(struct tly *t, int64_t project, store_task_cb task_cb,
				 store_response_cb resp_cb, void *arg, struct tly_err *err);
/* A categorical question with more labels than this is not scored
 * (consensus, refit, report). */
#define TLY__MAX_LABELS 1024
/* Is a question with k labels (on this task) scored? With one label there
 * is nothing to agree on; past TLY__MAX_LABELS the scoring's per-label
 * arrays (sized by it) cannot hold it. */
static inline int tly__scored(int k)
{
	return k >= 2 && k <= TLY__MAX_LABELS;
}
/* z of the 95% Wilson interval on gold accuracy (pausing, the report). */
#define TLY__WILSON_Z 1.96
/* report.c: frees the handle's kept report walks */
void tly__report_cache_free(struct tly *t);
/* The label index of q's answer a on a task whose q has k labels, or -1. */
int tly__answer_label(const struct tly_question *q, const json_t *a, int k);
/* The task's data, parsed, when the schema's label counts depend on it (a
 * compare question), else NULL. */
json_t *tly__labels_data(const struct tly_schema *sc, const struct store_task *task);

#endif
