//! The analyses and the rewriting machinery the passes share: the control-flow graph
//! (successors and enclosing maps, from the verifier's [`cosy_verify::Structure`], with
//! predecessors, basic blocks and dominators),
//! which registers are read, fresh declarations, and [`Edits`], which rebuilds the operation
//! list after insertions, replacements and removals with jump targets, map indices and
//! origins kept right.
//!
//! Every analysis is defensive: [`Cfg::new`] refuses a compound whose jumps or maps are out of
//! range or badly nested (and the optimizer then leaves it as it is), and lookups of
//! registers, buffers and data go through `get`, never indexing.

use std::collections::{BTreeMap, BTreeSet};

use cosy_model::{
    Arg, ArgKind, BufId, Compound, Cond, DataId, FdRef, FdSlot, InputKind, MapSource, Op, Reg, Ret,
    Sys, Value,
};

/// The compound being optimized, with the origin of each operation (the index of the
/// operation of the original compound it comes from).
#[derive(Clone, Debug)]
pub(crate) struct Program {
    /// The compound.
    pub c: Compound,
    /// `origin[i]`: the original index of operation `i`.
    pub origin: Vec<u32>,
}

impl Program {
    /// The compound as it is, each operation its own origin.
    pub fn new(c: &Compound) -> Self {
        Program {
            c: c.clone(),
            origin: (0..c.ops.len()).map(|i| i as u32).collect(),
        }
    }
}

/// The control-flow graph at the level of operations. Node `n` (`ops.len()`) is the exit.
#[derive(Clone, Debug)]
pub(crate) struct Cfg {
    /// Number of operations.
    pub n: usize,
    /// Successors of each operation (the exit has none).
    pub succ: Vec<Vec<usize>>,
    /// Predecessors of each operation and of the exit.
    pub pred: Vec<Vec<usize>>,
    /// The innermost map whose body holds the operation (its `MapBegin` index); a map's
    /// `MapEnd` belongs to its body, its `MapBegin` to the enclosing level.
    pub map_of: Vec<Option<usize>>,
    /// Basic block of each operation (numbered in order).
    pub block_of: Vec<usize>,
    /// The verifier's structure of the compound (the facts of its maps).
    pub structure: cosy_verify::Structure,
}

impl Cfg {
    /// The graph of `c`, or `None` when `c` is not well formed: a jump target past the end, a
    /// `MapBegin`/`MapEnd` pair whose indices do not match or are not nested (or nested too
    /// deep), or a jump into or out of a map body. The edges and map nesting are the
    /// verifier's ([`cosy_verify::Structure`]); blocks and predecessors are worked out here.
    pub fn new(c: &Compound) -> Option<Cfg> {
        let s = cosy_verify::Structure::of(c)?;
        let n = c.ops.len();
        let succ: Vec<Vec<usize>> = (0..n).map(|t| s.successors(t).to_vec()).collect();
        let map_of: Vec<Option<usize>> = (0..n).map(|t| s.enclosing(t)).collect();
        let mut pred = vec![Vec::new(); n + 1];
        for (t, out) in succ.iter().enumerate() {
            for &u in out {
                if !pred[u].contains(&t) {
                    pred[u].push(t);
                }
            }
        }
        // Basic blocks: a new block where the previous operation does not simply fall through
        // or where the operation is entered from elsewhere.
        let mut block_of = vec![0; n];
        let mut block = 0;
        for t in 0..n {
            if t > 0 {
                let falls = succ[t - 1] == [t];
                let single = pred[t] == [t - 1];
                if !(falls && single) {
                    block += 1;
                }
            }
            block_of[t] = block;
        }
        Some(Cfg {
            n,
            succ,
            pred,
            map_of,
            block_of,
            structure: s,
        })
    }

    /// Whether operations `a` and `b` are in the same basic block.
    pub fn same_block(&self, a: usize, b: usize) -> bool {
        a < self.n && b < self.n && self.block_of[a] == self.block_of[b]
    }

