//! The JSON Schema of the policy file, generated from [`crate::raw::RawPolicy`].

/// The JSON Schema (draft 2020-12) of policy version 1, pretty-printed.
/// Hard bounds that JSON Schema cannot express on duration strings are
/// checked by `curfew policy check`.
pub fn policy_schema() -> String {
    let schema = schemars::schema_for!(crate::raw::RawPolicy);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
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
}
