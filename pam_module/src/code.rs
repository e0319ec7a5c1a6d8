//! The PAM return codes this module answers with, as a Rust enum.
//!
//! The hooks decide in these terms; the FFI layer turns them into libpam's
//! integers in one place ([`PamCode::as_int`]), and turns libpam's answers
//! back ([`PamCode::from_int`]).
#![forbid(unsafe_code)]

/// A PAM return code (Linux-PAM's `_pam_types.h` numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PamCode {
    /// `PAM_SUCCESS`: go on.
    Success,
    /// `PAM_SERVICE_ERR`: the module is misconfigured.
    ServiceErr,
    /// `PAM_SYSTEM_ERR`: something the login depends on is broken (the
    /// policy, the store); the login is refused.
    SystemErr,
    /// `PAM_BUF_ERR`: out of memory, or a string with a NUL byte.
    BufErr,
    /// `PAM_PERM_DENIED`: the policy refuses this login.
    PermDenied,
    /// `PAM_USER_UNKNOWN`: the user is not known to the system.
    UserUnknown,
    /// `PAM_SESSION_ERR`: the session could not be set up.
    SessionErr,
    /// `PAM_NO_MODULE_DATA`: no data under that name.
    NoModuleData,
    /// `PAM_CONV_ERR`: the conversation failed.
    ConvErr,
    /// `PAM_IGNORE`: this module has no say.
    Ignore,
    /// `PAM_ABORT`: the application should end the PAM transaction.
    Abort,
    /// `PAM_BAD_ITEM`: an unknown or unusable item.
    BadItem,
    /// Any other code, kept as it came.
    Other(i32),
}

impl PamCode {
    /// The code libpam expects.
    pub fn as_int(self) -> i32 {
        match self {
            PamCode::Success => 0,
            PamCode::ServiceErr => 3,
            PamCode::SystemErr => 4,
            PamCode::BufErr => 5,
            PamCode::PermDenied => 6,
            PamCode::UserUnknown => 10,
            PamCode::SessionErr => 14,
            PamCode::NoModuleData => 18,
            PamCode::ConvErr => 19,
            PamCode::Ignore => 25,
            PamCode::Abort => 26,
            PamCode::BadItem => 29,
            PamCode::Other(n) => n,
        }
    }

    /// The code libpam returned.
    pub fn from_int(n: i32) -> PamCode {
        match n {
            0 => PamCode::Success,
            3 => PamCode::ServiceErr,
            4 => PamCode::SystemErr,
            5 => PamCode::BufErr,
            6 => PamCode::PermDenied,
            10 => PamCode::UserUnknown,
            14 => PamCode::SessionErr,
            18 => PamCode::NoModuleData,
            19 => PamCode::ConvErr,
            25 => PamCode::Ignore,
            26 => PamCode::Abort,
            29 => PamCode::BadItem,
            n => PamCode::Other(n),
        }
    }

    /// Linux-PAM's name for the code, for log lines.
    pub fn name(self) -> &'static str {
        match self {
            PamCode::Success => "PAM_SUCCESS",
            PamCode::ServiceErr => "PAM_SERVICE_ERR",
            PamCode::SystemErr => "PAM_SYSTEM_ERR",
            PamCode::BufErr => "PAM_BUF_ERR",
            PamCode::PermDenied => "PAM_PERM_DENIED",
            PamCode::UserUnknown => "PAM_USER_UNKNOWN",
            PamCode::SessionErr => "PAM_SESSION_ERR",
            PamCode::NoModuleData => "PAM_NO_MODULE_DATA",
            PamCode::ConvErr => "PAM_CONV_ERR",
            PamCode::Ignore => "PAM_IGNORE",
            PamCode::Abort => "PAM_ABORT",
            PamCode::BadItem => "PAM_BAD_ITEM",
            PamCode::Other(_) => "PAM error",
        }
    }
}

impl std::fmt::Display for PamCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PamCode::Other(n) => write!(f, "PAM error {n}"),
            c => f.write_str(c.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for n in 0..=40 {
            assert_eq!(PamCode::from_int(n).as_int(), n);
        }
        for c in [
            PamCode::Success,
            PamCode::ServiceErr,
            PamCode::SystemErr,
            PamCode::BufErr,
            PamCode::PermDenied,
            PamCode::UserUnknown,
            PamCode::SessionErr,
            PamCode::NoModuleData,
            PamCode::ConvErr,
            PamCode::Ignore,
            PamCode::Abort,
            PamCode::BadItem,
        ] {
            assert_eq!(PamCode::from_int(c.as_int()), c);
            assert!(c.to_string().starts_with("PAM_"));
        }
    }

    #[test]
    fn numbers_match_linux_pam() {
        // _pam_types.h
        assert_eq!(PamCode::PermDenied.as_int(), 6);
        assert_eq!(PamCode::SystemErr.as_int(), 4);
        assert_eq!(PamCode::Ignore.as_int(), 25);
        assert_eq!(PamCode::Other(7).to_string(), "PAM error 7");
    }
}
