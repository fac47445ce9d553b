/* wlog.c — an LD_PRELOAD shim for the power-cut test (bench/crash_test.sh
 * with CUT=power). It logs every write, truncate, create, unlink and sync of
 * one database file, its WAL and their directory, in the order they happen,
 * so that bench/powercut can rebuild what a power cut would have left on the
 * disk: what a completed fsync/fdatasync covered, and (to be hostile) any
 * part of the rest. kill -9 alone cannot test this: the page cache survives
 * it and keeps every write.
 *
 *   WLOG_DB=/abs/tally.db WLOG_FILE=/abs/wlog.bin LD_PRELOAD=libwlog.so tally serve
 *
 * A record is a struct rec, followed by len bytes of data for a write. A
 * write is durable when a sync of its file *began* after the write was
 * logged and then completed: every record is appended under one mutex,
 * after the write returned and before the sync is called, so the log order
 * follows what each thread saw. Paths must be given as they are opened
 * (absolute, as SQLite and tally open them); other files pass through. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "shim.h"
#include "wlog.h"

#define MAX_FD 65536

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static signed char fdfile[MAX_FD]; /* WLOG_* of a tracked descriptor, else -1 */
static char paths[WLOG_NFILES][4096];
static int logfd = -1;
static uint64_t sync_ids;

static int (*real_unlink)(const char *);

static void die(const char *what)
{
	static const char pre[] = "wlog: ";
	real_write(2, pre, sizeof(pre) - 1);
	real_write(2, what, strlen(what));
	real_write(2, "\n", 1);
	abort();
}

static void put(const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t k = real_write(logfd, c, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			die("cannot write the log");
		c += k;
		n -= (size_t)k;
	}
}

static void record(uint32_t type, int file, uint64_t id, int64_t off, const void *data, int64_t len)
{
	struct wlog_rec r = { type, (uint32_t)file, id, off, len };

	if (logfd < 0)
		return;
	pthread_mutex_lock(&mu);
	put(&r, sizeof(r));
	if (type == WLOG_WRITE && len > 0)
		put(data, (size_t)len);
	pthread_mutex_unlock(&mu);
}

static pthread_once_t loaded = PTHREAD_ONCE_INIT;

static void load_once(void)
{
	real_unlink = dlsym(RTLD_NEXT, "unlink");
	if (real_load() != 0 || !real_unlink)
		abort();
	memset(fdfile, -1, sizeof(fdfile));
}

/* a library's constructor may open a file before ours ran */
#define LOAD() pthread_once(&loaded, load_once)

__attribute__((constructor)) static void wlog_init(void)
{
	const char *db = getenv("WLOG_DB"), *log = getenv("WLOG_FILE");
	char *slash;

	LOAD();
	if (!db || !log || db[0] != '/' || strlen(db) + 5 > sizeof(paths[0]))
		return; /* not set up: pass everything through */
	snprintf(paths[WLOG_DB], sizeof(paths[0]), "%s", db);
	snprintf(paths[WLOG_WAL], sizeof(paths[0]), "%s-wal", db);
	snprintf(paths[WLOG_DIR], sizeof(paths[0]), "%s", db);
	slash = strrchr(paths[WLOG_DIR], '/');
	slash[slash == paths[WLOG_DIR]] = '\0';
	logfd = real_open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0)
		die("cannot open WLOG_FILE");
}

static int which(const char *path)
{
	for (int i = 0; i < WLOG_NFILES; i++)
		if (paths[i][0] && strcmp(path, paths[i]) == 0)
			return i;
	return -1;
}

static int tracked(int fd)
{
	return fd >= 0 && fd < MAX_FD ? fdfile[fd] : -1;
}

static int opened(int (*real)(const char *, int, ...), const char *path, int flags, mode_t mode)
{
	int f = logfd >= 0 ? which(path) : -1;
	int existed = f >= 0 && access(path, F_OK) == 0;
	int fd = real(path, flags, mode);

	if (fd >= 0 && fd < MAX_FD)
		fdfile[fd] = (signed char)f;
	if (fd >= 0 && f >= 0 && f != WLOG_DIR) {
		if (!existed)
			record(WLOG_CREATE, f, 0, 0, NULL, 0);
		if (flags & O_TRUNC)
			record(WLOG_TRUNC, f, 0, 0, NULL, 0);
	}
	return fd;
}

OPEN_WRAPPERS(real_open, real_open64)

int close(int fd)
{
	LOAD();
	if (fd >= 0 && fd < MAX_FD)
		fdfile[fd] = -1;
	return real_close(fd);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	LOAD();
	int f = tracked(fd);
	off_t at = f >= 0 ? lseek(fd, 0, SEEK_CUR) : 0;
	ssize_t k = real_write(fd, buf, n);

	if (f >= 0 && k > 0)
		record(WLOG_WRITE, f, 0, at, buf, k);
	return k;
}

static ssize_t pwritten(ssize_t (*real)(int, const void *, size_t, off_t), int fd,
			const void *buf, size_t n, off_t off)
{
	int f = tracked(fd);
	ssize_t k = real(fd, buf, n, off);

	if (f >= 0 && k > 0)
		record(WLOG_WRITE, f, 0, off, buf, k);
	return k;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	LOAD();
	return pwritten(real_pwrite, fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	LOAD();
	return pwritten(real_pwrite64, fd, buf, n, off);
}

static int truncated(int (*real)(int, off_t), int fd, off_t len)
{
	int f = tracked(fd), rc = real(fd, len);

	if (f >= 0 && rc == 0)
		record(WLOG_TRUNC, f, 0, len, NULL, 0);
	return rc;
}

int ftruncate(int fd, off_t len)
{
	LOAD();
	return truncated(real_ftruncate, fd, len);
}

int ftruncate64(int fd, off_t len)
{
	LOAD();
	return truncated(real_ftruncate64, fd, len);
}

static int synced(int (*real)(int), int fd)
{
	int f = tracked(fd), rc;
	uint64_t id;

	if (f < 0)
		return real(fd);
	pthread_mutex_lock(&mu);
	id = ++sync_ids;
	pthread_mutex_unlock(&mu);
	record(WLOG_SYNC_BEGIN, f, id, 0, NULL, 0);
	rc = real(fd);
	if (rc == 0)
		record(WLOG_SYNC_END, f, id, 0, NULL, 0);
	return rc;
}

int fsync(int fd)
{
	LOAD();
	return synced(real_fsync, fd);
}

int fdatasync(int fd)
{
	LOAD();
	return synced(real_fdatasync, fd);
}

int unlink(const char *path)
{
	LOAD();
	int f = logfd >= 0 ? which(path) : -1, rc = real_unlink(path);

	if (f >= 0 && f != WLOG_DIR && rc == 0)
		record(WLOG_UNLINK, f, 0, 0, NULL, 0);
	return rc;
}
