/* loop_h2o.c — the annotator loop (claim + submit) served on libh2o-evloop
 * instead of evhttp, to measure what tally's HTTP layer costs. Everything
 * below HTTP is tally serve's own: the library calls, one executor thread
 * running every request in the open batch under the library lock, and
 * src/http/batch.c's group commit, whose syncer lets a reply go only once
 * its batch is on disk. Only the two routes of the loop exist (and any GET
 * answers {} for readiness checks): this is a measuring device, not a
 * second server. bench/http_layer.sh runs it beside tally serve.
 *
 *   build/bench/loop_h2o DB PORT      until SIGTERM/SIGINT
 */
#include "h2oloop/h2oloop.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "http/batch.h"
#include "tally.h"
#include "util.h"

#define ID_MAX 64
#define KEY_MAX 128
#define REPLY_CAP (4 * 1024 * 1024)
#define SPARE_JOBS 256

struct job {
	struct pending hdr;      /* first: the batcher hands it back */
	h2o_req_t *req;          /* NULL once the client went away */
	struct job **guard;      /* in req's pool: clears req when it goes */
	int submit;
	char id[ID_MAX], key[KEY_MAX];
	json_t *body;
	enum tly_code body_rc;
	int status;
	struct tly_buf out;
	struct job *next;
};

static struct {
	struct tly *t;
	struct batcher *b;
	pthread_mutex_t lock;           /* the library lock */
	pthread_mutex_t qmu;            /* the executor's queue */
	pthread_cond_t qwake;
	struct job *head, **tail;
	int stop;
	struct job *spare;              /* loop thread only */
	int nspare;
} S = { .lock = PTHREAD_MUTEX_INITIALIZER, .qmu = PTHREAD_MUTEX_INITIALIZER,
	.qwake = PTHREAD_COND_INITIALIZER };

static const int code_status[TLY_NCODES] = {
	[TLY_OK] = 200, [TLY_EBADJSON] = 400, [TLY_EBADREQ] = 400, [TLY_EUNAUTH] = 401,
	[TLY_EFORBIDDEN] = 404, [TLY_ENOTFOUND] = 404, [TLY_ECONFLICT] = 409,
	[TLY_ETOOLARGE] = 413, [TLY_EINVALID] = 422, [TLY_EINTERNAL] = 500, [TLY_EBUSY] = 503,
};

static struct job *job_get(void)
{
	struct job *j = S.spare;

	if (j) {
		S.spare = j->next;
		S.nspare--;
		tly_buf_reset(&j->out);
	} else {
		if (!(j = calloc(1, sizeof(*j))))
			return NULL;
		tly_buf_init(&j->out, REPLY_CAP);
	}
	j->req = NULL;
	j->guard = NULL;
	j->body = NULL;
	j->body_rc = TLY_OK;
	return j;
}

static void job_put(struct job *j)
{
	json_decref(j->body);
	j->body = NULL;
	if (S.nspare >= SPARE_JOBS) {
		tly_buf_free(&j->out);
		free(j);
		return;
	}
	j->next = S.spare;
	S.spare = j;
	S.nspare++;
}

/* ---- the executor: tally serve's, cut to the two routes ----------------- */

static void push(struct job *j)
{
	pthread_mutex_lock(&S.qmu);
	if (!S.head) /* it sleeps only on an empty queue */
		pthread_cond_signal(&S.qwake);
	j->next = NULL;
	*S.tail = j;
	S.tail = &j->next;
	pthread_mutex_unlock(&S.qmu);
}

static struct job *take(int64_t wait_us, int *stopped)
{
	struct job *list;

	pthread_mutex_lock(&S.qmu);
	if (!S.head && !S.stop) {
		if (wait_us < 0) {
			pthread_cond_wait(&S.qwake, &S.qmu);
		} else {
			tly_cond_wait_us(&S.qwake, &S.qmu, wait_us);
		}
	}
	*stopped = !S.head && S.stop;
	list = S.head;
	S.head = NULL;
	S.tail = &S.head;
	pthread_mutex_unlock(&S.qmu);
	return list;
}

static void execute(struct job *j)
{
	struct tly_actor a;
	struct tly_err err;
	enum tly_code rc;

	tly_err_clear(&err);
	pthread_mutex_lock(&S.lock);
	j->hdr.seq = batch_join(S.b);
	if (!j->hdr.seq)
		rc = tly_err_set(&err, TLY_EINTERNAL, "", "the database could not open a transaction");
	else if ((rc = tly_authenticate(S.t, j->key, &a, &err)) == TLY_OK && j->submit)
		rc = j->body_rc != TLY_OK ? tly_err_set(&err, j->body_rc, "", "malformed JSON body")
					  : tly_submit_text(S.t, &a, j->id, j->body, &j->out, &err);
	else if (rc == TLY_OK)
		rc = tly_claim_text(S.t, &a, j->id, &j->out, &err);
	if (rc != TLY_OK) {
		j->status = code_status[rc < TLY_NCODES ? rc : TLY_EINTERNAL];
		tly_buf_reset(&j->out);
		if (tly_buf_addl(&j->out, "{\"error\":{\"message\":") ||
		    tly_buf_add_jstrn(&j->out, err.message, strlen(err.message)) ||
		    tly_buf_addl(&j->out, "}}"))
			tly_buf_reset(&j->out);
	} else {
		j->status = j->submit ? 201 : j->out.len ? 200 : 204;
	}
	/* from here on the job is the loop thread's again */
	if (batch_add(S.b, &j->hdr))
		batch_post(S.b, &j->hdr);
	pthread_mutex_unlock(&S.lock);
}

