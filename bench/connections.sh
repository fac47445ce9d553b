#!/usr/bin/env bash
# bench/connections.sh — 1,000 concurrent keep-alive connections on one
# `tally serve` for 60 s, each its own annotator (own user, own API key)
# looping claim -> submit (bench/loadgen), beside the hello-world h2o server
# (bench/hello_h2o, one thread, same limits) driven by the same client at
# the same connection count for the same time.
#
#   bench/connections.sh [CONNS] [SECONDS] [TASKS] [RATE]
#       defaults: 1000 connections, 60 s, 2000000 tasks, 10 requests/s per
#       connection. Each run has its own project: the flat-out run gets TASKS
#       (1,000 annotators labelled 800,000 in 43 s on a fast host), the paced
#       one 1.5 times what its rate can label (CONNS x RATE / 2 x SECONDS).
#       A run that empties its project is flagged, as its claims then answer
#       204 at no cost.
#
# Two runs each: paced (every connection RATE requests/s, latency from when
# each request was due, so queueing is not hidden) and flat out (every
# connection sends again the moment its answer is back: a throughput test,
# where latency is about CONNS / throughput for any server).
#
# Target (issue): zero errors, p99 under 50 ms. Raises the soft open-file
# limit of this script (and so of the servers it starts) to CONNS + 1024 when
# the hard limit allows; prints the limit the server actually ran with, from
# /proc/PID/limits. Loopback only; every process stopped on exit. About 5
# minutes with the defaults (most of it the four 60-s runs and creating 1000
# users and keys through the CLI).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CONNS=${1:-1000}
SECS=${2:-60}
TASKS=${3:-2000000}
RATE=${4:-10}
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
annotators "$ORG" "$CONNS" bench.test
[ "$(wc -l <"$TMP/keys")" = "$CONNS" ] || die "made $(wc -l <"$TMP/keys") keys for $CONNS annotators"
write_schema "$TMP/schema.json"
gen_tasks "$TASKS" "$TMP/tasks.jsonl"
declare -A PRJ NTASKS
NTASKS[flat]=$TASKS
NTASKS[paced]=$((CONNS * RATE * SECS * 3 / 4 + CONNS))
[ "${NTASKS[paced]}" -le "$TASKS" ] || NTASKS[paced]=$TASKS
for tag in paced flat; do
	PRJ[$tag]=$("$TALLY" project create --org "$ORG" --schema "$TMP/schema.json")
	head -n "${NTASKS[$tag]}" "$TMP/tasks.jsonl" | timeout 300 "$TALLY" import "${PRJ[$tag]}" - --format jsonl >/dev/null
done
rm -f "$TMP/tasks.jsonl"
say "setup done in $(($(date +%s) - T0)) s"

# one run of tally: RATE 0 = each connection as fast as answers come back
# (saturation: latency is then queueing, about CONNS / throughput), else
# RATE requests/s per connection (paced, latency from when each was due)
run_tally() { # TAG RATE
	local tag=$1 rate=$2 rc=0 t0 t1
	serve_start "$TMP/serve.$tag.log"
	say "claim+submit: $CONNS connections, $SECS s, rate ${rate}/s per connection (0 = flat out) (tally serve on 127.0.0.1:$PORT)"
	NOFILE=$(awk '/^Max open files/ { print $4 }' "/proc/$SERVE/limits")
	t0=$(cpu_ticks "$SERVE")
	timeout $((SECS + 90)) "$LOADGEN" -p "$PORT" -c "$CONNS" -d "$SECS" --rate "$rate" --claim "${PRJ[$tag]}" --keys "$TMP/keys" \
		--answer "$ANSWER" >"$TMP/lg.$tag" 2>&1 || rc=$?
	t1=$(cpu_ticks "$SERVE")
	NFD=$(ls "/proc/$SERVE/fd" 2>/dev/null | wc -l)
	RSS=$(awk '/^VmHWM/ { print $2 }' "/proc/$SERVE/status")
	ALIVE=yes
	kill -0 "$SERVE" 2>/dev/null || ALIVE="NO (the server died)"
	bg_stop "$SERVE"
	cat "$TMP/lg.$tag" >&2
	[ "$rc" = 0 ] || die "loadgen failed (exit $rc)"
	CPU=$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v s="$(field secs "$(grep '^RESULT' "$TMP/lg.$tag")")" 'BEGIN { printf "%.0f%%", 100 * t / hz / s }')
}

run_hello() { # TAG RATE
	local tag=$1 rate=$2
	PORT=$(free_port)
	say "ceiling: hello_h2o, $CONNS connections, $SECS s, rate ${rate}/s per connection (127.0.0.1:$PORT)"
	bg_start "$TMP/hello.log" "$HELLO" "$PORT"
	HELLOPID=$BG_PID
	wait_http "$HELLOPID" "$PORT" / || die "hello_h2o did not start"
	timeout $((SECS + 90)) "$LOADGEN" -p "$PORT" -c "$CONNS" -d "$SECS" --rate "$rate" --get / >"$TMP/lg.$tag" 2>&1 || die "loadgen (hello) failed"
	bg_stop "$HELLOPID"
	cat "$TMP/lg.$tag" >&2
}

