//! Which OSV ecosystem, release and package name an inventory package is known by, following the
//! ecosystem list of the OSV schema (its `ecosystems.json`).
//!
//! | inventory                | OSV ecosystem                                   | name looked up      |
//! |--------------------------|-------------------------------------------------|---------------------|
//! | deb on `debian`          | `Debian:<VERSION_ID major>` (codename without)  | source package      |
//! | deb on `ubuntu`          | `Ubuntu:<YY.MM>[:LTS]`, `Ubuntu:Pro:<YY.MM>:LTS`| source package      |
//! | apk on `alpine`          | `Alpine:v<major.minor>`                         | source (origin)     |
//! | rpm on `rocky`           | `Rocky Linux:<major>`                           | binary and source   |
//! | rpm on `almalinux`       | `AlmaLinux:<major>`                             | binary and source   |
//! | rpm on `rhel`            | `Red Hat:enterprise_linux:<major>[::<stream>]`  | binary and source   |
//! | rpm on `mageia`          | `Mageia:<major>`                                | source package      |
//! | rpm on `opensuse*`       | `openSUSE:<PRETTY_NAME less "openSUSE ">`, and its `NonFree` | source package |
//! | rpm on `sles`, `sled`, … | `SUSE:<any product> <major> SP<minor>[-…]`      | source package      |
//! | pypi / npm / gem         | `PyPI` / `npm` / `RubyGems`                     | name (PyPI: PEP 503)|
//!
//! Why each choice:
//! - The schema says Debian, Ubuntu, Alpine, Mageia, openSUSE and SUSE records name source
//!   packages, so a binary package is looked up by its `source_name` (its own name when it has
//!   none) and compared by its `source_version` (its own version when it has none).
//! - Red Hat records name "a binary or source RPM", and AlmaLinux's and Rocky Linux's records are
//!   in practice written per binary RPM (`nginx-core`, `openssl-libs`), although the schema says
//!   source: rpm packages are looked up by both names, each with its own version.
//! - Ubuntu marks LTS releases with a mandatory `:LTS`; a release is LTS when its `PRETTY_NAME`
//!   says so or it is an even year's `.04`. Ubuntu Pro (ESM) records of the same release are
//!   matched too: a package the standard archive no longer fixes is still vulnerable.
//! - Red Hat scopes records by product stream CPE (`enterprise_linux:9::appstream`, `::baseos`,
//!   `::crb`); os-release does not say which streams an image uses, so every
//!   `enterprise_linux:<major>` stream is matched. Extended-support streams (`rhel_eus:9.2`, …)
//!   are not: a standard image does not get their builds.
//! - SUSE files packages under the product or module that ships them (`Linux Enterprise Module
//!   for Basesystem 15 SP5`, `Linux Enterprise Server 15 SP5-LTSS`), which os-release does not
//!   name, so any SUSE product of the image's `<major> SP<minor>` is matched.
//! - A record whose ecosystem has no release (`Debian`, `AlmaLinux`: the suffix is optional there)
//!   applies to every release.
//! - Other distributions (CentOS, Fedora, Oracle, Amazon Linux, derivatives known only by
//!   `ID_LIKE`) have no OSV ecosystem whose versions match their packages: their packages are
//!   reported as not checked rather than matched against a relative's data.

use std::fmt;

use crate::package::{Ecosystem, OsIdentity, Package};

/// Where an inventory package is looked up in an OSV database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The OSV ecosystem's name without release (`Debian`, `Red Hat`, `PyPI`).
    pub family: &'static str,
    /// Which releases of that ecosystem apply.
    pub release: Release,
    /// Which of the package's names records use.
    pub names: Names,
}

/// The releases of an OSV ecosystem that apply to an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Release {
    /// The ecosystem has no releases (language package registries): only unscoped records.
    Unscoped,
    /// Exactly one of these (`12`; `22.04:LTS` and `Pro:22.04:LTS`).
    OneOf(Vec<String>),
    /// Red Hat Enterprise Linux `major`: `enterprise_linux:<major>` and its `::<stream>`s.
    RedHat {
        /// The major release (`9`).
        major: String,
    },
    /// A SUSE product of this version (`15 SP5`), with any support-phase suffix (`-LTSS`).
    Suse {
        /// The product version as SUSE writes it (`15 SP5`).
        version: String,
    },
}

