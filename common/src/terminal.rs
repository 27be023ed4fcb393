//! Text from outside (package names, image names, lint messages, build output) made safe to
//! print on a terminal, and padded into table columns without panicking on any length.
//!
//! Architecture invariant — *nothing from outside reaches a terminal raw*: a package name such as
//! `"\x1b]0;owned\x07"` would retitle the window, clear the screen or fake a line of output. Every
//! table and tty output of the command line and the linter passes untrusted text through
//! [`escape`] (one field) or [`escape_lines`] (multi-line output such as build logs), which write
//! control characters as visible escapes (`\x1b`, `\u{9b}`).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Widest column a table pads to: a longer value is printed whole and pushes its row's later
/// columns to the right instead of widening every row (or overflowing `format!`'s width, which
/// panics at 65,536).
pub const MAX_COLUMN_WIDTH: usize = 64;

/// Whether `c` must not reach a terminal as it is: C0 and C1 controls, DEL, and the Unicode
/// bidirectional overrides and isolates (which reorder what is displayed).
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character written as a visible escape: `\x1b`, `\n`, `\u{9b}`.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_keeping(text, &[])
}

/// Like [`escape`], keeping line feeds and tabs: for multi-line output (logs, messages).
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    escape_keeping(text, &['\n', '\t'])
}

fn escape_keeping<'a>(text: &'a str, kept: &[char]) -> Cow<'a, str> {
    if !text.chars().any(|c| is_unsafe(c) && !kept.contains(&c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_unsafe(c) || kept.contains(&c) {
            out.push(c);
            continue;
        }
        let _ = match c {
            '\n' => write!(out, "\\n"),
            '\r' => write!(out, "\\r"),
            '\t' => write!(out, "\\t"),
            c if u32::from(c) < 0x80 => write!(out, "\\x{:02x}", u32::from(c)),
            c => write!(out, "\\u{{{:x}}}", u32::from(c)),
        };
    }
    Cow::Owned(out)
}

/// The width of a column holding `values` (in characters, once escaped), at least `min` and at
/// most [`MAX_COLUMN_WIDTH`].
pub fn column_width<'a>(values: impl IntoIterator<Item = &'a str>, min: usize) -> usize {
    values
        .into_iter()
        .map(|v| escape(v).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(min, MAX_COLUMN_WIDTH.max(min))
}

/// `text`, escaped, then padded with spaces to `width` characters (never cut: a longer value is
/// printed whole). Unlike `format!("{:<width$}")`, any width and any length are fine.
pub fn pad(text: &str, width: usize) -> String {
    let escaped = escape(text);
    let mut out = escaped.into_owned();
    let length = out.chars().count();
    if length < width {
        out.extend(std::iter::repeat_n(' ', width - length));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(escape("bash"), "bash");
        assert!(matches!(escape("bash"), Cow::Borrowed(_)));
        assert_eq!(
            escape("evil\x1b]0;owned\x07\x1b[2J\r\n\u{9b}31m\u{7f}"),
            "evil\\x1b]0;owned\\x07\\x1b[2J\\r\\n\\u{9b}31m\\x7f"
        );
        assert_eq!(escape("a\u{202E}gnp.exe"), "a\\u{202e}gnp.exe");
        assert_eq!(escape("naïve ünïcode ✓"), "naïve ünïcode ✓");
        assert_eq!(
            escape_lines("line 1\n\tline 2\x1b[31m\r"),
            "line 1\n\tline 2\\x1b[31m\\r"
        );
    }

    #[test]
    fn padding_never_panics_and_never_cuts() {
        assert_eq!(pad("ab", 4), "ab  ");
        assert_eq!(pad("abcdef", 4), "abcdef");
        assert_eq!(pad("\x1b", 6), "\\x1b  ");
        let huge = "p".repeat(70_000);
        assert_eq!(pad(&huge, 70_001).len(), 70_001);
        assert_eq!(column_width([huge.as_str(), "x"], 4), MAX_COLUMN_WIDTH);
        assert_eq!(column_width(["x"], 4), 4);
        assert_eq!(column_width(["\x1b\x1b"], 4), 8, "measured once escaped");
    }
}
