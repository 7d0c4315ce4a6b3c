#!/usr/bin/env bash
# The health benchmark with what it needs: installs, when missing, nginx (Debian nginx-light, the
# target), the Prometheus blackbox exporter (prometheus-blackbox-exporter, the peer), node
# (nodejs, blackbox.js's driver) and python3 (bench.py), builds the release binary unless
# --jarvis names one, then runs bench.py with the same arguments.
#
#   bench/health/run.sh --services 5000 --seconds 60 --blackbox-targets 2000
#   bench/health/run.sh --services 500 --seconds 10 --warmup 3 --blackbox-targets 200   # smoke
#
# See bench/health/README.md for the method and bench.py --help for every option.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
tools_name="health/run.sh"
# shellcheck source=../../scripts/lib/tools.sh
. "$ROOT/scripts/lib/tools.sh"
ensure_apt nginx:nginx-light \
  prometheus-blackbox-exporter:prometheus-blackbox-exporter \
  node:nodejs \
  python3:python3

given_binary=0
for arg in "$@"; do
  case "$arg" in --jarvis | --jarvis=*) given_binary=1 ;; esac
done
if [ "$given_binary" = 0 ]; then
  cargo build --release -p jarvis >&2
fi
exec python3 "$HERE/bench.py" "$@"
