//! The interpreter: runs a compound's operations in order (docs/semantics.md), issuing its
//! system calls through an [`Issuer`].
//!
//! It owns the registers, fd slots, path variables, arena, loop counters and map frames, and
//! applies the semantics: fuel and time limits, both error modes, closing a slot's descriptor
//! when the slot is reassigned, the fds of a map iteration at its end and every fd at the end
//! of the run. Map iterations run in order on one lane; registers written in a map body are
//! restored before each iteration (except accumulators), so each iteration sees what it would
//! see running alone. The issuer only turns one resolved call into a result, so an io_uring
//! issuer can reuse everything here.
//!
//! Where docs/semantics.md leaves a choice, this interpreter (the reference) does this:
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

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use cosy_model::{
    Arg, ArgKind, BufId, BufRange, Compound, DataId, ErrorMode, FdRef, FdSlot, InputKind,
    MapSource, Op, PathRef, PathVar, Reg, Ret, Sys, Value,
};
use cosy_verify::Verified;

use crate::arena::{self, Arena, RangeError, Span};
use crate::funcs::{FnArg, FnArgs, Function, Functions};
use crate::outcome::{CallError, Error, Outcome, Recorder};
use crate::plan::{MapInfo, Plan};
use crate::sys::{self, AT_FDCWD, Resolved, ResolvedArgs};

pub mod parallel;

/// The lane the direct interpreter runs every map iteration on.
pub const LANE: usize = 0;

/// Issues the system calls of a run.
///
/// Contract: a descriptor an implementation returns from an open (or writes into a `NewFd`
/// operand) belongs to the interpreter from then on, which closes it (through
/// [`Issuer::close`]); an implementation must not return descriptors it does not own.
pub trait Issuer {
    /// Issues operation `op`'s `call` with resolved operands, reporting every system call made
    /// to `rec` (helper calls included). Returns the result, or `-errno`. For `pipe2` the new
    /// descriptors are written into the `NewFd` operands.
    fn issue(
        &mut self,
        op: u32,
        call: Sys,
        args: &mut ResolvedArgs,
        mem: &mut [u8],
        rec: &mut Recorder,
    ) -> i64;

    /// Closes a descriptor the interpreter owns (a reassigned slot, the end of a map iteration,
    /// the end of the run), recorded at operation `op`.
    fn close(&mut self, op: u32, fd: i32, rec: &mut Recorder) -> i64 {
        let r = sys::to_ret(sys::close(fd));
        rec.call(op, Sys::Close, fd, r, true);
        r
    }

    /// An issuer for another thread running map iterations ([`parallel`]), if this one can
    /// make one (`None`: maps run on this thread only).
    fn fork(&self) -> Option<crate::direct::DirectIssuer> {
        None
    }
}

/// The fd slots; `-1` is empty. Dropping the table closes what is still open (a safety net:
/// the interpreter closes everything itself, counted, before it ends).
#[derive(Debug)]
pub(crate) struct FdTable {
    slots: Vec<i32>,
}

impl FdTable {
    /// `n` empty slots.
    pub fn new(n: usize) -> Self {
        FdTable { slots: vec![-1; n] }
    }

    /// The descriptor in slot `s` (`-1` when empty).
    pub fn get(&self, s: FdSlot) -> i32 {
        self.slots.get(s.index()).copied().unwrap_or(-1)
    }

    /// Puts `fd` in slot `s`, returning what was there.
    pub fn replace(&mut self, s: FdSlot, fd: i32) -> i32 {
        match self.slots.get_mut(s.index()) {
            Some(x) => std::mem::replace(x, fd),
            None => -1,
        }
    }

    /// A table holding the descriptors of another (`slots`) without owning them: call
    /// [`FdTable::forget`] before dropping it.
    pub fn borrowed(slots: &[i32]) -> Self {
        FdTable {
            slots: slots.to_vec(),
        }
    }

    /// The descriptor numbers of every slot.
    pub fn slots(&self) -> &[i32] {
        &self.slots
    }

    /// Empties every slot without closing anything (the descriptors belong to another table).
    pub fn forget(&mut self) {
        self.slots.fill(-1);
    }

