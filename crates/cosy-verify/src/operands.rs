//! Operands against the operation table and the policy; function calls; `range` steps.

use cosy_model::{Arg, ArgKind, FdRef, MapSource, Op, PathRef, Ret, RetKind, Sys, Value};

use crate::ctx::{Ctx, std_name};
use crate::problem::Rule;
use crate::refs::is_builtin;

pub(crate) fn check(cx: &mut Ctx<'_>) {
    for (i, op) in cx.c.ops.iter().enumerate() {
        match op {
            Op::Sys { call, args, ret } => sys(cx, i, *call, args, ret),
            Op::Call { func, args, .. } => function(cx, i, func, args),
            Op::MapBegin {
                source:
                    MapSource::Range {
                        step: Value::Imm(s),
                        ..
                    },
                ..
            } if *s <= 0 => cx.at(
                i,
                Rule::RangeStep,
                format!("range step {s} is not positive"),
            ),
            _ => {}
        }
    }
}

/// Whether `arg` is of kind `kind`.
fn fits(kind: ArgKind, arg: &Arg) -> bool {
    match kind {
        ArgKind::Fd => matches!(arg, Arg::Fd(FdRef::Std(_) | FdRef::Slot(_))),
        ArgKind::DirFd => matches!(arg, Arg::Fd(FdRef::Cwd | FdRef::Slot(_))),
        ArgKind::NewFd => matches!(arg, Arg::Fd(FdRef::Slot(_))),
        ArgKind::Path | ArgKind::Str => matches!(arg, Arg::Path(_)),
        ArgKind::BufIn | ArgKind::BufOut => matches!(arg, Arg::Buf(_)),
        ArgKind::Int | ArgKind::Flags(_) => matches!(arg, Arg::Value(_)),
    }
}

fn expected(kind: ArgKind) -> &'static str {
    match kind {
        ArgKind::Fd => "a descriptor (an fd slot or a standard stream)",
        ArgKind::DirFd => "a directory descriptor (an fd slot or `cwd`)",
        ArgKind::NewFd => "an fd slot",
        ArgKind::Path => "a path",
        ArgKind::Str => "a string (a data constant or a path variable)",
        ArgKind::BufIn | ArgKind::BufOut => "a buffer range",
        ArgKind::Int | ArgKind::Flags(_) => "an integer",
    }
}

fn describe(arg: &Arg) -> String {
    match arg {
        Arg::Value(_) => "an integer".into(),
        Arg::Fd(FdRef::Cwd) => "`cwd`".into(),
        Arg::Fd(FdRef::Std(n)) => std_name(*n),
        Arg::Fd(FdRef::Slot(_)) => "an fd slot".into(),
        Arg::Path(_) => "a path".into(),
        Arg::Buf(_) => "a buffer range".into(),
    }
}

fn sys(cx: &mut Ctx<'_>, i: usize, call: Sys, args: &[Arg], ret: &Ret) {
    let spec = call.spec();
    let name = spec.name;
    if !cx.policy.allows(call) {
        cx.at(
            i,
            Rule::CallNotAllowed,
            format!("`{name}` is not allowed by the policy"),
        );
    }
    if args.len() != spec.args.len() {
        let names: Vec<&str> = spec.args.iter().map(|a| a.name).collect();
        cx.at(
            i,
            Rule::OperandCount,
            format!(
                "`{name}` takes {} operands ({}), not {}",
                spec.args.len(),
                names.join(", "),
                args.len()
            ),
        );
    } else {
        for (k, (arg, a)) in args.iter().zip(spec.args).enumerate() {
            if !fits(a.kind, arg) {
                cx.at(
                    i,
                    Rule::OperandKind,
                    format!(
                        "operand {} (`{}`) of `{name}` must be {}, not {}",
                        k + 1,
                        a.name,
                        expected(a.kind),
                        describe(arg)
                    ),
                );
            }
        }
        if call == Sys::Close
            && let Some(Arg::Fd(FdRef::Std(n))) = args.first()
        {
            cx.at(
                i,
                Rule::OperandKind,
                format!(
                    "`close` takes an fd slot, not {}: the standard streams belong to the host \
                     process",
                    std_name(*n)
                ),
            );
        }
        let new: Vec<_> = args
            .iter()
            .zip(spec.args)
            .filter_map(|(arg, a)| match (a.kind, arg) {
                (ArgKind::NewFd, Arg::Fd(FdRef::Slot(s))) => Some(*s),
                _ => None,
            })
            .collect();
        for (k, s) in new.iter().enumerate() {
            if new[..k].contains(s) {
                cx.at(
                    i,
                    Rule::OperandKind,
                    format!("`{name}` fills fd slot {} twice", cx.fd(*s)),
                );
            }
        }
    }
    // A descriptor returned nowhere would stay open in the host process with no slot to
    // close it through, so a call returning one needs a slot.
    let wrong = match (spec.ret, ret) {
        (RetKind::Value, Ret::None | Ret::Reg(_)) | (RetKind::Fd, Ret::Fd(_)) => None,
        (RetKind::Value, Ret::Fd(_)) => {
            Some("returns into a register (or nothing), not into an fd slot")
        }
        (RetKind::Fd, Ret::Reg(_)) => Some("returns into an fd slot, not into a register"),
        (RetKind::Fd, Ret::None) => {
            Some("returns into an fd slot: a descriptor returned nowhere could never be closed")
        }
    };
    if let Some(wrong) = wrong {
        cx.at(i, Rule::ResultKind, format!("`{name}` {wrong}"));
    }
    if !cx.policy.std_streams {
        for arg in args {
            if let Arg::Fd(FdRef::Std(n)) = arg {
                cx.at(
                    i,
                    Rule::StdStreams,
                    format!("{} is not allowed by the policy", std_name(*n)),
                );
            }
        }
    }
}

/// Whether `arg` is bytes for a function: a buffer range or a data constant.
fn bytes(arg: &Arg) -> bool {
    matches!(arg, Arg::Buf(_) | Arg::Path(PathRef::Data(_)))
}

fn function(cx: &mut Ctx<'_>, i: usize, func: &str, args: &[Arg]) {
    let shown = func.escape_debug();
    let builtin = is_builtin(func);
    if !builtin && !cx.policy.functions.contains(func) {
        cx.at(
            i,
            Rule::UnknownFunction,
            format!(
                "function `{shown}` is neither a built-in (find, count_lines, checksum) nor \
                 allowed by the policy"
            ),
        );
    }
    for (k, arg) in args.iter().enumerate() {
        if !(bytes(arg) || matches!(arg, Arg::Value(_))) {
            let what = match arg {
                Arg::Path(_) => "a path variable".to_string(),
                other => describe(other),
            };
            cx.at(
                i,
                Rule::FunctionOperands,
                format!(
                    "operand {} of `{shown}` is {what}; functions take integers, buffer ranges \
                     and data constants",
                    k + 1,
                ),
            );
        }
    }
    if builtin {
        let (count, wanted) = match func {
            "find" => (
                2,
                "two byte strings, buffer ranges or data constants (haystack, needle)",
            ),
            _ => (1, "one byte string, a buffer range or a data constant"),
        };
        if args.len() != count || !args.iter().all(bytes) {
            cx.at(
                i,
                Rule::FunctionOperands,
                format!("built-in `{shown}` takes {wanted}"),
            );
        }
    }
}
