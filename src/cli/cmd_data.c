/* cmd_data.c — import and export. Import streams the file through one
 * transaction: a bad line stops it with FILE:LINE: and rolls everything back,
 * so a file is either wholly in or not at all. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "quality/csvread.h"
#include "util.h"

#define LINE_MAX_BYTES (64u << 20)
#define CSV_FIELD_MAX (1u << 20)
#define CSV_FIELDS_MAX 64

static const char *const valued[] = { "--format", "--status", "--threads", NULL };

struct progress {
	int tty;
	long long lines;
	int64_t start, last;
};

static void progress_tick(struct progress *p, int final)
{
	int64_t now;

	if (!p->tty)
		return;
	now = tly_now_ms();
	if (!final && now - p->last < 200)
		return;
	p->last = now;
	double secs = (double)(now - p->start) / 1000.0;
	fprintf(stderr, "\r\033[Kimporting: %lld lines, %.0f lines/s%s", p->lines,
		secs > 0 ? (double)p->lines / secs : 0.0, final ? "\n" : "");
}

/* Adds one parsed task; on failure writes FILE:LINE: why. */
static int add_task(struct tly_import *im, json_t *task, const char *file, unsigned long line)
{
	struct tly_err err;
	int created;

	tly_err_clear(&err);
	if (tly_import_add(im, task, &created, &err) != TLY_OK) {
		fprintf(stderr, "%s:%lu: %s\n", file, line, err.message);
		return -1;
	}
	return 0;
}

/* One line of fp into *buf, without its \n (NUL bytes kept, for the JSON
 * parser to refuse): its length, -1 at the end of the file, -2 once it is
 * longer than max (the rest is not read). getline would first take a line
 * of any length into memory. */
static ssize_t line_read(FILE *fp, char **buf, size_t *cap, size_t max)
{
	size_t n = 0;
	int c;

	while ((c = getc_unlocked(fp)) != EOF && c != '\n') {
		if (n == max)
			return -2;
		if (n + 1 >= *cap) {
			*cap = *cap ? *cap * 2 : 4096;
			if (*cap > max + 1)
				*cap = max + 1;
			*buf = tly_xrealloc(*buf, *cap);
		}
		(*buf)[n++] = (char)c;
	}
	return c == EOF && n == 0 ? -1 : (ssize_t)n;
}

static int import_jsonl(struct tly_import *im, FILE *fp, const char *file, struct progress *pr)
{
	static const char bom[3] = { '\xef', '\xbb', '\xbf' };
	char *line = NULL, *at;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno = 0;
	int rc = 0;

	while (rc == 0 && (n = line_read(fp, &line, &cap, LINE_MAX_BYTES)) != -1) {
		json_error_t je;
		json_t *v, *task;
		lineno++;
		if (n == -2) {
			fprintf(stderr, "%s:%lu: line longer than %u bytes\n", file, lineno, LINE_MAX_BYTES);
			rc = -1;
			break;
		}
		at = line;
		/* a UTF-8 byte order mark, as editors on Windows write, is no JSON */
		if (lineno == 1 && n >= 3 && memcmp(line, bom, 3) == 0) {
			at += 3;
			n -= 3;
		}
		while (n > 0 && at[n - 1] == '\r')
			n--;
		if (n == 0)
			continue;
		v = json_loadb(at, (size_t)n, JSON_REJECT_DUPLICATES, &je);
		if (!v) {
			fprintf(stderr, "%s:%lu: malformed JSON at column %d: %s\n", file, lineno,
				je.column, je.text);
			rc = -1;
			break;
		}
		if (!json_is_object(v)) {
			fprintf(stderr, "%s:%lu: a line must be a JSON object\n", file, lineno);
			json_decref(v);
			rc = -1;
			break;
		}
		/* a line without "data" is the data itself */
		task = json_object_get(v, "data") ? json_incref(v) : json_pack("{s:O}", "data", v);
		rc = add_task(im, task, file, lineno);
		json_decref(task);
		json_decref(v);
		pr->lines++;
		progress_tick(pr, 0);
	}
	if (rc == 0 && ferror(fp)) {
		fprintf(stderr, "%s: read error\n", file);
		rc = -1;
	}
	free(line);
	return rc;
}

