/* server.c — the HTTP/1.1 server on h2o (libh2o-evloop).
 *
 * Worker threads (--threads, default 1), each with its own event loop and
 * h2o context, accept from one listening socket. A request flows: h2o ->
 * dispatch() -> route match (table below) -> body parse (bounded by
 * --max-body, JSON) -> a job for the executor, the one thread that writes
 * through the library: [library lock] authentication -> handler -> library
 * call -> JSON reply [unlock] -> held back until its batch is on disk
 * (batch.c) -> sent by the worker that owns the connection. GET routes go to
 * the reader instead, and export chunks are read by the exporter: each of the
 * two has a library handle (a database connection) of its own. The workers
 * never wait for the library or the disk. A job carries its reply; it goes back to the
 * worker that made it once sent (deliver), which keeps it for the next
 * request (job_put) or frees it and what it owns in one place (job_free). */
#include "http/server.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <event2/http.h>              /* evhttp_parse_query_str: the query parser only */
#include <event2/keyvalq_struct.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <jansson.h>
#include <signal.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "http/batch.h"
#include "http/handback.h"
#include "jsontext.h"
#include "tally.h"
#include "util.h"

extern const char tly_openapi_json[];
extern const size_t tly_openapi_json_len;

#define MAX_PARAMS 2
#define MAX_THREADS 16
#define LISTEN_BACKLOG 4096
#define EXPORT_BATCH 2048
#define TEXT_KEEP (1u << 20)
#define TEXT_CAP ((size_t)1 << 30)
#define EXPORT_BUF_CAP (256u << 20)
#define RETRY_AFTER "5"       /* seconds, on a 503: an export takes seconds */
#define PATH_MAX_LEN 2048     /* longer paths match no route */
#define QUERY_MAX_LEN 4096
#define AUTH_MAX_LEN 512      /* longer Authorization values are no key of ours */
#define REASON_MAX 512       /* as a tly_err message */
#define IDLE_TIMEOUT_MS 120000
/* Descriptors kept from connections for the database: the store's own files,
 * the checkpointer's connection, eventfds, and per export helper about three
 * (a connection's database and WAL files, a pipe end). */
#define FD_KEEP_BASE 64
#define FD_KEEP_PER_EXPORT_THREAD 3
#define ACCEPT_PAUSE_MS 100   /* out of descriptors anyway: how long accepts rest */
#define BODY_CHECK_MS 100     /* how often the bodies being received are added up */
/* A batch is committed after this many requests even in the middle of a
 * pass: with 1,000 connections flat out a pass ran 500 requests, and a submit
 * early in it waited for all of them before its sync (PERFORMANCE.md,
 * sixteenth round). 64 annotators never fill one. */
#define BATCH_MAX_REQUESTS 128

/* The methods the route table knows; any other is 405 on a known path. */
enum method { M_GET, M_POST, M_PUT, M_DELETE, M_PATCH, M_HEAD, M_OPTIONS, M_OTHER };

struct worker;
struct stream;

/* A reply waits in the batch queue until its request's writes are on disk;
 * a stream's chunks wait the same way, one at a time. */
enum reply_kind { R_FULL, R_STREAM, R_CHUNK };

/* Everything of a reply lives here until the worker sends it: the executor
 * and the reader fill it without touching h2o, whose objects belong to the
 * worker's thread. */
struct reply {
	struct pending hdr;        /* first: the batch queue's part */
	enum reply_kind kind;
	h2o_req_t *req;            /* worker only; NULL once the client went away */
	struct reply **guard;      /* in req's pool: clears req when the pool goes */
	int status;
	struct tly_buf body;       /* R_FULL, JSON (none on a 204); kept for the next request */
	char reason[REASON_MAX];   /* Tally-Reason (why a claim got no task), "" none */
	struct stream *stream;     /* R_STREAM, R_CHUNK */
};

struct req {
	struct tly *t;
	char auth[AUTH_MAX_LEN + 1]; /* the Authorization header, copied */
	int auth_state;             /* 0 absent, 1 copied, 2 too long */
	struct tly_actor actor;
	const char *params[MAX_PARAMS];
	struct evkeyvalq query;
	json_t *body;
	struct server *srv;
	struct worker *w;
	struct reply *rep;
	struct tly_buf *text;       /* TEXT routes write their reply here */
	struct report_share *share; /* the report thread's (see h_quality), else NULL */
};

/* The last quality report the report thread made in its current list of
 * queued requests, and the project it is for. */
struct report_share {
	char project[64];
	json_t *out;
};

/* The refit worker: a thread with its own database connection, fed project
 * ids; the event loops never wait for a model fit. */
#define REFIT_QUEUE 64

struct refitter {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	char queue[REFIT_QUEUE][32];
	int n, started;
	atomic_int stop;            /* also cancels a refit under way */
	const char *path;
};

struct worker {
	struct server *srv;
	int id;
	pthread_t thread;
	int started;
	h2o_context_t ctx;
	h2o_accept_ctx_t accept;
	h2o_socket_t *listener, *wake, *signals;
	struct conn *conns;         /* every open connection (a clean stop closes them) */
	int nconns;
	int full;                   /* not accepting: nconns reached max_conns */
	long capped;                /* times it did, this spell (the log's) */
	long starved;               /* accepts that found no descriptor, this spell */
	h2o_timeout_t pause;        /* ...after which the listener is watched again */
	h2o_timeout_entry_t resume;
	h2o_timeout_t body_every;   /* the body budget's check (see body_check) */
	h2o_timeout_entry_t body_check;
	long body_cuts;             /* connections it cut, this spell (the log's) */
	int streams, draining, closing, done;
	int64_t closing_at;         /* when the connections were shut down */
	long outstanding;           /* replies queued and not sent yet */
	struct job *spare;          /* sent jobs kept for reuse (job_get) */
	int nspare;
};

struct job;

/* A queue of jobs and the one thread that runs them: the executor's (every
 * write, in the open batch) and the reader's (every GET route, on its own
 * connection, one after another, so a slow read — a quality report over
 * ten million tasks, a long task listing — never holds up claims and submits). */
struct jobq {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	struct job *head, **tail;
	struct tly *t;              /* the reader's own handle (the executor's: NULL) */
	struct server *srv;
	int stop, started;
};

/* The exporter: reads export chunks on its own connection (see below). */
struct stream;
struct exporter {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	struct stream *head, **tail;
	struct tly *t;
	int stop, started;
};

#define WROTE_SLOTS 4096

struct server {
	struct tly *t;
	struct jobq x;              /* the executor */
	struct jobq rd;             /* the reader */
	struct jobq rp;             /* the report thread (SLOW reads) */
	struct report_share share;  /* ...and the report it shares */
	struct exporter exp;
	pthread_mutex_t lock;       /* the library (t and its store): one caller at a time */
	struct batcher *batch;
	struct handback *hand;      /* held leases the workers hand back (handback.h) */
	int64_t seen_version;       /* executor only: the data version its last request saw */
	struct refitter refit;
	/* executor only: the last batch each user's requests ran in, by user id
	 * modulo WROTE_SLOTS (users who share a slot wait for the later one) */
	uint64_t wrote[WROTE_SLOTS];
	h2o_globalconf_t config;
	int config_ready;
	atomic_int draining;
	_Atomic int64_t drain_deadline;
	int nworkers;
	int max_conns;              /* connections one event loop holds at most */
	size_t body_budget;         /* bytes of bodies one event loop may be receiving */
	size_t body_total;          /* --max-body-total, for the log */
	long fd_limit;              /* RLIMIT_NOFILE (for the log)... */
	long fd_keep;               /* ...and what of it connections may not take */
	int export_threads;         /* connections reading one export at once */
	int max_exports;            /* exports streaming at once, at most */
	atomic_int exports;         /* ...streaming now: counted at the handler, until stream_free */
	struct worker w[MAX_THREADS];
};

/* A handler answers with a JSON object (status from the route table, or 204
 * when *out stays NULL and the route allows it) or an error. */
typedef enum tly_code (*handler_fn)(struct req *r, json_t **out, struct tly_err *err);

/* SELF: the handler fills the reply itself (stored bytes, a stream).
 * READ: the handler writes nothing: the reader runs it on its own connection
 * (no batch), and its reply waits only for the commits it could see (none,
 * when all of them are synced). */
/* TEXT: the handler writes its reply as JSON text onto r->text (empty: no
 * content, when the route allows it); no JSON tree is built. */
/* SLOW: a READ that may take seconds (a quality report): it runs in the
 * report thread, so the reader's quick reads never queue behind it. */
/* HELD_SAFE: the route changes nothing a held lease's handback depends on
 * but its caller's own leases (handback.h); any other route run by the
 * executor stops every handback waiting. */
enum { PUBLIC = 1, BODY = 2, NO_CONTENT_OK = 4, SELF = 8, READ = 16, TEXT = 32, SLOW = 64,
       HELD_SAFE = 128 };

struct route {
	enum method method;
	const char *pattern;
	handler_fn handler;
	int status;
	int flags;
};

/* ---- handlers -------------------------------------------------------------- */

static const char *query(struct req *r, const char *key)
{
	return evhttp_find_header(&r->query, key);
}

static void reply_bytes(struct reply *rep, int status, const char *p, size_t n);

static enum tly_code h_openapi(struct req *r, json_t **out, struct tly_err *err)
{
	(void)out;
	(void)err;
	reply_bytes(r->rep, 200, tly_openapi_json, tly_openapi_json_len);
	return TLY_OK;
}

static enum tly_code h_me(struct req *r, json_t **out, struct tly_err *err)
{
	return tly_me(r->t, &r->actor, out, err);
}

