/*
 * test_quality.c - CSV reader, answer set and aggregation (src/lib/quality).
 *
 * The accuracy tests over the crowd benchmark sets read ../shared/data/crowd
 * (or $TALLY_CROWD_DIR) and skip when it is absent.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quality/aggregate.h"
#include "quality/csvread.h"
#include "quality/labels.h"

/* ---- helpers ------------------------------------------------------------------ */

struct parsed {
	int rc;                 /* last tly_csv_read result */
	unsigned long line;     /* line of the last record or error */
	size_t rows;
	char err[256];
	char cells[16][4][64];  /* first fields of the first rows */
	size_t nf[16];
};

static void parse(const char *text, size_t len, size_t field_max, size_t fields_max,
		  struct parsed *p)
{
	FILE *fp = fmemopen((void *)text, len, "r");
	struct tly_csv csv;

	memset(p, 0, sizeof(*p));
	assert_non_null(fp);
	assert_int_equal(tly_csv_init(&csv, fp, field_max, fields_max), TLY_Q_OK);
	while ((p->rc = tly_csv_read(&csv, p->err, sizeof(p->err))) == 1) {
		if (p->rows < 16) {
			p->nf[p->rows] = csv.nfields;
			for (size_t i = 0; i < csv.nfields && i < 4; i++)
				snprintf(p->cells[p->rows][i], 64, "%s", tly_csv_field(&csv, i, NULL));
		}
		p->rows++;
		p->line = tly_csv_line(&csv);
	}
	if (p->rc < 0)
		p->line = tly_csv_line(&csv);
	tly_csv_release(&csv);
	fclose(fp);
}

static void add(struct tly_answers *a, const char *q, const char *w, const char *l)
{
	char err[128];

	assert_int_equal(tly_answers_add(a, q, strlen(q), w, strlen(w), l, strlen(l), 0,
					 err, sizeof(err)), TLY_Q_OK);
}

static void finish(struct tly_answers *a)
{
	char err[256];

	assert_int_equal(tly_answers_finish(a, NULL, err, sizeof(err)), TLY_Q_OK);
}

static const char *label_of(const struct tly_answers *a, const struct tly_agg_result *r,
			    const char *q)
{
	uint32_t id = tly_answers_question_id(a, q, strlen(q));

	assert_true(id != UINT32_MAX);
	return tly_answers_label_name(a, r->label[id], NULL);
}

/* ---- CSV reader ------------------------------------------------------------------ */

static void test_csv_rfc4180(void **state)
{
	static const char text[] =
		"\xef\xbb\xbfquestion,worker,answer\r\n"
		"\"a,b\",w1,\"say \"\"hi\"\"\"\r\n"
		"\n"
		"q2,w2,\"two\nlines\"\n"
		"q3,,\n"
		"q4,w4,last";   /* no final newline */
	struct parsed p;

	(void)state;
	parse(text, sizeof(text) - 1, 0, 0, &p);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.rows, 5);
	assert_string_equal(p.cells[0][0], "question");   /* BOM skipped */
	assert_string_equal(p.cells[1][0], "a,b");
	assert_string_equal(p.cells[1][2], "say \"hi\"");
	assert_string_equal(p.cells[2][2], "two\nlines");
	assert_int_equal(p.nf[3], 3);
	assert_string_equal(p.cells[3][1], "");
	assert_string_equal(p.cells[4][2], "last");
	assert_int_equal(p.line, 7);   /* blank line 3 skipped, record 4 spans two lines */
}

struct csv_bad {
	const char *text;
	size_t len;
	int rc;
	unsigned long line;
	const char *why;
};

