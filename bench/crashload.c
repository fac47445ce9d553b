/* crashload.c — the annotator load of the crash test (bench/crash_test.sh,
 * tests/e2e/crash.test.mjs). One thread, N keep-alive HTTP/1.1 connections
 * to 127.0.0.1 (never anywhere else), each one annotator (its own API key,
 * line i of the keys file) looping claim -> submit on one project.
 *
 *   crashload -p PORT -c CONNS --project PRJ --keys FILE --ack FILE
 *             [-d MAX_SECONDS] [--labels L1,L2,...] [--question NAME] [-k KEY_BASE]
 *       Runs until SIGTERM/SIGINT or MAX_SECONDS (default 600). Every submit
 *       answered 201 appends one line to the ack file and flushes it:
 *           asg_… rsp_… tsk_… KEY_INDEX
 *       (KEY_INDEX = KEY_BASE + the key's line number from 0). An ack is what
 *       the server promised to keep, so it is written before anything else.
 *       The server may die at any moment: a refused or broken connection is
 *       retried with backoff (10 ms doubling to 250 ms), so one client lives
 *       across many server restarts. A submit whose connection broke before
 *       the answer is "in doubt": it is sent again (201 = acknowledged now,
 *       409 already_submitted = it had been committed, the reply was lost).
 *       A claim answered 204 is retried 100 ms later, and so is a request
 *       answered 503 (busy: the disk is full, nothing of it was kept), as is.
 *       The answer is {"answers":{QUESTION:LABEL},"duration_ms":N}, with
 *       "next":true from every other connection (the claim that follows
 *       then hands back the lease that submit took); the label
 *       is drawn from --labels (the first one 70 % of the time, so consensus is
 *       sometimes confident and sometimes not); default question "label",
 *       labels "positive,negative,neutral,mixed".
 *       Ends with one line "RESULT key=value …".
 *
 *       With --claims FILE, every claim answered 200 appends "asg_… tsk_…
 *       KEY_INDEX" there too: what the server handed out, to check that no
 *       lease it answered with was lost, and that no annotator was handed
 *       one task under two assignments.
 *
 *   crashload --decode DB  < ACKS       (and --decode-claims DB < CLAIMS)
 *       Offline helper for the checks: rewrites ack lines as row numbers
 *       "asg_row rsp_row tsk_row KEY_INDEX" (0 when an id does not decode), with
 *       the id key of the database DB (its meta table), so the checks can be
 *       plain SQL over the tally database. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/httpc.h"
#include "ids.h"

#define MAX_BODY (1 << 20)
#define MAX_CONNS 1024
#define MAX_LABELS 32
#define ID_CAP 64

enum kind { K_CLAIM, K_SUBMIT };

struct cl;

struct conn {
	struct cl *cl;
	int idx;
	struct bufferevent *bev;
	struct event *timer; /* reconnect / retry later */
	const char *key;
	enum kind kind;	     /* request in flight (or next) */
	int busy;	     /* a request is in flight */
	int connected;	     /* the TCP connection was established */
	struct httpc_answer ans; /* the answer being read */
	int backoff_ms;
	int resent; /* the submit in flight is a retry after a broken connection */
	char asg[ID_CAP], tsk[ID_CAP];
};

struct cl {
	struct event_base *base;
	struct sockaddr_in addr;
	int port, nconns, stopping, key_base;
	double duration;
	const char *project, *question;
	char **keys;
	int nkeys;
	char *labels[MAX_LABELS];
	int nlabels;
	FILE *ack;
	FILE *claims;        /* --claims: every task handed out, or NULL */
	struct conn *conns;
	uint64_t rng;
	/* counts */
	long long claims_ok, claims_204, submits_sent, acks, indoubt, indoubt_committed,
		indoubt_acked, conflicts, http_4xx, http_5xx, http_503, conn_fail, broken,
		mismatch, parse_err;
	int last_5xx;
	char last_5xx_body[256];
};

