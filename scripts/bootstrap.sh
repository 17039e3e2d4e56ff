#!/usr/bin/env bash
# Create a project environment on first use (idempotent): VENV (default .venv) with the
# extras in XENTBENCH_EXTRAS (default none; `make test-env` asks for dev,triton).
#
# A Python that already has torch (say, your CUDA build) is kept: the venv then sees it
# through --system-site-packages and torch is dropped from the pins. Otherwise every
# package, torch included (CPU build), is installed at the exact version in constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.xentbench-installed"
EXTRAS=${XENTBENCH_EXTRAS-}
TARGET=.
[ -n "$EXTRAS" ] && TARGET=".[$EXTRAS]"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" != "extras=$EXTRAS" ]; then
  # built with other extras (before the test environment was split off, .venv had Triton):
  # anew, so that nothing of the other set stays behind
  echo "bootstrap: $VENV was built with $(cat "$STAMP" | grep . || echo 'other extras'); building it anew with extras=$EXTRAS"
  rm -rf "$VENV"
elif [ -f "$STAMP" ] && [ "$STAMP" -nt constraints.txt ] && [ "$STAMP" -nt pyproject.toml ]; then
  exit 0
fi
if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
  echo "bootstrap: keeping $("$PYTHON" -c 'import torch; print("torch", torch.__version__)') from $PYTHON"
  "$PYTHON" -m venv --system-site-packages "$VENV"
  grep -v -E '^(torch|triton|torchvision)==' constraints.txt > "$VENV/constraints.txt"
else
  "$PYTHON" -m venv "$VENV"
  cp constraints.txt "$VENV/constraints.txt"
fi
echo "bootstrap: installing xentbench${EXTRAS:+ with extras $EXTRAS} and its pinned dependencies into $VENV (about a minute)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$VENV/constraints.txt" -e "$TARGET" &
pip_pid=$!
# a background job ignores Ctrl-C: stop pip too, not only this script
trap 'kill "$pip_pid" 2>/dev/null; exit 130' INT
trap 'kill "$pip_pid" 2>/dev/null; exit 143' TERM
# pip -q says nothing while it unpacks torch: a line every 10 s says the install goes on
ticks=0
while kill -0 "$pip_pid" 2>/dev/null; do
  sleep 1
  ticks=$((ticks + 1))
  if [ $((ticks % 10)) -eq 0 ] && kill -0 "$pip_pid" 2>/dev/null; then
    echo "bootstrap: still installing (${ticks} s)"
  fi
done
wait "$pip_pid"
echo "extras=$EXTRAS" > "$STAMP"