static void test_csv_hostile(void **state)
{
	static const struct csv_bad cases[] = {
		{ "h\n\"open\n\nmore", 0, TLY_Q_EINVAL, 2, "unbalanced quotes" },
		{ "h\nab\"c\n", 0, TLY_Q_EINVAL, 2, "quote inside an unquoted field" },
		{ "h\n\"ab\"c\n", 0, TLY_Q_EINVAL, 2, "text after the closing quote" },
		{ "h\nok,\xff\n", 0, TLY_Q_EINVAL, 2, "field 2 is not valid UTF-8" },
		{ "h\n\xc0\x80\n", 0, TLY_Q_EINVAL, 2, "not valid UTF-8" },        /* overlong NUL */
		{ "h\n\xed\xa0\x80\n", 0, TLY_Q_EINVAL, 2, "not valid UTF-8" },    /* surrogate */
		{ "h\n\xf4\x90\x80\x80\n", 0, TLY_Q_EINVAL, 2, "not valid UTF-8" },/* > U+10FFFF */
		{ "h\n\xe2\x82\n", 0, TLY_Q_EINVAL, 2, "not valid UTF-8" },        /* truncated */
		{ "h\nabc\rdef\n", 0, TLY_Q_EINVAL, 2, "carriage return" },
		{ "h\na\0b\n", 7, TLY_Q_EINVAL, 2, "NUL byte" },
		{ "h\n0123456789a\n", 0, TLY_Q_ELIMIT, 2, "longer than 10 bytes" },
		{ "h\na,b,c,d,e\n", 0, TLY_Q_ELIMIT, 2, "more than 4 fields" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct parsed p;
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);

		parse(cases[i].text, len, 10, 4, &p);
		assert_int_equal(p.rc, cases[i].rc);
		assert_int_equal(p.line, cases[i].line);
		assert_non_null(strstr(p.err, cases[i].why));
	}
}

static void test_csv_utf8_valid(void **state)
{
	(void)state;
	static const char ok[] = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80";

	assert_true(tly__utf8_valid(ok, sizeof(ok) - 1));
	assert_false(tly__utf8_valid(ok, sizeof(ok) - 2));   /* cut inside the emoji */
	assert_false(tly__utf8_valid("\x80", 1));
	assert_false(tly__utf8_valid("\xe0\x80\x80", 3));   /* overlong */
}

/* ---- answer set ------------------------------------------------------------------ */

static void test_labels_order_and_csr(void **state)
{
	struct tly_answers a;

	(void)state;
	tly_answers_init(&a);
	add(&a, "q1", "w1", "10");
	add(&a, "q2", "w1", "9");
	add(&a, "q1", "w2", "2");
	add(&a, "q1", "w3", "9");
	finish(&a);
	assert_int_equal(a.n_questions, 2);
	assert_int_equal(a.n_workers, 3);
	assert_int_equal(a.n_labels, 3);
	assert_int_equal(a.n_answers, 4);
	assert_true(a.labels_numeric);
	/* numeric order: 2 < 9 < 10 */
	assert_string_equal(tly_answers_label_name(&a, 0, NULL), "2");
	assert_string_equal(tly_answers_label_name(&a, 1, NULL), "9");
	assert_string_equal(tly_answers_label_name(&a, 2, NULL), "10");
	assert_true(a.label_value[2] == 10.0);
	/* CSR: q1 holds answers 0..2 in input order, q2 answer 3 */
	assert_int_equal(a.q_off[0], 0);
	assert_int_equal(a.q_off[1], 3);
	assert_int_equal(a.q_off[2], 4);
	assert_int_equal(a.a_label[0], 2);
	assert_int_equal(a.a_label[1], 0);
	assert_int_equal(a.a_label[2], 1);
	assert_int_equal(a.a_worker[3], 0);
	assert_int_equal(tly_answers_question_id(&a, "q2", 2), 1);
	assert_int_equal(tly_answers_worker_id(&a, "w3", 2), 2);
	assert_int_equal(tly_answers_label_id(&a, "nope", 4), UINT32_MAX);
	tly_answers_release(&a);

	/* byte order when any label is not a number */
	tly_answers_init(&a);
	add(&a, "q", "w1", "b");
	add(&a, "q", "w2", "10");
	add(&a, "q", "w3", "ab");
	add(&a, "q", "w4", "a");
	finish(&a);
	assert_false(a.labels_numeric);
	assert_string_equal(tly_answers_label_name(&a, 0, NULL), "10");
	assert_string_equal(tly_answers_label_name(&a, 1, NULL), "a");
	assert_string_equal(tly_answers_label_name(&a, 2, NULL), "ab");
	assert_string_equal(tly_answers_label_name(&a, 3, NULL), "b");
	tly_answers_release(&a);
}