run_tally paced "$RATE"
CPU_P=$CPU
run_tally flat 0
NRESP=$(sqlite3 "$TALLY_DB" "SELECT count(*) FROM responses" 2>/dev/null || echo "?")

NOVER=$(sqlite3 "$TALLY_DB" "SELECT count(*) FROM (SELECT task_id FROM responses GROUP BY task_id HAVING count(*) > 1)" 2>/dev/null || echo "?")
run_hello hpaced "$RATE"
run_hello hflat 0
SERVER_ERRS=$(cat "$TMP"/serve.*.log | grep -ciE 'error|too many|cannot|fail' || true)

pf() { awk -v v="$1" -v t="$2" 'BEGIN { print (v < t) ? "PASS" : "FAIL" }'; }
echo
echo "tally $CONNS connections — $(date -u +%Y-%m-%dT%H:%MZ), $(machine)"
echo "$CONNS keep-alive connections, one annotator (own key) each, claim -> submit for $SECS s per run; ${NTASKS[paced]} and ${NTASKS[flat]} tasks (paced, flat), min=max=1; client bench/loadgen (1 thread)"
echo "paced: each connection sends $RATE requests/s ($((CONNS * RATE)) req/s offered in all), latency counted from when each request was due;"
echo "flat out: each connection sends its next request as soon as the answer is back (a throughput test: latency is queueing)"
echo
printf '| %-9s | %-14s | %-9s | %-24s | %-24s | %-12s | %-30s | %-6s |\n' "load" "req/s" "errors" "claim p50 / p99 ms" "submit p50 / p99 ms" "server CPU" "hello-world: req/s, p50 / p99" "target"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' "-----------" "----------------" "-----------" "--------------------------" "--------------------------" "--------------" "--------------------------------" "--------"
for tag in paced flat; do
	R=$(grep '^RESULT' "$TMP/lg.$tag") H=$(grep '^RESULT' "$TMP/lg.h$tag")
	worst=$(awk -v a="$(field claim_p99_ms "$R")" -v b="$(field submit_p99_ms "$R")" 'BEGIN { print (a > b ? a : b) }')
	cpu=$CPU; [ "$tag" = paced ] && cpu=$CPU_P
	# the target is the paced run's: flat out, any server's latency is about
	# CONNS / throughput (Little's law), so p99 < 50 ms there would be a
	# throughput target in disguise; its p99 is shown, and its verdict is not one
	verdict="$(pf "$worst" 50)"
	[ "$(field errors "$R")" = 0 ] || verdict=FAIL
	[ "$tag" = paced ] || verdict="— ($worst)"
	printf '| %-9s | %-14s | %-9s | %-24s | %-24s | %-12s | %-30s | %-6s |\n' "$tag" "$(field req_s "$R")" "$(field errors "$R")" \
		"$(field claim_p50_ms "$R") / $(field claim_p99_ms "$R")" "$(field submit_p50_ms "$R") / $(field submit_p99_ms "$R")" "$cpu" \
		"$(field req_s "$H"), $(field get_p50_ms "$H") / $(field get_p99_ms "$H")" "$verdict"
done
echo
for tag in paced flat; do
	R=$(grep '^RESULT' "$TMP/lg.$tag")
	echo "$tag run: $(field cycles "$R") tasks labelled in $(field secs "$R") s of its own project's ${NTASKS[$tag]}" \
		"$([ "$(field done "$R")" = 0 ] || echo "  <-- RAN DRY: $(field done "$R") annotators got 204; raise TASKS")"
done
# little RESULT-FILE — the mean latency (ms) Little's law gives a flat-out run: CONNS / req/s
little() { awk -v c="$CONNS" -v r="$(field req_s "$(grep '^RESULT' "$1")")" 'BEGIN { printf "%.1f", (r > 0 ? 1000 * c / r : 0) }'; }
echo "target (issue): zero errors and p99 under 50 ms with $CONNS connections, read on the paced run; flat out, mean latency is $CONNS / throughput for any server:" \
	"tally $(little "$TMP/lg.flat") ms, hello-world $(little "$TMP/lg.hflat") ms"
echo "responses stored in all: $NRESP; tasks with more than one response: $NOVER"
echo "server: peak RSS $((RSS / 1024)) MiB, $NFD fds open at the end of the load, open-file limit $NOFILE, alive after the load: $ALIVE"
echo "server log lines that look like errors: $SERVER_ERRS"
cat "$TMP"/serve.*.log | grep -iE 'error|too many|cannot|fail' | sort | uniq -c | sort -rn | head -n 5 | sed 's/^/  /' || true
echo "total run time: $(($(date +%s) - T0)) s"
