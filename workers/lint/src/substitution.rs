//! Docker's environment replacement in Dockerfile words: what `FROM`, `ARG`, `ENV`, `LABEL`,
//! `COPY`, `WORKDIR`… do with `$VAR` and `${VAR…}` before using a word. Pure, no I/O.
//!
//! [`expand`] follows the Dockerfile reference
//! (<https://docs.docker.com/reference/dockerfile/#environment-replacement>) and BuildKit's shell
//! lexer (`frontend/dockerfile/shell/lex.go`, `ProcessWord`), which dockerd's classic builder
//! also uses (an older copy of it):
//!
//! - `$VAR` and `${VAR}`: the value, or nothing when `VAR` is unset.
//! - `${VAR:-word}` / `${VAR-word}`: `word` when `VAR` is unset or empty / unset, else the value.
//! - `${VAR:+word}` / `${VAR+word}`: `word` when `VAR` is set and not empty / set, else nothing.
//! - `${VAR:?message}` / `${VAR?message}`: the value, or [`SubstitutionError::Required`] when `VAR`
//!   is unset or empty / unset (an empty `message` gives Docker's own: "is not allowed to be unset"
//!   or "… empty").
//! - `word` and `message` are words themselves: substitutions (`${A:-${B:-c}}`), quotes and
//!   escapes work inside them. Like BuildKit, and unlike a POSIX shell, the word is always
//!   expanded, even when it is not used: `${SET:-${UNSET:?}}` is an error.
//! - A name is letters, digits and `_`; a name starting with a digit takes only the digits (`$1a`
//!   is `$1` then `a`), and the shell's special parameters `@ * # ? - $ !` are one-character
//!   names (`$$` and `${-}` look up `$` and `-`, which a Dockerfile never sets: they expand to
//!   nothing). A `$` followed by anything else is a literal `$`. Non-ASCII names use Rust's
//!   Unicode Alphabetic/Numeric properties where Go uses the Letter/Nd categories; the few
//!   characters where those differ never occur in real Dockerfiles.
//! - `${VAR#pattern}`, `${VAR%pattern}` and `${VAR/a/b}`, which recent BuildKit accepts, are
//!   [`SubstitutionError::UnsupportedModifier`], as the classic builder rejects them (so is bash's
//!   `${#VAR}`, which no Docker builder accepts).
//!
//! **Quotes and escapes** are processed the way Docker processes one word of `LABEL`, `ENV`,
//! `ARG` or `FROM`, so the result is the value Docker stores, and the input must be the word as
//! written in the Dockerfile (quotes included):
//!
//! - Outside quotes, the escape character (`\`, or `` ` `` under `` # escape=` ``) makes the
//!   next character literal and is removed: `\$A` is `$A`, `a\b` is `ab`; a trailing one is
//!   dropped.
//! - `'…'` is literal (no substitution, no escape) and loses its quotes: `'$A'` is `$A`.
//! - `"…"` loses its quotes; substitutions apply inside; the escape character escapes only `"`,
//!   `$` and itself, and is kept before anything else: `"a\b"` is `a\b`.
//! - An unclosed quote is [`SubstitutionError::UnterminatedQuote`].
//!
//! The parser's [`Instruction::Label`](crate::syntax::Instruction::Label) and `Env` values are
//! already unquoted (as language-docker reads them), so they are not the input `expand` wants:
//! expanding them again would lose what single quotes protect. `FROM` references, `ARG` defaults
//! and flag values are kept as written.
//!
//! **The classic builder** (`DOCKER_BUILDKIT=0`, dockerd 20.10, the builder Slipway's build worker
//! uses) was checked form by form (`tests/substitution_docker.rs`): it agrees with `expand` on
//! every form except `${VAR-word}` and `${VAR+word}`, which it rejects ("missing ':' in
//! substitution"; the colon-less `-` and `+` came to BuildKit in 2023). `expand` keeps BuildKit's
//! meaning for them: a Dockerfile using them fails to build in the classic builder whatever the
//! expansion says, so no build is computed differently, and the linter reads Dockerfiles for both
//! builders.

use std::iter::Peekable;
use std::str::Chars;

