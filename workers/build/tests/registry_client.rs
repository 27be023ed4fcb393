//! The registry client against the local Distribution registry on 127.0.0.1:5000 (an image pushed
//! there by the docker CLI first), and against a fake registry on a local port that demands a
//! Bearer token, so the token flow is exercised as real registries run it.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use slipway_build::registry::{
    MAX_TAGS_LISTED, RegistryClient, RegistryCredentials, RegistryError, RegistrySettings,
};
use slipway_common::{Digest, ImageRef};
use slipway_tests::docker;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

const LOCAL_REGISTRY: &str = "127.0.0.1:5000";
const LABEL: &str = "io.slipway.content-key";

fn local_client() -> RegistryClient {
    client_for(&format!("http://{LOCAL_REGISTRY}"), None)
}

fn client_for(url: &str, credentials: Option<RegistryCredentials>) -> RegistryClient {
    let settings = RegistrySettings {
        url: url.to_owned(),
        timeout_ms: 10_000,
        ..RegistrySettings::default()
    };
    RegistryClient::new(&settings, credentials).expect("valid settings")
}

/// An image this test process pushed to the local registry.
struct Pushed {
    /// `slipway-test-<pid>/reg`.
    repository: String,
    /// The digest `docker push` printed for the tag `one`.
    digest: Digest,
    /// The value of [`LABEL`] in it.
    label: String,
}

/// Build `FROM slipway/debian:bookworm` + a unique `LABEL` (no network), push it as `:one`, once
/// per test process.
fn pushed() -> &'static Pushed {
    static PUSHED: OnceLock<Pushed> = OnceLock::new();
    PUSHED.get_or_init(|| {
        slipway_tests::ensure_docker();
        let pid = std::process::id();
        let repository = format!("slipway-test-{pid}/reg");
        let image = format!("{LOCAL_REGISTRY}/{repository}:one");
        let label = format!("abc-{pid}");
        let dockerfile = format!(
            "FROM {}\nLABEL {LABEL}={label}\n",
            slipway_tests::BASE_IMAGE
        );
        docker(
            &["build", "--network", "none", "--quiet", "-t", &image, "-"],
            Some(&dockerfile),
        );
        let push = docker(&["push", &image], None);
        // The local tag is not needed once pushed; the registry keeps the image.
        docker(&["rmi", &image], None);
        let digest = push
            .lines()
            .find_map(|line| {
                line.strip_prefix("one: digest: ")
                    .and_then(|rest| rest.split_whitespace().next())
            })
            .unwrap_or_else(|| {
                panic!("expected `one: digest: sha256:…` in docker push's output: {push}")
            });
        let digest = as_digest(digest);
        Pushed {
            repository,
            digest,
            label,
        }
    })
}

/// The tests that use the shared pushed image run one at a time: Distribution 2.8 rewrites a
/// manifest's revision link in place when the manifest is PUT again (as `tag` does), and a GET by
/// digest at that moment reads a torn link and answers 500 "invalid checksum digest format" (seen
/// once in a CI run). Hold the guard for the whole test.
async fn shared_repository() -> tokio::sync::MutexGuard<'static, ()> {
    static SHARED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SHARED.lock().await
}

/// `repository:reference`, or `repository@reference` for a digest.
fn at(repository: &str, reference: &str) -> ImageRef {
    let separator = if reference.contains(':') { '@' } else { ':' };
    ImageRef::parse(&format!("{repository}{separator}{reference}")).expect("a valid reference")
}

/// `text` as a digest.
fn as_digest(text: &str) -> Digest {
    Digest::parse(text).expect("a valid digest")
}

/// The `Docker-Content-Digest` curl sees for a manifest.
fn curl_digest(repository: &str, reference: &str) -> Digest {
    let output = Command::new("curl")
        .args([
            "-sfI",
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
            &format!("http://{LOCAL_REGISTRY}/v2/{repository}/manifests/{reference}"),
        ])
        .output()
        .expect("run curl");
    assert!(output.status.success(), "curl failed: {output:?}");
    let head = String::from_utf8_lossy(&output.stdout).into_owned();
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("docker-content-digest")
                .then(|| value.trim().to_owned())
        })
        .map(|digest| as_digest(&digest))
        .unwrap_or_else(|| panic!("no Docker-Content-Digest in {head}"))
}

