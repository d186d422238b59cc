//! The ring issuer: queues a lane's calls on an io_uring as one hard-linked chain, opens into
//! direct descriptors, and submits when the interpreter waits (docs/ring.md).
//!
//! Every call the plan routes to the ring is pushed at once, hard-linked to the lane's
//! previous call (`IOSQE_IO_HARDLINK`: program order, and a failure or a short read cancels
//! nothing); a lane's chain ends when another lane pushes or the interpreter waits. The
//! interpreter's contract ([`Issuer`]) makes that safe in `stop` mode: a call that may change
//! a file waits until its lane has nothing pending, so whatever runs behind a call that fails
//! only reads, and its result is discarded.
//!
//! Calls go the plain way (in program order: only when their lane has nothing pending) when
//! io_uring cannot do the same thing: calls it has no opcode for, calls on descriptors of the
//! process (io_uring reads a pipe at its position where `pread(2)` says `ESPIPE`, waits on an
//! `O_NONBLOCK` pipe where `read(2)` says `EAGAIN`, and drops a closed file with deferred task
//! work), `splice`, and under a policy root the path calls other than opens (the confinement
//! path of `direct`). Opens are confined on the ring itself: `IORING_OP_OPENAT2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`. Some refusals come before any system call
//! (a negative `pread` offset or `ftruncate` length: io_uring would take `-1` as "the file
//! position"): their result is known at once.

use std::time::Instant;

use cosy_model::{ArgKind, Compound, Sys, UringOp};
use cosy_uring::{IoBuf, Link, Op as RingOp, OpenTarget, Ring, Target};

use super::plan::{RingPlan, Route};
use crate::DIRECT_FD_BASE;
use crate::arena::{self, Span};
use crate::confine::{Root, open_how};
use crate::direct::DirectIssuer;
use crate::interp::{At, Issued, Issuer, Ticket};
use crate::outcome::{Recorder, Via};
use crate::sys::{Resolved, ResolvedArgs};

/// A result not come yet.
const NOT_YET: i64 = i64::MIN;

/// What a ticket is: the call the kernel sees (for the statistics and trace), and what it
/// does to the file table when it completes.
#[derive(Clone, Copy, Debug)]
struct Meta {
    op: u32,
    call: Sys,
    /// Its first descriptor operand.
    fd: i32,
    /// An open into this slot of the table.
    opens: Option<u32>,
    /// A close of this slot.
    closes: Option<u32>,
}

/// The ring issuer of one run.
pub(crate) struct RingIssuer<'a> {
    /// The ring (`None`: no io_uring; every call is plain, over `mem`).
    ring: Option<&'a mut Ring>,
    mem: Option<IoBuf>,
    root: Option<Root>,
    plan: &'a RingPlan,
    c: &'a Compound,
    stop_mode: bool,
    window: usize,
    /// Per ticket: the result (`NOT_YET` until it completes), what it does to the table, and
    /// its lane.
    results: Vec<(i64, Meta, usize)>,
    free_tickets: Vec<u32>,
    /// Per lane: calls pushed whose results are not taken.
    outstanding: Vec<usize>,
    /// The lane whose chain is open.
    chain: Option<usize>,
    /// Free slots of the ring's file table.
    free_slots: Vec<u32>,
    /// io_uring_enter calls counted so far.
    enters: u64,
    /// Descriptors of blocking pipes the run made (`pipe2` without `O_NONBLOCK`): read and
    /// written on the ring, where a wait ends at the time limit and `read(2)` would wait
    /// forever.
    pipes: Vec<i32>,
}

