/*
 * agreement.c - Cohen's kappa, Fleiss' kappa, Krippendorff's alpha.
 */
#include "quality/agreement.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Distinct-value loops of ordinal/ratio alpha are O(K^2): cap K. */
#define ALPHA_PAIRWISE_MAX 20000u
/* Cohen's table is K x K doubles. */
#define COHEN_K_MAX 4096u

static const char *const weight_names[] = { "none", "linear", "quadratic" };
static const char *const level_names[] = { "nominal", "ordinal", "interval", "ratio" };

int tly_weights_parse(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(s, weight_names[i]) == 0)
			return i;
	return -1;
}

const char *tly_weights_name(enum tly_weights w)
{
	return (unsigned)w < 3 ? weight_names[w] : "?";
}

int tly_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

const char *tly_level_name(enum tly_level l)
{
	return (unsigned)l < 4 ? level_names[l] : "?";
}

/* ---- Cohen ------------------------------------------------------------------- */

static double disagreement_weight(size_t i, size_t j, enum tly_weights w)
{
	double d = (double)i - (double)j;

	if (i == j)
		return 0.0;
	switch (w) {
	case TLY_WEIGHTS_LINEAR:
		return fabs(d);
	case TLY_WEIGHTS_QUADRATIC:
		return d * d;
	default:
		return 1.0;
	}
}

int tly_cohen_kappa_table(const double *table, size_t k, enum tly_weights w,
			  double *kappa, char *err, size_t errlen)
{
	double *row = NULL, *col = NULL;
	double n = 0.0, obs = 0.0, exp_ = 0.0;
	int rc = TLY_Q_OK;

	if ((unsigned)w > TLY_WEIGHTS_QUADRATIC || k == 0 || k > COHEN_K_MAX) {
		tly__qerr_set(err, errlen, "bad arguments (k = %zu)", k);
		return TLY_Q_EINVAL;
	}
	row = calloc(k, sizeof(*row));
	col = calloc(k, sizeof(*col));
	if (row == NULL || col == NULL) {
		tly__qerr_set(err, errlen, "out of memory");
		rc = TLY_Q_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < k; i++) {
		for (size_t j = 0; j < k; j++) {
			double v = table[i * k + j];

			if (!(v >= 0.0) || !isfinite(v)) {
				tly__qerr_set(err, errlen, "negative or non-finite cell (%zu, %zu)", i, j);
				rc = TLY_Q_EINVAL;
				goto out;
			}
			row[i] += v;
			col[j] += v;
			n += v;
		}
	}
	if (n <= 0.0) {
		tly__qerr_set(err, errlen, "no items rated by both annotators");
		rc = TLY_Q_EUNDEF;
		goto out;
	}
	for (size_t i = 0; i < k; i++) {
		for (size_t j = 0; j < k; j++) {
			double wij = disagreement_weight(i, j, w);

			obs += wij * table[i * k + j] / n;
			exp_ += wij * (row[i] / n) * (col[j] / n);
		}
	}
	if (exp_ <= 0.0) {
		tly__qerr_set(err, errlen, "kappa undefined: chance agreement is total (one category)");
		rc = TLY_Q_EUNDEF;
		goto out;
	}
	*kappa = 1.0 - obs / exp_;
out:
	free(row);
	free(col);
	return rc;
}

int tly_cohen_kappa(const struct tly_answers *a, enum tly_weights w,
		    double *kappa, size_t *n_items, char *err, size_t errlen)
{
	double *table = NULL;
	size_t k = a->n_labels, items = 0;
	int rc;

	if (!a->finished) {
		tly__qerr_set(err, errlen, "answer set not finished");
		return TLY_Q_EINVAL;
	}
	if (a->n_workers != 2) {
		tly__qerr_set(err, errlen, "Cohen's kappa needs exactly two workers, found %u",
			      a->n_workers);
		return TLY_Q_EINVAL;
	}
	if (k > COHEN_K_MAX) {
		tly__qerr_set(err, errlen, "too many labels (%zu, at most %u)", k, COHEN_K_MAX);
		return TLY_Q_ELIMIT;
	}
	table = calloc(k * k, sizeof(*table));
	if (table == NULL) {
		tly__qerr_set(err, errlen, "out of memory");
		return TLY_Q_ENOMEM;
	}
	for (uint32_t q = 0; q < a->n_questions; q++) {
		uint32_t b = a->q_off[q];

		if (a->q_off[q + 1] - b != 2)
			continue;
		/* worker 0 is the first worker of the file: rows */
		uint32_t i = a->a_worker[b] == 0 ? b : b + 1;

		table[(size_t)a->a_label[i] * k + a->a_label[i == b ? b + 1 : b]] += 1.0;
		items++;
	}
	if (n_items != NULL)
		*n_items = items;
	rc = tly_cohen_kappa_table(table, k, w, kappa, err, errlen);
	free(table);
	return rc;
}

