#!/bin/sh
# Makes the ndb rpm database of this directory (Packages.db, Index.db) and what rpm says of it
# (rpm-qa.txt), with rpm's own ndb backend. Debian's rpm is built without ndb
# ("warning: invalid %_db_backend: ndb"), so NDB_RPM must name an rpm built with --enable-ndb,
# e.g. Debian bookworm's source package (rpm 4.18.0+dfsg-1+deb12u1):
#
#   apt-get source rpm && cd rpm-4.18.0 && ./configure --prefix=/tmp/rpm-ndb --enable-ndb \
#     --disable-openmp --disable-plugins --without-selinux --without-audit --disable-python \
#     --without-archive --without-cap --without-acl --disable-nls && make && make install
#   NDB_RPM=/tmp/rpm-ndb/bin/rpm sh make.sh
#
# The packages are built with Debian's rpmbuild (any rpmbuild will do): three spec files, four
# noarch packages (an epoch, a sub-package, a `~` pre-release, a package with a longer file list
# so its header spans several 16-byte blocks). A fifth is installed and erased again, so the
# database holds a free slot and a hole where its blob was, as a long-lived rpm database does.
set -eu
NDB_RPM=${NDB_RPM:?set NDB_RPM to an rpm built with --enable-ndb}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

spec() { # name epoch version release files...
  name=$1 epoch=$2 version=$3 release=$4
  shift 4
  {
    echo "Name: $name"
    [ "$epoch" = - ] || echo "Epoch: $epoch"
    echo "Version: $version"
    echo "Release: $release"
    echo "Summary: Slipway ndb fixture package"
    echo "License: MIT"
    echo "BuildArch: noarch"
    echo '%global __os_install_post %{nil}'
    echo '%global _build_id_links none'
    echo '%description'
    echo 'Slipway ndb fixture package.'
    echo '%install'
    for f in "$@"; do
      echo "mkdir -p %{buildroot}$(dirname "$f") && echo $name > %{buildroot}$f"
    done
    echo '%files'
    for f in "$@"; do echo "$f"; done
  } > "$work/$name.spec"
  rpmbuild -bb --quiet --define "_topdir $work/build" "$work/$name.spec"
}

spec ndb-alpha 3 1.2.3 4.sle15 /etc/ndb-alpha.conf
spec ndb-beta - 0.9~rc1 1.1 /usr/bin/ndb-beta
files=""
for i in $(seq 1 40); do files="$files /usr/share/ndb-gamma/file-$i.txt"; done
# shellcheck disable=SC2086
spec ndb-gamma - 2024.1 150300.2.1 $files
spec ndb-removed - 1 1 /usr/share/ndb-removed

db="$work/db"
rpm() { "$NDB_RPM" --dbpath "$db" --define '_db_backend ndb' "$@"; }
rpm --initdb
rpm -i --nodeps --justdb "$work"/build/RPMS/noarch/ndb-alpha-*.rpm \
  "$work"/build/RPMS/noarch/ndb-removed-*.rpm
rpm -i --nodeps --justdb "$work"/build/RPMS/noarch/ndb-beta-*.rpm \
  "$work"/build/RPMS/noarch/ndb-gamma-*.rpm
rpm -e --nodeps --justdb ndb-removed
cp "$db/Packages.db" "$here/"
# Index.db (rpm's secondary indexes: names, files, provides) is 364 KiB of mostly zeros.
gzip -9n -c "$db/Index.db" > "$here/Index.db.gz"
rpm -qa --qf '%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n' | LC_ALL=C sort \
  > "$here/rpm-qa.txt"
"$NDB_RPM" --version > "$here/rpm-version.txt"
ls -l "$here"
