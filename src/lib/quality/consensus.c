/*
 * consensus.c - see consensus.h.
 */
#include "quality/consensus.h"

#include <math.h>

static double clip(double a)
{
	if (!(a >= TLY_ACC_MIN)) /* also catches NaN */
		return TLY_ACC_MIN;
	return a > TLY_ACC_MAX ? TLY_ACC_MAX : a;
}

uint32_t tly_onecoin_posterior(uint32_t k, size_t n, const uint32_t *labels, const double *acc,
			       const double *prior, double *post)
{
	double mx = -INFINITY, sum = 0;
	uint32_t best = 0;

	/* log space: a long list of answers must not underflow */
	for (uint32_t c = 0; c < k; c++)
		post[c] = prior ? log(prior[c] > 1e-12 ? prior[c] : 1e-12) : 0.0;
	for (size_t i = 0; i < n; i++) {
		double a = clip(acc[i]);
		double right = log(a), wrong = log((1.0 - a) / (double)(k - 1));
		if (labels[i] >= k)
			continue;
		for (uint32_t c = 0; c < k; c++)
			post[c] += c == labels[i] ? right : wrong;
	}
	for (uint32_t c = 0; c < k; c++)
		if (post[c] > mx)
			mx = post[c];
	/* the smallest label within rounding of the top: sums of the same logs
	 * in another order must not break a tie differently */
	for (best = 0; best < k && post[best] < mx - 1e-9; best++)
		;
	for (uint32_t c = 0; c < k; c++) {
		post[c] = exp(post[c] - mx);
		sum += post[c];
	}
	for (uint32_t c = 0; c < k; c++)
		post[c] /= sum;
	return best;
}

double tly_confidence_round(double p)
{
	return round(p * 1e12) / 1e12;
}

void tly_wilson(unsigned x, unsigned n, double z, double *lo, double *hi)
{
	double p, z2, den, mid, half;

	if (n == 0) {
		*lo = 0.0;
		*hi = 1.0;
		return;
	}
	p = (double)x / (double)n;
	z2 = z * z;
	den = 1.0 + z2 / n;
	mid = (p + z2 / (2.0 * n)) / den;
	half = z * sqrt(p * (1.0 - p) / n + z2 / (4.0 * (double)n * n)) / den;
	*lo = mid - half < 0 ? 0 : mid - half;
	*hi = mid + half > 1 ? 1 : mid + half;
}
