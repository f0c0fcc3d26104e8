# Shared by tools/ci/*-up.sh and *-down.sh: messages, root, Debian packages, processes from /proc.
# Source it after setting NAME (e.g. NAME=slurm-up), SCRIPT="$0", SCRIPT_ARGS=("$@") and, for fail(), LOG_FILES
# (an array of logs to show; globs are expanded when fail runs).
# Needs only bash and /proc (no procps).

say() { echo "$NAME: $*"; }

# Print an error, the tail of every non-empty log that LOG_FILES names (globs allowed), and exit 1.
fail() {
    echo "$NAME: ERROR: $*" >&2
    local pattern f
    for pattern in "${LOG_FILES[@]}"; do
        # shellcheck disable=SC2086
        for f in $pattern; do
            if [ -s "$f" ]; then
                echo "---- tail of $f ----" >&2
                tail -n 30 "$f" >&2 || true
            fi
        done
    done
    exit 1
}

# Re-run the calling script as root through sudo when not root; fail if that is impossible (when $1 is "strict").
require_root() {
    [ "$(id -u)" = 0 ] && return 0
    if command -v sudo >/dev/null 2>&1; then
        exec sudo -E "$SCRIPT" "${SCRIPT_ARGS[@]}"
    fi
    [ "${1:-}" = strict ] && fail "must run as root (or with sudo available)"
    return 0
}

# Install the Debian packages among "$@" that are missing, without letting their scripts start system daemons.
install_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]} (apt-get)"
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created=1
    fi
    local rc=0 log="${TMPDIR:-/tmp}/kakehashi-$NAME-apt.log"
    {
        apt-get update -qq -o DPkg::Lock::Timeout=300 &&
            apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
    } >"$log" 2>&1 || rc=$?
    [ "$created" = 1 ] && rm -f "$policy"
    if [ "$rc" != 0 ]; then
        tail -n 30 "$log" >&2
        fail "apt-get install ${missing[*]} failed"
    fi
}

# True if pid $1 exists and is not a zombie (an exited daemon may stay a zombie when init does not reap it).
running() {
    local line
    [ -n "${1:-}" ] && read -r line 2>/dev/null <"/proc/$1/stat" || return 1
    line="${line##*) }"
    [ "${line%% *}" != Z ]
}

# True if pid file $1 names a running process.
alive_pidfile() { [ -s "$1" ] && running "$(cat "$1")"; }

# Wait for pid $1 to exit, up to $2 tenths of a second.
wait_gone() {
    local i
    for ((i = 0; i < $2; i++)); do running "$1" || return 0; sleep 0.1; done
    return 1
}

# Stop pid $1: SIGTERM, then SIGKILL if it is still there after $2 tenths of a second (default 50).
stop_pid() {
    running "$1" || return 0
    kill "$1" 2>/dev/null || true
    wait_gone "$1" "${2:-50}" || kill -9 "$1" 2>/dev/null || true
}

# Children of pid $1, from /proc (field 4 of /proc/PID/stat is the parent pid).
children() {
    local parent="$1" st line rest c
    for st in /proc/[0-9]*/stat; do
        read -r line 2>/dev/null <"$st" || continue
        rest="${line##*) }"
        # shellcheck disable=SC2086
        set -- $rest
        if [ "${2:-}" = "$parent" ]; then
            c="${st#/proc/}"
            echo "${c%/stat}"
        fi
    done
}

# All descendants of pid $1.
tree() {
    local c
    for c in $(children "$1"); do
        echo "$c"
        tree "$c"
    done
}

# True if something listens on 127.0.0.1 port $1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
