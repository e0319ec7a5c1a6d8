//! Durations as they appear in a policy: integer seconds or humantime strings.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration literal exactly as written in the YAML, before validation.
///
/// Parsing is deferred to validation so that every malformed duration in a
/// file is reported at once, with its position, instead of only the first.
#[derive(Debug, Clone, PartialEq)]
pub enum RawDuration {
    /// An integer number of seconds, e.g. `300`.
    Seconds(i64),
    /// A humantime string, e.g. `"5m"` or `"2h 30m"`.
    Text(String),
    /// A number with a fraction, e.g. `1.5`; always rejected.
    Fraction(f64),
}

impl RawDuration {
    /// Parses the literal into a whole number of seconds.
    pub fn parse(&self) -> Result<Duration, String> {
        match self {
            RawDuration::Seconds(s) if *s < 0 => Err(format!(
                "{s} is negative; a duration is zero or more seconds"
            )),
            RawDuration::Seconds(s) => Ok(Duration::from_secs(*s as u64)),
            RawDuration::Fraction(f) => Err(format!(
                "{f} has a fraction; write whole seconds or a string such as \"90s\""
            )),
            RawDuration::Text(t) => parse_text(t),
        }
    }
}

/// Units a duration string may use, as humantime spells them.
pub const UNITS: &[&str] = &[
    "nanos", "nsec", "ns", "usec", "us", "µs", "millis", "msec", "ms", "seconds", "second", "secs",
    "sec", "s", "minutes", "minute", "mins", "min", "m", "hours", "hour", "hrs", "hr", "h", "days",
    "day", "d", "weeks", "week", "wks", "wk", "w", "months", "month", "M", "years", "year", "yrs",
    "yr", "y",
];

/// The grammar of a duration string as an ECMAScript/JSON Schema pattern:
/// integer seconds (`"300"`), or one or more terms of a number (with an
/// optional fraction, `1.5`) and a unit (`"2h 30m"`, `"1.5h"`), separated by
/// spaces or tabs. [`parse`] accepts exactly the strings this pattern matches
/// (and then checks that the result is a whole number of seconds), so the
/// JSON Schema and the validator agree on the shape.
pub fn text_pattern() -> String {
    let num = "[0-9]+(\\.[0-9]+)?";
    let unit = format!("({})", UNITS.join("|"));
    format!("^[ \\t]*([0-9]+|{num}[ \\t]*{unit}([ \\t]*{num}[ \\t]*{unit})*)[ \\t]*$")
}

/// `true` when `text` has the shape of [`text_pattern`]: humantime alone
/// also takes spaces inside a number (`"1 2h"`) and Unicode spaces, which
/// the schema cannot describe the same way.
fn has_duration_shape(text: &str) -> bool {
    let blank = |c: char| c == ' ' || c == '\t';
    let s = text.trim_matches(blank);
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let mut rest = s;
    let mut terms = 0;
    while !rest.is_empty() {
        // number: digits, optionally '.' and digits
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if int_len == 0 {
            return false;
        }
        rest = &rest[int_len..];
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            if frac_len == 0 {
                return false;
            }
            rest = &after_dot[frac_len..];
        }
        rest = rest.trim_start_matches(blank);
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphabetic() || *c == 'µ'))
            .map_or(rest.len(), |(i, _)| i);
        if !UNITS.contains(&&rest[..unit_len]) {
            return false;
        }
        rest = rest[unit_len..].trim_start_matches(blank);
        terms += 1;
    }
    terms > 0
}

fn parse_text(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty duration; write seconds (300) or a string such as \"5m\"".into());
    }
    if let Ok(secs) = trimmed.parse::<u64>() {
        if has_duration_shape(text) {
            return Ok(Duration::from_secs(secs));
        }
    }
    if !has_duration_shape(text) {
        return Err(format!(
            "{trimmed:?} is not a duration; write seconds (300) or numbers with units, such as \"5m\", \"2h 30m\" or \"1.5h\""
        ));
    }
    match humantime::parse_duration(trimmed) {
        Ok(d) if d.subsec_nanos() != 0 => Err(format!(
            "{trimmed:?} is not a whole number of seconds"
        )),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "{trimmed:?} is not a duration ({e}); write seconds (300) or a string such as \"5m\" or \"2h 30m\""
        )),
    }
}

