//! Ruby gems: the specification stubs RubyGems writes to `specifications/*.gemspec` when it
//! installs a gem, read without running Ruby.
//!
//! Those files are Ruby source produced by `Gem::Specification#to_ruby`: a
//! `Gem::Specification.new do |s| … end` block of assignments such as `s.name = "rake".freeze`,
//! `s.version = "13.0.6"`, `s.licenses = ["MIT".freeze]` (older RubyGems wrote `%q{rake}` and
//! `s.license = …`), preceded by a `# stub: <name> <version> <platform> <paths>` comment, the line
//! RubyGems itself reads to list gems without loading the whole file.
//!
//! The reader is a small tolerant lexer of the Ruby that appears there — identifiers, `.`, `=`,
//! string literals (`"…"` with escapes, `'…'`, `%q`/`%Q`/`%(…)` with any delimiter, `%w[…]`
//! word arrays), arrays, `nil`, comments, `=begin`/`=end` blocks — followed by a search for
//! `<receiver>.<attribute> = <literal>` for `name`, `version`, `license` and `licenses` (the last
//! assignment wins, as it would in Ruby). Anything else is skipped. The stub line stands in for a
//! `name` or `version` that is missing or not a literal (a hand-written gemspec's
//! `spec.version = Foo::VERSION`); when neither gives one, the file is an error. The platform
//! (`s.platform = "x86_64-linux"`, written only for gems built for one platform; the stub line's
//! third word otherwise, `ruby` for pure-Ruby gems) is optional: a value that is not a printable
//! one-line literal is ignored rather than an error, and `ruby` means none.

use super::{Declared, Mismatch, identifier};

/// Whether a file named `file` in `parent` (in `grandparent`) is a specification stub:
/// `specifications/<x>.gemspec` or `specifications/default/<x>.gemspec`.
pub(super) fn is_specification(file: &str, parent: &str, grandparent: &str) -> bool {
    let in_specifications =
        parent == "specifications" || (parent == "default" && grandparent == "specifications");
    in_specifications && file.len() > ".gemspec".len() && file.ends_with(".gemspec")
}

/// The platform of gems that run on any platform.
const PURE_RUBY_PLATFORM: &str = "ruby";

/// Reads a specification stub: the gem's name, version, licences and platform.
pub(super) fn parse(bytes: &[u8]) -> Result<Declared, Mismatch> {
    let text = String::from_utf8_lossy(super::without_bom(bytes));
    let source: Vec<char> = text.chars().collect();
    let lexed = lex(&source);
    let mut name = None;
    let mut version = None;
    let mut licences = None;
    let mut platform = None;
    for (attribute, value) in assignments(&lexed.tokens, &source) {
        match attribute {
            "name" => name = Some(value),
            "version" => version = Some(value),
            "license" | "licenses" => licences = Some(value),
            "platform" => platform = Some(value),
            _ => {}
        }
    }
    let stub = lexed
        .stub
        .as_deref()
        .map(|stub| stub.split_whitespace().collect::<Vec<_>>());
    let stub_field = |index: usize| stub.as_ref().and_then(|words| words.get(index).copied());
    let name = required("name", name, stub_field(0))?;
    let version = required("version", version, stub_field(1))?;
    let licences: Vec<String> = match licences {
        Some(Assigned {
            value: Value::Text(one),
            ..
        }) => vec![one],
        Some(Assigned {
            value: Value::List(many),
            ..
        }) => many,
        _ => Vec::new(),
    }
    .into_iter()
    .map(|licence| licence.trim().to_owned())
    .filter(|licence| !licence.is_empty())
    .collect();
    let platform = match platform {
        Some(Assigned {
            value: Value::Text(text),
            ..
        }) => Some(text),
        _ => stub_field(2).map(str::to_owned),
    }
    .and_then(|platform| identifier("gem platform", &platform).ok())
    .filter(|platform| platform != PURE_RUBY_PLATFORM);
    Ok(Declared {
        name,
        version,
        license: (!licences.is_empty()).then(|| licences.join(", ")),
        arch: platform,
    })
}

