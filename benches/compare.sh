#!/usr/bin/env bash
# `make bench`: pocketkv beside redis-server 7 and the ceiling server (benches/ceiling.rs: answers
# +OK to every request, touches nothing), on this machine, under this project's load generator
# (benches/loadgen.rs), which drives all three with the same code.
#
#   1. Memory: idle RSS of fresh servers; then KEYS keys (16-byte keys, 16-byte values) loaded
#      with pipelined MSETs; RSS bytes/key = (loaded RSS - idle RSS) / KEYS. Those keys stay for
#      the rest of the run, so every GET below is a hit.
#   2. Closed loop: CLIENTS clients, GET and SET, pipeline 1 and 16, uniform keys; every workload
#      runs against the three servers back to back, in an order that rotates every round, for
#      ROUNDS rounds of WARMUP + DURATION seconds. The table shows medians over the rounds.
#   3. Open loop: 90% GET / 10% SET at half of redis-server's maximum rate, that is half of
#      0.9 x its median GET -P 1 rate + 0.1 x its median SET -P 1 rate from step 2; latency
#      measured from each request's intended send time (coordinated omission corrected).
#   4. Sizes: the stripped static x86_64 musl binary (`make release-static`), and its idle RSS
#      (started on its own, measured as in 1, stopped).
#   5. Generator check: redis-benchmark against the ceiling server at pipeline 16 (up to 3 runs),
#      beside the load generator's own number for it, to show the generator is not the
#      bottleneck.
#
# Servers run without persistence (pocketkv --save-interval 0, and --appendonly no where it has
# the flag; redis --save '' --appendonly no) on free loopback ports. With 2+ CPUs the servers
# share CPU 0 and the load generator gets CPU 1 (taskset). Not measured: networks other than
# loopback, more than one server thread, values other than 16 bytes, durability costs.
#
# Knobs (environment): ROUNDS=5 DURATION=2 WARMUP=0.5 OPEN_DURATION=4 CLIENTS=50 KEYS=1000000
# PIN=1 GENCHECK=1. Exit status 1 when something fails to run; missed targets are reported, not
# fatal.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-2}
WARMUP=${WARMUP:-0.5}
OPEN_DURATION=${OPEN_DURATION:-4}
CLIENTS=${CLIENTS:-50}
KEYS=${KEYS:-1000000}
PIN=${PIN:-1}
GENCHECK=${GENCHECK:-1}
DEADLINE=15
started_at=$SECONDS

die() {
    echo "bench: $*" >&2
    exit 1
}

for tool in redis-server redis-cli; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "bench: $tool not found. Install the reference server and its tools with" >&2
        echo "    apt-get install -y --no-install-recommends redis-server redis-tools" >&2
        echo "(or run: bash ci/install-deps.sh)" >&2
        exit 1
    fi
done

echo "building (release: pocketkv, load generator, ceiling server; static musl binary)..."
cargo build --release --quiet --bin pocketkv --example loadgen --example ceiling ||
    die "cargo build --release failed"
