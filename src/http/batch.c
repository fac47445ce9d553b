/* batch.c — group commit with pipelined durability (see batch.h). */
#include "http/batch.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "store.h"
#include "tally.h"
#include "util.h"

#define FAILED_RING 16
/* A checkpoint each time the WAL grew by 8,000 pages (32 MiB at 4 KiB): the
 * hot pages (index leaves, the tasks being worked on) are rewritten by most
 * batches, so a rarer checkpoint copies each of them once for many commits,
 * and its fsync of the database competes less often with the WAL's. On the
 * claim+submit bench, 8,000 did better than SQLite's usual 1,000 in the runs
 * we made (noisy: see PERFORMANCE.md). */
#define CKPT_FRAMES 8000

struct mailbox {
	pthread_mutex_t mu;
	struct pending *head, **tail;
	int fd;                       /* eventfd: readable while the box is not empty */
};

struct batcher {
	struct store *s;
	pthread_mutex_t *lock;        /* the library lock */
	int open;                     /* under *lock: a batch is open... */
	uint64_t seq;                 /* ...with this number (the last one, when none is) */

	pthread_mutex_t qmu;          /* the replies that wait for the disk */
	pthread_cond_t swake;         /* the syncer's */
	struct pending *head, **tail;
	uint64_t committed;           /* every batch up to this one is committed... */
	uint64_t synced;              /* ...and up to this one on disk */
	struct { uint64_t seq; int code; } failed[FAILED_RING]; /* commits that failed, lately */
	unsigned long nfailed;
	long failing;                 /* under *lock: commits failed in a row */
	int sync_stop;
	long requests, commits, syncs;
	int64_t sync_us, sync_max_us;  /* time in fdatasync, all and longest */
	pthread_t syncer;
	int syncer_started;

	pthread_mutex_t cmu;          /* the checkpointer */
	pthread_cond_t cwake;
	int ckpt_due, ckpt_stop, ckpt_started;
	int ckpt_tail;                /* the checkpointer waits for the executor to copy the tail */
	pthread_t checkpointer;

	int owners;
	struct mailbox box[];
};

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t batch_join(struct batcher *b)
{
	struct tly_err err;

	if (b->open)
		return b->seq;
	tly_err_clear(&err);
	if (b->s->ops->begin(b->s, &err) != TLY_OK) {
		fprintf(stderr, "tally: cannot open a batch: %s\n", err.message);
		return 0;
	}
	b->open = 1;
	return ++b->seq;
}

uint64_t batch_seen(struct batcher *b)
{
	return b->open ? b->seq - 1 : b->seq;
}

int batch_add(struct batcher *b, struct pending *p)
{
	int durable;

	pthread_mutex_lock(&b->qmu);
	p->next = NULL;
	p->failed = 0;
	b->requests++;
	durable = p->seq <= b->synced;
	if (!durable) {
		*b->tail = p;
		b->tail = &p->next;
	}
	pthread_mutex_unlock(&b->qmu);
	return durable;
}

int batch_fd(struct batcher *b, int owner)
{
	return b->box[owner].fd;
}

