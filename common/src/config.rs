//! Layered configuration: built-in defaults < `/etc/slipway/<worker>.toml` < `SLIPWAY_*` environment,
//! and secrets read from files (systemd credentials), never from argv or the environment.
//!
//! Environment names use `__` between levels: `SLIPWAY_BROKER__PREFETCH=4` sets `broker.prefetch`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

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
}

impl ConfigSources {
    /// The standard sources of a worker: `/etc/slipway/<worker>.toml` (optional) and `SLIPWAY_*`.
    pub fn for_worker(worker: &str) -> Self {
        Self {
            file: Path::new(SYSTEM_CONFIG_DIR).join(format!("{worker}.toml")),
            file_required: false,
            env_prefix: "SLIPWAY".to_owned(),
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
}

/// Configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer is unreadable or a value has the wrong type.
    #[error("configuration from {sources}: {source}")]
    Layer {
        /// The sources that were merged.
        sources: String,
        /// What the `config` crate reported (it names the key).
        source: config::ConfigError,
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
}

/// Load `T`, starting from `T::default()` and overriding with the file and then the environment.
pub fn load<T>(sources: &ConfigSources) -> Result<T, ConfigError>
where
    T: Default + Serialize + DeserializeOwned,
{
    let layer_error = |source| ConfigError::Layer {
        sources: format!(
            "defaults < {}{} < {}_* environment",
            sources.file.display(),
            if sources.file_required {
                ""
            } else {
                " (optional)"
            },
            sources.env_prefix
        ),
        source,
    };
    let defaults = config::Config::try_from(&T::default()).map_err(layer_error)?;
    config::Config::builder()
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
                .try_parsing(true),
        )
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(layer_error)
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
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Sample {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Inner {
        prefetch: u16,
        url: String,
    }

    impl Default for Inner {
        fn default() -> Self {
            Self {
                prefetch: 1,
                url: "amqp://default".into(),
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

    // Each test uses its own env prefix, so tests running in parallel do not see each other.
    #[test]
    fn defaults_then_file_then_environment() {
        let prefix = "SLIPWAYTESTLAYERS";
        let missing = ConfigSources::for_worker("none").with_env_prefix(prefix);
        let mut sources = missing.clone();
        sources.file = PathBuf::from("/nonexistent/slipway.toml");
        assert_eq!(load::<Sample>(&sources).unwrap(), Sample::default());

        let file = temp_file(
            "layers.toml",
            "name = \"from-file\"\n[inner]\nprefetch = 4\n",
        );
        let sources = missing.with_file(&file);
        let loaded: Sample = load(&sources).unwrap();
        assert_eq!(loaded.name, "from-file");
        assert_eq!(loaded.inner.prefetch, 4);
        assert_eq!(
            loaded.inner.url, "amqp://default",
            "untouched keys keep defaults"
        );

        // SAFETY: set_var: this prefix is used by this test only.
        unsafe { std::env::set_var("SLIPWAYTESTLAYERS_INNER__PREFETCH", "9") };
        let loaded: Sample = load(&sources).unwrap();
        // SAFETY: remove_var: as above.
        unsafe { std::env::remove_var("SLIPWAYTESTLAYERS_INNER__PREFETCH") };
        assert_eq!(loaded.inner.prefetch, 9, "environment beats the file");
        assert_eq!(loaded.name, "from-file");
    }

    #[test]
    fn a_required_file_that_is_missing_and_a_bad_value_are_errors() {
        let sources = ConfigSources::for_worker("none")
            .with_env_prefix("SLIPWAYTESTMISSING")
            .with_file("/nonexistent/explicit.toml");
        let error = load::<Sample>(&sources).unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/explicit.toml"),
            "{error}"
        );

        let file = temp_file("bad.toml", "[inner]\nprefetch = \"lots\"\n");
        let sources = ConfigSources::for_worker("none")
            .with_env_prefix("SLIPWAYTESTBAD")
            .with_file(&file);
        let error = load::<Sample>(&sources).unwrap_err();
        assert!(error.to_string().contains("prefetch"), "{error}");
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
