//! The compound itself: declarations (inputs, data, buffers, registers, fd slots, path
//! variables), the operation list and the named outputs.
//!
//! Everything an operation touches is named by index into one of the declaration tables, never
//! by pointer: that is what lets the verifier prove that a compound stays inside its arena.

use crate::ops::Sys;

macro_rules! index_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u16);

        impl $name {
            /// The index as a `usize`, for indexing the declaration table.
            pub fn index(self) -> usize {
                usize::from(self.0)
            }
        }
    };
}

index_type!(
    /// A value register (holds an `i64`), index into [`Compound::regs`].
    Reg
);
index_type!(
    /// An fd slot (holds a file descriptor the compound opened), index into [`Compound::fds`].
    FdSlot
);
index_type!(
    /// A buffer of the arena, index into [`Compound::buffers`].
    BufId
);
index_type!(
    /// A data constant (a path or byte string), index into [`Compound::data`].
    DataId
);
index_type!(
    /// A path variable (bound by a map to the current path or directory entry name), index into
    /// [`Compound::paths`].
    PathVar
);

/// What happens when a system call fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ErrorMode {
    /// Stop at the first failing call; the outcome reports it (the thesis's exit-on-failure
    /// mode). Fds the compound opened are closed.
    #[default]
    Stop,
    /// Record each error (the call's result register receives `-errno`) and continue.
    Continue,
}

/// An integer operand: an immediate or a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// A constant.
    Imm(i64),
    /// The current value of a register.
    Reg(Reg),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Imm(v)
    }
}

impl From<Reg> for Value {
    fn from(r: Reg) -> Self {
        Value::Reg(r)
    }
}

/// A file descriptor operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FdRef {
    /// `AT_FDCWD`; under a policy with a root, the root directory.
    Cwd,
    /// Standard input (0), output (1) or error (2).
    Std(u8),
    /// An fd the compound opened.
    Slot(FdSlot),
}

/// A path operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathRef {
    /// A data constant (possibly an input).
    Data(DataId),
    /// A path variable bound by an enclosing map.
    Var(PathVar),
}

/// A range of an arena buffer: `buf[start..end]`, `end` defaulting to the buffer's size.
///
/// Immediate bounds are checked by the verifier; register bounds are checked by the executor
/// before every call, so the kernel never sees an address outside the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufRange {
    /// The buffer.
    pub buf: BufId,
    /// First byte.
    pub start: Value,
    /// One past the last byte; `None` is the end of the buffer.
    pub end: Option<Value>,
}

impl BufRange {
    /// The whole buffer.
    pub fn whole(buf: BufId) -> Self {
        BufRange {
            buf,
            start: Value::Imm(0),
            end: None,
        }
    }
}

/// An operand of a system call or user function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arg {
    /// An integer (also flags, modes, offsets and lengths).
    Value(Value),
    /// A file descriptor.
    Fd(FdRef),
    /// A path.
    Path(PathRef),
    /// A range of an arena buffer.
    Buf(BufRange),
}

/// Where a system call's result goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    /// Discarded (errors still count).
    None,
    /// Into a register.
    Reg(Reg),
    /// Into an fd slot (calls that return a new descriptor).
    Fd(FdSlot),
}

/// Binary arithmetic and comparison on registers. Comparisons give 1 or 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// Wrapping `a + b`.
    Add,
    /// Wrapping `a - b`.
    Sub,
    /// Wrapping `a * b`.
    Mul,
    /// `a / b`; division by zero is a runtime error.
    Div,
    /// `a % b`; by zero is a runtime error.
    Rem,
    /// Bitwise and.
    And,
    /// Bitwise or.
    Or,
    /// Bitwise xor.
    Xor,
    /// `a << (b & 63)`.
    Shl,
    /// Arithmetic `a >> (b & 63)`.
    Shr,
    /// `a == b`.
    Eq,
    /// `a != b`.
    Ne,
    /// `a < b` (signed).
    Lt,
    /// `a <= b`.
    Le,
    /// `a > b`.
    Gt,
    /// `a >= b`.
    Ge,
    /// The smaller of `a` and `b`.
    Min,
    /// The larger of `a` and `b`.
    Max,
}

