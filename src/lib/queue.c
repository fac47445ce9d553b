/* queue.c — claim, submit, release, heartbeat: the rules of the work queue.
 *
 * Rules (each enforced inside one store transaction; every check comes before
 * the first write, so no savepoint is needed inside a batch: begin_unguarded):
 *  - a user is never assigned the same task twice (the store's unique
 *    (task, user) index backs this up);
 *  - n_responses + live leases never exceeds max_responses;
 *  - a lease that ran out is expired lazily, at the next claim on the
 *    project, and its place goes back to the queue;
 *  - one response per assignment; expired, released or foreign assignments
 *    are refused;
 *  - higher priority first, then oldest;
 *  - a submit with "next": true also leases the annotator's next task, by
 *    the claim's rules, in the same transaction: the claim that follows
 *    finds it held and writes nothing (tly_claim_held says so), so a
 *    front end can answer it without waiting for a sync of its own.
 */
#include "tallyint.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"
#include "util.h"

#define EXPIRE_BATCH 256
#define SWEEP_MS 200

struct expire_ctx {
	struct store *s;
	struct tly_err *err;
	long n;                 /* leases expired */
};

/* Returns one lease's place to its task. */
static enum tly_code drop_lease(struct store *s, int64_t task_id, struct tly_err *err)
{
	struct store_task row;
	enum tly_code rc = s->ops->task_get(s, task_id, &row, err);

	if (rc != TLY_OK)
		return rc;
	if (row.n_leases > 0)
		row.n_leases--;
	rc = s->ops->task_update(s, &row, tly__task_status(row.status, row.n_responses, row.n_leases),
				 row.n_responses, row.n_leases, NULL, err);
	store_task_clear(&row);
	return rc;
}

static int expire_one(void *arg, const struct store_asg *a)
{
	struct expire_ctx *c = arg;

	c->n++;
	if (c->s->ops->asg_update(c->s, a->id, TLY_ASG_EXPIRED, a->expires_at, c->err) != TLY_OK)
		return 1;
	return drop_lease(c->s, a->task_id, c->err) != TLY_OK;
}

/* A reply that would pass the buffer's cap leaves nothing behind. */
static enum tly_code reply_cut(struct tly_buf *b, size_t start)
{
	tly_buf_cut(b, start);
	return TLY_ETOOLARGE;
}

/* For the json_t forms: parses what a *_text call wrote (NULL when nothing). */
static enum tly_code reply_parse(enum tly_code rc, struct tly_buf *b, json_t **out,
				 struct tly_err *err)
{
	*out = NULL;
	if (rc == TLY_OK && b->len && !(*out = json_loadb(b->p, b->len, 0, NULL)))
		rc = tly_err_set(err, TLY_EINTERNAL, "", "a reply was not valid JSON");
	tly_buf_free(b);
	return rc;
}

/* {"assignment":{"id","expires_at"},"task":{"id","data"}}, the data as stored */
static enum tly_code claim_text(struct tly *t, const struct store_asg *a,
				const struct store_task *task, struct tly_buf *b)
{
	size_t start = b->len;

	if (tly_buf_addl(b, "{\"assignment\":{\"id\":") || tly__buf_id(b, t, TLY_ASSIGNMENT, a->id) ||
	    tly_buf_addl(b, ",\"expires_at\":") || tly__buf_time(b, a->expires_at) ||
	    tly_buf_addl(b, "},\"task\":{\"id\":") || tly__buf_id(b, t, TLY_TASK, task->id) ||
	    tly_buf_addl(b, ",\"data\":") || tly_buf_adds(b, task->data ? task->data : "null") ||
	    tly_buf_addl(b, "}}"))
		return reply_cut(b, start);
	return TLY_OK;
}

/* Ran-out leases of a project are swept at most every SWEEP_MS: a lease
 * that ran out comes back to the queue that much later at worst. */
static int sweep_due(struct tly *t, int64_t project, int64_t now)
{
	int slot = (int)((uint64_t)project % TLY__FIT_SLOTS);

	if (t->sweeps[slot].project_id == project && now - t->sweeps[slot].at < SWEEP_MS)
		return 0;
	t->sweeps[slot].project_id = project;
	t->sweeps[slot].at = now;
	return 1;
}

