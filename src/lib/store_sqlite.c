/* store_sqlite.c — the SQLite backend of store.h.
 *
 * One connection, WAL journal, synchronous=FULL: a commit that returned is on
 * disk. Every statement is prepared once at open (a table of SQL below) and
 * reset after use. Transactions nest through savepoints so a caller may wrap
 * several domain operations into one commit (group commit).
 *
 * Deferred durability (the server): synchronous=NORMAL, so a commit only
 * write()s its WAL frames, and sync() fdatasync()s the WAL file from another
 * thread before the server acknowledges anything of that commit. Frames that
 * were written are on disk after that fdatasync whatever the page cache did,
 * which is exactly what FULL gives a commit. Checkpoints leave the writing
 * connection (wal_autocheckpoint=0) for a connection of their own. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "pagecache.h"
#include "walbuf.h"

#define SCHEMA_VERSION 1
#define MAX_DEPTH 16

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS orgs(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
	"  password_hash TEXT, created_at INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS memberships(org_id INTEGER NOT NULL, user_id INTEGER NOT NULL,"
	"  role INTEGER NOT NULL, PRIMARY KEY(org_id, user_id)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS memberships_user ON memberships(user_id);"
	"CREATE TABLE IF NOT EXISTS api_keys(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL,"
	"  org_id INTEGER NOT NULL, hash BLOB NOT NULL UNIQUE, created_at INTEGER NOT NULL,"
	"  revoked_at INTEGER);"
	"CREATE TABLE IF NOT EXISTS projects(id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL,"
	"  name TEXT NOT NULL, schema TEXT NOT NULL, created_at INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS projects_org ON projects(org_id, id);"
	"CREATE TABLE IF NOT EXISTS tasks(id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL,"
	"  unique_id TEXT, priority INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL, metadata TEXT,"
	"  status INTEGER NOT NULL DEFAULT 0, n_responses INTEGER NOT NULL DEFAULT 0,"
	"  n_leases INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
	"  is_gold INTEGER NOT NULL DEFAULT 0, gold TEXT, consensus TEXT,"
	"  slots INTEGER NOT NULL DEFAULT 1);"
	"CREATE UNIQUE INDEX IF NOT EXISTS tasks_uid ON tasks(project_id, unique_id)"
	"  WHERE unique_id IS NOT NULL;"
	/* only tasks that can take one more annotator: claims never scan past full ones */
	"CREATE INDEX IF NOT EXISTS tasks_open ON tasks(project_id, priority DESC, id)"
	"  WHERE status < 2 AND is_gold = 0 AND slots > 0;"
	"CREATE INDEX IF NOT EXISTS tasks_gold ON tasks(project_id, id) WHERE is_gold = 1;"
	"CREATE INDEX IF NOT EXISTS tasks_status ON tasks(project_id, status, id);"
	"CREATE INDEX IF NOT EXISTS tasks_project ON tasks(project_id);"
	"CREATE TABLE IF NOT EXISTS assignments(id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL,"
	"  project_id INTEGER NOT NULL, user_id INTEGER NOT NULL, status INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX IF NOT EXISTS asg_task_user ON assignments(task_id, user_id);"
	"CREATE INDEX IF NOT EXISTS asg_live ON assignments(project_id, user_id) WHERE status = 0;"
	"CREATE INDEX IF NOT EXISTS asg_expiry ON assignments(project_id, expires_at) WHERE status = 0;"
	"CREATE TABLE IF NOT EXISTS responses(id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL,"
	"  assignment_id INTEGER NOT NULL UNIQUE, user_id INTEGER NOT NULL, answers TEXT NOT NULL,"
	"  duration_ms INTEGER NOT NULL, created_at INTEGER NOT NULL, correct INTEGER);"
	"CREATE TABLE IF NOT EXISTS annotator_stats(project_id INTEGER NOT NULL, user_id INTEGER NOT NULL,"
	"  answered INTEGER NOT NULL DEFAULT 0, gold_seen INTEGER NOT NULL DEFAULT 0,"
	"  gold_correct INTEGER NOT NULL DEFAULT 0, quality REAL,"
	"  PRIMARY KEY(project_id, user_id)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS responses_task ON responses(task_id, id);";

/* A project's tasks by status, kept by the library's writes (see the count
 * deltas below). A database made before the table existed gets it, and its
 * counts, on the first open (one scan); the meta key says they are kept. */
static const char counts_sql[] =
	"CREATE TABLE IF NOT EXISTS project_counts(project_id INTEGER NOT NULL,"
	"  status INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(project_id, status)) WITHOUT ROWID;";
static const char recount_sql[] =
	"BEGIN IMMEDIATE;"
	"DELETE FROM project_counts;"
	"INSERT INTO project_counts SELECT project_id, status, count(*) FROM tasks"
	"  GROUP BY project_id, status;"
	"INSERT INTO meta(key, value) VALUES('counts', 1) ON CONFLICT(key) DO UPDATE SET value=1;"
	"COMMIT;";

