//! The control-flow graph and the dataflow over it: is a register (fd slot) unwritten
//! (unopened) on *some* path to an operation — a read before a write — and is it written
//! (opened) on *some* path to a `MapBegin` — a value from before the map.
//!
//! Nodes are the operations and the end (`ops.len()`). Edges: to the next operation; a jump
//! to its target (and, if conditional, to the next operation); a `MapBegin` to its body, with
//! the map's variables written, and past its `MapEnd`, without them (the body may run zero
//! times). A `MapEnd` has no successor: an iteration ends there, and the next one starts
//! from the state at the `MapBegin` again, since iterations are independent. So nothing a
//! body writes or opens is written or open after the map (accumulators are registers defined
//! before the map, already written there). Jumps whose target is out of range or in another
//! map scope are reported elsewhere and have no edge here.
//!
//! Writes never undo one another, so both questions are reachability questions: is `node`
//! reachable from the start on a path that avoids (respectively crosses) the writes of `v`?
//! They are answered 64 variables at a time, one bit each, by a worklist over the graph in
//! which a node is revisited only when one of its 64 bits changes: at most 65 visits per node
//! and batch, memory linear in the number of operations, and only variables asked about are
//! tracked.

use std::collections::{HashMap, HashSet, VecDeque};

use cosy_model::{Compound, InputKind, Op, Output};

use crate::ctx::Ctx;
use crate::problem::Rule;
use crate::refs::{Item, items};
use crate::structure::Shape;

/// A register or an fd slot (by index; only declared ones are tracked).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Var {
    Reg(usize),
    Fd(usize),
}

/// The control-flow graph with what each operation writes.
pub(crate) struct Graph {
    /// Successors of each operation: `(node, whether the operation's writes apply)`.
    succ: Vec<Vec<(usize, bool)>>,
    /// Registers written and fd slots opened by each operation.
    writes: Vec<Vec<Var>>,
    /// Registers set before the first operation (integer inputs).
    inputs: HashSet<usize>,
}

