//! The interpreter core: the only place the semantics of docs/semantics.md live.
//!
//! A [`Lane`] is one instance of the interpreter's state — registers, fd slots, path
//! variables, loop counters, map frames, fuel, the errors of `continue` mode — running a
//! compound's operations in order. It issues system calls through an [`Issuer`], which
//! answers each call either *ready* (a result now: the direct issuer, always) or *pending* (a
//! [`Ticket`]: the ring issuer queued it). A lane goes on past pending calls only with what it
//! can undo — further calls whose operands it has, arithmetic, moves and jumps on values it
//! has (logged) — and anything else — a function, a load or store, a map, an output, an
//! operand that is a pending result, a call the issuer cannot queue behind the others
//! ([`Issued::Wait`]) — *blocks* it: its driver asks the issuer to complete what is in flight
//! ([`Issuer::wait`], the poster's barrier) and the lane *retires* its pending calls in
//! program order, applying results and the error mode exactly as if each had been ready. A
//! call that fails in `stop` mode leaves the lane as it was right after that call: the log
//! undoes what ran past it, and the calls queued behind it (which the issuer guarantees change
//! nothing outside the process, see [`Issuer`]) are discarded, their registers never written.
//!
//! Maps whose iterations may run at once ([`crate::plan::MapInfo::concurrent`]) run as
//! several lanes ([`maps`]): a window of iteration lanes on one issuer (the ring), or runs of
//! items on threads with a direct issuer each; either way they are committed in item order.
//!
//! Where docs/semantics.md leaves a choice, the core does this:
//!
//! - A call returning a descriptor into a slot that holds one closes the old descriptor
//!   *after* the call (before storing the new one), so the old one can be the call's own
//!   directory (`d = openat(d, "sub")`). On failure in `continue` mode the slot is emptied
//!   (its old descriptor closed); in `stop` mode it is left as it was (closed at the end).
//! - The time limit is also checked when a `MapEnd` starts a further iteration (going back
//!   is a backward jump).
//! - A `dirents` map parses all records of its range when it starts: a bad record stops the
//!   run at the `MapBegin` before any iteration, and the body may reuse the buffer.
//! - Outputs are reported also when the run stops on an error (the registers' values then).
//! - Every map iteration starts with the local buffers private to it zeroed: the bytes the
//!   previous iteration in the lane wrote are cleared ([`crate::arena::Dirty`]).

use std::collections::VecDeque;
use std::ffi::CStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosy_model::{
    Arg, ArgKind, BufId, BufRange, Compound, ErrorMode, FdRef, FdSlot, InputKind, PathRef, Reg,
    Sys, Value,
};
use cosy_verify::Verified;

use crate::arena::{Dirty, Layout, RangeError, Span};
use crate::clock::{Deadline, Pacer};
use crate::funcs::Functions;
use crate::outcome::{CallError, Error, Outcome, Recorder};
use crate::plan::Plan;
use crate::sys::{self, AT_FDCWD, Resolved, ResolvedArgs};

mod call;
pub(crate) mod fds;
mod items;
pub(crate) mod limits;
pub(crate) mod maps;
mod retire;
mod step;

pub(crate) use items::{Binding, Items};
pub use items::{DirEntry, parse_dirents};

use fds::FdTable;

/// A call an issuer queued: its result is asked for with [`Issuer::take`] after a
/// [`Issuer::wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket(pub u32);

/// An issuer's answer to a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issued {
    /// Done: the result, or `-errno`.
    Ready(i64),
    /// Queued. `fd`: the descriptor an open will have if it succeeds, when it is known now (a
    /// direct descriptor of the ring, `DIRECT_FD_BASE + slot`): later calls of the lane may use
    /// it before the open completes.
    Pending {
        /// The call's ticket.
        ticket: Ticket,
        /// The descriptor of an open, known in advance.
        fd: Option<i32>,
    },
    /// Not taken now: complete what is in flight first, then issue it again.
    Wait,
}

/// Where a call comes from: the operation, and the lane (an interpreter instance; its calls
/// run in program order, and lane `k` uses copy `k` of the local buffers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    /// The operation's index.
    pub op: u32,
    /// The lane.
    pub lane: usize,
}

