/*
 * test_quality_structured.c - spans, boxes, ratings, rankings.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "quality/structured.h"

#define NEAR(x, y) assert_true(fabs((x) - (y)) < 1e-12)

static void test_spans(void **state)
{
	/* A: [0,5) PER, [10,20) ORG, [30,35) PER;  B: [0,5) PER, [12,18) ORG, [40,45) LOC */
	static const struct tly_span a[] = { { 0, 5, 1 }, { 10, 20, 2 }, { 30, 35, 1 } };
	static const struct tly_span b[] = { { 0, 5, 1 }, { 12, 18, 2 }, { 40, 45, 3 } };
	static const struct tly_span dup[] = { { 0, 5, 1 }, { 0, 5, 1 } };
	static const struct tly_span bad[] = { { 5, 5, 1 } };
	double f1;

	(void)state;
	assert_int_equal(tly_span_f1_exact(a, 3, b, 3, &f1), 0);
	NEAR(f1, 2.0 / 6.0);              /* one exact match */
	assert_int_equal(tly_span_f1_overlap(a, 3, b, 3, &f1), 0);
	NEAR(f1, 2.0 / 3.0);              /* P = R = 2/3 */
	/* a label mismatch does not overlap */
	static const struct tly_span c[] = { { 0, 5, 2 } };
	assert_int_equal(tly_span_f1_overlap(a, 1, c, 1, &f1), 0);
	NEAR(f1, 0.0);
	/* multisets: a repeated span matches once */
	assert_int_equal(tly_span_f1_exact(dup, 2, a, 1, &f1), 0);
	NEAR(f1, 2.0 / 3.0);
	assert_int_equal(tly_span_f1_exact(NULL, 0, NULL, 0, &f1), 0);
	NEAR(f1, 1.0);
	assert_int_equal(tly_span_f1_overlap(a, 3, NULL, 0, &f1), 0);
	NEAR(f1, 0.0);
	assert_int_equal(tly_span_f1_exact(bad, 1, a, 1, &f1), TLY_Q_EINVAL);
}

