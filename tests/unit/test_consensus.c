/*
 * test_consensus.c - the server's between-fit formulas (quality/consensus.h):
 * the Wilson score interval against hand-computed oracles (to 4 decimals),
 * and the one-coin posterior against hand computations, its tie rule, its
 * clipping of accuracies, its handling of out-of-range labels and of long
 * answer lists (no underflow, no NaN).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "quality/consensus.h"

/* x rounded to 4 decimals equals the oracle. */
static void assert_4dp(double x, double oracle)
{
	if (llround(x * 1e4) != llround(oracle * 1e4))
		fail_msg("%.6f does not round to %.4f", x, oracle);
}

static void assert_near(double x, double y, double eps)
{
	if (!(fabs(x - y) <= eps))
		fail_msg("%.17g is not within %g of %.17g", x, eps, y);
}

static void assert_distribution(const double *post, uint32_t k)
{
	double sum = 0;

	for (uint32_t c = 0; c < k; c++) {
		if (!isfinite(post[c]) || post[c] < 0.0 || post[c] > 1.0)
			fail_msg("post[%u] = %g is not a probability", c, post[c]);
		sum += post[c];
	}
	assert_near(sum, 1.0, 1e-12);
}

/* ---- Wilson ---- */

/* The confidence as stored and compared: one vote at the prior accuracy 0.7
 * over three labels is 0.7 exactly, whatever the logs and exp left in its
 * last bits; a value moves by at most half of 1e-12. */
static void test_confidence_round(void **state)
{
	uint32_t label = 0;
	double acc = 0.7, post[3];
	uint64_t x = 88172645463325252ULL;

	(void)state;
	assert_int_equal(tly_onecoin_posterior(3, 1, &label, &acc, NULL, post), 0);
	assert_true(fabs(post[0] - 0.7) < 1e-15);
	assert_true(tly_confidence_round(post[0]) == 0.7);
	assert_true(tly_confidence_round(1.0 / 3) == 0.333333333333);
	assert_true(tly_confidence_round(0.49 / 0.535) == 0.915887850467);
	assert_true(tly_confidence_round(1.0) == 1.0 && tly_confidence_round(0.0) == 0.0);
	for (int i = 0; i < 100000; i++) {
		double p;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p = (double)(x >> 11) / 9007199254740992.0;
		assert_true(fabs(tly_confidence_round(p) - p) <= 5.001e-13);
	}
}

static void test_wilson_8_of_10(void **state)
{
	double lo, hi;

	(void)state;
	/* p = .8, z^2 = 3.8416: centre (.8 + .19208) / 1.38416, half-width
	 * 1.96 sqrt(.016 + .0096040) / 1.38416 */
	tly_wilson(8, 10, 1.96, &lo, &hi);
	assert_4dp(lo, 0.4902);
	assert_4dp(hi, 0.9433);
	assert_true(lo < 0.8 && 0.8 < hi);
}

static void test_wilson_0_of_10(void **state)
{
	double lo, hi;

	(void)state;
	tly_wilson(0, 10, 1.96, &lo, &hi);
	assert_near(lo, 0.0, 1e-12);
	assert_true(lo >= 0.0);
	assert_4dp(hi, 0.2775);
}

static void test_wilson_10_of_10(void **state)
{
	double lo, hi;

	(void)state;
	tly_wilson(10, 10, 1.96, &lo, &hi);
	assert_4dp(lo, 0.7225);
	assert_near(hi, 1.0, 1e-12);
	assert_true(hi <= 1.0);
}

static void test_wilson_symmetry(void **state)
{
	double lo1, hi1, lo2, hi2;

	(void)state;
	/* the interval of x/n mirrors that of (n-x)/n */
	tly_wilson(3, 17, 1.96, &lo1, &hi1);
	tly_wilson(14, 17, 1.96, &lo2, &hi2);
	assert_near(lo1, 1.0 - hi2, 1e-12);
	assert_near(hi1, 1.0 - lo2, 1e-12);
}

static void test_wilson_n0(void **state)
{
	double lo = -1, hi = -1;

	(void)state;
	tly_wilson(0, 0, 1.96, &lo, &hi);
	assert_true(lo == 0.0);
	assert_true(hi == 1.0);
}

/* ---- one-coin posterior ---- */

static void test_onecoin_two_disagree(void **state)
{
	const uint32_t labels[2] = { 0, 1 };
	const double acc[2] = { 0.9, 0.6 };
	double post[2];

	(void)state;
	/* P(0) ∝ .9 * .4, P(1) ∝ .1 * .6 */
	assert_int_equal(tly_onecoin_posterior(2, 2, labels, acc, NULL, post), 0);
	assert_near(post[0], 0.9 * 0.4 / (0.9 * 0.4 + 0.1 * 0.6), 1e-12);
	assert_near(post[0], 0.857142857142857, 1e-12);
	assert_near(post[1], 1.0 / 7.0, 1e-12);
	assert_distribution(post, 2);

	/* the same with the labels swapped: the 0.9 worker still wins */
	const uint32_t swapped[2] = { 1, 0 };

	assert_int_equal(tly_onecoin_posterior(2, 2, swapped, acc, NULL, post), 1);
	assert_near(post[1], 6.0 / 7.0, 1e-12);
}

