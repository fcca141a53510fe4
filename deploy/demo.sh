#!/usr/bin/env bash
# Local demos of the deploy/ files, on loopback ports, in a temporary directory:
#
#   deploy/demo.sh shards     three pocketkv shards behind twemproxy (deploy/nutcracker.yml);
#                             `make demo-shards`
#   deploy/demo.sh where KEY  which shard of the running demo holds KEY
#   deploy/demo.sh stop       stops the running demo by pid and removes its directory;
#                             `make demo-stop`
#   deploy/demo.sh nutcracker-config LISTEN_PORT SERVER_PORT...
#                             prints deploy/nutcracker.yml for loopback ports (benches/shards.sh)
#
# A demo runs in the foreground until Ctrl-C (or `make demo-stop` from another terminal). Every
# process it starts goes through `launch`, which records its pid in the demo's state file, so
# `stop` and Ctrl-C stop exactly those processes and nothing else. One demo at a time: the
# state file's place is fixed (${TMPDIR:-/tmp}/pocketkv-demo.state). A new demo adds a
# `start_NAME` function and a line in the `case` at the bottom.
#
# The server binary is target/release/pocketkv (`make demo-shards` builds it), or POCKETKV_BIN.
# The shards read deploy/pocketkv.conf when it exists, with the port, address, data directory
# and log file overridden for the demo.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

STATE=${TMPDIR:-/tmp}/pocketkv-demo.state
POCKETKV_BIN=${POCKETKV_BIN:-target/release/pocketkv}
DEADLINE=15 # seconds a process may take to start listening

die() {
    echo "demo: $*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found: run ci/install-deps.sh (Debian package $2)"
}

# True while nothing accepts connections on 127.0.0.1:$1.
port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The first port from $1 upward that nothing listens on.
free_port_from() {
    local port=$1
    while ! port_free "$port"; do
        port=$((port + 1))
    done
    echo "$port"
}

# launch NAME LOG COMMAND...: starts COMMAND in the background with its output in LOG and records
# "NAME PID" in the state file.
launch() {
    local name=$1 log=$2
    shift 2
    "$@" >"$log" 2>&1 &
    echo "pid_$name=$!" >>"$STATE"
    echo "$!"
}

# wait_for_port PID PORT LOG: until something listens on PORT; fails if PID exits first.
wait_for_port() {
    local pid=$1 port=$2 log=$3 start=$SECONDS
    while port_free "$port"; do
        kill -0 "$pid" 2>/dev/null || die "process $pid exited; its log ($log):$(printf '\n%s' "$(cat "$log")")"
        ((SECONDS - start < DEADLINE)) || die "nothing listens on port $port after ${DEADLINE}s (log: $log)"
        sleep 0.1
    done
}

# start_pocketkv NAME DIR: a pocketkv on a free loopback port; prints the port.
start_pocketkv() {
    local name=$1 dir=$2 log=$2.log pid line start=$SECONDS
    mkdir -p "$dir"
    local args=()
    [[ -f deploy/pocketkv.conf ]] && args+=(deploy/pocketkv.conf)
    args+=(--port 0 --bind 127.0.0.1 --dir "$dir" --logfile "")
    pid=$(launch "$name" "$log" "$POCKETKV_BIN" "${args[@]}")
    # The start-up line names the port the kernel picked.
    until line=$(grep -m1 -o 'listening on 127\.0\.0\.1:[0-9]*' "$log" 2>/dev/null); do
        kill -0 "$pid" 2>/dev/null || die "$name exited; its log ($log):$(printf '\n%s' "$(cat "$log")")"
        ((SECONDS - start < DEADLINE)) || die "$name did not start within ${DEADLINE}s (log: $log)"
        sleep 0.1
    done
    echo "${line##*:}"
}

# deploy/nutcracker.yml with the listen address and the servers' addresses replaced (names,
# weights and every setting kept): nutcracker_config LISTEN_PORT SERVER_PORT...
nutcracker_config() {
    local listen=$1
    shift
    awk -v listen="$listen" -v servers="$*" '
        BEGIN { count = split(servers, port, " ") }
        /^[[:space:]]*listen:/ { sub(/listen:.*/, "listen: 127.0.0.1:" listen); print; next }
        /^[[:space:]]*- [^ ]+:[0-9]+:[0-9]+ [^ ]+$/ {
            n++
            if (n > count) { bad = 1; exit 1 }
            indent = $0; sub(/-.*/, "", indent)
            weight = $2; sub(/.*:/, "", weight)
            print indent "- 127.0.0.1:" port[n] ":" weight " " $3
            next
        }
        { print }
        END { if (bad || n != count) { print "demo: " n " servers in deploy/nutcracker.yml, not " count > "/dev/stderr"; exit 1 } }
    ' deploy/nutcracker.yml
}

