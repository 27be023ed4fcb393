//! `substitution::expand` and `images::base_images` against the real thing: dockerd's classic
//! builder (`DOCKER_BUILDKIT=0`, the builder Slipway's build worker uses), on the local base image
//! with no network (nothing is pulled).
//!
//! - Every supported form is written in `LABEL`s over `ARG`s and `ENV`s (set, empty, unset), with
//!   both escape characters; the labels Docker stores must be what `expand` gives.
//! - Forms Docker refuses fail the build, and `expand` refuses them too — except `${VAR-word}`
//!   and `${VAR+word}`, which this builder rejects ("missing ':' in substitution") and `expand`
//!   reads as BuildKit does: the test pins that difference.
//! - The image a `FROM` with global `ARG`s resolves to is the one `base_images` names.
//!
//! Needs the `docker` CLI, dockerd and the image `slipway/debian:bookworm` (`deploy/dev-env.sh`).
//! The images built are removed.

use std::collections::BTreeMap;

use slipway_lint::images::{BaseImageError, base_images};
use slipway_lint::parser::parse;
use slipway_lint::substitution::{SubstitutionError, expand};
use slipway_tests::{BASE_IMAGE, docker, ensure_docker, try_docker};

/// The variables every Dockerfile here declares, after `FROM`: set, empty and unset `ARG`s, set
/// and empty `ENV`s.
const DECLARATIONS: &str = "ARG S=set\nARG E=\nARG U\nENV V=env W=\"two words\" N=\n";

/// What `DECLARATIONS` leaves visible to a `LABEL` (`U` is declared but unset).
fn variables() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("S", "set"),
        ("E", ""),
        ("V", "env"),
        ("W", "two words"),
        ("N", ""),
    ])
}

fn lookup(name: &str) -> Option<String> {
    variables().get(name).map(|v| v.to_string())
}

/// Label key → value as written, for the default escape character.
const BACKSLASH_LABELS: &[(&str, &str)] = &[
    ("plain", "$S"),
    ("braced", "${S}"),
    ("plain-unset", "<$U>"),
    ("braced-unset", "<${U}>"),
    ("env", "$V"),
    ("env-words", "\"$W\""),
    ("default-set", "${S:-d}"),
    ("default-empty", "${E:-d}"),
    ("default-unset", "${U:-d}"),
    ("default-env-empty", "${N:-d}"),
    ("alternative-set", "${S:+a}"),
    ("alternative-empty", "<${E:+a}>"),
    ("alternative-unset", "<${U:+a}>"),
    ("required-set", "${S:?m}"),
    ("required-unset-only-set", "${S?m}"),
    ("required-unset-only-empty", "<${E?m}>"),
    ("nested", "${U:-${S}-${V}}"),
    ("nested-deep", "${U:-${E:-${S:+deep}}}"),
    ("nested-alternative", "${S:+${V}/${U:-u}}"),
    ("word-quoted", "${U:-\"a b\"}"),
    ("word-single-quoted", "${U:-'$S'}"),
    ("word-escaped-brace", "${U:-a\\}b}"),
    ("escaped-dollar", "\\$S"),
    ("escaped-braces", "\\${S}"),
    ("escaped-letter", "a\\b"),
    ("escaped-backslash", "a\\\\b"),
    ("backquote-is-plain", "`$S"),
    ("single-quoted", "'$S ${U:?x}'"),
    ("double-quoted", "\"$S ${V}\""),
    ("double-quoted-escapes", "\"\\$S \\\" \\\\ \\a\""),
    ("mixed", "pre-${S}-'$S'-\"${V}\"-post"),
    ("digit-name", "<$1x>"),
    ("special-name", "<$$>"),
    ("lone-dollar", "a$"),
];

/// Label key → value as written, under `` # escape=` ``.
const BACKQUOTE_LABELS: &[(&str, &str)] = &[
    ("bq-escaped-dollar", "`$S"),
    ("bq-escaped-backquote", "``$S"),
    ("bq-backslash-is-plain", "\\$S"),
    ("bq-windows-path", "C:\\dir\\$S"),
    ("bq-double-quoted", "\"`$S `\" \\$S\""),
    ("bq-word-escaped-brace", "${U:-`}}"),
];

