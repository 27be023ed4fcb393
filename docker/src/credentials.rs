//! Registry credentials as the Docker daemon's push and pull (and the build worker's own registry
//! client) need them: a user name and a password read from a file or a systemd credential, never
//! from argv, and never printed.

use std::fmt;
use std::path::Path;

/// The systemd credential holding the registry password when no password file is configured.
pub const PASSWORD_CREDENTIAL: &str = "registry-password";

/// A user name and password for the registry. Its `Debug` output hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    username: String,
    password: String,
}

/// Why configured credentials cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CredentialsError(String);

impl RegistryCredentials {
    /// Credentials from a user name and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The credentials a worker's `[registry]` section names: `username` with the password read
    /// from `password_file` or the systemd credential [`PASSWORD_CREDENTIAL`]. `Ok(None)` when no
    /// user name is configured; an error when a user name has no password (or a password no user
    /// name), or the password file cannot be read.
    pub fn configured(
        username: Option<&str>,
        password_file: Option<&Path>,
    ) -> Result<Option<Self>, CredentialsError> {
        let password = slipway_common::config::read_secret(PASSWORD_CREDENTIAL, password_file)
            .map_err(|e| CredentialsError(e.to_string()))?;
        match (username, password) {
            (Some(username), Some(password)) => Ok(Some(Self::new(username, password))),
            (None, None) => Ok(None),
            (Some(username), None) => Err(CredentialsError(format!(
                "registry.username is {username:?} but no password was found: expected \
                 registry.password_file or the credential {PASSWORD_CREDENTIAL:?}"
            ))),
            (None, Some(_)) => Err(CredentialsError(
                "a registry password is configured but registry.username is not set".to_owned(),
            )),
        }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password (for handing to the Docker daemon's push; never log it).
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_username_and_password_file() {
        let dir = std::env::temp_dir().join(format!("slipway-docker-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        std::fs::write(&file, "s3cr3t\n").unwrap();
        let credentials = RegistryCredentials::configured(Some("robot"), Some(&file))
            .unwrap()
            .unwrap();
        assert_eq!(credentials, RegistryCredentials::new("robot", "s3cr3t"));
        assert!(!format!("{credentials:?}").contains("s3cr3t"));

        assert!(RegistryCredentials::configured(None, Some(&file)).is_err());
        assert!(
            RegistryCredentials::configured(Some("robot"), Some(&dir.join("missing"))).is_err()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
