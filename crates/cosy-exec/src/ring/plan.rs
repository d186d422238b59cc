//! What the ring executor decides before a run: the route of every call (the ring or a plain
//! system call) and which fd slots hold direct descriptors.

use cosy_model::{Arg, Compound, Confine, CostClass, FdRef, FdSlot, Op, Ret, Sys, UringOp, Value};
use cosy_uring::Probe;
use cosy_uring::io_uring::opcode;

use crate::plan::Plan;
use crate::uring_ops;

/// Where a call goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Queued on the ring.
    Ring,
    /// Issued as a plain system call (in program order, after the thread's queued calls).
    Direct,
}

/// The ring executor's plan of a compound.
#[derive(Clone, Debug, Default)]
pub(crate) struct RingPlan {
    /// Per operation: the route of a system call (`Direct` for other operations).
    pub route: Vec<Route>,
    /// Per fd slot: whether it holds direct descriptors (fixed-file slots of the ring).
    pub fixed: Vec<bool>,
    /// Whether any call goes to the ring.
    pub any_ring: bool,
    /// Whether some map may run its iterations at once with calls on the ring.
    pub any_concurrent: bool,
    /// Direct-descriptor slots opened by the body of the concurrent map that opens most.
    pub fixed_per_iteration: usize,
    /// Direct-descriptor slots in total.
    pub fixed_slots: usize,
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
    if spec.cost == CostClass::Syscall || !spec.uring.is_some_and(super::issuer::builds) {
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

        // Maps whose iterations run at once (the one rule of the plan) with calls on the ring.
        let mut any_concurrent = false;
        let mut fixed_per_iteration = 0;
        for info in plan.maps().filter(|m| m.concurrent) {
            if route[info.begin + 1..info.end].contains(&Route::Ring) {
                any_concurrent = true;
                let per = info
                    .fd_slots
                    .iter()
                    .filter(|s| fixed.get(s.index()).copied().unwrap_or(false))
                    .count();
                fixed_per_iteration = fixed_per_iteration.max(per);
            }
        }

        RingPlan {
            route,
            fixed,
            any_ring,
            any_concurrent,
            fixed_per_iteration,
            fixed_slots,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use cosy_model::flags::{Mode, OFlags};
    use cosy_model::{Builder, Policy};

    fn caps(probe: &Probe) -> Caps<'_> {
        Caps {
            probe: Some(probe),
            registered: true,
            files: true,
            confined: false,
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
        let d = b.openat(FdRef::Cwd, dir, OFlags::empty(), Mode::empty());
        let f = b.openat(d, dir, OFlags::empty(), Mode::empty());
        let total = b.value("total", 0);
        b.do_while(10, |b| {
            let n = b.read(f, buf);
            b.accumulate(total, n);
            n.eq(64)
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
        let v = cosy_verify::verify(b.finish(), &Policy::trusted()).unwrap();
        let c = v.compound();
        let p = Plan::new(&v, &crate::Functions::new()).unwrap();
        let rp = RingPlan::new(c, &p, &caps(&probe), &|_, _| true);
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
        let maps: Vec<bool> = p.maps().map(|m| m.concurrent).collect();
        // Reads of f's position from every iteration: in order.
        assert_eq!(maps, [true, false]);
        assert!(rp.any_concurrent);
        let none = RingPlan::new(c, &p, &caps(&probe), &|_, _| false);
        assert!(!none.any_ring && none.fixed.iter().all(|f| !f));
    }
}
