//! The provenance record of a built image: an in-toto statement (v1) whose predicate is SLSA
//! provenance v1, made from the `build.succeeded` event that announced the image. The scan worker
//! stores it beside the image's report and SBOM when it scans a freshly built image
//! (`slipway provenance IMAGE` prints it).
//!
//! How Slipway's facts map to SLSA's field names:
//!
//! | SLSA field | from |
//! |---|---|
//! | `subject[0]` | the pushed image (repository) and its manifest digest |
//! | `buildDefinition.buildType` | [`BUILD_TYPE`] |
//! | `buildDefinition.externalParameters` | the index entry: git URL (credentials removed), branch, git path, Dockerfile, build context, tag, build arguments, network |
//! | `buildDefinition.resolvedDependencies` | the git commit (`gitCommit`), the Dockerfile (`sha256`), each parent image with the daemon's id of it (`sha256`, annotated `image-id`: a config digest, not a manifest digest) |
//! | `runDetails.builder` | `urn:slipway:builder:<program>` and its version |
//! | `runDetails.metadata` | the job id (`invocationId`), start and end of the build job |
//!
//! A `build.succeeded` from a builder older than the record (no `record` field) gives a
//! statement without the Dockerfile digest, builder version and start time.

use serde_json::{Map, Value, json};
use slipway_common::index::validate::redact_credentials;
use slipway_common::message::BuildSucceeded;
use slipway_common::{Digest, JobId, Timestamp};

/// Content type of a stored provenance record.
pub const MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate type: SLSA provenance v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What kind of build Slipway's records describe: a Dockerfile built by the Docker Engine from a
/// git checkout, tested, and pushed.
pub const BUILD_TYPE: &str = "urn:slipway:build-type:docker-build:v1";

/// A digest as an in-toto digest set: `{"sha256": "<hex>"}`.
fn digest_set(digest: &Digest) -> Value {
    let mut set = Map::new();
    set.insert(
        digest.algorithm().to_owned(),
        Value::String(digest.encoded().to_owned()),
    );
    Value::Object(set)
}

/// The provenance statement of the image `built` announces, built by job `job_id` and announced
/// at `finished_at`.
pub fn statement(built: &BuildSucceeded, job_id: JobId, finished_at: Timestamp) -> Value {
    let entry = &built.entry;
    let source_url = redact_credentials(&entry.git_url);
    let mut dependencies = vec![json!({
        "uri": format!("git+{source_url}@refs/heads/{}", entry.git_branch),
        "digest": { "gitCommit": built.commit.as_str() },
    })];
    if let Some(digest) = built
        .record
        .as_ref()
        .and_then(|record| Digest::parse(&record.dockerfile_digest).ok())
    {
        dependencies.push(json!({
            "name": "Dockerfile",
            "uri": format!("git+{source_url}@{}#{}", built.commit.as_str(), dockerfile_path(built)),
            "digest": digest_set(&digest),
        }));
    }
    for (parent, id) in &built.parent_digests {
        dependencies.push(json!({
            "name": parent.to_string(),
            "uri": format!("docker-image://{parent}"),
            "digest": digest_set(id),
            "annotations": { "digest": "image-id" },
        }));
    }
    let (builder_id, builder_version) = match built.record.as_ref() {
        Some(record) => match record.builder.split_once('/') {
            Some((program, version)) => (program.to_owned(), Some(version.to_owned())),
            None => (record.builder.clone(), None),
        },
        None => ("slipway-build".to_owned(), None),
    };
    let mut builder = json!({ "id": format!("urn:slipway:builder:{builder_id}") });
    if let Some(version) = builder_version {
        builder["version"] = json!({ builder_id: version });
    }
    let mut metadata = json!({
        "invocationId": job_id.to_string(),
        "finishedOn": finished_at.to_rfc3339(),
    });
    if let Some(record) = &built.record {
        metadata["startedOn"] = Value::String(record.started_at.to_rfc3339());
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": built.image.repository(),
            "digest": digest_set(&built.digest),
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "source": {
                        "url": source_url,
                        "branch": entry.git_branch,
                        "path": entry.git_path,
                        "dockerfile": entry.target_file,
                        "context": entry.build_context,
                    },
                    "tag": built.image.to_string(),
                    "buildArgs": entry.build_args,
                    "network": match entry.network {
                        slipway_common::index::NetworkMode::None => "none",
                        slipway_common::index::NetworkMode::Host => "host",
                    },
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": builder,
                "metadata": metadata,
            },
        },
    })
}

