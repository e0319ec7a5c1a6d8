//! Log text: no terminal escapes from stored data reach an admin's screen.

use std::fmt::Write as _;

/// Replaces control characters (ESC, CR, NUL, C1 controls, DEL...) with
/// visible escapes, so a user name chosen by an attacker cannot drive the
/// terminal of the admin who reads the log. Newlines become `\n` too. (The
/// same rule as the CLI's output; the enforcer logs to stderr/journald.)
pub(crate) fn escape(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_controls_are_made_visible() {
        assert_eq!(
            super::escape("a\x1b[2Jb\r\n\\"),
            "a\\u{1b}[2Jb\\u{d}\\n\\\\"
        );
        assert_eq!(super::escape("alice"), "alice");
    }
}
