#!/usr/bin/env bash
# Installs the external tools the test suite needs when they are missing (Debian/Ubuntu):
#   promtool  (package prometheus)  - `promtool check metrics` on GET /metrics
#   pgbouncer (package pgbouncer)   - the connection-pooler test (tests/api/pooler.rs)
#   .tools/py (a Python venv with the official `openai` client) - the AI gateway's SDK test
#   (scripts/schemathesis.sh adds schemathesis, pinned there, to the same venv)
# Safe to run repeatedly; does nothing when everything is present. CI calls it before the tests.
# The install helpers are scripts/lib/tools.sh, shared with the benchmark scripts.
set -euo pipefail
tools_name="ensure-tools"
# shellcheck source=lib/tools.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/tools.sh"

# The package brings a Prometheus server too; only its promtool is used (its service is not
# started by the tests).
ensure_apt promtool:prometheus
# PgBouncer (transaction mode) stands between two instances and PostgreSQL in
# tests/api/pooler.rs. Debian puts it in /usr/sbin, which is not on every user's PATH.
PATH="$PATH:/usr/sbin" ensure_apt pgbouncer:pgbouncer
ensure_py_venv "$(dirname "${BASH_SOURCE[0]}")/../.tools/py" openai==3.63.0
echo "ensure-tools: all present"
