//! The safe layer of cosy over io_uring.
//!
//! A compound can run with plain system calls or through io_uring. This crate holds every
//! piece of io_uring that needs `unsafe` — a handful of small blocks, each with a `// SAFETY:`
//! argument — behind a safe API for the ring executor:
//!
//! - [`Probe`]: is io_uring usable (io_uring_setup(2) may fail with `ENOSYS`, or `EPERM` under
//!   seccomp or `kernel.io_uring_disabled`), and which opcodes does the kernel support
//!   (`IORING_REGISTER_PROBE`, io_uring_register(2))? `COSY_NO_URING=1` forces "unavailable".
//!   Tests that need io_uring ask [`skip_without_uring`]: it skips them, saying so, where
//!   io_uring is unavailable, and fails them instead under `COSY_REQUIRE_URING=1`.
//! - [`Ring`]: an io_uring instance (io_uring_setup(2)) with an optional SQPOLL thread, a sparse
//!   registered file table for direct descriptors, and a *region* ([`IoBuf`]) that it owns
//!   and optionally registers as a fixed buffer. Operations ([`Op`]) name buffers as ranges of
//!   the region and files as normal fds or table slots ([`Target`]); paths are copied. The ring
//!   keeps everything an SQE points to alive until its completion is reaped, links operations
//!   (`IOSQE_IO_LINK`, `IOSQE_IO_HARDLINK`), counts io_uring_enter(2) calls, and waits for every
//!   operation in flight before it drops.
//! - [`calibrate`]: what a system call, a ring round trip, a NOP, statx and pread cost here.
//! - [`links`]: which failing requests break a soft link, measured on the running kernel.
//! - [`burst`]: the baselines of the "burst" benchmark (plain loops of system calls, and
//!   hand-written loops on the `io-uring` crate).
//!
//! # Example
//!
//! Open a file into slot 0 of the file table, read it from the slot, close the slot: one linked
//! chain, one io_uring_enter(2). The links are hard: the read is short (the file is smaller
//! than the buffer), which would break a soft link and cancel the close.
//!
//! ```
//! use cosy_uring::{IoBuf, Link, Op, OpenTarget, Ring, Target};
//! use std::os::unix::ffi::OsStrExt;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("hello");
//! std::fs::write(&path, b"hello, ring")?;
//!
//! if cosy_uring::skip_without_uring("the crate's example") {
//!     return Ok(());
//! }
//! let mut ring = Ring::builder().entries(8).files(4).region(IoBuf::zeroed(4096)).build()?;
//! ring.push_chain(
//!     &[
//!         (Op::Openat {
//!             dirfd: libc::AT_FDCWD,
//!             path: path.as_os_str().as_bytes(),
//!             flags: libc::O_RDONLY,
//!             mode: 0,
//!             into: OpenTarget::Slot(0),
//!         }, 1),
//!         (Op::Read { fd: Target::Slot(0), buf: 0..4096, offset: 0 }, 2),
//!         (Op::Close { fd: Target::Slot(0) }, 3),
//!     ],
//!     Link::Hard,
//! )?;
//! let done = ring.run()?;
//! assert_eq!(done.iter().map(|c| (c.user_data, c.result)).collect::<Vec<_>>(),
//!            [(1, 0), (2, 11), (3, 0)]);
//! assert_eq!(ring.buf(0..11)?, b"hello, ring");
//! assert_eq!(ring.stats().enters, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod buf;
pub mod burst;
pub mod calibrate;
pub mod error;
pub mod links;
pub mod probe;
pub mod ring;

pub use buf::{IOBUF_ALIGN, IoBuf};
pub use calibrate::{Calibration, cache_path};
pub use error::{Error, Result};
pub use probe::{
    ENV_NO_URING, ENV_REQUIRE_URING, Features, Probe, opcode_name, skip_without_uring,
    uring_required,
};
pub use ring::{
    Completion, Link, Op, OpenTarget, Ring, RingBuilder, RingStats, STATX_SIZE, Target,
    parse_statx, result_error,
};

/// The `io-uring` crate this layer is built on (for opcode constants such as
/// `io_uring::opcode::Nop::CODE`).
pub use io_uring;
