//! [`Ring`]: a safe io_uring instance for compound executors.
//!
//! # How the ring stays safe
//!
//! An SQE carries raw pointers: a path, a read buffer, a `struct statx`, a `struct open_how`.
//! The kernel may dereference them at any time until the operation's CQE is posted. The ring
//! therefore owns every byte an operation can point to, and keeps it until the CQE is *reaped*:
//!
//! - **Paths and `open_how`** are copied at [`Ring::push`] into a per-operation record (a pool
//!   of boxed records reused across operations), released when the completion is reaped.
//! - **Buffers** are ranges of the ring's *region*, an [`IoBuf`] handed to the ring at
//!   construction. Ranges are bounds-checked at push. The region is lent out by
//!   [`Ring::buf`] / [`Ring::buf_mut`] only for ranges no operation in flight writes (resp.
//!   touches), and it leaves the ring only through [`Ring::take_region`], which first waits for
//!   every operation.
//! - **Descriptors** are plain numbers (a normal fd, or a slot of the registered file table):
//!   a wrong one makes the operation fail with `EBADF`, it cannot corrupt memory.
//! - **Drop** waits for every submitted operation to complete before freeing anything; if the
//!   kernel refuses to let it wait, the memory is leaked rather than freed under the kernel.
//!
//! Operations are *staged* by `push` and handed to the kernel by
//! [`submit_and_wait`](Ring::submit_and_wait), in as few io_uring_enter(2) calls as the
//! submission queue allows, never splitting a linked chain. Staging also makes chains atomic
//! under SQPOLL, whose kernel thread would otherwise see a half-written chain.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::ops::Range;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use io_uring::squeue::Flags as SqeFlags;
use io_uring::types::{DestinationSlot, FsyncFlags, OpenHow};
use io_uring::{EnterFlags, IoUring, opcode, squeue, types};

use crate::buf::IoBuf;
use crate::error::{Error, Result};
use crate::probe::{Probe, opcode_name};

/// Size of a `struct statx`, the bytes a [`Op::Statx`] writes into the region.
pub const STATX_SIZE: usize = std::mem::size_of::<libc::statx>();

/// A descriptor an operation acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A normal file descriptor of the process.
    Fd(RawFd),
    /// A slot of the ring's registered file table (a *direct descriptor*, `IOSQE_FIXED_FILE`).
    Slot(u32),
}

/// Where an open puts the new descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpenTarget {
    /// A normal descriptor: the completion's result is the fd, now owned by the caller.
    Fd,
    /// A slot of the registered file table (`file_index = slot + 1`); the result is 0. A file
    /// already in the slot is replaced (and closed by the kernel).
    Slot(u32),
    /// A free slot chosen by the kernel (`IORING_FILE_INDEX_ALLOC`, Linux 5.19); the result is
    /// the slot's index, or `-ENFILE` when the table is full.
    AutoSlot,
}

/// How an operation is linked to the next one pushed (io_uring_enter(2), `IOSQE_IO_LINK`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Link {
    /// Not linked: the next operation may run before, after or concurrently with this one.
    #[default]
    None,
    /// `IOSQE_IO_LINK`: the next operation starts when this one completes; if this one fails
    /// (negative result, or a short read or write), the rest of the chain completes with
    /// `-ECANCELED`.
    Soft,
    /// `IOSQE_IO_HARDLINK`: like `Soft`, but the chain continues whatever this one's result.
    Hard,
}

/// One operation, as io_uring_enter(2) describes it.
///
/// Paths are bytes without a NUL (copied by the ring). Buffers are ranges of the ring's region.
/// Offsets of `-1` mean "the file position" for `Read`/`Write` (`IORING_FEAT_RW_CUR_POS`) and
/// "no offset" (NULL) for `Splice`. Directory descriptors are normal fds or `libc::AT_FDCWD`:
/// io_uring does not take registered files as directory descriptors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// `IORING_OP_NOP`: completes with 0.
    Nop,
    /// `IORING_OP_OPENAT`, openat(2). Opening into a slot drops `O_CLOEXEC` (direct
    /// descriptors are not inherited anyway, and the kernel refuses the flag with a slot).
    Openat {
        /// Directory of a relative path.
        dirfd: RawFd,
        /// The path.
        path: &'a [u8],
        /// `O_*` flags.
        flags: i32,
        /// Mode of a created file.
        mode: u32,
        /// Normal fd or registered slot.
        into: OpenTarget,
    },
    /// `IORING_OP_OPENAT2`, openat2(2) with `struct open_how { flags, mode, resolve }`.
    Openat2 {
        /// Directory of a relative path.
        dirfd: RawFd,
        /// The path.
        path: &'a [u8],
        /// `O_*` flags.
        flags: u64,
        /// Mode of a created file.
        mode: u64,
        /// `RESOLVE_*` flags.
        resolve: u64,
        /// Normal fd or registered slot.
        into: OpenTarget,
    },
    /// `IORING_OP_CLOSE`, close(2) of a normal fd or of a registered slot (which becomes empty).
    Close {
        /// What to close.
        fd: Target,
    },
    /// `IORING_OP_READ` (`IORING_OP_READ_FIXED` when the region is registered), pread(2) into a
    /// range of the region; `offset == -1` reads at the file position, like read(2).
    Read {
        /// The file.
        fd: Target,
        /// Destination range of the region.
        buf: Range<usize>,
        /// File offset, or `-1`.
        offset: i64,
    },
    /// `IORING_OP_WRITE` (`IORING_OP_WRITE_FIXED` when registered), pwrite(2) from a range of
    /// the region; `offset == -1` writes at the file position, like write(2).
    Write {
        /// The file.
        fd: Target,
        /// Source range of the region.
        buf: Range<usize>,
        /// File offset, or `-1`.
        offset: i64,
    },
    /// `IORING_OP_STATX`, statx(2) into `buf..buf + STATX_SIZE` of the region. For fstat, pass
    /// the fd as `dirfd`, an empty path and `AT_EMPTY_PATH` (a normal fd: statx takes no slot).
    Statx {
        /// Directory of a relative path (or the file itself with `AT_EMPTY_PATH`).
        dirfd: RawFd,
        /// The path.
        path: &'a [u8],
        /// `AT_*` flags.
        flags: i32,
        /// `STATX_*` mask.
        mask: u32,
        /// Offset of the `struct statx` in the region.
        buf: usize,
    },
    /// `IORING_OP_MKDIRAT`, mkdirat(2).
    Mkdirat {
        /// Directory of a relative path.
        dirfd: RawFd,
        /// The path.
        path: &'a [u8],
        /// Mode.
        mode: u32,
    },
    /// `IORING_OP_UNLINKAT`, unlinkat(2).
    Unlinkat {
        /// Directory of a relative path.
        dirfd: RawFd,
        /// The path.
        path: &'a [u8],
        /// `0` or `AT_REMOVEDIR`.
        flags: i32,
    },
    /// `IORING_OP_RENAMEAT`, renameat2(2).
    Renameat {
        /// Directory of a relative old path.
        olddirfd: RawFd,
        /// The old path.
        oldpath: &'a [u8],
        /// Directory of a relative new path.
        newdirfd: RawFd,
        /// The new path.
        newpath: &'a [u8],
        /// `RENAME_*` flags.
        flags: u32,
    },
    /// `IORING_OP_FSYNC`, fsync(2), or fdatasync(2) with `datasync`.
    Fsync {
        /// The file.
        fd: Target,
        /// `IORING_FSYNC_DATASYNC`.
        datasync: bool,
    },
    /// `IORING_OP_FTRUNCATE` (Linux 6.9), ftruncate(2).
    Ftruncate {
        /// The file.
        fd: Target,
        /// New length.
        len: u64,
    },
    /// `IORING_OP_SPLICE`, splice(2); offsets of `-1` pass NULL. One side must be a pipe.
    Splice {
        /// Source.
        fd_in: Target,
        /// Source offset or `-1`.
        off_in: i64,
        /// Destination.
        fd_out: Target,
        /// Destination offset or `-1`.
        off_out: i64,
        /// Bytes to move.
        len: u32,
        /// `SPLICE_F_*` flags.
        flags: u32,
    },
    /// `IORING_OP_ASYNC_CANCEL` with `IORING_ASYNC_CANCEL_ANY` (Linux 5.19): cancel every
    /// operation in flight that can still be cancelled (a pipe read waiting for data, say;
    /// not one a worker thread is already running). Each cancelled operation completes with
    /// `-ECANCELED` (or `-EINTR`); this one with the number cancelled, or `-ENOENT`.
    CancelAll,
}

