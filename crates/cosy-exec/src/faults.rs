//! Injected faults (feature `fault-injection`, off by default): a deterministic schedule that
//! makes calls fail with an errno or return a short count, on the direct and ring issuers, to
//! test that the interpreter and compounds handle what the kernel may answer.
//!
//! The schedule is per thread ([`inject`]; the threads of a map on several threads do not see
//! it). Each call a compound issues through an issuer (not the executor's own closes, nor the
//! policy root's helper calls) is counted once, when the issuer takes it: the `n`th call is
//! the same on every executor. A call scheduled to fail is not made (on the ring: not
//! submitted) and completes with `-errno`; a short call has its length operand (its buffer
//! range, or its `len`/`count` operand) clamped *before* it is issued, so the kernel's file
//! position moves by what was done, as for a real short read or write.
//!
//! Without the feature the hooks are not compiled in.

use std::cell::RefCell;

use cosy_model::{ArgKind, Sys};

use crate::sys::{Resolved, ResolvedArgs};

/// What an injected fault does to a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The call is not made and fails with this errno (positive).
    Errno(i32),
    /// The call is made with its length clamped to at most this many bytes.
    Short(usize),
}

/// Which calls a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// The `n`th call (from 1) since the schedule was set.
    Nth(u64),
    /// The `n`th call (from 1) of `sys`.
    NthOf(Sys, u64),
    /// Every call of `sys`.
    Every(Sys),
    /// The first `n` calls of `sys` (a fault that passes: an `EINTR` or `EAGAIN` the caller
    /// retries).
    FirstOf(Sys, u64),
}

/// A schedule of faults: the first rule that matches a call applies.
#[derive(Clone, Debug, Default)]
pub struct Schedule {
    rules: Vec<(When, Fault)>,
    calls: u64,
    of: std::collections::BTreeMap<Sys, u64>,
    /// Faults applied.
    hits: u64,
}

impl Schedule {
    /// A schedule with no fault.
    pub fn new() -> Self {
        Schedule::default()
    }

    /// Adds a rule.
    pub fn with(mut self, when: When, fault: Fault) -> Self {
        self.rules.push((when, fault));
        self
    }

    /// The fault for the next call, `sys`, without counting it.
    fn peek(&self, sys: Sys) -> Option<Fault> {
        let n = self.calls + 1;
        let k = self.of.get(&sys).copied().unwrap_or(0) + 1;
        self.rules.iter().find_map(|&(w, f)| {
            let hit = match w {
                When::Nth(m) => n == m,
                When::NthOf(s, m) => s == sys && k == m,
                When::Every(s) => s == sys,
                When::FirstOf(s, m) => s == sys && k <= m,
            };
            hit.then_some(f)
        })
    }

    /// Counts a call of `sys` taken by an issuer.
    fn count(&mut self, sys: Sys, hit: bool) {
        self.calls += 1;
        *self.of.entry(sys).or_insert(0) += 1;
        self.hits += u64::from(hit);
    }
}

thread_local! {
    static SCHEDULE: RefCell<Option<Schedule>> = const { RefCell::new(None) };
}

/// The schedule of this thread while it lives; dropping it removes it.
#[derive(Debug)]
pub struct Injecting(());

impl Injecting {
    /// The faults applied so far.
    pub fn hits(&self) -> u64 {
        SCHEDULE.with(|s| s.borrow().as_ref().map_or(0, |s| s.hits))
    }

    /// The calls counted so far.
    pub fn calls(&self) -> u64 {
        SCHEDULE.with(|s| s.borrow().as_ref().map_or(0, |s| s.calls))
    }
}

impl Drop for Injecting {
    fn drop(&mut self) {
        SCHEDULE.with(|s| s.borrow_mut().take());
    }
}

/// Sets this thread's schedule (replacing any) until the guard is dropped.
pub fn inject(schedule: Schedule) -> Injecting {
    SCHEDULE.with(|s| *s.borrow_mut() = Some(schedule));
    Injecting(())
}

/// The fault the next call `sys` would get (not counted: see [`taken`]).
pub(crate) fn peek(sys: Sys) -> Option<Fault> {
    SCHEDULE.with(|s| s.borrow().as_ref().and_then(|s| s.peek(sys)))
}

/// Counts a call of `sys` an issuer has taken (issued, queued or failed), `hit`: with a fault.
pub(crate) fn taken(sys: Sys, hit: bool) {
    SCHEDULE.with(|s| {
        if let Some(s) = s.borrow_mut().as_mut() {
            s.count(sys, hit);
        }
    });
}

/// Clamps the length of `call`'s data to at most `n` bytes: its first buffer range, or else
/// its `len`/`count` operand.
pub(crate) fn clamp(call: Sys, args: &mut ResolvedArgs, n: usize) {
    let specs = call.spec().args;
    if let Some(r) = specs
        .iter()
        .zip(args.items.iter_mut())
        .find(|(a, _)| matches!(a.kind, ArgKind::BufIn | ArgKind::BufOut))
        .map(|(_, r)| r)
    {
        if let Resolved::Buf(s) = r {
            *s = s.prefix(n.min(s.len()));
        }
        return;
    }
    if let Some((_, Resolved::Int(v))) = specs
        .iter()
        .zip(args.items.iter_mut())
        .find(|(a, _)| a.kind == ArgKind::Int && matches!(a.name, "len" | "count"))
    {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        if *v < 0 || *v > n {
            *v = n;
        }
    }
}

/// The hook of the direct issuer, before it issues `call` for operation `op`: the injected
/// result of a call that fails (recorded in `rec`, not made), or `None` with the operands
/// clamped for a short count.
pub(crate) fn before(
    op: u32,
    call: Sys,
    args: &mut ResolvedArgs,
    rec: &mut crate::outcome::Recorder,
) -> Option<i64> {
    match peek(call) {
        Some(Fault::Errno(e)) => {
            taken(call, true);
            let r = -i64::from(e);
            rec.call(op, call, args.first_fd(), r, false);
            Some(r)
        }
        Some(Fault::Short(n)) => {
            clamp(call, args, n);
            taken(call, true);
            None
        }
        None => {
            taken(call, false);
            None
        }
    }
}
