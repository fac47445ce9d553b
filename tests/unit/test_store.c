/* test_store.c — the library through its public API (tally.h) on a real
 * SQLite file: opening, organizations/users/keys, authentication, projects,
 * tasks (all or nothing, duplicates, pagination), isolation between
 * organizations, roles, exports and imports. Each test gets a fresh database
 * in its own mkdtemp directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tally.h"
#include "testkit.h"

/* ---- helpers ------------------------------------------------------------- */

static int is_timestamp(const char *s)
{
	/* 2026-11-23T20:30:00.000Z */
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	if (strlen(s) != sizeof(pat) - 1)
		return 0;
	for (size_t i = 0; pat[i]; i++)
		if (pat[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != pat[i])
			return 0;
	return 1;
}

#define EXPECT_RC(call, code, fieldstr)                                                        \
	do {                                                                                    \
		struct tly_err *e_ = &w->err;                                                   \
		tly_err_clear(e_);                                                              \
		enum tly_code rc_ = (call);                                                     \
		if (rc_ != (code))                                                              \
			fail_msg("%s: code %s (%s: %s), expected %s", #call, tly_code_name(rc_),  \
				 e_->field, e_->message, tly_code_name(code));                  \
		if ((fieldstr) && strcmp(e_->field, (fieldstr) ? (fieldstr) : "") != 0)         \
			fail_msg("%s: field \"%s\", expected \"%s\" (%s)", #call, e_->field,      \
				 (fieldstr) ? (fieldstr) : "", e_->message);                    \
	} while (0)

#define OK(call) EXPECT_RC(call, TLY_OK, NULL)

struct user {
	char id[32], key[TLY_KEY_MAX], key_id[32];
	struct tly_actor a;
};

struct world {
	char dir[TK_DIR_MAX], path[TK_PATH_MAX];
	struct tly *t;
	struct tly_err err;
	char org_a[32], org_b[32];
	struct user owner_a, mgr_a, rev_a, ann_a, owner_b, ann_b;
};

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

	if (!w)
		return -1;
	if (tk_db_dir("store", w->dir, w->path) != 0)
		return -1;
	if (tly_open(w->path, 1, &w->t, &w->err) != TLY_OK)
		return -1;
	*state = w;
	OK(tly_org_add(w->t, "Acme", w->org_a, &w->err));
	OK(tly_org_add(w->t, "Globex", w->org_b, &w->err));
	add_user(w, "Acme", "owner@acme.test", "owner", &w->owner_a);
	add_user(w, "Acme", "mgr@acme.test", "manager", &w->mgr_a);
	add_user(w, "Acme", "rev@acme.test", "reviewer", &w->rev_a);
	add_user(w, "Acme", "ann@acme.test", "annotator", &w->ann_a);
	add_user(w, w->org_b, "owner@globex.test", "owner", &w->owner_b);
	add_user(w, w->org_b, "ann@globex.test", "annotator", &w->ann_b);
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	if (!w)
		return 0;
	tly_close(w->t);
	tk_db_remove(w->dir);
	free(w);
	return 0;
}

static const char sentiment_schema[] =
	"{'name':'Sentiment','instructions':'Pick the feeling of the text.',"
	" 'fields':[{'name':'text','type':'text'}],"
	" 'questions':[{'name':'sentiment','type':'choice','options':['positive','negative','neutral']}],"
	" 'min_responses':1,'max_responses':1,'lease_seconds':600}";

/* Creates a project; writes its id to out. */
static void make_project(struct world *w, const struct tly_actor *a, const char *schema_sq,
			 char out[32])
{
	json_t *s = J(schema_sq), *p = NULL;

	OK(tly_project_create(w->t, a, s, &p, &w->err));
	snprintf(out, 32, "%s", jstr(p, "id"));
	json_decref(p);
	json_decref(s);
}

/* Adds tasks (single-quoted JSON array); returns the answer. */
static json_t *add_tasks(struct world *w, const struct tly_actor *a, const char *project,
			 const char *tasks_sq)
{
	json_t *tasks = J(tasks_sq), *out = NULL;

	OK(tly_tasks_add(w->t, a, project, tasks, &out, &w->err));
	json_decref(tasks);
	return out;
}

/* n simple tasks {"data":{"text":"t<i>"},"unique_id":"<prefix><i>"} */
static json_t *simple_tasks(int from, int n, const char *prefix)
{
	json_t *arr = json_array();
	char buf[64];

	for (int i = from; i < from + n; i++) {
		snprintf(buf, sizeof(buf), "%s%d", prefix, i);
		json_array_append_new(arr, json_pack("{s:{s:s},s:s}", "data", "text", buf,
						     "unique_id", buf));
	}
	return arr;
}

/* All tasks of a project, following the cursors with the given page size. */
static json_t *list_all(struct world *w, const struct tly_actor *a, const char *project,
			const char *status, int limit, int *pages)
{
	json_t *all = json_array();
	char cursor[64] = "";

	*pages = 0;
	for (;;) {
		json_t *page = NULL, *tasks, *next;
		OK(tly_task_list(w->t, a, project, status, cursor[0] ? cursor : NULL, limit, &page,
				 &w->err));
		(*pages)++;
		tasks = json_object_get(page, "tasks");
		assert_true(json_is_array(tasks));
		assert_true(json_array_size(tasks) <= (size_t)limit);
		json_array_extend(all, tasks);
		next = json_object_get(page, "next_cursor");
		assert_non_null(next);
		if (json_is_null(next)) {
			json_decref(page);
			break;
		}
		snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
		json_decref(page);
		assert_true(*pages < 100000);
	}
	return all;
}

/* Appends each line of b to lines: every line ends with a newline and is one
 * JSON object. */
static void append_lines(json_t *lines, const struct tly_buf *b)
{
	const char *p = b->p;
	size_t left = b->len;

	while (left > 0) {
		const char *nl = memchr(p, '\n', left);
		json_error_t e;
		assert_non_null(nl); /* every line ends with a newline */
		json_t *line = json_loadb(p, (size_t)(nl - p), 0, &e);
		if (!line || !json_is_object(line))
			fail_msg("export line is not a JSON object: %.*s (%s)", (int)(nl - p), p, e.text);
		json_array_append_new(lines, line);
		left -= (size_t)(nl - p) + 1;
		p = nl + 1;
	}
}

/* Runs an export to the end, reading with `threads` connections. */
static json_t *export_all_n(struct world *w, const struct tly_actor *a, const char *project,
			    const char *status, int batch, int threads, int *calls)
{
	struct tly_export *x = NULL;
	struct tly_buf buf;
	json_t *lines = json_array();
	int done = 0, n = 0;

	OK(tly_export_open(w->t, a, project, "jsonl", status, &x, &w->err));
	tly_export_threads(x, threads);
	tly_buf_init(&buf, 1 << 22);
	while (!done) {
		tly_buf_reset(&buf);
		OK(tly_export_next(x, &buf, batch, &done, &w->err));
		n++;
		assert_true(n < 100000);
		append_lines(lines, &buf);
	}
	tly_buf_free(&buf);
	tly_export_free(x);
	if (calls)
		*calls = n;
	return lines;
}

static json_t *export_all(struct world *w, const struct tly_actor *a, const char *project,
			  const char *status, int batch, int *calls)
{
	return export_all_n(w, a, project, status, batch, 1, calls);
}

static long long count_of(struct world *w, const struct tly_actor *a, const char *project,
			  const char *status)
{
	json_t *p = NULL;
	long long n;

	OK(tly_project_get(w->t, a, project, &p, &w->err));
	n = json_integer_value(json_object_get(json_object_get(p, "counts"), status));
	json_decref(p);
	return n;
}

static size_t ntasks(struct world *w, const char *project)
{
	int pages;
	json_t *all = list_all(w, &w->owner_a.a, project, NULL, 1000, &pages);
	size_t n = json_array_size(all);
	json_decref(all);
	return n;
}

/* ---- open ------------------------------------------------------------------ */

static void test_open_twice_keeps_data(void **state)
{
	struct world *w = *state;
	char prj[32], org_again[32];
	json_t *out, *orgs = NULL, *task = NULL;
	char tsk[32];
	int64_t org_id;

	make_project(w, &w->owner_a.a, sentiment_schema, prj);
	out = add_tasks(w, &w->owner_a.a, prj, "[{'data':{'text':'kept'},'unique_id':'k-1'}]");
	snprintf(tsk, sizeof(tsk), "%s", json_string_value(json_array_get(json_object_get(out, "created"), 0)));
	json_decref(out);

	/* "init" again on the same file: nothing lost, ids unchanged */
	tly_close(w->t);
	w->t = NULL;
	OK(tly_open(w->path, 1, &w->t, &w->err));
	OK(tly_org_list(w->t, &orgs, &w->err));
	assert_int_equal(json_array_size(orgs), 2);
	assert_string_equal(jstr(json_array_get(orgs, 0), "name"), "Acme");
	assert_string_equal(jstr(json_array_get(orgs, 0), "id"), w->org_a);
	assert_string_equal(jstr(json_array_get(orgs, 1), "id"), w->org_b);
	json_decref(orgs);
	OK(tly_org_resolve(w->t, w->org_a, &org_id, &w->err));
	assert_int_equal(org_id, w->owner_a.a.org_id);

	/* keys still authenticate */
	{
		struct tly_actor a;
		OK(tly_authenticate(w->t, w->ann_a.key, &a, &w->err));
		assert_int_equal(a.user_id, w->ann_a.a.user_id);
	}
	OK(tly_task_get(w->t, &w->owner_a.a, tsk, &task, &w->err));
	assert_string_equal(jstr(json_object_get(task, "data"), "text"), "kept");
	assert_string_equal(jstr(task, "project_id"), prj);
	json_decref(task);

	/* opening without create works on an existing database */
	tly_close(w->t);
	w->t = NULL;
	OK(tly_open(w->path, 0, &w->t, &w->err));
	assert_int_equal(ntasks(w, prj), 1);

	/* the org name is taken */
	EXPECT_RC(tly_org_add(w->t, "Acme", org_again, &w->err), TLY_ECONFLICT, "name");
	EXPECT_RC(tly_org_add(w->t, "org_x", org_again, &w->err), TLY_EINVALID, "name");
	EXPECT_RC(tly_org_add(w->t, "", org_again, &w->err), TLY_EINVALID, "name");
}

