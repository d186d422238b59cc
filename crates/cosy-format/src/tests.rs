//! Round-trip properties and error tests of both formats.

use cosy_model::flags::{Mode, OFlags};
use cosy_model::{
    Arg, BufId, BufRange, Compound, DataId, FdRef, Input, InputKind, MapSource, Op, PathRef,
    PathVar, Reg, Ret, Sys, Value,
};
use proptest::prelude::*;

use crate::testing::{compound, valid_compound};
use crate::{Format, LoadError, MAGIC, binary, load, text};

fn parse_ok(src: &str) -> Compound {
    match text::parse(src) {
        Ok(p) => p.compound,
        Err(e) => panic!("{e}\n--- text ---\n{src}"),
    }
}

/// The line and column of the error `src` gives, and its message.
fn parse_err(src: &str) -> (u32, u32, String) {
    match text::parse(src) {
        Ok(p) => panic!("parsed, expected an error:\n{src}\n{:?}", p.compound),
        Err(e) => (e.line, e.column, e.message),
    }
}

fn weird_name(choice: u8) -> String {
    [
        "", "a b", "read", "load", "O_CREAT", "cwd", "9x", "x", "x", "é", "a.", "buf", "$p",
        "e.type",
    ][usize::from(choice) % 14]
        .to_string()
}

/// Renames a compound's declarations with names the text cannot spell as they are.
fn with_weird_names(mut c: Compound, choices: &[u8]) -> Compound {
    let mut k = choices.iter().copied().cycle();
    let mut next = || weird_name(k.next().unwrap_or(0));
    for r in &mut c.regs {
        *r = next();
    }
    for f in &mut c.fds {
        *f = next();
    }
    for p in &mut c.paths {
        *p = next();
    }
    for b in &mut c.buffers {
        b.name = next();
    }
    for i in &mut c.inputs {
        i.name = next();
    }
    for o in &mut c.outputs {
        o.name = next();
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn printing_is_idempotent(c in compound()) {
        let once = text::print(&c);
        let again = text::print(&parse_ok(&once));
        prop_assert_eq!(again, once);
    }

    #[test]
    fn text_round_trips_exactly(c in compound()) {
        let printed = text::print(&c);
        prop_assert_eq!(parse_ok(&printed), c, "{}", printed);
    }

    #[test]
    fn valid_compounds_round_trip(c in valid_compound()) {
        let printed = text::print(&c);
        prop_assert_eq!(&parse_ok(&printed), &c, "{}", printed);
        let decoded = binary::decode(&binary::encode(&c));
        prop_assert_eq!(decoded, Ok(c));
    }

    #[test]
    fn unprintable_names_are_renamed_stably(
        c in compound(),
        names in proptest::collection::vec(any::<u8>(), 1..20),
    ) {
        let c = with_weird_names(c, &names);
        let once = text::print(&c);
        let again = text::print(&parse_ok(&once));
        prop_assert_eq!(again, once);
    }

    #[test]
    fn binary_round_trips(c in compound()) {
        let bytes = binary::encode(&c);
        prop_assert!(bytes.starts_with(MAGIC));
        prop_assert_eq!(binary::decode(&bytes), Ok(c));
    }

    #[test]
    fn every_truncation_is_an_error(c in compound()) {
        let bytes = binary::encode(&c);
        for n in 0..bytes.len() {
            let r = binary::decode(&bytes[..n]);
            prop_assert!(r.is_err(), "prefix of {} bytes decoded", n);
        }
    }

    #[test]
    fn random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = binary::decode(&tail);
        let mut framed = MAGIC.to_vec();
        framed.extend_from_slice(&binary::VERSION.to_le_bytes());
        framed.extend_from_slice(&tail);
        let _ = binary::decode(&framed);
        let _ = load(&tail);
    }

    #[test]
    fn mutated_encodings_never_panic(
        c in compound(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = binary::encode(&c);
        for (at, b) in edits {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        let _ = binary::decode(&bytes);
    }

    #[test]
    fn mutated_text_never_panics(
        c in compound(),
        edits in proptest::collection::vec((any::<usize>(), any::<char>()), 1..4),
    ) {
        let mut chars: Vec<char> = text::print(&c).chars().collect();
        for (at, ch) in edits {
            if chars.is_empty() {
                break;
            }
            let n = chars.len();
            chars[at % n] = ch;
        }
        let src: String = chars.into_iter().collect();
        let _ = text::parse(&src);
    }

    #[test]
    fn random_text_never_panics(src in "[ -~\n]{0,200}") {
        let _ = text::parse(&src);
    }
}

// ----- the documentation's example --------------------------------------------------------

/// The first code block after `## Example` in docs/text-format.md.
fn doc_example() -> &'static str {
    let doc = include_str!("../../../docs/text-format.md");
    let after = doc
        .split_once("## Example")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let block = after
        .split_once("```\n")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    block.split_once("```").map(|(b, _)| b).unwrap_or_default()
}

#[test]
fn the_thesis_example_of_the_docs_parses() {
    let src = doc_example();
    assert!(src.contains("openat"), "no example found in the docs");
    let parsed = text::parse(src).unwrap_or_else(|e| panic!("{e}"));
    let c = &parsed.compound;
    assert_eq!(c.inputs.len(), 1);
    assert_eq!(c.inputs[0].name, "name");
    assert_eq!(c.data, [b"/etc/passwd".to_vec()]);
    assert_eq!(c.buffers[0].name, "buf");
    assert_eq!(c.buffers[0].size, 4096);
    assert_eq!(c.fds, ["f"]);
    assert_eq!(c.regs, ["total", "n"]);
    let ops: Vec<_> = c.ops.iter().collect();
    assert!(matches!(
        ops[0],
        Op::Sys {
            call: Sys::Openat,
            ret: Ret::Fd(_),
            ..
        }
    ));
    assert!(matches!(
        ops[2],
        Op::Sys {
            call: Sys::Read,
            ..
        }
    ));
    assert!(matches!(
        ops[4],
        Op::Jump {
            cond: Some(_),
            target: 2,
            bound: Some(1_000_000)
        }
    ));
    assert_eq!(c.outputs[0].name, "total");
    // Line of each operation, counted in the code block.
    let lines: Vec<u32> = src
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim();
            !(l.is_empty()
                || l.starts_with('#')
                || l.ends_with(':')
                || l.starts_with("input")
                || l.starts_with("buffer")
                || l.starts_with("output"))
        })
        .map(|(i, _)| i as u32 + 1)
        .collect();
    assert_eq!(parsed.op_lines, lines);
    // The example is canonical text.
    let without_comments: String = src
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(text::print(c), without_comments);
}

