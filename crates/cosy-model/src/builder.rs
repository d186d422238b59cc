//! The builder: writing compounds from safe Rust (the thesis's Cosy-Lib).
//!
//! Each call method appends an operation and returns a handle to its result — a [`Reg`] for a
//! value, an [`FdRef`] for a descriptor — that later calls take directly as operands, so the
//! data dependencies of the program are the dependencies of the compound. Flags are typed
//! ([`crate::flags`]), comparisons are [`Comparison`]s made by [`Reg::eq`], [`Reg::gt`]…,
//! function operands are anything [`IntoFnArgs`].
//!
//! ```
//! use cosy_model::{Builder, FdRef, flags::{Mode, OFlags}};
//! let mut c = Builder::new();
//! let path = c.input_path("path", "/etc/hostname");
//! let buf = c.buffer("buf", 4096);
//! let fd = c.openat(FdRef::Cwd, path, OFlags::RDONLY, Mode::empty());
//! let n = c.read(fd, buf);
//! c.close(fd);
//! c.output("bytes", n);
//! let compound = c.finish();
//! assert_eq!(compound.ops.len(), 3);
//! ```
//!
//! Loops, one form for each need (docs/api.md):
//!
//! - [`Builder::do_while`]: the body runs, then a condition computed in it decides whether it
//!   runs again (read until a short read);
//! - [`Builder::while_`]: the condition first, then the body;
//! - [`Builder::loop_`]: a body that leaves with [`Builder::break_if`] (or goes round again
//!   early with [`Builder::continue_if`]) wherever the condition is known;
//! - maps, whose iterations are independent (the executors may run them concurrently):
//!   [`Builder::map_paths`] over a list of paths, [`Builder::map_offsets`] over a list of
//!   integers, [`Builder::map_range`] over `start, start+step, …` and
//!   [`Builder::map_dirents`] over the entries a getdents64(2) read.
//!
//! Every loop that goes back has a bound: the number of times the back edge may be taken in
//! a run; once more stops the run with a loop-bound error (docs/semantics.md).

use std::collections::{HashMap, HashSet};

use crate::compound::*;
use crate::flags::{
    Access, AtFlags, FlagBits, Mode, OFlags, PipeFlags, RenameFlags, ResolveFlags, SpliceFlags,
    StatxFlags, Whence, XattrFlags,
};
use crate::ops::{ArgKind, RetKind, Sys};

/// A flag operand of a builder method: the typed flags `F` (a constant), or a [`Reg`] holding
/// bits computed at run time — the one way to pass raw bits, for what only the running
/// compound knows (a mode loaded from a statx(2) result, to copy a file's permissions).
pub trait FlagOperand<F> {
    /// The operand of the IR.
    fn into_value(self) -> Value;
}

impl<F: FlagBits> FlagOperand<F> for F {
    fn into_value(self) -> Value {
        Value::Imm(self.to_operand())
    }
}

impl<F: FlagBits> FlagOperand<F> for Reg {
    fn into_value(self) -> Value {
        Value::Reg(self)
    }
}

/// A comparison operator: the only operators a condition may use (arithmetic has
/// [`BinOp`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `a == b`.
    Eq,
    /// `a != b`.
    Ne,
    /// `a < b` (signed).
    Lt,
    /// `a <= b` (signed).
    Le,
    /// `a > b` (signed).
    Gt,
    /// `a >= b` (signed).
    Ge,
}

impl CmpOp {
    /// The operator that holds exactly when this one does not.
    pub fn negate(self) -> Self {
        match self {
            CmpOp::Eq => CmpOp::Ne,
            CmpOp::Ne => CmpOp::Eq,
            CmpOp::Lt => CmpOp::Ge,
            CmpOp::Ge => CmpOp::Lt,
            CmpOp::Gt => CmpOp::Le,
            CmpOp::Le => CmpOp::Gt,
        }
    }

    /// The operator of the IR.
    pub fn bin_op(self) -> BinOp {
        match self {
            CmpOp::Eq => BinOp::Eq,
            CmpOp::Ne => BinOp::Ne,
            CmpOp::Lt => BinOp::Lt,
            CmpOp::Le => BinOp::Le,
            CmpOp::Gt => BinOp::Gt,
            CmpOp::Ge => BinOp::Ge,
        }
    }

    /// The comparison an IR operator is, if it is one.
    pub fn from_bin_op(op: BinOp) -> Option<Self> {
        Some(match op {
            BinOp::Eq => CmpOp::Eq,
            BinOp::Ne => CmpOp::Ne,
            BinOp::Lt => CmpOp::Lt,
            BinOp::Le => CmpOp::Le,
            BinOp::Gt => CmpOp::Gt,
            BinOp::Ge => CmpOp::Ge,
            _ => return None,
        })
    }
}

/// A condition of the builder's control flow, `a OP b`: made by [`Reg::eq`], [`Reg::lt`]…
/// (or [`Value::eq`]…), taken by [`Builder::if_`], [`Builder::do_while`] and the other
/// loops. Its operator is a [`CmpOp`], so a condition is always a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Comparison {
    /// The operator.
    pub op: CmpOp,
    /// Left operand.
    pub a: Value,
    /// Right operand.
    pub b: Value,
}

impl Comparison {
    /// `a OP b`.
    pub fn new(a: impl Into<Value>, op: CmpOp, b: impl Into<Value>) -> Self {
        Comparison {
            op,
            a: a.into(),
            b: b.into(),
        }
    }

    /// The comparison that holds exactly when this one does not.
    pub fn negate(self) -> Self {
        Comparison {
            op: self.op.negate(),
            ..self
        }
    }
}

impl From<Comparison> for Cond {
    fn from(c: Comparison) -> Self {
        Cond {
            op: c.op.bin_op(),
            a: c.a,
            b: c.b,
        }
    }
}

