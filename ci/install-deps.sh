#!/usr/bin/env bash
# Installs the outside programs the tests and benchmarks use, when they are missing:
#   redis-tools       redis-cli, redis-benchmark  (ci/real-clients.sh, benches/compare.sh)
#   redis-server      the reference server        (differential tests, benches/compare.sh)
#   redis-sentinel    Sentinel                     (tests/acl_sentinel.rs)
#   netcat-openbsd    nc for the text dialect     (ci/real-clients.sh)
#   qemu-user-static  qemu-aarch64-static, qemu-arm-static  (.ci/run: integration tests of the
#                     arm64 and armv7 builds)
#   musl-dev:armhf, libgcc-N-dev-armhf-cross  musl's libc.a and start files for 32-bit ARM, gcc's
#                     crtbegin/crtend and unwinder (make release-armv7; N is the host gcc's major
#                     version). musl-dev:armhf is a foreign-architecture package: armhf is added
#                     to dpkg's architectures first.
#   nutcracker        twemproxy                   (tests/twemproxy.rs, make demo-shards)
#   python3-redis     redis-py 4.3.4 for python3  (the redis-py tests: transactions, pub/sub,
#                     the script-free lock, the Sentinel-aware client of tests/sentinel.rs)
#   python3-pip       pip, to install redis-py 8.2.0 from PyPI beside it (below), unless it is
#                     there already
#   redis-sentinel    Redis Sentinel              (tests/sentinel.rs, make demo-ha)
#   chromium, chromium-driver  headless Chromium and its WebDriver server (tests/console.rs:
#                     the web console in a real browser)
#
# Then, from PyPI, redis-py 8.2.0 (and async-timeout, its dependency on Python before 3.11.3),
# pinned by version and sha256 in ci/redis-py-8.txt, into $REDIS_PY8_DIR (default
# $HOME/.cache/pocketkv/redis-py-8.2.0) for Debian's /usr/bin/python3: the redis-py tests run
# with both libraries (tests/common/python.rs). pip refuses a file whose hash differs.
#
# Idempotent and quiet when everything is present. As root it runs `apt-get update` once and
# `apt-get install -y --no-install-recommends` for only the missing packages; as anyone else it
# prints the command to run and exits 1.
set -euo pipefail

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

# The armv7 build's C runtime (see the Makefile's release-armv7).
gcc_major=$( (gcc -dumpversion 2>/dev/null || echo 12) | cut -d. -f1)
have_armv7_libc() { [[ -f /usr/lib/arm-linux-musleabihf/libc.a ]]; }
have_armv7_gcc() { compgen -G '/usr/lib/gcc-cross/arm-linux-gnueabihf/*/libgcc_eh.a' >/dev/null; }

# The tests run the Debian interpreter when there is one (a pyenv python3 may lack redis-py).
have_redis_py() { /usr/bin/python3 -c 'import redis' 2>/dev/null || python3 -c 'import redis' 2>/dev/null; }
have_debian_pip() { /usr/bin/python3 -m pip --version >/dev/null 2>&1; }

# redis-py 8.2.0 lives outside the system's site-packages: Debian's python3-redis stays the
# default, and tests/common/python.rs puts this directory first on PYTHONPATH for the 8.2.0 runs.
# Keep the default in step with tests/common/python.rs.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
redis_py8_dir=${REDIS_PY8_DIR:-${HOME:-/root}/.cache/pocketkv/redis-py-8.2.0}
have_redis_py8() {
    [[ -d $redis_py8_dir ]] &&
        PYTHONPATH=$redis_py8_dir PYTHONNOUSERSITE=1 /usr/bin/python3 -c \
            'import redis, sys; sys.exit(redis.__version__ != "8.2.0")' 2>/dev/null
}

# Installs redis-py 8.2.0 with pip's hash checking into a fresh directory, then moves it into
# place, so an interrupted install never leaves a half-filled directory that looks installed.
install_redis_py8() {
    have_redis_py8 && return 0
    local staging=$redis_py8_dir.partial
    rm -rf "$staging"
    mkdir -p "$(dirname "$redis_py8_dir")"
    echo "install-deps: installing redis-py 8.2.0 into $redis_py8_dir" >&2
    /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --no-cache-dir \
        --root-user-action=ignore --require-hashes --only-binary :all: --no-compile \
        --target "$staging" -r "$here/redis-py-8.txt" >&2
    rm -rf "$redis_py8_dir"
    mv "$staging" "$redis_py8_dir"
    if ! have_redis_py8; then
        echo "install-deps: redis-py 8.2.0 does not import from $redis_py8_dir" >&2
        return 1
    fi
}

# Each package and the check that says it is there; the same checks run again after installing.
PACKAGES=(
    "redis-tools|have redis-cli && have redis-benchmark"
    "redis-server|have redis-server"
    "redis-sentinel|have redis-sentinel"
    "netcat-openbsd|have_openbsd_nc"
    "qemu-user-static|have qemu-aarch64-static && have qemu-arm-static"
    "musl-dev:armhf|have_armv7_libc"
    "libgcc-$gcc_major-dev-armhf-cross|have_armv7_gcc"
    "nutcracker|have nutcracker"
    "python3-redis|have_redis_py"
    "python3-pip|have_redis_py8 || have_debian_pip"
    "redis-sentinel|have redis-sentinel"
    "chromium|have chromium"
    "chromium-driver|have chromedriver"
)

# Prints the packages whose check fails, one per line.
missing_packages() {
    local entry
    for entry in "${PACKAGES[@]}"; do
        eval "${entry#*|}" || echo "${entry%%|*}"
    done
}

mapfile -t missing < <(missing_packages)
if ((${#missing[@]} == 0)); then
    install_redis_py8
    exit 0
fi

if ! have apt-get; then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: no apt-get on this machine; install the Debian packages above (or their" \
        "equivalents) by hand" >&2
    exit 1
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: run as root, or:" >&2
    echo "    sudo dpkg --add-architecture armhf && sudo apt-get update &&" \
        "sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
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

if [[ " ${missing[*]} " == *:armhf* ]] && ! dpkg --print-foreign-architectures | grep -qx armhf; then
    dpkg --add-architecture armhf
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Check the result rather than trusting apt's exit code alone.
mapfile -t still < <(missing_packages)
if ((${#still[@]} > 0)); then
    echo "install-deps: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
echo "install-deps: installed ${missing[*]}" >&2
install_redis_py8