BIN=$PWD/target/release/pocketkv
LOADGEN=$PWD/target/release/examples/loadgen
CEILING=$PWD/target/release/examples/ceiling
static_size=
if make -s release-static >/dev/null 2>&1; then
    static_size=$(stat -c %s target/x86_64-unknown-linux-musl/small/pocketkv)
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pocketkv-bench.XXXXXX")
PK_PID=
RD_PID=
CE_PID=
ST_PID=
cleanup() {
    local pid
    for pid in $PK_PID $RD_PID $CE_PID $ST_PID; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $PK_PID $RD_PID $CE_PID $ST_PID; do
        for _ in $(seq 100); do
            running "$pid" || break
            sleep 0.02 # polling interval
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

SERVER_CPU=()
CLIENT_CPU=()
placement="not pinned"
if [[ $PIN == 1 ]] && command -v taskset >/dev/null 2>&1 && (($(nproc) >= 2)); then
    SERVER_CPU=(taskset -c 0)
    CLIENT_CPU=(taskset -c 1)
    placement="servers pinned to CPU 0, load generator to CPU 1"
fi

rss_bytes() { # VmRSS of a pid, in bytes
    awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"
}

rss_split() { # "FILE ANON": a pid's resident pages of mapped files and anonymous ones, in kB
    awk '/^RssFile:/ { f = $2 } /^RssAnon:/ { a = $2 } END { print f, a }' "/proc/$1/status"
}

cli() { # cli PORT ARGS...
    local port=$1
    shift
    timeout "$DEADLINE" redis-cli -p "$port" "$@" </dev/null
}

# wait_port PID LOG NAME: the port from the "listening on ADDR:PORT" line of LOG.
wait_port() {
    local pid=$1 log=$2 name=$3 line deadline=$((SECONDS + DEADLINE))
    while ((SECONDS < deadline)); do
        line=$(grep -m1 -o 'listening on [0-9.]*:[0-9]*' "$log" || true)
        if [[ -n $line ]]; then
            echo "${line##*:}"
            return
        fi
        running "$pid" || die "$name exited at start: $(cat "$log")"
        sleep 0.02 # polling interval
    done
    die "$name printed no 'listening on' line within ${DEADLINE}s"
}

# --- start the servers ---------------------------------------------------------------------------
mkdir -p "$WORK/pk" "$WORK/redis"
PK_FLAGS=(--save-interval 0)
if "$BIN" --help 2>&1 | grep -q -- '--appendonly'; then
    PK_FLAGS+=(--appendonly no)
fi
RUST_LOG=info "${SERVER_CPU[@]}" "$BIN" --port 0 --dir "$WORK/pk" "${PK_FLAGS[@]}" \
    </dev/null >/dev/null 2>"$WORK/pk.log" &
PK_PID=$!
PK_PORT=$(wait_port "$PK_PID" "$WORK/pk.log" pocketkv)
# Idle RSS before anything else touches it.
sleep 0.2
pk_idle=$(rss_bytes "$PK_PID")
read -r pk_idle_file pk_idle_anon <<<"$(rss_split "$PK_PID")"

# The static musl binary's idle RSS (the build embedded users run): started, measured the same
# way, stopped.
st_idle=
if [[ -n $static_size ]]; then
    mkdir -p "$WORK/st"
    RUST_LOG=info "${SERVER_CPU[@]}" target/x86_64-unknown-linux-musl/small/pocketkv --port 0 \
        --dir "$WORK/st" "${PK_FLAGS[@]}" </dev/null >/dev/null 2>"$WORK/st.log" &
    ST_PID=$!
    wait_port "$ST_PID" "$WORK/st.log" "static pocketkv" >/dev/null
    sleep 0.2
    st_idle=$(rss_bytes "$ST_PID")
    read -r st_idle_file st_idle_anon <<<"$(rss_split "$ST_PID")"
    kill -TERM "$ST_PID" 2>/dev/null || true
    wait "$ST_PID" 2>/dev/null || true
    ST_PID=
fi

"${SERVER_CPU[@]}" "$CEILING" --port 0 </dev/null >/dev/null 2>"$WORK/ceiling.log" &
CE_PID=$!
CE_PORT=$(wait_port "$CE_PID" "$WORK/ceiling.log" ceiling)

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
sleep 0.2
rd_idle=$(rss_bytes "$RD_PID")

pk_version=$("$BIN" --version)
rd_version=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo
echo "pocketkv vs redis-server vs ceiling, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine:  $(nproc) CPUs, ${cpu:-unknown CPU}, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "servers:  $pk_version (${PK_FLAGS[*]}); redis-server $rd_version (--save '' --appendonly no); ceiling (benches/ceiling.rs)"
echo "client:   benches/loadgen.rs, 1 thread, $placement"
echo

# --- 1. memory -----------------------------------------------------------------------------------
load() { # load NAME PORT: KEYS keys through pipelined MSETs; prints seconds taken
    local out
    out=$("${CLIENT_CPU[@]}" "$LOADGEN" --port "$2" --load "$KEYS" --clients 4 --pipeline 4 \
        --batch 100 --key-size 16 --value-size 16 --quiet 2>&1) || die "$1: loading failed: $out"
    [[ $out == *" errors=0"* ]] || die "$1: load had errors: $out"
    local n
    n=$(cli "$2" dbsize)
    [[ $n == "$KEYS" ]] || die "$1: DBSIZE is $n after loading $KEYS keys"
    sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$out"
}
pk_load_s=$(load pocketkv "$PK_PORT")
rd_load_s=$(load redis "$RD_PORT")
sleep 0.2
pk_loaded=$(rss_bytes "$PK_PID")
rd_loaded=$(rss_bytes "$RD_PID")

# --- 2. closed loop ------------------------------------------------------------------------------
RESULTS=$WORK/results.txt
: >"$RESULTS"

# run SERVER PORT WORKLOAD LOADGEN-ARGS...: one load generator run; appends
# "server workload rps p50 p99 p999 max" to RESULTS.
run() {
    local server=$1 port=$2 workload=$3 out rc=0
    shift 3
    out=$("${CLIENT_CPU[@]}" timeout 120 "$LOADGEN" --port "$port" --clients "$CLIENTS" \
        --keyspace "$KEYS" --key-size 16 --value-size 16 --quiet "$@" 2>&1) || rc=$?
    local line
    line=$(grep '^result:' <<<"$out" || true)
    if ((rc != 0)) || [[ -z $line ]]; then
        die "loadgen $* against $server failed (exit $rc): $out"
    fi
    if [[ $server != ceiling && $line != *" errors=0"* ]]; then
        die "$server answered with errors: $out"
    fi
    awk -v s="$server" -v w="$workload" '{
        for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        print s, w, f["rps"], f["p50_us"], f["p99_us"], f["p999_us"], f["max_us"], f["sent_rps"],
            f["lag_p99_us"]
    }' <<<"$line" >>"$RESULTS"
    printf '.'
}

