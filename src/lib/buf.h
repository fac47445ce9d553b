/* buf.h — a growable byte buffer with a hard size cap (curl's dynbuf idea).
 * Appends past the cap fail with TLY_ETOOLARGE and leave the buffer as it was. */
#ifndef TLY_BUF_H
#define TLY_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "err.h"

struct tly_buf {
	char *p;        /* NUL-terminated contents, owned; NULL until first append */
	size_t len, alloc, cap;
};

void tly_buf_init(struct tly_buf *b, size_t cap);
void tly_buf_free(struct tly_buf *b);
void tly_buf_reset(struct tly_buf *b);  /* empties, keeps the memory */
/* Drops what was appended past len (a partial line, a reply cut short). */
void tly_buf_cut(struct tly_buf *b, size_t len);
/* Appends n bytes. Inline: an export line or a reply is two dozen appends,
 * and with the room already there (the usual case) each is a copy whose
 * length the compiler often knows; only growing leaves the header. */
enum tly_code tly__buf_add_grow(struct tly_buf *b, const void *p, size_t n);
static inline enum tly_code tly_buf_add(struct tly_buf *b, const void *p, size_t n)
{
	if (n >= b->alloc - b->len) /* no room for n bytes and the NUL (alloc >= len + 1 once used) */
		return tly__buf_add_grow(b, p, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return TLY_OK;
}
enum tly_code tly_buf_adds(struct tly_buf *b, const char *s);
/* Appends a string literal, its length known at compile time. */
#define tly_buf_addl(b, lit) tly_buf_add((b), "" lit, sizeof(lit) - 1)
/* Appends v in decimal (printf costs a third of an export line). */
enum tly_code tly_buf_addi(struct tly_buf *b, int64_t v);
/* Appends a finite v as tly_json_text writes a real (jsontext.h: the
 * fewest digits that read back exactly, with a '.' or an 'e');
 * TLY_EINVALID for NaN and the infinities, which JSON lacks. */
enum tly_code tly_buf_addd(struct tly_buf *b, double v);
/* Appends "s": a token that needs no escaping (an encoded id, a timestamp).
 * All or nothing: TLY_ETOOLARGE leaves the buffer as it was. */
enum tly_code tly_buf_add_token(struct tly_buf *b, const char *s);
/* Appends s as a JSON string literal, quotes included (s is valid UTF-8). */
enum tly_code tly_buf_add_jstr(struct tly_buf *b, const char *s);
/* The same for n bytes of s, which may hold NULs (written as \u0000). */
enum tly_code tly_buf_add_jstrn(struct tly_buf *b, const char *s, size_t n);

#endif
