/* shim.h — what the two LD_PRELOAD shims (wlog.c, diskfault.c) share, each
 * built alone into its own library: the libc functions both wrap, and
 * open() and open64().
 *
 * real_load() finds the libc functions (0, or -1 when one is missing).
 * A shim defines LOAD() (its load, once) and opened(real, path, flags,
 * mode), which calls real and notes the descriptor; then
 * OPEN_WRAPPERS(real_open, real_open64) defines both wrappers. open and
 * open64 differ only in the libc function they end in. */
#ifndef SHIM_H
#define SHIM_H

#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/types.h>

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static int real_load(void)
{
#define REAL(fn, name) ((fn = dlsym(RTLD_NEXT, name)) != NULL)
	return REAL(real_open, "open") && REAL(real_open64, "open64") &&
	       REAL(real_close, "close") && REAL(real_write, "write") &&
	       REAL(real_pwrite, "pwrite") && REAL(real_pwrite64, "pwrite64") &&
	       REAL(real_ftruncate, "ftruncate") && REAL(real_ftruncate64, "ftruncate64") &&
	       REAL(real_fsync, "fsync") && REAL(real_fdatasync, "fdatasync") ? 0 : -1;
#undef REAL
}

#define OPEN_WRAPPER(name, real)                                   \
	int name(const char *path, int flags, ...)                 \
	{                                                          \
		mode_t mode = 0;                                   \
		LOAD();                                            \
		if (flags & (O_CREAT | O_TMPFILE)) {               \
			va_list ap;                                \
			va_start(ap, flags);                       \
			mode = va_arg(ap, mode_t);                 \
			va_end(ap);                                \
		}                                                  \
		return opened(real, path, flags, mode);            \
	}

#define OPEN_WRAPPERS(real_open, real_open64) \
	OPEN_WRAPPER(open, real_open)         \
	OPEN_WRAPPER(open64, real_open64)

#endif
