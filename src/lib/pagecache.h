/* pagecache.h — SQLite's own page cache, minus a scan of it at every commit.
 *
 * At the end of every transaction SQLite's pager truncates its page cache to
 * the database's size, and the default cache (pcache1) does that by walking
 * its whole hash table whenever the highest page number it ever held lies
 * past that size. SQLite 3.40 (Debian 12's) swaps two pages of a b-tree
 * balance through a temporary number at the 1-GiB lock page (262,145 with
 * 4-KiB pages), so after almost any write transaction that highest number is
 * 262,145 and the commit visits every cached page: 2,048 scattered headers
 * at tally's 8-MiB cache, a cache miss each, on every commit of the
 * annotator loop (3.5-4 % of the server's CPU samples).
 *
 * This wrapper passes every call to the default cache and keeps its own,
 * tighter bound on the page numbers held: the highest one fetched since the
 * last real truncation, and a count of pages moved above it. A truncation
 * that can have nothing to drop is answered without calling pcache1; any
 * other goes through. The bound only ever errs upwards (a page dropped or
 * recycled inside pcache1 is still counted), so nothing that should go is
 * ever kept. */
#ifndef TLY_PAGECACHE_H
#define TLY_PAGECACHE_H

/* Installs the wrapper around SQLite's current page cache. Must run before
 * SQLite initializes (sqlite3_config); returns 0, or -1 when SQLite refused
 * (then its own cache stays, which is only slower). */
int pagecache_install(void);

/* Since start (for tests): truncations answered here and passed to SQLite's
 * cache, and pages moved above every number fetched (the balance's swap). */
struct pagecache_stats {
	unsigned long skipped, passed, moved_above;
};
void pagecache_counts(struct pagecache_stats *st);

#endif