static void test_labels_duplicate(void **state)
{
	struct tly_answers a;
	char err[256];
	uint32_t bad = 0;

	(void)state;
	tly_answers_init(&a);
	assert_int_equal(tly_answers_add(&a, "q", 1, "w", 1, "x", 1, 2, err, sizeof(err)), TLY_Q_OK);
	assert_int_equal(tly_answers_add(&a, "p", 1, "w", 1, "x", 1, 3, err, sizeof(err)), TLY_Q_OK);
	assert_int_equal(tly_answers_add(&a, "q", 1, "w", 1, "y", 1, 4, err, sizeof(err)), TLY_Q_OK);
	assert_int_equal(tly_answers_finish(&a, &bad, err, sizeof(err)), TLY_Q_EINVAL);
	assert_int_equal(bad, 4);
	assert_string_equal(err, "worker 'w' already answered question 'q' (line 2)");
	tly_answers_release(&a);
}

static void test_labels_many_strings(void **state)
{
	struct tly_answers a;
	char q[32], w[32];

	(void)state;
	tly_answers_init(&a);
	for (int i = 0; i < 20000; i++) {   /* forces several rehashes */
		snprintf(q, sizeof(q), "q%d", i / 3);
		snprintf(w, sizeof(w), "w%d", i % 3);
		add(&a, q, w, i % 7 == 0 ? "1" : "0");
	}
	finish(&a);
	assert_int_equal(a.n_questions, 6667);
	assert_int_equal(a.n_workers, 3);
	assert_int_equal(tly_answers_question_id(&a, "q4321", 5), 4321);
	assert_string_equal(tly_answers_question_name(&a, 6666, NULL), "q6666");
	tly_answers_release(&a);
}

/* ---- aggregation ------------------------------------------------------------------ */

static void test_mv_ties_and_confidence(void **state)
{
	struct tly_answers a;
	struct tly_agg_result r;
	char err[256];

	(void)state;
	tly_answers_init(&a);
	add(&a, "t1", "w1", "cat");
	add(&a, "t1", "w2", "bird");
	add(&a, "t2", "w1", "dog");
	add(&a, "t2", "w2", "dog");
	add(&a, "t2", "w3", "cat");
	finish(&a);
	assert_int_equal(tly_aggregate_mv(&a, NULL, &r, err, sizeof(err)), TLY_Q_OK);
	assert_string_equal(label_of(&a, &r, "t1"), "bird");   /* tie: smallest label */
	assert_true(fabs(r.confidence[0] - 0.5) < 1e-12);
	assert_string_equal(label_of(&a, &r, "t2"), "dog");
	assert_true(fabs(r.confidence[1] - 2.0 / 3.0) < 1e-12);
	/* w1: cat on t1 (lost to bird) and dog on t2 (won) */
	assert_true(fabs(r.worker_quality[0] - 0.5) < 1e-12);
	assert_true(fabs(r.worker_quality[2] - 0.0) < 1e-12);
	assert_true(fabs(r.posterior[1 * a.n_labels + tly_answers_label_id(&a, "cat", 3)] - 1.0 / 3) < 1e-12);
	tly_agg_result_release(&r);
	tly_answers_release(&a);
}

/*
 * Two experts who are always right and three spammers who flip a coin
 * (a seeded LCG). Majority vote is wrong exactly when all three spammers
 * are wrong; EM methods must learn to trust the experts and get all right.
 */
static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 16;
}

static int build_spam_set(struct tly_answers *a, int ntask, char *truth)
{
	uint32_t seed = 12345;
	int mv_wrong = 0;
	char q[32], w[32];

	tly_answers_init(a);
	for (int t = 0; t < ntask; t++) {
		int wrong = 0;

		truth[t] = (lcg(&seed) & 1) ? 'y' : 'n';
		snprintf(q, sizeof(q), "t%d", t);
		for (int e = 0; e < 2; e++) {
			snprintf(w, sizeof(w), "expert%d", e);
			add(a, q, w, truth[t] == 'y' ? "y" : "n");
		}
		for (int s = 0; s < 3; s++) {
			int flip = lcg(&seed) & 1;

			snprintf(w, sizeof(w), "spam%d", s);
			add(a, q, w, (truth[t] == 'y') != flip ? "y" : "n");
			wrong += flip;
		}
		mv_wrong += wrong == 3;
	}
	finish(a);
	return mv_wrong;
}

static int count_correct(const struct tly_answers *a, const struct tly_agg_result *r,
			 const char *truth, int ntask)
{
	char q[32], l[2] = { 0, 0 };
	int ok = 0;

	for (int t = 0; t < ntask; t++) {
		snprintf(q, sizeof(q), "t%d", t);
		l[0] = truth[t];
		ok += strcmp(label_of(a, r, q), l) == 0;
	}
	return ok;
}

