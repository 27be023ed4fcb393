//! Layered configuration: built-in defaults < `/etc/slipway/<worker>.toml` < `SLIPWAY_*` environment,
//! secrets read from files (systemd credentials), never from argv or the environment, and the
//! effective configuration printed as TOML with secrets redacted.
//!
//! Environment names use `__` between levels: `SLIPWAY_BROKER__PREFETCH=4` sets `broker.prefetch`.
//! One environment file may serve every program on a host, so a program reads only the variables
//! of its own sections: `SLIPWAY_<SECTION>__<KEY>` where `<section>` is a top-level key of its
//! configuration. Variables naming another program's section (`SLIPWAY_SOURCE__CACHE_DIR` for a
//! worker without `[source]`) and the command line's own single-underscore variables
//! (`SLIPWAY_OSV_DIR`, `SLIPWAY_LINT_SHELLCHECK`) are left alone and reported in
//! [`Loaded::ignored_env`]. An unknown key inside one of its own sections
//! (`SLIPWAY_SCAN__OSV_DIRR`) and any unknown key in its file are still errors naming the key.
//!
//! Defaults are the first layer, serialised from `T::default()`; since [`SecretUrl`] serialises
//! redacted, defaults carry no secrets (tested for every worker's configuration).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Directory holding each worker's `<worker>.toml`.
pub const SYSTEM_CONFIG_DIR: &str = "/etc/slipway";

/// Where a worker's configuration comes from.
#[derive(Debug, Clone)]
pub struct ConfigSources {
    /// The file layer; it must exist only when it was given explicitly.
    pub file: PathBuf,
    /// Whether a missing `file` is an error (true for a path given on the command line).
    pub file_required: bool,
    /// Prefix of the environment layer, `SLIPWAY` in production.
    pub env_prefix: String,
    /// The variables of the environment layer: the process's own when `None` (tests give theirs).
    pub env: Option<Vec<(String, String)>>,
}

impl ConfigSources {
    /// The standard sources of a worker: `/etc/slipway/<worker>.toml` (optional) and `SLIPWAY_*`.
    pub fn for_worker(worker: &str) -> Self {
        Self {
            file: Path::new(SYSTEM_CONFIG_DIR).join(format!("{worker}.toml")),
            file_required: false,
            env_prefix: "SLIPWAY".to_owned(),
            env: None,
        }
    }

    /// Use this file instead of the system one; it must exist.
    pub fn with_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = file.into();
        self.file_required = true;
        self
    }

    /// [`with_file`](Self::with_file) when a file is given (a binary's `--config`), the system
    /// file otherwise.
    pub fn with_file_if(self, file: Option<&Path>) -> Self {
        match file {
            Some(file) => self.with_file(file),
            None => self,
        }
    }

    /// Use another environment prefix (tests use a unique one to stay independent).
    pub fn with_env_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.env_prefix = prefix.into();
        self
    }

    /// Read these variables instead of the process's environment (tests).
    pub fn with_env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = Some(
            vars.into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        );
        self
    }

    fn describe(&self) -> String {
        format!(
            "defaults < {}{} < {}_* environment",
            self.file.display(),
            if self.file_required {
                ""
            } else {
                " (optional)"
            },
            self.env_prefix
        )
    }
}

/// Configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer is unreadable, a value has the wrong type or a key is unknown.
    #[error("configuration from {sources}: {reason}")]
    Layer {
        /// The sources that were merged.
        sources: String,
        /// What the `config` crate reported (it names the key); part of this error's message, so
        /// not repeated as its source.
        reason: config::ConfigError,
    },
    /// A secret file could not be read.
    #[error("secret {name}: cannot read {path}: {source}")]
    Secret {
        /// The setting that names the secret.
        name: String,
        /// The file that was tried.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration cannot be written as TOML.
    #[error("cannot write the configuration as TOML: {0}")]
    Print(#[from] toml::ser::Error),
}

/// A loaded configuration and what the environment layer left alone.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The effective configuration.
    pub config: T,
    /// Names (never values) of `<prefix>_*` variables that were not read: single-underscore ones
    /// (the command line's) and those of sections this configuration does not have.
    pub ignored_env: Vec<String>,
}

/// Load `T`, starting from `T::default()` and overriding with the file and then the environment.
pub fn load<T>(sources: &ConfigSources) -> Result<T, ConfigError>
where
    T: Default + Serialize + DeserializeOwned,
{
    load_reporting(sources).map(|loaded| loaded.config)
}

