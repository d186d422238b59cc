//! Runs a compound on every executor in a scratch directory and compares with the direct one.
//!
//! A [`Harness`] owns a directory holding `scratch/` (the policy's root, rebuilt from a small
//! fixture before every run: files, directories, a symlink to a file and one to the outside)
//! and `outside/`, its sibling, which no run may change. [`Harness::check`] verifies the
//! compound under a strict policy ([`Harness::policy`]: `Policy::untrusted(scratch)` with
//! little fuel, a short time limit, a small arena) and, if it verifies, runs it on `direct`
//! twice (what the two runs disagree on — inode numbers, timestamps — is not compared), then
//! on `ring` and `auto`, and compares each with direct: the outputs, the error that stopped
//! the run, the errors of `continue` mode and the files left in the scratch directory. After
//! every run, the process has as many descriptors open as before it (`/proc/self/fd`), every
//! open in the trace was closed, `outside/` is as it was and no path outside the harness's
//! directory that the generator names (`/tmp/cosy-x`) appeared.
//!
//! Rings are not kept between runs ([`cosy_exec::RingOptions::reuse`] off), so that a
//! descriptor count after a run is comparable with the one before it.
//!
//! The descriptor count is the process's: run nothing else that opens descriptors in the
//! process while a check runs (the property tests take [`Harness::lock`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cosy_exec::{Backend, Error, Outcome, RingOptions, RunOptions};
use cosy_model::{Arg, Compound, DataId, FdRef, FdSlot, Op, PathRef, Policy, Ret, Sys};

use crate::shown;

/// The fuel of a run: enough for loops over the fixture, small enough that a compound looping
/// to its bound stops quickly.
pub const FUEL: u64 = 20_000;
/// The time limit of a run.
pub const TIME: Duration = Duration::from_secs(1);
/// The arena limit of a run.
pub const ARENA_BYTES: u64 = 1 << 20;
/// The descriptor limit of a run.
pub const OPEN_FDS: u32 = 64;

/// A path outside the scratch directory that generated compounds name (absolute): it must not
/// appear.
const OUTSIDE_ABSOLUTE: &str = "/tmp/cosy-x";

/// What happened to a compound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// The verifier refused it.
    Refused,
    /// It ran on every executor, which agreed.
    Agreed,
}

/// The scratch and outside directories, and what every run shares.
pub struct Harness {
    dir: PathBuf,
    scratch: PathBuf,
    outside: PathBuf,
    outside_digest: BTreeMap<String, String>,
    outside_absolute_existed: bool,
    calibration: Arc<cosy_uring::Calibration>,
}

/// Serializes checks within a process (the descriptor count is per process).
static LOCK: Mutex<()> = Mutex::new(());

impl Harness {
    /// A harness in a new directory under `$COSY_FUZZ_DIR`, else `/dev/shm` (a tmpfs: a disk
    /// file system makes every run wait for its inode allocations and syncs), else the
    /// system's temporary directory; removed on drop (or, when the harness is never dropped,
    /// by the next harness made after its process ended).
    pub fn new() -> Result<Harness, String> {
        // Setting up opens descriptors, which a check running on another thread would count.
        let _guard = Self::lock();
        let shm = Path::new("/dev/shm");
        let base = match std::env::var_os("COSY_FUZZ_DIR") {
            Some(d) => PathBuf::from(d),
            None if shm.is_dir() => shm.to_path_buf(),
            None => std::env::temp_dir(),
        };
        remove_stale(&base);
        let mut k = 0u32;
        let dir = loop {
            let d = base.join(format!("cosy-fuzz-{}-{k}", std::process::id()));
            match std::fs::create_dir(&d) {
                Ok(()) => break d,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && k < 1000 => k += 1,
                Err(e) => return Err(format!("creating {}: {e}", d.display())),
            }
        };
        let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
        let dir = dir.canonicalize().map_err(|e| io("canonicalize", e))?;
        let scratch = dir.join("scratch");
        let outside = dir.join("outside");
        std::fs::create_dir(&outside).map_err(|e| io("mkdir outside", e))?;
        std::fs::write(outside.join("f"), text(100, 9)).map_err(|e| io("write outside/f", e))?;
        std::fs::create_dir(outside.join("sub")).map_err(|e| io("mkdir outside/sub", e))?;
        std::fs::write(outside.join("sub/g"), text(10, 8)).map_err(|e| io("write outside", e))?;
        let outside_digest = digest(&outside);
        Ok(Harness {
            scratch,
            outside,
            outside_digest,
            outside_absolute_existed: Path::new(OUTSIDE_ABSOLUTE).symlink_metadata().is_ok(),
            calibration: Arc::new(cosy_uring::Calibration::cached()),
            dir,
        })
    }

