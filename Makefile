# Thin wrappers that mirror CI. `make run` starts the server with defaults; `make test` installs
# the test tools when missing (redis-tools, redis-server, netcat-openbsd) and runs every test:
# unit, integration, and the real-client stage.
.PHONY: build run test lint bench release clean

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

release:
	$(CARGO) build --release
	@ls -l target/release/pocketkv

clean:
	$(CARGO) clean

# Coverage-guided fuzzing: installs nightly and cargo-fuzz when missing, runs each target
# (resp_parser, text_parser, snapshot_loader; or FUZZ_TARGETS) for FUZZ_SECONDS under libFuzzer's
# length, time and memory bounds, and copies crash inputs to fuzz/regressions/, which
# `cargo test` replays (tests/fuzz_regressions.rs). See fuzz/run.sh for the other knobs.
.PHONY: fuzz
FUZZ_SECONDS ?= 180

fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh $(FUZZ_TARGETS)
