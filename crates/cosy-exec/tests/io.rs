//! File I/O through compounds, checked against std::fs.

mod common;

use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use common::*;
use cosy_exec::{FnArgs, Functions, RunOptions, funcs::fnv1a64};
use cosy_model::flags::{AtFlags, Mode, PipeFlags, RenameFlags, StatxFlags, Whence};
use cosy_model::{Arg, BinOp, Builder, FdRef, Policy, Sys, Width, flags};

#[test]
fn read_gives_the_files_bytes() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let content = text(3000, 1);
        std::fs::write(&path, &content).unwrap();

        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut functions = Functions::new();
        let s = seen.clone();
        functions.register("capture", move |a: &FnArgs| {
            s.lock().unwrap().extend_from_slice(a.bytes(0)?);
            Ok(0)
        });

        let mut c = Builder::new();
        let p = c.path(bytes(&path));
        let buf = c.buffer("buf", 4096);
        let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
        let n = c.read(fd, buf);
        let sum = c.call("checksum", buf.prefix(n));
        c.call("capture", buf.prefix(n));
        c.close(fd);
        c.output("n", n);
        c.output("sum", sum);
        let mut policy = Policy::trusted();
        policy.functions.insert("capture".into());
        let out = run_with(
            c.finish(),
            &policy,
            RunOptions {
                functions,
                ..RunOptions::default()
            },
        );
        assert!(out.is_ok(), "{}", show(&out));
        let expect = std::fs::read(&path).unwrap();
        assert_eq!(*seen.lock().unwrap(), expect);
        assert_eq!(out.output("n"), Some(expect.len() as i64));
        assert_eq!(out.output("sum"), Some(fnv1a64(&expect) as i64));
        assert_eq!(out.stats.bytes_read, expect.len() as u64);
        assert_eq!(out.stats.by_call.get("openat"), Some(&1));
        assert_eq!(out.stats.by_call.get("read"), Some(&1));
        assert_eq!(out.stats.by_call.get("close"), Some(&1));
        assert_eq!(calls(&out), 3);
        assert_eq!(out.stats.ops, 5);
    });
}

#[test]
fn thesis_loop_reads_the_whole_file() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        for (i, size) in [0usize, 1, 4095, 4096, 4097, 100_000]
            .into_iter()
            .enumerate()
        {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, text(size, i as u64)).unwrap();
            let out = run_trusted(thesis_loop(&bytes(&path), 4096));
            assert!(out.is_ok(), "{}", show(&out));
            assert_eq!(out.output("total"), Some(size as i64), "size {size}");
            // One read per full buffer, plus the short (or empty) last one.
            assert_eq!(
                out.stats.by_call.get("read"),
                Some(&(size as u64 / 4096 + 1))
            );
        }
    });
}

fn make_tree(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for i in 0..100 {
        let content = text(i * 37 + 5, i as u64);
        total += content.len() as u64;
        std::fs::write(
            dir.join(format!("file-{i:03}-with-a-longish-name")),
            content,
        )
        .unwrap();
    }
    std::fs::create_dir(dir.join("subdir")).unwrap();
    std::fs::write(dir.join("subdir/ignored"), b"not counted").unwrap();
    std::os::unix::fs::symlink("file-000-with-a-longish-name", dir.join("link")).unwrap();
    total
}

#[test]
fn du_over_dirents_and_statx_matches_metadata() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        make_tree(dir.path());
        let mut expect = 0u64;
        let mut files = 0;
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let m = std::fs::symlink_metadata(e.unwrap().path()).unwrap();
            if m.is_file() {
                expect += m.size();
                files += 1;
            }
        }
        let out = run_trusted(du(&bytes(dir.path())));
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(out.output("total"), Some(expect as i64));
        assert_eq!(out.output("files"), Some(files));
        // 100 records of 48 bytes need two 4096-byte getdents64 buffers, and a third call for 0.
        assert!(out.stats.by_call["getdents64"] >= 3, "{}", out.stats);
        assert_eq!(out.stats.by_call["statx"], files as u64);
    });
}

#[test]
fn word_count_over_dirents_matches_rust() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        make_tree(dir.path());
        let mut expect = 0i64;
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                let s = String::from_utf8(std::fs::read(e.path()).unwrap()).unwrap();
                expect += s.matches("cosy").count() as i64;
            }
        }
        assert!(expect > 0);
        let out = run_trusted(grep_count(&bytes(dir.path()), b"cosy"));
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(out.output("count"), Some(expect));
    });
}

