//! The ring executor's interpreter (docs/ring.md): threads with pending registers, calls
//! queued on the ring, rounds of one submission each.
//!
//! A *thread* is the main program or one running iteration of a concurrent map. It runs until
//! it needs something the ring has not delivered yet (a pending register, an fd number, the
//! bytes a queued read writes, a plain system call that must follow its queued calls). When
//! no thread can run, a *round* submits every thread's queued calls at once (one linked chain
//! per thread), waits for all of them, and *retires* them in program order: results go to
//! their registers, failures apply the error mode. Everything a thread did past a call that
//! failed in `stop` mode (or past the fuel limit, for an iteration that ran ahead of older
//! ones) is undone from an undo log, so the outcome is the one of running in order.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use cosy_model::{
    Arg, ArgKind, BufId, Compound, ErrorMode, FdRef, FdSlot, Op, PathRef, Reg, Ret, Sys, UringOp,
    Value,
};
use cosy_uring::{Completion, IoBuf, Link, OpenTarget, Ring, Target};

use crate::arena::{self, Dirty, Layout, RangeError, Span};
use crate::confine::CONFINE;
use crate::direct::DirectIssuer;
use crate::funcs::Functions;
use crate::interp::{
    Binding, Issuer, Items, Operand, call_function, out_operand, parse_dirents, path_bytes,
};
use crate::outcome::{CallError, Error, Outcome, Recorder, TraceEntry, Via};
use crate::plan::Plan;
use crate::ring::plan::{RingPlan, Route};
use crate::sys::{self, AT_FDCWD, Resolved, ResolvedArgs};

#[path = "template.rs"]
mod template;

pub use template::template_maps;

/// Direct descriptor `k` (fixed-file slot `k` of the ring) appears in traces as descriptor
/// `DIRECT_FD_BASE + k`: it has no number in the process's descriptor table.
pub const DIRECT_FD_BASE: i32 = 1 << 30;

/// Most undo entries a thread running ahead of older iterations may log before it waits to
/// become the oldest.
const MAX_SPECULATIVE_UNDO: usize = 1 << 16;

/// Largest number of reads an unrolled loop queues at once.
const MAX_UNROLL: u32 = 128;

/// The main thread's index.
const MAIN: usize = 0;

/// What a thread is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum St {
    /// Can run.
    Run,
    /// Needs the next round (a pending value, a flush, room in its queue).
    Blocked,
    /// Ran ahead of older iterations as far as it may; runs again when it is the oldest.
    WaitOldest,
    /// An iteration that reached its end; commits when it is the oldest and retired.
    AtEnd,
    /// Stopped on an error (final once it is the oldest and retired).
    Failed,
    /// The main program ended.
    Done,
    /// The main program waits for its concurrent map.
    InMap,
    /// A worker without an iteration.
    #[default]
    Idle,
}

/// What an fd slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Slot {
    #[default]
    Empty,
    /// A descriptor of the process.
    Real(i32),
    /// A direct descriptor (fixed-file slot of the ring).
    Fixed(u32),
    /// A descriptor a queued open will return (the entry's sequence number).
    Pending(u64),
}

/// An fd operand, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fd {
    Raw(i32),
    Fixed(u32),
}

impl Fd {
    fn target(self) -> Target {
        match self {
            Fd::Raw(fd) => Target::Fd(fd),
            Fd::Fixed(i) => Target::Slot(i),
        }
    }

    fn traced(self) -> i32 {
        match self {
            Fd::Raw(fd) => fd,
            Fd::Fixed(i) => DIRECT_FD_BASE.saturating_add(i as i32),
        }
    }
}

/// An operand of a system call, resolved.
#[derive(Clone, Copy, Debug)]
enum Opnd {
    Int(i64),
    Fd(Fd),
    Path(PathRef),
    Buf(Span),
    NewFd,
}

/// A queued call's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum QState {
    #[default]
    Queued,
    InFlight,
    Done,
    Cancelled,
}

/// Where a queued call's result goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum RetTo {
    #[default]
    None,
    Reg(Reg),
    /// An open into a direct descriptor.
    Fixed(FdSlot, u32),
    /// An open into a descriptor of the process.
    Real(FdSlot),
}

/// What a queued entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Kind {
    /// An operation's call.
    #[default]
    Call,
    /// A close the executor makes (a reassigned slot, the end of an iteration).
    Close,
    /// A read of an unrolled loop: its result is consumed when the loop runs.
    Prefetch,
    /// A call whose result is known without the kernel (a path outside the root, an offset
    /// the kernel refuses before anything else).
    Synthetic,
}

/// The io_uring operation of an entry (paths are in the entry).
#[derive(Clone, Copy, Debug, Default)]
enum ROp {
    #[default]
    Nop,
    Openat {
        dirfd: i32,
        flags: i32,
        mode: u32,
        into: OpenTarget,
    },
    Openat2 {
        dirfd: i32,
        flags: u64,
        mode: u64,
        resolve: u64,
        into: OpenTarget,
    },
    Close(Target),
    Read(Target, Span, i64),
    Write(Target, Span, i64),
    Statx {
        dirfd: i32,
        flags: i32,
        mask: u32,
        buf: Span,
    },
    Mkdirat {
        dirfd: i32,
        mode: u32,
    },
    Unlinkat {
        dirfd: i32,
        flags: i32,
    },
    Renameat {
        olddirfd: i32,
        newdirfd: i32,
        flags: u32,
    },
    Fsync(Target, bool),
    Ftruncate(Target, u64),
    Splice {
        fd_in: Target,
        off_in: i64,
        fd_out: Target,
        off_out: i64,
        len: u32,
        flags: u32,
    },
}

impl ROp {
    /// The arena bytes it touches, and whether the kernel writes them.
    fn span(&self) -> Option<(Span, bool)> {
        match self {
            ROp::Read(_, s, _) => Some((*s, true)),
            ROp::Write(_, s, _) => Some((*s, false)),
            ROp::Statx { buf, .. } => Some((*buf, true)),
            _ => None,
        }
    }

    /// The length a read, write or splice asks for (a shorter result breaks a soft link).
    fn asked(&self) -> Option<i64> {
        match self {
            ROp::Read(_, s, _) | ROp::Write(_, s, _) => Some(s.len() as i64),
            ROp::Splice { len, .. } => Some(i64::from(*len)),
            _ => None,
        }
    }
}

/// A call queued by a thread.
#[derive(Clone, Debug)]
struct Entry {
    op: u32,
    /// The call as counted (an `openat` confined to the root is an `openat2`).
    call: Sys,
    /// The operation's call (for its error).
    orig: Sys,
    kind: Kind,
    rop: ROp,
    path: Vec<u8>,
    path2: Vec<u8>,
    ret: RetTo,
    state: QState,
    result: i64,
    /// The thread's `used` at the operation that queued it.
    used: u64,
    fd: i32,
    link: Link,
    chained: bool,
    /// Completed in the current round (not yet counted).
    fresh: bool,
    may_fail: bool,
    harmless: bool,
    free: bool,
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            op: 0,
            call: Sys::Nop,
            orig: Sys::Nop,
            kind: Kind::Call,
            rop: ROp::Nop,
            path: Vec::new(),
            path2: Vec::new(),
            ret: RetTo::None,
            state: QState::Queued,
            result: 0,
            used: 0,
            fd: -1,
            link: Link::None,
            chained: false,
            fresh: false,
            may_fail: false,
            harmless: false,
            free: false,
        }
    }
}

/// An undo record: the register's previous state, logged by the operation at `u`.
#[derive(Clone, Copy, Debug)]
struct Undo {
    reg: u16,
    val: i64,
    pend: u64,
    u: u64,
}

/// A map running inside a thread, iteration after iteration.
struct Frame {
    begin: usize,
    end: usize,
    items: Items,
    snapshot: Vec<(i64, u64)>,
}

/// A thread: the main program or one iteration of a concurrent map.
#[derive(Default)]
struct Thread {
    st: St,
    pc: usize,
    regs: Vec<i64>,
    /// 0: known; else the sequence number + 1 of the entry that will give the value.
    pend: Vec<u64>,
    slots: Vec<Slot>,
    pathvals: Vec<Vec<u8>>,
    counters: Vec<u32>,
    frames: Vec<Frame>,
    lane: usize,
    iter: u64,
    used: u64,
    q: Vec<Entry>,
    qlen: usize,
    /// Sequence number of `q[0]`.
    base: u64,
    may_fail: usize,
    undo: Vec<Undo>,
    undo_refs: usize,
    /// Running ahead of older iterations: everything is logged.
    spec: bool,
    /// The operation of each `used` value (speculative threads), for a fuel rollback.
    pcs: Vec<u32>,
    errors: Vec<(u64, CallError)>,
    trace: Vec<(u64, TraceEntry)>,
    failed: Option<Error>,
    prefetch: VecDeque<i64>,
    prefetch_pc: usize,
    unroll_k: u32,
    /// Entries of this round already handed to the ring (SQPOLL, independent `nop`s): the
    /// thread queues nothing else until the round is over.
    pushed: bool,
}

/// Threads kept with their allocations (boxed: runs take them by pointer).
#[allow(clippy::vec_box, reason = "threads move in and out of runs by pointer")]
type Pool = std::cell::RefCell<Vec<Box<Thread>>>;

thread_local! {
    /// Threads of finished runs, kept with their allocations for the next runs of this thread.
    static POOL: Pool = const { std::cell::RefCell::new(Vec::new()) };
}

/// Most threads kept in [`POOL`].
const POOL_MAX: usize = 1024;

/// A thread for compound `c` (`jumps` loop counters) in lane `lane`, from the pool if it can.
fn pooled(c: &Compound, jumps: usize, lane: usize) -> Box<Thread> {
    let mut t = POOL
        .try_with(|p| p.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default();
    t.reset(c, jumps, lane);
    t
}

/// Gives threads back to the pool.
fn unpool(threads: impl IntoIterator<Item = Box<Thread>>) {
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        for t in threads {
            if p.len() >= POOL_MAX {
                break;
            }
            p.push(t);
        }
    });
}

impl Thread {
    /// Makes the thread new for compound `c`, keeping its allocations.
    fn reset(&mut self, c: &Compound, jumps: usize, lane: usize) {
        self.st = St::Idle;
        self.pc = 0;
        self.regs.clear();
        self.regs.resize(c.regs.len(), 0);
        self.pend.clear();
        self.pend.resize(c.regs.len(), 0);
        self.slots.clear();
        self.slots.resize(c.fds.len(), Slot::Empty);
        self.pathvals.truncate(c.paths.len());
        for p in &mut self.pathvals {
            p.clear();
        }
        self.pathvals.resize(c.paths.len(), Vec::new());
        self.counters.clear();
        self.counters.resize(jumps, 0);
        self.frames.clear();
        self.lane = lane;
        self.iter = 0;
        self.used = 0;
        self.qlen = 0;
        self.base = 0;
        self.may_fail = 0;
        self.undo.clear();
        self.undo_refs = 0;
        self.spec = false;
        self.pcs.clear();
        self.errors.clear();
        self.trace.clear();
        self.failed = None;
        self.prefetch.clear();
        self.prefetch_pc = usize::MAX;
        self.unroll_k = 8;
        self.pushed = false;
    }

    fn logging(&self, mode: ErrorMode) -> bool {
        self.spec || (mode == ErrorMode::Stop && self.may_fail > 0)
    }

    fn val(&self, v: &Value) -> Option<i64> {
        match v {
            Value::Imm(x) => Some(*x),
            Value::Reg(r) => match self.pend.get(r.index()) {
                Some(0) | None => Some(self.regs.get(r.index()).copied().unwrap_or(0)),
                Some(_) => None,
            },
        }
    }

    fn set(&mut self, r: Reg, v: i64, pend: u64, log: bool) {
        let i = r.index();
        let (Some(x), Some(p)) = (self.regs.get_mut(i), self.pend.get_mut(i)) else {
            return;
        };
        if log {
            if *p != 0 {
                self.undo_refs += 1;
            }
            self.undo.push(Undo {
                reg: r.0,
                val: *x,
                pend: *p,
                u: self.used,
            });
        }
        *x = v;
        *p = pend;
    }

    fn seq(&self, k: usize) -> u64 {
        self.base + k as u64
    }