/* ---- Fleiss --------------------------------------------------------------------- */

/* Accumulates items into (sum of P_i, item count, column sums, total). */
struct fleiss_acc {
	double sum_p;
	double items;
	double total;
	double *col;
};

static void fleiss_item(struct fleiss_acc *f, const uint32_t *cnt, const uint32_t *idx,
			size_t nidx, double n_i)
{
	double sq = 0.0;

	if (n_i < 2)
		return;
	for (size_t j = 0; j < nidx; j++) {
		double c = cnt[idx[j]];

		sq += c * c;
		f->col[idx[j]] += c;
	}
	f->sum_p += (sq - n_i) / (n_i * (n_i - 1.0));
	f->items += 1.0;
	f->total += n_i;
}

static int fleiss_finish(const struct fleiss_acc *f, size_t k, double *kappa,
			 char *err, size_t errlen)
{
	double pe = 0.0, pbar;

	if (f->items < 1) {
		tly__qerr_set(err, errlen, "no item has two or more answers");
		return TLY_Q_EUNDEF;
	}
	for (size_t j = 0; j < k; j++) {
		double p = f->col[j] / f->total;

		pe += p * p;
	}
	pbar = f->sum_p / f->items;
	if (1.0 - pe <= 1e-15) {
		tly__qerr_set(err, errlen, "kappa undefined: chance agreement is total (one category)");
		return TLY_Q_EUNDEF;
	}
	*kappa = (pbar - pe) / (1.0 - pe);
	return TLY_Q_OK;
}

int tly_fleiss_kappa_table(const uint32_t *counts, size_t n_items, size_t k,
			   double *kappa, char *err, size_t errlen)
{
	struct fleiss_acc f = { 0 };
	uint32_t *idx = NULL;
	int rc;

	if (k == 0) {
		tly__qerr_set(err, errlen, "no categories");
		return TLY_Q_EINVAL;
	}
	f.col = calloc(k, sizeof(*f.col));
	idx = malloc(k * sizeof(*idx));
	if (f.col == NULL || idx == NULL) {
		tly__qerr_set(err, errlen, "out of memory");
		rc = TLY_Q_ENOMEM;
		goto out;
	}
	for (size_t j = 0; j < k; j++)
		idx[j] = (uint32_t)j;
	for (size_t i = 0; i < n_items; i++) {
		double n_i = 0.0;

		for (size_t j = 0; j < k; j++)
			n_i += counts[i * k + j];
		fleiss_item(&f, counts + i * k, idx, k, n_i);
	}
	rc = fleiss_finish(&f, k, kappa, err, errlen);
out:
	free(f.col);
	free(idx);
	return rc;
}