/* Gold first while the annotator qualifies, then at the project's rate. The
 * draw is a keyed hash of (project, user, answers so far): reproducible, and
 * not predictable by the annotator. */
static int want_gold(struct tly *t, const struct tly__project *p, const struct store_stats *st)
{
	const struct tly_quality_cfg *q = &p->schema->quality;
	unsigned char in[24], h[crypto_shorthash_BYTES];
	uint64_t v;
	int64_t n = st->answered;

	if (st->gold_seen < q->qualification)
		return 1;
	if (q->gold_rate <= 0)
		return 0;
	memcpy(in, &p->row.id, 8);
	memcpy(in + 8, &st->user_id, 8);
	memcpy(in + 16, &n, 8);
	crypto_shorthash(h, in, sizeof(in), t->ids.key);
	memcpy(&v, h, 8);
	return (double)(v >> 11) / 9007199254740992.0 < q->gold_rate;
}

/* Expires the project's ran-out leases, at most every SWEEP_MS; *n: how
 * many (NULL: not wanted). */
static enum tly_code sweep(struct tly *t, int64_t project, int64_t now, long *n, struct tly_err *err)
{
	struct expire_ctx ec = { t->store, err, 0 };
	enum tly_code rc = TLY_OK;

	if (sweep_due(t, project, now))
		rc = t->store->ops->asg_expired(t->store, project, now, EXPIRE_BATCH, expire_one, &ec, err);
	if (n)
		*n = ec.n;
	return rc;
}

/* Leases the annotator's next task in the open transaction: TLY_OK with asg
 * and task filled in; TLY_ENOTFOUND when there is none for them, with why
 * set when they are paused ("" otherwise); else the store's error. */
static enum tly_code lease_next(struct tly *t, const struct tly_actor *a, const struct tly__project *p,
				int64_t now, struct store_asg *asg, struct store_task *task,
				char *why, size_t whylen, struct tly_err *err)
{
	struct store *s = t->store;
	struct store_stats st;
	int64_t task_id = 0;
	enum tly_code rc;

	why[0] = 0;
	/* the annotator's counters matter only to gold and pausing */
	memset(&st, 0, sizeof(st));
	st.project_id = p->row.id;
	st.user_id = a->user_id;
	st.quality = -1;
	if ((p->schema->quality.qualification > 0 || p->schema->quality.gold_rate > 0 ||
	     p->schema->quality.gold_min_accuracy > 0) &&
	    (rc = s->ops->stats_get(s, p->row.id, a->user_id, &st, err)) != TLY_OK)
		return rc;
	if (tly__paused(p, &st, why, whylen))
		return TLY_ENOTFOUND;
	rc = TLY_ENOTFOUND;
	if (want_gold(t, p, &st) &&
	    (rc = s->ops->task_next_gold(s, p->row.id, a->user_id, &task_id, err)) == TLY_OK)
		rc = s->ops->task_get(s, task_id, task, err);
	if (rc == TLY_ENOTFOUND)
		rc = s->ops->task_next(s, p->row.id, a->user_id, p->schema->max_responses, task, err);
	if (rc != TLY_OK)
		return rc;
	memset(asg, 0, sizeof(*asg));
	asg->task_id = task->id;
	asg->project_id = p->row.id;
	asg->user_id = a->user_id;
	asg->status = TLY_ASG_ACTIVE;
	asg->created_at = now;
	asg->expires_at = now + (int64_t)p->schema->lease_seconds * 1000;
	if ((rc = s->ops->asg_insert(s, asg, &asg->id, err)) != TLY_OK)
		return rc;
	task->n_leases++;
	return s->ops->task_update(s, task, tly__task_status(task->status, task->n_responses, task->n_leases),
				   task->n_responses, task->n_leases, NULL, err);
}

enum tly_code tly_claim(struct tly *t, const struct tly_actor *a, const char *project,
			json_t **out, struct tly_err *err)
{
	struct tly_buf b;

	tly_buf_init(&b, TLY__REPLY_CAP);
	return reply_parse(tly_claim_text(t, a, project, &b, err), &b, out, err);
}

