//! Maps issued from a template (docs/ring.md): a concurrent map whose body is straight-line
//! and whose calls only read, with operands known before the body runs ([`Template`]), runs
//! without a thread per iteration. For a batch of iterations (one lane each), every
//! iteration's calls are pushed on the ring straight from the template, computing only the
//! arithmetic their operands need; one wait; then the body runs over each iteration in order
//! with the calls' results, on the main program's registers. That last part is what `direct`
//! does, so the error modes, accumulators, fuel and the registers left after the map follow
//! without undo logs or commits; the calls of iterations after a failing one were reads, and
//! are dropped.

use std::cell::Cell;

use cosy_model::{Arg, BinOp, BufId, ErrorMode, Op, PathRef, PathVar, Reg, Ret, Sys, Value};
use cosy_uring::{Link, Op as U, Target};

use super::{Fd, Machine, Step, Thread};
use crate::arena::{self, RangeError, Span};
use crate::interp::{Binding, Items};
use crate::outcome::{CallError, Error, Via};
use crate::ring::plan::Template;
use crate::sys;

thread_local! {
    static TEMPLATE_MAPS: Cell<u64> = const { Cell::new(0) };
}

/// How many maps the ring executor ran from a template on this thread so far (tests and
/// benchmarks check with it that a map takes that path).
pub fn template_maps() -> u64 {
    TEMPLATE_MAPS.with(Cell::get)
}

/// The result of a call that was not issued (an operand error, the time limit).
const NOT_ISSUED: i64 = i64::MIN;

/// What one call of the template acts on: fixed for the whole map, since the body opens and
/// closes nothing.
#[derive(Clone, Copy, Debug)]
struct On {
    call: Sys,
    /// The file of a `pread` (a direct descriptor).
    target: Target,
    /// The descriptor of a `statx` or `fstat` (a number).
    raw: i32,
    /// The descriptor as traced.
    traced: i32,
}

/// How a call of one iteration went to the ring.
enum Issued {
    Pushed,
    /// Known without the kernel (an offset `pread64` refuses before anything else).
    Known(i64),
    /// An operand error: the iteration stops there when it runs.
    Fails(Error),
}

fn get(regs: &[i64], v: &Value) -> i64 {
    match v {
        Value::Imm(x) => *x,
        Value::Reg(r) => regs.get(r.index()).copied().unwrap_or(0),
    }
}

fn set(regs: &mut [i64], r: Reg, v: i64) {
    if let Some(x) = regs.get_mut(r.index()) {
        *x = v;
    }
}

fn int(regs: &[i64], a: Option<&Arg>) -> i64 {
    match a {
        Some(Arg::Value(v)) => get(regs, v),
        _ => 0,
    }
}

fn internal(what: &str) -> Error {
    Error::Setup(format!("internal error of the ring executor: {what}"))
}

/// An operand of a compiled body.
#[derive(Clone, Copy, Debug)]
enum V {
    Imm(i64),
    Reg(usize),
}

impl V {
    fn of(v: &Value) -> V {
        match v {
            Value::Imm(x) => V::Imm(*x),
            Value::Reg(r) => V::Reg(r.index()),
        }
    }

    #[inline]
    fn get(self, regs: &[i64]) -> i64 {
        match self {
            V::Imm(x) => x,
            V::Reg(r) => regs.get(r).copied().unwrap_or(0),
        }
    }
}

/// A body operation, compiled for the loops that run it once per iteration.
#[derive(Clone, Copy, Debug)]
enum Ins {
    Arith {
        pc: u32,
        dst: usize,
        op: BinOp,
        a: V,
        b: V,
        /// Computed before the calls are issued.
        early: bool,
    },
    Mov {
        dst: usize,
        src: V,
        early: bool,
    },
    Load {
        pc: u32,
        dst: usize,
        width: usize,
        buf: BufId,
        off: V,
    },
    /// The template's call `j`.
    Call {
        pc: u32,
        j: usize,
        ret: Option<usize>,
    },
}

