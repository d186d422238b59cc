//! A directory tree copied: the walker reads the source (each directory relative to its
//! parent), this visitor makes the destination beside it. For each directory it stats the
//! entries, makes the subdirectories, and copies the rest in one compound ([`super::batch`]);
//! the directory's own metadata is set when the walker leaves it ([`super::meta`]).
//!
//! The destination directories are held open as the walk goes down, at most
//! [`MAX_DST_OPEN`] of them (the deepest); one closed early is reopened through `..` of its
//! child when the walk climbs back to it.

use cosy_model::flags::{Mode, OFlags};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cosy_exec::session::{BufHandle, Call, Fd, FdHandle, Session};

use super::Shared;
use super::batch::{Batch, DirFds, DirPaths, Item, What, stat_at};
use super::meta::{self, DirEnd, MADE_MODE};
use super::parallel::Late;
use super::prog::fd_path;
use crate::tools::common::{Diag, quote};
use crate::tools::stat::Stat;
use crate::tools::walk::{Dir, Entry, Failed, Visitor};

/// Destination directories open at once, at most.
pub const MAX_DST_OPEN: usize = 8;

/// A file's identity: device and inode.
pub type Id = (u32, u32, u64);

/// A destination directory being filled.
pub struct Frame {
    /// Its path as the user would name it.
    pub path: PathBuf,
    /// Its descriptor, and the number the process knows it by; `None` when closed early.
    pub handle: Option<(FdHandle, i64)>,
    /// The source directory's statx.
    pub st: Stat,
    /// Made by this copy.
    pub fresh: bool,
    /// It could not be opened: nothing is copied into it.
    pub broken: bool,
    /// Subdirectories made, not entered yet: their source statx and whether they are new.
    pub pending: HashMap<OsString, (Stat, bool)>,
}

/// The copy of one source tree (or of a part of it).
pub struct Tree<'a> {
    /// What the walks of the source share.
    pub sh: &'a Shared<'a>,
    /// Where failures go.
    pub diag: &'a mut Diag,
    /// The destination directories, the deepest last (the root first).
    pub frames: Vec<Frame>,
    /// A statx buffer of the session.
    pub stbuf: BufHandle,
    /// The root's subdirectories are made, not walked (other threads walk them).
    pub split: bool,
}

fn join(dir: &Path, name: &OsStr) -> PathBuf {
    if dir.as_os_str().is_empty() {
        PathBuf::from(name)
    } else {
        dir.join(name)
    }
}

/// Opens the directory `name` of `dir` (no symlink followed) in the session.
pub fn open_dir(s: &mut Session, dir: Fd, name: &OsStr) -> Result<(FdHandle, i64), i32> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    let h = s
        .send(Call::openat(
            dir,
            name,
            OFlags::from_bits_retain(flags as u32),
            Mode::empty(),
        ))
        .map_err(|_| libc::EMFILE)?;
    match s.get(h) {
        Ok(fd) => Ok((h, fd)),
        Err(e) => Err(e.errno().unwrap_or(libc::EIO)),
    }
}

