//! Language-package installations made offline by the ecosystems' own tools from small packages
//! written here: a Python venv with two locally built wheels ([`python_venv`]), an `npm install`
//! of local tarballs in which npm must nest an older version of one package under another and
//! install a scoped one ([`npm_install`]), and gems made with `gem build` and installed with
//! `gem install --local` ([`gem_install`]). Nothing comes from a package registry, so every run
//! installs the same packages.
//!
//! What gets installed is not exported as data: the tests that use these installations state the
//! package sets they expect themselves, so a reader that misreads an installation, or a change
//! here, fails them.
//!
//! Needs `python3` with `venv` (Debian: `python3-venv`), `npm` and `gem` (Debian: `ruby`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools::run;

/// The source of this module: everything the installations are made from. A cache of images
/// built from them keys on it, so an edit here makes new images.
pub const RECIPE: &str = include_str!("installs.rs");

/// Writes `contents` to `path`, creating its directory.
fn write(path: &Path, contents: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    fs::write(path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// A wheel made here: its distribution name as wheel file names spell it, its version and its
/// core metadata.
struct Wheel {
    /// `slipway_fixture_alpha` (the wheel file and `.dist-info` directory name).
    distribution: &'static str,
    /// The version, as in the metadata.
    version: &'static str,
    /// The `METADATA` file.
    metadata: &'static str,
}

/// The wheels [`python_venv`] installs: a name pip normalises (`_` and `.`), a post-release
/// version, a licence given as a classifier and a description body after the headers.
const WHEELS: [Wheel; 2] = [
    Wheel {
        distribution: "slipway_fixture_alpha",
        version: "1.0.0",
        metadata: "Metadata-Version: 2.1\nName: Slipway_Fixture.Alpha\nVersion: 1.0.0\n\
                   Summary: Slipway test distribution\nLicense: Apache-2.0\n",
    },
    Wheel {
        distribution: "slipway_fixture_beta",
        version: "2.1.0.post1",
        metadata: "Metadata-Version: 2.1\nName: slipway-fixture-beta\nVersion: 2.1.0.post1\n\
                   Summary: Slipway test distribution\n\
                   Classifier: License :: OSI Approved :: MIT License\n\
                   Description-Content-Type: text/plain\n\nVersion: 9.9.9 is body text.\n",
    },
];

/// Writes a pure-Python wheel (PEP 427: a zip with the package, its `.dist-info/METADATA`,
/// `WHEEL` and a `RECORD` of sha256 digests). Arguments: the wheel's path, its distribution
/// name, version and METADATA text.
const WHEEL_SCRIPT: &str = r#"
import base64, hashlib, sys, zipfile
path, distribution, version, metadata = sys.argv[1:5]
info = f"{distribution}-{version}.dist-info"
files = {
    f"{distribution}/__init__.py": "",
    f"{info}/METADATA": metadata,
    f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: slipway-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
with zipfile.ZipFile(path, "w") as wheel:
    for name, text in files.items():
        data = text.encode()
        wheel.writestr(name, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
"#;

/// `python -m pip …` with no index, no configuration files and no version check: only the
/// files given are installed.
pub fn pip(python: &Path) -> Command {
    let mut command = Command::new(python);
    command
        .args(["-m", "pip"])
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_NO_INDEX", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    command
}

/// Makes a venv at `venv` with `python3 -m venv` (pip comes from the interpreter's own bundled
/// wheel) and installs the two wheels of this module into it with pip, building them in `work`.
/// Returns the venv's interpreter. The venv also holds pip (and setuptools on Python < 3.12):
/// [`remove_pip`] takes them out.
pub fn python_venv(venv: &Path, work: &Path) -> PathBuf {
    run(
        Command::new("python3").args(["-m", "venv"]).arg(venv),
        "python3-venv",
    );
    let wheels: Vec<PathBuf> = WHEELS
        .iter()
        .map(|wheel| {
            let path = work.join(format!(
                "{}-{}-py3-none-any.whl",
                wheel.distribution, wheel.version
            ));
            run(
                Command::new("python3")
                    .args(["-c", WHEEL_SCRIPT])
                    .arg(&path)
                    .args([wheel.distribution, wheel.version, wheel.metadata]),
                "python3",
            );
            path
        })
        .collect();
    let python = venv.join("bin/python");
    run(
        pip(&python)
            .args(["install", "--quiet", "--no-deps"])
            .args(&wheels),
        "python3-venv",
    );
    python
}

/// Uninstalls pip and setuptools from the venv of `python` (pip removes itself last), so that
/// it holds exactly the wheels [`python_venv`] installed.
pub fn remove_pip(python: &Path) {
    run(
        pip(python).args(["uninstall", "--quiet", "--yes", "setuptools", "pip"]),
        "python3-venv",
    );
}

/// `slipway-leaf` 1.0.0, which `slipway-nest` bundles.
const LEAF_1: &str = r#"{"name":"slipway-leaf","version":"1.0.0","license":"MIT"}"#;

/// `slipway-leaf` 2.0.0, which the application depends on.
const LEAF_2: &str = r#"{"name":"slipway-leaf","version":"2.0.0","license":"ISC"}"#;

/// `slipway-nest`, which needs and bundles `slipway-leaf` 1.0.0: npm installs it under
/// `node_modules/slipway-nest/node_modules/`, since the top level has 2.0.0.
const NEST: &str = r#"{"name":"slipway-nest","version":"1.1.0","license":"BSD-3-Clause","dependencies":{"slipway-leaf":"1.0.0"},"bundleDependencies":["slipway-leaf"]}"#;

/// A scoped package with npm's legacy `licenses` array.
const SCOPED: &str = r#"{"name":"@slipway/scoped","version":"0.3.0-beta.1","licenses":[{"type":"MIT"},{"type":"Apache-2.0"}]}"#;

/// The application's own manifest (not a dependency).
const APP: &str =
    r#"{"name":"slipway-fixture-app","version":"0.0.0","private":true,"license":"MIT"}"#;

/// `npm …` offline, with its cache and user configuration in `work`.
fn npm(work: &Path) -> Command {
    let mut command = Command::new("npm");
    command
        .args(["--offline", "--no-audit", "--no-fund", "--ignore-scripts"])
        .arg("--cache")
        .arg(work.join("npm-cache"))
        .env("NPM_CONFIG_USERCONFIG", work.join("npmrc"));
    command
}

/// Packs the package whose manifest is `manifest` (written to `work/src/<dir>`) into `work`;
/// returns the tarball's path.
fn npm_pack(work: &Path, dir: &str, manifest: &str) -> PathBuf {
    let source = work.join("src").join(dir);
    write(&source.join("package.json"), manifest);
    let printed = run(
        npm(work)
            .args(["pack", "--silent"])
            .arg(&source)
            .current_dir(work),
        "npm",
    );
    let tarball = printed
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_else(|| panic!("npm pack {} printed no file name", source.display()));
    work.join(tarball.trim())
}

/// Writes an application's `package.json` in `app` and installs into it, with `npm install
/// --offline`, tarballs packed in `work`: `slipway-leaf` 2.0.0, `slipway-nest` 1.1.0 (with its
/// bundled `slipway-leaf` 1.0.0, nested) and `@slipway/scoped` 0.3.0-beta.1.
pub fn npm_install(app: &Path, work: &Path) {
    write(&work.join("npmrc"), "");
    // A bundled dependency is packed from the package's own node_modules.
    write(
        &work.join("src/nest/node_modules/slipway-leaf/package.json"),
        LEAF_1,
    );
    let tarballs = [
        npm_pack(work, "nest", NEST),
        npm_pack(work, "leaf", LEAF_2),
        npm_pack(work, "scoped", SCOPED),
    ];
    write(&app.join("package.json"), APP);
    run(
        npm(work)
            .args(["install", "--save-exact"])
            .args(&tarballs)
            .current_dir(app),
        "npm",
    );
}

/// The gems [`gem_install`] builds: a pure-Ruby pre-release with two licences, and one built for
/// a platform (`x86_64-linux`), whose stub and file names carry it.
const GEMSPECS: [(&str, &str); 2] = [
    (
        "slipway-probe",
        r#"Gem::Specification.new do |s|
  s.name = "slipway-probe"
  s.version = "1.2.3.pre"
  s.summary = "Slipway's test gem"
  s.authors = ["Slipway"]
  s.files = []
  s.licenses = ["MIT", "Apache-2.0"]
end
"#,
    ),
    (
        "slipway-native",
        r#"Gem::Specification.new do |s|
  s.name = "slipway-native"
  s.version = "0.1.0"
  s.platform = "x86_64-linux"
  s.summary = "Slipway's test gem for one platform"
  s.authors = ["Slipway"]
  s.files = []
  s.license = "BSD-2-Clause"
end
"#,
    ),
];

/// Builds the two gems of this module in `work` with `gem build` and installs them into the gem
/// directory `home` with `gem install --local` (specification stubs in `home/specifications`).
pub fn gem_install(home: &Path, work: &Path) {
    for (name, gemspec) in GEMSPECS {
        let source = work.join(name);
        write(&source.join(format!("{name}.gemspec")), gemspec);
        let gem = work.join(format!("{name}.gem"));
        run(
            Command::new("gem")
                .args(["build", &format!("{name}.gemspec"), "--output"])
                .arg(&gem)
                .current_dir(&source),
            "ruby",
        );
        run(
            Command::new("gem")
                .args([
                    "install",
                    "--local",
                    "--ignore-dependencies",
                    "--no-document",
                    "--install-dir",
                ])
                .arg(home)
                .arg(&gem),
            "ruby",
        );
    }
}
