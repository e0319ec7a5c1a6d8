//! Errors of policy loading and validation.

use std::fmt;
use std::path::PathBuf;

use crate::locate::Position;

/// One problem in a policy file, with where it is and what bound it breaks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The file as the user named it (or `<embedded>`).
    pub file: String,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
    /// Dotted path of the field, e.g. `rules[0].session.inactivity`; empty for
    /// errors about the document as a whole.
    pub path: String,
    /// What is wrong, with the bound that was broken.
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn new(file: &str, at: Position, path: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_owned(),
            line: at.line,
            column: at.column,
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{}: cannot read the policy: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause (part of the message, so not repeated as a source).
        error: std::io::Error,
    },
    /// The file is larger than a policy may be.
    #[error("{}: the policy is {size} bytes; the limit is {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file is not valid UTF-8 text.
    #[error("{}: the policy is not UTF-8 text (byte {offset} is not valid)", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
        /// First invalid byte offset.
        offset: usize,
    },
    /// The file (or its directory) may be changed by someone other than its owner and root.
    #[error(transparent)]
    Insecure(#[from] crate::fsperm::InsecureFile),
    /// The file was read but breaks the schema or a bound: every problem found.
    #[error("{}", join(diagnostics))]
    Invalid {
        /// Every problem, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

fn join(d: &[Diagnostic]) -> String {
    d.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
