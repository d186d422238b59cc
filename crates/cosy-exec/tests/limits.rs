//! The policy's limits (docs/semantics.md, "Limits"), one test each, each on every executor
//! (direct, direct on threads, the ring's configurations, auto): fuel, wall time, arena bytes,
//! open descriptors, bytes written, bytes of output. Running out stops at the same operation
//! with the same precise error everywhere, leaves no descriptor open (`/proc/self/fd` before
//! and after), and a later run on the same thread (the same cached ring) works.
//!
//! The tests of this binary hold one lock: they count the process's descriptors.

mod common;

use std::time::{Duration, Instant};

use common::*;
use cosy_exec::Limit;
use cosy_exec::testing::open_fds;
use cosy_exec::{Error, Outcome, RunOptions};
use cosy_model::{Compound, Policy};

/// Runs `c` under `limited` on the current executor (how long it took with the outcome),
/// checks that no descriptor outlives it, then runs `after` under `generous` on the same thread
/// (the same cached ring): that run must succeed.
fn limited_then(
    c: &Compound,
    limited: &Policy,
    after: &Compound,
    generous: &Policy,
) -> (Outcome, Duration) {
    cosy_exec::drop_cached_rings();
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
    cosy_exec::drop_cached_rings();
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

/// A map over 16 files whose iterations may run at once (opens, preads and closes only): on
/// threads with `direct` and several threads, in a window of lanes on the ring.
fn map_of_files(d: &std::path::Path) -> Compound {
    let mut names = Vec::new();
    for i in 0..16 {
        std::fs::write(d.join(format!("f{i}")), text(1000 + i * 10, i as u64)).unwrap();
        names.push(format!("\"f{i}\""));
    }
    parse(&format!(
        "buffer b 4096 local\n\
         total = 0\n\
         map p in paths({}) {{\n\
             f = openat cwd p O_RDONLY 0o0\n\
             r = pread f b 0\n\
             total = total + r\n\
             rc = close f\n\
         }}\n\
         output total\n",
        names.join(", ")
    ))
}

/// Runs `c` under `p` on every executor without a trace (threads need that); the outcomes
/// by executor name.
fn untraced(c: &Compound, p: &Policy) -> Vec<(&'static str, Outcome)> {
    let v = cosy_verify::verify(c.clone(), p).expect("verifies");
    executors()
        .into_iter()
        .filter(|(name, _)| {
            !(name.starts_with("ring")
                && *name != "ring-no-uring"
                && cosy_uring::skip_without_uring(&format!("the {name} executor")))
        })
        .map(|(name, o)| {
            cosy_exec::drop_cached_rings();
            let before = open_fds();
            let out = cosy_exec::run(&v, &o);
            cosy_exec::drop_cached_rings();
            assert_eq!(before, open_fds(), "{name}: descriptors left open");
            (name, out)
        })
        .collect()
}

/// The most descriptors the trace shows open at once (opens that succeeded, closes).
fn peak_open(out: &Outcome) -> i64 {
    let (mut open, mut peak) = (0i64, 0i64);
    for e in &out.trace {
        match e.call {
            cosy_model::Sys::Openat | cosy_model::Sys::Openat2 if e.result >= 0 => open += 1,
            cosy_model::Sys::Close if e.fd >= 0 => open -= 1,
            _ => {}
        }
        peak = peak.max(open);
    }
    peak
}

#[test]
fn the_arena_limit_bounds_every_copy_of_the_buffers() {
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    let c = map_of_files(d.path());
    let roomy = Policy::untrusted(d.path());
    // One copy of the buffers is all the policy allows: the verifier refuses less.
    let tight = with(&roomy, |p| p.arena_bytes = 4096);
    let err = cosy_verify::verify(c.clone(), &with(&tight, |p| p.arena_bytes = 4095))
        .expect_err("a compound above the arena limit verifies");
    assert!(format!("{err:?}").contains("4095"), "{err:?}");
    let want = reference(&c, &tight);
    assert!(want.is_ok(), "{}", show(&want));
    // With room for copies, threads run the map (so the test below can tell).
    let threaded = untraced(&c, &roomy);
    assert!(
        threaded
            .iter()
            .any(|(n, o)| *n == "direct-threads" && o.stats.threaded_maps > 0),
        "the map never ran on threads"
    );
    for (name, out) in untraced(&c, &tight) {
        assert!(out.is_ok(), "{name}: {}", show(&out));
        assert_eq!(out.outputs, want.outputs, "{name}");
        // A thread would need a copy of the arena the policy has no room for.
        assert_eq!(out.stats.threaded_maps, 0, "{name}: ran the map on threads");
    }
    // The ring's window of lanes, each with its local buffers, fits the limit too: a layout
    // above it fails to set up, so every ring configuration running above shows it.
}

#[test]
fn open_descriptors_stay_within_the_limit() {
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    // More fd slots than the policy's descriptors: refused before anything runs.
    std::fs::write(d.path().join("a"), b"a").unwrap();
    let three = parse(
        "f = openat cwd \"a\" O_RDONLY 0o0\n\
         g = openat cwd \"a\" O_RDONLY 0o0\n\
         h = openat cwd \"a\" O_RDONLY 0o0\n",
    );
    let two = with(&Policy::untrusted(d.path()), |p| p.open_fds = 2);
    each_executor(|| {
        if skip_ring() {
            return;
        }
        let out = limited_then(&three, &two, &three, &Policy::untrusted(d.path())).0;
        assert!(
            matches!(&out.error, Some(Error::Setup(m)) if m.contains("3 fd slots") && m.contains("2 open fds")),
            "{}: {}",
            current(),
            show(&out)
        );
        assert_eq!(out.trace, [], "{}: it ran", current());
    });

    // A map whose iterations run at once holds one descriptor per iteration in flight: with
    // one allowed, one iteration at a time (its trace, per item, is that of a lone lane).
    let c = map_of_files(d.path());
    let roomy = Policy::untrusted(d.path());
    let one = with(&roomy, |p| p.open_fds = 1);
    let want = reference(&c, &one);
    assert!(want.is_ok(), "{}", show(&want));
    each_executor(|| {
        if skip_ring() {
            return;
        }
        let out = limited_then_again(&c, &one, &roomy);
        assert!(out.is_ok(), "{}: {}", current(), show(&out));
        assert_eq!(out.outputs, want.outputs, "{}", current());
        assert!(
            peak_open(&out) <= 1,
            "{}: {} open at once",
            current(),
            peak_open(&out)
        );
    });
    // Untraced (a traced run keeps its maps on one thread): no threads, and on the ring one
    // iteration per submission where a window of them shared one.
    let wide = untraced(&c, &roomy);
    let narrow = untraced(&c, &one);
    for ((name, w), (_, n)) in wide.iter().zip(&narrow) {
        assert!(n.is_ok(), "{name}: {}", show(n));
        assert_eq!(n.outputs, want.outputs, "{name}");
        assert_eq!(n.stats.threaded_maps, 0, "{name}: ran the map on threads");
        match *name {
            "direct-threads" => assert!(w.stats.threaded_maps > 0, "{name}: no threads"),
            "ring" | "ring-plain" if cosy_uring::Probe::detect().available() => assert!(
                n.stats.ring_enters >= 16 && w.stats.ring_enters < n.stats.ring_enters,
                "{name}: {} enters with several descriptors, {} with one",
                w.stats.ring_enters,
                n.stats.ring_enters
            ),
            _ => {}
        }
    }
}

fn file_len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

#[test]
fn bytes_written_stop_at_the_limit_before_the_call_that_would_pass_it() {
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("src"), text(64 << 10, 5)).unwrap();
    let roomy = Policy::untrusted(d.path());
    let limit = with(&roomy, |p| p.written_bytes = 10_000);
    // A read/write loop (stop mode: each write waits for the one before).
    let copy = parse(
        "buffer buf 4096\n\
         i = openat cwd \"src\" O_RDONLY 0o0\n\
         o = openat cwd \"dst\" O_WRONLY|O_CREAT|O_TRUNC 0o644\n\
         copied = 0\n\
         top:\n\
         n = read i buf\n\
         w = write o buf[0..n]\n\
         copied = copied + w\n\
         if n > 0 goto top bound 1000000\n\
         rc = close i\n\
         rc2 = close o\n\
         output copied\n",
    );
    // Writes that do not wait for each other (continue mode: the ring queues them at once).
    let burst = parse(
        "mode continue\n\
         buffer b 1000\n\
         o = openat cwd \"burst\" O_WRONLY|O_CREAT|O_TRUNC 0o644\n\
         n = 0\n\
         top:\n\
         w = write o b\n\
         n = n + 1\n\
         if n < 10 goto top bound 10\n\
         rc = close o\n\
         output n\n",
    );
    let limit_b = with(&roomy, |p| p.written_bytes = 3_500);
    let dst = d.path().join("dst");
    let s = bytes(&d.path().join("src"));
    let copies = [
        ("copy_file_range", copy_cfr(&s, &bytes(&dst))),
        ("sendfile", copy_sendfile(&s, &bytes(&dst))),
        ("splice", copy_splice(&s, &bytes(&dst))),
    ];
    let trusted = Policy::trusted();
    let trusted_limit = with(&trusted, |p| p.written_bytes = 40_000);
    let wants: Vec<(Outcome, u64)> = copies
        .iter()
        .map(|(_, c)| (reference(c, &trusted_limit), file_len(&dst)))
        .collect();
    each_executor(|| {
        if skip_ring() {
            return;
        }
        let out = limited_then(&copy, &limit, &parse("n = 0\n"), &roomy).0;
        assert_eq!(
            out.error,
            Some(Error::Limit {
                op: 4,
                call: cosy_model::Sys::Write,
                limit: Limit::WrittenBytes,
                value: 10_000,
                used: 8192,
                asked: 4096,
            }),
            "{}: {}",
            current(),
            show(&out)
        );
        assert_eq!(file_len(&dst), 8192, "{}", current());
        assert_eq!(out.output("copied"), Some(8192), "{}", current());

        let out = limited_then(&burst, &limit_b, &parse("n = 0\n"), &roomy).0;
        assert_eq!(
            out.error,
            Some(Error::Limit {
                op: 2,
                call: cosy_model::Sys::Write,
                limit: Limit::WrittenBytes,
                value: 3_500,
                used: 3_000,
                asked: 1_000,
            }),
            "{}: {}",
            current(),
            show(&out)
        );
        assert_eq!(file_len(&d.path().join("burst")), 3_000, "{}", current());
        assert_eq!(out.output("n"), Some(3), "{}", current());

        // The other calls that write, by the same rule: what direct does.
        for ((name, c), (want, len)) in copies.iter().zip(&wants) {
            let out = limited_then(c, &trusted_limit, &parse("n = 0\n"), &trusted).0;
            assert!(
                matches!(
                    out.error,
                    Some(Error::Limit {
                        limit: Limit::WrittenBytes,
                        ..
                    })
                ),
                "{name} on {}: {}",
                current(),
                show(&out)
            );
            assert_eq!(out.error, want.error, "{name} on {}", current());
            assert_eq!(out.outputs, want.outputs, "{name} on {}", current());
            assert_eq!(file_len(&dst), *len, "{name} on {}", current());
        }
    });
}

