//! The files of one directory copied by one compound: for each regular file, the source
//! opened relative to the directory, a temporary created beside the destination
//! (`O_CREAT | O_EXCL`), its bytes moved by copy_file_range(2) (explicit offsets; the holes of
//! a sparse file kept with `SEEK_DATA`/`SEEK_HOLE`; where the kernel refuses the copy, the
//! executor reads and writes the same bytes), its owner, mode and times set on the descriptor, then renamed into place; on
//! any failure the temporary is removed. Symbolic links are made with their targets read by a
//! first compound; hard links within the copy are linked to the first copy.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cosy_model::flags::{AtFlags, StatxFlags};
use cosy_model::{Arg, BinOp, BufId, BufRange, FdRef, PathRef, Reg, Ret, Sys, Value};

use super::Settings;
use super::prog::{Prog, fd_path};
use crate::tools::common::{Diag, quote};
use crate::tools::stat::{STATX_LEN, Stat};

/// Bytes of the buffer of a symbolic link's target (`PATH_MAX`).
const LINK_BUF: u32 = 4096;
/// Bytes of the buffer of a file's attribute names.
const XLIST_BUF: u32 = 16 << 10;
/// Bytes of the buffer of one attribute's value (`XATTR_SIZE_MAX`).
const XVAL_BUF: u32 = 64 << 10;
/// Files per compound at most: two data constants each, within the 16-bit data index.
pub const MAX_FILES: usize = 1024;

/// A directory the session holds, as the compounds name it.
#[derive(Clone, Copy, Debug)]
pub struct DirFds {
    /// The source directory's descriptor in the process.
    pub src: i64,
    /// The destination directory's descriptor in the process.
    pub dst: i64,
    /// Whether the destination directory was made by this copy (nothing in it to replace).
    pub fresh: bool,
}

/// Paths of a directory pair, for messages and hard links.
#[derive(Clone, Copy, Debug)]
pub struct DirPaths<'a> {
    /// The source directory as the user would write it.
    pub src: &'a Path,
    /// The destination directory.
    pub dst: &'a Path,
}

/// What to make of a directory entry.
#[derive(Clone, Debug)]
pub enum What {
    /// A regular file: its bytes and metadata.
    File,
    /// A symbolic link: made again with the same target.
    Symlink,
    /// Another name of a file copied before: linked to its copy at this path.
    Link(PathBuf),
}

/// An entry to copy.
#[derive(Clone, Debug)]
pub struct Item {
    /// Its name in the source directory.
    pub name: OsString,
    /// The copy's name in the destination directory.
    pub to: OsString,
    /// Its statx.
    pub st: Stat,
    /// What to do.
    pub what: What,
}

/// What each call of the compound does for an item, to word its failure as cp does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    OpenSrc,
    OpenDst,
    Copy,
    Write,
    Seek,
    Chown,
    Chmod,
    Times,
    Rename,
    Symlink,
    Link,
    /// Failures that say nothing (a close, the removal of a temporary, a listing the file
    /// system does not support).
    Quiet,
}

fn join(dir: &Path, name: &OsStr) -> PathBuf {
    if dir.as_os_str().is_empty() {
        PathBuf::from(name)
    } else {
        dir.join(name)
    }
}

/// The temporary name of `name` in its destination directory: `.NAME.cosy-tmp.PID`, or
/// `.cosy-tmp.PID.N` when that would be longer than a name may be.
pub fn tmp_name(name: &OsStr, pid: u32, n: usize) -> Vec<u8> {
    let b = name.as_bytes();
    if b.len() + 32 <= 255 {
        let mut t = Vec::with_capacity(b.len() + 24);
        t.push(b'.');
        t.extend_from_slice(b);
        t.extend_from_slice(format!(".cosy-tmp.{pid}").as_bytes());
        t
    } else {
        format!(".cosy-tmp.{pid}.{n}").into_bytes()
    }
}

/// The `struct timespec[2]` of `st`'s access and modification times, stored into `buf`.
fn store_times(p: &mut Prog, buf: BufId, st: &Stat) {
    p.store64(buf, 0, st.atime.sec);
    p.store64(buf, 8, i64::from(st.atime.nsec));
    p.store64(buf, 16, st.mtime.sec);
    p.store64(buf, 24, i64::from(st.mtime.nsec));
}

