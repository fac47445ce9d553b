/* report.c — a project's quality report: its counts, Krippendorff's alpha
 * per categorical question, and per annotator the gold record, the agreement
 * with the consensus and the model's accuracy estimate.
 *
 * One pass along the project's answered tasks with their responses
 * (tly__walk_answered: ranges of tasks by id, each read in one short read
 * transaction, status by status, tasks and responses together; each task
 * seen once even while it changes status). Nothing is kept
 * per task or per answer: alpha is summed unit by unit as the walk goes
 * (quality/agreement.h's stream), agreement counted per annotator. Memory is
 * the same at a thousand answers and at ten million; the walk before this
 * one built the whole answer set first, 80 bytes an answer.
 *
 * What the walk found is kept (a few projects per handle) with the state it
 * was found in: the project's answers counted by its annotators' counters,
 * its tasks by status, and its last fit. While those stay the same, so does
 * what a walk would find (answers are never changed or removed; a consensus
 * changes only by a submit or a refit), and the next report skips the walk.
 * A caller may also take a walk up to max_age old (a dashboard on a project
 * of millions of answers: a walk there takes tens of seconds of a core).
 * "as_of" is when the walk the figures come from began: they held then, and
 * with max_age 0 they still do. */
#include "tallyint.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "quality/agreement.h"
#include "quality/consensus.h"
#include "util.h"

#define MAX_AGE_S 86400   /* the oldest report a caller may take (max_age) */

/* An annotator's answers compared with the consensus. */
struct agree {
	int64_t user; /* 0: a free slot */
	long long answers, agree;
};

/* Open addressing by user id: a project can have thousands of annotators. */
struct agree_map {
	struct agree *at;
	size_t cap, n; /* cap a power of two */
};

/* One question's labels on the task in hand, in the order answered. */
struct unit {
	uint32_t *l;
	size_t n, cap;
};

/* What a walk finds. */
struct found {
	int nq;
	struct {
		double alpha;
		int ok;             /* alpha is defined */
		size_t units;
		long long values;   /* labels given, pairable or not */
	} q[TLY_MAX_QUESTIONS];
	long long responses;
	struct agree_map ag;
};

/* The project's annotators' counters, as read before the walk. */
struct stats_rows {
	struct store_stats *at;
	size_t n, cap;
};

/* The state a walk's findings hold for. */
struct report_key {
	long long answered;                 /* sum of the annotators' counters */
	int64_t counts[TLY_TASK_NSTATUS];
	uint64_t fit;                       /* hash of the last fit's record */
};

#define CACHE_SLOTS 4

struct tly__report_cache {
	struct {
		int64_t project, as_of, used;   /* used: a clock for replacing the oldest */
		struct report_key key;
		struct found f;
	} slot[CACHE_SLOTS];
	int64_t clock;
};

struct walk {
	struct tly *t;
	const struct tly_schema *sc;
	int nq;                             /* categorical questions */
	int qidx[TLY_MAX_QUESTIONS];        /* their schema indexes */
	struct tly_alpha_stream alpha[TLY_MAX_QUESTIONS];
	long long values[TLY_MAX_QUESTIONS]; /* labels given, pairable or not */
	struct unit unit[TLY_MAX_QUESTIONS];
	struct agree_map ag;
	long long responses;

	/* the task in hand */
	int is_gold;
	int k[TLY_MAX_QUESTIONS];           /* labels of each schema question on it */
	json_t *cons;                       /* its consensus (not for gold) */
};

static struct agree *agree_of(struct agree_map *m, int64_t user)
{
	size_t i;

	if (2 * (m->n + 1) > m->cap) {
		struct agree_map g = { tly_xcalloc(m->cap ? 2 * m->cap : 64, sizeof(struct agree)),
				       m->cap ? 2 * m->cap : 64, 0 };
		for (i = 0; i < m->cap; i++)
			if (m->at[i].user)
				*agree_of(&g, m->at[i].user) = m->at[i];
		free(m->at);
		*m = g;
	}
	for (i = (size_t)((uint64_t)user * 0x9E3779B97F4A7C15u >> 32) & (m->cap - 1);
	     m->at[i].user && m->at[i].user != user; i = (i + 1) & (m->cap - 1))
		;
	if (!m->at[i].user) {
		m->at[i].user = user;
		m->n++;
	}
	return &m->at[i];
}

