#!/usr/bin/env bash
# `make fuzz`: coverage-guided fuzzing of the parsers and the persistence loaders with cargo-fuzz.
#
# Targets: resp_parser, text_parser, snapshot_loader, log_loader, http_parser (fuzz/checks.rs
# says what each checks). Installs the nightly toolchain (rustup) and cargo-fuzz (crates.io) when
# missing, builds the targets once, then runs each for FUZZ_SECONDS with libFuzzer's bounds:
#   -max_len        FUZZ_MAX_LEN bytes per input
#   -timeout        FUZZ_TIMEOUT seconds per input: a slower input is a hang
#   -rss_limit_mb   FUZZ_RSS_MB for the whole process
#   -malloc_limit_mb FUZZ_MALLOC_MB for any single allocation (a trusted length prefix)
# with fuzz/dict/<target>.dict as libFuzzer dictionary (the formats' tokens). FUZZ_STRICT=1 also
# stops on the known server bugs that fuzz/checks.rs otherwise lets the fuzzers go past.
# The corpus lives in fuzz/corpus/<target>/ (only seed-* files are committed). Every crash, hang
# or out-of-memory input is copied to fuzz/regressions/<target>/, which `cargo test` replays
# (tests/fuzz_regressions.rs). Logs go to fuzz/logs/; a summary table is printed at the end.
# Exits non-zero when any target found something new.
#
# Usage: bash fuzz/run.sh [target...]   (default: every target in fuzz/Cargo.toml)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

seconds=${FUZZ_SECONDS:-180}
max_len=${FUZZ_MAX_LEN:-4096}
timeout=${FUZZ_TIMEOUT:-10}
rss_mb=${FUZZ_RSS_MB:-1024}
malloc_mb=${FUZZ_MALLOC_MB:-64}

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^pocketkv-fuzz$')
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "== installing the nightly toolchain (cargo-fuzz needs it)"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== building ${targets[*]} ($(rustup run nightly rustc --version), $(cargo fuzz --version))"
for target in "${targets[@]}"; do
    cargo +nightly fuzz build "$target"
done

mkdir -p fuzz/logs
summary=fuzz/logs/summary.txt
{
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted src changes'), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cpus"
    echo "limits: ${seconds}s per target, -max_len=$max_len -timeout=$timeout -rss_limit_mb=$rss_mb -malloc_limit_mb=$malloc_mb"
    printf '%-16s %12s %8s %10s %8s %12s %8s %s\n' target executions seconds exec/s corpus corpus_bytes rss_mb found
} >"$summary"

failed=()
for target in "${targets[@]}"; do
    corpus=fuzz/corpus/$target
    artifacts=fuzz/artifacts/$target
    regressions=fuzz/regressions/$target
    log=fuzz/logs/$target.log
    mkdir -p "$corpus" "$artifacts" "$regressions"
    echo "== fuzzing $target for ${seconds}s (log: $log)"
    dict=()
    if [[ -f fuzz/dict/$target.dict ]]; then
        dict=(-dict="fuzz/dict/$target.dict")
    fi
    status=0
    cargo +nightly fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout="$timeout" \
        -rss_limit_mb="$rss_mb" -malloc_limit_mb="$malloc_mb" "${dict[@]}" \
        -artifact_prefix="$root/$artifacts/" -print_final_stats=1 \
        >"$log" 2>&1 || status=$?

    found=0
    shopt -s nullglob
    for artifact in "$artifacts"/crash-* "$artifacts"/timeout-* "$artifacts"/oom-* "$artifacts"/leak-*; do
        name=$(basename "$artifact")
        if [[ ! -e $regressions/$name ]]; then
            cp "$artifact" "$regressions/$name"
            echo "   new regression input: $regressions/$name"
            found=$((found + 1))
        fi
    done
    shopt -u nullglob
    if [[ $status -ne 0 || $found -gt 0 ]]; then
        failed+=("$target")
        echo "   $target stopped with status $status; the end of its log:"
        grep -v -E '^#[0-9]+' "$log" | tail -n 40 | sed 's/^/   | /'
    fi

    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n1)
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n1)
    files=$(find "$corpus" -type f | wc -l)
    bytes=$(find "$corpus" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    printf '%-16s %12s %8s %10s %8s %12s %8s %s\n' "$target" "${runs:-?}" "${took:-?}" \
        "${rate:-?}" "$files" "$bytes" "${rss:-?}" "$found" >>"$summary"
done

echo "== summary"
cat "$summary"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "== findings in: ${failed[*]}. Inputs are in fuzz/regressions/; replay with" \
        "cargo test --test fuzz_regressions, or cargo +nightly fuzz run <target> <file>."
    exit 1
fi
