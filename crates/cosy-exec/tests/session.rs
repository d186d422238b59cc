//! Sessions (`cosy_exec::session`): every behaviour on `direct` and on `ring`, with the same
//! results on both, and no descriptor left open.
//!
//! The tests of this binary take one lock: they count the descriptors of the process.

use std::path::Path;
use std::sync::Mutex;

use cosy_exec::session::{Call, CallFailed, Fd, Reason, Session, SessionError};
use cosy_exec::testing::open_fds;
use cosy_exec::{Backend, RunOptions};
use cosy_model::flags::{Access, AtFlags, Mode, OFlags, RenameFlags, Whence, XattrFlags};
use cosy_model::{Builder, FdRef, Policy, Sys};

static LOCK: Mutex<()> = Mutex::new(());

/// The backends to test on: `direct`, and `ring` unless io_uring is missing.
fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Direct];
    if !cosy_uring::skip_without_uring("session tests on the ring") {
        v.push(Backend::Ring);
    }
    v
}

/// Runs `body` on every backend in a fresh directory, checks that it leaves no descriptor
/// open, and that it gives the same result on every backend.
fn each<T: PartialEq + std::fmt::Debug>(name: &str, body: impl Fn(Backend, &Path) -> T) {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut first: Option<(Backend, T)> = None;
    for b in backends() {
        let dir = tempfile::tempdir().unwrap();
        cosy_exec::drop_cached_rings();
        let before = open_fds();
        let out = body(b, dir.path());
        cosy_exec::drop_cached_rings();
        assert_eq!(before, open_fds(), "{name} on {b}: descriptors leaked");
        match &first {
            None => first = Some((b, out)),
            Some((fb, f)) => assert_eq!(f, &out, "{name}: {fb} and {b} differ"),
        }
    }
}

fn trusted(b: Backend) -> Session {
    let s = Session::new(b, &Policy::trusted()).unwrap();
    // Where io_uring is available (the ring tests run), a ring session has its ring.
    assert_eq!(s.on_ring(), b == Backend::Ring);
    s
}

/// Keeps what is the same on every backend: the value, or the failure.
fn kind(r: Result<i64, CallFailed>) -> Result<(), CallFailed> {
    r.map(|_| ())
}

const RD: OFlags = OFlags::RDONLY;
const CREATE: OFlags = OFlags::WRONLY.union(OFlags::CREATE).union(OFlags::TRUNC);

#[test]
fn the_posters_example_access_open_write_close() {
    each("poster", |b, d| {
        let path = d.join("example.dat");
        std::fs::write(&path, b"").unwrap();
        let mut s = trusted(b);
        let data = s.buffer(5).unwrap();
        s.bytes_mut(data).unwrap().copy_from_slice(b"hello");
        let r = s
            .send(Call::faccessat2(
                Fd::Cwd,
                &path,
                Access::WRITE_OK,
                AtFlags::empty(),
            ))
            .unwrap();
        let fd = s
            .send(Call::openat(Fd::Cwd, &path, OFlags::WRONLY, Mode::empty()))
            .unwrap();
        let w = s.send(Call::write(fd, data)).unwrap();
        let c = s.send(Call::close(fd)).unwrap();
        s.barrier();
        let got = (s.get(r), kind(s.get(fd)), s.get(w), s.get(c));
        drop(s);
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        got
    });
}

#[test]
fn an_open_feeds_a_read_without_waiting_in_one_enter() {
    each("open-read", |b, d| {
        let path = d.join("f");
        std::fs::write(&path, b"the contents").unwrap();
        let mut s = trusted(b);
        let buf = s.buffer(64).unwrap();
        let fd = s
            .send(Call::openat(Fd::Cwd, &path, RD, Mode::empty()))
            .unwrap();
        let n = s.send(Call::read(fd, buf)).unwrap();
        let c = s.send(Call::close(fd)).unwrap();
        let enters = s.stats().ring_enters;
        if s.on_ring() {
            assert_eq!(enters, 0, "queued until the get");
        }
        let got = s.get(n);
        if s.on_ring() {
            assert_eq!(
                s.stats().ring_enters,
                1,
                "open, read and close in one enter"
            );
            assert_eq!(s.stats().fallbacks, 0);
        }
        let bytes = s.bytes(buf).unwrap()[..12].to_vec();
        (got, s.get(c), bytes)
    });
}

