#!/usr/bin/env bash
# bench/crash_test.sh — durability under kill -9: an acknowledged write survives
# a crash of the server, always.
#
#   bench/crash_test.sh [KILLS=100] [TASKS=20000]
#
# Sets a database up through the CLI (8 annotators with keys; project A with
# min_responses = max_responses = 3; project B with min 1, max 3 and
# quality.confidence_target 0.9, refit every 200 answers), starts
# `tally serve` on 127.0.0.1, runs the annotator load (bench/crashload: one
# connection per annotator and project, claim -> submit; every submit answered
# 201 is appended to an ack log at once) and, KILLS times, waits a random
# 50–500 ms and kills the server with SIGKILL, then restarts it on the same
# port. The clients live across the restarts (they retry with backoff). At the
# end the load stops, the server is stopped with SIGTERM (it must exit 0), and
# the database is checked with the sqlite3 CLI:
#   - PRAGMA integrity_check = ok;
#   - every acknowledged response is stored, with its task, assignment and user;
#   - every task handed out (a claim answered 200) has its lease stored, for
#     that task and annotator, and no annotator was handed one task under two
#     leases (half the annotators submit with "next", so their claims hand
#     back the lease that submit took, without a sync of their own);
#   - no task has more responses than max_responses, nor responses plus live
#     leases above it; no (task, user) pair twice;
#   - tasks.n_responses = the task's responses rows, tasks.n_leases = its live
#     assignments; each response's assignment is "submitted" and matches it;
#   - a task with max_responses responses is completed;
#   - annotator_stats.answered = the annotator's responses in the project;
#   - the project's status counters (project_counts) = its tasks by status;
#   - the server never answered 5xx and every 201 named the claimed task.
# Prints a summary; exits 1 on any violation (and keeps the temp dir). About
# 45 s with the defaults on a 2-core VM; the kill loop stops at CRASH_DEADLINE
# seconds (480) whatever KILLS is.
# BUILD=build/asan runs it against the ASan build; SERVER_BIN=path runs another
# tally binary with the tools of BUILD; KEEP=1 keeps the temp dir.
#
# CUT=power makes each kill a simulated power cut. The server runs under
# bench/preload/wlog.c (LD_PRELOAD), which logs every write, truncate and
# sync of the database, its WAL and their directory; after each SIGKILL,
# bench/powercut rebuilds the files from the image the previous cut left and
# that log, keeping only what a completed fsync/fdatasync covered — or, at
# random, that plus any part of the later writes (whole, torn to a number of
# 512-byte sectors, or lost), or everything — and the next server starts on
# that image. kill -9 alone cannot show this: the page cache survives it.
# The checks are the same: every acknowledged answer must be there.
#
# CUT=full fills the disk instead of killing: the server runs under
# bench/preload/diskfault.c, and each "kill" is a spell of a random 20–200 ms
# in which every write that would grow the database or its WAL fails with
# ENOSPC (one server all along). The batches that meet it are rolled back and
# answered 503 busy; the checks are the same, and the load must have been
# answered 503 at least once (the spells were felt), never any other 5xx.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KILLS=${1:-100}
TASKS=${2:-20000}
NANN=8
DEADLINE_S=${CRASH_DEADLINE:-480} # the kill loop stops here whatever KILLS is
[[ "$KILLS" =~ ^[0-9]+$ && "$TASKS" =~ ^[0-9]+$ && "$TASKS" -ge 1 ]] ||
	die "usage: $0 [KILLS] [TASKS]"
