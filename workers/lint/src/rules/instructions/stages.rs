//! Rules about stages and base images: `FROM` tags, platforms, aliases and registries,
//! `COPY --from` references, instructions that may appear once per stage, the last `USER`, a
//! missing `HEALTHCHECK`, and what may come before the first `FROM`.

use std::collections::{BTreeMap, BTreeSet};

use super::drop_quotes;
use crate::rules::{Failure, Meta, Registry, Rule, RuleConfig, Severity, Simple};
use crate::syntax::{BaseImage, Instruction};

pub const DL3002: Meta = Meta {
    code: "DL3002",
    severity: Severity::Warning,
    message: "Last USER should not be root",
};

pub const DL3006: Meta = Meta {
    code: "DL3006",
    severity: Severity::Warning,
    message: "Always tag the version of an image explicitly",
};

pub const DL3007: Meta = Meta {
    code: "DL3007",
    severity: Severity::Warning,
    message: "Using latest is prone to errors if the image will ever update. Pin the version \
              explicitly to a release tag",
};

pub const DL3012: Meta = Meta {
    code: "DL3012",
    severity: Severity::Error,
    message: "Multiple `HEALTHCHECK` instructions",
};

pub const DL3022: Meta = Meta {
    code: "DL3022",
    severity: Severity::Warning,
    message: "`COPY --from` should reference a previously defined `FROM` alias",
};

pub const DL3023: Meta = Meta {
    code: "DL3023",
    severity: Severity::Error,
    message: "`COPY --from` cannot reference its own `FROM` alias",
};

pub const DL3024: Meta = Meta {
    code: "DL3024",
    severity: Severity::Error,
    message: "FROM aliases (stage names) must be unique",
};

pub const DL3026: Meta = Meta {
    code: "DL3026",
    severity: Severity::Error,
    message: "Use only an allowed registry in the FROM image",
};

pub const DL3029: Meta = Meta {
    code: "DL3029",
    severity: Severity::Warning,
    message: "Do not use --platform flag with FROM",
};

pub const DL3043: Meta = Meta {
    code: "DL3043",
    severity: Severity::Error,
    message: "`ONBUILD`, `FROM` or `MAINTAINER` triggered from within `ONBUILD` instruction.",
};

pub const DL3057: Meta = Meta {
    code: "DL3057",
    severity: Severity::Ignore,
    message: "`HEALTHCHECK` instruction missing.",
};

pub const DL3061: Meta = Meta {
    code: "DL3061",
    severity: Severity::Error,
    message: "Invalid instruction order. Dockerfile must begin with `FROM`, `ARG` or comment.",
};

pub const DL3063: Meta = Meta {
    code: "DL3063",
    severity: Severity::Warning,
    message: "stage name should not be a reserved word",
};

pub const DL3065: Meta = Meta {
    code: "DL3065",
    severity: Severity::Warning,
    message: "Setting `FROM --platform` to predefined `$TARGETPLATFORM` in is redundant as this is \
              the default behavior",
};

pub const DL4003: Meta = Meta {
    code: "DL4003",
    severity: Severity::Warning,
    message: "Multiple `CMD` instructions found. If you list more than one `CMD` then only the \
              last `CMD` will take effect",
};

pub const DL4004: Meta = Meta {
    code: "DL4004",
    severity: Severity::Error,
    message: "Multiple `ENTRYPOINT` instructions found. If you list more than one `ENTRYPOINT` \
              then only the last `ENTRYPOINT` will take effect",
};

/// Registers the stage rules.
pub fn register(registry: &mut Registry, config: &RuleConfig) {
    registry.add(Box::<LastUserRoot>::default());
    registry.add(Box::<UntaggedImage>::default());
    registry.add(Box::new(Simple::new(DL3007, no_latest_tag)));
    registry.add(Box::new(OncePerStage::new(DL3012, |i| {
        matches!(i, Instruction::Healthcheck(_))
    })));
    registry.add(Box::<CopyFromKnownStage>::default());
    registry.add(Box::<CopyFromOwnStage>::default());
    registry.add(Box::<UniqueAliases>::default());
    registry.add(Box::new(AllowedRegistries::new(&config.trusted_registries)));
    registry.add(Box::new(Simple::new(DL3029, no_platform_flag)));
    registry.add(Box::new(Simple::new(DL3043, no_onbuild_trigger_of_stage)));
    registry.add(Box::<MissingHealthcheck>::default());
    registry.add(Box::<FromFirst>::default());
    registry.add(Box::new(Simple::new(DL3063, no_reserved_alias)));
    registry.add(Box::new(Simple::new(DL3065, no_target_platform)));
    registry.add(Box::new(OncePerStage::new(DL4003, |i| {
        matches!(i, Instruction::Cmd(_))
    })));
    registry.add(Box::new(OncePerStage::new(DL4004, |i| {
        matches!(i, Instruction::Entrypoint(_))
    })));
}

