//! Directory trees walked through a session: depth first, without recursion (a tree of any
//! depth), with a bounded number of open directories (works under `ulimit -n 64`), every
//! directory opened relative to its parent (no path walk from the root, no `PATH_MAX` limit).
//!
//! The walker reads each directory's entries (getdents64(2)) and hands them to a
//! [`Visitor`], which does the tool's work on them (statx, open and read, copy) with the same
//! session and the directory's handle, and answers which entries to descend into, in the
//! order it wants them. Directories above the deepest [`Options::max_open`] are closed when
//! the bound is reached, and reopened through `..` when the walk climbs back to them (their
//! device and inode checked, as fts(3) does), or name by name from the nearest open ancestor
//! if `..` is not the same directory any more.

use cosy_model::flags::{Mode, OFlags};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use cosy_exec::session::{BufHandle, Call, Fd, FdHandle, Session};

use super::stat::{STATX_LEN, Stat};

/// What getdents64(2) says an entry is (`d_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `DT_REG`.
    File,
    /// `DT_DIR`.
    Dir,
    /// `DT_LNK`.
    Symlink,
    /// `DT_FIFO`.
    Fifo,
    /// `DT_SOCK`.
    Socket,
    /// `DT_CHR`.
    Char,
    /// `DT_BLK`.
    Block,
    /// `DT_UNKNOWN`: the file system does not say; stat the entry.
    Unknown,
}

impl Kind {
    fn of(d_type: u8) -> Kind {
        match d_type {
            libc::DT_REG => Kind::File,
            libc::DT_DIR => Kind::Dir,
            libc::DT_LNK => Kind::Symlink,
            libc::DT_FIFO => Kind::Fifo,
            libc::DT_SOCK => Kind::Socket,
            libc::DT_CHR => Kind::Char,
            libc::DT_BLK => Kind::Block,
            _ => Kind::Unknown,
        }
    }
}

/// A directory entry (not `.` or `..`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its name.
    pub name: OsString,
    /// Its inode (`d_ino`).
    pub ino: u64,
    /// Its type (`d_type`).
    pub kind: Kind,
}

/// A directory being walked.
#[derive(Debug)]
pub struct Dir<'a> {
    /// Its descriptor in the session (a descriptor of the process: usable as the directory of
    /// openat, statx, getdents64).
    pub handle: FdHandle,
    /// Its path as the user would write it: the root as given, then the names below it.
    pub path: &'a Path,
    /// 0 for the root.
    pub depth: usize,
}

/// What went wrong with a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    /// It could not be opened (errno).
    Open(i32),
    /// Its entries could not all be read (errno); those read before are still visited.
    Read(i32),
    /// It could not be reopened on the way back up (errno, or `ENOENT` when it moved).
    Reopen(i32),
}

/// The tool's part of a walk.
pub trait Visitor {
    /// Called for every directory opened, with its entries in the order getdents64 returned
    /// them; returns the names of the entries to descend into, in the order to visit them.
    /// A name that is not a directory when it is opened (a symlink too, when not following) is
    /// reported as `Failed::Open(ENOTDIR)`.
    fn enter(&mut self, s: &mut Session, dir: &Dir<'_>, entries: Vec<Entry>) -> Vec<OsString>;

    /// Called after every directory below `dir` was visited; `dir.handle` is open.
    fn leave(&mut self, _s: &mut Session, _dir: &Dir<'_>) {}

    /// A directory at `path` (`depth`) failed.
    fn error(&mut self, path: &Path, depth: usize, failed: Failed);
}

/// How to walk.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Directories open at once, at most (at least 2).
    pub max_open: usize,
    /// Follow symbolic links to directories below the root (`-L`).
    pub follow: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_open: 24,
            follow: false,
        }
    }
}

/// Bytes of the getdents64 buffer.
const DENTS: usize = 64 << 10;