static enum tly_code h_project_create(struct req *r, json_t **out, struct tly_err *err)
{
	return tly_project_create(r->t, &r->actor, r->body, out, err);
}

static int parse_limit(const char *s, int def)
{
	char *end;
	long v;

	if (!s)
		return def;
	if (*s < '0' || *s > '9') /* strtol would take " 5" and "+5" */
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 0 || v > 1000000)
		return -1;
	return (int)v;
}

static enum tly_code h_project_list(struct req *r, json_t **out, struct tly_err *err)
{
	return tly_project_list(r->t, &r->actor, query(r, "cursor"), parse_limit(query(r, "limit"), 100),
				out, err);
}

static enum tly_code h_project_get(struct req *r, json_t **out, struct tly_err *err)
{
	return tly_project_get(r->t, &r->actor, r->params[0], out, err);
}

static enum tly_code h_tasks_add(struct req *r, json_t **out, struct tly_err *err)
{
	json_t *tasks = json_object_get(r->body, "tasks");
	enum tly_code rc;

	/* the project comes first: a stranger's project is 404 whatever the body */
	if ((rc = tly_project_get(r->t, &r->actor, r->params[0], out, err)) != TLY_OK)
		return rc;
	json_decref(*out);
	*out = NULL;
	if (!json_is_object(r->body) || !json_is_array(tasks))
		return tly_err_set(err, TLY_EBADREQ, "tasks",
				   "the body must be {\"tasks\":[...]}");
	return tly_tasks_add(r->t, &r->actor, r->params[0], tasks, out, err);
}

static enum tly_code h_task_list(struct req *r, json_t **out, struct tly_err *err)
{
	return tly_task_list(r->t, &r->actor, r->params[0], query(r, "status"), query(r, "cursor"),
			     parse_limit(query(r, "limit"), 100), out, err);
}

static enum tly_code h_task_get(struct req *r, json_t **out, struct tly_err *err)
{
	return tly_task_get(r->t, &r->actor, r->params[0], out, err);
}

static enum tly_code h_task_cancel(struct req *r, json_t **out, struct tly_err *err)
{
	return tly_task_cancel(r->t, &r->actor, r->params[0], out, err);
}

static enum tly_code h_claim(struct req *r, json_t **out, struct tly_err *err)
{
	(void)out;
	return tly_claim_text(r->t, &r->actor, r->params[0], r->text, err);
}

static enum tly_code h_submit(struct req *r, json_t **out, struct tly_err *err)
{
	(void)out;
	return tly_submit_text(r->t, &r->actor, r->params[0], r->body, r->text, err);
}

static enum tly_code h_release(struct req *r, json_t **out, struct tly_err *err)
{
	return tly_release(r->t, &r->actor, r->params[0], out, err);
}

static enum tly_code h_heartbeat(struct req *r, json_t **out, struct tly_err *err)
{
	return tly_heartbeat(r->t, &r->actor, r->params[0], out, err);
}

/* ---- sending --------------------------------------------------------------- */

static const char *reason(int status);
static void fill_failed(struct reply *rep, int code);
static void stream_start(struct worker *w, struct stream *st, h2o_req_t *req);
static void stream_ready(struct stream *st, int failed);
static void stream_free(struct stream *st);
struct job;
static void job_put(struct worker *w, struct job *j);

/* An open connection: h2o frees the socket (and calls on_close) when the
 * connection ends, however it ends. A stop shuts each one down, so h2o
 * closes them all before its context goes. */
struct conn {
	h2o_socket_t *sock;
	struct worker *w;
	struct conn *next, **prev;
	int cut;                    /* shut down for the body budget: h2o closes it next */
	int parked;                 /* its request is out, and it is polled unread (park()) */
};

static void conn_closed(void *arg);

/* ---- parking: a connection stays polled while its request is out ---------
 *
 * h2o 2.2 stops reading a connection once its request is complete and reads
 * again after the reply. A hello-world answers inside its handler, so the
 * two cancel out before the loop's next poll; tally answers a loop turn
 * later (from the executor, after the disk), so each request cost an
 * EPOLL_CTL_DEL and an EPOLL_CTL_ADD, 4-5 % of the server's CPU in the
 * annotator loop. Instead, once h2o has stopped reading, the connection is
 * parked: still polled, with h2o told not to read it. Whatever comes while
 * the request is out (a pipelined request, the client's FIN) only calls
 * parked_on_read, which stops polling as h2o would have; nothing is read
 * into the buffer that the request's parsed headers point into. The reply
 * unparks it just before h2o resumes reading, in the same loop turn. */

static struct conn *conn_of(h2o_socket_t *sock)
{
	return sock && sock->on_close.cb == conn_closed ? sock->on_close.data : NULL;
}

/* Back to h2o's way: not polled, and read once h2o starts reading again. */
static void unpark_sock(h2o_socket_t *sock, struct conn *c)
{
	if (!c || !c->parked)
		return;
	c->parked = 0;
	h2o_socket_dont_read(sock, 0);
	h2o_socket_read_stop(sock);
}

static void parked_on_read(h2o_socket_t *sock, const char *err)
{
	(void)err;
	unpark_sock(sock, conn_of(sock));
}

static h2o_socket_t *sock_of(h2o_req_t *req)
{
	/* HTTP/2 multiplexes one socket: h2o's own reading is left alone */
	if (req->version >= 0x200 || !req->conn->callbacks->get_socket)
		return NULL;
	return req->conn->callbacks->get_socket(req->conn);
}

static void park(h2o_req_t *req)
{
	h2o_socket_t *sock = sock_of(req);
	struct conn *c = conn_of(sock);

	if (!c || c->parked || h2o_socket_is_reading(sock))
		return; /* h2o still reads it (or it is not one of ours) */
	c->parked = 1;
	h2o_socket_dont_read(sock, 1);
	h2o_socket_read_start(sock, parked_on_read);
}

static void unpark(h2o_req_t *req)
{
	h2o_socket_t *sock = sock_of(req);

	unpark_sock(sock, conn_of(sock));
}

/* The request's pool is going with its connection: the reply must not
 * touch it any more. */
static void guard_gone(void *p)
{
	struct reply *rep = *(struct reply **)p;

	if (rep)
		rep->req = NULL;
}

static void guard_set(struct reply *rep, h2o_req_t *req)
{
	rep->req = req;
	rep->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*rep->guard), guard_gone);
	*rep->guard = rep;
}

/* Lets go of the request: from here on h2o owns it alone. */
static h2o_req_t *guard_release(struct reply *rep)
{
	h2o_req_t *req = rep->req;

	if (req) {
		*rep->guard = NULL;
		unpark(req);
	}
	rep->req = NULL;
	return req;
}

/* Tally-Reason carries a library message: no byte below a space reaches the
 * header (no CR LF splitting it). */
static void header_safe(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

/* Sends rep's whole reply on its request (worker thread), if the client is
 * still there. */
static void send_reply(struct worker *w, struct reply *rep)
{
	static h2o_generator_t whole = { NULL, NULL };
	h2o_req_t *req = guard_release(rep);
	h2o_iovec_t body;

	if (!req)
		return;
	req->res.status = rep->status;
	req->res.reason = reason(rep->status);
	if (rep->status != 204) /* every body the server sends whole is JSON */
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, "Content-Type",
			       H2O_STRLIT("application/json"));
	if (rep->status == 503) /* busy: the one 503 there is */
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, "Retry-After",
			       H2O_STRLIT(RETRY_AFTER));
	if (rep->reason[0]) {
		header_safe(rep->reason);
		h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("tally-reason"), 0,
				      "Tally-Reason", rep->reason, strlen(rep->reason));
	}
	/* draining: answer, then close, so a busy keep-alive client cannot keep
	 * the drain going until its deadline */
	if (w->draining)
		req->http1_is_persistent = 0;
	if (rep->status == 204) { /* no body, and no Content-Length either (RFC 9110) */
		req->res.content_length = SIZE_MAX;
		h2o_start_response(req, &whole);
		h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
		return;
	}
	body = h2o_strdup(&req->pool, rep->body.p ? rep->body.p : "", rep->body.len);
	req->res.content_length = body.len;
	h2o_start_response(req, &whole);
	h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

/* A reply whose batch is on disk (or failed) goes out, in the owner's thread. */
static void deliver(struct worker *w, struct reply *rep)
{
	if (rep->kind == R_CHUNK) { /* lives inside its stream */
		stream_ready(rep->stream, rep->hdr.failed);
		return;
	}
	if (rep->kind == R_STREAM && rep->hdr.failed) {
		stream_free(rep->stream);
		rep->kind = R_FULL;
	}
	if (rep->kind == R_STREAM) {
		h2o_req_t *req = guard_release(rep);
		if (req)
			stream_start(w, rep->stream, req);
		else /* the client left before the export began */
			stream_free(rep->stream);
	} else {
		if (rep->hdr.failed)
			fill_failed(rep, rep->hdr.failed);
		send_reply(w, rep);
	}
	w->outstanding--;
	job_put(w, (struct job *)rep);
}

/* ---- streamed export ------------------------------------------------------- */

/* An export is read by the exporter thread on its own connection, one chunk
 * ahead of the socket: while the worker sends chunk n, the exporter reads
 * chunk n+1. The read holds no library lock, so claims and submits go on
 * meanwhile. A chunk may show commits of a batch that is not on disk yet, so
 * it reaches the worker (as a pending reply) only once that batch is.
 *
 * Who touches what: the exporter owns buf, done and read_failed while
 * reading is set; the worker owns everything else, and buf again once the
 * chunk is handed back through its mailbox. h2o sends from sending (a
 * chunk's bytes stay put until h2o calls proceed) and the stream lives until
 * the request's pool goes (gone), so h2o never reads freed memory. */
