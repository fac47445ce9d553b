/* handback.h — held leases that the event loop hands back itself.
 *
 * A submit with "next": true leases its caller's next task in its own
 * durable write, and the claim that follows only hands that lease back: it
 * writes nothing. Through the executor that claim waited its turn in the
 * queue (half of a pass, then the mail back: about 1 ms of a 3.5-ms cycle at
 * 64 annotators) for a reply the submit had already settled. So the executor
 * leaves that reply here, and the worker that reads the claim answers it at
 * once when all of these hold (else the claim goes to the executor as
 * before, which gives the same answer the slow way):
 *   - it comes with the same Authorization value as the submit, for the same
 *     project (both are in the entry's keyed 128-bit SipHash tag, its key
 *     drawn at start: nothing but that value can take it);
 *   - no request of that user ran in the executor since, on any key (a
 *     release, a heartbeat, another submit): each bumps the user's
 *     generation;
 *   - no request ran that could change what a claim sees — any route but
 *     claim, submit, heartbeat, release and adding tasks (a cancel, a role
 *     change, a revoked key) bumps the global generation;
 *   - the submit's write is on disk (the caller checks its batch);
 *   - the lease has not run out, and it was left here less than
 *     HANDBACK_TTL_MS ago: what another process writes (the CLI revoking a
 *     key) reaches no handback older than that.
 * An entry is taken once; a claim repeated later goes to the executor, which
 * finds the same live lease.
 *
 * Threads: the executor calls handback_touch() and handback_put(); the
 * workers call handback_take(). One short mutex covers the table. */
#ifndef TLY_HTTP_HANDBACK_H
#define TLY_HTTP_HANDBACK_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define HANDBACK_TTL_MS 200
#define HANDBACK_TEXT_MAX 65536 /* a longer reply (a task with big data) takes the slow way */

struct handback;

/* NULL when out of memory. */
struct handback *handback_new(void);
void handback_free(struct handback *h);

/* After each request the executor ran for user_id (0: nobody signed in):
 * bumps that user's generation, and with global set everyone's. */
void handback_touch(struct handback *h, int64_t user_id, int global);

/* Leaves the claim reply text (len bytes) of user_id's lease on project
 * (public id), written in batch seq and running out at expires_at (ms since
 * the epoch), for the next claim with the Authorization value auth. */
void handback_put(struct handback *h, const char *auth, const char *project, int64_t user_id,
		  uint64_t seq, int64_t expires_at, const char *text, size_t len);

/* For a claim with the Authorization value auth on project, now_ms since the
 * epoch: 1 with the reply text in out (reset first) and the batch of its
 * write in *seq, the entry taken; 0 when there is none to hand back. */
int handback_take(struct handback *h, const char *auth, const char *project, int64_t now_ms,
		  struct tly_buf *out, uint64_t *seq);

/* Claims handed back so far. */
long handback_count(struct handback *h);

#endif