command -v sqlite3 >/dev/null || die "the sqlite3 CLI is needed for the checks (scripts/setup installs it)"
command -v curl >/dev/null || die "curl is needed"
CUT=${CUT:-kill}
[ "$CUT" = kill ] || [ "$CUT" = power ] || [ "$CUT" = full ] || die "CUT must be kill, power or full"
# SERVER_BIN: another tally binary to crash (the TSan one has no bench tools beside it)
NEED="bench/crashload"
[ -n "${SERVER_BIN:-}" ] || NEED="tally $NEED"
[ "$CUT" = power ] && NEED="$NEED bench/powercut bench/libwlog.so"
[ "$CUT" = full ] && NEED="$NEED bench/libdiskfault.so"
for b in $NEED; do
	[ -x "$BUILD/$b" ] || die "$BUILD/$b missing: run make -C $ROOT -j2 first"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tally-crash.XXXXXX")
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$TMP/bin"
cp "${SERVER_BIN:-$BUILD/tally}" "$TMP/bin/tally"
cp "$BUILD/bench/crashload" "$TMP/bin/"
[ "$CUT" = power ] && cp "$BUILD/bench/powercut" "$BUILD/bench/libwlog.so" "$TMP/bin/"
[ "$CUT" = full ] && cp "$BUILD/bench/libdiskfault.so" "$TMP/bin/"
TALLY=$TMP/bin/tally
CRASHLOAD=$TMP/bin/crashload
export TALLY_DB=$TMP/tally.db
T0=$(date +%s)
ms() { date +%s%3N; }

say "setup: database, $NANN annotators with keys, projects A (min=max=3) and B (min 1, max 3, confidence 0.9), $TASKS tasks each"
"$TALLY" init
ORG=$("$TALLY" org add crash)
annotators "$ORG" "$NANN" crash.test
cat >"$TMP/a.json" <<'EOF'
{"name":"crash-A","instructions":"Pick the feeling of the review.",
 "fields":[{"name":"text","type":"text"}],
 "questions":[{"name":"label","type":"choice","options":["positive","negative","neutral","mixed"]}],
 "min_responses":3,"max_responses":3,"lease_seconds":600}
EOF
cat >"$TMP/b.json" <<'EOF'
{"name":"crash-B","instructions":"Pick the feeling of the review.",
 "fields":[{"name":"text","type":"text"}],
 "questions":[{"name":"label","type":"choice","options":["positive","negative","neutral","mixed"]}],
 "min_responses":1,"max_responses":3,"lease_seconds":600,
 "quality":{"confidence_target":0.9,"refit_every":200}}
EOF
PRJ_A=$("$TALLY" project create --org "$ORG" --schema "$TMP/a.json")
PRJ_B=$("$TALLY" project create --org "$ORG" --schema "$TMP/b.json")
gen_tasks "$TASKS" "$TMP/tasks.jsonl"
timeout 300 "$TALLY" import "$PRJ_A" "$TMP/tasks.jsonl" >/dev/null
timeout 300 "$TALLY" import "$PRJ_B" "$TMP/tasks.jsonl" >/dev/null
rm -f "$TMP/tasks.jsonl"

PORT=$(free_port)
SERVE=
RESTART_MS=()
CUTS=()
# the disk as the last power cut left it (CUT=power): the files after setup
# the shims only wrap libc: ASan must not insist on its runtime coming first
[ "$CUT" = kill ] || export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
if [ "$CUT" = power ]; then
	mkdir -p "$TMP/image"
	rm -f "$TALLY_DB-shm"
	for f in "$TALLY_DB" "$TALLY_DB-wal"; do [ -e "$f" ] && cp "$f" "$TMP/image/"; done
fi

# power_cut — after a SIGKILL: the image becomes what a power cut at that
# moment could have left, and the database files are replaced by it
power_cut() {
	local mode r
	# in turn, so a short run has each: durable, torn, durable, torn, all
	case $((KILLED % 5)) in 1 | 3) mode=durable ;; 2 | 4) mode=torn ;; *) mode=all ;; esac
	r=$("$TMP/bin/powercut" "$TMP/image/tally.db" "$TMP/wlog.bin" "$mode" "$RANDOM" 2>>"$TMP/serve.log") ||
		die "powercut failed (see $TMP/serve.log)"
	CUTS+=("$mode")
	echo "powercut: $r" >>"$TMP/serve.log"
	rm -f "$TALLY_DB" "$TALLY_DB-wal" "$TALLY_DB-shm" "$TMP/wlog.bin"
	for f in tally.db tally.db-wal; do [ -e "$TMP/image/$f" ] && cp "$TMP/image/$f" "$TMP/$f"; done
	return 0
}

