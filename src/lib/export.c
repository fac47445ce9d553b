/* export.c — streamed JSONL export. A cursor walks the project's tasks by id
 * in batches (keyset pagination), so memory stays flat whatever the size and
 * a front end can write each batch before asking for the next. Stored JSON
 * (data, metadata, answers) is copied into the output as it is, unparsed. */
#include "tallyint.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The same annotators answer task after task: their encoded ids are kept
 * (four SipHash rounds each otherwise), direct-mapped by row id. */
#define USER_IDS 256

struct tly_export {
	struct tly *t;
	int64_t project_id, after;
	int status;
	int done;
	struct {
		int64_t id;
		char s[TLY_ID_MAX];
	} users[USER_IDS];
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
	*out = x;
	return TLY_OK;
}

struct line_ctx {
	struct tly_export *x;
	struct tly_buf *buf;
	int n, first, stopped;
	enum tly_code rc;
	struct tly_err *err;
	size_t start;      /* where the current line began in buf */
	int64_t task_id;   /* of the current line */
};

static enum tly_code add_user(struct tly_buf *b, struct tly_export *x, int64_t n)
{
	unsigned slot = (unsigned)((uint64_t)n % USER_IDS);

	if (x->users[slot].id != n) {
		tly_id_encode(&x->t->ids, TLY_USER, n, x->users[slot].s);
		x->users[slot].id = n;
	}
	return tly_buf_addl(b, "\"") || tly_buf_adds(b, x->users[slot].s) ||
	       tly_buf_addl(b, "\"") ? TLY_ETOOLARGE : TLY_OK;
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
		c->x->after = c->task_id;
		c->n++;
		return 0;
	}
	if ((!c->first && tly_buf_addl(b, ",")) || tly_buf_addl(b, "{\"id\":") ||
	    tly__buf_id(b, c->x->t, TLY_RESPONSE, r->id) || tly_buf_addl(b, ",\"user_id\":") ||
	    add_user(b, c->x, r->user_id) || tly_buf_addl(b, ",\"answers\":") ||
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
	struct tly *t = c->x->t;

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

enum tly_code tly_export_next(struct tly_export *x, struct tly_buf *buf, int max_tasks,
			      int *done, struct tly_err *err)
{
	struct line_ctx c = { x, buf, 0, 1, 0, TLY_OK, err, 0, 0 };
	enum tly_code rc;

	*done = x->done;
	if (x->done)
		return TLY_OK;
	rc = x->t->store->ops->task_list_responses(x->t->store, x->project_id, x->status, x->after,
						   max_tasks, task_line, response_line, &c, err);
	if (rc == TLY_OK && c.rc != TLY_OK)
		rc = tly_err_set(err, c.rc, "", "export line over the buffer limit");
	if (rc == TLY_OK && c.n < max_tasks && !c.stopped)
		x->done = 1;
	*done = x->done;
	return rc;
}

void tly_export_use(struct tly_export *x, struct tly *t)
{
	x->t = t;
}

void tly_export_free(struct tly_export *x)
{
	free(x);
}