#[test]
fn copies_give_identical_bytes() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let content = text(200_003, 7);
        std::fs::write(&src, &content).unwrap();
        type Make = fn(&[u8], &[u8]) -> cosy_model::Compound;
        let ways: [(&str, Make); 4] = [
            ("read/write", |s, d| copy_rw(s, d, 8192)),
            ("copy_file_range", copy_cfr),
            ("splice", copy_splice),
            ("sendfile", copy_sendfile),
        ];
        for (name, make) in ways {
            let dst = dir.path().join(format!("dst-{}", name.replace('/', "-")));
            let out = run_trusted(make(&bytes(&src), &bytes(&dst)));
            assert!(out.is_ok(), "{name}: {}", show(&out));
            assert_eq!(out.output("copied"), Some(content.len() as i64), "{name}");
            assert!(
                std::fs::read(&dst).unwrap() == content,
                "{name}: bytes differ"
            );
            let key = match name {
                "read/write" => "write",
                other => other,
            };
            assert!(out.stats.by_call.contains_key(key), "{name}: {}", out.stats);
            assert!(out.stats.bytes_written >= content.len() as u64, "{name}");
        }
    });
}

#[test]
fn copy_file_range_with_explicit_offsets() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        std::fs::write(&src, b"0123456789abcdef").unwrap();
        let mut c = Builder::new();
        let s = c.path(bytes(&src));
        let d = c.path(bytes(&dst));
        let i = c.openat(FdRef::Cwd, s, RDONLY, Mode::empty());
        let o = c.openat(FdRef::Cwd, d, CREATE, Mode::from_raw_mode(0o644));
        let n = c.copy_file_range(i, 10, o, 2, 4);
        c.close(i);
        c.close(o);
        c.output("n", n);
        let out = run_trusted(c.finish());
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(out.output("n"), Some(4));
        assert_eq!(std::fs::read(&dst).unwrap(), b"\0\0abcd");
    });
}

#[test]
fn pwrite_pread_lseek_ftruncate_fsync() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut c = Builder::new();
        let p = c.path(bytes(&path));
        let out_buf = c.buffer("out", 16);
        let in_buf = c.buffer("in", 16);
        c.store(Width::U64, out_buf, 0, 0x0807_0605_0403_0201i64);
        c.store(Width::U64, out_buf, 8, 0x100f_0e0d_0c0b_0a09i64);
        let fd = c.openat(FdRef::Cwd, p, RDWR_CREATE, Mode::from_raw_mode(0o600));
        let w = c.pwrite(fd, out_buf, 100);
        let end = c.lseek(fd, 0, Whence::End);
        let r = c.pread(fd, in_buf.prefix(8), 104);
        let got = c.load(Width::U64, in_buf, 0);
        let pos = c.lseek(fd, 10, Whence::Set);
        let w2 = c.write(fd, out_buf.slice(0, 2));
        let s = c.fsync(fd);
        let ds = c.fdatasync(fd);
        let t = c.ftruncate(fd, 112);
        c.close(fd);
        for (name, reg) in [
            ("w", w),
            ("end", end),
            ("r", r),
            ("got", got),
            ("pos", pos),
            ("w2", w2),
            ("s", s),
            ("ds", ds),
            ("t", t),
        ] {
            c.output(name, reg);
        }
        let out = run_trusted(c.finish());
        assert!(out.is_ok(), "{}", show(&out));
        let o = |n| out.output(n).unwrap();
        assert_eq!(
            (o("w"), o("end"), o("r"), o("pos"), o("w2")),
            (16, 116, 8, 10, 2)
        );
        assert_eq!(o("got"), 0x0c0b_0a09_0807_0605);
        assert_eq!((o("s"), o("ds"), o("t")), (0, 0, 0));
        let disk = std::fs::read(&path).unwrap();
        assert_eq!(disk.len(), 112);
        let mut expect = vec![0u8; 112];
        expect[10] = 1;
        expect[11] = 2;
        expect[100..112].copy_from_slice(&(1..=12).collect::<Vec<u8>>());
        assert_eq!(disk, expect);
    });
}

