/* buf.c — see buf.h. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include "jsontext.h"
#include "util.h"

void tly_buf_init(struct tly_buf *b, size_t cap)
{
	b->p = NULL;
	b->len = b->alloc = 0;
	b->cap = cap;
}

void tly_buf_free(struct tly_buf *b)
{
	free(b->p);
	tly_buf_init(b, b->cap);
}

void tly_buf_cut(struct tly_buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->p[len] = '\0';
	}
}

void tly_buf_reset(struct tly_buf *b)
{
	tly_buf_cut(b, 0);
}

static enum tly_code grow(struct tly_buf *b, size_t need)
{
	size_t n;

	if (need + 1 > b->cap)
		return TLY_ETOOLARGE;
	if (need + 1 <= b->alloc)
		return TLY_OK;
	n = b->alloc ? b->alloc : 256;
	while (n < need + 1)
		n *= 2;
	if (n > b->cap)
		n = b->cap;
	b->p = tly_xrealloc(b->p, n);
	b->alloc = n;
	return TLY_OK;
}

enum tly_code tly__buf_add_grow(struct tly_buf *b, const void *p, size_t n)
{
	if (grow(b, b->len + n) != TLY_OK)
		return TLY_ETOOLARGE;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return TLY_OK;
}

enum tly_code tly_buf_adds(struct tly_buf *b, const char *s)
{
	return tly_buf_add(b, s, strlen(s));
}

enum tly_code tly_buf_addi(struct tly_buf *b, int64_t v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--p = '-';
	return tly_buf_add(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

enum tly_code tly_buf_addd(struct tly_buf *b, double v)
{
	char tmp[TLY_REAL_MAX];
	size_t n = tly_real_text(v, tmp);

	return n ? tly_buf_add(b, tmp, n) : TLY_EINVALID;
}

enum tly_code tly_buf_add_token(struct tly_buf *b, const char *s)
{
	size_t start = b->len;

	if (tly_buf_addl(b, "\"") || tly_buf_adds(b, s) || tly_buf_addl(b, "\"")) {
		tly_buf_cut(b, start);
		return TLY_ETOOLARGE;
	}
	return TLY_OK;
}

enum tly_code tly_buf_add_jstr(struct tly_buf *b, const char *s)
{
	return tly_buf_add_jstrn(b, s, strlen(s));
}

enum tly_code tly_buf_add_jstrn(struct tly_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF"; /* as jansson writes them */
	size_t start = b->len;
	const unsigned char *u = (const unsigned char *)s, *end = u + n;

	if (tly_buf_add(b, "\"", 1))
		goto fail;
	while (u < end) {
		const unsigned char *run = u;
		while (u < end && *u >= 0x20 && *u != '"' && *u != '\\')
			u++;
		if (u > run && tly_buf_add(b, run, (size_t)(u - run)))
			goto fail;
		if (u == end)
			break;
		char esc[6] = { '\\', 0 };
		size_t len = 2;
		switch (*u) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		default:
			esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
			esc[4] = hex[*u >> 4]; esc[5] = hex[*u & 15];
			len = 6;
		}
		if (tly_buf_add(b, esc, len))
			goto fail;
		u++;
	}
	if (tly_buf_add(b, "\"", 1))
		goto fail;
	return TLY_OK;
fail:
	tly_buf_cut(b, start);
	return TLY_ETOOLARGE;
}