# start_server — tally serve on $PORT (log appended); waits until it answers
start_server() {
	local t0 try
	for try in 1 2 3; do
		t0=$(ms)
		if [ "$CUT" = power ]; then
			rm -f "$TMP/wlog.bin"
			LD_PRELOAD="$TMP/bin/libwlog.so" WLOG_DB="$TALLY_DB" WLOG_FILE="$TMP/wlog.bin" \
				"$TALLY" serve --listen "127.0.0.1:$PORT" >>"$TMP/serve.log" 2>&1 &
		elif [ "$CUT" = full ]; then
			LD_PRELOAD="$TMP/bin/libdiskfault.so" DISKFAULT_DB="$TALLY_DB" DISKFAULT_FULL="$TMP/full" \
				"$TALLY" serve --listen "127.0.0.1:$PORT" >>"$TMP/serve.log" 2>&1 &
		else
			"$TALLY" serve --listen "127.0.0.1:$PORT" >>"$TMP/serve.log" 2>&1 &
		fi
		SERVE=$!
		BG_PIDS+=("$SERVE")
		for _ in $(seq 1 1000); do # 20 s at most
			if ! kill -0 "$SERVE" 2>/dev/null; then
				break
			fi
			if curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/api/v1/openapi.json"; then
				RESTART_MS+=($(($(ms) - t0)))
				return 0
			fi
			sleep 0.01
		done
		forget "$SERVE"
		wait "$SERVE" 2>/dev/null || true
		echo "crash_test: tally serve did not come up (attempt $try)" >>"$TMP/serve.log"
		sleep 0.5
	done
	tail -n 20 "$TMP/serve.log" >&2
	die "tally serve did not start on 127.0.0.1:$PORT"
}

forget() { # drop a pid from the cleanup list
	local q keep=()
	for q in "${BG_PIDS[@]}"; do [ "$q" = "$1" ] || keep+=("$q"); done
	BG_PIDS=("${keep[@]}")
}

start_server

if [ "$CUT" = full ]; then
	say "load: crashload, $NANN annotators on each project; $KILLS full spells of 20–200 ms, 50–500 ms apart"
else
	say "load: crashload, $NANN annotators on each project; $KILLS kills at random moments (50–500 ms of life each)"
fi
: >"$TMP/acks.A"
: >"$TMP/acks.B"
"$CRASHLOAD" -p "$PORT" -c "$NANN" -d $((DEADLINE_S + 120)) --project "$PRJ_A" --keys "$TMP/keys" \
	--ack "$TMP/acks.A" --claims "$TMP/claims.A" >"$TMP/load.A" 2>"$TMP/load.A.err" &
LOAD_A=$!
BG_PIDS+=("$LOAD_A")
"$CRASHLOAD" -p "$PORT" -c "$NANN" -d $((DEADLINE_S + 120)) --project "$PRJ_B" --keys "$TMP/keys" \
	--ack "$TMP/acks.B" --claims "$TMP/claims.B" --labels positive,negative >"$TMP/load.B" 2>"$TMP/load.B.err" &
LOAD_B=$!
BG_PIDS+=("$LOAD_B")