static void *executor_main(void *arg)
{
	struct job *list, *next;
	int64_t wait_us;
	int due, stopped = 0;

	(void)arg;
	pthread_setname_np(pthread_self(), "tally-exec");
	while (!stopped) {
		pthread_mutex_lock(&S.lock);
		if ((due = batch_due(S.b, &wait_us)))
			batch_commit(S.b);
		pthread_mutex_unlock(&S.lock);
		for (list = take(due ? -1 : wait_us, &stopped); list; list = next) {
			next = list->next;
			execute(list);
		}
	}
	return NULL;
}

/* ---- the loop thread ----------------------------------------------------- */

/* The request's pool is going (its connection closed): forget it. */
static void guard_dispose(void *p)
{
	struct job *j = *(struct job **)p;

	if (j)
		j->req = NULL;
}

/* Replies whose batch is on disk. */
static void on_durable(h2o_socket_t *sock, const char *err)
{
	struct pending *p, *next;

	(void)sock;
	(void)err;
	for (p = batch_take(S.b, 0); p; p = next) {
		struct job *j = (struct job *)p;

		next = p->next;
		if (j->req) {
			*j->guard = NULL;
			if (p->failed)
				h2oloop_reply(j->req, 500, "{\"error\":{\"message\":\"not committed\"}}", 38);
			else
				h2oloop_reply(j->req, j->status, j->out.p, j->out.len);
		}
		job_put(j);
	}
}

/* "/api/v1/<prefix><id><suffix>": copies the id out; 0 when it matches. */
static int route(h2o_iovec_t path, const char *prefix, const char *suffix, char *id)
{
	size_t np = strlen(prefix), ns = strlen(suffix), n;

	if (path.len <= np + ns || memcmp(path.base, prefix, np) != 0 ||
	    memcmp(path.base + path.len - ns, suffix, ns) != 0)
		return -1;
	n = path.len - np - ns;
	if (n >= ID_MAX || memchr(path.base + np, '/', n))
		return -1;
	memcpy(id, path.base + np, n);
	id[n] = '\0';
	return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct job *j;
	ssize_t h;

	(void)self;
	if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
		h2oloop_reply(req, 200, "{}", 2);
		return 0;
	}
	if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")) || !(j = job_get())) {
		h2oloop_reply(req, 404, "{\"error\":{\"message\":\"no such route\"}}", 38);
		return 0;
	}
	if (route(req->path_normalized, "/api/v1/projects/", "/claim", j->id) == 0) {
		j->submit = 0;
	} else if (route(req->path_normalized, "/api/v1/assignments/", "/submit", j->id) == 0) {
		j->submit = 1;
		j->body = json_loadb(req->entity.base ? req->entity.base : "", req->entity.len,
				     JSON_REJECT_DUPLICATES, NULL);
		j->body_rc = j->body ? TLY_OK : TLY_EBADJSON;
	} else {
		job_put(j);
		h2oloop_reply(req, 404, "{\"error\":{\"message\":\"no such route\"}}", 38);
		return 0;
	}
	j->key[0] = '\0';
	h = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
	if (h >= 0) {
		h2o_iovec_t v = req->headers.entries[h].value;
		if (v.len > 7 && v.len - 7 < KEY_MAX && !strncasecmp(v.base, "Bearer ", 7)) {
			memcpy(j->key, v.base + 7, v.len - 7);
			j->key[v.len - 7] = '\0';
		}
	}
	j->req = req;
	j->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*j->guard), guard_dispose);
	*j->guard = j;
	j->hdr.owner = 0;
	push(j);
	return 0;
}

int main(int argc, char **argv)
{
	struct h2oloop lp;
	struct tly_err err;
	pthread_t exec;
	h2o_socket_t *wake;

	if (argc != 3) {
		fprintf(stderr, "usage: %s DB PORT   (listens on 127.0.0.1)\n", argv[0]);
		return 1;
	}
	S.tail = &S.head;
	tly_err_clear(&err);
	if (tly_open(argv[1], 0, &S.t, &err) != TLY_OK) {
		fprintf(stderr, "loop_h2o: %s\n", err.message);
		return 1;
	}
	if (h2oloop_init(&lp, argv[2], on_req, "loop_h2o") != 0 ||
	    !(S.b = batch_new(S.t, &S.lock, 1)) ||
	    pthread_create(&exec, NULL, executor_main, NULL) != 0) {
		batch_free(S.b);
		tly_close(S.t);
		return 1;
	}
	/* a descriptor of its own: h2o closes it, the batcher closes the eventfd */
	wake = h2oloop_watch(&lp, dup(batch_fd(S.b, 0)), on_durable);
	fprintf(stderr, "loop_h2o: listening on http://127.0.0.1:%s\n", argv[2]);
	h2oloop_run(&lp);
	/* the executor runs what is queued and stops; the batcher commits and
	 * syncs the rest (replies that would go out now are dropped: stopping) */
	pthread_mutex_lock(&S.qmu);
	S.stop = 1;
	pthread_cond_signal(&S.qwake);
	pthread_mutex_unlock(&S.qmu);
	pthread_join(exec, NULL);
	batch_stop(S.b);
	for (struct pending *p = batch_take(S.b, 0), *next; p; p = next) {
		next = p->next;
		job_put((struct job *)p);
	}
	while (S.spare) {
		struct job *j = S.spare;
		S.spare = j->next;
		tly_buf_free(&j->out);
		free(j);
	}
	h2o_socket_close(wake);
	h2oloop_free(&lp);
	batch_free(S.b);
	tly_close(S.t);
	fprintf(stderr, "loop_h2o: stopped\n");
	return 0;
}
