//! The policy root (docs/semantics.md, "Paths and the policy root").
//!
//! With a root, the executor opens the root directory once (`O_PATH | O_DIRECTORY`) and every
//! path operation resolves beneath it:
//!
//! - `cwd` is the root's descriptor;
//! - an absolute path lexically inside the root is made relative to it (`/srv/x` with root
//!   `/srv` is `x`; the root is compared both as given, made absolute, and canonicalised);
//!   any other absolute path fails with `EXDEV` without a system call;
//! - then each call as its row's [`Confine`] says (matched here without a wildcard, so a row
//!   with a path cannot be added without deciding how it is confined):
//!   - [`Confine::Open`] (`openat`, `openat2`): `openat2` with
//!     `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` ([`CONFINE`]);
//!   - [`Confine::Object`] (`statx`, `fchmodat`, `fchownat`, `utimensat`, `faccessat2`): the
//!     path is opened `O_PATH` that way (with `O_NOFOLLOW` for `AT_SYMLINK_NOFOLLOW`), then the
//!     call is made on that descriptor with an empty path and `AT_EMPTY_PATH`
//!     (`statx(fd, "", AT_EMPTY_PATH, …)`); an empty path with `AT_EMPTY_PATH` acts on the
//!     directory descriptor itself (the root for `cwd`). A single name (no `/`, not `.` or
//!     `..`) with `AT_SYMLINK_NOFOLLOW` cannot lead out of its directory, which is beneath the
//!     root (the root, or a descriptor the compound opened beneath it): that call is made as it
//!     is, one system call (what `du`- and `ls`-like compounds make for every entry);
//!   - [`Confine::Parent`] (`mkdirat`, `unlinkat`, `readlinkat`): the parent directory is
//!     opened that way and the call acts on the last component, which must not be `.` or
//!     `..` (else `EXDEV`); the kernel does not follow a last component these calls name;
//!   - [`Confine::TwoParents`] (`renameat2`): both paths so;
//!   - [`Confine::Link`] (`linkat`): both paths so; with `AT_SYMLINK_FOLLOW` the old path is
//!     opened `O_PATH` beneath the root (following links inside it) and linked from that
//!     descriptor (`AT_EMPTY_PATH`, or `/proc/self/fd/N` with `AT_SYMLINK_FOLLOW` where
//!     `AT_EMPTY_PATH` needs `CAP_DAC_READ_SEARCH`);
//!   - [`Confine::Symlink`] (`symlinkat`): the link path as a parent; the target, which the
//!     kernel stores without resolving it, must be relative with no `..` component, else
//!     `EXDEV` without a system call: no link made under the root points out of it by its
//!     spelling (one that passes through another link is resolved, beneath the root, when a
//!     compound uses it);
//!   - [`Confine::NoPath`]: issued as it is.
//!
//! Every helper call is reported to the [`Recorder`] (it counts as a system call), and its
//! error is the operation's error.

use std::borrow::Cow;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use cosy_model::flags::{RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS};
use cosy_model::{ArgKind, Confine, FlagSet, Sys};
use rustix::fs::{Mode, OFlags};
use syscalls::Errno;