static void test_open_missing_without_create(void **state)
{
	struct world *w = *state;
	char p[192];
	struct tly *t2 = (struct tly *)1;

	snprintf(p, sizeof(p), "%s/absent.db", w->dir);
	tly_err_clear(&w->err);
	assert_int_not_equal(tly_open(p, 0, &t2, &w->err), TLY_OK);
	assert_null(t2);
	assert_true(w->err.message[0] != '\0');
	assert_int_equal(access(p, F_OK), -1); /* nothing created */
}

/* ---- users and keys -------------------------------------------------------------- */

static void test_authenticate(void **state)
{
	struct world *w = *state;
	struct tly_actor a;
	json_t *me = NULL;
	char bad[TLY_KEY_MAX];

	/* key shape: tly_ + 43 base64url characters */
	assert_int_equal(strlen(w->ann_a.key), 4 + 43);
	assert_memory_equal(w->ann_a.key, "tly_", 4);
	assert_int_equal(strncmp(w->ann_a.key_id, "key_", 4), 0);

	OK(tly_authenticate(w->t, w->ann_a.key, &a, &w->err));
	assert_int_equal(a.role, TLY_ROLE_ANNOTATOR);
	assert_int_equal(a.org_id, w->owner_a.a.org_id);
	assert_int_not_equal(a.org_id, w->owner_b.a.org_id);
	OK(tly_me(w->t, &a, &me, &w->err));
	assert_string_equal(jstr(json_object_get(me, "user"), "id"), w->ann_a.id);
	assert_string_equal(jstr(json_object_get(me, "user"), "email"), "ann@acme.test");
	assert_string_equal(jstr(json_object_get(me, "org"), "id"), w->org_a);
	assert_string_equal(jstr(json_object_get(me, "org"), "name"), "Acme");
	assert_string_equal(jstr(me, "role"), "annotator");
	json_decref(me);

	/* every single-character change of the key is refused */
	for (size_t i = 4; i < strlen(w->ann_a.key); i++) {
		snprintf(bad, sizeof(bad), "%s", w->ann_a.key);
		bad[i] = bad[i] == 'A' ? 'B' : 'A';
		EXPECT_RC(tly_authenticate(w->t, bad, &a, &w->err), TLY_EUNAUTH, "");
		assert_int_equal(a.user_id, 0);
	}
	snprintf(bad, sizeof(bad), "%.20s", w->ann_a.key);
	EXPECT_RC(tly_authenticate(w->t, bad, &a, &w->err), TLY_EUNAUTH, "");
	{
		char longer[TLY_KEY_MAX + 8];
		snprintf(longer, sizeof(longer), "%sx", w->ann_a.key);
		EXPECT_RC(tly_authenticate(w->t, longer, &a, &w->err), TLY_EUNAUTH, "");
		memset(longer, 'A', sizeof(longer) - 1);
		memcpy(longer, "tly_", 4);
		longer[sizeof(longer) - 1] = '\0';
		EXPECT_RC(tly_authenticate(w->t, longer, &a, &w->err), TLY_EUNAUTH, "");
	}
	EXPECT_RC(tly_authenticate(w->t, "", &a, &w->err), TLY_EUNAUTH, "");
	EXPECT_RC(tly_authenticate(w->t, NULL, &a, &w->err), TLY_EUNAUTH, "");
	EXPECT_RC(tly_authenticate(w->t, w->ann_a.key + 4, &a, &w->err), TLY_EUNAUTH, "");

	/* the two orgs' owners are told apart */
	OK(tly_authenticate(w->t, w->owner_b.key, &a, &w->err));
	assert_int_equal(a.org_id, w->owner_b.a.org_id);
	assert_int_equal(a.role, TLY_ROLE_OWNER);
}

/* More keys than the key cache holds (1,024 in 4-way sets): each still
 * authenticates as its own user, again and again, and revoking one of them
 * in the middle of a full cache refuses that one only. */
#define MANY_KEYS 1200

static void test_key_cache_many(void **state)
{
	struct world *w = *state;
	static char key[MANY_KEYS][TLY_KEY_MAX], kid[MANY_KEYS][32];
	struct tly_actor a;

	for (int i = 0; i < MANY_KEYS; i++)
		OK(tly_key_create(w->t, i % 2 ? "ann@acme.test" : "mgr@acme.test", NULL, key[i], kid[i],
				  &w->err));
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < MANY_KEYS; i++) {
			OK(tly_authenticate(w->t, key[i], &a, &w->err));
			assert_int_equal(a.user_id, i % 2 ? w->ann_a.a.user_id : w->mgr_a.a.user_id);
			assert_int_equal(a.role, i % 2 ? TLY_ROLE_ANNOTATOR : TLY_ROLE_MANAGER);
		}
	OK(tly_key_revoke(w->t, kid[600], &w->err));
	for (int i = 0; i < MANY_KEYS; i++) {
		enum tly_code rc = tly_authenticate(w->t, key[i], &a, &w->err);
		assert_int_equal(rc, i == 600 ? TLY_EUNAUTH : TLY_OK);
	}
}

static void test_key_revoke(void **state)
{
	struct world *w = *state;
	struct tly_actor a;
	char key2[TLY_KEY_MAX], key2_id[32];

	/* a second key of the same user */
	OK(tly_key_create(w->t, "ann@acme.test", NULL, key2, key2_id, &w->err));
	assert_string_not_equal(key2, w->ann_a.key);
	assert_string_not_equal(key2_id, w->ann_a.key_id);
	OK(tly_authenticate(w->t, key2, &a, &w->err));

	OK(tly_key_revoke(w->t, w->ann_a.key_id, &w->err));
	EXPECT_RC(tly_authenticate(w->t, w->ann_a.key, &a, &w->err), TLY_EUNAUTH, "");
	OK(tly_authenticate(w->t, key2, &a, &w->err)); /* the other key lives on */
	assert_int_equal(a.user_id, w->ann_a.a.user_id);

	/* revoking twice, an unknown or malformed key id */
	EXPECT_RC(tly_key_revoke(w->t, w->ann_a.key_id, &w->err), TLY_ENOTFOUND, NULL);
	EXPECT_RC(tly_key_revoke(w->t, "key_zzzzzzzzzzzzz", &w->err), TLY_ENOTFOUND, NULL);
	EXPECT_RC(tly_key_revoke(w->t, w->ann_a.id, &w->err), TLY_ENOTFOUND, NULL); /* a usr_ id */

	/* keys for unknown users / foreign orgs */
	EXPECT_RC(tly_key_create(w->t, "nobody@acme.test", "Acme", key2, key2_id, &w->err),
		  TLY_ENOTFOUND, "user");
	EXPECT_RC(tly_key_create(w->t, "ann@acme.test", "Globex", key2, key2_id, &w->err),
		  TLY_ENOTFOUND, "org");
}

static void test_user_add_rules(void **state)
{
	struct world *w = *state;
	char id[32], id2[32], key[TLY_KEY_MAX], kid[32];
	struct tly_actor a;

	EXPECT_RC(tly_user_add(w->t, "Acme", "x@acme.test", "boss", NULL, id, &w->err), TLY_EINVALID, "role");
	EXPECT_RC(tly_user_add(w->t, "Acme", "not-an-email", "annotator", NULL, id, &w->err), TLY_EINVALID, "email");
	EXPECT_RC(tly_user_add(w->t, "Acme", "a@b@c", "annotator", NULL, id, &w->err), TLY_EINVALID, "email");
	EXPECT_RC(tly_user_add(w->t, "Acme", "x@acme.test", "annotator", "short", id, &w->err), TLY_EINVALID, "password");
	EXPECT_RC(tly_user_add(w->t, "Nope", "x@acme.test", "annotator", NULL, id, &w->err), TLY_ENOTFOUND, "org");

	/* the same person in a second org: same user id, key needs the org named */
	OK(tly_user_add(w->t, "Globex", "ann@acme.test", "manager", NULL, id2, &w->err));
	assert_string_equal(id2, w->ann_a.id);
	EXPECT_RC(tly_key_create(w->t, "ann@acme.test", NULL, key, kid, &w->err), TLY_ECONFLICT, NULL);
	OK(tly_key_create(w->t, "ann@acme.test", "Globex", key, kid, &w->err));
	OK(tly_authenticate(w->t, key, &a, &w->err));
	assert_int_equal(a.org_id, w->owner_b.a.org_id);
	assert_int_equal(a.role, TLY_ROLE_MANAGER);
	assert_int_equal(a.user_id, w->ann_a.a.user_id);
	/* the Acme key keeps its own org and role */
	OK(tly_authenticate(w->t, w->ann_a.key, &a, &w->err));
	assert_int_equal(a.org_id, w->owner_a.a.org_id);
	assert_int_equal(a.role, TLY_ROLE_ANNOTATOR);
}

static int buf_contains(const unsigned char *hay, size_t n, const void *needle, size_t m)
{
	return m > 0 && n >= m && memmem(hay, n, needle, m) != NULL;
}

