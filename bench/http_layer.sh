#!/usr/bin/env bash
# bench/http_layer.sh — what tally's HTTP library costs the annotator loop.
# The same loop (claim + submit, 64 annotators, durable) is served twice:
#   - by tally serve (libevent evhttp);
#   - by bench/loop_h2o (libh2o-evloop), which is tally serve's executor,
#     library calls and group commit (src/http/batch.c) under another HTTP
#     library, with only the loop's two routes;
# each beside the hello-world of its own library (bench/hello_evhttp,
# bench/hello_h2o), all driven by the same client, in alternating rounds
# (the host's speed drifts: each round has all four, and each loop run
# starts from a copy of the same database).
#
#   bench/http_layer.sh [TASKS] [SECONDS] [ROUNDS]
#       defaults: 200000 tasks, 10 s per run, 3 rounds (about 3 minutes)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

TASKS=${1:-200000}
SECS=${2:-10}
ROUNDS=${3:-3}
C=64
[ "$TASKS" -ge 1 ] && [ "$ROUNDS" -ge 1 ] || die "usage: $0 [TASKS] [SECONDS] [ROUNDS]"
for b in bench/loop_h2o bench/hello_h2o; do
	[ -x "$BUILD/$b" ] || die "$BUILD/$b missing: run make -C $ROOT -j2 first"
done

bench_setup
cp "$BUILD"/bench/{loop_h2o,hello_h2o} "$TMP/bin/"
T0=$(date +%s)
say "setup: database, $C annotators with keys, project, $TASKS tasks"
loop_setup "$TASKS" "$C"
cp "$TALLY_DB" "$TMP/pristine.db"
ANSWER='{"answers":{"label":"positive"},"duration_ms":1200}'

# hello LIB CMD… — one hello-world run; its RESULT line in $TMP/r
hello() {
	local lib=$1 port
	shift
	port=$(free_port)
	bg_start "$TMP/$lib.hello.log" "$@" "$port"
	local pid=$BG_PID
	wait_http "$pid" "$port" / || die "hello-world on $lib did not start"
	say "hello-world, $lib: $C connections, $SECS s"
	timeout $((SECS + 60)) "$LOADGEN" -p "$port" -c "$C" -d "$SECS" --get / >"$TMP/r" 2>&1
	bg_stop "$pid"
	grep '^RESULT' "$TMP/r"
}

# loop LIB — one annotator-loop run on a fresh copy of the database; prints
# its RESULT line and "CPU <threads µs per cycle>"
loop() {
	local lib=$1 port pid t0 t1
	cp "$TMP/pristine.db" "$TALLY_DB"
	rm -f "$TALLY_DB-wal" "$TALLY_DB-shm"
	port=$(free_port)
	if [ "$lib" = evhttp ]; then
		bg_start "$TMP/$lib.loop.log" "$TALLY" serve --listen "127.0.0.1:$port"
	else
		bg_start "$TMP/$lib.loop.log" "$TMP/bin/loop_h2o" "$TALLY_DB" "$port"
	fi
	pid=$BG_PID
	wait_http "$pid" "$port" /api/v1/openapi.json || { cat "$TMP/$lib.loop.log" >&2; die "$lib loop server did not start"; }
	say "claim+submit, $lib: $C annotators, $SECS s"
	thread_ticks "$pid" >"$TMP/thr0"
	timeout $((SECS + 60)) "$LOADGEN" -p "$port" -c "$C" -d "$SECS" --claim "$PRJ" \
		--keys "$TMP/keys" --answer "$ANSWER" >"$TMP/r" 2>&1
	thread_ticks "$pid" >"$TMP/thr1"
	bg_stop "$pid"
	grep '^RESULT' "$TMP/r"
	t0=$(field cycles "$(grep '^RESULT' "$TMP/r")")
	[ "${t0:-0}" -gt 0 ] && echo "CPU $(per_cycle "$TMP/thr0" "$TMP/thr1" "$t0")"
	t1=$(sqlite3 "$TALLY_DB" "SELECT count(*) FROM responses" 2>/dev/null || echo "?")
	echo "STORED $t1"
}

declare -A HQ LQ LC CPU
for r in $(seq 1 "$ROUNDS"); do
	# the order turns each round, so neither library always runs first
	if [ $((r % 2)) = 1 ]; then order="evhttp h2o"; else order="h2o evhttp"; fi
	for lib in $order; do
		# not in $(…): the servers they start must stay in this shell's
		# BG_PIDS, for the EXIT trap
		if [ "$lib" = evhttp ]; then
			hello evhttp "$HELLO" >"$TMP/h.out"
		else
			hello h2o "$TMP/bin/hello_h2o" >"$TMP/h.out"
		fi
		loop "$lib" >"$TMP/l.out"
		h=$(cat "$TMP/h.out") l=$(cat "$TMP/l.out")
		res=$(grep '^RESULT' <<<"$l")
		HQ[$lib.$r]=$(field req_s "$h")
		LQ[$lib.$r]=$(field req_s "$res")
		LC[$lib.$r]=$(field cycles_s "$res")
		CPU[$lib.$r]=$(sed -n 's/^CPU //p' <<<"$l")
		stored=$(sed -n 's/^STORED //p' <<<"$l")
		acked=$(field cycles "$res")
		[ "$(field errors "$res")" = 0 ] || die "$lib loop: errors in $res"
		[ "$stored" -ge "$acked" ] || die "$lib loop: $acked submits acknowledged, $stored stored"
	done
done

echo
echo "HTTP layer of the annotator loop — $(date -u +%Y-%m-%dT%H:%MZ), $(machine)"
echo "$TASKS tasks, $C annotators, $SECS s per run, $ROUNDS rounds; client: bench/loadgen"
echo
printf '| %-5s | %-7s | %-16s | %-13s | %-16s | %-22s | %s\n' round library "loop cycles/s" "loop req/s" "hello req/s" "loop / hello (req/s)" "server CPU per cycle, µs by thread"
printf '|%s|%s|%s|%s|%s|%s|%s\n' ------- --------- ------------------ --------------- ------------------ ------------------------ ----------
for r in $(seq 1 "$ROUNDS"); do
	for lib in evhttp h2o; do
		printf '| %-5s | %-7s | %-16s | %-13s | %-16s | %-22s | %s\n' "$r" "$lib" "${LC[$lib.$r]}" "${LQ[$lib.$r]}" \
			"${HQ[$lib.$r]}" "$(ratio "${LQ[$lib.$r]}" "${HQ[$lib.$r]}")" "${CPU[$lib.$r]}"
	done
done
for lib in evhttp h2o; do
	lc=0 hq=0 lq=0
	for r in $(seq 1 "$ROUNDS"); do
		lc=$((lc + LC[$lib.$r])) hq=$((hq + HQ[$lib.$r])) lq=$((lq + LQ[$lib.$r]))
	done
	echo "mean, $lib: $((lc / ROUNDS)) cycles/s, hello-world $((hq / ROUNDS)) req/s, loop/hello $(ratio "$lq" "$hq")"
done
echo "every loop run: 0 errors, every acknowledged submit stored"
echo "total run time: $(($(date +%s) - T0)) s"
