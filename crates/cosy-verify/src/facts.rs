//! The structure of a verified compound, worked out once during verification and carried by
//! [`Verified`](crate::Verified): the control-flow graph, the map that holds each operation,
//! the facts the iterations of each map need, and which calls may change a file. Executors
//! and the optimizer read these facts instead of deriving them again, so there is one
//! definition of each.
//!
//! The facts are computed from the map shape and the dataflow the checks already ran on (see
//! [`crate::structure`] and [`crate::flow`]), and only for compounds whose maps are well
//! formed; a verified compound always is.

use std::collections::HashSet;

use cosy_model::{Arg, ArgKind, BufId, Compound, FdRef, FdSlot, Op, Reg, Ret, Sys};

use crate::flow::Var;
use crate::refs::accumulator;
use crate::structure::Shape;

/// Facts about one map, computed once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapInfo {
    /// Index of the `MapBegin`.
    pub begin: usize,
    /// Index of the matching `MapEnd`.
    pub end: usize,
    /// Registers written in the body (nested maps included) that are the iteration's own:
    /// restored to their value at the map's start before each iteration.
    pub locals: Vec<Reg>,
    /// Accumulators: registers that may hold a value when the map starts and that the body
    /// writes only as `r = r + x` (`Add` with `a == r`). They add up across iterations.
    pub accumulators: Vec<Reg>,
    /// Fd slots the body opens into (closed at the end of each iteration).
    pub fd_slots: Vec<FdSlot>,
    /// Jumps in the body (their loop counters restart with each iteration).
    pub jumps: Vec<usize>,
    /// Whether the body makes calls with `Effect::Write`.
    pub writes: bool,
    /// Whether the iterations may run at once: the body (nested maps included) changes no
    /// file ([`cosy_model::may_write`]), moves the position only of descriptors the iteration
    /// opened (the operation table's `position` column), closes only those, and calls only
    /// built-in functions (a user function may keep state between calls). The one rule for
    /// every executor.
    pub concurrent: bool,
    /// The local buffers private to each iteration: used in the body (nested maps included)
    /// and used directly by no enclosing map's body (whose copy nested iterations share). Each
    /// iteration starts with them zeroed (docs/semantics.md).
    pub zero_bufs: Vec<BufId>,
}

/// The structure of a verified compound ([`Verified::structure`](crate::Verified::structure)).
///
/// Operations are indexed as in the compound; `ops.len()` is the end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Structure {
    /// Successors of each operation, as a run goes (see [`Structure::successors`]).
    succ: Vec<Vec<usize>>,
    /// The innermost map whose body (`begin+1 ..= end`) holds each operation.
    enclosing: Vec<Option<usize>>,
    /// The maps, in order of their `MapBegin`.
    maps: Vec<MapInfo>,
    /// Per operation: whether it is a system call that may change a file.
    may_write: Vec<bool>,
    /// Per operation: the index of a jump among the jumps.
    jump_index: Vec<Option<u32>>,
    jumps: usize,
}

impl Structure {
    /// The structure of `c`, whose maps have the shape `shape`; `before` holds the
    /// `(MapBegin, var)` pairs where `var` may hold a value when the map starts, for every
    /// register a map body writes ([`crate::maps`] asks the dataflow exactly these).
    pub(crate) fn new(c: &Compound, shape: &Shape, before: &HashSet<(usize, Var)>) -> Self {
        let n = c.ops.len();
        let enclosing: Vec<Option<usize>> = (0..n).map(|i| shape.inner(i)).collect();
        let succ = c
            .ops
            .iter()
            .enumerate()
            .map(|(i, op)| successors(n, i, op))
            .collect();
        let may_write = c
            .ops
            .iter()
            .map(
                |op| matches!(op, Op::Sys { call, args, .. } if cosy_model::may_write(*call, args)),
            )
            .collect();
        let mut jumps = 0usize;
        let jump_index = c
            .ops
            .iter()
            .map(|op| {
                let Op::Jump { .. } = op else { return None };
                jumps += 1;
                // A compound cannot hold 2^32 operations (their indices are u32).
                u32::try_from(jumps - 1).ok()
            })
            .collect();
        let mut maps: Vec<MapInfo> = c
            .ops
            .iter()
            .enumerate()
            .filter_map(|(i, op)| match op {
                Op::MapBegin { end, .. } => {
                    let end = usize::try_from(*end).ok().filter(|&e| e < n)?;
                    let held = |r: Reg| before.contains(&(i, Var::Reg(r.index())));
                    Some(map_info(c, i, end, held))
                }
                _ => None,
            })
            .collect();
        zero_bufs(c, &enclosing, &mut maps);
        Structure {
            succ,
            enclosing,
            maps,
            may_write,
            jump_index,
            jumps,
        }
    }

