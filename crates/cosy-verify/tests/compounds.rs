//! Whole compounds: valid ones pass, every problem of an invalid one is reported, reports
//! print as documented, and no compound makes the verifier panic.

use cosy_model::flags::{AtFlags, Mode, OFlags, PipeFlags, SpliceFlags, StatxFlags};
use cosy_model::{
    Arg, BinOp, BufId, BufRange, Builder, Compound, Cond, DataId, FdRef, FdSlot, Input, InputKind,
    MapSource, Op, Output, PathRef, PathVar, Policy, Reg, Ret, Sys, Value, Width,
};
use cosy_verify::{Problem, Problems, Rule, verify};

fn o_directory() -> OFlags {
    OFlags::DIRECTORY
}

/// Sums the sizes, lines and checksums of the regular files of a directory and of a few
/// named files: maps of every kind, nested maps, bounded loops, accumulators, local buffers,
/// skipping to the next iteration, conditionals.
fn file_statistics() -> Compound {
    let mut c = Builder::new();
    let dir = c.input_path("dir", "/tmp");
    let limit = c.input_int("limit", 3);
    let dents = c.buffer("dents", 4096);
    let out = c.buffer("out", 16);
    let data = c.local_buffer("data", 4096);
    let st = c.local_buffer("st", 256);
    let sub_dents = c.local_buffer("sub_dents", 4096);
    let d = c.openat(FdRef::Cwd, dir, o_directory(), Mode::empty());
    let n = c.getdents64(d, dents);
    let bytes = c.value("bytes", 0);
    let lines = c.value("lines", 0);
    let files = c.value("files", 0);
    let sum = c.value("sum", 0);
    let mut skip = 0;
    c.map_dirents(dents.prefix(n), |c, e| {
        // Not a regular file: next iteration (patched below to jump to the MapEnd).
        skip = c.push(Op::Jump {
            cond: Some(e.kind.ne(8).into()),
            target: 0,
            bound: None,
        });
        c.statx(d, e.name, AtFlags::empty(), StatxFlags::BASIC_STATS, st);
        let size = c.load(Width::U64, st, 40);
        c.accumulate(bytes, size);
        let f = c.openat(d, e.name, OFlags::empty(), Mode::empty());
        let rounds = c.value("rounds", 0);
        c.do_while(1000, |c| {
            let k = c.read(f, data);
            let l = c.call("count_lines", data.prefix(k));
            c.accumulate(lines, l);
            c.accumulate(rounds, 1); // the iteration's own register: not an accumulator
            let more = c.arith(BinOp::Lt, rounds, limit);
            let go_on = c.arith(BinOp::And, more, k);
            go_on.ne(0)
        });
        c.close(f);
        c.accumulate(files, 1);
    });
    c.map_range(0, limit, 1, |c, i| {
        let x = c.arith(BinOp::Mul, i, 2);
        c.accumulate(sum, x);
    });
    c.map_paths(["sub1", "sub2"], |c, p| {
        // A local buffer filled by the outer body, walked (only read) by the inner map.
        let sd = c.openat(d, p, o_directory(), Mode::empty());
        let k = c.getdents64(sd, sub_dents);
        c.map_dirents(sub_dents.prefix(k), |c, e| {
            c.statx(sd, e.name, AtFlags::empty(), StatxFlags::BASIC_STATS, st);
            let size = c.load(Width::U64, st, 40);
            c.accumulate(bytes, size);
        });
        c.close(sd);
    });
    c.map_paths(["a", "b"], |c, p| {
        let f = c.openat(d, p, OFlags::empty(), Mode::empty());
        c.map_offsets(vec![0, 4096], |c, o| {
            let k = c.pread(f, data, o);
            let s = c.call("checksum", data.prefix(k));
            c.accumulate(sum, s);
        });
        c.close(f);
    });
    let (r, w) = c.pipe2(PipeFlags::empty());
    c.if_(files.gt(0), |c| {
        c.store(Width::U64, out, 0, bytes);
        c.store(Width::U64, out, 8, files);
        c.write(w, out);
        c.splice(r, -1, FdRef::Std(1), -1, 16, SpliceFlags::empty());
    });
    c.close(r);
    c.close(w);
    c.close(d);
    c.output("bytes", bytes);
    c.output("lines", lines);
    c.output("files", files);
    c.output("sum", sum);
    let mut compound = c.finish();
    let end = compound
        .ops
        .iter()
        .position(|op| matches!(op, Op::MapEnd { .. }))
        .expect("the dirents map") as u32;
    if let Some(Op::Jump { target, .. }) = compound.ops.get_mut(skip as usize) {
        *target = end;
    }
    compound
}

