#!/bin/bash
#SBATCH --job-name=sweep
#SBATCH --output=/shared/state/job.1/scheduler.%a.out
#SBATCH --nodes=1
#SBATCH --array=0-3
#SBATCH --ntasks=1
# rendered by kakehashi for job sweep
case ${SLURM_ARRAY_TASK_ID:-} in ''|*[!0-9]*) KH_ELEMENT=0 ;; *) KH_ELEMENT=$(( SLURM_ARRAY_TASK_ID - 0 )) ;; esac
KH_STATE=/shared/state/job.1
: >"$KH_STATE/$KH_ELEMENT.started"
export TASK_INDEX=$(( KH_ELEMENT * 3 ))
export TASK_STEPSIZE=3 TASK_COUNT=10
export KAKEHASHI_JOB_ID=${SLURM_JOB_ID:-}
export KAKEHASHI_ARRAY_ELEMENT=$KH_ELEMENT
exec >/shared/logs/train."$KH_ELEMENT".log 2>&1
export SEED='1 2'
cd /shared/work || exit 1
python sweep.py
kh_rc=$?
printf '%s\n' "$kh_rc" >"$KH_STATE/$KH_ELEMENT.exit.tmp" && mv -f "$KH_STATE/$KH_ELEMENT.exit.tmp" "$KH_STATE/$KH_ELEMENT.exit"
exit "$kh_rc"
