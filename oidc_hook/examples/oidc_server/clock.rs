//! TEST ONLY: a clock that runs ahead of the real one by the number of
//! seconds written in a file, so that an end-to-end test can move the
//! server's time without sleeping (`--clock-offset-file`). Without the flag
//! the server uses the real clock; nothing outside this example uses this.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use curfew_oidc::{Clock, SystemClock};

/// The real clock plus the offset in `path` (integer seconds; a missing or
/// unreadable file is an offset of zero).
pub struct OffsetFileClock {
    pub path: PathBuf,
}

impl Clock for OffsetFileClock {
    fn now(&self) -> DateTime<Utc> {
        let offset = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0);
        SystemClock.now() + chrono::Duration::seconds(offset)
    }
}
