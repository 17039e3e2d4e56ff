# The two commands of the README. Each creates .venv on first use (scripts/bootstrap.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: env test bench check lint

env:
	@VENV=$(VENV) scripts/bootstrap.sh

## Correctness suites (in parallel) plus every benchmark run once as a smoke test.
test: env
	$(PY) -m pytest suites/ -n 2 --benchmark-disable $(PYTEST_ARGS)

## The main job: the default benchmark on the default device.
bench: env
	$(PY) -m harness bench $(BENCH_ARGS)

check: env
	$(PY) -m harness check

lint: env
	$(PY) -m ruff check harness suites conftest.py
