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