#[tokio::test]
async fn manifest_digest_matches_what_docker_push_and_curl_report() {
    let _one_at_a_time = shared_repository().await;
    let pushed = pushed();
    let client = local_client();
    let digest = client
        .manifest_digest(&at(&pushed.repository, "one"))
        .await
        .expect("HEAD the manifest");
    assert_eq!(
        digest.as_ref(),
        Some(&pushed.digest),
        "docker push printed it"
    );
    assert_eq!(digest, Some(curl_digest(&pushed.repository, "one")));
    // By digest, the same digest comes back.
    let by_digest = client
        .manifest_digest(&at(&pushed.repository, pushed.digest.as_str()))
        .await
        .unwrap();
    assert_eq!(by_digest.as_ref(), Some(&pushed.digest));
}

#[tokio::test]
async fn image_labels_returns_the_dockerfile_label() {
    let _one_at_a_time = shared_repository().await;
    let pushed = pushed();
    let image = local_client()
        .image_labels(&at(&pushed.repository, "one"))
        .await
        .expect("read the labels")
        .expect("the image exists");
    assert_eq!(image.digest, pushed.digest);
    assert_eq!(
        image.labels.get(LABEL),
        Some(&pushed.label),
        "{:?}",
        image.labels
    );
}

#[tokio::test]
async fn missing_repositories_tags_and_digests_are_none() {
    let _one_at_a_time = shared_repository().await;
    let pushed = pushed();
    let client = local_client();
    let missing_repo = format!("slipway-test-{}/never-pushed", std::process::id());
    assert_eq!(
        client
            .manifest_digest(&at(&missing_repo, "one"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client
            .manifest_digest(&at(&pushed.repository, "no-such-tag"))
            .await
            .unwrap(),
        None
    );
    let absent_digest = format!("sha256:{}", "0".repeat(64));
    assert_eq!(
        client
            .manifest_digest(&at(&pushed.repository, &absent_digest))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client
            .image_labels(&at(&missing_repo, "one"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client
            .image_labels(&at(&pushed.repository, "no-such-tag"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn tag_points_a_new_tag_at_the_digest_without_uploading_anything() {
    let _one_at_a_time = shared_repository().await;
    let pushed = pushed();
    let proxy = RecordingProxy::start(LOCAL_REGISTRY).await;
    let client = client_for(&format!("http://{}", proxy.address), None);
    client
        .tag(&at(&pushed.repository, "two"), &pushed.digest)
        .await
        .expect("tag the digest");
    assert_eq!(
        local_client()
            .manifest_digest(&at(&pushed.repository, "two"))
            .await
            .unwrap(),
        Some(pushed.digest.clone())
    );
    assert_eq!(curl_digest(&pushed.repository, "two"), pushed.digest);
    let requests = proxy.requests();
    assert_eq!(
        requests,
        vec![
            format!("GET /v2/{}/manifests/{}", pushed.repository, pushed.digest),
            format!("PUT /v2/{}/manifests/two", pushed.repository),
        ],
        "only the manifest moves: no blob is uploaded or mounted"
    );

    // Tagging a digest the repository does not have is a permanent error naming it.
    let absent = format!("sha256:{}", "1".repeat(64));
    let error = local_client()
        .tag(&at(&pushed.repository, "three"), &as_digest(&absent))
        .await
        .unwrap_err();
    assert!(!error.is_transient(), "{error}");
    assert!(
        error.to_string().contains(&absent) && error.to_string().contains("404"),
        "{error}"
    );
}

#[tokio::test]
async fn tags_are_listed_up_to_the_limit_and_an_unknown_repository_has_none() {
    let _one_at_a_time = shared_repository().await;
    let pushed = pushed();
    let client = local_client();
    let before = client
        .tags(&at(&pushed.repository, "one"))
        .await
        .expect("list the tags");
    assert!(
        before.complete && before.tags.contains(&"one".to_owned()),
        "{before:?}"
    );

    // Enough tags to pass the limit: the list stops there and says it is not complete.
    let extra = MAX_TAGS_LISTED + 1 - before.tags.len();
    for n in 0..extra {
        client
            .tag(
                &at(&pushed.repository, &format!("many-{n:04}")),
                &pushed.digest,
            )
            .await
            .expect("tag the digest");
    }
    let proxy = RecordingProxy::start(LOCAL_REGISTRY).await;
    let listed = client_for(&format!("http://{}", proxy.address), None)
        .tags(&at(&pushed.repository, "one"))
        .await
        .expect("list the tags");
    assert_eq!(listed.tags.len(), MAX_TAGS_LISTED);
    assert!(
        !listed.complete,
        "{} tags listed as complete",
        MAX_TAGS_LISTED + 1
    );
    // Distribution 2.8 ignores `n` and answers with every tag at once; the pages of a registry
    // that splits its answer are followed below, against the fake registry.
    assert_eq!(
        proxy.requests(),
        [format!("GET /v2/{}/tags/list?n=100", pushed.repository)]
    );

    let unknown = client
        .tags(&at(&format!("{}-never-pushed", pushed.repository), "one"))
        .await
        .expect("an unknown repository lists");
    assert!(unknown.tags.is_empty() && unknown.complete, "{unknown:?}");
}

#[tokio::test]
async fn tag_pages_are_followed_through_their_link_headers() {
    let registry = FakeRegistry::start().await;
    let client = client_for(
        &format!("http://{}", registry.address),
        Some(RegistryCredentials::new("user", "secret")),
    );
    let listed = client.tags(&at("app", "latest")).await.expect("list");
    assert_eq!(listed.tags, ["a", "b", "c"]);
    assert!(listed.complete);
    let pages: Vec<String> = registry
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /v2/app/tags/list") && r.contains("bearer"))
        .collect();
    assert_eq!(
        pages,
        [
            "GET /v2/app/tags/list?n=100 bearer:token-for-repository:app:pull",
            "GET /v2/app/tags/list?n=100&last=b bearer:token-for-repository:app:pull",
        ]
    );
}

/// A Distribution registry on its own port and storage, with deletes disabled (its default),
/// stopped when dropped.
struct RegistryWithoutDeletes {
    child: std::process::Child,
    url: String,
    _root: slipway_tests::TempDir,
}

impl RegistryWithoutDeletes {
    async fn start() -> Self {
        let root = slipway_tests::TempDir::new("registry-no-deletes");
        let port = slipway_tests::free_port();
        let config = root.file(
            "config.yml",
            &format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                root.path().join("data").display()
            ),
        );
        let child = Command::new("docker-registry")
            .args(["serve", &config.display().to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start docker-registry (deploy/dev-env.sh installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let probe = format!("{url}/v2/");
        slipway_tests::eventually(
            "the second registry answers",
            Duration::from_secs(30),
            || async { http_status(&probe).await == Some(200) },
        )
        .await;
        RegistryWithoutDeletes {
            child,
            url,
            _root: root,
        }
    }
}

impl Drop for RegistryWithoutDeletes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of a GET, `None` when nothing answers.
async fn http_status(url: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(url.trim_start_matches("http://").split('/').next()?)
        .await
        .ok()?;
    let path = format!("/{}", url.trim_start_matches("http://").split_once('/')?.1);
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
    let mut head = String::new();
    BufReader::new(stream).read_line(&mut head).await.ok()?;
    head.split(' ').nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_registry_that_refuses_deletes_is_a_permanent_error_saying_how_to_allow_them() {
    let registry = RegistryWithoutDeletes::start().await;
    let client = client_for(&registry.url, None);
    let host = registry.url.trim_start_matches("http://");
    let digest = as_digest(&format!("sha256:{}", "7".repeat(64)));
    let error = client
        .delete_manifest(&at(&format!("{host}/team/app"), "1"), &digest)
        .await
        .expect_err("deletes are disabled");
    assert!(!error.is_transient(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("405") && text.contains("storage.delete.enabled"),
        "{text}"
    );
}

#[tokio::test]
async fn put_labelled_adds_labels_in_a_new_configuration_that_docker_pulls_with_the_same_layers() {
    let _one_at_a_time = shared_repository().await;
    let pushed = pushed();
    let proxy = RecordingProxy::start(LOCAL_REGISTRY).await;
    let client = client_for(&format!("http://{}", proxy.address), None);
    let added = BTreeMap::from([
        ("io.slipway.test".to_owned(), "added".to_owned()),
        (LABEL.to_owned(), "replaced".to_owned()),
    ]);
    let digest = client
        .put_labelled(&at(&pushed.repository, "labelled"), &pushed.digest, &added)
        .await
        .expect("label the image");
    assert_ne!(
        digest, pushed.digest,
        "a new configuration is a new manifest"
    );
    assert_eq!(curl_digest(&pushed.repository, "labelled"), digest);
    let image = local_client()
        .image_labels(&at(&pushed.repository, "labelled"))
        .await
        .unwrap()
        .expect("the labelled tag exists");
    assert_eq!(image.digest, digest);
    assert_eq!(
        image.labels.get("io.slipway.test").map(String::as_str),
        Some("added")
    );
    assert_eq!(
        image.labels.get(LABEL).map(String::as_str),
        Some("replaced")
    );
    let repository = &pushed.repository;
    let requests = proxy.requests();
    assert_eq!(
        requests[..5],
        [
            format!("GET /v2/{repository}/manifests/{}", pushed.digest),
            requests[1].clone(),
            requests[2].clone(),
            format!("POST /v2/{repository}/blobs/uploads/"),
            requests[4].clone(),
        ],
        "{requests:#?}"
    );
    assert!(requests[1].starts_with(&format!("GET /v2/{repository}/blobs/sha256:")));
    assert!(requests[2].starts_with(&format!("HEAD /v2/{repository}/blobs/sha256:")));
    assert!(
        requests[4].starts_with(&format!("PUT /v2/{repository}/blobs/uploads/"))
            && requests[4].contains("digest=sha256"),
        "{requests:#?}"
    );
    assert_eq!(
        requests[5..],
        [format!("PUT /v2/{repository}/manifests/labelled")],
        "no layer is uploaded: {requests:#?}"
    );

    // Labelling again with the same labels gives the same digest, and uploads nothing new.
    let again = client
        .put_labelled(
            &at(&pushed.repository, "labelled-again"),
            &pushed.digest,
            &added,
        )
        .await
        .unwrap();
    assert_eq!(again, digest);
    assert!(
        !proxy.requests()[6..].iter().any(|r| r.starts_with("POST")),
        "{:#?}",
        proxy.requests()
    );

    // Docker pulls it: same layers as the original, the labels in its configuration.
    let original = format!("{LOCAL_REGISTRY}/{repository}@{}", pushed.digest);
    let labelled = format!("{LOCAL_REGISTRY}/{repository}@{digest}");
    docker(&["pull", "-q", &original], None);
    docker(&["pull", "-q", &labelled], None);
    let inspect =
        |image: &str, format: &str| docker(&["image", "inspect", "-f", format, image], None);
    assert_eq!(
        inspect(&original, "{{json .RootFS.Layers}}"),
        inspect(&labelled, "{{json .RootFS.Layers}}")
    );
    assert_eq!(
        inspect(&labelled, "{{index .Config.Labels \"io.slipway.test\"}}").trim(),
        "added"
    );
    docker(&["rmi", &original, &labelled], None);

    // Labelling a digest the repository does not have is a permanent error naming it.
    let absent = format!("sha256:{}", "2".repeat(64));
    let error = local_client()
        .put_labelled(
            &at(&pushed.repository, "labelled-absent"),
            &as_digest(&absent),
            &added,
        )
        .await
        .unwrap_err();
    assert!(!error.is_transient(), "{error}");
    assert!(error.to_string().contains(&absent), "{error}");
}

#[tokio::test]
async fn a_closed_port_is_a_transient_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let error = client_for(&format!("http://{address}"), None)
        .manifest_digest(&at("app/job", "latest"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Transport { .. }),
        "{error:?}"
    );
    assert!(error.is_transient(), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&address.to_string()) && message.contains("HEAD"),
        "{message}"
    );
}

#[tokio::test]
async fn a_registry_that_never_answers_times_out_transiently() {
    // Accepts connections (the kernel's backlog) but never reads or answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let settings = RegistrySettings {
        url: format!("http://{address}"),
        timeout_ms: 300,
        ..RegistrySettings::default()
    };
    let client = RegistryClient::new(&settings, None).unwrap();
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        client.manifest_digest(&at("app/job", "latest")),
    )
    .await
    .expect("the client's own timeout fires first")
    .unwrap_err();
    assert!(error.is_transient(), "{error}");
    drop(listener);
}

#[tokio::test]
async fn the_bearer_token_flow_fetches_a_token_with_basic_auth_and_reuses_it() {
    let registry = FakeRegistry::start().await;
    let client = client_for(
        &format!("http://{}", registry.address),
        Some(RegistryCredentials::new("user", "secret")),
    );
    let digest = client
        .manifest_digest(&at("app", "latest"))
        .await
        .expect("authenticated HEAD");
    assert_eq!(digest, Some(FakeRegistry::digest()));
    assert_eq!(
        registry.requests(),
        vec![
            "HEAD /v2/app/manifests/latest anonymous".to_owned(),
            "GET /token?service=fake-registry&scope=repository%3Aapp%3Apull basic:user:secret"
                .to_owned(),
            "HEAD /v2/app/manifests/latest bearer:token-for-repository:app:pull".to_owned(),
        ]
    );

    // The token is cached for its scope: the next read goes straight through.
    client.manifest_digest(&at("app", "latest")).await.unwrap();
    assert_eq!(registry.requests().len(), 4);
    assert_eq!(
        registry.requests()[3],
        "HEAD /v2/app/manifests/latest bearer:token-for-repository:app:pull"
    );

    // Pushing needs the push scope: a second token, for the scope the challenge names.
    client
        .tag(&at("app", "promoted"), &FakeRegistry::digest())
        .await
        .expect("tag through the fake registry");
    let requests = registry.requests();
    assert_eq!(
        requests[4..],
        [
            format!("GET /v2/app/manifests/{} bearer:token-for-repository:app:pull", FakeRegistry::digest()),
            "PUT /v2/app/manifests/promoted anonymous".to_owned(),
            "GET /token?service=fake-registry&scope=repository%3Aapp%3Apull%2Cpush basic:user:secret"
                .to_owned(),
            "PUT /v2/app/manifests/promoted bearer:token-for-repository:app:pull,push".to_owned(),
        ]
    );
}

#[tokio::test]
async fn refused_credentials_are_a_permanent_error_that_does_not_leak_them() {
    let registry = FakeRegistry::start().await;
    let client = client_for(
        &format!("http://{}", registry.address),
        Some(RegistryCredentials::new("user", "wrong-password")),
    );
    let error = client
        .manifest_digest(&at("app", "latest"))
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::Denied { .. }), "{error:?}");
    assert!(!error.is_transient(), "{error}");
    let message = format!("{error} {error:?}");
    assert!(!message.contains("wrong-password"), "{message}");
    assert!(
        message.contains("/token") && message.contains("\"user\""),
        "{message}"
    );

    // Without credentials the token service refuses too; the message says none were configured.
    let anonymous = client_for(&format!("http://{}", registry.address), None);
    let error = anonymous
        .manifest_digest(&at("app", "latest"))
        .await
        .unwrap_err();
    assert!(!error.is_transient(), "{error}");
    assert!(error.to_string().contains("no credentials"), "{error}");
}

/// A registry that wants a Bearer token from its own `/token`, issued for `user:secret`.
/// Each connection carries one request (`Connection: close`).
struct FakeRegistry {
    address: std::net::SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl FakeRegistry {
    const MANIFEST: &'static str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#;

    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = Arc::clone(&served);
                tokio::spawn(async move {
                    let _ = Self::serve(stream, address, log).await;
                });
            }
        });
        Self { address, log }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The digest of [`Self::MANIFEST`], which the fake serves for every tag and digest.
    fn digest() -> Digest {
        Digest::sha256_of(Self::MANIFEST.as_bytes())
    }

    async fn serve(
        stream: TcpStream,
        address: std::net::SocketAddr,
        log: Arc<Mutex<Vec<String>>>,
    ) -> std::io::Result<()> {
        let mut stream = BufReader::new(stream);
        let mut request_line = String::new();
        stream.read_line(&mut request_line).await?;
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let mut authorization = String::new();
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await? == 0 || line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim().to_owned();
                match name.to_ascii_lowercase().as_str() {
                    "authorization" => authorization = value,
                    "content-length" => content_length = value.parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; content_length];
        stream.read_exact(&mut body).await?;

        let who = if let Some(token) = authorization.strip_prefix("Bearer ") {
            format!("bearer:{token}")
        } else if authorization == "Basic dXNlcjpzZWNyZXQ=" {
            "basic:user:secret".to_owned()
        } else if authorization.starts_with("Basic ") {
            "basic:other".to_owned()
        } else {
            "anonymous".to_owned()
        };
        log.lock().unwrap().push(format!("{method} {target} {who}"));

        let push = method == "PUT";
        let needed = if push {
            "repository:app:pull,push"
        } else {
            "repository:app:pull"
        };
        let (status, headers, reply): (&str, Vec<String>, Vec<u8>) = if target.starts_with("/token")
        {
            let scope = if target.contains("pull%2Cpush") {
                "repository:app:pull,push"
            } else {
                "repository:app:pull"
            };
            if who == "basic:user:secret" {
                let json = format!(r#"{{"token":"token-for-{scope}","expires_in":300}}"#);
                (
                    "200 OK",
                    vec!["Content-Type: application/json".into()],
                    json.into_bytes(),
                )
            } else {
                (
                    "401 Unauthorized",
                    vec![],
                    br#"{"details":"bad credentials"}"#.to_vec(),
                )
            }
        } else if who != format!("bearer:token-for-{needed}") {
            let challenge = format!(
                r#"WWW-Authenticate: Bearer realm="http://{address}/token",service="fake-registry",scope="{needed}""#
            );
            (
                "401 Unauthorized",
                vec![challenge],
                br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_vec(),
            )
        } else if push {
            let digest = format!("Docker-Content-Digest: {}", Self::digest());
            ("201 Created", vec![digest], Vec::new())
        } else if target.starts_with("/v2/app/tags/list") {
            // Two pages, the first pointing at the second (relative, as Distribution 3 writes it).
            if target.contains("last=b") {
                (
                    "200 OK",
                    vec!["Content-Type: application/json".into()],
                    br#"{"name":"app","tags":["c"]}"#.to_vec(),
                )
            } else {
                (
                    "200 OK",
                    vec![
                        "Content-Type: application/json".into(),
                        r#"Link: </v2/app/tags/list?n=100&last=b>; rel="next""#.into(),
                    ],
                    br#"{"name":"app","tags":["a","b"]}"#.to_vec(),
                )
            }
        } else {
            let headers = vec![
                format!("Docker-Content-Digest: {}", Self::digest()),
                "Content-Type: application/vnd.docker.distribution.manifest.v2+json".to_owned(),
            ];
            ("200 OK", headers, Self::MANIFEST.as_bytes().to_vec())
        };
        let mut response = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for header in headers {
            response.push_str(&header);
            response.push_str("\r\n");
        }
        response.push_str(&format!("Content-Length: {}\r\n\r\n", reply.len()));
        let stream = stream.get_mut();
        stream.write_all(response.as_bytes()).await?;
        if method != "HEAD" {
            stream.write_all(&reply).await?;
        }
        stream.shutdown().await
    }
}

/// A TCP proxy in front of a real registry that records the request lines clients send.
struct RecordingProxy {
    address: std::net::SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    async fn start(upstream: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = Arc::clone(&recorded);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let upstream_to_client = tokio::spawn(async move {
                        tokio::io::copy(&mut server_read, &mut client_write).await
                    });
                    let mut buffer = vec![0; 64 * 1024];
                    let mut pending = Vec::new();
                    loop {
                        let n = match client_read.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        pending.extend_from_slice(&buffer[..n]);
                        // Request lines name a method and a /v2/ path. One may follow a body
                        // that did not end its line (a blob upload), hence the search.
                        while let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
                            let text = String::from_utf8_lossy(&pending[..end]).into_owned();
                            pending.drain(..end + 2);
                            let start = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"]
                                .iter()
                                .filter_map(|m| text.find(&format!("{m} /v2/")))
                                .min()
                                .unwrap_or(0);
                            let line = &text[start..];
                            let mut words = line.split(' ');
                            if let (Some(method), Some(path), Some(version)) =
                                (words.next(), words.next(), words.next())
                                && version.starts_with("HTTP/")
                                && path.starts_with("/v2/")
                                && ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"]
                                    .contains(&method)
                            {
                                log.lock().unwrap().push(format!("{method} {path}"));
                            }
                        }
                        if server_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown().await;
                    let _ = upstream_to_client.await;
                });
            }
        });
        Self { address, log }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}
