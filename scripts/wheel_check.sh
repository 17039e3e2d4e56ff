#!/usr/bin/env bash
# An installed wheel can benchmark (issue 13) and leaves other projects alone (issue 21):
# build the wheel, install it into a fresh virtualenv with the pinned versions (no Triton:
# the fused kernels are skipped with the reason), run `xentbench bench` from an empty
# directory, then a foreign project's pytest-benchmark and Hypothesis tests with the
# wheel's plugin loaded and with `-p no:harness.pytest_plugin`, which must agree
# (`suites/harness/test_foreign.py`, run by the wheel's interpreter). About 1.5 minutes with a
# package mirror; SELECTION (pytest -k, default the classification landmark) keeps it short,
# SELECTION="" times the whole small preset (about 3 minutes more).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
SELECTION=${SELECTION-"n256-c1000 and not compiled"}
python3 -m pip wheel -q --no-deps . -w "$WORK/dist"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --disable-pip-version-check -c constraints.txt "$WORK"/dist/xentbench-*.whl
mkdir "$WORK/run" && cd "$WORK/run"
"$WORK/venv/bin/xentbench" bench --size small ${SELECTION:+-- -k "$SELECTION"}
ls results/runs/*.json
# the foreign project runs in a temporary folder with the wheel's interpreter: only the
# comparison's own process reads this checkout's suites
"$WORK/venv/bin/python" -m pytest "$ROOT/suites/harness/test_foreign.py" -q -p no:cacheprovider \
    -k foreign_project --rootdir "$ROOT"
