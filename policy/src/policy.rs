//! The validated policy: every bound checked, every duration parsed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::activity::ActivitySet;
use crate::duration::{self, RawDuration};
use crate::error::{Diagnostic, PolicyError};
use crate::locate::{Locations, Position};
use crate::raw::{RawActivity, RawMatch, RawPolicy, RawSession};

/// The only policy schema version this build reads.
pub const VERSION: u32 = 1;
/// Hard floor of a token lifetime.
pub const TIMEOUT_FLOOR: Duration = Duration::from_secs(30);
/// Hard ceiling of a token lifetime (2147482 s, 24d 20h 31m 22s).
pub const TIMEOUT_CEILING: Duration = Duration::from_secs(2_147_482);
/// Token lifetime used when nothing else is said.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(300);
/// Hard ceiling of `max_duration`.
pub const MAX_DURATION_CEILING: Duration = Duration::from_secs(24 * 3_600);
/// Hard ceiling of `inactivity`.
pub const INACTIVITY_CEILING: Duration = Duration::from_secs(2 * 3_600);
/// Hard ceiling of `remember_me.max_duration`.
pub const REMEMBER_ME_CEILING: Duration = Duration::from_secs(90 * 86_400);
/// Default of `remember_me.inactivity`: 3 days, the longest inactivity
/// timeout Auth0 allows on its self-service plans (4,320 minutes, "Idle
/// Session Lifetime (Persistent)"): a remembered login survives a night and
/// a weekend without a refresh. Keycloak's counterpart, "SSO Session Idle
/// Remember Me", defaults to 0, which falls back to the ordinary idle limit
/// and so never survives a night: the problem this setting fixes.
pub const REMEMBER_ME_INACTIVITY_DEFAULT: Duration = Duration::from_secs(3 * 86_400);
/// Largest policy file read, in bytes.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;
/// Default location of the policy.
pub const DEFAULT_POLICY_PATH: &str = "/etc/curfew/policy.yaml";
/// Default location of the SQLite store.
pub const DEFAULT_STORE_PATH: &str = "/var/lib/curfew/state.db";
/// Default location of the enforcer's local API socket.
pub const DEFAULT_API_SOCKET: &str = "/run/curfew/curfew.sock";
/// Default key prefix in Redis.
pub const DEFAULT_REDIS_PREFIX: &str = "curfew:";

/// Session lifetimes, fully resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    /// Token lifetime unless the user chose another.
    pub timeout_default: Duration,
    /// Shortest token lifetime a user may choose.
    pub timeout_min: Duration,
    /// Longest token lifetime a user may choose.
    pub timeout_max: Duration,
    /// Absolute life of a session.
    pub max_duration: Duration,
    /// Sign-out after this long without activity.
    pub inactivity: Duration,
    /// Warning ahead of a forced end.
    pub warn_before: Duration,
    /// Absolute life of a persistent OIDC login.
    pub remember_me_max_duration: Duration,
    /// Sign-out of a persistent OIDC login after no refresh for this long.
    pub remember_me_inactivity: Duration,
    /// What counts as activity of a PAM session.
    pub activity: ActivitySet,
}

impl Limits {
    /// The built-in values, used for whatever a policy leaves out. They
    /// follow NIST SP 800-63B AAL2: 12 h absolute, 30 min inactivity.
    pub const BUILTIN: Limits = Limits {
        timeout_default: TIMEOUT_DEFAULT,
        timeout_min: TIMEOUT_FLOOR,
        timeout_max: TIMEOUT_CEILING,
        max_duration: Duration::from_secs(12 * 3_600),
        inactivity: Duration::from_secs(30 * 60),
        warn_before: Duration::from_secs(2 * 60),
        remember_me_max_duration: Duration::from_secs(20 * 86_400),
        remember_me_inactivity: REMEMBER_ME_INACTIVITY_DEFAULT,
        activity: ActivitySet::DEFAULT,
    };
}

/// The lifetimes a rule (or the policy's `session`) sets explicitly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LimitsOverride {
    /// See [`Limits::timeout_default`].
    pub timeout_default: Option<Duration>,
    /// See [`Limits::timeout_min`].
    pub timeout_min: Option<Duration>,
    /// See [`Limits::timeout_max`].
    pub timeout_max: Option<Duration>,
    /// See [`Limits::max_duration`].
    pub max_duration: Option<Duration>,
    /// See [`Limits::inactivity`].
    pub inactivity: Option<Duration>,
    /// See [`Limits::warn_before`].
    pub warn_before: Option<Duration>,
    /// See [`Limits::remember_me_max_duration`].
    pub remember_me_max_duration: Option<Duration>,
    /// See [`Limits::remember_me_inactivity`].
    pub remember_me_inactivity: Option<Duration>,
    /// See [`Limits::activity`].
    pub activity: Option<ActivitySet>,
}

