//! The decoder. Every read is bounds-checked; every index is checked against its table; no
//! length prefix allocates more than the bytes that remain could fill.

use cosy_model::{
    Arg, ArgKind, BinOp, BufId, BufRange, Buffer, Compound, Cond, DataId, ErrorMode, FdRef, FdSlot,
    Input, InputKind, MapSource, Op, Output, PathRef, PathVar, Reg, Ret, Sys, Value, Width,
};

use super::{DecodeError, MAGIC, VERSION, tag};

/// Most entries of a table whose indices are `u16`.
const TABLE_MAX: usize = 1 << 16;

pub(crate) fn decode(bytes: &[u8]) -> Result<Compound, DecodeError> {
    let mut r = Reader { b: bytes, pos: 0 };
    if !bytes.starts_with(MAGIC) {
        return Err(r.err(
            0,
            "the magic number of a binary compound (`\\0COSY`)".to_string(),
        ));
    }
    r.pos = MAGIC.len();
    let at = r.pos;
    let lo = r.u8("the format version")?;
    let hi = r.u8("the format version")?;
    let version = u16::from_le_bytes([lo, hi]);
    if version != VERSION {
        return Err(r.err(
            at,
            format!("format version {VERSION}, found version {version}"),
        ));
    }
    let mut c = Compound::default();
    let at = r.pos;
    c.mode = match r.u8("the error mode")? {
        0 => ErrorMode::Stop,
        1 => ErrorMode::Continue,
        m => return Err(r.err(at, format!("an error mode (0 or 1), found {m}"))),
    };

    let n = r.count("the number of data constants", TABLE_MAX)?;
    for _ in 0..n {
        c.data.push(r.bytes("a data constant")?);
    }
    c.regs = r.names("registers")?;
    c.fds = r.names("fd slots")?;
    c.paths = r.names("path variables")?;
    let n = r.count("the number of buffers", TABLE_MAX)?;
    for _ in 0..n {
        let name = r.string("a buffer's name")?;
        let at = r.pos;
        let size = r.varint("a buffer's size")?;
        let size = u32::try_from(size)
            .map_err(|_| r.err(at, format!("a buffer size below 2^32, found {size}")))?;
        let local = r.flag("whether the buffer is local (0 or 1)")?;
        c.buffers.push(Buffer { name, size, local });
    }

    let mut t = Tables {
        data: c.data.len(),
        regs: c.regs.len(),
        fds: c.fds.len(),
        paths: c.paths.len(),
        buffers: c.buffers.len(),
        ops: 0,
    };

    let n = r.count("the number of inputs", usize::MAX)?;
    for _ in 0..n {
        let name = r.string("an input's name")?;
        let at = r.pos;
        let kind = match r.u8("an input kind")? {
            0 => InputKind::Path(DataId(r.index("data constant", t.data)?)),
            1 => {
                let reg = t.reg(&mut r)?;
                let default = r.zigzag("an integer input's default")?;
                InputKind::Int { reg, default }
            }
            k => {
                return Err(r.err(at, format!("an input kind (0 path, 1 int), found {k}")));
            }
        };
        c.inputs.push(Input { name, kind });
    }

    let at = r.pos;
    let n = r.count("the number of operations", usize::MAX)?;
    t.ops = u32::try_from(n).map_err(|_| r.err(at, "at most 2^32 - 1 operations".to_string()))?;
    c.ops.reserve(n);
    for _ in 0..n {
        c.ops.push(t.op(&mut r)?);
    }

    let n = r.count("the number of outputs", usize::MAX)?;
    for _ in 0..n {
        let name = r.string("an output's name")?;
        let reg = t.reg(&mut r)?;
        c.outputs.push(Output { name, reg });
    }

    if r.pos != bytes.len() {
        let extra = bytes.len() - r.pos;
        return Err(r.err(
            r.pos,
            format!("the end of the compound, found {extra} more bytes"),
        ));
    }
    Ok(c)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn err(&self, offset: usize, expected: String) -> DecodeError {
        DecodeError { offset, expected }
    }

    fn remaining(&self) -> usize {
        self.b.len().saturating_sub(self.pos)
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        match self.b.get(self.pos) {
            Some(&v) => {
                self.pos += 1;
                Ok(v)
            }
            None => Err(self.err(self.pos, format!("{what}, found the end of the input"))),
        }
    }

    fn flag(&mut self, what: &str) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.err(at, format!("{what}, found {v}"))),
        }
    }

    fn varint(&mut self, what: &str) -> Result<u64, DecodeError> {
        let at = self.pos;
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8(what)?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(self.err(at, format!("{what}, found a varint above 2^64")));
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err(at, format!("{what}, found a varint longer than 10 bytes")))
    }

    fn zigzag(&mut self, what: &str) -> Result<i64, DecodeError> {
        let u = self.varint(what)?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A count of items of at least one byte each: at most `max`, and at most the bytes left.
    fn count(&mut self, what: &str, max: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.varint(what)?;
        let left = self.remaining();
        match usize::try_from(n) {
            Ok(n) if n <= max && n <= left => Ok(n),
            Ok(n) if n > max => Err(self.err(at, format!("{what} (at most {max}), found {n}"))),
            _ => Err(self.err(
                at,
                format!("{what} (at most the {left} bytes left), found {n}"),
            )),
        }
    }

    fn bytes(&mut self, what: &str) -> Result<Vec<u8>, DecodeError> {
        let n = self.count(&format!("the length of {what}"), usize::MAX)?;
        let v = self.b[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(v)
    }

    fn string(&mut self, what: &str) -> Result<String, DecodeError> {
        let at = self.pos;
        let b = self.bytes(what)?;
        String::from_utf8(b).map_err(|_| self.err(at, format!("{what} in UTF-8")))
    }

    fn names(&mut self, what: &str) -> Result<Vec<String>, DecodeError> {
        let n = self.count(&format!("the number of {what}"), TABLE_MAX)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.string(&format!("the name of one of the {what}"))?);
        }
        Ok(out)
    }

    /// An index into a table of `len` entries.
    fn index(&mut self, what: &str, len: usize) -> Result<u16, DecodeError> {
        let at = self.pos;
        let i = self.varint(&format!("a {what} index"))?;
        match u16::try_from(i) {
            Ok(i) if usize::from(i) < len => Ok(i),
            _ => Err(self.err(at, format!("a {what} index below {len}, found {i}"))),
        }
    }
}