/// Registers of the per-file code, reused by every file.
struct Regs {
    c: Reg,
    total: Reg,
    rem: Reg,
    pos: Reg,
    hole: Reg,
    x: Reg,
}

/// Slots of a compound: the two directories and the two files.
struct Slots {
    sd: FdRef,
    dd: FdRef,
    s: FdRef,
    d: FdRef,
}

/// One directory's worth of copying.
pub struct Batch<'a> {
    /// The settings of the run.
    pub set: &'a Settings,
    /// Descriptors of the two directories.
    pub fds: DirFds,
    /// Their paths.
    pub paths: DirPaths<'a>,
}

/// Attribute names of a copy whose attributes are still to be set (with its mode and times,
/// before its rename).
struct Deferred {
    item: usize,
    names: Vec<u8>,
}

impl Batch<'_> {
    fn src(&self, name: &OsStr) -> PathBuf {
        join(self.paths.src, name)
    }

    fn dst(&self, name: &OsStr) -> PathBuf {
        join(self.paths.dst, name)
    }

    /// Opens the two directories into the compound's slots.
    fn open_dirs(&self, p: &mut Prog, src_flags: i32) -> Slots {
        let sd = p.slot();
        let dd = p.slot();
        let s = p.slot();
        let d = p.slot();
        let sp = p.path(&fd_path(self.fds.src));
        p.openat(sd, FdRef::Cwd, sp, src_flags, 0);
        let dp = p.path(&fd_path(self.fds.dst));
        p.openat(
            dd,
            FdRef::Cwd,
            dp,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        );
        Slots { sd, dd, s, d }
    }

    /// Copies `items`; failures reported to `diag` in cp's words.
    pub fn copy(&self, items: &[Item], diag: &mut Diag) {
        for chunk in items.chunks(MAX_FILES) {
            self.copy_chunk(chunk, diag);
        }
    }

    fn copy_chunk(&self, items: &[Item], diag: &mut Diag) {
        let links: Vec<usize> = (0..items.len())
            .filter(|&i| matches!(items[i].what, What::Symlink))
            .collect();
        let targets = self.read_links(items, &links, diag);
        let deferred = self.copy_files(items, &targets, diag);
        if !deferred.is_empty() {
            self.set_xattrs(items, &deferred, diag);
        }
        let hard: Vec<usize> = (0..items.len())
            .filter(|&i| matches!(items[i].what, What::Link(_)))
            .collect();
        if !hard.is_empty() {
            self.hard_links(items, &hard, diag);
        }
    }

    /// Reads the targets of the symbolic links `which` (indexes into `items`).
    fn read_links(&self, items: &[Item], which: &[usize], diag: &mut Diag) -> Vec<Option<Vec<u8>>> {
        let mut targets = vec![None; items.len()];
        if which.is_empty() {
            return targets;
        }
        let mut p = Prog::new();
        let sl = self.open_dirs(&mut p, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
        let buf = p.buffer(LINK_BUF);
        let n = p.reg();
        let mut ops = Vec::with_capacity(which.len());
        for &i in which {
            let name = p.path(items[i].name.as_bytes());
            let skip = p.label();
            let at = p.sys(
                Sys::Readlinkat,
                vec![
                    Arg::Fd(sl.sd),
                    Arg::Path(name),
                    Arg::Buf(BufRange::whole(buf)),
                ],
                Ret::Reg(n),
            );
            ops.push((at, i));
            p.jump_if(n, BinOp::Lt, 0, skip);
            p.keep(i as i64, buf, n);
            p.bind(skip);
        }
        let Some((out, kept)) = p.run() else {
            for &i in which {
                diag.errno(
                    format_args!(
                        "cannot read symbolic link {}",
                        quote(self.src(&items[i].name))
                    ),
                    libc::EINVAL,
                );
            }
            return targets;
        };
        for (tag, bytes) in kept {
            if let Some(t) = targets.get_mut(tag as usize) {
                *t = Some(bytes);
            }
        }
        for e in &out.errors {
            if let Ok(k) = ops.binary_search_by_key(&e.op, |&(at, _)| at) {
                let i = ops[k].1;
                diag.errno(
                    format_args!(
                        "cannot read symbolic link {}",
                        quote(self.src(&items[i].name))
                    ),
                    e.errno,
                );
            }
        }
        targets
    }

    /// The main compound: files and symbolic links. Returns the copies whose attributes are
    /// still to be set.
    fn copy_files(
        &self,
        items: &[Item],
        targets: &[Option<Vec<u8>>],
        diag: &mut Diag,
    ) -> Vec<Deferred> {
        let set = self.set;
        let mut p = Prog::new();
        let sl = self.open_dirs(&mut p, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
        let r = Regs {
            c: p.reg(),
            total: p.reg(),
            rem: p.reg(),
            pos: p.reg(),
            hole: p.reg(),
            x: p.reg(),
        };
        let times = p.buffer(cosy_model::flags::TIMES_BYTES as u32);
        let xlist = set.xattrs.then(|| p.buffer(XLIST_BUF));
        let empty = p.empty();
        let mut roles: Vec<(u32, usize, Role)> = Vec::new();
        let mut any = false;
        for (i, it) in items.iter().enumerate() {
            match &it.what {
                What::File => {
                    any = true;
                    self.file(&mut p, &sl, &r, i, it, (times, xlist), empty, &mut roles);
                }
                What::Symlink => {
                    let Some(t) = &targets[i] else { continue };
                    any = true;
                    self.symlink(&mut p, &sl, i, it, t, times, &mut roles);
                }
                What::Link(_) => {}
            }
        }
        if !any {
            return Vec::new();
        }
        let Some((out, kept)) = p.run() else {
            for it in items {
                diag.errno(
                    format_args!("cannot create regular file {}", quote(self.dst(&it.to))),
                    libc::EINVAL,
                );
            }
            return Vec::new();
        };
        if let Some(e) = out.errors.iter().find(|e| e.op < 2) {
            // The directories themselves could not be named (no /proc?): every item fails.
            for it in items {
                diag.errno(
                    format_args!("cannot create regular file {}", quote(self.dst(&it.to))),
                    e.errno,
                );
            }
            return Vec::new();
        }
        self.report(items, &roles, &out.errors, diag);
        kept.into_iter()
            .map(|(tag, names)| Deferred {
                item: tag as usize,
                names,
            })
            .collect()
    }

    /// Words the failures of a run, the first that matters for each item.
    fn report(
        &self,
        items: &[Item],
        roles: &[(u32, usize, Role)],
        errors: &[cosy_exec::CallError],
        diag: &mut Diag,
    ) {
        let mut failed = vec![false; items.len()];
        for e in errors {
            let Ok(k) = roles.binary_search_by_key(&e.op, |&(at, _, _)| at) else {
                continue;
            };
            let (_, i, role) = roles[k];
            if failed[i] {
                continue;
            }
            let it = &items[i];
            let (src, dst) = (quote(self.src(&it.name)), quote(self.dst(&it.to)));
            let errno = e.errno;
            match role {
                Role::Quiet => continue,
                Role::Chown if !self.set.root && matches!(errno, libc::EPERM | libc::EINVAL) => {
                    continue;
                }
                Role::OpenSrc => diag.errno(format_args!("cannot open {src} for reading"), errno),
                Role::OpenDst | Role::Rename => {
                    diag.errno(format_args!("cannot create regular file {dst}"), errno)
                }
                Role::Copy => diag.errno(format_args!("error copying {src} to {dst}"), errno),
                Role::Seek => diag.errno(format_args!("error reading {src}"), errno),
                Role::Write => diag.errno(format_args!("error writing {dst}"), errno),
                Role::Chown => diag.errno(
                    format_args!("failed to preserve ownership for {dst}"),
                    errno,
                ),
                Role::Chmod => diag.errno(format_args!("preserving permissions for {dst}"), errno),
                Role::Times => diag.errno(format_args!("preserving times for {dst}"), errno),
                Role::Symlink => {
                    diag.errno(format_args!("cannot create symbolic link {dst}"), errno)
                }
                Role::Link => {
                    let first = match &it.what {
                        What::Link(f) => quote(f),
                        _ => src,
                    };
                    diag.errno(
                        format_args!("cannot create hard link {dst} to {first}"),
                        errno,
                    )
                }
            }
            failed[i] = true;
        }
    }

    /// The mode a copy is created with, and whether a chmod must follow (after the chown,
    /// which clears set-id bits, or when the umask takes bits the copy must have).
    fn create_mode(&self, st: &Stat, chown: bool) -> (u32, bool) {
        let set = self.set;
        let perm = st.mode & 0o777;
        if !set.mode {
            return (perm, false);
        }
        let want = st.mode & 0o7777;
        if chown {
            return (perm & 0o700 | 0o600, true);
        }
        // Writable by its owner until its attributes are set (user.* attributes need it).
        let mode = perm | if set.xattrs { 0o600 } else { 0 };
        (mode, mode & !set.umask != want)
    }

    fn needs_chown(&self, st: &Stat) -> bool {
        self.set.owner && (st.uid != self.set.euid || st.gid != self.set.egid)
    }

    #[allow(clippy::too_many_arguments)]
    fn file(
        &self,
        p: &mut Prog,
        sl: &Slots,
        r: &Regs,
        i: usize,
        it: &Item,
        (times, xlist): (BufId, Option<BufId>),
        empty: PathRef,
        roles: &mut Vec<(u32, usize, Role)>,
    ) {
        let set = self.set;
        let st = &it.st;
        let size = st.size as i64;
        let name = p.path(it.name.as_bytes());
        let to = p.path(it.to.as_bytes());
        let tmp = p.path(&tmp_name(&it.to, set.pid, i));
        let chown = self.needs_chown(st);
        let (cmode, chmod) = self.create_mode(st, chown);
        let mut role = |at: u32, role: Role| roles.push((at, i, role));
        let fail = p.label();
        let done = p.label();
        let next = p.label();
        let rflags =
            libc::O_RDONLY | libc::O_CLOEXEC | if set.follow { 0 } else { libc::O_NOFOLLOW };
        role(p.openat(sl.s, sl.sd, name, rflags, 0), Role::OpenSrc);
        let wflags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
        role(p.openat(sl.d, sl.dd, tmp, wflags, cmode), Role::OpenDst);
        let cfr = |p: &mut Prog, off: Reg, len: Reg| {
            p.sys(
                Sys::CopyFileRange,
                vec![
                    Arg::Fd(sl.s),
                    Arg::Value(Value::Reg(off)),
                    Arg::Fd(sl.d),
                    Arg::Value(Value::Reg(off)),
                    Arg::Value(Value::Reg(len)),
                    Arg::Value(Value::Imm(0)),
                ],
                Ret::Reg(r.c),
            )
        };
        p.mov(r.total, 0);
        // A file with fewer blocks than its size has holes: copy its data extents only.
        let sparse = size > 0 && st.blocks.saturating_mul(512) < st.size;
        if sparse {
            let extent = p.label();
            let chunk = p.label();
            let tail = p.label();
            p.bind(extent);
            let at = p.sys(
                Sys::Lseek,
                vec![
                    Arg::Fd(sl.s),
                    Arg::Value(Value::Reg(r.total)),
                    Arg::Value(Value::Imm(i64::from(libc::SEEK_DATA))),
                ],
                Ret::Reg(r.pos),
            );
            // ENXIO: no data after the offset, the rest is a hole.
            role(at, Role::Quiet);
            p.jump_if(r.pos, BinOp::Eq, -i64::from(libc::ENXIO), tail);
            p.jump_if(r.pos, BinOp::Lt, 0, fail);
            let at = p.sys(
                Sys::Lseek,
                vec![
                    Arg::Fd(sl.s),
                    Arg::Value(Value::Reg(r.pos)),
                    Arg::Value(Value::Imm(i64::from(libc::SEEK_HOLE))),
                ],
                Ret::Reg(r.hole),
            );
            role(at, Role::Seek);
            p.jump_if(r.hole, BinOp::Lt, 0, fail);
            p.bind(chunk);
            p.arith(r.rem, BinOp::Sub, r.hole, r.pos);
            let at = cfr(p, r.pos, r.rem);
            role(at, Role::Copy);
            p.jump_if(r.c, BinOp::Lt, 0, fail);
            p.jump_if(r.c, BinOp::Eq, 0, tail);
            p.arith(r.pos, BinOp::Add, r.pos, r.c);
            p.jump_if(r.pos, BinOp::Lt, r.hole, chunk);
            p.mov(r.total, r.hole);
            p.jump_if(r.total, BinOp::Lt, size, extent);
            p.bind(tail);
            let at = p.sys(
                Sys::Ftruncate,
                vec![Arg::Fd(sl.d), Arg::Value(Value::Imm(size))],
                Ret::Reg(r.c),
            );
            role(at, Role::Write);
            p.jump_if(r.c, BinOp::Lt, 0, fail);
            p.goto(done);
        } else {
            let again = p.label();
            p.bind(again);
            p.arith(r.rem, BinOp::Sub, size, r.total);
            // A length of 0 still checks both descriptors: an empty file's open is tested.
            let at = cfr(p, r.total, r.rem);
            role(at, Role::Copy);
            p.jump_if(r.c, BinOp::Lt, 0, fail);
            p.jump_if(r.c, BinOp::Eq, 0, done);
            p.arith(r.total, BinOp::Add, r.total, r.c);
            p.jump_if(r.total, BinOp::Lt, size, again);
            p.goto(done);
        }
        // The bytes are there: owner, attributes, mode, times, then the final name.
        p.bind(done);
        if chown {
            let at = p.sys(
                Sys::Fchownat,
                vec![
                    Arg::Fd(sl.d),
                    Arg::Path(empty),
                    Arg::Value(Value::Imm(i64::from(st.uid))),
                    Arg::Value(Value::Imm(i64::from(st.gid))),
                    Arg::Value(Value::Imm(i64::from(libc::AT_EMPTY_PATH))),
                ],
                Ret::None,
            );
            role(at, Role::Chown);
        }
        if let Some(xl) = xlist {
            let plain = p.label();
            let at = p.sys(
                Sys::Flistxattr,
                vec![Arg::Fd(sl.s), Arg::Buf(BufRange::whole(xl))],
                Ret::Reg(r.x),
            );
            role(at, Role::Quiet);
            p.jump_if(r.x, BinOp::Le, 0, plain);
            // Attributes to copy: the rest is done once they are (set_xattrs).
            p.keep(i as i64, xl, r.x);
            p.goto(next);
            p.bind(plain);
        }
        self.mode_and_times(p, sl.d, empty, st, chmod, times, &mut role);
        // The two descriptors are closed by the next file's opens into their slots (or at
        // the compound's end): no close operations to write and verify for every file.
        let at = p.sys(
            Sys::Renameat2,
            vec![
                Arg::Fd(sl.dd),
                Arg::Path(tmp),
                Arg::Fd(sl.dd),
                Arg::Path(to),
                Arg::Value(Value::Imm(0)),
            ],
            Ret::Reg(r.c),
        );
        role(at, Role::Rename);
        p.jump_if(r.c, BinOp::Eq, 0, next);
        p.bind(fail);
        let at = p.sys(
            Sys::Unlinkat,
            vec![Arg::Fd(sl.dd), Arg::Path(tmp), Arg::Value(Value::Imm(0))],
            Ret::None,
        );
        role(at, Role::Quiet);
        p.bind(next);
    }

    /// fchmodat and utimensat of the open copy `d`, as the settings ask.
    #[allow(clippy::too_many_arguments)]
    fn mode_and_times(
        &self,
        p: &mut Prog,
        d: FdRef,
        empty: PathRef,
        st: &Stat,
        chmod: bool,
        times: BufId,
        role: &mut dyn FnMut(u32, Role),
    ) {
        if chmod {
            let at = p.sys(
                Sys::Fchmodat,
                vec![
                    Arg::Fd(d),
                    Arg::Path(empty),
                    Arg::Value(Value::Imm(i64::from(st.mode & 0o7777))),
                    Arg::Value(Value::Imm(i64::from(libc::AT_EMPTY_PATH))),
                ],
                Ret::None,
            );
            role(at, Role::Chmod);
        }
        if self.set.times {
            store_times(p, times, st);
            let at = p.sys(
                Sys::Utimensat,
                vec![
                    Arg::Fd(d),
                    Arg::Path(empty),
                    Arg::Buf(BufRange::whole(times)),
                    Arg::Value(Value::Imm(i64::from(libc::AT_EMPTY_PATH))),
                ],
                Ret::None,
            );
            role(at, Role::Times);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn symlink(
        &self,
        p: &mut Prog,
        sl: &Slots,
        i: usize,
        it: &Item,
        target: &[u8],
        times: BufId,
        roles: &mut Vec<(u32, usize, Role)>,
    ) {
        let set = self.set;
        let name = p.path(it.to.as_bytes());
        let t = p.path(target);
        // In a directory this copy made, nothing is replaced: the link is made in place.
        let made = if self.fds.fresh {
            name
        } else {
            p.path(&tmp_name(&it.to, set.pid, i))
        };
        let at = p.sys(
            Sys::Symlinkat,
            vec![Arg::Path(t), Arg::Fd(sl.dd), Arg::Path(made)],
            Ret::None,
        );
        roles.push((at, i, Role::Symlink));
        if !self.fds.fresh {
            let at = p.sys(
                Sys::Renameat2,
                vec![
                    Arg::Fd(sl.dd),
                    Arg::Path(made),
                    Arg::Fd(sl.dd),
                    Arg::Path(name),
                    Arg::Value(Value::Imm(0)),
                ],
                Ret::None,
            );
            roles.push((at, i, Role::Symlink));
        }
        if self.needs_chown(&it.st) {
            let at = p.sys(
                Sys::Fchownat,
                vec![
                    Arg::Fd(sl.dd),
                    Arg::Path(name),
                    Arg::Value(Value::Imm(i64::from(it.st.uid))),
                    Arg::Value(Value::Imm(i64::from(it.st.gid))),
                    Arg::Value(Value::Imm(i64::from(libc::AT_SYMLINK_NOFOLLOW))),
                ],
                Ret::None,
            );
            roles.push((at, i, Role::Chown));
        }
        if set.times {
            store_times(p, times, &it.st);
            let at = p.sys(
                Sys::Utimensat,
                vec![
                    Arg::Fd(sl.dd),
                    Arg::Path(name),
                    Arg::Buf(BufRange::whole(times)),
                    Arg::Value(Value::Imm(i64::from(libc::AT_SYMLINK_NOFOLLOW))),
                ],
                Ret::None,
            );
            roles.push((at, i, Role::Times));
        }
    }

    /// The copies whose attributes were deferred: attributes, mode, times, final name.
    fn set_xattrs(&self, items: &[Item], deferred: &[Deferred], diag: &mut Diag) {
        let mut p = Prog::new();
        let sl = self.open_dirs(&mut p, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
        let v = p.buffer(XVAL_BUF);
        let times = p.buffer(cosy_model::flags::TIMES_BYTES as u32);
        let n = p.reg();
        let c = p.reg();
        let empty = p.empty();
        let mut roles: Vec<(u32, usize, Role)> = Vec::new();
        for d in deferred {
            let Some(it) = items.get(d.item) else {
                continue;
            };
            let i = d.item;
            let mut role = |at: u32, r: Role| roles.push((at, i, r));
            let name = p.path(it.name.as_bytes());
            let to = p.path(it.to.as_bytes());
            let tmp = p.path(&tmp_name(&it.to, self.set.pid, i));
            let rflags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
            let rflags = if self.set.follow {
                rflags & !libc::O_NOFOLLOW
            } else {
                rflags
            };
            role(p.openat(sl.s, sl.sd, name, rflags, 0), Role::OpenSrc);
            let dflags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
            role(p.openat(sl.d, sl.dd, tmp, dflags, 0), Role::OpenDst);
            for xname in d.names.split(|&b| b == 0).filter(|x| !x.is_empty()) {
                let xn = p.path(xname);
                let skip = p.label();
                let at = p.sys(
                    Sys::Fgetxattr,
                    vec![Arg::Fd(sl.s), Arg::Path(xn), Arg::Buf(BufRange::whole(v))],
                    Ret::Reg(n),
                );
                role(at, Role::Quiet);
                p.jump_if(n, BinOp::Lt, 0, skip);
                let at = p.sys(
                    Sys::Fsetxattr,
                    vec![
                        Arg::Fd(sl.d),
                        Arg::Path(xn),
                        Arg::Buf(BufRange {
                            buf: v,
                            start: Value::Imm(0),
                            end: Some(Value::Reg(n)),
                        }),
                        Arg::Value(Value::Imm(0)),
                    ],
                    Ret::None,
                );
                // cp -a does not insist on attributes the file system or the user cannot set.
                role(at, Role::Quiet);
                p.bind(skip);
            }
            let chown = self.needs_chown(&it.st);
            let (_, chmod) = self.create_mode(&it.st, chown);
            self.mode_and_times(&mut p, sl.d, empty, &it.st, chmod, times, &mut role);
            role(p.close(sl.s), Role::Quiet);
            role(p.close(sl.d), Role::Quiet);
            let at = p.sys(
                Sys::Renameat2,
                vec![
                    Arg::Fd(sl.dd),
                    Arg::Path(tmp),
                    Arg::Fd(sl.dd),
                    Arg::Path(to),
                    Arg::Value(Value::Imm(0)),
                ],
                Ret::Reg(c),
            );
            role(at, Role::Rename);
            let ok = p.label();
            p.jump_if(c, BinOp::Eq, 0, ok);
            let at = p.sys(
                Sys::Unlinkat,
                vec![Arg::Fd(sl.dd), Arg::Path(tmp), Arg::Value(Value::Imm(0))],
                Ret::None,
            );
            role(at, Role::Quiet);
            p.bind(ok);
        }
        match p.run() {
            Some((out, _)) => {
                self.report(items, &roles, &out.errors, diag);
            }
            None => diag.errno("cannot copy extended attributes", libc::EINVAL),
        }
    }

    /// Hard links to copies made before.
    fn hard_links(&self, items: &[Item], which: &[usize], diag: &mut Diag) {
        let mut p = Prog::new();
        let sl = self.open_dirs(&mut p, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
        let mut roles = Vec::new();
        for &i in which {
            let What::Link(first) = &items[i].what else {
                continue;
            };
            let old = p.path(first.as_os_str().as_bytes());
            let name = p.path(items[i].to.as_bytes());
            let at = p.sys(
                Sys::Linkat,
                vec![
                    Arg::Fd(FdRef::Cwd),
                    Arg::Path(old),
                    Arg::Fd(sl.dd),
                    Arg::Path(name),
                    Arg::Value(Value::Imm(0)),
                ],
                Ret::None,
            );
            roles.push((at, i, Role::Link));
        }
        match p.run() {
            Some((out, _)) => {
                self.report(items, &roles, &out.errors, diag);
            }
            None => diag.errno("cannot create hard links", libc::EINVAL),
        }
    }
}

/// The statx of `name` in the session directory `dir` (`AT_SYMLINK_NOFOLLOW` unless
/// `follow`), or its errno.
pub fn stat_at(
    s: &mut cosy_exec::session::Session,
    dir: cosy_exec::session::Fd,
    name: &OsStr,
    follow: bool,
    buf: cosy_exec::session::BufHandle,
) -> Result<Stat, i32> {
    let flags = if follow {
        AtFlags::empty()
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    };
    let h = s
        .send(cosy_exec::session::Call::statx(
            dir,
            name,
            flags,
            StatxFlags::BASIC_STATS,
            buf,
        ))
        .map_err(|_| libc::EINVAL)?;
    match s.get(h) {
        Ok(_) => {}
        Err(e) => return Err(e.errno().unwrap_or(libc::EIO)),
    }
    let b = s.bytes(buf).map_err(|_| libc::EIO)?;
    Stat::parse(&b[..STATX_LEN.min(b.len())]).ok_or(libc::EIO)
}
