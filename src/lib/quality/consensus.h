/*
 * consensus.h - the small formulas the server uses between two model fits:
 * the posterior of one item from its answers under a one-coin worker model,
 * and the Wilson score interval of an accuracy measured on gold.
 *
 * Pure functions: no allocation, no state, deterministic.
 */
#ifndef TLY_QUALITY_CONSENSUS_H
#define TLY_QUALITY_CONSENSUS_H

#include <stddef.h>
#include <stdint.h>

/* Accuracies are clipped to [TLY_ACC_MIN, TLY_ACC_MAX]: no worker makes an
 * item certain on their own. */
#define TLY_ACC_MIN 0.05
#define TLY_ACC_MAX 0.99

/* Posterior over k labels (k >= 2) of one item given n answers: labels[i] in
 * [0, k) from a worker of accuracy acc[i] (probability of the true label; a
 * wrong answer is spread evenly over the other k-1 labels). prior may be NULL
 * (uniform) or k probabilities. Writes post[k] and returns the label with the
 * highest posterior (ties: the smallest id). Answers with a label >= k are
 * ignored. */
uint32_t tly_onecoin_posterior(uint32_t k, size_t n, const uint32_t *labels, const double *acc,
			       const double *prior, double *post);

/* p rounded to 12 decimals: how the server stores a confidence (and a
 * rating's mean and spread) and compares it with a project's
 * confidence_target. exp of a sum of logs leaves noise in the last bits (one
 * vote at accuracy 0.7 comes out 0.6999999999999998), which must not keep a
 * task whose posterior is the target from completing. */
double tly_confidence_round(double p);

/* Wilson score interval of x successes in n trials at normal quantile z
 * (1.96 for 95%). n == 0 gives [0, 1]. */
void tly_wilson(unsigned x, unsigned n, double z, double *lo, double *hi);

#endif
