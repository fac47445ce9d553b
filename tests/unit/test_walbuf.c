/* test_walbuf.c — the VFS that gathers a transaction's WAL frames into one
 * write (src/lib/walbuf.c). Underneath it, in place of the default VFS, sits
 * a probe: the unix VFS with a WAL file's xWrite counted, and failed on
 * demand. Checked: a commit of many frames reaches the file in one or two
 * writes; what each commit wrote is what another connection reads, across
 * runs longer than the buffer and than the 128 KiB the unix VFS can take in
 * one write; and a write that fails when the run goes
 * out fails the commit, leaves readers on the state before it, and the next
 * commit works. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testkit.h"
#include "walbuf.h"

/* ---- the probe under walbuf ---------------------------------------------- */

static sqlite3_vfs probe_vfs, *unix_vfs;
static sqlite3_io_methods probe_wal_methods;
static const sqlite3_io_methods *unix_wal_methods;
static long wal_writes;       /* xWrite calls that reached a WAL file */
static long wal_bytes;
static int fail_wal_writes;   /* while set, a WAL write fails */

static int probe_write(sqlite3_file *p, const void *z, int n, sqlite3_int64 off)
{
	if (fail_wal_writes)
		return SQLITE_IOERR_WRITE;
	wal_writes++;
	wal_bytes += n;
	return unix_wal_methods->xWrite(p, z, n, off);
}

/* the unix file as it is, with a WAL file's xWrite replaced */
static int probe_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags, int *out)
{
	int rc = unix_vfs->xOpen(unix_vfs, name, p, flags, out);

	(void)vfs;
	if (rc == SQLITE_OK && (flags & SQLITE_OPEN_WAL) && p->pMethods) {
		unix_wal_methods = p->pMethods;
		probe_wal_methods = *p->pMethods;
		probe_wal_methods.xWrite = probe_write;
		p->pMethods = &probe_wal_methods;
	}
	return rc;
}

static int group_setup(void **state)
{
	(void)state;
	unix_vfs = sqlite3_vfs_find(NULL);
	if (!unix_vfs)
		return -1;
	probe_vfs = *unix_vfs;
	probe_vfs.zName = "probe";
	probe_vfs.pNext = NULL;
	probe_vfs.xOpen = probe_open;
	/* the default from now on: walbuf, registered on first use, wraps it */
	if (sqlite3_vfs_register(&probe_vfs, 1) != SQLITE_OK || !walbuf_vfs())
		return -1;
	return 0;
}

/* ---- a database per test: a writer through walbuf, a reader beside it ---- */

struct world {
	char dir[TK_DIR_MAX], path[TK_PATH_MAX];
	sqlite3 *w, *r;
};

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	if (!w)
		return -1;
	if (tk_db_dir("walbuf", w->dir, w->path) != 0)
		return -1;
	if (sqlite3_open_v2(w->path, &w->w, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			    walbuf_vfs()) != SQLITE_OK)
		return -1;
	tk_sql_exec(w->w, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
		      "PRAGMA wal_autocheckpoint=0;"
		      "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB NOT NULL);");
	/* the reader is another connection, through the probe alone */
	if (sqlite3_open_v2(w->path, &w->r, SQLITE_OPEN_READWRITE, "probe") != SQLITE_OK)
		return -1;
	fail_wal_writes = 0;
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	char cmd[160];

	sqlite3_close(w->r);
	sqlite3_close(w->w);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", w->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", w->dir);
	free(w);
	return 0;
}