static const struct agree *agree_find(const struct agree_map *m, int64_t user)
{
	if (!m->cap)
		return NULL;
	for (size_t i = (size_t)((uint64_t)user * 0x9E3779B97F4A7C15u >> 32) & (m->cap - 1);
	     m->at[i].user; i = (i + 1) & (m->cap - 1))
		if (m->at[i].user == user)
			return &m->at[i];
	return NULL;
}

static int task_cb(void *arg, const struct store_task *row)
{
	struct walk *w = arg;
	json_t *data;

	w->is_gold = row->is_gold;
	data = tly__labels_data(w->sc, row); /* only a compare question needs it */
	for (int i = 0; i < w->sc->nquestions; i++)
		w->k[i] = tly_question_nlabels(w->sc, &w->sc->questions[i], data);
	json_decref(data);
	w->cons = !row->is_gold && row->n_responses > 0 ? tly__parse_stored(row->consensus) : NULL;
	return 0;
}

/* The task's end: its units go to the alpha sums. */
static void task_end(struct walk *w)
{
	for (int j = 0; j < w->nq; j++) {
		if (!w->unit[j].n)
			continue;
		w->values[j] += (long long)w->unit[j].n;
		/* labels are below TLY__MAX_LABELS, the stream's k: it cannot refuse them */
		tly_alpha_stream_unit(&w->alpha[j], w->unit[j].l, w->unit[j].n);
		w->unit[j].n = 0;
	}
	json_decref(w->cons);
	w->cons = NULL;
}

static int response_cb(void *arg, const struct store_response *r)
{
	struct walk *w = arg;
	json_t *answers;

	if (!r) {
		task_end(w);
		return 0;
	}
	w->responses++;
	answers = tly__parse_stored(r->answers);
	for (int j = 0; j < w->nq; j++) {
		const struct tly_question *q = &w->sc->questions[w->qidx[j]];
		int k = w->k[w->qidx[j]], l;
		struct unit *u = &w->unit[j];

		if (!tly__scored(k) ||
		    (l = tly__answer_label(q, json_object_get(answers, q->name), k)) < 0)
			continue;
		if (u->n == u->cap) {
			u->cap = u->cap ? 2 * u->cap : 16;
			u->l = tly_xrealloc(u->l, u->cap * sizeof(*u->l));
		}
		u->l[u->n++] = (uint32_t)l;
	}
	/* agreement with the consensus: not on gold, which is scored apart */
	if (!w->is_gold) {
		struct agree *g = agree_of(&w->ag, r->user_id);
		for (int i = 0; i < w->sc->nquestions; i++) {
			const struct tly_question *q = &w->sc->questions[i];
			json_t *mine = json_object_get(answers, q->name);
			json_t *e = json_object_get(w->cons, q->name);
			if (!mine || !json_is_object(e) || w->k[i] < 2)
				continue;
			g->answers++;
			g->agree += json_equal(mine, json_object_get(e, "label"));
		}
	}
	json_decref(answers);
	return 0;
}

/* Every answered task (queued ones have no responses: a queue of ten million
 * is not read), each once (scoring.c's tly__walk_answered). */
static enum tly_code walk_answered(struct walk *w, int64_t project, struct tly_err *err)
{
	enum tly_code rc = tly__walk_answered(w->t, project, task_cb, response_cb, w, err);

	json_decref(w->cons); /* a walk that stopped inside a task */
	w->cons = NULL;
	return rc;
}

/* Walks the project and keeps what it found in *f (release with found_clear). */
static enum tly_code walk_project(struct tly *t, const struct tly__project *p, struct found *f,
				  struct tly_err *err)
{
	struct walk *w = tly_xcalloc(1, sizeof(*w));
	enum tly_code rc = TLY_OK;

