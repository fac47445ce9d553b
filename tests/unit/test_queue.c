/* test_queue.c — the work queue through the public API (tally.h): claim
 * order, never the same task twice, retried claims, release, max_responses,
 * lease expiry, double and foreign submits, cancelled tasks, completion, a
 * submit's "next" lease, and
 * a simulated interleaving of many annotators. Each test gets a fresh
 * database in its own mkdtemp directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "tally.h"
#include "store.h"
#include "testkit.h"

/* ---- helpers ------------------------------------------------------------- */

#define EXPECT_RC(call, code)                                                                  \
	do {                                                                                    \
		tly_err_clear(&w->err);                                                         \
		enum tly_code rc_ = (call);                                                     \
		if (rc_ != (code))                                                              \
			fail_msg("%s: code %s (%s: %s), expected %s", #call, tly_code_name(rc_),  \
				 w->err.field, w->err.message, tly_code_name(code));            \
	} while (0)

#define OK(call) EXPECT_RC(call, TLY_OK)

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

#define NUSERS 8

struct user {
	char id[32], key[TLY_KEY_MAX], key_id[32];
	struct tly_actor a;
};

struct world {
	char dir[TK_DIR_MAX], path[TK_PATH_MAX];
	struct tly *t;
	struct tly_err err;
	struct user owner, ann[NUSERS], outsider;
	json_t *keep; /* objects released at teardown, so a failing test leaks nothing */
};

/* Hands o to the world (released at teardown); returns o. */
static json_t *keep(struct world *w, json_t *o)
{
	if (o)
		json_array_append_new(w->keep, o);
	return o;
}

static void add_user(struct world *w, const char *org, const char *email, const char *role,
		     struct user *u)
{
	OK(tly_user_add(w->t, org, email, role, NULL, u->id, &w->err));
	OK(tly_key_create(w->t, email, org, u->key, u->key_id, &w->err));
	OK(tly_authenticate(w->t, u->key, &u->a, &w->err));
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	char org[32], email[64];

	if (!w)
		return -1;
	if (tk_db_dir("queue", w->dir, w->path) != 0)
		return -1;
	if (tly_open(w->path, 1, &w->t, &w->err) != TLY_OK)
		return -1;
	*state = w;
	w->keep = json_array();
	OK(tly_org_add(w->t, "Acme", org, &w->err));
	OK(tly_org_add(w->t, "Globex", org, &w->err));
	add_user(w, "Acme", "owner@acme.test", "owner", &w->owner);
	for (int i = 0; i < NUSERS; i++) {
		snprintf(email, sizeof(email), "ann%d@acme.test", i);
		add_user(w, "Acme", email, "annotator", &w->ann[i]);
	}
	add_user(w, "Globex", "ann@globex.test", "annotator", &w->outsider);
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	if (!w)
		return 0;
	json_decref(w->keep);
	tly_close(w->t);
	tk_db_remove(w->dir);
	free(w);
	return 0;
}

/* A project of the schema (single-quoted JSON); its id in out. */
static void create_project(struct world *w, const char *schema_sq, char out[32])
{
	json_t *s = J(schema_sq), *p = NULL;

	OK(tly_project_create(w->t, &w->owner.a, s, &p, &w->err));
	snprintf(out, 32, "%s", jstr(p, "id"));
	json_decref(p);
	json_decref(s);
}

/* A sentiment project with the given response counts and lease. */
static void make_project(struct world *w, int min, int max, int lease, char out[32])
{
	char buf[512];

	snprintf(buf, sizeof(buf),
		 "{'name':'Q','fields':[{'name':'text','type':'text'}],"
		 " 'questions':[{'name':'sentiment','type':'choice','options':['positive','negative','neutral']}],"
		 " 'min_responses':%d,'max_responses':%d,'lease_seconds':%d}",
		 min, max, lease);
	create_project(w, buf, out);
}

/* Adds tasks; returns the array of created ids (owned). */
static json_t *add_tasks(struct world *w, const char *project, const char *tasks_sq)
{
	json_t *tasks = J(tasks_sq), *out = NULL, *created;

	OK(tly_tasks_add(w->t, &w->owner.a, project, tasks, &out, &w->err));
	created = json_incref(json_object_get(out, "created"));
	json_decref(out);
	json_decref(tasks);
	return created;
}

static json_t *add_n_tasks(struct world *w, const char *project, int n)
{
	json_t *tasks = json_array(), *out = NULL, *created;
	char buf[32];

	for (int i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "task %d", i);
		json_array_append_new(tasks, json_pack("{s:{s:s}}", "data", "text", buf));
	}
	OK(tly_tasks_add(w->t, &w->owner.a, project, tasks, &out, &w->err));
	created = json_incref(json_object_get(out, "created"));
	assert_int_equal(json_array_size(created), (size_t)n);
	json_decref(out);
	json_decref(tasks);
	return created;
}

/* Claims; returns the claim object or NULL when nothing is available. */
static json_t *claim(struct world *w, const struct user *u, const char *project)
{
	json_t *out = (json_t *)1;

	OK(tly_claim(w->t, &u->a, project, &out, &w->err));
	return out;
}

static const char *claim_task(const json_t *c)
{
	return jstr(json_object_get(c, "task"), "id");
}

static const char *claim_asg(const json_t *c)
{
	return jstr(json_object_get(c, "assignment"), "id");
}

static const char *const good_body = "{'answers':{'sentiment':'positive'},'duration_ms':10}";

/* Submits a valid answer; returns the answer object. */
static json_t *submit(struct world *w, const struct user *u, const char *asg)
{
	json_t *body = J(good_body), *out = NULL;

	OK(tly_submit(w->t, &u->a, asg, body, &out, &w->err));
	json_decref(body);
	return out;
}

/* Submits the body (single-quoted JSON); returns the code. A reply is the
 * response and the task, nothing else (with "next" too: the claim after it
 * hands the next task out); a refusal has none. */
static enum tly_code submit_body_rc(struct world *w, const struct user *u, const char *asg,
				    const char *body_sq)
{
	json_t *body = J(body_sq), *out = NULL;
	enum tly_code rc;

	tly_err_clear(&w->err);
	rc = tly_submit(w->t, &u->a, asg, body, &out, &w->err);
	if (rc == TLY_OK) {
		assert_int_equal(json_object_size(out), 2);
		assert_non_null(json_object_get(out, "response"));
		assert_non_null(json_object_get(out, "task"));
	} else {
		assert_null(out);
	}
	json_decref(out);
	json_decref(body);
	return rc;
}

static enum tly_code submit_rc(struct world *w, const struct user *u, const char *asg)
{
	return submit_body_rc(w, u, asg, good_body);
}

/* The same with "next": value (single-quoted JSON, e.g. "true") */
static enum tly_code submit_next_rc(struct world *w, const struct user *u, const char *asg,
				    const char *next)
{
	char buf[160];

	snprintf(buf, sizeof(buf), "{'answers':{'sentiment':'positive'},'duration_ms':10,'next':%s}", next);
	return submit_body_rc(w, u, asg, buf);
}

