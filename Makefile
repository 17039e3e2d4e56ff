# The two commands of the README. Each creates .venv on first use (scripts/bootstrap.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: env test bench bench-ci baseline check lint

# The short CPU benchmark CI compares with results/baseline/cpu.json: uncompiled contenders
# on the classification landmark (eager is the reference every ratio is normalised by).
CI_BENCH_FILTER ?= n256-c1000 and not compiled and not fused

env:
	@VENV=$(VENV) scripts/bootstrap.sh

## Correctness suites (in parallel) plus every benchmark run once as a smoke test.
test: env
	$(PY) -m pytest suites/ -n 2 --benchmark-disable $(PYTEST_ARGS)

## The main job: the default benchmark on the default device.
bench: env
	$(PY) -m harness bench $(BENCH_ARGS)

## Short benchmark + regression report against the committed baseline (CI).
bench-ci: env
	$(PY) -m harness bench --processes 3 --out out/cpu.json -- -k "$(CI_BENCH_FILTER)"
	$(PY) -m harness compare results/baseline/cpu.json out/cpu.json --fail-ratio 1.5 \
		--allow-env-change --markdown "$${GITHUB_STEP_SUMMARY:-out/compare.md}"

## Refresh the baseline (on a quiet machine, after an intended performance change).
baseline: env
	$(PY) -m harness bench --processes 3 --out results/baseline/cpu.json -- -k "$(CI_BENCH_FILTER)"

check: env
	$(PY) -m harness check

lint: env
	$(PY) -m ruff check harness suites conftest.py