enum stmt {
	S_BEGIN, S_BEGIN_READ, S_COMMIT, S_ROLLBACK, S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO,
	S_META_GET, S_META_SET, S_DATA_VERSION,
	S_ORG_INSERT, S_ORG_GET_ID, S_ORG_GET_NAME, S_ORG_LIST,
	S_USER_INSERT, S_USER_GET_ID, S_USER_GET_EMAIL,
	S_MEMBER_SET, S_MEMBER_GET, S_MEMBER_ORGS,
	S_KEY_INSERT, S_KEY_LOOKUP, S_KEY_REVOKE,
	S_PROJECT_INSERT, S_PROJECT_GET, S_PROJECT_LIST, S_PROJECT_COUNTS, S_COUNT_ADD, S_GOLD_COUNT,
	S_TASK_INSERT, S_TASK_BY_UID, S_TASK_GET, S_TASK_LIST, S_TASK_LIST_STATUS, S_TASK_NTH,
	S_TASK_UPDATE, S_TASK_NEXT, S_TASK_NEXT_GOLD, S_TASK_CONSENSUS,
	S_STATS_GET, S_STATS_PUT, S_STATS_LIST, S_STATS_BUMP, S_RESP_STATS,
	S_ASG_INSERT, S_ASG_GET, S_ASG_UPDATE, S_ASG_LIVE, S_ASG_EXPIRED,
	S_RESP_INSERT, S_RESP_LIST, S_RESP_FROM,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_BEGIN_READ] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT nested",
	[S_RELEASE] = "RELEASE nested",
	[S_ROLLBACK_TO] = "ROLLBACK TO nested",
	[S_META_GET] = "SELECT value FROM meta WHERE key=?1",
	[S_DATA_VERSION] = "PRAGMA data_version",
	[S_META_SET] = "INSERT INTO meta(key, value) VALUES(?1, ?2)"
		       " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
	[S_ORG_INSERT] = "INSERT INTO orgs(name, created_at) VALUES(?1, ?2)",
	[S_ORG_GET_ID] = "SELECT id, name, created_at FROM orgs WHERE id=?1",
	[S_ORG_GET_NAME] = "SELECT id, name, created_at FROM orgs WHERE name=?1",
	[S_ORG_LIST] = "SELECT id, name, created_at FROM orgs ORDER BY id",
	[S_USER_INSERT] = "INSERT INTO users(email, password_hash, created_at) VALUES(?1, ?2, ?3)",
	[S_USER_GET_ID] = "SELECT id, email, password_hash FROM users WHERE id=?1",
	[S_USER_GET_EMAIL] = "SELECT id, email, password_hash FROM users WHERE email=?1",
	[S_MEMBER_SET] = "INSERT INTO memberships(org_id, user_id, role) VALUES(?1, ?2, ?3)"
			 " ON CONFLICT(org_id, user_id) DO UPDATE SET role=excluded.role",
	[S_MEMBER_GET] = "SELECT role FROM memberships WHERE org_id=?1 AND user_id=?2",
	[S_MEMBER_ORGS] = "SELECT org_id FROM memberships WHERE user_id=?1 LIMIT 2",
	[S_KEY_INSERT] = "INSERT INTO api_keys(user_id, org_id, hash, created_at) VALUES(?1, ?2, ?3, ?4)",
	[S_KEY_LOOKUP] = "SELECT k.id, k.user_id, k.org_id, m.role, k.revoked_at IS NOT NULL"
			 " FROM api_keys k LEFT JOIN memberships m"
			 " ON m.org_id = k.org_id AND m.user_id = k.user_id WHERE k.hash=?1",
	[S_KEY_REVOKE] = "UPDATE api_keys SET revoked_at=?2 WHERE id=?1 AND revoked_at IS NULL",
	[S_PROJECT_INSERT] = "INSERT INTO projects(org_id, name, schema, created_at) VALUES(?1, ?2, ?3, ?4)",
	[S_PROJECT_GET] = "SELECT id, org_id, name, schema, created_at FROM projects WHERE id=?1",
	[S_PROJECT_LIST] = "SELECT id, org_id, name, schema, created_at FROM projects"
			   " WHERE org_id=?1 AND id>?2 ORDER BY id LIMIT ?3",
	[S_PROJECT_COUNTS] = "SELECT status, n FROM project_counts WHERE project_id=?1",
	[S_COUNT_ADD] = "INSERT INTO project_counts(project_id, status, n) VALUES(?1, ?2, ?3)"
			" ON CONFLICT(project_id, status) DO UPDATE SET n = n + excluded.n",
	[S_GOLD_COUNT] = "SELECT count(*) FROM tasks INDEXED BY tasks_gold WHERE project_id=?1 AND is_gold = 1",
	[S_TASK_INSERT] = "INSERT INTO tasks(project_id, unique_id, priority, data, metadata, status,"
			  " created_at, is_gold, gold, slots) VALUES(?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?9)",
	[S_TASK_BY_UID] = "SELECT id FROM tasks WHERE project_id=?1 AND unique_id=?2",
	[S_TASK_GET] = "SELECT id, project_id, unique_id, priority, data, metadata, status,"
		       " n_responses, n_leases, created_at, is_gold, gold, consensus FROM tasks WHERE id=?1",
	[S_TASK_LIST] = "SELECT id, project_id, unique_id, priority, data, metadata, status,"
			" n_responses, n_leases, created_at, is_gold, gold, consensus"
			" FROM tasks INDEXED BY tasks_project"
			" WHERE project_id=?1 AND id>?2 AND id<=?5 ORDER BY id LIMIT ?3",
	/* OFFSET steps through index entries only (the rowid is in the index) */
	[S_TASK_NTH] = "SELECT id FROM tasks INDEXED BY tasks_project"
		       " WHERE project_id=?1 AND id>?2 ORDER BY id LIMIT 1 OFFSET ?3",
	[S_TASK_LIST_STATUS] = "SELECT id, project_id, unique_id, priority, data, metadata, status,"
			       " n_responses, n_leases, created_at, is_gold, gold, consensus"
			       " FROM tasks INDEXED BY tasks_status"
			       " WHERE project_id=?1 AND status=?4 AND id>?2 AND id<=?5 ORDER BY id LIMIT ?3",
	/* slots moves by the change in responses + leases (right-hand sides read the old row) */
	[S_TASK_UPDATE] = "UPDATE tasks SET status=?2, n_responses=?3, n_leases=?4,"
			  " slots=slots + n_responses + n_leases - ?3 - ?4,"
			  " consensus=coalesce(?5, consensus) WHERE id=?1",
	/* INDEXED BY: the planner would rather sort every open task */
	[S_TASK_NEXT] = "SELECT t.id, t.project_id, t.unique_id, t.priority, t.data, t.metadata,"
			" t.status, t.n_responses, t.n_leases, t.created_at, t.is_gold, t.gold,"
			" t.consensus FROM tasks t INDEXED BY tasks_open"
			" WHERE t.project_id=?1 AND t.status < 2 AND t.is_gold = 0 AND t.slots > 0"
			" AND t.n_responses + t.n_leases < ?3"
			" AND NOT EXISTS (SELECT 1 FROM assignments a"
			"   WHERE a.task_id = t.id AND a.user_id = ?2)"
			" ORDER BY t.priority DESC, t.id LIMIT 1",
	[S_TASK_NEXT_GOLD] = "SELECT t.id FROM tasks t INDEXED BY tasks_gold"
			     " WHERE t.project_id=?1 AND t.is_gold = 1"
			     " AND t.status < 3 AND NOT EXISTS (SELECT 1 FROM assignments a"
			     "   WHERE a.task_id = t.id AND a.user_id = ?2) ORDER BY t.id LIMIT 1",
	[S_TASK_CONSENSUS] = "UPDATE tasks SET consensus=?2 WHERE id=?1",
	[S_STATS_GET] = "SELECT project_id, user_id, answered, gold_seen, gold_correct,"
			" coalesce(quality, -1) FROM annotator_stats WHERE project_id=?1 AND user_id=?2",
	[S_STATS_PUT] = "INSERT INTO annotator_stats(project_id, user_id, answered, gold_seen,"
			" gold_correct, quality) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"
			" ON CONFLICT(project_id, user_id) DO UPDATE SET answered=excluded.answered,"
			" gold_seen=excluded.gold_seen, gold_correct=excluded.gold_correct,"
			" quality=excluded.quality",
	[S_STATS_LIST] = "SELECT project_id, user_id, answered, gold_seen, gold_correct,"
			 " coalesce(quality, -1) FROM annotator_stats WHERE project_id=?1 ORDER BY user_id",
	[S_STATS_BUMP] = "INSERT INTO annotator_stats(project_id, user_id, answered, gold_seen,"
			 " gold_correct) VALUES(?1, ?2, ?3, ?4, ?5)"
			 " ON CONFLICT(project_id, user_id) DO UPDATE SET answered=answered+excluded.answered,"
			 " gold_seen=gold_seen+excluded.gold_seen,"
			 " gold_correct=gold_correct+excluded.gold_correct",
	[S_RESP_STATS] = "SELECT r.id, r.user_id, r.answers, coalesce(s.quality, -1),"
			 " coalesce(s.gold_seen, 0), coalesce(s.gold_correct, 0), coalesce(s.answered, 0)"
			 " FROM responses r LEFT JOIN annotator_stats s"
			 " ON s.project_id=?1 AND s.user_id=r.user_id WHERE r.task_id=?2 ORDER BY r.id",
	[S_ASG_INSERT] = "INSERT INTO assignments(task_id, project_id, user_id, status, created_at,"
			 " expires_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	[S_ASG_GET] = "SELECT id, task_id, project_id, user_id, status, created_at, expires_at"
		      " FROM assignments WHERE id=?1",
	[S_ASG_UPDATE] = "UPDATE assignments SET status=?2, expires_at=?3 WHERE id=?1",
	[S_ASG_LIVE] = "SELECT id, task_id, project_id, user_id, status, created_at, expires_at"
		       " FROM assignments INDEXED BY asg_live"
		       " WHERE project_id=?1 AND user_id=?2 AND status=0"
		       " AND expires_at > ?3 ORDER BY id LIMIT 1",
	[S_ASG_EXPIRED] = "SELECT id, task_id, project_id, user_id, status, created_at, expires_at"
			  " FROM assignments INDEXED BY asg_expiry"
			  " WHERE project_id=?1 AND status=0 AND expires_at <= ?2"
			  " ORDER BY expires_at LIMIT ?3",
	[S_RESP_INSERT] = "INSERT INTO responses(task_id, assignment_id, user_id, answers, duration_ms,"
			  " created_at, correct) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_RESP_FROM] = "SELECT id, task_id, assignment_id, user_id, answers, duration_ms, created_at,"
			" coalesce(correct, -1) FROM responses INDEXED BY responses_task"
			" WHERE task_id >= ?1 ORDER BY task_id, id",
	[S_RESP_LIST] = "SELECT id, task_id, assignment_id, user_id, answers, duration_ms, created_at,"
			" coalesce(correct, -1) FROM responses WHERE task_id=?1 ORDER BY id",
};

/* The changes to projects' status counts that the open transaction made,
 * kept in memory and written once at its commit: a batch of claims and
 * submits moves three counters of one project a few dozen times, and an
 * UPDATE per move would cost more than the rest of a status change. */
#define COUNT_SLOTS 8

struct count_deltas {
	int n;
	struct { int64_t project; int64_t d[TLY_TASK_NSTATUS]; } p[COUNT_SLOTS];
};

