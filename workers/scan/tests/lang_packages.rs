//! The language-package readers against real installations made offline at test time by the
//! ecosystems' own tools (`slipway_tests::installs`) — a Python venv with locally built wheels and
//! a develop-mode project, an `npm install` of local tarballs (one nested, one scoped), RubyGems'
//! default gems and gems built and installed here — compared with what those tools list.
//!
//! Each installation is read as the image reader reads an image: every regular file under a root
//! (symbolic links are not followed, as a layer's tar stores them as links), its path relative to
//! that root given to `lang::wanted`, the files it picks given to `lang::read`.
//!
//! Needs `python3` with `venv` (Debian: `python3`, `python3-venv`, whose `python3-setuptools-whl`
//! serves Python versions whose venvs lack setuptools), `npm` (`npm`) and `ruby`/`gem` (`ruby`);
//! no network. A missing tool fails the test with what to install.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use slipway_scan::lang::python::normalized_name;
use slipway_scan::lang::{self, LangFile};
use slipway_scan::package::{Ecosystem, Package};
use slipway_tests::TempDir;
use slipway_tests::installs;
use slipway_tests::tools::run;

/// A (name, version) pair, the unit every comparison is made in.
type NameVersion = (String, String);

/// Every package under `root` whose path relative to `base` the readers pick.
fn scan(base: &Path, root: &Path) -> Vec<Package> {
    let mut packages = Vec::new();
    let mut directories = vec![root.to_path_buf()];
    while let Some(directory) = directories.pop() {
        let entries = fs::read_dir(&directory)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", directory.display()));
        for entry in entries {
            let entry =
                entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", directory.display()));
            let path = entry.path();
            let file_type = entry
                .file_type()
                .unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()));
            if file_type.is_dir() {
                directories.push(path);
                continue;
            }
            if !file_type.is_file() {
                continue;
            }
            let relative = path
                .strip_prefix(base)
                .ok()
                .and_then(Path::to_str)
                .unwrap_or_else(|| {
                    panic!(
                        "{} is not a UTF-8 path under {}",
                        path.display(),
                        base.display()
                    )
                });
            let Some(kind) = lang::wanted(relative) else {
                continue;
            };
            let bytes =
                fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            match lang::read(kind, relative, &bytes) {
                Ok(Some(package)) => {
                    assert_eq!(package.location, format!("/{relative}"));
                    assert_eq!(package.ecosystem, kind.ecosystem());
                    packages.push(package);
                }
                Ok(None) => {}
                Err(error) => panic!("{error}"),
            }
        }
    }
    packages
}

/// The (name, version) pairs of `packages` in `ecosystem`.
fn names_and_versions(packages: &[Package], ecosystem: Ecosystem) -> BTreeSet<NameVersion> {
    packages
        .iter()
        .filter(|package| package.ecosystem == ecosystem)
        .map(|package| (package.name.clone(), package.version.clone()))
        .collect()
}

/// The package called `name` in `packages`.
fn find<'p>(packages: &'p [Package], name: &str) -> &'p Package {
    packages
        .iter()
        .find(|package| package.name == name)
        .unwrap_or_else(|| panic!("no package {name} in {packages:#?}"))
}

/// Debian's copy of the setuptools wheel (`python3-setuptools-whl`, which `python3-venv` needs).
const DEBIAN_WHEELS: &str = "/usr/share/python-wheels";

/// Installs setuptools into the venv of `python` when it lacks it (Python 3.12 stopped putting it
/// in new venvs), from Debian's wheel: no index is consulted.
fn ensure_setuptools(python: &Path, listed: &[serde_json::Value]) {
    if listed.iter().any(|entry| entry["name"] == "setuptools") {
        return;
    }
    run(
        installs::pip(python)
            .args(["install", "--quiet", "--find-links", DEBIAN_WHEELS])
            .arg("setuptools<80"),
        "python3-setuptools-whl",
    );
}