acks_now() { cat "$TMP/acks.A" "$TMP/acks.B" | wc -l; }
KILLED=0
LIVES_WITH_ACKS=0
KILL_T0=$(date +%s)
prev=$(acks_now)
while [ "$KILLED" -lt "$KILLS" ]; do
	if [ $(($(date +%s) - KILL_T0)) -ge "$DEADLINE_S" ]; then
		echo "crash_test: deadline of $DEADLINE_S s reached after $KILLED kills" >&2
		break
	fi
	sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", (50 + r % 451) / 1000 }')"
	kill -0 "$LOAD_A" 2>/dev/null && kill -0 "$LOAD_B" 2>/dev/null || die "a load client died (see $TMP/load.*.err)"
	kill -0 "$SERVE" 2>/dev/null || { tail -n 20 "$TMP/serve.log" >&2; die "tally serve died on its own"; }
	KILLED=$((KILLED + 1))
	if [ "$CUT" = full ]; then # a full spell; the server lives on
		: >"$TMP/full"
		sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", (20 + r % 181) / 1000 }')"
		rm -f "$TMP/full"
	else
		kill -KILL "$SERVE"
		wait "$SERVE" 2>/dev/null || true
		forget "$SERVE"
		[ "$CUT" = power ] && power_cut
	fi
	now=$(acks_now)
	[ "$now" -gt "$prev" ] && LIVES_WITH_ACKS=$((LIVES_WITH_ACKS + 1))
	prev=$now
	[ $((KILLED % 10)) = 0 ] && say "$KILLED $([ "$CUT" = full ] && echo full spells || echo kills), $now acks so far"
	[ "$CUT" = full ] || start_server
done

sleep 1 # the last lifetime serves some load too
for p in "$LOAD_A" "$LOAD_B"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "$LOAD_A" "$LOAD_B"; do
	for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	forget "$p"
done
# the last server must stop cleanly on SIGTERM
kill -TERM "$SERVE"
STOP_RC=
for _ in $(seq 1 100); do kill -0 "$SERVE" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SERVE" 2>/dev/null; then
	kill -KILL "$SERVE"
	STOP_RC=timeout
fi
wait "$SERVE" && STOP_RC=${STOP_RC:-0} || STOP_RC=${STOP_RC:-$?}
forget "$SERVE"
LOAD_END=$(date +%s)

# ---- checks ----------------------------------------------------------------------
VIOL=0
violation() { echo "VIOLATION: $*"; VIOL=$((VIOL + 1)); }
q() { sqlite3 -batch -noheader "$TALLY_DB" "$@"; }

RA=$(grep '^RESULT' "$TMP/load.A" || true)
RB=$(grep '^RESULT' "$TMP/load.B" || true)
[ -n "$RA" ] && [ -n "$RB" ] || violation "a load client printed no RESULT line: $(cat "$TMP"/load.*.err)"
sum() { local a b; a=$(field "$1" "$RA"); b=$(field "$1" "$RB"); echo $((${a:-0} + ${b:-0})); }

[ "$STOP_RC" = 0 ] || violation "the last tally serve did not exit 0 on SIGTERM (got $STOP_RC)"
IC=$(q "PRAGMA integrity_check" 2>&1)
[ "$IC" = ok ] || violation "PRAGMA integrity_check: $IC"
[ "$(sum http_5xx)" = 0 ] || violation "the server answered 5xx $(sum http_5xx) times: $(cat "$TMP"/load.*.err)"
if [ "$CUT" = full ]; then
	[ "$(sum http_503)" -gt 0 ] || violation "no request was answered 503 busy: the full spells were not felt"
else
	[ "$(sum http_503)" = 0 ] || violation "the server answered 503 busy $(sum http_503) times (a full disk?)"
fi
[ "$(sum mismatch)" = 0 ] || violation "$(sum mismatch) submits answered with another task than the claimed one"
[ "$(sum parse_err)" = 0 ] || violation "$(sum parse_err) unparsable answers"

# acks as row numbers, into a temp table (the tally tables are only read)
for p in A B; do
	"$CRASHLOAD" --decode "$TALLY_DB" <"$TMP/acks.$p" >"$TMP/acks.$p.rows" ||
		violation "project $p: ack lines that do not parse"
done
# every task handed out (claims answered 200), the same way
for p in A B; do
	"$CRASHLOAD" --decode-claims "$TALLY_DB" <"$TMP/claims.$p" >"$TMP/claims.$p.rows" ||
		violation "project $p: claim lines that do not parse"
