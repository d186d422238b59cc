//! Declarations: buffer sizes, indices, names, inputs, outputs, paths, the arena's size.

use std::collections::HashMap;

use cosy_model::InputKind;

use crate::ctx::{Ctx, std_name};
use crate::problem::Rule;
use crate::refs::{Item, items};

pub(crate) fn check(cx: &mut Ctx<'_>) {
    buffers(cx);
    names(cx);
    inputs(cx);
    outputs(cx);
    operations(cx);
}

fn buffers(cx: &mut Ctx<'_>) {
    let c = cx.c;
    for b in &c.buffers {
        if b.size == 0 {
            cx.global(
                Rule::BufferSize,
                format!("buffer `{}` has size 0", b.name.escape_debug()),
            );
        }
    }
    let total = c
        .buffers
        .iter()
        .fold(0u64, |sum, b| sum.saturating_add(u64::from(b.size)));
    if total > cx.policy.arena_bytes {
        cx.global(
            Rule::ArenaSize,
            format!(
                "the buffers take {total} bytes, more than the policy's arena of {} bytes",
                cx.policy.arena_bytes
            ),
        );
    }
}

/// Reports every name of `names` declared before (once per repeat).
fn unique<'n>(
    cx: &mut Ctx<'_>,
    rule: Rule,
    what: &str,
    names: impl IntoIterator<Item = &'n String>,
) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, n) in names.into_iter().enumerate() {
        if let Some(j) = first.get(n.as_str()) {
            cx.global(
                rule,
                format!(
                    "{what} `{}` is declared twice (#{j} and #{i})",
                    n.escape_debug()
                ),
            );
        } else {
            first.insert(n, i);
        }
    }
}

fn names(cx: &mut Ctx<'_>) {
    let c = cx.c;
    unique(cx, Rule::DuplicateName, "register", &c.regs);
    unique(cx, Rule::DuplicateName, "fd slot", &c.fds);
    unique(cx, Rule::DuplicateName, "path variable", &c.paths);
    unique(
        cx,
        Rule::DuplicateName,
        "buffer",
        c.buffers.iter().map(|b| &b.name),
    );
}

fn inputs(cx: &mut Ctx<'_>) {
    let c = cx.c;
    unique(
        cx,
        Rule::DuplicateInput,
        "input",
        c.inputs.iter().map(|i| &i.name),
    );
    let mut regs = HashMap::new();
    let mut data = HashMap::new();
    for input in &c.inputs {
        let name = input.name.escape_debug();
        match &input.kind {
            InputKind::Int { reg, .. } => {
                if c.regs.get(reg.index()).is_none() {
                    cx.global(
                        Rule::IndexRange,
                        format!(
                            "input `{name}` sets register #{}, but the compound declares {}",
                            reg.index(),
                            c.regs.len()
                        ),
                    );
                }
                if let Some(other) = regs.insert(*reg, &input.name) {
                    cx.global(
                        Rule::DuplicateInput,
                        format!(
                            "inputs `{}` and `{name}` both set register {}",
                            other.escape_debug(),
                            cx.reg(*reg)
                        ),
                    );
                }
            }
            InputKind::Path(d) => {
                match c.data.get(d.index()) {
                    None => cx.global(
                        Rule::IndexRange,
                        format!(
                            "input `{name}` names data constant #{}, but the compound declares {}",
                            d.index(),
                            c.data.len()
                        ),
                    ),
                    Some(bytes) if bytes.contains(&0) => cx.global(
                        Rule::PathNul,
                        format!("path input `{name}` contains a NUL byte"),
                    ),
                    Some(_) => {}
                }
                if let Some(other) = data.insert(*d, &input.name) {
                    cx.global(
                        Rule::DuplicateInput,
                        format!(
                            "inputs `{}` and `{name}` both set data constant #{}",
                            other.escape_debug(),
                            d.index()
                        ),
                    );
                }
            }
        }
    }
}

fn outputs(cx: &mut Ctx<'_>) {
    let c = cx.c;
    unique(
        cx,
        Rule::DuplicateOutput,
        "output",
        c.outputs.iter().map(|o| &o.name),
    );
    for o in &c.outputs {
        if c.regs.get(o.reg.index()).is_none() {
            cx.global(
                Rule::IndexRange,
                format!(
                    "output `{}` reports register #{}, but the compound declares {}",
                    o.name.escape_debug(),
                    o.reg.index(),
                    c.regs.len()
                ),
            );
        }
    }
}

/// Indices of every operand, and NUL bytes in the data constants operations use as paths.
fn operations(cx: &mut Ctx<'_>) {
    let c = cx.c;
    for (i, op) in c.ops.iter().enumerate() {
        for item in items(op) {
            let (what, index, declared) = match item {
                Item::Read(r) | Item::Write(r) => ("register", r.index(), c.regs.len()),
                Item::FdUse(s) | Item::FdClose(s) | Item::FdDef(s) => {
                    ("fd slot", s.index(), c.fds.len())
                }
                Item::PathUse(v) | Item::PathBind(v) => ("path variable", v.index(), c.paths.len()),
                Item::BufRead(b) | Item::BufWrite(b) => ("buffer", b.index(), c.buffers.len()),
                Item::PathData(d) => {
                    if c.data.get(d.index()).is_some_and(|p| p.contains(&0)) {
                        cx.at(
                            i,
                            Rule::PathNul,
                            format!("path constant #{} contains a NUL byte", d.index()),
                        );
                    }
                    ("data constant", d.index(), c.data.len())
                }
                Item::Bytes(d) => ("data constant", d.index(), c.data.len()),
                Item::Std(n) => {
                    if n > 2 {
                        cx.at(
                            i,
                            Rule::IndexRange,
                            format!(
                                "{} does not exist (only stdin, stdout and stderr)",
                                std_name(n)
                            ),
                        );
                    }
                    continue;
                }
            };
            if index >= declared {
                cx.at(
                    i,
                    Rule::IndexRange,
                    format!("{what} #{index} does not exist (the compound declares {declared})"),
                );
            }
        }
    }
}