    /// Whether an unretired entry touches `span` (and writes it, unless `any`).
    fn touches(&self, span: Span, any: bool) -> bool {
        self.q[..self.qlen].iter().any(|e| {
            e.state != QState::Done
                && e.rop
                    .span()
                    .is_some_and(|(s, w)| (w || any) && s.overlaps(span))
        })
    }

    /// Undoes every register write made by the operations at `u` and later.
    fn rollback_to(&mut self, u: u64) {
        while let Some(e) = self.undo.last().copied() {
            if e.u < u {
                break;
            }
            self.undo.pop();
            let i = usize::from(e.reg);
            if let (Some(x), Some(p)) = (self.regs.get_mut(i), self.pend.get_mut(i)) {
                *x = e.val;
                *p = e.pend;
            }
        }
        for p in &mut self.pend {
            *p = 0;
        }
        self.errors.retain(|(eu, _)| *eu < u);
        // Closes that ran stay in the trace: the descriptors they closed are gone.
        self.trace
            .retain(|(eu, e)| *eu < u || (e.call == Sys::Close && e.result >= 0));
        self.prefetch.clear();
    }
}

/// A concurrent map in progress.
struct Active {
    begin: usize,
    end: usize,
    items: Items,
    /// Iterations spawned so far (the next one's index).
    next: u64,
    /// The oldest iteration not yet committed.
    oldest: u64,
    /// Iterations after this one never commit (one before it failed).
    limit: u64,
    /// Workers running iterations, oldest first.
    order: VecDeque<usize>,
    /// The registers when the map started: every iteration starts from them (the main
    /// program's change as iterations commit).
    start: Vec<i64>,
}

/// State of a direct descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FState {
    Free,
    /// An open into it is queued.
    Reserved,
    Occupied,
}

/// One step of a thread.
enum Step {
    Go(usize),
    Block,
    IterEnd,
    Map,
    Err(Error),
}

/// Everything a run needs, borrowed from the executor's setup.
pub(crate) struct Setup<'a> {
    pub c: &'a Compound,
    pub plan: &'a Plan,
    pub rp: &'a RingPlan,
    pub funcs: &'a Functions,
    pub trace: bool,
    pub ring: Option<&'a mut Ring>,
    /// The arena's memory when there is no ring.
    pub mem: Option<IoBuf>,
    pub layout: &'a Layout,
    pub dirty: Dirty,
    pub issuer: DirectIssuer,
    pub workers: usize,
    pub files: u32,
    pub started: Instant,
}

/// The interpreter of one run.
pub(crate) struct Machine<'a> {
    c: &'a Compound,
    plan: &'a Plan,
    rp: &'a RingPlan,
    funcs: &'a Functions,
    mode: ErrorMode,
    ring: Option<&'a mut Ring>,
    own_mem: Option<IoBuf>,
    layout: &'a Layout,
    dirty: Dirty,
    issuer: DirectIssuer,
    rec: Recorder,
    /// Boxed, so taking one out to run it moves a pointer.
    #[expect(
        clippy::vec_box,
        reason = "threads are taken out and put back by pointer"
    )]
    threads: Vec<Box<Thread>>,
    /// What stands in a thread's place while it is taken out.
    spare: Option<Box<Thread>>,
    /// Workers without an iteration.
    idle: Vec<usize>,
    /// Most workers (lanes of local buffers); made as iterations need them.
    workers: usize,
    map: Option<Active>,
    fixed: Vec<FState>,
    free: Vec<u32>,
    owned: Vec<i32>,
    /// Descriptors of O_NONBLOCK pipes the run made (its reads and writes are issued
    /// directly); a number opened anew leaves it.
    nonblocking: Vec<i32>,
    errors: Vec<CallError>,
    fuel: u64,
    /// Fuel used by committed iterations of concurrent maps.
    base: u64,
    deadline: crate::clock::Deadline,
    limit: Duration,
    sq_cap: usize,
    enters0: u64,
    done: Vec<Completion>,
    rargs: ResolvedArgs,
    opnds: Vec<Opnd>,
    /// Scratch space for the paths of the call being queued.
    paths: (Vec<u8>, Vec<u8>),
    /// The error that ended the run, and the thread it happened in.
    error: Option<(Error, usize)>,
}

