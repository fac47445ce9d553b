/* task.c — adding tasks (all or nothing), listing, reading, cancelling. */
#include "tallyint.h"

#include <stdlib.h>
#include <string.h>

#include "jsontext.h"
#include "util.h"

#define UID_MAX_BYTES 256

struct tly_import {
	struct tly *t;
	struct tly__project p;
	int64_t now;
	long long created, duplicates;
	json_t *created_ids, *dups;  /* filled for tly_tasks_add only */
};

static const char *const task_keys[] = { "data", "unique_id", "priority", "metadata", "gold", NULL };

enum tly_code tly_import_begin(struct tly *t, const struct tly_actor *a, const char *project,
			       struct tly_import **out, struct tly_err *err)
{
	struct tly_import *im = tly_xcalloc(1, sizeof(*im));
	enum tly_code rc;

	*out = NULL;
	im->t = t;
	im->now = tly_now_ms();
	if ((rc = tly__project_load(t, a, project, TLY_ROLE_MANAGER, &im->p, err)) != TLY_OK) {
		free(im);
		return rc;
	}
	if ((rc = t->store->ops->begin(t->store, err)) != TLY_OK) {
		store_project_clear(&im->p.row);
		free(im);
		return rc;
	}
	*out = im;
	return TLY_OK;
}

enum tly_code tly_import_add(struct tly_import *im, const json_t *task, int *created,
			     struct tly_err *err)
{
	struct store *s = im->t->store;
	struct store_task row = { 0 };
	const json_t *data, *uid, *prio, *meta, *gold;
	const char *key;
	json_t *v;
	long long priority = 0;
	int64_t id = 0;
	enum tly_code rc;

	*created = 0;
	if (!json_is_object(task))
		return tly_err_set(err, TLY_EINVALID, "", "a task must be an object");
	json_object_foreach((json_t *)task, key, v) {
		int ok = 0;
		(void)v;
		for (int i = 0; task_keys[i] && !ok; i++)
			ok = strcmp(key, task_keys[i]) == 0;
		if (!ok)
			return tly_err_set(err, TLY_EINVALID, key, "%.64s: unknown key (a task has data, unique_id, priority, metadata, gold)", key);
	}
	data = json_object_get(task, "data");
	if ((rc = tly_schema_check_data(im->p.schema, data, err)) != TLY_OK)
		return rc;
	uid = json_object_get(task, "unique_id");
	if (uid && !json_is_null(uid) &&
	    (!json_is_string(uid) || json_string_length(uid) == 0 ||
	     json_string_length(uid) > UID_MAX_BYTES))
		return tly_err_set(err, TLY_EINVALID, "unique_id",
				   "unique_id: must be a string of 1 to %d bytes", UID_MAX_BYTES);
	prio = json_object_get(task, "priority");
	if (prio && !json_is_null(prio)) {
		if (!json_is_integer(prio))
			return tly_err_set(err, TLY_EINVALID, "priority",
					   "priority: must be an integer");
		priority = json_integer_value(prio);
	}
	meta = json_object_get(task, "metadata");
	if (meta && !json_is_null(meta) && !json_is_object(meta))
		return tly_err_set(err, TLY_EINVALID, "metadata", "metadata: must be an object");

	gold = json_object_get(task, "gold");
	if (gold && !json_is_null(gold) &&
	    (rc = tly_schema_check_gold(im->p.schema, data, gold, err)) != TLY_OK)
		return rc;

	row.project_id = im->p.row.id;
	row.is_gold = gold && !json_is_null(gold);
	row.slots = im->p.schema->max_responses;
	row.gold = row.is_gold ? tly_json_text(gold, JSON_COMPACT) : NULL;
	row.unique_id = (char *)json_string_value(uid);
	row.priority = priority;
	row.data = tly_json_text(data, JSON_COMPACT);
	row.metadata = meta && json_is_object(meta) ? tly_json_text(meta, JSON_COMPACT) : NULL;
	row.created_at = im->now;
	rc = s->ops->task_insert(s, &row, &id, err);
	if (rc == TLY_OK) {
		*created = 1;
		im->created++;
		if (im->created_ids)
			json_array_append_new(im->created_ids, tly__id(im->t, TLY_TASK, id));
	} else if (rc == TLY_ECONFLICT && row.unique_id && id) {
		rc = TLY_OK;
		im->duplicates++;
		tly_err_clear(err);
		if (im->dups)
			json_array_append_new(im->dups,
					      json_pack("{s:s,s:o}", "unique_id", row.unique_id,
							"id", tly__id(im->t, TLY_TASK, id)));
	}
	free(row.data);
	free(row.metadata);
	free(row.gold);
	return rc;
}

enum tly_code tly_import_end(struct tly_import *im, int ok, long long *n_created,
			     long long *n_duplicates, struct tly_err *err)
{
	struct store *s = im->t->store;
	enum tly_code rc = TLY_OK;

	if (ok)
		rc = s->ops->commit(s, err);
	else
		s->ops->rollback(s);
	if (n_created)
		*n_created = ok && rc == TLY_OK ? im->created : 0;
	if (n_duplicates)
		*n_duplicates = ok && rc == TLY_OK ? im->duplicates : 0;
	store_project_clear(&im->p.row);
	json_decref(im->created_ids);
	json_decref(im->dups);
	free(im);
	return rc;
}

