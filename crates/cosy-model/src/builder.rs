//! The builder: writing compounds from safe Rust (the thesis's Cosy-Lib).
//!
//! Each call method appends an operation and returns a handle to its result — a [`Reg`] for a
//! value, an [`FdRef`] for a descriptor — that later calls take directly as operands, so the
//! data dependencies of the program are the dependencies of the compound.
//!
//! ```
//! use cosy_model::{Builder, FdRef, flags};
//! let mut c = Builder::new();
//! let path = c.input_path("path", "/etc/hostname");
//! let buf = c.buffer("buf", 4096);
//! let fd = c.openat(FdRef::Cwd, path, libc::O_RDONLY as i64, 0);
//! let n = c.read(fd, buf);
//! c.close(fd);
//! c.output("bytes", n);
//! let compound = c.finish();
//! assert_eq!(compound.ops.len(), 3);
//! ```

use std::collections::{HashMap, HashSet};

use crate::compound::*;
use crate::ops::{ArgKind, RetKind, Sys};

/// A condition for the builder's control flow: `a OP b`.
pub fn cond(a: impl Into<Value>, op: BinOp, b: impl Into<Value>) -> Cond {
    Cond {
        op,
        a: a.into(),
        b: b.into(),
    }
}

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

    /// A buffer of the arena.
    pub fn buffer(&mut self, name: &str, size: u32) -> BufId {
        self.push_buffer(name, size, false)
    }

    /// A buffer private to each map iteration.
    pub fn local_buffer(&mut self, name: &str, size: u32) -> BufId {
        self.push_buffer(name, size, true)
    }

    fn push_buffer(&mut self, name: &str, size: u32, local: bool) -> BufId {
        let name = self.unique(Space::Buffer, name);
        self.c.buffers.push(Buffer { name, size, local });
        BufId((self.c.buffers.len() - 1) as u16)
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

    /// Appends any system call of the table; the result goes to a fresh register or fd slot
    /// named after the call.
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

    /// openat(2).
    pub fn openat(&mut self, dir: FdRef, path: PathRef, flags: i64, mode: i64) -> FdRef {
        self.sys_fd(
            Sys::Openat,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Value(flags.into()),
                Arg::Value(mode.into()),
            ],
        )
    }

    /// openat2(2).
    pub fn openat2(
        &mut self,
        dir: FdRef,
        path: PathRef,
        flags: i64,
        mode: i64,
        resolve: i64,
    ) -> FdRef {
        self.sys_fd(
            Sys::Openat2,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Value(flags.into()),
                Arg::Value(mode.into()),
                Arg::Value(resolve.into()),
            ],
        )
    }

    /// close(2).
    pub fn close(&mut self, fd: FdRef) -> Reg {
        self.sys_value(Sys::Close, vec![Arg::Fd(fd)])
    }

    /// read(2).
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

    /// write(2).
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

    /// lseek(2).
    pub fn lseek(&mut self, fd: FdRef, off: impl Into<Value>, whence: i64) -> Reg {
        self.sys_value(
            Sys::Lseek,
            vec![
                Arg::Fd(fd),
                Arg::Value(off.into()),
                Arg::Value(whence.into()),
            ],
        )
    }

    /// statx(2) into `buf` (at least 256 bytes).
    pub fn statx(
        &mut self,
        dir: FdRef,
        path: PathRef,
        flags: i64,
        mask: i64,
        buf: impl Into<BufRange>,
    ) -> Reg {
        self.sys_value(
            Sys::Statx,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Value(flags.into()),
                Arg::Value(mask.into()),
                Arg::Buf(buf.into()),
            ],
        )
    }

    /// fstat through statx(2) with `AT_EMPTY_PATH`.
    pub fn fstat(&mut self, fd: FdRef, buf: impl Into<BufRange>) -> Reg {
        self.sys_value(Sys::Fstat, vec![Arg::Fd(fd), Arg::Buf(buf.into())])
    }

    /// getdents64(2).
    pub fn getdents64(&mut self, fd: FdRef, buf: impl Into<BufRange>) -> Reg {
        self.sys_value(Sys::Getdents64, vec![Arg::Fd(fd), Arg::Buf(buf.into())])
    }

    /// mkdirat(2).
    pub fn mkdirat(&mut self, dir: FdRef, path: PathRef, mode: i64) -> Reg {
        self.sys_value(
            Sys::Mkdirat,
            vec![Arg::Fd(dir), Arg::Path(path), Arg::Value(mode.into())],
        )
    }

    /// unlinkat(2).
    pub fn unlinkat(&mut self, dir: FdRef, path: PathRef, flags: i64) -> Reg {
        self.sys_value(
            Sys::Unlinkat,
            vec![Arg::Fd(dir), Arg::Path(path), Arg::Value(flags.into())],
        )
    }

    /// renameat2(2).
    pub fn renameat2(
        &mut self,
        olddir: FdRef,
        old: PathRef,
        newdir: FdRef,
        new: PathRef,
        flags: i64,
    ) -> Reg {
        self.sys_value(
            Sys::Renameat2,
            vec![
                Arg::Fd(olddir),
                Arg::Path(old),
                Arg::Fd(newdir),
                Arg::Path(new),
                Arg::Value(flags.into()),
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
        flags: i64,
    ) -> Reg {
        self.sys_value(
            Sys::Splice,
            vec![
                Arg::Fd(fd_in),
                Arg::Value(off_in.into()),
                Arg::Fd(fd_out),
                Arg::Value(off_out.into()),
                Arg::Value(len.into()),
                Arg::Value(flags.into()),
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
    pub fn pipe2(&mut self, flags: i64) -> (FdRef, FdRef) {
        let r = self.fd_slot("pipe_r");
        let w = self.fd_slot("pipe_w");
        let ret = Ret::Reg(self.reg("rc"));
        self.push(Op::Sys {
            call: Sys::Pipe2,
            args: vec![
                Arg::Fd(FdRef::Slot(r)),
                Arg::Fd(FdRef::Slot(w)),
                Arg::Value(flags.into()),
            ],
            ret,
        });
        (FdRef::Slot(r), FdRef::Slot(w))
    }

    /// linkat(2): `new` becomes another name of `old` (`AT_SYMLINK_FOLLOW` in `flags` links
    /// what a symbolic link `old` points to instead of the link).
    pub fn linkat(
        &mut self,
        olddir: FdRef,
        old: PathRef,
        newdir: FdRef,
        new: PathRef,
        flags: i64,
    ) -> Reg {
        self.sys_value(
            Sys::Linkat,
            vec![
                Arg::Fd(olddir),
                Arg::Path(old),
                Arg::Fd(newdir),
                Arg::Path(new),
                Arg::Value(flags.into()),
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

    /// fchmodat2(2) (fchmodat(2) when `flags` is 0).
    pub fn fchmodat(&mut self, dir: FdRef, path: PathRef, mode: i64, flags: i64) -> Reg {
        self.sys_value(
            Sys::Fchmodat,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Value(mode.into()),
                Arg::Value(flags.into()),
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
        flags: i64,
    ) -> Reg {
        self.sys_value(
            Sys::Fchownat,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Value(owner.into()),
                Arg::Value(group.into()),
                Arg::Value(flags.into()),
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
        flags: i64,
    ) -> Reg {
        self.sys_value(
            Sys::Utimensat,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Buf(times.into()),
                Arg::Value(flags.into()),
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

    /// fsetxattr(2): attribute `name` set to the bytes of `value` (`XATTR_CREATE`,
    /// `XATTR_REPLACE` or 0 in `flags`).
    pub fn fsetxattr(
        &mut self,
        fd: FdRef,
        name: PathRef,
        value: impl Into<BufRange>,
        flags: i64,
    ) -> Reg {
        self.sys_value(
            Sys::Fsetxattr,
            vec![
                Arg::Fd(fd),
                Arg::Path(name),
                Arg::Buf(value.into()),
                Arg::Value(flags.into()),
            ],
        )
    }

    /// flistxattr(2): the attribute names (each NUL-terminated) into `list`; returns their
    /// total length.
    pub fn flistxattr(&mut self, fd: FdRef, list: impl Into<BufRange>) -> Reg {
        self.sys_value(Sys::Flistxattr, vec![Arg::Fd(fd), Arg::Buf(list.into())])
    }

    /// faccessat2(2): checks `mode` (`F_OK`, or `R_OK | W_OK | X_OK` bits) on `path`.
    pub fn faccessat2(&mut self, dir: FdRef, path: PathRef, mode: i64, flags: i64) -> Reg {
        self.sys_value(
            Sys::Faccessat2,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Value(mode.into()),
                Arg::Value(flags.into()),
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
    pub fn load(&mut self, width: Width, buf: BufId, off: impl Into<Value>) -> Reg {
        let dst = self.reg("v");
        self.push(Op::Load {
            dst,
            width,
            buf,
            off: off.into(),
        });
        dst
    }

    /// Stores a little-endian integer into the arena.
    pub fn store(&mut self, width: Width, buf: BufId, off: impl Into<Value>, v: impl Into<Value>) {
        self.push(Op::Store {
            width,
            buf,
            off: off.into(),
            src: v.into(),
        });
    }

    /// Calls a built-in or registered user function; its result in a fresh register.
    pub fn call(&mut self, func: &str, args: Vec<Arg>) -> Reg {
        let dst = self.reg(&format!("{func}.r"));
        self.push(Op::Call {
            dst: Some(dst),
            func: func.into(),
            args,
        });
        dst
    }

    /// `do { body } while (cond)`, the loop taken back at most `bound` times.
    pub fn do_while(&mut self, bound: u32, body: impl FnOnce(&mut Self) -> Cond) {
        let top = self.here();
        let c = body(self);
        self.push(Op::Jump {
            cond: Some(c),
            target: top,
            bound: Some(bound),
        });
    }

    /// `if (cond) { body }`.
    pub fn if_(&mut self, c: Cond, body: impl FnOnce(&mut Self)) {
        let negated = Cond {
            op: negate(c.op),
            ..c
        };
        let jump = self.push(Op::Jump {
            cond: Some(negated),
            target: 0,
            bound: None,
        });
        body(self);
        let end = self.here();
        if let Op::Jump { target, .. } = &mut self.c.ops[jump as usize] {
            *target = end;
        }
    }

    fn map(&mut self, source: MapSource, body: impl FnOnce(&mut Self)) {
        let begin = self.push(Op::MapBegin { source, end: 0 });
        body(self);
        let end = self.push(Op::MapEnd { begin });
        if let Op::MapBegin { end: e, .. } = &mut self.c.ops[begin as usize] {
            *e = end;
        }
    }

    /// A map over a list of paths.
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

    /// A map over a literal list of integers.
    pub fn map_offsets(&mut self, list: Vec<i64>, body: impl FnOnce(&mut Self, Reg)) {
        let var = self.reg("o");
        self.map(MapSource::Offsets { list, var }, |b| body(b, var));
    }

    /// A map over `start, start+step, ...` below `end`.
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

    /// A map over the entries of a `getdents64` result (`.` and `..` skipped).
    pub fn map_dirents(&mut self, buf: BufRange, body: impl FnOnce(&mut Self, Dirent)) {
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

/// The comparison that holds exactly when `op` does not.
pub fn negate(op: BinOp) -> BinOp {
    match op {
        BinOp::Eq => BinOp::Ne,
        BinOp::Ne => BinOp::Eq,
        BinOp::Lt => BinOp::Ge,
        BinOp::Ge => BinOp::Lt,
        BinOp::Gt => BinOp::Le,
        BinOp::Le => BinOp::Gt,
        other => other,
    }
}