SERVERS=("pocketkv $PK_PORT" "redis $RD_PORT" "ceiling $CE_PORT")
WORKLOADS=("GET-P1 100:0 1" "SET-P1 0:100 1" "GET-P16 100:0 16" "SET-P16 0:100 16")
printf 'closed loop: %d rounds x %d workloads x 3 servers, %s s + %s s warm-up each ' \
    "$ROUNDS" "${#WORKLOADS[@]}" "$DURATION" "$WARMUP"
for round in $(seq 0 $((ROUNDS - 1))); do
    for workload in "${WORKLOADS[@]}"; do
        read -r name ratio pipeline <<<"$workload"
        for i in 0 1 2; do
            read -r server port <<<"${SERVERS[$(((i + round) % 3))]}"
            run "$server" "$port" "$name" --ratio "$ratio" --pipeline "$pipeline" \
                --duration "$DURATION" --warmup "$WARMUP"
        done
    done
done
echo

median() { # median SERVER WORKLOAD COLUMN(3=rps 4=p50 5=p99 6=p99.9 7=max 8=sent 9=lag p99)
    awk -v s="$1" -v w="$2" -v c="$3" '$1 == s && $2 == w { print $c }' "$RESULTS" | sort -g |
        awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "nan"; exit }
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}
spread() { # spread SERVER WORKLOAD COLUMN: (max - min) / median over the rounds, in percent
    awk -v s="$1" -v w="$2" -v c="$3" '$1 == s && $2 == w { print $c }' "$RESULTS" | sort -g |
        awk '{ v[NR] = $1 } END {
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.0f%%", (m > 0) ? 100 * (v[NR] - v[1]) / m : 0
        }'
}

# --- 3. open loop --------------------------------------------------------------------------------
rd_get=$(median redis GET-P1 3)
rd_set=$(median redis SET-P1 3)
RATE=$(awk -v g="$rd_get" -v s="$rd_set" 'BEGIN { printf "%.0f", 0.5 * (0.9 * g + 0.1 * s) }')
printf 'open loop: %d rounds x 2 servers at %s req/s, %s s + 1 s warm-up each ' \
    "$ROUNDS" "$RATE" "$OPEN_DURATION"
for round in $(seq 0 $((ROUNDS - 1))); do
    for i in 0 1; do
        read -r server port <<<"${SERVERS[$(((i + round) % 2))]}"
        run "$server" "$port" OPEN --ratio 90:10 --rate "$RATE" --duration "$OPEN_DURATION" \
            --warmup 1
    done
