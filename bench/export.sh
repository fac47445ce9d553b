#!/usr/bin/env bash
# bench/export.sh — export of COMPLETED tasks (one response and a consensus
# each), by the CLI and over HTTP, with peak RSS, beside a raw SQLite scan of
# the same rows (tasks joined with responses, written as JSON lines by
# concatenation: bench/scale_scan.c) measured in the same run.
#
#   bench/export.sh [TASKS]          default 1000000
#
# Setup: `tally import` of TASKS generated tasks (the real rows: unique_id,
# priority, metadata), then bulk SQL in the shape the server writes after a
# claim+submit: one assignments row (status submitted) and one responses row
# per task, spread over 64 annotators, and tasks set to status=2 (completed),
# n_responses=1, n_leases=0 (slots=0) and a consensus object. Everything in a temp dir,
# removed on exit; every process stopped on exit. About 90 s for 1,000,000.
#
# Each timed run starts from a warm page cache (the database read once just
# before it): this VM pages out memory left untouched for about a minute
# (DAMON's pageout scheme, kdamond), so without the warm-up a run read
# from disk or from memory depending on how long the setup took, and the
# figures swung by 2x from run to run. Ceiling and tally are treated alike.
#
# tally reads an export with one connection per core (default of --threads
# and --export-threads), so the ceiling it is set against is as many raw
# scans at once, one per core; the single-connection scan and a CLI export
# with --threads 1 are shown beside them.
#
# Targets (issue): at least 500,000 tasks/s, peak RSS under 64 MiB.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=${1:-1000000}
LIMIT=${EXPORT_LIMIT:-120}
[ "$N" -ge 1 ] 2>/dev/null || die "usage: $0 [TASKS]"
command -v sqlite3 >/dev/null || die "the sqlite3 CLI is needed for the setup"

bench_setup
scan_setup
T0=$(date +%s)

say "setup: $N tasks by tally import, then bulk SQL to complete them"
bulk_org 64
write_schema "$TMP/schema.json"
PRJ=$("$TALLY" project create --org "$ORG" --schema "$TMP/schema.json")
gen_tasks "$N" "$TMP/tasks.jsonl"
timeout 300 "$TALLY" import "$PRJ" "$TMP/tasks.jsonl" >/dev/null
rm -f "$TMP/tasks.jsonl"
CONS='{"label":{"label":"positive","confidence":0.9,"votes":{"positive":1},"method":"one_coin"}}'
ts=$(date +%s%3N)
# a completed task has no free place left (the server's slots counter, when the schema has one)
SLOTS=
[ "$(sqlite3 "$TALLY_DB" "SELECT count(*) FROM pragma_table_info('tasks') WHERE name = 'slots'")" = 0 ] || SLOTS=", slots = 0"
timeout 300 sqlite3 "$TALLY_DB" <<EOF >/dev/null
PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;
BEGIN;
CREATE TEMP TABLE ann AS SELECT id AS uid, row_number() OVER (ORDER BY id) - 1 AS k
  FROM users WHERE email LIKE 'a%@bench.test';
INSERT INTO assignments(id, task_id, project_id, user_id, status, created_at, expires_at)
  SELECT t.id, t.id, t.project_id, (SELECT uid FROM ann WHERE k = t.id % 64), 1, $ts, $ts + 600000
  FROM tasks t ORDER BY t.id;
INSERT INTO responses(task_id, assignment_id, user_id, answers, duration_ms, created_at, correct)
  SELECT task_id, id, user_id, '{"label":"positive"}', 1200, $ts, NULL FROM assignments ORDER BY id;
UPDATE tasks SET status = 2, n_responses = 1, n_leases = 0, consensus = '$CONS'$SLOTS;
-- rows written in SQL bypass tally's status counters: count them again
DELETE FROM project_counts;
INSERT INTO project_counts SELECT project_id, status, count(*) FROM tasks GROUP BY project_id, status;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
EOF
sync -f "$TALLY_DB"
NDONE=$(sqlite3 "$TALLY_DB" "SELECT count(*) FROM tasks WHERE status = 2 AND n_responses = 1 AND consensus IS NOT NULL")
NRESP=$(sqlite3 "$TALLY_DB" "SELECT count(*) FROM responses")
[ "$NDONE" = "$N" ] && [ "$NRESP" = "$N" ] || die "setup: $NDONE completed tasks, $NRESP responses for $N"
DB_MB=$(du -cm "$TALLY_DB"* | tail -n1 | cut -f1)
say "setup done in $(($(date +%s) - T0)) s: $N completed tasks, $NRESP responses, database $DB_MB MiB"

warm() { cat "$TALLY_DB" "$TALLY_DB-wal" >/dev/null 2>&1 || true; }
stat_of() { tr ' ' '\n' <"$1" | sed -n "s/^$2=//p"; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }

