//! Capabilities an image asks for: what running it as its authors intend would grant it on the
//! host, read from the image configuration alone.
//!
//! Two sources:
//! - the configuration's `User`: empty, absent, `root`, `0`, `root:…` or `0:…` means the
//!   process runs as root;
//! - the `RUN`, `INSTALL` and `UNINSTALL` labels (the Project Atomic convention, read by
//!   `atomic run` and `podman container runlabel`): each is a `docker run …` / `podman run …`
//!   command line the image asks its users to execute. Its options are read as the engine's
//!   flag parser would read them: `--privileged`, `--cap-add`, host namespaces
//!   (`--net`/`--network`, `--pid`, `--ipc`, `--uts`, `--userns`, `--cgroupns` `=host`),
//!   `--security-opt label=disable`, bind mounts of `/` or of the Docker socket (`-v`,
//!   `--volume`, `--mount type=bind`) and `-u`/`--user` root.
//!
//! A label value is split into words the way a POSIX shell splits them (quotes, backslashes,
//! `;`/`&&`/`|` between commands), and nothing is expanded or executed: `${OPT1}`-style
//! placeholders among the options are skipped, `IMAGE` / `$IMAGE` is the image like any other
//! word. Only the options before the image name count: the first word that is neither an option
//! nor an option's value is the image, and what follows it is the container's command, whose
//! own `--privileged` means nothing to the engine. Which options take a value comes from
//! `docker run --help` and `podman run --help`; an unknown `--option` without `=` is taken to
//! take none (both engines refuse unknown options, so such a label cannot run anyway).
//!
//! A bind mount counts as exposing the Docker socket when its source is the socket
//! (`/var/run/docker.sock`, `/run/docker.sock`) or a directory holding it (`/run`, `/var/run`,
//! `/var`): the container sees the socket either way. Paths are compared after lexical
//! normalisation (`//`, `.`, `..`, a trailing `/`).

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};

/// Labels that hold a command line to run the image with (compared ignoring ASCII case).
const COMMAND_LABELS: [&str; 3] = ["RUN", "INSTALL", "UNINSTALL"];

/// Paths of the Docker Engine's API socket.
const DOCKER_SOCKETS: [&str; 2] = ["/var/run/docker.sock", "/run/docker.sock"];

/// Long `docker run` / `podman run` / `create` options that take a value (without the `--`),
/// sorted for binary search. Options that take none are not listed.
const VALUE_OPTIONS: &[&str] = &[
    "add-host",
    "annotation",
    "arch",
    "attach",
    "authfile",
    "blkio-weight",
    "blkio-weight-device",
    "cap-add",
    "cap-drop",
    "cgroup-conf",
    "cgroup-parent",
    "cgroupns",
    "cgroups",
    "chrootdirs",
    "cidfile",
    "conmon-pidfile",
    "cpu-count",
    "cpu-percent",
    "cpu-period",
    "cpu-quota",
    "cpu-rt-period",
    "cpu-rt-runtime",
    "cpu-shares",
    "cpus",
    "cpuset-cpus",
    "cpuset-mems",
    "creds",
    "decryption-key",
    "detach-keys",
    "device",
    "device-cgroup-rule",
    "device-read-bps",
    "device-read-iops",
    "device-write-bps",
    "device-write-iops",
    "dns",
    "dns-opt",
    "dns-option",
    "dns-search",
    "domainname",
    "entrypoint",
    "env",
    "env-file",
    "env-merge",
    "expose",
    "gidmap",
    "gpus",
    "group-add",
    "group-entry",
    "health-cmd",
    "health-interval",
    "health-on-failure",
    "health-retries",
    "health-start-interval",
    "health-start-period",
    "health-startup-cmd",
    "health-startup-interval",
    "health-startup-retries",
    "health-startup-success",
    "health-startup-timeout",
    "health-timeout",
    "hostname",
    "hosts-file",
    "hostuser",
    "image-volume",
    "init-path",
    "io-maxbandwidth",
    "io-maxiops",
    "ip",
    "ip6",
    "ipc",
    "isolation",
    "kernel-memory",
    "label",
    "label-file",
    "link",
    "link-local-ip",
    "log-driver",
    "log-opt",
    "mac-address",
    "memory",
    "memory-reservation",
    "memory-swap",
    "memory-swappiness",
    "mount",
    "name",
    "network",
    "network-alias",
    "oom-score-adj",
    "os",
    "passwd-entry",
    "personality",
    "pid",
    "pidfile",
    "pids-limit",
    "platform",
    "pod",
    "pod-id-file",
    "preserve-fd",
    "preserve-fds",
    "publish",
    "pull",
    "rdt-class",
    "requires",
    "restart",
    "retry",
    "retry-delay",
    "runtime",
    "sdnotify",
    "seccomp-policy",
    "secret",
    "security-opt",
    "shm-size",
    "shm-size-systemd",
    "stop-signal",
    "stop-timeout",
    "storage-opt",
    "subgidname",
    "subuidname",
    "sysctl",
    "systemd",
    "timeout",
    "tmpfs",
    "tz",
    "uidmap",
    "ulimit",
    "umask",
    "unsetenv",
    "user",
    "userns",
    "uts",
    "variant",
    "volume",
    "volume-driver",
    "volumes-from",
    "workdir",
];

