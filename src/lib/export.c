/* export.c — streamed JSONL export. A cursor walks the project's tasks by id
 * in batches (keyset pagination), so memory stays flat whatever the size and
 * a front end can write each batch before asking for the next. Stored JSON
 * (data, metadata, answers) is copied into the output as it is, unparsed.
 *
 * With tly_export_threads(x, n > 1) the walk is cut into ranges of ids that
 * hold max_tasks tasks each (task_nth reads only an index), and range k is
 * read by thread k % n: ranges 0, n, 2n... by the caller of tly_export_next,
 * the others by helper threads, each on a connection of its own. SQLite
 * reading a row is most of an export's time, and one connection reads on one
 * core. Lines still come out in id order, one range per call. As in the
 * sequential walk, each batch is read in a transaction of its own: a task
 * shows in the state it had when its batch was read, and every task that
 * lives through the export shows exactly once (ranges split the ids). */
#include "tallyint.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The same annotators answer task after task: their encoded ids are kept
 * (four SipHash rounds each otherwise), direct-mapped by row id. */
#define USER_IDS 256
#define BOUNDS 16     /* ring of range bounds: a window of TLY_EXPORT_THREADS_MAX + 2 is in use */
/* A helper reads its ranges in order, each page once: a small page cache
 * reads as fast as the default 8 MiB one (bench/export.sh shows the raw scan
 * with 2 MiB), and keeps a server with several exports under way small. */
#define HELPER_CACHE_KIB 2048

struct user_ids {
	struct {
		int64_t id;
		char s[TLY_ID_MAX];
	} at[USER_IDS];
};

/* A helper thread; the fields past `users` are under the export's mu. */
struct helper {
	struct tly_export *x;
	int h;                  /* reads ranges h, h + n, h + 2n... */
	pthread_t thread;
	struct tly *t;          /* its own handle */
	struct user_ids users;
	struct tly_buf buf;     /* the range read, until the caller takes it */
	int64_t seq;            /* which range buf holds; -1: none */
	int64_t resume;         /* the range was cut after this id; 0: it is whole */
	enum tly_code rc;
	struct tly_err err;
};

struct tly_export {
	struct tly *t;
	int64_t project_id, after;
	int status;
	int done;
	struct user_ids users;

	/* the parallel walk; all below under mu once helpers run */
	int threads, max_tasks, ranged, nhelpers;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int64_t bound[BOUNDS];  /* range k is (bound[k % BOUNDS], bound[(k+1) % BOUNDS]] ... */
	int64_t nbound;         /* ...for the bounds found so far */
	int64_t end;            /* the number of ranges; -1 until the last is found */
	int64_t next;           /* the range the caller hands out next */
	int64_t resume;         /* which it has begun: it goes on after this id (0: from its start) */
	int stop;
	struct helper *helpers;
};

enum tly_code tly_export_open(struct tly *t, const struct tly_actor *a, const char *project,
			      const char *format, const char *status, struct tly_export **out,
			      struct tly_err *err)
{
	struct tly__project p;
	struct tly_export *x;
	int st = -1;
	enum tly_code rc;

	*out = NULL;
	if ((rc = tly__project_load(t, a, project, TLY_ROLE_REVIEWER, &p, err)) != TLY_OK)
		return rc;
	store_project_clear(&p.row);
	if (format && strcmp(format, "jsonl") != 0)
		return tly_err_set(err, TLY_EBADREQ, "format", "format: must be jsonl");
	if (status && (st = tly_task_status_parse(status)) < 0)
		return tly_err_set(err, TLY_EBADREQ, "status",
				   "status: must be queued, in_progress, completed or canceled");
	x = tly_xcalloc(1, sizeof(*x));
	x->t = t;
	x->project_id = p.row.id;
	x->status = st;
	x->threads = 1;
	x->end = -1;
	*out = x;
	return TLY_OK;
}

void tly_export_threads(struct tly_export *x, int n)
{
	if (!x->ranged) /* fixed once the walk has begun */
		x->threads = n < 1 ? 1 : n > TLY_EXPORT_THREADS_MAX ? TLY_EXPORT_THREADS_MAX : n;
}

