/* sqlite_insert.c — the SQLite ceilings for tally's benchmarks, measured on
 * the same table shape tally uses (copied at run time from a tally database,
 * so it cannot drift from src/lib/store_sqlite.c) with the same PRAGMAs.
 *
 *   sqlite_insert bulk TALLY_DB OUT_DB FILE.jsonl
 *       reads the JSONL file the way `tally import` takes it, keeps every row
 *       in memory (data and metadata serialized compactly by jansson, like
 *       tally stores them), then inserts all rows into a fresh OUT_DB in ONE
 *       transaction through one prepared statement (tally's own INSERT),
 *       COMMIT included in the time. Reports the parse phase separately.
 *   sqlite_insert commits TALLY_DB OUT_DB SECONDS [ROWS_PER_COMMIT]
 *       the fsync ceiling: small tasks rows, ROWS_PER_COMMIT (default 1) per
 *       BEGIN IMMEDIATE…COMMIT, WAL, synchronous=FULL, for SECONDS.
 *   sqlite_insert scan DB > OUT
 *       the export ceiling: every row of the tasks table of the last project
 *       in DB, in id order, written to stdout as one JSON line each made by
 *       plain concatenation of the stored JSON text (no JSON library, no
 *       responses lookup, no id encoding).
 *
 * Each prints a "RESULT key=value…" line (scan: on stderr). */
#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* the same statement as S_TASK_INSERT in src/lib/store_sqlite.c */
static const char insert_sql[] =
	"INSERT INTO tasks(project_id, unique_id, priority, data, metadata, status,"
	" created_at) VALUES(?1, ?2, ?3, ?4, ?5, 0, ?6)";

/* the same PRAGMAs as store_sqlite_open */
static const char pragmas[] =
	"PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	"PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;"
	"PRAGMA cache_size=-65536;";

struct row {
	char *uid, *data, *meta;
	long long priority;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(sqlite3 *db, const char *what)
{
	fprintf(stderr, "sqlite_insert: %s: %s\n", what, db ? sqlite3_errmsg(db) : "failed");
	exit(2);
}

static void exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "sqlite_insert: %s: %s\n", sql, msg ? msg : "?");
		exit(2);
	}
}

/* Opens OUT_DB fresh with tally's PRAGMAs and the tasks table + indexes as
 * they are in TALLY_DB. Returns the project id to use (tally's last project). */