struct sqlite_store {
	struct store base;
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	int depth; /* transaction nesting */
	/* per nesting level: no savepoint was set, and the change count then */
	unsigned char unguarded[MAX_DEPTH];
	int64_t changes[MAX_DEPTH];
	struct count_deltas counts;            /* of the open transaction */
	struct count_deltas saved[MAX_DEPTH];  /* as they were when each savepoint was set */
	int doomed; /* an unguarded level rolled back after writing */
	int full;   /* the open transaction met a full disk */
	uint64_t undone; /* see store.h */
	int64_t dv; /* PRAGMA data_version, valid for the open transaction */
	int dv_valid;
	/* deferred durability: used only by the syncing / checkpointing threads */
	char *path;
	int wal_fd;              /* -1 until the first sync() */
	sqlite3 *ckpt;           /* the checkpointer's own connection */
	atomic_int wal_frames;   /* WAL size after the last commit (the wal hook) */
	int ckpt_frames;         /* WAL size when the last checkpoint was asked for */
	int ckpt_every;          /* ask for one each time it grew by this many frames */
};

#define DB(s) (((struct sqlite_store *)(s))->db)

static enum tly_code db_fail(struct store *s, struct tly_err *err, const char *what)
{
	int rc = sqlite3_extended_errcode(DB(s)), sys = sqlite3_system_errno(DB(s));

	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return tly_err_set(err, TLY_ECONFLICT, "", "%s: %s", what, sqlite3_errmsg(DB(s)));
	/* the one failure a retry later fixes by itself: busy, not internal
	 * (the server answers 503 with Retry-After; the batcher counts on
	 * busy at a commit meaning exactly this). An exhausted quota comes as
	 * FULL too (walbuf.c). The unix VFS says FULL only for the database's
	 * and the log's own writes: when growing the -shm file (the log's
	 * index) meets a full disk, it says IOERR_SHMSIZE, and the errno
	 * SQLite kept tells the two apart. */
	if ((rc & 0xff) == SQLITE_FULL ||
	    ((rc & 0xff) == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT))) {
		((struct sqlite_store *)s)->full = 1;
		return tly_err_set(err, TLY_EBUSY, "", "%s: the disk that holds the database is full",
				   what);
	}
	return tly_err_set(err, TLY_EINTERNAL, "", "%s: %s", what, sqlite3_errmsg(DB(s)));
}

static sqlite3_stmt *get(struct store *s, enum stmt i)
{
	return ((struct sqlite_store *)s)->st[i];
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? tly_xstrdup((const char *)t) : NULL;
}

/* Runs a statement that returns no rows. */
static enum tly_code exec(struct store *s, sqlite3_stmt *st, struct tly_err *err, const char *what)
{
	int rc = sqlite3_step(st);
	enum tly_code out = TLY_OK;

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		out = db_fail(s, err, what);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return out;
}

static void done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *t)
{
	if (t)
		sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Steps a one-row lookup: TLY_OK with the row ready, TLY_ENOTFOUND, or failure. */
static enum tly_code step_one(struct store *s, sqlite3_stmt *st, struct tly_err *err,
			      const char *what)
{
	int r = sqlite3_step(st);

	if (r == SQLITE_ROW)
		return TLY_OK;
	if (r == SQLITE_DONE)
		return tly_err_set(err, TLY_ENOTFOUND, "", "%s not found", what);
	return db_fail(s, err, what);
}

/* ---- status counts ------------------------------------------------------- */

/* Writes the pending deltas into project_counts (inside the transaction). */
static enum tly_code counts_flush(struct store *s, struct tly_err *err)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *st = get(s, S_COUNT_ADD);
	enum tly_code rc = TLY_OK;

	for (int i = 0; i < q->counts.n && rc == TLY_OK; i++)
		for (int k = 0; k < TLY_TASK_NSTATUS && rc == TLY_OK; k++) {
			if (!q->counts.p[i].d[k])
				continue;
			sqlite3_bind_int64(st, 1, q->counts.p[i].project);
			sqlite3_bind_int(st, 2, k);
			sqlite3_bind_int64(st, 3, q->counts.p[i].d[k]);
			rc = exec(s, st, err, "task counts");
		}
	if (rc == TLY_OK)
		q->counts.n = 0;
	return rc;
}

/* One task of `project` went from status `from` to `to` (from < 0: a new task). */
static enum tly_code count_move(struct store *s, int64_t project, int from, int to,
				struct tly_err *err)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	int i;
	enum tly_code rc;

	if (from == to)
		return TLY_OK;
	for (i = 0; i < q->counts.n && q->counts.p[i].project != project; i++)
		;
	if (i == COUNT_SLOTS) { /* many projects in one transaction: write out, start over */
		if ((rc = counts_flush(s, err)) != TLY_OK)
			return rc;
		i = 0;
	}
	if (i == q->counts.n) {
		memset(&q->counts.p[i], 0, sizeof(q->counts.p[i]));
		q->counts.p[i].project = project;
		q->counts.n++;
	}
	if (from >= 0 && from < TLY_TASK_NSTATUS)
		q->counts.p[i].d[from]--;
	if (to >= 0 && to < TLY_TASK_NSTATUS)
		q->counts.p[i].d[to]++;
	return TLY_OK;
}

/* ---- lifecycle ----------------------------------------------------------- */

static enum tly_code sq_cache_limit(struct store *s, int kib, struct tly_err *err)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA cache_size=-%d", kib > 0 ? kib : 1);
	if (sqlite3_exec(q->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(s, err, "cache_size");
	return TLY_OK;
}

static void sq_close(struct store *s)
{
	struct sqlite_store *q = (struct sqlite_store *)s;

	if (!q)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(q->st[i]);
	sqlite3_close(q->db);
	sqlite3_close(q->ckpt);
	if (q->wal_fd >= 0)
		close(q->wal_fd);
	free(q->path);
	free(q);
}

/* ---- deferred durability --------------------------------------------------- */

static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct sqlite_store *q = arg;

	(void)db;
	(void)name;
	atomic_store(&q->wal_frames, frames);
	return SQLITE_OK;
}

static int wal_open(struct sqlite_store *q);

static enum tly_code sq_defer_sync(struct store *s, int ckpt_frames, struct tly_err *err)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	char *msg = NULL;

	q->ckpt_every = ckpt_frames > 0 ? ckpt_frames : 1000;
	if (sqlite3_exec(q->db, "PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;"
			 "PRAGMA journal_size_limit=67108864;", NULL,
			 NULL, &msg) != SQLITE_OK) {
		tly_err_set(err, TLY_EINTERNAL, "", "%s: %s", q->path, msg ? msg : "sql error");
		sqlite3_free(msg);
		return TLY_EINTERNAL;
	}
	sqlite3_wal_hook(q->db, wal_hook, q);
	/* the WAL's descriptor now, while one is sure to be free: the syncer
	 * cannot make anything durable without it (a server whose connections
	 * took every descriptor before its first write would have to stop) */
	if (wal_open(q) != 0 && errno != ENOENT)
		return tly_err_set(err, TLY_EINTERNAL, "", "%s-wal: %s", q->path, strerror(errno));
	return TLY_OK;
}

/* fsync of the directory: a WAL file made since the database was opened
 * must itself survive a power cut. */
static int sync_dir(const char *path)
{
	char *dir = tly_xstrdup(path), *slash = strrchr(dir, '/');
	int fd, rc = -1;

	if (!slash)
		strcpy(dir, ".");
	else
		slash[slash == dir] = '\0'; /* "/x.db" keeps its "/" */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		rc = fsync(fd);
		close(fd);
	}
	free(dir);
	return rc;
}

/* Opens the WAL file for the syncer, and makes its directory entry durable
 * (a WAL made since the database was opened must itself survive a power
 * cut). 0, or -1 with errno. */
static int wal_open(struct sqlite_store *q)
{
	char *wal = tly_xmalloc(strlen(q->path) + 5);
	int e;

	strcpy(wal, q->path);
	strcat(wal, "-wal");
	q->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
	e = errno;
	free(wal);
	errno = e;
	if (q->wal_fd < 0)
		return -1;
	return sync_dir(q->path);
}

