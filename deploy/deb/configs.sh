#!/usr/bin/env bash
# Write the default configuration files the slipway-workers package installs as conffiles,
# /etc/slipway/<worker>.toml: a header saying where each setting and secret goes, then every
# setting with its built-in default as the binary itself prints it (--print-config), commented
# out. A file of comments is an empty TOML table, so the worker runs on its defaults until a
# line is uncommented; a default that changes in a later release then changes with it, instead
# of being pinned by the file.
#
# Usage: bash deploy/deb/configs.sh [--bin-dir DIR] [--out DIR]
#   --bin-dir DIR  where the slipway-<worker> binaries are (default: target/debug)
#   --out DIR      where to write <worker>.toml (default: deploy/deb/etc, the packaged ones)
#
# tests/tests/deb_package.rs runs it into a temporary directory and compares with
# deploy/deb/etc, so a setting added to a worker without regenerating these fails a test.
set -euo pipefail

DEB_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd -- "$DEB_DIR/../.." && pwd)"
BIN_DIR="$ROOT/target/debug"
OUT_DIR="$DEB_DIR/etc"
readonly WORKERS=(lint build scan repo-tracker rescan-scheduler notify)

while (($#)); do
    case "$1" in
    --bin-dir)
        BIN_DIR=$2
        shift 2
        ;;
    --out)
        OUT_DIR=$2
        shift 2
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        printf 'configs.sh: unknown argument %s (see --help)\n' "$1" >&2
        exit 2
        ;;
    esac
done

mkdir -p -- "$OUT_DIR"
empty="$(mktemp --suffix=.toml)"
trap 'rm -f -- "$empty"' EXIT

header() {
    local worker=$1 binary="slipway-$1"
    cat <<EOF
# /etc/slipway/$worker.toml: the settings of $binary, for every unit $binary@<instance>
# (ExecStart=/usr/bin/$binary --config /etc/slipway/$worker.toml).
#
# Precedence: built-in defaults < this file < SLIPWAY_<SECTION>__<KEY> variables: those of
# /etc/slipway/env (every worker of this node), of /etc/slipway/$worker.env, and the few the unit
# sets itself (log format, cache and work directories). \`$binary --print-config\` shows the
# result.
#
# No secret goes here. The broker password goes in /etc/slipway/credentials/$worker (root only);
# systemd hands it to the worker as its credential broker-password. Name the worker's RabbitMQ
# user with \`username = "..."\` under [broker] (without one: the URL's, else guest).
EOF
    if [[ $worker == notify ]]; then
        cat <<EOF
#
# The SMTP password goes in /etc/slipway/credentials/smtp (credential smtp-password), with
# \`username = "..."\` under [smtp].
EOF
    fi
    cat <<EOF
#
# Every setting below shows its default (\`$binary --print-config\`), commented out:
# uncomment and change what this node needs.

EOF
}

for worker in "${WORKERS[@]}"; do
    binary="$BIN_DIR/slipway-$worker"
    [[ -x $binary ]] || {
        printf 'configs.sh: %s is not built (cargo build --bins)\n' "$binary" >&2
        exit 1
    }
    # A clean environment and an empty file: the defaults, whatever this machine has set.
    defaults="$(env -i PATH=/usr/bin:/bin "$binary" --config "$empty" --print-config)"
    {
        # Reflowed: worker names make some lines long.
        header "$worker" | fmt -w 99 -p '#'
        # Each non-empty line commented; section headers too, so the file is an empty table.
        # shellcheck disable=SC2001 # a prefix on every line of many, not one substitution
        sed -e 's/^./# &/' <<<"$defaults"
    } >"$OUT_DIR/$worker.toml.tmp"
    mv -f -- "$OUT_DIR/$worker.toml.tmp" "$OUT_DIR/$worker.toml"
    printf '%s\n' "$OUT_DIR/$worker.toml"
done
