/* main.c — the tally command line: global options, then a table of
 * commands. Data goes to stdout, messages to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_quality.h"

static int quality_aggregate(struct cli *c, int argc, char **argv)
{
	(void)c;
	return tly_cmd_aggregate(argc, argv);
}

static int quality_agreement(struct cli *c, int argc, char **argv)
{
	(void)c;
	return tly_cmd_agreement(argc, argv);
}

static const struct command {
	const char *name;
	int (*run)(struct cli *c, int argc, char **argv);
	const char *usage;
} commands[] = {
	{ "init", cmd_init, "init                              create the database" },
	{ "org", cmd_org, "org add NAME | org list           organizations" },
	{ "user", cmd_user, "user add --org ORG --email EMAIL --role ROLE [--password-stdin]" },
	{ "key", cmd_key, "key create --user EMAIL [--org ORG] | key revoke KEY_ID" },
	{ "project", cmd_project, "project create --org ORG --schema FILE | project list --org ORG" },
	{ "import", cmd_import, "import PROJECT FILE [--format jsonl|csv]" },
	{ "export", cmd_export, "export PROJECT [--format jsonl] [--status STATUS] [--threads N]" },
	{ "serve", cmd_serve, "serve [--listen ADDR:PORT] [--max-body BYTES] [--max-body-total BYTES] [--threads N] [--export-threads N] [--max-exports N]" },
	{ "routes", cmd_routes, "routes                            the HTTP route table" },
	{ "quality", cmd_quality, "quality PROJECT [--refit]         quality report (refit the model first)" },
	{ "aggregate", quality_aggregate, "aggregate [--method dsp|ds|mv|ods|mace] FILE  consensus labels (default dsp)" },
	{ "agreement", quality_agreement, "agreement --metric cohen|fleiss|alpha FILE  agreement figures" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static int usage(FILE *out)
{
	fprintf(out, "usage: tally [--db PATH] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %s\n", commands[i].usage);
	fprintf(out, "\nThe database is --db PATH or $TALLY_DB.\n");
	return out == stdout ? EXIT_OK : EXIT_BAD;
}

int main(int argc, char **argv)
{
	struct cli c = { .db = getenv("TALLY_DB") };
	char **args = calloc((size_t)argc + 1, sizeof(char *));
	int n = 0, rc = EXIT_BAD;

	/* --db may stand anywhere: take it out before the command sees argv */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
			c.db = argv[++i];
			continue;
		}
		if (strncmp(argv[i], "--db=", 5) == 0) {
			c.db = argv[i] + 5;
			continue;
		}
		args[n++] = argv[i];
	}
	if (n == 0) {
		rc = usage(stderr);
		goto out;
	}
	if (strcmp(args[0], "help") == 0 || strcmp(args[0], "--help") == 0 || strcmp(args[0], "-h") == 0) {
		rc = usage(stdout);
		goto out;
	}
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(args[0], commands[i].name) == 0) {
			rc = commands[i].run(&c, n, args);
			goto out;
		}
	fprintf(stderr, "tally: unknown command \"%s\"\n", args[0]);
	usage(stderr);
out:
	tly_close(c.t);
	free(args);
	return rc;
}
