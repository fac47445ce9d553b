/* project.c — creating, reading and listing projects. */
#include "tallyint.h"

#include <stdlib.h>

#include "jsontext.h"
#include "util.h"

enum tly_code tly_project_create(struct tly *t, const struct tly_actor *a, const json_t *schema,
				 json_t **out, struct tly_err *err)
{
	struct store *s = t->store;
	struct tly_schema parsed;
	struct store_project row = { 0 };
	struct tly__project p;
	int64_t id = 0;
	enum tly_code rc;

	*out = NULL;
	if ((rc = tly__role_check(a, TLY_ROLE_MANAGER, err)) != TLY_OK)
		return rc;
	if ((rc = tly_schema_parse(schema, &parsed, err)) != TLY_OK)
		return rc;
	row.org_id = a->org_id;
	row.name = (char *)json_string_value(json_object_get(parsed.doc, "name"));
	row.schema = tly_json_text(parsed.doc, JSON_COMPACT);
	row.created_at = tly_now_ms();
	if ((rc = s->ops->begin(s, err)) == TLY_OK) {
		rc = s->ops->project_insert(s, &row, &id, err);
		if (rc == TLY_OK)
			rc = s->ops->commit(s, err);
		else
			s->ops->rollback(s);
	}
	free(row.schema);
	tly_schema_clear(&parsed);
	if (rc == TLY_OK && (rc = tly__project_load_row(t, a, id, TLY_ROLE_ANNOTATOR, &p, err)) == TLY_OK) {
		*out = tly__project_json(t, &p, 1);
		store_project_clear(&p.row);
	}
	return rc;
}

enum tly_code tly_project_get(struct tly *t, const struct tly_actor *a, const char *id,
			      json_t **out, struct tly_err *err)
{
	struct tly__project p;
	enum tly_code rc = tly__project_load(t, a, id, TLY_ROLE_ANNOTATOR, &p, err);

	*out = NULL;
	if (rc == TLY_OK) {
		*out = tly__project_json(t, &p, 1);
		store_project_clear(&p.row);
	}
	return rc;
}

struct list_ctx {
	struct tly *t;
	const struct tly_actor *a;
	json_t *list;
	struct tly_err *err;
	enum tly_code rc;
	int64_t last;
	int n;
};

static int project_row(void *arg, const struct store_project *row)
{
	struct list_ctx *c = arg;
	struct tly__project p;

	/* load again by id: the cached schema and the same shape as a GET */
	c->rc = tly__project_load_row(c->t, c->a, row->id, TLY_ROLE_ANNOTATOR, &p, c->err);
	if (c->rc != TLY_OK)
		return 1;
	json_array_append_new(c->list, tly__project_json(c->t, &p, 1));
	store_project_clear(&p.row);
	c->last = row->id;
	c->n++;
	return 0;
}

enum tly_code tly_project_list(struct tly *t, const struct tly_actor *a, const char *cursor,
			       int limit, json_t **out, struct tly_err *err)
{
	struct list_ctx c = { t, a, NULL, err, TLY_OK, 0, 0 };
	int64_t after = 0;
	enum tly_code rc;

	*out = NULL;
	if (cursor && !(after = tly_id_decode(&t->ids, TLY_PROJECT, cursor)))
		return tly_err_set(err, TLY_EBADREQ, "cursor", "cursor: not a cursor this API gave");
	if (limit < 1 || limit > TLY_LIST_MAX)
		return tly_err_set(err, TLY_EBADREQ, "limit", "limit: must be from 1 to %d", TLY_LIST_MAX);
	c.list = json_array();
	/* project_row runs other statements while the list one steps: the
	 * store allows that as long as no statement is re-entered */
	rc = t->store->ops->project_list(t->store, a->org_id, after, limit, project_row, &c, err);
	if (rc == TLY_OK)
		rc = c.rc;
	if (rc != TLY_OK) {
		json_decref(c.list);
		return rc;
	}
	*out = json_pack("{s:o,s:o}", "projects", c.list,
			 "next_cursor", c.n == limit ? tly__id(t, TLY_PROJECT, c.last) : json_null());
	return TLY_OK;
}

enum tly_code tly_project_access(struct tly *t, const struct tly_actor *a, const char *project,
				 enum tly_role min, struct tly_err *err)
{
	struct tly__project p;
	enum tly_code rc = tly__project_load(t, a, project, min, &p, err);

	if (rc == TLY_OK)
		store_project_clear(&p.row);
	return rc;
}
