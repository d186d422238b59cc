//! Sessions: the asynchronous interface of safe asynchronous system calls — *send* a call and
//! get a handle at once, *get* its result later, *barrier* to wait for everything sent
//! (docs/session.md).
//!
//! A [`Session`] issues calls one by one, for code that decides what to do next as it goes,
//! on the executor of its [`Backend`]: on `direct` each call runs when it is sent; on `ring`
//! calls are queued on the session's io_uring and submitted together at a [`Session::barrier`]
//! or a [`Session::get`], as few `io_uring_enter` calls as their dependencies allow. The
//! results are the same on both.
//!
//! - [`Call`]s are built with one function per system call (`Call::openat`, `Call::read`, …),
//!   each documented with the man page of the call it issues.
//! - [`Session::send`] returns a typed handle at once: a [`ValueHandle`] (an `i64` result) or
//!   an [`FdHandle`] (a descriptor the session owns). Handles are operands of later sends
//!   without waiting: the descriptor of a queued `openat` feeds a queued `read` (on the ring,
//!   through a direct descriptor: both go in one submission).
//! - Buffers belong to the session ([`Session::buffer`]); their bytes are read with
//!   [`Session::bytes`] (which waits for what is in flight) and filled with
//!   [`Session::bytes_mut`].
//! - A call that failed makes every call using its handle fail with an error naming it
//!   ([`Reason::Operand`]); a handle of another session is refused ([`SessionError::Foreign`],
//!   [`Reason::Foreign`]): every handle carries its session's identity.
//! - [`Session::run`] runs a whole verified compound on the session's backend.
//! - Dropping a session waits for what is in flight and closes every descriptor it opened.
//!
//! ```
//! use cosy_exec::session::{Call, Fd, Session};
//! use cosy_exec::Backend;
//! use cosy_model::Policy;
//! use cosy_model::flags::{Mode, OFlags};
//!
//! let path = std::env::temp_dir().join(format!("cosy-session-doc-{}", std::process::id()));
//! std::fs::write(&path, "hello").unwrap();
//! let mut s = Session::new(Backend::Direct, &Policy::trusted()).unwrap();
//! let buf = s.buffer(64).unwrap();
//! let fd = s.send(Call::openat(Fd::Cwd, &path, OFlags::RDONLY, Mode::empty())).unwrap();
//! let n = s.send(Call::read(fd, buf)).unwrap();
//! s.send(Call::close(fd)).unwrap();
//! assert_eq!(s.get(n), Ok(5));
//! assert_eq!(s.bytes(buf).unwrap()[..5], *b"hello");
//! std::fs::remove_file(&path).unwrap();
//! ```
//!
//! How it maps onto the interpreter core: a session owns a [`Compound`] that grows by one
//! `Op::Sys` per send — each handle is a register or an fd slot of it, each path a data
//! constant, each buffer a buffer of its arena — and one interpreter lane (in `continue`
//! mode: a failure is a result, not the end) that it steps over each operation appended. The
//! issuers, the confinement to the policy root and the results are the executors' own.

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use cosy_model::{
    Arg, ArgKind, BufId, BufRange, Buffer, Compound, ErrorMode, FdRef, FdSlot, Op, PathRef, Policy,
    Reg, RetKind, Sys, Value,
};
use cosy_uring::{IoBuf, Probe, Ring};
use cosy_verify::Verified;

use crate::arena::{Dirty, Layout};
use crate::clock::Deadline;
use crate::confine::Root;
use crate::direct::DirectIssuer;
use crate::funcs::Functions;
use crate::interp::{Cx, Issuer, Lane, Run, maps::Threads};
use crate::outcome::{Error, Outcome, Stats, errno_text};
use crate::plan::Plan;
use crate::ring::issuer::{Parked, RingIssuer, builds};
use crate::ring::plan::{Caps, RingPlan, Route, ring_capable};
use crate::{Backend, RingOptions, RunOptions};

/// Operations a session's compound holds before it is started afresh (once they have all
/// completed).
const COMPACT_AT: usize = 1024;

/// The next session's identity (0 is never used).
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// How a session is set up, besides its backend and policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    /// Bytes of arena for the session's buffers, fixed for its life (on the ring it is the
    /// ring's registered region). At most the policy's `arena_bytes`. Default 1 MiB.
    pub arena: usize,
    /// Submission queue entries of the session's ring. Default 256.
    pub entries: u32,
    /// Slots of the ring's file table: direct descriptors open at once. Default 256.
    pub files: u32,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            arena: 1 << 20,
            entries: 256,
            files: 256,
        }
    }
}