/// The value of the required attribute `what`: its literal assignment, else the stub line's word.
fn required(
    what: &str,
    assigned: Option<Assigned>,
    from_stub: Option<&str>,
) -> Result<String, Mismatch> {
    let expected = || format!("a string literal assigned to `{what}` (or a `# stub:` line)");
    match (assigned, from_stub) {
        (
            Some(Assigned {
                value: Value::Text(text),
                ..
            }),
            _,
        ) => identifier(&format!("gem {what}"), &text),
        (_, Some(word)) => identifier(&format!("gem {what}"), word),
        (Some(Assigned { source, .. }), None) => Err(Mismatch::new(expected(), &source)),
        (None, None) => Err(Mismatch::missing(expected())),
    }
}

/// A right-hand side the reader understands.
#[derive(Debug, PartialEq, Eq)]
enum Value {
    /// A string literal (`.freeze` allowed).
    Text(String),
    /// An array of string literals (`nil` entries dropped) or a `%w` word array.
    List(Vec<String>),
    /// `nil`, an interpolated string, a constant, a method call…: nothing literal.
    Unknown,
}

/// One `<receiver>.<attribute> = …` assignment.
#[derive(Debug, PartialEq, Eq)]
struct Assigned {
    /// What was assigned.
    value: Value,
    /// The source from the value's start to the end of its line, for error messages.
    source: String,
}

/// Every `<receiver>.<attribute> = <value>` in `tokens`, in order.
fn assignments<'t>(tokens: &'t [Token], source: &[char]) -> Vec<(&'t str, Assigned)> {
    let mut found = Vec::new();
    for (at, window) in tokens.windows(4).enumerate() {
        let [receiver, dot, attribute, assign] = window else {
            continue;
        };
        let (TokenKind::Ident(_), TokenKind::Dot, TokenKind::Ident(attribute), TokenKind::Assign) =
            (&receiver.kind, &dot.kind, &attribute.kind, &assign.kind)
        else {
            continue;
        };
        if at > 0 && tokens[at - 1].kind == TokenKind::Dot {
            continue;
        }
        let rest = &tokens[at + 4..];
        let start = rest.first().map_or(source.len(), |token| token.start);
        // One character more than an error quotes, so that the excerpt shows it was cut.
        let source: String = source[start..]
            .iter()
            .take_while(|&&c| c != '\n')
            .take(super::EXCERPT_CHARS + 1)
            .collect();
        found.push((
            attribute.as_str(),
            Assigned {
                value: value(rest),
                source,
            },
        ));
    }
    found
}

/// The literal value at the start of `tokens`.
fn value(tokens: &[Token]) -> Value {
    let kind = |at: usize| tokens.get(at).map(|token| &token.kind);
    match kind(0) {
        Some(TokenKind::Str(Some(text))) => Value::Text(text.clone()),
        Some(TokenKind::Words(words)) => Value::List(words.clone()),
        Some(TokenKind::Punct('[')) => {
            let mut items = Vec::new();
            let mut at = 1;
            loop {
                match kind(at) {
                    Some(TokenKind::Str(Some(text))) => items.push(text.clone()),
                    Some(TokenKind::Ident(nil)) if nil == "nil" => {}
                    Some(TokenKind::Punct(']')) => return Value::List(items),
                    _ => return Value::Unknown,
                }
                at += 1;
                if kind(at) == Some(&TokenKind::Dot)
                    && matches!(kind(at + 1), Some(TokenKind::Ident(freeze)) if freeze == "freeze")
                {
                    at += 2;
                }
                match kind(at) {
                    Some(TokenKind::Punct(',')) => at += 1,
                    Some(TokenKind::Punct(']')) => return Value::List(items),
                    _ => return Value::Unknown,
                }
            }
        }
        _ => Value::Unknown,
    }
}

/// A token of the Ruby subset the lexer knows.
#[derive(Debug, PartialEq, Eq)]
struct Token {
    /// Index of its first character in the source.
    start: usize,
    /// What it is.
    kind: TokenKind,
}

