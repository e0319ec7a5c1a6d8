//! The policy file: every example accepted, every broken bound rejected with
//! `FILE:LINE:COL: PATH: message (bound)`.

use std::time::Duration;

use curfew_policy::{Policy, PolicyError, Source, Subject};

fn errors(text: &str) -> Vec<String> {
    match Policy::parse(text, "policy.yaml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(PolicyError::Invalid { diagnostics }) => {
            diagnostics.iter().map(|d| d.to_string()).collect()
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

fn one_error(text: &str) -> String {
    let e = errors(text);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e.into_iter().next().unwrap_or_default()
}

#[test]
fn every_example_policy_is_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(
        n >= 3,
        "expected policy.yaml, nist-aal2.yaml, stig.yaml; found {n}"
    );
}

#[test]
fn examples_say_what_they_promise() {
    let load = |name: &str| {
        Policy::load(std::path::Path::new(&format!(
            "{}/../examples/{name}",
            env!("CARGO_MANIFEST_DIR")
        )))
        .unwrap()
    };
    let nist = load("nist-aal2.yaml");
    assert_eq!(nist.session.max_duration, Duration::from_secs(12 * 3600));
    assert_eq!(nist.session.inactivity, Duration::from_secs(30 * 60));
    let stig = load("stig.yaml");
    assert_eq!(stig.session.inactivity, Duration::from_secs(15 * 60));
    assert!(stig.banner.contains("U.S. Government"));
    let full = load("policy.yaml");
    assert_eq!(full.rules().len(), 3);
}

#[test]
fn inactivity_over_two_hours() {
    assert_eq!(
        one_error("version: 1\nsession:\n  inactivity: 2h1s\n"),
        "policy.yaml:3:15: session.inactivity: 2h 1s exceeds the ceiling of 2h"
    );
}

#[test]
fn max_duration_over_a_day() {
    assert_eq!(
        one_error("version: 1\nsession:\n  max_duration: 24h1s\n"),
        "policy.yaml:3:17: session.max_duration: 24h 1s exceeds the ceiling of 24h"
    );
}

#[test]
fn timeout_min_below_floor() {
    assert_eq!(
        one_error("version: 1\nsession:\n  timeout:\n    min: 29s\n"),
        "policy.yaml:4:10: session.timeout.min: 29s is below the floor of 30s"
    );
}

#[test]
fn timeout_max_over_ceiling() {
    assert_eq!(
        one_error("version: 1\nsession:\n  timeout:\n    max: 2147483s\n"),
        "policy.yaml:4:10: session.timeout.max: 24d 20h 31m 23s exceeds the ceiling of 24d 20h 31m 22s"
    );
}

#[test]
fn default_outside_min_max() {
    let e = one_error("version: 1\nsession:\n  timeout: { default: 10m, min: 1m, max: 5m }\n");
    assert_eq!(
        e,
        "policy.yaml:3:23: session.timeout.default: timeout.default 10m is outside timeout.min..timeout.max (1m..5m)"
    );
    let e = one_error("version: 1\nsession:\n  timeout: { min: 10m }\n");
    assert!(
        e.starts_with("policy.yaml:3:19: session.timeout.min: timeout.default 5m is outside"),
        "{e}"
    );
}

#[test]
fn unknown_key() {
    let e = one_error("version: 1\nsession:\n  inactivty: 5m\n");
    assert!(
        e.starts_with("policy.yaml:3:3: session: unknown field `inactivty`, expected one of"),
        "{e}"
    );
    let e = one_error("version: 1\nrules:\n  - match: { userz: [a] }\n");
    assert!(
        e.starts_with("policy.yaml:3:14: rules[0].match: unknown field `userz`"),
        "{e}"
    );
}

#[test]
fn malformed_duration() {
    let e = one_error("version: 1\nsession:\n  inactivity: 5 parsecs\n");
    assert!(
        e.starts_with("policy.yaml:3:15: session.inactivity: \"5 parsecs\" is not a duration"),
        "{e}"
    );
    let e = one_error("version: 1\nsession:\n  inactivity: -5\n");
    assert!(e.contains("session.inactivity: -5 is negative"), "{e}");
    let e = one_error("version: 1\nsession:\n  inactivity: 1.5\n");
    assert!(e.contains("has a fraction"), "{e}");
}

#[test]
fn yaml_syntax_errors() {
    for (text, line) in [
        (
            "version: 1\nsession:\n  inactivity: 5m\n   max_duration: 1h\n",
            4,
        ),
        ("version: 1\nsession: {inactivity: 5m\n", 3),
        ("version: 1\nbanner:\n  text: \"unterminated\n", 3),
        ("version: 1\n\tsession: {}\n", 1),
    ] {
        let e = one_error(text);
        assert!(
            e.starts_with(&format!("policy.yaml:{line}:")),
            "{text:?} -> {e}"
        );
        assert!(e.contains("YAML syntax error"), "{text:?} -> {e}");
    }
}

#[test]
fn every_error_is_reported_at_once() {
    let e = errors(
        "version: 1\nsession:\n  inactivity: 3h\n  max_duration: 25h\n  timeout: { min: 1s }\nrules:\n  - session: { inactivity: 4h }\n",
    );
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(e[0].starts_with("policy.yaml:3:15: session.inactivity: 3h exceeds the ceiling of 2h"));
    assert!(e[1].starts_with("policy.yaml:4:17: session.max_duration: 25h"));
    assert!(e[2].starts_with("policy.yaml:5:19: session.timeout.min: 1s is below the floor of 30s"));
    assert!(e[3].starts_with("policy.yaml:7:28: rules[0].session.inactivity: 4h"));
}

#[test]
fn cross_field_rules() {
    let e = one_error("version: 1\nsession: { max_duration: 1h, inactivity: 2h }\n");
    assert!(
        e.contains("session.inactivity: inactivity 2h exceeds max_duration 1h"),
        "{e}"
    );
    let e = one_error("version: 1\nsession: { inactivity: 10m, warn_before: 10m }\n");
    assert!(
        e.contains("session.warn_before: warn_before 10m must be less than inactivity 10m"),
        "{e}"
    );
    // A rule that shortens inactivity below the inherited warning.
    let e = one_error("version: 1\nrules:\n  - session: { inactivity: 1m }\n");
    assert!(
        e.contains("rules[0].session.inactivity: warn_before 2m must be less than inactivity 1m"),
        "{e}"
    );
}

/// A cross-field error is reported next to per-field errors, unless it
/// involves a value that failed its own bound (which it would compare as
/// a stand-in); a rule does not repeat what it only inherits.
#[test]
fn cross_field_errors_are_reported_with_per_field_errors() {
    let e = errors(
        "version: 1\nsession:\n  inactivity: 3h\n  timeout: { min: 1h, max: 30m }\nrules:\n  - name: a\n    session: { warn_before: 50m, inactivity: 20m, max_duration: 10m }\n",
    );
    assert_eq!(
        e,
        [
            "policy.yaml:3:15: session.inactivity: 3h exceeds the ceiling of 2h",
            "policy.yaml:4:19: session.timeout.min: timeout.min 1h is greater than timeout.max 30m (min <= default <= max)",
            "policy.yaml:7:29: rules[0].session.warn_before: warn_before 50m must be less than inactivity 20m (warn_before < inactivity)",
            "policy.yaml:7:46: rules[0].session.inactivity: inactivity 20m exceeds max_duration 10m (inactivity <= max_duration)",
        ],
        "{e:#?}"
    );
    // The failed inactivity is in no comparison: no "3h exceeds
    // max_duration", no "warn_before ... inactivity 3h".
    assert!(!e.iter().any(|l| l.contains("inactivity 3h")), "{e:#?}");
}

/// A key given twice is reported where it is given the second time.
#[test]
fn a_duplicate_key_is_reported_at_its_line() {
    let e = one_error("version: 1\nsession: { inactivity: 10m }\nbanner: { text: a }\nsession: { inactivity: 5m }\n");
    assert!(e.starts_with("policy.yaml:4:1: "), "{e}");
    assert!(e.contains("duplicate field `session`"), "{e}");
    let e = one_error("version: 1\nsession:\n  inactivity: 10m\n  inactivity: 5m\n");
    assert!(e.starts_with("policy.yaml:4:3: session: "), "{e}");
    assert!(e.contains("duplicate field `inactivity`"), "{e}");
}

#[test]
fn version_names_and_lists() {
    assert!(one_error("version: 2\n").contains("version: version 2 is not supported"));
    assert!(one_error("session: {}\n").contains("missing field `version`"));
    let e = one_error("version: 1\nrules:\n  - name: a\n  - name: a\n");
    assert!(
        e.contains("rules[1].name: the name \"a\" is already used by rules[0]"),
        "{e}"
    );
    let e = one_error("version: 1\nrules:\n  - match: { users: [] }\n");
    assert!(e.contains("an empty list matches nobody"), "{e}");
    let e = one_error("version: 1\nbanner: { text: \"\\e[2J\" }\n");
    assert!(
        e.contains("banner.text: the banner contains control characters"),
        "{e}"
    );
}

#[test]
fn store_section() {
    assert!(one_error("version: 1\nstore: { backend: etcd }\n")
        .contains("store.backend: \"etcd\" is not one of"));
    assert!(
        one_error("version: 1\nstore: { path: state.db }\n").contains("must be an absolute path")
    );
    assert!(one_error("version: 1\nstore: { backend: redis }\n").contains("redis needs url"));
    assert!(one_error("version: 1\nstore: { on_unavailable: maybe }\n")
        .contains("not one of: deny, allow"));
    let p = Policy::parse(
        "version: 1\nstore: { backend: redis, url: \"redis://127.0.0.1/0\", on_unavailable: allow }\n",
        "p",
    )
    .unwrap();
    assert_eq!(p.store.on_unavailable, curfew_policy::OnUnavailable::Allow);
}

// Issue 12, class 5: the Redis TLS roots come from the policy.
#[test]
fn store_tls_ca_file() {
    let p = Policy::parse(
        "version: 1\nstore: { backend: redis, url: \"rediss://h:6380/0\", tls_ca_file: /etc/curfew/redis-ca.pem }\n",
        "p",
    )
    .unwrap();
    match &p.store.backend {
        curfew_policy::StoreBackend::Redis { tls_ca_file, .. } => assert_eq!(
            tls_ca_file.as_deref(),
            Some(std::path::Path::new("/etc/curfew/redis-ca.pem"))
        ),
        other => panic!("{other:?}"),
    }
    let e = one_error(
        "version: 1\nstore: { backend: redis, url: \"rediss://h:6380/0\", tls_ca_file: ca.pem }\n",
    );
    assert!(
        e.contains("store.tls_ca_file") && e.contains("absolute path"),
        "{e}"
    );
    let e = one_error(
        "version: 1\nstore: { backend: redis, url: \"redis://h/0\", tls_ca_file: /etc/ca.pem }\n",
    );
    assert!(
        e.contains("store.tls_ca_file") && e.contains("rediss://"),
        "{e}"
    );
    let e = one_error("version: 1\nstore: { path: /var/lib/c.db, tls_ca_file: /etc/ca.pem }\n");
    assert!(
        e.contains("store.tls_ca_file") && e.contains("redis backend"),
        "{e}"
    );
}

#[test]
fn durations_as_seconds_or_strings() {
    let p = Policy::parse(
        "version: 1\nsession: { inactivity: 900, max_duration: \"2h 30m\", warn_before: 1m }\n",
        "p",
    )
    .unwrap();
    assert_eq!(p.session.inactivity, Duration::from_secs(900));
    assert_eq!(p.session.max_duration, Duration::from_secs(9000));
}

#[test]
fn first_matching_rule_wins_and_sources_are_named() {
    let p = Policy::parse(
        "version: 1\nsession: { inactivity: 20m }\nbanner: { text: hi }\nrules:\n  - name: admins\n    match: { groups: [wheel], services: [sshd] }\n    session: { inactivity: 10m }\n  - name: everyone-on-sshd\n    match: { services: [sshd] }\n    session: { max_duration: 4h }\n    banner: { text: \"\" }\n",
        "p",
    )
    .unwrap();
    let wheel = vec!["wheel".to_string()];
    let admin = p.effective(&Subject {
        user: "alice",
        groups: &wheel,
        service: Some("sshd"),
        ..Default::default()
    });
    assert_eq!(admin.inactivity.value, Duration::from_secs(600));
    assert_eq!(
        admin.inactivity.source,
        Source::Rule {
            index: 0,
            name: "admins"
        }
    );
    assert_eq!(admin.max_duration.source, Source::Builtin);
    assert_eq!(admin.banner.value, "hi");
    let other = p.effective(&Subject {
        user: "bob",
        service: Some("sshd"),
        ..Default::default()
    });
    assert_eq!(other.inactivity.value, Duration::from_secs(1200));
    assert_eq!(other.inactivity.source, Source::Policy);
    assert_eq!(other.max_duration.value, Duration::from_secs(4 * 3600));
    assert_eq!(other.banner.value, "", "rule clears the banner");
    let console = p.effective(&Subject {
        user: "alice",
        groups: &wheel,
        service: Some("login"),
        ..Default::default()
    });
    assert!(console.rule.is_none(), "no rule for login");
}

#[test]
fn oversized_and_binary_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, "#".repeat(2 * 1024 * 1024)).unwrap();
    assert!(matches!(
        Policy::load(&big),
        Err(PolicyError::TooLarge { .. })
    ));
    let bin = dir.path().join("bin.yaml");
    std::fs::write(&bin, b"version: 1\n\xff\xfe\x00").unwrap();
    let e = Policy::load(&bin).unwrap_err();
    assert!(e.to_string().contains("not UTF-8 text (byte 11"), "{e}");
    let missing = dir.path().join("missing.yaml");
    let e = Policy::load(&missing).unwrap_err();
    assert!(
        e.to_string()
            .contains("missing.yaml: cannot read the policy"),
        "{e}"
    );
}