impl Tree<'_> {
    /// `what`, or a link to the first copy of the same file (`-a`); `None` when the link is
    /// made later (by [`super::parallel::late_links`]).
    fn link_or(&mut self, what: What, st: &Stat, name: &OsStr, dst: PathBuf) -> Option<What> {
        if !self.sh.set.links || st.nlink < 2 {
            return Some(what);
        }
        let mut links = self.sh.links.lock().unwrap_or_else(|e| e.into_inner());
        let Some(first) = links.get(&st.id()).cloned() else {
            links.insert(st.id(), dst);
            return Some(what);
        };
        drop(links);
        let Some(late) = self.sh.late else {
            return Some(What::Link(first));
        };
        let top = self.frames.last()?;
        late.lock().unwrap_or_else(|e| e.into_inner()).push(Late {
            first,
            dir: top.path.clone(),
            name: name.to_os_string(),
            dir_st: top.st,
        });
        None
    }

    /// Closes the shallowest open destination directory but the deepest, when too many are
    /// open.
    fn evict(&mut self, s: &mut Session) {
        let open = self.frames.iter().filter(|f| f.handle.is_some()).count();
        if open <= MAX_DST_OPEN {
            return;
        }
        let last = self.frames.len().saturating_sub(1);
        if let Some(f) = self.frames[..last].iter_mut().find(|f| f.handle.is_some())
            && let Some((h, _)) = f.handle.take()
        {
            let _ = s.send(Call::close(h));
        }
    }

    /// Makes the subdirectory `name` of the destination directory `dst` (a frame's handle);
    /// whether it is new, or `None` (reported) when there is no directory to copy into.
    fn make_dir(
        &mut self,
        s: &mut Session,
        dst: FdHandle,
        dst_path: &Path,
        name: &OsStr,
        src: &Path,
    ) -> Option<bool> {
        let h = s
            .send(Call::mkdirat(dst, name, Mode::from_raw_mode(MADE_MODE)))
            .ok()?;
        match s.get(h) {
            Ok(_) => Some(true),
            Err(e) => {
                let errno = e.errno().unwrap_or(libc::EIO);
                let shown = join(dst_path, name);
                if errno == libc::EEXIST {
                    match stat_at(s, Fd::Handle(dst), name, true, self.stbuf) {
                        Ok(st) if st.is_dir() => return Some(false),
                        _ => {
                            self.diag.error(format_args!(
                                "cannot overwrite non-directory {} with directory {}",
                                quote(&shown),
                                quote(src)
                            ));
                            return None;
                        }
                    }
                }
                self.diag.errno(
                    format_args!("cannot create directory {}", quote(&shown)),
                    errno,
                );
                None
            }
        }
    }

    /// Sets the metadata of the frame on top and closes it (its parent reopened through
    /// `..` first if it was closed early).
    pub fn pop(&mut self, s: &mut Session, src_fd: Option<i64>) {
        let Some(f) = self.frames.pop() else { return };
        if let Some((h, fd)) = f.handle {
            if !f.broken {
                let end = DirEnd {
                    src: src_fd.map(fd_path),
                    dst: fd_path(fd),
                    shown: &f.path,
                    st: f.st,
                    fresh: f.fresh,
                };
                meta::finish(self.sh.set, &end, self.diag);
            }
            if let Some(parent) = self.frames.last_mut()
                && parent.handle.is_none()
                && let Ok(p) = open_dir(s, Fd::Handle(h), OsStr::new(".."))
            {
                parent.handle = Some(p);
            }
            let _ = s.send(Call::close(h));
        }
    }
}

