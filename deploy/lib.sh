# shellcheck shell=bash
# Shell helpers shared by the deploy scripts (dev-env.sh, docker26.sh). Source it after setting
# LOG_PREFIX (the name each line starts with):
#
#   LOG_PREFIX=dev-env
#   # shellcheck source=deploy/lib.sh
#   source "$SCRIPT_DIR/lib.sh"
#
# It defines log, die, show_log, wait_for, and a CLEANUP list of paths removed when the script
# exits (the EXIT trap is set here).

log() { printf '%s: %s\n' "$LOG_PREFIX" "$*"; }
die() {
    printf '%s: ERROR: %s\n' "$LOG_PREFIX" "$*" >&2
    exit 1
}

# Files and directories to delete when the script exits (temporary files, partial tars, a
# policy-rc.d the script created).
CLEANUP=()
cleanup() {
    local f
    for f in "${CLEANUP[@]}"; do rm -rf -- "$f"; done
}
trap cleanup EXIT

# wait_for SECONDS COMMAND...: poll COMMAND (output discarded) until it
# succeeds; fail once SECONDS have passed. Polls quickly at first, then once
# a second.
wait_for() {
    local deadline=$((SECONDS + $1)) delays=(0.1 0.2 0.5 1) i=0
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep "${delays[i]}"
        if ((i < ${#delays[@]} - 1)); then i=$((i + 1)); fi
    done
    return 0
}

# show_log FILE: last lines of a log, to stderr, before dying.
show_log() {
    [[ -f $1 ]] || return 0
    printf '%s: --- last lines of %s ---\n' "$LOG_PREFIX" "$1" >&2
    tail -n 25 -- "$1" >&2 || true
}