#[test]
fn a_value_handle_feeds_a_later_call() {
    each("copy", |b, d| {
        let src = d.join("src");
        let dst = d.join("dst");
        std::fs::write(&src, b"copied through a session").unwrap();
        let mut s = trusted(b);
        let buf = s.buffer(4096).unwrap();
        let i = s
            .send(Call::openat(Fd::Cwd, &src, RD, Mode::empty()))
            .unwrap();
        let o = s
            .send(Call::openat(
                Fd::Cwd,
                &dst,
                CREATE,
                Mode::from_raw_mode(0o644),
            ))
            .unwrap();
        let n = s.send(Call::read(i, buf)).unwrap();
        let w = s.send(Call::write(o, buf.prefix(n))).unwrap();
        s.send(Call::close(i)).unwrap();
        s.send(Call::close(o)).unwrap();
        let got = (s.get(n), s.get(w));
        drop(s);
        assert_eq!(std::fs::read(&dst).unwrap(), b"copied through a session");
        got
    });
}

#[test]
fn a_failed_handle_fails_its_dependents_naming_it() {
    each("failed operand", |b, d| {
        let mut s = trusted(b);
        let buf = s.buffer(16).unwrap();
        let fd = s
            .send(Call::openat(Fd::Cwd, d.join("missing"), RD, Mode::empty()))
            .unwrap();
        let n = s.send(Call::read(fd, buf)).unwrap();
        let w = s.send(Call::write(Fd::Std(1), buf.prefix(n))).unwrap();
        let p = s.send(Call::getpid()).unwrap();
        s.barrier();
        let open = s.get(fd).unwrap_err();
        assert_eq!(open.call, Sys::Openat);
        assert_eq!(open.reason, Reason::Errno(libc::ENOENT));
        for (h, call) in [(n, Sys::Read), (w, Sys::Write)] {
            let e = s.get(h).unwrap_err();
            assert_eq!(e.call, call);
            assert_eq!(
                e.reason,
                Reason::Operand {
                    call: Sys::Openat,
                    index: fd.index(),
                    cause: Box::new(Reason::Errno(libc::ENOENT)),
                },
                "{e}"
            );
            assert_eq!(e.errno(), Some(libc::ENOENT));
            assert!(e.to_string().contains("openat"), "{e}");
        }
        // Calls that do not depend on it run.
        assert_eq!(s.get(p), Ok(i64::from(std::process::id())));
        (open, s.get(n), s.get(w))
    });
}

#[test]
fn a_handle_of_another_session_is_refused() {
    each("foreign", |b, d| {
        let path = d.join("f");
        std::fs::write(&path, b"x").unwrap();
        let mut a = trusted(b);
        let mut other = trusted(b);
        let abuf = a.buffer(8).unwrap();
        let obuf = other.buffer(8).unwrap();
        let fd = a
            .send(Call::openat(Fd::Cwd, &path, RD, Mode::empty()))
            .unwrap();
        let n = a.send(Call::read(fd, abuf)).unwrap();
        let refused = (
            other.send(Call::read(fd, obuf)),
            other.send(Call::read(Fd::Std(0), abuf)),
            other.send(Call::pread(Fd::Std(0), obuf, n)),
            other.bytes(abuf).err(),
        );
        assert_eq!(refused.0, Err(SessionError::Foreign("read")));
        assert_eq!(refused.1, Err(SessionError::Foreign("read")));
        assert_eq!(refused.2, Err(SessionError::Foreign("pread")));
        assert_eq!(refused.3, Some(SessionError::Foreign("bytes")));
        let e = other.get(n).unwrap_err();
        assert_eq!(e.reason, Reason::Foreign);
        // The owner is not disturbed.
        assert_eq!(a.get(n), Ok(1));
        (refused, e)
    });
}

