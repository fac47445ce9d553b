/* server.c — the HTTP/1.1 server on libevent's evhttp, one thread.
 *
 * A request flows: evhttp -> dispatch() -> route match (table below) ->
 * authentication -> body parse (bounded by --max-body, JSON) -> handler ->
 * library call -> JSON reply. The handler owns nothing past its return:
 * everything it allocated is released in dispatch()'s single exit. */
#include "http/server.h"

#include <errno.h>
#include <pthread.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <signal.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "tally.h"
#include "util.h"

extern const char tly_openapi_json[];
extern const size_t tly_openapi_json_len;

#define MAX_PARAMS 2
#define BATCH_MAX_REQUESTS 256
#define BATCH_MAX_MS 5
#define EXPORT_BATCH 512
#define EXPORT_BUF_CAP (256u << 20)

struct req {
	struct tly *t;
	struct evhttp_request *ev;
	struct tly_actor actor;
	const char *params[MAX_PARAMS];
	struct evkeyvalq query;
	json_t *body;
	struct server *srv;
};

/* A reply held back until the batch it was written in is on disk. */
struct pending {
	struct evhttp_request *ev;
	int status;
	struct evbuffer *body;     /* NULL for a stream start */
	struct stream *stream;     /* set for a stream start */
	struct pending *next;
};

/* The refit worker: a thread with its own database connection, fed project
 * ids; the event loop never waits for a model fit. */
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

struct server {
	struct tly *t;
	struct refitter refit;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	struct event *sigterm, *sigint, *drain_timer, *flush_ev;
	int draining, streams;
	int64_t drain_deadline;
	/* group commit: requests handled in one loop pass share one transaction */
	int batch_open, batch_n;
	int64_t batch_started;
	struct pending *head, **tail;
	long batches, batched;
};

/* A handler answers with a JSON object (status from the route table, or 204
 * when *out stays NULL and the route allows it) or an error. */
typedef enum tly_code (*handler_fn)(struct req *r, json_t **out, struct tly_err *err);

/* SELF: the handler sends its reply itself (stored bytes, a stream) */
enum { PUBLIC = 1, BODY = 2, NO_CONTENT_OK = 4, SELF = 8 };

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

static void reply_bytes(struct server *srv, struct evhttp_request *ev, int status,
			const char *p, size_t n);

static enum tly_code h_openapi(struct req *r, json_t **out, struct tly_err *err)
{
	(void)out;
	(void)err;
	reply_bytes(r->srv, r->ev, 200, tly_openapi_json, tly_openapi_json_len);
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
	return tly_claim(r->t, &r->actor, r->params[0], out, err);
}

static enum tly_code h_submit(struct req *r, json_t **out, struct tly_err *err)
{
	return tly_submit(r->t, &r->actor, r->params[0], r->body, out, err);
}

static enum tly_code h_release(struct req *r, json_t **out, struct tly_err *err)
{
	return tly_release(r->t, &r->actor, r->params[0], out, err);
}

static enum tly_code h_heartbeat(struct req *r, json_t **out, struct tly_err *err)
{
	return tly_heartbeat(r->t, &r->actor, r->params[0], out, err);
}

/* ---- group commit ------------------------------------------------------------
 * The first request of a loop pass opens a store transaction and schedules
 * flush() behind every callback already queued for this pass; each request
 * runs inside it as a savepoint. flush() commits once (one fsync for all of
 * them) and only then sends the replies: nothing is acknowledged before it
 * is on disk. */

struct stream;
static void stream_start(struct stream *st);
static void stream_free(struct stream *st);
static const char *reason(int status);

static void send_now(struct evhttp_request *ev, int status, struct evbuffer *body)
{
	evhttp_send_reply(ev, status, reason(status), body);
}

static void batch_open(struct server *srv)
{
	struct tly_err err;
	struct store *s = tly_store(srv->t);

	if (srv->batch_open)
		return;
	tly_err_clear(&err);
	if (s->ops->begin(s, &err) != TLY_OK) {
		fprintf(stderr, "tally: cannot open a batch: %s\n", err.message);
		return; /* requests then commit one by one */
	}
	srv->batch_open = 1;
	srv->batch_n = 0;
	srv->batch_started = tly_now_ms();
	srv->batches++;
	event_active(srv->flush_ev, EV_TIMEOUT, 1);
}

static void queue_reply(struct server *srv, struct evhttp_request *ev, int status,
			struct evbuffer *body, struct stream *st)
{
	struct pending *p;

