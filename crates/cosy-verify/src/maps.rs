//! Map bodies: iterations must be independent, so a body keeps to its own registers, fd slots
//! and buffers, except for accumulators; local buffers and path variables stay inside maps.
//!
//! "Defined outside the map" is decided by the dataflow analysis: a register (fd slot) that may
//! have been written (opened) on some path reaching the `MapBegin`, integer inputs included.
//! Since nothing a body writes is visible after its map (see [`crate::flow`]), a register
//! written in a body and not before it is the iteration's own.

use std::collections::{HashMap, HashSet};

use cosy_model::{BufId, Compound, FdSlot, MapSource, Op, PathVar, Reg};

use crate::ctx::Ctx;
use crate::flow::{Graph, Var};
use crate::problem::Rule;
use crate::refs::{Item, accumulator, items, reads_besides_accumulation};
use crate::structure::Shape;

struct Maps<'s> {
    shape: &'s Shape,
    /// `(MapBegin, var)`: `var` may hold a value when the map starts (for the pairs asked).
    before: HashSet<(usize, Var)>,
}

impl Maps<'_> {
    fn reg_before(&self, m: usize, r: Reg) -> bool {
        self.before.contains(&(m, Var::Reg(r.index())))
    }

    /// The innermost map around `j` in which `fd` may be open before the map starts.
    fn fd_before(&self, j: usize, fd: FdSlot) -> Option<usize> {
        self.shape
            .enclosing(j)
            .find(|&m| self.before.contains(&(m, Var::Fd(fd.index()))))
    }
}

/// The `(MapBegin, var)` pairs the checks below ask about: what a body writes or opens (or
/// closes), for each map around it, and a map's own variables.
pub(crate) fn questions(c: &Compound, shape: &Shape) -> Vec<(usize, Var)> {
    let mut asked = HashSet::new();
    for (j, op) in c.ops.iter().enumerate() {
        let own = matches!(op, Op::MapBegin { .. }).then_some(j);
        for item in items(op) {
            let var = match item {
                Item::Write(r) if r.index() < c.regs.len() => Var::Reg(r.index()),
                Item::FdDef(s) | Item::FdClose(s) if s.index() < c.fds.len() => Var::Fd(s.index()),
                _ => continue,
            };
            for m in shape.enclosing(j).chain(own) {
                asked.insert((m, var));
            }
        }
    }
    asked.into_iter().collect()
}

fn binds(op: Option<&Op>, v: PathVar) -> bool {
    matches!(op, Some(Op::MapBegin {
        source: MapSource::Paths { var, .. } | MapSource::Dirents { name: var, .. },
        ..
    }) if *var == v)
}