static json_t *task_get(struct world *w, const char *id)
{
	json_t *t = NULL;
	OK(tly_task_get(w->t, &w->owner.a, id, &t, &w->err));
	return t;
}

static const char *task_status(struct world *w, const char *id, char buf[32])
{
	json_t *t = task_get(w, id);
	snprintf(buf, 32, "%s", jstr(t, "status"));
	json_decref(t);
	return buf;
}

static size_t response_count(struct world *w, const char *id)
{
	json_t *t = task_get(w, id);
	size_t n = json_array_size(json_object_get(t, "responses"));
	assert_int_equal(json_integer_value(json_object_get(t, "response_count")), (json_int_t)n);
	json_decref(t);
	return n;
}

static const char *nth(const json_t *ids, size_t i)
{
	return json_string_value(json_array_get(ids, i));
}

/* ---- tests ----------------------------------------------------------------------- */

/* higher priority first, then oldest; the claim shows id and data only */
static void test_claim_order(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *ids, *c;
	/* created order 0..5; priorities 0,5,5,-1,0,10 */
	static const int expect[] = { 5, 1, 2, 0, 4, 3 };

	make_project(w, 1, 1, 600, prj);
	ids = add_tasks(w, prj,
			"[{'data':{'text':'t0'}},{'data':{'text':'t1'},'priority':5},"
			" {'data':{'text':'t2'},'priority':5,'metadata':{'secret':'gold'}},"
			" {'data':{'text':'t3'},'priority':-1},{'data':{'text':'t4'}},"
			" {'data':{'text':'t5'},'priority':10}]");
	for (size_t i = 0; i < 6; i++) {
		char text[8];
		c = claim(w, &w->ann[0], prj);
		assert_non_null(c);
		assert_string_equal(claim_task(c), nth(ids, (size_t)expect[i]));
		snprintf(text, sizeof(text), "t%d", expect[i]);
		assert_string_equal(jstr(json_object_get(json_object_get(c, "task"), "data"), "text"), text);
		/* the annotator sees id and data only: no metadata, priority or unique id */
		assert_int_equal(json_object_size(json_object_get(c, "task")), 2);
		assert_int_equal(json_object_size(json_object_get(c, "assignment")), 2);
		assert_int_equal(strncmp(claim_asg(c), "asg_", 4), 0);
		assert_int_equal(strlen(jstr(json_object_get(c, "assignment"), "expires_at")), 24);
		json_decref(submit(w, &w->ann[0], claim_asg(c)));
		json_decref(c);
	}
	assert_null(claim(w, &w->ann[0], prj));
	json_decref(ids);
}

/* priority order also holds across users, each taking the next best task */
static void test_claim_order_many_users(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *ids, *c[6];
	static const int expect[] = { 4, 2, 0, 3, 1, 5 };

	/* priorities over the whole 64-bit range */
	make_project(w, 1, 1, 600, prj);
	ids = add_tasks(w, prj,
			"[{'data':{'text':'a'},'priority':3},{'data':{'text':'b'}},"
			" {'data':{'text':'c'},'priority':4294967296},{'data':{'text':'d'},'priority':3},"
			" {'data':{'text':'e'},'priority':9223372036854775807},"
			" {'data':{'text':'f'},'priority':-9223372036854775808}]");
	for (int i = 0; i < 6; i++) {
		c[i] = claim(w, &w->ann[i], prj);
		assert_non_null(c[i]);
		assert_string_equal(claim_task(c[i]), nth(ids, (size_t)expect[i]));
	}
	assert_null(claim(w, &w->ann[6], prj));
	for (int i = 0; i < 6; i++)
		json_decref(c[i]);
	json_decref(ids);
}

static void test_never_same_task_twice(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *ids, *c;

	make_project(w, 3, 3, 600, prj);
	ids = add_n_tasks(w, prj, 2);
	c = claim(w, &w->ann[0], prj);
	assert_string_equal(claim_task(c), nth(ids, 0));
	json_decref(submit(w, &w->ann[0], claim_asg(c)));
	json_decref(c);
	/* task 0 still needs answers, but not from this user */
	c = claim(w, &w->ann[0], prj);
	assert_non_null(c);
	assert_string_equal(claim_task(c), nth(ids, 1));
	json_decref(submit(w, &w->ann[0], claim_asg(c)));
	json_decref(c);
	assert_null(claim(w, &w->ann[0], prj));
	assert_null(claim(w, &w->ann[0], prj));
	/* another user still gets task 0 */
	c = claim(w, &w->ann[1], prj);
	assert_string_equal(claim_task(c), nth(ids, 0));
	json_decref(c);
	json_decref(ids);
}

static void test_reclaim_same_lease(void **state)
{
	struct world *w = *state;
	char prj[32], st[32];
	json_t *ids, *c1, *c2, *c3;

	make_project(w, 1, 1, 600, prj);
	ids = add_n_tasks(w, prj, 2);
	c1 = claim(w, &w->ann[0], prj);
	assert_int_equal(tly_claim_held(w->t), 0); /* it leased */
	c2 = claim(w, &w->ann[0], prj);
	assert_int_equal(tly_claim_held(w->t), 1); /* it handed back, writing nothing */
	c3 = claim(w, &w->ann[0], prj);
	assert_int_equal(tly_claim_held(w->t), 1);
	assert_string_equal(claim_asg(c1), claim_asg(c2));
	assert_string_equal(claim_asg(c1), claim_asg(c3));
	assert_string_equal(claim_task(c1), claim_task(c2));
	assert_true(json_equal(c1, c3));
	/* the retries did not burn task 1 nor count twice on task 0 */
	json_decref(c2);
	c2 = claim(w, &w->ann[1], prj);
	assert_string_equal(claim_task(c2), nth(ids, 1));
	assert_null(claim(w, &w->ann[2], prj));
	assert_string_equal(task_status(w, nth(ids, 0), st), "in_progress");
	/* after submitting, a claim hands out something new (here: nothing) */
	json_decref(submit(w, &w->ann[0], claim_asg(c1)));
	assert_null(claim(w, &w->ann[0], prj));
	json_decref(c1);
	json_decref(c2);
	json_decref(c3);
	json_decref(ids);
}

static void test_release(void **state)
{
	struct world *w = *state;
	char prj[32], st[32];
	json_t *ids, *c, *r = NULL, *c2;

	make_project(w, 1, 1, 600, prj);
	ids = add_n_tasks(w, prj, 1);
	c = claim(w, &w->ann[0], prj);
	assert_null(claim(w, &w->ann[1], prj)); /* max 1: taken */
	OK(tly_release(w->t, &w->ann[0].a, claim_asg(c), &r, &w->err));
	assert_string_equal(jstr(json_object_get(r, "assignment"), "id"), claim_asg(c));
	assert_string_equal(jstr(json_object_get(r, "assignment"), "status"), "released");
	json_decref(r);
	assert_string_equal(task_status(w, nth(ids, 0), st), "queued");

	/* the releaser never gets it again; the released assignment is closed */
	assert_null(claim(w, &w->ann[0], prj));
	assert_int_equal(submit_rc(w, &w->ann[0], claim_asg(c)), TLY_ECONFLICT);
	assert_int_equal(strncmp(w->err.message, "released", 8), 0);
	EXPECT_RC(tly_release(w->t, &w->ann[0].a, claim_asg(c), &r, &w->err), TLY_ECONFLICT);
	assert_int_equal(strncmp(w->err.message, "released", 8), 0);
	EXPECT_RC(tly_heartbeat(w->t, &w->ann[0].a, claim_asg(c), &r, &w->err), TLY_ECONFLICT);

	/* somebody else does */
	c2 = claim(w, &w->ann[1], prj);
	assert_non_null(c2);
	assert_string_equal(claim_task(c2), nth(ids, 0));
	assert_string_not_equal(claim_asg(c2), claim_asg(c));
	json_decref(submit(w, &w->ann[1], claim_asg(c2)));
	assert_int_equal(response_count(w, nth(ids, 0)), 1);
	assert_string_equal(task_status(w, nth(ids, 0), st), "completed");
	json_decref(c);
	json_decref(c2);
	json_decref(ids);
}