#[test]
fn dropping_a_session_closes_what_it_opened() {
    each("drop", |b, d| {
        let mut names = Vec::new();
        for i in 0..10 {
            let p = d.join(format!("f{i}"));
            std::fs::write(&p, b"data").unwrap();
            names.push(p);
        }
        let mut s = trusted(b);
        let buf = s.buffer(16).unwrap();
        let mut fds = Vec::new();
        for p in &names {
            let fd = s.send(Call::openat(Fd::Cwd, p, RD, Mode::empty())).unwrap();
            s.send(Call::read(fd, buf)).unwrap();
            fds.push(fd);
        }
        // Some waited for, the last ones still queued on the ring when it drops.
        let first = s.get(fds[0]).map(|_| ());
        for p in &names[..3] {
            s.send(Call::openat(Fd::Cwd, p, RD, Mode::empty()).plain())
                .unwrap();
        }
        drop(s);
        first
    });
}

#[test]
fn policy_root_calls_and_limits() {
    each("policy", |b, d| {
        std::fs::create_dir(d.join("root")).unwrap();
        std::fs::write(d.join("root/inside"), b"in").unwrap();
        std::fs::write(d.join("outside"), b"out").unwrap();
        let mut p = Policy::untrusted(d.join("root"));
        p.allowed.remove(&Sys::Unlinkat);
        p.open_fds = 2;
        let mut s = Session::new(b, &p).unwrap();
        let buf = s.buffer(8).unwrap();
        let inside = s
            .send(Call::openat(Fd::Cwd, "inside", RD, Mode::empty()))
            .unwrap();
        let n = s.send(Call::read(inside, buf)).unwrap();
        let out = s
            .send(Call::openat(Fd::Cwd, "../outside", RD, Mode::empty()))
            .unwrap();
        let abs = s
            .send(Call::faccessat2(
                Fd::Cwd,
                d.join("outside"),
                Access::EXISTS,
                AtFlags::empty(),
            ))
            .unwrap();
        let third = s.send(Call::openat(Fd::Cwd, "inside", RD, Mode::empty()));
        let refused = s.send(Call::unlinkat(Fd::Cwd, "inside", AtFlags::empty()));
        assert_eq!(refused, Err(SessionError::NotAllowed("unlinkat")));
        assert!(matches!(third, Err(SessionError::Limit(_))), "{third:?}");
        let got = (
            s.get(n),
            s.get(out).unwrap_err().errno(),
            s.get(abs).unwrap_err().errno(),
        );
        assert_eq!(got, (Ok(2), Some(libc::EXDEV), Some(libc::EXDEV)));
        drop(s);
        assert!(d.join("root/inside").exists());
        (got, refused, third.map(|_| ()))
    });
}

#[test]
fn refusals_at_send() {
    each("refusals", |b, d| {
        let path = d.join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let mut s = trusted(b);
        let buf = s.buffer(8).unwrap();
        let fd = s
            .send(Call::openat(Fd::Cwd, &path, RD, Mode::empty()))
            .unwrap();
        let range = s.send(Call::read(fd, buf.range(2, 9)));
        assert!(
            matches!(range, Err(SessionError::Range { .. })),
            "{range:?}"
        );
        // A descriptor that may be direct cannot be lseek's.
        let seek = s.send(Call::lseek(fd, 0, Whence::Set));
        assert!(
            matches!(seek, Err(SessionError::NeedsPlain { .. })),
            "{seek:?}"
        );
        let plain = s
            .send(Call::openat(Fd::Cwd, &path, RD, Mode::empty()).plain())
            .unwrap();
        let at = s.send(Call::lseek(plain, 4, Whence::Set)).unwrap();
        let n = s.send(Call::read(plain, buf)).unwrap();
        let nul = s.send(Call::openat(Fd::Cwd, "a\0b", RD, Mode::empty()));
        assert_eq!(nul, Err(SessionError::Path("openat")));
        let got = (s.get(at), s.get(n), s.bytes(buf).unwrap().to_vec());
        assert_eq!(got, (Ok(4), Ok(6), b"456789\0\0".to_vec()));
        (got, range.map(|_| ()), seek.map(|_| ()))
    });
}

