/* scoring.c — the quality engine inside the server: consensus per task as
 * responses arrive, gold scoring and pausing, the project's model refit and
 * the quality report. The statistics themselves live in quality/.
 *
 * Between two refits, a task's consensus is the one-coin posterior of its
 * answers, each weighted by its annotator's accuracy as last estimated (from
 * the refit, else from gold with a Laplace prior, else 0.7). A refit runs
 * Dawid-Skene with a Dirichlet prior (quality/aggregate.h, "dsp") over every
 * categorical answer of the project, gold anchoring it, and rewrites each
 * task's consensus with the full-model posterior. The quality report is
 * report.c. */
#include "tallyint.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quality/agreement.h"
#include "quality/aggregate.h"
#include "quality/consensus.h"
#include "quality/labels.h"
#include "jsontext.h"
#include "util.h"

#define DEFAULT_ACC 0.7
#define MAX_RESP 128      /* responses a consensus reads: max_responses is at most 100 */
#define WALK_BATCH 1000   /* tasks per range of a walk of answers */
#define WRITE_BATCH 200   /* tasks per refit transaction: short write locks */

/* ---- responses of one task ------------------------------------------------ */

struct resp_set {
	int n;
	int64_t user[MAX_RESP];
	json_t *answers[MAX_RESP];
};

static int collect(void *arg, const struct store_response *r)
{
	struct resp_set *rs = arg;

	if (rs->n == MAX_RESP)
		return 1;
	rs->user[rs->n] = r->user_id;
	rs->answers[rs->n] = tly__parse_stored(r->answers);
	rs->n++;
	return 0;
}

static void resp_clear(struct resp_set *rs)
{
	for (int i = 0; i < rs->n; i++)
		json_decref(rs->answers[i]);
	rs->n = 0;
}

/* The label index of q's answer in a, or -1. */
int tly__answer_label(const struct tly_question *q, const json_t *a, int k)
{
	int i;

	if (!a)
		return -1;
	i = tly_question_label_index(q, a);
	if (i == -2)
		i = k - 1;
	return i >= 0 && i < k ? i : -1;
}

static json_t *label_json(const struct tly_question *q, int i, int k)
{
	if (q->type == TLY_Q_COMPARE && q->allow_tie && i == k - 1)
		return json_string("tie");
	return tly_question_label(q, i);
}

/* Label i as JSON text (as label_json gives it) or, with as_key, as an
 * object key: strings as they are, numbers as decimals. */
static enum tly_code label_text(struct tly_buf *b, const struct tly_question *q, int i, int k,
				int as_key)
{
	const json_t *o;
	enum tly_code rc;

	if (q->type == TLY_Q_COMPARE && q->allow_tie && i == k - 1)
		return tly_buf_addl(b, "\"tie\"");
	if (q->type == TLY_Q_CHOICE) /* options are strings (schema.c) */
		return (o = json_array_get(q->options, (size_t)i)) && json_is_string(o) ?
			tly_buf_add_jstrn(b, json_string_value(o), json_string_length(o)) :
			TLY_EINVALID;
	if (as_key && (rc = tly_buf_addl(b, "\"")))
		return rc;
	if ((rc = tly_buf_addi(b, q->type == TLY_Q_RATING ? q->min + i : i)))
		return rc;
	return as_key ? tly_buf_addl(b, "\"") : TLY_OK;
}

static double user_accuracy(const struct store_stats *st)
{
	if (st->quality >= 0)
		return st->quality;
	if (st->gold_seen > 0)
		return (st->gold_correct + 1.0) / (st->gold_seen + 2.0);
	return DEFAULT_ACC;
}

struct answers_ctx {
	struct resp_set rs;
	double acc[MAX_RESP];
};

static int collect_with_stats(void *arg, const struct store_response *r, const struct store_stats *st)
{
	struct answers_ctx *c = arg;

	if (c->rs.n == MAX_RESP)
		return 1;
	c->acc[c->rs.n] = user_accuracy(st);
	return collect(&c->rs, r);
}

/* One question's entry: {"label","confidence","votes":{label: count} in the
 * order labels first appear,"method"[,"mean","spread" for a rating]}. */