impl Op<'_> {
    /// The opcode this operation is issued as, given whether the region is registered.
    pub fn opcode(&self, region_registered: bool) -> u8 {
        match self {
            Op::Nop => opcode::Nop::CODE,
            Op::Openat { .. } => opcode::OpenAt::CODE,
            Op::Openat2 { .. } => opcode::OpenAt2::CODE,
            Op::Close { .. } => opcode::Close::CODE,
            Op::Read { .. } if region_registered => opcode::ReadFixed::CODE,
            Op::Read { .. } => opcode::Read::CODE,
            Op::Write { .. } if region_registered => opcode::WriteFixed::CODE,
            Op::Write { .. } => opcode::Write::CODE,
            Op::Statx { .. } => opcode::Statx::CODE,
            Op::Mkdirat { .. } => opcode::MkDirAt::CODE,
            Op::Unlinkat { .. } => opcode::UnlinkAt::CODE,
            Op::Renameat { .. } => opcode::RenameAt::CODE,
            Op::Fsync { .. } => opcode::Fsync::CODE,
            Op::Ftruncate { .. } => opcode::Ftruncate::CODE,
            Op::Splice { .. } => opcode::Splice::CODE,
            Op::CancelAll => opcode::AsyncCancel2::CODE,
        }
    }
}

/// One completion (a CQE of io_uring_enter(2)), matched back to the pushed operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Completion {
    /// The `user_data` given to [`Ring::push`].
    pub user_data: u64,
    /// The result: what the system call would return, or `-errno`.
    pub result: i32,
    /// `IORING_CQE_F_*` flags.
    pub flags: u32,
}

impl From<Completion> for (u64, i32, u32) {
    fn from(c: Completion) -> Self {
        (c.user_data, c.result, c.flags)
    }
}

/// Counters of a ring (see [`Ring::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// io_uring_enter(2) calls actually made (an SQPOLL submission the kernel thread picks up
    /// by itself costs none).
    pub enters: u64,
    /// SQEs handed to the kernel.
    pub submitted: u64,
    /// CQEs reaped.
    pub completed: u64,
}

/// Configuration of a [`Ring`] (io_uring_setup(2), io_uring_register(2)).
#[derive(Debug)]
pub struct RingBuilder {
    entries: u32,
    cq_entries: Option<u32>,
    sqpoll_idle_ms: Option<u32>,
    sqpoll_cpu: Option<u32>,
    files: u32,
    region: Option<IoBuf>,
    register_region: bool,
    coop_taskrun: bool,
    single_issuer: bool,
    probe: Option<Probe>,
    spin: Duration,
}

impl Default for RingBuilder {
    fn default() -> Self {
        RingBuilder {
            entries: 64,
            cq_entries: None,
            sqpoll_idle_ms: None,
            sqpoll_cpu: None,
            files: 0,
            region: None,
            register_region: true,
            coop_taskrun: true,
            single_issuer: false,
            probe: None,
            spin: Duration::ZERO,
        }
    }
}

impl RingBuilder {
    /// Submission queue entries (rounded up to a power of two by the kernel); default 64.
    pub fn entries(mut self, entries: u32) -> Self {
        self.entries = entries;
        self
    }

    /// Completion queue entries (`IORING_SETUP_CQSIZE`); default twice the SQ.
    pub fn cq_entries(mut self, entries: u32) -> Self {
        self.cq_entries = Some(entries);
        self
    }

    /// `IORING_SETUP_SQPOLL`: a kernel thread polls the submission queue and sleeps after
    /// `idle_ms` milliseconds without work. Needs root or `CAP_SYS_NICE` before Linux 5.11.
    pub fn sqpoll(mut self, idle_ms: u32) -> Self {
        self.sqpoll_idle_ms = Some(idle_ms);
        self
    }

    /// `IORING_SETUP_SQ_AFF`: pin the SQPOLL thread to a CPU (only with [`sqpoll`](Self::sqpoll)).
    pub fn sqpoll_cpu(mut self, cpu: u32) -> Self {
        self.sqpoll_cpu = Some(cpu);
        self
    }

    /// A sparse registered file table of `slots` direct descriptors
    /// (`IORING_REGISTER_FILES2` with `IORING_RSRC_REGISTER_SPARSE`); default none.
    pub fn files(mut self, slots: u32) -> Self {
        self.files = slots;
        self
    }

    /// The region: the only memory read, write and statx operations may target.
    pub fn region(mut self, region: IoBuf) -> Self {
        self.region = Some(region);
        self
    }

    /// Whether to register the region as a fixed buffer (`IORING_REGISTER_BUFFERS`) so reads
    /// and writes use `READ_FIXED`/`WRITE_FIXED`; default true. Registration that fails (e.g.
    /// `RLIMIT_MEMLOCK`) leaves the region unregistered, see [`Ring::region_registered`].
    pub fn register_region(mut self, register: bool) -> Self {
        self.register_region = register;
        self
    }

    /// `IORING_SETUP_COOP_TASKRUN` (Linux 5.19, ignored with SQPOLL); default true.
    pub fn coop_taskrun(mut self, on: bool) -> Self {
        self.coop_taskrun = on;
        self
    }

    /// `IORING_SETUP_SINGLE_ISSUER` (Linux 6.0): only the creating thread may submit; default
    /// false.
    pub fn single_issuer(mut self, on: bool) -> Self {
        self.single_issuer = on;
        self
    }

