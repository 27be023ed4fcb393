//! The shell reader: splits the text of a `RUN` (or `CMD`, `SHELL`, …) into the simple commands and
//! words the rules inspect, the way hadolint sees them through ShellCheck's parser.
//!
//! It understands quoting (`'…'`, `"…"`, `$'…'`, backslashes), expansions (`$VAR`, `${…}`, `$(…)`,
//! backticks, `$((…))`), operators (`|`, `|&`, `&&`, `||`, `;`, `&`, newlines), redirections (their
//! targets are not arguments), heredocs, assignments before a command, subshells, brace groups,
//! `if`/`while`/`until`/`for`/`case` and function definitions. Commands inside command substitutions
//! are found too, after the command that contains them. A script the reader cannot make sense of
//! (an unterminated quote or substitution, an unclosed `if`) yields no commands, as hadolint's
//! ShellCheck-based reader does.

/// A shell script and the simple commands found in it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Script {
    /// The text as given.
    pub source: String,
    /// Every simple command whose name is a literal word, outermost first, in source order.
    pub commands: Vec<Command>,
    /// Whether the script contains a pipe (`|` or `|&`) anywhere, substitutions included.
    pub has_pipes: bool,
    /// `false` when the text could not be read as a shell script (then `commands` is empty).
    pub well_formed: bool,
}

/// One simple command: its name and its words after the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The command name (for `command x`, `builtin x`, `exec x`, `busybox x`: `x`).
    pub name: String,
    /// Every word after the first, quotes removed, expansions written as `${…}`.
    pub args: Vec<String>,
    /// The flags in `args`: `-abc` gives `a`, `b`, `c`; `--long=v` gives `long`; each with the index
    /// of the argument it came from.
    pub flags: Vec<(String, usize)>,
}

impl Script {
    /// Reads `source` as a shell script.
    pub fn parse(source: &str) -> Script {
        let mut reader = Reader::new(source.as_bytes());
        reader.run_list(Stop::End);
        let well_formed = !reader.failed && reader.pos >= reader.src.len();
        let commands = if well_formed {
            reader.commands.into_iter().flatten().collect()
        } else {
            Vec::new()
        };
        Script {
            source: source.to_string(),
            commands,
            has_pipes: well_formed && reader.has_pipes,
            well_formed,
        }
    }

    /// Whether any command satisfies `check`.
    pub fn any_command(&self, check: impl Fn(&Command) -> bool) -> bool {
        self.commands.iter().any(check)
    }

    /// Whether no command satisfies `check`.
    pub fn no_commands(&self, check: impl Fn(&Command) -> bool) -> bool {
        !self.commands.iter().any(check)
    }

    /// The index of the first command satisfying `check`.
    pub fn find_command_index(&self, check: impl Fn(&Command) -> bool) -> Option<usize> {
        self.commands.iter().position(check)
    }

    /// Whether a command named `program` is run.
    pub fn using_program(&self, program: &str) -> bool {
        self.commands.iter().any(|c| c.name == program)
    }

    /// The names of all commands, in order.
    pub fn command_names(&self) -> impl Iterator<Item = &str> {
        self.commands.iter().map(|c| c.name.as_str())
    }
}

impl Command {
    /// Builds a command from its name and arguments, computing its flags.
    pub fn new(name: impl Into<String>, args: Vec<String>) -> Command {
        let flags = flags_of(&args);
        Command {
            name: name.into(),
            args,
            flags,
        }
    }

    /// `name` is this command's name and one of `args` is among its arguments.
    pub fn has_args(&self, name: &str, args: &[&str]) -> bool {
        self.name == name && self.args.iter().any(|a| args.contains(&a.as_str()))
    }

    /// This command's name is one of `names` and one of `args` is among its arguments.
    pub fn names_have_args(&self, names: &[&str], args: &[&str]) -> bool {
        names.contains(&self.name.as_str()) && self.args.iter().any(|a| args.contains(&a.as_str()))
    }

    /// `name` is this command's name and an argument starts with `prefix`.
    pub fn has_prefix_arg(&self, name: &str, prefix: &str) -> bool {
        self.name == name && self.args.iter().any(|a| a.starts_with(prefix))
    }

    /// Whether `arg` is one of the arguments.
    pub fn has_arg(&self, arg: &str) -> bool {
        self.args.iter().any(|a| a == arg)
    }

