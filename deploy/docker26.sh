#!/usr/bin/env bash
# A second, newer Docker daemon for the Slipway tests: Debian trixie's
# docker.io (26.x) in a (nearly) privileged container on the host's dockerd, with its
# API on a host unix socket. The host's dockerd (bookworm's 20.10) stays as it
# is; its built-in BuildKit is too old for Dockerfile heredocs and
# `COPY --link`, which this daemon's BuildKit builds. See usage() below.
#
# Run as root on the machine deploy/dev-env.sh set up (it provides dockerd,
# mmdebstrap and the base image). Idempotent: a second run only checks and
# finishes in a few seconds. Network traffic goes only to the Debian package
# mirror the host's apt uses (mmdebstrap); nothing is pulled from a registry.
# The host's apt sources and packages are not touched: mmdebstrap resolves
# trixie in its own temporary apt state.
set -euo pipefail

# Overridable settings.
IMAGE="${SLIPWAY_DOCKER26_IMAGE:-slipway/docker26:trixie}"
TAR="${SLIPWAY_DOCKER26_TAR:-/var/cache/slipway/trixie-docker26.tar}"
CONTAINER="${SLIPWAY_DOCKER26_CONTAINER:-slipway-docker26}"
# Host directory for the socket, pid file and exec-root (bind-mounted at the same path).
RUN_DIR="${SLIPWAY_DOCKER26_RUN_DIR:-/run/slipway-docker26}"
# Host directory holding the daemon's /var/lib/docker: images and build cache survive `stop`.
DATA_DIR="${SLIPWAY_DOCKER26_DATA_DIR:-/var/lib/slipway-docker26}"
BASE_IMAGE="${SLIPWAY_BASE_IMAGE:-slipway/debian:bookworm}"
SUITE="${SLIPWAY_DOCKER26_SUITE:-trixie}"
MIRROR="${SLIPWAY_DEBIAN_MIRROR:-}" # default: the host's apt mirror, see host_debian_mirror
START_TIMEOUT="${SLIPWAY_DOCKER26_START_TIMEOUT:-60}" # seconds

readonly SOCK="$RUN_DIR/docker.sock"
readonly LOG_DIR=/var/log/slipway
readonly PROBE_IMAGE=slipway-docker26-probe

# docker.io pulls in containerd, runc, iptables and tini (the container's
# init, see container_args); no Recommends (minbase), so no git, apparmor,
# ca-certificates: the daemon never pulls and builds no remote contexts.
readonly INCLUDE=docker.io,tini

