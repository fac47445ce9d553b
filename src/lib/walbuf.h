/* walbuf.h — an SQLite VFS that writes a transaction's WAL frames in one
 * write. SQLite writes each frame as two pwrites (its 24-byte header, then
 * the page), so a batch of 18 frames took 36 system calls, and ext4's
 * per-call and per-page work was over half of a COMMIT. This VFS wraps the
 * default one and only gathers contiguous writes to WAL files in memory,
 * handing them to the real file when the commit frame is complete (so a
 * write that fails still fails the commit) and before anything else touches
 * that file. Every other file, and every other call, goes straight through.
 * A write refused for an exhausted disk quota (EDQUOT) is reported as
 * SQLITE_FULL, as the unix VFS reports ENOSPC: both are a full disk.
 * A connection may move between threads between its calls, not during one
 * (SQLite writes a transaction's frames within one call; the run being
 * gathered is found through the calling thread at SQLite's barrier). */
#ifndef TLY_WALBUF_H
#define TLY_WALBUF_H

/* The VFS's name for sqlite3_open_v2; it is registered on first use.
 * NULL (the default VFS) when it could not be. */
const char *walbuf_vfs(void);

#endif
