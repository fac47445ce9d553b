/* open_wrapper.h — open() and open64() for the LD_PRELOAD shims (wlog.c,
 * diskfault.c). A shim defines LOAD() (its dlsym once) and
 * opened(real, path, flags, mode), which calls real and notes the
 * descriptor; then OPEN_WRAPPERS(real_open, real_open64) defines both.
 * open and open64 differ only in the libc function they end in. */
#ifndef OPEN_WRAPPER_H
#define OPEN_WRAPPER_H

#include <fcntl.h>
#include <stdarg.h>

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
