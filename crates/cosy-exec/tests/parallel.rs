//! Maps on several threads (`RunOptions::parallel`): the outcome is the one-thread outcome —
//! outputs, error, stop point, `continue`-mode errors, descriptors — and only maps that merely
//! read run on threads.

use std::path::{Path, PathBuf};

use cosy_exec::{Backend, Outcome, Parallel, RunOptions, run, testing::open_fds};
use cosy_model::flags::STATX_SIZE_OFFSET;
use cosy_model::flags::{AtFlags, DirentType, Mode, OFlags, StatxFlags};
use cosy_model::{BinOp, Builder, Compound, ErrorMode, FdRef, Policy, Width};

const O_DIR: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY);

/// A directory of `n` files, file `i` holding `i * 37 % 500` bytes with a `x` every 7 bytes.
fn tree(n: usize) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..n {
        let body: Vec<u8> = (0..i * 37 % 500)
            .map(|k| if k % 7 == 0 { b'x' } else { b'.' })
            .collect();
        std::fs::write(dir.join(format!("f{i:04}")), body).unwrap();
    }
    (t, dir)
}

fn bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_encoded_bytes().to_vec()
}

fn direct() -> RunOptions {
    RunOptions {
        backend: Backend::Direct,
        ..RunOptions::default()
    }
}

fn threaded(workers: usize) -> RunOptions {
    RunOptions {
        backend: Backend::Direct,
        parallel: Parallel::always(workers),
        ..RunOptions::default()
    }
}

/// The tests of this file count the process's descriptors: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn run_both(c: &Compound, policy: &Policy) -> (Outcome, Outcome) {
    let v = cosy_verify::verify(c.clone(), policy).expect("verifies");
    let before = open_fds();
    let one = run(&v, &direct());
    let many = run(&v, &threaded(3));
    assert_eq!(open_fds(), before, "descriptors left open");
    (one, many)
}

/// What must agree between one thread and several.
fn assert_same(one: &Outcome, many: &Outcome) {
    assert_eq!(one.outputs, many.outputs, "outputs");
    assert_eq!(one.error, many.error, "error");
    assert_eq!(one.errors, many.errors, "continue-mode errors");
    assert_eq!(one.stats.ops, many.stats.ops, "operations (fuel) used");
}

/// `du` of one directory: getdents64, then a map of statx relative to the directory.
fn du(dir: &Path) -> Compound {
    let mut c = Builder::new();
    let path = c.input_path("dir", bytes(dir));
    let ents = c.buffer("ents", 1 << 16);
    let st = c.local_buffer("st", 256);
    let files = c.value("files", 0);
    let total = c.value("bytes", 0);
    let d = c.openat(FdRef::Cwd, path, O_DIR, Mode::empty());
    c.do_while(1000, |c| {
        let n = c.getdents64(d, ents);
        c.if_(n.gt(0), |c| {
            c.map_dirents(ents.prefix(n), |c, e| {
                c.statx(
                    d,
                    e.name,
                    AtFlags::SYMLINK_NOFOLLOW,
                    StatxFlags::BASIC_STATS,
                    st,
                );
                let size = c.load(Width::U64, st, STATX_SIZE_OFFSET as i64);
                c.accumulate(total, size);
                c.accumulate(files, 1);
            });
        });
        n.gt(0)
    });
    c.close(d);
    c.output("files", files);
    c.output("bytes", total);
    c.finish()
}

/// `grep -c x` over `names` in `dir`: open, read, find, close per file.
fn grep(dir: &Path, names: &[String], mode: ErrorMode) -> Compound {
    let mut c = Builder::new();
    c.mode(mode);
    let buf = c.local_buffer("buf", 1024);
    let hits = c.value("hits", 0);
    let read = c.value("read", 0);
    let paths: Vec<Vec<u8>> = names.iter().map(|n| bytes(&dir.join(n))).collect();
    c.map_paths(paths, |c, p| {
        let fd = c.openat(FdRef::Cwd, p, OFlags::RDONLY, Mode::empty());
        let n = c.read(fd, buf);
        c.if_(n.gt(0), |c| {
            c.accumulate(read, n);
            let x = c.path("x");
            let k = c.call("find", (buf.prefix(n), x));
            c.accumulate(hits, k);
        });
        c.close(fd);
    });
    c.output("hits", hits);
    c.output("read", read);
    c.finish()
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("f{i:04}")).collect()
}

