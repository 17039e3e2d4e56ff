#!/usr/bin/env bash
# Installs one of Debian's packages unless a command it provides is already there:
#   scripts/install_deb.sh PACKAGE COMMAND [COMMAND ...]   (any COMMAND present: nothing to do)
# Idempotent; needs root (as CI runs) and Debian's package registry.
set -euo pipefail
package=$1; shift
for cmd in "$@"; do
  if command -v "$cmd" >/dev/null 2>&1; then exit 0; fi
done
if [ "$(id -u)" -ne 0 ]; then
  echo "install_deb: not root; install Debian's '$package' package (apt-get install $package)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
"$1" --version