static void die(const char *msg)
{
	fprintf(stderr, "crashload: %s\n", msg);
	exit(2);
}

static uint64_t rnd(struct cl *cl)
{
	/* xorshift64* */
	cl->rng ^= cl->rng >> 12;
	cl->rng ^= cl->rng << 25;
	cl->rng ^= cl->rng >> 27;
	return cl->rng * 0x2545F4914F6CDD1DULL;
}

static void conn_start(struct conn *c);
static void send_next(struct conn *c);

static void stop(struct cl *cl)
{
	if (!cl->stopping) {
		cl->stopping = 1;
		event_base_loopbreak(cl->base);
	}
}

static void send_request(struct conn *c)
{
	struct cl *cl = c->cl;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	c->busy = 1;
	c->ans.have_head = 0;
	if (c->kind == K_CLAIM) {
		evbuffer_add_printf(out,
				    "POST /api/v1/projects/%s/claim HTTP/1.1\r\n"
				    "Host: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
				    "Content-Length: 0\r\n\r\n",
				    cl->project, cl->port, c->key);
	} else {
		char body[256];
		uint64_t r = rnd(cl);
		int li = (r % 100 < 70 || cl->nlabels == 1) ? 0
			 : 1 + (int)((r >> 8) % (uint64_t)(cl->nlabels - 1));
		/* every other annotator asks for its next task with each submit */
		int n = snprintf(body, sizeof(body), "{\"answers\":{\"%s\":\"%s\"},\"duration_ms\":%d%s}",
				 cl->question, cl->labels[li], 500 + (int)((r >> 20) % 5000),
				 c->idx % 2 ? ",\"next\":true" : "");
		cl->submits_sent++;
		evbuffer_add_printf(out,
				    "POST /api/v1/assignments/%s/submit HTTP/1.1\r\n"
				    "Host: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
				    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
				    c->asg, cl->port, c->key, n, body);
	}
}