/* a transaction of n rows of `size` bytes each, the byte being (id % 251) */
static int insert_rows(sqlite3 *db, int n, int size)
{
	sqlite3_stmt *st = NULL;
	unsigned char *v = malloc((size_t)size);
	int rc;

	assert_non_null(v);
	tk_sql_exec(db, "BEGIN");
	assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES(?1) RETURNING id", -1, &st,
					    NULL), SQLITE_OK);
	for (int i = 0; i < n; i++) {
		sqlite3_int64 id = tk_sql_int(db, "SELECT coalesce(max(id), 0) + 1 FROM t");
		memset(v, (int)(id % 251), (size_t)size);
		sqlite3_bind_blob(st, 1, v, size, SQLITE_TRANSIENT);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int64(st, 0), id);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	free(v);
	if ((rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* every row read through the reader holds its own byte, and the totals match */
static void check_rows(struct world *w, sqlite3_int64 rows, sqlite3_int64 bytes)
{
	assert_int_equal(tk_sql_int(w->r, "SELECT count(*) FROM t"), rows);
	assert_int_equal(tk_sql_int(w->r, "SELECT coalesce(sum(length(v)), 0) FROM t"), bytes);
	/* a row whose first or last byte is not id % 251 was read from a wrong frame */
	assert_int_equal(tk_sql_int(w->r, "SELECT count(*) FROM t WHERE"
				       " hex(substr(v, 1, 1)) != printf('%02X', id % 251) OR"
				       " hex(substr(v, -1, 1)) != printf('%02X', id % 251)"), 0);
}

static void test_a_commit_is_one_write(void **state)
{
	struct world *w = *state;
	long before;

	assert_int_equal(insert_rows(w->w, 1, 10), SQLITE_OK); /* the WAL's header and first frames */
	/* 20 rows of 3,000 bytes: a dozen and more pages, each two writes to SQLite */
	before = wal_writes;
	assert_int_equal(insert_rows(w->w, 20, 3000), SQLITE_OK);
	assert_true(wal_writes - before >= 1);
	assert_true(wal_writes - before <= 2);
	check_rows(w, 21, 10 + 20 * 3000);
	/* the same without walbuf (the reader's VFS): one write per header and per page */
	before = wal_writes;
	assert_int_equal(insert_rows(w->r, 20, 3000), SQLITE_OK);
	assert_true(wal_writes - before >= 30);
	check_rows(w, 41, 10 + 40 * 3000);
}

static void test_what_commits_is_what_readers_read(void **state)
{
	struct world *w = *state;
	sqlite3_int64 rows = 0, bytes = 0;
	/* row sizes and counts whose runs cross the 120 KiB buffer: 10 KiB of
	 * rows is about 3 frames, 200 KiB about 50 */
	static const int plan[][2] = { { 1, 10 },   { 5, 2000 }, { 40, 4000 }, { 50, 4096 },
				       { 2, 60000 }, { 7, 100 }, { 31, 4000 }, { 1, 200000 } };

	for (int round = 0; round < 3; round++)
		for (size_t i = 0; i < sizeof(plan) / sizeof(*plan); i++) {
			assert_int_equal(insert_rows(w->w, plan[i][0], plan[i][1]), SQLITE_OK);
			rows += plan[i][0];
			bytes += (sqlite3_int64)plan[i][0] * plan[i][1];
			check_rows(w, rows, bytes);
		}
	/* a checkpoint copies the frames into the database: the same rows */
	tk_sql_exec(w->w, "PRAGMA wal_checkpoint(TRUNCATE)");
	check_rows(w, rows, bytes);
	assert_int_equal(tk_sql_int(w->r, "SELECT count(*) FROM pragma_integrity_check WHERE"
				       " integrity_check != 'ok'"), 0);
}

/* The unix VFS masks a write's length to its low 17 bits and writes the
 * rest in a second pwrite, masked again: a write of 128 KiB or more ends
 * with a 0-byte write, reported as "database or disk is full". Transactions
 * of 1 to 40 pages (the larger ones over 128 KiB of frames) must all commit. */
static void test_runs_over_128k_commit(void **state)
{
	struct world *w = *state;
	sqlite3_int64 rows = 0, bytes = 0;

	for (int n = 1; n <= 40; n++) {
		assert_int_equal(insert_rows(w->w, n, 3900), SQLITE_OK);
		rows += n;
		bytes += (sqlite3_int64)n * 3900;
	}
	check_rows(w, rows, bytes);
}

static void test_a_failed_write_fails_the_commit(void **state)
{
	struct world *w = *state;
	int rc;

	assert_int_equal(insert_rows(w->w, 10, 3000), SQLITE_OK);
	check_rows(w, 10, 30000);
	/* the frames are gathered without a write; the one write, at the commit
	 * frame, fails: so must the commit */
	fail_wal_writes = 1;
	rc = insert_rows(w->w, 10, 3000);
	fail_wal_writes = 0;
	assert_int_not_equal(rc, SQLITE_OK);
	assert_int_equal(rc & 0xff, SQLITE_IOERR);
	check_rows(w, 10, 30000); /* readers never saw it */
	assert_int_equal(tk_sql_int(w->w, "SELECT count(*) FROM t"), 10);
	/* and the writer goes on */
	assert_int_equal(insert_rows(w->w, 5, 1000), SQLITE_OK);
	check_rows(w, 15, 35000);
	assert_int_equal(tk_sql_int(w->r, "SELECT count(*) FROM pragma_integrity_check WHERE"
				       " integrity_check != 'ok'"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_commit_is_one_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_what_commits_is_what_readers_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runs_over_128k_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_failed_write_fails_the_commit, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
