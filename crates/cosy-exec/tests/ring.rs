//! What the ring executor promises beyond the outcome (which `differential.rs` compares):
//! few io_uring_enter calls, fallbacks that say so, waits bounded by the time limit; and what
//! `auto` chooses. Tests that need io_uring print `skipping ...` and return without it (fail,
//! under `COSY_REQUIRE_URING=1`: [`cosy_uring::skip_without_uring`]).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use cosy_exec::auto::{AutoExecutor, Choice};
use cosy_exec::{Backend, Error, RingOptions, RunOptions};
use cosy_model::flags::{AtFlags, Mode, PipeFlags, StatxFlags};
use cosy_model::{BinOp, Builder, Compound, ErrorMode, FdRef, Policy, Sys, Width};
use cosy_uring::io_uring::opcode;
use cosy_uring::{Calibration, Probe};

fn uring_or_skip() -> bool {
    !cosy_uring::skip_without_uring("this test")
}

fn ring(o: RingOptions) -> RunOptions {
    RunOptions {
        backend: Backend::Ring,
        ring: o,
        trace: true,
        ..RunOptions::default()
    }
}

fn go(c: Compound, policy: &Policy, opts: &RunOptions) -> cosy_exec::Outcome {
    let v = cosy_verify::verify(c, policy).unwrap();
    let out = cosy_exec::run(&v, opts);
    assert_trace_closes(&out);
    out
}

#[test]
fn open_read_close_is_one_chain_one_enter() {
    if !uring_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"hello").unwrap();
    let mut c = Builder::new();
    let p = c.path(bytes(&path));
    let buf = c.buffer("buf", 64);
    let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
    let n = c.read(fd, buf);
    c.close(fd);
    c.output("n", n);
    let out = go(
        c.finish(),
        &Policy::trusted(),
        &ring(RingOptions::default()),
    );
    assert!(out.is_ok(), "{}", show(&out));
    assert_eq!(out.output("n"), Some(5));
    assert_eq!(out.stats.ring_enters, 1, "{}", out.stats);
    assert_eq!(out.stats.ring_ops, 3);
    assert_eq!(out.stats.syscalls, 0);
    assert_eq!(out.stats.fallbacks, 0);
    // The descriptor is a direct one: the trace names it above DIRECT_FD_BASE.
    assert!(
        out.trace
            .iter()
            .any(|t| t.call == Sys::Openat && t.result >= i64::from(cosy_exec::DIRECT_FD_BASE)),
        "{}",
        show(&out)
    );
}

#[test]
fn a_map_of_independent_calls_is_one_round() {
    if !uring_or_skip() {
        return;
    }
    let mut c = Builder::new();
    let count = c.value("count", 0);
    c.map_range(0, 100, 1, |c, _| {
        let z = c.nop();
        c.accumulate(count, 1);
        c.accumulate(count, z);
    });
    c.output("count", count);
    let out = go(
        c.finish(),
        &Policy::trusted(),
        &ring(RingOptions::default()),
    );
    assert_eq!(out.output("count"), Some(100));
    assert_eq!(out.stats.ring_ops, 100);
    assert_eq!(out.stats.ring_enters, 1, "{}", out.stats);
    assert!(out.stats.ops_per_enter() >= 100.0);
    // A window of 8: more rounds, the same answer.
    let out8 = go(
        {
            let mut c = Builder::new();
            let count = c.value("count", 0);
            c.map_range(0, 100, 1, |c, _| {
                c.nop();
                c.accumulate(count, 1);
            });
            c.output("count", count);
            c.finish()
        },
        &Policy::trusted(),
        &ring(RingOptions {
            window: 8,
            ..RingOptions::default()
        }),
    );
    assert_eq!(out8.output("count"), Some(100));
    assert!(out8.stats.ring_enters >= 13, "{}", out8.stats);
}

