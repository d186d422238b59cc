//! The typed builder run end to end through the `cosy` crate: loops, comparisons, function
//! operands and typed flags give the results the same program computes in Rust.

use std::os::unix::fs::PermissionsExt;

use cosy::flags::{AtFlags, DirentType, Mode, OFlags, Whence};
use cosy::{
    Backend, BinOp, Builder, Compound, Error, FdRef, FnArg, FnArgs, Functions, Outputs, Policy,
    RunError, RunOptions,
};

/// The backends to compare: `ring` where io_uring works here (it says why it skips).
fn backends() -> Vec<Backend> {
    if cosy_uring::skip_without_uring("the ring backend") {
        vec![Backend::Direct]
    } else {
        vec![Backend::Direct, Backend::Ring]
    }
}

fn run_with(c: Compound, functions: Functions) -> Vec<(Backend, Result<Outputs, RunError>)> {
    let mut policy = Policy::trusted();
    policy
        .functions
        .extend(functions.registered().map(String::from));
    let v = cosy::verify(c, &policy).expect("verifies");
    backends()
        .into_iter()
        .map(|backend| {
            let opts = RunOptions {
                functions: functions.clone(),
                backend,
                ..RunOptions::default()
            };
            (backend, cosy::run(&v, &opts))
        })
        .collect()
}

fn outputs(c: Compound) -> Vec<(Backend, Outputs)> {
    run_with(c, Functions::new())
        .into_iter()
        .map(|(b, r)| (b, r.unwrap_or_else(|e| panic!("{b}: {e}"))))
        .collect()
}

#[test]
fn while_runs_its_body_while_the_condition_holds_and_not_at_all_when_it_does_not() {
    for start in [0i64, 3, 7] {
        let mut c = Builder::new();
        let i = c.value("i", start);
        let body_runs = c.value("runs", 0);
        c.while_(
            100,
            |_| i.lt(5),
            |c| {
                c.accumulate(i, 1);
                c.accumulate(body_runs, 1);
            },
        );
        c.output("runs", body_runs);
        let expected = (start..5).count() as i64;
        for (b, out) in outputs(c.finish()) {
            assert_eq!(out.get("runs"), Some(expected), "{b} from {start}");
        }
    }
}

#[test]
fn loop_with_continue_and_break_sums_the_odd_numbers() {
    let mut c = Builder::new();
    let i = c.value("i", 0);
    let sum = c.value("sum", 0);
    c.loop_(100, |c, l| {
        c.accumulate(i, 1);
        c.break_if(l, i.gt(9));
        let low_bit = c.arith(BinOp::And, i, 1);
        c.continue_if(l, low_bit.eq(0));
        c.accumulate(sum, i);
    });
    c.output("sum", sum);
    c.output("i", i);
    let expected: i64 = (1..=9).filter(|n| n % 2 == 1).sum();
    for (b, out) in outputs(c.finish()) {
        assert_eq!(out.get("sum"), Some(expected), "{b}");
        assert_eq!(out.get("i"), Some(10), "{b}");
    }
}

#[test]
fn a_loop_that_never_breaks_stops_at_its_bound() {
    let mut c = Builder::new();
    let i = c.value("i", 0);
    c.loop_(3, |c, _| c.accumulate(i, 1));
    c.output("i", i);
    for (b, r) in run_with(c.finish(), Functions::new()) {
        let e = r.expect_err("the bound stops it");
        assert!(matches!(e.error, Error::LoopBound { .. }), "{b}: {e}");
        // The body ran once, then once more per way back taken (3).
        assert_eq!(e.partial, vec![("i".to_string(), 4)], "{b}");
    }
}