macro_rules! comparisons {
    ($t:ty) => {
        impl $t {
            /// `self == b`, a condition.
            pub fn eq(self, b: impl Into<Value>) -> Comparison {
                Comparison::new(self, CmpOp::Eq, b)
            }

            /// `self != b`, a condition.
            pub fn ne(self, b: impl Into<Value>) -> Comparison {
                Comparison::new(self, CmpOp::Ne, b)
            }

            /// `self < b` (signed), a condition.
            pub fn lt(self, b: impl Into<Value>) -> Comparison {
                Comparison::new(self, CmpOp::Lt, b)
            }

            /// `self <= b` (signed), a condition.
            pub fn le(self, b: impl Into<Value>) -> Comparison {
                Comparison::new(self, CmpOp::Le, b)
            }

            /// `self > b` (signed), a condition.
            pub fn gt(self, b: impl Into<Value>) -> Comparison {
                Comparison::new(self, CmpOp::Gt, b)
            }

            /// `self >= b` (signed), a condition.
            pub fn ge(self, b: impl Into<Value>) -> Comparison {
                Comparison::new(self, CmpOp::Ge, b)
            }
        }
    };
}

comparisons!(Reg);
comparisons!(Value);

impl From<BufId> for BufRange {
    fn from(b: BufId) -> Self {
        BufRange::whole(b)
    }
}

impl BufId {
    /// `self[start..end]`.
    pub fn slice(self, start: impl Into<Value>, end: impl Into<Value>) -> BufRange {
        BufRange {
            buf: self,
            start: start.into(),
            end: Some(end.into()),
        }
    }

    /// `self[0..end]`: the first `end` bytes.
    pub fn prefix(self, end: impl Into<Value>) -> BufRange {
        self.slice(0, end)
    }
}

/// A buffer of the arena as the builder hands it out: its id and its size, so that
/// `buf.len()` is a value (a constant) like any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Buf {
    id: BufId,
    size: u32,
}

impl Buf {
    /// The buffer's id in the compound.
    pub fn id(self) -> BufId {
        self.id
    }

    /// The buffer's size in bytes, as a value.
    pub fn len(self) -> i64 {
        i64::from(self.size)
    }

    /// Whether the buffer has no bytes.
    pub fn is_empty(self) -> bool {
        self.size == 0
    }

    /// `self[start..end]`.
    pub fn slice(self, start: impl Into<Value>, end: impl Into<Value>) -> BufRange {
        self.id.slice(start, end)
    }

    /// `self[0..end]`: the first `end` bytes.
    pub fn prefix(self, end: impl Into<Value>) -> BufRange {
        self.id.prefix(end)
    }

    /// `self[start..]`: the bytes from `start` to the end.
    pub fn suffix(self, start: impl Into<Value>) -> BufRange {
        BufRange {
            buf: self.id,
            start: start.into(),
            end: None,
        }
    }

    /// The whole buffer.
    pub fn whole(self) -> BufRange {
        BufRange::whole(self.id)
    }
}

impl From<Buf> for BufId {
    fn from(b: Buf) -> Self {
        b.id
    }
}

impl From<Buf> for BufRange {
    fn from(b: Buf) -> Self {
        BufRange::whole(b.id)
    }
}

/// One operand of a function call ([`Builder::call`]): an integer ([`Reg`], [`Value`],
/// `i64`), a buffer range ([`BufRange`], [`Buf`], [`BufId`]) or a constant's bytes
/// ([`DataId`] from [`Builder::data`], or [`PathRef::Data`]).
pub trait FnOperand {
    /// The operand of the IR.
    fn into_arg(self) -> Arg;
}

/// The operands of a function call: one [`FnOperand`], a tuple of them (`(buf.prefix(n),
/// word)`), an array or vector of one kind, or `()` for none.
pub trait IntoFnArgs {
    /// The operands of the IR, in order.
    fn into_fn_args(self) -> Vec<Arg>;
}

macro_rules! fn_operand {
    ($($t:ty => |$x:ident| $e:expr),* $(,)?) => {$(
        impl FnOperand for $t {
            fn into_arg(self) -> Arg {
                let $x = self;
                $e
            }
        }
        impl IntoFnArgs for $t {
            fn into_fn_args(self) -> Vec<Arg> {
                vec![self.into_arg()]
            }
        }
    )*};
}

fn_operand!(
    Reg => |r| Arg::Value(Value::Reg(r)),
    Value => |v| Arg::Value(v),
    i64 => |v| Arg::Value(Value::Imm(v)),
    BufRange => |r| Arg::Buf(r),
    Buf => |b| Arg::Buf(b.into()),
    BufId => |b| Arg::Buf(b.into()),
    PathRef => |p| Arg::Path(p),
    DataId => |d| Arg::Path(PathRef::Data(d)),
    Arg => |a| a,
);

impl IntoFnArgs for () {
    fn into_fn_args(self) -> Vec<Arg> {
        Vec::new()
    }
}

impl<T: FnOperand, const N: usize> IntoFnArgs for [T; N] {
    fn into_fn_args(self) -> Vec<Arg> {
        self.into_iter().map(FnOperand::into_arg).collect()
    }
}

impl<T: FnOperand> IntoFnArgs for Vec<T> {
    fn into_fn_args(self) -> Vec<Arg> {
        self.into_iter().map(FnOperand::into_arg).collect()
    }
}

macro_rules! fn_tuple {
    ($($n:ident),+) => {
        impl<$($n: FnOperand),+> IntoFnArgs for ($($n,)+) {
            #[allow(non_snake_case)]
            fn into_fn_args(self) -> Vec<Arg> {
                let ($($n,)+) = self;
                vec![$($n.into_arg()),+]
            }
        }
    };
}

fn_tuple!(A);
fn_tuple!(A, B);
fn_tuple!(A, B, C);
fn_tuple!(A, B, C, D);
fn_tuple!(A, B, C, D, E);
fn_tuple!(A, B, C, D, E, F);

