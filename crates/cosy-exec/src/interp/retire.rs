//! Calls that were pending: queued in a lane, then retired in program order after the
//! barrier, with the error mode and the undo of what ran past a call that failed.

use cosy_model::{Arg, FdRef, Op, Ret, Sys};

use super::limits::Charge;
use super::{Cx, Effect, Issuer, Lane, Pend, Ticket, Undo, errno_of, written_of};
use crate::arena::Span;
use crate::outcome::{CallError, Error};

impl Lane {
    /// Waits for what is in flight and retires this lane's pending calls.
    pub fn barrier<I: Issuer>(&mut self, cx: &Cx<'_>, issuer: &mut I) -> Result<(), Error> {
        if !issuer.wait(&mut self.rec, cx.deadline.instant()) {
            let op = self.pending.front().map_or(self.pc as u32, |p| p.op);
            self.discard(issuer);
            return Err(Error::Time {
                op,
                limit: cx.limit,
            });
        }
        self.retire(cx, issuer)
    }

    /// Retires the pending calls in program order (after [`Issuer::wait`]): results into
    /// registers and slots, the error mode. In `stop` mode the first failure is the lane's
    /// error; the calls after it are discarded.
    ///
    /// Only the calls pending at the start are retired: the closes retiring them queues (of a
    /// slot's replaced descriptor) have not been waited for. Taking those now would read them
    /// as cancelled and hand their ring slot to the next open while the close is still queued.
    pub fn retire<I: Issuer>(&mut self, cx: &Cx<'_>, issuer: &mut I) -> Result<(), Error> {
        let mut waited = self.pending.len();
        while waited > 0
            && let Some(p) = self.pending.pop_front()
        {
            waited -= 1;
            let r = self.result_of(issuer, &p);
            if matches!(p.effect, Effect::Internal) {
                continue;
            }
            self.fallible -= 1;
            if r < 0 && cx.stop_mode {
                // The lane is as it was right after this call; what came after never was.
                self.used = p.used;
                while self.undo.len() > p.undo {
                    match self.undo.pop() {
                        Some(Undo::Reg(r, v)) => self.set(r, v),
                        Some(Undo::Counter(j, n)) => {
                            if let Some(x) = self.counters.get_mut(j) {
                                *x = n;
                            }
                        }
                        None => {}
                    }
                }
                self.pc = p.op as usize;
                self.settle(issuer, &p, r, false);
                self.discard_first(issuer, waited);
                return Err(Error::Call {
                    op: p.op,
                    call: p.call,
                    errno: errno_of(r),
                });
            }
            if r < 0 {
                self.errors.push(CallError {
                    op: p.op,
                    call: p.call,
                    errno: errno_of(r),
                });
            }
            self.settle(issuer, &p, r, true);
        }
        self.undo.clear();
        Ok(())
    }

    /// Retires every pending call as discarded (after [`Issuer::wait`]): it ran (or was
    /// cancelled), its result is not part of the run, but the descriptors it opened are the
    /// lane's to close. The closes that queues stay pending, as in [`Lane::retire`].
    pub fn discard<I: Issuer>(&mut self, issuer: &mut I) {
        self.discard_first(issuer, self.pending.len());
    }

    /// Discards the first `n` pending calls.
    fn discard_first<I: Issuer>(&mut self, issuer: &mut I, n: usize) {
        for _ in 0..n {
            let Some(p) = self.pending.pop_front() else {
                return;
            };
            let r = self.result_of(issuer, &p);
            if !matches!(p.effect, Effect::Internal) {
                self.fallible -= 1;
                self.settle(issuer, &p, r, false);
            }
        }
    }

    /// Waits for and discards everything pending, the closes that queues included (the end of
    /// a run or of a map: nothing may stay in flight, no descriptor open).
    pub fn drain<I: Issuer>(&mut self, issuer: &mut I) {
        // Each round retires what the last queued; a close queues nothing, so this ends.
        while self.has_pending() {
            let _ = issuer.wait(&mut self.rec, None);
            self.discard(issuer);
        }
    }

