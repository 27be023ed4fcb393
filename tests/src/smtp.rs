//! A real SMTP server for tests, on 127.0.0.1: aiosmtpd (from PyPI; `deploy/dev-env.sh` installs
//! it in [`crate::tools::PYTHON_VENV`]) with a small handler that stores each accepted message as
//! a file, can answer `451` once to chosen recipients, and can be stopped and started again on
//! the same port (a mail server down, then back).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::TempDir;

/// The aiosmtpd handler: stores messages, defers listed recipients once.
const HANDLER: &str = r#"
import itertools, os

class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count()

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(*args)

    def _listed(self, name):
        path = os.path.join(self.directory, name)
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [line.strip() for line in f if line.strip()]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self._listed("defer") and address not in self._listed("deferred"):
            with open(os.path.join(self.directory, "deferred"), "a") as f:
                f.write(address + "\n")
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = os.path.join(self.directory, "%d-%d.eml" % (os.getpid(), next(self.counter)))
        with open(name + ".tmp", "wb") as f:
            f.write(("X-Sink-From: %s\r\nX-Sink-To: %s\r\n" % (envelope.mail_from, ",".join(envelope.rcpt_tos))).encode())
            f.write(envelope.original_content)
        os.rename(name + ".tmp", name)
        return "250 2.0.0 accepted"
"#;

/// One message the server accepted.
#[derive(Clone, Debug)]
pub struct Received {
    /// The envelope sender.
    pub mail_from: String,
    /// The envelope recipients.
    pub rcpt_to: Vec<String>,
    /// The message as sent (headers and body).
    pub raw: String,
}

impl Received {
    /// The first value of header `name` (unfolded), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or("");
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(current) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    current.push(' ');
                    current.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((key, rest)) = line.split_once(':')
                && key.eq_ignore_ascii_case(name)
            {
                value = Some(rest.trim().to_owned());
            }
        }
        value
    }
}

impl Received {
    /// The decoded body of the MIME part whose `Content-Type` starts with `content_type`
    /// (`text/plain`, `text/html`), quoted-printable or not.
    pub fn part(&self, content_type: &str) -> Option<String> {
        let start = self.raw.find(&format!("Content-Type: {content_type}"))?;
        let rest = &self.raw[start..];
        let body_start = rest.find("\r\n\r\n")? + 4;
        let headers = &rest[..body_start];
        let body = &rest[body_start..];
        let boundary = self
            .header("Content-Type")
            .and_then(|value| {
                let (_, rest) = value.split_once("boundary=")?;
                Some(rest.trim_matches('"').to_owned())
            })
            .map_or_else(|| "\r\n--".to_owned(), |b| format!("\r\n--{b}"));
        let body = &body[..body.find(&boundary).unwrap_or(body.len())];
        if headers.contains("quoted-printable") {
            Some(decode_quoted_printable(body))
        } else {
            Some(body.to_owned())
        }
    }
}

/// Quoted-printable decoding (RFC 2045): soft line breaks and `=XX` escapes.
fn decode_quoted_printable(text: &str) -> String {
    let bytes = text.replace("=\r\n", "").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len() + 1
            && let Some(byte) = std::str::from_utf8(bytes.get(i + 1..i + 3).unwrap_or(&[]))
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How the server speaks TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkTls {
    /// Plain SMTP only.
    None,
    /// STARTTLS offered (and required before a mail is taken).
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

/// A private CA and a certificate it signed for `localhost`, made with `openssl`, as PEM files.
#[derive(Debug)]
pub struct TestCertificates {
    /// The CA's certificate: what a client must trust.
    pub ca: PathBuf,
    /// The server's certificate (`DNS:localhost`, `IP:127.0.0.1`).
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    _dir: TempDir,
}

impl TestCertificates {
    /// Make them (a few hundred milliseconds).
    pub fn new() -> TestCertificates {
        let dir = TempDir::new("smtp-tls");
        let path = |name: &str| dir.path().join(name);
        let extensions = dir.file(
            "leaf.ext",
            "subjectAltName = DNS:localhost, IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
        );
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("run openssl (Debian's openssl package)");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=slipway test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.pem",
            "-extfile",
            extensions.to_str().expect("a UTF-8 path"),
        ]);
        TestCertificates {
            ca: path("ca.pem"),
            cert: path("server.pem"),
            key: path("server.key"),
            _dir: dir,
        }
    }
}