/// A loop of [`Builder::loop_`] (or [`Builder::while_`]), for [`Builder::break_if`] and
/// [`Builder::continue_if`] in its body. Only lent to the body, so it cannot outlive the
/// loop.
#[derive(Debug)]
pub struct Loop {
    index: usize,
}

/// The jumps of an open loop waiting for their targets.
#[derive(Debug, Default)]
struct LoopJumps {
    breaks: Vec<u32>,
    continues: Vec<u32>,
}

/// The bindings of one directory entry inside [`Builder::map_dirents`].
#[derive(Clone, Copy, Debug)]
pub struct Dirent {
    /// The entry's name, relative to the directory read.
    pub name: PathRef,
    /// Its `d_type`.
    pub kind: Reg,
    /// Its inode number.
    pub ino: Reg,
}

/// The namespaces in which the builder keeps names unique.
#[derive(Clone, Copy)]
enum Space {
    Reg,
    Fd,
    Path,
    Buffer,
}

/// The names taken in one namespace, and the next suffix to try for each base name (so naming
/// stays constant-time however often a base repeats).
#[derive(Debug, Default)]
struct Names {
    taken: HashSet<String>,
    next: HashMap<String, u32>,
}

/// Builds a [`Compound`] operation by operation.
#[derive(Debug, Default)]
pub struct Builder {
    c: Compound,
    names: [Names; 4],
    loops: Vec<LoopJumps>,
}

impl Builder {
    /// An empty compound in the stop-at-first-failure mode.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the error mode.
    pub fn mode(&mut self, mode: ErrorMode) -> &mut Self {
        self.c.mode = mode;
        self
    }

    /// Returns the compound built so far.
    pub fn finish(self) -> Compound {
        self.c
    }

    /// The compound built so far.
    pub fn compound(&self) -> &Compound {
        &self.c
    }

    /// `base`, or `base_N` with the smallest N not yet taken in namespace `space`.
    fn unique(&mut self, space: Space, base: &str) -> String {
        let names = &mut self.names[space as usize];
        if names.taken.insert(base.to_string()) {
            return base.to_string();
        }
        let next = names.next.entry(base.to_string()).or_insert(1);
        loop {
            let candidate = format!("{base}_{next}");
            *next += 1;
            if names.taken.insert(candidate.clone()) {
                return candidate;
            }
        }
    }

    /// A fresh register; `name` is made unique with a numeric suffix.
    pub fn reg(&mut self, name: &str) -> Reg {
        let n = self.unique(Space::Reg, name);
        self.c.regs.push(n);
        Reg((self.c.regs.len() - 1) as u16)
    }

    /// A fresh fd slot.
    pub fn fd_slot(&mut self, name: &str) -> FdSlot {
        let n = self.unique(Space::Fd, name);
        self.c.fds.push(n);
        FdSlot((self.c.fds.len() - 1) as u16)
    }

    fn path_var(&mut self, name: &str) -> PathVar {
        let n = self.unique(Space::Path, name);
        self.c.paths.push(n);
        PathVar((self.c.paths.len() - 1) as u16)
    }

    /// A data constant (shared with an equal earlier one that is not an input).
    pub fn data(&mut self, bytes: impl AsRef<[u8]>) -> DataId {
        let bytes = bytes.as_ref();
        let input_data: Vec<DataId> = self
            .c
            .inputs
            .iter()
            .filter_map(|i| match i.kind {
                InputKind::Path(d) => Some(d),
                InputKind::Int { .. } => None,
            })
            .collect();
        if let Some(i) = self
            .c
            .data
            .iter()
            .enumerate()
            .position(|(i, d)| d == bytes && !input_data.contains(&DataId(i as u16)))
        {
            return DataId(i as u16);
        }
        self.c.data.push(bytes.to_vec());
        DataId((self.c.data.len() - 1) as u16)
    }

    /// A constant path.
    pub fn path(&mut self, path: impl AsRef<[u8]>) -> PathRef {
        PathRef::Data(self.data(path))
    }

    /// A path input named `name` with a default.
    pub fn input_path(&mut self, name: &str, default: impl AsRef<[u8]>) -> PathRef {
        self.c.data.push(default.as_ref().to_vec());
        let d = DataId((self.c.data.len() - 1) as u16);
        self.c.inputs.push(Input {
            name: name.into(),
            kind: InputKind::Path(d),
        });
        PathRef::Data(d)
    }

    /// An integer input named `name` with a default; its register is named `name` too.
    pub fn input_int(&mut self, name: &str, default: i64) -> Reg {
        let reg = self.reg(name);
        self.c.inputs.push(Input {
            name: name.into(),
            kind: InputKind::Int { reg, default },
        });
        reg
    }

    /// A buffer of the arena, `size` bytes, zeroed when the run starts.
    pub fn buffer(&mut self, name: &str, size: u32) -> Buf {
        self.push_buffer(name, size, false)
    }

    /// A buffer private to each map iteration (zeroed for each).
    pub fn local_buffer(&mut self, name: &str, size: u32) -> Buf {
        self.push_buffer(name, size, true)
    }

    fn push_buffer(&mut self, name: &str, size: u32, local: bool) -> Buf {
        let name = self.unique(Space::Buffer, name);
        self.c.buffers.push(Buffer { name, size, local });
        Buf {
            id: BufId((self.c.buffers.len() - 1) as u16),
            size,
        }
    }

    /// Reports register `reg` as the result `name`.
    pub fn output(&mut self, name: &str, reg: Reg) {
        self.c.outputs.push(Output {
            name: name.into(),
            reg,
        });
    }

    /// Index the next operation will have.
    pub fn here(&self) -> u32 {
        self.c.ops.len() as u32
    }

    /// Appends an operation as it is.
    pub fn push(&mut self, op: Op) -> u32 {
        self.c.ops.push(op);
        self.here() - 1
    }