/// DL3007: `FROM image:latest` without a digest.
fn no_latest_tag(instruction: &Instruction) -> bool {
    match instruction {
        Instruction::From(image) => {
            image.digest.is_some() || image.tag.as_deref() != Some("latest")
        }
        _ => true,
    }
}

/// DL3029: `FROM --platform=…` other than `$BUILDPLATFORM`/`$TARGETPLATFORM` forms.
fn no_platform_flag(instruction: &Instruction) -> bool {
    match instruction {
        Instruction::From(BaseImage {
            platform: Some(platform),
            ..
        }) => platform.contains("BUILDPLATFORM") || platform.contains("TARGETPLATFORM"),
        _ => true,
    }
}

/// DL3043: `ONBUILD ONBUILD`, `ONBUILD FROM` or `ONBUILD MAINTAINER`.
fn no_onbuild_trigger_of_stage(instruction: &Instruction) -> bool {
    match instruction {
        Instruction::OnBuild(inner) => !matches!(
            **inner,
            Instruction::OnBuild(_) | Instruction::From(_) | Instruction::Maintainer(_)
        ),
        _ => true,
    }
}

/// DL3063: a stage named `scratch` or `context`.
fn no_reserved_alias(instruction: &Instruction) -> bool {
    match instruction {
        Instruction::From(BaseImage {
            alias: Some(alias), ..
        }) => alias != "scratch" && alias != "context",
        _ => true,
    }
}

/// DL3065: `FROM --platform=$TARGETPLATFORM`, which is the default anyway.
fn no_target_platform(instruction: &Instruction) -> bool {
    match instruction {
        Instruction::From(BaseImage {
            platform: Some(platform),
            ..
        }) => platform != "$TARGETPLATFORM" && platform != "${TARGETPLATFORM}",
        _ => true,
    }
}

/// DL3012, DL4003, DL4004: an instruction that only takes effect once per stage (`HEALTHCHECK`,
/// `CMD`, `ENTRYPOINT`) given again in the same stage; each repeat is reported.
struct OncePerStage {
    meta: Meta,
    matches: fn(&Instruction) -> bool,
    seen: bool,
}

impl OncePerStage {
    fn new(meta: Meta, matches: fn(&Instruction) -> bool) -> OncePerStage {
        OncePerStage {
            meta,
            matches,
            seen: false,
        }
    }
}

impl Rule for OncePerStage {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        if matches!(instruction, Instruction::From(_)) {
            self.seen = false;
        } else if (self.matches)(instruction) {
            if self.seen {
                out.push(self.meta.at(line));
            }
            self.seen = true;
        }
    }
}

/// DL3002: the last `USER` of a stage is `root` (or uid 0); reported at that `USER`.
#[derive(Default)]
struct LastUserRoot {
    /// The line of the current stage's `FROM`, once there is one.
    stage: Option<u32>,
    /// For each stage (by `FROM` line) whose last `USER` so far is root: that `USER`'s line.
    root_users: BTreeMap<u32, u32>,
}

