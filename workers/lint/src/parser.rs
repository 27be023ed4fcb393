//! The Dockerfile parser: text in, [`Dockerfile`] (or a positioned [`ParseError`]) out.
//!
//! It follows the reading rules of language-docker, the parser hadolint uses, so that line numbers
//! and parse failures agree with hadolint: instructions are case-insensitive; a line ending in the
//! escape character (`\`, or the one a leading `# escape=` directive sets) continues on the next
//! line, skipping blank lines and comment lines in between; the continuation joins with one space
//! when the next line is indented and with nothing otherwise; `#` starts a comment only where an
//! instruction could start; `RUN`/`COPY` may carry heredocs.

use crate::shell::Script;
use crate::syntax::{
    AddArgs, Arguments, ArgumentsForm, BaseImage, CopyArgs, Dockerfile, HealthcheckArgs,
    Instruction, Located, PortSpec, Pragma, RunArgs, RunMount,
};

/// Why a Dockerfile could not be parsed, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based line of the problem.
    pub line: u32,
    /// 1-based column of the problem.
    pub column: u32,
    /// What was expected and what was found.
    pub message: String,
}

/// The instruction keywords, for error messages.
const KEYWORDS: &str = "ADD, ARG, CMD, COPY, ENTRYPOINT, ENV, EXPOSE, FROM, HEALTHCHECK, LABEL, \
                        MAINTAINER, ONBUILD, RUN, SHELL, STOPSIGNAL, USER, VOLUME, WORKDIR";

/// Decodes Dockerfile bytes: a UTF-8/UTF-16 byte order mark is honoured, invalid sequences are
/// replaced, CRLF line ends become LF.
pub fn decode(bytes: &[u8]) -> String {
    let text = if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        String::from_utf8_lossy(rest).into_owned()
    } else if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    };
    if text.contains('\r') {
        text.replace("\r\n", "\n")
    } else {
        text
    }
}

/// Parses a Dockerfile's text.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let owned;
    let text = if text.contains("\r\n") {
        owned = text.replace("\r\n", "\n");
        owned.as_str()
    } else {
        text
    };
    let escape = escape_directive(text);
    let mut cursor = Cursor {
        src: text.as_bytes(),
        pos: 0,
        line: 1,
        line_start: 0,
        esc: if escape.is_ascii() {
            escape as u8
        } else {
            b'\\'
        },
    };
    let mut instructions = Vec::new();
    loop {
        cursor.skip_separators();
        if cursor.at_end() {
            break;
        }
        let line = cursor.line;
        let column = cursor.column();
        let instruction = if cursor.peek() == Some(b'#') {
            cursor.comment()
        } else {
            cursor.instruction()?
        };
        instructions.push(Located {
            line,
            column,
            end_line: cursor.end_line(),
            instruction,
        });
    }
    Ok(Dockerfile {
        instructions,
        escape,
    })
}

/// The escape character set by a `# escape=` directive among the leading directive lines.
fn escape_directive(text: &str) -> char {
    for line in text.lines() {
        match directive(line.trim_start()) {
            Some(Pragma::Escape(c)) => return c,
            Some(Pragma::Syntax(_)) => continue,
            None => return '\\',
        }
    }
    '\\'
}

/// Reads a `# escape=c` or `# syntax=image` directive (`line` starts at `#`).
fn directive(line: &str) -> Option<Pragma> {
    let rest = line.strip_prefix('#')?.trim_start_matches([' ', '\t']);
    if let Some(value) = rest.strip_prefix("escape") {
        let value = value.trim_start_matches([' ', '\t']).strip_prefix('=')?;
        let value = value.trim_matches([' ', '\t']);
        let mut chars = value.chars();
        let c = chars.next()?;
        return chars.next().is_none().then_some(Pragma::Escape(c));
    }
    if let Some(value) = rest.strip_prefix("syntax") {
        let value = value.trim_start_matches([' ', '\t']).strip_prefix('=')?;
        let value = value.trim_matches([' ', '\t']);
        return (!value.is_empty()).then(|| Pragma::Syntax(value.to_string()));
    }
    None
}

/// A position in the source, with line tracking.
struct Cursor<'a> {
    src: &'a [u8],
    pos: usize,
    line: u32,
    line_start: usize,
    esc: u8,
}

