# The commands a newcomer needs. Each installs what it needs first.
CARGO ?= cargo
# Where Cargo builds: CARGO_TARGET_DIR or build.target-dir when set (as
# `cargo metadata` reports it), else ./target.
TARGET_DIR ?= $(or $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | \
	sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'),target)

.PHONY: demo test bench bench-runners stress fuzz lint deps man publish-check

## Show duet talking to the bundled fixture and to bc.
demo: deps
	$(CARGO) build --quiet -p duet-cli -p duet-process --bins --example demo
	"$(TARGET_DIR)/debug/examples/demo"
	TARGET_DIR="$(TARGET_DIR)" ./examples/cli-demo.sh

## The manual pages (duet.1 and one per subcommand) in $(TARGET_DIR)/man;
## read them with `man -l $(TARGET_DIR)/man/duet.1`.
man:
	$(CARGO) run --quiet -p duet-cli -- man --out-dir "$(TARGET_DIR)/man"

## Formatting, lints, unit, integration and doc tests, with the default
## features and again with `tokio` (the async driver: the shared suite's
## `::tokio` half, the async-only tests and the thread count run there);
## the API docs without a warning. The README's and docs/' examples run
## among them (doctests, and tests/docs.rs for the shell blocks).
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --all-targets --features duet-process/tokio -- -D warnings
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --all-targets --features duet-process/tokio
	$(CARGO) test --workspace --doc
	$(CARGO) test --workspace --doc --features duet-process/tokio
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --features duet-process/tokio

## What `cargo publish` would upload, packaged and built in dependency order
## from a local registry (nothing is uploaded). CI runs it after `make test`.
## cargo unpacks the packages of its temporary local registry under
## CARGO_HOME and reuses an unpacked copy of the same name and version, so
## a copy left by an earlier run (the version does not change between
## commits) would be verified instead of this one, and a build of it in
## the target directory is reused the same way. So the copies go first
## (local registries' folders start with "-") and the check builds in a
## target directory of its own, emptied first.
CARGO_HOME_DIR ?= $(or $(CARGO_HOME),$(HOME)/.cargo)
publish-check:
	rm -rf "$(CARGO_HOME_DIR)"/registry/src/-*/duet-* "$(TARGET_DIR)/publish-check"
	CARGO_TARGET_DIR="$(TARGET_DIR)/publish-check" $(CARGO) publish --dry-run --workspace --allow-dirty

## The benchmark table (release build; with the async driver's rows).
bench: deps bench-runners
	$(CARGO) build --release -p duet-cli -p duet-process --bins
	$(CARGO) bench -p duet-process --bench bench --features tokio

## The test runners `duet test` is measured against: bats (Debian) and
## cram (PyPI, in a virtualenv under the target directory).
bench-runners:
	@command -v bats >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q bats; }
	@[ -x "$(TARGET_DIR)/bench-venv/bin/cram" ] || { python3 -m venv "$(TARGET_DIR)/bench-venv" && \
		"$(TARGET_DIR)/bench-venv/bin/pip" install -q cram; }

## Load, many children, serve under 50 clients, a signal storm (release
## build, a few minutes): a table of figures, non-zero exit if one fails.
## Shorter: make stress STRESS_ARGS="--serve-secs 5 --storm-secs 3".
stress: deps
	$(CARGO) build --release -p duet-cli -p duet-process --bins
	$(CARGO) bench -p duet-process --bench stress -- $(STRESS_ARGS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --all-targets --features duet-process/tokio -- -D warnings

## Tools the tests and the demo talk to (Debian packages): bc, python3 (as
## /usr/bin/python3, not a wrapper), gdb (its MI mode), strace (counts the
## signals duet sends), util-linux's unshare (duet as PID 1), bash, man-db,
## OpenSSH (the remote tests start their own sshd on 127.0.0.1), and the
## script tests' dc, sqlite3, ed, units, tcl, stockfish, asciinema,
## xmllint (libxml2-utils) and prove (perl, a TAP harness).
deps:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }
	@missing=""; \
	command -v bc >/dev/null || missing="$$missing bc"; \
	[ -x /usr/bin/python3 ] || missing="$$missing python3"; \
	command -v stty >/dev/null || missing="$$missing coreutils"; \
	command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || missing="$$missing openssh-client"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	command -v man >/dev/null || missing="$$missing man-db"; \
	command -v gdb >/dev/null || missing="$$missing gdb"; \
	command -v strace >/dev/null || missing="$$missing strace"; \
	command -v unshare >/dev/null || missing="$$missing util-linux"; \
	command -v bash >/dev/null || missing="$$missing bash"; \
	for tool in dc sqlite3 ed units asciinema; do \
		command -v $$tool >/dev/null || missing="$$missing $$tool"; \
	done; \
	command -v tclsh >/dev/null || missing="$$missing tcl"; \
	command -v lua5.4 >/dev/null || missing="$$missing lua5.4"; \
	command -v gp >/dev/null || missing="$$missing pari-gp"; \
	command -v xmllint >/dev/null || missing="$$missing libxml2-utils"; \
	command -v prove >/dev/null || missing="$$missing perl"; \
	[ -x /usr/games/stockfish ] || command -v stockfish >/dev/null || missing="$$missing stockfish"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

## Fuzz each parser for FUZZ_SECONDS (default 60) with libFuzzer: runs,
## coverage and crashes per target. Needs cargo-fuzz (installed if missing).
FUZZ_SECONDS ?= 60
fuzz: deps
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	CARGO=$(CARGO) FUZZ_SECONDS=$(FUZZ_SECONDS) ./fuzz/run.sh