    /// Whether operation `t` can run again after it ran (it lies on a cycle).
    pub fn in_cycle(&self, t: usize) -> bool {
        if t >= self.n {
            return false;
        }
        let mut seen = vec![false; self.n + 1];
        let mut work: Vec<usize> = self.succ[t].clone();
        while let Some(u) = work.pop() {
            if u == t {
                return true;
            }
            if u >= self.n || seen[u] {
                continue;
            }
            seen[u] = true;
            work.extend(self.succ[u].iter().copied());
        }
        false
    }

    /// The immediate dominator of every node reachable from operation 0 (`None` for the
    /// entry and for unreachable nodes), by the iterative algorithm of Cooper, Harvey and
    /// Kennedy.
    pub fn dominators(&self) -> Vec<Option<usize>> {
        let total = self.n + 1;
        // Reverse postorder from the entry.
        let mut order = Vec::new();
        let mut seen = vec![false; total];
        let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
        seen[0] = true;
        while let Some((u, i)) = stack.pop() {
            let succ: &[usize] = if u < self.n { &self.succ[u] } else { &[] };
            if let Some(&v) = succ.get(i) {
                stack.push((u, i + 1));
                if !seen[v] {
                    seen[v] = true;
                    stack.push((v, 0));
                }
            } else {
                order.push(u);
            }
        }
        order.reverse();
        let mut rpo = vec![usize::MAX; total];
        for (i, &u) in order.iter().enumerate() {
            rpo[u] = i;
        }
        let mut idom: Vec<Option<usize>> = vec![None; total];
        idom[0] = Some(0);
        let intersect = |idom: &[Option<usize>], mut a: usize, mut b: usize| -> usize {
            while a != b {
                while rpo[a] > rpo[b] {
                    a = idom[a].unwrap_or(0);
                }
                while rpo[b] > rpo[a] {
                    b = idom[b].unwrap_or(0);
                }
            }
            a
        };
        let mut changed = true;
        while changed {
            changed = false;
            for &u in order.iter().skip(1) {
                let mut new: Option<usize> = None;
                for &p in &self.pred[u] {
                    if idom[p].is_none() {
                        continue;
                    }
                    new = Some(match new {
                        None => p,
                        Some(x) => intersect(&idom, p, x),
                    });
                }
                if new.is_some() && idom[u] != new {
                    idom[u] = new;
                    changed = true;
                }
            }
        }
        idom[0] = None;
        idom
    }

    /// Whether `a` dominates `b` (every path from the entry to `b` passes `a`), given the
    /// result of [`Cfg::dominators`]. An unreachable `b` is dominated by everything.
    pub fn dominates(idom: &[Option<usize>], a: usize, b: usize) -> bool {
        if b >= idom.len() {
            return false;
        }
        if b != 0 && idom[b].is_none() {
            return true;
        }
        let mut x = b;
        for _ in 0..idom.len() {
            if x == a {
                return true;
            }
            match idom[x] {
                Some(p) if p != x => x = p,
                _ => return false,
            }
        }
        false
    }
}

/// How many times each register is read: by operations (each reading operation once) and by
/// outputs.
pub(crate) fn read_counts(c: &Compound) -> BTreeMap<Reg, usize> {
    let mut counts = BTreeMap::new();
    for op in &c.ops {
        let reads: BTreeSet<Reg> = op.reads().into_iter().collect();
        for r in reads {
            *counts.entry(r).or_insert(0) += 1;
        }
    }
    for o in &c.outputs {
        *counts.entry(o.reg).or_insert(0) += 1;
    }
    counts
}

/// Whether register `r` is read by an operation whose index is not in `skip`, or by an output.
pub(crate) fn read_outside(c: &Compound, r: Reg, skip: std::ops::Range<usize>) -> bool {
    c.outputs.iter().any(|o| o.reg == r)
        || c.ops
            .iter()
            .enumerate()
            .any(|(t, op)| !skip.contains(&t) && op.reads().contains(&r))
}

/// The data constants that hold path inputs (their value can change before a run).
pub(crate) fn input_data(c: &Compound) -> BTreeSet<DataId> {
    c.inputs
        .iter()
        .filter_map(|i| match i.kind {
            InputKind::Path(d) => Some(d),
            InputKind::Int { .. } => None,
        })
        .collect()
}

fn fresh_name(names: &[String], base: &str) -> String {
    if !names.iter().any(|n| n == base) {
        return base.to_string();
    }
    (1..)
        .map(|i| format!("{base}_{i}"))
        .find(|n| !names.iter().any(|m| m == n))
        .unwrap_or_else(|| base.to_string())
}

