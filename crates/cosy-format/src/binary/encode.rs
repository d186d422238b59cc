//! The encoder.

use cosy_model::{
    Arg, BufRange, Compound, ErrorMode, FdRef, InputKind, MapSource, Op, PathRef, Ret, Value, Width,
};

use super::{MAGIC, VERSION, conforms, tag};

pub(crate) fn encode(c: &Compound) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64 + 8 * c.ops.len()));
    w.0.extend_from_slice(MAGIC);
    w.0.extend_from_slice(&VERSION.to_le_bytes());
    w.u8(match c.mode {
        ErrorMode::Stop => 0,
        ErrorMode::Continue => 1,
    });
    w.len(c.data.len());
    for d in &c.data {
        w.bytes(d);
    }
    for table in [&c.regs, &c.fds, &c.paths] {
        w.len(table.len());
        for name in table {
            w.bytes(name.as_bytes());
        }
    }
    w.len(c.buffers.len());
    for b in &c.buffers {
        w.bytes(b.name.as_bytes());
        w.varint(u64::from(b.size));
        w.u8(u8::from(b.local));
    }
    w.len(c.inputs.len());
    for i in &c.inputs {
        w.bytes(i.name.as_bytes());
        match i.kind {
            InputKind::Path(d) => {
                w.u8(0);
                w.varint(u64::from(d.0));
            }
            InputKind::Int { reg, default } => {
                w.u8(1);
                w.varint(u64::from(reg.0));
                w.zigzag(default);
            }
        }
    }
    w.len(c.ops.len());
    for op in &c.ops {
        w.op(op);
    }
    w.len(c.outputs.len());
    for o in &c.outputs {
        w.bytes(o.name.as_bytes());
        w.varint(u64::from(o.reg.0));
    }
    w.0
}

fn width_code(width: Width) -> u8 {
    Width::ALL.iter().position(|&x| x == width).unwrap_or(0) as u8
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, b: u8) {
        self.0.push(b);
    }

    fn varint(&mut self, mut v: u64) {
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(low);
                return;
            }
            self.0.push(low | 0x80);
        }
    }

    fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn len(&mut self, n: usize) {
        self.varint(n as u64);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }

    fn value(&mut self, v: Value) {
        match v {
            Value::Imm(i) => {
                self.u8(0);
                self.zigzag(i);
            }
            Value::Reg(r) => {
                self.u8(1);
                self.varint(u64::from(r.0));
            }
        }
    }

    fn fd(&mut self, f: FdRef) {
        match f {
            FdRef::Cwd => self.varint(0),
            FdRef::Std(n) => {
                self.varint(1);
                self.u8(n);
            }
            FdRef::Slot(s) => self.varint(2 + u64::from(s.0)),
        }
    }

    fn path(&mut self, p: PathRef) {
        match p {
            PathRef::Data(d) => self.varint(2 * u64::from(d.0)),
            PathRef::Var(v) => self.varint(2 * u64::from(v.0) + 1),
        }
    }

    fn range(&mut self, r: &BufRange) {
        self.varint(u64::from(r.buf.0));
        self.value(r.start);
        match r.end {
            None => self.u8(0),
            Some(e) => {
                self.u8(1);
                self.value(e);
            }
        }
    }

    /// An operand with its kind tag.
    fn tagged(&mut self, a: &Arg) {
        match a {
            Arg::Value(v) => {
                self.u8(0);
                self.value(*v);
            }
            Arg::Fd(f) => {
                self.u8(1);
                self.fd(*f);
            }
            Arg::Path(p) => {
                self.u8(2);
                self.path(*p);
            }
            Arg::Buf(r) => {
                self.u8(3);
                self.range(r);
            }
        }
    }

    /// An operand whose kind the table gives.
    fn untagged(&mut self, a: &Arg) {
        match a {
            Arg::Value(v) => self.value(*v),
            Arg::Fd(f) => self.fd(*f),
            Arg::Path(p) => self.path(*p),
            Arg::Buf(r) => self.range(r),
        }
    }

    fn ret(&mut self, r: Ret) {
        match r {
            Ret::None => self.u8(0),
            Ret::Reg(r) => {
                self.u8(1);
                self.varint(u64::from(r.0));
            }
            Ret::Fd(s) => {
                self.u8(2);
                self.varint(u64::from(s.0));
            }
        }
    }

    fn op(&mut self, op: &Op) {
        match op {
            Op::Sys { call, args, ret } => {
                let compact = conforms(*call, args, *ret);
                self.u8(if compact { tag::SYS } else { tag::SYS_RAW });
                self.u8(call.spec().code);
                self.ret(*ret);
                if compact {
                    for a in args {
                        self.untagged(a);
                    }
                } else {
                    self.len(args.len());
                    for a in args {
                        self.tagged(a);
                    }
                }
            }
            Op::Arith { dst, op, a, b } => {
                self.u8(tag::ARITH);
                self.u8(op.code());
                self.varint(u64::from(dst.0));
                self.value(*a);
                self.value(*b);
            }
            Op::Mov { dst, src } => {
                self.u8(tag::MOV);
                self.varint(u64::from(dst.0));
                self.value(*src);
            }
            Op::Load {
                dst,
                width,
                buf,
                off,
            } => {
                self.u8(tag::LOAD);
                self.u8(width_code(*width));
                self.varint(u64::from(dst.0));
                self.varint(u64::from(buf.0));
                self.value(*off);
            }
            Op::Store {
                width,
                buf,
                off,
                src,
            } => {
                self.u8(tag::STORE);
                self.u8(width_code(*width));
                self.varint(u64::from(buf.0));
                self.value(*off);
                self.value(*src);
            }
            Op::Jump {
                cond,
                target,
                bound,
            } => {
                self.u8(tag::JUMP);
                self.u8(u8::from(cond.is_some()) | (u8::from(bound.is_some()) << 1));
                if let Some(c) = cond {
                    self.u8(c.op.code());
                    self.value(c.a);
                    self.value(c.b);
                }
                self.varint(u64::from(*target));
                if let Some(b) = bound {
                    self.varint(u64::from(*b));
                }
            }
            Op::Call { dst, func, args } => {
                self.u8(tag::CALL);
                self.varint(dst.map_or(0, |d| 1 + u64::from(d.0)));
                self.bytes(func.as_bytes());
                self.len(args.len());
                for a in args {
                    self.tagged(a);
                }
            }
            Op::MapBegin { source, end } => {
                self.u8(tag::MAP_BEGIN);
                self.varint(u64::from(*end));
                self.source(source);
            }
            Op::MapEnd { begin } => {
                self.u8(tag::MAP_END);
                self.varint(u64::from(*begin));
            }
        }
    }

    fn source(&mut self, s: &MapSource) {
        match s {
            MapSource::Paths { list, var } => {
                self.u8(0);
                self.varint(u64::from(var.0));
                self.len(list.len());
                for d in list {
                    self.varint(u64::from(d.0));
                }
            }
            MapSource::Offsets { list, var } => {
                self.u8(1);
                self.varint(u64::from(var.0));
                self.len(list.len());
                for v in list {
                    self.zigzag(*v);
                }
            }
            MapSource::Range {
                start,
                end,
                step,
                var,
            } => {
                self.u8(2);
                self.varint(u64::from(var.0));
                self.value(*start);
                self.value(*end);
                self.value(*step);
            }
            MapSource::Dirents {
                buf,
                name,
                kind,
                ino,
            } => {
                self.u8(3);
                self.varint(u64::from(name.0));
                self.varint(u64::from(kind.0));
                self.varint(u64::from(ino.0));
                self.range(buf);
            }
        }
    }
}