/* min=1, max=3, five users: at most three ever hold or answer the task */
static void test_max_responses(void **state)
{
	struct world *w = *state;
	char prj[32], st[32];
	json_t *ids, *c[5], *t;

	make_project(w, 1, 3, 600, prj);
	ids = add_n_tasks(w, prj, 1);
	for (int i = 0; i < 3; i++) {
		c[i] = claim(w, &w->ann[i], prj);
		assert_non_null(c[i]);
		assert_string_equal(claim_task(c[i]), nth(ids, 0));
	}
	assert_null(claim(w, &w->ann[3], prj));
	assert_null(claim(w, &w->ann[4], prj));
	for (int i = 0; i < 3; i++) {
		json_t *s = submit(w, &w->ann[i], claim_asg(c[i]));
		assert_string_equal(jstr(json_object_get(s, "task"), "status"), "completed");
		json_decref(s);
		/* nobody else gets in, whatever the order */
		assert_null(claim(w, &w->ann[3], prj));
		assert_null(claim(w, &w->ann[4], prj));
	}
	t = task_get(w, nth(ids, 0));
	assert_int_equal(json_array_size(json_object_get(t, "responses")), 3);
	for (int i = 0; i < 3; i++)
		assert_string_equal(jstr(json_array_get(json_object_get(t, "responses"), (size_t)i), "user_id"),
				    w->ann[i].id);
	json_decref(t);
	assert_string_equal(task_status(w, nth(ids, 0), st), "completed");
	for (int i = 0; i < 3; i++)
		json_decref(c[i]);
	json_decref(ids);
}

/* min=2, max=3: leases spread oldest-first; the third answer still counts */
static void test_max_responses_two_tasks(void **state)
{
	struct world *w = *state;
	char prj[32], st[32];
	json_t *ids, *c[5], *s;
	static const int expect[] = { 0, 0, 0, 1, 1 };

	make_project(w, 2, 3, 600, prj);
	ids = add_n_tasks(w, prj, 2);
	for (int i = 0; i < 5; i++) {
		c[i] = claim(w, &w->ann[i], prj);
		assert_string_equal(claim_task(c[i]), nth(ids, (size_t)expect[i]));
	}
	c[0] = (json_decref(c[0]), claim(w, &w->ann[0], prj)); /* retried: same lease */
	s = submit(w, &w->ann[0], claim_asg(c[0]));
	assert_string_equal(jstr(json_object_get(s, "task"), "status"), "in_progress");
	json_decref(s);
	s = submit(w, &w->ann[1], claim_asg(c[1]));
	assert_string_equal(jstr(json_object_get(s, "task"), "status"), "completed");
	json_decref(s);
	s = submit(w, &w->ann[2], claim_asg(c[2]));
	assert_string_equal(jstr(json_object_get(s, "task"), "status"), "completed");
	json_decref(s);
	assert_int_equal(response_count(w, nth(ids, 0)), 3);
	/* task 1 has two leases and room for one more */
	{
		json_t *c6 = claim(w, &w->ann[5], prj);
		assert_string_equal(claim_task(c6), nth(ids, 1));
		assert_null(claim(w, &w->ann[6], prj));
		json_decref(c6);
	}
	assert_string_equal(task_status(w, nth(ids, 1), st), "in_progress");
	for (int i = 0; i < 5; i++)
		json_decref(c[i]);
	json_decref(ids);
}

/* a lease that ran out is taken back; the late submit is refused */
static void test_lease_expiry_claim(void **state)
{
	struct world *w = *state;
	char prj[32], st[32];
	json_t *ids, *ca, *cb, *t;

	make_project(w, 1, 1, 1, prj);
	ids = add_n_tasks(w, prj, 1);
	ca = claim(w, &w->ann[0], prj);
	assert_non_null(ca);
	assert_null(claim(w, &w->ann[1], prj));
	sleep_ms(1100);
	cb = claim(w, &w->ann[1], prj);
	assert_non_null(cb);
	assert_string_equal(claim_task(cb), nth(ids, 0));
	assert_int_equal(submit_rc(w, &w->ann[0], claim_asg(ca)), TLY_ECONFLICT);
	assert_int_equal(strncmp(w->err.message, "lease_expired", 13), 0);
	/* heartbeat and release are refused the same way */
	{
		json_t *o = NULL;
		EXPECT_RC(tly_heartbeat(w->t, &w->ann[0].a, claim_asg(ca), &o, &w->err), TLY_ECONFLICT);
		assert_int_equal(strncmp(w->err.message, "lease_expired", 13), 0);
		EXPECT_RC(tly_release(w->t, &w->ann[0].a, claim_asg(ca), &o, &w->err), TLY_ECONFLICT);
		assert_int_equal(strncmp(w->err.message, "lease_expired", 13), 0);
	}
	/* the expired user never gets it back */
	assert_null(claim(w, &w->ann[0], prj));
	json_decref(submit(w, &w->ann[1], claim_asg(cb)));
	t = task_get(w, nth(ids, 0));
	assert_int_equal(json_array_size(json_object_get(t, "responses")), 1);
	assert_string_equal(jstr(json_array_get(json_object_get(t, "responses"), 0), "user_id"), w->ann[1].id);
	json_decref(t);
	assert_string_equal(task_status(w, nth(ids, 0), st), "completed");
	json_decref(ca);
	json_decref(cb);
	json_decref(ids);
}

/* the late submit itself notices the expiry and frees the place */
static void test_lease_expiry_submit_first(void **state)
{
	struct world *w = *state;
	char prj[32], st[32];
	json_t *ids, *ca, *cb;

	make_project(w, 1, 1, 1, prj);
	ids = add_n_tasks(w, prj, 1);
	ca = claim(w, &w->ann[0], prj);
	sleep_ms(1100);
	assert_int_equal(submit_rc(w, &w->ann[0], claim_asg(ca)), TLY_ECONFLICT);
	assert_int_equal(strncmp(w->err.message, "lease_expired", 13), 0);
	assert_int_equal(submit_rc(w, &w->ann[0], claim_asg(ca)), TLY_ECONFLICT);
	assert_int_equal(strncmp(w->err.message, "lease_expired", 13), 0);
	assert_string_equal(task_status(w, nth(ids, 0), st), "queued");
	/* a retried claim after one's own expiry does not revive the lease */
	assert_null(claim(w, &w->ann[0], prj));
	cb = claim(w, &w->ann[1], prj);
	assert_non_null(cb);
	assert_string_equal(claim_task(cb), nth(ids, 0));
	assert_int_equal(response_count(w, nth(ids, 0)), 0);
	json_decref(ca);
	json_decref(cb);
	json_decref(ids);
}

