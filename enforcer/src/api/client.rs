//! The client side, for the `curfew` CLI: one request, one answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::protocol::{ApiError, Request, Response, MAX_REQUEST_BYTES};

/// The largest answer a client reads, in bytes.
pub const MAX_ANSWER_BYTES: u64 = 16 * 1024 * 1024;

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody answers on the socket (no enforcer running, or no API).
    #[error("cannot reach the curfew daemon at {}: {source}", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The conversation broke off.
    #[error("the curfew daemon at {} did not answer: {source}", path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The answer is not an answer of this protocol.
    #[error("the curfew daemon at {} gave an answer this client does not understand: {detail}", path.display())]
    BadAnswer {
        /// The socket.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// Sends `request` to the daemon at `socket` and reads its answer; waits at
/// most `timeout` for each step.
///
/// # Errors
///
/// A [`ClientError`] when the daemon cannot be asked; `Ok(Err(_))` when it
/// refused.
pub fn call(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Result<Value, ApiError>, ClientError> {
    let io = |source| ClientError::Io {
        path: socket.to_owned(),
        source,
    };
    let stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.to_owned(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let line = request.to_line();
    debug_assert!(line.len() <= MAX_REQUEST_BYTES + 1);
    // A daemon that turns the connection away (`busy`) answers and closes
    // at once, maybe before the request is written: its answer is read
    // all the same, and the write's error counts only without one.
    let written = (&stream).write_all(line.as_bytes());
    let mut answer = Vec::new();
    let read = BufReader::new((&stream).take(MAX_ANSWER_BYTES)).read_until(b'\n', &mut answer);
    if answer.is_empty() {
        written.map_err(io)?;
        read.map_err(io)?;
    }
    let response: Response =
        serde_json::from_slice(&answer).map_err(|e| ClientError::BadAnswer {
            path: socket.to_owned(),
            detail: e.to_string(),
        })?;
    Ok(response.into_result())
}
