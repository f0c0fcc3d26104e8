#!/bin/bash
#$ -N ddp
#$ -S /bin/bash
#$ -o /shared/state/job.1/scheduler.out
#$ -j y
#$ -pe mpi 8
# rendered by kakehashi for job ddp
case ${SGE_TASK_ID:-} in ''|*[!0-9]*) KH_ELEMENT=0 ;; *) KH_ELEMENT=$(( SGE_TASK_ID - 1 )) ;; esac
KH_STATE=/shared/state/job.1
: >"$KH_STATE/$KH_ELEMENT.started"
export TASK_INDEX=$(( KH_ELEMENT * 1 ))
export TASK_STEPSIZE=1 TASK_COUNT=1
export KAKEHASHI_JOB_ID=${JOB_ID:-}
export KAKEHASHI_ARRAY_ELEMENT=$KH_ELEMENT
exec >/shared/logs/train.log 2>&1
export PATH=/opt/venv/bin:/usr/bin:/bin
export VIRTUAL_ENV=/opt/venv
cd /shared/work || exit 1
mpirun -np 8 /opt/venv/bin/python -m core.jobs.launch -- python fit.py
kh_rc=$?
printf '%s\n' "$kh_rc" >"$KH_STATE/$KH_ELEMENT.exit.tmp" && mv -f "$KH_STATE/$KH_ELEMENT.exit.tmp" "$KH_STATE/$KH_ELEMENT.exit"
exit "$kh_rc"
