//! Faults, injected ([`cosy_exec::faults`]: errnos and short counts on a schedule) or real (a
//! full file system, too few descriptors, files removed under a map, tiny rings, io_uring
//! refused), on every executor. For each: the outcome is the direct executor's under the same
//! fault, or a precise error; files are whole or an error says why; no descriptor is left open;
//! no panic; no hang (each run is bounded by its policy's time).
//!
//! The tests of this binary hold one lock: they count the process's descriptors, and one
//! replaces standard error.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use cosy_exec::faults::{Fault, Schedule, When, inject};
use cosy_exec::testing::open_fds;
use cosy_exec::{Error, Functions, Outcome, RingOptions, RunOptions};
use cosy_model::{Compound, Policy, Sys};

/// A policy rooted at `d` whose runs end within five seconds.
fn bounded(d: &Path) -> Policy {
    let mut p = Policy::untrusted(d);
    p.time = Duration::from_secs(5);
    p
}

/// Runs `c` under `p` on the current executor with `schedule` injected; no descriptor may
/// outlive it.
fn faulted(c: &Compound, p: &Policy, schedule: Schedule, opts: RunOptions) -> Outcome {
    cosy_exec::drop_cached_rings();
    let before = open_fds();
    let out = {
        let _f = inject(schedule);
        run_with(c.clone(), p, opts)
    };
    cosy_exec::drop_cached_rings();
    assert_eq!(
        before,
        open_fds(),
        "{}: descriptors left open\n{}",
        current(),
        show(&out)
    );
    out
}

/// The direct executor's outcome under `schedule`.
fn reference(c: &Compound, p: &Policy, schedule: Schedule, opts: RunOptions) -> Outcome {
    let v = cosy_verify::verify(c.clone(), p).expect("verifies");
    let _f = inject(schedule);
    cosy_exec::run(
        &v,
        &RunOptions {
            backend: cosy_exec::Backend::Direct,
            ..opts
        },
    )
}

/// A copy that writes again what a short write left (the `copy` example's loop).
const COPY: &str = "buffer buf 4096\n\
    from = openat cwd \"src\" O_RDONLY 0o0\n\
    to = openat cwd \"dst\" O_WRONLY|O_CREAT|O_TRUNC 0o644\n\
    copied = 0\n\
    again:\n\
    n = read from buf\n\
    if n == 0 goto done\n\
    off = 0\n\
    rest:\n\
    w = write to buf[off..n]\n\
    off = off + w\n\
    if off < n goto rest bound 10000000\n\
    copied = copied + n\n\
    goto again bound 10000000\n\
    done:\n\
    rc = close from\n\
    rc2 = close to\n\
    output copied\n";

fn setup_src(d: &Path, len: usize) -> Vec<u8> {
    let data = text(len, 11);
    std::fs::write(d.join("src"), &data).unwrap();
    data
}

#[test]
fn injected_eintr_is_retried_like_an_interrupted_call() {
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    let data = setup_src(d.path(), 50_000);
    let c = parse(COPY);
    let p = bounded(d.path());
    let schedule = || {
        Schedule::new()
            .with(When::FirstOf(Sys::Read, 3), Fault::Errno(libc::EINTR))
            .with(When::FirstOf(Sys::Write, 2), Fault::Errno(libc::EINTR))
    };
    each_executor(|| {
        if skip_ring() {
            return;
        }
        let out = faulted(&c, &p, schedule(), RunOptions::default());
        assert!(out.is_ok(), "{}: {}", current(), show(&out));
        assert_eq!(out.output("copied"), Some(data.len() as i64));
        assert_eq!(std::fs::read(d.path().join("dst")).unwrap(), data);
        // The interrupted calls are in the trace, made again.
        let eintr = out
            .trace
            .iter()
            .filter(|e| e.result == -i64::from(libc::EINTR))
            .count();
        assert_eq!(eintr, 5, "{}: {}", current(), show(&out));
    });
}