/// The sizes of the tables read so far, to check indices against.
struct Tables {
    data: usize,
    regs: usize,
    fds: usize,
    paths: usize,
    buffers: usize,
    ops: u32,
}

impl Tables {
    fn reg(&self, r: &mut Reader<'_>) -> Result<Reg, DecodeError> {
        Ok(Reg(r.index("register", self.regs)?))
    }

    fn buf(&self, r: &mut Reader<'_>) -> Result<BufId, DecodeError> {
        Ok(BufId(r.index("buffer", self.buffers)?))
    }

    fn value(&self, r: &mut Reader<'_>) -> Result<Value, DecodeError> {
        let at = r.pos;
        match r.u8("a value tag")? {
            0 => Ok(Value::Imm(r.zigzag("an immediate")?)),
            1 => Ok(Value::Reg(self.reg(r)?)),
            t => Err(r.err(
                at,
                format!("a value tag (0 immediate, 1 register), found {t}"),
            )),
        }
    }

    fn fd(&self, r: &mut Reader<'_>) -> Result<FdRef, DecodeError> {
        let at = r.pos;
        match r.varint("a descriptor")? {
            0 => Ok(FdRef::Cwd),
            1 => Ok(FdRef::Std(r.u8("a standard stream number")?)),
            v => match u16::try_from(v - 2) {
                Ok(s) if usize::from(s) < self.fds => Ok(FdRef::Slot(FdSlot(s))),
                _ => Err(r.err(
                    at,
                    format!("an fd slot index below {}, found {}", self.fds, v - 2),
                )),
            },
        }
    }

    fn path(&self, r: &mut Reader<'_>) -> Result<PathRef, DecodeError> {
        let at = r.pos;
        let v = r.varint("a path")?;
        let (i, var) = (v >> 1, v & 1 == 1);
        let (len, what) = if var {
            (self.paths, "path variable")
        } else {
            (self.data, "data constant")
        };
        match u16::try_from(i) {
            Ok(i) if usize::from(i) < len => Ok(if var {
                PathRef::Var(PathVar(i))
            } else {
                PathRef::Data(DataId(i))
            }),
            _ => Err(r.err(at, format!("a {what} index below {len}, found {i}"))),
        }
    }