impl Default for TestCertificates {
    fn default() -> Self {
        Self::new()
    }
}

/// A running (or stopped) SMTP server.
pub struct SmtpSink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: TempDir,
    python: PathBuf,
    child: Option<Child>,
    tls: Option<(SinkTls, PathBuf, PathBuf)>,
}

impl SmtpSink {
    /// Start a plain SMTP server on a free port; returns once it accepts connections.
    pub fn start() -> SmtpSink {
        Self::start_with(SinkTls::None, None)
    }

    /// Start a server speaking `tls` with `certificates` (needed unless [`SinkTls::None`]).
    pub fn start_with(tls: SinkTls, certificates: Option<&TestCertificates>) -> SmtpSink {
        let python = crate::tools::python_with(&["aiosmtpd"]);
        let dir = TempDir::new("smtp-sink");
        dir.file("slipway_sink.py", HANDLER);
        std::fs::create_dir_all(dir.path().join("mail")).expect("mail directory");
        let mut sink = SmtpSink {
            port: crate::free_port(),
            dir,
            python,
            child: None,
            tls: (tls != SinkTls::None).then(|| {
                let certificates = certificates.expect("certificates for a TLS server");
                (tls, certificates.cert.clone(), certificates.key.clone())
            }),
        };
        sink.restart();
        sink
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Stop the server (connections are refused until [`SmtpSink::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same port; returns once it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let mut command = Command::new(&self.python);
        command
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port));
        match &self.tls {
            Some((SinkTls::Starttls, cert, key)) => {
                command.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
            }
            Some((SinkTls::Implicit, cert, key)) => {
                command
                    .arg("--smtpscert")
                    .arg(cert)
                    .arg("--smtpskey")
                    .arg(key);
            }
            _ => {}
        }
        let child = command
            .args(["-c", "slipway_sink.Sink"])
            .arg(self.mail_dir())
            .env("PYTHONPATH", self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "aiosmtpd did not listen on 127.0.0.1:{} within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Answer `451` (try later) once to each of `addresses`.
    pub fn defer_once(&self, addresses: &[&str]) {
        let path = self.mail_dir().join("defer");
        std::fs::write(path, addresses.join("\n") + "\n").expect("write the defer list");
    }

    /// Every message accepted so far, in the order they were stored.
    pub fn received(&self) -> Vec<Received> {
        read_messages(&self.mail_dir())
    }

    /// Waits until at least `count` messages were accepted (or `deadline` passes: then fails
    /// the test with what arrived).
    pub async fn wait_for(&self, count: usize, deadline: Duration) -> Vec<Received> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "{count} mail(s) expected within {deadline:?}, {} arrived: {:?}",
                received.len(),
                received
                    .iter()
                    .map(|r| r.header("Subject"))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_messages(dir: &Path) -> Vec<Received> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .map(|p| {
                    (
                        p.metadata()
                            .and_then(|m| m.modified())
                            .unwrap_or(std::time::UNIX_EPOCH),
                        p,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter_map(|(_, path)| std::fs::read_to_string(path).ok())
        .map(|text| {
            let mut lines = text.splitn(3, "\r\n");
            let from = lines
                .next()
                .unwrap_or("")
                .trim_start_matches("X-Sink-From: ")
                .to_owned();
            let to = lines
                .next()
                .unwrap_or("")
                .trim_start_matches("X-Sink-To: ")
                .to_owned();
            Received {
                mail_from: from,
                rcpt_to: to
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                raw: lines.next().unwrap_or("").to_owned(),
            }
        })
        .collect()
}
