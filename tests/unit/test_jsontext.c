/* test_jsontext.c — reals in their shortest exact form (jsontext.c): fixed
 * texts, the round trip and the digit count of random doubles against a
 * brute-force search, and whole documents whose strings and integers must
 * come through untouched. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"

static void test_real_text_fixed(void **state)
{
	static const struct { double v; const char *want; } cases[] = {
		{ 0.1, "0.1" }, { 0.7, "0.7" }, { 0.2, "0.2" }, { 2.5, "2.5" },
		{ 0.1 + 0.2, "0.30000000000000004" }, /* 0.3 would be another double */
		{ 1.0 / 3, "0.3333333333333333" }, { 0.49 / 0.535, "0.9158878504672896" },
		{ 0.0, "0.0" }, { -0.0, "-0.0" }, { 1.0, "1.0" }, { 100.0, "100.0" }, { -7.0, "-7.0" },
		{ 1e15, "1000000000000000.0" }, { 1e16, "10000000000000000.0" }, { 1e17, "1e17" },
		{ -7.993123477918488e16, "-79931234779184880.0" }, { 1e21, "1e21" }, { 1e300, "1e300" },
		{ 1e-5, "1e-5" }, { 1e-7, "1e-7" }, { -0.0001, "-0.0001" }, { 5e-324, "5e-324" },
		{ 123456789012345678.0, "1.2345678901234568e17" },
		{ 1.7976931348623157e308, "1.7976931348623157e308" },
		{ -2.2250738585072014e-308, "-2.2250738585072014e-308" },
		{ 123456.789, "123456.789" },
	};
	char out[TLY_REAL_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = tly_real_text(cases[i].v, out);
		assert_string_equal(out, cases[i].want);
		assert_int_equal(n, strlen(cases[i].want));
	}
	/* JSON has no NaN or infinity */
	assert_int_equal(tly_real_text(NAN, out), 0);
	assert_int_equal(tly_real_text(INFINITY, out), 0);
	assert_int_equal(tly_real_text(-INFINITY, out), 0);
}

/* The significant digits of a %g text: no sign, point, exponent, or leading
 * and trailing zeros ("0.000120" -> "12", "1.5e-7" -> "15"). */
static void digits_of(const char *s, char *d)
{
	size_t n = 0;

	for (; *s && *s != 'e' && *s != 'E'; s++)
		if (*s >= '0' && *s <= '9' && (n || *s != '0'))
			d[n++] = *s;
	while (n && d[n - 1] == '0')
		n--;
	d[n] = 0;
}

/* v's text reads back to v bit for bit, has as few significant digits as
 * the shortest %.{1..17}g that does, and is laid out as jansson lays it out
 * (an exponent where "%.17g" has one), never longer. */
static void check_shortest(double v)
{
	char out[TLY_REAL_MAX], ref[40], d1[24], d2[24], *jd;
	json_t *j = json_real(v);
	double back;
	size_t n;
	int p;

	assert_true((n = tly_real_text(v, out)) > 0);
	assert_int_equal(n, strlen(out));
	jd = json_dumps(j, JSON_ENCODE_ANY);
	assert_true(n <= strlen(jd));
	assert_true((strchr(out, 'e') != NULL) == (strchr(jd, 'e') != NULL));
	free(jd);
	json_decref(j);
	back = strtod(out, NULL);
	assert_memory_equal(&back, &v, sizeof(v));
	assert_true(strchr(out, '.') || strchr(out, 'e'));
	assert_null(strchr(out, '+'));
	for (p = 1; p <= 17; p++) {
		snprintf(ref, sizeof(ref), "%.*g", p, v);
		if (strtod(ref, NULL) == v)
			break;
	}
	digits_of(out, d1);
	digits_of(ref, d2);
	if (strcmp(d1, d2) != 0)
		fail_msg("%.17g: \"%s\", the shortest is \"%s\"", v, out, ref);
}

static void test_real_text_random(void **state)
{
	uint64_t x = 88172645463325252ULL;

	(void)state;
	for (int i = 0; i < 100000; i++) {
		double d;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(&d, &x, sizeof(d));
		if (isfinite(d))
			check_shortest(d); /* any bit pattern */
		check_shortest((double)(x >> 11) / 9007199254740992.0); /* [0, 1): confidences */
		check_shortest((double)(x % 100000) / 1000);             /* 3 decimals: box corners */
	}
}

static void check_doc(const char *in, const char *want)
{
	char buf[512];
	size_t n = strlen(in);

	assert_true(n < sizeof(buf));
	memcpy(buf, in, n);
	buf[n] = '#'; /* not read, not written */
	n = tly_json_shorten(buf, n);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
	assert_int_equal(buf[strlen(in)], '#');
}

static void test_shorten_documents(void **state)
{
	(void)state;
	check_doc("{\"a\":0.10000000000000001,\"b\":[0.69999999999999996,1.0000000000000001e300,2.5]}",
		  "{\"a\":0.1,\"b\":[0.7,1e300,2.5]}");
	/* strings, escapes and integers go as they are */
	check_doc("{\"0.10000000000000001\":\"0.10000000000000001\",\"q\":\"a\\\"0.20000000000000001\\\\\","
		  "\"n\":12345678901234567,\"m\":-3}",
		  "{\"0.10000000000000001\":\"0.10000000000000001\",\"q\":\"a\\\"0.20000000000000001\\\\\","
		  "\"n\":12345678901234567,\"m\":-3}");
	check_doc("[-0.0,1.0,-1e-5,1e-05,0.30000000000000004]", "[-0.0,1.0,-1e-5,1e-5,0.30000000000000004]");
	/* indented text (the CLI's), a bare real, nothing at all */
	check_doc("{\n  \"x\": 0.20000000000000001,\n  \"y\": [\n    0.5\n  ]\n}",
		  "{\n  \"x\": 0.2,\n  \"y\": [\n    0.5\n  ]\n}");
	check_doc("0.69999999999999996", "0.7");
	check_doc("", "");
	/* not a number after all: copied, never grown */
	check_doc("[1e99999,-.5e]", "[1e99999,-.5e]");
}

static void test_json_text_tree(void **state)
{
	static const char *const docs[] = {
		"{\"data\":{\"score\":0.1,\"vals\":[0.7,1e300,0.30000000000000004,-0.0001,1e-7]},\"n\":7}",
		"[0.1,[0.2,[0.3,{\"k\":\"v\"}]],true,null,\"\\u0000x\"]",
	};
	static const char *const want[] = {
		"{\"data\":{\"score\":0.1,\"vals\":[0.7,1e300,0.30000000000000004,-0.0001,1e-7]},\"n\":7}",
		"[0.1,[0.2,[0.3,{\"k\":\"v\"}]],true,null,\"\\u0000x\"]",
	};
	json_error_t e;

	(void)state;
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		json_t *j = json_loads(docs[i], JSON_ALLOW_NUL, &e), *back;
		char *s;
		assert_non_null(j);
		s = tly_json_text(j, JSON_COMPACT);
		assert_string_equal(s, want[i]);
		back = json_loads(s, JSON_ALLOW_NUL, &e); /* the same values */
		assert_non_null(back);
		assert_true(json_equal(j, back));
		free(s);
		json_decref(back);
		json_decref(j);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_text_fixed),
		cmocka_unit_test(test_real_text_random),
		cmocka_unit_test(test_shorten_documents),
		cmocka_unit_test(test_json_text_tree),
	};
	return cmocka_run_group_tests_name("jsontext", tests, NULL, NULL);
}
