/* cli.h — shared by the command files of the tally command line. Each
 * command is `int cmd(struct cli *c, int argc, char **argv)` with argv[0] the
 * command's own name; it returns the process exit code. */
#ifndef TLY_CLI_H
#define TLY_CLI_H

#include "tally.h"

enum { EXIT_OK = 0, EXIT_BAD = 1, EXIT_STORE = 2 };

struct cli {
	const char *db;     /* --db or TALLY_DB */
	struct tly *t;      /* opened on demand by cli_open */
};

/* Opens the database (create: also makes it). Prints the error itself. */
int cli_open(struct cli *c, int create);
/* Prints "tally: <message>" on stderr and returns the exit code for err. */
int cli_fail(const struct tly_err *err);
/* Finds "--name VALUE" in argv (removing nothing); NULL when absent. */
const char *cli_opt(int argc, char **argv, const char *name);
int cli_flag(int argc, char **argv, const char *name);
/* "--name N" as a whole number from lo to hi into *out (dflt when absent);
 * -1, after saying why on stderr, when it is not one. */
int cli_int_opt(int argc, char **argv, const char *name, long lo, long hi, long dflt, long *out);
/* "--name N": the connections that read an export at once, from 1 to
 * TLY_EXPORT_THREADS_MAX, by default the cores online (as many, at most). */
int cli_read_threads(int argc, char **argv, const char *name, long *out);
/* The n-th argument that is not an option or an option's value. */
const char *cli_arg(int argc, char **argv, int n, const char *const *valued);

int cmd_init(struct cli *c, int argc, char **argv);
int cmd_org(struct cli *c, int argc, char **argv);
int cmd_user(struct cli *c, int argc, char **argv);
int cmd_key(struct cli *c, int argc, char **argv);
int cmd_project(struct cli *c, int argc, char **argv);
int cmd_import(struct cli *c, int argc, char **argv);
int cmd_export(struct cli *c, int argc, char **argv);
int cmd_serve(struct cli *c, int argc, char **argv);
int cmd_routes(struct cli *c, int argc, char **argv);
int cmd_quality(struct cli *c, int argc, char **argv);

#endif