/// A tag that is removed (with the intermediate images under it) when dropped.
struct Image(String);

impl Image {
    fn new(name: &str) -> Image {
        Image(format!(
            "slipway-test/substitution:{}-{name}",
            std::process::id()
        ))
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = try_docker(&["rmi", &self.0], None);
    }
}

/// `docker build` with the classic builder and no network, of `dockerfile` with an empty context,
/// tagged `tag` when given: the image id, or what Docker printed when the build fails.
fn build(dockerfile: &str, tag: Option<&Image>, build_args: &[&str]) -> Result<String, String> {
    let mut args = vec!["build", "--network", "none", "-q"];
    if let Some(tag) = tag {
        args.extend(["-t", tag.0.as_str()]);
    }
    for arg in build_args {
        args.extend(["--build-arg", arg]);
    }
    args.push("-");
    try_docker(&args, Some(dockerfile)).map(|id| id.trim().to_string())
}

/// The labels of `image`.
fn labels(image: &Image) -> BTreeMap<String, String> {
    let json = docker(
        &[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            &image.0,
        ],
        None,
    );
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("labels of {}: {e}: {json}", image.0))
}

/// A Dockerfile declaring the variables, then one `LABEL` line per pair.
fn labelled(directive: &str, pairs: &[(&str, &str)]) -> String {
    let mut text = format!("{directive}FROM {BASE_IMAGE}\n{DECLARATIONS}");
    for (key, value) in pairs {
        text.push_str(&format!("LABEL io.slipway.test.{key}={value}\n"));
    }
    text
}

