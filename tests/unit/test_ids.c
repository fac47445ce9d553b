/* test_ids.c — public identifiers (ids.h): round trips, kind separation,
 * malformed input, key separation, no leak of row order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"

static const char *const prefix[TLY_NKINDS] = {
	[TLY_ORG] = "org_", [TLY_USER] = "usr_", [TLY_PROJECT] = "prj_",
	[TLY_TASK] = "tsk_", [TLY_ASSIGNMENT] = "asg_", [TLY_RESPONSE] = "rsp_",
	[TLY_KEY] = "key_",
};

static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

static void codec_fixed(struct tly_idcodec *c, unsigned char seed)
{
	for (int i = 0; i < TLY_ID_KEYBYTES; i++)
		c->key[i] = (unsigned char)(seed * 31 + i * 7 + 1);
}

static int group_setup(void **state)
{
	(void)state;
	return sodium_init() < 0 ? -1 : 0;
}

/* shape of an encoded id: prefix + 13 chars of the alphabet, first <= 'f' */
static void assert_shape(const char *s, enum tly_kind k)
{
	assert_int_equal(strlen(s), 17);
	assert_memory_equal(s, prefix[k], 4);
	for (int i = 4; i < 17; i++)
		assert_non_null(strchr(alphabet, s[i]));
	assert_true(strchr(alphabet, s[4]) - alphabet <= 15);
}

static void test_roundtrip_small(void **state)
{
	struct tly_idcodec c;
	char buf[TLY_ID_MAX];

	(void)state;
	codec_fixed(&c, 1);
	for (int k = 0; k < TLY_NKINDS; k++)
		for (int64_t n = 1; n <= 100000; n++) {
			char *r = tly_id_encode(&c, (enum tly_kind)k, n, buf);
			assert_ptr_equal(r, buf);
			if (n % 997 == 1)
				assert_shape(buf, (enum tly_kind)k);
			if (tly_id_decode(&c, (enum tly_kind)k, buf) != n)
				fail_msg("kind %d row %lld: %s decodes to %lld", k, (long long)n, buf,
					 (long long)tly_id_decode(&c, (enum tly_kind)k, buf));
		}
}

static void test_roundtrip_large(void **state)
{
	static const int64_t rows[] = {
		0xFFFFFFFFLL, 0x100000000LL, 0x100000001LL, 1LL << 40, (1LL << 53) + 1,
		1234567890123456789LL, INT64_MAX - 1, INT64_MAX, 2147483647LL, 2147483648LL,
	};
	struct tly_idcodec c;
	char buf[TLY_ID_MAX];

	(void)state;
	codec_fixed(&c, 2);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		for (int k = 0; k < TLY_NKINDS; k++) {
			tly_id_encode(&c, (enum tly_kind)k, rows[i], buf);
			assert_shape(buf, (enum tly_kind)k);
			assert_int_equal(tly_id_decode(&c, (enum tly_kind)k, buf), rows[i]);
		}
	/* pseudo-random 63-bit rows */
	uint64_t x = 88172645463325252ULL;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int64_t n = (int64_t)(x >> 1);
		if (n == 0)
			continue;
		tly_id_encode(&c, TLY_TASK, n, buf);
		assert_int_equal(tly_id_decode(&c, TLY_TASK, buf), n);
	}
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_encoding_unique(void **state)
{
	struct tly_idcodec c;
	enum { N = 20000 };
	char (*ids)[TLY_ID_MAX] = calloc(N, TLY_ID_MAX);

	(void)state;
	assert_non_null(ids);
	codec_fixed(&c, 3);
	for (int i = 0; i < N; i++)
		tly_id_encode(&c, TLY_TASK, i + 1, ids[i]);
	qsort(ids, N, TLY_ID_MAX, cmp_id);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
	free(ids);
}

/* An id of one kind never decodes as another kind: the prefix differs, and
 * even the body under another kind's prefix is a different row. */
