#!/usr/bin/env bash
# `make bench-replication`: pocketkv beside redis-server 7 in the same topology (one primary, two
# replicas, all on loopback, no persistence), on this machine:
#
#   1. Full sync, ROUNDS times, each to a fresh replica process: KEYS keys (16-byte values)
#      loaded into the primary, then one replica started; the time from its start until INFO
#      says master_link_status:up, the replica's peak resident memory (VmHWM; for pocketkv it
#      includes the spooled image mapped from the page cache while it loads), and the primary's
#      longest loop turn meanwhile (pocketkv's INFO longest_loop_turn_usec and its CPU-time twin
#      longest_loop_turn_cpu_usec, after CONFIG RESETSTAT), beside the same for a BGSAVE of the
#      same data. The CPU figure is the one to compare on a shared machine: the wall-clock one
#      also counts time the loop thread waited for a CPU.
#   2. Throughput: redis-benchmark SET at pipeline 16, 50 clients, against the primary with 0, 1
#      and 2 replicas attached, ROUNDS runs each; ratios to the same server's 0-replica figure.
#   3. Replication lag: while redis-benchmark writes (pipeline 1, 50 clients), PROBES probes each
#      SET a key on the primary and time until a replica returns it (poll, no sleeps); p50 and
#      p99 in milliseconds. It measures propagation under a write load, from a client's view.
#
# Every figure is the median of its ROUNDS runs. redis-server gets repl-diskless-sync yes with no
# delay, so both sync diskless at once (its replica loads from disk, its default, as pocketkv's
# does). Not measured: networks other than loopback, persistence on, values other than 16 bytes.
# Knobs: KEYS=1000000 REQUESTS=1000000 PROBES=300 ROUNDS=3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

KEYS=${KEYS:-1000000}
REQUESTS=${REQUESTS:-1000000}
PROBES=${PROBES:-300}
ROUNDS=${ROUNDS:-3}
for tool in redis-server redis-cli redis-benchmark python3; do
    command -v "$tool" >/dev/null || { echo "bench-replication: $tool not found (bash ci/install-deps.sh)" >&2; exit 1; }
done
cargo build --release --quiet --bin pocketkv
BIN=target/release/pocketkv
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { # port
    for _ in $(seq 1 1000); do redis-cli -p "$1" PING >/dev/null 2>&1 && return 0; sleep 0.01; done
    echo "server on $1 did not start" >&2; exit 1
}
field() { redis-cli -p "$1" INFO "$2" | tr -d '\r' | sed -n "s/^$3://p"; }
start() { # kind port dir [replicaof-port]
    local kind=$1 port=$2 dir=$3 of=${4:-}
    mkdir -p "$dir"
    if [ "$kind" = pocketkv ]; then
        local extra=()
        [ -n "$of" ] && extra=(--replicaof "127.0.0.1 $of")
        "$BIN" --port "$port" --dir "$dir" --save-interval 0 "${extra[@]}" 2>"$dir/log" &
    else
        local extra=()
        [ -n "$of" ] && extra=(--replicaof 127.0.0.1 "$of")
        redis-server --port "$port" --dir "$dir" --save '' --appendonly no \
            --repl-diskless-sync yes --repl-diskless-sync-delay 0 "${extra[@]}" >"$dir/log" 2>&1 &
    fi
    PIDS+=($!)
    wait_up "$port"
}
now_ms() { date +%s%3N; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
hwm_kib() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }

echo "loading $KEYS keys once into a RESP file..."
python3 - "$KEYS" >"$WORK/load.resp" <<'PY'
import sys
n = int(sys.argv[1]); out = sys.stdout.buffer; v = b"v" * 16
for i in range(n):
    k = b"key:%012d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\n%s\r\n" % (len(k), k, v))
PY

sets_per_second() { # port
    redis-benchmark -p "$1" -t set -n "$REQUESTS" -r 1000000 -P 16 -c 50 -q 2>/dev/null |
        tr '\r' '\n' | sed -n 's/^SET: \([0-9.]*\) requests per second.*/\1/p' | tail -1
}

lag() { # primary replica
    python3 - "$1" "$2" "$PROBES" <<'PY'
import socket, sys, time
def conn(port):
    s = socket.create_connection(("127.0.0.1", int(port))); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); return s
def cmd(s, *args):
    s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    data = b""
    while not data.endswith(b"\r\n") or (data.startswith(b"$") and data.count(b"\r\n") < 2 and not data.startswith(b"$-1")):
        data += s.recv(65536)
    return data
p, r, probes = conn(sys.argv[1]), conn(sys.argv[2]), int(sys.argv[3])
lags = []
for i in range(probes):
    key = b"probe:%d" % i
    cmd(p, b"SET", key, b"1")
    start = time.perf_counter()
    while not cmd(r, b"GET", key).startswith(b"$1"):
        pass
    lags.append((time.perf_counter() - start) * 1000)
