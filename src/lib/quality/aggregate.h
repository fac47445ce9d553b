/*
 * aggregate.h - truth inference for categorical answers.
 *
 * Methods (enum tly_agg_method):
 *   TLY_AGG_MV    majority vote.
 *   TLY_AGG_DS    Dawid & Skene (1979) EM: class priors and a full confusion
 *                 matrix per worker; majority-vote start, 1e-10 clipping.
 *   TLY_AGG_ODS   one-coin Dawid-Skene: one accuracy per worker, errors spread
 *                 evenly over the other labels.
 *   TLY_AGG_MACE  MACE (Hovy et al. 2013), EM: per worker a competence theta
 *                 (probability of answering the truth rather than "spamming")
 *                 and a spamming distribution. Unlike the paper, class priors
 *                 are estimated (the uniform prior loses 10 points on skewed
 *                 data such as d_jn_product); expected counts smoothed by 0.1.
 *   TLY_AGG_DSP   the default: Dawid-Skene, MAP EM with a Dirichlet prior
 *                 (pseudo-count 0.2 on each confusion-matrix diagonal cell,
 *                 2 on each class prior), majority-vote start, run to a
 *                 tighter convergence (1e-6). See docs/QUALITY.md.
 *
 * Every method is deterministic: the same answer set gives the same bytes out.
 * Ties (equal posteriors, equal vote counts) go to the smallest label index,
 * i.e. the smallest label in the order of labels.h (numeric, else bytes).
 *
 * Gold: an optional array of n_questions label ids (or TLY_AGG_NO_GOLD); a gold
 * question has its posterior fixed to the known label at every EM step, so it
 * anchors worker estimates, and is reported with that label and confidence 1.
 *
 * Ownership: tly_aggregate fills a caller-provided struct tly_agg_result whose
 * arrays it allocates; the caller frees them with tly_agg_result_release (also
 * safe after a failed call). The answer set is only read.
 *
 * Memory: working arrays are n_questions*K + n_workers*K*K doubles for DS/DSP,
 * n_questions*K + n_workers*K for ODS/MACE (K = number of labels); calls whose
 * arrays would exceed max(2^24, 64 * n_answers) doubles fail with TLY_Q_ELIMIT
 * instead of allocating (e.g. thousands of distinct labels).
 */
#ifndef TLY_QUALITY_AGGREGATE_H
#define TLY_QUALITY_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>
#include "quality/labels.h"

#define TLY_AGG_NO_GOLD (-1)

enum tly_agg_method {
	TLY_AGG_MV = 0,
	TLY_AGG_DS,
	TLY_AGG_ODS,
	TLY_AGG_MACE,
	TLY_AGG_DSP
};

struct tly_agg_opts {
	unsigned max_iter;   /* EM iterations at most (default 100) */
	double tol;          /* stop when |delta log-likelihood| / n_answers < tol (default 1e-5) */
	double dsp_tol;      /* the same for DSP (default 1e-6) */
	double prior_diag;   /* DSP: Dirichlet pseudo-count on each confusion diagonal cell (0.2) */
	double prior_off;    /* DSP: pseudo-count on each off-diagonal cell (0) */
	double prior_class;  /* DSP: pseudo-count on each class prior (2) */
	double mace_smooth;  /* MACE: pseudo-count added to expected counts (default 0.1) */
};

struct tly_agg_result {
	uint32_t n_questions, n_workers, n_labels;
	uint32_t *label;          /* n_questions: label id chosen for each question */
	double *confidence;       /* n_questions: posterior probability of that label (MV: vote share) */
	double *posterior;        /* n_questions * n_labels, row-major: the full posterior of each
	                           * question (MV: vote shares; gold rows one-hot). MV only: NULL
	                           * when that array would pass the memory cap below. */
	double *worker_quality;   /* n_workers: estimated probability that the worker answers right
	                           * (MV: agreement with the majority; DS/DSP: sum_k prior_k pi_kk;
	                           * ODS: accuracy; MACE: competence theta) */
	double *class_prior;      /* n_labels: estimated class priors (MV: label shares) */
	unsigned iterations;      /* EM iterations run (0 for MV) */
	double log_likelihood;    /* of the last E-step (0 for MV) */
};

/* Fills *opts with the defaults listed above. */
void tly_agg_opts_default(struct tly_agg_opts *opts);

/* Method name <-> enum: "mv", "ds", "ods", "mace", "dsp". Returns -1 if unknown. */
int tly_agg_method_parse(const char *name);
const char *tly_agg_method_name(enum tly_agg_method m);

/* Runs method m over the finished answer set a. gold may be NULL; opts may be
 * NULL (defaults). Returns TLY_Q_OK, TLY_Q_EINVAL (unfinished set, bad gold
 * id, unknown method), TLY_Q_ELIMIT or TLY_Q_ENOMEM, with a reason in err. */
int tly_aggregate(const struct tly_answers *a, enum tly_agg_method m,
		  const int32_t *gold, const struct tly_agg_opts *opts,
		  struct tly_agg_result *res, char *err, size_t errlen);

/* Per-method entry points (same contract as tly_aggregate). */
int tly_aggregate_mv(const struct tly_answers *a, const int32_t *gold,
		     struct tly_agg_result *res, char *err, size_t errlen);
int tly_aggregate_ds(const struct tly_answers *a, const int32_t *gold,
		     const struct tly_agg_opts *opts, struct tly_agg_result *res,
		     char *err, size_t errlen);
int tly_aggregate_ods(const struct tly_answers *a, const int32_t *gold,
		      const struct tly_agg_opts *opts, struct tly_agg_result *res,
		      char *err, size_t errlen);
int tly_aggregate_mace(const struct tly_answers *a, const int32_t *gold,
		       const struct tly_agg_opts *opts, struct tly_agg_result *res,
		       char *err, size_t errlen);
int tly_aggregate_dsp(const struct tly_answers *a, const int32_t *gold,
		      const struct tly_agg_opts *opts, struct tly_agg_result *res,
		      char *err, size_t errlen);

/* Frees the arrays of res; safe on a zeroed or released result. */
void tly_agg_result_release(struct tly_agg_result *res);

#endif