use crate::outcome::Recorder;
use crate::sys::{self, AT_FDCWD, Resolved, ResolvedArgs};

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
/// operands `a` becomes (`O_CLOEXEC` added, `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`): the
/// direct path and the ring's `IORING_OP_OPENAT2` both open this way.
pub(crate) fn open_how(call: Sys, a: &ResolvedArgs) -> Result<(u64, u64, u64), Errno> {
    Ok(match call.spec().arg_of(ArgKind::Flags(FlagSet::Resolve)) {
        Some(ri) => {
            let flags = a.int(2)? as u64 | libc::O_CLOEXEC as u64;
            (flags, a.int(3)? as u64, a.int(ri)? as u64 | CONFINE)
        }
        None => {
            // openat truncates flags to an int and ignores the mode unless creating; openat2
            // refuses both, so pass what openat would have used.
            let flags = u64::from(a.int(2)? as u32) | libc::O_CLOEXEC as u64;
            let mode = if cosy_model::flags::open_uses_mode(flags as i64) {
                a.int(3)? as u64 & 0o7777
            } else {
                0
            };
            (flags, mode, CONFINE)
        }
    })
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
        let spec = call.spec();
        match spec.confine {
            Confine::NoPath => {
                let r = sys::issue(call, a, arena);
                self.rec(call, a.first_fd(), r)
            }
            Confine::Open => self.open(call, a),
            Confine::Object => {
                let fi = spec
                    .arg_of(ArgKind::Flags(FlagSet::At))
                    .ok_or(Errno::EINVAL)?;
                self.object(call, a, arena, fi)
            }
            Confine::Parent => {
                let p = self.parent(call, a.fd(0)?, a.path(1)?)?;
                let mut b = a.clone();
                b.items[0] = Resolved::Fd(p.dirfd);
                b.items[1] = Resolved::Path(p.last.as_c_str().into());
                let r = sys::issue(call, &mut b, arena);
                let r = self.rec(call, p.dirfd, r);
                self.release(&p);
                r
            }
            Confine::TwoParents => self.two_parents(call, a, arena),
            Confine::Link => {
                let fi = spec
                    .arg_of(ArgKind::Flags(FlagSet::At))
                    .ok_or(Errno::EINVAL)?;
                if a.int(fi)? & i64::from(libc::AT_SYMLINK_FOLLOW) == 0 {
                    self.two_parents(call, a, arena)
                } else {
                    self.link_followed(call, a, fi)
                }
            }
            Confine::Symlink => {
                let target = a.path(0)?;
                if !target_stays_inside(target.to_bytes()) {
                    self.rec
                        .call(self.op, call, a.fd(1)?, -i64::from(libc::EXDEV), false);
                    return Err(Errno::EXDEV);
                }
                let p = self.parent(call, a.fd(1)?, a.path(2)?)?;
                let mut b = a.clone();
                b.items[1] = Resolved::Fd(p.dirfd);
                b.items[2] = Resolved::Path(p.last.as_c_str().into());
                let r = sys::issue(call, &mut b, arena);
                let r = self.rec(call, p.dirfd, r);
                self.release(&p);
                r
            }
        }
    }

    /// openat or openat2 (the row with a resolve operand) as openat2 beneath the root.
    fn open(&mut self, call: Sys, a: &ResolvedArgs) -> Result<i64, Errno> {
        let (d, p) = self.map(call, a.fd(0)?, a.path(1)?)?;
        let (flags, mode, resolve) = open_how(call, a)?;
        let r = sys::openat2(d, &p, flags, mode, resolve);
        self.rec(Sys::Openat2, d, r)
    }

    /// [`Confine::Object`]: the object opened `O_PATH` beneath the root, then the call on it
    /// with an empty path and `AT_EMPTY_PATH` in its flags (operand `fi`).
    fn object(
        &mut self,
        call: Sys,
        a: &ResolvedArgs,
        arena: &mut [u8],
        fi: usize,
    ) -> Result<i64, Errno> {
        let (dirfd, path, flags) = (a.fd(0)?, a.path(1)?, a.int(fi)?);
        let mut b = a.clone();
        if path.is_empty() && flags & i64::from(libc::AT_EMPTY_PATH) != 0 {
            // The directory descriptor itself (the root for `cwd`): inside by construction.
            let d = if dirfd == AT_FDCWD {
                self.root.fd()
            } else {
                dirfd
            };
            b.items[0] = Resolved::Fd(d);
            let r = sys::issue(call, &mut b, arena);
            return self.rec(call, d, r);
        }
        let (d, p) = self.map(call, dirfd, path)?;
        let nofollow = flags & i64::from(libc::AT_SYMLINK_NOFOLLOW) != 0;
        if nofollow && single_name(p.to_bytes()) {
            // One name in a directory beneath the root, not followed if it is a link: the
            // kernel looks it up in that directory and goes no further, so the call is made
            // as it is (one system call where the general case makes three).
            b.items[0] = Resolved::Fd(d);
            b.items[1] = Resolved::Path(p.as_ref().into());
            let r = sys::issue(call, &mut b, arena);
            return self.rec(call, d, r);
        }
        let oflags = libc::O_PATH as u64 | if nofollow { libc::O_NOFOLLOW as u64 } else { 0 };
        let fd = self.open_beneath(d, &p, oflags)?;
        b.items[0] = Resolved::Fd(fd as i32);
        b.items[1] = Resolved::Path(c"".into());
        b.items[fi] = Resolved::Int(
            (flags & !i64::from(libc::AT_SYMLINK_NOFOLLOW)) | i64::from(libc::AT_EMPTY_PATH),
        );
        let r = sys::issue(call, &mut b, arena);
        let r = self.rec(call, fd as i32, r);
        self.close(fd);
        r
    }

    /// [`Confine::TwoParents`]: operands (0, 1) and (2, 3) each as a parent and a last
    /// component.
    fn two_parents(&mut self, call: Sys, a: &ResolvedArgs, arena: &mut [u8]) -> Result<i64, Errno> {
        let old = self.parent(call, a.fd(0)?, a.path(1)?)?;
        let new = match self.parent(call, a.fd(2)?, a.path(3)?) {
            Ok(n) => n,
            Err(e) => {
                self.release(&old);
                return Err(e);
            }
        };
        let mut b = a.clone();
        b.items[0] = Resolved::Fd(old.dirfd);
        b.items[1] = Resolved::Path(old.last.as_c_str().into());
        b.items[2] = Resolved::Fd(new.dirfd);
        b.items[3] = Resolved::Path(new.last.as_c_str().into());
        let r = sys::issue(call, &mut b, arena);
        let r = self.rec(call, old.dirfd, r);
        self.release(&new);
        self.release(&old);
        r
    }

    /// linkat with `AT_SYMLINK_FOLLOW` (flags operand `fi`): the old path opened `O_PATH`
    /// beneath the root (following symbolic links, all inside), the new one as a parent, then
    /// a link from the descriptor: `linkat(fd, "", …, AT_EMPTY_PATH)`, or, where that needs a
    /// capability the process lacks (`ENOENT`), `linkat(AT_FDCWD, "/proc/self/fd/N", …,
    /// AT_SYMLINK_FOLLOW)`, the unprivileged form of the man page.
    fn link_followed(&mut self, call: Sys, a: &ResolvedArgs, fi: usize) -> Result<i64, Errno> {
        let (dirfd, path, flags) = (a.fd(0)?, a.path(1)?, a.int(fi)?);
        let (fd, opened) = if path.is_empty() && flags & i64::from(libc::AT_EMPTY_PATH) != 0 {
            let d = if dirfd == AT_FDCWD {
                self.root.fd()
            } else {
                dirfd
            };
            (d, false)
        } else {
            let (d, p) = self.map(call, dirfd, path)?;
            (self.open_beneath(d, &p, libc::O_PATH as u64)? as i32, true)
        };
        let new = match self.parent(call, a.fd(2)?, a.path(3)?) {
            Ok(n) => n,
            Err(e) => {
                if opened {
                    self.close(i64::from(fd));
                }
                return Err(e);
            }
        };
        let empty = i64::from(libc::AT_EMPTY_PATH);
        let r = sys::linkat(fd, c"", new.dirfd, &new.last, empty);
        let mut r = self.rec(call, fd, r);
        if r == Err(Errno::ENOENT) {
            let proc = CString::new(format!("/proc/self/fd/{fd}")).map_err(|_| Errno::EINVAL)?;
            let follow = i64::from(libc::AT_SYMLINK_FOLLOW);
            let again = sys::linkat(AT_FDCWD, &proc, new.dirfd, &new.last, follow);
            r = self.rec(call, fd, again);
        }
        self.release(&new);
        if opened {
            self.close(i64::from(fd));
        }
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

/// Whether `name` is one directory entry's name: not empty, no `/` (a trailing one would make
/// the kernel follow a link to a directory), not `.` or `..`.
fn single_name(name: &[u8]) -> bool {
    !name.is_empty() && !name.contains(&b'/') && name != b"." && name != b".."
}

/// Whether a symbolic link's target, resolved from the link's directory inside the root, stays
/// inside it by its spelling: relative, with no `..` component. (Symbolic links it passes
/// through are resolved when used, beneath the root.)
fn target_stays_inside(target: &[u8]) -> bool {
    !target.starts_with(b"/") && !target.split(|&b| b == b'/').any(|c| c == b"..")
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
    fn symlink_targets_inside_the_root() {
        assert!(target_stays_inside(b"a"));
        assert!(target_stays_inside(b"a/b/./c"));
        assert!(target_stays_inside(b"..a/b.."));
        assert!(!target_stays_inside(b"/etc/passwd"));
        assert!(!target_stays_inside(b".."));
        assert!(!target_stays_inside(b"a/../../x"));
        assert!(!target_stays_inside(b"a/.."));
    }

    #[test]
    fn trailing_slashes() {
        assert_eq!(trim_end_slashes(b"a//"), b"a");
        assert_eq!(trim_end_slashes(b"///"), b"");
    }
}