lags.sort()
print("%.2f %.2f" % (lags[len(lags) // 2], lags[int(len(lags) * 0.99) - 1]))
PY
}

declare -A R
for kind in pocketkv redis; do
    P=$(free_port); A=$(free_port); B=$(free_port)
    start "$kind" "$P" "$WORK/$kind-p"
    redis-cli -p "$P" --pipe <"$WORK/load.resp" >/dev/null
    sync_ms=""; sync_turn=""; sync_cpu=""; save_turn=""; save_cpu=""; hwm=""
    for round in $(seq 1 "$ROUNDS"); do
        [ "$kind" = pocketkv ] && redis-cli -p "$P" CONFIG RESETSTAT >/dev/null
        t0=$(now_ms)
        start "$kind" "$A" "$WORK/$kind-a$round" "$P"
        APID=${PIDS[-1]}
        until [ "$(field "$A" replication master_link_status)" = up ]; do sleep 0.01; done
        sync_ms+=" $(($(now_ms) - t0))"
        hwm+=" $(hwm_kib "$APID")"
        if [ "$kind" = pocketkv ]; then
            sync_turn+=" $(field "$P" stats longest_loop_turn_usec)"
            sync_cpu+=" $(field "$P" stats longest_loop_turn_cpu_usec)"
            redis-cli -p "$P" CONFIG RESETSTAT >/dev/null
            redis-cli -p "$P" BGSAVE >/dev/null
            while [ "$(field "$P" persistence rdb_bgsave_in_progress)" = 1 ]; do sleep 0.05; done
            save_turn+=" $(field "$P" stats longest_loop_turn_usec)"
            save_cpu+=" $(field "$P" stats longest_loop_turn_cpu_usec)"
        fi
        if [ "$round" -lt "$ROUNDS" ]; then
            kill "$APID"; wait "$APID" 2>/dev/null || true
            unset 'PIDS[-1]'
        fi
    done
    R[$kind.sync_ms]=$(median <<<"$sync_ms")
    R[$kind.hwm]=$(($(median <<<"$hwm") / 1024))
    if [ "$kind" = pocketkv ]; then
        R[$kind.sync_turn]="$(median <<<"$sync_turn") ($(median <<<"$sync_cpu"))"
        R[$kind.save_turn]="$(median <<<"$save_turn") ($(median <<<"$save_cpu"))"
    fi
    tp() { local all=""; for _ in $(seq 1 "$ROUNDS"); do all+=" $(sets_per_second "$P")"; done; median <<<"$all"; }
    redis-cli -p "$A" REPLICAOF NO ONE >/dev/null
    R[$kind.tp0]=$(tp)
    redis-cli -p "$A" REPLICAOF 127.0.0.1 "$P" >/dev/null
    until [ "$(field "$A" replication master_link_status)" = up ]; do sleep 0.01; done
    R[$kind.tp1]=$(tp)
    start "$kind" "$B" "$WORK/$kind-b" "$P"
    until [ "$(field "$B" replication master_link_status)" = up ]; do sleep 0.01; done
    R[$kind.tp2]=$(tp)
    redis-benchmark -p "$P" -t set -n $((REQUESTS * 10)) -r 1000000 -c 50 -q >/dev/null 2>&1 &
    LOAD=$!
    p50=""; p99=""
    for _ in $(seq 1 "$ROUNDS"); do
        read -r a b <<<"$(lag "$P" "$A")"
        p50+=" $a"; p99+=" $b"
    done
    R[$kind.lag]="$(median <<<"$p50") / $(median <<<"$p99")"
    kill "$LOAD" 2>/dev/null || true
    wait "$LOAD" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
done

ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
echo
echo "Replication, $(nproc) CPUs, $KEYS keys, loopback, medians of $ROUNDS runs (load average $(cut -d' ' -f1-3 /proc/loadavg)):"
printf '%-52s %16s %16s\n' "" pocketkv redis-server
printf '%-52s %16s %16s\n' "full sync of $KEYS keys (ms)" "${R[pocketkv.sync_ms]}" "${R[redis.sync_ms]}"
printf '%-52s %16s %16s\n' "replica peak RSS during the full sync (MiB)" "${R[pocketkv.hwm]}" "${R[redis.hwm]}"
printf '%-52s %16s %16s\n' "primary longest loop turn, full sync (us, CPU us)" "${R[pocketkv.sync_turn]}" "-"
printf '%-52s %16s %16s\n' "primary longest loop turn, BGSAVE (us, CPU us)" "${R[pocketkv.save_turn]}" "-"
for n in 0 1 2; do
    printf '%-52s %16s %16s\n' "SET/s -P 16 with $n replicas" "${R[pocketkv.tp$n]}" "${R[redis.tp$n]}"
done
for n in 1 2; do
    printf '%-52s %16s %16s\n' "  ratio to 0 replicas ($n)" "$(ratio "${R[pocketkv.tp$n]}" "${R[pocketkv.tp0]}")" "$(ratio "${R[redis.tp$n]}" "${R[redis.tp0]}")"
done
for n in 0 1 2; do
    printf '%-52s %16s\n' "  pocketkv / redis-server, $n replicas" "$(ratio "${R[pocketkv.tp$n]}" "${R[redis.tp$n]}")"
done
printf '%-52s %16s %16s\n' "lag under load p50 / p99 (ms)" "${R[pocketkv.lag]}" "${R[redis.lag]}"