/// Builds `pairs` as labels, and compares what Docker stored with `expand`'s results. Returns the
/// image (removed when dropped) so that later builds reuse its cached steps.
fn check_labels(name: &str, directive: &str, pairs: &[(&str, &str)]) -> Image {
    let dockerfile = labelled(directive, pairs);
    // The escape character as the parser reads the directive; the parser must accept every
    // label Docker accepts.
    let escape = parse(&dockerfile)
        .expect("the test Dockerfile parses")
        .escape;
    let image = Image::new(name);
    if let Err(output) = build(&dockerfile, Some(&image), &[]) {
        panic!("the classic builder rejected\n{dockerfile}\n{output}");
    }
    let stored = labels(&image);
    let mut differences = Vec::new();
    for (key, written) in pairs {
        let docker_value = stored.get(&format!("io.slipway.test.{key}"));
        let expanded = expand(written, escape, lookup);
        println!("{key:28} {written:32} docker {docker_value:?}  expand {expanded:?}");
        if docker_value.map(|v| Ok(v.clone())) != Some(expanded.clone()) {
            differences.push(format!(
                "{key}={written}: docker stored {docker_value:?}, expand gives {expanded:?}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "expand differs from the classic builder (escape {escape:?}):\n{}",
        differences.join("\n")
    );
    image
}

#[test]
fn labels_are_expanded_as_the_classic_builder_expands_them() {
    ensure_docker();
    let plain = check_labels("backslash", "", BACKSLASH_LABELS);
    let _backquote = check_labels("backquote", "# escape=`\n", BACKQUOTE_LABELS);

    // Forms the classic builder refuses. Built while `plain` exists, so that the steps before the
    // LABEL come from its cache and nothing is left behind.
    let refused = |value: &str| -> String {
        let dockerfile = labelled("", &[("refused", value)]);
        match build(&dockerfile, None, &[]) {
            Ok(id) => panic!("the classic builder accepted LABEL x={value} (image {id})"),
            Err(output) => output,
        }
    };
    // BuildKit's colon-less `-` and `+`: the classic builder rejects them; expand reads them as
    // BuildKit does.
    for (value, buildkit) in [
        ("${S-d}", "set"),
        ("${U-d}", "d"),
        ("${E-d}", ""),
        ("${S+a}", "a"),
        ("${E+a}", "a"),
        ("${U+a}", ""),
    ] {
        let output = refused(value);
        println!("{value:28} docker: missing ':'  expand {buildkit:?}");
        assert!(
            output.contains("missing ':' in substitution"),
            "{value}: {output}"
        );
        assert_eq!(
            expand(value, '\\', lookup).as_deref(),
            Ok(buildkit),
            "{value}"
        );
    }
    // `?` on an unset (or, with `:`, empty) variable: the same message as Docker's.
    for value in [
        "${U:?needed}",
        "${U?needed}",
        "${E:?needed}",
        "${U:?}",
        "${U?}",
        "${E:?}",
        // The word is expanded even when it is not used.
        "${S:-${U:?eager}}",
    ] {
        let output = refused(value);
        let error = expand(value, '\\', lookup).expect_err(value);
        assert!(
            matches!(error, SubstitutionError::Required { .. }),
            "{value}: {error:?}"
        );
        println!("{value:28} docker and expand: {error}");
        assert!(
            output.contains(&format!(": {error}")),
            "{value}: Docker said {output}, expand {error}"
        );
    }
    // Syntax errors.
    for (value, docker_says) in [
        ("${S", "missing ':' in substitution"),
        ("${}", "bad substitution"),
        ("${:-x}", "bad substitution"),
        ("${S#s}", "missing ':' in substitution"),
        ("${S/s/t}", "missing ':' in substitution"),
        ("${S:=x}", "unsupported modifier (=) in substitution"),
        ("'abc", "matching single-quote"),
        ("\"abc", "matching double-quote"),
    ] {
        let output = refused(value);
        let error = expand(value, '\\', lookup).expect_err(value);
        println!("{value:28} docker: {docker_says}  expand: {error}");
        assert!(output.contains(docker_says), "{value}: {output}");
    }
    drop(plain);
}

#[test]
fn base_images_are_the_images_the_classic_builder_uses() {
    ensure_docker();
    let (repository, tag) = BASE_IMAGE.split_once(':').expect("BASE_IMAGE has a tag");
    let base_id = docker(
        &["image", "inspect", "--format", "{{.Id}}", BASE_IMAGE],
        None,
    )
    .trim()
    .to_string();
    let dockerfile = format!(
        "ARG REPOSITORY=\"{repository}\"\nARG OVERRIDE\nARG TAG\nFROM ${{OVERRIDE:-$REPOSITORY}}:${{TAG:?needed}} AS first\nLABEL io.slipway.test.base-images=1\n"
    );
    let parsed = parse(&dockerfile).expect("the test Dockerfile parses");

    let args = BTreeMap::from([("TAG".to_string(), tag.to_string())]);
    assert_eq!(base_images(&parsed, &args).unwrap(), [BASE_IMAGE]);
    let image = Image::new("base-images");
    let built = build(&dockerfile, Some(&image), &[&format!("TAG={tag}")])
        .unwrap_or_else(|output| panic!("the classic builder rejected\n{dockerfile}\n{output}"));
    // FROM then one LABEL: the LABEL step's parent is the base image.
    let parent = docker(
        &["image", "inspect", "--format", "{{.Parent}}", &built],
        None,
    );
    assert_eq!(parent.trim(), base_id, "{dockerfile}");

    // Without TAG, both refuse, with the same message.
    let error = base_images(&parsed, &BTreeMap::new()).unwrap_err();
    let BaseImageError::Substitution { line: 4, error, .. } = &error else {
        panic!("{error:?}")
    };
    let output = build(&dockerfile, None, &[]).expect_err("FROM without TAG");
    assert!(
        output.contains(&format!(": {error}")),
        "Docker said {output}, base_images {error}"
    );

    // COPY --from is not expanded: the classic builder takes `$FROM` as a reference and fails.
    let copy =
        format!("ARG FROM={BASE_IMAGE}\nFROM {BASE_IMAGE}\nCOPY --from=$FROM /etc/hostname /h\n");
    assert!(matches!(
        base_images(&parse(&copy).unwrap(), &BTreeMap::new()),
        Err(BaseImageError::VariableInCopyFrom { line: 3, .. })
    ));
    let output = build(&copy, None, &[]).expect_err("COPY --from=$FROM");
    assert!(output.contains("invalid from flag value $FROM"), "{output}");
    drop(image);
}
