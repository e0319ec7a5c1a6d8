//! The embedded store: one SQLite file per host.
//!
//! WAL journal so readers never block the writer, a busy timeout so 200
//! logins at once queue instead of failing with "database is locked", file
//! mode 0600, and the schema version in `PRAGMA user_version`.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::{SessionFilter, Store, StoreError};
use crate::revocation::{Revocation, RevocationKeys, RevocationSet, Target};
use crate::session::{EndReason, Session, SessionKind};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 2;

/// How long a writer waits for another before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

const MIGRATIONS: &[&str] = &[
    // 0 -> 1
    "CREATE TABLE sessions (
        id TEXT PRIMARY KEY NOT NULL,
        kind TEXT NOT NULL,
        user TEXT NOT NULL,
        service TEXT,
        client_id TEXT,
        host TEXT,
        rhost TEXT,
        tty TEXT,
        pid INTEGER,
        audit_session_id INTEGER,
        started_at INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        timeout_secs INTEGER NOT NULL,
        remember_me INTEGER NOT NULL DEFAULT 0,
        terminate_requested_at INTEGER,
        ended_at INTEGER,
        end_reason TEXT
    ) STRICT;
    CREATE INDEX sessions_user ON sessions(user);
    CREATE INDEX sessions_live ON sessions(ended_at, started_at);
    CREATE TABLE revocations (
        id TEXT PRIMARY KEY NOT NULL,
        target_kind TEXT NOT NULL,
        target TEXT NOT NULL,
        not_before INTEGER NOT NULL,
        expires_at INTEGER,
        reason TEXT,
        actor TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX revocations_target ON revocations(target_kind, target);
    CREATE TABLE preferences (
        user TEXT PRIMARY KEY NOT NULL,
        timeout_secs INTEGER NOT NULL
    ) STRICT;",
    // 1 -> 2: the machine id of a PAM session's host (issue 12).
    "ALTER TABLE sessions ADD COLUMN machine_id TEXT;",
];

