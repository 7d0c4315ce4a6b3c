#!/usr/bin/env bash
# The whole test suite: formatting, lints, every crate's tests against a real PostgreSQL, the
# Prometheus exposition check and the deployment tests. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

ensure_postgres() {
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    return 0
  fi
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
  for _ in $(seq 1 60); do
    if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  echo "PostgreSQL did not come up on 127.0.0.1:5432; the PostgreSQL tests cannot run" >&2
  exit 1
}

ensure_postgres
# promtool (Debian package prometheus) checks the /metrics exposition in the tests.
bash scripts/ensure-tools.sh

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test"
cargo test --workspace --locked

# The same release build the Dockerfile runs (no Docker engine here to build the image itself).
log "cargo build --release --locked -p jarvis"
cargo build --release --locked -p jarvis

if [ -x deploy/test/run.sh ] || [ -f deploy/test/run.sh ]; then
  log "deployment tests"
  bash deploy/test/run.sh
fi
