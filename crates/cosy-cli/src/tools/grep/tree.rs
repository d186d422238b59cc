//! The search of a directory tree: the walk (`tools/walk.rs`) gives each directory's entries
//! in a session of its own; the files of a directory are searched in batches, by this thread
//! and the pool's, before the walk goes on; output is written in the walk's order, files and
//! directories sorted by name as `rg --sort path` sorts them.

use cosy_model::flags::{AtFlags, StatxFlags};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use cosy_exec::session::{BufHandle, Call, Fd, Session};

use super::files::{DirRef, Reader};
use super::pool::{Batch, Pool, Round, run_batch};
use super::search::{Out, Searcher, walk_error};
use super::sink::Sink;
use crate::tools::stat::{STATX_LEN, Stat};
use crate::tools::walk::{self, Dir, Entry, Failed, Kind, Visitor};

/// What a directory's node still has to write: its files' output, and its subdirectories'
/// places in between.
enum Seg {
    Out(Out),
    Child,
}

/// The visitor of a tree's search.
pub struct TreeSearch<'a> {
    /// The patterns and format.
    pub searcher: &'a Searcher,
    /// This thread's reader.
    pub reader: &'a mut Reader,
    /// The other threads.
    pub pool: &'a Pool,
    /// Where output goes.
    pub sink: &'a mut Sink,
    /// Strip the `./` of the root (no path given: ripgrep prints `file`, not `./file`).
    pub strip: bool,
    /// Files per batch handed to a thread.
    pub batch: usize,
    /// Directory identities so far.
    pub next_id: &'a mut u64,
    stack: Vec<VecDeque<Seg>>,
    statx: Option<BufHandle>,
}

impl<'a> TreeSearch<'a> {
    /// A visitor writing to `sink`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        searcher: &'a Searcher,
        reader: &'a mut Reader,
        pool: &'a Pool,
        sink: &'a mut Sink,
        strip: bool,
        batch: usize,
        next_id: &'a mut u64,
    ) -> Self {
        TreeSearch {
            searcher,
            reader,
            pool,
            sink,
            strip,
            batch,
            next_id,
            stack: Vec::new(),
            statx: None,
        }
    }

    /// Walks `root` (the working directory's `.` when `strip`).
    pub fn run(mut self, s: &mut Session, root: &Path, opts: &walk::Options) {
        walk::walk(s, root, opts, &mut self);
        while !self.stack.is_empty() {
            self.pop_node();
        }
    }

    /// What the paths of `dir`'s files start with: its path and `/` (nothing for the
    /// working directory when no path was given).
    fn shown(&self, dir: &Path) -> Vec<u8> {
        let mut p = dir.as_os_str().as_bytes();
        if self.strip {
            p = p.strip_prefix(b".").unwrap_or(p);
            p = p.strip_prefix(b"/").unwrap_or(p);
        }
        let mut v = p.to_vec();
        if !v.is_empty() && !v.ends_with(b"/") {
            v.push(b'/');
        }
        v
    }

    /// The kind of an entry whose type the file system did not give.
    fn kind(&mut self, s: &mut Session, dir: &Dir<'_>, e: &Entry) -> Kind {
        if e.kind != Kind::Unknown {
            return e.kind;
        }
        let buf = match self.statx {
            Some(b) => b,
            None => match s.buffer(STATX_LEN) {
                Ok(b) => {
                    self.statx = Some(b);
                    b
                }
                Err(_) => return Kind::Unknown,
            },
        };
        let call = Call::statx(
            Fd::Handle(dir.handle),
            &e.name,
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::TYPE,
            buf,
        );
        let Ok(h) = s.send(call) else {
            return Kind::Unknown;
        };
        if s.get(h).is_err() {
            return Kind::Unknown;
        }
        let mode = s.bytes(buf).ok().and_then(Stat::parse).map(|st| st.mode);
        match mode.map(|m| m & libc::S_IFMT) {
            Some(libc::S_IFREG) => Kind::File,
            Some(libc::S_IFDIR) => Kind::Dir,
            _ => Kind::Symlink,
        }
    }

    /// Writes the top node's segments up to its next child's place (consumed).
    fn flush_top(&mut self, consume_child: bool) {
        let Some(top) = self.stack.last_mut() else {
            return;
        };
        if consume_child && let Some(Seg::Child) = top.front() {
            top.pop_front();
        }
        while let Some(Seg::Out(_)) = top.front() {
            if let Some(Seg::Out(o)) = top.pop_front() {
                self.sink.write(o);
            }
        }
    }

    /// Writes what remains of the top node and drops it.
    fn pop_node(&mut self) {
        if let Some(node) = self.stack.pop() {
            for seg in node {
                if let Seg::Out(o) = seg {
                    self.sink.write(o);
                }
            }
        }
    }

    /// Searches `files` (runs between subdirectories: `(segment, names)`) of `dir`.
    fn search_files(
        &mut self,
        dir: &Arc<DirRef>,
        runs: Vec<Vec<OsString>>,
        path: &Path,
    ) -> Vec<Out> {
        let shown = Arc::new(self.shown(path));
        if self.pool.is_empty() {
            return runs
                .iter()
                .map(|r| self.searcher.batch(self.reader, dir, r, &shown))
                .collect();
        }
        // Every run cut into batches, searched by every thread; gathered back in order.
        let mut parts = Vec::new();
        for (k, r) in runs.into_iter().enumerate() {
            let mut names = r.into_iter();
            loop {
                let n: Vec<OsString> = names.by_ref().take(self.batch).collect();
                if n.is_empty() {
                    break;
                }
                parts.push((k, n));
            }
        }
        let round = Round::new(parts.len());
        let mut owner = Vec::with_capacity(parts.len());
        let batches = parts
            .into_iter()
            .enumerate()
            .map(|(i, (k, names))| {
                owner.push(k);
                Batch {
                    dir: Arc::clone(dir),
                    names,
                    shown: Arc::clone(&shown),
                    index: i,
                    round: Arc::clone(&round),
                }
            })
            .collect();
        self.pool.push(batches);
        while let Some(b) = self.pool.pop() {
            run_batch(self.reader, self.searcher, b);
        }
        let mut outs: Vec<Out> = (0..shown_len(&owner)).map(|_| Out::default()).collect();
        for (o, k) in round.wait().into_iter().zip(owner) {
            if let Some(slot) = outs.get_mut(k) {
                slot.append(o);
            }
        }
        outs
    }
}