#[test]
fn injected_eagain_stops_with_a_precise_error() {
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    setup_src(d.path(), 50_000);
    let c = parse(COPY);
    let p = bounded(d.path());
    let schedule = || Schedule::new().with(When::NthOf(Sys::Read, 3), Fault::Errno(libc::EAGAIN));
    let want = reference(&c, &p, schedule(), RunOptions::default());
    assert_eq!(
        want.error,
        Some(Error::Call {
            op: 3,
            call: Sys::Read,
            errno: libc::EAGAIN
        })
    );
    let want_len = std::fs::metadata(d.path().join("dst")).unwrap().len();
    assert_eq!(want_len, 8192);
    each_executor(|| {
        if skip_ring() {
            return;
        }
        let out = faulted(&c, &p, schedule(), RunOptions::default());
        assert_eq!(out.error, want.error, "{}: {}", current(), show(&out));
        assert_eq!(out.outputs, want.outputs, "{}", current());
        assert_eq!(
            std::fs::metadata(d.path().join("dst")).unwrap().len(),
            want_len
        );
    });
}

#[test]
fn short_reads_are_seen_as_direct_sees_them() {
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    let data = setup_src(d.path(), 30_000);
    let c = parse(COPY);
    let p = bounded(d.path());
    let schedule = || Schedule::new().with(When::Every(Sys::Read), Fault::Short(1000));
    let want = reference(&c, &p, schedule(), RunOptions::default());
    assert!(want.is_ok(), "{}", show(&want));
    each_executor(|| {
        if skip_ring() {
            return;
        }
        let out = faulted(&c, &p, schedule(), RunOptions::default());
        assert!(out.is_ok(), "{}: {}", current(), show(&out));
        assert_eq!(out.outputs, want.outputs, "{}", current());
        assert_eq!(std::fs::read(d.path().join("dst")).unwrap(), data);
        // Every read returned at most the clamped length: 30 of 1000 bytes, and the last 0.
        let reads: Vec<i64> = out
            .trace
            .iter()
            .filter(|e| e.call == Sys::Read)
            .map(|e| e.result)
            .collect();
        assert_eq!(reads.len(), 31, "{}: {reads:?}", current());
        assert!(reads.iter().all(|&r| r <= 1000), "{}: {reads:?}", current());
    });
}

#[test]
fn short_writes_are_completed_by_the_write_loops() {
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    let data = setup_src(d.path(), 30_000);
    let p = bounded(d.path());
    let s = bytes(&d.path().join("src"));
    let dst = bytes(&d.path().join("dst"));
    let copies = [
        ("the copy loop", parse(COPY), Sys::Write),
        ("copy_file_range", copy_cfr(&s, &dst), Sys::CopyFileRange),
        ("sendfile", copy_sendfile(&s, &dst), Sys::Sendfile),
        ("splice", copy_splice(&s, &dst), Sys::Splice),
    ];
    each_executor(|| {
        if skip_ring() {
            return;
        }
        for (name, c, call) in &copies {
            let schedule = Schedule::new().with(When::Every(*call), Fault::Short(777));
            let out = faulted(c, &p, schedule, RunOptions::default());
            assert!(out.is_ok(), "{name} on {}: {}", current(), show(&out));
            assert_eq!(
                out.output("copied"),
                Some(data.len() as i64),
                "{name} on {}",
                current()
            );
            assert_eq!(
                std::fs::read(d.path().join("dst")).unwrap(),
                data,
                "{name} on {}",
                current()
            );
            std::fs::remove_file(d.path().join("dst")).unwrap();
        }
        // A loop that writes each buffer once loses what a short write left, but its output
        // (the sum of what the writes returned) says how much the file holds.
        let once = copy_rw(&s, &dst, 4096);
        let schedule = Schedule::new().with(When::Every(Sys::Write), Fault::Short(777));
        let out = faulted(&once, &p, schedule, RunOptions::default());
        assert!(out.is_ok(), "{}: {}", current(), show(&out));
        let len = std::fs::metadata(d.path().join("dst")).unwrap().len();
        assert_eq!(out.output("copied"), Some(len as i64), "{}", current());
        assert!(len < data.len() as u64);
    });
}

/// A tmpfs of 256 KiB mounted at `dir` while it lives (unmounted lazily when dropped).
struct Tmpfs(std::ffi::CString);