start_shards() {
    need redis-cli redis-tools
    need nutcracker nutcracker
    local dir=$1 ports=() i
    for i in 1 2 3; do
        ports+=("$(start_pocketkv "shard$i" "$dir/shard$i")")
    done
    echo "shard_ports=(${ports[*]})" >>"$STATE"

    local proxy stats pid
    proxy=$(free_port_from 22121)
    stats=$(free_port_from 22222)
    [[ $stats != "$proxy" ]] || stats=$(free_port_from $((proxy + 1)))
    nutcracker_config "$proxy" "${ports[@]}" >"$dir/nutcracker.yml"
    nutcracker -t -c "$dir/nutcracker.yml" >/dev/null 2>&1 || die "nutcracker -t refused $dir/nutcracker.yml"
    pid=$(launch nutcracker "$dir/nutcracker.stderr" nutcracker -c "$dir/nutcracker.yml" \
        -s "$stats" -a 127.0.0.1 -o "$dir/nutcracker.log")
    wait_for_port "$pid" "$proxy" "$dir/nutcracker.log"
    echo "proxy_port=$proxy" >>"$STATE"

    cat <<EOF

pocketkv demo: three shards behind twemproxy, files in $dir
  shard1     127.0.0.1:${ports[0]}   (log $dir/shard1.log)
  shard2     127.0.0.1:${ports[1]}   (log $dir/shard2.log)
  shard3     127.0.0.1:${ports[2]}   (log $dir/shard3.log)
  twemproxy  127.0.0.1:$proxy   (config $dir/nutcracker.yml, stats: nc 127.0.0.1 $stats)

Try, in another terminal:
  redis-cli -p $proxy set user:1 alice
  redis-cli -p $proxy get user:1
  bash deploy/demo.sh where user:1           # which shard holds it
  redis-cli -p $proxy mset a 1 b 2 c 3 d 4   # one MSET per shard, joined into one +OK
  redis-cli -p $proxy mget a b c d
  for p in ${ports[*]}; do redis-cli -p \$p dbsize; done

Watch auto_eject_hosts: stop a shard, and after a few errors its keys read as missing:
  kill \$(grep pid_shard2 $STATE | cut -d= -f2)
  redis-cli -p $proxy get user:1             # nil if user:1 was on shard2
Stop everything: Ctrl-C here, or make demo-stop
EOF
}

# Stops the processes the state file lists, by pid, then removes the demo's directory. Quiet
# when there is no demo and $1 is "quiet" (a demo that `make demo-stop` already stopped).
stop() {
    [[ -f $STATE ]] || {
        [[ ${1:-} == quiet ]] || echo "demo: no demo is running"
        return 0
    }
    local dir="" line name pid
    while IFS= read -r line; do
        case $line in
        dir=*) dir=${line#dir=} ;;
        pid_*=*)
            name=${line%%=*}
            pid=${line#*=}
            # Only a process the demo started: its pid, still running our program.
            if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$dir"; then
                kill "$pid" 2>/dev/null && echo "demo: stopped ${name#pid_} (pid $pid)"
            fi
            ;;
        esac
    done <"$STATE"
    [[ -n $dir && -d $dir ]] && rm -rf "$dir"
    rm -f "$STATE"
}

where() {
    [[ -f $STATE ]] || die "no demo is running (make demo-shards)"
    local key=$1 shard_ports=() i found=0
    # shellcheck disable=SC1090
    source <(grep '^shard_ports=' "$STATE")
    for i in "${!shard_ports[@]}"; do
        if [[ $(redis-cli -p "${shard_ports[$i]}" exists "$key" 2>/dev/null) == 1 ]]; then
            echo "$key is on shard$((i + 1)) (127.0.0.1:${shard_ports[$i]})"
            found=1
        fi
    done
    ((found)) || echo "$key is on no shard"
}

run() {
    local what=$1
    if [[ -f $STATE ]]; then
        die "a demo is already running ($STATE): make demo-stop"
    fi
    [[ -x $POCKETKV_BIN ]] || die "$POCKETKV_BIN not found: cargo build --release (or set POCKETKV_BIN)"
    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/pocketkv-demo.XXXXXX")
    echo "dir=$dir" >"$STATE"
    # Ctrl-C, make demo-stop (which ends the processes we wait for) or a failed start: stop all.
    trap 'stop quiet' EXIT
    trap 'exit 130' INT TERM
    "start_$what" "$dir"
    # Until the proxy ends (demo-stop) or Ctrl-C; a killed shard is part of the demo.
    local proxy_pid
    proxy_pid=$(grep '^pid_nutcracker=' "$STATE" | cut -d= -f2)
    while kill -0 "$proxy_pid" 2>/dev/null; do
        sleep 1
    done
}

case ${1:-} in
shards) run shards ;;
stop) stop ;;
nutcracker-config)
    [[ $# -ge 3 ]] || die "usage: deploy/demo.sh nutcracker-config LISTEN_PORT SERVER_PORT..."
    shift
    nutcracker_config "$@"
    ;;
where)
    [[ $# -eq 2 ]] || die "usage: deploy/demo.sh where KEY"
    where "$2"
    ;;
*)
    echo "usage: deploy/demo.sh shards | where KEY | stop | nutcracker-config LISTEN_PORT SERVER_PORT..." >&2
    exit 2
    ;;
esac
