#!/usr/bin/env bash
# Jarvis side of the queue benchmark; follows the contract in bench/queue/README.md.
#   bench/queue/jarvis.sh [--tasks N] [--concurrency C] [--runs K]
# Builds the release binary, then for each agent (built-in noop, local HTTP agent) runs
# jarvis-driver.js, which prints one result line each on stdout; then jarvis-sqlite.py, the same
# workload on the embedded SQLite store (one more line).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
# node, npm and the driver's npm package (pg), python3, PostgreSQL: installed when missing.
tools_name="jarvis.sh"
# shellcheck source=../../scripts/lib/tools.sh
. "$ROOT/scripts/lib/tools.sh"
ensure_node
ensure_apt python3:python3
ensure_npm_ci "$HERE/peers" pg
ensure_postgres
cargo build --release -p jarvis >&2
for agent in noop http; do
  node "$HERE/jarvis-driver.js" --bin "$ROOT/target/release/jarvis" --agent "$agent" "$@"
done
# The embedded store (no DATABASE_URL): same workload and method, its own line ("backend": "sqlite").
python3 "$HERE/jarvis-sqlite.py" --bin "$ROOT/target/release/jarvis" "$@"