impl Rule for LastUserRoot {
    fn check(&mut self, line: u32, instruction: &Instruction, _out: &mut Vec<Failure>) {
        match instruction {
            Instruction::From(_) => self.stage = Some(line),
            Instruction::User(user) => {
                let Some(stage) = self.stage else {
                    return;
                };
                let is_root = user == "root"
                    || user == "0"
                    || user.starts_with("root:")
                    || user.starts_with("0:");
                if is_root {
                    self.root_users.insert(stage, line);
                } else {
                    self.root_users.remove(&stage);
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<Failure>) {
        out.extend(self.root_users.values().map(|line| DL3002.at(*line)));
    }
}

/// DL3006: `FROM image` without a tag or digest, unless the image is `scratch`, a variable, or an
/// earlier stage's alias.
#[derive(Default)]
struct UntaggedImage {
    aliases: BTreeSet<String>,
}

impl Rule for UntaggedImage {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        let Instruction::From(image) = instruction else {
            return;
        };
        let untagged = image.name != "scratch"
            && image.digest.is_none()
            && image.tag.is_none()
            && !image.name.starts_with('$')
            && !self.aliases.contains(&image.name);
        if untagged {
            out.push(DL3006.at(line));
        }
        if let Some(alias) = &image.alias {
            self.aliases.insert(alias.clone());
        }
    }
}

/// DL3022: `COPY --from=X` where X is neither an earlier stage's alias, nor a stage index below
/// the number of stages so far, nor an image reference (containing `:`).
#[derive(Default)]
struct CopyFromKnownStage {
    stages: usize,
    aliases: BTreeSet<String>,
}

/// The number that `text` starts with, if it starts with a digit (as Haskell's `decimal` reads).
fn leading_number(text: &str) -> Option<u64> {
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    Some(text[..digits].parse::<u64>().unwrap_or(u64::MAX))
}

impl Rule for CopyFromKnownStage {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        match instruction {
            Instruction::From(image) => {
                self.stages += 1;
                if let Some(alias) = &image.alias {
                    self.aliases.insert(alias.clone());
                }
            }
            Instruction::Copy(copy) => {
                let Some(from) = &copy.from else {
                    return;
                };
                let known = drop_quotes(from).contains(':')
                    || self.aliases.contains(from)
                    || leading_number(from).is_some_and(|n| n < self.stages as u64);
                if !known {
                    out.push(DL3022.at(line));
                }
            }
            _ => {}
        }
    }
}

/// DL3023: `COPY --from=X` inside the stage whose alias is X.
#[derive(Default)]
struct CopyFromOwnStage {
    /// The alias of the current stage (`Some(None)` for a stage without one).
    current: Option<Option<String>>,
}

impl Rule for CopyFromOwnStage {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        match instruction {
            Instruction::From(image) => self.current = Some(image.alias.clone()),
            Instruction::Copy(copy) => {
                if let (Some(from), Some(Some(alias))) = (&copy.from, &self.current)
                    && from == alias
                {
                    out.push(DL3023.at(line));
                }
            }
            _ => {}
        }
    }
}

/// DL3024: a stage alias used by an earlier stage.
#[derive(Default)]
struct UniqueAliases {
    aliases: BTreeSet<String>,
}

impl Rule for UniqueAliases {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        if let Instruction::From(BaseImage {
            alias: Some(alias), ..
        }) = instruction
            && !self.aliases.insert(alias.clone())
        {
            out.push(DL3024.at(line));
        }
    }
}

/// DL3026: with `trusted-registries` configured, a `FROM` image, `COPY --from` image or
/// `RUN --mount=type=bind|cache,from=` image from another registry (images without a registry
/// come from Docker Hub; earlier stages' aliases are always fine).
struct AllowedRegistries {
    allowed: Vec<String>,
    /// The aliases of the stages so far (`None` for stages without one).
    aliases: BTreeSet<Option<String>>,
}

impl AllowedRegistries {
    fn new(allowed: &[String]) -> AllowedRegistries {
        AllowedRegistries {
            allowed: allowed.to_vec(),
            aliases: BTreeSet::new(),
        }
    }

    /// Whether the registry matches an allowed pattern (`*`, `*.suffix`, `prefix*` or exact).
    fn registry_allowed(&self, registry: &str) -> bool {
        self.allowed.iter().any(|pattern| {
            if pattern == "*" {
                true
            } else if let Some(suffix) = pattern.strip_prefix('*') {
                registry.ends_with(suffix)
            } else if let Some(prefix) = pattern.strip_suffix('*') {
                registry.starts_with(prefix)
            } else {
                registry == pattern
            }
        })
    }

