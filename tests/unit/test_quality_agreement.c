/*
 * test_quality_agreement.c - Cohen's kappa, Fleiss' kappa, Krippendorff's
 * alpha against published worked examples, asserted to the published
 * precision (the figure rounded to that many decimals must be equal).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "quality/agreement.h"
#include "quality/labels.h"

/* x rounded to `dec` decimals equals the published figure. */
static void assert_published(double x, double published, int dec)
{
	double scale = pow(10.0, dec);

	if (llround(x * scale) != llround(published * scale))
		fail_msg("%.6f does not round to %.*f", x, dec, published);
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

/* ---- Cohen: table [[0,4,1],[0,8,0],[0,1,5]] -> .4842 unweighted, .4701 linear ---- */

static const double cohen_table[9] = { 0, 4, 1, 0, 8, 0, 0, 1, 5 };

static void test_cohen_table(void **state)
{
	double k;
	char err[256];

	(void)state;
	assert_int_equal(tly_cohen_kappa_table(cohen_table, 3, TLY_WEIGHTS_NONE, &k, err, sizeof(err)), 0);
	assert_published(k, 0.4842, 4);
	assert_int_equal(tly_cohen_kappa_table(cohen_table, 3, TLY_WEIGHTS_LINEAR, &k, err, sizeof(err)), 0);
	assert_published(k, 0.4701, 4);
	/* by hand: linear = 1 - (7/19) / (251/361) = 1 - 133/251 */
	assert_true(fabs(k - (1.0 - 133.0 / 251.0)) < 1e-12);
	/* quadratic by hand: sum w o = 9/19, sum w e = 311/361, kappa = 1 - 171/311 */
	assert_int_equal(tly_cohen_kappa_table(cohen_table, 3, TLY_WEIGHTS_QUADRATIC, &k, err, sizeof(err)), 0);
	assert_true(fabs(k - (1.0 - 171.0 / 311.0)) < 1e-12);
	/* bad tables */
	assert_int_equal(tly_cohen_kappa_table(cohen_table, 0, TLY_WEIGHTS_NONE, &k, err, sizeof(err)),
			 TLY_Q_EINVAL);
	static const double neg[4] = { 1, -1, 0, 1 };
	assert_int_equal(tly_cohen_kappa_table(neg, 2, TLY_WEIGHTS_NONE, &k, err, sizeof(err)),
			 TLY_Q_EINVAL);
}

/* The same table as two annotators' answers. */
static void build_cohen_pairs(struct tly_answers *a)
{
	int item = 0;
	char q[32], la[16], lb[16];

	tly_answers_init(a);
	for (int i = 0; i < 3; i++) {
		for (int j = 0; j < 3; j++) {
			for (int c = 0; c < (int)cohen_table[i * 3 + j]; c++) {
				snprintf(q, sizeof(q), "item%d", item++);
				snprintf(la, sizeof(la), "%d", i);
				snprintf(lb, sizeof(lb), "%d", j);
				add(a, q, "ann", la);
				add(a, q, "bob", lb);
			}
		}
	}
}

static void test_cohen_answers(void **state)
{
	struct tly_answers a;
	double k;
	size_t n;
	char err[256];

	(void)state;
	build_cohen_pairs(&a);
	add(&a, "lonely", "ann", "1");   /* answered by one annotator: not counted */
	finish(&a);
	assert_int_equal(tly_cohen_kappa(&a, TLY_WEIGHTS_NONE, &k, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 19);
	assert_published(k, 0.4842, 4);
	assert_int_equal(tly_cohen_kappa(&a, TLY_WEIGHTS_LINEAR, &k, &n, err, sizeof(err)), 0);
	assert_published(k, 0.4701, 4);
	tly_answers_release(&a);

	/* three annotators: refused with a clear message */
	build_cohen_pairs(&a);
	add(&a, "item0", "cid", "0");
	finish(&a);
	assert_int_equal(tly_cohen_kappa(&a, TLY_WEIGHTS_NONE, &k, &n, err, sizeof(err)), TLY_Q_EINVAL);
	assert_string_equal(err, "Cohen's kappa needs exactly two workers, found 3");
	tly_answers_release(&a);

	/* one category only: undefined */
	tly_answers_init(&a);
	add(&a, "q1", "a", "x");
	add(&a, "q1", "b", "x");
	finish(&a);
	assert_int_equal(tly_cohen_kappa(&a, TLY_WEIGHTS_NONE, &k, &n, err, sizeof(err)), TLY_Q_EUNDEF);
	tly_answers_release(&a);
}

/* ---- Fleiss ------------------------------------------------------------------------ */

/* Fleiss (1971), Table 1: 30 patients, 6 psychiatrists each, 5 diagnoses
 * (depression, personality disorder, schizophrenia, neurosis, other). */
static const uint32_t fleiss1971[30][5] = {
	{ 0, 0, 0, 6, 0 }, { 0, 3, 0, 0, 3 }, { 0, 1, 4, 0, 1 }, { 0, 0, 0, 0, 6 },
	{ 0, 3, 0, 3, 0 }, { 2, 0, 4, 0, 0 }, { 0, 0, 4, 0, 2 }, { 2, 0, 3, 1, 0 },
	{ 2, 0, 0, 4, 0 }, { 0, 0, 0, 0, 6 }, { 1, 0, 0, 5, 0 }, { 1, 1, 0, 4, 0 },
	{ 0, 3, 3, 0, 0 }, { 1, 0, 0, 5, 0 }, { 0, 2, 0, 3, 1 }, { 0, 0, 5, 0, 1 },
	{ 3, 0, 0, 1, 2 }, { 5, 1, 0, 0, 0 }, { 0, 2, 0, 4, 0 }, { 1, 0, 2, 0, 3 },
	{ 0, 0, 0, 0, 6 }, { 0, 1, 0, 5, 0 }, { 0, 2, 0, 1, 3 }, { 2, 0, 0, 4, 0 },
	{ 1, 0, 0, 4, 1 }, { 0, 5, 0, 1, 0 }, { 4, 0, 0, 0, 2 }, { 0, 2, 0, 4, 0 },
	{ 1, 0, 5, 0, 0 }, { 0, 0, 0, 0, 6 },
};

/* Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories. */
static const uint32_t wiki[10][5] = {
	{ 0, 0, 0, 0, 14 }, { 0, 2, 6, 4, 2 }, { 0, 0, 3, 5, 6 }, { 0, 3, 9, 2, 0 },
	{ 2, 2, 8, 1, 1 }, { 7, 7, 0, 0, 0 }, { 3, 2, 6, 3, 0 }, { 2, 5, 3, 2, 2 },
	{ 6, 5, 2, 1, 0 }, { 0, 2, 2, 3, 7 },
};

static void test_fleiss_tables(void **state)
{
	double k;
	char err[256];

	(void)state;
	assert_int_equal(tly_fleiss_kappa_table(&fleiss1971[0][0], 30, 5, &k, err, sizeof(err)), 0);
	assert_published(k, 0.430, 3);
	assert_int_equal(tly_fleiss_kappa_table(&wiki[0][0], 10, 5, &k, err, sizeof(err)), 0);
	assert_published(k, 0.210, 3);
}

static void test_fleiss_answers(void **state)
{
	static const char *const names[5] = { "depression", "personality", "schizophrenia",
					      "neurosis", "other" };
	struct tly_answers a;
	double k;
	size_t n;
	char err[256], q[32], w[32];

	(void)state;
	tly_answers_init(&a);
	for (int i = 0; i < 30; i++) {
		int r = 0;

		snprintf(q, sizeof(q), "patient%d", i);
		for (int c = 0; c < 5; c++) {
			for (uint32_t j = 0; j < fleiss1971[i][c]; j++) {
				/* not the same six raters for every patient */
				snprintf(w, sizeof(w), "psy%d", (i * 6 + r++) % 43);
				add(&a, q, w, names[c]);
			}
		}
	}
	add(&a, "single", "psy0", "other");   /* one answer: skipped */
	finish(&a);
	assert_int_equal(tly_fleiss_kappa(&a, &k, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 30);
	assert_published(k, 0.430, 3);
	tly_answers_release(&a);

	tly_answers_init(&a);
	add(&a, "q1", "a", "x");
	add(&a, "q1", "b", "x");
	finish(&a);
	assert_int_equal(tly_fleiss_kappa(&a, &k, &n, err, sizeof(err)), TLY_Q_EUNDEF);
	tly_answers_release(&a);
}

/* ---- Krippendorff ---------------------------------------------------------------------- */

/* Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the
 * example with 4 observers x 12 units and missing values ('.'). */
static const char kripp[4][12] = {
	{ '1', '2', '3', '3', '2', '1', '4', '1', '2', '.', '.', '.' },
	{ '1', '2', '3', '3', '2', '2', '4', '1', '2', '5', '.', '3' },
	{ '.', '3', '3', '3', '2', '3', '4', '2', '2', '5', '1', '.' },
	{ '1', '2', '3', '3', '2', '4', '4', '1', '2', '5', '1', '.' },
};

static void build_kripp(struct tly_answers *a)
{
	char q[32], w[16], l[2] = { 0, 0 };

	tly_answers_init(a);
	for (int o = 0; o < 4; o++) {
		for (int u = 0; u < 12; u++) {
			if (kripp[o][u] == '.')
				continue;
			snprintf(q, sizeof(q), "u%d", u + 1);
			snprintf(w, sizeof(w), "%c", 'A' + o);
			l[0] = kripp[o][u];
			add(a, q, w, l);
		}
	}
	finish(a);
}

static void test_krippendorff(void **state)
{
	static const double published[4] = { 0.743, 0.815, 0.849, 0.797 };
	struct tly_answers a;
	double alpha;
	size_t units, values;
	char err[256];

	(void)state;
	build_kripp(&a);
	for (int lv = TLY_LEVEL_NOMINAL; lv <= TLY_LEVEL_RATIO; lv++) {
		assert_int_equal(tly_krippendorff_alpha(&a, (enum tly_level)lv, &alpha, &units, &values,
							err, sizeof(err)), 0);
		assert_published(alpha, published[lv], 3);
		assert_int_equal(units, 11);    /* unit 12 has a single value */
		assert_int_equal(values, 40);
	}
	tly_answers_release(&a);

	/* interval needs numbers */
	tly_answers_init(&a);
	add(&a, "u", "a", "low");
	add(&a, "u", "b", "high");
	finish(&a);
	assert_int_equal(tly_krippendorff_alpha(&a, TLY_LEVEL_INTERVAL, &alpha, NULL, NULL,
						err, sizeof(err)), TLY_Q_EINVAL);
	assert_string_equal(err, "interval alpha needs numeric labels");
	assert_int_equal(tly_krippendorff_alpha(&a, TLY_LEVEL_NOMINAL, &alpha, NULL, NULL,
						err, sizeof(err)), 0);
	/* one unit, two values that differ: alpha = 1 - (n-1) * 2 / (1*1*2) = 0 with n = 2 */
	assert_true(fabs(alpha - 0.0) < 1e-12);
	tly_answers_release(&a);

	/* nothing pairable */
	tly_answers_init(&a);
	add(&a, "u1", "a", "1");
	add(&a, "u2", "a", "2");
	finish(&a);
	assert_int_equal(tly_krippendorff_alpha(&a, TLY_LEVEL_NOMINAL, &alpha, NULL, NULL,
						err, sizeof(err)), TLY_Q_EUNDEF);
	tly_answers_release(&a);
}

/* Feeds the units of a finished answer set to a stream, with its label ids. */
static int stream_alpha(const struct tly_answers *a, enum tly_level lv, const double *values,
			double *alpha, size_t *units, size_t *n_values)
{
	struct tly_alpha_stream st;
	char err[256];
	int rc;

	assert_int_equal(tly_alpha_stream_init(&st, lv, a->n_labels, values, err, sizeof(err)), 0);
	for (uint32_t q = 0; q < a->n_questions; q++)
		assert_int_equal(tly_alpha_stream_unit(&st, a->a_label + a->q_off[q],
						       a->q_off[q + 1] - a->q_off[q]), 0);
	rc = tly_alpha_stream_finish(&st, alpha, units, n_values, err, sizeof(err));
	tly_alpha_stream_release(&st);
	return rc;
}

/* Nominal and interval alpha of a, batch and streamed: equal to the last
 * bit, with the same units and values. Returns the units. */
static size_t same_alpha(const struct tly_answers *a)
{
	double batch, streamed;
	size_t u1 = 0, v1, u2, v2;
	char err[256];

	for (int lv = TLY_LEVEL_NOMINAL; lv <= TLY_LEVEL_INTERVAL; lv += 2) {
		assert_int_equal(tly_krippendorff_alpha(a, (enum tly_level)lv, &batch, &u1, &v1,
							err, sizeof(err)), 0);
		assert_int_equal(stream_alpha(a, (enum tly_level)lv, a->label_value, &streamed,
					      &u2, &v2), 0);
		assert_true(batch == streamed);
		assert_int_equal(u1, u2);
		assert_int_equal(v1, v2);
	}
	return u1;
}

static void test_alpha_stream(void **state)
{
	struct tly_answers a;
	struct tly_alpha_stream st;
	double streamed;
	size_t u1, u2, v2;
	uint32_t bad[2] = { 0, 7 };
	char err[256], q[32], w[16], l[16];
	unsigned seed = 12345;

	(void)state;
	/* the published example: the same figures, to the last bit */
	build_kripp(&a);
	assert_int_equal(same_alpha(&a), 11);
	tly_answers_release(&a);

	/* 3,000 random units of 1 to 6 values over 12 labels */
	tly_answers_init(&a);
	for (int u = 0; u < 3000; u++) {
		int m = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 6;
		for (int o = 0; o < m; o++) {
			int v = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 12;
			snprintf(q, sizeof(q), "u%d", u);
			snprintf(w, sizeof(w), "w%d", o);
			snprintf(l, sizeof(l), "%d", v + (u % 3 == 0 ? 0 : (o % 2))); /* some agreement */
			add(&a, q, w, l);
		}
	}
	finish(&a);
	u1 = same_alpha(&a);
	assert_true(u1 > 2000 && u1 < 3000); /* the units of one value are not pairable */
	tly_answers_release(&a);

	/* what it refuses */
	assert_int_equal(tly_alpha_stream_init(&st, TLY_LEVEL_ORDINAL, 4, NULL, err, sizeof(err)),
			 TLY_Q_EINVAL);
	assert_string_equal(err, "a streamed alpha is nominal or interval, 1 to 65536 labels");
	assert_int_equal(tly_alpha_stream_init(&st, TLY_LEVEL_NOMINAL, 4, NULL, err, sizeof(err)), 0);
	assert_int_equal(tly_alpha_stream_unit(&st, bad, 2), TLY_Q_EINVAL);
	assert_int_equal(tly_alpha_stream_unit(&st, bad, 1), TLY_Q_OK); /* one value: skipped */
	assert_int_equal(tly_alpha_stream_finish(&st, &streamed, &u2, &v2, err, sizeof(err)),
			 TLY_Q_EUNDEF);
	assert_int_equal(u2, 0);
	bad[1] = 0;
	assert_int_equal(tly_alpha_stream_unit(&st, bad, 2), TLY_Q_OK); /* both the same label */
	assert_int_equal(tly_alpha_stream_finish(&st, &streamed, &u2, &v2, err, sizeof(err)),
			 TLY_Q_EUNDEF);
	assert_string_equal(err, "alpha undefined: no variation in the values");
	assert_int_equal(u2, 1);
	assert_int_equal(v2, 2);
	tly_alpha_stream_release(&st);
}

static void test_names(void **state)
{
	(void)state;
	assert_int_equal(tly_weights_parse("quadratic"), TLY_WEIGHTS_QUADRATIC);
	assert_int_equal(tly_weights_parse("cubic"), -1);
	assert_int_equal(tly_level_parse("ratio"), TLY_LEVEL_RATIO);
	assert_string_equal(tly_level_name(TLY_LEVEL_ORDINAL), "ordinal");
	assert_string_equal(tly_weights_name(TLY_WEIGHTS_LINEAR), "linear");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cohen_table),
		cmocka_unit_test(test_cohen_answers),
		cmocka_unit_test(test_fleiss_tables),
		cmocka_unit_test(test_fleiss_answers),
		cmocka_unit_test(test_krippendorff),
		cmocka_unit_test(test_alpha_stream),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
