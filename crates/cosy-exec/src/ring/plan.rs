//! What the ring executor decides before a run: the route of every call (the ring or a plain
//! system call), which fd slots hold direct descriptors, which maps run their iterations
//! concurrently, and which loops it unrolls.

use cosy_model::{
    Arg, BinOp, Compound, Confine, CostClass, Effect, FdRef, FdSlot, Op, Ret, Sys, UringOp, Value,
};
use cosy_uring::Probe;
use cosy_uring::io_uring::opcode;

use crate::plan::Plan;
use crate::ring::machine;
use crate::uring_ops;

/// Where a call goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Queued on the ring.
    Ring,
    /// Issued as a plain system call (in program order, after the thread's queued calls).
    Direct,
}

/// A "read until a short read" loop: `t: n = read(fd, buf); acc += n ...; j: if n == len goto t`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unroll {
    /// The backward jump.
    pub jump: usize,
    /// What `n` is compared with.
    pub len: Value,
    /// Operations per turn of the loop (the read, the accumulations, the jump).
    pub ops_per_turn: u64,
}

/// The ring executor's plan of a compound.
#[derive(Clone, Debug, Default)]
pub(crate) struct RingPlan {
    /// Per operation: the route of a system call (`Direct` for other operations).
    pub route: Vec<Route>,
    /// Per fd slot: whether it holds direct descriptors (fixed-file slots of the ring).
    pub fixed: Vec<bool>,
    /// Per operation: whether the map beginning there may run its iterations concurrently.
    pub concurrent: Vec<bool>,
    /// The read loops, by the index of their read, in order.
    pub unroll: Vec<(usize, Unroll)>,
    /// Whether any call goes to the ring.
    pub any_ring: bool,
    /// Whether some map may run concurrently.
    pub any_concurrent: bool,
    /// Direct-descriptor slots opened by the body of the concurrent map that opens most.
    pub fixed_per_iteration: usize,
    /// Direct-descriptor slots in total.
    pub fixed_slots: usize,
    /// The concurrent maps whose iterations can be issued from a template, by `MapBegin`.
    pub templates: Vec<Template>,
}

/// A concurrent map whose body can run without a thread per iteration: straight-line
/// (arithmetic, `mov`, `load` and ring-routed calls that only read: `nop`, `pread`, `statx`,
/// `fstat`), every call's operands computable from the iteration's variables, constants and
/// registers the body does not write, or arithmetic over those done before the call. Each
/// iteration's calls are issued from the template without running the body; the body then
/// runs over the results in order (docs/ring.md, "Maps issued from a template").
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template {
    /// The `MapBegin`.
    pub begin: usize,
    /// The `MapEnd`.
    pub end: usize,
    /// Per body operation (`begin + 1 + k`): an `Arith` or `Mov` computed before the calls
    /// are issued (an operand of a later call depends on it).
    pub early: Vec<bool>,
    /// The body's calls, by operation index, in order.
    pub calls: Vec<usize>,
    /// Whether a call writes a buffer: each iteration in flight needs its own lane.
    pub lanes: bool,
}

/// What the ring can do, as far as the plan is concerned.
pub(crate) struct Caps<'a> {
    /// The kernel's opcodes (`None`: no ring).
    pub probe: Option<&'a Probe>,
    /// Whether the ring's region is registered (reads use READ_FIXED).
    pub registered: bool,
    /// Whether the ring has a file table for direct descriptors.
    pub files: bool,
    /// Whether paths are confined to a root.
    pub confined: bool,
    /// Whether read loops may be unrolled.
    pub unroll: bool,
}

/// The opcode a call goes to the ring as (`None`: io_uring has none): the row's
/// [`UringOp`], with the registered-buffer forms of reads and writes when the region is
/// registered, and openat as openat2 under a root (it carries the resolve flags).
pub(crate) fn opcode_of(call: Sys, caps: &Caps<'_>) -> Option<u8> {
    let op = call.spec().uring?;
    Some(match op {
        UringOp::OpenAt if caps.confined => opcode::OpenAt2::CODE,
        UringOp::Read if caps.registered => opcode::ReadFixed::CODE,
        UringOp::Write if caps.registered => opcode::WriteFixed::CODE,
        _ => uring_ops::opcode(op),
    })
}