    /// Whether an image (registry, name) may be used.
    fn image_ok(&self, registry: Option<&str>, name: &str) -> bool {
        if self.allowed.is_empty() || self.aliases.contains(&Some(name.to_string())) {
            return true;
        }
        match registry {
            Some(registry) => self.registry_allowed(registry),
            None => {
                name == "scratch"
                    || self.registry_allowed("docker.io")
                    || self.registry_allowed("hub.docker.com")
            }
        }
    }
}

/// Splits an image reference as language-docker reads a bare string: the first `/`-separated
/// part is the registry when it contains a `.`.
fn split_registry(image: &str) -> (Option<&str>, &str) {
    if let Some((first, rest)) = image.split_once('/')
        && first.contains('.')
    {
        // language-docker drops one trailing `/` when splitting.
        return (Some(first), rest.strip_suffix('/').unwrap_or(rest));
    }
    (None, image)
}

/// The `from=` image of a `bind` or `cache` mount (`scratch` when not given).
fn mount_image(raw: &str) -> &str {
    raw.split(',')
        .filter_map(|item| item.split_once('='))
        .find(|(key, _)| *key == "from")
        .map_or("scratch", |(_, value)| drop_quotes(value))
}

impl Rule for AllowedRegistries {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        let ok = match instruction {
            Instruction::From(image) => {
                let ok = self.image_ok(image.registry.as_deref(), &image.name);
                self.aliases.insert(image.alias.clone());
                ok
            }
            Instruction::Copy(copy) => copy.from.as_deref().is_none_or(|from| {
                let (registry, name) = split_registry(from);
                self.image_ok(registry, name)
            }),
            Instruction::Run(run) => run
                .mounts
                .iter()
                .filter(|mount| mount.kind == "bind" || mount.kind == "cache")
                .all(|mount| {
                    let (registry, name) = split_registry(mount_image(&mount.raw));
                    self.image_ok(registry, name)
                }),
            _ => true,
        };
        if !ok {
            out.push(DL3026.at(line));
        }
    }
}

/// A stage as DL3057 tracks it: the image it is built from, its name (alias, or the image name)
/// and its `FROM` line.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct StageId {
    source: String,
    name: String,
    line: u32,
}

/// DL3057 (off by default): a stage without `HEALTHCHECK`, reported at its `FROM`. As hadolint
/// does, a stage built from a stage with a `HEALTHCHECK` has one, and a `HEALTHCHECK` also counts
/// for the stages the current one is built from, recursively.
#[derive(Default)]
struct MissingHealthcheck {
    current: Option<StageId>,
    good: BTreeSet<StageId>,
    bad: BTreeSet<StageId>,
}

/// The stages in `bad` that `stage` is built from, directly or through each other.
fn ancestors(bad: &BTreeSet<StageId>, stage: &StageId) -> BTreeSet<StageId> {
    let parents: BTreeSet<StageId> = bad
        .iter()
        .filter(|candidate| candidate.name == stage.source)
        .cloned()
        .collect();
    if parents.is_empty() {
        return parents;
    }
    let rest: BTreeSet<StageId> = bad.difference(&parents).cloned().collect();
    let mut all = parents.clone();
    for parent in &parents {
        all.extend(ancestors(&rest, parent));
    }
    all
}

impl Rule for MissingHealthcheck {
    fn check(&mut self, line: u32, instruction: &Instruction, _out: &mut Vec<Failure>) {
        match instruction {
            Instruction::From(image) => {
                let stage = StageId {
                    source: image.name.clone(),
                    name: image.alias.clone().unwrap_or_else(|| image.name.clone()),
                    line,
                };
                let inherits = self.current.is_some()
                    && self.good.iter().any(|good| good.name == stage.source);
                if inherits {
                    self.good.insert(stage.clone());
                } else {
                    self.bad.insert(stage.clone());
                }
                self.current = Some(stage);
            }
            Instruction::Healthcheck(_) => {
                let Some(current) = &self.current else {
                    return;
                };
                let now_good = ancestors(&self.bad, current);
                self.bad
                    .retain(|stage| !now_good.contains(stage) && stage != current);
                self.good.extend(now_good);
                self.good.insert(current.clone());
            }
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<Failure>) {
        out.extend(self.bad.iter().map(|stage| DL3057.at(stage.line)));
    }
}

/// DL3061: an instruction other than `ARG`, a comment or a parser directive before the first
/// `FROM`.
#[derive(Default)]
struct FromFirst {
    seen_from: bool,
}

impl Rule for FromFirst {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        match instruction {
            Instruction::From(_) => self.seen_from = true,
            Instruction::Comment(_) | Instruction::Pragma(_) | Instruction::Arg { .. } => {}
            _ if !self.seen_from => out.push(DL3061.at(line)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_lines, lines_with};
    use super::*;

