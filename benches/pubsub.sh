#!/usr/bin/env bash
# `make bench-pubsub`: Pub/Sub beside redis-server 7, in the same run, on this machine.
#
#   1. PUBLISH throughput and delivery latency with 1, 100 and 1,000 subscribers on one channel
#      (benches/pubsub.rs: pipelined PUBLISH for DURATION seconds, then a paced phase whose every
#      delivery's latency, send to read by the subscriber, goes into a histogram). Each server and
#      subscriber count is run ROUNDS times, servers alternating; the table shows medians.
#   2. The cost of keyspace notifications nobody listens to: redis-benchmark SET at pipeline 16
#      against pocketkv with notify-keyspace-events "" (off), "Kx" (an idle class) and "KEA"
#      (every event, no subscriber), in an order that rotates every round, ROUNDS runs each;
#      medians of the rate and of
#      the server's CPU time per SET (from /proc/<pid>/stat: steadier than rates on a shared
#      machine).
#
# Servers run without persistence on free loopback ports; with 2+ CPUs the servers share CPU 0
# and the load CPU 1. Not measured: patterns, many channels, slow subscribers, other networks.
# Knobs: ROUNDS=3 DURATION=2 REQUESTS=1000000 PARTS="publish notify".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-2}
REQUESTS=${REQUESTS:-1000000}
PARTS=${PARTS:-publish notify}

for tool in redis-server redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "bench-pubsub: $tool not found (run: bash ci/install-deps.sh)" >&2
        exit 1
    }
done

echo "building (release: pocketkv, benches/pubsub.rs)..."
cargo build --release --quiet --bin pocketkv --example pubsub-load

server_cpu=() load_cpu=()
if (($(nproc) >= 2)); then
    server_cpu=(taskset -c 0)
    load_cpu=(taskset -c 1)
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_ready() {
    for _ in $(seq 1 300); do
        redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "bench-pubsub: server on port $1 did not start" >&2
    exit 1
}

dir=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    # pocketkv writes its final snapshot into $dir as it stops.
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

# Both servers allow 1,000 subscribers plus the publisher.
pk_port=$(free_port)
"${server_cpu[@]}" target/release/pocketkv --port "$pk_port" --save-interval 0 --dir "$dir" \
    --maxclients 5000 2>"$dir/pocketkv.log" &
pids+=($!)
rd_port=$(free_port)
"${server_cpu[@]}" redis-server --port "$rd_port" --save '' --appendonly no --dir "$dir" \
    --maxclients 5000 >"$dir/redis.log" 2>&1 &
pids+=($!)
wait_ready "$pk_port"
wait_ready "$rd_port"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

if [[ " $PARTS " == *" publish "* ]]; then
echo
echo "PUBLISH, one channel, 20-byte payload (medians of $ROUNDS rounds)"
printf '%-12s %-9s %14s %16s %12s %12s\n' subscribers server "publish/s" "delivered/s" "p50 us" "p99 us"
for subs in 1 100 1000; do
    for name in pocketkv redis; do : >"$dir/$name.$subs"; done
    for _ in $(seq 1 "$ROUNDS"); do
        for name in pocketkv redis; do
            port=$pk_port
            [[ $name == redis ]] && port=$rd_port
            "${load_cpu[@]}" target/release/examples/pubsub-load --addr "127.0.0.1:$port" \
                --subscribers "$subs" --seconds "$DURATION" >>"$dir/$name.$subs"
        done
    done
    for name in pocketkv redis; do
        f="$dir/$name.$subs"
        printf '%-12s %-9s %14s %16s %12s %12s\n' "$subs" "$name" \
            "$(field publish_per_sec <"$f" | median)" "$(field delivered_per_sec <"$f" | median)" \
            "$(field latency_p50_us <"$f" | median)" "$(field latency_p99_us <"$f" | median)"
    done
done

fi

if [[ " $PARTS " == *" notify "* ]]; then
echo
echo "SET -P 16 on pocketkv by notify-keyspace-events, no subscribers (medians of $ROUNDS)"
pk_pid=${pids[0]}
tick_ns=$((1000000000 / $(getconf CLK_TCK)))
for setting in "" "Kx" "KEA"; do : >"$dir/notify.${setting:-off}"; : >"$dir/cpu.${setting:-off}"; done
settings=("" "Kx" "KEA")
for round in $(seq 1 "$ROUNDS"); do
    # The order rotates every round, so no setting always runs first.
    for i in 0 1 2; do
        setting=${settings[$(((i + round) % 3))]}
        redis-cli -p "$pk_port" config set notify-keyspace-events "$setting" >/dev/null
        before=$(cpu_ticks "$pk_pid")
        "${load_cpu[@]}" redis-benchmark -p "$pk_port" -t set -P 16 -n "$REQUESTS" -r 100000 -q \
            | sed -n 's/.*SET: \([0-9.]*\) requests per second.*/\1/p' >>"$dir/notify.${setting:-off}"
        after=$(cpu_ticks "$pk_pid")
        echo $(((after - before) * tick_ns / REQUESTS)) >>"$dir/cpu.${setting:-off}"
    done
done
printf '%-6s %14s %22s\n' setting "requests/s" "server CPU ns per SET"
for setting in off Kx KEA; do
    printf '%-6s %14s %22s\n' "$setting" "$(median <"$dir/notify.$setting")" "$(median <"$dir/cpu.$setting")"
done
fi
