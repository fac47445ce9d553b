/*
 * bench_quality.c - timings of the aggregation library.
 *
 * usage: bench_quality [ANSWER_CSV] [N_ANSWERS]
 *
 * 1. With ANSWER_CSV (e.g. ../shared/data/crowd/d_jn_product/answer.csv):
 *    loads it and times Dawid-Skene (ds) and the default (dsp), best and
 *    median of 21 runs.
 * 2. Always: builds a synthetic set of N_ANSWERS answers (default 10,000,000:
 *    1,000,000 questions x 10 answers, 4 classes, 2,000 workers with
 *    accuracies 0.55-0.95, a seeded xorshift PRNG, string ids interned as
 *    the CLI would) and times building it, majority vote, ds and dsp once,
 *    and ds forced to run 50 iterations (tol 0) as a worst case.
 * Prints one line per figure, and the peak resident memory.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "quality/aggregate.h"
#include "quality/csvread.h"
#include "quality/labels.h"

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t xorshift(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

static double uniform(void)
{
	return (double)(xorshift() >> 11) * (1.0 / 9007199254740992.0);
}

static long peak_rss_mb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss / 1024;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int load(const char *path, struct tly_answers *a)
{
	struct tly_csv csv;
	char err[256];
	FILE *fp = fopen(path, "r");
	int r, first = 1, rc = 1;

	tly_answers_init(a);
	if (fp == NULL) {
		perror(path);
		return 1;
	}
	if (tly_csv_init(&csv, fp, 0, 0) != TLY_Q_OK)
		goto out;
	while ((r = tly_csv_read(&csv, err, sizeof(err))) == 1) {
		size_t l0, l1, l2;
		const char *q = tly_csv_field(&csv, 0, &l0);
		const char *w = tly_csv_field(&csv, 1, &l1);
		const char *l = tly_csv_field(&csv, 2, &l2);

		if (first) {
			first = 0;
			continue;
		}
		if (csv.nfields != 3 ||
		    tly_answers_add(a, q, l0, w, l1, l, l2, (uint32_t)csv.line, err, sizeof(err))) {
			fprintf(stderr, "%s:%lu: bad row\n", path, csv.line);
			goto out;
		}
	}
	if (r < 0) {
		fprintf(stderr, "%s:%lu: %s\n", path, csv.line, err);
		goto out;
	}
	if (tly_answers_finish(a, NULL, err, sizeof(err)) != TLY_Q_OK) {
		fprintf(stderr, "%s: %s\n", path, err);
		goto out;
	}
	rc = 0;
out:
	tly_csv_release(&csv);
	fclose(fp);
	return rc;
}

static void time_file(const char *path)
{
	struct tly_answers a;
	struct tly_agg_result res;
	char err[256];
	double t[21];
	static const enum tly_agg_method ms[] = { TLY_AGG_DS, TLY_AGG_DSP };

	if (load(path, &a) != 0)
		exit(1);
	printf("file %s: %zu answers, %u questions, %u workers, %u labels\n", path,
	       a.n_answers, a.n_questions, a.n_workers, a.n_labels);
	for (size_t m = 0; m < 2; m++) {
		unsigned it = 0;

		for (int i = 0; i < 21; i++) {
			double t0 = now();

			if (tly_aggregate(&a, ms[m], NULL, NULL, &res, err, sizeof(err)) != TLY_Q_OK) {
				fprintf(stderr, "%s\n", err);
				exit(1);
			}
			t[i] = now() - t0;
			it = res.iterations;
			tly_agg_result_release(&res);
		}
		qsort(t, 21, sizeof(t[0]), cmp_double);
		printf("file %-3s: best %.2f ms, median %.2f ms (%u iterations)\n",
		       tly_agg_method_name(ms[m]), t[0] * 1e3, t[10] * 1e3, it);
	}
	tly_answers_release(&a);
}

static void time_synthetic(size_t n_answers)
{
	enum { K = 4, PER_Q = 10, N_WORKERS = 2000 };
	static const char *const labels[K] = { "cat", "dog", "bird", "fish" };
	size_t nq = n_answers / PER_Q;
	double acc[N_WORKERS];
	struct tly_answers a;
	struct tly_agg_result res;
	char err[256], q[32], w[32];
	uint8_t *truth = malloc(nq ? nq : 1);
	double t0;

	if (truth == NULL)
		exit(1);
	for (int i = 0; i < N_WORKERS; i++)
		acc[i] = 0.55 + 0.4 * uniform();
	tly_answers_init(&a);
	t0 = now();
	for (size_t i = 0; i < nq; i++) {
		uint32_t first = (uint32_t)(xorshift() % N_WORKERS);

		truth[i] = (uint8_t)(xorshift() % K);
		snprintf(q, sizeof(q), "task-%zu", i);
		for (int j = 0; j < PER_Q; j++) {
			uint32_t wk = (first + (uint32_t)j * 7u) % N_WORKERS;   /* distinct workers */
			int l = truth[i];

			if (uniform() > acc[wk])
				l = (l + 1 + (int)(xorshift() % (K - 1))) % K;
			snprintf(w, sizeof(w), "worker-%u", wk);
			if (tly_answers_add(&a, q, strlen(q), w, strlen(w), labels[l], strlen(labels[l]),
					    0, err, sizeof(err)) != TLY_Q_OK) {
				fprintf(stderr, "%s\n", err);
				exit(1);
			}
		}
	}
	if (tly_answers_finish(&a, NULL, err, sizeof(err)) != TLY_Q_OK) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	printf("synthetic: %zu answers, %u questions, %u workers, %u labels; build+intern %.2f s\n",
	       a.n_answers, a.n_questions, a.n_workers, a.n_labels, now() - t0);

	static const enum tly_agg_method ms[] = { TLY_AGG_MV, TLY_AGG_DS, TLY_AGG_DSP };
	for (size_t m = 0; m < 3; m++) {
		size_t ok = 0;
		double dt;

		t0 = now();
		if (tly_aggregate(&a, ms[m], NULL, NULL, &res, err, sizeof(err)) != TLY_Q_OK) {
			fprintf(stderr, "%s\n", err);
			exit(1);
		}
		dt = now() - t0;
		for (size_t i = 0; i < nq; i++)
			ok += strcmp(tly_answers_label_name(&a, res.label[i], NULL), labels[truth[i]]) == 0;
		printf("synthetic %-3s: %.3f s, %u iterations, accuracy %.4f\n",
		       tly_agg_method_name(ms[m]), dt, res.iterations, nq ? (double)ok / nq : 0.0);
		tly_agg_result_release(&res);
	}
	/* worst case: EM never converges, 50 full iterations */
	struct tly_agg_opts o;

	tly_agg_opts_default(&o);
	o.tol = 0.0;
	o.max_iter = 50;
	t0 = now();
	if (tly_aggregate(&a, TLY_AGG_DS, NULL, &o, &res, err, sizeof(err)) != TLY_Q_OK) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	printf("synthetic ds, 50 forced iterations (tol 0): %.3f s\n", now() - t0);
	tly_agg_result_release(&res);
	tly_answers_release(&a);
	free(truth);
}

int main(int argc, char **argv)
{
	size_t n = 10000000;

	if (argc > 1 && argv[1][0] != '\0')
		time_file(argv[1]);
	if (argc > 2)
		n = strtoull(argv[2], NULL, 10);
	time_synthetic(n);
	printf("peak resident memory: %ld MB\n", peak_rss_mb());
	return 0;
}