/// Short options of `docker run` / `podman run` and the long option each stands for.
const SHORT_OPTIONS: &[(char, &str)] = &[
    ('P', "publish-all"),
    ('a', "attach"),
    ('c', "cpu-shares"),
    ('d', "detach"),
    ('e', "env"),
    ('h', "hostname"),
    ('i', "interactive"),
    ('l', "label"),
    ('m', "memory"),
    ('p', "publish"),
    ('q', "quiet"),
    ('t', "tty"),
    ('u', "user"),
    ('v', "volume"),
    ('w', "workdir"),
];

/// Older spellings and their current names.
const OPTION_ALIASES: &[(&str, &str)] = &[
    ("dns-opt", "dns-option"),
    ("net", "network"),
    ("net-alias", "network-alias"),
];

/// Global options of the `docker` and `podman` commands (before `run`) that take a value.
const GLOBAL_VALUE_OPTIONS: &[&str] = &[
    "-H",
    "-c",
    "-l",
    "--cdi-spec-dir",
    "--cgroup-manager",
    "--config",
    "--conmon",
    "--connection",
    "--context",
    "--events-backend",
    "--hooks-dir",
    "--host",
    "--identity",
    "--imagestore",
    "--log-level",
    "--module",
    "--network-cmd-path",
    "--network-config-dir",
    "--out",
    "--root",
    "--runroot",
    "--runtime",
    "--runtime-flag",
    "--ssh",
    "--storage-driver",
    "--storage-opt",
    "--tlscacert",
    "--tlscert",
    "--tlskey",
    "--tmpdir",
    "--url",
    "--volumepath",
];

/// A namespace shared with the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    /// `--network=host` / `--net=host`: the host's network stack.
    Network,
    /// `--pid=host`: the host's processes.
    Pid,
    /// `--ipc=host`: the host's shared memory and semaphores.
    Ipc,
    /// `--uts=host`: the host's hostname.
    Uts,
    /// `--userns=host`: no user namespace remapping.
    Userns,
    /// `--cgroupns=host`: the host's cgroup tree.
    Cgroupns,
}

/// What the image asks for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "capability", rename_all = "kebab-case")]
pub enum Capability {
    /// The process runs as root (uid 0).
    RunsAsRoot,
    /// `--privileged`: every capability, every device, no confinement.
    Privileged,
    /// `--cap-add`: one Linux capability added.
    CapAdd {
        /// The capability without its `CAP_` prefix, uppercase (`SYS_ADMIN`), or `ALL`.
        name: String,
    },
    /// `--<namespace>=host`: a namespace shared with the host.
    HostNamespace {
        /// Which one.
        namespace: Namespace,
    },
    /// `--security-opt label=disable` (or `label:disable`): no SELinux confinement.
    SelinuxLabelDisabled,
    /// A bind mount of the host's root directory.
    HostRootMount {
        /// Where it is mounted in the container, when given.
        target: Option<String>,
    },
    /// A bind mount of the Docker socket or of a directory holding it.
    DockerSocketMount {
        /// The host path mounted (normalised).
        source: String,
        /// Where it is mounted in the container, when given.
        target: Option<String>,
    },
}

/// Where a finding comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum Source {
    /// The image configuration's `User`.
    ConfigUser,
    /// A command-line label.
    Label {
        /// The label's name as the image spells it (`RUN`, `INSTALL`, `UNINSTALL`).
        name: String,
    },
}

/// One capability an image asks for, where, and the words that say so.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Finding {
    /// The configuration's `User` or the label it was read from.
    #[serde(rename = "where")]
    pub source: Source,
    /// What is asked for.
    #[serde(flatten)]
    pub capability: Capability,
    /// The raw evidence: `User=<value>` for the configuration, the option and its value as
    /// words (unquoted, joined by a space) for a label.
    pub evidence: String,
}