impl LimitsOverride {
    /// Whether this section sets `field` (as a policy names it, e.g.
    /// `timeout.min`, `remember_me.inactivity`).
    pub fn sets(&self, field: &str) -> bool {
        match field {
            "timeout.default" => self.timeout_default.is_some(),
            "timeout.min" => self.timeout_min.is_some(),
            "timeout.max" => self.timeout_max.is_some(),
            "max_duration" => self.max_duration.is_some(),
            "inactivity" => self.inactivity.is_some(),
            "warn_before" => self.warn_before.is_some(),
            "remember_me.max_duration" => self.remember_me_max_duration.is_some(),
            "remember_me.inactivity" => self.remember_me_inactivity.is_some(),
            "activity" => self.activity.is_some(),
            _ => false,
        }
    }

    /// `base` with every value this override sets replaced.
    pub fn apply(&self, base: &Limits) -> Limits {
        Limits {
            timeout_default: self.timeout_default.unwrap_or(base.timeout_default),
            timeout_min: self.timeout_min.unwrap_or(base.timeout_min),
            timeout_max: self.timeout_max.unwrap_or(base.timeout_max),
            max_duration: self.max_duration.unwrap_or(base.max_duration),
            inactivity: self.inactivity.unwrap_or(base.inactivity),
            warn_before: self.warn_before.unwrap_or(base.warn_before),
            remember_me_max_duration: self
                .remember_me_max_duration
                .unwrap_or(base.remember_me_max_duration),
            remember_me_inactivity: self
                .remember_me_inactivity
                .unwrap_or(base.remember_me_inactivity),
            activity: self.activity.unwrap_or(base.activity),
        }
    }
}

/// Who a rule applies to. `None` means "any"; every list that is given must
/// contain the subject's value (for groups: any one of the subject's groups).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Match {
    /// User names.
    pub users: Option<Vec<String>>,
    /// Group names.
    pub groups: Option<Vec<String>>,
    /// PAM service names.
    pub services: Option<Vec<String>>,
    /// OIDC client ids.
    pub clients: Option<Vec<String>>,
    /// Host names.
    pub hosts: Option<Vec<String>>,
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rule {
    /// The rule's name (`rules[N]` when the file gives none).
    pub name: String,
    /// Who it applies to.
    #[serde(rename = "match")]
    pub matcher: Match,
    /// What it changes.
    pub session: LimitsOverride,
    /// The banner for matching sessions, if the rule sets one.
    pub banner: Option<String>,
}

/// What PAM and the token hook answer when the store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// Refuse the login or token (the default).
    Deny,
    /// Let it through, and log loudly that the store was not consulted.
    Allow,
}

/// Which store holds revocations and sessions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum StoreBackend {
    /// An embedded SQLite file: one host.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A Redis server shared by a fleet.
    Redis {
        /// The connection URL; may hold a password, so never log it whole.
        url: String,
        /// Prefix of every key.
        prefix: String,
        /// With `rediss://`: the PEM file of the CAs to trust instead of
        /// the system's roots (`store.tls_ca_file`).
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_ca_file: Option<PathBuf>,
    },
}

/// The validated `store` section.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreConfig {
    /// The backend.
    #[serde(flatten)]
    pub backend: StoreBackend,
    /// The answer when the store cannot be reached.
    pub on_unavailable: OnUnavailable,
}

/// The validated `audit` section.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditConfig {
    /// Log to syslog, LOG_AUTHPRIV.
    pub syslog: bool,
    /// Append JSON lines here.
    pub file: Option<PathBuf>,
}

/// The validated `admin` section: who may do through the local API what
/// root can do through the CLI. Root (uid 0) always may.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Admin {
    /// User names.
    pub users: Vec<String>,
    /// Group names; a member of any of them is an administrator.
    pub groups: Vec<String>,
}

impl Admin {
    /// Whether `user`, a member of `groups`, is named by the section.
    /// Callers pass the groups from the system (`crate::host::groups`); a
    /// failed group lookup is "no groups", so it can only take power away.
    pub fn admits(&self, user: &str, groups: &[String]) -> bool {
        self.users.iter().any(|u| u == user) || groups.iter().any(|g| self.groups.contains(g))
    }
}

/// The validated `api` section.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiConfig {
    /// Whether the enforcer serves the API.
    pub enabled: bool,
    /// The unix socket it listens on, and the CLI connects to.
    pub socket: PathBuf,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            socket: DEFAULT_API_SOCKET.into(),
        }
    }
}