    /// Holds other checks of this process off (see the module documentation).
    pub fn lock() -> MutexGuard<'static, ()> {
        LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The policy compounds run under: `Policy::untrusted` rooted at the scratch directory,
    /// with [`FUEL`], [`TIME`], [`ARENA_BYTES`] and [`OPEN_FDS`].
    pub fn policy(&self) -> Policy {
        let mut p = Policy::untrusted(&self.scratch);
        p.fuel = FUEL;
        p.time = TIME;
        p.arena_bytes = ARENA_BYTES;
        p.open_fds = OPEN_FDS;
        p
    }

    /// The compound `c` as it runs: pipes non-blocking (a generated compound may read a pipe
    /// it holds the write end of, and a blocking read would ignore the time limit), the
    /// standard streams replaced by a file of the scratch directory (a test must neither read
    /// the real stdin nor write to stdout).
    pub fn prepare(c: Compound) -> Compound {
        redirect_std(cosy_format::testing::nonblocking_pipes(c), b"stdout")
    }

    /// Verifies `c` (after [`Harness::prepare`]) under [`Harness::policy`] and, if it
    /// verifies, runs it on every executor and compares (see the module documentation).
    pub fn check(&self, c: Compound) -> Result<Ran, String> {
        let _guard = Self::lock();
        let c = Self::prepare(c);
        let Ok(v) = cosy_verify::verify(c.clone(), &self.policy()) else {
            return Ok(Ran::Refused);
        };
        let fail = |e: String| format!("{e}\n--- compound:\n{}", shown(&c));
        let reference = self.run_once(&v, Backend::Direct).map_err(fail)?;
        let again = self.run_once(&v, Backend::Direct).map_err(fail)?;
        let mut stable = Stable::all(&reference.seen);
        stable.keep_agreeing(&reference.seen, &again.seen);
        for backend in [Backend::Ring, Backend::Auto] {
            let got = self.run_once(&v, backend).map_err(fail)?;
            let Some(diff) = stable.differ(&reference.seen, &got.seen) else {
                continue;
            };
            // The environment may decide (a branch on an inode number or a timestamp, the
            // checksum of a `statx` buffer): accept what direct runs that stopped the same way
            // produce, compared on what they agree on (the two first direct runs may both
            // have taken the other branch, and agree on outputs this run computes
            // differently), or this executor's run again producing the direct one's.
            let mut agreed = false;
            let mut same: Vec<Run> = Vec::new();
            for _ in 0..40 {
                let d = self.run_once(&v, Backend::Direct).map_err(fail)?;
                if d.seen.error == got.seen.error {
                    same.push(d);
                    if same.len() == 3 {
                        break;
                    }
                }
            }
            if same.len() >= 2 {
                let mut st = Stable::all(&same[0].seen);
                for other in &same[1..] {
                    st.keep_agreeing(&same[0].seen, &other.seen);
                }
                agreed = st.differ(&same[0].seen, &got.seen).is_none();
            }
            for _ in 0..10 {
                if agreed {
                    break;
                }
                let r = self.run_once(&v, backend).map_err(fail)?;
                agreed = stable.differ(&reference.seen, &r.seen).is_none();
            }
            if !agreed {
                return Err(fail(format!(
                    "DIFFERENT on {}: {diff}\n--- direct:\n{}\n--- {}:\n{}",
                    backend.name(),
                    show(&reference.out),
                    backend.name(),
                    show(&got.out)
                )));
            }
        }
        Ok(Ran::Agreed)
    }