enum tly_code tly_tasks_add(struct tly *t, const struct tly_actor *a, const char *project,
			    const json_t *tasks, json_t **out, struct tly_err *err)
{
	struct tly_import *im;
	size_t n = json_array_size(tasks);
	enum tly_code rc;
	char where[32];
	int created;

	*out = NULL;
	if ((rc = tly_import_begin(t, a, project, &im, err)) != TLY_OK)
		return rc;
	if (!json_is_array(tasks) || n == 0 || n > TLY_MAX_BATCH) {
		tly_import_end(im, 0, NULL, NULL, NULL);
		return tly_err_set(err, TLY_EINVALID, "tasks",
				   "tasks: must be an array of 1 to %d tasks", TLY_MAX_BATCH);
	}
	im->created_ids = json_array();
	im->dups = json_array();
	for (size_t i = 0; i < n; i++) {
		if ((rc = tly_import_add(im, json_array_get(tasks, i), &created, err)) != TLY_OK) {
			snprintf(where, sizeof(where), "tasks[%zu]", i);
			tly_err_prefix_field(err, where);
			tly_import_end(im, 0, NULL, NULL, NULL);
			return rc;
		}
	}
	*out = json_pack("{s:O,s:O}", "created", im->created_ids, "duplicates", im->dups);
	rc = tly_import_end(im, 1, NULL, NULL, err);
	if (rc != TLY_OK) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

struct list_ctx {
	struct tly *t;
	json_t *list;
	int64_t last;
	int n;
};

static int task_row(void *arg, const struct store_task *row)
{
	struct list_ctx *c = arg;

	json_array_append_new(c->list, tly__task_json(c->t, row, 0));
	c->last = row->id;
	c->n++;
	return 0;
}

enum tly_code tly_task_list(struct tly *t, const struct tly_actor *a, const char *project,
			    const char *status, const char *cursor, int limit, json_t **out,
			    struct tly_err *err)
{
	struct tly__project p;
	struct list_ctx c = { t, NULL, 0, 0 };
	int st = -1;
	int64_t after = 0;
	enum tly_code rc;

	*out = NULL;
	if ((rc = tly__project_load(t, a, project, TLY_ROLE_REVIEWER, &p, err)) != TLY_OK)
		return rc;
	if (status && (st = tly_task_status_parse(status)) < 0) {
		rc = tly_err_set(err, TLY_EBADREQ, "status",
				 "status: must be queued, in_progress, completed or canceled");
		goto out;
	}
	if (cursor && !(after = tly_id_decode(&t->ids, TLY_TASK, cursor))) {
		rc = tly_err_set(err, TLY_EBADREQ, "cursor", "cursor: not a cursor this API gave");
		goto out;
	}
	if (limit < 1 || limit > TLY_LIST_MAX) {
		rc = tly_err_set(err, TLY_EBADREQ, "limit", "limit: must be from 1 to %d", TLY_LIST_MAX);
		goto out;
	}
	c.list = json_array();
	rc = t->store->ops->task_list(t->store, p.row.id, st, after, INT64_MAX, limit, task_row, &c, err);
	if (rc == TLY_OK)
		*out = json_pack("{s:o,s:o}", "tasks", c.list,
				 "next_cursor", c.n == limit ? tly__id(t, TLY_TASK, c.last) : json_null());
	else
		json_decref(c.list);
out:
	store_project_clear(&p.row);
	return rc;
}

/* Loads a task visible to the actor with at least `min` role. */
static enum tly_code task_load(struct tly *t, const struct tly_actor *a, const char *id,
			       enum tly_role min, struct store_task *row, struct tly_err *err)
{
	struct tly__project p;
	int64_t n = tly_id_decode(&t->ids, TLY_TASK, id);
	enum tly_code rc;

	memset(row, 0, sizeof(*row));
	if (!n || t->store->ops->task_get(t->store, n, row, err) != TLY_OK) {
		store_task_clear(row);
		return tly_err_set(err, TLY_ENOTFOUND, "", "no such task");
	}
	rc = tly__project_load_row(t, a, row->project_id, min, &p, err);
	if (rc != TLY_OK) {
		store_task_clear(row);
		if (rc == TLY_ENOTFOUND)
			tly_err_set(err, rc, "", "no such task");
		return rc;
	}
	store_project_clear(&p.row);
	return TLY_OK;
}

enum tly_code tly_task_get(struct tly *t, const struct tly_actor *a, const char *id,
			   json_t **out, struct tly_err *err)
{
	struct store_task row;
	enum tly_code rc = task_load(t, a, id, TLY_ROLE_REVIEWER, &row, err);

	*out = NULL;
	if (rc == TLY_OK)
		*out = tly__task_json(t, &row, 1);
	store_task_clear(&row);
	return rc;
}

enum tly_code tly_task_cancel(struct tly *t, const struct tly_actor *a, const char *id,
			      json_t **out, struct tly_err *err)
{
	struct store *s = t->store;
	struct store_task row;
	enum tly_code rc;

	*out = NULL;
	if ((rc = s->ops->begin(s, err)) != TLY_OK)
		return rc;
	if ((rc = task_load(t, a, id, TLY_ROLE_MANAGER, &row, err)) != TLY_OK)
		goto fail;
	if (row.status == TLY_TASK_COMPLETED) {
		rc = tly_err_set(err, TLY_ECONFLICT, "", "task_closed: the task is completed");
		goto fail_row;
	}
	rc = s->ops->task_update(s, &row, TLY_TASK_CANCELED, row.n_responses, row.n_leases, NULL, err);
	if (rc != TLY_OK)
		goto fail_row;
	if ((rc = s->ops->commit(s, err)) != TLY_OK)
		goto out;
	row.status = TLY_TASK_CANCELED;
	*out = tly__task_json(t, &row, 0);
out:
	store_task_clear(&row);
	return rc;
fail_row:
	store_task_clear(&row);
fail:
	s->ops->rollback(s);
	return rc;
}
