//! Calls of built-in and user functions from a compound: operands evaluated into byte views of
//! the arena, panics and failures turned into [`Error::Function`].

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::arena::{self, Span};
use crate::funcs::{FnArg, FnArgs, Function};
use crate::outcome::Error;

/// An operand of a function call, evaluated.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Operand<'a> {
    /// A value or a descriptor number.
    Int(i64),
    /// A path (a data constant or a path variable).
    Path(&'a [u8]),
    /// A range of the arena.
    Buf(Span),
}

/// The index of the operand a mutable function writes: its last buffer operand.
pub(crate) fn out_index(f: &Function, operands: &[Operand<'_>]) -> Option<usize> {
    if !f.is_mut() {
        return None;
    }
    operands.iter().rposition(|o| matches!(o, Operand::Buf(_)))
}

/// The failure of function `name` at operation `op`.
fn failure(op: u32, name: &str, message: String) -> Error {
    Error::Function {
        op,
        func: name.to_string(),
        message,
    }
}

/// Calls `f` with its buffer operands viewed through `view` (read-only functions: each range
/// on its own, so that other ranges of the arena may be in flight meanwhile). `None`: a range
/// is not readable yet (a call in flight writes it).
pub(crate) fn call_shared<'m>(
    f: &Function,
    op: u32,
    name: &str,
    operands: &[Operand<'m>],
    view: impl Fn(Span) -> Option<&'m [u8]>,
) -> Option<Result<i64, Error>> {
    let mut args = Vec::with_capacity(operands.len());
    for o in operands {
        args.push(match o {
            Operand::Int(v) => FnArg::Int(*v),
            Operand::Path(p) => FnArg::Bytes(p),
            Operand::Buf(s) => FnArg::Bytes(view(*s)?),
        });
    }
    Some(invoke(f, op, name, FnArgs::new(args, None)))
}

/// Calls a mutable function `f` on the whole arena block `mem`: its last buffer operand
/// writable (it must not overlap the others).
pub(crate) fn call_mut(
    f: &Function,
    op: u32,
    name: &str,
    operands: &[Operand<'_>],
    mem: &mut [u8],
) -> Result<i64, Error> {
    let out_idx = out_index(f, operands);
    let span_of = |o: &Operand<'_>| match o {
        Operand::Buf(s) => Some(*s),
        _ => None,
    };
    let ins: Vec<Span> = operands
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != out_idx)
        .filter_map(|(_, o)| span_of(o))
        .collect();
    let out_span = out_idx.and_then(|i| operands.get(i)).and_then(span_of);
    let (views, out) = match out_span {
        Some(o) => match arena::split(mem, &ins, o) {
            Some((v, o)) => (v, Some(o)),
            None => {
                return Err(failure(
                    op,
                    name,
                    "its output range overlaps one of its input ranges".into(),
                ));
            }
        },
        None => {
            let mem: &[u8] = mem;
            (ins.iter().map(|s| arena::bytes(mem, *s)).collect(), None)
        }
    };
    let mut views = views.into_iter();
    let mut args = Vec::with_capacity(operands.len());
    for (i, o) in operands.iter().enumerate() {
        if Some(i) == out_idx {
            continue;
        }
        args.push(match o {
            Operand::Int(v) => FnArg::Int(*v),
            Operand::Path(p) => FnArg::Bytes(p),
            Operand::Buf(_) => FnArg::Bytes(views.next().unwrap_or(&[])),
        });
    }
    invoke(f, op, name, FnArgs::new(args, out))
}

fn invoke(f: &Function, op: u32, name: &str, mut args: FnArgs<'_>) -> Result<i64, Error> {
    match catch_unwind(AssertUnwindSafe(|| f.call(&mut args))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(m)) => Err(failure(op, name, m)),
        Err(p) => Err(failure(op, name, panic_message(p.as_ref()))),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".into()
    }
}