impl fmt::Display for RawDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawDuration::Seconds(s) => write!(f, "{s}"),
            RawDuration::Text(t) => f.write_str(t),
            RawDuration::Fraction(x) => write!(f, "{x}"),
        }
    }
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration: integer seconds or a string such as \"5m\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration::Seconds(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration::Seconds(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDuration, E> {
                Ok(RawDuration::Fraction(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Serialize for RawDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RawDuration::Seconds(s) => serializer.serialize_i64(*s),
            RawDuration::Text(t) => serializer.serialize_str(t),
            RawDuration::Fraction(x) => serializer.serialize_f64(*x),
        }
    }
}

impl JsonSchema for RawDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(gen: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let text = gen.subschema_for::<crate::schema::DurationText>();
        schemars::json_schema!({
            "description": "Integer seconds (300) or a duration string (\"5m\", \"2h 30m\", \"1.5h\").",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                text
            ]
        })
    }
}

/// Formats a duration the way policies write it: `"2h 30m"`, `"30s"`, `"0s"`.
pub fn format(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut parts = Vec::new();
    // Days only from two days on: "24h" reads better than "1d" next to the
    // 24 h ceiling, and "90d" better than "2160h".
    let (days, rest) = if secs >= 2 * 86_400 {
        (secs / 86_400, secs % 86_400)
    } else {
        (0, secs)
    };
    let (hours, rest) = (rest / 3_600, rest % 3_600);
    let (minutes, seconds) = (rest / 60, rest % 60);
    for (n, unit) in [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")] {
        if n > 0 {
            parts.push(format!("{n}{unit}"));
        }
    }
    parts.join(" ")
}

/// Parses a duration given on a command line or in an environment variable,
/// with the same grammar as the policy file.
pub fn parse(text: &str) -> Result<Duration, String> {
    parse_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_humantime() {
        assert_eq!(parse("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("2h 30m").unwrap(), Duration::from_secs(9_000));
        assert_eq!(parse("2147482s").unwrap(), Duration::from_secs(2_147_482));
        assert_eq!(
            RawDuration::Seconds(30).parse().unwrap(),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn accepts_fractions_and_unit_spellings() {
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse("1.5 h").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse("2h30m").unwrap(), Duration::from_secs(9_000));
        assert_eq!(parse(" 90 secs ").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("0.5m").unwrap(), Duration::from_secs(30));
    }

    #[test]
    fn rejects_shapes_the_schema_pattern_rejects() {
        for bad in [
            "1 2h",
            "1.h",
            ".5h",
            "5m30",
            "5 parsecs",
            "5m\u{a0}",
            "h",
            "1,5h",
        ] {
            assert!(!has_duration_shape(bad), "{bad:?}");
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejects_malformed() {
        assert!(parse("5 parsecs").unwrap_err().contains("not a duration"));
        assert!(parse("").is_err());
        assert!(parse("500ms").unwrap_err().contains("whole number"));
        assert!(RawDuration::Seconds(-1)
            .parse()
            .unwrap_err()
            .contains("negative"));
        assert!(RawDuration::Fraction(1.5)
            .parse()
            .unwrap_err()
            .contains("fraction"));
    }

    #[test]
    fn formats_round_trip() {
        for secs in [0u64, 1, 59, 60, 3_600, 9_000, 86_400, 2_147_482] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse(&format(d)).unwrap(), d, "{}", format(d));
        }
        assert_eq!(format(Duration::from_secs(2_147_482)), "24d 20h 31m 22s");
    }
}