	w->t = t;
	w->sc = p->schema;
	for (int i = 0; i < p->schema->nquestions; i++) {
		enum tly_question_type ty = p->schema->questions[i].type;
		if (ty != TLY_Q_CHOICE && ty != TLY_Q_RATING && ty != TLY_Q_COMPARE)
			continue;
		/* labels are indexes: a rating's are its values less its minimum,
		 * which interval alpha does not see */
		if (tly_alpha_stream_init(&w->alpha[w->nq],
					  ty == TLY_Q_RATING ? TLY_LEVEL_INTERVAL : TLY_LEVEL_NOMINAL,
					  TLY__MAX_LABELS, NULL, NULL, 0) != TLY_Q_OK) {
			rc = tly_err_set(err, TLY_EINTERNAL, "", "out of memory");
			goto out;
		}
		w->qidx[w->nq++] = i;
	}
	if ((rc = walk_answered(w, p->row.id, err)) != TLY_OK)
		goto out;
	memset(f, 0, sizeof(*f));
	f->nq = w->nq;
	for (int j = 0; j < w->nq; j++) {
		f->q[j].ok = tly_alpha_stream_finish(&w->alpha[j], &f->q[j].alpha, &f->q[j].units, NULL,
						     NULL, 0) == TLY_Q_OK && isfinite(f->q[j].alpha);
		f->q[j].values = w->values[j];
	}
	f->responses = w->responses;
	f->ag = w->ag; /* moved */
	w->ag = (struct agree_map){ 0 };
out:
	for (int j = 0; j < w->nq; j++) {
		tly_alpha_stream_release(&w->alpha[j]);
		free(w->unit[j].l);
	}
	free(w->ag.at);
	free(w);
	return rc;
}

static void found_clear(struct found *f)
{
	free(f->ag.at);
	memset(f, 0, sizeof(*f));
}

void tly__report_cache_free(struct tly *t)
{
	if (!t->reports)
		return;
	for (int i = 0; i < CACHE_SLOTS; i++)
		found_clear(&t->reports->slot[i].f);
	free(t->reports);
	t->reports = NULL;
}

/* FNV-1a: the fit record only needs telling apart from the one before */
static uint64_t text_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3u;
	return h;
}

static int stats_keep(void *arg, const struct store_stats *st)
{
	struct stats_rows *r = arg;

	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 32;
		r->at = tly_xrealloc(r->at, r->cap * sizeof(*r->at));
	}
	r->at[r->n++] = *st;
	return 0;
}

static json_t *annotator_json(struct tly *t, const struct tly__project *p,
			      const struct store_stats *st, const struct agree_map *ag)
{
	const struct agree *g = agree_find(ag, st->user_id);
	double lo, hi;
	char why[200];

	tly_wilson((unsigned)st->gold_correct, (unsigned)st->gold_seen, TLY__WILSON_Z, &lo, &hi);
	return json_pack("{s:o,s:i,s:{s:i,s:i,s:o,s:f,s:f},s:o,s:o,s:b}",
			 "user_id", tly__id(t, TLY_USER, st->user_id), "responses", st->answered,
			 "gold", "seen", st->gold_seen, "correct", st->gold_correct, "accuracy",
			 st->gold_seen ? json_real((double)st->gold_correct / st->gold_seen) : json_null(),
			 "wilson_low", lo, "wilson_high", hi,
			 "agreement_with_consensus",
			 g && g->answers ? json_real((double)g->agree / (double)g->answers) : json_null(),
			 "estimated_accuracy", st->quality >= 0 ? json_real(st->quality) : json_null(),
			 "paused", tly__paused(p, st, why, sizeof(why)));
}

static json_t *questions_json(const struct tly_schema *sc, const int *qidx, const struct found *f)
{
	json_t *questions = json_array();

	for (int j = 0; j < f->nq; j++) {
		const struct tly_question *q = &sc->questions[qidx[j]];
		enum tly_level lv = q->type == TLY_Q_RATING ? TLY_LEVEL_INTERVAL : TLY_LEVEL_NOMINAL;

		json_array_append_new(questions,
				      json_pack("{s:s,s:s,s:s,s:o,s:I,s:I}", "name", q->name, "type",
						tly_question_type_name(q->type), "alpha_level",
						tly_level_name(lv), "krippendorff_alpha",
						f->q[j].ok ? json_real(f->q[j].alpha) : json_null(),
						"units", (json_int_t)f->q[j].units, "answers",
						(json_int_t)f->q[j].values));
	}
	return questions;
}

/* The slot of the project's kept walk if it still holds (nothing it
 * depends on moved) or is no older than max_age_ms, else -1. */
static int cache_find(struct tly__report_cache *c, int64_t project, const struct report_key *key,
		      int64_t now, int64_t max_age_ms)
{
	for (int i = 0; c && i < CACHE_SLOTS; i++) {
		if (c->slot[i].project != project)
			continue;
		if (memcmp(&c->slot[i].key, key, sizeof(*key)) != 0 &&
		    (max_age_ms <= 0 || now - c->slot[i].as_of > max_age_ms))
			return -1;
		c->slot[i].used = ++c->clock;
		return i;
	}
	return -1;
}