static unsigned char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p = NULL;
	size_t cap = 0, len = 0, r;

	*n = 0;
	if (!f)
		return NULL;
	do {
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			p = realloc(p, cap);
			assert_non_null(p);
		}
		r = fread(p + len, 1, cap - len, f);
		len += r;
	} while (r > 0);
	fclose(f);
	*n = len;
	return p;
}

/* Only a hash of each key is kept: no column of api_keys holds the key (or
 * its secret part), the hash column is BLAKE2b-256 of the key, and the key
 * bytes appear nowhere in the database files. */
static void test_key_hash_stored(void **state)
{
	struct world *w = *state;
	const struct user *users[] = { &w->owner_a, &w->mgr_a, &w->rev_a, &w->ann_a,
				       &w->owner_b, &w->ann_b };
	sqlite3 *db;
	sqlite3_stmt *st;
	int rows = 0;

	assert_int_equal(sqlite3_open_v2(w->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT * FROM api_keys", -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int found_hash = 0;
		rows++;
		for (int c = 0; c < sqlite3_column_count(st); c++) {
			const unsigned char *v = sqlite3_column_blob(st, c);
			size_t n = (size_t)sqlite3_column_bytes(st, c);
			for (size_t u = 0; u < sizeof(users) / sizeof(users[0]); u++) {
				const char *key = users[u]->key;
				unsigned char h[32];
				if (v && buf_contains(v, n, key, strlen(key)))
					fail_msg("api_keys column %s holds a key", sqlite3_column_name(st, c));
				if (v && buf_contains(v, n, key + 4, strlen(key) - 4))
					fail_msg("api_keys column %s holds a key's secret",
						 sqlite3_column_name(st, c));
				crypto_generichash(h, sizeof(h), (const unsigned char *)key, strlen(key),
						   NULL, 0);
				if (v && n == sizeof(h) && memcmp(v, h, n) == 0) {
					assert_string_equal(sqlite3_column_name(st, c), "hash");
					found_hash++;
				}
			}
		}
		assert_int_equal(found_hash, 1);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_int_equal(rows, 6);

	/* and not anywhere in the files (main database and write-ahead log) */
	static const char *const suffix[] = { "", "-wal" };
	for (size_t f = 0; f < 2; f++) {
		char p[192];
		size_t n;
		unsigned char *bytes;
		snprintf(p, sizeof(p), "%s%s", w->path, suffix[f]);
		bytes = slurp(p, &n);
		for (size_t u = 0; bytes && u < sizeof(users) / sizeof(users[0]); u++)
			if (buf_contains(bytes, n, users[u]->key + 4, strlen(users[u]->key) - 4))
				fail_msg("%s holds the secret of a key", p);
		free(bytes);
	}
}

/* ---- projects ---------------------------------------------------------------------- */

static void test_project_create_and_list(void **state)
{
	struct world *w = *state;
	json_t *s = J(sentiment_schema), *p = NULL, *list = NULL, *got = NULL, *c;
	char id2[32];

	OK(tly_project_create(w->t, &w->mgr_a.a, s, &p, &w->err));
	assert_int_equal(strncmp(jstr(p, "id"), "prj_", 4), 0);
	assert_int_equal(strlen(jstr(p, "id")), 17);
	assert_string_equal(jstr(p, "name"), "Sentiment");
	assert_string_equal(jstr(p, "instructions"), "Pick the feeling of the text.");
	assert_int_equal(json_integer_value(json_object_get(p, "min_responses")), 1);
	assert_int_equal(json_integer_value(json_object_get(p, "lease_seconds")), 600);
	assert_true(json_is_true(json_object_get(json_array_get(json_object_get(p, "fields"), 0), "required")));
	assert_true(is_timestamp(jstr(p, "created_at")));
	c = json_object_get(p, "counts");
	assert_int_equal(json_object_size(c), 4);
	assert_int_equal(json_integer_value(json_object_get(c, "queued")), 0);
	assert_int_equal(json_integer_value(json_object_get(c, "in_progress")), 0);
	assert_int_equal(json_integer_value(json_object_get(c, "completed")), 0);
	assert_int_equal(json_integer_value(json_object_get(c, "canceled")), 0);

	/* GET gives the same object; every role may read */
	OK(tly_project_get(w->t, &w->ann_a.a, jstr(p, "id"), &got, &w->err));
	assert_true(json_equal(p, got));
	json_decref(got);

	make_project(w, &w->owner_a.a, sentiment_schema, id2);
	OK(tly_project_list(w->t, &w->ann_a.a, NULL, 100, &list, &w->err));
	assert_int_equal(json_array_size(json_object_get(list, "projects")), 2);
	assert_string_equal(jstr(json_array_get(json_object_get(list, "projects"), 0), "id"), jstr(p, "id"));
	assert_string_equal(jstr(json_array_get(json_object_get(list, "projects"), 1), "id"), id2);
	assert_true(json_is_null(json_object_get(list, "next_cursor")));
	json_decref(list);
	/* a page at a time: the cursor of a full page leads to the next */
	OK(tly_project_list(w->t, &w->ann_a.a, NULL, 1, &list, &w->err));
	assert_int_equal(json_array_size(json_object_get(list, "projects")), 1);
	assert_string_equal(jstr(json_array_get(json_object_get(list, "projects"), 0), "id"), jstr(p, "id"));
	assert_string_equal(jstr(list, "next_cursor"), jstr(p, "id"));
	OK(tly_project_list(w->t, &w->ann_a.a, jstr(list, "next_cursor"), 1, &got, &w->err));
	assert_int_equal(json_array_size(json_object_get(got, "projects")), 1);
	assert_string_equal(jstr(json_array_get(json_object_get(got, "projects"), 0), "id"), id2);
	json_decref(got);
	OK(tly_project_list(w->t, &w->ann_a.a, id2, 1, &got, &w->err));
	assert_int_equal(json_array_size(json_object_get(got, "projects")), 0);
	assert_true(json_is_null(json_object_get(got, "next_cursor")));
	json_decref(got);
	json_decref(list);
	EXPECT_RC(tly_project_list(w->t, &w->ann_a.a, NULL, 0, &got, &w->err), TLY_EBADREQ, "limit");
	assert_null(got);
	EXPECT_RC(tly_project_list(w->t, &w->ann_a.a, NULL, 1001, &got, &w->err), TLY_EBADREQ, "limit");
	EXPECT_RC(tly_project_list(w->t, &w->ann_a.a, "tsk_0000000000000", 10, &got, &w->err), TLY_EBADREQ,
		  "cursor");
	EXPECT_RC(tly_project_list(w->t, &w->ann_a.a, "nonsense", 10, &got, &w->err), TLY_EBADREQ, "cursor");

	/* a bad schema: invalid with its field, nothing created */
	{
		json_t *bad = J("{'name':'X','fields':[{'name':'t','type':'text'}],'questions':[{'name':'q','type':'choice','options':[]}]}");
		EXPECT_RC(tly_project_create(w->t, &w->mgr_a.a, bad, &got, &w->err), TLY_EINVALID,
			  "questions[0].options");
		assert_null(got);
		json_decref(bad);
		bad = J("[1]");
		EXPECT_RC(tly_project_create(w->t, &w->mgr_a.a, bad, &got, &w->err), TLY_EBADREQ, NULL);
		json_decref(bad);
		OK(tly_project_list(w->t, &w->mgr_a.a, NULL, 100, &list, &w->err));
		assert_int_equal(json_array_size(json_object_get(list, "projects")), 2);
		json_decref(list);
	}
	/* unknown and wrong-kind ids are not found */
	EXPECT_RC(tly_project_get(w->t, &w->ann_a.a, "prj_0000000000000", &got, &w->err), TLY_ENOTFOUND, NULL);
	EXPECT_RC(tly_project_get(w->t, &w->ann_a.a, w->org_a, &got, &w->err), TLY_ENOTFOUND, NULL);
	EXPECT_RC(tly_project_get(w->t, &w->ann_a.a, "", &got, &w->err), TLY_ENOTFOUND, NULL);
	json_decref(p);
	json_decref(s);
}

/* ---- tasks ---------------------------------------------------------------------- */

static void test_tasks_all_or_nothing(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *tasks, *out = (json_t *)1;

	make_project(w, &w->mgr_a.a, sentiment_schema, prj);
	tasks = J("[{'data':{'text':'one'},'unique_id':'u1'},{'data':{'text':'two'},'unique_id':'u2'},"
		  " {'data':{'txt':'three'},'unique_id':'u3'},{'data':{'text':'four'}}]");
	EXPECT_RC(tly_tasks_add(w->t, &w->mgr_a.a, prj, tasks, &out, &w->err), TLY_EINVALID,
		  "tasks[2].data.text");
	assert_int_equal(strncmp(w->err.message, "tasks[2].data.text:", 19), 0);
	assert_null(out);
	json_decref(tasks);
	assert_int_equal(ntasks(w, prj), 0);
	assert_int_equal(count_of(w, &w->mgr_a.a, prj, "queued"), 0);

	/* the good tasks of that batch were not kept: adding them now creates them */
	out = add_tasks(w, &w->mgr_a.a, prj, "[{'data':{'text':'one'},'unique_id':'u1'}]");
	assert_int_equal(json_array_size(json_object_get(out, "created")), 1);
	assert_int_equal(json_array_size(json_object_get(out, "duplicates")), 0);
	json_decref(out);
	assert_int_equal(ntasks(w, prj), 1);
}

struct bad_batch {
	const char *tasks;
	enum tly_code code;
	const char *field;
};

static const struct bad_batch bad_batches[] = {
	{ "{'data':{'text':'x'}}", TLY_EINVALID, "tasks" },
	{ "[]", TLY_EINVALID, "tasks" },
	{ "'tasks'", TLY_EINVALID, "tasks" },
	{ "[{'data':{'text':'x'}},5]", TLY_EINVALID, "tasks[1]" },
	{ "[{'data':{'text':'x'},'colour':1}]", TLY_EINVALID, "tasks[0].colour" },
	{ "[{'text':'x'}]", TLY_EINVALID, "tasks[0].text" },
	{ "[{}]", TLY_EINVALID, "tasks[0].data" },
	{ "[{'data':'x'}]", TLY_EINVALID, "tasks[0].data" },
	{ "[{'data':{'text':5}}]", TLY_EINVALID, "tasks[0].data.text" },
	{ "[{'data':{'text':'x'}},{'data':{'text':'y'},'unique_id':''}]", TLY_EINVALID, "tasks[1].unique_id" },
	{ "[{'data':{'text':'x'},'unique_id':7}]", TLY_EINVALID, "tasks[0].unique_id" },
	{ "[{'data':{'text':'x'},'priority':'high'}]", TLY_EINVALID, "tasks[0].priority" },
	{ "[{'data':{'text':'x'},'priority':1.5}]", TLY_EINVALID, "tasks[0].priority" },
	{ "[{'data':{'text':'x'},'priority':'1'}]", TLY_EINVALID, "tasks[0].priority" },
	{ "[{'data':{'text':'x'},'priority':true}]", TLY_EINVALID, "tasks[0].priority" },
	{ "[{'data':{'text':'x'},'priority':1e3}]", TLY_EINVALID, "tasks[0].priority" },
	{ "[{'data':{'text':'x'},'metadata':[1]}]", TLY_EINVALID, "tasks[0].metadata" },
	{ "[{'data':{'text':'x'},'metadata':'m'}]", TLY_EINVALID, "tasks[0].metadata" },
};

static void test_tasks_bad_batches(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *out;

	make_project(w, &w->mgr_a.a, sentiment_schema, prj);
	for (size_t i = 0; i < sizeof(bad_batches) / sizeof(bad_batches[0]); i++) {
		json_t *tasks = J(bad_batches[i].tasks);
		tly_err_clear(&w->err);
		enum tly_code rc = tly_tasks_add(w->t, &w->mgr_a.a, prj, tasks, &out, &w->err);
		if (rc != bad_batches[i].code || strcmp(w->err.field, bad_batches[i].field) != 0)
			fail_msg("bad_batches[%zu]: %s field \"%s\" (%s), expected %s \"%s\"", i,
				 tly_code_name(rc), w->err.field, w->err.message,
				 tly_code_name(bad_batches[i].code), bad_batches[i].field);
		/* the message starts with the same path */
		if (strncmp(w->err.message, w->err.field, strlen(w->err.field)) != 0)
			fail_msg("bad_batches[%zu]: message \"%s\" does not start with \"%s\"", i,
				 w->err.message, w->err.field);
		assert_null(out);
		json_decref(tasks);
	}
	assert_int_equal(ntasks(w, prj), 0);

	/* unique_id: 256 bytes fine, 257 refused */
	{
		char uid[300];
		json_t *t1;
		memset(uid, 'u', 257);
		uid[257] = '\0';
		t1 = json_pack("[{s:{s:s},s:s}]", "data", "text", "x", "unique_id", uid);
		EXPECT_RC(tly_tasks_add(w->t, &w->mgr_a.a, prj, t1, &out, &w->err), TLY_EINVALID,
			  "tasks[0].unique_id");
		json_decref(t1);
		uid[256] = '\0';
		t1 = json_pack("[{s:{s:s},s:s}]", "data", "text", "x", "unique_id", uid);
		OK(tly_tasks_add(w->t, &w->mgr_a.a, prj, t1, &out, &w->err));
		assert_int_equal(json_array_size(json_object_get(out, "created")), 1);
		json_decref(out);
		json_decref(t1);
		assert_int_equal(ntasks(w, prj), 1);
	}

	/* edge values that are fine */
	out = add_tasks(w, &w->mgr_a.a, prj,
			"[{'data':{'text':'x'},'priority':9223372036854775807,'metadata':{'a':[1,{'b':null}]}},"
			" {'data':{'text':'y'},'priority':-9223372036854775808,'unique_id':null,'metadata':null},"
			" {'data':{'text':'z'},'priority':2147483648}]");
	assert_int_equal(json_array_size(json_object_get(out, "created")), 3);
	/* any 64-bit priority comes back as given */
	{
		static const json_int_t prios[] = { INT64_MAX, INT64_MIN, 2147483648LL };
		for (size_t i = 0; i < 3; i++) {
			json_t *task = NULL;
			OK(tly_task_get(w->t, &w->mgr_a.a,
					json_string_value(json_array_get(json_object_get(out, "created"), i)),
					&task, &w->err));
			assert_true(json_integer_value(json_object_get(task, "priority")) == prios[i]);
			json_decref(task);
		}
	}
	json_decref(out);
}

static void test_tasks_batch_limit(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *tasks, *out = NULL;

	make_project(w, &w->mgr_a.a, sentiment_schema, prj);
	tasks = simple_tasks(0, TLY_MAX_BATCH + 1, "b-");
	EXPECT_RC(tly_tasks_add(w->t, &w->mgr_a.a, prj, tasks, &out, &w->err), TLY_EINVALID, "tasks");
	assert_null(out);
	assert_int_equal(ntasks(w, prj), 0);
	/* exactly the limit is fine */
	json_array_remove(tasks, TLY_MAX_BATCH);
	OK(tly_tasks_add(w->t, &w->mgr_a.a, prj, tasks, &out, &w->err));
	assert_int_equal(json_array_size(json_object_get(out, "created")), TLY_MAX_BATCH);
	json_decref(out);
	json_decref(tasks);
	assert_int_equal(count_of(w, &w->mgr_a.a, prj, "queued"), TLY_MAX_BATCH);
}

static void test_tasks_duplicates(void **state)
{
	struct world *w = *state;
	char prj[32], prj2[32];
	json_t *out, *created, *dups, *d;
	char id1[32], id2[32];

	make_project(w, &w->mgr_a.a, sentiment_schema, prj);
	/* repeated within one batch */
	out = add_tasks(w, &w->mgr_a.a, prj,
			"[{'data':{'text':'a'},'unique_id':'a-1'},{'data':{'text':'b'},'unique_id':'a-2'},"
			" {'data':{'text':'a again'},'unique_id':'a-1'},{'data':{'text':'no uid'}},"
			" {'data':{'text':'no uid'}}]");
	created = json_object_get(out, "created");
	dups = json_object_get(out, "duplicates");
	assert_int_equal(json_array_size(created), 4);
	assert_int_equal(json_array_size(dups), 1);
	snprintf(id1, sizeof(id1), "%s", json_string_value(json_array_get(created, 0)));
	snprintf(id2, sizeof(id2), "%s", json_string_value(json_array_get(created, 1)));
	d = json_array_get(dups, 0);
	assert_int_equal(json_object_size(d), 2);
	assert_string_equal(jstr(d, "unique_id"), "a-1");
	assert_string_equal(jstr(d, "id"), id1);
	json_decref(out);

	/* across batches */
	out = add_tasks(w, &w->mgr_a.a, prj,
			"[{'data':{'text':'b2'},'unique_id':'a-2'},{'data':{'text':'c'},'unique_id':'a-3'},"
			" {'data':{'text':'a3'},'unique_id':'a-1'}]");
	created = json_object_get(out, "created");
	dups = json_object_get(out, "duplicates");
	assert_int_equal(json_array_size(created), 1);
	assert_int_equal(json_array_size(dups), 2);
	assert_string_equal(jstr(json_array_get(dups, 0), "unique_id"), "a-2");
	assert_string_equal(jstr(json_array_get(dups, 0), "id"), id2);
	assert_string_equal(jstr(json_array_get(dups, 1), "unique_id"), "a-1");
	assert_string_equal(jstr(json_array_get(dups, 1), "id"), id1);
	json_decref(out);
	assert_int_equal(ntasks(w, prj), 5);

	/* the first data was kept, not the duplicate's */
	{
		json_t *task = NULL;
		OK(tly_task_get(w->t, &w->mgr_a.a, id1, &task, &w->err));
		assert_string_equal(jstr(json_object_get(task, "data"), "text"), "a");
		json_decref(task);
	}

	/* a batch of only duplicates creates nothing and succeeds */
	out = add_tasks(w, &w->mgr_a.a, prj, "[{'data':{'text':'z'},'unique_id':'a-3'}]");
	assert_int_equal(json_array_size(json_object_get(out, "created")), 0);
	assert_int_equal(json_array_size(json_object_get(out, "duplicates")), 1);
	json_decref(out);

	/* unique ids are per project */
	make_project(w, &w->mgr_a.a, sentiment_schema, prj2);
	out = add_tasks(w, &w->mgr_a.a, prj2, "[{'data':{'text':'a'},'unique_id':'a-1'}]");
	assert_int_equal(json_array_size(json_object_get(out, "created")), 1);
	assert_int_equal(json_array_size(json_object_get(out, "duplicates")), 0);
	assert_string_not_equal(json_string_value(json_array_get(json_object_get(out, "created"), 0)), id1);
	json_decref(out);
}

static void test_task_object(void **state)
{
	struct world *w = *state;
	char prj[32], tsk[32];
	json_t *out, *task = NULL, *page = NULL, *listed;

	make_project(w, &w->mgr_a.a, sentiment_schema, prj);
	out = add_tasks(w, &w->mgr_a.a, prj,
			"[{'data':{'text':'h\xc3\xa9llo \\'quoted\\' \\n line'},'unique_id':'u-\\u2028-1',"
			"  'priority':7,'metadata':{'source':'web','n':3}}]");
	snprintf(tsk, sizeof(tsk), "%s", json_string_value(json_array_get(json_object_get(out, "created"), 0)));
	json_decref(out);

	OK(tly_task_get(w->t, &w->rev_a.a, tsk, &task, &w->err));
	assert_string_equal(jstr(task, "id"), tsk);
	assert_int_equal(strncmp(tsk, "tsk_", 4), 0);
	assert_string_equal(jstr(task, "project_id"), prj);
	assert_string_equal(jstr(task, "unique_id"), "u-\xe2\x80\xa8-1");
	assert_int_equal(json_integer_value(json_object_get(task, "priority")), 7);
	assert_string_equal(jstr(json_object_get(task, "data"), "text"), "h\xc3\xa9llo \"quoted\" \n line");
	assert_string_equal(jstr(json_object_get(task, "metadata"), "source"), "web");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(task, "metadata"), "n")), 3);
	assert_string_equal(jstr(task, "status"), "queued");
	assert_int_equal(json_integer_value(json_object_get(task, "response_count")), 0);
	assert_true(is_timestamp(jstr(task, "created_at")));
	assert_true(json_is_array(json_object_get(task, "responses")));
	assert_int_equal(json_array_size(json_object_get(task, "responses")), 0);

	/* the listed object is the same without responses */
	OK(tly_task_list(w->t, &w->rev_a.a, prj, NULL, NULL, 10, &page, &w->err));
	listed = json_array_get(json_object_get(page, "tasks"), 0);
	assert_null(json_object_get(listed, "responses"));
	json_object_del(task, "responses");
	assert_true(json_equal(task, listed));
	assert_true(json_is_null(json_object_get(page, "next_cursor")));
	json_decref(page);
	json_decref(task);

	/* a task without metadata shows {} and unique_id null */
	out = add_tasks(w, &w->mgr_a.a, prj, "[{'data':{'text':'plain'}}]");
	OK(tly_task_get(w->t, &w->rev_a.a, json_string_value(json_array_get(json_object_get(out, "created"), 0)),
			&task, &w->err));
	assert_true(json_is_null(json_object_get(task, "unique_id")));
	assert_true(json_is_object(json_object_get(task, "metadata")));
	assert_int_equal(json_object_size(json_object_get(task, "metadata")), 0);
	assert_int_equal(json_integer_value(json_object_get(task, "priority")), 0);
	json_decref(task);
	json_decref(out);

	/* wrong kind and unknown ids */
	EXPECT_RC(tly_task_get(w->t, &w->rev_a.a, prj, &task, &w->err), TLY_ENOTFOUND, NULL);
	EXPECT_RC(tly_task_get(w->t, &w->rev_a.a, "tsk_0000000000000", &task, &w->err), TLY_ENOTFOUND, NULL);
	EXPECT_RC(tly_task_get(w->t, &w->rev_a.a, NULL, &task, &w->err), TLY_ENOTFOUND, NULL);
}