	if (!srv->batch_open) {
		if (st)
			stream_start(st);
		else
			send_now(ev, status, body);
		if (body)
			evbuffer_free(body);
		return;
	}
	p = tly_xcalloc(1, sizeof(*p));
	p->ev = ev;
	p->status = status;
	p->body = body;
	p->stream = st;
	*srv->tail = p;
	srv->tail = &p->next;
	srv->batched++;
}

static void flush(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct store *s = tly_store(srv->t);
	struct pending *p, *next;
	struct tly_err err;
	int ok;

	(void)fd;
	(void)what;
	if (!srv->batch_open)
		return;
	event_del(srv->flush_ev); /* when called early (batch cap) */
	tly_err_clear(&err);
	ok = s->ops->commit(s, &err) == TLY_OK;
	srv->batch_open = 0;
	if (!ok)
		fprintf(stderr, "tally: commit failed, %s\n", err.message);
	for (p = srv->head; p; p = next) {
		next = p->next;
		if (!ok) {
			/* nothing of this batch is on disk: acknowledge none of it */
			static const char body[] = "{\"error\":{\"code\":\"internal\","
						   "\"message\":\"the write could not be committed\"}}";
			if (p->body)
				evbuffer_drain(p->body, evbuffer_get_length(p->body));
			else {
				p->body = evbuffer_new();
				stream_free(p->stream);
			}
			evbuffer_add(p->body, body, sizeof(body) - 1);
			send_now(p->ev, 500, p->body);
		} else if (p->stream) {
			stream_start(p->stream);
		} else {
			send_now(p->ev, p->status, p->body);
		}
		if (p->body)
			evbuffer_free(p->body);
		free(p);
	}
	srv->head = NULL;
	srv->tail = &srv->head;
}

/* ---- streamed export ------------------------------------------------------- */

struct stream {
	struct server *srv;
	struct evhttp_request *ev;
	struct evhttp_connection *conn;
	struct tly_export *x;
	struct tly_buf buf;
	struct evbuffer *out;
};

static void stream_free(struct stream *st)
{
	if (st->conn)
		evhttp_connection_set_closecb(st->conn, NULL, NULL);
	st->srv->streams--;
	tly_export_free(st->x);
	tly_buf_free(&st->buf);
	evbuffer_free(st->out);
	free(st);
}

static void stream_closed(struct evhttp_connection *conn, void *arg)
{
	struct stream *st = arg;

	(void)conn;
	st->conn = NULL;
	stream_free(st); /* the peer went away: the request is gone with it */
}

static void stream_more(struct evhttp_connection *conn, void *arg)
{
	struct stream *st = arg;
	struct tly_err err;
	int done = 0;

	(void)conn;
	tly_err_clear(&err);
	tly_buf_reset(&st->buf);
	if (tly_export_next(st->x, &st->buf, EXPORT_BATCH, &done, &err) != TLY_OK) {
		/* headers are gone already: all we can do is cut the stream short */
		fprintf(stderr, "tally: export failed: %s\n", err.message);
		done = 1;
	}
	if (st->buf.len) {
		evbuffer_add(st->out, st->buf.p, st->buf.len);
		if (!done) {
			evhttp_send_reply_chunk_with_cb(st->ev, st->out, stream_more, st);
			return;
		}
		evhttp_send_reply_chunk(st->ev, st->out);
	}
	evhttp_send_reply_end(st->ev);
	stream_free(st);
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
	st = tly_xcalloc(1, sizeof(*st));
	st->srv = r->srv;
	st->ev = r->ev;
	st->x = x;
	st->out = evbuffer_new();
	tly_buf_init(&st->buf, EXPORT_BUF_CAP);
	r->srv->streams++;
	evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Content-Type",
			  "application/x-ndjson");
	queue_reply(r->srv, r->ev, 200, NULL, st);
	return TLY_OK;
}

