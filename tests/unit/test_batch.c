/* test_batch.c — the HTTP front end's group commit (src/http/batch.c) on its
 * own, on a real SQLite file: a reply waits for the sync of its batch, a
 * reply to a durable batch is posted at once, and the owners' mailboxes
 * wake their owner once per fill and lose no mail when many threads post. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/batch.h"
#include "tally.h"
#include "testkit.h"

struct fixture {
	char dir[TK_DIR_MAX], path[TK_PATH_MAX];
	struct tly *t;
	pthread_mutex_t lock;
	struct batcher *b;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct tly_err err;

	if (!f || tk_db_dir("batch", f->dir, f->path) != 0)
		return -1;
	if (tly_open(f->path, 1, &f->t, &err) != TLY_OK)
		return -1;
	pthread_mutex_init(&f->lock, NULL);
	if (!(f->b = batch_new(f->t, &f->lock, 2)))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	batch_free(f->b);
	tly_close(f->t);
	pthread_mutex_destroy(&f->lock);
	tk_db_remove(f->dir);
	free(f);
	return 0;
}

/* The eventfd's count, read (which clears it); 0 when it is not readable. */
static uint64_t wakeups(int fd)
{
	uint64_t n = 0;

	if (read(fd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

/* Waits up to ms for fd to turn readable: 1, or 0 on the timeout. */
static int readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

/* Three replies posted to a box nobody emptied make one wake-up; the take
 * hands them back in order and empties the box, and the next post wakes the
 * owner again. (Before, each post wrote the eventfd: a count of 3.) */
static void test_mailbox_wakes_once_per_fill(void **state)
{
	struct fixture *f = *state;
	struct pending p[4] = { { .owner = 1 }, { .owner = 1 }, { .owner = 1 }, { .owner = 1 } };
	struct pending *got;
	int fd = batch_fd(f->b, 1);

	for (int i = 0; i < 3; i++)
		batch_post(f->b, &p[i]);
	assert_int_equal(wakeups(batch_fd(f->b, 0)), 0); /* the other owner's box */
	assert_int_equal(wakeups(fd), 1);                 /* read: the count is cleared */
	got = batch_take(f->b, 1);
	assert_ptr_equal(got, &p[0]);
	assert_ptr_equal(got->next, &p[1]);
	assert_ptr_equal(got->next->next, &p[2]);
	assert_null(got->next->next->next);
	assert_int_equal(readable(fd, 0), 0);
	assert_null(batch_take(f->b, 1));

	batch_post(f->b, &p[3]);
	assert_int_equal(wakeups(fd), 1);
	got = batch_take(f->b, 1);
	assert_ptr_equal(got, &p[3]);
	assert_null(got->next);
}

#define POSTERS 4
#define POSTS 20000

struct item {
	struct pending hdr; /* first: the box links these */
	int poster, n;
};

struct poster {
	struct batcher *b;
	struct item *items;
	int id;
};

static void *post_all(void *arg)
{
	struct poster *p = arg;

	for (int i = 0; i < POSTS; i++) {
		p->items[i] = (struct item){ .hdr.owner = 0, .poster = p->id, .n = i };
		batch_post(p->b, &p->items[i].hdr);
	}
	return NULL;
}

/* Four threads post 20,000 replies each while the owner takes whenever its
 * descriptor turns readable, as an event loop does: every reply arrives, once,
 * each poster's in its order, and the owner never waits a whole second with
 * mail in its box (a lost wake-up). */
static void test_mailbox_loses_no_wakeup(void **state)
{
	struct fixture *f = *state;
	struct poster ps[POSTERS];
	pthread_t th[POSTERS];
	int next[POSTERS] = { 0 }, fd = batch_fd(f->b, 0);
	long got = 0;

	for (int i = 0; i < POSTERS; i++) {
		ps[i] = (struct poster){ f->b, calloc(POSTS, sizeof(struct item)), i };
		assert_non_null(ps[i].items);
		assert_int_equal(pthread_create(&th[i], NULL, post_all, &ps[i]), 0);
	}
	while (got < (long)POSTERS * POSTS) {
		if (!readable(fd, 1000))
			fail_msg("no wake-up for a second with %ld of %d replies taken",
				 got, POSTERS * POSTS);
		for (struct pending *p = batch_take(f->b, 0); p; p = p->next) {
			struct item *it = (struct item *)p;
			assert_int_equal(it->n, next[it->poster]);
			next[it->poster]++;
			got++;
		}
	}
	for (int i = 0; i < POSTERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(next[i], POSTS);
		free(ps[i].items);
	}
	assert_null(batch_take(f->b, 0));
}

/* A reply of an open batch waits; once the batch is committed the syncer
 * makes it durable and only then mails it, not failed (and batch_durable
 * says so only from then on); a reply tagged with a
 * batch that is durable already is not queued. */
static void test_reply_waits_for_its_sync(void **state)
{
	struct fixture *f = *state;
	struct pending w = { .owner = 1 }, d = { .owner = 1 };
	struct tly_err err;
	struct pending *got;
	struct tly *t2;
	char id[32];
	int64_t org;
	uint64_t seq;

	pthread_mutex_lock(&f->lock);
	seq = batch_join(f->b);
	assert_true(seq > 0);
	/* a write of the library's in the open batch */
	assert_int_equal(tly_org_add(f->t, "acme", id, &err), TLY_OK);
	w.seq = seq;
	assert_int_equal(batch_add(f->b, &w), 0);
	pthread_mutex_unlock(&f->lock);

	assert_int_equal(readable(batch_fd(f->b, 1), 200), 0); /* not committed: no reply */
	assert_int_equal(batch_durable(f->b, seq), 0);

	pthread_mutex_lock(&f->lock);
	batch_commit(f->b);
	pthread_mutex_unlock(&f->lock);
	if (!readable(batch_fd(f->b, 1), 5000))
		fail_msg("the committed batch's reply never came");
	got = batch_take(f->b, 1);
	assert_ptr_equal(got, &w);
	assert_int_equal(got->failed, 0);
	assert_null(got->next);
	/* what a worker asks before it sends a reply with no batch_add() */
	assert_int_equal(batch_durable(f->b, seq), 1);
	assert_int_equal(batch_durable(f->b, seq + 1), 0);

	/* what the batch wrote is there for a new handle */
	assert_int_equal(tly_open(f->path, 0, &t2, &err), TLY_OK);
	assert_int_equal(tly_org_resolve(t2, "acme", &org, &err), TLY_OK);
	assert_true(org > 0);
	tly_close(t2);

	pthread_mutex_lock(&f->lock);
	d.seq = seq; /* synced: nothing to wait for */
	assert_int_equal(batch_add(f->b, &d), 1);
	pthread_mutex_unlock(&f->lock);
	assert_int_equal(readable(batch_fd(f->b, 1), 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mailbox_wakes_once_per_fill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_loses_no_wakeup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_waits_for_its_sync, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