static void test_pagination(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *tasks, *out, *created, *all;
	int pages;
	static const int limits[] = { 1, 7, 50, 100, 249, 250, 251, 1000 };

	make_project(w, &w->mgr_a.a, sentiment_schema, prj);
	tasks = simple_tasks(0, 250, "p-");
	OK(tly_tasks_add(w->t, &w->mgr_a.a, prj, tasks, &out, &w->err));
	json_decref(tasks);
	created = json_object_get(out, "created");
	assert_int_equal(json_array_size(created), 250);

	for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
		int limit = limits[l];
		all = list_all(w, &w->rev_a.a, prj, NULL, limit, &pages);
		/* every task once, in id (= creation) order */
		assert_int_equal(json_array_size(all), 250);
		for (size_t i = 0; i < 250; i++) {
			json_t *t = json_array_get(all, i);
			assert_string_equal(jstr(t, "id"), json_string_value(json_array_get(created, i)));
			char uid[16];
			snprintf(uid, sizeof(uid), "p-%zu", i);
			assert_string_equal(jstr(t, "unique_id"), uid);
		}
		/* a full last page costs one extra (empty) page, never more */
		assert_int_equal(pages, 250 / limit + 1);
		json_decref(all);
	}

	/* status filter: cancel every 10th task */
	for (size_t i = 0; i < 250; i += 10) {
		json_t *c = NULL;
		OK(tly_task_cancel(w->t, &w->mgr_a.a, json_string_value(json_array_get(created, i)), &c, &w->err));
		assert_string_equal(jstr(c, "status"), "canceled");
		json_decref(c);
	}
	all = list_all(w, &w->rev_a.a, prj, "canceled", 4, &pages);
	assert_int_equal(json_array_size(all), 25);
	for (size_t i = 0; i < 25; i++) {
		assert_string_equal(jstr(json_array_get(all, i), "id"),
				    json_string_value(json_array_get(created, i * 10)));
		assert_string_equal(jstr(json_array_get(all, i), "status"), "canceled");
	}
	json_decref(all);
	all = list_all(w, &w->rev_a.a, prj, "queued", 1000, &pages);
	assert_int_equal(json_array_size(all), 225);
	json_decref(all);
	all = list_all(w, &w->rev_a.a, prj, "completed", 1000, &pages);
	assert_int_equal(json_array_size(all), 0);
	json_decref(all);
	assert_int_equal(count_of(w, &w->rev_a.a, prj, "canceled"), 25);
	assert_int_equal(count_of(w, &w->rev_a.a, prj, "queued"), 225);

	/* bad parameters */
	{
		json_t *page = NULL;
		EXPECT_RC(tly_task_list(w->t, &w->rev_a.a, prj, "done", NULL, 10, &page, &w->err), TLY_EBADREQ, "status");
		EXPECT_RC(tly_task_list(w->t, &w->rev_a.a, prj, NULL, "garbage", 10, &page, &w->err), TLY_EBADREQ, "cursor");
		EXPECT_RC(tly_task_list(w->t, &w->rev_a.a, prj, NULL, prj, 10, &page, &w->err), TLY_EBADREQ, "cursor");
		EXPECT_RC(tly_task_list(w->t, &w->rev_a.a, prj, NULL, NULL, 0, &page, &w->err), TLY_EBADREQ, "limit");
		EXPECT_RC(tly_task_list(w->t, &w->rev_a.a, prj, NULL, NULL, 1001, &page, &w->err), TLY_EBADREQ, "limit");
		assert_null(page);
	}
	json_decref(out);
}