/// The kinds of token.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TokenKind {
    /// An identifier or constant name.
    Ident(String),
    /// `.`
    Dot,
    /// A lone `=` (not `==`, `=>`, `=~`).
    Assign,
    /// A string literal: its value, or `None` when it interpolates (`"#{x}"`) or is unterminated.
    Str(Option<String>),
    /// A `%w`/`%W`/`%i`/`%I` word array.
    Words(Vec<String>),
    /// Any other character that is not white space (numbers and operators, one by one).
    Punct(char),
}

/// What the lexer found.
struct Lexed {
    /// The tokens, comments and white space left out.
    tokens: Vec<Token>,
    /// The text after the first `# stub: `, when there is one.
    stub: Option<String>,
}

/// Splits `source` into tokens.
fn lex(source: &[char]) -> Lexed {
    let mut lexer = Lexer {
        source,
        at: 0,
        tokens: Vec::new(),
        stub: None,
    };
    lexer.run();
    Lexed {
        tokens: lexer.tokens,
        stub: lexer.stub,
    }
}

/// The lexer's state: a position in the source.
struct Lexer<'s> {
    /// The whole file.
    source: &'s [char],
    /// Index of the next character to read.
    at: usize,
    /// Tokens so far.
    tokens: Vec<Token>,
    /// The stub line, once seen.
    stub: Option<String>,
}

