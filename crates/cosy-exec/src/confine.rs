//! The policy root (docs/semantics.md, "Paths and the policy root").
//!
//! With a root, the executor opens the root directory once (`O_PATH | O_DIRECTORY`) and every
//! path operation resolves beneath it:
//!
//! - `cwd` is the root's descriptor;
//! - an absolute path lexically inside the root is made relative to it (`/srv/x` with root
//!   `/srv` is `x`; the root is compared both as given, made absolute, and canonicalised);
//!   any other absolute path fails with `EXDEV` without a system call;
//! - `openat` and `openat2` become `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`;
//! - `statx` opens the path `O_PATH` (with `O_NOFOLLOW` for `AT_SYMLINK_NOFOLLOW`) the same
//!   way, then calls `statx(fd, "", AT_EMPTY_PATH)`;
//! - `mkdirat`, `unlinkat` and `renameat2` open the parent directory the same way and act on
//!   the last component, which must not be `.` or `..` (else `EXDEV`).
//!
//! Every helper call is reported to the [`Recorder`] (it counts as a system call), and its
//! error is the operation's error.

use std::borrow::Cow;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use cosy_model::Sys;
use cosy_model::flags::{RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS};
use rustix::fs::{Mode, OFlags};
use syscalls::Errno;

use crate::outcome::Recorder;
use crate::sys::{self, AT_FDCWD, ResolvedArgs};

/// The resolve flags every confined open gets.
pub const CONFINE: u64 = (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) as u64;

/// An open policy root.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    prefixes: Vec<PathBuf>,
}

impl Root {
    /// Opens `path` (`O_PATH | O_DIRECTORY | O_CLOEXEC`).
    pub fn open(path: &Path) -> std::io::Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut prefixes = Vec::new();
        if let Ok(abs) = std::path::absolute(path) {
            prefixes.push(lexical(&abs));
        }
        if let Ok(canon) = std::fs::canonicalize(path)
            && !prefixes.contains(&canon)
        {
            prefixes.push(canon);
        }
        Ok(Root { fd, prefixes })
    }

    /// Another handle on the same root (a duplicated descriptor), for a thread of its own.
    pub fn try_clone(&self) -> std::io::Result<Root> {
        Ok(Root {
            fd: self.fd.try_clone()?,
            prefixes: self.prefixes.clone(),
        })
    }

    /// The root's descriptor.
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Where `(dirfd, path)` must be resolved: `AT_FDCWD` becomes the root, an absolute path
    /// inside the root becomes relative to it (the root itself is `.`), one outside is `EXDEV`.
    pub fn map<'p>(&self, dirfd: i32, path: &'p CStr) -> Result<(i32, Cow<'p, CStr>), Errno> {
        let bytes = path.to_bytes();
        if !bytes.starts_with(b"/") {
            let d = if dirfd == AT_FDCWD { self.fd() } else { dirfd };
            return Ok((d, Cow::Borrowed(path)));
        }
        let p = Path::new(OsStr::from_bytes(bytes));
        for prefix in &self.prefixes {
            if let Ok(rest) = p.strip_prefix(prefix) {
                let mut rel = rest.as_os_str().as_bytes().to_vec();
                if rel.is_empty() {
                    rel.push(b'.');
                }
                if bytes.ends_with(b"/") && !rel.ends_with(b"/") {
                    rel.push(b'/');
                }
                // A path from a CStr has no NUL inside.
                let c = CString::new(rel).map_err(|_| Errno::EINVAL)?;
                return Ok((self.fd(), Cow::Owned(c)));
            }
        }
        Err(Errno::EXDEV)
    }

    /// Issues `call` (operation `op`, which takes a path) confined to the root. Returns the
    /// result or `-errno`.
    pub fn issue(
        &self,
        op: u32,
        call: Sys,
        a: &mut ResolvedArgs,
        mem: &mut [u8],
        rec: &mut Recorder,
    ) -> i64 {
        let mut cx = Cx {
            root: self,
            op,
            rec,
        };
        match cx.dispatch(call, a, mem) {
            Ok(v) => v,
            Err(e) => -i64::from(e.into_raw()),
        }
    }
}