#[test]
fn activity_lists_are_checked_and_apply_per_rule() {
    use curfew_policy::{ActivityKind, ActivitySet};
    assert_eq!(
        one_error("version: 1\nsession:\n  activity: []\n"),
        "policy.yaml:3:13: session.activity: an empty list would make every session idle \
         from its login; list at least one of: input, output, traffic"
    );
    assert_eq!(
        one_error("version: 1\nsession:\n  activity: [input, input]\n"),
        "policy.yaml:3:21: session.activity[1]: input is listed twice"
    );
    let unknown = one_error("version: 1\nrules:\n  - session: { activity: [typing] }\n");
    assert!(
        unknown.starts_with("policy.yaml:3:")
            && unknown.contains("rules[0].session.activity")
            && unknown.contains("`typing`")
            && unknown.contains("`traffic`"),
        "{unknown}"
    );
    let p = Policy::parse(
        "version: 1\nsession: { activity: [input, output] }\nrules:\n  - name: strict\n    match: { users: [root] }\n    session: { activity: [input] }\n",
        "policy.yaml",
    )
    .unwrap();
    let root = p.effective(&Subject {
        user: "root",
        ..Default::default()
    });
    assert_eq!(root.activity.value, ActivitySet::of(&[ActivityKind::Input]));
    assert!(matches!(
        root.activity.source,
        Source::Rule { index: 0, .. }
    ));
    let alice = p.effective(&Subject {
        user: "alice",
        ..Default::default()
    });
    assert!(alice.activity.value.output && !alice.activity.value.traffic);
    assert_eq!(alice.activity.source, Source::Policy);
    let builtin = Policy::parse("version: 1\n", "policy.yaml").unwrap();
    let eff = builtin.effective(&Subject {
        user: "alice",
        ..Default::default()
    });
    assert_eq!(eff.activity.value, ActivitySet::DEFAULT);
    assert_eq!(eff.activity.source, Source::Builtin);
}