impl<'a> RingIssuer<'a> {
    /// An issuer on `ring` (or on `mem` without one) for `c` planned as `plan`, with `window`
    /// lanes and `files` slots of the ring's file table.
    pub fn new(
        ring: Option<&'a mut Ring>,
        mem: Option<IoBuf>,
        root: Option<Root>,
        plan: &'a RingPlan,
        c: &'a Compound,
        window: usize,
    ) -> RingIssuer<'a> {
        let files = ring.as_ref().map_or(0, |r| r.files());
        let enters = ring.as_ref().map_or(0, |r| r.stats().enters);
        RingIssuer {
            ring,
            mem,
            root,
            plan,
            c,
            stop_mode: c.mode == cosy_model::ErrorMode::Stop,
            window: window.max(1),
            results: Vec::new(),
            free_tickets: Vec::new(),
            outstanding: vec![0; window.max(1)],
            chain: None,
            free_slots: (0..files).rev().collect(),
            enters,
            pipes: Vec::new(),
        }
    }

    fn lane_busy(&self, lane: usize) -> bool {
        self.outstanding.get(lane).copied().unwrap_or(0) > 0
    }

    fn ticket(&mut self, meta: Meta, lane: usize) -> Ticket {
        match self.free_tickets.pop() {
            Some(t) => {
                self.results[t as usize] = (NOT_YET, meta, lane);
                Ticket(t)
            }
            None => {
                self.results.push((NOT_YET, meta, lane));
                Ticket((self.results.len() - 1) as u32)
            }
        }
    }

    /// Issues `call` now as a plain system call, if the lane has nothing pending and its
    /// buffers are not in flight.
    fn plain(&mut self, at: At, call: Sys, args: &mut ResolvedArgs, rec: &mut Recorder) -> Issued {
        if self.lane_busy(at.lane) {
            return Issued::Wait;
        }
        // The bytes the call touches, as one view of the arena.
        let spans = args.items.iter().filter_map(|r| match r {
            Resolved::Buf(s) => Some(*s),
            _ => None,
        });
        let (lo, hi) = spans.fold((usize::MAX, 0), |(lo, hi), s| {
            (lo.min(s.offset()), hi.max(s.end()))
        });
        let base = if lo < hi { lo } else { 0 };
        let root = self.root.as_ref();
        let mem: &mut [u8] = match (&mut self.ring, &mut self.mem) {
            _ if lo >= hi => &mut [],
            (Some(ring), _) => match ring.buf_mut(lo..hi) {
                Ok(m) => m,
                Err(_) => return Issued::Wait,
            },
            (None, Some(mem)) => mem.as_mut_slice().get_mut(lo..hi).unwrap_or(&mut []),
            (None, None) => &mut [],
        };
        for r in &mut args.items {
            if let Resolved::Buf(s) = r {
                *s = s.rebased(base);
            }
        }
        rec.fallbacks += 1;
        let r = DirectIssuer::issue_in(root, at.op, call, args, mem, rec);
        // The spans name the arena again (the interpreter records what the call wrote).
        for item in &mut args.items {
            if let Resolved::Buf(s) = item {
                *s = s.moved(base);
            }
        }
        match call {
            Sys::Pipe2 if r >= 0 && int(args, 2) & i64::from(libc::O_NONBLOCK) == 0 => {
                self.pipes.extend(args.new_fds());
            }
            Sys::Close => self.pipes.retain(|&p| p != fd(args, 0)),
            _ => {}
        }
        Issued::Ready(r)
    }

    /// Pushes `op` for lane `lane`, hard-linked behind the lane's previous call.
    fn push(&mut self, lane: usize, op: &RingOp<'_>, meta: Meta) -> Issued {
        let Some(ring) = self.ring.as_deref_mut() else {
            return Issued::Wait;
        };
        if self.chain != Some(lane) {
            ring.close_chain();
        }
        let t = match self.free_tickets.last() {
            Some(&t) => t,
            None => self.results.len() as u32,
        };
        if ring.push(op, u64::from(t), Link::Hard).is_err() {
            // A chain as long as the submission queue: submit what there is first.
            return Issued::Wait;
        }
        self.chain = Some(lane);
        let ticket = self.ticket(meta, lane);
        debug_assert_eq!(ticket.0, t);
        if let Some(n) = self.outstanding.get_mut(lane) {
            *n += 1;
        }
        Issued::Pending {
            ticket,
            fd: meta.opens.map(|k| DIRECT_FD_BASE.saturating_add(k as i32)),
        }
    }

    /// The ring's view of descriptor `fd`: a slot of its table, or none for a descriptor of
    /// the process (which goes the plain way).
    fn slot(fd: i32) -> Option<u32> {
        (fd >= DIRECT_FD_BASE).then(|| (fd - DIRECT_FD_BASE) as u32)
    }
}

/// A ring issuer's state without its borrows (the ring, the plan, the compound), for a
/// caller that owns those and grows the compound between steps ([`crate::session`]).
pub(crate) struct Parked {
    mem: Option<IoBuf>,
    root: Option<Root>,
    stop_mode: bool,
    window: usize,
    results: Vec<(i64, Meta, usize)>,
    free_tickets: Vec<u32>,
    outstanding: Vec<usize>,
    chain: Option<usize>,
    free_slots: Vec<u32>,
    enters: u64,
    pipes: Vec<i32>,
}

