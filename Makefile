# Thin wrappers that mirror CI. `make run` starts the server with defaults; `make test` installs
# the test tools when missing (redis-tools, redis-server, netcat-openbsd) and runs every test:
# unit, integration, and the real-client stage.
.PHONY: build run test lint bench bench-replication release release-static release-arm64 release-armv7 dist clean

CARGO ?= cargo

build:
	$(CARGO) build --release

run:
	$(CARGO) run --release --

test:
	bash ci/install-deps.sh
	$(CARGO) test --all-targets
	bash ci/real-clients.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

bench:
	bash benches/compare.sh

# Snapshot stall at 100k and 1M keys and append-only log throughput, pocketkv vs redis-server.
.PHONY: bench-durability
bench-durability:
	bash benches/durability.sh

# PUBLISH throughput and delivery latency with 1, 100 and 1,000 subscribers, pocketkv vs
# redis-server; and SET throughput with idle keyspace notifications vs off.
.PHONY: bench-pubsub
bench-pubsub:
	bash benches/pubsub.sh

# Instructions per GET and SET (callgrind) with the default user and with a restricted one.
.PHONY: bench-acl
bench-acl:
	bash benches/acl_cost.sh

# Full sync time, primary throughput with 0/1/2 replicas and replication lag, vs redis-server.
.PHONY: bench-replication
bench-replication:
	bash benches/replication.sh

release:
	$(CARGO) build --release
	@ls -l target/release/pocketkv

# Static, stripped binaries for embedded Linux, built with Cargo.toml's `small` profile (the
# release profile at opt-level "s", to stay under 1 MB) into target/<triple>/small/. The rustup
# target is added when missing. arm64 and armv7 link with the toolchain's own rust-lld
# (-C linker=rust-lld), so no cross gcc is needed; CI runs the integration tests against them
# under qemu-aarch64-static and qemu-arm-static.
#
# All three compile the standard library from the toolchain's rust-src with the program
# (-Zbuild-std; RUSTC_BOOTSTRAP=1 lets the stable toolchain take the flag), without std's
# `backtrace` feature: std is then optimised for size and trimmed by LTO with the rest, and the
# code that symbolises a panic's backtrace (gimli, addr2line, miniz_oxide, rustc-demangle: of
# no use in a stripped binary) is left out. A panic still prints its message and location.
# x86_64: 974,184 -> 654,064 bytes. The first build compiles std too (a minute or two).
MUSL_X86_64 := x86_64-unknown-linux-musl
MUSL_ARM64 := aarch64-unknown-linux-musl
MUSL_ARMV7 := armv7-unknown-linux-musleabihf
BUILD_STD := RUSTC_BOOTSTRAP=1 $(CARGO) build -Zbuild-std=std,panic_abort -Zbuild-std-features= \
	--profile small
RUST_SRC := rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src

release-static:
	@rustup target list --installed | grep -qx $(MUSL_X86_64) || rustup target add $(MUSL_X86_64)
	@$(RUST_SRC)
	$(BUILD_STD) --target $(MUSL_X86_64)
	@stat -c '%n: %s bytes (static, stripped)' target/$(MUSL_X86_64)/small/pocketkv

release-arm64:
	@rustup target list --installed | grep -qx $(MUSL_ARM64) || rustup target add $(MUSL_ARM64)
	@$(RUST_SRC)
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld $(BUILD_STD) --target $(MUSL_ARM64)
	@stat -c '%n: %s bytes (static, stripped)' target/$(MUSL_ARM64)/small/pocketkv

