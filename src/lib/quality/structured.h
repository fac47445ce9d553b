/*
 * structured.h - agreement and consensus for structured annotations.
 *
 * Spans:    half-open [start, end) with a label id. Exact F1 counts one-to-one
 *           matches of identical spans (same start, end, label); overlap F1
 *           counts a span of A as matched when some span of B with the same
 *           label intersects it (and vice versa for recall). Both empty: F1 = 1.
 * Boxes:    axis-aligned [x0, x1] x [y0, y1] with a label and a confidence.
 *           Matching is greedy by IoU: all same-label pairs with IoU >= thr,
 *           highest IoU first (ties: lower index in A, then in B), each box
 *           used once. Consensus fuses boxes of several annotators: boxes in
 *           order of confidence (ties: input order) join the cluster of the
 *           same label whose fused box they overlap most (IoU >= thr) and that
 *           has no box of their annotator yet, else start a cluster; a fused
 *           box is the confidence-weighted mean of its members' corners, with
 *           confidence = sum of member confidences / n_annotators (so a box
 *           everyone drew with confidence 1 scores 1). Clusters with fewer than
 *           min_votes members are dropped.
 * Ratings:  count, mean, sample standard deviation (n-1), min, max.
 * Rankings: m complete rankings of n items, rank[r*n + i] = position of item
 *           i for annotator r (0 = best, a permutation). Pairwise agreement is
 *           the share of (annotator pair, item pair) cases where both put the
 *           two items in the same order (= (1 + mean Kendall tau) / 2).
 *           Borda consensus: item score = sum of (n - 1 - rank); order by
 *           score, ties to the smaller item index.
 *
 * Ownership: inputs are read only; outputs go to caller-provided arrays of
 * the sizes stated. Return TLY_Q_OK or TLY_Q_EINVAL / TLY_Q_ENOMEM.
 */
#ifndef TLY_QUALITY_STRUCTURED_H
#define TLY_QUALITY_STRUCTURED_H

#include <stddef.h>
#include <stdint.h>
#include "quality/qerror.h"

struct tly_span {
	int64_t start, end;   /* [start, end), start < end */
	uint32_t label;
};

struct tly_box {
	double x0, y0, x1, y1;   /* x0 < x1, y0 < y1 */
	double conf;             /* > 0; use 1 when annotators give none */
	uint32_t label;
	uint32_t annotator;      /* used by consensus only */
};

struct tly_box_match {
	size_t a, b;     /* indices into the two lists */
	double iou;
};

struct tly_rating_stats {
	size_t n;
	double mean, sd, min, max;
};

int tly_span_f1_exact(const struct tly_span *a, size_t na, const struct tly_span *b,
		      size_t nb, double *f1);
int tly_span_f1_overlap(const struct tly_span *a, size_t na, const struct tly_span *b,
			size_t nb, double *f1);

double tly_box_iou(const struct tly_box *a, const struct tly_box *b);

/* Greedy matching; out must hold min(na, nb) entries; *n_out gets the count. */
int tly_box_match(const struct tly_box *a, size_t na, const struct tly_box *b, size_t nb,
		  double thr, struct tly_box_match *out, size_t *n_out);

/* Consensus of n boxes from n_annotators annotators; out must hold n boxes
 * (annotator field of each output = number of member boxes); *n_out gets the count. */
int tly_box_consensus(const struct tly_box *boxes, size_t n, uint32_t n_annotators,
		      double thr, uint32_t min_votes, struct tly_box *out, size_t *n_out);

int tly_rating_stats(const double *v, size_t n, struct tly_rating_stats *out);

/* rank is m x n; *agreement in [0, 1] (needs m >= 2, n >= 2). */
int tly_ranking_pairwise_agreement(const uint32_t *rank, size_t m, size_t n, double *agreement);

/* order gets the n item indices, best first; score (optional, n) the Borda scores. */
int tly_ranking_borda(const uint32_t *rank, size_t m, size_t n, uint32_t *order, double *score);

#endif
