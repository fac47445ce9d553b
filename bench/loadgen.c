/* loadgen.c — a small HTTP/1.1 keep-alive load generator on libevent, for
 * tally's benchmarks. One thread, N non-blocking connections to 127.0.0.1
 * (never anywhere else), each one request at a time (no pipelining).
 *
 *   loadgen -p PORT -c CONNS -d SECONDS --claim PROJECT --keys FILE [--answer JSON]
 *       each connection is one annotator (its own API key, line i of FILE):
 *       POST /api/v1/projects/PROJECT/claim, then on 200
 *       POST /api/v1/assignments/ASG/submit with the answer body, again and
 *       again until the claim answers 204 (nothing left) or the time is up.
 *   loadgen -p PORT -c CONNS -d SECONDS --get PATH
 *       plain GETs (the hello-world ceiling, with the very same client).
 *   --rate R  paces each connection at R requests/s (default: as fast as
 *       answers come back). A request is due every 1/R s from a random phase;
 *       one that is due while the previous is still out is sent as soon as it
 *       returns, and its latency counts from when it was due (as wrk2 does),
 *       so a stalled server cannot hide its queueing ("coordinated omission").
 *
 * Prints a human summary, then one machine-readable line starting "RESULT "
 * (key=value pairs) for the scripts. Latency is per request, from the first
 * byte written to the last byte of the answer read. An error is any answer
 * that is not 2xx (204 is the normal end of a claim loop), a connection
 * failure or a timeout.
 *
 * The client's own cost is part of what is measured (it shares the box with
 * the server), so each connection is kept as lean as wrk's: one persistent
 * read event (no epoll_ctl per request), a request written with one send()
 * and an answer read with recv() into a flat buffer, timeouts checked by one
 * timer for all connections instead of one rearmed per request. Requests still in flight when the time is up are not
 * counted. The JSON "parsing" is deliberately minimal: the assignment id is
 * the first "asg_…" string of the claim answer. */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/httpc.h"

#define MAX_CONNS 4096
#define MAX_BODY (64 << 20) /* an answer larger than this is a broken server */
#define MAX_ERR_STATUS 600

enum kind { K_CLAIM, K_SUBMIT, K_GET, K_N };
static const char *const kind_name[K_N] = { "claim", "submit", "get" };

struct samples {
	uint32_t *us;
	size_t n, cap;
};

struct lg;

struct conn {
	struct lg *lg;
	int idx;
	int fd;		 /* -1: no connection */
	int connecting;	 /* the connect is not done yet */
	struct event *rev; /* readable (persistent while connected) */
	struct event *wev; /* writable: the connect is done, or the request's rest fits */
	const char *key;
	enum kind kind;	 /* request in flight */
	int busy;	 /* a request is in flight */
	struct httpc_answer ans;  /* the answer being read */
	uint64_t t0;
	uint64_t sent;	 /* when the request in flight was sent (for the timeout) */
	uint64_t due;	 /* --rate: when the next request is due */
	struct event *pace;
	char asg[96];
	int done; /* got 204: nothing left for this annotator */
	unsigned gen;	 /* counts the connection's closes: a callback's socket is gone when it moved */
	char *in;	 /* what was read of the answer(s) */
	size_t in_len, in_cap;
	char *out;	 /* the request being written */
	size_t out_len, out_off, out_cap;
};

struct lg {
	struct event_base *base;
	struct sockaddr_in addr;
	int port, nconns, stopping;
	double duration, timeout, rate;
	const char *project, *path, *answer;
	char **keys;
	int nkeys;
	struct conn *conns;
	int ndone;
	/* results */
	struct samples lat[K_N];
	long long ok[K_N], cycles, nocontent;
	long long err_status[MAX_ERR_STATUS], err_conn, err_timeout, err_parse;
	uint64_t start, end;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *msg)
{
	fprintf(stderr, "loadgen: %s\n", msg);
	exit(2);
}

