//! RabbitMQ definitions for a least-privilege deployment (pure): the vhost, the whole topology
//! (exchanges, queues with their exact arguments, bindings), queue-length policies, and one user
//! per role with permissions limited to what that role does. `slipway definitions` prints them;
//! an administrator loads them with `rabbitmqctl import_definitions`, and the workers run with
//! `broker.topology = "verify"`, declaring nothing.
//!
//! What each role may do, in RabbitMQ's terms:
//! - `configure`: nothing (`^$`): no role declares or deletes anything.
//! - `write` (publish to an exchange): the event exchange `N` when it publishes events, the queue
//!   exchange `N.queues` when it retries, holds a lease or appends to a stream, `N.dlx` when it
//!   dead-letters. Never the default exchange.
//! - `read` (consume): its own worker queue, its lease queue, the streams it reads.
//! - topic permissions: on `N`, exactly the routing keys (kinds) it publishes; on `N.queues`,
//!   exactly the queues it addresses by name (its retry queues, its lease queue, the stream it
//!   appends to).

use std::path::Path;

use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use slipway_common::Kind;

use crate::history::history_stream_name;
use crate::leadership::{lease_queue_arguments, lease_queue_name};
use crate::logs::{LogStreamSettings, log_stream_name};
use crate::reports::{ReportStreamSettings, report_stream_name};
use crate::topology::{Topology, queue_exchange_name};
use crate::{BrokerError, BrokerSettings};

/// A stream of a namespace, by what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamName {
    /// `N.history`: every event.
    History,
    /// `N.logs`: build logs.
    Logs,
    /// `N.reports`: scan reports.
    Reports,
}

impl StreamName {
    /// The stream's name in `namespace`.
    pub fn in_namespace(self, namespace: &str) -> String {
        match self {
            StreamName::History => history_stream_name(namespace),
            StreamName::Logs => log_stream_name(namespace),
            StreamName::Reports => report_stream_name(namespace),
        }
    }
}

/// What one broker user does: a worker type, or the `slipway` command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Role {
    /// The role's name: the worker type (`lint`), or `cli`. The user is `<prefix><name>`.
    pub name: &'static str,
    /// Whether it consumes its worker queue `N.<name>` (and so retries through its retry queues
    /// and dead-letters to `N.dlx`).
    pub consumes: bool,
    /// Whether it stands in the leader election `<name>` (lease queue `N.<name>.leader`).
    pub elects: bool,
    /// The kinds it publishes to the event exchange.
    pub publishes: &'static [Kind],
    /// The streams it reads.
    pub reads: &'static [StreamName],
    /// The streams it appends to.
    pub appends: &'static [StreamName],
}

/// Every role of a deployment: the six workers and the command line. The command line may
/// submit builds and rescans, read the queues' depths and the leases (passive declarations need
/// no permission), and read the streams; nothing else (dead letters, purges and deletions need an
/// administrator).
pub const ROLES: [Role; 7] = {
    use Kind::*;
    use StreamName::*;
    [
        Role {
            name: "lint",
            consumes: true,
            elects: false,
            publishes: &[LintPassed, LintFailed],
            reads: &[],
            appends: &[],
        },
        Role {
            name: "build",
            consumes: true,
            elects: false,
            publishes: &[BuildSucceeded, BuildFailed, ImageRemoved],
            reads: &[],
            appends: &[Logs],
        },
        Role {
            name: "scan",
            consumes: true,
            elects: false,
            publishes: &[ScanCompleted, ScanFailed],
            reads: &[],
            appends: &[Reports],
        },
        Role {
            name: "repo-tracker",
            consumes: false,
            elects: true,
            publishes: &[
                BuildRequested,
                GitChanged,
                IndexApplied,
                IndexRejected,
                PackagesUpdated,
                ImageRetired,
                BuildSkipped,
            ],
            reads: &[History, Reports],
            appends: &[],
        },
        Role {
            name: "rescan-scheduler",
            consumes: false,
            elects: true,
            publishes: &[ScanRequested, SummaryReady, BuildRequested],
            reads: &[History],
            appends: &[],
        },
        Role {
            name: "notify",
            consumes: true,
            elects: true,
            publishes: &[MailSent],
            reads: &[History],
            appends: &[],
        },
        Role {
            name: "cli",
            consumes: false,
            elects: false,
            publishes: &[BuildRequested, ScanRequested],
            reads: &[History, Logs, Reports],
            appends: &[],
        },
    ]
};

