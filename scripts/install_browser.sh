#!/usr/bin/env bash
# Debian's Chromium, for the screenshot test of report.html (suites/harness/test_browser.py).
exec "$(dirname "$0")/install_deb.sh" chromium chromium chromium-browser