/// A store in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating, mode 0600) the store at `path` and brings its schema
    /// up to date. Refuses a file that others can write.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let location = path.display().to_string();
        let unavailable = |detail: String| StoreError::Unavailable {
            location: location.clone(),
            detail,
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::from_io(&location, "cannot create it", &e)),
        }
        crate::fsperm::check(path)?;
        // SQLite reports a read-only file or file system only as "unable to
        // open database file"; ask the kernel first so the log names the cause.
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(path) {
            return Err(StoreError::from_io(
                &location,
                "cannot open it for writing",
                &e,
            ));
        }
        let conn = Connection::open(path).map_err(|e| unavailable(e.to_string()))?;
        let store = SqliteStore {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        let resource = match e.sqlite_error_code() {
            Some(ErrorCode::OutOfMemory | ErrorCode::DiskFull | ErrorCode::TooBig) => true,
            // SQLite says only "unable to open"; the errno tells descriptors
            // from a missing file.
            Some(ErrorCode::CannotOpen) => {
                crate::store::is_resource_errno(std::io::Error::last_os_error().raw_os_error())
            }
            _ => false,
        };
        if resource {
            StoreError::Resource {
                location: self.location(),
                detail: e.to_string(),
            }
        } else {
            StoreError::Unavailable {
                location: self.location(),
                detail: e.to_string(),
            }
        }
    }

    fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            location: self.location(),
            detail,
        }
    }

    fn configure(&self) -> Result<(), StoreError> {
        let c = self.lock();
        c.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.err(e))?;
        // Changing the journal mode needs a moment alone with the file; the
        // busy handler does not cover it, so retry while another process
        // holds it (only the very first opens race here).
        let mut tries = 0;
        loop {
            let mode: Result<String, _> = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0));
            match mode {
                Ok(_) => break,
                Err(e) if tries < 300 && is_busy(&e) => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(self.err(e)),
            }
        }
        // NORMAL in WAL mode: a commit survives the process being killed
        // (kill -9 is tested), and only a power cut can lose the last few.
        // That is right for session records (a power cut ends the sessions
        // too) and keeps a login to a few milliseconds; revocations, which
        // must survive anything, are written with FULL (see `durably`).
        c.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.err(e))?;
        c.pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.lock();
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                location: self.location(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql).map_err(|e| self.err(e))?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.lock()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Runs `PRAGMA integrity_check`; `Ok(())` when the file is sound.
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let res: String = self
            .lock()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if res == "ok" {
            Ok(())
        } else {
            Err(self.corrupt(res))
        }
    }

    fn session_from_row(&self, r: &Row<'_>) -> Result<Session, StoreError> {
        let get_err = |e: rusqlite::Error| self.corrupt(e.to_string());
        let kind: String = r.get("kind").map_err(get_err)?;
        let end_reason: Option<String> = r.get("end_reason").map_err(get_err)?;
        Ok(Session {
            id: r.get("id").map_err(get_err)?,
            kind: kind.parse::<SessionKind>().map_err(|e| self.corrupt(e))?,
            user: r.get("user").map_err(get_err)?,
            service: r.get("service").map_err(get_err)?,
            client_id: r.get("client_id").map_err(get_err)?,
            host: r.get("host").map_err(get_err)?,
            machine_id: r.get("machine_id").map_err(get_err)?,
            rhost: r.get("rhost").map_err(get_err)?,
            tty: r.get("tty").map_err(get_err)?,
            pid: r.get("pid").map_err(get_err)?,
            audit_session_id: r.get("audit_session_id").map_err(get_err)?,
            started_at: from_ms(r.get("started_at").map_err(get_err)?),
            last_seen: from_ms(r.get("last_seen").map_err(get_err)?),
            timeout: Duration::from_secs(
                r.get::<_, i64>("timeout_secs").map_err(get_err)?.max(0) as u64
            ),
            remember_me: r.get("remember_me").map_err(get_err)?,
            terminate_requested_at: r
                .get::<_, Option<i64>>("terminate_requested_at")
                .map_err(get_err)?
                .map(from_ms),
            ended_at: r
                .get::<_, Option<i64>>("ended_at")
                .map_err(get_err)?
                .map(from_ms),
            end_reason: end_reason
                .map(|s| s.parse::<EndReason>().map_err(|e| self.corrupt(e)))
                .transpose()?,
        })
    }

    fn revocation_from_row(&self, r: &Row<'_>) -> Result<Revocation, StoreError> {
        let get_err = |e: rusqlite::Error| self.corrupt(e.to_string());
        let kind: String = r.get("target_kind").map_err(get_err)?;
        let value: String = r.get("target").map_err(get_err)?;
        Ok(Revocation {
            id: r.get("id").map_err(get_err)?,
            target: Target::from_parts(&kind, &value)
                .ok_or_else(|| self.corrupt(format!("unknown target kind {kind:?}")))?,
            not_before: from_ms(r.get("not_before").map_err(get_err)?),
            expires_at: r
                .get::<_, Option<i64>>("expires_at")
                .map_err(get_err)?
                .map(from_ms),
            reason: r.get("reason").map_err(get_err)?,
            actor: r.get("actor").map_err(get_err)?,
            created_at: from_ms(r.get("created_at").map_err(get_err)?),
        })
    }

    fn query_sessions(
        &self,
        sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Session>, StoreError> {
        let c = self.lock();
        let mut stmt = c.prepare_cached(sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query(args).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            out.push(self.session_from_row(row)?);
        }
        Ok(out)
    }

    fn query_revocations(
        &self,
        sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Revocation>, StoreError> {
        let c = self.lock();
        let mut stmt = c.prepare_cached(sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query(args).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            out.push(self.revocation_from_row(row)?);
        }
        Ok(out)
    }

    /// Runs `f` with `synchronous=FULL`, so its commit is on disk (WAL
    /// fsynced) before it returns: for revocations.
    fn durably<T>(&self, f: impl FnOnce() -> T) -> Result<T, StoreError> {
        self.lock()
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|e| self.err(e))?;
        let out = f();
        self.lock()
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.err(e))?;
        Ok(out)
    }

    fn execute_raw(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> rusqlite::Result<usize> {
        let c = self.lock();
        let mut stmt = c.prepare_cached(sql)?;
        stmt.execute(args)
    }

    fn execute(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<usize, StoreError> {
        self.execute_raw(sql, args).map_err(|e| self.err(e))
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn create_session(&self, s: &Session) -> Result<(), StoreError> {
        let r = self.execute_raw(
            "INSERT INTO sessions (id, kind, user, service, client_id, host, rhost, tty, pid,
                audit_session_id, started_at, last_seen, timeout_secs, remember_me,
                terminate_requested_at, ended_at, end_reason, machine_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18)",
            params![
                s.id,
                s.kind.as_str(),
                s.user,
                s.service,
                s.client_id,
                s.host,
                s.rhost,
                s.tty,
                s.pid,
                s.audit_session_id,
                ms(s.started_at),
                ms(s.last_seen),
                s.timeout.as_secs() as i64,
                s.remember_me,
                s.terminate_requested_at.map(ms),
                s.ended_at.map(ms),
                s.end_reason.map(|r| r.as_str()),
                s.machine_id,
            ],
        );
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_constraint(&e) => Err(StoreError::Duplicate(s.id.clone())),
            Err(e) => Err(self.err(e)),
        }
    }

    fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        Ok(self
            .query_sessions("SELECT * FROM sessions WHERE id = ?1", params![id])?
            .pop())
    }

    fn list_sessions(&self, f: &SessionFilter) -> Result<Vec<Session>, StoreError> {
        let sessions = self.query_sessions(
            "SELECT * FROM sessions
             WHERE (?1 OR ended_at IS NULL)
               AND (?2 IS NULL OR user = ?2)
               AND (?3 IS NULL OR kind = ?3)
               AND (?4 IS NULL OR host = ?4)
             ORDER BY started_at, id",
            params![f.include_ended, f.user, f.kind.map(|k| k.as_str()), f.host],
        )?;
        Ok(sessions)
    }

    fn touch_session(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self.execute(
            "UPDATE sessions SET last_seen = max(last_seen, ?2) WHERE id = ?1 AND ended_at IS NULL",
            params![id, ms(at)],
        )? > 0)
    }

    fn request_termination(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self.execute(
            "UPDATE sessions SET terminate_requested_at = coalesce(terminate_requested_at, ?2)
             WHERE id = ?1 AND ended_at IS NULL",
            params![id, ms(at)],
        )? > 0)
    }

    fn end_session(
        &self,
        id: &str,
        at: DateTime<Utc>,
        reason: EndReason,
    ) -> Result<bool, StoreError> {
        Ok(self.execute(
            "UPDATE sessions SET ended_at = ?2, end_reason = ?3 WHERE id = ?1
               AND (ended_at IS NULL
                    OR (?3 <> 'logout' AND end_reason = 'logout'
                        AND terminate_requested_at IS NOT NULL
                        AND terminate_requested_at <= ended_at))",
            params![id, ms(at), reason.as_str()],
        )? > 0)
    }

    fn add_revocation(&self, r: &Revocation) -> Result<(), StoreError> {
        let res = self.durably(|| self.execute_raw(
            "INSERT INTO revocations (id, target_kind, target, not_before, expires_at, reason, actor, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                r.id,
                r.target.kind(),
                r.target.value(),
                ms(r.not_before),
                r.expires_at.map(ms),
                r.reason,
                r.actor,
                ms(r.created_at),
            ],
        ))?;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_constraint(&e) => Err(StoreError::Duplicate(r.id.clone())),
            Err(e) => Err(self.err(e)),
        }
    }

    fn remove_revocation(&self, id: &str) -> Result<Option<Revocation>, StoreError> {
        Ok(self
            .durably(|| {
                self.query_revocations(
                    "DELETE FROM revocations WHERE id = ?1 RETURNING *",
                    params![id],
                )
            })??
            .pop())
    }

    fn list_revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.query_revocations(
            "SELECT * FROM revocations ORDER BY created_at, id",
            params![],
        )
    }

    fn revocations_for(&self, k: &RevocationKeys<'_>) -> Result<RevocationSet, StoreError> {
        Ok(self
            .query_revocations(
                "SELECT * FROM revocations
                 WHERE (target_kind = 'session' AND target = ?1)
                    OR (target_kind = 'user' AND target = ?2)
                    OR (target_kind = 'client' AND target = ?3)
                    OR target_kind = 'all'",
                params![k.session, k.user, k.client],
            )?
            .into_iter()
            .collect())
    }

    fn set_timeout_preference(
        &self,
        user: &str,
        timeout: Option<Duration>,
    ) -> Result<(), StoreError> {
        match timeout {
            Some(t) => self.execute(
                "INSERT INTO preferences (user, timeout_secs) VALUES (?1, ?2)
                 ON CONFLICT(user) DO UPDATE SET timeout_secs = excluded.timeout_secs",
                params![user, t.as_secs() as i64],
            )?,
            None => self.execute("DELETE FROM preferences WHERE user = ?1", params![user])?,
        };
        Ok(())
    }

    fn timeout_preference(&self, user: &str) -> Result<Option<Duration>, StoreError> {
        let c = self.lock();
        c.query_row(
            "SELECT timeout_secs FROM preferences WHERE user = ?1",
            params![user],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .map(|v| v.map(|s| Duration::from_secs(s.max(0) as u64)))
        .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    #[test]
    fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let n = std::sync::atomic::AtomicUsize::new(0);
        crate::store::conformance::run(&|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::new(SqliteStore::open(&dir.path().join(format!("s{i}.db"))).unwrap())
        });
    }

    #[test]
    fn file_is_private_versioned_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let s = SqliteStore::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        s.create_session(&crate::store::conformance::session("a", "alice", 0))
            .unwrap();
        drop(s);
        let s = SqliteStore::open(&path).unwrap();
        assert!(s.session("a").unwrap().is_some());
        s.integrity_check().unwrap();
    }

    #[test]
    fn a_version_1_store_gains_the_machine_id_and_keeps_its_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            // A store as the first release wrote it.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO sessions (id, kind, user, host, started_at, last_seen, timeout_secs)
                 VALUES ('old', 'pam', 'alice', 'host1', 0, 0, 300)",
                [],
            )
            .unwrap();
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), 2);
        let old = s.session("old").unwrap().unwrap();
        assert_eq!((old.user.as_str(), old.machine_id), ("alice", None));
        let mut new = crate::store::conformance::session("new", "bob", 5);
        new.machine_id = Some("0123456789abcdef0123456789abcdef".into());
        s.create_session(&new).unwrap();
        assert_eq!(s.session("new").unwrap().unwrap(), new);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn world_writable_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(SqliteStore::open(&path).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::Insecure(_))
        ));
    }

    #[test]
    fn concurrent_writers_from_many_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join("state.db"));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let s = SqliteStore::open(&path).unwrap();
                    for i in 0..25 {
                        let id = format!("t{t}-{i}");
                        s.create_session(&crate::store::conformance::session(&id, "u", i))
                            .unwrap();
                        let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
                        s.end_session(&id, at, EndReason::Logout).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let all = s
            .list_sessions(&SessionFilter {
                include_ended: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.len(), 200);
        assert!(all.iter().all(|x| x.end_reason == Some(EndReason::Logout)));
    }
}
