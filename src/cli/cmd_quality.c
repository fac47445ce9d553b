/*
 * cmd_quality.c - `tally aggregate` and `tally agreement`: thin front ends
 * over src/lib/quality. They read a `question,worker,answer` CSV (header
 * required, RFC 4180), report bad input as `FILE:LINE: why` and exit 1.
 */
#include "cli/cmd_quality.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quality/aggregate.h"
#include "quality/agreement.h"
#include "quality/csvread.h"
#include "quality/labels.h"

#define ERRLEN 512

static const char aggregate_usage[] =
	"usage: tally aggregate [--method mv|ds|ods|mace|dsp] [--gold GOLDFILE] FILE\n"
	"  FILE: question,worker,answer CSV with a header ('-' reads stdin)\n"
	"  GOLDFILE: question,label CSV with a header: known answers\n"
	"  default method: dsp (Dawid-Skene with a Dirichlet prior)\n";

static const char agreement_usage[] =
	"usage: tally agreement --metric cohen|fleiss|alpha [--weights none|linear|quadratic]\n"
	"                       [--level nominal|ordinal|interval|ratio] FILE\n";

/* Opens path for reading ("-" = stdin). */
static FILE *open_input(const char *path)
{
	if (strcmp(path, "-") == 0)
		return stdin;
	return fopen(path, "r");
}

static void close_input(FILE *fp)
{
	if (fp != NULL && fp != stdin)
		fclose(fp);
}

static int header_is(const struct tly_csv *csv, const char *const *names, size_t n)
{
	if (csv->nfields != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const char *f = tly_csv_field(csv, i, &len);

		if (names[i] != NULL && (len != strlen(names[i]) || memcmp(f, names[i], len) != 0))
			return 0;
	}
	return 1;
}

/* A CSV input of this command: a header with `nfields` columns (names[i] NULL
 * matches any name), then rows handed to row(); every fault is reported as
 * FILE:LINE: why. Returns 0, or 1 once reported. */
struct csv_input {
	const char *const *names;
	size_t nfields;
	const char *header;    /* the header as shown in messages */
	int (*row)(void *arg, const struct tly_csv *csv, const char *path, unsigned long line);
	void *arg;
};

static int read_csv(const char *path, const struct csv_input *in)
{
	struct tly_csv csv;
	char err[ERRLEN];
	FILE *fp = open_input(path);
	int rc = 1, r, first = 1;

	memset(&csv, 0, sizeof(csv));
	if (fp == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 1;
	}
	if (tly_csv_init(&csv, fp, 0, 0) != TLY_Q_OK) {
		fprintf(stderr, "%s: out of memory\n", path);
		goto out;
	}
	while ((r = tly_csv_read(&csv, err, sizeof(err))) == 1) {
		unsigned long line = tly_csv_line(&csv);

		if (first) {
			first = 0;
			if (!header_is(&csv, in->names, in->nfields)) {
				fprintf(stderr, "%s:%lu: expected the header %s\n", path, line, in->header);
				goto out;
			}
			continue;
		}
		if (csv.nfields != in->nfields) {
			fprintf(stderr, "%s:%lu: expected %zu fields (%s), got %zu\n", path, line,
				in->nfields, in->header, csv.nfields);
			goto out;
		}
		if (in->row(in->arg, &csv, path, line) != 0)
			goto out;
	}
	if (r < 0) {
		fprintf(stderr, "%s:%lu: %s\n", path, tly_csv_line(&csv), err);
		goto out;
	}
	if (first) {
		fprintf(stderr, "%s:1: empty file: expected the header %s\n", path, in->header);
		goto out;
	}
	rc = 0;
out:
	tly_csv_release(&csv);
	close_input(fp);
	return rc;
}

