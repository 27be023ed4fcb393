//! The demo's SMTP sink: aiosmtpd (installed by `deploy/dev-env.sh`) with its `Mailbox` handler,
//! which keeps every accepted message in a Maildir, and the reading of what it caught.

use std::path::Path;
use std::process::Command;

/// One message the sink caught.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CaughtMail {
    /// The envelope recipients (`X-RcptTo`, which aiosmtpd adds), else the `To` header.
    pub to: String,
    /// The `Subject` header.
    pub subject: String,
    /// The `Message-ID` header.
    pub message_id: String,
}

/// The most messages read back, and the most bytes read of each (headers come first).
const MAX_MESSAGES: usize = 1000;
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The command that runs the sink on 127.0.0.1:`port`, storing into the Maildir `maildir`.
pub fn command(python: &Path, port: u16, maildir: &Path) -> Command {
    let mut command = Command::new(python);
    command
        .args(["-m", "aiosmtpd", "--nosetuid", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--class", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir);
    command
}

/// The messages in `maildir/new`, oldest first (by file time, then name).
pub fn caught(maildir: &Path) -> Vec<CaughtMail> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let modified = entry.metadata().ok()?.modified().ok()?;
            Some((modified, entry.path()))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .take(MAX_MESSAGES)
        .filter_map(|(_, path)| {
            let bytes = read_head(&path)?;
            Some(parse_headers(&String::from_utf8_lossy(&bytes)))
        })
        .collect()
}

fn read_head(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_HEADER_BYTES as u64)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

/// The headers the summary shows, from a stored message (`\n` or `\r\n` lines, folded headers
/// unfolded).
pub fn parse_headers(message: &str) -> CaughtMail {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in message.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    CaughtMail {
        to: header("x-rcptto")
            .or_else(|| header("to"))
            .unwrap_or_default(),
        subject: header("subject").unwrap_or_default(),
        message_id: header("message-id").unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_unfolded_up_to_the_body() {
        let message = "X-Peer: ('127.0.0.1', 4242)\nX-MailFrom: slipway@demo.example\n\
                       X-RcptTo: team@demo.example\nSubject: [slipway] demo/web:1: built\n \
                       (index change)\nMessage-ID: <abc@slipway>\nTo: Someone <x@y>\n\n\
                       Subject: not a header\n";
        assert_eq!(
            parse_headers(message),
            CaughtMail {
                to: "team@demo.example".into(),
                subject: "[slipway] demo/web:1: built (index change)".into(),
                message_id: "<abc@slipway>".into(),
            }
        );
        let crlf = "To: a@b\r\nSubject: s\r\n\r\nbody";
        assert_eq!(parse_headers(crlf).to, "a@b");
        assert_eq!(parse_headers(crlf).subject, "s");
    }
}
