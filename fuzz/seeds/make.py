#!/usr/bin/env python3
"""Writes the fuzz seeds of `fuzz/seeds/<target>/`: small valid inputs of each format, made
deterministically (fixed times, no host names). Run from anywhere: `python3 fuzz/seeds/make.py`.

Sources: the samples of each parser's unit tests (copied here as files), rpm's own ndb database of
`workers/scan/tests/data/rpm-ndb` (its header blobs, also loaded into a Berkeley DB hash file with
Debian's `db5.3_load` and into an sqlite `Packages` table shaped as rpm's), and a `docker save`
shaped archive of a one-layer Debian-like image. Targets also read the repository's fixtures and
`../shared/corpus` (Dockerfiles, index files) at run time; see `fuzz/src/seeds.rs`.

Not byte-reproducible: db5.3_load leaves unset page bytes and sqlite salts its WAL, so a rerun
writes equivalent, not identical, rpm-bdb and rpm-sqlite files. The committed files are the seeds
(a run's inputs follow from them and the seed)."""
import gzip, io, json, lzma, os, shutil, sqlite3, struct, subprocess, tarfile, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def put(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
            elif isinstance(data, tuple):
                info.type = tarfile.SYMTYPE
                info.linkname = data[0]
            else:
                info.size = len(data)
                info.mode = 0o644
            info.mtime = 0
            t.addfile(info, io.BytesIO(data) if isinstance(data, bytes) else None)
    return buf.getvalue()


# --- rpm: header blobs of rpm's own ndb database ---------------------------------------------
ndb = open(os.path.join(ROOT, "workers/scan/tests/data/rpm-ndb/Packages.db"), "rb").read()
slot_pages = struct.unpack_from("<I", ndb, 12)[0]
blobs = []
for at in range(32, slot_pages * 4096, 16):
    magic, pkgidx, blkoff, blkcnt = struct.unpack_from("<4sIII", ndb, at)
    if blkoff:
        start = blkoff * 16
        length = struct.unpack_from("<I", ndb, start + 12)[0]
        blobs.append((pkgidx, ndb[start + 16:start + 16 + length]))
blobs.sort()
for pkgidx, blob in blobs:
    put("rpm-header", f"ndb-{pkgidx}.bin", blob)

# Berkeley DB hash Packages, 512-byte pages, both byte orders (keys in the file's order).
with tempfile.TemporaryDirectory() as work:
    for order, pack in (("le", "<I"), ("be", ">I")):
        lines = ["VERSION=3", "format=bytevalue", "type=hash", "db_pagesize=512",
                 f"db_lorder={1234 if order == 'le' else 4321}", "HEADER=END"]
        lines += [" " + struct.pack(pack, 0).hex(), " " + struct.pack(pack, blobs[-1][0]).hex()]
        for pkgidx, blob in blobs:
            lines += [" " + struct.pack(pack, pkgidx).hex(), " " + blob.hex()]
        lines.append("DATA=END")
        src, out = os.path.join(work, "load.txt"), os.path.join(work, f"Packages-{order}")
        open(src, "w").write("\n".join(lines) + "\n")
        subprocess.run(["db5.3_load", "-f", src, out], check=True)
        put("rpm-bdb", f"Packages-{order}-512", open(out, "rb").read())

    # sqlite: rpm's Packages table; one database alone, one followed by its uncheckpointed WAL.
    path = os.path.join(work, "rpmdb.sqlite")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size=1024")
    conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
    for pkgidx, blob in blobs[:2]:
        conn.execute("INSERT INTO Packages VALUES (?, ?)", (pkgidx, blob))
    conn.commit()
    conn.execute("VACUUM")
    conn.close()
    put("rpm-sqlite", "rpmdb.sqlite", open(path, "rb").read())
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("INSERT INTO Packages VALUES (?, ?)", blobs[2])
    conn.execute("DELETE FROM Packages WHERE hnum = ?", (blobs[0][0],))
    conn.commit()
    db, wal = open(path, "rb").read(), open(path + "-wal", "rb").read()
    conn.close()
    put("rpm-sqlite", "rpmdb.sqlite+wal", db + wal)

# --- dpkg, apk ------------------------------------------------------------------------------
put("dpkg-status", "status", """Package: base-files
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 341
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 12.4+deb12u5
Replaces: base, dpkg (<= 1.15.0), miscfiles
Provides: base
Conffiles:
 /etc/debian_version 35d7ef5ae1b0e4ba0e1a1a6d15a8e1b1
 /etc/host.conf 4eb63731c9f5e30903ac4fc07a7fe3d6
 /etc/issue.net 31f4c6ef8cc1ea4ed6bb06b4bb7ce8b4 obsolete
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy of a Debian system, and
 several important miscellaneous files.
 .
 A continuation paragraph.

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc (2.36-9+deb12u4)
Version: 2.36-9+deb12u4
Depends: libgcc-s1
Description: GNU C Library: Shared libraries

Package: removed-pkg
Status: deinstall ok config-files
Architecture: all
Version: 1:0.1~rc1-2
""")
put("dpkg-status", "md5sums", """0b39d0a2a2f7d5cc0b8bb5c3e2e4a1f1  usr/share/doc/base-files/README
e2b0e9d2c3c4b5a6f7e8d9c0b1a2f3e4  etc/debian_version
""")
put("apk-installed", "installed", """C:Q1abcdefghijklmnopqrstuvwxyzA=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>
t:1705321523
c:5a9b1e5d6f55c9b3d0d2c0e0f1b2d6a1f5b3f3a2
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1HxK0yD1e4u3/X7Q9T2fXxuqgIZ0=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=

P:alpine-baselayout-data
V:3.4.3-r2
A:x86_64
L:GPL-2.0-only
o:alpine-baselayout
F:etc
R:fstab
Z:Q11Q7hNe8QpDS531guqCdrXBzoA/o=
""")

# --- repository indexes ---------------------------------------------------------------------
apkindex = b"""C:Q1abcdefghijklmnopqrstuvwxyz0=
P:musl
V:1.2.4-r2
A:x86_64
S:383152
I:622592
T:the musl c library
o:musl
m:Maintainer <m@example.org>
t:1700000000
D:so:libc.musl-x86_64.so.1

P:ca-certificates-bundle
V:20240226-r0
A:noarch
o:ca-certificates
"""
put("apkindex", "APKINDEX.tar.gz",
    gz(tar([(".SIGN.RSA.alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub", b"sig"),
            ("DESCRIPTION", b"v3.19.1-0-g0d5b8b7\n"), ("APKINDEX", apkindex)])))
packages = b"""Package: hello
Version: 2.10-3
Architecture: amd64
Maintainer: Santiago Vila <sanvila@debian.org>
Installed-Size: 280
Depends: libc6 (>= 2.34)
Filename: pool/main/h/hello/hello_2.10-3_amd64.deb
Size: 52432
SHA256: 0000000000000000000000000000000000000000000000000000000000000001
Description: example package based on GNU hello

Package: libssl3
Source: openssl (3.0.11-1~deb12u2)
Version: 3.0.11-1~deb12u2
Architecture: amd64
Description: Secure Sockets Layer toolkit - shared libraries
 A continuation line.
"""
put("apt-packages", "Packages", packages)
put("apt-packages", "Packages.gz", gz(packages))
put("apt-packages", "Packages.xz", lzma.compress(packages, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64))
put("apt-release", "Release", """Origin: Debian
Label: Debian
Suite: stable
Version: 12.5
Codename: bookworm
Date: Sat, 10 Feb 2024 10:06:02 UTC
Acquire-By-Hash: yes
Architectures: all amd64 arm64
Components: main contrib non-free-firmware non-free
Description: Debian 12.5 Released 10 February 2024
SHA256:
 0000000000000000000000000000000000000000000000000000000000000001   1234 main/binary-amd64/Packages
 00000000000000000000000000000000000000000000000000000000000000b2    567 main/binary-amd64/Packages.gz
""")
put("apt-release", "InRelease", """-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA512

Origin: Debian
Suite: stable
Codename: bookworm
SHA256:
 0000000000000000000000000000000000000000000000000000000000000001   1234 main/binary-amd64/Packages
-----BEGIN PGP SIGNATURE-----

iQIzBAEBCgAdFiEE
-----END PGP SIGNATURE-----
""")
primary = b"""<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="3">
<package type="rpm">
  <name>bash</name>
  <arch>x86_64</arch>
  <version epoch="0" ver="5.1.8" rel="9.el9"/>
  <checksum type="sha256" pkgid="YES">abc</checksum>
  <summary>The GNU Bourne Again shell</summary>
  <format>
    <rpm:license>GPLv3+</rpm:license>
    <rpm:sourcerpm>bash-5.1.8-9.el9.src.rpm</rpm:sourcerpm>
    <rpm:provides>
      <rpm:entry name="bash" flags="EQ" epoch="0" ver="5.1.8" rel="9.el9"/>
    </rpm:provides>
    <file>/usr/bin/bash</file>
  </format>
</package>
<package type="rpm">
  <name>perl&#45;Foo&amp;Bar</name>
  <arch>noarch</arch>
  <version epoch="2" ver="1.0" rel="3"></version>
</package>
<package type="rpm">
  <name><![CDATA[tzdata]]></name>
  <arch>src</arch>
  <version epoch="0" ver="2024a" rel="1.el9"/>
</package>
</metadata>
"""
put("yum-primary", "primary.xml", primary)
put("yum-primary", "primary.xml.gz", gz(primary))
put("yum-repomd", "repomd.xml", """<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1700000000</revision>
  <data type="primary">
    <checksum type="sha256">a3f1e8c8a4c5b3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8</checksum>
    <open-checksum type="sha256">a3f1e8c8a4c5b3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8</open-checksum>
    <location href="repodata/abc-primary.xml.gz"/>
    <timestamp>1700000000</timestamp>
    <size>1234</size>
    <open-size>5678</open-size>
  </data>
  <data type="filelists">
    <checksum type="sha256">00</checksum>
    <location href="repodata/def-filelists.xml.gz"/>
  </data>
</repomd>
""")

# --- OSV --------------------------------------------------------------------------------------
put("osv", "DSA-5514-1.json", """{
  "id": "DSA-5514-1",
  "modified": "2023-10-03T00:00:00Z",
  "upstream": ["CVE-2023-4911"],
  "summary": "glibc - security update",
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"}],
  "affected": [
    {"package": {"ecosystem": "Debian:11", "name": "glibc", "purl": "pkg:deb/debian/glibc?arch=source"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.31-13+deb11u7"}]}]},
    {"package": {"ecosystem": "Debian:12", "name": "glibc"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.36-9+deb12u3"}]}]}
  ]
}""")
put("osv", "records.json", """[
  {"id": "RLSA-2024:1234", "aliases": ["CVE-2024-0727"],
   "affected": [{"package": {"ecosystem": "Rocky Linux:9", "name": "openssl"},
                 "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:3.0.7-25.el9_3"}]}]}]},
  {"id": "GHSA-xxxx-yyyy-zzzz",
   "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                 "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"last_affected": "4.17.20"}]}],
                 "versions": ["4.17.19", "4.17.20"]}]},
  {"id": "ALPINE-CVE-2023-5678",
   "affected": [{"package": {"ecosystem": "Alpine:v3.19", "name": "openssl"},
                 "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.4-r1"}]}]}]}
]""")

# --- image archive (docker save) ------------------------------------------------------------
layer = tar([("etc", None), ("etc/os-release", b'ID=debian\nVERSION_ID="12"\n'),
             ("var/lib/dpkg", None),
             ("var/lib/dpkg/status", b"Package: hello\nStatus: install ok installed\n"
              b"Architecture: amd64\nVersion: 2.10-3\n"),
             ("var/lib/dpkg/info/hello.md5sums", b"d41d8cd98f00b204e9800998ecf8427e  usr/bin/hello\n"),
             ("usr/bin/hello", b""), ("usr/bin/hi", ("hello",)),
             ("etc/.wh.removed", b"")])
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"User": "1000", "Labels": {"RUN": "docker run --privileged IMAGE"}},
                     "rootfs": {"type": "layers", "diff_ids": []}}).encode()
manifest = json.dumps([{"Config": "config.json", "RepoTags": ["example:1"],
                        "Layers": ["layer/layer.tar"]}]).encode()
put("image-archive", "docker-save.tar",
    tar([("layer/layer.tar", layer), ("config.json", config), ("manifest.json", manifest)]))

# --- Dockerfiles and index files beyond the shared corpus ----------------------------------
put("dockerfile", "heredoc-escape", """# escape=`
ARG BASE=debian:bookworm
FROM ${BASE} AS build
RUN <<EOF
apt-get update && apt-get install -y curl `
    && rm -rf /var/lib/apt/lists/*
EOF
COPY --from=build --chown=1000:1000 ["/out", "/app"]
HEALTHCHECK --interval=5m CMD ["curl", "-f", "http://localhost/"]
ONBUILD RUN echo "${VAR:-default}" | tee /x && for i in 1 2; do echo $i; done
USER 1000
""")
os.makedirs(os.path.join(HERE, "index-yaml"), exist_ok=True)
shutil.copy(os.path.join(ROOT, "deploy/examples/index.yaml"),
            os.path.join(HERE, "index-yaml", "example-index.yaml"))
