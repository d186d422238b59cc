//! Files read through a session: for the files of a directory, an openat (relative to the
//! directory's descriptor) and a read of each into a buffer of its own are sent together,
//! then searched; a file larger than its buffer gets more reads.

use std::ffi::OsString;
use std::path::Path;

use cosy_exec::Backend;
use cosy_exec::session::{BufHandle, Call, Fd, FdHandle, Session, SessionOptions};
use cosy_model::Policy;
use cosy_model::flags::{AtFlags, Mode, OFlags, StatxFlags};

/// Bytes of each file's buffer: most files are read in one call.
pub const FILE_BUF: usize = 64 << 10;

/// Bytes of the buffer the rest of a larger file is read through.
const SPILL: usize = 256 << 10;

/// Opens a session makes before it is replaced by a fresh one (a session has at most 65535).
const OPENS_PER_SESSION: usize = 60_000;

/// A directory being searched, as the walk holds it open.
#[derive(Clone, Debug)]
pub struct DirRef {
    /// Unique over the run.
    pub id: u64,
    /// Its descriptor in the process (the walk's session holds it open while its files are
    /// read).
    pub fd: i64,
    /// Its path, to open it by if `/proc/self/fd` is not there.
    pub path: std::path::PathBuf,
}

/// What is done with each file read: its index in the batch, its bytes or errno.
pub type OnFile<'a> = dyn FnMut(usize, Result<&[u8], i32>) + 'a;

/// A session of one thread reading files.
pub struct Reader {
    backend: Backend,
    batch: usize,
    s: Session,
    opens: usize,
    bufs: Vec<BufHandle>,
    spill: BufHandle,
    dir: Option<(u64, Result<FdHandle, i32>)>,
    /// The bytes of a file larger than its buffer (kept: no allocation per large file).
    big: Vec<u8>,
}

const FILE_FLAGS: i32 =
    libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;

impl Reader {
    /// A reader of up to `batch` files at once on `backend`.
    pub fn new(backend: Backend, batch: usize) -> Result<Reader, String> {
        let batch = batch.max(1);
        let (s, bufs, spill) = Self::session(backend, batch)?;
        Ok(Reader {
            backend,
            batch,
            s,
            opens: 0,
            bufs,
            spill,
            dir: None,
            big: Vec::new(),
        })
    }

    /// Files read at once.
    pub fn batch(&self) -> usize {
        self.batch
    }

    fn session(
        backend: Backend,
        batch: usize,
    ) -> Result<(Session, Vec<BufHandle>, BufHandle), String> {
        let opts = SessionOptions {
            arena: batch * FILE_BUF + SPILL + 4096,
            ..SessionOptions::default()
        };
        let mut s =
            Session::with_options(backend, &Policy::trusted(), opts).map_err(|e| e.to_string())?;
        let bufs = (0..batch)
            .map(|_| s.buffer(FILE_BUF))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let spill = s.buffer(SPILL).map_err(|e| e.to_string())?;
        Ok((s, bufs, spill))
    }

    /// Replaces the session by a fresh one when `more` opens would go past its bound.
    fn room(&mut self, more: usize) -> Result<(), i32> {
        if self.opens + more <= OPENS_PER_SESSION {
            return Ok(());
        }
        let (s, bufs, spill) = Self::session(self.backend, self.batch).map_err(|_| libc::EMFILE)?;
        // Dropping the old session closes what it still held.
        self.s = s;
        self.bufs = bufs;
        self.spill = spill;
        self.opens = 0;
        self.dir = None;
        Ok(())
    }

    /// This session's descriptor of `dir`: the walk's descriptor reopened through
    /// `/proc/self/fd` (no path walk, any depth), else its path.
    fn dir(&mut self, dir: &DirRef) -> Result<FdHandle, i32> {
        if let Some((id, h)) = &self.dir
            && *id == dir.id
        {
            return *h;
        }
        if let Some((_, Ok(h))) = self.dir.take() {
            let _ = self.s.send(Call::close(h));
        }
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
        let mut h = self.open(Fd::Cwd, format!("/proc/self/fd/{}", dir.fd).as_ref(), flags);
        if h.is_err() {
            h = self.open(Fd::Cwd, &dir.path, flags);
        }
        self.dir = Some((dir.id, h));
        h
    }

    fn open(&mut self, at: Fd, path: &Path, flags: i32) -> Result<FdHandle, i32> {
        self.opens += 1;
        let h = self
            .s
            .send(Call::openat(
                at,
                path,
                OFlags::from_bits_retain(flags as u32),
                Mode::empty(),
            ))
            .map_err(|_| libc::EMFILE)?;
        match self.s.get(h) {
            Ok(_) => Ok(h),
            Err(e) => {
                let _ = self.s.send(Call::close(h));
                Err(e.errno().unwrap_or(libc::EIO))
            }
        }
    }