static enum tly_code question_text(struct tly_buf *b, const struct tly_question *q, int k,
				   const uint32_t *labels, int n, int best, double conf)
{
	enum tly_code rc;

	if ((rc = tly_buf_add_jstr(b, q->name)) || (rc = tly_buf_addl(b, ":{\"label\":")) ||
	    (rc = label_text(b, q, best, k, 0)) || (rc = tly_buf_addl(b, ",\"confidence\":")) ||
	    (rc = tly_buf_addd(b, conf)) || (rc = tly_buf_addl(b, ",\"votes\":{")))
		return rc;
	for (int i = 0, first = 1; i < n; i++) {
		int seen = 0, count = 0;
		for (int j = 0; j < i && !seen; j++)
			seen = labels[j] == labels[i];
		if (seen)
			continue;
		for (int j = i; j < n; j++)
			count += labels[j] == labels[i];
		if ((!first && (rc = tly_buf_addl(b, ","))) ||
		    (rc = label_text(b, q, (int)labels[i], k, 1)) || (rc = tly_buf_addl(b, ":")) ||
		    (rc = tly_buf_addi(b, count)))
			return rc;
		first = 0;
	}
	if ((rc = tly_buf_addl(b, "},\"method\":\"one_coin\"")))
		return rc;
	if (q->type == TLY_Q_RATING) {
		/* a rating is also a number: its mean and spread (sample sd) */
		double sum = 0, sq = 0, mean, sd;
		for (int i = 0; i < n; i++)
			sum += (double)(q->min + labels[i]);
		mean = sum / n;
		for (int i = 0; i < n; i++)
			sq += ((double)(q->min + labels[i]) - mean) * ((double)(q->min + labels[i]) - mean);
		sd = n > 1 ? sqrt(sq / (n - 1)) : 0.0;
		if ((rc = tly_buf_addl(b, ",\"mean\":")) || (rc = tly_buf_addd(b, tly_confidence_round(mean))) ||
		    (rc = tly_buf_addl(b, ",\"spread\":")) || (rc = tly_buf_addd(b, tly_confidence_round(sd))))
			return rc;
	}
	return tly_buf_addl(b, "}");
}

/* A consensus entry is a few hundred bytes per question: this only stops a
 * runaway schema (thousands of long labels) from growing a row without end. */
#define CONSENSUS_CAP (1u << 20)

/* A task's data, parsed, when the schema's label counts depend on it (a
 * compare question counts the responses it compares), else NULL: parsing
 * every task's data was a third of a walk's JSON work for nothing. */
json_t *tly__labels_data(const struct tly_schema *sc, const struct store_task *task)
{
	for (int i = 0; i < sc->nquestions; i++)
		if (sc->questions[i].type == TLY_Q_COMPARE)
			return tly__parse_stored(task->data);
	return NULL;
}

enum tly_code tly__consensus_compute(struct tly *t, const struct tly__project *p,
				     const struct store_task *task, const struct tly__answer *only,
				     int *confident, char **text, struct tly_err *err)
{
	struct store *s = t->store;
	const struct tly_schema *sc = p->schema;
	struct answers_ctx ac;
	struct resp_set *rs = &ac.rs;
	struct tly_buf b;
	double post[TLY__MAX_LABELS];
	uint32_t labels[MAX_RESP];
	json_t *data = NULL;
	int all = 1, ncat = 0;
	enum tly_code rc = TLY_OK;

	*confident = 1;
	*text = NULL;
	tly_buf_init(&b, CONSENSUS_CAP);
	rs->n = 0;
	if (only) {
		/* the task's first response, just written: no need to read it back */
		rs->user[0] = only->stats->user_id;
		rs->answers[0] = json_incref((json_t *)only->answers);
		ac.acc[0] = user_accuracy(only->stats);
		rs->n = 1;
	} else if ((rc = s->ops->response_list_stats(s, p->row.id, task->id, collect_with_stats, &ac,
						     err))) {
		goto out;
	}
	data = tly__labels_data(sc, task);
	for (int qi = 0; qi < sc->nquestions; qi++) {
		const struct tly_question *q = &sc->questions[qi];
		int k = tly_question_nlabels(sc, q, data), n = 0, best;
		double qacc[MAX_RESP], conf;
		size_t mark = b.len;

		if (!tly__scored(k))
			continue;
		for (int i = 0; i < rs->n; i++) {
			int l = tly__answer_label(q, json_object_get(rs->answers[i], q->name), k);
			if (l < 0)
				continue;
			labels[n] = (uint32_t)l;
			qacc[n++] = ac.acc[i];
		}
		if (n == 0)
			continue;
		best = (int)tly_onecoin_posterior((uint32_t)k, (size_t)n, labels, qacc, NULL, post);
		conf = tly_confidence_round(post[best]);
		if ((rc = ncat ? tly_buf_addl(&b, ",") : tly_buf_addl(&b, "{")) ||
		    (rc = question_text(&b, q, k, labels, n, best, conf))) {
			/* a label JSON cannot hold, or past the cap: no entry, as before */
			tly_buf_cut(&b, mark);
			rc = TLY_OK;
			continue;
		}
		ncat++;
		if (conf < sc->quality.confidence_target)
			all = 0;
	}
	*confident = ncat ? all : 1;
	if (ncat && tly_buf_addl(&b, "}") == TLY_OK) {
		*text = b.p;
		tly_buf_init(&b, CONSENSUS_CAP);
	}
out:
	tly_buf_free(&b);
	json_decref(data);
	resp_clear(rs);
	return rc;
}