    /// One run of `v` on `backend` in a fresh fixture, with the checks every run gets.
    fn run_once(&self, v: &cosy_verify::Verified, backend: Backend) -> Result<Run, String> {
        self.fixture()?;
        let opts = RunOptions {
            trace: true,
            backend,
            ring: RingOptions {
                reuse: false,
                ..RingOptions::default()
            },
            calibration: Some(self.calibration.clone()),
            ..RunOptions::default()
        };
        let before = open_fds()?;
        let out = cosy_exec::run(v, &opts);
        let after = open_fds()?;
        let name = backend.name();
        if after != before {
            return Err(format!(
                "on {name}: {} descriptors open after the run, {} before\n{}",
                after.len(),
                before.len(),
                describe_fds(&before, &after, &out)
            ));
        }
        trace_closes(&out).map_err(|e| format!("on {name}: {e}"))?;
        let outside = digest(&self.outside);
        if outside != self.outside_digest {
            return Err(format!(
                "on {name}: the directory outside the root changed: {:?} (was {:?})\n{}",
                outside,
                self.outside_digest,
                show(&out)
            ));
        }
        if !self.outside_absolute_existed && Path::new(OUTSIDE_ABSOLUTE).symlink_metadata().is_ok()
        {
            return Err(format!(
                "on {name}: {OUTSIDE_ABSOLUTE}, outside the root, was created\n{}",
                show(&out)
            ));
        }
        let files = digest(&self.scratch);
        Ok(Run {
            seen: seen(&out, &self.scratch, files),
            out,
        })
    }

    /// Rebuilds the scratch directory: files of several sizes, directories (one empty), a
    /// symlink to a file and one to the outside directory.
    fn fixture(&self) -> Result<(), String> {
        let d = &self.scratch;
        let io = |what: &str, e: std::io::Error| format!("fixture: {what}: {e}");
        if d.symlink_metadata().is_ok() {
            // A run may have taken permissions away (fchmodat): give them back first.
            restore_permissions(d);
            std::fs::remove_dir_all(d).map_err(|e| io("remove", e))?;
        }
        std::fs::create_dir(d).map_err(|e| io("mkdir", e))?;
        let w = |p: &str, b: Vec<u8>| std::fs::write(d.join(p), b).map_err(|e| io(p, e));
        let mkdir = |p: &str| std::fs::create_dir(d.join(p)).map_err(|e| io(p, e));
        w("a", text(300, 1))?;
        mkdir("dir")?;
        w("dir/b", text(5000, 2))?;
        mkdir("sub dir")?;
        w("sub dir/\u{e9}", text(70, 3))?;
        w("empty", Vec::new())?;
        w("page", text(4096, 4))?;
        w("big", text(20_003, 5))?;
        mkdir("tree")?;
        for i in 0..8 {
            w(&format!("tree/f{i}"), text(i * 97, i as u64))?;
        }
        mkdir("tree/sub")?;
        std::os::unix::fs::symlink("a", d.join("link")).map_err(|e| io("link", e))?;
        std::os::unix::fs::symlink("../outside", d.join("escape")).map_err(|e| io("escape", e))?;
        Ok(())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _guard = Self::lock();
        restore_permissions(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the directories under `base` that harnesses of processes no longer running left:
/// a harness kept in a `static` (a fuzz target's, a test binary's) is never dropped.
fn remove_stale(base: &Path) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("cosy-fuzz-"))
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            restore_permissions(&e.path());
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Makes every directory under `d` readable, writable and searchable again.
fn restore_permissions(d: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![d.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = p.symlink_metadata() else {
            continue;
        };
        if m.is_dir() {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
}

/// `len` bytes of lines of text, different for each `seed`.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = match x % 16 {
            0 => b'\n',
            1 | 2 => b' ',
            k => b'a' + (k as u8) + (x >> 60) as u8,
        };
        out.push(b);
    }
    out
}

/// The descriptors open in this process: number and what it points at.
fn open_fds() -> Result<BTreeMap<i32, String>, String> {
    let rd = std::fs::read_dir("/proc/self/fd").map_err(|e| format!("/proc/self/fd: {e}"))?;
    let mut out = BTreeMap::new();
    for e in rd.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let target = std::fs::read_link(e.path())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        out.insert(fd, target);
    }
    // The descriptor of the listing itself, closed by now.
    out.retain(|_, t| !t.is_empty());
    Ok(out)
}