    /// The operations control can go to from operation `op`, the end (`ops.len()`) included:
    /// the next operation; a jump's target (and, if conditional, the next operation); from a
    /// `MapBegin`, its body and past its `MapEnd` (a map may have no items); from a `MapEnd`,
    /// the body again (the next item) and past the map. Empty for indices past the operations.
    ///
    /// This is the graph of a run. The verifier's dataflow uses another one, in which a
    /// `MapEnd` goes nowhere, since each iteration starts from the state at its `MapBegin`.
    pub fn successors(&self, op: usize) -> &[usize] {
        self.succ.get(op).map_or(&[], Vec::as_slice)
    }

    /// The innermost map whose body (`begin+1 ..= end`: a map's `MapEnd` belongs to its body,
    /// its `MapBegin` to the level around it) holds operation `op`, by the index of its
    /// `MapBegin`.
    pub fn enclosing(&self, op: usize) -> Option<usize> {
        self.enclosing.get(op).copied().flatten()
    }

    /// The facts of the map beginning at `begin`.
    pub fn map(&self, begin: usize) -> Option<&MapInfo> {
        self.maps
            .binary_search_by_key(&begin, |m| m.begin)
            .ok()
            .and_then(|i| self.maps.get(i))
    }

    /// Every map, in order of their `MapBegin`.
    pub fn maps(&self) -> impl Iterator<Item = &MapInfo> {
        self.maps.iter()
    }

    /// Whether operation `op` is a system call that may change a file
    /// ([`cosy_model::may_write`]).
    pub fn may_write(&self, op: usize) -> bool {
        self.may_write.get(op).copied().unwrap_or(false)
    }

    /// The index of jump `op` among the compound's jumps (`None` for other operations).
    pub fn jump_index(&self, op: usize) -> Option<usize> {
        self.jump_index
            .get(op)
            .copied()
            .flatten()
            .map(|j| j as usize)
    }

    /// Number of jumps.
    pub fn jumps(&self) -> usize {
        self.jumps
    }
}

/// The successors of operation `i` of `n` (see [`Structure::successors`]); targets out of
/// range (which a verified compound has none of) are left out.
fn successors(n: usize, i: usize, op: &Op) -> Vec<usize> {
    let index = |x: u32| usize::try_from(x).ok().filter(|&t| t <= n);
    let next = i + 1;
    let mut out = match op {
        Op::Jump { cond, target, .. } => {
            let mut e = Vec::with_capacity(2);
            if cond.is_some() {
                e.push(next);
            }
            e.extend(index(*target));
            e
        }
        Op::MapBegin { end, .. } => {
            let mut e = vec![next];
            e.extend(index(*end).map(|e| e + 1).filter(|&a| a <= n));
            e
        }
        Op::MapEnd { begin } => {
            let mut e: Vec<usize> = index(*begin).map(|b| b + 1).into_iter().collect();
            e.push(next);
            e
        }
        _ => vec![next],
    };
    out.dedup();
    out
}

/// Fills [`MapInfo::zero_bufs`] of every map.
fn zero_bufs(c: &Compound, enclosing: &[Option<usize>], maps: &mut [MapInfo]) {
    let local = |b: &BufId| c.buffers.get(b.index()).is_some_and(|x| x.local);
    // Local buffers each map's body uses directly (not inside a nested map's body).
    let mut direct: Vec<Vec<BufId>> = vec![Vec::new(); c.ops.len()];
    for (i, op) in c.ops.iter().enumerate() {
        if let Some(d) = enclosing
            .get(i)
            .copied()
            .flatten()
            .and_then(|m| direct.get_mut(m))
        {
            d.extend(op.buffers().into_iter().filter(local));
        }
    }
    for info in maps.iter_mut() {
        let mut used: Vec<BufId> = c
            .ops
            .get(info.begin + 1..info.end)
            .unwrap_or(&[])
            .iter()
            .flat_map(Op::buffers)
            .filter(local)
            .collect();
        used.sort();
        used.dedup();
        let mut up = enclosing.get(info.begin).copied().flatten();
        while let Some(a) = up {
            if let Some(d) = direct.get(a) {
                used.retain(|b| !d.contains(b));
            }
            up = enclosing.get(a).copied().flatten();
        }
        info.zero_bufs = used;
    }
}