/// A new register named after `base` (`None` when the table is full).
pub(crate) fn fresh_reg(c: &mut Compound, base: &str) -> Option<Reg> {
    let i = u16::try_from(c.regs.len()).ok().filter(|&i| i < u16::MAX)?;
    let name = fresh_name(&c.regs, base);
    c.regs.push(name);
    Some(Reg(i))
}

/// A new fd slot named after `base` (`None` when the table is full).
pub(crate) fn fresh_slot(c: &mut Compound, base: &str) -> Option<FdSlot> {
    let i = u16::try_from(c.fds.len()).ok().filter(|&i| i < u16::MAX)?;
    let name = fresh_name(&c.fds, base);
    c.fds.push(name);
    Some(FdSlot(i))
}

/// A data constant holding `bytes`: an equal constant that is not an input, or a new one.
pub(crate) fn data_const(c: &mut Compound, bytes: &[u8]) -> Option<DataId> {
    let inputs = input_data(c);
    if let Some(i) = c
        .data
        .iter()
        .enumerate()
        .position(|(i, d)| d == bytes && !inputs.contains(&DataId(i as u16)))
    {
        return u16::try_from(i).ok().map(DataId);
    }
    let i = u16::try_from(c.data.len()).ok().filter(|&i| i < u16::MAX)?;
    c.data.push(bytes.to_vec());
    Some(DataId(i))
}

/// The size of a buffer, if it exists.
pub(crate) fn buffer_size(c: &Compound, b: BufId) -> Option<u32> {
    c.buffers.get(b.index()).map(|b| b.size)
}

/// The fd slot an operand names, if it is a slot.
pub(crate) fn slot_of(a: Option<&Arg>) -> Option<FdSlot> {
    match a {
        Some(Arg::Fd(FdRef::Slot(s))) => Some(*s),
        _ => None,
    }
}

/// The immediate an operand holds, if it is one.
pub(crate) fn imm_of(a: Option<&Arg>) -> Option<i64> {
    match a {
        Some(Arg::Value(Value::Imm(v))) => Some(*v),
        _ => None,
    }
}

/// Whether an operation mentions fd slot `s` (as an operand, a new pipe end or its result).
pub(crate) fn mentions_slot(op: &Op, s: FdSlot) -> bool {
    match op {
        Op::Sys { args, ret, .. } => {
            *ret == Ret::Fd(s)
                || args
                    .iter()
                    .any(|a| matches!(a, Arg::Fd(FdRef::Slot(x)) if *x == s))
        }
        _ => false,
    }
}

/// Whether an operation can stop the run without being a system call: a division or
/// remainder by a register or by zero, a load, a store or a call (ranges, functions), or a
/// map (a `range` map's step).
pub(crate) fn may_trap(c: &Compound, op: &Op) -> bool {
    match op {
        Op::Arith { op, b, .. } => {
            matches!(op, cosy_model::BinOp::Div | cosy_model::BinOp::Rem)
                && !matches!(b, Value::Imm(v) if *v != 0)
        }
        Op::Mov { .. } | Op::Jump { .. } => false,
        Op::Load {
            width, buf, off, ..
        } => match (off, buffer_size(c, *buf)) {
            (Value::Imm(o), Some(size)) => {
                !(*o >= 0 && (*o as u64).saturating_add(width.bytes() as u64) <= u64::from(size))
            }
            _ => true,
        },
        _ => true,
    }
}

/// How an fd slot is filled.
#[derive(Clone, Debug, Default)]
pub(crate) struct SlotInfo {
    /// Whether something other than `openat`/`openat2` fills it (a pipe).
    pub other: bool,
    /// The operands of every open into it.
    pub opens: Vec<Vec<Arg>>,
}

impl SlotInfo {
    /// Whether the slot only ever holds files opened by `openat`/`openat2`, each with
    /// immediate flags that `accept`s.
    pub fn opened_with(&self, accept: impl Fn(i64) -> bool) -> bool {
        !self.other
            && !self.opens.is_empty()
            && self
                .opens
                .iter()
                .all(|o| matches!(o.get(2), Some(Arg::Value(Value::Imm(f))) if accept(*f)))
    }
}

