#!/usr/bin/env bash
# bench/report.sh — the quality report (GET /projects/{id}/quality) of a large
# project: time and the server's peak RSS, beside a raw SQLite scan of the
# rows the report reads (tasks joined with their responses: bench/scale_scan.c,
# which also writes each row out) measured in the same run.
#
#   bench/report.sh [TASKS] [ANSWERS_PER_TASK]     defaults 300000 and 3
#
# Setup: `tally import` of TASKS tasks into a project with a choice and a
# rating question (min_responses = ANSWERS_PER_TASK), then bulk SQL in the
# shape the server writes: ANSWERS_PER_TASK assignments and responses per task
# from 20 annotators, 80 % of them agreeing, a consensus per task and the
# annotators' counters. Everything in a temp dir, removed on exit. About 60 s
# for the defaults.
#
# The report is asked for three times, each from a new server (a server keeps
# its last walk of a project while nothing changes: a fourth request, to the
# last server, times that); the server's VmHWM is read before and after.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=${1:-300000}
K=${2:-3}
LIMIT=${REPORT_LIMIT:-600}
[ "$N" -ge 1 ] && [ "$K" -ge 1 ] && [ "$K" -le 20 ] 2>/dev/null || die "usage: $0 [TASKS] [ANSWERS_PER_TASK 1-20]"
command -v sqlite3 >/dev/null || die "the sqlite3 CLI is needed for the setup"

bench_setup
scan_setup
T0=$(date +%s)

say "setup: $N tasks by tally import, then $K answers each by bulk SQL"
bulk_org 20
cat >"$TMP/schema.json" <<EOF
{"name":"report","fields":[{"name":"text","type":"text"}],
 "questions":[{"name":"label","type":"choice","options":["positive","negative","neutral"]},
              {"name":"stars","type":"rating","min":1,"max":5}],
 "min_responses":$K,"max_responses":$K,"lease_seconds":600}
EOF
PRJ=$("$TALLY" project create --org "$ORG" --schema "$TMP/schema.json")
gen_tasks "$N" "$TMP/tasks.jsonl"
timeout 300 "$TALLY" import "$PRJ" "$TMP/tasks.jsonl" >/dev/null
rm -f "$TMP/tasks.jsonl"
ts=$(date +%s%3N)
# answer k of task t is given by annotator (t + k) % 20; it is the task's
# "true" label, except when (t * 31 + k * 17) % 10 < 2 (one in five)
timeout 600 sqlite3 "$TALLY_DB" <<EOF >/dev/null
PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;
BEGIN;
CREATE TEMP TABLE ann AS SELECT id AS uid, row_number() OVER (ORDER BY id) - 1 AS k
  FROM users WHERE email LIKE 'a%@bench.test';
CREATE TEMP TABLE ks AS WITH RECURSIVE c(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM c WHERE k + 1 < $K) SELECT k FROM c;
CREATE TEMP TABLE lab(i, name); INSERT INTO lab VALUES (0, 'positive'), (1, 'negative'), (2, 'neutral');
INSERT INTO assignments(task_id, project_id, user_id, status, created_at, expires_at)
  SELECT t.id, t.project_id, (SELECT uid FROM ann WHERE ann.k = (t.id + ks.k) % 20), 1, $ts, $ts + 600000
  FROM tasks t, ks ORDER BY t.id, ks.k;
INSERT INTO responses(task_id, assignment_id, user_id, answers, duration_ms, created_at, correct)
  SELECT a.task_id, a.id, a.user_id,
         '{"label":"' || (SELECT name FROM lab WHERE i = (a.task_id + ((a.task_id * 31 + a.id * 17) % 10 < 2)) % 3) ||
         '","stars":' || (1 + (a.task_id + ((a.task_id * 31 + a.id * 17) % 10 < 2)) % 5) || '}', 1200, $ts, NULL
  FROM assignments a ORDER BY a.id;
UPDATE tasks SET status = 2, n_responses = $K, n_leases = 0, slots = 0,
  consensus = '{"label":{"label":"' || (SELECT name FROM lab WHERE i = id % 3) ||
              '","confidence":0.9,"votes":{},"method":"one_coin"},"stars":{"label":' || (1 + id % 5) ||
              ',"confidence":0.9,"votes":{},"method":"one_coin","mean":3,"spread":1}}';
INSERT INTO annotator_stats(project_id, user_id, answered)
  SELECT (SELECT id FROM projects WHERE name = 'report'), user_id, count(*) FROM responses GROUP BY user_id;
