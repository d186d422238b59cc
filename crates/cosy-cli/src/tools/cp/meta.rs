//! A directory's own metadata, set once everything below it is copied (its times would
//! change with every entry made, and its final mode may not let the copy write into it):
//! its extended attributes, owner, mode and times, by a compound on the copy opened again
//! through `/proc/self/fd`.

use std::path::Path;

use cosy_model::{Arg, BinOp, BufRange, FdRef, Ret, Sys, Value};

use super::Settings;
use super::prog::Prog;
use crate::tools::common::{Diag, quote};
use crate::tools::stat::Stat;

/// The mode directories are made with: the copy writes into them, whatever their mode.
pub const MADE_MODE: u32 = 0o700;

/// How to finish a directory.
pub struct DirEnd<'a> {
    /// The source directory, by a path a compound can open (`/proc/self/fd/N`), for its
    /// attributes; `None` when it could not be opened.
    pub src: Option<Vec<u8>>,
    /// The copy, by a path a compound can open.
    pub dst: Vec<u8>,
    /// The copy as the user would name it, for messages.
    pub shown: &'a Path,
    /// The source's statx.
    pub st: Stat,
    /// Whether the copy was made by this run (else it existed and is merged into).
    pub fresh: bool,
}

/// Sets the metadata of a copied directory as the settings ask.
pub fn finish(set: &Settings, end: &DirEnd<'_>, diag: &mut Diag) {
    let names = match (&end.src, set.xattrs) {
        (Some(src), true) => list(src),
        _ => Vec::new(),
    };
    let st = &end.st;
    let want = if set.mode {
        st.mode & 0o7777
    } else {
        st.mode & 0o777 & !set.umask
    };
    let made = MADE_MODE & !set.umask;
    let chmod = (end.fresh || set.mode) && want != made;
    let chown = set.owner && (st.uid != set.euid || st.gid != set.egid);
    if !chmod && !chown && !set.times && names.is_empty() {
        return;
    }
    let mut p = Prog::new();
    let s = p.slot();
    let d = p.slot();
    let dp = p.path(&end.dst);
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    let open_d = p.openat(d, FdRef::Cwd, dp, flags, 0);
    let empty = p.empty();
    if !names.is_empty()
        && let Some(src) = &end.src
    {
        let sp = p.path(src);
        p.openat(s, FdRef::Cwd, sp, flags, 0);
        let v = p.buffer(64 << 10);
        let n = p.reg();
        for x in names.split(|&b| b == 0).filter(|x| !x.is_empty()) {
            let xn = p.path(x);
            let skip = p.label();
            p.sys(
                Sys::Fgetxattr,
                vec![Arg::Fd(s), Arg::Path(xn), Arg::Buf(BufRange::whole(v))],
                Ret::Reg(n),
            );
            p.jump_if(n, BinOp::Lt, 0, skip);
            p.sys(
                Sys::Fsetxattr,
                vec![
                    Arg::Fd(d),
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
            p.bind(skip);
        }
    }
    let mut chown_at = None;
    if chown {
        chown_at = Some(p.sys(
            Sys::Fchownat,
            vec![
                Arg::Fd(d),
                Arg::Path(empty),
                Arg::Value(Value::Imm(i64::from(st.uid))),
                Arg::Value(Value::Imm(i64::from(st.gid))),
                Arg::Value(Value::Imm(i64::from(libc::AT_EMPTY_PATH))),
            ],
            Ret::None,
        ));
    }
    let mut chmod_at = None;
    if chmod {
        chmod_at = Some(p.sys(
            Sys::Fchmodat,
            vec![
                Arg::Fd(d),
                Arg::Path(empty),
                Arg::Value(Value::Imm(i64::from(want))),
                Arg::Value(Value::Imm(i64::from(libc::AT_EMPTY_PATH))),
            ],
            Ret::None,
        ));
    }
    let mut times_at = None;
    if set.times {
        let t = p.buffer(cosy_model::flags::TIMES_BYTES as u32);
        p.store64(t, 0, st.atime.sec);
        p.store64(t, 8, i64::from(st.atime.nsec));
        p.store64(t, 16, st.mtime.sec);
        p.store64(t, 24, i64::from(st.mtime.nsec));
        times_at = Some(p.sys(
            Sys::Utimensat,
            vec![
                Arg::Fd(d),
                Arg::Path(empty),
                Arg::Buf(BufRange::whole(t)),
                Arg::Value(Value::Imm(i64::from(libc::AT_EMPTY_PATH))),
            ],
            Ret::None,
        ));
    }
    let shown = quote(end.shown);
    let Some((out, _)) = p.run() else {
        diag.errno(format_args!("preserving times for {shown}"), libc::EINVAL);
        return;
    };
    for e in &out.errors {
        let at = Some(e.op);
        if e.op == open_d {
            diag.errno(format_args!("preserving times for {shown}"), e.errno);
            return;
        } else if at == chown_at {
            if set.root || !matches!(e.errno, libc::EPERM | libc::EINVAL) {
                diag.errno(
                    format_args!("failed to preserve ownership for {shown}"),
                    e.errno,
                );
            }
        } else if at == chmod_at {
            diag.errno(format_args!("preserving permissions for {shown}"), e.errno);
        } else if at == times_at {
            diag.errno(format_args!("preserving times for {shown}"), e.errno);
        }
    }
}

/// The extended attribute names of the directory at `src` (NUL-separated; empty when it
/// has none or they cannot be listed).
fn list(src: &[u8]) -> Vec<u8> {
    let mut p = Prog::new();
    let s = p.slot();
    let sp = p.path(src);
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    p.openat(s, FdRef::Cwd, sp, flags, 0);
    let b = p.buffer(64 << 10);
    let n = p.reg();
    let skip = p.label();
    p.sys(
        Sys::Flistxattr,
        vec![Arg::Fd(s), Arg::Buf(BufRange::whole(b))],
        Ret::Reg(n),
    );
    p.jump_if(n, BinOp::Le, 0, skip);
    p.keep(0, b, n);
    p.bind(skip);
    match p.run() {
        Some((_, kept)) => kept.into_iter().next().map(|(_, b)| b).unwrap_or_default(),
        None => Vec::new(),
    }
}
