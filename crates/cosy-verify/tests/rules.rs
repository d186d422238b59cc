//! One test per rule: a compound breaking exactly that rule, the operation it is reported at,
//! and the line `with_lines` maps that operation to.

use cosy_model::flags::{AtFlags, Mode, OFlags};
use cosy_model::{
    Arg, BinOp, BufId, Builder, Compound, Cond, DataId, FdRef, FdSlot, Input, InputKind, MapSource,
    Op, PathVar, Policy, Reg, Ret, Sys, Value, Width,
};
use cosy_verify::{Rule, verify};

struct Case {
    compound: Compound,
    policy: Policy,
    rule: Rule,
    op: Option<u32>,
}

fn case(compound: Compound, rule: Rule, op: Option<u32>) -> Case {
    Case {
        compound,
        policy: Policy::trusted(),
        rule,
        op,
    }
}

/// The compound is rejected with problems of `rule` only, the first at `op`, on the line of
/// `op` (line of op `i`: `100 + i`).
fn run(case: Case) {
    let lines: Vec<u32> = (0..case.compound.ops.len() as u32)
        .map(|i| 100 + i)
        .collect();
    let problems = verify(case.compound, &case.policy)
        .expect_err("the compound must be rejected")
        .with_lines(&lines);
    assert!(
        problems.iter().all(|p| p.rule == case.rule),
        "expected only {:?}, got:\n{problems}",
        case.rule
    );
    let first = &problems.0[0];
    assert_eq!(first.op, case.op, "{problems}");
    assert_eq!(first.line, case.op.map(|o| 100 + o), "{problems}");
    assert!(!first.message.is_empty());
}

fn raw(regs: &[&str], ops: Vec<Op>) -> Compound {
    Compound {
        regs: regs.iter().map(|r| r.to_string()).collect(),
        ops,
        ..Compound::default()
    }
}

fn sys(call: Sys, args: Vec<Arg>, ret: Ret) -> Op {
    Op::Sys { call, args, ret }
}

fn std(n: u8) -> FdRef {
    FdRef::Std(n)
}