/// The `(flags, mode, resolve)` of the confined `openat2` an `openat` or `openat2` with
/// operands `a` becomes (`O_CLOEXEC` added, `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`).
pub(crate) fn open_how(call: Sys, a: &ResolvedArgs) -> Result<(u64, u64, u64), Errno> {
    if call == Sys::Openat2 {
        let flags = a.int(2)? as u64 | libc::O_CLOEXEC as u64;
        return Ok((flags, a.int(3)? as u64, a.int(4)? as u64 | CONFINE));
    }
    // openat truncates flags to an int and ignores the mode unless creating; openat2 refuses
    // both, so pass what openat would have used.
    let flags = u64::from(a.int(2)? as u32) | libc::O_CLOEXEC as u64;
    let creating = flags & libc::O_CREAT as u64 != 0
        || flags & libc::O_TMPFILE as u64 == libc::O_TMPFILE as u64;
    let mode = if creating {
        a.int(3)? as u64 & 0o7777
    } else {
        0
    };
    Ok((flags, mode, CONFINE))
}

/// Removes `.` components and applies `..` lexically (for the root's own path only).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

struct Cx<'a> {
    root: &'a Root,
    op: u32,
    rec: &'a mut Recorder,
}

impl Cx<'_> {
    /// Records one call on descriptor `fd` and passes its result on.
    fn rec(&mut self, call: Sys, fd: i32, r: Result<i64, Errno>) -> Result<i64, Errno> {
        self.rec.call(self.op, call, fd, sys::to_ret(r), true);
        r
    }

    /// Maps a path; a refusal is recorded for `call` (no system call made).
    fn map<'p>(
        &mut self,
        call: Sys,
        dirfd: i32,
        path: &'p CStr,
    ) -> Result<(i32, Cow<'p, CStr>), Errno> {
        self.root.map(dirfd, path).inspect_err(|e| {
            self.rec
                .call(self.op, call, dirfd, -i64::from(e.into_raw()), false)
        })
    }

    fn open_beneath(&mut self, dirfd: i32, path: &CStr, flags: u64) -> Result<i64, Errno> {
        let r = sys::openat2(dirfd, path, flags | libc::O_CLOEXEC as u64, 0, CONFINE);
        self.rec(Sys::Openat2, dirfd, r)
    }

    fn close(&mut self, fd: i64) {
        let r = sys::close(fd as i32);
        let _ = self.rec(Sys::Close, fd as i32, r);
    }

    fn dispatch(
        &mut self,
        call: Sys,
        a: &mut ResolvedArgs,
        arena: &mut [u8],
    ) -> Result<i64, Errno> {
        match call {
            Sys::Openat | Sys::Openat2 => {
                let (d, p) = self.map(call, a.fd(0)?, a.path(1)?)?;
                let how = open_how(call, a)?;
                let r = sys::openat2(d, &p, how.0, how.1, how.2);
                self.rec(Sys::Openat2, d, r)
            }
            Sys::Statx => {
                let (dirfd, path, flags, mask, buf) =
                    (a.fd(0)?, a.path(1)?, a.int(2)?, a.int(3)?, a.buf(4)?);
                let empty_ok = flags & i64::from(libc::AT_EMPTY_PATH) != 0;
                if path.is_empty() && empty_ok {
                    // The directory descriptor itself (the root for `cwd`): inside by
                    // construction.
                    let d = if dirfd == AT_FDCWD {
                        self.root.fd()
                    } else {
                        dirfd
                    };
                    let r = sys::statx(d, c"", flags, mask, arena, buf);
                    return self.rec(Sys::Statx, d, r);
                }
                let (d, p) = self.map(call, dirfd, path)?;
                let nofollow = flags & i64::from(libc::AT_SYMLINK_NOFOLLOW) != 0;
                let oflags =
                    libc::O_PATH as u64 | if nofollow { libc::O_NOFOLLOW as u64 } else { 0 };
                let fd = self.open_beneath(d, &p, oflags)?;
                let sflags = (flags & !i64::from(libc::AT_SYMLINK_NOFOLLOW))
                    | i64::from(libc::AT_EMPTY_PATH);
                let r = sys::statx(fd as i32, c"", sflags, mask, arena, buf);
                let r = self.rec(Sys::Statx, fd as i32, r);
                self.close(fd);
                r
            }
            Sys::Mkdirat => {
                let mode = a.int(2)?;
                self.in_parent(call, a.fd(0)?, a.path(1)?, |d, last| {
                    sys::mkdirat(d, last, mode)
                })
            }
            Sys::Unlinkat => {
                let flags = a.int(2)?;
                self.in_parent(call, a.fd(0)?, a.path(1)?, |d, last| {
                    sys::unlinkat(d, last, flags)
                })
            }
            Sys::Renameat2 => {
                let (od, op, nd, np, flags) =
                    (a.fd(0)?, a.path(1)?, a.fd(2)?, a.path(3)?, a.int(4)?);
                let old = self.parent(call, od, op)?;
                let new = match self.parent(call, nd, np) {
                    Ok(n) => n,
                    Err(e) => {
                        self.release(&old);
                        return Err(e);
                    }
                };
                let r = sys::renameat2(old.dirfd, &old.last, new.dirfd, &new.last, flags);
                let r = self.rec(Sys::Renameat2, old.dirfd, r);
                self.release(&new);
                self.release(&old);
                r
            }
            // Calls without a path are not confined.
            _ => {
                let r = sys::issue(call, a, arena);
                self.rec(call, a.first_fd(), r)
            }
        }
    }

    /// Resolves the parent of `path` beneath the root and runs `f` on (parent fd, last
    /// component), recording it as `call`.
    fn in_parent(
        &mut self,
        call: Sys,
        dirfd: i32,
        path: &CStr,
        f: impl FnOnce(i32, &CStr) -> Result<i64, Errno>,
    ) -> Result<i64, Errno> {
        let p = self.parent(call, dirfd, path)?;
        let r = f(p.dirfd, &p.last);
        let r = self.rec(call, p.dirfd, r);
        self.release(&p);
        r
    }

    fn release(&mut self, p: &Parent) {
        if p.opened {
            self.close(i64::from(p.dirfd));
        }
    }

    fn parent(&mut self, call: Sys, dirfd: i32, path: &CStr) -> Result<Parent, Errno> {
        let (d, p) = self.map(call, dirfd, path)?;
        let bytes = p.to_bytes();
        if bytes.is_empty() {
            // The kernel's answer for an empty path (ENOENT); nothing to resolve.
            return Ok(Parent {
                dirfd: d,
                last: CString::default(),
                opened: false,
            });
        }
        let trimmed = trim_end_slashes(bytes);
        let (parent, last) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (Some(&trimmed[..=i]), &bytes[i + 1..]),
            None => (None, bytes),
        };
        let name = trim_end_slashes(last);
        if name.is_empty() || name == b"." || name == b".." {
            self.rec
                .call(self.op, call, d, -i64::from(libc::EXDEV), false);
            return Err(Errno::EXDEV);
        }
        let last = CString::new(last).map_err(|_| Errno::EINVAL)?;
        match parent {
            None => Ok(Parent {
                dirfd: d,
                last,
                opened: false,
            }),
            Some(parent) => {
                let parent = CString::new(parent).map_err(|_| Errno::EINVAL)?;
                let fd =
                    self.open_beneath(d, &parent, (libc::O_PATH | libc::O_DIRECTORY) as u64)?;
                Ok(Parent {
                    dirfd: fd as i32,
                    last,
                    opened: true,
                })
            }
        }
    }
}

