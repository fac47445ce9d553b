/* nospace.c — an LD_PRELOAD shim that makes the disk look full, for the
 * disk-full test (tests/e2e/diskfull.test.mjs). While the file NOSPACE_FLAG
 * exists, a write that would make the database file or its WAL longer fails
 * with ENOSPC, as on a full ext4: a write inside a file's present length
 * still succeeds (its blocks are allocated), so SQLite meets the full disk
 * where it would for real. Every other file and call passes through.
 *
 *   NOSPACE_DB=/abs/tally.db NOSPACE_FLAG=/abs/full LD_PRELOAD=libnospace.so tally serve
 *
 * NOSPACE_ERRNO=EDQUOT fails them as an exhausted disk quota does instead.
 * The test creates and removes the flag file to fill and free the "disk".
 * Paths must be given as they are opened (absolute, as tally opens them). */
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

#include "open_wrapper.h"

#define MAX_FD 65536

static unsigned char watched[MAX_FD]; /* 1: the database or its WAL */
static char db[4096], wal[4096], flag[4096];
static int full_errno = ENOSPC;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);

static pthread_once_t loaded = PTHREAD_ONCE_INIT;

static void load_once(void)
{
	const char *d = getenv("NOSPACE_DB"), *f = getenv("NOSPACE_FLAG");

#define LOAD(fn, name) fn = dlsym(RTLD_NEXT, name)
	LOAD(real_open, "open");
	LOAD(real_open64, "open64");
	LOAD(real_close, "close");
	LOAD(real_write, "write");
	LOAD(real_pwrite, "pwrite");
	LOAD(real_pwrite64, "pwrite64");
	LOAD(real_ftruncate, "ftruncate");
	LOAD(real_ftruncate64, "ftruncate64");
#undef LOAD
	if (!real_open || !real_open64 || !real_close || !real_write || !real_pwrite ||
	    !real_pwrite64 || !real_ftruncate || !real_ftruncate64)
		abort();
	if (!d || !f || d[0] != '/' || strlen(d) + 5 > sizeof(db) || strlen(f) >= sizeof(flag))
		return; /* not set up: pass everything through */
	snprintf(db, sizeof(db), "%s", d);
	snprintf(wal, sizeof(wal), "%s-wal", d);
	snprintf(flag, sizeof(flag), "%s", f);
	if (getenv("NOSPACE_ERRNO") && strcmp(getenv("NOSPACE_ERRNO"), "EDQUOT") == 0)
		full_errno = EDQUOT;
}

/* a library's constructor may open a file before ours ran */
#define LOAD() pthread_once(&loaded, load_once)

__attribute__((constructor)) static void nospace_init(void)
{
	LOAD();
}

/* Would this write make a watched file longer while the disk is "full"? */
static int refused(int fd, off_t off, size_t n)
{
	struct stat st;

	if (fd < 0 || fd >= MAX_FD || !watched[fd] || access(flag, F_OK) != 0)
		return 0;
	if (fstat(fd, &st) != 0 || off + (off_t)n <= st.st_size)
		return 0;
	errno = full_errno;
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
	if (fd >= 0 && fd < MAX_FD && watched[fd] && refused(fd, lseek(fd, 0, SEEK_CUR), n))
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