impl Lexer<'_> {
    /// The character `offset` places ahead, if any.
    fn peek(&self, offset: usize) -> Option<char> {
        self.source.get(self.at + offset).copied()
    }

    /// Whether the source continues with `text` at the current position.
    fn looking_at(&self, text: &str) -> bool {
        let ahead = self.source.get(self.at..).unwrap_or_default();
        ahead.len() >= text.chars().count()
            && ahead.iter().copied().zip(text.chars()).all(|(a, b)| a == b)
    }

    /// Whether the current position starts a line.
    fn at_line_start(&self) -> bool {
        self.at == 0 || self.source.get(self.at - 1) == Some(&'\n')
    }

    /// Moves past the rest of the current line (not its newline) and returns it.
    fn rest_of_line(&mut self) -> String {
        let start = self.at;
        while self.peek(0).is_some_and(|c| c != '\n') {
            self.at += 1;
        }
        self.source[start..self.at].iter().collect()
    }

    /// Reads the whole source; every step moves forward by at least one character.
    fn run(&mut self) {
        while let Some(c) = self.peek(0) {
            let start = self.at;
            match c {
                c if c.is_whitespace() => self.at += 1,
                '=' if self.at_line_start() && self.looking_at("=begin") => self.block_comment(),
                '#' => {
                    let comment = self.rest_of_line();
                    if self.stub.is_none()
                        && let Some(stub) = comment.strip_prefix("# stub: ")
                    {
                        self.stub = Some(stub.to_owned());
                    }
                }
                '"' => {
                    self.at += 1;
                    let text = self.quoted('"', '"', Escapes::Double);
                    self.push(start, TokenKind::Str(text));
                }
                '\'' => {
                    self.at += 1;
                    let text = self.quoted('\'', '\'', Escapes::Single);
                    self.push(start, TokenKind::Str(text));
                }
                '%' => self.percent_literal(),
                c if c.is_ascii_alphabetic() || c == '_' => {
                    while self
                        .peek(0)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        self.at += 1;
                    }
                    let ident = self.source[start..self.at].iter().collect();
                    self.push(start, TokenKind::Ident(ident));
                }
                '.' => {
                    self.at += 1;
                    self.push(start, TokenKind::Dot);
                }
                '=' => {
                    self.at += 1;
                    if matches!(self.peek(0), Some('=' | '>' | '~')) {
                        self.at += 1;
                        self.push(start, TokenKind::Punct('='));
                    } else {
                        self.push(start, TokenKind::Assign);
                    }
                }
                other => {
                    self.at += 1;
                    self.push(start, TokenKind::Punct(other));
                }
            }
        }
    }

    /// Adds a token that started at `start`.
    fn push(&mut self, start: usize, kind: TokenKind) {
        self.tokens.push(Token { start, kind });
    }

    /// Skips an `=begin` … `=end` comment (to the end of the `=end` line, or of the file).
    fn block_comment(&mut self) {
        loop {
            self.rest_of_line();
            if self.peek(0).is_none() {
                return;
            }
            self.at += 1;
            if self.looking_at("=end") {
                self.rest_of_line();
                return;
            }
        }
    }

    /// A `%` literal (`%q{…}`, `%Q(…)`, `%(…)`, `%w[…]`), or `%` as an operator.
    fn percent_literal(&mut self) {
        let start = self.at;
        let (letter, delimiter) = match (self.peek(1), self.peek(2)) {
            (Some(letter @ ('q' | 'Q' | 'w' | 'W' | 'i' | 'I')), Some(open))
                if !open.is_alphanumeric() && !open.is_whitespace() =>
            {
                (Some(letter), open)
            }
            (Some(open @ ('(' | '[' | '{' | '<' | '|' | '!' | '/')), _) => (None, open),
            _ => {
                self.at += 1;
                self.push(start, TokenKind::Punct('%'));
                return;
            }
        };
        self.at += if letter.is_some() { 3 } else { 2 };
        let close = match delimiter {
            '(' => ')',
            '[' => ']',
            '{' => '}',
            '<' => '>',
            same => same,
        };
        let escapes = if letter == Some('q') {
            Escapes::Single
        } else {
            Escapes::Double
        };
        let text = self.quoted(delimiter, close, escapes);
        let kind = match letter {
            Some('w' | 'W' | 'i' | 'I') => TokenKind::Words(
                text.unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
            ),
            _ => TokenKind::Str(text),
        };
        self.push(start, kind);
    }

    /// The rest of a string literal whose opening delimiter was just read; `None` when it
    /// interpolates or never ends. Bracket delimiters nest, as in Ruby.
    fn quoted(&mut self, open: char, close: char, escapes: Escapes) -> Option<String> {
        let mut text = String::new();
        let mut depth = 0usize;
        let mut interpolated = false;
        loop {
            let c = self.peek(0)?;
            self.at += 1;
            match c {
                '\\' => match escapes {
                    Escapes::Single => match self.peek(0) {
                        Some(next) if next == '\\' || next == open || next == close => {
                            self.at += 1;
                            text.push(next);
                        }
                        _ => text.push('\\'),
                    },
                    Escapes::Double => self.double_escape(&mut text),
                },
                '#' if escapes == Escapes::Double
                    && matches!(self.peek(0), Some('{' | '@' | '$')) =>
                {
                    interpolated = true;
                    text.push(c);
                }
                c if c == close && depth == 0 => return (!interpolated).then_some(text),
                c => {
                    if open != close {
                        if c == open {
                            depth += 1;
                        } else if c == close {
                            depth -= 1;
                        }
                    }
                    text.push(c);
                }
            }
        }
    }

    /// Reads the escape after a `\` in a double-quoted literal and appends what it means. Bytes
    /// above 0x7F written as `\x` or octal escapes become U+FFFD.
    fn double_escape(&mut self, text: &mut String) {
        let Some(c) = self.peek(0) else {
            return;
        };
        self.at += 1;
        let simple = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            's' => Some(' '),
            'e' => Some('\u{1b}'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            '\n' => return,
            'u' => return self.unicode_escape(text),
            'x' => {
                let value = self.digits(16, 2);
                return text.push(byte_char(value));
            }
            '0'..='7' => {
                self.at -= 1;
                let value = self.digits(8, 3);
                return text.push(byte_char(value));
            }
            other => Some(other),
        };
        text.extend(simple);
    }

    /// `\uXXXX` or `\u{X YY ZZZ}`, after the `u`.
    fn unicode_escape(&mut self, text: &mut String) {
        if self.peek(0) == Some('{') {
            self.at += 1;
            loop {
                while self.peek(0) == Some(' ') {
                    self.at += 1;
                }
                match self.peek(0) {
                    Some('}') => {
                        self.at += 1;
                        return;
                    }
                    Some(c) if c.is_ascii_hexdigit() => {
                        let value = self.digits(16, 6);
                        text.push(char::from_u32(value).unwrap_or(char::REPLACEMENT_CHARACTER));
                    }
                    _ => return,
                }
            }
        }
        let value = self.digits(16, 4);
        text.push(char::from_u32(value).unwrap_or(char::REPLACEMENT_CHARACTER));
    }

    /// Up to `most` digits in `radix`, as a number (0 when there are none).
    fn digits(&mut self, radix: u32, most: usize) -> u32 {
        let mut value = 0u32;
        for _ in 0..most {
            let Some(digit) = self.peek(0).and_then(|c| c.to_digit(radix)) else {
                break;
            };
            value = value * radix + digit;
            self.at += 1;
        }
        value
    }
}