enum tly_code tly_claim_text(struct tly *t, const struct tly_actor *a, const char *project,
			     struct tly_buf *out, struct tly_err *err)
{
	struct store *s = t->store;
	struct tly__project p;
	struct store_asg asg = { 0 };
	struct store_task task = { 0 };
	int64_t now = tly_now_ms();
	long expired = 0;
	char why[256];
	enum tly_code rc;

	t->claim_held = 0;
	if ((rc = tly__project_load(t, a, project, TLY_ROLE_ANNOTATOR, &p, err)) != TLY_OK)
		return rc;
	if ((rc = s->ops->begin_unguarded(s, err)) != TLY_OK)
		goto out;
	if ((rc = sweep(t, p.row.id, now, &expired, err)) != TLY_OK)
		goto rollback;

	/* a retried claim gets the lease it already holds */
	rc = s->ops->asg_live(s, p.row.id, a->user_id, now, &asg, err);
	if (rc == TLY_OK) {
		if ((rc = s->ops->task_get(s, asg.task_id, &task, err)) != TLY_OK)
			goto rollback;
		if (task.status != TLY_TASK_CANCELED) {
			t->claim_held = expired == 0; /* and so nothing written */
			goto commit;
		}
		/* its task was canceled: close the lease and look further */
		if ((rc = s->ops->asg_update(s, asg.id, TLY_ASG_RELEASED, asg.expires_at, err)) != TLY_OK ||
		    (rc = drop_lease(s, asg.task_id, err)) != TLY_OK)
			goto rollback;
		store_task_clear(&task);
		memset(&asg, 0, sizeof(asg));
		rc = TLY_ENOTFOUND;
	}
	if (rc != TLY_ENOTFOUND)
		goto rollback;
	rc = lease_next(t, a, &p, now, &asg, &task, why, sizeof(why), err);
	if (rc == TLY_ENOTFOUND) {
		tly_err_clear(err);
		rc = s->ops->commit(s, err); /* keep the expiries */
		if (rc == TLY_OK && why[0]) /* nothing to hand out, and the reason why */
			tly_err_set(err, TLY_OK, "", "%s", why);
		goto out;
	}
	if (rc != TLY_OK)
		goto rollback;
commit:
	if ((rc = s->ops->commit(s, err)) == TLY_OK)
		rc = claim_text(t, &asg, &task, out);
	goto out;
rollback:
	s->ops->rollback(s);
out:
	if (rc != TLY_OK)
		t->claim_held = 0;
	store_task_clear(&task);
	store_project_clear(&p.row);
	return rc;
}

int tly_claim_held(const struct tly *t)
{
	return t->claim_held;
}

const char *tly_submit_next_claim(struct tly *t, size_t *len, char project[TLY_ID_MAX],
				  int64_t *expires_at)
{
	if (!t->next_claim_ok)
		return NULL;
	tly_id_encode(&t->ids, TLY_PROJECT, t->next_claim_project, project);
	*len = t->next_claim.len;
	*expires_at = t->next_claim_expires;
	return t->next_claim.p;
}

/* Loads the caller's assignment and its project; anything else is not found. */
static enum tly_code asg_load(struct tly *t, const struct tly_actor *a, const char *id,
			      struct store_asg *asg, struct tly__project *p, struct tly_err *err)
{
	int64_t n = tly_id_decode(&t->ids, TLY_ASSIGNMENT, id);
	enum tly_code rc;

	memset(p, 0, sizeof(*p));
	if (!n || t->store->ops->asg_get(t->store, n, asg, err) != TLY_OK ||
	    asg->user_id != a->user_id)
		return tly_err_set(err, TLY_ENOTFOUND, "", "no such assignment");
	rc = tly__project_load_row(t, a, asg->project_id, TLY_ROLE_ANNOTATOR, p, err);
	if (rc == TLY_ENOTFOUND)
		tly_err_set(err, rc, "", "no such assignment");
	return rc;
}

static const char *const closed_reason[] = {
	[TLY_ASG_ACTIVE] = "lease_expired: the lease on this assignment ran out",
	[TLY_ASG_SUBMITTED] = "already_submitted: this assignment has a response",
	[TLY_ASG_RELEASED] = "released: this assignment was released",
	[TLY_ASG_EXPIRED] = "lease_expired: the lease on this assignment ran out",
};

