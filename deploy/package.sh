#!/usr/bin/env bash
# Build Slipway's Debian packages with cargo-deb and print the path of each .deb, one a line, on
# stdout (everything else goes to stderr):
#
#   slipway-workers  the six worker binaries, their systemd template units, default settings
#                    (/etc/slipway/<worker>.toml), docs; metadata in deploy/deb/Cargo.toml
#   slipway          the command line; metadata in cli/Cargo.toml
#
# Usage: bash deploy/package.sh [--out DIR] [--binaries DIR] [--fast]
#   --out DIR       write the .deb files there (default: <target dir>/debian)
#   --binaries DIR  package the binaries already built in DIR (e.g. target/debug) instead of
#                   building release ones; they keep the commit they were built with. The
#                   package test uses this, since a release build of the workspace takes ~9 min.
#   --fast          lighter compression (cargo-deb --fast): a bigger file, made faster
#
# Without --binaries it builds the seven binaries with `cargo build --release --locked`, with
# SLIPWAY_COMMIT (slipway_build_info{commit}, compiled in) set to `git rev-parse HEAD`, and
# "-dirty" appended when tracked files differ from it. Needs cargo-deb at the version
# deploy/dev-env.sh installs.
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"

# One pinned version, the one deploy/dev-env.sh installs.
CARGO_DEB_VERSION="$(sed -n 's/^readonly CARGO_DEB_VERSION=\([0-9.]*\).*/\1/p' "$ROOT/deploy/dev-env.sh")"
readonly CARGO_DEB_VERSION
readonly BINARIES=(slipway slipway-lint slipway-build slipway-scan slipway-repo-tracker
    slipway-rescan-scheduler slipway-notify)
readonly CRATES=(slipway-cli slipway-lint slipway-build slipway-scan slipway-repo-tracker
    slipway-rescan-scheduler slipway-notify)
readonly PACKAGES=(slipway-workers slipway-cli)

log() { printf 'package: %s\n' "$*" >&2; }
die() {
    printf 'package: ERROR: %s\n' "$*" >&2
    exit 1
}

out="" binaries="" fast=()
while (($#)); do
    case "$1" in
    --out)
        out="$(realpath -m -- "$2")"
        shift 2
        ;;
    --binaries)
        binaries="$(realpath -m -- "$2")"
        shift 2
        ;;
    --fast)
        fast=(--fast)
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done

cd -- "$ROOT"
[[ -n $CARGO_DEB_VERSION ]] || die "no CARGO_DEB_VERSION in deploy/dev-env.sh"
found="$(cargo deb --version 2>/dev/null || true)"
[[ $found == *" $CARGO_DEB_VERSION" ]] ||
    die "cargo-deb $CARGO_DEB_VERSION is needed, found '${found:-none}': bash deploy/dev-env.sh \
installs it (cargo install cargo-deb --locked --version $CARGO_DEB_VERSION)"

cleanup=()
trap 'rm -rf -- "${cleanup[@]}"' EXIT
# The workspace's target directory (CARGO_TARGET_DIR, cargo's config or ./target).
target="$(cargo metadata --format-version=1 --no-deps --locked |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
out="${out:-$target/debian}"

if [[ -n $binaries ]]; then
    # cargo-deb takes binaries from <target dir>/release (the assets say target/release/...):
    # give it a target directory of links to the given ones. Nothing is built, nothing in the
    # real target directory is touched (cargo-deb strips copies, in its own temporary files).
    stage="$(mktemp -d -t slipway-package.XXXXXX)"
    cleanup+=("$stage")
    mkdir -- "$stage/release"
    for binary in "${BINARIES[@]}"; do
        [[ -x $binaries/$binary ]] || die "$binaries/$binary is not built (cargo build --bins)"
        ln -s -- "$binaries/$binary" "$stage/release/$binary"
    done
    export CARGO_TARGET_DIR="$stage"
    log "packaging the binaries of $binaries"
else
    commit="$(git rev-parse HEAD)"
    git diff --quiet HEAD -- 2>/dev/null || commit="$commit-dirty"
    export SLIPWAY_COMMIT="$commit"
    crates=()
    for crate in "${CRATES[@]}"; do crates+=(-p "$crate"); done
    log "building release binaries (SLIPWAY_COMMIT=$SLIPWAY_COMMIT)"
    cargo build --release --locked "${crates[@]}" --bins >&2
fi

mkdir -p -- "$out"
for package in "${PACKAGES[@]}"; do
    log "cargo deb -p $package"
    # cargo-deb prints the path of the package it wrote, last, on stdout.
    deb="$(cargo deb --no-build --locked "${fast[@]}" -p "$package" -o "$out/" | tail -n 1)"
    [[ -f $deb ]] || die "cargo deb -p $package did not name a package it wrote: '$deb'"
    printf '%s\n' "$deb"
done