#[test]
fn mkdir_rename_unlink_change_the_disk() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), b"payload").unwrap();
        std::fs::write(dir.path().join("gone"), b"").unwrap();
        let mut c = Builder::new();
        let root = c.path(bytes(dir.path()));
        let d = c.openat(FdRef::Cwd, root, DIR, Mode::empty());
        let a = c.path("a");
        let b = c.path("b");
        let x = c.path("x");
        let ay = c.path("a/y");
        let gone = c.path("gone");
        let r1 = c.mkdirat(d, a, Mode::from_raw_mode(0o755));
        let r2 = c.mkdirat(d, b, Mode::from_raw_mode(0o700));
        let r3 = c.renameat2(d, x, d, ay, RenameFlags::NOREPLACE);
        let r4 = c.unlinkat(d, b, AtFlags::REMOVEDIR);
        let r5 = c.unlinkat(d, gone, AtFlags::empty());
        c.close(d);
        for (n, r) in [("r1", r1), ("r2", r2), ("r3", r3), ("r4", r4), ("r5", r5)] {
            c.output(n, r);
        }
        let out = run_trusted(c.finish());
        assert!(out.is_ok(), "{}", show(&out));
        assert!(
            out.outputs.iter().all(|(_, v)| *v == 0),
            "{:?}",
            out.outputs
        );
        assert!(dir.path().join("a").is_dir());
        assert_eq!(std::fs::read(dir.path().join("a/y")).unwrap(), b"payload");
        assert!(!dir.path().join("x").exists());
        assert!(!dir.path().join("b").exists());
        assert!(!dir.path().join("gone").exists());
    });
}

#[test]
fn statx_and_fstat_fill_struct_statx() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 12345]).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let mut c = Builder::new();
        let p = c.path(bytes(&path));
        let st = c.buffer("st", 256);
        let st2 = c.buffer("st2", 256);
        c.statx(FdRef::Cwd, p, AtFlags::empty(), StatxFlags::BASIC_STATS, st);
        let size = c.load(Width::U64, st, flags::STATX_SIZE_OFFSET as i64);
        let ino = c.load(Width::U64, st, flags::STATX_INO_OFFSET as i64);
        let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
        c.fstat(fd, st2);
        let size2 = c.load(Width::U64, st2, flags::STATX_SIZE_OFFSET as i64);
        let mode = c.load(Width::U16, st2, flags::STATX_MODE_OFFSET as i64);
        c.close(fd);
        c.output("size", size);
        c.output("ino", ino);
        c.output("size2", size2);
        c.output("mode", mode);
        let out = run_trusted(c.finish());
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(out.output("size"), Some(12345));
        assert_eq!(out.output("size2"), Some(12345));
        assert_eq!(out.output("ino"), Some(meta.ino() as i64));
        assert_eq!(out.output("mode"), Some(i64::from(meta.mode())));
    });
}

#[test]
fn maps_over_paths_offsets_and_ranges() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        let mut expect = 0;
        for i in 0..5 {
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, text(100 * i + 1, i as u64)).unwrap();
            expect += 100 * i + 1;
            paths.push(bytes(&p));
        }
        let big = dir.path().join("big");
        let content = text(10_000, 3);
        std::fs::write(&big, &content).unwrap();

        let mut c = Builder::new();
        let buf = c.local_buffer("buf", 1024);
        let total = c.value("total", 0);
        c.map_paths(paths.clone(), |c, p| {
            let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
            let n = c.read(fd, buf);
            c.accumulate(total, n);
            // Left open on purpose: the end of the iteration closes it.
        });
        let bp = c.path(bytes(&big));
        let bfd = c.openat(FdRef::Cwd, bp, RDONLY, Mode::empty());
        let at = c.value("at", 0);
        c.map_offsets(vec![0, 5000, 9990], |c, off| {
            let n = c.pread(bfd, buf.prefix(10), off);
            let sum = c.call("checksum", buf.prefix(n));
            c.accumulate(at, sum);
        });
        let squares = c.value("squares", 0);
        c.map_range(1, 11, 3, |c, i| {
            let sq = c.arith(BinOp::Mul, i, i);
            c.accumulate(squares, sq);
        });
        c.output("total", total);
        c.output("at", at);
        c.output("squares", squares);
        let out = run_trusted(c.finish());
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(out.output("total"), Some(expect as i64));
        let sums = [0usize, 5000, 9990].iter().fold(0i64, |acc, &o| {
            acc.wrapping_add(fnv1a64(&content[o..o + 10]) as i64)
        });
        assert_eq!(out.output("at"), Some(sums));
        assert_eq!(out.output("squares"), Some(1 + 16 + 49 + 100));
        // Five opens in the paths map, five closes at the ends of its iterations (op of MapEnd),
        // one for the big file at the end of the run.
        assert_eq!(out.stats.by_call["close"], 6);
    });
}