/* a heartbeat keeps the lease alive past its first end */
static void test_heartbeat_extends(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *ids, *ca, *hb = NULL;

	make_project(w, 1, 1, 1, prj);
	ids = add_n_tasks(w, prj, 1);
	ca = claim(w, &w->ann[0], prj);
	sleep_ms(600);
	OK(tly_heartbeat(w->t, &w->ann[0].a, claim_asg(ca), &hb, &w->err));
	assert_string_equal(jstr(json_object_get(hb, "assignment"), "id"), claim_asg(ca));
	assert_true(strcmp(jstr(json_object_get(hb, "assignment"), "expires_at"),
			   jstr(json_object_get(ca, "assignment"), "expires_at")) > 0);
	json_decref(hb);
	sleep_ms(600); /* 1.2 s after the claim, 0.6 s after the heartbeat */
	assert_null(claim(w, &w->ann[1], prj));
	assert_int_equal(submit_rc(w, &w->ann[0], claim_asg(ca)), TLY_OK);
	assert_int_equal(response_count(w, nth(ids, 0)), 1);
	json_decref(ca);
	json_decref(ids);
}

static void test_double_submit(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *ids, *c, *s, *t, *body, *out = NULL;

	make_project(w, 1, 1, 600, prj);
	ids = add_n_tasks(w, prj, 1);
	c = claim(w, &w->ann[0], prj);

	/* a refused answer stores nothing and keeps the lease */
	body = J("{'answers':{'sentiment':'happy'}}");
	EXPECT_RC(tly_submit(w->t, &w->ann[0].a, claim_asg(c), body, &out, &w->err), TLY_EINVALID);
	assert_string_equal(w->err.field, "answers.sentiment");
	json_decref(body);
	body = J("{'answers':{'sentiment':'positive','extra':1}}");
	EXPECT_RC(tly_submit(w->t, &w->ann[0].a, claim_asg(c), body, &out, &w->err), TLY_EINVALID);
	assert_string_equal(w->err.field, "answers.extra");
	json_decref(body);
	body = J("{'answers':{'sentiment':'positive'},'duration_ms':-1}");
	EXPECT_RC(tly_submit(w->t, &w->ann[0].a, claim_asg(c), body, &out, &w->err), TLY_EINVALID);
	assert_string_equal(w->err.field, "duration_ms");
	json_decref(body);
	body = J("[]");
	EXPECT_RC(tly_submit(w->t, &w->ann[0].a, claim_asg(c), body, &out, &w->err), TLY_EBADREQ);
	json_decref(body);
	body = J("{}");
	EXPECT_RC(tly_submit(w->t, &w->ann[0].a, claim_asg(c), body, &out, &w->err), TLY_EINVALID);
	assert_string_equal(w->err.field, "answers");
	json_decref(body);
	assert_int_equal(response_count(w, nth(ids, 0)), 0);

	s = submit(w, &w->ann[0], claim_asg(c));
	{
		json_t *r = json_object_get(s, "response");
		assert_int_equal(strncmp(jstr(r, "id"), "rsp_", 4), 0);
		assert_string_equal(jstr(r, "task_id"), nth(ids, 0));
		assert_string_equal(jstr(json_object_get(r, "answers"), "sentiment"), "positive");
		assert_int_equal(json_integer_value(json_object_get(r, "duration_ms")), 10);
		assert_int_equal(strlen(jstr(r, "created_at")), 24);
		assert_string_equal(jstr(json_object_get(s, "task"), "id"), nth(ids, 0));
		assert_string_equal(jstr(json_object_get(s, "task"), "status"), "completed");
	}
	assert_int_equal(submit_rc(w, &w->ann[0], claim_asg(c)), TLY_ECONFLICT);
	assert_int_equal(strncmp(w->err.message, "already_submitted", 17), 0);
	assert_int_equal(submit_rc(w, &w->ann[0], claim_asg(c)), TLY_ECONFLICT);
	assert_int_equal(strncmp(w->err.message, "already_submitted", 17), 0);
	EXPECT_RC(tly_release(w->t, &w->ann[0].a, claim_asg(c), &out, &w->err), TLY_ECONFLICT);
	assert_int_equal(strncmp(w->err.message, "already_submitted", 17), 0);

	t = task_get(w, nth(ids, 0));
	assert_int_equal(json_array_size(json_object_get(t, "responses")), 1);
	assert_string_equal(jstr(json_array_get(json_object_get(t, "responses"), 0), "id"),
			    jstr(json_object_get(s, "response"), "id"));
	assert_int_equal(json_integer_value(json_object_get(t, "response_count")), 1);
	json_decref(t);
	json_decref(s);
	json_decref(c);
	json_decref(ids);
}

static void test_foreign_assignment(void **state)
{
	struct world *w = *state;
	char prj[32], asg_as_task[32];
	json_t *ids, *c, *out = NULL;
	const struct user *others[3];
	struct tly_actor admin;

	make_project(w, 1, 1, 600, prj);
	ids = add_n_tasks(w, prj, 1);
	c = claim(w, &w->ann[0], prj);
	others[0] = &w->ann[1];   /* same org, other user */
	others[1] = &w->outsider; /* other org */
	others[2] = &w->owner;    /* the org's owner: still not theirs */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(submit_rc(w, others[i], claim_asg(c)), TLY_ENOTFOUND);
		EXPECT_RC(tly_release(w->t, &others[i]->a, claim_asg(c), &out, &w->err), TLY_ENOTFOUND);
		EXPECT_RC(tly_heartbeat(w->t, &others[i]->a, claim_asg(c), &out, &w->err), TLY_ENOTFOUND);
		assert_null(out);
	}
	/* the CLI's admin actor (no user) is not the holder either */
	OK(tly_actor_admin(w->t, "Acme", &admin, &w->err));
	{
		json_t *body = J(good_body);
		EXPECT_RC(tly_submit(w->t, &admin, claim_asg(c), body, &out, &w->err), TLY_ENOTFOUND);
		json_decref(body);
	}
	/* the holder speaking with a key of another of their organizations */
	{
		struct user twin;
		char id2[32];
		OK(tly_user_add(w->t, "Globex", "ann0@acme.test", "owner", NULL, id2, &w->err));
		assert_string_equal(id2, w->ann[0].id);
		OK(tly_key_create(w->t, "ann0@acme.test", "Globex", twin.key, twin.key_id, &w->err));
		OK(tly_authenticate(w->t, twin.key, &twin.a, &w->err));
		assert_int_equal(twin.a.user_id, w->ann[0].a.user_id);
		assert_int_not_equal(twin.a.org_id, w->ann[0].a.org_id);
		assert_int_equal(submit_rc(w, &twin, claim_asg(c)), TLY_ENOTFOUND);
		EXPECT_RC(tly_release(w->t, &twin.a, claim_asg(c), &out, &w->err), TLY_ENOTFOUND);
		EXPECT_RC(tly_claim(w->t, &twin.a, prj, &out, &w->err), TLY_ENOTFOUND);
	}
	/* ids that do not decode as assignments */
	assert_int_equal(submit_rc(w, &w->ann[0], nth(ids, 0)), TLY_ENOTFOUND);
	assert_int_equal(submit_rc(w, &w->ann[0], "asg_0000000000000"), TLY_ENOTFOUND);
	assert_int_equal(submit_rc(w, &w->ann[0], ""), TLY_ENOTFOUND);
	snprintf(asg_as_task, sizeof(asg_as_task), "tsk_%s", claim_asg(c) + 4);
	assert_int_equal(submit_rc(w, &w->ann[0], asg_as_task), TLY_ENOTFOUND);
	/* all of that left the lease untouched */
	assert_int_equal(response_count(w, nth(ids, 0)), 0);
	assert_int_equal(submit_rc(w, &w->ann[0], claim_asg(c)), TLY_OK);
	json_decref(c);
	json_decref(ids);
}