#[test]
fn remember_me_inactivity_bounds_and_default() {
    assert_eq!(
        one_error("version: 1\nsession:\n  remember_me: { inactivity: 91d }\n"),
        "policy.yaml:3:30: session.remember_me.inactivity: 91d exceeds the ceiling of 90d"
    );
    assert_eq!(
        one_error("version: 1\nsession:\n  inactivity: 1h\n  remember_me: { inactivity: 30m }\n"),
        "policy.yaml:4:30: session.remember_me.inactivity: remember_me.inactivity 30m is \
         shorter than inactivity 1h (inactivity <= remember_me.inactivity)"
    );
    assert_eq!(
        one_error("version: 1\nrules:\n  - session: { remember_me: { max_duration: 1d, inactivity: 2d } }\n"),
        "policy.yaml:3:61: rules[0].session.remember_me.inactivity: remember_me.inactivity 2d \
         exceeds remember_me.max_duration 24h (remember_me.inactivity <= remember_me.max_duration)"
    );
    // An inherited default longer than a rule's remember_me.max_duration is
    // not an error: the absolute limit comes first.
    let p = Policy::parse(
        "version: 1\nsession: { inactivity: 10m, remember_me: { max_duration: 1d } }\n",
        "policy.yaml",
    )
    .unwrap();
    let eff = p.effective(&Subject {
        user: "alice",
        ..Default::default()
    });
    assert_eq!(
        eff.remember_me_inactivity.value,
        curfew_policy::policy::REMEMBER_ME_INACTIVITY_DEFAULT
    );
    assert_eq!(eff.idle_limit(true), Duration::from_secs(86_400));
    assert_eq!(eff.idle_limit(false), Duration::from_secs(600));
}

