//! Which workers the demo runs and the configuration file each gets (pure). Every setting a
//! worker needs for the demo is in its file, so a worker configuration in `/etc/slipway` or the
//! caller's `SLIPWAY_*` variables cannot point a demo worker at something else; only the broker
//! URL comes by environment, so that its password is in no file.

use std::path::{Path, PathBuf};

use super::sample::BRANCH;

/// The workers, in start order: consumers first, the repo-tracker (which starts the jobs) last.
pub const WORKERS: [&str; 6] = [
    "notify",
    "scan",
    "build",
    "lint",
    "rescan-scheduler",
    "repo-tracker",
];

/// How often the demo's repo-tracker polls the sample repositories, so that a commit to them
/// while the fleet keeps running is built within seconds.
pub const POLL_INTERVAL_MS: u64 = 5_000;

/// What the configuration files are made of.
#[derive(Clone, Debug)]
pub struct FleetPlan {
    /// The broker namespace.
    pub namespace: String,
    /// The demo's work directory (caches, build contexts).
    pub work_dir: PathBuf,
    /// `file://` URL of the index repository.
    pub index_url: String,
    /// The registry the build worker pushes to (`http://127.0.0.1:5000`).
    pub registry_url: String,
    /// The SMTP sink's port on 127.0.0.1.
    pub smtp_port: u16,
}

/// The binary of `worker`: `slipway-<worker>`.
pub fn binary_name(worker: &str) -> String {
    format!("slipway-{worker}")
}

/// The TOML configuration of `worker`, its `/metrics` on 127.0.0.1:`metrics_port`.
pub fn config_file(plan: &FleetPlan, worker: &str, metrics_port: u16) -> String {
    let mut toml = format!(
        "# Written by `slipway demo` for this run (removed when it stops).\n\
         [broker]\nnamespace = {}\n\n\
         [telemetry]\nlog_format = \"text\"\nmetrics_addr = {}\n",
        quote(&plan.namespace),
        quote(&format!("127.0.0.1:{metrics_port}")),
    );
    let cache = |name: &str| plan.work_dir.join("cache").join(name);
    let source = |name: &str| {
        format!(
            "\n[source]\nallow_file_urls = true\ncache_dir = {}\n",
            quote_path(&cache(name))
        )
    };
    match worker {
        "lint" => toml.push_str(&source("lint")),
        "build" => {
            toml.push_str(&source("build"));
            toml.push_str(&format!(
                "\n[registry]\nurl = {}\n\n[build]\nwork_dir = {}\n",
                quote(&plan.registry_url),
                quote_path(&plan.work_dir.join("build"))
            ));
        }
        "notify" => toml.push_str(&format!(
            "\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
             from = \"slipway-demo@localhost\"\n",
            plan.smtp_port
        )),
        "repo-tracker" => {
            toml.push_str(&source("repo-tracker"));
            toml.push_str(&format!(
                "\n[tracker]\nindex_url = {}\nindex_branch = {}\nbuild_first_index = true\n\
                 poll_interval_ms = {POLL_INTERVAL_MS}\npoll_jitter_ms = 0\n",
                quote(&plan.index_url),
                quote(BRANCH),
            ));
        }
        _ => {}
    }
    toml
}

/// A TOML basic string (JSON's string escapes are TOML's).
fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

fn quote_path(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> FleetPlan {
        FleetPlan {
            namespace: "demo".into(),
            work_dir: "/tmp/slipway-demo-\"x\"".into(),
            index_url: "file:///tmp/slipway-demo/index".into(),
            registry_url: "http://127.0.0.1:5000".into(),
            smtp_port: 2525,
        }
    }

    #[test]
    fn each_worker_gets_its_sections_and_every_file_is_valid_toml() {
        for worker in WORKERS {
            let text = config_file(&plan(), worker, 9999);
            let value: toml::Table =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{worker}: {e}"));
            assert_eq!(value["broker"]["namespace"].as_str(), Some("demo"));
            assert_eq!(
                value["telemetry"]["metrics_addr"].as_str(),
                Some("127.0.0.1:9999")
            );
            let wants_source = matches!(worker, "lint" | "build" | "repo-tracker");
            assert_eq!(value.contains_key("source"), wants_source, "{worker}");
        }
        let tracker: toml::Table =
            toml::from_str(&config_file(&plan(), "repo-tracker", 1)).unwrap();
        assert_eq!(
            tracker["tracker"]["build_first_index"].as_bool(),
            Some(true)
        );
        let build: toml::Table = toml::from_str(&config_file(&plan(), "build", 1)).unwrap();
        assert_eq!(
            build["build"]["work_dir"].as_str(),
            Some("/tmp/slipway-demo-\"x\"/build"),
            "quotes in paths survive"
        );
        let notify: toml::Table = toml::from_str(&config_file(&plan(), "notify", 1)).unwrap();
        assert_eq!(notify["smtp"]["port"].as_integer(), Some(2525));
    }
}