static void test_kinds_separate(void **state)
{
	struct tly_idcodec c;
	char buf[TLY_ID_MAX], swapped[TLY_ID_MAX];

	(void)state;
	codec_fixed(&c, 4);
	for (int64_t n = 1; n <= 3000; n++)
		for (int k = 0; k < TLY_NKINDS; k++) {
			tly_id_encode(&c, (enum tly_kind)k, n, buf);
			for (int j = 0; j < TLY_NKINDS; j++) {
				if (j == k)
					continue;
				assert_int_equal(tly_id_decode(&c, (enum tly_kind)j, buf), 0);
				memcpy(swapped, buf, sizeof(buf));
				memcpy(swapped, prefix[j], 4);
				int64_t d = tly_id_decode(&c, (enum tly_kind)j, swapped);
				if (d == n || (d > 0 && d <= 1000000))
					fail_msg("%s re-prefixed as %s decodes to small row %lld", buf,
						 swapped, (long long)d);
			}
		}
}

static void test_task_as_project_is_zero(void **state)
{
	struct tly_idcodec c;
	char buf[TLY_ID_MAX];

	(void)state;
	codec_fixed(&c, 5);
	tly_id_encode(&c, TLY_TASK, 42, buf);
	assert_int_equal(tly_id_decode(&c, TLY_PROJECT, buf), 0);
	assert_int_equal(tly_id_decode(&c, TLY_ASSIGNMENT, buf), 0);
	assert_int_equal(tly_id_decode(&c, TLY_TASK, buf), 42);
}

struct bad_id {
	const char *s;
	const char *why;
};

static void test_malformed(void **state)
{
	static const struct bad_id rows[] = {
		{ "", "empty" },
		{ "tsk_", "prefix only" },
		{ "tsk", "short prefix" },
		{ "tsk_0", "one char" },
		{ "tsk_000000000001", "12 chars" },
		{ "tsk_00000000000001", "14 chars" },
		{ "tsk_0000000000001 ", "trailing space" },
		{ " tsk_0000000000001", "leading space" },
		{ "tsk-0000000000001", "dash instead of underscore" },
		{ "task_0000000000001", "long prefix" },
		{ "TSK_0000000000001", "upper-case prefix" },
		{ "prj_0000000000001", "other kind" },
		{ "tsk_000000000000i", "i not in alphabet" },
		{ "tsk_000000000000l", "l not in alphabet" },
		{ "tsk_000000000000o", "o not in alphabet" },
		{ "tsk_000000000000u", "u not in alphabet" },
		{ "tsk_000000000000!", "punctuation" },
		{ "tsk_000000000000A", "upper case" },
		{ "tsk_00000000000\xc3\xa9", "utf-8 byte" },
		{ "tsk_g000000000000", "65th bit set" },
		{ "tsk_z000000000000", "top digit too large" },
		{ "tsk_000000\0000000", "embedded NUL (short)" },
	};
	struct tly_idcodec c;

	(void)state;
	codec_fixed(&c, 6);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (tly_id_decode(&c, TLY_TASK, rows[i].s) != 0)
			fail_msg("row %zu (%s): \"%s\" decoded", i, rows[i].why, rows[i].s);
	assert_int_equal(tly_id_decode(&c, TLY_TASK, NULL), 0);
}

/* upper-casing a real id breaks it */
static void test_uppercase_refused(void **state)
{
	struct tly_idcodec c;
	char buf[TLY_ID_MAX];
	int tried = 0;

	(void)state;
	codec_fixed(&c, 7);
	for (int64_t n = 1; n <= 200; n++) {
		int changed = 0;
		tly_id_encode(&c, TLY_PROJECT, n, buf);
		for (int i = 4; buf[i]; i++)
			if (isalpha((unsigned char)buf[i])) {
				buf[i] = (char)toupper((unsigned char)buf[i]);
				changed = 1;
			}
		if (!changed)
			continue;
		tried++;
		assert_int_equal(tly_id_decode(&c, TLY_PROJECT, buf), 0);
	}
	assert_true(tried > 150);
}