#[test]
fn a_python_venv_reads_as_pip_lists_it() {
    let scratch = TempDir::new("lang-python");
    let venv = scratch.path().join("venv");
    let python = installs::python_venv(&venv, scratch.path());
    let pip_list = || -> Vec<serde_json::Value> {
        let listed = run(
            installs::pip(&python).args(["list", "--format", "json"]),
            "python3-venv",
        );
        serde_json::from_str(&listed).unwrap_or_else(|e| panic!("pip list printed {listed:?}: {e}"))
    };
    ensure_setuptools(&python, &pip_list());

    // A project installed in develop mode: setuptools writes its PKG-INFO into the source tree
    // (under the venv here, so that the scan sees it), with a licence folded over two lines.
    let project = venv.join("src/probe");
    fs::create_dir_all(&project)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", project.display()));
    let setup = r#"from setuptools import setup
setup(
    name="Slipway_Probe.Pkg",
    version="1.2.3",
    license="Probe Licence\nsecond line",
    py_modules=[],
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "License :: OSI Approved :: Apache Software License",
    ],
)
"#;
    fs::write(project.join("setup.py"), setup)
        .unwrap_or_else(|e| panic!("cannot write setup.py: {e}"));
    run(
        Command::new(&python)
            .args(["setup.py", "--quiet", "develop"])
            .current_dir(&project),
        "python3-venv",
    );

    let listed: BTreeSet<NameVersion> = pip_list()
        .iter()
        .map(
            |entry| match (entry["name"].as_str(), entry["version"].as_str()) {
                (Some(name), Some(version)) => (name.to_owned(), version.to_owned()),
                _ => panic!("pip list entry without a name and version: {entry}"),
            },
        )
        .collect();
    let packages = scan(&venv, &venv);
    assert_eq!(names_and_versions(&packages, Ecosystem::Pypi), listed);
    assert!(listed.iter().any(|(name, _)| name == "pip"), "{listed:?}");

    let probe = find(&packages, "Slipway-Probe.Pkg");
    assert_eq!(probe.version, "1.2.3");
    assert_eq!(
        probe.location,
        "/src/probe/Slipway_Probe.Pkg.egg-info/PKG-INFO"
    );
    assert_eq!(
        probe.license.as_deref(),
        Some("MIT License, Apache Software License")
    );
    assert_eq!(normalized_name(&probe.name), "slipway-probe-pkg");
    let pip = find(&packages, "pip");
    assert!(
        pip.location.starts_with("/lib/python3.") && pip.location.ends_with(".dist-info/METADATA"),
        "{}",
        pip.location
    );
    assert_eq!(pip.license.as_deref(), Some("MIT"));
    // The wheels built here: names as written in their metadata, the body's `Version:` ignored.
    let alpha = find(&packages, "Slipway_Fixture.Alpha");
    assert_eq!(alpha.version, "1.0.0");
    assert_eq!(alpha.license.as_deref(), Some("Apache-2.0"));
    assert!(
        alpha
            .location
            .ends_with("/site-packages/slipway_fixture_alpha-1.0.0.dist-info/METADATA"),
        "{}",
        alpha.location
    );
    let beta = find(&packages, "slipway-fixture-beta");
    assert_eq!(beta.version, "2.1.0.post1");
    assert_eq!(beta.license.as_deref(), Some("MIT License"));
}

/// Every (name, version) in an `npm ls --json` tree.
fn npm_tree(node: &serde_json::Value, into: &mut BTreeSet<NameVersion>) {
    let Some(dependencies) = node["dependencies"].as_object() else {
        return;
    };
    for (name, dependency) in dependencies {
        let version = dependency["version"]
            .as_str()
            .unwrap_or_else(|| panic!("npm ls lists {name} without a version: {dependency}"));
        into.insert((name.clone(), version.to_owned()));
        npm_tree(dependency, into);
    }
}

#[test]
fn an_npm_install_reads_as_npm_ls_lists_it() {
    // `root` stands for an image's root, with the application in /srv/app; the packages are
    // made and packed outside it.
    let scratch = TempDir::new("lang-npm");
    let root = scratch.path().join("root");
    let app = root.join("srv/app");
    installs::npm_install(&app, &scratch.path().join("work"));
    let tree = run(
        Command::new("npm")
            .args(["ls", "--all", "--json", "--offline"])
            .current_dir(&app),
        "npm",
    );
    let tree: serde_json::Value =
        serde_json::from_str(&tree).unwrap_or_else(|e| panic!("npm ls printed {tree:?}: {e}"));
    let mut listed = BTreeSet::new();
    npm_tree(&tree, &mut listed);

    let packages = scan(&root, &root);
    assert_eq!(names_and_versions(&packages, Ecosystem::Npm), listed);
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(
        !packages.iter().any(|p| p.name == "slipway-fixture-app"),
        "the app is not a dependency"
    );
    let nested = packages
        .iter()
        .find(|p| {
            p.location
                == "/srv/app/node_modules/slipway-nest/node_modules/slipway-leaf/package.json"
        })
        .unwrap_or_else(|| panic!("no nested slipway-leaf in {packages:#?}"));
    assert_eq!(
        (nested.name.as_str(), nested.version.as_str()),
        ("slipway-leaf", "1.0.0")
    );
    let scoped = find(&packages, "@slipway/scoped");
    assert_eq!(
        scoped.location,
        "/srv/app/node_modules/@slipway/scoped/package.json"
    );
    assert_eq!(scoped.license.as_deref(), Some("MIT OR Apache-2.0"));
}