/// Whether the ring can carry `call` at all here: an opcode the kernel knows and the ring
/// executor builds; under a root, only opens can be confined on the ring (the other
/// confinement kinds take the direct confinement path).
pub(crate) fn ring_capable(call: Sys, caps: &Caps<'_>) -> bool {
    let Some(probe) = caps.probe else {
        return false;
    };
    let spec = call.spec();
    let confinable = match spec.confine {
        Confine::NoPath | Confine::Open => true,
        Confine::Object
        | Confine::Parent
        | Confine::TwoParents
        | Confine::Link
        | Confine::Symlink => false,
    };
    if caps.confined && !confinable {
        return false;
    }
    if spec.cost == CostClass::Syscall || !spec.uring.is_some_and(machine::builds) {
        return false;
    }
    // splice always has a pipe (a descriptor of the process) on one side, and io_uring checks
    // the descriptors before the offsets where splice(2) checks the offsets first (EBADF
    // instead of ESPIPE): issued directly.
    if call == Sys::Splice {
        return false;
    }
    opcode_of(call, caps).is_some_and(|code| probe.supports(code))
}

impl RingPlan {
    /// The read loop whose read is operation `pc`.
    pub fn unroll_at(&self, pc: usize) -> Option<&Unroll> {
        if self.unroll.is_empty() {
            return None;
        }
        self.unroll
            .binary_search_by_key(&pc, |(t, _)| *t)
            .ok()
            .and_then(|i| self.unroll.get(i))
            .map(|(_, u)| u)
    }

    /// The template of the map beginning at `pc`.
    pub fn template_at(&self, pc: usize) -> Option<&Template> {
        if self.templates.is_empty() {
            return None;
        }
        self.templates
            .binary_search_by_key(&pc, |t| t.begin)
            .ok()
            .and_then(|i| self.templates.get(i))
    }

    /// The plan of `c` given what the ring can do; `allow(i, call)` may keep operation `i` off
    /// the ring (the auto executor's choice).
    pub fn new(
        c: &Compound,
        plan: &Plan,
        caps: &Caps<'_>,
        allow: &dyn Fn(usize, Sys) -> bool,
    ) -> RingPlan {
        let n = c.ops.len();
        let mut route = vec![Route::Direct; n];
        for (i, op) in c.ops.iter().enumerate() {
            if let Op::Sys { call, .. } = op
                && ring_capable(*call, caps)
                && allow(i, *call)
            {
                route[i] = Route::Ring;
            }
        }
        let any_ring = route.contains(&Route::Ring);

        // Direct descriptors: slots every use of which the ring can serve by slot.
        let mut fixed = vec![caps.files && any_ring; c.fds.len()];
        let mut opened = vec![false; c.fds.len()];
        let not = |s: &FdSlot, fixed: &mut Vec<bool>| {
            if let Some(x) = fixed.get_mut(s.index()) {
                *x = false;
            }
        };
        for (i, op) in c.ops.iter().enumerate() {
            match op {
                Op::Sys { call, args, ret } => {
                    let ring = route[i] == Route::Ring;
                    if let Ret::Fd(s) = ret {
                        if ring {
                            if let Some(o) = opened.get_mut(s.index()) {
                                *o = true;
                            }
                        } else {
                            not(s, &mut fixed);
                        }
                    }
                    // A read of zero bytes is refused by some files (EISDIR) when issued as
                    // a system call, and returns 0 through io_uring: slots read with ranges
                    // that may be empty hold descriptors of the process (such reads are then
                    // issued directly).
                    let maybe_empty = matches!(call, Sys::Read | Sys::Pread)
                        && match args.get(1) {
                            Some(Arg::Buf(r)) => !surely_non_empty(c, r),
                            _ => true,
                        };
                    for (k, a) in args.iter().enumerate() {
                        if let Arg::Fd(FdRef::Slot(s)) = a {
                            let ok = ring && call.spec().may_be_fixed(k) && !maybe_empty;
                            if !ok {
                                not(s, &mut fixed);
                            }
                        }
                    }
                }
                Op::Call { args, .. } => {
                    for a in args {
                        if let Arg::Fd(FdRef::Slot(s)) = a {
                            not(s, &mut fixed);
                        }
                    }
                }
                _ => {}
            }
        }
        for (f, o) in fixed.iter_mut().zip(&opened) {
            *f &= *o;
        }
        let fixed_slots = fixed.iter().filter(|&&f| f).count();

        // Maps whose iterations can run at once: no side effects, no user function, no file
        // position shared between iterations, something for the ring to do.
        let mut concurrent = vec![false; n];
        let mut fixed_per_iteration = 0;
        for info in plan.maps() {
            let body = &c.ops[info.begin + 1..info.end];
            let own = |f: &FdRef| matches!(f, FdRef::Slot(s) if info.fd_slots.contains(s));
            let mut ok = caps.probe.is_some();
            let mut ring_ops = false;
            for (k, op) in body.iter().enumerate() {
                match op {
                    Op::Sys { call, args, .. } => {
                        ring_ops |= route[info.begin + 1 + k] == Route::Ring;
                        if cosy_model::may_write(*call, args) {
                            ok = false;
                        }
                        if call.spec().position
                            && let Some(Arg::Fd(f)) = args.first()
                            && !own(f)
                        {
                            ok = false;
                        }
                    }
                    Op::Call { func, .. } if !cosy_model::BUILTINS.contains(&func.as_str()) => {
                        ok = false;
                    }
                    _ => {}
                }
            }
            if ok && ring_ops {
                concurrent[info.begin] = true;
                let per = info
                    .fd_slots
                    .iter()
                    .filter(|s| fixed.get(s.index()).copied().unwrap_or(false))
                    .count();
                fixed_per_iteration = fixed_per_iteration.max(per);
            }
        }
        let any_concurrent = concurrent.contains(&true);
        let templates = plan
            .maps()
            .filter(|info| concurrent[info.begin])
            .filter_map(|info| template(c, info, &route))
            .collect();

        let mut unroll = Vec::new();
        if caps.unroll {
            for (j, op) in c.ops.iter().enumerate() {
                if let Some((t, u)) = read_loop(c, j, op)
                    && route[t] == Route::Ring
                {
                    unroll.push((t, u));
                }
            }
        }

        RingPlan {
            route,
            fixed,
            concurrent,
            unroll,
            any_ring,
            any_concurrent,
            fixed_per_iteration,
            fixed_slots,
            templates,
        }
    }
}

