/* tally.c — the library handle, roles and statuses, project loading (with a
 * small cache of parsed schemas: schemas never change once created) and the
 * JSON shapes shared by the domain files. */
#include "tallyint.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const role_names[] = {
	[TLY_ROLE_NONE] = "none", [TLY_ROLE_ANNOTATOR] = "annotator",
	[TLY_ROLE_REVIEWER] = "reviewer", [TLY_ROLE_MANAGER] = "manager",
	[TLY_ROLE_OWNER] = "owner",
};

static const char *const status_names[TLY_TASK_NSTATUS] = {
	[TLY_TASK_QUEUED] = "queued", [TLY_TASK_IN_PROGRESS] = "in_progress",
	[TLY_TASK_COMPLETED] = "completed", [TLY_TASK_CANCELED] = "canceled",
};

enum tly_role tly_role_parse(const char *s)
{
	for (int r = TLY_ROLE_ANNOTATOR; r <= TLY_ROLE_OWNER; r++)
		if (s && strcmp(s, role_names[r]) == 0)
			return (enum tly_role)r;
	return TLY_ROLE_NONE;
}

const char *tly_role_name(enum tly_role r)
{
	return r <= TLY_ROLE_OWNER ? role_names[r] : "none";
}

const char *tly_task_status_name(enum tly_task_status s)
{
	return s < TLY_TASK_NSTATUS ? status_names[s] : "?";
}

int tly_task_status_parse(const char *s)
{
	for (int i = 0; i < TLY_TASK_NSTATUS; i++)
		if (s && strcmp(s, status_names[i]) == 0)
			return i;
	return -1;
}

enum tly_code tly_open(const char *path, int create, struct tly **out, struct tly_err *err)
{
	struct tly *t = NULL;
	struct store *s = NULL;
	enum tly_code rc;

	*out = NULL;
	if (sodium_init() < 0)
		return tly_err_set(err, TLY_EINTERNAL, "", "libsodium failed to initialise");
	if ((rc = store_sqlite_open(path, create, &s, err)) != TLY_OK)
		return rc;
	t = tly_xcalloc(1, sizeof(*t));
	t->store = s;
	t->path = tly_xstrdup(path);
	/* The id key is made once per database and kept in it. */
	rc = s->ops->meta_get(s, "id_key", t->ids.key, TLY_ID_KEYBYTES, err);
	if (rc == TLY_ENOTFOUND && create) {
		randombytes_buf(t->ids.key, TLY_ID_KEYBYTES);
		if ((rc = s->ops->begin(s, err)) == TLY_OK) {
			rc = s->ops->meta_set(s, "id_key", t->ids.key, TLY_ID_KEYBYTES, err);
			rc = rc ? rc : s->ops->meta_set(s, "schema_version", "1", 1, err);
			if (rc == TLY_OK)
				rc = s->ops->commit(s, err);
			else
				s->ops->rollback(s);
		}
	} else if (rc == TLY_ENOTFOUND) {
		rc = tly_err_set(err, TLY_EINTERNAL, "",
				 "%s: not initialised (run `tally init` first)", path);
	}
	if (rc != TLY_OK) {
		tly_close(t);
		return rc;
	}
	*out = t;
	return TLY_OK;
}

void tly_close(struct tly *t)
{
	if (!t)
		return;
	for (int i = 0; i < TLY__SCHEMA_CACHE; i++)
		if (t->cache[i].project_id)
			tly_schema_clear(&t->cache[i].schema);
	tly__report_cache_free(t);
	tly_buf_free(&t->next_claim);
	if (t->store)
		t->store->ops->close(t->store);
	free(t->path);
	free(t);
}

void tly_set_cancel(struct tly *t, const atomic_int *flag)
{
	t->cancel = flag;
}

const char *tly_path(const struct tly *t)
{
	return t->path;
}

struct store *tly_store(struct tly *t)
{
	return t->store;
}

enum tly_code tly__role_check(const struct tly_actor *a, enum tly_role min, struct tly_err *err)
{
	if (a->role < min)
		return tly_err_set(err, TLY_EFORBIDDEN, "",
				   "the %s role may not do this (needs %s or above)",
				   tly_role_name(a->role), tly_role_name(min));
	return TLY_OK;
}

/* Parses row's schema into its cache slot c (which the caller found stale),
 * noting the store's undone count it was read at. */
static const struct tly_schema *schema_for(struct tly__cached_schema *c,
					   const struct store_project *row, uint64_t undone,
					   struct tly_err *err)
{
	json_t *doc;
	enum tly_code rc;

	if (c->project_id)
		tly_schema_clear(&c->schema);
	c->project_id = 0;
	doc = json_loads(row->schema, 0, NULL);
	rc = tly_schema_parse(doc, &c->schema, err);
	json_decref(doc);
	if (rc != TLY_OK) {
		tly_err_set(err, TLY_EINTERNAL, "", "stored schema of project %lld is damaged",
			    (long long)row->id);
		return NULL;
	}
	c->project_id = row->id;
	c->org_id = row->org_id;
	c->created_at = row->created_at;
	c->undone = undone;
	return &c->schema;
}

enum tly_code tly__project_load_row(struct tly *t, const struct tly_actor *a, int64_t id,
				    enum tly_role min, struct tly__project *p, struct tly_err *err)
{
	struct tly__cached_schema *c = &t->cache[(uint64_t)id % TLY__SCHEMA_CACHE];
	uint64_t undone = t->store->ops->undone(t->store);
	struct store_project row = { 0 };
	enum tly_code rc;

