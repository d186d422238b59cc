//! Executing one operation in a lane: the semantics of each kind of operation
//! (docs/semantics.md), with what may not run past a pending call.

use std::sync::Arc;

use cosy_model::{Arg, ArgKind, BufId, FdRef, MapSource, Op, PathVar, Ret, Sys, Value};

use super::call::{self, Operand};
use super::{
    Binding, Cx, Flow, Frame, Issued, Issuer, Items, Lane, Ticket, Undo, buffer_name, errno_of,
    fd_raw, maps, out_span, parse_dirents, path_bytes, path_cstr, written, zero_locals,
};
use crate::arena::{Dirty, Span};
use crate::outcome::{CallError, Error};
use crate::plan::MapInfo;
use crate::sys::{self, Resolved, ResolvedArgs};

impl Lane {
    /// Executes operation `pc`; the next one, or a block.
    pub(super) fn step<I: Issuer>(
        &mut self,
        cx: &Cx<'_>,
        issuer: &mut I,
        dirty: &mut Dirty,
    ) -> Result<Flow, Error> {
        let c = cx.c;
        let pc = self.pc;
        let op = pc as u32;
        let operation = &c.ops[pc];
        // Past a pending call that may fail, a lane runs only what it can undo: calls,
        // arithmetic, moves and jumps on values it has.
        if self.fallible > 0 {
            let go = match operation {
                Op::Sys { .. } => true,
                // Nor over a pending call's register: its result would land after.
                Op::Arith { dst, a, b, .. } => {
                    !self.val_pending(a) && !self.val_pending(b) && !self.reg_pending(*dst)
                }
                Op::Mov { dst, src } => !self.val_pending(src) && !self.reg_pending(*dst),
                Op::Jump { cond, .. } => cond
                    .as_ref()
                    .is_none_or(|c| !self.val_pending(&c.a) && !self.val_pending(&c.b)),
                _ => false,
            };
            if !go {
                return Ok(Flow::Block);
            }
        }
        match operation {
            Op::Sys { call, args, .. } => {
                if self.has_pending() && self.needs_pending(args) {
                    return Ok(Flow::Block);
                }
                self.check_time(cx, pc)?;
                self.resolve(cx, pc, *call, args)?;
                // Refused before it is issued if it could pass a limit on bytes written.
                let charge = self.limits.charge(pc, *call, args, &self.rargs)?;
                let mut rargs = std::mem::take(&mut self.rargs);
                let at = self.at(pc);
                let mut issued = issuer.issue(at, *call, &mut rargs, &mut self.rec);
                // A blocking call interrupted (the deadline's alarm, or another signal): past
                // the deadline the run stops there; before it the call is made again (not a
                // close, which has closed the descriptor whatever it returned).
                while matches!(issued, Issued::Ready(r) if r == -i64::from(libc::EINTR))
                    && *call != Sys::Close
                {
                    if cx.deadline.passed() {
                        self.limits.settle(charge, -i64::from(libc::EINTR));
                        self.rargs = rargs;
                        return Err(Error::Time {
                            op,
                            limit: cx.limit,
                        });
                    }
                    issued = issuer.issue(at, *call, &mut rargs, &mut self.rec);
                }
                let flow = match issued {
                    Issued::Wait => {
                        // Charged again when it is issued again.
                        self.limits.settle(charge, 0);
                        Ok(Flow::Block)
                    }
                    // Retired in order behind the pending calls.
                    Issued::Ready(r) if self.fallible > 0 => {
                        self.limits.settle(charge, r);
                        if let Some(s) = written(*call, &rargs, r) {
                            dirty.mark(cx.layout, s);
                        }
                        let none = (None, Default::default());
                        self.queued(pc, operation, Ticket(u32::MAX), Some(r), None, none);
                        Ok(Flow::Next(pc + 1))
                    }
                    Issued::Ready(r) => {
                        self.limits.settle(charge, r);
                        if let Some(s) = written(*call, &rargs, r) {
                            dirty.mark(cx.layout, s);
                        }
                        self.complete(cx, issuer, pc, operation, r, &rargs)
                            .map(|()| Flow::Next(pc + 1))
                    }
                    Issued::Pending { ticket, fd } => {
                        let out = out_span(*call, &rargs);
                        self.queued(pc, operation, ticket, None, fd, (out, charge));
                        Ok(Flow::Next(pc + 1))
                    }
                };
                self.rargs = rargs;
                flow
            }
            Op::Arith { dst, op: bop, a, b } => {
                let v = bop
                    .apply(self.val(a), self.val(b))
                    .ok_or(Error::Arith { op })?;
                self.set_logged(*dst, v);
                Ok(Flow::Next(pc + 1))
            }
            Op::Mov { dst, src } => {
                let v = self.val(src);
                self.set_logged(*dst, v);
                Ok(Flow::Next(pc + 1))
            }
            Op::Load {
                dst,
                width,
                buf,
                off,
            } => {
                let span = self.width_span(cx, pc, *buf, off, width.bytes())?;
                let Some(bytes) = issuer.bytes(span) else {
                    return Ok(Flow::Block);
                };
                let mut b = [0u8; 8];
                for (d, s) in b.iter_mut().zip(bytes) {
                    *d = *s;
                }
                self.set(*dst, u64::from_le_bytes(b) as i64);
                Ok(Flow::Next(pc + 1))
            }
            Op::Store {
                width,
                buf,
                off,
                src,
            } => {
                let span = self.width_span(cx, pc, *buf, off, width.bytes())?;
                let bytes = self.val(src).to_le_bytes();
                let Some(mem) = issuer.bytes_mut(span) else {
                    return Ok(Flow::Block);
                };
                for (d, s) in mem.iter_mut().zip(bytes) {
                    *d = s;
                }
                dirty.mark(cx.layout, span);
                Ok(Flow::Next(pc + 1))
            }
            Op::Jump {
                cond,
                target,
                bound,
            } => {
                let t = *target as usize;
                let backward = t <= pc;
                if backward {
                    self.check_time(cx, pc)?;
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
                    return Ok(Flow::Next(pc + 1));
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
                    if self.fallible > 0 {
                        self.undo.push(Undo::Counter(pc, *count));
                    }
                    *count += 1;
                }
                Ok(Flow::Next(t))
            }
            Op::Call { dst, func, args } => {
                let Some(v) = self.call(cx, issuer, dirty, pc, func, args)? else {
                    return Ok(Flow::Block);
                };
                if let Some(d) = dst {
                    self.set(*d, v);
                }
                Ok(Flow::Next(pc + 1))
            }
            Op::MapBegin { source, end } => {
                let end = *end as usize;
                let Some(items) = self.items(cx, issuer, pc, source)? else {
                    return Ok(Flow::Block);
                };
                let items = match maps::concurrent(self, cx, issuer, dirty, pc, end, items)? {
                    maps::Ran::Done => return Ok(Flow::Next(end + 1)),
                    maps::Ran::Again => match self.items(cx, issuer, pc, source)? {
                        Some(items) => items,
                        None => return Ok(Flow::Block),
                    },
                    maps::Ran::No(items) => items,
                };
                self.start_map(cx, issuer, dirty, pc, end, items)
                    .map(Flow::Next)
            }
            Op::MapEnd { .. } => {
                let Some(begin) = self.frames.last().map(|f| f.begin) else {
                    return Err(Error::Setup(format!("op {pc}: map end outside a map")));
                };
                if let Some(info) = cx.plan.map(begin) {
                    self.close_slots(issuer, pc, &info.fd_slots);
                }
                self.next_iteration(cx, issuer, dirty, false)
            }
        }
    }

