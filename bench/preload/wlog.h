/* wlog.h — the record format shared by the write logger (bench/preload/wlog.c)
 * and the power-cut rebuilder (bench/powercut.c). */
#ifndef WLOG_H
#define WLOG_H

#include <stdint.h>

enum { WLOG_DB, WLOG_WAL, WLOG_DIR, WLOG_NFILES };

enum {
	WLOG_WRITE = 1,  /* off, len, then len bytes */
	WLOG_TRUNC,      /* off: the new size */
	WLOG_CREATE,     /* the file did not exist before this open */
	WLOG_SYNC_BEGIN, /* id: matches its end */
	WLOG_SYNC_END,   /* only when the sync succeeded */
	WLOG_UNLINK,
};

struct wlog_rec {
	uint32_t type, file;
	uint64_t id;
	int64_t off, len;
};

#endif