# the ceiling first and last, so a drift during the run shows
say "ceiling: raw SQLite scan of the same rows (tasks joined with responses), run 1"
warm
timeout "$LIMIT" "$RUNSTAT" "$TMP/scan1.stat" "$SCAN" "$TALLY_DB" >"$TMP/scan.jsonl" 2>"$TMP/scan1.err" ||
	{ cat "$TMP/scan1.err" >&2; die "scan failed"; }
SCAN_MB=$(du -m "$TMP/scan.jsonl" | cut -f1)
rm -f "$TMP/scan.jsonl"

NCPU=$(nproc)
THREADS=$((NCPU > 8 ? 8 : NCPU))
say "ceiling: $THREADS raw scans at once, one per core"
warm
P0=$(date +%s%N)
pids=()
for i in $(seq 1 "$THREADS"); do
	timeout "$LIMIT" "$SCAN" "$TALLY_DB" >/dev/null 2>"$TMP/scanp$i.err" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "parallel scan failed: $(cat "$TMP"/scanp*.err)"; done
PAR_S=$(awk -v a="$P0" -v b="$(date +%s%N)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
PAR_R=$(awk -v n="$N" -v k="$THREADS" -v s="$PAR_S" 'BEGIN { printf "%.0f", n * k / s }')

say "tally export (CLI, --threads 1, to a file)"
warm
timeout "$LIMIT" "$RUNSTAT" "$TMP/cli1.stat" "$TALLY" export "$PRJ" --threads 1 >"$TMP/export1.jsonl" 2>"$TMP/cli1.err" ||
	die "CLI export --threads 1 failed: $(cat "$TMP/cli1.err")"
[ "$(wc -l <"$TMP/export1.jsonl")" = "$N" ] || die "CLI export --threads 1: $(wc -l <"$TMP/export1.jsonl") lines for $N"
CLI1_S=$(stat_of "$TMP/cli1.stat" wall_s)

say "tally export (CLI, $THREADS threads, to a file; limit $LIMIT s)"
rc=0
warm
timeout "$LIMIT" "$RUNSTAT" "$TMP/cli.stat" "$TALLY" export "$PRJ" >"$TMP/export.jsonl" 2>"$TMP/cli.err" || rc=$?
CLI_LINES=$(wc -l <"$TMP/export.jsonl")
CLI_BYTES=$(stat -c %s "$TMP/export.jsonl")
CLI_MB=$((CLI_BYTES / 1048576))
CLI_OK=$(head -n1 "$TMP/export.jsonl" | grep -c '"consensus":{"label"' || true)
CLI_NOTE=
[ "$rc" = 0 ] || CLI_NOTE=" (STOPPED, exit $rc, after $CLI_LINES tasks)"
[ "$rc" != 0 ] || [ "$CLI_LINES" = "$N" ] || die "CLI export gave $CLI_LINES lines for $N tasks"
[ "$CLI_OK" = 1 ] || die "CLI export line without consensus: $(head -c 300 "$TMP/export.jsonl")"
head -n1 "$TMP/export.jsonl" >"$TMP/sample.jsonl"
cmp -s "$TMP/export.jsonl" "$TMP/export1.jsonl" || CLI_NOTE="$CLI_NOTE (DIFFERS from --threads 1)"
rm -f "$TMP/export.jsonl" "$TMP/export1.jsonl"
CLI_S=$(stat_of "$TMP/cli.stat" wall_s)
CLI_RSS=$(stat_of "$TMP/cli.stat" maxrss_kb)

serve_start "$TMP/serve.log"
say "tally serve on 127.0.0.1:$PORT; HTTP export with curl to /dev/null"
RSS0=$(awk '/^VmHWM/ { print $2 }' "/proc/$SERVE/status")
rc=0
warm
curl -sS -o /dev/null --max-time "$LIMIT" -H "Authorization: Bearer $KEY" \
	-w 'code=%{http_code} bytes=%{size_download} secs=%{time_total} first=%{time_starttransfer}\n' \
	"http://127.0.0.1:$PORT/api/v1/projects/$PRJ/export" >"$TMP/curl.out" || rc=$?
HTTP=$(cat "$TMP/curl.out")
HTTP_RSS=$(awk '/^VmHWM/ { print $2 }' "/proc/$SERVE/status")
# the line count over HTTP: a second pass would double the time; check bytes instead
HTTP_S=$(field secs "$HTTP")
HTTP_BYTES=$(field bytes "$HTTP")
HTTP_NOTE=
[ "$rc" = 0 ] && [ "$(field code "$HTTP")" = 200 ] || HTTP_NOTE=" (FAILED or STOPPED: curl exit $rc, $HTTP)"
bg_stop "$SERVE"
[ -n "$HTTP_NOTE" ] || [ "$HTTP_BYTES" = "$CLI_BYTES" ] || HTTP_NOTE=" (BYTES DIFFER: $HTTP_BYTES over HTTP, $CLI_BYTES by the CLI)"

say "ceiling: raw SQLite scan, run 2"
warm
timeout "$LIMIT" "$RUNSTAT" "$TMP/scan2.stat" "$SCAN" "$TALLY_DB" >/dev/null 2>"$TMP/scan2.err" ||
	{ cat "$TMP/scan2.err" >&2; die "scan failed"; }
say "context: the same scan with a 2 MiB page cache; the tasks table alone (sqlite_insert scan)"
warm
timeout "$LIMIT" "$RUNSTAT" "$TMP/scan3.stat" "$SCAN" "$TALLY_DB" 0 2048 >/dev/null 2>"$TMP/scan3.err" ||
	{ cat "$TMP/scan3.err" >&2; die "scan failed"; }
warm
timeout "$LIMIT" "$SQLITE_INSERT" scan "$TALLY_DB" >/dev/null 2>"$TMP/scan4.err" ||
	{ cat "$TMP/scan4.err" >&2; die "scan failed"; }
S3=$(grep '^RESULT' "$TMP/scan3.err")
S4=$(grep '^RESULT' "$TMP/scan4.err")
S1=$(grep '^RESULT' "$TMP/scan1.err")
S2=$(grep '^RESULT' "$TMP/scan2.err")
SC1=$(field scan_tasks_s "$S1") SC2=$(field scan_tasks_s "$S2")
SC=$(awk -v a="$SC1" -v b="$SC2" 'BEGIN { printf "%.0f", (a > b ? a : b) }')
SCAN_RSS=$(stat_of "$TMP/scan1.stat" maxrss_kb)

CLI_R=$(rate "$CLI_LINES" "$CLI_S")
CLI1_R=$(rate "$N" "$CLI1_S")
HTTP_R=$(rate "$N" "$HTTP_S")
pf() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { print ((dir == "ge" ? v >= t : v < t) ? "PASS" : "FAIL") }'; }

echo
echo "tally export of completed tasks — $(date -u +%Y-%m-%dT%H:%MZ), $(machine)"
echo "$N completed tasks (1 response + consensus each), database $DB_MB MiB; output $CLI_MB MiB of JSONL (scan: $SCAN_MB MiB)"
echo
printf '| %-40s | %-20s | %-44s | %-6s | %-4s |\n' "what" "figure" "ceiling in the same run" "ratio" "target"
printf '|%s|%s|%s|%s|%s|\n' "------------------------------------------" "----------------------" "----------------------------------------------" "--------" "------"
printf '| %-40s | %-20s | %-44s | %-6s | %-4s |\n' "tally export (CLI, to a file, $THREADS threads)$CLI_NOTE" "$CLI_R tasks/s" "$THREADS raw scans at once: $PAR_R tasks/s" "$(ratio "$CLI_R" "$PAR_R")" "$(pf "$CLI_R" 500000 ge)"
printf '| %-40s | %-20s | %-44s | %-6s | %-4s |\n' "same, --threads 1" "$CLI1_R tasks/s" "raw scan, one connection: $SC tasks/s" "$(ratio "$CLI1_R" "$SC")" ""
printf '| %-40s | %-20s | %-44s | %-6s | %-4s |\n' "peak RSS, CLI export" "$((CLI_RSS / 1024)) MiB" "raw scan: $((SCAN_RSS / 1024)) MiB" "" "$(pf "$CLI_RSS" 65536 lt)"
printf '| %-40s | %-20s | %-44s | %-6s | %-4s |\n' "HTTP export (curl to /dev/null)$HTTP_NOTE" "$HTTP_R tasks/s" "$THREADS raw scans at once: $PAR_R tasks/s" "$(ratio "$HTTP_R" "$PAR_R")" "$(pf "$HTTP_R" 500000 ge)"
printf '| %-40s | %-20s | %-44s | %-6s | %-4s |\n' "peak RSS of tally serve (VmHWM)" "$((HTTP_RSS / 1024)) MiB" "before the export: $((RSS0 / 1024)) MiB" "" "$(pf "$HTTP_RSS" 65536 lt)"
echo
echo "CLI: $CLI_S s wall ($CLI1_S s with --threads 1), $CLI_LINES lines; $THREADS raw scans at once: $PAR_S s; HTTP: $HTTP_S s, $((HTTP_BYTES / 1048576)) MiB, first byte after $(field first "$HTTP") s"
echo "raw scan runs: $SC1 and $SC2 tasks/s (the better one is the ceiling)"
echo "same scan with a 2 MiB SQLite page cache instead of tally's 64 MiB: $(field scan_tasks_s "$S3") tasks/s, peak RSS $(($(stat_of "$TMP/scan3.stat" maxrss_kb) / 1024)) MiB"
echo "tasks table alone, no responses (bench/sqlite_insert scan): $(field scan_rows_s "$S4") rows/s"
echo "first exported line: $(head -c 400 "$TMP/sample.jsonl")"
echo "total run time: $(($(date +%s) - T0)) s"