    /// Starts the map at `begin` (ending at `end`) over `items` in this lane, as its
    /// `MapBegin` does: the first item bound. Returns the next operation (the body's first,
    /// or the one after the map if there are no items).
    pub fn start_map<I: Issuer>(
        &mut self,
        cx: &Cx<'_>,
        issuer: &mut I,
        dirty: &mut Dirty,
        begin: usize,
        end: usize,
        items: Items,
    ) -> Result<usize, Error> {
        let snapshot = match cx.plan.map(begin) {
            Some(info) => info
                .locals
                .iter()
                .map(|r| self.val(&Value::Reg(*r)))
                .collect(),
            None => Vec::new(),
        };
        self.frames.push(Frame {
            begin,
            end,
            items,
            snapshot,
        });
        self.pc = begin;
        match self.next_iteration(cx, issuer, dirty, true)? {
            Flow::Next(n) => Ok(n),
            Flow::Block => Ok(begin),
        }
    }

    pub(super) fn width_span(
        &self,
        cx: &Cx<'_>,
        pc: usize,
        buf: BufId,
        off: &Value,
        w: usize,
    ) -> Result<Span, Error> {
        let o = self.val(off);
        cx.layout
            .resolve(buf, self.lane, o, Some(o.saturating_add(w as i64)))
            .map_err(|e| cx.range_error(pc, buf, e))
    }

