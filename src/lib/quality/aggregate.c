/*
 * aggregate.c - majority vote, Dawid-Skene (full and one-coin), MACE and the
 * default DSP (Dawid-Skene with a Dirichlet prior, one-coin start).
 *
 * Layout: posteriors T are n_questions x K, row-major. Confusion counts and
 * log-probabilities of worker w are stored transposed, cell (w, l, k) at
 * ((w*K + l)*K + k): "worker w said l when the truth was k". The E-step for
 * an answer (w, l) then reads K contiguous doubles, and so does the M-step
 * accumulation. E-step and the M-step accumulation are fused in one pass over
 * the answers, so one EM iteration reads the answer arrays once.
 *
 * EM loop of every method: parameters from the start posteriors, then
 * repeat { E-step (+ accumulate); stop if converged; M-step }, so the
 * posteriors returned are those of the last E-step.
 */
#include "quality/aggregate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CLIP 1e-10

void tly_agg_opts_default(struct tly_agg_opts *opts)
{
	opts->max_iter = 100;
	opts->tol = 1e-5;
	opts->dsp_tol = 1e-6;
	opts->prior_diag = 0.2;
	opts->prior_off = 0.0;
	opts->prior_class = 2.0;
	opts->mace_smooth = 0.1;
}

static const char *const method_names[] = { "mv", "ds", "ods", "mace", "dsp" };

