//! Rules about the remaining instructions: ignore pragmas, `EXPOSE` ports, `CMD`/`ENTRYPOINT`
//! form, `ENV` self-references, secrets in `ARG`/`ENV`, `USER` ids and `MAINTAINER`.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::rules::{Failure, Meta, Registry, Rule, Severity, Simple};
use crate::syntax::{ArgumentsForm, Instruction, PortSpec};

pub const DL1001: Meta = Meta {
    code: "DL1001",
    severity: Severity::Ignore,
    message: "Please refrain from using inline ignore pragmas  `# hadolint ignore=DLxxxx`.",
};

pub const DL3011: Meta = Meta {
    code: "DL3011",
    severity: Severity::Error,
    message: "Valid UNIX ports range from 0 to 65535",
};

pub const DL3025: Meta = Meta {
    code: "DL3025",
    severity: Severity::Warning,
    message: "Use arguments JSON notation for CMD and ENTRYPOINT arguments",
};

pub const DL3044: Meta = Meta {
    code: "DL3044",
    severity: Severity::Error,
    message: "Do not refer to an environment variable within the same `ENV` statement where it is \
              defined.",
};

pub const DL3064: Meta = Meta {
    code: "DL3064",
    severity: Severity::Warning,
    message: "Potentially sensitive data should not be used in the `ARG` or `ENV` commands",
};

pub const DL3066: Meta = Meta {
    code: "DL3066",
    severity: Severity::Info,
    message: "Non-numeric user-id may not be resolvable by host system",
};

pub const DL4000: Meta = Meta {
    code: "DL4000",
    severity: Severity::Error,
    message: "MAINTAINER is deprecated",
};

/// Registers the rules about the remaining instructions.
pub fn register(registry: &mut Registry) {
    registry.add(Box::new(Simple::new(DL1001, no_inline_ignore_pragma)));
    registry.add(Box::new(Simple::new(DL3011, valid_ports)));
    registry.add(Box::new(Simple::new(DL3025, exec_form_commands)));
    registry.add(Box::<EnvSelfReference>::default());
    registry.with_onbuild(|| Box::new(Simple::new(DL3064, no_sensitive_names)));
    registry.add(Box::<NumericUser>::default());
    registry.add(Box::new(Simple::new(DL4000, no_maintainer)));
}

/// DL1001: a comment that is an inline `# hadolint ignore=…` pragma (off unless configured).
fn no_inline_ignore_pragma(instruction: &Instruction) -> bool {
    match instruction {
        Instruction::Comment(text) => !is_inline_ignore_pragma(text),
        _ => true,
    }
}

/// Whether a comment's text (after `#`) is `hadolint ignore=CODE[, CODE…] [# comment]`, with the
/// blanks hadolint allows; the `global` and `stage` forms do not count.
fn is_inline_ignore_pragma(comment: &str) -> bool {
    crate::lint::pragma_body(comment)
        .is_some_and(|body| crate::lint::ignore_list(body, None).is_some())
}

/// DL3011: an `EXPOSE`d port (or range end) above 65535.
fn valid_ports(instruction: &Instruction) -> bool {
    match instruction {
        Instruction::Expose(ports) => ports.iter().all(|port| match port {
            PortSpec::Port { number, .. } => *number <= 65535,
            PortSpec::Range { start, end, .. } => *start <= 65535 && *end <= 65535,
            PortSpec::Variable(_) => true,
        }),
        _ => true,
    }
}

/// DL3025: `CMD`, `ENTRYPOINT` or `HEALTHCHECK CMD` in shell form instead of a JSON array.
fn exec_form_commands(instruction: &Instruction) -> bool {
    match instruction {
        Instruction::Cmd(arguments) | Instruction::Entrypoint(arguments) => {
            arguments.form == ArgumentsForm::Exec
        }
        Instruction::Healthcheck(Some(check)) => check.command.form == ArgumentsForm::Exec,
        _ => true,
    }
}

/// DL3064: an `ARG` or `ENV` name that is a known secret or contains `password`, `token`, ….
fn no_sensitive_names(instruction: &Instruction) -> bool {
    match instruction {
        Instruction::Arg { name, .. } => !is_sensitive_name(name),
        Instruction::Env(pairs) => !pairs.iter().any(|(name, _)| is_sensitive_name(name)),
        _ => true,
    }
}