fn describe_fds(
    before: &BTreeMap<i32, String>,
    after: &BTreeMap<i32, String>,
    out: &Outcome,
) -> String {
    let opened: Vec<_> = after
        .iter()
        .filter(|(k, _)| !before.contains_key(k))
        .collect();
    let closed: Vec<_> = before
        .iter()
        .filter(|(k, _)| !after.contains_key(k))
        .collect();
    format!("left open: {opened:?}; closed: {closed:?}\n{}", show(out))
}

/// A digest of the files under `dir`: relative paths, kinds, permissions, contents (not times
/// or inodes).
pub fn digest(dir: &Path) -> BTreeMap<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(dir)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let mode = m.permissions().mode() & 0o7777;
            let what = if m.is_dir() {
                stack.push(p.clone());
                format!("dir {mode:o}")
            } else if m.file_type().is_symlink() {
                format!("link -> {:?}", std::fs::read_link(&p).unwrap_or_default())
            } else {
                format!("file {mode:o} {} bytes, {}", m.len(), content_digest(&p))
            };
            out.insert(rel, what);
        }
    }
    out
}

/// The most bytes of a file [`digest`] hashes: a compound may `ftruncate` a file to
/// gigabytes (sparse), which must neither be read into memory nor take seconds to hash.
const DIGEST_BYTES: u64 = 4 << 20;

/// A hash of the first [`DIGEST_BYTES`] of the file at `p` (FNV-1a, 64 bits), read in
/// chunks.
fn content_digest(p: &Path) -> String {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(p) else {
        return "unreadable".to_string();
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut buf = vec![0u8; 64 << 10];
    let mut r = f.take(DIGEST_BYTES);
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                for &b in &buf[..n] {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return "unreadable".to_string(),
        }
    }
    format!("fnv {h:016x}")
}

/// What is compared of one run.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    outputs: Vec<(String, i64)>,
    error: Option<String>,
    /// The errors of `continue` mode: operation, call, errno.
    errors: Vec<(u32, Sys, i32)>,
    files: BTreeMap<String, String>,
}

struct Run {
    seen: Seen,
    out: Outcome,
}

fn seen(out: &Outcome, dir: &Path, files: BTreeMap<String, String>) -> Seen {
    let root = dir.to_string_lossy().into_owned();
    Seen {
        outputs: out.outputs.clone(),
        error: out.error.as_ref().map(|e| match e {
            Error::Setup(m) => format!("Setup({})", m.replace(&root, "<dir>")),
            e => format!("{e:?}").replace(&root, "<dir>"),
        }),
        errors: out.errors.iter().map(|e| (e.op, e.call, e.errno)).collect(),
        files,
    }
}

/// Which parts of an outcome do not depend on the environment.
struct Stable {
    outputs: Vec<bool>,
    error: bool,
    errors: bool,
    files: bool,
}

impl Stable {
    fn all(reference: &Seen) -> Stable {
        Stable {
            outputs: vec![true; reference.outputs.len()],
            error: true,
            errors: true,
            files: true,
        }
    }

    fn keep_agreeing(&mut self, a: &Seen, b: &Seen) {
        for (i, keep) in self.outputs.iter_mut().enumerate() {
            *keep &= a.outputs.get(i) == b.outputs.get(i);
        }
        self.error &= a.error == b.error;
        self.errors &= a.errors == b.errors;
        self.files &= a.files == b.files;
    }