/// A validated policy. Build one with [`Policy::parse`], [`Policy::load`] or
/// [`Policy::builtin`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Policy {
    /// Where the policy came from (a file name, or `<builtin>`).
    pub origin: String,
    /// The top-level lifetimes, built-in values filled in.
    pub session: Limits,
    /// Which top-level lifetimes the file set itself.
    pub session_explicit: LimitsOverride,
    /// The top-level banner (empty for none).
    pub banner: String,
    /// Rules, in file order; the first match wins. Private so that the
    /// index below can never go stale; read them with [`Policy::rules`].
    rules: Vec<Rule>,
    /// Which rules can match a user or group at all (see [`RuleIndex`]).
    #[serde(skip)]
    index: RuleIndex,
    /// The store.
    pub store: StoreConfig,
    /// Audit logging.
    pub audit: AuditConfig,
    /// Administrators of the local API besides root.
    pub admin: Admin,
    /// The local API.
    pub api: ApiConfig,
}

/// Candidate rules by user and by group, so that finding the first matching
/// rule costs a few hash lookups instead of a scan of every rule.
///
/// A rule with a `users` list can only match those users, so it is listed
/// under each of them; otherwise a rule with a `groups` list is listed under
/// each group; every other rule is "unkeyed" and always a candidate. Each
/// list holds rule indexes in ascending order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RuleIndex {
    pub(crate) by_user: std::collections::HashMap<String, Vec<usize>>,
    pub(crate) by_group: std::collections::HashMap<String, Vec<usize>>,
    pub(crate) unkeyed: Vec<usize>,
}

impl RuleIndex {
    fn build(rules: &[Rule]) -> RuleIndex {
        let mut index = RuleIndex::default();
        for (i, r) in rules.iter().enumerate() {
            if let Some(users) = &r.matcher.users {
                for u in users {
                    push_once(index.by_user.entry(u.clone()).or_default(), i);
                }
            } else if let Some(groups) = &r.matcher.groups {
                for g in groups {
                    push_once(index.by_group.entry(g.clone()).or_default(), i);
                }
            } else {
                index.unkeyed.push(i);
            }
        }
        index
    }
}

fn push_once(list: &mut Vec<usize>, i: usize) {
    if list.last() != Some(&i) {
        list.push(i);
    }
}

impl Policy {
    /// The rules, in file order; the first match wins.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub(crate) fn rule_index(&self) -> &RuleIndex {
        &self.index
    }

    /// The policy used when no file is given: built-in lifetimes, no banner,
    /// no rules, the SQLite store at its default path.
    pub fn builtin() -> Policy {
        Policy {
            origin: "<builtin>".into(),
            session: Limits::BUILTIN,
            session_explicit: LimitsOverride::default(),
            banner: String::new(),
            rules: Vec::new(),
            index: RuleIndex::default(),
            store: StoreConfig {
                backend: StoreBackend::Sqlite {
                    path: DEFAULT_STORE_PATH.into(),
                },
                on_unavailable: OnUnavailable::Deny,
            },
            audit: AuditConfig {
                syslog: true,
                file: None,
            },
            admin: Admin::default(),
            api: ApiConfig::default(),
        }
    }

    /// Reads and validates the policy at `path`. Does not check ownership or
    /// mode; enforcement points use [`Policy::load_secure`].
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = read_text(path)?;
        Policy::parse(&text, &path.display().to_string())
    }

    /// Like [`Policy::load`], after refusing a file that anyone but its owner
    /// (root or the caller) can change ([`Policy::check_placement`]). Every
    /// part that decides by a policy loads it so.
    pub fn load_secure(path: &Path) -> Result<Policy, PolicyError> {
        Policy::check_placement(path)?;
        Policy::load(path)
    }

    /// The StrictModes check of a policy file before it is used to decide
    /// ([`crate::fsperm::check`]: the file, its directory, the directories
    /// above, symbolic links on the way). A file that is not there is
    /// [`PolicyError::Read`] (as [`Policy::load`] would say), an unsafe one
    /// [`PolicyError::Insecure`] naming the file and the reason.
    pub fn check_placement(path: &Path) -> Result<(), PolicyError> {
        if let Err(error) = std::fs::symlink_metadata(path) {
            return Err(PolicyError::Read {
                path: path.to_owned(),
                error,
            });
        }
        Ok(crate::fsperm::check(path)?)
    }

    /// Parses and validates policy text. `origin` names the file in errors.
    /// Every problem is reported, each with its line, column and field.
    ///
    /// A leading UTF-8 byte-order mark (which some Windows editors write) is
    /// skipped, so columns stay the ones the editor shows; CRLF line ends are
    /// read like LF.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        // serde_yaml_ng reads a BOM as the start of a second document and
        // refused such files with "more than one document".
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // The values come from serde_yaml_ng. Positions (a second parse,
        // with yaml_rust2) are only needed to say where something is wrong,
        // so a good policy, what every login and reload reads, is parsed
        // once (issue 17: the second parse was a third of loading a policy).
        // Except a document nested deeper than any policy: yaml_rust2 refuses
        // it at once, where serde_yaml_ng took minutes (debug build) over
        // 100,000 brackets before its recursion limit refused it, so such a
        // document still goes to yaml_rust2 first, as every document did.
        let mut early = None;
        if flow_depth_exceeds(text, MAX_FLOW_DEPTH) {
            match Locations::index(text) {
                Ok(l) => early = Some(l),
                Err((at, message)) => {
                    return Err(PolicyError::Invalid {
                        diagnostics: vec![Diagnostic::new(origin, at, "", message)],
                    })
                }
            }
        }
        let raw: RawPolicy = match serde_yaml_ng::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                // Syntax first: serde_yaml_ng reports a type mismatch on the
                // first node it cannot use, which for a truncated document
                // hides the real problem.
                let diagnostic = match early.map_or_else(|| Locations::index(text), Ok) {
                    Ok(locations) => serde_diagnostic(origin, &e, &locations),
                    Err((at, message)) => Diagnostic::new(origin, at, "", message),
                };
                return Err(PolicyError::Invalid {
                    diagnostics: vec![diagnostic],
                });
            }
        };
        let mut v = Validator {
            origin,
            text,
            locations: early,
            diagnostics: Vec::new(),
        };
        let policy = v.policy(&raw);
        if v.diagnostics.is_empty() {
            Ok(policy)
        } else {
            v.diagnostics
                .sort_by_key(|d| (d.line, d.column, d.path.clone()));
            Err(PolicyError::Invalid {
                diagnostics: v.diagnostics,
            })
        }
    }
}

