//! Build secrets: what `RUN --mount=type=secret,id=ID` is served, from the worker's own
//! configuration and credentials, never from the index or the job.
//!
//! `[build.secrets]` maps a secret id to where the worker reads it when the daemon asks for it
//! during a build (through the build's BuildKit session):
//! - `"/etc/slipway/secrets/npmrc"`: a file;
//! - `"credential:npmrc"`: the systemd credential `npmrc` (`LoadCredential=npmrc:/path` in the
//!   unit, read from `$CREDENTIALS_DIRECTORY`).
//!
//! Every source is checked when the worker starts; a `required` mount of an id the worker does
//! not serve fails the job before the build starts ([`check_required`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::features::SecretMount;

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
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(format!(
                "build.secrets: {id:?} is not a usable secret id (letters, digits, '.', '_' and '-')"
            ));
        }
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

/// The first `required` secret mount whose id this worker does not serve, as the job's error.
pub fn check_required(
    mounts: &[SecretMount],
    served: &BTreeMap<String, PathBuf>,
) -> Result<(), String> {
    for mount in mounts {
        if mount.id.is_empty() {
            return Err(format!(
                "line {}: RUN --mount=type=secret names no secret (id= or target=)",
                mount.line
            ));
        }
        if mount.required && !served.contains_key(&mount.id) {
            let known = if served.is_empty() {
                "none".to_owned()
            } else {
                served.keys().cloned().collect::<Vec<_>>().join(", ")
            };
            return Err(format!(
                "line {}: RUN --mount=type=secret,id={} is required, but this worker serves no secret {:?} (its [build.secrets]: {known})",
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
                .contains("not a usable secret id")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_required_mount_needs_a_served_secret_and_an_optional_one_does_not() {
        let served = BTreeMap::from([("npmrc".to_owned(), PathBuf::from("/s/npmrc"))]);
        let mount = |id: &str, required| SecretMount {
            line: 3,
            id: id.to_owned(),
            required,
        };
        assert!(check_required(&[mount("npmrc", true), mount("other", false)], &served).is_ok());
        let error = check_required(&[mount("token", true)], &served).unwrap_err();
        assert_eq!(
            error,
            "line 3: RUN --mount=type=secret,id=token is required, but this worker serves no secret \"token\" (its [build.secrets]: npmrc)"
        );
        assert!(
            check_required(&[mount("", false)], &served)
                .unwrap_err()
                .contains("names no secret")
        );
    }
}
