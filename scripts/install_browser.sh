#!/usr/bin/env bash
# Debian's Chromium, for the screenshot test of report.html (suites/harness/test_browser.py).
# Idempotent; needs root (as CI runs) and Debian's package registry.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install_browser: not root; install Debian's 'chromium' package (apt-get install chromium)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
chromium --version
