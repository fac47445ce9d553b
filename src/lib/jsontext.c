/* jsontext.c — JSON text with reals in their shortest exact form (see jsontext.h). */
#include "jsontext.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes into e v's "%.*e" text with the fewest significant digits (1-17)
 * that read back as v. A normal double has 15.95 digits of precision, so any
 * decimal of 15 digits or fewer that reads back as v is what "%.14e" rounds
 * it to; subnormals have fewer and are searched from 1. */
static void shortest_digits(double v, char e[TLY_REAL_MAX])
{
	for (int p = fabs(v) >= DBL_MIN || v == 0 ? 15 : 1; p < 17; p++) {
		snprintf(e, TLY_REAL_MAX, "%.*e", p - 1, v);
		if (strtod(e, NULL) == v)
			return;
	}
	snprintf(e, TLY_REAL_MAX, "%.16e", v);
}

size_t tly_real_text(double v, char out[TLY_REAL_MAX])
{
	char e[TLY_REAL_MAX], d[20], *o = out;
	int k = 0, x;

	if (!isfinite(v))
		return 0;
	shortest_digits(v, e);
	/* e is "[-]D.DDDDe[+-]XX": its digits, trailing zeros off, and exponent */
	for (const char *c = e; *c && *c != 'e'; c++)
		if (*c >= '0' && *c <= '9')
			d[k++] = *c;
	while (k > 1 && d[k - 1] == '0')
		k--;
	x = atoi(strchr(e, 'e') + 1);
	if (signbit(v))
		*o++ = '-';
	if (x >= -4 && x < 17) { /* where "%.17g" writes it out in full */
		if (x < 0) {
			memcpy(o, "0.000", (size_t)(1 - x));
			o += 1 - x;
			memcpy(o, d, (size_t)k);
			o += k;
		} else if (x < k - 1) {
			memcpy(o, d, (size_t)x + 1);
			o += x + 1;
			*o++ = '.';
			memcpy(o, d + x + 1, (size_t)(k - x - 1));
			o += k - x - 1;
		} else {
			memcpy(o, d, (size_t)k);
			o += k;
			memset(o, '0', (size_t)(x - k + 1));
			o += x - k + 1;
			memcpy(o, ".0", 2);
			o += 2;
		}
	} else { /* "1.5e-7", "1e300": no '+', no leading zeros */
		*o++ = d[0];
		if (k > 1) {
			*o++ = '.';
			memcpy(o, d + 1, (size_t)(k - 1));
			o += k - 1;
		}
		o += snprintf(o, 8, "e%d", x);
	}
	*o = 0;
	return (size_t)(o - out);
}

static int in_number(char c)
{
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* The real token of len bytes at t, rewritten at w (w <= t); its new length,
 * or len with the token copied as it was when the rewrite would not help. */
static size_t real_token(char *w, const char *t, size_t len)
{
	char tmp[TLY_REAL_MAX], out[TLY_REAL_MAX], *end;
	size_t n;
	double v;

	if (len < sizeof(tmp)) {
		memcpy(tmp, t, len);
		tmp[len] = 0;
		v = strtod(tmp, &end);
		if (*end == 0 && (n = tly_real_text(v, out)) > 0 && n <= len) {
			memcpy(w, out, n);
			return n;
		}
	}
	memmove(w, t, len);
	return len;
}

size_t tly_json_shorten(char *s, size_t n)
{
	size_t r = 0, w = 0, t;
	int real;

	while (r < n) {
		if (s[r] == '"') { /* a string, escapes and all, goes as it is */
			s[w++] = s[r++];
			while (r < n && s[r] != '"') {
				if (s[r] == '\\' && r + 1 < n)
					s[w++] = s[r++];
				s[w++] = s[r++];
			}
			if (r < n)
				s[w++] = s[r++];
		} else if (s[r] == '-' || (s[r] >= '0' && s[r] <= '9')) {
			for (t = r, real = 0; t < n && in_number(s[t]); t++)
				real |= s[t] == '.' || s[t] == 'e' || s[t] == 'E';
			if (real) {
				w += real_token(s + w, s + r, t - r);
			} else {
				memmove(s + w, s + r, t - r);
				w += t - r;
			}
			r = t;
		} else {
			s[w++] = s[r++];
		}
	}
	return w;
}

char *tly_json_text(const json_t *j, size_t flags)
{
	char *s = json_dumps(j, flags);

	if (s)
		s[tly_json_shorten(s, strlen(s))] = 0;
	return s;
}