struct line_ctx {
	struct tly *t;            /* the handle reading (its ids key) */
	struct user_ids *users;   /* that thread's cache */
	struct tly_buf *buf;
	int n, first, stopped;
	enum tly_code rc;
	size_t start;      /* where the current line began in buf */
	int64_t task_id;   /* of the current line */
	int64_t last;      /* of the last whole line */
};

static enum tly_code add_user(struct tly_buf *b, struct line_ctx *c, int64_t n)
{
	unsigned slot = (unsigned)((uint64_t)n % USER_IDS);

	if (c->users->at[slot].id != n) {
		tly_id_encode(&c->t->ids, TLY_USER, n, c->users->at[slot].s);
		c->users->at[slot].id = n;
	}
	return tly_buf_add_token(b, c->users->at[slot].s);
}

/* drops the partial line; a batch that has lines ends early instead */
static int line_full(struct line_ctx *c)
{
	struct tly_buf *b = c->buf;

	tly_buf_cut(b, c->start);
	c->rc = c->n ? TLY_OK : TLY_ETOOLARGE;
	c->stopped = 1;
	return 1;
}

/* one response of the task begun last, or (r NULL) the end of its line */
static int response_line(void *arg, const struct store_response *r)
{
	struct line_ctx *c = arg;
	struct tly_buf *b = c->buf;

	if (!r) {
		if (tly_buf_addl(b, "]}\n"))
			return line_full(c);
		c->last = c->task_id;
		c->n++;
		return 0;
	}
	if ((!c->first && tly_buf_addl(b, ",")) || tly_buf_addl(b, "{\"id\":") ||
	    tly__buf_id(b, c->t, TLY_RESPONSE, r->id) || tly_buf_addl(b, ",\"user_id\":") ||
	    add_user(b, c, r->user_id) || tly_buf_addl(b, ",\"answers\":") ||
	    tly_buf_adds(b, r->answers) || tly_buf_addl(b, ",\"duration_ms\":") ||
	    tly_buf_addi(b, r->duration_ms) || tly_buf_addl(b, ",\"created_at\":") ||
	    tly__buf_time(b, r->created_at) || tly_buf_addl(b, "}"))
		return line_full(c);
	c->first = 0;
	return 0;
}

static int task_line(void *arg, const struct store_task *row)
{
	struct line_ctx *c = arg;
	struct tly_buf *b = c->buf;
	struct tly *t = c->t;

	c->start = b->len;
	c->task_id = row->id;
	c->first = 1;
	if (tly_buf_addl(b, "{\"id\":") || tly__buf_id(b, t, TLY_TASK, row->id) ||
	    tly_buf_addl(b, ",\"unique_id\":") ||
	    (row->unique_id ? tly_buf_add_jstr(b, row->unique_id) : tly_buf_addl(b, "null")) ||
	    tly_buf_addl(b, ",\"data\":") || tly_buf_adds(b, row->data) ||
	    tly_buf_addl(b, ",\"metadata\":") || tly_buf_adds(b, row->metadata ? row->metadata : "{}") ||
	    tly_buf_addl(b, ",\"consensus\":") || tly_buf_adds(b, row->consensus ? row->consensus : "null") ||
	    (row->is_gold && (tly_buf_addl(b, ",\"gold\":") || tly_buf_adds(b, row->gold))) ||
	    tly_buf_addl(b, ",\"status\":\"") || tly_buf_adds(b, tly_task_status_name(row->status)) ||
	    tly_buf_addl(b, "\",\"responses\":["))
		return line_full(c);
	return 0;
}

/* Appends the lines of up to limit tasks with after < id <= upto through t.
 * *last: the id of the last line written; *cut: the walk stopped short (the
 * buffer is full, or limit was reached) and may go on after *last. */
static enum tly_code read_lines(const struct tly_export *x, struct tly *t, struct user_ids *users,
				struct tly_buf *buf, int64_t after, int64_t upto, int limit,
				int64_t *last, int *cut, struct tly_err *err)
{
	struct line_ctx c = { t, users, buf, 0, 1, 0, TLY_OK, 0, 0, after };
	enum tly_code rc;

	rc = t->store->ops->task_list_responses(t->store, x->project_id, x->status, after, upto,
						limit, task_line, response_line, &c, err);
	if (rc == TLY_OK && c.rc != TLY_OK)
		rc = tly_err_set(err, c.rc, "", "export line over the buffer limit");
	*last = c.last;
	*cut = c.stopped || c.n >= limit;
	return rc;
}

