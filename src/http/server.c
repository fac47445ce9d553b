/* server.c — the HTTP/1.1 server on libevent's evhttp.
 *
 * Worker threads (--threads, default 1), each with its own event loop and
 * evhttp, accept from one listening socket. A request flows: evhttp ->
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
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <signal.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "http/batch.h"
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

struct worker;
struct stream;

/* A reply waits in the batch queue until its request's writes are on disk;
 * a stream's chunks wait the same way, one at a time. */
enum reply_kind { R_FULL, R_STREAM, R_CHUNK };

struct reply {
	struct pending hdr;        /* first: the batch queue's part */
	enum reply_kind kind;
	struct evhttp_request *ev;
	int status;
	struct evbuffer *body;     /* R_FULL */
	struct stream *stream;     /* R_STREAM, R_CHUNK */
};

struct req {
	struct tly *t;
	struct evhttp_request *ev;
	struct tly_actor actor;
	const char *params[MAX_PARAMS];
	struct evkeyvalq query;
	json_t *body;
	struct server *srv;
	struct worker *w;
	struct reply *rep;
	struct tly_buf *text;       /* TEXT routes write their reply here */
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
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	struct event *wake, *drain_timer;
	int streams, draining;
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
	struct tly_buf text;        /* the reply of a TEXT route, reused */
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

struct server {
	struct tly *t;
	struct jobq x;              /* the executor */
	struct jobq rd;             /* the reader */
	struct exporter exp;
	pthread_mutex_t lock;       /* the library (t and its store): one caller at a time */
	struct batcher *batch;
	struct refitter refit;
	struct event *sigterm, *sigint;
	atomic_int draining;
	_Atomic int64_t drain_deadline;
	int nworkers;
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
enum { PUBLIC = 1, BODY = 2, NO_CONTENT_OK = 4, SELF = 8, READ = 16, TEXT = 32 };

struct route {
	enum evhttp_cmd_type method;
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

static enum tly_code h_project_list(struct req *r, json_t **out, struct tly_err *err)
{
	return tly_project_list(r->t, &r->actor, out, err);
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

static int parse_limit(const char *s, int def)
{
	char *end;
	long v;

	if (!s)
		return def;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 0 || v > 1000000)
		return -1;
	return (int)v;
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
static void stream_start(struct stream *st);
static void stream_ready(struct stream *st, int failed);
static void stream_free(struct stream *st);
struct job;
static void job_put(struct worker *w, struct job *j);

static void send_now(struct evhttp_request *ev, int status, struct evbuffer *body)
{
	evhttp_send_reply(ev, status, reason(status), body);
}

static void fill_failed(struct reply *rep)
{
	static const char body[] = "{\"error\":{\"code\":\"internal\","
				   "\"message\":\"the write could not be committed\"}}";

	if (!rep->body)
		rep->body = evbuffer_new();
	evbuffer_drain(rep->body, evbuffer_get_length(rep->body));
	evbuffer_add(rep->body, body, sizeof(body) - 1);
	rep->status = 500;
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
	if (rep->kind == R_STREAM)
		stream_start(rep->stream);
	else {
		if (rep->hdr.failed)
			fill_failed(rep);
		send_now(rep->ev, rep->status, rep->body);
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
 * chunk is handed back through its mailbox. */
struct stream {
	struct worker *w;
	struct evhttp_request *ev;
	struct evhttp_connection *conn;
	struct tly_export *x;
	struct tly_buf buf;         /* the chunk read ahead */
	struct evbuffer *out;       /* what goes into the connection next */
	struct reply chunk;         /* hands buf back once its batch is durable */
	struct stream *next;        /* in the exporter's queue */
	int done, read_failed;      /* set by the exporter */
	int reading, ready, sending, closed, started;
	int ev_ours;                /* the peer left mid-reply: evhttp let go of ev, we free it */
};

static void stream_free(struct stream *st)
{
	if (st->conn)
		evhttp_connection_set_closecb(st->conn, NULL, NULL);
	if (st->started)
		st->w->streams--;
	tly_export_free(st->x);
	tly_buf_free(&st->buf);
	evbuffer_free(st->out);
	if (st->ev_ours)
		evhttp_request_free(st->ev);
	atomic_fetch_sub(&st->w->srv->exports, 1);
	free(st);
}

/* The export cannot go on (a read failed, a batch it may have seen failed,
 * the server stops): the connection is closed without the chunked
 * terminator, so the client sees a cut transfer rather than a short export. */
static void stream_abort(struct stream *st)
{
	struct evhttp_connection *conn = st->conn;

	stream_free(st); /* unhooks the close callback */
	if (conn)
		evhttp_connection_free(conn);
}

static void stream_closed(struct evhttp_connection *conn, void *arg)
{
	struct stream *st = arg;

	(void)conn;
	st->conn = NULL;
	st->closed = 1;   /* the peer went away: the request is gone with it */
	/* On a peer's EOF evhttp detaches a request whose reply is not ended and
	 * leaves it to us (the one reply_end would free); when the server stops,
	 * the request is still the connection's and evhttp frees it after this. */
	st->ev_ours = evhttp_request_get_connection(st->ev) == NULL;
	if (!st->reading) /* else the chunk's delivery frees it */
		stream_free(st);
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

static void stream_flushed(struct evhttp_connection *conn, void *arg)
{
	struct stream *st = arg;

	(void)conn;
	st->sending = 0;
	stream_push(st);
}

/* Sends the chunk read ahead once the one before it has left, and asks for
 * the next: at most two chunks per export are in memory. */
static void stream_push(struct stream *st)
{
	if (st->sending || !st->ready)
		return;
	st->ready = 0;
	if (st->buf.len)
		evbuffer_add(st->out, st->buf.p, st->buf.len);
	if (st->done) {
		if (evbuffer_get_length(st->out))
			evhttp_send_reply_chunk(st->ev, st->out);
		evhttp_send_reply_end(st->ev);
		stream_free(st);
		return;
	}
	if (evbuffer_get_length(st->out)) { /* an empty chunk would end the body */
		st->sending = 1;
		evhttp_send_reply_chunk_with_cb(st->ev, st->out, stream_flushed, st);
	}
	stream_read(st);
}

/* A chunk read by the exporter is durable (or its batch failed). */
static void stream_ready(struct stream *st, int failed)
{
	st->reading = 0;
	if (st->closed)
		stream_free(st);
	else if (failed || st->read_failed)
		stream_abort(st);
	else {
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
	st->ev = r->ev;
	st->x = x;
	st->out = evbuffer_new();
	st->chunk.kind = R_CHUNK;
	st->chunk.stream = st;
	st->chunk.hdr.owner = r->w->id;
	tly_buf_init(&st->buf, EXPORT_BUF_CAP);
	evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Content-Type",
			  "application/x-ndjson");
	r->rep->kind = R_STREAM;
	r->rep->stream = st;
	return TLY_OK;
}

static void stream_start(struct stream *st)
{
	st->started = 1;
	st->w->streams++;
	st->conn = evhttp_request_get_connection(st->ev);
	if (st->conn)
		evhttp_connection_set_closecb(st->conn, stream_closed, st);
	evhttp_send_reply_start(st->ev, 200, "OK");
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

static enum tly_code h_quality(struct req *r, json_t **out, struct tly_err *err)
{
	return tly_quality_report(r->t, &r->actor, r->params[0], out, err);
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
	{ EVHTTP_REQ_GET, "/api/v1/openapi.json", h_openapi, 200, PUBLIC | SELF | READ },
	{ EVHTTP_REQ_GET, "/api/v1/me", h_me, 200, READ },
	{ EVHTTP_REQ_GET, "/api/v1/projects", h_project_list, 200, READ },
	{ EVHTTP_REQ_POST, "/api/v1/projects", h_project_create, 201, BODY },
	{ EVHTTP_REQ_GET, "/api/v1/projects/{id}", h_project_get, 200, READ },
	{ EVHTTP_REQ_POST, "/api/v1/projects/{id}/tasks", h_tasks_add, 201, BODY },
	{ EVHTTP_REQ_GET, "/api/v1/projects/{id}/tasks", h_task_list, 200, READ },
	{ EVHTTP_REQ_POST, "/api/v1/projects/{id}/claim", h_claim, 200, NO_CONTENT_OK | TEXT },
	{ EVHTTP_REQ_GET, "/api/v1/projects/{id}/export", h_export, 200, SELF | READ },
	{ EVHTTP_REQ_GET, "/api/v1/projects/{id}/quality", h_quality, 200, READ },
	{ EVHTTP_REQ_POST, "/api/v1/projects/{id}/quality/refit", h_refit, 202, 0 },
	{ EVHTTP_REQ_GET, "/api/v1/tasks/{id}", h_task_get, 200, READ },
	{ EVHTTP_REQ_POST, "/api/v1/tasks/{id}/cancel", h_task_cancel, 200, 0 },
	{ EVHTTP_REQ_POST, "/api/v1/assignments/{id}/submit", h_submit, 201, BODY | TEXT },
	{ EVHTTP_REQ_POST, "/api/v1/assignments/{id}/release", h_release, 200, 0 },
	{ EVHTTP_REQ_POST, "/api/v1/assignments/{id}/heartbeat", h_heartbeat, 200, 0 },
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static const char *method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_PATCH: return "PATCH";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	default: return "OTHER";
	}
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

static void reply_bytes(struct reply *rep, int status, const char *p, size_t n)
{
	if (!rep->body)
		rep->body = evbuffer_new();
	if (n)
		evbuffer_add(rep->body, p, n);
	rep->status = status;
	if (status != 204)
		evhttp_add_header(evhttp_request_get_output_headers(rep->ev), "Content-Type",
				  "application/json");
}

static void reply_json(struct reply *rep, int status, json_t *o)
{
	char buf[4096], *s;
	size_t n = json_dumpb(o, buf, sizeof(buf), JSON_COMPACT);

	if (n <= sizeof(buf)) { /* most replies: no allocation */
		reply_bytes(rep, status, buf, n);
		return;
	}
	s = json_dumps(o, JSON_COMPACT);
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

/* ---- dispatch ------------------------------------------------------------------------ */

static enum tly_code authenticate(struct req *r, struct tly_err *err)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Authorization");

	if (!h)
		return tly_err_set(err, TLY_EUNAUTH, "", "missing Authorization: Bearer <api key>");
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return tly_err_set(err, TLY_EUNAUTH, "", "the Authorization header must be Bearer <api key>");
	h += 7;
	while (*h == ' ')
		h++;
	return tly_authenticate(r->t, h, &r->actor, err);
}

static enum tly_code read_body(struct req *r, struct tly_err *err)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
	size_t n = evbuffer_get_length(in);
	const char *p = n ? (const char *)evbuffer_pullup(in, -1) : "";
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
	const char *path;
	enum evhttp_cmd_type method;
	struct job *next;
	/* from here on not cleared when a job is reused */
	struct tly_err body_err;
	char store[MAX_PARAMS][64];   /* r.params point here */
};

#define SPARE_JOBS 256

/* A cleared job, a kept one when there is (no calloc of a kilobyte and a
 * new evbuffer per request, and the memory stays with the worker's thread). */
static struct job *job_get(struct worker *w)
{
	struct job *j = w->spare;
	struct evbuffer *body = NULL;

	if (j) {
		w->spare = j->next;
		w->nspare--;
		body = j->rep.body; /* emptied by the send */
	} else {
		j = tly_xmalloc(sizeof(*j));
	}
	memset(j, 0, offsetof(struct job, body_err));
	tly_err_clear(&j->body_err);
	j->rep.body = body;
	if (body)
		evbuffer_drain(body, evbuffer_get_length(body));
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
	if (j->rep.body)
		evbuffer_free(j->rep.body);
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
		if (rc == TLY_EBUSY)
			evhttp_add_header(evhttp_request_get_output_headers(j->r.ev), "Retry-After",
					  RETRY_AFTER);
		reply_error(rep, status, err);
	} else if (rt->flags & SELF) {
		/* the handler filled the reply */
	} else if ((rt->flags & TEXT) && j->r.text->len) {
		reply_bytes(rep, rt->status, j->r.text->p, j->r.text->len);
	} else if (!out && (rt->flags & NO_CONTENT_OK)) {
		if (err->message[0]) /* e.g. why an annotator gets no task */
			evhttp_add_header(evhttp_request_get_output_headers(j->r.ev), "Tally-Reason",
					  err->message);
		reply_bytes(rep, 204, NULL, 0);
	} else if (out) {
		reply_json(rep, rt->status, out);
	} else {
		tly_err_set(err, TLY_EINTERNAL, "", "handler returned nothing");
		reply_error(rep, 500, err);
	}
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
	tly_buf_reset(&srv->x.text);
	j->r.text = &srv->x.text;
	pthread_mutex_lock(&srv->lock);
	rep->hdr.seq = batch_join(srv->batch);
	if (!rep->hdr.seq)
		rc = tly_err_set(&err, TLY_EINTERNAL, "", "the database could not open a transaction");
	else
		rc = run(&j->r, j->rt, j->body_rc, &j->body_err, &out, &err);
	compose(j, rc, out, &err);
	json_decref(out);
	/* from here on the job is its worker's again: do not touch it */
	if (batch_add(srv->batch, &rep->hdr)) /* nothing to wait for */
		batch_post(srv->batch, &rep->hdr);
	pthread_mutex_unlock(&srv->lock);
	if (srv->x.text.alloc > TEXT_KEEP) /* a huge task passed: give it back */
		tly_buf_free(&srv->x.text);
}

/* A READ job, in the reader: no lock for the library call (the reader's
 * handle is its own); the reply is tagged with the last batch whose commits
 * the read could have seen, taken after it under the library lock. */
static void execute_read(struct server *srv, struct job *j)
{
	struct jobq *rd = &srv->rd;
	struct reply *rep = &j->rep;
	struct tly_err err;
	json_t *out = NULL;
	enum tly_code rc;

	tly_err_clear(&err);
	tly_buf_reset(&rd->text);
	j->r.text = &rd->text;
	j->r.t = rd->t;
	rc = run(&j->r, j->rt, j->body_rc, &j->body_err, &out, &err);
	compose(j, rc, out, &err);
	json_decref(out);
	reply_after_read(srv, &rep->hdr); /* the job is its worker's from here on */
	if (rd->text.alloc > TEXT_KEEP)
		tly_buf_free(&rd->text);
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
	tly_buf_init(&q->text, TEXT_CAP);
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

/* Every queued job, in order. With none queued it first waits for one, up
 * to wait_us (-1: as long as it takes). NULL, and *stopped set, once the
 * queue is stopped and empty. */
static struct job *jobq_take(struct jobq *q, int64_t wait_us, int *stopped)
{
	struct job *list;

	pthread_mutex_lock(&q->mu);
	if (!q->head && !q->stop) {
		if (wait_us < 0) {
			pthread_cond_wait(&q->wake, &q->mu);
		} else {
			tly_cond_wait_us(&q->wake, &q->mu, wait_us);
		}
	}
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
	tly_buf_free(&q->text);
	tly_close(q->t);
	q->t = NULL;
}

static void *reader_main(void *arg)
{
	struct server *srv = arg;
	struct job *list, *next;
	int stopped = 0;

	pthread_setname_np(pthread_self(), "tally-read"); /* top -H, perf, gdb */

	while (!stopped)
		for (list = jobq_take(&srv->rd, -1, &stopped); list; list = next) {
			next = list->next;
			execute_read(srv, list);
		}
	return NULL;
}

static void *executor_main(void *arg)
{
	struct server *srv = arg;
	struct job *list, *next;
	int64_t wait_us;
	int due, stopped = 0;

	pthread_setname_np(pthread_self(), "tally-exec"); /* top -H, perf, gdb */

	while (!stopped) {
		/* between passes: commit the batch when it is due */
		pthread_mutex_lock(&srv->lock);
		if ((due = batch_due(srv->batch, &wait_us)))
			batch_commit(srv->batch);
		pthread_mutex_unlock(&srv->lock);
		/* nothing open (or just committed): sleep until a job comes */
		for (list = jobq_take(&srv->x, due ? -1 : wait_us, &stopped); list; list = next) {
			next = list->next;
			execute(srv, list);
		}
	}
	return NULL;
}

static void submit_job(struct server *srv, struct job *j)
{
	jobq_push(j->rt->flags & READ ? &srv->rd : &srv->x, j);
}

static void dispatch(struct evhttp_request *ev, void *arg)
{
	struct worker *w = arg;
	struct server *srv = w->srv;
	struct job *j = job_get(w);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
	enum evhttp_cmd_type method = evhttp_request_get_command(ev);
	const struct route *rt = NULL;
	struct reply *rep = &j->rep;
	int path_known = 0, status = 500;
	struct tly_err err;
	enum tly_code rc;

	tly_err_clear(&err);
	/* draining: answer, then close, so a busy keep-alive client cannot keep
	 * the drain going until its deadline */
	if (w->draining)
		evhttp_add_header(evhttp_request_get_output_headers(ev), "Connection", "close");
	j->r.t = srv->t;
	j->r.ev = ev;
	j->r.srv = srv;
	j->r.w = w;
	j->r.rep = rep;
	TAILQ_INIT(&j->r.query);
	rep->ev = ev;
	rep->hdr.owner = w->id;
	if (!path)
		path = "";
	j->path = path;
	j->method = method;
	for (size_t i = 0; i < NROUTES && !rt; i++)
		if (match(routes[i].pattern, path, j->r.params, j->store)) {
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
	if (q && evhttp_parse_query_str(q, &j->r.query) != 0) {
		rc = tly_err_set(&err, TLY_EBADREQ, "", "malformed query string");
		status = code_status[rc];
		goto now;
	}
	if (rt->flags & BODY)
		j->body_rc = read_body(&j->r, &j->body_err);
	j->rt = rt;
	w->outstanding++;
	submit_job(srv, j);
	return;
now:
	reply_error(rep, status, &err);
	send_now(ev, rep->status, rep->body);
	job_put(w, j);
}

/* ---- life cycle ------------------------------------------------------------------------ */

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	if ((w->streams == 0 && w->outstanding == 0) ||
	    tly_now_ms() >= atomic_load(&w->srv->drain_deadline))
		event_base_loopbreak(w->base);
}

static void drain_start(struct worker *w)
{
	struct timeval tick = { 0, 50000 };

	w->draining = 1;
	if (w->sock) {
		evhttp_del_accept_socket(w->http, w->sock);
		w->sock = NULL;
	}
	w->drain_timer = event_new(w->base, -1, EV_PERSIST, drain_check, w);
	event_add(w->drain_timer, &tick);
}

/* Replies that are on disk now, and a drain to start. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct pending *p, *next;

	(void)fd;
	(void)what;
	for (p = batch_take(w->srv->batch, w->id); p; p = next) {
		next = p->next;
		deliver(w, (struct reply *)p);
	}
	if (atomic_load(&w->srv->draining) && !w->draining)
		drain_start(w);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	(void)what;
	if (atomic_load(&srv->draining))
		return;
	fprintf(stderr, "tally: %s, draining\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	atomic_store(&srv->drain_deadline, tly_now_ms() + 10000);
	atomic_store(&srv->draining, 1);
	atomic_store(&srv->refit.stop, 1); /* a refit under way gives up at its next batch */
	for (int i = 0; i < srv->nworkers; i++)
		batch_poke(srv->batch, i);
}

/* An event base whose epoll changes are applied once per loop turn: a
 * response's "write done, read again" pair becomes one epoll_ctl instead of
 * two (4 calls per request down to 3 on the claim+submit bench). The
 * hello-world ceiling in bench/ uses the same setting. */
static struct event_base *base_new(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (!cfg)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

static int worker_init(struct server *srv, struct worker *w, int id, const struct tly_http_opts *o)
{
	w->srv = srv;
	w->id = id;
	w->base = base_new();
	w->http = w->base ? evhttp_new(w->base) : NULL;
	if (!w->http)
		return -1;
	w->wake = event_new(w->base, batch_fd(srv->batch, id), EV_READ | EV_PERSIST, on_wake, w);
	if (!w->wake || event_add(w->wake, NULL) != 0)
		return -1;
	evhttp_set_max_body_size(w->http, (ev_ssize_t)o->max_body);
	evhttp_set_max_headers_size(w->http, 64 * 1024);
	evhttp_set_timeout(w->http, 120);
	/* every method reaches dispatch(), which answers 405 with a JSON body */
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(w->http, dispatch, w);
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	pthread_setname_np(pthread_self(), "tally-http"); /* top -H, perf, gdb */

	event_base_dispatch(w->base);
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
				if (rep->stream->closed)
					stream_free(rep->stream);
				continue; /* else evhttp_free() closes it */
			}
			if (rep->kind == R_STREAM)
				stream_free(rep->stream);
			job_free((struct job *)rep);
		}
	}
}

int tly_http_serve(struct tly *t, const struct tly_http_opts *o)
{
	static struct server srv; /* one per process: signals reach it */
	pthread_mutexattr_t ma;
	char host[256];
	const char *colon = strrchr(o->listen, ':');
	struct batch_stats bs = { 0 };
	long port;
	char *end;
	int rc = 1, fd;

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
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535) {
		fprintf(stderr, "tally: bad port in \"%s\"\n", o->listen);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	{
		/* one descriptor per connection: take what the hard limit allows */
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	json_object_seed(0); /* before any thread hashes a key */
	/* adaptive: a waiter spins briefly first, as the holder is usually quick */
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&srv.lock, &ma);
	pthread_mutexattr_destroy(&ma);
	if (!(srv.batch = batch_new(t, &srv.lock, srv.nworkers)))
		goto out;
	srv.refit.path = tly_path(t);
	pthread_mutex_init(&srv.refit.lock, NULL);
	pthread_cond_init(&srv.refit.wake, NULL);
	srv.refit.started = pthread_create(&srv.refit.thread, NULL, refit_main, &srv.refit) == 0;
	if (!open_handle(t, &srv.exp.t, "exporter") || !open_handle(t, &srv.rd.t, "reader"))
		goto out;
	if (!jobq_start(&srv.rd, reader_main, &srv)) {
		fprintf(stderr, "tally: cannot start the reader thread\n");
		goto out;
	}
	pthread_mutex_init(&srv.exp.mu, NULL);
	pthread_cond_init(&srv.exp.wake, NULL);
	srv.exp.tail = &srv.exp.head;
	if (!(srv.exp.started = pthread_create(&srv.exp.thread, NULL, export_main, &srv) == 0)) {
		fprintf(stderr, "tally: cannot start the exporter thread\n");
		goto out;
	}
	for (int i = 0; i < srv.nworkers; i++)
		if (worker_init(&srv, &srv.w[i], i, o) != 0) {
			fprintf(stderr, "tally: cannot set up event loop %d\n", i);
			goto out;
		}
	srv.w[0].sock = evhttp_bind_socket_with_handle(srv.w[0].http, host, (ev_uint16_t)port);
	if (!srv.w[0].sock) {
		fprintf(stderr, "tally: cannot listen on %s: %s\n", o->listen, strerror(errno));
		goto out;
	}
	/* evhttp listens with a backlog of 128: a burst of new connections (a
	 * thousand annotators after a restart) overflows it and the dropped ones
	 * wait for TCP's one-second retry. Listening again only raises it. */
	fd = evhttp_bound_socket_get_fd(srv.w[0].sock);
	if (listen(fd, LISTEN_BACKLOG) != 0)
		fprintf(stderr, "tally: listen backlog stays at 128: %s\n", strerror(errno));
	/* no Nagle: the tail of a reply larger than a segment would wait for the
	 * client's delayed ACK (40 ms); accepted sockets inherit it on Linux */
	{
		int one = 1;
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
			fprintf(stderr, "tally: TCP_NODELAY: %s\n", strerror(errno));
	}
	/* the other loops accept from the same socket (each its own descriptor) */
	for (int i = 1; i < srv.nworkers; i++) {
		int d = dup(fd);
		if (d < 0 || !(srv.w[i].sock = evhttp_accept_socket_with_handle(srv.w[i].http, d))) {
			fprintf(stderr, "tally: cannot share the listening socket: %s\n", strerror(errno));
			if (d >= 0)
				close(d);
			goto out;
		}
	}
	srv.sigterm = evsignal_new(srv.w[0].base, SIGTERM, on_signal, &srv);
	srv.sigint = evsignal_new(srv.w[0].base, SIGINT, on_signal, &srv);
	event_add(srv.sigterm, NULL);
	event_add(srv.sigint, NULL);
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
	fprintf(stderr, "tally: listening on http://%s (%d thread%s)\n", o->listen, srv.nworkers,
		srv.nworkers == 1 ? "" : "s");
	event_base_dispatch(srv.w[0].base);
	rc = 0;
out:
	if (rc) { /* a start that failed half-way: the loops that run drain at
		   * once (a loopbreak before a loop starts would be lost; the
		   * eventfd poke waits for it) */
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
	if (srv.exp.started) /* hands back every export it holds, cut short */
		thread_stop(srv.exp.thread, &srv.exp.mu, &srv.exp.wake, &srv.exp.stop);
	tly_close(srv.exp.t);
	if (srv.batch) {
		batch_stop(srv.batch); /* commits and syncs what the last requests wrote */
		batch_counts(srv.batch, &bs);
		drop_unsent(&srv);
	}
	if (rc == 0)
		fprintf(stderr, "tally: stopped (%ld requests in %ld commits; %ld syncs, %.2f ms on average, %.1f ms at most)\n",
			bs.requests, bs.commits, bs.syncs, bs.sync_avg_ms, bs.sync_max_ms);
	if (srv.refit.started) {
		pthread_mutex_lock(&srv.refit.lock);
		atomic_store(&srv.refit.stop, 1);
		pthread_cond_signal(&srv.refit.wake);
		pthread_mutex_unlock(&srv.refit.lock);
		pthread_join(srv.refit.thread, NULL);
	}
	if (srv.sigterm)
		event_free(srv.sigterm);
	if (srv.sigint)
		event_free(srv.sigint);
	for (int i = 0; i < srv.nworkers; i++) {
		struct worker *w = &srv.w[i];
		if (w->drain_timer)
			event_free(w->drain_timer);
		if (w->wake)
			event_free(w->wake);
		while (w->spare) {
			struct job *j = w->spare;
			w->spare = j->next;
			job_free(j);
		}
		if (w->http)
			evhttp_free(w->http);
		if (w->base)
			event_base_free(w->base);
	}
	batch_free(srv.batch);
	pthread_mutex_destroy(&srv.lock);
	return rc;
}