static enum tly_code sq_sync(struct store *s, int *checkpoint_due, struct tly_err *err)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	struct stat st;
	int frames;

	*checkpoint_due = 0;
	/* a WAL that was unlinked and made anew (no connection of ours would
	 * let that happen, but another process's last close might) is reopened */
	if (q->wal_fd >= 0 && (fstat(q->wal_fd, &st) != 0 || st.st_nlink == 0)) {
		close(q->wal_fd);
		q->wal_fd = -1;
	}
	if (q->wal_fd < 0 && wal_open(q) != 0) {
		if (errno == ENOENT)
			return TLY_OK; /* nothing written yet: nothing to make durable */
		return tly_err_set(err, TLY_EINTERNAL, "", "%s-wal: %s", q->path, strerror(errno));
	}
	if (fdatasync(q->wal_fd) != 0)
		return tly_err_set(err, TLY_EINTERNAL, "", "%s-wal: fdatasync: %s", q->path,
				   strerror(errno));
	frames = atomic_load(&q->wal_frames);
	if (frames < q->ckpt_frames) /* the WAL started over */
		q->ckpt_frames = 0;
	if (frames - q->ckpt_frames >= q->ckpt_every) {
		q->ckpt_frames = frames;
		*checkpoint_due = 1;
	}
	return TLY_OK;
}

static enum tly_code sq_checkpoint(struct store *s, int *left, struct tly_err *err)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	int rc, log = 0, done = 0;

	*left = 0;
	if (!q->ckpt) {
		if (sqlite3_open_v2(q->path, &q->ckpt, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
				    NULL) != SQLITE_OK) {
			tly_err_set(err, TLY_EINTERNAL, "", "%s: checkpoint connection: %s", q->path,
				    q->ckpt ? sqlite3_errmsg(q->ckpt) : "cannot open");
			sqlite3_close(q->ckpt);
			q->ckpt = NULL;
			return TLY_EINTERNAL;
		}
		/* NORMAL: the WAL is synced before the copy, the database after it;
		 * a WAL that grew past 64 MiB in a burst shrinks back when it restarts */
		sqlite3_exec(q->ckpt, "PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=67108864;",
			     NULL, NULL, NULL);
	}
	/* PASSIVE: never waits for the writer, copies what no reader still needs */
	rc = sqlite3_wal_checkpoint_v2(q->ckpt, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &done);
	if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		return tly_err_set(err, TLY_EINTERNAL, "", "%s: checkpoint: %s", q->path,
				   sqlite3_errmsg(q->ckpt));
	*left = log > done ? log - done : 0;
	return TLY_OK;
}

/* Opens a transaction with `outer` (BEGIN IMMEDIATE, or BEGIN to read), or
 * inside one a savepoint. */
static enum tly_code begin_with(struct store *s, enum stmt outer, struct tly_err *err)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	enum tly_code rc;

	if (q->depth >= MAX_DEPTH)
		return tly_err_set(err, TLY_EINTERNAL, "", "transactions nested too deep");
	if ((rc = exec(s, get(s, q->depth ? S_SAVEPOINT : outer), err, "begin")) == TLY_OK) {
		if (!q->depth) {
			q->doomed = q->full = q->dv_valid = 0;
			q->counts.n = 0;
		}
		q->saved[q->depth] = q->counts; /* a rollback to this savepoint restores them */
		q->changes[q->depth] = sqlite3_total_changes64(q->db);
		q->unguarded[q->depth++] = 0;
	}
	return rc;
}

static enum tly_code sq_begin(struct store *s, struct tly_err *err)
{
	return begin_with(s, S_BEGIN, err);
}

static enum tly_code sq_begin_unguarded(struct store *s, struct tly_err *err)
{
	struct sqlite_store *q = (struct sqlite_store *)s;

	if (!q->depth || q->depth >= MAX_DEPTH)
		return sq_begin(s, err);
	q->unguarded[q->depth] = 1;
	q->changes[q->depth] = sqlite3_total_changes64(q->db);
	q->depth++;
	return TLY_OK;
}

static enum tly_code sq_begin_read(struct store *s, struct tly_err *err)
{
	return ((struct sqlite_store *)s)->depth ? sq_begin_unguarded(s, err)
						 : begin_with(s, S_BEGIN_READ, err);
}

static enum tly_code sq_commit(struct store *s, struct tly_err *err)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	enum tly_code rc;

	if (q->depth > 1 && q->unguarded[q->depth - 1]) {
		q->depth--;
		return TLY_OK;
	}
	if (q->depth == 1 && q->doomed) {
		q->undone++;
		exec(s, get(s, S_ROLLBACK), NULL, "rollback");
		q->depth = 0;
		q->doomed = 0;
		q->counts.n = 0;
		if (q->full)
			return tly_err_set(err, TLY_EBUSY, "", "the disk that holds the database is full: "
					   "the transaction was rolled back");
		return tly_err_set(err, TLY_EINTERNAL, "",
				   "an operation failed after it began writing: the transaction was rolled back");
	}
	rc = q->depth == 1 ? counts_flush(s, err) : TLY_OK;
	if (rc == TLY_OK)
		rc = exec(s, get(s, q->depth > 1 ? S_RELEASE : S_COMMIT), err, "commit");
	if (rc == TLY_OK)
		q->depth--;
	else if (q->depth == 1) {
		q->undone++;
		exec(s, get(s, S_ROLLBACK), NULL, "rollback");
		q->depth = 0;
		q->counts.n = 0;
	}
	return rc;
}

static void sq_rollback(struct store *s)
{
	struct sqlite_store *q = (struct sqlite_store *)s;

	if (q->depth > 0 && sqlite3_total_changes64(q->db) != q->changes[q->depth - 1] &&
	    !(q->depth > 1 && q->unguarded[q->depth - 1]))
		q->undone++; /* an unguarded level's writes are undone with its batch */
	if (q->depth > 1 && q->unguarded[q->depth - 1]) {
		/* nothing to undo unless it wrote; if it did, nothing can be kept */
		if (sqlite3_total_changes64(q->db) != q->changes[q->depth - 1])
			q->doomed = 1;
	} else if (q->depth > 1) {
		exec(s, get(s, S_ROLLBACK_TO), NULL, "rollback");
		exec(s, get(s, S_RELEASE), NULL, "rollback");
		/* counts flushed since (a full table) were undone with the rest */
		q->counts = q->saved[q->depth - 1];
	} else if (q->depth == 1) {
		exec(s, get(s, S_ROLLBACK), NULL, "rollback");
		q->doomed = 0;
		q->counts.n = 0;
	}
	if (q->depth > 0)
		q->depth--;
}

/* ---- meta ---------------------------------------------------------------- */

static enum tly_code sq_meta_get(struct store *s, const char *key, void *buf, int len,
				 struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_META_GET);
	enum tly_code rc = TLY_ENOTFOUND;
	int r;

	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW && sqlite3_column_bytes(st, 0) == len) {
		memcpy(buf, sqlite3_column_blob(st, 0), (size_t)len);
		rc = TLY_OK;
	} else if (r != SQLITE_ROW && r != SQLITE_DONE) {
		rc = db_fail(s, err, "meta");
	} else {
		tly_err_set(err, TLY_ENOTFOUND, "", "meta %s: absent", key);
	}
	done(st);
	return rc;
}

static uint64_t sq_undone(struct store *s)
{
	return ((struct sqlite_store *)s)->undone;
}

/* Inside a transaction (BEGIN IMMEDIATE: no other connection can commit
 * until it ends) the first answer holds for the rest of it. */
static enum tly_code sq_data_version(struct store *s, int64_t *v, struct tly_err *err)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *st = get(s, S_DATA_VERSION);
	enum tly_code rc;

	if (q->depth && q->dv_valid) {
		*v = q->dv;
		return TLY_OK;
	}
	if ((rc = step_one(s, st, err, "data_version")) == TLY_OK) {
		*v = q->dv = sqlite3_column_int64(st, 0);
		q->dv_valid = q->depth > 0;
	}
	done(st);
	return rc;
}