static void test_em_methods_beat_mv(void **state)
{
	struct tly_answers a;
	struct tly_agg_result r;
	char err[256], truth[400];
	const int n = 400;
	int mv_wrong;

	(void)state;
	mv_wrong = build_spam_set(&a, n, truth);
	assert_true(mv_wrong > 20);   /* about n/8 */
	assert_int_equal(tly_aggregate(&a, TLY_AGG_MV, NULL, NULL, &r, err, sizeof(err)), TLY_Q_OK);
	assert_int_equal(count_correct(&a, &r, truth, n), n - mv_wrong);
	tly_agg_result_release(&r);
	for (int m = TLY_AGG_DS; m <= TLY_AGG_DSP; m++) {
		assert_int_equal(tly_aggregate(&a, (enum tly_agg_method)m, NULL, NULL, &r,
					       err, sizeof(err)), TLY_Q_OK);
		assert_int_equal(count_correct(&a, &r, truth, n), n);
		assert_true(r.iterations >= 2);
		uint32_t e0 = tly_answers_worker_id(&a, "expert0", 7);
		uint32_t s0 = tly_answers_worker_id(&a, "spam0", 5);

		assert_true(r.worker_quality[e0] > 0.95);
		if (m == TLY_AGG_MACE)   /* competence: a coin flipper never "knows" */
			assert_true(r.worker_quality[s0] < 0.2);
		else                     /* probability of a right answer */
			assert_true(r.worker_quality[s0] > 0.35 && r.worker_quality[s0] < 0.65);
		assert_true(fabs(r.class_prior[0] + r.class_prior[1] - 1.0) < 1e-9);
		tly_agg_result_release(&r);
	}
	tly_answers_release(&a);
}

static void test_gold_anchors(void **state)
{
	struct tly_answers a;
	struct tly_agg_result r;
	int32_t *gold;
	char err[256];

	(void)state;
	/* two workers who always disagree: without gold the answer is a coin
	 * toss; gold on half the tasks says w2 is right, so EM must follow w2 */
	tly_answers_init(&a);
	for (int t = 0; t < 20; t++) {
		char q[16];

		snprintf(q, sizeof(q), "t%d", t);
		add(&a, q, "w1", t % 2 ? "a" : "b");
		add(&a, q, "w2", t % 2 ? "b" : "a");
	}
	finish(&a);
	gold = malloc(a.n_questions * sizeof(*gold));
	assert_non_null(gold);
	for (uint32_t q = 0; q < a.n_questions; q++)
		gold[q] = q < 10 ? (int32_t)a.a_label[a.q_off[q] + 1] : TLY_AGG_NO_GOLD;
	for (int m = TLY_AGG_MV; m <= TLY_AGG_DSP; m++) {
		assert_int_equal(tly_aggregate(&a, (enum tly_agg_method)m, gold, NULL, &r,
					       err, sizeof(err)), TLY_Q_OK);
		for (uint32_t q = 0; q < 10; q++) {
			assert_int_equal(r.label[q], (uint32_t)gold[q]);
			assert_true(r.confidence[q] == 1.0);
		}
		if (m != TLY_AGG_MV) {
			for (uint32_t q = 10; q < 20; q++) {
				assert_int_equal(r.label[q], a.a_label[a.q_off[q] + 1]);
				assert_true(r.confidence[q] > 0.5);
			}
		}
		tly_agg_result_release(&r);
	}
	gold[0] = 7;   /* out of range */
	assert_int_equal(tly_aggregate(&a, TLY_AGG_DS, gold, NULL, &r, err, sizeof(err)), TLY_Q_EINVAL);
	free(gold);
	tly_answers_release(&a);
}

