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

/// Replaces control characters (ESC, CR, NUL, C1 controls, DEL...) with
/// visible escapes, so a user name or tty chosen by an attacker cannot drive
/// the terminal of the admin who lists it. Newlines become `\n` too.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
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
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let _ = write!(s, "{c:<w$}  ", w = widths[i]);
            }
        }
        outln!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// Prints a value as pretty JSON. JSON escapes control characters itself.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
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
}