static enum tly_code sq_meta_get_text(struct store *s, const char *key, char **out,
				      struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_META_GET);
	enum tly_code rc;

	*out = NULL;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if ((rc = step_one(s, st, err, "meta")) == TLY_OK) {
		int n = sqlite3_column_bytes(st, 0);
		*out = tly_xmalloc((size_t)n + 1);
		memcpy(*out, sqlite3_column_blob(st, 0), (size_t)n);
		(*out)[n] = '\0';
	}
	done(st);
	return rc;
}

static enum tly_code sq_meta_set(struct store *s, const char *key, const void *buf, int len,
				 struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_META_SET);

	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, buf, len, SQLITE_STATIC);
	return exec(s, st, err, "meta");
}

/* ---- orgs, users, keys ---------------------------------------------------- */

static enum tly_code insert_id(struct store *s, sqlite3_stmt *st, int64_t *id,
			       struct tly_err *err, const char *what)
{
	enum tly_code rc = exec(s, st, err, what);

	if (rc == TLY_OK && id)
		*id = sqlite3_last_insert_rowid(DB(s));
	return rc;
}

static enum tly_code sq_org_insert(struct store *s, const char *name, int64_t now, int64_t *id,
				   struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_ORG_INSERT);

	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	return insert_id(s, st, id, err, "organization");
}

static void org_row(sqlite3_stmt *st, struct store_org *o, int dup)
{
	o->id = sqlite3_column_int64(st, 0);
	o->name = dup ? col_dup(st, 1) : (char *)sqlite3_column_text(st, 1);
	o->created_at = sqlite3_column_int64(st, 2);
}

static enum tly_code sq_org_get(struct store *s, int64_t id, const char *name,
				struct store_org *o, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, name ? S_ORG_GET_NAME : S_ORG_GET_ID);
	enum tly_code rc;

	if (name)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, id);
	if ((rc = step_one(s, st, err, "organization")) == TLY_OK)
		org_row(st, o, 1);
	done(st);
	return rc;
}

static enum tly_code sq_org_list(struct store *s, store_org_cb cb, void *arg, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_ORG_LIST);
	struct store_org o;
	int r;

	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		org_row(st, &o, 0);
		if (cb(arg, &o))
			break;
	}
	done(st);
	return (r == SQLITE_ROW || r == SQLITE_DONE) ? TLY_OK : db_fail(s, err, "organizations");
}

static enum tly_code sq_user_insert(struct store *s, const char *email, const char *pwhash,
				    int64_t now, int64_t *id, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_USER_INSERT);

	sqlite3_bind_text(st, 1, email, -1, SQLITE_STATIC);
	bind_text_or_null(st, 2, pwhash);
	sqlite3_bind_int64(st, 3, now);
	return insert_id(s, st, id, err, "user");
}

static enum tly_code sq_user_get(struct store *s, int64_t id, const char *email,
				 struct store_user *u, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, email ? S_USER_GET_EMAIL : S_USER_GET_ID);
	enum tly_code rc;

	if (email)
		sqlite3_bind_text(st, 1, email, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, id);
	if ((rc = step_one(s, st, err, "user")) == TLY_OK) {
		u->id = sqlite3_column_int64(st, 0);
		u->email = col_dup(st, 1);
		u->password_hash = col_dup(st, 2);
	}
	done(st);
	return rc;
}

static enum tly_code sq_member_set(struct store *s, int64_t org, int64_t user, enum tly_role role,
				   struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_MEMBER_SET);

	sqlite3_bind_int64(st, 1, org);
	sqlite3_bind_int64(st, 2, user);
	sqlite3_bind_int(st, 3, (int)role);
	return exec(s, st, err, "membership");
}

static enum tly_code sq_member_get(struct store *s, int64_t org, int64_t user, enum tly_role *role,
				   struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_MEMBER_GET);
	enum tly_code rc;

	sqlite3_bind_int64(st, 1, org);
	sqlite3_bind_int64(st, 2, user);
	if ((rc = step_one(s, st, err, "membership")) == TLY_OK)
		*role = (enum tly_role)sqlite3_column_int(st, 0);
	done(st);
	return rc;
}

static enum tly_code sq_member_sole_org(struct store *s, int64_t user, int64_t *org,
					struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_MEMBER_ORGS);
	enum tly_code rc;

	sqlite3_bind_int64(st, 1, user);
	if ((rc = step_one(s, st, err, "membership")) == TLY_OK) {
		*org = sqlite3_column_int64(st, 0);
		if (sqlite3_step(st) == SQLITE_ROW)
			rc = tly_err_set(err, TLY_ECONFLICT, "org",
					 "the user belongs to several organizations: name one");
	}
	done(st);
	return rc;
}

static enum tly_code sq_key_insert(struct store *s, int64_t user, int64_t org,
				   const unsigned char *hash, int hashlen, int64_t now, int64_t *id,
				   struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_KEY_INSERT);

	sqlite3_bind_int64(st, 1, user);
	sqlite3_bind_int64(st, 2, org);
	sqlite3_bind_blob(st, 3, hash, hashlen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	return insert_id(s, st, id, err, "api key");
}

static enum tly_code sq_key_lookup(struct store *s, const unsigned char *hash, int hashlen,
				   struct store_key *k, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_KEY_LOOKUP);
	enum tly_code rc;

	sqlite3_bind_blob(st, 1, hash, hashlen, SQLITE_STATIC);
	if ((rc = step_one(s, st, err, "api key")) == TLY_OK) {
		k->id = sqlite3_column_int64(st, 0);
		k->user_id = sqlite3_column_int64(st, 1);
		k->org_id = sqlite3_column_int64(st, 2);
		k->role = (enum tly_role)sqlite3_column_int(st, 3); /* NULL -> 0: no membership */
		k->revoked = sqlite3_column_int(st, 4);
	}
	done(st);
	return rc;
}

static enum tly_code sq_key_revoke(struct store *s, int64_t id, int64_t now, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_KEY_REVOKE);
	enum tly_code rc;

	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	rc = exec(s, st, err, "api key");
	if (rc == TLY_OK && sqlite3_changes(DB(s)) == 0)
		rc = tly_err_set(err, TLY_ENOTFOUND, "", "no such active api key");
	return rc;
}

/* ---- projects -------------------------------------------------------------- */

static enum tly_code sq_project_insert(struct store *s, const struct store_project *p, int64_t *id,
				       struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_PROJECT_INSERT);

	sqlite3_bind_int64(st, 1, p->org_id);
	sqlite3_bind_text(st, 2, p->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, p->schema, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, p->created_at);
	return insert_id(s, st, id, err, "project");
}

static void project_row(sqlite3_stmt *st, struct store_project *p, int dup)
{
	p->id = sqlite3_column_int64(st, 0);
	p->org_id = sqlite3_column_int64(st, 1);
	p->name = dup ? col_dup(st, 2) : (char *)sqlite3_column_text(st, 2);
	p->schema = dup ? col_dup(st, 3) : (char *)sqlite3_column_text(st, 3);
	p->created_at = sqlite3_column_int64(st, 4);
}

static enum tly_code sq_project_get(struct store *s, int64_t id, struct store_project *p,
				    struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_PROJECT_GET);
	enum tly_code rc;

	sqlite3_bind_int64(st, 1, id);
	if ((rc = step_one(s, st, err, "project")) == TLY_OK)
		project_row(st, p, 1);
	done(st);
	return rc;
}

static enum tly_code sq_project_list(struct store *s, int64_t org, int64_t after, int limit,
				     store_project_cb cb, void *arg, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_PROJECT_LIST);
	struct store_project p;
	int r;

	sqlite3_bind_int64(st, 1, org);
	sqlite3_bind_int64(st, 2, after);
	sqlite3_bind_int(st, 3, limit);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		project_row(st, &p, 0);
		if (cb(arg, &p))
			break;
	}
	done(st);
	return (r == SQLITE_ROW || r == SQLITE_DONE) ? TLY_OK : db_fail(s, err, "projects");
}

static enum tly_code sq_gold_count(struct store *s, int64_t project, int64_t *n,
				   struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_GOLD_COUNT);
	enum tly_code rc;

	sqlite3_bind_int64(st, 1, project);
	if ((rc = step_one(s, st, err, "gold count")) == TLY_OK)
		*n = sqlite3_column_int64(st, 0);
	done(st);
	return rc;
}