/// Why a session could not be set up, or refused a send.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Sessions run on `direct` or `ring`.
    #[error("a session runs on `direct` or `ring`, not on `{0}`")]
    Backend(Backend),
    /// The root, the ring or the arena could not be set up.
    #[error("cannot set the session up: {0}")]
    Setup(String),
    /// A handle or buffer of another session.
    #[error("{0}: a handle of another session")]
    Foreign(&'static str),
    /// The policy does not allow the call.
    #[error("{0} is not allowed by the session's policy")]
    NotAllowed(&'static str),
    /// The policy does not allow the standard streams, or the number is not one.
    #[error("{call}: descriptor {fd} is not a standard stream the session's policy allows")]
    StdStream {
        /// The call.
        call: &'static str,
        /// The stream asked for.
        fd: u8,
    },
    /// A limit of the policy or of the session would be exceeded.
    #[error("{0}")]
    Limit(String),
    /// A buffer does not fit in the session's arena.
    #[error("the session's arena: {0}")]
    Arena(String),
    /// A range outside its buffer.
    #[error("{call}: the range [{start}..{end}] is not within its buffer of {size} bytes")]
    Range {
        /// The call.
        call: &'static str,
        /// First byte asked for.
        start: i64,
        /// One past the last.
        end: i64,
        /// The buffer's size.
        size: u32,
    },
    /// A path holding a NUL byte.
    #[error("{0}: the path holds a NUL byte")]
    Path(&'static str),
    /// A descriptor that may be a direct descriptor of the ring, where only a descriptor of
    /// the process will do.
    #[error(
        "{call}: operand {operand} needs a descriptor of the process, but the descriptor of call \
         {opened_by} may be a direct descriptor of the ring (open it with `.plain()`, \
         O_DIRECTORY or O_PATH)"
    )]
    NeedsPlain {
        /// The call.
        call: &'static str,
        /// The operand's index.
        operand: usize,
        /// The index of the open that made the descriptor.
        opened_by: u32,
    },
}

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The kernel's error.
    Errno(i32),
    /// Refused before it was issued: a range outside its buffer, the policy's fuel or time
    /// limit.
    Stopped(String),
    /// An operand is the handle of a call that failed (the first failure it depends on, never
    /// itself an `Operand`).
    Operand {
        /// The failed call.
        call: Sys,
        /// Its index in the session (the order of sends, from 0).
        index: u32,
        /// Why it failed.
        cause: Box<Reason>,
    },
    /// The handle is of another session.
    Foreign,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Errno(e) => f.write_str(&errno_text(*e)),
            Reason::Stopped(m) => f.write_str(m),
            Reason::Operand { call, index, cause } => write!(
                f,
                "its operand, call {index} ({}), failed: {cause}",
                call.name()
            ),
            Reason::Foreign => f.write_str("the handle is of another session"),
        }
    }
}

/// A call that failed: which, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("call {index} ({}): {reason}", call.name())]
pub struct CallFailed {
    /// The call.
    pub call: Sys,
    /// Its index in the session (the order of sends, from 0).
    pub index: u32,
    /// Why.
    pub reason: Reason,
    /// What the call itself returned, if it was issued: `-errno` (for a call with a failed
    /// operand, typically `-EBADF` for its empty descriptor), or a value.
    pub result: Option<i64>,
}

impl CallFailed {
    /// The errno of the failure (of the failed operand for [`Reason::Operand`]).
    pub fn errno(&self) -> Option<i32> {
        let mut r = &self.reason;
        loop {
            match r {
                Reason::Errno(e) => return Some(*e),
                Reason::Operand { cause, .. } => r = cause,
                Reason::Stopped(_) | Reason::Foreign => return None,
            }
        }
    }
}

mod calls;
mod handles;
mod replay;
mod send;

pub use calls::Call;
use calls::Operand;
pub use handles::{AnyHandle, Buf, BufHandle, Fd, FdHandle, Handle, Val, ValueHandle};
pub use replay::{Recorded, ReplayError, record};