#[test]
fn a_read_loop_reads_the_whole_file() {
    if !uring_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let size = 4096 * 40 + 17;
    std::fs::write(&path, text(size, 9)).unwrap();
    let c = thesis_loop(&bytes(&path), 4096);
    let out = go(c, &Policy::trusted(), &ring(RingOptions::default()));
    assert!(out.is_ok(), "{}", show(&out));
    assert_eq!(out.output("total"), Some(size as i64));
    // Each read's result decides the next turn: an enter per read, and one for the close.
    assert_eq!(out.stats.by_call["read"], 41);
    assert!(out.stats.ring_enters <= 42, "{}", out.stats);
}

#[test]
fn sqpoll_bursts_need_no_enter() {
    if !uring_or_skip() {
        return;
    }
    let mut c = Builder::new();
    for _ in 0..64 {
        c.nop();
    }
    let c = c.finish();
    let o = ring(RingOptions {
        spin: Duration::from_millis(50),
        ..RingOptions::sqpoll(1000)
    });
    let mut best = u64::MAX;
    for _ in 0..50 {
        let out = go(c.clone(), &Policy::trusted(), &o);
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(out.stats.ring_ops, 64);
        best = best.min(out.stats.ring_enters);
        if best == 0 {
            break;
        }
    }
    // The kernel thread is awake after the first runs: submissions and waits make no call
    // (on a loaded machine the kernel thread may not get a CPU within the spin: one enter).
    if best != 0 {
        eprintln!("note: every SQPOLL run entered the kernel at least {best} time(s)");
    }
    assert!(best <= 1, "SQPOLL runs entered the kernel {best} times");
    cosy_exec::drop_cached_rings();
}

#[test]
fn without_io_uring_every_call_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"0123456789").unwrap();
    let c = thesis_loop(&bytes(&path), 4);
    let out = go(c, &Policy::trusted(), &ring(RingOptions::without_uring()));
    assert!(out.is_ok(), "{}", show(&out));
    assert_eq!(out.output("total"), Some(10));
    assert_eq!(out.stats.ring_ops, 0);
    assert_eq!(out.stats.ring_enters, 0);
    // open, three reads, close.
    assert_eq!(out.stats.fallbacks, 5, "{}", out.stats);
    assert!(
        out.stats.to_string().contains("5 fallbacks"),
        "{}",
        out.stats
    );
}

#[test]
fn without_an_opcode_that_call_falls_back() {
    if !uring_or_skip() {
        return;
    }
    let probe = Probe::kernel().clone().without(opcode::OpenAt::CODE);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"abc").unwrap();
    let mut c = Builder::new();
    let p = c.path(bytes(&path));
    let buf = c.buffer("buf", 64);
    let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
    let n = c.read(fd, buf);
    c.close(fd);
    c.output("n", n);
    let out = go(
        c.finish(),
        &Policy::trusted(),
        &ring(RingOptions {
            probe: Some(probe),
            ..RingOptions::default()
        }),
    );
    assert_eq!(out.output("n"), Some(3));
    // The open was a system call, and so its descriptor one of the process: read and closed
    // with plain calls too (io_uring's reads and closes of process descriptors differ).
    assert_eq!(out.stats.fallbacks, 3, "{}", out.stats);
    assert_eq!(out.stats.ring_ops, 0, "{}", out.stats);
}

/// Run as a child with `COSY_NO_URING=1` by `cosy_no_uring_disables_the_ring`.
#[test]
fn cosy_no_uring_child() {
    if std::env::var_os("COSY_NO_URING").is_none_or(|v| v != "1") {
        return;
    }
    let mut c = Builder::new();
    c.nop();
    c.getpid();
    let out = go(
        c.finish(),
        &Policy::trusted(),
        &ring(RingOptions::default()),
    );
    assert!(out.is_ok());
    assert_eq!(out.stats.ring_ops, 0);
    assert_eq!(out.stats.fallbacks, 2);
    println!("CHILD-OK");
}

