//! When a build may reuse the daemon's layers, and how the classic builder's cache is made safe.
//!
//! - **Why the job exists decides first** ([`Reuse::for_cause`]). A rebuild asked for because a
//!   package was updated in a tracked repository, or by the schedule, exists to pick up what
//!   changed *outside* its inputs (commit, Dockerfile, parents, build args): a cached
//!   `RUN apt-get install` layer, or the registry's image of the same inputs, would defeat it.
//!   Such a job builds every layer afresh, and only its own earlier attempt counts as done.
//! - **BuildKit** keys each `RUN` step on its network mode itself (checked by
//!   `docker/tests/docker_engine.rs`): its cache is used as is.
//! - **The classic builder** keys a `RUN` step on its parent layer and its container config
//!   (command, environment, labels…), not on the network mode: a layer built with network `host`
//!   would serve a later build with network `none` (checked on dockerd 20.10). A declared build
//!   argument with a value is part of that key (the step's command becomes
//!   `|1 NAME=value /bin/sh -c …`), so [`decide`] declares [`NETWORK_ARG`] with the build's
//!   network mode right after every `FROM`: every `RUN` of the stage is then keyed on it. Each
//!   stage gains one `ARG` step (a metadata-only commit, itself cached).
//! - What could undo that key turns the cache off for the build instead (the build still runs):
//!   the name [`NETWORK_ARG`] anywhere in the Dockerfile or the build arguments (a later `ARG` or
//!   `ENV` of it would re-key a `host` build's layers as `none`), in a base image's environment
//!   (an `ENV` hides a build argument of the same name from the key), or a base image's
//!   `ONBUILD RUN` trigger (triggers run as part of `FROM`, before the declaration).

use std::collections::BTreeMap;

use slipway_common::Cause;
use slipway_lint::parser;
use slipway_lint::syntax::Instruction;

use crate::features::Builder;

/// The build argument that carries the network mode into the classic builder's cache key.
pub const NETWORK_ARG: &str = "SLIPWAY_NETWORK";

/// How much a job may reuse of earlier builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Earlier builds of the same inputs stand: the registry's image with the same content key
    /// is the result, and layers come from the cache where that is safe.
    Earlier,
    /// The job exists to pick up what changed outside its inputs: no cached layer, and only an
    /// earlier attempt of this same job counts as done.
    Fresh,
}

impl Reuse {
    /// What a job of `cause` may reuse: [`Reuse::Fresh`] for a package update and the scheduled
    /// rebuild, [`Reuse::Earlier`] for everything else (a new commit, an index change, a parent
    /// rebuilt — its new digest already changes every layer after `FROM` — or a user's request).
    pub fn for_cause(cause: &Cause) -> Reuse {
        match cause {
            Cause::PackageUpdate(_) | Cause::Schedule => Reuse::Fresh,
            Cause::User | Cause::GitChange | Cause::IndexChange | Cause::ParentRebuilt(_) => {
                Reuse::Earlier
            }
        }
    }
}

/// What one base image of the build hands down to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parent {
    /// The image as written in the `FROM`.
    pub name: String,
    /// Its `ONBUILD` triggers.
    pub onbuild: Vec<String>,
    /// Its environment, `NAME=value` each.
    pub env: Vec<String>,
}

/// Everything [`decide`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct CacheInputs<'a> {
    /// `[build] cache`.
    pub enabled: bool,
    /// From the job's cause.
    pub reuse: Reuse,
    /// The builder chosen for the Dockerfile.
    pub builder: Builder,
    /// The Dockerfile as it will be built (after any other rewriting).
    pub dockerfile: &'a str,
    /// The entry's build arguments.
    pub build_args: &'a BTreeMap<String, String>,
    /// The base images.
    pub parents: &'a [Parent],
    /// The network mode of the build's `RUN` steps (`none`, `host`).
    pub network: &'a str,
}

/// How a build uses the layer cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerCache {
    /// Every step is built afresh (`nocache`), for this reason.
    Off(String),
    /// BuildKit's own cache, which keys each `RUN` on its network mode.
    BuildKit,
    /// The classic builder's cache, with this Dockerfile: the original with [`NETWORK_ARG`]
    /// declared after every `FROM`.
    ClassicKeyedOnNetwork(String),
}

impl LayerCache {
    /// Whether the build runs with `nocache`.
    pub fn no_cache(&self) -> bool {
        matches!(self, LayerCache::Off(_))
    }

