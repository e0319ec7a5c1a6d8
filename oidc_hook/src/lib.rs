//! curfew-oidc: filled in by the OIDC hook work (issue 5).
#![forbid(unsafe_code)]
