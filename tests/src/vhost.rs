//! A least-privilege deployment in a vhost of its own: `slipway definitions` (the library call)
//! imported with `rabbitmqctl import_definitions`, one user per role with a random password, and
//! everything (vhost, users, files) removed on drop.

use std::path::Path;
use std::time::{Duration, Instant};

use slipway_broker::definitions::{DefinitionsPlan, ROLES, definitions, rabbit_password_hash};
use slipway_broker::logs::LogStreamSettings;
use slipway_broker::reports::ReportStreamSettings;
use slipway_broker::{BrokerSettings, TopologyMode};

use crate::{TempDir, rabbitmqctl};

/// One imported least-privilege deployment.
pub struct LeastPrivilegeVhost {
    /// The vhost.
    pub vhost: String,
    /// Users are `<user_prefix><role>`.
    pub user_prefix: String,
    /// The settings the definitions were made from (namespace `slipway`, the test's retry
    /// delays), pointing at the vhost as `guest`, who may do anything there (the administrator).
    pub admin: BrokerSettings,
    /// One password file per role.
    credentials: TempDir,
}

impl LeastPrivilegeVhost {
    /// Import the definitions of `base` (its namespace, retry delays, delivery limit, history
    /// retention) into a fresh vhost named after `test`, and wait until the import is done.
    pub fn import(test: &str, base: &BrokerSettings) -> Self {
        crate::ensure_rabbitmq();
        let tag = format!("{test}-{}-{}", std::process::id(), unique());
        let vhost = format!("lp-{tag}");
        let user_prefix = format!("lp-{tag}-");
        let credentials = TempDir::new("least-privilege");
        let mut hashes = Vec::new();
        for role in &ROLES {
            let password = format!("pw-{}-{}", role.name, nanos_text());
            std::fs::write(credentials.path().join(role.name), &password)
                .expect("write a password file");
            hashes.push((role.name, rabbit_password_hash(&password, [7, 1, 4, 2])));
        }
        let admin = BrokerSettings {
            url: format!("amqp://127.0.0.1:5672/{vhost}").as_str().into(),
            namespace: "slipway".to_owned(),
            ..base.clone()
        };
        let plan = DefinitionsPlan {
            broker: &admin,
            vhost: &vhost,
            user_prefix: &user_prefix,
            logs: &test_logs(),
            reports: &test_reports(),
        };
        let document = definitions(&plan, |role| {
            hashes
                .iter()
                .find(|(name, _)| *name == role)
                .map(|(_, hash)| hash.clone())
        })
        .expect("definitions");
        let file = credentials.path().join("definitions.json");
        std::fs::write(&file, document.to_string()).expect("write the definitions");
        let deployment = Self {
            vhost,
            user_prefix,
            admin,
            credentials,
        };
        rabbitmqctl(&["import_definitions", &file.to_string_lossy()]).expect("import");
        let queues = document["queues"].as_array().map_or(0, Vec::len);
        deployment.wait_for_import(queues);
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &deployment.vhost,
            "guest",
            ".*",
            ".*",
            ".*",
        ])
        .expect("guest administers the test vhost");
        deployment
    }

    /// The import runs in the background: wait until every queue and every user's permissions
    /// are there.
    fn wait_for_import(&self, queues: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let listed = |args: &[&str]| {
                rabbitmqctl(args).map_or(0, |text| text.lines().filter(|l| !l.is_empty()).count())
            };
            let declared = listed(&[
                "list_queues",
                "-q",
                "--no-table-headers",
                "-p",
                &self.vhost,
                "name",
            ]);
            let permitted = listed(&[
                "list_permissions",
                "-q",
                "--no-table-headers",
                "-p",
                &self.vhost,
            ]);
            let topics = listed(&[
                "list_topic_permissions",
                "-q",
                "--no-table-headers",
                "-p",
                &self.vhost,
            ]);
            if declared >= queues && permitted >= ROLES.len() && topics >= 2 * ROLES.len() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the import of {} did not finish: {declared}/{queues} queues, {permitted} \
                 permissions, {topics} topic permissions",
                self.vhost
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The user name of `role`.
    pub fn user(&self, role: &str) -> String {
        format!("{}{role}", self.user_prefix)
    }

    /// The password file of `role`.
    pub fn password_file(&self, role: &str) -> std::path::PathBuf {
        self.credentials.path().join(role)
    }

    /// Broker settings of `role`: its user and password file, `broker.topology = "verify"`.
    pub fn settings_for(&self, role: &str) -> BrokerSettings {
        BrokerSettings {
            username: Some(self.user(role)),
            password_file: Some(self.password_file(role)),
            topology: TopologyMode::Verify,
            ..self.admin.clone()
        }
    }

    /// `SLIPWAY_BROKER__*` variables that make a binary `role` in this vhost.
    pub fn env_for(&self, role: &str) -> Vec<(&'static str, String)> {
        vec![
            ("SLIPWAY_BROKER__URL", self.admin.url.expose().to_owned()),
            ("SLIPWAY_BROKER__USERNAME", self.user(role)),
            (
                "SLIPWAY_BROKER__PASSWORD_FILE",
                self.password_file(role).to_string_lossy().into_owned(),
            ),
            ("SLIPWAY_BROKER__TOPOLOGY", "verify".to_owned()),
            ("SLIPWAY_BROKER__NAMESPACE", self.admin.namespace.clone()),
        ]
    }

    /// Where the password files are.
    pub fn credentials_dir(&self) -> &Path {
        self.credentials.path()
    }
}

impl Drop for LeastPrivilegeVhost {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["delete_vhost", &self.vhost]);
        for role in &ROLES {
            let _ = rabbitmqctl(&["delete_user", &self.user(role.name)]);
        }
    }
}

/// Small stream retention for tests (the definitions and a declaring worker must agree).
pub fn test_logs() -> LogStreamSettings {
    LogStreamSettings {
        max_age: "1h".into(),
        max_length_bytes: 16 << 20,
        max_segment_size_bytes: 1 << 20,
    }
}

/// Small report-stream retention for tests.
pub fn test_reports() -> ReportStreamSettings {
    ReportStreamSettings {
        max_age: "1h".into(),
        max_length_bytes: 16 << 20,
        max_segment_size_bytes: 1 << 20,
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn nanos_text() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos())
    )
}