/// Issues the system calls of a run, and holds the arena's memory.
///
/// Contract:
///
/// - A descriptor an implementation returns from an open (or writes into a `NewFd` operand)
///   belongs to the interpreter from then on, which closes it through [`Issuer::close`].
/// - Calls of one lane take effect in the order they are issued, each after the one before
///   has completed.
/// - In `stop` mode, a call queued while an earlier call of its lane is still pending must
///   not change anything outside the process if that earlier call fails (it may run; its
///   result is then discarded): an implementation answers [`Issued::Wait`] for calls that
///   would (writes, creating opens, moving the position of a descriptor the compound did not
///   open).
/// - Memory: the arena's bytes are read and written through [`Issuer::bytes`] and
///   [`Issuer::bytes_mut`], which refuse (`None`) a range a call in flight may write (or, for
///   `bytes_mut`, use).
pub trait Issuer {
    /// Issues `call` with resolved operands for `at`, reporting every system call it makes
    /// to `rec` (helper calls included) when it answers [`Issued::Ready`]; the interpreter
    /// reports pending calls when it retires them. For `pipe2` the new descriptors are
    /// written into the `NewFd` operands.
    fn issue(&mut self, at: At, call: Sys, args: &mut ResolvedArgs, rec: &mut Recorder) -> Issued;

    /// Closes a descriptor the interpreter owns (a reassigned slot, the end of a map
    /// iteration, the end of the run). The result does not matter to the semantics.
    fn close(&mut self, at: At, fd: i32, rec: &mut Recorder) -> Issued {
        let _ = at;
        let r = sys::to_ret(sys::close(fd));
        rec.call(at.op, Sys::Close, fd, r, true);
        Issued::Ready(r)
    }

    /// Completes every call queued so far (the barrier). `false`: `deadline` passed first;
    /// then what was in flight has been cancelled and completed anyway.
    fn wait(&mut self, rec: &mut Recorder, deadline: Option<Instant>) -> bool {
        let _ = (rec, deadline);
        true
    }

    /// The result of a completed ticket (`-ECANCELED` if it never ran), reported to `rec` as
    /// the call the kernel saw; the ticket is used up.
    fn take(&mut self, ticket: Ticket, rec: &mut Recorder) -> i64 {
        let _ = (ticket, rec);
        -i64::from(libc::ECANCELED)
    }

    /// The bytes of `span`, if no call in flight writes them.
    fn bytes(&self, span: Span) -> Option<&[u8]>;

    /// The bytes of `span`, writable, if no call in flight uses them.
    fn bytes_mut(&mut self, span: Span) -> Option<&mut [u8]>;

    /// The whole arena, writable, if nothing in flight uses it.
    fn whole_mut(&mut self) -> Option<&mut [u8]>;

    /// How many map iterations this issuer can keep in flight at once (lanes `0..window`).
    fn window(&self) -> usize {
        1
    }

    /// Whether the calls of the map body `ops` are worth a window of iterations on this issuer.
    fn worth_window(&self, ops: std::ops::Range<usize>) -> bool {
        let _ = ops;
        false
    }

    /// An issuer for another thread running map iterations ([`maps`]), with its own copy of
    /// the arena, if this one can make one.
    fn fork(&self) -> Option<crate::direct::DirectIssuer> {
        None
    }
}

/// What does not change during a run.
pub(crate) struct Cx<'a> {
    pub c: &'a Compound,
    pub funcs: &'a Functions,
    pub plan: &'a Plan,
    pub layout: &'a Layout,
    pub limit: Duration,
    pub deadline: Deadline,
    pub stop_mode: bool,
    /// Threads for maps ([`maps::Threads`]).
    pub threads: maps::Threads,
    pub trace: bool,
}

impl Cx<'_> {
    /// The error of a range operand of operation `op` outside buffer `b`.
    pub fn range_error(&self, op: usize, b: BufId, e: RangeError) -> Error {
        range_error(self.c, op, b, e)
    }
}

/// A map running in a lane.
pub(crate) struct Frame {
    pub begin: usize,
    pub end: usize,
    pub items: Items,
    /// The values of the map's local registers when it started.
    pub snapshot: Vec<i64>,
}

/// What a pending call does when it retires.
#[derive(Clone, Copy, Debug)]
enum Effect {
    /// Nothing but its result (discarded, or into a register).
    Reg(Option<Reg>),
    /// An open into slot `slot`: `fd` if the slot already holds the descriptor it will have;
    /// `old` is the descriptor the slot held, closed when the open retires. `replaced`: a
    /// later open into the slot was queued while this one was pending, so this one's
    /// descriptor, if it gets one, is closed when it retires (as direct's later open would).
    Fd {
        slot: FdSlot,
        fd: Option<i32>,
        old: i32,
        replaced: bool,
    },
    /// A close the interpreter made: its result does not matter.
    Internal,
}

