//! npm packages: the `package.json` of each package directory under a `node_modules` directory.
//!
//! A manifest without a `name` or `version` (a workspace's private placeholder, a stub some tools
//! leave) describes no installable package and is skipped (`Ok(None)`), not an error; a file that
//! is not a JSON object, or a `name`/`version` that is not a string, is an error. The licence is
//! the `license` string (an SPDX expression, `SEE LICENSE IN …` or `UNLICENSED`, kept as written),
//! or the legacy forms npm's documentation describes: a `{ "type": …, "url": … }` object, or a
//! `licenses` array of such objects (or of strings), read as a choice (`MIT OR Apache-2.0`).

use serde_json::Value;

use super::{Declared, Mismatch, identifier};

/// Whether a file named `file` in `parent`, in `grandparent`, in `great_grandparent` is a
/// package's manifest: `node_modules/<name>/package.json` or
/// `node_modules/@<scope>/<name>/package.json`.
pub(super) fn is_manifest(
    file: &str,
    parent: &str,
    grandparent: &str,
    great_grandparent: &str,
) -> bool {
    if file != "package.json" || !is_package_dir(parent) {
        return false;
    }
    let unscoped = grandparent == "node_modules" && !parent.starts_with('@');
    let scoped = great_grandparent == "node_modules"
        && grandparent.strip_prefix('@').is_some_and(is_package_dir);
    unscoped || scoped
}

/// Whether a directory name can be an npm package name (or scope): npm names never start with
/// `.` or `_`, which keeps out `.bin`, `.cache` and `.pnpm` themselves.
fn is_package_dir(name: &str) -> bool {
    !name.is_empty() && !name.starts_with(['.', '_'])
}

/// Reads a `package.json`: `Ok(None)` when it has no name or no version.
pub(super) fn parse(bytes: &[u8]) -> Result<Option<Declared>, Mismatch> {
    let value: Value = serde_json::from_slice(super::without_bom(bytes))
        .map_err(|error| Mismatch::described("a JSON object", format!("invalid JSON ({error})")))?;
    let Value::Object(manifest) = value else {
        return Err(Mismatch::described(
            "a JSON object",
            kind_of(&value).to_owned(),
        ));
    };
    let Some(name) = text_field(&manifest, "name")? else {
        return Ok(None);
    };
    let Some(version) = text_field(&manifest, "version")? else {
        return Ok(None);
    };
    let mut licences = manifest
        .get("license")
        .map(licence_names)
        .unwrap_or_default();
    if licences.is_empty() {
        licences = manifest
            .get("licenses")
            .map(licence_names)
            .unwrap_or_default();
    }
    Ok(Some(Declared {
        name: identifier("`name`", &name)?,
        version: identifier("`version`", &version)?,
        license: (!licences.is_empty()).then(|| licences.join(" OR ")),
        arch: None,
    }))
}

/// The string field `key`: `None` when absent, `null` or blank, an error when not a string.
fn text_field(
    manifest: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<String>, Mismatch> {
    match manifest.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(Mismatch::described(
            format!("`{key}` to be a string"),
            kind_of(other).to_owned(),
        )),
    }
}

/// The licence names in a `license` or `licenses` value: a string, a `{type}` object, or an
/// array of those. Other shapes declare nothing readable and give none.
fn licence_names(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(licence_name).collect(),
        single => licence_name(single).into_iter().collect(),
    }
}

