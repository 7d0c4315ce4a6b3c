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
  # A fresh Debian machine: install the server (the tests need a real one, never a mock).
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "installing PostgreSQL (Debian package postgresql)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
  fi
  local version
  version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)"
  # The tests connect as postgres over TCP without a password (trust on loopback only).
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    log "allowing passwordless connections from 127.0.0.1 (pg_hba.conf)"
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do
    if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
      pg_ctlcluster --skip-systemctl-redirect "$version" main reload >/dev/null 2>&1 || true
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