impl Graph {
    pub fn new(c: &Compound, shape: &Shape) -> Self {
        let n = c.ops.len();
        let succ = c
            .ops
            .iter()
            .enumerate()
            .map(|(i, op)| match op {
                Op::Jump { cond, target, .. } => {
                    let mut e = Vec::new();
                    if cond.is_some() {
                        e.push((i + 1, true));
                    }
                    if let Ok(t) = usize::try_from(*target)
                        && t <= n
                        && shape.same_scope(i, t)
                    {
                        e.push((t, true));
                    }
                    e
                }
                Op::MapBegin { end, .. } => {
                    let mut e = vec![(i + 1, true)];
                    if let Ok(end) = usize::try_from(*end)
                        && end < n
                    {
                        e.push((end + 1, false));
                    }
                    e
                }
                Op::MapEnd { .. } => vec![],
                _ => vec![(i + 1, true)],
            })
            .collect();
        let writes = c
            .ops
            .iter()
            .map(|op| {
                items(op)
                    .into_iter()
                    .filter_map(|item| match item {
                        Item::Write(r) if r.index() < c.regs.len() => Some(Var::Reg(r.index())),
                        Item::FdDef(s) if s.index() < c.fds.len() => Some(Var::Fd(s.index())),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let inputs = c
            .inputs
            .iter()
            .filter_map(|i| match i.kind {
                InputKind::Int { reg, .. } => Some(reg.index()),
                InputKind::Path(_) => None,
            })
            .collect();
        Graph {
            succ,
            writes,
            inputs,
        }
    }

    fn set_at_start(&self, v: Var) -> bool {
        matches!(v, Var::Reg(r) if self.inputs.contains(&r))
    }

    /// One batch: the bits set on entry to each node (`None`: unreachable), for bits that start
    /// as `entry` and that writes clear (`kill`) or set (`!kill`); `masks` holds each
    /// operation's writes.
    fn run(&self, masks: &[u64], entry: u64, kill: bool) -> Vec<Option<u64>> {
        let mut state: Vec<Option<u64>> = vec![None; self.succ.len() + 1];
        let mut queued = vec![false; state.len()];
        state[0] = Some(entry);
        queued[0] = true;
        let mut work = VecDeque::from([0]);
        while let Some(i) = work.pop_front() {
            queued[i] = false;
            let (Some(Some(cur)), Some(edges)) = (state.get(i).copied(), self.succ.get(i)) else {
                continue;
            };
            let g = masks.get(i).copied().unwrap_or(0);
            for &(t, apply) in edges {
                let out = match (apply, kill) {
                    (false, _) => cur,
                    (true, true) => cur & !g,
                    (true, false) => cur | g,
                };
                let Some(slot) = state.get_mut(t) else {
                    continue;
                };
                let new = slot.map_or(out, |s| s | out);
                if *slot != Some(new) {
                    *slot = Some(new);
                    if !queued[t] {
                        queued[t] = true;
                        work.push_back(t);
                    }
                }
            }
        }
        state
    }

    /// For each `(node, var)` of `queries`: whether some path from the start reaches `node`
    /// with `var` unwritten (`unwritten`) or written (`!unwritten`).
    fn solve(&self, queries: &[(usize, Var)], unwritten: bool) -> Vec<bool> {
        let mut ids: HashMap<Var, usize> = HashMap::new();
        let mut vars = Vec::new();
        for &(_, v) in queries {
            ids.entry(v).or_insert_with(|| {
                vars.push(v);
                vars.len() - 1
            });
        }
        let batches = vars.len().div_ceil(64);
        let mut gens: Vec<Vec<(usize, u64)>> = vec![Vec::new(); batches];
        for (i, ws) in self.writes.iter().enumerate() {
            for v in ws {
                if let Some(&id) = ids.get(v) {
                    gens[id / 64].push((i, 1 << (id % 64)));
                }
            }
        }
        let mut asked: Vec<Vec<(usize, usize, u64)>> = vec![Vec::new(); batches];
        for (q, &(node, v)) in queries.iter().enumerate() {
            if let Some(&id) = ids.get(&v) {
                asked[id / 64].push((q, node, 1 << (id % 64)));
            }
        }
        let mut answers = vec![false; queries.len()];
        let mut masks = vec![0u64; self.succ.len()];
        for (b, (batch_gens, batch_asked)) in gens.iter().zip(&asked).enumerate() {
            for &(i, bit) in batch_gens {
                masks[i] |= bit;
            }
            let entry = vars
                .iter()
                .enumerate()
                .skip(b * 64)
                .take(64)
                .filter(|(_, v)| self.set_at_start(**v) != unwritten)
                .fold(0u64, |m, (id, _)| m | 1 << (id % 64));
            let state = self.run(&masks, entry, unwritten);
            for &(q, node, bit) in batch_asked {
                answers[q] = state.get(node).copied().flatten().unwrap_or(0) & bit != 0;
            }
            for &(i, _) in batch_gens {
                masks[i] = 0;
            }
        }
        answers
    }

    /// Of `queries`, the `(MapBegin, var)` pairs where `var` may have been written on some path
    /// to the map.
    pub fn written_before(&self, queries: &[(usize, Var)]) -> HashSet<(usize, Var)> {
        queries
            .iter()
            .zip(self.solve(queries, false))
            .filter_map(|(q, yes)| yes.then_some(*q))
            .collect()
    }
}

/// Where a register or fd slot is needed.
enum Site<'c> {
    /// By an operand of an operation.
    Op(usize, Item),
    /// By an output, at the end.
    Output(&'c Output),
}

/// Reads of registers and uses of fd slots that some path reaches unwritten or unopened.
pub(crate) fn check(cx: &mut Ctx<'_>, graph: &Graph) {
    let c = cx.c;
    let mut queries = Vec::new();
    let mut sites = Vec::new();
    for (i, op) in c.ops.iter().enumerate() {
        for item in items(op) {
            let var = match item {
                Item::Read(r) if r.index() < c.regs.len() => Var::Reg(r.index()),
                Item::FdUse(s) | Item::FdClose(s) if s.index() < c.fds.len() => Var::Fd(s.index()),
                _ => continue,
            };
            queries.push((i, var));
            sites.push(Site::Op(i, item));
        }
    }
    for o in &c.outputs {
        if o.reg.index() < c.regs.len() {
            queries.push((c.ops.len(), Var::Reg(o.reg.index())));
            sites.push(Site::Output(o));
        }
    }
    let answers = graph.solve(&queries, true);
    for (site, bad) in sites.into_iter().zip(answers) {
        if !bad {
            continue;
        }
        match site {
            Site::Op(i, Item::Read(r)) => cx.at(
                i,
                Rule::ReadBeforeWrite,
                format!("register {} read before it is written", cx.reg(r)),
            ),
            Site::Op(i, Item::FdUse(s) | Item::FdClose(s)) => cx.at(
                i,
                Rule::FdBeforeOpen,
                format!(
                    "fd slot {} used before anything is opened into it",
                    cx.fd(s)
                ),
            ),
            Site::Op(..) => {}
            Site::Output(o) => cx.global(
                Rule::ReadBeforeWrite,
                format!(
                    "output `{}` reports register {}, which may not be written at the end",
                    o.name.escape_debug(),
                    cx.reg(o.reg)
                ),
            ),
        }
    }
}
