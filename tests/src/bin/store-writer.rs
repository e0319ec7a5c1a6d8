//! A writer for the fault tests: registers sessions in a SQLite store as fast
//! as it can and prints each id on its own line only after the store has
//! acknowledged it, so a test can kill it (-9) and then check that every
//! acknowledged session survived. It opens the store as the PAM module
//! does ([`Lifetime::UntilExit`]: never closed, the WAL checkpointed every
//! few dozen writes), so kills land before, during and after checkpoints.
//!
//! Usage: store-writer STORE PREFIX
#![forbid(unsafe_code)]

use std::io::Write;
use std::time::Duration;

use curfew_policy::store::{Lifetime, SqliteStore};
use curfew_policy::{Session, SessionKind, Store};

#[allow(clippy::disallowed_methods)] // an entry point: stamps records with the real time
fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(prefix)) = (args.next(), args.next()) else {
        eprintln!("usage: store-writer STORE PREFIX");
        std::process::exit(2);
    };
    let store = match SqliteStore::open_for(std::path::Path::new(&path), Lifetime::UntilExit) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("store-writer: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let now = chrono::Utc::now();
        let mut s = match Session::start(SessionKind::Pam, "writer", now, Duration::from_secs(300))
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("store-writer: {e}");
                std::process::exit(1);
            }
        };
        s.id = format!("{prefix}-{i}");
        if let Err(e) = store.create_session(&s) {
            eprintln!("store-writer: {e}");
            std::process::exit(1);
        }
        // Every other session also ends, so updates are in flight too.
        if i % 2 == 1 {
            let _ = store.end_session(
                &format!("{prefix}-{}", i - 1),
                now,
                curfew_policy::EndReason::Logout,
            );
        }
        if writeln!(out, "{}", s.id).and_then(|_| out.flush()).is_err() {
            return;
        }
    }
}