/* Keeps f (moved) for the project, in its slot or the least recently used. */
static int cache_put(struct tly *t, int64_t project, const struct report_key *key, int64_t as_of,
		     struct found *f)
{
	struct tly__report_cache *c = t->reports;
	int v = 0;

	if (!c)
		c = t->reports = tly_xcalloc(1, sizeof(*c));
	for (int i = 0; i < CACHE_SLOTS; i++) {
		if (c->slot[i].project == project) {
			v = i;
			break;
		}
		if (c->slot[i].used < c->slot[v].used)
			v = i;
	}
	found_clear(&c->slot[v].f);
	c->slot[v].project = project;
	c->slot[v].key = *key;
	c->slot[v].as_of = as_of;
	c->slot[v].used = ++c->clock;
	c->slot[v].f = *f;
	memset(f, 0, sizeof(*f));
	return v;
}

enum tly_code tly_quality_report(struct tly *t, const struct tly_actor *a, const char *project,
				 int max_age, json_t **out, struct tly_err *err)
{
	struct store *s = t->store;
	struct tly__project p;
	struct found fresh = { 0 };
	const struct found *f;
	struct stats_rows st = { 0 };
	struct report_key key;
	json_t *annotators = NULL, *counts, *fit = json_null();
	int64_t gold_tasks = 0, now = tly_now_ms();
	int qidx[TLY_MAX_QUESTIONS], nq = 0, slot;
	char name[64], *text = NULL;
	enum tly_code rc;

	*out = NULL;
	/* the project comes first: a stranger's is 404 whatever the query */
	if ((rc = tly__project_load(t, a, project, TLY_ROLE_REVIEWER, &p, err)) != TLY_OK)
		return rc;
	if (max_age < 0 || max_age > MAX_AGE_S) {
		rc = tly_err_set(err, TLY_EBADREQ, "max_age",
				 "max_age: must be a whole number of seconds from 0 to %d", MAX_AGE_S);
		goto out;
	}
	for (int i = 0; i < p.schema->nquestions; i++) {
		enum tly_question_type ty = p.schema->questions[i].type;
		if (ty == TLY_Q_CHOICE || ty == TLY_Q_RATING || ty == TLY_Q_COMPARE)
			qidx[nq++] = i;
	}
	/* the state the figures depend on, read before any walk: a walk sees
	 * at least this, so what it finds is as new as the key says or newer */
	memset(&key, 0, sizeof(key));
	snprintf(name, sizeof(name), "fit:%lld", (long long)p.row.id);
	if ((rc = s->ops->stats_list(s, p.row.id, stats_keep, &st, err)) != TLY_OK ||
	    (rc = s->ops->project_counts(s, p.row.id, key.counts, err)) != TLY_OK ||
	    (rc = s->ops->gold_count(s, p.row.id, &gold_tasks, err)) != TLY_OK)
		goto out;
	if (s->ops->meta_get_text(s, name, &text, NULL) == TLY_OK) {
		json_decref(fit);
		fit = tly__parse_stored(text);
		key.fit = text_hash(text);
		free(text);
	}
	for (size_t i = 0; i < st.n; i++)
		key.answered += st.at[i].answered;

	slot = cache_find(t->reports, p.row.id, &key, now, (int64_t)max_age * 1000);
	if (slot < 0) {
		if ((rc = walk_project(t, &p, &fresh, err)) != TLY_OK)
			goto out;
		slot = cache_put(t, p.row.id, &key, now, &fresh);
	}
	f = &t->reports->slot[slot].f;
	annotators = json_array();
	for (size_t i = 0; i < st.n; i++)
		json_array_append_new(annotators, annotator_json(t, &p, &st.at[i], &f->ag));
	counts = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "queued", (json_int_t)key.counts[0],
			   "in_progress", (json_int_t)key.counts[1], "completed", (json_int_t)key.counts[2],
			   "canceled", (json_int_t)key.counts[3], "gold_tasks", (json_int_t)gold_tasks,
			   "responses", (json_int_t)f->responses);
	*out = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "project_id", tly__id(t, TLY_PROJECT, p.row.id),
			 "as_of", tly__time(t->reports->slot[slot].as_of), "counts", counts,
			 "questions", questions_json(p.schema, qidx, f), "annotators", annotators,
			 "last_fit", fit);
	annotators = fit = NULL;
out:
	json_decref(annotators);
	json_decref(fit);
	found_clear(&fresh);
	free(st.at);
	store_project_clear(&p.row);
	return rc;
}
