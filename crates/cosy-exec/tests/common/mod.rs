//! Shared helpers and compound builders for the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use cosy_exec::{Outcome, RunOptions, run};
use cosy_model::flags::{AtFlags, DirentType, Mode, OFlags, PipeFlags, SpliceFlags, StatxFlags};
use cosy_model::{Arg, Builder, Compound, FdRef, Policy, Sys, Width, flags};

pub const RDONLY: OFlags = OFlags::RDONLY;
pub const DIR: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY);
pub const CREATE: OFlags = OFlags::WRONLY.union(OFlags::CREATE).union(OFlags::TRUNC);
pub const RDWR_CREATE: OFlags = OFlags::RDWR.union(OFlags::CREATE);

pub fn bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

/// Deterministic pseudo-random text with words in it.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    let words: [&[u8]; 6] = [
        b"alpha ",
        b"cosy ",
        b"beta\n",
        b"gamma ",
        b"cosycosy ",
        b"x",
    ];
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(words[(s >> 33) as usize % words.len()]);
    }
    out.truncate(len);
    out
}

thread_local! {
    /// The executor the tests of this thread run on (see [`each_executor`]).
    static CURRENT: std::cell::RefCell<(&'static str, RunOptions)> =
        std::cell::RefCell::new(("direct", RunOptions {
            backend: cosy_exec::Backend::Direct,
            ..RunOptions::default()
        }));
}

/// Runs `body` once per executor of [`executors`]: [`run_with`] and [`run_trusted`] use that
/// executor. A failure names it.
pub fn each_executor(body: impl Fn()) {
    for (name, opts) in executors() {
        CURRENT.with(|c| *c.borrow_mut() = (name, opts));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&body));
        if let Err(e) = r {
            eprintln!("(the failure above is on the `{name}` executor)");
            std::panic::resume_unwind(e);
        }
    }
    CURRENT.with(|c| {
        *c.borrow_mut() = (
            "direct",
            RunOptions {
                backend: cosy_exec::Backend::Direct,
                ..RunOptions::default()
            },
        )
    });
}

/// The name of the executor the current test body runs on.
pub fn current() -> &'static str {
    CURRENT.with(|c| c.borrow().0)
}

/// Whether the current executor is the direct one (its statistics count every call as a
/// system call).
pub fn on_direct() -> bool {
    current() == "direct"
}

/// Verifies under `policy` and runs with a trace on the current executor (`opts` gives the
/// functions); checks that every descriptor the trace shows opened is closed later in it.
pub fn run_with(c: Compound, policy: &Policy, opts: RunOptions) -> Outcome {
    let v = cosy_verify::verify(c, policy)
        .unwrap_or_else(|p| panic!("the compound does not verify: {p:?}"));
    let base = CURRENT.with(|c| c.borrow().1.clone());
    let opts = RunOptions {
        trace: true,
        functions: opts.functions,
        ..base
    };
    let out = run(&v, &opts);
    assert_trace_closes(&out);
    out
}

/// Calls made, however issued (system calls and ring operations).
pub fn calls(out: &Outcome) -> u64 {
    out.stats.syscalls + out.stats.ring_ops
}

pub fn run_trusted(c: Compound) -> Outcome {
    run_with(c, &Policy::trusted(), RunOptions::default())
}

/// Every fd returned by an open in the trace is closed afterwards (closes name their fd in
/// the trace); no close is issued twice for one open.
pub fn assert_trace_closes(out: &Outcome) {
    if let Err(e) = trace_closes(out) {
        panic!("{e}");
    }
}