static void sample_add(struct samples *s, uint64_t ns)
{
	uint64_t us = ns / 1000;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 65536;
		s->us = realloc(s->us, s->cap * sizeof(*s->us));
		if (!s->us)
			die("out of memory");
	}
	s->us[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* the value below which a fraction q of the samples lie, in ms */
static double pct(const struct samples *s, double q)
{
	size_t i;
	if (!s->n)
		return 0;
	i = (size_t)(q * (double)(s->n - 1) + 0.5);
	return s->us[i] / 1000.0;
}

static void conn_start(struct conn *c);
static void send_next(struct conn *c);

static void stop(struct lg *lg)
{
	if (!lg->stopping) {
		lg->stopping = 1;
		lg->end = now_ns();
		event_base_loopbreak(lg->base);
	}
}

static void flush_out(struct conn *c);

/* Formats into the connection's request buffer, grown to fit. */
static void out_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(c->out, c->out_cap, fmt, ap);
		va_end(ap);
		if (n < 0)
			die("cannot format a request");
		if ((size_t)n < c->out_cap)
			break;
		free(c->out);
		c->out_cap = (size_t)n + 1;
		if (!(c->out = malloc(c->out_cap)))
			die("out of memory");
	}
	c->out_len = (size_t)n;
	c->out_off = 0;
}

static void send_request(struct conn *c, enum kind k)
{
	struct lg *lg = c->lg;

	c->kind = k;
	c->busy = 1;
	c->ans.have_head = 0;
	c->t0 = c->sent = now_ns();
	if (lg->rate > 0) { /* latency from when it was due; the next is due 1/R later */
		c->t0 = c->due < c->t0 ? c->due : c->t0;
		c->due += (uint64_t)(1e9 / lg->rate);
	}
	switch (k) {
	case K_CLAIM:
		out_printf(c,
			   "POST /api/v1/projects/%s/claim HTTP/1.1\r\n"
			   "Host: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
			   "Content-Length: 0\r\n\r\n",
			   lg->project, lg->port, c->key);
		break;
	case K_SUBMIT:
		out_printf(c,
			   "POST /api/v1/assignments/%s/submit HTTP/1.1\r\n"
			   "Host: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
			   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			   c->asg, lg->port, c->key, strlen(lg->answer), lg->answer);
		break;
	default:
		out_printf(c, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", lg->path, lg->port);
		break;
	}
	flush_out(c);
}

static void send_now(struct conn *c);

static void on_pace(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	send_now(arg);
}

static void send_next(struct conn *c)
{
	uint64_t now;

	if (c->lg->stopping || c->done)
		return;
	if (c->lg->rate > 0 && (now = now_ns()) < c->due) {
		struct timeval tv = { (time_t)((c->due - now) / 1000000000u),
				      (suseconds_t)((c->due - now) % 1000000000u / 1000) };
		evtimer_add(c->pace, &tv);
		return;
	}
	send_now(c);
}

static void send_now(struct conn *c)
{
	if (c->lg->stopping || c->done || c->fd < 0)
		return;
	if (c->lg->path)
		send_request(c, K_GET);
	else if (c->kind == K_CLAIM && c->asg[0])
		send_request(c, K_SUBMIT);
	else
		send_request(c, K_CLAIM);
}

static void conn_close(struct conn *c)
{
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	c->rev = c->wev = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->gen++;
	c->connecting = 0;
	c->in_len = 0;
	c->out_len = c->out_off = 0;
}

static void conn_reset(struct conn *c)
{
	conn_close(c);
	c->busy = 0;
	c->asg[0] = '\0';
	c->kind = K_CLAIM;
	if (!c->lg->stopping && !c->done)
		conn_start(c);
}

/* A connection that failed (refused, reset, closed with a request out). */
static void conn_fail(struct conn *c)
{
	struct lg *lg = c->lg;

	if (lg->stopping)
		return;
	lg->err_conn++;
	if (lg->err_conn > 100LL * lg->nconns + 1000)
		die("too many connection failures (is the server up?)");
	conn_reset(c);
}

/* Writes what is left of the request; the rest waits for the socket. */
static void flush_out(struct conn *c)
{
	while (!c->connecting && c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(c->wev, NULL);
			return;
		} else {
			conn_fail(c);
			return;
		}
	}
}