/// One call sent.
#[derive(Debug)]
struct Entry {
    call: Sys,
    /// The register of a value result.
    reg: Option<Reg>,
    /// The slot of a descriptor result, and whether it is plain (a descriptor of the process
    /// on every backend).
    slot: Option<(FdSlot, bool)>,
    /// The entries whose handles are operands.
    deps: Vec<u32>,
    /// The descriptor an open returned (from the trace).
    fd: Option<i64>,
    /// Its result, once known.
    result: Option<Result<i64, Reason>>,
    /// What its register held once it completed (the operand value of later calls once the
    /// register is compacted away).
    regval: i64,
    /// The first failed call it depends on (itself excluded).
    failed_dep: Option<u32>,
    /// A close of this descriptor was sent.
    closed: bool,
}

/// The session's ring and what the ring issuer keeps between steps.
struct RingExec {
    ring: Ring,
    plan: RingPlan,
    parked: Option<Parked>,
    probe: Probe,
    confined: bool,
}

impl RingExec {
    fn caps(&self) -> Caps<'_> {
        Caps {
            probe: self.probe.available().then_some(&self.probe),
            registered: self.ring.region_registered(),
            files: self.ring.files() > 0,
            confined: self.confined,
        }
    }
}

enum Exec {
    Direct(DirectIssuer),
    Ring(Box<RingExec>),
}

/// A session: calls sent one by one, results got later (see the module documentation).
///
/// One session per thread at a time; a session may move to another thread (it is `Send`).
pub struct Session {
    id: u64,
    backend: Backend,
    policy: Policy,
    funcs: Functions,
    plan: Plan,
    c: Compound,
    layout: Layout,
    capacity: usize,
    dirty: Dirty,
    lane: Lane,
    exec: Exec,
    entries: Vec<Entry>,
    /// Operations `..settled` have their results in `entries`.
    settled: usize,
    /// The entry of the compound's first operation: the calls before it were compacted away
    /// ([`Session::compact`]).
    base: usize,
    /// Opens sent and no close of them sent, failed ones included: the count does not depend
    /// on when calls complete, so the policy's `open_fds` refuses the same sends on every
    /// backend.
    open: u32,
}

