//! Package URLs (purls) of inventory packages, built as the purl specification says
//! (<https://github.com/package-url/purl-spec>, its `deb`, `rpm`, `apk`, `pypi`, `npm` and `gem`
//! type definitions).
//!
//! Per ecosystem (`os` is the image's OS identity, when known):
//!
//! | type   | namespace                         | name            | version       | qualifiers                  |
//! |--------|-----------------------------------|-----------------|---------------|-----------------------------|
//! | `deb`  | OS id (`debian`, `ubuntu`)        | lowercased      | with epoch    | `arch`, `distro=<ns>-<ver>` |
//! | `rpm`  | vendor (OS id; `rhel` → `redhat`) | as is           | without epoch | `arch`, `distro`, `epoch`   |
//! | `apk`  | OS id (`alpine`)                  | lowercased      | as is         | `arch`, `distro=<ver>`      |
//! | `pypi` | none                              | PEP 503 form    | as is         | none                        |
//! | `npm`  | `@scope`, when scoped             | as is           | as is         | none                        |
//! | `gem`  | none                              | as is           | as is         | `platform`, unless `ruby`   |
//!
//! Choices where tools differ, and why:
//! - A deb version keeps its epoch (`pkg:deb/debian/attr@1:2.4.47-2%2Bb1`), as the deb type
//!   definition and its tests do; Trivy moves a deb epoch to an `epoch` qualifier instead. An rpm
//!   epoch is always a qualifier (the rpm type definition), and epoch `0` is left out because rpm
//!   compares a missing epoch as 0 (Trivy does the same).
//! - `distro` is `<namespace>-<VERSION_ID>` (`debian-12`, `centos-7`) for deb and rpm, falling back
//!   to `VERSION_CODENAME` (`debian-trixie`) when there is no `VERSION_ID`; Trivy writes the point
//!   release it reads from `/etc/debian_version` (`debian-12.4`) where we have os-release's `12`.
//!   For apk it is the bare version (`3.19.1`), as Trivy writes it.
//! - PyPI names are PEP 503 normalised (lowercase, runs of `-`, `_`, `.` become one `-`): the purl
//!   type definition only asks for `_` → `-` today, purl-spec PR #262 moves it to PEP 503, and
//!   PEP 503 names are what PyPI and OSV index by. Trivy keeps dots (`zope.interface`).
//! - npm names keep their case (the npm type definition says they are case sensitive); Trivy
//!   lowercases them, which only differs for the few pre-2015 mixed-case packages.
//! - Without an OS identity, OS packages get no namespace and no `distro` rather than a guessed
//!   vendor (Trivy does the same).
//!
//! Percent-encoding follows the specification's "Character encoding" clause: ASCII letters and
//! digits, `.`, `-`, `_`, `~` and `:` stay as they are, every other UTF-8 byte becomes `%XX`
//! (uppercase hex), so `+` is `%2B`, `@` is `%40`, `/` inside a value is `%2F` and a space `%20`.

use crate::package::{Ecosystem, OsIdentity, Package};

/// The purl of one installed package, given the OS of the image it was found in (`None` when the
/// image has no identifiable OS).
///
/// The result is canonical: qualifiers sorted by key, empty qualifier values left out, every
/// component percent-encoded as the specification says (see the module documentation for the
/// choices per ecosystem).
pub fn of(package: &Package, os: Option<&OsIdentity>) -> String {
    let mut parts = Parts::new(package.ecosystem.as_str(), package.name.clone());
    parts.version = package.version.clone();
    match package.ecosystem {
        Ecosystem::Deb => {
            parts.name = parts.name.to_lowercase();
            parts.qualify("arch", package.arch.as_deref());
            if let Some(os) = os {
                let vendor = os.id.to_lowercase();
                parts.qualify("distro", distro(&vendor, os).as_deref());
                parts.namespace.push(vendor);
            }
        }
        Ecosystem::Rpm => {
            let (epoch, version) = split_rpm_epoch(&package.version);
            parts.version = version.to_string();
            parts.qualify("arch", package.arch.as_deref());
            parts.qualify("epoch", epoch);
            if let Some(os) = os {
                let vendor = rpm_vendor(&os.id);
                parts.qualify("distro", distro(&vendor, os).as_deref());
                parts.namespace.push(vendor);
            }
        }
        Ecosystem::Apk => {
            parts.name = parts.name.to_lowercase();
            parts.qualify("arch", package.arch.as_deref());
            if let Some(os) = os {
                parts.qualify("distro", os.version_id.as_deref());
                parts.namespace.push(os.id.to_lowercase());
            }
        }
        Ecosystem::Pypi => parts.name = crate::lang::python::normalized_name(&package.name),
        Ecosystem::Npm => {
            // A scoped package is `@scope/name`: the scope is the namespace (its `@` is encoded
            // like any other), the rest the name.
            if let Some((scope, name)) = package.name.split_once('/')
                && scope.starts_with('@')
            {
                parts.namespace.push(scope.to_string());
                parts.name = name.to_string();
            }
        }
        Ecosystem::Gem => {
            // A gem's platform is what the gem reader records as its architecture; `ruby` (plain
            // MRI gems) is the type's default and so left out.
            parts.qualify(
                "platform",
                package
                    .arch
                    .as_deref()
                    .filter(|platform| *platform != "ruby"),
            );
        }
    }
    parts.build()
}

