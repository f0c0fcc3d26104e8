#!/usr/bin/env bash
# Run a command while N busy processes keep every core saturated; stop them when the command ends.
#
#   tools/ci/saturate.sh [-n N] [--] COMMAND [ARG...]
#
# N defaults to the number of cores (SATURATE_N overrides it). The busy processes are plain shell loops that
# never sleep; they start before the command and are ended when it exits, fails, or the script is interrupted
# (Ctrl-C, SIGTERM), so none is left behind. The exit status is the command's.
#
#   tools/ci/saturate.sh -- make test
#   tools/ci/saturate.sh -n 4 -- .venv/bin/python -m pytest -q tests/core/jobs
set -u

usage() {
    echo "usage: $0 [-n N] [--] COMMAND [ARG...]" >&2
    exit 2
}

n="${SATURATE_N:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)}"
while [ $# -gt 0 ]; do
    case "$1" in
    -n)
        [ $# -ge 2 ] || usage
        n="$2"
        shift 2
        ;;
    -h | --help) usage ;;
    --)
        shift
        break
        ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || usage
case "$n" in
'' | *[!0-9]*)
    echo "error: -n must be a whole number of busy processes, not '$n'" >&2
    exit 2
    ;;
esac

busy=()
command_pid=""
stop_busy() {
    local pid
    for pid in "${busy[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${busy[@]}"; do
        wait "$pid" 2>/dev/null
    done
    busy=()
}
on_signal() {
    # the command gets the signal too (forwarded: it runs in the background so that `wait` can be interrupted)
    [ -n "$command_pid" ] && kill "-$1" "$command_pid" 2>/dev/null && wait "$command_pid" 2>/dev/null
    exit "$2"
}
trap stop_busy EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

for _ in $(seq 1 "$n"); do
    (
        trap - EXIT INT TERM
        while :; do :; done
    ) &
    busy+=("$!")
done
echo "saturate: $n busy processes (pids ${busy[*]}) while: $*" >&2

"$@" <&0 &
command_pid=$!
wait "$command_pid"
status=$?
command_pid=""
stop_busy
echo "saturate: busy processes stopped; the command exited $status" >&2
exit "$status"