// A session moves between threads.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Session>();
};

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("backend", &self.backend)
            .field("calls", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session on `backend` (`Direct` or `Ring`) under `policy`, with the default
    /// [`SessionOptions`]. On `Ring` without io_uring (or without a ring for the session),
    /// calls are plain system calls, as the ring executor's fallback.
    pub fn new(backend: Backend, policy: &Policy) -> Result<Session, SessionError> {
        Session::with_options(backend, policy, SessionOptions::default())
    }

    /// A session with `options`.
    pub fn with_options(
        backend: Backend,
        policy: &Policy,
        options: SessionOptions,
    ) -> Result<Session, SessionError> {
        if backend == Backend::Auto {
            return Err(SessionError::Backend(backend));
        }
        let root = match &policy.root {
            None => None,
            Some(p) => Some(Root::open(p).map_err(|e| {
                SessionError::Setup(format!("cannot open the policy root {}: {e}", p.display()))
            })?),
        };
        let limit = usize::try_from(policy.arena_bytes).unwrap_or(usize::MAX);
        let capacity = options
            .arena
            .min(limit)
            .checked_next_multiple_of(4096)
            .ok_or_else(|| SessionError::Setup("arena too large".into()))?
            .max(4096);
        let c = Compound {
            mode: ErrorMode::Continue,
            ..Compound::default()
        };
        let exec = match backend {
            Backend::Ring => match ring_exec(&c, root, capacity, options)? {
                Ok(r) => Exec::Ring(Box::new(r)),
                Err(root) => Exec::Direct(direct_issuer(root, capacity)?),
            },
            _ => Exec::Direct(direct_issuer(root, capacity)?),
        };
        let layout = Layout::default();
        let dirty = Dirty::new(&layout);
        let mut lane = Lane::new(&c, 0, policy.fuel, true);
        lane.limits = crate::interp::limits::Limits::of(policy);
        Ok(Session {
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            backend,
            policy: policy.clone(),
            funcs: Functions::new(),
            plan: Plan::default(),
            c,
            layout,
            capacity,
            dirty,
            lane,
            exec,
            entries: Vec::new(),
            settled: 0,
            base: 0,
            open: 0,
        })
    }

    /// The session's backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether calls go through an io_uring (a `Ring` session with a ring).
    pub fn on_ring(&self) -> bool {
        matches!(self.exec, Exec::Ring(_))
    }

    /// The statistics of the calls made so far: calls by name, system calls, ring operations,
    /// `io_uring_enter` calls (`ring_enters`), calls issued directly on the ring
    /// (`fallbacks`).
    pub fn stats(&self) -> Stats {
        let mut s = self.lane.rec.stats();
        s.ops = self.lane.used;
        s
    }

    /// A zeroed buffer of `size` bytes in the session's arena.
    pub fn buffer(&mut self, size: usize) -> Result<BufHandle, SessionError> {
        let n = self.c.buffers.len();
        let size32 = u32::try_from(size)
            .map_err(|_| SessionError::Arena(format!("a buffer of {size} bytes is too large")))?;
        if n >= usize::from(u16::MAX) {
            return Err(SessionError::Limit(format!(
                "a session has at most {} buffers",
                u16::MAX
            )));
        }
        self.c.buffers.push(Buffer {
            name: format!("b{n}"),
            size: size32,
            local: false,
        });
        let layout = Layout::new(&self.c.buffers, 1, self.policy.arena_bytes)
            .map_err(|e| e.to_string())
            .and_then(|l| {
                if l.len() > self.capacity {
                    Err(format!(
                        "{} bytes of buffers do not fit in its {} bytes",
                        l.len(),
                        self.capacity
                    ))
                } else {
                    Ok(l)
                }
            });
        match layout {
            Ok(l) => {
                self.dirty = Dirty::new(&l);
                self.layout = l;
                Ok(BufHandle {
                    session: self.id,
                    buf: BufId(n as u16),
                    size: size32,
                })
            }
            Err(m) => {
                self.c.buffers.pop();
                Err(SessionError::Arena(m))
            }
        }
    }

    /// The bytes of `buf`, after waiting for every call sent (a barrier).
    pub fn bytes(&mut self, buf: BufHandle) -> Result<&[u8], SessionError> {
        self.check_buf(buf, "bytes")?;
        self.barrier();
        let span = self
            .layout
            .whole(buf.buf, 0)
            .map_err(|e| SessionError::Arena(format!("{e:?}")))?;
        let found = match &self.exec {
            Exec::Direct(d) => d.bytes(span),
            Exec::Ring(r) => r.ring.buf(span.range()).ok(),
        };
        found.ok_or_else(|| SessionError::Arena("the buffer is in flight".into()))
    }

    /// The bytes of `buf`, writable (to fill what a later write sends), after waiting for
    /// every call sent (a barrier).
    pub fn bytes_mut(&mut self, buf: BufHandle) -> Result<&mut [u8], SessionError> {
        self.check_buf(buf, "bytes_mut")?;
        self.barrier();
        let span = self
            .layout
            .whole(buf.buf, 0)
            .map_err(|e| SessionError::Arena(format!("{e:?}")))?;
        let found = match &mut self.exec {
            Exec::Direct(d) => d.bytes_mut(span),
            Exec::Ring(r) => r.ring.buf_mut(span.range()).ok(),
        };
        found.ok_or_else(|| SessionError::Arena("the buffer is in flight".into()))
    }

    /// Waits for every call sent: on the ring, submits what is queued and waits for it.
    pub fn barrier(&mut self) {
        self.advance(true);
    }

    /// Starts the compound afresh once it holds [`COMPACT_AT`] operations that have all
    /// completed (waiting for them when its registers or paths near their limit): the results
    /// are in the entries, later operands use the values of compacted registers as
    /// immediates; fd slots stay (they hold the descriptors open).
    fn compact(&mut self) {
        let near = |n: usize| n + 1 >= usize::from(u16::MAX);
        let full = near(self.c.regs.len()) || near(self.c.data.len());
        if self.c.ops.len() < COMPACT_AT && !full {
            return;
        }
        if full {
            self.barrier();
        }
        let done = !self.lane.has_pending()
            && self.lane.pc == self.c.ops.len()
            && self.settled == self.c.ops.len();
        if !done {
            return;
        }
        self.base += self.c.ops.len();
        self.c.ops.clear();
        self.c.regs.clear();
        self.c.data.clear();
        self.lane.regs.clear();
        self.lane.counters.clear();
        self.lane.pc = 0;
        self.settled = 0;
        if let Exec::Ring(r) = &mut self.exec {
            r.plan.route.clear();
        }
    }

    /// The result of the call of `handle` (a descriptor for an [`FdHandle`]: on the ring
    /// possibly a direct descriptor, `DIRECT_FD_BASE + k`), waiting for it if needed; or why
    /// it failed — its errno, or the failed call it depends on.
    pub fn get(&mut self, handle: impl Into<AnyHandle>) -> Result<i64, CallFailed> {
        let h = handle.into();
        let foreign = CallFailed {
            call: h.call,
            index: h.index,
            reason: Reason::Foreign,
            result: None,
        };
        if h.session != self.id {
            return Err(foreign);
        }
        let Some(e) = self.entries.get(h.index as usize) else {
            return Err(foreign);
        };
        if e.result.is_none() {
            self.barrier();
        }
        self.outcome_of(h.index)
    }

    fn outcome_of(&self, index: u32) -> Result<i64, CallFailed> {
        let Some(e) = self.entries.get(index as usize) else {
            return Err(CallFailed {
                call: Sys::Nop,
                index,
                reason: Reason::Foreign,
                result: None,
            });
        };
        let own = match &e.result {
            Some(Ok(v)) => Some(*v),
            Some(Err(Reason::Errno(n))) => Some(-i64::from(*n)),
            _ => None,
        };
        let fail = |reason| CallFailed {
            call: e.call,
            index,
            reason,
            result: own,
        };
        if let Some(d) = e.failed_dep
            && let Some(de) = self.entries.get(d as usize)
        {
            let cause = match &de.result {
                Some(Err(r)) => r.clone(),
                _ => Reason::Stopped("not completed".into()),
            };
            return Err(fail(Reason::Operand {
                call: de.call,
                index: d,
                cause: Box::new(cause),
            }));
        }
        match &e.result {
            Some(Ok(v)) => Ok(*v),
            Some(Err(r)) => Err(fail(r.clone())),
            None => Err(fail(Reason::Stopped("not completed".into()))),
        }
    }

    /// Runs `v` on the session's backend (after a barrier), as [`crate::run`] does: under
    /// its own policy, with its own descriptors and arena.
    pub fn run(&mut self, v: &Verified) -> Outcome {
        self.barrier();
        let opts = RunOptions {
            backend: self.backend,
            ring: RingOptions {
                reuse: false,
                ..RingOptions::default()
            },
            ..RunOptions::default()
        };
        crate::run(v, &opts)
    }

    /// Steps the lane over the operations sent; `wait`: through every block, until every
    /// call has completed.
    fn advance(&mut self, wait: bool) {
        let cx = Cx {
            c: &self.c,
            funcs: &self.funcs,
            plan: &self.plan,
            layout: &self.layout,
            limit: self.policy.time,
            deadline: Deadline::from_now(self.policy.time),
            stop_mode: false,
            threads: Threads::default(),
            trace: true,
        };
        let failed = match &mut self.exec {
            Exec::Direct(d) => drive(&mut self.lane, &cx, d, &mut self.dirty, wait),
            Exec::Ring(r) => match r.parked.take() {
                Some(p) => {
                    let mut issuer = RingIssuer::unpark(p, Some(&mut r.ring), &r.plan, &self.c);
                    let failed = drive(&mut self.lane, &cx, &mut issuer, &mut self.dirty, wait);
                    r.parked = Some(issuer.park());
                    failed
                }
                None => Vec::new(),
            },
        };
        self.collect(failed);
    }

    /// Takes the results of the operations that completed into their entries.
    fn collect(&mut self, failed: Vec<(Option<usize>, Error)>) {
        if let Some(t) = self.lane.rec.trace.as_mut() {
            for te in t.drain(..) {
                if let Some(e) = self.entries.get_mut(self.base + te.op as usize)
                    && e.slot.is_some()
                {
                    e.fd = Some(te.result);
                }
            }
        }
        for ce in std::mem::take(&mut self.lane.errors) {
            if let Some(e) = self.entries.get_mut(self.base + ce.op as usize) {
                e.result = Some(Err(Reason::Errno(ce.errno)));
            }
        }
        let mut timeout = None;
        for (op, err) in failed {
            match op.and_then(|op| self.entries.get_mut(self.base + op)) {
                Some(e) => e.result = Some(Err(Reason::Stopped(err.to_string()))),
                None => timeout = Some(err.to_string()),
            }
        }
        if self.lane.has_pending() {
            return;
        }
        let upto = self.lane.pc.min(self.c.ops.len());
        for i in (self.base + self.settled)..(self.base + upto) {
            let failed_dep = self.entries.get(i).and_then(|e| {
                e.deps.iter().find_map(|&d| {
                    let de = self.entries.get(d as usize)?;
                    match (&de.result, de.failed_dep) {
                        (_, Some(root)) => Some(root),
                        (Some(Err(_)), None) => Some(d),
                        _ => None,
                    }
                })
            });
            let reg = self
                .entries
                .get(i)
                .and_then(|e| e.reg)
                .and_then(|r| self.lane.regs.get(r.index()).copied());
            let Some(e) = self.entries.get_mut(i) else {
                continue;
            };
            e.failed_dep = failed_dep;
            e.regval = reg.unwrap_or(0);
            if e.result.is_none() {
                e.result = Some(match (&timeout, reg, e.fd) {
                    (Some(t), _, _) => Err(Reason::Stopped(t.clone())),
                    (None, Some(v), _) => Ok(v),
                    (None, None, Some(fd)) => Ok(fd),
                    (None, None, None) => Err(Reason::Stopped("no result".into())),
                });
            }
        }
        self.settled = self.settled.max(upto);
    }
}