static void test_onecoin_errors_spread(void **state)
{
	const uint32_t labels[1] = { 2 };
	const double acc[1] = { 0.7 };
	double post[4];

	(void)state;
	/* k = 4: the right label .7, each other (1 - .7) / 3 */
	assert_int_equal(tly_onecoin_posterior(4, 1, labels, acc, NULL, post), 2);
	assert_near(post[2], 0.7, 1e-12);
	assert_near(post[0], 0.1, 1e-12);
	assert_near(post[1], 0.1, 1e-12);
	assert_near(post[3], 0.1, 1e-12);
}

static void test_onecoin_no_answers_uniform(void **state)
{
	double post[3];

	(void)state;
	assert_int_equal(tly_onecoin_posterior(3, 0, NULL, NULL, NULL, post), 0);
	for (int c = 0; c < 3; c++)
		assert_near(post[c], 1.0 / 3.0, 1e-12);
}

static void test_onecoin_prior(void **state)
{
	const double prior[2] = { 0.2, 0.8 };
	const uint32_t labels[1] = { 0 };
	const double acc[1] = { 0.7 };
	double post[2];

	(void)state;
	/* no answers: the prior itself */
	assert_int_equal(tly_onecoin_posterior(2, 0, NULL, NULL, prior, post), 1);
	assert_near(post[0], 0.2, 1e-12);
	assert_near(post[1], 0.8, 1e-12);
	/* one answer for label 0 at .7: .2*.7 / (.2*.7 + .8*.3) = .14 / .38 */
	assert_int_equal(tly_onecoin_posterior(2, 1, labels, acc, prior, post), 1);
	assert_near(post[0], 0.14 / 0.38, 1e-12);
	assert_near(post[1], 0.24 / 0.38, 1e-12);
	/* k = 3, unnormalised prior shape kept: .5 .3 .2, answer 2 at .6:
	 * .5*.2 : .3*.2 : .2*.6 = .10 : .06 : .12 */
	const double prior3[3] = { 0.5, 0.3, 0.2 };
	const uint32_t l3[1] = { 2 };
	const double a3[1] = { 0.6 };
	double p3[3];

	assert_int_equal(tly_onecoin_posterior(3, 1, l3, a3, prior3, p3), 2);
	assert_near(p3[0], 0.10 / 0.28, 1e-12);
	assert_near(p3[1], 0.06 / 0.28, 1e-12);
	assert_near(p3[2], 0.12 / 0.28, 1e-12);
}

static void test_onecoin_ties_smallest(void **state)
{
	const uint32_t labels[2] = { 2, 1 };
	const double acc[2] = { 0.8, 0.8 };
	const double prior[2] = { 0.5, 0.5 };
	const uint32_t l2[2] = { 1, 0 };
	double post[3];

	(void)state;
	/* labels 1 and 2 tie, label 0 is behind */
	assert_int_equal(tly_onecoin_posterior(3, 2, labels, acc, NULL, post), 1);
	assert_near(post[1], post[2], 1e-15);
	assert_true(post[0] < post[1]);
	/* k = 2, equal accuracies, equal prior: 0 */
	assert_int_equal(tly_onecoin_posterior(2, 2, l2, acc, prior, post), 0);
	assert_near(post[0], 0.5, 1e-15);
	assert_near(post[1], 0.5, 1e-15);
}

static void test_onecoin_clipping(void **state)
{
	const uint32_t l0[1] = { 0 };
	const double one[1] = { 1.0 }, zero[1] = { 0.0 };
	const double over[1] = { 1.5 }, under[1] = { -0.3 };
	double post[2];

	(void)state;
	/* accuracy 1 is clipped to TLY_ACC_MAX: one worker never makes an item certain */
	assert_int_equal(tly_onecoin_posterior(2, 1, l0, one, NULL, post), 0);
	assert_near(post[0], TLY_ACC_MAX, 1e-12);
	assert_distribution(post, 2);
	assert_int_equal(tly_onecoin_posterior(2, 1, l0, over, NULL, post), 0);
	assert_near(post[0], TLY_ACC_MAX, 1e-12);
	/* accuracy 0 is clipped to TLY_ACC_MIN: the answer points away from its label */
	assert_int_equal(tly_onecoin_posterior(2, 1, l0, zero, NULL, post), 1);
	assert_near(post[0], TLY_ACC_MIN, 1e-12);
	assert_near(post[1], 1.0 - TLY_ACC_MIN, 1e-12);
	assert_distribution(post, 2);
	assert_int_equal(tly_onecoin_posterior(2, 1, l0, under, NULL, post), 1);
	assert_near(post[0], TLY_ACC_MIN, 1e-12);
	/* two perfect workers disagreeing: a finite tie, not NaN */
	const uint32_t l01[2] = { 0, 1 };
	const double ones[2] = { 1.0, 1.0 };

	assert_int_equal(tly_onecoin_posterior(2, 2, l01, ones, NULL, post), 0);
	assert_near(post[0], 0.5, 1e-12);
	assert_near(post[1], 0.5, 1e-12);
}

