/* jsontext.h — JSON text out of jansson trees, with every real in its
 * shortest form that reads back to the same double.
 *
 * jansson writes a real with "%.17g": 0.1 comes out as 0.10000000000000001,
 * so task data, answers and schemas sent with 0.1 would be stored, exported
 * and served with 17 digits. Here a real gets the fewest significant digits
 * that strtod reads back bit for bit (0.1, 0.7, 0.30000000000000004), laid
 * out as "%.17g" lays it out: in full for exponents -4 to 16 (100.0,
 * 0.0001), else with an exponent (1e-5, 1e300); always a '.' or an 'e' so
 * that it reads back as a real, no '+' or leading zeros in the exponent.
 * So the text is never longer than jansson's. Integers and strings are
 * left as jansson wrote them. */
#ifndef TLY_JSONTEXT_H
#define TLY_JSONTEXT_H

#include <stddef.h>
#include <jansson.h>

#define TLY_REAL_MAX 32 /* the longest real text, NUL included */

/* Writes finite v into out; returns its length, or 0 for NaN and the
 * infinities, which JSON lacks. */
size_t tly_real_text(double v, char out[TLY_REAL_MAX]);

/* Rewrites the reals of n bytes of JSON text s (as jansson writes it) in
 * place; returns the new length, never more than n. Nothing past s[n - 1]
 * is read or written (no NUL is needed, and none is added). */
size_t tly_json_shorten(char *s, size_t n);

/* json_dumps, then tly_json_shorten: a malloc'ed NUL-terminated text, or
 * NULL where json_dumps gives NULL. */
char *tly_json_text(const json_t *j, size_t flags);

#endif
