#!/usr/bin/env bash
# The Jarvis queue benchmark behind PgBouncer in transaction mode, beside the same benchmark on
# direct connections, alternating, in one run (bench/queue/README.md, "Behind PgBouncer").
#
#   bash bench/queue/pgbouncer.sh [--bin target/release/jarvis] [--tasks N] [--runs K] [--pool P]
#
# Starts a PgBouncer (pool_mode = transaction, default_pool_size = P, default 20) on a free
# port in front of the benchmark's PostgreSQL (127.0.0.1:5432, trust), and runs
# `jarvis-driver.js --agent noop --cross off` K times each way: with BENCH_PGBOUNCER_PORT (every
# instance's pools through PgBouncer, JARVIS_DATABASE_POOLER=pgbouncer, LISTEN direct) and
# without. Prints one line per run and the medians. Needs pgbouncer (`bash scripts/ensure-tools.sh`
# installs it) and `npm ci` in bench/queue/peers.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="$ROOT/target/release/jarvis"
TASKS=20000
RUNS=3
POOL=20
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift 2 ;;
    --tasks) TASKS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --pool) POOL="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for v in "$TASKS" "$RUNS" "$POOL"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "--tasks/--runs/--pool must be positive integers" >&2; exit 2; }
done

bouncer="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
[ -x "$bouncer" ] || { echo "pgbouncer not found: bash scripts/ensure-tools.sh installs it" >&2; exit 1; }
[ -x "$BIN" ] || { echo "no jarvis binary at $BIN (cargo build --release)" >&2; exit 1; }

dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
printf '"postgres" ""\n' > "$dir/users.txt"
cat > "$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=5432
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = $POOL
max_client_conn = 1000
server_reset_query =
EOF
as_user=()
if [ "$(id -u)" = 0 ]; then
  # PgBouncer refuses to run as root; it switches to this user, who must read its files.
  chmod 755 "$dir"; chmod 644 "$dir"/*
  as_user=(-u postgres)
fi
"$bouncer" "${as_user[@]}" "$dir/pgbouncer.ini" 2> "$dir/pgbouncer.log" &
bpid=$!
trap 'kill "$bpid" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc 'SELECT 1' > /dev/null 2>&1 && break
  sleep 0.1
done
psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc 'SELECT 1' > /dev/null ||
  { echo "pgbouncer did not start:" >&2; cat "$dir/pgbouncer.log" >&2; exit 1; }

run() {
  node "$HERE/jarvis-driver.js" --bin "$BIN" --agent noop --tasks "$TASKS" --runs 1 --cross off 2> /dev/null |
    python3 -c 'import json,sys; print(round(json.loads(sys.stdin.read())["processPerSec"]))'
}
direct=()
pooled=()
for k in $(seq "$RUNS"); do
  d="$(run)"
  p="$(BENCH_PGBOUNCER_PORT="$port" run)"
  direct+=("$d")
  pooled+=("$p")
  echo "run $k: direct $d tasks/s, behind PgBouncer (transaction mode, pool $POOL) $p tasks/s"
done
# The pooled runs did go through PgBouncer: it logged their clients' logins.
logins="$(grep -c 'login attempt: db=bench_jarvis' "$dir/pgbouncer.log" || true)"
[ "$logins" -gt 0 ] || { echo "PgBouncer saw no client of the benchmark's databases" >&2; exit 1; }
echo "PgBouncer: $logins client logins to the benchmark's databases"
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
dm="$(median "${direct[@]}")"
pm="$(median "${pooled[@]}")"
echo "median: direct $dm tasks/s, behind PgBouncer $pm tasks/s ($(python3 -c "print(f'{$pm/$dm:.2f}')")x)"