fn read_text(path: &Path) -> Result<String, PolicyError> {
    // An editor or config manager may rewrite the file in place while we
    // read it. Read it whole, then check that the file we read did not change
    // meanwhile; if it did, read again. (Replacing the file by rename is
    // atomic and always safe.)
    for _ in 0..5 {
        if let Some(text) = read_once(path)? {
            return Ok(text);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(PolicyError::Read {
        path: path.to_owned(),
        error: std::io::Error::other("it kept changing while it was read"),
    })
}

/// One read; `None` when the file changed under us.
fn read_once(path: &Path) -> Result<Option<String>, PolicyError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let read_err = |error| PolicyError::Read {
        path: path.to_owned(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let before = file.metadata().map_err(read_err)?;
    // Read one byte past the limit rather than trusting metadata, so a
    // growing file or a device cannot make us read without bound.
    let mut bytes = Vec::new();
    (&file)
        .take(MAX_POLICY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            path: path.to_owned(),
            size: before.len().max(bytes.len() as u64),
            limit: MAX_POLICY_BYTES,
        });
    }
    // Compare the open file with itself: a file replaced by rename leaves our
    // descriptor on the old, whole version (safe to use); a file rewritten
    // in place changes size or mtime under us, and is read again.
    let after = file.metadata().map_err(read_err)?;
    // Content only: not ctime (or a `FileStamp`), which changes on the old
    // inode when a rename replaces it, and would make a safe read look torn.
    let same = |m: &std::fs::Metadata| (m.ino(), m.dev(), m.len(), m.mtime(), m.mtime_nsec());
    if same(&before) != same(&after) || (before.is_file() && before.len() != bytes.len() as u64) {
        return Ok(None);
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| PolicyError::NotText {
            path: path.to_owned(),
            offset: e.utf8_error().valid_up_to(),
        })
}

/// Flow nesting (`[`, `{`) deeper than this sends a document to yaml_rust2
/// before serde_yaml_ng (see [`Policy::parse`]); a policy nests a handful of
/// levels.
const MAX_FLOW_DEPTH: usize = 64;

/// Whether `text` opens more than `limit` flow collections without closing
/// them, counting every bracket (inside quotes too): a count that errs only
/// towards "deep", which costs nothing but the second parse.
fn flow_depth_exceeds(text: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    for b in text.bytes() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Turns a serde_yaml_ng error into `FILE:LINE:COL: PATH: message`.
fn serde_diagnostic(origin: &str, e: &serde_yaml_ng::Error, locations: &Locations) -> Diagnostic {
    let mut pos = e
        .location()
        .map(|l| Position {
            line: l.line(),
            column: l.column(),
        })
        .unwrap_or(Position { line: 1, column: 1 });
    let mut message = e.to_string();
    if let Some(i) = message.find(" at line ") {
        message.truncate(i);
    }
    // serde_yaml_ng prefixes the field path ("session.timeout: unknown field ...").
    let (path, message) = match message.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (p.to_owned(), m.to_owned()),
        _ => (String::new(), message),
    };
    // A key given twice: serde says where the mapping starts (1:1 at the
    // top level); the second occurrence is what the reader must find.
    if let Some(rest) = message.strip_prefix("duplicate field `") {
        let key = rest.split('`').next().unwrap_or_default();
        let full = if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        };
        if let Some(at) = locations.duplicate(&full) {
            pos = at;
        }
    }
    Diagnostic::new(origin, pos, &path, message)
}

