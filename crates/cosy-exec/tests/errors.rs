//! Error modes and limits.

mod common;

use std::time::{Duration, Instant};

use common::*;
use cosy_exec::{Error, RunOptions};
use cosy_model::flags::{AtFlags, Mode, StatxFlags};
use cosy_model::{BinOp, Builder, ErrorMode, FdRef, Op, Policy, Sys, Width};

#[test]
fn stop_mode_reports_the_failing_call_and_stops() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let out = run_trusted(open_missing(&bytes(&missing)));
        let err = out.error.clone().expect("the run must fail");
        assert_eq!(
            err,
            Error::Call {
                op: 0,
                call: Sys::Openat,
                errno: libc::ENOENT
            }
        );
        assert_eq!(
            err.to_string(),
            "op 0 (openat): ENOENT: No such file or directory"
        );
        assert!(!out.is_ok());
        assert!(out.errors.is_empty());
        // Nothing after op 0 took effect: on the ring the read and close chained behind the
        // open may run (on the slot the open did not fill), and are discarded.
        assert_eq!(out.stats.ops, 1);
        assert!(calls(&out) <= 3, "{}", out.stats);
        assert!(!out.stats.by_call.contains_key("getpid"));
        assert_eq!(out.output("pid"), Some(0));
    });
}

#[test]
fn continue_mode_records_errors_and_goes_on() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let mut c = open_missing(&bytes(&missing));
        c.mode = ErrorMode::Continue;
        let out = run_trusted(c);
        assert!(out.is_ok(), "{}", show(&out));
        let got: Vec<(u32, Sys, i32)> =
            out.errors.iter().map(|e| (e.op, e.call, e.errno)).collect();
        assert_eq!(
            got,
            [
                (0, Sys::Openat, libc::ENOENT),
                (1, Sys::Read, libc::EBADF),
                (2, Sys::Close, libc::EBADF)
            ]
        );
        assert_eq!(out.output("n"), Some(-i64::from(libc::EBADF)));
        assert_eq!(out.output("pid"), Some(i64::from(std::process::id())));
        assert_eq!(
            out.errors[1].to_string(),
            "op 1 (read): EBADF: Bad file descriptor"
        );
    });
}

#[test]
fn fuel_runs_out_before_the_operation_that_would_exceed_it() {
    each_executor(|| {
        let mut c = Builder::new();
        for _ in 0..20 {
            c.nop();
        }
        let mut policy = Policy::trusted();
        policy.fuel = 10;
        let out = run_with(c.finish(), &policy, RunOptions::default());
        assert_eq!(out.error, Some(Error::Fuel { op: 10, fuel: 10 }));
        assert_eq!(out.stats.ops, 10);
    });
}

#[test]
fn time_limit_stops_an_endless_loop() {
    each_executor(|| {
        let mut c = Builder::new();
        let i = c.value("i", 0);
        c.do_while(u32::MAX, |c| {
            c.accumulate(i, 1);
            cosy_model::Value::Imm(1).eq(1)
        });
        c.output("i", i);
        let mut policy = Policy::trusted();
        policy.time = Duration::from_millis(200);
        let t = Instant::now();
        let out = run_with(c.finish(), &policy, RunOptions::default());
        let took = t.elapsed();
        assert!(
            matches!(out.error, Some(Error::Time { op: 2, .. })),
            "{:?}",
            out.error
        );
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_millis(900), "{took:?}");
        assert!(out.output("i").unwrap() > 1000);
    });
}

#[test]
fn time_limit_is_checked_before_calls() {
    each_executor(|| {
        let mut c = Builder::new();
        c.do_while(u32::MAX, |c| {
            c.getpid();
            cosy_model::Value::Imm(0).eq(0)
        });
        let mut policy = Policy::trusted();
        policy.time = Duration::ZERO;
        let out = run_with(c.finish(), &policy, RunOptions::default());
        assert!(
            matches!(out.error, Some(Error::Time { op: 0, .. })),
            "{:?}",
            out.error
        );
        assert_eq!(out.stats.syscalls, 0);
    });
}

#[test]
fn loop_bound_is_enforced_per_run_and_per_iteration() {
    each_executor(|| {
        let mut c = Builder::new();
        let k = c.value("k", 0);
        c.do_while(5, |c| {
            c.accumulate(k, 1);
            k.lt(100)
        });
        c.output("k", k);
        let out = run_trusted(c.finish());
        assert_eq!(out.error, Some(Error::LoopBound { op: 2, bound: 5 }));
        // Taken 5 times: the body ran 6 times.
        assert_eq!(out.output("k"), Some(6));

        // Inside a map the counter restarts with each iteration.
        let mut c = Builder::new();
        let total = c.value("total", 0);
        c.map_range(0, 10, 1, |c, _| {
            let j = c.value("j", 0);
            c.do_while(3, |c| {
                c.push(Op::Arith {
                    dst: j,
                    op: BinOp::Add,
                    a: j.into(),
                    b: 1.into(),
                });
                c.accumulate(total, 1);
                j.lt(4)
            });
        });
        c.output("total", total);
        let out = run_trusted(c.finish());
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(out.output("total"), Some(40));
    });
}