/// The template of a concurrent map, if its body allows one (see [`Template`]).
fn template(c: &Compound, info: &crate::plan::MapInfo, route: &[Route]) -> Option<Template> {
    let (begin, end) = (info.begin, info.end);
    let body = c.ops.get(begin + 1..end)?;
    // Registers whose value is known before the body runs: those it never writes (constant
    // for the whole map) and the map's own variables (bound per item).
    let mut known = vec![true; c.regs.len()];
    for op in body {
        for r in op.writes() {
            *known.get_mut(r.index())? = false;
        }
    }
    if let Some(op) = c.ops.get(begin) {
        for r in op.writes() {
            *known.get_mut(r.index())? = true;
        }
    }
    let is_known = |known: &[bool], v: &Value| match v {
        Value::Imm(_) => true,
        Value::Reg(r) => known.get(r.index()).copied().unwrap_or(false),
    };
    let mut early = vec![false; body.len()];
    let mut calls = Vec::new();
    let mut lanes = false;
    for (k, op) in body.iter().enumerate() {
        match op {
            Op::Arith { dst, a, b, .. } => {
                let e = is_known(&known, a) && is_known(&known, b);
                early[k] = e;
                *known.get_mut(dst.index())? = e;
            }
            Op::Mov { dst, src } => {
                let e = is_known(&known, src);
                early[k] = e;
                *known.get_mut(dst.index())? = e;
            }
            Op::Load { dst, .. } => *known.get_mut(dst.index())? = false,
            Op::Sys { call, args, ret } => {
                if route.get(begin + 1 + k) != Some(&Route::Ring)
                    || !matches!(call, Sys::Nop | Sys::Pread | Sys::Statx | Sys::Fstat)
                    || call.spec().effect == Effect::Write
                {
                    return None;
                }
                for a in args {
                    match a {
                        Arg::Value(v) if !is_known(&known, v) => return None,
                        Arg::Buf(r) => {
                            lanes = true;
                            if !is_known(&known, &r.start)
                                || r.end.as_ref().is_some_and(|e| !is_known(&known, e))
                            {
                                return None;
                            }
                        }
                        _ => {}
                    }
                }
                match ret {
                    Ret::Reg(r) => *known.get_mut(r.index())? = false,
                    Ret::None => {}
                    Ret::Fd(_) => return None,
                }
                calls.push(begin + 1 + k);
            }
            _ => return None,
        }
    }
    // Only what the calls need is computed before they are issued.
    let last = calls.last().map_or(0, |&i| i - begin - 1);
    for e in early.iter_mut().skip(last) {
        *e = false;
    }
    (!calls.is_empty()).then_some(Template {
        begin,
        end,
        early,
        calls,
        lanes,
    })
}