macro_rules! rule_tests {
    ($($case:ident),* $(,)?) => {
        mod rule {
            $( #[test] fn $case() { super::run(super::$case()); } )*
        }
        const CASES: &[fn() -> Case] = &[$($case),*];
    };
}

rule_tests!(
    buffer_size,
    index_range,
    index_range_std_stream,
    duplicate_name,
    duplicate_input,
    duplicate_input_register,
    duplicate_output,
    path_nul,
    path_nul_in_paths_map,
    arena_size,
    operand_count,
    operand_kind,
    operand_kind_pipe2_same_slot,
    operand_kind_close_std_stream,
    result_kind,
    result_kind_descriptor_nowhere,
    call_not_allowed,
    std_streams,
    buffer_range,
    buffer_range_one_immediate_bound,
    access_range,
    statx_buffer,
    times_buffer,
    read_before_write,
    read_before_write_after_map,
    read_before_write_output,
    fd_before_open,
    fd_before_open_after_map,
    jump_target,
    jump_condition,
    loop_bound,
    loop_bound_zero,
    jump_scope_enters,
    jump_scope_leaves,
    map_structure_end_without_begin,
    map_structure_never_ended,
    map_structure_wrong_end,
    map_depth,
    map_register_write,
    map_register_write_variable,
    map_accumulator_read,
    map_fd_open,
    map_fd_close,
    local_buffer,
    map_buffer_write,
    map_buffer_write_user_function,
    map_buffer_write_shared_local,
    map_buffer_write_dirents_source,
    path_var_scope,
    path_var_scope_rebound,
    range_step,
    unknown_function,
    function_operands,
    function_operands_fd,
    function_operands_path_variable,
);

#[test]
fn every_rule_has_a_case() {
    let covered: Vec<Rule> = CASES.iter().map(|c| c().rule).collect();
    for rule in Rule::ALL {
        assert!(covered.contains(rule), "no test for {rule:?}");
    }
}

// Declarations.

fn buffer_size() -> Case {
    let mut c = Builder::new();
    c.buffer("b", 0);
    case(c.finish(), Rule::BufferSize, None)
}

fn index_range() -> Case {
    let ops = vec![
        Op::Mov {
            dst: Reg(0),
            src: Value::Imm(1),
        },
        Op::Mov {
            dst: Reg(0),
            src: Value::Reg(Reg(7)),
        },
    ];
    case(raw(&["a"], ops), Rule::IndexRange, Some(1))
}

fn index_range_std_stream() -> Case {
    let mut c = Builder::new();
    let b = c.buffer("b", 8);
    c.write(std(1), b);
    c.write(std(3), b);
    case(c.finish(), Rule::IndexRange, Some(1))
}

fn duplicate_name() -> Case {
    case(raw(&["a", "b", "a"], vec![]), Rule::DuplicateName, None)
}

fn duplicate_input() -> Case {
    let mut c = Builder::new();
    c.input_int("n", 1);
    c.input_int("n", 2);
    case(c.finish(), Rule::DuplicateInput, None)
}

fn duplicate_input_register() -> Case {
    let mut c = Builder::new();
    let r = c.input_int("n", 1);
    let mut c = c.finish();
    c.inputs.push(Input {
        name: "m".into(),
        kind: InputKind::Int { reg: r, default: 2 },
    });
    case(c, Rule::DuplicateInput, None)
}

fn duplicate_output() -> Case {
    let mut c = Builder::new();
    let x = c.value("x", 1);
    c.output("x", x);
    c.output("x", x);
    case(c.finish(), Rule::DuplicateOutput, None)
}

fn path_nul() -> Case {
    let mut c = Builder::new();
    let p = c.path("a\0b");
    c.openat(FdRef::Cwd, p, OFlags::empty(), Mode::empty());
    case(c.finish(), Rule::PathNul, Some(0))
}

fn path_nul_in_paths_map() -> Case {
    let mut c = Builder::new();
    c.nop();
    c.map_paths(["ok", "not\0ok"], |_, _| {});
    case(c.finish(), Rule::PathNul, Some(1))
}

fn arena_size() -> Case {
    let mut c = Builder::new();
    c.buffer("a", 1024);
    c.local_buffer("b", 1);
    Case {
        policy: Policy {
            arena_bytes: 1024,
            ..Policy::trusted()
        },
        ..case(c.finish(), Rule::ArenaSize, None)
    }
}

// System calls and the policy.

fn operand_count() -> Case {
    let ops = vec![sys(Sys::Read, vec![Arg::Fd(std(0))], Ret::None)];
    case(raw(&[], ops), Rule::OperandCount, Some(0))
}

fn operand_kind() -> Case {
    let mut c = Builder::new();
    let b = c.buffer("b", 8);
    c.read(FdRef::Cwd, b);
    case(c.finish(), Rule::OperandKind, Some(0))
}

fn operand_kind_pipe2_same_slot() -> Case {
    let mut c = raw(
        &[],
        vec![sys(
            Sys::Pipe2,
            vec![
                Arg::Fd(FdRef::Slot(FdSlot(0))),
                Arg::Fd(FdRef::Slot(FdSlot(0))),
                Arg::Value(Value::Imm(0)),
            ],
            Ret::None,
        )],
    );
    c.fds.push("p".into());
    case(c, Rule::OperandKind, Some(0))
}

fn operand_kind_close_std_stream() -> Case {
    let mut c = Builder::new();
    c.close(std(1));
    case(c.finish(), Rule::OperandKind, Some(0))
}

fn result_kind() -> Case {
    let mut c = raw(&[], vec![sys(Sys::Getpid, vec![], Ret::Fd(FdSlot(0)))]);
    c.fds.push("f".into());
    case(c, Rule::ResultKind, Some(0))
}

fn result_kind_descriptor_nowhere() -> Case {
    let mut c = Builder::new();
    let p = c.path("x");
    let mut c = c.finish();
    c.ops.push(sys(
        Sys::Openat,
        vec![
            Arg::Fd(FdRef::Cwd),
            Arg::Path(p),
            Arg::Value(Value::Imm(0)),
            Arg::Value(Value::Imm(0)),
        ],
        Ret::None,
    ));
    case(c, Rule::ResultKind, Some(0))
}

fn call_not_allowed() -> Case {
    let mut c = Builder::new();
    let b = c.buffer("b", 8);
    c.getpid();
    c.write(std(1), b);
    Case {
        policy: Policy {
            root: None,
            ..Policy::read_only("/")
        },
        ..case(c.finish(), Rule::CallNotAllowed, Some(1))
    }
}

fn std_streams() -> Case {
    let mut c = Builder::new();
    let b = c.buffer("b", 8);
    c.read(std(0), b);
    Case {
        policy: Policy {
            std_streams: false,
            ..Policy::trusted()
        },
        ..case(c.finish(), Rule::StdStreams, Some(0))
    }
}

// Arena bounds.

fn buffer_range() -> Case {
    let mut c = Builder::new();
    let b = c.buffer("b", 16);
    c.read(std(0), b.slice(0, 16));
    c.read(std(0), b.slice(8, 4));
    case(c.finish(), Rule::BufferRange, Some(1))
}

fn buffer_range_one_immediate_bound() -> Case {
    let mut c = Builder::new();
    let b = c.buffer("b", 16);
    let n = c.value("n", 4);
    c.read(std(0), b.slice(n, 17));
    case(c.finish(), Rule::BufferRange, Some(1))
}

fn access_range() -> Case {
    let mut c = Builder::new();
    let b = c.buffer("b", 16);
    c.store(Width::U64, b, 8, 1);
    c.store(Width::U64, b, 12, 1);
    case(c.finish(), Rule::AccessRange, Some(1))
}

fn statx_buffer() -> Case {
    let mut c = Builder::new();
    let small = c.buffer("small", 100);
    c.fstat(std(0), small);
    case(c.finish(), Rule::CallBufferSize, Some(0))
}

fn times_buffer() -> Case {
    let mut c = Builder::new();
    let small = c.buffer("times", 16);
    let p = c.path("f");
    c.utimensat(FdRef::Cwd, p, small, AtFlags::empty());
    case(c.finish(), Rule::CallBufferSize, Some(0))
}

// Dataflow.

fn read_before_write() -> Case {
    let mut c = Builder::new();
    let x = c.input_int("x", 0);
    let r = c.reg("r");
    c.if_(x.eq(1), |c| c.set(r, 5)); // ops 0, 1
    let t = c.add(r, 1); // op 2: r unwritten when x != 1
    c.output("t", t);
    case(c.finish(), Rule::ReadBeforeWrite, Some(2))
}

fn read_before_write_after_map() -> Case {
    let mut c = Builder::new();
    let mut inner = None;
    c.map_offsets(vec![1, 2], |c, o| inner = Some(c.add(o, 1))); // ops 0..=2
    let t = inner.expect("the body ran");
    c.add(t, 1); // op 3: the body's registers are its own
    case(c.finish(), Rule::ReadBeforeWrite, Some(3))
}

fn read_before_write_output() -> Case {
    let mut c = Builder::new();
    let x = c.input_int("x", 0);
    let r = c.reg("r");
    c.if_(x.eq(1), |c| c.set(r, 5));
    c.output("r", r);
    case(c.finish(), Rule::ReadBeforeWrite, None)
}

fn fd_before_open() -> Case {
    let mut c = Builder::new();
    let x = c.input_int("x", 0);
    let b = c.buffer("b", 16);
    let p = c.path("f");
    let mut f = FdRef::Cwd;
    c.if_(x.eq(1), |c| {
        f = c.openat(FdRef::Cwd, p, OFlags::empty(), Mode::empty())
    }); // ops 0, 1
    c.read(f, b); // op 2
    case(c.finish(), Rule::FdBeforeOpen, Some(2))
}

fn fd_before_open_after_map() -> Case {
    let mut c = Builder::new();
    let mut f = FdRef::Cwd;
    c.map_paths(["a", "b"], |c, p| {
        f = c.openat(FdRef::Cwd, p, OFlags::empty(), Mode::empty())
    }); // ops 0..=2
    c.close(f); // op 3: fds opened in a body are closed at the end of its iteration
    case(c.finish(), Rule::FdBeforeOpen, Some(3))
}

// Jumps.

fn jump_target() -> Case {
    let ops = vec![
        sys(Sys::Nop, vec![], Ret::None),
        Op::Jump {
            cond: None,
            target: 3,
            bound: None,
        },
    ];
    case(raw(&[], ops), Rule::JumpTarget, Some(1))
}

fn jump_condition() -> Case {
    let ops = vec![Op::Jump {
        cond: Some(Cond {
            op: BinOp::Add,
            a: Value::Imm(1),
            b: Value::Imm(1),
        }),
        target: 1,
        bound: None,
    }];
    case(raw(&[], ops), Rule::JumpCondition, Some(0))
}

fn loop_bound() -> Case {
    let ops = vec![
        sys(Sys::Nop, vec![], Ret::None),
        Op::Jump {
            cond: None,
            target: 0,
            bound: None,
        },
    ];
    case(raw(&[], ops), Rule::LoopBound, Some(1))
}

fn loop_bound_zero() -> Case {
    let ops = vec![Op::Jump {
        cond: Some(Cond {
            op: BinOp::Eq,
            a: Value::Imm(1),
            b: Value::Imm(0),
        }),
        target: 0,
        bound: Some(0),
    }];
    case(raw(&[], ops), Rule::LoopBound, Some(0))
}

fn jump_scope_enters() -> Case {
    let ops = vec![
        Op::Jump {
            cond: Some(Cond {
                op: BinOp::Eq,
                a: Value::Imm(1),
                b: Value::Imm(1),
            }),
            target: 2,
            bound: None,
        },
        Op::MapBegin {
            source: MapSource::Offsets {
                list: vec![1],
                var: Reg(0),
            },
            end: 3,
        },
        sys(Sys::Nop, vec![], Ret::None),
        Op::MapEnd { begin: 1 },
    ];
    case(raw(&["o"], ops), Rule::JumpScope, Some(0))
}

fn jump_scope_leaves() -> Case {
    let mut c = Builder::new();
    c.map_offsets(vec![1], |c, o| {
        c.push(Op::Jump {
            cond: Some(o.eq(1).into()),
            target: 3, // the end of the compound, outside the body
            bound: None,
        });
    });
    case(c.finish(), Rule::JumpScope, Some(1))
}

// Maps.

fn map_structure_end_without_begin() -> Case {
    let ops = vec![sys(Sys::Nop, vec![], Ret::None), Op::MapEnd { begin: 0 }];
    case(raw(&[], ops), Rule::MapStructure, Some(1))
}

fn map_structure_never_ended() -> Case {
    let ops = vec![
        Op::MapBegin {
            source: MapSource::Offsets {
                list: vec![1],
                var: Reg(0),
            },
            end: 5,
        },
        sys(Sys::Nop, vec![], Ret::None),
    ];
    case(raw(&["o"], ops), Rule::MapStructure, Some(0))
}

fn map_structure_wrong_end() -> Case {
    let ops = vec![
        Op::MapBegin {
            source: MapSource::Offsets {
                list: vec![1],
                var: Reg(0),
            },
            end: 1,
        },
        sys(Sys::Nop, vec![], Ret::None),
        Op::MapEnd { begin: 0 },
    ];
    case(raw(&["o"], ops), Rule::MapStructure, Some(0))
}

fn nest(c: &mut Builder, depth: usize) {
    if depth > 0 {
        c.map_offsets(vec![0], |c, _| nest(c, depth - 1));
    }
}

fn map_depth() -> Case {
    let mut c = Builder::new();
    nest(&mut c, 9); // MapBegins at ops 0..=8
    case(c.finish(), Rule::MapDepth, Some(8))
}

fn map_register_write() -> Case {
    let mut c = Builder::new();
    let total = c.value("total", 0); // op 0
    c.map_offsets(vec![1, 2], |c, o| c.set(total, o)); // ops 1..=3
    c.output("total", total);
    case(c.finish(), Rule::MapRegisterWrite, Some(2))
}

fn map_register_write_variable() -> Case {
    let mut c = Builder::new();
    let i = c.input_int("i", 0);
    c.nop();
    let begin = c.push(Op::MapBegin {
        source: MapSource::Offsets {
            list: vec![1],
            var: i,
        },
        end: 2,
    });
    c.push(Op::MapEnd { begin });
    case(c.finish(), Rule::MapRegisterWrite, Some(1))
}

fn map_accumulator_read() -> Case {
    let mut c = Builder::new();
    let total = c.value("total", 0); // op 0
    c.map_offsets(vec![1, 2], |c, o| {
        c.accumulate(total, o); // op 2
        c.arith(BinOp::Mul, total, 2); // op 3
    });
    c.output("total", total);
    case(c.finish(), Rule::MapAccumulatorRead, Some(3))
}

fn map_fd_open() -> Case {
    let mut c = Builder::new();
    let d = c.path("dir");
    let FdRef::Slot(slot) = c.openat(FdRef::Cwd, d, OFlags::empty(), Mode::empty()) else {
        unreachable!()
    };
    c.map_paths(["a"], |c, p| {
        c.push(sys(
            Sys::Openat,
            vec![
                Arg::Fd(FdRef::Cwd),
                Arg::Path(p),
                Arg::Value(Value::Imm(0)),
                Arg::Value(Value::Imm(0)),
            ],
            Ret::Fd(slot),
        ));
    });
    case(c.finish(), Rule::MapFd, Some(2))
}

fn map_fd_close() -> Case {
    let mut c = Builder::new();
    let d = c.path("dir");
    let f = c.openat(FdRef::Cwd, d, OFlags::empty(), Mode::empty());
    c.map_offsets(vec![1, 2], |c, _| {
        c.close(f);
    });
    case(c.finish(), Rule::MapFd, Some(2))
}

fn local_buffer() -> Case {
    let mut c = Builder::new();
    let b = c.local_buffer("b", 16);
    c.map_offsets(vec![0], |c, _| {
        c.read(std(0), b);
    });
    c.read(std(0), b); // op 3
    case(c.finish(), Rule::LocalBuffer, Some(3))
}

fn map_buffer_write() -> Case {
    let mut c = Builder::new();
    let b = c.buffer("b", 16);
    c.map_offsets(vec![0, 8], |c, o| {
        c.write(std(1), b); // reading a shared buffer is fine
        c.store(Width::U64, b, o, 1); // op 2
    });
    case(c.finish(), Rule::MapBufferWrite, Some(2))
}

fn map_buffer_write_user_function() -> Case {
    let mut c = Builder::new();
    let b = c.buffer("b", 16);
    c.map_offsets(vec![0, 8], |c, _| {
        c.call("checksum", b); // built-ins only read
        c.call("fill", b); // op 2
    });
    let mut policy = Policy::trusted();
    policy.functions.insert("fill".into());
    Case {
        policy,
        ..case(c.finish(), Rule::MapBufferWrite, Some(2))
    }
}

fn map_buffer_write_shared_local() -> Case {
    let mut c = Builder::new();
    let b = c.local_buffer("b", 16);
    c.map_offsets(vec![0, 1], |c, _| {
        c.read(std(0), b); // op 1: this iteration's copy
        c.map_offsets(vec![0, 8], |c, o| {
            c.load(Width::U64, b, o); // reading the outer iteration's copy is fine
            c.store(Width::U64, b, o, 1); // op 4: every inner iteration shares it
        });
    });
    case(c.finish(), Rule::MapBufferWrite, Some(4))
}

fn map_buffer_write_dirents_source() -> Case {
    let mut c = Builder::new();
    let dents = c.local_buffer("dents", 4096);
    let d = c.path(".");
    let dir = c.openat(FdRef::Cwd, d, OFlags::empty(), Mode::empty()); // op 0
    c.map_offsets(vec![0], |c, _| {
        let n = c.getdents64(dir, dents); // op 2
        c.map_dirents(dents.prefix(n), |c, _| {
            c.read(std(0), dents); // op 4: overwrites the entries being walked
        });
    });
    case(c.finish(), Rule::MapBufferWrite, Some(4))
}

fn path_var_scope() -> Case {
    let mut c = Builder::new();
    let mut var = None;
    c.map_paths(["a"], |_, p| var = Some(p)); // ops 0, 1
    let p = var.expect("the body ran");
    c.openat(FdRef::Cwd, p, OFlags::empty(), Mode::empty()); // op 2
    case(c.finish(), Rule::PathVarScope, Some(2))
}

fn path_var_scope_rebound() -> Case {
    let begin = |end| Op::MapBegin {
        source: MapSource::Paths {
            list: vec![DataId(0)],
            var: PathVar(0),
        },
        end,
    };
    let ops = vec![
        begin(3),
        begin(2),
        Op::MapEnd { begin: 1 },
        Op::MapEnd { begin: 0 },
    ];
    let c = Compound {
        data: vec![b"a".to_vec()],
        paths: vec!["p".into()],
        ops,
        ..Compound::default()
    };
    case(c, Rule::PathVarScope, Some(1))
}

fn range_step() -> Case {
    let mut c = Builder::new();
    c.map_range(0, 10, 0, |_, _| {});
    case(c.finish(), Rule::RangeStep, Some(0))
}

// Functions.

fn unknown_function() -> Case {
    let mut c = Builder::new();
    let b = c.buffer("b", 8);
    c.call("checksum", b);
    c.call("frobnicate", ());
    case(c.finish(), Rule::UnknownFunction, Some(1))
}

fn function_operands() -> Case {
    let mut c = Builder::new();
    let b = c.buffer("b", 8);
    c.call("find", b);
    case(c.finish(), Rule::FunctionOperands, Some(0))
}

fn function_operands_fd() -> Case {
    let mut c = Builder::new();
    let b = c.buffer("b", 8);
    let mut policy = Policy::trusted();
    policy.functions.insert("f".into());
    c.call("f", (BufId(0), 1i64));
    c.call("f", vec![Arg::Buf(b.into()), Arg::Fd(std(1))]);
    Case {
        policy,
        ..case(c.finish(), Rule::FunctionOperands, Some(1))
    }
}

fn function_operands_path_variable() -> Case {
    let mut c = Builder::new();
    c.map_paths(["a"], |c, p| {
        c.call("checksum", p); // op 1
    });
    case(c.finish(), Rule::FunctionOperands, Some(1))
}
