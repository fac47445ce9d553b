/* handback.c — held leases that the event loop hands back itself (see handback.h).
 *
 * A direct-mapped table: an entry's slot comes from its tag, and a new entry
 * takes the slot of whatever was there (that one then goes the slow way).
 * Generations are counted per user id modulo USER_SLOTS: users who share a
 * slot only send each other's claims the slow way more often. */
#include "http/handback.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOTS 4096       /* a power of two */
#define USER_SLOTS 4096
#define TAG_BYTES crypto_shorthash_siphashx24_BYTES /* 128 bits */
#define TAG_INPUT_MAX 1024 /* an Authorization value and a project id, with room */

struct entry {
	unsigned char tag[TAG_BYTES];
	int used;
	int64_t user_id;
	uint32_t ugen;
	uint64_t ggen;
	uint64_t seq;
	int64_t expires_at;  /* the lease's, ms since the epoch */
	int64_t left_at;     /* when it was put here, monotonic ms */
	struct tly_buf text;
};

struct handback {
	pthread_mutex_t mu;
	unsigned char key[crypto_shorthash_siphashx24_KEYBYTES];
	uint32_t ugen[USER_SLOTS];
	uint64_t ggen;
	long taken;
	struct entry slot[SLOTS];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The keyed tag of (auth, project): SipHash-2-4 with a 128-bit output and a
 * key drawn at start, so no one can make a value that matches another's
 * entry (BLAKE2b cost 1 µs a submit, 4 % of the executor's time). The NUL
 * between them keeps "ab"+"c" and "a"+"bc" apart (neither holds a NUL).
 * -1 when they do not fit: no entry for them. */
static int tag_of(const struct handback *h, const char *auth, const char *project,
		  unsigned char tag[TAG_BYTES])
{
	unsigned char in[TAG_INPUT_MAX];
	size_t na = strlen(auth), np = strlen(project);

	if (na + 1 + np > sizeof(in))
		return -1;
	memcpy(in, auth, na + 1);
	memcpy(in + na + 1, project, np);
	crypto_shorthash_siphashx24(tag, in, na + 1 + np, h->key);
	return 0;
}

static struct entry *slot_of(struct handback *h, const unsigned char tag[TAG_BYTES])
{
	uint32_t i;

	memcpy(&i, tag, sizeof(i));
	return &h->slot[i & (SLOTS - 1)];
}

struct handback *handback_new(void)
{
	struct handback *h;

	if (sodium_init() < 0 || !(h = calloc(1, sizeof(*h))))
		return NULL;
	pthread_mutex_init(&h->mu, NULL);
	randombytes_buf(h->key, sizeof(h->key));
	return h; /* the slots' pages stay untouched until used */
}

void handback_free(struct handback *h)
{
	if (!h)
		return;
	for (int i = 0; i < SLOTS; i++)
		tly_buf_free(&h->slot[i].text);
	pthread_mutex_destroy(&h->mu);
	sodium_memzero(h->key, sizeof(h->key));
	free(h);
}

void handback_touch(struct handback *h, int64_t user_id, int global)
{
	pthread_mutex_lock(&h->mu);
	if (user_id)
		h->ugen[(uint64_t)user_id % USER_SLOTS]++;
	if (global)
		h->ggen++;
	pthread_mutex_unlock(&h->mu);
}

void handback_put(struct handback *h, const char *auth, const char *project, int64_t user_id,
		  uint64_t seq, int64_t expires_at, const char *text, size_t len)
{
	unsigned char tag[TAG_BYTES];
	struct entry *e;

	if (tag_of(h, auth, project, tag) != 0)
		return;
	e = slot_of(h, tag);
	pthread_mutex_lock(&h->mu);
	e->text.cap = HANDBACK_TEXT_MAX + 1; /* and the NUL */
	tly_buf_reset(&e->text);
	e->used = tly_buf_add(&e->text, text, len) == TLY_OK;
	if (e->used) {
		memcpy(e->tag, tag, TAG_BYTES);
		e->user_id = user_id;
		e->ugen = h->ugen[(uint64_t)user_id % USER_SLOTS];
		e->ggen = h->ggen;
		e->seq = seq;
		e->expires_at = expires_at;
		e->left_at = mono_ms();
	}
	pthread_mutex_unlock(&h->mu);
}

int handback_take(struct handback *h, const char *auth, const char *project, int64_t now_ms,
		  struct tly_buf *out, uint64_t *seq)
{
	unsigned char tag[TAG_BYTES];
	struct entry *e;
	int ok = 0;

	tly_buf_reset(out);
	if (tag_of(h, auth, project, tag) != 0)
		return 0;
	e = slot_of(h, tag);
	pthread_mutex_lock(&h->mu);
	if (e->used && sodium_memcmp(e->tag, tag, TAG_BYTES) == 0) {
		e->used = 0; /* taken, or of no use any more */
		ok = e->ugen == h->ugen[(uint64_t)e->user_id % USER_SLOTS] && e->ggen == h->ggen &&
		     e->expires_at > now_ms && mono_ms() - e->left_at < HANDBACK_TTL_MS &&
		     tly_buf_add(out, e->text.p, e->text.len) == TLY_OK;
		if (ok) {
			*seq = e->seq;
			h->taken++;
		}
	}
	pthread_mutex_unlock(&h->mu);
	if (!ok)
		tly_buf_reset(out);
	return ok;
}

long handback_count(struct handback *h)
{
	long n;

	pthread_mutex_lock(&h->mu);
	n = h->taken;
	pthread_mutex_unlock(&h->mu);
	return n;
}
