#!/usr/bin/env bash
# Run here, before a GPU call: what scripts/gpu_check.sh needs that the device copy lacks.
# .gpu-check/commit: the commit and whether the tree differs from it (the copy has no .git);
# .gpu-check/wheels: Liger-Kernel and pytest-benchmark at constraints.txt's versions, for the
# image's Python 3.12, without dependencies (the image has torch and Triton). Then call the
# device with carry [".gpu-check"] and the command `scripts/gpu_check.sh $OUT`.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-check/wheels
{ git rev-parse HEAD; git status --porcelain | wc -l | sed 's/^/uncommitted paths: /'; } > .gpu-check/commit
pin() { grep -i "^$1==" constraints.txt | head -1; }
PY=${PYTHON:-python3}
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d .gpu-check/wheels "$(pin liger-kernel)" "$(pin pytest-benchmark)"
ls -la .gpu-check/wheels
cat .gpu-check/commit
