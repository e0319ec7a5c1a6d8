//! What the hooks ask of libpam, as a trait (kanidm's `PamHandler` idea).
//!
//! The private `ffi` module implements it over a real `pam_handle_t`; the unit tests
//! implement it with a scripted mock that checks every step. The hooks never
//! touch libpam any other way.
#![forbid(unsafe_code)]

use crate::code::PamCode;

/// A string item of the PAM handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// `PAM_SERVICE`, e.g. `sshd`.
    Service,
    /// `PAM_TTY`, e.g. `/dev/pts/3` or `ssh`.
    Tty,
    /// `PAM_RHOST`: the remote host.
    RHost,
}

/// How a conversation message is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStyle {
    /// `PAM_TEXT_INFO`: information, such as the banner.
    TextInfo,
    /// `PAM_ERROR_MSG`: why the login was refused.
    ErrorMsg,
}

/// A syslog priority (the facility is always LOG_AUTHPRIV).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// LOG_ERR: the login was refused because something is broken.
    Err,
    /// LOG_WARNING: something is wrong, the login goes on.
    Warning,
    /// LOG_NOTICE: a login refused by the policy.
    Notice,
    /// LOG_INFO: a session opened or closed.
    Info,
    /// LOG_DEBUG: only with the `debug` argument.
    Debug,
}

/// The PAM data name under which pam_systemd looks for a runtime limit
/// (a decimal number of seconds, as a C string).
pub const RUNTIME_MAX_SEC_DATA: &str = "systemd.runtime_max_sec";

/// The PAM data name under which open_session leaves the session id for
/// close_session.
pub const SESSION_ID_DATA: &str = "pam_curfew.session_id";

/// The environment variable that carries the session id into the session.
pub const SESSION_ID_ENV: &str = "CURFEW_SESSION_ID";

/// The environment variable shells read as their idle logout, in seconds.
pub const TMOUT_ENV: &str = "TMOUT";

/// Everything the hooks do through libpam.
pub trait PamHandler {
    /// The user (`pam_get_user`).
    fn user(&mut self) -> Result<String, PamCode>;

    /// A string item; `None` when the application did not set it.
    fn item(&mut self, item: Item) -> Result<Option<String>, PamCode>;

    /// Shows `text` to the user through the application's conversation.
    fn message(&mut self, style: MessageStyle, text: &str) -> Result<(), PamCode>;

    /// Logs through `pam_syslog` (LOG_AUTHPRIV, `pam_curfew(SERVICE:TYPE): text`).
    fn log(&mut self, level: LogLevel, text: &str);

    /// Leaves [`RUNTIME_MAX_SEC_DATA`] for pam_systemd: the scope logind
    /// creates for this session is stopped after `seconds`.
    fn set_runtime_max_sec(&mut self, seconds: u64) -> Result<(), PamCode>;

    /// The `systemd.runtime_max_sec` a module earlier in the stack left as
    /// PAM data, as its text (a NUL-terminated string that pam_systemd
    /// reads with systemd's time-span grammar: "3600", "1h", "300.5"; see
    /// [`crate::timespan`]), if any and if it is UTF-8.
    fn runtime_max_sec(&mut self) -> Option<String>;

    /// Keeps the session id for close_session ([`SESSION_ID_DATA`]).
    fn set_session_id(&mut self, id: &str) -> Result<(), PamCode>;

    /// The session id open_session kept, if any.
    fn session_id(&mut self) -> Option<String>;

    /// Sets `name=value` in the PAM environment (`pam_putenv`), which the
    /// application passes on to the session.
    fn putenv(&mut self, name: &str, value: &str) -> Result<(), PamCode>;

    /// A variable of the PAM environment (`pam_getenv`).
    fn getenv(&mut self, name: &str) -> Option<String>;
}
