#!/usr/bin/env bash
# Stop the test SGE cluster started by tools/ci/sge-up.sh: kill its jobs, stop sge_execd and sge_qmaster,
# and remove the state directory (KEEP=1 keeps it, e.g. to read the daemons' messages files).
set -euo pipefail

STATE="$(realpath -m "${KAKEHASHI_SGE_DIR:-/tmp/kakehashi-sge}")"
export SGE_ROOT=/var/lib/gridengine
export SGE_CELL=default
NAME=sge-down
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

pid_of() { [ -s "$STATE/run/$1.pid" ] && cat "$STATE/run/$1.pid" || true; }

qmaster="$(pid_of qmaster)"
execd="$(pid_of execd)"
HOST="$(hostname)"

if running "$qmaster" && command -v qconf >/dev/null 2>&1; then
    if running "$execd"; then
        say "stopping sge_execd and its jobs"
        qconf -kej "$HOST" >/dev/null 2>&1 || true
        wait_gone "$execd" 100 || true
    fi
    say "stopping sge_qmaster"
    qconf -km >/dev/null 2>&1 || true
    wait_gone "$qmaster" 150 || true
fi

for pid in "$execd" "$qmaster"; do
    stop_pid "$pid"
done

# Fallback: shepherds of this cluster (their working directory is in our execd spool) and their jobs.
for cwd in /proc/[0-9]*/cwd; do
    pid="${cwd#/proc/}"
    pid="${pid%/cwd}"
    case "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" in */sge_shepherd*) ;; *) continue ;; esac
    case "$(readlink "$cwd" 2>/dev/null || true)" in "$STATE"/*) ;; *) continue ;; esac
    say "killing leftover sge_shepherd $pid and its processes"
    # shellcheck disable=SC2046
    kill -9 "$pid" $(tree "$pid") 2>/dev/null || true
done

if [ "${KEEP:-0}" = 1 ]; then
    say "stopped (state kept in $STATE)"
else
    rm -rf "$STATE"
    say "stopped"
fi