#[test]
fn a_correct_compound_passes() {
    let compound = file_statistics();
    let verified =
        verify(compound.clone(), &Policy::trusted()).unwrap_or_else(|p| panic!("rejected:\n{p}"));
    assert_eq!(verified.compound(), &compound);
    assert_eq!(verified.policy(), &Policy::trusted());
    assert_eq!(verified.into_inner(), compound);
}

#[test]
fn the_models_example_passes() {
    let mut c = Builder::new();
    let name = c.input_path("name", "/etc/passwd");
    let buf = c.buffer("buf", 4096);
    let fd = c.openat(FdRef::Cwd, name, OFlags::empty(), Mode::empty());
    let total = c.value("total", 0);
    c.do_while(1 << 20, |c| {
        let n = c.read(fd, buf);
        c.accumulate(total, n);
        n.eq(4096)
    });
    c.close(fd);
    c.output("total", total);
    assert!(verify(c.finish(), &Policy::default()).is_ok());
}

#[test]
fn functions_take_data_constants_as_bytes() {
    // `c = call find data[0..r] $word`: the needle is the constant's bytes (NUL allowed).
    let mut c = Builder::new();
    let word = c.input_path("word", "openat");
    let nul = c.data(b"a\0b");
    let data = c.buffer("data", 64);
    let n = c.read(FdRef::Std(0), data);
    let found = c.call("find", (data.prefix(n), word));
    let more = c.call("find", (data.prefix(n), PathRef::Data(nul)));
    let sum = c.call("checksum", word);
    let total = c.add(found, more);
    let total = c.add(total, sum);
    c.output("found", total);
    verify(c.finish(), &Policy::trusted()).unwrap_or_else(|p| panic!("rejected:\n{p}"));
}

#[test]
fn registers_and_fds_may_be_reused_by_separate_maps() {
    // The text format names registers; two maps may use the same names for their own values.
    let n = Reg(0);
    let f = FdSlot(0);
    let body = |begin: u32| {
        vec![
            Op::MapBegin {
                source: MapSource::Paths {
                    list: vec![DataId(0)],
                    var: PathVar(0),
                },
                end: begin + 3,
            },
            Op::Sys {
                call: Sys::Openat,
                args: vec![
                    Arg::Fd(FdRef::Cwd),
                    Arg::Path(PathRef::Var(PathVar(0))),
                    Arg::Value(Value::Imm(0)),
                    Arg::Value(Value::Imm(0)),
                ],
                ret: Ret::Fd(f),
            },
            Op::Sys {
                call: Sys::Read,
                args: vec![Arg::Fd(FdRef::Slot(f)), Arg::Buf(BufRange::whole(BufId(0)))],
                ret: Ret::Reg(n),
            },
            Op::MapEnd { begin },
        ]
    };
    let mut ops = body(0);
    ops.extend(body(4));
    let c = Compound {
        data: vec![b"a".to_vec()],
        buffers: vec![cosy_model::Buffer {
            name: "b".into(),
            size: 64,
            local: true,
        }],
        regs: vec!["n".into()],
        fds: vec!["f".into()],
        paths: vec!["p".into()],
        ops,
        ..Compound::default()
    };
    verify(c, &Policy::trusted()).unwrap_or_else(|p| panic!("rejected:\n{p}"));
}

#[test]
fn every_problem_is_reported_in_order() {
    let mut c = Builder::new();
    let buf = c.buffer("buf", 16);
    c.read(FdRef::Cwd, buf); // 0: OperandKind
    c.load(Width::U64, buf, 12); // 1: AccessRange
    let r = c.reg("r");
    c.add(r, 1); // 2: ReadBeforeWrite
    c.call("nope", ()); // 3: UnknownFunction
    c.push(Op::Jump {
        cond: None,
        target: 0,
        bound: None,
    }); // 4: LoopBound
    c.output("a", r);
    c.output("a", r); // DuplicateOutput
    let problems = verify(c.finish(), &Policy::trusted()).unwrap_err();
    let found: Vec<(Rule, Option<u32>)> = problems.iter().map(|p| (p.rule, p.op)).collect();
    assert_eq!(
        found,
        [
            (Rule::DuplicateOutput, None),
            (Rule::OperandKind, Some(0)),
            (Rule::AccessRange, Some(1)),
            (Rule::ReadBeforeWrite, Some(2)),
            (Rule::UnknownFunction, Some(3)),
            (Rule::LoopBound, Some(4)),
        ]
    );
    let lines = problems.with_lines(&[10, 11, 12, 13, 14]);
    let text = lines.to_string();
    assert_eq!(text.lines().count(), 6);
    assert!(text.lines().nth(1).unwrap().starts_with("op 0 (line 10): "));
    assert_eq!(
        text.lines().nth(3).unwrap(),
        "op 2 (line 12): register `r` read before it is written"
    );
}

