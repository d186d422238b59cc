//! Properties over generated compounds (`cosy_format::testing`): `optimize` never panics, its
//! output is well formed, and a compound that verifies still verifies and runs the same after
//! optimization.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use cosy_model::flags::{AtFlags, Mode, OFlags, StatxFlags, Whence};
use cosy_model::{Arg, Compound, FdRef, MapSource, Op, PathRef, Policy, Ret, Value};
use cosy_opt::{Passes, optimize};
use proptest::prelude::*;

/// Jump targets in range, maps matched and nested, every declaration referenced exists.
fn check_well_formed(c: &Compound) -> Result<(), String> {
    let n = c.ops.len();
    let mut stack = Vec::new();
    let reg = |r: &cosy_model::Reg| {
        if r.index() < c.regs.len() {
            Ok(())
        } else {
            Err(format!("register {} out of range", r.0))
        }
    };
    let value = |v: &Value| match v {
        Value::Reg(r) => reg(r),
        Value::Imm(_) => Ok(()),
    };
    for (t, op) in c.ops.iter().enumerate() {
        for r in op.reads().iter().chain(op.writes().iter()) {
            reg(r)?;
        }
        for b in op.buffers() {
            if b.index() >= c.buffers.len() {
                return Err(format!("op {t}: buffer out of range"));
            }
        }
        match op {
            Op::Jump { target, .. } if *target as usize > n => {
                return Err(format!("op {t}: jump target {target} past the end"));
            }
            Op::MapBegin { source, .. } => {
                stack.push(t);
                if let MapSource::Paths { list, .. } = source
                    && list.iter().any(|d| d.index() >= c.data.len())
                {
                    return Err(format!("op {t}: data out of range"));
                }
                if let MapSource::Range {
                    start, end, step, ..
                } = source
                {
                    value(start)?;
                    value(end)?;
                    value(step)?;
                }
            }
            Op::MapEnd { begin } => {
                let b = stack
                    .pop()
                    .ok_or(format!("op {t}: MapEnd without MapBegin"))?;
                if *begin as usize != b {
                    return Err(format!("op {t}: MapEnd names {begin}, not {b}"));
                }
                match &c.ops[b] {
                    Op::MapBegin { end, .. } if *end as usize == t => {}
                    _ => return Err(format!("op {b}: MapBegin does not name its end {t}")),
                }
            }
            Op::Sys { args, ret, .. } => {
                for a in args {
                    match a {
                        Arg::Fd(FdRef::Slot(s)) if s.index() >= c.fds.len() => {
                            return Err(format!("op {t}: fd slot out of range"));
                        }
                        Arg::Path(PathRef::Data(d)) if d.index() >= c.data.len() => {
                            return Err(format!("op {t}: data out of range"));
                        }
                        Arg::Path(PathRef::Var(v)) if v.index() >= c.paths.len() => {
                            return Err(format!("op {t}: path variable out of range"));
                        }
                        _ => {}
                    }
                }
                if let Ret::Fd(s) = ret
                    && s.index() >= c.fds.len()
                {
                    return Err(format!("op {t}: fd slot out of range"));
                }
            }
            _ => {}
        }
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err("unclosed map".into())
    }
}