static enum tly_code sq_project_counts(struct store *s, int64_t project,
				       int64_t counts[TLY_TASK_NSTATUS], struct tly_err *err)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *st = get(s, S_PROJECT_COUNTS);
	int r;

	memset(counts, 0, sizeof(int64_t) * TLY_TASK_NSTATUS);
	sqlite3_bind_int64(st, 1, project);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		int status = sqlite3_column_int(st, 0);
		if (status >= 0 && status < TLY_TASK_NSTATUS)
			counts[status] = sqlite3_column_int64(st, 1);
	}
	done(st);
	/* and what this connection's open transaction moved, not yet written */
	for (int i = 0; i < q->counts.n && q->depth; i++)
		if (q->counts.p[i].project == project)
			for (int k = 0; k < TLY_TASK_NSTATUS; k++)
				counts[k] += q->counts.p[i].d[k];
	return r == SQLITE_DONE ? TLY_OK : db_fail(s, err, "task counts");
}

/* ---- tasks ------------------------------------------------------------------ */

static enum tly_code sq_task_insert(struct store *s, const struct store_task *t, int64_t *id,
				    struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_TASK_INSERT);
	enum tly_code rc;

	sqlite3_bind_int64(st, 1, t->project_id);
	bind_text_or_null(st, 2, t->unique_id);
	sqlite3_bind_int64(st, 3, t->priority);
	sqlite3_bind_text(st, 4, t->data, -1, SQLITE_STATIC);
	bind_text_or_null(st, 5, t->metadata);
	sqlite3_bind_int64(st, 6, t->created_at);
	sqlite3_bind_int(st, 7, t->is_gold ? 1 : 0);
	bind_text_or_null(st, 8, t->gold);
	sqlite3_bind_int(st, 9, t->slots > 0 ? t->slots : 1);
	rc = insert_id(s, st, id, err, "task");
	if (rc == TLY_OK)
		rc = count_move(s, t->project_id, -1, TLY_TASK_QUEUED, err);
	if (rc == TLY_ECONFLICT && t->unique_id) {
		st = get(s, S_TASK_BY_UID);
		sqlite3_bind_int64(st, 1, t->project_id);
		sqlite3_bind_text(st, 2, t->unique_id, -1, SQLITE_STATIC);
		if (step_one(s, st, NULL, "task") == TLY_OK)
			*id = sqlite3_column_int64(st, 0);
		done(st);
	}
	return rc;
}

static void task_row(sqlite3_stmt *st, struct store_task *t, int dup)
{
	t->id = sqlite3_column_int64(st, 0);
	t->project_id = sqlite3_column_int64(st, 1);
	t->unique_id = dup ? col_dup(st, 2) : (char *)sqlite3_column_text(st, 2);
	t->priority = sqlite3_column_int64(st, 3);
	t->data = dup ? col_dup(st, 4) : (char *)sqlite3_column_text(st, 4);
	t->metadata = dup ? col_dup(st, 5) : (char *)sqlite3_column_text(st, 5);
	t->status = (enum tly_task_status)sqlite3_column_int(st, 6);
	t->n_responses = sqlite3_column_int(st, 7);
	t->n_leases = sqlite3_column_int(st, 8);
	t->created_at = sqlite3_column_int64(st, 9);
	t->is_gold = sqlite3_column_int(st, 10);
	t->gold = dup ? col_dup(st, 11) : (char *)sqlite3_column_text(st, 11);
	t->consensus = dup ? col_dup(st, 12) : (char *)sqlite3_column_text(st, 12);
}

static enum tly_code sq_task_get(struct store *s, int64_t id, struct store_task *t,
				 struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_TASK_GET);
	enum tly_code rc;

	sqlite3_bind_int64(st, 1, id);
	if ((rc = step_one(s, st, err, "task")) == TLY_OK)
		task_row(st, t, 1);
	done(st);
	return rc;
}

static enum tly_code sq_task_list(struct store *s, int64_t project, int status, int64_t after,
				  int64_t upto, int limit, store_task_cb cb, void *arg, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, status < 0 ? S_TASK_LIST : S_TASK_LIST_STATUS);
	struct store_task t;
	int r;

	sqlite3_bind_int64(st, 1, project);
	sqlite3_bind_int64(st, 2, after);
	sqlite3_bind_int(st, 3, limit);
	if (status >= 0)
		sqlite3_bind_int(st, 4, status);
	sqlite3_bind_int64(st, 5, upto);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		task_row(st, &t, 0);
		if (cb(arg, &t))
			break;
	}
	done(st);
	return (r == SQLITE_ROW || r == SQLITE_DONE) ? TLY_OK : db_fail(s, err, "tasks");
}

static enum tly_code sq_task_nth(struct store *s, int64_t project, int64_t after, int n,
				 int64_t *id, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_TASK_NTH);
	int r;

	*id = 0;
	sqlite3_bind_int64(st, 1, project);
	sqlite3_bind_int64(st, 2, after);
	sqlite3_bind_int(st, 3, n > 0 ? n - 1 : 0);
	if ((r = sqlite3_step(st)) == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	done(st);
	return (r == SQLITE_ROW || r == SQLITE_DONE) ? TLY_OK : db_fail(s, err, "tasks");
}

static enum tly_code sq_task_update(struct store *s, const struct store_task *before,
				    enum tly_task_status status, int n_responses, int n_leases,
				    const char *consensus, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_TASK_UPDATE);
	enum tly_code rc;

	sqlite3_bind_int64(st, 1, before->id);
	sqlite3_bind_int(st, 2, (int)status);
	sqlite3_bind_int(st, 3, n_responses);
	sqlite3_bind_int(st, 4, n_leases);
	bind_text_or_null(st, 5, consensus);
	if ((rc = exec(s, st, err, "task")) == TLY_OK && sqlite3_changes(DB(s)) == 1)
		rc = count_move(s, before->project_id, (int)before->status, (int)status, err);
	return rc;
}

static enum tly_code sq_task_next(struct store *s, int64_t project, int64_t user, int max,
				  struct store_task *t, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_TASK_NEXT);
	enum tly_code rc;

	sqlite3_bind_int64(st, 1, project);
	sqlite3_bind_int64(st, 2, user);
	sqlite3_bind_int(st, 3, max);
	if ((rc = step_one(s, st, err, "open task")) == TLY_OK)
		task_row(st, t, 1);
	done(st);
	return rc;
}

static enum tly_code sq_task_next_gold(struct store *s, int64_t project, int64_t user, int64_t *id,
				       struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_TASK_NEXT_GOLD);
	enum tly_code rc;

	sqlite3_bind_int64(st, 1, project);
	sqlite3_bind_int64(st, 2, user);
	if ((rc = step_one(s, st, err, "gold task")) == TLY_OK)
		*id = sqlite3_column_int64(st, 0);
	done(st);
	return rc;
}

static enum tly_code sq_task_set_consensus(struct store *s, int64_t id, const char *consensus,
					   struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_TASK_CONSENSUS);

	sqlite3_bind_int64(st, 1, id);
	bind_text_or_null(st, 2, consensus);
	return exec(s, st, err, "task consensus");
}

static void stats_row(sqlite3_stmt *st, struct store_stats *x)
{
	x->project_id = sqlite3_column_int64(st, 0);
	x->user_id = sqlite3_column_int64(st, 1);
	x->answered = sqlite3_column_int(st, 2);
	x->gold_seen = sqlite3_column_int(st, 3);
	x->gold_correct = sqlite3_column_int(st, 4);
	x->quality = sqlite3_column_double(st, 5);
}

static enum tly_code sq_stats_get(struct store *s, int64_t project, int64_t user,
				  struct store_stats *x, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_STATS_GET);
	enum tly_code rc;

	memset(x, 0, sizeof(*x));
	x->project_id = project;
	x->user_id = user;
	x->quality = -1;
	sqlite3_bind_int64(st, 1, project);
	sqlite3_bind_int64(st, 2, user);
	rc = step_one(s, st, NULL, "stats");
	if (rc == TLY_OK)
		stats_row(st, x);
	else if (rc == TLY_ENOTFOUND)
		rc = TLY_OK;
	else
		rc = db_fail(s, err, "annotator stats");
	done(st);
	return rc;
}