/// What a lane changed while a call that may fail was pending (`stop` mode), undone if it
/// fails.
#[derive(Clone, Copy, Debug)]
enum Undo {
    /// A register and the value it held.
    Reg(Reg, i64),
    /// A loop counter and the count it held.
    Counter(usize, u32),
}

/// A call issued but not retired.
#[derive(Clone, Copy, Debug)]
struct Pend {
    op: u32,
    call: Sys,
    ticket: Ticket,
    /// A result the issuer gave at once while earlier calls were pending (already counted).
    ready: Option<i64>,
    effect: Effect,
    /// The lane's fuel count right after the call.
    used: u64,
    /// The length of the undo log when it was issued.
    undo: usize,
    /// The range of the arena the call may write.
    out: Option<Span>,
    /// What it was charged against the limits on bytes written.
    charge: limits::Charge,
}

/// How far [`Lane::run`] got.
#[derive(Debug)]
pub(crate) enum Run {
    /// To its stop (nothing pending).
    Done,
    /// It cannot go on until what is in flight completes.
    Blocked,
    /// It stopped with an error.
    Failed(Error),
}

enum Flow {
    Next(usize),
    Block,
}

/// One instance of the interpreter's state (see the module documentation).
pub(crate) struct Lane {
    /// Which lane: the chain its calls form, and the copy of the local buffers it uses.
    pub lane: usize,
    pub regs: Vec<i64>,
    pub fds: FdTable,
    /// The paths map items bound, as C strings (made once per binding, shared by the calls).
    pub pathvals: Vec<Arc<CStr>>,
    pub counters: Vec<u32>,
    pub frames: Vec<Frame>,
    /// Operations run, and the most it may run.
    pub used: u64,
    pub fuel: u64,
    pub errors: Vec<CallError>,
    /// The policy's limits on bytes written and descriptors ([`limits`]).
    pub limits: limits::Limits,
    pub rec: Recorder,
    pub pc: usize,
    /// Whether this lane may run a map's iterations as other lanes (the main program).
    pub main: bool,
    pending: VecDeque<Pend>,
    /// Pending calls whose failure matters (all but the interpreter's own closes).
    fallible: usize,
    /// What arithmetic, moves and jumps changed past pending calls (`stop` mode).
    undo: Vec<Undo>,
    /// Bytes of the arena retired calls wrote, to record in the run's [`Dirty`]
    /// ([`Lane::flush_marks`]).
    marks: Vec<Span>,
    rargs: ResolvedArgs,
    /// When this lane next reads the clock.
    pacer: Pacer,
}

fn value(regs: &[i64], v: &Value) -> i64 {
    match v {
        Value::Imm(x) => *x,
        Value::Reg(r) => regs.get(r.index()).copied().unwrap_or(0),
    }
}

fn fd_raw(fds: &FdTable, f: &FdRef) -> i32 {
    match f {
        FdRef::Cwd => AT_FDCWD,
        FdRef::Std(n) => i32::from(*n),
        FdRef::Slot(s) => fds.get(*s),
    }
}

fn path_bytes<'x>(c: &'x Compound, pathvals: &'x [Arc<CStr>], p: &PathRef) -> &'x [u8] {
    match p {
        PathRef::Data(d) => c.data.get(d.index()).map_or(&[], Vec::as_slice),
        PathRef::Var(v) => pathvals.get(v.index()).map_or(&[], |s| s.to_bytes()),
    }
}

/// Path `p` as the C string a call takes: the plan's (made once per compound) or the bound
/// variable's (made once per binding); made here only for data the plan has not seen (a
/// session's, which grows as calls are sent).
fn path_cstr(cx: &Cx<'_>, pathvals: &[Arc<CStr>], p: &PathRef) -> Arc<CStr> {
    match p {
        PathRef::Var(v) => pathvals.get(v.index()).cloned().unwrap_or_else(empty_path),
        PathRef::Data(d) => match cx.plan.path(*d) {
            Some(s) => Arc::clone(s),
            // Paths hold no NUL: the plan checks data constants, and the session refuses them.
            None => std::ffi::CString::new(path_bytes(cx.c, pathvals, p))
                .map_or_else(|_| empty_path(), |s| Arc::from(s.as_c_str())),
        },
    }
}