#[test]
fn a_statx_map_runs_on_threads_with_the_one_thread_result() {
    let _serial = serial();
    let (_t, dir) = tree(300);
    let (one, many) = run_both(&du(&dir), &Policy::trusted());
    assert!(one.is_ok(), "{one}");
    assert_same(&one, &many);
    assert_eq!(one.output("files"), Some(300));
    let want: u64 = (0..300u64).map(|i| i * 37 % 500).sum();
    assert_eq!(one.output("bytes"), Some(want as i64));
    assert_eq!(one.stats.threaded_maps, 0, "direct runs maps on one thread");
    assert_eq!(many.stats.threaded_maps, 1);
    assert!(many.stats.threads >= 1);
    // Every statx was made once, whichever thread made it.
    assert_eq!(one.stats.by_call.get("statx"), Some(&300));
    assert_eq!(many.stats.by_call.get("statx"), Some(&300));
}

#[test]
fn reads_with_a_built_in_function_agree() {
    let _serial = serial();
    let (_t, dir) = tree(200);
    let (one, many) = run_both(
        &grep(&dir, &names(200), ErrorMode::Stop),
        &Policy::trusted(),
    );
    assert!(one.is_ok(), "{one}");
    assert_same(&one, &many);
    assert_eq!(many.stats.threaded_maps, 1);
    let want: i64 = (0..200).map(|i: i64| (i * 37 % 500 + 6) / 7).sum();
    assert_eq!(one.output("hits"), Some(want));
}

#[test]
fn a_failing_iteration_stops_the_run_where_one_thread_stops() {
    let _serial = serial();
    let (_t, dir) = tree(120);
    for missing in [0usize, 1, 57, 118, 119] {
        let mut list = names(120);
        list[missing] = "absent".into();
        let c = grep(&dir, &list, ErrorMode::Stop);
        let (one, many) = run_both(&c, &Policy::trusted());
        let Some(cosy_exec::Error::Call { errno, .. }) = &one.error else {
            panic!("expected a failed call, got {one}");
        };
        assert_eq!(*errno, libc::ENOENT);
        assert_same(&one, &many);
    }
}

#[test]
fn continue_mode_errors_come_in_item_order() {
    let _serial = serial();
    let (_t, dir) = tree(150);
    let mut list = names(150);
    for i in [3, 40, 41, 99, 149] {
        list[i] = format!("absent{i}");
    }
    let (one, many) = run_both(&grep(&dir, &list, ErrorMode::Continue), &Policy::trusted());
    // Each absent file fails its open, then its read and its close of the empty slot.
    assert_eq!(one.errors.len(), 15, "{one}");
    assert_same(&one, &many);
}

#[test]
fn running_out_of_fuel_inside_the_map_stops_at_the_same_operation() {
    let _serial = serial();
    let (_t, dir) = tree(100);
    let c = grep(&dir, &names(100), ErrorMode::Stop);
    for fuel in [3u64, 50, 301, 555, 640] {
        let policy = Policy {
            fuel,
            ..Policy::trusted()
        };
        let (one, many) = run_both(&c, &policy);
        assert!(
            matches!(one.error, Some(cosy_exec::Error::Fuel { .. })),
            "fuel {fuel}: {one}"
        );
        assert_same(&one, &many);
    }
}

