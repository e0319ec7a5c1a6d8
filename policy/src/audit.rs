//! The audit trail: one JSON line per admin action or enforcement, to the
//! file and to syslog (LOG_AUTHPRIV) as the policy's `audit` section says.
//!
//! Auditing never blocks enforcement: a failure to write is returned to the
//! caller, who logs it and goes on (a revocation is in the store either way).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::policy::AuditConfig;

/// One audited event.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent<'a> {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened, e.g. `revoke`, `unrevoke`, `terminate`, `login_denied`.
    pub event: &'a str,
    /// Who did it (an admin, or the component: `pam`, `enforcer`, `hook`).
    pub actor: &'a str,
    /// The user concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    /// The session concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<&'a str>,
    /// Anything else worth keeping.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

/// Where events go.
#[derive(Debug, Clone)]
pub struct Audit {
    config: AuditConfig,
    program: &'static str,
}

impl Audit {
    /// An audit trail as `config` says; `program` names the syslog ident.
    pub fn new(config: &AuditConfig, program: &'static str) -> Self {
        Audit {
            config: config.clone(),
            program,
        }
    }

    /// Records `event`. Returns the first error met; both sinks are tried.
    pub fn record(&self, event: &AuditEvent<'_>) -> Result<(), String> {
        let line = serde_json::to_string(event).map_err(|e| e.to_string())?;
        let mut first_error = None;
        if let Some(path) = &self.config.file {
            let res = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
            if let Err(e) = res {
                first_error = Some(format!("cannot append to {}: {e}", path.display()));
            }
        }
        if self.config.syslog {
            let formatter = syslog::Formatter3164 {
                facility: syslog::Facility::LOG_AUTHPRIV,
                hostname: None,
                process: self.program.into(),
                pid: std::process::id(),
            };
            // No syslog daemon (a container, a test) is not an error worth
            // failing an admin command for; the file sink is the record.
            if let Ok(mut logger) = syslog::unix(formatter) {
                let _ = logger.notice(&line);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn appends_json_lines_to_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.jsonl");
        let audit = Audit::new(
            &AuditConfig {
                syslog: false,
                file: Some(file.clone()),
            },
            "curfew",
        );
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for event in ["revoke", "unrevoke"] {
            audit
                .record(&AuditEvent {
                    at,
                    event,
                    actor: "root",
                    user: Some("alice"),
                    session: None,
                    detail: serde_json::json!({"reason": "offboarding"}),
                })
                .unwrap();
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "revoke");
        assert_eq!(lines[1]["user"], "alice");
        assert!(lines[0].get("session").is_none());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn an_unwritable_file_is_reported() {
        let audit = Audit::new(
            &AuditConfig {
                syslog: false,
                file: Some("/nonexistent-dir/audit.jsonl".into()),
            },
            "curfew",
        );
        let e = audit
            .record(&AuditEvent {
                at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
                event: "revoke",
                actor: "root",
                user: None,
                session: None,
                detail: serde_json::Value::Null,
            })
            .unwrap_err();
        assert!(e.contains("/nonexistent-dir/audit.jsonl"), "{e}");
    }
}