    /// Slots that hold a descriptor, in order.
    pub fn open(&self) -> Vec<FdSlot> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i] >= 0)
            .map(|i| FdSlot(i as u16))
            .collect()
    }
}

impl Drop for FdTable {
    fn drop(&mut self) {
        for fd in &mut self.slots {
            if *fd >= 0 {
                let _ = sys::close(*fd);
                *fd = -1;
            }
        }
    }
}

/// One directory entry of a `getdents64` buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// `d_ino`.
    pub ino: u64,
    /// `d_type`.
    pub kind: u8,
    /// The name (up to its NUL).
    pub name: Vec<u8>,
}

/// Parses `linux_dirent64` records (`d_ino` u64 at 0, `d_off` at 8, `d_reclen` u16 at 16,
/// `d_type` at 18, the name from 19 to its NUL), skipping `.` and `..`. A record shorter than
/// 20 bytes or running past `bytes` is an error: its offset and what is wrong.
pub fn parse_dirents(bytes: &[u8]) -> Result<Vec<DirEntry>, String> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < bytes.len() {
        let rest = &bytes[off..];
        if rest.len() < 20 {
            return Err(format!(
                "the directory record at offset {off} runs past the {} bytes of the range",
                bytes.len()
            ));
        }
        let reclen = usize::from(u16::from_le_bytes([rest[16], rest[17]]));
        if reclen < 20 {
            return Err(format!(
                "the directory record at offset {off} has d_reclen {reclen} (< 20)"
            ));
        }
        let Some(rec) = rest.get(..reclen) else {
            return Err(format!(
                "the directory record at offset {off} (d_reclen {reclen}) runs past the {} bytes of the range",
                bytes.len()
            ));
        };
        let mut ino = [0u8; 8];
        ino.copy_from_slice(&rec[..8]);
        let area = &rec[19..];
        let name = match memchr::memchr(0, area) {
            Some(n) => &area[..n],
            None => area,
        };
        if name != b"." && name != b".." {
            out.push(DirEntry {
                ino: u64::from_le_bytes(ino),
                kind: rec[18],
                name: name.to_vec(),
            });
        }
        off += reclen;
    }
    Ok(out)
}

/// Runs `v` with `issuer`: the whole run, from the setup (plan, arena) to the final closes.
/// `started` is when the run began (its time limit counts from there).
///
/// `parallel` (with its `workers` already decided) says whether maps may run on several
/// threads ([`parallel`]).
pub fn execute<I: Issuer>(
    v: &Verified,
    functions: &Functions,
    trace: bool,
    parallel: crate::Parallel,
    issuer: &mut I,
    started: Instant,
) -> Outcome {
    let c = v.compound();
    let policy = v.policy();
    let plan = match Plan::new(c, policy, functions) {
        Ok(p) => p,
        Err(m) => return Outcome::setup_error(m, started.elapsed()),
    };
    let arena = match Arena::new(&c.buffers, 1, policy.arena_bytes) {
        Ok(a) => a,
        Err(e) => return Outcome::setup_error(e.to_string(), started.elapsed()),
    };
    let mut m = Machine {
        c,
        funcs: functions,
        plan: &plan,
        regs: vec![0; c.regs.len()],
        fds: FdTable::new(c.fds.len()),
        pathvals: vec![Vec::new(); c.paths.len()],
        arena,
        counters: vec![0; c.ops.len()],
        frames: Vec::new(),
        rec: Recorder::new(trace),
        errors: Vec::new(),
        issuer,
        fuel: policy.fuel,
        used: 0,
        limit: policy.time,
        deadline: crate::clock::Deadline::new(started, policy.time),
        rargs: ResolvedArgs::default(),
        par: parallel::Maps::new(parallel, trace),
    };
    for input in &c.inputs {
        if let InputKind::Int { reg, default } = input.kind {
            m.set(reg, default);
        }
    }
    let result = m.run();
    m.finish(result, started)
}

