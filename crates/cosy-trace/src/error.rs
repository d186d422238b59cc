//! Errors of tracing.

/// Why a trace could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command to run was not found or cannot be executed.
    #[error("{program}: {reason}")]
    Program {
        /// The program as given.
        program: String,
        /// Why it cannot run.
        reason: String,
    },
    /// No process has the PID given to attach to.
    #[error("no process with PID {0}")]
    NoProcess(i32),
    /// The kernel refused to let us trace (perf_event_open(2) or ptrace(2) said `EPERM` or
    /// `EACCES`).
    #[error("no permission to trace: {0}")]
    Permission(String),
    /// The chosen mechanism cannot work on this machine.
    #[error("{0}")]
    Unavailable(String),
    /// A system call of the tracer failed.
    #[error("{what}: {source}")]
    Sys {
        /// What the tracer was doing.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl Error {
    /// A failed call of the tracer, with what it was doing.
    pub(crate) fn sys(what: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Sys {
            what: what.into(),
            source: source.into(),
        }
    }

    /// The last OS error, with what the tracer was doing.
    pub(crate) fn last(what: impl Into<String>) -> Self {
        Self::sys(what, std::io::Error::last_os_error())
    }
}

/// The result of tracing.
pub type Result<T> = std::result::Result<T, Error>;