    /// Check opcodes against `probe` instead of [`Probe::detect`]: a probe that reports
    /// io_uring unavailable makes [`build`](Self::build) fail with [`Error::Unavailable`], one
    /// without an opcode ([`Probe::without`]) makes the ring refuse it — as on a kernel that
    /// lacks it.
    pub fn probe(mut self, probe: Probe) -> Self {
        self.probe = Some(probe);
        self
    }

    /// With SQPOLL, how long a wait for completions polls the completion queue before it
    /// enters the kernel to sleep (default zero: enter at once). The kernel thread completes
    /// short operations while the caller polls, so a burst can complete without any
    /// io_uring_enter(2). Ignored without SQPOLL.
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// Create the ring. Fails with [`Error::Unavailable`] when [`Probe::detect`] (or the probe
    /// given to [`probe`](Self::probe)) says io_uring cannot be used (including
    /// `COSY_NO_URING=1`).
    pub fn build(self) -> Result<Ring> {
        let probe = self.probe.clone().unwrap_or_else(Probe::detect);
        if !probe.available() {
            return Err(Error::Unavailable(
                probe.reason().unwrap_or("unknown").to_string(),
            ));
        }
        let sqpoll = self.sqpoll_idle_ms.is_some();
        let make = |optional: bool| {
            let mut b = IoUring::builder();
            if let Some(cq) = self.cq_entries {
                b.setup_cqsize(cq);
            }
            if let Some(idle) = self.sqpoll_idle_ms {
                b.setup_sqpoll(idle);
                if let Some(cpu) = self.sqpoll_cpu {
                    b.setup_sqpoll_cpu(cpu);
                }
            }
            if optional {
                // Submit every SQE even if one fails to prepare (its CQE carries the error).
                b.setup_submit_all();
                if self.coop_taskrun && !sqpoll {
                    b.setup_coop_taskrun();
                }
            }
            if self.single_issuer {
                b.setup_single_issuer();
            }
            b.build(self.entries)
        };
        let ring = match make(true) {
            Ok(ring) => ring,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                make(false).map_err(Error::Setup)?
            }
            Err(e) => return Err(Error::Setup(e)),
        };
        if self.files > 0 {
            let sub = ring.submitter();
            if let Err(e) = sub.register_files_sparse(self.files) {
                // Before Linux 5.19: a table of -1 entries is sparse too.
                if e.raw_os_error() != Some(libc::EINVAL) {
                    return Err(Error::Register {
                        what: "files",
                        source: e,
                    });
                }
                let empty = vec![-1; self.files as usize];
                sub.register_files(&empty)
                    .map_err(|source| Error::Register {
                        what: "files",
                        source,
                    })?;
            }
        }
        let mut region_registered = false;
        if let Some(region) = &self.region
            && self.register_region
            && !region.is_empty()
        {
            let iov = libc::iovec {
                iov_base: region.base().cast(),
                iov_len: region.len(),
            };
            // SAFETY: the iovec describes the region's allocation, which the ring owns from now
            // on and frees only after its buffers are unregistered (`take_region`) or the ring
            // is gone (field order: `ring` drops before `region`), with no operation in flight.
            region_registered = unsafe { ring.submitter().register_buffers(&[iov]) }.is_ok();
        }
        let sq_capacity = ring.params().sq_entries() as usize;
        let cq_capacity = ring.params().cq_entries() as usize;
        Ok(Ring {
            ring,
            region: self.region,
            region_registered,
            register_region: self.register_region,
            files: self.files,
            probe,
            sqpoll,
            sq_capacity,
            cq_capacity,
            records: Records::default(),
            staged: VecDeque::new(),
            open_chain: 0,
            in_kernel: 0,
            ready: VecDeque::new(),
            stats: RingStats::default(),
            spin: if sqpoll { self.spin } else { Duration::ZERO },
            unentered: 0,
        })
    }
}

/// The bit of an SQE's `user_data` marking an operation without a record (its other bits are
/// the caller's `user_data`).
const NO_RECORD: u64 = 1 << 63;

/// What the ring keeps for one operation until its completion is reaped.
struct Record {
    user_data: u64,
    busy: bool,
    /// The operation returns a new normal fd (closed by `Drop` if nobody drained it).
    returns_fd: bool,
    /// Region bytes the operation uses, and whether the kernel writes them.
    range: Option<(Range<usize>, bool)>,
    path: Vec<u8>,
    path2: Vec<u8>,
    how: OpenHow,
}

/// The pool of records; an SQE's `user_data` is its record's index.
#[derive(Default)]
struct Records {
    #[expect(
        clippy::vec_box,
        reason = "SQEs point into records (`how`): they must not move when the pool grows"
    )]
    all: Vec<Box<Record>>,
    free: Vec<u32>,
    /// Busy records with a region range, and those among them the kernel writes.
    ranged: usize,
    writers: usize,
}

impl Records {
    fn acquire(&mut self, user_data: u64) -> u32 {
        let index = self.free.pop().unwrap_or_else(|| {
            self.all.push(Box::new(Record {
                user_data: 0,
                busy: false,
                returns_fd: false,
                range: None,
                path: Vec::new(),
                path2: Vec::new(),
                how: OpenHow::new(),
            }));
            (self.all.len() - 1) as u32
        });
        let r = &mut self.all[index as usize];
        r.user_data = user_data;
        r.busy = true;
        r.returns_fd = false;
        r.range = None;
        index
    }

    fn set_range(&mut self, index: u32, range: Range<usize>, kernel_writes: bool) {
        self.ranged += 1;
        self.writers += usize::from(kernel_writes);
        self.all[index as usize].range = Some((range, kernel_writes));
    }

    /// Release what an SQE's `user_data` names (a record, or nothing for an operation
    /// without one): the caller's `user_data` and whether it returns a descriptor.
    fn release(&mut self, ud: u64) -> (u64, bool) {
        if ud & NO_RECORD != 0 {
            return (ud & !NO_RECORD, false);
        }
        self.finish(ud)
    }

    /// Release a record whose operation the kernel is done with (or never saw).
    fn finish(&mut self, index: u64) -> (u64, bool) {
        let r = &mut self.all[index as usize];
        debug_assert!(r.busy, "completion for an idle record");
        r.busy = false;
        if let Some((_, writes)) = r.range.take() {
            self.ranged -= 1;
            self.writers -= usize::from(writes);
        }
        let out = (r.user_data, r.returns_fd);
        self.free.push(index as u32);
        out
    }

    /// Whether an operation in flight conflicts with lending `range`: one the kernel writes
    /// (for a shared loan), or any (for a unique loan).
    fn conflicts(&self, range: &Range<usize>, unique: bool) -> bool {
        let count = if unique { self.ranged } else { self.writers };
        if count == 0 || range.is_empty() {
            return false;
        }
        self.all.iter().any(|r| match &r.range {
            Some((busy, writes)) if r.busy && (unique || *writes) => {
                !busy.is_empty() && busy.start < range.end && range.start < busy.end
            }
            _ => false,
        })
    }
}