/// The items of a running map.
pub(crate) enum Items {
    Paths {
        var: PathVar,
        list: Vec<DataId>,
        pos: usize,
    },
    Offsets {
        var: Reg,
        list: Vec<i64>,
        pos: usize,
    },
    Range {
        var: Reg,
        next: Option<i64>,
        end: i64,
        step: i64,
    },
    Dirents {
        name: PathVar,
        kind: Reg,
        ino: Reg,
        list: Vec<DirEntry>,
        pos: usize,
    },
}

/// What one item binds.
pub(crate) enum Binding {
    Path(PathVar, Vec<u8>),
    Reg(Reg, i64),
    Dirent(PathVar, Vec<u8>, Reg, i64, Reg, i64),
}

impl Items {
    /// Evaluates a map's source (`val` gives operand values, `dirents` parses a `dirents`
    /// source's range) at operation `pc`.
    pub(crate) fn new(
        pc: usize,
        source: &MapSource,
        val: impl Fn(&Value) -> i64,
        dirents: impl FnOnce(&BufRange) -> Result<Vec<DirEntry>, Error>,
    ) -> Result<Items, Error> {
        Ok(match source {
            MapSource::Paths { list, var } => Items::Paths {
                var: *var,
                list: list.clone(),
                pos: 0,
            },
            MapSource::Offsets { list, var } => Items::Offsets {
                var: *var,
                list: list.clone(),
                pos: 0,
            },
            MapSource::Range {
                start,
                end,
                step,
                var,
            } => {
                let step = val(step);
                if step <= 0 {
                    return Err(Error::Arith { op: pc as u32 });
                }
                Items::Range {
                    var: *var,
                    next: Some(val(start)),
                    end: val(end),
                    step,
                }
            }
            MapSource::Dirents {
                buf,
                name,
                kind,
                ino,
            } => Items::Dirents {
                name: *name,
                kind: *kind,
                ino: *ino,
                list: dirents(buf)?,
                pos: 0,
            },
        })
    }

    /// How many items are left, if known cheaply.
    pub(crate) fn remaining(&self) -> usize {
        match self {
            Items::Paths { list, pos, .. } => list.len().saturating_sub(*pos),
            Items::Offsets { list, pos, .. } => list.len().saturating_sub(*pos),
            Items::Dirents { list, pos, .. } => list.len().saturating_sub(*pos),
            Items::Range {
                next, end, step, ..
            } => match next {
                Some(n) if n < end => {
                    let span = (*end as i128 - *n as i128) as u128;
                    let k = span.div_ceil(*step as u128);
                    usize::try_from(k).unwrap_or(usize::MAX)
                }
                _ => 0,
            },
        }
    }

    /// Splits the items into at most `k` runs of consecutive items, in order.
    pub(crate) fn split(self, k: usize) -> Vec<Items> {
        let n = self.remaining();
        let k = k.clamp(1, n.max(1));
        // Sizes: the first `n % k` runs get one item more.
        let sizes = (0..k).map(move |i| n / k + usize::from(i < n % k));
        match self {
            Items::Paths { var, list, pos } => chunks(list, pos, sizes)
                .map(|list| Items::Paths { var, list, pos: 0 })
                .collect(),
            Items::Offsets { var, list, pos } => chunks(list, pos, sizes)
                .map(|list| Items::Offsets { var, list, pos: 0 })
                .collect(),
            Items::Dirents {
                name,
                kind,
                ino,
                list,
                pos,
            } => chunks(list, pos, sizes)
                .map(|list| Items::Dirents {
                    name,
                    kind,
                    ino,
                    list,
                    pos: 0,
                })
                .collect(),
            Items::Range {
                var,
                next,
                end,
                step,
            } => {
                let mut at = next;
                sizes
                    .map(|len| {
                        let start = at;
                        // The run ends after `len` steps (or at the map's end).
                        let stop = start
                            .and_then(|s| s.checked_add(step.checked_mul(len as i64)?))
                            .map_or(end, |e| e.min(end));
                        at = start.map(|_| stop);
                        Items::Range {
                            var,
                            next: start,
                            end: stop,
                            step,
                        }
                    })
                    .collect()
            }
        }
    }

