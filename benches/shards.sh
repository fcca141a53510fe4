#!/usr/bin/env bash
# `make bench-shards`: redis-benchmark through twemproxy in front of three pocketkv servers,
# beside the same through twemproxy in front of three redis-servers, in the same run.
#
# Both proxies run deploy/nutcracker.yml with only the addresses replaced (deploy/demo.sh
# nutcracker-config), so keys land on the same shards on both sides. Each round runs
# `redis-benchmark -t set,get` at pipeline 1 and at pipeline 16 against both proxies, the order
# alternating between rounds; the table shows the median of ROUNDS rounds and the ratio
# pocketkv / redis-server. Servers run without persistence (pocketkv --save-interval 0, redis
# --save '' --appendonly no), release build, loopback, no CPU pinning: the proxy, the three
# servers and redis-benchmark share the machine's CPUs. Not measured: networks other than
# loopback, several proxies, values other than redis-benchmark's 3 bytes.
#
# Knobs (environment): ROUNDS=3 CLIENTS=50 KEYS=100000 REQUESTS_P1=100000 REQUESTS_P16=500000.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-50}
KEYS=${KEYS:-100000}
REQUESTS_P1=${REQUESTS_P1:-100000}
REQUESTS_P16=${REQUESTS_P16:-500000}
DEADLINE=15

die() {
    echo "bench-shards: $*" >&2
    exit 1
}

for tool in redis-server redis-benchmark nutcracker; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run ci/install-deps.sh"
done

echo "building pocketkv (release)..."
cargo build --release --quiet --bin pocketkv || die "cargo build --release failed"

work=$(mktemp -d "${TMPDIR:-/tmp}/pocketkv-bench-shards.XXXXXX")
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A free loopback port: the kernel picks it for a moment's listener.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
        shuf -i 20000-60000 -n 1
}

wait_for_port() { # wait_for_port PORT WHAT
    local start=$SECONDS
    while port_free "$1"; do
        ((SECONDS - start < DEADLINE)) || die "$2 is not listening on port $1 after ${DEADLINE}s"
        sleep 0.1
    done
}

start_pocketkv() { # prints the port
    local dir=$work/pocketkv$1 line start=$SECONDS
    mkdir -p "$dir"
    target/release/pocketkv --port 0 --dir "$dir" --save-interval 0 >/dev/null 2>"$dir.log" &
    pids+=($!)
    until line=$(grep -m1 -o 'listening on 127\.0\.0\.1:[0-9]*' "$dir.log" 2>/dev/null); do
        ((SECONDS - start < DEADLINE)) || die "pocketkv did not start (log: $dir.log)"
        sleep 0.1
    done
    echo "${line##*:}"
}

start_redis() { # start_redis PORT
    mkdir -p "$work/redis$1"
    redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/redis$1" \
        >"$work/redis$1.log" 2>&1 &
    pids+=($!)
    wait_for_port "$1" redis-server
}

start_proxy() { # start_proxy NAME LISTEN_PORT SERVER_PORT...
    local name=$1 listen=$2
    shift 2
    bash deploy/demo.sh nutcracker-config "$listen" "$@" >"$work/$name.yml"
    nutcracker -c "$work/$name.yml" -s "$(free_port)" -a 127.0.0.1 -o "$work/$name.log" &
    pids+=($!)
    wait_for_port "$listen" "nutcracker ($name)"
}

declare -A shard_pids proxy_pid
# Three shards of each kind; the pocketkv shards are started first (they pick their ports).
pk_ports=()
for i in 1 2 3; do
    # Not in a $(...) subshell: the pid must reach `pids`.
    start_pocketkv "$i" >"$work/port$i"
    pk_ports+=("$(cat "$work/port$i")")
    shard_pids[pocketkv]+=" ${pids[-1]}"
done
redis_ports=()
for _ in 1 2 3; do
    port=$(free_port)
    start_redis "$port"
    redis_ports+=("$port")
    shard_pids[redis]+=" ${pids[-1]}"
done
pk_proxy=$(free_port)
start_proxy pocketkv "$pk_proxy" "${pk_ports[@]}"
proxy_pid[pocketkv]=${pids[-1]}
redis_proxy=$(free_port)
start_proxy redis "$redis_proxy" "${redis_ports[@]}"
proxy_pid[redis]=${pids[-1]}

TICKS=$(getconf CLK_TCK)

