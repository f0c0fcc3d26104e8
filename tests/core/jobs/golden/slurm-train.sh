#!/bin/bash
#SBATCH --job-name=ddp
#SBATCH --output=/shared/state/job.1/scheduler.%a.out
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
# rendered by kakehashi for job ddp
case ${SLURM_ARRAY_TASK_ID:-} in ''|*[!0-9]*) KH_ELEMENT=0 ;; *) KH_ELEMENT=$(( SLURM_ARRAY_TASK_ID - 0 )) ;; esac
KH_STATE=/shared/state/job.1
: >"$KH_STATE/$KH_ELEMENT.started"
export TASK_INDEX=$(( KH_ELEMENT * 1 ))
export TASK_STEPSIZE=1 TASK_COUNT=1
export KAKEHASHI_JOB_ID=${SLURM_JOB_ID:-}
export KAKEHASHI_ARRAY_ELEMENT=$KH_ELEMENT
exec >/shared/logs/train.log 2>&1
cd /shared/work || exit 1
srun /opt/venv/bin/python -m core.jobs.launch -- python fit.py
kh_rc=$?
printf '%s\n' "$kh_rc" >"$KH_STATE/$KH_ELEMENT.exit.tmp" && mv -f "$KH_STATE/$KH_ELEMENT.exit.tmp" "$KH_STATE/$KH_ELEMENT.exit"
exit "$kh_rc"