/// `<vendor>-<VERSION_ID>`, or `<vendor>-<VERSION_CODENAME>` for releases without a version
/// (Debian testing and sid), or nothing when the OS has neither.
fn distro(vendor: &str, os: &OsIdentity) -> Option<String> {
    os.version_id
        .as_deref()
        .or(os.codename.as_deref())
        .filter(|release| !release.is_empty())
        .map(|release| format!("{vendor}-{release}"))
}

/// The purl namespace of an rpm distribution: its os-release `ID`, lowercased, except where the
/// vendor is known under another name in purls (Red Hat's own SBOMs and Trivy write `redhat`,
/// Trivy `amazon` and `oracle`).
fn rpm_vendor(os_id: &str) -> String {
    let id = os_id.to_lowercase();
    match id.as_str() {
        "rhel" => "redhat".to_string(),
        "amzn" => "amazon".to_string(),
        "ol" => "oracle".to_string(),
        _ => id,
    }
}

/// Splits `1:4.2.46-34.el7` into epoch `1` and `4.2.46-34.el7`. A version without an all-digit
/// epoch before its first `:` has none; epoch 0 is returned as none (rpm compares a missing epoch
/// as 0).
fn split_rpm_epoch(version: &str) -> (Option<&str>, &str) {
    match version.split_once(':') {
        Some((epoch, rest)) if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) => {
            let epoch = epoch.trim_start_matches('0');
            ((!epoch.is_empty()).then_some(epoch), rest)
        }
        _ => (None, version),
    }
}

/// A purl's components before encoding (no subpath: no inventory package needs one).
struct Parts {
    /// The type, lowercase ASCII (`deb`).
    ty: &'static str,
    /// Namespace segments, unencoded (`["@angular"]`); empty when there is none.
    namespace: Vec<String>,
    /// The name, unencoded and already normalised for its type.
    name: String,
    /// The version, unencoded; empty when there is none.
    version: String,
    /// Qualifier keys (lowercase ASCII, never encoded) and unencoded values.
    qualifiers: Vec<(String, String)>,
}

impl Parts {
    fn new(ty: &'static str, name: String) -> Self {
        Parts {
            ty,
            namespace: Vec::new(),
            name,
            version: String::new(),
            qualifiers: Vec::new(),
        }
    }

    /// Adds a qualifier when it has a value.
    fn qualify(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.qualifiers.push((key.to_string(), value.to_string()));
        }
    }

    /// The canonical purl string, built as the specification's "How to build a PURL" says.
    fn build(&self) -> String {
        let mut purl = format!("pkg:{}/", self.ty);
        for segment in self.namespace.iter().filter(|segment| !segment.is_empty()) {
            purl.push_str(&encode(segment));
            purl.push('/');
        }
        purl.push_str(&encode(self.name.trim_matches('/')));
        if !self.version.is_empty() {
            purl.push('@');
            purl.push_str(&encode(&self.version));
        }
        let mut qualifiers: Vec<String> = self
            .qualifiers
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| format!("{}={}", key.to_lowercase(), encode(value)))
            .collect();
        qualifiers.sort();
        if !qualifiers.is_empty() {
            purl.push('?');
            purl.push_str(&qualifiers.join("&"));
        }
        purl
    }
}