int tly__gold_correct(const struct store_task *task, const json_t *answers)
{
	json_t *gold = tly__parse_stored(task->gold);
	const char *key;
	json_t *v;
	int ok = json_is_object(gold);

	json_object_foreach(gold, key, v)
		if (!json_equal(v, json_object_get(answers, key)))
			ok = 0;
	json_decref(gold);
	return ok;
}

int tly__paused(const struct tly__project *p, const struct store_stats *st, char *why, size_t n)
{
	double lo, hi, min = p->schema->quality.gold_min_accuracy;

	if (min <= 0 || st->gold_seen == 0)
		return 0;
	tly_wilson((unsigned)st->gold_correct, (unsigned)st->gold_seen, TLY__WILSON_Z, &lo, &hi);
	if (hi >= min)
		return 0;
	snprintf(why, n, "paused: gold accuracy %d/%d (95%% upper bound %.3f) is below %.3f",
		 st->gold_correct, st->gold_seen, hi, min);
	return 1;
}

/* Refits are spaced by the project's size: after refit_every new answers,
 * or a quarter of the answers it had, whichever is more. The answers it had
 * come from its annotators' counters, read the first time a refit looks due
 * (not at each answer: two projects sharing a slot would read them at every
 * submit); before that they are the ones this handle has seen. Without
 * them, a server started on a project of ten million answers refitted it
 * (minutes of a core, and all its answers in memory) every 500 answers. */
static void fit_space(struct tly *t, int slot)
{
	long long every = t->fits[slot].base;

	if (every < t->fits[slot].total / 4)
		every = t->fits[slot].total / 4;
	t->fits[slot].every = every;
}

void tly__note_answer(struct tly *t, const struct tly__project *p)
{
	int slot = (int)((uint64_t)p->row.id % TLY__FIT_SLOTS);

	/* one answer per task gives a model nothing to learn from */
	if (p->schema->max_responses < 2)
		return;

	if (t->fits[slot].project_id != p->row.id) {
		t->fits[slot].project_id = p->row.id;
		t->fits[slot].count = 0;
		t->fits[slot].total = 0;
		t->fits[slot].seeded = 0;
	}
	t->fits[slot].count++;
	t->fits[slot].total++;
	t->fits[slot].base = p->schema->quality.refit_every;
	fit_space(t, slot);
	if (t->fits[slot].count >= t->fits[slot].every)
		t->fit_due = 1;
}

static int sum_answered(void *arg, const struct store_stats *st)
{
	*(long long *)arg += st->answered;
	return 0;
}

int tly_refit_due(struct tly *t, char project_out[32])
{
	/* asked after every request: answer at once when nothing is due */
	if (!t->fit_due)
		return 0;
	t->fit_due = 0;
	for (int i = 0; i < TLY__FIT_SLOTS; i++) {
		if (!t->fits[i].project_id || t->fits[i].count < t->fits[i].every)
			continue;
		if (!t->fits[i].seeded) {
			struct tly_err err;
			long long n = 0;
			t->fits[i].seeded = 1;
			/* the counters include the answers this handle counted */
			if (t->store->ops->stats_list(t->store, t->fits[i].project_id, sum_answered, &n,
						      &err) == TLY_OK && n > t->fits[i].total) {
				t->fits[i].total = n;
				fit_space(t, i);
				if (t->fits[i].count < t->fits[i].every)
					continue;
			}
		}
		t->fits[i].count = 0;
		t->fit_due = 1; /* the caller asks again until nothing is left */
		tly_id_encode(&t->ids, TLY_PROJECT, t->fits[i].project_id, project_out);
		return 1;
	}
	return 0;
}