/// An input that is not an image configuration.
#[derive(Debug, thiserror::Error)]
pub enum CapabilitiesError {
    /// Not JSON at all.
    #[error("invalid image configuration: expected JSON, found a syntax error ({0})")]
    Json(#[from] serde_json::Error),
    /// JSON, but not shaped like an OCI / Docker image configuration.
    #[error("invalid image configuration: {at}: expected {expected}, found {found}")]
    Shape {
        /// Where in the document (`the document`, `config.Labels`, `config.Labels.RUN`).
        at: String,
        /// What an image configuration has there.
        expected: &'static str,
        /// What was there instead.
        found: String,
    },
}

/// Reads the capabilities an image asks for from its configuration JSON (what
/// [`crate::image::ImageFs::config`] returns): the configuration's `User`, then the `RUN`,
/// `INSTALL` and `UNINSTALL` labels.
///
/// Returns the findings sorted (by source, capability, evidence) without duplicates, or an
/// error when `config_json` is not an image configuration: not JSON, not an object with
/// `config`, `rootfs`, `architecture` or `os`, or with a `config`, `User`, `Labels` or label
/// value of the wrong type. An image configuration without a `config` object runs as root and
/// has no labels (the OCI specification makes `config` optional).
pub fn from_config(config_json: &[u8]) -> Result<Vec<Finding>, CapabilitiesError> {
    let document: Value = serde_json::from_slice(config_json)?;
    let top = document
        .as_object()
        .filter(|top| {
            ["config", "rootfs", "architecture", "os"]
                .iter()
                .any(|key| top.contains_key(*key))
        })
        .ok_or_else(|| shape_error("the document", IMAGE_CONFIG, &document))?;
    let config = match top.get("config") {
        None | Some(Value::Null) => None,
        Some(Value::Object(config)) => Some(config),
        Some(other) => return Err(shape_error("config", "an object", other)),
    };
    let user = optional_string(config, "User")?;
    let labels = match config.and_then(|config| config.get("Labels")) {
        None | Some(Value::Null) => None,
        Some(Value::Object(labels)) => Some(labels),
        Some(other) => return Err(shape_error("config.Labels", "an object", other)),
    };

    let mut findings = BTreeSet::new();
    if is_root_user(user.unwrap_or_default()) {
        findings.insert(Finding {
            source: Source::ConfigUser,
            capability: Capability::RunsAsRoot,
            evidence: format!("User={}", user.unwrap_or_default()),
        });
    }
    for (name, value) in labels.into_iter().flatten() {
        let value = value
            .as_str()
            .ok_or_else(|| shape_error(&format!("config.Labels.{name}"), "a string", value))?;
        if COMMAND_LABELS
            .iter()
            .any(|label| label.eq_ignore_ascii_case(name))
        {
            let source = Source::Label { name: name.clone() };
            for (capability, evidence) in command_line_findings(value) {
                findings.insert(Finding {
                    source: source.clone(),
                    capability,
                    evidence,
                });
            }
        }
    }
    Ok(findings.into_iter().collect())
}

/// What [`from_config`] says a document must be.
const IMAGE_CONFIG: &str =
    "an image configuration (an object with config, rootfs, architecture or os)";

/// `config.<key>` as a string: `None` when there is no `config`, no such key, or `null`.
fn optional_string<'a>(
    config: Option<&'a Map<String, Value>>,
    key: &str,
) -> Result<Option<&'a str>, CapabilitiesError> {
    match config.and_then(|config| config.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(other) => Err(shape_error(&format!("config.{key}"), "a string", other)),
    }
}

/// A [`CapabilitiesError::Shape`] at `at`, describing what `found` is.
fn shape_error(at: &str, expected: &'static str, found: &Value) -> CapabilitiesError {
    let found = match found {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(map) if map.is_empty() => "an empty object".to_owned(),
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().take(8).map(String::as_str).collect();
            format!("an object with keys {}", keys.join(", "))
        }
    };
    CapabilitiesError::Shape {
        at: at.to_owned(),
        expected,
        found,
    }
}

/// Whether a `User` value (`name|uid[:group|gid]`) makes the process run as root: an empty user
/// part (the engine's default), `root`, or a uid that is numerically 0.
fn is_root_user(user: &str) -> bool {
    let name = user.trim().split(':').next().unwrap_or_default();
    // All zeros covers the empty name too.
    name == "root" || name.bytes().all(|b| b == b'0')
}

/// One shell word or operator of a label value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A word, with its quotes and backslashes removed.
    Word(String),
    /// A control operator (`;`, `&`, `&&`, `|`, `||`): the end of a command.
    Operator,
}

