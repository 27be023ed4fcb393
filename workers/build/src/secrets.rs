//! Build secrets and SSH agents: what `RUN --mount=type=secret,id=ID` and
//! `RUN --mount=type=ssh[,id=ID]` are served, from the worker's own configuration and
//! credentials, never from the index or the job.
//!
//! `[build.secrets]` maps a secret id to where the worker reads it when the daemon asks for it
//! during a build (through the build's BuildKit session):
//! - `"/etc/slipway/secrets/npmrc"`: a file;
//! - `"credential:npmrc"`: the systemd credential `npmrc` (`LoadCredential=npmrc:/path` in the
//!   unit, read from `$CREDENTIALS_DIRECTORY`).
//!
//! `[build.ssh_agents]` maps an agent id (`default` for a mount without `id=`) to the socket of
//! an `ssh-agent` on the worker's machine (`SSH_AUTH_SOCK` of an agent holding deploy keys); the
//! build's steps may list its keys and sign with them, nothing else.
//!
//! Every source and socket is checked when the worker starts; a `required` mount of an id the
//! worker does not serve fails the job before the build starts ([`check_required`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::features::{SessionMount, SessionMountKind};

/// The prefix of a source naming a systemd credential.
pub const CREDENTIAL_PREFIX: &str = "credential:";

/// Resolves each configured secret to the file it is read from. `credentials_dir` is
/// `$CREDENTIALS_DIRECTORY` (`None` outside a unit that loads credentials).
///
/// Errors name the id and what is wrong: an id BuildKit would not accept (empty, or other than
/// letters, digits, `.`, `_`, `-`), a credential without `$CREDENTIALS_DIRECTORY`, a file that
/// cannot be read.
pub fn resolve(
    configured: &BTreeMap<String, String>,
    credentials_dir: Option<&Path>,
) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut resolved = BTreeMap::new();
    for (id, source) in configured {
        check_id("build.secrets", id)?;
        let path = match source.strip_prefix(CREDENTIAL_PREFIX) {
            Some(name) => {
                let Some(dir) = credentials_dir else {
                    return Err(format!(
                        "build.secrets.{id} names the credential {name:?}, but $CREDENTIALS_DIRECTORY is not set (add LoadCredential={name}:<file> to the unit)"
                    ));
                };
                if name.is_empty() || name.contains('/') {
                    return Err(format!(
                        "build.secrets.{id}: {source:?} names no credential (credential:<name>)"
                    ));
                }
                dir.join(name)
            }
            None => PathBuf::from(source),
        };
        let readable = std::fs::File::open(&path).and_then(|file| file.metadata());
        match readable {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => {
                return Err(format!(
                    "build.secrets.{id}: {} is not a file",
                    path.display()
                ));
            }
            Err(e) => {
                return Err(format!(
                    "build.secrets.{id}: cannot read {}: {e}",
                    path.display()
                ));
            }
        }
        resolved.insert(id.clone(), path);
    }
    Ok(resolved)
}

/// Checks each configured SSH agent: its id, and that its path is a socket.
pub fn resolve_agents(
    configured: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, PathBuf>, String> {
    use std::os::unix::fs::FileTypeExt as _;
    let mut resolved = BTreeMap::new();
    for (id, socket) in configured {
        check_id("build.ssh_agents", id)?;
        let path = PathBuf::from(socket);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.file_type().is_socket() => {}
            Ok(_) => {
                return Err(format!(
                    "build.ssh_agents.{id}: {} is not a socket (expected an ssh-agent's SSH_AUTH_SOCK)",
                    path.display()
                ));
            }
            Err(e) => {
                return Err(format!(
                    "build.ssh_agents.{id}: cannot reach {}: {e}",
                    path.display()
                ));
            }
        }
        resolved.insert(id.clone(), path);
    }
    Ok(resolved)
}

/// An id BuildKit accepts: letters, digits, `.`, `_`, `-`.
fn check_id(section: &str, id: &str) -> Result<(), String> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "{section}: {id:?} is not a usable id (letters, digits, '.', '_' and '-')"
        ));
    }
    Ok(())
}

/// What this worker serves to builds' sessions, by id.
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    /// `[build.secrets]`, resolved.
    pub secrets: &'a BTreeMap<String, PathBuf>,
    /// `[build.ssh_agents]`, resolved.
    pub agents: &'a BTreeMap<String, PathBuf>,
}

impl Served<'_> {
    fn of(
        &self,
        kind: SessionMountKind,
    ) -> (&BTreeMap<String, PathBuf>, &'static str, &'static str) {
        match kind {
            SessionMountKind::Secret => (self.secrets, "secret", "build.secrets"),
            SessionMountKind::Ssh => (self.agents, "ssh", "build.ssh_agents"),
        }
    }

    /// Whether `mount`'s id is served.
    pub fn serves(&self, mount: &SessionMount) -> bool {
        self.of(mount.kind).0.contains_key(&mount.id)
    }
}

