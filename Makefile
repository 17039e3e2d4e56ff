# Two environments (scripts/bootstrap.sh), each created on first use:
#   .venv       the main commands (bench, check, report, compare): the package alone, no
#               Triton on CPU, where nothing timed uses it (about 1 GB less)
#   .venv-test  the test suites: + the `dev` and `triton` extras (xdist, ruff, scipy,
#               expecttest; Triton runs the fused kernels' checks in its interpreter)
VENV ?= .venv
TEST_VENV ?= .venv-test
PY := $(VENV)/bin/python
TEST_PY := $(TEST_VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: env test-env test bench bench-ci baseline check lint

# The short CPU benchmark CI compares with results/baseline/cpu.json: uncompiled contenders
# on the classification landmark (eager is the reference every ratio is normalised by).
CI_BENCH_FILTER ?= n256-c1000 and not compiled and not fused

env:
	@VENV=$(VENV) XENTBENCH_EXTRAS= scripts/bootstrap.sh

test-env:
	@VENV=$(TEST_VENV) XENTBENCH_EXTRAS=dev,triton scripts/bootstrap.sh

## Correctness suites (in parallel) plus every benchmark run once as a smoke test.
test: test-env
	$(TEST_PY) -m pytest suites/ -n 2 --benchmark-disable $(PYTEST_ARGS)

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

lint: test-env
	$(TEST_PY) -m ruff check harness suites conftest.py