/// How every fd slot the compound fills is filled.
pub(crate) fn slot_infos(c: &Compound) -> BTreeMap<FdSlot, SlotInfo> {
    let mut m: BTreeMap<FdSlot, SlotInfo> = BTreeMap::new();
    for op in &c.ops {
        if let Op::Sys { call, args, ret } = op {
            if let Ret::Fd(s) = ret {
                let e = m.entry(*s).or_default();
                if matches!(call, Sys::Openat | Sys::Openat2) {
                    e.opens.push(args.clone());
                } else {
                    e.other = true;
                }
            }
            for (a, spec) in args.iter().zip(call.spec().args) {
                if let (ArgKind::NewFd, Some(s)) = (spec.kind, slot_of(Some(a))) {
                    m.entry(s).or_default().other = true;
                }
            }
        }
    }
    m
}

/// The access mode of open flags is one of `modes` and `O_PATH` is not set.
pub(crate) fn access_mode_in(flags: i64, modes: &[libc::c_int]) -> bool {
    let mode = (flags & i64::from(libc::O_ACCMODE)) as libc::c_int;
    flags & i64::from(libc::O_PATH) == 0 && modes.contains(&mode)
}

/// For each operation, the fd slots certainly holding a descriptor when it starts, in mode
/// `stop` (where an open that returns has succeeded): opened on every path to it and not
/// closed since. Slots a map body opens are closed at the end of each iteration. `None` for
/// operations that cannot be reached.
pub(crate) fn must_open(c: &Compound, g: &Cfg) -> Vec<Option<BTreeSet<FdSlot>>> {
    let mut state: Vec<Option<BTreeSet<FdSlot>>> = vec![None; g.n + 1];
    if g.n == 0 {
        return state;
    }
    state[0] = Some(BTreeSet::new());
    let mut work = vec![0usize];
    while let Some(t) = work.pop() {
        if t >= g.n {
            continue;
        }
        let Some(mut out) = state[t].clone() else {
            continue;
        };
        match &c.ops[t] {
            Op::Sys { call, args, ret } => {
                if *call == Sys::Close
                    && let Some(s) = slot_of(args.first())
                {
                    out.remove(&s);
                }
                if let Ret::Fd(s) = ret {
                    out.insert(*s);
                }
                for (a, spec) in args.iter().zip(call.spec().args) {
                    if let (ArgKind::NewFd, Some(s)) = (spec.kind, slot_of(Some(a))) {
                        out.insert(s);
                    }
                }
            }
            Op::MapEnd { begin } => {
                // The slots its body opens are closed at the end of each iteration.
                if let Some(m) = g.structure.map(*begin as usize) {
                    out.retain(|s| !m.fd_slots.contains(s));
                }
            }
            _ => {}
        }
        for &u in &g.succ[t] {
            let new = match &state[u] {
                None => out.clone(),
                Some(old) => old.intersection(&out).copied().collect(),
            };
            if state[u].as_ref() != Some(&new) {
                state[u] = Some(new);
                work.push(u);
            }
        }
    }
    state
}

/// `op` with every read of register `from` replaced by a read of `to` (writes unchanged).
pub(crate) fn rename_reads(op: &Op, from: Reg, to: Reg) -> Op {
    let v = |x: &mut Value| {
        if *x == Value::Reg(from) {
            *x = Value::Reg(to);
        }
    };
    let range = |r: &mut cosy_model::BufRange| {
        v(&mut r.start);
        if let Some(e) = &mut r.end {
            v(e);
        }
    };
    let args = |args: &mut Vec<Arg>| {
        for a in args {
            match a {
                Arg::Value(x) => v(x),
                Arg::Buf(r) => range(r),
                Arg::Fd(_) | Arg::Path(_) => {}
            }
        }
    };
    let mut op = op.clone();
    match &mut op {
        Op::Sys { args: a, .. } | Op::Call { args: a, .. } => args(a),
        Op::Arith { a, b, .. } => {
            v(a);
            v(b);
        }
        Op::Mov { src, .. } => v(src),
        Op::Load { off, .. } => v(off),
        Op::Store { off, src, .. } => {
            v(off);
            v(src);
        }
        Op::Jump { cond, .. } => {
            if let Some(c) = cond {
                v(&mut c.a);
                v(&mut c.b);
            }
        }
        Op::MapBegin { source, .. } => match source {
            MapSource::Range {
                start, end, step, ..
            } => {
                v(start);
                v(end);
                v(step);
            }
            MapSource::Dirents { buf, .. } => range(buf),
            MapSource::Paths { .. } | MapSource::Offsets { .. } => {}
        },
        Op::MapEnd { .. } => {}
    }
    op
}

