#!/usr/bin/env bash
# Debian's valgrind (valgrind and callgrind_control), for the instruction counts of
# `python -m harness ab --instructions` (harness/benchmark/counts.py). Without it, ab says
# why and judges by wall time.
exec "$(dirname "$0")/install_deb.sh" valgrind callgrind_control