/// Whether a variable name looks like it holds a secret.
fn is_sensitive_name(name: &str) -> bool {
    const KNOWN: [&str; 48] = [
        "ACCESS_TOKEN",
        "APPLICATION_KEY",
        "APP_SECRET",
        "AUTH_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "BITTREX_API_KEY",
        "BITTREX_API_SECRET",
        "CF_PASSWORD",
        "CF_USERNAME",
        "CIRCLE_TOKEN",
        "CI_DEPLOY_PASSWORD",
        "CI_DEPLOY_USER",
        "DOCKERHUB_PASSWORD",
        "DOCKER_EMAIL",
        "DOCKER_PASSWORD",
        "DOCKER_USERNAME",
        "FACEBOOK_ACCESS_TOKEN",
        "FACEBOOK_APP_ID",
        "FACEBOOK_APP_SECRET",
        "FIREBASE_API_TOKEN",
        "FIREBASE_TOKEN",
        "FOSSA_API_KEY",
        "GH_ENTERPRISE_TOKEN",
        "GH_TOKEN",
        "GITHUB_ENTERPRISE_TOKEN",
        "GITHUB_TOKEN",
        "HEROKU_API_KEY",
        "HEROKU_API_USER",
        "NPM_AUTH_TOKEN",
        "NPM_TOKEN",
        "OKTA_AUTHN_GROUPID",
        "OKTA_CLIENT_ORGURL",
        "OKTA_CLIENT_TOKEN",
        "OKTA_OAUTH2_CLIENTID",
        "OKTA_OAUTH2_CLIENTSECRET",
        "OPENAI_API_KEY",
        "OS_PASSWORD",
        "OS_USERNAME",
        "POSTGRES_PASSWORD",
        "SLACK_TOKEN",
        "STRIPE_API_KEY",
        "STRIPE_DEVICE_NAME",
        "TRAVIS_OS_NAME",
        "TRAVIS_SECURE_ENV_VARS",
        "TRAVIS_SUDO",
        "VAULT_CLIENT_KEY",
        "VAULT_TOKEN",
    ];
    const SUSPICIOUS: [&str; 7] = [
        "api_key",
        "client_key",
        "password",
        "private",
        "secret",
        "token",
        "username",
    ];
    let upper = name.to_uppercase();
    let lower = name.to_lowercase();
    KNOWN.contains(&upper.as_str()) || SUSPICIOUS.iter().any(|s| lower.contains(s))
}

/// DL4000: `MAINTAINER`, deprecated.
fn no_maintainer(instruction: &Instruction) -> bool {
    !matches!(instruction, Instruction::Maintainer(_))
}

/// DL3044: an `ENV` whose value refers to a variable the same `ENV` defines (and no earlier
/// `ENV` or `ARG` did).
#[derive(Default)]
struct EnvSelfReference {
    /// Names defined by `ENV` or `ARG` so far (in any stage, as hadolint keeps them).
    defined: BTreeSet<String>,
}

/// Every name `text` refers to, read in one pass, as Docker expands them: the whole inside of
/// each `${…}`, and the longest run of letters, digits and `_` after each other `$` (`$AB` is
/// `AB`, never `A`; `$A@B` is `A`, so a name with other characters is only referred to as
/// `${A@B}`).
fn references(text: &str) -> HashSet<&str> {
    let bytes = text.as_bytes();
    let mut names = HashSet::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        i += 1;
        if bytes.get(i) == Some(&b'{') {
            if let Some(close) = text[i + 1..].find('}') {
                names.insert(&text[i + 1..i + 1 + close]);
            }
            i += 1;
            continue;
        }
        let start = i;
        while bytes
            .get(i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            i += 1;
        }
        if i > start {
            names.insert(&text[start..i]);
        }
    }
    names
}

impl Rule for EnvSelfReference {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        match instruction {
            Instruction::Env(pairs) => {
                // Each value is read once (an ENV of 8,000 pairs took 13 s when every name was
                // looked for in every value).
                let referenced: Vec<HashSet<&str>> =
                    pairs.iter().map(|(_, value)| references(value)).collect();
                let mut referencing: HashMap<&str, usize> = HashMap::new();
                for names in &referenced {
                    for name in names {
                        *referencing.entry(name).or_default() += 1;
                    }
                }
                let self_referenced = pairs.iter().enumerate().any(|(i, (name, _))| {
                    if self.defined.contains(name) {
                        return false;
                    }
                    let by_all = referencing.get(name.as_str()).copied().unwrap_or(0);
                    let by_own = usize::from(referenced[i].contains(name.as_str()));
                    by_all > by_own
                });
                self.defined
                    .extend(pairs.iter().map(|(name, _)| name.clone()));
                if self_referenced {
                    out.push(DL3044.at(line));
                }
            }
            Instruction::Arg { name, .. } => {
                self.defined.insert(name.clone());
            }
            _ => {}
        }
    }
}

