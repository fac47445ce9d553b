/* testkit.c — helpers shared by the unit tests (see testkit.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "testkit.h"

json_t *J(const char *sq)
{
	size_t n = strlen(sq);
	char *s = malloc(n + 1);
	json_error_t e;
	json_t *v;

	assert_non_null(s);
	for (size_t i = 0; i <= n; i++)
		s[i] = sq[i] == '\'' ? '"' : sq[i];
	v = json_loads(s, JSON_DECODE_ANY, &e);
	if (!v)
		fail_msg("test JSON does not parse: %s (%s)", s, e.text);
	free(s);
	return v;
}

const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	if (!s)
		fail_msg("\"%s\" is not a string", key);
	return s;
}

int tk_db_dir(const char *tag, char dir[TK_DIR_MAX], char path[TK_PATH_MAX])
{
	if (snprintf(dir, TK_DIR_MAX, "/tmp/tally-%s.XXXXXX", tag) >= TK_DIR_MAX || !mkdtemp(dir))
		return -1;
	return snprintf(path, TK_PATH_MAX, "%s/t.db", dir) < TK_PATH_MAX ? 0 : -1;
}

void tk_db_remove(const char *dir)
{
	static const char *const files[] = { "t.db", "t.db-wal", "t.db-shm", "t.db-journal" };
	char p[TK_PATH_MAX + 16];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		unlink(p);
	}
	rmdir(dir);
}

int tk_store_setup(void **state, const char *tag)
{
	struct tk_store *w = calloc(1, sizeof(*w));
	struct tly_err err;

	if (!w || tk_db_dir(tag, w->dir, w->path) != 0) {
		free(w);
		return -1;
	}
	tly_err_clear(&err);
	if (store_sqlite_open(w->path, 1, &w->s, &err) != TLY_OK) {
		tk_db_remove(w->dir);
		free(w);
		return -1;
	}
	*state = w;
	return 0;
}

int tk_store_teardown(void **state)
{
	struct tk_store *w = *state;

	w->s->ops->close(w->s);
	tk_db_remove(w->dir);
	free(w);
	return 0;
}

void tk_sql_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
}

sqlite3_int64 tk_sql_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	sqlite3_int64 v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}
