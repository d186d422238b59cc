//! Everything one operation refers to, and how: the single walk over operands that every check
//! shares, so no check can forget an operand.

use cosy_model::{
    Arg, ArgKind, BUILTINS, BinOp, BufId, BufRange, DataId, FdRef, FdSlot, MapSource, Op, PathRef,
    PathVar, Reg, Ret, Sys, Value,
};

/// One reference of an operation to a declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    /// A register read.
    Read(Reg),
    /// A register written (for a `MapBegin`: bound for the body).
    Write(Reg),
    /// An fd slot used as a descriptor.
    FdUse(FdSlot),
    /// An fd slot closed by `close` (also a use).
    FdClose(FdSlot),
    /// An fd slot filled with a new descriptor (an open's result, pipe2's ends).
    FdDef(FdSlot),
    /// A standard stream.
    Std(u8),
    /// A data constant used as a path.
    PathData(DataId),
    /// A data constant passed to a function as bytes (a needle).
    Bytes(DataId),
    /// A path variable used as a path.
    PathUse(PathVar),
    /// A path variable bound by a `MapBegin`.
    PathBind(PathVar),
    /// A buffer read.
    BufRead(BufId),
    /// A buffer (possibly) written.
    BufWrite(BufId),
}

fn value(v: &Value, out: &mut Vec<Item>) {
    if let Value::Reg(r) = v {
        out.push(Item::Read(*r));
    }
}

fn range(r: &BufRange, write: bool, out: &mut Vec<Item>) {
    value(&r.start, out);
    if let Some(e) = &r.end {
        value(e, out);
    }
    out.push(if write {
        Item::BufWrite(r.buf)
    } else {
        Item::BufRead(r.buf)
    });
}

fn path(p: &PathRef, out: &mut Vec<Item>) {
    out.push(match p {
        PathRef::Data(d) => Item::PathData(*d),
        PathRef::Var(v) => Item::PathUse(*v),
    });
}

/// Whether `func` is a built-in (built-ins only read their buffers).
pub(crate) fn is_builtin(func: &str) -> bool {
    BUILTINS.contains(&func)
}

/// The references of `op`, reads before writes.
pub(crate) fn items(op: &Op) -> Vec<Item> {
    let mut out = Vec::new();
    match op {
        Op::Sys { call, args, ret } => {
            let spec = call.spec();
            for (k, arg) in args.iter().enumerate() {
                let kind = spec.args.get(k).map(|a| a.kind);
                match arg {
                    Arg::Value(v) => value(v, &mut out),
                    Arg::Fd(FdRef::Cwd) => {}
                    Arg::Fd(FdRef::Std(n)) => out.push(Item::Std(*n)),
                    Arg::Fd(FdRef::Slot(s)) => out.push(match kind {
                        Some(ArgKind::NewFd) => Item::FdDef(*s),
                        _ if *call == Sys::Close => Item::FdClose(*s),
                        _ => Item::FdUse(*s),
                    }),
                    Arg::Path(p) => path(p, &mut out),
                    // Anything but a buffer the kernel only reads may be written.
                    Arg::Buf(r) => range(r, kind != Some(ArgKind::BufIn), &mut out),
                }
            }
            match ret {
                Ret::None => {}
                Ret::Reg(r) => out.push(Item::Write(*r)),
                Ret::Fd(s) => out.push(Item::FdDef(*s)),
            }
        }
        Op::Arith { dst, a, b, .. } => {
            value(a, &mut out);
            value(b, &mut out);
            out.push(Item::Write(*dst));
        }
        Op::Mov { dst, src } => {
            value(src, &mut out);
            out.push(Item::Write(*dst));
        }
        Op::Load { dst, buf, off, .. } => {
            value(off, &mut out);
            out.push(Item::BufRead(*buf));
            out.push(Item::Write(*dst));
        }
        Op::Store { buf, off, src, .. } => {
            value(off, &mut out);
            value(src, &mut out);
            out.push(Item::BufWrite(*buf));
        }
        Op::Jump { cond, .. } => {
            if let Some(c) = cond {
                value(&c.a, &mut out);
                value(&c.b, &mut out);
            }
        }
        Op::Call { dst, func, args } => {
            // User functions may write the ranges they are given.
            let write = !is_builtin(func);
            for arg in args {
                match arg {
                    Arg::Value(v) => value(v, &mut out),
                    Arg::Fd(FdRef::Cwd) => {}
                    Arg::Fd(FdRef::Std(n)) => out.push(Item::Std(*n)),
                    Arg::Fd(FdRef::Slot(s)) => out.push(Item::FdUse(*s)),
                    Arg::Path(PathRef::Data(d)) => out.push(Item::Bytes(*d)),
                    Arg::Path(PathRef::Var(v)) => out.push(Item::PathUse(*v)),
                    Arg::Buf(r) => range(r, write, &mut out),
                }
            }
            if let Some(d) = dst {
                out.push(Item::Write(*d));
            }
        }
        Op::MapBegin { source, .. } => match source {
            MapSource::Paths { list, var } => {
                out.extend(list.iter().map(|d| Item::PathData(*d)));
                out.push(Item::PathBind(*var));
            }
            MapSource::Offsets { var, .. } => out.push(Item::Write(*var)),
            MapSource::Range {
                start,
                end,
                step,
                var,
            } => {
                value(start, &mut out);
                value(end, &mut out);
                value(step, &mut out);
                out.push(Item::Write(*var));
            }
            MapSource::Dirents {
                buf,
                name,
                kind,
                ino,
            } => {
                range(buf, false, &mut out);
                out.push(Item::PathBind(*name));
                out.push(Item::Write(*kind));
                out.push(Item::Write(*ino));
            }
        },
        Op::MapEnd { .. } => {}
    }
    out
}

/// The register `op` accumulates into, if it is an accumulator `r = r + x`.
pub(crate) fn accumulator(op: &Op) -> Option<Reg> {
    match op {
        Op::Arith {
            dst,
            op: BinOp::Add,
            a: Value::Reg(r),
            ..
        } if r == dst => Some(*dst),
        _ => None,
    }
}

/// The registers `op` reads, except the accumulated register's own read in `r = r + x`.
pub(crate) fn reads_besides_accumulation(op: &Op) -> Vec<Reg> {
    let mut out = Vec::new();
    match (accumulator(op), op) {
        (Some(_), Op::Arith { b, .. }) => value(b, &mut out),
        _ => out = items(op),
    }
    out.into_iter()
        .filter_map(|i| match i {
            Item::Read(r) => Some(r),
            _ => None,
        })
        .collect()
}