    fn range(&self, r: &mut Reader<'_>) -> Result<BufRange, DecodeError> {
        let buf = self.buf(r)?;
        let start = self.value(r)?;
        let end = if r.flag("whether the range has an end (0 or 1)")? {
            Some(self.value(r)?)
        } else {
            None
        };
        Ok(BufRange { buf, start, end })
    }

    fn tagged(&self, r: &mut Reader<'_>) -> Result<Arg, DecodeError> {
        let at = r.pos;
        Ok(match r.u8("an operand tag")? {
            0 => Arg::Value(self.value(r)?),
            1 => Arg::Fd(self.fd(r)?),
            2 => Arg::Path(self.path(r)?),
            3 => Arg::Buf(self.range(r)?),
            t => {
                return Err(r.err(
                    at,
                    format!("an operand tag (0 value, 1 fd, 2 path, 3 range), found {t}"),
                ));
            }
        })
    }

    fn untagged(&self, r: &mut Reader<'_>, kind: ArgKind) -> Result<Arg, DecodeError> {
        Ok(match kind {
            ArgKind::Fd | ArgKind::DirFd | ArgKind::NewFd => Arg::Fd(self.fd(r)?),
            ArgKind::Path | ArgKind::Str => Arg::Path(self.path(r)?),
            ArgKind::BufIn | ArgKind::BufOut => Arg::Buf(self.range(r)?),
            ArgKind::Int | ArgKind::Flags(_) => Arg::Value(self.value(r)?),
        })
    }

    fn ret(&self, r: &mut Reader<'_>) -> Result<Ret, DecodeError> {
        let at = r.pos;
        Ok(match r.u8("a result tag")? {
            0 => Ret::None,
            1 => Ret::Reg(self.reg(r)?),
            2 => Ret::Fd(FdSlot(r.index("fd slot", self.fds)?)),
            t => {
                return Err(r.err(
                    at,
                    format!("a result tag (0 none, 1 register, 2 fd slot), found {t}"),
                ));
            }
        })
    }

    fn binop(r: &mut Reader<'_>) -> Result<BinOp, DecodeError> {
        let at = r.pos;
        let code = r.u8("an operator")?;
        BinOp::from_code(code).ok_or_else(|| {
            r.err(
                at,
                format!("an operator code below {}, found {code}", BinOp::ALL.len()),
            )
        })
    }

    fn width(r: &mut Reader<'_>) -> Result<Width, DecodeError> {
        let at = r.pos;
        let code = r.u8("a width")?;
        Width::ALL
            .get(usize::from(code))
            .copied()
            .ok_or_else(|| r.err(at, format!("a width code below 4, found {code}")))
    }

    /// An operation index: a jump target (at most the number of operations) or a map's
    /// matching begin/end (below it).
    fn op_index(
        &self,
        r: &mut Reader<'_>,
        what: &str,
        inclusive: bool,
    ) -> Result<u32, DecodeError> {
        let at = r.pos;
        let v = r.varint(what)?;
        let ok = if inclusive {
            v <= u64::from(self.ops)
        } else {
            v < u64::from(self.ops)
        };
        match u32::try_from(v) {
            Ok(i) if ok => Ok(i),
            _ => {
                let rel = if inclusive { "at most" } else { "below" };
                Err(r.err(at, format!("{what} {rel} {}, found {v}", self.ops)))
            }
        }
    }