# 32-bit ARM with hardware float (Raspberry Pi 2/3 in 32-bit mode, many industrial boards). Its
# prebuilt rust-std is not downloadable here (rustup gets a 404); std is built from source
# anyway (above), and the C runtime that rust-std would have brought comes from Debian packages
# that ci/install-deps.sh installs: musl's libc.a and start files (musl-dev:armhf) and gcc's
# crtbegin/crtend and unwinder (libgcc-N-dev-armhf-cross; libgcc_eh.a is linked as the
# libunwind std asks for). Still rust-lld, still no cross gcc.
ARMV7_MUSL := /usr/lib/arm-linux-musleabihf
ARMV7_GCC := $(patsubst %/,%,$(firstword $(wildcard /usr/lib/gcc-cross/arm-linux-gnueabihf/*/)))
ARMV7_LINK := $(CURDIR)/target/armv7-link
ARMV7_RUSTFLAGS := -C link-arg=--icf=all -C link-self-contained=no \
	-L native=$(ARMV7_MUSL) -L native=$(ARMV7_LINK) -L native=$(ARMV7_GCC) \
	-Z pre-link-arg=$(ARMV7_MUSL)/crt1.o -Z pre-link-arg=$(ARMV7_MUSL)/crti.o \
	-Z pre-link-arg=$(ARMV7_GCC)/crtbegin.o \
	-C link-arg=$(ARMV7_GCC)/crtend.o -C link-arg=$(ARMV7_MUSL)/crtn.o

release-armv7:
	@test -f $(ARMV7_MUSL)/libc.a -a -f "$(ARMV7_GCC)/libgcc_eh.a" || { echo "release-armv7: \
	musl-dev:armhf or libgcc-N-dev-armhf-cross is not installed: run bash ci/install-deps.sh \
	as root" >&2; exit 1; }
	@$(RUST_SRC)
	@mkdir -p $(ARMV7_LINK) && ln -sf $(ARMV7_GCC)/libgcc_eh.a $(ARMV7_LINK)/libunwind.a
	CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_LINKER=rust-lld \
	CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_RUSTFLAGS="$(ARMV7_RUSTFLAGS)" \
	$(BUILD_STD) --target $(MUSL_ARMV7)
	@stat -c '%n: %s bytes (static, stripped)' target/$(MUSL_ARMV7)/small/pocketkv

# Release tarballs in target/dist/: one per architecture (the static binary, README.md, LICENSE,
# CHANGELOG.md, deploy/) and SHA256SUMS, reproducibly (ci/dist.sh says how).
dist: release-static release-arm64 release-armv7
	bash ci/dist.sh

clean:
	$(CARGO) clean

# Coverage-guided fuzzing: installs nightly and cargo-fuzz when missing, runs each target
# (resp_parser, text_parser, snapshot_loader, log_loader, http_parser; or FUZZ_TARGETS) for
# FUZZ_SECONDS under libFuzzer's length, time and memory bounds, and copies crash inputs to
# fuzz/regressions/, which `cargo test` replays (tests/fuzz_regressions.rs). See fuzz/run.sh for
# the other knobs.
.PHONY: fuzz
FUZZ_SECONDS ?= 180

fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh $(FUZZ_TARGETS)

# Long runs, not in CI (tests/soak.rs, ignored by `cargo test`): 100,000 connect/disconnect
# cycles (SOAK_CYCLES) with an fd and RSS leak check, then a mixed-load soak of SOAK_SECONDS
# (default 600) at SOAK_LOAD_PERCENT (80) % of the peak it first measures, a snapshot every 30 s;
# prints RSS, p99 per minute, errors and ops; then a million keys expiring at once
# (tests/expiry.rs), tests/hostile.rs, and a full sync of a million keys while clients write
# (tests/replication.rs, DEBUG DIGEST equal on both sides). Release build. POCKETKV_TIMING_TARGETS=1 makes the
# hostile and expiry tests assert their timing targets (latency ratios, CPU per loop turn, burst
# time), which `make test` only prints: run it on a machine kept quiet for it.
.PHONY: soak

soak:
	$(CARGO) test --release --test soak -- --ignored --nocapture --test-threads=1
	POCKETKV_TIMING_TARGETS=1 POCKETKV_EXPIRY_KEYS=1000000 $(CARGO) test --release --test expiry a_mass_expiry -- --nocapture
	POCKETKV_TIMING_TARGETS=1 $(CARGO) test --release --test hostile -- --nocapture
	POCKETKV_REPL_SYNC_KEYS=1000000 $(CARGO) test --release --test replication a_full_sync_of_many_keys -- --nocapture

# twemproxy (deploy/nutcracker.yml) in front of three shards on loopback ports, in a temporary
# directory; prints what to try, runs until Ctrl-C or `make demo-stop` (which stop it by pid).
# deploy/demo.sh is the script; `bash deploy/demo.sh where KEY` names a key's shard.
.PHONY: demo-shards demo-stop bench-shards

demo-shards: build
	bash deploy/demo.sh shards

# Redis Sentinel failing over a pocketkv primary (kill -9) and a redis-server one, same topology
# and timings (tests/sentinel.rs): the median time from the kill to the first write on the new
# primary of POCKETKV_FAILOVER_ROUNDS (5) rounds each. Release build.
.PHONY: bench-failover
bench-failover:
	bash ci/install-deps.sh
	$(CARGO) test --release --test sentinel bench_failover -- --ignored --nocapture

# A pocketkv primary (deploy/pocketkv.conf) and two replicas (deploy/replica.conf) watched by
# three Redis Sentinels (deploy/sentinel.conf), on loopback ports in a temporary directory;
# prints how to watch a failover; Ctrl-C or `make demo-stop` stops it by pid.
.PHONY: demo-ha
demo-ha: build
	bash deploy/demo.sh ha

demo-stop:
	bash deploy/demo.sh stop

# redis-benchmark SET/GET at pipeline 1 and 16 through twemproxy, three pocketkv shards beside
# three redis-server shards (same proxy config, same run), medians of ROUNDS (3) and the ratio.
bench-shards:
	bash benches/shards.sh
