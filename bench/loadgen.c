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
 * failure or a timeout. Requests still in flight when the time is up are not
 * counted. The JSON "parsing" is deliberately minimal: the assignment id is
 * the first "asg_…" string of the claim answer. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

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
	struct bufferevent *bev;
	const char *key;
	enum kind kind;	 /* request in flight */
	int busy;	 /* a request is in flight */
	struct httpc_answer ans;  /* the answer being read */
	uint64_t t0;
	uint64_t due;	 /* --rate: when the next request is due */
	struct event *pace;
	char asg[96];
	int done; /* got 204: nothing left for this annotator */
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

static void send_request(struct conn *c, enum kind k)
{
	struct lg *lg = c->lg;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	c->kind = k;
	c->busy = 1;
	c->ans.have_head = 0;
	c->t0 = now_ns();
	if (lg->rate > 0) { /* latency from when it was due; the next is due 1/R later */
		c->t0 = c->due < c->t0 ? c->due : c->t0;
		c->due += (uint64_t)(1e9 / lg->rate);
	}
	switch (k) {
	case K_CLAIM:
		evbuffer_add_printf(out,
				    "POST /api/v1/projects/%s/claim HTTP/1.1\r\n"
				    "Host: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
				    "Content-Length: 0\r\n\r\n",
				    lg->project, lg->port, c->key);
		break;
	case K_SUBMIT:
		evbuffer_add_printf(out,
				    "POST /api/v1/assignments/%s/submit HTTP/1.1\r\n"
				    "Host: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
				    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
				    c->asg, lg->port, c->key, strlen(lg->answer), lg->answer);
		break;
	default:
		evbuffer_add_printf(out, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", lg->path,
				    lg->port);
		break;
	}
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
	if (c->lg->stopping || c->done || !c->bev)
		return;
	if (c->lg->path)
		send_request(c, K_GET);
	else if (c->kind == K_CLAIM && c->asg[0])
		send_request(c, K_SUBMIT);
	else
		send_request(c, K_CLAIM);
}

static void conn_reset(struct conn *c)
{
	if (c->bev)
		bufferevent_free(c->bev);
	c->bev = NULL;
	c->busy = 0;
	c->asg[0] = '\0';
	c->kind = K_CLAIM;
	if (!c->lg->stopping && !c->done)
		conn_start(c);
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

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct lg *lg = c->lg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (c->busy) {
		int got = httpc_read(&c->ans, in, MAX_BODY);
		if (got == HTTPC_MORE)
			return;
		if (got == HTTPC_BAD)
			goto bad;
		{
			const char *body = NULL;
			if (c->kind == K_CLAIM && c->ans.status == 200)
				body = (const char *)evbuffer_pullup(in, (ev_ssize_t)c->ans.body_len);
			complete(c, body);
			evbuffer_drain(in, c->ans.body_len);
		}
		if (lg->stopping)
			return;
		if (c->ans.close_after) {
			conn_reset(c);
			return;
		}
		send_next(c);
	}
	if (evbuffer_get_length(in) == 0)
		return;
bad:
	lg->err_parse++;
	conn_reset(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	struct lg *lg = c->lg;

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		return;
	}
	if (lg->stopping)
		return;
	if (what & BEV_EVENT_TIMEOUT)
		lg->err_timeout++;
	else if (c->busy || (what & BEV_EVENT_ERROR))
		lg->err_conn++;
	conn_reset(c);
	if (lg->err_conn > 100LL * lg->nconns + 1000)
		die("too many connection failures (is the server up?)");
}

static void conn_start(struct conn *c)
{
	struct lg *lg = c->lg;
	struct timeval tv = { (time_t)lg->timeout, 0 };

	c->bev = bufferevent_socket_new(lg->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		die("cannot create a socket");
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&lg->addr, sizeof(lg->addr)) != 0) {
		lg->err_conn++;
		bufferevent_free(c->bev);
		c->bev = NULL;
		return;
	}
	send_next(c);
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
	struct event *timer;
	struct timeval tv;
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
	lg.start = now_ns();
	for (int i = 0; i < lg.nconns; i++) {
		struct conn *c = &lg.conns[i];
		c->lg = &lg;
		c->idx = i;
		c->key = lg.keys ? lg.keys[i] : NULL;
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
		if (lg.conns[i].bev)
			bufferevent_free(lg.conns[i].bev);
		event_free(lg.conns[i].pace);
	}
	event_free(timer);
	event_base_free(lg.base);
	return total_ok > 0 ? 0 : 3;
}