#[test]
fn problems_print_with_and_without_lines() {
    let p = Problem {
        op: Some(3),
        line: Some(7),
        rule: Rule::LoopBound,
        message: "loop without a bound".into(),
    };
    assert_eq!(p.to_string(), "op 3 (line 7): loop without a bound");
    let q = Problem {
        line: None,
        ..p.clone()
    };
    assert_eq!(q.to_string(), "op 3: loop without a bound");
    let r = Problem {
        op: None,
        ..q.clone()
    };
    assert_eq!(r.to_string(), "loop without a bound");
    let all = Problems(vec![p, q]);
    assert_eq!(
        all.to_string(),
        "op 3 (line 7): loop without a bound\nop 3: loop without a bound"
    );
    let err: Box<dyn std::error::Error> = Box::new(all.clone());
    assert_eq!(err.to_string(), all.to_string());
    // Lines past the table are left unknown.
    assert_eq!(all.with_lines(&[1, 2]).0[0].line, None);
}

#[test]
fn malformed_maps_skip_the_checks_that_need_them() {
    // A read of an unwritten register is not reported while the maps are malformed.
    let c = Compound {
        regs: vec!["a".into(), "b".into()],
        ops: vec![
            Op::Mov {
                dst: Reg(0),
                src: Value::Reg(Reg(1)),
            },
            Op::MapEnd { begin: 7 },
        ],
        ..Compound::default()
    };
    let problems = verify(c, &Policy::trusted()).unwrap_err();
    assert!(problems.iter().all(|p| p.rule == Rule::MapStructure));
}

#[test]
fn jumping_to_the_map_end_continues_and_loops_in_bodies_are_fine() {
    let mut c = Builder::new();
    let total = c.value("total", 0);
    c.map_offsets(vec![1, 2, 3], |c, o| {
        c.push(Op::Jump {
            cond: Some(o.eq(2).into()),
            target: 5, // the MapEnd
            bound: None,
        });
        c.do_while(10, |c| {
            c.accumulate(total, o);
            total.lt(0) // reads the accumulator...
        });
    });
    let problems = verify(c.finish(), &Policy::trusted()).unwrap_err();
    // ... which is the only problem.
    assert_eq!(problems.len(), 1, "{problems}");
    assert_eq!(problems.0[0].rule, Rule::MapAccumulatorRead);
    assert_eq!(problems.0[0].op, Some(4));
}