    /// Appends any system call of the table with operands as the IR holds them; the result
    /// goes to a fresh register or fd slot named after the call. The escape hatch under the
    /// typed methods, for code that handles every row of the table alike (generators,
    /// translators from other formats).
    pub fn sys(&mut self, call: Sys, args: Vec<Arg>) -> Ret {
        let ret = match call.spec().ret {
            RetKind::Value => Ret::Reg(self.reg(result_name(call))),
            RetKind::Fd => Ret::Fd(self.fd_slot("fd")),
        };
        self.push(Op::Sys { call, args, ret });
        ret
    }

    fn sys_value(&mut self, call: Sys, args: Vec<Arg>) -> Reg {
        match self.sys(call, args) {
            Ret::Reg(r) => r,
            // The table's Value rows always give a register (see `sys`).
            Ret::Fd(_) | Ret::None => unreachable!("{} returns a value", call.name()),
        }
    }

    fn sys_fd(&mut self, call: Sys, args: Vec<Arg>) -> FdRef {
        match self.sys(call, args) {
            Ret::Fd(s) => FdRef::Slot(s),
            Ret::Reg(_) | Ret::None => unreachable!("{} returns an fd", call.name()),
        }
    }

    /// Like [`Builder::sys`], the result discarded.
    pub fn sys_discard(&mut self, call: Sys, args: Vec<Arg>) {
        debug_assert!(
            call.spec()
                .args
                .iter()
                .all(|a| a.kind != ArgKind::NewFd || args.len() == call.spec().args.len())
        );
        self.push(Op::Sys {
            call,
            args,
            ret: Ret::None,
        });
    }

    /// Appends a no-op (an io_uring NOP on the ring); returns 0.
    pub fn nop(&mut self) -> Reg {
        self.sys_value(Sys::Nop, vec![])
    }

    /// getpid(2).
    pub fn getpid(&mut self) -> Reg {
        self.sys_value(Sys::Getpid, vec![])
    }

    /// getppid(2).
    pub fn getppid(&mut self) -> Reg {
        self.sys_value(Sys::Getppid, vec![])
    }

