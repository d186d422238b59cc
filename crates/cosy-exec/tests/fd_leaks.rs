//! No descriptor outlives a run, whatever way it ends. The only test of this binary, so the
//! count of open descriptors of the process is not disturbed by other tests running at once.

mod common;

use std::time::Duration;

use common::*;
use cosy_exec::{Error, FnArgs, Functions, RunOptions, testing::open_fds};
use cosy_model::flags::{AtFlags, Mode, PipeFlags, RenameFlags, StatxFlags};
use cosy_model::{Arg, Builder, Compound, ErrorMode, FdRef, Policy};

fn check(name: &str, c: Compound, policy: &Policy, opts: RunOptions) -> cosy_exec::Outcome {
    // Rings kept for later runs hold a descriptor: drop them around the count.
    cosy_exec::drop_cached_rings();
    let before = open_fds();
    let out = run_with(c, policy, opts);
    cosy_exec::drop_cached_rings();
    let after = open_fds();
    assert_eq!(before, after, "{name}: descriptors leaked\n{}", show(&out));
    out
}

#[test]
fn no_run_leaves_a_descriptor_open() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = d.join("src");
        std::fs::write(&src, text(50_000, 1)).unwrap();
        let sub = d.join("tree");
        std::fs::create_dir(&sub).unwrap();
        for i in 0..30 {
            std::fs::write(sub.join(format!("f{i}")), text(i * 100, i as u64)).unwrap();
        }
        let trusted = Policy::trusted();
        let none = RunOptions::default;
        let s = bytes(&src);
        let dst = |n: &str| bytes(&d.join(n));

        let ok = [
            ("thesis", thesis_loop(&s, 4096)),
            ("du", du(&bytes(&sub))),
            ("grep", grep_count(&bytes(&sub), b"cosy")),
            ("copy", copy_rw(&s, &dst("a"), 4096)),
            ("copy_file_range", copy_cfr(&s, &dst("b"))),
            ("splice", copy_splice(&s, &dst("c"))),
            ("sendfile", copy_sendfile(&s, &dst("d"))),
        ];
        for (name, c) in ok {
            let out = check(name, c, &trusted, none());
            assert!(out.is_ok(), "{name}: {}", show(&out));
        }

        // Stop and continue modes after a failure.
        let out = check("stop", open_missing(&dst("missing")), &trusted, none());
        assert!(out.error.is_some());
        let mut c = copy_rw(&s, &dst("e"), 4096);
        c.data[0] = dst("missing");
        c.mode = ErrorMode::Continue;
        let out = check("continue", c, &trusted, none());
        assert!(!out.errors.is_empty());

        // Slots reassigned and left open are closed by the executor.
        let out = check("reopen", reopen_and_leave_open(&s, 5), &trusted, none());
        assert_eq!(out.stats.by_call["close"], 5);

        // Fds open when fuel, time, a loop bound, a range or a function stop the run.
        let open_then = |body: &dyn Fn(&mut Builder)| {
            let mut c = Builder::new();
            let p = c.path(&s);
            c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
            c.pipe2(PipeFlags::empty());
            body(&mut c);
            c.finish()
        };
        let forever = |c: &mut Builder| c.do_while(u32::MAX, |_| cosy_model::Value::Imm(0).eq(0));
        let mut fuel = trusted.clone();
        fuel.fuel = 1000;
        let out = check("fuel", open_then(&forever), &fuel, none());
        assert!(matches!(out.error, Some(Error::Fuel { .. })));
        let mut time = trusted.clone();
        time.time = Duration::from_millis(50);
        let out = check("time", open_then(&forever), &time, none());
        assert!(matches!(out.error, Some(Error::Time { .. })));
        let out = check(
            "loop bound",
            open_then(&|c| c.do_while(3, |_| cosy_model::Value::Imm(0).eq(0))),
            &trusted,
            none(),
        );
        assert!(matches!(out.error, Some(Error::LoopBound { .. })));
        let out = check(
            "range",
            open_then(&|c| {
                let len = c.input_int("len", 99);
                let b = c.buffer("b", 10);
                c.getdents64(FdRef::Std(0), b.prefix(len));
            }),
            &trusted,
            none(),
        );
        assert!(matches!(out.error, Some(Error::Range { .. })));
        let mut functions = Functions::new();
        functions.register("boom", |_: &FnArgs| panic!("boom"));
        let mut p = trusted.clone();
        p.functions.insert("boom".into());
        let out = check(
            "panicking function",
            open_then(&|c| {
                c.call("boom", ());
            }),
            &p,
            RunOptions {
                functions,
                ..none()
            },
        );
        assert!(matches!(out.error, Some(Error::Function { .. })));

        // Map iterations that leave their fds open, in a stopped map too.
        let mut c = Builder::new();
        let buf = c.local_buffer("b", 16);
        let files: Vec<Vec<u8>> = (0..10).map(|i| bytes(&sub.join(format!("f{i}")))).collect();
        c.map_paths(files.clone(), |c, p| {
            let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
            c.read(fd, buf);
            let (_r, _w) = c.pipe2(PipeFlags::empty());
        });
        let out = check("map", c.finish(), &trusted, none());
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(out.stats.by_call["close"], 30);
        let mut c = Builder::new();
        let mut list = files.clone();
        list.insert(5, dst("missing"));
        c.map_paths(list, |c, p| {
            c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
            c.pipe2(PipeFlags::empty());
        });
        let out = check("stopped map", c.finish(), &trusted, none());
        assert!(out.error.is_some());

        // Under a root: helper descriptors (O_PATH opens of parents and statx targets) too.
        let root = Policy::untrusted(d);
        let mut c = Builder::new();
        let st = c.buffer("st", 256);
        for p in ["tree/f1", "src", "../x", "tree/../src"] {
            let p = c.path(p);
            c.statx(FdRef::Cwd, p, AtFlags::empty(), StatxFlags::BASIC_STATS, st);
        }
        let m = c.path("tree/newdir");
        c.mkdirat(FdRef::Cwd, m, Mode::from_raw_mode(0o755));
        let (a, b) = (c.path("tree/f2"), c.path("tree/newdir/f2"));
        c.renameat2(FdRef::Cwd, a, FdRef::Cwd, b, RenameFlags::empty());
        c.unlinkat(FdRef::Cwd, b, AtFlags::empty());
        c.unlinkat(FdRef::Cwd, m, AtFlags::REMOVEDIR);
        let mut compound = c.finish();
        compound.mode = ErrorMode::Continue;
        let out = check("root helpers", compound, &root, none());
        assert_eq!(out.errors.len(), 1, "{}", show(&out));
        assert!(out.stats.by_call["close"] >= 5);

        // And the grep over the tree under the root, with calls through a user function.
        let mut c = grep_count(b"tree", b"cosy");
        c.ops.push(cosy_model::Op::Call {
            dst: None,
            func: "noop".into(),
            args: vec![Arg::Value(1.into())],
        });
        let mut functions = Functions::new();
        functions.register("noop", |_: &FnArgs| Ok(0));
        let mut p = root.clone();
        p.functions.insert("noop".into());
        let out = check(
            "grep under root",
            c,
            &p,
            RunOptions {
                functions,
                ..none()
            },
        );
        assert!(out.is_ok(), "{}", show(&out));
    });
}