#[test]
fn iteration_registers_are_their_own() {
    each_executor(|| {
        // `y = y + 10` on a register that holds nothing before the map is no accumulator: each
        // iteration has its own `y`. `sum`, defined before the map, is an accumulator and adds up.
        let mut c = Builder::new();
        let sum = c.value("sum", 0);
        let y = c.reg("y");
        c.map_range(1, 5, 1, |c, i| {
            c.set(y, i);
            c.accumulate(y, 10);
            c.accumulate(sum, y);
        });
        c.output("sum", sum);
        let out = run_trusted(c.finish());
        assert!(out.is_ok(), "{}", show(&out));
        // Iteration i computes y = i + 10: 11 + 12 + 13 + 14.
        assert_eq!(out.output("sum"), Some(50));
    });
}

#[test]
fn pipes_and_std_streams() {
    each_executor(|| {
        let mut c = Builder::new();
        let (r, w) = c.pipe2(PipeFlags::empty());
        let buf = c.buffer("buf", 8);
        c.store(Width::U64, buf, 0, 0x4847_4645_4443_4241i64);
        let n = c.write(w, buf);
        c.close(w);
        let m = c.read(r, buf.slice(0, 8));
        let eof = c.read(r, buf.slice(0, 8));
        let pid = c.getpid();
        let ppid = c.getppid();
        let z = c.nop();
        c.output("n", n);
        c.output("m", m);
        c.output("eof", eof);
        c.output("pid", pid);
        c.output("ppid", ppid);
        c.output("nop", z);
        let out = run_trusted(c.finish());
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(out.output("n"), Some(8));
        assert_eq!(out.output("m"), Some(8));
        assert_eq!(out.output("eof"), Some(0));
        assert_eq!(out.output("pid"), Some(i64::from(std::process::id())));
        assert_eq!(
            out.output("ppid"),
            Some(i64::from(std::os::unix::process::parent_id()))
        );
        assert_eq!(out.output("nop"), Some(0));
        // nop is traced but is no system call (an io_uring NOP on the ring).
        assert!(out.trace.iter().any(|t| t.call == Sys::Nop));
        if on_direct() {
            assert!(!out.stats.by_call.contains_key("nop"));
        }
        // The read end is closed at the end of the run.
        assert_eq!(out.stats.by_call["close"], 2);
    });
}

#[test]
fn a_slot_can_be_reopened_relative_to_itself() {
    each_executor(|| {
        // `d = openat(d, "sub")`: the old descriptor is the new call's directory, so it is closed
        // after the call, not before.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b/c")).unwrap();
        std::fs::write(dir.path().join("a/b/c/leaf"), b"leaf!").unwrap();
        let mut c = Builder::new();
        let top = c.path(bytes(dir.path()));
        let d = c.openat(FdRef::Cwd, top, DIR, Mode::empty());
        let FdRef::Slot(slot) = d else { unreachable!() };
        for part in ["a", "b", "c"] {
            let p = c.path(part);
            c.push(cosy_model::Op::Sys {
                call: Sys::Openat,
                args: vec![
                    Arg::Fd(d),
                    Arg::Path(p),
                    Arg::Value(i64::from(DIR.bits()).into()),
                    Arg::Value(0.into()),
                ],
                ret: cosy_model::Ret::Fd(slot),
            });
        }
        let leaf = c.path("leaf");
        let buf = c.buffer("buf", 16);
        let f = c.openat(d, leaf, RDONLY, Mode::empty());
        let n = c.read(f, buf);
        c.close(f);
        c.close(d);
        c.output("n", n);
        let out = run_trusted(c.finish());
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(out.output("n"), Some(5));
        // Three reassignments close three descriptors, plus the two explicit closes.
        assert_eq!(out.stats.by_call["close"], 5);
    });
}

#[test]
fn outcome_and_stats_display() {
    each_executor(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        let out = run_trusted(thesis_loop(&bytes(&path), 4096));
        let shown = out.to_string();
        assert!(shown.contains("total = 5"), "{shown}");
        if on_direct() {
            assert!(
                shown.contains("system calls   3  (close 1, openat 1, read 1)"),
                "{shown}"
            );
        } else if out.stats.ring_ops > 0 {
            assert!(shown.contains("through the ring"), "{shown}");
            assert!(shown.contains("per enter"), "{shown}");
        }
        assert!(shown.contains("bytes read     5"), "{shown}");
        let t = out.trace.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert_eq!(t.len(), 3);
        assert!(t[1].contains("read") && t[1].ends_with("-> 5"), "{t:?}");
    });
}
