//! The shape of the program: maps (matching, nesting, depth) and jumps (targets, conditions,
//! bounds, scopes).

use cosy_model::{BinOp, Op};

use crate::ctx::Ctx;
use crate::problem::Rule;

/// Largest nesting depth of maps.
pub const MAX_MAP_DEPTH: usize = 8;

/// The map structure of a compound whose maps are well formed.
pub(crate) struct Shape {
    /// For each index `0..=ops.len()`: the `MapBegin` index of the innermost map whose scope
    /// (its body and its `MapEnd`) contains it. For a `MapBegin`, the map enclosing it.
    inner: Vec<Option<usize>>,
}

impl Shape {
    /// The innermost map whose scope contains index `i`.
    pub fn inner(&self, i: usize) -> Option<usize> {
        self.inner.get(i).copied().flatten()
    }

    /// The maps whose bodies contain operation `i`, innermost first (for a `MapBegin`, the
    /// maps around it, not itself).
    pub fn enclosing(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        // Each step goes to a strictly smaller index, so this ends.
        std::iter::successors(self.inner(i), move |&m| self.inner(m).filter(|&p| p < m))
    }

    /// Whether a jump at `from` to `to` stays in the same map scope.
    pub fn same_scope(&self, from: usize, to: usize) -> bool {
        to < self.inner.len() && self.inner(from) == self.inner(to)
    }
}

fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
    )
}

/// Checks maps and jumps; the shape if the maps are well formed and not too deep.
pub(crate) fn check(cx: &mut Ctx<'_>) -> Option<Shape> {
    let ops = &cx.c.ops;
    let n = ops.len();
    let mut inner = vec![None; n + 1];
    let mut stack: Vec<usize> = Vec::new();
    let mut ok = true;
    for (i, op) in ops.iter().enumerate() {
        inner[i] = stack.last().copied();
        match op {
            Op::MapBegin { .. } => {
                stack.push(i);
                if stack.len() == MAX_MAP_DEPTH + 1 {
                    ok = false;
                    cx.at(
                        i,
                        Rule::MapDepth,
                        format!("maps are nested more than {MAX_MAP_DEPTH} deep"),
                    );
                }
            }
            Op::MapEnd { begin } => match stack.pop() {
                None => {
                    ok = false;
                    cx.at(i, Rule::MapStructure, "end of a map that was not begun");
                }
                Some(b) => {
                    if usize::try_from(*begin).ok() != Some(b) {
                        ok = false;
                        cx.at(
                            i,
                            Rule::MapStructure,
                            format!(
                                "map end names op {begin} as its begin, but the innermost open \
                                 map begins at op {b}"
                            ),
                        );
                    }
                    if let Some(Op::MapBegin { end, .. }) = ops.get(b)
                        && usize::try_from(*end).ok() != Some(i)
                    {
                        ok = false;
                        cx.at(
                            b,
                            Rule::MapStructure,
                            format!("map names op {end} as its end, but its body ends at op {i}"),
                        );
                    }
                }
            },
            Op::Jump {
                cond,
                target,
                bound,
            } => {
                if let Some(c) = cond
                    && !is_comparison(c.op)
                {
                    cx.at(
                        i,
                        Rule::JumpCondition,
                        format!(
                            "jump condition uses `{}`, not a comparison (== != < <= > >=)",
                            c.op.symbol()
                        ),
                    );
                }
                match usize::try_from(*target) {
                    Ok(t) if t <= n => {
                        if t <= i && bound.is_none_or(|b| b == 0) {
                            cx.at(
                                i,
                                Rule::LoopBound,
                                format!("loop without a bound (backward jump to op {t})"),
                            );
                        }
                    }
                    _ => cx.at(
                        i,
                        Rule::JumpTarget,
                        format!("jump target {target} is past the end (op {n})"),
                    ),
                }
            }
            _ => {}
        }
    }
    inner[n] = stack.last().copied();
    for b in stack {
        ok = false;
        cx.at(b, Rule::MapStructure, "map is never ended");
    }
    let shape = Shape { inner };
    if ok {
        jump_scopes(cx, &shape);
        Some(shape)
    } else {
        None
    }
}

/// Jumps stay within their innermost map body (its `MapEnd` included: "next iteration").
fn jump_scopes(cx: &mut Ctx<'_>, shape: &Shape) {
    let n = cx.c.ops.len();
    for (i, op) in cx.c.ops.iter().enumerate() {
        let Op::Jump { target, .. } = op else {
            continue;
        };
        let Some(t) = usize::try_from(*target).ok().filter(|t| *t <= n) else {
            continue;
        };
        if shape.same_scope(i, t) {
            continue;
        }
        let message = match shape.inner(i) {
            Some(m) if !shape.enclosing(t).any(|e| e == m) => {
                format!("jump to op {t} leaves the body of the map at op {m}")
            }
            _ => match shape.inner(t) {
                Some(m) => format!("jump to op {t} enters the body of the map at op {m}"),
                None => format!("jump to op {t} leaves its map body"),
            },
        };
        cx.at(i, Rule::JumpScope, message);
    }
}
