#!/usr/bin/env bash
# bench/scale.sh — does tally stay fast as the queue grows? Two databases
# that differ only in size, measured in the same run, runs interleaved:
#   small: 10,000 queued tasks           (the ceiling: the same server, small queue)
#   big:   BIG queued tasks (10,000,000)
# and for each:
#   - claim+submit latency (bench/loadgen, 8 and 64 annotators): p50/p99, and
#     the ratio p99(big) / p99(small)          target: at most 2
#   - time from exec to the first 200 on GET /api/v1/openapi.json, polled
#     every 5 ms (bench/scale_ready.c)         target: under 200 ms on big
#   - VmRSS of the idle server, 1 s after it is ready and 1 s after the load
#                                              target: under 20 MB
# beside a hello-world h2o server (bench/hello_h2o) measured the same
# way: its exec-to-ready time, idle RSS and latency at the same concurrency.
# Then, on the big database only: a manager's dashboard while 8 annotators
# label (GET /api/v1/projects/{id}, whose counts read the whole queue, every
# DASH_EVERY s during a DASH_SECS-s claim+submit run): the GET's time, and the
# claim p99 and max beside the same run without the dashboard.
#
#   bench/scale.sh [BIG] [SECONDS] [REPS] [CONCURRENCIES]
#       defaults: 10000000 tasks, 1 s per run, 3 repetitions, "8 64"
#   REFIT_EVERY=N  (diagnosis) sets the project's quality.refit_every to N
#       (10-10000000; default: the server's, 500 answers): with 10000000 no
#       background refit runs during the load.
#
# Why 1-s runs: the small queue holds 10,000 tasks and claim+submit uses up
# 2,500-8,500 tasks/s here, so a longer run would empty it and measure a
# different queue (2-s runs did, at 64 annotators, once the loop got faster;
# the report flags a small run that ran dry). Each small run starts from a fresh copy of the 10,000-task
# database; the big one loses at most a few 10,000 of its 10,000,000 over all
# runs. p99 is the median over REPS runs (each run's p99 is printed too).
#
# How the big database is made: the first 10,000 tasks by `tally import` (the
# small database is a copy taken at that point), the rest by one SQL INSERT …
# SELECT FROM generate_series in the sqlite3 CLI, in the shape the CLI writes
# (project_id, unique_id NULL, priority 0, data {"text":"…"}, metadata NULL,
# status 0, counters 0, created_at now, is_gold 0, and any newer column such as
# slots with the value the CLI gave the first task); then the database is set
# back to WAL and synced so that the server's first open does not pay for
# flushing the bulk load. All tasks have priority 0 in both databases.
# About 25 s to build 10,000,000 rows (1.8 GB in $TMPDIR, default /tmp,
# checked with df first, deleted on exit). Whole run: about 3 minutes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BIG=${1:-10000000}
# half a second: at 10,000 cycles/s a 1-s run of 64 annotators would empty
# the small queue, whose p99 would then be of no queue at all
SECS=${2:-0.5}
REPS=${3:-3}
CONCS=${4:-8 64}
SMALL=10000
DASH_SECS=${DASH_SECS:-8}
DASH_EVERY=${DASH_EVERY:-2}
MAXC=0
for c in $CONCS; do [ "$c" -gt "$MAXC" ] && MAXC=$c; done
awk -v s="$SECS" 'BEGIN { exit !(s + 0 > 0 && s + 0 <= 600) }' || die "SECONDS: a number from 0 to 600, got \"$SECS\""
TMO=$(( ${SECS%.*} + 61 )) # a bound on one load run, whole seconds
[ "$BIG" -gt "$SMALL" ] && [ "$MAXC" -ge 1 ] && [ "$REPS" -ge 1 ] || die "usage: $0 [BIG>$SMALL] [SECONDS] [REPS] [CONCURRENCIES]"
command -v sqlite3 >/dev/null || die "the sqlite3 CLI is needed to build the big database"
[ -x "$BUILD/bench/scale_ready" ] || die "$BUILD/bench/scale_ready missing: run make -C $ROOT -j2 first"