/// Splits `line` into words and operators as a POSIX shell does, without expanding anything:
/// single quotes keep everything, double quotes keep everything but `\` before `$`, `` ` ``,
/// `"`, `\` or a newline, an unquoted `\` keeps the next character (and joins lines before a
/// newline), an unquoted `#` starting a word comments out the rest of the line. An unterminated
/// quote runs to the end.
fn split_words(line: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let finish = |word: &mut String, in_word: &mut bool, tokens: &mut Vec<Token>| {
        if *in_word {
            tokens.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => finish(&mut word, &mut in_word, &mut tokens),
            ';' | '&' | '|' => {
                finish(&mut word, &mut in_word, &mut tokens);
                if chars.peek() == Some(&c) && c != ';' {
                    chars.next();
                }
                tokens.push(Token::Operator);
            }
            '#' if !in_word => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.peek() {
                            Some('\n') => {
                                chars.next();
                            }
                            Some(&next @ ('$' | '`' | '"' | '\\')) => {
                                chars.next();
                                word.push(next);
                            }
                            _ => word.push('\\'),
                        },
                        _ => word.push(c),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(next) => {
                    in_word = true;
                    word.push(next);
                }
                None => {
                    in_word = true;
                    word.push('\\');
                }
            },
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    finish(&mut word, &mut in_word, &mut tokens);
    tokens
}

/// The findings of one label value: every `docker`/`podman` `run`/`create` command in it, each
/// read up to its image.
fn command_line_findings(value: &str) -> Vec<(Capability, String)> {
    let tokens = split_words(value);
    let mut findings = Vec::new();
    for command in tokens.split(|token| *token == Token::Operator) {
        let words: Vec<&str> = command
            .iter()
            .filter_map(|token| match token {
                Token::Word(word) => Some(word.as_str()),
                Token::Operator => None,
            })
            .collect();
        if let Some(options) = run_options(&words) {
            read_options(options, &mut findings);
        }
    }
    findings
}

/// The words after `run` / `create` when `words` is an engine's run command (`docker run`,
/// `/usr/bin/podman container run`, `sudo docker -H unix:///x run`, `FOO=1 docker run`), or
/// `None` for any other command.
fn run_options<'a>(words: &'a [&'a str]) -> Option<&'a [&'a str]> {
    let engine = words.iter().position(|word| {
        let program = word.rsplit('/').next().unwrap_or(word);
        program == "docker" || program == "podman"
    })?;
    let mut i = engine + 1;
    while let Some(word) = words.get(i) {
        match *word {
            "run" | "create" => return words.get(i + 1..),
            "container" => i += 1,
            global if global.starts_with('-') => {
                let takes_value = !global.contains('=') && GLOBAL_VALUE_OPTIONS.contains(&global);
                i += if takes_value { 2 } else { 1 };
            }
            _ => return None,
        }
    }
    None
}

/// Reads the options of a run command up to its image, adding what they ask for to `findings`.
fn read_options(words: &[&str], findings: &mut Vec<(Capability, String)>) {
    let mut rest = words.iter();
    while let Some(&word) = rest.next() {
        if word == "--" {
            return;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            };
            let name = canonical(name);
            let value = match inline {
                Some(value) => Some(value),
                None if takes_value(name) => rest.next().copied(),
                None => None,
            };
            let evidence = match (inline, value) {
                (None, Some(value)) => format!("{word} {value}"),
                _ => word.to_owned(),
            };
            interpret(name, value, evidence, findings);
        } else if let Some(group) = word.strip_prefix('-').filter(|group| !group.is_empty()) {
            read_short_group(word, group, &mut rest, findings);
        } else if !is_option_placeholder(word) {
            // The image: what follows is the container's command.
            return;
        }
    }
}

/// Reads a group of short options (`-it`, `-v/:/host`, `-v=/:/host`, `-itv /:/host`): each
/// letter is an option, and the first one that takes a value takes the rest of the group, or
/// the next word when it is the group's last letter.
fn read_short_group(
    word: &str,
    group: &str,
    rest: &mut std::slice::Iter<'_, &str>,
    findings: &mut Vec<(Capability, String)>,
) {
    for (at, letter) in group.char_indices() {
        let Some(&(_, name)) = SHORT_OPTIONS.iter().find(|(short, _)| *short == letter) else {
            // Unknown: the engine would refuse the whole command.
            return;
        };
        if !takes_value(name) {
            interpret(name, None, word.to_owned(), findings);
            continue;
        }
        let attached = &group[at + letter.len_utf8()..];
        let (value, evidence) = if attached.is_empty() {
            match rest.next() {
                Some(value) => (Some(*value), format!("{word} {value}")),
                None => (None, word.to_owned()),
            }
        } else {
            let value = attached.strip_prefix('=').unwrap_or(attached);
            (Some(value), word.to_owned())
        };
        interpret(name, value, evidence, findings);
        return;
    }
}

/// `${OPT1}`, `$OPT2`, `${OPT}`: the Atomic convention's placeholders for the user's own options.
fn is_option_placeholder(word: &str) -> bool {
    let name = word
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .or_else(|| word.strip_prefix('$'));
    name.and_then(|name| name.strip_prefix("OPT"))
        .is_some_and(|number| number.bytes().all(|b| b.is_ascii_digit()))
}

/// The current name of a long option.
fn canonical(name: &str) -> &str {
    OPTION_ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, current)| current)
}

/// Whether a long option (by its current name) takes a value.
fn takes_value(name: &str) -> bool {
    VALUE_OPTIONS.binary_search(&name).is_ok()
}

