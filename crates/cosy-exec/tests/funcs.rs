//! User functions: registration, operands, writable output ranges.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use cosy_exec::{Error, FnArg, FnArgs, Functions, RunOptions};
use cosy_model::flags::Mode;
use cosy_model::{Builder, FdRef, Policy, Width};

fn policy(names: &[&str]) -> Policy {
    let mut p = Policy::trusted();
    for n in names {
        p.functions.insert((*n).to_string());
    }
    p
}

#[test]
fn functions_get_their_operands_in_order() {
    each_executor(|| {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let s = seen.clone();
        let mut functions = Functions::new();
        functions.register("describe", move |a: &FnArgs| {
            let parts: Vec<String> = a
                .args()
                .iter()
                .map(|x| match x {
                    FnArg::Int(v) => v.to_string(),
                    FnArg::Bytes(b) => format!("{:?}", String::from_utf8_lossy(b)),
                })
                .collect();
            s.lock().unwrap().push(parts.join(" "));
            Ok(a.ints().iter().sum::<i64>() + a.bufs().iter().map(|b| b.len() as i64).sum::<i64>())
        });
        let mut c = Builder::new();
        let x = c.value("x", 40);
        let buf = c.buffer("buf", 8);
        c.store(Width::U32, buf, 0, 0x6f6c_6568i64); // "helo"
        c.store(Width::U32, buf, 4, i64::from(u32::from_le_bytes(*b"word")));
        let r = c.call("describe", (x, buf.prefix(4), buf.slice(4, 8), 2i64));
        c.output("r", r);
        let out = run_with(
            c.finish(),
            &policy(&["describe"]),
            RunOptions {
                functions,
                ..RunOptions::default()
            },
        );
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(*seen.lock().unwrap(), ["40 \"helo\" \"word\" 2"]);
        assert_eq!(out.output("r"), Some(40 + 2 + 4 + 4));
    });
}

#[test]
fn a_mut_function_fills_a_buffer_that_is_then_written() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("generated");
        let mut functions = Functions::new();
        // fill(seed, out): writes bytes seed, seed+1, ... into the output range.
        functions.register_mut("fill", |a: &mut FnArgs| {
            let seed = a.int(0)?;
            let out = a.out().ok_or("no output range")?;
            for (i, b) in out.iter_mut().enumerate() {
                *b = (seed as usize + i) as u8;
            }
            Ok(out.len() as i64)
        });
        let mut c = Builder::new();
        let p = c.path(bytes(&path));
        let buf = c.local_buffer("buf", 1000);
        let fd = c.openat(FdRef::Cwd, p, CREATE, Mode::from_raw_mode(0o644));
        let total = c.value("total", 0);
        c.map_range(0, 5, 1, |c, i| {
            let n = c.call("fill", (i, buf));
            let w = c.write(fd, buf.prefix(n));
            c.accumulate(total, w);
        });
        c.close(fd);
        c.output("total", total);
        let out = run_with(
            c.finish(),
            &policy(&["fill"]),
            RunOptions {
                functions,
                ..RunOptions::default()
            },
        );
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(out.output("total"), Some(5000));
        let expect: Vec<u8> = (0..5usize)
            .flat_map(|s| (0..1000usize).map(move |i| (s + i) as u8))
            .collect();
        assert_eq!(std::fs::read(&path).unwrap(), expect);
    });
}

#[test]
fn a_mut_function_cannot_alias_its_inputs() {
    each_executor(|| {
        let mut functions = Functions::new();
        functions.register_mut("copy", |a: &mut FnArgs| {
            let src = a.bytes(0)?;
            let out = a.out().ok_or("no out")?;
            let n = src.len().min(out.len());
            out[..n].copy_from_slice(&src[..n]);
            Ok(n as i64)
        });
        let opts = RunOptions {
            functions,
            ..RunOptions::default()
        };
        // Disjoint halves of one buffer: fine.
        let mut c = Builder::new();
        let buf = c.buffer("buf", 16);
        c.store(Width::U64, buf, 0, 0x0102_0304_0506_0708i64);
        c.call("copy", (buf.slice(0, 8), buf.slice(8, 16)));
        let hi = c.load(Width::U64, buf, 8);
        c.output("hi", hi);
        let out = run_with(c.finish(), &policy(&["copy"]), opts.clone());
        assert_eq!(out.output("hi"), Some(0x0102_0304_0506_0708));
        // Overlapping: the run stops.
        let mut c = Builder::new();
        let buf = c.buffer("buf", 16);
        c.call("copy", (buf.slice(0, 10), buf.slice(8, 16)));
        let out = run_with(c.finish(), &policy(&["copy"]), opts);
        assert!(
            matches!(out.error, Some(Error::Function { op: 0, .. })),
            "{:?}",
            out.error
        );
    });
}

#[test]
fn failing_and_panicking_functions_stop_the_run() {
    each_executor(|| {
        let mut functions = Functions::new();
        functions.register("fails", |a: &FnArgs| Err(format!("refused {}", a.int(0)?)));
        functions.register("panics", |_: &FnArgs| panic!("deliberate"));
        let opts = RunOptions {
            functions,
            ..RunOptions::default()
        };
        for (name, expect) in [("fails", "refused 7"), ("panics", "panicked: deliberate")] {
            let mut c = Builder::new();
            let k = c.value("k", 0);
            c.do_while(100, |c| {
                c.accumulate(k, 1);
                k.lt(3)
            });
            c.call(name, 7i64);
            c.output("k", k);
            let out = run_with(c.finish(), &policy(&["fails", "panics"]), opts.clone());
            assert_eq!(
                out.error,
                Some(Error::Function {
                    op: 3,
                    func: name.into(),
                    message: expect.into()
                })
            );
            assert_eq!(out.output("k"), Some(3));
        }
    });
}

#[test]
fn builtins_through_a_compound() {
    each_executor(|| {
        let mut c = Builder::new();
        let buf = c.buffer("buf", 16);
        c.store(Width::U64, buf, 0, i64::from_le_bytes(*b"a\nb\nab\na"));
        let lines = c.call("count_lines", buf.prefix(8));
        c.store(Width::U8, buf, 8, i64::from(b'a'));
        let found = c.call("find", (buf.prefix(8), buf.slice(8, 9)));
        let sum = c.call("checksum", buf.prefix(8));
        c.output("lines", lines);
        c.output("found", found);
        c.output("sum", sum);
        let out = run_trusted(c.finish());
        assert_eq!(out.output("lines"), Some(3));
        assert_eq!(out.output("found"), Some(3));
        assert_eq!(
            out.output("sum"),
            Some(cosy_exec::funcs::fnv1a64(b"a\nb\nab\na") as i64)
        );
    });
}