struct Frame {
    name: OsString,
    handle: Option<FdHandle>,
    /// Device and inode, recorded when the handle is closed early.
    id: Option<(u32, u32, u64)>,
    /// Children still to visit, the next one last.
    todo: Vec<OsString>,
    /// Length of the path without this frame's name.
    parent_len: usize,
}

/// The session buffers a walk uses.
struct Bufs {
    dents: BufHandle,
    st: BufHandle,
}

/// Walks the directory `root` (opened relative to the working directory, following a
/// symlink at `root` itself), calling `v` for it and for every directory below it that `v`
/// asks for.
pub fn walk(s: &mut Session, root: &Path, opts: &Options, v: &mut dyn Visitor) {
    let Ok(dents) = s.buffer(DENTS) else {
        v.error(root, 0, Failed::Open(libc::ENOMEM));
        return;
    };
    let Ok(st) = s.buffer(STATX_LEN) else {
        v.error(root, 0, Failed::Open(libc::ENOMEM));
        return;
    };
    let b = Bufs { dents, st };
    let mut w = Walk {
        s,
        b,
        opts: Options {
            max_open: opts.max_open.max(2),
            ..*opts
        },
        frames: Vec::new(),
        path: root.to_path_buf(),
        open: 0,
    };
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    let h = match w.open(Fd::Cwd, root.as_os_str(), flags) {
        Ok(h) => h,
        Err(e) => return v.error(root, 0, Failed::Open(e)),
    };
    w.push(v, OsString::new(), h);
    w.run(v);
}

struct Walk<'s> {
    s: &'s mut Session,
    b: Bufs,
    opts: Options,
    frames: Vec<Frame>,
    path: PathBuf,
    open: usize,
}