/// An io_uring instance with a registered file table and an owned buffer region.
///
/// See the [module documentation](self) for how it stays safe, and the crate documentation for
/// an example.
pub struct Ring {
    // Field order matters: the ring (and its registrations) goes before the region.
    ring: IoUring,
    region: Option<IoBuf>,
    region_registered: bool,
    register_region: bool,
    files: u32,
    probe: Probe,
    sqpoll: bool,
    sq_capacity: usize,
    cq_capacity: usize,
    records: Records,
    /// Pushed, not yet in the submission queue; with the link to the next.
    staged: VecDeque<(squeue::Entry, Link)>,
    /// Length of the chain still open at the end of `staged` (0: none).
    open_chain: usize,
    /// In the submission queue or in the kernel, CQE not yet reaped.
    in_kernel: usize,
    /// Reaped, not yet drained (with `returns_fd`).
    ready: VecDeque<(Completion, bool)>,
    stats: RingStats,
    /// How long a wait polls the CQ before entering the kernel (SQPOLL only).
    spin: Duration,
    /// Operations pushed straight into the submission queue since the last submit.
    unentered: usize,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("sq", &self.sq_capacity)
            .field("cq", &self.cq_capacity)
            .field("sqpoll", &self.sqpoll)
            .field("files", &self.files)
            .field("region", &self.region.as_ref().map(IoBuf::len))
            .field("region_registered", &self.region_registered)
            .field("staged", &self.staged.len())
            .field("in_kernel", &self.in_kernel)
            .field("ready", &self.ready.len())
            .field("stats", &self.stats)
            .finish()
    }
}

macro_rules! with_target {
    ($target:expr, $t:ident => $body:expr) => {
        match $target {
            Target::Fd(fd) => {
                let $t = types::Fd(fd);
                $body
            }
            Target::Slot(slot) => {
                let $t = types::Fixed(slot);
                $body
            }
        }
    };
}

impl Ring {
    /// A builder with the defaults (64 entries, no SQPOLL, no files, no region).
    pub fn builder() -> RingBuilder {
        RingBuilder::default()
    }

    /// A ring of `entries` SQEs with the other defaults.
    pub fn new(entries: u32) -> Result<Ring> {
        Ring::builder().entries(entries).build()
    }

    /// The probe the ring checks opcodes against.
    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// Submission queue capacity (the longest chain the ring accepts).
    pub fn sq_capacity(&self) -> usize {
        self.sq_capacity
    }

    /// Completion queue capacity.
    pub fn cq_capacity(&self) -> usize {
        self.cq_capacity
    }

    /// Whether the ring was set up with SQPOLL.
    pub fn is_sqpoll(&self) -> bool {
        self.sqpoll
    }

    /// Size of the registered file table.
    pub fn files(&self) -> u32 {
        self.files
    }

    /// Length of the region (0 without one).
    pub fn region_len(&self) -> usize {
        self.region.as_ref().map_or(0, IoBuf::len)
    }

    /// Whether the region is registered (reads and writes use `READ_FIXED`/`WRITE_FIXED`).
    pub fn region_registered(&self) -> bool {
        self.region_registered
    }

    /// Operations pushed and not yet submitted.
    pub fn staged(&self) -> usize {
        self.staged.len() + self.unentered
    }

    /// Operations submitted whose completions are not yet reaped.
    pub fn in_kernel(&self) -> usize {
        self.in_kernel
    }

    /// Operations whose completions are still to come (staged or in the kernel).
    pub fn outstanding(&self) -> usize {
        self.staged.len() + self.in_kernel
    }

    /// The counters.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// Reset the counters to zero.
    pub fn reset_stats(&mut self) {
        self.stats = RingStats::default();
    }

    /// Whether the kernel supports `op` as this ring would issue it (`IORING_REGISTER_PROBE`,
    /// io_uring_register(2)); [`push`](Self::push) refuses unsupported operations with
    /// [`Error::Unsupported`], so an executor can check first and fall back to a system call.
    pub fn supports(&self, op: &Op<'_>) -> bool {
        self.probe.supports(op.opcode(self.region_registered))
    }

    /// Put a normal descriptor into a slot of the file table (io_uring_register(2),
    /// `IORING_REGISTER_FILES_UPDATE`); the ring takes its own reference to the file, the caller
    /// keeps `fd`. An fd of `-1` empties the slot.
    pub fn set_slot(&mut self, slot: u32, fd: RawFd) -> Result<()> {
        self.check_slot(slot)?;
        self.ring
            .submitter()
            .register_files_update(slot, &[fd])
            .map(drop)
            .map_err(|source| Error::Register {
                what: "files update",
                source,
            })
    }

    /// Stage one operation (an SQE of io_uring_enter(2)). It reaches the kernel at the next
    /// [`submit_and_wait`](Self::submit_and_wait); its completion carries `user_data`. (An
    /// operation linked to nothing, pushed when nothing is staged, goes into the submission
    /// queue at once: under SQPOLL the kernel thread may start on it before the submit.)
    ///
    /// `link` links it to the *next* operation pushed. A push that fails stages nothing (an
    /// open chain stays open). Fails without staging if the opcode is not supported, a range
    /// lies outside the region, a slot outside the file table, a path holds a NUL, or the
    /// chain would exceed the submission queue.
    pub fn push(&mut self, op: &Op<'_>, user_data: u64, link: Link) -> Result<()> {
        let chain = self.open_chain + 1;
        self.check_chain(chain)?;
        let entry = self.prepare(op, user_data)?;
        // An operation linked to nothing, with nothing staged before it: straight into the
        // submission queue if it has room (under SQPOLL the kernel thread may start on it at
        // once; a chain must be staged whole first).
        if link == Link::None
            && self.open_chain == 0
            && self.staged.is_empty()
            && (self.probe.features().nodrop || self.in_kernel < self.cq_capacity)
        {
            let mut sq = self.ring.submission();
            if sq.len() < self.sq_capacity {
                // SAFETY: as in `move_to_sq`: the entry points only to memory the ring keeps
                // until its CQE is reaped.
                if unsafe { sq.push(&entry) }.is_ok() {
                    drop(sq);
                    self.in_kernel += 1;
                    self.stats.submitted += 1;
                    self.unentered += 1;
                    return Ok(());
                }
            }
        }
        self.stage(entry, link, chain);
        Ok(())
    }