static void test_deterministic_and_edge_sets(void **state)
{
	struct tly_answers a;
	struct tly_agg_result r1, r2;
	char err[256], truth[64];

	(void)state;
	build_spam_set(&a, 64, truth);
	for (int m = TLY_AGG_MV; m <= TLY_AGG_DSP; m++) {
		assert_int_equal(tly_aggregate(&a, (enum tly_agg_method)m, NULL, NULL, &r1, err, sizeof(err)), 0);
		assert_int_equal(tly_aggregate(&a, (enum tly_agg_method)m, NULL, NULL, &r2, err, sizeof(err)), 0);
		assert_memory_equal(r1.label, r2.label, a.n_questions * sizeof(uint32_t));
		assert_memory_equal(r1.confidence, r2.confidence, a.n_questions * sizeof(double));
		assert_memory_equal(r1.worker_quality, r2.worker_quality, a.n_workers * sizeof(double));
		tly_agg_result_release(&r1);
		tly_agg_result_release(&r2);
	}
	tly_answers_release(&a);

	/* empty set, and a set with a single label */
	tly_answers_init(&a);
	finish(&a);
	assert_int_equal(tly_aggregate(&a, TLY_AGG_DSP, NULL, NULL, &r1, err, sizeof(err)), 0);
	assert_int_equal(r1.n_questions, 0);
	tly_agg_result_release(&r1);
	tly_answers_release(&a);
	tly_answers_init(&a);
	add(&a, "q", "w", "only");
	finish(&a);
	assert_int_equal(tly_aggregate(&a, TLY_AGG_DS, NULL, NULL, &r1, err, sizeof(err)), 0);
	assert_int_equal(r1.label[0], 0);
	assert_true(r1.confidence[0] == 1.0);
	tly_agg_result_release(&r1);
	tly_answers_release(&a);

	/* unfinished set and unknown method are refused */
	tly_answers_init(&a);
	assert_int_equal(tly_aggregate(&a, TLY_AGG_DS, NULL, NULL, &r1, err, sizeof(err)), TLY_Q_EINVAL);
	finish(&a);
	assert_int_equal(tly_aggregate(&a, (enum tly_agg_method)42, NULL, NULL, &r1, err, sizeof(err)),
			 TLY_Q_EINVAL);
	tly_answers_release(&a);
	assert_int_equal(tly_agg_method_parse("mace"), TLY_AGG_MACE);
	assert_int_equal(tly_agg_method_parse("glad"), -1);
	assert_string_equal(tly_agg_method_name(TLY_AGG_DSP), "dsp");
}

static void test_memory_cap(void **state)
{
	struct tly_answers a;
	struct tly_agg_result r;
	char err[256], q[16], l[16];

	(void)state;
	/* 3000 labels x 3000 workers: full confusion matrices would be 2.7e10 cells */
	tly_answers_init(&a);
	for (int i = 0; i < 3000; i++) {
		snprintf(q, sizeof(q), "q%d", i);
		snprintf(l, sizeof(l), "l%d", i);
		add(&a, q, q, l);
	}
	finish(&a);
	assert_int_equal(tly_aggregate(&a, TLY_AGG_DS, NULL, NULL, &r, err, sizeof(err)), TLY_Q_ELIMIT);
	assert_non_null(strstr(err, "too large"));
	assert_int_equal(tly_aggregate(&a, TLY_AGG_MV, NULL, NULL, &r, err, sizeof(err)), TLY_Q_OK);
	assert_string_equal(tly_answers_label_name(&a, r.label[2999], NULL), "l2999");
	tly_agg_result_release(&r);
	tly_answers_release(&a);
}

/* ---- accuracy on the shared crowd sets (skipped when absent) ------------------------ */

static const char *crowd_dir(void)
{
	static const char *const cands[] = {
		"../shared/data/crowd", "../../shared/data/crowd", "../../../shared/data/crowd",
	};
	static char buf[1024];
	const char *env = getenv("TALLY_CROWD_DIR");

	if (env != NULL)
		return env;
	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
		snprintf(buf, sizeof(buf), "%s/d_jn_product/answer.csv", cands[i]);
		FILE *f = fopen(buf, "r");

		if (f != NULL) {
			fclose(f);
			return cands[i];
		}
	}
	return NULL;
}

