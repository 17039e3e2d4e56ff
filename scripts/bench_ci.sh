#!/usr/bin/env bash
# CI's regression gate (`make bench-ci`): the working tree (the submitted revision) against
# the accepted one named in results/baseline/accepted, both timed in one job, interleaved
# block by block (`python -m harness ab`, docs/benchmarking.md "Paired verdicts"). Fails
# (exit 1) on a benchmark that HEAD breaks or makes `slower` by FAIL_RATIO or more; exit 2
# when no benchmark could be judged, neither by wall time nor by its instruction counts (every
# block pair contaminated and no count). Each side's JSON and ab.json go to out/ab/.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
FILTER=${CI_BENCH_FILTER:-"n256-c1000 and not compiled and not fused"}
FAIL_RATIO=${FAIL_RATIO:-1.2}
accepted=$(grep -v '^#' results/baseline/accepted | awk 'NF {print $1; exit}')
if ! git rev-parse --verify --quiet "${accepted}^{commit}" > /dev/null; then
  # a shallow clone lacks the history: say so; the tests still run
  echo "bench-ci: the accepted revision ${accepted:-?} is not in this clone (shallow?): no paired"
  echo "bench-ci: gate this time; fetch the history (git fetch --unshallow) to run it"
  exit 0
fi
echo "bench-ci: HEAD (the working tree) against the accepted revision ${accepted:0:12}"
# --instructions: callgrind's counts beside wall time (both sides at once, after the
# timing); where valgrind is missing ab says so and judges by wall time
exec "$PY" -m harness ab "$accepted" --fail-ratio "$FAIL_RATIO" --seconds "${AB_SECONDS:-4}" \
  --until-decided --budget "${AB_BUDGET_MINUTES:-4}" --instructions --out out/ab \
  --markdown "${GITHUB_STEP_SUMMARY:-out/ab.md}" -- -k "$FILTER"
