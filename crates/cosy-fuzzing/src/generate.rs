//! Compounds from unstructured bytes.
//!
//! The bytes become a tape of choices for the generators of `cosy_format::testing` (the ones
//! the property tests use): [`valid_compound_from_choices`] builds compounds meant to pass the
//! verifier, [`compound_from_choices`] anything well-formed. A fuzzer that mutates the bytes
//! mutates the choices, so it explores compounds, not encodings: a byte changed near the start
//! changes a declaration, one near the end an operand.
//!
//! The first byte picks what is made of the rest (see [`Origin`]): mostly valid compounds,
//! some with a few mutations applied (operations deleted, duplicated, swapped, jump targets
//! and constants changed: near-valid compounds, where the verifier's refusals and its
//! acceptances are both worth checking), some merely well-formed ones, and raw bytes decoded
//! as the binary format.
//!
//! [`valid_compound_from_choices`]: cosy_format::testing::valid_compound_from_choices
//! [`compound_from_choices`]: cosy_format::testing::compound_from_choices

use arbitrary::Unstructured;
use cosy_model::{Arg, BufRange, Compound, MapSource, Op, Value};

/// Where a generated compound came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `valid_compound_from_choices`: meant to verify.
    Valid,
    /// A valid compound with mutations applied.
    Mutated,
    /// `compound_from_choices`: well-formed, rarely verifies.
    Any,
    /// The bytes decoded as the binary format.
    Binary,
}

/// A compound and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// The compound.
    pub compound: Compound,
    /// How it was made.
    pub origin: Origin,
}

/// The most choices read from the bytes: the generators stop asking long before on most
/// tapes, and a longer one only makes longer compounds that take longer to run.
pub const MAX_CHOICES: usize = 2000;

/// The most mutations applied to one compound.
const MAX_MUTATIONS: usize = 4;

/// A tape of choices from the rest of `u`: one byte per choice below `0xf0` (most choices are
/// small: an index, a percentage), else the next eight bytes (a large integer, an offset).
pub fn tape(u: &mut Unstructured<'_>) -> Vec<u64> {
    let mut t = Vec::new();
    while !u.is_empty() && t.len() < MAX_CHOICES {
        let b: u8 = u.arbitrary().unwrap_or(0);
        let v = if b >= 0xf0 {
            u.arbitrary::<u64>().unwrap_or(0)
        } else {
            u64::from(b)
        };
        t.push(v);
    }
    t
}

/// A compound from `u` (the whole of it); `None` when the bytes were meant for the binary
/// decoder and do not decode.
pub fn compound(u: &mut Unstructured<'_>) -> Option<Generated> {
    let pick: u8 = u.arbitrary().unwrap_or(0);
    let (compound, origin) = match pick {
        0..=159 => (
            cosy_format::testing::valid_compound_from_choices(&tape(u)),
            Origin::Valid,
        ),
        160..=209 => {
            let n = 1 + usize::from(u.arbitrary::<u8>().unwrap_or(0)) % MAX_MUTATIONS;
            let mutations: Vec<(u8, u32, u32)> =
                (0..n).map(|_| u.arbitrary().unwrap_or_default()).collect();
            let mut c = cosy_format::testing::valid_compound_from_choices(&tape(u));
            for m in mutations {
                mutate(&mut c, m);
            }
            (c, Origin::Mutated)
        }
        210..=239 => (
            cosy_format::testing::compound_from_choices(&tape(u)),
            Origin::Any,
        ),
        _ => {
            let rest = u.bytes(u.len()).unwrap_or_default();
            (cosy_format::binary::decode(rest).ok()?, Origin::Binary)
        }
    };
    Some(Generated { compound, origin })
}

/// Integers at the edges: of sizes, offsets, signs, widths.
const EDGES: &[i64] = &[
    0,
    1,
    -1,
    2,
    7,
    8,
    255,
    256,
    4095,
    4096,
    4097,
    65536,
    i32::MAX as i64,
    u32::MAX as i64,
    1 << 32,
    1 << 40,
    i64::MAX,
    i64::MIN,
];

/// Paths that leave the scratch directory (through `..`, an absolute path, the fixture's
/// symlink `escape` to the outside directory, `/proc`) or name its entries in odd ways.
const ESCAPES: &[&[u8]] = &[
    b"../outside/f",
    b"escape/f",
    b"escape",
    b"escape/sub/g",
    b"..",
    b"link/..",
    b"dir/../../outside/f",
    b"/proc/self/fd",
    b"/tmp/cosy-x",
    b"tree/sub/../../a",
    b"a/",
    b"dir//b",
    b"",
];