static void test_canceled_not_claimable(void **state)
{
	struct world *w = *state;
	char prj[32], st[32];
	json_t *ids, *c, *o = NULL;

	make_project(w, 1, 1, 600, prj);
	ids = add_n_tasks(w, prj, 3);
	OK(tly_task_cancel(w->t, &w->owner.a, nth(ids, 0), &o, &w->err));
	json_decref(o);
	c = claim(w, &w->ann[0], prj);
	assert_string_equal(claim_task(c), nth(ids, 1));

	/* cancelled while leased: the submit is refused, the task stays cancelled */
	OK(tly_task_cancel(w->t, &w->owner.a, nth(ids, 1), &o, &w->err));
	json_decref(o);
	assert_int_equal(submit_rc(w, &w->ann[0], claim_asg(c)), TLY_ECONFLICT);
	assert_int_equal(strncmp(w->err.message, "task_closed", 11), 0);
	assert_string_equal(task_status(w, nth(ids, 1), st), "canceled");
	assert_int_equal(response_count(w, nth(ids, 1)), 0);
	json_decref(c);

	/* only task 2 is left for anyone */
	for (int i = 1; i < 4; i++) {
		c = claim(w, &w->ann[i], prj);
		if (i == 1) {
			assert_non_null(c);
			assert_string_equal(claim_task(c), nth(ids, 2));
			json_decref(submit(w, &w->ann[i], claim_asg(c)));
			json_decref(c);
		} else {
			assert_null(c);
		}
	}
	/* a completed task cannot be cancelled */
	EXPECT_RC(tly_task_cancel(w->t, &w->owner.a, nth(ids, 2), &o, &w->err), TLY_ECONFLICT);
	assert_int_equal(strncmp(w->err.message, "task_closed", 11), 0);
	assert_string_equal(task_status(w, nth(ids, 2), st), "completed");
	json_decref(ids);
}

/* A task cancelled under a live lease has left the queue: claiming again must
 * not hand that dead lease back (its submit can only answer task_closed, so a
 * client that claims after a 409 would spin until the lease runs out). */
static void test_cancel_then_reclaim(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *ids, *c, *c2, *o = NULL;

	make_project(w, 1, 1, 600, prj);
	ids = keep(w, add_n_tasks(w, prj, 2));
	c = keep(w, claim(w, &w->ann[0], prj));
	assert_string_equal(claim_task(c), nth(ids, 0));
	OK(tly_task_cancel(w->t, &w->owner.a, nth(ids, 0), &o, &w->err));
	json_decref(o);
	assert_int_equal(submit_rc(w, &w->ann[0], claim_asg(c)), TLY_ECONFLICT);
	assert_int_equal(strncmp(w->err.message, "task_closed", 11), 0);
	c2 = keep(w, claim(w, &w->ann[0], prj));
	assert_non_null(c2);
	if (strcmp(claim_task(c2), nth(ids, 0)) == 0)
		fail_msg("claim after cancel handed back the cancelled task %s (assignment %s, same as "
			 "before: %s)", claim_task(c2), claim_asg(c2),
			 strcmp(claim_asg(c2), claim_asg(c)) == 0 ? "yes" : "no");
	assert_string_equal(claim_task(c2), nth(ids, 1));
}

/* the way out that works today: release the dead lease, then claim */
static void test_cancel_release_reclaim(void **state)
{
	struct world *w = *state;
	char prj[32], st[32];
	json_t *ids, *c, *c2, *o = NULL;

	make_project(w, 1, 1, 600, prj);
	ids = add_n_tasks(w, prj, 2);
	c = claim(w, &w->ann[0], prj);
	OK(tly_task_cancel(w->t, &w->owner.a, nth(ids, 0), &o, &w->err));
	json_decref(o);
	OK(tly_release(w->t, &w->ann[0].a, claim_asg(c), &o, &w->err));
	json_decref(o);
	assert_string_equal(task_status(w, nth(ids, 0), st), "canceled");
	c2 = claim(w, &w->ann[0], prj);
	assert_string_equal(claim_task(c2), nth(ids, 1));
	json_decref(c2);
	json_decref(c);
	json_decref(ids);
}

static void test_completion_at_min(void **state)
{
	struct world *w = *state;
	char prj[32], st[32];
	json_t *ids, *c[3], *s, *p = NULL;

	make_project(w, 2, 2, 600, prj);
	ids = add_n_tasks(w, prj, 1);
	assert_string_equal(task_status(w, nth(ids, 0), st), "queued");
	c[0] = claim(w, &w->ann[0], prj);
	assert_string_equal(task_status(w, nth(ids, 0), st), "in_progress");
	c[1] = claim(w, &w->ann[1], prj);
	assert_null(claim(w, &w->ann[2], prj));
	s = submit(w, &w->ann[0], claim_asg(c[0]));
	assert_string_equal(jstr(json_object_get(s, "task"), "status"), "in_progress");
	json_decref(s);
	assert_string_equal(task_status(w, nth(ids, 0), st), "in_progress");
	s = submit(w, &w->ann[1], claim_asg(c[1]));
	assert_string_equal(jstr(json_object_get(s, "task"), "status"), "completed");
	json_decref(s);
	assert_string_equal(task_status(w, nth(ids, 0), st), "completed");
	assert_null(claim(w, &w->ann[2], prj));
	OK(tly_project_get(w->t, &w->ann[0].a, prj, &p, &w->err));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "counts"), "completed")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "counts"), "in_progress")), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "counts"), "queued")), 0);
	json_decref(p);
	json_decref(c[0]);
	json_decref(c[1]);
	json_decref(ids);
}

/* ---- simulation -------------------------------------------------------------------- */

#define SIM_TASKS 300
#define SIM_N 3

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static unsigned rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

static int index_of(const json_t *ids, const char *id)
{
	for (size_t i = 0; i < json_array_size(ids); i++)
		if (strcmp(nth(ids, i), id) == 0)
			return (int)i;
	fail_msg("unknown task id %s", id);
	return -1;
}

