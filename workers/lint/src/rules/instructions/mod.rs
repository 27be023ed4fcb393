//! Rules about the instructions themselves (everything but package managers and the label
//! schema): stages and base images, `RUN` scripts, `COPY`/`ADD` paths, and the remaining
//! instructions (`ENV`, `ARG`, `USER`, `EXPOSE`, `CMD`, `MAINTAINER`, comments).

mod commands;
mod files;
mod settings;
mod stages;

use super::{Meta, Registry, RuleConfig};

/// The rules of this group, sorted by code.
pub const RULES: &[Meta] = &[
    settings::DL1001,
    files::DL3000,
    commands::DL3001,
    stages::DL3002,
    commands::DL3003,
    commands::DL3004,
    stages::DL3006,
    stages::DL3007,
    commands::DL3010,
    settings::DL3011,
    stages::DL3012,
    files::DL3020,
    files::DL3021,
    stages::DL3022,
    stages::DL3023,
    stages::DL3024,
    settings::DL3025,
    stages::DL3026,
    stages::DL3029,
    stages::DL3043,
    settings::DL3044,
    files::DL3045,
    commands::DL3046,
    commands::DL3047,
    stages::DL3057,
    commands::DL3059,
    stages::DL3061,
    stages::DL3063,
    settings::DL3064,
    stages::DL3065,
    settings::DL3066,
    files::DL3067,
    settings::DL4000,
    commands::DL4001,
    stages::DL4003,
    stages::DL4004,
    commands::DL4005,
    commands::DL4006,
];

/// Registers the rules of this group.
pub fn register(registry: &mut Registry, config: &RuleConfig) {
    commands::register(registry);
    files::register(registry);
    settings::register(registry);
    stages::register(registry, config);
}

/// A path with the double and single quotes around it removed (hadolint's `dropQuotes`).
fn drop_quotes(text: &str) -> &str {
    text.trim_matches(['"', '\''])
}

/// Whether `path` starts with a drive letter and a colon (`C:\app`, `d:`).
fn is_windows_absolute(path: &str) -> bool {
    let mut chars = path.chars();
    matches!((chars.next(), chars.next()), (Some(drive), Some(':')) if drive.is_alphabetic())
}

#[cfg(test)]
mod test_support {
    use crate::parser;
    use crate::rules::RuleConfig;

    /// The lines at which `code` is reported for `dockerfile`, in order (repeats kept).
    pub fn lines(code: &str, dockerfile: &str) -> Vec<u32> {
        lines_with(code, dockerfile, &RuleConfig::default())
    }

    /// As [`lines`], with a rule configuration.
    pub fn lines_with(code: &str, dockerfile: &str, config: &RuleConfig) -> Vec<u32> {
        let parsed = parser::parse(dockerfile).expect("the test Dockerfile parses");
        let mut found: Vec<u32> = crate::lint::run_rules(&parsed, config)
            .into_iter()
            .filter(|f| f.code == code)
            .map(|f| f.line)
            .collect();
        found.sort_unstable();
        found
    }

    /// Asserts that `code` is reported exactly at `expected` lines.
    #[track_caller]
    pub fn assert_lines(code: &str, dockerfile: &str, expected: &[u32]) {
        assert_eq!(
            lines(code, dockerfile),
            expected,
            "{code} on:\n{dockerfile}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_list_is_sorted_and_unique() {
        let codes: Vec<&str> = RULES.iter().map(|m| m.code).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(codes, sorted);
        assert_eq!(codes.len(), 38);
    }

    #[test]
    fn quotes_and_windows_paths() {
        assert_eq!(drop_quotes("\"/app'"), "/app");
        assert!(is_windows_absolute("C:\\app"));
        assert!(is_windows_absolute("d:"));
        assert!(!is_windows_absolute("a"));
        assert!(!is_windows_absolute("1:"));
        assert!(!is_windows_absolute(""));
    }
}