/* ---- ranges (mu held once helpers run) ---- */

/* Finds the bounds of range k, reading through t: *lo = -1 past the last. */
static enum tly_code range_of(struct tly_export *x, struct tly *t, int64_t k, int64_t *lo,
			      int64_t *hi, struct tly_err *err)
{
	*lo = -1;
	while (x->end < 0 && x->nbound <= k + 1) {
		int64_t id;
		enum tly_code rc = t->store->ops->task_nth(t->store, x->project_id,
							   x->bound[(x->nbound - 1) % BOUNDS],
							   x->max_tasks, &id, err);
		if (rc != TLY_OK)
			return rc;
		if (!id) /* fewer than max_tasks left: the range before is the last */
			x->end = x->nbound;
		x->bound[x->nbound++ % BOUNDS] = id ? id : INT64_MAX;
	}
	if (x->end >= 0 && k >= x->end)
		return TLY_OK;
	*lo = x->bound[k % BOUNDS];
	*hi = x->bound[(k + 1) % BOUNDS];
	return TLY_OK;
}

/* Reads range k (or what is left of it after `from`). The last range is
 * open-ended (tasks added during the export land there), so it is read
 * max_tasks at a time like the sequential walk; the others hold max_tasks
 * tasks, give or take those deleted since their bounds were found. */
static enum tly_code read_range(struct tly_export *x, struct tly *t, struct user_ids *users,
				struct tly_buf *buf, int64_t lo, int64_t hi, int64_t *resume,
				struct tly_err *err)
{
	int64_t last;
	int cut;
	enum tly_code rc;

	rc = read_lines(x, t, users, buf, lo, hi,
			hi == INT64_MAX ? x->max_tasks : INT32_MAX, &last, &cut, err);
	*resume = rc == TLY_OK && cut ? last : 0;
	return rc;
}

static void *helper_main(void *arg)
{
	struct helper *hp = arg;
	struct tly_export *x = hp->x;
	int n = x->nhelpers + 1;
	int64_t lo, hi, resume;
	enum tly_code rc;

	pthread_mutex_lock(&x->mu);
	for (int64_t k = hp->h; !x->stop; k += n) {
		/* its last range taken, and no more than one round ahead */
		while (!x->stop && (hp->seq >= 0 || k >= x->next + n))
			pthread_cond_wait(&x->cv, &x->mu);
		if (x->stop)
			break;
		if ((rc = range_of(x, hp->t, k, &lo, &hi, &hp->err)) == TLY_OK && lo < 0)
			break; /* past the end (the caller may wait to learn where it is) */
		if (rc == TLY_OK) {
			pthread_mutex_unlock(&x->mu);
			tly_buf_reset(&hp->buf);
			rc = read_range(x, hp->t, &hp->users, &hp->buf, lo, hi, &resume, &hp->err);
			pthread_mutex_lock(&x->mu);
			hp->resume = resume;
		}
		hp->rc = rc;
		hp->seq = k;
		pthread_cond_broadcast(&x->cv);
		if (rc != TLY_OK)
			break;
	}
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	return NULL;
}

static void helpers_stop(struct tly_export *x)
{
	pthread_mutex_lock(&x->mu);
	x->stop = 1;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	for (int i = 0; i < x->nhelpers; i++)
		pthread_join(x->helpers[i].thread, NULL);
}

static void helpers_free(struct tly_export *x, int n)
{
	for (int i = 0; i < n; i++) {
		tly_close(x->helpers[i].t);
		tly_buf_free(&x->helpers[i].buf);
	}
	free(x->helpers);
	x->helpers = NULL;
	x->nhelpers = 0;
}

/* Starts the walk by ranges, and its helpers when there is more than one
 * range. A helper that cannot have its connection or thread leaves the walk
 * to the caller alone: slower, never wrong. */
static enum tly_code ranged_start(struct tly_export *x, int max_tasks, size_t cap,
				  struct tly_err *err)
{
	int64_t lo, hi;
	int n = x->threads - 1, opened = 0, started = 0;
	struct tly_err herr;
	enum tly_code rc;

