/* scale_scan.c — the ceiling for exporting completed tasks: one raw SQLite
 * scan of a project's tasks joined with their responses, written out as JSON
 * lines by string concatenation (the same fields as `tally export`: task id,
 * unique_id, data, metadata, consensus, status, and each response's id, user,
 * answers, duration and time; ids and times as plain integers, no encoding).
 *
 *   scale_scan DB [PROJECT_ROWID [CACHE_KIB]] > OUT
 *       PROJECT_ROWID 0 or absent: the last project; CACHE_KIB: SQLite page
 *       cache (default 65536 KiB, the size tally sets)
 *
 * Read-only. Prints on stderr:
 *   RESULT tasks=… responses=… scan_s=… scan_tasks_s=… */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(sqlite3 *db, const char *what)
{
	fprintf(stderr, "scale_scan: %s: %s\n", what, db ? sqlite3_errmsg(db) : "error");
	exit(2);
}

static void put_col(sqlite3_stmt *st, int i, const char *null_as)
{
	const unsigned char *v = sqlite3_column_text(st, i);
	if (v)
		fwrite_unlocked(v, 1, (size_t)sqlite3_column_bytes(st, i), stdout);
	else
		fputs_unlocked(null_as, stdout);
}

static const char *const status_name[] = { "queued", "in_progress", "completed", "canceled" };

int main(int argc, char **argv)
{
	static char obuf[1 << 20];
	sqlite3 *db;
	sqlite3_stmt *st;
	long long ntasks = 0, nresp = 0, cur = -1, project = 0, cache_kib = 65536;
	char head[128], pragma[64];
	double t0, el;
	int rc, hn;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: scale_scan DB [PROJECT_ROWID [CACHE_KIB]] > OUT\n");
		return 2;
	}
	if (argc >= 3)
		project = atoll(argv[2]);
	if (argc == 4 && (cache_kib = atoll(argv[3])) < 1)
		cache_kib = 1;
	setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
	t0 = now_s();
	if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		die(db, argv[1]);
	snprintf(pragma, sizeof(pragma), "PRAGMA cache_size=-%lld;", cache_kib);
	if (sqlite3_exec(db, pragma, NULL, NULL, NULL) != SQLITE_OK)
		die(db, "pragma");
	if (sqlite3_prepare_v2(db,
			       "SELECT t.id, t.unique_id, t.data, t.metadata, t.consensus, t.status,"
			       " r.id, r.user_id, r.answers, r.duration_ms, r.created_at"
			       " FROM tasks t LEFT JOIN responses r ON r.task_id = t.id"
			       " WHERE +t.project_id = coalesce(?1, (SELECT max(id) FROM projects))"
			       " ORDER BY t.id, r.id",
			       -1, &st, NULL) != SQLITE_OK)
		die(db, "prepare");
	if (project > 0)
		sqlite3_bind_int64(st, 1, project);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		long long id = sqlite3_column_int64(st, 0);
		if (id != cur) {
			int s = sqlite3_column_int(st, 5);
			if (cur >= 0)
				fputs_unlocked("]}\n", stdout);
			cur = id;
			ntasks++;
			hn = snprintf(head, sizeof(head), "{\"id\":%lld,\"unique_id\":\"", id);
			fwrite_unlocked(head, 1, (size_t)hn, stdout);
			put_col(st, 1, "");
			fputs_unlocked("\",\"data\":", stdout);
			put_col(st, 2, "null");
			fputs_unlocked(",\"metadata\":", stdout);
			put_col(st, 3, "{}");
			fputs_unlocked(",\"consensus\":", stdout);
			put_col(st, 4, "null");
			hn = snprintf(head, sizeof(head), ",\"status\":\"%s\",\"responses\":[",
				      status_name[s >= 0 && s < 4 ? s : 0]);
			fwrite_unlocked(head, 1, (size_t)hn, stdout);
		} else {
			fputc_unlocked(',', stdout);
		}
		if (sqlite3_column_type(st, 6) == SQLITE_NULL)
			continue;
		nresp++;
		hn = snprintf(head, sizeof(head), "{\"id\":%lld,\"user_id\":%lld,\"answers\":",
			      (long long)sqlite3_column_int64(st, 6), (long long)sqlite3_column_int64(st, 7));
		fwrite_unlocked(head, 1, (size_t)hn, stdout);
		put_col(st, 8, "null");
		hn = snprintf(head, sizeof(head), ",\"duration_ms\":%lld,\"created_at\":%lld}",
			      (long long)sqlite3_column_int64(st, 9), (long long)sqlite3_column_int64(st, 10));
		fwrite_unlocked(head, 1, (size_t)hn, stdout);
	}
	if (rc != SQLITE_DONE)
		die(db, "step");
	if (cur >= 0)
		fputs_unlocked("]}\n", stdout);
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (fflush(stdout) != 0)
		return 2;
	el = now_s() - t0;
	fprintf(stderr, "RESULT tasks=%lld responses=%lld scan_s=%.3f scan_tasks_s=%.0f\n", ntasks, nresp, el,
		(double)ntasks / el);
	return 0;
}