# ~190 bytes a row with its indexes; want twice that free
NEED_MB=$((BIG / 1000 * 380 / 1000 + 100))
AVAIL_MB=$(df -Pm "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $4 }')
[ "$AVAIL_MB" -gt "$NEED_MB" ] || die "${TMPDIR:-/tmp} has $AVAIL_MB MB free, $NEED_MB MB wanted"

bench_setup
cp "$BUILD/bench/scale_ready" "$TMP/bin/"
READY=$TMP/bin/scale_ready
T0=$(date +%s)

say "setup: $MAXC annotators with keys, project, $SMALL tasks by tally import"
"$TALLY" init
ORG=$("$TALLY" org add bench)
annotators "$ORG" "$MAXC" bench.test
"$TALLY" user add --org "$ORG" --email "manager@bench.test" --role manager >/dev/null
MGR_KEY=$("$TALLY" key create --user "manager@bench.test" 2>/dev/null)
write_schema "$TMP/schema.json"
if [ -n "${REFIT_EVERY:-}" ]; then
	sed -i "s/\"lease_seconds\":600}/\"lease_seconds\":600,\"quality\":{\"refit_every\":$REFIT_EVERY}}/" "$TMP/schema.json"
	grep -q refit_every "$TMP/schema.json" || die "could not set refit_every"
fi
PRJ=$("$TALLY" project create --org "$ORG" --schema "$TMP/schema.json")
# gen_tasks' rows, all with priority 0
awk -v n="$SMALL" 'BEGIN {
	for (i = 1; i <= n; i++)
		printf "{\"data\":{\"text\":\"Review %d: the delivery was on time and the product felt fine; would I buy it again? Maybe.\"},\"unique_id\":\"t-%d\",\"priority\":0,\"metadata\":{\"batch\":%d,\"source\":\"bench\"}}\n", i, i, int(i / 10000)
}' >"$TMP/small.jsonl"
timeout 120 "$TALLY" import "$PRJ" "$TMP/small.jsonl" >/dev/null
rm -f "$TMP/small.jsonl"
sqlite3 "$TALLY_DB" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
PID_ROW=$(sqlite3 "$TALLY_DB" "SELECT max(id) FROM projects")
mv "$TALLY_DB" "$TMP/small.pristine"
rm -f "$TALLY_DB"-wal "$TALLY_DB"-shm
unset TALLY_DB
SMALL_DB=$TMP/small.db
BIG_DB=$TMP/big.db