    /// Whether the flag `flag` (without dashes) is given.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|(f, _)| f == flag)
    }

    /// How many times the flag `flag` is given.
    pub fn count_flag(&self, flag: &str) -> usize {
        self.flags.iter().filter(|(f, _)| f == flag).count()
    }

    /// Whether any of `flags` is given.
    pub fn has_any_flag(&self, flags: &[&str]) -> bool {
        self.flags.iter().any(|(f, _)| flags.contains(&f.as_str()))
    }

    /// The arguments that are not flags (`-` and `--` count as arguments).
    pub fn args_no_flags(&self) -> Vec<&str> {
        self.args
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.flags.iter().any(|(_, fi)| fi == i))
            .map(|(_, a)| a.as_str())
            .collect()
    }

    /// The values given to `flag` as the argument after it (`-u 1000` gives `1000`).
    pub fn flag_values(&self, flag: &str) -> Vec<&str> {
        let mut indices: Vec<usize> = self
            .flags
            .iter()
            .filter(|(f, _)| f == flag)
            .map(|(_, i)| i + 1)
            .filter(|i| *i < self.args.len())
            .collect();
        indices.dedup();
        indices.iter().map(|i| self.args[*i].as_str()).collect()
    }

    /// A copy without the value arguments of `flags` given as separate words (`-t stable`), so that
    /// they are not mistaken for operands. Values written inline (`--target-release=x`) stay.
    pub fn drop_flag_values(&self, flags: &[&str]) -> Command {
        let drop: Vec<usize> = self
            .flags
            .iter()
            .filter(|(f, i)| flags.contains(&f.as_str()) && !self.args[*i].contains('='))
            .map(|(_, i)| i + 1)
            .collect();
        let args: Vec<String> = self
            .args
            .iter()
            .enumerate()
            .filter(|(i, _)| !drop.contains(i))
            .map(|(_, a)| a.clone())
            .collect();
        Command::new(self.name.clone(), args)
    }

    /// Whether this is `pip… install` or `python… -m pip install`.
    pub fn is_pip_install(&self) -> bool {
        let std_pip = self.name.starts_with("pip")
            && !self.name.starts_with("pipenv")
            && self.args.iter().any(|a| a == "install");
        let python_pip = self.name.starts_with("python")
            && self
                .args
                .windows(3)
                .any(|w| w[0] == "-m" && w[1] == "pip" && w[2] == "install");
        std_pip || python_pip
    }
}

/// The flags among `args`, hadolint's way: `--name[=v]` gives `name`, `-abc` gives `a`, `b`, `c`.
fn flags_of(args: &[String]) -> Vec<(String, usize)> {
    let mut flags = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if arg == "-" || arg == "--" {
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or_default();
            flags.push((name.to_string(), i));
        } else if let Some(short) = arg.strip_prefix('-') {
            for c in short.chars() {
                flags.push((c.to_string(), i));
            }
        }
    }
    flags
}

/// Where a list of commands ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// At the end of the text.
    End,
    /// At an unmatched `)` (command substitution, process substitution).
    Paren,
    /// At an unescaped backtick.
    Backtick,
}

/// What the words at command position are currently doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Expecting a command (or a reserved word).
    CommandStart,
    /// Inside a simple command: words are arguments.
    InCommand,
    /// After `fi`, `done`, `}`, `esac`, `)`, `]]`, `))`: only operators or redirections may follow.
    AfterCompound,
    /// After `for`/`select`: the loop variable comes next.
    ForName,
    /// After the loop variable: `in` words, or `do`.
    ForWords,
    /// After `case`: the subject word.
    CaseSubject,
    /// After the subject: the word `in`.
    CaseIn,
    /// In a `case` pattern, up to `)`.
    CasePattern,
    /// After `function`: the function name.
    FunctionName,
}

/// Characters that end an unquoted word.
fn is_meta(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\n' | b'\r' | b'|' | b'&' | b';' | b'<' | b'>' | b'(' | b')'
    )
}

/// Characters a backslash escapes in an unquoted word (ShellCheck's list); others keep it.
fn is_unquoted_escapable(b: u8) -> bool {
    b" \t\n\r|&;<>()\\'\"$`?*@!+[]{}.,~#".contains(&b)
}

/// Whether `word` (raw) starts with an assignment `NAME=` or `NAME+=` or `NAME[…]=`.
fn is_assignment(raw: &[u8]) -> bool {
    let mut i = 0;
    if raw.is_empty() || !(raw[0].is_ascii_alphabetic() || raw[0] == b'_') {
        return false;
    }
    while i < raw.len() && (raw[i].is_ascii_alphanumeric() || raw[i] == b'_') {
        i += 1;
    }
    if i < raw.len() && raw[i] == b'[' {
        while i < raw.len() && raw[i] != b']' {
            i += 1;
        }
        i += 1;
    }
    if i < raw.len() && raw[i] == b'+' {
        i += 1;
    }
    i < raw.len() && raw[i] == b'='
}

