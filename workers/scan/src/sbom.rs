//! The CycloneDX 1.5 SBOM (JSON) of an image's inventory: the image, its OS, its packages and
//! which contains which.
//!
//! Shape:
//! - `metadata.component` is the image (`type: container`, `name` = the reference, `version` = the
//!   manifest digest when known); `metadata.tools` uses 1.5's `tools.components` form.
//! - `components` holds the OS (`type: operating-system`, `name` = os-release `ID`, `version` =
//!   `VERSION_ID`) when there is one, then one `type: library` component per distinct purl, in
//!   inventory order.
//! - `dependencies`: the image depends on the OS and on every language package (and on the OS
//!   packages when there is no OS component); the OS depends on the OS packages (deb, rpm, apk).
//!   Packages get no dependency entry of their own: the inventory does not record what a package
//!   depends on, and CycloneDX reads an absent entry as "unknown" where an empty one would claim
//!   "depends on nothing".
//!
//! Invariants:
//! - Every `bom-ref` is unique: package components are keyed by purl, and the same purl found at
//!   several locations (two copies of one npm package) is one component with one
//!   `slipway:package:location` property per location; the image's ref starts with `image:`, the
//!   OS's with `os:` and every purl with `pkg:`, so the three kinds cannot collide.
//! - A licence is written as `license.id` only when it is an SPDX licence id (compared ignoring
//!   case, written in its canonical case), taken from the same `spdx.schema.json` the schema test
//!   validates against (`tests/data`), so every `id` written is one the schema accepts; anything
//!   else (`GPLv2+`, `MIT License`, expressions) is written as `license.name`, verbatim.
//! - `serialNumber` is a random (v4) UUID: CycloneDX asks for a new serial number for every BOM
//!   generated, even when its content is unchanged, so it is not derived from the image digest.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::package::{Ecosystem, Inventory, OsIdentity, Package};
use crate::purl;

/// Content type of a stored SBOM (CycloneDX's registered media type for JSON).
pub const MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

/// The CycloneDX specification version written (`specVersion`).
pub const SPEC_VERSION: &str = "1.5";

/// The JSON schema the output conforms to (`$schema`).
pub const SCHEMA_URL: &str = "http://cyclonedx.org/schema/bom-1.5.schema.json";

/// What an SBOM describes and what made it: everything `cyclonedx` needs beyond the inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbomSubject {
    /// The image reference as it was asked for (`registry.example/app:1.4`).
    pub image: String,
    /// The image's manifest digest (`sha256:…`), when known.
    pub digest: Option<String>,
    /// When the SBOM was made, as an RFC 3339 date-time (`2024-03-01T12:00:00Z`); the caller owns
    /// the clock so that the SBOM is a function of its inputs (apart from `serialNumber`).
    pub timestamp: String,
    /// The name of the tool that made it (`slipway-scan`).
    pub tool_name: String,
    /// The version of that tool (`0.1.0`).
    pub tool_version: String,
}

/// The CycloneDX 1.5 JSON SBOM of `inventory`, the image described by `subject` (see the module
/// documentation for its shape).
pub fn cyclonedx(inventory: &Inventory, subject: &SbomSubject) -> Value {
    let image_ref = image_bom_ref(subject);
    let os = inventory.os.as_ref();
    let os_ref = os.map(os_bom_ref);

    let mut components = Vec::new();
    if let (Some(os), Some(os_ref)) = (os, &os_ref) {
        components.push(os_component(os, os_ref));
    }
    // Components by purl, so that the same package found twice becomes one component.
    let mut index_of: HashMap<String, usize> = HashMap::new();
    let mut os_packages = Vec::new();
    let mut image_dependencies: Vec<Value> = os_ref.iter().map(|r| json!(r)).collect();
    for package in &inventory.packages {
        let purl = purl::of(package, os);
        if let Some(&index) = index_of.get(&purl) {
            add_location(&mut components[index], &package.location);
            continue;
        }
        index_of.insert(purl.clone(), components.len());
        let is_os_package = matches!(
            package.ecosystem,
            Ecosystem::Deb | Ecosystem::Rpm | Ecosystem::Apk
        );
        if is_os_package && os_ref.is_some() {
            os_packages.push(json!(purl));
        } else {
            image_dependencies.push(json!(purl));
        }
        components.push(package_component(package, purl));
    }

    let mut dependencies = vec![json!({ "ref": image_ref, "dependsOn": image_dependencies })];
    if let Some(os_ref) = os_ref {
        dependencies.push(json!({ "ref": os_ref, "dependsOn": os_packages }));
    }

    let mut image = json!({
        "type": "container",
        "bom-ref": image_ref,
        "name": subject.image,
    });
    if let Some(digest) = &subject.digest {
        image["version"] = json!(digest);
    }

    json!({
        "$schema": SCHEMA_URL,
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "version": 1,
        "metadata": {
            "timestamp": subject.timestamp,
            "tools": {
                "components": [{
                    "type": "application",
                    "name": subject.tool_name,
                    "version": subject.tool_version,
                }],
            },
            "component": image,
        },
        "components": components,
        "dependencies": dependencies,
    })
}