-- rows written in SQL bypass tally's status counters: count them again
DELETE FROM project_counts;
INSERT INTO project_counts SELECT project_id, status, count(*) FROM tasks GROUP BY project_id, status;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
EOF
sync -f "$TALLY_DB"
NRESP=$(sqlite3 "$TALLY_DB" "SELECT count(*) FROM responses")
[ "$NRESP" = $((N * K)) ] || die "setup: $NRESP responses for $N tasks x $K"
DB_MB=$(du -cm "$TALLY_DB"* | tail -n1 | cut -f1)
say "setup done in $(($(date +%s) - T0)) s: $N tasks, $NRESP responses, database $DB_MB MiB"

warm() { cat "$TALLY_DB" "$TALLY_DB-wal" >/dev/null 2>&1 || true; }

say "ceiling: raw SQLite scan of the same rows (tasks joined with responses), run 1"
warm
timeout "$LIMIT" "$SCAN" "$TALLY_DB" >/dev/null 2>"$TMP/scan1.err" || { cat "$TMP/scan1.err" >&2; die "scan failed"; }

# each walk on a server of its own: a server keeps its last walk of a
# project, and a second report with nothing changed reuses it (timed apart)
TIMES=()
ask() {
	curl -sS -o "$TMP/report.json" --max-time "$LIMIT" -H "Authorization: Bearer $KEY" \
		-w 'code=%{http_code} secs=%{time_total}\n' \
		"http://127.0.0.1:$PORT/api/v1/projects/$PRJ/quality" >"$TMP/curl.out"
	[ "$(field code "$(cat "$TMP/curl.out")")" = 200 ] || die "report: $(cat "$TMP/curl.out") $(head -c 300 "$TMP/report.json")"
	field secs "$(cat "$TMP/curl.out")"
}
CPU=0
for i in 1 2 3; do
	serve_start "$TMP/serve.log"
	RSS0=$(awk '/^VmHWM/ { print $2 }' "/proc/$SERVE/status")
	say "report $i (a new server)"
	warm
	C0=$(cpu_ticks "$SERVE")
	TIMES+=("$(ask)")
	CPU=$((CPU + $(cpu_ticks "$SERVE") - C0))
	RSS1=$(awk '/^VmHWM/ { print $2 }' "/proc/$SERVE/status")
	[ "$i" = 3 ] && AGAIN=$(ask)
	bg_stop "$SERVE"
done
GOT=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["counts"]["responses"], " ".join("%s=%.4f/%d" % (q["name"], q["krippendorff_alpha"] or 0, q["units"]) for q in r["questions"]), len(r["annotators"]))' "$TMP/report.json")
read -r RESP_GOT QS NANN <<<"$GOT" || true
[ "$RESP_GOT" = "$NRESP" ] || die "the report counted $RESP_GOT responses of $NRESP"

say "ceiling: raw SQLite scan, run 2"
warm
timeout "$LIMIT" "$SCAN" "$TALLY_DB" >/dev/null 2>"$TMP/scan2.err" || { cat "$TMP/scan2.err" >&2; die "scan failed"; }
S1=$(field scan_s "$(grep '^RESULT' "$TMP/scan1.err")")
S2=$(field scan_s "$(grep '^RESULT' "$TMP/scan2.err")")
BEST=$(printf '%s\n' "${TIMES[@]}" | sort -n | head -n1)
SC=$(awk -v a="$S1" -v b="$S2" 'BEGIN { print (a < b ? a : b) }')
CPU_S=$(awk -v t="$CPU" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz / 3 }')

echo
echo "tally quality report — $(date -u +%Y-%m-%dT%H:%MZ), $(machine)"
echo "$N tasks x $K answers = $NRESP responses (choice + rating), database $DB_MB MiB"
echo
echo "| what | figure | ceiling in the same run | ratio |"
echo "|---|---|---|---|"
echo "| report, best of 3 | $BEST s ($(awk -v n="$NRESP" -v s="$BEST" 'BEGIN { printf "%.0f", n / s }') answers/s); runs ${TIMES[*]} s; server CPU $CPU_S s a report | raw scan of the same join, best of 2: $SC s (runs $S1, $S2) | $(awk -v a="$SC" -v b="$BEST" 'BEGIN { printf "%.0f%%", 100 * a / b }') of the scan's speed |"
echo "| server peak RSS (VmHWM) | $((RSS1 / 1024)) MiB after a report | before it: $((RSS0 / 1024)) MiB | |"
echo "| the same report again, nothing changed (the kept walk) | $AGAIN s | | |"
echo
echo "report: responses $RESP_GOT; alpha/units $QS; $NANN annotators"
echo "total run time: $(($(date +%s) - T0)) s"
