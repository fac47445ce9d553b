/* pagecache.c — SQLite's default page cache with a cheaper truncation
 * (see pagecache.h for why). Every method but xTruncate passes straight
 * through; xCreate and xFetch/xRekey also keep the bound xTruncate reads.
 *
 * A cache is only ever used by the thread that holds its connection, as
 * SQLite's default cache assumes too, so its bound needs no lock. */
#include "pagecache.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>

struct wrapped {
	sqlite3_pcache *real;
	/* No page above top is held, except the ones moved above it (by xRekey)
	 * counted in `above` and not seen moving back down. */
	unsigned top, above;
};

static sqlite3_pcache_methods2 base; /* SQLite's own, as they were */
static atomic_ulong n_skipped, n_passed, n_moved;

static sqlite3_pcache *pc_create(int page_size, int extra_size, int purgeable)
{
	struct wrapped *c = calloc(1, sizeof(*c));

	if (c && !(c->real = base.xCreate(page_size, extra_size, purgeable))) {
		free(c);
		c = NULL;
	}
	return (sqlite3_pcache *)c;
}

static void pc_cachesize(sqlite3_pcache *p, int n)
{
	base.xCachesize(((struct wrapped *)p)->real, n);
}

static int pc_pagecount(sqlite3_pcache *p)
{
	return base.xPagecount(((struct wrapped *)p)->real);
}

static sqlite3_pcache_page *pc_fetch(sqlite3_pcache *p, unsigned key, int create)
{
	struct wrapped *c = (struct wrapped *)p;
	sqlite3_pcache_page *pg = base.xFetch(c->real, key, create);

	if (pg && key > c->top)
		c->top = key;
	return pg;
}

static void pc_unpin(sqlite3_pcache *p, sqlite3_pcache_page *pg, int discard)
{
	base.xUnpin(((struct wrapped *)p)->real, pg, discard);
}

static void pc_rekey(sqlite3_pcache *p, sqlite3_pcache_page *pg, unsigned from, unsigned to)
{
	struct wrapped *c = (struct wrapped *)p;

	/* a page above top got there by a rekey, so it was counted */
	if (from > c->top && c->above > 0)
		c->above--;
	if (to > c->top) {
		c->above++;
		atomic_fetch_add_explicit(&n_moved, 1, memory_order_relaxed);
	}
	base.xRekey(c->real, pg, from, to);
}

static void pc_truncate(sqlite3_pcache *p, unsigned limit)
{
	struct wrapped *c = (struct wrapped *)p;

	if (limit > c->top && c->above == 0) {
		atomic_fetch_add_explicit(&n_skipped, 1, memory_order_relaxed);
		return; /* no page at limit or above: nothing to drop */
	}
	atomic_fetch_add_explicit(&n_passed, 1, memory_order_relaxed);
	base.xTruncate(c->real, limit);
	/* every page from limit up is gone, the moved ones too */
	if (limit == 0)
		c->top = 0;
	else if (limit - 1 < c->top)
		c->top = limit - 1;
	c->above = 0;
}

static void pc_destroy(sqlite3_pcache *p)
{
	struct wrapped *c = (struct wrapped *)p;

	base.xDestroy(c->real);
	free(c);
}

static void pc_shrink(sqlite3_pcache *p)
{
	base.xShrink(((struct wrapped *)p)->real);
}

int pagecache_install(void)
{
	static sqlite3_pcache_methods2 m;

	if (sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &base) != SQLITE_OK || !base.xCreate ||
	    !base.xFetch || !base.xTruncate)
		return -1;
	m = base; /* iVersion, pArg, xInit and xShutdown stay SQLite's */
	m.xCreate = pc_create;
	m.xCachesize = pc_cachesize;
	m.xPagecount = pc_pagecount;
	m.xFetch = pc_fetch;
	m.xUnpin = pc_unpin;
	m.xRekey = pc_rekey;
	m.xTruncate = pc_truncate;
	m.xDestroy = pc_destroy;
	m.xShrink = pc_shrink;
	return sqlite3_config(SQLITE_CONFIG_PCACHE2, &m) == SQLITE_OK ? 0 : -1;
}

void pagecache_counts(struct pagecache_stats *st)
{
	st->skipped = atomic_load_explicit(&n_skipped, memory_order_relaxed);
	st->passed = atomic_load_explicit(&n_passed, memory_order_relaxed);
	st->moved_above = atomic_load_explicit(&n_moved, memory_order_relaxed);
}