    /// Starts the next iteration of the innermost map (`pc` is its begin or end); returns the
    /// next operation: the body's first, or the one after the map.
    pub(super) fn next_iteration<I: Issuer>(
        &mut self,
        cx: &Cx<'_>,
        issuer: &mut I,
        dirty: &mut Dirty,
        first: bool,
    ) -> Result<Flow, Error> {
        let pc = self.pc;
        let Some(frame) = self.frames.last_mut() else {
            return Ok(Flow::Next(pc + 1));
        };
        let (begin, end) = (frame.begin, frame.end);
        let Some(binding) = frame.items.next(&cx.c.data) else {
            self.frames.pop();
            return Ok(Flow::Next(end + 1));
        };
        let info: Option<&MapInfo> = cx.plan.map(begin);
        if !first {
            self.check_time(cx, pc)?;
            if let (Some(info), Some(frame)) = (info, self.frames.last()) {
                for (r, v) in info.locals.iter().zip(&frame.snapshot) {
                    if let Some(x) = self.regs.get_mut(r.index()) {
                        *x = *v;
                    }
                }
            }
        }
        self.bind(binding);
        if let Some(info) = info {
            for &j in &info.jumps {
                if let Some(x) = self.counters.get_mut(j) {
                    *x = 0;
                }
            }
            zero_locals(cx.layout, issuer, dirty, &info.zero_bufs, self.lane);
        }
        Ok(Flow::Next(begin + 1))
    }

    /// Binds one item of a map.
    pub fn bind(&mut self, binding: Binding) {
        match binding {
            Binding::Path(var, bytes) => self.bind_path(var, bytes),
            Binding::Reg(r, v) => self.set(r, v),
            Binding::Dirent(name, bytes, kind, k, ino, i) => {
                self.bind_path(name, bytes);
                self.set(kind, k);
                self.set(ino, i);
            }
        }
    }

    pub(super) fn bind_path(&mut self, var: PathVar, bytes: Vec<u8>) {
        if let Some(p) = self.pathvals.get_mut(var.index()) {
            // Directory entry names end at their NUL; path list items hold none (the plan).
            *p = std::ffi::CString::new(bytes)
                .map_or_else(|_| super::empty_path(), |s| Arc::from(s.as_c_str()));
        }
    }

    /// A map's items; `None`: the bytes of a `dirents` source are still in flight.
    pub(super) fn items<I: Issuer>(
        &self,
        cx: &Cx<'_>,
        issuer: &I,
        pc: usize,
        source: &MapSource,
    ) -> Result<Option<Items>, Error> {
        let mut busy = false;
        let items = Items::new(
            pc,
            source,
            |v| self.val(v),
            |buf| {
                let span = self.range(cx, pc, buf, 0, None)?;
                let Some(bytes) = issuer.bytes(span) else {
                    busy = true;
                    return Ok(Vec::new());
                };
                parse_dirents(bytes).map_err(|detail| Error::Range {
                    op: pc as u32,
                    buffer: buffer_name(cx.c, buf.buf),
                    detail,
                })
            },
        )?;
        Ok((!busy).then_some(items))
    }