struct stream {
	h2o_generator_t gen;        /* first: h2o hands it back to proceed/stop */
	struct worker *w;
	h2o_req_t *req;             /* NULL once the request is gone */
	struct stream **guard;      /* in req's pool */
	struct tly_export *x;
	struct tly_buf buf;         /* the chunk read ahead */
	struct tly_buf sending;     /* the chunk h2o is sending */
	struct reply chunk;         /* hands buf back once its batch is durable */
	struct stream *next;        /* in the exporter's queue */
	int done, read_failed;      /* set by the exporter */
	int reading, ready, busy, ended, started;
};

static void stream_free(struct stream *st)
{
	if (st->req) /* still h2o's: it frees the stream when the pool goes */
		return;
	if (st->started)
		st->w->streams--;
	tly_export_free(st->x);
	tly_buf_free(&st->buf);
	tly_buf_free(&st->sending);
	atomic_fetch_sub(&st->w->srv->exports, 1);
	free(st);
}

/* The request's pool goes (the reply ended, or the client left). */
static void stream_gone(void *p)
{
	struct stream *st = *(struct stream **)p;

	if (!st)
		return;
	st->req = NULL;
	st->ended = 1;
	if (!st->reading) /* else the chunk's delivery frees it */
		stream_free(st);
}

/* The client left mid-export: h2o disposes of the request next. */
static void stream_stop(h2o_generator_t *gen, h2o_req_t *req)
{
	(void)req;
	((struct stream *)gen)->ended = 1;
}

static void stream_read(struct stream *st)
{
	struct exporter *e = &st->w->srv->exp;

	st->reading = 1;
	st->next = NULL;
	pthread_mutex_lock(&e->mu);
	*e->tail = st;
	e->tail = &st->next;
	pthread_cond_signal(&e->wake);
	pthread_mutex_unlock(&e->mu);
}

static void stream_push(struct stream *st);

/* h2o sent the last chunk: its buffer is free again. */
static void stream_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
	struct stream *st = (struct stream *)gen;

	(void)req;
	st->busy = 0;
	stream_push(st);
}

/* Sends the chunk read ahead once the one before it has left, and asks for
 * the next: at most two chunks per export are in memory. */
static void stream_push(struct stream *st)
{
	struct tly_buf t;
	h2o_iovec_t iov;

	if (st->busy || !st->ready || st->ended || !st->req)
		return;
	st->ready = 0;
	t = st->sending; /* the read-ahead chunk becomes the one being sent */
	st->sending = st->buf;
	st->buf = t;
	tly_buf_reset(&st->buf);
	iov = h2o_iovec_init(st->sending.p, st->sending.len);
	if (st->done) {
		st->ended = 1;
		h2o_send(st->req, &iov, iov.len ? 1 : 0, H2O_SEND_STATE_FINAL);
		return; /* freed when the pool goes */
	}
	if (iov.len) { /* an empty chunk would end the body */
		st->busy = 1;
		h2o_send(st->req, &iov, 1, H2O_SEND_STATE_IN_PROGRESS);
	}
	stream_read(st);
}

/* A chunk read by the exporter is durable (or its batch failed). */
static void stream_ready(struct stream *st, int failed)
{
	st->reading = 0;
	if (!st->req) {
		stream_free(st);
	} else if (st->ended) {
		/* the client left; h2o frees the stream with the pool */
	} else if (failed || st->read_failed) {
		/* cut without the chunked terminator: the client sees a cut
		 * transfer rather than a short export */
		h2o_iovec_t none = { NULL, 0 };
		st->ended = 1;
		h2o_send(st->req, &none, 0, H2O_SEND_STATE_ERROR);
	} else {
		st->ready = 1;
		stream_push(st);
	}
}

/* Hands the reply of a read (a GET's, an export chunk's) to the batch queue:
 * every commit the read saw came before now, so it waits for the last batch
 * committed (not the open one), and goes out at once when that is on disk. */
static void reply_after_read(struct server *srv, struct pending *hdr)
{
	int durable;

	pthread_mutex_lock(&srv->lock);
	hdr->seq = batch_seen(srv->batch);
	durable = batch_add(srv->batch, hdr);
	pthread_mutex_unlock(&srv->lock);
	if (durable)
		batch_post(srv->batch, hdr);
}

static void *export_main(void *arg)
{
	struct server *srv = arg;
	struct exporter *e = &srv->exp;

	pthread_setname_np(pthread_self(), "tally-export"); /* top -H, perf, gdb */

	for (;;) {
		struct stream *st;
		struct tly_err err;
		int stopping;

		pthread_mutex_lock(&e->mu);
		while (!e->head && !e->stop)
			pthread_cond_wait(&e->wake, &e->mu);
		if ((st = e->head) && !(e->head = st->next))
			e->tail = &e->head;
		stopping = e->stop; /* read under the lock it is written under */
		pthread_mutex_unlock(&e->mu);
		if (!st)
			break; /* stopped, and nothing is left to hand back */
		tly_err_clear(&err);
		tly_buf_reset(&st->buf);
		if (stopping) /* the server stops: cut the export short */
			st->read_failed = st->done = 1;
		else if (tly_export_next(st->x, &st->buf, EXPORT_BATCH, &st->done, &err) != TLY_OK) {
			fprintf(stderr, "tally: export failed: %s\n", err.message);
			st->read_failed = st->done = 1;
		}
		reply_after_read(srv, &st->chunk.hdr);
	}
	return NULL;
}

static enum tly_code h_export(struct req *r, json_t **out, struct tly_err *err)
{
	struct tly_export *x;
	struct stream *st;
	enum tly_code rc;

	(void)out;
	rc = tly_export_open(r->t, &r->actor, r->params[0], query(r, "format"), query(r, "status"),
			     &x, err);
	if (rc != TLY_OK)
		return rc;
	/* each export holds threads, connections and chunks while it streams: a
	 * bound keeps a burst of them (or a client retrying in a loop) from
	 * taking the server's memory; the executor alone adds to the count */
	if (atomic_load(&r->srv->exports) >= r->srv->max_exports) {
		tly_export_free(x);
		return tly_err_set(err, TLY_EBUSY, "",
				   "%d exports are streaming, the most this server runs at once"
				   " (--max-exports): try again when one has ended",
				   r->srv->max_exports);
	}
	atomic_fetch_add(&r->srv->exports, 1);
	tly_export_use(x, r->srv->exp.t);
	tly_export_threads(x, r->srv->export_threads);
	st = tly_xcalloc(1, sizeof(*st));
	st->w = r->w;
	st->x = x;
	st->gen.proceed = stream_proceed;
	st->gen.stop = stream_stop;
	st->chunk.kind = R_CHUNK;
	st->chunk.stream = st;
	st->chunk.hdr.owner = r->w->id;
	tly_buf_init(&st->buf, EXPORT_BUF_CAP);
	tly_buf_init(&st->sending, EXPORT_BUF_CAP);
	r->rep->kind = R_STREAM;
	r->rep->stream = st;
	return TLY_OK;
}

/* The export's reply begins (worker thread): chunked, NDJSON. */
static void stream_start(struct worker *w, struct stream *st, h2o_req_t *req)
{
	st->started = 1;
	w->streams++;
	st->req = req;
	st->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*st->guard), stream_gone);
	*st->guard = st;
	req->res.status = 200;
	req->res.reason = "OK";
	req->res.content_length = SIZE_MAX; /* chunked */
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, "Content-Type",
		       H2O_STRLIT("application/x-ndjson"));
	if (w->draining)
		req->http1_is_persistent = 0;
	h2o_start_response(req, &st->gen);
	stream_read(st);
}

/* ---- quality ------------------------------------------------------------------- */

static void refit_enqueue(struct refitter *r, const char *project)
{
	pthread_mutex_lock(&r->lock);
	int dup = 0;
	for (int i = 0; i < r->n; i++)
		dup |= strcmp(r->queue[i], project) == 0;
	if (!dup && r->n < REFIT_QUEUE)
		snprintf(r->queue[r->n++], sizeof(r->queue[0]), "%s", project);
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
}

static void *refit_main(void *arg)
{
	struct refitter *r = arg;
	struct tly *t = NULL;
	struct tly_err err;
	char project[32];

	pthread_setname_np(pthread_self(), "tally-refit"); /* top -H, perf, gdb */

	tly_err_clear(&err);
	/* model fits yield to the event loop (Linux: nice applies per thread) */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
	if (tly_open(r->path, 0, &t, &err) != TLY_OK) {
		fprintf(stderr, "tally: refit worker: %s\n", err.message);
		return NULL;
	}
	tly_set_cancel(t, &r->stop);
	for (;;) {
		struct tly_actor a;
		json_t *out = NULL;
		pthread_mutex_lock(&r->lock);
		while (!r->n && !atomic_load(&r->stop))
			pthread_cond_wait(&r->wake, &r->lock);
		if (atomic_load(&r->stop)) {
			pthread_mutex_unlock(&r->lock);
			break;
		}
		memcpy(project, r->queue[0], sizeof(project));
		memmove(r->queue[0], r->queue[1], (size_t)(r->n - 1) * sizeof(r->queue[0]));
		r->n--;
		pthread_mutex_unlock(&r->lock);
		tly_err_clear(&err);
		if (tly_actor_for_project(t, project, &a, &err) != TLY_OK ||
		    tly_quality_refit(t, &a, project, &out, &err) != TLY_OK)
			fprintf(stderr, "tally: refit of %s failed: %s\n", project, err.message);
		json_decref(out);
	}
	tly_close(t);
	return NULL;
}