    /// One line for the job's log.
    pub fn describe(&self) -> String {
        match self {
            LayerCache::Off(reason) => format!("layer cache off: {reason}"),
            LayerCache::BuildKit => {
                "layer cache on (BuildKit keys each RUN on its network mode)".to_owned()
            }
            LayerCache::ClassicKeyedOnNetwork(_) => format!(
                "layer cache on, keyed on the network mode: ARG {NETWORK_ARG} declared after each FROM"
            ),
        }
    }
}

/// The layer cache of one build (see the module documentation for the rules).
pub fn decide(inputs: &CacheInputs<'_>) -> LayerCache {
    if !inputs.enabled {
        return LayerCache::Off("build.cache is false".to_owned());
    }
    if inputs.reuse == Reuse::Fresh {
        return LayerCache::Off(
            "this rebuild is for a package update or the schedule, so every layer is built afresh"
                .to_owned(),
        );
    }
    if inputs.builder == Builder::BuildKit {
        return LayerCache::BuildKit;
    }
    if inputs.dockerfile.contains(NETWORK_ARG) {
        return LayerCache::Off(format!(
            "the Dockerfile mentions {NETWORK_ARG}, the name Slipway keys the classic builder's cache on"
        ));
    }
    if inputs.build_args.contains_key(NETWORK_ARG) {
        return LayerCache::Off(format!(
            "the build arguments set {NETWORK_ARG}, the name Slipway keys the classic builder's cache on"
        ));
    }
    for parent in inputs.parents {
        if parent
            .env
            .iter()
            .any(|pair| pair.split_once('=').map_or(pair.as_str(), |(name, _)| name) == NETWORK_ARG)
        {
            return LayerCache::Off(format!(
                "the base image {} sets {NETWORK_ARG} in its environment, which would hide the cache key",
                parent.name
            ));
        }
        if parent.onbuild.iter().any(|trigger| runs_a_command(trigger)) {
            return LayerCache::Off(format!(
                "the base image {} has an ONBUILD RUN trigger, which runs before the cache key is declared",
                parent.name
            ));
        }
    }
    match key_on_network(inputs.dockerfile, inputs.network) {
        Some(keyed) => LayerCache::ClassicKeyedOnNetwork(keyed),
        None => LayerCache::Off("the Dockerfile does not parse".to_owned()),
    }
}

/// Whether an `ONBUILD` trigger runs a command (`RUN …`, in any case).
fn runs_a_command(trigger: &str) -> bool {
    trigger
        .split_whitespace()
        .next()
        .is_some_and(|keyword| keyword.eq_ignore_ascii_case("RUN"))
}

