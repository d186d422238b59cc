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
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use cosy_exec::faults::{Fault, Schedule, When, inject};
use cosy_exec::testing::open_fds;
use cosy_exec::{Error, Functions, Outcome, RingOptions, RunOptions};
use cosy_model::{Compound, Policy, Sys};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn parse(text: &str) -> Compound {
    cosy_format::text::parse(text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .compound
}

/// Whether the current executor needs io_uring that the machine lacks (said on stderr).
fn skip_ring() -> bool {
    current().starts_with("ring")
        && current() != "ring-no-uring"
        && cosy_uring::skip_without_uring(&format!("the {} executor", current()))
}

/// A policy rooted at `d` whose runs end within five seconds.
fn bounded(d: &Path) -> Policy {
    let mut p = Policy::untrusted(d);
    p.time = Duration::from_secs(5);
    p
}

/// Runs `c` under `p` on the current executor with `schedule` injected; no descriptor may
/// outlive it.
fn faulted(c: &Compound, p: &Policy, schedule: Schedule, opts: RunOptions) -> Outcome {
    cosy_exec::ring::drop_cached_rings();
    let before = open_fds();
    let out = {
        let _f = inject(schedule);
        run_with(c.clone(), p, opts)
    };
    cosy_exec::ring::drop_cached_rings();
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
    let example = parse(include_str!("../../../examples/copy.cosy"));
    let s = bytes(&d.path().join("src"));
    let dst = bytes(&d.path().join("dst"));
    let mut example = example;
    example.set_input("src", "src").unwrap();
    example.set_input("dst", "dst").unwrap();
    let copies = [
        ("the copy loop", parse(COPY), Sys::Write),
        ("the copy example", example, Sys::Write),
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