static int import_csv(struct tly_import *im, FILE *fp, const char *file, struct progress *pr)
{
	struct tly_csv csv;
	char why[256];
	char **header = NULL;
	size_t ncols = 0;
	int r, rc = 0;

	if (tly_csv_init(&csv, fp, CSV_FIELD_MAX, CSV_FIELDS_MAX) != 0) {
		fprintf(stderr, "%s: out of memory\n", file);
		return -1;
	}
	r = tly_csv_read(&csv, why, sizeof(why));
	if (r <= 0) {
		fprintf(stderr, "%s:%lu: %s\n", file, tly_csv_line(&csv),
			r == 0 ? "empty file: a header row is needed" : why);
		rc = -1;
		goto out;
	}
	ncols = csv.nfields;
	header = tly_xcalloc(ncols, sizeof(char *));
	for (size_t i = 0; i < ncols; i++) {
		header[i] = tly_xstrdup(tly_csv_field(&csv, i, NULL));
		for (size_t j = 0; j < i; j++)
			if (strcmp(header[i], header[j]) == 0) {
				fprintf(stderr, "%s:1: column \"%s\" appears twice\n", file, header[i]);
				rc = -1;
				goto out;
			}
	}
	while (rc == 0 && (r = tly_csv_read(&csv, why, sizeof(why))) > 0) {
		unsigned long line = tly_csv_line(&csv);
		json_t *task = json_object(), *data = json_object();
		if (csv.nfields != ncols) {
			fprintf(stderr, "%s:%lu: %zu fields, the header has %zu\n", file, line,
				csv.nfields, ncols);
			rc = -1;
		}
		for (size_t i = 0; rc == 0 && i < ncols; i++) {
			const char *v = tly_csv_field(&csv, i, NULL);
			if (strcmp(header[i], "unique_id") == 0) {
				if (*v)
					json_object_set_new(task, "unique_id", json_string(v));
			} else if (strcmp(header[i], "priority") == 0) {
				char *end;
				long long p = strtoll(v, &end, 10);
				if (*v && (*end || end == v)) {
					fprintf(stderr, "%s:%lu: priority: \"%.40s\" is not an integer\n", file, line, v);
					rc = -1;
				} else if (*v) {
					json_object_set_new(task, "priority", json_integer(p));
				}
			} else if (strcmp(header[i], "metadata") == 0) {
				json_t *m = *v ? json_loads(v, 0, NULL) : NULL;
				if (*v && !m) {
					fprintf(stderr, "%s:%lu: metadata: not valid JSON\n", file, line);
					rc = -1;
				} else if (m) {
					json_object_set_new(task, "metadata", m);
				}
			} else {
				json_object_set_new(data, header[i], json_string(v));
			}
		}
		json_object_set_new(task, "data", data);
		if (rc == 0)
			rc = add_task(im, task, file, line);
		json_decref(task);
		pr->lines++;
		progress_tick(pr, 0);
	}
	if (rc == 0 && r < 0) {
		fprintf(stderr, "%s:%lu: %s\n", file, tly_csv_line(&csv), why);
		rc = -1;
	}
out:
	for (size_t i = 0; header && i < ncols; i++)
		free(header[i]);
	free(header);
	tly_csv_release(&csv);
	return rc;
}

int cmd_import(struct cli *c, int argc, char **argv)
{
	const char *project = cli_arg(argc, argv, 0, valued), *file = cli_arg(argc, argv, 1, valued);
	const char *format = cli_opt(argc, argv, "--format");
	struct progress pr = { isatty(2), 0, tly_now_ms(), 0 };
	struct tly_import *im = NULL;
	struct tly_actor a;
	struct tly_err err;
	long long created = 0, dups = 0;
	FILE *fp = NULL;
	int rc, bad;

	tly_err_clear(&err);
	if (!project || !file) {
		fprintf(stderr, "tally: usage: tally import PROJECT FILE [--format jsonl|csv]\n");
		return EXIT_BAD;
	}
	if (!format) {
		size_t n = strlen(file);
		format = n > 4 && strcmp(file + n - 4, ".csv") == 0 ? "csv" : "jsonl";
	}
	if (strcmp(format, "jsonl") != 0 && strcmp(format, "csv") != 0) {
		fprintf(stderr, "tally: --format must be jsonl or csv\n");
		return EXIT_BAD;
	}
	if ((rc = cli_open(c, 0)) != EXIT_OK)
		return rc;
	fp = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
	if (!fp) {
		fprintf(stderr, "tally: %s: cannot open: %s\n", file, strerror(errno));
		return EXIT_BAD;
	}
	if (tly_actor_for_project(c->t, project, &a, &err) != TLY_OK ||
	    tly_import_begin(c->t, &a, project, &im, &err) != TLY_OK) {
		rc = cli_fail(&err);
		goto out;
	}
	bad = strcmp(format, "csv") == 0 ? import_csv(im, fp, file, &pr) : import_jsonl(im, fp, file, &pr);
	progress_tick(&pr, 1);
	if (tly_import_end(im, !bad, &created, &dups, &err) != TLY_OK) {
		rc = cli_fail(&err);
		goto out;
	}
	if (bad) {
		fprintf(stderr, "tally: %s: nothing imported\n", file);
		rc = EXIT_BAD;
		goto out;
	}
	printf("created %lld, duplicates %lld\n", created, dups);
	rc = EXIT_OK;
out:
	if (fp && fp != stdin)
		fclose(fp);
	return rc;
}

int cmd_export(struct cli *c, int argc, char **argv)
{
	const char *project = cli_arg(argc, argv, 0, valued);
	struct tly_export *x = NULL;
	struct tly_actor a;
	struct tly_err err;
	struct tly_buf buf;
	long threads;
	int rc, done = 0;

	tly_err_clear(&err);
	tly_buf_init(&buf, 256u << 20);
	if (!project) {
		fprintf(stderr, "tally: usage: tally export PROJECT [--format jsonl] [--status STATUS]"
				" [--threads N]\n");
		return EXIT_BAD;
	}
	if (cli_read_threads(argc, argv, "--threads", &threads))
		return EXIT_BAD;
	if ((rc = cli_open(c, 0)) != EXIT_OK)
		return rc;
	if (tly_actor_for_project(c->t, project, &a, &err) != TLY_OK ||
	    tly_export_open(c->t, &a, project, cli_opt(argc, argv, "--format"),
			    cli_opt(argc, argv, "--status"), &x, &err) != TLY_OK)
		return cli_fail(&err);
	tly_export_threads(x, (int)threads); /* the lines are the same whatever the number */
	while (!done) {
		tly_buf_reset(&buf);
		if (tly_export_next(x, &buf, 1024, &done, &err) != TLY_OK) {
			rc = cli_fail(&err);
			goto out;
		}
		if (buf.len && fwrite(buf.p, 1, buf.len, stdout) != buf.len) {
			fprintf(stderr, "tally: export: write error\n");
			rc = EXIT_BAD;
			goto out;
		}
	}
	rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_BAD;
out:
	tly_buf_free(&buf);
	tly_export_free(x);
	return rc;
}