/// `dockerfile` with `ARG SLIPWAY_NETWORK=<network>` on a line of its own after every `FROM`
/// instruction (after its last continuation line); `None` when it does not parse.
fn key_on_network(dockerfile: &str, network: &str) -> Option<String> {
    let parsed = parser::parse(dockerfile).ok()?;
    let after: Vec<u32> = parsed
        .instructions
        .iter()
        .filter(|located| matches!(located.instruction, Instruction::From(_)))
        .map(|located| located.end_line)
        .collect();
    let declaration = format!("ARG {NETWORK_ARG}={network}\n");
    let mut keyed = String::with_capacity(dockerfile.len() + after.len() * declaration.len());
    for (index, line) in dockerfile.split_inclusive('\n').enumerate() {
        keyed.push_str(line);
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if after.contains(&number) {
            if !line.ends_with('\n') {
                keyed.push('\n');
            }
            keyed.push_str(&declaration);
        }
    }
    Some(keyed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(
        dockerfile: &'a str,
        build_args: &'a BTreeMap<String, String>,
        parents: &'a [Parent],
    ) -> CacheInputs<'a> {
        CacheInputs {
            enabled: true,
            reuse: Reuse::Earlier,
            builder: Builder::Classic,
            dockerfile,
            build_args,
            parents,
            network: "none",
        }
    }

    #[test]
    fn package_updates_and_the_schedule_build_afresh_and_other_causes_reuse() {
        assert_eq!(
            Reuse::for_cause(&Cause::PackageUpdate("openssl".into())),
            Reuse::Fresh
        );
        assert_eq!(Reuse::for_cause(&Cause::Schedule), Reuse::Fresh);
        for cause in [
            Cause::User,
            Cause::GitChange,
            Cause::IndexChange,
            Cause::ParentRebuilt("r/base:1".into()),
        ] {
            assert_eq!(Reuse::for_cause(&cause), Reuse::Earlier, "{cause}");
        }
        let args = BTreeMap::new();
        let mut fresh = inputs("FROM a\nRUN x\n", &args, &[]);
        fresh.reuse = Reuse::Fresh;
        assert!(decide(&fresh).no_cache());
        fresh.builder = Builder::BuildKit;
        assert!(decide(&fresh).no_cache(), "BuildKit too");
        let mut off = inputs("FROM a\nRUN x\n", &args, &[]);
        off.enabled = false;
        assert_eq!(decide(&off), LayerCache::Off("build.cache is false".into()));
    }

    #[test]
    fn buildkit_uses_its_own_cache_unchanged() {
        let args = BTreeMap::new();
        let mut buildkit = inputs("FROM a\nRUN x\n", &args, &[]);
        buildkit.builder = Builder::BuildKit;
        assert_eq!(decide(&buildkit), LayerCache::BuildKit);
        assert!(!decide(&buildkit).no_cache());
    }

    #[test]
    fn the_classic_builder_gets_the_network_declared_after_every_from() {
        let args = BTreeMap::new();
        let dockerfile =
            "# escape=\\\nFROM a \\\n  AS build\nRUN make\nFROM b\nCOPY --from=build /x /x\nFROM c";
        let LayerCache::ClassicKeyedOnNetwork(keyed) = decide(&inputs(dockerfile, &args, &[]))
        else {
            panic!("the classic builder's cache is on, keyed")
        };
        assert_eq!(
            keyed,
            "# escape=\\\nFROM a \\\n  AS build\nARG SLIPWAY_NETWORK=none\nRUN make\nFROM b\nARG SLIPWAY_NETWORK=none\nCOPY --from=build /x /x\nFROM c\nARG SLIPWAY_NETWORK=none\n"
        );
        let mut host = inputs("FROM a\r\nRUN make\r\n", &args, &[]);
        host.network = "host";
        assert_eq!(
            decide(&host),
            LayerCache::ClassicKeyedOnNetwork(
                "FROM a\r\nARG SLIPWAY_NETWORK=host\nRUN make\r\n".into()
            )
        );
    }

    #[test]
    fn whatever_could_undo_the_key_turns_the_cache_off() {
        let none = BTreeMap::new();
        let off = |layer: LayerCache, says: &str| match layer {
            LayerCache::Off(reason) => assert!(reason.contains(says), "{reason}"),
            other => panic!("expected the cache off ({says}), got {other:?}"),
        };
        // A later declaration of the name in the Dockerfile (ARG or ENV, any stage).
        off(
            decide(&inputs(
                "FROM a\nARG SLIPWAY_NETWORK=host\nRUN x\n",
                &none,
                &[],
            )),
            "the Dockerfile mentions",
        );
        off(
            decide(&inputs("FROM a\nENV SLIPWAY_NETWORK host\n", &none, &[])),
            "the Dockerfile mentions",
        );
        // A build argument of the name.
        let args = BTreeMap::from([(NETWORK_ARG.to_owned(), "host".to_owned())]);
        off(
            decide(&inputs("FROM a\nRUN x\n", &args, &[])),
            "the build arguments",
        );
        // A base image whose environment holds it, or whose ONBUILD runs a command.
        let env = [Parent {
            name: "r/base:1".into(),
            onbuild: Vec::new(),
            env: vec!["PATH=/bin".into(), "SLIPWAY_NETWORK=host".into()],
        }];
        off(
            decide(&inputs("FROM r/base:1\nRUN x\n", &none, &env)),
            "r/base:1 sets SLIPWAY_NETWORK",
        );
        let triggers = [Parent {
            name: "r/base:1".into(),
            onbuild: vec!["COPY . /src".into(), "run make".into()],
            env: vec!["SLIPWAY_NETWORKS=1".into()],
        }];
        off(
            decide(&inputs("FROM r/base:1\nRUN x\n", &none, &triggers)),
            "ONBUILD RUN",
        );
        // A COPY trigger and a longer variable name are harmless.
        let harmless = [Parent {
            onbuild: vec!["COPY . /src".into()],
            ..triggers[0].clone()
        }];
        assert!(!decide(&inputs("FROM r/base:1\nRUN x\n", &none, &harmless)).no_cache());
        // A file that does not parse is never built from the cache.
        off(
            decide(&inputs("FROM a\nRUN <<EOF\nunterminated\n", &none, &[])),
            "does not parse",
        );
    }
}