/// Percent-encodes one component: ASCII alphanumerics, `.-_~` and `:` stay, every other UTF-8
/// byte becomes `%XX`.
fn encode(component: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = String::with_capacity(component.len());
    for byte in component.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_' | b'~' | b':') {
            encoded.push(char::from(byte));
        } else {
            encoded.push('%');
            encoded.push(char::from(HEX[usize::from(byte >> 4)]));
            encoded.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(ecosystem: Ecosystem, name: &str, version: &str, arch: Option<&str>) -> Package {
        Package {
            ecosystem,
            name: name.to_string(),
            version: version.to_string(),
            arch: arch.map(str::to_string),
            source_name: None,
            source_version: None,
            license: None,
            location: String::new(),
            files: Vec::new(),
        }
    }

    fn os(id: &str, version_id: Option<&str>, codename: Option<&str>) -> OsIdentity {
        OsIdentity {
            id: id.to_string(),
            version_id: version_id.map(str::to_string),
            codename: codename.map(str::to_string),
            ..OsIdentity::default()
        }
    }

    /// Type, namespace (empty for none), name, version (empty for none), qualifiers, expected purl.
    type SpecCase = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );

    /// The "build" cases of purl-spec's tests (tests/types/{deb,rpm,apk,pypi,npm,gem}-test.json
    /// and tests/spec/specification-test.json at package-url/purl-spec 16f3d0e) that apply to
    /// what `Parts` builds (no subpath).
    const SPEC_BUILD_CASES: &[SpecCase] = &[
        (
            "deb",
            "debian",
            "curl",
            "7.50.3-1",
            &[("arch", "i386"), ("distro", "jessie")],
            "pkg:deb/debian/curl@7.50.3-1?arch=i386&distro=jessie",
        ),
        (
            "deb",
            "debian",
            "dpkg",
            "1.19.0.4",
            &[("arch", "amd64"), ("distro", "stretch")],
            "pkg:deb/debian/dpkg@1.19.0.4?arch=amd64&distro=stretch",
        ),
        (
            "deb",
            "ubuntu",
            "dpkg",
            "1.19.0.4",
            &[("arch", "amd64")],
            "pkg:deb/ubuntu/dpkg@1.19.0.4?arch=amd64",
        ),
        (
            "deb",
            "debian",
            "attr",
            "1:2.4.47-2",
            &[("arch", "source")],
            "pkg:deb/debian/attr@1:2.4.47-2?arch=source",
        ),
        (
            "deb",
            "debian",
            "attr",
            "1:2.4.47-2+b1",
            &[("arch", "amd64")],
            "pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=amd64",
        ),
        (
            "rpm",
            "fedora",
            "curl",
            "7.50.3-1.fc25",
            &[("arch", "i386"), ("distro", "fedora-25")],
            "pkg:rpm/fedora/curl@7.50.3-1.fc25?arch=i386&distro=fedora-25",
        ),
        (
            "rpm",
            "fedora",
            "centerim",
            "4.22.10-1.el6",
            &[("arch", "i686"), ("distro", "fedora-25"), ("epoch", "1")],
            "pkg:rpm/fedora/centerim@4.22.10-1.el6?arch=i686&distro=fedora-25&epoch=1",
        ),
        (
            "apk",
            "alpine",
            "curl",
            "7.83.0-r0",
            &[("arch", "x86")],
            "pkg:apk/alpine/curl@7.83.0-r0?arch=x86",
        ),
        (
            "apk",
            "alpine",
            "apk",
            "2.12.9-r3",
            &[("arch", "x86")],
            "pkg:apk/alpine/apk@2.12.9-r3?arch=x86",
        ),
        (
            "pypi",
            "",
            "django-package",
            "1.11.1.dev1",
            &[],
            "pkg:pypi/django-package@1.11.1.dev1",
        ),
        (
            "pypi",
            "",
            "django",
            "1.11.1",
            &[],
            "pkg:pypi/django@1.11.1",
        ),
        (
            "pypi",
            "",
            "django",
            "1.11.1",
            &[("file_name", "Django-1.11.1.tar.gz")],
            "pkg:pypi/django@1.11.1?file_name=Django-1.11.1.tar.gz",
        ),
        (
            "pypi",
            "",
            "django",
            "1.11.1",
            &[("file_name", "Django-1.11.1-py2.py3-none-any.whl")],
            "pkg:pypi/django@1.11.1?file_name=Django-1.11.1-py2.py3-none-any.whl",
        ),
        (
            "pypi",
            "",
            "django-allauth",
            "12.23",
            &[],
            "pkg:pypi/django-allauth@12.23",
        ),
        (
            "npm",
            "@angular",
            "animation",
            "12.3.1",
            &[],
            "pkg:npm/%40angular/animation@12.3.1",
        ),
        ("npm", "", "foobar", "12.3.1", &[], "pkg:npm/foobar@12.3.1"),
        (
            "npm",
            "",
            "mypackage",
            "12.4.5",
            &[("vcs_url", "git://host.com/path/to/repo.git@4345abcd34343")],
            "pkg:npm/mypackage@12.4.5?vcs_url=git:%2F%2Fhost.com%2Fpath%2Fto%2Frepo.git%404345abcd34343",
        ),
        (
            "gem",
            "",
            "jruby-launcher",
            "1.1.2",
            &[("platform", "java")],
            "pkg:gem/jruby-launcher@1.1.2?platform=java",
        ),
        (
            "gem",
            "",
            "ruby-advisory-db-check",
            "0.12.4",
            &[],
            "pkg:gem/ruby-advisory-db-check@0.12.4",
        ),
        // Encoding cases of other types: `,` and `+` in qualifier values, spaces.
        (
            "generic",
            "",
            "openssl",
            "1.1.10g",
            &[(
                "checksum",
                "sha1:ad9503c3e994a4f,sha256:41bf9088b3a1e6c1ef1d",
            )],
            "pkg:generic/openssl@1.1.10g?checksum=sha1:ad9503c3e994a4f%2Csha256:41bf9088b3a1e6c1ef1d",
        ),
        (
            "generic",
            "",
            "bitwarderl",
            "",
            &[(
                "vcs_url",
                "git+https://git.fsfe.org/dxtr/bitwarderl@cc55108da32",
            )],
            "pkg:generic/bitwarderl?vcs_url=git%2Bhttps:%2F%2Fgit.fsfe.org%2Fdxtr%2Fbitwarderl%40cc55108da32",
        ),
        (
            "maven",
            "mygroup",
            "myartifact",
            "1.0.0 Final",
            &[("mykey", "my value")],
            "pkg:maven/mygroup/myartifact@1.0.0%20Final?mykey=my%20value",
        ),
        (
            "brew",
            "",
            "postgresql@12",
            "12.17",
            &[],
            "pkg:brew/postgresql%4012@12.17",
        ),
    ];

    #[test]
    fn builds_the_specification_test_cases() {
        for (ty, namespace, name, version, qualifiers, expected) in SPEC_BUILD_CASES {
            let mut parts = Parts::new(ty, name.to_string());
            if !namespace.is_empty() {
                parts.namespace.push(namespace.to_string());
            }
            parts.version = version.to_string();
            for (key, value) in qualifiers.iter().rev() {
                parts.qualify(key, Some(value));
            }
            assert_eq!(parts.build(), *expected);
        }
    }

    #[test]
    fn deb_keeps_its_epoch_and_encodes_plus() {
        let debian = os("debian", Some("12"), Some("bookworm"));
        assert_eq!(
            of(
                &package(Ecosystem::Deb, "libc6", "2.36-9+deb12u4", Some("amd64")),
                Some(&debian)
            ),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            of(
                &package(Ecosystem::Deb, "bsdutils", "1:2.38.1-5+b1", Some("amd64")),
                Some(&debian)
            ),
            "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bb1?arch=amd64&distro=debian-12"
        );
        let ubuntu = os("ubuntu", Some("22.04"), Some("jammy"));
        assert_eq!(
            of(
                &package(
                    Ecosystem::Deb,
                    "libssl3",
                    "3.0.2-0ubuntu1.15",
                    Some("amd64")
                ),
                Some(&ubuntu)
            ),
            "pkg:deb/ubuntu/libssl3@3.0.2-0ubuntu1.15?arch=amd64&distro=ubuntu-22.04"
        );
        let sid = os("debian", None, Some("trixie"));
        assert_eq!(
            of(
                &package(Ecosystem::Deb, "tzdata", "2024a-1", Some("all")),
                Some(&sid)
            ),
            "pkg:deb/debian/tzdata@2024a-1?arch=all&distro=debian-trixie"
        );
    }

    #[test]
    fn rpm_epoch_is_a_qualifier() {
        let centos = os("centos", Some("7"), None);
        assert_eq!(
            of(
                &package(Ecosystem::Rpm, "bash", "1:4.2.46-34.el7", Some("x86_64")),
                Some(&centos)
            ),
            "pkg:rpm/centos/bash@4.2.46-34.el7?arch=x86_64&distro=centos-7&epoch=1"
        );
        assert_eq!(
            of(
                &package(Ecosystem::Rpm, "tzdata", "0:2024a-1.el7", Some("noarch")),
                Some(&centos)
            ),
            "pkg:rpm/centos/tzdata@2024a-1.el7?arch=noarch&distro=centos-7",
            "epoch 0 is the same as none"
        );
        let rhel = os("rhel", Some("9.3"), None);
        assert_eq!(
            of(
                &package(
                    Ecosystem::Rpm,
                    "NetworkManager",
                    "1:1.44.0-3.el9",
                    Some("x86_64")
                ),
                Some(&rhel)
            ),
            "pkg:rpm/redhat/NetworkManager@1.44.0-3.el9?arch=x86_64&distro=redhat-9.3&epoch=1",
            "rpm names keep their case; RHEL's vendor is redhat"
        );
        assert_eq!(
            of(
                &package(Ecosystem::Rpm, "odd", "a:1-1", None),
                Some(&os("fedora", Some("40"), None))
            ),
            "pkg:rpm/fedora/odd@a:1-1?distro=fedora-40",
            "a non-numeric prefix is not an epoch"
        );
    }

    #[test]
    fn apk_distro_is_the_bare_release() {
        assert_eq!(
            of(
                &package(Ecosystem::Apk, "musl", "1.2.4-r2", Some("x86_64")),
                Some(&os("alpine", Some("3.19.1"), None))
            ),
            "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=3.19.1"
        );
    }

    #[test]
    fn os_packages_without_an_os_have_no_namespace() {
        assert_eq!(
            of(
                &package(Ecosystem::Deb, "libc6", "2.36-9", Some("amd64")),
                None
            ),
            "pkg:deb/libc6@2.36-9?arch=amd64"
        );
        assert_eq!(
            of(
                &package(Ecosystem::Rpm, "bash", "1:4.2.46-34.el7", None),
                None
            ),
            "pkg:rpm/bash@4.2.46-34.el7?epoch=1"
        );
    }

    #[test]
    fn language_packages() {
        let debian = os("debian", Some("12"), None);
        assert_eq!(
            of(
                &package(Ecosystem::Pypi, "Zope.Interface", "6.1", None),
                Some(&debian)
            ),
            "pkg:pypi/zope-interface@6.1",
            "language packages ignore the OS"
        );
        assert_eq!(
            of(
                &package(Ecosystem::Npm, "@babel/core", "7.24.0", None),
                None
            ),
            "pkg:npm/%40babel/core@7.24.0"
        );
        assert_eq!(
            of(&package(Ecosystem::Npm, "JSONStream", "1.3.5", None), None),
            "pkg:npm/JSONStream@1.3.5"
        );
        assert_eq!(
            of(&package(Ecosystem::Gem, "rake", "13.1.0", None), None),
            "pkg:gem/rake@13.1.0"
        );
        assert_eq!(
            of(
                &package(Ecosystem::Gem, "nokogiri", "1.16.2", Some("x86_64-linux")),
                None
            ),
            "pkg:gem/nokogiri@1.16.2?platform=x86_64-linux"
        );
        assert_eq!(
            of(
                &package(Ecosystem::Gem, "json", "2.7.1", Some("ruby")),
                None
            ),
            "pkg:gem/json@2.7.1"
        );
    }

    #[test]
    fn pep503_collapses_runs_of_separators() {
        assert_eq!(
            crate::lang::python::normalized_name("Django_package"),
            "django-package"
        );
        assert_eq!(
            crate::lang::python::normalized_name("ruamel.yaml"),
            "ruamel-yaml"
        );
        assert_eq!(crate::lang::python::normalized_name("A-_.-b"), "a-b");
        assert_eq!(
            crate::lang::python::normalized_name("typing_extensions"),
            "typing-extensions"
        );
    }

    #[test]
    fn encodes_non_ascii_as_utf8_bytes() {
        assert_eq!(encode("ü~:%/"), "%C3%BC~:%25%2F");
    }
}