/// The longest a worker queue, retry queue or the dead-letter queue may grow (policy
/// `slipway-queue-length`): past it, publishes to it are refused (`reject-publish`), so the
/// publishing job is retried later instead of the broker's disk filling up.
pub const QUEUE_MAX_LENGTH: u64 = 1_000_000;

/// The RabbitMQ permissions of one role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Regex of the resources it may declare or delete.
    pub configure: String,
    /// Regex of the exchanges it may publish to.
    pub write: String,
    /// Regex of the queues it may consume.
    pub read: String,
    /// Regex of the routing keys it may publish to the event exchange.
    pub event_keys: String,
    /// Regex of the queue names it may publish to through the queue exchange.
    pub queue_keys: String,
}

impl Role {
    /// What this role may do in `namespace`.
    pub fn grant(&self, namespace: &str) -> Grant {
        let ns = regex_escape(namespace);
        let mut exchanges = Vec::new();
        if !self.publishes.is_empty() {
            exchanges.push(ns.clone());
        }
        if self.consumes || self.elects || !self.appends.is_empty() {
            exchanges.push(regex_escape(&queue_exchange_name(namespace)));
        }
        if self.consumes {
            exchanges.push(format!("{ns}\\.dlx"));
        }
        let mut queues = Vec::new();
        if self.consumes {
            queues.push(regex_escape(&format!("{namespace}.{}", self.name)));
        }
        if self.elects {
            queues.push(regex_escape(&lease_queue_name(namespace, self.name)));
        }
        for stream in self.reads {
            queues.push(regex_escape(&stream.in_namespace(namespace)));
        }
        let mut addressed = Vec::new();
        if self.consumes {
            addressed.push(format!(
                "{}\\.retry\\.[0-9]+ms",
                regex_escape(&format!("{namespace}.{}", self.name))
            ));
        }
        if self.elects {
            addressed.push(regex_escape(&lease_queue_name(namespace, self.name)));
        }
        for stream in self.appends {
            addressed.push(regex_escape(&stream.in_namespace(namespace)));
        }
        let kinds: Vec<String> = self
            .publishes
            .iter()
            .map(|kind| regex_escape(kind.as_str()))
            .collect();
        Grant {
            configure: NOTHING.to_owned(),
            write: any_of(&exchanges),
            read: any_of(&queues),
            event_keys: any_of(&kinds),
            queue_keys: any_of(&addressed),
        }
    }
}

/// The regex that matches no name.
const NOTHING: &str = "^$";

/// `^(a|b)$`, or [`NOTHING`] for no alternatives.
fn any_of(alternatives: &[String]) -> String {
    match alternatives {
        [] => NOTHING.to_owned(),
        [one] => format!("^{one}$"),
        many => format!("^({})$", many.join("|")),
    }
}

/// `text` with every regex metacharacter escaped.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// What the definitions are made for.
#[derive(Clone, Debug)]
pub struct DefinitionsPlan<'a> {
    /// The broker settings: namespace, retry delays, delivery limit, history retention.
    pub broker: &'a BrokerSettings,
    /// The vhost everything lives in.
    pub vhost: &'a str,
    /// Users are `<user_prefix><role>`.
    pub user_prefix: &'a str,
    /// The log stream's retention (the build worker's `[logs]`).
    pub logs: &'a LogStreamSettings,
    /// The report stream's retention (the scan worker's `[reports]`).
    pub reports: &'a ReportStreamSettings,
}

/// A user's password hash, or none (the user cannot log in until an administrator sets its
/// password with `rabbitmqctl change_password`).
pub type PasswordHash = Option<String>;

