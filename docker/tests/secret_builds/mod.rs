//! What the BuildKit session tests share: a secret file of the worker's, a BuildKit spec, a build
//! whose step checks the secret it mounts, the build's log, and a search of an image's bytes.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of these helpers"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use slipway_docker::{
    BuildContext, BuildLimits, BuildSecrets, BuildSpec, BuilderKind, DockerEngine, DockerError,
    Network, SshAgents,
};
pub use slipway_tests::unique_name as unique;
use slipway_tests::{BASE_IMAGE, TempDir};
use tokio_util::sync::CancellationToken;

/// A tar archive holding one Dockerfile.
fn context(dockerfile: &str) -> Vec<u8> {
    slipway_tests::tar_archive(&[("Dockerfile", dockerfile.as_bytes())])
}

/// A BuildKit build of `dockerfile`, without network, with `secrets`.
pub fn buildkit_spec(dockerfile: &str, secrets: BuildSecrets) -> BuildSpec {
    BuildSpec {
        context: BuildContext::Tar(context(dockerfile)),
        dockerfile: "Dockerfile".into(),
        tags: Vec::new(),
        labels: BTreeMap::new(),
        build_args: BTreeMap::new(),
        network: Network::None,
        builder: BuilderKind::BuildKit,
        timeout: Duration::from_secs(120),
        no_cache: false,
        limits: BuildLimits {
            memory_bytes: 1 << 30,
            cpu_millicores: 2000,
        },
        cgroup_parent: None,
        secrets,
        ssh_agents: SshAgents::new(),
    }
}

/// Collected build output, shareable with the `log` callback.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn sink(&self) -> impl FnMut(&str) + Send + use<> {
        let lines = Arc::clone(&self.0);
        move |line: &str| lines.lock().unwrap().push(line.to_owned())
    }
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }
}

/// A secret of the worker's: a file with a value unique to the test.
pub struct SecretFile {
    _dir: TempDir,
    /// The id the Dockerfiles mount it by.
    pub id: String,
    /// The file.
    pub path: PathBuf,
    /// Its value.
    pub value: String,
}

impl SecretFile {
    pub fn new(id: &str) -> SecretFile {
        let dir = TempDir::new("build-secret");
        let value = unique("s3cr3t-value");
        let path = dir.file(id, &value);
        SecretFile {
            _dir: dir,
            id: id.to_owned(),
            path,
            value,
        }
    }

    /// The secrets of a spec: this one.
    pub fn secrets(&self) -> BuildSecrets {
        BuildSecrets::new().with_file(&self.id, &self.path)
    }

    /// The value's SHA-256 (hex), which a Dockerfile may show without showing the value.
    pub fn sha256(&self) -> String {
        Sha256::digest(self.value.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A finished secret build.
pub struct Built {
    pub id: String,
    pub log: Log,
    /// The line the step printed (and the file it wrote) after checking the secret.
    pub marker: String,
}

/// Builds, with `secret` configured, a Dockerfile of its own (named after `tag`) whose step
/// requires the secret, checks its value against its hash, then prints and writes a marker.
pub async fn build_with_secret(
    engine: &DockerEngine,
    secret: &SecretFile,
    tag: &str,
) -> Result<Built, (DockerError, String)> {
    let marker = format!("secret-seen-{tag}");
    let id = &secret.id;
    let dockerfile = format!(
        "FROM {BASE_IMAGE}\nRUN --mount=type=secret,id={id},required=true \
         test \"$(sha256sum < /run/secrets/{id} | cut -d' ' -f1)\" = \"{hash}\" \
         && echo {marker} > /marker && cat /marker\n",
        hash = secret.sha256()
    );
    let log = Log::default();
    match engine
        .build(
            &buildkit_spec(&dockerfile, secret.secrets()),
            &mut log.sink(),
            &CancellationToken::new(),
        )
        .await
    {
        Ok(built) => Ok(Built {
            id: built.id,
            log,
            marker,
        }),
        Err(e) => Err((e, log.text())),
    }
}

/// Asserts what every secret build must show: its step saw the secret (it logged the marker),
/// the value is in no log line, and it is in no byte of the image (layers and configuration),
/// while the marker the step wrote is (the search's positive control).
pub fn assert_secret_seen_and_untraced(built: &Built, secret: &SecretFile) {
    let text = built.log.text();
    assert!(
        built.log.lines().iter().any(|l| l == &built.marker),
        "the step saw the secret: {text}"
    );
    assert!(
        !text.contains(&secret.value),
        "the value is not logged: {text}"
    );
    assert!(image_contains(&built.id, &built.marker), "positive control");
    assert!(
        !image_contains(&built.id, &secret.value),
        "the secret's value is in no layer and no config of the image"
    );
}

/// Whether `needle` occurs anywhere in the bytes of `docker save <image>` (every layer, the
/// config with its history).
pub fn image_contains(image: &str, needle: &str) -> bool {
    let dir = TempDir::new("image-save");
    let archive = dir.path().join("image.tar");
    let archive = archive.to_str().expect("a UTF-8 path");
    slipway_tests::docker(&["save", "-o", archive, image], None);
    let grep = Command::new("grep")
        .args(["-a", "-c", "-F", "-e", needle, archive])
        .output()
        .expect("run grep");
    match grep.status.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!(
            "grep over the saved image failed ({other:?}): {}",
            String::from_utf8_lossy(&grep.stderr)
        ),
    }
}

/// Removes the image on drop.
pub struct RemoveImage(pub String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", &self.0]).output();
    }
}

/// Builds a step that talks to `agent` (mounted as the default agent) with
/// [`slipway_tests::ssh_agent::AGENT_CLIENT`], and asserts that it listed the agent's key
/// (`comment`), that its request to remove every key was refused, and that the agent still holds
/// the key.
pub async fn assert_agent_read_only(
    engine: &DockerEngine,
    agent: &slipway_tests::ssh_agent::TestAgent,
    comment: &str,
    marker: &str,
) {
    let dockerfile = format!(
        "FROM {BASE_IMAGE}\nCOPY agent.pl /agent.pl\nRUN --mount=type=ssh,required perl /agent.pl && echo {marker}\n"
    );
    let mut spec = buildkit_spec(&dockerfile, BuildSecrets::new());
    spec.context = BuildContext::Tar(slipway_tests::tar_archive(&[
        ("Dockerfile", dockerfile.as_bytes()),
        (
            "agent.pl",
            slipway_tests::ssh_agent::AGENT_CLIENT.as_bytes(),
        ),
    ]));
    spec.ssh_agents = SshAgents::new().with_socket("default", agent.socket());
    let log = Log::default();
    let built = engine
        .build(&spec, &mut log.sink(), &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("the build with the agent: {e}\n{}", log.text()));
    let _image = RemoveImage(built.id.clone());
    let lines = log.lines();
    assert!(
        lines.contains(&format!("identities type=12 count=1 comment={comment}")),
        "the step listed the agent's key: {lines:?}"
    );
    assert!(
        lines.contains(&"remove-all type=5".to_owned()),
        "removing keys is refused: {lines:?}"
    );
    let listed = agent.ssh_add(&["-l"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(comment),
        "the agent still holds its key: {listed:?}"
    );
}