struct Parent {
    dirfd: i32,
    last: CString,
    opened: bool,
}

fn trim_end_slashes(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b'/'] = b {
        b = rest;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_map_lexically() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let abs = dir.path().join("a/b");
        let c = CString::new(abs.as_os_str().as_bytes()).unwrap();
        let (d, p) = root.map(AT_FDCWD, &c).unwrap();
        assert_eq!(d, root.fd());
        assert_eq!(p.to_bytes(), b"a/b");
        let c = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        assert_eq!(root.map(5, &c).unwrap().1.to_bytes(), b".");
        let mut with_slash = dir.path().as_os_str().as_bytes().to_vec();
        with_slash.extend_from_slice(b"/x/");
        let c = CString::new(with_slash).unwrap();
        assert_eq!(root.map(5, &c).unwrap().1.to_bytes(), b"x/");
        assert_eq!(root.map(AT_FDCWD, c"/etc/passwd"), Err(Errno::EXDEV));
        // `..` stays in the relative path: the kernel refuses it (RESOLVE_BENEATH).
        let mut up = dir.path().as_os_str().as_bytes().to_vec();
        up.extend_from_slice(b"/../x");
        let c = CString::new(up).unwrap();
        assert_eq!(root.map(AT_FDCWD, &c).unwrap().1.to_bytes(), b"../x");
        // Relative paths keep their directory; cwd is the root.
        assert_eq!(root.map(7, c"x").unwrap(), (7, Cow::Borrowed(c"x")));
        assert_eq!(root.map(AT_FDCWD, c"x").unwrap().0, root.fd());
    }

    #[test]
    fn a_similar_prefix_is_not_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let mut other = dir.path().as_os_str().as_bytes().to_vec();
        other.extend_from_slice(b"-other/x");
        let c = CString::new(other).unwrap();
        assert_eq!(root.map(AT_FDCWD, &c), Err(Errno::EXDEV));
    }

    #[test]
    fn trailing_slashes() {
        assert_eq!(trim_end_slashes(b"a//"), b"a");
        assert_eq!(trim_end_slashes(b"///"), b"");
    }
}