/// One licence: a non-blank string, or an object's non-blank `type` string.
fn licence_name(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(text) => text,
        Value::Object(object) => object.get("type")?.as_str()?,
        _ => return None,
    };
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// How a JSON value is named in an error message.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(
        name: &str,
        version: &str,
        license: Option<&str>,
    ) -> Result<Option<Declared>, Mismatch> {
        Ok(Some(Declared::new(name, version, license)))
    }

    #[test]
    fn reads_a_published_manifest() {
        let manifest = r#"{
  "name": "express",
  "description": "Fast, unopinionated, minimalist web framework",
  "version": "4.18.2",
  "author": "TJ Holowaychuk <tj@vision-media.ca>",
  "license": "MIT",
  "repository": "expressjs/express",
  "dependencies": { "accepts": "~1.3.8", "array-flatten": "1.1.1" },
  "engines": { "node": ">= 0.10.0" }
}"#;
        assert_eq!(
            parse(manifest.as_bytes()),
            declared("express", "4.18.2", Some("MIT"))
        );
    }

    #[test]
    fn reads_a_scoped_package_with_an_spdx_expression() {
        let manifest =
            br#"{"name":"@babel/code-frame","version":"7.24.7","license":"(MIT OR Apache-2.0)"}"#;
        assert_eq!(
            parse(manifest),
            declared("@babel/code-frame", "7.24.7", Some("(MIT OR Apache-2.0)"))
        );
    }

    #[test]
    fn reads_legacy_licence_objects_and_arrays() {
        let object = br#"{"name":"color-name","version":"1.1.3","license":{"type":"MIT","url":"http://opensource.org/licenses/MIT"}}"#;
        assert_eq!(parse(object), declared("color-name", "1.1.3", Some("MIT")));
        let array = br#"{"name":"pause","version":"0.0.1","licenses":[
            {"type":"MIT","url":"https://x/MIT"},{"type":"GPL-2.0","url":"https://x/GPL"}]}"#;
        assert_eq!(
            parse(array),
            declared("pause", "0.0.1", Some("MIT OR GPL-2.0"))
        );
        let strings = br#"{"name":"x","version":"1.0.0","licenses":["BSD-2-Clause"]}"#;
        assert_eq!(parse(strings), declared("x", "1.0.0", Some("BSD-2-Clause")));
        let array_in_license =
            br#"{"name":"y","version":"1.0.0","license":[{"type":"MIT"}, 7, {"url":"u"}]}"#;
        assert_eq!(parse(array_in_license), declared("y", "1.0.0", Some("MIT")));
        let odd = br#"{"name":"z","version":"1.0.0","license":42,"licenses":{"type":" "}}"#;
        assert_eq!(parse(odd), declared("z", "1.0.0", None));
    }

    #[test]
    fn license_wins_over_licenses() {
        let both = br#"{"name":"a","version":"1.0.0","license":"ISC","licenses":[{"type":"MIT"}]}"#;
        assert_eq!(parse(both), declared("a", "1.0.0", Some("ISC")));
    }

    #[test]
    fn missing_name_or_version_is_no_package() {
        for manifest in [
            r#"{}"#,
            r#"{"name":"workspace-root","private":true}"#,
            r#"{"version":"1.0.0"}"#,
            r#"{"name":null,"version":"1.0.0"}"#,
            r#"{"name":"  ","version":"1.0.0"}"#,
            r#"{"name":"x","version":""}"#,
        ] {
            assert_eq!(parse(manifest.as_bytes()), Ok(None), "{manifest}");
        }
    }

    #[test]
    fn wrong_types_and_invalid_json_are_errors() {
        assert_eq!(
            parse(br#"{"name":"x","version":1}"#),
            Err(Mismatch::described(
                "`version` to be a string",
                "a number".to_owned()
            ))
        );
        assert_eq!(
            parse(br#"{"name":["x"],"version":"1"}"#),
            Err(Mismatch::described(
                "`name` to be a string",
                "an array".to_owned()
            ))
        );
        assert_eq!(
            parse(b"\"x\""),
            Err(Mismatch::described("a JSON object", "a string".to_owned()))
        );
        let Err(truncated) = parse(br#"{"name":"x","#) else {
            panic!("truncated JSON was accepted");
        };
        assert_eq!(truncated.expected, "a JSON object");
        assert!(
            truncated
                .found
                .starts_with("invalid JSON (EOF while parsing"),
            "{}",
            truncated.found
        );
        assert!(parse(b"").is_err());
        assert!(parse(b"{\"name\":\"caf\xe9\",\"version\":\"1\"}").is_err());
    }

    #[test]
    fn control_characters_in_a_name_are_an_error() {
        let error = parse(br#"{"name":"a\nb","version":"1.0.0"}"#);
        assert_eq!(
            error,
            Err(Mismatch::new(
                "a `name` of printable UTF-8 characters on one line",
                "a\nb"
            ))
        );
    }

    #[test]
    fn crlf_and_a_byte_order_mark_are_fine() {
        let manifest = b"\xEF\xBB\xBF{\r\n  \"name\": \"ms\",\r\n  \"version\": \"2.0.0\"\r\n}\r\n";
        assert_eq!(parse(manifest), declared("ms", "2.0.0", None));
    }

    #[test]
    fn manifest_paths() {
        assert!(is_manifest("package.json", "ms", "node_modules", "debug"));
        assert!(is_manifest(
            "package.json",
            "code-frame",
            "@babel",
            "node_modules"
        ));
        assert!(!is_manifest(
            "package.json",
            "@babel",
            "node_modules",
            "app"
        ));
        assert!(!is_manifest(
            "package.json",
            "lib",
            "express",
            "node_modules"
        ));
        assert!(!is_manifest("package.json", "x", "@", "node_modules"));
        assert!(!is_manifest(
            "package.json",
            "x",
            "@.hidden",
            "node_modules"
        ));
        assert!(!is_manifest("package.json", ".bin", "node_modules", "app"));
        assert!(!is_manifest("package.json", "app", "srv", ""));
        assert!(!is_manifest("index.js", "ms", "node_modules", "app"));
    }
}