/// Why a word cannot be expanded. Positions are 1-based, in characters of the word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstitutionError {
    /// A `${` has no matching `}`.
    #[error("the `${{` at character {position} has no closing `}}`")]
    Unterminated {
        /// Where the `$` of the `${` is.
        position: usize,
    },
    /// A quote is not closed.
    #[error("the {} quote at character {position} is not closed", quote_name(*.quote))]
    UnterminatedQuote {
        /// `'` or `"`.
        quote: char,
        /// Where the opening quote is.
        position: usize,
    },
    /// `${` is not followed by a variable name (`${}`, `${:-x}`, `${.x}`…).
    #[error(
        "bad substitution at character {position}: `${{` must be followed by a variable name \
         (letters, digits and `_`), found {found}"
    )]
    InvalidName {
        /// Where the `$` of the `${` is.
        position: usize,
        /// The character after `${`, in backquotes.
        found: String,
    },
    /// `${NAME` is followed by something other than `}`, `:-`, `-`, `:+`, `+`, `:?` or `?`.
    #[error(
        "unsupported modifier `{modifier}` in `${{{name}{modifier}…}}` at character {position}: \
         Docker supports ${{{name}}}, ${{{name}:-word}}, ${{{name}:+word}}, ${{{name}:?message}}, \
         ${{{name}?message}}, and with BuildKit ${{{name}-word}} and ${{{name}+word}}"
    )]
    UnsupportedModifier {
        /// The variable.
        name: String,
        /// What follows the name (`.`, `#`, `:=`…).
        modifier: String,
        /// Where the `$` of the `${` is.
        position: usize,
    },
    /// `${NAME:?message}` on an unset or empty variable, or `${NAME?message}` on an unset one.
    /// The text is Docker's: the name, then the message (Docker's default when it is empty).
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The message of the substitution, or "is not allowed to be unset" / "… empty".
        message: String,
    },
}

fn quote_name(quote: char) -> &'static str {
    if quote == '"' { "double" } else { "single" }
}