/// Checks the map bodies; returns the `(MapBegin, var)` pairs where `var` may hold a value
/// when the map starts, of those asked (every register and fd slot a body writes or opens),
/// for the map facts ([`crate::facts`]).
pub(crate) fn check(cx: &mut Ctx<'_>, shape: &Shape, graph: &Graph) -> HashSet<(usize, Var)> {
    let maps = Maps {
        shape,
        before: graph.written_before(&questions(cx.c, shape)),
    };
    let ops = &cx.c.ops;

    // The accumulators of each map: registers defined before it and accumulated in its body.
    let mut accumulators: HashMap<usize, HashSet<Reg>> = HashMap::new();
    for (j, op) in ops.iter().enumerate() {
        if let Some(r) = accumulator(op) {
            for m in shape.enclosing(j).filter(|&m| maps.reg_before(m, r)) {
                accumulators.entry(m).or_default().insert(r);
            }
        }
    }

    // Buffers used directly in each scope (a map body outside its nested maps, or the top
    // level): `(innermost map, buffer)`.
    let mut direct_uses: HashSet<(Option<usize>, BufId)> = HashSet::new();
    for (k, op) in ops.iter().enumerate() {
        for item in items(op) {
            if let Item::BufRead(b) | Item::BufWrite(b) = item {
                direct_uses.insert((shape.inner(k), b));
            }
        }
    }

    for (j, op) in ops.iter().enumerate() {
        let enclosing: Vec<usize> = shape.enclosing(j).collect();
        let acc = accumulator(op);
        for item in items(op) {
            match item {
                Item::Write(r) => register_write(cx, &maps, j, op, r, acc),
                Item::FdDef(s) => {
                    if let Some(m) = maps.fd_before(j, s) {
                        cx.at(
                            j,
                            Rule::MapFd,
                            format!(
                                "opens into fd slot {}, which may be open from before the map at \
                                 op {m}; an fd opened in a map body belongs to one iteration and \
                                 needs a slot of its own",
                                cx.fd(s)
                            ),
                        );
                    }
                }
                Item::FdClose(s) => {
                    if let Some(m) = maps.fd_before(j, s) {
                        cx.at(
                            j,
                            Rule::MapFd,
                            format!(
                                "closes fd slot {}, which may be open from before the map at op \
                                 {m}: every iteration shares it",
                                cx.fd(s)
                            ),
                        );
                    }
                }
                Item::BufRead(b) | Item::BufWrite(b) => {
                    let Some(buffer) = cx.buffer(b) else { continue };
                    if buffer.local && enclosing.is_empty() {
                        cx.at(
                            j,
                            Rule::LocalBuffer,
                            format!("local buffer {} used outside any map body", cx.buf(b)),
                        );
                    }
                    if let Item::BufWrite(_) = item {
                        buffer_write(cx, shape, &direct_uses, j, b, buffer.local);
                    }
                }
                Item::PathUse(v) => {
                    if !enclosing.iter().any(|&m| binds(ops.get(m), v)) {
                        cx.at(
                            j,
                            Rule::PathVarScope,
                            format!(
                                "path variable {} used outside the map that binds it",
                                cx.path_var(v)
                            ),
                        );
                    }
                }
                Item::PathBind(v) => {
                    if let Some(m) = enclosing.iter().find(|&&m| binds(ops.get(m), v)) {
                        cx.at(
                            j,
                            Rule::PathVarScope,
                            format!(
                                "path variable {} is already bound by the map at op {m}",
                                cx.path_var(v)
                            ),
                        );
                    }
                }
                Item::Read(_)
                | Item::FdUse(_)
                | Item::Std(_)
                | Item::PathData(_)
                | Item::Bytes(_) => {}
            }
        }
        for r in reads_besides_accumulation(op) {
            if let Some(m) = enclosing
                .iter()
                .find(|m| accumulators.get(m).is_some_and(|a| a.contains(&r)))
            {
                cx.at(
                    j,
                    Rule::MapAccumulatorRead,
                    format!(
                        "reads register {}, which the map at op {m} accumulates into: inside the \
                         body its value depends on the order of the iterations",
                        cx.reg(r)
                    ),
                );
            }
        }
    }
    maps.before
}

/// A write of buffer `b` at `j`: it must be private to the iteration of every map around it.
/// A buffer that is not local is shared by all iterations. A local buffer is shared by the
/// iterations of a map `m` if the body enclosing `m` uses it directly (outside its nested maps;
/// `m`'s own `dirents` source included): the iterations of `m` then see that body's copy.
fn buffer_write(
    cx: &mut Ctx<'_>,
    shape: &Shape,
    direct_uses: &HashSet<(Option<usize>, BufId)>,
    j: usize,
    b: BufId,
    local: bool,
) {
    let Some(innermost) = shape.enclosing(j).next() else {
        return; // top level
    };
    if !local {
        cx.at(
            j,
            Rule::MapBufferWrite,
            format!(
                "writes buffer {}, which every iteration of the map at op {innermost} shares; \
                 write into a local buffer instead",
                cx.buf(b)
            ),
        );
        return;
    }
    let shared = shape.enclosing(j).find_map(|m| {
        let parent = shape.inner(m)?;
        direct_uses
            .contains(&(Some(parent), b))
            .then_some((m, parent))
    });
    if let Some((m, parent)) = shared {
        cx.at(
            j,
            Rule::MapBufferWrite,
            format!(
                "writes local buffer {}, which the body of the map at op {parent} also uses \
                 outside the map at op {m}: every iteration of that map shares it",
                cx.buf(b)
            ),
        );
    }
}

fn register_write(cx: &mut Ctx<'_>, maps: &Maps<'_>, j: usize, op: &Op, r: Reg, acc: Option<Reg>) {
    if matches!(op, Op::MapBegin { .. }) && maps.reg_before(j, r) {
        cx.at(
            j,
            Rule::MapRegisterWrite,
            format!(
                "map variable {} may already hold a value when the map starts; a map binds a \
                 register of its own",
                cx.reg(r)
            ),
        );
        return;
    }
    if acc == Some(r) {
        return;
    }
    if let Some(m) = maps.shape.enclosing(j).find(|&m| maps.reg_before(m, r)) {
        let name = cx.value(&r.into());
        cx.at(
            j,
            Rule::MapRegisterWrite,
            format!(
                "writes register {}, which may hold a value from before the map at op {m}; a map \
                 body may only accumulate into such a register ({name} = {name} + ...)",
                cx.reg(r),
            ),
        );
    }
}