/// The character an escaped byte value stands for: itself when ASCII, else U+FFFD.
fn byte_char(value: u32) -> char {
    if value < 0x80 {
        char::from_u32(value).unwrap_or(char::REPLACEMENT_CHARACTER)
    } else {
        char::REPLACEMENT_CHARACTER
    }
}

/// Which escapes a string literal has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escapes {
    /// `'…'` and `%q`: only `\\` and the escaped delimiter.
    Single,
    /// `"…"`, `%Q` and `%(…)`: the full set, and interpolation.
    Double,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(name: &str, version: &str, license: Option<&str>) -> Result<Declared, Mismatch> {
        Ok(Declared::new(name, version, license))
    }

    /// A stub as RubyGems 3.x writes it (Debian bookworm's rake).
    const RAKE: &str = r#"# -*- encoding: utf-8 -*-
# stub: rake 13.0.6 ruby lib

Gem::Specification.new do |s|
  s.name = "rake".freeze
  s.version = "13.0.6"

  s.required_rubygems_version = Gem::Requirement.new(">= 0".freeze) if s.respond_to? :required_rubygems_version=
  s.metadata = { "bug_tracker_uri" => "https://github.com/ruby/rake/issues", "source_code_uri" => "https://github.com/ruby/rake/tree/v13.0.6" } if s.respond_to? :metadata=
  s.require_paths = ["lib".freeze]
  s.authors = ["Hiroshi SHIBATA".freeze, "Eric Hodel".freeze, "Jim Weirich".freeze]
  s.bindir = "exe".freeze
  s.date = "2022-03-12"
  s.description = "Rake is a Make-like program implemented in Ruby. Tasks and dependencies are\nspecified in standard Ruby syntax.\n  s.name = \"not-rake\"\n".freeze
  s.email = ["hsbt@ruby-lang.org".freeze, "drbrain@segment7.net".freeze, "".freeze]
  s.executables = ["rake".freeze]
  s.files = ["exe/rake".freeze]
  s.homepage = "https://github.com/ruby/rake".freeze
  s.licenses = ["MIT".freeze]
  s.rdoc_options = ["--main".freeze, "README.rdoc".freeze]
  s.required_ruby_version = Gem::Requirement.new(">= 2.2".freeze)
  s.rubygems_version = "3.3.5".freeze
  s.summary = "Rake is a Make-like program implemented in Ruby".freeze

  s.installed_by_version = "3.3.5" if s.respond_to? :installed_by_version