#[test]
fn runtime_range_out_of_bounds_issues_nothing() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"data").unwrap();
        let mut c = Builder::new();
        let len = c.input_int("len", 5000);
        let p = c.path(bytes(&path));
        let buf = c.buffer("buf", 4096);
        let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
        c.read(fd, buf.prefix(len));
        c.close(fd);
        let compound = c.finish();

        let out = run_trusted(compound.clone());
        match &out.error {
            Some(Error::Range { op: 1, buffer, .. }) => assert_eq!(buffer, "buf"),
            other => panic!("{other:?}"),
        }
        assert!(!out.stats.by_call.contains_key("read"));
        // The fd is still closed, at the end.
        assert_eq!(out.stats.by_call["close"], 1);
        let msg = out.error.unwrap().to_string();
        assert!(msg.contains("[0..5000]") && msg.contains("4096"), "{msg}");

        // The same compound with an input inside the buffer works.
        let mut ok = compound.clone();
        ok.set_input("len", "4").unwrap();
        let out = run_trusted(ok);
        assert!(out.is_ok(), "{}", show(&out));

        // A negative start, a start past the end, load and store offsets.
        for l in ["-1", "4097"] {
            let mut bad = compound.clone();
            bad.set_input("len", l).unwrap();
            let out = run_trusted(bad);
            assert!(matches!(out.error, Some(Error::Range { op: 1, .. })), "{l}");
        }
        let mut c = Builder::new();
        let off = c.input_int("off", 4090);
        let buf = c.buffer("buf", 4096);
        c.store(Width::U64, buf, off, 1);
        let out = run_trusted(c.finish());
        assert!(matches!(out.error, Some(Error::Range { op: 0, .. })));
        let mut c = Builder::new();
        let off = c.input_int("off", -1);
        let buf = c.buffer("buf", 4096);
        c.load(Width::U8, buf, off);
        let out = run_trusted(c.finish());
        assert!(matches!(out.error, Some(Error::Range { op: 0, .. })));
    });
}

#[test]
fn statx_needs_room_for_struct_statx() {
    each_executor(|| {
        let mut c = Builder::new();
        let len = c.input_int("len", 100);
        let p = c.path("/");
        let buf = c.buffer("buf", 4096);
        c.statx(
            FdRef::Cwd,
            p,
            AtFlags::empty(),
            StatxFlags::BASIC_STATS,
            buf.prefix(len),
        );
        let out = run_trusted(c.finish());
        assert!(
            matches!(out.error, Some(Error::Range { op: 0, .. })),
            "{:?}",
            out.error
        );
        assert_eq!(out.stats.syscalls, 0);
    });
}

#[test]
fn arithmetic_errors_stop_in_both_modes() {
    each_executor(|| {
        for mode in [ErrorMode::Stop, ErrorMode::Continue] {
            let mut c = Builder::new();
            c.mode(mode);
            let z = c.input_int("z", 0);
            let q = c.arith(BinOp::Div, 10, z);
            c.output("q", q);
            let out = run_trusted(c.finish());
            assert_eq!(out.error, Some(Error::Arith { op: 0 }));

            let mut c = Builder::new();
            c.mode(mode);
            let step = c.input_int("step", 0);
            c.map_range(0, 10, step, |c, _| {
                c.nop();
            });
            let out = run_trusted(c.finish());
            assert_eq!(out.error, Some(Error::Arith { op: 0 }));
        }
    });
}