impl Visitor for Tree<'_> {
    fn enter(&mut self, s: &mut Session, dir: &Dir<'_>, mut entries: Vec<Entry>) -> Vec<OsString> {
        if dir.depth > 0 {
            let name = dir.path.file_name().unwrap_or_default().to_os_string();
            let Some(parent) = self.frames.last_mut() else {
                return Vec::new();
            };
            let (st, fresh) = parent.pending.remove(&name).unwrap_or_default();
            let path = join(&parent.path, &name);
            let handle = match parent.handle {
                Some((ph, _)) => open_dir(s, Fd::Handle(ph), &name),
                None => Err(libc::EBADF),
            };
            let broken = match &handle {
                Ok(_) => false,
                Err(e) => {
                    self.diag
                        .errno(format_args!("cannot access {}", quote(&path)), *e);
                    true
                }
            };
            self.frames.push(Frame {
                path,
                handle: handle.ok(),
                st,
                fresh,
                broken,
                pending: HashMap::new(),
            });
            self.evict(s);
        }
        let Some(top) = self.frames.last() else {
            return Vec::new();
        };
        if top.broken {
            return Vec::new();
        }
        let Some((dst, dst_fd)) = top.handle else {
            return Vec::new();
        };
        let dst_path = top.path.clone();
        let fresh = top.fresh;
        let Ok(src_fd) = s.get(dir.handle) else {
            return Vec::new();
        };
        // Inode order: what cp does on most file systems, and fewer seeks on a disk.
        entries.sort_by_key(|e| e.ino);
        let mut items = Vec::new();
        let mut descend = Vec::new();
        let mut pending = Vec::new();
        for e in entries {
            let src = join(dir.path, &e.name);
            let st = match stat_at(
                s,
                Fd::Handle(dir.handle),
                &e.name,
                self.sh.set.follow,
                self.stbuf,
            ) {
                Ok(st) => st,
                Err(errno) => {
                    self.diag
                        .errno(format_args!("cannot stat {}", quote(&src)), errno);
                    continue;
                }
            };
            let dst_name = join(&dst_path, &e.name);
            match st.kind() {
                libc::S_IFDIR => {
                    if self.sh.dst_root == Some(st.id()) {
                        self.diag.error(format_args!(
                            "cannot copy a directory, {}, into itself, {}",
                            quote(&self.sh.src_root),
                            quote(&dst_name)
                        ));
                        continue;
                    }
                    if let Some(new) = self.make_dir(s, dst, &dst_path, &e.name, &src) {
                        pending.push((e.name.clone(), (st, new)));
                        if !(self.split && dir.depth == 0) {
                            descend.push(e.name);
                        }
                    }
                }
                libc::S_IFREG => {
                    let Some(what) = self.link_or(What::File, &st, &e.name, dst_name) else {
                        continue;
                    };
                    items.push(Item {
                        to: e.name.clone(),
                        name: e.name,
                        st,
                        what,
                    });
                }
                libc::S_IFLNK => {
                    let Some(what) = self.link_or(What::Symlink, &st, &e.name, dst_name) else {
                        continue;
                    };
                    items.push(Item {
                        to: e.name.clone(),
                        name: e.name,
                        st,
                        what,
                    });
                }
                kind => {
                    // The operation table has no mknodat: FIFOs, sockets and devices cannot be
                    // made, and are never opened (a FIFO would block the copy).
                    let what = if kind == libc::S_IFIFO {
                        "fifo"
                    } else {
                        "special file"
                    };
                    self.diag.errno(
                        format_args!("cannot create {what} {}", quote(&dst_name)),
                        libc::EOPNOTSUPP,
                    );
                }
            }
        }
        if let Some(top) = self.frames.last_mut() {
            top.pending.extend(pending);
        }
        if !items.is_empty() {
            let batch = Batch {
                set: self.sh.set,
                fds: DirFds {
                    src: src_fd,
                    dst: dst_fd,
                    fresh,
                },
                paths: DirPaths {
                    src: dir.path,
                    dst: &dst_path,
                },
            };
            batch.copy(&items, self.diag);
        }
        descend
    }

    fn leave(&mut self, s: &mut Session, dir: &Dir<'_>) {
        if dir.depth == 0 {
            // The root's frame is the caller's: it finishes it after the walk.
            return;
        }
        let src_fd = s.get(dir.handle).ok();
        self.pop(s, src_fd);
    }

    fn error(&mut self, path: &Path, depth: usize, failed: Failed) {
        let errno = match failed {
            Failed::Open(e) | Failed::Read(e) | Failed::Reopen(e) => e,
        };
        self.diag
            .errno(format_args!("cannot access {}", quote(path)), errno);
        if depth == 0 || !matches!(failed, Failed::Open(_)) {
            return;
        }
        // A subdirectory that could not be opened: its copy, made empty, gets its metadata.
        let name = path.file_name().unwrap_or_default().to_os_string();
        let Some(top) = self.frames.last_mut() else {
            return;
        };
        let Some((st, fresh)) = top.pending.remove(&name) else {
            return;
        };
        let Some((_, fd)) = top.handle else { return };
        let mut dst = fd_path(fd);
        dst.push(b'/');
        dst.extend_from_slice(name.as_bytes());
        let shown = join(&top.path, &name);
        let end = DirEnd {
            src: None,
            dst,
            shown: &shown,
            st,
            fresh,
        };
        meta::finish(self.sh.set, &end, self.diag);
    }
}
