//! OS identity: `etc/os-release` (or `usr/lib/os-release`), with `etc/redhat-release` and
//! `etc/alpine-release` for images that lack os-release (CentOS 6, old Alpine).

use crate::package::OsIdentity;

/// Files the image reader keeps for OS identification, relative to the image root, in the order
/// they are consulted.
pub const RELEASE_FILES: [&str; 4] = [
    "etc/os-release",
    "usr/lib/os-release",
    "etc/redhat-release",
    "etc/alpine-release",
];

/// The OS identity from whichever release files an image has (`read` gives a file's content by
/// its path in [`RELEASE_FILES`]); `None` when none identifies an OS (a `scratch` image).
pub fn identify<'a>(read: impl Fn(&str) -> Option<&'a [u8]>) -> Option<OsIdentity> {
    let os_release = read("etc/os-release")
        .or_else(|| read("usr/lib/os-release"))
        .and_then(|bytes| parse_os_release(&String::from_utf8_lossy(bytes)));
    if let Some(mut identity) = os_release {
        // Alpine's os-release says 3.19.1 too, but older ones omit VERSION_ID.
        if identity.version_id.is_none()
            && identity.id == "alpine"
            && let Some(version) = read("etc/alpine-release").and_then(first_line)
        {
            identity.version_id = Some(version);
        }
        return Some(identity);
    }
    if let Some(line) = read("etc/redhat-release").and_then(first_line) {
        return Some(parse_redhat_release(&line));
    }
    read("etc/alpine-release")
        .and_then(first_line)
        .map(|version| OsIdentity {
            id: "alpine".to_owned(),
            version_id: Some(version),
            ..OsIdentity::default()
        })
}

/// Reads os-release(5): `KEY=value` lines, values optionally quoted with `"` or `'` and with
/// backslash escapes inside double quotes. `None` without an `ID`.
pub fn parse_os_release(text: &str) -> Option<OsIdentity> {
    let mut identity = OsIdentity::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(raw.trim());
        let non_empty = (!value.is_empty()).then(|| value.clone());
        match key.trim() {
            "ID" => identity.id = value.to_ascii_lowercase(),
            "VERSION_ID" => identity.version_id = non_empty,
            "ID_LIKE" => {
                identity.id_like = value
                    .split_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect();
            }
            "VERSION_CODENAME" => identity.codename = non_empty,
            "PRETTY_NAME" => identity.pretty_name = non_empty,
            _ => {}
        }
    }
    (!identity.id.is_empty()).then_some(identity)
}

/// `CentOS release 6.10 (Final)`, `Red Hat Enterprise Linux Server release 7.9 (Maipo)`,
/// `Fedora release 39 (Thirty Nine)` → id and version.
fn parse_redhat_release(line: &str) -> OsIdentity {
    let lower = line.to_ascii_lowercase();
    let id = if lower.starts_with("centos") {
        "centos"
    } else if lower.starts_with("red hat") {
        "rhel"
    } else if lower.starts_with("fedora") {
        "fedora"
    } else if lower.starts_with("rocky") {
        "rocky"
    } else if lower.starts_with("almalinux") {
        "almalinux"
    } else if lower.starts_with("oracle") {
        "ol"
    } else {
        "rhel"
    };
    let version_id = line
        .split_once(" release ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(str::to_owned);
    OsIdentity {
        id: id.to_owned(),
        version_id,
        id_like: if id == "rhel" {
            Vec::new()
        } else {
            vec!["rhel".to_owned()]
        },
        codename: None,
        pretty_name: Some(line.to_owned()),
    }
}

fn first_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

fn unquote(raw: &str) -> String {
    let bytes = raw.as_bytes();
    if bytes.len() >= 2 && bytes[0] == b'\'' && bytes[bytes.len() - 1] == b'\'' {
        return raw[1..raw.len() - 1].to_owned();
    }
    if bytes.len() >= 2 && bytes[0] == b'"' && bytes[bytes.len() - 1] == b'"' {
        let mut out = String::new();
        let mut chars = raw[1..raw.len() - 1].chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    raw.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const BOOKWORM: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"#;

    #[test]
    fn debian_os_release_is_read() {
        let os = parse_os_release(BOOKWORM).unwrap();
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id.as_deref(), Some("12"));
        assert_eq!(os.codename.as_deref(), Some("bookworm"));
        assert_eq!(
            os.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert!(os.id_like.is_empty());
    }

    #[test]
    fn quoting_escapes_id_like_and_comments_are_handled() {
        let text = "# comment\nID=\"centos\"\nID_LIKE='rhel fedora'\nVERSION_ID=\"7\"\nPRETTY_NAME=\"A \\\"quoted\\\" name\"\nnot a line\n";
        let os = parse_os_release(text).unwrap();
        assert_eq!(os.id, "centos");
        assert_eq!(os.id_like, ["rhel", "fedora"]);
        assert_eq!(os.pretty_name.as_deref(), Some("A \"quoted\" name"));
        assert_eq!(parse_os_release("NAME=x\n"), None, "no ID, no identity");
    }

    #[test]
    fn fallbacks_identify_old_centos_and_alpine() {
        let files: HashMap<&str, &[u8]> =
            HashMap::from([("etc/redhat-release", &b"CentOS release 6.10 (Final)\n"[..])]);
        let os = identify(|p| files.get(p).copied()).unwrap();
        assert_eq!(os.id, "centos");
        assert_eq!(os.version_id.as_deref(), Some("6.10"));

        let files: HashMap<&str, &[u8]> = HashMap::from([("etc/alpine-release", &b"3.19.1\n"[..])]);
        let os = identify(|p| files.get(p).copied()).unwrap();
        assert_eq!(
            (os.id.as_str(), os.version_id.as_deref()),
            ("alpine", Some("3.19.1"))
        );

        let files: HashMap<&str, &[u8]> = HashMap::from([
            ("etc/os-release", &b"ID=alpine\nNAME=Alpine\n"[..]),
            ("etc/alpine-release", &b"3.5.2\n"[..]),
        ]);
        let os = identify(|p| files.get(p).copied()).unwrap();
        assert_eq!(os.version_id.as_deref(), Some("3.5.2"));

        assert_eq!(identify(|_| None), None);
    }

    #[test]
    fn usr_lib_os_release_is_used_when_etc_has_none() {
        let files: HashMap<&str, &[u8]> =
            HashMap::from([("usr/lib/os-release", BOOKWORM.as_bytes())]);
        assert_eq!(identify(|p| files.get(p).copied()).unwrap().id, "debian");
    }
}
