/* test_util.c — the hand-rolled formatters of util.c and buf.c against libc:
 * tly_time_fmt against gmtime_r + strftime, tly_buf_addi against snprintf,
 * tly_buf_addd against tly_json_text, tly_buf_add_jstrn against jansson's dump. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "jsontext.h"
#include "util.h"

/* what the formatter replaced: gmtime_r, strftime, then the milliseconds */
static void libc_fmt(int64_t ms, char out[64])
{
	int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	time_t t = (time_t)secs;
	struct tm tm;
	size_t n;

	assert_non_null(gmtime_r(&t, &tm));
	n = strftime(out, 64, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 64 - n, ".%03dZ", (int)(ms - secs * 1000));
}

static void check_time(int64_t ms)
{
	char want[64], got[32];

	libc_fmt(ms, want);
	assert_string_equal(tly_time_fmt(ms, got), want);
}

static void test_time_fixed_points(void **state)
{
	char got[32];

	(void)state;
	assert_string_equal(tly_time_fmt(0, got), "1970-01-01T00:00:00.000Z");
	assert_string_equal(tly_time_fmt(951782400123, got), "2000-02-29T00:00:00.123Z");
	assert_string_equal(tly_time_fmt(4107542399999, got), "2100-02-28T23:59:59.999Z");
	assert_string_equal(tly_time_fmt(4107542400000, got), "2100-03-01T00:00:00.000Z");
	assert_string_equal(tly_time_fmt(-1, got), "1969-12-31T23:59:59.999Z");
	assert_string_equal(tly_time_fmt(253402300799999, got), "9999-12-31T23:59:59.999Z");
	/* past year 9999 the year is printed in full, not wrapped */
	assert_string_equal(tly_time_fmt(253402300800000, got), "10000-01-01T00:00:00.000Z");
}

static void test_time_matches_libc(void **state)
{
	uint64_t x = 88172645463325252ULL;

	(void)state;
	/* every day boundary of 1968–2104, and the millisecond either side */
	for (int64_t d = -700; d < 49000; d++) {
		check_time(d * 86400000);
		check_time(d * 86400000 - 1);
		check_time(d * 86400000 + 43199999);
	}
	/* random instants from 0 to the end of year 9999 */
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		check_time((int64_t)(x % 253402300800000ULL));
	}
}

static void check_int(struct tly_buf *b, int64_t v)
{
	char want[32];

	tly_buf_reset(b);
	snprintf(want, sizeof(want), "%" PRId64, v);
	assert_int_equal(tly_buf_addi(b, v), TLY_OK);
	assert_string_equal(b->p, want);
	assert_int_equal(b->len, strlen(want));
}

static void test_addi_matches_printf(void **state)
{
	struct tly_buf b;
	int64_t v = 1;

	(void)state;
	tly_buf_init(&b, 64);
	check_int(&b, 0);
	check_int(&b, INT64_MAX);
	check_int(&b, INT64_MIN);
	for (int i = 0; i < 19; i++) { /* 1 to 10^18, and the number before each */
		check_int(&b, v);
		check_int(&b, v - 1);
		check_int(&b, -v);
		check_int(&b, -v + 1);
		if (i < 18)
			v *= 10;
	}
	tly_buf_free(&b);
}

static void test_addi_respects_cap(void **state)
{
	struct tly_buf b;

	(void)state;
	tly_buf_init(&b, 8);
	assert_int_equal(tly_buf_adds(&b, "ab"), TLY_OK);
	assert_int_equal(tly_buf_addi(&b, 12345), TLY_OK);
	assert_string_equal(b.p, "ab12345");
	/* one more digit would pass the cap: refused, the buffer unchanged */
	assert_int_equal(tly_buf_addi(&b, 10), TLY_ETOOLARGE);
	assert_string_equal(b.p, "ab12345");
	assert_int_equal(b.len, 7);
	tly_buf_free(&b);
}

