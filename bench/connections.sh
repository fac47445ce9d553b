#!/usr/bin/env bash
# bench/connections.sh — 1,000 concurrent keep-alive connections on one
# `tally serve` for 60 s, each its own annotator (own user, own API key)
# looping claim -> submit (bench/loadgen), beside the hello-world evhttp server
# (bench/hello_evhttp, one thread, same limits) driven by the same client at
# the same connection count for the same time.
#
#   bench/connections.sh [CONNS] [SECONDS] [TASKS]
#       defaults: 1000 connections, 60 s, 500000 tasks (more than 1000
#       annotators can label in 60 s here)
#
# Target (issue): zero errors, p99 under 50 ms. Raises the soft open-file
# limit of this script (and so of the servers it starts) to CONNS + 1024 when
# the hard limit allows; prints the limit the server actually ran with, from
# /proc/PID/limits. Loopback only; every process stopped on exit. About 3
# minutes with the defaults (most of it the two 60-s runs and creating 1000
# users and keys through the CLI).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CONNS=${1:-1000}
SECS=${2:-60}
TASKS=${3:-500000}
[ "$CONNS" -ge 1 ] && [ "$CONNS" -le 4096 ] && [ "$TASKS" -ge "$CONNS" ] || die "usage: $0 [CONNS<=4096] [SECONDS] [TASKS]"

want=$((CONNS + 1024))
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ]; then
	[ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -ge "$want" ] || ulimit -Sn "$want"
else
	ulimit -Sn "$hard"
fi

bench_setup
T0=$(date +%s)

say "setup: $CONNS annotators with keys (CLI), project, $TASKS tasks (tally import)"
"$TALLY" init
ORG=$("$TALLY" org add bench)
: >"$TMP/keys"
for i in $(seq 1 "$CONNS"); do
	"$TALLY" user add --org "$ORG" --email "a$i@bench.test" --role annotator >/dev/null
	"$TALLY" key create --user "a$i@bench.test" 2>/dev/null >>"$TMP/keys"
done
[ "$(wc -l <"$TMP/keys")" = "$CONNS" ] || die "made $(wc -l <"$TMP/keys") keys for $CONNS annotators"
write_schema "$TMP/schema.json"
PRJ=$("$TALLY" project create --org "$ORG" --schema "$TMP/schema.json")
gen_tasks "$TASKS" "$TMP/tasks.jsonl"
timeout 300 "$TALLY" import "$PRJ" "$TMP/tasks.jsonl" >/dev/null
rm -f "$TMP/tasks.jsonl"
say "setup done in $(($(date +%s) - T0)) s"

PORT=$(free_port)
say "claim+submit: $CONNS connections, $SECS s (tally serve on 127.0.0.1:$PORT)"
bg_start "$TMP/serve.log" "$TALLY" serve --listen "127.0.0.1:$PORT"
SERVE=$BG_PID
wait_http "$SERVE" "$PORT" /api/v1/openapi.json || { cat "$TMP/serve.log" >&2; die "tally serve did not start"; }
NOFILE=$(awk '/^Max open files/ { print $4 }' "/proc/$SERVE/limits")
t0=$(cpu_ticks "$SERVE")
rc=0
timeout $((SECS + 90)) "$LOADGEN" -p "$PORT" -c "$CONNS" -d "$SECS" --claim "$PRJ" --keys "$TMP/keys" \
	--answer '{"answers":{"label":"positive"},"duration_ms":1200}' >"$TMP/lg.tally" 2>&1 || rc=$?
t1=$(cpu_ticks "$SERVE")
NFD=$(ls "/proc/$SERVE/fd" 2>/dev/null | wc -l)
RSS=$(awk '/^VmHWM/ { print $2 }' "/proc/$SERVE/status")
ALIVE=yes
kill -0 "$SERVE" 2>/dev/null || ALIVE="NO (the server died)"
bg_stop "$SERVE"
cat "$TMP/lg.tally" >&2
[ "$rc" = 0 ] || die "loadgen failed (exit $rc)"
R=$(grep '^RESULT' "$TMP/lg.tally")
CPU=$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v s="$(field secs "$R")" 'BEGIN { printf "%.0f%%", 100 * t / hz / s }')
SERVER_ERRS=$(grep -ciE 'error|too many|cannot|fail' "$TMP/serve.log" || true)