/// Runs in a directory: one more than the last run index.
fn shown_len(owner: &[usize]) -> usize {
    owner.last().map_or(0, |k| k + 1)
}

impl Visitor for TreeSearch<'_> {
    fn enter(&mut self, s: &mut Session, dir: &Dir<'_>, mut entries: Vec<Entry>) -> Vec<OsString> {
        self.stack.truncate(dir.depth);
        if self.sink.closed {
            // Nobody reads the output any more: the walk ends.
            return Vec::new();
        }
        entries.sort_unstable_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        // Files in runs between subdirectories.
        let mut runs: Vec<Vec<OsString>> = vec![Vec::new()];
        let mut dirs = Vec::new();
        for e in entries {
            match self.kind(s, dir, &e) {
                Kind::File => {
                    if let Some(r) = runs.last_mut() {
                        r.push(e.name);
                    }
                }
                Kind::Dir => {
                    dirs.push(e.name);
                    runs.push(Vec::new());
                }
                // Symbolic links are not followed, FIFOs, sockets and devices not opened.
                _ => {}
            }
        }
        let fd = s.get(dir.handle).unwrap_or(-1);
        *self.next_id += 1;
        let dref = Arc::new(DirRef {
            id: *self.next_id,
            fd,
            path: dir.path.to_path_buf(),
        });
        let nonempty = runs.iter().any(|r| !r.is_empty());
        let outs = if nonempty {
            self.search_files(&dref, runs, dir.path)
        } else {
            (0..=dirs.len()).map(|_| Out::default()).collect()
        };
        let mut node = VecDeque::with_capacity(2 * outs.len());
        for (i, o) in outs.into_iter().enumerate() {
            if i > 0 {
                node.push_back(Seg::Child);
            }
            node.push_back(Seg::Out(o));
        }
        self.stack.push(node);
        self.flush_top(false);
        dirs
    }

    fn leave(&mut self, _s: &mut Session, dir: &Dir<'_>) {
        self.stack.truncate(dir.depth + 1);
        self.pop_node();
        self.flush_top(true);
    }

    fn error(&mut self, path: &Path, depth: usize, failed: Failed) {
        let e = match failed {
            Failed::Open(e) | Failed::Read(e) | Failed::Reopen(e) => e,
        };
        let mut o = Out::default();
        o.error(&walk_error(path.as_os_str().as_bytes(), e));
        match failed {
            Failed::Open(_) => {
                self.stack.truncate(depth);
                self.sink.write(o);
                self.flush_top(true);
            }
            Failed::Read(_) => self.sink.write(o),
            Failed::Reopen(_) => {
                self.stack.truncate(depth + 1);
                self.sink.write(o);
                self.pop_node();
                self.flush_top(true);
            }
        }
    }
}