/* A quoted token goes in whole or not at all. */
static void test_add_token_whole_or_nothing(void **state)
{
	struct tly_buf b;

	(void)state;
	tly_buf_init(&b, 13); /* 12 bytes and the NUL */
	assert_int_equal(tly_buf_adds(&b, "x:"), TLY_OK);
	assert_int_equal(tly_buf_add_token(&b, "tsk_1"), TLY_OK);
	assert_string_equal(b.p, "x:\"tsk_1\"");
	assert_int_equal(b.len, 9);
	/* "ab" needs 4 bytes, 3 are left under the cap: refused, nothing added */
	assert_int_equal(tly_buf_add_token(&b, "ab"), TLY_ETOOLARGE);
	assert_string_equal(b.p, "x:\"tsk_1\"");
	assert_int_equal(b.len, 9);
	assert_int_equal(tly_buf_add_token(&b, "a"), TLY_OK);
	assert_string_equal(b.p, "x:\"tsk_1\"\"a\"");
	tly_buf_free(&b);
}

/* The consensus is written as text; it must read (and look) as a tree's
 * real written out by tly_json_text (jansson's dump, reals shortened). */
static void check_real(struct tly_buf *b, double v)
{
	json_t *j = json_real(v);
	char *want = tly_json_text(j, JSON_ENCODE_ANY);

	tly_buf_reset(b);
	assert_int_equal(tly_buf_addd(b, v), TLY_OK);
	assert_string_equal(b->p, want);
	free(want);
	json_decref(j);
}

static void test_addd_matches_json_text(void **state)
{
	static const double fixed[] = { 0.0, -0.0, 1.0, -1.0, 0.7, 0.49 / 0.535, 1.0 / 3, 2.5,
					1e-5, 1e-300, 5e-324, 1e21, 1e22, 123456789012345678.0,
					1.7976931348623157e308, -2.2250738585072014e-308 };
	struct tly_buf b;
	uint64_t x = 88172645463325252ULL;

	(void)state;
	tly_buf_init(&b, 64);
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		check_real(&b, fixed[i]);
	for (int i = 0; i < 100000; i++) { /* random bit patterns, the finite ones */
		double d;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(&d, &x, sizeof(d));
		if (isfinite(d))
			check_real(&b, d);
		check_real(&b, (double)(x >> 11) / 9007199254740992.0); /* [0, 1): confidences */
	}
	/* JSON has no NaN or infinity: refused, nothing written */
	tly_buf_reset(&b);
	assert_int_equal(tly_buf_addd(&b, NAN), TLY_EINVALID);
	assert_int_equal(tly_buf_addd(&b, -INFINITY), TLY_EINVALID);
	assert_int_equal(b.len, 0);
	tly_buf_free(&b);
}

static void test_add_jstrn_matches_jansson(void **state)
{
#define CASE(lit) { "" lit, sizeof(lit) - 1 }
	static const struct { const char *s; size_t n; } cases[] = {
		CASE(""), CASE("plain"), CASE("q\"uote"), CASE("back\\slash"), CASE("a/b"),
		CASE("tab\tnl\ncr\r"), CASE("\b\f"), CASE("\x01\x1f\x7f"), CASE("né🌍"),
		CASE("nul\0inside"),
	};
#undef CASE
	struct tly_buf b;

	(void)state;
	tly_buf_init(&b, 64);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = json_stringn(cases[i].s, cases[i].n);
		char *want = json_dumps(j, JSON_ENCODE_ANY);
		assert_non_null(want);
		tly_buf_reset(&b);
		assert_int_equal(tly_buf_add_jstrn(&b, cases[i].s, cases[i].n), TLY_OK);
		assert_string_equal(b.p, want);
		free(want);
		json_decref(j);
	}
	/* past the cap: nothing of the string stays */
	tly_buf_free(&b);
	tly_buf_init(&b, 8);
	assert_int_equal(tly_buf_adds(&b, "ab"), TLY_OK);
	assert_int_equal(tly_buf_add_jstrn(&b, "\n\n\n", 3), TLY_ETOOLARGE);
	assert_string_equal(b.p, "ab");
	tly_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time_fixed_points),
		cmocka_unit_test(test_time_matches_libc),
		cmocka_unit_test(test_addi_matches_printf),
		cmocka_unit_test(test_addi_respects_cap),
		cmocka_unit_test(test_addd_matches_json_text),
		cmocka_unit_test(test_add_jstrn_matches_jansson),
		cmocka_unit_test(test_add_token_whole_or_nothing),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
