#!/usr/bin/env bash
# Demonstrates `harness compare` on real runs (issue 5's acceptance), outside the test
# suite because it rests on timing: two benchmark runs of the same code, then a third in
# which one external contender, `ext`, does its work twice under the same name.
#   same code        -> compare reports no regression (exit 0)
#   ext made 2x slow -> exactly ext is reported slower (exit 1 with --fail-on-regression)
# Usage: scripts/regression_demo.sh [WORKDIR]   (run on an otherwise idle machine)
set -uo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d)}
PY=${PYTHON:-.venv/bin/python}
SELECTION="n256-c1000 and (eager or module or logsoftmax_nll or ext) and not compiled"
mkdir -p "$WORK/once" "$WORK/twice"
cat > "$WORK/once/extmod.py" <<'PYEOF'
import torch.nn.functional as F

def ce(input, target, **kwargs):
    return F.cross_entropy(input, target, **kwargs)
PYEOF
cat > "$WORK/twice/extmod.py" <<'PYEOF'
import torch.nn.functional as F

def ce(input, target, **kwargs):
    F.cross_entropy(input, target, **kwargs)
    return F.cross_entropy(input, target, **kwargs)
PYEOF
run() {  # $1: module dir, $2: output
  PYTHONPATH="$1:$PWD" "$PY" -m harness bench --out "$2" \
    --contender ext=extmod:ce -- -k "$SELECTION" > "$2.log" 2>&1
}
run "$WORK/once" "$WORK/a.json" && run "$WORK/once" "$WORK/b.json" && run "$WORK/twice" "$WORK/c.json" || {
  echo "a benchmark run failed: see $WORK/*.log"; exit 2; }
echo "== same code (expect: no regression)"
"$PY" -m harness compare "$WORK/a.json" "$WORK/b.json" --fail-on-regression; same=$?
echo "== ext does its work twice (expect: ext slower, fwd and fwd_bwd)"
"$PY" -m harness compare "$WORK/a.json" "$WORK/c.json" --fail-on-regression; slow=$?
echo "exit codes: same code $same (want 0), ext twice $slow (want 1)"
[ "$same" = 0 ] && [ "$slow" = 1 ]