    /// Stage a chain: every operation but the last is linked to the next with `link`. All or
    /// nothing: if one operation is refused, none is staged.
    pub fn push_chain(&mut self, ops: &[(Op<'_>, u64)], link: Link) -> Result<()> {
        let Some(last) = ops.len().checked_sub(1) else {
            return Ok(());
        };
        self.check_chain(self.open_chain + ops.len())?;
        let mut entries = Vec::with_capacity(ops.len());
        for (op, user_data) in ops {
            match self.prepare(op, *user_data) {
                Ok(e) => entries.push(e),
                Err(e) => {
                    for entry in entries {
                        self.records.release(entry.get_user_data());
                    }
                    return Err(e);
                }
            }
        }
        for (i, entry) in entries.into_iter().enumerate() {
            let chain = self.open_chain + 1;
            self.stage(entry, if i == last { Link::None } else { link }, chain);
        }
        Ok(())
    }

    /// End the chain the last push left open: the next operation pushed starts a chain of
    /// its own (the link flag of the last staged operation is cleared).
    pub fn close_chain(&mut self) {
        if self.open_chain > 0
            && let Some(last) = self.staged.back_mut()
        {
            last.1 = Link::None;
        }
        self.open_chain = 0;
    }

    /// Drop every staged operation (the kernel never saw them; no completions will come).
    /// Returns how many were dropped.
    pub fn cancel_staged(&mut self) -> usize {
        let n = self.staged.len();
        for (entry, _) in std::mem::take(&mut self.staged) {
            self.records.release(entry.get_user_data());
        }
        self.open_chain = 0;
        n
    }

    /// Submit everything staged and return the number submitted (io_uring_enter(2)).
    pub fn submit(&mut self) -> Result<usize> {
        self.submit_and_wait(0)
    }

    /// Submit everything staged and wait until at least `want` completions are ready to
    /// [drain](Self::drain_completions) (`want` is clamped to the completions still possible,
    /// so `usize::MAX` waits for everything). Returns the number of operations submitted.
    ///
    /// A chain left open by the last push is closed first. Staged operations go to the kernel
    /// in as few io_uring_enter(2) calls as the submission queue allows, never splitting a
    /// chain; with SQPOLL an enter is made only to wake the kernel thread or to wait.
    pub fn submit_and_wait(&mut self, want: usize) -> Result<usize> {
        self.submit_and_wait_until(want, None).map(|(n, _)| n)
    }

    /// Like [`submit_and_wait`](Self::submit_and_wait), but stop waiting at `deadline`
    /// (`IORING_ENTER_EXT_ARG` with a timeout, io_uring_enter(2)). Returns the number of
    /// operations submitted and whether the wait finished (`false`: the deadline passed first;
    /// operations may still be in flight, and some may still be staged).
    pub fn submit_and_wait_until(
        &mut self,
        want: usize,
        deadline: Option<Instant>,
    ) -> Result<(usize, bool)> {
        if let Some(last) = self.staged.back_mut() {
            last.1 = Link::None;
        }
        self.open_chain = 0;
        let mut submitted = std::mem::take(&mut self.unentered);
        loop {
            self.reap();
            let n = self.movable();
            if n > 0 {
                self.move_to_sq(n);
                submitted += n;
            }
            if self.staged.is_empty() {
                let want = want.min(self.ready.len() + self.in_kernel);
                let done = self.enter(want, false, deadline)?;
                return Ok((submitted, done));
            }
            let done = if n == 0 {
                // Blocked: by the submission queue (SQPOLL thread behind) or by the completion
                // queue's headroom; make room.
                let front = self.front_chain_len();
                let sq_space = self.sq_capacity - self.ring.submission().len();
                if sq_space >= front {
                    self.enter(self.ready.len() + 1, true, deadline)?
                } else {
                    self.enter(self.ready.len(), true, deadline)?
                }
            } else {
                self.enter(0, true, deadline)?
            };
            if !done {
                return Ok((submitted, false));
            }
        }
    }

    /// Change how long a wait polls before entering the kernel (SQPOLL only; see
    /// [`RingBuilder::spin`]).
    pub fn set_spin(&mut self, spin: Duration) {
        if self.sqpoll {
            self.spin = spin;
        }
    }

    /// Submit everything, wait for every completion, and return them all.
    pub fn run(&mut self) -> Result<Vec<Completion>> {
        self.submit_and_wait(usize::MAX)?;
        Ok(self.completions())
    }

    /// Move the completions posted so far into `out` (in the order the kernel posted them)
    /// and return how many were moved.
    pub fn drain_completions(&mut self, out: &mut Vec<Completion>) -> usize {
        self.reap();
        let n = self.ready.len();
        out.extend(self.ready.drain(..).map(|(c, _)| c));
        n
    }

    /// Hand the completions posted so far to `f` (in the order the kernel posted them) and
    /// return how many there were: [`drain_completions`](Self::drain_completions) without
    /// collecting them, for callers that only file results away.
    pub fn drain_completions_with(&mut self, mut f: impl FnMut(Completion)) -> usize {
        // Completions reaped earlier come first.
        let mut n = self.ready.len();
        for (c, _) in self.ready.drain(..) {
            f(c);
        }
        let mut reaped = 0;
        for cqe in self.ring.completion() {
            let (user_data, _) = self.records.release(cqe.user_data());
            f(Completion {
                user_data,
                result: cqe.result(),
                flags: cqe.flags(),
            });
            reaped += 1;
        }
        self.in_kernel -= reaped;
        self.stats.completed += reaped as u64;
        n += reaped;
        n
    }

    /// The completions posted so far.
    pub fn completions(&mut self) -> Vec<Completion> {
        let mut out = Vec::new();
        self.drain_completions(&mut out);
        out
    }

    /// Borrow `range` of the region. Fails if out of bounds, or if an operation in flight
    /// (pushed, completion not yet reaped) writes into it.
    pub fn buf(&self, range: Range<usize>) -> Result<&[u8]> {
        let region = self.region_for(&range)?;
        if self.records.conflicts(&range, false) {
            return Err(Error::Busy {
                start: range.start,
                end: range.end,
            });
        }
        // SAFETY: the range lies inside the region's allocation (checked); no operation the
        // kernel may still be executing writes to it (checked), and none can be pushed while
        // the returned borrow of `self` lives, since pushing takes `&mut self`.
        Ok(unsafe { std::slice::from_raw_parts(region.base().add(range.start), range.len()) })
    }

    /// Borrow `range` of the region mutably. Fails if out of bounds, or if any operation in
    /// flight reads or writes it.
    pub fn buf_mut(&mut self, range: Range<usize>) -> Result<&mut [u8]> {
        let region = self.region_for(&range)?;
        if self.records.conflicts(&range, true) {
            return Err(Error::Busy {
                start: range.start,
                end: range.end,
            });
        }
        // SAFETY: as in `buf`, and no operation in flight touches the range at all; `&mut self`
        // makes the loan unique.
        Ok(unsafe { std::slice::from_raw_parts_mut(region.base().add(range.start), range.len()) })
    }

    /// Borrow the whole region. Fails without a region, or while an operation the kernel may
    /// write into it is staged or in flight.
    pub fn region(&self) -> Result<&[u8]> {
        let region = self.region.as_ref().ok_or(Error::NoRegion)?;
        if self.records.writers > 0 {
            return Err(Error::Busy {
                start: 0,
                end: region.len(),
            });
        }
        Ok(region.as_slice())
    }

    /// Borrow the whole region mutably. Fails without a region, or while any operation that
    /// reads or writes it is staged or in flight.
    pub fn region_mut(&mut self) -> Result<&mut [u8]> {
        let busy = self.records.ranged > 0;
        let region = self.region.as_mut().ok_or(Error::NoRegion)?;
        if busy {
            return Err(Error::Busy {
                start: 0,
                end: region.len(),
            });
        }
        Ok(region.as_mut_slice())
    }

    /// Replace the region (`None`: no region) and give the old one back: waits for every
    /// operation like [`take_region`](Self::take_region), then registers the new region if
    /// the builder asked for registration (a failed registration leaves it unregistered, see
    /// [`region_registered`](Self::region_registered)).
    pub fn replace_region(&mut self, region: Option<IoBuf>) -> Result<Option<IoBuf>> {
        let old = self.take_region()?;
        if let Some(r) = &region
            && self.register_region
            && !r.is_empty()
        {
            let iov = libc::iovec {
                iov_base: r.base().cast(),
                iov_len: r.len(),
            };
            // SAFETY: as in `RingBuilder::build`: the iovec describes the new region's
            // allocation, which the ring owns from now on and frees only after unregistering
            // it (`take_region`) or after the ring itself is gone (field order), with no
            // operation in flight.
            self.region_registered =
                unsafe { self.ring.submitter().register_buffers(&[iov]) }.is_ok();
        }
        self.region = region;
        Ok(old)
    }

    /// Take the region back: submits what is staged, waits for every operation, unregisters
    /// the buffer (io_uring_register(2), `IORING_UNREGISTER_BUFFERS`). Undrained completions
    /// stay available.
    pub fn take_region(&mut self) -> Result<Option<IoBuf>> {
        self.submit_and_wait(usize::MAX)?;
        if self.region_registered {
            self.ring
                .submitter()
                .unregister_buffers()
                .map_err(|source| Error::Register {
                    what: "buffers (unregister)",
                    source,
                })?;
            self.region_registered = false;
        }
        Ok(self.region.take())
    }

    fn check_slot(&self, slot: u32) -> Result<()> {
        if slot < self.files {
            Ok(())
        } else {
            Err(Error::Slot {
                slot,
                slots: self.files,
            })
        }
    }

    fn check_target(&self, t: Target) -> Result<()> {
        match t {
            Target::Fd(_) => Ok(()),
            Target::Slot(s) => self.check_slot(s),
        }
    }

    fn check_chain(&self, len: usize) -> Result<()> {
        if len > self.sq_capacity {
            return Err(Error::ChainTooLong {
                len,
                capacity: self.sq_capacity,
            });
        }
        Ok(())
    }

    fn region_for(&self, range: &Range<usize>) -> Result<&IoBuf> {
        let region = self.region.as_ref().ok_or(Error::NoRegion)?;
        if !region.contains(range) {
            return Err(Error::Range {
                start: range.start,
                end: range.end,
                size: region.len(),
            });
        }
        Ok(region)
    }

    /// Check a region range for an operation, and give its address and length.
    fn region_ptr(&self, range: &Range<usize>) -> Result<(*mut u8, u32)> {
        let region = self.region_for(range)?;
        let len = u32::try_from(range.len()).map_err(|_| Error::TooLong(range.len()))?;
        Ok((region.base().wrapping_add(range.start), len))
    }

    /// Validate `op`, take a record for it, and build its SQE (not yet staged).
    #[inline(always)]
    fn prepare(&mut self, op: &Op<'_>, user_data: u64) -> Result<squeue::Entry> {
        let code = op.opcode(self.region_registered);
        if !self.probe.supports(code) {
            return Err(Error::Unsupported {
                opcode: code,
                name: opcode_name(code),
            });
        }
        let check_path = |p: &[u8]| {
            if p.contains(&0) {
                Err(Error::Path)
            } else {
                Ok(())
            }
        };
        let check_into = |into: OpenTarget| match into {
            OpenTarget::Slot(s) => self.check_slot(s),
            _ => Ok(()),
        };
        // Validate everything before taking a record.
        let mut region = None;
        match op {
            Op::Nop | Op::CancelAll => {}
            Op::Openat { path, into, .. } | Op::Openat2 { path, into, .. } => {
                check_path(path)?;
                check_into(*into)?;
            }
            Op::Close { fd } | Op::Fsync { fd, .. } | Op::Ftruncate { fd, .. } => {
                self.check_target(*fd)?
            }
            Op::Read { fd, buf, .. } | Op::Write { fd, buf, .. } => {
                self.check_target(*fd)?;
                region = Some((buf.clone(), self.region_ptr(buf)?));
            }
            Op::Statx { path, buf, .. } => {
                check_path(path)?;
                let range = *buf..buf.saturating_add(STATX_SIZE);
                region = Some((range.clone(), self.region_ptr(&range)?));
            }
            Op::Mkdirat { path, .. } | Op::Unlinkat { path, .. } => check_path(path)?,
            Op::Renameat {
                oldpath, newpath, ..
            } => {
                check_path(oldpath)?;
                check_path(newpath)?;
            }
            Op::Splice { fd_in, fd_out, .. } => {
                self.check_target(*fd_in)?;
                self.check_target(*fd_out)?;
            }
        }

        // Operations that point to no memory need no record: their SQE carries the caller's
        // `user_data` itself, marked.
        if user_data & NO_RECORD == 0 {
            match op {
                Op::Nop => return Ok(opcode::Nop::new().build().user_data(user_data | NO_RECORD)),
                Op::Close { fd } => {
                    return Ok(with_target!(*fd, t => opcode::Close::new(t).build())
                        .user_data(user_data | NO_RECORD));
                }
                _ => {}
            }
        }
        let index = self.records.acquire(user_data);
        if let Some((range, _)) = &region {
            let kernel_writes = matches!(op, Op::Read { .. } | Op::Statx { .. });
            self.records.set_range(index, range.clone(), kernel_writes);
        }
        let registered = self.region_registered;
        let rec = &mut *self.records.all[index as usize];
        let set_path = |v: &mut Vec<u8>, p: &[u8]| {
            v.clear();
            v.extend_from_slice(p);
            v.push(0);
        };
        let slot_of = |into: OpenTarget| match into {
            OpenTarget::Fd => None,
            OpenTarget::Slot(s) => DestinationSlot::try_from_slot_target(s).ok(),
            OpenTarget::AutoSlot => Some(DestinationSlot::auto_target()),
        };
        let entry = match op {
            Op::Nop => opcode::Nop::new().build(),
            Op::CancelAll => opcode::AsyncCancel2::new(types::CancelBuilder::any()).build(),
            Op::Openat {
                dirfd,
                path,
                flags,
                mode,
                into,
            } => {
                set_path(&mut rec.path, path);
                rec.returns_fd = *into == OpenTarget::Fd;
                let flags = if *into == OpenTarget::Fd {
                    *flags
                } else {
                    *flags & !libc::O_CLOEXEC
                };
                opcode::OpenAt::new(types::Fd(*dirfd), rec.path.as_ptr().cast())
                    .flags(flags)
                    .mode(*mode)
                    .file_index(slot_of(*into))
                    .build()
            }
            Op::Openat2 {
                dirfd,
                path,
                flags,
                mode,
                resolve,
                into,
            } => {
                set_path(&mut rec.path, path);
                rec.returns_fd = *into == OpenTarget::Fd;
                let flags = if *into == OpenTarget::Fd {
                    *flags
                } else {
                    *flags & !(libc::O_CLOEXEC as u64)
                };
                rec.how = OpenHow::new().flags(flags).mode(*mode).resolve(*resolve);
                opcode::OpenAt2::new(types::Fd(*dirfd), rec.path.as_ptr().cast(), &rec.how)
                    .file_index(slot_of(*into))
                    .build()
            }
            Op::Close { fd } => with_target!(*fd, t => opcode::Close::new(t).build()),
            Op::Read { fd, offset, .. } => {
                let (ptr, len) = region.as_ref().map(|r| r.1).expect("checked");
                if registered {
                    with_target!(*fd, t => opcode::ReadFixed::new(t, ptr, len, 0)
                        .offset(*offset as u64)
                        .build())
                } else {
                    with_target!(*fd, t => opcode::Read::new(t, ptr, len)
                        .offset(*offset as u64)
                        .build())
                }
            }
            Op::Write { fd, offset, .. } => {
                let (ptr, len) = region.as_ref().map(|r| r.1).expect("checked");
                if registered {
                    with_target!(*fd, t => opcode::WriteFixed::new(t, ptr, len, 0)
                        .offset(*offset as u64)
                        .build())
                } else {
                    with_target!(*fd, t => opcode::Write::new(t, ptr, len)
                        .offset(*offset as u64)
                        .build())
                }
            }
            Op::Statx {
                dirfd,
                path,
                flags,
                mask,
                ..
            } => {
                set_path(&mut rec.path, path);
                let (ptr, _) = region.as_ref().map(|r| r.1).expect("checked");
                opcode::Statx::new(types::Fd(*dirfd), rec.path.as_ptr().cast(), ptr.cast())
                    .flags(*flags)
                    .mask(*mask)
                    .build()
            }
            Op::Mkdirat { dirfd, path, mode } => {
                set_path(&mut rec.path, path);
                opcode::MkDirAt::new(types::Fd(*dirfd), rec.path.as_ptr().cast())
                    .mode(*mode)
                    .build()
            }
            Op::Unlinkat { dirfd, path, flags } => {
                set_path(&mut rec.path, path);
                opcode::UnlinkAt::new(types::Fd(*dirfd), rec.path.as_ptr().cast())
                    .flags(*flags)
                    .build()
            }
            Op::Renameat {
                olddirfd,
                oldpath,
                newdirfd,
                newpath,
                flags,
            } => {
                set_path(&mut rec.path, oldpath);
                set_path(&mut rec.path2, newpath);
                opcode::RenameAt::new(
                    types::Fd(*olddirfd),
                    rec.path.as_ptr().cast(),
                    types::Fd(*newdirfd),
                    rec.path2.as_ptr().cast(),
                )
                .flags(*flags)
                .build()
            }
            Op::Fsync { fd, datasync } => {
                let flags = if *datasync {
                    FsyncFlags::DATASYNC
                } else {
                    FsyncFlags::empty()
                };
                with_target!(*fd, t => opcode::Fsync::new(t).flags(flags).build())
            }
            Op::Ftruncate { fd, len } => {
                with_target!(*fd, t => opcode::Ftruncate::new(t, *len).build())
            }
            Op::Splice {
                fd_in,
                off_in,
                fd_out,
                off_out,
                len,
                flags,
            } => with_target!(*fd_in, i => with_target!(*fd_out, o =>
                opcode::Splice::new(i, *off_in, o, *off_out, *len).flags(*flags).build())),
        };
        Ok(entry.user_data(u64::from(index)))
    }

    fn stage(&mut self, entry: squeue::Entry, link: Link, chain: usize) {
        self.open_chain = if link == Link::None { 0 } else { chain };
        self.staged.push_back((entry, link));
    }

    /// Length of the chain at the front of `staged`.
    fn front_chain_len(&self) -> usize {
        self.staged
            .iter()
            .position(|(_, link)| *link == Link::None)
            .map_or(self.staged.len(), |i| i + 1)
    }

    /// How many staged entries can go to the submission queue now: whole chains that fit in
    /// the SQ (and, on kernels that drop overflowing completions, in the CQ's headroom).
    fn movable(&mut self) -> usize {
        let space = self.sq_capacity - self.ring.submission().len();
        // With IORING_FEAT_NODROP (Linux 5.5) the kernel keeps completions that overflow the CQ
        // and hands them over at the next enter: no headroom needed (and none wanted: waiting
        // for room could deadlock on operations that complete only after later ones run).
        let headroom = if self.probe.features().nodrop {
            usize::MAX
        } else {
            self.cq_capacity.saturating_sub(self.in_kernel)
        };
        let limit = space.min(headroom);
        if self.staged.len() <= limit {
            return self.staged.len();
        }
        let mut n = 0;
        for (i, (_, link)) in self.staged.iter().take(limit).enumerate() {
            if *link == Link::None {
                n = i + 1;
            }
        }
        n
    }

    fn move_to_sq(&mut self, n: usize) {
        let mut sq = self.ring.submission();
        for (entry, link) in self.staged.drain(..n) {
            let entry = match link {
                Link::None => entry,
                Link::Soft => entry.flags(SqeFlags::IO_LINK),
                Link::Hard => entry.flags(SqeFlags::IO_HARDLINK),
            };
            // SAFETY: every address in the entry points into memory the ring owns and keeps
            // until the entry's CQE is reaped: the path bytes and `open_how` of its record
            // (boxed, so stable; released only in `reap`, or in `Drop` after the kernel is
            // done) and a bounds-checked range of the region (which leaves the ring only when
            // nothing is in flight). Descriptors and slots are numbers the kernel validates.
            let pushed = unsafe { sq.push(&entry) };
            pushed.expect("space checked by movable");
        }
        // Dropping `sq` publishes the new tail: the whole batch at once.
        drop(sq);
        self.in_kernel += n;
        self.stats.submitted += n as u64;
    }

    /// Move the CQEs the kernel has posted into `ready`, releasing their records.
    fn reap(&mut self) -> usize {
        let mut n = 0;
        for cqe in self.ring.completion() {
            let (user_data, returns_fd) = self.records.release(cqe.user_data());
            self.ready.push_back((
                Completion {
                    user_data,
                    result: cqe.result(),
                    flags: cqe.flags(),
                },
                returns_fd,
            ));
            n += 1;
        }
        self.in_kernel -= n;
        self.stats.completed += n as u64;
        n
    }

    /// Enter the kernel as needed until `want` completions are ready (reaped) and the
    /// submission queue is handed over; with `for_space`, return after one enter (or none)
    /// so the caller can stage more. Returns `false` if `deadline` passed first.
    fn enter(&mut self, want: usize, for_space: bool, deadline: Option<Instant>) -> Result<bool> {
        const GETEVENTS: u32 = EnterFlags::GETEVENTS.bits();
        const SQ_WAKEUP: u32 = EnterFlags::SQ_WAKEUP.bits();
        const SQ_WAIT: u32 = EnterFlags::SQ_WAIT.bits();
        const EXT_ARG: u32 = EnterFlags::EXT_ARG.bits();
        let mut spin_until =
            (!self.spin.is_zero() && !for_space).then(|| Instant::now() + self.spin);
        let mut spins = 0u32;
        loop {
            self.reap();
            let need = want.saturating_sub(self.ready.len());
            let (sq_len, need_wakeup, cq_overflow, taskrun) = {
                let sq = self.ring.submission();
                // `need_wakeup` fences (SeqCst) after our tail store, as the kernel requires.
                (sq.len(), sq.need_wakeup(), sq.cq_overflow(), sq.taskrun())
            };
            let mut flags = 0;
            if need > 0 || cq_overflow || taskrun {
                flags |= GETEVENTS;
            }
            if self.sqpoll {
                if need_wakeup {
                    flags |= SQ_WAKEUP;
                }
                if for_space && sq_len == self.sq_capacity {
                    flags |= SQ_WAIT;
                }
                if flags == 0 {
                    if for_space && sq_len > 0 {
                        // The kernel thread is awake and consuming: let it run.
                        std::thread::yield_now();
                    }
                    return Ok(true);
                }
                // Poll the completion queue while the kernel thread works, as long as it is
                // awake and nothing else needs an enter.
                if let Some(until) = spin_until
                    && flags == GETEVENTS
                    && need > 0
                {
                    if Instant::now() < until && deadline.is_none_or(|d| Instant::now() < d) {
                        // Let the kernel thread have the CPU now and then, in case it shares
                        // this one.
                        spins = spins.wrapping_add(1);
                        if spins.is_multiple_of(64) {
                            std::thread::yield_now();
                        } else {
                            std::hint::spin_loop();
                        }
                        continue;
                    }
                    spin_until = None;
                }
            } else if sq_len == 0 && flags == 0 {
                return Ok(true);
            }
            let min_complete = if flags & GETEVENTS != 0 { need } else { 0 };
            let timeout = match deadline {
                Some(d) if flags & GETEVENTS != 0 && min_complete > 0 => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        if sq_len > 0 {
                            // Hand over what is queued before giving up.
                            self.enter_raw(sq_len, 0, flags & !GETEVENTS, None)?;
                        }
                        self.reap();
                        return Ok(self.ready.len() >= want);
                    }
                    Some(left)
                }
                _ => None,
            };
            let r = match timeout {
                None => self.enter_raw(sq_len, min_complete, flags, None),
                Some(left) => self.enter_raw(sq_len, min_complete, flags | EXT_ARG, Some(left)),
            };
            match r {
                Ok(()) => {}
                Err(e) => match e.raw_os_error() {
                    // Interrupted, or completions to reap first: go round again.
                    Some(libc::EINTR | libc::EAGAIN | libc::EBUSY) => {}
                    // The timeout of the extended argument expired.
                    Some(libc::ETIME) => {
                        self.reap();
                        if self.ready.len() >= want {
                            return Ok(true);
                        }
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            return Ok(false);
                        }
                    }
                    _ => return Err(Error::Enter(e)),
                },
            }
            if for_space {
                self.reap();
                return Ok(true);
            }
        }
    }

    /// One io_uring_enter(2), counted; with a timeout, through `IORING_ENTER_EXT_ARG`.
    fn enter_raw(
        &mut self,
        to_submit: usize,
        min_complete: usize,
        flags: u32,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.stats.enters += 1;
        let r = match timeout {
            None => {
                // SAFETY: no extended argument (`None`): the kernel reads only the rings,
                // whose entries point to memory the ring keeps alive (see `move_to_sq`).
                unsafe {
                    self.ring.submitter().enter::<libc::sigset_t>(
                        to_submit as u32,
                        min_complete as u32,
                        flags,
                        None,
                    )
                }
            }
            Some(left) => {
                let ts = types::Timespec::from(left);
                let args = types::SubmitArgs::new().timespec(&ts);
                // SAFETY: `flags` carries IORING_ENTER_EXT_ARG and the argument is a
                // `struct io_uring_getevents_arg` (`SubmitArgs` is a transparent wrapper) whose
                // timespec outlives the call; the rings' entries point to memory the ring keeps
                // alive (see `move_to_sq`).
                unsafe {
                    self.ring.submitter().enter(
                        to_submit as u32,
                        min_complete as u32,
                        flags,
                        Some(&args),
                    )
                }
            }
        };
        r.map(drop)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Staged entries never reached the kernel.
        self.cancel_staged();
        self.reap();
        if self.in_kernel > 0 && self.probe.supports(opcode::AsyncCancel2::CODE) {
            // Operations that may never complete by themselves (a read of an empty pipe):
            // cancel what can be cancelled, then wait for everything.
            let _ = self.push(&Op::CancelAll, u64::MAX, Link::None);
            let _ = self.submit();
        }
        let mut failures = 0;
        while self.in_kernel > 0 {
            let want = self.ready.len() + self.in_kernel;
            if let Err(e) = self.enter(want, false, None) {
                failures += 1;
                if failures >= 16 {
                    // The kernel may still write into our memory: leak it rather than free it.
                    eprintln!("cosy-uring: cannot wait for operations in flight ({e}); leaking");
                    std::mem::forget(self.region.take());
                    std::mem::forget(std::mem::take(&mut self.records.all));
                    return;
                }
            }
        }
        // Descriptors opened for a caller who never drained them.
        for (c, returns_fd) in self.ready.drain(..) {
            if returns_fd && c.result >= 0 {
                // SAFETY: the kernel returned this descriptor for an open nobody has seen the
                // result of: the ring owns it, closing it cannot affect anyone else's fd.
                drop(unsafe {
                    <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(c.result)
                });
            }
        }
    }
}

/// Read a `struct statx` from the bytes a [`Op::Statx`] wrote (at least [`STATX_SIZE`] bytes).
pub fn parse_statx(bytes: &[u8]) -> Option<libc::statx> {
    if bytes.len() < STATX_SIZE {
        return None;
    }
    // SAFETY: `libc::statx` is plain old data (integers only, every bit pattern valid) and the
    // slice holds at least `size_of::<libc::statx>()` bytes; `read_unaligned` needs no alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<libc::statx>()) })
}

/// An `io::Error` for a negative completion result.
pub fn result_error(result: i32) -> Option<io::Error> {
    (result < 0).then(|| io::Error::from_raw_os_error(-result))
}
