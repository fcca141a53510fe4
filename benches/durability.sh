#!/usr/bin/env bash
# Durability benchmarks, pocketkv against redis-server in the same run (make bench-durability):
#
# 1. Snapshot stall: with 100k and then 1M keys loaded, 50 clients run a 50:50 GET/SET load
#    while a snapshot is taken every 1.5 s (pocketkv BGSAVE: a point-in-time copy of shard
#    pointers; redis BGSAVE: fork). Reported: the clients' max and p99.9 latency with and without
#    snapshots, and pocketkv's own copy time and longest loop turn.
# 2. The append-only log: throughput and p99 of 50 clients doing SETs (pipeline 1) with
#    appendfsync always and everysec, on both servers with the same settings, in alternation.
#
# What it does not measure: disks other than this machine's, fsync on a quiet machine, or
# anything over a real network. The machine is shared; compare the two servers within one run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}

if ! command -v redis-server >/dev/null; then
    echo "redis-server is needed: apt-get install -y redis-server (or bash ci/install-deps.sh)" >&2
    exit 1
fi
cargo build --release --quiet --bin pocketkv --example loadgen
BIN=target/release/pocketkv
GEN=target/release/examples/loadgen
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_ready() { # wait_ready PORT
    local deadline=$((SECONDS + 15))
    until redis-cli -p "$1" ping >/dev/null 2>&1; do
        if ((SECONDS > deadline)); then echo "server on port $1 did not start" >&2; exit 1; fi
        sleep 0.05
    done
}

start_pocketkv() { # start_pocketkv DIR EXTRA_FLAGS... -> port on stdout
    local dir=$1 port
    shift
    port=$(free_port)
    mkdir -p "$dir"
    "$BIN" --port "$port" --dir "$dir" --save-interval 0 "$@" >"$dir/log" 2>&1 &
    PIDS+=($!)
    wait_ready "$port"
    echo "$port"
}

start_redis() { # start_redis DIR EXTRA_ARGS... -> port on stdout
    local dir=$1 port
    shift
    port=$(free_port)
    mkdir -p "$dir"
    redis-server --port "$port" --dir "$dir" --save '' --appendonly no "$@" \
        --daemonize no >"$dir/log" 2>&1 &
    PIDS+=($!)
    wait_ready "$port"
    echo "$port"
}

stop() { # stop PORT
    redis-cli -p "$1" shutdown nosave >/dev/null 2>&1 || true
}

field() { # field NAME "result line"
    sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"
}

info() { # info PORT FIELD
    redis-cli -p "$1" info all | tr -d '\r' | sed -n "s/^$2://p"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "pocketkv durability benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(redis-server --version | cut -d' ' -f1-3)"
echo

echo "1. snapshot stall: 50 clients, 50:50 GET/SET, 16-byte keys and values; BGSAVE every 1.5 s"
printf '%-9s %-9s %12s %12s %14s %14s %16s %16s\n' server keys "max (ms)" "max+snap" "p99.9 (ms)" "p99.9+snap" "copy (us)" "turn cpu (us)"
for keys in 100000 1000000; do
    for server in pocketkv redis; do
        dir="$WORK/$server-$keys"
        if [[ $server == pocketkv ]]; then port=$(start_pocketkv "$dir"); else port=$(start_redis "$dir"); fi
        "$GEN" --port "$port" --load "$keys" --value-size 16 --quiet >/dev/null
        load=(--port "$port" --clients 50 --ratio 50:50 --keyspace "$keys" --duration "$SECONDS_PER_RUN" --quiet)
        redis-cli -p "$port" config resetstat >/dev/null
        plain=$("$GEN" "${load[@]}" | grep result:)
        [[ $server == pocketkv ]] && turn_plain=$(info "$port" longest_loop_turn_cpu_usec)
        redis-cli -p "$port" config resetstat >/dev/null
        (for _ in $(seq 1 $((SECONDS_PER_RUN * 2 / 3 + 1))); do
            sleep 1.5
            redis-cli -p "$port" bgsave >/dev/null 2>&1 || true
        done) &
        snapper=$!
        snap=$("$GEN" "${load[@]}" | grep result:)
        wait "$snapper" || true
        if [[ $server == pocketkv ]]; then
            copy="$(info "$port" rdb_last_copy_usec)/$(info "$port" rdb_last_copy_cpu_usec)cpu"
            turn="$turn_plain/$(info "$port" longest_loop_turn_cpu_usec)"
        else
            copy="$(info "$port" latest_fork_usec) (fork)"
            turn="-"
        fi
        printf '%-9s %-9s %12.1f %12.1f %14.1f %14.1f %16s %16s\n' "$server" "$keys" \
            "$(echo "$(field max_us "$plain") / 1000" | bc -l)" "$(echo "$(field max_us "$snap") / 1000" | bc -l)" \
            "$(echo "$(field p999_us "$plain") / 1000" | bc -l)" "$(echo "$(field p999_us "$snap") / 1000" | bc -l)" \
            "$copy" "$turn"
        stop "$port"
    done
done
echo

echo "2. append-only log: 50 clients, pipeline 1, SET only, 16-byte values; medians of $ROUNDS rounds"
printf '%-10s %14s %14s %8s %16s %16s\n' appendfsync "pocketkv req/s" "redis req/s" ratio "pocketkv p99 ms" "redis p99 ms"
for policy in always everysec; do
    declare -A rps=() p99=()
    for round in $(seq 1 "$ROUNDS"); do
        for server in pocketkv redis; do
            dir="$WORK/aof-$policy-$server-$round"
            if [[ $server == pocketkv ]]; then
                port=$(start_pocketkv "$dir" --appendonly yes --appendfsync "$policy")
            else
                port=$(start_redis "$dir" --appendonly yes --appendfsync "$policy")
            fi
            out=$("$GEN" --port "$port" --clients 50 --ratio 0:100 --keyspace 100000 --duration "$SECONDS_PER_RUN" --quiet | grep result:)
            rps[$server]+="$(field rps "$out") "
            p99[$server]+="$(field p99_us "$out") "
            stop "$port"
        done
    done
    pk=$(tr ' ' '\n' <<<"${rps[pocketkv]}" | grep . | median)
    rd=$(tr ' ' '\n' <<<"${rps[redis]}" | grep . | median)
    pk99=$(tr ' ' '\n' <<<"${p99[pocketkv]}" | grep . | median)
    rd99=$(tr ' ' '\n' <<<"${p99[redis]}" | grep . | median)
    printf '%-10s %14.0f %14.0f %7.2fx %16.2f %16.2f\n' "$policy" "$pk" "$rd" \
        "$(echo "$pk / $rd" | bc -l)" "$(echo "$pk99 / 1000" | bc -l)" "$(echo "$rd99 / 1000" | bc -l)"
    unset rps p99
done