    #[test]
    fn dl3002_last_user_root() {
        assert_lines("DL3002", "FROM a:1\nUSER root\n", &[2]);
        assert_lines("DL3002", "FROM a:1\nUSER 0:0\n", &[2]);
        assert_lines("DL3002", "FROM a:1\nUSER root:root\nRUN x\n", &[2]);
        assert_lines("DL3002", "FROM a:1\nUSER root\nUSER app\n", &[]);
        assert_lines("DL3002", "FROM a:1\nUSER app\nUSER root\n", &[3]);
        assert_lines("DL3002", "FROM a:1\nUSER rootless\n", &[]);
        // Only the last USER of each stage matters.
        let text = "FROM a:1\nUSER root\nFROM b:1\nUSER app\nFROM c:1\nUSER 0\n";
        assert_lines("DL3002", text, &[2, 6]);
        assert_lines("DL3002", "FROM a:1\nRUN x\n", &[]);
    }

    #[test]
    fn dl3006_untagged() {
        assert_lines("DL3006", "FROM debian\n", &[1]);
        assert_lines("DL3006", "FROM debian AS builder\n", &[1]);
        assert_lines("DL3006", "FROM quay.io/org/img\n", &[1]);
        for ok in [
            "FROM ruby@sha256:f1dbca0f5dbc9",
            "FROM ruby:2",
            "FROM ${VALUE}",
            "FROM $IMAGE",
            "FROM scratch",
            "FROM localhost.lan/img:${TAG}",
        ] {
            assert_lines("DL3006", ok, &[]);
        }
        let text = "FROM golang:1.9 AS build\nRUN foo\nFROM build as unit-test\nFROM alpine:3.7\n";
        assert_lines("DL3006", text, &[]);
        let text = "FROM golang:1.9 AS build\nFROM node as unit-test\nFROM alpine:3.7\n";
        assert_lines("DL3006", text, &[2]);
        // A stage cannot refer to its own alias; a later alias does not count either.
        assert_lines("DL3006", "FROM foo AS foo\n", &[1]);
        assert_lines("DL3006", "FROM build\nFROM a:1 AS build\n", &[1]);
    }

    #[test]
    fn dl3007_latest() {
        assert_lines("DL3007", "FROM debian:latest\n", &[1]);
        assert_lines("DL3007", "FROM debian:latest AS builder\n", &[1]);
        assert_lines("DL3007", "FROM debian:jessie\n", &[]);
        assert_lines("DL3007", "FROM debian\n", &[]);
        assert_lines(
            "DL3007",
            "FROM hub.docker.io/debian@sha256:7959ed6f7e35\n",
            &[],
        );
        assert_lines(
            "DL3007",
            "FROM hub.docker.io/debian:latest@sha256:7959ed6f7e35\n",
            &[],
        );
    }

    #[test]
    fn dl3012_dl4003_dl4004_once_per_stage() {
        let text = "FROM a:1\nHEALTHCHECK CMD /a\nHEALTHCHECK NONE\nFROM b:1\nHEALTHCHECK CMD /b\n";
        assert_lines("DL3012", text, &[3]);
        let text = "FROM a:1\nCMD [\"a\"]\nRUN x\nCMD b\nCMD c\nFROM b:1\nCMD [\"b\"]\n";
        assert_lines("DL4003", text, &[4, 5]);
        let text = "FROM a:1\nENTRYPOINT a\nFROM b:1\nENTRYPOINT b\nENTRYPOINT [\"c\"]\n";
        assert_lines("DL4004", text, &[5]);
        assert_lines("DL4004", "FROM a:1\nENTRYPOINT a\nCMD b\n", &[]);
    }