int tly_fleiss_kappa(const struct tly_answers *a, double *kappa, size_t *n_items,
		     char *err, size_t errlen)
{
	struct fleiss_acc f = { 0 };
	uint32_t *cnt = NULL, *idx = NULL;
	size_t k = a->n_labels;
	int rc;

	if (!a->finished) {
		tly__qerr_set(err, errlen, "answer set not finished");
		return TLY_Q_EINVAL;
	}
	f.col = calloc(k + 1, sizeof(*f.col));
	cnt = calloc(k + 1, sizeof(*cnt));
	idx = malloc((k + 1) * sizeof(*idx));
	if (f.col == NULL || cnt == NULL || idx == NULL) {
		tly__qerr_set(err, errlen, "out of memory");
		rc = TLY_Q_ENOMEM;
		goto out;
	}
	for (uint32_t q = 0; q < a->n_questions; q++) {
		size_t nidx = 0;

		for (uint32_t i = a->q_off[q]; i < a->q_off[q + 1]; i++) {
			uint32_t l = a->a_label[i];

			if (cnt[l]++ == 0)
				idx[nidx++] = l;
		}
		fleiss_item(&f, cnt, idx, nidx, (double)(a->q_off[q + 1] - a->q_off[q]));
		for (size_t j = 0; j < nidx; j++)
			cnt[idx[j]] = 0;
	}
	if (n_items != NULL)
		*n_items = (size_t)f.items;
	rc = fleiss_finish(&f, k, kappa, err, errlen);
out:
	free(f.col);
	free(cnt);
	free(idx);
	return rc;
}

/* ---- Krippendorff ------------------------------------------------------------------ */

struct alpha_ctx {
	enum tly_level level;
	const double *v;     /* label values (interval, ratio) */
	const double *cum;   /* ordinal: cum[c] = sum of n_g for g < c */
	const double *nc;    /* marginals */
};

static double delta2(const struct alpha_ctx *x, uint32_t c, uint32_t k)
{
	double d;

	if (c == k)
		return 0.0;
	switch (x->level) {
	case TLY_LEVEL_NOMINAL:
		return 1.0;
	case TLY_LEVEL_ORDINAL: {
		uint32_t lo = c < k ? c : k, hi = c < k ? k : c;

		d = (x->cum[hi + 1] - x->cum[lo]) - (x->nc[lo] + x->nc[hi]) / 2.0;
		return d * d;
	}
	case TLY_LEVEL_INTERVAL:
		d = x->v[c] - x->v[k];
		return d * d;
	case TLY_LEVEL_RATIO: {
		double s = x->v[c] + x->v[k];

		if (s == 0.0)
			return 0.0;
		d = (x->v[c] - x->v[k]) / s;
		return d * d;
	}
	}
	return 0.0;
}

/* Nominal and interval alpha need no marginals to score a unit, which lets
 * a unit be scored as it comes (tly_alpha_stream); these are shared by both
 * forms so that they sum in the same order. v NULL: values are the label
 * indices. */
static double value_of(const double *v, uint32_t c)
{
	return v ? v[c] : (double)c;
}

/* A unit's m values as counts cnt[idx[0..nidx)] (in order of first
 * appearance): the sum over its ordered pairs of delta^2. */
static double unit_sum(enum tly_level level, const double *v, const uint32_t *cnt,
		       const uint32_t *idx, size_t nidx, uint32_t m)
{
	double mean = 0.0, ss = 0.0;

	if (level == TLY_LEVEL_NOMINAL) {
		double sq = 0.0;

		for (size_t j = 0; j < nidx; j++)
			sq += (double)cnt[idx[j]] * cnt[idx[j]];
		return (double)m * m - sq;
	}
	for (size_t j = 0; j < nidx; j++)
		mean += cnt[idx[j]] * value_of(v, idx[j]);
	mean /= m;
	for (size_t j = 0; j < nidx; j++) {
		double d = value_of(v, idx[j]) - mean;

		ss += cnt[idx[j]] * d * d;
	}
	return 2.0 * m * ss;
}

/* The same sum over all pairable values (marginals nc, n in all). */
static double expected_sum(enum tly_level level, const double *v, const double *nc, size_t K,
			   double n)
{
	double mean = 0.0, ss = 0.0;

	if (level == TLY_LEVEL_NOMINAL) {
		double sq = 0.0;

		for (size_t c = 0; c < K; c++)
			sq += nc[c] * nc[c];
		return n * n - sq;
	}
	for (size_t c = 0; c < K; c++)
		mean += nc[c] * value_of(v, (uint32_t)c);
	mean /= n;
	for (size_t c = 0; c < K; c++)
		ss += nc[c] * (value_of(v, (uint32_t)c) - mean) * (value_of(v, (uint32_t)c) - mean);
	return 2.0 * n * ss;
}

