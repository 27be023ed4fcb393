//! The label value checks of the label-schema rules, written to accept what the Haskell
//! libraries behind hadolint 2.15 accept: `network-uri` 2.6 (URL), `timerep` 2.1 over `time` 1.12
//! (RFC 3339), Cabal 3.12's SPDX license list (SPDX), `semver` 0.4 (semantic version) and
//! `email-validate` 2.3 (e-mail). Each judges the label value as written, without trimming.

use super::spdx::LICENSE_IDS;

/// Whether `c` is white space to Haskell's `Data.Char.isSpace` (which, unlike
/// [`char::is_whitespace`], excludes U+0085, U+2028 and U+2029).
fn is_haskell_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'..='\r'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

// ---------------------------------------------------------------------------------------------
// Git hash (DL3055)
// ---------------------------------------------------------------------------------------------

/// A git commit hash: 7 (short) or 40 (full) lower-case hexadecimal digits.
pub fn is_git_hash(value: &str) -> bool {
    let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    value.bytes().all(|b| lower_hex(&b)) && matches!(value.len(), 7 | 40)
}

// ---------------------------------------------------------------------------------------------
// SPDX (DL3054)
// ---------------------------------------------------------------------------------------------

/// One SPDX license identifier of the list (case-sensitive), optionally followed by white space.
///
/// Left out on purpose, because hadolint rejects them too (it reads the value as Cabal's
/// `LicenseId`, a single identifier): license expressions (`MIT OR Apache-2.0`,
/// `GPL-2.0-only WITH Classpath-exception-2.0`, parentheses), the `+` suffix, `LicenseRef-…`
/// references and the deprecated identifiers (`GPL-2.0`) that SPDX list 3.23 no longer carries.
pub fn is_spdx_license_id(value: &str) -> bool {
    let end = value
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .unwrap_or(value.len());
    let (id, rest) = value.split_at(end);
    !id.is_empty() && LICENSE_IDS.binary_search(&id).is_ok() && rest.chars().all(is_haskell_space)
}

// ---------------------------------------------------------------------------------------------
// Semantic version (DL3056)
// ---------------------------------------------------------------------------------------------

/// A semantic version as the `semver` package reads it: `MAJOR.MINOR.PATCH`, each a run of
/// digits (leading zeros allowed; a number that wraps to a negative 64-bit `Int` is refused),
/// then an optional `-` pre-release list and an optional `+` build list. A list holds runs of
/// `[0-9A-Za-z-]`, each optionally followed by a dot; it may be empty or end in a dot
/// (`1.0.0-` and `1.0.0-rc.` pass, as with the library).
pub fn is_semver(value: &str) -> bool {
    let bytes = value.as_bytes();
    let mut i = 0;
    let core = read_non_negative(bytes, &mut i)
        && eat_byte(bytes, &mut i, b'.')
        && read_non_negative(bytes, &mut i)
        && eat_byte(bytes, &mut i, b'.')
        && read_non_negative(bytes, &mut i);
    if !core {
        return false;
    }
    for marker in [b'-', b'+'] {
        if eat_byte(bytes, &mut i, marker) {
            skip_semver_identifiers(bytes, &mut i);
        }
    }
    i == bytes.len()
}

/// Consumes `byte` at `i` if it is there.
fn eat_byte(bytes: &[u8], i: &mut usize, byte: u8) -> bool {
    let found = bytes.get(*i) == Some(&byte);
    if found {
        *i += 1;
    }
    found
}

/// attoparsec's `decimal` read into GHC's 64-bit `Int` (wrapping on overflow), required to be
/// non-negative.
fn read_non_negative(bytes: &[u8], i: &mut usize) -> bool {
    let start = *i;
    let mut n: i64 = 0;
    while let Some(d) = bytes.get(*i).filter(|b| b.is_ascii_digit()) {
        n = n.wrapping_mul(10).wrapping_add(i64::from(d - b'0'));
        *i += 1;
    }
    *i > start && n >= 0
}

