//! The count: a [`Visitor`] of the walk that stats every entry of a directory in one batch
//! relative to the directory's handle, and adds sizes up and prints lines in the order GNU
//! du (fts) visits entries: each entry in directory order, a directory's line after
//! everything below it.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use cosy_exec::Backend;
use cosy_model::Policy;
use cosy_model::flags::{AtFlags, StatxFlags};

use cosy_exec::session::{BufHandle, Call, Fd, FdHandle, Session, SessionOptions};

use super::args::{Deref, Opts};
use super::report::Report;
use super::size;
use crate::tools::common::quote;
use crate::tools::stat::{STATX_LEN, Stat};
use crate::tools::walk::{Dir, Entry, Failed, Visitor};

/// What du needs of a file: its type, links, identity, size and blocks.
pub const MASK: u32 =
    libc::STATX_TYPE | libc::STATX_NLINK | libc::STATX_INO | libc::STATX_SIZE | libc::STATX_BLOCKS;

/// statx buffers in the batch buffer: entries stated per barrier.
pub const SLOTS: usize = 256;

/// Bytes of a session's arena: the batch buffer and the buffers of [`WALKS_PER_ARENA`] walks
/// (64 KiB of entries and a statx buffer each). Small, as a small arena is cheap to set up.
pub const ARENA: usize = SLOTS * STATX_LEN + WALKS_PER_ARENA * (72 << 10);

/// Walks made with one session before a new one is set up.
const WALKS_PER_ARENA: usize = 4;

/// A session for counting: direct system calls, an arena of [`ARENA`] bytes.
pub fn session() -> Result<Session, String> {
    let options = SessionOptions {
        arena: ARENA,
        ..SessionOptions::default()
    };
    let backend = match std::env::var("COSY_DU_BACKEND").as_deref() {
        Ok("ring") => Backend::Ring,
        _ => Backend::Direct,
    };
    Session::with_options(backend, &Policy::trusted(), options)
        .map_err(|e| format!("cannot set up the session: {e}"))
}

/// Why an entry has no stat.
#[derive(Clone, Copy, Debug)]
pub enum Missing {
    /// statx failed with this errno.
    Errno(i32),
    /// A symbolic link to nothing, when following links (du names it without a reason).
    Dangling,
}

/// An entry of a directory not processed yet.
struct Item {
    name: OsString,
    stat: Result<Stat, Missing>,
    /// A directory the walk descends into (its line comes from the walk, not from here).
    descend: bool,
    /// A directory counted on a thread: its total and its messages.
    done: Option<(u64, Report)>,
}

/// A directory being counted.
struct Level {
    /// Bytes so far: its own and those of the entries processed.
    size: u64,
    /// Its path as printed.
    path: Vec<u8>,
    items: Vec<Item>,
    next: usize,
    /// Already counted through another path: neither counted nor printed again.
    skip: bool,
}

/// du's state across all its arguments.
pub struct Counter<'o> {
    opts: &'o Opts,
    /// Files counted already (device and inode), so that each is counted once.
    seen: &'o Mutex<HashSet<(u32, u32, u64)>>,
    /// Directories and every file are remembered (several arguments, or `-L`), not only
    /// files with several links.
    hash_all: bool,
    out: std::io::BufWriter<std::io::Stdout>,
    /// Diagnostics and the exit status.
    pub diag: Report,
    /// No lines printed: a subtree counted for its total only.
    quiet: bool,
    /// Subtrees of an argument counted on threads (`-s` of a directory with several).
    threads: usize,
    slots: BufHandle,
    /// The stat of the argument being walked (taken by its `enter`).
    root: Option<Stat>,
    root_dev: (u32, u32),
    levels: Vec<Level>,
    /// The sum over the arguments (`-c`).
    pub grand: u64,
    files: u64,
    /// Walks made with the current session.
    walks: usize,
}

impl<'o> Counter<'o> {
    /// A counter for `opts`, with its batch buffer in `s`.
    pub fn new(
        opts: &'o Opts,
        seen: &'o Mutex<HashSet<(u32, u32, u64)>>,
        s: &mut Session,
    ) -> Result<Self, String> {
        let slots = s
            .buffer(SLOTS * STATX_LEN)
            .map_err(|e| format!("cannot set up the session: {e}"))?;
        Ok(Counter {
            opts,
            seen,
            hash_all: opts.paths.len() > 1 || opts.deref == Deref::All,
            out: std::io::BufWriter::with_capacity(64 << 10, std::io::stdout()),
            diag: Report::printed(),
            quiet: false,
            threads: 1,
            slots,
            root: None,
            root_dev: (0, 0),
            levels: Vec::new(),
            grand: 0,
            files: 0,
            walks: 0,
        })
    }