#[test]
fn only_maps_that_merely_read_run_on_threads() {
    let _serial = serial();
    let (t, dir) = tree(40);
    let policy = Policy::trusted();
    let threaded_maps = |c: Compound| {
        let v = cosy_verify::verify(c, &policy).expect("verifies");
        let one = run(&v, &direct());
        let many = run(&v, &threaded(2));
        assert_same(&one, &many);
        many.stats.threaded_maps
    };

    // Writes: a map of pwrite into one file.
    let out = t.path().join("out");
    std::fs::write(&out, []).unwrap();
    let mut c = Builder::new();
    let p = c.input_path("out", bytes(&out));
    let b = c.buffer("b", 8);
    let fd = c.openat(FdRef::Cwd, p, OFlags::WRONLY, Mode::empty());
    c.map_range(0, 40, 1, |c, i| {
        let off = c.arith(BinOp::Mul, i, 8);
        c.pwrite(fd, b, off);
    });
    c.close(fd);
    assert_eq!(threaded_maps(c.finish()), 0, "a map that writes");

    // Opens that create.
    let mut c = Builder::new();
    let names: Vec<Vec<u8>> = (0..40)
        .map(|i| bytes(&t.path().join(format!("new{i}"))))
        .collect();
    c.map_paths(names, |c, p| {
        let fd = c.openat(
            FdRef::Cwd,
            p,
            OFlags::WRONLY | OFlags::CREATE,
            Mode::from_raw_mode(0o644),
        );
        c.close(fd);
    });
    assert_eq!(threaded_maps(c.finish()), 0, "a map that creates files");

    // read(2) of a descriptor opened before the map: its position is shared.
    let mut c = Builder::new();
    let p = c.input_path("f", bytes(&dir.join("f0039")));
    let b = c.local_buffer("b", 4);
    let total = c.value("total", 0);
    let fd = c.openat(FdRef::Cwd, p, OFlags::RDONLY, Mode::empty());
    c.map_range(0, 40, 1, |c, _| {
        let n = c.read(fd, b);
        c.accumulate(total, n);
    });
    c.close(fd);
    c.output("total", total);
    assert_eq!(
        threaded_maps(c.finish()),
        0,
        "a map reading a shared position"
    );

    // The same through pread: no shared position, so it qualifies.
    let mut c = Builder::new();
    let p = c.input_path("f", bytes(&dir.join("f0039")));
    let b = c.local_buffer("b", 4);
    let total = c.value("total", 0);
    let fd = c.openat(FdRef::Cwd, p, OFlags::RDONLY, Mode::empty());
    c.map_range(0, 40, 1, |c, i| {
        let off = c.arith(BinOp::Mul, i, 4);
        let n = c.pread(fd, b, off);
        c.accumulate(total, n);
    });
    c.close(fd);
    c.output("total", total);
    assert_eq!(threaded_maps(c.finish()), 1, "a map of pread");
}

#[test]
fn a_map_calling_a_user_function_stays_on_one_thread() {
    let _serial = serial();
    let mut c = Builder::new();
    let total = c.value("total", 0);
    c.map_range(0, 100, 1, |c, i| {
        c.getppid();
        let v = c.call("twice", i);
        c.accumulate(total, v);
    });
    c.output("total", total);
    let mut opts = threaded(2);
    opts.functions.register("twice", |a| Ok(a.int(0)? * 2));
    let policy = Policy {
        functions: ["twice".to_string()].into(),
        ..Policy::trusted()
    };
    let v = cosy_verify::verify(c.finish(), &policy).expect("verifies");
    let out = run(&v, &opts);
    assert_eq!(out.output("total"), Some(9900), "{out}");
    assert_eq!(out.stats.threaded_maps, 0);
}

#[test]
fn small_maps_stay_on_one_thread_by_default() {
    let _serial = serial();
    let (_t, dir) = tree(10);
    let v = cosy_verify::verify(du(&dir), &Policy::trusted()).expect("verifies");
    let out = run(
        &v,
        &RunOptions {
            backend: Backend::Direct,
            parallel: Parallel {
                workers: 2,
                ..Parallel::default()
            },
            ..RunOptions::default()
        },
    );
    assert!(out.is_ok(), "{out}");
    assert_eq!(
        out.stats.threaded_maps, 0,
        "10 statx are not worth a thread"
    );
}

