#!/usr/bin/env bash
# bench/import.sh — `tally import` and `tally export` throughput, beside their
# ceilings measured in the same run on the same rows:
#   - import: raw SQLite inserts of the same rows into the same tasks table
#     (schema and indexes copied from the tally database, same PRAGMAs), one
#     transaction, one prepared statement (bench/sqlite_insert.c bulk);
#   - export: a raw SQLite scan of the same rows written out as JSON lines by
#     string concatenation (bench/sqlite_insert.c scan).
# Peak RSS of each process comes from wait4() (bench/runstat.c).
#
#   bench/import.sh [TASKS]          default 1000000
#   EXPORT_LIMIT=S (default 100)     stops the export after S seconds and
#                                    reports the rate reached so far
#
# Everything runs in a temp directory that is removed on exit. About 60-90 s
# with the default on the 2-core dev machine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=${1:-1000000}
EXPORT_LIMIT=${EXPORT_LIMIT:-100}
[ "$N" -ge 1 ] 2>/dev/null || die "usage: $0 [TASKS]"

bench_setup
T0=$(date +%s)

"$TALLY" init
ORG=$("$TALLY" org add bench)
write_schema "$TMP/schema.json"
PRJ=$("$TALLY" project create --org "$ORG" --schema "$TMP/schema.json")
say "generating $N tasks"
gen_tasks "$N" "$TMP/tasks.jsonl"
BYTES=$(stat -c %s "$TMP/tasks.jsonl")

# stat_of FILE KEY
stat_of() { tr ' ' '\n' <"$1" | sed -n "s/^$2=//p"; }

say "tally import"
timeout 600 "$RUNSTAT" "$TMP/import.stat" "$TALLY" import "$PRJ" "$TMP/tasks.jsonl" 2>"$TMP/import.err" >"$TMP/import.out" ||
	{ cat "$TMP/import.err" >&2; die "tally import failed"; }
cat "$TMP/import.out" >&2
IMP_S=$(stat_of "$TMP/import.stat" wall_s)
IMP_RSS=$(stat_of "$TMP/import.stat" maxrss_kb)
IMP_CPU=$(awk -v u="$(stat_of "$TMP/import.stat" user_s)" -v s="$(stat_of "$TMP/import.stat" sys_s)" 'BEGIN { printf "%.1f", u + s }')
grep -q "created $N," "$TMP/import.out" || die "import did not create $N tasks: $(cat "$TMP/import.out")"
DB_MB=$(du -cm "$TALLY_DB"* | tail -n1 | cut -f1)

say "ceiling: raw SQLite bulk insert of the same rows"
RAW=$(timeout 600 "$RUNSTAT" "$TMP/raw.stat" "$SQLITE_INSERT" bulk "$TALLY_DB" "$TMP/raw.db" "$TMP/tasks.jsonl" | grep '^RESULT')
rm -f "$TMP"/raw.db*
rm -f "$TMP/tasks.jsonl"

say "tally export (time limit ${EXPORT_LIMIT} s)"
EXP_NOTE=
rc=0
timeout "$EXPORT_LIMIT" "$RUNSTAT" "$TMP/export.stat" "$TALLY" export "$PRJ" >"$TMP/export.jsonl" 2>"$TMP/export.err" || rc=$?
EXP_S=$(stat_of "$TMP/export.stat" wall_s)
EXP_RSS=$(stat_of "$TMP/export.stat" maxrss_kb)
EXP_LINES=$(wc -l <"$TMP/export.jsonl")
EXP_MB=$(du -m "$TMP/export.jsonl" | cut -f1)
rm -f "$TMP/export.jsonl"
if [ "$rc" = 124 ]; then
	EXP_NOTE=" (STOPPED at the ${EXPORT_LIMIT} s limit after $EXP_LINES of $N tasks)"
elif [ "$rc" != 0 ]; then
	cat "$TMP/export.err" >&2
	die "tally export failed"
elif [ "$EXP_LINES" != "$N" ]; then
	die "export gave $EXP_LINES lines for $N tasks"
fi

say "ceiling: raw SQLite scan of the same rows"
timeout 600 "$RUNSTAT" "$TMP/scan.stat" "$SQLITE_INSERT" scan "$TALLY_DB" >/dev/null 2>"$TMP/scan.err" ||
	{ cat "$TMP/scan.err" >&2; die "scan failed"; }
SCAN=$(grep '^RESULT' "$TMP/scan.err")
SCAN_RSS=$(stat_of "$TMP/scan.stat" maxrss_kb)

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
IMP_R=$(rate "$N" "$IMP_S")
RAW_R=$(field insert_rows_s "$RAW")
PARSE_R=$(field parse_rows_s "$RAW")
EXP_R=$(rate "$EXP_LINES" "$EXP_S")
SCAN_R=$(field scan_rows_s "$SCAN")
# what a perfect pipeline of "parse JSON, then insert" could reach: 1/(1/parse + 1/insert)
PIPE_R=$(awk -v a="$PARSE_R" -v b="$RAW_R" 'BEGIN { printf "%.0f", 1 / (1 / a + 1 / b) }')

echo
echo "tally import/export benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(machine)"
echo "$N tasks, $((BYTES / 1048576)) MiB of JSONL (text field, unique_id, priority, metadata); database after import: $DB_MB MiB"
echo
printf '| %-44s | %-16s | %-50s | %-6s |\n' "what" "figure" "ceiling in the same run" "ratio"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..18})" "$(printf -- '-%.0s' {1..52})" "$(printf -- '-%.0s' {1..8})"
printf '| %-44s | %-16s | %-50s | %-6s |\n' "tally import (JSONL, one transaction)" "$IMP_R rows/s" "raw SQLite insert, same rows+indexes: $RAW_R rows/s" "$(ratio "$IMP_R" "$RAW_R")"
printf '| %-44s | %-16s | %-50s | %-6s |\n' "tally export (JSONL to a file)${EXP_NOTE:+, PARTIAL}" "$EXP_R tasks/s" "raw SQLite scan, rows concatenated: $SCAN_R rows/s" "$(ratio "$EXP_R" "$SCAN_R")"
echo
echo "import: $IMP_S s wall, $IMP_CPU s CPU, peak RSS $((IMP_RSS / 1024)) MiB"
echo "export: $EXP_S s wall$EXP_NOTE, $EXP_MB MiB written, peak RSS $((EXP_RSS / 1024)) MiB (raw scan: $((SCAN_RSS / 1024)) MiB)"
echo "JSONL parse+serialize alone (jansson, in the ceiling program): $PARSE_R rows/s;" \
	"parse then insert on one core would give 1/(1/parse + 1/insert) = $PIPE_R rows/s ($(ratio "$IMP_R" "$PIPE_R") reached)"
echo "total run time: $(($(date +%s) - T0)) s"