fn tree(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(base)
                .map(|p| p.to_string_lossy().into_owned());
            let Ok(rel) = rel else { continue };
            let meta = fs::symlink_metadata(&path);
            if meta.as_ref().is_ok_and(|m| m.is_dir()) {
                out.insert(rel, None);
                walk(base, &path, out);
            } else if meta.as_ref().is_ok_and(|m| m.is_file()) {
                out.insert(rel, fs::read(&path).ok());
            } else {
                out.insert(rel, Some(b"(other)".to_vec()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn populate(dir: &Path) {
    fs::create_dir_all(dir.join("dir")).expect("mkdir");
    fs::create_dir_all(dir.join("sub dir")).expect("mkdir");
    fs::write(dir.join("a"), b"some bytes of a file named a\n".repeat(100)).expect("write");
    fs::write(dir.join("dir/b"), b"b".repeat(5000)).expect("write");
}

fn policy(root: &Path) -> Policy {
    Policy {
        std_streams: false,
        fuel: 200_000,
        time: std::time::Duration::from_secs(5),
        ..Policy::untrusted(root)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn optimize_never_panics_and_keeps_indices_valid(c in cosy_format::testing::compound()) {
        let input_ok = check_well_formed(&c).is_ok();
        let o = optimize(&c, &Passes::default());
        prop_assert_eq!(o.origin.len(), o.compound.ops.len());
        prop_assert!(o.origin.iter().all(|&x| (x as usize) < c.ops.len()));
        if input_ok {
            prop_assert_eq!(check_well_formed(&o.compound), Ok(()));
        }
        prop_assert_eq!(o.compound.outputs.len(), c.outputs.len());
    }

    #[test]
    fn verified_compounds_still_verify_and_run_the_same(c in cosy_format::testing::valid_compound()) {
        // A blocking pipe the compound holds both ends of would hang the run.
        let c = cosy_format::testing::nonblocking_pipes(c);
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        populate(a.path());
        populate(b.path());
        let Ok(va) = cosy_verify::verify(c.clone(), &policy(a.path())) else {
            return Ok(());
        };
        let o = optimize(&c, &Passes::default());
        let printed = cosy_format::text::print(&o.compound);
        let vb = cosy_verify::verify(o.compound.clone(), &policy(b.path()));
        prop_assert!(vb.is_ok(), "{:?}\noriginal:\n{}\noptimized:\n{}", vb.err(), cosy_format::text::print(&c), printed);
        let vb = vb.expect("verified");
        let opts = cosy_exec::RunOptions::default();
        let oa = cosy_exec::run(&va, &opts);
        let ob = cosy_exec::run(&vb, &opts);
        // Running out of fuel or time depends on the number of operations, which is the point.
        let limit = |e: &Option<cosy_exec::Error>| matches!(e, Some(cosy_exec::Error::Fuel { .. } | cosy_exec::Error::Time { .. }));
        if limit(&oa.error) || limit(&ob.error) {
            return Ok(());
        }
        let ctx = format!("original:\n{}\noptimized:\n{}", cosy_format::text::print(&c), printed);
        prop_assert_eq!(&oa.outputs, &ob.outputs, "{}", ctx);
        let ea = oa.error.as_ref().map(|e| (std::mem::discriminant(e), e.op(), e.errno()));
        let eb = ob.error.as_ref().map(|e| (std::mem::discriminant(e), e.op().map(|op| o.original_op(op)), e.errno()));
        prop_assert_eq!(ea, eb, "{:?} vs {:?}\n{}", oa.error, ob.error, ctx);
        let ca: Vec<_> = oa.errors.iter().map(|e| (e.op, e.errno)).collect();
        let cb: Vec<_> = ob.errors.iter().map(|e| (o.original_op(e.op), e.errno)).collect();
        prop_assert_eq!(ca, cb, "{}", ctx);
        prop_assert_eq!(tree(a.path()), tree(b.path()), "{}", ctx);
    }
}

// ---------------------------------------------------------------------------------------------
// Compounds made of the patterns the passes look for, with random variations that sometimes
// break a precondition.

use cosy_model::{BinOp, Builder, ErrorMode, Sys};

/// One snippet: its kind and parameters.
type Snippet = (u8, [u16; 4]);

fn build_patterns(mode_continue: bool, snippets: &[Snippet]) -> Compound {
    let mut b = Builder::new();
    if mode_continue {
        b.mode(ErrorMode::Continue);
    }
    let rdwr = OFlags::RDWR;
    let creat = OFlags::WRONLY | OFlags::CREATE;
    let seek_set = Whence::Set;
    let a = b.path("a");
    let f = b.openat(FdRef::Cwd, a, rdwr, Mode::empty());
    for (k, &(kind, p)) in snippets.iter().enumerate() {
        match kind % 6 {
            // lseek + read/write, then something that may observe the position.
            0 => {
                let buf = b.buffer("page", 64);
                let off = if p[0].is_multiple_of(2) {
                    Value::Imm(i64::from(p[1] % 5000))
                } else {
                    let r = b.value("off", i64::from(p[1] % 5000) - 100);
                    Value::Reg(r)
                };
                b.lseek(f, off, seek_set);
                let n = if p[2].is_multiple_of(2) {
                    b.read(f, buf)
                } else {
                    b.write(f, buf.prefix(i64::from(p[3] % 64)))
                };
                b.output(&format!("n{k}"), n);
                match p[3] % 4 {
                    0 => {
                        let m = b.read(f, buf);
                        b.output(&format!("m{k}"), m);
                    }
                    1 => {
                        let pos = b.lseek(f, 0, Whence::Cur);
                        b.output(&format!("pos{k}"), pos);
                    }
                    _ => {}
                }
            }
            // read + write of the same bytes.
            1 => {
                let buf = b.buffer("chunk", 256);
                let flags = if p[0].is_multiple_of(3) {
                    creat | OFlags::APPEND
                } else {
                    creat
                };
                let name = b.path(format!("out{}", p[1] % 2));
                let out = b.openat(FdRef::Cwd, name, flags, Mode::from_raw_mode(0o644));
                let src = if p[2].is_multiple_of(4) { out } else { f };
                let n = b.read(src, buf.prefix(i64::from(p[3] % 256)));
                let w = b.value("w", -1);
                b.if_(n.ne(0), |b| {
                    let r = b.write(out, buf.prefix(n));
                    b.set(w, r);
                });
                b.output(&format!("w{k}"), w);
                if p[1].is_multiple_of(5) {
                    let s = b.call("checksum", buf);
                    b.output(&format!("sum{k}"), s);
                }
                if p[2].is_multiple_of(3) {
                    b.close(out);
                }
                b.output(&format!("n{k}"), n);
            }
            // Paths under a shared directory.
            2 => {
                let st = b.buffer("st", 256);
                for (j, name) in ["dir/b", "dir/c", "dir/d", "sub dir/x", "dir/e"]
                    .into_iter()
                    .enumerate()
                    .take(usize::from(p[0] % 5) + 1)
                {
                    let path = b.path(name);
                    match (p[1] >> j) % 4 {
                        0 => {
                            let r = b.statx(
                                FdRef::Cwd,
                                path,
                                AtFlags::empty(),
                                StatxFlags::BASIC_STATS,
                                st,
                            );
                            b.output(&format!("st{k}_{j}"), r);
                        }
                        1 => {
                            let g = b.openat(FdRef::Cwd, path, creat, Mode::from_raw_mode(0o600));
                            b.close(g);
                        }
                        2 => {
                            let r = b.unlinkat(FdRef::Cwd, path, AtFlags::empty());
                            b.output(&format!("un{k}_{j}"), r);
                        }
                        _ => {
                            let r = b.mkdirat(FdRef::Cwd, path, Mode::from_raw_mode(0o755));
                            b.output(&format!("mk{k}_{j}"), r);
                        }
                    }
                }
            }
            // A counted loop.
            3 => {
                let end = if p[0].is_multiple_of(2) {
                    Value::Imm(i64::from(p[1] % 20) - 3)
                } else {
                    Value::Reg(b.value("end", i64::from(p[1] % 20) - 3))
                };
                let calls = b.value("calls", 0);
                let i = b.value("i", i64::from(p[2] % 3));
                let step = i64::from(p[2] % 3) + 1;
                let mut pid = None;
                b.do_while(u32::from(p[3] % 12) + 1, |b| {
                    pid = Some(b.getpid());
                    let t = b.arith(BinOp::Mul, i, 3);
                    b.accumulate(calls, t);
                    b.accumulate(i, step);
                    i.lt(end)
                });
                b.output(&format!("calls{k}"), calls);
                if p[3].is_multiple_of(2) {
                    b.output(&format!("i{k}"), i);
                }
                if let (Some(pid), true) = (pid, p[3] % 3 == 0) {
                    b.output(&format!("pid{k}"), pid);
                }
            }
            // Paths in a map.
            4 => {
                let st = b.local_buffer("st", 256);
                let total = b.value("total", 0);
                let names: Vec<&str> = ["dir/b", "dir/c", "dir/zz", "dir/d"]
                    .into_iter()
                    .take(usize::from(p[0] % 4) + 1)
                    .collect();
                b.map_paths(names, |b, path| {
                    let r = b.statx(
                        FdRef::Cwd,
                        path,
                        AtFlags::empty(),
                        StatxFlags::BASIC_STATS,
                        st,
                    );
                    b.accumulate(total, r);
                });
                b.output(&format!("total{k}"), total);
            }
            // Dead computations and results.
            _ => {
                let x = b.value("x", i64::from(p[0]));
                let y = b.arith(BinOp::Div, x, i64::from(p[1] % 3));
                let z = b.add(y, 1);
                b.getppid();
                if p[2].is_multiple_of(2) {
                    b.output(&format!("z{k}"), z);
                }
                if p[3].is_multiple_of(3) {
                    b.sys_discard(Sys::Close, vec![Arg::Fd(f)]);
                }
            }
        }
    }
    b.finish()
}

fn snippets() -> impl Strategy<Value = (bool, Vec<Snippet>)> {
    (
        prop::bool::weighted(0.2),
        prop::collection::vec((any::<u8>(), any::<[u16; 4]>()), 1..6),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn pattern_compounds_run_the_same((cont, s) in snippets()) {
        let c = build_patterns(cont, &s);
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        populate(a.path());
        populate(b.path());
        let va = cosy_verify::verify(c.clone(), &policy(a.path()));
        prop_assert!(va.is_ok(), "{:?}\n{}", va.err(), cosy_format::text::print(&c));
        let o = optimize(&c, &Passes::default());
        let ctx = format!(
            "applied {:?}\noriginal:\n{}\noptimized:\n{}",
            o.applied,
            cosy_format::text::print(&c),
            cosy_format::text::print(&o.compound)
        );
        let vb = cosy_verify::verify(o.compound.clone(), &policy(b.path()));
        prop_assert!(vb.is_ok(), "{:?}\n{}", vb.as_ref().err(), ctx);
        let opts = cosy_exec::RunOptions::default();
        let oa = cosy_exec::run(&va.expect("verified"), &opts);
        let ob = cosy_exec::run(&vb.expect("verified"), &opts);
        prop_assert_eq!(&oa.outputs, &ob.outputs, "{}", ctx);
        let ea = oa.error.as_ref().map(|e| (std::mem::discriminant(e), e.op(), e.errno()));
        let eb = ob.error.as_ref().map(|e| (std::mem::discriminant(e), e.op().map(|op| o.original_op(op)), e.errno()));
        prop_assert_eq!(ea, eb, "{:?} vs {:?}\n{}", oa.error, ob.error, ctx);
        let ca: Vec<_> = oa.errors.iter().map(|e| (e.op, e.errno)).collect();
        let cb: Vec<_> = ob.errors.iter().map(|e| (o.original_op(e.op), e.errno)).collect();
        prop_assert_eq!(ca, cb, "{}", ctx);
        prop_assert_eq!(tree(a.path()), tree(b.path()), "{}", ctx);
    }
}

// ---------------------------------------------------------------------------------------------
// Garbage: operations with indices anywhere, as an untrusted decoder could produce them.

fn garbage_op(kind: u8, x: [u16; 4]) -> Op {
    use cosy_model::{BufId, BufRange, DataId, FdSlot, PathVar, Reg, Width};
    let reg = |k: u16| Reg(k % 12);
    let val = |k: u16| {
        if k.is_multiple_of(3) {
            Value::Reg(reg(k / 3))
        } else {
            Value::Imm(i64::from(k % 7) - 2)
        }
    };
    let arg = |k: u16, kind: cosy_model::ArgKind| -> Arg {
        use cosy_model::ArgKind as K;
        match kind {
            K::Fd | K::NewFd | K::DirFd => Arg::Fd(match k % 4 {
                0 => FdRef::Cwd,
                1 => FdRef::Std((k % 3) as u8),
                _ => FdRef::Slot(FdSlot(k % 6)),
            }),
            K::Path | K::Str => Arg::Path(if k.is_multiple_of(2) {
                PathRef::Data(DataId(k % 9))
            } else {
                PathRef::Var(PathVar(k % 4))
            }),
            K::BufIn | K::BufOut => Arg::Buf(BufRange {
                buf: BufId(k % 5),
                start: val(k / 5),
                end: k.is_multiple_of(2).then(|| val(k / 7)),
            }),
            K::Int | K::Flags(_) => Arg::Value(val(k)),
        }
    };
    match kind % 9 {
        0 | 1 => {
            let call = cosy_model::Sys::ALL[usize::from(x[0]) % cosy_model::Sys::ALL.len()];
            let args = call
                .spec()
                .args
                .iter()
                .enumerate()
                .map(|(i, a)| arg(x[1].wrapping_add(x[2].wrapping_mul(i as u16 + 1)), a.kind))
                .collect();
            let ret = match x[3] % 3 {
                0 => Ret::None,
                1 => Ret::Reg(reg(x[3])),
                _ => Ret::Fd(FdSlot(x[3] % 6)),
            };
            Op::Sys { call, args, ret }
        }
        2 => Op::Arith {
            dst: reg(x[0]),
            op: BinOp::ALL[usize::from(x[1]) % BinOp::ALL.len()],
            a: val(x[2]),
            b: val(x[3]),
        },
        3 => Op::Mov {
            dst: reg(x[0]),
            src: val(x[1]),
        },
        4 => Op::Load {
            dst: reg(x[0]),
            width: Width::ALL[usize::from(x[1]) % 4],
            buf: BufId(x[2] % 5),
            off: val(x[3]),
        },
        5 => Op::Jump {
            cond: x[0]
                .is_multiple_of(2)
                .then(|| val(x[1]).lt(val(x[2])).into()),
            target: u32::from(x[3] % 24),
            bound: (!x[1].is_multiple_of(3)).then_some(u32::from(x[2] % 5)),
        },
        6 => Op::MapBegin {
            source: match x[0] % 3 {
                0 => MapSource::Range {
                    start: val(x[1]),
                    end: val(x[2]),
                    step: val(x[3]),
                    var: reg(x[0]),
                },
                1 => MapSource::Paths {
                    list: vec![DataId(x[1] % 9), DataId(x[2] % 9)],
                    var: PathVar(x[3] % 4),
                },
                _ => MapSource::Offsets {
                    list: vec![0, 4096],
                    var: reg(x[1]),
                },
            },
            end: u32::from(x[3] % 24),
        },
        7 => Op::MapEnd {
            begin: u32::from(x[0] % 24),
        },
        _ => Op::Call {
            dst: Some(reg(x[0])),
            func: "checksum".into(),
            args: vec![arg(x[1], cosy_model::ArgKind::BufIn)],
        },
    }
}

fn garbage() -> impl Strategy<Value = Compound> {
    (
        prop::collection::vec((any::<u8>(), any::<[u16; 4]>()), 0..24),
        0usize..8,
        0usize..6,
        any::<bool>(),
    )
        .prop_map(|(ops, nregs, ndata, cont)| Compound {
            mode: if cont {
                ErrorMode::Continue
            } else {
                ErrorMode::Stop
            },
            data: ["a/b/x", "a/b/y", "a/b/z", "/t/u/v", "q", "a/b/w"]
                .iter()
                .take(ndata)
                .map(|p| p.as_bytes().to_vec())
                .collect(),
            buffers: vec![cosy_model::Buffer {
                name: "b".into(),
                size: 64,
                local: false,
            }],
            regs: (0..nregs).map(|i| format!("r{i}")).collect(),
            fds: vec!["f".into(), "g".into()],
            ops: ops.into_iter().map(|(k, x)| garbage_op(k, x)).collect(),
            outputs: (0..nregs.min(2))
                .map(|i| cosy_model::Output {
                    name: format!("o{i}"),
                    reg: cosy_model::Reg(i as u16),
                })
                .collect(),
            ..Compound::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn garbage_never_panics(c in garbage()) {
        let o = optimize(&c, &Passes::default());
        prop_assert_eq!(o.origin.len(), o.compound.ops.len());
        prop_assert!(o.origin.iter().all(|&x| (x as usize) < c.ops.len()));
        if check_well_formed(&c).is_ok() {
            // Structure only: the garbage may name registers past the table, and so may the
            // optimized compound, but never jump or map indices out of range.
            let n = o.compound.ops.len();
            let in_range = o.compound.ops.iter().all(|op| match op {
                Op::Jump { target, .. } => (*target as usize) <= n,
                Op::MapBegin { end, .. } => (*end as usize) < n,
                Op::MapEnd { begin } => (*begin as usize) < n,
                _ => true,
            });
            prop_assert!(in_range);
        }
    }
}
