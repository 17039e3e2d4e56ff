#!/usr/bin/env bash
# The GPU check (issue 20): versions and clocks, the fused kernels at their real tiles, the
# headline table (bench --cases headline), a narrowed landmark bench and an A/A pair, each
# stage under its own deadline (6 minutes in all on CUDA), packed into OUT/gpu-check.tgz
# with OUT/summary.txt after every stage (harness/stages.py). Nothing is fetched: wheels
# come carried in .gpu-check/wheels (scripts/gpu_prepare.sh, run here before the call, also
# writes the commit).
#   scripts/gpu_check.sh OUT                 # on the GPU machine
#   DEVICE=cpu scripts/gpu_check.sh OUT      # the dry run: tiny sizes, same plumbing (CI)
#   SCALE=0.2 ...                            # every deadline × 0.2 (the clean-stop test)
set -uo pipefail
OUT=${1:?usage: scripts/gpu_check.sh OUT}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# Carried wheels, without dependencies, into a private folder that comes after the checkout
# and before the image's own packages on the path (pip --target never touches the image).
if compgen -G ".gpu-check/wheels/*.whl" > /dev/null; then
  SITE=${TMPDIR:-/tmp}/xentbench-gpu-site
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" .gpu-check/wheels/*.whl; then
    export PYTHONPATH="$PYTHONPATH:$SITE"
  else
    echo "gpu_check: installing the carried wheels failed; going on without them"
  fi
fi
exec "$PY" -m harness.gpu_check "$OUT" --device "${DEVICE:-cuda}" --scale "${SCALE:-1}"