	x->ranged = 1;
	x->max_tasks = max_tasks;
	x->bound[0] = x->after;
	x->nbound = 1;
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	if ((rc = range_of(x, x->t, 1, &lo, &hi, err)) != TLY_OK || lo < 0 || n < 1)
		return rc; /* one range at most: nothing to share */
	x->helpers = tly_xcalloc((size_t)n, sizeof(*x->helpers));
	for (; opened < n; opened++) {
		struct helper *hp = &x->helpers[opened];

		tly_err_clear(&herr);
		if (tly_open(tly_path(x->t), 0, &hp->t, &herr) != TLY_OK)
			break;
		(void)hp->t->store->ops->cache_limit(hp->t->store, HELPER_CACHE_KIB, &herr);
		hp->x = x;
		hp->h = opened + 1;
		hp->seq = -1;
		tly_buf_init(&hp->buf, cap);
	}
	if (opened == n) {
		x->nhelpers = n;
		for (; started < n; started++)
			if (pthread_create(&x->helpers[started].thread, NULL, helper_main,
					   &x->helpers[started]) != 0)
				break;
	}
	if (started < n) {
		x->nhelpers = started;
		helpers_stop(x);
		x->stop = 0;
		helpers_free(x, opened);
	}
	return TLY_OK;
}

static enum tly_code ranged_next(struct tly_export *x, struct tly_buf *buf, struct tly_err *err)
{
	int n = x->nhelpers + 1;
	int64_t k, lo, hi, resume;
	enum tly_code rc = TLY_OK;

	pthread_mutex_lock(&x->mu);
	k = x->next;
	if (x->resume || k % n == 0) { /* the caller's own range */
		if ((rc = range_of(x, x->t, k, &lo, &hi, err)) != TLY_OK || lo < 0)
			goto out;
		if (x->resume)
			lo = x->resume;
		pthread_mutex_unlock(&x->mu);
		rc = read_range(x, x->t, &x->users, buf, lo, hi, &resume, err);
		pthread_mutex_lock(&x->mu);
	} else { /* a helper's */
		struct helper *hp = &x->helpers[k % n - 1];

		while (hp->seq != k && !(x->end >= 0 && k >= x->end))
			pthread_cond_wait(&x->cv, &x->mu);
		if (hp->seq != k) /* past the end */
			goto out;
		if ((rc = hp->rc) != TLY_OK) {
			*err = hp->err;
		} else if (!buf->len && buf->cap == hp->buf.cap) { /* hand it over, no copy */
			struct tly_buf mine = *buf;
			*buf = hp->buf;
			hp->buf = mine;
		} else if (tly_buf_add(buf, hp->buf.p ? hp->buf.p : "", hp->buf.len))
			rc = tly_err_set(err, TLY_ETOOLARGE, "", "export batch over the buffer limit");
		resume = hp->resume;
		hp->seq = -1;
	}
	if (rc == TLY_OK) {
		x->resume = resume; /* a range cut short goes on in the caller */
		if (!resume)
			x->next++;
	}
out:
	if (rc == TLY_OK && x->end >= 0 && x->next >= x->end)
		x->done = 1;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	return rc;
}

enum tly_code tly_export_next(struct tly_export *x, struct tly_buf *buf, int max_tasks,
			      int *done, struct tly_err *err)
{
	enum tly_code rc;
	int64_t last;
	int cut;

	*done = x->done;
	if (x->done)
		return TLY_OK;
	if (x->threads > 1 || x->ranged) {
		if (!x->ranged && (rc = ranged_start(x, max_tasks, buf->cap, err)) != TLY_OK)
			return rc;
		rc = ranged_next(x, buf, err);
	} else {
		rc = read_lines(x, x->t, &x->users, buf, x->after, INT64_MAX, max_tasks, &last,
				&cut, err);
		if (rc == TLY_OK) {
			x->after = last;
			x->done = !cut;
		}
	}
	*done = x->done;
	return rc;
}

void tly_export_use(struct tly_export *x, struct tly *t)
{
	x->t = t;
}

void tly_export_free(struct tly_export *x)
{
	if (!x)
		return;
	if (x->ranged) {
		helpers_stop(x);
		helpers_free(x, x->nhelpers);
		pthread_mutex_destroy(&x->mu);
		pthread_cond_destroy(&x->cv);
	}
	free(x);
}