static void test_cancel(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *out, *c = NULL;
	const char *tsk;

	make_project(w, &w->mgr_a.a, sentiment_schema, prj);
	out = add_tasks(w, &w->mgr_a.a, prj, "[{'data':{'text':'x'}},{'data':{'text':'y'}}]");
	tsk = json_string_value(json_array_get(json_object_get(out, "created"), 0));
	EXPECT_RC(tly_task_cancel(w->t, &w->rev_a.a, tsk, &c, &w->err), TLY_EFORBIDDEN, NULL);
	EXPECT_RC(tly_task_cancel(w->t, &w->owner_b.a, tsk, &c, &w->err), TLY_ENOTFOUND, NULL);
	OK(tly_task_cancel(w->t, &w->mgr_a.a, tsk, &c, &w->err));
	assert_string_equal(jstr(c, "status"), "canceled");
	assert_string_equal(jstr(c, "id"), tsk);
	json_decref(c);
	/* cancelling again is harmless */
	OK(tly_task_cancel(w->t, &w->mgr_a.a, tsk, &c, &w->err));
	json_decref(c);
	assert_int_equal(count_of(w, &w->mgr_a.a, prj, "canceled"), 1);
	assert_int_equal(count_of(w, &w->mgr_a.a, prj, "queued"), 1);
	json_decref(out);
}

/* ---- isolation and roles ---------------------------------------------------------- */

static void test_org_isolation(void **state)
{
	struct world *w = *state;
	char prj[32], tsk[32], prj_b[32];
	json_t *out, *o = NULL, *tasks = J("[{'data':{'text':'x'}}]");
	struct tly_export *x = NULL;
	struct tly_import *im = NULL;
	const struct tly_actor *outsiders[] = { &w->owner_b.a, &w->ann_b.a };

	make_project(w, &w->owner_a.a, sentiment_schema, prj);
	out = add_tasks(w, &w->owner_a.a, prj, "[{'data':{'text':'secret'},'unique_id':'s-1'}]");
	snprintf(tsk, sizeof(tsk), "%s", json_string_value(json_array_get(json_object_get(out, "created"), 0)));
	json_decref(out);
	make_project(w, &w->owner_b.a, sentiment_schema, prj_b);

	for (size_t i = 0; i < 2; i++) {
		const struct tly_actor *b = outsiders[i];
		EXPECT_RC(tly_project_get(w->t, b, prj, &o, &w->err), TLY_ENOTFOUND, NULL);
		EXPECT_RC(tly_tasks_add(w->t, b, prj, tasks, &o, &w->err), TLY_ENOTFOUND, NULL);
		EXPECT_RC(tly_task_list(w->t, b, prj, NULL, NULL, 10, &o, &w->err), TLY_ENOTFOUND, NULL);
		EXPECT_RC(tly_task_get(w->t, b, tsk, &o, &w->err), TLY_ENOTFOUND, NULL);
		EXPECT_RC(tly_task_cancel(w->t, b, tsk, &o, &w->err), TLY_ENOTFOUND, NULL);
		EXPECT_RC(tly_export_open(w->t, b, prj, "jsonl", NULL, &x, &w->err), TLY_ENOTFOUND, NULL);
		assert_null(x);
		EXPECT_RC(tly_import_begin(w->t, b, prj, &im, &w->err), TLY_ENOTFOUND, NULL);
		assert_null(im);
		EXPECT_RC(tly_claim(w->t, b, prj, &o, &w->err), TLY_ENOTFOUND, NULL);
		assert_null(o);
		/* a message that does not tell "yours" from "absent" */
		assert_null(strstr(w->err.message, "forbidden"));
	}
	/* B's list shows only B's project; A's only A's */
	OK(tly_project_list(w->t, &w->ann_b.a, NULL, 100, &o, &w->err));
	assert_int_equal(json_array_size(json_object_get(o, "projects")), 1);
	assert_string_equal(jstr(json_array_get(json_object_get(o, "projects"), 0), "id"), prj_b);
	json_decref(o);
	OK(tly_project_list(w->t, &w->ann_a.a, NULL, 100, &o, &w->err));
	assert_int_equal(json_array_size(json_object_get(o, "projects")), 1);
	assert_string_equal(jstr(json_array_get(json_object_get(o, "projects"), 0), "id"), prj);
	json_decref(o);

	/* nothing of A's changed */
	assert_int_equal(ntasks(w, prj), 1);
	assert_int_equal(count_of(w, &w->owner_a.a, prj, "queued"), 1);
	json_decref(tasks);
}

