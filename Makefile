# encoder-bridge: the two commands a newcomer needs are `make demo` and `make test`.
#
# `make test` installs what the suite needs on a fresh Debian machine (apt-get, cargo install),
# then runs formatting and lint checks and the whole test suite, including the tier that runs
# against a private pcscd with virtual readers (needs root for its namespaces).

SHELL := /bin/bash
CARGO ?= cargo
NEXTEST_PROFILE ?= $(if $(CI),ci,default)

# Debian packages the suite needs: the PC/SC rig (pcscd + vpcd), pcsc-lite headers for the
# pcsc crate, the ATR list (pcsc-tools), namespaces (util-linux, iproute2), libnfc's tools
# (the PN532 emulator's fidelity test), libfreefare's tools (an NFC-formatted card made by an
# outside tool), Python's cryptography (the card vectors' cross-check), and for the package
# test dpkg, systemd-analyze, systemd-sysusers, curl and jq; python3-venv for Seam's Python SDK
# (below).
DEB_PACKAGES := pcscd libpcsclite-dev vsmartcard-vpcd pkg-config socat pcsc-tools \
	iproute2 util-linux libnfc-bin libfreefare-bin systemd curl jq python3-pyscard \
	python3-cryptography python3-venv

# Where cargo puts its output (honours CARGO_TARGET_DIR).
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
# The same as an absolute path: binaries handed to tests, benches and scripts must not depend
# on the directory they run in (cargo runs benches and tests from the package's directory,
# tests/, not from here).
TARGET_ABS := $(abspath $(TARGET_DIR))

# The soak (make soak; tests/src/bin/soak.rs): attempts through the cloud simulator's API onto
# 4 virtual readers while websockets drop, the cloud, pcscd and the bridge restart, readers
# are unplugged and cards torn, at seeded moments. The full run is bounded (under 10 minutes);
# `make test` runs a 2-minute variant. Needs root (the rig).
SOAK_SECS ?= 480
SOAK_ATTEMPTS ?= 1000
SOAK_SEED ?= 1

# Seam's official SDKs, run against the cloud simulator by tests/tests/sdk_flows.rs: the
# Python SDK (PyPI seam, pinned in tests/sdk/python/requirements.txt with the OpenAPI schema
# validator) in a virtualenv under target/, the JavaScript SDK and Seam's OpenAPI document
# (npm seam and @seamapi/types, pinned by tests/sdk/package-lock.json) in tests/sdk/node_modules.
# Node.js and npm come from apt when missing.
SDK_VENV ?= $(abspath $(TARGET_DIR))/sdk/venv
export ENCODER_SDK_VENV := $(SDK_VENV)


# Fuzzing (fuzz/README.md): every target for up to FUZZ_RUNS executions or FUZZ_SECS seconds
# each, whichever comes first, then one table (target, executions, coverage, crashes). Installs
# the nightly toolchain and cargo-fuzz when missing; FUZZ_TARGETS="a b" runs only those;
# FUZZ_JOBS is the build's parallelism. Not part of `make test`, whose test suite replays
# fuzz/corpus/ on stable (crates/fuzz-targets/tests/corpus.rs) without fuzzing.
FUZZ_SECS ?= 600
FUZZ_RUNS ?= 10000000
FUZZ_JOBS ?= 2

.PHONY: all deps sdk-deps build lint test soak demo bench endurance deb check-deb fuzz clean

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
	@command -v cargo-deb >/dev/null || $(CARGO) install --locked cargo-deb
	@$(MAKE) --no-print-directory sdk-deps

sdk-deps: $(SDK_VENV)/.installed tests/sdk/node_modules/.package-lock.json

$(SDK_VENV)/.installed: tests/sdk/python/requirements.txt
	python3 -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

tests/sdk/node_modules/.package-lock.json: tests/sdk/package-lock.json
	@command -v npm >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nodejs npm; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || \
		echo "warning: npm seam 1.160 asks for Node.js >= 20.9, this is $$(node --version); tests/tests/sdk_flows.rs will tell if it runs"
	cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error
	touch $@

