//! The canonical printer.
//!
//! The printer writes the inputs, buffers, operations and outputs while recording the order in
//! which registers, fd slots, path variables and data constants are first mentioned — the order
//! in which the parser will create them. When that order would not reproduce a table, it puts
//! a `reg`, `fd`, `var` or `data` declaration listing the whole table in front, so parsing gives
//! back the same tables.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;

use cosy_model::{
    Arg, ArgKind, BufId, BufRange, Compound, DataId, ErrorMode, FdRef, FlagSet, InputKind,
    MapSource, Op, PathRef, Reg, Ret, RetKind, Value,
};

use crate::names;

pub(crate) fn print(c: &Compound) -> String {
    let names = Names::new(c);
    let mut p = Printer {
        c,
        n: &names,
        out: String::new(),
        rec: Recorder::new(c),
    };
    p.inputs();
    p.buffers();
    p.ops();
    p.outputs();
    let Printer { out: body, rec, .. } = p;

    let mut text = String::new();
    if c.mode == ErrorMode::Continue {
        text.push_str("mode continue\n");
    }
    if Recorder::out_of_order(&rec.regs, c.regs.len()) {
        declare(&mut text, "reg", &names.regs);
    }
    if Recorder::out_of_order(&rec.fds, c.fds.len()) {
        declare(&mut text, "fd", &names.fds);
    }
    if Recorder::out_of_order(&rec.paths, c.paths.len()) {
        declare(&mut text, "var", &names.paths);
    }
    if rec.data != names.data {
        text.push_str("data");
        for (bytes, owner) in &names.data {
            text.push(' ');
            match owner {
                Some(i) => {
                    text.push('$');
                    text.push_str(&names.inputs[*i]);
                }
                None => quote(bytes, &mut text),
            }
        }
        text.push('\n');
    }
    text.push_str(&body);
    text
}

fn declare(text: &mut String, keyword: &str, names: &[String]) {
    text.push_str(keyword);
    for n in names {
        text.push(' ');
        text.push_str(n);
    }
    text.push('\n');
}

/// Writes `bytes` as a string literal.
pub(crate) fn quote(bytes: &[u8], out: &mut String) {
    out.push('"');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0 => out.push_str("\\0"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
}

/// The names the text uses, and the data table as the text sees it.
struct Names {
    regs: Vec<String>,
    fds: Vec<String>,
    paths: Vec<String>,
    buffers: Vec<String>,
    inputs: Vec<String>,
    /// The data table: bytes, and the path input owning the constant. Inputs sharing a
    /// constant with an earlier one get their own, appended.
    data: Vec<(Vec<u8>, Option<usize>)>,
    /// Per input: its constant in `data` (path inputs whose constant exists).
    input_slot: Vec<Option<usize>>,
}

impl Names {
    fn new(c: &Compound) -> Self {
        let buffer_names: Vec<String> = c.buffers.iter().map(|b| b.name.clone()).collect();
        let buffers = names::assign(&buffer_names, "buf", |n| {
            names::buffer_name_problem(n).is_none()
        });
        let buffer_set: HashSet<&str> = buffers.iter().map(String::as_str).collect();
        let regs = names::assign(&c.regs, "r", |n| {
            names::reg_name_problem(n, |b| buffer_set.contains(b)).is_none()
        });
        let fds = names::assign(&c.fds, "fd", |n| names::fd_name_problem(n).is_none());
        let paths = names::assign(&c.paths, "p", |_| true);
        let input_names: Vec<String> = c.inputs.iter().map(|i| i.name.clone()).collect();
        let inputs = names::assign(&input_names, "input", |_| true);

        let mut data: Vec<(Vec<u8>, Option<usize>)> =
            c.data.iter().map(|d| (d.clone(), None)).collect();
        let mut input_slot = vec![None; c.inputs.len()];
        for (i, input) in c.inputs.iter().enumerate() {
            if let InputKind::Path(d) = input.kind {
                let k = d.index();
                match data.get_mut(k) {
                    Some(entry) if entry.1.is_none() => {
                        entry.1 = Some(i);
                        input_slot[i] = Some(k);
                    }
                    Some(entry) => {
                        let bytes = entry.0.clone();
                        data.push((bytes, Some(i)));
                        input_slot[i] = Some(data.len() - 1);
                    }
                    None => {}
                }
            }
        }
        Names {
            regs,
            fds,
            paths,
            buffers,
            inputs,
            data,
            input_slot,
        }
    }
}

/// First mentions, in the order the parser meets them.
struct Recorder {
    reg_seen: Vec<bool>,
    regs: Vec<usize>,
    fd_seen: Vec<bool>,
    fds: Vec<usize>,
    path_seen: Vec<bool>,
    paths: Vec<usize>,
    /// The data table the parser builds without a `data` declaration.
    data: Vec<(Vec<u8>, Option<usize>)>,
}

impl Recorder {
    fn new(c: &Compound) -> Self {
        Recorder {
            reg_seen: vec![false; c.regs.len()],
            regs: Vec::new(),
            fd_seen: vec![false; c.fds.len()],
            fds: Vec::new(),
            path_seen: vec![false; c.paths.len()],
            paths: Vec::new(),
            data: Vec::new(),
        }
    }

    fn mention(seen: &mut [bool], order: &mut Vec<usize>, i: usize) {
        if let Some(s) = seen.get_mut(i)
            && !*s
        {
            *s = true;
            order.push(i);
        }
    }

    /// Whether first mentions alone would not create the table `0..len` in order.
    fn out_of_order(order: &[usize], len: usize) -> bool {
        order.len() != len || order.iter().enumerate().any(|(i, &x)| i != x)
    }

    fn literal(&mut self, bytes: &[u8]) {
        if !self
            .data
            .iter()
            .any(|(d, owner)| owner.is_none() && d.as_slice() == bytes)
        {
            self.data.push((bytes.to_vec(), None));
        }
    }
}

struct Printer<'a> {
    c: &'a Compound,
    n: &'a Names,
    out: String,
    rec: Recorder,
}