/// Whether operand `k` of `call` can be a direct descriptor on the ring (the table's `fixed`
/// column, for the requests the ring issuer builds).
fn slot_capable(call: Sys, k: usize) -> bool {
    let spec = call.spec();
    spec.may_be_fixed(k) && spec.uring.is_some_and(builds) && call != Sys::Splice
}

/// Runs `lane` over the operations of `cx`; `wait`: through every block. Returns the
/// operations that stopped with an error other than a call's (`None`: the wait for the calls
/// in flight ran out of time; they were discarded).
fn drive<I: Issuer>(
    lane: &mut Lane,
    cx: &Cx<'_>,
    issuer: &mut I,
    dirty: &mut Dirty,
    wait: bool,
) -> Vec<(Option<usize>, Error)> {
    let n = cx.c.ops.len();
    let mut failed = Vec::new();
    let mut idle = 0;
    loop {
        match lane.run(cx, issuer, dirty, n) {
            Run::Done => break,
            Run::Failed(e) => {
                // The operation is refused; the session goes on with the next.
                failed.push((Some(lane.pc), e));
                lane.pc += 1;
                idle = 0;
            }
            Run::Blocked => {
                if !wait {
                    break;
                }
                let had = lane.has_pending();
                if let Err(e) = lane.barrier(cx, issuer) {
                    failed.push((None, e));
                }
                idle = if had { 0 } else { idle + 1 };
                if idle > 1 {
                    failed.push((
                        Some(lane.pc),
                        Error::Setup("the issuer refused the call with nothing in flight".into()),
                    ));
                    lane.pc += 1;
                    idle = 0;
                }
            }
        }
    }
    failed
}

