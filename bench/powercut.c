/* powercut.c — what a power cut leaves on the disk, from a write log made by
 * bench/preload/wlog.c: applies the log to an image of the database (the
 * files as the previous cut left them) the way a power cut at the end of the
 * log could have.
 *
 *   powercut IMAGE_DB LOG MODE SEED
 *       IMAGE_DB  the image's database file; its WAL is IMAGE_DB-wal
 *       MODE      durable: only what a completed sync covered reaches the disk
 *                 torn:    that, and each later write whole, cut to a random
 *                          number of 512-byte sectors, or not at all
 *                 all:     everything (what kill -9 alone leaves)
 *
 * A write (or truncate) is durable when a sync of its file began after it
 * and completed; a create or unlink when a sync of the directory did. Writes
 * to a file whose creation did not reach the disk are lost with it. Prints
 * one summary line: RESULT records=… durable=… applied_late=… torn=… */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "preload/wlog.h"

struct item {
	struct wlog_rec r;
	const unsigned char *data;
};

static void fail(const char *what, const char *arg)
{
	fprintf(stderr, "powercut: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "",
		errno ? strerror(errno) : "bad input");
	exit(2);
}

static unsigned char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p = NULL;
	size_t cap = 0, len = 0, k;

	if (!f)
		fail("cannot open", path);
	do {
		if (len == cap && !(p = realloc(p, cap = cap ? cap * 2 : 1 << 20)))
			fail("out of memory", NULL);
		k = fread(p + len, 1, cap - len, f);
		len += k;
	} while (k > 0);
	fclose(f);
	*n = len;
	return p;
}

static uint64_t rng;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int main(int argc, char **argv)
{
	char path[WLOG_NFILES][4096];
	struct item *it = NULL;
	size_t n = 0, cap = 0, len, at = 0;
	unsigned char *log;
	long last[WLOG_NFILES] = { -1, -1, -1 }; /* index of the last completed sync's begin */
	int present[2], mode;
	long durable = 0, late = 0, torn = 0;

	if (argc != 5)
		return fprintf(stderr, "usage: powercut IMAGE_DB LOG durable|torn|all SEED\n"), 2;
	mode = strcmp(argv[3], "durable") == 0 ? 0 : strcmp(argv[3], "torn") == 0 ? 1
	     : strcmp(argv[3], "all") == 0 ? 2 : -1;
	if (mode < 0)
		fail("unknown mode", argv[3]);
	rng = strtoull(argv[4], NULL, 10) * 2654435761u + 88172645463325252ull;
	snprintf(path[WLOG_DB], sizeof(path[0]), "%s", argv[1]);
	snprintf(path[WLOG_WAL], sizeof(path[0]), "%s-wal", argv[1]);
	log = slurp(argv[2], &len);

	while (at + sizeof(struct wlog_rec) <= len) {
		struct item x;
		memcpy(&x.r, log + at, sizeof(x.r));
		at += sizeof(x.r);
		x.data = log + at;
		if (x.r.file >= WLOG_NFILES || x.r.type < WLOG_WRITE || x.r.type > WLOG_UNLINK ||
		    (x.r.type == WLOG_WRITE && x.r.len < 0))
			fail("corrupt log record in", argv[2]);
		if (x.r.type == WLOG_WRITE && (size_t)x.r.len > len - at) {
			at -= sizeof(x.r); /* the kill came in the middle of it */
			break;
		}
		if (x.r.type == WLOG_WRITE)
			at += (size_t)x.r.len;
		if (n == cap && !(it = realloc(it, (cap = cap ? cap * 2 : 4096) * sizeof(*it))))
			fail("out of memory", NULL);
		it[n++] = x;
	}
	/* killed in the middle of a record: its write came after every sync, so a
	 * power cut may lose it anyway */
	if (at != len)
		fprintf(stderr, "powercut: %zu bytes of a cut record ignored\n", len - at);

	/* a sync covers what was logged before it began, once it completed */
	for (size_t i = 0; i < n; i++)
		if (it[i].r.type == WLOG_SYNC_END)
			for (size_t j = i; j-- > 0;)
				if (it[j].r.type == WLOG_SYNC_BEGIN && it[j].r.id == it[i].r.id) {
					if ((long)j > last[it[j].r.file])
						last[it[j].r.file] = (long)j;
					break;
				}

	for (int f = 0; f < 2; f++)
		present[f] = access(path[f], F_OK) == 0;
	for (size_t i = 0; i < n; i++) {
		const struct wlog_rec *r = &it[i].r;
		int f = (int)r->file, fd, ok, dur;
		int64_t wlen = r->len;

		if (f == WLOG_DIR || r->type == WLOG_SYNC_BEGIN || r->type == WLOG_SYNC_END)
			continue;
		/* names live in the directory; contents in the file */
		dur = (long)i < last[(r->type == WLOG_CREATE || r->type == WLOG_UNLINK) ? WLOG_DIR : f];
		if (dur) {
			durable++;
		} else if (mode == 0) {
			continue;
		} else if (mode == 1) {
			uint64_t d = next() % 4;
			if (d == 0)
				continue;
			if (d == 1 && r->type == WLOG_WRITE && wlen > 512) {
				wlen = (int64_t)(next() % (uint64_t)(wlen / 512)) * 512;
				torn++;
			}
			late++;
		} else {
			late++;
		}
		switch (r->type) {
		case WLOG_CREATE:
			if (!present[f] && (fd = open(path[f], O_WRONLY | O_CREAT, 0644)) >= 0)
				close(fd);
			present[f] = 1;
			break;
		case WLOG_UNLINK:
			unlink(path[f]);
			present[f] = 0;
			break;
		case WLOG_TRUNC:
			if (present[f] && truncate(path[f], r->off) != 0)
				fail("cannot truncate", path[f]);
			break;
		case WLOG_WRITE:
			if (!present[f] || wlen == 0)
				break; /* the file itself did not survive */
			if ((fd = open(path[f], O_WRONLY)) < 0)
				fail("cannot open", path[f]);
			ok = pwrite(fd, it[i].data, (size_t)wlen, r->off) == (ssize_t)wlen;
			close(fd);
			if (!ok)
				fail("cannot write", path[f]);
			break;
		}
	}
	printf("RESULT records=%zu durable=%ld applied_late=%ld torn=%ld mode=%s\n", n, durable, late,
	       torn, argv[3]);
	free(it);
	free(log);
	return 0;
}
