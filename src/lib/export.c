/* export.c — streamed JSONL export. A cursor walks the project's tasks by id
 * in batches (keyset pagination), so memory stays flat whatever the size and
 * a front end can write each batch before asking for the next. Stored JSON
 * (data, metadata, answers) is copied into the output as it is, unparsed.
 *
 * With tly_export_threads(x, n > 1) the walk is cut into ranges of ids that
 * hold max_tasks tasks each (task_nth reads only an index), read by the
 * caller of tly_export_next and n - 1 helper threads, each on a connection of
 * its own: SQLite reading a row is most of an export's time, and one
 * connection reads on one core. A window of n + 2 ranges from the one handed
 * out next may be read ahead; a thread that is free takes the lowest range of
 * it nobody has, so the caller, which also writes what it hands out, reads
 * fewer ranges than the helpers, and no thread waits while there is one to
 * read (with a fixed share, range k to thread k % n, a helper waited 0.2 to
 * 0.9 s of a 1.7 s export, the more the slower the caller's output).
 * The last range is open-ended and only the caller reads it, in its turn.
 * Lines still come out in id order, one range per call. As in the
 * sequential walk, each batch is read in a transaction of its own: a task
 * shows in the state it had when its batch was read, and every task that
 * lives through the export shows exactly once (ranges split the ids). */
#include "tallyint.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The same annotators answer task after task: their encoded ids are kept
 * (four SipHash rounds each otherwise), direct-mapped by row id. */
#define USER_IDS 256
/* Ranges read ahead of the one handed out: two more than threads, so a
 * thread that finished its range finds another while the caller writes. */
#define WINDOW_EXTRA 2
#define BOUNDS 16     /* ring of range bounds: the window and one more bound are in use */
_Static_assert(TLY_EXPORT_THREADS_MAX + WINDOW_EXTRA + 2 <= BOUNDS, "the window outgrows the bounds");
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

/* A range of the window: read by whichever thread claimed it, kept until the
 * caller hands it out in order. */
enum slot_state { SLOT_FREE, SLOT_READING, SLOT_READY, SLOT_CALLER };

struct slot {
	enum slot_state state;
	struct tly_buf buf;     /* its lines, when a helper or a spare caller read it */
	int64_t resume;         /* READY: the range was cut after this id; 0: it is whole */
	enum tly_code rc;
	struct tly_err err;
};

/* A helper thread: a handle of its own and its own user-id cache. */
struct helper {
	struct tly_export *x;
	pthread_t thread;
	struct tly *t;
	struct user_ids users;
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
	atomic_int stop;        /* helpers end; a range being read ends at its next line */
	int window;             /* ranges next .. next + window - 1 may be read ahead */
	struct slot *slots;     /* range k in slots[k % window] */
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
	const atomic_int *stop;   /* the export is being dropped: stop at the next line */
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