impl Walk<'_> {
    fn open(&mut self, dir: Fd, name: &OsStr, flags: i32) -> Result<FdHandle, i32> {
        let h = self
            .s
            .send(Call::openat(
                dir,
                name,
                OFlags::from_bits_retain(flags as u32),
                Mode::empty(),
            ))
            .map_err(|_| libc::EMFILE)?;
        match self.s.get(h) {
            Ok(_) => {
                self.open += 1;
                Ok(h)
            }
            Err(e) => Err(e.errno().unwrap_or(libc::EIO)),
        }
    }

    fn close(&mut self, h: FdHandle) {
        if self.s.send(Call::close(h)).is_ok() {
            self.open -= 1;
        }
    }

    /// Reads the entries of `h`, then hands them to the visitor and pushes the frame.
    fn push(&mut self, v: &mut dyn Visitor, name: OsString, h: FdHandle) {
        let depth = self.frames.len();
        let (entries, err) = self.read(h);
        super::common::progress(entries.len() as u64);
        if let Some(e) = err {
            v.error(&self.path, depth, Failed::Read(e));
        }
        let dir = Dir {
            handle: h,
            path: &self.path,
            depth,
        };
        let mut todo = v.enter(self.s, &dir, entries);
        todo.reverse();
        let parent_len = if depth == 0 {
            self.path.as_os_str().len()
        } else {
            self.path.as_os_str().len() - name.len() - 1
        };
        self.frames.push(Frame {
            name,
            handle: Some(h),
            id: None,
            todo,
            parent_len,
        });
    }

    fn read(&mut self, h: FdHandle) -> (Vec<Entry>, Option<i32>) {
        let mut entries = Vec::new();
        loop {
            let n = match self.s.send(Call::getdents64(h, self.b.dents)) {
                Ok(n) => n,
                Err(_) => return (entries, Some(libc::EIO)),
            };
            let n = match self.s.get(n) {
                Ok(0) => return (entries, None),
                Ok(n) => n as usize,
                Err(e) => return (entries, Some(e.errno().unwrap_or(libc::EIO))),
            };
            let Ok(bytes) = self.s.bytes(self.b.dents) else {
                return (entries, Some(libc::EIO));
            };
            parse_dirents(&bytes[..n.min(bytes.len())], &mut entries);
        }
    }

    fn run(&mut self, v: &mut dyn Visitor) {
        while let Some(top) = self.frames.last_mut() {
            let Some(child) = top.todo.pop() else {
                self.leave(v);
                continue;
            };
            let depth = self.frames.len();
            let Some(parent) = self.handle_of_top(v) else {
                continue;
            };
            let base = self.path.as_os_str().len();
            self.path.push(&child);
            if self.open >= self.opts.max_open {
                self.evict();
            }
            let mut flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
            if !self.opts.follow {
                flags |= libc::O_NOFOLLOW;
            }
            match self.open(Fd::Handle(parent), &child, flags) {
                Ok(h) => self.push(v, child, h),
                Err(e) => {
                    v.error(&self.path, depth, Failed::Open(e));
                    truncate(&mut self.path, base);
                }
            }
        }
    }

    /// The top frame's handle, reopened if it was closed; `None` (the frame dropped, its
    /// failure reported) if it cannot be.
    fn handle_of_top(&mut self, v: &mut dyn Visitor) -> Option<FdHandle> {
        let i = self.frames.len() - 1;
        if let Some(h) = self.frames[i].handle {
            return Some(h);
        }
        match self.reopen_by_names(i) {
            Ok(h) => Some(h),
            Err(e) => {
                v.error(&self.path, i, Failed::Reopen(e));
                let f = self.frames.pop();
                if let Some(f) = f {
                    truncate(&mut self.path, f.parent_len);
                }
                None
            }
        }
    }

    /// Leaves the top frame: the visitor's `leave`, then its parent reopened through `..` if
    /// it was closed, then its own handle closed.
    fn leave(&mut self, v: &mut dyn Visitor) {
        let depth = self.frames.len() - 1;
        if let Some(h) = self.handle_of_top(v) {
            let dir = Dir {
                handle: h,
                path: &self.path,
                depth,
            };
            v.leave(self.s, &dir);
            if depth > 0 && self.frames[depth - 1].handle.is_none() {
                self.reopen_through_dotdot(depth - 1, h);
            }
            self.close(h);
        }
        if let Some(f) = self.frames.pop() {
            truncate(&mut self.path, f.parent_len);
        }
    }

    /// Closes the shallowest open directory below the root other than the top one, after
    /// recording its identity.
    fn evict(&mut self) {
        let last = self.frames.len().saturating_sub(1);
        let Some(i) = (1..last).find(|&i| self.frames[i].handle.is_some()) else {
            return;
        };
        let Some(h) = self.frames[i].handle.take() else {
            return;
        };
        self.frames[i].id = self.identity(h);
        self.close(h);
    }

    fn identity(&mut self, h: FdHandle) -> Option<(u32, u32, u64)> {
        let n = self.s.send(Call::fstat(h, self.b.st)).ok()?;
        self.s.get(n).ok()?;
        Stat::parse(self.s.bytes(self.b.st).ok()?).map(|s| s.id())
    }

    /// Reopens frame `i` as `..` of `child` (its child's handle), if that is still the same
    /// directory; else leaves it closed (it is reopened by names when needed).
    fn reopen_through_dotdot(&mut self, i: usize, child: FdHandle) {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
        let Ok(h) = self.open(Fd::Handle(child), OsStr::new(".."), flags) else {
            return;
        };
        let id = self.identity(h);
        if id.is_some() && id == self.frames[i].id {
            self.frames[i].handle = Some(h);
        } else {
            self.close(h);
        }
    }

    /// Reopens frame `i` name by name from its nearest open ancestor.
    fn reopen_by_names(&mut self, i: usize) -> Result<FdHandle, i32> {
        let Some(j) = (0..i).rev().find(|&j| self.frames[j].handle.is_some()) else {
            return Err(libc::ENOENT);
        };
        let mut h = self.frames[j].handle.ok_or(libc::ENOENT)?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
        for k in j + 1..=i {
            let name = self.frames[k].name.clone();
            let next = self.open(Fd::Handle(h), &name, flags);
            if k > j + 1 {
                self.close(h);
            }
            h = next?;
        }
        if self.frames[i].id.is_some() && self.identity(h) != self.frames[i].id {
            self.close(h);
            return Err(libc::ENOENT);
        }
        self.frames[i].handle = Some(h);
        Ok(h)
    }
}