/// `image:<reference>`, with `@<digest>` added when the digest is known and the reference does not
/// already pin one.
fn image_bom_ref(subject: &SbomSubject) -> String {
    match &subject.digest {
        Some(digest) if !subject.image.contains('@') => {
            format!("image:{}@{digest}", subject.image)
        }
        _ => format!("image:{}", subject.image),
    }
}

/// `os:<ID>` or `os:<ID>@<VERSION_ID>`.
fn os_bom_ref(os: &OsIdentity) -> String {
    match &os.version_id {
        Some(version) => format!("os:{}@{version}", os.id),
        None => format!("os:{}", os.id),
    }
}

fn os_component(os: &OsIdentity, bom_ref: &str) -> Value {
    let mut component = json!({
        "type": "operating-system",
        "bom-ref": bom_ref,
        "name": os.id,
    });
    if let Some(version) = os.version_id.as_ref().or(os.codename.as_ref()) {
        component["version"] = json!(version);
    }
    if let Some(pretty_name) = &os.pretty_name {
        component["description"] = json!(pretty_name);
    }
    component
}

fn package_component(package: &Package, purl: String) -> Value {
    let mut component = json!({ "type": "library", "bom-ref": purl });
    // An npm scope is CycloneDX's `group` (as the CycloneDX npm tools write it).
    match package.name.split_once('/') {
        Some((scope, name)) if package.ecosystem == Ecosystem::Npm && scope.starts_with('@') => {
            component["group"] = json!(scope);
            component["name"] = json!(name);
        }
        _ => component["name"] = json!(package.name),
    }
    if !package.version.is_empty() {
        component["version"] = json!(package.version);
    }
    component["purl"] = json!(purl);
    if let Some(license) = package.license.as_deref().map(str::trim)
        && !license.is_empty()
    {
        let license = match spdx_id(license) {
            Some(id) => json!({ "id": id }),
            None => json!({ "name": license }),
        };
        component["licenses"] = json!([{ "license": license }]);
    }
    let mut properties = vec![property("slipway:package:location", &package.location)];
    if let Some(source_name) = &package.source_name {
        properties.push(property("slipway:package:source-name", source_name));
    }
    if let Some(source_version) = &package.source_version {
        properties.push(property("slipway:package:source-version", source_version));
    }
    component["properties"] = Value::Array(properties);
    component
}

fn property(name: &str, value: &str) -> Value {
    json!({ "name": name, "value": value })
}

/// Records another location of a component's package, unless it is already recorded.
fn add_location(component: &mut Value, location: &str) {
    let location = property("slipway:package:location", location);
    if let Some(properties) = component
        .get_mut("properties")
        .and_then(Value::as_array_mut)
        && !properties.contains(&location)
    {
        let after_last_location = properties
            .iter()
            .rposition(|p| p["name"] == "slipway:package:location")
            .map_or(0, |i| i + 1);
        properties.insert(after_last_location, location);
    }
}

/// The SPDX licence list CycloneDX 1.5 validates `license.id` against: the `enum` of its
/// `spdx.schema.json` (kept in `tests/data`, where the schema test loads it too).
const SPDX_SCHEMA: &str = include_str!("../tests/data/spdx.schema.json");

/// SPDX ids by their lowercase form, so that `mit` is written as `MIT`. SPDX ids are matched
/// ignoring case (SPDX specification, annex on licence expressions); no two ids differ only in
/// case. Empty if the embedded file were not the expected JSON, which only makes every licence a
/// `license.name` (the unit tests prove it is not empty).
static SPDX_IDS: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(SPDX_SCHEMA).unwrap_or(Value::Null);
    schema["enum"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|id| (id.to_lowercase(), id.to_string()))
        .collect()
});

