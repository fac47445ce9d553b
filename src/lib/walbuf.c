/* walbuf.c — gathers a transaction's WAL frames into one write (see walbuf.h).
 *
 * Why this is safe: SQLite publishes new frames to readers (other
 * connections, other processes) only by writing the wal-index header in
 * shared memory after the frames, and sqlite3WalFrames writes the commit
 * frame last. The buffered run is handed to the file when the commit frame's
 * page is in it, inside that xWrite, whose error then fails the commit as an
 * unbuffered write would; and before any other call on the WAL file (a read
 * of a frame written earlier in the transaction, a sync, a truncation), so
 * what the file holds is always what SQLite believes it wrote. A process
 * killed with frames still buffered had not committed them. As a last guard,
 * a shared-memory barrier (SQLite issues one before it publishes a header)
 * finds the calling thread's buffer empty or writes it out. */
#include "walbuf.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A run is written out before it grows past this. It stays under 128 KiB:
 * the unix VFS masks each pwrite's length to its low 17 bits (a run of
 * exactly 128 KiB would be written as 0 bytes and reported as a full disk). */
#define WB_CAP (120u << 10)
#define WAL_HDR 32            /* the WAL file's header; frames follow it */
#define FRAME_HDR 24          /* a frame's header: page number, then the db size on a commit */

struct wb_file {
	sqlite3_file base;
	sqlite3_file *real;       /* the wrapped file, in the same allocation */
	int wal;                  /* a WAL file: its writes are gathered */
	int commit_page;          /* the next write is the page of a commit frame */
	sqlite3_int64 off;        /* the run gathered: len bytes at off */
	size_t len;
	unsigned char *buf;       /* WB_CAP bytes, from the first write */
};

static sqlite3_vfs wb_vfs;
static sqlite3_vfs *wb_real;
static int wb_ok;
static pthread_once_t wb_once = PTHREAD_ONCE_INIT;
/* the file whose run this thread is gathering (a connection is used by one
 * thread at a time, and SQLite writes a transaction's frames in one go) */
static _Thread_local struct wb_file *wb_pending;

static sqlite3_file *real_of(sqlite3_file *p)
{
	return ((struct wb_file *)p)->real;
}

/* The real file's write. The unix VFS says SQLITE_FULL for ENOSPC only: an
 * exhausted quota (EDQUOT) is as full a disk to whoever writes, so it is
 * reported the same way (errno is still the write's here). */
static int real_write(struct wb_file *f, const void *z, int n, sqlite3_int64 off)
{
	int rc = f->real->pMethods->xWrite(f->real, z, n, off);

	if ((rc & 0xff) == SQLITE_IOERR && errno == EDQUOT)
		rc = SQLITE_FULL;
	return rc;
}

static int flush(struct wb_file *f)
{
	int rc = SQLITE_OK;

	if (f->len)
		rc = real_write(f, f->buf, (int)f->len, f->off);
	f->len = 0;
	f->commit_page = 0;
	if (wb_pending == f)
		wb_pending = NULL;
	return rc;
}

/* a frame header (24 bytes at a frame's place) whose db size is not zero */
static int commit_header(const unsigned char *z, int n, sqlite3_int64 off)
{
	return n == FRAME_HDR && off >= WAL_HDR && (z[4] | z[5] | z[6] | z[7]) != 0;
}

static int wb_write(sqlite3_file *p, const void *z, int n, sqlite3_int64 off)
{
	struct wb_file *f = (struct wb_file *)p;
	int rc, commit = f->commit_page;

	if (!f->wal)
		return real_write(f, z, n, off);
	if (f->len && (off != f->off + (sqlite3_int64)f->len || f->len + (size_t)n > WB_CAP) &&
	    (rc = flush(f)) != SQLITE_OK)
		return rc;
	if ((size_t)n > WB_CAP || (!f->buf && !(f->buf = sqlite3_malloc(WB_CAP)))) {
		f->commit_page = 0;
		return real_write(f, z, n, off);
	}
	if (!f->len)
		f->off = off;
	memcpy(f->buf + f->len, z, (size_t)n);
	f->len += (size_t)n;
	wb_pending = f;
	if (commit) /* the commit frame is whole: out it goes, and its error with it */
		return flush(f);
	f->commit_page = commit_header(z, n, off);
	return SQLITE_OK;
}

/* Every other call on a WAL file sees the file as SQLite wrote it. */
#define FLUSHED(f, call)                                                   \
	do {                                                               \
		struct wb_file *f_ = (struct wb_file *)(f);                \
		int rc_ = f_->wal ? flush(f_) : SQLITE_OK;                 \
		if (rc_ != SQLITE_OK)                                      \
			return rc_;                                        \
		return call;                                               \
	} while (0)