/* every single-character change gives 0 or another row, never the same row */
static void test_single_char_edits(void **state)
{
	struct tly_idcodec c;
	char buf[TLY_ID_MAX], mod[TLY_ID_MAX];

	(void)state;
	codec_fixed(&c, 8);
	for (int64_t n = 1; n <= 50; n++) {
		tly_id_encode(&c, TLY_TASK, n, buf);
		for (int pos = 4; pos < 17; pos++)
			for (int a = 0; a < 32; a++) {
				if (alphabet[a] == buf[pos])
					continue;
				memcpy(mod, buf, sizeof(buf));
				mod[pos] = alphabet[a];
				int64_t d = tly_id_decode(&c, TLY_TASK, mod);
				assert_int_not_equal(d, n);
				if (d > 0 && d <= 1000000)
					fail_msg("%s edited to %s decodes to small row %lld", buf, mod,
						 (long long)d);
			}
	}
}

static void test_keys_differ(void **state)
{
	struct tly_idcodec a, b;
	char ea[TLY_ID_MAX], eb[TLY_ID_MAX];
	int same = 0;

	(void)state;
	codec_fixed(&a, 9);
	b = a;
	b.key[TLY_ID_KEYBYTES - 1] ^= 1; /* one bit apart */
	for (int64_t n = 1; n <= 5000; n++) {
		tly_id_encode(&a, TLY_TASK, n, ea);
		tly_id_encode(&b, TLY_TASK, n, eb);
		same += strcmp(ea, eb) == 0;
		int64_t d = tly_id_decode(&b, TLY_TASK, ea);
		assert_int_not_equal(d, n);
	}
	assert_int_equal(same, 0);

	/* a random key too */
	randombytes_buf(b.key, sizeof(b.key));
	tly_id_encode(&a, TLY_ORG, 1, ea);
	tly_id_encode(&b, TLY_ORG, 1, eb);
	assert_string_not_equal(ea, eb);
	assert_int_equal(tly_id_decode(&b, TLY_ORG, eb), 1);
}

/* Consecutive rows give unrelated ids: about half the neighbours compare
 * "downwards", and neighbours share few characters. */
static void test_not_monotonic(void **state)
{
	struct tly_idcodec c;
	char prev[TLY_ID_MAX], cur[TLY_ID_MAX];
	int down = 0, shared_total = 0;
	enum { N = 2000 };

	(void)state;
	codec_fixed(&c, 10);
	tly_id_encode(&c, TLY_TASK, 1, prev);
	for (int64_t n = 2; n <= N; n++) {
		tly_id_encode(&c, TLY_TASK, n, cur);
		down += strcmp(cur, prev) < 0;
		for (int i = 4; i < 17; i++)
			shared_total += cur[i] == prev[i];
		memcpy(prev, cur, sizeof(cur));
	}
	/* a counter would give down == 0; a permutation gives ~N/2 */
	assert_true(down > N * 35 / 100);
	assert_true(down < N * 65 / 100);
	/* random: 13/32 shared characters per pair on average */
	assert_true(shared_total < (N - 1) * 2);

	/* the first ids are not small numbers in disguise: 1 and 2 differ early */
	char one[TLY_ID_MAX], two[TLY_ID_MAX];
	tly_id_encode(&c, TLY_TASK, 1, one);
	tly_id_encode(&c, TLY_TASK, 2, two);
	assert_memory_not_equal(one + 4, two + 4, 6);
}

/* Row numbers outside 1..INT64_MAX never come back. */
static void test_out_of_range_rows(void **state)
{
	struct tly_idcodec c;
	char buf[TLY_ID_MAX];

	(void)state;
	codec_fixed(&c, 11);
	tly_id_encode(&c, TLY_TASK, 0, buf);
	assert_int_equal(tly_id_decode(&c, TLY_TASK, buf), 0);
	tly_id_encode(&c, TLY_TASK, -1, buf);
	assert_int_equal(tly_id_decode(&c, TLY_TASK, buf), 0);
	tly_id_encode(&c, TLY_TASK, INT64_MIN, buf);
	assert_int_equal(tly_id_decode(&c, TLY_TASK, buf), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_small),
		cmocka_unit_test(test_roundtrip_large),
		cmocka_unit_test(test_encoding_unique),
		cmocka_unit_test(test_kinds_separate),
		cmocka_unit_test(test_task_as_project_is_zero),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_uppercase_refused),
		cmocka_unit_test(test_single_char_edits),
		cmocka_unit_test(test_keys_differ),
		cmocka_unit_test(test_not_monotonic),
		cmocka_unit_test(test_out_of_range_rows),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