/* the assignment id: the first "asg_…" string in the body */
static int find_asg(const char *body, size_t n, char *out, size_t cap)
{
	static const char pat[] = "\"asg_";
	const char *p = memmem(body, n, pat, sizeof(pat) - 1), *q;
	if (!p)
		return -1;
	p++;
	q = memchr(p, '"', n - (size_t)(p - body));
	if (!q || (size_t)(q - p) >= cap)
		return -1;
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
	return 0;
}

static void complete(struct conn *c, const char *body)
{
	struct lg *lg = c->lg;
	enum kind k = c->kind;
	int st = c->ans.status;

	c->busy = 0;
	sample_add(&lg->lat[k], now_ns() - c->t0);
	if (k == K_CLAIM && st == 204) {
		lg->ok[k]++;
		lg->nocontent++;
		c->done = 1;
		c->asg[0] = '\0';
		if (++lg->ndone == lg->nconns)
			stop(lg);
		return;
	}
	if (st < 200 || st > 299) {
		lg->err_status[st > 0 && st < MAX_ERR_STATUS ? st : 0]++;
		c->asg[0] = '\0'; /* next: claim again */
		return;
	}
	lg->ok[k]++;
	if (k == K_CLAIM) {
		if (!body || find_asg(body, c->ans.body_len, c->asg, sizeof(c->asg)) != 0) {
			lg->err_parse++;
			c->asg[0] = '\0';
		}
	} else if (k == K_SUBMIT) {
		lg->cycles++;
		c->asg[0] = '\0';
	}
}

/* Room for at least 16 KiB more; 0 when an answer would pass MAX_BODY. */
static int in_room(struct conn *c)
{
	size_t cap;
	char *p;

	if (c->in_cap - c->in_len >= 16384)
		return 1;
	cap = c->in_cap ? c->in_cap * 2 : 65536;
	if (cap > (size_t)MAX_BODY + HTTPC_MAX_HEADER + 65536)
		return 0;
	if (!(p = realloc(c->in, cap)))
		die("out of memory");
	c->in = p;
	c->in_cap = cap;
	return 1;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct lg *lg = c->lg;
	unsigned gen = c->gen;
	int eof = 0;

	(void)what;
	for (;;) {
		size_t room;
		ssize_t n;
		if (!in_room(c))
			goto bad;
		room = c->in_cap - c->in_len;
		n = recv(fd, c->in + c->in_len, room, 0);
		if (n > 0) {
			c->in_len += (size_t)n;
			if ((size_t)n < room)
				break;
		} else if (n == 0) {
			eof = 1;
			break;
		} else if (errno == EINTR) {
			continue;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			break;
		} else {
			conn_fail(c);
			return;
		}
	}
	while (c->busy) {
		size_t hl = 0, used;
		int got = httpc_read_flat(&c->ans, c->in, c->in_len, MAX_BODY, &hl);
		if (got == HTTPC_MORE)
			break;
		if (got == HTTPC_BAD)
			goto bad;
		complete(c, c->kind == K_CLAIM && c->ans.status == 200 ? c->in + hl : NULL);
		used = hl + c->ans.body_len;
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
		if (lg->stopping)
			return;
		if (c->ans.close_after) {
			conn_reset(c);
			return;
		}
		send_next(c);
		if (c->gen != gen) /* the send failed: the connection was closed */
			return;
	}
	if (eof) {
		if (c->busy)
			conn_fail(c);
		else if (!lg->stopping)
			conn_reset(c);
		return;
	}
	if (c->in_len == 0 || c->busy)
		return;
bad: /* bytes no request asked for, or an answer that cannot be read */
	if (lg->stopping)
		return;
	lg->err_parse++;
	conn_reset(c);
}

/* The connect is done, or the socket takes the rest of the request. */
static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)what;
	if (c->connecting) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
			conn_fail(c);
			return;
		}
		c->connecting = 0;
		event_add(c->rev, NULL);
	}
	flush_out(c);
}