/* ---- walking a project's answers -------------------------------------------- */

/* Answer sets of the project's categorical questions, one per question;
 * questions are task row ids, workers user row ids, labels label indexes. */
struct model {
	int nq;
	int qidx[TLY_MAX_QUESTIONS];           /* schema index of each categorical question */
	struct tly_answers a[TLY_MAX_QUESTIONS];
	/* gold: (task, label) pairs per question, resolved after finish */
	int64_t *gold_task[TLY_MAX_QUESTIONS];
	int *gold_label[TLY_MAX_QUESTIONS];
	size_t ngold[TLY_MAX_QUESTIONS], capgold[TLY_MAX_QUESTIONS];
	/* each task's n_responses as the model read it, by question id */
	int *nresp[TLY_MAX_QUESTIONS];
	size_t capnresp[TLY_MAX_QUESTIONS];
	long long answers;
};

static void model_release(struct model *m)
{
	for (int i = 0; i < m->nq; i++) {
		tly_answers_release(&m->a[i]);
		free(m->gold_task[i]);
		free(m->gold_label[i]);
		free(m->nresp[i]);
	}
}

static enum tly_code q_fail(struct tly_err *err, const char *what, const char *why)
{
	return tly_err_set(err, TLY_EINTERNAL, "", "%s: %s", what, why);
}

/* The task a model walk has in hand: what its answers are read against. */
struct model_task {
	int64_t id;
	int n_responses;
	char qs[24];                     /* its id, the model's question name */
	json_t *gold;                    /* its known answers (gold tasks) */
	int k[TLY_MAX_QUESTIONS];        /* labels of each categorical question on it */
	uint32_t nq0[TLY_MAX_QUESTIONS]; /* the questions each answer set had before it */
};

static void model_task_begin(struct model *m, const struct tly_schema *sc,
			     const struct store_task *task, struct model_task *mt)
{
	json_t *data = tly__labels_data(sc, task);

	mt->id = task->id;
	mt->n_responses = task->n_responses;
	snprintf(mt->qs, sizeof(mt->qs), "%lld", (long long)task->id);
	mt->gold = task->is_gold ? tly__parse_stored(task->gold) : NULL;
	for (int j = 0; j < m->nq; j++) {
		mt->k[j] = tly_question_nlabels(sc, &sc->questions[m->qidx[j]], data);
		mt->nq0[j] = m->a[j].questions.n;
	}
	json_decref(data);
}

/* One response of the task in hand: each of its categorical answers. */
static enum tly_code model_task_answer(struct model *m, const struct tly_schema *sc,
				       const struct model_task *mt, int64_t user,
				       const json_t *answers, struct tly_err *err)
{
	char ws[24], ls[16], why[160];

	snprintf(ws, sizeof(ws), "%lld", (long long)user);
	for (int j = 0; j < m->nq; j++) {
		const struct tly_question *q = &sc->questions[m->qidx[j]];
		int k = mt->k[j], l;
		if (!tly__scored(k) ||
		    (l = tly__answer_label(q, json_object_get(answers, q->name), k)) < 0)
			continue;
		snprintf(ls, sizeof(ls), "%d", l);
		if (tly_answers_add(&m->a[j], mt->qs, strlen(mt->qs), ws, strlen(ws), ls, strlen(ls), 0,
				    why, sizeof(why)) != TLY_Q_OK)
			return q_fail(err, "refit", why);
		m->answers++;
	}
	return TLY_OK;
}