    #[test]
    fn dl3022_copy_from_known_stage() {
        let text = "FROM scratch AS build\nFROM a:1\nCOPY --from=build /x /y\n";
        assert_lines("DL3022", text, &[]);
        assert_lines("DL3022", "FROM a:1\nCOPY --from=build /x /y\n", &[2]);
        assert_lines("DL3022", "FROM a:1\nCOPY --from=nginx:latest /x /y\n", &[]);
        assert_lines("DL3022", "FROM a:1\nFROM b:1\nCOPY --from=0 /x /y\n", &[]);
        assert_lines("DL3022", "FROM a:1\nCOPY --from=1 /x /y\n", &[2]);
        assert_lines("DL3022", "FROM a:1\nCOPY --from=0 /x /y\n", &[]);
        assert_lines("DL3022", "COPY --from=0 bar .\n", &[1]);
        // A later alias does not count.
        let text = "FROM a:1\nCOPY --from=later /x /y\nFROM b:1 AS later\n";
        assert_lines("DL3022", text, &[2]);
    }

    #[test]
    fn dl3023_copy_from_own_stage() {
        assert_lines("DL3023", "FROM a:1 AS foo\nCOPY --from=foo bar .\n", &[2]);
        let text = "FROM a:1 AS foo\nFROM b:1 AS bar\nCOPY --from=foo x .\n";
        assert_lines("DL3023", text, &[]);
        assert_lines("DL3023", "FROM a:1\nCOPY --from=a x .\n", &[]);
    }

    #[test]
    fn dl3024_unique_aliases() {
        let text = "FROM a:1 AS foo\nFROM b:1 AS foo\nFROM c:1 AS bar\nFROM d:1 AS foo\n";
        assert_lines("DL3024", text, &[2, 4]);
        assert_lines("DL3024", "FROM a:1 AS foo\nFROM b:1 AS Foo\n", &[]);
    }