/// Applies one mutation, `(kind, a, b)`, to `c`; nothing when `c` has no operation.
///
/// Jump targets and map ends are not adjusted when operations move: the result is meant to be
/// wrong in small ways, for the verifier to refuse or, if it accepts, for the executors to
/// agree on.
pub fn mutate(c: &mut Compound, (kind, a, b): (u8, u32, u32)) {
    if c.ops.is_empty() {
        return;
    }
    let n = c.ops.len();
    let i = a as usize % n;
    let j = b as usize % n;
    match kind % 8 {
        0 => {
            c.ops.remove(i);
        }
        1 => {
            let op = c.ops[i].clone();
            c.ops.insert(j, op);
        }
        2 => c.ops.swap(i, j),
        3 => {
            let mut values = values_mut(&mut c.ops[i]);
            if !values.is_empty() {
                let k = j % values.len();
                *values[k] = Value::Imm(EDGES[b as usize % EDGES.len()]);
            }
        }
        4 => {
            // A target moved by -2..=2, or anywhere up to one past the end.
            let moved = |t: u32| {
                if b % 2 == 0 {
                    (t as i64 + (b as i64 / 2 % 5) - 2).clamp(0, n as i64) as u32
                } else {
                    b % (n as u32 + 1)
                }
            };
            match &mut c.ops[i] {
                Op::Jump { target, bound, .. } => {
                    *target = moved(*target);
                    if b % 3 == 0 {
                        *bound = bound.map_or(Some(b % 4), |_| None);
                    }
                }
                Op::MapBegin { end, .. } => *end = moved(*end),
                Op::MapEnd { begin } => *begin = moved(*begin),
                _ => {}
            }
        }
        5 => {
            // A register read replaced by another register (possibly one never written).
            if c.regs.is_empty() {
                return;
            }
            let reg = cosy_model::Reg((b as usize % c.regs.len()) as u16);
            let mut values = values_mut(&mut c.ops[i]);
            if !values.is_empty() {
                let k = j % values.len();
                *values[k] = Value::Reg(reg);
            }
        }
        6 => {
            // A path made one that leaves the root, or names what the fixture has in odd ways.
            let k = j % c.data.len().max(1);
            if let Some(d) = c.data.get_mut(k) {
                *d = ESCAPES[b as usize % ESCAPES.len()].to_vec();
            }
        }
        _ => {
            // A buffer made smaller (ranges, loads and stores may now reach past it).
            let k = j % c.buffers.len().max(1);
            if let Some(buf) = c.buffers.get_mut(k) {
                buf.size = buf.size.min(EDGES[b as usize % 12].unsigned_abs() as u32);
            }
        }
    }
}

/// The values an operation reads.
fn values_mut(op: &mut Op) -> Vec<&mut Value> {
    fn range<'a>(r: &'a mut BufRange, out: &mut Vec<&'a mut Value>) {
        out.push(&mut r.start);
        if let Some(e) = &mut r.end {
            out.push(e);
        }
    }
    let mut out: Vec<&mut Value> = Vec::new();
    match op {
        Op::Sys { args, .. } | Op::Call { args, .. } => {
            for a in args {
                match a {
                    Arg::Value(v) => out.push(v),
                    Arg::Buf(r) => range(r, &mut out),
                    Arg::Fd(_) | Arg::Path(_) => {}
                }
            }
        }
        Op::Arith { a, b, .. } => {
            out.push(a);
            out.push(b);
        }
        Op::Mov { src, .. } => out.push(src),
        Op::Load { off, .. } => out.push(off),
        Op::Store { off, src, .. } => {
            out.push(off);
            out.push(src);
        }
        Op::Jump { cond, .. } => {
            if let Some(cond) = cond {
                out.push(&mut cond.a);
                out.push(&mut cond.b);
            }
        }
        Op::MapBegin { source, .. } => match source {
            MapSource::Range {
                start, end, step, ..
            } => {
                out.push(start);
                out.push(end);
                out.push(step);
            }
            MapSource::Dirents { buf, .. } => range(buf, &mut out),
            MapSource::Paths { .. } | MapSource::Offsets { .. } => {}
        },
        Op::MapEnd { .. } => {}
    }
    out
}
