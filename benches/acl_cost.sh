#!/usr/bin/env bash
# `make bench-acl`: what permission checks cost per command, as instructions the server executes
# under valgrind's callgrind (a count that does not move with the load of a shared machine).
#
# For each case a fresh server runs under callgrind with no persistence; redis-benchmark sends
# `-n 200000 -P 16 -c 4 -r 10000 -t get` (then `set`); the server is stopped and its total
# instruction count, less that of a server that started and stopped having served nothing, over
# 200,000, is the figure. Cases:
#   default     the default user, allowed everything
#   restricted  the default user restricted to `~key:* +@read +@write` (redis-benchmark's keys
#               are key:NNNNNNNNNNNN, so every command is allowed after a full check)
# Not measured: wall time, other commands, users with many patterns or selectors.
#
# Knobs (environment): BIN=target/release/pocketkv (built when it is the default) N=200000.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${N:-200000}
BIN=${BIN:-}
for tool in valgrind redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "bench-acl: $tool not found (apt-get install valgrind redis-tools)" >&2
        exit 1
    }
done
if [ -z "$BIN" ]; then
    cargo build --release --quiet --bin pocketkv
    BIN=target/release/pocketkv
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# run NAME TEST [rules]: instructions of one server's life (TEST empty: it serves nothing).
run() {
    local name=$1 test=$2 rules=${3:-} port out pid deadline
    port=$(free_port)
    out="$work/$name.out"
    local args=(--port "$port" --save-interval 0 --dir "$work" --dbfilename "$name.json")
    [ -n "$rules" ] && args+=(--user "default on nopass $rules")
    valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" "${args[@]}" \
        >"$work/$name.log" 2>&1 &
    pid=$!
    deadline=$((SECONDS + 60))
    # Any reply will do (a restricted user gets NOPERM): the server is up.
    until redis-cli -p "$port" PING >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || {
            echo "bench-acl: server did not start" >&2
            cat "$work/$name.log" >&2
            exit 1
        }
        sleep 0.2
    done
    if [ -n "$test" ]; then
        redis-benchmark -p "$port" -n "$N" -P 16 -c 4 -r 10000 -t "$test" -q >/dev/null 2>&1
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

idle=$(run idle "")
printf '%-11s %8s %8s\n' case GET SET
for case in default restricted; do
    rules=""
    [ "$case" = restricted ] && rules="~key:* +@read +@write"
    row="$case"
    for test in get set; do
        total=$(run "$case-$test" "$test" "$rules")
        row="$row $(((total - idle) / N))"
    done
    printf '%-11s %8s %8s\n' $row
done