impl Cursor<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn column(&self) -> u32 {
        let prefix = &self.src[self.line_start..self.pos];
        String::from_utf8_lossy(prefix).chars().count() as u32 + 1
    }

    /// The line of the last consumed character.
    fn end_line(&self) -> u32 {
        if self.pos > 0 && self.src.get(self.pos - 1) == Some(&b'\n') {
            self.line - 1
        } else {
            self.line
        }
    }

    fn advance(&mut self) {
        if self.src[self.pos] == b'\n' {
            self.line += 1;
            self.line_start = self.pos + 1;
        }
        self.pos += 1;
    }

    fn skip_while(&mut self, pred: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&pred) {
            self.advance();
        }
    }

    /// Whether an escaped line break (escape, blanks, newline) starts here.
    fn at_escaped_newline(&self) -> bool {
        if self.peek() != Some(self.esc) {
            return false;
        }
        let mut i = self.pos + 1;
        while matches!(self.src.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        self.src.get(i) == Some(&b'\n')
    }

    /// Consumes an escaped line break and the comment lines after it. Returns whether the next
    /// line was indented (then the break reads as one space).
    fn escaped_newline(&mut self) -> bool {
        self.advance();
        self.skip_while(|c| c == b' ' || c == b'\t');
        self.skip_while(|c| c == b'\n');
        loop {
            let save = (self.pos, self.line, self.line_start);
            self.skip_while(|c| c == b' ' || c == b'\t');
            if self.peek() == Some(b'#') {
                self.skip_while(|c| c != b'\n');
                if self.peek() == Some(b'\n') {
                    self.skip_while(|c| c == b'\n');
                    continue;
                }
            }
            (self.pos, self.line, self.line_start) = save;
            break;
        }
        let before = self.pos;
        self.skip_while(|c| c == b' ' || c == b'\t');
        self.pos > before
    }

    /// Skips what separates instructions: blanks, newlines, escaped line breaks.
    fn skip_separators(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.advance(),
                Some(_) if self.at_escaped_newline() => {
                    self.escaped_newline();
                }
                _ => break,
            }
        }
    }

    /// Reads a comment or directive line starting at `#`.
    fn comment(&mut self) -> Instruction {
        let start = self.pos;
        self.skip_while(|c| c != b'\n');
        let text = String::from_utf8_lossy(&self.src[start..self.pos]);
        match directive(&text) {
            Some(pragma) => Instruction::Pragma(pragma),
            None => Instruction::Comment(text[1..].to_string()),
        }
    }

    /// Reads the rest of the logical line: continuations joined, up to an unescaped newline.
    fn logical_line(&mut self) -> String {
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            if c == b'\n' {
                break;
            }
            if c == self.esc && self.at_escaped_newline() {
                if self.escaped_newline() {
                    out.push(b' ');
                }
                continue;
            }
            out.push(c);
            self.advance();
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Reads one instruction starting at its keyword.
    fn instruction(&mut self) -> Result<Instruction, ParseError> {
        let line = self.line;
        let column = self.column();
        let start = self.pos;
        self.skip_while(|c| c.is_ascii_alphabetic());
        let keyword = String::from_utf8_lossy(&self.src[start..self.pos]).to_ascii_uppercase();
        let known = KEYWORDS.split(", ").any(|k| k == keyword);
        if !known {
            let found: String = String::from_utf8_lossy(&self.src[start..])
                .chars()
                .next()
                .map(String::from)
                .unwrap_or_default();
            return Err(ParseError {
                line,
                column,
                message: format!(
                    "unexpected '{}': expecting an instruction ({KEYWORDS}), a comment or a parser directive",
                    if keyword.is_empty() {
                        found
                    } else {
                        keyword.clone()
                    }
                ),
            });
        }
        // The keyword must be followed by whitespace (or an escaped line break to an indented line).
        let spaced = match self.peek() {
            Some(b' ' | b'\t') => true,
            Some(_) if self.at_escaped_newline() => {
                let save = (self.pos, self.line, self.line_start);
                let indented = self.escaped_newline();
                (self.pos, self.line, self.line_start) = save;
                indented
            }
            _ => false,
        };
        if !spaced {
            return Err(ParseError {
                line,
                column: column + keyword.len() as u32,
                message: format!("expecting whitespace and the arguments of {keyword}"),
            });
        }
        let body = self.logical_line();
        let at = Position { line, column };
        let mut instruction = parse_instruction(&keyword, body.trim_start(), at, self.esc as char)?;
        if let Instruction::Run(run) = &mut instruction
            && let Some(heredoc) = self.heredoc_body(&run.arguments.script.source)
        {
            run.arguments = heredoc_arguments(&run.arguments, heredoc);
        }
        if let Instruction::Copy(copy) = &instruction
            && copy.sources.iter().all(|s| s.starts_with("<<"))
            && let Some(first) = copy.sources.last()
            && let Some(heredoc) = heredoc_marker(first)
        {
            self.consume_heredoc(&heredoc);
        }
        Ok(instruction)
    }

    /// For a `RUN` whose line holds a heredoc marker with a terminator further down, consumes the
    /// body and returns `(text before the marker, body)`.
    fn heredoc_body(&mut self, first_line: &str) -> Option<(String, String)> {
        let at = first_line.find("<<")?;
        let heredoc = heredoc_marker(&first_line[at..])?;
        let body = self.consume_heredoc(&heredoc)?;
        Some((first_line[..at].trim().to_string(), body))
    }

    /// Consumes the lines after the current one up to the terminator line of `heredoc` (its
    /// word alone, after leading tabs for `<<-`); returns the lines in between (trimmed, `<<-`
    /// lines without their leading tabs), or `None` (consuming nothing) when no such line exists.
    fn consume_heredoc(&mut self, heredoc: &Heredoc) -> Option<String> {
        if self.peek() != Some(b'\n') {
            return None;
        }
        let body_start = self.pos + 1;
        let mut line_start = body_start;
        let mut body = String::new();
        loop {
            if line_start > self.src.len() {
                return None;
            }
            let end = self.src[line_start..]
                .iter()
                .position(|c| *c == b'\n')
                .map_or(self.src.len(), |e| line_start + e);
            let mut line = &self.src[line_start..end];
            if heredoc.strip_tabs {
                while let [b'\t', rest @ ..] = line {
                    line = rest;
                }
            }
            if line == heredoc.word.as_bytes() {
                while self.pos < end {
                    self.advance();
                }
                return Some(body.trim().to_string());
            }
            body.push_str(&String::from_utf8_lossy(line));
            body.push('\n');
            line_start = end + 1;
        }
    }
}

/// A heredoc opener: its terminating word, and whether `<<-` strips leading tabs.
#[derive(Debug, PartialEq, Eq)]
struct Heredoc {
    word: String,
    strip_tabs: bool,
}

/// The heredoc opener `<<[-]WORD` at the start of `text`, as BuildKit reads it: the word may be
/// quoted whole (`"EOF"`, `'EOF'`) or in part with backslashes (`\EOF`).
fn heredoc_marker(text: &str) -> Option<Heredoc> {
    let rest = text.strip_prefix("<<")?;
    let (rest, strip_tabs) = match rest.strip_prefix('-') {
        Some(rest) => (rest, true),
        None => (rest, false),
    };
    let word = if let Some(quoted) = rest.strip_prefix('"') {
        quoted[..quoted.find('"')?].to_string()
    } else if let Some(quoted) = rest.strip_prefix('\'') {
        quoted[..quoted.find('\'')?].to_string()
    } else {
        let raw = rest.split([' ', '\t']).next()?;
        let mut word = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => word.extend(chars.next()),
                '"' | '\'' => {}
                c => word.push(c),
            }
        }
        word
    };
    (!word.is_empty() && !word.starts_with('<')).then_some(Heredoc { word, strip_tabs })
}