/* The task's end: its response count as read, its gold labels. */
static void model_task_end(struct model *m, const struct tly_schema *sc, struct model_task *mt)
{
	char ls[16];

	for (int j = 0; j < m->nq; j++) {
		const struct tly_question *q = &sc->questions[m->qidx[j]];
		int k = mt->k[j];
		if (!tly__scored(k))
			continue;
		/* question ids come in order: the task's, if it has one, is new */
		if (m->a[j].questions.n > mt->nq0[j]) {
			if (mt->nq0[j] >= m->capnresp[j]) {
				m->capnresp[j] = m->capnresp[j] ? 2 * m->capnresp[j] : 1024;
				m->nresp[j] = tly_xrealloc(m->nresp[j], m->capnresp[j] * sizeof(int));
			}
			m->nresp[j][mt->nq0[j]] = mt->n_responses;
		}
		int gl = mt->gold ? tly__answer_label(q, json_object_get(mt->gold, q->name), k) : -1;
		if (gl >= 0) {
			snprintf(ls, sizeof(ls), "%d", gl);
			tly_answers_add_label(&m->a[j], ls, strlen(ls), NULL, 0);
			if (m->ngold[j] == m->capgold[j]) {
				m->capgold[j] = m->capgold[j] ? 2 * m->capgold[j] : 64;
				m->gold_task[j] = tly_xrealloc(m->gold_task[j], m->capgold[j] * sizeof(int64_t));
				m->gold_label[j] = tly_xrealloc(m->gold_label[j], m->capgold[j] * sizeof(int));
			}
			m->gold_task[j][m->ngold[j]] = mt->id;
			m->gold_label[j][m->ngold[j]++] = gl;
		}
	}
	json_decref(mt->gold);
	mt->gold = NULL;
}

typedef enum tly_code (*walk_fn)(void *arg, struct store_task *task, struct tly_err *err);

struct walk_batch {
	struct store_task *rows;
	int n;
};

static int keep_row(void *arg, const struct store_task *row)
{
	struct walk_batch *b = arg;
	struct store_task *c = &b->rows[b->n++];

	*c = *row;
	c->unique_id = NULL;
	c->metadata = NULL;
	c->data = tly_xstrdup(row->data);
	c->gold = row->gold ? tly_xstrdup(row->gold) : NULL;
	c->consensus = row->consensus ? tly_xstrdup(row->consensus) : NULL;
	return 0;
}

static const int answered_statuses[] = { TLY_TASK_IN_PROGRESS, TLY_TASK_COMPLETED,
					 TLY_TASK_CANCELED };
#define NANSWERED (sizeof(answered_statuses) / sizeof(*answered_statuses))

/* The walks' ranges: (lo, *hi] holds the n tasks of the project after lo,
 * and *hi is INT64_MAX for the last range (fewer than n left). */
static enum tly_code range_end(struct store *s, int64_t project, int64_t lo, int n, int64_t *hi,
			       struct tly_err *err)
{
	enum tly_code rc = s->ops->task_nth(s, project, lo, n, hi, err);

	if (rc == TLY_OK && !*hi)
		*hi = INT64_MAX;
	return rc;
}

/* Calls fn for every answered task of the project (queued ones have none:
 * the queue, ten million tasks maybe, is not read), without its responses,
 * each task once: by ranges of WRITE_BATCH tasks by id (as
 * tly__walk_answered, below), each range read and handled in one short
 * write transaction. Rows read before it could be changed by the server's
 * own commits, and writing their counters back would undo those. */
static enum tly_code walk_write(struct tly *t, int64_t project, walk_fn fn, void *arg,
				struct tly_err *err)
{
	struct store *s = t->store;
	struct walk_batch b = { tly_xcalloc(WRITE_BATCH, sizeof(struct store_task)), 0 };
	int64_t lo = 0, hi = 0;
	enum tly_code rc = TLY_OK;

	while (rc == TLY_OK && hi != INT64_MAX) {
		if (t->cancel && atomic_load(t->cancel)) {
			rc = tly_err_set(err, TLY_EINTERNAL, "", "canceled");
			break;
		}
		if ((rc = s->ops->begin(s, err)) != TLY_OK)
			break;
		rc = range_end(s, project, lo, WRITE_BATCH, &hi, err);
		for (size_t si = 0; si < NANSWERED && rc == TLY_OK; si++) {
			b.n = 0;
			rc = s->ops->task_list(s, project, answered_statuses[si], lo, hi, WRITE_BATCH,
					       keep_row, &b, err);
			for (int i = 0; i < b.n && rc == TLY_OK; i++)
				rc = fn(arg, &b.rows[i], err);
			for (int i = 0; i < b.n; i++)
				store_task_clear(&b.rows[i]);
		}
		if (rc == TLY_OK)
			rc = s->ops->commit(s, err);
		else
			s->ops->rollback(s);
		lo = hi;
	}
	free(b.rows);
	return rc;
}