/// Expands `text`, one Dockerfile word as written, the way Docker does (see the module
/// documentation): substitutions of `$NAME` and `${NAME…}` with `lookup` (`None` = unset),
/// quote removal, and escapes with `escape` (`\`, or `` ` `` under `` # escape=` ``).
///
/// # Errors
/// An unclosed `${` or quote, a `${` without a name, an unsupported modifier, or a `:?`/`?` whose
/// variable is unset (or empty, for `:?`).
pub fn expand(
    text: &str,
    escape: char,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, SubstitutionError> {
    let mut expander = Expander {
        chars: text.chars().peekable(),
        position: 0,
        escape,
        lookup: &lookup,
    };
    expander.word(None)
}

/// The state of one expansion.
struct Expander<'a> {
    chars: Peekable<Chars<'a>>,
    /// Characters consumed so far.
    position: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Expander<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        self.position += 1;
        Some(c)
    }

    /// A word up to the end of the text, or (with `closing`, the position of a `${`) up to and
    /// including the `}` that closes that `${`.
    fn word(&mut self, closing: Option<usize>) -> Result<String, SubstitutionError> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            match c {
                '}' if closing.is_some() => {
                    self.next();
                    return Ok(out);
                }
                '$' => out.push_str(&self.dollar()?),
                '\'' => out.push_str(&self.single_quoted()?),
                '"' => out.push_str(&self.double_quoted()?),
                _ => {
                    self.next();
                    if c == self.escape {
                        match self.next() {
                            Some(escaped) => out.push(escaped),
                            // A trailing escape character is dropped.
                            None => break,
                        }
                    } else {
                        out.push(c);
                    }
                }
            }
        }
        match closing {
            Some(position) => Err(SubstitutionError::Unterminated { position }),
            None => Ok(out),
        }
    }

    /// `'…'`: literal.
    fn single_quoted(&mut self) -> Result<String, SubstitutionError> {
        self.next();
        let position = self.position;
        let mut out = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(SubstitutionError::UnterminatedQuote {
                        quote: '\'',
                        position,
                    });
                }
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    /// `"…"`: substitutions; the escape character escapes `"`, `$` and itself only.
    fn double_quoted(&mut self) -> Result<String, SubstitutionError> {
        self.next();
        let position = self.position;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(SubstitutionError::UnterminatedQuote {
                        quote: '"',
                        position,
                    });
                }
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.next();
                    if c == self.escape {
                        match self.peek() {
                            // Dropped; the missing quote is reported next.
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.escape => {
                                self.next();
                                out.push(next);
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// A name after `$` or `${` (empty when there is none).
    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_numeric() => {
                while let Some(d) = self.peek().filter(|d| d.is_numeric()) {
                    self.next();
                    name.push(d);
                }
            }
            Some(c @ ('@' | '*' | '#' | '?' | '-' | '$' | '!')) => {
                self.next();
                name.push(c);
            }
            _ => {
                while let Some(c) = self
                    .peek()
                    .filter(|c| c.is_alphabetic() || c.is_numeric() || *c == '_')
                {
                    self.next();
                    name.push(c);
                }
            }
        }
        name
    }

    /// A substitution (at a `$`).
    fn dollar(&mut self) -> Result<String, SubstitutionError> {
        self.next();
        let position = self.position;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok((self.lookup)(&name).unwrap_or_default());
        }
        self.next();
        let name = self.name();
        let (colon, operator) = match self.next() {
            None => return Err(SubstitutionError::Unterminated { position }),
            // `name` stopped at once: the character just read cannot start a name.
            Some(c) if name.is_empty() => {
                return Err(SubstitutionError::InvalidName {
                    position,
                    found: format!("`{c}`"),
                });
            }
            Some('}') => return Ok((self.lookup)(&name).unwrap_or_default()),
            Some(':') => match self.next() {
                None => return Err(SubstitutionError::Unterminated { position }),
                Some(op @ ('-' | '+' | '?')) => (true, op),
                Some(other) => {
                    return Err(SubstitutionError::UnsupportedModifier {
                        name,
                        modifier: format!(":{other}"),
                        position,
                    });
                }
            },
            Some(op @ ('-' | '+' | '?')) => (false, op),
            Some(other) => {
                return Err(SubstitutionError::UnsupportedModifier {
                    name,
                    modifier: other.to_string(),
                    position,
                });
            }
        };
        // Like BuildKit, the word is expanded before the variable is looked at.
        let word = self.word(Some(position))?;
        let value = (self.lookup)(&name);
        let missing = match &value {
            None => true,
            Some(v) => colon && v.is_empty(),
        };
        match operator {
            '-' if missing => Ok(word),
            '-' => Ok(value.unwrap_or_default()),
            '+' if missing => Ok(String::new()),
            '+' => Ok(word),
            _ if missing => {
                let message = if !word.is_empty() {
                    word
                } else if value.is_none() {
                    "is not allowed to be unset".to_string()
                } else {
                    "is not allowed to be empty".to_string()
                };
                Err(SubstitutionError::Required { name, message })
            }
            _ => Ok(value.unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// `S` = "set", `E` = "", `W` = "a b", `U` unset.
    fn vars() -> BTreeMap<&'static str, &'static str> {
        BTreeMap::from([("S", "set"), ("E", ""), ("W", "a b")])
    }

    fn with(escape: char, text: &str) -> Result<String, SubstitutionError> {
        let vars = vars();
        expand(text, escape, |name| vars.get(name).map(|v| v.to_string()))
    }

    fn ok(text: &str) -> String {
        with('\\', text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn err(text: &str) -> SubstitutionError {
        with('\\', text).expect_err(text)
    }

    #[test]
    fn plain_and_braced_names() {
        assert_eq!(ok("$S/${S}-$U-${U}."), "set/set--.");
        assert_eq!(ok("$S_x ${S}_x $S.x"), " set_x set.x");
        assert_eq!(ok("a$"), "a$");
        assert_eq!(ok("$ $/ $."), "$ $/ $.");
        assert_eq!(ok("${W}"), "a b");
    }

    #[test]
    fn digits_and_special_parameters_are_names() {
        // `$1a` is `$1` (unset) then `a`; `$$`, `$-`, `${?}` look up one-character names.
        assert_eq!(ok("$1a $12 ${10}"), "a  ");
        assert_eq!(ok("$$ $- $@ ${?} ${#}|"), "    |");
        let looked_up = expand("$$ $1 ${-}", '\\', |name| Some(format!("<{name}>")));
        assert_eq!(looked_up.unwrap(), "<$> <1> <->");
    }

    #[test]
    fn default_values() {
        assert_eq!(ok("${S:-d} ${E:-d} ${U:-d}"), "set d d");
        assert_eq!(ok("${S-d} ${E-d} ${U-d}|"), "set  d|");
        assert_eq!(ok("${U:-} ${U-}|"), " |");
    }

    #[test]
    fn alternative_values() {
        assert_eq!(ok("${S:+a} ${E:+a} ${U:+a}|"), "a  |");
        assert_eq!(ok("${S+a} ${E+a} ${U+a}|"), "a a |");
    }

    #[test]
    fn required_values() {
        assert_eq!(ok("${S:?m} ${S?m} ${E?m}|"), "set set |");
        let required = |name: &str, message: &str| SubstitutionError::Required {
            name: name.into(),
            message: message.into(),
        };
        assert_eq!(err("${U:?give U}"), required("U", "give U"));
        assert_eq!(err("${U?give U}"), required("U", "give U"));
        assert_eq!(err("${E:?give E}"), required("E", "give E"));
        assert_eq!(err("${U:?}"), required("U", "is not allowed to be unset"));
        assert_eq!(err("${U?}"), required("U", "is not allowed to be unset"));
        assert_eq!(err("${E:?}"), required("E", "is not allowed to be empty"));
        // The message is a word: expanded, quotes removed.
        assert_eq!(
            err("${U:?\"$S\" is needed}"),
            required("U", "set is needed")
        );
        assert_eq!(err("${U?x}").to_string(), "U: x");
    }

    #[test]
    fn words_nest() {
        assert_eq!(ok("${U:-${S}-x}"), "set-x");
        assert_eq!(ok("${U:-${E:-${S:+deep}}}"), "deep");
        assert_eq!(ok("${S:+${S}/${U:-u}}"), "set/u");
        assert_eq!(ok("${U:-a}b}"), "ab}");
        // The word is expanded even when unused, as BuildKit does.
        assert!(matches!(
            err("${S:-${U:?}}"),
            SubstitutionError::Required { .. }
        ));
    }

    #[test]
    fn backslash_escapes() {
        assert_eq!(ok("\\$S \\${S} a\\b \\\\ x\\"), "$S ${S} ab \\ x");
        assert_eq!(ok("`$S"), "`set");
        // In a word: `\}` does not close it.
        assert_eq!(ok("${U:-a\\}b}"), "a}b");
        assert_eq!(ok("${U:-\\$S}"), "$S");
    }

    #[test]
    fn backquote_escapes() {
        let tick = |text: &str| with('`', text).unwrap();
        assert_eq!(tick("`$S ``"), "$S `");
        // `\` is an ordinary character under `` # escape=` ``.
        assert_eq!(tick("\\$S C:\\dir"), "\\set C:\\dir");
        assert_eq!(tick("\"`$S `\" \\$S\""), "$S \" \\set");
        assert_eq!(tick("${U:-`}}"), "}");
    }

    #[test]
    fn quotes() {
        assert_eq!(ok("'$S' \"$S\" '${U:?}'"), "$S set ${U:?}");
        assert_eq!(ok("\"a b\"'c d'e"), "a bc de");
        assert_eq!(ok("\"\\$S \\\" \\\\ \\a\""), "$S \" \\ \\a");
        assert_eq!(ok("\"'$S'\" '\"'"), "'set' \"");
        assert_eq!(ok("${U:-'}'}"), "}");
        assert_eq!(ok("${U:-\"$S}\"}"), "set}");
        assert_eq!(ok("\"\""), "");
    }

    #[test]
    fn unterminated_substitutions() {
        for (text, position) in [
            ("${", 1),
            ("a${S", 2),
            ("${S:", 1),
            ("${S:-", 1),
            ("x ${U:-${S}", 3),
            ("${U:-a\\}", 1),
            ("${S:-a\\", 1),
        ] {
            assert_eq!(
                err(text),
                SubstitutionError::Unterminated { position },
                "{text}"
            );
        }
        assert_eq!(
            err("ab${S").to_string(),
            "the `${` at character 3 has no closing `}`"
        );
    }

    #[test]
    fn unterminated_quotes() {
        assert_eq!(
            err("a'b"),
            SubstitutionError::UnterminatedQuote {
                quote: '\'',
                position: 2
            }
        );
        assert_eq!(
            err("\"a\\\""),
            SubstitutionError::UnterminatedQuote {
                quote: '"',
                position: 1
            }
        );
        assert_eq!(
            err("${U:-\"}"),
            SubstitutionError::UnterminatedQuote {
                quote: '"',
                position: 6
            }
        );
        assert_eq!(
            err("\"x").to_string(),
            "the double quote at character 1 is not closed"
        );
    }

    #[test]
    fn invalid_names() {
        for (text, found) in [
            ("${}", "`}`"),
            ("${:-x}", "`:`"),
            ("${{S}}", "`{`"),
            ("${ S}", "` `"),
            ("${.x}", "`.`"),
        ] {
            assert_eq!(
                err(text),
                SubstitutionError::InvalidName {
                    position: 1,
                    found: found.into()
                },
                "{text}"
            );
        }
        assert!(err("${}").to_string().contains("variable name"));
    }

    #[test]
    fn unsupported_modifiers() {
        for (text, modifier) in [
            ("${S.x}", "."),
            ("${S#s}", "#"),
            ("${S%t}", "%"),
            ("${S/s/t}", "/"),
            ("${S:=x}", ":="),
            ("${S:0:1}", ":0"),
            ("${S x}", " "),
        ] {
            assert_eq!(
                err(text),
                SubstitutionError::UnsupportedModifier {
                    name: "S".into(),
                    modifier: modifier.into(),
                    position: 1
                },
                "{text}"
            );
        }
        let message = err("${S#s}").to_string();
        assert!(
            message.contains("`#`") && message.contains("${S:-word}"),
            "{message}"
        );
    }

    #[test]
    fn unicode_passes_through() {
        assert_eq!(ok("héllo ${U:-wörld} ✓"), "héllo wörld ✓");
        let vars = BTreeMap::from([("NAMÉ", "v")]);
        let got = expand("$NAMÉ!", '\\', |n| vars.get(n).map(|v| v.to_string()));
        assert_eq!(got.unwrap(), "v!");
    }

    mod properties {
        use super::super::expand;
        use proptest::prelude::*;

        fn lookup(name: &str) -> Option<String> {
            (!name.len().is_multiple_of(3)).then(|| name.to_lowercase())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn never_panics(text in any::<String>(), backquote in any::<bool>()) {
                let escape = if backquote { '`' } else { '\\' };
                let _ = expand(&text, escape, lookup);
            }

            #[test]
            fn never_panics_on_substitution_like_text(
                pieces in prop::collection::vec(
                    prop_oneof![
                        Just("$"), Just("${"), Just("}"), Just(":"), Just("-"), Just("+"),
                        Just("?"), Just("'"), Just("\""), Just("\\"), Just("`"), Just("A"),
                        Just("_1"), Just(" "), Just("#"), Just("é"),
                    ],
                    0..40,
                ),
                backquote in any::<bool>(),
            ) {
                let escape = if backquote { '`' } else { '\\' };
                let _ = expand(&pieces.concat(), escape, lookup);
            }

            /// Without `$`, quotes and escape characters there is nothing to do. (Quotes are
            /// removed, as Docker removes them.)
            #[test]
            fn plain_text_is_unchanged(text in "[^$'\"\\\\`]*", backquote in any::<bool>()) {
                let escape = if backquote { '`' } else { '\\' };
                prop_assert_eq!(expand(&text, escape, lookup), Ok(text));
            }

            /// Escaping every character gives the text back, whatever it holds.
            #[test]
            fn escaping_everything_is_the_identity(
                text in any::<String>(),
                backquote in any::<bool>(),
            ) {
                let escape = if backquote { '`' } else { '\\' };
                let escaped: String = text.chars().flat_map(|c| [escape, c]).collect();
                prop_assert_eq!(expand(&escaped, escape, lookup), Ok(text));
            }
        }
    }
}