/* Eight annotators claim, re-claim, release and submit in a pseudo-random
 * interleaving over 300 tasks with min = max = 3. A model of the queue checks
 * every step; at the end the export must show each task completed with
 * exactly three responses from three different users. */
static void test_simulation(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *ids, *held[NUSERS] = { 0 };
	static int leases[SIM_TASKS], answers[SIM_TASKS];
	static unsigned char seen[SIM_TASKS][NUSERS]; /* ever assigned */
	int open_users = NUSERS, steps = 0, releases = 0;
	int finished[NUSERS] = { 0 };

	memset(leases, 0, sizeof(leases));
	memset(answers, 0, sizeof(answers));
	memset(seen, 0, sizeof(seen));
	make_project(w, SIM_N, SIM_N, 600, prj);
	ids = add_n_tasks(w, prj, SIM_TASKS);

	while (open_users > 0) {
		int u = (int)rnd(NUSERS);
		steps++;
		assert_true(steps < 100000);
		if (finished[u])
			continue;
		if (!held[u]) {
			json_t *c = claim(w, &w->ann[u], prj);
			if (!c) {
				/* nothing for u: every task is full or was u's already */
				for (int k = 0; k < SIM_TASKS; k++)
					if (!seen[k][u] && leases[k] + answers[k] < SIM_N)
						fail_msg("user %d got nothing but task %d has room", u, k);
				finished[u] = 1;
				open_users--;
				continue;
			}
			int k = index_of(ids, claim_task(c));
			if (seen[k][u])
				fail_msg("user %d got task %d a second time", u, k);
			if (leases[k] + answers[k] >= SIM_N)
				fail_msg("task %d over max: %d leases + %d answers", k, leases[k], answers[k]);
			seen[k][u] = 1;
			leases[k]++;
			held[u] = c;
			continue;
		}
		int k = index_of(ids, claim_task(held[u]));
		switch (rnd(16)) {
		case 0: { /* a retried claim gets the same lease */
			json_t *c = claim(w, &w->ann[u], prj);
			assert_non_null(c);
			assert_string_equal(claim_asg(c), claim_asg(held[u]));
			json_decref(c);
			break;
		}
		case 1: { /* give it back */
			json_t *o = NULL;
			if (releases >= 40)
				goto submit_it;
			OK(tly_release(w->t, &w->ann[u].a, claim_asg(held[u]), &o, &w->err));
			json_decref(o);
			leases[k]--;
			releases++;
			json_decref(held[u]);
			held[u] = NULL;
			break;
		}
		case 2: { /* keep it alive */
			json_t *o = NULL;
			OK(tly_heartbeat(w->t, &w->ann[u].a, claim_asg(held[u]), &o, &w->err));
			json_decref(o);
			break;
		}
		default:
		submit_it: {
			json_t *s = submit(w, &w->ann[u], claim_asg(held[u]));
			leases[k]--;
			answers[k]++;
			assert_string_equal(jstr(json_object_get(s, "task"), "status"),
					    answers[k] >= SIM_N ? "completed" : "in_progress");
			json_decref(s);
			json_decref(held[u]);
			held[u] = NULL;
			break;
		}
		}
	}
	for (int u = 0; u < NUSERS; u++)
		assert_null(held[u]);
	assert_true(releases > 0);

	/* nothing left for anyone */
	for (int u = 0; u < NUSERS; u++)
		assert_null(claim(w, &w->ann[u], prj));

	/* the export: every task completed by three different users */
	{
		struct tly_export *x = NULL;
		struct tly_buf buf;
		int done = 0, lines = 0;
		tly_buf_init(&buf, 1 << 24);
		OK(tly_export_open(w->t, &w->owner.a, prj, "jsonl", NULL, &x, &w->err));
		while (!done) {
			tly_buf_reset(&buf);
			OK(tly_export_next(x, &buf, 64, &done, &w->err));
			for (char *p = buf.p, *nl; p && (nl = strchr(p, '\n')); p = nl + 1) {
				json_error_t e;
				json_t *l = json_loadb(p, (size_t)(nl - p), 0, &e), *rs;
				const char *users[SIM_N];
				assert_non_null(l);
				assert_string_equal(jstr(l, "id"), nth(ids, (size_t)lines));
				assert_string_equal(jstr(l, "status"), "completed");
				rs = json_object_get(l, "responses");
				assert_int_equal(json_array_size(rs), SIM_N);
				for (int i = 0; i < SIM_N; i++) {
					int known = 0;
					users[i] = jstr(json_array_get(rs, (size_t)i), "user_id");
					for (int j = 0; j < i; j++)
						assert_string_not_equal(users[i], users[j]);
					for (int v = 0; v < NUSERS; v++)
						known |= strcmp(users[i], w->ann[v].id) == 0;
					assert_true(known);
				}
				json_decref(l);
				lines++;
			}
		}
		assert_int_equal(lines, SIM_TASKS);
		tly_buf_free(&buf);
		tly_export_free(x);
	}
	/* the model agrees */
	for (int k = 0; k < SIM_TASKS; k++) {
		assert_int_equal(answers[k], SIM_N);
		assert_int_equal(leases[k], 0);
	}
	{
		json_t *p = NULL;
		OK(tly_project_get(w->t, &w->owner.a, prj, &p, &w->err));
		assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "counts"), "completed")), SIM_TASKS);
		json_decref(p);
	}
	json_decref(ids);
}

/* The project's counts, as GET /projects/{id} shows them, against a count
 * of its rows in SQL on a connection of its own. */