/// The empty path (an unbound variable).
pub(crate) fn empty_path() -> Arc<CStr> {
    Arc::from(c"")
}

/// The name of buffer `b` of `c` (`#N` if there is none), for error messages.
pub(crate) fn buffer_name(c: &Compound, b: BufId) -> String {
    c.buffers
        .get(b.index())
        .map_or_else(|| format!("#{}", b.0), |b| b.name.clone())
}

/// The error of a range operand of operation `op` outside buffer `b`.
pub(crate) fn range_error(c: &Compound, op: usize, b: BufId, e: RangeError) -> Error {
    Error::Range {
        op: op as u32,
        buffer: buffer_name(c, b),
        detail: format!(
            "[{}..{}] is not within its {} bytes",
            e.start, e.end, e.size
        ),
    }
}

fn errno_of(r: i64) -> i32 {
    i32::try_from(r.checked_neg().unwrap_or(i64::MAX)).unwrap_or(i32::MAX)
}

impl Lane {
    /// A lane at the start of `c`, with `fuel` operations to run.
    pub fn new(c: &Compound, lane: usize, fuel: u64, trace: bool) -> Lane {
        Lane {
            lane,
            regs: vec![0; c.regs.len()],
            fds: FdTable::new(c.fds.len()),
            pathvals: vec![empty_path(); c.paths.len()],
            counters: vec![0; c.ops.len()],
            frames: Vec::new(),
            used: 0,
            fuel,
            errors: Vec::new(),
            limits: limits::Limits::default(),
            rec: Recorder::new(trace),
            pc: 0,
            main: true,
            pending: VecDeque::new(),
            fallible: 0,
            undo: Vec::new(),
            marks: Vec::new(),
            rargs: ResolvedArgs::default(),
            pacer: Pacer::default(),
        }
    }

    fn set(&mut self, r: Reg, v: i64) {
        if let Some(x) = self.regs.get_mut(r.index()) {
            *x = v;
        }
    }

    /// Sets register `r` by an operation that may run past pending calls: logged for undo.
    fn set_logged(&mut self, r: Reg, v: i64) {
        if self.fallible > 0
            && let Some(&old) = self.regs.get(r.index())
        {
            self.undo.push(Undo::Reg(r, old));
        }
        self.set(r, v);
    }

    /// Whether a value operand is a pending call's result.
    fn val_pending(&self, v: &Value) -> bool {
        matches!(v, Value::Reg(r) if self.fallible > 0 && self.reg_pending(*r))
    }

    fn val(&self, v: &Value) -> i64 {
        value(&self.regs, v)
    }

    fn at(&self, op: usize) -> At {
        At {
            op: op as u32,
            lane: self.lane,
        }
    }

    /// Whether the lane has calls in flight.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether register `r` waits for a pending call's result.
    fn reg_pending(&self, r: Reg) -> bool {
        self.pending
            .iter()
            .any(|p| matches!(p.effect, Effect::Reg(Some(x)) if x == r))
    }

    /// Whether slot `s` waits for a pending open's descriptor.
    fn slot_pending(&self, s: FdSlot) -> bool {
        self.pending
            .iter()
            .any(|p| matches!(p.effect, Effect::Fd { slot, fd: None, .. } if slot == s))
    }

    /// Whether a call with `args` needs a result still pending.
    fn needs_pending(&self, args: &[Arg]) -> bool {
        let pend_val = |v: &Value| matches!(v, Value::Reg(r) if self.reg_pending(*r));
        args.iter().any(|a| match a {
            Arg::Value(v) => pend_val(v),
            Arg::Buf(r) => pend_val(&r.start) || r.end.as_ref().is_some_and(pend_val),
            Arg::Fd(FdRef::Slot(s)) => self.slot_pending(*s),
            Arg::Fd(_) | Arg::Path(_) => false,
        })
    }

