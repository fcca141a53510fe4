#!/usr/bin/env bash
# Installs the outside programs the tests and benchmarks use, when they are missing:
#   redis-tools       redis-cli, redis-benchmark  (ci/real-clients.sh, benches/compare.sh)
#   redis-server      the reference server        (compatibility test, benches/compare.sh)
#   netcat-openbsd    nc for the text dialect     (ci/real-clients.sh)
#   qemu-user-static  qemu-aarch64-static         (.ci/run: integration tests of the arm64 build)
#   nutcracker        twemproxy                   (tests/twemproxy.rs, make demo-shards, make bench-shards)
#   python3-redis     redis-py for python3        (tests/strings_extra.rs: the script-free lock;
#                                                 tests/pubsub_clients.rs: pubsub())
#
# Idempotent and quiet when everything is present. As root it runs `apt-get update` once and
# `apt-get install -y --no-install-recommends` for only the missing packages; as anyone else it
# prints the command to run and exits 1.
set -euo pipefail

missing=()

have() { command -v "$1" >/dev/null 2>&1; }

# True when an OpenBSD netcat is reachable: Debian installs it as nc.openbsd, and `nc` may point
# at another netcat (traditional, ncat, busybox) whose -N/-q flags differ.
have_openbsd_nc() {
    have nc.openbsd && return 0
    have nc || return 1
    local help
    help=$(nc -h 2>&1 || true)
    [[ $help == *OpenBSD* ]]
}

if ! have redis-cli || ! have redis-benchmark; then
    missing+=(redis-tools)
fi
if ! have redis-server; then
    missing+=(redis-server)
fi
if ! have_openbsd_nc; then
    missing+=(netcat-openbsd)
fi
if ! have qemu-aarch64-static; then
    missing+=(qemu-user-static)
fi
if ! have nutcracker; then
    missing+=(nutcracker)
fi
# The tests run the Debian interpreter when there is one (a pyenv python3 may lack redis-py).
if ! /usr/bin/python3 -c 'import redis' 2>/dev/null && ! python3 -c 'import redis' 2>/dev/null; then
    missing+=(python3-redis)
fi

if ((${#missing[@]} == 0)); then
    exit 0
fi

if ! have apt-get; then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: no apt-get on this machine; install the Debian packages above (or their" \
        "equivalents providing redis-cli, redis-benchmark, redis-server, OpenBSD nc," \
        "qemu-aarch64-static and nutcracker) by hand" >&2
    exit 1
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: run as root, or:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive

# Keep the redis-server package from starting a system-wide daemon on port 6379 while it
# installs: tests start their own servers on free ports. Only done when no policy is in place,
# and the temporary policy is removed again whatever happens.
policy=/usr/sbin/policy-rc.d
made_policy=0
cleanup() {
    if ((made_policy)); then
        rm -f "$policy"
    fi
}
trap cleanup EXIT
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary, from ci/install-deps.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
fi

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Check the result rather than trusting apt's exit code alone.
still=()
{ have redis-cli && have redis-benchmark; } || still+=(redis-tools)
have redis-server || still+=(redis-server)
have_openbsd_nc || still+=(netcat-openbsd)
have qemu-aarch64-static || still+=(qemu-user-static)
have nutcracker || still+=(nutcracker)
if ((${#still[@]} > 0)); then
    echo "install-deps: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
echo "install-deps: installed ${missing[*]}" >&2
