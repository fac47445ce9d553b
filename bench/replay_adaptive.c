/*
 * replay_adaptive.c - replays a crowd answer set as a stream under the
 * server's adaptive-redundancy rule and measures what it saves and costs.
 *
 * usage: replay_adaptive ANSWER.csv TRUTH.csv [--refit N] [--order shuffle|file]
 *                        [--seed S]
 *
 * The rule (docs/QUALITY.md, "Adaptive redundancy"): when an answer arrives
 * for a task that is still open, it is accepted and the task's posterior is
 * computed with tly_onecoin_posterior from the task's accepted answers, each
 * weighted by its worker's accuracy from the last DSP fit (worker_quality),
 * or 0.7 for a worker not in that fit, with the fit's class prior (uniform
 * before the first fit). The task completes when it has >= min_responses
 * accepted answers and the top posterior >= the confidence target (both to
 * 12 decimals, tly_confidence_round, as the server compares them). Answers
 * that arrive for a completed task are not used: those are the labels saved.
 * max_responses = every answer the file has for the task. Every N accepted
 * answers (--refit, default 500) DSP is refitted on all accepted answers; at
 * the end DSP is fitted once more on all accepted answers and its labels are
 * the ones scored against TRUTH.csv.
 *
 * Order of arrival: --order shuffle (default) is a Fisher-Yates shuffle of
 * the file's rows by a xorshift64 PRNG seeded with --seed (default 1); --order
 * file keeps the rows in file order (the crowd files are grouped by worker or
 * by question, so file order is a stream of worker sessions or of tasks).
 *
 * Baselines: DSP and MV on every answer (fixed overlap, all labels used), and
 * DSP on the first k answers of every task in the same arrival order (fixed
 * overlap k, k = 1..5, until all answers are used) to compare with the
 * adaptive rule at a similar budget.
 *
 * Output: a Markdown table on stdout, deterministic (no timings). Columns of
 * the adaptive rows: final DSP accuracy and count right, answers accepted,
 * share of the file's answers not used, tasks closed by the rule (the rest ran
 * out of answers), accuracy of the label at closing among the tasks closed by
 * the rule (what the target claims: it should be >= the target if the
 * posterior were calibrated), accuracy of the label at closing or at the end
 * of the stream over all tasks, number of refits.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quality/aggregate.h"
#include "quality/consensus.h"
#include "quality/csvread.h"
#include "quality/labels.h"

#define PRIOR_ACC 0.7

static void die(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "replay_adaptive: ");
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	exit(1);
}

/* Reads question,worker,answer into a finished answer set. */
static void load_answers(const char *path, struct tly_answers *a)
{
	struct tly_csv csv;
	char err[256];
	FILE *fp = fopen(path, "r");
	int r, first = 1;

	tly_answers_init(a);
	if (fp == NULL)
		die("%s: %s", path, strerror(errno));
	if (tly_csv_init(&csv, fp, 0, 0) != TLY_Q_OK)
		die("%s: %s", path, "out of memory");
	while ((r = tly_csv_read(&csv, err, sizeof(err))) == 1) {
		size_t l0, l1, l2;
		const char *q, *w, *l;

		if (csv.nfields != 3)
			die("%s: %s", path, "expected 3 fields (question,worker,answer)");
		if (first) {
			first = 0;
			continue;
		}
		q = tly_csv_field(&csv, 0, &l0);
		w = tly_csv_field(&csv, 1, &l1);
		l = tly_csv_field(&csv, 2, &l2);
		if (tly_answers_add(a, q, l0, w, l1, l, l2, (uint32_t)csv.line, err, sizeof(err)))
			die("%s: %s", path, err);
	}
	if (r < 0)
		die("%s: %s", path, err);
	if (tly_answers_finish(a, NULL, err, sizeof(err)) != TLY_Q_OK)
		die("%s: %s", path, err);
	tly_csv_release(&csv);
	fclose(fp);
}

/* Reads question,truth: truth[q] = label id of the full set, UINT32_MAX when
 * the question has no truth, UINT32_MAX - 1 when the truth label was never
 * given (always wrong). Returns the number of scored questions. */