static void test_onecoin_nan_accuracy(void **state)
{
	const uint32_t l0[1] = { 0 };
	double nan_acc[1];
	double post[2];

	(void)state;
	nan_acc[0] = NAN;
	/* documented in consensus.c as clipped to the minimum */
	tly_onecoin_posterior(2, 1, l0, nan_acc, NULL, post);
	assert_distribution(post, 2);
	assert_near(post[0], TLY_ACC_MIN, 1e-12);
}

static void test_onecoin_out_of_range_labels(void **state)
{
	const uint32_t only_bad[2] = { 2, 7 };
	const uint32_t mixed[3] = { 5, 0, UINT32_MAX };
	const double acc[3] = { 0.9, 0.8, 0.95 };
	const uint32_t good[1] = { 0 };
	const double gacc[1] = { 0.8 };
	double post[2], ref[2];

	(void)state;
	assert_int_equal(tly_onecoin_posterior(2, 2, only_bad, acc, NULL, post), 0);
	assert_near(post[0], 0.5, 1e-15);
	assert_near(post[1], 0.5, 1e-15);
	/* ignored answers change nothing: same as the valid answer alone */
	assert_int_equal(tly_onecoin_posterior(2, 3, mixed, acc, NULL, post), 0);
	tly_onecoin_posterior(2, 1, good, gacc, NULL, ref);
	assert_near(post[0], ref[0], 1e-15);
	assert_near(post[0], 0.8, 1e-12);
}

static void test_onecoin_many_answers(void **state)
{
	enum { N = 1000 };
	static uint32_t labels[N + 1];
	static double acc[N + 1];
	double post[4];

	(void)state;
	for (int i = 0; i < N; i++) {
		labels[i] = 3;
		acc[i] = 0.9;
	}
	/* 1000 agreeing answers: (0.1/3)^1000 underflows in linear space */
	assert_int_equal(tly_onecoin_posterior(4, N, labels, acc, NULL, post), 3);
	assert_distribution(post, 4);
	assert_true(post[3] == 1.0);
	assert_true(post[0] >= 0.0 && post[0] < 1e-300);
	/* 1000 at the maximum against 1 dissent: still finite */
	for (int i = 0; i < N; i++)
		acc[i] = 1.0;
	labels[N] = 0;
	acc[N] = 1.0;
	assert_int_equal(tly_onecoin_posterior(4, N + 1, labels, acc, NULL, post), 3);
	assert_distribution(post, 4);
	/* 500 against 500 at equal accuracy: a tie up to rounding (the two log
	 * sums add the same terms in different orders, so which of 1 and 2 wins
	 * is not asserted; exact ties are in test_onecoin_ties_smallest) */
	for (int i = 0; i < N; i++) {
		labels[i] = i % 2 ? 1u : 2u;
		acc[i] = 0.9;
	}
	uint32_t best = tly_onecoin_posterior(4, N, labels, acc, NULL, post);

	assert_true(best == 1 || best == 2);
	assert_distribution(post, 4);
	assert_near(post[1], 0.5, 1e-9);
	assert_near(post[2], 0.5, 1e-9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wilson_8_of_10),
		cmocka_unit_test(test_wilson_0_of_10),
		cmocka_unit_test(test_wilson_10_of_10),
		cmocka_unit_test(test_wilson_symmetry),
		cmocka_unit_test(test_wilson_n0),
		cmocka_unit_test(test_onecoin_two_disagree),
		cmocka_unit_test(test_onecoin_errors_spread),
		cmocka_unit_test(test_onecoin_no_answers_uniform),
		cmocka_unit_test(test_onecoin_prior),
		cmocka_unit_test(test_onecoin_ties_smallest),
		cmocka_unit_test(test_onecoin_clipping),
		cmocka_unit_test(test_onecoin_nan_accuracy),
		cmocka_unit_test(test_onecoin_out_of_range_labels),
		cmocka_unit_test(test_onecoin_many_answers),
		cmocka_unit_test(test_confidence_round),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