static int answer_row(void *arg, const struct tly_csv *csv, const char *path, unsigned long line)
{
	static const char *const what[] = { "question", "worker", "answer" };
	struct tly_answers *a = arg;
	char err[ERRLEN];
	const char *f[3];
	size_t len[3];

	for (int i = 0; i < 3; i++) {
		f[i] = tly_csv_field(csv, (size_t)i, &len[i]);
		if (len[i] == 0) {
			fprintf(stderr, "%s:%lu: empty %s\n", path, line, what[i]);
			return 1;
		}
	}
	if (line > UINT32_MAX) {
		fprintf(stderr, "%s:%lu: file too long\n", path, line);
		return 1;
	}
	if (tly_answers_add(a, f[0], len[0], f[1], len[1], f[2], len[2], (uint32_t)line, err,
			    sizeof(err)) != TLY_Q_OK) {
		fprintf(stderr, "%s:%lu: %s\n", path, line, err);
		return 1;
	}
	return 0;
}

/* Reads the answers of path into a (not finished). Returns 0 or 1 (reported). */
static int read_answers(const char *path, struct tly_answers *a)
{
	static const char *const hdr[] = { "question", "worker", "answer" };
	const struct csv_input in = { hdr, 3, "question,worker,answer", answer_row, a };

	return read_csv(path, &in);
}

static int finish_answers(const char *path, struct tly_answers *a)
{
	char err[ERRLEN];
	uint32_t bad = 0;

	if (tly_answers_finish(a, &bad, err, sizeof(err)) != TLY_Q_OK) {
		if (bad)
			fprintf(stderr, "%s:%u: %s\n", path, bad, err);
		else
			fprintf(stderr, "%s: %s\n", path, err);
		return 1;
	}
	return 0;
}

/* Gold answers: question -> label string, kept until the answer set is finished. */
struct gold {
	struct tly_strtab questions;
	struct tly_strtab labels;
	uint32_t *label_of;   /* per gold question: id in labels */
	size_t cap;
};

static void gold_release(struct gold *g)
{
	tly_strtab_release(&g->questions);
	tly_strtab_release(&g->labels);
	free(g->label_of);
	memset(g, 0, sizeof(*g));
}

struct gold_ctx {
	struct gold *g;
	struct tly_answers *a;
};

static int gold_row(void *arg, const struct tly_csv *csv, const char *path, unsigned long line)
{
	struct gold_ctx *c = arg;
	struct gold *g = c->g;
	char err[ERRLEN];
	size_t ql, ll;
	const char *q = tly_csv_field(csv, 0, &ql), *l = tly_csv_field(csv, 1, &ll);
	uint32_t qi, li;
	int is_new;

	if (ql == 0 || ll == 0) {
		fprintf(stderr, "%s:%lu: empty %s\n", path, line, ql == 0 ? "question" : "label");
		return 1;
	}
	if (tly_strtab_intern(&g->questions, q, ql, &qi, &is_new) != TLY_Q_OK ||
	    tly_strtab_intern(&g->labels, l, ll, &li, NULL) != TLY_Q_OK) {
		fprintf(stderr, "%s:%lu: value too long or out of memory\n", path, line);
		return 1;
	}
	if (!is_new) {
		fprintf(stderr, "%s:%lu: question '%s' given twice\n", path, line, q);
		return 1;
	}
	if (qi >= g->cap) {
		size_t nc = g->cap ? g->cap * 2 : 256;
		uint32_t *p = realloc(g->label_of, nc * sizeof(*p));

		if (p == NULL) {
			fprintf(stderr, "%s: out of memory\n", path);
			return 1;
		}
		g->label_of = p;
		g->cap = nc;
	}
	g->label_of[qi] = li;
	if (tly_answers_add_label(c->a, l, ll, err, sizeof(err)) != TLY_Q_OK) {
		fprintf(stderr, "%s:%lu: %s\n", path, line, err);
		return 1;
	}
	return 0;
}

static int read_gold(const char *path, struct gold *g, struct tly_answers *a)
{
	static const char *const hdr[] = { "question", NULL };
	struct gold_ctx c = { g, a };
	const struct csv_input in = { hdr, 2, "question,label", gold_row, &c };

	return read_csv(path, &in);
}

