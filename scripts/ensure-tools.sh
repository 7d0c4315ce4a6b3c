#!/usr/bin/env bash
# Installs the external tools the test suite needs when they are missing (Debian/Ubuntu):
#   promtool  (package prometheus)  - `promtool check metrics` on GET /metrics
# Safe to run repeatedly; does nothing when everything is present. CI calls it before the tests.
set -euo pipefail

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)

if [ ${#need[@]} -eq 0 ]; then
  echo "ensure-tools: all present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "ensure-tools: missing ${need[*]} and not root (no sudo); install them by hand" >&2
    exit 1
  fi
fi

echo "ensure-tools: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: only the binaries, not a running Prometheus server's extras.
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
command -v promtool >/dev/null 2>&1 || { echo "ensure-tools: promtool still missing" >&2; exit 1; }
echo "ensure-tools: done"
