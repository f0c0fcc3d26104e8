#!/usr/bin/env bash
# Stop the test Slurm cluster started by tools/ci/slurm-up.sh: cancel its jobs, stop slurmd,
# slurmctld and the private munged, and remove the state directory (KEEP=1 keeps it, e.g. to read logs).
set -euo pipefail

STATE="$(realpath -m "${KAKEHASHI_SLURM_DIR:-/tmp/kakehashi-slurm}")"
say() { echo "slurm-down: $*"; }

if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
    exec sudo -E "$0" "$@"
fi

if [ ! -d "$STATE" ]; then
    say "nothing to stop ($STATE does not exist)"
    exit 0
fi

export SLURM_CONF="$STATE/slurm.conf"
pid_of() { [ -s "$STATE/$1.pid" ] && cat "$STATE/$1.pid" || true; }
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

shutdown_sent=0
ctld="$(pid_of slurmctld)"
slurmd="$(pid_of slurmd)"
munged="$(pid_of munged)"

if alive "$ctld" && [ -f "$SLURM_CONF" ]; then
    # Cancel every job so that no slurmstepd or job process outlives the cluster.
    jobs="$(squeue -h -t PD,R,CG,S,CF,RQ,RS,SI,SO,ST -o %A 2>/dev/null | tr '\n' ' ' || true)"
    if [ -n "${jobs// /}" ]; then
        say "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 100); do
            [ -z "$(squeue -h -t R,CG,S,CF -o %A 2>/dev/null || true)" ] && break
            sleep 0.1
        done
    fi
    say "stopping slurmctld and slurmd"
    scontrol shutdown >/dev/null 2>&1 && shutdown_sent=1
fi

for pid in "$slurmd" "$ctld"; do
    if alive "$pid"; then
        [ "$shutdown_sent" = 1 ] && wait_gone "$pid" 100 && continue
        { kill "$pid" 2>/dev/null || true; wait_gone "$pid" 50 || kill -9 "$pid" 2>/dev/null || true; }
    fi
done

# Fallback: any slurmstepd of this cluster still alive (e.g. slurmctld had died) and its job processes.
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
for exe in /proc/[0-9]*/exe; do
    pid="${exe#/proc/}"
    pid="${pid%/exe}"
    case "$(readlink "$exe" 2>/dev/null || true)" in */slurmstepd*) ;; *) continue ;; esac
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF" || continue
    say "killing leftover slurmstepd $pid and its processes"
    # shellcheck disable=SC2046
    kill -9 "$pid" $(tree "$pid") 2>/dev/null || true
done

if alive "$munged"; then
    say "stopping munged"
    kill "$munged" 2>/dev/null || true
    wait_gone "$munged" 50 || kill -9 "$munged" 2>/dev/null || true
fi

if [ "${KEEP:-0}" = 1 ]; then
    say "stopped (state kept in $STATE)"
else
    rm -rf "$STATE"
    say "stopped"
fi
