//! The images a Dockerfile builds on, as dockerd's classic builder resolves them: every `FROM`
//! and `COPY --from=` that names an image rather than a stage. Pure, no I/O.
//!
//! - `FROM` references are expanded ([`crate::substitution::expand`], with the Dockerfile's escape
//!   character) with the global `ARG`s: those before the first `FROM`, each default expanded
//!   with the ones before it, overridden by the build arguments. An `ARG` without a default or a
//!   build argument is unset. The proxy variables Docker predefines (`HTTP_PROXY`, `no_proxy`…)
//!   are visible when given as build arguments, declared or not.
//! - A `FROM` naming an earlier stage (by its `AS` name, case-insensitively) or `scratch` is not
//!   an image.
//! - `COPY --from=` is taken as written: neither the classic builder nor BuildKit expands it (the
//!   first fails on `$` as an invalid reference, the second says "variable expansion is not
//!   supported for --from"). A number is a stage index, a stage name is a stage, anything else
//!   an image.

use std::collections::BTreeMap;

use crate::substitution::{SubstitutionError, expand};
use crate::syntax::{BaseImage, Dockerfile, Instruction};

/// The build arguments Docker defines without an `ARG`: the proxy variables, passed to every
/// build (and which ShellCheck is told are set).
pub const PREDEFINED_ARGS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// Why the images a Dockerfile builds on cannot be known (each also fails the build in Docker).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseImageError {
    /// A global `ARG` default or a `FROM` reference does not expand.
    #[error("line {line}: cannot expand {keyword} {text}: {error}")]
    Substitution {
        /// The instruction's line.
        line: u32,
        /// `ARG` or `FROM`.
        keyword: &'static str,
        /// The word as written.
        text: String,
        /// What is wrong with it.
        error: SubstitutionError,
    },
    /// A `FROM` reference expands to nothing.
    #[error("line {line}: FROM {text} names no image: it expands to an empty string")]
    EmptyFrom {
        /// The instruction's line.
        line: u32,
        /// The reference as written.
        text: String,
    },
    /// `COPY --from=` holds a `$`, which Docker does not expand.
    #[error(
        "line {line}: COPY --from={from}: Docker does not expand variables in --from; \
         name a stage instead (FROM {from} AS some-name, then COPY --from=some-name)"
    )]
    VariableInCopyFrom {
        /// The instruction's line.
        line: u32,
        /// The flag's value as written.
        from: String,
    },
}

/// The images `dockerfile` builds on, in order of first use, without repeats (see the module
/// documentation), with `build_args` (`--build-arg` name → value) overriding the global `ARG`s.
/// Empty when there is no `FROM`, or only `FROM scratch`.
///
/// # Errors
/// A global `ARG` default or `FROM` reference that does not expand, a `FROM` that expands to
/// nothing, or a `COPY --from=` holding a variable.
pub fn base_images(
    dockerfile: &Dockerfile,
    build_args: &BTreeMap<String, String>,
) -> Result<Vec<String>, BaseImageError> {
    // Global ARG name → value (`None` = declared but unset).
    let mut globals: BTreeMap<&str, Option<String>> = BTreeMap::new();
    let lookup = |globals: &BTreeMap<&str, Option<String>>, name: &str| match globals.get(name) {
        Some(value) => value.clone(),
        None if PREDEFINED_ARGS.contains(&name) => build_args.get(name).cloned(),
        None => None,
    };
    let mut seen_from = false;
    let mut stages: Vec<&str> = Vec::new();
    let mut images: Vec<String> = Vec::new();
    for located in &dockerfile.instructions {
        let line = located.line;
        match &located.instruction {
            Instruction::Arg { name, default } if !seen_from => {
                let default = match default {
                    Some(text) => Some(
                        expand(text, dockerfile.escape, |n| lookup(&globals, n)).map_err(
                            |error| BaseImageError::Substitution {
                                line,
                                keyword: "ARG",
                                text: format!("{name}={text}"),
                                error,
                            },
                        )?,
                    ),
                    None => None,
                };
                let value = build_args.get(name).cloned().or(default);
                globals.insert(name, value);
            }
            Instruction::From(image) => {
                seen_from = true;
                let text = reference(image);
                let name =
                    expand(&text, dockerfile.escape, |n| lookup(&globals, n)).map_err(|error| {
                        BaseImageError::Substitution {
                            line,
                            keyword: "FROM",
                            text: text.clone(),
                            error,
                        }
                    })?;
                if name.is_empty() {
                    return Err(BaseImageError::EmptyFrom { line, text });
                }
                let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&name));
                if !is_stage && name != "scratch" && !images.contains(&name) {
                    images.push(name);
                }
                if let Some(alias) = &image.alias {
                    stages.push(alias);
                }
            }
            Instruction::Copy(copy) => {
                let Some(from) = &copy.from else { continue };
                if from.contains('$') {
                    return Err(BaseImageError::VariableInCopyFrom {
                        line,
                        from: from.clone(),
                    });
                }
                let is_stage = from.parse::<i64>().is_ok()
                    || stages.iter().any(|s| s.eq_ignore_ascii_case(from));
                if !is_stage && !from.is_empty() && !images.contains(from) {
                    images.push(from.clone());
                }
            }
            _ => {}
        }
    }
    Ok(images)
}

