//! `.dockerignore` with Docker's own semantics, rewritten from moby's `patternmatcher` and
//! `patternmatcher/ignorefile` packages (which the docker CLI uses to build a context):
//!
//! - lines starting with `#` are comments (checked *before* trimming), blank lines are skipped, a
//!   UTF-8 BOM is dropped; each pattern is trimmed, cleaned like Go's `filepath.Clean`, and loses a
//!   leading `/`; `!` makes an exception that re-includes what earlier patterns excluded;
//! - the last pattern that matches a path decides; a path also matches a pattern when one of its
//!   parent directories does;
//! - patterns use Go's `filepath.Match` syntax (`*`, `?`, `[…]`, `\` escapes), checked the same
//!   way, plus `**` for any number of directories. Like moby, a pattern is compiled to a regular
//!   expression (or an exact, prefix or suffix comparison) and invalid expressions fail only when
//!   the pattern is first used.
//!
//! Known difference: moby runs Go's `regexp`; here the same expression runs on Rust's `regex`
//! after a translation of the syntax the two spell differently (`\d`, `\s`, `\w` are ASCII, `{`
//! that is not a repetition is literal, `[`, `&`, `~`, `--` inside a class are literal). Go-only
//! syntax such as `\Q…\E` or octal escapes makes the pattern invalid rather than matching.

use std::fmt;

use regex::Regex;

/// A `.dockerignore` pattern that Docker would reject too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as cleaned (with its `!`).
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The patterns of a `.dockerignore` file, as moby's `ignorefile.ReadAll` returns them.
pub fn read_patterns(contents: &[u8]) -> Vec<String> {
    let contents = contents.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(contents);
    let text = String::from_utf8_lossy(contents);
    let mut patterns = Vec::new();
    for line in text.split('\n') {
        // bufio.ScanLines drops one trailing carriage return.
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = pattern.to_owned();
        if !cleaned.is_empty() {
            cleaned = clean(&cleaned);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        patterns.push(cleaned);
    }
    patterns
}

/// Go's `filepath.Clean` for `/`-separated paths: the shortest equivalent path, lexically.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

/// Compiled `.dockerignore` patterns (moby's `PatternMatcher`).
pub struct Matcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.patterns.iter().map(Pattern::to_string))
            .finish()
    }
}

/// Which patterns matched a directory, handed to its children
/// ([`Matcher::matches_using_parent_results`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

struct Pattern {
    cleaned: String,
    /// Number of `/`-separated components of `cleaned`.
    dirs: usize,
    exclusion: bool,
    kind: Kind,
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exclusion {
            write!(f, "!{}", self.cleaned)
        } else {
            f.write_str(&self.cleaned)
        }
    }
}

enum Kind {
    /// The path equals the pattern.
    Exact,
    /// The pattern ended in `**`: the path starts with the rest.
    Prefix,
    /// The pattern started with `**`: the path ends with the rest.
    Suffix,
    /// Anything else, or why the expression does not compile.
    Regex(Result<Regex, String>),
}