/// DL3066: a `USER` whose user part is not numeric and does not use an `ARG` variable.
#[derive(Default)]
struct NumericUser {
    /// Every `ARG` name seen so far (in any stage, as hadolint keeps them).
    args: BTreeSet<String>,
}

impl Rule for NumericUser {
    fn check(&mut self, line: u32, instruction: &Instruction, out: &mut Vec<Failure>) {
        match instruction {
            Instruction::User(user) => {
                let uid = user.split(':').next().unwrap_or_default();
                let numeric = uid.chars().all(|c| c.is_ascii_digit());
                let from_arg = self.args.iter().any(|arg| {
                    user.contains(&format!("${{{arg}}}")) || user.contains(&format!("${arg}"))
                });
                if !numeric && !from_arg {
                    out.push(DL3066.at(line));
                }
            }
            Instruction::Arg { name, .. } => {
                self.args.insert(name.clone());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::assert_lines;
    use super::*;

    #[test]
    fn dl1001_inline_pragmas() {
        let text =
            "FROM a:1\n# hadolint ignore=DL3003\nRUN cd /x\n# hadolint global ignore=DL3003\n";
        assert_lines("DL1001", text, &[2]);
        assert_lines("DL1001", "FROM a:1\n# just a comment\n", &[]);
        assert!(is_inline_ignore_pragma(" hadolint ignore=DL3008,SC2086"));
        assert!(is_inline_ignore_pragma(
            "hadolint\tignore = DL3008 , DL3009 # why"
        ));
        assert!(!is_inline_ignore_pragma(" hadolintignore=DL3008"));
        assert!(!is_inline_ignore_pragma(" hadolint ignore="));
        assert!(!is_inline_ignore_pragma(" hadolint ignore=DL3008 because"));
        assert!(!is_inline_ignore_pragma(" hadolint stage ignore=DL3008"));
        assert!(!is_inline_ignore_pragma(" hadolint shell=bash"));
    }

    #[test]
    fn dl1001_is_ignored_by_default() {
        use crate::lint::{Settings, lint};
        let text = "FROM a:1\n# hadolint ignore=DL3003\nRUN cd /x\n";
        assert!(
            !lint(text, &Settings::default())
                .iter()
                .any(|f| f.code == "DL1001")
        );
        let mut settings = Settings::default();
        settings
            .overrides
            .insert("DL1001".to_string(), Severity::Info);
        let codes: Vec<(String, u32)> = lint(text, &settings)
            .into_iter()
            .map(|f| (f.code, f.line))
            .collect();
        assert_eq!(codes, [("DL1001".to_string(), 2)]);
    }

    #[test]
    fn dl3011_ports() {
        assert_lines("DL3011", "FROM a:1\nEXPOSE 80000\n", &[2]);
        assert_lines("DL3011", "FROM a:1\nEXPOSE 80 65536/udp\n", &[2]);
        assert_lines("DL3011", "FROM a:1\nEXPOSE 40000-80000/tcp\n", &[2]);
        assert_lines(
            "DL3011",
            "FROM a:1\nEXPOSE 80 443 65535 1000-2000 $PORT\n",
            &[],
        );
    }

    #[test]
    fn dl3025_json_notation() {
        assert_lines("DL3025", "FROM a:1\nCMD my-cmd --arg\n", &[2]);
        assert_lines("DL3025", "FROM a:1\nENTRYPOINT my-cmd --arg\n", &[2]);
        assert_lines(
            "DL3025",
            "FROM a:1\nHEALTHCHECK CMD curl -f localhost\n",
            &[2],
        );
        assert_lines("DL3025", "FROM a:1\nCMD [\"my-cmd\", \"--arg\"]\n", &[]);
        assert_lines("DL3025", "FROM a:1\nENTRYPOINT [\"a\"]\n", &[]);
        assert_lines(
            "DL3025",
            "FROM a:1\nHEALTHCHECK CMD [\"curl\", \"-f\"]\n",
            &[],
        );
        assert_lines("DL3025", "FROM a:1\nHEALTHCHECK NONE\n", &[]);
    }

    #[test]
    fn references_are_read_as_docker_expands_them() {
        let cases: [(&str, &[&str]); 10] = [
            ("${A}/b", &["A"]),
            ("x$A-y", &["A"]),
            ("$AB", &["AB"]),
            ("${A:-x}", &["A:-x"]),
            ("${B:-${A}}", &["B:-${A", "A"]),
            ("$$A", &["A"]),
            ("${A", &[]),
            ("$_A1 ${A_}", &["_A1", "A_"]),
            ("é$Aé", &["A"]),
            ("$A@B ${A@B}", &["A", "A@B"]),
        ];
        for (text, expected) in cases {
            let mut found: Vec<&str> = references(text).into_iter().collect();
            found.sort_unstable();
            let mut expected = expected.to_vec();
            expected.sort_unstable();
            assert_eq!(found, expected, "{text:?}");
        }
    }

    #[test]
    fn an_env_of_thousands_of_pairs_is_checked_in_linear_time() {
        // Found by slipway-fuzz: 8,000 pairs took 13 s (every name looked for in every value).
        let pairs: String = (0..20_000).map(|i| format!(" A{i}=$A{}", i + 1)).collect();
        let started = std::time::Instant::now();
        assert_lines("DL3044", &format!("FROM a:1\nENV{pairs}\n"), &[2]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn dl3044_env_self_reference() {
        assert_lines("DL3044", "FROM a:1\nENV A=a B=${A}/b\n", &[2]);
        assert_lines("DL3044", "FROM a:1\nENV A=a B=$A\n", &[2]);
        assert_lines("DL3044", "FROM a:1\nENV A=a B=x$A-y\n", &[2]);
        // A later pair referenced by an earlier one counts too.
        assert_lines("DL3044", "FROM a:1\nENV B=$A A=a\n", &[2]);
        for ok in [
            "ENV A=a B=$AB",
            "ENV A=$A:x",
            "ENV PATH=/x:$PATH",
            "ENV A=a\nENV B=$A",
            "ENV A a b $A",
        ] {
            assert_lines("DL3044", &format!("FROM a:1\n{ok}\n"), &[]);
        }
        assert_lines("DL3044", "FROM a:1\nARG A\nENV A=a B=$A\n", &[]);
        assert_lines("DL3044", "FROM a:1\nENV A=1\nENV A=a B=$A\n", &[]);
        assert_lines(
            "DL3044",
            "FROM a:1\nENV BLA=\"blubb\" BLUBB=\"$BLA/$BLAFOO/blubb\"\n",
            &[2],
        );
        assert_lines(
            "DL3044",
            "FROM a:1\nENV BLA=\"blubb\" BLUBB=\"BLA/$BLAFOO/BLA\"\n",
            &[],
        );
        assert_lines(
            "DL3044",
            "FROM a:1\nENV BLA=x BLUBB=\"${FOOBLA}/${BLAFOO}\"\n",
            &[],
        );
        assert_lines(
            "DL3044",
            "FROM a:1\nENV PATH=/bla:${PATH} PATH=/blubb:${PATH}\n",
            &[2],
        );
    }

    #[test]
    fn dl3064_sensitive_names() {
        assert_lines("DL3064", "FROM a:1\nARG github_token\n", &[2]);
        assert_lines("DL3064", "FROM a:1\nARG MY_PASSWORD=x\n", &[2]);
        assert_lines(
            "DL3064",
            "FROM a:1\nENV A=1 AWS_SECRET_ACCESS_KEY=x\n",
            &[2],
        );
        assert_lines("DL3064", "FROM a:1\nENV TRAVIS_SUDO=1\n", &[2]);
        assert_lines("DL3064", "FROM a:1\nONBUILD ARG DB_SECRET\n", &[2]);
        assert_lines(
            "DL3064",
            "FROM a:1\nARG VERSION\nENV PATH=/x HOME=/y\n",
            &[],
        );
    }

    #[test]
    fn dl3066_numeric_user() {
        assert_lines("DL3066", "FROM a:1\nUSER nobody\n", &[2]);
        assert_lines("DL3066", "FROM a:1\nUSER app:1000\n", &[2]);
        assert_lines("DL3066", "FROM a:1\nUSER $USER\n", &[2]);
        for ok in ["1000", "1000:1000", "0", ":1000"] {
            assert_lines("DL3066", &format!("FROM a:1\nUSER {ok}\n"), &[]);
        }
        assert_lines("DL3066", "ARG UID\nFROM a:1\nUSER ${UID}\n", &[]);
        assert_lines("DL3066", "FROM a:1\nARG NAME=app\nUSER $NAME:1000\n", &[]);
    }

    #[test]
    fn dl4000_maintainer() {
        assert_lines(
            "DL4000",
            "FROM a:1\nMAINTAINER Lukas <me@example.com>\n",
            &[2],
        );
        assert_lines("DL4000", "FROM a:1\nLABEL maintainer=me\n", &[]);
    }
}
