//! Slipway's SBOMs validate against the official CycloneDX 1.5 JSON schema (tests/data, with its
//! SPDX and JSF schemas registered under their `$id`s so that everything resolves offline), with
//! format assertions on; every reference in them resolves; and the schema as loaded here does
//! reject broken SBOMs, so a pass means something.

use std::collections::HashSet;

use boon::{Compiler, SchemaIndex, Schemas};
use serde_json::{Value, json};
use slipway_scan::package::{Ecosystem, Inventory, OsIdentity, Package};
use slipway_scan::sbom::{SbomSubject, cyclonedx};

const BOM_ID: &str = "http://cyclonedx.org/schema/bom-1.5.schema.json";

/// The compiled CycloneDX 1.5 schema.
struct Cyclonedx {
    schemas: Schemas,
    index: SchemaIndex,
}

impl Cyclonedx {
    fn load() -> Self {
        let mut compiler = Compiler::new();
        // `timestamp` is a `date-time`, `license.url` an `iri-reference`: check them too.
        compiler.enable_format_assertions();
        for (id, file) in [
            (BOM_ID, "bom-1.5.schema.json"),
            (
                "http://cyclonedx.org/schema/spdx.schema.json",
                "spdx.schema.json",
            ),
            (
                "http://cyclonedx.org/schema/jsf-0.82.schema.json",
                "jsf-0.82.schema.json",
            ),
        ] {
            let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).expect("schema file in tests/data");
            let schema: Value = serde_json::from_str(&text).expect("schema file is JSON");
            assert_eq!(
                schema["$id"], id,
                "{file} has the $id it is registered under"
            );
            compiler.add_resource(id, schema).expect("schema resource");
        }
        let mut schemas = Schemas::new();
        let index = compiler
            .compile(BOM_ID, &mut schemas)
            .expect("the CycloneDX 1.5 schema compiles with its references resolved offline");
        Cyclonedx { schemas, index }
    }

    fn check(&self, bom: &Value) -> Result<(), String> {
        self.schemas
            .validate(bom, self.index)
            .map_err(|error| format!("{error:#}"))
    }

    fn assert_valid(&self, bom: &Value) {
        if let Err(error) = self.check(bom) {
            panic!(
                "SBOM does not validate: {error}\n{}",
                serde_json::to_string_pretty(bom).unwrap_or_default()
            );
        }
        assert_references_resolve(bom);
    }
}

/// What the schema cannot say: `bom-ref`s are unique and every `dependencies` reference names one.
fn assert_references_resolve(bom: &Value) {
    let mut refs = HashSet::new();
    let image = &bom["metadata"]["component"]["bom-ref"];
    for component in std::iter::once(image).chain(
        bom["components"]
            .as_array()
            .expect("components")
            .iter()
            .map(|c| &c["bom-ref"]),
    ) {
        let bom_ref = component.as_str().expect("every component has a bom-ref");
        assert!(refs.insert(bom_ref), "bom-ref {bom_ref} is unique");
    }
    for dependency in bom["dependencies"].as_array().expect("dependencies") {
        let from = dependency["ref"].as_str().expect("ref");
        assert!(
            refs.contains(from),
            "dependency ref {from} names a component"
        );
        for to in dependency["dependsOn"].as_array().expect("dependsOn") {
            let to = to.as_str().expect("dependsOn entry");
            assert!(refs.contains(to), "dependsOn {to} names a component");
        }
    }
}