say "setup: big database, $BIG tasks (bulk SQL for the $((BIG - SMALL)) after the first $SMALL)"
cp "$TMP/small.pristine" "$BIG_DB"
# columns the CLI fills beyond the list below (e.g. slots): copied from the
# first imported task, so the bulk rows look exactly like the CLI's
EXTRA_COLS= EXTRA_VALS=
for col in $(sqlite3 "$BIG_DB" "SELECT name FROM pragma_table_info('tasks') WHERE name NOT IN
	('id','project_id','unique_id','priority','data','metadata','status','n_responses','n_leases',
	 'created_at','is_gold','gold','consensus')"); do
	v=$(sqlite3 "$BIG_DB" "SELECT quote($col) FROM tasks ORDER BY id LIMIT 1")
	EXTRA_COLS="$EXTRA_COLS, $col" EXTRA_VALS="$EXTRA_VALS, $v"
done
[ -z "$EXTRA_COLS" ] || say "also copied from the CLI's first row:${EXTRA_COLS#,} =${EXTRA_VALS#,}"
tb=$(date +%s.%N)
timeout 300 sqlite3 "$BIG_DB" <<EOF >/dev/null
PRAGMA journal_mode=DELETE; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;
BEGIN;
INSERT INTO tasks(project_id, unique_id, priority, data, metadata, status, n_responses, n_leases,
                  created_at, is_gold, gold, consensus$EXTRA_COLS)
  SELECT $PID_ROW, NULL, 0,
         '{"text":"Review ' || value || ': the delivery was on time and the product felt fine; would I buy it again? Maybe."}',
         NULL, 0, 0, 0, $(date +%s%3N), 0, NULL, NULL$EXTRA_VALS
  FROM generate_series($((SMALL + 1)), $BIG);
-- rows written in SQL bypass tally's status counters: count them again
DELETE FROM project_counts;
INSERT INTO project_counts SELECT project_id, status, count(*) FROM tasks GROUP BY project_id, status;
COMMIT;
PRAGMA journal_mode=WAL;
EOF
sync -f "$BIG_DB"
BULK_S=$(awk -v a="$tb" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
NBIG=$(sqlite3 "$BIG_DB" "SELECT count(*) FROM tasks WHERE status = 0")
[ "$NBIG" = "$BIG" ] || die "big database has $NBIG queued tasks, not $BIG"
BIG_MB=$(du -cm "$BIG_DB"* | tail -n1 | cut -f1)
say "big database: $NBIG queued tasks, $BIG_MB MiB, bulk insert $BULK_S s"

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# start_ready LABEL DB CMD… — starts CMD through scale_ready (DB in TALLY_DB),
# polling 127.0.0.1:$PORT (set PORT=$(free_port) before, CMD uses it too);
# sets SERVE (scale_ready, stop it with bg_stop), SPID (the server), READY_MS
start_ready() {
	local label=$1 db=$2
	shift 2
	rm -f "$TMP/pid"
	TALLY_DB=$db bg_start "$TMP/ready.$label.log" "$READY" "$PORT" "$READY_PATH" "$TMP/pid" "$@"
	SERVE=$BG_PID
	for _ in $(seq 1 400); do
		grep -q '^RESULT' "$TMP/ready.$label.log" 2>/dev/null && break
		kill -0 "$SERVE" 2>/dev/null || break
		sleep 0.05
	done
	local r
	r=$(grep '^RESULT' "$TMP/ready.$label.log") || { cat "$TMP/ready.$label.log" >&2; die "$label did not start"; }
	READY_MS=$(field ready_ms "$r")
	SPID=$(field pid "$r")
}

# ---- ceilings: hello-world h2o, exec-to-ready, idle RSS, latency ------------
declare -A H_READY H_RSS H_P99 H_P50 RUN_P99 RUN_P50 RUN_SP99 RUN_CYC RUN_ERR RUN_LEFT READY_LIST
READY_PATH=/
for r in $(seq 1 "$REPS"); do
	PORT=$(free_port)
	start_ready hello "" "$HELLO" "$PORT"
	H_READY[$r]=$READY_MS
	sleep 1
	H_RSS[$r]=$(rss_kb "$SPID")
	if [ "$r" = 1 ]; then
		for c in $CONCS; do
			timeout "$TMO" "$LOADGEN" -p "$PORT" -c "$c" -d "$SECS" --get / >"$TMP/hello.$c" 2>&1
			res=$(grep '^RESULT' "$TMP/hello.$c")
			H_P50[$c]=$(field get_p50_ms "$res")
			H_P99[$c]=$(field get_p99_ms "$res")
		done
	fi
	bg_stop "$SERVE"
done

# ---- tally: ready time and idle RSS, then the load, small and big interleaved --
READY_PATH=/api/v1/openapi.json
RSS_IDLE_small= RSS_IDLE_big= RSS_AFTER_small= RSS_AFTER_big=
for r in $(seq 1 "$REPS"); do
	for c in $CONCS; do
		head -n "$c" "$TMP/keys" >"$TMP/keys.$c"
		for db in small big; do
			if [ "$db" = small ]; then
				rm -f "$SMALL_DB" "$SMALL_DB"-wal "$SMALL_DB"-shm
				cp "$TMP/small.pristine" "$SMALL_DB"
				path=$SMALL_DB
			else
				path=$BIG_DB
			fi
			PORT=$(free_port)
			start_ready "$db" "$path" "$TALLY" serve --listen "127.0.0.1:$PORT"
			READY_LIST[$db]="${READY_LIST[$db]:-} $READY_MS"
			sleep 1
			idle=$(rss_kb "$SPID")
			say "rep $r, $c annotators, $db: ready in $READY_MS ms, idle RSS $((idle / 1024)) MiB; load $SECS s"
			# a plain submit: each claim looks the next task up in the
			# queue (with "next" the submit would, and the claim only hand back)
			timeout "$TMO" "$LOADGEN" -p "$PORT" -c "$c" -d "$SECS" --claim "$PRJ" --keys "$TMP/keys.$c" \
				--answer "$PLAIN_ANSWER" >"$TMP/lg.$db.$c.$r" 2>&1 ||
				{ cat "$TMP/lg.$db.$c.$r" >&2; die "loadgen failed"; }
			sleep 1
			after=$(rss_kb "$SPID")
			bg_stop "$SERVE"
			res=$(grep '^RESULT' "$TMP/lg.$db.$c.$r")
			k="$db.$c"
			RUN_P99[$k]="${RUN_P99[$k]:-} $(field claim_p99_ms "$res")"
			RUN_P50[$k]="${RUN_P50[$k]:-} $(field claim_p50_ms "$res")"
			RUN_SP99[$k]="${RUN_SP99[$k]:-} $(field submit_p99_ms "$res")"
			RUN_CYC[$k]="${RUN_CYC[$k]:-} $(field cycles_s "$res")"
			RUN_ERR[$k]=$(( ${RUN_ERR[$k]:-0} + $(field errors "$res") ))
			if [ "$db" = small ]; then
				RUN_LEFT[$k]="${RUN_LEFT[$k]:-} $(sqlite3 "$SMALL_DB" "SELECT count(*) FROM tasks WHERE status = 0")"
			fi
			# the first idle figure, and the largest after-load figure
			eval "[ -n \"\$RSS_IDLE_$db\" ] || RSS_IDLE_$db=$idle"
			eval "[ \"\${RSS_AFTER_$db:-0}\" -ge $after ] || RSS_AFTER_$db=$after"
			grep -q '204 answers 0\b' "$TMP/lg.$db.$c.$r" || say "note: some annotators got 204 (queue empty) in $db run"
		done
	done
done
# ---- a manager's dashboard while annotators label, on the big database -----
head -n 8 "$TMP/keys" >"$TMP/keys.dash"
declare -A DASH
for mode in plain dash; do
	PORT=$(free_port)
	start_ready "dash.$mode" "$BIG_DB" "$TALLY" serve --listen "127.0.0.1:$PORT"
	: >"$TMP/dash.gets"
	if [ "$mode" = dash ]; then
		(
			for _ in $(seq 1 $((DASH_SECS / DASH_EVERY))); do
				sleep "$DASH_EVERY"
				curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 120 \
					-H "Authorization: Bearer $MGR_KEY" "http://127.0.0.1:$PORT/api/v1/projects/$PRJ" >>"$TMP/dash.gets"
			done
		) &
		POLL=$!
		BG_PIDS+=("$POLL")
	fi
	say "dashboard: 8 annotators, $DASH_SECS s, big database, $mode"
	timeout $((DASH_SECS + 120)) "$LOADGEN" -p "$PORT" -c 8 -d "$DASH_SECS" --claim "$PRJ" --keys "$TMP/keys.dash" \
		--answer "$PLAIN_ANSWER" >"$TMP/lg.dash.$mode" 2>&1 ||
		{ cat "$TMP/lg.dash.$mode" >&2; die "loadgen failed"; }
	[ "$mode" = dash ] && wait "$POLL"
	bg_stop "$SERVE"
	DASH[$mode]=$(grep '^RESULT' "$TMP/lg.dash.$mode")
done
GETS=$(awk '$1 == 200 { n++; s += $2; if ($2 > m) m = $2 } END { printf "%d answered 200, %.1f ms on average, %.1f ms at most", n, n ? 1000 * s / n : 0, 1000 * m }' "$TMP/dash.gets")
BIG_LEFT=$(sqlite3 "$BIG_DB" "SELECT count(*) FROM tasks WHERE status = 0")

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
maxof() { tr ' ' '\n' | grep -v '^$' | sort -g | tail -n1; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) print "n/a"; else printf "%.2f", a / b }'; }
pf() { awk -v v="$1" -v t="$2" 'BEGIN { print (v != "n/a" && v <= t) ? "PASS" : "FAIL" }'; }

echo
echo "tally scale benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(machine)"
echo "small: $SMALL queued tasks (fresh copy per run); big: $BIG queued tasks ($BIG_MB MiB, bulk insert $BULK_S s);" \
	"$REPS x $SECS s per concurrency; choice question, min=max=1${REFIT_EVERY:+, quality.refit_every=$REFIT_EVERY}; client bench/loadgen"
echo
printf '| %-46s | %-24s | %-32s | %-7s | %-4s |\n' "what" "figure (big, $BIG)" "ceiling: same, small ($SMALL)" "ratio" "target"
printf '|%s|%s|%s|%s|%s|\n' "------------------------------------------------" "--------------------------" "----------------------------------" "---------" "------"
for c in $CONCS; do
	b=big.$c s=small.$c
	bp99=$(median <<<"${RUN_P99[$b]}") sp99=$(median <<<"${RUN_P99[$s]}")
	bp50=$(median <<<"${RUN_P50[$b]}") sp50=$(median <<<"${RUN_P50[$s]}")
	rt=$(div "$bp99" "$sp99")
	printf '| %-46s | %-24s | %-32s | %-7s | %-4s |\n' "claim p99, $c annotators (median of $REPS)" "$bp99 ms" "$sp99 ms" "${rt}x" "$(pf "$rt" 2)"
	printf '| %-46s | %-24s | %-32s | %-7s | %-4s |\n' "claim p50, $c annotators" "$bp50 ms" "$sp50 ms" "$(div "$bp50" "$sp50")x" ""
	printf '| %-46s | %-24s | %-32s | %-7s | %-4s |\n' "claim+submit cycles/s, $c annotators (median)" "$(median <<<"${RUN_CYC[$b]}")/s" "$(median <<<"${RUN_CYC[$s]}")/s" "" ""
done
BR=$(median <<<"${READY_LIST[big]}") SR=$(median <<<"${READY_LIST[small]}")
HR=$(median <<<"${H_READY[*]}")
printf '| %-46s | %-24s | %-32s | %-7s | %-4s |\n' "exec -> first 200 of /api/v1/openapi.json" "$BR ms (max $(maxof <<<"${READY_LIST[big]}"))" "small: $SR ms; hello-world: $HR ms" "$(div "$BR" "$HR")x" "$(pf "$BR" 200)"
HRSS=$(median <<<"${H_RSS[*]}")
printf '| %-46s | %-24s | %-32s | %-7s | %-4s |\n' "idle RSS 1 s after ready" "$((RSS_IDLE_big / 1024)).$(((RSS_IDLE_big % 1024) * 10 / 1024)) MiB" "small: $((RSS_IDLE_small / 1024)) MiB; hello-world: $((HRSS / 1024)).$(((HRSS % 1024) * 10 / 1024)) MiB" "" "$(pf "$RSS_IDLE_big" 19531)"
printf '| %-46s | %-24s | %-32s | %-7s | %-4s |\n' "idle RSS 1 s after the load (largest)" "$((RSS_AFTER_big / 1024)) MiB" "small: $((RSS_AFTER_small / 1024)) MiB" "" "$(pf "$RSS_AFTER_big" 19531)"
printf '| %-46s | %-24s | %-32s | %-7s | %-4s |\n' "claim p99 / max, 8 annotators, dashboard polled" \
	"$(field claim_p99_ms "${DASH[dash]}") / $(field claim_max_ms "${DASH[dash]}") ms" \
	"no dashboard: $(field claim_p99_ms "${DASH[plain]}") / $(field claim_max_ms "${DASH[plain]}") ms" \
	"$(div "$(field claim_p99_ms "${DASH[dash]}")" "$(field claim_p99_ms "${DASH[plain]}")")x" ""
echo
echo "dashboard: GET /api/v1/projects/{id} every $DASH_EVERY s on the big database during a $DASH_SECS-s run: $GETS;" \
	"cycles/s $(field cycles_s "${DASH[dash]}") (without: $(field cycles_s "${DASH[plain]}"))"
echo
echo "per run (rep 1..$REPS), claim p99 ms / submit p99 ms / cycles/s / errors:"
for c in $CONCS; do
	for db in small big; do
		echo "  $db, $c annotators: claim p99 [${RUN_P99[$db.$c]# }] submit p99 [${RUN_SP99[$db.$c]# }] cycles/s [${RUN_CYC[$db.$c]# }] errors ${RUN_ERR[$db.$c]}"
	done
	echo "  small, $c annotators: queued tasks left after each run [${RUN_LEFT[small.$c]# }] of $SMALL" \
		"$(case " ${RUN_LEFT[small.$c]} " in *" 0 "*) echo "<-- RAN DRY: its p99 is of an emptied queue; use shorter runs";; esac)"
	echo "  hello-world, $c connections: p50 ${H_P50[$c]} ms, p99 ${H_P99[$c]} ms"
done
echo "ready ms per start: big [${READY_LIST[big]# }] small [${READY_LIST[small]# }] hello-world [${H_READY[*]}]"
echo "big database after all runs: $BIG_LEFT of $BIG tasks still queued"
echo "(20 MB target read as 20,000,000 bytes = 19,531 KiB)"
echo "total run time: $(($(date +%s) - T0)) s"
