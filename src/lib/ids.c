/* ids.c — see ids.h. */
#include "ids.h"

#include <sodium.h>
#include <string.h>

static const char *const prefixes[TLY_NKINDS] = {
	[TLY_ORG] = "org_", [TLY_USER] = "usr_", [TLY_PROJECT] = "prj_",
	[TLY_TASK] = "tsk_", [TLY_ASSIGNMENT] = "asg_", [TLY_RESPONSE] = "rsp_",
	[TLY_KEY] = "key_",
};

/* Crockford's base32, lower case: no i, l, o, u. */
static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";

static uint32_t round_fn(const struct tly_idcodec *c, enum tly_kind kind, int r, uint32_t half)
{
	unsigned char in[6], out[crypto_shorthash_BYTES];
	uint32_t v;

	in[0] = (unsigned char)kind;
	in[1] = (unsigned char)r;
	memcpy(in + 2, &half, 4);
	crypto_shorthash(out, in, sizeof(in), c->key);
	memcpy(&v, out, 4);
	return v;
}

char *tly_id_encode(const struct tly_idcodec *c, enum tly_kind kind, int64_t n,
		    char out[TLY_ID_MAX])
{
	uint32_t l = (uint32_t)((uint64_t)n >> 32), r = (uint32_t)n, t;
	uint64_t v;
	size_t plen = strlen(prefixes[kind]);

	for (int i = 0; i < 4; i++) {
		t = r;
		r = l ^ round_fn(c, kind, i, r);
		l = t;
	}
	v = ((uint64_t)l << 32) | r;
	memcpy(out, prefixes[kind], plen);
	for (int i = 12; i >= 0; i--) {
		out[plen + (size_t)i] = b32[v & 31];
		v >>= 5;
	}
	out[plen + 13] = '\0';
	return out;
}

int64_t tly_id_decode(const struct tly_idcodec *c, enum tly_kind kind, const char *s)
{
	size_t plen = strlen(prefixes[kind]);
	uint64_t v = 0;
	uint32_t l, r, t;

	if (!s || strncmp(s, prefixes[kind], plen) != 0 || strlen(s) != plen + 13)
		return 0;
	for (int i = 0; i < 13; i++) {
		const char *p = strchr(b32, s[plen + (size_t)i]);
		if (!p || !*p)
			return 0;
		if (i == 0 && (p - b32) > 15) /* 13 chars carry 65 bits: top one is 0 */
			return 0;
		v = (v << 5) | (uint64_t)(p - b32);
	}
	l = (uint32_t)(v >> 32);
	r = (uint32_t)v;
	for (int i = 3; i >= 0; i--) {
		t = l;
		l = r ^ round_fn(c, kind, i, l);
		r = t;
	}
	v = ((uint64_t)l << 32) | r;
	if (v == 0 || v > (uint64_t)INT64_MAX)
		return 0;
	return (int64_t)v;
}