#[test]
fn under_a_root_each_thread_stays_confined() {
    let _serial = serial();
    let (t, dir) = tree(60);
    let mut list = names(60);
    list[30] = "../../etc/passwd".into();
    let policy = Policy {
        root: Some(dir.clone()),
        ..Policy::trusted()
    };
    let _ = t;
    let mut c = Builder::new();
    let buf = c.local_buffer("buf", 64);
    let read = c.value("read", 0);
    c.map_paths(list.iter().map(String::as_bytes), |c, p| {
        let fd = c.openat(FdRef::Cwd, p, OFlags::RDONLY, Mode::empty());
        let n = c.read(fd, buf);
        c.accumulate(read, n);
        c.close(fd);
    });
    c.output("read", read);
    let (one, many) = run_both(&c.finish(), &policy);
    assert!(
        matches!(
            one.error,
            Some(cosy_exec::Error::Call {
                errno: libc::EXDEV,
                ..
            })
        ),
        "{one}"
    );
    assert_same(&one, &many);
}

/// `du` of a tree of directories: a map over the root's entries whose body maps over each
/// subdirectory's entries.
fn du_tree(root: &Path) -> Compound {
    let mut c = Builder::new();
    let path = c.input_path("root", bytes(root));
    let rents = c.buffer("rents", 1 << 14);
    let sents = c.local_buffer("sents", 1 << 14);
    let st = c.local_buffer("st", 256);
    let st2 = c.local_buffer("st2", 256);
    let files = c.value("files", 0);
    let total = c.value("bytes", 0);
    let r = c.openat(FdRef::Cwd, path, O_DIR, Mode::empty());
    let n = c.getdents64(r, rents);
    c.map_dirents(rents.prefix(n), |c, e| {
        c.statx(
            r,
            e.name,
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::BASIC_STATS,
            st,
        );
        c.if_(e.kind.eq(DirentType::Dir), |c| {
            let d = c.openat(r, e.name, O_DIR, Mode::empty());
            let m = c.getdents64(d, sents);
            c.map_dirents(sents.prefix(m), |c, f| {
                c.statx(
                    d,
                    f.name,
                    AtFlags::SYMLINK_NOFOLLOW,
                    StatxFlags::BASIC_STATS,
                    st2,
                );
                let size = c.load(Width::U64, st2, STATX_SIZE_OFFSET as i64);
                c.accumulate(total, size);
                c.accumulate(files, 1);
            });
            c.close(d);
        });
    });
    c.close(r);
    c.output("files", files);
    c.output("bytes", total);
    c.finish()
}

#[test]
fn a_map_over_directories_runs_on_threads_with_its_nested_maps() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let mut want = (0i64, 0i64);
    for d in 0..6 {
        let dir = t.path().join(format!("d{d}"));
        std::fs::create_dir(&dir).unwrap();
        for i in 0..40 {
            let len = (d * 40 + i) % 333;
            std::fs::write(dir.join(format!("f{i}")), vec![b'y'; len]).unwrap();
            want.0 += 1;
            want.1 += len as i64;
        }
    }
    let c = du_tree(t.path());
    let (one, many) = run_both(&c, &Policy::trusted());
    assert!(one.is_ok(), "{one}");
    assert_same(&one, &many);
    assert_eq!(
        (one.output("files"), one.output("bytes")),
        (Some(want.0), Some(want.1))
    );
    // The outer map runs on threads; the maps inside it run on the thread of their iteration.
    assert_eq!(many.stats.threaded_maps, 1);
    for fuel in [40u64, 200, 333, 700] {
        let policy = Policy {
            fuel,
            ..Policy::trusted()
        };
        let (one, many) = run_both(&c, &policy);
        assert!(
            matches!(one.error, Some(cosy_exec::Error::Fuel { .. })),
            "fuel {fuel}: {one}"
        );
        assert_same(&one, &many);
    }
}
