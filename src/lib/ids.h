/* ids.h — opaque public identifiers.
 *
 * Rows are numbered by the store (1, 2, 3 ...). Showing those numbers would
 * tell one customer how many tasks every other customer has, so the public
 * form is a keyed 64-bit permutation (a 4-round Feistel network over SipHash,
 * keyed per instance) written as "<kind>_<13 base32 chars>". The kind is part
 * of the key schedule: a task id never decodes as a project id. */
#ifndef TLY_IDS_H
#define TLY_IDS_H

#include <stdint.h>
#include <stddef.h>

enum tly_kind { TLY_ORG, TLY_USER, TLY_PROJECT, TLY_TASK, TLY_ASSIGNMENT,
		TLY_RESPONSE, TLY_KEY, TLY_NKINDS };

#define TLY_ID_KEYBYTES 16
#define TLY_ID_MAX 24 /* buffer size for an encoded id, with the NUL */

struct tly_idcodec {
	unsigned char key[TLY_ID_KEYBYTES];
};

/* Writes the public form of row `n` into out (TLY_ID_MAX bytes); returns out. */
char *tly_id_encode(const struct tly_idcodec *c, enum tly_kind kind, int64_t n,
		    char out[TLY_ID_MAX]);
/* Parses a public id of the given kind; returns the row number, or 0 when s is
 * not a well-formed id of that kind (callers answer "not found"). */
int64_t tly_id_decode(const struct tly_idcodec *c, enum tly_kind kind, const char *s);

#endif