/// Skips `semver`'s `many identifier`: a numeric identifier must be followed by `.` or the end,
/// otherwise the same text is read as a textual one, a run of `[0-9A-Za-z-]` with an optional
/// trailing `.`.
fn skip_semver_identifiers(bytes: &[u8], i: &mut usize) {
    loop {
        let mut after_number = *i;
        if read_non_negative(bytes, &mut after_number) {
            if after_number == bytes.len() {
                *i = after_number;
                return;
            }
            if bytes[after_number] == b'.' {
                *i = after_number + 1;
                continue;
            }
        }
        let run = bytes[*i..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
            .count();
        if run == 0 {
            return;
        }
        *i += run;
        eat_byte(bytes, i, b'.');
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 3339 date-time (DL3053)
// ---------------------------------------------------------------------------------------------

/// An RFC 3339 date-time as `timerep` reads it (the `time` formats `%Y-%m-%dT%H:%M:%S%Q` then
/// `Z` or `%z`): white space allowed around it; the year is any number of digits, optionally
/// negative; `T` and `Z` in either case; the fraction may be a bare `.`; the offset is `±HH:MM`
/// or `±HHMM` with any digits. The date must exist (leap years counted), hours run 0–23,
/// minutes 0–59 and seconds 0–60.
pub fn is_rfc3339(value: &str) -> bool {
    let chars: Vec<char> = value.chars().collect();
    read_rfc3339(&mut Cursor {
        chars: &chars,
        i: 0,
    })
    .is_some()
}

/// The parse behind [`is_rfc3339`]; `None` when the value does not conform.
fn read_rfc3339(p: &mut Cursor<'_>) -> Option<()> {
    p.skip_spaces();
    let negative = p.eat('-');
    p.skip_spaces();
    let year_start = p.i;
    while p.peek().is_some_and(|c| c.is_ascii_digit()) {
        p.i += 1;
    }
    let year = &p.chars[year_start..p.i];
    if year.is_empty() {
        return None;
    }
    p.expect('-')?;
    let month = p.two_digits()?;
    p.expect('-')?;
    let day = p.two_digits()?;
    p.expect_either('T', 't')?;
    let hour = p.two_digits()?;
    p.expect(':')?;
    let minute = p.two_digits()?;
    p.expect(':')?;
    let second = p.two_digits()?;
    if p.eat('.') {
        while p.peek().is_some_and(|c| c.is_ascii_digit()) {
            p.i += 1;
        }
    }
    if p.expect_either('Z', 'z').is_none() {
        if !(p.eat('+') || p.eat('-')) {
            return None;
        }
        p.two_digits()?;
        p.eat(':');
        p.two_digits()?;
    }
    p.skip_spaces();
    let leap = is_leap_year(year, negative);
    let valid = p.i == p.chars.len()
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(month, leap)
        && hour <= 23
        && minute <= 59
        && second <= 60;
    valid.then_some(())
}

/// Whether the (arbitrarily long) year written with these digits is a Gregorian leap year.
fn is_leap_year(digits: &[char], negative: bool) -> bool {
    let modulo = digits
        .iter()
        .filter_map(|c| c.to_digit(10))
        .fold(0, |r, d| (r * 10 + d) % 400);
    let modulo = if negative {
        (400 - modulo) % 400
    } else {
        modulo
    };
    modulo % 4 == 0 && (modulo % 100 != 0 || modulo == 0)
}

/// The number of days in `month` (1–12).
fn days_in_month(month: u32, leap: bool) -> u32 {
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A cursor over characters.
struct Cursor<'a> {
    chars: &'a [char],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    /// Consumes `c` if it is next.
    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.i += 1;
        }
        found
    }

    /// Consumes `c`, or fails.
    fn expect(&mut self, c: char) -> Option<()> {
        self.eat(c).then_some(())
    }

    /// Consumes `a` or `b`, or fails.
    fn expect_either(&mut self, a: char, b: char) -> Option<()> {
        (self.eat(a) || self.eat(b)).then_some(())
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(is_haskell_space) {
            self.i += 1;
        }
    }

    /// Exactly two ASCII digits, read as a number.
    fn two_digits(&mut self) -> Option<u32> {
        let tens = self.peek().filter(char::is_ascii_digit)?.to_digit(10)?;
        let ones = self
            .chars
            .get(self.i + 1)
            .filter(|c| c.is_ascii_digit())?
            .to_digit(10)?;
        self.i += 2;
        Some(tens * 10 + ones)
    }
}

// ---------------------------------------------------------------------------------------------
// URL (DL3052)
// ---------------------------------------------------------------------------------------------

/// An absolute URI (RFC 3986) as `network-uri`'s `parseURI` reads it: any scheme, then `:`, an
/// optional `//authority`, a path, an optional `?query` and `#fragment`. So `mailto:a@b.c` and
/// even `foo:` pass, while relative references (`example.com`, `/path`) do not. Only ASCII is
/// allowed; other characters must be percent-encoded. A host name may hold at most 255
/// characters (percent escapes counted as one).
pub fn is_url(value: &str) -> bool {
    let b = value.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    let mut i = 1 + b[1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        .count();
    if !eat_byte(b, &mut i, b':') {
        return false;
    }
    if b[i..].starts_with(b"//") {
        let Some(end) = uri_authority(b, i + 2) else {
            return false;
        };
        i = end;
        if b.get(i) == Some(&b'/') {
            i = skip_uri_units(b, i, b":@/");
        }
    } else {
        i = skip_uri_units(b, i, b":@/");
    }
    if eat_byte(b, &mut i, b'?') {
        i = skip_uri_units(b, i, b":@/?");
    }
    if eat_byte(b, &mut i, b'#') {
        i = skip_uri_units(b, i, b":@/?");
    }
    i == b.len()
}

/// RFC 3986 `unreserved`.
fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~')
}

/// RFC 3986 `sub-delims`.
fn is_sub_delim(c: u8) -> bool {
    matches!(
        c,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// The end of one URI character at `i` (unreserved, sub-delim, one of `extra`, or a `%XX`
/// escape), or `None` if there is none. A `%` without two hex digits is no character, so the
/// scan stops there and the URI fails to parse as a whole, as in `network-uri`.
fn uri_unit(b: &[u8], i: usize, extra: &[u8]) -> Option<usize> {
    let c = *b.get(i)?;
    if is_unreserved(c) || is_sub_delim(c) || extra.contains(&c) {
        Some(i + 1)
    } else if c == b'%' && b.get(i + 1..i + 3)?.iter().all(u8::is_ascii_hexdigit) {
        Some(i + 3)
    } else {
        None
    }
}

/// Skips URI characters (see [`uri_unit`]) from `i`, returning where they end.
fn skip_uri_units(b: &[u8], mut i: usize, extra: &[u8]) -> usize {
    while let Some(next) = uri_unit(b, i, extra) {
        i = next;
    }
    i
}

/// Reads `[userinfo@]host[:port]` from `i`, returning where it ends.
fn uri_authority(b: &[u8], mut i: usize) -> Option<usize> {
    let userinfo_end = skip_uri_units(b, i, b":");
    if b.get(userinfo_end) == Some(&b'@') {
        i = userinfo_end + 1;
    }
    if b.get(i) == Some(&b'[') {
        let close = i + b[i..].iter().position(|&c| c == b']')?;
        if !is_ip_literal(&b[i + 1..close]) {
            return None;
        }
        i = close + 1;
    } else {
        // reg-name (an IPv4 address is one too): at most 255 characters.
        for _ in 0..255 {
            match uri_unit(b, i, b"") {
                Some(next) => i = next,
                None => break,
            }
        }
    }
    if eat_byte(b, &mut i, b':') {
        i += b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
    Some(i)
}

/// The inside of `[...]`: an IPv6 address with an optional `%25` zone, or `vX.future` (one hex
/// digit, then unreserved or sub-delim characters, as `network-uri` has it).
fn is_ip_literal(s: &[u8]) -> bool {
    if let Some(rest) = s.strip_prefix(b"v") {
        return rest.first().is_some_and(u8::is_ascii_hexdigit)
            && rest.get(1) == Some(&b'.')
            && rest.len() > 2
            && rest[2..]
                .iter()
                .all(|&c| is_unreserved(c) || is_sub_delim(c));
    }
    match s.iter().position(|&c| c == b'%') {
        None => is_ipv6(s).is_some(),
        Some(p) => {
            let Some(zone) = s[p..].strip_prefix(b"%25") else {
                return false;
            };
            // An address ending in IPv4 cannot take a zone in `network-uri` (its IPv4 reader
            // refuses to be followed by a `%XX` escape).
            is_ipv6(&s[..p]) == Some(false)
                && !zone.is_empty()
                && skip_uri_units_unreserved(zone) == zone.len()
        }
    }
}

/// Skips unreserved characters and `%XX` escapes (a zone id).
fn skip_uri_units_unreserved(b: &[u8]) -> usize {
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if is_unreserved(c) {
            i += 1;
        } else if c == b'%'
            && b.get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        {
            i += 3;
        } else {
            break;
        }
    }
    i
}

/// Checks an IPv6 address (RFC 3986 `IPv6address`); `Some(ends_in_ipv4)` when valid.
fn is_ipv6(s: &[u8]) -> Option<bool> {
    let (head, tail) = match s.windows(2).position(|w| w == b"::") {
        Some(p) => (&s[..p], Some(&s[p + 2..])),
        None => (s, None),
    };
    let groups = |part: &[u8], last_may_be_ipv4: bool| -> Option<(usize, bool)> {
        if part.is_empty() {
            return Some((0, false));
        }
        let pieces: Vec<&[u8]> = part.split(|&c| c == b':').collect();
        let mut units = 0;
        for (n, piece) in pieces.iter().enumerate() {
            if n + 1 == pieces.len() && last_may_be_ipv4 && piece.contains(&b'.') {
                is_ipv4(piece).then_some(())?;
                return Some((units + 2, true));
            }
            let h16 = (1..=4).contains(&piece.len()) && piece.iter().all(u8::is_ascii_hexdigit);
            h16.then_some(())?;
            units += 1;
        }
        Some((units, false))
    };
    match tail {
        None => {
            let (units, ipv4) = groups(head, true)?;
            (units == 8).then_some(ipv4)
        }
        Some(tail) => {
            let (left, _) = groups(head, false)?;
            let (right, ipv4) = groups(tail, true)?;
            (left + right <= 7).then_some(ipv4)
        }
    }
}

/// A dotted IPv4 address: four numbers of one to three digits, each at most 255.
fn is_ipv4(s: &[u8]) -> bool {
    let parts: Vec<&[u8]> = s.split(|&c| c == b'.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            (1..=3).contains(&p.len())
                && p.iter().all(u8::is_ascii_digit)
                && p.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) <= 255
        })
}

// ---------------------------------------------------------------------------------------------
// E-mail (DL3058)
// ---------------------------------------------------------------------------------------------

/// An e-mail address as `email-validate`'s `isValid` reads it (RFC 5322 `addr-spec` with
/// comments and folding white space): dot-atoms or quoted strings before `@` (at most 64
/// octets), then a domain name (labels of letters, digits and inner hyphens, at most 63 octets
/// each and 253 in all, an optional final dot) or a `[literal]`; at most 254 octets in all.
pub fn is_email(value: &str) -> bool {
    let mut p = Email {
        b: value.as_bytes(),
        i: 0,
    };
    let Some(local) = p.dot_atoms() else {
        return false;
    };
    if local > 64 || !p.eat(b'@') {
        return false;
    }
    let Some(domain) = p
        .attempt(Email::domain_name)
        .or_else(|| p.attempt(Email::domain_literal))
    else {
        return false;
    };
    // At most 254 octets with the `@`.
    local + domain < 254 && p.i == p.b.len()
}

/// `email-validate`'s parsers over bytes. Like attoparsec, every alternative and repetition
/// backtracks to where it started when it fails, and nothing is retried once it has succeeded.
/// The `usize` results are the lengths of the parsed text without comments and folding space.
struct Email<'a> {
    b: &'a [u8],
    i: usize,
}

