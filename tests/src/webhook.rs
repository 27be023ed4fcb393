//! Forge webhooks as the tests and benches send them to the repo-tracker's endpoint.

use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends a GitHub push of `head` to `main` of `url`, with delivery id `delivery`, signed with
/// `secret` (`X-Hub-Signature-256`), to the endpoint at `addr`, over one connection; returns the
/// reply's HTTP status code.
pub async fn github_push(
    addr: SocketAddr,
    secret: &[u8],
    url: &str,
    head: &str,
    delivery: &str,
) -> std::io::Result<u16> {
    let body = format!(
        r#"{{"ref":"refs/heads/main","after":"{head}","repository":{{"clone_url":"{url}"}},"commits":[]}}"#
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body.as_bytes());
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let request = format!(
        "POST /webhook HTTP/1.1\r\nHost: tracker\r\nConnection: close\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: {delivery}\r\nX-Hub-Signature-256: sha256={signature}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    String::from_utf8_lossy(&reply)
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("the reply has no HTTP status line"))
}