# User plus system clock ticks the processes have used (/proc/PID/stat fields 14 and 15).
cpu_ticks() {
    local pid total=0 stat
    for pid in "$@"; do
        stat=$(<"/proc/$pid/stat")
        stat=${stat##*) }
        total=$((total + $(awk '{ print $12 + $13 }' <<<"$stat")))
    done
    echo "$total"
}

# run PROXY_PORT PIPELINE: "SET_RPS GET_RPS" from one redis-benchmark -t set,get.
run() {
    local port=$1 pipeline=$2 requests out
    requests=$REQUESTS_P1
    ((pipeline == 1)) || requests=$REQUESTS_P16
    out=$(redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -n "$requests" -r "$KEYS" \
        -c "$CLIENTS" -P "$pipeline" --csv 2>"$work/benchmark.err") ||
        die "redis-benchmark failed: $(cat "$work/benchmark.err")"
    ! grep -q Error "$work/benchmark.err" || die "redis-benchmark: $(cat "$work/benchmark.err")"
    awk -F'"' '$2 == "SET" { set = $4 } $2 == "GET" { get = $4 } END { print set, get }' <<<"$out"
}

median() { # median of the arguments
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "$(nutcracker --version 2>&1 | head -n1), $(redis-server --version | cut -d' ' -f1-3)"
echo "three shards each, $CLIENTS clients, $KEYS keys, $ROUNDS rounds (medians)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other tenants move these figures)"

declare -A rates cpu
for ((round = 1; round <= ROUNDS; round++)); do
    for pipeline in 1 16; do
        order="pocketkv redis"
        ((round % 2)) || order="redis pocketkv"
        for side in $order; do
            port=$pk_proxy
            [[ $side == redis ]] && port=$redis_proxy
            # shellcheck disable=SC2086
            shards_before=$(cpu_ticks ${shard_pids[$side]})
            proxy_before=$(cpu_ticks "${proxy_pid[$side]}")
            read -r set get < <(run "$port" "$pipeline")
            # shellcheck disable=SC2086
            shards_after=$(cpu_ticks ${shard_pids[$side]})
            proxy_after=$(cpu_ticks "${proxy_pid[$side]}")
            requests=$REQUESTS_P1
            ((pipeline == 1)) || requests=$REQUESTS_P16
            # Microseconds of CPU per request (SET and GET together).
            shard_us=$(awk -v t=$((shards_after - shards_before)) -v hz="$TICKS" -v n=$((2 * requests)) \
                'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
            proxy_us=$(awk -v t=$((proxy_after - proxy_before)) -v hz="$TICKS" -v n=$((2 * requests)) \
                'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
            rates[$side,SET,$pipeline]+=" $set"
            rates[$side,GET,$pipeline]+=" $get"
            cpu[$side,shards,$pipeline]+=" $shard_us"
            cpu[$side,proxy,$pipeline]+=" $proxy_us"
            echo "  round $round, pipeline $pipeline, $side: SET $set/s, GET $get/s;" \
                "CPU per request: shards $shard_us us, proxy $proxy_us us"
        done
    done
done

echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %-9s %16s %16s %8s\n' test pipeline "pocketkv req/s" "redis req/s" ratio
for pipeline in 1 16; do
    for test in SET GET; do
        # shellcheck disable=SC2086
        ours=$(median ${rates[pocketkv,$test,$pipeline]})
        # shellcheck disable=SC2086
        theirs=$(median ${rates[redis,$test,$pipeline]})
        ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')
        printf '%-8s %-9s %16s %16s %7sx\n' "$test" "$pipeline" "$ours" "$theirs" "$ratio"
    done
done

echo
echo "CPU per request (SET and GET together), medians, microseconds:"
printf '%-9s %18s %18s %8s %18s %18s\n' pipeline "pocketkv shards" "redis shards" ratio \
    "proxy (pocketkv)" "proxy (redis)"
for pipeline in 1 16; do
    # shellcheck disable=SC2086
    ours=$(median ${cpu[pocketkv,shards,$pipeline]})
    # shellcheck disable=SC2086
    theirs=$(median ${cpu[redis,shards,$pipeline]})
    # shellcheck disable=SC2086
    proxy_ours=$(median ${cpu[pocketkv,proxy,$pipeline]})
    # shellcheck disable=SC2086
    proxy_theirs=$(median ${cpu[redis,proxy,$pipeline]})
    ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    printf '%-9s %18s %18s %7sx %18s %18s\n' "$pipeline" "$ours" "$theirs" "$ratio" "$proxy_ours" "$proxy_theirs"
done