#[test]
fn cosy_no_uring_disables_the_ring() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "cosy_no_uring_child", "--nocapture"])
        .env("COSY_NO_URING", "1")
        // io_uring is off on purpose in the child: not a missing io_uring to fail on.
        .env_remove(cosy_uring::ENV_REQUIRE_URING)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_blocked_read_stops_at_the_time_limit() {
    if !uring_or_skip() {
        return;
    }
    // The write end stays open: the read would wait forever (a plain read(2) does).
    let mut c = Builder::new();
    let (r, _w) = c.pipe2(PipeFlags::empty());
    let buf = c.buffer("buf", 8);
    let n = c.read(r, buf);
    c.output("n", n);
    let c = c.finish();
    let mut policy = Policy::trusted();
    policy.time = Duration::from_millis(300);
    for o in [
        RingOptions::default(),
        RingOptions::sqpoll(10),
        RingOptions {
            reuse: false,
            window: 2,
            ..RingOptions::default()
        },
    ] {
        let t = Instant::now();
        let out = go(c.clone(), &policy, &ring(o));
        let took = t.elapsed();
        assert_eq!(
            out.error,
            Some(Error::Time {
                op: 1,
                limit: Duration::from_millis(300)
            }),
            "{}",
            show(&out)
        );
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    cosy_exec::drop_cached_rings();
}

#[test]
fn local_buffers_start_every_iteration_zeroed() {
    // Each iteration checks its local buffer is zero, then dirties part of it.
    each_executor(|| {
        let mut c = Builder::new();
        let buf = c.local_buffer("buf", 64);
        let dirty = c.value("dirty", 0);
        c.map_range(0, 50, 1, |c, i| {
            for off in [0i64, 8, 56] {
                let v = c.load(Width::U64, buf, off);
                c.accumulate(dirty, v);
            }
            let off = c.arith(BinOp::Rem, i, 8);
            let off = c.arith(BinOp::Mul, off, 8);
            c.store(Width::U64, buf, off, i);
            c.store(Width::U8, buf, 0, 1);
        });
        c.output("dirty", dirty);
        let out = run_trusted(c.finish());
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(out.output("dirty"), Some(0), "{}", current());
    });
}

fn calibration(ring_cheap: bool) -> Arc<Calibration> {
    let mut c = Calibration::from_text(&Calibration::measure().to_text()).unwrap();
    c.uring = true;
    c.syscall_ns = 130.0;
    c.ring_enter_ns = 400.0;
    c.ring_nop_ns = 80.0;
    c.statx_direct_ns = 1100.0;
    c.statx_ring_ns = 3600.0;
    c.pread_direct_ns = 380.0;
    c.pread_ring_ns = if ring_cheap { 150.0 } else { 450.0 };
    Arc::new(c)
}

fn choose(c: Compound, cal: &Arc<Calibration>) -> Choice {
    let v = cosy_verify::verify(c, &Policy::trusted()).unwrap();
    AutoExecutor::choose(
        &v,
        &RunOptions {
            calibration: Some(cal.clone()),
            ..RunOptions::default()
        },
    )
}

#[test]
fn auto_chooses_by_the_costs() {
    if !uring_or_skip() {
        return;
    }
    let cheap = calibration(true);
    let dear = calibration(false);
    // A single call: direct.
    let mut c = Builder::new();
    let p = c.path("/");
    let buf = c.buffer("b", 8);
    let fd = c.openat(FdRef::Cwd, p, DIR, Mode::empty());
    c.pread(fd, buf, 0);
    c.close(fd);
    assert!(!choose(c.finish(), &cheap).use_ring);
    // A burst of independent reads worth batching: the ring, when its reads are cheap here.
    let burst = || {
        let mut c = Builder::new();
        let p = c.path("/proc/self/exe");
        let b = c.local_buffer("b", 1);
        let total = c.value("total", 0);
        let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
        c.map_range(0, 256, 1, |c, i| {
            let n = c.pread(fd, b, i);
            c.accumulate(total, n);
        });
        c.close(fd);
        c.output("total", total);
        c.finish()
    };
    let ch = choose(burst(), &cheap);
    assert!(ch.use_ring, "{ch:?}");
    assert!(!choose(burst(), &dear).use_ring);
    // statx on warm caches: direct.
    let mut c = Builder::new();
    let st = c.local_buffer("st", 256);
    c.map_paths(vec!["/"; 64], |c, p| {
        c.statx(FdRef::Cwd, p, AtFlags::empty(), StatxFlags::SIZE, st);
    });
    assert!(!choose(c.finish(), &cheap).use_ring);
    // A burst of nops costs nothing directly.
    let mut c = Builder::new();
    c.map_range(0, 1000, 1, |c, _| {
        c.nop();
    });
    assert!(!choose(c.finish(), &cheap).use_ring);
    // Either way the answers are the direct executor's.
    for cal in [cheap, dear] {
        let v = cosy_verify::verify(burst(), &Policy::trusted()).unwrap();
        let out = cosy_exec::run(
            &v,
            &RunOptions {
                calibration: Some(cal),
                ..RunOptions::default()
            },
        );
        assert_eq!(out.output("total"), Some(256), "{out}");
    }
}

#[test]
fn stats_display_the_ring() {
    if !uring_or_skip() {
        return;
    }
    let mut c = Builder::new();
    let k = c.value("k", 0);
    c.do_while(3, |c| {
        c.nop();
        c.accumulate(k, 1);
        k.lt(3)
    });
    let out = go(
        c.finish(),
        &Policy::trusted(),
        &ring(RingOptions::default()),
    );
    let shown = out.stats.to_string();
    assert!(shown.contains("0 direct + 3 through the ring"), "{shown}");
    assert!(shown.contains("enters, 3 ops"), "{shown}");
    assert!(shown.contains("per enter"), "{shown}");
}

// --------------------------------------------------------------------- maps in a window of lanes

/// Runs `c` under `policy` on direct and on the ring; returns both outcomes and the ring's
/// io_uring_enter calls.
fn against_direct(c: &Compound, policy: &Policy) -> (cosy_exec::Outcome, cosy_exec::Outcome, u64) {
    let direct = go(
        c.clone(),
        policy,
        &RunOptions {
            backend: Backend::Direct,
            trace: true,
            ..RunOptions::default()
        },
    );
    let ring = go(c.clone(), policy, &ring(RingOptions::default()));
    let enters = ring.stats.ring_enters;
    assert_eq!(ring.outputs, direct.outputs, "{}", show(&ring));
    assert_eq!(ring.error, direct.error, "{}", show(&ring));
    assert_eq!(ring.errors, direct.errors, "{}", show(&ring));
    (direct, ring, enters)
}

/// `map i in range(0, n, 1) { off = i * 4099 % size; r = pread(fd, b, off + shift); v = b[0];
/// sum += v; ops += r }`.
fn pread_map(path: &[u8], n: i64, shift: i64) -> Compound {
    let mut c = Builder::new();
    let p = c.path(path);
    let b = c.local_buffer("b", 1);
    let ops = c.value("ops", 0);
    let sum = c.value("sum", 0);
    let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
    c.map_range(0, n, 1, |c, i| {
        let off = c.arith(BinOp::Mul, i, 4099);
        let off = c.arith(BinOp::Rem, off, 10_000);
        let off = c.arith(BinOp::Add, off, shift);
        let r = c.pread(fd, b, off);
        let v = c.load(Width::U8, b, 0);
        c.accumulate(sum, v);
        c.accumulate(ops, r);
    });
    c.close(fd);
    c.output("ops", ops);
    c.output("sum", sum);
    c.finish()
}

#[test]
fn straight_line_maps_run_in_a_window() {
    if !uring_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, text(10_000, 7)).unwrap();
    // More iterations than the submission queue: several batches.
    let mut c = Builder::new();
    let count = c.value("count", 0);
    c.map_range(0, 600, 1, |c, i| {
        let r = c.nop();
        c.accumulate(count, 1);
        c.accumulate(count, r);
        c.accumulate(count, i);
    });
    c.output("count", count);
    let (_, out, _) = against_direct(&c.finish(), &Policy::trusted());
    assert_eq!(out.output("count"), Some(600 + 599 * 600 / 2));
    assert_eq!(out.stats.ring_ops, 600);
    assert_eq!(out.stats.ring_enters, 3, "{}", out.stats);
    for n in [2, 3, 256, 700] {
        let (_, out, _) = against_direct(&pread_map(&bytes(&path), n, 0), &Policy::trusted());
        assert_eq!(out.output("ops"), Some(n));
    }
    // statx of a list of paths, a struct statx per iteration.
    let mut c = Builder::new();
    let st = c.local_buffer("st", 256);
    let total = c.value("total", 0);
    let paths: Vec<Vec<u8>> = (0..40).map(|_| bytes(&path)).collect();
    c.map_paths(&paths, |c, p| {
        c.statx(FdRef::Cwd, p, AtFlags::empty(), StatxFlags::SIZE, st);
        let size = c.load(Width::U64, st, 40);
        c.accumulate(total, size);
    });
    c.output("total", total);
    let (_, out, _) = against_direct(&c.finish(), &Policy::trusted());
    assert_eq!(out.output("total"), Some(40 * 10_000));
    // A call whose operand depends on an earlier call's result: threads.
    let mut c = Builder::new();
    let p = c.path(bytes(&path));
    let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
    let count = c.value("count", 0);
    c.map_range(0, 10, 1, |c, i| {
        let b = c.local_buffer("b", 8);
        let r = c.pread(fd, b, i);
        let r2 = c.pread(fd, b, r);
        c.accumulate(count, r2);
    });
    c.close(fd);
    c.output("count", count);
    let (_, _, _) = against_direct(&c.finish(), &Policy::trusted());
}