/* The answered walk (the model's, the report's): the project's tasks are
 * cut into ranges of WALK_BATCH by id (task_nth reads only an index), and
 * each range is read in one read transaction, status by status, with its
 * tasks' responses (task_list_responses: a walk down each table, not a
 * lookup per task). So every task is seen once, as its range's snapshot
 * has it: read status by status across the whole project, a task that
 * completed meanwhile came once as in progress and again as completed
 * (a report counted its answers twice, a refit failed on them). Between
 * ranges the WAL can be checkpointed. */
struct answered_walk {
	const atomic_int *cancel;
	store_task_cb task_cb;
	store_response_cb resp_cb;
	void *arg;
	int stopped, canceled;
};

static int aw_task(void *arg, const struct store_task *row)
{
	struct answered_walk *w = arg;

	/* a server stopping: its walks end at the next task */
	if (w->cancel && atomic_load(w->cancel))
		return w->stopped = w->canceled = 1;
	return w->stopped = w->task_cb(w->arg, row) != 0;
}

static int aw_response(void *arg, const struct store_response *r)
{
	struct answered_walk *w = arg;

	return w->stopped = w->resp_cb(w->arg, r) != 0;
}

enum tly_code tly__walk_answered(struct tly *t, int64_t project, store_task_cb task_cb,
				 store_response_cb resp_cb, void *arg, struct tly_err *err)
{
	struct store *s = t->store;
	struct answered_walk w = { t->cancel, task_cb, resp_cb, arg, 0, 0 };
	int64_t lo = 0, hi;
	enum tly_code rc;

	for (;;) {
		if ((rc = s->ops->begin_read(s, err)) != TLY_OK)
			return rc;
		rc = range_end(s, project, lo, WALK_BATCH, &hi, err);
		for (size_t si = 0; si < NANSWERED && rc == TLY_OK && !w.stopped; si++)
			rc = s->ops->task_list_responses(s, project, answered_statuses[si], lo, hi,
							 WALK_BATCH, aw_task, aw_response, &w, err);
		s->ops->rollback(s); /* it only read */
		if (rc == TLY_OK && w.canceled)
			return tly_err_set(err, TLY_EINTERNAL, "", "canceled");
		if (rc != TLY_OK || w.stopped || hi == INT64_MAX)
			return rc;
		lo = hi;
	}
}

/* The model's walk: every answer of every answered task, as it is read
 * (no task's answers held: a gold task may have thousands). */
struct model_walk {
	struct model *m;
	const struct tly_schema *sc;
	struct tly_err *err;
	struct model_task mt;
	enum tly_code rc;
};

static int model_walk_task(void *arg, const struct store_task *row)
{
	struct model_walk *w = arg;

	model_task_begin(w->m, w->sc, row, &w->mt);
	return 0;
}

static int model_walk_response(void *arg, const struct store_response *r)
{
	struct model_walk *w = arg;
	json_t *answers;

	if (!r) {
		model_task_end(w->m, w->sc, &w->mt);
		return 0;
	}
	answers = tly__parse_stored(r->answers);
	w->rc = model_task_answer(w->m, w->sc, &w->mt, r->user_id, answers, w->err);
	json_decref(answers);
	return w->rc != TLY_OK;
}

/* The model of a project's answered tasks. */
static enum tly_code model_build(struct tly *t, const struct tly__project *p, struct model *m,
				 struct tly_err *err)
{
	struct model_walk w = { .m = m, .sc = p->schema, .err = err, .rc = TLY_OK };
	char why[160];
	enum tly_code rc;

	memset(m, 0, sizeof(*m));
	for (int i = 0; i < p->schema->nquestions; i++) {
		enum tly_question_type ty = p->schema->questions[i].type;
		if (ty == TLY_Q_CHOICE || ty == TLY_Q_RATING || ty == TLY_Q_COMPARE) {
			m->qidx[m->nq] = i;
			tly_answers_init(&m->a[m->nq]);
			m->nq++;
		}
	}
	rc = tly__walk_answered(t, p->row.id, model_walk_task, model_walk_response, &w, err);
	if (rc == TLY_OK && w.rc != TLY_OK)
		rc = w.rc;
	json_decref(w.mt.gold); /* a walk stopped inside a task */
	for (int j = 0; j < m->nq && rc == TLY_OK; j++)
		if (tly_answers_finish(&m->a[j], NULL, why, sizeof(why)) != TLY_Q_OK)
			rc = q_fail(err, "refit", why);
	return rc;
}

