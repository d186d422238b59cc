//! The file work of `ls`, through a session: a directory's entries (getdents64), the statx of
//! many names relative to one directory sent as one batch before any result is looked at,
//! small whole files (`/etc/passwd`), and symbolic links' targets (readlinkat, in a compound:
//! the session has no readlinkat call).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};

use cosy_exec::session::{BufHandle, Call, Fd, FdHandle, Session, SessionOptions};
use cosy_exec::{Backend, Functions, RunOptions};
use cosy_model::flags::{AtFlags, Mode, OFlags, StatxFlags};
use cosy_model::{Builder, ErrorMode, FdRef, Policy};

use crate::tools::stat::{STATX_LEN, Stat};
use crate::tools::walk::{Entry, parse_dirents};

/// statx calls sent before one barrier: their buffers are one slice of the arena.
pub const BATCH: usize = 128;

/// Bytes of the getdents64 buffer.
const DENTS: usize = 32 << 10;

/// Bytes of the buffer files are read through.
const FILE_BUF: usize = 16 << 10;

/// What the walker takes from the arena: its getdents64 buffer (64 KiB) and a statx buffer.
const WALK_BUFS: usize = (64 << 10) + STATX_LEN;

/// `O_RDONLY | O_DIRECTORY | O_CLOEXEC`.
pub const O_DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// A session and the buffers `ls` works with in it.
pub struct Io {
    /// The session.
    pub s: Session,
    stats: BufHandle,
    dents: BufHandle,
    file: BufHandle,
}

/// The backend `ls` runs on: on a warm cache every statx would go to io_uring's worker
/// threads, which costs more than the plain call it saves (DESIGN.md, measured again for
/// `ls -l` of 50,000 files).
pub const BACKEND: Backend = Backend::Direct;

impl Io {
    /// A session with its buffers, and room for the walker's if `walk`; `None` if the
    /// session cannot be made.
    pub fn new(walk: bool) -> Option<Io> {
        // The arena is zeroed when the session starts: no bigger than the buffers (these, and
        // the walker's getdents64 and statx buffers for -R).
        let opts = SessionOptions {
            arena: BATCH * STATX_LEN + DENTS + FILE_BUF + if walk { WALK_BUFS } else { 0 } + 4096,
            ..SessionOptions::default()
        };
        let mut s = Session::with_options(BACKEND, &Policy::trusted(), opts).ok()?;
        let stats = s.buffer(BATCH * STATX_LEN).ok()?;
        let dents = s.buffer(DENTS).ok()?;
        let file = s.buffer(FILE_BUF).ok()?;
        Some(Io {
            s,
            stats,
            dents,
            file,
        })
    }

    /// The buffer of the statx batches.
    pub fn stats_buffer(&self) -> BufHandle {
        self.stats
    }

    /// Opens directory `path` (relative to the working directory); the errno on failure.
    pub fn open_dir(&mut self, path: &OsStr) -> Result<FdHandle, i32> {
        let h = self
            .s
            .send(Call::openat(Fd::Cwd, path, O_DIR, Mode::empty()))
            .map_err(|_| libc::EMFILE)?;
        self.s
            .get(h)
            .map(|_| h)
            .map_err(|e| e.errno().unwrap_or(libc::EIO))
    }

    /// Closes a descriptor the session opened.
    pub fn close(&mut self, h: FdHandle) {
        let _ = self.s.send(Call::close(h));
    }

    /// The entries of the open directory `h` (without `.` and `..`), and the errno if reading
    /// stopped early.
    pub fn read_dir(&mut self, h: FdHandle) -> (Vec<Entry>, Option<i32>) {
        let mut entries = Vec::new();
        loop {
            let Ok(n) = self.s.send(Call::getdents64(h, self.dents)) else {
                return (entries, Some(libc::EIO));
            };
            let n = match self.s.get(n) {
                Ok(0) => return (entries, None),
                Ok(n) => n as usize,
                Err(e) => return (entries, Some(e.errno().unwrap_or(libc::EIO))),
            };
            let Ok(bytes) = self.s.bytes(self.dents) else {
                return (entries, Some(libc::EIO));
            };
            parse_dirents(&bytes[..n.min(bytes.len())], &mut entries);
        }
    }