    /// The next item's binding.
    pub(crate) fn next(&mut self, data: &[Vec<u8>]) -> Option<Binding> {
        match self {
            Items::Paths { var, list, pos } => {
                let d = list.get(*pos)?;
                *pos += 1;
                let bytes = data.get(d.index()).cloned().unwrap_or_default();
                Some(Binding::Path(*var, bytes))
            }
            Items::Offsets { var, list, pos } => {
                let v = *list.get(*pos)?;
                *pos += 1;
                Some(Binding::Reg(*var, v))
            }
            Items::Range {
                var,
                next,
                end,
                step,
            } => {
                let v = (*next).filter(|v| v < end)?;
                *next = v.checked_add(*step);
                Some(Binding::Reg(*var, v))
            }
            Items::Dirents {
                name,
                kind,
                ino,
                list,
                pos,
            } => {
                let e = list.get_mut(*pos)?;
                *pos += 1;
                Some(Binding::Dirent(
                    *name,
                    std::mem::take(&mut e.name),
                    *kind,
                    i64::from(e.kind),
                    *ino,
                    e.ino as i64,
                ))
            }
        }
    }
}

/// `list[pos..]` cut into consecutive runs of `sizes`.
fn chunks<T>(
    mut list: Vec<T>,
    pos: usize,
    sizes: impl Iterator<Item = usize>,
) -> impl Iterator<Item = Vec<T>> {
    list.drain(..pos.min(list.len()));
    let mut rest = list.into_iter();
    sizes.map(move |n| rest.by_ref().take(n).collect())
}

struct Frame {
    begin: usize,
    end: usize,
    items: Items,
    snapshot: Vec<i64>,
}

struct Machine<'a, I: Issuer> {
    c: &'a Compound,
    funcs: &'a Functions,
    plan: &'a Plan,
    regs: Vec<i64>,
    fds: FdTable,
    pathvals: Vec<Vec<u8>>,
    arena: Arena,
    counters: Vec<u32>,
    frames: Vec<Frame>,
    rec: Recorder,
    errors: Vec<CallError>,
    issuer: &'a mut I,
    fuel: u64,
    used: u64,
    limit: Duration,
    deadline: crate::clock::Deadline,
    rargs: ResolvedArgs,
    /// Which maps may run on several threads.
    par: parallel::Maps,
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

pub(crate) fn path_bytes<'x>(c: &'x Compound, pathvals: &'x [Vec<u8>], p: &PathRef) -> &'x [u8] {
    match p {
        PathRef::Data(d) => c.data.get(d.index()).map_or(&[], Vec::as_slice),
        PathRef::Var(v) => pathvals.get(v.index()).map_or(&[], Vec::as_slice),
    }
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

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".into()
    }
}