/// The definitions document for `plan`; `password_of(role)` gives each user's password hash
/// ([`rabbit_password_hash`]). An invalid retention in the settings is an error.
pub fn definitions(
    plan: &DefinitionsPlan<'_>,
    password_of: impl Fn(&str) -> PasswordHash,
) -> Result<Value, BrokerError> {
    let namespace = plan.broker.namespace.as_str();
    let vhost = plan.vhost;
    let topology = Topology::pipeline(plan.broker);

    let exchange = |name: &str, kind: &str| {
        json!({"name": name, "vhost": vhost, "type": kind, "durable": true,
               "auto_delete": false, "internal": false, "arguments": {}})
    };
    let exchanges = vec![
        exchange(topology.exchange(), "topic"),
        exchange(&topology.queue_exchange(), "topic"),
        exchange(&topology.dead_letter_exchange(), "fanout"),
    ];

    let mut queues = Vec::new();
    let mut bindings = Vec::new();
    let mut queue = |name: &str, arguments: &FieldTable| {
        queues.push(json!({"name": name, "vhost": vhost, "durable": true,
                           "auto_delete": false, "arguments": field_table_json(arguments)}));
    };
    let mut bind = |source: &str, destination: &str, key: &str| {
        bindings.push(
            json!({"source": source, "vhost": vhost, "destination": destination,
                             "destination_type": "queue", "routing_key": key, "arguments": {}}),
        );
    };
    let queue_exchange = topology.queue_exchange();
    for planned in topology.planned_queues()? {
        queue(&planned.name, &planned.arguments);
        for (source, key) in &planned.bindings {
            bind(source, &planned.name, key);
        }
    }
    plan.logs.retention().validate()?;
    plan.reports.retention().validate()?;
    let streams = [
        (StreamName::Logs, plan.logs.retention().arguments()),
        (StreamName::Reports, plan.reports.retention().arguments()),
    ];
    for (stream, arguments) in &streams {
        let name = stream.in_namespace(namespace);
        queue(&name, arguments);
        bind(&queue_exchange, &name, &name);
    }
    for role in ROLES.iter().filter(|role| role.elects) {
        let name = lease_queue_name(namespace, role.name);
        queue(&name, &lease_queue_arguments());
        bind(&queue_exchange, &name, &name);
    }

    let mut users = Vec::new();
    let mut permissions = Vec::new();
    let mut topic_permissions = Vec::new();
    for role in &ROLES {
        let user = format!("{}{}", plan.user_prefix, role.name);
        let grant = role.grant(namespace);
        users.push(
            json!({"name": user, "password_hash": password_of(role.name).unwrap_or_default(),
                          "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}),
        );
        permissions.push(
            json!({"user": user, "vhost": vhost, "configure": grant.configure,
                                "write": grant.write, "read": grant.read}),
        );
        topic_permissions.push(json!({"user": user, "vhost": vhost,
                                      "exchange": topology.exchange(),
                                      "write": grant.event_keys, "read": NOTHING}));
        topic_permissions.push(
            json!({"user": user, "vhost": vhost, "exchange": queue_exchange,
                                      "write": grant.queue_keys, "read": NOTHING}),
        );
    }

    let workers: Vec<String> = topology
        .workers()
        .iter()
        .map(|worker| regex_escape(worker.worker))
        .collect();
    let limited = format!(
        "^{}\\.(dead|({})(\\.retry\\.[0-9]+ms)?)$",
        regex_escape(namespace),
        workers.join("|")
    );
    let policies = vec![json!({
        "vhost": vhost, "name": format!("{namespace}-queue-length"), "pattern": limited,
        "apply-to": "queues", "priority": 0,
        "definition": {"max-length": QUEUE_MAX_LENGTH, "overflow": "reject-publish"},
    })];

    Ok(json!({
        "users": users,
        "vhosts": [{"name": vhost}],
        "permissions": permissions,
        "topic_permissions": topic_permissions,
        "parameters": [],
        "global_parameters": [],
        "policies": policies,
        "queues": queues,
        "exchanges": exchanges,
        "bindings": bindings,
    }))
}

/// RabbitMQ's `rabbit_password_hashing_sha256` hash of `password` with `salt`:
/// base64(salt ‖ SHA-256(salt ‖ password)).
pub fn rabbit_password_hash(password: &str, salt: [u8; 4]) -> String {
    use base64::Engine as _;
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(password.as_bytes());
    let mut salted = salt.to_vec();
    salted.extend_from_slice(&hasher.finalize());
    base64::engine::general_purpose::STANDARD.encode(salted)
}

/// The password hash of each role from the files `<dir>/<role>` (one password each, trailing
/// newline ignored), with a random salt: what `slipway definitions --credentials DIR` puts in
/// the users. A missing file is an error naming it.
pub fn password_hashes_from(dir: &Path) -> Result<Vec<(&'static str, String)>, String> {
    let mut hashes = Vec::new();
    for role in &ROLES {
        let path = dir.join(role.name);
        let password = slipway_common::config::read_secret(role.name, Some(&path))
            .map_err(|error| format!("the password of {}: {error}", role.name))?
            .unwrap_or_default();
        if password.is_empty() {
            return Err(format!(
                "the password of {} in {} is empty",
                role.name,
                path.display()
            ));
        }
        let salt = *uuid::Uuid::new_v4().as_bytes();
        hashes.push((
            role.name,
            rabbit_password_hash(&password, [salt[0], salt[1], salt[2], salt[3]]),
        ));
    }
    Ok(hashes)
}

/// Queue arguments as definitions JSON.
fn field_table_json(table: &FieldTable) -> Value {
    let mut object = Map::new();
    for (key, value) in table.inner() {
        object.insert(key.to_string(), amqp_json(value));
    }
    Value::Object(object)
}

fn amqp_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(flag) => Value::Bool(*flag),
        AMQPValue::LongLongInt(number) => json!(number),
        AMQPValue::LongInt(number) => json!(number),
        AMQPValue::ShortInt(number) => json!(number),
        AMQPValue::LongString(text) => Value::String(text.to_string()),
        AMQPValue::ShortString(text) => Value::String(text.to_string()),
        other => Value::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str) -> Role {
        *ROLES.iter().find(|role| role.name == name).expect("a role")
    }

    fn plan_document(password_of: impl Fn(&str) -> PasswordHash) -> Value {
        let broker = BrokerSettings::default();
        let plan = DefinitionsPlan {
            broker: &broker,
            vhost: "slipway",
            user_prefix: "slipway-",
            logs: &LogStreamSettings::default(),
            reports: &ReportStreamSettings::default(),
        };
        definitions(&plan, password_of).expect("definitions")
    }

    #[test]
    fn the_password_hash_is_rabbitmqs_salted_sha256() {
        // base64(salt ‖ sha256(salt ‖ "secret")), computed with Python's hashlib.
        assert_eq!(
            rabbit_password_hash("secret", [1, 2, 3, 4]),
            "AQIDBDB9kM21iEUzN1lZ+6VReCsdNqS0sERdAQTcY6Xs3PMz"
        );
    }

    #[test]
    fn each_role_may_publish_exactly_its_kinds_and_address_exactly_its_queues() {
        let lint = role("lint").grant("slipway");
        assert_eq!(lint.configure, "^$");
        assert_eq!(lint.write, r"^(slipway|slipway\.queues|slipway\.dlx)$");
        assert_eq!(lint.read, r"^slipway\.lint$");
        assert_eq!(lint.event_keys, r"^(lint\.passed|lint\.failed)$");
        assert_eq!(lint.queue_keys, r"^slipway\.lint\.retry\.[0-9]+ms$");

        let tracker = role("repo-tracker").grant("slipway");
        assert_eq!(
            tracker.write, r"^(slipway|slipway\.queues)$",
            "no dead letters"
        );
        assert_eq!(
            tracker.read,
            r"^(slipway\.repo-tracker\.leader|slipway\.history|slipway\.reports)$"
        );
        assert_eq!(tracker.queue_keys, r"^slipway\.repo-tracker\.leader$");

        let cli = role("cli").grant("slipway");
        assert_eq!(
            cli.write, "^slipway$",
            "events only: no queue exchange, no dlx"
        );
        assert_eq!(cli.event_keys, r"^(build\.requested|scan\.requested)$");
        assert_eq!(cli.queue_keys, "^$");
        assert_eq!(
            cli.read,
            r"^(slipway\.history|slipway\.logs|slipway\.reports)$"
        );

        let build = role("build").grant("slipway");
        assert_eq!(
            build.queue_keys,
            r"^(slipway\.build\.retry\.[0-9]+ms|slipway\.logs)$"
        );
        for role in &ROLES {
            assert_eq!(role.grant("slipway").configure, "^$", "{}", role.name);
        }
    }

    #[test]
    fn a_namespace_with_regex_characters_is_escaped() {
        let grant = role("lint").grant("a+b");
        assert_eq!(grant.read, r"^a\+b\.lint$");
        assert_eq!(
            regex_escape(r"x.y*z(1)|[2]{3}^$\"),
            r"x\.y\*z\(1\)\|\[2\]\{3\}\^\$\\"
        );
    }

    #[test]
    fn every_kind_is_published_by_some_role_and_consumed_queues_match_the_topology() {
        for kind in Kind::ALL {
            assert!(
                ROLES.iter().any(|role| role.publishes.contains(&kind)),
                "nobody may publish {kind}"
            );
        }
        let topology = Topology::pipeline(&BrokerSettings::default());
        for role in ROLES.iter().filter(|role| role.consumes) {
            assert!(topology.has_worker(role.name), "{} has no queue", role.name);
        }
        for worker in topology.workers() {
            assert!(
                ROLES
                    .iter()
                    .any(|role| role.name == worker.worker && role.consumes),
                "nobody consumes {}",
                worker.worker
            );
        }
    }

    #[test]
    fn the_document_holds_the_whole_topology_with_its_arguments_and_every_user() {
        let document = plan_document(|role| (role == "lint").then(|| "HASH".to_owned()));
        let names = |key: &str| -> Vec<String> {
            document[key]
                .as_array()
                .expect(key)
                .iter()
                .map(|item| item["name"].as_str().expect("name").to_owned())
                .collect()
        };
        let queues = names("queues");
        for queue in [
            "slipway.history",
            "slipway.dead",
            "slipway.lint",
            "slipway.lint.retry.1000ms",
            "slipway.notify.retry.600000ms",
            "slipway.logs",
            "slipway.reports",
            "slipway.notify.leader",
            "slipway.repo-tracker.leader",
            "slipway.rescan-scheduler.leader",
        ] {
            assert!(queues.contains(&queue.to_owned()), "{queue} missing");
        }
        assert_eq!(
            names("exchanges"),
            ["slipway", "slipway.queues", "slipway.dlx"]
        );
        let lint = document["queues"]
            .as_array()
            .expect("queues")
            .iter()
            .find(|queue| queue["name"] == "slipway.lint")
            .expect("lint queue");
        assert_eq!(lint["arguments"]["x-delivery-limit"], 5);
        assert_eq!(lint["arguments"]["x-queue-type"], "quorum");
        assert_eq!(lint["arguments"]["x-dead-letter-exchange"], "slipway.dlx");
        let bindings = document["bindings"].as_array().expect("bindings");
        let bound = |source: &str, destination: &str, key: &str| {
            bindings.iter().any(|binding| {
                binding["source"] == source
                    && binding["destination"] == destination
                    && binding["routing_key"] == key
            })
        };
        assert!(bound("slipway", "slipway.history", "#"));
        assert!(bound("slipway", "slipway.build", "lint.passed"));
        assert!(bound("slipway.queues", "slipway.logs", "slipway.logs"));
        assert!(bound(
            "slipway.queues",
            "slipway.scan.retry.5000ms",
            "slipway.scan.retry.5000ms"
        ));
        assert!(bound(
            "slipway.queues",
            "slipway.notify.leader",
            "slipway.notify.leader"
        ));
        let users = document["users"].as_array().expect("users");
        assert_eq!(users.len(), 7);
        assert_eq!(users[0]["name"], "slipway-lint");
        assert_eq!(users[0]["password_hash"], "HASH");
        assert_eq!(users[1]["password_hash"], "", "no password: cannot log in");
        assert_eq!(
            document["topic_permissions"].as_array().map(Vec::len),
            Some(14)
        );
        let policy = &document["policies"][0];
        assert_eq!(policy["definition"]["max-length"], QUEUE_MAX_LENGTH);
        assert_eq!(
            policy["pattern"],
            r"^slipway\.(dead|(lint|build|scan|notify)(\.retry\.[0-9]+ms)?)$"
        );
    }

    #[test]
    fn an_invalid_retention_is_an_error_not_a_document() {
        let broker = BrokerSettings::default();
        let logs = LogStreamSettings {
            max_age: "forever".to_owned(),
            ..LogStreamSettings::default()
        };
        let plan = DefinitionsPlan {
            broker: &broker,
            vhost: "v",
            user_prefix: "p-",
            logs: &logs,
            reports: &ReportStreamSettings::default(),
        };
        assert!(definitions(&plan, |_| None).is_err());
    }
}
