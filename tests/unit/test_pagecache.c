/* test_pagecache.c — SQLite's page cache with its commit-time scan answered
 * by a bound (src/lib/pagecache.c). Checked: under a write load whose b-tree
 * balances swap pages through the temporary number, commits skip the scan
 * (and SQLite did move pages above the bound, so the tricky path ran); a
 * rollback of a transaction that grew the file still drops the pages past
 * its end; and through thousands of random transactions, some rolled back
 * whole and some to a savepoint, the database reads back exactly as a model
 * of it says, from the wrapped connection and from a fresh one, with
 * integrity_check ok. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagecache.h"
#include "testkit.h"

struct world {
	char dir[TK_DIR_MAX], path[TK_PATH_MAX];
	sqlite3 *db;
};

static void integrity_ok(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
}

static int group_setup(void **state)
{
	(void)state;
	/* before anything initializes SQLite, as the store does */
	return pagecache_install();
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	if (!w || tk_db_dir("pagecache", w->dir, w->path) != 0)
		return -1;
	if (sqlite3_open(w->path, &w->db) != SQLITE_OK)
		return -1;
	/* tally's settings: WAL, 8 MiB of cache */
	tk_sql_exec(w->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-8192;"
		       "CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT NOT NULL, v INTEGER NOT NULL);"
		       "CREATE INDEX t_k ON t(k);");
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	sqlite3_close(w->db);
	tk_db_remove(w->dir);
	free(w);
	return 0;
}

/* xorshift: the same sequence every run */
static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

#define KEYS 6000

/* the model: v[id], or -1 when row id is absent */
static long long model[KEYS];

static void key_of(int id, long long v, char *k, size_t n)
{
	/* index order unlike id order, so inserts land all over the index */
	snprintf(k, n, "%08llx-%d-%0*d", (unsigned long long)((uint64_t)id * 2654435761u % 4294967291u),
		 (int)(v % 7), (int)(v % 40), 0);
}