/* ---- refit ---------------------------------------------------------------------- */

struct fit {
	struct model m;
	struct tly_agg_result res[TLY_MAX_QUESTIONS];
	const struct tly__project *p;
	struct tly *t;
	long long completed, updated, skipped;
};

static int label_of(const struct tly_answers *a, uint32_t id)
{
	size_t n;
	const char *s = tly_answers_label_name(a, id, &n);
	return s ? atoi(s) : -1;
}

static enum tly_code apply_cb(void *arg, struct store_task *task, struct tly_err *err)
{
	struct fit *f = arg;
	struct store *s = f->t->store;
	const struct tly_schema *sc = f->p->schema;
	json_t *cons = task->consensus ? tly__parse_stored(task->consensus) : json_object();
	json_t *data = tly__labels_data(sc, task);
	char qs[24], *text;
	int all = 1, ncat = 0;
	double conf;
	enum tly_code rc = TLY_OK;

	if (!json_is_object(cons)) {
		json_decref(cons);
		cons = json_object();
	}
	snprintf(qs, sizeof(qs), "%lld", (long long)task->id);
	/* a task answered again since the model read it keeps the consensus its
	 * last answer gave (from all its answers) until the next refit: the
	 * model's posterior would be of fewer */
	for (int j = 0; j < f->m.nq; j++) {
		uint32_t qid = tly_answers_question_id(&f->m.a[j], qs, strlen(qs));
		if (qid != UINT32_MAX && f->m.nresp[j][qid] != task->n_responses) {
			f->skipped++;
			goto out;
		}
	}
	for (int j = 0; j < f->m.nq; j++) {
		const struct tly_question *q = &sc->questions[f->m.qidx[j]];
		uint32_t qid = tly_answers_question_id(&f->m.a[j], qs, strlen(qs));
		json_t *e = json_object_get(cons, q->name);
		int k = tly_question_nlabels(sc, q, data), l;
		if (qid == UINT32_MAX || !json_is_object(e))
			continue;
		l = label_of(&f->m.a[j], f->res[j].label[qid]);
		if (l < 0 || l >= k)
			continue;
		json_object_set_new(e, "label", label_json(q, l, k));
		conf = tly_confidence_round(f->res[j].confidence[qid]);
		json_object_set_new(e, "confidence", json_real(conf));
		json_object_set_new(e, "method", json_string("dawid_skene"));
		ncat++;
		if (conf < sc->quality.confidence_target)
			all = 0;
	}
	if (ncat && !task->is_gold) {
		text = tly_json_text(cons, JSON_COMPACT);
		rc = s->ops->task_set_consensus(s, task->id, text, err);
		free(text);
		f->updated++;
		if (rc == TLY_OK && all && sc->quality.confidence_target > 0 &&
		    task->status < TLY_TASK_COMPLETED && task->n_responses >= sc->min_responses) {
			rc = s->ops->task_update(s, task, TLY_TASK_COMPLETED, task->n_responses,
						 task->n_leases, NULL, err);
			f->completed++;
		}
	}
out:
	json_decref(data);
	json_decref(cons);
	return rc;
}

struct wq { int64_t user; double sum, w; };