    /// The statx flags for entries below the arguments.
    fn flags(&self) -> i32 {
        match self.opts.deref {
            Deref::All => 0,
            _ => libc::AT_SYMLINK_NOFOLLOW,
        }
    }

    /// The bytes `st` adds: allocated blocks, or its size with `--apparent-size`.
    fn size_of(&self, st: &Stat) -> u64 {
        if self.opts.apparent {
            st.size
        } else {
            st.blocks.saturating_mul(512)
        }
    }

    /// Whether `st` was counted already (and remembers it if it is to be remembered).
    fn counted(&mut self, st: &Stat) -> bool {
        let remember = self.hash_all || (!st.is_dir() && st.nlink > 1);
        if !remember {
            return false;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        !seen.insert(st.id())
    }

    /// Prints one line: the size, a tab, the path.
    pub fn line(&mut self, bytes: u64, path: &[u8]) {
        if self.quiet {
            return;
        }
        let end = if self.opts.null { b'\0' } else { b'\n' };
        let size = size::format(bytes, self.opts.units);
        let ok = self.out.write_all(size.as_bytes()).is_ok()
            && self.out.write_all(b"\t").is_ok()
            && self.out.write_all(path).is_ok()
            && self.out.write_all(&[end]).is_ok();
        if !ok && !self.diag.failed() {
            self.diag.error("write error");
        }
    }

    /// Flushes standard output.
    pub fn flush(&mut self) {
        if self.out.flush().is_err() {
            self.diag.error("write error");
        }
    }

    /// The stat of `path` (an argument, or an entry relative to `dir`): `flags` as given, a
    /// link to nothing told apart when following links.
    pub fn stat_one(
        &mut self,
        s: &mut Session,
        dir: Fd,
        path: &Path,
        flags: i32,
    ) -> Result<Stat, Missing> {
        let r = self.stat_raw(s, dir, path, flags);
        match r {
            Err(Missing::Errno(libc::ENOENT)) if flags & libc::AT_SYMLINK_NOFOLLOW == 0 => {
                match self.stat_raw(s, dir, path, flags | libc::AT_SYMLINK_NOFOLLOW) {
                    Ok(_) => Err(Missing::Dangling),
                    Err(_) => r,
                }
            }
            r => r,
        }
    }

    fn stat_raw(
        &mut self,
        s: &mut Session,
        dir: Fd,
        path: &Path,
        flags: i32,
    ) -> Result<Stat, Missing> {
        let b = self.slots.range(0, STATX_LEN as i64);
        let h = s
            .send(Call::statx(
                dir,
                path,
                AtFlags::from_bits_retain(flags as u32),
                StatxFlags::from_bits_retain(MASK),
                b,
            ))
            .map_err(|_| Missing::Errno(libc::ENAMETOOLONG))?;
        s.get(h)
            .map_err(|e| Missing::Errno(e.errno().unwrap_or(libc::EIO)))?;
        let bytes = s.bytes(self.slots).map_err(|_| Missing::Errno(libc::EIO))?;
        Stat::parse(&bytes[..STATX_LEN]).ok_or(Missing::Errno(libc::EIO))
    }

    /// Reports an entry that could not be stated.
    fn report(&mut self, path: &[u8], why: Missing) {
        let what = format!("cannot access {}", quote(OsStr::from_bytes(path)));
        match why {
            Missing::Errno(e) => self.diag.errno(what, e),
            Missing::Dangling => self.diag.error(what),
        }
    }

    /// Counts one argument: a file is one line; a directory is walked.
    /// Makes sure `s` has arena left for one more walk: a walk takes buffers it does not give
    /// back, so after [`WALKS_PER_ARENA`] walks `s` is replaced by a new session (and the
    /// batch buffer with it). False, the error reported, if none can be set up.
    fn room_for_a_walk(&mut self, s: &mut Session) -> bool {
        if self.walks < WALKS_PER_ARENA {
            self.walks += 1;
            return true;
        }
        let fresh = session().and_then(|mut n| {
            let slots = n
                .buffer(SLOTS * STATX_LEN)
                .map_err(|e| format!("cannot set up the session: {e}"))?;
            Ok((n, slots))
        });
        match fresh {
            Ok((n, slots)) => {
                *s = n;
                self.slots = slots;
                self.walks = 1;
                true
            }
            Err(e) => {
                self.diag.error(e);
                false
            }
        }
    }

    /// Counts the subdirectories of each argument on `n` threads (only totals are printed:
    /// `-s`).
    pub fn set_threads(&mut self, n: usize) {
        self.threads = n.max(1);
    }

    pub fn argument(&mut self, s: &mut Session, arg: &OsStr) {
        if arg.is_empty() {
            return self.diag.error("invalid zero-length file name");
        }
        let path = trim_slashes(arg.as_bytes());
        let path = Path::new(OsStr::from_bytes(path));
        let flags = match self.opts.deref {
            Deref::None => libc::AT_SYMLINK_NOFOLLOW,
            _ => 0,
        };
        let st = match self.stat_one(s, Fd::Cwd, path, flags) {
            Ok(st) => st,
            Err(why) => return self.report(path.as_os_str().as_bytes(), why),
        };
        if self.counted(&st) {
            return;
        }
        if !st.is_dir() {
            let size = self.size_of(&st);
            self.grand += size;
            self.line(size, path.as_os_str().as_bytes());
            return;
        }
        self.root = Some(st);
        self.root_dev = st.dev;
        let opts = crate::tools::walk::Options {
            follow: self.opts.deref == Deref::All,
            ..Default::default()
        };
        if !self.room_for_a_walk(s) {
            return;
        }
        crate::tools::walk::walk(s, path, &opts, self);
        // A walk cut short (a directory that could not be reopened) leaves levels behind.
        while !self.levels.is_empty() {
            self.finish();
        }
    }

    /// statx of every entry of `dir`, `SLOTS` per barrier.
    fn stat_all(&mut self, s: &mut Session, dir: FdHandle, entries: Vec<Entry>) -> Vec<Item> {
        let flags = self.flags();
        let mut stats = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(SLOTS) {
            let mut sent = Vec::with_capacity(chunk.len());
            for (i, e) in chunk.iter().enumerate() {
                let b = self
                    .slots
                    .range((i * STATX_LEN) as i64, ((i + 1) * STATX_LEN) as i64);
                let call = Call::statx(
                    Fd::Handle(dir),
                    Path::new(&e.name),
                    AtFlags::from_bits_retain(flags as u32),
                    StatxFlags::from_bits_retain(MASK),
                    b,
                );
                sent.push(s.send(call).ok());
            }
            s.barrier();
            let mut results = Vec::with_capacity(chunk.len());
            for h in &sent {
                results.push(match h {
                    None => Err(Missing::Errno(libc::ENAMETOOLONG)),
                    Some(h) => match s.get(*h) {
                        Ok(_) => Ok(()),
                        Err(e) => Err(Missing::Errno(e.errno().unwrap_or(libc::EIO))),
                    },
                });
            }
            let bytes = s.bytes(self.slots).ok();
            for (i, r) in results.into_iter().enumerate() {
                stats.push(r.and_then(|()| {
                    bytes
                        .and_then(|b| b.get(i * STATX_LEN..(i + 1) * STATX_LEN))
                        .and_then(Stat::parse)
                        .ok_or(Missing::Errno(libc::EIO))
                }));
            }
        }
        let mut items: Vec<Item> = entries
            .into_iter()
            .zip(stats)
            .map(|(e, stat)| Item {
                name: e.name,
                stat,
                descend: false,
                done: None,
            })
            .collect();
        if flags & libc::AT_SYMLINK_NOFOLLOW == 0 {
            for it in &mut items {
                if let Err(Missing::Errno(libc::ENOENT)) = it.stat {
                    let nofollow = flags | libc::AT_SYMLINK_NOFOLLOW;
                    if self
                        .stat_raw(s, Fd::Handle(dir), Path::new(&it.name), nofollow)
                        .is_ok()
                    {
                        it.stat = Err(Missing::Dangling);
                    }
                }
            }
        }
        items
    }

    /// Processes the entries of the deepest directory up to the next one the walk descends
    /// into: counts them, prints them (`-a`), reports those without a stat.
    fn advance(&mut self) {
        let depth = self.levels.len();
        loop {
            let Some(level) = self.levels.last_mut() else {
                return;
            };
            let Some(it) = level.items.get(level.next) else {
                return;
            };
            if it.descend && it.done.is_none() {
                return;
            }
            level.next += 1;
            if let Some((size, report)) = level.items[level.next - 1].done.take() {
                level.size += size;
                self.diag.replay(report);
                continue;
            }
            let it = &level.items[level.next - 1];
            let stat = it.stat;
            // The path is spelled only when it is printed.
            let path = |c: &Self| {
                let level = &c.levels[depth - 1];
                join(&level.path, level.items[level.next - 1].name.as_bytes())
            };
            self.files += 1;
            let st = match stat {
                Ok(st) => st,
                Err(why) => {
                    let p = path(self);
                    self.report(&p, why);
                    continue;
                }
            };
            if self.counted(&st) {
                continue;
            }
            let size = self.size_of(&st);
            if let Some(l) = self.levels.last_mut() {
                l.size += size;
            }
            if self.opts.all && depth <= self.opts.max_depth {
                let p = path(self);
                self.line(size, &p);
            }
        }
    }

    /// The deepest directory is done: its line, its size added to its parent's.
    fn finish(&mut self) {
        let Some(level) = self.levels.pop() else {
            return;
        };
        let depth = self.levels.len();
        if !level.skip {
            if depth <= self.opts.max_depth {
                self.line(level.size, &level.path);
            }
            match self.levels.last_mut() {
                Some(parent) => parent.size += level.size,
                None => self.grand += level.size,
            }
        }
        self.advance();
    }

    /// Counts the directories among `items` (entries of the argument `root`) on
    /// `self.threads` threads, one session each, for their totals: each thread takes the next
    /// directory not taken yet. Their messages are kept, to be printed in du's order.
    fn count_on_threads(&mut self, root: &[u8], items: &mut [Item]) {
        let work: Vec<(usize, Vec<u8>, Stat)> = items
            .iter()
            .enumerate()
            .filter(|(_, it)| it.descend)
            .filter_map(|(i, it)| Some((i, join(root, it.name.as_bytes()), it.stat.ok()?)))
            .collect();
        let next = AtomicUsize::new(0);
        let (opts, seen, dev) = (self.opts, self.seen, self.root_dev);
        let take = || work.get(next.fetch_add(1, Ordering::Relaxed)).cloned();
        let worker = || count_share(opts, seen, dev, &take);
        let results: Vec<(usize, (u64, Report))> = std::thread::scope(|scope| {
            let others: Vec<_> = (1..self.threads).map(|_| scope.spawn(worker)).collect();
            let mut all = worker();
            for h in others {
                match h.join() {
                    Ok(r) => all.extend(r),
                    Err(_) => self.diag.error("a counting thread failed"),
                }
            }
            all
        });
        for (i, r) in results {
            items[i].done = Some(r);
        }
    }

    /// The next entry of the deepest directory, which the walk is entering (or failed to).
    fn take_next_dir(&mut self) -> Option<(Vec<u8>, Stat)> {
        let level = self.levels.last_mut()?;
        let it = level.items.get(level.next)?;
        level.next += 1;
        let path = join(&level.path, it.name.as_bytes());
        it.stat.ok().map(|st| (path, st))
    }
}

impl Visitor for Counter<'_> {
    fn enter(&mut self, s: &mut Session, dir: &Dir<'_>, mut entries: Vec<Entry>) -> Vec<OsString> {
        let (path, st) = if dir.depth == 0 {
            let Some(st) = self.root.take() else {
                return Vec::new();
            };
            (dir.path.as_os_str().as_bytes().to_vec(), st)
        } else {
            let Some((path, st)) = self.take_next_dir() else {
                return Vec::new();
            };
            if self.counted(&st) {
                self.levels.push(Level {
                    size: 0,
                    path,
                    items: Vec::new(),
                    next: 0,
                    skip: true,
                });
                return Vec::new();
            }
            (path, st)
        };
        if entries.len() > INODE_SORT && inode_sort_helps(s, dir.handle) {
            entries.sort_by_key(|e| e.ino);
        }
        let mut items = self.stat_all(s, dir.handle, entries);
        if self.opts.one_fs {
            let dev = self.root_dev;
            items.retain(|it| it.stat.map(|st| st.dev == dev).unwrap_or(true));
        }
        let mut down = Vec::new();
        for it in &mut items {
            if it.stat.map(|st| st.is_dir()).unwrap_or(false) {
                it.descend = true;
                down.push(it.name.clone());
            }
        }
        if dir.depth == 0 && self.threads > 1 && down.len() > 1 {
            self.count_on_threads(&path, &mut items);
            down.clear();
        }
        let size = self.size_of(&st);
        self.levels.push(Level {
            size,
            path,
            items,
            next: 0,
            skip: false,
        });
        self.advance();
        down
    }

