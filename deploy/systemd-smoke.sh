#!/usr/bin/env bash
# One Slipway unit under real systemd, as an operator sees it: boot the image with systemd
# (slipway/debian-systemd:bookworm, from deploy/dev-env.sh) as a container with systemd as PID 1
# and the host's network (the dev broker listens on 127.0.0.1, and RabbitMQ lets guest in from
# loopback only), install the packages, give slipway-lint its broker password as a credential,
# then show `systemctl start`, `systemctl status` (active, the worker's STATUS=), the watchdog
# being fed, `journalctl -o verbose` (PRIORITY and the fields of each line) and a clean
# `systemctl stop`. The worker uses a vhost of its own, deleted at the end with the container.
# tests/tests/deb_package.rs checks the same with assertions; this prints the session.
#
# Usage: bash deploy/systemd-smoke.sh [--debs DIR]
#   --debs DIR   install the .deb files in DIR (default: deploy/package.sh --binaries
#                target/debug --fast, into a temporary directory)
#
# Needs root (docker, rabbitmqctl), the dev environment (bash deploy/dev-env.sh) and cargo-deb
# unless --debs is given.
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${SLIPWAY_SYSTEMD_IMAGE:-slipway/debian-systemd:bookworm}"
UNIT=slipway-lint@a
readonly ROOT IMAGE UNIT
name="slipway-smoke-$$"
vhost="slipway-smoke-$$"
debs=""
while (($#)); do
    case "$1" in
    --debs)
        debs=$2
        shift 2
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        printf 'systemd-smoke: unknown argument %s (see --help)\n' "$1" >&2
        exit 2
        ;;
    esac
done

tmp="$(mktemp -d -t slipway-smoke.XXXXXX)"
cleanup() {
    docker rm -f -v "$name" >/dev/null 2>&1 || true
    rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || true
    rm -rf -- "$tmp"
}
trap cleanup EXIT

if [[ -z $debs ]]; then
    debs="$tmp/debs"
    bash "$ROOT/deploy/package.sh" --binaries "$ROOT/target/debug" --out "$debs" --fast >/dev/null
fi
debs="$(cd -- "$debs" && pwd)"

# What --privileged would give, less the capabilities this host's bounding set lacks (a daemon
# without one cannot grant --privileged: "unable to apply caps"); the cgroup tree writable for
# systemd, host cgroup namespace (this host has cgroup v1, `stat -fc %T /sys/fs/cgroup`: tmpfs).
caps=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
    LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE
    SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME
    SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG
    WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE)
bounding=$((16#$(awk '/^CapBnd:/{print $2}' /proc/self/status)))
drops=()
for bit in $(seq 0 40); do
    ((bounding >> bit & 1)) || drops+=(--cap-drop "${caps[bit]}")
done

rabbitmqctl -q add_vhost "$vhost" >/dev/null
rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

show() {
    printf '\n# %s\n' "$*"
    docker exec "$name" sh -c "$*" || printf '(exit status %s)\n' "$?"
}

printf '$ docker run -d --cap-add ALL %s --security-opt seccomp=unconfined --security-opt apparmor=unconfined --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock --network host %s\n' \
    "${drops[*]}" "$IMAGE"
docker run -d --name "$name" --cap-add ALL "${drops[@]}" \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
    --network host -v "$debs:/debs:ro" "$IMAGE" >/dev/null
# systemctl needs the manager's socket; --wait then returns once the boot is over.
show 'timeout 60 sh -c "until test -S /run/systemd/private; do sleep 0.1; done; systemctl is-system-running --wait"'
show 'dpkg -i /debs/*.deb'
show "umask 077 && printf guest > /etc/slipway/credentials/lint && ls -l /etc/slipway/credentials"
show "printf 'SLIPWAY_BROKER__URL=amqp://127.0.0.1:5672/$vhost\nSLIPWAY_TELEMETRY__METRICS_ADDR=127.0.0.1:$port\n' > /etc/slipway/lint.env && cat /etc/slipway/lint.env"
show "bash -c 'time systemctl start $UNIT'"
show "systemctl status --no-pager $UNIT"
printf '\n# curl http://127.0.0.1:%s/healthz (from the host)\n' "$port"
curl -sS --noproxy '*' --max-time 5 "http://127.0.0.1:$port/healthz"
echo
show "systemctl show $UNIT -p Type -p NotifyAccess -p StatusText -p WatchdogUSec -p WatchdogTimestamp -p WatchdogTimestampMonotonic"
# WATCHDOG=1 every quarter of WatchdogSec=30: the timestamp moves within ~8 s.
printf '\n# (waiting for the next WATCHDOG=1, at most 20 s)\n'
docker exec -i "$name" sh -s "$UNIT" <<'SH'
beat() { systemctl show "$1" -p WatchdogTimestampMonotonic --value; }
first=$(beat "$1") start=$(date +%s)
until [ "$(beat "$1")" != "$first" ]; do
    [ $(($(date +%s) - start)) -lt 20 ] || { echo "no WATCHDOG=1 within 20 s"; exit 1; }
    sleep 0.25
done
systemctl show "$1" -p WatchdogTimestamp -p WatchdogTimestampMonotonic
SH
show "journalctl -u $UNIT -o verbose --no-pager SYSLOG_IDENTIFIER=slipway-lint"
show "bash -c 'time systemctl stop $UNIT'"
show "systemctl show $UNIT -p ActiveState -p Result -p ExecMainStatus"
show "journalctl -u $UNIT -o short-precise --no-pager"
show "echo entries at priority err or worse: \$(journalctl -q -u $UNIT -p err --no-pager | wc -l)"