/* Is the assignment still open? If its lease ran out, expire it now (the
 * caller commits that) and answer the conflict. */
static enum tly_code asg_open(struct store *s, struct store_asg *asg, int64_t now, int *expired_now,
			      struct tly_err *err)
{
	*expired_now = 0;
	if (asg->status == TLY_ASG_ACTIVE && asg->expires_at > now)
		return TLY_OK;
	if (asg->status == TLY_ASG_ACTIVE) {
		if (s->ops->asg_update(s, asg->id, TLY_ASG_EXPIRED, asg->expires_at, err) != TLY_OK ||
		    drop_lease(s, asg->task_id, err) != TLY_OK)
			return TLY_EINTERNAL;
		*expired_now = 1;
	}
	return tly_err_set(err, TLY_ECONFLICT, "", "%s", closed_reason[asg->status]);
}

/* Commits a conflict's side effects (an expiry) and returns the conflict. */
static enum tly_code conflict_out(struct store *s, enum tly_code rc, int keep, struct tly_err *err)
{
	struct tly_err saved = *err;

	if (keep && rc == TLY_ECONFLICT && s->ops->commit(s, err) == TLY_OK) {
		*err = saved;
		return rc;
	}
	s->ops->rollback(s);
	return rc;
}

/* Opens a transaction on the caller's open assignment: loads it, its project
 * and, when task is not NULL, its task (refusing a canceled one). On TLY_OK
 * the transaction stays open for the caller; on failure it is closed (an
 * expiry found on the way is committed). p and task are always safe to clear. */
static enum tly_code assignment_begin(struct tly *t, const struct tly_actor *a,
				      const char *assignment, int64_t now, struct store_asg *asg,
				      struct tly__project *p, struct store_task *task,
				      struct tly_err *err)
{
	struct store *s = t->store;
	int expired_now = 0;
	enum tly_code rc;

	memset(p, 0, sizeof(*p));
	if ((rc = s->ops->begin_unguarded(s, err)) != TLY_OK)
		return rc;
	if ((rc = asg_load(t, a, assignment, asg, p, err)) != TLY_OK)
		goto rollback;
	if ((rc = asg_open(s, asg, now, &expired_now, err)) != TLY_OK)
		return conflict_out(s, rc, expired_now, err);
	if (!task)
		return TLY_OK;
	if ((rc = s->ops->task_get(s, asg->task_id, task, err)) != TLY_OK)
		goto rollback;
	if (task->status == TLY_TASK_CANCELED) {
		rc = tly_err_set(err, TLY_ECONFLICT, "", "task_closed: the task was canceled");
		goto rollback;
	}
	return TLY_OK;
rollback:
	s->ops->rollback(s);
	return rc;
}

enum tly_code tly_submit(struct tly *t, const struct tly_actor *a, const char *assignment,
			 const json_t *body, json_t **out, struct tly_err *err)
{
	struct tly_buf b;

	tly_buf_init(&b, TLY__REPLY_CAP);
	return reply_parse(tly_submit_text(t, a, assignment, body, &b, err), &b, out, err);
}

/* {"response":{"id","task_id","answers","duration_ms","created_at"},"task":{"id","status"}} */
static enum tly_code submit_text(struct tly *t, const struct store_response *r,
				 enum tly_task_status status, struct tly_buf *b)
{
	size_t start = b->len;

	if (tly_buf_addl(b, "{\"response\":{\"id\":") || tly__buf_id(b, t, TLY_RESPONSE, r->id) ||
	    tly_buf_addl(b, ",\"task_id\":") || tly__buf_id(b, t, TLY_TASK, r->task_id) ||
	    tly_buf_addl(b, ",\"answers\":") || tly_buf_adds(b, r->answers) ||
	    tly_buf_addl(b, ",\"duration_ms\":") || tly_buf_addi(b, r->duration_ms) ||
	    tly_buf_addl(b, ",\"created_at\":") || tly__buf_time(b, r->created_at) ||
	    tly_buf_addl(b, "},\"task\":{\"id\":") || tly__buf_id(b, t, TLY_TASK, r->task_id) ||
	    tly_buf_addl(b, ",\"status\":\"") || tly_buf_adds(b, tly_task_status_name(status)) ||
	    tly_buf_addl(b, "\"}}"))
		return reply_cut(b, start);
	return TLY_OK;
}