/// Cuts `path` back to its first `len` bytes (a parent's path).
fn truncate(path: &mut PathBuf, len: usize) {
    let mut bytes = std::mem::take(path).into_os_string().into_vec();
    bytes.truncate(len);
    *path = PathBuf::from(OsString::from_vec(bytes));
}

/// Appends the entries of a getdents64(2) buffer (`struct linux_dirent64` records) to
/// `out`, without `.` and `..`. A record that does not fit the buffer ends the parse.
pub fn parse_dirents(mut b: &[u8], out: &mut Vec<Entry>) {
    while b.len() >= 19 {
        let ino = u64::from_ne_bytes(b[0..8].try_into().unwrap_or([0; 8]));
        let reclen = usize::from(u16::from_ne_bytes([b[16], b[17]]));
        if reclen < 19 || reclen > b.len() {
            return;
        }
        let d_type = b[18];
        let name = &b[19..reclen];
        let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
        if name != b"." && name != b".." {
            out.push(Entry {
                name: OsStr::from_bytes(name).to_os_string(),
                ino,
                kind: Kind::of(d_type),
            });
        }
        b = &b[reclen..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cosy_exec::Backend;
    use cosy_model::Policy;
    use std::collections::BTreeSet;

    /// Records every directory's path and entries, descending into every directory in name
    /// order.
    #[derive(Default)]
    struct Record {
        seen: Vec<(PathBuf, BTreeSet<OsString>)>,
        left: Vec<PathBuf>,
        errors: Vec<(PathBuf, Failed)>,
    }

    impl Visitor for Record {
        fn enter(&mut self, _s: &mut Session, dir: &Dir<'_>, entries: Vec<Entry>) -> Vec<OsString> {
            let names = entries.iter().map(|e| e.name.clone()).collect();
            self.seen.push((dir.path.to_path_buf(), names));
            let mut dirs: Vec<OsString> = entries
                .into_iter()
                .filter(|e| e.kind == Kind::Dir || e.kind == Kind::Symlink)
                .map(|e| e.name)
                .collect();
            dirs.sort();
            dirs
        }
        fn leave(&mut self, _s: &mut Session, dir: &Dir<'_>) {
            self.left.push(dir.path.to_path_buf());
        }
        fn error(&mut self, path: &Path, _depth: usize, failed: Failed) {
            self.errors.push((path.to_path_buf(), failed));
        }
    }

    fn session() -> Session {
        Session::new(Backend::Direct, &Policy::trusted()).unwrap()
    }

    #[test]
    fn walk_visits_every_directory_in_the_order_asked_and_leaves_them_after_their_children() {
        let t = tempfile::tempdir().unwrap();
        for d in ["a/x", "a/y", "b"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        std::fs::write(t.path().join("a/f"), b"1").unwrap();
        std::os::unix::fs::symlink("a", t.path().join("l")).unwrap();
        let mut r = Record::default();
        walk(&mut session(), t.path(), &Options::default(), &mut r);
        let p = |s: &str| t.path().join(s);
        let order: Vec<PathBuf> = r.seen.iter().map(|s| s.0.clone()).collect();
        assert_eq!(
            order,
            [t.path().to_path_buf(), p("a"), p("a/x"), p("a/y"), p("b")]
        );
        assert_eq!(
            r.left,
            [p("a/x"), p("a/y"), p("a"), p("b"), t.path().to_path_buf()]
        );
        let names: Vec<&str> = r.seen[1].1.iter().map(|n| n.to_str().unwrap()).collect();
        assert_eq!(names, ["f", "x", "y"]);
        // Not following: the symlink `l` is refused (O_NOFOLLOW with O_DIRECTORY: ENOTDIR).
        assert_eq!(r.errors, [(p("l"), Failed::Open(libc::ENOTDIR))]);

        let mut r = Record::default();
        let follow = Options {
            follow: true,
            ..Options::default()
        };
        walk(&mut session(), t.path(), &follow, &mut r);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(r.seen.iter().any(|s| s.0 == p("l/x")));
    }

    #[test]
    fn a_deep_tree_is_walked_with_few_directories_open() {
        let t = tempfile::tempdir().unwrap();
        let depth = 300;
        let mut d = t.path().to_path_buf();
        for _ in 0..depth {
            d.push("d");
        }
        // Beyond PATH_MAX is not needed to show the bound; 300 levels and a bound of 4 are.
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("leaf"), b"").unwrap();
        let mut r = Record::default();
        let mut s = session();
        let opts = Options {
            max_open: 4,
            follow: false,
        };
        walk(&mut s, t.path(), &opts, &mut r);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.seen.len(), depth + 1);
        assert_eq!(r.left.len(), depth + 1);
        assert_eq!(r.seen.last().unwrap().0, d);
        assert!(r.seen.last().unwrap().1.contains(OsStr::new("leaf")));
        assert_eq!(r.left.last().unwrap(), t.path());
        let opens = s.stats().by_call.get("openat").copied().unwrap_or(0);
        // One open per directory, one `..` per directory climbed back to after eviction.
        assert!(opens <= 2 * (depth as u64 + 1), "{opens} opens");
    }

    #[test]
    fn an_unreadable_directory_is_reported_and_the_walk_goes_on() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a")).unwrap();
        std::fs::create_dir_all(t.path().join("b")).unwrap();
        // A name that vanished between getdents64 and the open.
        struct Vanish(Record);
        impl Visitor for Vanish {
            fn enter(&mut self, s: &mut Session, d: &Dir<'_>, e: Vec<Entry>) -> Vec<OsString> {
                let mut v = self.0.enter(s, d, e);
                if d.depth == 0 {
                    v.insert(0, OsString::from("gone"));
                }
                v
            }
            fn error(&mut self, path: &Path, depth: usize, failed: Failed) {
                self.0.error(path, depth, failed)
            }
        }
        let mut v = Vanish(Record::default());
        walk(&mut session(), t.path(), &Options::default(), &mut v);
        assert_eq!(
            v.0.errors,
            [(t.path().join("gone"), Failed::Open(libc::ENOENT))]
        );
        assert_eq!(v.0.seen.len(), 3);
    }

    #[test]
    fn dirents_parse_skips_dot_entries_and_stops_at_a_bad_record() {
        let mut b = Vec::new();
        for (ino, name, t) in [(1u64, ".", 4u8), (2, "..", 4), (3, "file", 8)] {
            let reclen = (19 + name.len() + 1).next_multiple_of(8);
            let start = b.len();
            b.extend_from_slice(&ino.to_ne_bytes());
            b.extend_from_slice(&0i64.to_ne_bytes());
            b.extend_from_slice(&(reclen as u16).to_ne_bytes());
            b.push(t);
            b.extend_from_slice(name.as_bytes());
            b.resize(start + reclen, 0);
        }
        let mut out = Vec::new();
        parse_dirents(&b, &mut out);
        assert_eq!(
            out,
            [Entry {
                name: "file".into(),
                ino: 3,
                kind: Kind::File
            }]
        );
        let mut out = Vec::new();
        parse_dirents(&b[..b.len() - 1], &mut out);
        assert!(out.is_empty(), "a truncated last record is not parsed");
    }
}