/// The arguments of a `RUN` carrying a heredoc: the body alone when the heredoc is the whole
/// command, otherwise the text before the marker (as hadolint reads them).
fn heredoc_arguments(original: &Arguments, (before, body): (String, String)) -> Arguments {
    if before.is_empty() {
        Arguments {
            form: ArgumentsForm::Heredoc,
            list: Vec::new(),
            script: Script::parse(&body),
        }
    } else {
        Arguments {
            form: original.form,
            list: Vec::new(),
            script: Script::parse(&before),
        }
    }
}

/// Where an instruction starts, for errors.
#[derive(Clone, Copy)]
struct Position {
    line: u32,
    column: u32,
}

impl Position {
    fn error(self, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

/// Parses the arguments of the instruction `keyword` (upper case); `body` is its logical line and
/// `escape` the Dockerfile's escape character.
fn parse_instruction(
    keyword: &str,
    body: &str,
    at: Position,
    escape: char,
) -> Result<Instruction, ParseError> {
    let required = |what: &str| -> Result<String, ParseError> {
        let value = body.trim_end();
        if value.is_empty() {
            Err(at.error(format!("{keyword}: expecting {what}")))
        } else {
            Ok(value.to_string())
        }
    };
    Ok(match keyword {
        "FROM" => Instruction::From(parse_from(body, at)?),
        "RUN" => Instruction::Run(parse_run(body, at)?),
        "CMD" => Instruction::Cmd(parse_arguments(body, at, keyword)?),
        "ENTRYPOINT" => Instruction::Entrypoint(parse_arguments(body, at, keyword)?),
        "SHELL" => Instruction::Shell(parse_arguments(body, at, keyword)?),
        "COPY" => Instruction::Copy(parse_copy(body, at)?),
        "ADD" => Instruction::Add(parse_add(body, at)?),
        "USER" => Instruction::User(required("the user")?),
        "WORKDIR" => Instruction::Workdir(required("the workdir path")?),
        "VOLUME" => Instruction::Volume(required("the volume path")?),
        "MAINTAINER" => Instruction::Maintainer(required("the maintainer name")?),
        "STOPSIGNAL" => Instruction::StopSignal(required("the stop signal")?),
        "LABEL" => Instruction::Label(parse_pairs(body, at, keyword, escape)?),
        "ENV" => Instruction::Env(parse_pairs(body, at, keyword, escape)?),
        "ARG" => parse_arg(body, at)?,
        "EXPOSE" => Instruction::Expose(parse_expose(body, at)?),
        "HEALTHCHECK" => Instruction::Healthcheck(parse_healthcheck(body, at)?),
        "ONBUILD" => {
            let inner = body.trim_start();
            let word_end = inner
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(inner.len());
            let inner_keyword = inner[..word_end].to_ascii_uppercase();
            if !KEYWORDS.split(", ").any(|k| k == inner_keyword) {
                // The word, or the first character when it does not start with a letter.
                let shown = match inner[word_end..].chars().next() {
                    Some(first) if word_end == 0 => &inner[..first.len_utf8()],
                    _ => &inner[..word_end],
                };
                return Err(at.error(format!(
                    "ONBUILD: expecting an instruction, found '{shown}'"
                )));
            }
            let rest = &inner[word_end..];
            if !rest.starts_with([' ', '\t']) {
                return Err(at.error(format!("ONBUILD {inner_keyword}: expecting its arguments")));
            }
            // `ONBUILD ONBUILD RUN x` parses (DL3043 reports it, as hadolint does); a hostile
            // line of thousands must not recurse that deep.
            let nested = rest
                .split_whitespace()
                .take_while(|word| word.eq_ignore_ascii_case("ONBUILD"))
                .count();
            if inner_keyword == "ONBUILD" && nested >= MAX_ONBUILD_NESTING {
                return Err(at.error(format!(
                    "ONBUILD: nested more than {MAX_ONBUILD_NESTING} times"
                )));
            }
            Instruction::OnBuild(Box::new(parse_instruction(
                &inner_keyword,
                rest.trim_start(),
                at,
                escape,
            )?))
        }
        other => return Err(at.error(format!("unknown instruction {other}"))),
    })
}

/// `FROM [--platform=P] image [AS name]`
fn parse_from(body: &str, at: Position) -> Result<BaseImage, ParseError> {
    let mut words = body.split_whitespace().peekable();
    let mut image = BaseImage::default();
    if let Some(platform) = words.peek().and_then(|w| w.strip_prefix("--platform=")) {
        image.platform = Some(platform.to_string());
        words.next();
    }
    let reference = words
        .next()
        .ok_or_else(|| at.error("FROM: expecting the image name"))?;
    if reference.starts_with("--") {
        return Err(at.error(format!(
            "FROM: unexpected flag {reference}; only --platform is allowed"
        )));
    }
    parse_image_reference(reference, &mut image);
    match (words.next(), words.next(), words.next()) {
        (None, _, _) => {}
        (Some(kw), Some(alias), None) if kw.eq_ignore_ascii_case("as") => {
            image.alias = Some(alias.to_string());
        }
        (Some(kw), None, _) if kw.eq_ignore_ascii_case("as") => {
            return Err(at.error("FROM: expecting the stage name after AS"));
        }
        (Some(other), _, _) => {
            return Err(at.error(format!(
                "FROM: unexpected '{other}'; expecting 'AS' followed by the stage name"
            )));
        }
    }
    Ok(image)
}

/// Splits `[registry/]name[:tag][@digest]` as language-docker does: a registry is read when a `.`
/// comes before a `/`; `${…}` expansions are opaque.
fn parse_image_reference(reference: &str, image: &mut BaseImage) {
    let mut rest = reference;
    if let Some(dot) = rest.find('.')
        && let Some(slash) = rest[dot..].find('/')
        && !rest[..dot].contains('$')
    {
        image.registry = Some(rest[..dot + slash].to_string());
        rest = &rest[dot + slash + 1..];
    }
    let (before_digest, digest) = match split_outside_braces(rest, '@') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let (name, tag) = match split_outside_braces(before_digest, ':') {
        Some((a, b)) => (a, Some(b)),
        None => (before_digest, None),
    };
    image.name = name.to_string();
    image.tag = tag.filter(|t| !t.is_empty()).map(str::to_string);
    image.digest = digest.filter(|d| !d.is_empty()).map(str::to_string);
}

/// Splits at the first `sep` outside `${…}`.
fn split_outside_braces(text: &str, sep: char) -> Option<(&str, &str)> {
    let mut depth = 0usize;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        match c {
            '{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            '{' if depth > 0 => depth += 1,
            '}' if depth > 0 => depth -= 1,
            c if c == sep && depth == 0 => return Some((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

/// `RUN [--mount=…] [--network=…] [--security=…] command`
fn parse_run(body: &str, at: Position) -> Result<RunArgs, ParseError> {
    let mut rest = body;
    let mut mounts = Vec::new();
    let mut network = None;
    let mut security = None;
    loop {
        let word_end = rest.find([' ', '\t']).unwrap_or(rest.len());
        let word = &rest[..word_end];
        if let Some(value) = word.strip_prefix("--mount=") {
            mounts.push(parse_mount(value, at)?);
        } else if let Some(value) = word.strip_prefix("--network=") {
            network = Some(value.to_string());
        } else if let Some(value) = word.strip_prefix("--security=") {
            security = Some(value.to_string());
        } else {
            break;
        }
        if word_end == rest.len() {
            return Err(at.error("RUN: expecting a command after the flags"));
        }
        rest = rest[word_end..].trim_start();
    }
    Ok(RunArgs {
        mounts,
        network,
        security,
        arguments: parse_arguments(rest, at, "RUN")?,
    })
}

/// One `--mount=` value: comma-separated `key=value` items.
fn parse_mount(value: &str, at: Position) -> Result<RunMount, ParseError> {
    let mut kind = None;
    let mut target = None;
    for item in value.split(',') {
        let (key, val) = item.split_once('=').unwrap_or((item, ""));
        match key {
            "type" => {
                if kind.is_some() {
                    return Err(at.error("RUN: --mount with multiple `type` arguments"));
                }
                if !["bind", "cache", "tmpfs", "secret", "ssh"].contains(&val) {
                    return Err(at.error(format!(
                        "RUN: unknown mount type '{val}'; expecting bind, cache, tmpfs, secret or ssh"
                    )));
                }
                kind = Some(val.to_string());
            }
            "target" | "dst" | "destination" => {
                target = Some(val.trim_matches('"').to_string());
            }
            _ => {}
        }
    }
    let kind = kind.unwrap_or_else(|| "bind".to_string());
    if target.is_none() && ["bind", "cache", "tmpfs"].contains(&kind.as_str()) {
        return Err(at.error(format!(
            "RUN: missing required argument(s) for mount flag: [\"target\"] (mount type {kind})"
        )));
    }
    Ok(RunMount {
        kind,
        target,
        raw: value.to_string(),
    })
}

/// The command of `RUN`/`CMD`/`ENTRYPOINT`/`SHELL`: heredoc, exec (JSON array) or shell form.
fn parse_arguments(body: &str, at: Position, keyword: &str) -> Result<Arguments, ParseError> {
    if body.trim().is_empty() {
        return Err(at.error(format!("{keyword}: expecting the command")));
    }
    if let Some(list) = parse_exec_list(body) {
        let joined = list.join(" ");
        return Ok(Arguments {
            form: ArgumentsForm::Exec,
            script: Script::parse(&joined),
            list,
        });
    }
    Ok(Arguments {
        form: ArgumentsForm::Shell,
        list: Vec::new(),
        script: Script::parse(body),
    })
}

/// Reads `["a", "b"]` (only double-quoted strings; `\"` is the one escape undone). `None` when the
/// text is not exactly such a list.
fn parse_exec_list(body: &str) -> Option<Vec<String>> {
    let text = body.trim();
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let mut items = Vec::new();
    let mut chars = inner.trim().chars().peekable();
    if chars.peek().is_none() {
        return Some(items);
    }
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next()? != '"' {
            return None;
        }
        let mut item = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' if chars.peek() == Some(&'"') => {
                    chars.next();
                    item.push('"');
                }
                c => item.push(c),
            }
        }
        items.push(item);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(items),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

/// Splits leading `--flag[=value]` words off `body`.
fn split_flags(body: &str) -> (Vec<(String, Option<String>)>, &str) {
    let mut flags = Vec::new();
    let mut rest = body.trim_start();
    while rest.starts_with("--") {
        let end = rest.find([' ', '\t']).unwrap_or(rest.len());
        let word = &rest[2..end];
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (word.to_string(), None),
        };
        flags.push((name, value));
        rest = rest[end..].trim_start();
    }
    (flags, rest)
}

/// The source and destination paths of `COPY`/`ADD`: a JSON array or space-separated words.
fn parse_paths(
    rest: &str,
    at: Position,
    keyword: &str,
) -> Result<(Vec<String>, String), ParseError> {
    let mut paths = parse_exec_list(rest).unwrap_or_else(|| {
        rest.split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    });
    if paths.len() < 2 {
        return Err(at.error(format!(
            "unexpected end of line. At least two arguments are required for {keyword}"
        )));
    }
    let dest = paths.pop().unwrap_or_default();
    Ok((paths, dest))
}

/// Reads a boolean flag value (`--link`, `--link=true`, `--link=false`).
fn flag_bool(
    name: &str,
    value: Option<&str>,
    at: Position,
    keyword: &str,
) -> Result<bool, ParseError> {
    match value {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(at.error(format!(
            "{keyword}: --{name} takes true or false, found '{other}'"
        ))),
    }
}

/// Rejects a flag given twice (`--exclude` may repeat), as language-docker does.
fn reject_duplicate_flags(
    flags: &[(String, Option<String>)],
    at: Position,
) -> Result<(), ParseError> {
    for (i, (name, _)) in flags.iter().enumerate() {
        if name != "exclude" && flags[..i].iter().any(|(earlier, _)| earlier == name) {
            return Err(at.error(format!("duplicate flag: --{name}")));
        }
    }
    Ok(())
}

/// The error for a flag the instruction does not take (or one it takes, given without its value).
fn unknown_flag(name: &str, value: Option<&str>, at: Position) -> ParseError {
    if value.is_none_or(str::is_empty) {
        at.error(format!("unexpected flag --{name} with no value"))
    } else {
        at.error(format!("invalid flag: --{name}"))
    }
}

/// `COPY [flags] src... dest`
fn parse_copy(body: &str, at: Position) -> Result<CopyArgs, ParseError> {
    let (flags, rest) = split_flags(body);
    let mut copy = CopyArgs::default();
    reject_duplicate_flags(&flags, at)?;
    for (name, value) in &flags {
        match (name.as_str(), value) {
            ("from", Some(v)) => copy.from = Some(v.clone()),
            ("chown", Some(v)) => copy.chown = Some(v.clone()),
            ("chmod", Some(v)) => copy.chmod = Some(v.clone()),
            ("exclude", Some(v)) => copy.exclude.push(v.clone()),
            ("link", v) => copy.link = flag_bool(name, v.as_deref(), at, "COPY")?,
            ("parents", v) => copy.parents = flag_bool(name, v.as_deref(), at, "COPY")?,
            (_, v) => return Err(unknown_flag(name, v.as_deref(), at)),
        }
    }
    if rest.starts_with("<<") {
        let words: Vec<&str> = rest.split_whitespace().collect();
        let markers: Vec<String> = words
            .iter()
            .take_while(|w| w.starts_with("<<"))
            .map(|w| w.to_string())
            .collect();
        let dest = words[markers.len()..].join(" ");
        if dest.is_empty() {
            return Err(at.error("COPY: expecting the target path after the heredoc markers"));
        }
        copy.sources = markers;
        copy.dest = dest;
        return Ok(copy);
    }
    (copy.sources, copy.dest) = parse_paths(rest, at, "COPY")?;
    Ok(copy)
}

/// `ADD [flags] src... dest`
fn parse_add(body: &str, at: Position) -> Result<AddArgs, ParseError> {
    let (flags, rest) = split_flags(body);
    let mut add = AddArgs::default();
    reject_duplicate_flags(&flags, at)?;
    for (name, value) in &flags {
        match (name.as_str(), value) {
            ("checksum", Some(v)) => add.checksum = Some(v.clone()),
            ("chown", Some(v)) => add.chown = Some(v.clone()),
            ("chmod", Some(v)) => add.chmod = Some(v.clone()),
            ("exclude", Some(v)) => add.exclude.push(v.clone()),
            ("link", v) => add.link = flag_bool(name, v.as_deref(), at, "ADD")?,
            ("keep-git-dir", v) => add.keep_git_dir = flag_bool(name, v.as_deref(), at, "ADD")?,
            ("unpack", v) => add.unpack = Some(flag_bool(name, v.as_deref(), at, "ADD")?),
            (_, v) => return Err(unknown_flag(name, v.as_deref(), at)),
        }
    }
    (add.sources, add.dest) = parse_paths(rest, at, "ADD")?;
    Ok(add)
}

/// `ARG name[=default]`
fn parse_arg(body: &str, at: Position) -> Result<Instruction, ParseError> {
    let body = body.trim_end();
    if body.is_empty() {
        return Err(at.error("ARG: expecting the argument name"));
    }
    let name_end = body.find(['=', ' ', '\t']).unwrap_or(body.len());
    let name = body[..name_end].to_string();
    let default = body[name_end..].strip_prefix('=').map(|d| d.to_string());
    if name.is_empty() {
        return Err(at.error("ARG: expecting the argument name before '='"));
    }
    Ok(Instruction::Arg { name, default })
}

/// `ENV`/`LABEL` pairs: `k=v k2="v 2"`, or the legacy `key value with spaces`. The escape
/// character (`\` or the `# escape=` one) escapes a quote inside quotes and a blank or quote
/// outside them, as language-docker reads it.
fn parse_pairs(
    body: &str,
    at: Position,
    keyword: &str,
    escape: char,
) -> Result<Vec<(String, String)>, ParseError> {
    let chars: Vec<char> = body.trim_end().chars().collect();
    let mut i = 0;
    let mut pairs = Vec::new();
    while i < chars.len() {
        let key = read_pair_value(&chars, &mut i, true, at, escape)?;
        if key.is_empty() {
            return Err(at.error(format!("{keyword}: expecting a key value pair (key=value)")));
        }
        if chars.get(i) == Some(&'=') {
            i += 1;
            let value = read_pair_value(&chars, &mut i, false, at, escape)?;
            pairs.push((key, value));
        } else {
            // `ENV key value…`: the rest of the line is the value.
            let value: String = chars[i..].iter().collect::<String>().trim().to_string();
            if value.is_empty() {
                return Err(at.error(format!(
                    "{keyword}: expecting '=' and a value after '{key}'"
                )));
            }
            pairs.push((key, value));
            i = chars.len();
        }
        while chars.get(i).is_some_and(|c| *c == ' ' || *c == '\t') {
            i += 1;
        }
    }
    if pairs.is_empty() {
        return Err(at.error(format!("{keyword}: expecting a key value pair (key=value)")));
    }
    Ok(pairs)
}

/// Reads a key (stops at `=`) or a value (stops at a blank): quoted and unquoted runs joined.
fn read_pair_value(
    chars: &[char],
    i: &mut usize,
    is_key: bool,
    at: Position,
    escape: char,
) -> Result<String, ParseError> {
    let mut out = String::new();
    while let Some(&c) = chars.get(*i) {
        match c {
            '"' | '\'' => {
                *i += 1;
                loop {
                    match chars.get(*i) {
                        None => {
                            let kind = if c == '"' { "double" } else { "single" };
                            return Err(at.error(format!(
                                "unexpected end of {kind} quoted string (unmatched quote)"
                            )));
                        }
                        Some(&e) if e == escape && chars.get(*i + 1) == Some(&c) => {
                            out.push(c);
                            *i += 2;
                        }
                        Some(&q) if q == c => {
                            *i += 1;
                            break;
                        }
                        Some(&other) => {
                            out.push(other);
                            *i += 1;
                        }
                    }
                }
            }
            ' ' | '\t' => break,
            '=' if is_key => break,
            e if e == escape && matches!(chars.get(*i + 1), Some(' ' | '\t' | '"' | '\'')) => {
                out.push(chars[*i + 1]);
                *i += 2;
            }
            _ => {
                out.push(c);
                *i += 1;
            }
        }
    }
    Ok(out)
}

/// The most `ONBUILD`s one instruction may nest (`ONBUILD ONBUILD …`).
const MAX_ONBUILD_NESTING: usize = 8;

/// `EXPOSE 80 443/tcp 8000-8010/udp $PORT`; a range with a variable at either end
/// (`40000-${END}`, `80-${X}/tcp`) is a variable, as hadolint reads it.
fn parse_expose(body: &str, at: Position) -> Result<Vec<PortSpec>, ParseError> {
    let mut ports = Vec::new();
    for word in body.split_whitespace() {
        if word.starts_with('$') || word.contains("-$") {
            ports.push(PortSpec::Variable(word.to_string()));
            continue;
        }
        let (spec, protocol) = match word.split_once('/') {
            Some((s, p)) => {
                let p = p.to_ascii_lowercase();
                if p != "tcp" && p != "udp" {
                    return Err(at.error(format!(
                        "EXPOSE: invalid protocol '{p}' in '{word}'; expecting tcp or udp"
                    )));
                }
                (s, p)
            }
            None => (word, "tcp".to_string()),
        };
        let number = |s: &str| -> Result<u64, ParseError> {
            s.parse::<u64>().map_err(|_| {
                at.error(format!(
                    "EXPOSE: expecting a port number, a range or a variable, found '{word}'"
                ))
            })
        };
        match spec.split_once('-') {
            Some((a, b)) => ports.push(PortSpec::Range {
                start: number(a)?,
                end: number(b)?,
                protocol,
            }),
            None => ports.push(PortSpec::Port {
                number: number(spec)?,
                protocol,
            }),
        }
    }
    Ok(ports)
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=…] … CMD command`
fn parse_healthcheck(body: &str, at: Position) -> Result<Option<HealthcheckArgs>, ParseError> {
    if body.trim_end() == "NONE" {
        return Ok(None);
    }
    let (flags, rest) = split_flags(body);
    reject_duplicate_flags(&flags, at)?;
    let mut out = Vec::new();
    for (name, value) in flags {
        if ![
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ]
        .contains(&name.as_str())
        {
            return Err(at.error(format!("invalid flag: --{name}")));
        }
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Err(at.error(format!("unexpected flag --{name} with no value")));
        };
        out.push((name, value));
    }
    let cmd_end = rest.find([' ', '\t']).unwrap_or(rest.len());
    if !rest[..cmd_end].eq_ignore_ascii_case("CMD") {
        return Err(at.error("HEALTHCHECK: expecting NONE or CMD followed by the command"));
    }
    Ok(Some(HealthcheckArgs {
        flags: out,
        command: parse_arguments(rest[cmd_end..].trim_start(), at, "HEALTHCHECK CMD")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onbuild_of_a_non_ascii_word_is_a_parse_error() {
        // Found by slipway-fuzz: the error message cut the word inside a multi-byte character.
        for text in [
            "ONBUILD \u{e9}:",
            "ONBUILD \u{FFFD}\u{FFFD}\u{1a}\u{FFFD}:",
            "ONBUILD 1",
        ] {
            let error = parse(text).expect_err(text);
            assert!(
                error
                    .to_string()
                    .contains("ONBUILD: expecting an instruction"),
                "{error}"
            );
        }
        let error = parse("ONBUILD \u{e9}x RUN a").unwrap_err().to_string();
        assert!(error.contains("found '\u{e9}'"), "{error}");
    }

    fn lines(text: &str) -> Vec<(u32, &'static str)> {
        parse(text)
            .expect("parses")
            .instructions
            .iter()
            .map(|i| (i.line, i.instruction.keyword()))
            .collect()
    }

    fn run_text(text: &str) -> String {
        match &parse(text).expect("parses").instructions[0].instruction {
            Instruction::Run(run) => run.arguments.text().to_string(),
            other => panic!("not a RUN: {other:?}"),
        }
    }

    #[test]
    fn positions_are_the_keyword_lines() {
        let text = "# c\nFROM a\n\n  RUN x \\\n   && y\nrun z\n";
        assert_eq!(
            lines(text),
            [(1, "COMMENT"), (2, "FROM"), (4, "RUN"), (6, "RUN")]
        );
        let df = parse(text).unwrap();
        assert_eq!(df.instructions[2].column, 3);
        assert_eq!(df.instructions[2].end_line, 5);
    }

    #[test]
    fn continuations_join_with_a_space_only_when_indented_and_skip_comments() {
        assert_eq!(run_text("RUN a \\\n    b"), "a  b");
        assert_eq!(run_text("RUN a\\\nb"), "ab");
        assert_eq!(run_text("RUN a \\\n  # note\n\n  b \\  \n c"), "a  b  c");
        assert_eq!(
            lines("RUN a \\\n# x\n  b\nUSER u"),
            [(1, "RUN"), (4, "USER")]
        );
    }

    #[test]
    fn quoted_env_and_label_values_use_the_escape_directive() {
        // As hadolint 2.15 reads them: under `# escape=`` ` the backtick escapes a quote and a
        // backslash is an ordinary character.
        let df = parse("# escape=`\nFROM w\nLABEL a=\"x`\"y\" b=c`\\d\nENV C=\"p\\q\"\n").unwrap();
        let pairs = |i: usize| match &df.instructions[i].instruction {
            Instruction::Label(p) | Instruction::Env(p) => p.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            pairs(2),
            [
                ("a".to_string(), "x\"y".to_string()),
                ("b".to_string(), "c`\\d".to_string())
            ]
        );
        assert_eq!(pairs(3), [("C".to_string(), "p\\q".to_string())]);
        // A backslash no longer escapes the quote: the string is left open.
        let err = parse("# escape=`\nFROM w\nLABEL a=\"x\\\"y\" b=2\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("unmatched quote"), "{}", err.message);
        // Without the directive, the backslash escapes it.
        assert!(parse("FROM w\nLABEL a=\"x\\\"y\" b=2\n").is_ok());
    }

    #[test]
    fn escape_directive_changes_the_continuation_character() {
        let text = "# escape=`\nFROM w\nRUN a `\n  b\\c\nUSER x";
        let df = parse(text).unwrap();
        assert_eq!(df.escape, '`');
        assert!(matches!(
            df.instructions[0].instruction,
            Instruction::Pragma(Pragma::Escape('`'))
        ));
        match &df.instructions[2].instruction {
            Instruction::Run(r) => assert_eq!(r.arguments.text(), "a  b\\c"),
            other => panic!("{other:?}"),
        }
        assert_eq!(df.instructions[3].line, 5);
        // A directive after another line is a plain comment and changes nothing.
        assert_eq!(parse("FROM a\n# escape=`\n").unwrap().escape, '\\');
    }

    #[test]
    fn from_with_platform_registry_tag_digest_alias() {
        let df =
            parse("FROM --platform=linux/amd64 quay.io/org/img:1.2@sha256:abc AS build").unwrap();
        let Instruction::From(image) = &df.instructions[0].instruction else {
            panic!()
        };
        assert_eq!(image.platform.as_deref(), Some("linux/amd64"));
        assert_eq!(image.registry.as_deref(), Some("quay.io"));
        assert_eq!(image.name, "org/img");
        assert_eq!(image.tag.as_deref(), Some("1.2"));
        assert_eq!(image.digest.as_deref(), Some("sha256:abc"));
        assert_eq!(image.alias.as_deref(), Some("build"));
        let df = parse("from ${REG:-docker.io}/x:${TAG:-latest} as b").unwrap();
        let Instruction::From(image) = &df.instructions[0].instruction else {
            panic!()
        };
        assert_eq!(image.tag.as_deref(), Some("${TAG:-latest}"));
        assert_eq!(image.alias.as_deref(), Some("b"));
    }

    #[test]
    fn exec_and_shell_forms() {
        let df = parse("CMD [\"nginx\", \"-g\", \"daemon off;\"]\nENTRYPOINT exec app\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]").unwrap();
        let Instruction::Cmd(cmd) = &df.instructions[0].instruction else {
            panic!()
        };
        assert_eq!(cmd.form, ArgumentsForm::Exec);
        assert_eq!(cmd.list, ["nginx", "-g", "daemon off;"]);
        let Instruction::Entrypoint(ep) = &df.instructions[1].instruction else {
            panic!()
        };
        assert_eq!(ep.form, ArgumentsForm::Shell);
        let Instruction::Shell(sh) = &df.instructions[2].instruction else {
            panic!()
        };
        assert_eq!(sh.text(), "/bin/bash -o pipefail -c");
    }

    #[test]
    fn run_flags_and_heredoc() {
        let df = parse("RUN --mount=type=cache,target=/root/.cache --network=none pip install x\nRUN <<EOF\napt-get update\nEOF\nUSER u").unwrap();
        let Instruction::Run(run) = &df.instructions[0].instruction else {
            panic!()
        };
        assert_eq!(run.mounts[0].kind, "cache");
        assert_eq!(run.mounts[0].target.as_deref(), Some("/root/.cache"));
        assert_eq!(run.network.as_deref(), Some("none"));
        assert_eq!(run.arguments.text(), "pip install x");
        let Instruction::Run(run) = &df.instructions[1].instruction else {
            panic!()
        };
        assert_eq!(run.arguments.form, ArgumentsForm::Heredoc);
        assert_eq!(run.arguments.script.commands[0].name, "apt-get");
        assert_eq!(df.instructions[2].line, 5);
        assert_eq!(df.instructions[1].end_line, 4);
    }

    /// BuildKit's heredoc words: `<<-` strips leading tabs from the body and the terminator, and
    /// the word may be quoted with a backslash (`<<\EOT`), on RUN and COPY alike. hadolint 2.15
    /// reports DL1000 for these; BuildKit builds them.
    #[test]
    fn dash_and_backslash_quoted_heredocs_parse_on_run_and_copy() {
        let df = parse(
            "FROM debian:12.5\nCOPY <<-\\EOT /x\n\thello $HOME\n\tEOT\nRUN <<-EOF\n\tapt-get update\n\t\tEOF\nRUN <<\\EOF\necho $HOME\nEOF\nUSER u",
        )
        .unwrap();
        let Instruction::Copy(copy) = &df.instructions[1].instruction else {
            panic!("{:?}", df.instructions[1])
        };
        assert_eq!(copy.dest, "/x");
        assert_eq!(df.instructions[1].end_line, 4);
        let Instruction::Run(run) = &df.instructions[2].instruction else {
            panic!()
        };
        assert_eq!(run.arguments.form, ArgumentsForm::Heredoc);
        assert_eq!(run.arguments.script.source, "apt-get update");
        let Instruction::Run(run) = &df.instructions[3].instruction else {
            panic!()
        };
        assert_eq!(run.arguments.script.commands[0].name, "echo");
        assert!(matches!(
            df.instructions[4].instruction,
            Instruction::User(_)
        ));
        assert_eq!(df.instructions[4].line, 11);
        assert_eq!(
            heredoc_marker("<<-'E O'"),
            Some(Heredoc {
                word: "E O".into(),
                strip_tabs: true
            })
        );
        assert_eq!(
            heredoc_marker("<<E\\O\\F x").map(|h| h.word),
            Some("EOF".into())
        );
        assert_eq!(
            heredoc_marker("<<\"\""),
            None,
            "an empty word is no heredoc"
        );
        // Without `-`, an indented terminator does not end the body: no heredoc, and its lines
        // are instructions that do not parse.
        assert!(parse("RUN <<EOF\necho\n\tEOF\nUSER u").is_err());
    }

    #[test]
    fn a_port_range_ending_in_a_variable_is_a_variable() {
        let df = parse("EXPOSE 40000-${FOOBAR} 80-${X}/tcp ${A}-80 8000-8010/udp").unwrap();
        let Instruction::Expose(ports) = &df.instructions[0].instruction else {
            panic!()
        };
        assert_eq!(
            ports[..3],
            [
                PortSpec::Variable("40000-${FOOBAR}".into()),
                PortSpec::Variable("80-${X}/tcp".into()),
                PortSpec::Variable("${A}-80".into()),
            ]
        );
        assert!(matches!(
            ports[3],
            PortSpec::Range {
                start: 8000,
                end: 8010,
                ..
            }
        ));
        assert!(
            parse("EXPOSE 80-abc").is_err(),
            "not a number nor a variable"
        );
    }

    #[test]
    fn nested_onbuild_parses_to_a_bounded_depth() {
        let df = parse("ONBUILD ONBUILD RUN anything").unwrap();
        let Instruction::OnBuild(inner) = &df.instructions[0].instruction else {
            panic!()
        };
        assert!(matches!(**inner, Instruction::OnBuild(_)));
        let deep = format!("{}RUN x", "ONBUILD ".repeat(MAX_ONBUILD_NESTING + 1));
        assert!(parse(&deep).is_ok(), "{MAX_ONBUILD_NESTING} nested");
        let deeper = format!("{}RUN x", "ONBUILD ".repeat(MAX_ONBUILD_NESTING + 2));
        let error = parse(&deeper).unwrap_err().to_string();
        assert!(error.contains("nested more than"), "{error}");
        // A hostile line: refused at once, no deep recursion.
        let hostile = format!("{}RUN x", "ONBUILD ".repeat(50_000));
        assert!(parse(&hostile).is_err());
    }

    #[test]
    fn env_and_label_pairs() {
        let df = parse(
            "ENV A=1 B=\"two words\" C=x\\ y\nENV LEGACY value with spaces\nLABEL \"k.e.y\"='v'",
        )
        .unwrap();
        let Instruction::Env(pairs) = &df.instructions[0].instruction else {
            panic!()
        };
        assert_eq!(
            pairs,
            &[
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x y".into())
            ]
        );
        let Instruction::Env(pairs) = &df.instructions[1].instruction else {
            panic!()
        };
        assert_eq!(pairs, &[("LEGACY".into(), "value with spaces".into())]);
        let Instruction::Label(pairs) = &df.instructions[2].instruction else {
            panic!()
        };
        assert_eq!(pairs, &[("k.e.y".into(), "v".into())]);
    }

    #[test]
    fn copy_add_arg_expose_healthcheck_onbuild() {
        let df = parse("COPY --from=build --chown=1:1 a b /dst/\nADD [\"x y\", \"/z\"]\nARG V=1.0\nARG N\nEXPOSE 80 443/udp 8000-8010 $P\nHEALTHCHECK --interval=5s CMD curl -f x\nHEALTHCHECK NONE\nONBUILD RUN make").unwrap();
        let i: Vec<&Instruction> = df.instructions.iter().map(|l| &l.instruction).collect();
        let Instruction::Copy(c) = i[0] else { panic!() };
        assert_eq!(
            (c.from.as_deref(), c.sources.clone(), c.dest.as_str()),
            (Some("build"), vec!["a".to_string(), "b".into()], "/dst/")
        );
        let Instruction::Add(a) = i[1] else { panic!() };
        assert_eq!(a.sources, ["x y"]);
        assert_eq!(
            i[2],
            &Instruction::Arg {
                name: "V".into(),
                default: Some("1.0".into())
            }
        );
        assert_eq!(
            i[3],
            &Instruction::Arg {
                name: "N".into(),
                default: None
            }
        );
        let Instruction::Expose(p) = i[4] else {
            panic!()
        };
        assert_eq!(p.len(), 4);
        assert!(matches!(i[5], Instruction::Healthcheck(Some(h)) if h.flags[0].0 == "interval"));
        assert_eq!(i[6], &Instruction::Healthcheck(None));
        let Instruction::OnBuild(inner) = i[7] else {
            panic!()
        };
        assert!(matches!(**inner, Instruction::Run(_)));
    }

    #[test]
    fn errors_carry_positions() {
        let err = parse("FROM a\n  {% if x %}\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 3));
        assert!(err.message.contains("unexpected '{'"), "{}", err.message);
        assert_eq!(parse("FROM a\nCOPY onlyone\n").unwrap_err().line, 2);
        assert_eq!(parse("FROM a\nRUN\n").unwrap_err().line, 2);
        assert!(
            parse("FROM a\nCOPY --bogus=1 a b\n")
                .unwrap_err()
                .message
                .contains("invalid flag")
        );
        assert!(parse("FROM a\nENV A=\"unterminated\n").is_err());
    }

    #[test]
    fn decode_handles_bom_and_crlf() {
        assert_eq!(
            decode(b"\xEF\xBB\xBFFROM a\r\nRUN b\r\n"),
            "FROM a\nRUN b\n"
        );
        assert_eq!(decode(&[0xFF, 0xFE, b'F', 0, b'R', 0]), "FR");
    }
}
