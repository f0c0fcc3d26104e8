#!/bin/bash
#$ -N sweep
#$ -S /bin/bash
#$ -cwd
#$ -o /shared/state/job.1/scheduler.out
#$ -j y
#$ -t 1-4
#$ -l cpu_4=1
# rendered by kakehashi for job sweep
case ${SGE_TASK_ID:-} in ''|*[!0-9]*) KH_ELEMENT=0 ;; *) KH_ELEMENT=$(( SGE_TASK_ID - 1 )) ;; esac
KH_STATE=/shared/state/job.1
: >"$KH_STATE/$KH_ELEMENT.started"
export TASK_INDEX=$(( KH_ELEMENT * 3 ))
export TASK_STEPSIZE=3 TASK_COUNT=10
export KAKEHASHI_JOB_ID=${JOB_ID:-}
export KAKEHASHI_ARRAY_ELEMENT=$KH_ELEMENT
exec >/shared/logs/train."$KH_ELEMENT".log 2>&1
export PATH=/opt/venv/bin:/usr/bin:/bin
export VIRTUAL_ENV=/opt/venv
. /etc/profile.d/modules.sh
export SEED='1 2'
cd /shared/work || exit 1
python sweep.py
kh_rc=$?
printf '%s\n' "$kh_rc" >"$KH_STATE/$KH_ELEMENT.exit.tmp" && mv -f "$KH_STATE/$KH_ELEMENT.exit.tmp" "$KH_STATE/$KH_ELEMENT.exit"
exit "$kh_rc"