#[test]
fn direct_runs_when_sent_ring_queues_until_a_get() {
    each("timing", |b, d| {
        let path = d.join("made");
        let mut s = trusted(b);
        let fd = s
            .send(Call::openat(
                Fd::Cwd,
                &path,
                CREATE,
                Mode::from_raw_mode(0o600),
            ))
            .unwrap();
        let c = s.send(Call::close(fd)).unwrap();
        let made_at_send = path.exists();
        assert_eq!(made_at_send, !s.on_ring(), "on {b}");
        let got = (kind(s.get(fd)), s.get(c));
        assert!(path.exists());
        got
    });
}

#[test]
fn a_session_runs_whole_compounds() {
    each("run", |b, d| {
        let path = d.join("f");
        std::fs::write(&path, b"one\ntwo\n").unwrap();
        let mut c = Builder::new();
        let name = c.input_path("file", path.as_os_str().as_encoded_bytes());
        let buf = c.buffer("buf", 64);
        let fd = c.openat(FdRef::Cwd, name, RD, Mode::empty());
        let n = c.read(fd, buf);
        c.close(fd);
        c.output("n", n);
        let v = cosy_verify::verify(c.finish(), &Policy::trusted()).unwrap();
        let mut s = trusted(b);
        let p = s.send(Call::getpid()).unwrap();
        let out = s.run(&v);
        assert!(out.is_ok(), "{out}");
        (out.output("n"), s.get(p).map(|_| ()))
    });
}

#[test]
fn replaying_a_compound_through_a_session_matches_run() {
    each("replay", |b, d| {
        let src = d.join("src");
        std::fs::write(&src, "0123456789".repeat(20)).unwrap();
        // open; read; pread; close, straight-line: the same calls one by one.
        let mut c = Builder::new();
        let name = c.path(src.as_os_str().as_encoded_bytes());
        let buf = c.buffer("buf", 100);
        let fd = c.openat(FdRef::Cwd, name, RD, Mode::empty());
        let n = c.read(fd, buf);
        let m = c.pread(fd, buf, 50);
        let k = c.close(fd);
        let g = c.getpid();
        for (o, r) in [("n", n), ("m", m), ("k", k), ("g", g)] {
            c.output(o, r);
        }
        let v = cosy_verify::verify(c.finish(), &Policy::trusted()).unwrap();
        let want = cosy_exec::run(
            &v,
            &RunOptions {
                backend: Backend::Direct,
                ..RunOptions::default()
            },
        );
        let rec = cosy_exec::session::record(&v).unwrap();
        assert_eq!(rec.outcome().outputs, want.outputs);
        // Every call gives through the session what it gave directly (or replay fails).
        assert_eq!(rec.replay(b, v.policy()).unwrap(), 5, "replay on {b}");
        want.outputs
    });
}

#[test]
fn many_calls_in_one_session() {
    each("many", |b, d| {
        for i in 0..40 {
            std::fs::write(d.join(format!("f{i}")), vec![b'x'; i]).unwrap();
        }
        let mut s = trusted(b);
        let buf = s.buffer(64).unwrap();
        let mut reads = Vec::new();
        // More calls than the ring's submission queue holds, without a barrier.
        for round in 0..10 {
            for i in 0..40 {
                let fd = s
                    .send(Call::openat(
                        Fd::Cwd,
                        d.join(format!("f{i}")),
                        RD,
                        Mode::empty(),
                    ))
                    .unwrap();
                reads.push(s.send(Call::pread(fd, buf, round)).unwrap());
                s.send(Call::close(fd)).unwrap();
            }
        }
        let got: Vec<_> = reads.iter().map(|&h| s.get(h)).collect();
        let total: i64 = got.iter().map(|r| r.clone().unwrap()).sum();
        assert_eq!(
            total,
            (0..10).map(|r| (0..40 - r).sum::<i64>()).sum::<i64>()
        );
        got
    });
}