impl BinOp {
    /// Every operator, in encoding order.
    pub const ALL: [BinOp; 18] = [
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Rem,
        BinOp::And,
        BinOp::Or,
        BinOp::Xor,
        BinOp::Shl,
        BinOp::Shr,
        BinOp::Eq,
        BinOp::Ne,
        BinOp::Lt,
        BinOp::Le,
        BinOp::Gt,
        BinOp::Ge,
        BinOp::Min,
        BinOp::Max,
    ];

    /// The operator's spelling in the text format (`min` and `max` are words).
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::And => "&",
            BinOp::Or => "|",
            BinOp::Xor => "^",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Min => "min",
            BinOp::Max => "max",
        }
    }

    /// The operator's code in the binary format.
    pub fn code(self) -> u8 {
        Self::ALL.iter().position(|&o| o == self).unwrap_or(0) as u8
    }

    /// The operator with binary code `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// Applies the operator. `None` on division or remainder by zero.
    pub fn apply(self, a: i64, b: i64) -> Option<i64> {
        Some(match self {
            BinOp::Add => a.wrapping_add(b),
            BinOp::Sub => a.wrapping_sub(b),
            BinOp::Mul => a.wrapping_mul(b),
            BinOp::Div => {
                if b == 0 {
                    return None;
                }
                a.wrapping_div(b)
            }
            BinOp::Rem => {
                if b == 0 {
                    return None;
                }
                a.wrapping_rem(b)
            }
            BinOp::And => a & b,
            BinOp::Or => a | b,
            BinOp::Xor => a ^ b,
            BinOp::Shl => a.wrapping_shl((b & 63) as u32),
            BinOp::Shr => a.wrapping_shr((b & 63) as u32),
            BinOp::Eq => i64::from(a == b),
            BinOp::Ne => i64::from(a != b),
            BinOp::Lt => i64::from(a < b),
            BinOp::Le => i64::from(a <= b),
            BinOp::Gt => i64::from(a > b),
            BinOp::Ge => i64::from(a >= b),
            BinOp::Min => a.min(b),
            BinOp::Max => a.max(b),
        })
    }
}

/// A condition of a conditional jump: `a OP b` with a comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cond {
    /// One of the comparison operators (`Eq` … `Ge`).
    pub op: BinOp,
    /// Left operand.
    pub a: Value,
    /// Right operand.
    pub b: Value,
}

/// Width of a [`Op::Load`] or [`Op::Store`] (little-endian, unsigned on load).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    /// 1 byte.
    U8,
    /// 2 bytes.
    U16,
    /// 4 bytes.
    U32,
    /// 8 bytes (loaded as the `i64` with the same bits).
    U64,
}

impl Width {
    /// Number of bytes.
    pub fn bytes(self) -> usize {
        match self {
            Width::U8 => 1,
            Width::U16 => 2,
            Width::U32 => 4,
            Width::U64 => 8,
        }
    }

    /// Spelling in the text format.
    pub fn name(self) -> &'static str {
        match self {
            Width::U8 => "u8",
            Width::U16 => "u16",
            Width::U32 => "u32",
            Width::U64 => "u64",
        }
    }

    /// All widths in encoding order.
    pub const ALL: [Width; 4] = [Width::U8, Width::U16, Width::U32, Width::U64];
}