/// Issue 18: a file saved with a byte-order mark was refused with "more than
/// one document".
#[test]
fn leading_byte_order_mark_is_accepted_with_editor_columns() {
    let p = Policy::parse(
        "\u{feff}version: 1\nsession:\n  inactivity: 15m\n",
        "bom.yaml",
    )
    .unwrap();
    assert_eq!(p.session.inactivity.as_secs(), 900);
    // Positions are those an editor shows (the BOM takes no column).
    let e = one_error("\u{feff}version: 1\nsession:\n  inactivity: 3h\n");
    assert!(
        e.starts_with("policy.yaml:3:15: session.inactivity:"),
        "{e}"
    );
}

#[test]
fn crlf_line_ends_read_like_lf() {
    let p = Policy::parse(
        "version: 1\r\nsession:\r\n  inactivity: 15m\r\n  max_duration: 1.5h\r\nbanner:\r\n  text: |\r\n    line one\r\n    line two\r\n",
        "crlf.yaml",
    )
    .unwrap();
    assert_eq!(p.session.max_duration.as_secs(), 5_400);
    assert_eq!(p.banner, "line one\nline two\n");
    let e = one_error("version: 1\r\nsession:\r\n  inactivity: 3h\r\n");
    assert!(
        e.starts_with("policy.yaml:3:15: session.inactivity:"),
        "{e}"
    );
}