/// The canonical SPDX id `license` is, ignoring case; `None` for anything else.
fn spdx_id(license: &str) -> Option<&'static str> {
    SPDX_IDS.get(&license.to_lowercase()).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(ecosystem: Ecosystem, name: &str, version: &str, location: &str) -> Package {
        Package {
            ecosystem,
            name: name.to_string(),
            version: version.to_string(),
            arch: None,
            source_name: None,
            source_version: None,
            license: None,
            location: location.to_string(),
            files: Vec::new(),
        }
    }

    fn subject() -> SbomSubject {
        SbomSubject {
            image: "registry.example/app:1.4".to_string(),
            digest: Some("sha256:0123".to_string()),
            timestamp: "2024-03-01T12:00:00Z".to_string(),
            tool_name: "slipway-scan".to_string(),
            tool_version: "0.1.0".to_string(),
        }
    }

    fn debian() -> OsIdentity {
        OsIdentity {
            id: "debian".to_string(),
            version_id: Some("12".to_string()),
            pretty_name: Some("Debian GNU/Linux 12 (bookworm)".to_string()),
            ..OsIdentity::default()
        }
    }

    #[test]
    fn spdx_ids_come_from_the_schema_list() {
        assert!(SPDX_IDS.len() > 500, "{} SPDX ids", SPDX_IDS.len());
        assert_eq!(spdx_id("MIT"), Some("MIT"));
        assert_eq!(spdx_id("apache-2.0"), Some("Apache-2.0"));
        assert_eq!(spdx_id("GPL-2.0-or-later"), Some("GPL-2.0-or-later"));
        assert_eq!(spdx_id("GPLv2+"), None);
        assert_eq!(spdx_id("MIT License"), None);
        assert_eq!(spdx_id("MIT OR Apache-2.0"), None);
    }

    #[test]
    fn licences_are_ids_when_spdx_and_names_otherwise() {
        let mut mit = package(
            Ecosystem::Npm,
            "left-pad",
            "1.3.0",
            "/app/node_modules/left-pad",
        );
        mit.license = Some(" mit ".to_string());
        let mut gpl = package(Ecosystem::Rpm, "bash", "4.2.46-34.el7", "/var/lib/rpm");
        gpl.license = Some("GPLv3+".to_string());
        let mut blank = package(Ecosystem::Gem, "rake", "13.1.0", "/gems/rake.gemspec");
        blank.license = Some("  ".to_string());
        let inventory = Inventory {
            os: None,
            packages: vec![mit, gpl, blank],
        };
        let bom = cyclonedx(&inventory, &subject());
        let components = bom["components"].as_array().expect("components");
        assert_eq!(
            components[0]["licenses"],
            json!([{ "license": { "id": "MIT" } }])
        );
        assert_eq!(
            components[1]["licenses"],
            json!([{ "license": { "name": "GPLv3+" } }])
        );
        assert!(components[2].get("licenses").is_none());
    }

    #[test]
    fn one_component_per_purl_with_every_location() {
        let inventory = Inventory {
            os: None,
            packages: vec![
                package(
                    Ecosystem::Npm,
                    "ms",
                    "2.1.3",
                    "/app/node_modules/ms/package.json",
                ),
                package(
                    Ecosystem::Npm,
                    "ms",
                    "2.1.3",
                    "/app/node_modules/debug/node_modules/ms/package.json",
                ),
                package(
                    Ecosystem::Npm,
                    "ms",
                    "2.1.3",
                    "/app/node_modules/ms/package.json",
                ),
                package(
                    Ecosystem::Npm,
                    "ms",
                    "2.0.0",
                    "/app/node_modules/send/node_modules/ms/package.json",
                ),
            ],
        };
        let bom = cyclonedx(&inventory, &subject());
        let components = bom["components"].as_array().expect("components");
        assert_eq!(components.len(), 2);
        assert_eq!(components[0]["bom-ref"], "pkg:npm/ms@2.1.3");
        assert_eq!(
            components[0]["properties"],
            json!([
                { "name": "slipway:package:location", "value": "/app/node_modules/ms/package.json" },
                { "name": "slipway:package:location", "value": "/app/node_modules/debug/node_modules/ms/package.json" },
            ])
        );
        assert_eq!(
            bom["dependencies"],
            json!([{
                "ref": "image:registry.example/app:1.4@sha256:0123",
                "dependsOn": ["pkg:npm/ms@2.1.3", "pkg:npm/ms@2.0.0"],
            }])
        );
    }

    #[test]
    fn the_os_holds_the_os_packages_and_the_image_the_rest() {
        let mut libc = package(
            Ecosystem::Deb,
            "libc6",
            "2.36-9+deb12u4",
            "/var/lib/dpkg/status",
        );
        libc.arch = Some("amd64".to_string());
        libc.source_name = Some("glibc".to_string());
        libc.license = Some("LGPL-2.1".to_string());
        let inventory = Inventory {
            os: Some(debian()),
            packages: vec![
                libc,
                package(
                    Ecosystem::Pypi,
                    "requests",
                    "2.28.1",
                    "/usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA",
                ),
                package(
                    Ecosystem::Npm,
                    "@babel/core",
                    "7.24.0",
                    "/app/node_modules/@babel/core/package.json",
                ),
            ],
        };
        let bom = cyclonedx(&inventory, &subject());
        let libc = "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12";
        assert_eq!(
            bom["components"],
            json!([
                {
                    "type": "operating-system",
                    "bom-ref": "os:debian@12",
                    "name": "debian",
                    "version": "12",
                    "description": "Debian GNU/Linux 12 (bookworm)",
                },
                {
                    "type": "library",
                    "bom-ref": libc,
                    "name": "libc6",
                    "version": "2.36-9+deb12u4",
                    "purl": libc,
                    "licenses": [{ "license": { "id": "LGPL-2.1" } }],
                    "properties": [
                        { "name": "slipway:package:location", "value": "/var/lib/dpkg/status" },
                        { "name": "slipway:package:source-name", "value": "glibc" },
                    ],
                },
                {
                    "type": "library",
                    "bom-ref": "pkg:pypi/requests@2.28.1",
                    "name": "requests",
                    "version": "2.28.1",
                    "purl": "pkg:pypi/requests@2.28.1",
                    "properties": [{
                        "name": "slipway:package:location",
                        "value": "/usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA",
                    }],
                },
                {
                    "type": "library",
                    "bom-ref": "pkg:npm/%40babel/core@7.24.0",
                    "group": "@babel",
                    "name": "core",
                    "version": "7.24.0",
                    "purl": "pkg:npm/%40babel/core@7.24.0",
                    "properties": [{
                        "name": "slipway:package:location",
                        "value": "/app/node_modules/@babel/core/package.json",
                    }],
                },
            ])
        );
        assert_eq!(
            bom["dependencies"],
            json!([
                {
                    "ref": "image:registry.example/app:1.4@sha256:0123",
                    "dependsOn": ["os:debian@12", "pkg:pypi/requests@2.28.1", "pkg:npm/%40babel/core@7.24.0"],
                },
                { "ref": "os:debian@12", "dependsOn": [libc] },
            ])
        );
    }

    #[test]
    fn header_and_metadata() {
        let bom = cyclonedx(&Inventory::default(), &subject());
        assert_eq!(bom["bomFormat"], "CycloneDX");
        assert_eq!(bom["specVersion"], "1.5");
        assert_eq!(bom["version"], 1);
        let serial = bom["serialNumber"].as_str().expect("serialNumber");
        let uuid = serial.strip_prefix("urn:uuid:").expect("urn:uuid: prefix");
        assert_eq!(
            uuid::Uuid::parse_str(uuid).map(|u| u.get_version_num()),
            Ok(4)
        );
        assert_ne!(
            cyclonedx(&Inventory::default(), &subject())["serialNumber"],
            bom["serialNumber"],
            "every BOM gets its own serial number"
        );
        assert_eq!(
            bom["metadata"],
            json!({
                "timestamp": "2024-03-01T12:00:00Z",
                "tools": { "components": [{ "type": "application", "name": "slipway-scan", "version": "0.1.0" }] },
                "component": {
                    "type": "container",
                    "bom-ref": "image:registry.example/app:1.4@sha256:0123",
                    "name": "registry.example/app:1.4",
                    "version": "sha256:0123",
                },
            })
        );
        assert_eq!(bom["components"], json!([]));
    }

    #[test]
    fn image_refs_pin_the_digest_once() {
        let mut pinned = subject();
        pinned.image = "registry.example/app@sha256:0123".to_string();
        assert_eq!(
            image_bom_ref(&pinned),
            "image:registry.example/app@sha256:0123"
        );
        pinned.digest = None;
        assert_eq!(
            image_bom_ref(&pinned),
            "image:registry.example/app@sha256:0123"
        );
    }
}
