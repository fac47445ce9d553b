/* diskfault.c — an LD_PRELOAD shim that makes the disk misbehave, for the
 * tests of what tally does then (tests/e2e/diskfull.test.mjs and
 * syncfail.test.mjs). It watches one database file and its WAL; every other
 * file and call passes through.
 *
 *   DISKFAULT_DB=/abs/tally.db DISKFAULT_FULL=/abs/full DISKFAULT_SYNC=/abs/eio \
 *   LD_PRELOAD=libdiskfault.so tally serve
 *
 * While the file DISKFAULT_FULL exists, a write that would make a watched
 * file longer fails with ENOSPC, as on a full ext4: a write inside a file's
 * present length still succeeds (its blocks are allocated), so SQLite meets
 * the full disk where it would for real. DISKFAULT_ERRNO=EDQUOT fails them
 * as an exhausted disk quota does instead.
 *
 * While the file DISKFAULT_SYNC exists, fsync and fdatasync of a watched file
 * fail with EIO, as when the device lost a write-back: what the page cache
 * held may never reach the disk.
 *
 * The tests create and remove the flag files. Paths must be given as they
 * are opened (absolute, as tally opens them). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "shim.h"

#define MAX_FD 65536

static unsigned char watched[MAX_FD]; /* 1: the database or its WAL */
static char db[4096], wal[4096], full_flag[4096], sync_flag[4096];
static int full_errno = ENOSPC;

static pthread_once_t loaded = PTHREAD_ONCE_INIT;

static void set_path(char *dst, size_t cap, const char *src)
{
	if (src && src[0] == '/' && strlen(src) < cap)
		snprintf(dst, cap, "%s", src);
}

static void load_once(void)
{
	const char *d = getenv("DISKFAULT_DB"), *e = getenv("DISKFAULT_ERRNO");

	if (real_load() != 0)
		abort();
	if (!d || d[0] != '/' || strlen(d) + 5 > sizeof(db))
		return; /* not set up: pass everything through */
	snprintf(db, sizeof(db), "%s", d);
	snprintf(wal, sizeof(wal), "%s-wal", d);
	set_path(full_flag, sizeof(full_flag), getenv("DISKFAULT_FULL"));
	set_path(sync_flag, sizeof(sync_flag), getenv("DISKFAULT_SYNC"));
	if (e && strcmp(e, "EDQUOT") == 0)
		full_errno = EDQUOT;
}

/* a library's constructor may open a file before ours ran */
#define LOAD() pthread_once(&loaded, load_once)

__attribute__((constructor)) static void diskfault_init(void)
{
	LOAD();
}

static int is_watched(int fd)
{
	return fd >= 0 && fd < MAX_FD && watched[fd];
}

static int flagged(const char *flag)
{
	return flag[0] && access(flag, F_OK) == 0;
}

/* Would this write make a watched file longer while the disk is "full"? */
static int refused(int fd, off_t off, size_t n)
{
	struct stat st;

	if (!is_watched(fd) || !flagged(full_flag))
		return 0;
	if (fstat(fd, &st) != 0 || off + (off_t)n <= st.st_size)
		return 0;
	errno = full_errno;
	return 1;
}

static int sync_fails(int fd)
{
	if (!is_watched(fd) || !flagged(sync_flag))
		return 0;
	errno = EIO;
	return 1;
}

static int opened(int (*real)(const char *, int, ...), const char *path, int flags, mode_t mode)
{
	int fd = real(path, flags, mode);

	if (fd >= 0 && fd < MAX_FD)
		watched[fd] = db[0] && (strcmp(path, db) == 0 || strcmp(path, wal) == 0);
	return fd;
}

OPEN_WRAPPERS(real_open, real_open64)

int close(int fd)
{
	LOAD();
	if (fd >= 0 && fd < MAX_FD)
		watched[fd] = 0;
	return real_close(fd);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	LOAD();
	if (is_watched(fd) && refused(fd, lseek(fd, 0, SEEK_CUR), n))
		return -1;
	return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	LOAD();
	return refused(fd, off, n) ? -1 : real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	LOAD();
	return refused(fd, off, n) ? -1 : real_pwrite64(fd, buf, n, off);
}

int ftruncate(int fd, off_t len)
{
	LOAD();
	return refused(fd, len, 0) ? -1 : real_ftruncate(fd, len);
}

int ftruncate64(int fd, off_t len)
{
	LOAD();
	return refused(fd, len, 0) ? -1 : real_ftruncate64(fd, len);
}

int fsync(int fd)
{
	LOAD();
	return sync_fails(fd) ? -1 : real_fsync(fd);
}

int fdatasync(int fd)
{
	LOAD();
	return sync_fails(fd) ? -1 : real_fdatasync(fd);
}