static void send_next(struct conn *c)
{
	if (c->cl->stopping || c->busy)
		return;
	if (!c->bev) {
		conn_start(c);
		return;
	}
	c->kind = c->asg[0] ? K_SUBMIT : K_CLAIM;
	send_request(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	send_next(arg);
}

static void later(struct conn *c, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(c->timer, &tv);
}

/* The connection broke or was refused: drop it, try again with backoff. A
 * submit that was in flight is in doubt and is sent again as it is. */
static void conn_broken(struct conn *c)
{
	struct cl *cl = c->cl;

	if (c->busy && c->connected) {
		cl->broken++;
		if (c->kind == K_SUBMIT) {
			cl->indoubt++;
			c->resent = 1;
		}
	} else {
		cl->conn_fail++;
	}
	if (c->bev)
		bufferevent_free(c->bev);
	c->bev = NULL;
	c->busy = c->connected = 0;
	if (cl->stopping)
		return;
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 10;
	if (c->backoff_ms > 250)
		c->backoff_ms = 250;
	later(c, c->backoff_ms);
}

/* the string at obj.a.b, or NULL */
static const char *jstr(json_t *root, const char *a, const char *b)
{
	json_t *o = json_object_get(root, a);
	return json_string_value(json_object_get(o, b));
}

static int copy_id(char *dst, const char *src, const char *prefix)
{
	if (!src || strncmp(src, prefix, strlen(prefix)) != 0 || strlen(src) >= ID_CAP)
		return -1;
	strcpy(dst, src);
	return 0;
}

/* One whole answer has arrived. Returns the delay before the next request
 * in ms (0 = now). */
static int complete(struct conn *c, const char *body, size_t len)
{
	struct cl *cl = c->cl;
	int st = c->ans.status, resent = c->resent;
	json_t *root = NULL;

	c->busy = 0;
	c->backoff_ms = 0;
	if (st == 503) { /* busy (a full disk): nothing was kept, retry after a pause */
		cl->http_503++;
		return 100;
	}
	if (st >= 500) {
		cl->http_5xx++;
		cl->last_5xx = st;
		snprintf(cl->last_5xx_body, sizeof(cl->last_5xx_body), "%.*s",
			 (int)(len < 200 ? len : 200), body ? body : "");
		return 50; /* keep the assignment: try again */
	}
	if (body && len)
		root = json_loadb(body, len, 0, NULL);
	if (c->kind == K_CLAIM) {
		if (st == 204) {
			cl->claims_204++;
			return 100;
		}
		if (st != 200) {
			cl->http_4xx++;
			return 50;
		}
		cl->claims_ok++;
		if (!root || copy_id(c->asg, jstr(root, "assignment", "id"), "asg_") ||
		    copy_id(c->tsk, jstr(root, "task", "id"), "tsk_")) {
			cl->parse_err++;
			c->asg[0] = '\0';
		} else if (cl->claims) {
			fprintf(cl->claims, "%s %s %d\n", c->asg, c->tsk, cl->key_base + c->idx);
			fflush(cl->claims);
		}
		c->resent = 0;
		json_decref(root);
		return 0;
	}
	/* submit */
	c->resent = 0;
	if (st == 201) {
		const char *rsp = jstr(root, "response", "id");
		const char *tsk = jstr(root, "response", "task_id");
		if (!rsp || strncmp(rsp, "rsp_", 4) != 0 || !tsk) {
			cl->parse_err++;
		} else {
			/* the promise: written and flushed before anything else */
			fprintf(cl->ack, "%s %s %s %d\n", c->asg, rsp, c->tsk, cl->key_base + c->idx);
			if (fflush(cl->ack) != 0)
				die("cannot write the ack file");
			cl->acks++;
			if (resent)
				cl->indoubt_acked++;
			if (strcmp(tsk, c->tsk) != 0) {
				cl->mismatch++;
				fprintf(stderr, "crashload: submit of %s (claimed for %s) answered task %s\n",
					c->asg, c->tsk, tsk);
			}
		}
	} else if (st == 409) {
		cl->conflicts++;
		if (resent && body && memmem(body, len, "already_submitted", 17))
			cl->indoubt_committed++;
	} else {
		cl->http_4xx++;
	}
	c->asg[0] = c->tsk[0] = '\0';
	json_decref(root);
	return 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct cl *cl = c->cl;
	struct evbuffer *in = bufferevent_get_input(bev);
	const char *body;
	int delay;

	if (!c->busy)
		goto bad; /* bytes nobody asked for */
	switch (httpc_read(&c->ans, in, MAX_BODY)) {
	case HTTPC_MORE:
		return;
	case HTTPC_BAD:
		goto bad;
	}
	body = c->ans.body_len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)c->ans.body_len) : NULL;
	delay = complete(c, body, c->ans.body_len);
	evbuffer_drain(in, c->ans.body_len);
	if (evbuffer_get_length(in) != 0)
		goto bad;
	if (cl->stopping)
		return;
	if (c->ans.close_after) {
		bufferevent_free(c->bev);
		c->bev = NULL;
		c->connected = 0;
	}
	if (delay)
		later(c, delay);
	else
		send_next(c);
	return;
bad:
	cl->parse_err++;
	conn_broken(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;
		c->connected = 1;
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		return;
	}
	conn_broken(c); /* EOF, error (refused, reset) or timeout */
}

static void conn_start(struct conn *c)
{
	struct cl *cl = c->cl;
	struct timeval tv = { 30, 0 };

	c->bev = bufferevent_socket_new(cl->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		die("cannot create a socket");
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&cl->addr, sizeof(cl->addr)) != 0) {
		conn_broken(c);
		return;
	}
	send_next(c);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	stop(arg);
}

