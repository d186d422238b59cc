//! The policy's limits (docs/semantics.md, "Limits"), one test each, each on every executor
//! (direct, direct on threads, the ring's configurations, auto): fuel, wall time, arena bytes,
//! open descriptors, bytes written, bytes of output. Running out stops at the same operation
//! with the same precise error everywhere, leaves no descriptor open (`/proc/self/fd` before
//! and after), and a later run on the same thread (the same cached ring) works.
//!
//! The tests of this binary hold one lock: they count the process's descriptors.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use cosy_exec::outcome::Limit;
use cosy_exec::testing::open_fds;
use cosy_exec::{Error, Outcome, RunOptions};
use cosy_model::{Compound, Policy};

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

/// Runs `c` under `limited` on the current executor (how long it took with the outcome),
/// checks that no descriptor outlives it, then runs `after` under `generous` on the same thread
/// (the same cached ring): that run must succeed.
fn limited_then(
    c: &Compound,
    limited: &Policy,
    after: &Compound,
    generous: &Policy,
) -> (Outcome, Duration) {
    cosy_exec::ring::drop_cached_rings();
    let before = open_fds();
    let t = Instant::now();
    let out = run_with(c.clone(), limited, RunOptions::default());
    let took = t.elapsed();
    // The ring is kept for the next run of the thread: it must have given back every slot and
    // buffer.
    let again = run_with(after.clone(), generous, RunOptions::default());
    assert!(
        again.is_ok(),
        "{}: the run after the limited one failed: {}",
        current(),
        show(&again)
    );
    cosy_exec::ring::drop_cached_rings();
    assert_eq!(
        before,
        open_fds(),
        "{}: descriptors left open\n{}",
        current(),
        show(&out)
    );
    (out, took)
}

/// [`limited_then`] with the same compound again.
fn limited_then_again(c: &Compound, limited: &Policy, generous: &Policy) -> Outcome {
    limited_then(c, limited, c, generous).0
}

/// The outcome on `direct`, the reference the others are compared with.
fn reference(c: &Compound, p: &Policy) -> Outcome {
    let v = cosy_verify::verify(c.clone(), p).expect("verifies");
    cosy_exec::run(
        &v,
        &RunOptions {
            backend: cosy_exec::Backend::Direct,
            ..RunOptions::default()
        },
    )
}

fn with(p: &Policy, f: impl FnOnce(&mut Policy)) -> Policy {
    let mut p = p.clone();
    f(&mut p);
    p
}

#[test]
fn fuel_runs_out_at_the_same_operation_on_every_executor() {
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("data"), text(4096, 3)).unwrap();
    let c = parse(
        "buffer b 16\n\
         f = openat cwd \"data\" O_RDONLY 0o0\n\
         n = 0\n\
         L2:\n\
         r = pread f b n\n\
         n = n + 1\n\
         if n < 100000 goto L2 bound 100000\n\
         rc = close f\n\
         output n\n",
    );
    let p = with(&Policy::untrusted(d.path()), |p| p.fuel = 301);
    let want = reference(&c, &p);
    let Some(Error::Fuel { op, fuel: 301 }) = want.error else {
        panic!("direct: {}", show(&want));
    };
    each_executor(|| {
        if skip_ring() {
            return;
        }
        let out = limited_then_again(&c, &p, &with(&p, |p| p.fuel = 1_000_000));
        assert_eq!(
            out.error,
            Some(Error::Fuel { op, fuel: 301 }),
            "{}",
            current()
        );
        assert_eq!(out.outputs, want.outputs, "{}", current());
        assert_eq!(out.stats.ops, 301, "{}", current());
    });
}

#[test]
fn the_time_limit_stops_a_long_run_on_every_executor() {
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("data"), text(4096, 4)).unwrap();
    // Ten million preads: far longer than the limit.
    let c = parse(
        "buffer b 64\n\
         f = openat cwd \"data\" O_RDONLY 0o0\n\
         n = 0\n\
         L2:\n\
         r = pread f b 0\n\
         n = n + 1\n\
         if n < 10000000 goto L2 bound 10000000\n\
         rc = close f\n\
         output n\n",
    );
    let short = parse(
        "buffer b 64\n\
         f = openat cwd \"data\" O_RDONLY 0o0\n\
         r = pread f b 0\n\
         rc = close f\n",
    );
    let limit = Duration::from_millis(200);
    let untrusted = Policy::untrusted(d.path());
    let p = with(&untrusted, |p| {
        p.time = limit;
        p.fuel = u64::MAX;
    });
    each_executor(|| {
        if skip_ring() {
            return;
        }
        let (out, took) = limited_then(&c, &p, &short, &untrusted);
        assert!(
            matches!(out.error, Some(Error::Time { limit: l, .. }) if l == limit),
            "{}: {}",
            current(),
            show(&out)
        );
        let n = out.output("n").unwrap_or(0);
        assert!(n > 0 && n < 10_000_000, "{}: n = {n}", current());
        // The clock is read every few operations: the run ends soon after the limit.
        assert!(
            took < limit + Duration::from_millis(300),
            "{}: took {took:?}",
            current()
        );
    });
}