    /// Resolves a range operand in this lane; `min` is the least length the call needs.
    fn range(
        &self,
        cx: &Cx<'_>,
        op: usize,
        r: &BufRange,
        min: usize,
        call: Option<Sys>,
    ) -> Result<Span, Error> {
        let start = self.val(&r.start);
        let end = r.end.as_ref().map(|e| self.val(e));
        let span = cx
            .layout
            .resolve(r.buf, self.lane, start, end)
            .map_err(|e| cx.range_error(op, r.buf, e))?;
        if span.len() < min {
            return Err(Error::Range {
                op: op as u32,
                buffer: buffer_name(cx.c, r.buf),
                detail: format!(
                    "{} needs {min} bytes, but the range [{start}..{}] has {}",
                    call.map_or("the call", Sys::name),
                    start.saturating_add(span.len() as i64),
                    span.len()
                ),
            });
        }
        Ok(span)
    }

    fn check_time(&mut self, cx: &Cx<'_>, op: usize) -> Result<(), Error> {
        if self.pacer.passed(&cx.deadline) {
            Err(Error::Time {
                op: op as u32,
                limit: cx.limit,
            })
        } else {
            Ok(())
        }
    }

    /// Closes `fd` (an owned descriptor) for operation `op`.
    fn close_fd<I: Issuer>(&mut self, issuer: &mut I, op: usize, fd: i32) {
        if fd < 0 {
            return;
        }
        let at = self.at(op);
        if let Issued::Pending { ticket, .. } = issuer.close(at, fd, &mut self.rec) {
            self.pending.push_back(Pend {
                op: at.op,
                call: Sys::Close,
                ticket,
                ready: None,
                effect: Effect::Internal,
                used: self.used,
                undo: self.undo.len(),
                out: None,
                charge: limits::Charge::default(),
            });
        }
    }

    /// Puts `fd` in slot `s`, closing the descriptor it held.
    fn replace_fd<I: Issuer>(&mut self, issuer: &mut I, op: usize, s: FdSlot, fd: i32) {
        let old = self.fds.replace(s, fd);
        self.close_fd(issuer, op, old);
    }

    /// Closes the descriptors of every slot in `slots` (the end of an iteration, of the run).
    pub fn close_slots<I: Issuer>(&mut self, issuer: &mut I, op: usize, slots: &[FdSlot]) {
        for s in slots {
            let fd = self.fds.replace(*s, -1);
            self.close_fd(issuer, op, fd);
        }
    }

    /// Runs until the next operation is `stop` (with nothing pending), a block, or an error.
    pub fn run<I: Issuer>(
        &mut self,
        cx: &Cx<'_>,
        issuer: &mut I,
        dirty: &mut Dirty,
        stop: usize,
    ) -> Run {
        self.flush_marks(cx.layout, dirty);
        let n = cx.c.ops.len();
        while self.pc < n && self.pc != stop {
            if self.used >= self.fuel {
                if self.has_pending() {
                    return Run::Blocked;
                }
                return Run::Failed(Error::Fuel {
                    op: self.pc as u32,
                    fuel: self.fuel,
                });
            }
            match self.step(cx, issuer, dirty) {
                Ok(Flow::Next(next)) => {
                    self.used += 1;
                    self.pc = next;
                }
                Ok(Flow::Block) => return Run::Blocked,
                // An earlier call still pending may fail first: its error comes first.
                Err(_) if self.fallible > 0 => return Run::Blocked,
                Err(e) => {
                    self.used += 1;
                    return Run::Failed(e);
                }
            }
        }
        if self.has_pending() {
            Run::Blocked
        } else {
            Run::Done
        }
    }

    /// Records in `dirty` the bytes the calls retired since the last flush wrote.
    pub fn flush_marks(&mut self, layout: &Layout, dirty: &mut Dirty) {
        for s in self.marks.drain(..) {
            dirty.mark(layout, s);
        }
    }

    /// Runs to `stop`, waiting whenever the lane blocks: the driver of a lane alone on its
    /// issuer.
    pub fn drive<I: Issuer>(
        &mut self,
        cx: &Cx<'_>,
        issuer: &mut I,
        dirty: &mut Dirty,
        stop: usize,
    ) -> Result<(), Error> {
        let mut idle = 0;
        loop {
            match self.run(cx, issuer, dirty, stop) {
                Run::Done => return Ok(()),
                Run::Failed(e) => return Err(e),
                Run::Blocked => {
                    let had = self.pending.len();
                    self.barrier(cx, issuer)?;
                    // A block with nothing in flight twice in a row would never end.
                    idle = if had == 0 { idle + 1 } else { 0 };
                    if idle > 1 {
                        return Err(Error::Setup(format!(
                            "op {}: the issuer refused the operation with nothing in flight",
                            self.pc
                        )));
                    }
                }
            }
        }
    }
}