static void test_roles(void **state)
{
	struct world *w = *state;
	json_t *s = J(sentiment_schema), *o = NULL, *tasks = J("[{'data':{'text':'x'}}]");
	char prj[32], tsk[32];
	struct tly_export *x = NULL;
	struct tly_import *im = NULL;

	EXPECT_RC(tly_project_create(w->t, &w->ann_a.a, s, &o, &w->err), TLY_EFORBIDDEN, "");
	assert_null(o);
	EXPECT_RC(tly_project_create(w->t, &w->rev_a.a, s, &o, &w->err), TLY_EFORBIDDEN, "");
	OK(tly_project_create(w->t, &w->mgr_a.a, s, &o, &w->err));
	snprintf(prj, sizeof(prj), "%s", jstr(o, "id"));
	json_decref(o);
	OK(tly_project_list(w->t, &w->ann_a.a, NULL, 100, &o, &w->err));
	assert_int_equal(json_array_size(json_object_get(o, "projects")), 1); /* the forbidden ones made nothing */
	json_decref(o);

	EXPECT_RC(tly_tasks_add(w->t, &w->ann_a.a, prj, tasks, &o, &w->err), TLY_EFORBIDDEN, NULL);
	EXPECT_RC(tly_tasks_add(w->t, &w->rev_a.a, prj, tasks, &o, &w->err), TLY_EFORBIDDEN, NULL);
	EXPECT_RC(tly_import_begin(w->t, &w->rev_a.a, prj, &im, &w->err), TLY_EFORBIDDEN, NULL);
	OK(tly_tasks_add(w->t, &w->mgr_a.a, prj, tasks, &o, &w->err));
	snprintf(tsk, sizeof(tsk), "%s", json_string_value(json_array_get(json_object_get(o, "created"), 0)));
	json_decref(o);

	/* reading tasks and exporting: reviewer and up */
	EXPECT_RC(tly_task_list(w->t, &w->ann_a.a, prj, NULL, NULL, 10, &o, &w->err), TLY_EFORBIDDEN, NULL);
	EXPECT_RC(tly_task_get(w->t, &w->ann_a.a, tsk, &o, &w->err), TLY_EFORBIDDEN, NULL);
	EXPECT_RC(tly_export_open(w->t, &w->ann_a.a, prj, "jsonl", NULL, &x, &w->err), TLY_EFORBIDDEN, NULL);
	OK(tly_task_list(w->t, &w->rev_a.a, prj, NULL, NULL, 10, &o, &w->err));
	json_decref(o);
	OK(tly_task_get(w->t, &w->rev_a.a, tsk, &o, &w->err));
	json_decref(o);
	OK(tly_export_open(w->t, &w->rev_a.a, prj, NULL, NULL, &x, &w->err));
	tly_export_free(x);
	/* reading projects and claiming: every role */
	OK(tly_project_get(w->t, &w->ann_a.a, prj, &o, &w->err));
	json_decref(o);
	OK(tly_claim(w->t, &w->ann_a.a, prj, &o, &w->err));
	assert_non_null(o);
	json_decref(o);

	assert_int_equal(tly_role_parse("manager"), TLY_ROLE_MANAGER);
	assert_int_equal(tly_role_parse("root"), TLY_ROLE_NONE);
	assert_string_equal(tly_role_name(TLY_ROLE_REVIEWER), "reviewer");
	json_decref(s);
	json_decref(tasks);
}

/* ---- export and import --------------------------------------------------------------- */

static const char *const export_keys[] = { "id", "unique_id", "data", "metadata", "consensus", "status", "responses" };
static const char *const response_keys[] = { "id", "user_id", "answers", "duration_ms", "created_at" };

static void assert_keys(const json_t *o, const char *const *keys, size_t n)
{
	assert_int_equal(json_object_size(o), n);
	for (size_t i = 0; i < n; i++)
		if (!json_object_get(o, keys[i]))
			fail_msg("missing key \"%s\"", keys[i]);
}

static void test_export(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *out, *created, *lines, *claim = NULL, *sub = NULL, *body;
	int calls;

	make_project(w, &w->mgr_a.a, sentiment_schema, prj);
	out = add_tasks(w, &w->mgr_a.a, prj,
			"[{'data':{'text':'first \\'q\\' \\n \xc3\xa9'},'unique_id':'e-\\'1','metadata':{'k':[1,2]}},"
			" {'data':{'text':'second'},'priority':5},"
			" {'data':{'text':'third'},'unique_id':'e-3'}]");
	created = json_object_get(out, "created");

	/* the annotator answers the highest-priority task (the second) */
	OK(tly_claim(w->t, &w->ann_a.a, prj, &claim, &w->err));
	assert_string_equal(jstr(json_object_get(claim, "task"), "id"),
			    json_string_value(json_array_get(created, 1)));
	body = J("{'answers':{'sentiment':'negative'},'duration_ms':1234}");
	OK(tly_submit(w->t, &w->ann_a.a, jstr(json_object_get(claim, "assignment"), "id"), body, &sub, &w->err));
	json_decref(body);

	lines = export_all(w, &w->rev_a.a, prj, NULL, 100, &calls);
	assert_int_equal(json_array_size(lines), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *l = json_array_get(lines, i);
		assert_keys(l, export_keys, 7);
		assert_string_equal(jstr(l, "id"), json_string_value(json_array_get(created, i)));
	}
	/* line 0: unique id and data with quotes, newline and non-ASCII come back intact */
	{
		json_t *l = json_array_get(lines, 0);
		assert_string_equal(jstr(l, "unique_id"), "e-\"1");
		assert_string_equal(jstr(json_object_get(l, "data"), "text"), "first \"q\" \n \xc3\xa9");
		assert_int_equal(json_integer_value(json_array_get(json_object_get(json_object_get(l, "metadata"), "k"), 1)), 2);
		assert_string_equal(jstr(l, "status"), "queued");
		assert_true(json_is_null(json_object_get(l, "consensus"))); /* no answer yet */
		assert_int_equal(json_array_size(json_object_get(l, "responses")), 0);
	}
	/* line 1: the response */
	{
		json_t *l = json_array_get(lines, 1), *r;
		assert_true(json_is_null(json_object_get(l, "unique_id")));
		assert_int_equal(json_object_size(json_object_get(l, "metadata")), 0);
		assert_string_equal(jstr(l, "status"), "completed");
		/* one answer: its label is the consensus */
		assert_string_equal(jstr(json_object_get(json_object_get(l, "consensus"), "sentiment"), "label"), "negative");
		assert_int_equal(json_array_size(json_object_get(l, "responses")), 1);
		r = json_array_get(json_object_get(l, "responses"), 0);
		assert_keys(r, response_keys, 5);
		assert_string_equal(jstr(r, "id"), jstr(json_object_get(sub, "response"), "id"));
		assert_int_equal(strncmp(jstr(r, "id"), "rsp_", 4), 0);
		assert_string_equal(jstr(r, "user_id"), w->ann_a.id);
		assert_string_equal(jstr(json_object_get(r, "answers"), "sentiment"), "negative");
		assert_int_equal(json_object_size(json_object_get(r, "answers")), 1);
		assert_int_equal(json_integer_value(json_object_get(r, "duration_ms")), 1234);
		assert_true(is_timestamp(jstr(r, "created_at")));
	}
	assert_string_equal(jstr(json_array_get(lines, 2), "unique_id"), "e-3");

	/* export matches task_get */
	{
		json_t *task = NULL, *l = json_array_get(lines, 1);
		OK(tly_task_get(w->t, &w->rev_a.a, jstr(l, "id"), &task, &w->err));
		assert_true(json_equal(json_object_get(task, "responses"), json_object_get(l, "responses")));
		assert_true(json_equal(json_object_get(task, "data"), json_object_get(l, "data")));
		json_decref(task);
	}

	/* batches of one give the same lines */
	{
		json_t *small = export_all(w, &w->rev_a.a, prj, NULL, 1, &calls);
		assert_true(json_equal(small, lines));
		assert_true(calls >= 3);
		json_decref(small);
	}
	/* status filter */
	{
		json_t *done = export_all(w, &w->rev_a.a, prj, "completed", 10, &calls);
		assert_int_equal(json_array_size(done), 1);
		assert_true(json_equal(json_array_get(done, 0), json_array_get(lines, 1)));
		json_decref(done);
		done = export_all(w, &w->rev_a.a, prj, "queued", 10, &calls);
		assert_int_equal(json_array_size(done), 2);
		json_decref(done);
	}
	/* bad format / status */
	{
		struct tly_export *x = NULL;
		EXPECT_RC(tly_export_open(w->t, &w->rev_a.a, prj, "csv", NULL, &x, &w->err), TLY_EBADREQ, "format");
		assert_null(x);
		EXPECT_RC(tly_export_open(w->t, &w->rev_a.a, prj, "jsonl", "done", &x, &w->err), TLY_EBADREQ, "status");
		assert_null(x);
	}
	/* a done export stays done */
	{
		struct tly_export *x = NULL;
		struct tly_buf b;
		int done = 0;
		tly_buf_init(&b, 1 << 20);
		OK(tly_export_open(w->t, &w->rev_a.a, prj, "jsonl", NULL, &x, &w->err));
		OK(tly_export_next(x, &b, 1000, &done, &w->err));
		assert_int_equal(done, 1);
		size_t len = b.len;
		OK(tly_export_next(x, &b, 1000, &done, &w->err));
		assert_int_equal(done, 1);
		assert_int_equal(b.len, len);
		tly_buf_free(&b);
		tly_export_free(x);
	}
	json_decref(lines);
	json_decref(claim);
	json_decref(sub);
	json_decref(out);
}

