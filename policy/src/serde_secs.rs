//! Serialize a `Duration` as whole seconds (JSON output of the CLI and hook).

use std::time::Duration;

use serde::Serializer;

/// Writes `d` as an integer number of seconds.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}
