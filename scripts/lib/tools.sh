# shellcheck shell=bash
# Installs the tools a script needs when they are missing, on Debian or Ubuntu, so that the test
# and benchmark scripts pass on a fresh machine with only Rust on it.
#
# Sourced, never executed, by scripts/ensure-tools.sh, scripts/test.sh and the benchmark
# scripts (bench/*/run.sh). Messages go to stderr, prefixed with the calling script's name.
#
#   ensure_apt promtool:prometheus nginx:nginx-light   # COMMAND:PACKAGE, installed together
#   apt_install postgresql postgresql-client           # packages without a command to test
#
# Nothing is installed when every command is already on PATH, so calling these is cheap.

tools_name="${tools_name:-$(basename "${0:-script}")}"

tools_say() { printf '%s: %s\n' "$tools_name" "$*" >&2; }

# Empty as root; "sudo" otherwise. Fails when neither can install packages.
tools_sudo() {
  if [ "$(id -u)" -eq 0 ]; then
    return 0
  fi
  if command -v sudo >/dev/null 2>&1; then
    printf 'sudo'
    return 0
  fi
  tools_say "not root and no sudo: cannot install $*; install it by hand"
  return 1
}

tools_apt_updated=0

# apt_install PACKAGE...: installs Debian packages (without their recommends), running
# `apt-get update` once per script first. Services the packages ship are not needed running:
# the scripts start their own instances.
apt_install() {
  local sudo
  sudo="$(tools_sudo "$*")" || return 1
  if [ "$tools_apt_updated" = 0 ]; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    tools_apt_updated=1
  fi
  tools_say "installing with apt: $*"
  $sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ensure_apt COMMAND:PACKAGE...: installs, in one apt call, the package of every COMMAND that is
# not on PATH, then fails unless every COMMAND is there.
ensure_apt() {
  local pair wanted=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || wanted+=("${pair#*:}")
  done
  if [ "${#wanted[@]}" -gt 0 ]; then
    apt_install "${wanted[@]}" || return 1
    hash -r
  fi
  for pair in "$@"; do
    if ! command -v "${pair%%:*}" >/dev/null 2>&1; then
      tools_say "${pair%%:*} is still missing after installing ${pair#*:}"
      return 1
    fi
  done
}

# ensure_node: node and npm (Debian packages nodejs and npm) for the JavaScript benchmark
# drivers. A node that came with its own npm (NodeSource) is kept as it is.
ensure_node() {
  ensure_apt node:nodejs npm:npm
}

# ensure_npm_ci DIR PACKAGE...: `npm ci` in DIR when one of the PACKAGEs is not in its
# node_modules (the lock file says which versions).
ensure_npm_ci() {
  local dir="$1" package
  shift
  for package in "$@"; do
    if [ ! -d "$dir/node_modules/$package" ]; then
      tools_say "installing the npm packages of $dir (npm ci)"
      (cd "$dir" && npm ci --no-audit --no-fund >&2)
      return
    fi
  done
}

# ensure_postgres: a PostgreSQL server answering on 127.0.0.1:5432 that lets the user postgres
# in without a password from 127.0.0.1 (the tests and benchmarks need a real one, never a
# mock). Installs the Debian package on a fresh machine, allows trust on loopback, starts the
# newest cluster when it is stopped. Expects to run as root (pg_hba.conf, pg_ctlcluster).
ensure_postgres() {
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    return 0
  fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql postgresql-client || return 1
  fi
  local version
  version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)"
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    tools_say "allowing passwordless connections from 127.0.0.1 (pg_hba.conf)"
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  tools_say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do
    if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
      pg_ctlcluster --skip-systemctl-redirect "$version" main reload >/dev/null 2>&1 || true
      return 0
    fi
    sleep 1
  done
  tools_say "PostgreSQL did not come up on 127.0.0.1:5432"
  return 1
}

# ensure_redis: a Redis answering on 127.0.0.1:6379 (Debian packages redis-server and
# redis-tools when missing; started without persistence when it is not running).
ensure_redis() {
  ensure_apt redis-server:redis-server redis-cli:redis-tools || return 1
  if [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; then
    return 0
  fi
  tools_say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 50); do
    [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ] && return 0
    sleep 0.2
  done
  tools_say "Redis did not come up on 127.0.0.1:6379"
  return 1
}

# ensure_py_venv DIR REQUIREMENT...: a Python virtual environment at DIR holding the pinned
# REQUIREMENTs (pip syntax, `name==version`); made (with Debian's python3-venv when the venv
# module is missing) or completed when one is not installed at its version.
ensure_py_venv() {
  local dir="$1" req missing=()
  shift
  ensure_apt python3:python3 || return 1
  if [ ! -x "$dir/bin/python" ]; then
    if ! python3 -m venv "$dir" 2>/dev/null; then
      rm -rf "$dir"
      apt_install python3-venv || return 1
      python3 -m venv "$dir" || return 1
    fi
  fi
  for req in "$@"; do
    "$dir/bin/python" - "$req" <<'PY' 2>/dev/null || missing+=("$req")
import sys
from importlib.metadata import version
name, wanted = sys.argv[1].split("==")
sys.exit(0 if version(name) == wanted else 1)
PY
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    tools_say "installing ${missing[*]} into $dir"
    "$dir/bin/pip" install -q "${missing[@]}" || return 1
  fi
}