    fn leave(&mut self, _s: &mut Session, _dir: &Dir<'_>) {
        self.finish();
    }

    fn error(&mut self, path: &Path, depth: usize, failed: Failed) {
        let quoted = quote(path.as_os_str());
        match failed {
            Failed::Open(e) => {
                // The directory is counted and printed as what it is without its entries.
                let st = if depth == 0 {
                    self.root.take()
                } else {
                    self.take_next_dir().map(|(_, st)| st)
                };
                let Some(st) = st else {
                    return;
                };
                if depth > 0 && self.counted(&st) {
                    self.advance();
                    return;
                }
                self.diag
                    .errno(format_args!("cannot read directory {quoted}"), e);
                self.levels.push(Level {
                    size: self.size_of(&st),
                    path: path.as_os_str().as_bytes().to_vec(),
                    items: Vec::new(),
                    next: 0,
                    skip: false,
                });
                self.finish();
            }
            Failed::Read(e) => {
                self.diag
                    .errno(format_args!("cannot read directory {quoted}"), e);
            }
            Failed::Reopen(e) => {
                self.diag
                    .errno(format_args!("cannot read directory {quoted}"), e);
                if self.levels.len() > depth {
                    self.finish();
                }
            }
        }
    }
}

/// Counts, on a session of its own, the directories `work` hands out (the next one not taken
/// yet each time): their totals, quietly, and their messages kept.
fn count_share(
    opts: &Opts,
    seen: &Mutex<HashSet<(u32, u32, u64)>>,
    dev: (u32, u32),
    take: &dyn Fn() -> Option<(usize, Vec<u8>, Stat)>,
) -> Vec<(usize, (u64, Report))> {
    let mut done = Vec::new();
    let setup = session().and_then(|mut s| Counter::new(opts, seen, &mut s).map(|c| (s, c)));
    let (mut s, mut c) = match setup {
        Ok(sc) => sc,
        Err(e) => {
            while let Some((i, _, _)) = take() {
                let mut r = Report::kept();
                r.error(&e);
                done.push((i, (0, r)));
            }
            return done;
        }
    };
    c.quiet = true;
    c.root_dev = dev;
    let wopts = crate::tools::walk::Options {
        follow: opts.deref == Deref::All,
        ..Default::default()
    };
    while let Some((i, path, st)) = take() {
        c.diag = Report::kept();
        c.grand = 0;
        if !c.counted(&st) && c.room_for_a_walk(&mut s) {
            c.root = Some(st);
            let p = Path::new(OsStr::from_bytes(&path));
            crate::tools::walk::walk(&mut s, p, &wopts, &mut c);
            while !c.levels.is_empty() {
                c.finish();
            }
        }
        done.push((i, (c.grand, std::mem::take(&mut c.diag))));
    }
    done
}