static void check_counts(struct world *w, const char *prj, int64_t project_row)
{
	static const char *const names[] = { "queued", "in_progress", "completed", "canceled" };
	int64_t want[4] = { 0 };
	sqlite3 *db;
	sqlite3_stmt *st;
	json_t *p = NULL, *c;

	assert_int_equal(sqlite3_open_v2(w->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT status, count(*) FROM tasks WHERE project_id=?1"
					    " GROUP BY status", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, project_row);
	while (sqlite3_step(st) == SQLITE_ROW)
		want[sqlite3_column_int(st, 0)] = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	sqlite3_close(db);
	OK(tly_project_get(w->t, &w->owner.a, prj, &p, &w->err));
	c = json_object_get(p, "counts");
	for (int i = 0; i < 4; i++)
		if (json_integer_value(json_object_get(c, names[i])) != want[i])
			fail_msg("counts.%s = %lld, the tasks table has %lld", names[i],
				 (long long)json_integer_value(json_object_get(c, names[i])),
				 (long long)want[i]);
	json_decref(p);
}

static int64_t newest_project_row(struct world *w)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t id = 0;

	assert_int_equal(sqlite3_open_v2(w->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT max(id) FROM projects", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return id;
}

/* Status counts are counters kept with every status change (not a scan):
 * after adds, a refused batch, claims, submits, a release, an expiry, a
 * cancel and tasks added by another connection, they equal the rows. */
static void test_counts_match_tasks(void **state)
{
	struct world *w = *state;
	char prj[32], other_prj[32];
	json_t *ids, *c[6], *o = NULL, *bad;
	struct tly *t2;
	int64_t row;

	make_project(w, 1, 1, 600, other_prj);
	make_project(w, 1, 2, 1, prj); /* the newest: its row id is the largest */
	row = newest_project_row(w);
	ids = keep(w, add_n_tasks(w, prj, 12));
	keep(w, add_n_tasks(w, other_prj, 5));
	check_counts(w, prj, row);
	/* a batch refused for its last task adds nothing, counts included */
	bad = J("[{'data':{'text':'ok'}},{'data':{'text':'ok too'}},{'data':{'nope':1}}]");
	EXPECT_RC(tly_tasks_add(w->t, &w->owner.a, prj, bad, &o, &w->err), TLY_EINVALID);
	json_decref(bad);
	check_counts(w, prj, row);
	for (int i = 0; i < 6; i++)
		c[i] = keep(w, claim(w, &w->ann[i], prj));
	check_counts(w, prj, row);
	for (int i = 0; i < 3; i++)
		keep(w, submit(w, &w->ann[i], claim_asg(c[i])));
	OK(tly_release(w->t, &w->ann[3].a, claim_asg(c[3]), &o, &w->err));
	json_decref(o);
	OK(tly_task_cancel(w->t, &w->owner.a, nth(ids, 11), &o, &w->err));
	json_decref(o);
	check_counts(w, prj, row);
	/* leases of 1 s run out; the next claim expires them */
	sleep(2);
	keep(w, claim(w, &w->ann[6], prj));
	check_counts(w, prj, row);
	/* another connection (another process, as the CLI would be) adds tasks */
	OK(tly_open(w->path, 0, &t2, &w->err));
	{
		json_t *more = J("[{'data':{'text':'x'}},{'data':{'text':'y'}}]"), *out = NULL;
		OK(tly_tasks_add(t2, &w->owner.a, prj, more, &out, &w->err));
		json_decref(more);
		json_decref(out);
	}
	tly_close(t2);
	check_counts(w, prj, row);
}

/* Answers one task of prj through handle t by annotator u (claim + submit)
 * and says whether a refit is then due. */
static int answer_one(struct world *w, struct tly *t, const struct user *u, const char *prj)
{
	json_t *c = NULL, *body = J(good_body), *out = NULL;
	char due[32];

	OK(tly_claim(t, &u->a, prj, &c, &w->err));
	assert_non_null(c);
	OK(tly_submit(t, &u->a, claim_asg(c), body, &out, &w->err));
	json_decref(out);
	json_decref(body);
	json_decref(c);
	if (!tly_refit_due(t, due))
		return 0;
	assert_string_equal(due, prj);
	assert_int_equal(tly_refit_due(t, due), 0); /* one at a time */
	return 1;
}

/* Refits come after refit_every answers, or a quarter of the project's
 * answers when that is more, counted from the project's counters: a new
 * handle (a restarted server) on a large project does not refit it after
 * refit_every answers. */
static void test_refit_spacing(void **state)
{
	struct world *w = *state;
	json_t *ids;
	struct tly *t2;
	char prj[32];
	int dues = 0, first = 0;

	create_project(w, "{'name':'R','fields':[{'name':'text','type':'text'}],"
		       " 'questions':[{'name':'sentiment','type':'choice','options':['positive','negative']}],"
		       " 'min_responses':2,'max_responses':2,'quality':{'refit_every':10}}", prj);
	ids = add_n_tasks(w, prj, 300);
	/* 400 answers through one handle: due at 10, 20, 30, 40 answers, then
	 * when the answers since the last reach a quarter of all */
	for (int i = 1; i <= 400; i++)
		if (answer_one(w, w->t, &w->ann[i % NUSERS], prj)) {
			dues++;
			if (!first)
				first = i;
		}
	assert_int_equal(first, 10);
	assert_true(dues >= 8 && dues <= 16);
	/* a new handle: 400 answers are in the project already, so the first
	 * refit is due when c new ones reach (400 + c) / 4, at c = 133 (the
	 * previous build: at c = 10) */
	OK(tly_open(w->path, 0, &t2, &w->err));
	first = 0;
	for (int i = 1; i <= 150 && !first; i++)
		if (answer_one(w, t2, &w->ann[i % NUSERS], prj))
			first = i;
	assert_int_equal(first, 133);
	tly_close(t2);
	json_decref(ids);
}

/* A refit whose write walk is about to begin when a task gets its last
 * answer (through another handle, as the server's executor would): the
 * store's begin, the first one of the refit, is wrapped to make that answer
 * first. */
static struct {
	struct world *w;
	const struct store_ops *real;
	const char *prj;
	int done;
} meanwhile;

static enum tly_code begin_after_an_answer(struct store *s, struct tly_err *err)
{
	if (!meanwhile.done) {
		struct world *w = meanwhile.w;
		struct tly *t2;
		meanwhile.done = 1;
		OK(tly_open(w->path, 0, &t2, &w->err));
		assert_int_equal(answer_one(w, t2, &w->ann[7], meanwhile.prj), 0);
		tly_close(t2);
	}
	return meanwhile.real->begin(s, err);
}

static void test_refit_answer_meanwhile(void **state)
{
	struct world *w = *state;
	json_t *ids, *out = NULL, *task;
	struct store *st = tly_store(w->t);
	struct store_ops wrapped;
	char prj[32];

	create_project(w, "{'name':'M','fields':[{'name':'text','type':'text'}],"
		       " 'questions':[{'name':'sentiment','type':'choice','options':['positive','negative']}],"
		       " 'min_responses':3,'max_responses':3}", prj);
	ids = add_n_tasks(w, prj, 4);
	/* tasks 0-2 get three answers, task 3 two: one more place left, task 3's */
	for (int i = 0; i < 11; i++)
		answer_one(w, w->t, &w->ann[i < 9 ? i % 3 : 3 + i - 9], prj);
	meanwhile.w = w;
	meanwhile.real = st->ops;
	meanwhile.prj = prj;
	meanwhile.done = 0;
	wrapped = *st->ops;
	wrapped.begin = begin_after_an_answer;
	st->ops = &wrapped;
	OK(tly_quality_refit(w->t, &w->owner.a, prj, &out, &w->err));
	st->ops = meanwhile.real;
	assert_int_equal(meanwhile.done, 1);
	json_decref(out);
	/* tasks 0-2: the model's posterior; task 3 keeps the consensus of its
	 * three answers (its third came after the model read two) */
	for (int i = 0; i < 4; i++) {
		OK(tly_task_get(w->t, &w->owner.a, nth(ids, (size_t)i), &task, &w->err));
		json_t *e = json_object_get(json_object_get(task, "consensus"), "sentiment");
		int votes = 0;
		const char *k;
		json_t *v;
		json_object_foreach(json_object_get(e, "votes"), k, v)
			votes += (int)json_integer_value(v);
		assert_int_equal(votes, 3);
		assert_string_equal(jstr(e, "method"), i < 3 ? "dawid_skene" : "one_coin");
		json_decref(task);
	}
	OK(tly_quality_report(w->t, &w->owner.a, prj, 0, &out, &w->err));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "last_fit"),
							    "tasks_answered_meanwhile")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "last_fit"),
							    "tasks_updated")), 3);
	json_decref(out);
	json_decref(ids);
}

