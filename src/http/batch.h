/* batch.h — group commit with pipelined durability, for the HTTP workers.
 *
 * Every request runs inside the open batch (one store transaction) while
 * holding the library lock. The executor commits the batch between its
 * passes (the store only write()s its log) and goes on with the next one at
 * once; the syncer thread waits for the disk (store sync) and only then hands
 * the batch's replies back to the workers that own them. So the
 * workers never wait for an fsync, many requests share one, and nothing is
 * acknowledged before it is on disk: a reply is released only after a sync
 * that followed the commit of its batch, and any read it made saw only
 * commits that are older still. (The one reply tagged with an older batch
 * than the one it ran in is a claim that handed back its caller's own lease
 * and wrote nothing: see held_or_wrote in server.c.)
 *
 * Threads: the executor calls batch_join() and batch_commit()
 * (library lock held); workers call batch_add() and batch_take(); the syncer
 * and the checkpointer are the batcher's own. */
#ifndef TLY_HTTP_BATCH_H
#define TLY_HTTP_BATCH_H

#include <pthread.h>
#include <stdint.h>

struct tly;

/* The head of a reply that waits for its batch; the worker's own reply
 * record embeds it first. */
struct pending {
	uint64_t seq;          /* the batch that holds the request's writes */
	int owner;             /* the worker to hand it back to */
	int failed;            /* why its batch could not be committed (a tly_code), else 0 */
	struct pending *next;
};

struct batcher;

/* lock is the library lock the workers hold around every library call.
 * Returns NULL (and a message on stderr) when the store cannot defer sync. */
struct batcher *batch_new(struct tly *t, pthread_mutex_t *lock, int owners);

#define BATCH_MAX_OWNERS 64

/* The open batch, opened when none is (library lock held): its sequence
 * number, or 0 when the store refused to begin one. */
uint64_t batch_join(struct batcher *b);

/* For a reader on a connection of its own (library lock held): the last
 * batch whose commits it can have seen. The open batch is not one of them:
 * another connection sees nothing of it before its commit. */
uint64_t batch_seen(struct batcher *b);

/* Queues p (seq and owner set) until its batch is durable, and returns 0;
 * returns 1 without queueing when it is durable already (a reader that came
 * after the last sync). Called with the library lock held, so the executor
 * knows every reply of a batch when it commits it. The rest of the worker's
 * record may be filled in after the lock is let go (the batcher touches
 * only this header, and only the owner reads the record back). */
int batch_add(struct batcher *b, struct pending *p);

/* 1 when batch seq is on disk (its commit did not fail), for a reply sent
 * without batch_add(); 0 when it is not yet, or cannot be told. */
int batch_durable(struct batcher *b, uint64_t seq);

/* Hands p (durable already: batch_add() said so) to its owner at once. */
void batch_post(struct batcher *b, struct pending *p);

/* Commits the open batch, if one is (library lock held): its writes reach
 * the log and the syncer makes them durable; the next batch may start at
 * once. The executor calls it after each pass over the requests it had (and
 * after every BATCH_MAX_REQUESTS of a long pass, see server.c):
 * holding a batch open longer would only delay its sync, since the syncer
 * takes whatever was committed whenever the disk frees up (see
 * PERFORMANCE.md, fourteenth round: 4-8 % more cycles than a 0.5-ms wait). */
void batch_commit(struct batcher *b);

/* A descriptor that turns readable when replies wait for owner (or when
 * batch_poke() was called); batch_take() clears it and takes every reply in
 * the box. A box is signalled once, when mail reaches it empty, so the owner
 * takes whenever the descriptor turns readable. */
int batch_fd(struct batcher *b, int owner);
struct pending *batch_take(struct batcher *b, int owner);
void batch_poke(struct batcher *b, int owner);

/* What the batcher did so far. */
struct batch_stats {
	long requests, commits, syncs;
	double sync_avg_ms, sync_max_ms;
};
void batch_counts(struct batcher *b, struct batch_stats *st);

/* Commits and syncs what is open (takes the library lock) and stops the
 * threads; what was queued is then in the mailboxes, for batch_take(). */
void batch_stop(struct batcher *b);
void batch_free(struct batcher *b);

#endif