usage() {
    cat <<EOF
Usage: bash deploy/docker26.sh [start|stop|check|-h|--help]

  start (default)  build $IMAGE once (mmdebstrap $SUITE with $INCLUDE,
                   cached as $TAR, then docker import), run it as the
                   (nearly) privileged container $CONTAINER (host network) with dockerd
                   listening on unix://$SOCK, wait until it answers, and
                   load $BASE_IMAGE from the host's daemon into it
  stop             stop and remove the container; keep the image, the cached
                   tar and $DATA_DIR (the daemon's images and build cache)
  check            start, then build a probe Dockerfile (a RUN heredoc and
                   COPY --link) with BuildKit through the Engine API, with
                   networkmode=none and networkmode=host; remove the probe images

Use the daemon with DOCKER_HOST=unix://$SOCK. The host's own dockerd is
left alone. A running container whose image or settings differ from this
script's is recreated.

Environment:
  SLIPWAY_DOCKER26_IMAGE          image name          (default slipway/docker26:trixie)
  SLIPWAY_DOCKER26_TAR            cached rootfs tar   (default /var/cache/slipway/trixie-docker26.tar)
  SLIPWAY_DOCKER26_CONTAINER      container name      (default slipway-docker26)
  SLIPWAY_DOCKER26_RUN_DIR        socket directory    (default /run/slipway-docker26)
  SLIPWAY_DOCKER26_DATA_DIR       daemon data         (default /var/lib/slipway-docker26)
  SLIPWAY_DOCKER26_SUITE          Debian suite        (default trixie)
  SLIPWAY_DOCKER26_START_TIMEOUT  seconds to wait for the daemon (default 60)
  SLIPWAY_DEBIAN_MIRROR           Debian mirror URI   (default: the host's apt mirror)
  SLIPWAY_BASE_IMAGE              image to load       (default slipway/debian:bookworm)
EOF
}

LOG_PREFIX=docker26
SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/lib.sh
source "$SCRIPT_DIR/lib.sh"

# The host's daemon (as configured in the environment, like dev-env.sh) and
# the one in the container. A DOCKER_HOST pointing at the inner daemon would
# make the host-side commands nest a daemon in it: ignore it.
if [[ ${DOCKER_HOST:-} == "unix://$SOCK" ]]; then unset DOCKER_HOST; fi
hdocker() { docker "$@"; }
idocker() { docker -H "unix://$SOCK" "$@"; }

# api METHOD PATH [CURL ARGS...]: call the inner daemon's Engine API.
api() {
    local method=$1 path=$2
    shift 2
    curl -fsS --max-time 10 --unix-socket "$SOCK" -X "$method" "$@" "http://localhost$path"
}
inner_ok() { api GET /version >/dev/null 2>&1; }

# ------------------------------------------------------------------- image --

# host_debian_mirror: the URI of the apt source that serves the host's own
# release (bookworm), from deb822 .sources or one-line .list files; so
# mmdebstrap uses the mirror (and any local caching) apt is set up with.
host_debian_mirror() {
    local codename files=()
    codename="$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release | tr -d '"')"
    [[ -n $codename ]] || return 1
    shopt -s nullglob
    files=(/etc/apt/sources.list.d/*.sources)
    if ((${#files[@]})); then
        # Stanzas are separated by blank lines; skip disabled ones and deb-src.
        awk -v suite="$codename" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " suite " ") && uris != "") {
                    split(uris, u, " "); print u[1]; found = 1; exit
                }
                types = uris = suites = enabled = ""
            }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]*#/ { next }
            tolower($1) == "types:"   { $1 = ""; types = $0 }
            tolower($1) == "uris:"    { $1 = ""; uris = $0 }
            tolower($1) == "suites:"  { $1 = ""; suites = $0 }
            tolower($1) == "enabled:" { enabled = tolower($2) }
            END { if (!found) flush() }
        ' "${files[@]}" | sed 's/^ *//' | head -n 1 | grep . && return 0
    fi
    files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
    shopt -u nullglob
    local f
    for f in "${files[@]}"; do
        [[ -f $f ]] || continue
        # deb [options] URI SUITE COMPONENTS...
        sed -E 's/\[[^]]*\]//' -- "$f" |
            awk -v suite="$codename" '$1 == "deb" && $3 == suite { print $2; exit }' | grep . && return 0
    done
    return 1
}

ensure_tar() {
    [[ -s $TAR ]] && return 0
    command -v mmdebstrap >/dev/null || die "mmdebstrap not installed (run deploy/dev-env.sh first)"
    if [[ -z $MIRROR ]]; then
        MIRROR="$(host_debian_mirror)" || {
            MIRROR=http://deb.debian.org/debian
            log "image ... no Debian mirror found in the host's apt sources; using $MIRROR"
        }
    fi
    mkdir -p -- "$(dirname -- "$TAR")" "$LOG_DIR"
    local tmp="${TAR%.tar}.partial-$$.tar" mlog="$LOG_DIR/mmdebstrap-docker26.log" start=$SECONDS
    CLEANUP+=("$tmp")
    log "image ... building $TAR with mmdebstrap ($SUITE from $MIRROR; log $mlog)"
    # mmdebstrap keeps maintainer scripts from starting services (its own
    # policy-rc.d during the install), so docker.io's postinst starts no dockerd.
    if ! mmdebstrap --variant=minbase --include="$INCLUDE" --format=tar \
        "$SUITE" "$tmp" "deb $MIRROR $SUITE main" >"$mlog" 2>&1; then
        show_log "$mlog"
        die "mmdebstrap failed"
    fi
    # (Not `tar -t | grep -q`: grep's early exit fails tar with SIGPIPE under pipefail.)
    tar -tf "$tmp" ./usr/sbin/dockerd >/dev/null 2>&1 || die "mmdebstrap's tar has no usr/sbin/dockerd"
    mv -f -- "$tmp" "$TAR"
    log "image ... $TAR built in $((SECONDS - start))s ($(du -h -- "$TAR" | cut -f1))"
}

ensure_image() {
    local start=$SECONDS
    if hdocker image inspect "$IMAGE" >/dev/null 2>&1; then
        log "image ... ok ($IMAGE already present)"
        return
    fi
    ensure_tar
    log "image ... importing $TAR as $IMAGE"
    # tini as PID 1 reaps the containerd shims, which daemonize and are
    # reparented to it (dockerd, a Go program, would leave them as zombies),
    # and passes `docker stop`'s SIGTERM to dockerd alone (no -g: dockerd
    # stops its containerd itself).
    hdocker import --change 'ENTRYPOINT ["/usr/bin/tini", "--"]' --change 'CMD ["dockerd"]' \
        "$TAR" "$IMAGE" >/dev/null
    log "image ... ok ($IMAGE imported in $((SECONDS - start))s)"
}

# --------------------------------------------------------------- container --

# The dockerd flags, and why:
#   --host            only the bind-mounted socket; no TCP listener.
#   --group           the socket's group: the host's docker group by number
#                     (the image's own docker group has an unrelated GID).
#   --bridge=none, --iptables=false, --ip6tables=false
#                     the container shares the host's network namespace (it
#                     runs with --network host, so builds with networkmode=host
#                     reach the host's 127.0.0.1 services, e.g. the registry):
#                     no docker0, no iptables rules there, as for the host's
#                     dockerd. Builds use networkmode none or host.
#   --exec-root, --pidfile
#                     under $RUN_DIR, visible from the host, apart from the
#                     host daemon's /run/docker and /run/docker.pid. The
#                     containerd that dockerd starts keeps its socket and
#                     state under the exec-root too, and its shims theirs in
#                     the container's own /run/containerd: nothing is shared
#                     with the host's containerd.
#   data-root         the default /var/lib/docker, bind-mounted from
#                     $DATA_DIR on the host's ext4, so overlay2 works inside
#                     (overlay on overlay would not).
daemon_args() {
    local gid
    gid="$(getent group docker | cut -d: -f3 || true)"
    printf '%s\n' dockerd \
        --host "unix://$SOCK" \
        --group "${gid:-0}" \
        --bridge=none --iptables=false --ip6tables=false \
        --exec-root "$RUN_DIR/exec" \
        --pidfile "$RUN_DIR/docker.pid"
}

# Capability names by number (linux/capability.h), to name the ones missing
# from the bounding set.
readonly CAP_NAMES=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
    LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE
    SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME
    SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG
    WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE)

# missing_caps: the capabilities this machine's bounding set lacks (as this
# root shell sees it, like the host's dockerd), one a line.
missing_caps() {
    local bnd last i
    bnd=$((16#$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)))
    last="$(cat /proc/sys/kernel/cap_last_cap)"
    for ((i = 0; i <= last && i < ${#CAP_NAMES[@]}; i++)); do
        (((bnd >> i) & 1)) || printf '%s\n' "${CAP_NAMES[i]}"
    done
}

# container_args: the `docker run` arguments after the options computed in
# ensure_container (name, label). dockerd in a container needs what
# --privileged gives, but --privileged asks runc for every capability, and
# where the machine's bounding set lacks one (this VM has no CAP_SYS_RESOURCE)
# runc fails with "unable to apply caps: operation not permitted". So the
# same, spelled out, minus the missing capabilities:
#   --cap-add ALL --cap-drop MISSING
#   --security-opt seccomp=unconfined      dockerd and runc use mount, unshare, pivot_root...
#   --security-opt systempaths=unconfined  no masked or read-only /proc paths
#   --device-cgroup-rule 'a *:* rwm'       runc makes its containers' device nodes
# and in the container, before dockerd, PREP below remounts /sys and the
# cgroup v1 hierarchies read-write (docker mounts them read-only unless
# privileged), so dockerd can create the cgroups of its containers.
#   --network host   see daemon_args.
#   --log-opt        the container's stdout is dockerd's log: bound its size.
container_args() {
    local cap
    printf '%s\n' --cap-add ALL
    for cap in $(missing_caps); do printf '%s\n' --cap-drop "$cap"; done
    printf '%s\n' --security-opt seccomp=unconfined --security-opt systempaths=unconfined \
        --device-cgroup-rule 'a *:* rwm' \
        --network host \
        --log-opt max-size=10m --log-opt max-file=2 \
        -v "$RUN_DIR:$RUN_DIR" -v "$DATA_DIR:/var/lib/docker"
}

# Run by sh in the container (under tini), then exec's dockerd: see container_args.
# shellcheck disable=SC2016 # expanded by the container's sh
readonly PREP='set -e
mount -o remount,bind,rw /sys
for d in /sys/fs/cgroup /sys/fs/cgroup/*; do
    if mountpoint -q "$d"; then mount -o remount,bind,rw "$d"; fi
done
exec "$@"'

container_state() { hdocker container inspect -f '{{.State.Status}}' "$CONTAINER" 2>/dev/null || true; }

# The daemon in the container died or never came up: its log, then die.
die_with_container_log() {
    printf 'docker26: --- last lines of docker logs %s ---\n' "$CONTAINER" >&2
    hdocker logs --tail 25 "$CONTAINER" >&2 2>&1 || true
    die "$*"
}

# Remove what a previous daemon left in $RUN_DIR: a stale pid file or
# containerd.pid naming a PID that is alive in the new container (e.g. the
# new dockerd's own) would stop dockerd or containerd from starting. Only
# while no container runs.
clear_run_dir() {
    rm -rf -- "${RUN_DIR:?}/exec" "$RUN_DIR/docker.pid" "$SOCK"
}

ensure_container() {
    local start=$SECONDS state args image_id config_hash current
    mapfile -t args < <(container_args)
    local dargs
    mapfile -t dargs < <(daemon_args)
    image_id="$(hdocker image inspect -f '{{.Id}}' "$IMAGE")"
    # A label with a digest of everything the container is made from: a
    # container made by an older version of this script or from an older
    # image is recreated.
    config_hash="$(printf '%s\n' "$image_id" "${args[@]}" "$PREP" "${dargs[@]}" | sha256sum | cut -c1-16)"
    state="$(container_state)"
    if [[ -n $state ]]; then
        current="$(hdocker container inspect -f '{{index .Config.Labels "slipway.docker26.config"}}' "$CONTAINER")"
        if [[ $state == running && $current == "$config_hash" ]]; then
            wait_for "$START_TIMEOUT" inner_ok ||
                die_with_container_log "$CONTAINER runs but its daemon does not answer on $SOCK"
            log "container ... ok ($CONTAINER already running)"
            return
        fi
        if [[ $state == running ]]; then
            log "container ... recreating $CONTAINER (its image or settings changed)"
        else
            log "container ... recreating $CONTAINER (it was $state)"
        fi
        hdocker stop -t 30 "$CONTAINER" >/dev/null 2>&1 || true
        hdocker rm -f "$CONTAINER" >/dev/null
    fi
    mkdir -p -- "$RUN_DIR" "$DATA_DIR"
    clear_run_dir
    start=$SECONDS
    log "container ... starting $CONTAINER (daemon log: docker logs $CONTAINER)"
    hdocker run -d --name "$CONTAINER" --label "slipway.docker26.config=$config_hash" \
        "${args[@]}" "$IMAGE" sh -c "$PREP" prep "${dargs[@]}" >/dev/null
    local deadline=$((SECONDS + START_TIMEOUT))
    until inner_ok; do
        [[ "$(container_state)" == running ]] ||
            die_with_container_log "$CONTAINER exited while its daemon started"
        ((SECONDS < deadline)) || die_with_container_log "the daemon did not answer on $SOCK within ${START_TIMEOUT}s"
        sleep 0.5
    done
    log "container ... ok (started in $((SECONDS - start))s)"
}

# -------------------------------------------------------------- base image --

# The host's base image, saved and loaded, unless the inner daemon has the
# same image ID already (loading keeps the ID; a rebuilt base image is
# loaded again).
ensure_base_image() {
    local start=$SECONDS want have
    want="$(hdocker image inspect -f '{{.Id}}' "$BASE_IMAGE" 2>/dev/null)" ||
        die "the host's daemon has no $BASE_IMAGE (run deploy/dev-env.sh first)"
    have="$(idocker image inspect -f '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || true)"
    if [[ $have == "$want" ]]; then
        log "base image ... ok ($BASE_IMAGE already loaded)"
        return
    fi
    log "base image ... loading $BASE_IMAGE from the host's daemon"
    hdocker save "$BASE_IMAGE" | idocker load >/dev/null ||
        die "docker save $BASE_IMAGE | docker load failed"
    have="$(idocker image inspect -f '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || true)"
    [[ $have == "$want" ]] || die "$BASE_IMAGE loaded with ID '$have', not $want"
    log "base image ... ok (loaded in $((SECONDS - start))s)"
}

# ------------------------------------------------------------------- check --

# probe_build NETWORKMODE: build a Dockerfile only BuildKit with the
# Dockerfile 1.4+ syntax understands, through the Engine API as the tests do
# (version=2, a tar context in the body, no session), then read the file the
# heredoc wrote.
probe_build() {
    local mode=$1 ctx out tag="$PROBE_IMAGE:$1" start=$SECONDS
    ctx="$(mktemp -d)"
    CLEANUP+=("$ctx")
    printf 'FROM %s\nRUN <<EOF\necho from-a-heredoc > /x\nEOF\nCOPY --link Dockerfile /Dockerfile\n' \
        "$BASE_IMAGE" >"$ctx/Dockerfile"
    tar -C "$ctx" -cf "$ctx.tar" Dockerfile
    CLEANUP+=("$ctx.tar")
    out="$(curl -sS --max-time 300 --unix-socket "$SOCK" -X POST \
        -H 'Content-Type: application/x-tar' --data-binary "@$ctx.tar" \
        "http://localhost/v1.41/build?version=2&networkmode=$mode&nocache=1&t=$tag")" ||
        die "check ($mode): the build request failed"
    if grep -q '"error"' <<<"$out" || ! grep -q '"moby.image.id"' <<<"$out"; then
        printf '%s\n' "$out" | tail -n 10 >&2
        die "check ($mode): BuildKit build failed"
    fi
    local x
    x="$(idocker run --rm --network none "$tag" cat /x)" || die "check ($mode): cannot run $tag"
    [[ $x == from-a-heredoc ]] || die "check ($mode): /x holds '$x', not from-a-heredoc"
    idocker image rm "$tag" >/dev/null
    log "check ... ok (networkmode=$mode: heredoc and COPY --link built in $((SECONDS - start))s)"
}

# --------------------------------------------------------------------- main --

start() {
    command -v curl >/dev/null || die "curl not installed (run deploy/dev-env.sh first)"
    hdocker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
        die "the host's docker daemon does not answer (run deploy/dev-env.sh first)"
    ensure_image
    ensure_container
    ensure_base_image
    local info
    info="$(idocker version --format 'docker {{.Server.Version}} (API {{.Server.APIVersion}})')"
    log "ready: $info, storage $(idocker info --format '{{.Driver}}'), base image $BASE_IMAGE"
}

stop() {
    local state
    state="$(container_state)"
    if [[ -z $state ]]; then
        log "stop ... ok ($CONTAINER does not exist)"
        return
    fi
    # dockerd needs a moment to stop its containers and containerd.
    hdocker stop -t 30 "$CONTAINER" >/dev/null || die "docker stop $CONTAINER failed"
    hdocker rm "$CONTAINER" >/dev/null || die "docker rm $CONTAINER failed"
    clear_run_dir
    log "stop ... ok ($CONTAINER removed; kept $IMAGE, $TAR and $DATA_DIR)"
}

main() {
    local cmd="${1:-start}"
    case "$cmd" in
    -h | --help)
        usage
        return 0
        ;;
    start | stop | check) ;;
    *)
        usage >&2
        return 2
        ;;
    esac
    (($# <= 1)) || {
        usage >&2
        return 2
    }
    ((EUID == 0)) || die "must run as root"
    # One run at a time (tests may call this script concurrently): a second
    # one waits, then finds everything in place.
    mkdir -p -- "$(dirname -- "$RUN_DIR")"
    exec 9>"$RUN_DIR.lock"
    flock -w 600 9 || die "another deploy/docker26.sh still runs after 600s (lock $RUN_DIR.lock)"
    case "$cmd" in
    start) start ;;
    stop)
        stop
        return 0
        ;;
    check)
        start
        probe_build none
        probe_build host
        ;;
    esac
    log "socket: unix://$SOCK (export DOCKER_HOST=unix://$SOCK)"
}

main "$@"