    fn op(&self, r: &mut Reader<'_>) -> Result<Op, DecodeError> {
        let at = r.pos;
        let t = r.u8("an operation tag")?;
        Ok(match t {
            tag::SYS | tag::SYS_RAW => {
                let compact = t == tag::SYS;
                let cat = r.pos;
                let code = r.u8("a system call code")?;
                let call = Sys::from_code(code).ok_or_else(|| {
                    r.err(
                        cat,
                        format!("the code of a system call of the table, found {code}"),
                    )
                })?;
                let ret = self.ret(r)?;
                let args = if compact {
                    let kinds = call.spec().args;
                    let mut args = Vec::with_capacity(kinds.len());
                    for a in kinds {
                        args.push(self.untagged(r, a.kind)?);
                    }
                    args
                } else {
                    let n = r.count("the number of operands", usize::MAX)?;
                    let mut args = Vec::with_capacity(n);
                    for _ in 0..n {
                        args.push(self.tagged(r)?);
                    }
                    args
                };
                Op::Sys { call, args, ret }
            }
            tag::ARITH => {
                let op = Self::binop(r)?;
                let dst = self.reg(r)?;
                let a = self.value(r)?;
                let b = self.value(r)?;
                Op::Arith { dst, op, a, b }
            }
            tag::MOV => {
                let dst = self.reg(r)?;
                let src = self.value(r)?;
                Op::Mov { dst, src }
            }
            tag::LOAD => {
                let width = Self::width(r)?;
                let dst = self.reg(r)?;
                let buf = self.buf(r)?;
                let off = self.value(r)?;
                Op::Load {
                    dst,
                    width,
                    buf,
                    off,
                }
            }
            tag::STORE => {
                let width = Self::width(r)?;
                let buf = self.buf(r)?;
                let off = self.value(r)?;
                let src = self.value(r)?;
                Op::Store {
                    width,
                    buf,
                    off,
                    src,
                }
            }
            tag::JUMP => {
                let fat = r.pos;
                let flags = r.u8("the jump's flags")?;
                if flags > 3 {
                    return Err(r.err(
                        fat,
                        format!("jump flags (1 condition, 2 bound), found {flags}"),
                    ));
                }
                let cond = if flags & 1 != 0 {
                    let op = Self::binop(r)?;
                    let a = self.value(r)?;
                    let b = self.value(r)?;
                    Some(Cond { op, a, b })
                } else {
                    None
                };
                let target = self.op_index(r, "a jump target", true)?;
                let bound =
                    if flags & 2 != 0 {
                        let bat = r.pos;
                        let b = r.varint("a loop bound")?;
                        Some(u32::try_from(b).map_err(|_| {
                            r.err(bat, format!("a loop bound below 2^32, found {b}"))
                        })?)
                    } else {
                        None
                    };
                Op::Jump {
                    cond,
                    target,
                    bound,
                }
            }
            tag::CALL => {
                let dat = r.pos;
                let d = r.varint("a call's result register")?;
                let dst = match d {
                    0 => None,
                    d => match u16::try_from(d - 1) {
                        Ok(i) if usize::from(i) < self.regs => Some(Reg(i)),
                        _ => {
                            return Err(r.err(
                                dat,
                                format!("0 or 1 + a register index below {}, found {d}", self.regs),
                            ));
                        }
                    },
                };
                let func = r.string("a function's name")?;
                let n = r.count("the number of operands", usize::MAX)?;
                let mut args = Vec::with_capacity(n);
                for _ in 0..n {
                    args.push(self.tagged(r)?);
                }
                Op::Call { dst, func, args }
            }
            tag::MAP_BEGIN => {
                let end = self.op_index(r, "the index of the map's end", false)?;
                let source = self.source(r)?;
                Op::MapBegin { source, end }
            }
            tag::MAP_END => Op::MapEnd {
                begin: self.op_index(r, "the index of the map's begin", false)?,
            },
            _ => {
                return Err(r.err(at, format!("an operation tag (0 to 9), found {t}")));
            }
        })
    }

    fn source(&self, r: &mut Reader<'_>) -> Result<MapSource, DecodeError> {
        let at = r.pos;
        Ok(match r.u8("a map source tag")? {
            0 => {
                let var = PathVar(r.index("path variable", self.paths)?);
                let n = r.count("the number of paths", usize::MAX)?;
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    list.push(DataId(r.index("data constant", self.data)?));
                }
                MapSource::Paths { list, var }
            }
            1 => {
                let var = self.reg(r)?;
                let n = r.count("the number of offsets", usize::MAX)?;
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    list.push(r.zigzag("an offset")?);
                }
                MapSource::Offsets { list, var }
            }
            2 => {
                let var = self.reg(r)?;
                let start = self.value(r)?;
                let end = self.value(r)?;
                let step = self.value(r)?;
                MapSource::Range {
                    start,
                    end,
                    step,
                    var,
                }
            }
            3 => {
                let name = PathVar(r.index("path variable", self.paths)?);
                let kind = self.reg(r)?;
                let ino = self.reg(r)?;
                let buf = self.range(r)?;
                MapSource::Dirents {
                    buf,
                    name,
                    kind,
                    ino,
                }
            }
            t => {
                return Err(r.err(
                    at,
                    format!("a map source tag (0 paths, 1 offsets, 2 range, 3 dirents), found {t}"),
                ));
            }
        })
    }
}