/* The lines --decode reads: their ids, by kind, then KEY_INDEX */
static const struct line_shape {
	const char *what;
	int nids;
	enum tly_kind kind[3];
} shapes[] = {
	{ "ack", 3, { TLY_ASSIGNMENT, TLY_RESPONSE, TLY_TASK } },   /* --decode */
	{ "claim", 2, { TLY_ASSIGNMENT, TLY_TASK } },               /* --decode-claims */
};

/* --decode DB: ack lines on stdin -> row numbers on stdout ("asg rsp tsk
 * KEY_INDEX" -> "asg_row rsp_row tsk_row KEY_INDEX"); --decode-claims DB:
 * the same for claim lines ("asg tsk KEY_INDEX") */
static int decode(const char *db, const struct line_shape *shape)
{
	struct tly_idcodec codec;
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	char line[512], tok[4][128], *end;
	int got, bad = 0;
	long k;
	long long n = 0; /* lines read */

	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(h, "SELECT value FROM meta WHERE key='id_key'", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW || sqlite3_column_bytes(st, 0) != TLY_ID_KEYBYTES) {
		fprintf(stderr, "crashload: cannot read the id key of %s: %s\n", db,
			h ? sqlite3_errmsg(h) : "open failed");
		sqlite3_finalize(st);
		sqlite3_close(h);
		return 2;
	}
	memcpy(codec.key, sqlite3_column_blob(st, 0), TLY_ID_KEYBYTES);
	sqlite3_finalize(st);
	sqlite3_close(h);
	while (fgets(line, sizeof(line), stdin)) {
		n++;
		got = sscanf(line, "%127s %127s %127s %127s", tok[0], tok[1], tok[2], tok[3]);
		k = got == shape->nids + 1 ? strtol(tok[shape->nids], &end, 10) : -1;
		if (k < 0 || k > INT_MAX || *end) {
			fprintf(stderr, "crashload: bad %s line %lld: %s", shape->what, n, line);
			bad++;
			continue;
		}
		for (int i = 0; i < shape->nids; i++)
			printf("%lld ", (long long)tly_id_decode(&codec, shape->kind[i], tok[i]));
		printf("%ld\n", k);
	}
	return bad ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: crashload -p PORT [-c CONNS] [-d MAX_SECONDS] --project PRJ --keys FILE --ack FILE\n"
		"                 [--labels L1,L2,...] [--question NAME] [-k KEY_BASE] [--claims FILE]\n"
		"       crashload --decode DB < ACKS\n"
		"       crashload --decode-claims DB < CLAIMS\n"
		"Targets 127.0.0.1:PORT only; runs until SIGTERM/SIGINT or MAX_SECONDS (default 600).\n");
	exit(1);
}