/// Entries beyond which fts(3) visits a directory in inode order (gnulib's
/// `FTS_INODE_SORT_DIR_ENTRIES_THRESHOLD`), as du does.
const INODE_SORT: usize = 10_000;

/// Whether fts sorts a large directory by inode: on every file system but tmpfs, NFS and
/// CIFS. The session has no statfs call: statfs(2) of the directory's descriptor, named
/// `/proc/self/fd/N`.
fn inode_sort_helps(s: &mut Session, dir: FdHandle) -> bool {
    const TMPFS: i64 = 0x0102_1994;
    const NFS: i64 = 0x6969;
    const CIFS: i64 = 0xFF53_4D42u32 as i64;
    let Ok(fd) = s.get(dir) else {
        return true;
    };
    match rustix::fs::statfs(format!("/proc/self/fd/{fd}")) {
        Ok(st) => !matches!(st.f_type, TMPFS | NFS | CIFS),
        Err(_) => true,
    }
}

/// `dir/name` as fts spells it: no second slash after a directory ending in one.
fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if !dir.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// An argument as fts keeps it: two or more trailing slashes cut to one.
pub fn trim_slashes(p: &[u8]) -> &[u8] {
    let mut len = p.len();
    if len > 2 && p[len - 1] == b'/' {
        while len > 1 && p[len - 2] == b'/' {
            len -= 1;
        }
    }
    &p[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_spelled_as_fts_spells_them() {
        assert_eq!(trim_slashes(b"a//"), b"a/");
        assert_eq!(trim_slashes(b"///"), b"/");
        assert_eq!(trim_slashes(b"//"), b"//");
        assert_eq!(trim_slashes(b"a"), b"a");
        assert_eq!(join(b"a/", b"b"), b"a/b");
        assert_eq!(join(b".", b"b"), b"./b");
    }
}