    /// The whole of a small file (`/etc/passwd`), or `None` if it cannot be read.
    pub fn read_file(&mut self, path: &str) -> Option<Vec<u8>> {
        read_file(&mut self.s, self.file, path)
    }

    /// statx of every name relative to `dir`, without following a last symbolic link if
    /// `nofollow`: the stat or the errno of each, in order. Sent [`BATCH`] at a time, each
    /// batch before a single barrier.
    pub fn stat_all<'a>(
        &mut self,
        dir: Fd,
        names: impl ExactSizeIterator<Item = &'a OsStr>,
        nofollow: bool,
    ) -> Vec<Result<Stat, i32>> {
        stat_all(&mut self.s, self.stats, dir, names, nofollow)
    }
}

/// [`Io::stat_all`] on a session the buffer `stats` ([`BATCH`] × [`STATX_LEN`] bytes)
/// belongs to.
pub fn stat_all<'a>(
    s: &mut Session,
    stats: BufHandle,
    dir: Fd,
    names: impl ExactSizeIterator<Item = &'a OsStr>,
    nofollow: bool,
) -> Vec<Result<Stat, i32>> {
    let flags = if nofollow {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    let mut out = Vec::with_capacity(names.len());
    let mut sent = Vec::with_capacity(BATCH);
    let mut names = names.peekable();
    while names.peek().is_some() {
        sent.clear();
        for (k, name) in names.by_ref().take(BATCH).enumerate() {
            let buf = stats.range((k * STATX_LEN) as i64, ((k + 1) * STATX_LEN) as i64);
            let call = Call::statx(
                dir,
                name,
                AtFlags::from_bits_retain(flags as u32),
                StatxFlags::BASIC_STATS,
                buf,
            );
            sent.push(s.send(call).map_err(|_| libc::ENOMEM));
        }
        s.barrier();
        let results: Vec<Result<(), i32>> = sent
            .iter()
            .map(|h| match h {
                Ok(h) => s
                    .get(*h)
                    .map(|_| ())
                    .map_err(|e| e.errno().unwrap_or(libc::EIO)),
                Err(e) => Err(*e),
            })
            .collect();
        let Ok(bytes) = s.bytes(stats) else {
            out.extend(results.iter().map(|_| Err(libc::EIO)));
            continue;
        };
        for (k, r) in results.into_iter().enumerate() {
            out.push(r.and_then(|()| Stat::parse(&bytes[k * STATX_LEN..]).ok_or(libc::EIO)));
        }
    }
    out
}

/// Entries of one directory worth stat'ing on several threads: below this, starting a thread
/// and its session costs more than it saves.
const PARALLEL_MIN: usize = 4096;

/// [`stat_all`] of `names` relative to the open directory `dir` (without following links),
/// split over the machine's cores when there are many: each other thread has a session of
/// its own, which opens the directory again as `/proc/self/fd/N` (a handle belongs to its
/// session).
pub fn stat_dir(
    s: &mut Session,
    stats: BufHandle,
    dir: FdHandle,
    names: &[&OsStr],
) -> Vec<Result<Stat, i32>> {
    let threads = if names.len() >= PARALLEL_MIN {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(4)
    } else {
        1
    };
    let raw = if threads > 1 { raw_fd(s, dir) } else { None };
    let Some(raw) = raw else {
        return stat_all(s, stats, Fd::Handle(dir), names.iter().copied(), true);
    };
    let per = names.len().div_ceil(threads);
    let mut chunks = names.chunks(per);
    let Some(first) = chunks.next() else {
        return Vec::new();
    };
    let proc_path = format!("/proc/self/fd/{raw}");
    std::thread::scope(|scope| {
        let others: Vec<_> = chunks
            .map(|chunk| {
                let proc_path = proc_path.as_str();
                scope.spawn(move || stat_elsewhere(proc_path, chunk))
            })
            .collect();
        let mut out = stat_all(s, stats, Fd::Handle(dir), first.iter().copied(), true);
        for (h, chunk) in others.into_iter().zip(names.chunks(per).skip(1)) {
            match h.join() {
                Ok(Some(r)) => out.extend(r),
                _ => out.extend(stat_all(
                    s,
                    stats,
                    Fd::Handle(dir),
                    chunk.iter().copied(),
                    true,
                )),
            }
        }
        out
    })
}

/// The stats of `names` in the directory `dir_path` names, in a session of this thread's
/// own; `None` if the session or the directory cannot be had.
fn stat_elsewhere(dir_path: &str, names: &[&OsStr]) -> Option<Vec<Result<Stat, i32>>> {
    let mut io = Io::new(false)?;
    let h = io.open_dir(OsStr::new(dir_path)).ok()?;
    let r = stat_all(
        &mut io.s,
        io.stats,
        Fd::Handle(h),
        names.iter().copied(),
        true,
    );
    io.close(h);
    Some(r)
}

/// The whole file at `path`, read through `buf`.
pub fn read_file(s: &mut Session, buf: BufHandle, path: &str) -> Option<Vec<u8>> {
    let h = s
        .send(Call::openat(
            Fd::Cwd,
            path,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ))
        .ok()?;
    let mut out = Vec::new();
    let ok = loop {
        let Ok(n) = s.send(Call::read(h, buf)) else {
            break false;
        };
        match s.get(n) {
            Ok(0) => break true,
            Ok(n) => match s.bytes(buf) {
                Ok(b) => out.extend_from_slice(&b[..(n as usize).min(b.len())]),
                Err(_) => break false,
            },
            Err(_) => break false,
        }
    };
    let _ = s.send(Call::close(h));
    ok.then_some(out)
}

/// The descriptor number of a directory handle (a descriptor of the process: opened with
/// `O_DIRECTORY`), to name it as `/proc/self/fd/N` in a compound.
pub fn raw_fd(s: &mut Session, dir: FdHandle) -> Option<i64> {
    s.get(dir).ok()
}

/// Longest target read (`PATH_MAX`).
const TARGET: u32 = 4096;

/// The targets of the symbolic links `paths` (absolute, or relative to the working
/// directory): each target or the errno. One compound reads them all (readlinkat of each
/// into a buffer, a registered function keeping the bytes) in the `continue` mode, so that
/// one failure does not stop the others.
pub fn read_links(paths: &[Vec<u8>]) -> Vec<Result<OsString, i32>> {
    if paths.is_empty() {
        return Vec::new();
    }
    let kept: Arc<Mutex<Vec<Option<Vec<u8>>>>> = Arc::new(Mutex::new(vec![None; paths.len()]));
    let mut c = Builder::new();
    c.mode(ErrorMode::Continue);
    let buf = c.buffer("target", TARGET);
    let mut lens = Vec::with_capacity(paths.len());
    for (i, p) in paths.iter().enumerate() {
        let path = c.path(p);
        let n = c.readlinkat(FdRef::Cwd, path, buf);
        c.if_(n.ge(0), |c| {
            c.call("keep", (i as i64, buf.prefix(n)));
        });
        lens.push(n);
    }
    for (i, n) in lens.into_iter().enumerate() {
        c.output(&format!("n{i}"), n);
    }
    let mut funcs = Functions::new();
    let sink = Arc::clone(&kept);
    funcs.register("keep", move |a| {
        let i = a.int(0)? as usize;
        let b = a.bytes(1)?;
        let mut k = sink.lock().map_err(|_| "poisoned".to_string())?;
        if let Some(slot) = k.get_mut(i) {
            *slot = Some(b.to_vec());
        }
        Ok(0)
    });
    let all_failed = |e: i32| paths.iter().map(|_| Err(e)).collect();
    let mut policy = Policy::trusted();
    policy.functions.insert("keep".into());
    let Ok(v) = cosy_verify::verify(c.finish(), &policy) else {
        return all_failed(libc::EINVAL);
    };
    let opts = RunOptions {
        functions: funcs,
        backend: BACKEND,
        ..RunOptions::default()
    };
    let outcome = cosy_exec::run(&v, &opts);
    let kept = match kept.lock() {
        Ok(k) => k.clone(),
        Err(_) => return all_failed(libc::EIO),
    };
    kept.into_iter()
        .enumerate()
        .map(|(i, t)| match t {
            Some(t) => Ok(OsStr::from_bytes(&t).to_os_string()),
            None => {
                let n = outcome.output(&format!("n{i}")).unwrap_or(-1);
                Err(if n < 0 { (-n) as i32 } else { libc::EIO })
            }
        })
        .collect()
}