/* A quality report reads every answered task of its project: seconds on a
 * large one. The report thread keeps the last report it made while it works
 * through one list of queued requests; another request of that list for the
 * same project gets it after its own access check. Every request of a list
 * arrived before the list's first report began, so that report is as new as
 * each of them needs (it saw every write acknowledged before they came) —
 * unless it was made with max_age, which may take an older walk: such a
 * report is not shared. (The library also keeps its walks: report.c.) */
static enum tly_code h_quality(struct req *r, json_t **out, struct tly_err *err)
{
	struct report_share *sh = r->share;
	int max_age = parse_limit(query(r, "max_age"), 0);
	enum tly_code rc;

	if (sh && sh->out && max_age >= 0 && strcmp(sh->project, r->params[0]) == 0) {
		rc = tly_project_access(r->t, &r->actor, r->params[0], TLY_ROLE_REVIEWER, err);
		if (rc == TLY_OK)
			*out = json_incref(sh->out);
		return rc;
	}
	rc = tly_quality_report(r->t, &r->actor, r->params[0], max_age, out, err);
	if (sh && rc == TLY_OK && max_age == 0 && strlen(r->params[0]) < sizeof(sh->project)) {
		json_decref(sh->out);
		sh->out = json_incref(*out);
		strcpy(sh->project, r->params[0]);
	}
	return rc;
}

static enum tly_code h_refit(struct req *r, json_t **out, struct tly_err *err)
{
	enum tly_code rc = tly_project_access(r->t, &r->actor, r->params[0], TLY_ROLE_MANAGER, err);

	if (rc == TLY_OK) {
		refit_enqueue(&r->srv->refit, r->params[0]);
		*out = json_pack("{s:b,s:s}", "queued", 1, "project_id", r->params[0]);
	}
	return rc;
}

/* ---- the route table --------------------------------------------------------- */