impl<'a> RingIssuer<'a> {
    /// The issuer's state, its borrows given back.
    pub(crate) fn park(self) -> Parked {
        Parked {
            mem: self.mem,
            root: self.root,
            stop_mode: self.stop_mode,
            window: self.window,
            results: self.results,
            free_tickets: self.free_tickets,
            outstanding: self.outstanding,
            chain: self.chain,
            free_slots: self.free_slots,
            enters: self.enters,
            pipes: self.pipes,
        }
    }

    /// The issuer of `parked` on `ring` for `c` planned as `plan` (the ring, plan and
    /// compound it was made with, the compound and plan possibly grown since).
    pub(crate) fn unpark(
        parked: Parked,
        ring: Option<&'a mut Ring>,
        plan: &'a RingPlan,
        c: &'a Compound,
    ) -> RingIssuer<'a> {
        RingIssuer {
            ring,
            mem: parked.mem,
            root: parked.root,
            plan,
            c,
            stop_mode: parked.stop_mode,
            window: parked.window,
            results: parked.results,
            free_tickets: parked.free_tickets,
            outstanding: parked.outstanding,
            chain: parked.chain,
            free_slots: parked.free_slots,
            enters: parked.enters,
            pipes: parked.pipes,
        }
    }
}

fn range(s: Span) -> std::ops::Range<usize> {
    s.offset()..s.end()
}

fn int(a: &ResolvedArgs, i: usize) -> i64 {
    a.int(i).unwrap_or(0)
}

fn fd(a: &ResolvedArgs, i: usize) -> i32 {
    a.fd(i).unwrap_or(-1)
}

