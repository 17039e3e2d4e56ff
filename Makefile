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

.PHONY: env test-env test test-slow bench bench-ci accept check lint

# CI's benchmark selection: uncompiled contenders on the classification landmark, timed on
# the submitted revision and the accepted one side by side (scripts/bench_ci.sh).
CI_BENCH_FILTER ?= n256-c1000 and not compiled and not fused

env:
	@VENV=$(VENV) XENTBENCH_EXTRAS= scripts/bootstrap.sh

test-env:
	@VENV=$(TEST_VENV) XENTBENCH_EXTRAS=dev,triton scripts/bootstrap.sh

## Correctness suites (in parallel) plus every benchmark run once as a smoke test, without
## the tests marked `slow`; the 15 slowest tests close the log, so a new slow one is seen.
test: test-env
	$(TEST_PY) -m pytest suites/ -n 2 --benchmark-disable -m "not slow" --durations=15 $(PYTEST_ARGS)

## The slow tier (CI runs it beside `make test`): what honestly needs minutes — the GPU
## check's dry run with its real deadlines, the AOT compile of every kernel variant, the
## compiled contenders' smoke benchmarks past their smallest case (conftest.py), the
## full-size demonstrations.
test-slow: test-env
	$(TEST_PY) -m pytest suites/ -n 2 --benchmark-disable -m slow --durations=15 $(PYTEST_ARGS)

## The main job: the default benchmark on the default device.
bench: env
	$(PY) -m harness bench $(BENCH_ARGS)

## The regression gate (CI): the working tree against the accepted revision
## (results/baseline/accepted), interleaved block by block in one job, judged on the pairs.
bench-ci: env
	@PY=$(PY) CI_BENCH_FILTER="$(CI_BENCH_FILTER)" scripts/bench_ci.sh

## After a landing: record the landed commit (HEAD) as the accepted revision.
accept:
	@sed -i '/^[0-9a-f]\{40\}$$/d' results/baseline/accepted && git rev-parse HEAD >> results/baseline/accepted
	@tail -1 results/baseline/accepted

check: env
	$(PY) -m harness check

lint: test-env
	$(TEST_PY) -m ruff check harness suites conftest.py