static uint32_t load_truth(const char *path, const struct tly_answers *a, uint32_t *truth)
{
	struct tly_csv csv;
	char err[256];
	FILE *fp = fopen(path, "r");
	int r, first = 1;
	uint32_t n = 0;

	for (uint32_t q = 0; q < a->n_questions; q++)
		truth[q] = UINT32_MAX;
	if (fp == NULL)
		die("%s: %s", path, strerror(errno));
	if (tly_csv_init(&csv, fp, 0, 0) != TLY_Q_OK)
		die("%s: %s", path, "out of memory");
	while ((r = tly_csv_read(&csv, err, sizeof(err))) == 1) {
		size_t l0, l1;
		const char *qs, *ls;
		uint32_t q, l;

		if (first) {
			first = 0;
			continue;
		}
		if (csv.nfields < 2)
			die("%s: %s", path, "expected question,truth");
		qs = tly_csv_field(&csv, 0, &l0);
		ls = tly_csv_field(&csv, 1, &l1);
		q = tly_answers_question_id(a, qs, l0);
		if (q == UINT32_MAX)
			continue;       /* nobody answered it: not scored */
		l = tly_answers_label_id(a, ls, l1);
		if (truth[q] == UINT32_MAX)
			n++;
		truth[q] = l == UINT32_MAX ? UINT32_MAX - 1 : l;
	}
	if (r < 0)
		die("%s: %s", path, err);
	tly_csv_release(&csv);
	fclose(fp);
	return n;
}

static uint64_t rng_state;