static enum tly_code sq_stats_put(struct store *s, const struct store_stats *x, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_STATS_PUT);

	sqlite3_bind_int64(st, 1, x->project_id);
	sqlite3_bind_int64(st, 2, x->user_id);
	sqlite3_bind_int(st, 3, x->answered);
	sqlite3_bind_int(st, 4, x->gold_seen);
	sqlite3_bind_int(st, 5, x->gold_correct);
	if (x->quality >= 0)
		sqlite3_bind_double(st, 6, x->quality);
	else
		sqlite3_bind_null(st, 6);
	return exec(s, st, err, "annotator stats");
}

static enum tly_code sq_stats_list(struct store *s, int64_t project, store_stats_cb cb, void *arg,
				   struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_STATS_LIST);
	struct store_stats x;
	int r;

	sqlite3_bind_int64(st, 1, project);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		stats_row(st, &x);
		if (cb(arg, &x))
			break;
	}
	done(st);
	return (r == SQLITE_ROW || r == SQLITE_DONE) ? TLY_OK : db_fail(s, err, "annotator stats");
}

static enum tly_code sq_stats_bump(struct store *s, int64_t project, int64_t user, int answered,
				   int gold_seen, int gold_correct, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_STATS_BUMP);

	sqlite3_bind_int64(st, 1, project);
	sqlite3_bind_int64(st, 2, user);
	sqlite3_bind_int(st, 3, answered);
	sqlite3_bind_int(st, 4, gold_seen);
	sqlite3_bind_int(st, 5, gold_correct);
	return exec(s, st, err, "annotator stats");
}

static enum tly_code sq_response_list_stats(struct store *s, int64_t project, int64_t task,
					    store_answer_cb cb, void *arg, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_RESP_STATS);
	struct store_response r = { 0 };
	struct store_stats x = { 0 };
	int rc;

	sqlite3_bind_int64(st, 1, project);
	sqlite3_bind_int64(st, 2, task);
	x.project_id = project;
	r.task_id = task;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r.id = sqlite3_column_int64(st, 0);
		r.user_id = x.user_id = sqlite3_column_int64(st, 1);
		r.answers = (char *)sqlite3_column_text(st, 2);
		x.quality = sqlite3_column_double(st, 3);
		x.gold_seen = sqlite3_column_int(st, 4);
		x.gold_correct = sqlite3_column_int(st, 5);
		x.answered = sqlite3_column_int(st, 6);
		if (cb(arg, &r, &x))
			break;
	}
	done(st);
	return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? TLY_OK : db_fail(s, err, "responses");
}

/* ---- assignments and responses ---------------------------------------------- */

static enum tly_code sq_asg_insert(struct store *s, const struct store_asg *a, int64_t *id,
				   struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_ASG_INSERT);

	sqlite3_bind_int64(st, 1, a->task_id);
	sqlite3_bind_int64(st, 2, a->project_id);
	sqlite3_bind_int64(st, 3, a->user_id);
	sqlite3_bind_int(st, 4, (int)a->status);
	sqlite3_bind_int64(st, 5, a->created_at);
	sqlite3_bind_int64(st, 6, a->expires_at);
	return insert_id(s, st, id, err, "assignment");
}

static void asg_row(sqlite3_stmt *st, struct store_asg *a)
{
	a->id = sqlite3_column_int64(st, 0);
	a->task_id = sqlite3_column_int64(st, 1);
	a->project_id = sqlite3_column_int64(st, 2);
	a->user_id = sqlite3_column_int64(st, 3);
	a->status = (enum tly_asg_status)sqlite3_column_int(st, 4);
	a->created_at = sqlite3_column_int64(st, 5);
	a->expires_at = sqlite3_column_int64(st, 6);
}

static enum tly_code sq_asg_get(struct store *s, int64_t id, struct store_asg *a,
				struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_ASG_GET);
	enum tly_code rc;

	sqlite3_bind_int64(st, 1, id);
	if ((rc = step_one(s, st, err, "assignment")) == TLY_OK)
		asg_row(st, a);
	done(st);
	return rc;
}

static enum tly_code sq_asg_update(struct store *s, int64_t id, enum tly_asg_status status,
				   int64_t expires_at, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_ASG_UPDATE);

	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 2, (int)status);
	sqlite3_bind_int64(st, 3, expires_at);
	return exec(s, st, err, "assignment");
}

static enum tly_code sq_asg_live(struct store *s, int64_t project, int64_t user, int64_t now,
				 struct store_asg *a, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_ASG_LIVE);
	enum tly_code rc;

	sqlite3_bind_int64(st, 1, project);
	sqlite3_bind_int64(st, 2, user);
	sqlite3_bind_int64(st, 3, now);
	if ((rc = step_one(s, st, err, "live assignment")) == TLY_OK)
		asg_row(st, a);
	done(st);
	return rc;
}

static enum tly_code sq_asg_expired(struct store *s, int64_t project, int64_t now, int limit,
				    store_asg_cb cb, void *arg, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_ASG_EXPIRED);
	struct store_asg a;
	int r, n = 0;
	struct store_asg *batch = NULL;
	enum tly_code rc = TLY_OK;

	/* collect first: the callback writes to the same tables */
	batch = tly_xcalloc((size_t)limit, sizeof(*batch));
	sqlite3_bind_int64(st, 1, project);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int(st, 3, limit);
	while (n < limit && (r = sqlite3_step(st)) == SQLITE_ROW)
		asg_row(st, &batch[n++]);
	done(st);
	for (int i = 0; i < n && rc == TLY_OK; i++) {
		a = batch[i];
		if (cb(arg, &a))
			rc = err && err->code ? err->code : TLY_EINTERNAL;
	}
	free(batch);
	return rc;
}

static enum tly_code sq_response_insert(struct store *s, const struct store_response *r,
					int64_t *id, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_RESP_INSERT);

	sqlite3_bind_int64(st, 1, r->task_id);
	sqlite3_bind_int64(st, 2, r->assignment_id);
	sqlite3_bind_int64(st, 3, r->user_id);
	sqlite3_bind_text(st, 4, r->answers, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, r->duration_ms);
	sqlite3_bind_int64(st, 6, r->created_at);
	if (r->correct >= 0)
		sqlite3_bind_int(st, 7, r->correct);
	else
		sqlite3_bind_null(st, 7);
	return insert_id(s, st, id, err, "response");
}

static void response_row(sqlite3_stmt *st, struct store_response *r)
{
	r->id = sqlite3_column_int64(st, 0);
	r->task_id = sqlite3_column_int64(st, 1);
	r->assignment_id = sqlite3_column_int64(st, 2);
	r->user_id = sqlite3_column_int64(st, 3);
	r->answers = (char *)sqlite3_column_text(st, 4);
	r->duration_ms = sqlite3_column_int64(st, 5);
	r->created_at = sqlite3_column_int64(st, 6);
	r->correct = sqlite3_column_int(st, 7);
}

/* a merge of two ordered walks; the response cursor steps forward while it is
 * a little behind and seeks anew when it is far behind (a sparse status
 * filter, another project's tasks in between) */
#define RESP_STEPS 8

static enum tly_code sq_task_list_responses(struct store *s, int64_t project, int status,
					    int64_t after, int64_t upto, int limit,
					    store_task_cb task_cb, store_response_cb resp_cb, void *arg,
					    struct tly_err *err)
{
	sqlite3_stmt *ts = get(s, status < 0 ? S_TASK_LIST : S_TASK_LIST_STATUS);
	sqlite3_stmt *rs = get(s, S_RESP_FROM);
	struct store_task t;
	struct store_response r;
	int tr, rr = SQLITE_DONE, open = 0, stop = 0;