int main(int argc, char **argv)
{
	static struct cl cl;
	const char *keyfile = NULL, *ackfile = NULL, *claimfile = NULL;
	char *labels = NULL;
	struct event *timer, *sigterm, *sigint;
	struct timeval tv;

	if (argc == 3 && strcmp(argv[1], "--decode") == 0)
		return decode(argv[2], &shapes[0]);
	if (argc == 3 && strcmp(argv[1], "--decode-claims") == 0)
		return decode(argv[2], &shapes[1]);
	cl.nconns = 8;
	cl.duration = 600;
	cl.question = "label";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		if (strcmp(a, "-p") == 0)
			cl.port = atoi(v);
		else if (strcmp(a, "-c") == 0)
			cl.nconns = atoi(v);
		else if (strcmp(a, "-d") == 0)
			cl.duration = atof(v);
		else if (strcmp(a, "-k") == 0)
			cl.key_base = atoi(v);
		else if (strcmp(a, "--project") == 0)
			cl.project = v;
		else if (strcmp(a, "--keys") == 0)
			keyfile = v;
		else if (strcmp(a, "--ack") == 0)
			ackfile = v;
		else if (strcmp(a, "--claims") == 0)
			claimfile = v;
		else if (strcmp(a, "--question") == 0)
			cl.question = v;
		else if (strcmp(a, "--labels") == 0)
			labels = strdup(v);
		else
			usage();
		i++;
	}
	if (cl.port < 1 || cl.port > 65535 || cl.nconns < 1 || cl.nconns > MAX_CONNS ||
	    cl.duration <= 0 || cl.duration > 86400 || !cl.project || !keyfile || !ackfile ||
	    strlen(cl.project) >= ID_CAP || strlen(cl.question) > 64)
		usage();
	if (!labels)
		labels = strdup("positive,negative,neutral,mixed");
	for (char *save = NULL, *tok = strtok_r(labels, ",", &save); tok && cl.nlabels < MAX_LABELS;
	     tok = strtok_r(NULL, ",", &save))
		if (strlen(tok) <= 64 && !strpbrk(tok, "\"\\"))
			cl.labels[cl.nlabels++] = tok;
	if (!cl.nlabels)
		die("--labels: no usable label");
	if (!(cl.keys = httpc_read_keys(keyfile, &cl.nkeys)))
		return 2;
	if (cl.nkeys < cl.nconns)
		die("fewer keys than connections: each connection must be its own annotator");
	cl.ack = fopen(ackfile, "a");
	if (!cl.ack)
		die("cannot open the ack file");
	if (claimfile && !(cl.claims = fopen(claimfile, "a")))
		die("cannot open the claims file");
	cl.rng = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ 0x9E3779B97F4A7C15ULL;

	signal(SIGPIPE, SIG_IGN);
	cl.addr.sin_family = AF_INET;
	cl.addr.sin_port = htons((uint16_t)cl.port);
	cl.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 127.0.0.1, always */
	cl.base = event_base_new();
	if (!cl.base)
		die("cannot create the event base");
	cl.conns = calloc((size_t)cl.nconns, sizeof(*cl.conns));
	if (!cl.conns)
		die("out of memory");

	tv.tv_sec = (time_t)cl.duration;
	tv.tv_usec = (suseconds_t)((cl.duration - (double)tv.tv_sec) * 1e6);
	timer = evtimer_new(cl.base, on_stop, &cl);
	evtimer_add(timer, &tv);
	sigterm = evsignal_new(cl.base, SIGTERM, on_stop, &cl);
	sigint = evsignal_new(cl.base, SIGINT, on_stop, &cl);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	for (int i = 0; i < cl.nconns; i++) {
		struct conn *c = &cl.conns[i];
		c->cl = &cl;
		c->idx = i;
		c->key = cl.keys[i];
		c->timer = evtimer_new(cl.base, on_timer, c);
		conn_start(c);
	}
	event_base_dispatch(cl.base);

	printf("RESULT acks=%lld claims=%lld claims_204=%lld submits_sent=%lld indoubt=%lld"
	       " indoubt_committed=%lld indoubt_acked=%lld conflicts=%lld http_4xx=%lld"
	       " http_5xx=%lld http_503=%lld conn_fail=%lld broken=%lld mismatch=%lld"
	       " parse_err=%lld\n",
	       cl.acks, cl.claims_ok, cl.claims_204, cl.submits_sent, cl.indoubt,
	       cl.indoubt_committed, cl.indoubt_acked, cl.conflicts, cl.http_4xx, cl.http_5xx,
	       cl.http_503, cl.conn_fail, cl.broken, cl.mismatch, cl.parse_err);
	if (cl.http_5xx)
		fprintf(stderr, "crashload: last 5xx: %d %s\n", cl.last_5xx, cl.last_5xx_body);
	fflush(stdout);

	for (int i = 0; i < cl.nconns; i++) {
		if (cl.conns[i].bev)
			bufferevent_free(cl.conns[i].bev);
		event_free(cl.conns[i].timer);
	}
	for (int i = 0; i < cl.nkeys; i++)
		free(cl.keys[i]);
	free(cl.keys);
	free(cl.conns);
	free(labels);
	fclose(cl.ack);
	event_free(timer);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(cl.base);
	return 0;
}
