//! The JSON Schema of the policy file, generated from [`crate::raw::RawPolicy`].
//!
//! The schema says everything about one file that JSON Schema can say, with
//! the validator's own constants: `version` is the constant 1, integer
//! durations carry each field's floor and ceiling, duration strings follow
//! the validator's grammar ([`crate::duration::text_pattern`], fractions
//! such as `1.5h` included), `backend` and `on_unavailable` are enums, the
//! store's backend decides which of `path`, `url` and `tls_ca_file` may
//! appear (`tls_ca_file` only with a `rediss://` url), paths are
//! absolute, `match` and `activity` lists are non-empty (`activity` without
//! repeats) and names in `match` have no control
//! characters. What it cannot say is checked by `curfew policy check` only:
//! the bounds of duration *strings*, sub-second results (`"500ms"`),
//! `min <= default <= max`, `inactivity <= max_duration`,
//! `warn_before < inactivity`, unique rule names, and the banner's limit in
//! bytes (the schema counts characters). `cli/tests/schema_agreement.rs`
//! holds both to that.
//!
//! The schema passes ajv in strict mode (draft 2020-12) and
//! check-jsonschema: no custom formats, no unknown keywords.

use std::borrow::Cow;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use crate::policy::{
    INACTIVITY_CEILING, MAX_DURATION_CEILING, REMEMBER_ME_CEILING, TIMEOUT_CEILING, TIMEOUT_FLOOR,
    VERSION,
};

/// The JSON Schema (draft 2020-12) of policy version 1, pretty-printed.
pub fn policy_schema() -> String {
    let schema = schemars::schema_for!(crate::raw::RawPolicy);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// A duration string, as the validator's grammar allows it (a `$defs` entry).
pub(crate) struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "DurationText".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Integer seconds as a string (\"300\") or numbers with units (\"5m\", \"2h 30m\", \"1.5h\"); the result must be whole seconds.",
            "type": "string",
            "pattern": crate::duration::text_pattern(),
        })
    }
}

/// An optional duration field whose integer form lies in `floor..=ceiling`.
fn bounded_duration(gen: &mut SchemaGenerator, floor: Duration, ceiling: Duration) -> Schema {
    let text = gen.subschema_for::<DurationText>();
    json_schema!({
        "anyOf": [
            { "type": "integer", "minimum": floor.as_secs(), "maximum": ceiling.as_secs() },
            text,
            { "type": "null" }
        ]
    })
}

pub(crate) fn timeout_duration(gen: &mut SchemaGenerator) -> Schema {
    bounded_duration(gen, TIMEOUT_FLOOR, TIMEOUT_CEILING)
}

pub(crate) fn max_duration(gen: &mut SchemaGenerator) -> Schema {
    bounded_duration(gen, Duration::from_secs(1), MAX_DURATION_CEILING)
}

pub(crate) fn inactivity(gen: &mut SchemaGenerator) -> Schema {
    bounded_duration(gen, Duration::from_secs(1), INACTIVITY_CEILING)
}

pub(crate) fn warn_before(gen: &mut SchemaGenerator) -> Schema {
    bounded_duration(gen, Duration::ZERO, INACTIVITY_CEILING)
}

pub(crate) fn remember_me(gen: &mut SchemaGenerator) -> Schema {
    bounded_duration(gen, Duration::from_secs(1), REMEMBER_ME_CEILING)
}

pub(crate) fn version(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "const": VERSION })
}

/// Characters Rust's `char::is_control` calls control (C0, DEL, C1).
const NO_CONTROL: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$";

pub(crate) fn name_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            {
                "type": "array",
                "minItems": 1,
                "items": { "type": "string", "pattern": NO_CONTROL }
            },
            { "type": "null" }
        ]
    })
}

pub(crate) fn activity_list(gen: &mut SchemaGenerator) -> Schema {
    let kind = gen.subschema_for::<crate::raw::RawActivity>();
    json_schema!({
        "anyOf": [
            { "type": "array", "minItems": 1, "uniqueItems": true, "items": kind },
            { "type": "null" }
        ]
    })
}

pub(crate) fn rule_name(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["string", "null"], "pattern": "\\S" })
}

pub(crate) fn banner_text(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": 65536,
        "pattern": "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    })
}

pub(crate) fn absolute_path(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["string", "null"], "pattern": "^/" })
}

/// Names in `admin`: no whitespace, no control characters (an empty list
/// is allowed: nobody but root).
pub(crate) fn account_names(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            {
                "type": "array",
                "items": { "type": "string", "pattern": "^[^\\s\\u0000-\\u001F\\u007F-\\u009F]+$" }
            },
            { "type": "null" }
        ]
    })
}

/// `api.socket`: absolute; `sun_path` holds 107 bytes and a NUL (the schema
/// counts characters, so a path of multi-byte characters is checked by the
/// validator only).
pub(crate) fn socket_path(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["string", "null"], "pattern": "^/", "maxLength": 107 })
}

pub(crate) fn backend(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "enum": ["sqlite", "redis", null] })
}

pub(crate) fn on_unavailable(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "enum": ["deny", "allow", null] })
}

/// The store's backend decides which of `path`, `url` and `tls_ca_file` may
/// be given; `tls_ca_file` needs a `rediss://` url.
pub(crate) fn store_backend_rules(schema: &mut Schema) {
    let rules = json_schema!({
        "if": {
            "properties": { "backend": { "const": "redis" } },
            "required": ["backend"]
        },
        "then": {
            "properties": {
                "path": { "type": "null" },
                "url": { "type": "string", "pattern": "^(redis|rediss|redis\\+unix|unix)://" }
            },
            "required": ["url"],
            "if": {
                "properties": { "tls_ca_file": { "type": "string" } },
                "required": ["tls_ca_file"]
            },
            "then": {
                "properties": { "url": { "type": "string", "pattern": "^rediss://" } }
            }
        },
        "else": {
            "properties": { "url": { "type": "null" }, "tls_ca_file": { "type": "null" } }
        }
    });
    if let (Some(obj), Some(rules)) = (schema.as_object_mut(), rules.as_object()) {
        for (k, v) in rules {
            obj.insert(k.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    /// The checked-in schema must match the types. Regenerate with
    /// `CURFEW_BLESS=1 cargo test -p curfew-policy schema`.
    #[test]
    fn checked_in_schema_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/policy.schema.json");
        let generated = super::policy_schema();
        if std::env::var_os("CURFEW_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "{path} is stale; run CURFEW_BLESS=1 cargo test -p curfew-policy schema"
        );
    }

    #[test]
    fn schema_has_no_custom_formats() {
        // ajv's strict mode refuses unknown formats such as schemars' "uint32".
        assert!(!super::policy_schema().contains("\"format\""));
    }
}
