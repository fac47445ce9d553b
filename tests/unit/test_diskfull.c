/* test_diskfull.c — the store on a full disk. A test VFS, registered as
 * SQLite's default before any store opens (the store's own WAL-gathering
 * VFS then sits on top of it), fails every write that would make a file
 * longer with SQLITE_FULL while disk_full is set, as a full ext4 does
 * (writes inside a file go on). A full disk must come out of the store as
 * TLY_EBUSY (the server answers 503 and Retry-After, the CLI says why),
 * keep nothing of the transaction, and leave the store usable once space
 * is freed: at a commit, and when a statement meets it half-way. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "testkit.h"

static int disk_full;
static sqlite3_vfs *real_vfs, full_vfs;
/* the unix VFS gives the database and its WAL different methods (locking,
 * none): each set is copied once with its write swapped */
#define NSETS 4
static struct { const sqlite3_io_methods *real; sqlite3_io_methods full; } sets[NSETS];

static const sqlite3_io_methods *real_of(sqlite3_file *f)
{
	for (int i = 0; i < NSETS; i++)
		if (f->pMethods == &sets[i].full)
			return sets[i].real;
	return NULL;
}

static int full_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	const sqlite3_io_methods *real = real_of(f);
	sqlite3_int64 size;

	if (disk_full && real->xFileSize(f, &size) == SQLITE_OK && off + n > size)
		return SQLITE_FULL;
	return real->xWrite(f, p, n, off);
}

/* the real file, with only its write method swapped */
static int full_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
	int rc = real_vfs->xOpen(real_vfs, name, f, flags, out), i;

	(void)vfs;
	if (rc != SQLITE_OK || !f->pMethods)
		return rc;
	for (i = 0; i < NSETS && sets[i].real && sets[i].real != f->pMethods; i++)
		;
	assert_true(i < NSETS);
	if (!sets[i].real) {
		sets[i].real = f->pMethods;
		sets[i].full = *f->pMethods;
		sets[i].full.xWrite = full_write;
	}
	f->pMethods = &sets[i].full;
	return rc;
}

struct world {
	char dir[TK_DIR_MAX], path[TK_PATH_MAX];
	struct store *s;
};

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	struct tly_err err;

	disk_full = 0;
	if (!w || tk_db_dir("full", w->dir, w->path) != 0)
		return -1;
	tly_err_clear(&err);
	if (store_sqlite_open(w->path, 1, &w->s, &err) != TLY_OK)
		return -1;
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	disk_full = 0;
	w->s->ops->close(w->s);
	tk_db_remove(w->dir);
	free(w);
	return 0;
}

static enum tly_code put(struct store *s, const char *key, const char *val, struct tly_err *err)
{
	return s->ops->meta_set(s, key, val, (int)strlen(val), err);
}

static int has(struct store *s, const char *key)
{
	struct tly_err err;
	char *got = NULL;
	enum tly_code rc;

	tly_err_clear(&err);
	rc = s->ops->meta_get_text(s, key, &got, &err);
	free(got);
	assert_true(rc == TLY_OK || rc == TLY_ENOTFOUND);
	return rc == TLY_OK;
}

static void commit_one(struct store *s, const char *key)
{
	struct tly_err err;

	tly_err_clear(&err);
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	assert_int_equal(put(s, key, "v", &err), TLY_OK);
	assert_int_equal(s->ops->commit(s, &err), TLY_OK);
}

static void test_a_commit_on_a_full_disk_is_busy_and_keeps_nothing(void **state)
{
	struct world *w = *state;
	struct store *s = w->s;
	struct tly_err err;

	assert_non_null(sets[0].real); /* the test VFS is under the store */
	commit_one(s, "before");
	disk_full = 1;
	tly_err_clear(&err);
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	assert_int_equal(put(s, "during", "v", &err), TLY_OK); /* in the page cache */
	assert_int_equal(s->ops->commit(s, &err), TLY_EBUSY);
	assert_non_null(strstr(err.message, "disk that holds the database is full"));
	/* reads go on while the disk is full */
	assert_true(has(s, "before"));
	assert_false(has(s, "during"));
	disk_full = 0;
	commit_one(s, "after");
	assert_true(has(s, "after"));
	assert_false(has(s, "during"));
}

static void test_a_statement_that_meets_a_full_disk_dooms_its_batch_busy(void **state)
{
	struct world *w = *state;
	struct store *s = w->s;
	struct tly_err err;
	char key[32], val[2048];
	enum tly_code rc = TLY_OK;
	int i;

	memset(val, 'x', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	tly_err_clear(&err);
	/* a page cache of a few pages: a big transaction spills to the WAL */
	assert_int_equal(s->ops->cache_limit(s, 1, &err), TLY_OK);
	commit_one(s, "before");
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	assert_int_equal(put(s, "first", "v", &err), TLY_OK);
	disk_full = 1;
	/* an operation of the batch writes until the spill meets the full disk */
	assert_int_equal(s->ops->begin_unguarded(s, &err), TLY_OK);
	for (i = 0; i < 2000 && rc == TLY_OK; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		rc = put(s, key, val, &err);
	}
	assert_int_equal(rc, TLY_EBUSY);
	assert_true(i > 1); /* it did write before it failed */
	assert_non_null(strstr(err.message, "full"));
	s->ops->rollback(s);
	/* the batch is doomed, and says why */
	tly_err_clear(&err);
	assert_int_equal(s->ops->commit(s, &err), TLY_EBUSY);
	assert_non_null(strstr(err.message, "disk that holds the database is full"));
	disk_full = 0;
	assert_false(has(s, "first"));
	assert_false(has(s, "k0"));
	assert_true(has(s, "before"));
	commit_one(s, "after");
	assert_true(has(s, "after"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_commit_on_a_full_disk_is_busy_and_keeps_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_statement_that_meets_a_full_disk_dooms_its_batch_busy, setup, teardown),
	};

	/* the default VFS before the store's first open, which wraps the default */
	real_vfs = sqlite3_vfs_find(NULL);
	if (!real_vfs)
		return 1;
	full_vfs = *real_vfs;
	full_vfs.zName = "test-full-disk";
	full_vfs.xOpen = full_open;
	if (sqlite3_vfs_register(&full_vfs, 1) != SQLITE_OK)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
