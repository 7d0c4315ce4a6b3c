#!/usr/bin/env bash
# The cascade benchmark: callers → service A → service B, B failing (dies, hangs, slows), with
# and without a Jarvis circuit breaker in front of B, side by side. Writes
# bench/out/cascade-<timestamp>.md (and prints it). Takes about 2.5 minutes plus the build.
#
#   bash bench/cascade/run.sh                 # the default run (bench/cascade/README.md)
#   bash bench/cascade/run.sh --rate 200      # any option of the example (--help lists them)
set -euo pipefail
cd "$(dirname "$0")/../.."

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="bench/out/cascade-${stamp}.md"
mkdir -p bench/out

# Hundreds of connections are open at once while B hangs (callers → A → B, both variants).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release --locked -p jarvis-breaker --example cascade
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
target/release/examples/cascade --out "$out" "$@"
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "report: $out" >&2
