//! Who is at the other end of a connection: the kernel's peer credentials
//! (SO_PEERCRED: uid and pid as of `connect(2)`), and from /proc, the
//! process's login uid and audit session (through `curfew_policy::host`).
//!
//! The pid is only a hint: the process may have exited and its pid been
//! reused. Authorization uses the uid alone, which the kernel fixed at
//! connect time. The pid's facts (login uid, audit session) are used only
//! when the process still runs as that uid (its /proc directory belongs to
//! it) after they were read; otherwise they are dropped, so a reused pid
//! of another user never lends its session to the caller.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;

use curfew_policy::host;

/// The kernel's word on the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Effective uid at connect time.
    pub uid: u32,
    /// Process id at connect time (0 when the kernel does not know it).
    pub pid: u32,
}

/// Reads SO_PEERCRED.
///
/// # Errors
///
/// When the kernel does not answer (not a unix socket).
pub fn peer_cred(stream: &UnixStream) -> std::io::Result<PeerCred> {
    let cred = rustix::net::sockopt::socket_peercred(stream)?;
    Ok(PeerCred {
        uid: cred.uid.as_raw(),
        pid: u32::try_from(cred.pid.as_raw_nonzero().get()).unwrap_or(0),
    })
}

/// The facts /proc gives about the peer's process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcFacts {
    /// `/proc/PID/loginuid`.
    pub login_uid: Option<u32>,
    /// `/proc/PID/sessionid`.
    pub audit_session: Option<u32>,
    /// Whether the pid still belonged to the peer's uid after the read.
    pub verified: bool,
}

/// Reads the login uid and audit session of `cred.pid`, then checks that
/// the process still belongs to `cred.uid`.
pub fn proc_facts(cred: PeerCred) -> ProcFacts {
    if cred.pid == 0 {
        return ProcFacts::default();
    }
    let login_uid = host::login_uid(cred.pid);
    let audit_session = host::audit_session_id(Some(cred.pid));
    let owner = std::fs::metadata(format!("/proc/{}", cred.pid)).map(|m| m.uid());
    if owner.ok() != Some(cred.uid) {
        return ProcFacts::default();
    }
    ProcFacts {
        login_uid,
        audit_session,
        verified: true,
    }
}
