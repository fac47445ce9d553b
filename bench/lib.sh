# bench/lib.sh — helpers shared by the benchmark scripts (sourced, not run).
# Every process a script starts goes through bg_start so the EXIT trap can
# stop it; everything lives in one temp directory that the trap removes
# (KEEP=1 keeps it for a post-mortem).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
BG_PIDS=()
# The annotator's submit in the loop benches. By default with "next": true, as
# a labeling front end sends it (the claim after it hands back the lease the
# submit took, see docs/API.md); NEXT=0 measures the loop without it.
PLAIN_ANSWER='{"answers":{"label":"positive"},"duration_ms":1200}'
if [ "${NEXT:-1}" = 0 ]; then
	ANSWER=$PLAIN_ANSWER
else
	ANSWER='{"answers":{"label":"positive"},"duration_ms":1200,"next":true}'
fi
TMP=

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

bench_setup() {
	local b
	for b in tally bench/loadgen bench/hello_h2o bench/sqlite_insert bench/runstat; do
		[ -x "$BUILD/$b" ] || die "$BUILD/$b missing: run make -C $ROOT -j2 first"
	done
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/tally-bench.XXXXXX")
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	# a private copy of every binary: the build tree may change under a long run
	mkdir -p "$TMP/bin"
	cp "$BUILD/tally" "$BUILD"/bench/{loadgen,hello_h2o,sqlite_insert,runstat} "$TMP/bin/"
	TALLY=$TMP/bin/tally
	LOADGEN=$TMP/bin/loadgen
	HELLO=$TMP/bin/hello_h2o
	SQLITE_INSERT=$TMP/bin/sqlite_insert
	RUNSTAT=$TMP/bin/runstat
	export TALLY_DB=$TMP/tally.db
}

bench_cleanup() {
	local p
	for p in "${BG_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${BG_PIDS[@]}"; do
		# give each a few seconds to drain, then force it
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.3
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	BG_PIDS=()
	if [ -n "$TMP" ] && [ -d "$TMP" ]; then
		if [ "${KEEP:-0}" = 1 ]; then
			echo "bench: kept $TMP" >&2
		else
			rm -rf "$TMP"
		fi
	fi
}

# bg_start LOGFILE CMD… — starts CMD in the background; its pid in BG_PID
bg_start() {
	local log=$1
	shift
	"$@" >"$log" 2>&1 &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
}

# bg_stop PID — SIGTERM, wait up to 5 s, then SIGKILL
bg_stop() {
	local p=$1 q keep=()
	kill -TERM "$p" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	for q in "${BG_PIDS[@]}"; do
		[ "$q" = "$p" ] || keep+=("$q")
	done
	BG_PIDS=("${keep[@]}")
}