/// The range of the arena `call` may write: its buffer operand the kernel writes.
fn out_span(call: Sys, args: &ResolvedArgs) -> Option<Span> {
    call.spec()
        .args
        .iter()
        .zip(&args.items)
        .find_map(|(spec, r)| match (spec.kind, r) {
            (ArgKind::BufOut, Resolved::Buf(s)) => Some(*s),
            _ => None,
        })
}

/// What `call` wrote of its output range `s`, given its result `r`: the `r` bytes it returned
/// (reads, `getdents64`, `readlinkat`, the xattr calls), the structure a call fills (`statx`:
/// the table's `min_buf` bytes), or all of it for one that failed (it may have written some).
/// Only those bytes need zeroing before a map's next iteration.
fn written_of(call: Sys, s: Span, r: i64) -> Span {
    match (usize::try_from(r), call.spec().min_buf) {
        (Ok(n), 0) => s.prefix(n),
        (Ok(_), m) => s.prefix(m),
        (Err(_), _) => s,
    }
}

/// What a ready call with resolved operands `args` wrote of the arena, given its result.
pub(crate) fn written(call: Sys, args: &ResolvedArgs, r: i64) -> Option<Span> {
    out_span(call, args).map(|s| written_of(call, s, r))
}

/// Zeroes what was written of the local buffers `bufs` in lane `lane`.
pub(crate) fn zero_locals<I: Issuer>(
    layout: &Layout,
    issuer: &mut I,
    dirty: &mut Dirty,
    bufs: &[BufId],
    lane: usize,
) {
    for &b in bufs {
        if let Some(span) = dirty.written(layout, b, lane)
            && let Some(mem) = issuer.bytes_mut(span)
        {
            mem.fill(0);
            dirty.forget(layout, b, lane);
        }
    }
}

/// What a run is set up with, besides the compound and the issuer.
pub(crate) struct Setup<'a> {
    pub plan: &'a Plan,
    pub layout: &'a Layout,
    pub functions: &'a Functions,
    pub trace: bool,
    /// Whether maps may run on several threads.
    pub threads: maps::Threads,
    /// When the run began (its time limit counts from there).
    pub started: Instant,
}

/// Runs `v` with `issuer`: the whole run, from the first operation to the final closes.
/// Returns the outcome and what the run wrote of the arena.
pub(crate) fn execute<I: Issuer>(
    v: &Verified,
    setup: Setup<'_>,
    issuer: &mut I,
) -> (Outcome, Dirty) {
    let Setup {
        plan,
        layout,
        functions,
        trace,
        threads,
        started,
    } = setup;
    let c = v.compound();
    let policy = v.policy();
    let cx = Cx {
        c,
        funcs: functions,
        plan,
        layout,
        limit: policy.time,
        deadline: Deadline::new(started, policy.time),
        stop_mode: c.mode == ErrorMode::Stop,
        threads,
        trace,
    };
    // Blocking plain calls of this thread end at the deadline (`alarm`).
    let _alarm = plan
        .blocks()
        .then(|| crate::alarm::Alarm::arm(&cx.deadline))
        .flatten();
    let mut dirty = Dirty::new(layout);
    let mut lane = Lane::new(c, 0, policy.fuel, trace);
    lane.limits = limits::Limits::of(policy);
    for input in &c.inputs {
        if let InputKind::Int { reg, default } = input.kind {
            lane.set(reg, default);
        }
    }
    let result = lane.drive(&cx, issuer, &mut dirty, usize::MAX);
    // Every descriptor still open is closed, also after an error.
    let end = c.ops.len();
    let open = lane.fds.open();
    lane.close_slots(issuer, end, &open);
    lane.drain(issuer);
    lane.flush_marks(layout, &mut dirty);
    let outputs = c
        .outputs
        .iter()
        .map(|o| (o.name.clone(), lane.val(&Value::Reg(o.reg))))
        .collect();
    let mut stats = lane.rec.stats();
    stats.ops = lane.used;
    stats.elapsed = started.elapsed();
    let outcome = Outcome {
        outputs,
        error: result.err(),
        errors: std::mem::take(&mut lane.errors),
        stats,
        trace: lane.rec.trace.take().unwrap_or_default(),
    };
    (outcome, dirty)
}
