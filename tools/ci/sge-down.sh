#!/usr/bin/env bash
# Stop the test SGE cluster started by tools/ci/sge-up.sh: kill its jobs, stop sge_execd and sge_qmaster,
# and remove the state directory (KEEP=1 keeps it, e.g. to read the daemons' messages files).
set -euo pipefail

STATE="$(realpath -m "${KAKEHASHI_SGE_DIR:-/tmp/kakehashi-sge}")"
export SGE_ROOT=/var/lib/gridengine
export SGE_CELL=default
say() { echo "sge-down: $*"; }

if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
    exec sudo -E "$0" "$@"
fi

if [ ! -d "$STATE" ]; then
    say "nothing to stop ($STATE does not exist)"
    exit 0
fi

pid_of() { [ -s "$STATE/run/$1.pid" ] && cat "$STATE/run/$1.pid" || true; }
# True if pid $1 exists and is not a zombie (an exited daemon may stay a zombie when init does not reap it).
running() {
    local line
    [ -n "$1" ] && read -r line 2>/dev/null <"/proc/$1/stat" || return 1
    line="${line##*) }"
    [ "${line%% *}" != Z ]
}
alive() { running "$1"; }
# Wait for pid $1 to exit, up to $2 tenths of a second.
wait_gone() {
    local i
    for ((i = 0; i < $2; i++)); do alive "$1" || return 0; sleep 0.1; done
    return 1
}
descendants() {
    # Children from /proc (no procps needed): field 4 of /proc/PID/stat is the parent pid.
    local st line rest c
    for st in /proc/[0-9]*/stat; do
        read -r line 2>/dev/null <"$st" || continue
        rest="${line##*) }"
        # shellcheck disable=SC2086
        set -- $rest
        if [ "${2:-}" = "$PARENT" ]; then
            c="${st#/proc/}"
            echo "${c%/stat}"
        fi
    done
}
tree() { # all descendants of pid $1
    local c
    for c in $(PARENT="$1" descendants); do
        echo "$c"
        tree "$c"
    done
}

qmaster="$(pid_of qmaster)"
execd="$(pid_of execd)"
HOST="$(hostname)"

if alive "$qmaster" && command -v qconf >/dev/null 2>&1; then
    if alive "$execd"; then
        say "stopping sge_execd and its jobs"
        qconf -kej "$HOST" >/dev/null 2>&1 || true
        wait_gone "$execd" 100 || true
    fi
    say "stopping sge_qmaster"
    qconf -km >/dev/null 2>&1 || true
    wait_gone "$qmaster" 150 || true
fi

for pid in "$execd" "$qmaster"; do
    if alive "$pid"; then
        kill "$pid" 2>/dev/null || true
        wait_gone "$pid" 50 || kill -9 "$pid" 2>/dev/null || true
    fi
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