NRESP=$(sqlite3 "$TALLY_DB" "SELECT count(*) FROM responses" 2>/dev/null || echo "?")
NOVER=$(sqlite3 "$TALLY_DB" "SELECT count(*) FROM (SELECT task_id FROM responses GROUP BY task_id HAVING count(*) > 1)" 2>/dev/null || echo "?")

PORT=$(free_port)
say "ceiling: hello_evhttp, $CONNS connections, $SECS s (127.0.0.1:$PORT)"
bg_start "$TMP/hello.log" "$HELLO" "$PORT"
HELLOPID=$BG_PID
wait_http "$HELLOPID" "$PORT" / || die "hello_evhttp did not start"
timeout $((SECS + 90)) "$LOADGEN" -p "$PORT" -c "$CONNS" -d "$SECS" --get / >"$TMP/lg.hello" 2>&1 || die "loadgen (hello) failed"
bg_stop "$HELLOPID"
cat "$TMP/lg.hello" >&2
H=$(grep '^RESULT' "$TMP/lg.hello")

pf() { awk -v v="$1" -v t="$2" 'BEGIN { print (v < t) ? "PASS" : "FAIL" }'; }
E=$(field errors "$R")
CP99=$(field claim_p99_ms "$R") SP99=$(field submit_p99_ms "$R") HP99=$(field get_p99_ms "$H")
echo
echo "tally $CONNS connections — $(date -u +%Y-%m-%dT%H:%MZ), $(machine)"
echo "$CONNS keep-alive connections, one annotator (own key) each, claim -> submit for $SECS s; $TASKS tasks, min=max=1; client bench/loadgen (1 thread)"
echo
printf '| %-44s | %-26s | %-38s | %-7s | %-4s |\n' "what" "figure" "ceiling: hello-world evhttp, same conns" "ratio" "target"
printf '|%s|%s|%s|%s|%s|\n' "----------------------------------------------" "----------------------------" "----------------------------------------" "---------" "------"
printf '| %-44s | %-26s | %-38s | %-7s | %-4s |\n' "errors (non-2xx, connection, timeout)" "$E" "$(field errors "$H")" "" "$([ "$E" = 0 ] && echo PASS || echo FAIL)"
printf '| %-44s | %-26s | %-38s | %-7s | %-4s |\n' "claim p99 (p50)" "$CP99 ms ($(field claim_p50_ms "$R") ms)" "GET p99 $HP99 ms (p50 $(field get_p50_ms "$H") ms)" "$(awk -v a="$CP99" -v b="$HP99" 'BEGIN { printf "%.0fx", (b > 0 ? a / b : 0) }')" "$(pf "$CP99" 50)"
printf '| %-44s | %-26s | %-38s | %-7s | %-4s |\n' "submit p99 (p50)" "$SP99 ms ($(field submit_p50_ms "$R") ms)" "" "" "$(pf "$SP99" 50)"
printf '| %-44s | %-26s | %-38s | %-7s | %-4s |\n' "requests/s" "$(field req_s "$R") req/s" "$(field req_s "$H") req/s" "$(ratio "$(field req_s "$R")" "$(field req_s "$H")")" ""
echo
echo "claim max $(field claim_max_ms "$R") ms, submit max $(field submit_max_ms "$R") ms; hello max $(field get_max_ms "$H") ms"
echo "tasks labelled: $(field cycles "$R") ($(field cycles_s "$R")/s); responses stored: $NRESP; tasks with more than one response: $NOVER"
echo "server: CPU $CPU of one core, peak RSS $((RSS / 1024)) MiB, $NFD fds open at the end of the load, open-file limit $NOFILE, alive after the load: $ALIVE"
echo "server log lines that look like errors: $SERVER_ERRS"
grep -iE 'error|too many|cannot|fail' "$TMP/serve.log" | sort | uniq -c | sort -rn | head -n 5 | sed 's/^/  /' || true
echo "total run time: $(($(date +%s) - T0)) s"