    fn differ(&self, want: &Seen, got: &Seen) -> Option<String> {
        if want.outputs.len() != got.outputs.len() {
            return Some(format!("outputs {:?} != {:?}", got.outputs, want.outputs));
        }
        for (i, keep) in self.outputs.iter().enumerate() {
            if *keep && want.outputs.get(i) != got.outputs.get(i) {
                return Some(format!(
                    "output {:?} != {:?} (all: {:?} != {:?})",
                    got.outputs.get(i),
                    want.outputs.get(i),
                    got.outputs,
                    want.outputs
                ));
            }
        }
        if self.error && want.error != got.error {
            return Some(format!("error {:?} != {:?}", got.error, want.error));
        }
        if self.errors && want.errors != got.errors {
            return Some(format!("errors {:?} != {:?}", got.errors, want.errors));
        }
        if self.files && want.files != got.files {
            let mut d = Vec::new();
            for (k, v) in &want.files {
                if got.files.get(k) != Some(v) {
                    d.push(format!("{k}: want {v}, got {:?}", got.files.get(k)));
                }
            }
            for (k, v) in &got.files {
                if !want.files.contains_key(k) {
                    d.push(format!("{k}: unexpected {v}"));
                }
            }
            return Some(format!("files differ: {d:?}"));
        }
        None
    }
}

/// Every fd an open in the trace returned is closed in the trace afterwards, and none is
/// returned twice without a close between.
fn trace_closes(out: &Outcome) -> Result<(), String> {
    let mut open: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, t) in out.trace.iter().enumerate() {
        match t.call {
            // The guard records the open; it matches when the fd was already open.
            Sys::Openat | Sys::Openat2 if t.result >= 0 && open.insert(t.result, i).is_some() => {
                return Err(format!(
                    "fd {} opened twice without a close:\n{}",
                    t.result,
                    show(out)
                ));
            }
            Sys::Close if t.fd >= 0 => {
                open.remove(&i64::from(t.fd));
            }
            _ => {}
        }
    }
    if open.is_empty() {
        Ok(())
    } else {
        Err(format!("fds left open: {open:?}\n{}", show(out)))
    }
}

/// The trace and the outcome, for a message.
fn show(out: &Outcome) -> String {
    let mut s = String::new();
    for t in &out.trace {
        s.push_str(&format!("{t}\n"));
    }
    s.push_str(&out.to_string());
    s
}

/// `c` with the standard streams replaced by an fd slot opened first on `path` (write-only,
/// creating, appending).
fn redirect_std(mut c: Compound, path: &[u8]) -> Compound {
    let uses_std = |a: &Arg| matches!(a, Arg::Fd(FdRef::Std(_)));
    let any = c.ops.iter().any(|op| match op {
        Op::Sys { args, .. } | Op::Call { args, .. } => args.iter().any(uses_std),
        _ => false,
    });
    if !any || c.fds.len() >= usize::from(u16::MAX) || c.data.len() >= usize::from(u16::MAX) {
        return c;
    }
    let slot = FdSlot(c.fds.len() as u16);
    c.fds.push("redirected_std".into());
    let data = DataId(c.data.len() as u16);
    c.data.push(path.to_vec());
    for op in &mut c.ops {
        match op {
            Op::Sys { args, .. } | Op::Call { args, .. } => {
                for a in args.iter_mut() {
                    if uses_std(a) {
                        *a = Arg::Fd(FdRef::Slot(slot));
                    }
                }
            }
            Op::Jump { target, .. } => *target = target.saturating_add(1),
            Op::MapBegin { end, .. } => *end = end.saturating_add(1),
            Op::MapEnd { begin } => *begin = begin.saturating_add(1),
            _ => {}
        }
    }
    c.ops.insert(
        0,
        Op::Sys {
            call: Sys::Openat,
            args: vec![
                Arg::Fd(FdRef::Cwd),
                Arg::Path(PathRef::Data(data)),
                Arg::Value(i64::from(libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND).into()),
                Arg::Value(0o644.into()),
            ],
            ret: Ret::Fd(slot),
        },
    );
    c
}
