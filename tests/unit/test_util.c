/* test_util.c — the hand-rolled formatters of util.c and buf.c against libc:
 * tly_time_fmt against gmtime_r + strftime, tly_buf_addi against snprintf. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "buf.h"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time_fixed_points),
		cmocka_unit_test(test_time_matches_libc),
		cmocka_unit_test(test_addi_matches_printf),
		cmocka_unit_test(test_addi_respects_cap),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