    /// Evaluates the operands of a system call into `self.rargs`.
    pub(super) fn resolve(
        &mut self,
        cx: &Cx<'_>,
        pc: usize,
        call: Sys,
        args: &[Arg],
    ) -> Result<(), Error> {
        let mut out = std::mem::take(&mut self.rargs);
        out.items.clear();
        let min = sys::min_buf_len(call);
        let mut result = Ok(());
        for (a, spec) in args.iter().zip(call.spec().args) {
            let r = match (spec.kind, a) {
                (ArgKind::NewFd, _) => Resolved::NewFd(-1),
                (_, Arg::Value(v)) => Resolved::Int(self.val(v)),
                (_, Arg::Fd(f)) => Resolved::Fd(fd_raw(&self.fds, f)),
                (_, Arg::Path(p)) => Resolved::Path(path_cstr(cx, &self.pathvals, p)),
                (_, Arg::Buf(r)) => match self.range(cx, pc, r, min, Some(call)) {
                    Ok(s) => Resolved::Buf(s),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                },
            };
            out.items.push(r);
        }
        self.rargs = out;
        result
    }

    /// Applies a ready call's result: the register or slot of `ret`, the slots of `pipe2`,
    /// the error mode.
    pub(super) fn complete<I: Issuer>(
        &mut self,
        cx: &Cx<'_>,
        issuer: &mut I,
        pc: usize,
        operation: &Op,
        r: i64,
        rargs: &ResolvedArgs,
    ) -> Result<(), Error> {
        let Op::Sys { call, args, ret } = operation else {
            return Ok(());
        };
        let (call, ret) = (*call, *ret);
        let op = pc as u32;
        if call == Sys::Close
            && let Some(Arg::Fd(FdRef::Slot(s))) = args.first()
        {
            // close empties the slot whatever its result.
            self.fds.replace(*s, -1);
        }
        if r < 0 {
            let errno = errno_of(r);
            if cx.stop_mode {
                return Err(Error::Call { op, call, errno });
            }
            self.errors.push(CallError { op, call, errno });
        }
        match ret {
            Ret::Reg(reg) => self.set(reg, r),
            Ret::Fd(s) => self.replace_fd(issuer, pc, s, i32::try_from(r).unwrap_or(-1)),
            Ret::None => {}
        }
        if call == Sys::Pipe2 {
            // The slots of NewFd operands (pipe2 is the only call with any).
            let mut fds = rargs.new_fds();
            for (a, s) in args.iter().zip(call.spec().args) {
                if let (ArgKind::NewFd, Arg::Fd(FdRef::Slot(x))) = (s.kind, a) {
                    let fd = if r < 0 { -1 } else { fds.next().unwrap_or(-1) };
                    self.replace_fd(issuer, pc, *x, fd);
                }
            }
        }
        Ok(())
    }

    /// Calls function `name` with `args`; `None`: a buffer operand is still in flight.
    pub(super) fn call<I: Issuer>(
        &mut self,
        cx: &Cx<'_>,
        issuer: &mut I,
        dirty: &mut Dirty,
        pc: usize,
        name: &str,
        args: &[Arg],
    ) -> Result<Option<i64>, Error> {
        let f = cx.funcs.get(name).ok_or_else(|| Error::Function {
            op: pc as u32,
            func: name.to_string(),
            message: "not registered".into(),
        })?;
        let mut operands = Vec::with_capacity(args.len());
        for a in args {
            operands.push(match a {
                Arg::Buf(r) => Operand::Buf(self.range(cx, pc, r, 0, None)?),
                Arg::Value(v) => Operand::Int(self.val(v)),
                Arg::Fd(fr) => Operand::Int(i64::from(fd_raw(&self.fds, fr))),
                Arg::Path(p) => Operand::Path(path_bytes(cx.c, &self.pathvals, p)),
            });
        }
        if f.is_mut() {
            let out = call::out_index(&f, &operands).and_then(|i| match operands.get(i) {
                Some(Operand::Buf(s)) => Some(*s),
                _ => None,
            });
            let Some(mem) = issuer.whole_mut() else {
                return Ok(None);
            };
            if let Some(s) = out {
                dirty.mark(cx.layout, s);
            }
            return call::call_mut(&f, pc as u32, name, &operands, mem).map(Some);
        }
        let issuer: &I = issuer;
        match call::call_shared(&f, pc as u32, name, &operands, |s| issuer.bytes(s)) {
            Some(r) => r.map(Some),
            None => Ok(None),
        }
    }
}