/// [`load`], also saying which environment variables were ignored (a binary logs them once its
/// logging is up).
pub fn load_reporting<T>(sources: &ConfigSources) -> Result<Loaded<T>, ConfigError>
where
    T: Default + Serialize + DeserializeOwned,
{
    let layer_error = |reason| ConfigError::Layer {
        sources: sources.describe(),
        reason,
    };
    let defaults = config::Config::try_from(&T::default()).map_err(layer_error)?;
    let sections = sections_of(&T::default())?;
    let variables = match &sources.env {
        Some(vars) => vars.clone(),
        None => std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect(),
    };
    let (read, ignored_env) = split_environment(variables, &sources.env_prefix, &sections);
    let config = config::Config::builder()
        .add_source(defaults)
        .add_source(
            config::File::from(sources.file.as_path())
                .format(config::FileFormat::Toml)
                .required(sources.file_required),
        )
        .add_source(
            config::Environment::with_prefix(&sources.env_prefix)
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(read.into_iter().collect())),
        )
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(layer_error)?;
    Ok(Loaded {
        config,
        ignored_env,
    })
}

/// The top-level keys of a configuration: its sections.
fn sections_of<T: Serialize>(config: &T) -> Result<BTreeSet<String>, ConfigError> {
    Ok(toml::Table::try_from(config)?.keys().cloned().collect())
}

/// Splits `<prefix>_*` variables into those this configuration reads (`<prefix>_<SECTION>__<KEY>`
/// with `<section>` one of `sections`) and the names of the others. Variables without the prefix
/// are not looked at.
fn split_environment(
    variables: Vec<(String, String)>,
    prefix: &str,
    sections: &BTreeSet<String>,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut read = Vec::new();
    let mut ignored = Vec::new();
    for (name, value) in variables {
        let Some(rest) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('_'))
        else {
            continue;
        };
        let ours = rest
            .split_once("__")
            .is_some_and(|(section, _)| sections.contains(&section.to_lowercase()));
        if ours {
            read.push((name, value));
        } else {
            ignored.push(name);
        }
    }
    ignored.sort();
    (read, ignored)
}

/// The configuration as TOML, as `--print-config` shows it: secrets are redacted by their types
/// ([`SecretUrl`]), and settings that are off show as empty strings.
pub fn to_toml<T: Serialize>(config: &T) -> Result<String, ConfigError> {
    Ok(toml::to_string(config)?)
}

/// What a redacted secret shows instead of itself.
pub const REDACTED: &str = "<redacted>";

