/* test_durability.c — the store's transaction and durability machinery that
 * the server's group commit rests on: nesting without savepoints
 * (begin_unguarded, and the batch it dooms), data_version read once per
 * transaction, deferred sync with sync() and checkpoint() from the side,
 * and the WAL starting over instead of growing. Each test gets a fresh
 * database file in its own mkdtemp directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "testkit.h"

static int setup(void **state)
{
	return tk_store_setup(state, "dur");
}

static int teardown(void **state)
{
	return tk_store_teardown(state);
}

static void put(struct store *s, const char *key, const char *val)
{
	struct tly_err err;

	tly_err_clear(&err);
	assert_int_equal(s->ops->meta_set(s, key, val, (int)strlen(val), &err), TLY_OK);
}

/* 1 when the key is there with that value, 0 when absent */
static int has(struct store *s, const char *key, const char *val)
{
	struct tly_err err;
	char *got = NULL;
	enum tly_code rc;

	tly_err_clear(&err);
	rc = s->ops->meta_get_text(s, key, &got, &err);
	if (rc == TLY_ENOTFOUND)
		return 0;
	assert_int_equal(rc, TLY_OK);
	assert_string_equal(got, val);
	free(got);
	return 1;
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* ---- nesting without savepoints ------------------------------------------------ */

static void test_unguarded_commits_into_the_batch(void **state)
{
	struct tk_store *w = *state;
	struct store *s = w->s;
	struct tly_err err;

	tly_err_clear(&err);
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	put(s, "outer", "1");
	assert_int_equal(s->ops->begin_unguarded(s, &err), TLY_OK);
	put(s, "inner", "2");
	assert_int_equal(s->ops->commit(s, &err), TLY_OK);
	assert_int_equal(s->ops->commit(s, &err), TLY_OK);
	assert_true(has(s, "outer", "1"));
	assert_true(has(s, "inner", "2"));
}

static void test_unguarded_rollback_before_writing_keeps_the_batch(void **state)
{
	struct tk_store *w = *state;
	struct store *s = w->s;
	struct tly_err err;

	tly_err_clear(&err);
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	put(s, "a", "1");
	/* an operation that only read, then refused (a 404, a 409) */
	assert_int_equal(s->ops->begin_unguarded(s, &err), TLY_OK);
	assert_false(has(s, "nothing", ""));
	s->ops->rollback(s);
	/* the next one in the same batch writes and commits */
	assert_int_equal(s->ops->begin_unguarded(s, &err), TLY_OK);
	put(s, "b", "2");
	assert_int_equal(s->ops->commit(s, &err), TLY_OK);
	assert_int_equal(s->ops->commit(s, &err), TLY_OK);
	assert_true(has(s, "a", "1"));
	assert_true(has(s, "b", "2"));
}

static void test_unguarded_rollback_after_writing_dooms_the_batch(void **state)
{
	struct tk_store *w = *state;
	struct store *s = w->s;
	struct tly_err err;

	tly_err_clear(&err);
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	put(s, "before", "1");
	assert_int_equal(s->ops->begin_unguarded(s, &err), TLY_OK);
	put(s, "half", "2");
	s->ops->rollback(s); /* failed half-way: its write cannot be undone alone */
	/* a guarded level inside the doomed batch still works as a savepoint */
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	put(s, "after", "3");
	assert_int_equal(s->ops->commit(s, &err), TLY_OK);
	assert_int_equal(s->ops->commit(s, &err), TLY_EINTERNAL);
	assert_non_null(strstr(err.message, "rolled back"));
	/* nothing of the batch was kept, and the store is usable again */
	assert_false(has(s, "before", "1"));
	assert_false(has(s, "half", "2"));
	assert_false(has(s, "after", "3"));
	tly_err_clear(&err);
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	put(s, "next", "4");
	assert_int_equal(s->ops->commit(s, &err), TLY_OK);
	assert_true(has(s, "next", "4"));
}

static void test_unguarded_at_top_level_is_a_transaction(void **state)
{
	struct tk_store *w = *state;
	struct store *s = w->s;
	struct tly_err err;

	tly_err_clear(&err);
	assert_int_equal(s->ops->begin_unguarded(s, &err), TLY_OK);
	put(s, "x", "1");
	s->ops->rollback(s);
	assert_false(has(s, "x", "1"));
	assert_int_equal(s->ops->begin_unguarded(s, &err), TLY_OK);
	put(s, "x", "2");
	assert_int_equal(s->ops->commit(s, &err), TLY_OK);
	assert_true(has(s, "x", "2"));
}

static void test_guarded_rollback_undoes_only_its_level(void **state)
{
	struct tk_store *w = *state;
	struct store *s = w->s;
	struct tly_err err;

	tly_err_clear(&err);
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	put(s, "kept", "1");
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	put(s, "undone", "2");
	s->ops->rollback(s);
	assert_int_equal(s->ops->commit(s, &err), TLY_OK);
	assert_true(has(s, "kept", "1"));
	assert_false(has(s, "undone", "2"));
}

/* ---- data_version ------------------------------------------------------------------ */

static void test_data_version_sees_other_connections(void **state)
{
	struct tk_store *w = *state;
	struct store *s = w->s, *other;
	struct tly_err err;
	int64_t v0, v1, v2, v3;

	tly_err_clear(&err);
	assert_int_equal(store_sqlite_open(w->path, 0, &other, &err), TLY_OK);
	assert_int_equal(s->ops->data_version(s, &v0, &err), TLY_OK);
	/* our own commits do not move it */
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	put(s, "mine", "1");
	assert_int_equal(s->ops->commit(s, &err), TLY_OK);
	assert_int_equal(s->ops->data_version(s, &v1, &err), TLY_OK);
	assert_true(v1 == v0);
	/* another connection's do */
	assert_int_equal(other->ops->begin(other, &err), TLY_OK);
	put(other, "theirs", "2");
	assert_int_equal(other->ops->commit(other, &err), TLY_OK);
	assert_int_equal(s->ops->data_version(s, &v2, &err), TLY_OK);
	assert_true(v2 != v1);
	/* inside a transaction the first answer holds (nobody else can commit) */
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	assert_int_equal(s->ops->data_version(s, &v3, &err), TLY_OK);
	assert_true(v3 == v2);
	put(s, "mine", "3");
	assert_int_equal(s->ops->data_version(s, &v3, &err), TLY_OK);
	assert_true(v3 == v2);
	assert_int_equal(s->ops->commit(s, &err), TLY_OK);
	assert_true(has(s, "theirs", "2"));
	other->ops->close(other);
}

/* ---- deferred sync and checkpoints ----------------------------------------------- */

static void test_deferred_commits_are_visible_and_synced(void **state)
{
	struct tk_store *w = *state;
	struct store *s = w->s, *other;
	struct tly_err err;
	int due = -1;

	tly_err_clear(&err);
	assert_int_equal(s->ops->defer_sync(s, 1000, &err), TLY_OK);
	assert_int_equal(s->ops->begin(s, &err), TLY_OK);
	put(s, "k", "v");
	assert_int_equal(s->ops->commit(s, &err), TLY_OK);
	assert_int_equal(s->ops->sync(s, &due, &err), TLY_OK);
	assert_int_equal(due, 0); /* one small commit: no checkpoint yet */
	assert_int_equal(store_sqlite_open(w->path, 0, &other, &err), TLY_OK);
	assert_true(has(other, "k", "v"));
	other->ops->close(other);
}

/* Commits n transactions of one 3 KiB value each; returns how many sync()
 * calls asked for a checkpoint. */
static int churn(struct store *s, int n, int checkpoint)
{
	char val[3072], key[32];
	struct tly_err err;
	int due, asked = 0, left;

	memset(val, 'x', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	for (int i = 0; i < n; i++) {
		tly_err_clear(&err);
		snprintf(key, sizeof(key), "k%d", i % 50);
		/* a new value each time: SQLite skips a page rewrite that changes nothing */
		memcpy(val, key, strlen(key));
		val[10] = (char)('a' + i % 26);
		assert_int_equal(s->ops->begin(s, &err), TLY_OK);
		put(s, key, val);
		assert_int_equal(s->ops->commit(s, &err), TLY_OK);
		assert_int_equal(s->ops->sync(s, &due, &err), TLY_OK);
		if (due) {
			asked++;
			if (checkpoint) {
				assert_int_equal(s->ops->checkpoint(s, &left, &err), TLY_OK);
				assert_int_equal(left, 0); /* no writer in between: all copied */
			}
		}
	}
	return asked;
}

static void test_checkpoints_keep_the_wal_bounded(void **state)
{
	struct tk_store *w = *state;
	struct store *s = w->s;
	struct tly_err err;
	char wal[TK_PATH_MAX + 8];
	off_t after_first, after_more;

	snprintf(wal, sizeof(wal), "%s-wal", w->path);
	tly_err_clear(&err);
	assert_int_equal(s->ops->defer_sync(s, 1000, &err), TLY_OK);
	/* ~1 frame per commit (+ the meta page): due about every 1000 frames */
	assert_true(churn(s, 1500, 1) >= 1);
	after_first = file_size(wal);
	assert_true(after_first > 0);
	/* three times as many commits more: the WAL starts over, it does not grow */
	assert_true(churn(s, 4500, 1) >= 3);
	after_more = file_size(wal);
	assert_true(after_more <= after_first + 64 * 4096);
}

static void test_without_checkpoints_the_wal_grows(void **state)
{
	struct tk_store *w = *state;
	struct store *s = w->s;
	struct tly_err err;
	char wal[TK_PATH_MAX + 8];
	off_t first, more;

	/* the control for the test above: autocheckpoint is off once deferred */
	snprintf(wal, sizeof(wal), "%s-wal", w->path);
	tly_err_clear(&err);
	assert_int_equal(s->ops->defer_sync(s, 1000, &err), TLY_OK);
	churn(s, 1500, 0);
	first = file_size(wal);
	churn(s, 4500, 0);
	more = file_size(wal);
	assert_true(more > 2 * first);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_unguarded_commits_into_the_batch),
		T(test_unguarded_rollback_before_writing_keeps_the_batch),
		T(test_unguarded_rollback_after_writing_dooms_the_batch),
		T(test_unguarded_at_top_level_is_a_transaction),
		T(test_guarded_rollback_undoes_only_its_level),
		T(test_data_version_sees_other_connections),
		T(test_deferred_commits_are_visible_and_synced),
		T(test_checkpoints_keep_the_wal_bounded),
		T(test_without_checkpoints_the_wal_grows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
