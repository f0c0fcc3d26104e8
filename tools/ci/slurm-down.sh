#!/usr/bin/env bash
# Stop the test Slurm cluster started by tools/ci/slurm-up.sh: cancel its jobs, stop slurmd,
# slurmctld and the private munged, and remove the state directory (KEEP=1 keeps it, e.g. to read logs).
set -euo pipefail

STATE="$(realpath -m "${KAKEHASHI_SLURM_DIR:-/tmp/kakehashi-slurm}")"
NAME=slurm-down
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

export SLURM_CONF="$STATE/slurm.conf"
pid_of() { [ -s "$STATE/$1.pid" ] && cat "$STATE/$1.pid" || true; }

shutdown_sent=0
ctld="$(pid_of slurmctld)"
slurmd="$(pid_of slurmd)"
munged="$(pid_of munged)"

if running "$ctld" && [ -f "$SLURM_CONF" ]; then
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
    if running "$pid"; then
        [ "$shutdown_sent" = 1 ] && wait_gone "$pid" 100 && continue
        stop_pid "$pid"
    fi
done

# Fallback: any slurmstepd of this cluster still alive (e.g. slurmctld had died) and its job processes.
for exe in /proc/[0-9]*/exe; do
    pid="${exe#/proc/}"
    pid="${pid%/exe}"
    case "$(readlink "$exe" 2>/dev/null || true)" in */slurmstepd*) ;; *) continue ;; esac
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF" || continue
    say "killing leftover slurmstepd $pid and its processes"
    # shellcheck disable=SC2046
    kill -9 "$pid" $(tree "$pid") 2>/dev/null || true
done

if running "$munged"; then
    say "stopping munged"
    stop_pid "$munged"
fi

if [ "${KEEP:-0}" = 1 ]; then
    say "stopped (state kept in $STATE)"
else
    rm -rf "$STATE"
    say "stopped"
fi
