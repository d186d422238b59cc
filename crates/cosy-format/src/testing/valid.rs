//! The generator of `valid_compound()`: what the verifier should accept.
//!
//! Control flow is structured so the dataflow is easy to follow: a block is a sequence of
//! operations, maps, forward skips (`if c goto end; block; end:`) and bounded loops
//! (`top: block; if c goto top bound N`). The state tracks what holds on every path (`defined`,
//! `open`) and on some path (`written`, `opened`), as the verifier's dataflow does.

use cosy_model::flags;
use cosy_model::{
    Arg, ArgKind, BUILTINS, BinOp, BufId, BufRange, Compound, Cond, FdRef, FdSlot, InputKind,
    MapSource, Op, PathRef, PathVar, Reg, Ret, RetKind, Sys, Value, Width,
};

use super::Gen;

/// What the valid generator knows at a point of the program.
#[derive(Clone)]
pub(super) struct ValidState {
    /// Registers written on every path to here.
    pub(super) defined: Vec<bool>,
    /// Registers written on some path to here.
    written: Vec<bool>,
    /// Fd slots opened on every path to here.
    open: Vec<bool>,
    /// Fd slots opened on some path to here.
    opened: Vec<bool>,
    /// Path variables bound by the enclosing maps.
    bound_paths: Vec<PathVar>,
    /// Number of enclosing maps.
    depth: usize,
    /// Inside a loop: no maps (the back edge would bring values into them from later code).
    in_loop: bool,
    /// `written` and `opened` at the start of the innermost enclosing map.
    outer_written: Vec<bool>,
    outer_opened: Vec<bool>,
}

impl ValidState {
    pub(super) fn new(c: &Compound) -> Self {
        let mut defined = vec![false; c.regs.len()];
        for i in &c.inputs {
            if let InputKind::Int { reg, .. } = i.kind {
                defined[reg.index()] = true;
            }
        }
        ValidState {
            written: defined.clone(),
            outer_written: vec![false; c.regs.len()],
            defined,
            open: vec![false; c.fds.len()],
            opened: vec![false; c.fds.len()],
            outer_opened: vec![false; c.fds.len()],
            bound_paths: Vec::new(),
            depth: 0,
            in_loop: false,
        }
    }

    fn write(&mut self, r: Reg) {
        self.defined[r.index()] = true;
        self.written[r.index()] = true;
    }

    fn open(&mut self, s: FdSlot) {
        self.open[s.index()] = true;
        self.opened[s.index()] = true;
    }

    /// Registers the current code may read: written on every path; inside a map, not from
    /// before it (those are accumulators or values other iterations may change).
    fn readable(&self, i: usize) -> bool {
        self.defined[i] && (self.depth == 0 || !self.outer_written[i])
    }

    /// Registers the current code may write: inside a map, none that may hold a value from
    /// before it.
    fn writable(&self, i: usize) -> bool {
        self.depth == 0 || !self.outer_written[i]
    }

    /// Fd slots the current code may open into or close: inside a map, none that may be open
    /// from before it.
    fn fd_ownable(&self, i: usize) -> bool {
        self.depth == 0 || !self.outer_opened[i]
    }
}

/// The flags `names` (of `cosy_model::flags`) or'ed together.
fn flag(names: &[&str]) -> i64 {
    names
        .iter()
        .map(|n| flags::constant(n).unwrap_or(0))
        .fold(0, |a, b| a | b)
}

