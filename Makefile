# dmxgen: `make demo` runs the main job end to end, `make test` runs the tests.
# Both install what they need first (tools/setup.sh: Debian packages, .venv, torch CPU, the project).
VENV   ?= .venv
PY     := $(VENV)/bin/python
DMXGEN := $(VENV)/bin/dmxgen
SHARED ?= ../shared/models
OUT    ?= build/demo
PYTEST_ARGS ?=

.PHONY: setup test test-slow test-peer test-fast demo bench clean help

help:
	@echo "make demo   - build a model, export it, verify it to the bit"
	@echo "make test   - install everything needed, then run the test suite"
	@echo "make test-slow - the tests marked slow (training examples, fuzz and big-image runs), left out of make test"
	@echo "make test-peer - the test that builds TensorFlow Lite Micro from source (minutes)"
	@echo "make setup  - only install (idempotent)"
	@echo "make bench  - benchmark tables (tools/bench_*.py)"

setup:
	@bash tools/setup.sh

test: setup
	$(PY) -m pytest -n 2 -m "not peer and not slow" $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -n 2 -m "slow" $(PYTEST_ARGS)

test-peer: setup
	$(PY) -m pytest -m peer $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -n 2 -m "not firmware and not shared" $(PYTEST_ARGS)

demo: setup
	$(PY) tools/demo.py --out $(OUT)

bench: setup
	@for b in tools/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf build .pytest_cache .hypothesis