fn compile(tm: &Template, body: &[Op]) -> Result<Vec<Ins>, Error> {
    let mut j = 0;
    body.iter()
        .enumerate()
        .map(|(k, op)| {
            let pc = (tm.begin + 1 + k) as u32;
            let early = tm.early.get(k).copied().unwrap_or(false);
            Ok(match op {
                Op::Arith { dst, op, a, b } => Ins::Arith {
                    pc,
                    dst: dst.index(),
                    op: *op,
                    a: V::of(a),
                    b: V::of(b),
                    early,
                },
                Op::Mov { dst, src } => Ins::Mov {
                    dst: dst.index(),
                    src: V::of(src),
                    early,
                },
                Op::Load {
                    dst,
                    width,
                    buf,
                    off,
                } => Ins::Load {
                    pc,
                    dst: dst.index(),
                    width: width.bytes(),
                    buf: *buf,
                    off: V::of(off),
                },
                Op::Sys { ret, .. } => {
                    j += 1;
                    Ins::Call {
                        pc,
                        j: j - 1,
                        ret: match ret {
                            Ret::Reg(r) => Some(r.index()),
                            _ => None,
                        },
                    }
                }
                _ => return Err(internal("an operation a template does not take")),
            })
        })
        .collect()
}

/// Why the body stopped: an error, or an out-of-range `load` (described once the arena is no
/// longer borrowed).
enum Stop {
    Err(Error),
    Range(u32, BufId, RangeError),
}

/// The items of a batch: the values of a range (the common case, without a list), or the
/// bindings of other sources.
enum Binds {
    Range {
        var: usize,
        first: i64,
        step: i64,
        m: usize,
    },
    List,
}

impl Binds {
    /// Takes up to `want` items (bindings other than a range's go to `list`).
    fn take(&mut self, items: &mut Items, want: usize, data: &[Vec<u8>], list: &mut Vec<Binding>) {
        list.clear();
        let n = want.min(items.remaining());
        if let Items::Range {
            var,
            next: Some(first),
            step,
            ..
        } = items
            && n > 0
        {
            let (v, f, st) = (var.index(), *first, *step);
            // The last value taken is below the end, so none of these overflow; the next one
            // may (the map then ends, as `Items::next` has it).
            let last = f.wrapping_add((n as i64 - 1).wrapping_mul(st));
            if let Items::Range { next, .. } = items {
                *next = last.checked_add(st);
            }
            *self = Binds::Range {
                var: v,
                first: f,
                step: st,
                m: n,
            };
            return;
        }
        *self = Binds::List;
        while list.len() < n
            && let Some(b) = items.next(data)
        {
            list.push(b);
        }
    }

    fn len(&self, list: &[Binding]) -> usize {
        match self {
            Binds::Range { m, .. } => *m,
            Binds::List => list.len(),
        }
    }
}