struct Validator<'a> {
    origin: &'a str,
    /// The document, indexed into `locations` at the first error.
    text: &'a str,
    locations: Option<Locations>,
    diagnostics: Vec<Diagnostic>,
}

/// A bound a single duration must respect.
struct Bound {
    floor: Duration,
    ceiling: Duration,
}

impl Validator<'_> {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        let text = self.text;
        // serde_yaml_ng read the document, so yaml_rust2 should too; should
        // it not, the error is still reported, at 1:1.
        let at = self
            .locations
            .get_or_insert_with(|| Locations::index(text).unwrap_or_default())
            .find(path);
        self.diagnostics
            .push(Diagnostic::new(self.origin, at, path, message));
    }

    fn policy(&mut self, raw: &RawPolicy) -> Policy {
        if raw.version != VERSION {
            self.error(
                "version",
                format!(
                    "version {} is not supported (this build reads version {VERSION})",
                    raw.version
                ),
            );
        }
        let before = self.diagnostics.len();
        let explicit = self.session(&raw.session, "session");
        let session = explicit.apply(&Limits::BUILTIN);
        // A cross-field check that involves a value which failed its own
        // bound would compare against a stand-in and mislead: that check is
        // skipped, every other one still runs (so both kinds are reported).
        let top_failed = self.failed_since(before, "session");
        self.cross_check(&session, &explicit, "session", &top_failed);
        let banner = raw
            .banner
            .as_ref()
            .map(|b| b.text.clone())
            .unwrap_or_default();
        self.banner(&banner, "banner.text");

        let mut rules = Vec::with_capacity(raw.rules.len());
        for (i, r) in raw.rules.iter().enumerate() {
            let prefix = format!("rules[{i}]");
            let name = r.name.clone().unwrap_or_else(|| prefix.clone());
            if name.trim().is_empty() {
                self.error(&format!("{prefix}.name"), "a rule name may not be empty");
            }
            if let Some(j) = rules.iter().position(|x: &Rule| x.name == name) {
                self.error(
                    &format!("{prefix}.name"),
                    format!("the name {name:?} is already used by rules[{j}]"),
                );
            }
            let matcher = self.matcher(&r.matcher, &format!("{prefix}.match"));
            let spath = format!("{prefix}.session");
            let before = self.diagnostics.len();
            let ov = match &r.session {
                Some(s) => self.session(s, &spath),
                None => LimitsOverride::default(),
            };
            // The rule's own failures, and the top level's for the fields
            // the rule inherits.
            let mut failed = self.failed_since(before, &spath);
            failed.extend(top_failed.iter().filter(|f| !ov.sets(f)).cloned());
            self.cross_check(&ov.apply(&session), &ov, &spath, &failed);
            let banner = r.banner.as_ref().map(|b| b.text.clone());
            if let Some(b) = &banner {
                self.banner(b, &format!("{prefix}.banner.text"));
            }
            rules.push(Rule {
                name,
                matcher,
                session: ov,
                banner,
            });
        }
        Policy {
            origin: self.origin.to_owned(),
            session,
            session_explicit: explicit,
            banner,
            index: RuleIndex::build(&rules),
            rules,
            store: self.store(raw),
            audit: AuditConfig {
                syslog: raw.audit.as_ref().and_then(|a| a.syslog).unwrap_or(true),
                file: raw
                    .audit
                    .as_ref()
                    .and_then(|a| a.file.as_deref())
                    .and_then(|f| self.absolute("audit.file", f)),
            },
            admin: self.admin(raw),
            api: self.api(raw),
        }
    }

    fn admin(&mut self, raw: &RawPolicy) -> Admin {
        let Some(a) = &raw.admin else {
            return Admin::default();
        };
        let mut names = |field: &str, list: &Option<Vec<String>>| -> Vec<String> {
            let list = list.clone().unwrap_or_default();
            for (i, name) in list.iter().enumerate() {
                if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    self.error(
                        &format!("admin.{field}[{i}]"),
                        "a name may not be empty or contain spaces or control characters",
                    );
                }
            }
            list
        };
        Admin {
            users: names("users", &a.users),
            groups: names("groups", &a.groups),
        }
    }

    fn api(&mut self, raw: &RawPolicy) -> ApiConfig {
        let Some(a) = &raw.api else {
            return ApiConfig::default();
        };
        let socket = match a.socket.as_deref() {
            None => PathBuf::from(DEFAULT_API_SOCKET),
            Some(p) => {
                // sun_path holds 108 bytes, the terminating NUL included.
                if p.len() > 107 {
                    self.error(
                        "api.socket",
                        format!(
                            "the path is {} bytes; a unix socket path holds at most 107",
                            p.len()
                        ),
                    );
                }
                self.absolute("api.socket", p).unwrap_or_default()
            }
        };
        ApiConfig {
            enabled: a.enabled.unwrap_or(true),
            socket,
        }
    }

    fn duration(&mut self, raw: &Option<RawDuration>, path: &str, b: Bound) -> Option<Duration> {
        let raw = raw.as_ref()?;
        let d = match raw.parse() {
            Ok(d) => d,
            Err(msg) => {
                self.error(path, msg);
                return None;
            }
        };
        if d > b.ceiling {
            self.error(
                path,
                format!(
                    "{} exceeds the ceiling of {}",
                    duration::format(d),
                    duration::format(b.ceiling)
                ),
            );
            None
        } else if d < b.floor {
            self.error(
                path,
                format!(
                    "{} is below the floor of {}",
                    duration::format(d),
                    duration::format(b.floor)
                ),
            );
            None
        } else {
            Some(d)
        }
    }

    fn session(&mut self, raw: &RawSession, prefix: &str) -> LimitsOverride {
        let timeout_bound = || Bound {
            floor: TIMEOUT_FLOOR,
            ceiling: TIMEOUT_CEILING,
        };
        let t = raw.timeout.clone().unwrap_or_default();
        LimitsOverride {
            timeout_default: self.duration(
                &t.default,
                &format!("{prefix}.timeout.default"),
                timeout_bound(),
            ),
            timeout_min: self.duration(&t.min, &format!("{prefix}.timeout.min"), timeout_bound()),
            timeout_max: self.duration(&t.max, &format!("{prefix}.timeout.max"), timeout_bound()),
            max_duration: self.duration(
                &raw.max_duration,
                &format!("{prefix}.max_duration"),
                Bound {
                    floor: Duration::from_secs(1),
                    ceiling: MAX_DURATION_CEILING,
                },
            ),
            inactivity: self.duration(
                &raw.inactivity,
                &format!("{prefix}.inactivity"),
                Bound {
                    floor: Duration::from_secs(1),
                    ceiling: INACTIVITY_CEILING,
                },
            ),
            warn_before: self.duration(
                &raw.warn_before,
                &format!("{prefix}.warn_before"),
                Bound {
                    floor: Duration::ZERO,
                    ceiling: INACTIVITY_CEILING,
                },
            ),
            remember_me_max_duration: self.duration(
                &raw.remember_me
                    .as_ref()
                    .and_then(|r| r.max_duration.clone()),
                &format!("{prefix}.remember_me.max_duration"),
                Bound {
                    floor: Duration::from_secs(1),
                    ceiling: REMEMBER_ME_CEILING,
                },
            ),
            remember_me_inactivity: self.duration(
                &raw.remember_me.as_ref().and_then(|r| r.inactivity.clone()),
                &format!("{prefix}.remember_me.inactivity"),
                Bound {
                    floor: Duration::from_secs(1),
                    ceiling: REMEMBER_ME_CEILING,
                },
            ),
            activity: raw
                .activity
                .as_ref()
                .map(|list| self.activity(list, &format!("{prefix}.activity"))),
        }
    }

    /// `session.activity`: a non-empty list without repeats.
    fn activity(&mut self, list: &[RawActivity], path: &str) -> ActivitySet {
        use crate::activity::ActivityKind;
        if list.is_empty() {
            self.error(
                path,
                "an empty list would make every session idle from its login; \
                 list at least one of: input, output, traffic",
            );
        }
        let mut kinds: Vec<ActivityKind> = Vec::with_capacity(list.len());
        for (i, a) in list.iter().enumerate() {
            let k = match a {
                RawActivity::Input => ActivityKind::Input,
                RawActivity::Output => ActivityKind::Output,
                RawActivity::Traffic => ActivityKind::Traffic,
            };
            if kinds.contains(&k) {
                self.error(&format!("{path}[{i}]"), format!("{k} is listed twice"));
            }
            kinds.push(k);
        }
        ActivitySet::of(&kinds)
    }

    /// Cross-field rules on the merged values. The error is reported at the
    /// field this section sets, or at the section when it inherits both.
    /// The fields (relative to `prefix`, e.g. `timeout.min`) that got a
    /// diagnostic since `before`.
    fn failed_since(&self, before: usize, prefix: &str) -> Vec<String> {
        let lead = format!("{prefix}.");
        self.diagnostics[before..]
            .iter()
            .filter_map(|d| d.path.strip_prefix(&lead).map(str::to_owned))
            .collect()
    }

    /// The checks between fields of one section (`prefix`), skipping each
    /// one that involves a field in `failed` (its value is a stand-in).
    fn cross_check(&mut self, l: &Limits, set: &LimitsOverride, prefix: &str, failed: &[String]) {
        // The first field of `fields` that this section sets, else the section.
        let at = |fields: &[(&str, bool)]| match fields.iter().find(|(_, is_set)| *is_set) {
            Some((field, _)) => format!("{prefix}.{field}"),
            None => prefix.to_owned(),
        };
        // A check runs when this section sets one of its fields (what it
        // only inherits was checked where it was set) and none of them
        // failed its own bound.
        let ok = |fields: &[&str]| {
            fields.iter().any(|f| set.sets(f))
                && !fields.iter().any(|f| failed.iter().any(|x| x == f))
        };
        let f = duration::format;
        let timeouts = ok(&["timeout.min", "timeout.max", "timeout.default"]);
        if !timeouts {
            // One of the three failed its bound: no order among them holds.
        } else if l.timeout_min > l.timeout_max {
            let p = at(&[
                ("timeout.min", set.timeout_min.is_some()),
                ("timeout.max", set.timeout_max.is_some()),
            ]);
            self.error(
                &p,
                format!(
                    "timeout.min {} is greater than timeout.max {} (min <= default <= max)",
                    f(l.timeout_min),
                    f(l.timeout_max)
                ),
            );
        } else if l.timeout_default < l.timeout_min || l.timeout_default > l.timeout_max {
            let p = at(&[
                ("timeout.default", set.timeout_default.is_some()),
                ("timeout.min", set.timeout_min.is_some()),
                ("timeout.max", set.timeout_max.is_some()),
            ]);
            self.error(
                &p,
                format!(
                    "timeout.default {} is outside timeout.min..timeout.max ({}..{})",
                    f(l.timeout_default),
                    f(l.timeout_min),
                    f(l.timeout_max)
                ),
            );
        }
        if ok(&["inactivity", "max_duration"]) && l.inactivity > l.max_duration {
            let p = at(&[
                ("inactivity", set.inactivity.is_some()),
                ("max_duration", set.max_duration.is_some()),
            ]);
            self.error(
                &p,
                format!(
                    "inactivity {} exceeds max_duration {} (inactivity <= max_duration)",
                    f(l.inactivity),
                    f(l.max_duration)
                ),
            );
        }
        if ok(&["warn_before", "inactivity"]) && l.warn_before >= l.inactivity {
            let p = at(&[
                ("warn_before", set.warn_before.is_some()),
                ("inactivity", set.inactivity.is_some()),
            ]);
            self.error(
                &p,
                format!(
                    "warn_before {} must be less than inactivity {} (warn_before < inactivity)",
                    f(l.warn_before),
                    f(l.inactivity)
                ),
            );
        }
        if ok(&["remember_me.inactivity"])
            && ok(&[
                "inactivity",
                "remember_me.inactivity",
                "remember_me.max_duration",
            ])
        {
            self.remember_me_check(l, set, prefix);
        }
    }

    /// `remember_me.inactivity`, where this section sets it: no shorter
    /// than `inactivity`, no longer than `remember_me.max_duration`.
    fn remember_me_check(&mut self, l: &Limits, set: &LimitsOverride, prefix: &str) {
        if set.remember_me_inactivity.is_none() {
            return;
        }
        let f = duration::format;
        let p = format!("{prefix}.remember_me.inactivity");
        if l.remember_me_inactivity < l.inactivity {
            self.error(
                &p,
                format!(
                    "remember_me.inactivity {} is shorter than inactivity {} \
                     (inactivity <= remember_me.inactivity)",
                    f(l.remember_me_inactivity),
                    f(l.inactivity)
                ),
            );
        } else if l.remember_me_inactivity > l.remember_me_max_duration {
            self.error(
                &p,
                format!(
                    "remember_me.inactivity {} exceeds remember_me.max_duration {} \
                     (remember_me.inactivity <= remember_me.max_duration)",
                    f(l.remember_me_inactivity),
                    f(l.remember_me_max_duration)
                ),
            );
        }
    }

    fn banner(&mut self, text: &str, path: &str) {
        if text.len() > 64 * 1024 {
            self.error(
                path,
                format!("the banner is {} bytes; the limit is 65536", text.len()),
            );
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            self.error(
                path,
                "the banner contains control characters (terminal escapes are not allowed)",
            );
        }
    }

    fn matcher(&mut self, raw: &RawMatch, prefix: &str) -> Match {
        let mut list = |name: &str, v: &Option<Vec<String>>| -> Option<Vec<String>> {
            let v = v.as_ref()?;
            let path = format!("{prefix}.{name}");
            if v.is_empty() {
                self.error(
                    &path,
                    "an empty list matches nobody; remove the key to match everyone",
                );
            }
            for (i, s) in v.iter().enumerate() {
                if s.is_empty() || s.chars().any(|c| c.is_control()) {
                    self.error(
                        &format!("{path}[{i}]"),
                        "a name may not be empty or contain control characters",
                    );
                }
            }
            Some(v.clone())
        };
        Match {
            users: list("users", &raw.users),
            groups: list("groups", &raw.groups),
            services: list("services", &raw.services),
            clients: list("clients", &raw.clients),
            hosts: list("hosts", &raw.hosts),
        }
    }

    fn absolute(&mut self, path: &str, value: &str) -> Option<PathBuf> {
        if value.starts_with('/') {
            Some(PathBuf::from(value))
        } else {
            self.error(path, format!("{value:?} must be an absolute path"));
            None
        }
    }

    fn store(&mut self, raw: &RawPolicy) -> StoreConfig {
        let s = raw.store.clone().unwrap_or_default();
        let on_unavailable = match s.on_unavailable.as_deref() {
            None | Some("deny") => OnUnavailable::Deny,
            Some("allow") => OnUnavailable::Allow,
            Some(other) => {
                self.error(
                    "store.on_unavailable",
                    format!("{other:?} is not one of: deny, allow"),
                );
                OnUnavailable::Deny
            }
        };
        let backend = match s.backend.as_deref() {
            None | Some("sqlite") => {
                if s.url.is_some() {
                    self.error(
                        "store.url",
                        "url is for the redis backend; sqlite takes path",
                    );
                }
                if s.tls_ca_file.is_some() {
                    self.error(
                        "store.tls_ca_file",
                        "tls_ca_file is for the redis backend with a rediss:// url",
                    );
                }
                let path = match s.path.as_deref() {
                    Some(p) => self.absolute("store.path", p).unwrap_or_default(),
                    None => PathBuf::from(DEFAULT_STORE_PATH),
                };
                StoreBackend::Sqlite { path }
            }
            Some("redis") => {
                if s.path.is_some() {
                    self.error(
                        "store.path",
                        "path is for the sqlite backend; redis takes url",
                    );
                }
                let url = s.url.clone().unwrap_or_default();
                let ok = ["redis://", "rediss://", "redis+unix://", "unix://"]
                    .iter()
                    .any(|p| url.starts_with(p));
                if !ok {
                    self.error(
                        if s.url.is_some() {
                            "store.url"
                        } else {
                            "store"
                        },
                        "redis needs url: redis://, rediss://, redis+unix:// or unix://",
                    );
                }
                let tls_ca_file = match s.tls_ca_file.as_deref() {
                    None => None,
                    Some(_) if ok && !url.starts_with("rediss://") => {
                        self.error(
                            "store.tls_ca_file",
                            "tls_ca_file is only used with a rediss:// url (TLS)",
                        );
                        None
                    }
                    Some(p) => self.absolute("store.tls_ca_file", p),
                };
                StoreBackend::Redis {
                    url,
                    prefix: s
                        .prefix
                        .clone()
                        .unwrap_or_else(|| DEFAULT_REDIS_PREFIX.into()),
                    tls_ca_file,
                }
            }
            Some(other) => {
                self.error(
                    "store.backend",
                    format!("{other:?} is not one of: sqlite, redis"),
                );
                StoreBackend::Sqlite {
                    path: PathBuf::from(DEFAULT_STORE_PATH),
                }
            }
        };
        StoreConfig {
            backend,
            on_unavailable,
        }
    }
}