enum tly_code tly_quality_refit(struct tly *t, const struct tly_actor *a, const char *project,
				json_t **out, struct tly_err *err)
{
	struct store *s = t->store;
	struct tly__project p;
	struct fit *f = tly_xcalloc(1, sizeof(*f));
	struct wq *wq = NULL;
	size_t nwq = 0;
	json_t *questions = json_array();
	char why[200], key[64];
	int64_t now = tly_now_ms();
	enum tly_code rc;

	*out = NULL;
	if ((rc = tly__project_load(t, a, project, TLY_ROLE_MANAGER, &p, err)) != TLY_OK)
		goto done;
	f->p = &p;
	f->t = t;
	if ((rc = model_build(t, &p, &f->m, err)) != TLY_OK)
		goto out;
	for (int j = 0; j < f->m.nq; j++) {
		struct tly_answers *A = &f->m.a[j];
		int32_t *gold = NULL;
		if (A->n_questions == 0)
			continue;
		if (f->m.ngold[j]) {
			gold = tly_xmalloc(A->n_questions * sizeof(int32_t));
			for (uint32_t i = 0; i < A->n_questions; i++)
				gold[i] = TLY_AGG_NO_GOLD;
			for (size_t g = 0; g < f->m.ngold[j]; g++) {
				char qs[24], ls[16];
				snprintf(qs, sizeof(qs), "%lld", (long long)f->m.gold_task[j][g]);
				snprintf(ls, sizeof(ls), "%d", f->m.gold_label[j][g]);
				uint32_t qid = tly_answers_question_id(A, qs, strlen(qs));
				uint32_t lid = tly_answers_label_id(A, ls, strlen(ls));
				if (qid != UINT32_MAX && lid != UINT32_MAX)
					gold[qid] = (int32_t)lid;
			}
		}
		int qrc = tly_aggregate(A, TLY_AGG_DSP, gold, NULL, &f->res[j], why, sizeof(why));
		free(gold);
		if (qrc != TLY_Q_OK) {
			rc = q_fail(err, "refit", why);
			goto out;
		}
		json_array_append_new(questions,
				      json_pack("{s:s,s:I,s:I,s:i}", "name",
						p.schema->questions[f->m.qidx[j]].name, "answers",
						(json_int_t)A->q_off[A->n_questions], "tasks",
						(json_int_t)A->n_questions, "iterations",
						(int)f->res[j].iterations));
		/* accumulate each worker's accuracy, weighted by answers */
		for (uint32_t w = 0; w < A->n_workers; w++) {
			size_t n;
			const char *ws = tly_answers_worker_name(A, w, &n);
			int64_t uid = ws ? strtoll(ws, NULL, 10) : 0;
			size_t cnt = 0, i;
			for (uint32_t x = 0; x < A->q_off[A->n_questions]; x++)
				cnt += A->a_worker[x] == w;
			for (i = 0; i < nwq && wq[i].user != uid; i++)
				;
			if (i == nwq) {
				wq = tly_xrealloc(wq, (nwq + 1) * sizeof(*wq));
				wq[nwq++] = (struct wq){ uid, 0, 0 };
			}
			wq[i].sum += f->res[j].worker_quality[w] * (double)cnt;
			wq[i].w += (double)cnt;
		}
	}
	if ((rc = walk_write(t, p.row.id, apply_cb, f, err)) != TLY_OK)
		goto out;
	if ((rc = s->ops->begin(s, err)) != TLY_OK)
		goto out;
	for (size_t i = 0; i < nwq && rc == TLY_OK; i++) {
		struct store_stats st;
		if ((rc = s->ops->stats_get(s, p.row.id, wq[i].user, &st, err)) != TLY_OK)
			break;
		st.quality = wq[i].w > 0 ? wq[i].sum / wq[i].w : -1;
		rc = s->ops->stats_put(s, &st, err);
	}
	json_t *summary = json_pack("{s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:o}", "method", "dawid_skene",
				    "fitted_at", tly__time(now), "answers", (json_int_t)f->m.answers,
				    "annotators", (json_int_t)nwq, "tasks_updated",
				    (json_int_t)f->updated, "tasks_completed", (json_int_t)f->completed,
				    "tasks_answered_meanwhile", (json_int_t)f->skipped,
				    "questions", json_incref(questions));
	char *text = tly_json_text(summary, JSON_COMPACT);
	snprintf(key, sizeof(key), "fit:%lld", (long long)p.row.id);
	if (rc == TLY_OK)
		rc = s->ops->meta_set(s, key, text, (int)strlen(text), err);
	free(text);
	if (rc == TLY_OK)
		rc = s->ops->commit(s, err);
	else
		s->ops->rollback(s);
	if (rc == TLY_OK)
		*out = summary;
	else
		json_decref(summary);
out:
	for (int j = 0; j < f->m.nq; j++)
		tly_agg_result_release(&f->res[j]);
	model_release(&f->m);
	store_project_clear(&p.row);
done:
	json_decref(questions);
	free(wq);
	free(f);
	return rc;
}