// ----- canonical printing -----------------------------------------------------------------

#[test]
fn canonical_text_is_a_fixed_point() {
    let src = "\
mode continue
input path dir = \"/srv\"
input int limit = 3
buffer dents 4096
buffer st 256 local
d = openat cwd $dir O_RDONLY|O_DIRECTORY 0o0
n = getdents64 d dents
map e in dirents(dents[0..n]) {
    r = statx d e AT_SYMLINK_NOFOLLOW STATX_SIZE st
    size = load u64 st 40
    total = total + size
    if e.type != 8 goto L8
    count = count + 1
L8:
}
close_1 = close d
map i in range(0, limit, 1) {
    call checksum dents[i..]
}
map p in paths(\"a\", $dir, \"b\\0\\n\") {
    unlinkat cwd p 0
}
map o in offsets(-1, 0, 4096) {
    x = o min -9223372036854775808
}
output total
output \"file count\" = count
";
    let c = parse_ok(src);
    assert_eq!(text::print(&c), src);
    assert!(matches!(
        c.ops[2],
        Op::MapBegin {
            source: MapSource::Dirents { .. },
            end: 8
        }
    ));
    assert_eq!(c.ops[8], Op::MapEnd { begin: 2 });
}

#[test]
fn declarations_keep_table_order() {
    // Registers created in an order that first mentions would not reproduce.
    let mut c = parse_ok("a = 1\nb = 2\n");
    c.regs.reverse();
    c.ops = vec![
        Op::Mov {
            dst: Reg(1),
            src: Value::Imm(1),
        },
        Op::Mov {
            dst: Reg(0),
            src: Value::Imm(2),
        },
    ];
    c.data = vec![b"unused".to_vec(), b"x".to_vec()];
    c.inputs.push(Input {
        name: "p".into(),
        kind: InputKind::Path(DataId(1)),
    });
    let printed = text::print(&c);
    assert_eq!(
        printed,
        "reg b a\ndata \"unused\" $p\ninput path p = \"x\"\na = 1\nb = 2\n"
    );
    assert_eq!(parse_ok(&printed), c);
}

