/*
 * labels.h - an answer set: (question, worker, label) triples with every
 * string interned once into a dense id, laid out per question (CSR).
 *
 * Life cycle:
 *   tly_answers_init(&a);
 *   tly_answers_add(&a, q, qlen, w, wlen, l, llen, line, ...);   many times
 *   tly_answers_add_label(&a, ...);            optional: labels seen elsewhere (gold)
 *   tly_answers_finish(&a, ...);               sorts labels, builds the CSR arrays
 *   ... read the fields below, or pass &a to aggregate.h / agreement.h ...
 *   tly_answers_release(&a);
 *
 * Ids: questions and workers are numbered in order of first appearance.
 * Labels are numbered after tly_answers_finish in a fixed order: numerically
 * when every label parses as a finite number (strtod, whole string), else by
 * bytes (memcmp, shorter first on a common prefix); equal numbers ("1", "1.0")
 * fall back to byte order. So "the smallest label index" means the smallest
 * label in that order, whatever the order of the input.
 *
 * Ownership: the set owns every array and string; pointers obtained from it
 * stay valid until tly_answers_release. No allocation per answer: the arrays
 * grow geometrically. Limits: fewer than 2^32-1 answers, questions, workers,
 * labels; strings of at most TLY_ANSWERS_STR_MAX bytes.
 *
 * The same worker answering the same question twice is refused by
 * tly_answers_finish (TLY_Q_EINVAL; *bad_line gets the line of the repeat).
 */
#ifndef TLY_QUALITY_LABELS_H
#define TLY_QUALITY_LABELS_H

#include <stddef.h>
#include <stdint.h>
#include "quality/qerror.h"

#define TLY_ANSWERS_STR_MAX 65536u

/* A string interning table: id -> bytes, bytes -> id (open addressing).
 * Fields are read-only for users: n is the number of strings. */
struct tly_strtab {
	char *bytes;         /* all strings, each NUL-terminated */
	size_t nbytes, capbytes;
	size_t *off;         /* per id: offset into bytes */
	uint32_t *len;       /* per id: length */
	uint32_t n, capids;
	uint32_t *slots;     /* id + 1, 0 = empty */
	uint32_t nslots;     /* power of two */
};

struct tly_answers {
	struct tly_strtab questions, workers, labels;
	int finished;
	/* build phase: triples in input order */
	uint32_t *in_q, *in_w, *in_l, *in_line;
	size_t n_in, cap_in;
	/* after tly_answers_finish (read-only for users): */
	uint32_t n_questions, n_workers, n_labels;
	size_t n_answers;
	uint32_t *q_off;     /* n_questions + 1: answers of question q are [q_off[q], q_off[q+1]) */
	uint32_t *a_worker;  /* n_answers: worker id of each answer, grouped by question */
	uint32_t *a_label;   /* n_answers: label id of each answer (in the sorted order) */
	uint32_t *a_line;    /* n_answers: line given to tly_answers_add */
	double *label_value; /* n_labels: numeric value of each label, NaN when not a number */
	int labels_numeric;  /* 1 when every label is a number */
};

void tly_answers_init(struct tly_answers *a);

/* Adds one answer. line is the caller's reference (a CSV line number), kept
 * for error messages. Returns TLY_Q_OK, TLY_Q_ENOMEM, TLY_Q_ELIMIT, or
 * TLY_Q_EINVAL if called after finish. */
int tly_answers_add(struct tly_answers *a, const char *q, size_t qlen,
		    const char *w, size_t wlen, const char *l, size_t llen,
		    uint32_t line, char *err, size_t errlen);

/* Adds a label that no answer may use (e.g. a gold label), before finish. */
int tly_answers_add_label(struct tly_answers *a, const char *l, size_t llen,
			  char *err, size_t errlen);

/* Sorts labels, builds the CSR arrays, frees the build arrays, checks for
 * repeated (question, worker) pairs. An empty set is valid (all counts 0).
 * On TLY_Q_EINVAL, *bad_line (if not NULL) gets the line of the offending answer. */
int tly_answers_finish(struct tly_answers *a, uint32_t *bad_line, char *err, size_t errlen);

/* Lookups after finish: the id, or UINT32_MAX when unknown. */
uint32_t tly_answers_question_id(const struct tly_answers *a, const char *s, size_t n);
uint32_t tly_answers_worker_id(const struct tly_answers *a, const char *s, size_t n);
uint32_t tly_answers_label_id(const struct tly_answers *a, const char *s, size_t n);

/* Names of ids (NUL-terminated; *len may be NULL). */
const char *tly_answers_question_name(const struct tly_answers *a, uint32_t id, size_t *len);
const char *tly_answers_worker_name(const struct tly_answers *a, uint32_t id, size_t *len);
const char *tly_answers_label_name(const struct tly_answers *a, uint32_t id, size_t *len);

void tly_answers_release(struct tly_answers *a);

/* String table: interns byte strings (at most TLY_ANSWERS_STR_MAX bytes) into
 * dense ids 0..n-1 in order of first appearance. The table owns its copies;
 * pointers from tly_strtab_get stay valid until the next intern or release. */
void tly_strtab_init(struct tly_strtab *t);
/* *id gets the id of s (new or existing); *is_new is set when not NULL.
 * Returns TLY_Q_OK, TLY_Q_ELIMIT (too long, too many) or TLY_Q_ENOMEM. */
int tly_strtab_intern(struct tly_strtab *t, const char *s, size_t n, uint32_t *id, int *is_new);
/* The id of s, or UINT32_MAX. */
uint32_t tly_strtab_find(const struct tly_strtab *t, const char *s, size_t n);
const char *tly_strtab_get(const struct tly_strtab *t, uint32_t id, size_t *len);
void tly_strtab_release(struct tly_strtab *t);

#endif