done
{
	echo "CREATE TEMP TABLE acks(prj TEXT, asg INTEGER, rsp INTEGER, tsk INTEGER, k INTEGER);"
	echo "CREATE TEMP TABLE claims(prj TEXT, asg INTEGER, tsk INTEGER, k INTEGER);"
	echo "BEGIN;"
	for p in A B; do
		awk -v p="$p" '{ printf "INSERT INTO acks VALUES(\x27%s\x27,%d,%d,%d,%d);\n", p, $1, $2, $3, $4 }' "$TMP/acks.$p.rows"
		awk -v p="$p" '{ printf "INSERT INTO claims VALUES(\x27%s\x27,%d,%d,%d);\n", p, $1, $2, $3 }' "$TMP/claims.$p.rows"
	done
	echo "COMMIT;"
} >"$TMP/acks.sql"

# check NAME SQL — SQL prints one count (0 = fine), run after the acks are loaded
check() {
	local n
	n=$( (cat "$TMP/acks.sql"; echo "$2") | sqlite3 -batch -noheader "$TALLY_DB" 2>&1)
	if [ "$n" != 0 ]; then
		violation "$1: $n"
		(cat "$TMP/acks.sql"; echo "${3:-}") | sqlite3 -batch -header "$TALLY_DB" 2>&1 | head -n 12 | sed 's/^/    /'
	fi
}

