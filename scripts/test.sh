#!/usr/bin/env bash
# The whole test suite: formatting, lints, every crate's tests against a real PostgreSQL, the
# Prometheus exposition check and the deployment tests. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }
# ensure_postgres and the other install helpers, shared with scripts/ensure-tools.sh and bench/.
# shellcheck source=lib/tools.sh
. scripts/lib/tools.sh

ensure_postgres
# Redis: the AI gateway's shared response cache is tested against a real one.
ensure_redis
# promtool (Debian package prometheus) checks the /metrics exposition in the tests.
bash scripts/ensure-tools.sh

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test"
cargo test --workspace --locked

# The dashboard in a real browser: headless Debian chromium driven by playwright-core, axe-core
# on every page (installs chromium and the npm packages when missing).
log "dashboard end-to-end tests"
bash tests/e2e/run.sh

# The same release build the Dockerfile runs (no Docker engine here to build the image itself).
log "cargo build --release --locked -p jarvis"
cargo build --release --locked -p jarvis

# The queue's invariants under faults, with real processes of that release binary: PostgreSQL
# restarted (this machine's cluster, once, for about a second), an instance SIGKILLed, a hanging
# agent, PostgreSQL cut off and blackholed, the log disk full, a clock jump. Fails when an
# acknowledged task is lost, an attempt has no record or a record is duplicated
# (bench/chaos/README.md; about 2 minutes).
log "chaos suite (short)"
JARVIS_BIN=target/release/jarvis bash bench/chaos/run.sh --short

# The HTTP API against its own OpenAPI document (docs/openapi.json, served at
# /api/v1/openapi.json): schemathesis, on the embedded store and on PostgreSQL.
log "schemathesis"
JARVIS_BIN=target/release/jarvis bash scripts/schemathesis.sh sqlite postgres

if [ -x deploy/test/run.sh ] || [ -f deploy/test/run.sh ]; then
  log "deployment tests"
  bash deploy/test/run.sh
fi
