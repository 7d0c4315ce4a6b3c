#!/usr/bin/env bash
# The trip forecaster on generated scenarios (issue 16): lead time before the breaker trips and
# false warnings per service per day. Pure simulation (no server, no database); see README.md.
#
#   bench/predict/run.sh [--services N] [--seeds "42 7"] [--horizon-secs S] …
set -euo pipefail
cd "$(dirname "$0")/../.."
seeds="42 7"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
mkdir -p bench/predict/results
out="bench/predict/results/predict-$(date -u +%Y%m%dT%H%M%SZ).md"
cargo build -q --release -p jarvis-learning --example predict_eval
{
  echo "# Trip forecaster, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' + uncommitted changes')"
  for seed in $seeds; do
    echo
    target/release/examples/predict_eval --seed "$seed" --services 200 "${args[@]}"
  done
} | tee "$out"
echo "written: $out" >&2