	sqlite3_bind_int64(ts, 1, project);
	sqlite3_bind_int64(ts, 2, after);
	sqlite3_bind_int(ts, 3, limit);
	if (status >= 0)
		sqlite3_bind_int(ts, 4, status);
	sqlite3_bind_int64(ts, 5, upto);
	while (!stop && (tr = sqlite3_step(ts)) == SQLITE_ROW) {
		task_row(ts, &t, 0);
		if (task_cb(arg, &t))
			break;
		if (t.n_responses > 0) {
			for (int i = 0; open && rr == SQLITE_ROW && sqlite3_column_int64(rs, 1) < t.id; i++) {
				if (i == RESP_STEPS) {
					open = 0;
					break;
				}
				rr = sqlite3_step(rs);
			}
			if (!open) {
				sqlite3_reset(rs);
				sqlite3_bind_int64(rs, 1, t.id);
				rr = sqlite3_step(rs);
				open = 1;
			}
			while (rr == SQLITE_ROW && sqlite3_column_int64(rs, 1) == t.id) {
				response_row(rs, &r);
				if (resp_cb(arg, &r)) {
					stop = 1;
					break;
				}
				rr = sqlite3_step(rs);
			}
			if (rr != SQLITE_ROW && rr != SQLITE_DONE)
				break;
		}
		if (!stop && resp_cb(arg, NULL))
			break;
	}
	done(ts);
	done(rs);
	if (rr != SQLITE_ROW && rr != SQLITE_DONE)
		return db_fail(s, err, "responses");
	return (tr == SQLITE_ROW || tr == SQLITE_DONE) ? TLY_OK : db_fail(s, err, "tasks");
}

static enum tly_code sq_response_list(struct store *s, int64_t task, store_response_cb cb,
				      void *arg, struct tly_err *err)
{
	sqlite3_stmt *st = get(s, S_RESP_LIST);
	struct store_response r;
	int rc;

	sqlite3_bind_int64(st, 1, task);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		response_row(st, &r);
		if (cb(arg, &r))
			break;
	}
	done(st);
	return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? TLY_OK : db_fail(s, err, "responses");
}

static const struct store_ops sqlite_ops = {
	.name = "sqlite",
	.close = sq_close,
	.cache_limit = sq_cache_limit,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.begin_unguarded = sq_begin_unguarded,
	.begin_read = sq_begin_read,
	.defer_sync = sq_defer_sync,
	.sync = sq_sync,
	.checkpoint = sq_checkpoint,
	.meta_get = sq_meta_get,
	.meta_get_text = sq_meta_get_text,
	.data_version = sq_data_version,
	.undone = sq_undone,
	.meta_set = sq_meta_set,
	.org_insert = sq_org_insert,
	.org_get = sq_org_get,
	.org_list = sq_org_list,
	.user_insert = sq_user_insert,
	.user_get = sq_user_get,
	.member_set = sq_member_set,
	.member_get = sq_member_get,
	.member_sole_org = sq_member_sole_org,
	.key_insert = sq_key_insert,
	.key_lookup = sq_key_lookup,
	.key_revoke = sq_key_revoke,
	.project_insert = sq_project_insert,
	.project_get = sq_project_get,
	.project_list = sq_project_list,
	.project_counts = sq_project_counts,
	.gold_count = sq_gold_count,
	.task_insert = sq_task_insert,
	.task_get = sq_task_get,
	.task_list = sq_task_list,
	.task_nth = sq_task_nth,
	.task_update = sq_task_update,
	.task_next = sq_task_next,
	.task_next_gold = sq_task_next_gold,
	.task_set_consensus = sq_task_set_consensus,
	.stats_get = sq_stats_get,
	.stats_put = sq_stats_put,
	.stats_list = sq_stats_list,
	.stats_bump = sq_stats_bump,
	.response_list_stats = sq_response_list_stats,
	.asg_insert = sq_asg_insert,
	.asg_get = sq_asg_get,
	.asg_update = sq_asg_update,
	.asg_live = sq_asg_live,
	.asg_expired = sq_asg_expired,
	.response_insert = sq_response_insert,
	.response_list = sq_response_list,
	.task_list_responses = sq_task_list_responses,
};

/* While another connection writes (the refit worker, a CLI import), wait in
 * steps of 50 µs growing to 1 ms, 10 s in all: SQLite's own busy timeout
 * sleeps up to 100 ms a step, which would stall the whole server that long
 * after the lock was free again. */
#define BUSY_TOTAL_US 10000000

static int busy_wait(void *arg, int n)
{
	long step = n < 5 ? 50L << n : 1000;
	struct timespec ts = { 0, step * 1000 };

	(void)arg;
	/* steps: 50, 100, 200, 400, 800 µs, then 1 ms each */
	if (n >= 5 + (BUSY_TOTAL_US - 1600) / 1000)
		return 0;
	nanosleep(&ts, NULL);
	return 1;
}

/* Connections are never shared between threads (the refit worker has its
 * own), so SQLite's own locking and memory statistics are not needed. The
 * page cache loses its scan at every commit (pagecache.h); should SQLite
 * refuse the wrapper, its own cache is only slower. */
static void configure_once(void)
{
	sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	(void)pagecache_install();
}

static int meta_seen(void *arg, int n, char **v, char **names)
{
	(void)n, (void)v, (void)names;
	*(int *)arg = 1;
	return 0;
}

/* The counts table, and its counts when this database has not kept them yet
 * (made by an older tally, or before a bulk load in SQL that cleared the
 * key): one scan, at that first open only. */
static enum tly_code counts_ready(struct sqlite_store *q, struct tly_err *err)
{
	char *msg = NULL;
	int kept = 0, has_meta = 0;

	if (sqlite3_exec(q->db, "SELECT 1 FROM sqlite_schema WHERE name='meta'", meta_seen, &has_meta,
			 &msg) != SQLITE_OK || !has_meta ||
	    sqlite3_exec(q->db, "SELECT 1 FROM meta WHERE key='counts'", meta_seen, &kept, &msg) !=
		    SQLITE_OK)
		goto out; /* not a tally database: preparing the statements says so */
	if (kept)
		return TLY_OK;
	if (sqlite3_exec(q->db, counts_sql, NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(q->db, recount_sql, NULL, NULL, &msg) != SQLITE_OK) {
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
		tly_err_set(err, TLY_EINTERNAL, "", "%s: counting tasks by status: %s", q->path,
			    msg ? msg : "sql error");
		sqlite3_free(msg);
		return TLY_EINTERNAL;
	}
out:
	sqlite3_free(msg);
	return TLY_OK;
}

enum tly_code store_sqlite_open(const char *path, int create, struct store **out,
				struct tly_err *err)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct sqlite_store *q = tly_xcalloc(1, sizeof(*q));
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
	char *msg = NULL;
	enum tly_code rc = TLY_OK;

	pthread_once(&once, configure_once);
	q->base.ops = &sqlite_ops;
	q->wal_fd = -1;
	q->path = tly_xstrdup(path);
	if (sqlite3_open_v2(path, &q->db, flags, walbuf_vfs()) != SQLITE_OK) {
		rc = tly_err_set(err, TLY_EINTERNAL, "", "%s: %s", path,
				 q->db ? sqlite3_errmsg(q->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_handler(q->db, busy_wait, NULL);
	if (sqlite3_exec(q->db,
			 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			 "PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;"
			 "PRAGMA cache_size=-8192;",
			 NULL, NULL, &msg) != SQLITE_OK)
		goto exec_fail;
	if (create && sqlite3_exec(q->db, schema_sql, NULL, NULL, &msg) != SQLITE_OK)
		goto exec_fail;
	if ((rc = counts_ready(q, err)) != TLY_OK)
		goto fail;
	for (int i = 0; i < S_COUNT; i++)
		if (sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i],
				       NULL) != SQLITE_OK) {
			rc = tly_err_set(err, TLY_EINTERNAL, "",
					 "%s: not a tally database (or an older one): %s", path,
					 sqlite3_errmsg(q->db));
			goto fail;
		}
	*out = &q->base;
	return TLY_OK;
exec_fail:
	rc = tly_err_set(err, TLY_EINTERNAL, "", "%s: %s", path, msg ? msg : "sql error");
	sqlite3_free(msg);
fail:
	sq_close(&q->base);
	*out = NULL;
	return rc;
}

void store_org_clear(struct store_org *o) { free(o->name); o->name = NULL; }
void store_user_clear(struct store_user *u) { free(u->email); free(u->password_hash); u->email = u->password_hash = NULL; }
void store_project_clear(struct store_project *p) { free(p->name); free(p->schema); p->name = p->schema = NULL; }
void store_task_clear(struct store_task *t)
{
	free(t->unique_id);
	free(t->data);
	free(t->metadata);
	free(t->gold);
	free(t->consensus);
	t->unique_id = t->data = t->metadata = t->gold = t->consensus = NULL;
}