#[test]
fn the_policy_fuel_bounds_the_calls_of_a_session() {
    each("fuel", |b, _| {
        let mut p = Policy::trusted();
        p.fuel = 3;
        let mut s = Session::new(b, &p).unwrap();
        let hs: Vec<_> = (0..5).map(|_| s.send(Call::nop()).unwrap()).collect();
        let got: Vec<_> = hs.iter().map(|&h| s.get(h)).collect();
        assert_eq!(got[..3], [Ok(0), Ok(0), Ok(0)]);
        for r in &got[3..] {
            let e = r.clone().unwrap_err();
            assert!(
                matches!(&e.reason, Reason::Stopped(m) if m.contains("fuel")),
                "{e}"
            );
        }
        got
    });
}

#[test]
fn sessions_refuse_auto_and_report_a_missing_root() {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(
        Session::new(Backend::Auto, &Policy::trusted()).err(),
        Some(SessionError::Backend(Backend::Auto))
    );
    let p = Policy::untrusted("/nonexistent/cosy/root");
    for b in backends() {
        assert!(matches!(
            Session::new(b, &p).err(),
            Some(SessionError::Setup(_))
        ));
    }
}

/// A straight-line compound with failures: missing files, a read of a failed open, a write
/// to a descriptor open for reading, a close twice.
fn failing_compound(d: &Path, mode: cosy_model::ErrorMode) -> cosy_verify::Verified {
    let present = d.join("present");
    std::fs::write(&present, "present contents").unwrap();
    let mut c = Builder::new();
    c.mode(mode);
    let missing = c.path(d.join("missing").as_os_str().as_encoded_bytes());
    let here = c.path(present.as_os_str().as_encoded_bytes());
    let buf = c.buffer("buf", 32);
    let f = c.openat(FdRef::Cwd, here, RD, Mode::empty());
    let n = c.read(f, buf);
    let w = c.write(f, buf.prefix(n));
    let g = c.openat(FdRef::Cwd, missing, RD, Mode::empty());
    let m = c.read(g, buf);
    let k1 = c.close(f);
    let k2 = c.close(f);
    let p = c.pread(f, buf, 0);
    for (o, r) in [
        ("n", n),
        ("w", w),
        ("m", m),
        ("k1", k1),
        ("k2", k2),
        ("p", p),
    ] {
        c.output(o, r);
    }
    cosy_verify::verify(c.finish(), &Policy::trusted()).unwrap()
}

#[test]
fn replaying_failing_compounds_matches_run_in_both_modes() {
    for mode in [cosy_model::ErrorMode::Continue, cosy_model::ErrorMode::Stop] {
        each("replay failures", |b, d| {
            let v = failing_compound(d, mode);
            let want = cosy_exec::run(
                &v,
                &RunOptions {
                    backend: Backend::Direct,
                    ..RunOptions::default()
                },
            );
            let rec = cosy_exec::session::record(&v).unwrap();
            assert_eq!(rec.outcome().outputs, want.outputs);
            let n = rec.replay(b, v.policy()).unwrap();
            assert_eq!(n, rec.calls(), "replay on {b} in {mode:?} mode");
            // In stop mode the calls after the failing write were not made: the open, the
            // read, the write, and the close of the descriptor left open.
            let made = if mode == cosy_model::ErrorMode::Stop {
                4
            } else {
                8
            };
            assert_eq!(n, made, "{mode:?}");
            want.outputs
        });
    }
}

