/* batch.h — group commit with pipelined durability, for the HTTP workers.
 *
 * Every request runs inside the open batch (one store transaction, each
 * request a savepoint of it) while holding the library lock. A committer
 * thread commits the batch (the store only write()s its log), opens the way
 * for the next batch at once, then waits for the disk (store sync) and only
 * then hands the batch's replies back to the workers that own them. So the
 * workers never wait for an fsync, many requests share one, and nothing is
 * acknowledged before it is on disk: a reply is released only after a sync
 * that followed the commit of its batch, and any read it made saw only
 * commits that are older still.
 *
 * Threads: workers call batch_join() (library lock held), batch_add() and
 * batch_take(); the committer and the checkpointer are the batcher's own. */
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
	int failed;            /* set when its batch could not be committed */
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

/* For a reader that writes nothing (library lock held): the batch whose
 * commits it can see (the open one, else the last committed one). */
uint64_t batch_current(struct batcher *b);

/* Queues p (seq and owner set) until its batch is durable, and returns 0;
 * returns 1 without queueing when it is durable already (a reader that came
 * after the last sync). Called with the library lock held, so the committer
 * knows every reply of a batch when it commits it. The rest of the worker's
 * record may be filled in after the lock is let go (the committer touches
 * only this header, and only the owner reads the record back). */
int batch_add(struct batcher *b, struct pending *p);

/* Hands p (durable already: batch_add() said so) to its owner at once. */
void batch_post(struct batcher *b, struct pending *p);

/* Every request that was ready has run: the open batch may go. */
void batch_kick(struct batcher *b);

/* A descriptor that turns readable when replies wait for owner (or when
 * batch_poke() was called); batch_take() clears it. */
int batch_fd(struct batcher *b, int owner);
struct pending *batch_take(struct batcher *b, int owner);
void batch_poke(struct batcher *b, int owner);

/* Requests and commits so far. */
void batch_counts(struct batcher *b, long *requests, long *commits);

/* Commits and syncs what is open and stops the threads; what was queued is
 * then in the mailboxes, for batch_take(). */
void batch_stop(struct batcher *b);
void batch_free(struct batcher *b);

#endif