/// The (name, version) pairs `gem list --local` prints (`rake (13.0.6)`,
/// `json (default: 2.6.1)`, `foo (2.0, 1.0)`, `nokogiri (1.15.0 x86_64-linux)`).
fn gem_list(command: &mut Command) -> BTreeSet<NameVersion> {
    let listed = run(command.args(["list", "--local"]), "ruby");
    let mut gems = BTreeSet::new();
    for line in listed.lines() {
        let Some((name, versions)) = line.split_once(" (") else {
            continue;
        };
        let versions = versions.trim_end().trim_end_matches(')');
        for version in versions.split(", ") {
            let version = version.trim_start_matches("default: ");
            let version = version.split_whitespace().next().unwrap_or(version);
            gems.insert((name.to_owned(), version.to_owned()));
        }
    }
    gems
}

/// The lines `ruby -e <script>` prints, run with `command`'s environment.
fn ruby_lines(command: &mut Command) -> Vec<PathBuf> {
    run(command, "ruby").lines().map(PathBuf::from).collect()
}

#[test]
fn the_hosts_gems_read_as_gem_lists_them() {
    // Every directory of the gem path, as this host's RubyGems has it (Debian: the default gems
    // in /usr/lib/ruby/gems/*/specifications/default, the bundled ones, rubygems-integration).
    let gem_path = ruby_lines(Command::new("ruby").args(["-e", "puts Gem.path"]));
    let mut found = BTreeSet::new();
    for directory in gem_path.iter().filter(|directory| directory.is_dir()) {
        found.extend(names_and_versions(
            &scan(Path::new("/"), directory),
            Ecosystem::Gem,
        ));
    }
    let listed = gem_list(&mut Command::new("gem"));
    assert_eq!(found, listed);
    assert!(
        listed.iter().any(|(name, _)| name == "json"),
        "no default gems in {listed:?}"
    );
}

#[test]
fn a_gem_installed_here_reads_as_gem_lists_it() {
    let scratch = TempDir::new("lang-gem");
    let home = scratch.path().join("home");
    installs::gem_install(&home, scratch.path());

    // RubyGems confined to the new home still lists the default gems, from their own directory.
    let confined = |command: &mut Command| {
        command.env("GEM_HOME", &home).env("GEM_PATH", &home);
    };
    let mut ruby = Command::new("ruby");
    ruby.args(["-e", "puts Gem.default_specifications_dir"]);
    confined(&mut ruby);
    let defaults = ruby_lines(&mut ruby);
    let mut found = names_and_versions(&scan(&home, &home), Ecosystem::Gem);
    for directory in &defaults {
        found.extend(names_and_versions(
            &scan(Path::new("/"), directory),
            Ecosystem::Gem,
        ));
    }
    let mut gem = Command::new("gem");
    confined(&mut gem);
    assert_eq!(found, gem_list(&mut gem));

    let packages = scan(&home, &home);
    let probe = find(&packages, "slipway-probe");
    assert_eq!(probe.version, "1.2.3.pre");
    assert_eq!(
        probe.location,
        "/specifications/slipway-probe-1.2.3.pre.gemspec"
    );
    assert_eq!(probe.license.as_deref(), Some("MIT, Apache-2.0"));
    assert_eq!(probe.arch, None, "a pure-Ruby gem has no platform");
    let native = find(&packages, "slipway-native");
    assert_eq!(
        (
            native.version.as_str(),
            native.license.as_deref(),
            native.arch.as_deref()
        ),
        ("0.1.0", Some("BSD-2-Clause"), Some("x86_64-linux"))
    );
    assert_eq!(
        native.location,
        "/specifications/slipway-native-0.1.0-x86_64-linux.gemspec"
    );
    assert_eq!(
        lang::wanted("specifications/slipway-probe-1.2.3.pre.gemspec"),
        Some(LangFile::Gemspec)
    );
}