/// The first `required` mount whose id this worker does not serve, as the job's error.
pub fn check_required(mounts: &[SessionMount], served: Served<'_>) -> Result<(), String> {
    for mount in mounts {
        let (ids, kind, section) = served.of(mount.kind);
        if mount.id.is_empty() {
            return Err(format!(
                "line {}: RUN --mount=type=secret names no secret (id= or target=)",
                mount.line
            ));
        }
        if mount.required && !ids.contains_key(&mount.id) {
            let known = if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.keys().cloned().collect::<Vec<_>>().join(", ")
            };
            let what = match mount.kind {
                SessionMountKind::Secret => "secret",
                SessionMountKind::Ssh => "SSH agent",
            };
            return Err(format!(
                "line {}: RUN --mount=type={kind},id={} is required, but this worker serves no {what} {:?} (its [{section}]: {known})",
                mount.line, mount.id, mount.id
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_credentials_resolve_and_every_mistake_is_named() {
        let dir = std::env::temp_dir().join(format!("slipway-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("npmrc"), "//registry/:_authToken=x\n").unwrap();
        std::fs::write(dir.join("token"), "t0k3n").unwrap();
        let configured = BTreeMap::from([
            (
                "npmrc".to_owned(),
                dir.join("npmrc").to_string_lossy().into_owned(),
            ),
            ("pip-token".to_owned(), "credential:token".to_owned()),
        ]);
        let resolved = resolve(&configured, Some(&dir)).unwrap();
        assert_eq!(resolved["npmrc"], dir.join("npmrc"));
        assert_eq!(resolved["pip-token"], dir.join("token"));

        let error = resolve(&configured, None).unwrap_err();
        assert!(
            error.contains("$CREDENTIALS_DIRECTORY is not set"),
            "{error}"
        );
        let missing = BTreeMap::from([("gone".to_owned(), "/nonexistent/secret".to_owned())]);
        let error = resolve(&missing, Some(&dir)).unwrap_err();
        assert!(
            error.starts_with("build.secrets.gone: cannot read /nonexistent/secret"),
            "{error}"
        );
        let escaping = BTreeMap::from([("x".to_owned(), "credential:../etc".to_owned())]);
        assert!(resolve(&escaping, Some(&dir)).is_err());
        let directory = BTreeMap::from([("d".to_owned(), dir.to_string_lossy().into_owned())]);
        assert!(
            resolve(&directory, None)
                .unwrap_err()
                .ends_with("is not a file")
        );
        let bad_id = BTreeMap::from([("a b".to_owned(), "credential:token".to_owned())]);
        assert!(
            resolve(&bad_id, Some(&dir))
                .unwrap_err()
                .contains("not a usable id")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_required_mount_needs_a_served_secret_or_agent_and_an_optional_one_does_not() {
        let secrets = BTreeMap::from([("npmrc".to_owned(), PathBuf::from("/s/npmrc"))]);
        let agents = BTreeMap::from([("default".to_owned(), PathBuf::from("/run/agent"))]);
        let served = Served {
            secrets: &secrets,
            agents: &agents,
        };
        let mount = |kind, id: &str, required| SessionMount {
            line: 3,
            kind,
            id: id.to_owned(),
            required,
        };
        use SessionMountKind::{Secret, Ssh};
        assert!(
            check_required(
                &[
                    mount(Secret, "npmrc", true),
                    mount(Secret, "other", false),
                    mount(Ssh, "default", true),
                    mount(Ssh, "deploy", false),
                ],
                served
            )
            .is_ok()
        );
        assert!(!served.serves(&mount(Ssh, "deploy", false)));
        let error = check_required(&[mount(Secret, "token", true)], served).unwrap_err();
        assert_eq!(
            error,
            "line 3: RUN --mount=type=secret,id=token is required, but this worker serves no secret \"token\" (its [build.secrets]: npmrc)"
        );
        let error = check_required(&[mount(Ssh, "deploy", true)], served).unwrap_err();
        assert_eq!(
            error,
            "line 3: RUN --mount=type=ssh,id=deploy is required, but this worker serves no SSH agent \"deploy\" (its [build.ssh_agents]: default)"
        );
        assert!(
            check_required(&[mount(Secret, "", false)], served)
                .unwrap_err()
                .contains("names no secret")
        );
    }

    #[test]
    fn an_agent_must_be_a_socket() {
        let dir = std::env::temp_dir().join(format!("slipway-agents-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let file = dir.join("not-a-socket");
        std::fs::write(&file, "").unwrap();
        let ok = BTreeMap::from([("default".to_owned(), socket.to_string_lossy().into_owned())]);
        assert_eq!(resolve_agents(&ok).unwrap()["default"], socket);
        let wrong = BTreeMap::from([("default".to_owned(), file.to_string_lossy().into_owned())]);
        assert!(
            resolve_agents(&wrong)
                .unwrap_err()
                .contains("is not a socket")
        );
        let gone = BTreeMap::from([("default".to_owned(), "/nonexistent/agent".to_owned())]);
        assert!(resolve_agents(&gone).unwrap_err().contains("cannot reach"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