#[test]
fn window_maps_stop_where_direct_does() {
    if !uring_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, text(10_000, 7)).unwrap();
    let missing = dir.path().join("missing");
    for mode in [ErrorMode::Stop, ErrorMode::Continue] {
        // A negative offset from iteration 300 on (EINVAL), in the second batch.
        let mut c = Builder::new();
        c.mode(mode);
        let p = c.path(bytes(&path));
        let b = c.local_buffer("b", 1);
        let ops = c.value("ops", 0);
        let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
        c.map_range(0, 400, 1, |c, i| {
            let off = c.arith(BinOp::Sub, 299, i);
            let r = c.pread(fd, b, off);
            c.accumulate(ops, r);
        });
        c.close(fd);
        c.output("ops", ops);
        let (_, out, _) = against_direct(&c.finish(), &Policy::trusted());
        match mode {
            ErrorMode::Stop => assert!(
                matches!(out.error, Some(Error::Call { errno, .. }) if errno == libc::EINVAL),
                "{}",
                show(&out)
            ),
            ErrorMode::Continue => assert_eq!(out.errors.len(), 100),
        }
        // Missing files among the paths of a statx map (ENOENT).
        let mut c = Builder::new();
        c.mode(mode);
        let st = c.local_buffer("st", 256);
        let total = c.value("total", 0);
        let paths: Vec<Vec<u8>> = (0..30)
            .map(|k| bytes(if k % 7 == 5 { &missing } else { &path }))
            .collect();
        c.map_paths(&paths, |c, p| {
            let r = c.statx(FdRef::Cwd, p, AtFlags::empty(), StatxFlags::SIZE, st);
            let size = c.load(Width::U64, st, 40);
            c.accumulate(total, size);
            c.accumulate(total, r);
        });
        c.output("total", total);
        let (_, out, _) = against_direct(&c.finish(), &Policy::trusted());
        assert_eq!(out.is_ok(), mode == ErrorMode::Continue, "{}", show(&out));
        // Division by zero computing an operand.
        let mut c = Builder::new();
        c.mode(mode);
        let count = c.value("count", 0);
        c.map_range(0, 10, 1, |c, i| {
            let d = c.arith(BinOp::Sub, i, 7);
            let q = c.arith(BinOp::Div, 100, d);
            c.nop();
            c.accumulate(count, q);
        });
        c.output("count", count);
        let (_, out, _) = against_direct(&c.finish(), &Policy::trusted());
        assert!(
            matches!(out.error, Some(Error::Arith { .. })),
            "{}",
            show(&out)
        );
        // A load out of its buffer's range.
        let mut c = Builder::new();
        c.mode(mode);
        let count = c.value("count", 0);
        c.map_range(0, 10, 1, |c, i| {
            let b = c.local_buffer("b", 4);
            c.nop();
            let v = c.load(Width::U8, b, i);
            c.accumulate(count, v);
        });
        c.output("count", count);
        let (_, out, _) = against_direct(&c.finish(), &Policy::trusted());
        assert!(
            matches!(out.error, Some(Error::Range { .. })),
            "{}",
            show(&out)
        );
    }
}

