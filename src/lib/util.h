/* util.h — small helpers shared by the library: clock, allocation, UTF-8.
 *
 * Out-of-memory policy: tly_xmalloc and friends abort. A server that cannot
 * allocate cannot keep its promises; every acknowledged write is already in
 * the database log, so aborting loses nothing that was acknowledged. */
#ifndef TLY_UTIL_H
#define TLY_UTIL_H

#include <stddef.h>
#include <stdint.h>

int64_t tly_now_ms(void);
/* RFC 3339 UTC with milliseconds; buf holds at least 32 bytes. Returns buf. */
char *tly_time_fmt(int64_t ms, char buf[32]);

void *tly_xmalloc(size_t n);
void *tly_xcalloc(size_t n, size_t size);
void *tly_xrealloc(void *p, size_t n);
char *tly_xstrdup(const char *s);

/* Number of Unicode code points in a valid UTF-8 string of len bytes. */
size_t tly_utf8_len(const char *s, size_t len);

#endif
