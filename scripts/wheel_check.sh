#!/usr/bin/env bash
# An installed wheel can benchmark (issue 13): build the wheel, install it into a fresh
# virtualenv with the pinned versions (no Triton: the fused kernels are skipped with the
# reason), and run `xentbench bench` from an empty directory. About 1.5 minutes with a
# package mirror; SELECTION (pytest -k, default the classification landmark) keeps it short,
# SELECTION="" times the whole small preset (about 3 minutes more).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
SELECTION=${SELECTION-"n256-c1000 and not compiled"}
python3 -m pip wheel -q --no-deps . -w "$WORK/dist"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --disable-pip-version-check -c constraints.txt "$WORK"/dist/xentbench-*.whl
mkdir "$WORK/run" && cd "$WORK/run"
"$WORK/venv/bin/xentbench" bench --size small ${SELECTION:+-- -k "$SELECTION"}
ls results/runs/*.json
