/*
 * agreement.h - chance-corrected agreement between annotators.
 *
 *   Cohen's kappa   two annotators; unweighted, linear or quadratic weights
 *                   (category positions are label indices, labels.h order).
 *   Fleiss' kappa   any number of annotators per item; items with fewer than
 *                   two answers are skipped. With varying numbers of answers
 *                   per item, P_i uses each item's own n_i (the usual
 *                   generalisation); with a constant n it is Fleiss (1971).
 *   Krippendorff's alpha  nominal, ordinal, interval, ratio; missing values
 *                   allowed (units with fewer than two values are not
 *                   pairable and are skipped), coincidence-matrix method of
 *                   Krippendorff (2011). Ordinal uses the label order;
 *                   interval and ratio need numeric labels (ratio: >= 0).
 *
 * All functions only read their inputs and allocate nothing the caller must
 * free. They return TLY_Q_OK, TLY_Q_EINVAL (wrong shape), TLY_Q_EUNDEF (the
 * figure is undefined: no pairable data, or chance agreement is total, e.g.
 * only one category used), TLY_Q_ELIMIT or TLY_Q_ENOMEM, with a reason in err.
 */
#ifndef TLY_QUALITY_AGREEMENT_H
#define TLY_QUALITY_AGREEMENT_H

#include <stddef.h>
#include <stdint.h>
#include "quality/labels.h"

enum tly_weights { TLY_WEIGHTS_NONE = 0, TLY_WEIGHTS_LINEAR, TLY_WEIGHTS_QUADRATIC };
enum tly_level { TLY_LEVEL_NOMINAL = 0, TLY_LEVEL_ORDINAL, TLY_LEVEL_INTERVAL, TLY_LEVEL_RATIO };

/* Names: "none"/"linear"/"quadratic", "nominal"/"ordinal"/"interval"/"ratio";
 * parse returns -1 when unknown. */
int tly_weights_parse(const char *s);
const char *tly_weights_name(enum tly_weights w);
int tly_level_parse(const char *s);
const char *tly_level_name(enum tly_level l);

/* Cohen's kappa from a k x k contingency table (row-major, table[i*k + j] =
 * items rater A put in category i and rater B in j; non-negative). */
int tly_cohen_kappa_table(const double *table, size_t k, enum tly_weights w,
			  double *kappa, char *err, size_t errlen);

/* Cohen's kappa over an answer set with exactly two workers, on the questions
 * both answered (*n_items gets their number; may be NULL). */
int tly_cohen_kappa(const struct tly_answers *a, enum tly_weights w,
		    double *kappa, size_t *n_items, char *err, size_t errlen);

/* Fleiss' kappa from counts (row-major n_items x k, counts[i*k + j] = raters
 * who put item i in category j). */
int tly_fleiss_kappa_table(const uint32_t *counts, size_t n_items, size_t k,
			   double *kappa, char *err, size_t errlen);

/* Fleiss' kappa over an answer set (*n_items: items with >= 2 answers). */
int tly_fleiss_kappa(const struct tly_answers *a, double *kappa, size_t *n_items,
		     char *err, size_t errlen);

/* Krippendorff's alpha over an answer set: questions are units, workers
 * coders, labels values. *n_units gets the pairable units, *n_values the
 * pairable values (either may be NULL). */
int tly_krippendorff_alpha(const struct tly_answers *a, enum tly_level level,
			   double *alpha, size_t *n_units, size_t *n_values,
			   char *err, size_t errlen);

/* Krippendorff's alpha unit by unit, holding no answers (a project's quality
 * report over millions of them): nominal and interval only, since ordinal and
 * ratio need every value's marginals before the first unit is scored. Labels
 * are 0..k-1; values[c] is label c's value for interval (NULL: c itself;
 * interval alpha does not change under an affine map of the values). The
 * figures equal tly_krippendorff_alpha's on the same units: both sum a unit
 * and the marginals in the same way. _unit refuses a label >= k (TLY_Q_EINVAL)
 * and skips a unit of fewer than two values. */
#define TLY_ALPHA_STREAM_K 65536u
struct tly_alpha_stream {
	enum tly_level level;
	size_t k;
	const double *v;
	double *nc;            /* pairable values per label */
	uint32_t *cnt, *idx;   /* one unit's counts, and its labels by first appearance */
	double n, dobs;
	size_t units;
};
int tly_alpha_stream_init(struct tly_alpha_stream *s, enum tly_level level, size_t k,
			  const double *values, char *err, size_t errlen);
int tly_alpha_stream_unit(struct tly_alpha_stream *s, const uint32_t *labels, size_t m);
int tly_alpha_stream_finish(const struct tly_alpha_stream *s, double *alpha, size_t *n_units,
			    size_t *n_values, char *err, size_t errlen);
void tly_alpha_stream_release(struct tly_alpha_stream *s);

#endif