int tly_agg_method_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++)
		if (strcmp(name, method_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *tly_agg_method_name(enum tly_agg_method m)
{
	if ((unsigned)m < sizeof(method_names) / sizeof(method_names[0]))
		return method_names[m];
	return "?";
}

void tly_agg_result_release(struct tly_agg_result *res)
{
	free(res->label);
	free(res->confidence);
	free(res->posterior);
	free(res->worker_quality);
	free(res->class_prior);
	memset(res, 0, sizeof(*res));
}

/* ---- shared state -------------------------------------------------------- */

struct em {
	const struct tly_answers *a;
	const int32_t *gold;
	const struct tly_agg_opts *o;
	uint32_t K, nq, nw;
	double *T;          /* nq*K posteriors */
	double *lt;         /* K scratch */
	double *logprior;   /* K */
	double *prior_acc;  /* K */
	double *cnt;        /* DS: nw*K*K expected counts; MACE: nw*K spam mass */
	double *logpi;      /* DS: nw*K*K log confusion; MACE: nw*K xi */
	double *wa, *wb;    /* per worker: ODS acc accum / log terms; MACE theta / know */
	double *wn;         /* per worker: number of answers */
	double *aux;        /* MACE: per (w, l) three derived terms, see mace_derive */
};

static void em_free(struct em *e)
{
	free(e->T);
	free(e->lt);
	free(e->logprior);
	free(e->prior_acc);
	free(e->cnt);
	free(e->logpi);
	free(e->wa);
	free(e->wb);
	free(e->wn);
	free(e->aux);
}

static double mem_cap(const struct tly_answers *a)
{
	double cap = 64.0 * (double)a->n_answers;

	return cap < (double)(1u << 24) ? (double)(1u << 24) : cap;
}

static int res_alloc(struct tly_agg_result *res, const struct tly_answers *a)
{
	size_t nq = a->n_questions ? a->n_questions : 1;
	size_t nw = a->n_workers ? a->n_workers : 1;
	size_t nl = a->n_labels ? a->n_labels : 1;

	memset(res, 0, sizeof(*res));
	res->n_questions = a->n_questions;
	res->n_workers = a->n_workers;
	res->n_labels = a->n_labels;
	res->label = calloc(nq, sizeof(*res->label));
	res->confidence = calloc(nq, sizeof(*res->confidence));
	res->worker_quality = calloc(nw, sizeof(*res->worker_quality));
	res->class_prior = calloc(nl, sizeof(*res->class_prior));
	if (res->label == NULL || res->confidence == NULL ||
	    res->worker_quality == NULL || res->class_prior == NULL)
		return TLY_Q_ENOMEM;
	if ((double)nq * (double)nl <= mem_cap(a)) {
		res->posterior = calloc(nq * nl, sizeof(*res->posterior));
		if (res->posterior == NULL)
			return TLY_Q_ENOMEM;
	}
	return TLY_Q_OK;
}

static int check_input(const struct tly_answers *a, const int32_t *gold,
		       char *err, size_t errlen)
{
	if (!a->finished) {
		tly__qerr_set(err, errlen, "answer set not finished");
		return TLY_Q_EINVAL;
	}
	if (gold != NULL) {
		for (uint32_t q = 0; q < a->n_questions; q++) {
			if (gold[q] != TLY_AGG_NO_GOLD &&
			    (gold[q] < 0 || (uint32_t)gold[q] >= a->n_labels)) {
				tly__qerr_set(err, errlen, "gold label id %d of question %u out of range",
					      (int)gold[q], q);
				return TLY_Q_EINVAL;
			}
		}
	}
	return TLY_Q_OK;
}

static int is_gold(const int32_t *gold, uint32_t q)
{
	return gold != NULL && gold[q] != TLY_AGG_NO_GOLD;
}

static int converged(double ll, double prev, unsigned it, double tol, const struct em *e)
{
	double n = (double)(e->a->n_answers ? e->a->n_answers : 1);

	return it > 1 && fabs(ll - prev) < tol * n;
}

/* Argmax over row T[0..K) with ties to the smallest index. */
static uint32_t argmax(const double *t, uint32_t K)
{
	uint32_t best = 0;

	for (uint32_t k = 1; k < K; k++)
		if (t[k] > t[best])
			best = k;
	return best;
}

/* Soft majority vote posteriors (vote shares), gold rows one-hot. */
static void mv_posteriors(struct em *e)
{
	const struct tly_answers *a = e->a;
	uint32_t K = e->K;

	for (uint32_t q = 0; q < e->nq; q++) {
		double *t = e->T + (size_t)q * K;
		uint32_t b = a->q_off[q], end = a->q_off[q + 1];

		memset(t, 0, K * sizeof(*t));
		if (is_gold(e->gold, q)) {
			t[e->gold[q]] = 1.0;
			continue;
		}
		for (uint32_t i = b; i < end; i++)
			t[a->a_label[i]] += 1.0;
		for (uint32_t k = 0; k < K; k++)
			t[k] /= (double)(end - b);
	}
}

/* Normalises lt into t (softmax), returns log of the normaliser. */
static double softmax_row(const double *lt, double *t, uint32_t K)
{
	double mx = lt[0], s = 0.0;

	for (uint32_t k = 1; k < K; k++)
		if (lt[k] > mx)
			mx = lt[k];
	for (uint32_t k = 0; k < K; k++) {
		t[k] = exp(lt[k] - mx);
		s += t[k];
	}
	for (uint32_t k = 0; k < K; k++)
		t[k] /= s;
	return mx + log(s);
}

static void set_logprior(struct em *e, double pseudo)
{
	uint32_t K = e->K;
	double tot = (double)e->nq + pseudo * K;

	for (uint32_t k = 0; k < K; k++) {
		double p = tot > 0 ? (e->prior_acc[k] + pseudo) / tot : 1.0 / K;

		e->logprior[k] = log(p > CLIP ? p : CLIP);
	}
}

static void prior_from_T(struct em *e)
{
	memset(e->prior_acc, 0, e->K * sizeof(double));
	for (uint32_t q = 0; q < e->nq; q++)
		for (uint32_t k = 0; k < e->K; k++)
			e->prior_acc[k] += e->T[(size_t)q * e->K + k];
}

/* ---- full Dawid-Skene ------------------------------------------------------ */

/* Accumulates expected counts from T into cnt and prior_acc. */
static void ds_accumulate_from_T(struct em *e)
{
	const struct tly_answers *a = e->a;
	uint32_t K = e->K;

	memset(e->cnt, 0, (size_t)e->nw * K * K * sizeof(double));
	for (uint32_t q = 0; q < e->nq; q++) {
		const double *t = e->T + (size_t)q * K;

		for (uint32_t i = a->q_off[q]; i < a->q_off[q + 1]; i++) {
			double *c = e->cnt + ((size_t)a->a_worker[i] * K + a->a_label[i]) * K;

			for (uint32_t k = 0; k < K; k++)
				c[k] += t[k];
		}
	}
	prior_from_T(e);
}

/* M-step: confusion matrices from counts with pseudo-counts (pd on the
 * diagonal, po elsewhere); priors with pseudo-count pp. */
static void ds_mstep(struct em *e, double pd, double po, double pp)
{
	uint32_t K = e->K;

	for (uint32_t w = 0; w < e->nw; w++) {
		const double *c = e->cnt + (size_t)w * K * K;
		double *lp = e->logpi + (size_t)w * K * K;

		for (uint32_t k = 0; k < K; k++) {
			double row = pd + po * (K - 1);

			for (uint32_t l = 0; l < K; l++)
				row += c[(size_t)l * K + k];
			for (uint32_t l = 0; l < K; l++) {
				double p = row > 0 ? (c[(size_t)l * K + k] + (l == k ? pd : po)) / row
						   : 1.0 / K;

				lp[(size_t)l * K + k] = log(p > CLIP ? p : CLIP);
			}
		}
	}
	set_logprior(e, pp);
}

/* E-step fused with the accumulation of the next M-step's counts. Inlined
 * with K constant for the common small label counts, so that the K-loops
 * are unrolled (about twice as fast for K = 2..4). */
static inline __attribute__((always_inline)) double ds_estep_k(struct em *e, uint32_t K)
{
	const struct tly_answers *a = e->a;
	double ll = 0.0;

	memset(e->cnt, 0, (size_t)e->nw * K * K * sizeof(double));
	memset(e->prior_acc, 0, K * sizeof(double));
	for (uint32_t q = 0; q < e->nq; q++) {
		double *t = e->T + (size_t)q * K;
		uint32_t b = a->q_off[q], end = a->q_off[q + 1];

		memcpy(e->lt, e->logprior, K * sizeof(double));
		for (uint32_t i = b; i < end; i++) {
			const double *lp = e->logpi + ((size_t)a->a_worker[i] * K + a->a_label[i]) * K;

			for (uint32_t k = 0; k < K; k++)
				e->lt[k] += lp[k];
		}
		if (is_gold(e->gold, q)) {
			ll += e->lt[e->gold[q]];
		} else {
			ll += softmax_row(e->lt, t, K);
		}
		for (uint32_t i = b; i < end; i++) {
			double *c = e->cnt + ((size_t)a->a_worker[i] * K + a->a_label[i]) * K;

			for (uint32_t k = 0; k < K; k++)
				c[k] += t[k];
		}
		for (uint32_t k = 0; k < K; k++)
			e->prior_acc[k] += t[k];
	}
	return ll;
}

static double ds_estep(struct em *e)
{
	switch (e->K) {
	case 2:
		return ds_estep_k(e, 2);
	case 3:
		return ds_estep_k(e, 3);
	case 4:
		return ds_estep_k(e, 4);
	default:
		return ds_estep_k(e, e->K);
	}
}

static void ds_quality(struct em *e, struct tly_agg_result *res)
{
	uint32_t K = e->K;

	for (uint32_t k = 0; k < K; k++)
		res->class_prior[k] = exp(e->logprior[k]);
	for (uint32_t w = 0; w < e->nw; w++) {
		const double *lp = e->logpi + (size_t)w * K * K;
		double qsum = 0.0;

		for (uint32_t k = 0; k < K; k++)
			qsum += res->class_prior[k] * exp(lp[(size_t)k * K + k]);
		res->worker_quality[w] = qsum;
	}
}

/* ---- one-coin Dawid-Skene ---------------------------------------------------- */

/* wa[w] = accuracy, wb[w] unused; logpi is not used: per worker we keep
 * log(off-diagonal) in cnt[w] and log(acc) - log(off) in logpi[w]. */
static void ods_mstep_from_corr(struct em *e, const double *corr, double pa, double pb)
{
	uint32_t K = e->K;

	for (uint32_t w = 0; w < e->nw; w++) {
		double n = e->wn[w] + pa + pb;
		double acc = n > 0 ? (corr[w] + pa) / n : 0.5;
		double off;

		if (acc < CLIP)
			acc = CLIP;
		if (acc > 1.0 - CLIP)
			acc = 1.0 - CLIP;
		off = (1.0 - acc) / (K - 1);
		e->wa[w] = acc;
		e->cnt[w] = log(off);
		e->logpi[w] = log(acc) - log(off);
	}
}

static double ods_estep(struct em *e, double *corr)
{
	const struct tly_answers *a = e->a;
	uint32_t K = e->K;
	double ll = 0.0;

	memset(corr, 0, e->nw * sizeof(double));
	memset(e->prior_acc, 0, K * sizeof(double));
	for (uint32_t q = 0; q < e->nq; q++) {
		double *t = e->T + (size_t)q * K;
		uint32_t b = a->q_off[q], end = a->q_off[q + 1];
		double base = 0.0;

		memcpy(e->lt, e->logprior, K * sizeof(double));
		for (uint32_t i = b; i < end; i++) {
			uint32_t w = a->a_worker[i];

			base += e->cnt[w];
			e->lt[a->a_label[i]] += e->logpi[w];
		}
		for (uint32_t k = 0; k < K; k++)
			e->lt[k] += base;
		if (is_gold(e->gold, q))
			ll += e->lt[e->gold[q]];
		else
			ll += softmax_row(e->lt, t, K);
		for (uint32_t i = b; i < end; i++)
			corr[a->a_worker[i]] += t[a->a_label[i]];
		for (uint32_t k = 0; k < K; k++)
			e->prior_acc[k] += t[k];
	}
	return ll;
}

static void corr_from_T(struct em *e, double *corr)
{
	const struct tly_answers *a = e->a;

	memset(corr, 0, e->nw * sizeof(double));
	for (uint32_t q = 0; q < e->nq; q++)
		for (uint32_t i = a->q_off[q]; i < a->q_off[q + 1]; i++)
			corr[a->a_worker[i]] += e->T[(size_t)q * e->K + a->a_label[i]];
}

/* Runs one-coin EM from the posteriors in e->T; leaves T at the result. */
static void ods_run(struct em *e, double pa, double pb, double pp,
		    unsigned max_iter, double tol, unsigned *iters, double *llout)
{
	double prev = 0.0, ll = 0.0;
	unsigned it;

	corr_from_T(e, e->wb);
	prior_from_T(e);
	ods_mstep_from_corr(e, e->wb, pa, pb);
	set_logprior(e, pp);
	for (it = 1; it <= max_iter; it++) {
		ll = ods_estep(e, e->wb);
		if (converged(ll, prev, it, tol, e))
			break;
		prev = ll;
		ods_mstep_from_corr(e, e->wb, pa, pb);
		set_logprior(e, pp);
	}
	*iters = it > max_iter ? max_iter : it;
	*llout = ll;
}

/* ---- MACE ------------------------------------------------------------------------- */

/* Parameters: wa[w] = theta (competence), logpi[w*K + l] = xi_w(l).
 * Accumulators: wb[w] = expected "knowing" count, cnt[w*K + l] = spam mass. */
/* Derived per (w, l): log P(answer l | truth != l), log-ratio of
 * P(answer l | truth = l) to that, and P(knowing | answer l, truth = l). */
static void mace_derive(struct em *e)
{
	uint32_t K = e->K;

	for (uint32_t w = 0; w < e->nw; w++) {
		double th = e->wa[w];

		for (uint32_t l = 0; l < K; l++) {
			double spam = (1.0 - th) * e->logpi[(size_t)w * K + l];
			double *x = e->aux + ((size_t)w * K + l) * 3;

			x[0] = log(spam);
			x[1] = log(th + spam) - x[0];
			x[2] = th / (th + spam);
		}
	}
}

static double mace_estep(struct em *e)
{
	const struct tly_answers *a = e->a;
	uint32_t K = e->K;
	double ll = 0.0;

	mace_derive(e);
	memset(e->wb, 0, e->nw * sizeof(double));
	memset(e->cnt, 0, (size_t)e->nw * K * sizeof(double));
	memset(e->prior_acc, 0, K * sizeof(double));
	for (uint32_t q = 0; q < e->nq; q++) {
		double *t = e->T + (size_t)q * K;
		uint32_t b = a->q_off[q], end = a->q_off[q + 1];
		double base = 0.0;

		memcpy(e->lt, e->logprior, K * sizeof(double));
		for (uint32_t i = b; i < end; i++) {
			uint32_t l = a->a_label[i];
			const double *x = e->aux + ((size_t)a->a_worker[i] * K + l) * 3;

			base += x[0];
			e->lt[l] += x[1];
		}
		for (uint32_t k = 0; k < K; k++)
			e->lt[k] += base;
		if (is_gold(e->gold, q))
			ll += e->lt[e->gold[q]];
		else
			ll += softmax_row(e->lt, t, K);
		for (uint32_t i = b; i < end; i++) {
			uint32_t w = a->a_worker[i], l = a->a_label[i];
			double know = t[l] * e->aux[((size_t)w * K + l) * 3 + 2];

			e->wb[w] += know;
			e->cnt[(size_t)w * K + l] += 1.0 - know;
		}
		for (uint32_t k = 0; k < K; k++)
			e->prior_acc[k] += t[k];
	}
	return ll;
}

static void mace_mstep(struct em *e, double s)
{
	uint32_t K = e->K;

	for (uint32_t w = 0; w < e->nw; w++) {
		double *sp = e->cnt + (size_t)w * K;
		double *xi = e->logpi + (size_t)w * K;
		double tot = s * K;

		e->wa[w] = (e->wb[w] + s) / (e->wn[w] + 2.0 * s);
		if (e->wa[w] > 1.0 - CLIP)
			e->wa[w] = 1.0 - CLIP;
		if (e->wa[w] < CLIP)
			e->wa[w] = CLIP;
		for (uint32_t l = 0; l < K; l++)
			tot += sp[l];
		for (uint32_t l = 0; l < K; l++) {
			xi[l] = (sp[l] + s) / tot;
			if (xi[l] < CLIP)
				xi[l] = CLIP;
		}
	}
}

/* ---- driver ------------------------------------------------------------------------- */

static int em_alloc(struct em *e, const struct tly_answers *a, enum tly_agg_method m,
		    char *err, size_t errlen)
{
	uint32_t K = a->n_labels;
	double need, cap;
	size_t per_w;

	e->K = K;
	e->nq = a->n_questions;
	e->nw = a->n_workers;
	per_w = (m == TLY_AGG_DS || m == TLY_AGG_DSP) ? (size_t)K * K : K;
	need = (double)e->nq * K + (double)e->nw * (double)per_w * 5.0;
	cap = mem_cap(a);
	if (need > cap) {
		tly__qerr_set(err, errlen,
			      "%u labels x %u workers x %u questions is too large for %s (use mv)",
			      K, e->nw, e->nq, tly_agg_method_name(m));
		return TLY_Q_ELIMIT;
	}
	e->T = malloc(((size_t)e->nq * K + 1) * sizeof(double));
	e->lt = malloc(((size_t)K + 1) * sizeof(double));
	e->logprior = malloc(((size_t)K + 1) * sizeof(double));
	e->prior_acc = malloc(((size_t)K + 1) * sizeof(double));
	e->cnt = malloc(((size_t)e->nw * per_w + 1) * sizeof(double));
	e->logpi = malloc(((size_t)e->nw * per_w + 1) * sizeof(double));
	e->wa = malloc(((size_t)e->nw + 1) * sizeof(double));
	e->wb = malloc(((size_t)e->nw + 1) * sizeof(double));
	e->wn = calloc((size_t)e->nw + 1, sizeof(double));
	if (m == TLY_AGG_MACE) {
		e->aux = malloc(((size_t)e->nw * K * 3 + 1) * sizeof(double));
		if (e->aux == NULL) {
			tly__qerr_set(err, errlen, "out of memory");
			return TLY_Q_ENOMEM;
		}
	}
	if (e->T == NULL || e->lt == NULL || e->logprior == NULL || e->prior_acc == NULL ||
	    e->cnt == NULL || e->logpi == NULL || e->wa == NULL || e->wb == NULL || e->wn == NULL) {
		tly__qerr_set(err, errlen, "out of memory");
		return TLY_Q_ENOMEM;
	}
	for (size_t i = 0; i < a->n_answers; i++)
		e->wn[a->a_worker[i]] += 1.0;
	return TLY_Q_OK;
}

static void fill_labels(const struct em *e, struct tly_agg_result *res)
{
	for (uint32_t q = 0; q < e->nq; q++) {
		const double *t = e->T + (size_t)q * e->K;
		uint32_t k = argmax(t, e->K);

		res->label[q] = k;
		res->confidence[q] = t[k];
		memcpy(res->posterior + (size_t)q * e->K, t, e->K * sizeof(*t));
	}
}

static int run_mv(const struct tly_answers *a, const int32_t *gold,
		  struct tly_agg_result *res, char *err, size_t errlen)
{
	uint32_t *cnt = NULL;
	uint64_t *tot = NULL;
	double *agree = NULL, *n = NULL;
	int rc = TLY_Q_ENOMEM;

	cnt = calloc((size_t)a->n_labels + 1, sizeof(*cnt));
	tot = calloc((size_t)a->n_labels + 1, sizeof(*tot));
	agree = calloc((size_t)a->n_workers + 1, sizeof(*agree));
	n = calloc((size_t)a->n_workers + 1, sizeof(*n));
	if (cnt == NULL || tot == NULL || agree == NULL || n == NULL) {
		tly__qerr_set(err, errlen, "out of memory");
		goto out;
	}
	for (uint32_t q = 0; q < a->n_questions; q++) {
		uint32_t b = a->q_off[q], end = a->q_off[q + 1];
		uint32_t best = UINT32_MAX, bc = 0;

		for (uint32_t i = b; i < end; i++) {
			uint32_t l = a->a_label[i];

			cnt[l]++;
			tot[l]++;
		}
		for (uint32_t i = b; i < end; i++) {
			uint32_t l = a->a_label[i];

			if (cnt[l] > bc || (cnt[l] == bc && l < best)) {
				best = l;
				bc = cnt[l];
			}
		}
		for (uint32_t i = b; i < end; i++)
			cnt[a->a_label[i]] = 0;
		if (res->posterior != NULL) {
			double *t = res->posterior + (size_t)q * a->n_labels;

			if (is_gold(gold, q))
				t[gold[q]] = 1.0;
			else
				for (uint32_t i = b; i < end; i++)
					t[a->a_label[i]] += 1.0 / (double)(end - b);
		}
		if (is_gold(gold, q)) {
			res->label[q] = (uint32_t)gold[q];
			res->confidence[q] = 1.0;
		} else {
			res->label[q] = best;
			res->confidence[q] = end > b ? (double)bc / (double)(end - b) : 0.0;
		}
		for (uint32_t i = b; i < end; i++) {
			n[a->a_worker[i]] += 1.0;
			agree[a->a_worker[i]] += a->a_label[i] == res->label[q];
		}
	}
	for (uint32_t w = 0; w < a->n_workers; w++)
		res->worker_quality[w] = n[w] > 0 ? agree[w] / n[w] : 0.0;
	for (uint32_t k = 0; k < a->n_labels; k++)
		res->class_prior[k] = a->n_answers ? (double)tot[k] / (double)a->n_answers : 0.0;
	rc = TLY_Q_OK;
out:
	free(cnt);
	free(tot);
	free(agree);
	free(n);
	return rc;
}

int tly_aggregate(const struct tly_answers *a, enum tly_agg_method m,
		  const int32_t *gold, const struct tly_agg_opts *opts,
		  struct tly_agg_result *res, char *err, size_t errlen)
{
	struct tly_agg_opts defaults;
	struct em e;
	unsigned it = 0;
	double ll = 0.0, prev = 0.0;
	int rc;

	memset(&e, 0, sizeof(e));
	memset(res, 0, sizeof(*res));
	tly_agg_opts_default(&defaults);
	if (opts == NULL)
		opts = &defaults;
	if ((unsigned)m > TLY_AGG_DSP) {
		tly__qerr_set(err, errlen, "unknown method %d", (int)m);
		return TLY_Q_EINVAL;
	}
	rc = check_input(a, gold, err, errlen);
	if (rc != TLY_Q_OK)
		return rc;
	rc = res_alloc(res, a);
	if (rc != TLY_Q_OK) {
		tly__qerr_set(err, errlen, "out of memory");
		goto out;
	}
	/* With fewer than two labels there is nothing to infer: MV is exact. */
	if (m == TLY_AGG_MV || a->n_labels < 2) {
		rc = run_mv(a, gold, res, err, errlen);
		goto out;
	}
	rc = em_alloc(&e, a, m, err, errlen);
	if (rc != TLY_Q_OK)
		goto out;
	e.a = a;
	e.gold = gold;
	e.o = opts;
	mv_posteriors(&e);

	switch (m) {
	case TLY_AGG_DS:
	case TLY_AGG_DSP: {
		int map = m == TLY_AGG_DSP;
		double pd = map ? opts->prior_diag : 0.0;
		double po = map ? opts->prior_off : 0.0;
		double pp = map ? opts->prior_class : 0.0;
		double tol = map ? opts->dsp_tol : opts->tol;

		ds_accumulate_from_T(&e);
		ds_mstep(&e, pd, po, pp);
		for (it = 1; it <= opts->max_iter; it++) {
			ll = ds_estep(&e);
			if (converged(ll, prev, it, tol, &e))
				break;
			prev = ll;
			ds_mstep(&e, pd, po, pp);
		}
		ds_quality(&e, res);
		break;
	}
	case TLY_AGG_ODS:
		ods_run(&e, 0.0, 0.0, 0.0, opts->max_iter, opts->tol, &it, &ll);
		for (uint32_t w = 0; w < e.nw; w++)
			res->worker_quality[w] = e.wa[w];
		for (uint32_t k = 0; k < e.K; k++)
			res->class_prior[k] = exp(e.logprior[k]);
		break;
	case TLY_AGG_MACE:
		/* start: every worker 80% competent, uniform spam and class priors */
		for (uint32_t k = 0; k < e.K; k++)
			e.logprior[k] = -log((double)e.K);
		for (uint32_t w = 0; w < e.nw; w++) {
			e.wa[w] = 0.8;
			for (uint32_t l = 0; l < e.K; l++)
				e.logpi[(size_t)w * e.K + l] = 1.0 / e.K;
		}
		for (it = 1; it <= opts->max_iter; it++) {
			ll = mace_estep(&e);
			if (converged(ll, prev, it, opts->tol, &e))
				break;
			prev = ll;
			mace_mstep(&e, opts->mace_smooth);
			set_logprior(&e, opts->mace_smooth);
		}
		for (uint32_t w = 0; w < e.nw; w++)
			res->worker_quality[w] = e.wa[w];
		for (uint32_t k = 0; k < e.K; k++)
			res->class_prior[k] = exp(e.logprior[k]);
		break;
	default:
		break;
	}
	if (it > opts->max_iter)
		it = opts->max_iter;
	res->iterations = it;
	res->log_likelihood = ll;
	fill_labels(&e, res);
	rc = TLY_Q_OK;
out:
	em_free(&e);
	if (rc != TLY_Q_OK)
		tly_agg_result_release(res);
	return rc;
}

int tly_aggregate_mv(const struct tly_answers *a, const int32_t *gold,
		     struct tly_agg_result *res, char *err, size_t errlen)
{
	return tly_aggregate(a, TLY_AGG_MV, gold, NULL, res, err, errlen);
}

int tly_aggregate_ds(const struct tly_answers *a, const int32_t *gold,
		     const struct tly_agg_opts *opts, struct tly_agg_result *res,
		     char *err, size_t errlen)
{
	return tly_aggregate(a, TLY_AGG_DS, gold, opts, res, err, errlen);
}

int tly_aggregate_ods(const struct tly_answers *a, const int32_t *gold,
		      const struct tly_agg_opts *opts, struct tly_agg_result *res,
		      char *err, size_t errlen)
{
	return tly_aggregate(a, TLY_AGG_ODS, gold, opts, res, err, errlen);
}

int tly_aggregate_mace(const struct tly_answers *a, const int32_t *gold,
		       const struct tly_agg_opts *opts, struct tly_agg_result *res,
		       char *err, size_t errlen)
{
	return tly_aggregate(a, TLY_AGG_MACE, gold, opts, res, err, errlen);
}

int tly_aggregate_dsp(const struct tly_answers *a, const int32_t *gold,
		      const struct tly_agg_opts *opts, struct tly_agg_result *res,
		      char *err, size_t errlen)
{
	return tly_aggregate(a, TLY_AGG_DSP, gold, opts, res, err, errlen);
}
