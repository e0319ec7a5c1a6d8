//! Where a command's call runs: on the store itself when this process can
//! open it (root), else through the enforcer's local API, so the same
//! commands work for everyone. Both paths run the same handlers
//! (`curfew_enforce::api::calls`): the rules about other users' sessions and
//! the current session are the same.
//!
//! On the local path, whoever can open the store could change it directly,
//! so the caller is treated as an administrator; changes are audited with
//! the user behind sudo, and the enforcer is woken at once through the
//! socket (`wake`), so a revoke or terminate takes effect without waiting
//! for its next pass.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use curfew_enforce::api::calls::{self, Caller, Env, Listing};
use curfew_enforce::api::client::{self, ClientError};
use curfew_enforce::api::protocol::{ApiError, ListArgs, Request};
use curfew_policy::{host, Policy, Store};
use serde_json::Value;

use crate::context::{self, Context};

/// How long the CLI waits for the daemon at each step.
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the CLI waits for the daemon to take a wake-up.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a call was not done.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The handler or the daemon refused: the message says what and why.
    #[error("{0}")]
    Refused(ApiError),
    /// Neither the store nor the daemon could be reached.
    #[error("{0}")]
    Unreachable(String),
}

/// Where calls run.
pub enum Service {
    /// On the store, with this policy, as this caller.
    Local {
        /// The policy.
        policy: Box<Policy>,
        /// The store.
        store: Box<dyn Store>,
        /// This process.
        caller: Caller,
    },
    /// Through the daemon's socket.
    Remote {
        /// The socket.
        socket: PathBuf,
        /// Why the store itself could not be used.
        local_error: String,
    },
}

impl Service {
    /// The store when this process can open it; the daemon when an
    /// ordinary user cannot (root gets the store's error as it is).
    pub fn open(ctx: &Context) -> Result<Service> {
        let is_root = nix::unistd::geteuid().is_root();
        let policy = match ctx.policy() {
            Ok(p) => p,
            Err(e) if !is_root => {
                // The policy's `api.socket` cannot come from a policy we
                // cannot read: $CURFEW_SOCKET, else the default.
                return Ok(Service::Remote {
                    socket: socket_without_policy(),
                    local_error: unreadable_policy(ctx.policy_path().as_deref(), &e),
                });
            }
            Err(e) => return Err(e),
        };
        match ctx.store(&policy) {
            Ok(store) => Ok(Service::Local {
                caller: local_caller(),
                policy: Box::new(policy),
                store,
            }),
            Err(e) if !is_root => Ok(Service::Remote {
                socket: policy.api.socket.clone(),
                local_error: format!("you cannot use the store yourself ({e:#})"),
            }),
            Err(e) => Err(e),
        }
    }

    /// `sessions.list`, typed: on the store without a JSON round trip (a
    /// listing of 100,000 sessions would spend its time there), or through
    /// the daemon.
    pub fn sessions_list(&self, ctx: &Context, args: ListArgs) -> Result<Listing, CallError> {
        match self {
            Service::Local {
                policy,
                store,
                caller,
            } => with_local_env(ctx, policy, store.as_ref(), |env| {
                calls::sessions_list(env, caller, &args).map_err(CallError::Refused)
            }),
            Service::Remote { .. } => {
                let v = self.call(ctx, &Request::SessionsList(args))?;
                serde_json::from_value(v).map_err(|e| {
                    CallError::Unreachable(format!("the enforcer's answer to sessions.list: {e}"))
                })
            }
        }
    }

    /// Runs `request`.
    pub fn call(&self, ctx: &Context, request: &Request) -> Result<Value, CallError> {
        match self {
            Service::Local {
                policy,
                store,
                caller,
            } => with_local_env(ctx, policy, store.as_ref(), |env| {
                let handled = calls::handle(env, caller, request);
                for event in &handled.notes {
                    ctx.audit(policy, env.now, event);
                }
                if handled.wake && policy.api.enabled {
                    // Best effort: no daemon (or no API) means the
                    // enforcer's next pass acts instead.
                    let _ = client::call(&policy.api.socket, &Request::Wake, WAKE_TIMEOUT);
                }
                handled.result.map_err(CallError::Refused)
            }),
            Service::Remote {
                socket,
                local_error,
            } => match client::call(socket, request, API_TIMEOUT) {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(CallError::Refused(e)),
                Err(e @ ClientError::Connect { .. }) => Err(CallError::Unreachable(format!(
                    "{local_error}; {e}; \
                     the curfew enforcer serves ordinary users: ask an administrator to run it"
                ))),
                Err(e) => Err(CallError::Unreachable(e.to_string())),
            },
        }
    }
}

/// Runs `f` with the calls' environment on this process's own store: this
/// host's name, the PAM module's account resolution, the context's `now`.
fn with_local_env<T>(
    ctx: &Context,
    policy: &Policy,
    store: &dyn Store,
    f: impl FnOnce(&Env<'_>) -> T,
) -> T {
    let here = context::hostname();
    f(&Env {
        store,
        policy,
        host: here.as_deref(),
        resolve: &host::resolve,
        now: ctx.now(),
    })
}

/// The environment variable naming the daemon's socket when the policy
/// (whose `api.socket` it would be) cannot be read.
pub const SOCKET_ENV: &str = "CURFEW_SOCKET";

/// `$CURFEW_SOCKET`, else the default socket.
fn socket_without_policy() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| curfew_policy::policy::DEFAULT_API_SOCKET.into())
}

/// Why the policy could not be used, in our terms: a file that is not
/// readable by this user (SECURITY.md recommends 0600/0640 for a policy
/// holding a store password) says so, not "Permission denied (os error 13)".
fn unreadable_policy(path: Option<&std::path::Path>, e: &anyhow::Error) -> String {
    match path {
        Some(p)
            if nix::unistd::access(p, nix::unistd::AccessFlags::R_OK)
                == Err(nix::errno::Errno::EACCES) =>
        {
            format!(
                "cannot read the policy {}: not readable by you",
                p.display()
            )
        }
        Some(p) => format!("cannot use the policy {}: {e:#}", p.display()),
        None => format!("cannot use the policy: {e:#}"),
    }
}

/// This process as a caller of the local handlers: an administrator (it
/// can open the store), in its own audit session; the person is the login
/// user (the kernel's login uid, which `sudo` and `su` keep: the one who
/// typed them), else the user `sudo` names (`SUDO_USER`) when it is the
/// account of `SUDO_UID`. The environment alone names nobody: it would let
/// an administrator pass an end off as the user's own doing, or put
/// terminal controls into the user's closing notice.
fn local_caller() -> Caller {
    let uid = nix::unistd::getuid().as_raw();
    let pid = std::process::id();
    let login_uid = host::login_uid(pid);
    let sudo_user = || {
        let name = std::env::var("SUDO_USER").ok()?;
        let sudo_uid: u32 = std::env::var("SUDO_UID").ok()?.parse().ok()?;
        let account = host::account_of_uid(sudo_uid).ok()?;
        (account.name == name).then_some(name)
    };
    Caller {
        uid,
        user: context::current_user(),
        pid: Some(pid),
        login_uid,
        login_user: login_uid
            .and_then(|u| host::account_of_uid(u).ok())
            .map(|a| a.name)
            .or_else(sudo_user),
        audit_session: host::audit_session_id(None),
        admin: true,
    }
}
