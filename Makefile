# encoder-bridge: the two commands a newcomer needs are `make demo` and `make test`.
#
# `make test` installs what the suite needs on a fresh Debian machine (apt-get, cargo install),
# then runs formatting and lint checks and the whole test suite, including the tier that runs
# against a private pcscd with virtual readers (needs root for its namespaces).

SHELL := /bin/bash
CARGO ?= cargo
NEXTEST_PROFILE ?= $(if $(CI),ci,default)

# Debian packages the suite needs: the PC/SC rig (pcscd + vpcd), pcsc-lite headers for the
# pcsc crate, the ATR list (pcsc-tools), namespaces (util-linux, iproute2).
DEB_PACKAGES := pcscd libpcsclite-dev vsmartcard-vpcd pkg-config socat pcsc-tools \
	iproute2 util-linux libnfc-bin

.PHONY: all deps build lint test demo bench clean

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v cargo-nextest >/dev/null || $(CARGO) install --locked cargo-nextest

build: deps
	$(CARGO) build --workspace --all-targets --locked

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test: lint build
	$(CARGO) nextest run --workspace --locked --profile $(NEXTEST_PROFILE)
	$(CARGO) test --workspace --doc --locked

# Until the cloud demo lands: the virtual rig with a card, as `encoder-bridge readers` sees it.
demo: deps
	$(CARGO) build --locked -p encoder-bridge -p encoder-sim
	@rig/pcsc-rig run -n 2 -- bash -c '\
		set -e; \
		rig/pcsc-rig card "$$PCSC_RIG_DIR" 0 --type classic-1k --uid 04A1B2C3 > /dev/null & card=$$!; \
		sleep 1; \
		echo "$$ encoder-bridge readers"; target/debug/encoder-bridge readers; \
		echo; echo "$$ encoder-bridge readers --json"; target/debug/encoder-bridge readers --json; \
		kill $$card'

clean:
	$(CARGO) clean