static const struct route routes[] = {
	{ M_GET, "/api/v1/openapi.json", h_openapi, 200, PUBLIC | SELF | READ },
	{ M_GET, "/api/v1/me", h_me, 200, READ },
	{ M_GET, "/api/v1/projects", h_project_list, 200, READ },
	{ M_POST, "/api/v1/projects", h_project_create, 201, BODY },
	{ M_GET, "/api/v1/projects/{id}", h_project_get, 200, READ },
	{ M_POST, "/api/v1/projects/{id}/tasks", h_tasks_add, 201, BODY | HELD_SAFE },
	{ M_GET, "/api/v1/projects/{id}/tasks", h_task_list, 200, READ },
	{ M_POST, "/api/v1/projects/{id}/claim", h_claim, 200, NO_CONTENT_OK | TEXT | HELD_SAFE },
	{ M_GET, "/api/v1/projects/{id}/export", h_export, 200, SELF | READ },
	{ M_GET, "/api/v1/projects/{id}/quality", h_quality, 200, READ | SLOW },
	{ M_POST, "/api/v1/projects/{id}/quality/refit", h_refit, 202, 0 },
	{ M_GET, "/api/v1/tasks/{id}", h_task_get, 200, READ },
	{ M_POST, "/api/v1/tasks/{id}/cancel", h_task_cancel, 200, 0 },
	{ M_POST, "/api/v1/assignments/{id}/submit", h_submit, 201, BODY | TEXT | HELD_SAFE },
	{ M_POST, "/api/v1/assignments/{id}/release", h_release, 200, HELD_SAFE },
	{ M_POST, "/api/v1/assignments/{id}/heartbeat", h_heartbeat, 200, HELD_SAFE },
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static const char *const method_names[] = {
	[M_GET] = "GET", [M_POST] = "POST", [M_PUT] = "PUT", [M_DELETE] = "DELETE",
	[M_PATCH] = "PATCH", [M_HEAD] = "HEAD", [M_OPTIONS] = "OPTIONS", [M_OTHER] = "OTHER",
};

static const char *method_name(enum method m)
{
	return method_names[m];
}

static enum method method_of(h2o_iovec_t m)
{
	for (int i = 0; i < M_OTHER; i++)
		if (h2o_memis(m.base, m.len, method_names[i], strlen(method_names[i])))
			return (enum method)i;
	return M_OTHER;
}

void tly_http_routes(FILE *out)
{
	for (size_t i = 0; i < NROUTES; i++)
		fprintf(out, "%s %s\n", method_name(routes[i].method), routes[i].pattern);
}

/* Matches path against pattern; "{id}" takes one non-empty segment. */
static int match(const char *pattern, const char *path, const char *params[MAX_PARAMS],
		 char store[MAX_PARAMS][64])
{
	int np = 0;

	while (*pattern && *path) {
		/* '{' only ever opens "{id}": one compare per character, not a strncmp */
		if (*pattern == '{' && strncmp(pattern, "{id}", 4) == 0) {
			size_t n = strcspn(path, "/");
			if (n == 0 || n >= 64 || np == MAX_PARAMS)
				return 0;
			memcpy(store[np], path, n);
			store[np][n] = '\0';
			params[np] = store[np];
			np++;
			pattern += 4;
			path += n;
			continue;
		}
		if (*pattern++ != *path++)
			return 0;
	}
	return *pattern == '\0' && *path == '\0';
}

/* ---- replies -------------------------------------------------------------------- */

static const int code_status[TLY_NCODES] = {
	[TLY_OK] = 200, [TLY_EBADJSON] = 400, [TLY_EBADREQ] = 400, [TLY_EUNAUTH] = 401,
	[TLY_EFORBIDDEN] = 403, [TLY_ENOTFOUND] = 404, [TLY_ECONFLICT] = 409,
	[TLY_ETOOLARGE] = 413, [TLY_EINVALID] = 422, [TLY_EINTERNAL] = 500, [TLY_EBUSY] = 503,
};

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 422: return "Unprocessable Content";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

/* The reply's body is p (a JSON text) and its status is status. */
static void reply_bytes(struct reply *rep, int status, const char *p, size_t n)
{
	tly_buf_reset(&rep->body);
	if (n && tly_buf_add(&rep->body, p, n) != TLY_OK) {
		static const char big[] = "{\"error\":{\"code\":\"too_large\","
					  "\"message\":\"the reply is over the server's limit\"}}";
		tly_buf_reset(&rep->body);
		tly_buf_add(&rep->body, big, sizeof(big) - 1);
		status = 500;
	}
	rep->status = status;
}

static void reply_json(struct reply *rep, int status, json_t *o)
{
	char buf[4096], *s;
	size_t n = json_dumpb(o, buf, sizeof(buf), JSON_COMPACT);

	if (n <= sizeof(buf)) { /* most replies: no allocation */
		reply_bytes(rep, status, buf, tly_json_shorten(buf, n));
		return;
	}
	s = tly_json_text(o, JSON_COMPACT);
	reply_bytes(rep, status, s, strlen(s));
	free(s);
}

static void reply_error(struct reply *rep, int status, const struct tly_err *err)
{
	json_t *e = json_pack("{s:s,s:s}", "code", status == 405 ? "method_not_allowed"
							   : tly_code_name(err->code),
			      "message", err->message);
	if (err->field[0])
		json_object_set_new(e, "field", json_string(err->field));
	if (err->code == TLY_EBADJSON && err->offset >= 0)
		json_object_set_new(e, "offset", json_integer(err->offset));
	json_t *o = json_pack("{s:o}", "error", e);
	reply_json(rep, status, o);
	json_decref(o);
}

/* The reply of a request whose batch was rolled back at its commit (worker
 * thread). A commit fails busy only on a full disk (the store's mapping):
 * that is the client's cue to retry later (503 and Retry-After), not a bug
 * of ours; any other failure is internal. */
static void fill_failed(struct reply *rep, int code)
{
	struct tly_err err;

	if (code == TLY_EBUSY)
		tly_err_set(&err, code, "", "the disk that holds the database is full: nothing of "
			    "this request was kept; retry once space is freed");
	else
		tly_err_set(&err, code = TLY_EINTERNAL, "",
			    "the write could not be committed: nothing of this request was kept");
	reply_error(rep, code_status[code], &err);
	rep->reason[0] = '\0';
}

/* ---- dispatch ------------------------------------------------------------------------ */

/* Copies the Authorization header out of the request (worker thread), for
 * authenticate() in the executor. */
static void auth_copy(struct req *r, h2o_req_t *req)
{
	ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
	h2o_iovec_t v;

	r->auth_state = 0;
	if (i < 0)
		return;
	v = req->headers.entries[i].value;
	if (v.len > AUTH_MAX_LEN) {
		r->auth_state = 2;
		return;
	}
	memcpy(r->auth, v.base, v.len);
	r->auth[v.len] = '\0';
	r->auth_state = 1;
}

static enum tly_code authenticate(struct req *r, struct tly_err *err)
{
	const char *h = r->auth;

	if (r->auth_state == 0)
		return tly_err_set(err, TLY_EUNAUTH, "", "missing Authorization: Bearer <api key>");
	if (r->auth_state == 2)
		return tly_err_set(err, TLY_EUNAUTH, "", "the Authorization header is too long for an API key");
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return tly_err_set(err, TLY_EUNAUTH, "", "the Authorization header must be Bearer <api key>");
	h += 7;
	while (*h == ' ')
		h++;
	return tly_authenticate(r->t, h, &r->actor, err);
}

static enum tly_code read_body(struct req *r, h2o_req_t *req, struct tly_err *err)
{
	size_t n = req->entity.base ? req->entity.len : 0;
	const char *p = n ? req->entity.base : "";
	json_error_t je;

	if (n == 0) {
		tly_err_set(err, TLY_EBADJSON, "", "the request body is empty (JSON expected)");
		err->offset = 0;
		return TLY_EBADJSON;
	}
	r->body = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
	if (!r->body) {
		tly_err_set(err, TLY_EBADJSON, "", "malformed JSON at byte %d (line %d, column %d): %s",
			    je.position, je.line, je.column, je.text);
		err->offset = je.position;
		return TLY_EBADJSON;
	}
	return TLY_OK;
}

/* Runs the route: in the executor's open batch, library lock held, or (READ)
 * in the reader on its own connection. */
static enum tly_code run(struct req *r, const struct route *rt, enum tly_code body_rc,
			 const struct tly_err *body_err, json_t **out, struct tly_err *err)
{
	struct server *srv = r->srv;
	enum tly_code rc = TLY_OK;
	char due[32];

	if (!(rt->flags & PUBLIC))
		rc = authenticate(r, err);
	if (rc == TLY_OK && body_rc != TLY_OK) { /* who asks comes first, then what */
		*err = *body_err;
		rc = body_rc;
	}
	if (rc == TLY_OK)
		rc = rt->handler(r, out, err);
	while (tly_refit_due(r->t, due))
		refit_enqueue(&srv->refit, due);
	return rc;
}

/* A request parsed by its worker, waiting for (or run by) the executor. Its
 * reply comes first: the batch queue hands the reply back, and with it the
 * job, to the worker that made it. */
struct job {
	struct reply rep;
	struct req r;
	const struct route *rt;
	enum tly_code body_rc;
	enum method method;
	struct job *next;
	/* from here on not cleared when a job is reused */
	struct tly_err body_err;
	char store[MAX_PARAMS][64];   /* r.params point here */
	char path[PATH_MAX_LEN + 1];  /* for the log of a 5xx */
};

#define SPARE_JOBS 256

/* A cleared job, a kept one when there is (no calloc of a few kilobytes and
 * a new reply buffer per request, and the memory stays with the worker's
 * thread). */
static struct job *job_get(struct worker *w)
{
	struct job *j = w->spare;
	struct tly_buf body;

	if (j) {
		w->spare = j->next;
		w->nspare--;
		body = j->rep.body;
		tly_buf_reset(&body);
	} else {
		j = tly_xmalloc(sizeof(*j));
		tly_buf_init(&body, TEXT_CAP);
	}
	memset(j, 0, offsetof(struct job, body_err));
	tly_err_clear(&j->body_err);
	j->path[0] = '\0';
	j->rep.body = body;
	TAILQ_INIT(&j->r.query);
	return j;
}

/* What the request brought in: its body and query. */
static void job_inputs_free(struct job *j)
{
	json_decref(j->r.body);
	j->r.body = NULL;
	evhttp_clear_headers(&j->r.query);
}

static void job_free(struct job *j)
{
	job_inputs_free(j);
	tly_buf_free(&j->rep.body);
	free(j);
}

/* A job whose reply went out (worker thread). */
static void job_put(struct worker *w, struct job *j)
{
	if (w->nspare >= SPARE_JOBS) {
		job_free(j);
		return;
	}
	job_inputs_free(j);
	if (j->rep.body.alloc > TEXT_KEEP) /* a huge reply passed: give it back */
		tly_buf_free(&j->rep.body);
	j->next = w->spare;
	w->spare = j;
	w->nspare++;
}

/* Fills the reply of a job that ran (executor thread, library lock held:
 * the reply is complete before its batch can be committed and handed back). */
static void compose(struct job *j, enum tly_code rc, json_t *out, struct tly_err *err)
{
	struct reply *rep = j->r.rep;
	const struct route *rt = j->rt;
	int status;

	if (rc != TLY_OK) {
		status = code_status[rc < TLY_NCODES ? rc : TLY_EINTERNAL];
		if (status >= 500)
			fprintf(stderr, "tally: %s %s: %s\n", method_name(j->method), j->path, err->message);
		reply_error(rep, status, err);
	} else if (rt->flags & SELF) {
		/* the handler filled the reply */
	} else if ((rt->flags & TEXT) && rep->body.len) {
		rep->status = rt->status; /* the handler wrote the body in place */
	} else if (!out && (rt->flags & NO_CONTENT_OK)) {
		if (err->message[0]) /* e.g. why an annotator gets no task */
			snprintf(rep->reason, sizeof(rep->reason), "%s", err->message);
		reply_bytes(rep, 204, NULL, 0);
	} else if (out) {
		reply_json(rep, rt->status, out);
	} else {
		tly_err_set(err, TLY_EINTERNAL, "", "handler returned nothing");
		reply_error(rep, 500, err);
	}
}


/* A claim that hands back the lease its caller holds (the next task a
 * submit with "next" leased, or a retried claim) wrote nothing, and what it
 * read is older than its caller's own last write (the lease, its task's
 * data) or would have made it write (a canceled task, an expired lease): its
 * reply waits for the batch of that write, not for the open one. Any other
 * request records its batch as its user's last write. */
static void held_or_wrote(struct server *srv, struct job *j, enum tly_code rc)
{
	uint64_t *w;

	if (!j->r.actor.user_id)
		return; /* no one authenticated: nothing written for anyone */
	w = &srv->wrote[(uint64_t)j->r.actor.user_id % WROTE_SLOTS];
	if (j->rt->handler == h_claim && rc == TLY_OK && tly_claim_held(j->r.t))
		j->r.rep->hdr.seq = *w;
	else
		*w = j->r.rep->hdr.seq;
}

/* After each request it ran, the executor tells the handback table
 * (handback.h) who may have changed what, and leaves it the claim reply of
 * the lease a submit with "next" made. (Library lock held, before the reply
 * goes back to its worker.) */
static void handback_after(struct server *srv, struct job *j, enum tly_code rc)
{
	int64_t expires, v = tly_seen_version(j->r.t);
	char project[TLY_ID_MAX];
	const char *text;
	size_t len;

	/* another process committed (the CLI revoked a key, say): stop them all */
	handback_touch(srv->hand, j->r.actor.user_id,
		       !(j->rt->flags & HELD_SAFE) || v != srv->seen_version || v < 0);
	srv->seen_version = v;
	if (rc == TLY_OK && j->rt->handler == h_submit && j->r.auth_state == 1 &&
	    (text = tly_submit_next_claim(j->r.t, &len, project, &expires)))
		handback_put(srv->hand, j->r.auth, project, j->r.actor.user_id, j->r.rep->hdr.seq,
			     expires, text, len);
}

/* The executor: the one thread that calls the library for requests. The
 * workers only parse and send, so they never wait for the library lock; the
 * executor takes whatever queued up and runs it back to back in the open
 * batch, and between passes commits the batch when it is due. */
static void execute(struct server *srv, struct job *j)
{
	struct reply *rep = j->r.rep;
	struct tly_err err;
	json_t *out = NULL;
	enum tly_code rc;

	tly_err_clear(&err);
	j->r.text = &rep->body; /* a TEXT route writes its reply in place */
	pthread_mutex_lock(&srv->lock);
	rep->hdr.seq = batch_join(srv->batch);
	if (!rep->hdr.seq)
		rc = tly_err_set(&err, TLY_EINTERNAL, "", "the database could not open a transaction");
	else
		rc = run(&j->r, j->rt, j->body_rc, &j->body_err, &out, &err);
	compose(j, rc, out, &err);
	json_decref(out);
	held_or_wrote(srv, j, rc);
	handback_after(srv, j, rc);
	/* from here on the job is its worker's again: do not touch it */
	if (batch_add(srv->batch, &rep->hdr)) /* nothing to wait for */
		batch_post(srv->batch, &rep->hdr);
	pthread_mutex_unlock(&srv->lock);
}

/* A READ job, in the reader or the report thread: no lock for the library
 * call (the thread's handle is its own); the reply is tagged with the last
 * batch whose commits the read could have seen, taken after it under the
 * library lock. */
static void execute_read(struct server *srv, struct jobq *rd, struct job *j)
{
	struct reply *rep = &j->rep;
	struct tly_err err;
	json_t *out = NULL;
	enum tly_code rc;

	tly_err_clear(&err);
	j->r.text = &rep->body;
	j->r.t = rd->t;
	j->r.share = rd == &srv->rp ? &srv->share : NULL;
	rc = run(&j->r, j->rt, j->body_rc, &j->body_err, &out, &err);
	compose(j, rc, out, &err);
	json_decref(out);
	reply_after_read(srv, &rep->hdr); /* the job is its worker's from here on */
}

/* A library handle of a thread's own (the reader's, the exporter's): one more
 * connection to the same database. */
static int open_handle(struct tly *t, struct tly **out, const char *who)
{
	struct tly_err err;

	tly_err_clear(&err);
	if (tly_open(tly_path(t), 0, out, &err) == TLY_OK)
		return 1;
	fprintf(stderr, "tally: %s: %s\n", who, err.message);
	return 0;
}

/* Sets *stop under mu, wakes the thread and waits for it to end. */
static void thread_stop(pthread_t thread, pthread_mutex_t *mu, pthread_cond_t *wake, int *stop)
{
	pthread_mutex_lock(mu);
	*stop = 1;
	pthread_cond_signal(wake);
	pthread_mutex_unlock(mu);
	pthread_join(thread, NULL);
	pthread_mutex_destroy(mu);
	pthread_cond_destroy(wake);
}

static int jobq_start(struct jobq *q, void *(*fn)(void *), void *arg)
{
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->wake, NULL);
	q->tail = &q->head;
	return q->started = pthread_create(&q->thread, NULL, fn, arg) == 0;
}