static void stream_start(struct stream *st)
{
	st->conn = evhttp_request_get_connection(st->ev);
	if (st->conn)
		evhttp_connection_set_closecb(st->conn, stream_closed, st);
	evhttp_send_reply_start(st->ev, 200, "OK");
	stream_more(NULL, st);
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
	{ EVHTTP_REQ_GET, "/api/v1/openapi.json", h_openapi, 200, PUBLIC | SELF },
	{ EVHTTP_REQ_GET, "/api/v1/me", h_me, 200, 0 },
	{ EVHTTP_REQ_GET, "/api/v1/projects", h_project_list, 200, 0 },
	{ EVHTTP_REQ_POST, "/api/v1/projects", h_project_create, 201, BODY },
	{ EVHTTP_REQ_GET, "/api/v1/projects/{id}", h_project_get, 200, 0 },
	{ EVHTTP_REQ_POST, "/api/v1/projects/{id}/tasks", h_tasks_add, 201, BODY },
	{ EVHTTP_REQ_GET, "/api/v1/projects/{id}/tasks", h_task_list, 200, 0 },
	{ EVHTTP_REQ_POST, "/api/v1/projects/{id}/claim", h_claim, 200, NO_CONTENT_OK },
	{ EVHTTP_REQ_GET, "/api/v1/projects/{id}/export", h_export, 200, SELF },
	{ EVHTTP_REQ_GET, "/api/v1/projects/{id}/quality", h_quality, 200, 0 },
	{ EVHTTP_REQ_POST, "/api/v1/projects/{id}/quality/refit", h_refit, 202, 0 },
	{ EVHTTP_REQ_GET, "/api/v1/tasks/{id}", h_task_get, 200, 0 },
	{ EVHTTP_REQ_POST, "/api/v1/tasks/{id}/cancel", h_task_cancel, 200, 0 },
	{ EVHTTP_REQ_POST, "/api/v1/assignments/{id}/submit", h_submit, 201, BODY },
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
		if (strncmp(pattern, "{id}", 4) == 0) {
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
	[TLY_ETOOLARGE] = 413, [TLY_EINVALID] = 422, [TLY_EINTERNAL] = 500,
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
	default: return "Internal Server Error";
	}
}

static void reply_bytes(struct server *srv, struct evhttp_request *ev, int status,
			const char *p, size_t n)
{
	struct evbuffer *b = evbuffer_new();

	if (n)
		evbuffer_add(b, p, n);
	if (status != 204)
		evhttp_add_header(evhttp_request_get_output_headers(ev), "Content-Type",
				  "application/json");
	queue_reply(srv, ev, status, b, NULL);
}

static void reply_json(struct server *srv, struct evhttp_request *ev, int status, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	reply_bytes(srv, ev, status, s, strlen(s));
	free(s);
}