static int alpha_of(double n, double dobs, double dexp, double *alpha, char *err, size_t errlen)
{
	if (dexp <= 0.0) {
		tly__qerr_set(err, errlen, "alpha undefined: no variation in the values");
		return TLY_Q_EUNDEF;
	}
	*alpha = 1.0 - (n - 1.0) * dobs / dexp;
	return TLY_Q_OK;
}

int tly_krippendorff_alpha(const struct tly_answers *a, enum tly_level level,
			   double *alpha, size_t *n_units, size_t *n_values,
			   char *err, size_t errlen)
{
	size_t K = a->n_labels;
	double *nc = NULL, *cum = NULL;
	uint32_t *cnt = NULL, *idx = NULL;
	double n = 0.0, dobs = 0.0, dexp = 0.0;
	size_t units = 0;
	struct alpha_ctx x;
	int rc = TLY_Q_OK;

	if (!a->finished || (unsigned)level > TLY_LEVEL_RATIO) {
		tly__qerr_set(err, errlen, "bad arguments");
		return TLY_Q_EINVAL;
	}
	if ((level == TLY_LEVEL_INTERVAL || level == TLY_LEVEL_RATIO) && !a->labels_numeric) {
		tly__qerr_set(err, errlen, "%s alpha needs numeric labels", tly_level_name(level));
		return TLY_Q_EINVAL;
	}
	if (level == TLY_LEVEL_RATIO && K > 0 && a->label_value[0] < 0) {
		tly__qerr_set(err, errlen, "ratio alpha needs labels >= 0");
		return TLY_Q_EINVAL;
	}
	nc = calloc(K + 1, sizeof(*nc));
	cum = calloc(K + 2, sizeof(*cum));
	cnt = calloc(K + 1, sizeof(*cnt));
	idx = malloc((K + 1) * sizeof(*idx));
	if (nc == NULL || cum == NULL || cnt == NULL || idx == NULL) {
		tly__qerr_set(err, errlen, "out of memory");
		rc = TLY_Q_ENOMEM;
		goto out;
	}
	/* pass 1: marginals of pairable values */
	for (uint32_t q = 0; q < a->n_questions; q++) {
		uint32_t m = a->q_off[q + 1] - a->q_off[q];

		if (m < 2)
			continue;
		units++;
		for (uint32_t i = a->q_off[q]; i < a->q_off[q + 1]; i++)
			nc[a->a_label[i]] += 1.0;
		n += m;
	}
	if (n_units != NULL)
		*n_units = units;
	if (n_values != NULL)
		*n_values = (size_t)n;
	if (units == 0) {
		tly__qerr_set(err, errlen, "no unit has two or more values");
		rc = TLY_Q_EUNDEF;
		goto out;
	}
	for (size_t c = 0; c < K; c++)
		cum[c + 1] = cum[c] + nc[c];
	x.level = level;
	x.v = a->label_value;
	x.cum = cum;
	x.nc = nc;

	/* pass 2: observed disagreement, unit by unit over distinct values */
	for (uint32_t q = 0; q < a->n_questions; q++) {
		uint32_t m = a->q_off[q + 1] - a->q_off[q];
		size_t nidx = 0;
		double s = 0.0;

		if (m < 2)
			continue;
		for (uint32_t i = a->q_off[q]; i < a->q_off[q + 1]; i++) {
			uint32_t l = a->a_label[i];

			if (cnt[l]++ == 0)
				idx[nidx++] = l;
		}
		if (level == TLY_LEVEL_NOMINAL || level == TLY_LEVEL_INTERVAL) {
			s = unit_sum(level, x.v, cnt, idx, nidx, m);
		} else {
			if (nidx > ALPHA_PAIRWISE_MAX) {
				tly__qerr_set(err, errlen, "too many distinct values in one unit");
				rc = TLY_Q_ELIMIT;
				goto out;
			}
			for (size_t j = 0; j < nidx; j++)
				for (size_t l = 0; l < nidx; l++)
					s += (double)cnt[idx[j]] * cnt[idx[l]] * delta2(&x, idx[j], idx[l]);
		}
		dobs += s / (m - 1.0);
		for (size_t j = 0; j < nidx; j++)
			cnt[idx[j]] = 0;
	}

	/* expected disagreement from the marginals */
	if (level == TLY_LEVEL_NOMINAL || level == TLY_LEVEL_INTERVAL) {
		dexp = expected_sum(level, x.v, nc, K, n);
	} else {
		size_t nz = 0;

		for (size_t c = 0; c < K; c++)
			if (nc[c] > 0)
				idx[nz++] = (uint32_t)c;
		if (nz > ALPHA_PAIRWISE_MAX) {
			tly__qerr_set(err, errlen, "too many distinct values (%zu, at most %u)",
				      nz, ALPHA_PAIRWISE_MAX);
			rc = TLY_Q_ELIMIT;
			goto out;
		}
		for (size_t j = 0; j < nz; j++)
			for (size_t l = 0; l < nz; l++)
				dexp += nc[idx[j]] * nc[idx[l]] * delta2(&x, idx[j], idx[l]);
	}
	if ((rc = alpha_of(n, dobs, dexp, alpha, err, errlen)) != TLY_Q_OK)
		goto out;
out:
	free(nc);
	free(cum);
	free(cnt);
	free(idx);
	return rc;
}