fn subject() -> SbomSubject {
    SbomSubject {
        image: "registry.example/team/app:1.4".to_string(),
        digest: Some(
            "sha256:3f1a0b6a8d1e0c4b2f3e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a".to_string(),
        ),
        timestamp: "2024-03-01T12:00:00Z".to_string(),
        tool_name: "slipway-scan".to_string(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

fn package(
    ecosystem: Ecosystem,
    name: &str,
    version: &str,
    arch: Option<&str>,
    source: Option<(&str, &str)>,
    license: Option<&str>,
    location: &str,
) -> Package {
    Package {
        ecosystem,
        name: name.to_string(),
        version: version.to_string(),
        arch: arch.map(str::to_string),
        source_name: source.map(|(name, _)| name.to_string()),
        source_version: source.map(|(_, version)| version.to_string()),
        license: license.map(str::to_string),
        location: location.to_string(),
        files: Vec::new(),
    }
}

fn os(id: &str, version_id: &str, pretty_name: &str) -> OsIdentity {
    OsIdentity {
        id: id.to_string(),
        version_id: Some(version_id.to_string()),
        pretty_name: Some(pretty_name.to_string()),
        ..OsIdentity::default()
    }
}

/// A Debian image with Python, npm (scoped and not, one package installed twice) and Ruby
/// packages; licences both SPDX ids and free text.
fn debian_with_language_packages() -> Inventory {
    const DPKG: &str = "/var/lib/dpkg/status";
    const NODE: &str = "/app/node_modules";
    Inventory {
        os: Some(os("debian", "12", "Debian GNU/Linux 12 (bookworm)")),
        packages: vec![
            package(
                Ecosystem::Deb,
                "bsdutils",
                "1:2.38.1-5+b1",
                Some("amd64"),
                Some(("util-linux", "2.38.1-5")),
                Some("GPL-2.0-or-later"),
                DPKG,
            ),
            package(
                Ecosystem::Deb,
                "libc6",
                "2.36-9+deb12u4",
                Some("amd64"),
                Some(("glibc", "2.36-9+deb12u4")),
                Some("LGPL-2.1+ and GPL-2+ with exceptions"),
                DPKG,
            ),
            package(
                Ecosystem::Deb,
                "tzdata",
                "2024a-0+deb12u1",
                Some("all"),
                None,
                None,
                DPKG,
            ),
            package(
                Ecosystem::Pypi,
                "Flask_SQLAlchemy",
                "3.1.1",
                None,
                None,
                Some("BSD-3-Clause"),
                "/usr/local/lib/python3.11/site-packages/flask_sqlalchemy-3.1.1.dist-info/METADATA",
            ),
            package(
                Ecosystem::Pypi,
                "requests",
                "2.31.0",
                None,
                None,
                Some("Apache 2.0"),
                "/usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA",
            ),
            package(
                Ecosystem::Npm,
                "@babel/core",
                "7.24.0",
                None,
                None,
                Some("MIT"),
                "/app/node_modules/@babel/core/package.json",
            ),
            package(
                Ecosystem::Npm,
                "ms",
                "2.1.3",
                None,
                None,
                Some("mit"),
                &format!("{NODE}/ms/package.json"),
            ),
            package(
                Ecosystem::Npm,
                "ms",
                "2.1.3",
                None,
                None,
                Some("mit"),
                &format!("{NODE}/debug/node_modules/ms/package.json"),
            ),
            package(
                Ecosystem::Npm,
                "tslib",
                "2.6.2",
                None,
                None,
                Some("0BSD"),
                &format!("{NODE}/tslib/package.json"),
            ),
            package(
                Ecosystem::Gem,
                "nokogiri",
                "1.16.2",
                Some("x86_64-linux"),
                None,
                Some("MIT"),
                "/usr/local/bundle/specifications/nokogiri-1.16.2-x86_64-linux.gemspec",
            ),
            package(
                Ecosystem::Gem,
                "rake",
                "13.1.0",
                None,
                None,
                Some("MIT License"),
                "/usr/local/bundle/specifications/rake-13.1.0.gemspec",
            ),
        ],
    }
}

/// A CentOS 7 image: rpm packages, some with an epoch.
fn centos() -> Inventory {
    const RPMDB: &str = "/var/lib/rpm/Packages";
    Inventory {
        os: Some(os("centos", "7", "CentOS Linux 7 (Core)")),
        packages: vec![
            package(
                Ecosystem::Rpm,
                "bash",
                "1:4.2.46-34.el7",
                Some("x86_64"),
                Some(("bash", "4.2.46-34.el7")),
                Some("GPLv3+"),
                RPMDB,
            ),
            package(
                Ecosystem::Rpm,
                "openssl-libs",
                "1:1.0.2k-26.el7_9",
                Some("x86_64"),
                Some(("openssl", "1.0.2k-26.el7_9")),
                Some("OpenSSL"),
                RPMDB,
            ),
            package(
                Ecosystem::Rpm,
                "tzdata",
                "2024a-1.el7",
                Some("noarch"),
                None,
                Some("Public Domain"),
                RPMDB,
            ),
        ],
    }
}

/// An Alpine image.
fn alpine() -> Inventory {
    const APKDB: &str = "/lib/apk/db/installed";
    Inventory {
        os: Some(os("alpine", "3.19.1", "Alpine Linux v3.19")),
        packages: vec![
            package(
                Ecosystem::Apk,
                "busybox",
                "1.36.1-r15",
                Some("x86_64"),
                Some(("busybox", "1.36.1-r15")),
                Some("GPL-2.0-only"),
                APKDB,
            ),
            package(
                Ecosystem::Apk,
                "musl",
                "1.2.4-r2",
                Some("x86_64"),
                None,
                Some("MIT"),
                APKDB,
            ),
            package(
                Ecosystem::Apk,
                "ssl_client",
                "1.36.1-r15",
                Some("x86_64"),
                Some(("busybox", "1.36.1-r15")),
                Some("GPL-2.0-only"),
                APKDB,
            ),
        ],
    }
}

#[test]
fn sboms_of_every_ecosystem_validate() {
    let schema = Cyclonedx::load();
    for inventory in [debian_with_language_packages(), centos(), alpine()] {
        schema.assert_valid(&cyclonedx(&inventory, &subject()));
    }
}

#[test]
fn sboms_of_empty_inventories_validate() {
    let schema = Cyclonedx::load();
    let mut subject = subject();
    schema.assert_valid(&cyclonedx(&Inventory::default(), &subject));
    subject.digest = None;
    schema.assert_valid(&cyclonedx(&Inventory::default(), &subject));
    let os_only = Inventory {
        os: Some(os("debian", "12", "Debian GNU/Linux 12 (bookworm)")),
        packages: Vec::new(),
    };
    schema.assert_valid(&cyclonedx(&os_only, &subject));
    let no_os = Inventory {
        os: None,
        packages: alpine().packages,
    };
    schema.assert_valid(&cyclonedx(&no_os, &subject));
}

#[test]
fn the_sbom_has_what_the_inventory_has() {
    let bom = cyclonedx(&debian_with_language_packages(), &subject());
    let components = bom["components"].as_array().expect("components");
    // The OS, 3 deb, 2 pypi, 3 distinct npm (ms twice), 2 gem.
    assert_eq!(components.len(), 11);
    let by_ref = |bom_ref: &str| {
        components
            .iter()
            .find(|c| c["bom-ref"] == bom_ref)
            .unwrap_or_else(|| panic!("a component {bom_ref}"))
    };
    let bsdutils = by_ref("pkg:deb/debian/bsdutils@1:2.38.1-5%2Bb1?arch=amd64&distro=debian-12");
    assert_eq!(
        bsdutils["licenses"],
        json!([{ "license": { "id": "GPL-2.0-or-later" } }])
    );
    let libc = by_ref("pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12");
    assert_eq!(
        libc["licenses"],
        json!([{ "license": { "name": "LGPL-2.1+ and GPL-2+ with exceptions" } }])
    );
    assert_eq!(
        by_ref("pkg:pypi/flask-sqlalchemy@3.1.1")["name"],
        "Flask_SQLAlchemy"
    );
    assert_eq!(by_ref("pkg:npm/%40babel/core@7.24.0")["group"], "@babel");
    assert_eq!(
        by_ref("pkg:npm/ms@2.1.3")["licenses"],
        json!([{ "license": { "id": "MIT" } }])
    );
    assert_eq!(
        by_ref("pkg:gem/nokogiri@1.16.2?platform=x86_64-linux")["version"],
        "1.16.2"
    );

    let bom = cyclonedx(&centos(), &subject());
    let bash = &bom["components"][1];
    assert_eq!(
        bash["purl"],
        "pkg:rpm/centos/bash@4.2.46-34.el7?arch=x86_64&distro=centos-7&epoch=1"
    );
    assert_eq!(bash["version"], "1:4.2.46-34.el7");
}

/// What a mutation breaks, where the schema must report it, and how it breaks it.
type Mutation = (&'static str, &'static str, fn(&mut Value));

/// Each mutation breaks one rule of the schema; the schema as loaded here must reject it.
#[test]
fn broken_sboms_are_rejected() {
    let schema = Cyclonedx::load();
    let good = cyclonedx(&debian_with_language_packages(), &subject());
    schema.assert_valid(&good);
    let mutations: [Mutation; 9] = [
        ("specVersion is not a string", "/specVersion", |bom| {
            bom["specVersion"] = json!(1.5)
        }),
        ("bomFormat is not CycloneDX", "/bomFormat", |bom| {
            bom["bomFormat"] = json!("SPDX")
        }),
        ("$schema names another version", "/$schema", |bom| {
            bom["$schema"] = json!("http://cyclonedx.org/schema/bom-1.4.schema.json")
        }),
        ("a component has no name", "/components/1", |bom| {
            if let Some(component) = bom["components"][1].as_object_mut() {
                component.remove("name");
            }
        }),
        ("a component type is unknown", "/components/1/type", |bom| {
            bom["components"][1]["type"] = json!("package")
        }),
        (
            "a licence id is not an SPDX id",
            "/components/1/licenses/0/license/id",
            |bom| bom["components"][1]["licenses"] = json!([{ "license": { "id": "GPLv2+" } }]),
        ),
        (
            "the serial number is not a UUID URN",
            "/serialNumber",
            |bom| bom["serialNumber"] = json!("urn:uuid:not-a-uuid"),
        ),
        (
            "the timestamp is not a date-time",
            "/metadata/timestamp",
            |bom| bom["metadata"]["timestamp"] = json!("yesterday"),
        ),
        (
            "a dependency repeats an entry",
            "/dependencies/0/dependsOn",
            |bom| {
                if let Some(depends_on) = bom["dependencies"][0]["dependsOn"].as_array_mut() {
                    let first = depends_on[0].clone();
                    depends_on.push(first);
                }
            },
        ),
    ];
    for (broken, at, mutate) in mutations {
        let mut bom = good.clone();
        mutate(&mut bom);
        assert_ne!(bom, good, "the mutation '{broken}' changes the SBOM");
        match schema.check(&bom) {
            Ok(()) => panic!("an SBOM where {broken} validates"),
            Err(error) => assert!(
                error.contains(&format!("at '{at}'")),
                "an SBOM where {broken} is rejected at {at}, not for another reason: {error}"
            ),
        }
    }
}
