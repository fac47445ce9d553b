/* runstat.c — runs a command and reports its wall time, CPU time and peak
 * resident memory (wait4/getrusage), so the benchmarks do not depend on
 * /usr/bin/time being installed.
 *
 *   runstat OUTFILE CMD [ARG…]
 *
 * The command's stdin/stdout/stderr are its own. OUTFILE gets one line:
 *   wall_s=… user_s=… sys_s=… maxrss_kb=… exit=…
 * runstat exits with the command's status (128+N if killed by signal N).
 * It ignores SIGTERM/SIGINT itself, so that `timeout` (which signals the
 * whole process group) stops the command and the line is still written. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	struct timespec a, b;
	struct rusage ru;
	int status, code;
	pid_t pid;
	FILE *out;

	if (argc < 3) {
		fprintf(stderr, "usage: %s OUTFILE CMD [ARG...]\n", argv[0]);
		return 1;
	}
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	clock_gettime(CLOCK_MONOTONIC, &a);
	pid = fork();
	if (pid < 0) {
		perror("runstat: fork");
		return 1;
	}
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		execvp(argv[2], argv + 2);
		perror("runstat: exec");
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("runstat: wait4");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	out = fopen(argv[1], "w");
	if (!out) {
		perror("runstat: OUTFILE");
		return 1;
	}
	fprintf(out, "wall_s=%.3f user_s=%.3f sys_s=%.3f maxrss_kb=%ld exit=%d\n",
		(double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9,
		tv_s(ru.ru_utime), tv_s(ru.ru_stime), ru.ru_maxrss, code);
	fclose(out);
	return code;
}