/* Exports through a buffer that holds only a line or two per call: every
 * line arrives once, whole; a single line over the cap is refused. */
/* The export walks tasks and responses side by side: with two projects'
 * tasks interleaved, 0 to 3 responses per task and a status filter, every
 * line must carry exactly its task's responses, as tly_task_get shows them. */
static void answer(struct world *w, const struct tly_actor *a, const char *prj, int label)
{
	json_t *claim = NULL, *sub = NULL, *body;

	OK(tly_claim(w->t, a, prj, &claim, &w->err));
	assert_non_null(claim);
	body = J(label ? "{'answers':{'sentiment':'negative'}}" : "{'answers':{'sentiment':'positive'}}");
	OK(tly_submit(w->t, a, jstr(json_object_get(claim, "assignment"), "id"), body, &sub, &w->err));
	json_decref(body);
	json_decref(claim);
	json_decref(sub);
}

static void test_export_merge_matches_task_get(void **state)
{
	static const char schema3[] =
		"{'name':'S3','fields':[{'name':'text','type':'text'}],"
		" 'questions':[{'name':'sentiment','type':'choice','options':['positive','negative']}],"
		" 'min_responses':3,'max_responses':3}";
	struct world *w = *state;
	const struct tly_actor *who[3] = { &w->ann_a.a, &w->rev_a.a, &w->mgr_a.a };
	char pa[32], pb[32];
	json_t *lines;
	int calls, with[4] = { 0 };

	make_project(w, &w->mgr_a.a, schema3, pa);
	make_project(w, &w->mgr_a.a, schema3, pb);
	for (int i = 0; i < 12; i++) { /* ids alternate between the projects */
		json_decref(add_tasks(w, &w->mgr_a.a, pa, "[{'data':{'text':'a'}}]"));
		json_decref(add_tasks(w, &w->mgr_a.a, pb, "[{'data':{'text':'b'}}]"));
	}
	/* A: the first annotator answers 9 tasks, the second 5, the third 2, so
	 * tasks hold 3, 2, 1 or 0 responses; B gets answers too, in between */
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < (k == 0 ? 9 : k == 1 ? 5 : 2); i++) {
			answer(w, who[k], pa, i % 2);
			answer(w, who[k], pb, (i + 1) % 2);
		}
	for (int b = 0; b < 3; b++) {
		const char *status = b == 0 ? NULL : b == 1 ? "completed" : "in_progress";
		lines = export_all(w, &w->rev_a.a, pa, status, b == 0 ? 5 : 100, &calls);
		for (size_t i = 0; i < json_array_size(lines); i++) {
			json_t *l = json_array_get(lines, i), *task = NULL;
			OK(tly_task_get(w->t, &w->rev_a.a, jstr(l, "id"), &task, &w->err));
			assert_true(json_equal(json_object_get(task, "responses"),
					       json_object_get(l, "responses")));
			assert_string_equal(jstr(l, "status"), jstr(task, "status"));
			if (b == 0)
				with[json_array_size(json_object_get(l, "responses"))]++;
			json_decref(task);
		}
		if (b == 0)
			assert_int_equal(json_array_size(lines), 12);
		if (b == 1) /* only the tasks with all 3 answers are completed */
			assert_int_equal(json_array_size(lines), 2);
		json_decref(lines);
	}
	/* every shape was there: 3, 2, 1 and 0 responses */
	assert_int_equal(with[3], 2);
	assert_int_equal(with[2], 3);
	assert_int_equal(with[1], 4);
	assert_int_equal(with[0], 3);
}

static void test_export_small_buffer(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *tasks = json_array(), *out = NULL, *lines, *got = json_array();
	struct tly_export *x = NULL;
	struct tly_buf buf;
	int done = 0, calls = 0;

	make_project(w, &w->mgr_a.a, sentiment_schema, prj);
	for (int i = 0; i < 40; i++) {
		char uid[32], text[64];
		/* control characters, backslashes and quotes in unique ids */
		snprintf(uid, sizeof(uid), "u\\%d\t\x01\"\n\x7f", i);
		snprintf(text, sizeof(text), "text number %d with some padding......", i);
		json_array_append_new(tasks, json_pack("{s:{s:s},s:s}", "data", "text", text,
						     "unique_id", uid));
	}
	OK(tly_tasks_add(w->t, &w->mgr_a.a, prj, tasks, &out, &w->err));
	lines = export_all(w, &w->mgr_a.a, prj, NULL, 1000, NULL);
	assert_int_equal(json_array_size(lines), 40);
	for (size_t i = 0; i < 40; i++)
		assert_string_equal(jstr(json_array_get(lines, i), "unique_id"),
				    jstr(json_array_get(tasks, i), "unique_id"));

	OK(tly_export_open(w->t, &w->mgr_a.a, prj, "jsonl", NULL, &x, &w->err));
	tly_buf_init(&buf, 300); /* one line is about 190 bytes */
	while (!done) {
		tly_buf_reset(&buf);
		OK(tly_export_next(x, &buf, 10, &done, &w->err));
		assert_true(++calls < 1000);
		append_lines(got, &buf);
	}
	assert_int_equal(json_array_size(got), 40);
	assert_true(json_equal(got, lines));
	assert_true(calls >= 40);
	json_decref(got);
	tly_buf_free(&buf);
	tly_export_free(x);

	/* a cap below one line */
	OK(tly_export_open(w->t, &w->mgr_a.a, prj, "jsonl", NULL, &x, &w->err));
	tly_buf_init(&buf, 64);
	EXPECT_RC(tly_export_next(x, &buf, 10, &done, &w->err), TLY_ETOOLARGE, NULL);
	assert_int_equal(buf.len, 0);
	tly_buf_free(&buf);
	tly_export_free(x);

	json_decref(lines);
	json_decref(out);
	json_decref(tasks);
}

/* Exports read by several connections at once (tly_export_threads): the
 * same lines in the same order as one connection gives, whatever the batch
 * size, the status filter or the number of threads; with another project's
 * tasks in between, tasks of 0 to 3 responses, lines cut by a small buffer,
 * a line over the cap in a helper's range, tasks added during the export, and
 * an export dropped half-way. */
