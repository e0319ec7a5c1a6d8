//! The policy file as written: serde structs that mirror the YAML one to one.
//!
//! These are parsed once and validated into [`crate::Policy`]; nothing outside
//! this crate should hold on to them. They also generate the JSON Schema.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::RawDuration;

/// The whole policy file, version 1.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "curfew policy", description = "curfew policy, version 1")]
pub struct RawPolicy {
    /// Schema version; must be 1.
    #[schemars(schema_with = "crate::schema::version")]
    pub version: u32,
    /// Session lifetimes that apply unless a rule says otherwise.
    #[serde(default)]
    pub session: RawSession,
    /// The login banner.
    #[serde(default)]
    pub banner: Option<RawBanner>,
    /// Exceptions for users, groups, services, clients or hosts; first match wins.
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// Where revocations and sessions are kept.
    #[serde(default)]
    pub store: Option<RawStore>,
    /// Where decisions and admin actions are logged.
    #[serde(default)]
    pub audit: Option<RawAudit>,
    /// Who may administer curfew through the enforcer's local API, as root
    /// can (root always may).
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    /// The enforcer's local API (a unix socket for self-service).
    #[serde(default)]
    pub api: Option<RawApi>,
}

/// Administrators of the local API besides root.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// User names (canonical account names).
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::account_names")]
    pub users: Option<Vec<String>>,
    /// Group names (system groups, getgrouplist).
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::account_names")]
    pub groups: Option<Vec<String>>,
}

/// The enforcer's local API.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// Serve the API (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The unix socket, an absolute path of at most 107 bytes (default
    /// /run/curfew/curfew.sock).
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::socket_path")]
    pub socket: Option<String>,
}

/// Session lifetimes; every field may be omitted.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    /// Token lifetime, renewed by activity: between 30s and 2147482s.
    #[serde(default)]
    pub timeout: Option<RawTimeout>,
    /// Absolute life of a session, at most 24h.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::max_duration")]
    pub max_duration: Option<RawDuration>,
    /// Sign-out after no activity, at most 2h and at most max_duration.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::inactivity")]
    pub inactivity: Option<RawDuration>,
    /// Warn the user this long before a forced end; less than inactivity.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::warn_before")]
    pub warn_before: Option<RawDuration>,
    /// OIDC only: the absolute life of a persistent ("remember me") login.
    #[serde(default)]
    pub remember_me: Option<RawRememberMe>,
    /// PAM sessions: what counts as activity (default `[input, output,
    /// traffic]`): `input` read from the terminal, `output` written to it,
    /// `traffic` moved by a session without a terminal. At least one, no
    /// repeats.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::activity_list")]
    pub activity: Option<Vec<RawActivity>>,
}

/// One kind of activity in `session.activity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawActivity {
    /// Input read from the session's terminal (a key read by the shell, an
    /// editor; a line at a plain prompt).
    Input,
    /// Output written to the session's terminal (a build, `tail -f`).
    Output,
    /// Data moved by a session without a terminal (scp, sftp, rsync,
    /// `ssh host cmd`, an `ssh -N` port forward).
    Traffic,
}

/// Token lifetime bounds.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTimeout {
    /// Used unless the user chose another value within min..max.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::timeout_duration")]
    pub default: Option<RawDuration>,
    /// The shortest lifetime a user may choose; at least 30s.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::timeout_duration")]
    pub min: Option<RawDuration>,
    /// The longest lifetime a user may choose; at most 2147482s.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::timeout_duration")]
    pub max: Option<RawDuration>,
}

/// Persistent logins (OIDC clients that ask for them).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRememberMe {
    /// Absolute life of a persistent login; at most 90d.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::remember_me")]
    pub max_duration: Option<RawDuration>,
    /// Sign-out of a persistent login after no refresh for this long
    /// (default 3d); at least `inactivity`, at most 90d and at most
    /// `remember_me.max_duration`.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::remember_me")]
    pub inactivity: Option<RawDuration>,
}

/// The login banner.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBanner {
    /// Text shown at login; empty for none. At most 64 KiB, no control
    /// characters but newline and tab.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::banner_text")]
    pub text: String,
}

/// One rule: who it matches and what it changes.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// A name shown by `policy explain` and in logs; defaults to `rules[N]`.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::rule_name")]
    pub name: Option<String>,
    /// Who the rule applies to; every named list must match (an empty match matches all).
    #[serde(default, rename = "match")]
    pub matcher: RawMatch,
    /// Lifetimes for matching sessions; same fields and bounds as the top-level `session`.
    #[serde(default)]
    pub session: Option<RawSession>,
    /// Banner for matching sessions.
    #[serde(default)]
    pub banner: Option<RawBanner>,
}

/// What a rule matches. Within a list any entry may match; across lists all must.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// User names.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::name_list")]
    pub users: Option<Vec<String>>,
    /// Group names (system groups for PAM, the groups claim for OIDC).
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::name_list")]
    pub groups: Option<Vec<String>>,
    /// PAM service names (sshd, login, su, ...).
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::name_list")]
    pub services: Option<Vec<String>>,
    /// OIDC client ids.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::name_list")]
    pub clients: Option<Vec<String>>,
    /// Host names.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::name_list")]
    pub hosts: Option<Vec<String>>,
}

/// The state store.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = crate::schema::store_backend_rules)]
pub struct RawStore {
    /// `sqlite` (one host, the default) or `redis` (a fleet).
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::backend")]
    pub backend: Option<String>,
    /// SQLite: the database file (an absolute path).
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::absolute_path")]
    pub path: Option<String>,
    /// Redis: `redis://`, `rediss://` or `redis+unix://` URL, with user and password if needed.
    #[serde(default)]
    pub url: Option<String>,
    /// Redis: prefix of every key, default `curfew:`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Redis with a `rediss://` url: an absolute path to a PEM file of the
    /// CA certificates the server's certificate must chain to. Default: the
    /// system's trusted roots, read from the distribution's bundle
    /// (/etc/ssl/certs/ca-certificates.crt ...), never from environment
    /// variables such as SSL_CERT_FILE.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::absolute_path")]
    pub tls_ca_file: Option<String>,
    /// `deny` (default) or `allow`: the answer when the store cannot be reached.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::on_unavailable")]
    pub on_unavailable: Option<String>,
}

/// Audit logging.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Log to syslog, facility LOG_AUTHPRIV (default true).
    #[serde(default)]
    pub syslog: Option<bool>,
    /// Append JSON lines to this file (an absolute path).
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::absolute_path")]
    pub file: Option<String>,
}
