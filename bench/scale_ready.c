/* scale_ready.c — how long a server takes from exec to its first good answer.
 *
 *   scale_ready PORT PATH PIDFILE CMD [ARG…]
 *
 * Forks, execs CMD in the child (its stdout/stderr are this program's), and
 * polls http://127.0.0.1:PORT/PATH every 5 ms (connect, GET, read the status
 * line) until it answers 200. The clock starts just before fork(), so the
 * figure includes fork+exec, process start, opening the database and binding
 * the socket. Writes the child's pid to PIDFILE, prints one line
 *   RESULT ready_ms=… polls=… pid=…
 * and then stays the child's parent: SIGTERM/SIGINT are passed on to it, and
 * this program exits with the child's status once it has exited (so a script
 * can run it in the background and stop it like the server itself). Gives up
 * (exit 1, child killed) after 30 s or if the child exits first. Loopback
 * only. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t child;

static void pass_on(int sig)
{
	if (child > 0)
		kill((pid_t)child, sig);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* 1 when GET PATH answers "HTTP/1.x 200", 0 otherwise (not listening yet, …) */
static int probe(int port, const char *path)
{
	struct sockaddr_in a;
	struct timeval tv = { 1, 0 };
	char req[512], resp[64];
	size_t got = 0;
	int fd, ok = 0, n;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		goto out;
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n",
		     path, port);
	if (write(fd, req, (size_t)n) != n)
		goto out;
	while (got < 12) {
		ssize_t r = read(fd, resp + got, sizeof(resp) - 1 - got);
		if (r <= 0)
			goto out;
		got += (size_t)r;
	}
	resp[got] = '\0';
	ok = strncmp(resp, "HTTP/1.", 7) == 0 && strncmp(resp + 9, "200", 3) == 0;
out:
	close(fd);
	return ok;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	int port, polls = 0, status;
	double t0;
	pid_t pid;
	FILE *fp;

	if (argc < 5 || (port = atoi(argv[1])) < 1 || port > 65535) {
		fprintf(stderr, "usage: scale_ready PORT PATH PIDFILE CMD [ARG…]\n");
		return 2;
	}
	t0 = now_ms();
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		execv(argv[4], argv + 4);
		perror(argv[4]);
		_exit(127);
	}
	child = pid;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pass_on;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	fp = fopen(argv[3], "w");
	if (fp) {
		fprintf(fp, "%d\n", (int)pid);
		fclose(fp);
	}
	for (;;) {
		polls++;
		if (probe(port, argv[2]))
			break;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr, "scale_ready: the server exited before answering\n");
			return 1;
		}
		if (now_ms() - t0 > 30000) {
			fprintf(stderr, "scale_ready: no answer in 30 s\n");
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return 1;
		}
		usleep(5000);
	}
	printf("RESULT ready_ms=%.1f polls=%d pid=%d\n", now_ms() - t0, polls, (int)pid);
	fflush(stdout);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 2;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