static void test_export_threads(void **state)
{
	static const char schema3[] =
		"{'name':'S3','fields':[{'name':'text','type':'text'}],"
		" 'questions':[{'name':'sentiment','type':'choice','options':['positive','negative']}],"
		" 'min_responses':3,'max_responses':3}";
	static const char *const statuses[] = { NULL, "completed", "in_progress", "queued" };
	static const int batches[] = { 1, 7, 100, 1000 };
	static const int threads[] = { 2, 3, 8 };
	struct world *w = *state;
	const struct tly_actor *who[3] = { &w->ann_a.a, &w->rev_a.a, &w->mgr_a.a };
	char pa[32], pb[32], pc[32];
	struct tly_export *x = NULL;
	struct tly_buf buf;
	json_t *seq, *par;
	int calls, done = 0;

	make_project(w, &w->mgr_a.a, schema3, pa);
	make_project(w, &w->mgr_a.a, schema3, pb);
	for (int i = 0; i < 150; i++) { /* ids alternate between the projects */
		char data[64];
		snprintf(data, sizeof(data), "[{'data':{'text':'a%d'},'unique_id':'a-%d'}]", i, i);
		json_decref(add_tasks(w, &w->mgr_a.a, pa, data));
		json_decref(add_tasks(w, &w->mgr_a.a, pb, "[{'data':{'text':'b'}}]"));
	}
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < (k == 0 ? 30 : k == 1 ? 20 : 10); i++)
			answer(w, who[k], pa, i % 2);

	for (size_t s = 0; s < sizeof(statuses) / sizeof(*statuses); s++)
		for (size_t b = 0; b < sizeof(batches) / sizeof(*batches); b++) {
			seq = export_all(w, &w->rev_a.a, pa, statuses[s], batches[b], NULL);
			if (!statuses[s])
				assert_int_equal(json_array_size(seq), 150);
			else /* each status has some of the tasks */
				assert_true(json_array_size(seq) > 0 && json_array_size(seq) < 150);
			for (size_t t = 0; t < sizeof(threads) / sizeof(*threads); t++) {
				par = export_all_n(w, &w->rev_a.a, pa, statuses[s], batches[b],
						   threads[t], &calls);
				if (!json_equal(seq, par))
					fail_msg("status %s, batch %d, %d threads: %zu lines, not the %zu"
						 " of one thread (or not the same)",
						 statuses[s] ? statuses[s] : "any", batches[b], threads[t],
						 json_array_size(par), json_array_size(seq));
				/* one range per call: 150 tasks in batches of 7 are 22 ranges */
				if (!statuses[s] && batches[b] == 7)
					assert_true(calls >= 22);
				json_decref(par);
			}
			json_decref(seq);
		}

	/* a buffer the caller does not empty between calls: ranges read ahead are
	 * appended to it, not swapped in */
	{
		json_t *lines = json_array();
		seq = export_all(w, &w->rev_a.a, pa, NULL, 1000, NULL);
		OK(tly_export_open(w->t, &w->rev_a.a, pa, "jsonl", NULL, &x, &w->err));
		tly_export_threads(x, 3);
		tly_buf_init(&buf, 1 << 22);
		done = 0;
		for (calls = 0; !done; calls++) {
			assert_true(calls < 1000);
			OK(tly_export_next(x, &buf, 7, &done, &w->err));
		}
		append_lines(lines, &buf);
		assert_int_equal(calls, 22);
		assert_true(json_equal(seq, lines));
		json_decref(lines);
		json_decref(seq);
		tly_buf_free(&buf);
		tly_export_free(x);
	}

	/* a buffer of one or two lines: ranges are cut and go on in the caller;
	 * in A every other id is B's, in C (one import) the ids follow on */
	make_project(w, &w->mgr_a.a, schema3, pc);
	json_decref(add_tasks(w, &w->mgr_a.a, pc, "[{'data':{'text':'c'}},{'data':{'text':'cc'}},"
			      "{'data':{'text':'ccc'}},{'data':{'text':'cccc'}},{'data':{'text':'c5'}},"
			      "{'data':{'text':'c6'}},{'data':{'text':'c7'}},{'data':{'text':'c8'}},"
			      "{'data':{'text':'c9'}},{'data':{'text':'c10'}},{'data':{'text':'c11'}},"
			      "{'data':{'text':'c12'}},{'data':{'text':'c13'}},{'data':{'text':'c14'}}]"));
	for (int p = 0; p < 2; p++) {
		const char *prj = p ? pc : pa;
		seq = export_all(w, &w->rev_a.a, prj, NULL, 1000, NULL);
		OK(tly_export_open(w->t, &w->rev_a.a, prj, "jsonl", NULL, &x, &w->err));
		tly_export_threads(x, 2);
		tly_buf_init(&buf, 800); /* a line is 150 to 520 bytes */
		done = 0;
		json_t *got = json_array();
		while (!done) {
			tly_buf_reset(&buf);
			OK(tly_export_next(x, &buf, 10, &done, &w->err));
			append_lines(got, &buf);
		}
		assert_int_equal(json_array_size(got), p ? 14 : 150);
		assert_true(json_equal(got, seq));
		json_decref(got);
		tly_buf_free(&buf);
		tly_export_free(x);
		json_decref(seq);
	}

	/* a line over the cap in the second range (a helper's): its error comes back */
	{
		char big[2048], data[2200];
		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = 0;
		snprintf(data, sizeof(data), "[{'data':{'text':'%s'}}]", big);
		json_t *before = export_all(w, &w->rev_a.a, pb, NULL, 1000, NULL);
		json_decref(add_tasks(w, &w->mgr_a.a, pb, data)); /* B's task 151 */
		for (int i = 0; i < 170; i++) /* so that range 1 is not the last (the caller's) */
			json_decref(add_tasks(w, &w->mgr_a.a, pb, "[{'data':{'text':'b'}}]"));
		/* range 0 is B's first 150 tasks, range 1 starts with the big one, range 2 is the rest:
		 * whichever thread reads it (which one is up to the scheduler,
		 * so again and again), the error comes back, after range 0 */
		for (int round = 0; round < 20; round++) {
			json_t *lines = json_array();
			enum tly_code rc = TLY_OK;
			int n = 0;
			OK(tly_export_open(w->t, &w->rev_a.a, pb, "jsonl", NULL, &x, &w->err));
			tly_export_threads(x, 2 + round % 2);
			tly_buf_init(&buf, 1024);
			done = 0;
			while (!done && rc == TLY_OK && n++ < 1000) {
				tly_buf_reset(&buf);
				rc = tly_export_next(x, &buf, 150, &done, &w->err);
				if (rc == TLY_OK)
					append_lines(lines, &buf);
			}
			assert_int_equal(rc, TLY_ETOOLARGE);
			assert_int_equal(w->err.code, TLY_ETOOLARGE);
			assert_int_equal(json_array_size(before), 150);
			assert_true(json_equal(before, lines));
			json_decref(lines);
			tly_buf_free(&buf);
			tly_export_free(x);
		}
		json_decref(before);
	}

	/* tasks added while an export runs land in its last, open-ended range */
	{
		json_t *lines = json_array();
		OK(tly_export_open(w->t, &w->rev_a.a, pa, "jsonl", NULL, &x, &w->err));
		tly_export_threads(x, 2);
		tly_buf_init(&buf, 1 << 22);
		done = 0;
		for (int call = 0; !done; call++) {
			tly_buf_reset(&buf);
			OK(tly_export_next(x, &buf, 40, &done, &w->err));
			append_lines(lines, &buf);
			if (call == 0)
				for (int i = 0; i < 95; i++)
					json_decref(add_tasks(w, &w->mgr_a.a, pa,
							      "[{'data':{'text':'late'}}]"));
			assert_true(call < 1000);
		}
		seq = export_all(w, &w->rev_a.a, pa, NULL, 1000, NULL);
		assert_int_equal(json_array_size(seq), 245);
		assert_true(json_equal(seq, lines));
		json_decref(seq);
		json_decref(lines);
		tly_buf_free(&buf);
		tly_export_free(x);
	}

	/* dropped after one batch: the helpers stop, nothing leaks or hangs */
	OK(tly_export_open(w->t, &w->rev_a.a, pa, "jsonl", NULL, &x, &w->err));
	tly_export_threads(x, 3);
	tly_buf_init(&buf, 1 << 20);
	OK(tly_export_next(x, &buf, 5, &done, &w->err));
	assert_int_equal(done, 0);
	assert_true(buf.len > 0);
	tly_buf_free(&buf);
	tly_export_free(x);
}

/* an export of an empty project has no lines */
static void test_export_empty(void **state)
{
	struct world *w = *state;
	char prj[32];
	json_t *lines;
	int calls;

	make_project(w, &w->mgr_a.a, sentiment_schema, prj);
	lines = export_all(w, &w->owner_a.a, prj, NULL, 10, &calls);
	assert_int_equal(json_array_size(lines), 0);
	assert_int_equal(calls, 1);
	json_decref(lines);
}

static void test_import_rollback(void **state)
{
	struct world *w = *state;
	char prj[32];
	struct tly_import *im = NULL;
	json_t *tasks = simple_tasks(0, 5, "i-"), *bad = J("{'data':{'nope':1}}");
	long long nc = -1, nd = -1;
	int created;

	make_project(w, &w->mgr_a.a, sentiment_schema, prj);

	/* begun, filled, abandoned: nothing stays */
	OK(tly_import_begin(w->t, &w->mgr_a.a, prj, &im, &w->err));
	for (size_t i = 0; i < 5; i++) {
		OK(tly_import_add(im, json_array_get(tasks, i), &created, &w->err));
		assert_int_equal(created, 1);
	}
	EXPECT_RC(tly_import_add(im, bad, &created, &w->err), TLY_EINVALID, "data.text");
	assert_int_equal(created, 0);
	OK(tly_import_end(im, 0, &nc, &nd, &w->err));
	assert_int_equal(nc, 0);
	assert_int_equal(nd, 0);
	assert_int_equal(ntasks(w, prj), 0);
	assert_int_equal(count_of(w, &w->mgr_a.a, prj, "queued"), 0);

	/* the same import committed */
	OK(tly_import_begin(w->t, &w->mgr_a.a, prj, &im, &w->err));
	for (size_t i = 0; i < 5; i++)
		OK(tly_import_add(im, json_array_get(tasks, i), &created, &w->err));
	OK(tly_import_add(im, json_array_get(tasks, 0), &created, &w->err)); /* duplicate */
	assert_int_equal(created, 0);
	OK(tly_import_end(im, 1, &nc, &nd, &w->err));
	assert_int_equal(nc, 5);
	assert_int_equal(nd, 1);
	assert_int_equal(ntasks(w, prj), 5);

	/* and again: all duplicates */
	OK(tly_import_begin(w->t, &w->mgr_a.a, prj, &im, &w->err));
	for (size_t i = 0; i < 5; i++) {
		OK(tly_import_add(im, json_array_get(tasks, i), &created, &w->err));
		assert_int_equal(created, 0);
	}
	OK(tly_import_end(im, 1, &nc, &nd, &w->err));
	assert_int_equal(nc, 0);
	assert_int_equal(nd, 5);
	assert_int_equal(ntasks(w, prj), 5);

	/* after a rolled back import the store still takes writes */
	{
		json_t *out = add_tasks(w, &w->mgr_a.a, prj, "[{'data':{'text':'after'}}]");
		json_decref(out);
		assert_int_equal(ntasks(w, prj), 6);
	}
	json_decref(tasks);
	json_decref(bad);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_open_twice_keeps_data),
		T(test_open_missing_without_create),
		T(test_authenticate),
		T(test_key_revoke),
		T(test_key_cache_many),
		T(test_user_add_rules),
		T(test_key_hash_stored),
		T(test_project_create_and_list),
		T(test_tasks_all_or_nothing),
		T(test_tasks_bad_batches),
		T(test_tasks_batch_limit),
		T(test_tasks_duplicates),
		T(test_task_object),
		T(test_pagination),
		T(test_cancel),
		T(test_org_isolation),
		T(test_roles),
		T(test_export),
		T(test_export_small_buffer),
		T(test_export_merge_matches_task_get),
		T(test_export_empty),
		T(test_export_threads),
		T(test_import_rollback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