done
echo

# --- 5. generator check --------------------------------------------------------------------------
rb_ceiling=
if [[ $GENCHECK == 1 ]] && command -v redis-benchmark >/dev/null 2>&1; then
    check_rounds=$((ROUNDS < 3 ? ROUNDS : 3))
    printf 'generator check: redis-benchmark against the ceiling server, GET -P 16, %d rounds ' \
        "$check_rounds"
    for _ in $(seq "$check_rounds"); do
        out=$("${CLIENT_CPU[@]}" timeout 120 redis-benchmark -p "$CE_PORT" -c "$CLIENTS" \
            -n 1000000 -P 16 -t get --csv 2>/dev/null </dev/null || true)
        rps=$(grep -E '^"GET","[0-9.]+"' <<<"$out" | head -n1 | cut -d, -f2 | tr -d '"')
        [[ -n $rps ]] && echo "redis-benchmark GENCHECK $rps 0 0 0 0 0" >>"$RESULTS"
        printf '.'
    done
    echo
    rb_ceiling=$(median redis-benchmark GENCHECK 3)
fi
echo

# --- the table -----------------------------------------------------------------------------------
MISSED=0
verdict() { # verdict VALUE OP LIMIT: MET or "MISSED by N%"
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        ok = (op == ">=") ? (v >= t) : (v <= t)
        if (ok) { print "met"; exit }
        printf "MISSED by %.0f%%", 100 * ((op == ">=") ? (t - v) / t : (v - t) / t)
    }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
TARGETS=$WORK/targets.txt
: >"$TARGETS"
target() { # target DESCRIPTION VALUE OP LIMIT SHOWN
    local v
    v=$(verdict "$2" "$3" "$4")
    [[ $v == met ]] || MISSED=$((MISSED + 1))
    printf '  %-58s %-22s %s\n' "$1" "$5" "$v" >>"$TARGETS"
}

echo "closed loop, $CLIENTS clients, $KEYS keys (16 B) of 16 B values, uniform; medians of $ROUNDS rounds of $DURATION s"
printf '%-9s %10s %10s %10s %9s %10s %17s %17s %9s\n' workload "pocketkv/s" "redis/s" \
    "ceiling/s" "pk/redis" "pk/ceiling" "pk p50/p99 us" "redis p50/p99 us" "spread pk"
for workload in "${WORKLOADS[@]}"; do
    read -r name _ pipeline <<<"$workload"
    pk=$(median pocketkv "$name" 3)
    rd=$(median redis "$name" 3)
    ce=$(median ceiling "$name" 3)
    pk_lat="$(median pocketkv "$name" 4)/$(median pocketkv "$name" 5)"
    rd_lat="$(median redis "$name" 4)/$(median redis "$name" 5)"
    printf '%-9s %10.0f %10.0f %10.0f %8sx %9sx %17s %17s %9s\n' "${name%%-*} -P $pipeline" "$pk" "$rd" \
        "$ce" "$(ratio "$pk" "$rd")" "$(ratio "$pk" "$ce")" "$pk_lat" "$rd_lat" \
        "$(spread pocketkv "$name" 3)"
    op=${name%%-*}
    if ((pipeline == 1)); then
        target "$op -P 1 throughput >= 0.95x ceiling" "$(ratio "$pk" "$ce")" ">=" 0.95 \
            "$(ratio "$pk" "$ce")x"
        target "$op -P 1 throughput >= redis" "$(ratio "$pk" "$rd")" ">=" 1 "$(ratio "$pk" "$rd")x"
        target "$op -P 1 p99 <= redis" "$(median pocketkv "$name" 5)" "<=" \
            "$(median redis "$name" 5)" \
            "$(median pocketkv "$name" 5) vs $(median redis "$name" 5) us"
    else
        target "$op -P $pipeline throughput >= 1.5x redis" "$(ratio "$pk" "$rd")" ">=" 1.5 \
            "$(ratio "$pk" "$rd")x"
    fi
done
echo