impl Drop for Session {
    fn drop(&mut self) {
        self.advance(true);
        let end = self.c.ops.len();
        let open = self.lane.fds.open();
        match &mut self.exec {
            Exec::Direct(d) => close_all(&mut self.lane, d, end, &open),
            Exec::Ring(r) => {
                if let Some(p) = r.parked.take() {
                    let mut issuer = RingIssuer::unpark(p, Some(&mut r.ring), &r.plan, &self.c);
                    close_all(&mut self.lane, &mut issuer, end, &open);
                    r.parked = Some(issuer.park());
                }
            }
        }
    }
}

fn close_all<I: Issuer>(lane: &mut Lane, issuer: &mut I, end: usize, open: &[FdSlot]) {
    lane.close_slots(issuer, end, open);
    lane.drain(issuer);
}

fn direct_issuer(root: Option<Root>, capacity: usize) -> Result<DirectIssuer, SessionError> {
    DirectIssuer::new(root, capacity).map_err(SessionError::Setup)
}

/// The session's ring: `Ok(Err(root))` when there is none to be had (no io_uring).
fn ring_exec(
    c: &Compound,
    root: Option<Root>,
    capacity: usize,
    o: SessionOptions,
) -> Result<Result<RingExec, Option<Root>>, SessionError> {
    let probe = RingOptions::default().probe();
    if !probe.available() {
        return Ok(Err(root));
    }
    let region = IoBuf::try_zeroed(capacity)
        .ok_or_else(|| SessionError::Setup(format!("cannot allocate {capacity} bytes")))?;
    let built = Ring::builder()
        .entries(o.entries.max(2))
        .files(o.files)
        .region(region)
        .register_region(true)
        .probe(probe.clone())
        .build();
    let Ok(mut ring) = built else {
        return Ok(Err(root));
    };
    let confined = root.is_some();
    let plan = RingPlan::default();
    let parked = RingIssuer::new(Some(&mut ring), None, root, &plan, c, 1).park();
    Ok(Ok(RingExec {
        ring,
        plan,
        parked: Some(parked),
        probe,
        confined,
    }))
}