static sqlite3 *open_like(const char *tally_db, const char *out_db, int64_t *project_id)
{
	sqlite3 *src, *dst;
	sqlite3_stmt *st;
	int n = 0;

	if (sqlite3_open_v2(tally_db, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		die(src, tally_db);
	remove(out_db);
	if (sqlite3_open_v2(out_db, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK)
		die(dst, out_db);
	exec(dst, pragmas);
	/* the table first, then its indexes */
	if (sqlite3_prepare_v2(src,
			       "SELECT sql FROM sqlite_master WHERE tbl_name='tasks' AND sql IS NOT NULL"
			       " ORDER BY type='index', name",
			       -1, &st, NULL) != SQLITE_OK)
		die(src, "read schema");
	while (sqlite3_step(st) == SQLITE_ROW) {
		exec(dst, (const char *)sqlite3_column_text(st, 0));
		n++;
	}
	sqlite3_finalize(st);
	if (n == 0) {
		fprintf(stderr, "sqlite_insert: %s has no tasks table\n", tally_db);
		exit(2);
	}
	*project_id = 1;
	if (sqlite3_prepare_v2(src, "SELECT max(id) FROM projects", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*project_id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(src);
	return dst;
}

static struct row *load(const char *file, size_t *nrows)
{
	FILE *fp = fopen(file, "r");
	char *line = NULL;
	size_t cap = 0, n = 0, rcap = 0;
	ssize_t len;
	struct row *rows = NULL;

	if (!fp) {
		perror(file);
		exit(2);
	}
	while ((len = getline(&line, &cap, fp)) >= 0) {
		json_error_t je;
		json_t *v, *data, *uid, *prio, *meta;
		struct row *r;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		v = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &je);
		if (!v || !json_is_object(v)) {
			fprintf(stderr, "%s:%zu: not a JSON object\n", file, n + 1);
			exit(2);
		}
		data = json_object_get(v, "data");
		if (!data)
			data = v;
		uid = json_object_get(v, "unique_id");
		prio = json_object_get(v, "priority");
		meta = json_object_get(v, "metadata");
		if (n == rcap) {
			rcap = rcap ? rcap * 2 : 65536;
			rows = realloc(rows, rcap * sizeof(*rows));
			if (!rows) {
				fprintf(stderr, "sqlite_insert: out of memory\n");
				exit(2);
			}
		}
		r = &rows[n++];
		r->data = json_dumps(data, JSON_COMPACT);
		r->uid = json_is_string(uid) ? strdup(json_string_value(uid)) : NULL;
		r->priority = json_is_integer(prio) ? json_integer_value(prio) : 0;
		r->meta = json_is_object(meta) ? json_dumps(meta, JSON_COMPACT) : NULL;
		json_decref(v);
	}
	free(line);
	fclose(fp);
	*nrows = n;
	return rows;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static int bulk(const char *tally_db, const char *out_db, const char *file)
{
	int64_t project_id, created = now_ms();
	double t0, t1, t2;
	sqlite3_stmt *st;
	struct row *rows;
	size_t n;
	sqlite3 *db;

	t0 = now_s();
	rows = load(file, &n);
	t1 = now_s();
	db = open_like(tally_db, out_db, &project_id);
	if (sqlite3_prepare_v3(db, insert_sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
		die(db, "prepare");
	t2 = now_s();
	exec(db, "BEGIN IMMEDIATE");
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(st, 1, project_id);
		bind_text_or_null(st, 2, rows[i].uid);
		sqlite3_bind_int64(st, 3, rows[i].priority);
		sqlite3_bind_text(st, 4, rows[i].data, -1, SQLITE_STATIC);
		bind_text_or_null(st, 5, rows[i].meta);
		sqlite3_bind_int64(st, 6, created);
		if (sqlite3_step(st) != SQLITE_DONE)
			die(db, "insert");
		sqlite3_reset(st);
	}
	exec(db, "COMMIT");
	{
		double ins = now_s() - t2, parse = t1 - t0;
		printf("sqlite bulk insert: %zu rows in %.2f s = %.0f rows/s (one transaction);"
		       " JSONL parse+serialize alone: %.2f s = %.0f rows/s\n",
		       n, ins, (double)n / ins, parse, (double)n / parse);
		printf("RESULT rows=%zu insert_s=%.3f insert_rows_s=%.0f parse_s=%.3f parse_rows_s=%.0f\n",
		       n, ins, (double)n / ins, parse, (double)n / parse);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	for (size_t i = 0; i < n; i++) {
		free(rows[i].uid);
		free(rows[i].data);
		free(rows[i].meta);
	}
	free(rows);
	return 0;
}

static int commits(const char *tally_db, const char *out_db, double secs, int per)
{
	int64_t project_id, created = now_ms();
	sqlite3_stmt *st, *begin, *commit;
	long long rows = 0, ncommits = 0;
	double t0, el;
	sqlite3 *db = open_like(tally_db, out_db, &project_id);
	char data[64], uid[32];

	if (sqlite3_prepare_v2(db, insert_sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL) != SQLITE_OK)
		die(db, "prepare");
	t0 = now_s();
	do {
		if (sqlite3_step(begin) != SQLITE_DONE)
			die(db, "begin");
		sqlite3_reset(begin);
		for (int i = 0; i < per; i++, rows++) {
			snprintf(uid, sizeof(uid), "c-%lld", rows);
			snprintf(data, sizeof(data), "{\"text\":\"commit row %lld\"}", rows);
			sqlite3_bind_int64(st, 1, project_id);
			sqlite3_bind_text(st, 2, uid, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, 0);
			sqlite3_bind_text(st, 4, data, -1, SQLITE_STATIC);
			sqlite3_bind_null(st, 5);
			sqlite3_bind_int64(st, 6, created);
			if (sqlite3_step(st) != SQLITE_DONE)
				die(db, "insert");
			sqlite3_reset(st);
		}
		if (sqlite3_step(commit) != SQLITE_DONE)
			die(db, "commit");
		sqlite3_reset(commit);
		ncommits++;
	} while ((el = now_s() - t0) < secs);
	printf("sqlite WAL synchronous=FULL, %d row(s) per commit: %lld commits/s, %.0f rows/s\n",
	       per, (long long)((double)ncommits / el), (double)rows / el);
	printf("RESULT per=%d commits=%lld secs=%.3f commits_s=%.0f rows_s=%.0f\n", per, ncommits, el,
	       (double)ncommits / el, (double)rows / el);
	sqlite3_finalize(st);
	sqlite3_finalize(begin);
	sqlite3_finalize(commit);
	sqlite3_close(db);
	return 0;
}

/* writes a text column as it is stored (or `null_as` when NULL) */
static void put_col(sqlite3_stmt *st, int i, const char *null_as)
{
	const unsigned char *v = sqlite3_column_text(st, i);
	if (v)
		fwrite_unlocked(v, 1, (size_t)sqlite3_column_bytes(st, i), stdout);
	else
		fputs_unlocked(null_as, stdout);
}

static int scan(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long long n = 0;
	double t0 = now_s(), el;
	static char obuf[1 << 20];

	setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		die(db, path);
	exec(db, "PRAGMA cache_size=-65536;");
	if (sqlite3_prepare_v2(db,
			       "SELECT id, unique_id, data, metadata, status FROM tasks"
			       " WHERE +project_id=(SELECT max(id) FROM projects) ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK)
		die(db, "prepare");
	while (sqlite3_step(st) == SQLITE_ROW) {
		char head[64];
		int hn = snprintf(head, sizeof(head), "{\"id\":%lld,\"unique_id\":\"",
				  (long long)sqlite3_column_int64(st, 0));
		fwrite_unlocked(head, 1, (size_t)hn, stdout);
		put_col(st, 1, "");
		fputs_unlocked("\",\"data\":", stdout);
		put_col(st, 2, "null");
		fputs_unlocked(",\"metadata\":", stdout);
		put_col(st, 3, "null");
		hn = snprintf(head, sizeof(head), ",\"status\":%d,\"responses\":[]}\n",
			      sqlite3_column_int(st, 4));
		fwrite_unlocked(head, 1, (size_t)hn, stdout);
		n++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (fflush(stdout) != 0)
		return 2;
	el = now_s() - t0;
	fprintf(stderr, "RESULT rows=%lld scan_s=%.3f scan_rows_s=%.0f\n", n, el, (double)n / el);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "scan") == 0)
		return scan(argv[2]);
	if (argc == 5 && strcmp(argv[1], "bulk") == 0)
		return bulk(argv[2], argv[3], argv[4]);
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "commits") == 0) {
		double secs = atof(argv[4]);
		int per = argc == 6 ? atoi(argv[5]) : 1;
		if (secs <= 0 || secs > 600 || per < 1 || per > 100000) {
			fprintf(stderr, "sqlite_insert: bad SECONDS or ROWS_PER_COMMIT\n");
			return 1;
		}
		return commits(argv[2], argv[3], secs, per);
	}
	fprintf(stderr,
		"usage: sqlite_insert bulk TALLY_DB OUT_DB FILE.jsonl\n"
		"       sqlite_insert commits TALLY_DB OUT_DB SECONDS [ROWS_PER_COMMIT]\n"
		"       sqlite_insert scan DB > OUT\n");
	return 1;
}