impl<'a> Machine<'a> {
    /// A machine ready to run `s.c` from its first operation.
    pub fn new(s: Setup<'a>, policy: &cosy_model::Policy) -> Machine<'a> {
        let c = s.c;
        let mut threads = Vec::with_capacity(s.workers.min(64) + 1);
        let mut main = pooled(c, s.plan.jumps(), 0);
        main.st = St::Run;
        for input in &c.inputs {
            if let cosy_model::InputKind::Int { reg, default } = input.kind
                && let Some(x) = main.regs.get_mut(reg.index())
            {
                *x = default;
            }
        }
        threads.push(main);
        // Without a ring nothing is queued: no limit.
        let sq_cap = s
            .ring
            .as_ref()
            .map_or(usize::MAX / 4, |r| r.sq_capacity())
            .max(1);
        let enters0 = s.ring.as_ref().map_or(0, |r| r.stats().enters);
        Machine {
            c,
            plan: s.plan,
            rp: s.rp,
            funcs: s.funcs,
            mode: c.mode,
            ring: s.ring,
            own_mem: s.mem,
            layout: s.layout,
            dirty: s.dirty,
            issuer: s.issuer,
            rec: Recorder::new(s.trace),
            threads,
            spare: None,
            idle: Vec::new(),
            workers: s.workers,
            map: None,
            fixed: vec![FState::Free; s.files as usize],
            free: (0..s.files).rev().collect(),
            owned: Vec::new(),
            nonblocking: Vec::new(),
            errors: Vec::new(),
            fuel: policy.fuel,
            base: 0,
            deadline: crate::clock::Deadline::new(s.started, policy.time),
            limit: policy.time,
            sq_cap,
            enters0,
            done: Vec::new(),
            rargs: ResolvedArgs::default(),
            opnds: Vec::new(),
            paths: (Vec::new(), Vec::new()),
            error: None,
        }
    }

    /// Runs to the end (or the first error), closes every descriptor, and gives the outcome.
    pub fn run(mut self, started: Instant) -> (Outcome, Dirty) {
        let result = self.main_loop();
        let mut regs = self.threads[MAIN].regs.clone();
        let mut ops = self.threads[MAIN].used + self.base;
        // An error in an iteration: the outcome is the main program's with that iteration
        // merged, as a sequential run would have left it.
        if let Err((_, ti)) = &result
            && *ti != MAIN
            && let (Some(a), Some(t)) = (&self.map, self.threads.get(*ti))
        {
            merge(self.c, self.plan, a.begin, t, &mut regs);
            ops += t.used;
            self.errors.extend(t.errors.iter().map(|(_, e)| *e));
            if let Some(tr) = &mut self.rec.trace {
                tr.extend(t.trace.iter().map(|(_, e)| *e));
            }
        }
        self.cleanup();
        let outputs = self
            .c
            .outputs
            .iter()
            .map(|o| {
                (
                    o.name.clone(),
                    regs.get(o.reg.index()).copied().unwrap_or(0),
                )
            })
            .collect();
        if let Some(r) = &self.ring {
            self.rec.ring_enters = r.stats().enters - self.enters0;
        }
        let mut stats = self.rec.stats();
        stats.ops = ops;
        stats.elapsed = started.elapsed();
        let outcome = Outcome {
            outputs,
            error: result.err().map(|(e, _)| e),
            errors: std::mem::take(&mut self.errors),
            stats,
            trace: self.rec.trace.take().unwrap_or_default(),
        };
        unpool(
            std::mem::take(&mut self.threads)
                .into_iter()
                .chain(self.spare.take()),
        );
        (outcome, self.dirty)
    }

    fn main_loop(&mut self) -> Result<(), (Error, usize)> {
        loop {
            self.run_threads();
            if let Some(e) = self.error.take() {
                return Err(e);
            }
            let queued = self.threads.iter().any(|t| {
                t.q[..t.qlen]
                    .iter()
                    .any(|e| matches!(e.state, QState::Queued | QState::InFlight))
            });
            let retirable = self
                .threads
                .iter()
                .any(|t| t.qlen > 0 && t.q[0].state == QState::Done);
            if !queued && retirable {
                // Results known without the kernel (synthetic): retire them.
                self.retire_all();
                self.settle();
                if let Some(e) = self.error.take() {
                    return Err(e);
                }
                continue;
            }
            if !queued {
                let main = &self.threads[MAIN];
                if main.st == St::Done && main.qlen == 0 {
                    return Ok(());
                }
                return Err((
                    Error::Setup(format!(
                        "internal error of the ring executor: no thread can run (main at op {}, {:?}: {:?})",
                        main.pc,
                        main.st,
                        self.c.ops.get(main.pc)
                    )),
                    MAIN,
                ));
            }
            if let Err(e) = self.round() {
                return Err((e, MAIN));
            }
            self.settle();
            if let Some(e) = self.error.take() {
                return Err(e);
            }
        }
    }

    // ---------------------------------------------------------------- running threads

    /// Runs every runnable thread until none can run, committing iterations on the way.
    fn run_threads(&mut self) {
        loop {
            let mut ran = false;
            for ti in 0..self.threads.len() {
                if self.threads[ti].st == St::Run {
                    ran = true;
                    self.run_thread(ti);
                    if self.error.is_some() {
                        return;
                    }
                }
            }
            self.settle();
            if self.error.is_some() {
                return;
            }
            if !ran && !self.threads.iter().any(|t| t.st == St::Run) {
                return;
            }
        }
    }

    /// Takes thread `ti` out (to run it with `&mut self`); [`Machine::put`] puts it back.
    fn take(&mut self, ti: usize) -> Box<Thread> {
        let stand_in = self.spare.take().unwrap_or_default();
        std::mem::replace(&mut self.threads[ti], stand_in)
    }

    fn put(&mut self, ti: usize, t: Box<Thread>) {
        self.spare = Some(std::mem::replace(&mut self.threads[ti], t));
    }

    /// Fuel used by everything committed (with the main program in its place).
    fn committed(&self) -> u64 {
        self.threads[MAIN].used + self.base
    }

    /// The position of thread `t`'s next operation in the order of a sequential run (exact
    /// for the main program and the oldest iteration; a lower bound for the others).
    fn position(&self, t: &Thread, ti: usize) -> u64 {
        if ti == MAIN {
            t.used + self.base
        } else {
            self.committed() + t.used
        }
    }

    fn time_up(&self) -> bool {
        self.deadline.passed()
    }

    fn run_thread(&mut self, ti: usize) {
        let mut t = self.take(ti);
        let n = self.c.ops.len();
        while t.st == St::Run {
            let pc = t.pc;
            if pc >= n {
                t.st = St::Done;
                break;
            }
            if self.position(&t, ti) >= self.fuel {
                if !t.spec {
                    self.fail(
                        &mut t,
                        ti,
                        Error::Fuel {
                            op: pc as u32,
                            fuel: self.fuel,
                        },
                    );
                } else {
                    t.st = St::WaitOldest;
                }
                break;
            }
            if t.spec && t.undo.len() >= MAX_SPECULATIVE_UNDO {
                t.st = St::WaitOldest;
                break;
            }
            let step = self.step(&mut t, ti, pc);
            let executed = !matches!(step, Step::Block);
            if executed {
                if t.spec {
                    t.pcs.push(pc as u32);
                }
                t.used += 1;
            }
            match step {
                Step::Go(next) => {
                    if t.prefetch_pc != usize::MAX
                        && (next < t.prefetch_pc
                            || self
                                .rp
                                .unroll_at(t.prefetch_pc)
                                .is_some_and(|u| next > u.jump))
                    {
                        t.prefetch.clear();
                        t.prefetch_pc = usize::MAX;
                    }
                    t.pc = next;
                }
                Step::Block => t.st = St::Blocked,
                Step::IterEnd => t.st = St::AtEnd,
                Step::Map => t.st = St::InMap,
                Step::Err(e) => self.fail(&mut t, ti, e),
            }
        }
        self.put(ti, t);
        if ti == MAIN && self.threads[MAIN].st == St::InMap {
            self.spawn_all();
        }
    }

    /// Thread `t` stops on `e` (tentatively, until its queued calls retire and it is the
    /// oldest).
    fn fail(&mut self, t: &mut Thread, ti: usize, e: Error) {
        t.failed = Some(e);
        t.st = St::Failed;
        if ti != MAIN
            && let Some(a) = &mut self.map
        {
            a.limit = a.limit.min(t.iter);
        }
    }

    fn step(&mut self, t: &mut Thread, ti: usize, pc: usize) -> Step {
        let c = self.c;
        let op = pc as u32;
        let log = t.logging(self.mode);
        match &c.ops[pc] {
            Op::Sys { call, args, ret } => self.step_sys(t, ti, pc, *call, args, *ret),
            Op::Arith { dst, op: bop, a, b } => {
                let (Some(a), Some(b)) = (t.val(a), t.val(b)) else {
                    return Step::Block;
                };
                match bop.apply(a, b) {
                    Some(v) => {
                        t.set(*dst, v, 0, log);
                        Step::Go(pc + 1)
                    }
                    None => Step::Err(Error::Arith { op }),
                }
            }
            Op::Mov { dst, src } => {
                let Some(v) = t.val(src) else {
                    return Step::Block;
                };
                t.set(*dst, v, 0, log);
                Step::Go(pc + 1)
            }
            Op::Load {
                dst,
                width,
                buf,
                off,
            } => {
                let Some(o) = t.val(off) else {
                    return Step::Block;
                };
                let span = match self.width_span(t, pc, *buf, o, width.bytes()) {
                    Ok(s) => s,
                    Err(e) => return Step::Err(e),
                };
                if t.touches(span, false) {
                    return Step::Block;
                }
                let mem = match self.mem() {
                    Ok(m) => m,
                    Err(e) => return Step::Err(e),
                };
                let mut b = [0u8; 8];
                for (d, s) in b.iter_mut().zip(arena::bytes(mem, span)) {
                    *d = *s;
                }
                t.set(*dst, u64::from_le_bytes(b) as i64, 0, log);
                Step::Go(pc + 1)
            }
            Op::Store {
                width,
                buf,
                off,
                src,
            } => {
                let (Some(o), Some(v)) = (t.val(off), t.val(src)) else {
                    return Step::Block;
                };
                let span = match self.width_span(t, pc, *buf, o, width.bytes()) {
                    Ok(s) => s,
                    Err(e) => return Step::Err(e),
                };
                if t.touches(span, true) {
                    return Step::Block;
                }
                let layout = self.layout;
                self.dirty.mark(layout, span);
                let mem = match self.mem() {
                    Ok(m) => m,
                    Err(e) => return Step::Err(e),
                };
                for (d, s) in arena::bytes_mut(mem, span).iter_mut().zip(v.to_le_bytes()) {
                    *d = s;
                }
                Step::Go(pc + 1)
            }
            Op::Jump {
                cond,
                target,
                bound,
            } => {
                let tgt = *target as usize;
                let backward = tgt <= pc;
                let taken = match cond {
                    None => true,
                    Some(cd) => {
                        let (Some(a), Some(b)) = (t.val(&cd.a), t.val(&cd.b)) else {
                            return Step::Block;
                        };
                        match cd.op.apply(a, b) {
                            Some(v) => v != 0,
                            None => return Step::Err(Error::Arith { op }),
                        }
                    }
                };
                if backward && self.time_up() {
                    return Step::Err(Error::Time {
                        op,
                        limit: self.limit,
                    });
                }
                if !taken {
                    return Step::Go(pc + 1);
                }
                if backward {
                    let bound = bound.unwrap_or(0);
                    let Some(count) = self.plan.jump_index(pc).and_then(|j| t.counters.get_mut(j))
                    else {
                        return Step::Err(Error::LoopBound { op, bound });
                    };
                    if *count >= bound {
                        return Step::Err(Error::LoopBound { op, bound });
                    }
                    *count += 1;
                }
                Step::Go(tgt)
            }
            Op::Call { dst, func, args } => self.step_call(t, pc, *dst, func, args, log),
            Op::MapBegin { source, end } => self.step_map_begin(t, ti, pc, source, *end as usize),
            Op::MapEnd { begin } => self.step_map_end(t, ti, pc, *begin as usize),
        }
    }

    fn width_span(
        &self,
        t: &Thread,
        pc: usize,
        buf: BufId,
        off: i64,
        w: usize,
    ) -> Result<Span, Error> {
        self.layout
            .resolve(buf, t.lane, off, Some(off.saturating_add(w as i64)))
            .map_err(|e| self.range_error(pc, buf, e))
    }

    fn buffer_name(&self, b: BufId) -> String {
        crate::interp::buffer_name(self.c, b)
    }

    fn range_error(&self, op: usize, b: BufId, e: RangeError) -> Error {
        crate::interp::range_error(self.c, op, b, e)
    }

    /// Resolves a range operand (`None`: a bound is pending); `min` is the least length the
    /// call needs.
    fn range(
        &self,
        t: &Thread,
        op: usize,
        r: &cosy_model::BufRange,
        min: usize,
        call: Option<Sys>,
    ) -> Option<Result<Span, Error>> {
        self.range_in(t.lane, op, r, min, call, |v| t.val(v))
    }

    /// [`Machine::range`] in lane `lane` with operand values from `val`.
    fn range_in(
        &self,
        lane: usize,
        op: usize,
        r: &cosy_model::BufRange,
        min: usize,
        call: Option<Sys>,
        val: impl Fn(&Value) -> Option<i64>,
    ) -> Option<Result<Span, Error>> {
        let start = val(&r.start)?;
        let end = match &r.end {
            Some(e) => Some(val(e)?),
            None => None,
        };
        let span = match self.layout.resolve(r.buf, lane, start, end) {
            Ok(s) => s,
            Err(e) => return Some(Err(self.range_error(op, r.buf, e))),
        };
        if span.len() < min {
            return Some(Err(Error::Range {
                op: op as u32,
                buffer: self.buffer_name(r.buf),
                detail: format!(
                    "{} needs {min} bytes, but the range [{start}..{}] has {}",
                    call.map_or("the call", Sys::name),
                    start.saturating_add(span.len() as i64),
                    span.len()
                ),
            }));
        }
        Some(Ok(span))
    }

    /// The arena's memory (the ring's region). Nothing is in flight while threads run.
    fn mem(&mut self) -> Result<&mut [u8], Error> {
        match (&mut self.ring, &mut self.own_mem) {
            (_, Some(m)) => Ok(m.as_mut_slice()),
            (Some(r), None) => {
                if r.region_len() == 0 {
                    return Ok(&mut []);
                }
                r.region_mut()
                    .map_err(|e| Error::Setup(format!("internal error of the ring executor: {e}")))
            }
            (None, None) => Ok(&mut []),
        }
    }

    // ---------------------------------------------------------------- system calls

    fn step_sys(
        &mut self,
        t: &mut Thread,
        ti: usize,
        pc: usize,
        call: Sys,
        args: &[Arg],
        ret: Ret,
    ) -> Step {
        if self.time_up() {
            return Step::Err(Error::Time {
                op: pc as u32,
                limit: self.limit,
            });
        }
        if t.prefetch_pc == pc
            && let Some(r) = t.prefetch.pop_front()
        {
            let fd = match args.first() {
                Some(Arg::Fd(f)) => self.fd_of(t, f).map_or(-1, Fd::traced),
                _ => -1,
            };
            self.emit_trace(t, ti, t.used, pc as u32, call, fd, r);
            return match self.apply(t, ti, pc, call, ret, r) {
                Ok(()) => Step::Go(pc + 1),
                Err(e) => Step::Err(e),
            };
        }
        // The burst case, short: a `nop` queued on the ring. Under SQPOLL, independent `nop`s
        // go to the ring at once, so the kernel thread runs them while the thread goes on.
        if call == Sys::Nop
            && self.rp.route[pc] == Route::Ring
            && t.qlen < self.sq_cap
            && let Some(ring) = self.ring.as_deref_mut()
        {
            let eager = ring.is_sqpoll() && (t.qlen == 0 || t.pushed);
            let log = t.logging(self.mode);
            let k = t.qlen;
            let seq = t.base + k as u64;
            let e = push_entry(t);
            e.op = pc as u32;
            e.call = Sys::Nop;
            e.orig = Sys::Nop;
            e.rop = ROp::Nop;
            e.fd = -1;
            e.harmless = true;
            e.free = true;
            e.may_fail = false;
            if eager && push_op(ring, e, ((ti as u64) << 32) | k as u64).is_ok() {
                e.state = QState::InFlight;
                e.fresh = true;
                t.pushed = true;
            }
            if let Ret::Reg(r) = ret {
                if let Some(e) = t.q.get_mut(k) {
                    e.ret = RetTo::Reg(r);
                }
                t.set(r, 0, seq + 1, log);
            }
            return Step::Go(pc + 1);
        }
        // Operands.
        let mut opnds = std::mem::take(&mut self.opnds);
        opnds.clear();
        let min = sys::min_buf_len(call);
        for (a, spec) in args.iter().zip(call.spec().args) {
            let o = match (spec.kind, a) {
                (ArgKind::NewFd, _) => Opnd::NewFd,
                (_, Arg::Value(v)) => match t.val(v) {
                    Some(x) => Opnd::Int(x),
                    None => {
                        self.opnds = opnds;
                        return Step::Block;
                    }
                },
                (_, Arg::Fd(f)) => match self.fd_of(t, f) {
                    Some(fd) => Opnd::Fd(fd),
                    None => {
                        self.opnds = opnds;
                        return Step::Block;
                    }
                },
                (_, Arg::Path(p)) => Opnd::Path(*p),
                (_, Arg::Buf(r)) => match self.range(t, pc, r, min, Some(call)) {
                    Some(Ok(s)) => Opnd::Buf(s),
                    Some(Err(e)) => {
                        self.opnds = opnds;
                        return Step::Err(e);
                    }
                    None => {
                        self.opnds = opnds;
                        return Step::Block;
                    }
                },
            };
            opnds.push(o);
        }
        let step = if self.rp.route[pc] == Route::Ring && self.ring.is_some() {
            self.queue_call(t, ti, pc, call, args, ret, &opnds)
        } else {
            self.direct_call(t, ti, pc, call, args, ret, &opnds)
        };
        self.opnds = opnds;
        step
    }

    fn fd_of(&self, t: &Thread, f: &FdRef) -> Option<Fd> {
        Some(match f {
            FdRef::Cwd => Fd::Raw(AT_FDCWD),
            FdRef::Std(n) => Fd::Raw(i32::from(*n)),
            FdRef::Slot(s) => match t.slots.get(s.index()).copied().unwrap_or_default() {
                Slot::Empty => Fd::Raw(-1),
                Slot::Real(fd) => Fd::Raw(fd),
                Slot::Fixed(i) => Fd::Fixed(i),
                Slot::Pending(_) => return None,
            },
        })
    }

    /// Issues a call as a plain system call, after the thread's queued calls.
    #[allow(clippy::too_many_arguments)]
    fn direct_call(
        &mut self,
        t: &mut Thread,
        ti: usize,
        pc: usize,
        call: Sys,
        args: &[Arg],
        ret: Ret,
        opnds: &[Opnd],
    ) -> Step {
        if t.qlen > 0 {
            return Step::Block;
        }
        let mut rargs = std::mem::take(&mut self.rargs);
        rargs.items.clear();
        for (o, a) in opnds.iter().zip(args) {
            rargs.items.push(match o {
                Opnd::Int(v) => Resolved::Int(*v),
                Opnd::Fd(Fd::Raw(fd)) => Resolved::Fd(*fd),
                Opnd::Fd(Fd::Fixed(_)) => {
                    self.rargs = rargs;
                    return Step::Err(Error::Setup(format!(
                        "internal error of the ring executor: op {pc} needs a descriptor number for a direct descriptor"
                    )));
                }
                Opnd::Path(p) => {
                    let bytes = path_bytes(self.c, &t.pathvals, p);
                    Resolved::Path(std::ffi::CString::new(bytes).unwrap_or_default())
                }
                Opnd::Buf(s) => {
                    if matches!(a, Arg::Buf(_))
                        && call
                            .spec()
                            .args
                            .iter()
                            .any(|x| x.kind == ArgKind::BufOut)
                    {
                        self.dirty.mark(self.layout, *s);
                    }
                    Resolved::Buf(*s)
                }
                Opnd::NewFd => Resolved::NewFd(-1),
            });
        }
        if call == Sys::Close
            && let Some(Arg::Fd(FdRef::Slot(s))) = args.first()
            && let Some(x) = t.slots.get_mut(s.index())
        {
            // close empties the slot whatever its result.
            if let Slot::Real(fd) = *x {
                self.owned.retain(|&o| o != fd);
            }
            *x = Slot::Empty;
        }
        let mem: &mut [u8] = match (&mut self.ring, &mut self.own_mem) {
            (_, Some(m)) => m.as_mut_slice(),
            (Some(r), None) if r.region_len() > 0 => match r.region_mut() {
                Ok(m) => m,
                Err(e) => {
                    self.rargs = rargs;
                    return Step::Err(Error::Setup(format!(
                        "internal error of the ring executor: {e}"
                    )));
                }
            },
            _ => &mut [],
        };
        let swap = ti != MAIN && self.rec.tracing();
        let mut own_trace = if swap {
            self.rec.trace.replace(Vec::new())
        } else {
            None
        };
        let r = self
            .issuer
            .issue(pc as u32, call, &mut rargs, mem, &mut self.rec);
        if swap {
            let mine = std::mem::replace(&mut self.rec.trace, own_trace.take()).unwrap_or_default();
            t.trace.extend(mine.into_iter().map(|e| (t.used, e)));
        }
        self.rec.fallbacks += 1;
        let new_fds: Vec<i32> = rargs.new_fds().collect();
        self.rargs = rargs;
        if r >= 0 {
            if matches!(call, Sys::Openat | Sys::Openat2) {
                self.owned.push(r as i32);
                self.nonblocking.retain(|&o| o != r as i32);
            } else if call == Sys::Pipe2 {
                self.owned
                    .extend(new_fds.iter().copied().filter(|&fd| fd >= 0));
                self.nonblocking.retain(|o| !new_fds.contains(o));
                if let Some(Opnd::Int(flags)) = opnds.get(2)
                    && flags & i64::from(libc::O_NONBLOCK) != 0
                {
                    self.nonblocking
                        .extend(new_fds.iter().copied().filter(|&fd| fd >= 0));
                }
            }
        }
        match self.apply_direct(t, ti, pc, call, args, ret, r, &new_fds) {
            Ok(()) => Step::Go(pc + 1),
            Err(e) => Step::Err(e),
        }
    }

    /// The interpreter's `complete` for a call issued directly: the register, the slots of
    /// its result and of pipe2, the error mode.
    #[allow(clippy::too_many_arguments)]
    fn apply_direct(
        &mut self,
        t: &mut Thread,
        ti: usize,
        pc: usize,
        call: Sys,
        args: &[Arg],
        ret: Ret,
        r: i64,
        new_fds: &[i32],
    ) -> Result<(), Error> {
        let op = pc as u32;
        let log = t.logging(self.mode);
        let new_slots = args
            .iter()
            .zip(call.spec().args)
            .filter_map(|(a, s)| match (s.kind, a) {
                (ArgKind::NewFd, Arg::Fd(FdRef::Slot(x))) => Some(*x),
                _ => None,
            });
        if r < 0 {
            let errno = i32::try_from(r.checked_neg().unwrap_or(i64::MAX)).unwrap_or(i32::MAX);
            if self.mode == ErrorMode::Stop {
                return Err(Error::Call { op, call, errno });
            }
            self.emit_error(t, ti, CallError { op, call, errno });
            match ret {
                Ret::Reg(reg) => t.set(reg, r, 0, log),
                Ret::Fd(s) => self.replace_slot(t, ti, pc, s, Slot::Empty),
                Ret::None => {}
            }
            for s in new_slots {
                self.replace_slot(t, ti, pc, s, Slot::Empty);
            }
        } else {
            match ret {
                Ret::Reg(reg) => t.set(reg, r, 0, log),
                Ret::Fd(s) => {
                    let fd = i32::try_from(r).unwrap_or(-1);
                    self.replace_slot(t, ti, pc, s, Slot::Real(fd));
                }
                Ret::None => {}
            }
            for (s, fd) in new_slots.zip(new_fds) {
                self.replace_slot(t, ti, pc, s, Slot::Real(*fd));
            }
        }
        Ok(())
    }

    /// Puts `new` in slot `s` and closes what it held (directly: the thread has nothing
    /// queued, or through the ring for a direct descriptor).
    fn replace_slot(&mut self, t: &mut Thread, ti: usize, pc: usize, s: FdSlot, new: Slot) {
        let Some(x) = t.slots.get_mut(s.index()) else {
            return;
        };
        let old = std::mem::replace(x, new);
        self.close_value(t, ti, pc, old);
    }

    /// Closes the descriptors of `slots` (the end of an iteration): those of the process first
    /// (close(2) before anything is queued), then the direct ones (queued).
    fn close_slots(&mut self, t: &mut Thread, ti: usize, pc: usize, slots: &[FdSlot]) {
        for real in [true, false] {
            for s in slots {
                let Some(x) = t.slots.get_mut(s.index()) else {
                    continue;
                };
                if matches!(*x, Slot::Real(_)) == real {
                    let old = std::mem::take(x);
                    self.close_value(t, ti, pc, old);
                }
            }
        }
    }

    /// Closes what a slot held (the executor's own close). A descriptor of the process is
    /// closed with close(2) — callers make sure the thread has nothing queued: io_uring's
    /// close releases the file only when the submitting task returns to user space, after the
    /// calls linked behind it ran (a pipe's other end would not see it closed); a direct
    /// descriptor is closed through the ring, in the thread's chain.
    fn close_value(&mut self, t: &mut Thread, ti: usize, pc: usize, old: Slot) {
        match old {
            Slot::Empty | Slot::Pending(_) => {}
            Slot::Real(fd) => {
                debug_assert_eq!(t.qlen, 0, "close(2) after queued calls");
                let r = sys::to_ret(sys::close(fd));
                self.rec.count(Sys::Close, r, Via::Syscall);
                self.emit_trace(t, ti, t.used, pc as u32, Sys::Close, fd, r);
                self.owned.retain(|&o| o != fd);
            }
            Slot::Fixed(i) => self.queue_close(t, pc, Fd::Fixed(i)),
        }
    }

    /// Queues the executor's close of `fd` (op `pc`).
    fn queue_close(&mut self, t: &mut Thread, pc: usize, fd: Fd) {
        let e = push_entry(t);
        e.op = pc as u32;
        e.call = Sys::Close;
        e.orig = Sys::Close;
        e.kind = Kind::Close;
        e.rop = ROp::Close(fd.target());
        e.fd = fd.traced();
        e.ret = RetTo::None;
        e.harmless = true;
        e.may_fail = false;
        e.free = false;
    }

    /// Queues a call on the ring.
    #[allow(clippy::too_many_arguments)]
    fn queue_call(
        &mut self,
        t: &mut Thread,
        ti: usize,
        pc: usize,
        call: Sys,
        args: &[Arg],
        ret: Ret,
        opnds: &[Opnd],
    ) -> Step {
        // Room for the call and the closes it may bring; nothing after `nop`s already handed
        // to the ring.
        if t.qlen + 2 > self.sq_cap || t.pushed {
            return Step::Block;
        }
        let int = |i: usize| match opnds.get(i) {
            Some(Opnd::Int(v)) => *v,
            _ => 0,
        };
        let fd = |i: usize| match opnds.get(i) {
            Some(Opnd::Fd(f)) => *f,
            _ => Fd::Raw(-1),
        };
        let buf = |i: usize| match opnds.get(i) {
            Some(Opnd::Buf(s)) => *s,
            _ => Span::default(),
        };
        let raw = |f: Fd| match f {
            Fd::Raw(fd) => fd,
            Fd::Fixed(_) => -1,
        };
        // An open into a slot that holds a descriptor of the process, or a close of one: the
        // descriptor is closed with close(2) (see `close_value`), so the call is issued
        // directly, after the thread's queued calls.
        let slot = |s: &FdSlot| t.slots.get(s.index()).copied().unwrap_or_default();
        let real_or_pending = |x: Slot| matches!(x, Slot::Real(_) | Slot::Pending(_));
        if let Ret::Fd(s) = ret
            && real_or_pending(slot(&s))
        {
            return self.direct_call(t, ti, pc, call, args, ret, opnds);
        }
        if call == Sys::Close
            && let Some(Arg::Fd(FdRef::Slot(s))) = args.first()
            && real_or_pending(slot(s))
        {
            return self.direct_call(t, ti, pc, call, args, ret, opnds);
        }
        // Descriptors of the process issued directly: io_uring treats a pipe or a terminal
        // at its position where pread(2) refuses (ESPIPE), reads zero bytes where read(2)
        // may refuse (EISDIR), and waits on an O_NONBLOCK pipe where read(2) and write(2) say
        // EAGAIN. (A blocking pipe goes on the ring: a wait there ends at the time limit.)
        if let Fd::Raw(raw) = fd(0)
            && (matches!(call, Sys::Pread | Sys::Pwrite)
                || (matches!(call, Sys::Read | Sys::Pread) && buf(1).is_empty())
                || (matches!(call, Sys::Read | Sys::Write) && self.nonblocking.contains(&raw)))
        {
            return self.direct_call(t, ti, pc, call, args, ret, opnds);
        }
        // A read loop: queue several reads at once.
        if call == Sys::Read
            && let Some(u) = self.rp.unroll_at(pc)
            && let Some(k) = self.unroll_count(t, ti, u, buf(1))
        {
            let target = fd(0);
            let span = buf(1);
            for _ in 0..k {
                let e = push_entry(t);
                e.op = pc as u32;
                e.call = Sys::Read;
                e.orig = Sys::Read;
                e.kind = Kind::Prefetch;
                e.rop = ROp::Read(target.target(), span, -1);
                e.fd = target.traced();
                e.ret = RetTo::None;
                e.harmless = false;
                e.may_fail = false;
                e.free = false;
            }
            self.dirty.mark(self.layout, span);
            t.prefetch.clear();
            t.prefetch_pc = pc;
            return Step::Block;
        }
        // io_uring breaks a link when a call fails, except after the calls it completes with
        // their error without failing the request (the table's `breaks_link`): in stop mode a
        // call with side
        // effects waits for those to retire, or it would run where `direct` stops before it.
        if self.mode == ErrorMode::Stop
            && has_side_effects(call, opnds)
            && t.q[..t.qlen]
                .iter()
                .any(|e| e.state != QState::Done && e.may_fail && !e.orig.spec().breaks_link)
        {
            return Step::Block;
        }
        let log = t.logging(self.mode);
        let c = self.c;
        let mut synthetic: Option<(i64, bool)> = None;
        let mut counted = call;
        let mut path: &[u8] = &[];
        let mut path2: &[u8] = &[];
        let mut mapped: Option<std::ffi::CString> = None;
        let mut ret_to = RetTo::None;
        let mut old_slot = Slot::Empty;
        let mut first_fd = -1;
        let rop = match call {
            Sys::Nop => ROp::Nop,
            Sys::Openat | Sys::Openat2 => {
                let (d, p) = match (opnds.first(), opnds.get(1)) {
                    (Some(Opnd::Fd(d)), Some(Opnd::Path(p))) => (raw(*d), *p),
                    _ => (-1, PathRef::Data(cosy_model::DataId(0))),
                };
                let bytes = path_bytes(c, &t.pathvals, &p);
                first_fd = d;
                let confined = self.issuer.root().is_some();
                let mut dirfd = d;
                if let Some(root) = self.issuer.root() {
                    counted = Sys::Openat2;
                    let cpath = std::ffi::CString::new(bytes).unwrap_or_default();
                    match root.map(d, &cpath) {
                        Ok((rd, rp)) => {
                            dirfd = rd;
                            mapped = Some(rp.into_owned());
                        }
                        Err(e) => synthetic = Some((-i64::from(e.into_raw()), false)),
                    }
                } else {
                    path = bytes;
                }
                // Where the descriptor goes.
                let Ret::Fd(s) = ret else {
                    return Step::Err(Error::Setup(format!(
                        "op {pc}: an open returns into an fd slot"
                    )));
                };
                let fixed_mode = self.rp.fixed.get(s.index()).copied().unwrap_or(false);
                let into = if synthetic.is_none()
                    && fixed_mode
                    && let Some(i) = self.alloc_fixed()
                {
                    ret_to = RetTo::Fixed(s, i);
                    OpenTarget::Slot(i)
                } else {
                    ret_to = RetTo::Real(s);
                    OpenTarget::Fd
                };
                let cloexec = if into == OpenTarget::Fd {
                    i64::from(libc::O_CLOEXEC)
                } else {
                    0
                };
                if call == Sys::Openat && !confined {
                    ROp::Openat {
                        dirfd,
                        flags: (int(2) | cloexec) as i32,
                        mode: int(3) as u32,
                        into,
                    }
                } else if call == Sys::Openat {
                    // As confine.rs: openat's int flags, its mode only when creating.
                    let flags = u64::from(int(2) as u32) | cloexec as u64;
                    let creating = cosy_model::flags::open_uses_mode(flags as i64);
                    ROp::Openat2 {
                        dirfd,
                        flags,
                        mode: if creating { int(3) as u64 & 0o7777 } else { 0 },
                        resolve: CONFINE,
                        into,
                    }
                } else {
                    let resolve = if confined {
                        int(4) as u64 | CONFINE
                    } else {
                        int(4) as u64
                    };
                    ROp::Openat2 {
                        dirfd,
                        flags: int(2) as u64 | cloexec as u64,
                        mode: int(3) as u64,
                        resolve,
                        into,
                    }
                }
            }
            Sys::Close => {
                let f = fd(0);
                first_fd = f.traced();
                if let Some(Arg::Fd(FdRef::Slot(s))) = args.first()
                    && let Some(x) = t.slots.get_mut(s.index())
                {
                    *x = Slot::Empty;
                }
                ROp::Close(f.target())
            }
            Sys::Read | Sys::Write => {
                let f = fd(0);
                first_fd = f.traced();
                if call == Sys::Read {
                    self.dirty.mark(self.layout, buf(1));
                    ROp::Read(f.target(), buf(1), -1)
                } else {
                    ROp::Write(f.target(), buf(1), -1)
                }
            }
            Sys::Pread | Sys::Pwrite => {
                let f = fd(0);
                first_fd = f.traced();
                let off = int(2);
                if off < 0 {
                    // pread64/pwrite64 refuse a negative offset before anything else.
                    synthetic = Some((-i64::from(libc::EINVAL), true));
                }
                if call == Sys::Pread {
                    self.dirty.mark(self.layout, buf(1));
                    ROp::Read(f.target(), buf(1), off)
                } else {
                    ROp::Write(f.target(), buf(1), off)
                }
            }
            Sys::Statx => {
                let d = raw(fd(0));
                first_fd = d;
                if let Some(Opnd::Path(p)) = opnds.get(1) {
                    path = path_bytes(c, &t.pathvals, p);
                }
                self.dirty.mark(self.layout, buf(4));
                ROp::Statx {
                    dirfd: d,
                    flags: int(2) as i32,
                    mask: int(3) as u32,
                    buf: buf(4),
                }
            }
            Sys::Fstat => {
                let d = raw(fd(0));
                first_fd = d;
                self.dirty.mark(self.layout, buf(1));
                ROp::Statx {
                    dirfd: d,
                    flags: libc::AT_EMPTY_PATH,
                    mask: libc::STATX_BASIC_STATS,
                    buf: buf(1),
                }
            }
            Sys::Mkdirat => {
                let d = raw(fd(0));
                first_fd = d;
                if let Some(Opnd::Path(p)) = opnds.get(1) {
                    path = path_bytes(c, &t.pathvals, p);
                }
                ROp::Mkdirat {
                    dirfd: d,
                    mode: int(2) as u32,
                }
            }
            Sys::Unlinkat => {
                let d = raw(fd(0));
                first_fd = d;
                if let Some(Opnd::Path(p)) = opnds.get(1) {
                    path = path_bytes(c, &t.pathvals, p);
                }
                ROp::Unlinkat {
                    dirfd: d,
                    flags: int(2) as i32,
                }
            }
            Sys::Renameat2 => {
                let (od, nd) = (raw(fd(0)), raw(fd(2)));
                first_fd = od;
                if let Some(Opnd::Path(p)) = opnds.get(1) {
                    path = path_bytes(c, &t.pathvals, p);
                }
                if let Some(Opnd::Path(p)) = opnds.get(3) {
                    path2 = path_bytes(c, &t.pathvals, p);
                }
                ROp::Renameat {
                    olddirfd: od,
                    newdirfd: nd,
                    flags: int(4) as u32,
                }
            }
            Sys::Fsync | Sys::Fdatasync => {
                let f = fd(0);
                first_fd = f.traced();
                ROp::Fsync(f.target(), call == Sys::Fdatasync)
            }
            Sys::Ftruncate => {
                let f = fd(0);
                first_fd = f.traced();
                let len = int(1);
                if len < 0 {
                    // ftruncate refuses a negative length before looking at the descriptor.
                    synthetic = Some((-i64::from(libc::EINVAL), true));
                }
                ROp::Ftruncate(f.target(), len as u64)
            }
            Sys::Splice => {
                let (fi, fo) = (fd(0), fd(2));
                first_fd = fi.traced();
                let len = int(4);
                let flags = int(5) as u32;
                if len == 0 {
                    // splice(2) returns 0 for a length of 0 before anything else.
                    synthetic = Some((0, true));
                } else if flags & !0xf != 0 {
                    synthetic = Some((-i64::from(libc::EINVAL), true));
                }
                ROp::Splice {
                    fd_in: fi.target(),
                    off_in: int(1),
                    fd_out: fo.target(),
                    off_out: int(3),
                    len: u32::try_from(len as u64).unwrap_or(u32::MAX),
                    flags,
                }
            }
            Sys::Getpid
            | Sys::Getppid
            | Sys::Lseek
            | Sys::Getdents64
            | Sys::CopyFileRange
            | Sys::Sendfile
            | Sys::Pipe2
            | Sys::Linkat
            | Sys::Symlinkat
            | Sys::Readlinkat
            | Sys::Fchmodat
            | Sys::Fchownat
            | Sys::Utimensat
            | Sys::Fgetxattr
            | Sys::Fsetxattr
            | Sys::Flistxattr
            | Sys::Faccessat2 => {
                return self.direct_call(t, ti, pc, call, args, ret, opnds);
            }
        };
        if let Some((r, issued)) = synthetic
            && r < 0
            && self.mode == ErrorMode::Stop
        {
            // A call the kernel would refuse at once: the thread stops here (unless a call it
            // queued before fails first).
            if issued {
                self.rec.count(counted, r, Via::Syscall);
            }
            self.emit_trace(t, ti, t.used, pc as u32, counted, first_fd, r);
            let errno = i32::try_from(r.checked_neg().unwrap_or(i64::MAX)).unwrap_or(i32::MAX);
            return Step::Err(Error::Call {
                op: pc as u32,
                call,
                errno,
            });
        }
        // The open's slot: the new descriptor now, the old one closed after the call.
        if let Ret::Fd(s) = ret
            && let Some(x) = t.slots.get_mut(s.index())
        {
            let seq = t.base + t.qlen as u64;
            let new = match ret_to {
                RetTo::Fixed(_, i) => Slot::Fixed(i),
                RetTo::Real(_) => Slot::Pending(seq),
                _ => *x,
            };
            old_slot = std::mem::replace(x, new);
        }
        let seq = t.base + t.qlen as u64;
        let (mut p1, mut p2) = std::mem::take(&mut self.paths);
        p1.clear();
        p2.clear();
        match &mapped {
            Some(m) => p1.extend_from_slice(m.to_bytes()),
            None => p1.extend_from_slice(path),
        }
        p2.extend_from_slice(path2);
        let free = match rop {
            ROp::Nop => true,
            ROp::Read(target, span, off) if off >= 0 => {
                self.established(t, target) && !t.touches(span, true)
            }
            ROp::Statx { dirfd, buf, .. } => {
                self.issuer.root().is_none() && dirfd != -1 && !t.touches(buf, true)
            }
            _ => false,
        };
        let e = push_entry(t);
        e.op = pc as u32;
        e.call = counted;
        e.orig = call;
        e.rop = rop;
        std::mem::swap(&mut e.path, &mut p1);
        std::mem::swap(&mut e.path2, &mut p2);
        e.fd = first_fd;
        e.ret = match (ret_to, ret) {
            (RetTo::None, Ret::Reg(r)) => RetTo::Reg(r),
            (x, _) => x,
        };
        e.harmless = matches!(call, Sys::Close | Sys::Nop);
        e.free = free && synthetic.is_none();
        match synthetic {
            Some((r, issued)) => {
                e.kind = Kind::Synthetic;
                e.state = QState::Done;
                e.result = r;
                e.may_fail = r < 0;
                if issued {
                    // What the direct executor counts: the call was made (and refused).
                    self.rec.count(counted, r, Via::Syscall);
                }
            }
            None => {
                e.kind = Kind::Call;
                e.may_fail = call != Sys::Nop;
            }
        }
        let may_fail = e.may_fail;
        self.paths = (p1, p2);
        if may_fail {
            t.may_fail += 1;
        }
        if let Ret::Reg(r) = ret {
            t.set(
                r,
                0,
                seq + 1,
                log || (self.mode == ErrorMode::Stop && may_fail),
            );
        }
        if !matches!(old_slot, Slot::Empty) {
            self.close_value(t, ti, pc, old_slot);
        }
        Step::Go(pc + 1)
    }

    /// Whether `target` names a descriptor no queued call of the thread opens or closes.
    fn established(&self, t: &Thread, target: Target) -> bool {
        match target {
            Target::Fd(_) => true,
            Target::Slot(i) => !t.q[..t.qlen].iter().any(|e| {
                e.state != QState::Done
                    && (e.ret == RetTo::Fixed(FdSlot(0), i)
                        || matches!(e.ret, RetTo::Fixed(_, j) if j == i)
                        || matches!(e.rop, ROp::Close(Target::Slot(j)) if j == i))
            }),
        }
    }

    /// How many reads of loop `u` to queue at once (`None`: don't unroll).
    fn unroll_count(
        &self,
        t: &Thread,
        ti: usize,
        u: &crate::ring::plan::Unroll,
        span: Span,
    ) -> Option<u32> {
        let len = t.val(&u.len)?;
        if len != span.len() as i64 || span.is_empty() {
            return None;
        }
        let Some(Op::Jump {
            bound: Some(bound), ..
        }) = self.c.ops.get(u.jump)
        else {
            return None;
        };
        let taken = self
            .plan
            .jump_index(u.jump)
            .and_then(|j| t.counters.get(j))
            .copied()
            .unwrap_or(0);
        let turns = u64::from(bound.saturating_sub(taken)) + 1;
        let position = self.position(t, ti);
        let fuel_turns = self.fuel.saturating_sub(position) / u.ops_per_turn.max(1);
        let room = (self.sq_cap.saturating_sub(t.qlen + 2)) as u64;
        let k = turns
            .min(fuel_turns)
            .min(room)
            .min(u64::from(t.unroll_k.min(MAX_UNROLL)));
        (k >= 2).then_some(k as u32)
    }

    fn alloc_fixed(&mut self) -> Option<u32> {
        let i = self.free.pop()?;
        if let Some(s) = self.fixed.get_mut(i as usize) {
            *s = FState::Reserved;
        }
        Some(i)
    }

    /// Applies a call's result now (a prefetched read): the register, the error mode.
    fn apply(
        &mut self,
        t: &mut Thread,
        ti: usize,
        pc: usize,
        call: Sys,
        ret: Ret,
        r: i64,
    ) -> Result<(), Error> {
        let log = t.logging(self.mode);
        if r < 0 {
            let errno = i32::try_from(r.checked_neg().unwrap_or(i64::MAX)).unwrap_or(i32::MAX);
            if self.mode == ErrorMode::Stop {
                return Err(Error::Call {
                    op: pc as u32,
                    call,
                    errno,
                });
            }
            self.emit_error(
                t,
                ti,
                CallError {
                    op: pc as u32,
                    call,
                    errno,
                },
            );
        }
        if let Ret::Reg(reg) = ret {
            t.set(reg, r, 0, log);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_trace(
        &mut self,
        t: &mut Thread,
        ti: usize,
        u: u64,
        op: u32,
        call: Sys,
        fd: i32,
        r: i64,
    ) {
        if !self.rec.tracing() {
            return;
        }
        if ti == MAIN {
            self.rec.trace(op, call, fd, r);
        } else {
            t.trace.push((
                u,
                TraceEntry {
                    op,
                    call,
                    fd,
                    result: r,
                },
            ));
        }
    }

    fn emit_error(&mut self, t: &mut Thread, ti: usize, e: CallError) {
        if ti == MAIN {
            self.errors.push(e);
        } else {
            t.errors.push((t.used, e));
        }
    }

    // ---------------------------------------------------------------- functions

    fn step_call(
        &mut self,
        t: &mut Thread,
        pc: usize,
        dst: Option<Reg>,
        name: &str,
        args: &[Arg],
        log: bool,
    ) -> Step {
        let op = pc as u32;
        let Some(f) = self.funcs.get(name) else {
            return Step::Err(Error::Function {
                op,
                func: name.to_string(),
                message: "not registered".into(),
            });
        };
        let c = self.c;
        let mut operands = Vec::with_capacity(args.len());
        for a in args {
            operands.push(match a {
                Arg::Buf(r) => match self.range(t, pc, r, 0, None) {
                    Some(Ok(s)) => Operand::Buf(s),
                    Some(Err(e)) => return Step::Err(e),
                    None => return Step::Block,
                },
                Arg::Value(v) => match t.val(v) {
                    Some(x) => Operand::Int(x),
                    None => return Step::Block,
                },
                Arg::Fd(fr) => match self.fd_of(t, fr) {
                    Some(Fd::Raw(fd)) => Operand::Int(i64::from(fd)),
                    Some(Fd::Fixed(i)) => Operand::Int(i64::from(Fd::Fixed(i).traced())),
                    None => return Step::Block,
                },
                Arg::Path(p) => Operand::Path(path_bytes(c, &t.pathvals, p)),
            });
        }
        let out = out_operand(&f, &operands);
        for o in &operands {
            if let Operand::Buf(s) = o
                && t.touches(*s, Some(*s) == out)
            {
                return Step::Block;
            }
        }
        if let Some(o) = out {
            self.dirty.mark(self.layout, o);
        }
        let mem = match (&mut self.ring, &mut self.own_mem) {
            (_, Some(m)) => m.as_mut_slice(),
            (Some(r), None) if r.region_len() > 0 => match r.region_mut() {
                Ok(m) => m,
                Err(e) => {
                    return Step::Err(Error::Setup(format!(
                        "internal error of the ring executor: {e}"
                    )));
                }
            },
            _ => &mut [],
        };
        match call_function(&f, op, name, &operands, mem) {
            Ok(v) => {
                drop(operands);
                if let Some(d) = dst {
                    t.set(d, v, 0, log);
                }
                Step::Go(pc + 1)
            }
            Err(e) => Step::Err(e),
        }
    }

    // ---------------------------------------------------------------- maps

    fn step_map_begin(
        &mut self,
        t: &mut Thread,
        ti: usize,
        pc: usize,
        source: &cosy_model::MapSource,
        end: usize,
    ) -> Step {
        // The source's values and, for dirents, the bytes of its range.
        let dirents_span = match source {
            cosy_model::MapSource::Dirents { buf, .. } => match self.range(t, pc, buf, 0, None) {
                Some(Ok(s)) => Some(s),
                Some(Err(e)) => return Step::Err(e),
                None => return Step::Block,
            },
            cosy_model::MapSource::Range {
                start, end, step, ..
            } => {
                if t.val(start).is_none() || t.val(end).is_none() || t.val(step).is_none() {
                    return Step::Block;
                }
                None
            }
            _ => None,
        };
        if let Some(s) = dirents_span
            && t.touches(s, false)
        {
            return Step::Block;
        }
        let concurrent = ti == MAIN
            && t.frames.is_empty()
            && self.map.is_none()
            && self.rp.concurrent.get(pc).copied().unwrap_or(false)
            && self.workers > 1;
        if concurrent && t.qlen > 0 {
            // Iterations start from everything the main program queued done.
            return Step::Block;
        }
        let items = {
            let c = self.c;
            let mem: &[u8] = match self.mem() {
                Ok(m) => m,
                Err(e) => return Step::Err(e),
            };
            let name = |b: BufId| {
                c.buffers
                    .get(b.index())
                    .map_or_else(|| format!("#{}", b.0), |b| b.name.clone())
            };
            Items::new(
                pc,
                source,
                |v| t.val(v).unwrap_or(0),
                |buf| {
                    let span = dirents_span.unwrap_or_default();
                    parse_dirents(arena::bytes(mem, span)).map_err(|detail| Error::Range {
                        op: pc as u32,
                        buffer: name(buf.buf),
                        detail,
                    })
                },
            )
        };
        let mut items = match items {
            Ok(i) => i,
            Err(e) => return Step::Err(e),
        };
        if concurrent && let Some(step) = self.run_template(t, pc, &mut items) {
            return step;
        }
        if concurrent && items.remaining() > 1 {
            self.map = Some(Active {
                begin: pc,
                end,
                items,
                next: 0,
                oldest: 0,
                limit: u64::MAX,
                order: VecDeque::new(),
                start: t.regs.clone(),
            });
            return Step::Map;
        }
        let snapshot = match self.plan.map(pc) {
            Some(info) => info
                .locals
                .iter()
                .map(|r| {
                    (
                        t.regs.get(r.index()).copied().unwrap_or(0),
                        t.pend.get(r.index()).copied().unwrap_or(0),
                    )
                })
                .collect(),
            None => Vec::new(),
        };
        t.frames.push(Frame {
            begin: pc,
            end,
            items,
            snapshot,
        });
        self.next_iteration(t, ti, pc, true)
    }

    fn step_map_end(&mut self, t: &mut Thread, ti: usize, pc: usize, begin: usize) -> Step {
        let info = self.plan.map(begin);
        let fd_slots: &[FdSlot] = info.map_or(&[], |i| i.fd_slots.as_slice());
        // Descriptors of the process are closed with close(2), after the queued calls.
        let pending = |t: &Thread| {
            fd_slots.iter().any(|s| match t.slots.get(s.index()) {
                Some(Slot::Pending(_)) => true,
                Some(Slot::Real(_)) => t.qlen > 0,
                _ => false,
            })
        };
        if t.pushed
            && fd_slots
                .iter()
                .any(|s| matches!(t.slots.get(s.index()), Some(Slot::Fixed(_))))
        {
            return Step::Block;
        }
        let top = t.frames.is_empty();
        if top {
            // The end of an iteration of the concurrent map.
            if pending(t) {
                return Step::Block;
            }
            let last = self.map.as_ref().is_none_or(|a| {
                a.items.remaining() == 0 && a.next == t.iter + 1 || a.limit <= t.iter
            });
            if !last && self.time_up() {
                return Step::Err(Error::Time {
                    op: pc as u32,
                    limit: self.limit,
                });
            }
            if t.qlen + fd_slots.len() > self.sq_cap {
                return Step::Block;
            }
            self.close_slots(t, ti, pc, fd_slots);
            return Step::IterEnd;
        }
        // An inline map: the next iteration starts in this thread.
        if pending(t) {
            return Step::Block;
        }
        let more = t.frames.last().is_some_and(|f| f.items.remaining() > 0);
        if more && let Some(info) = info {
            for &b in &info.zero_bufs {
                if let Ok(s) = self.layout.whole(b, t.lane)
                    && t.touches(s, true)
                {
                    return Step::Block;
                }
            }
        }
        if t.qlen + fd_slots.len() > self.sq_cap {
            return Step::Block;
        }
        self.close_slots(t, ti, pc, fd_slots);
        self.next_iteration(t, ti, pc, false)
    }

    /// Starts the next iteration of the thread's innermost inline map.
    fn next_iteration(&mut self, t: &mut Thread, _ti: usize, pc: usize, first: bool) -> Step {
        let plan = self.plan;
        let log = t.logging(self.mode);
        let Some(frame) = t.frames.last_mut() else {
            return Step::Go(pc + 1);
        };
        let (begin, end) = (frame.begin, frame.end);
        let Some(binding) = frame.items.next(&self.c.data) else {
            t.frames.pop();
            return Step::Go(end + 1);
        };
        let info = plan.map(begin);
        if !first {
            if self.time_up() {
                return Step::Err(Error::Time {
                    op: pc as u32,
                    limit: self.limit,
                });
            }
            if let Some(info) = info {
                let snapshot = t
                    .frames
                    .last()
                    .map(|f| f.snapshot.clone())
                    .unwrap_or_default();
                for (r, (v, p)) in info.locals.iter().zip(snapshot) {
                    t.set(*r, v, p, log);
                }
            }
        }
        bind(t, binding, log);
        if let Some(info) = info {
            for &j in &info.jumps {
                if let Some(x) = self.plan.jump_index(j).and_then(|j| t.counters.get_mut(j)) {
                    *x = 0;
                }
            }
            let lane = t.lane;
            let layout = self.layout;
            let mut dirty = std::mem::take(&mut self.dirty);
            if let Ok(mem) = self.mem() {
                for &b in &info.zero_bufs {
                    dirty.clear(layout, mem, b, lane);
                }
            }
            self.dirty = dirty;
        }
        Step::Go(begin + 1)
    }

    /// Spawns iterations of the concurrent map into idle workers.
    fn spawn_all(&mut self) {
        while let Some(a) = &self.map {
            if a.next > a.limit {
                break;
            }
            if self.idle.is_empty() {
                let made = self.threads.len() - 1;
                if made >= self.workers {
                    break;
                }
                self.threads.push(pooled(self.c, self.plan.jumps(), made));
                self.idle.push(made + 1);
            }
            if !self.spawn() {
                break;
            }
        }
        self.maybe_end_map();
    }

    /// Starts the next iteration in an idle worker; false when there are no more items.
    fn spawn(&mut self) -> bool {
        let Some(a) = &mut self.map else {
            return false;
        };
        let Some(binding) = a.items.next(&self.c.data) else {
            return false;
        };
        let Some(w) = self.idle.pop() else {
            return false;
        };
        let k = a.next;
        a.next += 1;
        let spec = k != a.oldest;
        a.order.push_back(w);
        let begin = a.begin;
        let info = self.plan.map(begin);
        let (main, rest) = self.threads.split_at_mut(1);
        let m = &main[MAIN];
        let t = &mut rest[w - 1];
        t.regs.copy_from_slice(&a.start);
        t.pend.fill(0);
        t.slots.copy_from_slice(&m.slots);
        if let Some(info) = info {
            for r in &info.accumulators {
                if let Some(x) = t.regs.get_mut(r.index()) {
                    *x = 0;
                }
            }
            for &j in &info.jumps {
                if let Some(x) = self.plan.jump_index(j).and_then(|j| t.counters.get_mut(j)) {
                    *x = 0;
                }
            }
        }
        t.frames.clear();
        t.used = 0;
        t.qlen = 0;
        t.base = 0;
        t.may_fail = 0;
        t.undo.clear();
        t.undo_refs = 0;
        t.pcs.clear();
        t.errors.clear();
        t.trace.clear();
        t.failed = None;
        t.prefetch.clear();
        t.prefetch_pc = usize::MAX;
        t.spec = spec;
        t.iter = k;
        t.pc = begin + 1;
        t.st = St::Run;
        bind(t, binding, false);
        let lane = t.lane;
        if let Some(info) = info
            && !info.zero_bufs.is_empty()
        {
            let layout = self.layout;
            let mut dirty = std::mem::take(&mut self.dirty);
            if let Ok(mem) = self.mem() {
                for &b in &info.zero_bufs {
                    dirty.clear(layout, mem, b, lane);
                }
            }
            self.dirty = dirty;
        }
        true
    }

    /// Commits the oldest iterations that are done, makes the new oldest exact, spawns more,
    /// and detects the run's end of the map or its error.
    fn settle(&mut self) {
        if self.error.is_some() {
            return;
        }
        // The main program's own error.
        {
            let m = &self.threads[MAIN];
            if m.st == St::Failed && m.qlen == 0 {
                let e = m.failed.clone().unwrap_or(Error::Setup("unknown".into()));
                self.error = Some((e, MAIN));
                return;
            }
        }
        loop {
            let Some(a) = &self.map else { return };
            let Some(&w) = a.order.front() else {
                self.spawn_all();
                if self.map.as_ref().is_some_and(|a| a.order.is_empty()) {
                    return;
                }
                continue;
            };
            let oldest = a.oldest;
            let begin = a.begin;
            if self.threads[w].spec {
                self.make_exact(w);
            }
            let t = &mut self.threads[w];
            if t.st == St::WaitOldest {
                t.st = St::Run;
            }
            debug_assert_eq!(t.iter, oldest);
            match t.st {
                St::Failed if t.qlen == 0 => {
                    let e = t.failed.clone().unwrap_or(Error::Setup("unknown".into()));
                    self.error = Some((e, w));
                    return;
                }
                St::AtEnd if t.qlen == 0 => {
                    let mut regs = std::mem::take(&mut self.threads[MAIN].regs);
                    merge(self.c, self.plan, begin, &self.threads[w], &mut regs);
                    self.threads[MAIN].regs = regs;
                    let t = &mut self.threads[w];
                    self.base += t.used;
                    self.errors.extend(t.errors.drain(..).map(|(_, e)| e));
                    if let Some(tr) = &mut self.rec.trace {
                        tr.extend(t.trace.drain(..).map(|(_, e)| e));
                    }
                    t.st = St::Idle;
                    if let Some(a) = self.map.as_mut() {
                        a.order.pop_front();
                        a.oldest += 1;
                    }
                    self.idle.push(w);
                    self.spawn_all();
                }
                _ => return,
            }
        }
    }

    /// Iteration thread `w` became the oldest: its ops are in order from now on. If it ran
    /// past the fuel limit, it is rolled back to the limit.
    fn make_exact(&mut self, w: usize) {
        let committed = self.committed();
        let fuel = self.fuel;
        let mut t = self.take(w);
        t.spec = false;
        let limit = fuel.saturating_sub(committed);
        let failed_before = t.failed.is_some() && t.used <= limit;
        if t.used > limit && !failed_before {
            let u = limit;
            let op = t.pcs.get(u as usize).copied().unwrap_or(t.pc as u32);
            t.rollback_to(u);
            // Calls queued at or after the limit never happened.
            let keep = t.q[..t.qlen].iter().take_while(|e| e.used < u).count();
            for k in keep..t.qlen {
                let e = std::mem::take(&mut t.q[k]);
                self.release(&e);
                t.q[k] = e;
            }
            t.qlen = keep;
            t.may_fail = t.q[..keep]
                .iter()
                .filter(|e| e.may_fail && e.state != QState::Done)
                .count();
            t.used = u;
            t.failed = Some(Error::Fuel { op, fuel });
            t.st = St::Failed;
            if let Some(a) = &mut self.map {
                a.limit = a.limit.min(t.iter);
            }
        }
        t.pcs.clear();
        if t.may_fail == 0 || self.mode == ErrorMode::Continue {
            t.undo.clear();
            t.undo_refs = 0;
        }
        self.put(w, t);
    }

    /// The concurrent map is over when every item was spawned and committed (or no later
    /// iteration may commit).
    fn maybe_end_map(&mut self) {
        let Some(a) = &self.map else { return };
        let exhausted = a.items.remaining() == 0 || a.next > a.limit;
        if !(exhausted && a.order.is_empty()) {
            return;
        }
        let end = a.end;
        let main = &mut self.threads[MAIN];
        main.pc = end + 1;
        main.st = St::Run;
        self.map = None;
    }

    // ---------------------------------------------------------------- rounds

    /// Submits every thread's queued calls, waits for all of them, and retires them.
    fn round(&mut self) -> Result<(), Error> {
        let Some(ring) = self.ring.as_deref_mut() else {
            return Err(Error::Setup(
                "internal error of the ring executor: calls queued without a ring".into(),
            ));
        };
        let stop = self.mode == ErrorMode::Stop;
        for (ti, t) in self.threads.iter_mut().enumerate() {
            if t.qlen == 0 {
                continue;
            }
            // One scan: what is queued, and whether all of it is independent.
            let mut first = None;
            let mut all_free = true;
            for (k, e) in t.q[..t.qlen].iter().enumerate() {
                if e.state == QState::Queued {
                    first.get_or_insert(k);
                    all_free &= e.free;
                }
            }
            let Some(first) = first else { continue };
            if all_free {
                for e in t.q[first..t.qlen].iter_mut() {
                    e.link = Link::None;
                    e.chained = false;
                }
            } else {
                // Links, from the last entry backwards: hard where the rest of the chain is
                // harmless (or in continue mode), soft inside an unrolled loop.
                let mut tail_harmless = true;
                let mut next_prefetch = false;
                let mut last = true;
                for e in t.q[first..t.qlen].iter_mut().rev() {
                    if e.state != QState::Queued {
                        continue;
                    }
                    e.link = if last {
                        Link::None
                    } else if e.kind == Kind::Prefetch && next_prefetch {
                        Link::Soft
                    } else if !stop || tail_harmless {
                        Link::Hard
                    } else {
                        Link::Soft
                    };
                    e.chained = true;
                    last = false;
                    tail_harmless &= e.harmless;
                    next_prefetch = e.kind == Kind::Prefetch;
                }
                t.q[first].chained = false;
            }
            for (k, e) in t.q[..t.qlen].iter_mut().enumerate().skip(first) {
                if e.state != QState::Queued {
                    continue;
                }
                let ud = ((ti as u64) << 32) | k as u64;
                push_op(ring, e, ud)?;
                e.state = QState::InFlight;
                e.fresh = true;
            }
        }
        let (_, finished) = ring
            .submit_and_wait_until(usize::MAX, self.deadline.instant())
            .map_err(|e| Error::Setup(format!("io_uring: {e}")))?;
        let mut done = std::mem::take(&mut self.done);
        done.clear();
        ring.drain_completions(&mut done);
        let timed_out = !finished;
        let mut waited_at = None;
        if timed_out {
            // The call the oldest thread waits for: the first of its calls that has not
            // completed.
            let ti = self
                .map
                .as_ref()
                .and_then(|a| a.order.front().copied())
                .unwrap_or(MAIN);
            let t = &self.threads[ti];
            waited_at = t.q[..t.qlen]
                .iter()
                .enumerate()
                .find(|(k, e)| {
                    e.state == QState::InFlight
                        && !done
                            .iter()
                            .any(|c| c.user_data == ((ti as u64) << 32) | *k as u64)
                })
                .map(|(_, e)| e.op);
            // Stop what can be stopped and wait for the rest.
            ring.cancel_staged();
            let _ = ring.push(&cosy_uring::Op::CancelAll, u64::MAX, Link::None);
            let _ = ring.submit_and_wait(usize::MAX);
            ring.drain_completions(&mut done);
        }
        for c in &done {
            if c.user_data == u64::MAX {
                continue;
            }
            let ti = (c.user_data >> 32) as usize;
            let k = (c.user_data & 0xffff_ffff) as usize;
            if let Some(e) = self.threads.get_mut(ti).and_then(|t| t.q.get_mut(k)) {
                e.result = i64::from(c.result);
                e.state = QState::Done;
            }
        }
        self.done = done;
        // What ran, what a broken link cancelled; descriptors opened and closed; counters.
        for ti in 0..self.threads.len() {
            if self.threads[ti].qlen > 0 {
                let mut t = self.take(ti);
                self.completed(&mut t);
                self.put(ti, t);
            }
        }
        if timed_out {
            return Err(Error::Time {
                op: waited_at.unwrap_or_else(|| self.blocked_op()),
                limit: self.limit,
            });
        }
        self.retire_all();
        Ok(())
    }

    /// Retires every thread's completed calls and lets blocked threads try again.
    fn retire_all(&mut self) {
        for ti in 0..self.threads.len() {
            if self.threads[ti].qlen > 0 {
                self.retire(ti);
            }
        }
        for t in &mut self.threads {
            if t.st == St::Blocked {
                t.st = St::Run;
            }
        }
    }

    /// The operation the oldest thread waits at (for a time limit hit while waiting).
    fn blocked_op(&self) -> u32 {
        let ti = self
            .map
            .as_ref()
            .and_then(|a| a.order.front().copied())
            .unwrap_or(MAIN);
        let t = &self.threads[ti];
        t.q[..t.qlen]
            .iter()
            .find(|e| e.state != QState::Done)
            .map_or(t.pc as u32, |e| e.op)
    }

    /// Classifies the calls of `t` completed in this round: those a broken link cancelled
    /// never ran; the others are counted and update the descriptors the run owns.
    fn completed(&mut self, t: &mut Thread) {
        t.pushed = false;
        let mut broken = false;
        for e in t.q[..t.qlen].iter_mut() {
            if !e.fresh {
                continue;
            }
            e.fresh = false;
            if !e.chained {
                broken = false;
            }
            match e.state {
                // Never submitted (a timeout cancelled what was staged).
                QState::InFlight => e.state = QState::Cancelled,
                QState::Done if broken && e.result == -i64::from(libc::ECANCELED) => {
                    e.state = QState::Cancelled;
                }
                QState::Done => {
                    self.registry(e.rop, e.result);
                    self.rec.count(e.call, e.result, Via::Ring);
                    if e.link == Link::Soft {
                        let short = e
                            .rop
                            .asked()
                            .is_some_and(|n| e.result >= 0 && e.result != n);
                        if e.result < 0 || short {
                            broken = true;
                        }
                    }
                }
                _ => {}
            }
            if e.link == Link::None {
                broken = false;
            }
        }
    }

    /// What a completed call did to the descriptors the run owns.
    fn registry(&mut self, rop: ROp, result: i64) {
        match rop {
            ROp::Openat { into, .. } | ROp::Openat2 { into, .. } => match into {
                OpenTarget::Fd => {
                    if result >= 0 {
                        self.owned.push(result as i32);
                        self.nonblocking.retain(|&o| i64::from(o) != result);
                    }
                }
                OpenTarget::Slot(i) => {
                    if let Some(s) = self.fixed.get_mut(i as usize) {
                        if result >= 0 {
                            *s = FState::Occupied;
                        } else if *s != FState::Free {
                            *s = FState::Free;
                            self.free.push(i);
                        }
                    }
                }
                OpenTarget::AutoSlot => {}
            },
            ROp::Close(Target::Slot(i)) => {
                if let Some(s) = self.fixed.get_mut(i as usize)
                    && *s != FState::Free
                {
                    *s = FState::Free;
                    self.free.push(i);
                }
            }
            ROp::Close(Target::Fd(fd)) => self.owned.retain(|&o| o != fd),
            _ => {}
        }
    }

    /// Applies thread `ti`'s completed calls in program order.
    fn retire(&mut self, ti: usize) {
        let mut t = self.take(ti);
        let mut k = 0;
        let mut group_full = true;
        let mut group = false;
        while k < t.qlen {
            let state = t.q[k].state;
            let kind = t.q[k].kind;
            if state == QState::Cancelled && kind == Kind::Prefetch {
                // Past the loop's last read: never needed.
                group_full = false;
                k += 1;
                continue;
            }
            if state != QState::Done {
                break;
            }
            let seq = t.seq(k);
            let e = &t.q[k];
            let (op, orig, call, r, used, fd, ret) =
                (e.op, e.orig, e.call, e.result, e.used, e.fd, e.ret);
            if e.may_fail {
                t.may_fail = t.may_fail.saturating_sub(1);
            }
            match kind {
                Kind::Prefetch => {
                    group = true;
                    if r != e.rop.asked().unwrap_or(-1) {
                        group_full = false;
                    }
                    t.prefetch.push_back(r);
                }
                Kind::Close => {
                    self.emit_trace(&mut t, ti, used, op, Sys::Close, fd, r);
                }
                Kind::Call | Kind::Synthetic => {
                    let traced = match ret {
                        RetTo::Fixed(_, i) if r >= 0 => {
                            i64::from(DIRECT_FD_BASE.saturating_add(i as i32))
                        }
                        _ => r,
                    };
                    if r < 0 && self.mode == ErrorMode::Stop {
                        let errno =
                            i32::try_from(r.checked_neg().unwrap_or(i64::MAX)).unwrap_or(i32::MAX);
                        t.rollback_to(used);
                        self.emit_trace(&mut t, ti, used, op, call, fd, traced);
                        t.used = used + 1;
                        // The rest never ran (cancelled) or is undone: drop it.
                        k += 1;
                        for e in t.q[k..t.qlen].iter() {
                            self.release(e);
                        }
                        t.qlen = k;
                        t.may_fail = 0;
                        t.undo.clear();
                        t.undo_refs = 0;
                        t.failed = Some(Error::Call {
                            op,
                            call: orig,
                            errno,
                        });
                        t.st = St::Failed;
                        if ti != MAIN
                            && let Some(a) = &mut self.map
                        {
                            a.limit = a.limit.min(t.iter);
                        }
                        break;
                    }
                    self.emit_trace(&mut t, ti, used, op, call, fd, traced);
                    if r < 0 {
                        let errno =
                            i32::try_from(r.checked_neg().unwrap_or(i64::MAX)).unwrap_or(i32::MAX);
                        let ce = CallError {
                            op,
                            call: orig,
                            errno,
                        };
                        if ti == MAIN {
                            self.errors.push(ce);
                        } else {
                            t.errors.push((used, ce));
                        }
                    }
                    match ret {
                        RetTo::None => {}
                        RetTo::Reg(reg) => {
                            let i = reg.index();
                            if t.pend.get(i).copied() == Some(seq + 1) {
                                t.regs[i] = r;
                                t.pend[i] = 0;
                            }
                        }
                        RetTo::Fixed(s, i) => {
                            if r < 0
                                && let Some(x) = t.slots.get_mut(s.index())
                                && *x == Slot::Fixed(i)
                            {
                                *x = Slot::Empty;
                            }
                        }
                        RetTo::Real(s) => {
                            if let Some(x) = t.slots.get_mut(s.index())
                                && *x == Slot::Pending(seq)
                            {
                                *x = if r >= 0 {
                                    Slot::Real(r as i32)
                                } else {
                                    Slot::Empty
                                };
                            }
                        }
                    }
                    if t.undo_refs > 0 {
                        for u in &mut t.undo {
                            if u.pend == seq + 1 {
                                u.pend = 0;
                                u.val = r;
                                t.undo_refs -= 1;
                            }
                        }
                    }
                }
            }
            k += 1;
        }
        if group && group_full {
            t.unroll_k = (t.unroll_k.saturating_mul(2)).min(MAX_UNROLL);
        }
        // Drop the retired prefix; what is left was cancelled by a short read: queue it again.
        if k > 0 {
            t.q[..t.qlen].rotate_left(k);
            t.qlen -= k;
            t.base += k as u64;
        }
        for e in t.q[..t.qlen].iter_mut() {
            if e.state == QState::Cancelled {
                e.state = QState::Queued;
            }
        }
        if t.qlen == 0 && t.may_fail == 0 && !t.spec {
            t.undo.clear();
            t.undo_refs = 0;
        }
        self.put(ti, t);
    }

    /// Releases what a dropped entry reserved.
    fn release(&mut self, e: &Entry) {
        if e.state == QState::Done {
            return;
        }
        if let ROp::Openat {
            into: OpenTarget::Slot(i),
            ..
        }
        | ROp::Openat2 {
            into: OpenTarget::Slot(i),
            ..
        } = e.rop
            && let Some(s) = self.fixed.get_mut(i as usize)
            && *s == FState::Reserved
        {
            *s = FState::Free;
            self.free.push(i);
        }
    }

    // ---------------------------------------------------------------- the end

    /// Closes every descriptor the run opened: the main program's slots first (in order, at
    /// operation `ops.len()`), then anything an abandoned iteration left.
    fn cleanup(&mut self) {
        let end = self.c.ops.len() as u32;
        // Nothing queued runs any more.
        for ti in 0..self.threads.len() {
            let t = self.take(ti);
            for e in &t.q[..t.qlen] {
                self.release(e);
            }
            self.put(ti, t);
            self.threads[ti].qlen = 0;
        }
        let mut closes: Vec<Fd> = Vec::new();
        let main_slots = self.threads[MAIN].slots.clone();
        for s in main_slots {
            match s {
                Slot::Real(fd) if self.owned.contains(&fd) => {
                    self.owned.retain(|&o| o != fd);
                    closes.push(Fd::Raw(fd));
                }
                Slot::Fixed(i) if self.fixed.get(i as usize) == Some(&FState::Occupied) => {
                    if let Some(x) = self.fixed.get_mut(i as usize) {
                        *x = FState::Free;
                    }
                    closes.push(Fd::Fixed(i));
                }
                _ => {}
            }
        }
        closes.extend(self.owned.drain(..).map(Fd::Raw));
        for (i, s) in self.fixed.iter_mut().enumerate() {
            if *s == FState::Occupied {
                closes.push(Fd::Fixed(i as u32));
            }
            *s = FState::Free;
        }
        // Descriptors of the process with close(2); direct descriptors through the ring.
        let mut fixed = Vec::new();
        for f in &closes {
            match f {
                Fd::Raw(fd) => {
                    let r = sys::to_ret(sys::close(*fd));
                    self.rec.count(Sys::Close, r, Via::Syscall);
                    self.rec.trace(end, Sys::Close, *fd, r);
                }
                Fd::Fixed(i) => fixed.push(*i),
            }
        }
        if let Some(ring) = self.ring.as_deref_mut()
            && !fixed.is_empty()
        {
            let mut ok = true;
            for (k, i) in fixed.iter().enumerate() {
                ok &= ring
                    .push(
                        &cosy_uring::Op::Close {
                            fd: Target::Slot(*i),
                        },
                        k as u64,
                        Link::None,
                    )
                    .is_ok();
            }
            let mut done = Vec::new();
            if ok && ring.submit_and_wait(usize::MAX).is_ok() {
                ring.drain_completions(&mut done);
            } else {
                ring.cancel_staged();
            }
            done.sort_by_key(|c| c.user_data);
            for c in done {
                let r = i64::from(c.result);
                self.rec.count(Sys::Close, r, Via::Ring);
                if let Some(i) = fixed.get(c.user_data as usize) {
                    self.rec.trace(end, Sys::Close, Fd::Fixed(*i).traced(), r);
                }
            }
        }
        self.free = (0..self.fixed.len() as u32).rev().collect();
    }
}

/// Whether `call` with operands `opnds` changes something a later failure cannot undo
/// ([`cosy_model::SysSpec::may_write_with`], the operands' values known).
fn has_side_effects(call: Sys, opnds: &[Opnd]) -> bool {
    call.spec().may_write_with(|i| match opnds.get(i) {
        Some(Opnd::Int(v)) => Some(*v),
        _ => None,
    })
}

/// Whether this executor builds requests for `op` (the others' calls are issued directly).
pub(crate) fn builds(op: UringOp) -> bool {
    match op {
        UringOp::Nop
        | UringOp::OpenAt
        | UringOp::OpenAt2
        | UringOp::Close
        | UringOp::Read
        | UringOp::Write
        | UringOp::Statx
        | UringOp::MkDirAt
        | UringOp::UnlinkAt
        | UringOp::RenameAt
        | UringOp::Fsync
        | UringOp::Ftruncate
        | UringOp::Splice => true,
        UringOp::LinkAt | UringOp::SymlinkAt | UringOp::FGetXattr | UringOp::FSetXattr => false,
    }
}

/// A new entry at the end of `t`'s queue (reusing the allocations of a retired one).
fn push_entry(t: &mut Thread) -> &mut Entry {
    if t.qlen == t.q.len() {
        t.q.push(Entry::default());
    }
    let used = t.used;
    let e = &mut t.q[t.qlen];
    t.qlen += 1;
    e.state = QState::Queued;
    e.result = 0;
    e.used = used;
    e.link = Link::None;
    e.chained = false;
    e.fresh = false;
    e.kind = Kind::Call;
    e.ret = RetTo::None;
    e.path.clear();
    e.path2.clear();
    e
}

/// Binds an item's variables in `t`.
fn bind(t: &mut Thread, b: Binding, log: bool) {
    match b {
        Binding::Path(var, bytes) => {
            if let Some(p) = t.pathvals.get_mut(var.index()) {
                *p = bytes;
            }
        }
        Binding::Reg(r, v) => t.set(r, v, 0, log),
        Binding::Dirent(name, bytes, kind, k, ino, i) => {
            if let Some(p) = t.pathvals.get_mut(name.index()) {
                *p = bytes;
            }
            t.set(kind, k, 0, log);
            t.set(ino, i, 0, log);
        }
    }
}

/// What an iteration leaves in the main program's registers: its accumulations added, its
/// own registers (and the map's variables) as the last iteration left them.
fn merge(c: &Compound, plan: &Plan, begin: usize, t: &Thread, regs: &mut [i64]) {
    let Some(info) = plan.map(begin) else { return };
    let mut copy = |r: &Reg| {
        let i = r.index();
        if let (Some(x), Some(v)) = (regs.get_mut(i), t.regs.get(i)) {
            *x = *v;
        }
    };
    for r in &info.locals {
        copy(r);
    }
    if let Some(Op::MapBegin { source, .. }) = c.ops.get(begin) {
        match source {
            cosy_model::MapSource::Offsets { var, .. }
            | cosy_model::MapSource::Range { var, .. } => copy(var),
            cosy_model::MapSource::Dirents { kind, ino, .. } => {
                copy(kind);
                copy(ino);
            }
            cosy_model::MapSource::Paths { .. } => {}
        }
    }
    for r in &info.accumulators {
        let i = r.index();
        if let (Some(x), Some(d)) = (regs.get_mut(i), t.regs.get(i)) {
            *x = x.wrapping_add(*d);
        }
    }
}

/// Stages entry `e` on the ring with `user_data`.
fn push_op(ring: &mut Ring, e: &Entry, ud: u64) -> Result<(), Error> {
    use cosy_uring::Op as U;
    let op = match e.rop {
        ROp::Nop => U::Nop,
        ROp::Openat {
            dirfd,
            flags,
            mode,
            into,
        } => U::Openat {
            dirfd,
            path: &e.path,
            flags,
            mode,
            into,
        },
        ROp::Openat2 {
            dirfd,
            flags,
            mode,
            resolve,
            into,
        } => U::Openat2 {
            dirfd,
            path: &e.path,
            flags,
            mode,
            resolve,
            into,
        },
        ROp::Close(fd) => U::Close { fd },
        ROp::Read(fd, s, offset) => U::Read {
            fd,
            buf: s.range(),
            offset,
        },
        ROp::Write(fd, s, offset) => U::Write {
            fd,
            buf: s.range(),
            offset,
        },
        ROp::Statx {
            dirfd,
            flags,
            mask,
            buf,
        } => U::Statx {
            dirfd,
            path: &e.path,
            flags,
            mask,
            buf: buf.offset(),
        },
        ROp::Mkdirat { dirfd, mode } => U::Mkdirat {
            dirfd,
            path: &e.path,
            mode,
        },
        ROp::Unlinkat { dirfd, flags } => U::Unlinkat {
            dirfd,
            path: &e.path,
            flags,
        },
        ROp::Renameat {
            olddirfd,
            newdirfd,
            flags,
        } => U::Renameat {
            olddirfd,
            oldpath: &e.path,
            newdirfd,
            newpath: &e.path2,
            flags,
        },
        ROp::Fsync(fd, datasync) => U::Fsync { fd, datasync },
        ROp::Ftruncate(fd, len) => U::Ftruncate { fd, len },
        ROp::Splice {
            fd_in,
            off_in,
            fd_out,
            off_out,
            len,
            flags,
        } => U::Splice {
            fd_in,
            off_in,
            fd_out,
            off_out,
            len,
            flags,
        },
    };
    ring.push(&op, ud, e.link)
        .map_err(|err| Error::Setup(format!("io_uring: op {}: {err}", e.op)))
}