/* ---- Krippendorff, unit by unit ---------------------------------------------------- */

int tly_alpha_stream_init(struct tly_alpha_stream *s, enum tly_level level, size_t k,
			  const double *values, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	if ((level != TLY_LEVEL_NOMINAL && level != TLY_LEVEL_INTERVAL) || k == 0 ||
	    k > TLY_ALPHA_STREAM_K) {
		tly__qerr_set(err, errlen, "a streamed alpha is nominal or interval, 1 to %u labels",
			      TLY_ALPHA_STREAM_K);
		return TLY_Q_EINVAL;
	}
	s->level = level;
	s->k = k;
	s->v = values;
	s->nc = calloc(k, sizeof(*s->nc));
	s->cnt = calloc(k, sizeof(*s->cnt));
	s->idx = malloc(k * sizeof(*s->idx));
	if (!s->nc || !s->cnt || !s->idx) {
		tly_alpha_stream_release(s);
		tly__qerr_set(err, errlen, "out of memory");
		return TLY_Q_ENOMEM;
	}
	return TLY_Q_OK;
}

int tly_alpha_stream_unit(struct tly_alpha_stream *s, const uint32_t *labels, size_t m)
{
	size_t nidx = 0;

	for (size_t i = 0; i < m; i++)
		if (labels[i] >= s->k)
			return TLY_Q_EINVAL;
	if (m < 2) /* not pairable */
		return TLY_Q_OK;
	if (m > UINT32_MAX)
		return TLY_Q_ELIMIT;
	for (size_t i = 0; i < m; i++)
		if (s->cnt[labels[i]]++ == 0)
			s->idx[nidx++] = labels[i];
	for (size_t j = 0; j < nidx; j++)
		s->nc[s->idx[j]] += s->cnt[s->idx[j]];
	s->dobs += unit_sum(s->level, s->v, s->cnt, s->idx, nidx, (uint32_t)m) / ((double)m - 1.0);
	for (size_t j = 0; j < nidx; j++)
		s->cnt[s->idx[j]] = 0;
	s->n += (double)m;
	s->units++;
	return TLY_Q_OK;
}

int tly_alpha_stream_finish(const struct tly_alpha_stream *s, double *alpha, size_t *n_units,
			    size_t *n_values, char *err, size_t errlen)
{
	if (n_units != NULL)
		*n_units = s->units;
	if (n_values != NULL)
		*n_values = (size_t)s->n;
	if (s->units == 0) {
		tly__qerr_set(err, errlen, "no unit has two or more values");
		return TLY_Q_EUNDEF;
	}
	return alpha_of(s->n, s->dobs, expected_sum(s->level, s->v, s->nc, s->k, s->n), alpha,
			err, errlen);
}

void tly_alpha_stream_release(struct tly_alpha_stream *s)
{
	free(s->nc);
	free(s->cnt);
	free(s->idx);
	s->nc = NULL;
	s->cnt = s->idx = NULL;
}
