/*
 * cmd_quality.h - the quality commands of the tally CLI.
 *
 * argv[0] is the command name ("aggregate" / "agreement"), the rest its
 * arguments. Output on stdout, messages on stderr. Returns the process exit
 * code: 0 ok, 1 usage error or bad input. See docs/QUALITY.md.
 */
#ifndef TLY_CLI_CMD_QUALITY_H
#define TLY_CLI_CMD_QUALITY_H

int tly_cmd_aggregate(int argc, char **argv);
int tly_cmd_agreement(int argc, char **argv);

#endif