/// A comparison's name and what it computes in Rust.
type Case = (&'static str, fn(i64, i64) -> bool);

#[test]
fn if_else_takes_one_branch_by_each_comparison() {
    let cases: [Case; 6] = [
        ("eq", |a, b| a == b),
        ("ne", |a, b| a != b),
        ("lt", |a, b| a < b),
        ("le", |a, b| a <= b),
        ("gt", |a, b| a > b),
        ("ge", |a, b| a >= b),
    ];
    for (name, holds) in cases {
        for (a, b) in [(1i64, 2i64), (2, 2), (3, 2), (-1, 0)] {
            let mut c = Builder::new();
            let x = c.value("x", a);
            let taken = c.value("taken", -1);
            let cmp = match name {
                "eq" => x.eq(b),
                "ne" => x.ne(b),
                "lt" => x.lt(b),
                "le" => x.le(b),
                "gt" => x.gt(b),
                _ => x.ge(b),
            };
            c.if_else(cmp, |c| c.set(taken, 1), |c| c.set(taken, 0));
            c.output("taken", taken);
            let expected = i64::from(holds(a, b));
            for (bk, out) in outputs(c.finish()) {
                assert_eq!(out.get("taken"), Some(expected), "{bk}: {a} {name} {b}");
            }
        }
    }
}

#[test]
fn function_operands_arrive_in_order_with_their_kinds() {
    let mut functions = Functions::new();
    functions.register("describe", |a: &FnArgs| {
        // int, bytes, int, bytes -> a number that depends on each and on their order
        let x = a.int(0)?;
        let s = a.bytes(1)?;
        let y = a.int(2)?;
        let w = a.bytes(3)?;
        Ok(x * 1_000_000 + s.len() as i64 * 10_000 + y * 100 + w.len() as i64)
    });
    let mut c = Builder::new();
    let buf = c.buffer("buf", 64);
    let word = c.data("abc");
    let x = c.value("x", 7);
    let r = c.call("describe", (x, buf.prefix(12), 5i64, word));
    let whole = c.call("checksum", buf);
    c.output("r", r);
    c.output("whole", whole);
    for (b, res) in run_with(c.finish(), functions.clone()) {
        let out = res.unwrap_or_else(|e| panic!("{b}: {e}"));
        assert_eq!(
            out.get("r"),
            Some(7 * 1_000_000 + 12 * 10_000 + 5 * 100 + 3)
        );
        // checksum of 64 zero bytes (FNV-1a 64), computed here.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in [0u8; 64] {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        assert_eq!(out.get("whole"), Some(h as i64), "{b}");
    }
}

#[test]
fn buffer_length_is_its_declared_size() {
    let mut c = Builder::new();
    let buf = c.buffer("buf", 300);
    let local = c.local_buffer("l", 17);
    assert_eq!(buf.len(), 300);
    assert_eq!(local.len(), 17);
    assert!(!buf.is_empty());
    let n = c.value("n", buf.len());
    c.output("n", n);
    let compound = c.finish();
    assert_eq!(compound.buffers[buf.id().index()].size, 300);
    for (b, out) in outputs(compound) {
        assert_eq!(out.get("n"), Some(300), "{b}");
    }
}

#[test]
fn typed_flags_create_with_the_mode_and_seek_from_the_end() {
    let dir = tempfile::tempdir().unwrap();
    for backend in backends() {
        let path = dir.path().join(format!("f-{backend}"));
        let mut c = Builder::new();
        let p = c.path(path.as_os_str().as_encoded_bytes());
        let buf = c.buffer("buf", 100);
        let fd = c.openat(
            FdRef::Cwd,
            p,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        );
        c.write(fd, buf);
        c.write(fd, buf.prefix(23));
        let end = c.lseek(fd, 0, Whence::End);
        let back = c.lseek(fd, -3, Whence::Cur);
        c.close(fd);
        c.output("end", end);
        c.output("back", back);
        let v = cosy::verify(c.finish(), &Policy::trusted()).unwrap();
        let opts = RunOptions {
            backend,
            ..RunOptions::default()
        };
        let out = cosy::run(&v, &opts).unwrap_or_else(|e| panic!("{backend}: {e}"));
        assert_eq!(out.get("end"), Some(123), "{backend}");
        assert_eq!(out.get("back"), Some(120), "{backend}");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 123);
        // 0o600 survives any umask.
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{backend}");
    }
}

#[test]
fn dirent_types_and_at_flags_tell_directories_from_files() {
    let dir = tempfile::tempdir().unwrap();
    for d in ["d1", "d2", "d3"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    for f in ["f1", "f2"] {
        std::fs::write(dir.path().join(f), b"x").unwrap();
    }
    let mut c = Builder::new();
    let p = c.path(dir.path().as_os_str().as_encoded_bytes());
    let ents = c.buffer("ents", 4096);
    let dirs = c.value("dirs", 0);
    let files = c.value("files", 0);
    let removed = c.value("removed", 0);
    let d = c.openat(
        FdRef::Cwd,
        p,
        OFlags::RDONLY | OFlags::DIRECTORY,
        Mode::empty(),
    );
    let n = c.getdents64(d, ents);
    c.map_dirents(ents.prefix(n), |c, e| {
        c.if_(e.kind.eq(DirentType::Dir), |c| {
            c.accumulate(dirs, 1);
            let r = c.unlinkat(d, e.name, AtFlags::REMOVEDIR);
            c.if_(r.eq(0), |c| c.accumulate(removed, 1));
        });
        c.if_(e.kind.eq(DirentType::Reg), |c| c.accumulate(files, 1));
    });
    c.close(d);
    c.output("dirs", dirs);
    c.output("files", files);
    c.output("removed", removed);
    let v = cosy::verify(c.finish(), &Policy::trusted()).unwrap();
    let out = cosy::run(
        &v,
        &RunOptions {
            backend: Backend::Direct,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(out.get("dirs"), Some(3));
    assert_eq!(out.get("files"), Some(2));
    assert_eq!(out.get("removed"), Some(3));
    let left = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(left, 2, "the directories are gone, the files stay");
}

#[test]
fn a_user_function_error_names_the_function() {
    let mut functions = Functions::new();
    functions.register("refuse", |a: &FnArgs| match a.args() {
        [FnArg::Int(_)] => Err("no".into()),
        _ => Ok(0),
    });
    let mut c = Builder::new();
    let x = c.value("x", 1);
    c.call("refuse", x);
    for (b, r) in run_with(c.finish(), functions.clone()) {
        let e = r.expect_err("the function fails");
        assert!(
            matches!(&e.error, Error::Function { func, .. } if func == "refuse"),
            "{b}: {e}"
        );
    }
}