impl RingIssuer<'_> {
    /// Issues `call`: queued on the ring, or made as a plain call ([`Issuer::issue`]).
    fn issue_now(
        &mut self,
        at: At,
        call: Sys,
        args: &mut ResolvedArgs,
        rec: &mut Recorder,
    ) -> Issued {
        let op = at.op as usize;
        let meta = Meta {
            op: at.op,
            call,
            fd: args.first_fd(),
            opens: None,
            closes: None,
        };
        let on_ring = self.ring.is_some()
            && self.plan.route.get(op) == Some(&Route::Ring)
            && !refused_at_preparation(call, args);
        // A call that may change a file waits for the lane's pending calls in `stop` mode.
        if self.stop_mode && self.lane_busy(at.lane) && changes_files(call, args) {
            return Issued::Wait;
        }
        // Fd operands the ring can serve: its direct descriptors.
        let fixed = call
            .spec()
            .args
            .iter()
            .zip(&args.items)
            .filter(|(s, _)| s.kind == ArgKind::Fd)
            .all(|(_, r)| matches!(r, Resolved::Fd(fd) if Self::slot(*fd).is_some()));
        let lowered: Option<(RingOp<'_>, Meta)> = if !on_ring {
            None
        } else {
            match call {
                Sys::Nop => Some((RingOp::Nop, meta)),
                Sys::Openat | Sys::Openat2 => {
                    let slot = match self.c.ops.get(op) {
                        Some(cosy_model::Op::Sys {
                            ret: cosy_model::Ret::Fd(s),
                            ..
                        }) if self.plan.fixed.get(s.index()).copied().unwrap_or(false) => {
                            self.free_slots.pop()
                        }
                        _ => None,
                    };
                    let into = slot.map_or(OpenTarget::Fd, OpenTarget::Slot);
                    let meta = Meta {
                        opens: slot,
                        call: if self.root.is_some() {
                            Sys::Openat2
                        } else {
                            call
                        },
                        ..meta
                    };
                    let path = args.path(1).map(|p| p.to_bytes()).unwrap_or_default();
                    let op = match &self.root {
                        Some(root) => {
                            let mapped = root.map(fd(args, 0), args.path(1).unwrap_or(c""));
                            let how = open_how(call, args);
                            match (mapped, how) {
                                (Ok((d, p)), Ok((flags, mode, resolve))) => {
                                    // The mapped path is owned or borrowed from `args`; the
                                    // ring copies it when pushed.
                                    let p = p.into_owned();
                                    let pushed = self.push(
                                        at.lane,
                                        &RingOp::Openat2 {
                                            dirfd: d,
                                            path: p.to_bytes(),
                                            flags,
                                            mode,
                                            resolve,
                                            into,
                                        },
                                        meta,
                                    );
                                    return self.unless_refused(pushed, slot);
                                }
                                (Err(e), _) | (_, Err(e)) => {
                                    if let Some(k) = slot {
                                        self.free_slots.push(k);
                                    }
                                    if self.lane_busy(at.lane) {
                                        return Issued::Wait;
                                    }
                                    let r = -i64::from(e.into_raw());
                                    rec.call(at.op, call, fd(args, 0), r, false);
                                    return Issued::Ready(r);
                                }
                            }
                        }
                        None if call == Sys::Openat => RingOp::Openat {
                            dirfd: fd(args, 0),
                            path,
                            flags: int(args, 2) as i32 | libc::O_CLOEXEC,
                            mode: int(args, 3) as u32,
                            into,
                        },
                        None => RingOp::Openat2 {
                            dirfd: fd(args, 0),
                            path,
                            flags: int(args, 2) as u64 | libc::O_CLOEXEC as u64,
                            mode: int(args, 3) as u64,
                            resolve: int(args, 4) as u64,
                            into,
                        },
                    };
                    let pushed = self.push(at.lane, &op, meta);
                    return self.unless_refused(pushed, slot);
                }
                Sys::Close if fixed => {
                    let k = Self::slot(fd(args, 0)).unwrap_or(0);
                    Some((
                        RingOp::Close {
                            fd: Target::Slot(k),
                        },
                        Meta {
                            closes: Some(k),
                            ..meta
                        },
                    ))
                }
                Sys::Read | Sys::Write if self.pipes.contains(&fd(args, 0)) => {
                    let target = Target::Fd(fd(args, 0));
                    let buf = args.buf(1).map(range).unwrap_or(0..0);
                    let op = if call == Sys::Read {
                        RingOp::Read {
                            fd: target,
                            buf,
                            offset: -1,
                        }
                    } else {
                        RingOp::Write {
                            fd: target,
                            buf,
                            offset: -1,
                        }
                    };
                    Some((op, meta))
                }
                Sys::Read | Sys::Pread | Sys::Write | Sys::Pwrite if fixed => {
                    let target = Target::Slot(Self::slot(fd(args, 0)).unwrap_or(0));
                    let buf = args.buf(1).map(range).unwrap_or(0..0);
                    let offset = match call {
                        Sys::Pread | Sys::Pwrite => int(args, 2),
                        _ => -1,
                    };
                    if matches!(call, Sys::Pread | Sys::Pwrite) && offset < 0 {
                        return self.refused(at, call, args, libc::EINVAL, rec);
                    }
                    let op = if matches!(call, Sys::Read | Sys::Pread) {
                        RingOp::Read {
                            fd: target,
                            buf,
                            offset,
                        }
                    } else {
                        RingOp::Write {
                            fd: target,
                            buf,
                            offset,
                        }
                    };
                    Some((op, meta))
                }
                Sys::Fsync | Sys::Fdatasync if fixed => Some((
                    RingOp::Fsync {
                        fd: Target::Slot(Self::slot(fd(args, 0)).unwrap_or(0)),
                        datasync: call == Sys::Fdatasync,
                    },
                    meta,
                )),
                Sys::Ftruncate if fixed => {
                    let len = int(args, 1);
                    if len < 0 {
                        return self.refused(at, call, args, libc::EINVAL, rec);
                    }
                    Some((
                        RingOp::Ftruncate {
                            fd: Target::Slot(Self::slot(fd(args, 0)).unwrap_or(0)),
                            len: len as u64,
                        },
                        meta,
                    ))
                }
                Sys::Statx if self.root.is_none() => Some((
                    RingOp::Statx {
                        dirfd: fd(args, 0),
                        path: args.path(1).map(|p| p.to_bytes()).unwrap_or_default(),
                        flags: int(args, 2) as i32,
                        mask: int(args, 3) as u32,
                        buf: args.buf(4).map(|s| s.offset()).unwrap_or(0),
                    },
                    meta,
                )),
                Sys::Mkdirat if self.root.is_none() => Some((
                    RingOp::Mkdirat {
                        dirfd: fd(args, 0),
                        path: args.path(1).map(|p| p.to_bytes()).unwrap_or_default(),
                        mode: int(args, 2) as u32,
                    },
                    meta,
                )),
                Sys::Unlinkat if self.root.is_none() => Some((
                    RingOp::Unlinkat {
                        dirfd: fd(args, 0),
                        path: args.path(1).map(|p| p.to_bytes()).unwrap_or_default(),
                        flags: int(args, 2) as i32,
                    },
                    meta,
                )),
                Sys::Renameat2 if self.root.is_none() => Some((
                    RingOp::Renameat {
                        olddirfd: fd(args, 0),
                        oldpath: args.path(1).map(|p| p.to_bytes()).unwrap_or_default(),
                        newdirfd: fd(args, 2),
                        newpath: args.path(3).map(|p| p.to_bytes()).unwrap_or_default(),
                        flags: int(args, 4) as u32,
                    },
                    meta,
                )),
                _ => None,
            }
        };
        match lowered {
            // The op borrows `args`' paths; the ring copies them when pushed.
            Some((ring_op, meta)) => self.push(at.lane, &ring_op, meta),
            None if args
                .items
                .iter()
                .any(|r| matches!(r, Resolved::Fd(f) if Self::slot(*f).is_some())) =>
            {
                // A direct descriptor the ring cannot serve this way, as any operand (a
                // directory too): the plan keeps such slots normal descriptors; one reaching
                // here is refused like a closed one, never passed on as a number.
                self.refused(at, call, args, libc::EBADF, rec)
            }
            None => self.plain(at, call, args, rec),
        }
    }
}