/// What a map iterates over. Iterations are independent: an executor may run them in any
/// order or at once, and must produce the outcome of running them in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MapSource {
    /// Each path of a list of data constants, bound to `var`.
    Paths {
        /// The paths, in iteration order.
        list: Vec<DataId>,
        /// The path variable bound to the current path.
        var: PathVar,
    },
    /// Each integer of a literal list, bound to `var`.
    Offsets {
        /// The values, in iteration order.
        list: Vec<i64>,
        /// The register bound to the current value.
        var: Reg,
    },
    /// `start, start+step, ...` while `< end` (`step > 0`), bound to `var`.
    Range {
        /// First value.
        start: Value,
        /// Exclusive bound.
        end: Value,
        /// Increment; a step `<= 0` is a runtime error.
        step: Value,
        /// The register bound to the current value.
        var: Reg,
    },
    /// Each entry of a `getdents64` buffer (`linux_dirent64` records), skipping `.` and `..`.
    Dirents {
        /// The bytes `getdents64` returned.
        buf: BufRange,
        /// Bound to the entry's name.
        name: PathVar,
        /// Bound to the entry's `d_type` (`DT_REG` = 8, `DT_DIR` = 4, ...).
        kind: Reg,
        /// Bound to the entry's inode number.
        ino: Reg,
    },
}

/// One operation of a compound.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A system call. Its operands follow the call's row of the operation table
    /// ([`Sys::spec`]).
    Sys {
        /// Which call.
        call: Sys,
        /// Operands, one per argument of the table row.
        args: Vec<Arg>,
        /// Where the result goes.
        ret: Ret,
    },
    /// `dst = a OP b`.
    Arith {
        /// Destination.
        dst: Reg,
        /// Operator.
        op: BinOp,
        /// Left operand.
        a: Value,
        /// Right operand.
        b: Value,
    },
    /// `dst = src`.
    Mov {
        /// Destination.
        dst: Reg,
        /// Source.
        src: Value,
    },
    /// `dst = load WIDTH buf off`: reads a little-endian integer from the arena.
    Load {
        /// Destination.
        dst: Reg,
        /// Width.
        width: Width,
        /// Buffer.
        buf: BufId,
        /// Byte offset in the buffer.
        off: Value,
    },
    /// `store WIDTH buf off src`: writes a little-endian integer into the arena.
    Store {
        /// Width.
        width: Width,
        /// Buffer.
        buf: BufId,
        /// Byte offset in the buffer.
        off: Value,
        /// Value stored (truncated to the width).
        src: Value,
    },
    /// `goto target` or `if COND goto target`. A jump to an earlier operation (a loop) must
    /// carry a bound: the largest number of times it may be taken in one run (per map
    /// iteration inside a map); taking it once more is a runtime error.
    Jump {
        /// `None` for an unconditional jump.
        cond: Option<Cond>,
        /// Index of the operation jumped to (may be `ops.len()`: the end).
        target: u32,
        /// The loop bound, for backward jumps.
        bound: Option<u32>,
    },
    /// A call of a registered user function or a built-in (`find`, `count_lines`,
    /// `checksum`). Its operands are integers, buffer ranges and data constants (as bytes).
    Call {
        /// Where the function's result goes.
        dst: Option<Reg>,
        /// The function's name.
        func: String,
        /// Operands.
        args: Vec<Arg>,
    },
    /// Start of a map; the body runs once per item, up to the matching [`Op::MapEnd`] at
    /// index `end`.
    MapBegin {
        /// What to iterate over.
        source: MapSource,
        /// Index of the matching `MapEnd`.
        end: u32,
    },
    /// End of a map body (the next iteration starts, or execution continues after it).
    MapEnd {
        /// Index of the matching `MapBegin`.
        begin: u32,
    },
}

/// A named input of the compound, overridable when it runs (`cosy run FILE NAME=VALUE`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Input {
    /// The input's name.
    pub name: String,
    /// Its kind and where its value lives.
    pub kind: InputKind,
}

/// The kind of an [`Input`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// A path: the data constant holds the default and receives the override.
    Path(DataId),
    /// An integer: the register starts with the default or the override.
    Int {
        /// The register.
        reg: Reg,
        /// The default value.
        default: i64,
    },
}