impl Release {
    /// Whether a record's release scope (`None` when it has none) applies.
    pub fn accepts(&self, scope: Option<&str>) -> bool {
        let Some(scope) = scope else {
            return true;
        };
        match self {
            Release::Unscoped => false,
            Release::OneOf(releases) => releases.iter().any(|release| release == scope),
            Release::RedHat { major } => scope
                .strip_prefix("enterprise_linux:")
                .and_then(|rest| rest.strip_prefix(major.as_str()))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::")),
            Release::Suse { version } => {
                let product = scope.split('-').next().unwrap_or(scope);
                product
                    .strip_suffix(version.as_str())
                    .is_some_and(|name| name.ends_with(' '))
            }
        }
    }
}

/// Which names of a package OSV records use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    /// The source package's (the package's own when it has no source).
    Source,
    /// Both the binary package's and, when different, the source package's.
    BinaryAndSource,
    /// The package's own.
    Own,
}

/// A package name and version to look up, as [`lookups`] gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup<'a> {
    /// The name as the database indexes it ([`name_key`] applied).
    pub key: String,
    /// The version to compare with the record's events.
    pub version: &'a str,
}

/// Why an inventory package has no OSV ecosystem.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unmapped {
    /// An OS package in an image whose OS is unknown.
    NoOs,
    /// The OS has no OSV ecosystem for this kind of package.
    UnknownOs {
        /// os-release `ID`.
        id: String,
    },
    /// The OS is known but its release is not (no usable `VERSION_ID`).
    NoRelease {
        /// os-release `ID`.
        id: String,
    },
}

impl fmt::Display for Unmapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unmapped::NoOs => write!(f, "the image's OS is unknown"),
            Unmapped::UnknownOs { id } => write!(f, "OSV has no ecosystem for OS {id:?}"),
            Unmapped::NoRelease { id } => {
                write!(f, "OS {id:?} has no release OSV can be matched on")
            }
        }
    }
}

/// Where packages of `ecosystem` in an image running `os` are looked up (see the module
/// documentation for the mapping and its reasons).
pub fn target(ecosystem: Ecosystem, os: Option<&OsIdentity>) -> Result<Target, Unmapped> {
    let language = |family| Target {
        family,
        release: Release::Unscoped,
        names: Names::Own,
    };
    match ecosystem {
        Ecosystem::Pypi => return Ok(language("PyPI")),
        Ecosystem::Npm => return Ok(language("npm")),
        Ecosystem::Gem => return Ok(language("RubyGems")),
        Ecosystem::Deb | Ecosystem::Rpm | Ecosystem::Apk => {}
    }
    let os = os.ok_or(Unmapped::NoOs)?;
    let id = os.id.to_ascii_lowercase();
    let version_id = os.version_id.as_deref().map(str::trim).unwrap_or_default();
    let unknown = || Unmapped::UnknownOs { id: id.clone() };
    let no_release = || Unmapped::NoRelease { id: id.clone() };
    let major = || leading_numbers(version_id, 1).ok_or_else(no_release);
    let one = |release: String| Release::OneOf(vec![release]);
    let (family, release, names) = match (ecosystem, id.as_str()) {
        (Ecosystem::Deb, "debian") => {
            let release = match major() {
                Ok(major) => major,
                Err(err) => os
                    .codename
                    .clone()
                    .filter(|codename| !codename.is_empty())
                    .ok_or(err)?,
            };
            ("Debian", one(release), Names::Source)
        }
        (Ecosystem::Deb, "ubuntu") => {
            let release = leading_numbers(version_id, 2).ok_or_else(no_release)?;
            let releases = if is_ubuntu_lts(&release, os.pretty_name.as_deref()) {
                vec![format!("{release}:LTS"), format!("Pro:{release}:LTS")]
            } else {
                vec![release]
            };
            ("Ubuntu", Release::OneOf(releases), Names::Source)
        }
        (Ecosystem::Apk, "alpine") => {
            let release = leading_numbers(version_id, 2).ok_or_else(no_release)?;
            ("Alpine", one(format!("v{release}")), Names::Source)
        }
        (Ecosystem::Rpm, "rocky") => ("Rocky Linux", one(major()?), Names::BinaryAndSource),
        (Ecosystem::Rpm, "almalinux") => ("AlmaLinux", one(major()?), Names::BinaryAndSource),
        (Ecosystem::Rpm, "rhel") => (
            "Red Hat",
            Release::RedHat { major: major()? },
            Names::BinaryAndSource,
        ),
        (Ecosystem::Rpm, "mageia") => ("Mageia", one(major()?), Names::Source),
        (Ecosystem::Rpm, opensuse) if opensuse.starts_with("opensuse") => {
            let product = opensuse_product(os).ok_or_else(no_release)?;
            let releases = vec![format!("{product} NonFree"), product];
            ("openSUSE", Release::OneOf(releases), Names::Source)
        }
        (Ecosystem::Rpm, "sles" | "sled" | "sles_sap" | "sle_hpc") => {
            let version = match leading_numbers(version_id, 2) {
                Some(version) => match version.split_once('.') {
                    Some((major, "0")) => major.to_owned(),
                    Some((major, minor)) => format!("{major} SP{minor}"),
                    None => version,
                },
                None => major()?,
            };
            ("SUSE", Release::Suse { version }, Names::Source)
        }
        _ => return Err(unknown()),
    };
    Ok(Target {
        family,
        release,
        names,
    })
}