	if (atomic_load_explicit(c->stop, memory_order_relaxed)) {
		c->stopped = 1;
		return 1;
	}
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
	struct line_ctx c = { t, users, buf, &x->stop, 0, 1, 0, TLY_OK, 0, 0, after };
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

/* Reads the tasks with lo < id <= hi (lo past a range's start when a cut
 * range goes on). The last range is open-ended (tasks added during the
 * export land there), so it is read max_tasks at a time like the sequential
 * walk; the others hold max_tasks tasks, give or take those deleted since
 * their bounds were found. */
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

/* The lowest range of the window no thread has taken: 1 and its bounds, 0
 * when every range of the window is taken, -1 when that is the last range
 * (or past it, or on an error, in *rc). The last range is open-ended and
 * read only by the caller, in turn, so that tasks added while the export
 * runs are in it, as in the sequential walk. */
static int claim(struct tly_export *x, struct tly *t, int64_t *k, int64_t *lo, int64_t *hi,
		 enum tly_code *rc, struct tly_err *err)
{
	for (int64_t j = x->next; j < x->next + x->window; j++) {
		if (x->slots[j % x->window].state != SLOT_FREE)
			continue;
		if ((*rc = range_of(x, t, j, lo, hi, err)) != TLY_OK || *lo < 0 || *hi == INT64_MAX)
			return -1;
		*k = j;
		x->slots[j % x->window].state = SLOT_READING;
		return 1;
	}
	return 0;
}

/* Reads range k into its slot (mu held, dropped while reading). */
static void fill(struct tly_export *x, struct tly *t, struct user_ids *users, int64_t k,
		 int64_t lo, int64_t hi)
{
	struct slot *sl = &x->slots[k % x->window];
	int64_t resume;
	enum tly_code rc;

	pthread_mutex_unlock(&x->mu);
	tly_buf_reset(&sl->buf);
	tly_err_clear(&sl->err);
	rc = read_range(x, t, users, &sl->buf, lo, hi, &resume, &sl->err);
	pthread_mutex_lock(&x->mu);
	sl->rc = rc;
	sl->resume = resume;
	sl->state = SLOT_READY;
	pthread_cond_broadcast(&x->cv);
}

static void *helper_main(void *arg)
{
	struct helper *hp = arg;
	struct tly_export *x = hp->x;
	int64_t k, lo, hi;
	enum tly_code rc = TLY_OK;
	struct tly_err err;
	int got;

	pthread_setname_np(pthread_self(), "tally-export-h"); /* top -H, perf, gdb */

	tly_err_clear(&err);
	pthread_mutex_lock(&x->mu);
	while (!x->stop) {
		if ((got = claim(x, hp->t, &k, &lo, &hi, &rc, &err)) < 0)
			break; /* the last range is the caller's; so is an error (it finds it again) */
		if (got)
			fill(x, hp->t, &hp->users, k, lo, hi);
		else
			pthread_cond_wait(&x->cv, &x->mu);
	}
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	return NULL;
}

static void helpers_stop(struct tly_export *x)
{
	pthread_mutex_lock(&x->mu);
	atomic_store(&x->stop, 1);
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	for (int i = 0; i < x->nhelpers; i++)
		pthread_join(x->helpers[i].thread, NULL);
}

static void helpers_free(struct tly_export *x, int n)
{
	for (int i = 0; i < n; i++)
		tly_close(x->helpers[i].t);
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
	x->window = x->threads + WINDOW_EXTRA;
	x->slots = tly_xcalloc((size_t)x->window, sizeof(*x->slots));
	for (int i = 0; i < x->window; i++)
		tly_buf_init(&x->slots[i].buf, cap);
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
		atomic_store(&x->stop, 0);
		for (int i = 0; i < x->window; i++) /* a stopped read may be partial: read again */
			x->slots[i].state = SLOT_FREE;
		helpers_free(x, opened);
	}
	return TLY_OK;
}

/* Hands out range next, in the caller's buf: the lines a thread read ahead,
 * or read now. While a helper is still reading it, the caller reads a later
 * range of the window itself rather than wait. */
static enum tly_code ranged_next(struct tly_export *x, struct tly_buf *buf, struct tly_err *err)
{
	int64_t k, lo, hi, resume = 0;
	enum tly_code rc = TLY_OK;
	struct slot *sl;
	int got;

	pthread_mutex_lock(&x->mu);
	for (;;) {
		sl = &x->slots[x->next % x->window];
		if (sl->state == SLOT_READY) { /* read ahead: hand it out */
			if ((rc = sl->rc) != TLY_OK) {
				*err = sl->err;
			} else if (!buf->len && buf->cap == sl->buf.cap) { /* no copy */
				struct tly_buf mine = *buf;
				*buf = sl->buf;
				sl->buf = mine;
			} else if (tly_buf_add(buf, sl->buf.p ? sl->buf.p : "", sl->buf.len)) {
				rc = tly_err_set(err, TLY_ETOOLARGE, "", "export batch over the buffer limit");
			}
			resume = sl->resume;
			sl->state = resume && rc == TLY_OK ? SLOT_CALLER : SLOT_FREE;
			break;
		}
		if (sl->state == SLOT_FREE || sl->state == SLOT_CALLER) { /* the caller's to read */
			if ((rc = range_of(x, x->t, x->next, &lo, &hi, err)) != TLY_OK || lo < 0)
				goto out;
			if (sl->state == SLOT_CALLER)
				lo = x->resume;
			sl->state = SLOT_CALLER;
			pthread_mutex_unlock(&x->mu);
			rc = read_range(x, x->t, &x->users, buf, lo, hi, &resume, err);
			pthread_mutex_lock(&x->mu);
			if (rc != TLY_OK || !resume)
				sl->state = SLOT_FREE;
			break;
		}
		/* a helper is reading it: read a later one meanwhile, or wait */
		if ((got = claim(x, x->t, &k, &lo, &hi, &rc, err)) > 0)
			fill(x, x->t, &x->users, k, lo, hi);
		else if (rc != TLY_OK)
			goto out;
		else
			pthread_cond_wait(&x->cv, &x->mu);
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
		for (int i = 0; i < x->window; i++)
			tly_buf_free(&x->slots[i].buf);
		free(x->slots);
		pthread_mutex_destroy(&x->mu);
		pthread_cond_destroy(&x->cv);
	}
	free(x);
}
