#!/usr/bin/env bash
# Real clients against the real binary: redis-cli (argument calls and a piped session),
# redis-benchmark (plain and pipelined, zero errors), nc speaking the text dialect, and a
# SIGTERM stop that exits 0 and leaves a snapshot a restart reads back.
#
# Every check compares exact bytes; a mismatch prints what was expected and what came back.
# Ends with `real-clients: N passed, M failed` and exits non-zero when M > 0.
#
# Needs redis-tools and netcat-openbsd (bash ci/install-deps.sh installs them).
# POCKETKV_BIN=path skips the build and tests that binary instead.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEADLINE=${REAL_CLIENTS_DEADLINE:-15} # seconds any one wait may take before it counts as a hang

die() {
    echo "real-clients: FATAL: $*" >&2
    exit 1
}

# --- tools -----------------------------------------------------------------------------------
for tool in redis-cli redis-benchmark timeout; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found; run 'bash ci/install-deps.sh' (installs redis-tools, netcat-openbsd)"
done
# Debian's OpenBSD netcat: -N (shutdown after stdin EOF) and -q (quit N seconds after stdin EOF).
if command -v nc.openbsd >/dev/null 2>&1; then
    NC=nc.openbsd
elif command -v nc >/dev/null 2>&1 && [[ $(nc -h 2>&1 || true) == *OpenBSD* ]]; then
    NC=nc
else
    die "OpenBSD netcat not found; run 'bash ci/install-deps.sh' (installs netcat-openbsd)"
fi

# --- binary ----------------------------------------------------------------------------------
if [[ -n ${POCKETKV_BIN:-} ]]; then
    BIN=$POCKETKV_BIN
else
    # Cargo rebuilds only when sources changed, so this is cheap after `cargo build --release`.
    cargo build --release --quiet || die "cargo build --release failed"
    BIN=$PWD/target/release/pocketkv
fi
[[ -x $BIN ]] || die "no executable at $BIN"

# --- bookkeeping -----------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pocketkv-real-clients.XXXXXX")
SERVER_PID=
PORT=
passed=0
failed=0

