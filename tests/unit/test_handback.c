/* test_handback.c — the table of held leases the event loop hands back
 * (src/http/handback.c) on its own: an entry goes only to the same
 * Authorization value on the same project, once; any later request of its
 * user, any request that could change what a claim sees, the lease running
 * out and the entry's age each send the claim the slow way; a reply too big
 * for the table is not kept. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/handback.h"
#include "tally.h"
#include "util.h"

#define KEY_A "Bearer tly_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define KEY_B "Bearer tly_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define PRJ_1 "prj_aaaaaaaaaaaaa"
#define PRJ_2 "prj_bbbbbbbbbbbbb"
#define TEXT "{\"assignment\":{\"id\":\"asg_x\"},\"task\":{\"id\":\"tsk_y\",\"data\":{}}}"
#define LATER (24LL * 3600 * 1000) /* a lease that runs a day longer */

struct fixture {
	struct handback *h;
	struct tly_buf out;
	int64_t now;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || !(f->h = handback_new()))
		return -1;
	tly_buf_init(&f->out, 1 << 20);
	f->now = tly_now_ms();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	handback_free(f->h);
	tly_buf_free(&f->out);
	free(f);
	return 0;
}

static void put(struct fixture *f, const char *auth, const char *prj, int64_t user, uint64_t seq)
{
	handback_put(f->h, auth, prj, user, seq, f->now + LATER, TEXT, strlen(TEXT));
}

static int take(struct fixture *f, const char *auth, const char *prj, uint64_t *seq)
{
	return handback_take(f->h, auth, prj, f->now, &f->out, seq);
}

/* The same key and project get the text and the batch back, once; another
 * key, another project, or one key a prefix of the other get nothing. */
static void test_only_its_key_and_project_once(void **state)
{
	struct fixture *f = *state;
	uint64_t seq = 0;

	put(f, KEY_A, PRJ_1, 7, 41);
	assert_int_equal(take(f, KEY_B, PRJ_1, &seq), 0);
	assert_int_equal(take(f, KEY_A, PRJ_2, &seq), 0);
	assert_int_equal(take(f, "Bearer tly_aaaa", PRJ_1, &seq), 0);
	assert_int_equal(f->out.len, 0);
	assert_int_equal(handback_count(f->h), 0);
	assert_int_equal(take(f, KEY_A, PRJ_1, &seq), 1);
	assert_int_equal(seq, 41);
	assert_string_equal(f->out.p, TEXT);
	assert_int_equal(handback_count(f->h), 1);
	assert_int_equal(take(f, KEY_A, PRJ_1, &seq), 0); /* taken */
	assert_int_equal(f->out.len, 0);

	/* two users' entries side by side */
	put(f, KEY_A, PRJ_1, 7, 50);
	put(f, KEY_B, PRJ_1, 8, 51);
	assert_int_equal(take(f, KEY_B, PRJ_1, &seq), 1);
	assert_int_equal(seq, 51);
	assert_int_equal(take(f, KEY_A, PRJ_1, &seq), 1);
	assert_int_equal(seq, 50);
	assert_int_equal(handback_count(f->h), 3);
}

/* A request of the same user after the put (a release, on any key) stops
 * it; another user's request does not; a request that may change what any
 * claim sees stops every entry. */
static void test_generations(void **state)
{
	struct fixture *f = *state;
	uint64_t seq;

	put(f, KEY_A, PRJ_1, 7, 1);
	handback_touch(f->h, 8, 0);
	handback_touch(f->h, 0, 0);
	assert_int_equal(take(f, KEY_A, PRJ_1, &seq), 1);

	put(f, KEY_A, PRJ_1, 7, 2);
	handback_touch(f->h, 7, 0);
	assert_int_equal(take(f, KEY_A, PRJ_1, &seq), 0);
	put(f, KEY_A, PRJ_1, 7, 3); /* a new put after the touch counts again */
	assert_int_equal(take(f, KEY_A, PRJ_1, &seq), 1);
	assert_int_equal(seq, 3);

	put(f, KEY_A, PRJ_1, 7, 4);
	put(f, KEY_B, PRJ_2, 8, 5);
	handback_touch(f->h, 0, 1);
	assert_int_equal(take(f, KEY_A, PRJ_1, &seq), 0);
	assert_int_equal(take(f, KEY_B, PRJ_2, &seq), 0);
	assert_int_equal(handback_count(f->h), 2);
}

/* A lease that ran out, and an entry older than HANDBACK_TTL_MS, go the
 * slow way. */
static void test_expiry_and_age(void **state)
{
	struct fixture *f = *state;
	struct timespec ts = { 0, (HANDBACK_TTL_MS + 50) * 1000000L };
	uint64_t seq;

	handback_put(f->h, KEY_A, PRJ_1, 7, 1, f->now - 1, TEXT, strlen(TEXT));
	assert_int_equal(take(f, KEY_A, PRJ_1, &seq), 0);
	handback_put(f->h, KEY_A, PRJ_1, 7, 1, f->now + 1, TEXT, strlen(TEXT));
	assert_int_equal(take(f, KEY_A, PRJ_1, &seq), 1);

	put(f, KEY_A, PRJ_1, 7, 2);
	nanosleep(&ts, NULL);
	assert_int_equal(take(f, KEY_A, PRJ_1, &seq), 0);
}

/* A reply over HANDBACK_TEXT_MAX is not kept (and drops the slot's old one);
 * nor is anything for a key too long to tag. */
static void test_big_reply_not_kept(void **state)
{
	struct fixture *f = *state;
	size_t n = HANDBACK_TEXT_MAX + 1;
	char *big = malloc(n);
	uint64_t seq;

	assert_non_null(big);
	memset(big, 'x', n);
	put(f, KEY_A, PRJ_1, 7, 1);
	handback_put(f->h, KEY_A, PRJ_1, 7, 2, f->now + LATER, big, n);
	assert_int_equal(take(f, KEY_A, PRJ_1, &seq), 0);
	handback_put(f->h, KEY_A, PRJ_1, 7, 3, f->now + LATER, big, n - 1);
	assert_int_equal(take(f, KEY_A, PRJ_1, &seq), 1);
	assert_int_equal(f->out.len, n - 1);

	/* an Authorization value too long to tag: never kept, never matched */
	big[2000] = '\0';
	handback_put(f->h, big, PRJ_1, 7, 4, f->now + LATER, TEXT, strlen(TEXT));
	assert_int_equal(take(f, big, PRJ_1, &seq), 0);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_only_its_key_and_project_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_and_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_reply_not_kept, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