/// One operation of a rebuilt list: the operation, its origin, and for a jump, where it goes
/// as (original index, offset in that index's group): see [`Edits`].
#[derive(Clone, Debug)]
pub(crate) struct NewOp {
    /// The operation (a jump's `target` is filled in by [`Edits::apply`] when `target` is set;
    /// `MapBegin`/`MapEnd` indices are always recomputed).
    pub op: Op,
    /// The original operation it comes from.
    pub origin: u32,
    /// For a jump: `(t, k)`, the `k`-th operation of the group that replaces original
    /// operation `t` (`t` may be `ops.len()`: the end). `None`: the op's target is kept.
    pub target: Option<(usize, usize)>,
}

impl NewOp {
    /// A non-jump operation.
    pub fn plain(op: Op, origin: u32) -> Self {
        NewOp {
            op,
            origin,
            target: None,
        }
    }

    /// A jump to the `k`-th operation of the group of original operation `t`.
    pub fn jump(cond: Option<Cond>, bound: Option<u32>, to: (usize, usize), origin: u32) -> Self {
        NewOp {
            op: Op::Jump {
                cond,
                target: 0,
                bound,
            },
            origin,
            target: Some(to),
        }
    }
}

/// An edit script over a program: each original operation `t` is replaced by a group of
/// operations (initially the operation itself). A jump that targeted `t` then targets the
/// start of `t`'s group — the first operation after it when the group is empty, which is
/// right for removed operations that fall through.
#[derive(Clone, Debug)]
pub(crate) struct Edits {
    groups: Vec<Vec<NewOp>>,
}

impl Edits {
    /// The identity script.
    pub fn new(p: &Program) -> Self {
        Edits {
            groups: (0..p.c.ops.len())
                .map(|t| vec![Self::original(p, t)])
                .collect(),
        }
    }

    /// Original operation `t` as it is (a jump keeps going to its original target).
    pub fn original(p: &Program, t: usize) -> NewOp {
        let op = p.c.ops[t].clone();
        let target = match &op {
            Op::Jump { target, .. } => Some((*target as usize, 0)),
            _ => None,
        };
        NewOp {
            op,
            origin: p.origin.get(t).copied().unwrap_or(t as u32),
            target,
        }
    }

    /// Replaces operation `t` (and anything inserted there) by `ops`.
    pub fn replace(&mut self, t: usize, ops: Vec<NewOp>) {
        self.groups[t] = ops;
    }

    /// Removes operation `t`.
    pub fn remove(&mut self, t: usize) {
        self.groups[t].clear();
    }

    /// Inserts `ops` before operation `t` (jumps to `t` then reach them first).
    pub fn insert_before(&mut self, t: usize, ops: Vec<NewOp>) {
        self.groups[t].splice(0..0, ops);
    }

    /// Rebuilds the program. Returns `false`, leaving the program as it was, if the result
    /// would not be well formed (a bug in a pass; never expected).
    pub fn apply(self, p: &mut Program) -> bool {
        let n = self.groups.len();
        let mut start = Vec::with_capacity(n + 1);
        let mut total = 0usize;
        for g in &self.groups {
            start.push(total);
            total += g.len();
        }
        start.push(total);
        let mut ops = Vec::with_capacity(total);
        let mut origin = Vec::with_capacity(total);
        for g in self.groups {
            for mut new in g {
                if let (Op::Jump { target, .. }, Some((t, k))) = (&mut new.op, new.target) {
                    let Some(s) = start.get(t) else { return false };
                    let Ok(x) = u32::try_from(s + k) else {
                        return false;
                    };
                    *target = x;
                }
                ops.push(new.op);
                origin.push(new.origin);
            }
        }
        if !renest(&mut ops) {
            return false;
        }
        let mut c = p.c.clone();
        c.ops = ops;
        if Cfg::new(&c).is_none() {
            return false;
        }
        p.c = c;
        p.origin = origin;
        true
    }
}