impl<I: Issuer> Machine<'_, I> {
    fn set(&mut self, r: Reg, v: i64) {
        if let Some(x) = self.regs.get_mut(r.index()) {
            *x = v;
        }
    }

    fn val(&self, v: &Value) -> i64 {
        value(&self.regs, v)
    }

    fn buffer_name(&self, b: BufId) -> String {
        buffer_name(self.c, b)
    }

    fn range_error(&self, op: usize, b: BufId, e: RangeError) -> Error {
        range_error(self.c, op, b, e)
    }

    /// Resolves a range operand; `min` is the least length the call needs.
    fn range(&self, op: usize, r: &BufRange, min: usize, call: Option<Sys>) -> Result<Span, Error> {
        let start = self.val(&r.start);
        let end = r.end.as_ref().map(|e| self.val(e));
        let span = self
            .arena
            .resolve(r.buf, LANE, start, end)
            .map_err(|e| self.range_error(op, r.buf, e))?;
        if span.len() < min {
            return Err(Error::Range {
                op: op as u32,
                buffer: self.buffer_name(r.buf),
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

    fn check_time(&self, op: usize) -> Result<(), Error> {
        if self.deadline.passed() {
            Err(Error::Time {
                op: op as u32,
                limit: self.limit,
            })
        } else {
            Ok(())
        }
    }

    fn close_fd(&mut self, op: usize, fd: i32) {
        if fd >= 0 {
            self.issuer.close(op as u32, fd, &mut self.rec);
        }
    }

    /// Puts `fd` in slot `s`, closing the descriptor it held.
    fn replace_fd(&mut self, op: usize, s: FdSlot, fd: i32) {
        let old = self.fds.replace(s, fd);
        self.close_fd(op, old);
    }

    fn run(&mut self) -> Result<(), Error> {
        self.run_range(0, self.c.ops.len())
    }

    /// Runs from `pc` until the next operation is `stop` (or the program ends).
    fn run_range(&mut self, mut pc: usize, stop: usize) -> Result<(), Error> {
        let n = self.c.ops.len();
        while pc < n && pc != stop {
            if self.used >= self.fuel {
                return Err(Error::Fuel {
                    op: pc as u32,
                    fuel: self.fuel,
                });
            }
            self.used += 1;
            pc = self.step(pc)?;
        }
        Ok(())
    }

    /// Executes operation `pc`; returns the next one.
    fn step(&mut self, pc: usize) -> Result<usize, Error> {
        let c = self.c;
        let op = pc as u32;
        match &c.ops[pc] {
            Op::Sys { call, args, ret } => {
                self.check_time(pc)?;
                self.resolve(pc, *call, args)?;
                let mut rargs = std::mem::take(&mut self.rargs);
                let r =
                    self.issuer
                        .issue(op, *call, &mut rargs, self.arena.mem_mut(), &mut self.rec);
                let done = self.complete(pc, *call, args, *ret, r, &rargs);
                self.rargs = rargs;
                done?;
                Ok(pc + 1)
            }
            Op::Arith { dst, op: bop, a, b } => {
                let v = bop
                    .apply(self.val(a), self.val(b))
                    .ok_or(Error::Arith { op })?;
                self.set(*dst, v);
                Ok(pc + 1)
            }
            Op::Mov { dst, src } => {
                let v = self.val(src);
                self.set(*dst, v);
                Ok(pc + 1)
            }
            Op::Load {
                dst,
                width,
                buf,
                off,
            } => {
                let span = self.width_span(pc, *buf, off, width.bytes())?;
                let mut b = [0u8; 8];
                for (d, s) in b.iter_mut().zip(self.arena.slice(span)) {
                    *d = *s;
                }
                self.set(*dst, u64::from_le_bytes(b) as i64);
                Ok(pc + 1)
            }
            Op::Store {
                width,
                buf,
                off,
                src,
            } => {
                let span = self.width_span(pc, *buf, off, width.bytes())?;
                let bytes = self.val(src).to_le_bytes();
                for (d, s) in self.arena.slice_mut(span).iter_mut().zip(bytes) {
                    *d = s;
                }
                self.arena.mark(span);
                Ok(pc + 1)
            }
            Op::Jump {
                cond,
                target,
                bound,
            } => {
                let t = *target as usize;
                let backward = t <= pc;
                if backward {
                    self.check_time(pc)?;
                }
                let taken = match cond {
                    None => true,
                    Some(cd) => {
                        cd.op
                            .apply(self.val(&cd.a), self.val(&cd.b))
                            .ok_or(Error::Arith { op })?
                            != 0
                    }
                };
                if !taken {
                    return Ok(pc + 1);
                }
                if backward {
                    let bound = bound.unwrap_or(0);
                    let count = self
                        .counters
                        .get_mut(pc)
                        .ok_or(Error::LoopBound { op, bound })?;
                    if *count >= bound {
                        return Err(Error::LoopBound { op, bound });
                    }
                    *count += 1;
                }
                Ok(t)
            }
            Op::Call { dst, func, args } => {
                let v = self.call(pc, func, args)?;
                if let Some(d) = dst {
                    self.set(*d, v);
                }
                Ok(pc + 1)
            }
            Op::MapBegin { source, end } => {
                let items = self.items(pc, source)?;
                let items = match self.parallel_map(pc, *end as usize, items)? {
                    parallel::Ran::Done(next) => return Ok(next),
                    parallel::Ran::Again => self.items(pc, source)?,
                    parallel::Ran::No(items) => items,
                };
                let snapshot = match self.plan.map(pc) {
                    Some(info) => info
                        .locals
                        .iter()
                        .map(|r| self.val(&Value::Reg(*r)))
                        .collect(),
                    None => Vec::new(),
                };
                self.frames.push(Frame {
                    begin: pc,
                    end: *end as usize,
                    items,
                    snapshot,
                });
                self.next_iteration(pc, true)
            }
            Op::MapEnd { .. } => {
                let Some(begin) = self.frames.last().map(|f| f.begin) else {
                    return Err(Error::Setup(format!("op {pc}: map end outside a map")));
                };
                if let Some(info) = self.plan.map(begin) {
                    for s in &info.fd_slots {
                        let fd = self.fds.replace(*s, -1);
                        self.close_fd(pc, fd);
                    }
                }
                self.next_iteration(pc, false)
            }
        }
    }

    fn width_span(&self, pc: usize, buf: BufId, off: &Value, w: usize) -> Result<Span, Error> {
        let o = self.val(off);
        self.arena
            .resolve(buf, LANE, o, Some(o.saturating_add(w as i64)))
            .map_err(|e| self.range_error(pc, buf, e))
    }

    /// Starts the next iteration of the innermost map (`pc` is its begin or end); returns the
    /// next operation: the body's first, or the one after the map.
    fn next_iteration(&mut self, pc: usize, first: bool) -> Result<usize, Error> {
        let plan = self.plan;
        let Some(frame) = self.frames.last_mut() else {
            return Ok(pc + 1);
        };
        let (begin, end) = (frame.begin, frame.end);
        let Some(binding) = frame.items.next(&self.c.data) else {
            self.frames.pop();
            return Ok(end + 1);
        };
        let info: Option<&MapInfo> = plan.map(begin);
        if !first {
            self.check_time(pc)?;
            if let (Some(info), Some(frame)) = (info, self.frames.last()) {
                for (r, v) in info.locals.iter().zip(&frame.snapshot) {
                    if let Some(x) = self.regs.get_mut(r.index()) {
                        *x = *v;
                    }
                }
            }
        }
        match binding {
            Binding::Path(var, bytes) => self.bind_path(var, bytes),
            Binding::Reg(r, v) => self.set(r, v),
            Binding::Dirent(name, bytes, kind, k, ino, i) => {
                self.bind_path(name, bytes);
                self.set(kind, k);
                self.set(ino, i);
            }
        }
        if let Some(info) = info {
            for &j in &info.jumps {
                if let Some(x) = self.counters.get_mut(j) {
                    *x = 0;
                }
            }
            self.arena.clear_locals(&info.zero_bufs, LANE);
        }
        Ok(begin + 1)
    }

    fn bind_path(&mut self, var: PathVar, bytes: Vec<u8>) {
        if let Some(p) = self.pathvals.get_mut(var.index()) {
            *p = bytes;
        }
    }

    fn items(&self, pc: usize, source: &MapSource) -> Result<Items, Error> {
        Items::new(
            pc,
            source,
            |v| self.val(v),
            |buf| {
                let span = self.range(pc, buf, 0, None)?;
                parse_dirents(self.arena.slice(span)).map_err(|detail| Error::Range {
                    op: pc as u32,
                    buffer: self.buffer_name(buf.buf),
                    detail,
                })
            },
        )
    }

    /// Evaluates the operands of a system call into `self.rargs`.
    fn resolve(&mut self, pc: usize, call: Sys, args: &[Arg]) -> Result<(), Error> {
        let mut out = std::mem::take(&mut self.rargs);
        out.items.clear();
        let min = sys::min_buf_len(call);
        for (a, spec) in args.iter().zip(call.spec().args) {
            let r = match (spec.kind, a) {
                (ArgKind::NewFd, _) => Resolved::NewFd(-1),
                (_, Arg::Value(v)) => Resolved::Int(self.val(v)),
                (_, Arg::Fd(f)) => Resolved::Fd(fd_raw(&self.fds, f)),
                (_, Arg::Path(p)) => {
                    // Paths hold no NUL: the plan checks data constants, and directory entry
                    // names end at their NUL.
                    let bytes = path_bytes(self.c, &self.pathvals, p);
                    Resolved::Path(std::ffi::CString::new(bytes).unwrap_or_default())
                }
                (kind, Arg::Buf(r)) => match self.range(pc, r, min, Some(call)) {
                    Ok(s) => {
                        if kind == ArgKind::BufOut {
                            self.arena.mark(s);
                        }
                        Resolved::Buf(s)
                    }
                    Err(e) => {
                        self.rargs = out;
                        return Err(e);
                    }
                },
            };
            out.items.push(r);
        }
        self.rargs = out;
        Ok(())
    }

    /// Applies a call's result: the register or slot of `ret`, the slots of `pipe2`, the
    /// error mode.
    fn complete(
        &mut self,
        pc: usize,
        call: Sys,
        args: &[Arg],
        ret: Ret,
        r: i64,
        rargs: &ResolvedArgs,
    ) -> Result<(), Error> {
        let op = pc as u32;
        if call == Sys::Close
            && let Some(Arg::Fd(FdRef::Slot(s))) = args.first()
        {
            // close empties the slot whatever its result.
            self.fds.replace(*s, -1);
        }
        // The slots of NewFd operands (pipe2, the only call with any).
        let new_slots: Vec<FdSlot> = if call == Sys::Pipe2 {
            args.iter()
                .zip(call.spec().args)
                .filter_map(|(a, s)| match (s.kind, a) {
                    (ArgKind::NewFd, Arg::Fd(FdRef::Slot(x))) => Some(*x),
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        if r < 0 {
            let errno = i32::try_from(r.checked_neg().unwrap_or(i64::MAX)).unwrap_or(i32::MAX);
            if self.c.mode == ErrorMode::Stop {
                return Err(Error::Call { op, call, errno });
            }
            self.errors.push(CallError { op, call, errno });
            match ret {
                Ret::Reg(reg) => self.set(reg, r),
                Ret::Fd(s) => self.replace_fd(pc, s, -1),
                Ret::None => {}
            }
            for s in new_slots {
                self.replace_fd(pc, s, -1);
            }
        } else {
            match ret {
                Ret::Reg(reg) => self.set(reg, r),
                Ret::Fd(s) => self.replace_fd(pc, s, i32::try_from(r).unwrap_or(-1)),
                Ret::None => {}
            }
            if !new_slots.is_empty() {
                let fds: Vec<i32> = rargs.new_fds().collect();
                for (s, fd) in new_slots.into_iter().zip(fds) {
                    self.replace_fd(pc, s, fd);
                }
            }
        }
        Ok(())
    }

    /// Calls function `name` with `args`.
    fn call(&mut self, pc: usize, name: &str, args: &[Arg]) -> Result<i64, Error> {
        let f = self.funcs.get(name).ok_or_else(|| Error::Function {
            op: pc as u32,
            func: name.to_string(),
            message: "not registered".into(),
        })?;
        let mut operands = Vec::with_capacity(args.len());
        for a in args {
            operands.push(match a {
                Arg::Buf(r) => Operand::Buf(self.range(pc, r, 0, None)?),
                Arg::Value(v) => Operand::Int(self.val(v)),
                Arg::Fd(fr) => Operand::Int(i64::from(fd_raw(&self.fds, fr))),
                Arg::Path(p) => Operand::Path(path_bytes(self.c, &self.pathvals, p)),
            });
        }
        if let Some(out) = out_operand(&f, &operands) {
            self.arena.mark(out);
        }
        let mem = self.arena.mem_mut();
        call_function(&f, pc as u32, name, &operands, mem)
    }

    fn finish(mut self, result: Result<(), Error>, started: Instant) -> Outcome {
        let end = self.c.ops.len();
        for s in self.fds.open() {
            let fd = self.fds.replace(s, -1);
            self.close_fd(end, fd);
        }
        let outputs = self
            .c
            .outputs
            .iter()
            .map(|o| (o.name.clone(), self.val(&Value::Reg(o.reg))))
            .collect();
        let mut stats = self.rec.stats();
        stats.ops = self.used;
        stats.elapsed = started.elapsed();
        Outcome {
            outputs,
            error: result.err(),
            errors: std::mem::take(&mut self.errors),
            stats,
            trace: self.rec.trace.take().unwrap_or_default(),
        }
    }
}

/// An operand of a function call, evaluated.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Operand<'a> {
    /// A value or a descriptor number.
    Int(i64),
    /// A path (a data constant or a path variable).
    Path(&'a [u8]),
    /// A range of the arena.
    Buf(Span),
}

/// The range a mutable function writes: its last buffer operand.
pub(crate) fn out_operand(f: &Function, operands: &[Operand<'_>]) -> Option<Span> {
    if !f.is_mut() {
        return None;
    }
    operands.iter().rev().find_map(|o| match o {
        Operand::Buf(s) => Some(*s),
        _ => None,
    })
}

/// Calls `f` (operation `op`, named `name`) with evaluated operands on the arena block `mem`:
/// a mutable function gets its last buffer operand writable (it must not overlap the others).
/// A failure or a panic of the function is `Error::Function`.
pub(crate) fn call_function(
    f: &Function,
    op: u32,
    name: &str,
    operands: &[Operand<'_>],
    mem: &mut [u8],
) -> Result<i64, Error> {
    let fail = |message: String| Error::Function {
        op,
        func: name.to_string(),
        message,
    };
    let out_idx = if f.is_mut() {
        operands.iter().rposition(|o| matches!(o, Operand::Buf(_)))
    } else {
        None
    };
    let ins: Vec<Span> = operands
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != out_idx)
        .filter_map(|(_, o)| match o {
            Operand::Buf(s) => Some(*s),
            _ => None,
        })
        .collect();
    let out_span = out_idx.and_then(|i| match operands.get(i) {
        Some(Operand::Buf(s)) => Some(*s),
        _ => None,
    });
    let (views, out) = match out_span {
        Some(o) => match arena::split(mem, &ins, o) {
            Some((v, o)) => (v, Some(o)),
            None => {
                return Err(fail(
                    "its output range overlaps one of its input ranges".into(),
                ));
            }
        },
        None => {
            let mem: &[u8] = mem;
            (ins.iter().map(|s| arena::bytes(mem, *s)).collect(), None)
        }
    };
    let mut views = views.into_iter();
    let mut args = Vec::with_capacity(operands.len());
    for (i, o) in operands.iter().enumerate() {
        if Some(i) == out_idx {
            continue;
        }
        args.push(match o {
            Operand::Int(v) => FnArg::Int(*v),
            Operand::Path(p) => FnArg::Bytes(p),
            Operand::Buf(_) => FnArg::Bytes(views.next().unwrap_or(&[])),
        });
    }
    let mut fn_args = FnArgs::new(args, out);
    match catch_unwind(AssertUnwindSafe(|| f.call(&mut fn_args))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(m)) => Err(fail(m)),
        Err(p) => Err(fail(panic_message(p.as_ref()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(ino: u64, kind: u8, name: &[u8]) -> Vec<u8> {
        let reclen = (19 + name.len() + 1).div_ceil(8) * 8;
        let mut r = vec![0u8; reclen];
        r[..8].copy_from_slice(&ino.to_le_bytes());
        r[16..18].copy_from_slice(&(reclen as u16).to_le_bytes());
        r[18] = kind;
        r[19..19 + name.len()].copy_from_slice(name);
        r
    }

    #[test]
    fn dirents_parse_and_skip_dots() {
        let mut b = record(1, 4, b".");
        b.extend(record(2, 4, b".."));
        b.extend(record(3, 8, b"file"));
        b.extend(record(4, 4, b"a-longer-directory-name"));
        let e = parse_dirents(&b).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0],
            DirEntry {
                ino: 3,
                kind: 8,
                name: b"file".to_vec()
            }
        );
        assert_eq!(e[1].name, b"a-longer-directory-name");
        assert!(parse_dirents(&b[..b.len() - 1]).is_err());
        let mut bad = record(1, 8, b"x");
        bad[16] = 19;
        assert!(parse_dirents(&bad).unwrap_err().contains("d_reclen 19"));
        assert_eq!(parse_dirents(&[]), Ok(vec![]));
    }

    proptest! {
        #[test]
        fn dirent_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_dirents(&bytes);
        }
    }
}