    #[test]
    fn dl3026_allowed_registries() {
        let config = RuleConfig {
            trusted_registries: vec!["docker.io".to_string(), "*.example.com".to_string()],
            ..RuleConfig::default()
        };
        let lines = |text: &str| lines_with("DL3026", text, &config);
        assert_eq!(lines("FROM random.com/debian:1\n"), [1]);
        assert_eq!(lines("FROM debian:1\nFROM scratch\n"), Vec::<u32>::new());
        assert_eq!(lines("FROM reg.example.com/x:1\n"), Vec::<u32>::new());
        assert_eq!(
            lines("FROM random.com/x:1 AS base\nFROM base\n"),
            [1],
            "an earlier stage alias is fine"
        );
        assert_eq!(lines("FROM a:1\nCOPY --from=quay.io/x:1 / /\n"), [2]);
        assert_eq!(
            lines("FROM a:1\nCOPY --from=nginx:1 /a /\n"),
            Vec::<u32>::new()
        );
        assert_eq!(
            lines("FROM a:1\nRUN --mount=type=cache,target=/c,from=ghcr.io/x make\n"),
            [2]
        );
        assert_eq!(
            lines("FROM a:1\nRUN --mount=type=cache,target=/c make\n"),
            Vec::<u32>::new()
        );
        let trusted = RuleConfig {
            trusted_registries: vec!["trusted.com".to_string()],
            ..RuleConfig::default()
        };
        let text = "FROM ubuntu:18.04 AS b1\nFROM zemanlx/ubuntu:18.04 AS b2\n\
                    FROM docker.io/zemanlx/ubuntu:18.04 AS b3\n";
        assert_eq!(lines_with("DL3026", text, &trusted), [1, 2, 3]);
        let text = "RUN --mount=type=bind,from=untrusted.com/r/i:t,target=/foo foobar\n";
        assert_eq!(lines_with("DL3026", text, &trusted), [1]);
        let text = "RUN --mount=type=bind,from=trusted.com/r/i:t,target=/foo foobar\n";
        assert_eq!(lines_with("DL3026", text, &trusted), Vec::<u32>::new());
        // Without configured registries, anything goes.
        assert_lines("DL3026", "FROM random.com/debian:1\n", &[]);
        // Only Docker Hub allowed: no registry means Docker Hub.
        let only = RuleConfig {
            trusted_registries: vec!["my.registry*".to_string()],
            ..RuleConfig::default()
        };
        assert_eq!(lines_with("DL3026", "FROM debian:1\n", &only), [1]);
        assert_eq!(
            lines_with("DL3026", "FROM my.registry.io/debian:1\n", &only),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn dl3029_dl3065_platform() {
        assert_lines("DL3029", "FROM --platform=linux/amd64 debian:1\n", &[1]);
        assert_lines("DL3029", "FROM --platform=$BUILDPLATFORM debian:1\n", &[]);
        assert_lines(
            "DL3029",
            "FROM --platform=${TARGETPLATFORM} debian:1\n",
            &[],
        );
        assert_lines("DL3029", "FROM debian:1\n", &[]);
        assert_lines("DL3065", "FROM --platform=$TARGETPLATFORM debian:1\n", &[1]);
        assert_lines(
            "DL3065",
            "FROM --platform=${TARGETPLATFORM} debian:1\n",
            &[1],
        );
        assert_lines("DL3065", "FROM --platform=$BUILDPLATFORM debian:1\n", &[]);
    }

    #[test]
    fn dl3043_onbuild_triggers() {
        assert_lines("DL3043", "FROM a:1\nONBUILD FROM debian:1\n", &[2]);
        assert_lines("DL3043", "FROM a:1\nONBUILD MAINTAINER me\n", &[2]);
        assert_lines("DL3043", "FROM a:1\nONBUILD RUN x\n", &[]);
    }

    #[test]
    fn dl3057_missing_healthcheck() {
        assert_lines("DL3057", "FROM a:1\nRUN x\n", &[1]);
        assert_lines("DL3057", "FROM a:1\nHEALTHCHECK CMD /x\n", &[]);
        assert_lines("DL3057", "FROM a:1\nHEALTHCHECK NONE\n", &[]);
        // Built from a stage with a HEALTHCHECK.
        let text = "FROM a:1 AS base\nHEALTHCHECK CMD /x\nFROM base\n";
        assert_lines("DL3057", text, &[]);
        // A HEALTHCHECK in a later stage covers the stage it is built from.
        let text = "FROM a:1 AS base\nFROM base AS app\nHEALTHCHECK CMD /x\nFROM b:1\n";
        assert_lines("DL3057", text, &[4]);
        let text = "FROM a:1 AS one\nFROM b:1 AS two\nHEALTHCHECK CMD /x\n";
        assert_lines("DL3057", text, &[1]);
        // A HEALTHCHECK covers its own ancestry only, not a sibling branch.
        let text = "FROM scratch AS base1\nFROM base1 AS base2\nFROM base2 AS base3.1\n\
                    FROM base2 AS base3.2\n\nFROM base3.1 AS end1\nHEALTHCHECK NONE\n\n\
                    FROM base3.2 AS end2\n";
        assert_lines("DL3057", text, &[4, 9]);
    }

    #[test]
    fn dl3061_from_first() {
        assert_lines("DL3061", "# c\nARG V=1\nFROM a:${V}\nRUN x\n", &[]);
        assert_lines("DL3061", "# syntax=docker/dockerfile:1\nFROM a:1\n", &[]);
        assert_lines("DL3061", "LABEL a=b\nRUN x\nFROM a:1\nRUN y\n", &[1, 2]);
    }

    #[test]
    fn dl3063_reserved_alias() {
        assert_lines("DL3063", "FROM a:1 AS scratch\n", &[1]);
        assert_lines("DL3063", "FROM a:1 AS context\n", &[1]);
        assert_lines("DL3063", "FROM a:1 AS builder\n", &[]);
    }

    #[test]
    fn registry_split_and_mount_image() {
        assert_eq!(split_registry("quay.io/a/b:1"), (Some("quay.io"), "a/b:1"));
        assert_eq!(split_registry("library/a:1"), (None, "library/a:1"));
        assert_eq!(split_registry("nginx:1.2"), (None, "nginx:1.2"));
        assert_eq!(mount_image("type=bind,from=\"x.io/y\",target=/t"), "x.io/y");
        assert_eq!(mount_image("type=cache,target=/t"), "scratch");
    }
}
