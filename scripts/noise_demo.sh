#!/usr/bin/env bash
# The timing verdicts on real runs (issue 9), outside the test suite because they rest on
# timing; the unit tests prove the same rules on synthetic rounds (suites/harness/test_stability.py,
# suites/harness/test_compare.py). About 6 minutes on an otherwise idle 2-core machine:
#   (a) RUNS back-to-back runs of one commit, compared pairwise: RUNS-1 A/A pairs; want at
#       most one pair with any `slower` or `faster` row;
#   (b) one more run with two busy-loop neighbours (bounded: they stop by themselves),
#       compared with the last idle run: no `slower`/`faster` row that is not `unstable`,
#       `--fail-ratio 1.5` passes, and the affected benchmarks carry their reason;
#   (c) a run in which the external contender `ext` does its work twice: its benchmarks
#       `slower`, nobody else's.
# Usage: scripts/noise_demo.sh [WORKDIR]   (RUNS=11 by default; CASES and SELECTION choose
# the benchmarks, e.g. CASES=all SELECTION="probe or eager or ext"; PROCESSES=K pools K
# processes per run, `harness bench --processes K` (default 1; plain pytest pools 3); REUSE=1 keeps the runs
# already in WORKDIR and only compares again, e.g. after a change to the compare rule)
set -uo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d)}
PY=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-11}
SELECTION=${SELECTION:-"(probe or eager or ext) and not compiled"}  # pytest -k
CASES=${CASES:-landmarks}  # --bench-cases: landmarks, generated or all
mkdir -p "$WORK/once" "$WORK/twice"
printf 'import torch.nn.functional as F\n\ndef ce(input, target, **kwargs):\n    return F.cross_entropy(input, target, **kwargs)\n' > "$WORK/once/extmod.py"
# Twice the work, forward and backward: the mean of two identical losses.
printf 'import torch.nn.functional as F\n\ndef ce(input, target, **kwargs):\n    return (F.cross_entropy(input, target, **kwargs) + F.cross_entropy(input, target, **kwargs)) / 2\n' > "$WORK/twice/extmod.py"

bench() {  # $1: module dir, $2: output JSON (kept with REUSE=1: only the compares rerun)
  [ "${REUSE:-0}" = 1 ] && [ -s "$2" ] && return 0
  PYTHONPATH="$1:$PWD" "$PY" -m harness bench --out "$2" ${PROCESSES:+--processes "$PROCESSES"} \
    --contender probe=torch.nn.functional:cross_entropy --contender ext=extmod:ce \
    -- --bench-cases "$CASES" -k "$SELECTION" > "$2.log" 2>&1 || {
      echo "benchmark run failed: see $2.log"; exit 2; }
}
counts() {  # the summary line of a compare, and whether it has a judged change
  "$PY" -m harness compare "$1" "$2" "${@:3}" | grep '^summary:'
}

echo "== (a) $((RUNS - 1)) A/A pairs on the idle machine"
for i in $(seq 1 "$RUNS"); do bench "$WORK/once" "$WORK/aa$i.json"; done
flagged=0
for i in $(seq 2 "$RUNS"); do
  line=$(counts "$WORK/aa$((i - 1)).json" "$WORK/aa$i.json")
  echo "pair $((i - 1)): $line"
  case "$line" in *slower*|*faster*) flagged=$((flagged + 1));; esac
done
echo "pairs with a slower/faster row: $flagged of $((RUNS - 1)) (want at most 1)"

echo "== (b) the same code with two busy-loop neighbours during the second run"
pids=""
if [ "${REUSE:-0}" != 1 ] || [ ! -s "$WORK/busy.json" ]; then
  for _ in 1 2; do timeout 120 sh -c 'while :; do :; done' & pids="$pids $!"; done
fi
bench "$WORK/once" "$WORK/busy.json"
[ -n "$pids" ] && kill $pids 2>/dev/null; wait
"$PY" -m harness compare "$WORK/aa$RUNS.json" "$WORK/busy.json" --fail-ratio 1.5; busy=$?
"$PY" - "$WORK/busy.json" <<'PYEOF'
import json, sys
doc = json.load(open(sys.argv[1]))
bad = [b for b in doc["benchmarks"] if b["extra_info"].get("stable") is False]
print(f"unstable in the busy run: {len(bad)} of {len(doc['benchmarks'])}")
for b in bad[:6]:
    print(f"  {b['name']}: {b['extra_info']['unstable_reason']}")
print("fidelity:", doc["xentbench"].get("fidelity"))
PYEOF

echo "== (c) ext does its work twice (want: ext slower, nobody else)"
bench "$WORK/twice" "$WORK/twice.json"
"$PY" -m harness compare "$WORK/aa$RUNS.json" "$WORK/twice.json" --fail-ratio 1.5; twice=$?
echo "the same run against each idle run as BASE: ext benchmarks slower / others slower or faster"
hit=0; total=0; others=0
for i in $(seq 1 "$RUNS"); do
  table=$("$PY" -m harness compare "$WORK/aa$i.json" "$WORK/twice.json" --all)
  h=$(grep -cE '^slower +ext ' <<< "$table"); n=$(grep -cE '^[a-z ]+ +ext ' <<< "$table")
  o=$(grep -E '^(slower|faster) ' <<< "$table" | grep -vcE '^[a-z]+ +ext ')
  echo "  BASE aa$i: $h of $n / $o"
  hit=$((hit + h)); total=$((total + n)); others=$((others + o))
done
echo "ext slower in $hit of $total comparisons (want >= 90%); other contenders flagged $others times"

echo "exit codes: busy A/A $busy (want 0), ext twice $twice (want 1); A/A pairs flagged $flagged (want <= 1)"
[ "$busy" = 0 ] && [ "$twice" = 1 ] && [ "$flagged" -le 1 ]