/// What [`assert_trace_closes`] checks, as an error message instead of a panic (for callers
/// that name the case in it).
pub fn trace_closes(out: &Outcome) -> Result<(), String> {
    let mut open: BTreeMap<i32, usize> = BTreeMap::new();
    for (i, t) in out.trace.iter().enumerate() {
        match t.call {
            Sys::Openat | Sys::Openat2 if t.result >= 0 => {
                let fd = i32::try_from(t.result).unwrap();
                if open.insert(fd, i).is_some() {
                    return Err(format!(
                        "fd {fd} opened twice without a close:\n{}",
                        show(out)
                    ));
                }
            }
            Sys::Close if t.fd >= 0 => {
                open.remove(&t.fd);
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

pub fn show(out: &Outcome) -> String {
    let mut s = String::new();
    for t in &out.trace {
        s.push_str(&format!("{t}\n"));
    }
    s.push_str(&out.to_string());
    s
}

/// `open(path); do { n = read(fd, buf); total += n } while n == len; close` — the thesis's
/// example.
pub fn thesis_loop(path: &[u8], buf_len: u32) -> Compound {
    let mut c = Builder::new();
    let name = c.input_path("name", path);
    let buf = c.buffer("buf", buf_len);
    let fd = c.openat(FdRef::Cwd, name, RDONLY, Mode::empty());
    let total = c.value("total", 0);
    c.do_while(1 << 24, |c| {
        let n = c.read(fd, buf);
        c.accumulate(total, n);
        n.eq(i64::from(buf_len))
    });
    c.close(fd);
    c.output("total", total);
    c.finish()
}

/// Sum of the sizes of the regular files of `dir`: getdents64 + map dirents + statx.
pub fn du(dir: &[u8]) -> Compound {
    let mut c = Builder::new();
    let name = c.input_path("dir", dir);
    let dents = c.buffer("dents", 4096);
    let st = c.local_buffer("st", flags::STATX_BYTES as u32);
    let fd = c.openat(FdRef::Cwd, name, DIR, Mode::empty());
    let total = c.value("total", 0);
    let files = c.value("files", 0);
    c.do_while(1 << 20, |c| {
        let n = c.getdents64(fd, dents);
        c.map_dirents(dents.prefix(n), |c, e| {
            c.if_(e.kind.eq(DirentType::Reg), |c| {
                c.statx(fd, e.name, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::SIZE, st);
                let size = c.load(Width::U64, st, flags::STATX_SIZE_OFFSET as i64);
                c.accumulate(total, size);
                c.accumulate(files, 1);
            });
        });
        n.gt(0)
    });
    c.close(fd);
    c.output("total", total);
    c.output("files", files);
    c.finish()
}

/// Stores `bytes` (at most 64) at the start of a fresh buffer, eight bytes at a time: the
/// model has no other way to put constant bytes into the arena.
pub fn constant_buffer(c: &mut Builder, name: &str, bytes: &[u8]) -> cosy_model::BufRange {
    let buf = c.buffer(name, 64);
    for (i, chunk) in bytes.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        c.store(Width::U64, buf, (i * 8) as i64, i64::from_le_bytes(w));
    }
    buf.prefix(bytes.len() as i64)
}

/// Occurrences of `word` (at most 64 bytes) in the regular files of `dir` (each smaller than
/// 64 KiB): map over the dirents, open, read, find, close.
pub fn grep_count(dir: &[u8], word: &[u8]) -> Compound {
    let mut c = Builder::new();
    let name = c.input_path("dir", dir);
    let needle = constant_buffer(&mut c, "needle", word);
    let dents = c.buffer("dents", 8192);
    let data = c.local_buffer("data", 65536);
    let dfd = c.openat(FdRef::Cwd, name, DIR, Mode::empty());
    let count = c.value("count", 0);
    c.do_while(1 << 20, |c| {
        let n = c.getdents64(dfd, dents);
        c.map_dirents(dents.prefix(n), |c, e| {
            c.if_(e.kind.eq(DirentType::Reg), |c| {
                let fd = c.openat(dfd, e.name, RDONLY, Mode::empty());
                let k = c.read(fd, data);
                let found = c.call("find", (data.prefix(k), needle));
                c.accumulate(count, found);
                c.close(fd);
            });
        });
        n.gt(0)
    });
    c.close(dfd);
    c.output("count", count);
    c.finish()
}

/// Copies `src` to `dst` with a read/write loop through a buffer.
pub fn copy_rw(src: &[u8], dst: &[u8], buf_len: u32) -> Compound {
    let mut c = Builder::new();
    let s = c.input_path("src", src);
    let d = c.input_path("dst", dst);
    let buf = c.buffer("buf", buf_len);
    let i = c.openat(FdRef::Cwd, s, RDONLY, Mode::empty());
    let o = c.openat(FdRef::Cwd, d, CREATE, Mode::from_raw_mode(0o644));
    let copied = c.value("copied", 0);
    c.do_while(1 << 24, |c| {
        let n = c.read(i, buf);
        let w = c.write(o, buf.prefix(n));
        c.accumulate(copied, w);
        n.gt(0)
    });
    c.close(i);
    c.close(o);
    c.output("copied", copied);
    c.finish()
}

/// Copies `src` to `dst` with copy_file_range (file positions: offsets -1).
pub fn copy_cfr(src: &[u8], dst: &[u8]) -> Compound {
    let mut c = Builder::new();
    let s = c.input_path("src", src);
    let d = c.input_path("dst", dst);
    let i = c.openat(FdRef::Cwd, s, RDONLY, Mode::empty());
    let o = c.openat(FdRef::Cwd, d, CREATE, Mode::from_raw_mode(0o644));
    let copied = c.value("copied", 0);
    c.do_while(1 << 20, |c| {
        let n = c.copy_file_range(i, -1, o, -1, 1 << 16);
        c.accumulate(copied, n);
        n.gt(0)
    });
    c.close(i);
    c.close(o);
    c.output("copied", copied);
    c.finish()
}

/// Copies `src` to `dst` through a pipe with splice.
pub fn copy_splice(src: &[u8], dst: &[u8]) -> Compound {
    let mut c = Builder::new();
    let s = c.input_path("src", src);
    let d = c.input_path("dst", dst);
    let i = c.openat(FdRef::Cwd, s, RDONLY, Mode::empty());
    let o = c.openat(FdRef::Cwd, d, CREATE, Mode::from_raw_mode(0o644));
    let (pr, pw) = c.pipe2(PipeFlags::empty());
    let copied = c.value("copied", 0);
    c.do_while(1 << 20, |c| {
        let n = c.splice(i, -1, pw, -1, 1 << 14, SpliceFlags::empty());
        let m = c.splice(pr, -1, o, -1, n, SpliceFlags::empty());
        c.accumulate(copied, m);
        n.gt(0)
    });
    c.close(pr);
    c.close(pw);
    c.close(i);
    c.close(o);
    c.output("copied", copied);
    c.finish()
}

/// Copies `src` to `dst` with sendfile.
pub fn copy_sendfile(src: &[u8], dst: &[u8]) -> Compound {
    let mut c = Builder::new();
    let s = c.input_path("src", src);
    let d = c.input_path("dst", dst);
    let i = c.openat(FdRef::Cwd, s, RDONLY, Mode::empty());
    let o = c.openat(FdRef::Cwd, d, CREATE, Mode::from_raw_mode(0o644));
    let copied = c.value("copied", 0);
    c.do_while(1 << 20, |c| {
        let n = c.sendfile(o, i, -1, 1 << 15);
        c.accumulate(copied, n);
        n.gt(0)
    });
    c.close(i);
    c.close(o);
    c.output("copied", copied);
    c.finish()
}

/// Opens a missing file (stop mode: the run ends at op 0 with ENOENT).
pub fn open_missing(path: &[u8]) -> Compound {
    let mut c = Builder::new();
    let p = c.path(path);
    let buf = c.buffer("buf", 16);
    let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
    let n = c.read(fd, buf);
    c.close(fd);
    let pid = c.getpid();
    c.output("n", n);
    c.output("pid", pid);
    c.finish()
}

/// Opens `n` files in turn into the same slot (each reopen closes the previous) and leaves
/// the last one open: the end of the run must close it.
pub fn reopen_and_leave_open(path: &[u8], n: usize) -> Compound {
    let mut c = Builder::new();
    let p = c.path(path);
    let slot = c.fd_slot("fd");
    for _ in 0..n {
        c.push(cosy_model::Op::Sys {
            call: Sys::Openat,
            args: vec![
                Arg::Fd(FdRef::Cwd),
                Arg::Path(p),
                Arg::Value(i64::from(RDONLY.bits()).into()),
                Arg::Value(0.into()),
            ],
            ret: cosy_model::Ret::Fd(slot),
        });
    }
    c.finish()
}

/// Every executor configuration the tests run on, by name: the reference (`direct`), the
/// ring executor as configured by default, with SQPOLL, with io_uring turned off (every call
/// falls back), with a kernel probe lacking some opcodes (per-operation fallback), with its
/// optimisations off and a tiny ring and window, and `auto`.
///
/// Without io_uring the ring executors fall back to plain calls and the comparison still holds,
/// so this does not skip; under `COSY_REQUIRE_URING=1` it fails instead, because then the ring
/// would be compared with nothing but the fallback.
pub fn executors() -> Vec<(&'static str, cosy_exec::RunOptions)> {
    use cosy_exec::{Backend, RingOptions, RunOptions};
    use cosy_uring::io_uring::opcode;
    let probe = cosy_uring::Probe::detect();
    if !probe.available() {
        let why = probe.reason().unwrap_or("no reason given");
        assert!(
            !cosy_uring::uring_required(),
            "io_uring is unavailable ({why}) and COSY_REQUIRE_URING=1 requires it"
        );
        eprintln!("io_uring unavailable ({why}): the ring executors run their fallbacks");
    }
    let ring = |ring: RingOptions| RunOptions {
        backend: Backend::Ring,
        ring,
        ..RunOptions::default()
    };
    let partial = cosy_uring::Probe::kernel()
        .clone()
        .without(opcode::OpenAt::CODE)
        .without(opcode::Statx::CODE)
        .without(opcode::Write::CODE)
        .without(opcode::WriteFixed::CODE);
    vec![
        (
            "direct",
            RunOptions {
                backend: Backend::Direct,
                ..RunOptions::default()
            },
        ),
        // Maps that only read run on two threads, however small.
        (
            "direct-threads",
            RunOptions {
                backend: Backend::Direct,
                parallel: cosy_exec::Parallel::always(2),
                ..RunOptions::default()
            },
        ),
        ("ring", ring(RingOptions::default())),
        (
            "ring-sqpoll",
            ring(RingOptions {
                sqpoll: Some(2),
                ..RingOptions::default()
            }),
        ),
        ("ring-no-uring", ring(RingOptions::without_uring())),
        (
            "ring-partial",
            ring(RingOptions {
                probe: Some(partial),
                ..RingOptions::default()
            }),
        ),
        (
            "ring-plain",
            ring(RingOptions {
                entries: 8,
                window: 3,
                direct_descriptors: false,
                register_buffers: false,
                reuse: false,
                ..RingOptions::default()
            }),
        ),
        (
            "auto",
            RunOptions {
                backend: Backend::Auto,
                ..RunOptions::default()
            },
        ),
    ]
}

/// Runs `f` once per executor of [`executors`] (with `base` options: functions, trace).
pub fn on_every_executor(
    base: &cosy_exec::RunOptions,
    mut f: impl FnMut(&str, cosy_exec::RunOptions),
) {
    for (name, o) in executors() {
        let opts = cosy_exec::RunOptions {
            functions: base.functions.clone(),
            trace: base.trace,
            ..o
        };
        f(name, opts);
    }
}

/// Whether `name` (of [`executors`]) is the direct executor (whose statistics count every
/// call as a system call).
pub fn is_direct(name: &str) -> bool {
    name == "direct"
}

/// The effective user id.
pub fn uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Runs the other tests of this test binary again as `nobody` (`setpriv --reuid=65534
/// --regid=65534 --clear-groups`), where permission bits apply, and checks that all `expected`
/// of them pass. Skips, saying why, when not root (they already ran unprivileged) or without
/// setpriv. Call it from a test named `rerun_unprivileged`.
pub fn rerun_as_nobody(expected: usize) {
    if std::env::var_os("COSY_UNPRIVILEGED").is_some() {
        return;
    }
    if uid() != 0 {
        eprintln!("not root: these tests already run unprivileged");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let run = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args(["--test-threads=2", "--skip", "rerun_unprivileged"])
        .env("COSY_UNPRIVILEGED", "1")
        .env("TMPDIR", "/tmp")
        .current_dir("/")
        .output();
    let out = match run {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipping the unprivileged run: setpriv: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "as nobody:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = format!("test result: ok. {expected} passed");
    assert!(
        stdout.contains(&want),
        "as nobody, expected `{want}`:\n{stdout}"
    );
}

/// The compound of `text` (the text format); a parse error panics with the text.
pub fn parse(text: &str) -> Compound {
    cosy_format::text::parse(text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .compound
}

/// Whether the current executor needs io_uring that the machine lacks (said on stderr).
pub fn skip_ring() -> bool {
    current().starts_with("ring")
        && current() != "ring-no-uring"
        && cosy_uring::skip_without_uring(&format!("the {} executor", current()))
}

/// Serializes the tests of one test binary that count the process's descriptors or set a
/// per-thread schedule shared by the runs they compare.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