impl Machine<'_> {
    /// Runs the concurrent map at `pc` from its template, if it has one and the run allows
    /// it; `None` (with nothing done and no item taken) leaves it to the threads.
    pub(super) fn run_template(
        &mut self,
        t: &mut Thread,
        pc: usize,
        items: &mut Items,
    ) -> Option<Step> {
        let rp = self.rp;
        let tm = rp.template_at(pc)?;
        let n = items.remaining();
        if n < 2 || self.ring.is_none() || t.qlen > 0 {
            return None;
        }
        // The window: at most one iteration per worker (lane of local buffers).
        let per = tm.calls.len();
        let mut batch = (self.sq_cap / per.max(1)).min(self.workers);
        if tm.lanes {
            batch = batch.min(self.layout.lanes());
        }
        if batch < 2 {
            return None;
        }
        // Fuel for the whole map, or the threads (which stop at the exact operation).
        let body = (tm.end - tm.begin - 1) as u64;
        let need = (n as u64).checked_mul(body + 1)?.checked_add(1)?;
        if t.used.saturating_add(self.base).saturating_add(need) > self.fuel {
            return None;
        }
        let c = self.c;
        let mut on = Vec::with_capacity(per);
        for &ci in &tm.calls {
            let Some(Op::Sys { call, args, .. }) = c.ops.get(ci) else {
                return None;
            };
            let fd = match args.first() {
                Some(Arg::Fd(f)) => self.fd_of(t, f)?,
                _ => Fd::Raw(-1),
            };
            // Reads of descriptors of the process are issued directly (see `queue_call`);
            // statx and fstat take a number; under a root statx takes the confinement path.
            let o = match (*call, fd) {
                (Sys::Nop, _) => On {
                    call: Sys::Nop,
                    target: Target::Fd(-1),
                    raw: -1,
                    traced: -1,
                },
                (Sys::Pread, Fd::Fixed(_)) => On {
                    call: Sys::Pread,
                    target: fd.target(),
                    raw: -1,
                    traced: fd.traced(),
                },
                (Sys::Statx | Sys::Fstat, Fd::Raw(r)) if self.issuer.root().is_none() => On {
                    call: *call,
                    target: Target::Fd(r),
                    raw: r,
                    traced: r,
                },
                _ => return None,
            };
            on.push(o);
        }
        TEMPLATE_MAPS.with(|x| x.set(x.get() + 1));
        Some(match self.template_map(t, tm, &on, items, batch) {
            Ok(()) => Step::Go(tm.end + 1),
            Err(e) => Step::Err(e),
        })
    }

    /// The map's iterations, `batch` at a time: issued from the template, then run in order.
    fn template_map(
        &mut self,
        t: &mut Thread,
        tm: &Template,
        on: &[On],
        items: &mut Items,
        batch: usize,
    ) -> Result<(), Error> {
        let c = self.c;
        let plan = self.plan;
        let (begin, end) = (tm.begin, tm.end);
        let body = c
            .ops
            .get(begin + 1..end)
            .ok_or_else(|| internal("map body"))?;
        let prog = compile(tm, body)?;
        let per = on.len();
        let info = plan.map(begin);
        let locals: &[Reg] = info.map_or(&[], |i| i.locals.as_slice());
        let zero_bufs = info.map_or(&[][..], |i| i.zero_bufs.as_slice());
        let snapshot: Vec<i64> = locals
            .iter()
            .map(|r| t.regs.get(r.index()).copied().unwrap_or(0))
            .collect();
        let tracing = self.rec.tracing();
        let stop = self.mode == ErrorMode::Stop;
        let mut scratch = t.regs.clone();
        let mut binds = Binds::Range {
            var: 0,
            first: 0,
            step: 0,
            m: 0,
        };
        let mut list: Vec<Binding> = Vec::new();
        let mut results: Vec<i64> = Vec::with_capacity(batch * per);
        let mut fails: Vec<(usize, Error)> = Vec::new();
        let mut first = true;
        // The operand arithmetic of each iteration, as the pushes computed it.
        let n_early = prog
            .iter()
            .filter(|i| {
                matches!(
                    i,
                    Ins::Arith { early: true, .. } | Ins::Mov { early: true, .. }
                )
            })
            .count();
        let mut pre: Vec<i64> = Vec::with_capacity(batch * n_early);
        let has_load = prog.iter().any(|i| matches!(i, Ins::Load { .. }));
        // Waits end at the deadline (read once: the clocks cost more than a batch of nops).
        let deadline = self.deadline.instant();
        while items.remaining() > 0 {
            let late = self.time_up();
            if late && !first {
                // The check of the `MapEnd` before a further iteration.
                return Err(Error::Time {
                    op: end as u32,
                    limit: self.limit,
                });
            }
            // Past the time limit before the first iteration: it runs up to its first call,
            // which is refused.
            let want = if late { 1 } else { batch };
            binds.take(items, want, &c.data, &mut list);
            let m = binds.len(&list);
            let lane = |s: usize| if tm.lanes { s } else { 0 };
            // Every iteration starts with its local buffers zeroed.
            if !zero_bufs.is_empty() {
                let layout = self.layout;
                let mut dirty = std::mem::take(&mut self.dirty);
                if let Ok(mem) = self.mem() {
                    for s in 0..m {
                        for &b in zero_bufs {
                            dirty.clear(layout, mem, b, lane(s));
                        }
                    }
                }
                self.dirty = dirty;
            }
            results.clear();
            results.resize(m * per, NOT_ISSUED);
            fails.clear();
            let mut timed_out = late;
            let mut pre_ok = 0;
            if !late {
                pre.clear();
                pre_ok = self.issue_batch(
                    t,
                    tm,
                    &prog,
                    on,
                    &binds,
                    &list,
                    &mut scratch,
                    &mut results,
                    &mut fails,
                    &mut pre,
                )?;
                timed_out = !self.wait_batch(on, &mut results, deadline)?;
            }
            // The body over each iteration, in order, with the results. Nothing is in flight:
            // the arena is read in place.
            let layout = self.layout;
            let limit = self.limit;
            let rec = &mut self.rec;
            let errors = &mut self.errors;
            let mem: Result<&[u8], String> = if !has_load {
                Ok(&[])
            } else {
                match (self.ring.as_deref(), self.own_mem.as_ref()) {
                    (_, Some(m)) => Ok(m.as_slice()),
                    (Some(r), None) if r.region_len() > 0 => r.region().map_err(|e| e.to_string()),
                    _ => Ok(&[]),
                }
            };
            let mut list_items = list.drain(..);
            let stopped: Option<Stop> = 'body: {
                for s in 0..m {
                    for (r, v) in locals.iter().zip(&snapshot) {
                        set(&mut t.regs, *r, *v);
                    }
                    match &binds {
                        Binds::Range {
                            var, first, step, ..
                        } => {
                            if let Some(x) = t.regs.get_mut(*var) {
                                *x = first.wrapping_add((s as i64).wrapping_mul(*step));
                            }
                        }
                        Binds::List => match list_items.next() {
                            Some(Binding::Reg(r, v)) => set(&mut t.regs, r, v),
                            Some(Binding::Path(var, bytes)) => {
                                if let Some(p) = t.pathvals.get_mut(var.index()) {
                                    *p = bytes;
                                }
                            }
                            Some(Binding::Dirent(name, bytes, kind, k, ino, i)) => {
                                if let Some(p) = t.pathvals.get_mut(name.index()) {
                                    *p = bytes;
                                }
                                set(&mut t.regs, kind, k);
                                set(&mut t.regs, ino, i);
                            }
                            None => {
                                break 'body Some(Stop::Err(internal("a binding of a template")));
                            }
                        },
                    }
                    let res = results.get(s * per..(s + 1) * per).unwrap_or(&[]);
                    // The operand arithmetic the pushes computed for this iteration, if they got
                    // through all of it: the same values from the same inputs.
                    let mut known = if s < pre_ok {
                        pre.get(s * n_early..(s + 1) * n_early).unwrap_or(&[])
                    } else {
                        &[]
                    }
                    .iter();
                    for ins in &prog {
                        t.used += 1;
                        match *ins {
                            Ins::Arith {
                                pc,
                                dst,
                                op,
                                a,
                                b,
                                early,
                            } => {
                                let v = match if early { known.next() } else { None } {
                                    Some(v) => *v,
                                    None => {
                                        let (x, y) = (a.get(&t.regs), b.get(&t.regs));
                                        // Accumulations are sums: spare them the dispatch.
                                        if op == BinOp::Add {
                                            x.wrapping_add(y)
                                        } else {
                                            match op.apply(x, y) {
                                                Some(v) => v,
                                                None => {
                                                    break 'body Some(Stop::Err(Error::Arith {
                                                        op: pc,
                                                    }));
                                                }
                                            }
                                        }
                                    }
                                };
                                if let Some(x) = t.regs.get_mut(dst) {
                                    *x = v;
                                }
                            }
                            Ins::Mov { dst, src, early } => {
                                let v = match if early { known.next() } else { None } {
                                    Some(v) => *v,
                                    None => src.get(&t.regs),
                                };
                                if let Some(x) = t.regs.get_mut(dst) {
                                    *x = v;
                                }
                            }
                            Ins::Load {
                                pc,
                                dst,
                                width,
                                buf,
                                off,
                            } => {
                                let o = off.get(&t.regs);
                                let span = match layout.resolve(
                                    buf,
                                    lane(s),
                                    o,
                                    Some(o.saturating_add(width as i64)),
                                ) {
                                    Ok(span) => span,
                                    Err(e) => break 'body Some(Stop::Range(pc, buf, e)),
                                };
                                let mem = match &mem {
                                    Ok(mem) => *mem,
                                    Err(e) => break 'body Some(Stop::Err(internal(e))),
                                };
                                let mut x = [0u8; 8];
                                for (d, b) in x.iter_mut().zip(arena::bytes(mem, span)) {
                                    *d = *b;
                                }
                                if let Some(r) = t.regs.get_mut(dst) {
                                    *r = u64::from_le_bytes(x) as i64;
                                }
                            }
                            Ins::Call { pc, j, ret } => {
                                let r = res.get(j).copied().unwrap_or(NOT_ISSUED);
                                let call = on.get(j).map_or(Sys::Nop, |o| o.call);
                                if r == NOT_ISSUED {
                                    let ud = s * per + j;
                                    if let Some((_, e)) = fails.iter().find(|(u, _)| *u == ud) {
                                        break 'body Some(Stop::Err(e.clone()));
                                    }
                                    if timed_out {
                                        break 'body Some(Stop::Err(Error::Time { op: pc, limit }));
                                    }
                                    break 'body Some(Stop::Err(internal(
                                        "a call of a template was not issued",
                                    )));
                                }
                                if tracing {
                                    let fd = on.get(j).map_or(-1, |o| o.traced);
                                    rec.trace(pc, call, fd, r);
                                }
                                if r < 0 {
                                    let errno = i32::try_from(r.checked_neg().unwrap_or(i64::MAX))
                                        .unwrap_or(i32::MAX);
                                    if stop {
                                        break 'body Some(Stop::Err(Error::Call {
                                            op: pc,
                                            call,
                                            errno,
                                        }));
                                    }
                                    errors.push(CallError {
                                        op: pc,
                                        call,
                                        errno,
                                    });
                                }
                                if let Some(x) = ret.and_then(|reg| t.regs.get_mut(reg)) {
                                    *x = r;
                                }
                            }
                        }
                    }
                    // The `MapEnd`.
                    t.used += 1;
                }
                None
            };
            match stopped {
                None => {}
                Some(Stop::Err(e)) => return Err(e),
                Some(Stop::Range(pc, buf, e)) => return Err(self.range_error(pc as usize, buf, e)),
            }
            first = false;
        }
        Ok(())
    }

    /// Pushes the calls of the batch's iterations (iteration `s` in lane `s`, or 0 when no
    /// call writes a buffer); a result known without the kernel goes to `results`, an operand
    /// error to `fails`. An iteration that stops before its end (an arithmetic or operand
    /// error) ends the batch: nothing after it runs.
    #[allow(clippy::too_many_arguments)]
    fn issue_batch(
        &mut self,
        t: &Thread,
        tm: &Template,
        prog: &[Ins],
        on: &[On],
        binds: &Binds,
        list: &[Binding],
        scratch: &mut [i64],
        results: &mut [i64],
        fails: &mut Vec<(usize, Error)>,
        pre: &mut Vec<i64>,
    ) -> Result<usize, Error> {
        let c = self.c;
        let per = on.len();
        let m = binds.len(list);
        for s in 0..m {
            let lane = if tm.lanes { s } else { 0 };
            let path = match binds {
                Binds::Range {
                    var, first, step, ..
                } => {
                    if let Some(x) = scratch.get_mut(*var) {
                        *x = first.wrapping_add((s as i64).wrapping_mul(*step));
                    }
                    None
                }
                Binds::List => match list.get(s) {
                    Some(Binding::Reg(r, v)) => {
                        set(scratch, *r, *v);
                        None
                    }
                    Some(Binding::Path(var, bytes)) => Some((*var, bytes.as_slice())),
                    Some(Binding::Dirent(name, bytes, kind, k, ino, i)) => {
                        set(scratch, *kind, *k);
                        set(scratch, *ino, *i);
                        Some((*name, bytes.as_slice()))
                    }
                    None => None,
                },
            };
            for ins in prog {
                match *ins {
                    Ins::Arith {
                        dst,
                        op,
                        a,
                        b,
                        early: true,
                        ..
                    } => match op.apply(a.get(scratch), b.get(scratch)) {
                        Some(v) => {
                            if let Some(x) = scratch.get_mut(dst) {
                                *x = v;
                            }
                            pre.push(v);
                        }
                        // The iteration stops here when it runs.
                        None => return Ok(s),
                    },
                    Ins::Mov {
                        dst,
                        src,
                        early: true,
                    } => {
                        let v = src.get(scratch);
                        if let Some(x) = scratch.get_mut(dst) {
                            *x = v;
                        }
                        pre.push(v);
                    }
                    Ins::Call { pc, j, .. } => {
                        let ud = s * per + j;
                        let o = on
                            .get(j)
                            .copied()
                            .ok_or_else(|| internal("template call"))?;
                        let args = match c.ops.get(pc as usize) {
                            Some(Op::Sys { args, .. }) => args.as_slice(),
                            _ => &[],
                        };
                        match self.issue_one(t, pc as usize, o, args, scratch, lane, path, ud)? {
                            Issued::Pushed => {}
                            Issued::Known(r) => {
                                if let Some(x) = results.get_mut(ud) {
                                    *x = r;
                                }
                            }
                            Issued::Fails(e) => {
                                fails.push((ud, e));
                                return Ok(s);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(m)
    }

    /// Pushes one call of an iteration (user data `ud`).
    #[allow(clippy::too_many_arguments)]
    fn issue_one(
        &mut self,
        t: &Thread,
        pc: usize,
        on: On,
        args: &[Arg],
        regs: &[i64],
        lane: usize,
        path: Option<(PathVar, &[u8])>,
        ud: usize,
    ) -> Result<Issued, Error> {
        let c = self.c;
        let buf = |this: &Self, i: usize| -> Result<Result<Span, Error>, Error> {
            let Some(Arg::Buf(r)) = args.get(i) else {
                return Err(internal("a buffer operand"));
            };
            this.range_in(lane, pc, r, sys::min_buf_len(on.call), Some(on.call), |v| {
                Some(get(regs, v))
            })
            .ok_or_else(|| internal("a range operand"))
        };
        let op = match on.call {
            Sys::Nop => U::Nop,
            Sys::Pread => {
                let span = match buf(self, 1)? {
                    Ok(s) => s,
                    Err(e) => return Ok(Issued::Fails(e)),
                };
                let offset = int(regs, args.get(2));
                if offset < 0 {
                    // pread64 refuses a negative offset before anything else.
                    let r = -i64::from(libc::EINVAL);
                    self.rec.count(Sys::Pread, r, Via::Syscall);
                    return Ok(Issued::Known(r));
                }
                self.dirty.mark(self.layout, span);
                U::Read {
                    fd: on.target,
                    buf: span.range(),
                    offset,
                }
            }
            Sys::Statx | Sys::Fstat => {
                let (i, flags, mask, bytes): (usize, i32, u32, &[u8]) = if on.call == Sys::Statx {
                    let bytes = match args.get(1) {
                        Some(Arg::Path(PathRef::Data(d))) => {
                            c.data.get(d.index()).map_or(&[][..], Vec::as_slice)
                        }
                        Some(Arg::Path(PathRef::Var(v))) => match path {
                            Some((var, b)) if var == *v => b,
                            _ => t.pathvals.get(v.index()).map_or(&[][..], Vec::as_slice),
                        },
                        _ => &[],
                    };
                    (
                        4,
                        int(regs, args.get(2)) as i32,
                        int(regs, args.get(3)) as u32,
                        bytes,
                    )
                } else {
                    (1, libc::AT_EMPTY_PATH, libc::STATX_BASIC_STATS, &[])
                };
                let span = match buf(self, i)? {
                    Ok(s) => s,
                    Err(e) => return Ok(Issued::Fails(e)),
                };
                self.dirty.mark(self.layout, span);
                let ring = self
                    .ring
                    .as_deref_mut()
                    .ok_or_else(|| internal("no ring"))?;
                ring.push(
                    &U::Statx {
                        dirfd: on.raw,
                        path: bytes,
                        flags,
                        mask,
                        buf: span.offset(),
                    },
                    ud as u64,
                    Link::None,
                )
                .map_err(|e| Error::Setup(format!("io_uring: op {pc}: {e}")))?;
                return Ok(Issued::Pushed);
            }
            _ => return Err(internal("a call a template does not take")),
        };
        let ring = self
            .ring
            .as_deref_mut()
            .ok_or_else(|| internal("no ring"))?;
        ring.push(&op, ud as u64, Link::None)
            .map_err(|e| Error::Setup(format!("io_uring: op {pc}: {e}")))?;
        Ok(Issued::Pushed)
    }

    /// Submits the batch and waits for all of it; the results go to `results` (by user data).
    /// `false`: the time limit passed first, and what was still in flight was cancelled
    /// (those calls stay `NOT_ISSUED`).
    fn wait_batch(
        &mut self,
        on: &[On],
        results: &mut [i64],
        deadline: Option<std::time::Instant>,
    ) -> Result<bool, Error> {
        let per = on.len().max(1);
        let ring = self
            .ring
            .as_deref_mut()
            .ok_or_else(|| internal("no ring"))?;
        let (_, finished) = ring
            .submit_and_wait_until(usize::MAX, deadline)
            .map_err(|e| Error::Setup(format!("io_uring: {e}")))?;
        let rec = &mut self.rec;
        // Results are filed straight from the completion queue: a batch is hundreds of them.
        let mut file = |c: cosy_uring::Completion| {
            if c.user_data == u64::MAX {
                return;
            }
            let r = i64::from(c.result);
            if !finished && r == -i64::from(libc::ECANCELED) {
                // Cancelled before it ran.
                return;
            }
            let ud = c.user_data as usize;
            if let (Some(x), Some(o)) = (results.get_mut(ud), on.get(ud % per)) {
                *x = r;
                rec.count(o.call, r, Via::Ring);
            }
        };
        ring.drain_completions_with(&mut file);
        if !finished {
            ring.cancel_staged();
            let _ = ring.push(&U::CancelAll, u64::MAX, Link::None);
            let _ = ring.submit_and_wait(usize::MAX);
            ring.drain_completions_with(&mut file);
        }
        Ok(finished)
    }
}
