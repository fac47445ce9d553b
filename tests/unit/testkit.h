/* testkit.h — what the unit tests share: JSON written with single quotes,
 * string fields that must be there, plain SQL run or read, and a database in
 * a directory of its own (and a store open on it). Linked into every test binary; failures go
 * through cmocka. */
#ifndef TLY_TESTKIT_H
#define TLY_TESTKIT_H

#include <jansson.h>
#include <sqlite3.h>

#define TK_DIR_MAX 64
#define TK_PATH_MAX 128

/* Parses JSON written with ' for " (any value); fails the test on bad JSON. */
json_t *J(const char *sq);

/* o[key], which must be a string (else the test fails). */
const char *jstr(const json_t *o, const char *key);

/* Makes a fresh directory /tmp/tally-TAG.XXXXXX and puts the path of its
 * t.db in path: 0, or -1 when it cannot. */
int tk_db_dir(const char *tag, char dir[TK_DIR_MAX], char path[TK_PATH_MAX]);

/* Removes t.db, its -wal, -shm and -journal, then the directory. */
void tk_db_remove(const char *dir);

/* Runs sql (one or more statements) on db; fails the test with SQLite's
 * message when it cannot. */
void tk_sql_exec(sqlite3 *db, const char *sql);

/* The first column of the first row of sql, an integer; fails the test when
 * there is no row. */
sqlite3_int64 tk_sql_int(sqlite3 *db, const char *sql);

/* A cmocka fixture: a store open on a fresh t.db in a directory of its own. */
struct store;
struct tk_store {
	char dir[TK_DIR_MAX], path[TK_PATH_MAX];
	struct store *s;
};
int tk_store_setup(void **state, const char *tag); /* *state = a struct tk_store */
int tk_store_teardown(void **state);

#endif