    /// openat(2): opens `path` relative to `dir` (under a policy root, openat2(2) with
    /// `RESOLVE_BENEATH`); `mode` counts with `O_CREAT` or `O_TMPFILE` only.
    pub fn openat(
        &mut self,
        dir: FdRef,
        path: PathRef,
        flags: impl FlagOperand<OFlags>,
        mode: impl FlagOperand<Mode>,
    ) -> FdRef {
        self.sys_fd(
            Sys::Openat,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Value(flags.into_value()),
                Arg::Value(mode.into_value()),
            ],
        )
    }

    /// openat2(2): openat(2) with `RESOLVE_*` restrictions on the walk.
    pub fn openat2(
        &mut self,
        dir: FdRef,
        path: PathRef,
        flags: impl FlagOperand<OFlags>,
        mode: impl FlagOperand<Mode>,
        resolve: impl FlagOperand<ResolveFlags>,
    ) -> FdRef {
        self.sys_fd(
            Sys::Openat2,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Value(flags.into_value()),
                Arg::Value(mode.into_value()),
                Arg::Value(resolve.into_value()),
            ],
        )
    }

    /// close(2): closes the descriptor and empties its slot.
    pub fn close(&mut self, fd: FdRef) -> Reg {
        self.sys_value(Sys::Close, vec![Arg::Fd(fd)])
    }

    /// read(2): reads into `buf` (a whole buffer or a range) at the file position; returns
    /// the bytes read (0 at the end of the file).
    pub fn read(&mut self, fd: FdRef, buf: impl Into<BufRange>) -> Reg {
        self.sys_value(Sys::Read, vec![Arg::Fd(fd), Arg::Buf(buf.into())])
    }

    /// pread(2).
    pub fn pread(&mut self, fd: FdRef, buf: impl Into<BufRange>, off: impl Into<Value>) -> Reg {
        self.sys_value(
            Sys::Pread,
            vec![Arg::Fd(fd), Arg::Buf(buf.into()), Arg::Value(off.into())],
        )
    }

    /// write(2): writes the bytes of `buf` at the file position; returns the bytes written.
    pub fn write(&mut self, fd: FdRef, buf: impl Into<BufRange>) -> Reg {
        self.sys_value(Sys::Write, vec![Arg::Fd(fd), Arg::Buf(buf.into())])
    }

    /// pwrite(2).
    pub fn pwrite(&mut self, fd: FdRef, buf: impl Into<BufRange>, off: impl Into<Value>) -> Reg {
        self.sys_value(
            Sys::Pwrite,
            vec![Arg::Fd(fd), Arg::Buf(buf.into()), Arg::Value(off.into())],
        )
    }

    /// lseek(2): moves the file position of `fd` (a plain descriptor) to `off` from
    /// `whence`; returns the new position.
    pub fn lseek(
        &mut self,
        fd: FdRef,
        off: impl Into<Value>,
        whence: impl FlagOperand<Whence>,
    ) -> Reg {
        self.sys_value(
            Sys::Lseek,
            vec![
                Arg::Fd(fd),
                Arg::Value(off.into()),
                Arg::Value(whence.into_value()),
            ],
        )
    }

    /// statx(2): a `struct statx` of `path` into `buf` (at least
    /// [`STATX_BYTES`](crate::flags::STATX_BYTES) bytes; the `STATX_*_OFFSET` constants of
    /// [`crate::flags`] locate its fields for [`Builder::load`]).
    pub fn statx(
        &mut self,
        dir: FdRef,
        path: PathRef,
        flags: impl FlagOperand<AtFlags>,
        mask: impl FlagOperand<StatxFlags>,
        buf: impl Into<BufRange>,
    ) -> Reg {
        self.sys_value(
            Sys::Statx,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Value(flags.into_value()),
                Arg::Value(mask.into_value()),
                Arg::Buf(buf.into()),
            ],
        )
    }

    /// fstat through statx(2) with `AT_EMPTY_PATH`.
    pub fn fstat(&mut self, fd: FdRef, buf: impl Into<BufRange>) -> Reg {
        self.sys_value(Sys::Fstat, vec![Arg::Fd(fd), Arg::Buf(buf.into())])
    }

    /// getdents64(2): directory entries of `fd` into `buf` (walk them with
    /// [`Builder::map_dirents`]); returns the bytes filled, 0 at the end.
    pub fn getdents64(&mut self, fd: FdRef, buf: impl Into<BufRange>) -> Reg {
        self.sys_value(Sys::Getdents64, vec![Arg::Fd(fd), Arg::Buf(buf.into())])
    }

    /// mkdirat(2).
    pub fn mkdirat(&mut self, dir: FdRef, path: PathRef, mode: impl FlagOperand<Mode>) -> Reg {
        self.sys_value(
            Sys::Mkdirat,
            vec![Arg::Fd(dir), Arg::Path(path), Arg::Value(mode.into_value())],
        )
    }

    /// unlinkat(2): removes a name (a directory with [`AtFlags::REMOVEDIR`]).
    pub fn unlinkat(&mut self, dir: FdRef, path: PathRef, flags: impl FlagOperand<AtFlags>) -> Reg {
        self.sys_value(
            Sys::Unlinkat,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Value(flags.into_value()),
            ],
        )
    }

    /// renameat2(2).
    pub fn renameat2(
        &mut self,
        olddir: FdRef,
        old: PathRef,
        newdir: FdRef,
        new: PathRef,
        flags: impl FlagOperand<RenameFlags>,
    ) -> Reg {
        self.sys_value(
            Sys::Renameat2,
            vec![
                Arg::Fd(olddir),
                Arg::Path(old),
                Arg::Fd(newdir),
                Arg::Path(new),
                Arg::Value(flags.into_value()),
            ],
        )
    }

    /// fsync(2).
    pub fn fsync(&mut self, fd: FdRef) -> Reg {
        self.sys_value(Sys::Fsync, vec![Arg::Fd(fd)])
    }

    /// fdatasync(2).
    pub fn fdatasync(&mut self, fd: FdRef) -> Reg {
        self.sys_value(Sys::Fdatasync, vec![Arg::Fd(fd)])
    }

    /// ftruncate(2).
    pub fn ftruncate(&mut self, fd: FdRef, len: impl Into<Value>) -> Reg {
        self.sys_value(Sys::Ftruncate, vec![Arg::Fd(fd), Arg::Value(len.into())])
    }

    /// copy_file_range(2); offsets of -1 use the file positions.
    pub fn copy_file_range(
        &mut self,
        fd_in: FdRef,
        off_in: impl Into<Value>,
        fd_out: FdRef,
        off_out: impl Into<Value>,
        len: impl Into<Value>,
    ) -> Reg {
        self.sys_value(
            Sys::CopyFileRange,
            vec![
                Arg::Fd(fd_in),
                Arg::Value(off_in.into()),
                Arg::Fd(fd_out),
                Arg::Value(off_out.into()),
                Arg::Value(len.into()),
                Arg::Value(Value::Imm(0)),
            ],
        )
    }

    /// splice(2); offsets of -1 pass NULL.
    pub fn splice(
        &mut self,
        fd_in: FdRef,
        off_in: impl Into<Value>,
        fd_out: FdRef,
        off_out: impl Into<Value>,
        len: impl Into<Value>,
        flags: impl FlagOperand<SpliceFlags>,
    ) -> Reg {
        self.sys_value(
            Sys::Splice,
            vec![
                Arg::Fd(fd_in),
                Arg::Value(off_in.into()),
                Arg::Fd(fd_out),
                Arg::Value(off_out.into()),
                Arg::Value(len.into()),
                Arg::Value(flags.into_value()),
            ],
        )
    }

    /// sendfile(2); an offset of -1 uses the file position.
    pub fn sendfile(
        &mut self,
        out_fd: FdRef,
        in_fd: FdRef,
        off: impl Into<Value>,
        count: impl Into<Value>,
    ) -> Reg {
        self.sys_value(
            Sys::Sendfile,
            vec![
                Arg::Fd(out_fd),
                Arg::Fd(in_fd),
                Arg::Value(off.into()),
                Arg::Value(count.into()),
            ],
        )
    }

    /// pipe2(2): returns (read end, write end).
    pub fn pipe2(&mut self, flags: impl FlagOperand<PipeFlags>) -> (FdRef, FdRef) {
        let r = self.fd_slot("pipe_r");
        let w = self.fd_slot("pipe_w");
        let ret = Ret::Reg(self.reg("rc"));
        self.push(Op::Sys {
            call: Sys::Pipe2,
            args: vec![
                Arg::Fd(FdRef::Slot(r)),
                Arg::Fd(FdRef::Slot(w)),
                Arg::Value(flags.into_value()),
            ],
            ret,
        });
        (FdRef::Slot(r), FdRef::Slot(w))
    }

    /// linkat(2): `new` becomes another name of `old` ([`AtFlags::SYMLINK_FOLLOW`] in
    /// `flags` links what a symbolic link `old` points to instead of the link).
    pub fn linkat(
        &mut self,
        olddir: FdRef,
        old: PathRef,
        newdir: FdRef,
        new: PathRef,
        flags: impl FlagOperand<AtFlags>,
    ) -> Reg {
        self.sys_value(
            Sys::Linkat,
            vec![
                Arg::Fd(olddir),
                Arg::Path(old),
                Arg::Fd(newdir),
                Arg::Path(new),
                Arg::Value(flags.into_value()),
            ],
        )
    }

    /// symlinkat(2): a symbolic link `link` holding `target` (a string the kernel does not
    /// resolve; under a policy root it must be relative without `..`).
    pub fn symlinkat(&mut self, target: PathRef, dir: FdRef, link: PathRef) -> Reg {
        self.sys_value(
            Sys::Symlinkat,
            vec![Arg::Path(target), Arg::Fd(dir), Arg::Path(link)],
        )
    }

    /// readlinkat(2): the target of the symbolic link `path` into `buf`; returns its length.
    pub fn readlinkat(&mut self, dir: FdRef, path: PathRef, buf: impl Into<BufRange>) -> Reg {
        self.sys_value(
            Sys::Readlinkat,
            vec![Arg::Fd(dir), Arg::Path(path), Arg::Buf(buf.into())],
        )
    }

    /// fchmodat2(2) (fchmodat(2) when `flags` is empty).
    pub fn fchmodat(
        &mut self,
        dir: FdRef,
        path: PathRef,
        mode: impl FlagOperand<Mode>,
        flags: impl FlagOperand<AtFlags>,
    ) -> Reg {
        self.sys_value(
            Sys::Fchmodat,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Value(mode.into_value()),
                Arg::Value(flags.into_value()),
            ],
        )
    }

    /// fchownat(2); an owner or group of -1 is left unchanged.
    pub fn fchownat(
        &mut self,
        dir: FdRef,
        path: PathRef,
        owner: impl Into<Value>,
        group: impl Into<Value>,
        flags: impl FlagOperand<AtFlags>,
    ) -> Reg {
        self.sys_value(
            Sys::Fchownat,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Value(owner.into()),
                Arg::Value(group.into()),
                Arg::Value(flags.into_value()),
            ],
        )
    }

    /// utimensat(2) with the `struct timespec[2]` in `times` (at least
    /// [`TIMES_BYTES`](crate::flags::TIMES_BYTES) bytes; `UTIME_NOW` and `UTIME_OMIT` in a
    /// `tv_nsec` as in the man page).
    pub fn utimensat(
        &mut self,
        dir: FdRef,
        path: PathRef,
        times: impl Into<BufRange>,
        flags: impl FlagOperand<AtFlags>,
    ) -> Reg {
        self.sys_value(
            Sys::Utimensat,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Buf(times.into()),
                Arg::Value(flags.into_value()),
            ],
        )
    }

    /// fgetxattr(2): the value of attribute `name` into `value`; returns its length.
    pub fn fgetxattr(&mut self, fd: FdRef, name: PathRef, value: impl Into<BufRange>) -> Reg {
        self.sys_value(
            Sys::Fgetxattr,
            vec![Arg::Fd(fd), Arg::Path(name), Arg::Buf(value.into())],
        )
    }

    /// fsetxattr(2): attribute `name` set to the bytes of `value` (a plain descriptor;
    /// [`XattrFlags::CREATE`], [`XattrFlags::REPLACE`] or none in `flags`).
    pub fn fsetxattr(
        &mut self,
        fd: FdRef,
        name: PathRef,
        value: impl Into<BufRange>,
        flags: impl FlagOperand<XattrFlags>,
    ) -> Reg {
        self.sys_value(
            Sys::Fsetxattr,
            vec![
                Arg::Fd(fd),
                Arg::Path(name),
                Arg::Buf(value.into()),
                Arg::Value(flags.into_value()),
            ],
        )
    }

    /// flistxattr(2): the attribute names (each NUL-terminated) into `list`; returns their
    /// total length.
    pub fn flistxattr(&mut self, fd: FdRef, list: impl Into<BufRange>) -> Reg {
        self.sys_value(Sys::Flistxattr, vec![Arg::Fd(fd), Arg::Buf(list.into())])
    }

    /// faccessat2(2): checks `mode` ([`Access::EXISTS`], or bits of [`Access::READ_OK`],
    /// [`Access::WRITE_OK`], [`Access::EXEC_OK`]) on `path`; 0 or an error.
    pub fn faccessat2(
        &mut self,
        dir: FdRef,
        path: PathRef,
        mode: impl FlagOperand<Access>,
        flags: impl FlagOperand<AtFlags>,
    ) -> Reg {
        self.sys_value(
            Sys::Faccessat2,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Value(mode.into_value()),
                Arg::Value(flags.into_value()),
            ],
        )
    }

    /// `a OP b` into a fresh register.
    pub fn arith(&mut self, op: BinOp, a: impl Into<Value>, b: impl Into<Value>) -> Reg {
        let dst = self.reg("t");
        self.push(Op::Arith {
            dst,
            op,
            a: a.into(),
            b: b.into(),
        });
        dst
    }

    /// `a + b` into a fresh register.
    pub fn add(&mut self, a: impl Into<Value>, b: impl Into<Value>) -> Reg {
        self.arith(BinOp::Add, a, b)
    }

    /// `dst = src`.
    pub fn set(&mut self, dst: Reg, src: impl Into<Value>) {
        self.push(Op::Mov {
            dst,
            src: src.into(),
        });
    }

    /// `dst += v` (the form a map body may use on registers defined outside it).
    pub fn accumulate(&mut self, dst: Reg, v: impl Into<Value>) {
        self.push(Op::Arith {
            dst,
            op: BinOp::Add,
            a: Value::Reg(dst),
            b: v.into(),
        });
    }

    /// A fresh register holding `v`.
    pub fn value(&mut self, name: &str, v: impl Into<Value>) -> Reg {
        let r = self.reg(name);
        self.set(r, v);
        r
    }

    /// Loads a little-endian integer from the arena.
    pub fn load(&mut self, width: Width, buf: impl Into<BufId>, off: impl Into<Value>) -> Reg {
        let dst = self.reg("v");
        self.push(Op::Load {
            dst,
            width,
            buf: buf.into(),
            off: off.into(),
        });
        dst
    }

    /// Stores a little-endian integer into the arena.
    pub fn store(
        &mut self,
        width: Width,
        buf: impl Into<BufId>,
        off: impl Into<Value>,
        v: impl Into<Value>,
    ) {
        self.push(Op::Store {
            width,
            buf: buf.into(),
            off: off.into(),
            src: v.into(),
        });
    }

    /// Calls a built-in (`find`, `count_lines`, `checksum`) or registered user function with
    /// `args` (one operand, a tuple, an array: [`IntoFnArgs`]); its result in a fresh
    /// register.
    pub fn call(&mut self, func: &str, args: impl IntoFnArgs) -> Reg {
        let dst = self.reg(&format!("{func}.r"));
        self.push(Op::Call {
            dst: Some(dst),
            func: func.into(),
            args: args.into_fn_args(),
        });
        dst
    }

    fn jump(&mut self, cond: Option<Comparison>, target: u32, bound: Option<u32>) -> u32 {
        self.push(Op::Jump {
            cond: cond.map(Cond::from),
            target,
            bound,
        })
    }

    fn patch(&mut self, jumps: &[u32], to: u32) {
        for j in jumps {
            if let Some(Op::Jump { target, .. }) = self.c.ops.get_mut(*j as usize) {
                *target = to;
            }
        }
    }

    /// `do { body } while (cond)`: `body` returns the condition (computed in it) under which
    /// it runs again; the way back is taken at most `bound` times.
    pub fn do_while(&mut self, bound: u32, body: impl FnOnce(&mut Self) -> Comparison) {
        let top = self.here();
        let c = body(self);
        self.jump(Some(c), top, Some(bound));
    }

    /// `while (cond) { body }`: `cond` emits what computes the condition (it runs before
    /// each iteration) and returns it; the way back is taken at most `bound` times.
    pub fn while_(
        &mut self,
        bound: u32,
        cond: impl FnOnce(&mut Self) -> Comparison,
        body: impl FnOnce(&mut Self),
    ) {
        self.loop_(bound, |c, l| {
            let go_on = cond(c);
            c.break_if(l, go_on.negate());
            body(c);
        });
    }

    /// `loop { body }`, left by [`Builder::break_if`] or [`Builder::break_`] on the [`Loop`]
    /// the body is lent; the way back is taken at most `bound` times (a body that never
    /// breaks stops the run with a loop-bound error once that many are done).
    pub fn loop_(&mut self, bound: u32, body: impl FnOnce(&mut Self, &Loop)) {
        let top = self.here();
        let index = self.loops.len();
        self.loops.push(LoopJumps::default());
        let l = Loop { index };
        body(self, &l);
        let jumps = self.loops.pop().unwrap_or_default();
        let latch = self.here();
        self.patch(&jumps.continues, latch);
        self.jump(None, top, Some(bound));
        let end = self.here();
        self.patch(&jumps.breaks, end);
    }

    fn loop_jump(&mut self, l: &Loop, cond: Option<Comparison>, is_break: bool) {
        let j = self.jump(cond, 0, None);
        // A `Loop` is only lent to its body, so its jumps are still open here.
        if let Some(jumps) = self.loops.get_mut(l.index) {
            if is_break {
                jumps.breaks.push(j);
            } else {
                jumps.continues.push(j);
            }
        }
    }

    /// Leaves loop `l` when `cond` holds.
    pub fn break_if(&mut self, l: &Loop, cond: Comparison) {
        self.loop_jump(l, Some(cond), true);
    }

    /// Leaves loop `l`.
    pub fn break_(&mut self, l: &Loop) {
        self.loop_jump(l, None, true);
    }

    /// Goes on with the next iteration of loop `l` when `cond` holds (skipping the rest of
    /// the body; counts against the bound like any way back).
    pub fn continue_if(&mut self, l: &Loop, cond: Comparison) {
        self.loop_jump(l, Some(cond), false);
    }

    /// Goes on with the next iteration of loop `l`.
    pub fn continue_(&mut self, l: &Loop) {
        self.loop_jump(l, None, false);
    }

    /// `if (cond) { body }`.
    pub fn if_(&mut self, cond: Comparison, body: impl FnOnce(&mut Self)) {
        let skip = self.jump(Some(cond.negate()), 0, None);
        body(self);
        let end = self.here();
        self.patch(&[skip], end);
    }

    /// `if (cond) { then } else { otherwise }`.
    pub fn if_else(
        &mut self,
        cond: Comparison,
        then: impl FnOnce(&mut Self),
        otherwise: impl FnOnce(&mut Self),
    ) {
        let to_else = self.jump(Some(cond.negate()), 0, None);
        then(self);
        let to_end = self.jump(None, 0, None);
        let else_ = self.here();
        self.patch(&[to_else], else_);
        otherwise(self);
        let end = self.here();
        self.patch(&[to_end], end);
    }

    fn map(&mut self, source: MapSource, body: impl FnOnce(&mut Self)) {
        let begin = self.push(Op::MapBegin { source, end: 0 });
        body(self);
        let end = self.push(Op::MapEnd { begin });
        if let Op::MapBegin { end: e, .. } = &mut self.c.ops[begin as usize] {
            *e = end;
        }
    }

    /// A map over a list of paths known when building: `body` runs once per path with the
    /// path bound (the iterations are independent: the executors may run them concurrently).
    pub fn map_paths<P: AsRef<[u8]>>(
        &mut self,
        paths: impl IntoIterator<Item = P>,
        body: impl FnOnce(&mut Self, PathRef),
    ) {
        let list = paths.into_iter().map(|p| self.data(p)).collect();
        let var = self.path_var("p");
        self.map(MapSource::Paths { list, var }, |b| {
            body(b, PathRef::Var(var))
        });
    }

    /// A map over a list of integers known when building (offsets of a file, say): `body`
    /// runs once per integer, bound to the register it is given.
    pub fn map_offsets(&mut self, list: Vec<i64>, body: impl FnOnce(&mut Self, Reg)) {
        let var = self.reg("o");
        self.map(MapSource::Offsets { list, var }, |b| body(b, var));
    }

    /// A map over `start, start+step, …` below `end` (each may be a register; a step of 0
    /// or less stops the run): `body` runs once per value, bound to the register it is given.
    pub fn map_range(
        &mut self,
        start: impl Into<Value>,
        end: impl Into<Value>,
        step: impl Into<Value>,
        body: impl FnOnce(&mut Self, Reg),
    ) {
        let var = self.reg("i");
        let source = MapSource::Range {
            start: start.into(),
            end: end.into(),
            step: step.into(),
            var,
        };
        self.map(source, |b| body(b, var));
    }

    /// A map over the entries of a getdents64(2) result in `buf` (`.` and `..` skipped):
    /// pass `buf.prefix(len)` with the length getdents64 returned.
    pub fn map_dirents(&mut self, buf: impl Into<BufRange>, body: impl FnOnce(&mut Self, Dirent)) {
        let buf = buf.into();
        let name = self.path_var("e");
        let var = self.c.paths[name.index()].clone();
        let kind = self.reg(&format!("{var}.type"));
        let ino = self.reg(&format!("{var}.ino"));
        let source = MapSource::Dirents {
            buf,
            name,
            kind,
            ino,
        };
        self.map(source, |b| {
            body(
                b,
                Dirent {
                    name: PathRef::Var(name),
                    kind,
                    ino,
                },
            )
        });
    }
}