static void conn_start(struct conn *c)
{
	struct lg *lg = c->lg;
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("cannot create a socket");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->sent = now_ns();
	c->rev = event_new(lg->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
	c->wev = event_new(lg->base, c->fd, EV_WRITE, on_write, c);
	if (!c->rev || !c->wev)
		die("cannot create the connection's events");
	if (connect(c->fd, (struct sockaddr *)&lg->addr, sizeof(lg->addr)) == 0) {
		event_add(c->rev, NULL);
	} else if (errno == EINPROGRESS) {
		c->connecting = 1;
		event_add(c->wev, NULL);
	} else {
		lg->err_conn++;
		conn_close(c);
		return;
	}
	send_next(c);
}

/* Every 250 ms: a request out for longer than the timeout fails its connection. */
static void on_check(evutil_socket_t fd, short what, void *arg)
{
	struct lg *lg = arg;
	uint64_t now = now_ns(), limit = (uint64_t)(lg->timeout * 1e9);

	(void)fd;
	(void)what;
	for (int i = 0; i < lg->nconns && !lg->stopping; i++) {
		struct conn *c = &lg->conns[i];
		if (c->fd >= 0 && (c->busy || c->connecting) && now - c->sent > limit) {
			lg->err_timeout++;
			conn_reset(c);
		}
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	stop(arg);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: loadgen -p PORT [-c CONNS] [-d SECONDS] [-t TIMEOUT]\n"
		"               (--get PATH | --claim PROJECT --keys FILE [--answer JSON])\n"
		"               [--rate REQ_PER_S_PER_CONN]\n"
		"Targets 127.0.0.1:PORT only. CONNS 1-%d (default 8), SECONDS (default 10).\n",
		MAX_CONNS);
	exit(1);
}

int main(int argc, char **argv)
{
	static struct lg lg;
	const char *keyfile = NULL;
	struct event *timer, *check;
	struct timeval tv, every = { 0, 250000 };
	double secs, rps;
	long long total_ok = 0, total_err;

	lg.nconns = 8;
	lg.duration = 10;
	lg.timeout = 30;
	lg.answer = "{\"answers\":{\"label\":\"a\"},\"duration_ms\":1000}";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		if (strcmp(a, "-p") == 0)
			lg.port = atoi(v);
		else if (strcmp(a, "-c") == 0)
			lg.nconns = atoi(v);
		else if (strcmp(a, "-d") == 0)
			lg.duration = atof(v);
		else if (strcmp(a, "-t") == 0)
			lg.timeout = atof(v);
		else if (strcmp(a, "--get") == 0)
			lg.path = v;
		else if (strcmp(a, "--claim") == 0)
			lg.project = v;
		else if (strcmp(a, "--keys") == 0)
			keyfile = v;
		else if (strcmp(a, "--answer") == 0)
			lg.answer = v;
		else if (strcmp(a, "--rate") == 0)
			lg.rate = atof(v);
		else
			usage();
		i++;
	}
	if (lg.port < 1 || lg.port > 65535 || lg.nconns < 1 || lg.nconns > MAX_CONNS ||
	    lg.duration <= 0 || lg.duration > 3600 || lg.timeout < 1 || !!lg.path == !!lg.project ||
	    lg.rate < 0 || lg.rate > 1e6)
		usage();
	if (lg.path && lg.path[0] != '/')
		die("--get wants a path starting with /");
	if (lg.project) {
		if (!keyfile)
			usage();
		if (!(lg.keys = httpc_read_keys(keyfile, &lg.nkeys)))
			return 2;
		if (lg.nkeys < lg.nconns)
			die("fewer keys than connections: each connection must be its own annotator");
	}

	signal(SIGPIPE, SIG_IGN);
	lg.addr.sin_family = AF_INET;
	lg.addr.sin_port = htons((uint16_t)lg.port);
	lg.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 127.0.0.1, always */
	lg.base = event_base_new();
	if (!lg.base)
		die("cannot create the event base");
	lg.conns = calloc((size_t)lg.nconns, sizeof(*lg.conns));
	if (!lg.conns)
		die("out of memory");

	tv.tv_sec = (time_t)lg.duration;
	tv.tv_usec = (suseconds_t)((lg.duration - (double)tv.tv_sec) * 1e6);
	timer = evtimer_new(lg.base, on_timer, &lg);
	evtimer_add(timer, &tv);
	check = event_new(lg.base, -1, EV_PERSIST, on_check, &lg);
	if (!check)
		die("cannot create the timeout check");
	event_add(check, &every);
	lg.start = now_ns();
	for (int i = 0; i < lg.nconns; i++) {
		struct conn *c = &lg.conns[i];
		c->lg = &lg;
		c->idx = i;
		c->key = lg.keys ? lg.keys[i] : NULL;
		c->fd = -1;
		c->pace = evtimer_new(lg.base, on_pace, c);
		/* a random phase, so paced connections do not all fire at once */
		c->due = lg.start + (lg.rate > 0 ? (uint64_t)((double)rand() / RAND_MAX * 1e9 / lg.rate) : 0);
		conn_start(c);
	}
	event_base_dispatch(lg.base);
	if (!lg.end)
		lg.end = now_ns();

	secs = (double)(lg.end - lg.start) / 1e9;
	total_err = lg.err_conn + lg.err_timeout + lg.err_parse;
	for (int i = 0; i < MAX_ERR_STATUS; i++)
		total_err += lg.err_status[i];
	for (int k = 0; k < K_N; k++) {
		total_ok += lg.ok[k];
		if (lg.lat[k].n) /* qsort(NULL, 0, ...) is undefined */
			qsort(lg.lat[k].us, lg.lat[k].n, sizeof(uint32_t), cmp_u32);
	}
	rps = (double)total_ok / secs;

	printf("loadgen: %s, %d connections, %.2f s%s\n",
	       lg.path ? "GET" : "claim+submit", lg.nconns, secs,
	       lg.ndone == lg.nconns ? " (every annotator got 204: queue empty)" : "");
	printf("  %-8s %10s %10s %9s %9s %9s %9s\n", "request", "ok", "req/s", "p50 ms", "p99 ms",
	       "p99.9 ms", "max ms");
	for (int k = 0; k < K_N; k++) {
		struct samples *s = &lg.lat[k];
		if (!s->n)
			continue;
		printf("  %-8s %10lld %10.0f %9.2f %9.2f %9.2f %9.2f\n", kind_name[k], lg.ok[k],
		       (double)lg.ok[k] / secs, pct(s, 0.50), pct(s, 0.99), pct(s, 0.999),
		       s->us[s->n - 1] / 1000.0);
	}
	if (lg.project)
		printf("  cycles (claim+submit) %lld = %.0f/s; 204 answers %lld\n", lg.cycles,
		       (double)lg.cycles / secs, lg.nocontent);
	printf("  errors %lld (connection %lld, timeout %lld, unparsable %lld", total_err,
	       lg.err_conn, lg.err_timeout, lg.err_parse);
	for (int i = 0; i < MAX_ERR_STATUS; i++)
		if (lg.err_status[i])
			printf(", HTTP %d: %lld", i, lg.err_status[i]);
	printf(")\n");

	printf("RESULT mode=%s conns=%d rate=%g secs=%.3f req_s=%.0f cycles=%lld cycles_s=%.0f errors=%lld",
	       lg.path ? "get" : "claim", lg.nconns, lg.rate, secs, rps, lg.cycles,
	       (double)lg.cycles / secs, total_err);
	for (int k = 0; k < K_N; k++) {
		struct samples *s = &lg.lat[k];
		if (!s->n)
			continue;
		printf(" %s_n=%zu %s_p50_ms=%.2f %s_p99_ms=%.2f %s_max_ms=%.2f", kind_name[k], s->n,
		       kind_name[k], pct(s, 0.5), kind_name[k], pct(s, 0.99), kind_name[k],
		       s->us[s->n - 1] / 1000.0);
	}
	printf(" done=%d\n", lg.ndone);

	for (int i = 0; i < lg.nconns; i++) {
		conn_close(&lg.conns[i]);
		event_free(lg.conns[i].pace);
		free(lg.conns[i].in);
		free(lg.conns[i].out);
	}
	event_free(check);
	event_free(timer);
	event_base_free(lg.base);
	return total_ok > 0 ? 0 : 3;
}