impl Gen<'_> {
    fn choose(&mut self, ok: Vec<usize>) -> Option<usize> {
        (!ok.is_empty()).then(|| ok[self.t.below(ok.len())])
    }

    fn valid_value(&mut self, st: &ValidState) -> Value {
        if self.t.chance(40) {
            let ok = (0..st.defined.len()).filter(|&i| st.readable(i)).collect();
            if let Some(i) = self.choose(ok) {
                return Value::Reg(Reg(i as u16));
            }
        }
        Value::Imm(self.t.below(1 << 12) as i64)
    }

    fn writable_reg(&mut self, st: &ValidState) -> Option<Reg> {
        let ok = (0..self.c.regs.len()).filter(|&i| st.writable(i)).collect();
        self.choose(ok).map(|i| Reg(i as u16))
    }

    /// A register written on no path so far (for a map's variables).
    fn fresh_reg(&mut self, st: &ValidState) -> Option<Reg> {
        let ok = (0..self.c.regs.len()).filter(|&i| !st.written[i]).collect();
        self.choose(ok).map(|i| Reg(i as u16))
    }

    /// A path variable no enclosing map binds.
    fn unbound_path_var(&mut self, st: &ValidState) -> Option<PathVar> {
        let ok = (0..self.c.paths.len())
            .filter(|&i| !st.bound_paths.contains(&PathVar(i as u16)))
            .collect();
        self.choose(ok).map(|i| PathVar(i as u16))
    }

    /// A buffer of at least `min` bytes the current code may read (`write: false`) or write:
    /// outside maps the shared buffers; in a map body local buffers (and shared ones, read
    /// only); in nested map bodies nothing is written.
    fn usable_buffer(&mut self, st: &ValidState, min: u32, write: bool) -> Option<BufId> {
        let ok = (0..self.c.buffers.len())
            .filter(|&i| {
                let b = &self.c.buffers[i];
                let place = match (st.depth, write) {
                    (0, _) => !b.local,
                    (_, false) => true,
                    (1, true) => b.local,
                    (_, true) => false,
                };
                b.size >= min && place
            })
            .collect();
        self.choose(ok).map(|i| BufId(i as u16))
    }

    fn valid_range(&mut self, st: &ValidState, min: u32, write: bool) -> Option<BufRange> {
        let buf = self.usable_buffer(st, min, write)?;
        let size = self.c.buffers[buf.index()].size as usize;
        let min = min as usize;
        Some(if self.t.chance(50) {
            BufRange::whole(buf)
        } else {
            let start = self.t.below(size - min + 1);
            let end = start + min + self.t.below(size - start - min + 1);
            BufRange {
                buf,
                start: Value::Imm(start as i64),
                end: Some(Value::Imm(end as i64)),
            }
        })
    }

    fn open_fd(&mut self, st: &ValidState, owned: bool) -> Option<FdSlot> {
        let ok = (0..st.open.len())
            .filter(|&i| st.open[i] && (!owned || st.fd_ownable(i)))
            .collect();
        self.choose(ok).map(|i| FdSlot(i as u16))
    }

    fn new_fd(&mut self, st: &ValidState) -> Option<FdSlot> {
        let ok = (0..self.c.fds.len())
            .filter(|&i| st.fd_ownable(i))
            .collect();
        self.choose(ok).map(|i| FdSlot(i as u16))
    }

    /// The value of the flags (or mode) operand `name` of `call`: combinations a program would
    /// pass, which on the paths of `valid_paths` (files, directories, a symlink, names that do
    /// not exist yet, the empty path) succeed or fail in every interesting way. A 0 choice is
    /// no flag at all (and mode 0). `open` holds an open's flags and mode once chosen.
    fn valid_flags(&mut self, call: Sys, name: &str, open: &mut Option<(i64, i64)>) -> i64 {
        match (call, name) {
            (Sys::Openat | Sys::Openat2, "flags" | "mode") => {
                let (flags, mode) = *open.get_or_insert_with(|| self.open_flags());
                if name == "flags" { flags } else { mode }
            }
            (Sys::Openat2, "resolve") => *self.t.pick(&[
                0,
                0,
                0,
                flag(&["RESOLVE_NO_SYMLINKS"]),
                flag(&["RESOLVE_BENEATH"]),
                flag(&["RESOLVE_NO_XDEV"]),
                flag(&["RESOLVE_NO_MAGICLINKS"]),
            ]),
            (Sys::Pipe2, _) => *self.t.pick(&[0, flag(&["O_CLOEXEC"]), flag(&["O_DIRECT"])]),
            (Sys::Statx, "flags") => *self.t.pick(&[
                0,
                flag(&["AT_SYMLINK_NOFOLLOW"]),
                flag(&["AT_EMPTY_PATH"]),
                flag(&["AT_SYMLINK_NOFOLLOW", "AT_EMPTY_PATH"]),
                flag(&["AT_NO_AUTOMOUNT"]),
                flag(&["AT_STATX_DONT_SYNC"]),
            ]),
            (Sys::Statx, _) => *self.t.pick(&[
                0,
                flag(&["STATX_BASIC_STATS"]),
                flag(&["STATX_SIZE"]),
                flag(&["STATX_TYPE", "STATX_MODE"]),
                flag(&["STATX_INO", "STATX_SIZE"]),
            ]),
            (Sys::Unlinkat, _) => *self.t.pick(&[0, flag(&["AT_REMOVEDIR"])]),
            (Sys::Renameat2, _) => *self.t.pick(&[
                0,
                flag(&["RENAME_NOREPLACE"]),
                flag(&["RENAME_EXCHANGE"]),
                flag(&["RENAME_WHITEOUT"]),
                flag(&["RENAME_NOREPLACE", "RENAME_WHITEOUT"]),
            ]),
            (Sys::Mkdirat, _) => *self.t.pick(&[0, 0o755, 0o700, 0o777]),
            (Sys::Lseek, _) => *self.t.pick(&[
                flag(&["SEEK_SET"]),
                flag(&["SEEK_CUR"]),
                flag(&["SEEK_END"]),
            ]),
            (Sys::Splice, _) => {
                *self
                    .t
                    .pick(&[0, flag(&["SPLICE_F_MOVE"]), flag(&["SPLICE_F_MORE"])])
            }
            _ => 0,
        }
    }

    /// The flags and mode of an open, in the shapes programs use: reading (a file, a directory
    /// with `O_DIRECTORY`, refusing a symlink with `O_NOFOLLOW`), writing an existing file (in
    /// place, appending, truncating), creating (`O_CREAT`, maybe `O_EXCL`, truncating or
    /// appending; or an unnamed `O_TMPFILE` in a directory) with a mode, and a directory
    /// opened for writing (which fails). `O_CLOEXEC` or not throughout.
    /// Under `COSY_GEN_FLAGS=all` writing opens are `O_WRONLY` or `O_RDWR` (else `O_RDWR`), and
    /// creating ones may be `O_EXCL`.
    fn open_flags(&mut self) -> (i64, i64) {
        let cloexec = if self.t.chance(50) {
            flag(&["O_CLOEXEC"])
        } else {
            0
        };
        // O_WRONLY only under COSY_GEN_FLAGS=all (see super::ENV_GEN_FLAGS).
        let write = if super::all_flags() {
            *self.t.pick(&[flag(&["O_RDWR"]), flag(&["O_WRONLY"])])
        } else {
            flag(&["O_RDWR"])
        };
        let (flags, mode) = match self.t.below(8) {
            0 | 1 => (
                *self
                    .t
                    .pick(&[0, flag(&["O_DIRECTORY"]), flag(&["O_NOFOLLOW"])]),
                0,
            ),
            2 | 3 => (
                write | *self.t.pick(&[0, flag(&["O_APPEND"]), flag(&["O_TRUNC"])]),
                0,
            ),
            4..=6 => {
                let mode = *self.t.pick(&[0o644, 0o600, 0o755, 0o444, 0]);
                if self.t.chance(10) {
                    (write | flag(&["O_TMPFILE"]), mode)
                } else {
                    // O_EXCL only under COSY_GEN_FLAGS=all (see super::ENV_GEN_FLAGS).
                    let excl = if super::all_flags() && self.t.chance(30) {
                        flag(&["O_EXCL"])
                    } else {
                        0
                    };
                    let then = *self.t.pick(&[0, flag(&["O_TRUNC"]), flag(&["O_APPEND"])]);
                    (write | flag(&["O_CREAT"]) | excl | then, mode)
                }
            }
            _ => (write | flag(&["O_DIRECTORY"]), 0),
        };
        (flags | cloexec, mode)
    }

    fn valid_sys(&mut self, st: &mut ValidState) -> Option<Op> {
        let call = *self.t.pick(Sys::ALL);
        let spec = call.spec();
        let mut args = Vec::with_capacity(spec.args.len());
        let mut new_fds = Vec::new();
        // An open's flags and mode are chosen together (a mode only for creating opens).
        let mut open = None;
        let min_buf = u32::try_from(spec.min_buf).unwrap_or(u32::MAX);
        for a in spec.args {
            args.push(match a.kind {
                ArgKind::Fd if call == Sys::Close => Arg::Fd(FdRef::Slot(self.open_fd(st, true)?)),
                ArgKind::Fd => Arg::Fd(match self.open_fd(st, false) {
                    Some(s) if self.t.chance(80) => FdRef::Slot(s),
                    _ => FdRef::Std(1 + self.t.below(2) as u8),
                }),
                ArgKind::DirFd => Arg::Fd(match self.open_fd(st, false) {
                    Some(s) if self.t.chance(30) => FdRef::Slot(s),
                    _ => FdRef::Cwd,
                }),
                ArgKind::NewFd => {
                    let s = self.new_fd(st)?;
                    new_fds.push(s);
                    Arg::Fd(FdRef::Slot(s))
                }
                ArgKind::Path | ArgKind::Str => Arg::Path(match st.bound_paths.len() {
                    n if n > 0 && self.t.chance(50) => {
                        PathRef::Var(st.bound_paths[self.t.below(n)])
                    }
                    _ => PathRef::Data(self.data_id()),
                }),
                ArgKind::BufIn => Arg::Buf(self.valid_range(st, min_buf, false)?),
                ArgKind::BufOut => Arg::Buf(self.valid_range(st, min_buf, true)?),
                ArgKind::Int => Arg::Value(self.valid_value(st)),
                ArgKind::Flags(_) => {
                    Arg::Value(Value::Imm(self.valid_flags(call, a.name, &mut open)))
                }
            });
        }
        if new_fds.len() == 2 && new_fds[0] == new_fds[1] {
            return None;
        }
        let ret = match spec.ret {
            RetKind::Value => match self.writable_reg(st) {
                Some(r) => {
                    st.write(r);
                    Ret::Reg(r)
                }
                None => Ret::None,
            },
            RetKind::Fd => {
                let s = self.new_fd(st)?;
                st.open(s);
                Ret::Fd(s)
            }
        };
        for s in new_fds {
            st.open(s);
        }
        if call == Sys::Close
            && let Some(Arg::Fd(FdRef::Slot(s))) = args.first()
        {
            st.open[s.index()] = false;
        }
        Some(Op::Sys { call, args, ret })
    }

    fn valid_op(&mut self, st: &mut ValidState) -> Option<Op> {
        Some(match self.t.below(7) {
            0 | 1 => return self.valid_sys(st),
            2 => {
                let op = *self.t.pick(&BinOp::ALL);
                let a = self.valid_value(st);
                let b = match op {
                    BinOp::Div | BinOp::Rem => Value::Imm(1 + self.t.below(100) as i64),
                    _ => self.valid_value(st),
                };
                let dst = self.writable_reg(st)?;
                st.write(dst);
                Op::Arith { dst, op, a, b }
            }
            3 => {
                // Inside a map, accumulate into a register defined before it.
                if st.depth > 0 {
                    let ok = (0..st.defined.len())
                        .filter(|&i| st.defined[i] && st.outer_written[i])
                        .collect();
                    if let Some(r) = self.choose(ok).map(|i| Reg(i as u16)) {
                        let b = self.valid_value(st);
                        return Some(Op::Arith {
                            dst: r,
                            op: BinOp::Add,
                            a: Value::Reg(r),
                            b,
                        });
                    }
                }
                let src = self.valid_value(st);
                let dst = self.writable_reg(st)?;
                st.write(dst);
                Op::Mov { dst, src }
            }
            4 | 5 => {
                let width = *self.t.pick(&Width::ALL);
                let w = width.bytes() as u32;
                let store = self.t.chance(50);
                let buf = self.usable_buffer(st, w, store)?;
                let size = self.c.buffers[buf.index()].size;
                let off = Value::Imm(self.t.below((size - w) as usize + 1) as i64);
                if store {
                    let src = self.valid_value(st);
                    Op::Store {
                        width,
                        buf,
                        off,
                        src,
                    }
                } else {
                    let dst = self.writable_reg(st)?;
                    st.write(dst);
                    Op::Load {
                        dst,
                        width,
                        buf,
                        off,
                    }
                }
            }
            _ => {
                let func = *self.t.pick(BUILTINS);
                let n = if func == "find" { 2 } else { 1 };
                let mut args = Vec::new();
                for _ in 0..n {
                    args.push(Arg::Buf(self.valid_range(st, 0, false)?));
                }
                let dst = self.writable_reg(st);
                if let Some(d) = dst {
                    st.write(d);
                }
                Op::Call {
                    dst,
                    func: func.to_string(),
                    args,
                }
            }
        })
    }

    fn valid_cond(&mut self, st: &ValidState) -> Cond {
        let ops = [
            BinOp::Eq,
            BinOp::Ne,
            BinOp::Lt,
            BinOp::Le,
            BinOp::Gt,
            BinOp::Ge,
        ];
        Cond {
            op: *self.t.pick(&ops),
            a: self.valid_value(st),
            b: self.valid_value(st),
        }
    }

    /// A block of items: operations, maps, forward skips and bounded loops.
    pub(super) fn valid_block(&mut self, st: &mut ValidState, nesting: usize) {
        let items = if nesting == 0 { 48 } else { self.t.below(5) };
        let mut done = 0;
        while done < items && self.t.more() {
            done += 1;
            match self.t.below(10) {
                0 if st.depth < 2 && !st.in_loop => self.valid_map(st, nesting),
                1 if nesting < 3 => {
                    // if (cond) goto end; block; end:
                    let cond = self.valid_cond(st);
                    let jump = self.c.ops.len();
                    self.c.ops.push(Op::Jump {
                        cond: Some(cond),
                        target: 0,
                        bound: None,
                    });
                    let (defined, open) = (st.defined.clone(), st.open.clone());
                    self.valid_block(st, nesting + 1);
                    (st.defined, st.open) = (defined, open);
                    let end = self.c.ops.len() as u32;
                    if let Some(Op::Jump { target, .. }) = self.c.ops.get_mut(jump) {
                        *target = end;
                    }
                }
                2 if nesting < 3 => {
                    // top: block; if (cond) goto top bound N
                    let top = self.c.ops.len() as u32;
                    let in_loop = std::mem::replace(&mut st.in_loop, true);
                    self.valid_block(st, nesting + 1);
                    st.in_loop = in_loop;
                    let cond = self.valid_cond(st);
                    let bound = Some(1 + self.t.below(100) as u32);
                    self.c.ops.push(Op::Jump {
                        cond: Some(cond),
                        target: top,
                        bound,
                    });
                }
                _ => {
                    if let Some(op) = self.valid_op(st) {
                        self.c.ops.push(op);
                    }
                }
            }
        }
    }

    fn valid_map(&mut self, st: &mut ValidState, nesting: usize) {
        let saved = st.clone();
        let mut inner = st.clone();
        inner.outer_written = st.written.clone();
        inner.outer_opened = st.opened.clone();
        inner.depth += 1;
        let source = match self.t.below(4) {
            0 => {
                let Some(var) = self.unbound_path_var(st) else {
                    return;
                };
                inner.bound_paths.push(var);
                let n = self.t.below(4);
                MapSource::Paths {
                    list: (0..n).map(|_| self.data_id()).collect(),
                    var,
                }
            }
            1 | 2 => {
                let Some(var) = self.fresh_reg(st) else {
                    return;
                };
                let source = if self.t.chance(50) {
                    let n = self.t.below(5);
                    MapSource::Offsets {
                        list: (0..n).map(|_| self.t.below(1 << 16) as i64).collect(),
                        var,
                    }
                } else {
                    MapSource::Range {
                        start: Value::Imm(0),
                        end: Value::Imm(self.t.below(8) as i64),
                        step: Value::Imm(1 + self.t.below(3) as i64),
                        var,
                    }
                };
                inner.write(var);
                source
            }
            _ => {
                let Some(buf) = self.usable_buffer(st, 0, false) else {
                    return;
                };
                let Some(name) = self.unbound_path_var(st) else {
                    return;
                };
                let (Some(kind), Some(ino)) = (self.fresh_reg(st), self.fresh_reg(st)) else {
                    return;
                };
                if kind == ino {
                    return;
                }
                inner.bound_paths.push(name);
                inner.write(kind);
                inner.write(ino);
                MapSource::Dirents {
                    buf: BufRange::whole(buf),
                    name,
                    kind,
                    ino,
                }
            }
        };
        let begin = self.c.ops.len();
        self.c.ops.push(Op::MapBegin { source, end: 0 });
        self.valid_block(&mut inner, nesting + 1);
        let end = self.c.ops.len();
        self.c.ops.push(Op::MapEnd {
            begin: begin as u32,
        });
        if let Some(Op::MapBegin { end: e, .. }) = self.c.ops.get_mut(begin) {
            *e = end as u32;
        }
        // Nothing a body writes or opens survives its map.
        *st = saved;
    }
}