void batch_poke(struct batcher *b, int owner)
{
	uint64_t one = 1;

	if (write(b->box[owner].fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		perror("tally: eventfd");
}

struct pending *batch_take(struct batcher *b, int owner)
{
	struct mailbox *m = &b->box[owner];
	struct pending *list;
	uint64_t n;

	if (read(m->fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		perror("tally: eventfd");
	pthread_mutex_lock(&m->mu);
	list = m->head;
	m->head = NULL;
	m->tail = &m->head;
	pthread_mutex_unlock(&m->mu);
	return list;
}

/* Appends the list head .. *tail (linked, last next NULL) to owner's box,
 * and wakes the owner only when the box was empty: a box that holds mail
 * has had its wake-up already, and batch_take() empties the box after it
 * clears the eventfd, so no mail is left behind unseen. (In the annotator
 * loop the executor posts every held claim's reply: one eventfd write a
 * cycle, most of them to a box the loop had not emptied yet.) */
static void mail(struct batcher *b, int owner, struct pending *head, struct pending **tail)
{
	struct mailbox *m = &b->box[owner];
	int was_empty;

	pthread_mutex_lock(&m->mu);
	was_empty = m->head == NULL;
	*m->tail = head;
	m->tail = tail;
	pthread_mutex_unlock(&m->mu);
	if (was_empty)
		batch_poke(b, owner);
}

void batch_post(struct batcher *b, struct pending *p)
{
	p->next = NULL;
	mail(b, p->owner, p, &p->next);
}

void batch_counts(struct batcher *b, struct batch_stats *st)
{
	pthread_mutex_lock(&b->qmu);
	st->requests = b->requests;
	st->commits = b->commits;
	st->syncs = b->syncs;
	st->sync_avg_ms = b->syncs ? (double)b->sync_us / (double)b->syncs / 1000.0 : 0;
	st->sync_max_ms = (double)b->sync_max_us / 1000.0;
	pthread_mutex_unlock(&b->qmu);
}

/* Why the commit of batch seq failed lately (a tly_code), 0 if it did not. (qmu held) */
static int failed_seq(const struct batcher *b, uint64_t seq)
{
	for (unsigned long i = 0; i < b->nfailed && i < FAILED_RING; i++)
		if (b->failed[i].seq == seq)
			return b->failed[i].code;
	return 0;
}

int batch_durable(struct batcher *b, uint64_t seq)
{
	int ok;

	pthread_mutex_lock(&b->qmu);
	/* the ring remembers the last FAILED_RING failures: a batch older than
	 * the oldest of them cannot be told */
	ok = seq <= b->synced && !failed_seq(b, seq) &&
	     (b->nfailed <= FAILED_RING || seq > b->failed[b->nfailed % FAILED_RING].seq);
	pthread_mutex_unlock(&b->qmu);
	return ok;
}

/* Hands every reply of a batch up to `synced` to its owner (qmu not held). */
static void release(struct batcher *b, uint64_t synced)
{
	struct pending *p, **pp, *out[BATCH_MAX_OWNERS] = { 0 }, **otail[BATCH_MAX_OWNERS];
	int n = b->owners;

	for (int i = 0; i < n; i++)
		otail[i] = &out[i];
	pthread_mutex_lock(&b->qmu);
	if (synced > b->synced)
		b->synced = synced;
	for (pp = &b->head; (p = *pp);) {
		if (p->seq > synced || p->owner >= n) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		p->next = NULL;
		p->failed = b->nfailed ? failed_seq(b, p->seq) : 0;
		*otail[p->owner] = p;
		otail[p->owner] = &p->next;
	}
	b->tail = pp;
	pthread_mutex_unlock(&b->qmu);
	for (int i = 0; i < n; i++)
		if (out[i])
			mail(b, i, out[i], otail[i]);
}

/* The log starts over (instead of growing) only when a write transaction
 * begins while every frame of it has been copied into the database, and that
 * is never the case while the writer keeps a batch open. So the checkpointer
 * copies without the library lock until little is left, then hands the tail
 * to the executor, which copies it right after a commit, while no batch is
 * open and the lock is held: the next batch then starts the log from the top. */
#define CKPT_TAIL 256

static void checkpoint(struct batcher *b)
{
	struct tly_err err;
	int left = 0;

	tly_err_clear(&err);
	for (int i = 0; i < 8; i++)
		if (b->s->ops->checkpoint(b->s, &left, &err) != TLY_OK) {
			fprintf(stderr, "tally: %s\n", err.message);
			return;
		} else if (left <= CKPT_TAIL) {
			break;
		}
	/* the executor has the checkpoint connection until it clears the tail */
	pthread_mutex_lock(&b->cmu);
	b->ckpt_tail = 1;
	while (b->ckpt_tail && !b->ckpt_stop)
		pthread_cond_wait(&b->cwake, &b->cmu);
	b->ckpt_tail = 0;
	pthread_mutex_unlock(&b->cmu);
}

/* In the executor, right after a commit: lock held, no batch open. */
static void checkpoint_tail(struct batcher *b)
{
	struct tly_err err;
	int left;

	pthread_mutex_lock(&b->cmu);
	if (b->ckpt_tail) {
		tly_err_clear(&err);
		if (b->s->ops->checkpoint(b->s, &left, &err) != TLY_OK)
			fprintf(stderr, "tally: %s\n", err.message);
		b->ckpt_tail = 0;
		pthread_cond_broadcast(&b->cwake);
	}
	pthread_mutex_unlock(&b->cmu);
}

/* Commits the open batch (its writes reach the log, not yet the disk) and
 * tells the syncer; the next batch can start at once. Library lock held. */
void batch_commit(struct batcher *b)
{
	struct tly_err err;
	uint64_t seq;
	enum tly_code rc;

	if (!b->open)
		return;
	tly_err_clear(&err);
	rc = b->s->ops->commit(b->s, &err);
	b->open = 0;
	seq = b->seq;
	checkpoint_tail(b);
	/* rolled back: none of this batch is acknowledged. A full disk fails
	 * every commit until space is freed: the log says so once, then once
	 * more when commits work again, instead of a line per batch. */
	if (rc != TLY_OK && !b->failing++)
		fprintf(stderr, "tally: commit failed, %s (its requests are answered %s; "
			"the log stays quiet until a commit works again)\n",
			err.message, tly_code_name(rc));
	else if (rc == TLY_OK && b->failing) {
		fprintf(stderr, "tally: commits work again, after %ld that failed\n", b->failing);
		b->failing = 0;
	}
	pthread_mutex_lock(&b->qmu);
	if (rc != TLY_OK) {
		b->failed[b->nfailed % FAILED_RING].seq = seq;
		b->failed[b->nfailed++ % FAILED_RING].code = rc;
	}
	b->committed = seq;
	b->commits++;
	pthread_cond_signal(&b->swake);
	pthread_mutex_unlock(&b->qmu);
}

/* The syncer: makes whatever was committed durable, then lets its replies
 * go. A sync covers every commit made before it began, so one sync often
 * serves several commits. */
static void *syncer_main(void *arg)
{
	struct batcher *b = arg;
	struct tly_err err;
	uint64_t upto;
	int64_t t0;
	int due = 0;

	pthread_setname_np(pthread_self(), "tally-sync"); /* top -H, perf, gdb */

	for (;;) {
		pthread_mutex_lock(&b->qmu);
		while (b->committed <= b->synced && !b->sync_stop)
			pthread_cond_wait(&b->swake, &b->qmu);
		if (b->committed <= b->synced) {
			pthread_mutex_unlock(&b->qmu);
			break;
		}
		upto = b->committed;
		pthread_mutex_unlock(&b->qmu);
		tly_err_clear(&err);
		t0 = now_us();
		if (b->s->ops->sync(b->s, &due, &err) != TLY_OK) {
			/* the log may or may not be on disk, and a failed fsync may
			 * have dropped the pages it could not write: stop here, and
			 * let the restart recover exactly what the disk holds */
			fprintf(stderr, "tally: %s; stopping to recover from what is on disk\n",
				err.message);
			abort();
		}
		t0 = now_us() - t0;
		pthread_mutex_lock(&b->qmu);
		b->syncs++;
		b->sync_us += t0;
		if (t0 > b->sync_max_us)
			b->sync_max_us = t0;
		pthread_mutex_unlock(&b->qmu);
		release(b, upto);
		if (due) {
			pthread_mutex_lock(&b->cmu);
			b->ckpt_due = 1;
			pthread_cond_signal(&b->cwake);
			pthread_mutex_unlock(&b->cmu);
		}
	}
	return NULL;
}

static void *checkpointer_main(void *arg)
{
	struct batcher *b = arg;

	pthread_setname_np(pthread_self(), "tally-ckpt"); /* top -H, perf, gdb */

	for (;;) {
		pthread_mutex_lock(&b->cmu);
		while (!b->ckpt_due && !b->ckpt_stop)
			pthread_cond_wait(&b->cwake, &b->cmu);
		if (b->ckpt_stop) {
			pthread_mutex_unlock(&b->cmu);
			break;
		}
		b->ckpt_due = 0;
		pthread_mutex_unlock(&b->cmu);
		checkpoint(b);
	}
	return NULL;
}

struct batcher *batch_new(struct tly *t, pthread_mutex_t *lock, int owners)
{
	struct batcher *b;
	struct tly_err err;

	if (owners < 1 || owners > BATCH_MAX_OWNERS) {
		fprintf(stderr, "tally: %d event loops: from 1 to %d\n", owners, BATCH_MAX_OWNERS);
		return NULL;
	}
	b = tly_xcalloc(1, sizeof(*b) + (size_t)owners * sizeof(struct mailbox));

	b->s = tly_store(t);
	b->lock = lock;
	b->owners = owners;
	b->tail = &b->head;
	pthread_mutex_init(&b->qmu, NULL);
	pthread_cond_init(&b->swake, NULL);
	pthread_mutex_init(&b->cmu, NULL);
	pthread_cond_init(&b->cwake, NULL);
	for (int i = 0; i < owners; i++) {
		pthread_mutex_init(&b->box[i].mu, NULL);
		b->box[i].tail = &b->box[i].head;
		b->box[i].fd = -1;
	}
	for (int i = 0; i < owners; i++)
		if ((b->box[i].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
			perror("tally: eventfd");
			goto fail;
		}
	tly_err_clear(&err);
	if (b->s->ops->defer_sync(b->s, CKPT_FRAMES, &err) != TLY_OK) {
		fprintf(stderr, "tally: %s\n", err.message);
		goto fail;
	}
	b->syncer_started = pthread_create(&b->syncer, NULL, syncer_main, b) == 0;
	b->ckpt_started = pthread_create(&b->checkpointer, NULL, checkpointer_main, b) == 0;
	if (!b->syncer_started || !b->ckpt_started) {
		fprintf(stderr, "tally: cannot start the commit threads\n");
		goto fail; /* batch_free() stops what did start */
	}
	return b;
fail:
	batch_free(b);
	return NULL;
}

void batch_stop(struct batcher *b)
{
	pthread_mutex_lock(b->lock); /* what the last requests wrote */
	batch_commit(b);
	pthread_mutex_unlock(b->lock);
	if (b->syncer_started) { /* it syncs the last commit before it stops */
		pthread_mutex_lock(&b->qmu);
		b->sync_stop = 1;
		pthread_cond_signal(&b->swake);
		pthread_mutex_unlock(&b->qmu);
		pthread_join(b->syncer, NULL);
		b->syncer_started = 0;
	}
	if (b->ckpt_started) {
		pthread_mutex_lock(&b->cmu);
		b->ckpt_stop = 1;
		pthread_cond_broadcast(&b->cwake);
		pthread_mutex_unlock(&b->cmu);
		pthread_join(b->checkpointer, NULL);
		b->ckpt_started = 0;
	}
}

void batch_free(struct batcher *b)
{
	if (!b)
		return;
	batch_stop(b);
	for (int i = 0; i < b->owners; i++) {
		if (b->box[i].fd >= 0)
			close(b->box[i].fd);
		pthread_mutex_destroy(&b->box[i].mu);
	}
	pthread_mutex_destroy(&b->qmu);
	pthread_cond_destroy(&b->swake);
	pthread_mutex_destroy(&b->cmu);
	pthread_cond_destroy(&b->cwake);
	free(b);
}
