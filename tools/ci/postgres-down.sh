#!/usr/bin/env bash
# Stop the test PostgreSQL server started by tools/ci/postgres-up.sh and remove its state directory
# (KEEP=1 keeps it, e.g. to read the log or to restart with the same data).
set -euo pipefail

STATE="${KAKEHASHI_POSTGRES_DIR:-/tmp/kakehashi-postgres}"
NAME=postgres-down
LOG_FILES=()
SCRIPT="$0"
SCRIPT_ARGS=("$@")
# shellcheck source=tools/ci/lib.sh
source "$(dirname "$0")/lib.sh"

require_root

if [ ! -d "$STATE" ]; then
    say "nothing to stop ($STATE does not exist)"
    exit 0
fi

rm -f "$STATE/env.sh"
if [ -f "$STATE/data/postmaster.pid" ]; then
    BIN="$(dirname "$(ls -d /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)")"
    pid="$(head -n 1 "$STATE/data/postmaster.pid")"
    say "stopping the server (pid $pid)"
    runuser -u postgres -- "$BIN/pg_ctl" -D "$STATE/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
        { kill -9 "$pid" 2>/dev/null || true; }
fi

if [ "${KEEP:-0}" = 1 ]; then
    say "stopped (state kept in $STATE)"
else
    rm -rf "$STATE"
    say "stopped"
fi