/// A buffer of the arena.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Buffer {
    /// The buffer's name.
    pub name: String,
    /// Size in bytes.
    pub size: u32,
    /// A buffer private to each map iteration (executors may give each running iteration its
    /// own copy); usable only inside map bodies.
    pub local: bool,
}

/// A named result: the final value of a register.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Output {
    /// The result's name.
    pub name: String,
    /// The register whose value it reports.
    pub reg: Reg,
}

/// A compound: a sealed program of system calls and the computation between them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Compound {
    /// Error mode.
    pub mode: ErrorMode,
    /// Named inputs.
    pub inputs: Vec<Input>,
    /// Data constants: paths and byte strings (no NUL inside a path).
    pub data: Vec<Vec<u8>>,
    /// The arena's buffers.
    pub buffers: Vec<Buffer>,
    /// Register names.
    pub regs: Vec<String>,
    /// Fd slot names.
    pub fds: Vec<String>,
    /// Path variable names.
    pub paths: Vec<String>,
    /// The operations, run from index 0.
    pub ops: Vec<Op>,
    /// Named results.
    pub outputs: Vec<Output>,
}

impl Compound {
    /// Total arena bytes with one copy of each buffer.
    pub fn arena_bytes(&self) -> u64 {
        self.buffers.iter().map(|b| u64::from(b.size)).sum()
    }

    /// The input named `name`.
    pub fn input(&self, name: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.name == name)
    }

    /// Overrides input `name` with `value` (a path, or an integer: decimal, `0x` hexadecimal,
    /// `0o` octal or `0b` binary, with an optional sign).
    pub fn set_input(&mut self, name: &str, value: &str) -> Result<(), InputError> {
        let input = self
            .inputs
            .iter_mut()
            .find(|i| i.name == name)
            .ok_or_else(|| InputError::Unknown(name.to_string()))?;
        match &mut input.kind {
            InputKind::Path(d) => {
                if value.as_bytes().contains(&0) {
                    return Err(InputError::Invalid {
                        name: name.to_string(),
                        value: value.to_string(),
                        why: "not a path (it contains a NUL byte)",
                    });
                }
                let d = d.index();
                self.data[d] = value.as_bytes().to_vec();
            }
            InputKind::Int { default, .. } => {
                *default = parse_int(value).ok_or_else(|| InputError::Invalid {
                    name: name.to_string(),
                    value: value.to_string(),
                    why: "not an integer",
                })?;
            }
        }
        Ok(())
    }

    /// The register named `name`.
    pub fn reg(&self, name: &str) -> Option<Reg> {
        self.regs
            .iter()
            .position(|r| r == name)
            .map(|i| Reg(i as u16))
    }

    /// The buffer named `name`.
    pub fn buffer(&self, name: &str) -> Option<BufId> {
        self.buffers
            .iter()
            .position(|b| b.name == name)
            .map(|i| BufId(i as u16))
    }
}

impl Op {
    /// Registers this operation reads (operands, range bounds, map sources).
    pub fn reads(&self) -> Vec<Reg> {
        let mut out = Vec::new();
        let mut v = |v: &Value| {
            if let Value::Reg(r) = v {
                out.push(*r)
            }
        };
        match self {
            Op::Sys { args, .. } | Op::Call { args, .. } => {
                for a in args {
                    arg_values(a, &mut v)
                }
            }
            Op::Arith { a, b, .. } => {
                v(a);
                v(b)
            }
            Op::Mov { src, .. } => v(src),
            Op::Load { off, .. } => v(off),
            Op::Store { off, src, .. } => {
                v(off);
                v(src)
            }
            Op::Jump { cond, .. } => {
                if let Some(c) = cond {
                    v(&c.a);
                    v(&c.b)
                }
            }
            Op::MapBegin { source, .. } => match source {
                MapSource::Paths { .. } | MapSource::Offsets { .. } => {}
                MapSource::Range {
                    start, end, step, ..
                } => {
                    v(start);
                    v(end);
                    v(step)
                }
                MapSource::Dirents { buf, .. } => range_values(buf, &mut v),
            },
            Op::MapEnd { .. } => {}
        }
        out
    }