	memset(p, 0, sizeof(*p));
	if (id <= 0)
		return tly_err_set(err, TLY_ENOTFOUND, "", "no such project");
	if (c->project_id != id || c->undone != undone) {
		rc = t->store->ops->project_get(t->store, id, &row, err);
		if (rc == TLY_OK && !schema_for(c, &row, undone, err))
			rc = TLY_EINTERNAL;
		store_project_clear(&row);
		if (rc == TLY_ENOTFOUND)
			return tly_err_set(err, TLY_ENOTFOUND, "", "no such project");
		if (rc != TLY_OK)
			return rc;
	}
	if (c->org_id != a->org_id)
		return tly_err_set(err, TLY_ENOTFOUND, "", "no such project");
	if ((rc = tly__role_check(a, min, err)) != TLY_OK)
		return rc;
	p->row.id = id;
	p->row.org_id = c->org_id;
	p->row.created_at = c->created_at;
	p->schema = &c->schema;
	return TLY_OK;
}

enum tly_code tly__project_load(struct tly *t, const struct tly_actor *a, const char *id,
				enum tly_role min, struct tly__project *p, struct tly_err *err)
{
	return tly__project_load_row(t, a, tly_id_decode(&t->ids, TLY_PROJECT, id), min, p, err);
}

json_t *tly__id(struct tly *t, enum tly_kind k, int64_t n)
{
	char buf[TLY_ID_MAX];
	return json_string(tly_id_encode(&t->ids, k, n, buf));
}

json_t *tly__time(int64_t ms)
{
	char buf[32];
	return json_string(tly_time_fmt(ms, buf));
}

enum tly_code tly__buf_id(struct tly_buf *b, struct tly *t, enum tly_kind k, int64_t n)
{
	char id[TLY_ID_MAX];

	return tly_buf_add_token(b, tly_id_encode(&t->ids, k, n, id));
}

enum tly_code tly__buf_time(struct tly_buf *b, int64_t ms)
{
	char ts[32];

	return tly_buf_add_token(b, tly_time_fmt(ms, ts));
}

json_t *tly__parse_stored(const char *text)
{
	json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
	return v ? v : json_null();
}

json_t *tly__project_json(struct tly *t, const struct tly__project *p, int with_counts)
{
	json_t *o = json_object();
	int64_t counts[TLY_TASK_NSTATUS];

	json_object_set_new(o, "id", tly__id(t, TLY_PROJECT, p->row.id));
	json_object_update(o, p->schema->doc);
	json_object_set_new(o, "created_at", tly__time(p->row.created_at));
	if (with_counts &&
	    t->store->ops->project_counts(t->store, p->row.id, counts, NULL) == TLY_OK) {
		json_t *c = json_object();
		for (int i = 0; i < TLY_TASK_NSTATUS; i++)
			json_object_set_new(c, tly_task_status_name((enum tly_task_status)i),
					    json_integer(counts[i]));
		json_object_set_new(o, "counts", c);
	}
	return o;
}

static int add_response(void *arg, const struct store_response *r)
{
	void **ctx = arg;
	struct tly *t = ctx[0];
	json_t *o = json_object();

	json_object_set_new(o, "id", tly__id(t, TLY_RESPONSE, r->id));
	json_object_set_new(o, "user_id", tly__id(t, TLY_USER, r->user_id));
	json_object_set_new(o, "answers", tly__parse_stored(r->answers));
	json_object_set_new(o, "duration_ms", json_integer(r->duration_ms));
	json_object_set_new(o, "created_at", tly__time(r->created_at));
	json_array_append_new(ctx[1], o);
	return 0;
}

json_t *tly__task_json(struct tly *t, const struct store_task *row, int with_responses)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", tly__id(t, TLY_TASK, row->id));
	json_object_set_new(o, "project_id", tly__id(t, TLY_PROJECT, row->project_id));
	json_object_set_new(o, "unique_id", row->unique_id ? json_string(row->unique_id) : json_null());
	json_object_set_new(o, "priority", json_integer(row->priority));
	json_object_set_new(o, "data", tly__parse_stored(row->data));
	json_object_set_new(o, "metadata", row->metadata ? tly__parse_stored(row->metadata) : json_object());
	json_object_set_new(o, "status", json_string(tly_task_status_name(row->status)));
	json_object_set_new(o, "response_count", json_integer(row->n_responses));
	json_object_set_new(o, "consensus", tly__parse_stored(row->consensus));
	if (row->is_gold)
		json_object_set_new(o, "gold", tly__parse_stored(row->gold));
	json_object_set_new(o, "created_at", tly__time(row->created_at));
	if (with_responses) {
		json_t *list = json_array();
		void *ctx[2] = { t, list };
		t->store->ops->response_list(t->store, row->id, add_response, ctx, NULL);
		json_object_set_new(o, "responses", list);
	}
	return o;
}

enum tly_task_status tly__task_status(enum tly_task_status cur, int n_responses, int n_leases)
{
	if (cur == TLY_TASK_COMPLETED || cur == TLY_TASK_CANCELED)
		return cur;
	return (n_responses > 0 || n_leases > 0) ? TLY_TASK_IN_PROGRESS : TLY_TASK_QUEUED;
}

enum tly_code tly_actor_for_project(struct tly *t, const char *project, struct tly_actor *a,
				    struct tly_err *err)
{
	struct store_project row = { 0 };
	int64_t id = tly_id_decode(&t->ids, TLY_PROJECT, project);
	enum tly_code rc;

	memset(a, 0, sizeof(*a));
	if (!id || (rc = t->store->ops->project_get(t->store, id, &row, err)) == TLY_ENOTFOUND)
		return tly_err_set(err, TLY_ENOTFOUND, "project", "no project \"%s\"", project);
	if (rc == TLY_OK) {
		a->org_id = row.org_id;
		a->role = TLY_ROLE_OWNER;
	}
	store_project_clear(&row);
	return rc;
}
