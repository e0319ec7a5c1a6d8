//! Printing: tables for people, JSON for programs, and no terminal escapes
//! from stored data ever reaching an admin's screen.

use std::fmt::Write as _;
use std::io::Write as _;

use clap::ValueEnum;

/// `println!` that ends the program quietly (exit 0) when stdout is a
/// closed pipe, as in `curfew sessions list | head -1`, instead of panicking.
macro_rules! outln {
    () => {
        $crate::output::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// `print!` with the same closed-pipe handling as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!($($arg)*))
    };
}
pub(crate) use out;

/// Writes to stdout; a closed pipe ends the program with exit 0 (like
/// ripgrep), any other write error with exit 1.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|_| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("curfew: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// `--format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    #[default]
    Text,
    /// JSON for programs; the shape is documented in the README and stable.
    Json,
}

/// Replaces every character that could move the cursor, drive the terminal
/// or reorder or hide text with a visible escape (`\u{202e}`), so a user
/// name or tty chosen by an attacker cannot fake what the admin who lists
/// it reads: C0 and C1 controls, DEL, Unicode line and paragraph
/// separators, bidirectional controls (embeddings, overrides, isolates,
/// marks) and the other invisible format characters (zero-width space and
/// joiners, word joiner, BOM, soft hyphen, tags). Newline and tab become
/// `\n` and `\t`, and a backslash is doubled so escapes stay unambiguous.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || is_invisible_format(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Unicode's line and paragraph separators (Zl, Zp) and format characters
/// (Cf, Unicode 15): none of them has a glyph of its own, and the bidi ones
/// reorder the text around them.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Prints rows as an aligned table; every cell is escaped.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    // One string, one write: a line per write(2) made `sessions list` over
    // 100,000 sessions spend its time in system calls (issue 17).
    let mut text = String::new();
    let mut line = |cells: Vec<&str>| {
        let start = text.len();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(c);
            } else {
                let _ = write!(text, "{c:<w$}  ", w = widths[i]);
            }
        }
        let end = text[start..].trim_end().len() + start;
        text.truncate(end);
        text.push('\n');
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    out!("{text}");
}

/// Prints a value as pretty JSON. JSON escapes control characters itself.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Where an effective value came from, from its JSON (`{"kind": "rule",
/// "index": 0, "name": "admins"}`), as `curfew_policy::Source` prints it.
pub fn source_text(v: &serde_json::Value) -> String {
    match v["kind"].as_str() {
        Some("builtin") => "built-in default".into(),
        Some("policy") => "policy".into(),
        Some("user") => "user's choice".into(),
        Some("rule") => format!(
            "rule {:?} (rules[{}])",
            v["name"].as_str().unwrap_or_default(),
            v["index"].as_u64().unwrap_or_default()
        ),
        _ => v.to_string(),
    }
}

/// An optional cell.
pub fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// A time cell, in UTC, to the second.
pub fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls() {
        assert_eq!(escape("al\u{1b}[31mice"), "al\\u{1b}[31mice");
        assert_eq!(
            escape("a\rb\0c\u{9b}d\u{7f}"),
            "a\\u{d}b\\u{0}c\\u{9b}d\\u{7f}"
        );
        assert_eq!(escape("two\nlines"), "two\\nlines");
        assert_eq!(escape("plain ü"), "plain ü");
    }

    /// Issue 18: direction overrides and zero-width characters reached the
    /// admin's terminal raw ("alice\u{202e}txt.exe" reads as "aliceexe.txt").
    #[test]
    fn escapes_bidi_and_zero_width() {
        assert_eq!(escape("alice\u{202e}gpj"), "alice\\u{202e}gpj");
        for c in [
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{200e}',
            '\u{200f}',
            '\u{202a}',
            '\u{202b}',
            '\u{202c}',
            '\u{202d}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{061c}',
            '\u{2060}',
            '\u{feff}',
            '\u{00ad}',
            '\u{2028}',
            '\u{2029}',
            '\u{e0041}',
        ] {
            let shown = escape(&format!("a{c}b"));
            assert_eq!(shown, format!("a\\u{{{:x}}}b", c as u32), "{:x}", c as u32);
        }
        // Every C0, C1 and DEL.
        for n in (0u32..0x20).chain(0x7f..0xa0) {
            let c = char::from_u32(n).unwrap();
            assert!(escape(&c.to_string()).starts_with('\\'), "{n:x}");
        }
        // Letters of right-to-left scripts are text, not controls.
        assert_eq!(escape("שלום مرحبا"), "שלום مرحبا");
    }
}
