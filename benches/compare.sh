#!/usr/bin/env bash
# `make bench`: pocketkv beside redis-server on the same machine, same client, same workloads.
#
#   1. Memory: idle RSS of each fresh server, then RSS after loading the same KEYS keys
#      (SET key:%012d <32-byte value>, sent as RESP through `redis-cli --pipe`), in bytes/key.
#   2. Throughput: redis-benchmark SET and GET, CLIENTS clients, pipeline 1 and 16, REQUESTS
#      requests each, against pocketkv and redis in alternation (who goes first swaps every
#      round) for ROUNDS rounds; the table shows medians of rps, p50 and p99.
#
# Both servers run without persistence (pocketkv --save-interval 0; redis --save '' --appendonly
# no) on free loopback ports. On a machine with 2+ CPUs the servers share CPU 0 and the
# benchmark client gets CPU 1 (taskset), so the client does not steal the server's core.
#
# Knobs (environment): ROUNDS=5 REQUESTS=100000 CLIENTS=50 KEYS=200000 KEYSPACE=100000 PIN=1
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-5}
REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-50}
KEYS=${KEYS:-200000}
KEYSPACE=${KEYSPACE:-100000}
PIN=${PIN:-1}
DEADLINE=15

die() {
    echo "compare: $*" >&2
    exit 1
}

for tool in redis-server redis-cli redis-benchmark; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "compare: $tool not found. Install the reference server and its tools with" >&2
        echo "    apt-get install -y --no-install-recommends redis-server redis-tools" >&2
        echo "(or run: bash ci/install-deps.sh)" >&2
        exit 1
    fi
done