impl Tmpfs {
    fn mount(dir: &Path) -> Result<Tmpfs, std::io::Error> {
        let at = std::ffi::CString::new(bytes(dir)).unwrap();
        // SAFETY: every pointer is a NUL-terminated string that outlives the call.
        let r = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                at.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"size=256k".as_ptr().cast(),
            )
        };
        if r == 0 {
            Ok(Tmpfs(at))
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // SAFETY: a NUL-terminated path.
        unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn a_full_file_system_stops_the_copy_with_enospc() {
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    setup_src(d.path(), 1 << 20);
    let small = d.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let _mounted = match Tmpfs::mount(&small) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipping the full file system: cannot mount a tmpfs ({e})");
            return;
        }
    };
    let copy = parse(&COPY.replace("\"dst\"", "\"small/dst\""));
    let s = bytes(&d.path().join("src"));
    let dst = d.path().join("small/dst");
    let cfr = copy_cfr(&s, &bytes(&dst));
    let p = bounded(d.path());
    each_executor(|| {
        if skip_ring() {
            return;
        }
        for (name, c, call, op) in [
            ("the copy loop", &copy, Sys::Write, 6),
            ("copy_file_range", &cfr, Sys::CopyFileRange, 3),
        ] {
            let out = faulted(c, &p, Schedule::new(), RunOptions::default());
            assert_eq!(
                out.error,
                Some(Error::Call {
                    op,
                    call,
                    errno: libc::ENOSPC
                }),
                "{name} on {}: {}",
                current(),
                show(&out)
            );
            // What the file holds is what the calls said they wrote.
            let len = std::fs::metadata(&dst).unwrap().len();
            assert!(len <= 256 << 10, "{name}: {len}");
            if name == "copy_file_range" {
                assert_eq!(out.output("copied"), Some(len as i64), "{name}");
            }
            std::fs::remove_file(&dst).unwrap();
        }
    });
}

/// Runs the test `name` of this binary again in a child process (with `COSY_FAULTS_CHILD` set
/// to `name`, which that test checks); fails with its output if it fails.
fn in_child(name: &str, env: &[(&str, &str)]) {
    // The pipes to the child are descriptors the other tests would count.
    let _g = serial();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("COSY_FAULTS_CHILD", name)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the child {name} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the child {name} did not run:\n{text}"
    );
    eprint!("{text}");
}

/// Whether this process is the child that runs `name`.
fn is_child(name: &str) -> bool {
    std::env::var("COSY_FAULTS_CHILD").as_deref() == Ok(name)
}

/// Eight files open at once, each read.
fn eight_open(d: &Path) -> Compound {
    std::fs::write(d.join("x"), b"0123456789").unwrap();
    let mut t = String::from("buffer b 8\ntotal = 0\n");
    for i in 0..8 {
        t.push_str(&format!("s{i} = openat cwd \"x\" O_RDONLY 0o0\n"));
    }
    for i in 0..8 {
        t.push_str(&format!("r{i} = pread s{i} b 0\ntotal = total + r{i}\n"));
    }
    t.push_str("output total\n");
    parse(&t)
}

#[test]
fn too_few_descriptors_give_emfile_or_the_same_result() {
    in_child("child_with_few_descriptors", &[]);
}

#[test]
fn child_with_few_descriptors() {
    if !is_child("child_with_few_descriptors") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let c = eight_open(d.path());
    let p = bounded(d.path());
    // Warm what a run sets up once per process (the probe, the calibration) first.
    let _ = executors();
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(2);
    let lim = libc::rlimit {
        rlim_cur: highest + 1 + 5,
        rlim_max: highest + 1 + 5,
    };
    // SAFETY: a plain call with a valid structure.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    // Every free number taken but the last five: room for the root and four of the eight.
    let mut filler = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        filler.push(f);
    }
    filler.truncate(filler.len().saturating_sub(5));
    let want = reference(&c, &p, Schedule::new(), RunOptions::default());
    // The fifth descriptor or so (the policy root holds one, its helper calls another).
    assert!(
        matches!(
            want.error,
            Some(Error::Call {
                op: 2..=6,
                call: Sys::Openat,
                errno: libc::EMFILE
            })
        ),
        "{}",
        show(&want)
    );
    each_executor(|| {
        let out = faulted(&c, &p, Schedule::new(), RunOptions::default());
        // Direct descriptors of a ring do not count against the limit: the run may succeed.
        match &out.error {
            None => assert_eq!(out.output("total"), Some(64), "{}", current()),
            Some(Error::Call {
                call: Sys::Openat | Sys::Openat2,
                errno: libc::EMFILE,
                ..
            }) => {}
            Some(e) => panic!("{}: {e}\n{}", current(), show(&out)),
        }
        eprintln!("{}: {:?}", current(), out.error);
    });
}

