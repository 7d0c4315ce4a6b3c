#!/usr/bin/env bash
# Chaos suite: real `jarvis serve` processes (release binary) under faults — PostgreSQL restarted
# under load, an instance SIGKILLed mid-task, an agent that hangs, a network cut to PostgreSQL
# (drop and blackhole), the log directory's disk full, a wall-clock jump — and for each: requests
# failed, tasks lost, history records lost, duplicate records, recovery time (bench/chaos/README.md).
#
#   bash bench/chaos/run.sh [--short] [--only LIST] [--skip LIST] [--keep]
#
#   --short   short windows (2 s warm-up, 4 s fault, 4 s after): the CI run, about 2 minutes
#   --only    comma-separated scenarios (default: all; names in chaos.py --help)
#   --skip    comma-separated scenarios to leave out
#   --keep    keep the work directories and databases (for a post-mortem)
#
# WARNING: the postgres-restart scenario RESTARTS THE MACHINE'S POSTGRESQL CLUSTER
# (pg_ctlcluster --skip-systemctl-redirect <version> main restart): every other client of that
# server loses its connections for about a second. Use --skip postgres-restart on a shared
# machine when that matters. disk-full-log mounts a tmpfs (needs root); the clock scenarios
# compile clockshift.c (an LD_PRELOAD library; cc).
#
# Environment: JARVIS_BIN=path uses that binary instead of building target/release/jarvis.
#
# Writes bench/out/chaos-<UTC timestamp>.md and prints the table. Exit status 1 when an invariant
# is broken (an acknowledged task lost or not final, an attempt without its record, a duplicate
# record), 2 when a scenario could not run.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
tools_name="chaos/run.sh"
# shellcheck source=../../scripts/lib/tools.sh
. "$ROOT/scripts/lib/tools.sh"
ensure_postgres
ensure_apt python3:python3 psql:postgresql-client createdb:postgresql-client cc:gcc
BIN="${JARVIS_BIN:-}"
if [ -z "$BIN" ]; then
  cargo build --release --locked -p jarvis >&2
  BIN="$ROOT/target/release/jarvis"
fi
exec python3 "$HERE/chaos.py" --bin "$BIN" "$@"