#[test]
fn dirents_with_other_register_names_use_the_long_form() {
    let src = "buffer b 64\nmap e, k, i in dirents(b) {\n}\n";
    let c = parse_ok(src);
    assert_eq!(c.regs, ["k", "i"]);
    assert_eq!(text::print(&c), src);
}

#[test]
fn ill_formed_compounds_print_markers_that_do_not_parse() {
    let c = Compound {
        ops: vec![Op::Mov {
            dst: Reg(3),
            src: Value::Imm(1),
        }],
        ..Compound::default()
    };
    let printed = text::print(&c);
    assert_eq!(printed, "?r3 = 1\n");
    assert!(text::parse(&printed).is_err());

    let c = Compound {
        buffers: parse_ok("buffer b 8\n").buffers,
        ops: vec![Op::Sys {
            call: Sys::Read,
            args: vec![Arg::Buf(BufRange::whole(BufId(0))), Arg::Fd(FdRef::Std(9))],
            ret: Ret::None,
        }],
        ..Compound::default()
    };
    assert_eq!(text::print(&c), "buffer b 8\nread ?operand ?operand\n");
    // The binary format keeps even that, with tagged operands.
    assert_eq!(binary::decode(&binary::encode(&c)), Ok(c));
}

#[test]
fn builder_compounds_print_and_parse_back_with_their_names() {
    let mut b = cosy_model::Builder::new();
    let p = b.path("x");
    let fd = b.openat(FdRef::Cwd, p, OFlags::empty(), Mode::empty());
    let buf = b.buffer("buf", 16);
    b.read(fd, buf);
    let c = b.finish();
    let printed = text::print(&c);
    assert_eq!(
        printed,
        "buffer buf 16\nfd = openat cwd \"x\" O_RDONLY 0o0\nn = read fd buf\n"
    );
    let back = text::parse(&printed).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.compound, c);
}

// ----- load -------------------------------------------------------------------------------