impl Printer<'_> {
    fn w(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str("    ");
        }
    }

    fn reg(&mut self, r: Reg) {
        let i = r.index();
        match self.n.regs.get(i) {
            Some(name) => {
                Recorder::mention(&mut self.rec.reg_seen, &mut self.rec.regs, i);
                self.out.push_str(name);
            }
            None => {
                let _ = write!(self.out, "?r{i}");
            }
        }
    }

    fn fd_slot(&mut self, i: usize) {
        match self.n.fds.get(i) {
            Some(name) => {
                Recorder::mention(&mut self.rec.fd_seen, &mut self.rec.fds, i);
                self.out.push_str(name);
            }
            None => {
                let _ = write!(self.out, "?f{i}");
            }
        }
    }

    fn path_var(&mut self, i: usize) {
        match self.n.paths.get(i) {
            Some(name) => {
                Recorder::mention(&mut self.rec.path_seen, &mut self.rec.paths, i);
                self.out.push_str(name);
            }
            None => {
                let _ = write!(self.out, "?p{i}");
            }
        }
    }

    fn buffer(&mut self, b: BufId) {
        match self.n.buffers.get(b.index()) {
            Some(name) => self.out.push_str(name),
            None => {
                let _ = write!(self.out, "?b{}", b.index());
            }
        }
    }

    fn value(&mut self, v: Value) {
        match v {
            Value::Imm(i) => {
                let _ = write!(self.out, "{i}");
            }
            Value::Reg(r) => self.reg(r),
        }
    }

    fn fd(&mut self, f: FdRef) {
        match f {
            FdRef::Cwd => self.w("cwd"),
            FdRef::Std(0) => self.w("stdin"),
            FdRef::Std(1) => self.w("stdout"),
            FdRef::Std(2) => self.w("stderr"),
            FdRef::Std(n) => {
                let _ = write!(self.out, "?std{n}");
            }
            FdRef::Slot(s) => self.fd_slot(s.index()),
        }
    }

    fn data(&mut self, d: DataId) {
        match self.n.data.get(d.index()) {
            Some((_, Some(owner))) => {
                self.out.push('$');
                self.out.push_str(&self.n.inputs[*owner]);
            }
            Some((bytes, None)) => {
                self.rec.literal(bytes);
                quote(bytes, &mut self.out);
            }
            None => {
                let _ = write!(self.out, "?d{}", d.index());
            }
        }
    }

    fn path(&mut self, p: PathRef) {
        match p {
            PathRef::Data(d) => self.data(d),
            PathRef::Var(v) => self.path_var(v.index()),
        }
    }

    fn range(&mut self, r: &BufRange) {
        self.buffer(r.buf);
        if r.start == Value::Imm(0) && r.end.is_none() {
            return;
        }
        self.w("[");
        self.value(r.start);
        self.w("..");
        if let Some(e) = r.end {
            self.value(e);
        }
        self.w("]");
    }

    fn operand(&mut self, kind: ArgKind, a: &Arg) {
        match (kind, a) {
            (ArgKind::Fd | ArgKind::DirFd | ArgKind::NewFd, Arg::Fd(f)) => self.fd(*f),
            (ArgKind::Path | ArgKind::Str, Arg::Path(p)) => self.path(*p),
            (ArgKind::BufIn | ArgKind::BufOut, Arg::Buf(r)) => self.range(r),
            (ArgKind::Int, Arg::Value(v)) => self.value(*v),
            (ArgKind::Flags(set), Arg::Value(Value::Imm(i))) => self.flags(set, *i),
            (ArgKind::Flags(_), Arg::Value(v)) => self.value(*v),
            _ => self.w("?operand"),
        }
    }

    fn flags(&mut self, set: FlagSet, v: i64) {
        self.out.push_str(&set.format(v));
    }

    fn name_or_string(&mut self, s: &str) {
        if names::is_ident(s) {
            self.w(s);
        } else {
            quote(s.as_bytes(), &mut self.out);
        }
    }

    // ----- sections -----------------------------------------------------------------------

    fn inputs(&mut self) {
        let (c, n) = (self.c, self.n);
        for (i, input) in c.inputs.iter().enumerate() {
            let name = &n.inputs[i];
            match input.kind {
                InputKind::Path(d) => {
                    let _ = write!(self.out, "input path {name} = ");
                    match n.input_slot[i] {
                        Some(slot) => {
                            let bytes = &n.data[slot].0;
                            self.rec.data.push((bytes.clone(), Some(i)));
                            quote(bytes, &mut self.out);
                        }
                        None => {
                            let _ = write!(self.out, "?d{}", d.index());
                        }
                    }
                }
                InputKind::Int { reg, default } => {
                    let _ = write!(self.out, "input int {name} = {default}");
                    if n.regs.get(reg.index()) == Some(name) {
                        // The short form names the register by the input's name.
                        Recorder::mention(&mut self.rec.reg_seen, &mut self.rec.regs, reg.index());
                    } else {
                        self.w(" as ");
                        self.reg(reg);
                    }
                }
            }
            self.w("\n");
        }
    }

    fn buffers(&mut self) {
        for (i, b) in self.c.buffers.iter().enumerate() {
            let _ = write!(self.out, "buffer {} {}", self.n.buffers[i], b.size);
            if b.local {
                self.w(" local");
            }
            self.w("\n");
        }
    }

    fn ops(&mut self) {
        let c = self.c;
        let len = c.ops.len();
        let targets: BTreeSet<usize> = c
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Jump { target, .. } => usize::try_from(*target).ok().filter(|t| *t <= len),
                _ => None,
            })
            .collect();
        let mut depth = 0usize;
        for (i, op) in c.ops.iter().enumerate() {
            let d = if matches!(op, Op::MapEnd { .. }) {
                depth.saturating_sub(1)
            } else {
                depth
            };
            if targets.contains(&i) {
                self.indent(d);
                let _ = writeln!(self.out, "L{i}:");
            }
            self.indent(d);
            self.op(op);
            self.w("\n");
            depth = match op {
                Op::MapBegin { .. } => d + 1,
                _ => d,
            };
        }
        if targets.contains(&len) {
            let _ = writeln!(self.out, "L{len}:");
        }
    }

    fn outputs(&mut self) {
        for o in &self.c.outputs {
            self.w("output ");
            self.name_or_string(&o.name);
            if self.n.regs.get(o.reg.index()) == Some(&o.name) {
                Recorder::mention(&mut self.rec.reg_seen, &mut self.rec.regs, o.reg.index());
            } else {
                self.w(" = ");
                self.reg(o.reg);
            }
            self.w("\n");
        }
    }

    fn op(&mut self, op: &Op) {
        match op {
            Op::Sys { call, args, ret } => {
                let spec = call.spec();
                match (ret, spec.ret) {
                    (Ret::None, _) => {}
                    (Ret::Reg(r), RetKind::Value) => {
                        self.reg(*r);
                        self.w(" = ");
                    }
                    (Ret::Fd(s), RetKind::Fd) => {
                        self.fd_slot(s.index());
                        self.w(" = ");
                    }
                    _ => self.w("?result = "),
                }
                self.w(spec.name);
                for (i, a) in args.iter().enumerate() {
                    self.w(" ");
                    match spec.args.get(i) {
                        Some(s) => self.operand(s.kind, a),
                        None => self.w("?operand"),
                    }
                }
            }
            Op::Arith { dst, op, a, b } => {
                self.reg(*dst);
                self.w(" = ");
                self.value(*a);
                let _ = write!(self.out, " {} ", op.symbol());
                self.value(*b);
            }
            Op::Mov { dst, src } => {
                self.reg(*dst);
                self.w(" = ");
                self.value(*src);
            }
            Op::Load {
                dst,
                width,
                buf,
                off,
            } => {
                self.reg(*dst);
                let _ = write!(self.out, " = load {} ", width.name());
                self.buffer(*buf);
                self.w(" ");
                self.value(*off);
            }
            Op::Store {
                width,
                buf,
                off,
                src,
            } => {
                let _ = write!(self.out, "store {} ", width.name());
                self.buffer(*buf);
                self.w(" ");
                self.value(*off);
                self.w(" ");
                self.value(*src);
            }
            Op::Jump {
                cond,
                target,
                bound,
            } => {
                if let Some(c) = cond {
                    self.w("if ");
                    self.value(c.a);
                    let _ = write!(self.out, " {} ", c.op.symbol());
                    self.value(c.b);
                    self.w(" ");
                }
                let _ = write!(self.out, "goto L{target}");
                if let Some(b) = bound {
                    let _ = write!(self.out, " bound {b}");
                }
            }
            Op::Call { dst, func, args } => {
                if let Some(d) = dst {
                    self.reg(*d);
                    self.w(" = ");
                }
                self.w("call ");
                self.name_or_string(func);
                for a in args {
                    self.w(" ");
                    match a {
                        Arg::Value(v) => self.value(*v),
                        Arg::Buf(r) => self.range(r),
                        Arg::Path(PathRef::Data(d)) => self.data(*d),
                        Arg::Fd(_) | Arg::Path(PathRef::Var(_)) => self.w("?operand"),
                    }
                }
            }
            Op::MapBegin { source, .. } => self.map_begin(source),
            Op::MapEnd { .. } => self.w("}"),
        }
    }

    fn map_begin(&mut self, source: &MapSource) {
        self.w("map ");
        match source {
            MapSource::Paths { list, var } => {
                self.path_var(var.index());
                self.w(" in paths(");
                for (i, d) in list.iter().enumerate() {
                    if i > 0 {
                        self.w(", ");
                    }
                    self.data(*d);
                }
                self.w(")");
            }
            MapSource::Offsets { list, var } => {
                self.reg(*var);
                self.w(" in offsets(");
                for (i, v) in list.iter().enumerate() {
                    let sep = if i > 0 { ", " } else { "" };
                    let _ = write!(self.out, "{sep}{v}");
                }
                self.w(")");
            }
            MapSource::Range {
                start,
                end,
                step,
                var,
            } => {
                self.reg(*var);
                self.w(" in range(");
                self.value(*start);
                self.w(", ");
                self.value(*end);
                self.w(", ");
                self.value(*step);
                self.w(")");
            }
            MapSource::Dirents {
                buf,
                name,
                kind,
                ino,
            } => {
                self.path_var(name.index());
                let var = self.n.paths.get(name.index());
                let short = var.is_some_and(|v| {
                    self.n.regs.get(kind.index()) == Some(&format!("{v}.type"))
                        && self.n.regs.get(ino.index()) == Some(&format!("{v}.ino"))
                });
                if short {
                    Recorder::mention(&mut self.rec.reg_seen, &mut self.rec.regs, kind.index());
                    Recorder::mention(&mut self.rec.reg_seen, &mut self.rec.regs, ino.index());
                } else {
                    self.w(", ");
                    self.reg(*kind);
                    self.w(", ");
                    self.reg(*ino);
                }
                self.w(" in dirents(");
                self.range(buf);
                self.w(")");
            }
        }
        self.w(" {");
    }
}
