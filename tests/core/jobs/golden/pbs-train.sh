#!/bin/bash
#PBS -N ddp
#PBS -S /bin/bash
#PBS -o /shared/state/job.1/
#PBS -j oe
#PBS -l select=2:ncpus=4:mpiprocs=4:ngpus=4
# rendered by kakehashi for job ddp
case ${PBS_ARRAY_INDEX:-} in ''|*[!0-9]*) KH_ELEMENT=0 ;; *) KH_ELEMENT=$(( PBS_ARRAY_INDEX - 0 )) ;; esac
KH_STATE=/shared/state/job.1
: >"$KH_STATE/$KH_ELEMENT.started"
export TASK_INDEX=$(( KH_ELEMENT * 1 ))
export TASK_STEPSIZE=1 TASK_COUNT=1
export KAKEHASHI_JOB_ID=${PBS_JOBID:-}
export KAKEHASHI_ARRAY_ELEMENT=$KH_ELEMENT
exec >/shared/logs/train.log 2>&1
export PATH=/opt/venv/bin:/usr/bin:/bin
export VIRTUAL_ENV=/opt/venv
cd /shared/work || exit 1
mpirun -np 8 /opt/venv/bin/python -m core.jobs.launch -- python fit.py
kh_rc=$?
printf '%s\n' "$kh_rc" >"$KH_STATE/$KH_ELEMENT.exit.tmp" && mv -f "$KH_STATE/$KH_ELEMENT.exit.tmp" "$KH_STATE/$KH_ELEMENT.exit"
exit "$kh_rc"