impl Issuer for RingIssuer<'_> {
    #[cfg(not(feature = "fault-injection"))]
    #[inline]
    fn issue(&mut self, at: At, call: Sys, args: &mut ResolvedArgs, rec: &mut Recorder) -> Issued {
        self.issue_now(at, call, args, rec)
    }

    /// With injected faults ([`crate::faults`]): a call scheduled to fail is not submitted and
    /// completes with the injected errno (once the lane's earlier calls have, so that its
    /// result comes in order); a short one is queued with its length clamped. A call is
    /// counted when taken, not when answered [`Issued::Wait`] (it is issued again).
    #[cfg(feature = "fault-injection")]
    fn issue(&mut self, at: At, call: Sys, args: &mut ResolvedArgs, rec: &mut Recorder) -> Issued {
        use crate::faults::{self, Fault};
        let fault = faults::peek(call);
        match fault {
            Some(Fault::Errno(e)) => {
                if self.lane_busy(at.lane) {
                    return Issued::Wait;
                }
                faults::taken(call, true);
                let r = -i64::from(e);
                rec.call(at.op, call, args.first_fd(), r, false);
                return Issued::Ready(r);
            }
            Some(Fault::Short(n)) => faults::clamp(call, args, n),
            None => {}
        }
        let issued = self.issue_now(at, call, args, rec);
        if issued != Issued::Wait {
            faults::taken(call, fault.is_some());
        }
        issued
    }

    fn close(&mut self, at: At, fd: i32, rec: &mut Recorder) -> Issued {
        match Self::slot(fd) {
            Some(k) if self.ring.is_some() => {
                let op = RingOp::Close {
                    fd: Target::Slot(k),
                };
                let meta = Meta {
                    op: at.op,
                    call: Sys::Close,
                    fd,
                    opens: None,
                    closes: Some(k),
                };
                match self.push(at.lane, &op, meta) {
                    Issued::Wait => {
                        // The queue is full of the lane's chain: complete it, then close.
                        let mut r = Recorder::default();
                        self.wait(&mut r, None);
                        rec.ring_enters += r.ring_enters;
                        self.close(at, fd, rec)
                    }
                    issued => issued,
                }
            }
            Some(_) => Issued::Ready(-i64::from(libc::EBADF)),
            None => {
                self.pipes.retain(|&p| p != fd);
                let r = crate::sys::to_ret(crate::sys::close(fd));
                rec.call(at.op, Sys::Close, fd, r, true);
                Issued::Ready(r)
            }
        }
    }

    fn wait(&mut self, rec: &mut Recorder, deadline: Option<Instant>) -> bool {
        self.chain = None;
        let Some(ring) = self.ring.as_deref_mut() else {
            return true;
        };
        if ring.outstanding() == 0 {
            return true;
        }
        let finished = match ring.submit_and_wait_until(usize::MAX, deadline) {
            Ok((_, done)) => done,
            Err(_) => false,
        };
        if !finished {
            // Cancel what can be cancelled and wait for everything: nothing may stay in
            // flight over memory the run gives back.
            let _ = ring.push(&RingOp::CancelAll, u64::MAX, Link::None);
            while ring.outstanding() > 0 {
                if ring.submit_and_wait(usize::MAX).is_err() {
                    break;
                }
            }
        }
        let results = &mut self.results;
        ring.drain_completions_with(|c| {
            if let Some(r) = results.get_mut(c.user_data as usize) {
                r.0 = i64::from(c.result);
            }
        });
        let enters = ring.stats().enters;
        rec.ring_enters += enters - self.enters;
        self.enters = enters;
        finished
    }

    fn take(&mut self, ticket: Ticket, rec: &mut Recorder) -> i64 {
        let Some(&(r, meta, lane)) = self.results.get(ticket.0 as usize) else {
            return -i64::from(libc::ECANCELED);
        };
        self.free_tickets.push(ticket.0);
        if let Some(n) = self.outstanding.get_mut(lane) {
            *n = n.saturating_sub(1);
        }
        let r = if r == NOT_YET {
            -i64::from(libc::ECANCELED)
        } else {
            r
        };
        if let Some(k) = meta.closes {
            self.free_slots.push(k);
        }
        let r = match meta.opens {
            Some(k) if r >= 0 => i64::from(DIRECT_FD_BASE.saturating_add(k as i32)),
            Some(k) => {
                self.free_slots.push(k);
                r
            }
            None => r,
        };
        rec.count(meta.call, r, Via::Ring);
        rec.trace(meta.op, meta.call, meta.fd, r);
        r
    }

    fn bytes(&self, span: Span) -> Option<&[u8]> {
        match (&self.ring, &self.mem) {
            (Some(ring), _) => ring.buf(range(span)).ok(),
            (None, Some(mem)) => Some(arena::bytes(mem.as_slice(), span)),
            (None, None) => None,
        }
    }

    fn bytes_mut(&mut self, span: Span) -> Option<&mut [u8]> {
        match (&mut self.ring, &mut self.mem) {
            (Some(ring), _) => ring.buf_mut(range(span)).ok(),
            (None, Some(mem)) => Some(arena::bytes_mut(mem.as_mut_slice(), span)),
            (None, None) => None,
        }
    }

    fn whole_mut(&mut self) -> Option<&mut [u8]> {
        match (&mut self.ring, &mut self.mem) {
            (Some(ring), _) => ring.region_mut().ok(),
            (None, Some(mem)) => Some(mem.as_mut_slice()),
            (None, None) => None,
        }
    }

    fn window(&self) -> usize {
        self.window
    }

    fn worth_window(&self, ops: std::ops::Range<usize>) -> bool {
        self.ring.is_some()
            && self
                .plan
                .route
                .get(ops)
                .is_some_and(|r| r.contains(&Route::Ring))
    }
}

