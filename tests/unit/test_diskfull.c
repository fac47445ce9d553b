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

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store.h"
#include "tally.h"
#include "testkit.h"

static int disk_full;
/* set: growing a -shm file (the WAL's index) fails as on a full disk, past
 * the regions mapped so far (shm_regions) */
static int shm_full, shm_regions, shm_refused;
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

/* The unix VFS grows the -shm file by writing into each new page; on a full
 * disk that write fails, and it says SQLITE_IOERR_SHMSIZE, with errno
 * ENOSPC. */
static int full_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
	const sqlite3_io_methods *real = real_of(f);
	int rc;

	if (shm_full && extend && pg >= shm_regions) {
		*pp = NULL;
		shm_refused++;
		errno = ENOSPC;
		return SQLITE_IOERR_SHMSIZE;
	}
	rc = real->xShmMap(f, pg, pgsz, extend, pp);
	if (rc == SQLITE_OK && *pp && pg >= shm_regions)
		shm_regions = pg + 1;
	return rc;
}

/* the real file, with only its write and shm-map methods swapped */
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
		if (sets[i].full.iVersion >= 2 && sets[i].full.xShmMap)
			sets[i].full.xShmMap = full_shm_map;
	}
	f->pMethods = &sets[i].full;
	return rc;
}

static int setup(void **state)
{
	disk_full = shm_full = shm_regions = shm_refused = 0;
	return tk_store_setup(state, "full");
}

static int teardown(void **state)
{
	disk_full = shm_full = 0;
	return tk_store_teardown(state);
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

/* A page cache of a page, so a big transaction spills to the WAL as it goes;
 * "before" committed; val filled with n - 1 of c. */
static void spilling(struct store *s, char *val, size_t n, char c)
{
	struct tly_err err;

	memset(val, c, n - 1);
	val[n - 1] = '\0';
	tly_err_clear(&err);
	assert_int_equal(s->ops->cache_limit(s, 1, &err), TLY_OK);
	commit_one(s, "before");
}

static void test_a_commit_on_a_full_disk_is_busy_and_keeps_nothing(void **state)
{
	struct tk_store *w = *state;
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
	struct tk_store *w = *state;
	struct store *s = w->s;
	struct tly_err err;
	char key[32], val[2048];
	enum tly_code rc = TLY_OK;
	int i;

	spilling(s, val, sizeof(val), 'x');
	tly_err_clear(&err);
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

/* The WAL's index lives in the -shm file, 32 KiB for every 4,096 frames or
 * so: a transaction that takes the log past that must grow it, and on a full
 * disk that fails in its own way (IOERR_SHMSIZE, not FULL). It is a full disk
 * all the same: busy, nothing kept, and the store usable once space is freed. */
static void test_an_index_of_the_log_that_cannot_grow_is_a_full_disk(void **state)
{
	struct tk_store *w = *state;
	struct store *s = w->s;
	struct tly_err err;
	char key[32], val[3000];
	enum tly_code rc = TLY_OK;
	int i;

	spilling(s, val, sizeof(val), 'y');
	tly_err_clear(&err);
	assert_true(shm_regions >= 1);
	shm_full = 1;
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	/* a page a row: past 4,096 frames the index needs its next 32 KiB */
	for (i = 0; i < 6000 && rc == TLY_OK; i++) {
		snprintf(key, sizeof(key), "big%d", i);
		rc = put(s, key, val, &err);
	}
	if (rc == TLY_OK) /* not met while spilling: then at the commit */
		rc = s->ops->commit(s, &err);
	else
		s->ops->rollback(s);
	assert_int_equal(rc, TLY_EBUSY);
	assert_non_null(strstr(err.message, "full"));
	assert_true(shm_refused > 0); /* it was the index's growth that met it */
	assert_true(i > 1000);
	shm_full = 0;
	assert_true(has(s, "before"));
	assert_false(has(s, "big0"));
	commit_one(s, "after");
	assert_true(has(s, "after"));
	/* space again: the same transaction commits, and the index grows */
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	for (int j = 0; j < i; j++) {
		snprintf(key, sizeof(key), "big%d", j);
		assert_int_equal(put(s, key, val, &err), TLY_OK);
	}
	assert_int_equal(s->ops->commit(s, &err), TLY_OK);
	assert_true(shm_regions >= 2);
	assert_true(has(s, "big0"));
}

static json_t *schema_named(const char *name)
{
	json_t *j = json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:s, s:[s, s]}]}", "name", name,
			      "fields", "name", "text", "type", "text",
			      "questions", "name", "label", "type", "choice", "options", "a", "b");
	assert_non_null(j);
	return j;
}

static const char *name_of(json_t *project)
{
	const char *n = json_string_value(json_object_get(project, "name"));

	assert_non_null(n);
	return n;
}

/* The server runs its requests inside one batch: a project made there is
 * loaded (and its schema kept in memory) before the batch commits. If that
 * commit fails, the row is gone and its row id goes to the next project
 * made: the library must not serve the kept schema (or its organization)
 * for that one. */
static void test_a_project_whose_batch_failed_is_forgotten(void **state)
{
	struct tk_store *w = *state;
	struct tly *t;
	struct store *s;
	struct tly_actor a;
	struct tly_err err;
	json_t *sch, *out = NULL, *got = NULL;
	char org[32], first[64], second[64];

	tly_err_clear(&err);
	assert_int_equal(tly_open(w->path, 1, &t, &err), TLY_OK);
	s = tly_store(t);
	assert_int_equal(tly_org_add(t, "full org", org, &err), TLY_OK);
	assert_int_equal(tly_actor_admin(t, org, &a, &err), TLY_OK);
	assert_int_equal(s->ops->begin(s, &err), TLY_OK); /* the batch */
	sch = schema_named("made on a full disk");
	assert_int_equal(tly_project_create(t, &a, sch, &out, &err), TLY_OK);
	json_decref(sch);
	snprintf(first, sizeof(first), "%s", json_string_value(json_object_get(out, "id")));
	json_decref(out);
	disk_full = 1;
	assert_int_equal(s->ops->commit(s, &err), TLY_EBUSY);
	disk_full = 0;
	sch = schema_named("made after");
	assert_int_equal(tly_project_create(t, &a, sch, &out, &err), TLY_OK);
	json_decref(sch);
	snprintf(second, sizeof(second), "%s", json_string_value(json_object_get(out, "id")));
	assert_string_equal(name_of(out), "made after");
	json_decref(out);
	assert_string_equal(first, second); /* the row id was taken again */
	assert_int_equal(tly_project_get(t, &a, second, &got, &err), TLY_OK);
	assert_string_equal(name_of(got), "made after");
	json_decref(got);
	tly_close(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_commit_on_a_full_disk_is_busy_and_keeps_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_statement_that_meets_a_full_disk_dooms_its_batch_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_project_whose_batch_failed_is_forgotten, setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_index_of_the_log_that_cannot_grow_is_a_full_disk, setup, teardown),
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