/* Writes s as one CSV field, quoted when needed. */
static void put_field(const char *s, size_t n, FILE *out)
{
	if (strcspn(s, ",\"\r\n") >= n) {
		fwrite(s, 1, n, out);
		return;
	}
	putc('"', out);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			putc('"', out);
		putc(s[i], out);
	}
	putc('"', out);
}

/* Takes "--name VALUE" or "--name=VALUE" at argv[*i]; NULL if not that option. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, int *missing)
{
	size_t n = strlen(name);
	const char *arg = argv[*i];

	if (strncmp(arg, name, n) != 0)
		return NULL;
	if (arg[n] == '=')
		return arg + n + 1;
	if (arg[n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

int tly_cmd_aggregate(int argc, char **argv)
{
	struct tly_answers a;
	struct tly_agg_result res;
	struct gold g;
	const char *file = NULL, *gold_path = NULL, *v;
	int32_t *gold = NULL;
	int method = TLY_AGG_DSP, rc = 1, missing = 0;
	char err[ERRLEN];

	tly_answers_init(&a);
	memset(&res, 0, sizeof(res));
	memset(&g, 0, sizeof(g));
	for (int i = 1; i < argc; i++) {
		if ((v = opt_value(argc, argv, &i, "--method", &missing)) != NULL) {
			method = tly_agg_method_parse(v);
			if (method < 0) {
				fprintf(stderr, "tally aggregate: unknown method '%s'\n%s", v, aggregate_usage);
				goto out;
			}
		} else if ((v = opt_value(argc, argv, &i, "--gold", &missing)) != NULL) {
			gold_path = v;
		} else if (missing) {
			fprintf(stderr, "tally aggregate: %s needs a value\n%s", argv[i], aggregate_usage);
			goto out;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(aggregate_usage, stdout);
			rc = 0;
			goto out;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "tally aggregate: unknown option '%s'\n%s", argv[i], aggregate_usage);
			goto out;
		} else if (file == NULL) {
			file = argv[i];
		} else {
			fprintf(stderr, "tally aggregate: one FILE only\n%s", aggregate_usage);
			goto out;
		}
	}
	if (file == NULL) {
		fprintf(stderr, "tally aggregate: FILE missing\n%s", aggregate_usage);
		goto out;
	}
	if (read_answers(file, &a) != 0)
		goto out;
	if (gold_path != NULL && read_gold(gold_path, &g, &a) != 0)
		goto out;
	if (finish_answers(file, &a) != 0)
		goto out;
	if (gold_path != NULL) {
		gold = malloc(((size_t)a.n_questions + 1) * sizeof(*gold));
		if (gold == NULL) {
			fprintf(stderr, "tally aggregate: out of memory\n");
			goto out;
		}
		for (uint32_t q = 0; q < a.n_questions; q++)
			gold[q] = TLY_AGG_NO_GOLD;
		for (uint32_t gq = 0; gq < g.questions.n; gq++) {
			size_t ql, ll;
			const char *qs = tly_strtab_get(&g.questions, gq, &ql);
			const char *ls = tly_strtab_get(&g.labels, g.label_of[gq], &ll);
			uint32_t q = tly_answers_question_id(&a, qs, ql);

			if (q != UINT32_MAX)   /* gold for a question nobody answered: unused */
				gold[q] = (int32_t)tly_answers_label_id(&a, ls, ll);
		}
	}
	if (tly_aggregate(&a, (enum tly_agg_method)method, gold, NULL, &res, err, sizeof(err)) != TLY_Q_OK) {
		fprintf(stderr, "%s: %s\n", file, err);
		goto out;
	}
	fputs("question,label,confidence\n", stdout);
	for (uint32_t q = 0; q < a.n_questions; q++) {
		size_t n;
		const char *s = tly_answers_question_name(&a, q, &n);

		put_field(s, n, stdout);
		putc(',', stdout);
		s = tly_answers_label_name(&a, res.label[q], &n);
		put_field(s, n, stdout);
		printf(",%.6f\n", res.confidence[q]);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "tally aggregate: write error: %s\n", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	tly_agg_result_release(&res);
	tly_answers_release(&a);
	gold_release(&g);
	free(gold);
	return rc;
}

