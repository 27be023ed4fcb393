//! Properties of the parser and the linter: no input makes them panic (random bytes, and random
//! Dockerfile-like text), and generated Dockerfiles — random instructions in random case, with
//! continuations, comments inside continuations and blank lines — parse back to the instructions
//! they were made from, at the lines they were written on, with continuations joined exactly.

use proptest::prelude::*;
use slipway_lint::parser::{decode, parse};
use slipway_lint::syntax::Instruction;
use slipway_lint::{Settings, lint};

/// Fragments that exercise the parser's corners when glued at random.
fn dockerfile_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("FROM ".to_string()),
        Just("RUN ".to_string()),
        Just("COPY ".to_string()),
        Just("ENV ".to_string()),
        Just("LABEL ".to_string()),
        Just("ARG ".to_string()),
        Just("EXPOSE ".to_string()),
        Just("HEALTHCHECK ".to_string()),
        Just("ONBUILD ".to_string()),
        Just("SHELL ".to_string()),
        Just("\\\n".to_string()),
        Just("`\n".to_string()),
        Just("# escape=`\n".to_string()),
        Just("\n".to_string()),
        Just("<<EOF\n".to_string()),
        Just("EOF\n".to_string()),
        Just("[\"a\", \"b\"]".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("$(".to_string()),
        Just("${A:-b}".to_string()),
        Just(" && ".to_string()),
        Just(" | ".to_string()),
        Just("=".to_string()),
        Just("--mount=type=cache,target=/x ".to_string()),
        Just("--from=".to_string()),
        "[a-z0-9 ./:@-]{0,8}",
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = decode(&bytes);
        let _ = parse(&text);
        let _ = lint(&text, &Settings::default());
    }

    #[test]
    fn dockerfile_like_text_never_panics(text in dockerfile_like()) {
        let _ = lint(&text, &Settings::default());
    }
}

/// One generated instruction: its text (possibly spread over lines), how many lines it takes,
/// its keyword, and for RUN the command text after joining.
#[derive(Debug, Clone)]
struct Generated {
    text: String,
    lines: u32,
    keyword: &'static str,
    run_text: Option<String>,
}

fn mixed_case(word: &str, mask: u32) -> String {
    word.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask & (1 << (i % 32)) != 0 {
                c.to_ascii_lowercase()
            } else {
                c
            }
        })
        .collect()
}

fn instruction() -> impl Strategy<Value = Generated> {
    let word = "[a-z][a-z0-9]{0,6}";
    prop_oneof![
        (word, any::<u32>()).prop_map(|(w, m)| Generated {
            text: format!("{} {w}:1.0", mixed_case("FROM", m)),
            lines: 1,
            keyword: "FROM",
            run_text: None,
        }),
        // RUN with continuations, some indented, with comment lines inside.
        (
            prop::collection::vec((word, any::<bool>(), any::<bool>()), 1..5),
            any::<u32>()
        )
            .prop_map(|(parts, m)| {
                let mut text = format!("{} {}", mixed_case("RUN", m), parts[0].0);
                let mut joined = parts[0].0.clone();
                let mut lines = 1;
                for (w, indented, comment) in &parts[1..] {
                    text.push_str(" \\\n");
                    lines += 1;
                    if *comment {
                        text.push_str("  # a comment inside the continuation\n");
                        lines += 1;
                    }
                    joined.push(' ');
                    if *indented {
                        text.push_str("    ");
                        joined.push(' ');
                    }
                    text.push_str(w);
                    joined.push_str(w);
                }
                Generated {
                    text,
                    lines,
                    keyword: "RUN",
                    run_text: Some(joined),
                }
            }),
        (word, word).prop_map(|(k, v)| Generated {
            text: format!("ENV {}={v}", k.to_uppercase()),
            lines: 1,
            keyword: "ENV",
            run_text: None,
        }),
        (word, word).prop_map(|(a, b)| Generated {
            text: format!("COPY --chown=1:1 {a} /{b}/"),
            lines: 1,
            keyword: "COPY",
            run_text: None,
        }),
        word.prop_map(|w| Generated {
            text: format!("# {w}"),
            lines: 1,
            keyword: "COMMENT",
            run_text: None,
        }),
        word.prop_map(|w| Generated {
            text: format!("CMD [\"{w}\", \"--flag\"]"),
            lines: 1,
            keyword: "CMD",
            run_text: None,
        }),
        word.prop_map(|w| Generated {
            text: format!("onbuild run {w}"),
            lines: 1,
            keyword: "ONBUILD",
            run_text: None,
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn generated_dockerfiles_parse_back_at_their_lines(
        items in prop::collection::vec((instruction(), 0u32..3), 1..20)
    ) {
        let mut text = String::new();
        let mut expected = Vec::new();
        let mut line = 1;
        for (item, blank_lines) in &items {
            for _ in 0..*blank_lines {
                text.push('\n');
                line += 1;
            }
            expected.push((line, item.keyword, item.run_text.clone()));
            text.push_str(&item.text);
            text.push('\n');
            line += item.lines;
        }
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let found: Vec<(u32, &str, Option<String>)> = parsed
            .instructions
            .iter()
            .map(|l| {
                let run = match &l.instruction {
                    Instruction::Run(run) => Some(run.arguments.text().to_string()),
                    _ => None,
                };
                (l.line, l.instruction.keyword(), run)
            })
            .collect();
        prop_assert_eq!(found, expected, "{}", text);
    }
}
