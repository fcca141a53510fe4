#!/usr/bin/env bash
# Local demos of the deploy/ files, on loopback ports, in a temporary directory:
#
#   deploy/demo.sh shards     three pocketkv shards behind twemproxy (deploy/nutcracker.yml);
#                             `make demo-shards`
#   deploy/demo.sh ha         a primary and two replicas (deploy/pocketkv.conf, deploy/replica.conf)
#                             watched by three Redis Sentinels (deploy/sentinel.conf); `make demo-ha`
#   deploy/demo.sh revive NAME
#                             starts a stopped server of the running demo again, as it was started
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
# "pid_NAME=PID" in the state file, and the log and command as "cmd_NAME=..." (for `revive`).
launch() {
    local name=$1 log=$2
    shift 2
    "$@" >>"$log" 2>&1 &
    echo "pid_$name=$!" >>"$STATE"
    echo "cmd_$name=$(printf '%q ' "$log" "$@")" >>"$STATE"
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

# deploy/sentinel.conf for a demo sentinel: its port, working directory and log file, the
# primary's loopback port, and the short timings of the tests (every comment kept).
sentinel_config() {
    local port=$1 dir=$2 primary=$3
    awk -v port="$port" -v dir="$dir" -v primary="$primary" '
        /^port / { print "port " port; next }
        /^dir / { print "dir " dir; print "logfile " dir "/sentinel.log"; next }
        /^sentinel monitor / { $4 = "127.0.0.1"; $5 = primary; print; next }
        /^sentinel down-after-milliseconds / { $4 = 2000; print; next }
        /^sentinel failover-timeout / { $4 = 10000; print; next }
        { print }
    ' deploy/sentinel.conf
}

# A copy of the config file $1 for a demo server on loopback port $2 with its data in $3 (and
# `replicaof 127.0.0.1 $4` when given): each server reads, and CONFIG REWRITE writes, its own
# file, as on a real deployment. Every other line is kept.
server_config() {
    local conf=$1 port=$2 dir=$3 primary=${4:-}
    awk -v port="$port" -v dir="$dir" -v primary="$primary" '
        /^port / { print "port " port; next }
        /^bind / { print "bind 127.0.0.1"; next }
        /^dir / { print "dir " dir; next }
        /^logfile / { print "logfile \"\""; next }
        /^replicaof / { if (primary != "") print "replicaof 127.0.0.1 " primary; next }
        { print }
    ' "$conf"
}

# start_server NAME CONF PORT [PRIMARY]: a pocketkv from a copy of CONF in the demo directory.
start_server() {
    local name=$1 conf=$2 port=$3 primary=${4:-} dir=$DEMO_DIR/$1 pid
    mkdir -p "$dir"
    server_config "$conf" "$port" "$dir" "$primary" >"$dir/${conf##*/}"
    pid=$(launch "$name" "$dir.log" "$POCKETKV_BIN" "$dir/${conf##*/}")
    wait_for_port "$pid" "$port" "$dir.log"
}

start_ha() {
    need redis-cli redis-tools
    need redis-sentinel redis-sentinel
    DEMO_DIR=$1
    local dir=$1 primary ports=() i
    primary=$(free_port_from 12345)
    start_server primary deploy/pocketkv.conf "$primary"
    local port=$((primary + 1))
    for i in 1 2; do
        port=$(free_port_from "$port")
        start_server "replica$i" deploy/replica.conf "$port" "$primary"
        ports+=("$port")
        port=$((port + 1))
    done
    # Sentinel learns the replicas from the primary's INFO: start it once both are online.
    local start=$SECONDS
    until [[ $(redis-cli -p "$primary" info replication | grep -c 'state=online') == 2 ]]; do
        ((SECONDS - start < DEADLINE)) || die "the replicas did not come online within ${DEADLINE}s"
        sleep 0.1
    done
    local sentinels=() pid
    port=26379
    for i in 1 2 3; do
        port=$(free_port_from "$port")
        mkdir -p "$dir/sentinel$i"
        sentinel_config "$port" "$dir/sentinel$i" "$primary" >"$dir/sentinel$i/sentinel.conf"
        pid=$(launch "sentinel$i" "$dir/sentinel$i/stdout.log" redis-sentinel "$dir/sentinel$i/sentinel.conf")
        wait_for_port "$pid" "$port" "$dir/sentinel$i/sentinel.log"
        sentinels+=("$port")
        port=$((port + 1))
    done
    echo "watch=sentinel1" >>"$STATE"

    cat <<EOF

pocketkv demo: a primary, two replicas and three Redis Sentinels (quorum 2,
down-after-milliseconds 2000), files in $dir
  primary    127.0.0.1:$primary   (log $dir/primary.log, config $dir/primary/pocketkv.conf)
  replica1   127.0.0.1:${ports[0]}   (log $dir/replica1.log, config $dir/replica1/replica.conf)
  replica2   127.0.0.1:${ports[1]}   (log $dir/replica2.log, config $dir/replica2/replica.conf)
  sentinels  127.0.0.1:${sentinels[0]} ${sentinels[1]} ${sentinels[2]}   (logs $dir/sentinel*/sentinel.log)

Try, in other terminals:
  tail -f $dir/sentinel1/sentinel.log                 # what the sentinels see and do
  redis-cli -p ${sentinels[0]} sentinel get-master-addr-by-name mymaster
  redis-cli -p ${sentinels[0]} sentinel replicas mymaster
  redis-cli -p $primary set greeting hello

Kill the primary and watch a replica take over (+sdown, +odown, +switch-master: ~3 s):
  kill -9 \$(grep pid_primary= $STATE | cut -d= -f2)
  redis-cli -p ${sentinels[0]} sentinel get-master-addr-by-name mymaster
  redis-cli -p <the new primary's port> get greeting
Start the old primary again: Sentinel turns it into a replica of the new one (~10 s):
  bash deploy/demo.sh revive primary
  redis-cli -p $primary info replication
Or switch by hand, with every server up:
  redis-cli -p ${sentinels[0]} sentinel failover mymaster
Stop everything: Ctrl-C here, or make demo-stop
EOF
}

# Starts NAME again with the command it was first started with (after a kill, to watch
# Sentinel turn an old primary into a replica).
revive() {
    [[ -f $STATE ]] || die "no demo is running"
    local name=$1 line pid
    line=$(grep "^cmd_$name=" "$STATE" | head -1) || die "the demo has no process named $name"
    pid=$(grep "^pid_$name=" "$STATE" | tail -1 | cut -d= -f2)
    if kill -0 "$pid" 2>/dev/null; then
        die "$name is running (pid $pid)"
    fi
    eval "set -- ${line#*=}"
    pid=$(launch "$name" "$@")
    echo "demo: started $name again (pid $pid)"
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
            # Only a process the demo started: its pid, still running our program (its command
            # line names the demo's directory; a sentinel renames itself, but works in it).
            if kill -0 "$pid" 2>/dev/null && { tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$dir" ||
                [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$dir"/* ]]; }; then
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
    # Until the watched process (the proxy, the first sentinel) ends (demo-stop) or Ctrl-C; a
    # killed server is part of the demo.
    local watched pid
    watched=$(grep '^watch=' "$STATE" | cut -d= -f2)
    pid=$(grep "^pid_${watched:-nutcracker}=" "$STATE" | cut -d= -f2)
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
    done
}

case ${1:-} in
shards) run shards ;;
ha) run ha ;;
revive)
    [[ $# -eq 2 ]] || die "usage: deploy/demo.sh revive NAME"
    revive "$2"
    ;;
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
    echo "usage: deploy/demo.sh shards | ha | revive NAME | where KEY | stop | nutcracker-config LISTEN_PORT SERVER_PORT..." >&2
    exit 2
    ;;
esac