static void reply_error(struct server *srv, struct evhttp_request *ev, int status,
			const struct tly_err *err)
{
	json_t *e = json_pack("{s:s,s:s}", "code", status == 405 ? "method_not_allowed"
							   : tly_code_name(err->code),
			      "message", err->message);
	if (err->field[0])
		json_object_set_new(e, "field", json_string(err->field));
	if (err->code == TLY_EBADJSON && err->offset >= 0)
		json_object_set_new(e, "offset", json_integer(err->offset));
	json_t *o = json_pack("{s:o}", "error", e);
	reply_json(srv, ev, status, o);
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

static void dispatch(struct evhttp_request *ev, void *arg)
{
	struct server *srv = arg;
	struct req r = { .t = srv->t, .ev = ev, .srv = srv };
	char store[MAX_PARAMS][64];
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
	enum evhttp_cmd_type method = evhttp_request_get_command(ev);
	const struct route *rt = NULL;
	int path_known = 0, status = 500;
	json_t *out = NULL;
	struct tly_err err;
	enum tly_code rc;

	tly_err_clear(&err);
	TAILQ_INIT(&r.query);
	batch_open(srv);
	if (!path)
		path = "";
	for (size_t i = 0; i < NROUTES && !rt; i++)
		if (match(routes[i].pattern, path, r.params, store)) {
			path_known = 1;
			if (routes[i].method == method)
				rt = &routes[i];
		}
	if (!rt) {
		status = path_known ? 405 : 404;
		tly_err_set(&err, path_known ? TLY_EBADREQ : TLY_ENOTFOUND, "",
			    path_known ? "method not allowed on this route" : "no such route");
		goto fail;
	}
	if (q && evhttp_parse_query_str(q, &r.query) != 0) {
		rc = tly_err_set(&err, TLY_EBADREQ, "", "malformed query string");
		goto fail_rc;
	}
	if (!(rt->flags & PUBLIC) && (rc = authenticate(&r, &err)) != TLY_OK)
		goto fail_rc;
	if ((rt->flags & BODY) && (rc = read_body(&r, &err)) != TLY_OK)
		goto fail_rc;
	if ((rc = rt->handler(&r, &out, &err)) != TLY_OK)
		goto fail_rc;
	if (rt->flags & SELF)
		goto out; /* the handler answered on its own */
	if (!out && (rt->flags & NO_CONTENT_OK)) {
		if (err.message[0]) /* e.g. why an annotator gets no task */
			evhttp_add_header(evhttp_request_get_output_headers(ev), "Tally-Reason",
					  err.message);
		reply_bytes(srv, ev, 204, NULL, 0);
	}
	else if (out)
		reply_json(srv, ev, rt->status, out);
	else {
		rc = tly_err_set(&err, TLY_EINTERNAL, "", "handler returned nothing");
		goto fail_rc;
	}
	goto out;
fail_rc:
	status = code_status[rc < TLY_NCODES ? rc : TLY_EINTERNAL];
fail:
	if (status >= 500)
		fprintf(stderr, "tally: %s %s: %s\n", method_name(method), path, err.message);
	reply_error(srv, ev, status, &err);
out:
	json_decref(out);
	json_decref(r.body);
	evhttp_clear_headers(&r.query);
	{
		char due[32];
		while (tly_refit_due(srv->t, due))
			refit_enqueue(&srv->refit, due);
	}
	/* a batch is bounded: a pass with many or slow requests must not hold
	 * every reply back until its end */
	if (srv->batch_open && (++srv->batch_n >= BATCH_MAX_REQUESTS ||
				tly_now_ms() - srv->batch_started >= BATCH_MAX_MS))
		flush(-1, 0, srv);
}

/* ---- life cycle ------------------------------------------------------------------------ */

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	if ((srv->streams == 0 && !srv->batch_open) || tly_now_ms() >= srv->drain_deadline)
		event_base_loopbreak(srv->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	struct timeval tick = { 0, 50000 };

	(void)what;
	if (srv->draining)
		return;
	fprintf(stderr, "tally: %s, draining\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	srv->draining = 1;
	atomic_store(&srv->refit.stop, 1); /* a refit under way gives up at its next batch */
	srv->drain_deadline = tly_now_ms() + 10000;
	if (srv->sock) {
		evhttp_del_accept_socket(srv->http, srv->sock);
		srv->sock = NULL;
	}
	srv->drain_timer = event_new(srv->base, -1, EV_PERSIST, drain_check, srv);
	event_add(srv->drain_timer, &tick);
}

int tly_http_serve(struct tly *t, const struct tly_http_opts *o)
{
	struct server srv = { .t = t };
	struct pending *p;
	char host[256];
	const char *colon = strrchr(o->listen, ':');
	long port;
	char *end;
	int rc = 1;

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
	srv.tail = &srv.head;
	srv.base = event_base_new();
	srv.http = evhttp_new(srv.base);
	if (!srv.base || !srv.http)
		goto out;
	srv.flush_ev = event_new(srv.base, -1, 0, flush, &srv);
	srv.refit.path = tly_path(t);
	pthread_mutex_init(&srv.refit.lock, NULL);
	pthread_cond_init(&srv.refit.wake, NULL);
	srv.refit.started = pthread_create(&srv.refit.thread, NULL, refit_main, &srv.refit) == 0;
	evhttp_set_max_body_size(srv.http, (ev_ssize_t)o->max_body);
	evhttp_set_max_headers_size(srv.http, 64 * 1024);
	evhttp_set_timeout(srv.http, 120);
	/* every method reaches dispatch(), which answers 405 with a JSON body */
	evhttp_set_allowed_methods(srv.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(srv.http, dispatch, &srv);
	srv.sock = evhttp_bind_socket_with_handle(srv.http, host, (ev_uint16_t)port);
	if (!srv.sock) {
		fprintf(stderr, "tally: cannot listen on %s: %s\n", o->listen, strerror(errno));
		goto out;
	}
	srv.sigterm = evsignal_new(srv.base, SIGTERM, on_signal, &srv);
	srv.sigint = evsignal_new(srv.base, SIGINT, on_signal, &srv);
	event_add(srv.sigterm, NULL);
	event_add(srv.sigint, NULL);
	fprintf(stderr, "tally: listening on http://%s\n", o->listen);
	event_base_dispatch(srv.base);
	flush(-1, 0, &srv); /* commit what the last pass wrote */
	fprintf(stderr, "tally: stopped (%ld requests in %ld commits)\n", srv.batched, srv.batches);
	rc = 0;
out:
	for (p = srv.head; p; p = srv.head) {
		srv.head = p->next;
		if (p->body)
			evbuffer_free(p->body);
		free(p);
	}
	if (srv.flush_ev)
		event_free(srv.flush_ev);
	if (srv.refit.started) {
		pthread_mutex_lock(&srv.refit.lock);
		atomic_store(&srv.refit.stop, 1);
		pthread_cond_signal(&srv.refit.wake);
		pthread_mutex_unlock(&srv.refit.lock);
		pthread_join(srv.refit.thread, NULL);
	}
	if (srv.drain_timer)
		event_free(srv.drain_timer);
	if (srv.sigterm)
		event_free(srv.sigterm);
	if (srv.sigint)
		event_free(srv.sigint);
	if (srv.http)
		evhttp_free(srv.http);
	if (srv.base)
		event_base_free(srv.base);
	return rc;
}