/// `atext`.
fn is_atom_text(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&c)
}

/// `obs-NO-WS-CTL`.
fn is_obs_no_ws_ctl(c: u8) -> bool {
    matches!(c, 1..=8 | 11 | 12 | 14..=31 | 127)
}

impl Email<'_> {
    /// Runs `parse`, putting the position back if it fails.
    fn attempt<T>(&mut self, parse: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let start = self.i;
        let result = parse(self);
        if result.is_none() {
            self.i = start;
        }
        result
    }

    fn eat(&mut self, c: u8) -> bool {
        eat_byte(self.b, &mut self.i, c)
    }

    /// Skips bytes satisfying `f`, returning how many.
    fn skip_while(&mut self, f: impl Fn(u8) -> bool) -> usize {
        let n = self.b[self.i..].iter().take_while(|&&c| f(c)).count();
        self.i += n;
        n
    }

    /// One or more bytes satisfying `f`.
    fn skip_while1(&mut self, f: impl Fn(u8) -> bool) -> Option<usize> {
        let n = self.skip_while(f);
        (n > 0).then_some(n)
    }

    /// `local-part`: `dot-atom`-like elements (each an atom or a quoted string with optional
    /// comments around it) separated by dots.
    fn dot_atoms(&mut self) -> Option<usize> {
        let mut len = self.local_element()?;
        while let Some(n) = self.attempt(|p| {
            p.eat(b'.').then_some(())?;
            p.local_element()
        }) {
            len += 1 + n;
        }
        Some(len)
    }

    fn local_element(&mut self) -> Option<usize> {
        self.attempt(|p| {
            p.cfws();
            let n = p
                .attempt(|p| p.skip_while1(is_atom_text))
                .or_else(|| p.attempt(Email::quoted_string))?;
            p.cfws();
            Some(n)
        })
    }

    /// A domain name: labels separated by dots, an optional trailing dot, 253 octets at most.
    fn domain_name(&mut self) -> Option<usize> {
        let mut len = self.domain_label()?;
        while let Some(n) = self.attempt(|p| {
            p.eat(b'.').then_some(())?;
            p.domain_label()
        }) {
            len += 1 + n;
        }
        self.eat(b'.');
        (len <= 253).then_some(len)
    }

    /// A label: a letter or digit, then letters, digits and hyphens, not ending in a hyphen,
    /// 63 octets at most, with optional comments around it.
    fn domain_label(&mut self) -> Option<usize> {
        self.attempt(|p| {
            p.cfws();
            let start = p.i;
            p.b.get(p.i).filter(|c| c.is_ascii_alphanumeric())?;
            p.i += 1;
            p.skip_while(|c| c.is_ascii_alphanumeric() || c == b'-');
            let label = &p.b[start..p.i];
            p.cfws();
            (label.len() <= 63 && label.last() != Some(&b'-')).then_some(label.len())
        })
    }

    /// `[ dtext... ]` with optional folding space and comments around.
    fn domain_literal(&mut self) -> Option<usize> {
        self.cfws();
        self.eat(b'[').then_some(())?;
        let is_dtext = |c: u8| matches!(c, 33..=90 | 94..=126) || is_obs_no_ws_ctl(c);
        let mut len = 2;
        while let Some(n) = self.attempt(|p| {
            p.attempt(Email::fws);
            p.skip_while1(is_dtext)
        }) {
            len += n;
        }
        self.attempt(Email::fws);
        self.eat(b']').then_some(())?;
        self.cfws();
        Some(len)
    }

    /// `"..."`: quoted text and quoted pairs with optional folding space.
    fn quoted_string(&mut self) -> Option<usize> {
        self.eat(b'"').then_some(())?;
        let is_qtext = |c: u8| matches!(c, 33 | 35..=91 | 93..=126) || is_obs_no_ws_ctl(c);
        let mut len = 2;
        while let Some(n) = self.attempt(|p| {
            p.attempt(Email::fws);
            p.attempt(|p| p.skip_while1(is_qtext))
                .or_else(|| p.attempt(Email::quoted_pair))
        }) {
            len += n;
        }
        self.attempt(Email::fws);
        self.eat(b'"').then_some(len)
    }

    /// A backslash and any ASCII byte.
    fn quoted_pair(&mut self) -> Option<usize> {
        self.eat(b'\\').then_some(())?;
        self.b.get(self.i).filter(|c| c.is_ascii())?;
        self.i += 1;
        Some(2)
    }

    /// Comments and folding white space, any number.
    fn cfws(&mut self) {
        while self
            .attempt(Email::comment)
            .or_else(|| self.attempt(Email::fws))
            .is_some()
        {}
    }

    /// `( ... )`, nesting, with quoted pairs and folding space inside. Read in one loop rather
    /// than recursively, so deep nesting cannot exhaust the stack; anything else inside (a lone
    /// CR or LF, a CRLF not followed by a blank, non-ASCII) makes it fail, as in the library.
    fn comment(&mut self) -> Option<()> {
        let is_ctext = |c: u8| matches!(c, 33..=39 | 42..=91 | 93..=126) || is_obs_no_ws_ctl(c);
        self.eat(b'(').then_some(())?;
        let mut depth = 1usize;
        while depth > 0 {
            match *self.b.get(self.i)? {
                b'(' => depth += 1,
                b')' => depth -= 1,
                b'\\' => {
                    self.b.get(self.i + 1).filter(|c| c.is_ascii())?;
                    self.i += 1;
                }
                b'\r' => {
                    let blank = matches!(self.b.get(self.i + 2), Some(b' ' | b'\t'));
                    (self.b.get(self.i + 1) == Some(&b'\n') && blank).then_some(())?;
                    self.i += 1;
                }
                b' ' | b'\t' => {}
                c if is_ctext(c) => {}
                _ => return None,
            }
            self.i += 1;
        }
        Some(())
    }

    /// Folding white space: blanks optionally followed by CRLF and blanks, or one or more
    /// CRLF-and-blanks.
    fn fws(&mut self) -> Option<()> {
        let is_wsp = |c: u8| c == b' ' || c == b'\t';
        let crlf_wsp = |p: &mut Self| -> Option<()> {
            (p.eat(b'\r') && p.eat(b'\n')).then_some(())?;
            p.skip_while1(is_wsp).map(|_| ())
        };
        if self.skip_while1(is_wsp).is_some() {
            self.attempt(crlf_wsp);
            return Some(());
        }
        self.attempt(crlf_wsp)?;
        while self.attempt(crlf_wsp).is_some() {}
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_hashes_are_7_or_40_lower_hex_digits() {
        assert!(is_git_hash("2dbfae9"));
        assert!(is_git_hash("43c572f1272b6b3171dd1db9e41b7027128ce080"));
        assert!(!is_git_hash("2DBFAE9"));
        assert!(!is_git_hash("2dbfae"));
        assert!(!is_git_hash("2dbfae91"));
        assert!(!is_git_hash("not-git"));
        assert!(!is_git_hash(""));
        assert!(!is_git_hash("43c572f1272b6b3171dd1db9e41b7027128ce08g"));
    }

    #[test]
    fn spdx_takes_one_listed_identifier() {
        for id in [
            "MIT",
            "BSD-3-Clause",
            "Apache-2.0",
            "GPL-2.0-only",
            "0BSD",
            "Zlib",
            "MIT ",
        ] {
            assert!(is_spdx_license_id(id), "{id}");
        }
        for id in [
            "not-spdx",
            "mit",
            "GPL-2.0",
            "GPL-2.0+",
            "MIT OR Apache-2.0",
            "(MIT)",
            " MIT",
            "",
            "LicenseRef-foo",
        ] {
            assert!(!is_spdx_license_id(id), "{id}");
        }
    }

    #[test]
    fn the_spdx_list_is_sorted_for_binary_search() {
        assert!(LICENSE_IDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn semantic_versions() {
        for v in [
            "1.0.0",
            "2.0.1-rc1",
            "1.0.0-alpha.1+sha.exp.12ab3d9",
            "01.02.03",
            "1.0.0-",
            "1.0.0-rc.",
            "1.0.0+build",
            "1.0.0-1a",
            "1.0.0-a-b",
            "1.0.0-99999999999999999999",
        ] {
            assert!(is_semver(v), "{v}");
        }
        for v in [
            "not-sem-ver",
            "1.0",
            "v1.0.0",
            "1.0.0 ",
            "1.0.0-a..b",
            "1.0.0-a+b+c",
            "1.0.0_x",
            "9223372036854775808.0.0",
            "",
        ] {
            assert!(!is_semver(v), "{v}");
        }
    }

    #[test]
    fn rfc3339_date_times() {
        for t in [
            "2021-03-10T10:26:33.564595127+01:00",
            "1985-04-12T23:20:50.52Z",
            "1996-12-19T16:39:57-08:00",
            "1990-12-31T23:59:60Z",
            "1937-01-01T12:00:27.87+00:20",
            "2020-02-29t00:00:00z",
            "2021-03-10T10:26:33+0100",
            " 2021-03-10T10:26:33Z ",
            "2021-03-10T10:26:33.Z",
            "12021-03-10T10:26:33Z",
            "-0400-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
        ] {
            assert!(is_rfc3339(t), "{t}");
        }
        for t in [
            "not-date",
            "2021-03-10",
            "2021-03-10 10:26:33Z",
            "2021-03-10T10:26:33",
            "2021-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2021-13-10T10:26:33Z",
            "2021-00-10T10:26:33Z",
            "2021-04-31T10:26:33Z",
            "2021-03-10T24:00:00Z",
            "2021-03-10T10:60:00Z",
            "2021-03-10T10:26:61Z",
            "2021-3-10T10:26:33Z",
            "2021-03-10T10:26:33+1:00",
            "2021-03-10T10:26:33ZZ",
            "",
        ] {
            assert!(!is_rfc3339(t), "{t}");
        }
    }

    #[test]
    fn urls_are_absolute_uris() {
        for u in [
            "http://example.com",
            "https://github.com/hadolint/hadolint",
            "https://user:pass@example.com:8080/a/b?q=1&r=%20#frag",
            "mailto:someone@example.com",
            "urn:isbn:0451450523",
            "foo:",
            "localhost:8080",
            "http://[::1]/",
            "http://[2001:db8::7]:80",
            "http://[::ffff:192.0.2.1]",
            "http://[1:2:3:4:5:6:7:8]",
            "http://[v7.abc]",
            "http://[fe80::1%25eth0]",
            "file:///etc/hosts",
            "http://",
        ] {
            assert!(is_url(u), "{u}");
        }
        for u in [
            "not-url",
            "example.com",
            "/path/only",
            "",
            "1http://x",
            "http://exa mple.com",
            "http://example.com/%zz",
            "http://host:port",
            "http://a@b@c",
            "http://[::1",
            "http://[1:2:3:4:5:6:7:8:9]",
            "http://[1::2::3]",
            "http://[::1.2.3.4%25eth0]",
            "http://exämple.com",
            "http://x/#a#b",
        ] {
            assert!(!is_url(u), "{u}");
        }
        let long_host = format!("http://{}", "a".repeat(256));
        assert!(!is_url(&long_host));
        assert!(is_url(&format!("http://{}", "a".repeat(255))));
    }

    #[test]
    fn emails() {
        for e in [
            "abcd@google.com",
            "first.last@example.org",
            "user+tag@sub.example.co.uk",
            "\"quoted string\"@example.com",
            "user@example.com.",
            "user@[192.168.0.1]",
            "user(comment)@example.com",
            "user@localhost",
            "a@b",
            "user@example.com ",
            "user@ example .com",
            "a@b(nested (comment) here)",
        ] {
            assert!(is_email(e), "{e}");
        }
        for e in [
            "not-email",
            "@example.com",
            "user@",
            "user@-example.com",
            "user@example-.com",
            "user..dots@example.com",
            "user@exa_mple.com",
            "Name <user@example.com>",
            "üser@example.com",
            "a@b@c",
            "a@b(unclosed",
            "a@b(bad\rcr)",
        ] {
            assert!(!is_email(e), "{e}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(!is_email(&long_local));
        let long_label = format!("a@{}.com", "b".repeat(64));
        assert!(!is_email(&long_label));
    }
}