/// A word as read: its simplified text and whether it was free of expansions and globs.
struct Word {
    text: Vec<u8>,
    raw: Vec<u8>,
    literal: bool,
}

/// A heredoc whose body starts at the next newline.
struct PendingHeredoc {
    delimiter: Vec<u8>,
    strip_tabs: bool,
}

/// The reader's state over one script.
struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
    /// Found commands; `None` marks a slot reserved for a command that turned out to have no name.
    commands: Vec<Option<Command>>,
    has_pipes: bool,
    failed: bool,
    heredocs: Vec<PendingHeredoc>,
    /// The lists being read, innermost last.
    stops: Vec<Stop>,
}

/// A simple command being read.
struct Current {
    slot: usize,
    name: Option<(Vec<u8>, bool)>,
    args: Vec<Vec<u8>>,
}

impl<'a> Reader<'a> {
    fn new(src: &'a [u8]) -> Reader<'a> {
        Reader {
            src,
            pos: 0,
            commands: Vec::new(),
            has_pipes: false,
            failed: false,
            heredocs: Vec::new(),
            stops: Vec::new(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.src.get(self.pos + offset).copied()
    }

    fn starts_with(&self, s: &[u8]) -> bool {
        self.src[self.pos..].starts_with(s)
    }

    /// Reads commands until `stop`; leaves `pos` after the closing `)` or backtick.
    fn run_list(&mut self, stop: Stop) {
        self.stops.push(stop);
        if self.stops.len() > 64 {
            self.failed = true;
            self.pos = self.src.len();
            return;
        }
        let mut mode = Mode::CommandStart;
        let mut current: Option<Current> = None;
        // Open compound constructs, to check they are closed: `if`, `do`, `{`, `(`, `case`.
        let mut open: Vec<&'static [u8]> = Vec::new();
        let mut pending_redirect = false;
        loop {
            if self.failed {
                break;
            }
            let Some(b) = self.peek() else {
                if stop != Stop::End {
                    self.failed = true;
                }
                break;
            };
            match b {
                b' ' | b'\t' | b'\r' => {
                    self.pos += 1;
                }
                b'\\' if self.peek_at(1) == Some(b'\n') => {
                    self.pos += 2;
                }
                b'#' => {
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                b'\n' => {
                    self.pos += 1;
                    self.finish(&mut current);
                    self.read_heredoc_bodies();
                    mode = match mode {
                        Mode::ForWords | Mode::CasePattern | Mode::CaseIn | Mode::CaseSubject => {
                            mode
                        }
                        _ => Mode::CommandStart,
                    };
                    if mode == Mode::ForWords {
                        mode = Mode::CommandStart;
                    }
                }
                b'`' if stop == Stop::Backtick => {
                    self.pos += 1;
                    break;
                }
                b')' => {
                    self.pos += 1;
                    self.finish(&mut current);
                    if mode == Mode::CasePattern {
                        mode = Mode::CommandStart;
                    } else if open.last() == Some(&&b"("[..]) {
                        open.pop();
                        mode = Mode::AfterCompound;
                    } else if stop == Stop::Paren {
                        break;
                    } else {
                        self.failed = true;
                    }
                }
                b'(' => {
                    self.pos += 1;
                    match mode {
                        Mode::CasePattern => {}
                        Mode::CommandStart => {
                            if self.peek() == Some(b'(') {
                                // `(( arithmetic ))`
                                self.pos += 1;
                                self.skip_arithmetic();
                                mode = Mode::AfterCompound;
                            } else {
                                open.push(b"(");
                            }
                        }
                        Mode::InCommand
                            if current.as_ref().is_some_and(|c| c.args.is_empty())
                                && self.skip_function_parens() =>
                        {
                            // `name() body`: not a command.
                            if let Some(c) = current.take() {
                                self.commands[c.slot] = None;
                            }
                            mode = Mode::CommandStart;
                        }
                        Mode::FunctionName => {
                            if self.peek() == Some(b')') {
                                self.pos += 1;
                            }
                            mode = Mode::CommandStart;
                        }
                        _ => self.failed = true,
                    }
                }
                b'|' | b'&' | b';' => {
                    let op = self.read_operator();
                    if mode == Mode::CasePattern && op == b"|" {
                        // Alternatives in a case pattern, not a pipe.
                        continue;
                    }
                    self.finish(&mut current);
                    match op {
                        b"|" | b"|&" => {
                            self.has_pipes = true;
                            mode = Mode::CommandStart;
                        }
                        b";;" | b";&" | b";;&" => {
                            mode = Mode::CasePattern;
                        }
                        b"&>" | b"&>>" => {
                            pending_redirect = true;
                            if mode == Mode::CommandStart {
                                current = Some(self.open_command());
                                mode = Mode::InCommand;
                            }
                        }
                        b";" if matches!(mode, Mode::ForWords) => mode = Mode::CommandStart,
                        _ => mode = Mode::CommandStart,
                    }
                }
                b'<' | b'>' => {
                    if matches!(self.peek_at(1), Some(b'(')) {
                        // Process substitution: a word.
                        self.word_token(&mut mode, &mut current, &mut open, &mut pending_redirect);
                        continue;
                    }
                    let op = self.read_operator();
                    if mode == Mode::CommandStart {
                        current = Some(self.open_command());
                        mode = Mode::InCommand;
                    }
                    if op == b"<<" || op == b"<<-" {
                        self.skip_blanks();
                        let delimiter = self.read_word();
                        match delimiter {
                            Some(word) if !word.raw.is_empty() => {
                                self.heredocs.push(PendingHeredoc {
                                    delimiter: word.text,
                                    strip_tabs: op == b"<<-",
                                });
                            }
                            _ => self.failed = true,
                        }
                    } else {
                        pending_redirect = true;
                    }
                }
                _ => {
                    self.word_token(&mut mode, &mut current, &mut open, &mut pending_redirect);
                }
            }
        }
        self.finish(&mut current);
        if !open.is_empty() || matches!(mode, Mode::ForName | Mode::CaseSubject | Mode::CaseIn) {
            self.failed = true;
        }
        self.stops.pop();
    }

    /// Handles one word at the current position, according to `mode`.
    fn word_token(
        &mut self,
        mode: &mut Mode,
        current: &mut Option<Current>,
        open: &mut Vec<&'static [u8]>,
        pending_redirect: &mut bool,
    ) {
        // An fd number right before a redirection (`2>&1`) is part of the redirection.
        let start = self.pos;
        let mut digits = 0;
        while self.peek_at(digits).is_some_and(|c| c.is_ascii_digit()) {
            digits += 1;
        }
        if digits > 0
            && matches!(self.peek_at(digits), Some(b'<' | b'>'))
            && self.peek_at(digits + 1) != Some(b'(')
        {
            self.pos += digits;
            return;
        }
        // The slot of a new simple command is reserved before its words are read, so that the
        // commands of substitutions inside it come after it.
        if *mode == Mode::CommandStart && current.is_none() && !*pending_redirect {
            let reserved = self.peek_reserved_word();
            if reserved.is_none() {
                *current = Some(self.open_command());
            }
        }
        let Some(word) = self.read_word() else {
            self.pos = start.max(self.pos);
            if self.pos == start {
                // Nothing readable here: skip the byte so that we always progress.
                self.pos += 1;
            }
            return;
        };
        if *pending_redirect {
            *pending_redirect = false;
            return;
        }
        match *mode {
            Mode::CommandStart => {
                if current.is_none() {
                    // A reserved word.
                    match word.raw.as_slice() {
                        b"if" => open.push(b"if"),
                        b"do" => open.push(b"do"),
                        b"while" | b"until" | b"then" | b"else" | b"elif" | b"!" | b"time" => {}
                        b"{" => open.push(b"{"),
                        b"fi" | b"done" | b"}" => {
                            let expected: &[u8] = match word.raw.as_slice() {
                                b"fi" => b"if",
                                b"done" => b"do",
                                _ => b"{",
                            };
                            if word.raw == b"done" {
                                // `while … do … done`: the `while` and the `do` both close here.
                                if open.last() == Some(&expected) {
                                    open.pop();
                                } else {
                                    self.failed = true;
                                }
                            } else if open.last() == Some(&expected) {
                                open.pop();
                            } else {
                                self.failed = true;
                            }
                            *mode = Mode::AfterCompound;
                        }
                        b"for" | b"select" => *mode = Mode::ForName,
                        b"case" => {
                            open.push(b"case");
                            *mode = Mode::CaseSubject;
                        }
                        b"esac" => {
                            if open.last() == Some(&&b"case"[..]) {
                                open.pop();
                            } else {
                                self.failed = true;
                            }
                            *mode = Mode::AfterCompound;
                        }
                        b"function" => *mode = Mode::FunctionName,
                        b"[[" | b"[" => {
                            // ShellCheck reads both as test expressions, not commands.
                            let end: &[u8] = if word.raw == b"[[" { b"]]" } else { b"]" };
                            self.skip_until_word(end);
                            *mode = Mode::AfterCompound;
                        }
                        _ => {}
                    }
                    return;
                }
                if is_assignment(&word.raw) {
                    return;
                }
                if let Some(c) = current.as_mut() {
                    c.name = Some((word.text, word.literal));
                }
                *mode = Mode::InCommand;
            }
            Mode::InCommand => {
                if let Some(c) = current.as_mut() {
                    if c.name.is_none() {
                        if is_assignment(&word.raw) {
                            return;
                        }
                        c.name = Some((word.text, word.literal));
                    } else {
                        c.args.push(word.text);
                    }
                }
            }
            Mode::AfterCompound => {}
            Mode::ForName => *mode = Mode::ForWords,
            Mode::ForWords => {
                if word.raw == b"do" {
                    open.push(b"do");
                    *mode = Mode::CommandStart;
                }
            }
            Mode::CaseSubject => *mode = Mode::CaseIn,
            Mode::CaseIn => {
                if word.raw == b"in" {
                    *mode = Mode::CasePattern;
                } else {
                    self.failed = true;
                }
            }
            Mode::CasePattern => {
                if word.raw == b"esac" {
                    if open.last() == Some(&&b"case"[..]) {
                        open.pop();
                    } else {
                        self.failed = true;
                    }
                    *mode = Mode::AfterCompound;
                }
            }
            Mode::FunctionName => *mode = Mode::CommandStart,
        }
    }

    /// Reserves a slot for a simple command that starts here.
    fn open_command(&mut self) -> Current {
        self.commands.push(None);
        Current {
            slot: self.commands.len() - 1,
            name: None,
            args: Vec::new(),
        }
    }

    /// Completes the simple command being read, if any.
    fn finish(&mut self, current: &mut Option<Current>) {
        let Some(c) = current.take() else { return };
        let Some((name, literal)) = c.name else {
            return;
        };
        if !literal {
            return;
        }
        let name = String::from_utf8_lossy(&name).into_owned();
        let args: Vec<String> = c
            .args
            .into_iter()
            .map(|a| String::from_utf8_lossy(&a).into_owned())
            .collect();
        let effective = effective_name(&name, &args).unwrap_or(name);
        self.commands[c.slot] = Some(Command::new(effective, args));
    }

    /// If a reserved word stands at the current position, returns it (without consuming it).
    fn peek_reserved_word(&self) -> Option<&'static str> {
        const RESERVED: [&str; 20] = [
            "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "select",
            "case", "esac", "function", "{", "}", "!", "[[", "[", "in",
        ];
        let rest = &self.src[self.pos..];
        RESERVED.into_iter().filter(|w| *w != "in").find(|w| {
            rest.starts_with(w.as_bytes()) && rest.get(w.len()).is_none_or(|c| is_meta(*c))
        })
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Reads an operator made of `|&;<>` characters.
    fn read_operator(&mut self) -> &'static [u8] {
        const OPERATORS: [&[u8]; 22] = [
            b";;&", b"<<<", b"&>>", b"<<-", b"&&", b"||", b";;", b";&", b"|&", b"&>", b"<<", b"<>",
            b"<&", b">>", b">&", b">|", b"|", b"&", b";", b"<", b">", b"\n",
        ];
        for op in OPERATORS {
            if self.starts_with(op) {
                self.pos += op.len();
                return op;
            }
        }
        self.pos += 1;
        b"?"
    }

    /// After `name(`: consumes `)` if it follows (a function definition) and reports whether it did.
    fn skip_function_parens(&mut self) -> bool {
        let save = self.pos;
        self.skip_blanks();
        if self.peek() == Some(b')') {
            self.pos += 1;
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Skips an arithmetic expression up to the matching `))`.
    fn skip_arithmetic(&mut self) {
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                b'(' => depth += 1,
                b')' if depth == 0 && self.peek_at(1) == Some(b')') => {
                    self.pos += 2;
                    return;
                }
                b')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            self.pos += 1;
        }
        self.failed = true;
    }

    /// Skips words up to and including `end` (for `[[ … ]]`).
    fn skip_until_word(&mut self, end: &[u8]) {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => {
                    self.failed = true;
                    return;
                }
                Some(b'\n') | Some(b'&') | Some(b'|') | Some(b'(') | Some(b')') | Some(b'<')
                | Some(b'>') | Some(b';') => self.pos += 1,
                Some(_) => match self.read_word() {
                    Some(w) if w.raw == end => return,
                    Some(_) => {}
                    None => self.pos += 1,
                },
            }
        }
    }

    /// Consumes the bodies of the heredocs opened on the line just ended.
    fn read_heredoc_bodies(&mut self) {
        let pending = std::mem::take(&mut self.heredocs);
        for doc in pending {
            loop {
                if self.pos >= self.src.len() {
                    // ShellCheck accepts a heredoc ended by the end of the script (with a warning).
                    break;
                }
                let end = self.src[self.pos..]
                    .iter()
                    .position(|c| *c == b'\n')
                    .map_or(self.src.len(), |e| self.pos + e);
                let mut line = &self.src[self.pos..end];
                if doc.strip_tabs {
                    while let Some((b'\t', rest)) = line.split_first() {
                        line = rest;
                    }
                }
                self.pos = (end + 1).min(self.src.len());
                if line == doc.delimiter.as_slice() {
                    break;
                }
            }
        }
    }

    /// Reads one word (which may contain quotes and expansions). `None` when no word starts here.
    fn read_word(&mut self) -> Option<Word> {
        let start = self.pos;
        let mut text = Vec::new();
        let mut literal = true;
        while let Some(c) = self.peek() {
            match c {
                b'\\' => match self.peek_at(1) {
                    Some(b'\n') => self.pos += 2,
                    Some(n) => {
                        if !is_unquoted_escapable(n) {
                            text.push(b'\\');
                        }
                        text.push(n);
                        self.pos += 2;
                    }
                    None => {
                        text.push(b'\\');
                        self.pos += 1;
                    }
                },
                b'\'' => {
                    self.pos += 1;
                    let Some(end) = self.src[self.pos..].iter().position(|c| *c == b'\'') else {
                        self.failed = true;
                        self.pos = self.src.len();
                        return None;
                    };
                    text.extend_from_slice(&self.src[self.pos..self.pos + end]);
                    self.pos += end + 1;
                }
                b'"' => {
                    self.pos += 1;
                    if !self.read_double_quoted(&mut text, &mut literal) {
                        return None;
                    }
                }
                b'$' => {
                    if !self.read_dollar(&mut text, &mut literal) {
                        return None;
                    }
                }
                b'`' if self.stops.last() == Some(&Stop::Backtick) => break,
                b'`' => {
                    self.pos += 1;
                    self.run_list(Stop::Backtick);
                    text.extend_from_slice(b"${VAR}");
                    literal = false;
                }
                b'<' | b'>' if self.peek_at(1) == Some(b'(') && self.pos == start => {
                    self.pos += 2;
                    self.run_list(Stop::Paren);
                    text.extend_from_slice(b"${VAR}");
                    literal = false;
                }
                b'(' if text.ends_with(b"=") && is_assignment(&self.src[start..self.pos]) => {
                    // Array assignment `a=(1 2 3)`: keep it as one word.
                    let mut depth = 0usize;
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        text.push(c);
                        match c {
                            b'(' => depth += 1,
                            b')' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                }
                b'*' | b'?' | b'[' => {
                    text.push(c);
                    self.pos += 1;
                    if c != b'[' || self.src[self.pos..].contains(&b']') {
                        literal = false;
                    }
                }
                c if is_meta(c) => break,
                _ => {
                    text.push(c);
                    self.pos += 1;
                }
            }
            if self.failed {
                return None;
            }
        }
        if self.pos == start {
            return None;
        }
        Some(Word {
            text,
            raw: self.src[start..self.pos].to_vec(),
            literal,
        })
    }

    /// Reads a double-quoted string after its opening quote, appending its simplified text.
    fn read_double_quoted(&mut self, text: &mut Vec<u8>, literal: &mut bool) -> bool {
        while let Some(c) = self.peek() {
            match c {
                b'"' => {
                    self.pos += 1;
                    return true;
                }
                b'\\' => {
                    match self.peek_at(1) {
                        Some(b'\n') => {}
                        Some(n @ (b'"' | b'\\' | b'$' | b'`')) => text.push(n),
                        Some(n) => {
                            text.push(b'\\');
                            text.push(n);
                        }
                        None => {
                            self.failed = true;
                            return false;
                        }
                    }
                    self.pos += 2;
                }
                b'$' => {
                    if !self.read_dollar(text, literal) {
                        return false;
                    }
                }
                b'`' => {
                    self.pos += 1;
                    self.run_list(Stop::Backtick);
                    text.extend_from_slice(b"${VAR}");
                    *literal = false;
                }
                _ => {
                    text.push(c);
                    self.pos += 1;
                }
            }
            if self.failed {
                return false;
            }
        }
        self.failed = true;
        false
    }

    /// Reads an expansion starting at `$`, appending its simplified text.
    fn read_dollar(&mut self, text: &mut Vec<u8>, literal: &mut bool) -> bool {
        self.pos += 1;
        match self.peek() {
            Some(b'(') if self.peek_at(1) == Some(b'(') => {
                self.pos += 2;
                self.skip_arithmetic();
                text.extend_from_slice(b"${VAR}");
                *literal = false;
            }
            Some(b'(') => {
                self.pos += 1;
                let inner_start = self.pos;
                self.run_list(Stop::Paren);
                // An unclosed `$(` at the end leaves `pos` past the source.
                let inner_end = self
                    .pos
                    .saturating_sub(1)
                    .max(inner_start)
                    .min(self.src.len());
                text.extend_from_slice(b"${");
                text.extend(
                    self.src[inner_start..inner_end]
                        .iter()
                        .filter(|c| !c.is_ascii_whitespace()),
                );
                text.push(b'}');
                *literal = false;
            }
            Some(b'{') => {
                let open = self.pos;
                let mut depth = 0usize;
                while let Some(c) = self.peek() {
                    self.pos += 1;
                    match c {
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        b'\\' => self.pos += 1,
                        _ => {}
                    }
                }
                if depth != 0 {
                    self.failed = true;
                    return false;
                }
                text.push(b'$');
                text.extend_from_slice(&self.src[open..self.pos.min(self.src.len())]);
                *literal = false;
            }
            Some(b'\'') => {
                // $'…' (ANSI-C quoting).
                self.pos += 1;
                while let Some(c) = self.peek() {
                    self.pos += 1;
                    match c {
                        b'\'' => return true,
                        b'\\' => {
                            if let Some(n) = self.peek() {
                                text.push(b'\\');
                                text.push(n);
                                self.pos += 1;
                            }
                        }
                        _ => text.push(c),
                    }
                }
                self.failed = true;
                return false;
            }
            Some(b'"') => {
                self.pos += 1;
                return self.read_double_quoted(text, literal);
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.pos += 1;
                }
                text.extend_from_slice(b"${");
                text.extend_from_slice(&self.src[start..self.pos]);
                text.push(b'}');
                *literal = false;
            }
            Some(c) if c.is_ascii_digit() || b"@*#?-$!".contains(&c) => {
                self.pos += 1;
                text.extend_from_slice(b"${");
                text.push(c);
                text.push(b'}');
                *literal = false;
            }
            _ => text.push(b'$'),
        }
        true
    }
}

/// The command that `command x`, `builtin x`, `busybox x`, `run x` and `exec x` really run.
fn effective_name(name: &str, args: &[String]) -> Option<String> {
    match name {
        "busybox" | "builtin" | "command" | "run" => {
            let first = args.first()?;
            (!first.starts_with('-')).then(|| first.clone())
        }
        "exec" => {
            let mut i = 0;
            while let Some(arg) = args.get(i) {
                match arg.as_str() {
                    "-c" | "-l" | "-cl" | "-lc" => i += 1,
                    "-a" => i += 2,
                    _ if arg.starts_with('-') => return None,
                    _ => return Some(arg.clone()),
                }
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(script: &str) -> Vec<String> {
        Script::parse(script)
            .commands
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    #[test]
    fn unclosed_substitutions_at_the_end_do_not_panic() {
        // Found by slipway-fuzz (a mutated corpus RUN): `$(` left open inside quotes at the end
        // of the script sliced one byte past it.
        let tail = r#"for src in idle3 pip3; do dst="$(echo "echo "$src" | tr '"#;
        for end in 0..=tail.len() {
            if tail.is_char_boundary(end) {
                Script::parse(&tail[..end]);
            }
        }
        // The fuzzer's 1.9 KB input, reduced.
        Script::parse(r#"$("""";[ $("";[ ""#);
        for script in ["$(", "\"$(", "a \"$(b", "$((", "x=$(echo \"$(", "'$("] {
            Script::parse(script);
        }
    }

    #[test]
    fn splits_on_operators_and_keeps_order() {
        assert_eq!(
            names("apt-get update && apt-get install -y curl; rm -rf /var/lib/apt/lists/* || true"),
            ["apt-get", "apt-get", "rm", "true"]
        );
    }

    #[test]
    fn pipes_are_seen_but_or_is_not_a_pipe() {
        assert!(Script::parse("curl -s x | sh").has_pipes);
        assert!(!Script::parse("a || b").has_pipes);
        assert!(Script::parse("echo $(a | b)").has_pipes);
        assert!(Script::parse("a |& b").has_pipes);
    }

    #[test]
    fn words_lose_quotes_and_keep_variables() {
        let script = Script::parse(r#"apt-get install -y "curl=1.2" 'wget' pkg=${V} $X \; a\b"#);
        let cmd = &script.commands[0];
        assert_eq!(
            cmd.args,
            [
                "install", "-y", "curl=1.2", "wget", "pkg=${V}", "${X}", ";", "a\\b"
            ]
        );
        assert_eq!(
            cmd.args_no_flags(),
            [
                "install", "curl=1.2", "wget", "pkg=${V}", "${X}", ";", "a\\b"
            ]
        );
    }

    #[test]
    fn flags_short_long_and_values() {
        let cmd = Script::parse("useradd -rm -u 1000 --shell=/bin/bash -- x")
            .commands
            .remove(0);
        assert!(cmd.has_flag("r") && cmd.has_flag("m") && cmd.has_flag("shell"));
        assert!(!cmd.has_flag("-"));
        assert_eq!(cmd.flag_values("u"), ["1000"]);
        let dropped = Script::parse("apt-get install -t stable foo --target-release=x bar")
            .commands
            .remove(0)
            .drop_flag_values(&["t", "target-release"]);
        assert_eq!(dropped.args_no_flags(), ["install", "foo", "bar"]);
    }

    #[test]
    fn assignments_and_redirections_are_not_words() {
        let script =
            Script::parse("DEBIAN_FRONTEND=noninteractive apt-get install x >/dev/null 2>&1 < in");
        assert_eq!(script.commands[0].name, "apt-get");
        assert_eq!(script.commands[0].args, ["install", "x"]);
        assert!(Script::parse("FOO=bar").commands.is_empty());
    }

    #[test]
    fn substitutions_and_subshells_are_searched_outer_first() {
        assert_eq!(
            names("echo $(cd /x && ls) `pwd`"),
            ["echo", "cd", "ls", "pwd"]
        );
        assert_eq!(
            names("(cd /tmp && make) && { cd /; ls; }"),
            ["cd", "make", "cd", "ls"]
        );
        assert_eq!(names("X=$(uname -m) y"), ["y", "uname"]);
    }

    #[test]
    fn control_structures_are_not_commands() {
        assert_eq!(
            names("for f in a b; do cd $f; done; if [ -f x ]; then rm x; else touch y; fi"),
            ["cd", "rm", "touch"]
        );
        assert_eq!(
            names("while read l; do echo $l; done < f"),
            ["read", "echo"]
        );
        assert_eq!(
            names("case \"$a\" in x|y) echo 1 ;; (*) echo 2 ;; esac; ls"),
            ["echo", "echo", "ls"]
        );
        assert_eq!(names("f() { cd /; }; f"), ["cd", "f"]);
        assert_eq!(names("function g { ls; }"), ["ls"]);
        assert_eq!(names("[[ -f x ]] && (( i++ )) && ok"), ["ok"]);
        assert_eq!(names("echo done fi then"), ["echo"]);
    }

    #[test]
    fn names_with_expansions_are_not_commands_and_wrappers_are_seen_through() {
        assert_eq!(
            names("$CMD install; *.sh; command -v x; exec gosu user app"),
            ["command", "gosu"]
        );
        assert_eq!(names("busybox wget x"), ["wget"]);
    }

    #[test]
    fn unreadable_scripts_have_no_commands() {
        for bad in [
            "echo 'unterminated",
            "echo $(ls",
            "if true; then ls",
            "echo \"x",
            "a )",
        ] {
            let script = Script::parse(bad);
            assert!(!script.well_formed, "{bad}");
            assert!(script.commands.is_empty(), "{bad}");
        }
    }

    #[test]
    fn heredocs_bodies_are_skipped() {
        assert_eq!(names("cat <<EOF > f\ncd x\nEOF\nls"), ["cat", "ls"]);
        assert_eq!(names("cat <<-'E'\n\tcd x\n\tE\nls"), ["cat", "ls"]);
    }

    #[test]
    fn pip_install_forms() {
        let first = |s: &str| Script::parse(s).commands.remove(0);
        assert!(first("pip3 install x").is_pip_install());
        assert!(first("python3 -m pip install x").is_pip_install());
        assert!(!first("pipenv install").is_pip_install());
        assert!(!first("pip download x").is_pip_install());
    }
}