#[test]
fn load_tells_the_formats_apart() {
    let c = parse_ok("x = 5\noutput x\n");
    let t = load(b"x = 5\noutput x\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((t.format, t.op_lines), (Format::Text, Some(vec![1])));
    let b = load(&binary::encode(&c)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (b.format, b.op_lines, b.compound),
        (Format::Binary, None, c)
    );
}

#[test]
fn load_reports_invalid_utf8_by_line_and_column() {
    match load(b"x = 1\nyz\xff = 2\n") {
        Err(LoadError::Text(e)) => assert_eq!((e.line, e.column), (2, 3)),
        other => panic!("{other:?}"),
    }
    match load(b"\0COSY\x07\x00") {
        Err(LoadError::Binary(e)) => {
            assert_eq!(e.offset, 5);
            assert!(e.to_string().contains("version 1, found version 7"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

// ----- binary errors ----------------------------------------------------------------------

#[test]
fn decode_errors_say_where_and_what() {
    let e = binary::decode(b"COSY").err().map(|e| e.offset);
    assert_eq!(e, Some(0));

    let c = parse_ok("buffer b 8\nx = load u8 b 0\n");
    let mut bytes = binary::encode(&c);
    bytes.push(0);
    let e = binary::decode(&bytes).err();
    assert_eq!(e.as_ref().map(|e| e.offset), Some(bytes.len() - 1));
    assert!(e.is_some_and(|e| e.expected.contains("end of the compound")));

    // A length prefix far larger than the input is refused before allocating.
    let mut huge = MAGIC.to_vec();
    huge.extend_from_slice(&[1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    let e = binary::decode(&huge).err();
    assert_eq!(e.as_ref().map(|e| e.offset), Some(8));

    // An index out of range of its table.
    let c = Compound {
        regs: vec!["x".into()],
        ops: vec![Op::Mov {
            dst: Reg(0),
            src: Value::Reg(Reg(0)),
        }],
        ..Compound::default()
    };
    let mut bytes = binary::encode(&c);
    let last_reg = bytes.len() - 2; // ops: tag, dst, value tag, reg; then outputs count
    bytes[last_reg] = 7;
    let e = binary::decode(&bytes).err();
    assert_eq!(e.as_ref().map(|e| e.offset), Some(last_reg));
    assert!(e.is_some_and(|e| e.expected.contains("register index below 1, found 7")));
}

#[test]
fn paths_and_vars_encode_distinctly() {
    let c = Compound {
        data: vec![b"a".to_vec()],
        paths: vec!["p".into()],
        ops: vec![
            Op::MapBegin {
                source: MapSource::Paths {
                    list: vec![DataId(0)],
                    var: PathVar(0),
                },
                end: 2,
            },
            Op::Sys {
                call: Sys::Unlinkat,
                args: vec![
                    Arg::Fd(FdRef::Cwd),
                    Arg::Path(PathRef::Var(PathVar(0))),
                    Arg::Value(Value::Imm(0)),
                ],
                ret: Ret::None,
            },
            Op::MapEnd { begin: 0 },
        ],
        ..Compound::default()
    };
    assert_eq!(binary::decode(&binary::encode(&c)), Ok(c));
}

// ----- parse errors -----------------------------------------------------------------------

#[test]
fn error_display_has_line_and_column() {
    let e = text::parse("x = 1\n  y = frob 2\n").err();
    assert_eq!(
        e.map(|e| e.to_string()),
        Some("line 2, column 7: unknown mnemonic `frob` (not a system call of the table)".into())
    );
}

#[test]
fn unknown_mnemonic() {
    assert_eq!(parse_err("frob x y\n").0..=parse_err("frob x y\n").1, 1..=1);
    let (l, c, m) = parse_err("x = 1\n\n   frobnicate f\n");
    assert_eq!((l, c), (3, 4));
    assert!(m.contains("unknown mnemonic `frobnicate`"), "{m}");
}

#[test]
fn unknown_buffer() {
    let (l, c, m) = parse_err("buffer b 8\nn = read stdin bb\n");
    assert_eq!((l, c), (2, 16));
    assert!(m.contains("unknown buffer `bb`"), "{m}");
    let (l, c, _) = parse_err("x = load u8 nope 0\n");
    assert_eq!((l, c), (1, 13));
    let (l, c, _) = parse_err("buffer b 8\nx = call f b[0..4] c[1..]\n");
    assert_eq!((l, c), (2, 20));
}

#[test]
fn unknown_label() {
    let (l, c, m) = parse_err("L0:\ngoto L0\nif 1 == 2 goto L9 bound 3\n");
    assert_eq!((l, c), (3, 16));
    assert_eq!(m, "unknown label `L9`");
    let (l, c, m) = parse_err("L0:\nL0:\n");
    assert_eq!((l, c), (2, 1));
    assert!(m.contains("already defined on line 1"), "{m}");
}

#[test]
fn unknown_input() {
    let (l, c, m) = parse_err("f = openat cwd $nope O_RDONLY 0\n");
    assert_eq!((l, c), (1, 16));
    assert!(m.contains("unknown input `$nope`"), "{m}");
    let (l, c, m) = parse_err("input int n = 1\nf = openat cwd $n 0 0\n");
    assert_eq!((l, c), (2, 16));
    assert!(m.contains("integer input"), "{m}");
}

#[test]
fn wrong_operand_counts() {
    let (l, c, m) = parse_err("buffer b 8\nn = read stdin\n");
    assert_eq!((l, c), (2, 15));
    assert_eq!(m, "`read` takes 2 operands (fd buf), found 1");
    let (l, c, m) = parse_err("buffer b 8\nn = read stdin b 12\n");
    assert_eq!((l, c), (2, 18));
    assert_eq!(m, "`read` takes 2 operands (fd buf); `12` is one too many");
    let (_, c, m) = parse_err("getpid 1\n");
    assert_eq!(c, 8);
    assert_eq!(m, "`getpid` takes no operands; `1` is one too many");
}

#[test]
fn bad_numbers() {
    let (l, c, m) = parse_err("x = 12abc\n");
    assert_eq!((l, c), (1, 5));
    assert_eq!(m, "bad number `12abc`");
    let (_, c, m) = parse_err("x = y + 99999999999999999999\n");
    assert_eq!(c, 9);
    assert!(m.contains("does not fit"), "{m}");
    let (_, c, _) = parse_err("x = 9223372036854775808\n");
    assert_eq!(c, 5);
    assert_eq!(
        parse_ok("x = -9223372036854775808\n").ops[0],
        Op::Mov {
            dst: Reg(0),
            src: Value::Imm(i64::MIN)
        }
    );
    let (_, c, _) = parse_err("x = 0x\n");
    assert_eq!(c, 5);
    let (l, c, m) = parse_err("buffer b 5GiB\n");
    assert_eq!((l, c), (1, 10));
    assert!(m.contains("bad number"), "{m}");
    let (_, c, m) = parse_err("buffer b 8MiB\nbuffer c 4096MiB\n");
    assert_eq!(c, 10);
    assert!(m.contains("4294967295"), "{m}");
    let (_, c, m) = parse_err("L0:\ngoto L0 bound -1\n");
    assert_eq!(c, 15);
    assert!(m.contains("loop bound"), "{m}");
}

#[test]
fn unterminated_strings_and_bad_escapes() {
    let (l, c, m) = parse_err("x = 1\nf = openat cwd \"/etc O_RDONLY 0\n");
    assert_eq!((l, c), (2, 16));
    assert!(m.contains("unterminated string"), "{m}");
    let (_, c, m) = parse_err("f = openat cwd \"a\\qb\" 0 0\n");
    assert_eq!(c, 18);
    assert!(m.contains("unknown escape"), "{m}");
    let (_, c, _) = parse_err("f = openat cwd \"a\\x4\" 0 0\n");
    assert_eq!(c, 18);
}

#[test]
fn unbalanced_braces() {
    let (l, c, m) = parse_err("x = 1\n}\n");
    assert_eq!((l, c), (2, 1));
    assert!(m.contains("unbalanced `}`"), "{m}");
    let (l, c, m) = parse_err("map i in range(0, 4, 1) {\n    map j in offsets(1) {\n    }\n");
    assert_eq!((l, c), (1, 25));
    assert!(m.contains("unbalanced `{`"), "{m}");
    let (_, c, _) = parse_err("map i in range(0, 4, 1)\n}\n");
    assert_eq!(c, 24);
    let (_, c, _) = parse_err("map i in range(0, 4, 1) { x = 1\n}\n");
    assert_eq!(c, 27);
}

#[test]
fn other_errors_point_at_the_token() {
    let cases: &[(&str, u32, u32, &str)] = &[
        ("mode fast\n", 1, 6, "unknown mode"),
        ("x = 1\nbuffer b 8\n", 2, 1, "declarations come before"),
        ("buffer b 8\nbuffer b 9\n", 2, 8, "declared twice"),
        ("buffer O_CREAT 8\n", 1, 8, "named constant"),
        ("buffer b 8\nb = 1\n", 2, 1, "is a buffer"),
        ("read = 1\n", 1, 1, "system call"),
        ("O_CREAT = 1\n", 1, 1, "named constant"),
        ("cwd = openat cwd \"x\" 0 0\n", 1, 1, "standard descriptor"),
        (
            "f = openat cwd \"x\" O_RDONLY | O_CREAT 0\n",
            1,
            29,
            "without spaces",
        ),
        ("x = a ? b\n", 1, 7, "unexpected character"),
        ("x = a b\n", 1, 5, "unknown mnemonic `a`"),
        ("a = 1\nx = a b\n", 2, 7, "expected an operator"),
        ("if x goto L0\n", 1, 6, "expected an operator"),
        ("if x == 1 L0\n", 1, 11, "`goto`"),
        ("map x in lines(1) {\n}\n", 1, 10, "unknown map source"),
        (
            "map x, y, z in range(0, 1, 1) {\n}\n",
            1,
            16,
            "only `dirents`",
        ),
        ("input float x = 1\n", 1, 7, "unknown input kind"),
        ("input path p = 5\n", 1, 16, "expected a string"),
        (
            "input int n = 1\ninput path n = \"x\"\n",
            2,
            12,
            "declared twice",
        ),
        ("data $p\n", 1, 6, "names no path input"),
        ("x = load u128 b 0\n", 1, 10, "unknown width"),
        ("output \"a b\"\n", 1, 13, "`= REGISTER`"),
        ("$ = 1\n", 1, 1, "`$` must be followed"),
        ("x = 1 +\n", 1, 8, "expected a value"),
        ("store u8\n", 1, 9, "expected a buffer"),
    ];
    for &(src, line, col, needle) in cases {
        let (l, c, m) = parse_err(src);
        assert_eq!((l, c), (line, col), "{src:?}: {m}");
        assert!(m.contains(needle), "{src:?}: {m}");
    }
}

#[test]
fn labels_may_share_a_line_with_an_operation() {
    let c = parse_ok("x = 0\ntop: x = x + 1\nif x < 10 goto top bound 10\n");
    assert_eq!(
        c.ops[2],
        Op::Jump {
            cond: Some(cosy_model::Cond {
                op: cosy_model::BinOp::Lt,
                a: Value::Reg(Reg(0)),
                b: Value::Imm(10)
            }),
            target: 1,
            bound: Some(10)
        }
    );
    assert_eq!(
        text::print(&c),
        "x = 0\nL1:\nx = x + 1\nif x < 10 goto L1 bound 10\n"
    );
}

#[test]
fn sizes_constants_and_flags() {
    let c = parse_ok(
        "buffer a 64KiB\nbuffer b 1MiB local\nbuffer st STATX_BYTES\n\
         f = openat cwd \"x\" O_WRONLY|O_CREAT|0x40000000 0o644\nlseek f -1 SEEK_END\n",
    );
    assert_eq!(c.buffers[0].size, 64 << 10);
    assert_eq!(c.buffers[1].size, 1 << 20);
    assert!(c.buffers[1].local);
    assert_eq!(c.buffers[2].size, 256);
    let Op::Sys { args, .. } = &c.ops[0] else {
        panic!("{:?}", c.ops[0]);
    };
    let expect = i64::from(libc::O_WRONLY | libc::O_CREAT) | 0x4000_0000;
    assert_eq!(args[2], Arg::Value(Value::Imm(expect)));
    assert_eq!(args[3], Arg::Value(Value::Imm(0o644)));
    let printed = text::print(&c);
    assert!(printed.contains("buffer a 65536\nbuffer b 1048576 local\nbuffer st 256\n"));
    assert!(printed.contains("lseek f -1 SEEK_END\n"), "{printed}");
    assert_eq!(parse_ok(&printed), c);
}

#[test]
fn arithmetic_versus_flag_combinations() {
    let c = parse_ok("a = 1\nx = O_CREAT|O_EXCL\ny = 1 | 2\nz = a|O_EXCL\nw = O_EXCL|a\n");
    let creat_excl = i64::from(libc::O_CREAT | libc::O_EXCL);
    assert_eq!(
        c.ops[1],
        Op::Mov {
            dst: Reg(1),
            src: Value::Imm(creat_excl)
        }
    );
    assert!(matches!(
        c.ops[2],
        Op::Arith {
            op: cosy_model::BinOp::Or,
            ..
        }
    ));
    assert!(matches!(
        c.ops[3],
        Op::Arith {
            op: cosy_model::BinOp::Or,
            ..
        }
    ));
    assert!(matches!(
        c.ops[4],
        Op::Arith {
            op: cosy_model::BinOp::Or,
            ..
        }
    ));
}

#[test]
fn calls_take_data_constants() {
    let src = "input path word = \"x\"\nbuffer b 64\nc = call find b[0..8] $word\nd = call find b \"needle\"\n";
    let c = parse_ok(src);
    assert_eq!(
        c.ops[0],
        Op::Call {
            dst: Some(Reg(0)),
            func: "find".into(),
            args: vec![
                Arg::Buf(BufRange {
                    buf: BufId(0),
                    start: Value::Imm(0),
                    end: Some(Value::Imm(8))
                }),
                Arg::Path(PathRef::Data(DataId(0))),
            ],
        }
    );
    assert_eq!(text::print(&c), src);
}

/// Every example of the repository (`examples/*.cosy`) parses, and its canonical text is a
/// fixed point.
#[test]
fn the_repository_examples_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("cosy") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap_or_default();
        let c = match text::parse(&src) {
            Ok(p) => p.compound,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        let printed = text::print(&c);
        assert_eq!(
            text::print(&parse_ok(&printed)),
            printed,
            "{}",
            path.display()
        );
        assert_eq!(
            binary::decode(&binary::encode(&c)),
            Ok(c),
            "{}",
            path.display()
        );
    }
}

#[test]
fn keywords_are_names_where_unambiguous() {
    let src =
        "fd fd\nif = 1\nmap = map + 1\nfd = openat cwd \"x\" O_RDONLY 0o0\nclose fd\noutput if\n";
    let c = parse_ok(src);
    assert_eq!(c.fds, ["fd"]);
    assert_eq!(c.regs, ["if", "map"]);
    // `fd fd` is not needed: the first mention creates the slot in the same order.
    assert_eq!(
        text::print(&c),
        src.strip_prefix("fd fd\n").unwrap_or_default()
    );
}

/// Of every call of `c`: the call and its immediate flag and mode operands, by name.
fn flag_operands(c: &Compound, out: &mut Vec<(Sys, Vec<(&'static str, i64)>)>) {
    for op in &c.ops {
        if let Op::Sys { call, args, .. } = op {
            let flags = call
                .spec()
                .args
                .iter()
                .zip(args)
                .filter_map(|(spec, arg)| match (spec.kind, arg) {
                    (cosy_model::ArgKind::Flags(_), Arg::Value(Value::Imm(v))) => {
                        Some((spec.name, *v))
                    }
                    _ => None,
                })
                .collect();
            out.push((*call, flags));
        }
    }
}

#[test]
fn valid_compounds_pass_the_flags_programs_pass() {
    // Tapes from a fixed linear congruential sequence: the same compounds on every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut calls = Vec::new();
    for _ in 0..3000 {
        let tape: Vec<u64> = (0..400)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                x >> 11
            })
            .collect();
        flag_operands(
            &crate::testing::valid_compound_from_choices(&tape),
            &mut calls,
        );
    }
    let operand =
        |flags: &[(&str, i64)], name: &str| flags.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let has = |call: Sys, name: &str, pred: &dyn Fn(i64) -> bool| {
        calls
            .iter()
            .any(|(c, f)| *c == call && operand(f, name).is_some_and(pred))
    };
    let bit = |f: libc::c_int| move |v: i64| v & i64::from(f) == i64::from(f);
    for open in [Sys::Openat, Sys::Openat2] {
        for f in [
            libc::O_CREAT,
            libc::O_TRUNC,
            libc::O_APPEND,
            libc::O_RDWR,
            libc::O_DIRECTORY,
            libc::O_NOFOLLOW,
            libc::O_TMPFILE,
            libc::O_CLOEXEC,
        ] {
            assert!(
                has(open, "flags", &bit(f)),
                "{open:?} never gets flag {f:#o}"
            );
        }
        assert!(
            has(open, "flags", &|v| v == 0),
            "{open:?} never plain O_RDONLY"
        );
        assert!(
            has(open, "mode", &|m| m == 0o644),
            "{open:?} never mode 0o644"
        );
    }
    // A mode only where the open creates (openat2 refuses one elsewhere); O_WRONLY and O_EXCL
    // (see testing::ENV_GEN_FLAGS) only when asked for.
    let all = std::env::var_os(crate::testing::ENV_GEN_FLAGS).is_some_and(|v| v == "all");
    let (mut wronly, mut excl) = (false, false);
    for (call, f) in &calls {
        if !matches!(call, Sys::Openat | Sys::Openat2) {
            continue;
        }
        let (flags, mode) = (operand(f, "flags"), operand(f, "mode"));
        let Some(flags) = flags else { continue };
        let creating = flags & i64::from(libc::O_CREAT) != 0 || bit(libc::O_TMPFILE)(flags);
        if !creating {
            assert_eq!(
                mode,
                Some(0),
                "{call:?} flags {flags:#o} without O_CREAT has a mode"
            );
        }
        wronly |= flags & i64::from(libc::O_ACCMODE) == i64::from(libc::O_WRONLY);
        excl |= flags & i64::from(libc::O_EXCL) != 0;
    }
    assert_eq!(
        wronly, all,
        "O_WRONLY generated: {wronly}, COSY_GEN_FLAGS=all: {all}"
    );
    assert_eq!(
        excl, all,
        "O_EXCL generated: {excl}, COSY_GEN_FLAGS=all: {all}"
    );
    for f in [libc::AT_SYMLINK_NOFOLLOW, libc::AT_EMPTY_PATH] {
        assert!(has(Sys::Statx, "flags", &bit(f)), "statx never gets {f:#x}");
    }
    assert!(has(Sys::Unlinkat, "flags", &bit(libc::AT_REMOVEDIR)));
    for f in [
        libc::RENAME_NOREPLACE,
        libc::RENAME_EXCHANGE,
        libc::RENAME_WHITEOUT,
    ] {
        let f = i64::from(f);
        assert!(
            has(Sys::Renameat2, "flags", &|v| v == f),
            "renameat2 never {f}"
        );
    }
    assert!(has(Sys::Mkdirat, "mode", &|m| m == 0o755));
    assert!(has(Sys::Lseek, "whence", &|w| w == i64::from(libc::SEEK_END)));
}

#[test]
fn the_file_tool_calls_print_and_parse_back() {
    let src = "\
buffer b 64
buffer times 32
f = openat cwd \"a\" O_RDWR 0o0
r1 = linkat cwd \"a\" cwd \"b\" AT_SYMLINK_FOLLOW
r2 = symlinkat \"a\" cwd \"s\"
r3 = readlinkat cwd \"s\" b
r4 = fchmodat cwd \"a\" 0o640 AT_SYMLINK_NOFOLLOW
r5 = fchownat cwd \"a\" 65534 -1 AT_SYMLINK_NOFOLLOW|AT_EMPTY_PATH
r6 = utimensat cwd \"a\" times 0
r7 = fgetxattr f \"user.x\" b[0..0]
r8 = fsetxattr f \"user.x\" b[0..r7] XATTR_CREATE
r9 = flistxattr f b
r10 = faccessat2 cwd \"a\" R_OK|W_OK AT_SYMLINK_NOFOLLOW
r11 = faccessat2 cwd \"a\" 0 0
close f
";
    let c = parse_ok(src);
    assert_eq!(text::print(&c), src);
    assert_eq!(binary::decode(&binary::encode(&c)), Ok(c.clone()));
    let calls: Vec<Sys> = c
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::Sys { call, .. } => Some(*call),
            _ => None,
        })
        .collect();
    assert!(calls.contains(&Sys::Utimensat) && calls.contains(&Sys::Faccessat2));
}

#[test]
fn the_generators_make_every_call_of_the_table() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    for strategy in [compound().boxed(), valid_compound().boxed()] {
        for _ in 0..2000 {
            let c = strategy.new_tree(&mut runner).unwrap().current();
            for op in &c.ops {
                if let Op::Sys { call, .. } = op {
                    seen.insert(*call);
                }
            }
        }
        for call in Sys::ALL {
            assert!(seen.contains(call), "{call:?} never generated");
        }
        seen.clear();
    }
}