impl Matcher {
    /// Compile `patterns` (as [`read_patterns`] returns them, `!` marking exceptions). Fails like
    /// moby's `patternmatcher.New`: on a lone `!` and on a pattern `filepath.Match` rejects.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let mut compiled = Vec::with_capacity(patterns.len());
        let mut exclusions = false;
        for pattern in patterns {
            let trimmed = pattern.as_ref().trim();
            if trimmed.is_empty() {
                continue;
            }
            let mut cleaned = clean(trimmed);
            let exclusion = cleaned.starts_with('!');
            if exclusion {
                if cleaned.len() == 1 {
                    return Err(PatternError {
                        pattern: cleaned,
                        reason: "illegal exclusion pattern: expected a pattern after '!'"
                            .to_owned(),
                    });
                }
                cleaned.remove(0);
                exclusions = true;
            }
            if let Err(reason) = check_glob_syntax(&cleaned) {
                return Err(PatternError {
                    pattern: pattern.as_ref().trim().to_owned(),
                    reason,
                });
            }
            let kind = compile(&cleaned);
            compiled.push(Pattern {
                dirs: cleaned.split('/').count(),
                cleaned,
                exclusion,
                kind,
            });
        }
        Ok(Self {
            patterns: compiled,
            exclusions,
        })
    }

    /// Whether any pattern is an exception (`!…`).
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether some exception pattern names a path inside directory `dir` (moby's test for
    /// walking into an excluded directory: the exception's text starts with `dir/`).
    pub fn has_exception_inside(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", p.cleaned).starts_with(&dir_slash))
    }

    /// Whether `file` is excluded, checking each pattern against the file and each of its parent
    /// directories (moby's `MatchesOrParentMatches`; the daemon uses it on the Dockerfile).
    pub fn matches_or_parent_matches(&self, file: &str) -> Result<bool, PatternError> {
        let parents = parent_dirs(file);
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(file)?;
            if !hit {
                for i in 1..=parents.len() {
                    if pattern.matches(&parents[..i].join("/")).unwrap_or(false) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// moby's deprecated `Matches`, which only checks the parent directory with as many
    /// components as the pattern has. The docker CLI still uses it to decide whether the
    /// Dockerfile and `.dockerignore` need an exception so they are sent.
    pub fn matches_one_parent_level(&self, file: &str) -> Result<bool, PatternError> {
        let file = clean(file);
        if file == "." {
            return Ok(false);
        }
        let parents = parent_dirs(&file);
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(&file)?;
            if !hit && !parents.is_empty() && pattern.dirs <= parents.len() {
                hit = pattern
                    .matches(&parents[..pattern.dirs].join("/"))
                    .unwrap_or(false);
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// Whether `file` is excluded, given what matched its parent directory (`None` for a path
    /// whose parents were not visited, e.g. at the top of the walk). Returns the information to
    /// hand to `file`'s children (moby's `MatchesUsingParentResults`, used while walking).
    pub fn matches_using_parent_results(
        &self,
        file: &str,
        parent: Option<&MatchInfo>,
    ) -> Result<(bool, MatchInfo), PatternError> {
        let parent_matched = parent
            .map(|info| info.parent_matched.as_slice())
            .filter(|m| !m.is_empty());
        if let Some(m) = parent_matched
            && m.len() != self.patterns.len()
        {
            return Err(PatternError {
                pattern: String::new(),
                reason: format!(
                    "expected parent results for {} patterns, found {}",
                    self.patterns.len(),
                    m.len()
                ),
            });
        }
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        for (i, pattern) in self.patterns.iter().enumerate() {
            // If the parent matched this pattern, the child does too.
            let mut hit = parent_matched.is_some_and(|m| m[i]);
            if !hit {
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(file)?;
                if !hit && parent_matched.is_none() {
                    let parents = parent_dirs(file);
                    for j in 1..=parents.len() {
                        if pattern.matches(&parents[..j].join("/")).unwrap_or(false) {
                            hit = true;
                            break;
                        }
                    }
                }
            }
            info.parent_matched[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok((matched, info))
    }
}

/// The components of `file`'s parent directory (`Dir(file)`), empty when it is `.`.
fn parent_dirs(file: &str) -> Vec<&str> {
    match file.rfind('/') {
        // Go's filepath.Dir cleans: "a//b" has parent "a".
        Some(slash) => file[..slash].split('/').filter(|p| !p.is_empty()).collect(),
        None => Vec::new(),
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> Result<bool, PatternError> {
        Ok(match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix)
                    // "**/foo" matches "foo".
                    || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Regex(Ok(regex)) => regex.is_match(path),
            Kind::Regex(Err(reason)) => {
                return Err(PatternError {
                    pattern: self.to_string(),
                    reason: reason.clone(),
                });
            }
        })
    }
}

/// moby's `Pattern.compile`: the match kind, and for [`Kind::Regex`] the expression moby builds
/// (then translated for Rust's `regex`).
fn compile(pattern: &str) -> Kind {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut expression = String::from("^");
    let mut detected = Detected::Exact;
    let mut pos = 0;
    let mut step = 0;
    while pos < chars.len() {
        let ch = chars[pos];
        pos += 1;
        match ch {
            '*' if chars.get(pos) == Some(&'*') => {
                pos += 1;
                // "**/" is "**".
                if chars.get(pos) == Some(&'/') {
                    pos += 1;
                }
                if pos == chars.len() {
                    // A trailing "**" accepts everything, as in .gitignore.
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        expression.push_str(".*");
                        detected = Detected::Regexp;
                    }
                } else {
                    // Any number of directories, even none.
                    expression.push_str("(.*/)?");
                    detected = Detected::Regexp;
                }
                if step == 0 {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                expression.push_str("[^/]*");
                detected = Detected::Regexp;
            }
            '?' => {
                expression.push_str("[^/]");
                detected = Detected::Regexp;
            }
            // moby's escape table only works for these (its bitmap drops '|', '{' and '}').
            '.' | '+' | '(' | ')' | '$' => {
                expression.push('\\');
                expression.push(ch);
            }
            '\\' => match chars.get(pos) {
                Some(&next) => {
                    expression.push('\\');
                    expression.push(next);
                    pos += 1;
                    detected = Detected::Regexp;
                }
                None => expression.push('\\'),
            },
            '[' | ']' => {
                expression.push(ch);
                detected = Detected::Regexp;
            }
            other => expression.push(other),
        }
        step += 1;
    }
    match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix,
        Detected::Suffix => Kind::Suffix,
        Detected::Regexp => {
            expression.push('$');
            Kind::Regex(
                Regex::new(&go_regex_to_rust(&expression))
                    .map_err(|e| format!("invalid pattern syntax: {e}")),
            )
        }
    }
}

/// Check `pattern` as Go's `filepath.Match` does (it is what moby calls to reject patterns):
/// character classes must be closed and non-empty, ranges need both ends, and `\` must escape
/// something.
fn check_glob_syntax(pattern: &str) -> Result<(), String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    // Go's getEsc: one class character, possibly escaped; the class must go on after it.
    let class_char = |i: &mut usize| -> Result<(), String> {
        match chars.get(*i) {
            None => return Err("unterminated character class".to_owned()),
            Some('-') | Some(']') => {
                return Err(format!(
                    "expected a character in a class at offset {}, found {:?}",
                    *i, chars[*i]
                ));
            }
            Some('\\') => {
                *i += 1;
                if *i >= chars.len() {
                    return Err("unterminated escape in a character class".to_owned());
                }
            }
            Some(_) => {}
        }
        *i += 1;
        if *i >= chars.len() {
            return Err("unterminated character class".to_owned());
        }
        Ok(())
    };
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                i += 1;
                if i >= chars.len() {
                    return Err("expected a character after the trailing '\\'".to_owned());
                }
                i += 1;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if chars.get(i) == Some(&']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    class_char(&mut i)?;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        class_char(&mut i)?;
                    }
                    ranges += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Rewrite a Go `regexp` expression (as moby builds it) into one Rust's `regex` reads the same
/// way. See the module documentation for what is translated.
fn go_regex_to_rust(go: &str) -> String {
    let chars: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() + 8);
    let mut i = 0;
    // Copies `\p{…}`/`\x{…}` bodies whole; returns whether it did.
    let braced = |i: &mut usize, out: &mut String| -> bool {
        if chars.get(*i) == Some(&'{')
            && let Some(close) = chars[*i..].iter().position(|&c| c == '}')
        {
            out.extend(&chars[*i..*i + close + 1]);
            *i += close + 1;
            return true;
        }
        false
    };
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '\\' => {
                let Some(&next) = chars.get(i) else {
                    out.push('\\');
                    continue;
                };
                i += 1;
                match perl_class(next) {
                    Some(class) => {
                        out.push('[');
                        out.push_str(class);
                        out.push(']');
                    }
                    None => {
                        out.push('\\');
                        out.push(next);
                        if matches!(next, 'p' | 'P' | 'x') {
                            braced(&mut i, &mut out);
                        }
                    }
                }
            }
            '[' => {
                out.push('[');
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // A ']' right after the opening is literal in Go.
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                while i < chars.len() {
                    let c = chars[i];
                    i += 1;
                    match c {
                        ']' => {
                            out.push(']');
                            break;
                        }
                        '\\' => {
                            let Some(&next) = chars.get(i) else {
                                out.push('\\');
                                break;
                            };
                            i += 1;
                            match perl_class(next) {
                                // A nested class is a union in Rust's syntax.
                                Some(class) => {
                                    out.push('[');
                                    out.push_str(class);
                                    out.push(']');
                                }
                                None => {
                                    out.push('\\');
                                    out.push(next);
                                    if matches!(next, 'p' | 'P' | 'x') {
                                        braced(&mut i, &mut out);
                                    }
                                }
                            }
                        }
                        '[' => {
                            // "[:alpha:]" is a POSIX class in both; any other '[' is literal in Go.
                            let posix = if chars.get(i) == Some(&':') {
                                chars[i + 1..].windows(2).position(|w| w == [':', ']'])
                            } else {
                                None
                            };
                            match posix {
                                // ":name:]" runs from i to i + 1 + end + 2.
                                Some(end) if end > 0 => {
                                    out.push('[');
                                    out.extend(&chars[i..i + end + 3]);
                                    i += end + 3;
                                }
                                _ => out.push_str("\\["),
                            }
                        }
                        '&' | '~' => {
                            out.push('\\');
                            out.push(c);
                        }
                        '-' if chars.get(i) == Some(&'-') => {
                            out.push_str("-\\-");
                            i += 1;
                        }
                        other => out.push(other),
                    }
                }
            }
            '{' => {
                // A repetition {n}, {n,} or {n,m} stays; any other '{' is literal in Go.
                let rest: String = chars[i..].iter().take(24).collect();
                let repetition = rest.find('}').filter(|&end| {
                    let body = &rest[..end];
                    let (low, high) = body.split_once(',').unwrap_or((body, "0"));
                    !low.is_empty()
                        && low.bytes().all(|b| b.is_ascii_digit())
                        && high.bytes().all(|b| b.is_ascii_digit())
                });
                match repetition {
                    Some(end) => {
                        out.push('{');
                        out.push_str(&rest[..=end]);
                        i += rest[..=end].chars().count();
                    }
                    None => out.push_str("\\{"),
                }
            }
            '}' => out.push_str("\\}"),
            ']' => out.push_str("\\]"),
            other => out.push(other),
        }
    }
    out
}

/// Go's ASCII Perl classes, as Rust class contents.
fn perl_class(letter: char) -> Option<&'static str> {
    Some(match letter {
        'd' => "0-9",
        'D' => "^0-9",
        's' => "\\t\\n\\x0C\\r ",
        'S' => "^\\t\\n\\x0C\\r ",
        'w' => "0-9A-Za-z_",
        'W' => "^0-9A-Za-z_",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// moby's `Matches` (the deprecated helper its tests call): compile, clean the path, check.
    fn moby_matches(file: &str, patterns: &[&str]) -> Result<bool, PatternError> {
        Matcher::new(patterns)?.matches_one_parent_level(file)
    }

    /// What the walk computes: results for each parent directory first, then the file.
    fn walk_matches(matcher: &Matcher, file: &str) -> bool {
        let parents = parent_dirs(file);
        let mut info: Option<MatchInfo> = None;
        for i in 1..=parents.len() {
            let (_, next) = matcher
                .matches_using_parent_results(&parents[..i].join("/"), info.as_ref())
                .unwrap();
            info = Some(next);
        }
        matcher
            .matches_using_parent_results(file, info.as_ref())
            .unwrap()
            .0
    }

    // moby/patternmatcher's TestMatches table, checked the three ways its test does.
    const MATCHES: &[(&str, &str, bool)] = &[
        ("**", "file", true),
        ("**", "file/", true),
        ("**/", "file", true),
        ("**/", "file/", true),
        ("**", "/", true),
        ("**/", "/", true),
        ("**", "dir/file", true),
        ("**/", "dir/file", true),
        ("**", "dir/file/", true),
        ("**/", "dir/file/", true),
        ("**/**", "dir/file", true),
        ("**/**", "dir/file/", true),
        ("dir/**", "dir/file", true),
        ("dir/**", "dir/file/", true),
        ("dir/**", "dir/dir2/file", true),
        ("dir/**", "dir/dir2/file/", true),
        ("**/dir", "dir", true),
        ("**/dir", "dir/file", true),
        ("**/dir2/*", "dir/dir2/file", true),
        ("**/dir2/*", "dir/dir2/file/", true),
        ("**/dir2/**", "dir/dir2/dir3/file", true),
        ("**/dir2/**", "dir/dir2/dir3/file/", true),
        ("**file", "file", true),
        ("**file", "dir/file", true),
        ("**/file", "dir/file", true),
        ("**file", "dir/dir/file", true),
        ("**/file", "dir/dir/file", true),
        ("**/file*", "dir/dir/file", true),
        ("**/file*", "dir/dir/file.txt", true),
        ("**/file*txt", "dir/dir/file.txt", true),
        ("**/file*.txt", "dir/dir/file.txt", true),
        ("**/file*.txt*", "dir/dir/file.txt", true),
        ("**/**/*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt2", "dir/dir/file.txt", false),
        ("**/*.txt", "file.txt", true),
        ("**/**/*.txt", "file.txt", true),
        ("a**/*.txt", "a/file.txt", true),
        ("a**/*.txt", "a/dir/file.txt", true),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("a/*.txt", "a/dir/file.txt", false),
        ("a/*.txt", "a/file.txt", true),
        ("a/*.txt**", "a/file.txt", true),
        ("a[b-d]e", "ae", false),
        ("a[b-d]e", "ace", true),
        ("a[b-d]e", "aae", false),
        ("a[^b-d]e", "aze", true),
        (".*", ".foo", true),
        (".*", "foo", false),
        ("abc.def", "abcdef", false),
        ("abc.def", "abc.def", true),
        ("abc.def", "abcZdef", false),
        ("abc?def", "abcZdef", true),
        ("abc?def", "abcdef", false),
        ("a\\\\", "a\\", true),
        ("**/foo/bar", "foo/bar", true),
        ("**/foo/bar", "dir/foo/bar", true),
        ("**/foo/bar", "dir/dir2/foo/bar", true),
        ("abc/**", "abc", false),
        ("abc/**", "abc/def", true),
        ("abc/**", "abc/def/ghi", true),
        ("**/.foo", ".foo", true),
        ("**/.foo", "bar.foo", false),
        ("a(b)c/def", "a(b)c/def", true),
        ("a(b)c/def", "a(b)c/xyz", false),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        ("a\\*b", "a*b", true),
    ];

    const MULTI: &[(&[&str], &str, bool)] = &[
        (&["**", "!util/docker/web"], "util/docker/web/foo", false),
        (
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo",
            true,
        ),
        (
            &[
                "**",
                "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            ],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
        (
            &["**", "!dist/*.whl"],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
    ];

    #[test]
    fn moby_match_table() {
        for &(pattern, text, expected) in MATCHES {
            let matcher = Matcher::new(&[pattern]).unwrap();
            assert_eq!(
                matcher.matches_or_parent_matches(text).unwrap(),
                expected,
                "MatchesOrParentMatches pattern={pattern:?} text={text:?}"
            );
            assert_eq!(
                walk_matches(&matcher, text),
                expected,
                "MatchesUsingParentResults pattern={pattern:?} text={text:?}"
            );
            assert_eq!(
                matcher.matches_using_parent_results(text, None).unwrap().0,
                expected,
                "MatchesUsingParentResults without context pattern={pattern:?} text={text:?}"
            );
        }
        for &(patterns, text, expected) in MULTI {
            let matcher = Matcher::new(patterns).unwrap();
            assert_eq!(
                matcher.matches_or_parent_matches(text).unwrap(),
                expected,
                "{patterns:?} {text:?}"
            );
            assert_eq!(
                walk_matches(&matcher, text),
                expected,
                "{patterns:?} {text:?}"
            );
            assert_eq!(
                matcher.matches_using_parent_results(text, None).unwrap().0,
                expected,
                "{patterns:?} {text:?}"
            );
        }
    }

    // moby's TestMatch: Go's filepath.Match cases run through `Matches`, errors included.
    #[test]
    fn moby_filepath_match_table() {
        let cases: &[(&str, &str, Result<bool, ()>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(true)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(())),
            ("[-]", "-", Err(())),
            ("[x-]", "x", Err(())),
            ("[x-]", "-", Err(())),
            ("[x-]", "z", Err(())),
            ("[-x]", "x", Err(())),
            ("[-x]", "-", Err(())),
            ("[-x]", "a", Err(())),
            ("\\", "a", Err(())),
            ("[a-b-c]", "a", Err(())),
            ("[", "a", Err(())),
            ("[^", "a", Err(())),
            ("[^bc", "a", Err(())),
            ("a[", "a", Err(())),
            ("a[", "ab", Err(())),
            ("*x", "xxx", Ok(true)),
        ];
        for &(pattern, text, expected) in cases {
            let found = moby_matches(text, &[pattern]).map_err(|_| ());
            assert_eq!(found, expected, "Match({pattern:?}, {text:?})");
        }
    }

    #[test]
    fn moby_single_pattern_helpers() {
        assert!(moby_matches("fileutils.go", &["*"]).unwrap());
        assert!(moby_matches("fileutils.go", &["*.go"]).unwrap());
        assert!(moby_matches("fileutils.go", &["!fileutils.go", "*.go"]).unwrap());
        assert!(!moby_matches("docs/README.md", &["docs", "!docs/README.md"]).unwrap());
        assert!(!moby_matches("docs/README.md", &["docs/", "!docs/README.md"]).unwrap());
        assert!(!moby_matches("docs/README.md", &["docs/*", "!docs/README.md"]).unwrap());
        assert!(!moby_matches("fileutils.go", &["*.go", "!fileutils.go"]).unwrap());
        assert!(!moby_matches(".", &["*.go"]).unwrap());
        assert!(moby_matches("fileutils.go", &["!"]).is_err());
        assert!(!moby_matches("/any/path/there", &[] as &[&str]).unwrap());
        assert!(moby_matches("/any/path/there", &["["]).is_err());
        // Whitespace around a pattern and empty patterns are dropped.
        assert!(
            Matcher::new(&["docs", "  !docs/README.md"])
                .unwrap()
                .exclusions()
        );
        assert!(
            Matcher::new(&["docs", "!docs/README.md  "])
                .unwrap()
                .exclusions()
        );
        assert_eq!(
            Matcher::new(&["docs", "config", ""])
                .unwrap()
                .patterns
                .len(),
            2
        );
        assert!(!Matcher::new(&["docs"]).unwrap().exclusions());
    }

    // moby's TestCompile: the match kind, and the expression for regexp ones.
    #[test]
    fn moby_compile_table() {
        let cases: &[(&str, &str)] = &[
            ("*", "^[^/]*$"),
            ("file*", "^file[^/]*$"),
            ("*file", "^[^/]*file$"),
            ("a*/b", "^a[^/]*/b$"),
            ("**", "suffix"),
            ("**/**", "^(.*/)?.*$"),
            ("dir/**", "prefix"),
            ("**/dir", "suffix"),
            ("**/dir2/*", "^(.*/)?dir2/[^/]*$"),
            ("**/dir2/**", "^(.*/)?dir2/.*$"),
            ("**file", "suffix"),
            ("**/file*txt", "^(.*/)?file[^/]*txt$"),
            ("**/**/*.txt", "^(.*/)?(.*/)?[^/]*\\.txt$"),
            ("a[b-d]e", "^a[b-d]e$"),
            (".*", "^\\.[^/]*$"),
            ("abc.def", "exact"),
            ("abc?def", "^abc[^/]def$"),
            ("**/foo/bar", "suffix"),
            ("a(b)c/def", "exact"),
            ("a.|)$(}+{bc", "exact"),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "exact",
            ),
        ];
        for &(pattern, expected) in cases {
            let found = match compile(&clean(pattern)) {
                Kind::Exact => "exact".to_owned(),
                Kind::Prefix => "prefix".to_owned(),
                Kind::Suffix => "suffix".to_owned(),
                Kind::Regex(Ok(regex)) => regex.as_str().to_owned(),
                Kind::Regex(Err(e)) => panic!("{pattern}: {e}"),
            };
            assert_eq!(found, expected, "compile({pattern:?})");
        }
    }

    // moby's regression test: a pattern filepath.Match accepts but whose expression does not
    // compile ("[Local-Only]" has the range l-O) fails when used, every time, without panicking.
    #[test]
    fn a_pattern_that_does_not_compile_fails_when_used() {
        let matcher = Matcher::new(&["[Local-Only]/"]).unwrap();
        assert!(matcher.matches_or_parent_matches("x").is_err());
        assert!(matcher.matches_or_parent_matches("x").is_err());
        // Patterns skipped because they cannot change the result are not evaluated, as in moby.
        let unused = Matcher::new(&["![Local-Only]", "a"]).unwrap();
        assert!(!unused.matches_or_parent_matches("b").unwrap());
    }

    #[test]
    fn go_regexp_syntax_is_translated() {
        let matcher = |p: &str| Matcher::new(&[p]).unwrap();
        // '{' that is not a repetition is literal in Go; '|' is alternation (moby does not
        // escape it).
        assert!(
            matcher("*.{js,ts}")
                .matches_or_parent_matches("x.{js,ts}")
                .unwrap()
        );
        assert!(
            !matcher("*.{js,ts}")
                .matches_or_parent_matches("x.js")
                .unwrap()
        );
        assert!(matcher("a|b*").matches_or_parent_matches("a").unwrap());
        assert!(matcher("a\\d").matches_or_parent_matches("a7").unwrap());
        assert!(
            !matcher("a\\d").matches_or_parent_matches("a٣").unwrap(),
            "\\d is ASCII in Go"
        );
        assert!(matcher("[[]x").matches_or_parent_matches("[x").unwrap());
        assert!(
            matcher("[[:digit:]]x")
                .matches_or_parent_matches("1x")
                .unwrap()
        );
        assert!(matcher("[a&&b]").matches_or_parent_matches("&").unwrap());
        assert!(matcher("[\\d_]").matches_or_parent_matches("_").unwrap());
    }

    #[test]
    fn dockerignore_files_are_read_like_moby_ignorefile() {
        let file = "\u{feff}# comment\n\n  docs/  \n!docs/README.md\n/abs/path\n./a/../b//c/\n  # not a comment\n! spaced\r\n/\n!/x\n";
        assert_eq!(
            read_patterns(file.as_bytes()),
            vec![
                "docs",
                "!docs/README.md",
                "abs/path",
                "b/c",
                "# not a comment",
                "!spaced",
                "/",
                "!x"
            ]
        );
    }

    #[test]
    fn clean_is_go_filepath_clean() {
        for (path, cleaned) in [
            ("", "."),
            (".", "."),
            ("a/", "a"),
            ("a//b", "a/b"),
            ("./a/./b/", "a/b"),
            ("a/../b", "b"),
            ("a/..", "."),
            ("../a", "../a"),
            ("../../a/..", "../.."),
            ("/../a", "/a"),
            ("/", "/"),
            ("//", "/"),
            ("!./a", "!./a"),
        ] {
            assert_eq!(clean(path), cleaned, "Clean({path:?})");
        }
    }

    #[test]
    fn exceptions_reinclude_and_later_rules_win() {
        let m = Matcher::new(&["*.md", "!README.md"]).unwrap();
        assert!(m.matches_or_parent_matches("CHANGES.md").unwrap());
        assert!(!m.matches_or_parent_matches("README.md").unwrap());
        assert!(
            !m.matches_or_parent_matches("docs/README.md").unwrap(),
            "*.md does not reach into directories"
        );
        let m = Matcher::new(&["!README.md", "*.md"]).unwrap();
        assert!(
            m.matches_or_parent_matches("README.md").unwrap(),
            "the later rule wins"
        );
        let m = Matcher::new(&["**/*.go", "!vendor/**"]).unwrap();
        assert!(m.matches_or_parent_matches("a/b/c.go").unwrap());
        assert!(m.matches_or_parent_matches("c.go").unwrap());
        assert!(!m.matches_or_parent_matches("vendor/x/c.go").unwrap());
        assert!(m.has_exception_inside("vendor"));
        assert!(!m.has_exception_inside("vend"));
    }
}