/// The names and versions to look `package` up by under `names`, without repeats.
pub fn lookups<'a>(package: &'a Package, target: &Target) -> Vec<Lookup<'a>> {
    let own = Lookup {
        key: name_key(target.family, &package.name),
        version: &package.version,
    };
    let source = Lookup {
        key: name_key(
            target.family,
            package.source_name.as_deref().unwrap_or(&package.name),
        ),
        version: package
            .source_version
            .as_deref()
            .unwrap_or(&package.version),
    };
    match target.names {
        Names::Own => vec![own],
        Names::Source => vec![source],
        Names::BinaryAndSource if source == own => vec![own],
        Names::BinaryAndSource => vec![own, source],
    }
}

/// A package name as an index of `family`'s records compares it: PyPI names PEP 503 normalised
/// (lowercase, every run of `-`, `_`, `.` one `-`), as the schema says PyPI records write them;
/// every other name as it is.
pub fn name_key(family: &str, name: &str) -> String {
    if family != "PyPI" {
        return name.to_owned();
    }
    crate::lang::python::normalized_name(name)
}

/// The first `count` dot-separated numbers of `version` (`3.18.4` → `3.18` for 2), each all
/// digits; `None` when it has fewer.
fn leading_numbers(version: &str, count: usize) -> Option<String> {
    let numbers: Vec<&str> = version.split('.').take(count).collect();
    let valid = numbers.len() == count
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    valid.then(|| numbers.join("."))
}

/// Whether Ubuntu `release` (`22.04`) is a long-term-support release.
fn is_ubuntu_lts(release: &str, pretty_name: Option<&str>) -> bool {
    if pretty_name.is_some_and(|name| name.split_whitespace().any(|word| word == "LTS")) {
        return true;
    }
    match release.split_once('.') {
        Some((year, "04")) => year.parse::<u32>().is_ok_and(|year| year % 2 == 0),
        _ => false,
    }
}