cleanup() {
    local status=$?
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if ((failed > 0 || status != 0)); then
        echo "real-clients: server logs kept in $WORK" >&2
        for log in "$WORK"/server*.log; do
            [[ -f $log ]] || continue
            echo "--- $log (last 20 lines)" >&2
            tail -n 20 "$log" >&2
        done
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pass() {
    passed=$((passed + 1))
    echo "ok    $1"
}

fail() {
    failed=$((failed + 1))
    echo "FAIL  $1"
    shift
    local line
    for line in "$@"; do
        echo "      $line"
    done
}

# check NAME EXPECTED ACTUAL: exact comparison, shown escaped on a mismatch.
check() {
    if [[ $2 == "$3" ]]; then
        pass "$1"
    else
        fail "$1" "expected: $(printf '%q' "$2")" "got:      $(printf '%q' "$3")"
    fi
}

# cli ARGS...: redis-cli's exact output (stdout+stderr, trailing newlines kept).
cli() {
    local rc=0
    timeout "$DEADLINE" redis-cli -p "$PORT" "$@" >"$WORK/cli-out" 2>&1 </dev/null || rc=$?
    if ((rc == 124)); then
        echo "<redis-cli timed out after ${DEADLINE}s: redis-cli $*>"
    fi
    cat "$WORK/cli-out"
}

# expect_cli NAME EXPECTED ARGS...: redis-cli ARGS must print exactly EXPECTED.
expect_cli() {
    local name=$1 expected=$2
    shift 2
    local got
    got=$(
        cli "$@"
        printf x
    )
    check "$name" "$expected" "${got%x}"
}

# running PID: true while the process has not exited (a zombie counts as exited).
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# start_server LOGNAME ARGS...: starts pocketkv in $WORK on a free port; sets SERVER_PID, PORT.
start_server() {
    local log="$WORK/$1"
    shift
    RUST_LOG=info "$BIN" --port 0 --dir "$WORK/data" "$@" </dev/null >"$log.out" 2>"$log" &
    SERVER_PID=$!
    local deadline=$((SECONDS + DEADLINE)) line
    PORT=
    while ((SECONDS < deadline)); do
        line=$(grep -m1 -o 'listening on [0-9.]*:[0-9]*' "$log" || true)
        if [[ -n $line ]]; then
            PORT=${line##*:}
            break
        fi
        if ! running "$SERVER_PID"; then
            wait "$SERVER_PID" || true
            SERVER_PID=
            cat "$log" >&2
            die "pocketkv exited during start-up (log above)"
        fi
        sleep 0.02 # polling interval, not a synchronisation point
    done
    [[ -n $PORT ]] || die "no 'listening on' line within ${DEADLINE}s; log: $(cat "$log")"
    # The line is written after bind(), so the port already accepts; one PING proves it answers.
    [[ $(cli ping) == PONG ]] || die "server on port $PORT does not answer PING"
    echo "pocketkv pid $SERVER_PID listening on 127.0.0.1:$PORT (data in $WORK/data)"
}

# stop_server SIGNAL: sends the signal, waits (with the deadline) and returns the exit status.
stop_server() {
    kill "-$1" "$SERVER_PID"
    local deadline=$((SECONDS + DEADLINE))
    while running "$SERVER_PID" && ((SECONDS < deadline)); do
        sleep 0.02 # polling interval
    done
    if running "$SERVER_PID"; then
        fail "server exits within ${DEADLINE}s of SIG$1" "still running; killing it"
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    local rc=0
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=
    return "$rc"
}

info_field() { # info_field SECTION FIELD -> value without the trailing \r
    cli info "$1" | tr -d '\r' | sed -n "s/^$2://p"
}

mkdir -p "$WORK/data"
echo "real-clients: $(timeout 5 "$BIN" --version 2>&1 | head -n1), $(redis-cli --version), $NC"
start_server server.log --save-interval 3600

# --- (a) redis-cli, one call per command --------------------------------------------------------
# Output is redis-cli's non-TTY (raw) form unless --no-raw asks for the typed form.
expect_cli "PING" $'PONG\n' ping
expect_cli "SET with a space in the value" $'OK\n' set greeting "hello world"
expect_cli "GET" $'hello world\n' get greeting
expect_cli "GET missing (raw: empty line)" $'\n' get nosuch
expect_cli "GET missing (typed: nil)" $'(nil)\n' --no-raw get nosuch
expect_cli "DEL one existing, one missing" $'1\n' del greeting nosuch
expect_cli "GET after DEL" $'(nil)\n' --no-raw get greeting
expect_cli "INCR new key (typed)" $'(integer) 1\n' --no-raw incr counter
expect_cli "INCR" $'2\n' incr counter
expect_cli "INCRBY" $'42\n' incrby counter 40
expect_cli "SET text for the INCR error" $'OK\n' set word abc
expect_cli "INCR on text" $'(error) ERR value is not an integer or out of range\n' --no-raw incr word
expect_cli "DEL word" $'1\n' del word
expect_cli "MSET" $'OK\n' mset a 1 b 2 c 3
expect_cli "MGET with a missing key (typed)" $'1) "1"\n2) "2"\n3) (nil)\n4) "3"\n' \
    --no-raw mget a b nosuch c
expect_cli "EXISTS counts" $'2\n' exists a b nosuch
expect_cli "DBSIZE" $'4\n' dbsize
got=$(cli keys '*' | sort)
check "KEYS *" $'a\nb\nc\ncounter' "$got"
got=$(cli keys '[ab]' | sort)
check "KEYS [ab]" $'a\nb' "$got"

# SCAN by hand, two keys a step, until the cursor comes back to 0.
cursor=0 steps=0 scanned=()
while :; do
    mapfile -t reply < <(cli scan "$cursor" COUNT 2)
    ((${#reply[@]} >= 1)) || break
    cursor=${reply[0]}
    # A page may hold no keys (redis-cli prints an empty line for the empty array).
    for key in "${reply[@]:1}"; do
        [[ -n $key ]] && scanned+=("$key")
    done
    steps=$((steps + 1))
    [[ $cursor == 0 || $steps -gt 100 ]] && break
done
got=$(printf '%s\n' "${scanned[@]}" | sort)
check "SCAN cursor loop returns every key once (cursor ended at $cursor)" $'a\nb\nc\ncounter' "$got"
got=$(cli --scan --pattern '*' | sort)
check "redis-cli --scan" $'a\nb\nc\ncounter' "$got"
got=$(cli --scan --pattern 'c*' | sort)
check "redis-cli --scan --pattern c*" $'c\ncounter' "$got"

# INFO server: fields that must be exact (the rest vary with time).
info=$(cli info server | tr -d '\r')
check "INFO server starts with its header" "# Server" "$(head -n1 <<<"$info")"
check "INFO server tcp_port" "$PORT" "$(sed -n 's/^tcp_port://p' <<<"$info")"
check "INFO server process_id" "$SERVER_PID" "$(sed -n 's/^process_id://p' <<<"$info")"
check "INFO server redis_version is 7.x" "7." "$(sed -n 's/^redis_version:\(..\).*/\1/p' <<<"$info")"
check "INFO server has only its own section" "" "$(grep -E '^# ' <<<"$info" | grep -v '^# Server$' || true)"

count=$(cli command count)
names=$(cli command list | wc -l)
if [[ $count =~ ^[0-9]+$ ]] && ((count > 20)) && ((count == names)); then
    pass "COMMAND COUNT ($count) matches COMMAND LIST"
else
    fail "COMMAND COUNT matches COMMAND LIST" "count: $(printf '%q' "$count")" "list: $names names"
fi
expect_cli "CONFIG GET save follows --save-interval" $'save\n3600 1\n' config get save
expect_cli "CONFIG GET appendonly" $'appendonly\nno\n' config get appendonly
expect_cli "wrong arity is Redis's error" \
    $'(error) ERR wrong number of arguments for \'get\' command\n' --no-raw get
expect_cli "unknown command is Redis's error" \
    $'(error) ERR unknown command \'nosuchcmd\', with args beginning with: \'x\' \n' \
    --no-raw nosuchcmd x
check "INFO counts the error replies so far" "3" "$(info_field stats total_error_replies)"

# One piped session: redis-cli reads the commands from stdin and sends each as RESP.
got=$(
    printf '%s\n' \
        'SET p1 "hello world"' \
        'GET p1' \
        'APPEND p1 "!"' \
        'STRLEN p1' \
        'GET p1' \
        'GETSET p1 new' \
        'MGET p1 nosuch' \
        'DEL p1' \
        'EXISTS p1' \
        'PING' |
        timeout "$DEADLINE" redis-cli -p "$PORT" 2>&1
    printf x
)
check "piped redis-cli session" \
    $'OK\nhello world\n12\n12\nhello world!\nhello world!\nnew\n\n1\n0\nPONG\n' "${got%x}"

expect_cli "CONFIG RESETSTAT" $'OK\n' config resetstat
check "INFO error count after RESETSTAT" "0" "$(info_field stats total_error_replies)"

# --- (b) redis-benchmark: plain and pipelined, no error replies ---------------------------------
# redis-benchmark 7 stops at the first error reply with "Error from server: ..." and exit 1.
bench() { # bench NAME ARGS...
    local name=$1 rc=0 out
    shift
    out=$(timeout 120 redis-benchmark -p "$PORT" "$@" 2>&1 </dev/null) || rc=$?
    # -q output redraws progress with \r; keep only the final text of each line.
    local final
    final=$(tr '\r' '\n' <<<"$out" | grep -E 'requests per second' || true)
    local errors
    errors=$(grep -iE 'error|protocol|WARN|unexpected' <<<"$out" | head -n 5 || true)
    local tests
    tests=$(grep -c 'requests per second' <<<"$final" || true)
    if ((rc == 0)) && [[ -z $errors ]] && ((tests == 4)); then
        pass "$name: $(sed -E 's/: ([0-9.]+) requests per second.*/ \1 rps/' <<<"$final" | tr '\n' ' ' | sed 's/ *$//')"
    else
        fail "$name" "exit code $rc, $tests of 4 tests reported" \
            "errors: ${errors:-none}" "output: $(tr '\r' '\n' <<<"$out" | tail -n 6 | tr '\n' '|')"
    fi
}
bench "redis-benchmark -c 20 (SET GET INCR MSET)" -n 20000 -c 20 -r 1000 -t set,get,incr,mset -q
bench "redis-benchmark -c 20 -P 16 (SET GET INCR MSET)" -n 20000 -c 20 -P 16 -r 1000 \
    -t set,get,incr,mset -q
check "INFO total_error_replies after the benchmarks" "0" "$(info_field stats total_error_replies)"
processed=$(info_field stats total_commands_processed)
if [[ $processed =~ ^[0-9]+$ ]] && ((processed >= 160000)); then
    pass "INFO total_commands_processed counts the benchmark ($processed)"
else
    fail "INFO total_commands_processed counts the benchmark" "got $(printf '%q' "$processed"), want >= 160000"
fi
# The benchmark's INCR runs all hit counter:__rand_int__ with -r: 2 x 20000 increments in all.
incrs=0
for key in $(cli --scan --pattern 'counter:*'); do
    incrs=$((incrs + $(cli get "$key")))
done
check "every benchmark INCR was applied" "40000" "$incrs"
# PING_INLINE sends PING as a text line: under inline-reply-format resp it gets Redis's +PONG.
expect_cli "CONFIG SET inline-reply-format resp" $'OK\n' config set inline-reply-format resp
rc=0
inline_out=$(timeout 120 redis-benchmark -p "$PORT" -n 20000 -c 20 -t ping_inline -q 2>&1 </dev/null) || rc=$?
inline_final=$(tr '\r' '\n' <<<"$inline_out" | grep -E '^PING_INLINE: .*requests per second' || true)
if ((rc == 0)) && [[ -n $inline_final ]] && ! grep -qiE 'error|protocol' <<<"$inline_out"; then
    pass "redis-benchmark -t ping_inline with inline-reply-format resp: $inline_final"
else
    fail "redis-benchmark -t ping_inline with inline-reply-format resp" "exit code $rc" \
        "output: $(tr '\r' '\n' <<<"$inline_out" | tail -n 4 | tr '\n' '|')"
fi
expect_cli "CONFIG SET inline-reply-format human" $'OK\n' config set inline-reply-format human

# --- (c) nc speaking the text dialect -----------------------------------------------------------
# OpenBSD nc: -q3 quits three seconds after stdin ends (the server keeps the connection open;
# a second, as users type it, is a bound a busy machine's debug build could miss);
# -N half-closes after stdin ends, and the server must flush every reply, then close.
text=$'PUT name Alice\nGET name\nDEL name\nGET name\n'
want=$'OK\nAlice\n(integer) 1\n(nil)\n'
got=$(
    printf '%s' "$text" | timeout "$DEADLINE" "$NC" -q3 127.0.0.1 "$PORT"
    printf x
)
check "nc -q3 text dialect PUT/GET/DEL/GET" "$want" "${got%x}"
got=$(
    printf '%s' "$text" | timeout "$DEADLINE" "$NC" -N 127.0.0.1 "$PORT"
    printf x
)
check "nc -N text dialect (half-close: replies flushed, then closed)" "$want" "${got%x}"
got=$(
    printf 'PUT msg "two words"\r\nGET msg\r\nGET nosuch\r\nINCR n1\r\nDEL msg n1\r\n' |
        timeout "$DEADLINE" "$NC" -N 127.0.0.1 "$PORT"
    printf x
)
# Text replies quote a value that would not paste back as one argument, as redis-cli does.
check "nc text dialect: quotes, CRLF, integers" \
    $'OK\n"two words"\n(nil)\n(integer) 1\n(integer) 2\n' "${got%x}"

# --- (d) SIGTERM: exit 0, snapshot on disk, and a restart reads it back -------------------------
expect_cli "SET a key to survive the restart" $'OK\n' set survivor "still here"
keys_before=$(cli dbsize)
rc=0
stop_server TERM || rc=$?
check "SIGTERM exit status" "0" "$rc"
if [[ -s $WORK/data/data.json ]]; then
    pass "snapshot file exists after SIGTERM ($(wc -c <"$WORK/data/data.json") bytes)"
else
    fail "snapshot file exists after SIGTERM" "no non-empty $WORK/data/data.json"
fi
start_server server-restart.log --save-interval 0
check "restart loads every key" "$keys_before" "$(cli dbsize)"
expect_cli "restart keeps values" $'still here\n' get survivor
expect_cli "restart keeps counters" $'42\n' get counter
rc=0
stop_server TERM || rc=$?
check "second SIGTERM exit status" "0" "$rc"

# --- (e) a password: redis-cli authenticating (REDISCLI_AUTH), in RESP2 and in RESP3 (-3) --------
# redis-cli -3 opens with HELLO 3 AUTH default <password>, as RESP3 clients (lettuce, redis-py
# with protocol=3) do.
export REDISCLI_AUTH="s3cret pw"
start_server server-auth.log --save-interval 0 --requirepass "s3cret pw"
noauth_cli() { (
    unset REDISCLI_AUTH
    cli "$@"
); }
expect_cli "password: SET" $'OK\n' set k v
expect_cli "RESP3: GET" $'v\n' -3 get k
expect_cli "RESP3: GET missing (typed: a RESP3 null)" $'(nil)\n' -3 --no-raw get nosuch
expect_cli "RESP3: CONFIG GET is a map (typed)" $'1# "timeout" => "0"\n' -3 --no-raw config get timeout
got=$(
    cli -3 --no-raw hello 3 | head -n3
    printf x
)
check "RESP3: HELLO names protocol 3 (typed)" \
    $'1# "server" => "redis"\n2# "version" => "7.0.0"\n3# "proto" => (integer) 3\n' "${got%x}"
got=$(
    noauth_cli get k
    printf x
)
# redis-cli (non-TTY) follows an error with an empty line.
check "no password: NOAUTH" $'NOAUTH Authentication required.\n\n' "${got%x}"
got=$(
    noauth_cli -a wrong --no-auth-warning get k 2>&1 | grep -c WRONGPASS
    printf x
)
check "wrong password: WRONGPASS" $'1\n' "${got%x}"
rc=0
stop_server TERM || rc=$?
check "SIGTERM exit status (password)" "0" "$rc"
unset REDISCLI_AUTH

echo "real-clients: $passed passed, $failed failed"
((failed == 0))
