#!/bin/bash
#PBS -N sweep
#PBS -S /bin/bash
#PBS -o /shared/state/job.1/
#PBS -j oe
#PBS -J 0-3
#PBS -l select=1:ncpus=1
# rendered by kakehashi for job sweep
case ${PBS_ARRAY_INDEX:-} in ''|*[!0-9]*) KH_ELEMENT=0 ;; *) KH_ELEMENT=$(( PBS_ARRAY_INDEX - 0 )) ;; esac
KH_STATE=/shared/state/job.1
: >"$KH_STATE/$KH_ELEMENT.started"
export TASK_INDEX=$(( KH_ELEMENT * 3 ))
export TASK_STEPSIZE=3 TASK_COUNT=10
export KAKEHASHI_JOB_ID=${PBS_JOBID:-}
export KAKEHASHI_ARRAY_ELEMENT=$KH_ELEMENT
exec >/shared/logs/train."$KH_ELEMENT".log 2>&1
export PATH=/opt/venv/bin:/usr/bin:/bin
export VIRTUAL_ENV=/opt/venv
export SEED='1 2'
cd /shared/work || exit 1
python sweep.py
kh_rc=$?
printf '%s\n' "$kh_rc" >"$KH_STATE/$KH_ELEMENT.exit.tmp" && mv -f "$KH_STATE/$KH_ELEMENT.exit.tmp" "$KH_STATE/$KH_ELEMENT.exit"
exit "$kh_rc"