static void jobq_push(struct jobq *q, struct job *j)
{
	pthread_mutex_lock(&q->mu);
	if (!q->head) /* the thread sleeps only on an empty queue */
		pthread_cond_signal(&q->wake);
	j->next = NULL;
	*q->tail = j;
	q->tail = &j->next;
	pthread_mutex_unlock(&q->mu);
}

/* Every queued job, in order. With none queued it first waits for one.
 * NULL, and *stopped set, once the queue is stopped and empty. */
static struct job *jobq_take(struct jobq *q, int *stopped)
{
	struct job *list;

	pthread_mutex_lock(&q->mu);
	if (!q->head && !q->stop)
		pthread_cond_wait(&q->wake, &q->mu);
	*stopped = !q->head && q->stop;
	list = q->head;
	q->head = NULL;
	q->tail = &q->head;
	pthread_mutex_unlock(&q->mu);
	return list;
}

/* After the workers (nothing new reaches the queue): the thread runs what is
 * queued and stops; what a thread that never started left is freed. */
static void jobq_stop(struct jobq *q)
{
	struct job *j, *next;

	if (q->started)
		thread_stop(q->thread, &q->mu, &q->wake, &q->stop);
	for (j = q->head; j; j = next) {
		next = j->next;
		job_free(j);
	}
	q->head = NULL;
	tly_close(q->t);
	q->t = NULL;
}

/* The reader, and the report thread for SLOW routes (arg: its queue): READ
 * jobs one after another; the report thread's shared report lasts one list
 * of queued jobs (see h_quality). */
static void *reader_main(void *arg)
{
	struct jobq *q = arg;
	struct server *srv = q->srv;
	struct job *list, *next;
	int stopped = 0;

	/* top -H, perf, gdb */
	pthread_setname_np(pthread_self(), q == &srv->rp ? "tally-report" : "tally-read");

	while (!stopped) {
		for (list = jobq_take(q, &stopped); list; list = next) {
			next = list->next;
			execute_read(srv, q, list);
		}
		if (q == &srv->rp) {
			json_decref(srv->share.out);
			srv->share.out = NULL;
		}
	}
	return NULL;
}

/* Commits the open batch (see batch.h), taking the library lock for it. */
static void commit_batch(struct server *srv)
{
	pthread_mutex_lock(&srv->lock);
	batch_commit(srv->batch);
	pthread_mutex_unlock(&srv->lock);
}

static void *executor_main(void *arg)
{
	struct server *srv = arg;
	struct job *list, *next;
	int stopped = 0, n;

	pthread_setname_np(pthread_self(), "tally-exec"); /* top -H, perf, gdb */

	while (!stopped) {
		commit_batch(srv); /* between passes: what the last pass wrote */
		for (list = jobq_take(&srv->x, &stopped), n = 0; list; list = next) {
			next = list->next;
			execute(srv, list);
			if (++n % BATCH_MAX_REQUESTS == 0 && next)
				commit_batch(srv);
		}
	}
	return NULL;
}

/* A claim the worker answers itself: the lease its caller's last submit
 * held for it, once that submit's write is on disk (handback.h). */
static int handback_claim(struct server *srv, struct job *j)
{
	uint64_t seq;

	if (!handback_take(srv->hand, j->r.auth, j->r.params[0], tly_now_ms(), &j->rep.body, &seq))
		return 0;
	if (!batch_durable(srv->batch, seq)) { /* a client that did not wait for the 201 */
		tly_buf_reset(&j->rep.body);
		return 0;
	}
	j->rep.status = 200;
	return 1;
}

static void submit_job(struct server *srv, struct job *j)
{
	jobq_push(j->rt->flags & SLOW ? &srv->rp : j->rt->flags & READ ? &srv->rd : &srv->x, j);
}

/* Every request, in its worker's thread: the route, the query, the key and
 * the body are read out of h2o's request here, so the executor and the
 * reader work on the job alone. */
static int dispatch(h2o_handler_t *self, h2o_req_t *req)
{
	/* one handler serves every loop: the request's context says whose it is */
	struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, ctx, req->conn->ctx);
	struct server *srv = w->srv;
	struct job *j = job_get(w);
	enum method method = method_of(req->method);
	size_t plen = req->path_normalized.len;
	const struct route *rt = NULL;
	struct reply *rep = &j->rep;
	int path_known = 0, status = 500;
	struct tly_err err;
	enum tly_code rc;

	(void)self;
	tly_err_clear(&err);
	j->r.t = srv->t;
	j->r.srv = srv;
	j->r.w = w;
	j->r.rep = rep;
	rep->hdr.owner = w->id;
	guard_set(rep, req);
	j->method = method;
	if (plen > PATH_MAX_LEN)
		plen = 0; /* no route is that long */
	memcpy(j->path, req->path_normalized.base, plen);
	j->path[plen] = '\0';
	for (size_t i = 0; i < NROUTES && !rt; i++)
		if (match(routes[i].pattern, j->path, j->r.params, j->store)) {
			path_known = 1;
			if (routes[i].method == method)
				rt = &routes[i];
		}
	/* what fails before the library is reached read nothing: answered now */
	if (!rt) {
		status = path_known ? 405 : 404;
		tly_err_set(&err, path_known ? TLY_EBADREQ : TLY_ENOTFOUND, "",
			    path_known ? "method not allowed on this route" : "no such route");
		goto now;
	}
	if (req->query_at != SIZE_MAX) {
		char q[QUERY_MAX_LEN + 1];
		size_t n = req->path.len - req->query_at - 1;
		if (n > QUERY_MAX_LEN) {
			rc = tly_err_set(&err, TLY_EBADREQ, "", "the query string is over %d bytes",
					 QUERY_MAX_LEN);
			status = code_status[rc];
			goto now;
		}
		memcpy(q, req->path.base + req->query_at + 1, n);
		q[n] = '\0';
		/* decoded, a %00 would cut a value short where it is read as a C
		 * string ("completed%00x" would read "completed") */
		if (strstr(q, "%00")) {
			rc = tly_err_set(&err, TLY_EBADREQ, "", "the query string holds a NUL byte (%%00)");
			status = code_status[rc];
			goto now;
		}
		if (evhttp_parse_query_str(q, &j->r.query) != 0) {
			rc = tly_err_set(&err, TLY_EBADREQ, "", "malformed query string");
			status = code_status[rc];
			goto now;
		}
	}
	auth_copy(&j->r, req);
	if (rt->handler == h_claim && j->r.auth_state == 1 && handback_claim(srv, j)) {
		send_reply(w, rep);
		job_put(w, j);
		return 0;
	}
	if (rt->flags & BODY)
		j->body_rc = read_body(&j->r, req, &j->body_err);
	j->rt = rt;
	w->outstanding++;
	park(req);
	submit_job(srv, j);
	return 0;
now:
	reply_error(rep, status, &err);
	send_reply(w, rep);
	job_put(w, j);
	return 0;
}

/* ---- life cycle ------------------------------------------------------------------------ */

static void on_accept(h2o_socket_t *listener, const char *err);

/* The listener is watched unless the loop is at its connection cap, resting
 * after running out of descriptors, or draining (then it is closed). */
static void accept_again(struct worker *w)
{
	if (w->listener && !w->full && !h2o_timeout_is_linked(&w->resume))
		h2o_socket_read_start(w->listener, on_accept);
}

static void conn_closed(void *arg)
{
	struct conn *c = arg;
	struct worker *w = c->w;

	if ((*c->prev = c->next))
		c->next->prev = c->prev;
	w->nconns--;
	free(c);
	if (w->full && w->nconns < w->srv->max_conns) {
		w->full = 0;
		accept_again(w);
	}
	/* a spell at the cap ends, for the log, once a tenth of it is free */
	if (w->capped && w->nconns <= w->srv->max_conns - (w->srv->max_conns + 9) / 10) {
		fprintf(stderr, "tally: %d connections open, below the cap again (reached %ld "
			"times)\n", w->nconns, w->capped);
		w->capped = 0;
	}
}

struct held { size_t n; struct conn *c; };

/* What a connection still receiving a request holds of it, else 0. */
static size_t held_by(const struct conn *c)
{
	return !c->cut && !c->parked && h2o_socket_is_reading(c->sock) && c->sock->input ?
		       c->sock->input->size : 0;
}

static int held_desc(const void *a, const void *b)
{
	size_t x = ((const struct held *)a)->n, y = ((const struct held *)b)->n;

	return x < y ? 1 : x > y ? -1 : 0;
}

/* Every BODY_CHECK_MS while connections are open. h2o reads a request's
 * whole body before tally sees the request (and its key), into memory and,
 * past 32 MiB, into a temporary file: anyone who can connect could make the
 * server hold --max-body per connection, in memory or on the disk the
 * database needs. So the bytes held by connections still receiving a
 * request are added up, and past the loop's share of --max-body-total the
 * largest are shut down until the rest fits; their clients see the
 * connection close without an answer and may send again. */