static void test_boxes_iou_match(void **state)
{
	static const struct tly_box a[] = {
		{ 0, 0, 10, 10, 1, 0, 0 },
		{ 20, 20, 30, 30, 1, 0, 0 },
		{ 50, 50, 60, 60, 1, 1, 0 },
	};
	static const struct tly_box b[] = {
		{ 5, 0, 15, 10, 1, 0, 1 },       /* IoU with a[0] = 50/150 */
		{ 21, 21, 31, 31, 1, 0, 1 },     /* IoU with a[1] = 81/119 */
		{ 50, 50, 60, 60, 1, 0, 1 },     /* same place as a[2], other label */
	};
	struct tly_box_match m[3];
	size_t n;

	(void)state;
	NEAR(tly_box_iou(&a[0], &b[0]), 50.0 / 150.0);
	NEAR(tly_box_iou(&a[1], &b[1]), 81.0 / 119.0);
	NEAR(tly_box_iou(&a[0], &a[1]), 0.0);
	NEAR(tly_box_iou(&a[2], &a[2]), 1.0);
	assert_int_equal(tly_box_match(a, 3, b, 3, 0.3, m, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(m[0].a, 1);   /* highest IoU first */
	assert_int_equal(m[0].b, 1);
	assert_int_equal(m[1].a, 0);
	assert_int_equal(m[1].b, 0);
	assert_int_equal(tly_box_match(a, 3, b, 3, 0.5, m, &n), 0);
	assert_int_equal(n, 1);
	/* greedy: one box of B wanted by two boxes of A goes to the better one */
	static const struct tly_box two[] = { { 0, 0, 10, 10, 1, 0, 0 }, { 1, 0, 11, 10, 1, 0, 0 } };
	static const struct tly_box one[] = { { 1, 0, 11, 10, 1, 0, 1 } };
	assert_int_equal(tly_box_match(two, 2, one, 1, 0.5, m, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].a, 1);
	NEAR(m[0].iou, 1.0);
	static const struct tly_box inverted[] = { { 10, 0, 0, 10, 1, 0, 0 } };
	assert_int_equal(tly_box_match(inverted, 1, one, 1, 0.5, m, &n), TLY_Q_EINVAL);
}

static void test_boxes_consensus(void **state)
{
	/* three annotators draw one object; two of them also draw a second one;
	 * annotator 2 draws a stray box */
	static const struct tly_box in[] = {
		{ 0, 0, 10, 10, 1.0, 0, 0 },
		{ 2, 0, 12, 10, 1.0, 0, 1 },
		{ 1, 1, 11, 11, 0.5, 0, 2 },
		{ 40, 40, 50, 50, 0.8, 0, 0 },
		{ 40, 42, 50, 52, 0.8, 0, 1 },
		{ 80, 80, 90, 90, 0.9, 0, 2 },
	};
	struct tly_box out[6];
	size_t n;

	(void)state;
	assert_int_equal(tly_box_consensus(in, 6, 3, 0.5, 2, out, &n), 0);
	assert_int_equal(n, 2);
	/* cluster 1: weights 1, 1, 0.5 */
	NEAR(out[0].x0, (0 + 2 + 0.5) / 2.5);
	NEAR(out[0].y0, (0 + 0 + 0.5) / 2.5);
	NEAR(out[0].x1, (10 + 12 + 5.5) / 2.5);
	NEAR(out[0].conf, 2.5 / 3.0);
	assert_int_equal(out[0].annotator, 3);   /* member count */
	NEAR(out[1].y0, 1.0 * 41);
	NEAR(out[1].conf, 1.6 / 3.0);
	assert_int_equal(out[1].annotator, 2);
	/* min_votes 1 keeps the stray box too */
	assert_int_equal(tly_box_consensus(in, 6, 3, 0.5, 1, out, &n), 0);
	assert_int_equal(n, 3);
	/* one annotator cannot fill a cluster twice */
	static const struct tly_box same[] = { { 0, 0, 10, 10, 1, 0, 0 }, { 0, 0, 10, 10, 1, 0, 0 } };
	assert_int_equal(tly_box_consensus(same, 2, 1, 0.5, 1, out, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(tly_box_consensus(same, 2, 0, 0.5, 1, out, &n), TLY_Q_EINVAL);
}

static void test_ratings(void **state)
{
	static const double v[] = { 2, 4, 4, 4, 5, 5, 7, 9 };
	struct tly_rating_stats s;

	(void)state;
	assert_int_equal(tly_rating_stats(v, 8, &s), 0);
	assert_int_equal(s.n, 8);
	NEAR(s.mean, 5.0);
	NEAR(s.sd, sqrt(32.0 / 7.0));
	NEAR(s.min, 2.0);
	NEAR(s.max, 9.0);
	assert_int_equal(tly_rating_stats(v, 1, &s), 0);
	NEAR(s.sd, 0.0);
	assert_int_equal(tly_rating_stats(v, 0, &s), TLY_Q_EINVAL);
	double bad[2] = { 1, NAN };
	assert_int_equal(tly_rating_stats(bad, 2, &s), TLY_Q_EINVAL);
}

static void test_rankings(void **state)
{
	/* 3 annotators x 4 items, rank[r*4 + item] (0 = best) */
	static const uint32_t rank[12] = {
		0, 1, 2, 3,   /* a > b > c > d */
		0, 2, 1, 3,   /* a > c > b > d */
		1, 0, 2, 3,   /* b > a > c > d */
	};
	static const uint32_t bad[4] = { 0, 0, 1, 2 };
	uint32_t order[4];
	double score[4], agr;

	(void)state;
	assert_int_equal(tly_ranking_borda(rank, 3, 4, order, score), 0);
	NEAR(score[0], 3 + 3 + 2);
	NEAR(score[1], 2 + 1 + 3);
	NEAR(score[2], 1 + 2 + 1);
	NEAR(score[3], 0);
	assert_int_equal(order[0], 0);
	assert_int_equal(order[1], 1);
	assert_int_equal(order[2], 2);
	assert_int_equal(order[3], 3);
	/* 6 item pairs x 3 annotator pairs = 18; (a,b) and (b,c) split 2-1 and
	 * give 1 agreeing annotator pair each, the other 4 item pairs 3 each */
	assert_int_equal(tly_ranking_pairwise_agreement(rank, 3, 4, &agr), 0);
	NEAR(agr, (1 + 1 + 4 * 3) / 18.0);
	assert_int_equal(tly_ranking_pairwise_agreement(rank, 1, 4, &agr), TLY_Q_EINVAL);
	assert_int_equal(tly_ranking_borda(bad, 1, 4, order, NULL), TLY_Q_EINVAL);
	/* ties in Borda go to the smaller item index */
	static const uint32_t tie[4] = { 0, 1, 1, 0 };
	assert_int_equal(tly_ranking_borda(tie, 2, 2, order, NULL), 0);
	assert_int_equal(order[0], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spans),
		cmocka_unit_test(test_boxes_iou_match),
		cmocka_unit_test(test_boxes_consensus),
		cmocka_unit_test(test_ratings),
		cmocka_unit_test(test_rankings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