/// The Dockerfile's path in the repository: the entry's git path joined with its target file.
fn dockerfile_path(built: &BuildSucceeded) -> String {
    let base = built.entry.git_path.trim_matches('/');
    let file = built.entry.target_file.trim_start_matches("./");
    if base.is_empty() || base == "." {
        file.to_owned()
    } else {
        format!("{base}/{file}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use slipway_common::ImageRef;
    use slipway_common::index::test_support::sample_entry;
    use slipway_common::message::BuildRecord;
    use slipway_common::message::test_support::{sample_built, sample_digest};

    use super::*;

    fn built() -> BuildSucceeded {
        let mut entry = sample_entry();
        entry.git_url = "https://user:token@git.example/team/app.git".into();
        let mut built = sample_built(entry);
        built.parent_digests = BTreeMap::from([(
            ImageRef::parse("centos/centos:7").unwrap(),
            sample_digest("ef"),
        )]);
        built.record = Some(BuildRecord {
            dockerfile_digest: sample_digest("df").to_string(),
            builder: "slipway-build/0.1.0".into(),
            started_at: Timestamp::from_unix_millis(1_700_000_000_000),
        });
        built
    }

    #[test]
    fn the_statement_uses_slsa_v1_names_for_every_fact() {
        let built = built();
        let job = JobId::new();
        let statement = statement(&built, job, Timestamp::from_unix_millis(1_700_000_060_000));
        assert_eq!(statement["_type"], STATEMENT_TYPE);
        assert_eq!(statement["predicateType"], PREDICATE_TYPE);
        assert_eq!(
            statement["subject"][0]["digest"]["sha256"],
            "cd".repeat(32),
            "the manifest digest names the subject"
        );
        let definition = &statement["predicate"]["buildDefinition"];
        assert_eq!(definition["buildType"], BUILD_TYPE);
        assert_eq!(
            definition["externalParameters"]["source"]["url"],
            redact_credentials("https://user:token@git.example/team/app.git")
        );
        assert!(
            !statement.to_string().contains("token"),
            "no credential of the git URL is kept"
        );
        let deps = definition["resolvedDependencies"].as_array().unwrap();
        assert_eq!(deps[0]["digest"]["gitCommit"], built.commit.as_str());
        assert_eq!(deps[1]["name"], "Dockerfile");
        assert_eq!(deps[1]["digest"]["sha256"], "df".repeat(32));
        assert_eq!(deps[2]["name"], "centos/centos:7");
        assert_eq!(deps[2]["annotations"]["digest"], "image-id");
        let run = &statement["predicate"]["runDetails"];
        assert_eq!(run["builder"]["id"], "urn:slipway:builder:slipway-build");
        assert_eq!(run["builder"]["version"]["slipway-build"], "0.1.0");
        assert_eq!(run["metadata"]["invocationId"], job.to_string());
        assert_eq!(run["metadata"]["startedOn"], "2023-11-14T22:13:20Z");
        assert_eq!(run["metadata"]["finishedOn"], "2023-11-14T22:14:20Z");
    }

    #[test]
    fn an_older_builders_event_gives_what_it_has() {
        let mut built = built();
        built.record = None;
        let statement = statement(&built, JobId::new(), Timestamp::from_unix_millis(0));
        let deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap();
        assert_eq!(deps.len(), 2, "commit and parent, no Dockerfile digest");
        let run = &statement["predicate"]["runDetails"];
        assert!(run["metadata"].get("startedOn").is_none());
        assert!(run["builder"].get("version").is_none());
    }
}