/// A small deterministic generator (xorshift), to build garbage compounds.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn u16(&mut self) -> u16 {
        self.below(6) as u16
    }

    fn value(&mut self) -> Value {
        if self.below(2) == 0 {
            Value::Reg(Reg(self.u16()))
        } else {
            Value::Imm(self.below(40) as i64 - 10)
        }
    }

    fn range(&mut self) -> BufRange {
        BufRange {
            buf: BufId(self.u16()),
            start: self.value(),
            end: if self.below(2) == 0 {
                None
            } else {
                Some(self.value())
            },
        }
    }

    fn arg(&mut self) -> Arg {
        match self.below(7) {
            0 => Arg::Value(self.value()),
            1 => Arg::Fd(FdRef::Cwd),
            2 => Arg::Fd(FdRef::Std(self.below(5) as u8)),
            3 => Arg::Fd(FdRef::Slot(FdSlot(self.u16()))),
            4 => Arg::Path(PathRef::Data(DataId(self.u16()))),
            5 => Arg::Path(PathRef::Var(PathVar(self.u16()))),
            _ => Arg::Buf(self.range()),
        }
    }

    fn op(&mut self, n: u64) -> Op {
        let width = Width::ALL[self.below(4) as usize];
        match self.below(9) {
            0 | 1 => {
                let call = Sys::ALL[self.below(Sys::ALL.len() as u64) as usize];
                let count = call.spec().args.len() as u64 + self.below(2);
                Op::Sys {
                    call,
                    args: (0..count).map(|_| self.arg()).collect(),
                    ret: match self.below(3) {
                        0 => Ret::None,
                        1 => Ret::Reg(Reg(self.u16())),
                        _ => Ret::Fd(FdSlot(self.u16())),
                    },
                }
            }
            2 => Op::Arith {
                dst: Reg(self.u16()),
                op: BinOp::ALL[self.below(18) as usize],
                a: self.value(),
                b: self.value(),
            },
            3 => Op::Load {
                dst: Reg(self.u16()),
                width,
                buf: BufId(self.u16()),
                off: self.value(),
            },
            4 => Op::Store {
                width,
                buf: BufId(self.u16()),
                off: self.value(),
                src: self.value(),
            },
            5 => Op::Jump {
                cond: (self.below(2) == 0).then(|| Cond {
                    op: BinOp::ALL[self.below(18) as usize],
                    a: self.value(),
                    b: self.value(),
                }),
                target: self.below(n + 3) as u32,
                bound: (self.below(2) == 0).then(|| self.below(3) as u32),
            },
            6 => Op::Call {
                dst: (self.below(2) == 0).then(|| Reg(self.u16())),
                func: ["find", "count_lines", "checksum", "other"][self.below(4) as usize].into(),
                args: (0..self.below(3)).map(|_| self.arg()).collect(),
            },
            7 => Op::MapBegin {
                source: match self.below(4) {
                    0 => MapSource::Paths {
                        list: vec![DataId(self.u16())],
                        var: PathVar(self.u16()),
                    },
                    1 => MapSource::Offsets {
                        list: vec![1, 2],
                        var: Reg(self.u16()),
                    },
                    2 => MapSource::Range {
                        start: self.value(),
                        end: self.value(),
                        step: self.value(),
                        var: Reg(self.u16()),
                    },
                    _ => MapSource::Dirents {
                        buf: self.range(),
                        name: PathVar(self.u16()),
                        kind: Reg(self.u16()),
                        ino: Reg(self.u16()),
                    },
                },
                end: self.below(n + 2) as u32,
            },
            _ => Op::MapEnd {
                begin: self.below(n + 2) as u32,
            },
        }
    }

    fn names(&mut self, base: &str) -> Vec<String> {
        (0..self.below(5))
            .map(|i| format!("{base}{}", i % 3))
            .collect()
    }

    fn compound(&mut self) -> Compound {
        let n = self.below(14);
        Compound {
            inputs: (0..self.below(3))
                .map(|i| Input {
                    name: format!("in{i}"),
                    kind: if self.below(2) == 0 {
                        InputKind::Path(DataId(self.u16()))
                    } else {
                        InputKind::Int {
                            reg: Reg(self.u16()),
                            default: 0,
                        }
                    },
                })
                .collect(),
            data: (0..self.below(4))
                .map(|_| {
                    if self.below(4) == 0 {
                        b"a\0".to_vec()
                    } else {
                        b"a".to_vec()
                    }
                })
                .collect(),
            buffers: (0..self.below(4))
                .map(|i| cosy_model::Buffer {
                    name: format!("b{i}"),
                    size: [0, 4, 16, 300, u32::MAX][self.below(5) as usize],
                    local: self.below(2) == 0,
                })
                .collect(),
            regs: self.names("r"),
            fds: self.names("f"),
            paths: self.names("p"),
            ops: (0..n).map(|_| self.op(n)).collect(),
            outputs: (0..self.below(3))
                .map(|i| Output {
                    name: format!("o{i}"),
                    reg: Reg(self.u16()),
                })
                .collect(),
            ..Compound::default()
        }
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let policy = Policy {
        std_streams: false,
        ..Policy::read_only("/")
    };
    let mut rejected = 0;
    for _ in 0..20_000 {
        let c = rng.compound();
        match verify(c, &policy) {
            Ok(_) => {}
            Err(problems) => {
                assert!(!problems.is_empty());
                assert!(!problems.to_string().is_empty());
                rejected += 1;
            }
        }
    }
    assert!(rejected > 10_000);
}

#[test]
fn long_compounds_are_fine() {
    // Many maps in a row, each with a variable of its own, accumulating into one register.
    // (Built directly: the builder's name deduplication is slow for thousands of registers.)
    let maps = 5_000u32;
    let total = Reg(0);
    let mut ops = vec![Op::Mov {
        dst: total,
        src: Value::Imm(0),
    }];
    for m in 0..maps {
        let begin = ops.len() as u32;
        let var = Reg(m as u16 + 1);
        ops.push(Op::MapBegin {
            source: MapSource::Offsets {
                list: vec![1, 2],
                var,
            },
            end: begin + 2,
        });
        ops.push(Op::Arith {
            dst: total,
            op: BinOp::Add,
            a: Value::Reg(total),
            b: Value::Reg(var),
        });
        ops.push(Op::MapEnd { begin });
    }
    let c = Compound {
        regs: (0..=maps).map(|i| format!("r{i}")).collect(),
        ops,
        outputs: vec![Output {
            name: "total".into(),
            reg: total,
        }],
        ..Compound::default()
    };
    let start = std::time::Instant::now();
    verify(c, &Policy::trusted()).unwrap_or_else(|p| panic!("rejected:\n{p}"));
    assert!(start.elapsed().as_secs() < 5, "took {:?}", start.elapsed());
}