#[test]
fn a_directory_handle_is_the_directory_of_later_calls() {
    each("directory", |b, d| {
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/a"), b"in a").unwrap();
        let mut s = trusted(b);
        let buf = s.buffer(4096).unwrap();
        let st = s.buffer(256).unwrap();
        let dir = s
            .send(Call::openat(
                Fd::Cwd,
                d.join("sub"),
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
            ))
            .unwrap();
        let f = s.send(Call::openat(dir, "a", RD, Mode::empty())).unwrap();
        let n = s.send(Call::read(f, buf)).unwrap();
        let stat = s.send(Call::fstat(dir, st)).unwrap();
        let ents = s
            .send(Call::getdents64(dir, buf.range(1024, 4096)))
            .unwrap();
        let ren = s
            .send(Call::renameat2(dir, "a", dir, "b", RenameFlags::empty()))
            .unwrap();
        let got = (
            s.get(n),
            s.get(stat),
            s.get(ren),
            s.get(ents).map(|e| e > 0),
        );
        let len = s.get(ents).unwrap() as usize;
        let names: Vec<String> = cosy_exec::parse_dirents(&s.bytes(buf).unwrap()[1024..1024 + len])
            .unwrap()
            .into_iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect();
        assert_eq!(names, ["a"]);
        drop(s);
        assert!(d.join("sub/b").exists());
        (got, names)
    });
}

#[test]
fn long_sessions_outgrow_the_limits_of_one_compound() {
    each("long", |b, d| {
        let src = d.join("src");
        let dst = d.join("dst");
        std::fs::write(&src, b"early result, late use").unwrap();
        let mut s = trusted(b);
        let buf = s.buffer(64).unwrap();
        let i = s
            .send(Call::openat(Fd::Cwd, &src, RD, Mode::empty()))
            .unwrap();
        let n = s.send(Call::read(i, buf)).unwrap();
        let bad = s.send(Call::read(Fd::Std(9), buf));
        assert!(matches!(bad, Err(SessionError::StdStream { .. })));
        let missing = s
            .send(Call::openat(Fd::Cwd, d.join("missing"), RD, Mode::empty()))
            .unwrap();
        let m = s.send(Call::read(missing, buf)).unwrap();
        // More results and paths than one compound holds, without a barrier.
        let mut last = None;
        for k in 0..70_000 {
            last = Some(if k % 2 == 0 {
                s.send(Call::nop()).unwrap()
            } else {
                s.send(Call::faccessat2(
                    Fd::Cwd,
                    &src,
                    Access::EXISTS,
                    AtFlags::empty(),
                ))
                .unwrap()
            });
        }
        // Handles of long ago are operands still; their failures are still named.
        let o = s
            .send(Call::openat(
                Fd::Cwd,
                &dst,
                CREATE,
                Mode::from_raw_mode(0o644),
            ))
            .unwrap();
        let w = s.send(Call::write(o, buf.prefix(n))).unwrap();
        let late = s.send(Call::write(o, buf.prefix(m))).unwrap();
        s.send(Call::close(o)).unwrap();
        s.send(Call::close(i)).unwrap();
        let e = s.get(late).unwrap_err();
        assert!(
            matches!(
                &e.reason,
                Reason::Operand {
                    call: Sys::Openat,
                    ..
                }
            ),
            "{e}"
        );
        let got = (s.get(last.unwrap()), s.get(w), e);
        drop(s);
        assert_eq!(std::fs::read(&dst).unwrap(), b"early result, late use");
        got
    });
}

#[test]
fn more_descriptors_open_than_the_rings_file_table() {
    each("files", |b, d| {
        let path = d.join("f");
        std::fs::write(&path, b"12345").unwrap();
        let opts = cosy_exec::session::SessionOptions {
            files: 8,
            ..Default::default()
        };
        let mut s = Session::with_options(b, &Policy::trusted(), opts).unwrap();
        let buf = s.buffer(8).unwrap();
        let fds: Vec<_> = (0..20)
            .map(|_| {
                s.send(Call::openat(Fd::Cwd, &path, RD, Mode::empty()))
                    .unwrap()
            })
            .collect();
        let reads: Vec<_> = fds
            .iter()
            .map(|&f| s.send(Call::read(f, buf)).unwrap())
            .collect();
        let closes: Vec<_> = fds[..10]
            .iter()
            .map(|&f| s.send(Call::close(f)).unwrap())
            .collect();
        let got: Vec<_> = reads.iter().chain(&closes).map(|&h| s.get(h)).collect();
        assert!(got.iter().all(Result::is_ok), "{got:?}");
        got
    });
}

