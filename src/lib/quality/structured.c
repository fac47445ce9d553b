/*
 * structured.c - spans, boxes, ratings, rankings (see structured.h).
 */
#include "quality/structured.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- spans ------------------------------------------------------------------ */

static int spans_valid(const struct tly_span *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i].start >= s[i].end)
			return 0;
	return 1;
}

static int cmp_span(const void *pa, const void *pb)
{
	const struct tly_span *x = pa, *y = pb;

	if (x->label != y->label)
		return x->label < y->label ? -1 : 1;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

int tly_span_f1_exact(const struct tly_span *a, size_t na, const struct tly_span *b,
		      size_t nb, double *f1)
{
	struct tly_span *sa = NULL, *sb = NULL;
	size_t i = 0, j = 0, match = 0;

	if (!spans_valid(a, na) || !spans_valid(b, nb))
		return TLY_Q_EINVAL;
	if (na + nb == 0) {
		*f1 = 1.0;
		return TLY_Q_OK;
	}
	sa = malloc((na + 1) * sizeof(*sa));
	sb = malloc((nb + 1) * sizeof(*sb));
	if (sa == NULL || sb == NULL) {
		free(sa);
		free(sb);
		return TLY_Q_ENOMEM;
	}
	if (na)
		memcpy(sa, a, na * sizeof(*sa));
	if (nb)
		memcpy(sb, b, nb * sizeof(*sb));
	qsort(sa, na, sizeof(*sa), cmp_span);
	qsort(sb, nb, sizeof(*sb), cmp_span);
	while (i < na && j < nb) {   /* multiset intersection of sorted lists */
		int c = cmp_span(&sa[i], &sb[j]);

		if (c == 0) {
			match++;
			i++;
			j++;
		} else if (c < 0) {
			i++;
		} else {
			j++;
		}
	}
	*f1 = 2.0 * (double)match / (double)(na + nb);
	free(sa);
	free(sb);
	return TLY_Q_OK;
}

static size_t count_overlapped(const struct tly_span *x, size_t nx,
			       const struct tly_span *y, size_t ny)
{
	size_t hit = 0;

	for (size_t i = 0; i < nx; i++) {
		for (size_t j = 0; j < ny; j++) {
			if (x[i].label == y[j].label && x[i].start < y[j].end &&
			    y[j].start < x[i].end) {
				hit++;
				break;
			}
		}
	}
	return hit;
}

int tly_span_f1_overlap(const struct tly_span *a, size_t na, const struct tly_span *b,
			size_t nb, double *f1)
{
	double p, r;

	if (!spans_valid(a, na) || !spans_valid(b, nb))
		return TLY_Q_EINVAL;
	if (na + nb == 0) {
		*f1 = 1.0;
		return TLY_Q_OK;
	}
	if (na == 0 || nb == 0) {
		*f1 = 0.0;
		return TLY_Q_OK;
	}
	p = (double)count_overlapped(a, na, b, nb) / (double)na;
	r = (double)count_overlapped(b, nb, a, na) / (double)nb;
	*f1 = p + r > 0 ? 2.0 * p * r / (p + r) : 0.0;
	return TLY_Q_OK;
}

/* ---- boxes ------------------------------------------------------------------------ */

static int box_valid(const struct tly_box *b)
{
	return isfinite(b->x0) && isfinite(b->y0) && isfinite(b->x1) && isfinite(b->y1) &&
	       b->x0 < b->x1 && b->y0 < b->y1 && isfinite(b->conf) && b->conf > 0;
}

double tly_box_iou(const struct tly_box *a, const struct tly_box *b)
{
	double ix = fmin(a->x1, b->x1) - fmax(a->x0, b->x0);
	double iy = fmin(a->y1, b->y1) - fmax(a->y0, b->y0);
	double inter, uni;

	if (ix <= 0 || iy <= 0)
		return 0.0;
	inter = ix * iy;
	uni = (a->x1 - a->x0) * (a->y1 - a->y0) + (b->x1 - b->x0) * (b->y1 - b->y0) - inter;
	return uni > 0 ? inter / uni : 0.0;
}

static int cmp_match(const void *pa, const void *pb)
{
	const struct tly_box_match *x = pa, *y = pb;

	if (x->iou != y->iou)
		return x->iou > y->iou ? -1 : 1;
	if (x->a != y->a)
		return x->a < y->a ? -1 : 1;
	return (x->b > y->b) - (x->b < y->b);
}

int tly_box_match(const struct tly_box *a, size_t na, const struct tly_box *b, size_t nb,
		  double thr, struct tly_box_match *out, size_t *n_out)
{
	struct tly_box_match *cand = NULL;
	unsigned char *used_a = NULL, *used_b = NULL;
	size_t nc = 0, n = 0;
	int rc = TLY_Q_ENOMEM;

	*n_out = 0;
	for (size_t i = 0; i < na; i++)
		if (!box_valid(&a[i]))
			return TLY_Q_EINVAL;
	for (size_t j = 0; j < nb; j++)
		if (!box_valid(&b[j]))
			return TLY_Q_EINVAL;
	if (!(thr > 0.0) || thr > 1.0 || (nb && na > SIZE_MAX / sizeof(*cand) / nb))
		return TLY_Q_EINVAL;
	cand = malloc((na * nb + 1) * sizeof(*cand));
	used_a = calloc(na + 1, 1);
	used_b = calloc(nb + 1, 1);
	if (cand == NULL || used_a == NULL || used_b == NULL)
		goto out;
	for (size_t i = 0; i < na; i++) {
		for (size_t j = 0; j < nb; j++) {
			double iou;

			if (a[i].label != b[j].label)
				continue;
			iou = tly_box_iou(&a[i], &b[j]);
			if (iou >= thr) {
				cand[nc].a = i;
				cand[nc].b = j;
				cand[nc].iou = iou;
				nc++;
			}
		}
	}
	qsort(cand, nc, sizeof(*cand), cmp_match);
	for (size_t c = 0; c < nc; c++) {
		if (used_a[cand[c].a] || used_b[cand[c].b])
			continue;
		used_a[cand[c].a] = used_b[cand[c].b] = 1;
		out[n++] = cand[c];
	}
	*n_out = n;
	rc = TLY_Q_OK;
out:
	free(cand);
	free(used_a);
	free(used_b);
	return rc;
}

struct cluster {
	double sx0, sy0, sx1, sy1, sw;   /* confidence-weighted sums */
	struct tly_box fused;
	uint32_t members;
	size_t first;                    /* index of the first member (for stable output) */
};


struct order_rec {
	double conf;
	size_t i;
};

static int cmp_order(const void *pa, const void *pb)
{
	const struct order_rec *x = pa, *y = pb;

	if (x->conf != y->conf)
		return x->conf > y->conf ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

int tly_box_consensus(const struct tly_box *boxes, size_t n, uint32_t n_annotators,
		      double thr, uint32_t min_votes, struct tly_box *out, size_t *n_out)
{
	struct order_rec *ord = NULL;
	struct cluster *cl = NULL;
	unsigned char *has = NULL;   /* n clusters x n_annotators membership */
	size_t ncl = 0, nout = 0;
	int rc = TLY_Q_ENOMEM;

	*n_out = 0;
	if (n_annotators == 0 || !(thr > 0.0) || thr > 1.0 ||
	    (n && n_annotators > SIZE_MAX / n))
		return TLY_Q_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!box_valid(&boxes[i]) || boxes[i].annotator >= n_annotators)
			return TLY_Q_EINVAL;
	ord = malloc((n + 1) * sizeof(*ord));
	cl = calloc(n + 1, sizeof(*cl));
	has = calloc(n * n_annotators + 1, 1);
	if (ord == NULL || cl == NULL || has == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		ord[i].conf = boxes[i].conf;
		ord[i].i = i;
	}
	qsort(ord, n, sizeof(*ord), cmp_order);
	for (size_t r = 0; r < n; r++) {
		const struct tly_box *b = &boxes[ord[r].i];
		size_t best = SIZE_MAX;
		double best_iou = 0.0;

		for (size_t c = 0; c < ncl; c++) {
			double iou;

			if (cl[c].fused.label != b->label || has[c * n_annotators + b->annotator])
				continue;
			iou = tly_box_iou(&cl[c].fused, b);
			if (iou >= thr && iou > best_iou) {
				best = c;
				best_iou = iou;
			}
		}
		if (best == SIZE_MAX) {
			best = ncl++;
			cl[best].fused.label = b->label;
			cl[best].first = ord[r].i;
		}
		struct cluster *k = &cl[best];

		has[best * n_annotators + b->annotator] = 1;
		k->sx0 += b->conf * b->x0;
		k->sy0 += b->conf * b->y0;
		k->sx1 += b->conf * b->x1;
		k->sy1 += b->conf * b->y1;
		k->sw += b->conf;
		k->members++;
		k->fused.x0 = k->sx0 / k->sw;
		k->fused.y0 = k->sy0 / k->sw;
		k->fused.x1 = k->sx1 / k->sw;
		k->fused.y1 = k->sy1 / k->sw;
		k->fused.conf = k->sw / n_annotators;
		k->fused.annotator = k->members;
	}
	for (size_t c = 0; c < ncl; c++)
		if (cl[c].members >= min_votes)
			out[nout++] = cl[c].fused;
	*n_out = nout;
	rc = TLY_Q_OK;
out:
	free(ord);
	free(cl);
	free(has);
	return rc;
}

/* ---- ratings ------------------------------------------------------------------------- */

int tly_rating_stats(const double *v, size_t n, struct tly_rating_stats *out)
{
	double mean = 0.0, m2 = 0.0;

	memset(out, 0, sizeof(*out));
	if (n == 0)
		return TLY_Q_EINVAL;
	out->min = out->max = v[0];
	for (size_t i = 0; i < n; i++) {   /* Welford */
		double d;

		if (!isfinite(v[i]))
			return TLY_Q_EINVAL;
		d = v[i] - mean;
		mean += d / (double)(i + 1);
		m2 += d * (v[i] - mean);
		if (v[i] < out->min)
			out->min = v[i];
		if (v[i] > out->max)
			out->max = v[i];
	}
	out->n = n;
	out->mean = mean;
	out->sd = n > 1 ? sqrt(m2 / (double)(n - 1)) : 0.0;
	return TLY_Q_OK;
}

/* ---- rankings ------------------------------------------------------------------------ */

static int rankings_valid(const uint32_t *rank, size_t m, size_t n)
{
	unsigned char *seen = calloc(n + 1, 1);
	int ok = seen != NULL;

	for (size_t r = 0; ok && r < m; r++) {
		memset(seen, 0, n);
		for (size_t i = 0; i < n; i++) {
			uint32_t p = rank[r * n + i];

			if (p >= n || seen[p]) {
				ok = 0;
				break;
			}
			seen[p] = 1;
		}
	}
	free(seen);
	return ok;
}

int tly_ranking_pairwise_agreement(const uint32_t *rank, size_t m, size_t n, double *agreement)
{
	double agree = 0.0, total = 0.0;

	if (m < 2 || n < 2 || !rankings_valid(rank, m, n))
		return TLY_Q_EINVAL;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = i + 1; j < n; j++) {
			size_t before = 0;   /* annotators who rank i above j */

			for (size_t r = 0; r < m; r++)
				before += rank[r * n + i] < rank[r * n + j];
			/* annotator pairs agreeing on this item pair */
			agree += (double)before * (before - 1) / 2.0 +
				 (double)(m - before) * (m - before - 1) / 2.0;
			total += (double)m * (m - 1) / 2.0;
		}
	}
	*agreement = agree / total;
	return TLY_Q_OK;
}

struct borda_rec {
	double score;
	uint32_t item;
};

static int cmp_borda(const void *pa, const void *pb)
{
	const struct borda_rec *x = pa, *y = pb;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return (x->item > y->item) - (x->item < y->item);
}

int tly_ranking_borda(const uint32_t *rank, size_t m, size_t n, uint32_t *order, double *score)
{
	struct borda_rec *rec;

	if (m == 0 || n == 0 || n > UINT32_MAX || !rankings_valid(rank, m, n))
		return TLY_Q_EINVAL;
	rec = calloc(n, sizeof(*rec));
	if (rec == NULL)
		return TLY_Q_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		rec[i].item = (uint32_t)i;
		for (size_t r = 0; r < m; r++)
			rec[i].score += (double)(n - 1 - rank[r * n + i]);
		if (score != NULL)
			score[i] = rec[i].score;
	}
	qsort(rec, n, sizeof(*rec), cmp_borda);
	for (size_t i = 0; i < n; i++)
		order[i] = rec[i].item;
	free(rec);
	return TLY_Q_OK;
}