/// openSUSE's release as its records name it: `PRETTY_NAME` without `openSUSE ` (`Leap 15.5`,
/// `Tumbleweed`), or built from `ID` and `VERSION_ID` when there is no such `PRETTY_NAME`.
fn opensuse_product(os: &OsIdentity) -> Option<String> {
    if let Some(product) = os
        .pretty_name
        .as_deref()
        .and_then(|name| name.strip_prefix("openSUSE "))
        .filter(|product| !product.trim().is_empty())
    {
        return Some(product.trim().to_owned());
    }
    let version = os.version_id.as_deref().filter(|v| !v.is_empty());
    match (os.id.to_ascii_lowercase().as_str(), version) {
        ("opensuse-tumbleweed", _) => Some("Tumbleweed".to_owned()),
        ("opensuse-leap", Some(version)) => Some(format!("Leap {version}")),
        ("opensuse-leap-micro", Some(version)) => Some(format!("Leap Micro {version}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(id: &str, version_id: Option<&str>, pretty_name: Option<&str>) -> OsIdentity {
        OsIdentity {
            id: id.to_owned(),
            version_id: version_id.map(str::to_owned),
            pretty_name: pretty_name.map(str::to_owned),
            ..OsIdentity::default()
        }
    }

    /// The target's family and the releases it is given as `OneOf`.
    fn releases(ecosystem: Ecosystem, os: &OsIdentity) -> (&'static str, Vec<String>) {
        match target(ecosystem, Some(os)) {
            Ok(Target {
                family,
                release: Release::OneOf(releases),
                ..
            }) => (family, releases),
            other => panic!("{os:?}: {other:?}"),
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn debian_by_major_release_or_codename() {
        assert_eq!(
            releases(Ecosystem::Deb, &os("debian", Some("12"), None)),
            ("Debian", strings(&["12"]))
        );
        let sid = OsIdentity {
            codename: Some("sid".to_owned()),
            ..os("debian", None, None)
        };
        assert_eq!(
            releases(Ecosystem::Deb, &sid),
            ("Debian", strings(&["sid"]))
        );
        assert_eq!(
            target(Ecosystem::Deb, Some(&os("debian", None, None))),
            Err(Unmapped::NoRelease {
                id: "debian".to_owned()
            })
        );
    }

    #[test]
    fn ubuntu_marks_lts_releases() {
        assert_eq!(
            releases(Ecosystem::Deb, &os("ubuntu", Some("22.04"), None)),
            ("Ubuntu", strings(&["22.04:LTS", "Pro:22.04:LTS"]))
        );
        assert_eq!(
            releases(
                Ecosystem::Deb,
                &os("ubuntu", Some("23.10"), Some("Ubuntu 23.10"))
            ),
            ("Ubuntu", strings(&["23.10"]))
        );
        assert_eq!(
            releases(Ecosystem::Deb, &os("ubuntu", Some("23.04"), None)),
            ("Ubuntu", strings(&["23.04"]))
        );
        assert_eq!(
            releases(
                Ecosystem::Deb,
                &os("ubuntu", Some("6.06"), Some("Ubuntu 6.06.2 LTS"))
            ),
            ("Ubuntu", strings(&["6.06:LTS", "Pro:6.06:LTS"]))
        );
    }

    #[test]
    fn alpine_by_branch() {
        assert_eq!(
            releases(Ecosystem::Apk, &os("alpine", Some("3.18.4"), None)),
            ("Alpine", strings(&["v3.18"]))
        );
        assert!(target(Ecosystem::Apk, Some(&os("alpine", Some("edge"), None))).is_err());
    }

    #[test]
    fn rpm_distributions() {
        let rocky = target(Ecosystem::Rpm, Some(&os("rocky", Some("9.3"), None)));
        assert_eq!(
            rocky,
            Ok(Target {
                family: "Rocky Linux",
                release: Release::OneOf(strings(&["9"])),
                names: Names::BinaryAndSource,
            })
        );
        assert_eq!(
            releases(Ecosystem::Rpm, &os("almalinux", Some("8.9"), None)),
            ("AlmaLinux", strings(&["8"]))
        );
        assert_eq!(
            releases(Ecosystem::Rpm, &os("mageia", Some("9"), None)),
            ("Mageia", strings(&["9"]))
        );
        assert_eq!(
            releases(
                Ecosystem::Rpm,
                &os("opensuse-leap", Some("15.5"), Some("openSUSE Leap 15.5"))
            ),
            ("openSUSE", strings(&["Leap 15.5 NonFree", "Leap 15.5"]))
        );
        assert_eq!(
            releases(
                Ecosystem::Rpm,
                &os("opensuse-tumbleweed", Some("20240801"), None)
            ),
            ("openSUSE", strings(&["Tumbleweed NonFree", "Tumbleweed"]))
        );
        for (id, ecosystem) in [
            ("centos", Ecosystem::Rpm),
            ("fedora", Ecosystem::Rpm),
            ("amzn", Ecosystem::Rpm),
            ("debian", Ecosystem::Rpm),
            ("alpine", Ecosystem::Deb),
        ] {
            assert_eq!(
                target(ecosystem, Some(&os(id, Some("9"), None))),
                Err(Unmapped::UnknownOs { id: id.to_owned() })
            );
        }
        assert_eq!(target(Ecosystem::Rpm, None), Err(Unmapped::NoOs));
    }

    #[test]
    fn red_hat_matches_every_stream_of_its_major_release() {
        let release = match target(Ecosystem::Rpm, Some(&os("rhel", Some("9.4"), None))) {
            Ok(target) => target.release,
            Err(err) => panic!("{err}"),
        };
        for scope in [
            "enterprise_linux:9",
            "enterprise_linux:9::appstream",
            "enterprise_linux:9::baseos",
            "enterprise_linux:9::crb",
        ] {
            assert!(release.accepts(Some(scope)), "{scope}");
        }
        for scope in [
            "enterprise_linux:8::baseos",
            "enterprise_linux:90::baseos",
            "rhel_eus:9.2::appstream",
            "9",
        ] {
            assert!(!release.accepts(Some(scope)), "{scope}");
        }
        assert!(release.accepts(None));
    }

    #[test]
    fn suse_matches_any_product_of_the_service_pack() {
        let release = match target(Ecosystem::Rpm, Some(&os("sles", Some("15.5"), None))) {
            Ok(target) => target.release,
            Err(err) => panic!("{err}"),
        };
        assert_eq!(
            release,
            Release::Suse {
                version: "15 SP5".to_owned()
            }
        );
        for scope in [
            "Linux Enterprise Server 15 SP5",
            "Linux Enterprise Server 15 SP5-LTSS",
            "Linux Enterprise Module for Basesystem 15 SP5",
        ] {
            assert!(release.accepts(Some(scope)), "{scope}");
        }
        for scope in [
            "Linux Enterprise Server 15 SP4",
            "Linux Enterprise Server 15 SP55",
            "Linux Enterprise Server 115 SP5",
        ] {
            assert!(!release.accepts(Some(scope)), "{scope}");
        }
        let sles15 = target(Ecosystem::Rpm, Some(&os("sles", Some("15"), None)));
        assert_eq!(
            sles15.map(|t| t.release),
            Ok(Release::Suse {
                version: "15".to_owned()
            })
        );
    }

    #[test]
    fn language_ecosystems_need_no_os_and_no_release() {
        for (ecosystem, family) in [
            (Ecosystem::Pypi, "PyPI"),
            (Ecosystem::Npm, "npm"),
            (Ecosystem::Gem, "RubyGems"),
        ] {
            let target = target(ecosystem, None);
            assert_eq!(
                target,
                Ok(Target {
                    family,
                    release: Release::Unscoped,
                    names: Names::Own,
                })
            );
        }
        assert!(Release::Unscoped.accepts(None));
        assert!(!Release::Unscoped.accepts(Some("x")));
    }

    #[test]
    fn names_and_versions_looked_up() {
        let package = Package {
            ecosystem: Ecosystem::Deb,
            name: "libssl3".to_owned(),
            version: "3.0.11-1~deb12u2+b1".to_owned(),
            arch: None,
            source_name: Some("openssl".to_owned()),
            source_version: Some("3.0.11-1~deb12u2".to_owned()),
            license: None,
            location: "/var/lib/dpkg/status".to_owned(),
            files: vec![],
        };
        let deb = target(Ecosystem::Deb, Some(&os("debian", Some("12"), None)));
        let lookup = |target: &Target| -> Vec<(String, String)> {
            lookups(&package, target)
                .into_iter()
                .map(|l| (l.key, l.version.to_owned()))
                .collect()
        };
        let pair = |name: &str, version: &str| (name.to_owned(), version.to_owned());
        if let Ok(deb) = &deb {
            assert_eq!(lookup(deb), vec![pair("openssl", "3.0.11-1~deb12u2")]);
        }
        let rpm = Target {
            family: "Red Hat",
            release: Release::Unscoped,
            names: Names::BinaryAndSource,
        };
        assert_eq!(
            lookup(&rpm),
            vec![
                pair("libssl3", "3.0.11-1~deb12u2+b1"),
                pair("openssl", "3.0.11-1~deb12u2")
            ]
        );
        let plain = Package {
            source_name: None,
            source_version: None,
            ..package.clone()
        };
        assert_eq!(lookups(&plain, &rpm).len(), 1);
    }

    #[test]
    fn pypi_names_are_pep503_normalised() {
        assert_eq!(name_key("PyPI", "Zope.Interface"), "zope-interface");
        assert_eq!(name_key("PyPI", "a__b-.c"), "a-b-c");
        assert_eq!(name_key("PyPI", "_Private"), "-private");
        assert_eq!(name_key("PyPI", "requests"), "requests");
        assert_eq!(name_key("npm", "@Scope/Pkg"), "@Scope/Pkg");
    }

    #[test]
    fn reasons_read_well() {
        assert_eq!(Unmapped::NoOs.to_string(), "the image's OS is unknown");
        assert_eq!(
            Unmapped::UnknownOs {
                id: "centos".to_owned()
            }
            .to_string(),
            "OSV has no ecosystem for OS \"centos\""
        );
    }
}