echo "open loop, 90% GET / 10% SET at $RATE req/s (half of redis's -P 1 rate), $CLIENTS clients; latency from intended send time, us; medians of $ROUNDS rounds of $OPEN_DURATION s"
printf '%-9s %10s %9s %9s %9s %9s %13s %12s\n' server "sent/s" p50 p99 p99.9 max \
    "gen. late p99" "spread p99.9"
for server in pocketkv redis; do
    printf '%-9s %10.0f %9s %9s %9s %9s %13s %12s\n' "$server" "$(median "$server" OPEN 8)" \
        "$(median "$server" OPEN 4)" "$(median "$server" OPEN 5)" "$(median "$server" OPEN 6)" \
        "$(median "$server" OPEN 7)" "$(median "$server" OPEN 9)" "$(spread "$server" OPEN 6)"
done
echo "(gen. late: p99 of how late the generator sent; up to that much latency is not the server's)"
pk999=$(median pocketkv OPEN 6)
rd999=$(median redis OPEN 6)
target "open loop p99.9 <= redis" "$pk999" "<=" "$rd999" "$pk999 vs $rd999 us"
echo

echo "memory: $KEYS keys, 16 B keys, 16 B values, loaded with MSET x100 (pocketkv ${pk_load_s}s, redis ${rd_load_s}s)"
printf '%-9s %12s %12s %14s\n' server "idle RSS" "loaded RSS" "RSS bytes/key"
mem_row() {
    awk -v name="$1" -v idle="$2" -v loaded="$3" -v n="$KEYS" 'BEGIN {
        printf "%-9s %8.1f MiB %8.1f MiB %14.1f\n", name, idle / 1048576, loaded / 1048576,
            (loaded - idle) / n
    }'
}
mem_row pocketkv "$pk_idle" "$pk_loaded"
mem_row redis "$rd_idle" "$rd_loaded"
pk_per_key=$(awk -v i="$pk_idle" -v l="$pk_loaded" -v n="$KEYS" 'BEGIN { printf "%.1f", (l - i) / n }')
target "memory: RSS bytes/key <= 64" "$pk_per_key" "<=" 64 "$pk_per_key B/key"
target "idle RSS <= 2 MB" "$pk_idle" "<=" 2000000 "$(awk -v b="$pk_idle" 'BEGIN { printf "%.2f MB", b / 1e6 }')"
echo "pocketkv idle RSS: $pk_idle_file kB of mapped files (code and constants of its binary, libc," \
    "ld.so and libgcc_s: page cache, libc's shared with other processes) and $pk_idle_anon kB" \
    "anonymous (heap, stacks, data)"
if [[ -n $st_idle ]]; then
    echo "static musl build idle RSS: $((st_idle / 1024)) kB: $st_idle_file kB of its binary," \
        "$st_idle_anon kB anonymous"
    target "idle RSS <= 2 MB, static musl build" "$st_idle" "<=" 2000000 \
        "$(awk -v b="$st_idle" 'BEGIN { printf "%.2f MB", b / 1e6 }')"
fi
echo

if [[ -n $static_size ]]; then
    echo "binary: target/x86_64-unknown-linux-musl/small/pocketkv, static, stripped: $static_size bytes"
    target "static musl binary <= 1 MB" "$static_size" "<=" 1000000 "$static_size bytes"
else
    echo "binary: static musl build failed (see: make release-static); size not measured"
    MISSED=$((MISSED + 1))
    printf '  %-58s %-22s %s\n' "static musl binary <= 1 MB" "not built" "MISSED" >>"$TARGETS"
fi
if [[ -n $rb_ceiling ]]; then
    lg=$(median ceiling GET-P16 3)
    echo "generator check (ceiling server, GET -P 16): loadgen $(printf '%.0f' "$lg")/s," \
        "redis-benchmark $(printf '%.0f' "$rb_ceiling")/s: loadgen/redis-benchmark $(ratio "$lg" "$rb_ceiling")x"
fi
echo

echo "targets (docs/performance.md, \"The targets\"):"
cat "$TARGETS"
echo "$MISSED target(s) missed; spread = (max - min) / median over the rounds"
echo "bench took $((SECONDS - started_at)) s; load average $(cut -d' ' -f1-3 /proc/loadavg) at the end" \
    "(the machine's other work competes with the servers and the generator: high spread means noise)"
