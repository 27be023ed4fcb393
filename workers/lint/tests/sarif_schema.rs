//! SARIF output validates against the official SARIF 2.1.0 JSON schema (tests/data, from the
//! schemastore copy the OASIS TC publishes), for real corpus findings (from `../shared`, skipped
//! without it unless `SLIPWAY_REQUIRE_SHARED` is set), a parse error and no findings.

use boon::{Compiler, Schemas};
use slipway_lint::format::{FileResult, Format, render};
use slipway_lint::{Settings, lint, parser};

fn validate(sarif: &str) {
    let schema_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sarif-2.1.0.schema.json"
    );
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).expect("schema file"))
            .expect("schema JSON");
    let mut schemas = Schemas::new();
    let mut compiler = Compiler::new();
    compiler
        .add_resource("sarif-2.1.0.schema.json", schema)
        .expect("schema resource");
    let index = compiler
        .compile("sarif-2.1.0.schema.json", &mut schemas)
        .expect("the SARIF schema compiles");
    let instance: serde_json::Value = serde_json::from_str(sarif).expect("SARIF output is JSON");
    if let Err(error) = schemas.validate(&instance, index) {
        panic!("SARIF output does not validate: {error:#}\n{sarif}");
    }
}

#[test]
fn sarif_for_corpus_findings_validates() {
    let Some(corpus) = slipway_common::workspace::shared_for_test(
        env!("CARGO_MANIFEST_DIR"),
        "corpus/dockerfiles",
    ) else {
        return;
    };
    let mut results = Vec::new();
    for name in [
        "CentOS__CentOS-Dockerfiles__bind__centos6__Dockerfile",
        "sclorg__s2i-python-container__src__Dockerfile.template",
    ] {
        let text = parser::decode(&std::fs::read(corpus.join(name)).expect("corpus file"));
        results.push(FileResult {
            file: name.to_string(),
            failures: lint(&text, &Settings::default()),
        });
    }
    assert!(results[0].failures.len() > 10, "findings to render");
    assert_eq!(results[1].failures[0].code, "DL1000");
    validate(&render(Format::Sarif, &results, false));
}

#[test]
fn sarif_without_findings_validates() {
    validate(&render(Format::Sarif, &[], false));
    validate(&render(
        Format::Sarif,
        &[FileResult {
            file: "clean/Dockerfile".into(),
            failures: Vec::new(),
        }],
        false,
    ));
}