    /// The result of a pending call, counted and traced.
    pub(super) fn result_of<I: Issuer>(&mut self, issuer: &mut I, p: &Pend) -> i64 {
        if let Some(r) = p.ready {
            return r;
        }
        issuer.take(p.ticket, &mut self.rec)
    }

    /// Applies what a retired call did to registers (`keep`: its result is part of the run)
    /// and slots (always: the descriptors are real either way).
    pub(super) fn settle<I: Issuer>(&mut self, issuer: &mut I, p: &Pend, r: i64, keep: bool) {
        let op = p.op as usize;
        self.limits.settle(p.charge, r);
        if let Some(s) = p.out {
            self.marks.push(written_of(p.call, s, r));
        }
        match p.effect {
            Effect::Reg(Some(reg)) if keep => self.set(reg, r),
            Effect::Reg(_) | Effect::Internal => {}
            Effect::Fd {
                slot,
                fd,
                old,
                replaced,
            } => {
                let got = if r >= 0 {
                    i32::try_from(r).unwrap_or(-1)
                } else {
                    -1
                };
                match fd {
                    // A later open took the slot: what this one opened is closed (nothing if
                    // it failed).
                    _ if replaced => self.close_fd(issuer, op, got),
                    // The slot takes the result (empty if the open failed).
                    None => {
                        let stale = self.fds.replace(slot, got);
                        self.close_fd(issuer, op, stale);
                    }
                    // The slot holds the open's descriptor already: emptied if it failed
                    // (unless a later call of the lane put another there).
                    Some(x) if r < 0 && self.fds.get(slot) == x => {
                        self.fds.replace(slot, -1);
                    }
                    Some(_) => {}
                }
                self.close_fd(issuer, op, old);
            }
        }
    }

    /// Records a call the issuer queued, with what it does to the lane at once: a close
    /// empties its slot, an open's slot takes the descriptor known in advance (or waits).
    /// With it: the range of the arena it may write, and its charge against the limits.
    pub(super) fn queued(
        &mut self,
        pc: usize,
        operation: &Op,
        ticket: Ticket,
        ready: Option<i64>,
        fd: Option<i32>,
        (out, charge): (Option<Span>, Charge),
    ) {
        let Op::Sys { call, args, ret } = operation else {
            return;
        };
        let (call, ret) = (*call, *ret);
        if call == Sys::Close
            && let Some(Arg::Fd(FdRef::Slot(s))) = args.first()
        {
            self.fds.replace(*s, -1);
        }
        let effect = match ret {
            Ret::Fd(slot) => {
                let held = self.fds.replace(slot, fd.unwrap_or(-1));
                // The last pending open into the slot, if the slot still holds its result
                // (its descriptor known in advance, or nothing while it is unknown: the calls
                // on the slot wait for it): this open replaces it before it completes, so it
                // closes its own descriptor, and `held` is not one to close now.
                let earlier = self
                    .pending
                    .iter_mut()
                    .rev()
                    .find(|q| matches!(q.effect, Effect::Fd { slot: s, .. } if s == slot));
                let mut old = held;
                if let Some(Pend {
                    effect:
                        Effect::Fd {
                            fd: e, replaced, ..
                        },
                    ..
                }) = earlier
                    && e.unwrap_or(-1) == held
                {
                    *replaced = true;
                    old = -1;
                }
                Effect::Fd {
                    slot,
                    fd,
                    old,
                    replaced: false,
                }
            }
            Ret::Reg(r) => Effect::Reg(Some(r)),
            Ret::None => Effect::Reg(None),
        };
        self.fallible += 1;
        self.pending.push_back(Pend {
            op: pc as u32,
            call,
            ticket,
            ready,
            effect,
            used: self.used + 1,
            undo: self.undo.len(),
            out,
            charge,
        });
    }
}