/// What one option asks for, if anything of interest.
fn interpret(
    name: &str,
    value: Option<&str>,
    evidence: String,
    findings: &mut Vec<(Capability, String)>,
) {
    let mut found = |capability: Capability| findings.push((capability, evidence.clone()));
    match (name, value) {
        ("privileged", None) => found(Capability::Privileged),
        ("privileged", Some(value)) if parse_bool(value) == Some(true) => {
            found(Capability::Privileged)
        }
        ("cap-add", Some(value)) => {
            for capability in value.split(',').filter_map(capability_name) {
                found(Capability::CapAdd { name: capability });
            }
        }
        ("network" | "pid" | "ipc" | "uts" | "userns" | "cgroupns", Some(value))
            if value.trim() == "host" =>
        {
            let namespace = match name {
                "network" => Namespace::Network,
                "pid" => Namespace::Pid,
                "ipc" => Namespace::Ipc,
                "uts" => Namespace::Uts,
                "userns" => Namespace::Userns,
                _ => Namespace::Cgroupns,
            };
            found(Capability::HostNamespace { namespace });
        }
        ("security-opt", Some(value)) => {
            let value = value.trim();
            if value == "label=disable" || value == "label:disable" {
                found(Capability::SelinuxLabelDisabled);
            }
        }
        ("volume", Some(value)) => {
            let mut parts = value.split(':');
            if let (Some(source), Some(target)) = (parts.next(), parts.next())
                && let Some(capability) = host_mount(source, Some(target))
            {
                found(capability);
            }
        }
        ("mount", Some(value)) => {
            if let Some(capability) = mount_option(value) {
                found(capability);
            }
        }
        ("user", Some(value)) if is_root_user(value) => found(Capability::RunsAsRoot),
        _ => {}
    }
}

/// A boolean option value as the engines' flag parser (Go's `strconv.ParseBool`) reads it.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A capability name without `CAP_` (any case), uppercase; `None` when empty.
fn capability_name(raw: &str) -> Option<String> {
    let upper = raw.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
    (!name.is_empty()).then(|| name.to_owned())
}