static void body_check(h2o_timeout_entry_t *e)
{
	struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, body_check, e);
	size_t total = 0, n = 0, held, budget = w->srv->body_budget;
	struct held *h;
	long cut = 0;

	for (struct conn *c = w->conns; c; c = c->next)
		if ((held = held_by(c))) {
			total += held;
			n++;
		}
	if (total > budget) {
		h = tly_xmalloc(n * sizeof(*h));
		n = 0;
		for (struct conn *c = w->conns; c; c = c->next)
			if ((held = held_by(c)))
				h[n++] = (struct held){ held, c };
		qsort(h, n, sizeof(*h), held_desc);
		for (size_t i = 0; i < n && total > budget; i++, cut++) {
			h[i].c->cut = 1;
			shutdown(h2o_socket_get_fd(h[i].c->sock), SHUT_RDWR);
			total -= h[i].n;
		}
		free(h);
		if (!w->body_cuts)
			fprintf(stderr, "tally: requests being received held more than the %zu bytes "
				"of --max-body-total: cut the %ld largest (their clients may send "
				"again); the log stays quiet until they fit\n", w->srv->body_total, cut);
		w->body_cuts += cut;
	} else if (w->body_cuts) {
		fprintf(stderr, "tally: requests being received fit --max-body-total again, after "
			"%ld connections were cut\n", w->body_cuts);
		w->body_cuts = 0;
	}
	if (w->nconns)
		h2o_timeout_link(w->ctx.loop, &w->body_every, &w->body_check);
}

static void accept_resume(h2o_timeout_entry_t *e)
{
	accept_again(H2O_STRUCT_FROM_MEMBER(struct worker, resume, e));
}

/* No descriptor for the connection waiting (the process's limit taken by
 * something else, or the system's): it stays in the listen queue and the
 * listener stays readable, so trying again at once would spin a core. The
 * listener rests ACCEPT_PAUSE_MS instead, as nginx does; the log says so
 * once a spell. */
static void accept_rest(struct worker *w, int e)
{
	if (!w->starved++)
		fprintf(stderr, "tally: cannot accept a connection: %s (%d open); trying again "
			"every %d ms\n", strerror(e), w->nconns, ACCEPT_PAUSE_MS);
	h2o_socket_read_stop(w->listener);
	h2o_timeout_link(w->ctx.loop, &w->pause, &w->resume);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
	struct worker *w = listener->data;
	h2o_socket_t *sock;
	struct conn *c;

	if (err)
		return;
	if (!(sock = h2o_evloop_socket_accept(listener))) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			accept_rest(w, errno);
		return;
	}
	if (w->starved) {
		fprintf(stderr, "tally: accepting again, after %ld tries found no descriptor\n",
			w->starved);
		w->starved = 0;
	}
	c = tly_xcalloc(1, sizeof(*c));
	c->sock = sock;
	c->w = w;
	if ((c->next = w->conns))
		c->next->prev = &c->next;
	c->prev = &w->conns;
	w->conns = c;
	w->nconns++;
	sock->on_close.cb = conn_closed;
	sock->on_close.data = c;
	if (!h2o_timeout_is_linked(&w->body_check))
		h2o_timeout_link(w->ctx.loop, &w->body_every, &w->body_check);
	h2o_accept(&w->accept, sock);
	/* the cap keeps descriptors for the database: a write that could not
	 * open a file it needs would fail for everyone. Past it, connections
	 * wait in the listen queue until one closes. */
	if (w->nconns >= w->srv->max_conns && !w->full) {
		w->full = 1;
		if (!w->capped++)
			fprintf(stderr, "tally: %d connections open, the most one event loop takes "
				"(descriptor limit %ld, %ld kept for the database): new ones wait "
				"until some close\n", w->nconns, w->srv->fd_limit, w->srv->fd_keep);
		h2o_socket_read_stop(listener);
	}
}

static void drain_start(struct worker *w)
{
	w->draining = 1;
	if (w->listener) {
		h2o_socket_close(w->listener);
		w->listener = NULL;
	}
}

/* Between loop turns while draining: once every reply went out (or at the
 * deadline), every connection is shut down; once h2o closed them all, the
 * loop ends. */
static void drain_check(struct worker *w)
{
	if (!w->closing && ((w->streams == 0 && w->outstanding == 0) ||
			    tly_now_ms() >= atomic_load(&w->srv->drain_deadline))) {
		w->closing = 1;
		w->closing_at = tly_now_ms();
		for (struct conn *c = w->conns; c; c = c->next)
			shutdown(h2o_socket_get_fd(c->sock), SHUT_RDWR);
	}
	/* h2o closes a shut-down connection at its next turn; 2 s is a bound on
	 * a bug, not a wait anyone should see (worker_free then keeps h2o's
	 * context rather than abort in its dispose) */
	if (w->closing && (w->nconns == 0 || tly_now_ms() - w->closing_at > 2000))
		w->done = 1;
}

/* Replies that are on disk now, and a drain to start. */
static void on_wake(h2o_socket_t *sock, const char *err)
{
	struct worker *w = sock->data;
	struct pending *p, *next;

	(void)err;
	for (p = batch_take(w->srv->batch, w->id); p; p = next) {
		next = p->next;
		deliver(w, (struct reply *)p);
	}
	if (atomic_load(&w->srv->draining) && !w->draining)
		drain_start(w);
}