/// Recomputes the `end` of every `MapBegin` and the `begin` of every `MapEnd` by nesting.
fn renest(ops: &mut [Op]) -> bool {
    let mut stack = Vec::new();
    for t in 0..ops.len() {
        match &ops[t] {
            Op::MapBegin { .. } => stack.push(t),
            Op::MapEnd { .. } => {
                let Some(b) = stack.pop() else { return false };
                if let Op::MapBegin { end, .. } = &mut ops[b] {
                    *end = t as u32;
                }
                if let Op::MapEnd { begin } = &mut ops[t] {
                    *begin = b as u32;
                }
            }
            _ => {}
        }
    }
    stack.is_empty()
}

/// The path variable a `paths` map binds, with its list.
pub(crate) fn paths_map(op: &Op) -> Option<(&[DataId], cosy_model::PathVar)> {
    match op {
        Op::MapBegin {
            source: MapSource::Paths { list, var },
            ..
        } => Some((list, *var)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cosy_model::Builder;

    fn looped() -> Compound {
        let mut b = Builder::new();
        let i = b.value("i", 0);
        b.do_while(10, |b| {
            b.getpid();
            b.accumulate(i, 1);
            i.lt(5)
        });
        b.nop();
        b.finish()
    }

    #[test]
    fn cfg_of_a_loop() {
        let c = looped();
        let g = Cfg::new(&c).expect("well formed");
        assert_eq!(g.succ[3], vec![4, 1]);
        assert_eq!(g.pred[1], vec![0, 3]);
        assert!(g.in_cycle(2));
        assert!(!g.in_cycle(0));
        assert!(!g.in_cycle(4));
        assert!(g.same_block(1, 3));
        assert!(!g.same_block(0, 1));
        let idom = g.dominators();
        assert!(Cfg::dominates(&idom, 1, 4));
        assert!(Cfg::dominates(&idom, 0, 5));
        assert!(!Cfg::dominates(&idom, 4, 2));
    }

    #[test]
    fn malformed_compounds_have_no_cfg() {
        let mut c = looped();
        c.ops.push(Op::Jump {
            cond: None,
            target: 99,
            bound: None,
        });
        assert!(Cfg::new(&c).is_none());
        let mut c = looped();
        c.ops.push(Op::MapEnd { begin: 0 });
        assert!(Cfg::new(&c).is_none());
    }

    #[test]
    fn edits_remap_targets_and_origins() {
        let p0 = Program::new(&looped());
        let mut p = p0.clone();
        let mut e = Edits::new(&p);
        e.remove(0);
        e.insert_before(
            2,
            vec![NewOp::plain(
                Op::Mov {
                    dst: Reg(0),
                    src: Value::Imm(7),
                },
                2,
            )],
        );
        assert!(e.apply(&mut p));
        assert_eq!(p.origin, vec![1, 2, 2, 3, 4]);
        match &p.c.ops[3] {
            Op::Jump { target, .. } => assert_eq!(*target, 0),
            other => panic!("{other:?}"),
        }
    }
}

/// Helpers for the passes' tests.
#[cfg(test)]
pub(crate) mod testing {
    use cosy_model::{Compound, Op, Sys};

    use crate::{Optimized, Passes, optimize};

    /// The system calls of a compound, in order.
    pub fn calls(c: &Compound) -> Vec<Sys> {
        c.ops
            .iter()
            .filter_map(|op| match op {
                Op::Sys { call, .. } => Some(*call),
                _ => None,
            })
            .collect()
    }

    /// Runs only the pass `name`.
    pub fn only(c: &Compound, name: &str) -> Optimized {
        optimize(c, &Passes::only(name).expect("a pass name"))
    }

    /// Sets the target of the jump at `j`.
    pub fn set_target(c: &mut Compound, j: u32, target: u32) {
        if let Some(Op::Jump { target: t, .. }) = c.ops.get_mut(j as usize) {
            *t = target;
        }
    }
}