/// What a bind mount of host path `source` onto `target` exposes, if it is `/` or the Docker
/// socket (or a directory holding it). Sources that are not absolute paths are named volumes.
fn host_mount(source: &str, target: Option<&str>) -> Option<Capability> {
    let source = normalise_path(source)?;
    let target = target.map(str::to_owned);
    if source == "/" {
        return Some(Capability::HostRootMount { target });
    }
    let exposes_socket = DOCKER_SOCKETS.iter().any(|socket| {
        *socket == source
            || socket
                .strip_prefix(source.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    });
    exposes_socket.then_some(Capability::DockerSocketMount { source, target })
}

/// An absolute path with `//`, `.`, `..` and a trailing `/` resolved lexically; `None` when
/// `path` is not absolute.
fn normalise_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// What a `--mount` value exposes: only `type=bind` mounts (the default type is a volume), with
/// `source`/`src` and `target`/`destination`/`dst`. The value is comma-separated, fields may be
/// double-quoted (the engines read it as one CSV record), keys are compared ignoring case.
fn mount_option(value: &str) -> Option<Capability> {
    let mut kind = None;
    let mut source = None;
    let mut target = None;
    for field in csv_fields(value) {
        let (key, value) = field.split_once('=').unwrap_or((field.as_str(), ""));
        match key.trim().to_ascii_lowercase().as_str() {
            "type" => kind = Some(value.trim().to_owned()),
            "source" | "src" => source = Some(value.to_owned()),
            "target" | "destination" | "dst" => target = Some(value.to_owned()),
            _ => {}
        }
    }
    if kind.as_deref() != Some("bind") {
        return None;
    }
    host_mount(source.as_deref()?, target.as_deref())
}

/// The fields of one CSV record: split at commas outside double quotes, `""` inside quotes
/// being one `"`.
fn csv_fields(record: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = record.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An image configuration with `user` (omitted when `None`) and `labels`.
    fn config(user: Option<&str>, labels: &[(&str, &str)]) -> Vec<u8> {
        let labels: Map<String, Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        let mut config = Map::new();
        if let Some(user) = user {
            config.insert("User".to_owned(), Value::from(user));
        }
        config.insert("Labels".to_owned(), Value::Object(labels));
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .unwrap_or_default()
    }

    /// The capabilities (with evidence) a `RUN` label asks for, for an image whose user is `app`.
    fn run_label(value: &str) -> Vec<(Capability, String)> {
        match from_config(&config(Some("app"), &[("RUN", value)])) {
            Ok(findings) => findings
                .into_iter()
                .map(|finding| {
                    assert_eq!(
                        finding.source,
                        Source::Label {
                            name: "RUN".to_owned()
                        }
                    );
                    (finding.capability, finding.evidence)
                })
                .collect(),
            Err(err) => panic!("{value:?}: {err}"),
        }
    }

    /// Only the capabilities.
    fn asked(value: &str) -> Vec<Capability> {
        run_label(value).into_iter().map(|(c, _)| c).collect()
    }

    fn cap(name: &str) -> Capability {
        Capability::CapAdd {
            name: name.to_owned(),
        }
    }

    fn host(namespace: Namespace) -> Capability {
        Capability::HostNamespace { namespace }
    }

    fn root_mount(target: &str) -> Capability {
        Capability::HostRootMount {
            target: Some(target.to_owned()),
        }
    }

    fn socket_mount(source: &str, target: &str) -> Capability {
        Capability::DockerSocketMount {
            source: source.to_owned(),
            target: Some(target.to_owned()),
        }
    }

    #[test]
    fn atomic_example_asks_for_everything_it_says() {
        let findings = run_label(
            "docker run -it --privileged --net=host --pid=host -v /:/host \
             -v /var/run/docker.sock:/var/run/docker.sock -e NAME=NAME -e IMAGE=IMAGE IMAGE \
             /usr/bin/run.sh",
        );
        assert_eq!(
            findings,
            vec![
                (Capability::Privileged, "--privileged".to_owned()),
                (host(Namespace::Network), "--net=host".to_owned()),
                (host(Namespace::Pid), "--pid=host".to_owned()),
                (root_mount("/host"), "-v /:/host".to_owned()),
                (
                    socket_mount("/var/run/docker.sock", "/var/run/docker.sock"),
                    "-v /var/run/docker.sock:/var/run/docker.sock".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn privileged_spellings() {
        for label in [
            "docker run --privileged IMAGE",
            "docker run --privileged=true IMAGE",
            "podman run --privileged=1 IMAGE",
            "/usr/bin/docker run --rm --privileged ${IMAGE}",
            "sudo docker container run --privileged IMAGE",
            "docker -H unix:///run/docker.sock run --privileged IMAGE",
            "echo hi; docker run --privileged IMAGE",
        ] {
            assert_eq!(asked(label), vec![Capability::Privileged], "{label}");
        }
        for label in [
            "docker run --privileged=false IMAGE",
            "docker run IMAGE --privileged",
            "docker exec --privileged NAME sh",
            "docker run -- IMAGE --privileged",
            "run --privileged IMAGE",
        ] {
            assert_eq!(asked(label), vec![], "{label}");
        }
    }

    #[test]
    fn added_capabilities_are_normalised() {
        assert_eq!(
            asked(
                "docker run --cap-add CAP_SYS_ADMIN --cap-add=sys_ptrace --cap-add ALL \
                 --cap-add net_admin,Cap_Net_Raw IMAGE"
            ),
            vec![
                cap("ALL"),
                cap("NET_ADMIN"),
                cap("NET_RAW"),
                cap("SYS_ADMIN"),
                cap("SYS_PTRACE"),
            ]
        );
        assert_eq!(
            asked("docker run --cap-drop ALL --cap-drop=NET_RAW IMAGE"),
            vec![]
        );
    }

    #[test]
    fn host_namespaces() {
        assert_eq!(
            asked(
                "docker run --network host --ipc=host --uts=host --userns=host \
                 --cgroupns host IMAGE"
            ),
            vec![
                host(Namespace::Network),
                host(Namespace::Ipc),
                host(Namespace::Uts),
                host(Namespace::Userns),
                host(Namespace::Cgroupns),
            ]
        );
        assert_eq!(
            asked(
                "docker run --net=bridge --network=container:db --pid=container:x \
                 --ipc=private --userns=keep-id --cgroupns=private IMAGE"
            ),
            vec![]
        );
    }

    #[test]
    fn selinux_labelling_disabled() {
        for label in [
            "docker run --security-opt label=disable IMAGE",
            "docker run --security-opt label:disable IMAGE",
            "docker run --security-opt=label=disable IMAGE",
            "podman run --security-opt 'label=disable' IMAGE",
        ] {
            assert_eq!(
                asked(label),
                vec![Capability::SelinuxLabelDisabled],
                "{label}"
            );
        }
        assert_eq!(
            asked("docker run --security-opt label=type:svirt_apache_t IMAGE"),
            vec![]
        );
        assert_eq!(
            asked("docker run --security-opt no-new-privileges IMAGE"),
            vec![]
        );
    }

    #[test]
    fn bind_mounts_of_root_and_the_docker_socket() {
        assert_eq!(
            run_label(
                "docker run --volume=/:/host:ro,rslave -v //:/h2 --volume /run/docker.sock:/s \
                 -v/var/run:/var/run IMAGE"
            ),
            vec![
                (root_mount("/h2"), "-v //:/h2".to_owned()),
                (root_mount("/host"), "--volume=/:/host:ro,rslave".to_owned()),
                (
                    socket_mount("/run/docker.sock", "/s"),
                    "--volume /run/docker.sock:/s".to_owned()
                ),
                (
                    socket_mount("/var/run", "/var/run"),
                    "-v/var/run:/var/run".to_owned()
                ),
            ]
        );
        assert_eq!(
            asked(
                "docker run --mount type=bind,source=/,target=/host \
                 --mount type=bind,src=/var/run/docker.sock,dst=/d.sock \
                 --mount 'type=bind,\"source=/var/lib/../run/\",destination=/r' IMAGE"
            ),
            vec![
                root_mount("/host"),
                socket_mount("/var/run", "/r"),
                socket_mount("/var/run/docker.sock", "/d.sock"),
            ]
        );
    }

    #[test]
    fn ordinary_mounts_are_not_findings() {
        assert_eq!(
            asked(
                "docker run -v /data:/data -v named:/x -v /anonymous -v /var/lib/app:/app \
                 -v /var/run/docker.sock.bak:/b -v /runner:/r --mount type=volume,source=/,target=/v \
                 --mount source=/,target=/w --mount type=tmpfs,target=/t IMAGE"
            ),
            vec![]
        );
    }

    #[test]
    fn short_option_groups() {
        assert_eq!(
            run_label("docker run -itv /:/host IMAGE"),
            vec![(root_mount("/host"), "-itv /:/host".to_owned())]
        );
        assert_eq!(
            run_label("docker run -dv=/:/host IMAGE"),
            vec![(root_mount("/host"), "-dv=/:/host".to_owned())]
        );
        // `-e` takes `--privileged` as its value: it is not an option here.
        assert_eq!(asked("docker run -e --privileged IMAGE"), vec![]);
        assert_eq!(
            asked("docker run -ePRIV=1 --privileged IMAGE"),
            vec![Capability::Privileged]
        );
    }

    #[test]
    fn only_options_before_the_image_count() {
        // `--name` takes a value, so `x` is not the image; `-d` takes none, so `x` would be.
        assert_eq!(
            asked("docker run --name x --privileged IMAGE"),
            vec![Capability::Privileged]
        );
        assert_eq!(asked("docker run -d x --privileged"), vec![]);
        assert_eq!(
            asked("docker run ${OPT1} --privileged $OPT2 -v /:/h ${IMAGE} --pid=host"),
            vec![Capability::Privileged, root_mount("/h")]
        );
        assert_eq!(
            asked("docker run -v /x:/x IMAGE -v /:/host --net=host"),
            vec![]
        );
    }

    #[test]
    fn quoting_and_continuations() {
        assert_eq!(
            run_label("docker run \\\n  \"--net\"=ho'st' \\\n  -v \"/\":\"/host\" IMAGE"),
            vec![
                (host(Namespace::Network), "--net=host".to_owned()),
                (root_mount("/host"), "-v /:/host".to_owned()),
            ]
        );
        // A quoted operator is part of a word; an unquoted one ends the command.
        assert_eq!(
            asked("docker run -e 'A=1;B' --pid=host IMAGE"),
            vec![host(Namespace::Pid)]
        );
        assert_eq!(
            asked("docker run -e A=1 IMAGE && docker run --ipc=host IMAGE2"),
            vec![host(Namespace::Ipc)]
        );
        assert_eq!(asked("# docker run --privileged IMAGE"), vec![]);
    }

    #[test]
    fn root_user_in_the_configuration() {
        for (user, root) in [
            (None, true),
            (Some(""), true),
            (Some("root"), true),
            (Some("0"), true),
            (Some("root:root"), true),
            (Some("0:1000"), true),
            (Some("000"), true),
            (Some(":1000"), true),
            (Some("app"), false),
            (Some("1000"), false),
            (Some("1000:0"), false),
            (Some("nobody:root"), false),
            (Some("Root"), false),
            (Some("rootless"), false),
            (Some("10"), false),
        ] {
            let findings = from_config(&config(user, &[])).unwrap_or_default();
            let expected = root.then(|| Finding {
                source: Source::ConfigUser,
                capability: Capability::RunsAsRoot,
                evidence: format!("User={}", user.unwrap_or_default()),
            });
            assert_eq!(
                findings,
                expected.into_iter().collect::<Vec<_>>(),
                "{user:?}"
            );
        }
    }

    #[test]
    fn root_user_in_a_label() {
        assert_eq!(
            run_label("docker run -u 0 --user root:root IMAGE"),
            vec![
                (Capability::RunsAsRoot, "--user root:root".to_owned()),
                (Capability::RunsAsRoot, "-u 0".to_owned()),
            ]
        );
        assert_eq!(asked("docker run --user app -u 1000:0 IMAGE"), vec![]);
    }

    #[test]
    fn labels_are_install_uninstall_and_run_in_any_case_and_the_output_is_sorted() {
        let json = config(
            None,
            &[
                (
                    "UNINSTALL",
                    "docker run --privileged -v /:/host IMAGE /uninstall.sh",
                ),
                ("install", "podman run --privileged IMAGE"),
                ("RUN", "docker run --privileged --privileged IMAGE"),
                ("maintainer", "docker run --privileged IMAGE"),
            ],
        );
        let findings = from_config(&json).unwrap_or_default();
        let label = |name: &str| Source::Label {
            name: name.to_owned(),
        };
        let summary: Vec<(Source, Capability)> = findings
            .into_iter()
            .map(|f| (f.source, f.capability))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Source::ConfigUser, Capability::RunsAsRoot),
                (label("RUN"), Capability::Privileged),
                (label("UNINSTALL"), Capability::Privileged),
                (label("UNINSTALL"), root_mount("/host")),
                (label("install"), Capability::Privileged),
            ]
        );
    }

    #[test]
    fn findings_serialise_with_their_source_and_kind() {
        let finding = Finding {
            source: Source::Label {
                name: "RUN".to_owned(),
            },
            capability: Capability::CapAdd {
                name: "SYS_ADMIN".to_owned(),
            },
            evidence: "--cap-add sys_admin".to_owned(),
        };
        assert_eq!(
            serde_json::to_value(&finding).unwrap_or_default(),
            serde_json::json!({
                "where": {"from": "label", "name": "RUN"},
                "capability": "cap-add",
                "name": "SYS_ADMIN",
                "evidence": "--cap-add sys_admin",
            })
        );
    }

    #[test]
    fn a_configuration_without_config_runs_as_root() {
        let findings = from_config(br#"{"architecture":"arm64","os":"linux","rootfs":{}}"#)
            .unwrap_or_default();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].capability, Capability::RunsAsRoot);
        let findings = from_config(br#"{"config":{"User":"app","Labels":null}}"#);
        assert_eq!(findings.ok(), Some(vec![]));
    }

    #[test]
    fn documents_that_are_not_image_configurations_are_refused() {
        let refused = |json: &str| match from_config(json.as_bytes()) {
            Err(err) => err.to_string(),
            Ok(findings) => panic!("{json} accepted: {findings:?}"),
        };
        assert!(refused("not json").contains("expected JSON"));
        assert_eq!(
            refused("[1]"),
            "invalid image configuration: the document: expected an image configuration (an \
             object with config, rootfs, architecture or os), found an array"
        );
        assert!(
            refused(r#"{"schemaVersion":2,"layers":[]}"#)
                .ends_with("found an object with keys layers, schemaVersion")
        );
        assert!(refused(r#"{"config":[]}"#).contains("config: expected an object, found an array"));
        assert!(
            refused(r#"{"config":{"User":0}}"#)
                .contains("config.User: expected a string, found the number 0")
        );
        assert!(
            refused(r#"{"config":{"Labels":"x"}}"#)
                .contains("config.Labels: expected an object, found a string")
        );
        assert!(
            refused(r#"{"config":{"Labels":{"RUN":true}}}"#)
                .contains("config.Labels.RUN: expected a string, found the boolean true")
        );
    }

    #[test]
    fn words_split_like_a_shell() {
        let words = |line: &str| -> Vec<Token> { split_words(line) };
        let w = |s: &str| Token::Word(s.to_owned());
        assert_eq!(
            words(r#"a 'b c' "d \"e\" \x" f\ g '' h|i"#),
            vec![
                w("a"),
                w("b c"),
                w(r#"d "e" \x"#),
                w("f g"),
                w(""),
                w("h"),
                Token::Operator,
                w("i"),
            ]
        );
        assert_eq!(
            words("a&&b;c"),
            vec![w("a"), Token::Operator, w("b"), Token::Operator, w("c")]
        );
        assert_eq!(words("'open"), vec![w("open")]);
        assert_eq!(words("end\\"), vec![w("end\\")]);
    }

    #[test]
    fn value_options_are_sorted_for_binary_search() {
        assert!(VALUE_OPTIONS.windows(2).all(|pair| pair[0] < pair[1]));
        let longs = SHORT_OPTIONS.iter().map(|(_, long)| long);
        for long in longs.chain(OPTION_ALIASES.iter().map(|(_, current)| current)) {
            assert!(!long.starts_with('-'), "{long}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_any_label_or_user(
            value in prop_oneof![
                any::<String>(),
                "(docker|podman) (run|container run)( +(-[a-zA-Z]{1,3}|--[a-z-]{2,12}(=[a-z/:,=]{0,8})?|[\"'\\\\;&|#$={}/:a-z]{1,6})){0,12}",
            ],
            user in any::<String>(),
        ) {
            let json = config(Some(&user), &[("RUN", &value), ("INSTALL", &value)]);
            let findings = from_config(&json);
            prop_assert!(findings.is_ok());
        }

        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = from_config(&bytes);
        }
    }
}