cargo build --release --quiet || die "cargo build --release failed"
BIN=$PWD/target/release/pocketkv

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pocketkv-bench.XXXXXX")
PK_PID=
RD_PID=
cleanup() {
    local pid
    for pid in $PK_PID $RD_PID; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in $PK_PID $RD_PID; do
        # Give each a moment to stop, then make sure.
        for _ in $(seq 50); do
            running "$pid" || break
            sleep 0.02
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# running PID: true while the process has not exited (a zombie counts as exited).
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# CPU placement: servers on CPU 0, the benchmark client on CPU 1.
SERVER_CPU=()
CLIENT_CPU=()
placement="not pinned"
if [[ $PIN == 1 ]] && command -v taskset >/dev/null 2>&1 && (($(nproc) >= 2)); then
    SERVER_CPU=(taskset -c 0)
    CLIENT_CPU=(taskset -c 1)
    placement="servers pinned to CPU 0, redis-benchmark to CPU 1"
fi

rss_bytes() { # VmRSS of a pid, in bytes
    awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"
}

cli() { # cli PORT ARGS...
    local port=$1
    shift
    timeout "$DEADLINE" redis-cli -p "$port" "$@" </dev/null
}

# --- start both servers ------------------------------------------------------------------------
mkdir -p "$WORK/pk" "$WORK/redis"
RUST_LOG=info "${SERVER_CPU[@]}" "$BIN" --port 0 --dir "$WORK/pk" --save-interval 0 \
    </dev/null >/dev/null 2>"$WORK/pk.log" &
PK_PID=$!
PK_PORT=
deadline=$((SECONDS + DEADLINE))
while ((SECONDS < deadline)); do
    line=$(grep -m1 -o 'listening on [0-9.]*:[0-9]*' "$WORK/pk.log" || true)
    [[ -n $line ]] && PK_PORT=${line##*:} && break
    running "$PK_PID" || die "pocketkv exited at start: $(cat "$WORK/pk.log")"
    sleep 0.02 # polling interval
done
[[ -n $PK_PORT ]] || die "pocketkv printed no 'listening on' line within ${DEADLINE}s"

# redis-server has no "pick a free port": try random high ports until one binds, and make sure
# the server answering is ours (its process_id), not someone else's on that port.
RD_PORT=
for _ in $(seq 20); do
    port=$((20000 + RANDOM % 40000))
    "${SERVER_CPU[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$WORK/redis" --daemonize no --logfile "$WORK/redis.log" --loglevel notice \
        </dev/null >/dev/null 2>&1 &
    RD_PID=$!
    deadline=$((SECONDS + DEADLINE))
    while ((SECONDS < deadline)) && running "$RD_PID"; do
        if grep -q 'Ready to accept connections' "$WORK/redis.log" 2>/dev/null; then
            break
        fi
        sleep 0.02 # polling interval
    done
    if running "$RD_PID" &&
        [[ $(cli "$port" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p') == "$RD_PID" ]]; then
        RD_PORT=$port
        break
    fi
    kill -KILL "$RD_PID" 2>/dev/null || true
    wait "$RD_PID" 2>/dev/null || true
    RD_PID=
    : >"$WORK/redis.log"
done
[[ -n $RD_PORT ]] || die "could not start redis-server on a free port; log: $(cat "$WORK/redis.log")"

pk_version=$("$BIN" --version)
rd_version=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
rb_version=$(redis-benchmark --version 2>/dev/null | head -n1 || echo unknown)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "pocketkv vs redis-server, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine:   $(nproc) CPUs, ${cpu:-unknown CPU}, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
echo "servers:   $pk_version (port $PK_PORT, --save-interval 0); redis-server $rd_version (port $RD_PORT, --save '' --appendonly no)"
echo "client:    $rb_version, $placement"
echo

# --- 1. memory -----------------------------------------------------------------------------------
pk_idle=$(rss_bytes "$PK_PID")
rd_idle=$(rss_bytes "$RD_PID")

# SET key:%012d <32-byte value>, as RESP (what redis-cli --pipe expects to pass through).
awk -v n="$KEYS" 'BEGIN {
    for (i = 0; i < n; i++) {
        k = sprintf("key:%012d", i)
        v = sprintf("value:%026d", i)
        printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
    }
}' >"$WORK/load.resp"

load() { # load NAME PORT
    local out
    out=$(timeout 120 redis-cli -p "$2" --pipe <"$WORK/load.resp" 2>&1) ||
        die "$1: redis-cli --pipe failed: $out"
    [[ $out == *"errors: 0, replies: $KEYS"* ]] || die "$1: load did not succeed cleanly: $out"
    local n
    n=$(cli "$2" dbsize)
    [[ $n == "$KEYS" ]] || die "$1: DBSIZE is $n after loading $KEYS keys"
}
load pocketkv "$PK_PORT"
load redis "$RD_PORT"
pk_loaded=$(rss_bytes "$PK_PID")
rd_loaded=$(rss_bytes "$RD_PID")
pk_used=$(cli "$PK_PORT" info memory | tr -d '\r' | sed -n 's/^used_memory://p')
rd_used=$(cli "$RD_PORT" info memory | tr -d '\r' | sed -n 's/^used_memory://p')

echo "memory: $KEYS keys of 16 bytes with 32-byte values (SET via redis-cli --pipe)"
printf '  %-10s %12s %14s %16s %22s\n' server "idle RSS" "loaded RSS" "RSS bytes/key" "INFO used_memory/key"
mem_row() {
    awk -v name="$1" -v idle="$2" -v loaded="$3" -v used="$4" -v n="$KEYS" 'BEGIN {
        printf "  %-10s %10.1f MiB %12.1f MiB %16.1f %22.1f\n", name, idle / 1048576,
            loaded / 1048576, (loaded - idle) / n, used / n
    }'
}
mem_row pocketkv "$pk_idle" "$pk_loaded" "${pk_used:-0}"
mem_row redis "$rd_idle" "$rd_loaded" "${rd_used:-0}"
echo

# --- 2. throughput -------------------------------------------------------------------------------
cli "$PK_PORT" flushall >/dev/null
cli "$RD_PORT" flushall >/dev/null

# run SERVER PORT TEST PIPELINE ROUND: one redis-benchmark run; appends "server,test,P,rps,p50,p99".
run() {
    local server=$1 port=$2 test=$3 pipeline=$4 out rc=0
    out=$("${CLIENT_CPU[@]}" timeout 300 redis-benchmark -h 127.0.0.1 -p "$port" -c "$CLIENTS" \
        -n "$REQUESTS" -r "$KEYSPACE" -P "$pipeline" -t "$test" --csv 2>&1 </dev/null) || rc=$?
    # CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
    #      "p99_latency_ms","max_latency_ms"
    local row
    row=$(grep -E '^"[A-Z]+","[0-9.]+"' <<<"$out" | head -n1 || true)
    if ((rc != 0)) || [[ -z $row ]] || grep -qiE 'error|protocol' <<<"$out"; then
        die "redis-benchmark -t $test -P $pipeline against $server failed (exit $rc): $out"
    fi
    tr -d '"' <<<"$row" | awk -F, -v s="$server" -v t="$test" -v p="$pipeline" \
        '{ print s "," toupper(t) "," p "," $2 "," $5 "," $7 }' >>"$WORK/results.csv"
    printf '.'
}

WORKLOADS=("set 1" "get 1" "set 16" "get 16")
: >"$WORK/results.csv"
printf 'throughput: %d rounds x %d workloads x 2 servers, %d requests each ' \
    "$ROUNDS" "${#WORKLOADS[@]}" "$REQUESTS"
for round in $(seq "$ROUNDS"); do
    for workload in "${WORKLOADS[@]}"; do
        read -r test pipeline <<<"$workload"
        if ((round % 2)); then
            run pocketkv "$PK_PORT" "$test" "$pipeline"
            run redis "$RD_PORT" "$test" "$pipeline"
        else
            run redis "$RD_PORT" "$test" "$pipeline"
            run pocketkv "$PK_PORT" "$test" "$pipeline"
        fi
    done
done
echo
echo

pk_errors=$(cli "$PK_PORT" info stats | tr -d '\r' | sed -n 's/^total_error_replies://p')
[[ $pk_errors == 0 ]] || die "pocketkv counted $pk_errors error replies during the benchmark"

median() { # median SERVER TEST PIPELINE COLUMN(4=rps,5=p50,6=p99)
    awk -F, -v s="$1" -v t="$2" -v p="$3" -v c="$4" '$1 == s && $2 == t && $3 == p { print $c }' \
        "$WORK/results.csv" | sort -g | awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "nan"; exit }
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}
spread() { # spread SERVER TEST PIPELINE: (max - min) / median of rps, in percent
    awk -F, -v s="$1" -v t="$2" -v p="$3" '$1 == s && $2 == t && $3 == p { print $4 }' \
        "$WORK/results.csv" | sort -g | awk '{ v[NR] = $1 } END {
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.0f%%", 100 * (v[NR] - v[1]) / m
        }'
}

echo "medians of $ROUNDS rounds; $CLIENTS clients, $REQUESTS requests, -r $KEYSPACE random keys, 3-byte values"
printf '%-12s %13s %13s %8s %19s %19s %13s\n' workload "pocketkv rps" "redis rps" "ratio" \
    "pocketkv p50/p99" "redis p50/p99" "spread pk/rd"
for workload in "${WORKLOADS[@]}"; do
    read -r test pipeline <<<"$workload"
    T=${test^^}
    pk_rps=$(median pocketkv "$T" "$pipeline" 4)
    rd_rps=$(median redis "$T" "$pipeline" 4)
    pk_lat="$(median pocketkv "$T" "$pipeline" 5)/$(median pocketkv "$T" "$pipeline" 6) ms"
    rd_lat="$(median redis "$T" "$pipeline" 5)/$(median redis "$T" "$pipeline" 6) ms"
    ratio=$(awk -v a="$pk_rps" -v b="$rd_rps" 'BEGIN { printf "%.2fx", a / b }')
    printf '%-12s %13.0f %13.0f %8s %19s %19s %13s\n' "$T -P $pipeline" "$pk_rps" "$rd_rps" \
        "$ratio" "$pk_lat" "$rd_lat" "$(spread pocketkv "$T" "$pipeline")/$(spread redis "$T" "$pipeline")"
done
echo "(ratio = pocketkv rps / redis rps; spread = (max - min) / median of the rounds' rps)"
