//! Arena bounds known before the run: buffer ranges and `load`/`store` offsets with immediate
//! values, and the minimum sizes of call buffers (`statx`, `utimensat`). Bounds held in registers are the executor's to
//! check, before every operation that uses them.

use cosy_model::{Arg, BufId, BufRange, MapSource, Op, Value, Width};

use crate::ctx::Ctx;
use crate::problem::Rule;

pub(crate) fn check(cx: &mut Ctx<'_>) {
    for (i, op) in cx.c.ops.iter().enumerate() {
        match op {
            Op::Sys { call, args, .. } => {
                let spec = call.spec();
                for arg in args {
                    if let Arg::Buf(r) = arg {
                        let ok = range(cx, i, r);
                        if ok && spec.min_buf > 0 {
                            min_size(cx, i, spec.name, spec.min_buf, r);
                        }
                    }
                }
            }
            Op::Call { args, .. } => {
                for arg in args {
                    if let Arg::Buf(r) = arg {
                        range(cx, i, r);
                    }
                }
            }
            Op::MapBegin {
                source: MapSource::Dirents { buf, .. },
                ..
            } => {
                range(cx, i, buf);
            }
            Op::Load {
                width, buf, off, ..
            }
            | Op::Store {
                width, buf, off, ..
            } => access(cx, i, *width, *buf, off),
            _ => {}
        }
    }
}

fn imm(v: &Value) -> Option<i64> {
    match v {
        Value::Imm(i) => Some(*i),
        Value::Reg(_) => None,
    }
}

/// Checks the immediate bounds of `r`; whether they (as far as known) fit.
fn range(cx: &mut Ctx<'_>, i: usize, r: &BufRange) -> bool {
    let Some(b) = cx.buffer(r.buf) else {
        return false; // reported as an index problem
    };
    let size = i64::from(b.size);
    let start = imm(&r.start);
    let end = match &r.end {
        None => Some(size),
        Some(v) => imm(v),
    };
    let out = |x: Option<i64>| x.is_some_and(|x| !(0..=size).contains(&x));
    let reversed = matches!((start, end), (Some(s), Some(e)) if s > e);
    if out(start) || out(end) || reversed {
        let end_text = r.end.as_ref().map(|e| cx.value(e)).unwrap_or_default();
        cx.at(
            i,
            Rule::BufferRange,
            format!(
                "range {}[{}..{end_text}] is not within the buffer: needs \
                 0 <= start <= end <= {size}",
                cx.buf(r.buf),
                cx.value(&r.start),
            ),
        );
        return false;
    }
    true
}

fn min_size(cx: &mut Ctx<'_>, i: usize, call: &str, need: usize, r: &BufRange) {
    let Some(b) = cx.buffer(r.buf) else { return };
    let need = need as i64;
    let size = i64::from(b.size);
    let end = match &r.end {
        None => Some(size),
        Some(v) => imm(v),
    };
    let len = match (imm(&r.start), end) {
        (Some(s), Some(e)) => Some(e - s),
        // Only one bound known: the range is at most that long.
        (Some(s), None) => Some(size - s),
        (None, Some(e)) => Some(e),
        (None, None) => Some(size),
    };
    if let Some(len) = len.filter(|l| *l < need) {
        cx.at(
            i,
            Rule::CallBufferSize,
            format!(
                "`{call}` needs a range of at least {need} bytes, but its range of {} holds at \
                 most {len} bytes",
                cx.buf(r.buf)
            ),
        );
    }
}

fn access(cx: &mut Ctx<'_>, i: usize, width: Width, buf: BufId, off: &Value) {
    let Some(b) = cx.buffer(buf) else { return };
    let size = i64::from(b.size);
    let w = width.bytes() as i64;
    let bad = match imm(off) {
        Some(o) => o < 0 || o > size - w,
        None => size < w,
    };
    if bad {
        cx.at(
            i,
            Rule::AccessRange,
            format!(
                "{} at offset {} of {} does not fit: needs 0 <= offset and offset + {w} <= {size}",
                width.name(),
                cx.value(off),
                cx.buf(buf)
            ),
        );
    }
}
