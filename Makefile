# Thin wrappers that mirror CI. `make run` starts the server with defaults; `make test` installs
# the test tools when missing (redis-tools, redis-server, netcat-openbsd) and runs every test:
# unit, integration, and the real-client stage.
.PHONY: build run test lint bench bench-replication release release-static release-arm64 clean

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

# Full sync time, primary throughput with 0/1/2 replicas and replication lag, vs redis-server.
bench-replication:
	bash benches/replication.sh

release:
	$(CARGO) build --release
	@ls -l target/release/pocketkv

# Static, stripped binaries for embedded Linux, built with Cargo.toml's `small` profile (the
# release profile at opt-level "s", to stay under 1 MB) into target/<triple>/small/. The rustup
# target is added when missing. arm64 links with the toolchain's own rust-lld
# (-C linker=rust-lld), so no cross gcc is needed; CI runs the integration tests against it under
# qemu-aarch64-static.
MUSL_X86_64 := x86_64-unknown-linux-musl
MUSL_ARM64 := aarch64-unknown-linux-musl

release-static:
	@rustup target list --installed | grep -qx $(MUSL_X86_64) || rustup target add $(MUSL_X86_64)
	$(CARGO) build --profile small --target $(MUSL_X86_64)
	@stat -c '%n: %s bytes (static, stripped)' target/$(MUSL_X86_64)/small/pocketkv

release-arm64:
	@rustup target list --installed | grep -qx $(MUSL_ARM64) || rustup target add $(MUSL_ARM64)
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld $(CARGO) build --profile small --target $(MUSL_ARM64)
	@stat -c '%n: %s bytes (static, stripped)' target/$(MUSL_ARM64)/small/pocketkv

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
# (tests/expiry.rs). Release build. The short versions are tests/hostile.rs and tests/expiry.rs.
.PHONY: soak

soak:
	$(CARGO) test --release --test soak -- --ignored --nocapture --test-threads=1
	POCKETKV_EXPIRY_KEYS=1000000 $(CARGO) test --release --test expiry a_mass_expiry -- --nocapture