#[test]
fn window_maps_keep_fuel_and_time() {
    if !uring_or_skip() {
        return;
    }
    let make = || {
        let mut c = Builder::new();
        let count = c.value("count", 0);
        c.map_range(0, 50, 1, |c, i| {
            let x = c.arith(BinOp::Mul, i, 2);
            c.nop();
            c.accumulate(count, x);
        });
        c.output("count", count);
        c.finish()
    };
    let full = go(
        make(),
        &Policy::trusted(),
        &RunOptions {
            backend: Backend::Direct,
            ..RunOptions::default()
        },
    )
    .stats
    .ops;
    for fuel in [0, 1, 2, 3, 17, full - 1, full, full + 1] {
        let mut p = Policy::trusted();
        p.fuel = fuel;
        let (_, _, _) = against_direct(&make(), &p);
    }
    // Past the time limit before the map: the first call is refused (after the arithmetic).
    let mut p = Policy::trusted();
    p.time = Duration::ZERO;
    let (_, out, _) = against_direct(&make(), &p);
    assert!(
        matches!(out.error, Some(Error::Time { .. })),
        "{}",
        show(&out)
    );
}

/// io_uring does not break a soft link when fsync, ftruncate, statx or a directory call
/// fails: a write queued behind one must not run where `direct` stops.
#[test]
fn no_side_effect_after_a_failure_that_keeps_its_link() {
    if !uring_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let missing = dir.path().join("missing");
    let made = dir.path().join("made");
    for first in 0..3 {
        let mut c = Builder::new();
        let b = c.buffer("b", 256);
        let po = c.path(bytes(&out));
        let fd = c.openat(FdRef::Cwd, po, CREATE, Mode::from_raw_mode(0o644));
        match first {
            0 => {
                let (_, w) = c.pipe2(PipeFlags::NONBLOCK);
                c.ftruncate(w, 10);
            }
            1 => {
                let (_, w) = c.pipe2(PipeFlags::NONBLOCK);
                c.fsync(w);
            }
            _ => {
                let pm = c.path(bytes(&missing));
                c.statx(FdRef::Cwd, pm, AtFlags::empty(), StatxFlags::SIZE, b);
            }
        }
        c.pwrite(fd, b, 0);
        let pd = c.path(bytes(&made));
        c.mkdirat(FdRef::Cwd, pd, Mode::from_raw_mode(0o755));
        c.close(fd);
        let (direct, ring, _) = against_direct(&c.finish(), &Policy::trusted());
        assert!(direct.error.is_some(), "{}", show(&direct));
        assert_eq!(std::fs::metadata(&out).unwrap().len(), 0, "{}", show(&ring));
        assert!(!made.exists(), "{}", show(&ring));
    }
}

/// `r = nop; r = 3530`: the move runs while the nop is still queued; retiring the nop must not
/// put its result over the later value (found by the generated compounds of the harness).
#[test]
fn a_later_write_of_a_pending_calls_register_wins() {
    if !uring_or_skip() {
        return;
    }
    let mut c = Builder::new();
    let r = c.nop();
    c.push(cosy_model::Op::Mov {
        dst: r,
        src: cosy_model::Value::Imm(3530),
    });
    c.output("r", r);
    let out = go(
        c.finish(),
        &Policy::trusted(),
        &ring(RingOptions::default()),
    );
    assert!(out.is_ok(), "{}", show(&out));
    assert_eq!(out.output("r"), Some(3530), "{}", show(&out));
}