/// A `FROM` reference as written (`[registry/]name[:tag][@digest]`).
fn reference(image: &BaseImage) -> String {
    let mut text = String::new();
    if let Some(registry) = &image.registry {
        text.push_str(registry);
        text.push('/');
    }
    text.push_str(&image.name);
    if let Some(tag) = &image.tag {
        text.push(':');
        text.push_str(tag);
    }
    if let Some(digest) = &image.digest {
        text.push('@');
        text.push_str(digest);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn images(text: &str, args: &[(&str, &str)]) -> Result<Vec<String>, BaseImageError> {
        let args = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        base_images(&parse(text).unwrap(), &args)
    }

    #[test]
    fn stages_and_scratch_are_not_images_and_global_args_are_expanded() {
        let dockerfile = "ARG BASE=slipway/debian:bookworm\nARG TOOLS\nFROM ${BASE} AS build\nRUN make\nFROM scratch AS empty\nFROM build AS test\nFROM 127.0.0.1:5000/team/runtime:1\nCOPY --from=build /a /a\nCOPY --from=127.0.0.1:5000/team/tools:2 /t /t\nCOPY --from=0 /b /b\nCOPY --from=BUILD /c /c\n";
        assert_eq!(
            images(dockerfile, &[]).unwrap(),
            [
                "slipway/debian:bookworm",
                "127.0.0.1:5000/team/runtime:1",
                "127.0.0.1:5000/team/tools:2"
            ]
        );
        assert_eq!(
            images(dockerfile, &[("BASE", "other:3")]).unwrap()[0],
            "other:3"
        );
        assert_eq!(images("# nothing\n", &[]).unwrap(), Vec::<String>::new());
        assert_eq!(images("FROM scratch\n", &[]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn global_args_are_declared_before_the_first_from_and_expand_each_other() {
        let dockerfile = "ARG REGISTRY=127.0.0.1:5000\nARG NAME=\"team/base\"\nARG IMAGE=${REGISTRY}/${NAME}\nARG TAG\nFROM $IMAGE:${TAG:-latest}\nARG TAG=9\nFROM a:${TAG:-none}\n";
        assert_eq!(
            images(dockerfile, &[]).unwrap(),
            ["127.0.0.1:5000/team/base:latest", "a:none"]
        );
        // A build argument replaces the default before later defaults use it.
        assert_eq!(
            images(dockerfile, &[("REGISTRY", "r.example"), ("TAG", "2")]).unwrap(),
            ["r.example/team/base:2", "a:2"]
        );
        // Undeclared build arguments are not visible, except Docker's predefined proxy ones.
        assert_eq!(
            images(
                "FROM a${X-}${no_proxy:+-np}\n",
                &[("X", "x"), ("no_proxy", "h")]
            )
            .unwrap(),
            ["a-np"]
        );
        // Unset, not empty: an ARG without a default.
        assert_eq!(
            images("ARG T\nFROM a:${T-unset}\n", &[]).unwrap(),
            ["a:unset"]
        );
        assert_eq!(images("ARG T=\nFROM a${T-unset}\n", &[]).unwrap(), ["a"]);
    }

    #[test]
    fn the_escape_directive_applies() {
        let dockerfile = "# escape=`\nARG V=1\nFROM a:`$V${V}\n";
        assert_eq!(images(dockerfile, &[]).unwrap(), ["a:$V1"]);
    }

    #[test]
    fn problems_name_the_line() {
        assert_eq!(
            images("ARG V\nFROM a:${V:?needed}\n", &[]),
            Err(BaseImageError::Substitution {
                line: 2,
                keyword: "FROM",
                text: "a:${V:?needed}".into(),
                error: SubstitutionError::Required {
                    name: "V".into(),
                    message: "needed".into()
                }
            })
        );
        assert_eq!(
            images("ARG V\nFROM a:${V:?needed}\n", &[("V", "1")]).unwrap(),
            ["a:1"]
        );
        let error = images("ARG A=${B\nFROM a\n", &[]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("line 1: cannot expand ARG A=${B: the `${` at character 1"),
            "{error}"
        );
        assert_eq!(
            images("ARG B\nFROM $B\n", &[]),
            Err(BaseImageError::EmptyFrom {
                line: 2,
                text: "$B".into()
            })
        );
        let error = images("ARG I=x\nFROM a\nCOPY --from=$I /a /a\n", &[]).unwrap_err();
        assert_eq!(
            error,
            BaseImageError::VariableInCopyFrom {
                line: 3,
                from: "$I".into()
            }
        );
        assert!(error.to_string().contains("does not expand variables"));
    }
}