/// A URL that may carry a password in its user info (`amqp://user:secret@host/`). The password is
/// a secret: serialising (`--print-config`), `Debug` and `Display` show [`REDACTED`] in its place;
/// only [`expose`](Self::expose) gives the URL itself, for connecting.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wrap a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password (if any) replaced by [`REDACTED`].
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return self.0.clone();
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        match authority.rsplit_once('@') {
            Some((userinfo, host)) if userinfo.contains(':') => {
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:{REDACTED}@{host}{tail}")
            }
            _ => self.0.clone(),
        }
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Read a secret: from `path` when configured, else from the systemd credential `name`
/// (`$CREDENTIALS_DIRECTORY/<name>`). Trailing newlines are stripped. `Ok(None)` when neither exists.
pub fn read_secret(name: &str, path: Option<&Path>) -> Result<Option<String>, ConfigError> {
    let path = match path {
        Some(path) => path.to_owned(),
        None => match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) if Path::new(&dir).join(name).exists() => Path::new(&dir).join(name),
            _ => return Ok(None),
        },
    };
    std::fs::read_to_string(&path)
        .map(|text| Some(text.trim_end_matches(['\n', '\r']).to_owned()))
        .map_err(|source| ConfigError::Secret {
            name: name.to_owned(),
            path,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        inner: Inner,
        other: Other,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        prefetch: u16,
        url: SecretUrl,
        name: String,
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Other {
        osv_dir: Option<PathBuf>,
    }

    impl Default for Inner {
        fn default() -> Self {
            Self {
                prefetch: 1,
                url: SecretUrl::new("amqp://default"),
                name: String::new(),
            }
        }
    }

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("slipway-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Sources with no file and exactly these environment variables.
    fn env_only(vars: &[(&str, &str)]) -> ConfigSources {
        let mut sources = ConfigSources::for_worker("none").with_env(vars.iter().copied());
        sources.file = PathBuf::from("/nonexistent/slipway.toml");
        sources
    }

    #[test]
    fn defaults_then_file_then_environment() {
        assert_eq!(load::<Sample>(&env_only(&[])).unwrap(), Sample::default());

        let file = temp_file(
            "layers.toml",
            "[inner]\nname = \"from-file\"\nprefetch = 4\n",
        );
        let sources = env_only(&[]).with_file(&file);
        let loaded: Sample = load(&sources).unwrap();
        assert_eq!(loaded.inner.name, "from-file");
        assert_eq!(loaded.inner.prefetch, 4);
        assert_eq!(
            loaded.inner.url.expose(),
            "amqp://default",
            "untouched keys keep defaults"
        );

        let sources = sources.with_env([("SLIPWAY_INNER__PREFETCH", "9")]);
        let loaded: Sample = load(&sources).unwrap();
        assert_eq!(loaded.inner.prefetch, 9, "environment beats the file");
        assert_eq!(loaded.inner.name, "from-file");
    }

    #[test]
    fn a_required_file_that_is_missing_and_a_bad_value_are_errors() {
        let sources = env_only(&[]).with_file("/nonexistent/explicit.toml");
        let error = load::<Sample>(&sources).unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/explicit.toml"),
            "{error}"
        );

        let file = temp_file("bad.toml", "[inner]\nprefetch = \"lots\"\n");
        let error = load::<Sample>(&env_only(&[]).with_file(&file)).unwrap_err();
        assert!(error.to_string().contains("prefetch"), "{error}");
    }

    #[test]
    fn variables_of_other_programs_and_sections_are_ignored_and_reported() {
        let loaded = load_reporting::<Sample>(&env_only(&[
            ("SLIPWAY_SOURCE__CACHE_DIR", "/var/cache/slipway"),
            ("SLIPWAY_OSV_DIR", "/var/lib/osv"),
            ("SLIPWAY_LINT_SHELLCHECK", "never"),
            ("SLIPWAY_INNER__PREFETCH", "3"),
            ("SLIPWAY_OTHER__OSV_DIR", "/srv/osv"),
            ("PATH", "/usr/bin"),
        ]))
        .unwrap();
        assert_eq!(loaded.config.inner.prefetch, 3);
        assert_eq!(loaded.config.other.osv_dir, Some(PathBuf::from("/srv/osv")));
        assert_eq!(
            loaded.ignored_env,
            [
                "SLIPWAY_LINT_SHELLCHECK",
                "SLIPWAY_OSV_DIR",
                "SLIPWAY_SOURCE__CACHE_DIR"
            ]
        );
    }

    #[test]
    fn a_typo_inside_an_own_section_is_an_error_naming_the_key() {
        let error = load::<Sample>(&env_only(&[("SLIPWAY_OTHER__OSV_DIRR", "/srv/osv")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("osv_dirr"), "{error}");
    }

    #[test]
    fn an_unknown_key_or_section_in_the_file_is_an_error_naming_it() {
        for (text, key) in [
            ("[other]\nosv_dirr = \"/srv\"\n", "osv_dirr"),
            ("[source]\ncache_dir = \"/srv\"\n", "source"),
        ] {
            let file = temp_file("unknown.toml", text);
            let error = load::<Sample>(&env_only(&[]).with_file(&file))
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{key}: {error}");
        }
    }

    #[test]
    fn printed_configuration_is_toml_without_the_password() {
        let loaded: Sample = load(&env_only(&[(
            "SLIPWAY_INNER__URL",
            "amqp://lint:hunter2@broker:5672/%2f",
        )]))
        .unwrap();
        assert_eq!(
            loaded.inner.url.expose(),
            "amqp://lint:hunter2@broker:5672/%2f"
        );
        let printed = to_toml(&loaded).unwrap();
        assert!(!printed.contains("hunter2"), "{printed}");
        let parsed: toml::Table = printed.parse().unwrap();
        assert_eq!(
            parsed["inner"]["url"].as_str(),
            Some("amqp://lint:<redacted>@broker:5672/%2f")
        );
        assert!(!format!("{loaded:?}").contains("hunter2"));
    }

    #[test]
    fn only_the_password_of_a_url_is_redacted() {
        for (url, shown) in [
            (
                "amqp://guest:hunter2@h:5672/%2f",
                "amqp://guest:<redacted>@h:5672/%2f",
            ),
            ("amqp://h:5672", "amqp://h:5672"),
            ("amqp://user@h/vhost", "amqp://user@h/vhost"),
            ("amqp://u:p@ss@h/a@b", "amqp://u:<redacted>@h/a@b"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(SecretUrl::new(url).redacted(), shown);
            assert_eq!(SecretUrl::new(url).to_string(), shown);
        }
    }

    #[test]
    fn secrets_come_from_files_without_trailing_newline() {
        let file = temp_file("password", "s3cret\n");
        assert_eq!(
            read_secret("broker-password", Some(&file))
                .unwrap()
                .as_deref(),
            Some("s3cret")
        );
        let error = read_secret("broker-password", Some(Path::new("/nonexistent/pw"))).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/pw"), "{error}");
    }
}