/// Standard error sent to a file while it lives.
struct Stderr {
    saved: i32,
}

impl Stderr {
    fn to(path: &std::path::Path) -> Stderr {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::create(path).unwrap();
        // SAFETY: plain descriptor calls on descriptors this process owns.
        let saved = unsafe { libc::dup(2) };
        assert!(saved >= 0);
        // SAFETY: as above; fd 2 is replaced by a copy of `f`.
        assert_eq!(unsafe { libc::dup2(f.as_raw_fd(), 2) }, 2);
        Stderr { saved }
    }
}

impl Drop for Stderr {
    fn drop(&mut self) {
        // SAFETY: puts the saved standard error back and closes the copy.
        unsafe {
            libc::dup2(self.saved, 2);
            libc::close(self.saved);
        }
    }
}

#[test]
fn output_stops_at_its_limit_and_counts_as_written() {
    let _g = serial();
    let d = tempfile::tempdir().unwrap();
    let c = parse(
        "buffer out 10\n\
         n = 0\n\
         top:\n\
         w = write stderr out\n\
         n = n + 1\n\
         if n < 10 goto top bound 10\n\
         output n\n",
    );
    let roomy = Policy::untrusted(d.path());
    let output = with(&roomy, |p| p.output_bytes = 25);
    let written = with(&roomy, |p| p.written_bytes = 15);
    let log = d.path().join("stderr");
    each_executor(|| {
        if skip_ring() {
            return;
        }
        let quiet = parse("n = 0\n");
        let (out, len) = {
            let _e = Stderr::to(&log);
            let out = limited_then(&c, &output, &quiet, &roomy).0;
            (out, file_len(&log))
        };
        assert_eq!(
            out.error,
            Some(Error::Limit {
                op: 1,
                call: cosy_model::Sys::Write,
                limit: Limit::OutputBytes,
                value: 25,
                used: 20,
                asked: 10,
            }),
            "{}: {}",
            current(),
            show(&out)
        );
        assert_eq!(len, 20, "{}", current());
        assert_eq!(out.output("n"), Some(2), "{}", current());

        let (out, len) = {
            let _e = Stderr::to(&log);
            let out = limited_then(&c, &written, &quiet, &roomy).0;
            (out, file_len(&log))
        };
        assert!(
            matches!(
                out.error,
                Some(Error::Limit {
                    limit: Limit::WrittenBytes,
                    value: 15,
                    used: 10,
                    asked: 10,
                    ..
                })
            ),
            "{}: {}",
            current(),
            show(&out)
        );
        assert_eq!(len, 10, "{}", current());
    });
}
