/*
 * labels.c - answer set: string interning and the per-question CSR layout.
 */
#include "quality/labels.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- string table -------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;   /* FNV-1a 64 */

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h ^ (h >> 29);
}

void tly_strtab_init(struct tly_strtab *t)
{
	memset(t, 0, sizeof(*t));
}

void tly_strtab_release(struct tly_strtab *t)
{
	free(t->bytes);
	free(t->off);
	free(t->len);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

const char *tly_strtab_get(const struct tly_strtab *t, uint32_t id, size_t *len)
{
	if (len != NULL)
		*len = t->len[id];
	return t->bytes + t->off[id];
}

static int streq_id(const struct tly_strtab *t, uint32_t id, const char *s, size_t n)
{
	return t->len[id] == n && memcmp(t->bytes + t->off[id], s, n) == 0;
}

uint32_t tly_strtab_find(const struct tly_strtab *t, const char *s, size_t n)
{
	if (t->nslots == 0)
		return UINT32_MAX;
	uint32_t mask = t->nslots - 1;
	uint32_t i = (uint32_t)hash_bytes(s, n) & mask;

	while (t->slots[i] != 0) {
		uint32_t id = t->slots[i] - 1;

		if (streq_id(t, id, s, n))
			return id;
		i = (i + 1) & mask;
	}
	return UINT32_MAX;
}

static int rehash(struct tly_strtab *t, uint32_t nslots)
{
	uint32_t *slots = calloc(nslots, sizeof(*slots));
	uint32_t mask = nslots - 1;

	if (slots == NULL)
		return TLY_Q_ENOMEM;
	for (uint32_t id = 0; id < t->n; id++) {
		uint32_t i = (uint32_t)hash_bytes(t->bytes + t->off[id], t->len[id]) & mask;

		while (slots[i] != 0)
			i = (i + 1) & mask;
		slots[i] = id + 1;
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = nslots;
	return TLY_Q_OK;
}

int tly_strtab_intern(struct tly_strtab *t, const char *s, size_t n, uint32_t *id, int *is_new)
{
	uint32_t found = tly_strtab_find(t, s, n);

	if (is_new != NULL)
		*is_new = 0;
	if (found != UINT32_MAX) {
		*id = found;
		return TLY_Q_OK;
	}
	if (n > TLY_ANSWERS_STR_MAX || t->n >= UINT32_MAX / 4)
		return TLY_Q_ELIMIT;
	/* keep the load factor under 1/2 */
	if ((uint64_t)(t->n + 1) * 2 > t->nslots) {
		uint32_t ns = t->nslots ? t->nslots * 2 : 64;

		if (rehash(t, ns) != TLY_Q_OK)
			return TLY_Q_ENOMEM;
	}
	if (t->n == t->capids) {
		uint32_t nc = t->capids ? t->capids * 2 : 64;
		size_t *off = realloc(t->off, nc * sizeof(*off));

		if (off == NULL)
			return TLY_Q_ENOMEM;
		t->off = off;
		uint32_t *len = realloc(t->len, nc * sizeof(*len));

		if (len == NULL)
			return TLY_Q_ENOMEM;
		t->len = len;
		t->capids = nc;
	}
	if (t->nbytes + n + 1 > t->capbytes) {
		size_t nc = t->capbytes ? t->capbytes : 1024;

		while (nc < t->nbytes + n + 1)
			nc *= 2;
		char *b = realloc(t->bytes, nc);

		if (b == NULL)
			return TLY_Q_ENOMEM;
		t->bytes = b;
		t->capbytes = nc;
	}
	memcpy(t->bytes + t->nbytes, s, n);
	t->bytes[t->nbytes + n] = '\0';
	t->off[t->n] = t->nbytes;
	t->len[t->n] = (uint32_t)n;
	t->nbytes += n + 1;

	uint32_t mask = t->nslots - 1;
	uint32_t i = (uint32_t)hash_bytes(s, n) & mask;

	while (t->slots[i] != 0)
		i = (i + 1) & mask;
	t->slots[i] = t->n + 1;
	*id = t->n++;
	if (is_new != NULL)
		*is_new = 1;
	return TLY_Q_OK;
}

/* ---- answer set ---------------------------------------------------------- */

void tly_answers_init(struct tly_answers *a)
{
	memset(a, 0, sizeof(*a));
	tly_strtab_init(&a->questions);
	tly_strtab_init(&a->workers);
	tly_strtab_init(&a->labels);
}

void tly_answers_release(struct tly_answers *a)
{
	tly_strtab_release(&a->questions);
	tly_strtab_release(&a->workers);
	tly_strtab_release(&a->labels);
	free(a->in_q);
	free(a->in_w);
	free(a->in_l);
	free(a->in_line);
	free(a->q_off);
	free(a->a_worker);
	free(a->a_label);
	free(a->a_line);
	free(a->label_value);
	memset(a, 0, sizeof(*a));
}

static int grow_u32(uint32_t **p, size_t cap)
{
	uint32_t *n = realloc(*p, cap * sizeof(**p));

	if (n == NULL)
		return TLY_Q_ENOMEM;
	*p = n;
	return TLY_Q_OK;
}

static int intern_err(int rc, const char *what, char *err, size_t errlen)
{
	if (rc == TLY_Q_ELIMIT)
		tly__qerr_set(err, errlen, "%s longer than %u bytes or too many distinct values",
			      what, TLY_ANSWERS_STR_MAX);
	else
		tly__qerr_set(err, errlen, "out of memory");
	return rc;
}

int tly_answers_add(struct tly_answers *a, const char *q, size_t qlen,
		    const char *w, size_t wlen, const char *l, size_t llen,
		    uint32_t line, char *err, size_t errlen)
{
	uint32_t qi, wi, li;
	int rc;

	if (a->finished) {
		tly__qerr_set(err, errlen, "answer set already finished");
		return TLY_Q_EINVAL;
	}
	if (a->n_in >= UINT32_MAX - 1) {
		tly__qerr_set(err, errlen, "too many answers");
		return TLY_Q_ELIMIT;
	}
	rc = tly_strtab_intern(&a->questions, q, qlen, &qi, NULL);
	if (rc != TLY_Q_OK)
		return intern_err(rc, "question", err, errlen);
	rc = tly_strtab_intern(&a->workers, w, wlen, &wi, NULL);
	if (rc != TLY_Q_OK)
		return intern_err(rc, "worker", err, errlen);
	rc = tly_strtab_intern(&a->labels, l, llen, &li, NULL);
	if (rc != TLY_Q_OK)
		return intern_err(rc, "label", err, errlen);
	if (a->n_in == a->cap_in) {
		size_t nc = a->cap_in ? a->cap_in * 2 : 1024;

		if (grow_u32(&a->in_q, nc) || grow_u32(&a->in_w, nc) ||
		    grow_u32(&a->in_l, nc) || grow_u32(&a->in_line, nc))
			return intern_err(TLY_Q_ENOMEM, "", err, errlen);
		a->cap_in = nc;
	}
	a->in_q[a->n_in] = qi;
	a->in_w[a->n_in] = wi;
	a->in_l[a->n_in] = li;
	a->in_line[a->n_in] = line;
	a->n_in++;
	return TLY_Q_OK;
}

int tly_answers_add_label(struct tly_answers *a, const char *l, size_t llen,
			  char *err, size_t errlen)
{
	uint32_t li;
	int rc;

	if (a->finished) {
		tly__qerr_set(err, errlen, "answer set already finished");
		return TLY_Q_EINVAL;
	}
	rc = tly_strtab_intern(&a->labels, l, llen, &li, NULL);
	if (rc != TLY_Q_OK)
		return intern_err(rc, "label", err, errlen);
	return TLY_Q_OK;
}

/* Parses a whole string as a finite number; 1 on success. */
static int parse_number(const char *s, size_t n, double *out)
{
	char *end;
	double v;

	if (n == 0 || n > 64 || s[0] == ' ' || s[0] == '\t' || s[0] == '\n')
		return 0;
	errno = 0;
	v = strtod(s, &end);
	if (end != s + n || errno == ERANGE || !isfinite(v))
		return 0;
	*out = v;
	return 1;
}

/* qsort has no context argument: sort self-contained records instead. */
struct label_rec {
	const char *s;
	size_t n;
	double v;
	uint32_t old;
};

static int cmp_bytes(const struct label_rec *x, const struct label_rec *y)
{
	size_t m = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->s, y->s, m);

	if (c != 0)
		return c;
	return (x->n > y->n) - (x->n < y->n);
}

static int cmp_label_num(const void *pa, const void *pb)
{
	const struct label_rec *x = pa, *y = pb;

	if (x->v < y->v)
		return -1;
	if (x->v > y->v)
		return 1;
	return cmp_bytes(x, y);
}

static int cmp_label_str(const void *pa, const void *pb)
{
	return cmp_bytes(pa, pb);
}

int tly_answers_finish(struct tly_answers *a, uint32_t *bad_line, char *err, size_t errlen)
{
	struct label_rec *recs = NULL;
	uint32_t *remap = NULL, *fill = NULL, *seen = NULL;
	struct tly_strtab sorted;
	uint32_t nl = a->labels.n, nq = a->questions.n, nw = a->workers.n;
	size_t n = a->n_in;
	int rc = TLY_Q_ENOMEM;

	tly_strtab_init(&sorted);
	if (a->finished) {
		tly__qerr_set(err, errlen, "answer set already finished");
		return TLY_Q_EINVAL;
	}
	/* 1. order the labels */
	recs = calloc(nl ? nl : 1, sizeof(*recs));
	remap = calloc(nl ? nl : 1, sizeof(*remap));
	a->label_value = calloc(nl ? nl : 1, sizeof(*a->label_value));
	if (recs == NULL || remap == NULL || a->label_value == NULL)
		goto oom;
	a->labels_numeric = nl > 0;
	for (uint32_t i = 0; i < nl; i++) {
		recs[i].s = tly_strtab_get(&a->labels, i, &recs[i].n);
		recs[i].old = i;
		if (!parse_number(recs[i].s, recs[i].n, &recs[i].v)) {
			recs[i].v = NAN;
			a->labels_numeric = 0;
		}
	}
	qsort(recs, nl, sizeof(*recs), a->labels_numeric ? cmp_label_num : cmp_label_str);
	for (uint32_t i = 0; i < nl; i++) {
		uint32_t id;

		if (tly_strtab_intern(&sorted, recs[i].s, recs[i].n, &id, NULL) != TLY_Q_OK)
			goto oom;
		remap[recs[i].old] = id;
		a->label_value[id] = recs[i].v;
	}
	tly_strtab_release(&a->labels);
	a->labels = sorted;
	tly_strtab_init(&sorted);

	/* 2. CSR by question, stable (input order within a question) */
	a->q_off = calloc((size_t)nq + 1, sizeof(*a->q_off));
	a->a_worker = malloc((n ? n : 1) * sizeof(*a->a_worker));
	a->a_label = malloc((n ? n : 1) * sizeof(*a->a_label));
	a->a_line = malloc((n ? n : 1) * sizeof(*a->a_line));
	fill = malloc(((size_t)nq + 1) * sizeof(*fill));
	if (a->q_off == NULL || a->a_worker == NULL || a->a_label == NULL ||
	    a->a_line == NULL || fill == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++)
		a->q_off[a->in_q[i] + 1]++;
	for (uint32_t q = 0; q < nq; q++)
		a->q_off[q + 1] += a->q_off[q];
	memcpy(fill, a->q_off, ((size_t)nq + 1) * sizeof(*fill));
	for (size_t i = 0; i < n; i++) {
		uint32_t at = fill[a->in_q[i]]++;

		a->a_worker[at] = a->in_w[i];
		a->a_label[at] = remap[a->in_l[i]];
		a->a_line[at] = a->in_line[i];
	}

	/* 3. one answer per (question, worker) */
	seen = malloc((nw ? nw : 1) * sizeof(*seen));
	if (seen == NULL)
		goto oom;
	for (uint32_t w = 0; w < nw; w++)
		seen[w] = UINT32_MAX;
	for (uint32_t q = 0; q < nq; q++) {
		for (uint32_t i = a->q_off[q]; i < a->q_off[q + 1]; i++) {
			uint32_t w = a->a_worker[i];

			if (seen[w] != UINT32_MAX && seen[w] >= a->q_off[q]) {
				if (bad_line != NULL)
					*bad_line = a->a_line[i];
				tly__qerr_set(err, errlen,
					      "worker '%s' already answered question '%s' (line %u)",
					      tly_strtab_get(&a->workers, w, NULL),
					      tly_strtab_get(&a->questions, q, NULL),
					      a->a_line[seen[w]]);
				rc = TLY_Q_EINVAL;
				goto out;
			}
			seen[w] = i;
		}
	}
	free(a->in_q);
	free(a->in_w);
	free(a->in_l);
	free(a->in_line);
	a->in_q = a->in_w = a->in_l = a->in_line = NULL;
	a->n_in = a->cap_in = 0;
	a->n_questions = nq;
	a->n_workers = nw;
	a->n_labels = nl;
	a->n_answers = n;
	a->finished = 1;
	rc = TLY_Q_OK;
	goto out;
oom:
	tly__qerr_set(err, errlen, "out of memory");
out:
	tly_strtab_release(&sorted);
	free(recs);
	free(remap);
	free(fill);
	free(seen);
	return rc;
}

uint32_t tly_answers_question_id(const struct tly_answers *a, const char *s, size_t n)
{
	return tly_strtab_find(&a->questions, s, n);
}

uint32_t tly_answers_worker_id(const struct tly_answers *a, const char *s, size_t n)
{
	return tly_strtab_find(&a->workers, s, n);
}

uint32_t tly_answers_label_id(const struct tly_answers *a, const char *s, size_t n)
{
	return a->finished ? tly_strtab_find(&a->labels, s, n) : UINT32_MAX;
}

const char *tly_answers_question_name(const struct tly_answers *a, uint32_t id, size_t *len)
{
	return tly_strtab_get(&a->questions, id, len);
}

const char *tly_answers_worker_name(const struct tly_answers *a, uint32_t id, size_t *len)
{
	return tly_strtab_get(&a->workers, id, len);
}

const char *tly_answers_label_name(const struct tly_answers *a, uint32_t id, size_t *len)
{
	return tly_strtab_get(&a->labels, id, len);
}