#[test]
fn admin_and_api_sections_are_validated_with_their_positions() {
    let p = Policy::parse(
        "version: 1\nadmin:\n  users: [alice]\n  groups: [curfew-admins]\napi: { socket: /run/x/api.sock }\n",
        "policy.yaml",
    )
    .unwrap();
    assert!(p.admin.admits("alice", &[]));
    assert!(p.admin.admits("bob", &["curfew-admins".to_string()]));
    assert!(!p.admin.admits("bob", &["wheel".to_string()]));
    assert_eq!(p.api.socket, std::path::Path::new("/run/x/api.sock"));
    assert!(p.api.enabled);
    // The defaults: nobody but root, the socket under /run/curfew.
    let d = Policy::parse("version: 1\n", "policy.yaml").unwrap();
    assert!(!d.admin.admits("root", &["root".to_string()]));
    assert_eq!(
        d.api.socket,
        std::path::Path::new(curfew_policy::policy::DEFAULT_API_SOCKET)
    );

    assert_eq!(
        one_error("version: 1\nadmin:\n  users: [alice, \"bad name\"]\n"),
        "policy.yaml:3:18: admin.users[1]: a name may not be empty or contain spaces or control characters"
    );
    assert_eq!(
        one_error("version: 1\napi:\n  socket: run/curfew.sock\n"),
        "policy.yaml:3:11: api.socket: \"run/curfew.sock\" must be an absolute path"
    );
    let long = format!("version: 1\napi:\n  socket: /{}\n", "s".repeat(120));
    assert!(one_error(&long).starts_with("policy.yaml:3:11: api.socket: the path is 121 bytes"));
    assert!(one_error("version: 1\nadmin:\n  roles: [x]\n").contains("unknown field `roles`"));
}

/// A good policy is parsed once (serde_yaml_ng), a broken one indexed for
/// positions as well; brackets in a string that look deeply nested take
/// the old path (yaml_rust2 first) and mean the same; a validation error
/// still names its line either way.
#[test]
fn brackets_in_a_banner_do_not_change_what_a_policy_means() {
    let brackets = "[".repeat(100);
    let text = format!("version: 1\nbanner:\n  text: \"{brackets}\"\n");
    let p = Policy::parse(&text, "policy.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.banner, brackets);
    let e = one_error(&format!(
        "version: 1\nbanner:\n  text: \"{brackets}\"\nsession: {{ inactivity: -1m }}\n"
    ));
    assert!(e.starts_with("policy.yaml:4:"), "{e}");
    let e = one_error("version: 1\nbanner:\n  text: hi\nsession: { inactivity: -1m }\n");
    assert!(e.starts_with("policy.yaml:4:"), "{e}");
}