static int wb_close(sqlite3_file *p)
{
	struct wb_file *f = (struct wb_file *)p;
	int rc = f->wal ? flush(f) : SQLITE_OK, rc2;

	rc2 = f->real->pMethods->xClose(f->real);
	sqlite3_free(f->buf);
	f->buf = NULL;
	return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read(sqlite3_file *p, void *z, int n, sqlite3_int64 off)
{
	FLUSHED(p, real_of(p)->pMethods->xRead(real_of(p), z, n, off));
}

static int wb_truncate(sqlite3_file *p, sqlite3_int64 size)
{
	FLUSHED(p, real_of(p)->pMethods->xTruncate(real_of(p), size));
}

static int wb_sync(sqlite3_file *p, int flags)
{
	FLUSHED(p, real_of(p)->pMethods->xSync(real_of(p), flags));
}

static int wb_size(sqlite3_file *p, sqlite3_int64 *size)
{
	FLUSHED(p, real_of(p)->pMethods->xFileSize(real_of(p), size));
}

static int wb_lock(sqlite3_file *p, int lock)
{
	FLUSHED(p, real_of(p)->pMethods->xLock(real_of(p), lock));
}

static int wb_unlock(sqlite3_file *p, int lock)
{
	FLUSHED(p, real_of(p)->pMethods->xUnlock(real_of(p), lock));
}

static int wb_reserved(sqlite3_file *p, int *out)
{
	return real_of(p)->pMethods->xCheckReservedLock(real_of(p), out);
}

static int wb_control(sqlite3_file *p, int op, void *arg)
{
	FLUSHED(p, real_of(p)->pMethods->xFileControl(real_of(p), op, arg));
}

static int wb_sector(sqlite3_file *p)
{
	return real_of(p)->pMethods->xSectorSize(real_of(p));
}

static int wb_device(sqlite3_file *p)
{
	return real_of(p)->pMethods->xDeviceCharacteristics(real_of(p));
}

static int wb_shm_map(sqlite3_file *p, int page, int size, int extend, void volatile **out)
{
	return real_of(p)->pMethods->xShmMap(real_of(p), page, size, extend, out);
}

static int wb_shm_lock(sqlite3_file *p, int offset, int n, int flags)
{
	return real_of(p)->pMethods->xShmLock(real_of(p), offset, n, flags);
}

/* SQLite calls this on the database file between writing a wal-index header's
 * two copies: nothing of this thread may still be gathered then. */
static void wb_shm_barrier(sqlite3_file *p)
{
	if (wb_pending && flush(wb_pending) != SQLITE_OK) {
		/* cannot be reported from here, and readers are about to be told
		 * the frames are there: stop, as the syncer does when a sync fails */
		fprintf(stderr, "tally: a WAL write failed at a barrier; stopping\n");
		abort();
	}
	real_of(p)->pMethods->xShmBarrier(real_of(p));
}

static int wb_shm_unmap(sqlite3_file *p, int del)
{
	return real_of(p)->pMethods->xShmUnmap(real_of(p), del);
}

static int wb_fetch(sqlite3_file *p, sqlite3_int64 off, int n, void **out)
{
	return real_of(p)->pMethods->xFetch(real_of(p), off, n, out);
}

static int wb_unfetch(sqlite3_file *p, sqlite3_int64 off, void *z)
{
	return real_of(p)->pMethods->xUnfetch(real_of(p), off, z);
}

static const sqlite3_io_methods wb_methods = {
	3,          wb_close,     wb_read,       wb_write,       wb_truncate,  wb_sync,
	wb_size,    wb_lock,      wb_unlock,     wb_reserved,    wb_control,   wb_sector,
	wb_device,  wb_shm_map,   wb_shm_lock,   wb_shm_barrier, wb_shm_unmap, wb_fetch,
	wb_unfetch,
};

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags, int *out)
{
	struct wb_file *f = (struct wb_file *)p;
	int rc;

	(void)vfs;
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)(f + 1);
	rc = wb_real->xOpen(wb_real, name, f->real, flags, out);
	/* the wrapper is usable only over a file that opened, with methods we
	 * know (version 3, as the unix VFS has) */
	if (rc != SQLITE_OK || !f->real->pMethods) {
		f->base.pMethods = NULL;
		return rc;
	}
	if (f->real->pMethods->iVersion < 3) {
		f->real->pMethods->xClose(f->real);
		f->base.pMethods = NULL;
		return SQLITE_CANTOPEN;
	}
	f->wal = (flags & SQLITE_OPEN_WAL) != 0;
	f->base.pMethods = &wb_methods;
	return SQLITE_OK;
}

static void wb_register(void)
{
	if (!(wb_real = sqlite3_vfs_find(NULL)))
		return;
	wb_vfs = *wb_real; /* every call but xOpen goes to the real VFS as is */
	wb_vfs.pNext = NULL;
	wb_vfs.zName = "tally-walbuf";
	/* the real file sits after ours, kept 8-byte aligned */
	wb_vfs.szOsFile = (int)((sizeof(struct wb_file) + 7) & ~(size_t)7) + wb_real->szOsFile;
	wb_vfs.xOpen = wb_open;
	wb_ok = sqlite3_vfs_register(&wb_vfs, 0) == SQLITE_OK;
}

const char *walbuf_vfs(void)
{
	pthread_once(&wb_once, wb_register);
	return wb_ok ? wb_vfs.zName : NULL;
}