/* A submit's "next": leases the annotator's next task, as a claim would,
 * unless they hold one on the project already (a lease from a claim made
 * meanwhile). None to be had is no error: the submit stands, and the claim
 * that follows says why. */
static enum tly_code submit_next(struct tly *t, const struct tly_actor *a, const struct tly__project *p,
				 int64_t now, struct tly_err *err)
{
	struct store *s = t->store;
	struct store_asg asg;
	struct store_task task = { 0 };
	char why[256];
	enum tly_code rc;

	if ((rc = sweep(t, p->row.id, now, NULL, err)) != TLY_OK)
		return rc;
	rc = s->ops->asg_live(s, p->row.id, a->user_id, now, &asg, err);
	if (rc == TLY_ENOTFOUND &&
	    (rc = lease_next(t, a, p, now, &asg, &task, why, sizeof(why), err)) == TLY_OK) {
		/* what the claim after this submit will answer, for a front end
		 * that hands it back without a trip through the library */
		tly_buf_reset(&t->next_claim);
		t->next_claim.cap = TLY__REPLY_CAP;
		if (claim_text(t, &asg, &task, &t->next_claim) == TLY_OK) {
			t->next_claim_project = p->row.id;
			t->next_claim_expires = asg.expires_at;
			t->next_claim_ok = 1;
		}
	}
	store_task_clear(&task);
	if (rc == TLY_ENOTFOUND) {
		tly_err_clear(err);
		rc = TLY_OK;
	}
	return rc;
}

enum tly_code tly_submit_text(struct tly *t, const struct tly_actor *a, const char *assignment,
			      const json_t *body, struct tly_buf *out, struct tly_err *err)
{
	struct store *s = t->store;
	struct store_asg asg;
	struct tly__project p;
	struct store_task task = { 0 };
	struct store_response r = { 0 };
	struct store_stats st;
	enum tly_task_status status;
	char *consensus = NULL;
	const json_t *answers = json_object_get(body, "answers"), *dur, *next;
	json_t *data = NULL;
	int64_t now = tly_now_ms();
	long long duration = 0;
	int confident = 1;
	enum tly_code rc;

	t->next_claim_ok = 0;
	if (!json_is_object(body))
		return tly_err_set(err, TLY_EBADREQ, "", "the body must be an object");
	dur = json_object_get(body, "duration_ms");
	if (dur && !json_is_null(dur)) {
		if (!json_is_integer(dur) || json_integer_value(dur) < 0 ||
		    json_integer_value(dur) > 7LL * 24 * 3600 * 1000)
			return tly_err_set(err, TLY_EINVALID, "duration_ms",
					   "duration_ms: must be an integer from 0 to 604800000");
		duration = json_integer_value(dur);
	}
	next = json_object_get(body, "next");
	if (next && !json_is_null(next) && !json_is_boolean(next))
		return tly_err_set(err, TLY_EINVALID, "next", "next: must be true or false");
	if ((rc = assignment_begin(t, a, assignment, now, &asg, &p, &task, err)) != TLY_OK)
		goto out;
	/* only questions on a field (spans, boxes, ranking, compare) read the data */
	for (int i = 0; i < p.schema->nquestions && !data; i++)
		if (p.schema->questions[i].field >= 0)
			data = tly__parse_stored(task.data);
	if ((rc = tly_schema_check_answers(p.schema, data, answers, err)) != TLY_OK)
		goto rollback;
	r.task_id = task.id;
	r.assignment_id = asg.id;
	r.user_id = a->user_id;
	r.answers = tly_json_text(answers, JSON_COMPACT);
	r.duration_ms = duration;
	r.created_at = now;
	r.correct = task.is_gold ? tly__gold_correct(&task, answers) : -1;
	if ((rc = s->ops->response_insert(s, &r, &r.id, err)) != TLY_OK)
		goto rollback;
	if ((rc = s->ops->asg_update(s, asg.id, TLY_ASG_SUBMITTED, asg.expires_at, err)) != TLY_OK)
		goto rollback;
	if ((rc = s->ops->stats_bump(s, p.row.id, a->user_id, 1, task.is_gold ? 1 : 0,
				     task.is_gold ? r.correct : 0, err)) != TLY_OK)
		goto rollback;
	task.n_responses++;
	if (task.n_leases > 0)
		task.n_leases--;
	status = tly__task_status(task.status, task.n_responses, task.n_leases);
	if (!task.is_gold) {
		/* adaptive redundancy: done at min_responses once the consensus is
		 * confident enough (always, without a target), at max regardless */
		/* the task's first response is its only one: no need to read it
		 * back, only its annotator's counters (a key lookup) */
		struct tly__answer first = { answers, &st };
		if (task.n_responses == 1 &&
		    (rc = s->ops->stats_get(s, p.row.id, a->user_id, &st, err)) != TLY_OK)
			goto rollback;
		if ((rc = tly__consensus_compute(t, &p, &task, task.n_responses == 1 ? &first : NULL,
						 &confident, &consensus, err)) != TLY_OK)
			goto rollback;
		if (task.n_responses >= p.schema->max_responses ||
		    (task.n_responses >= p.schema->min_responses && confident))
			status = TLY_TASK_COMPLETED;
		tly__note_answer(t, &p);
	}
	rc = s->ops->task_update(s, &task, status, task.n_responses, task.n_leases, consensus, err);
	if (rc != TLY_OK)
		goto rollback;
	if (json_is_true(next) && (rc = submit_next(t, a, &p, now, err)) != TLY_OK)
		goto rollback;
	if ((rc = s->ops->commit(s, err)) == TLY_OK)
		rc = submit_text(t, &r, status, out);
	goto out;
rollback:
	s->ops->rollback(s);
out:
	if (rc != TLY_OK)
		t->next_claim_ok = 0;
	free(consensus);
	free(r.answers);
	json_decref(data);
	store_task_clear(&task);
	store_project_clear(&p.row);
	return rc;
}

