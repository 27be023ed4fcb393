//! The JSON Schema of the message contract (`common/schema/slipway-message.schema.json`): the
//! envelope and the payload of every [`Kind`](crate::Kind), for publishers and readers in other
//! languages (`docs/contract.md`), and the tests that keep it equal to the Rust types.
//!
//! The schema is written by hand and tested, not generated: every sample message validates, it
//! has a payload for exactly [`Kind::ALL`](crate::Kind::ALL), every field it declares is one Slipway
//! writes, a field it requires is one the decoder requires (and only those), and the bad documents
//! it rejects the decoder rejects too.

/// The JSON Schema (draft 2020-12) of one message as its JSON data model: ids as canonical UUID
/// strings (on MessagePack Slipway writes them as 16-byte bins), `created_at` in Unix
/// milliseconds, payload fields in kebab-case.
pub const MESSAGE_SCHEMA: &str = include_str!("../schema/slipway-message.schema.json");

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use boon::{Compiler, Schemas};
    use serde_json::{Value, json};

    use super::MESSAGE_SCHEMA;
    use crate::envelope::WIRE_VERSION;
    use crate::message::test_support::{sample_messages, sample_messages_with_every_field};
    use crate::{Cause, Envelope, Kind};

    /// The schema as JSON and compiled for validation.
    struct Schema {
        json: Value,
        compiled: Schemas,
        index: boon::SchemaIndex,
    }

    impl Schema {
        fn load() -> Schema {
            let json: Value = serde_json::from_str(MESSAGE_SCHEMA).expect("the schema is JSON");
            let mut compiled = Schemas::new();
            let mut compiler = Compiler::new();
            compiler
                .add_resource("slipway-message.schema.json", json.clone())
                .expect("schema resource");
            let index = compiler
                .compile("slipway-message.schema.json", &mut compiled)
                .unwrap_or_else(|e| panic!("the schema compiles: {e:#}"));
            Schema {
                json,
                compiled,
                index,
            }
        }

        /// `Err` with every reason when `document` does not validate.
        fn validate(&self, document: &Value) -> Result<(), String> {
            self.compiled
                .validate(document, self.index)
                .map_err(|error| format!("{error:#}"))
        }

        /// A subschema with a `$ref` to `#/$defs/…` followed (other references are not used).
        fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let name = reference
                        .strip_prefix("#/$defs/")
                        .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
                    self.resolve(&self.json["$defs"][name])
                }
                None => schema,
            }
        }

        /// Adds `path/field` for every property `schema` declares, through references, `anyOf`
        /// branches and array `items` (`path[]`).
        fn declared(&self, schema: &Value, path: &str, out: &mut BTreeSet<String>) {
            let schema = self.resolve(schema);
            for branch in schema["anyOf"].as_array().into_iter().flatten() {
                self.declared(branch, path, out);
            }
            if let Some(items) = schema.get("items") {
                self.declared(items, &format!("{path}[]"), out);
            }
            for (field, property) in schema["properties"].as_object().into_iter().flatten() {
                let path = format!("{path}/{field}");
                self.declared(property, &path, out);
                out.insert(path);
            }
        }

        /// Adds `path/field` for every non-null field of `value` that `schema` declares, the same
        /// way as [`declared`](Self::declared).
        fn written(&self, schema: &Value, value: &Value, path: &str, out: &mut BTreeSet<String>) {
            let schema = self.resolve(schema);
            for branch in schema["anyOf"].as_array().into_iter().flatten() {
                self.written(branch, value, path, out);
            }
            if let (Some(items), Some(elements)) = (schema.get("items"), value.as_array()) {
                for element in elements {
                    self.written(items, element, &format!("{path}[]"), out);
                }
            }
            let properties = schema["properties"].as_object();
            for (field, value) in value.as_object().into_iter().flatten() {
                if let Some(property) = properties.and_then(|p| p.get(field))
                    && !value.is_null()
                {
                    let path = format!("{path}/{field}");
                    self.written(property, value, &path, out);
                    out.insert(path);
                }
            }
        }
    }

    /// Every sample message (the plain ones and those with every optional field set) in an
    /// envelope, each cause form used, as the JSON data model.
    fn sample_documents() -> Vec<Value> {
        let causes = [
            Cause::User,
            Cause::GitChange,
            Cause::IndexChange,
            Cause::ParentRebuilt("127.0.0.1:5000/centos/centos:7".into()),
            Cause::PackageUpdate("openssl".into()),
            Cause::Schedule,
        ];
        sample_messages()
            .into_iter()
            .chain(sample_messages_with_every_field())
            .zip(causes.into_iter().cycle())
            .map(|(message, cause)| {
                serde_json::to_value(Envelope::new_job(cause, message)).expect("envelope as JSON")
            })
            .collect()
    }

    /// The decoder's verdict on a JSON document sent as MessagePack (ids as strings, which the
    /// decoder reads as well as 16-byte bins).
    fn decode(document: &Value) -> Result<Envelope, String> {
        let bytes = rmp_serde::to_vec_named(document).expect("JSON as MessagePack");
        Envelope::decode(&bytes).map_err(|e| e.to_string())
    }

    fn kind_names() -> BTreeSet<&'static str> {
        Kind::ALL.into_iter().map(Kind::as_str).collect()
    }

    #[test]
    fn every_sample_message_validates_and_decodes_from_its_json_form() {
        let schema = Schema::load();
        let documents = sample_documents();
        assert_eq!(documents.len(), 2 * Kind::ALL.len());
        for document in &documents {
            if let Err(reasons) = schema.validate(document) {
                panic!("a message Slipway writes does not validate: {reasons}\n{document:#}");
            }
            let decoded = decode(document).unwrap_or_else(|e| panic!("{e}\n{document:#}"));
            assert_eq!(serde_json::to_value(decoded).expect("JSON"), *document);
        }
    }

    #[test]
    fn the_schema_has_a_payload_for_exactly_every_kind() {
        let schema = Schema::load().json;
        assert_eq!(schema["properties"]["v"]["const"], json!(WIRE_VERSION));
        let kind_enum: BTreeSet<&str> = schema["properties"]["kind"]["enum"]
            .as_array()
            .expect("kind is an enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(kind_enum, kind_names());
        let payload_defs: BTreeSet<&str> = schema["$defs"]
            .as_object()
            .expect("$defs")
            .keys()
            .map(String::as_str)
            .filter(|name| name.contains('.'))
            .collect();
        assert_eq!(payload_defs, kind_names());
        let mut selected = BTreeSet::new();
        for rule in schema["allOf"].as_array().expect("one if/then per kind") {
            let kind = rule["if"]["properties"]["kind"]["const"]
                .as_str()
                .expect("if kind = …");
            let payload = &rule["then"]["properties"]["payload"]["$ref"];
            assert_eq!(payload, &json!(format!("#/$defs/{kind}")), "{kind}");
            assert!(selected.insert(kind), "{kind} twice");
        }
        assert_eq!(selected, kind_names());
    }

    #[test]
    fn every_field_the_schema_declares_is_one_slipway_writes() {
        let schema = Schema::load();
        let documents = sample_documents();
        let envelope_fields: BTreeSet<&String> = schema.json["properties"]
            .as_object()
            .expect("envelope properties")
            .keys()
            .collect();
        for document in &documents {
            let written: BTreeSet<&String> = document.as_object().expect("a map").keys().collect();
            assert_eq!(written, envelope_fields);
        }
        for kind in kind_names() {
            let payload = &schema.json["$defs"][kind];
            let mut declared = BTreeSet::new();
            schema.declared(payload, kind, &mut declared);
            let mut written = BTreeSet::new();
            for document in documents.iter().filter(|d| d["kind"] == kind) {
                schema.written(payload, &document["payload"], kind, &mut written);
            }
            let never_written: Vec<_> = declared.difference(&written).collect();
            assert!(
                never_written.is_empty(),
                "the schema declares fields no sample message writes (a field Rust dropped, or \
                 a sample to extend): {never_written:?}"
            );
        }
    }

    #[test]
    fn a_field_is_required_by_the_schema_exactly_when_the_decoder_requires_it() {
        let schema = Schema::load();
        let objects = [
            "",
            "/payload",
            "/payload/entry",
            "/payload/entry/lint",
            "/payload/findings/0",
        ];
        let mut checked = 0;
        for document in sample_documents() {
            for pointer in objects {
                let Some(object) = document.pointer(pointer).and_then(Value::as_object) else {
                    continue;
                };
                for field in object.keys() {
                    let mut without = document.clone();
                    without
                        .pointer_mut(pointer)
                        .and_then(Value::as_object_mut)
                        .expect("the object")
                        .remove(field);
                    let by_schema = schema.validate(&without);
                    let by_decoder = decode(&without);
                    assert_eq!(
                        by_schema.is_ok(),
                        by_decoder.is_ok(),
                        "{} without {pointer}/{field}: schema says {by_schema:?}, decoder {:?}",
                        document["kind"],
                        by_decoder.map(drop)
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 200, "{checked} fields removed");
    }

    #[test]
    fn documents_the_schema_rejects_the_decoder_rejects_too() {
        let schema = Schema::load();
        let documents = sample_documents();
        let of_kind = |kind: &str| {
            documents
                .iter()
                .find(|d| d["kind"] == kind)
                .expect("a sample of the kind")
                .clone()
        };
        let cases: [(&str, &str, Value); 14] = [
            ("build.requested", "/v", json!("1")),
            ("build.requested", "/v", json!(2)),
            ("build.requested", "/id", json!(42)),
            (
                "build.requested",
                "/job_id",
                json!("0190c3e57b1a7cc08e3f5a2b9c1d4e6f"),
            ),
            ("build.requested", "/kind", json!("build.exploded")),
            ("build.requested", "/cause", json!("cron")),
            (
                "build.requested",
                "/created_at",
                json!("2026-12-04T18:00:00Z"),
            ),
            ("build.requested", "/payload", json!([])),
            ("build.requested", "/payload/entry/git-url", json!(5)),
            ("build.requested", "/payload/commit", json!("master")),
            ("lint.passed", "/payload/findings/0/level", json!("fatal")),
            ("build.succeeded", "/payload/duration-ms", json!(-1)),
            ("build.failed", "/payload/stage", json!("deploy")),
            (
                "scan.completed",
                "/payload/counts/os-updates",
                json!("three"),
            ),
        ];
        for (kind, pointer, value) in cases {
            let mut bad = of_kind(kind);
            *bad.pointer_mut(pointer).expect("the field") = value.clone();
            assert!(
                schema.validate(&bad).is_err(),
                "the schema accepts {kind} with {pointer} = {value}"
            );
            assert!(
                decode(&bad).is_err(),
                "the decoder accepts {kind} with {pointer} = {value}"
            );
        }
    }

    /// The schema's `image` and `digest` definitions give the verdict of the one parser
    /// ([`ImageRef::parse`](crate::ImageRef::parse), [`Digest::parse`](crate::Digest::parse)).
    #[test]
    fn image_and_digest_patterns_agree_with_the_parsers() {
        let schema: Value = serde_json::from_str(MESSAGE_SCHEMA).expect("the schema is JSON");
        let compile = |name: &str| {
            let mut definition = schema["$defs"][name].clone();
            definition["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
            let mut compiled = Schemas::new();
            let mut compiler = Compiler::new();
            compiler
                .add_resource(&format!("{name}.json"), definition)
                .expect("definition resource");
            let index = compiler
                .compile(&format!("{name}.json"), &mut compiled)
                .expect("the definition compiles");
            (compiled, index)
        };
        let hex = |c: &str, n: usize| c.repeat(n);
        let digests = [
            format!("sha256:{}", hex("a", 64)),
            format!("sha256:{}", hex("a", 63)),
            format!("sha256:{}", hex("A", 64)),
            format!("sha512:{}", hex("0", 128)),
            format!("sha512:{}", hex("0", 64)),
            "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8".to_owned(),
            "sha256".to_owned(),
            "SHA256:ab".to_owned(),
            "x:".to_owned(),
            format!("x:{}", hex("a", 300)),
        ];
        let (compiled, index) = compile("digest");
        for digest in &digests {
            assert_eq!(
                compiled.validate(&json!(digest), index).is_ok(),
                crate::Digest::parse(digest).is_ok(),
                "schema and parser disagree on the digest {digest:?}"
            );
        }
        let images = [
            "team/app:1",
            "127.0.0.1:5000/team/app:1",
            &format!("localhost:5000/a/b@sha256:{}", hex("b", 64)),
            &format!("r.example.org/a:t@sha256:{}", hex("b", 64)),
            "a__b/c-----d/e.f_g:T_1.x-y",
            "Registry/app",
            "team/App:1",
            "team/app:",
            "team/app:-x",
            "team//app",
            "team/a___b",
            "host:99999999/a:1",
            "-bad.host/a",
            "te am/app",
            "team/app@sha256:abc",
            "",
        ];
        let (compiled, index) = compile("image");
        for image in images {
            assert_eq!(
                compiled.validate(&json!(image), index).is_ok(),
                crate::ImageRef::parse(image).is_ok(),
                "schema and parser disagree on the image {image:?}"
            );
        }
    }
}
