//! The error type of the crate.

use std::io;

/// Everything that can go wrong when setting up or driving a [`Ring`](crate::Ring).
///
/// Errors of the *operations* themselves (a missing file, a bad descriptor) are not `Error`s:
/// they arrive as negative results in [`Completion`](crate::Completion)s, exactly as
/// io_uring_enter(2) reports them in CQEs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// io_uring cannot be used in this process (see [`Probe::reason`](crate::Probe::reason)).
    #[error("io_uring unavailable: {0}")]
    Unavailable(String),
    /// io_uring_setup(2) failed for the requested configuration.
    #[error("io_uring_setup failed: {0}")]
    Setup(#[source] io::Error),
    /// io_uring_register(2) failed.
    #[error("io_uring_register ({what}) failed: {source}")]
    Register {
        /// What was being registered.
        what: &'static str,
        /// The error of the call.
        #[source]
        source: io::Error,
    },
    /// io_uring_enter(2) failed (not an operation's error: the call itself).
    #[error("io_uring_enter failed: {0}")]
    Enter(#[source] io::Error),
    /// The running kernel's io_uring does not know the opcode (IORING_REGISTER_PROBE).
    #[error("io_uring opcode {name} ({opcode}) is not supported by this kernel")]
    Unsupported {
        /// The opcode (`IORING_OP_*`).
        opcode: u8,
        /// Its name.
        name: &'static str,
    },
    /// The operation needs the ring's buffer region, and the ring has none.
    #[error("the ring has no buffer region")]
    NoRegion,
    /// A buffer range does not lie inside the ring's region.
    #[error("buffer range {start}..{end} outside the region of {size} bytes")]
    Range {
        /// Start of the range.
        start: usize,
        /// End of the range (exclusive).
        end: usize,
        /// Size of the region.
        size: usize,
    },
    /// A buffer range is in use by an operation still in flight.
    #[error("buffer range {start}..{end} is in use by an operation in flight")]
    Busy {
        /// Start of the range.
        start: usize,
        /// End of the range (exclusive).
        end: usize,
    },
    /// A buffer longer than io_uring can describe in one SQE (`u32::MAX` bytes).
    #[error("buffer of {0} bytes is too long for one io_uring operation")]
    TooLong(usize),
    /// A fixed-file slot outside the registered file table.
    #[error("fixed-file slot {slot} outside the table of {slots} slots")]
    Slot {
        /// The slot asked for.
        slot: u32,
        /// Size of the registered table.
        slots: u32,
    },
    /// A measurement ([`failure_breaks_link`](crate::links::failure_breaks_link)) could not
    /// be set up, or the kernel answered what it cannot.
    #[error("measurement failed: {0}")]
    Measure(String),
    /// A path containing a NUL byte.
    #[error("path contains a NUL byte")]
    Path,
    /// A linked chain longer than the submission queue: it could not be submitted whole.
    #[error("linked chain of {len} operations exceeds the submission queue ({capacity} entries)")]
    ChainTooLong {
        /// Length of the chain.
        len: usize,
        /// Capacity of the submission queue.
        capacity: usize,
    },
    /// Reading or writing a calibration file.
    #[error("calibration file {path}: {message}")]
    Calibration {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Other I/O errors (files of the calibration or the baselines).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Result type of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