#[test]
fn files_removed_or_replaced_during_a_map() {
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..9).map(|i| format!("\"f{i}\"")).collect();
    let c = parse(&format!(
        "mode continue\n\
         buffer b 64 local\n\
         total = 0\n\
         map p in paths({}) {{\n\
             x = call disturb\n\
             f = openat cwd p O_RDONLY 0o0\n\
             r = pread f b 0\n\
             total = total + r\n\
             rc = close f\n\
         }}\n\
         output total\n",
        names.join(", ")
    ));
    let dir = d.path().to_path_buf();
    let fresh = || {
        for i in 0..9 {
            std::fs::write(dir.join(format!("f{i}")), vec![b'a'; 10 + i]).unwrap();
            std::fs::write(dir.join(format!("new{i}")), vec![b'b'; 40 + i]).unwrap();
        }
    };
    // Before item k: item k+1's file is removed (k = 0, 3, 6) or replaced by a longer one
    // (k = 1, 4, 7).
    let opts = || {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let dir = dir.clone();
        let mut functions = Functions::new();
        functions.register("disturb", move |_| {
            let k = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let next = dir.join(format!("f{}", k + 1));
            let r = match k % 3 {
                0 => std::fs::remove_file(&next),
                1 => std::fs::rename(dir.join(format!("new{k}")), &next),
                _ => Ok(()),
            };
            r.map(|()| 0).map_err(|e| e.to_string())
        });
        RunOptions {
            functions,
            ..RunOptions::default()
        }
    };
    let mut p = bounded(d.path());
    p.functions.insert("disturb".into());
    fresh();
    let want = reference(&c, &p, Schedule::new(), opts());
    assert!(want.error.is_none(), "{}", show(&want));
    assert_eq!(want.errors.len(), 9, "{}", show(&want));
    assert!(want.errors.iter().any(|e| e.errno == libc::ENOENT));
    each_executor(|| {
        if skip_ring() {
            return;
        }
        fresh();
        let out = faulted(&c, &p, Schedule::new(), opts());
        assert_eq!(out.error, want.error, "{}: {}", current(), show(&out));
        assert_eq!(out.errors, want.errors, "{}", current());
        assert_eq!(out.outputs, want.outputs, "{}", current());
    });
}

/// A map over 40 files whose iterations run at once.
fn map_of_files(d: &Path) -> Compound {
    let mut names = Vec::new();
    for i in 0..40 {
        std::fs::write(d.join(format!("m{i}")), text(500 + i * 7, i as u64)).unwrap();
        names.push(format!("\"m{i}\""));
    }
    parse(&format!(
        "buffer b 4096 local\n\
         total = 0\n\
         map p in paths({}) {{\n\
             f = openat cwd p O_RDONLY 0o0\n\
             r = read f b\n\
             total = total + r\n\
             rc = close f\n\
         }}\n\
         output total\n",
        names.join(", ")
    ))
}

#[test]
fn tiny_rings_give_the_direct_executors_result() {
    let _g = serial();
    if cosy_uring::skip_without_uring("tiny rings") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let data = setup_src(d.path(), 40_000);
    let map = map_of_files(d.path());
    let copy = parse(COPY);
    let p = bounded(d.path());
    let want = reference(&map, &p, Schedule::new(), RunOptions::default());
    assert!(want.is_ok(), "{}", show(&want));
    for (entries, window, sqpoll) in [
        (2, 64, None),
        (2, 1, None),
        (4, 40, Some(2)),
        (8, 200, None),
    ] {
        let opts = RunOptions {
            backend: cosy_exec::Backend::Ring,
            ring: RingOptions {
                entries,
                window,
                sqpoll,
                reuse: false,
                ..RingOptions::default()
            },
            ..RunOptions::default()
        };
        let what = format!("{entries} entries, a window of {window}");
        for (c, name) in [(&map, "map"), (&copy, "copy")] {
            let v = cosy_verify::verify(c.clone(), &p).expect("verifies");
            let before = open_fds();
            let out = cosy_exec::run(&v, &opts);
            assert_eq!(before, open_fds(), "{name}, {what}: descriptors left open");
            assert!(out.is_ok(), "{name}, {what}: {}", show(&out));
            assert!(
                out.stats.ring_ops > 0,
                "{name}, {what}: the ring was not used"
            );
            if name == "map" {
                assert_eq!(out.outputs, want.outputs, "{name}, {what}");
            } else {
                assert_eq!(std::fs::read(d.path().join("dst")).unwrap(), data);
            }
        }
    }
}