declare -A STATS
for p in A B; do
	P=$(q "SELECT id FROM projects WHERE name='crash-$p'")
	MAX=$(q "SELECT json_extract(schema,'\$.max_responses') FROM projects WHERE id=$P")
	MIN=$(q "SELECT json_extract(schema,'\$.min_responses') FROM projects WHERE id=$P")
	T="tasks WHERE project_id=$P"
	check "project $p: acknowledged responses missing or stored with another task, assignment or user" \
		"SELECT count(*) FROM acks a LEFT JOIN responses r ON r.id=a.rsp
		  LEFT JOIN users u ON u.id=r.user_id
		  WHERE a.prj='$p' AND (r.id IS NULL OR r.task_id!=a.tsk OR r.assignment_id!=a.asg
		        OR u.email IS NOT ('a'||(a.k+1)||'@crash.test'))" \
		"SELECT a.*, r.id AS stored_rsp, r.task_id, r.assignment_id, u.email FROM acks a
		  LEFT JOIN responses r ON r.id=a.rsp LEFT JOIN users u ON u.id=r.user_id
		  WHERE a.prj='$p' AND (r.id IS NULL OR r.task_id!=a.tsk OR r.assignment_id!=a.asg
		        OR u.email IS NOT ('a'||(a.k+1)||'@crash.test')) LIMIT 10"
	check "project $p: acks that do not decode or name one response twice" \
		"SELECT (SELECT count(*) FROM acks WHERE prj='$p' AND (asg=0 OR rsp=0 OR tsk=0))
		      + (SELECT count(*) - count(DISTINCT rsp) FROM acks WHERE prj='$p')"
	# a claim's answer is a promise too: the lease it handed out is on disk
	# (a claim that handed back a held lease went out before any sync of its own)
	check "project $p: tasks handed out whose lease is missing, or of another task or annotator" \
		"SELECT count(*) FROM claims c LEFT JOIN assignments a ON a.id=c.asg
		  LEFT JOIN users u ON u.id=a.user_id
		  WHERE c.prj='$p' AND (a.id IS NULL OR a.task_id!=c.tsk OR a.project_id!=$P
		        OR u.email IS NOT ('a'||(c.k+1)||'@crash.test'))" \
		"SELECT c.*, a.id AS stored_asg, a.task_id, a.user_id, u.email FROM claims c
		  LEFT JOIN assignments a ON a.id=c.asg LEFT JOIN users u ON u.id=a.user_id
		  WHERE c.prj='$p' AND (a.id IS NULL OR a.task_id!=c.tsk OR a.project_id!=$P
		        OR u.email IS NOT ('a'||(c.k+1)||'@crash.test')) LIMIT 10"
	check "project $p: claims that do not decode, or one task handed to one annotator under two leases" \
		"SELECT (SELECT count(*) FROM claims WHERE prj='$p' AND (asg=0 OR tsk=0))
		      + (SELECT count(*) FROM (SELECT tsk, k FROM claims WHERE prj='$p'
		         GROUP BY tsk, k HAVING count(DISTINCT asg) > 1))" \
		"SELECT tsk, k, group_concat(DISTINCT asg) FROM claims WHERE prj='$p'
		  GROUP BY tsk, k HAVING count(DISTINCT asg) > 1 LIMIT 10"
	check "project $p: tasks with more than max_responses ($MAX) responses" \
		"SELECT count(*) FROM (SELECT r.task_id FROM responses r JOIN tasks t ON t.id=r.task_id
		  WHERE t.project_id=$P GROUP BY r.task_id HAVING count(*) > $MAX)" \
		"SELECT r.task_id, count(*) FROM responses r JOIN tasks t ON t.id=r.task_id
		  WHERE t.project_id=$P GROUP BY r.task_id HAVING count(*) > $MAX LIMIT 10"
	check "project $p: (task, user) pairs answered twice" \
		"SELECT count(*) FROM (SELECT r.task_id, r.user_id FROM responses r JOIN tasks t ON t.id=r.task_id
		  WHERE t.project_id=$P GROUP BY 1, 2 HAVING count(*) > 1)" \
		"SELECT r.task_id, r.user_id, count(*) FROM responses r JOIN tasks t ON t.id=r.task_id
		  WHERE t.project_id=$P GROUP BY 1, 2 HAVING count(*) > 1 LIMIT 10"
	check "project $p: status counts (project_counts) that differ from the tasks' statuses" \
		"SELECT count(*) FROM (SELECT status, count(*) AS n FROM $T GROUP BY status) g
		  FULL JOIN (SELECT status, n FROM project_counts WHERE project_id=$P AND n != 0) c
		  ON c.status = g.status WHERE c.n IS NOT g.n" \
		"SELECT status, count(*) AS rows, (SELECT n FROM project_counts c WHERE c.project_id=$P
		  AND c.status=tasks.status) AS counted FROM $T GROUP BY status"
	check "project $p: tasks whose n_responses differs from their responses rows" \
		"SELECT count(*) FROM $T AND n_responses != (SELECT count(*) FROM responses r WHERE r.task_id=tasks.id)" \
		"SELECT id, n_responses, (SELECT count(*) FROM responses r WHERE r.task_id=tasks.id) AS rows
		  FROM $T AND n_responses != (SELECT count(*) FROM responses r WHERE r.task_id=tasks.id) LIMIT 10"
	check "project $p: tasks whose n_leases differs from their live assignments" \
		"SELECT count(*) FROM $T AND n_leases != (SELECT count(*) FROM assignments a WHERE a.task_id=tasks.id AND a.status=0)" \
		"SELECT id, n_leases, (SELECT count(*) FROM assignments a WHERE a.task_id=tasks.id AND a.status=0) AS live
		  FROM $T AND n_leases != (SELECT count(*) FROM assignments a WHERE a.task_id=tasks.id AND a.status=0) LIMIT 10"
	check "project $p: tasks with responses + live leases above max_responses" \
		"SELECT count(*) FROM $T AND n_responses + n_leases > $MAX"
	check "project $p: responses whose assignment is missing, not submitted, or of another task/user" \
		"SELECT count(*) FROM responses r JOIN tasks t ON t.id=r.task_id LEFT JOIN assignments a ON a.id=r.assignment_id
		  WHERE t.project_id=$P AND (a.id IS NULL OR a.status!=1 OR a.task_id!=r.task_id OR a.user_id!=r.user_id)"
	check "project $p: submitted assignments without a response" \
		"SELECT count(*) FROM assignments a WHERE a.project_id=$P AND a.status=1
		  AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.assignment_id=a.id)"
	check "project $p: tasks with max_responses responses not completed, or completed below min_responses" \
		"SELECT count(*) FROM $T AND ((n_responses >= $MAX AND status != 2) OR (status = 2 AND n_responses < $MIN))"
	check "project $p: annotator_stats.answered differs from the annotator's responses" \
		"SELECT count(*) FROM (SELECT r.user_id, count(*) AS n FROM responses r JOIN tasks t ON t.id=r.task_id
		  WHERE t.project_id=$P GROUP BY r.user_id) c
		  LEFT JOIN annotator_stats s ON s.project_id=$P AND s.user_id=c.user_id
		  WHERE s.answered IS NOT c.n"
	STATS[$p]=$(q "SELECT (SELECT count(*) FROM responses r JOIN tasks t ON t.id=r.task_id WHERE t.project_id=$P)
		|| ' responses stored, tasks by responses: ' ||
		(SELECT group_concat(n || ':' || c, ' ') FROM (SELECT n_responses AS n, count(*) AS c FROM $T GROUP BY 1))
		|| '; completed ' || (SELECT count(*) FROM $T AND status=2)")
done

ACKS_A=$(wc -l <"$TMP/acks.A")
ACKS_B=$(wc -l <"$TMP/acks.B")
R=$(printf '%s\n' "${RESTART_MS[@]}" | sort -n)
echo
echo "tally crash test — $(date -u +%Y-%m-%dT%H:%MZ), $(machine)"
if [ "$CUT" = full ]; then
	echo "full spells (20–200 ms each, 50–500 ms apart, one server): $KILLED of $KILLS asked; gaps in which acks grew: $LIVES_WITH_ACKS; answered 503 busy: $(sum http_503)"
else
	echo "kills (SIGKILL at a random 50–500 ms of each server life): $KILLED of $KILLS asked; lives in which acks grew: $LIVES_WITH_ACKS"
fi
if [ "$CUT" = power ]; then
	echo "each kill a power cut: $(printf '%s\n' "${CUTS[@]}" | sort | uniq -c | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }')" \
		"(durable: only what a completed sync covered; torn: and parts of the rest; all: every write)"
	echo "late writes that reached the disk at the cuts: $(grep -o 'applied_late=[0-9]*' "$TMP/serve.log" | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }'), torn: $(grep -o 'torn=[0-9]*' "$TMP/serve.log" | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }')"
fi
echo "server restarts: $((${#RESTART_MS[@]})) starts, time to first answer p50 $(sed -n "$(((${#RESTART_MS[@]} + 1) / 2))p" <<<"$R") ms, max $(tail -n1 <<<"$R") ms"
echo "project A (min=max=3):           $ACKS_A acks; ${STATS[A]}"
echo "project B (min 1, max 3, conf 0.9): $ACKS_B acks; ${STATS[B]}"
echo "client: $(sum claims) claims (+$(sum claims_204) answered 204), $(sum submits_sent) submits sent," \
	"$(sum indoubt) in doubt at a kill (resent: $(sum indoubt_acked) acked then, $(sum indoubt_committed) found already committed)," \
	"$(sum conflicts) 409, $(sum http_4xx) other 4xx, $(sum http_5xx) 5xx, $(sum broken) broken + $(sum conn_fail) refused connections"
echo "last server stopped by SIGTERM: exit $STOP_RC"
echo "PRAGMA integrity_check: $IC"
echo "load ran $((LOAD_END - KILL_T0)) s; total run time $(($(date +%s) - T0)) s"
if [ "$VIOL" -eq 0 ]; then
	echo "RESULT kills=$KILLED cut=$CUT acks=$((ACKS_A + ACKS_B)) violations=0"
	exit 0
fi
echo "RESULT kills=$KILLED cut=$CUT acks=$((ACKS_A + ACKS_B)) violations=$VIOL"
KEEP=1 # keep the evidence
exit 1
