/* httpc.h — what the bench clients (loadgen, crashload) share: reading an
 * HTTP/1.1 answer off a libevent input buffer or a flat one, and the keys file. Only
 * Content-Length framing: tally's routes these clients call never chunk. */
#ifndef TLY_BENCH_HTTPC_H
#define TLY_BENCH_HTTPC_H

#include <stddef.h>

struct evbuffer;

#define HTTPC_MAX_HEADER 65536

/* The answer being read on one connection. */
struct httpc_answer {
	int have_head;     /* the head is parsed and drained; the body is awaited */
	int status;
	int close_after;   /* the server said Connection: close */
	size_t body_len;
};

enum { HTTPC_BAD = -1, HTTPC_MORE = 0, HTTPC_DONE = 1 };

/* Reads the answer at the front of in. HTTPC_DONE: it is whole, its head is
 * drained and its body (a->body_len bytes) is at the front of in, for the
 * caller to read and drain; clear a->have_head before the next request.
 * HTTPC_MORE: wait for more bytes. HTTPC_BAD: a head over HTTPC_MAX_HEADER,
 * not HTTP/1.x, chunked, or a body over max_body. */
int httpc_read(struct httpc_answer *a, struct evbuffer *in, size_t max_body);

/* The same, on a flat buffer holding what was read so far (head not
 * drained): at HTTPC_DONE the answer is buf[0 .. *head_len + a->body_len),
 * its body at buf + *head_len. Clear a->have_head before the next request. */
int httpc_read_flat(struct httpc_answer *a, const char *buf, size_t len, size_t max_body,
		    size_t *head_len);

/* One API key a line (blank lines skipped), *n of them; NULL with a message
 * on stderr when the file cannot be read. */
char **httpc_read_keys(const char *file, int *n);

#endif
