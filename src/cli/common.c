/* common.c — helpers shared by the command files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

int cli_open(struct cli *c, int create)
{
	struct tly_err err;

	tly_err_clear(&err);
	if (!c->db || !*c->db) {
		fprintf(stderr, "tally: no database: give --db PATH or set TALLY_DB\n");
		return EXIT_BAD;
	}
	if (tly_open(c->db, create, &c->t, &err) != TLY_OK)
		return cli_fail(&err);
	return EXIT_OK;
}

int cli_fail(const struct tly_err *err)
{
	fprintf(stderr, "tally: %s\n", err->message[0] ? err->message : tly_code_name(err->code));
	/* busy, in a command, is a full disk: a storage failure too */
	return err->code == TLY_EINTERNAL || err->code == TLY_EBUSY ? EXIT_STORE : EXIT_BAD;
}

const char *cli_opt(int argc, char **argv, const char *name)
{
	size_t n = strlen(name);

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], name) == 0)
			return i + 1 < argc ? argv[i + 1] : NULL;
		if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
			return argv[i] + n + 1;
	}
	return NULL;
}

int cli_int_opt(int argc, char **argv, const char *name, long lo, long hi, long dflt, long *out)
{
	const char *v = cli_opt(argc, argv, name);
	char *end;
	long n;

	*out = dflt;
	if (!v)
		return 0;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi) {
		fprintf(stderr, "tally: %s: a whole number from %ld to %ld\n", name, lo, hi);
		return -1;
	}
	*out = n;
	return 0;
}

int cli_read_threads(int argc, char **argv, const char *name, long *out)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cpus < 1)
		cpus = 1;
	return cli_int_opt(argc, argv, name, 1, TLY_EXPORT_THREADS_MAX,
			   cpus < TLY_EXPORT_THREADS_MAX ? cpus : TLY_EXPORT_THREADS_MAX, out);
}

int cli_flag(int argc, char **argv, const char *name)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return 1;
	return 0;
}

const char *cli_arg(int argc, char **argv, int n, const char *const *valued)
{
	int k = 0;

	for (int i = 1; i < argc; i++) {
		int takes = 0;
		if (strncmp(argv[i], "--", 2) == 0) {
			for (const char *const *v = valued; v && *v; v++)
				if (strcmp(argv[i], *v) == 0)
					takes = 1;
			i += takes;
			continue;
		}
		if (k++ == n)
			return argv[i];
	}
	return NULL;
}