build: deps
	$(CARGO) build --workspace --all-targets --locked

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test: lint build
	$(CARGO) nextest run --workspace --locked --profile $(NEXTEST_PROFILE)
	$(CARGO) test --workspace --doc --locked
	$(MAKE) soak SOAK_SECS=100 SOAK_ATTEMPTS=100000
	$(MAKE) check-deb

soak: deps
	$(CARGO) build --locked -p encoder-bridge -p encoder-sim -p encoder-tests \
		--bin encoder-bridge --bin encoder-sim --bin soak
	ENCODER_BRIDGE=$(TARGET_ABS)/debug/encoder-bridge ENCODER_SIM=$(TARGET_ABS)/debug/encoder-sim \
	SOAK_SECS=$(SOAK_SECS) SOAK_ATTEMPTS=$(SOAK_ATTEMPTS) SOAK_SEED=$(SOAK_SEED) \
	$(TARGET_ABS)/debug/soak

# The bridge's figures in one table (tests/benches/bridge.rs): per job through pcscd and the
# PN532 emulator next to their floors, daemon overhead, throughput with 1/4/8 readers, memory
# and CPU idle (BENCH_IDLE_SECS, default 60) and at peak, and a pyscard script side by side;
# then per reader family (tests/benches/reader_profiles.rs) APDUs at the card and wall time
# per job through pcscd.
# Not part of `make test`. Needs root (the rig).
bench: deps
	$(CARGO) build --locked --release -p encoder-bridge -p encoder-sim
	ENCODER_BRIDGE=$(TARGET_ABS)/release/encoder-bridge ENCODER_SIM=$(TARGET_ABS)/release/encoder-sim \
	$(CARGO) bench --locked -p encoder-tests --bench bridge
	ENCODER_SIM=$(TARGET_ABS)/release/encoder-sim \
	$(CARGO) bench --locked -p encoder-tests --bench reader_profiles

# A year at the front desk in minutes (tests/benches/endurance.rs): ENDURANCE_JOBS encodes
# (default 100,000) one after the other through the real bridge, the cloud simulator and the
# PN532 emulator (no baud limit), printing jobs/s, bridge RSS, store size and simulator RSS
# every interval and checking the goals at the end. Not part of `make test`; no root needed.
ENDURANCE_JOBS ?= 100000
endurance:
	$(CARGO) build --locked --release -p encoder-bridge -p encoder-sim
	ENCODER_BRIDGE=$(TARGET_ABS)/release/encoder-bridge ENCODER_SIM=$(TARGET_ABS)/release/encoder-sim \
	ENDURANCE_JOBS=$(ENDURANCE_JOBS) \
	$(CARGO) bench --locked -p encoder-tests --bench endurance

fuzz: deps
	FUZZ_SECS=$(FUZZ_SECS) FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_JOBS=$(FUZZ_JOBS) FUZZ_TARGETS="$(FUZZ_TARGETS)" \
	fuzz/run

# The Debian package (target/debian/encoder-bridge_*.deb), built with cargo-deb.
deb: deps
	$(CARGO) deb -p encoder-bridge --locked

# Install the package into a clean root and check it (tests/package/check-deb).
check-deb: deb
	$(CARGO) build --locked -p encoder-sim
	ENCODER_SIM=$(TARGET_ABS)/debug/encoder-sim \
	tests/package/check-deb "$$(ls -t $(TARGET_ABS)/debian/encoder-bridge_*.deb 2>/dev/null | head -n1)"

# The seed flow end to end on one machine: the cloud simulator, a PN532 encoder emulated
# behind a pseudo-terminal (no root, no pcscd), the bridge, and the API calls as cURL.
demo: deps
	$(CARGO) build --locked -p encoder-bridge -p encoder-sim
	BIN_DIR=$(TARGET_ABS)/debug demo/walkthrough

clean:
	$(CARGO) clean