/// The facts of the map at `begin..=end`, but its `zero_bufs`; `before(r)`: whether `r` may
/// hold a value when the map starts.
fn map_info(c: &Compound, begin: usize, end: usize, before: impl Fn(Reg) -> bool) -> MapInfo {
    let body = c.ops.get(begin + 1..end).unwrap_or(&[]);
    let mut plain: Vec<Reg> = Vec::new();
    let mut acc: Vec<Reg> = Vec::new();
    let mut fd_slots: Vec<FdSlot> = Vec::new();
    let mut jumps = Vec::new();
    let mut writes = false;
    for (k, op) in body.iter().enumerate() {
        let acc_reg = accumulator(op);
        for r in op.writes() {
            if Some(r) == acc_reg && before(r) {
                acc.push(r);
            } else {
                plain.push(r);
            }
        }
        match op {
            Op::Sys { call, args, ret } => {
                if call.spec().effect == cosy_model::Effect::Write {
                    writes = true;
                }
                if let Ret::Fd(s) = ret {
                    fd_slots.push(*s);
                }
                for (a, spec) in args.iter().zip(call.spec().args) {
                    if let (ArgKind::NewFd, Arg::Fd(FdRef::Slot(s))) = (spec.kind, a) {
                        fd_slots.push(*s);
                    }
                }
            }
            Op::Jump { .. } => jumps.push(begin + 1 + k),
            _ => {}
        }
    }
    plain.sort();
    plain.dedup();
    acc.sort();
    acc.dedup();
    acc.retain(|r| !plain.contains(r));
    fd_slots.sort();
    fd_slots.dedup();
    let own = |a: Option<&Arg>| matches!(a, Some(Arg::Fd(FdRef::Slot(s))) if fd_slots.contains(s));
    let concurrent = body.iter().all(|op| match op {
        Op::Sys { call, args, .. } => {
            !cosy_model::may_write(*call, args)
                && !((call.spec().position || *call == Sys::Close) && !own(args.first()))
        }
        Op::Call { func, .. } => cosy_model::BUILTINS.contains(&func.as_str()),
        _ => true,
    });
    MapInfo {
        begin,
        end,
        locals: plain,
        accumulators: acc,
        fd_slots,
        jumps,
        writes,
        concurrent,
        zero_bufs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use cosy_model::flags::{Mode, OFlags};
    use cosy_model::{BinOp, Builder, FdRef, Policy};

    use super::*;

    fn structure(c: Compound) -> Structure {
        let v = crate::verify(c, &Policy::trusted()).expect("a valid compound");
        (**v.structure()).clone()
    }

    #[test]
    fn map_facts() {
        let mut b = Builder::new();
        let total = b.value("total", 0);
        let buf = b.local_buffer("buf", 64);
        b.map_paths(["a", "b"], |b, p| {
            let fd = b.openat(FdRef::Cwd, p, OFlags::empty(), Mode::empty());
            let n = b.read(fd, buf);
            b.accumulate(total, n);
            b.do_while(3, |_| n.eq(1));
            b.close(fd);
        });
        let c = b.finish();
        let n = c.reg("n").expect("declared");
        // `close` returns into a register of its own.
        let rc = c.reg("rc").expect("declared");
        let s = structure(c);
        let m = s.maps().next().expect("one map");
        assert_eq!((m.begin, m.end), (1, 7));
        assert_eq!(m.accumulators, vec![total]);
        assert_eq!(m.locals, vec![n, rc]);
        assert_eq!(m.fd_slots, vec![FdSlot(0)]);
        assert_eq!(m.jumps, vec![5]);
        assert!(!m.writes);
        assert!(m.concurrent, "reads only its own descriptor");
        assert_eq!(m.zero_bufs, vec![buf.id()]);
        assert_eq!(s.map(1), Some(m));
        assert_eq!(s.map(2), None);
        assert_eq!(s.jump_index(5), Some(0));
        assert_eq!(s.jump_index(4), None);
        assert_eq!(s.jumps(), 1);
    }

    #[test]
    fn a_register_written_before_and_in_the_body_is_no_accumulator() {
        // `x = x + 1` in a body where `x` is also reset: the iteration's own.
        let mut b = Builder::new();
        let x = b.value("x", 0);
        b.map_range(0, 3, 1, |b, _| {
            b.set(x, 5);
            b.accumulate(x, 1);
        });
        // Not verifiable as it stands (a body may not overwrite `x`), so the facts are asked
        // of the shape directly: the rule is the executor's, whatever the verifier says.
        let c = b.finish();
        let mut before = HashSet::new();
        before.insert((1, Var::Reg(x.index())));
        let policy = Policy::trusted();
        let mut cx = crate::ctx::Ctx::new(&c, &policy);
        let shape = crate::structure::check(&mut cx).expect("well formed");
        let s = Structure::new(&c, &shape, &before);
        let m = s.map(1).expect("a map");
        assert!(m.accumulators.is_empty());
        assert!(m.locals.contains(&x));
    }

    #[test]
    fn the_structure_of_an_unverified_compound() {
        // Well formed but not verifiable (a register read before it is written): a structure.
        let mut b = Builder::new();
        let x = b.value("x", 0);
        let y = b.value("y", 0);
        let mut c = b.finish();
        c.ops.remove(1);
        c.ops.insert(
            0,
            Op::Arith {
                dst: x,
                op: BinOp::Add,
                a: y.into(),
                b: 1.into(),
            },
        );
        assert!(crate::verify(c.clone(), &Policy::trusted()).is_err());
        let s = Structure::of(&c).expect("well formed");
        assert_eq!(s.successors(0), [1]);

        // A jump out of a map body, a map never ended: none.
        let mut b = Builder::new();
        b.map_range(0, 2, 1, |b, _| {
            b.push(Op::Jump {
                cond: None,
                target: 4,
                bound: None,
            });
        });
        b.nop();
        assert_eq!(Structure::of(&b.finish()), None);
        let mut b = Builder::new();
        b.map_range(0, 2, 1, |b, _| {
            b.nop();
        });
        let mut c = b.finish();
        c.ops.pop();
        assert_eq!(Structure::of(&c), None);
    }

    #[test]
    fn successors_and_enclosing_maps() {
        let mut b = Builder::new();
        let i = b.value("i", 0);
        b.do_while(10, |b| {
            b.accumulate(i, 1);
            i.lt(5)
        });
        b.map_range(0, 2, 1, |b, _| {
            b.getpid();
        });
        let s = structure(b.finish());
        // 0: i = 0, 1: i = i + 1, 2: if i < 5 goto 1, 3: map, 4: getpid, 5: end of map.
        assert_eq!(s.successors(0), [1]);
        assert_eq!(s.successors(2), [3, 1]);
        assert_eq!(s.successors(3), [4, 6]);
        assert_eq!(s.successors(5), [4, 6]);
        assert!(s.successors(6).is_empty());
        assert_eq!(s.enclosing(3), None);
        assert_eq!(s.enclosing(4), Some(3));
        assert_eq!(s.enclosing(5), Some(3));
        assert_eq!(s.enclosing(99), None);
    }

    #[test]
    fn what_may_write_and_what_runs_at_once() {
        let mut b = Builder::new();
        let dir = b.path("d");
        let d = b.openat(FdRef::Cwd, dir, OFlags::DIRECTORY, Mode::empty());
        let buf = b.local_buffer("buf", 64);
        // Reads of a descriptor opened before the map move a shared position.
        b.map_range(0, 2, 1, |b, _| {
            b.getdents64(d, buf);
        });
        // Creating files changes the file system.
        b.map_paths(["a", "b"], |b, p| {
            let f = b.openat(d, p, OFlags::CREATE, Mode::from_raw_mode(0o600));
            b.close(f);
        });
        // A user function may keep state between calls.
        b.map_range(0, 2, 1, |b, _| {
            b.call("mine", ());
        });
        b.map_range(0, 2, 1, |b, _| {
            b.call("checksum", cosy_model::BufRange::from(buf));
        });
        b.close(d);
        let c = b.finish();
        let mut policy = Policy::trusted();
        policy.functions.insert("mine".into());
        let v = crate::verify(c, &policy).expect("a valid compound");
        let s = v.structure();
        let concurrent: Vec<bool> = s.maps().map(|m| m.concurrent).collect();
        assert_eq!(concurrent, [false, false, false, true]);
        let writes: Vec<bool> = s.maps().map(|m| m.writes).collect();
        assert_eq!(writes, [false, false, false, false]);
        let open = s.maps().nth(1).expect("the creating map").begin + 1;
        assert!(s.may_write(open));
        assert!(!s.may_write(0), "a directory open only reads");
    }
}
