#!/usr/bin/env bash
# The paired verdicts of `python -m harness ab` on real runs (issue 19), outside the test
# suite because they rest on timing; suites/harness/test_paired.py proves the rules on
# synthetic pairs. Every comparison is two directories holding a module `extmod` whose
# `ce` is the external contender `ext`, timed beside the built-ins of CI's selection:
#   (a) AA times: BASE and HEAD identical; want at most one comparison with any
#       `slower` or `faster` row;
#   (b) N times each: HEAD's ext does about 10 % more work (the loss again on a tenth of
#       the batch, times 0), 25 % (a quarter) and 2x (the loss twice); want ext `slower`
#       on >= 90 % (10 %) and >= 95 % (25 %, 2x) of its benchmarks, no other contender flagged;
#   (c) once: identical sides with two bounded busy-loop neighbours; want no `slower` or
#       `faster` row (undecided and unstable are allowed) and `--fail-ratio 1.5` not failing.
# Usage: scripts/ab_demo.sh [WORKDIR]   (AA=20 N=10 SECONDS_PER_BENCHMARK=3 by default;
# SELECTION is pytest -k; HEADS="tenth quarter twice" the slowdowns run; BUSY=0 skips (c);
# REUSE=1 keeps the comparisons already in WORKDIR and only counts again). On the
# 256 x 1000 case a second call costs more than its share of the work (its fixed overhead:
# "a tenth" reads 1.3-1.5x there); the ~10 % and ~25 % are measured on the LLM case
# (256 x 32000), where a tenth of the batch is about a tenth of the time:
#   AA=0 BUSY=0 HEADS=tenth \
#   SELECTION="(n256-c1000 and not compiled and not fused) or (n256-c32000 and ext and not fwd_bwd)" \
#   scripts/ab_demo.sh     (about 2 min per comparison: blocks there are 3 rounds of ~150 ms)
set -uo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d)}
PY=${PYTHON:-.venv/bin/python}
AA=${AA:-20}
N=${N:-10}
SECS=${SECONDS_PER_BENCHMARK:-3}
SELECTION=${SELECTION:-"n256-c1000 and not compiled and not fused"}
mkdir -p "$WORK"
module() {  # $1: directory, $2: the body of ce
  mkdir -p "$1"
  printf 'import torch.nn.functional as F\n\n\ndef ce(input, target, **kw):\n    return %s\n' "$2" > "$1/extmod.py"
}
module "$WORK/once" "F.cross_entropy(input, target, **kw)"
# the loss again on a tenth (a quarter) of the batch, times 0: about 10 % (25 %) more work
module "$WORK/tenth" "F.cross_entropy(input, target, **kw) + 0 * F.cross_entropy(input[: max(1, input.shape[0] // 10)], target[: max(1, input.shape[0] // 10)], **kw)"
module "$WORK/quarter" "F.cross_entropy(input, target, **kw) + 0 * F.cross_entropy(input[: max(1, input.shape[0] // 4)], target[: max(1, input.shape[0] // 4)], **kw)"
module "$WORK/twice" "(F.cross_entropy(input, target, **kw) + F.cross_entropy(input, target, **kw)) / 2"

compare() {  # $1 BASE dir, $2 HEAD dir, $3 output dir, then ab's own options; prints ab's exit code
  if [ "${REUSE:-0}" = 1 ] && [ -s "$3/ab.json" ]; then cat "$3.code"; return; fi
  "$PY" -m harness ab "$1" "$2" --seconds "$SECS" --out "$3" --contender ext=extmod:ce "${@:4}" \
    -- -k "$SELECTION" > "$3.log" 2>&1
  echo $? | tee "$3.code"
}
count() {  # ab.json files -> per file: changed rows; then totals for ext and the others
  "$PY" - "$@" <<'PYEOF'
import json, sys
ext_hit = ext_all = others = flagged = 0
for path in sys.argv[1:]:
    doc = json.load(open(path))
    rows = doc["rows"]
    changed = [f"{r['verdict']} {r['contender']} {r['case_id'].split('-')[1]} {r['mode']} {r['ratio']:.3f}" for r in rows
               if r["verdict"] in ("slower", "faster")]
    ext = [r for r in rows if r["contender"] == "ext"]
    ext_hit += sum(r["verdict"] == "slower" for r in ext)
    ext_all += len(ext)
    wrong = [r for r in rows if r["contender"] != "ext" and r["verdict"] in ("slower", "faster")]
    others += len(wrong)
    flagged += bool(changed)
    ratios = ", ".join(f"{r['case_id'].split('-')[1]} {r['mode']} {r['ratio']:.3f} {r['verdict']}"
                       for r in ext if r["ratio"])
    print(f"  {path.split('/')[-2]}: {doc['counts']}; ext: {ratios}; sigma {doc['sigma_median']:.3f}, "
          f"{doc['seconds']:.0f} s" + (f"; flagged: {changed}" if changed else ""))
print(f"comparisons with a slower/faster row: {flagged} of {len(sys.argv) - 1}; "
      f"ext slower: {ext_hit} of {ext_all}; other contenders flagged: {others}")
PYEOF
}

if [ "$AA" -gt 0 ]; then
  echo "== (a) $AA A/A comparisons (identical sides)"
  for i in $(seq 1 "$AA"); do compare "$WORK/once" "$WORK/once" "$WORK/aa$i" > /dev/null; done
  count "$WORK"/aa*/ab.json
fi

for size in ${HEADS:-tenth quarter twice}; do
  echo "== (b) ext on HEAD: $size ($N comparisons)"
  for i in $(seq 1 "$N"); do compare "$WORK/once" "$WORK/$size" "$WORK/$size$i" > /dev/null; done
  count "$WORK/$size"*/ab.json
done

[ "${BUSY:-1}" = 0 ] && { echo "work: $WORK"; exit 0; }
echo "== (c) identical sides with two busy-loop neighbours, --fail-ratio 1.5"
pids=""
if [ "${REUSE:-0}" != 1 ] || [ ! -s "$WORK/busy/ab.json" ]; then
  for _ in 1 2; do timeout 300 sh -c 'while :; do :; done' & pids="$pids $!"; done
fi
code=$(compare "$WORK/once" "$WORK/once" "$WORK/busy" --fail-ratio 1.5)
[ -n "$pids" ] && kill $pids 2>/dev/null; wait 2>/dev/null
echo "ab exit code with busy neighbours: $code (0: nothing judged slower; 2: no clean pair left to judge)"
count "$WORK/busy/ab.json"
"$PY" - "$WORK/busy/ab.json" <<'PYEOF'
import json, sys
doc = json.load(open(sys.argv[1]))
dropped = sum(r["dropped"] for r in doc["rows"]); kept = sum(r["pairs"] for r in doc["rows"])
print(f"block pairs dropped as contaminated: {dropped} of {dropped + kept}")
PYEOF
echo "work: $WORK"