/// Installs a seccomp filter on this thread that fails io_uring_setup(2) with `errno`.
fn refuse_io_uring(errno: u32) {
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let filter = [
        // The call's number (`seccomp_data.nr`, offset 0).
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | (errno & libc::SECCOMP_RET_DATA),
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: plain prctl calls; `prog` points to `filter`, both alive during the call (the
    // kernel copies the program).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog
            ),
            0
        );
    }
}

#[test]
fn io_uring_refused_at_setup_falls_back_to_plain_calls() {
    for errno in ["ENOSYS", "EPERM"] {
        in_child("child_without_io_uring", &[("COSY_REFUSE", errno)]);
    }
}

#[test]
fn child_without_io_uring() {
    if !is_child("child_without_io_uring") {
        return;
    }
    let errno = match std::env::var("COSY_REFUSE").as_deref() {
        Ok("EPERM") => libc::EPERM,
        _ => libc::ENOSYS,
    };
    refuse_io_uring(errno as u32);
    // SAFETY: a plain call with null pointers, refused by the filter before it looks at them.
    let r = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, std::ptr::null_mut::<u8>()) };
    assert_eq!(r, -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(errno));
    let d = tempfile::tempdir().unwrap();
    let data = setup_src(d.path(), 40_000);
    let map = map_of_files(d.path());
    let copy = parse(COPY);
    let p = bounded(d.path());
    let want = reference(&map, &p, Schedule::new(), RunOptions::default());
    assert!(want.is_ok(), "{}", show(&want));
    for backend in [cosy_exec::Backend::Ring, cosy_exec::Backend::Auto] {
        let opts = RunOptions {
            backend,
            ..RunOptions::default()
        };
        for (c, name) in [(&map, "map"), (&copy, "copy")] {
            let v = cosy_verify::verify(c.clone(), &p).expect("verifies");
            let before = open_fds();
            let out = cosy_exec::run(&v, &opts);
            assert_eq!(
                before,
                open_fds(),
                "{name} on {backend}: descriptors left open"
            );
            assert!(out.is_ok(), "{name} on {backend}: {}", show(&out));
            assert_eq!(out.stats.ring_ops, 0, "{name} on {backend}");
            if name == "map" {
                assert_eq!(out.outputs, want.outputs, "{name} on {backend}");
            } else {
                assert_eq!(std::fs::read(d.path().join("dst")).unwrap(), data);
            }
        }
    }
}

#[test]
fn short_writes_count_what_they_wrote_against_the_limit() {
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    setup_src(d.path(), 30_000);
    let c = parse(COPY);
    let mut p = bounded(d.path());
    p.written_bytes = 10_500;
    let schedule = || Schedule::new().with(When::Every(Sys::Write), Fault::Short(1000));
    let want = reference(&c, &p, schedule(), RunOptions::default());
    // Charged what each write asks (the rest of the buffer), reconciled to the 1000 bytes it
    // wrote: two buffers (8192 bytes) go in 1000-byte writes, the first write of the third asks
    // 4096 more than the 2308 left.
    assert!(
        matches!(
            want.error,
            Some(Error::Limit {
                op: 6,
                used: 8192,
                asked: 4096,
                ..
            })
        ),
        "{}",
        show(&want)
    );
    let len = std::fs::metadata(d.path().join("dst")).unwrap().len();
    assert_eq!(len, 8192);
    each_executor(|| {
        if skip_ring() {
            return;
        }
        let out = faulted(&c, &p, schedule(), RunOptions::default());
        assert_eq!(out.error, want.error, "{}: {}", current(), show(&out));
        assert_eq!(out.outputs, want.outputs, "{}", current());
        assert_eq!(std::fs::metadata(d.path().join("dst")).unwrap().len(), len);
    });
}