/// Whether a range surely holds at least one byte (immediate bounds inside a non-empty
/// buffer, or the whole of one).
fn surely_non_empty(c: &Compound, r: &cosy_model::BufRange) -> bool {
    let size = c
        .buffers
        .get(r.buf.index())
        .map_or(0, |b| i64::from(b.size));
    let start = match r.start {
        Value::Imm(s) => s,
        Value::Reg(_) => return false,
    };
    let end = match &r.end {
        None => size,
        Some(Value::Imm(e)) => *e,
        Some(Value::Reg(_)) => return false,
    };
    0 <= start && start < end && end <= size
}

/// The read loop ending with jump `j`, if it is one: `t: n = read(fd, buf)`, then only
/// accumulations `acc = acc + n`, then `if n == len goto t bound N` (or `len == n`).
fn read_loop(c: &Compound, j: usize, op: &Op) -> Option<(usize, Unroll)> {
    let Op::Jump {
        cond: Some(cond),
        target,
        bound: Some(_),
    } = op
    else {
        return None;
    };
    let t = *target as usize;
    if t >= j || cond.op != BinOp::Eq {
        return None;
    }
    let Op::Sys {
        call: Sys::Read,
        args,
        ret: Ret::Reg(n),
    } = c.ops.get(t)?
    else {
        return None;
    };
    let (Some(Arg::Fd(FdRef::Slot(_))), Some(Arg::Buf(range))) = (args.first(), args.get(1)) else {
        return None;
    };
    let mut written = vec![*n];
    for op in c.ops.get(t + 1..j)? {
        match op {
            Op::Arith {
                dst,
                op: BinOp::Add,
                a: Value::Reg(a),
                b: Value::Reg(b),
            } if a == dst && b == n && dst != n => written.push(*dst),
            _ => return None,
        }
    }
    let len = match (&cond.a, &cond.b) {
        (Value::Reg(r), other) | (other, Value::Reg(r)) if r == n => *other,
        _ => return None,
    };
    let reads_written = |v: &Value| matches!(v, Value::Reg(r) if written.contains(r));
    if reads_written(&len)
        || reads_written(&range.start)
        || range.end.as_ref().is_some_and(reads_written)
    {
        return None;
    }
    Some((
        t,
        Unroll {
            jump: j,
            len,
            ops_per_turn: (j - t + 1) as u64,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cosy_model::{Builder, Policy, builder::cond};

    fn caps(probe: &Probe) -> Caps<'_> {
        Caps {
            probe: Some(probe),
            registered: true,
            files: true,
            confined: false,
            unroll: true,
        }
    }

    #[test]
    fn routes_slots_maps_and_loops() {
        let probe = Probe::kernel().clone();
        if !probe.available() {
            eprintln!("skipping: io_uring unavailable");
            return;
        }
        let mut b = Builder::new();
        let dir = b.path("/");
        let buf = b.buffer("buf", 64);
        let lbuf = b.local_buffer("l", 64);
        let d = b.openat(FdRef::Cwd, dir, 0, 0);
        let f = b.openat(d, dir, 0, 0);
        let total = b.value("total", 0);
        b.do_while(10, |b| {
            let n = b.read(f, buf);
            b.accumulate(total, n);
            cond(n, BinOp::Eq, 64)
        });
        b.getdents64(d, buf);
        b.map_range(0, 3, 1, |b, i| {
            b.pread(f, lbuf, i);
        });
        b.map_range(0, 3, 1, |b, _| {
            b.read(f, lbuf);
        });
        b.close(f);
        b.close(d);
        let c = b.finish();
        let p = Plan::new(&c, &Policy::trusted(), &crate::Functions::new()).unwrap();
        let rp = RingPlan::new(&c, &p, &caps(&probe), &|_, _| true);
        assert!(rp.any_ring);
        // d is a directory fd for openat and getdents64: a real descriptor; f is direct.
        assert_eq!(rp.fixed, vec![false, true]);
        let getdents = c
            .ops
            .iter()
            .position(|o| {
                matches!(
                    o,
                    Op::Sys {
                        call: Sys::Getdents64,
                        ..
                    }
                )
            })
            .unwrap();
        assert_eq!(rp.route[getdents], Route::Direct);
        let maps: Vec<usize> = p.maps().map(|m| m.begin).collect();
        assert!(rp.concurrent[maps[0]]);
        // Reads of f's position from every iteration: in order.
        assert!(!rp.concurrent[maps[1]]);
        assert_eq!(rp.unroll.len(), 1);
        let none = RingPlan::new(&c, &p, &caps(&probe), &|_, _| false);
        assert!(!none.any_ring && none.fixed.iter().all(|f| !f));
    }
}