static void put(sqlite3 *db, int id, long long v)
{
	sqlite3_stmt *st = NULL;
	char k[96];

	key_of(id, v, k, sizeof(k));
	assert_int_equal(sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO t(id, k, v) VALUES(?1, ?2, ?3)",
					    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int(st, 1, id);
	sqlite3_bind_text(st, 2, k, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, v);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

static void del(sqlite3 *db, int id)
{
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, "DELETE FROM t WHERE id=?1", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int(st, 1, id);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

/* Every row, by id and through the index, against the model. */
static void matches_model(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int n = 0, expect = 0;
	char k[96];

	for (int i = 0; i < KEYS; i++)
		expect += model[i] >= 0;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT id, k, v FROM t ORDER BY id", -1, &st, NULL),
			 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int id = sqlite3_column_int(st, 0);
		assert_true(id >= 0 && id < KEYS);
		assert_int_equal(sqlite3_column_int64(st, 2), model[id]);
		key_of(id, model[id], k, sizeof(k));
		assert_string_equal((const char *)sqlite3_column_text(st, 1), k);
		n++;
	}
	sqlite3_finalize(st);
	assert_int_equal(n, expect);
	/* the index holds the same rows */
	assert_int_equal(tk_sql_int(db, "SELECT count(*) FROM t INDEXED BY t_k WHERE k > ''"), expect);
}

/* Commits of a changing table skip the scan; some moved pages above the
 * bound on the way, and they did not make a commit skip wrongly. */
static void test_commits_skip_the_scan(void **state)
{
	struct world *w = *state;
	struct pagecache_stats a, b;

	pagecache_counts(&a);
	for (int tx = 0; tx < 600; tx++) {
		tk_sql_exec(w->db, "BEGIN");
		for (int i = 0; i < 20; i++) {
			int id = (int)(rnd() % KEYS);
			if (rnd() % 4 == 0)
				del(w->db, id);
			else
				put(w->db, id, (long long)(rnd() % 1000000));
		}
		tk_sql_exec(w->db, "COMMIT");
	}
	pagecache_counts(&b);
	assert_true(b.moved_above > a.moved_above);
	/* nearly every commit (and read) ends without the scan */
	assert_true(b.skipped - a.skipped > 500);
	integrity_ok(w->db);
}

/* A transaction that grew the file and rolled back: its pages past the old
 * end go, and what is written next reads back right. */
static void test_rollback_drops_pages_past_the_end(void **state)
{
	struct world *w = *state;
	struct pagecache_stats a, b;
	sqlite3_int64 pages;
	sqlite3 *fresh = NULL;

	tk_sql_exec(w->db, "CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB)");
	pages = tk_sql_int(w->db, "PRAGMA page_count");
	pagecache_counts(&a);
	tk_sql_exec(w->db, "BEGIN; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 600)"
		       " INSERT INTO big(b) SELECT randomblob(3000) FROM c;");
	assert_true(tk_sql_int(w->db, "PRAGMA page_count") > pages + 500);
	tk_sql_exec(w->db, "ROLLBACK");
	pagecache_counts(&b);
	assert_true(b.passed > a.passed); /* this one had pages to drop */
	assert_int_equal(tk_sql_int(w->db, "PRAGMA page_count"), pages);
	/* the same page numbers, new content: what the cache holds is the new */
	tk_sql_exec(w->db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300)"
		       " INSERT INTO big(b) SELECT zeroblob(2500) FROM c");
	assert_int_equal(tk_sql_int(w->db, "SELECT count(*) FROM big"), 300);
	assert_int_equal(tk_sql_int(w->db, "SELECT sum(length(b)) FROM big"), 300 * 2500);
	assert_int_equal(tk_sql_int(w->db, "SELECT count(*) FROM big WHERE b != zeroblob(2500)"), 0);
	integrity_ok(w->db);
	assert_int_equal(sqlite3_open(w->path, &fresh), SQLITE_OK);
	assert_int_equal(tk_sql_int(fresh, "SELECT count(*) FROM big WHERE b = zeroblob(2500)"), 300);
	sqlite3_close(fresh);
}

/* Random transactions, some rolled back whole, some to a savepoint, against
 * the model; read back from the wrapped connection and a fresh one. */
static void test_random_transactions_match_a_model(void **state)
{
	struct world *w = *state;
	long long saved[KEYS];
	sqlite3 *fresh = NULL;

	for (int i = 0; i < KEYS; i++)
		model[i] = -1;
	for (int tx = 0; tx < 1500; tx++) {
		int rollback = rnd() % 8 == 0, to_savepoint = !rollback && rnd() % 6 == 0;
		int n = 1 + (int)(rnd() % 40);

		memcpy(saved, model, sizeof(model));
		tk_sql_exec(w->db, "BEGIN");
		for (int i = 0; i < n; i++) {
			int id = (int)(rnd() % KEYS);
			if (to_savepoint && i == n / 2) {
				tk_sql_exec(w->db, "SAVEPOINT sp");
				memcpy(saved, model, sizeof(model));
			}
			if (rnd() % 5 == 0) {
				del(w->db, id);
				model[id] = -1;
			} else {
				model[id] = (long long)(rnd() % 100000000);
				put(w->db, id, model[id]);
			}
		}
		if (to_savepoint && n / 2 < n) {
			tk_sql_exec(w->db, "ROLLBACK TO sp; RELEASE sp");
			memcpy(model, saved, sizeof(model));
		}
		if (rollback) {
			tk_sql_exec(w->db, "ROLLBACK");
			memcpy(model, saved, sizeof(model));
		} else {
			tk_sql_exec(w->db, "COMMIT");
		}
		if (tx % 250 == 249)
			matches_model(w->db);
	}
	matches_model(w->db);
	integrity_ok(w->db);
	assert_int_equal(sqlite3_open(w->path, &fresh), SQLITE_OK);
	matches_model(fresh);
	sqlite3_close(fresh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commits_skip_the_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_drops_pages_past_the_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_transactions_match_a_model, setup, teardown),
	};
	return cmocka_run_group_tests_name("pagecache", tests, group_setup, NULL);
}