/// The file-tool calls through a session: a link made and read back, a hard link, a mode, the
/// times, extended attributes where the file system has them, and a copy.
#[test]
fn the_file_tool_calls_do_what_their_man_pages_say() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    each("file tools", |b, d| {
        std::fs::write(d.join("a"), b"contents").unwrap();
        let mut s = trusted(b);
        let buf = s.buffer(4096).unwrap();
        let times = s.buffer(32).unwrap();
        let mut t = Vec::new();
        for (sec, nsec) in [(1_000_000_000i64, 5i64), (1_500_000_000, 123_456_789)] {
            t.extend_from_slice(&sec.to_ne_bytes());
            t.extend_from_slice(&nsec.to_ne_bytes());
        }
        s.bytes_mut(times).unwrap().copy_from_slice(&t);
        let sym = s.send(Call::symlinkat("a", Fd::Cwd, d.join("l"))).unwrap();
        let n = s.send(Call::readlinkat(Fd::Cwd, d.join("l"), buf)).unwrap();
        let hard = s
            .send(Call::linkat(
                Fd::Cwd,
                d.join("a"),
                Fd::Cwd,
                d.join("h"),
                AtFlags::empty(),
            ))
            .unwrap();
        let m = s
            .send(Call::fchmodat(
                Fd::Cwd,
                d.join("a"),
                Mode::from_raw_mode(0o640),
                AtFlags::empty(),
            ))
            .unwrap();
        let u = s
            .send(Call::utimensat(
                Fd::Cwd,
                d.join("a"),
                times,
                AtFlags::empty(),
            ))
            .unwrap();
        // copy_file_range is a plain call: its descriptors are the process's.
        let src = s
            .send(Call::openat(Fd::Cwd, d.join("a"), RD, Mode::empty()).plain())
            .unwrap();
        let dst = s
            .send(Call::openat(Fd::Cwd, d.join("copy"), CREATE, Mode::from_raw_mode(0o600)).plain())
            .unwrap();
        let copied = s
            .send(Call::copy_file_range(src, -1, dst, -1, 1 << 20))
            .unwrap();
        s.send(Call::close(src)).unwrap();
        s.send(Call::close(dst)).unwrap();
        for h in [sym, hard, m, u] {
            assert_eq!(s.get(h), Ok(0), "on {b}");
        }
        assert_eq!(s.get(n), Ok(1));
        assert_eq!(&s.bytes(buf).unwrap()[..1], b"a");
        assert_eq!(s.get(copied), Ok(8));
        let meta = std::fs::metadata(d.join("a")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(
            (meta.mtime(), meta.mtime_nsec()),
            (1_500_000_000, 123_456_789)
        );
        assert_eq!(meta.nlink(), 2);
        assert_eq!(std::fs::read(d.join("copy")).unwrap(), b"contents");
        // Extended attributes, on a plain descriptor.
        let f = s
            .send(Call::openat(Fd::Cwd, d.join("a"), RD, Mode::empty()).plain())
            .unwrap();
        let val = s.buffer(16).unwrap();
        s.bytes_mut(val).unwrap()[..5].copy_from_slice(b"value");
        let set = s
            .send(Call::fsetxattr(
                f,
                "user.cosy",
                val.prefix(5),
                XattrFlags::empty(),
            ))
            .unwrap();
        let xattrs = match s.get(set) {
            Ok(_) => true,
            Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => false,
            Err(e) => panic!("fsetxattr on {b}: {e}"),
        };
        if xattrs {
            let got = s.send(Call::fgetxattr(f, "user.cosy", buf)).unwrap();
            assert_eq!(s.get(got), Ok(5));
            assert_eq!(&s.bytes(buf).unwrap()[..5], b"value");
            let list = s.send(Call::flistxattr(f, buf)).unwrap();
            assert!(s.get(list).unwrap() >= 10);
        }
        s.send(Call::close(f)).unwrap();
        s.barrier();
        xattrs
    });
}