/* a submit with "next" leases the next task by the claim's rules; the claim
 * after it hands that lease back and writes nothing */
static void test_submit_next(void **state)
{
	struct world *w = *state;
	char prj[32], st[32];
	json_t *ids, *c, *c2, *c1;

	make_project(w, 1, 1, 600, prj);
	/* claim order: t1, t2 (priority 5), then t0, t3 */
	ids = add_tasks(w, prj,
			"[{'data':{'text':'t0'}},{'data':{'text':'t1'},'priority':5},"
			" {'data':{'text':'t2'},'priority':5},{'data':{'text':'t3'}}]");
	c = claim(w, &w->ann[0], prj);
	assert_string_equal(claim_task(c), nth(ids, 1));
	assert_int_equal(tly_claim_held(w->t), 0);
	assert_int_equal(submit_next_rc(w, &w->ann[0], claim_asg(c), "true"), TLY_OK);
	json_decref(c);
	/* t2 is ann0's now: the next annotator gets t0 */
	assert_string_equal(task_status(w, nth(ids, 2), st), "in_progress");
	c1 = claim(w, &w->ann[1], prj);
	assert_string_equal(claim_task(c1), nth(ids, 0));
	assert_int_equal(tly_claim_held(w->t), 0);
	c = claim(w, &w->ann[0], prj);
	assert_string_equal(claim_task(c), nth(ids, 2));
	assert_string_equal(jstr(json_object_get(json_object_get(c, "task"), "data"), "text"), "t2");
	assert_int_equal(tly_claim_held(w->t), 1);
	c2 = claim(w, &w->ann[0], prj); /* a retry: the same lease, byte for byte */
	assert_true(json_equal(c, c2));
	assert_int_equal(tly_claim_held(w->t), 1);
	json_decref(c2);
	assert_int_equal(submit_next_rc(w, &w->ann[0], claim_asg(c), "true"), TLY_OK);
	json_decref(c);
	c = claim(w, &w->ann[0], prj);
	assert_string_equal(claim_task(c), nth(ids, 3));
	assert_int_equal(tly_claim_held(w->t), 1);
	/* nothing left for ann0 (t0 is ann1's): the submit stands, no lease */
	assert_int_equal(submit_next_rc(w, &w->ann[0], claim_asg(c), "true"), TLY_OK);
	json_decref(c);
	assert_string_equal(task_status(w, nth(ids, 3), st), "completed");
	assert_null(claim(w, &w->ann[0], prj));
	assert_int_equal(tly_claim_held(w->t), 0);
	/* t0 released comes back to ann0 through a claim that leases */
	{
		json_t *o = NULL;
		OK(tly_release(w->t, &w->ann[1].a, claim_asg(c1), &o, &w->err));
		json_decref(o);
	}
	c = claim(w, &w->ann[0], prj);
	assert_string_equal(claim_task(c), nth(ids, 0));
	assert_int_equal(tly_claim_held(w->t), 0);
	json_decref(c);
	json_decref(c1);
	json_decref(ids);
}

/* "next" keeps every rule of the claim: never a task answered before, never
 * past max_responses, never a canceled one; a bad value writes nothing */
static void test_submit_next_rules(void **state)
{
	struct world *w = *state;
	char prj[32], prj2[32], st[32];
	json_t *ids, *ids2, *c, *c1, *o = NULL;

	make_project(w, 2, 2, 600, prj);
	ids = add_n_tasks(w, prj, 2);
	c = claim(w, &w->ann[0], prj);
	assert_string_equal(claim_task(c), nth(ids, 0));
	assert_int_equal(submit_next_rc(w, &w->ann[0], claim_asg(c), "'yes'"), TLY_EINVALID);
	assert_string_equal(w->err.field, "next");
	assert_int_equal(submit_next_rc(w, &w->ann[0], claim_asg(c), "1"), TLY_EINVALID);
	/* nothing of the refused submits was kept: no response, no lease */
	assert_int_equal(response_count(w, nth(ids, 0)), 0);
	assert_string_equal(task_status(w, nth(ids, 1), st), "queued");
	assert_int_equal(submit_next_rc(w, &w->ann[0], claim_asg(c), "true"), TLY_OK);
	json_decref(c);
	c = claim(w, &w->ann[0], prj);
	assert_string_equal(claim_task(c), nth(ids, 1));
	assert_int_equal(tly_claim_held(w->t), 1);
	/* t0 still wants an answer, but not from ann0 */
	assert_int_equal(submit_next_rc(w, &w->ann[0], claim_asg(c), "true"), TLY_OK);
	json_decref(c);
	assert_null(claim(w, &w->ann[0], prj));
	assert_int_equal(response_count(w, nth(ids, 0)), 1);
	assert_int_equal(response_count(w, nth(ids, 1)), 1);
	/* "next": false and null lease nothing */
	c = claim(w, &w->ann[1], prj);
	assert_string_equal(claim_task(c), nth(ids, 0));
	assert_int_equal(submit_next_rc(w, &w->ann[1], claim_asg(c), "false"), TLY_OK);
	json_decref(c);
	c = claim(w, &w->ann[1], prj); /* t1, by a claim that leases it now */
	assert_string_equal(claim_task(c), nth(ids, 1));
	assert_int_equal(tly_claim_held(w->t), 0);
	json_decref(c);

	/* max_responses 1: a task leased to another is not leased again */
	make_project(w, 1, 1, 600, prj2);
	ids2 = add_n_tasks(w, prj2, 3);
	c = claim(w, &w->ann[2], prj2);
	c1 = claim(w, &w->ann[3], prj2);
	assert_string_equal(claim_task(c1), nth(ids2, 1));
	assert_int_equal(submit_next_rc(w, &w->ann[2], claim_asg(c), "true"), TLY_OK);
	json_decref(c);
	/* ann2 holds t2 now; canceled, the claim closes that lease and finds nothing */
	OK(tly_task_cancel(w->t, &w->owner.a, nth(ids2, 2), &o, &w->err));
	json_decref(o);
	assert_null(claim(w, &w->ann[2], prj2));
	assert_int_equal(tly_claim_held(w->t), 0);
	assert_int_equal(submit_next_rc(w, &w->ann[3], claim_asg(c1), "null"), TLY_OK);
	assert_string_equal(task_status(w, nth(ids2, 1), st), "completed");
	json_decref(c1);
	json_decref(ids2);
	json_decref(ids);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_claim_order),
		T(test_claim_order_many_users),
		T(test_never_same_task_twice),
		T(test_reclaim_same_lease),
		T(test_submit_next),
		T(test_submit_next_rules),
		T(test_release),
		T(test_max_responses),
		T(test_max_responses_two_tasks),
		T(test_lease_expiry_claim),
		T(test_lease_expiry_submit_first),
		T(test_heartbeat_extends),
		T(test_double_submit),
		T(test_foreign_assignment),
		T(test_canceled_not_claimable),
		T(test_cancel_then_reclaim),
		T(test_cancel_release_reclaim),
		T(test_completion_at_min),
		T(test_simulation),
		T(test_counts_match_tasks),
		T(test_refit_spacing),
		T(test_refit_answer_meanwhile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