enum tly_code tly_release(struct tly *t, const struct tly_actor *a, const char *assignment,
			  json_t **out, struct tly_err *err)
{
	struct store *s = t->store;
	struct store_asg asg;
	struct tly__project p;
	enum tly_code rc;

	*out = NULL;
	if ((rc = assignment_begin(t, a, assignment, tly_now_ms(), &asg, &p, NULL, err)) != TLY_OK)
		goto out;
	if ((rc = s->ops->asg_update(s, asg.id, TLY_ASG_RELEASED, asg.expires_at, err)) != TLY_OK ||
	    (rc = drop_lease(s, asg.task_id, err)) != TLY_OK)
		goto rollback;
	if ((rc = s->ops->commit(s, err)) == TLY_OK)
		*out = json_pack("{s:{s:o,s:s}}", "assignment", "id",
				 tly__id(t, TLY_ASSIGNMENT, asg.id), "status", "released");
	goto out;
rollback:
	s->ops->rollback(s);
out:
	store_project_clear(&p.row);
	return rc;
}

enum tly_code tly_heartbeat(struct tly *t, const struct tly_actor *a, const char *assignment,
			    json_t **out, struct tly_err *err)
{
	struct store *s = t->store;
	struct store_asg asg;
	struct store_task task = { 0 };
	struct tly__project p;
	int64_t now = tly_now_ms();
	enum tly_code rc;

	*out = NULL;
	if ((rc = assignment_begin(t, a, assignment, now, &asg, &p, &task, err)) != TLY_OK)
		goto out;
	asg.expires_at = now + (int64_t)p.schema->lease_seconds * 1000;
	if ((rc = s->ops->asg_update(s, asg.id, TLY_ASG_ACTIVE, asg.expires_at, err)) != TLY_OK)
		goto rollback;
	if ((rc = s->ops->commit(s, err)) == TLY_OK)
		*out = json_pack("{s:{s:o,s:o}}", "assignment", "id",
				 tly__id(t, TLY_ASSIGNMENT, asg.id), "expires_at",
				 tly__time(asg.expires_at));
	goto out;
rollback:
	s->ops->rollback(s);
out:
	store_task_clear(&task);
	store_project_clear(&p.row);
	return rc;
}