impl RingIssuer<'_> {
    /// A result known before any call: `errno`, recorded as a refusal.
    fn refused(
        &mut self,
        at: At,
        call: Sys,
        args: &ResolvedArgs,
        errno: i32,
        rec: &mut Recorder,
    ) -> Issued {
        let r = -i64::from(errno);
        rec.call(at.op, call, args.first_fd(), r, false);
        Issued::Ready(r)
    }

    /// `pushed`, giving the file-table slot back if the push was refused.
    fn unless_refused(&mut self, pushed: Issued, slot: Option<u32>) -> Issued {
        if pushed == Issued::Wait
            && let Some(k) = slot
        {
            self.free_slots.push(k);
        }
        pushed
    }
}

/// Whether this issuer builds requests of `op` (the others go the plain way).
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
        | UringOp::Ftruncate => true,
        UringOp::Splice
        | UringOp::LinkAt
        | UringOp::SymlinkAt
        | UringOp::FGetXattr
        | UringOp::FSetXattr => false,
    }
}

/// Whether io_uring would refuse `call` with `args` while preparing it — which fails every
/// request linked with it, the earlier ones too: such calls go the plain way. Preparation
/// copies the paths (an empty one is `ENOENT`, one of `PATH_MAX` bytes or more
/// `ENAMETOOLONG`) and checks `unlinkat`'s flags.
fn refused_at_preparation(call: Sys, args: &ResolvedArgs) -> bool {
    let bad_path = args.items.iter().any(|r| match r {
        Resolved::Path(p) => p.is_empty() || p.count_bytes() >= libc::PATH_MAX as usize,
        _ => false,
    });
    let empty_ok = call == Sys::Statx && int(args, 2) & i64::from(libc::AT_EMPTY_PATH) != 0;
    (bad_path && !empty_ok)
        || (call == Sys::Unlinkat && int(args, 2) & !i64::from(libc::AT_REMOVEDIR) != 0)
}

/// Whether `call` with resolved operands may change a file (the table's rule, on the values).
fn changes_files(call: Sys, args: &ResolvedArgs) -> bool {
    call.spec().may_write_with(|i| args.int(i).ok())
}