static int load_csv(const char *path, struct tly_answers *a, int32_t **truth_out,
		    const char *truth_path)
{
	struct tly_csv csv;
	char err[256];
	FILE *fp = fopen(path, "r");
	int r, first = 1;

	if (fp == NULL)
		return -1;
	tly_answers_init(a);
	assert_int_equal(tly_csv_init(&csv, fp, 0, 0), 0);
	while ((r = tly_csv_read(&csv, err, sizeof(err))) == 1) {
		size_t l0, l1, l2;
		const char *q = tly_csv_field(&csv, 0, &l0);
		const char *w = tly_csv_field(&csv, 1, &l1);
		const char *l = tly_csv_field(&csv, 2, &l2);

		if (first) {
			first = 0;
			continue;
		}
		assert_int_equal(tly_answers_add(a, q, l0, w, l1, l, l2, (uint32_t)csv.line,
						 err, sizeof(err)), 0);
	}
	assert_int_equal(r, 0);
	tly_csv_release(&csv);
	fclose(fp);
	finish(a);

	int32_t *truth = malloc((a->n_questions + 1) * sizeof(*truth));

	assert_non_null(truth);
	for (uint32_t q = 0; q < a->n_questions; q++)
		truth[q] = -1;
	fp = fopen(truth_path, "r");
	assert_non_null(fp);
	assert_int_equal(tly_csv_init(&csv, fp, 0, 0), 0);
	first = 1;
	while ((r = tly_csv_read(&csv, err, sizeof(err))) == 1) {
		size_t l0, l1;
		const char *q = tly_csv_field(&csv, 0, &l0);
		const char *l = tly_csv_field(&csv, 1, &l1);
		uint32_t qi;

		if (first) {
			first = 0;
			continue;
		}
		qi = tly_answers_question_id(a, q, l0);
		if (qi != UINT32_MAX)
			truth[qi] = (int32_t)tly_answers_label_id(a, l, l1);
	}
	tly_csv_release(&csv);
	fclose(fp);
	*truth_out = truth;
	return 0;
}

static int correct(const struct tly_answers *a, const int32_t *truth, enum tly_agg_method m)
{
	struct tly_agg_result r;
	char err[256];
	int ok = 0;

	assert_int_equal(tly_aggregate(a, m, NULL, NULL, &r, err, sizeof(err)), 0);
	for (uint32_t q = 0; q < a->n_questions; q++)
		ok += truth[q] >= 0 && (int32_t)r.label[q] == truth[q];
	tly_agg_result_release(&r);
	return ok;
}

static void test_crowd_accuracy(void **state)
{
	/* expected counts of correct labels, measured and documented in docs/QUALITY.md */
	static const struct {
		const char *set;
		int n_truth, mv, ds, dsp;
	} sets[] = {
		{ "d_jn_product", 8315, 7455, 7809, 7817 },
		{ "d_duck_identification", 108, 82, 97, 97 },
		{ "s_dog", 807, 660, 681, 681 },
		{ "s_face_sentiment_identification", 584, 368, 375, 375 },
	};
	const char *dir = crowd_dir();
	char ap[1200], tp[1200];

	(void)state;
	if (dir == NULL)
		skip();
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		struct tly_answers a;
		int32_t *truth = NULL;
		int n = 0;

		snprintf(ap, sizeof(ap), "%s/%s/answer.csv", dir, sets[i].set);
		snprintf(tp, sizeof(tp), "%s/%s/truth.csv", dir, sets[i].set);
		assert_int_equal(load_csv(ap, &a, &truth, tp), 0);
		for (uint32_t q = 0; q < a.n_questions; q++)
			n += truth[q] >= 0;
		assert_int_equal(n, sets[i].n_truth);
		int mv = correct(&a, truth, TLY_AGG_MV);
		int ds = correct(&a, truth, TLY_AGG_DS);
		int dsp = correct(&a, truth, TLY_AGG_DSP);

		assert_int_equal(mv, sets[i].mv);
		assert_int_equal(ds, sets[i].ds);
		assert_int_equal(dsp, sets[i].dsp);
		assert_true(dsp >= ds);   /* the default is at least Dawid-Skene */
		if (strcmp(sets[i].set, "d_jn_product") == 0) {
			assert_true((double)ds / n >= 0.939);
			assert_true((double)dsp / n >= 0.940);
		}
		free(truth);
		tly_answers_release(&a);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_rfc4180),
		cmocka_unit_test(test_csv_hostile),
		cmocka_unit_test(test_csv_utf8_valid),
		cmocka_unit_test(test_labels_order_and_csr),
		cmocka_unit_test(test_labels_duplicate),
		cmocka_unit_test(test_labels_many_strings),
		cmocka_unit_test(test_mv_ties_and_confidence),
		cmocka_unit_test(test_em_methods_beat_mv),
		cmocka_unit_test(test_gold_anchors),
		cmocka_unit_test(test_deterministic_and_edge_sets),
		cmocka_unit_test(test_memory_cap),
		cmocka_unit_test(test_crowd_accuracy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