static uint64_t xorshift(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

static const struct tly_answers *sort_set;

static int cmp_line(const void *x, const void *y)
{
	uint32_t a = sort_set->a_line[*(const uint32_t *)x];
	uint32_t b = sort_set->a_line[*(const uint32_t *)y];

	return (a > b) - (a < b);
}

/* The arrival order: indices into the CSR arrays of a. */
static uint32_t *make_stream(const struct tly_answers *a, int shuffle, uint64_t seed)
{
	uint32_t *s = malloc((a->n_answers ? a->n_answers : 1) * sizeof(*s));

	if (s == NULL)
		die("%s%s", "out of memory", "");
	for (size_t i = 0; i < a->n_answers; i++)
		s[i] = (uint32_t)i;
	sort_set = a;
	qsort(s, a->n_answers, sizeof(*s), cmp_line);   /* file order */
	if (shuffle) {
		rng_state = seed ? seed * 0x9e3779b97f4a7c15ull : 0x9e3779b97f4a7c15ull;
		for (size_t i = a->n_answers; i > 1; i--) {
			size_t j = (size_t)(xorshift() % i);
			uint32_t t = s[i - 1];

			s[i - 1] = s[j];
			s[j] = t;
		}
	}
	return s;
}

/* Fits DSP on the subset idx[0..2n) ((question, CSR position) pairs) of the answers of the full set `a`.
 * Fills, indexed by ids of the full set: label_out[q] (UINT32_MAX for a
 * question without answers in the subset), acc_out[w] for every worker of the
 * subset, prior_out[k]. Any output may be NULL. */
static void fit_subset(const struct tly_answers *a, const uint32_t *idx, size_t n,
		       uint32_t *label_out, double *acc_out, double *prior_out)
{
	struct tly_answers s;
	struct tly_agg_result res;
	char err[256];

	tly_answers_init(&s);
	for (uint32_t k = 0; k < a->n_labels; k++) {
		size_t len;
		const char *name = tly_answers_label_name(a, k, &len);

		if (tly_answers_add_label(&s, name, len, err, sizeof(err)) != TLY_Q_OK)
			die("subset: %s%s", err, "");
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t p = idx[2 * i + 1], q = idx[2 * i];
		size_t ql, wl, ll;
		const char *qs = tly_answers_question_name(a, q, &ql);
		const char *ws = tly_answers_worker_name(a, a->a_worker[p], &wl);
		const char *ls = tly_answers_label_name(a, a->a_label[p], &ll);

		if (tly_answers_add(&s, qs, ql, ws, wl, ls, ll, 0, err, sizeof(err)) != TLY_Q_OK)
			die("subset: %s%s", err, "");
	}
	if (tly_answers_finish(&s, NULL, err, sizeof(err)) != TLY_Q_OK)
		die("subset: %s%s", err, "");
	if (s.n_labels != a->n_labels)
		die("%s%s", "subset label set differs", "");
	for (uint32_t k = 0; k < a->n_labels; k++)
		if (strcmp(tly_answers_label_name(&s, k, NULL), tly_answers_label_name(a, k, NULL)))
			die("%s%s", "subset label order differs", "");
	if (tly_aggregate(&s, TLY_AGG_DSP, NULL, NULL, &res, err, sizeof(err)) != TLY_Q_OK)
		die("dsp: %s%s", err, "");
	if (label_out != NULL) {
		for (uint32_t q = 0; q < a->n_questions; q++)
			label_out[q] = UINT32_MAX;
		for (uint32_t sq = 0; sq < s.n_questions; sq++) {
			size_t len;
			const char *name = tly_answers_question_name(&s, sq, &len);

			label_out[tly_answers_question_id(a, name, len)] = res.label[sq];
		}
	}
	if (acc_out != NULL)
		for (uint32_t sw = 0; sw < s.n_workers; sw++) {
			size_t len;
			const char *name = tly_answers_worker_name(&s, sw, &len);

			acc_out[tly_answers_worker_id(a, name, len)] = res.worker_quality[sw];
		}
	if (prior_out != NULL)
		memcpy(prior_out, res.class_prior, a->n_labels * sizeof(double));
	tly_agg_result_release(&res);
	tly_answers_release(&s);
}

static uint32_t score(const uint32_t *label, const uint32_t *truth, uint32_t nq)
{
	uint32_t ok = 0;

	for (uint32_t q = 0; q < nq; q++)
		ok += truth[q] < UINT32_MAX - 1 && label[q] == truth[q];
	return ok;
}

struct replay_out {
	uint32_t correct;        /* final DSP labels right */
	uint32_t online_correct; /* label at completion (or when the stream ended) right */
	size_t used;             /* answers accepted */
	uint32_t early;          /* tasks completed by the rule (the others ran out of answers) */
	uint32_t early_scored;   /* of those, tasks with a truth */
	uint32_t early_correct;  /* of those, online label right: the calibration of the target */
	unsigned refits;
};

/* question of each CSR position */
static uint32_t *pos_q;

static void replay(const struct tly_answers *a, const uint32_t *stream, const uint32_t *truth,
		   double target, uint32_t min_resp, size_t refit_every, struct replay_out *out)
{
	uint32_t nq = a->n_questions, nw = a->n_workers, k = a->n_labels;
	double *wacc = malloc((nw ? nw : 1) * sizeof(double));
	double *prior = malloc(k * sizeof(double));
	double *post = malloc(k * sizeof(double));
	uint32_t *taken = calloc(nq ? nq : 1, sizeof(uint32_t));   /* accepted answers per task */
	uint8_t *done = calloc(nq ? nq : 1, 1);
	uint32_t *online = malloc((nq ? nq : 1) * sizeof(uint32_t));
	uint32_t *final = malloc((nq ? nq : 1) * sizeof(uint32_t));
	uint32_t *acc_pos = malloc((a->n_answers ? a->n_answers : 1) * sizeof(uint32_t));
	uint32_t *acc_idx = malloc((a->n_answers ? a->n_answers : 1) * 2 * sizeof(uint32_t));
	uint32_t maxper = 0;
	uint32_t *lab;
	double *wa;
	size_t used = 0;

	for (uint32_t q = 0; q < nq; q++)
		if (a->q_off[q + 1] - a->q_off[q] > maxper)
			maxper = a->q_off[q + 1] - a->q_off[q];
	lab = malloc((maxper ? maxper : 1) * sizeof(uint32_t));
	wa = malloc((maxper ? maxper : 1) * sizeof(double));
	if (!wacc || !prior || !post || !taken || !done || !online || !final || !acc_pos ||
	    !acc_idx || !lab || !wa)
		die("%s%s", "out of memory", "");
	for (uint32_t w = 0; w < nw; w++)
		wacc[w] = PRIOR_ACC;
	for (uint32_t c = 0; c < k; c++)
		prior[c] = 1.0 / k;
	memset(out, 0, sizeof(*out));

	for (size_t i = 0; i < a->n_answers; i++) {
		uint32_t p = stream[i], q = pos_q[p], base = a->q_off[q], n;

		if (done[q])
			continue;                     /* saved */
		acc_pos[base + taken[q]++] = p;       /* accepted: kept per task */
		acc_idx[2 * used] = q;
		acc_idx[2 * used + 1] = p;
		used++;
		n = taken[q];
		for (uint32_t j = 0; j < n; j++) {
			uint32_t pj = acc_pos[base + j];

			lab[j] = a->a_label[pj];
			wa[j] = wacc[a->a_worker[pj]];
		}
		online[q] = tly_onecoin_posterior(k, n, lab, wa, prior, post);
		if (n >= min_resp && tly_confidence_round(post[online[q]]) >= target) {
			done[q] = 1;
			out->early++;
		}
		if (used % refit_every == 0) {
			fit_subset(a, acc_idx, used, NULL, wacc, prior);
			out->refits++;
		}
	}
	fit_subset(a, acc_idx, used, final, NULL, NULL);
	out->correct = score(final, truth, nq);
	out->online_correct = score(online, truth, nq);
	for (uint32_t q = 0; q < nq; q++)
		if (done[q] && truth[q] != UINT32_MAX) {
			out->early_scored++;
			out->early_correct += online[q] == truth[q];
		}
	out->used = used;
	free(wacc);
	free(prior);
	free(post);
	free(taken);
	free(done);
	free(online);
	free(final);
	free(acc_pos);
	free(acc_idx);
	free(lab);
	free(wa);
}

/* DSP on the first `per` answers of every task in arrival order. */
static uint32_t fixed_prefix(const struct tly_answers *a, const uint32_t *stream,
			     const uint32_t *truth, uint32_t per, size_t *used)
{
	uint32_t nq = a->n_questions, ok;
	uint32_t *taken = calloc(nq ? nq : 1, sizeof(uint32_t));
	uint32_t *idx = malloc((a->n_answers ? a->n_answers : 1) * 2 * sizeof(uint32_t));
	uint32_t *label = malloc((nq ? nq : 1) * sizeof(uint32_t));
	size_t n = 0;

	if (!taken || !idx || !label)
		die("%s%s", "out of memory", "");
	for (size_t i = 0; i < a->n_answers; i++) {
		uint32_t p = stream[i], q = pos_q[p];

		if (taken[q] >= per)
			continue;
		taken[q]++;
		idx[2 * n] = q;
		idx[2 * n + 1] = p;
		n++;
	}
	fit_subset(a, idx, n, label, NULL, NULL);
	ok = score(label, truth, nq);
	*used = n;
	free(taken);
	free(idx);
	free(label);
	return ok;
}

static void usage(void)
{
	fprintf(stderr, "usage: replay_adaptive ANSWER.csv TRUTH.csv [--refit N] "
			"[--order shuffle|file] [--seed S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const double targets[] = { 0.80, 0.90, 0.95, 0.99 };
	static const uint32_t mins[] = { 1, 2 };
	const char *apath = NULL, *tpath = NULL;
	size_t refit = 500;
	int shuffle = 1;
	uint64_t seed = 1;
	struct tly_answers a;
	struct tly_agg_result res;
	char err[256];
	uint32_t *truth, *stream, nscored, ok_dsp, ok_mv;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--refit") == 0 && i + 1 < argc) {
			char *end;

			refit = strtoull(argv[++i], &end, 10);
			if (*end != '\0' || refit == 0)
				usage();
		} else if (strcmp(argv[i], "--order") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "shuffle") == 0)
				shuffle = 1;
			else if (strcmp(argv[i], "file") == 0)
				shuffle = 0;
			else
				usage();
		} else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			char *end;

			seed = strtoull(argv[++i], &end, 10);
			if (*end != '\0')
				usage();
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			usage();
		} else if (apath == NULL) {
			apath = argv[i];
		} else if (tpath == NULL) {
			tpath = argv[i];
		} else {
			usage();
		}
	}
	if (apath == NULL || tpath == NULL)
		usage();

	load_answers(apath, &a);
	if (a.n_labels < 2)
		die("%s: %s", apath, "fewer than 2 labels");
	truth = malloc((a.n_questions ? a.n_questions : 1) * sizeof(*truth));
	pos_q = malloc((a.n_answers ? a.n_answers : 1) * sizeof(*pos_q));
	if (truth == NULL || pos_q == NULL)
		die("%s%s", "out of memory", "");
	for (uint32_t q = 0; q < a.n_questions; q++)
		for (uint32_t i = a.q_off[q]; i < a.q_off[q + 1]; i++)
			pos_q[i] = q;
	nscored = load_truth(tpath, &a, truth);
	if (nscored == 0)
		die("%s: %s", tpath, "no question of the answer file has a truth");
	stream = make_stream(&a, shuffle, seed);

	printf("file %s: %zu answers, %u tasks (%u with truth), %u workers, %u labels\n",
	       apath, a.n_answers, a.n_questions, nscored, a.n_workers, a.n_labels);
	printf("order %s", shuffle ? "shuffle" : "file");
	if (shuffle)
		printf(" (seed %llu)", (unsigned long long)seed);
	printf(", refit DSP every %zu accepted answers, unfitted worker accuracy %.2f, "
	       "max_responses = all\n\n", refit, PRIOR_ACC);

	if (tly_aggregate(&a, TLY_AGG_DSP, NULL, NULL, &res, err, sizeof(err)) != TLY_Q_OK)
		die("dsp: %s%s", err, "");
	ok_dsp = score(res.label, truth, a.n_questions);
	tly_agg_result_release(&res);
	if (tly_aggregate(&a, TLY_AGG_MV, NULL, NULL, &res, err, sizeof(err)) != TLY_Q_OK)
		die("mv: %s%s", err, "");
	ok_mv = score(res.label, truth, a.n_questions);
	tly_agg_result_release(&res);

	printf("| policy | target | min | accuracy | right | labels used | saved | "
	       "closed by rule | their acc. | online acc. | refits |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
	printf("| fixed, all answers, dsp | - | - | %.4f | %u | %zu | 0.0%% | - | - | - | - |\n",
	       (double)ok_dsp / nscored, ok_dsp, a.n_answers);
	printf("| fixed, all answers, mv | - | - | %.4f | %u | %zu | 0.0%% | - | - | - | - |\n",
	       (double)ok_mv / nscored, ok_mv, a.n_answers);
	for (uint32_t per = 1; per <= 5; per++) {
		size_t used;
		uint32_t ok = fixed_prefix(&a, stream, truth, per, &used);

		printf("| fixed, first %u per task, dsp | - | - | %.4f | %u | %zu | %.1f%% | - | - | - | - |\n",
		       per, (double)ok / nscored, ok, used,
		       100.0 * (double)(a.n_answers - used) / (double)a.n_answers);
		if (used == a.n_answers)
			break;
	}
	for (size_t m = 0; m < sizeof(mins) / sizeof(mins[0]); m++)
		for (size_t t = 0; t < sizeof(targets) / sizeof(targets[0]); t++) {
			struct replay_out o;

			replay(&a, stream, truth, targets[t], mins[m], refit, &o);
			printf("| adaptive | %.2f | %u | %.4f | %u | %zu | %.1f%% | %u | %.4f | %.4f | %u |\n",
			       targets[t], mins[m], (double)o.correct / nscored, o.correct, o.used,
			       100.0 * (double)(a.n_answers - o.used) / (double)a.n_answers,
			       o.early,
			       o.early_scored ? (double)o.early_correct / o.early_scored : 0.0,
			       (double)o.online_correct / nscored, o.refits);
		}
	free(stream);
	free(truth);
	free(pos_q);
	tly_answers_release(&a);
	return 0;
}
