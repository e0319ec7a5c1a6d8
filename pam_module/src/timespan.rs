//! systemd's time-span grammar (systemd.time(7), `parse_sec` in
//! systemd's time-util.c), for the `systemd.runtime_max_sec` an earlier
//! module in the PAM stack may have left: pam_systemd reads that value with
//! `parse_sec`, so "1h", "30min", "3600s", "300.5" and "1h 30min" are
//! limits curfew must compare, not ignore (issue 12). No crate parses this
//! grammar (humantime's units and rules differ: it has no bare number as
//! seconds, no "M" for months, and other month and year lengths), so this
//! is a small strict parser checked against the units systemd documents.

/// Microseconds per unit, by every name systemd.time(7) lists for it.
const UNITS: &[(&[&str], u128)] = &[
    (&["usec", "us", "μs", "µs"], 1),
    (&["msec", "ms"], 1_000),
    (&["seconds", "second", "sec", "s"], 1_000_000),
    (&["minutes", "minute", "min", "m"], 60_000_000),
    (&["hours", "hour", "hr", "h"], 3_600_000_000),
    (&["days", "day", "d"], 86_400_000_000),
    (&["weeks", "week", "w"], 604_800_000_000),
    // 30.44 days, as systemd defines a month.
    (&["months", "month", "M"], 2_629_800_000_000),
    // 365.25 days, as systemd defines a year.
    (&["years", "year", "y"], 31_557_600_000_000),
];

/// A time span as systemd reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Span {
    /// A finite span, in microseconds (saturating at `u128::MAX`).
    Micros(u128),
    /// `infinity`: no limit.
    Infinity,
}

/// Parses `text` as systemd's `parse_sec` does: `infinity`, or one or more
/// numbers (a decimal fraction allowed), each with an optional unit (none:
/// seconds), with optional spaces between them ("1h 30min", "1h30min").
/// Errors say what part is not understood.
pub fn parse(text: &str) -> Result<Span, String> {
    let s = text.trim();
    if s == "infinity" {
        return Ok(Span::Infinity);
    }
    if s.is_empty() {
        return Err("an empty time span".into());
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number = &rest[..digits_end];
        let (whole, frac) = match number.split_once('.') {
            Some((w, f)) => (w, f),
            None => (number, ""),
        };
        if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(format!("{text:?}: {:?} is not a number", first_word(rest)));
        }
        rest = rest[digits_end..].trim_start();
        let unit_end = rest
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        let per = if unit.is_empty() {
            1_000_000
        } else {
            UNITS
                .iter()
                .find(|(names, _)| names.contains(&unit))
                .map(|(_, per)| *per)
                .ok_or_else(|| format!("{text:?}: {unit:?} is not a systemd time unit"))?
        };
        rest = rest[unit_end..].trim_start();
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole
                .parse()
                .map_err(|_| format!("{text:?}: {whole:?} is too large"))?
        };
        let mut part = whole.saturating_mul(per);
        // The fraction, digit by digit, to the unit's precision.
        let mut scale = per;
        for d in frac.chars() {
            scale /= 10;
            part = part.saturating_add(u128::from(d.to_digit(10).unwrap_or(0)) * scale);
        }
        total = total.saturating_add(part);
    }
    Ok(Span::Micros(total))
}

fn first_word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> u128 {
        match parse(s).unwrap() {
            Span::Micros(us) => us / 1_000_000,
            Span::Infinity => panic!("{s}: infinity"),
        }
    }

    #[test]
    fn every_documented_unit() {
        for (text, want) in [
            ("3600", 3600),
            ("3600s", 3600),
            ("3600 sec", 3600),
            ("1 second", 1),
            ("2 seconds", 2),
            ("30min", 1800),
            ("30m", 1800),
            ("1 minute", 60),
            ("1h", 3600),
            ("1hr", 3600),
            ("2 hours", 7200),
            ("1 hour", 3600),
            ("1d", 86_400),
            ("1 day", 86_400),
            ("1w", 604_800),
            ("1 week", 604_800),
            ("1M", 2_629_800),
            ("1 month", 2_629_800),
            ("1y", 31_557_600),
            ("1 year", 31_557_600),
            ("1h 30min", 5400),
            ("1h30min", 5400),
            ("2d 1h 30m 5s", 178_205),
            ("  90  ", 90),
        ] {
            assert_eq!(secs(text), want, "{text}");
        }
        assert_eq!(parse("1500ms"), Ok(Span::Micros(1_500_000)));
        assert_eq!(parse("1 msec"), Ok(Span::Micros(1_000)));
        assert_eq!(parse("7us"), Ok(Span::Micros(7)));
        assert_eq!(parse("7µs"), Ok(Span::Micros(7)));
        assert_eq!(parse("7 usec"), Ok(Span::Micros(7)));
    }

    #[test]
    fn fractions_infinity_and_refusals() {
        assert_eq!(parse("300.5"), Ok(Span::Micros(300_500_000)));
        assert_eq!(parse("1.5h"), Ok(Span::Micros(5_400_000_000)));
        assert_eq!(parse(".5s"), Ok(Span::Micros(500_000)));
        assert_eq!(parse("infinity"), Ok(Span::Infinity));
        for bad in [
            "",
            "  ",
            "abc",
            "1x",
            "-5",
            "1..5",
            "h",
            "1h-",
            "5 fortnights",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse("1 fortnight").unwrap_err().contains("fortnight"));
    }
}