    /// Registers this operation writes.
    pub fn writes(&self) -> Vec<Reg> {
        match self {
            Op::Sys {
                ret: Ret::Reg(r), ..
            } => vec![*r],
            Op::Sys { .. } => vec![],
            Op::Arith { dst, .. } | Op::Mov { dst, .. } | Op::Load { dst, .. } => vec![*dst],
            Op::Call { dst, .. } => dst.iter().copied().collect(),
            Op::MapBegin { source, .. } => match source {
                MapSource::Paths { .. } => vec![],
                MapSource::Offsets { var, .. } | MapSource::Range { var, .. } => vec![*var],
                MapSource::Dirents { kind, ino, .. } => vec![*kind, *ino],
            },
            Op::Store { .. } | Op::Jump { .. } | Op::MapEnd { .. } => vec![],
        }
    }

    /// Fd slots this operation uses as operands.
    pub fn fd_uses(&self) -> Vec<FdSlot> {
        match self {
            Op::Sys { args, .. } => args
                .iter()
                .filter_map(|a| match a {
                    Arg::Fd(FdRef::Slot(s)) => Some(*s),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        }
    }

    /// Buffers this operation touches (read or written).
    pub fn buffers(&self) -> Vec<BufId> {
        let mut out = Vec::new();
        match self {
            Op::Sys { args, .. } | Op::Call { args, .. } => {
                for a in args {
                    if let Arg::Buf(r) = a {
                        out.push(r.buf)
                    }
                }
            }
            Op::Load { buf, .. } | Op::Store { buf, .. } => out.push(*buf),
            Op::MapBegin {
                source: MapSource::Dirents { buf, .. },
                ..
            } => out.push(buf.buf),
            _ => {}
        }
        out
    }
}

fn range_values(r: &BufRange, v: &mut impl FnMut(&Value)) {
    v(&r.start);
    if let Some(e) = &r.end {
        v(e)
    }
}

fn arg_values(a: &Arg, v: &mut impl FnMut(&Value)) {
    match a {
        Arg::Value(x) => v(x),
        Arg::Buf(r) => range_values(r, v),
        Arg::Fd(_) | Arg::Path(_) => {}
    }
}

/// An input override that cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputError {
    /// The compound declares no input of that name.
    Unknown(String),
    /// The value does not fit the input's kind.
    Invalid {
        /// The input.
        name: String,
        /// The value given.
        value: String,
        /// Why it does not fit.
        why: &'static str,
    },
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::Unknown(n) => write!(f, "the compound has no input named `{n}`"),
            InputError::Invalid { name, value, why } => {
                write!(f, "input `{name}`: `{value}` is {why}")
            }
        }
    }
}

impl std::error::Error for InputError {}

/// Parses an integer as the command line and the text format write it: decimal, `0x`, `0o` or
/// `0b`, with an optional `-`.
pub fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (radix, digits) = match digits.get(..2) {
        Some("0x") | Some("0X") => (16, &digits[2..]),
        Some("0o") | Some("0O") => (8, &digits[2..]),
        Some("0b") | Some("0B") => (2, &digits[2..]),
        _ => (10, digits),
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_int;

    #[test]
    fn integers_parse_in_every_radix_with_a_sign() {
        assert_eq!(parse_int("42"), Some(42));
        assert_eq!(parse_int("-0x10"), Some(-16));
        assert_eq!(parse_int("0o644"), Some(0o644));
        assert_eq!(parse_int("0b101"), Some(5));
        assert_eq!(parse_int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int("9223372036854775808"), None);
        assert_eq!(parse_int("many"), None);
        assert_eq!(parse_int("--1"), None);
        assert_eq!(parse_int(""), None);
    }
}