# a loopback port nobody listens on (checked, not reserved: bind may still race)
free_port() {
	# below the kernel's ephemeral range: a port a client socket got from
	# connect() (a thousand of them in connections.sh) cannot be bound even
	# with SO_REUSEADDR, and "nobody listens there" does not show it
	local p lo
	lo=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$lo" -gt 12000 ] 2>/dev/null || lo=32768
	for _ in $(seq 1 100); do
		p=$((10000 + RANDOM % (lo - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found"
}

# wait_http PID PORT PATH — until 127.0.0.1:PORT answers PATH (10 s at most)
wait_http() {
	local pid=$1 port=$2 path=$3
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 1
		if curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$port$path"; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# serve_start LOG [ARGS…] — `tally serve` on a free loopback port with ARGS;
# sets PORT and SERVE once it answers, dies with its log if it does not
serve_start() {
	local log=$1 try
	shift
	for try in 1 2 3; do # another process may take the port between the check and the bind
		PORT=$(free_port)
		bg_start "$log" "$TALLY" serve --listen "127.0.0.1:$PORT" "$@"
		SERVE=$BG_PID
		wait_http "$SERVE" "$PORT" /api/v1/openapi.json && return 0
		grep -q 'cannot listen' "$log" 2>/dev/null && [ "$try" -lt 3 ] && continue
		cat "$log" >&2
		die "tally serve did not start"
	done
}

# cpu_ticks PID — user+system clock ticks the process used so far
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# thread_ticks PID — one line per thread of PID: its name and the user+system
# clock ticks it used so far (tally names its threads: tally-exec, tally-sync…;
# the first event loop runs on the main thread, "tally")
thread_ticks() {
	local t
	for t in /proc/"$1"/task/*; do
		# after "tid (comm) ", utime and stime are the 12th and 13th fields
		printf '%s %s\n' "$(cat "$t/comm" 2>/dev/null)" \
			"$(sed 's/^.*) //' "$t/stat" 2>/dev/null | awk '{ print $12 + $13 }')"
	done
}

# ticks_us TICKS N — clock ticks of CPU as whole µs per one of N (cycles, requests)
ticks_us() {
	awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" 'BEGIN { printf "%d", 1e6 * t / hz / n }'
}

# runstat_us FILE N — the CPU that the commands run under runstat used (user +
# system; summed over FILE's lines, one per command), as whole µs per one of N
runstat_us() {
	awk -v n="$2" '{ for (i = 1; i <= NF; i++) { split($i, kv, "=")
			if (kv[1] == "user_s" || kv[1] == "sys_s") t += kv[2] } }
		END { printf "%d", 1e6 * t / n }' "$1" 2>/dev/null || echo 0
}

# per_cycle BEFORE AFTER CYCLES — from two thread_ticks snapshots: "name µs, …"
# per claim+submit cycle, by thread name (threads of one name summed), largest first
per_cycle() {
	awk -v cyc="$3" -v hz="$(getconf CLK_TCK)" '
		FNR == NR { a[$1] += $2; next }
		{ b[$1] += $2 }
		END {
			for (n in b) { d = b[n] - a[n]; if (d > 0) printf "%d %s\n", 1e6 * d / hz / cyc, n }
		}' "$1" "$2" | sort -rn | awk '{ printf "%s%s %d", (NR > 1 ? ", " : ""), $2, $1 } END { print "" }'
}

# cpu_idle FILE — idle, iowait and softirq shares of the machine over the
# spans in FILE: pairs of /proc/stat first lines (before, after), summed
cpu_idle() {
	awk 'NR % 2 == 1 { for (i = 2; i <= 9; i++) a[i] = $i; next }
		{ for (i = 2; i <= 9; i++) { d[i] += $i - a[i]; t += $i - a[i] } }
		END { printf "%.0f%% idle, %.0f%% iowait, %.0f%% softirq", 100 * d[5] / t, 100 * d[6] / t, 100 * d[8] / t }' "$1"
}

# field KEY LINE — the value of KEY=… in a "RESULT k=v …" line
field() {
	local k=$1 line=$2
	tr ' ' '\n' <<<"$line" | sed -n "s/^$k=//p" | head -n1
}

# ratio A B — A/B as a percentage with one decimal
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (b <= 0) { print "n/a"; exit }
		r = 100 * a / b
		# one decimal: a ratio near a target must not round across it (24.8 % is not 25 %)
		printf (r >= 1 ? "%.1f%%" : "%.2f%%"), r
	}'
}

# bulk_org N — in the new database: org "bench" (its id in ORG), N annotators
# a1..aN@bench.test without keys (bulk SQL answers for them) and
# owner@bench.test, whose key is in KEY
bulk_org() {
	local i
	"$TALLY" init
	ORG=$("$TALLY" org add bench)
	for i in $(seq 1 "$1"); do
		"$TALLY" user add --org "$ORG" --email "a$i@bench.test" --role annotator >/dev/null
	done
	"$TALLY" user add --org "$ORG" --email owner@bench.test --role owner >/dev/null
	KEY=$("$TALLY" key create --user owner@bench.test 2>/dev/null)
}

# scan_setup — after bench_setup: the raw join scan (bench/scale_scan.c), the
# ceiling of reading a project's tasks with their responses, in SCAN
scan_setup() {
	[ -x "$BUILD/bench/scale_scan" ] || die "$BUILD/bench/scale_scan missing: run make -C $ROOT -j2 first"
	cp "$BUILD/bench/scale_scan" "$TMP/bin/"
	SCAN=$TMP/bin/scale_scan
}

# gen_tasks N FILE — N tasks for the "text" field, JSONL as `tally import` takes it
gen_tasks() {
	awk -v n="$1" 'BEGIN {
		split("positive negative neutral mixed", mood, " ")
		for (i = 1; i <= n; i++)
			printf "{\"data\":{\"text\":\"Review %d: the delivery was %s and the product felt %s; would I buy it again? Maybe.\"},\"unique_id\":\"t-%d\",\"priority\":%d,\"metadata\":{\"batch\":%d,\"source\":\"bench\"}}\n", \
				i, (i % 7 ? "on time" : "late"), mood[i % 4 + 1], i, i % 3, int(i / 10000)
	}' >"$2"
}

# annotators ORG N DOMAIN — N annotators a1@DOMAIN … aN@DOMAIN in ORG, with an
# API key each, one a line in $TMP/keys
annotators() {
	local i
	: >"$TMP/keys"
	for i in $(seq 1 "$2"); do
		"$TALLY" user add --org "$1" --email "a$i@$3" --role annotator >/dev/null
		"$TALLY" key create --user "a$i@$3" 2>/dev/null >>"$TMP/keys"
	done
}

# loop_setup TASKS KEYS — the annotator-loop database in $TALLY_DB: KEYS
# annotators with an API key each (one a line in $TMP/keys), the bench
# project (its id in PRJ) and TASKS tasks imported
loop_setup() {
	local org
	"$TALLY" init
	org=$("$TALLY" org add bench)
	annotators "$org" "$2" bench.test
	write_schema "$TMP/schema.json"
	PRJ=$("$TALLY" project create --org "$org" --schema "$TMP/schema.json")
	gen_tasks "$1" "$TMP/tasks.jsonl"
	timeout 300 "$TALLY" import "$PRJ" "$TMP/tasks.jsonl" >/dev/null
	rm -f "$TMP/tasks.jsonl"
}

# the project every benchmark uses: one choice question, one answer per task
write_schema() {
	cat >"$1" <<'EOF'
{"name":"bench","instructions":"Pick the feeling of the review.",
 "fields":[{"name":"text","type":"text"}],
 "questions":[{"name":"label","type":"choice","options":["positive","negative","neutral","mixed"]}],
 "min_responses":1,"max_responses":1,"lease_seconds":600}
EOF
}

machine() {
	echo "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)," \
		"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
}