/// The name of the register the builder gives a call's result (not the mnemonic itself, which
/// the text format reserves).
fn result_name(call: Sys) -> &'static str {
    match call {
        Sys::Read
        | Sys::Pread
        | Sys::Write
        | Sys::Pwrite
        | Sys::Readlinkat
        | Sys::Fgetxattr
        | Sys::Flistxattr => "n",
        Sys::CopyFileRange | Sys::Splice | Sys::Sendfile => "copied",
        Sys::Getdents64 => "len",
        Sys::Getpid | Sys::Getppid => "pid",
        Sys::Lseek => "pos",
        _ => "rc",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{Mode, OFlags};

    #[test]
    fn every_comparison_is_an_ir_comparison_and_negates_to_its_complement() {
        let ops = [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ];
        let holds = |op: CmpOp, a: i64, b: i64| match op {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        };
        for op in ops {
            assert_eq!(CmpOp::from_bin_op(op.bin_op()), Some(op));
            assert_eq!(op.negate().negate(), op);
            for (a, b) in [(1, 2), (2, 2), (3, 2)] {
                assert_ne!(holds(op, a, b), holds(op.negate(), a, b), "{op:?} {a} {b}");
            }
        }
        assert_eq!(CmpOp::from_bin_op(BinOp::Div), None);
        assert_eq!(CmpOp::from_bin_op(BinOp::Add), None);
    }

    #[test]
    fn comparisons_on_registers_become_the_jump_condition() {
        let mut c = Builder::new();
        let n = c.value("n", 0);
        c.do_while(9, |_| n.ge(4096));
        let ops = &c.compound().ops;
        assert_eq!(
            ops[1],
            Op::Jump {
                cond: Some(Cond {
                    op: BinOp::Ge,
                    a: Value::Reg(n),
                    b: Value::Imm(4096)
                }),
                target: 1,
                bound: Some(9),
            }
        );
    }

    #[test]
    fn loop_jumps_target_the_latch_and_the_end() {
        let mut c = Builder::new();
        let i = c.value("i", 0); // op 0
        c.loop_(5, |c, l| {
            c.accumulate(i, 1); // op 1
            c.continue_if(l, i.lt(2)); // op 2
            c.break_if(l, i.eq(4)); // op 3
            c.nop(); // op 4
        }); // latch: op 5
        c.nop(); // op 6
        let ops = &c.compound().ops;
        let target = |k: usize| match &ops[k] {
            Op::Jump { target, bound, .. } => (*target, *bound),
            other => panic!("op {k} is {other:?}"),
        };
        assert_eq!(target(2), (5, None), "continue goes to the latch");
        assert_eq!(target(3), (6, None), "break goes past the latch");
        assert_eq!(target(5), (1, Some(5)), "the latch goes back to the top");
    }

    #[test]
    fn typed_flags_become_the_operand_bits() {
        let mut c = Builder::new();
        let p = c.path("/x");
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC;
        let mode = c.value("mode", 0o640);
        c.openat(FdRef::Cwd, p, flags, Mode::from_raw_mode(0o600));
        c.openat(FdRef::Cwd, p, flags, mode);
        let ops = &c.compound().ops;
        let args = |k: usize| match &ops[k] {
            Op::Sys { args, .. } => args.clone(),
            other => panic!("op {k} is {other:?}"),
        };
        let bits = i64::from(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC);
        assert_eq!(args(1)[2], Arg::Value(Value::Imm(bits)));
        assert_eq!(args(1)[3], Arg::Value(Value::Imm(0o600)));
        assert_eq!(args(2)[3], Arg::Value(Value::Reg(mode)));
    }

    #[test]
    fn function_operands_keep_their_order_and_kinds() {
        let mut c = Builder::new();
        let buf = c.buffer("b", 8);
        let d = c.data("needle");
        let x = c.value("x", 1);
        c.call("f", (buf.slice(1, 3), x, 7i64, d));
        c.call("g", ());
        c.call("h", [x, x]);
        let args = |k: usize| match &c.compound().ops[k] {
            Op::Call { args, .. } => args.clone(),
            other => panic!("op {k} is {other:?}"),
        };
        assert_eq!(
            args(1),
            vec![
                Arg::Buf(buf.id().slice(1, 3)),
                Arg::Value(Value::Reg(x)),
                Arg::Value(Value::Imm(7)),
                Arg::Path(PathRef::Data(d)),
            ]
        );
        assert!(args(2).is_empty());
        assert_eq!(args(3), vec![Arg::Value(Value::Reg(x)); 2]);
    }
}