end
"#;

    #[test]
    fn reads_a_current_stub() {
        assert_eq!(
            parse(RAKE.as_bytes()),
            declared("rake", "13.0.6", Some("MIT"))
        );
    }

    #[test]
    fn reads_crlf_and_a_byte_order_mark() {
        let crlf = format!("\u{feff}{}", RAKE.replace('\n', "\r\n"));
        assert_eq!(
            parse(crlf.as_bytes()),
            declared("rake", "13.0.6", Some("MIT"))
        );
    }

    #[test]
    fn reads_an_old_percent_q_stub() {
        // RubyGems 1.x wrote `%q{}` literals and no `.freeze`.
        let old = r#"# -*- encoding: utf-8 -*-

Gem::Specification.new do |s|
  s.name = %q{rack}
  s.version = "1.1.0"

  s.required_rubygems_version = Gem::Requirement.new(">= 0") if s.respond_to? :required_rubygems_version=
  s.authors = [%q{Christian Neukirchen}]
  s.date = %q{2010-01-03}
  s.description = %q{Rack provides minimal (and {nested}) glue}
  s.license = %q{MIT}
  s.require_paths = [%q{lib}]
  s.rubygems_version = %q{1.3.7}

  if s.respond_to? :specification_version then
    current_version = Gem::Specification::CURRENT_SPECIFICATION_VERSION
    s.specification_version = 3

    if Gem::Version.new(Gem::VERSION) >= Gem::Version.new('1.2.0') then
      s.add_development_dependency(%q<bacon>, [">= 0"])
    end
  end
end
"#;
        assert_eq!(
            parse(old.as_bytes()),
            declared("rack", "1.1.0", Some("MIT"))
        );
    }

    #[test]
    fn reads_several_licences_and_default_gem_stubs() {
        let webrick = r#"# stub: webrick 1.8.1 ruby lib
Gem::Specification.new do |s|
  s.name = "webrick".freeze
  s.version = "1.8.1"
  s.email = [nil, nil, "normal@ruby-lang.org".freeze]
  s.licenses = ["Ruby".freeze, nil, "BSD-2-Clause".freeze]
end
"#;
        assert_eq!(
            parse(webrick.as_bytes()),
            declared("webrick", "1.8.1", Some("Ruby, BSD-2-Clause"))
        );
    }

    #[test]
    fn reads_other_literal_forms() {
        let spec = "Gem::Specification.new do |spec| spec.name = 'its'; spec.version = %Q(1.0.\\x30)\n\
                    spec.licenses = %w[MIT Apache-2.0].freeze\nend\n";
        assert_eq!(
            parse(spec.as_bytes()),
            declared("its", "1.0.0", Some("MIT, Apache-2.0"))
        );
        let escapes = r#"s.name = "caf\u00e9-\u{41 42}\s\\"; s.version = "2\060"; s.license = nil"#;
        assert_eq!(
            parse(escapes.as_bytes()),
            declared("café-AB \\", "20", None)
        );
        let nested = "s.name = %q(a(b)c); s.version = %q<1.0>; s.license = %q|M\\|IT|";
        assert_eq!(
            parse(nested.as_bytes()),
            declared("a(b)c", "1.0", Some("M|IT"))
        );
        let single = r"s.name = 'a\'b\\c\d'; s.version = '1'";
        assert_eq!(parse(single.as_bytes()), declared(r"a'b\c\d", "1", None));
    }

    #[test]
    fn the_last_assignment_wins_and_comments_are_skipped() {
        let spec = r#"s.name = "first"
s.name = "second" # s.name = "third"
=begin
s.version = "0.0.1"
=end
s.version = "2.0"
s.licenses = ["MIT"]
s.license = "Ruby"
"#;
        assert_eq!(
            parse(spec.as_bytes()),
            declared("second", "2.0", Some("Ruby"))
        );
    }

    #[test]
    fn comparisons_and_chained_receivers_are_not_assignments() {
        let spec = r#"s.name = "real"
s.version = "1.0"
if s.name == "other" then x = 1 end
s.metadata.name = "not-it"
s.license =~ /x/
"#;
        assert_eq!(parse(spec.as_bytes()), declared("real", "1.0", None));
    }

    #[test]
    fn the_stub_line_stands_in_for_non_literal_values() {
        let spec = "# stub: nokogiri 1.15.0 x86_64-linux lib\nGem::Specification.new do |s|\n  s.name = NAME\n  s.version = Nokogiri::VERSION\nend\n";
        assert_eq!(
            parse(spec.as_bytes()),
            Ok(Declared {
                arch: Some("x86_64-linux".to_owned()),
                ..Declared::new("nokogiri", "1.15.0", None)
            })
        );
        let interpolated = "# stub: x 2.0 ruby lib\ns.name = \"x\"\ns.version = \"#{major}.0\"\n";
        assert_eq!(parse(interpolated.as_bytes()), declared("x", "2.0", None));
    }

    #[test]
    fn a_platform_gem_records_its_platform_and_pure_ruby_none() {
        // As RubyGems 3.3 writes the stub of a gem built for one platform.
        let native = r#"# stub: slipway-native 0.1.0 x86_64-linux lib
Gem::Specification.new do |s|
  s.name = "slipway-native".freeze
  s.version = "0.1.0"
  s.platform = "x86_64-linux".freeze
end
"#;
        let read = parse(native.as_bytes()).map(|declared| declared.arch);
        assert_eq!(read, Ok(Some("x86_64-linux".to_owned())));
        let java =
            "# stub: x 1.0 ruby lib\ns.name = \"x\"\ns.version = \"1.0\"\ns.platform = 'java'\n";
        let read = parse(java.as_bytes()).map(|declared| declared.arch);
        assert_eq!(read, Ok(Some("java".to_owned())), "the assignment wins");
        let odd = "# stub: x 1.0 ruby lib\ns.name = \"x\"\ns.version = \"1.0\"\ns.platform = Gem::Platform::RUBY\n";
        assert_eq!(parse(odd.as_bytes()), declared("x", "1.0", None));
        let blank = "s.name = \"x\"\ns.version = \"1.0\"\ns.platform = \"\\n\"\n";
        assert_eq!(parse(blank.as_bytes()), declared("x", "1.0", None));
        assert_eq!(
            parse(RAKE.as_bytes()).map(|declared| declared.arch),
            Ok(None)
        );
    }

    #[test]
    fn missing_or_non_literal_values_are_errors() {
        assert_eq!(
            parse(b""),
            Err(Mismatch::missing(
                "a string literal assigned to `name` (or a `# stub:` line)"
            ))
        );
        assert_eq!(
            parse(b"s.name = \"x\"\n"),
            Err(Mismatch::missing(
                "a string literal assigned to `version` (or a `# stub:` line)"
            ))
        );
        assert_eq!(
            parse(b"s.name = \"x\"\n  s.version = Foo::VERSION # bumped\nend\n"),
            Err(Mismatch::new(
                "a string literal assigned to `version` (or a `# stub:` line)",
                "Foo::VERSION # bumped"
            ))
        );
        assert_eq!(
            parse(b"s.name = \"x\"\ns.version = \"1.0"),
            Err(Mismatch::new(
                "a string literal assigned to `version` (or a `# stub:` line)",
                "\"1.0"
            ))
        );
        assert_eq!(
            parse(b"s.name = \"\"\ns.version = \"1\""),
            Err(Mismatch::new("a non-empty gem name", ""))
        );
    }

    #[test]
    fn non_utf8_bytes_are_tolerated_outside_name_and_version() {
        let mut spec =
            b"s.name = \"x\"\ns.version = \"1.0\"\ns.authors = [\"J\xfcrgen\"]\n".to_vec();
        assert_eq!(parse(&spec), declared("x", "1.0", None));
        spec.extend_from_slice(b"s.name = \"\xff\"\n");
        assert_eq!(
            parse(&spec),
            Err(Mismatch::new(
                "a gem name of printable UTF-8 characters on one line",
                "\u{FFFD}"
            ))
        );
    }

    #[test]
    fn specification_paths() {
        assert!(is_specification(
            "rake-13.0.6.gemspec",
            "specifications",
            "3.1.0"
        ));
        assert!(is_specification(
            "json-2.6.1.gemspec",
            "default",
            "specifications"
        ));
        assert!(!is_specification("rake.gemspec", "rake-13.0.6", "gems"));
        assert!(!is_specification(".gemspec", "specifications", "3.1.0"));
        assert!(!is_specification("x.gemspec", "default", "gems"));
        assert!(!is_specification("x.rb", "specifications", "3.1.0"));
    }
}