static void on_signal(h2o_socket_t *sock, const char *err)
{
	struct worker *w = sock->data;
	struct server *srv = w->srv;
	struct signalfd_siginfo si;

	(void)err;
	while (read(h2o_socket_get_fd(sock), &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (atomic_load(&srv->draining))
			continue;
		fprintf(stderr, "tally: %s, draining\n", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
		atomic_store(&srv->drain_deadline, tly_now_ms() + 10000);
		atomic_store(&srv->draining, 1);
		atomic_store(&srv->refit.stop, 1); /* a refit under way gives up at its next batch */
		for (int i = 0; i < srv->nworkers; i++)
			batch_poke(srv->batch, i);
	}
}

/* Watches fd on w's loop (its own descriptor: h2o closes it). */
static h2o_socket_t *watch(struct worker *w, int fd, h2o_socket_cb cb)
{
	h2o_socket_t *s;

	if (fd < 0)
		return NULL;
	s = h2o_evloop_socket_create(w->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
	s->data = w;
	h2o_socket_read_start(s, cb);
	return s;
}

static int worker_init(struct server *srv, struct worker *w, int id, int listen_fd)
{
	w->srv = srv;
	w->id = id;
	h2o_context_init(&w->ctx, h2o_evloop_create(), &srv->config);
	w->accept.ctx = &w->ctx;
	w->accept.hosts = srv->config.hosts;
	h2o_timeout_init(w->ctx.loop, &w->pause, ACCEPT_PAUSE_MS);
	h2o_timeout_init(w->ctx.loop, &w->body_every, BODY_CHECK_MS);
	w->resume.cb = accept_resume;
	w->body_check.cb = body_check;
	w->listener = watch(w, listen_fd, on_accept);
	w->wake = watch(w, dup(batch_fd(srv->batch, id)), on_wake);
	return w->listener && w->wake ? 0 : -1;
}

static void worker_run(struct worker *w)
{
	while (!w->done) {
		/* a draining loop wakes every 50 ms to see whether it is done */
		h2o_evloop_run(w->ctx.loop, w->draining ? 50 : INT32_MAX);
		if (w->draining)
			drain_check(w);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	pthread_setname_np(pthread_self(), "tally-http"); /* top -H, perf, gdb */
	worker_run(w);
	return NULL;
}

/* After the loops stopped: replies nobody will send any more. */
static void drop_unsent(struct server *srv)
{
	for (int i = 0; i < srv->nworkers; i++) {
		struct pending *p, *next;
		for (p = batch_take(srv->batch, i); p; p = next) {
			struct reply *rep = (struct reply *)p;
			next = p->next;
			if (rep->kind == R_CHUNK) {
				rep->stream->reading = 0;
				stream_free(rep->stream); /* its request is gone */
				continue;
			}
			if (rep->kind == R_STREAM)
				stream_free(rep->stream);
			job_free((struct job *)rep);
		}
	}
}

/* The listening socket on host:port (non-blocking, backlog LISTEN_BACKLOG,
 * no Nagle), or -1 with a message. */
static int listen_on(const char *listen_at, const char *host, const char *port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai, *p;
	int fd = -1, one = 1, e;

	if ((e = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai)) != 0) {
		fprintf(stderr, "tally: cannot listen on %s: %s\n", listen_at, gai_strerror(e));
		return -1;
	}
	for (p = ai; p && fd < 0; p = p->ai_next) {
		fd = socket(p->ai_family, p->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, p->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* a burst of new connections (a thousand annotators after a
		 * restart) must not overflow the backlog into TCP's 1 s retry */
		if (bind(fd, p->ai_addr, p->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
			e = errno;
			close(fd);
			fd = -1;
			errno = e;
		}
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		fprintf(stderr, "tally: cannot listen on %s: %s\n", listen_at, strerror(errno));
		return -1;
	}
	/* no Nagle: the tail of a reply larger than a segment would wait for the
	 * client's delayed ACK (40 ms); accepted sockets inherit it on Linux */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		fprintf(stderr, "tally: TCP_NODELAY: %s\n", strerror(errno));
	return fd;
}

static void config_init(struct server *srv, const struct tly_http_opts *o)
{
	h2o_hostconf_t *host;
	h2o_handler_t *h;

	h2o_config_init(&srv->config);
	srv->config.server_name = h2o_iovec_init(H2O_STRLIT("tally"));
	srv->config.max_request_entity_size = o->max_body; /* h2o answers 413 past it */
	srv->config.http1.req_timeout = IDLE_TIMEOUT_MS;
	host = h2o_config_register_host(&srv->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	h = h2o_create_handler(h2o_config_register_path(host, "/", 0), sizeof(*h));
	h->on_req = dispatch;
	srv->config_ready = 1;
}

/* After its loop ended (every connection closed): the worker's h2o side. */
static void worker_free(struct worker *w)
{
	if (!w->ctx.loop)
		return;
	if (w->listener)
		h2o_socket_close(w->listener);
	if (w->wake)
		h2o_socket_close(w->wake);
	if (w->signals)
		h2o_socket_close(w->signals);
	h2o_evloop_run(w->ctx.loop, 0); /* the closes complete */
	/* the timeouts were set up with the loop (worker_init) */
	if (h2o_timeout_is_linked(&w->resume))
		h2o_timeout_unlink(&w->resume);
	if (h2o_timeout_is_linked(&w->body_check))
		h2o_timeout_unlink(&w->body_check);
	h2o_timeout_dispose(w->ctx.loop, &w->pause);
	h2o_timeout_dispose(w->ctx.loop, &w->body_every);
	if (w->nconns == 0) { /* h2o asserts on a context with live connections */
		h2o_context_dispose(&w->ctx);
		h2o_evloop_destroy(w->ctx.loop);
	}
	while (w->spare) {
		struct job *j = w->spare;
		w->spare = j->next;
		job_free(j);
	}
}

int tly_http_serve(struct tly *t, const struct tly_http_opts *o)
{
	static struct server srv; /* one per process */
	pthread_mutexattr_t ma;
	char host[256], port[8];
	const char *colon = strrchr(o->listen, ':');
	struct batch_stats bs = { 0 };
	sigset_t sigs;
	long pn;
	char *end;
	int rc = 1, fd = -1, sfd = -1;

	memset(&srv, 0, sizeof(srv));
	srv.t = t;
	/* one: on 2 cores a second event loop only competed with the executor */
	srv.nworkers = o->threads > 0 ? o->threads : 1;
	srv.export_threads = o->export_threads > 0 ? o->export_threads : 1;
	srv.max_exports = o->max_exports > 0 ? o->max_exports : TLY_HTTP_MAX_EXPORTS;
	if (srv.nworkers > MAX_THREADS) {
		fprintf(stderr, "tally: --threads: at most %d\n", MAX_THREADS);
		return 1;
	}
	if (!colon || (size_t)(colon - o->listen) >= sizeof(host)) {
		fprintf(stderr, "tally: --listen wants ADDR:PORT, got \"%s\"\n", o->listen);
		return 1;
	}
	memcpy(host, o->listen, (size_t)(colon - o->listen));
	host[colon - o->listen] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:8080 */
		memmove(host, host + 1, strlen(host) - 2);
		host[strlen(host) - 2] = '\0';
	}
	pn = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || pn < 0 || pn > 65535) {
		fprintf(stderr, "tally: bad port in \"%s\"\n", o->listen);
		return 1;
	}
	snprintf(port, sizeof(port), "%ld", pn);
	signal(SIGPIPE, SIG_IGN);
	/* SIGTERM and SIGINT reach the first loop through a signalfd: blocked
	 * here, before any thread starts, so every thread inherits the mask */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0 ||
	    (sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		fprintf(stderr, "tally: signalfd: %s\n", strerror(errno));
		return 1;
	}
	{
		/* one descriptor per connection: take what the hard limit allows,
		 * and keep some from connections for the database */
		struct rlimit rl;
		long keep = FD_KEEP_BASE + (long)FD_KEEP_PER_EXPORT_THREAD * srv.max_exports *
					   srv.export_threads, lim = 1024;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			if (rl.rlim_cur < rl.rlim_max) {
				rl.rlim_cur = rl.rlim_max;
				setrlimit(RLIMIT_NOFILE, &rl);
				getrlimit(RLIMIT_NOFILE, &rl);
			}
			lim = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 30) ? 1L << 30
											 : (long)rl.rlim_cur;
		}
		srv.fd_limit = lim;
		/* a tiny limit still serves, with half of it for connections */
		srv.max_conns = (int)((lim > keep + 32 ? lim - keep : lim / 2) / srv.nworkers);
		if (srv.max_conns < 1)
			srv.max_conns = 1;
		srv.fd_keep = lim - (long)srv.max_conns * srv.nworkers;
	}
	/* the default follows --max-body: four bodies of the largest size, or 256 MiB */
	srv.body_total = o->max_body_total ? o->max_body_total
			 : o->max_body * 4 > (size_t)256 << 20 ? o->max_body * 4 : (size_t)256 << 20;
	srv.body_budget = srv.body_total / (size_t)srv.nworkers;
	json_object_seed(0); /* before any thread hashes a key */
	/* adaptive: a waiter spins briefly first, as the holder is usually quick */
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&srv.lock, &ma);
	pthread_mutexattr_destroy(&ma);
	if ((fd = listen_on(o->listen, host, port)) < 0 ||
	    !(srv.batch = batch_new(t, &srv.lock, srv.nworkers)) || !(srv.hand = handback_new()))
		goto out;
	srv.refit.path = tly_path(t);
	pthread_mutex_init(&srv.refit.lock, NULL);
	pthread_cond_init(&srv.refit.wake, NULL);
	srv.refit.started = pthread_create(&srv.refit.thread, NULL, refit_main, &srv.refit) == 0;
	config_init(&srv, o);
	for (int i = 0; i < srv.nworkers; i++)
		/* each loop accepts from the same socket, on a descriptor of its own
		 * (h2o closes it); fd stays this function's, closed on every path */
		if (worker_init(&srv, &srv.w[i], i, dup(fd)) != 0) {
			fprintf(stderr, "tally: cannot set up event loop %d: %s\n", i, strerror(errno));
			goto out;
		}
	close(fd); /* the loops hold it now: when they all let go at a drain, it closes */
	fd = -1;
	srv.w[0].signals = watch(&srv.w[0], sfd, on_signal);
	sfd = -1; /* the loop's now: h2o closes it */
	if (!open_handle(t, &srv.exp.t, "exporter") || !open_handle(t, &srv.rd.t, "reader") ||
	    !open_handle(t, &srv.rp.t, "report thread"))
		goto out;
	srv.rd.srv = srv.rp.srv = &srv;
	if (!jobq_start(&srv.rd, reader_main, &srv.rd)) {
		fprintf(stderr, "tally: cannot start the reader thread\n");
		goto out;
	}
	if (!jobq_start(&srv.rp, reader_main, &srv.rp)) {
		fprintf(stderr, "tally: cannot start the report thread\n");
		goto out;
	}
	pthread_mutex_init(&srv.exp.mu, NULL);
	pthread_cond_init(&srv.exp.wake, NULL);
	srv.exp.tail = &srv.exp.head;
	if (!(srv.exp.started = pthread_create(&srv.exp.thread, NULL, export_main, &srv) == 0)) {
		fprintf(stderr, "tally: cannot start the exporter thread\n");
		goto out;
	}
	if (!jobq_start(&srv.x, executor_main, &srv)) {
		fprintf(stderr, "tally: cannot start the executor thread\n");
		goto out;
	}
	for (int i = 1; i < srv.nworkers; i++)
		if (!(srv.w[i].started = pthread_create(&srv.w[i].thread, NULL, worker_main,
							 &srv.w[i]) == 0)) {
			fprintf(stderr, "tally: cannot start event loop %d\n", i);
			goto out;
		}
	fprintf(stderr, "tally: listening on http://%s (%d thread%s, %d connections at most)\n",
		o->listen, srv.nworkers, srv.nworkers == 1 ? "" : "s", srv.max_conns * srv.nworkers);
	worker_run(&srv.w[0]);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (sfd >= 0)
		close(sfd);
	if (rc) { /* a start that failed half-way: the loops that run drain at
		   * once (the eventfd poke reaches a loop that has not started) */
		atomic_store(&srv.drain_deadline, 0);
		atomic_store(&srv.draining, 1);
		for (int i = 1; i < srv.nworkers; i++)
			if (srv.w[i].started)
				batch_poke(srv.batch, i);
	}
	for (int i = 1; i < srv.nworkers; i++)
		if (srv.w[i].started)
			pthread_join(srv.w[i].thread, NULL);
	jobq_stop(&srv.x);
	jobq_stop(&srv.rd);
	jobq_stop(&srv.rp);
	if (srv.exp.started) /* hands back every export it holds, cut short */
		thread_stop(srv.exp.thread, &srv.exp.mu, &srv.exp.wake, &srv.exp.stop);
	tly_close(srv.exp.t);
	if (srv.batch) {
		batch_stop(srv.batch); /* commits and syncs what the last requests wrote */
		batch_counts(srv.batch, &bs);
		drop_unsent(&srv);
	}
	if (rc == 0)
		fprintf(stderr, "tally: stopped (%ld requests in %ld commits; %ld syncs, %.2f ms on average, %.1f ms at most; "
			"%ld claims handed back by the event loop)\n",
			bs.requests, bs.commits, bs.syncs, bs.sync_avg_ms, bs.sync_max_ms,
			srv.hand ? handback_count(srv.hand) : 0L);
	if (srv.refit.started) {
		pthread_mutex_lock(&srv.refit.lock);
		atomic_store(&srv.refit.stop, 1);
		pthread_cond_signal(&srv.refit.wake);
		pthread_mutex_unlock(&srv.refit.lock);
		pthread_join(srv.refit.thread, NULL);
	}
	for (int i = 0; i < srv.nworkers; i++)
		worker_free(&srv.w[i]);
	if (srv.config_ready)
		h2o_config_dispose(&srv.config);
	batch_free(srv.batch);
	handback_free(srv.hand);
	pthread_mutex_destroy(&srv.lock);
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	return rc;
}
