//! A large tree copied by several threads, one session each: the subdirectories of the
//! source root are shared out (a queue, the next one to the first thread free); the root's
//! own files are copied by the caller's walk. Hard links between the parts are made once all
//! threads are done (the first copy may be another thread's), and the times of the
//! directories they are made in set again.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use cosy_exec::session::Fd;
use cosy_model::{Arg, BufRange, FdRef, Ret, Sys, Value};

use super::prog::Prog;
use super::tree::{Frame, open_dir};
use super::{Settings, Shared, finish_root, walk_session, walk_tree};
use crate::tools::common::{Diag, quote};
use crate::tools::stat::Stat;

/// A hard link to make after the threads are done.
#[derive(Clone, Debug)]
pub struct Late {
    /// The first copy's path.
    pub first: PathBuf,
    /// The directory of the new name.
    pub dir: PathBuf,
    /// The new name.
    pub name: OsString,
    /// The statx of the directory's source (its times are set again).
    pub dir_st: Stat,
}

/// Threads to copy with: `COSY_CP_THREADS`, else the machine's cores, at most 2.
pub fn threads() -> usize {
    if let Some(n) = std::env::var("COSY_CP_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        return n.max(1);
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

/// Copies the subdirectories `parts` of `src` (made in `dst`, with their source statx and
/// whether they are new) on `threads` threads; whether any reported an error.
pub fn copy_parts(
    sh: &Shared<'_>,
    src: &Path,
    dst: &Path,
    mut parts: Vec<(OsString, (Stat, bool))>,
    threads: usize,
) -> bool {
    parts.reverse();
    let n = threads.min(parts.len()).max(1);
    let queue = Mutex::new(parts);
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..n {
            scope.spawn(|| {
                let mut diag = Diag::new("cp");
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                    let Some((name, (st, fresh))) = next else {
                        break;
                    };
                    let (sp, dp) = (src.join(&name), dst.join(&name));
                    // A walk takes buffers of its session for good: one session per part.
                    let Some((mut s, stbuf)) = walk_session() else {
                        diag.error("cannot set up a session");
                        break;
                    };
                    let handle = match open_dir(&mut s, Fd::Cwd, dp.as_os_str()) {
                        Ok(h) => h,
                        Err(e) => {
                            diag.errno(format_args!("cannot access {}", quote(&dp)), e);
                            continue;
                        }
                    };
                    let root = Frame {
                        path: dp,
                        handle: Some(handle),
                        st,
                        fresh,
                        broken: false,
                        pending: Default::default(),
                    };
                    let mut tree = walk_tree(sh, &mut s, stbuf, &mut diag, &sp, root, false);
                    finish_root(&mut tree, &mut s, &sp);
                }
                if diag.failed() {
                    failed.store(true, Ordering::Relaxed);
                }
            });
        }
    });
    failed.load(Ordering::Relaxed)
}

/// Makes the hard links left for the end, then sets the times of their directories again.
pub fn late_links(set: &Settings, late: Vec<Late>, diag: &mut Diag) {
    if late.is_empty() {
        return;
    }
    let mut p = Prog::new();
    let times = p.buffer(cosy_model::flags::TIMES_BYTES as u32);
    let mut ops = Vec::new();
    for l in &late {
        let old = p.path(l.first.as_os_str().as_bytes());
        let new = p.path(l.dir.join(&l.name).as_os_str().as_bytes());
        let at = p.sys(
            Sys::Linkat,
            vec![
                Arg::Fd(FdRef::Cwd),
                Arg::Path(old),
                Arg::Fd(FdRef::Cwd),
                Arg::Path(new),
                Arg::Value(Value::Imm(0)),
            ],
            Ret::None,
        );
        ops.push(at);
    }
    if set.times {
        let mut dirs: Vec<&Late> = late.iter().collect();
        dirs.sort_by(|a, b| a.dir.cmp(&b.dir));
        dirs.dedup_by(|a, b| a.dir == b.dir);
        for l in dirs {
            let d = p.path(l.dir.as_os_str().as_bytes());
            p.store64(times, 0, l.dir_st.atime.sec);
            p.store64(times, 8, i64::from(l.dir_st.atime.nsec));
            p.store64(times, 16, l.dir_st.mtime.sec);
            p.store64(times, 24, i64::from(l.dir_st.mtime.nsec));
            p.sys(
                Sys::Utimensat,
                vec![
                    Arg::Fd(FdRef::Cwd),
                    Arg::Path(d),
                    Arg::Buf(BufRange::whole(times)),
                    Arg::Value(Value::Imm(0)),
                ],
                Ret::None,
            );
        }
    }
    let Some((out, _)) = p.run() else {
        diag.errno("cannot create hard links", libc::EINVAL);
        return;
    };
    for e in &out.errors {
        if let Some(k) = ops.iter().position(|&at| at == e.op) {
            let l = &late[k];
            diag.errno(
                format_args!(
                    "cannot create hard link {} to {}",
                    quote(l.dir.join(&l.name)),
                    quote(&l.first)
                ),
                e.errno,
            );
        }
    }
}