    /// Reads the files `names` of `dir` (at most [`Reader::batch`]), calling `f` with each
    /// one's index and its bytes or errno, in order.
    pub fn read_dir_files(&mut self, dir: &DirRef, names: &[OsString], f: &mut OnFile<'_>) {
        let names = &names[..names.len().min(self.batch)];
        if let Err(e) = self.room(names.len() + 1) {
            return (0..names.len()).for_each(|i| f(i, Err(e)));
        }
        let d = match self.dir(dir) {
            Ok(d) => d,
            Err(e) => return (0..names.len()).for_each(|i| f(i, Err(e))),
        };
        let mut sent = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            self.opens += 1;
            let fd = match self.s.send(Call::openat(
                d,
                name,
                OFlags::from_bits_retain(FILE_FLAGS as u32),
                Mode::empty(),
            )) {
                Ok(fd) => fd,
                Err(_) => {
                    sent.push(None);
                    continue;
                }
            };
            let n = self.s.send(Call::read(fd, self.bufs[i]));
            sent.push(Some((fd, n.ok())));
        }
        for (i, sent) in sent.into_iter().enumerate() {
            let Some((fd, n)) = sent else {
                f(i, Err(libc::EMFILE));
                continue;
            };
            let n = match n.map(|n| self.s.get(n)) {
                Some(Ok(n)) => Ok(n as usize),
                Some(Err(e)) => Err(e.errno().unwrap_or(libc::EIO)),
                None => Err(libc::EIO),
            };
            match n {
                Err(e) => {
                    let _ = self.s.send(Call::close(fd));
                    f(i, Err(e));
                }
                Ok(n) if n < FILE_BUF => {
                    let _ = self.s.send(Call::close(fd));
                    match self.s.bytes(self.bufs[i]) {
                        Ok(b) => f(i, Ok(&b[..n.min(b.len())])),
                        Err(_) => f(i, Err(libc::EIO)),
                    }
                }
                Ok(n) => {
                    let mut data = std::mem::take(&mut self.big);
                    data.clear();
                    if let Ok(b) = self.s.bytes(self.bufs[i]) {
                        data.extend_from_slice(&b[..n.min(b.len())]);
                    }
                    let rest = self.read_rest(Fd::Handle(fd), &mut data);
                    let _ = self.s.send(Call::close(fd));
                    match rest {
                        Ok(()) => f(i, Ok(&data)),
                        Err(e) => f(i, Err(e)),
                    }
                    self.big = data;
                }
            }
        }
    }

    /// Reads `fd` to its end, appending to `data`.
    fn read_rest(&mut self, fd: Fd, data: &mut Vec<u8>) -> Result<(), i32> {
        loop {
            let n = self
                .s
                .send(Call::read(fd, self.spill))
                .map_err(|_| libc::EIO)?;
            let n = match self.s.get(n) {
                Ok(0) => return Ok(()),
                Ok(n) => n as usize,
                Err(e) => return Err(e.errno().unwrap_or(libc::EIO)),
            };
            let b = self.s.bytes(self.spill).map_err(|_| libc::EIO)?;
            data.extend_from_slice(&b[..n.min(b.len())]);
        }
    }

    /// Reads the whole file at `path` (relative to the working directory, following
    /// symbolic links).
    pub fn read_path(&mut self, path: &Path) -> Result<Vec<u8>, i32> {
        self.room(1)?;
        let fd = self.open(Fd::Cwd, path, FILE_FLAGS & !libc::O_NOFOLLOW)?;
        let mut data = Vec::new();
        let r = self.read_rest(Fd::Handle(fd), &mut data);
        let _ = self.s.send(Call::close(fd));
        r.map(|()| data)
    }

    /// Reads standard input to its end.
    pub fn read_stdin(&mut self) -> Result<Vec<u8>, i32> {
        let mut data = Vec::new();
        self.read_rest(Fd::Std(0), &mut data).map(|()| data)
    }

    /// The type bits (`S_IFMT`) of `path` (following symbolic links), or its errno.
    pub fn kind_of(&mut self, path: &Path) -> Result<u32, i32> {
        let st = self.spill;
        let h = self
            .s
            .send(Call::statx(
                Fd::Cwd,
                path,
                AtFlags::empty(),
                StatxFlags::TYPE,
                st,
            ))
            .map_err(|_| libc::EINVAL)?;
        self.s.get(h).map_err(|e| e.errno().unwrap_or(libc::EIO))?;
        let b = self.s.bytes(st).map_err(|_| libc::EIO)?;
        crate::tools::stat::Stat::parse(b)
            .map(|s| s.mode & libc::S_IFMT)
            .ok_or(libc::EIO)
    }
}
