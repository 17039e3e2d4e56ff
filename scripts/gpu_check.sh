#!/usr/bin/env bash
# GPU check: correctness suites, the full benchmark and an A/A pair on CUDA, in 9 minutes or less,
# with only what a CUDA image already has (torch, pytest, pytest-benchmark, hypothesis,
# pandas): nothing is installed and nothing is fetched. Usage: scripts/gpu_check.sh OUTDIR
set -uo pipefail
OUT=${1:?usage: scripts/gpu_check.sh OUTDIR}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu dry-runs the script's logic on a CPU machine
# Budgets (seconds) keep the whole script under 8 minutes even when a stage hangs.
CORRECTNESS_S=${CORRECTNESS_S:-130}
LANDMARKS_S=${LANDMARKS_S:-200}
GENERATED_S=${GENERATED_S:-90}
AA_S=${AA_S:-45}

{
  echo "date: $(date -u +%FT%TZ)"
  "$PY" -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)'
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv 2>/dev/null
  git rev-parse HEAD 2>/dev/null
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

timeout "$CORRECTNESS_S" "$PY" -m pytest suites/contenders/test_equivalence.py suites/contenders/test_binary_equivalence.py suites/harness/test_fused.py \
  suites/harness/test_oracle.py --device "$DEVICE" --hypothesis-profile dev -q -p no:cacheprovider --benchmark-disable \
  -W ignore::DeprecationWarning --junitxml="$OUT/correctness.xml" > "$OUT/correctness.log" 2>&1
echo "correctness exit: $?" | tee -a "$OUT/env.txt"
tail -n 25 "$OUT/correctness.log"

# Two runs, landmarks first: pytest-benchmark writes its JSON only at the end, so a run cut
# by its timeout keeps nothing; the second JSON cannot cost the first. Short rounds.
# One run id, so that `harness report "$OUT"` reads the two files as one run.
RUN_ID="gpu-check-$(date -u +%Y%m%dT%H%M%SZ)"
timeout "$LANDMARKS_S" "$PY" -m harness bench --size full --device "$DEVICE" --run-id "$RUN_ID" \
  --out "$OUT/bench-landmarks.json" -- --bench-cases landmarks --bench-round-time 0.2 \
  > "$OUT/bench.log" 2>&1
echo "bench landmarks exit: $?" | tee -a "$OUT/env.txt"
timeout "$GENERATED_S" "$PY" -m harness bench --size full --device "$DEVICE" --run-id "$RUN_ID" \
  --out "$OUT/bench-generated.json" -- --bench-cases generated --bench-round-time 0.1 \
  > "$OUT/bench-generated.log" 2>&1
echo "bench generated exit: $?" | tee -a "$OUT/env.txt"
# An A/A pair on CUDA (issue 9): the classification landmark twice, timed by CUDA events,
# then compared; the runs' timer fidelity check is in each JSON (xentbench.fidelity).
for ab in a b; do
  timeout "$AA_S" "$PY" -m harness bench --size small --device "$DEVICE" --out "$OUT/aa-$ab.json" \
    -- --bench-cases landmarks -k "n256-c1000 and not fused" --bench-round-time 0.1 \
    > "$OUT/aa-$ab.log" 2>&1
  echo "A/A run $ab exit: $?" | tee -a "$OUT/env.txt"
done
"$PY" -m harness compare "$OUT/aa-a.json" "$OUT/aa-b.json" --all > "$OUT/aa-compare.txt" 2>&1
tail -n 30 "$OUT/aa-compare.txt"
grep -hE "fidelity|passed|failed|FAILED" "$OUT/bench.log" "$OUT/bench-generated.log" "$OUT"/aa-*.log | tail -n 20
ls -la "$OUT"
