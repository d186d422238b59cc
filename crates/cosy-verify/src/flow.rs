//! The control-flow graph and two forward dataflow analyses over it: which registers and fd
//! slots are written on *every* path to an operation (to find reads before writes), and which
//! on *some* path (to find what may hold a value when a map starts).
//!
//! Nodes are the operations and the end (`ops.len()`). Edges: to the next operation; a jump
//! to its target (and, if conditional, to the next operation); a `MapBegin` to its body, with
//! the map's variables written, and past its `MapEnd`, without them (the body may run zero
//! times). A `MapEnd` has no successor: an iteration ends there, and the next one starts
//! from the state at the `MapBegin` again, since iterations are independent. So nothing a
//! body writes or opens is written or open after the map (accumulators are registers defined
//! before the map, already written there).
//!
//! Jumps whose target is out of range or in another map scope are reported elsewhere and have
//! no edge here.

use std::collections::BTreeSet;

use cosy_model::{Compound, InputKind, Op};

use crate::ctx::Ctx;
use crate::problem::Rule;
use crate::refs::{Item, items};
use crate::structure::Shape;

/// A set of small indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bits {
    len: usize,
    words: Vec<u64>,
}

impl Bits {
    fn new(len: usize) -> Self {
        Bits {
            len,
            words: vec![0; len.div_ceil(64)],
        }
    }

    pub fn contains(&self, i: usize) -> bool {
        i < self.len && self.words.get(i / 64).is_some_and(|w| (w >> (i % 64)) & 1 == 1)
    }

    fn insert(&mut self, i: usize) {
        if i < self.len
            && let Some(w) = self.words.get_mut(i / 64)
        {
            *w |= 1 << (i % 64);
        }
    }

    fn combine(&mut self, other: &Bits, f: impl Fn(u64, u64) -> u64) -> bool {
        let mut changed = false;
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            let new = f(*w, *o);
            changed |= new != *w;
            *w = new;
        }
        changed
    }
}

/// Registers and fd slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct State {
    pub regs: Bits,
    pub fds: Bits,
}

impl State {
    fn new(c: &Compound) -> Self {
        State {
            regs: Bits::new(c.regs.len()),
            fds: Bits::new(c.fds.len()),
        }
    }

    fn union(&mut self, o: &State) -> bool {
        let a = self.regs.combine(&o.regs, |x, y| x | y);
        let b = self.fds.combine(&o.fds, |x, y| x | y);
        a || b
    }

    fn intersect(&mut self, o: &State) -> bool {
        let a = self.regs.combine(&o.regs, |x, y| x & y);
        let b = self.fds.combine(&o.fds, |x, y| x & y);
        a || b
    }
}

/// The results: per node (operations, then the end), `None` where unreachable.
pub(crate) struct Flow {
    /// Written or opened on every path reaching the node.
    pub must: Vec<Option<State>>,
    /// Written or opened on some path reaching the node.
    pub may: Vec<Option<State>>,
}

/// Successors of each operation: `(node, whether the operation's writes apply)`.
fn edges(c: &Compound, shape: &Shape) -> Vec<Vec<(usize, bool)>> {
    let n = c.ops.len();
    c.ops
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
        .collect()
}

/// What each operation writes (registers) and opens (fd slots).
fn writes(c: &Compound) -> Vec<State> {
    c.ops
        .iter()
        .map(|op| {
            let mut s = State::new(c);
            for item in items(op) {
                match item {
                    Item::Write(r) => s.regs.insert(r.index()),
                    Item::FdDef(f) => s.fds.insert(f.index()),
                    _ => {}
                }
            }
            s
        })
        .collect()
}

fn solve(
    edges: &[Vec<(usize, bool)>],
    writes: &[State],
    entry: State,
    meet: fn(&mut State, &State) -> bool,
) -> Vec<Option<State>> {
    let nodes = edges.len() + 1;
    let mut state: Vec<Option<State>> = vec![None; nodes];
    state[0] = Some(entry);
    // Lowest index first: edges mostly go forward, so this is close to reverse postorder.
    let mut work = BTreeSet::from([0]);
    while let Some(i) = work.pop_first() {
        let (Some(Some(cur)), Some(out_edges)) = (state.get(i).cloned(), edges.get(i)) else {
            continue;
        };
        for &(t, apply) in out_edges {
            let mut out = cur.clone();
            if apply && let Some(w) = writes.get(i) {
                out.union(w);
            }
            let changed = match state.get_mut(t) {
                Some(Some(s)) => meet(s, &out),
                Some(slot) => {
                    *slot = Some(out);
                    true
                }
                None => false,
            };
            if changed {
                work.insert(t);
            }
        }
    }
    state
}

/// Runs both analyses; the maps must be well formed (`shape`).
pub(crate) fn analyse(c: &Compound, shape: &Shape) -> Flow {
    let edges = edges(c, shape);
    let writes = writes(c);
    let mut entry = State::new(c);
    for input in &c.inputs {
        if let InputKind::Int { reg, .. } = input.kind {
            entry.regs.insert(reg.index());
        }
    }
    Flow {
        must: solve(&edges, &writes, entry.clone(), State::intersect),
        may: solve(&edges, &writes, entry, State::union),
    }
}

/// Reads of registers and uses of fd slots not written or opened on every path before them.
pub(crate) fn check(cx: &mut Ctx<'_>, flow: &Flow) {
    let c = cx.c;
    for (i, op) in c.ops.iter().enumerate() {
        let Some(Some(st)) = flow.must.get(i) else {
            continue; // unreachable
        };
        for item in items(op) {
            match item {
                Item::Read(r) if r.index() < c.regs.len() && !st.regs.contains(r.index()) => {
                    cx.at(
                        i,
                        Rule::ReadBeforeWrite,
                        format!("register {} read before it is written", cx.reg(r)),
                    );
                }
                Item::FdUse(s) | Item::FdClose(s)
                    if s.index() < c.fds.len() && !st.fds.contains(s.index()) =>
                {
                    cx.at(
                        i,
                        Rule::FdBeforeOpen,
                        format!("fd slot {} used before anything is opened into it", cx.fd(s)),
                    );
                }
                _ => {}
            }
        }
    }
    if let Some(Some(st)) = flow.must.get(c.ops.len()) {
        for o in &c.outputs {
            if o.reg.index() < c.regs.len() && !st.regs.contains(o.reg.index()) {
                cx.global(
                    Rule::ReadBeforeWrite,
                    format!(
                        "output `{}` reports register {}, which may not be written at the end",
                        o.name.escape_debug(),
                        cx.reg(o.reg)
                    ),
                );
            }
        }
    }
}