int tly_cmd_agreement(int argc, char **argv)
{
	struct tly_answers a;
	const char *file = NULL, *metric = NULL, *v;
	int weights = -1, level = -1, rc = 1, missing = 0, r;
	char err[ERRLEN];
	double x = 0.0;
	size_t n1 = 0, n2 = 0;

	tly_answers_init(&a);
	for (int i = 1; i < argc; i++) {
		if ((v = opt_value(argc, argv, &i, "--metric", &missing)) != NULL) {
			metric = v;
			if (strcmp(v, "cohen") != 0 && strcmp(v, "fleiss") != 0 && strcmp(v, "alpha") != 0) {
				fprintf(stderr, "tally agreement: unknown metric '%s'\n%s", v, agreement_usage);
				goto out;
			}
		} else if ((v = opt_value(argc, argv, &i, "--weights", &missing)) != NULL) {
			weights = tly_weights_parse(v);
			if (weights < 0) {
				fprintf(stderr, "tally agreement: unknown weights '%s'\n%s", v, agreement_usage);
				goto out;
			}
		} else if ((v = opt_value(argc, argv, &i, "--level", &missing)) != NULL) {
			level = tly_level_parse(v);
			if (level < 0) {
				fprintf(stderr, "tally agreement: unknown level '%s'\n%s", v, agreement_usage);
				goto out;
			}
		} else if (missing) {
			fprintf(stderr, "tally agreement: %s needs a value\n%s", argv[i], agreement_usage);
			goto out;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(agreement_usage, stdout);
			rc = 0;
			goto out;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "tally agreement: unknown option '%s'\n%s", argv[i], agreement_usage);
			goto out;
		} else if (file == NULL) {
			file = argv[i];
		} else {
			fprintf(stderr, "tally agreement: one FILE only\n%s", agreement_usage);
			goto out;
		}
	}
	if (metric == NULL || file == NULL) {
		fprintf(stderr, "tally agreement: %s missing\n%s", metric == NULL ? "--metric" : "FILE",
			agreement_usage);
		goto out;
	}
	if (weights >= 0 && strcmp(metric, "cohen") != 0) {
		fprintf(stderr, "tally agreement: --weights applies to --metric cohen only\n");
		goto out;
	}
	if (level >= 0 && strcmp(metric, "alpha") != 0) {
		fprintf(stderr, "tally agreement: --level applies to --metric alpha only\n");
		goto out;
	}
	if (read_answers(file, &a) != 0 || finish_answers(file, &a) != 0)
		goto out;
	if (strcmp(metric, "cohen") == 0) {
		if (weights < 0)
			weights = TLY_WEIGHTS_NONE;
		r = tly_cohen_kappa(&a, (enum tly_weights)weights, &x, &n1, err, sizeof(err));
		if (r == TLY_Q_OK)
			printf("cohen_kappa_%s %.4f\nitems %zu\n", tly_weights_name((enum tly_weights)weights), x, n1);
	} else if (strcmp(metric, "fleiss") == 0) {
		r = tly_fleiss_kappa(&a, &x, &n1, err, sizeof(err));
		if (r == TLY_Q_OK)
			printf("fleiss_kappa %.4f\nitems %zu\n", x, n1);
	} else {
		if (level < 0)
			level = TLY_LEVEL_NOMINAL;
		r = tly_krippendorff_alpha(&a, (enum tly_level)level, &x, &n1, &n2, err, sizeof(err));
		if (r == TLY_Q_OK)
			printf("alpha_%s %.4f\nunits %zu\nvalues %zu\n", tly_level_name((enum tly_level)level),
			       x, n1, n2);
	}
	if (r != TLY_Q_OK) {
		fprintf(stderr, "%s: %s\n", file, err);
		goto out;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "tally agreement: write error: %s\n", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	tly_answers_release(&a);
	return rc;
}