#[test]
fn function_failures_stop_the_run() {
    each_executor(|| {
        let mut c = Builder::new();
        c.mode(ErrorMode::Continue);
        let buf = c.buffer("buf", 8);
        c.call("find", (buf, buf.prefix(0)));
        let out = run_trusted(c.finish());
        match out.error {
            Some(Error::Function {
                op: 0,
                func,
                message,
            }) => {
                assert_eq!(func, "find");
                assert!(message.contains("empty needle"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn a_closed_slot_is_issued_as_minus_one() {
    each_executor(|| {
        let mut c = Builder::new();
        c.mode(ErrorMode::Continue);
        let p = c.path("/");
        let buf = c.buffer("buf", 64);
        let fd = c.openat(FdRef::Cwd, p, DIR, Mode::empty());
        c.close(fd);
        let n = c.getdents64(fd, buf);
        c.output("n", n);
        let out = run_trusted(c.finish());
        assert_eq!(out.output("n"), Some(-i64::from(libc::EBADF)));
        let last = out.trace.last().unwrap();
        assert_eq!((last.call, last.fd), (Sys::Getdents64, -1));
    });
}

#[test]
fn setup_errors() {
    each_executor(|| {
        // Arena too large for the policy.
        let mut c = Builder::new();
        c.buffer("big", 1 << 20);
        let mut policy = Policy::trusted();
        policy.arena_bytes = 1000;
        let v = cosy_verify::verify(c.finish(), &policy);
        if let Ok(v) = v {
            let out = cosy_exec::run(&v, &RunOptions::default());
            assert!(
                matches!(out.error, Some(Error::Setup(_))),
                "{:?}",
                out.error
            );
        }

        // A root that does not exist.
        let mut c = Builder::new();
        c.nop();
        if let Ok(v) = cosy_verify::verify(c.finish(), &Policy::untrusted("/nonexistent/cosy/root"))
        {
            let out = cosy_exec::run(&v, &RunOptions::default());
            match &out.error {
                Some(Error::Setup(m)) => assert!(m.contains("/nonexistent/cosy/root"), "{m}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(out.stats.ops, 0);
        }

        // A user function the program did not register.
        let mut c = Builder::new();
        c.call("mine", ());
        let mut policy = Policy::trusted();
        policy.functions.insert("mine".into());
        let v = cosy_verify::verify(c.finish(), &policy).unwrap();
        let out = cosy_exec::run(&v, &RunOptions::default());
        match &out.error {
            Some(Error::Setup(m)) => assert!(m.contains("mine"), "{m}"),
            other => panic!("{other:?}"),
        }

        // Every backend runs the empty compound; names parse.
        let v = cosy_verify::verify(Builder::new().finish(), &Policy::trusted()).unwrap();
        for b in cosy_exec::Backend::ALL {
            let opts = RunOptions {
                backend: b.name().parse().unwrap(),
                ..RunOptions::default()
            };
            assert!(cosy_exec::run(&v, &opts).is_ok(), "{b}");
        }
        assert_eq!(cosy_exec::Backend::default(), cosy_exec::Backend::Auto);
        assert!("nope".parse::<cosy_exec::Backend>().is_err());
    });
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// What executors must agree on here: outputs and error.
    type Seen = (Vec<(String, i64)>, Option<Error>);

    fn any_offset() -> impl Strategy<Value = i64> {
        prop_oneof![
            -10i64..300,
            Just(i64::MIN),
            Just(i64::MAX),
            Just(i64::MAX - 3),
            Just(-1i64),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Register-valued ranges, offsets and directory walks over arbitrary slices of a
        /// getdents64 buffer: the run ends in success or a runtime error, never a panic or an
        /// access outside the arena.
        #[test]
        fn runtime_ranges(a in any_offset(), b in any_offset(), off in any_offset()) {
            let dir = tempfile::tempdir().unwrap();
            for i in 0..5 {
                std::fs::write(dir.path().join(format!("file{i}")), b"x").unwrap();
            }
            let mut c = Builder::new();
            c.mode(ErrorMode::Continue);
            let ra = c.input_int("a", a);
            let rb = c.input_int("b", b);
            let ro = c.input_int("off", off);
            let buf = c.buffer("buf", 256);
            let dents = c.buffer("dents", 256);
            let p = c.path(bytes(dir.path()));
            let fd = c.openat(FdRef::Cwd, p, DIR, Mode::empty());
            c.store(Width::U64, buf, ro, ra);
            let v = c.load(Width::U32, buf, rb);
            let n = c.getdents64(fd, dents.slice(ra, rb));
            let count = c.value("count", 0);
            c.map_dirents(dents.slice(ra, n), |c, _| c.accumulate(count, 1));
            c.close(fd);
            c.output("v", v);
            c.output("count", count);
            let compound = c.finish();
            let mut reference: Option<Seen> = None;
            for (name, opts) in executors() {
                let v = cosy_verify::verify(compound.clone(), &Policy::trusted()).unwrap();
                let out = cosy_exec::run(&v, &RunOptions { trace: true, ..opts });
                assert_trace_closes(&out);
                let in_range = |s: i64, e: i64| 0 <= s && s <= e && e <= 256;
                let store_ok = in_range(off, off.saturating_add(8));
                match &out.error {
                    None => {
                        prop_assert!(store_ok && in_range(b, b.saturating_add(4)) && in_range(a, b));
                        // A walk sees at most the directory's five files.
                        prop_assert!(out.output("count").unwrap_or(-1) <= 5);
                    }
                    Some(Error::Range { .. }) => {}
                    Some(other) => prop_assert!(false, "{name}: unexpected {other:?}"),
                }
                // Every executor agrees with the direct one.
                let got = (out.outputs.clone(), out.error.clone());
                match &reference {
                    None => reference = Some(got),
                    Some(r) => prop_assert_eq!(r, &got, "{}", name),
                }
            }
        }
    }
}
