//! The differential harness: every compound of the test corpus runs on every executor
//! (`common::executors`: direct, ring, ring with SQPOLL, ring without io_uring, ring with a
//! kernel probe lacking opcodes, ring with its optimisations off, auto), each in a fresh copy
//! of its fixture directory, and the outcomes must agree: outputs, the error that stopped the
//! run, the errors of `continue` mode, and a digest of the files left in the directory. Every
//! traced run must also close every descriptor it opened.
//!
//! The corpus: the examples of `examples/*.cosy` (run as files are, under
//! `Policy::untrusted` with the repository as root, inputs redirected into the fixture),
//! the compounds the other tests build, property-generated compounds
//! (`cosy_format::testing::valid_compound`, those the verifier accepts) and error cases
//! (missing files, closed descriptors, loop bounds, fuel cut at every operation, range errors,
//! paths escaping the root, failures inside concurrent maps, both error modes).
//!
//! Some compounds observe their environment (inode numbers, timestamps from `statx`,
//! `getdents64` records): the direct executor runs such a case three times in three fixture
//! copies, and only what those runs agree on is compared.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use cosy_exec::{Error, Outcome, RunOptions};
use cosy_model::{
    Arg, BinOp, Builder, Compound, ErrorMode, FdRef, FdSlot, Op, Policy, Ret, Sys, Width,
    builder::cond,
};
use proptest::prelude::*;

/// The repository's root (examples run with it as the policy root).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A fresh directory under the repository's `target/` (inside the examples' root).
fn scratch() -> tempfile::TempDir {
    let base = repo().join("target").join("cosy-differential");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(base)
        .unwrap()
}

/// The fixture every case starts from: files of several sizes, directories, a symlink.
fn fixture(dir: &Path) {
    std::fs::write(dir.join("a"), text(300, 1)).unwrap();
    std::fs::create_dir_all(dir.join("dir")).unwrap();
    std::fs::write(dir.join("dir/b"), text(5000, 2)).unwrap();
    std::fs::create_dir_all(dir.join("sub dir")).unwrap();
    std::fs::write(dir.join("sub dir/\u{e9}"), text(70, 3)).unwrap();
    std::fs::write(dir.join("empty"), b"").unwrap();
    std::fs::write(dir.join("page"), text(4096, 4)).unwrap();
    std::fs::write(dir.join("big"), text(100_003, 5)).unwrap();
    std::fs::create_dir_all(dir.join("tree")).unwrap();
    for i in 0..40 {
        std::fs::write(dir.join(format!("tree/f{i:02}")), text(i * 97, i as u64)).unwrap();
    }
    std::fs::create_dir(dir.join("tree/sub")).unwrap();
    std::os::unix::fs::symlink("a", dir.join("link")).unwrap();
}

/// A digest of the files under `dir`: relative paths, kinds, contents (not times or inodes).
fn digest(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let what = if m.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                format!("link -> {:?}", std::fs::read_link(&p).unwrap())
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                format!(
                    "file {} bytes, fnv {:016x}",
                    bytes.len(),
                    cosy_exec::funcs::fnv1a64(&bytes)
                )
            };
            out.insert(rel, what);
        }
    }
    out
}

/// What is compared of one run.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    outputs: Vec<(String, i64)>,
    error: Option<String>,
    errors: Vec<(u32, Sys, i32)>,
    files: BTreeMap<String, String>,
}

fn seen(out: &Outcome, dir: &Path, files: BTreeMap<String, String>) -> Seen {
    let root = dir.to_string_lossy().into_owned();
    Seen {
        outputs: out.outputs.clone(),
        // Setup messages may name the fixture directory, which differs from run to run.
        error: out
            .error
            .as_ref()
            .map(|e| format!("{e:?}").replace(&root, "<dir>")),
        errors: out.errors.iter().map(|e| (e.op, e.call, e.errno)).collect(),
        files,
    }
}

/// Builds a case's compound and policy for a fixture directory.
type Build<'a> = Box<dyn Fn(&Path) -> Option<(Compound, Policy)> + 'a>;

/// Makes a compound.
type Make = Box<dyn Fn() -> Compound>;

/// A test case: builds its compound and policy for a fixture directory.
struct Case<'a> {
    name: String,
    build: Build<'a>,
    opts: RunOptions,
}

/// Runs `case` in a fresh fixture with `opts`: what is compared, or `None` if the compound
/// does not verify.
fn run_once(case: &Case<'_>, opts: &RunOptions) -> Option<(Seen, Outcome)> {
    let dir = scratch();
    fixture(dir.path());
    let (c, policy) = (case.build)(dir.path())?;
    let v = cosy_verify::verify(c, &policy).ok()?;
    let opts = RunOptions {
        trace: true,
        functions: case.opts.functions.clone(),
        ..opts.clone()
    };
    let out = cosy_exec::run(&v, &opts);
    assert_trace_closes(&out);
    let files = digest(dir.path());
    Some((seen(&out, dir.path(), files), out))
}

/// Runs `case` on every executor and compares with the direct executor. Returns whether the
/// compound verified (and so ran).
fn differential(case: &Case<'_>) -> bool {
    let direct = RunOptions {
        backend: cosy_exec::Backend::Direct,
        ..RunOptions::default()
    };
    let Some((reference, ref_out)) = run_once(case, &direct) else {
        return false;
    };
    // What the environment decides: what two more direct runs disagree on is not compared.
    let mut stable = Stable::all();
    for _ in 0..2 {
        let (again, _) = run_once(case, &direct).expect("verified before");
        stable.keep_agreeing(&reference, &again);
    }
    for (name, opts) in executors() {
        if name == "direct" {
            continue;
        }
        let (got, out) = run_once(case, &opts).expect("verified before");
        if let Some(diff) = stable.differ(&reference, &got) {
            // The environment may decide (a branch on a timestamp): accept what the direct
            // executor itself produces in some fixtures — compared on what those runs, which
            // stopped the same way, agree on.
            let mut same: Vec<Seen> = Vec::new();
            for _ in 0..40 {
                if let Some((again, _)) = run_once(case, &direct)
                    && again.error == got.error
                {
                    same.push(again);
                    if same.len() == 3 {
                        break;
                    }
                }
            }
            if same.len() >= 2 {
                let mut st = Stable::all();
                for other in &same[1..] {
                    st.keep_agreeing(&same[0], other);
                }
                if st.differ(&same[0], &got).is_none() {
                    continue;
                }
            }
            // Or the other way round: run again, this executor produces the direct one's
            // outcome (a rare branch on a timestamp or an inode number taken once).
            let again = (0..20).any(|_| {
                run_once(case, &opts)
                    .is_some_and(|(again, _)| stable.differ(&reference, &again).is_none())
            });
            if again {
                continue;
            }
            panic!(
                "DIFFERENT on {name}: {diff}\ncase {}\n--- direct:\n{}\n--- {name}:\n{}",
                case.name,
                show(&ref_out),
                show(&out)
            );
        }
    }
    true
}

/// Which parts of a case's outcome do not depend on the environment.
struct Stable {
    outputs: Vec<bool>,
    error: bool,
    errors: bool,
    files: bool,
}

impl Stable {
    fn all() -> Stable {
        Stable {
            outputs: Vec::new(),
            error: true,
            errors: true,
            files: true,
        }
    }

    fn keep_agreeing(&mut self, a: &Seen, b: &Seen) {
        if self.outputs.is_empty() {
            self.outputs = vec![true; a.outputs.len()];
        }
        for (i, keep) in self.outputs.iter_mut().enumerate() {
            *keep &= a.outputs.get(i) == b.outputs.get(i);
        }
        self.error &= a.error == b.error;
        self.errors &= a.errors == b.errors;
        self.files &= a.files == b.files;
    }

    fn differ(&self, want: &Seen, got: &Seen) -> Option<String> {
        if want.outputs.len() != got.outputs.len() {
            return Some(format!("outputs {:?} != {:?}", got.outputs, want.outputs));
        }
        for (i, keep) in self.outputs.iter().enumerate() {
            if *keep && want.outputs[i] != got.outputs[i] {
                return Some(format!(
                    "output {:?} != {:?} (all: {:?} != {:?})",
                    got.outputs[i], want.outputs[i], got.outputs, want.outputs
                ));
            }
        }
        if self.error && want.error != got.error {
            return Some(format!("error {:?} != {:?}", got.error, want.error));
        }
        if self.errors && want.errors != got.errors {
            return Some(format!("errors {:?} != {:?}", got.errors, want.errors));
        }
        if self.files && want.files != got.files {
            let mut d = Vec::new();
            for (k, v) in &want.files {
                if got.files.get(k) != Some(v) {
                    d.push(format!("{k}: want {v}, got {:?}", got.files.get(k)));
                }
            }
            for (k, v) in &got.files {
                if !want.files.contains_key(k) {
                    d.push(format!("{k}: unexpected {v}"));
                }
            }
            return Some(format!("files differ: {d:?}"));
        }
        None
    }
}

/// `c` with the standard streams replaced by an fd slot opened at the start on `path`
/// (write-only, appending): tests must not write to the real ones, nor read stdin.
fn redirect_std(mut c: Compound, path: &[u8]) -> Compound {
    let uses_std = |a: &Arg| matches!(a, Arg::Fd(FdRef::Std(_)));
    let any = c.ops.iter().any(|op| match op {
        Op::Sys { args, .. } | Op::Call { args, .. } => args.iter().any(uses_std),
        _ => false,
    });
    if !any {
        return c;
    }
    let slot = FdSlot(c.fds.len() as u16);
    c.fds.push("redirected_std".into());
    let data = cosy_model::DataId(c.data.len() as u16);
    c.data.push(path.to_vec());
    for op in &mut c.ops {
        match op {
            Op::Sys { args, .. } | Op::Call { args, .. } => {
                for a in args.iter_mut() {
                    if uses_std(a) {
                        *a = Arg::Fd(FdRef::Slot(slot));
                    }
                }
            }
            Op::Jump { target, .. } => *target += 1,
            Op::MapBegin { end, .. } => *end += 1,
            Op::MapEnd { begin } => *begin += 1,
            _ => {}
        }
    }
    c.ops.insert(
        0,
        Op::Sys {
            call: Sys::Openat,
            args: vec![
                Arg::Fd(FdRef::Cwd),
                Arg::Path(cosy_model::PathRef::Data(data)),
                Arg::Value(i64::from(libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND).into()),
                Arg::Value(0o644.into()),
            ],
            ret: Ret::Fd(slot),
        },
    );
    c
}

/// `c` with its pipes made non-blocking: a read of an empty pipe (or a write to a full one)
/// would block a sequential run forever (a plain system call ignores the time limit).
fn nonblocking_pipes(mut c: Compound) -> Compound {
    for op in &mut c.ops {
        if let Op::Sys {
            call: Sys::Pipe2,
            args,
            ..
        } = op
            && let Some(Arg::Value(v)) = args.get_mut(2)
        {
            let flags = match v {
                cosy_model::Value::Imm(f) => *f,
                cosy_model::Value::Reg(_) => 0,
            };
            *v = cosy_model::Value::Imm(flags | i64::from(libc::O_NONBLOCK));
        }
    }
    c
}

fn untrusted(dir: &Path) -> Policy {
    let mut p = Policy::untrusted(dir);
    p.time = Duration::from_secs(20);
    p
}

fn case<'a>(name: impl Into<String>, build: impl Fn(&Path) -> Compound + 'a) -> Case<'a> {
    Case {
        name: name.into(),
        build: Box::new(move |d| Some((build(d), untrusted(d)))),
        opts: RunOptions::default(),
    }
}

fn trusted_case<'a>(name: impl Into<String>, build: impl Fn(&Path) -> Compound + 'a) -> Case<'a> {
    Case {
        name: name.into(),
        build: Box::new(move |d| Some((build(d), Policy::trusted()))),
        opts: RunOptions::default(),
    }
}

fn run_all(cases: Vec<Case<'_>>) {
    for c in &cases {
        assert!(differential(c), "case {} does not verify", c.name);
    }
}

// ------------------------------------------------------------------------ the examples

#[test]
fn examples() {
    let root = repo();
    let mut names: Vec<PathBuf> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cosy"))
        .collect();
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    let mut cases = Vec::new();
    for path in &names {
        let src = std::fs::read_to_string(path).unwrap();
        let parsed = cosy_format::text::parse(&src).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        // As they are, and with their inputs pointing into the fixture.
        let variants: Vec<Vec<(&str, &str)>> = match stem.as_str() {
            "cat" => vec![vec![], vec![("file", "big")], vec![("file", "empty")]],
            "copy" => vec![
                vec![("dst", "copy.out")],
                vec![("src", "big"), ("dst", "copy.out")],
                vec![("src", "missing"), ("dst", "copy.out")],
                vec![("src", "a"), ("dst", "nodir/copy.out")],
            ],
            "dirsize" => vec![vec![], vec![("dir", "tree")], vec![("dir", "missing")]],
            "wordcount" => vec![vec![], vec![("dir", "tree"), ("word", "cosy")]],
            "thesis" => vec![
                vec![],
                vec![("name", "page")],
                vec![("name", "big")],
                vec![("name", "empty")],
                vec![("name", "missing")],
                vec![("name", "dir")],
            ],
            "getpid" => vec![vec![], vec![("count", "1000")]],
            _ => vec![vec![]],
        };
        for overrides in variants {
            let base = parsed.compound.clone();
            let root = root.clone();
            let name = format!("{stem} {overrides:?}");
            cases.push(Case {
                name,
                build: Box::new(move |dir: &Path| {
                    let rel = dir
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    let mut c = base.clone();
                    for (k, v) in &overrides {
                        let value = if k == &"count" || k == &"word" {
                            v.to_string()
                        } else {
                            format!("{rel}/{v}")
                        };
                        c.set_input(k, &value).unwrap();
                    }
                    let out = format!("{}/stdout", dir.display());
                    let mut policy = Policy::untrusted(&root);
                    policy.time = Duration::from_secs(20);
                    Some((redirect_std(c, out.as_bytes()), policy))
                }),
                opts: RunOptions::default(),
            });
        }
    }
    run_all(cases);
}

// ------------------------------------------------------------------------ built compounds

#[test]
fn built_compounds() {
    let abs = |d: &Path, rel: &str| bytes(&d.join(rel));
    let cases = vec![
        trusted_case("thesis big", move |d| thesis_loop(&abs(d, "big"), 4096)),
        trusted_case("thesis page", move |d| thesis_loop(&abs(d, "page"), 4096)),
        trusted_case("thesis small buffer", move |d| {
            thesis_loop(&abs(d, "dir/b"), 64)
        }),
        trusted_case("thesis missing", move |d| thesis_loop(&abs(d, "nope"), 64)),
        trusted_case("du", move |d| du(&abs(d, "tree"))),
        trusted_case("grep", move |d| grep_count(&abs(d, "tree"), b"cosy")),
        trusted_case("copy rw", move |d| {
            copy_rw(&abs(d, "big"), &abs(d, "out"), 8192)
        }),
        trusted_case("copy cfr", move |d| {
            copy_cfr(&abs(d, "big"), &abs(d, "out"))
        }),
        trusted_case("copy splice", move |d| {
            copy_splice(&abs(d, "big"), &abs(d, "out"))
        }),
        trusted_case("copy sendfile", move |d| {
            copy_sendfile(&abs(d, "big"), &abs(d, "out"))
        }),
        trusted_case("open missing", move |d| open_missing(&abs(d, "nope"))),
        trusted_case("open missing, continue", move |d| {
            let mut c = open_missing(&abs(d, "nope"));
            c.mode = ErrorMode::Continue;
            c
        }),
        trusted_case("reopen", move |d| reopen_and_leave_open(&abs(d, "a"), 5)),
        case("du under root", |_| du(b"tree")),
        case("grep under root", |_| grep_count(b"tree", b"alpha")),
        case("copy under root", |_| copy_rw(b"big", b"dir/out", 4096)),
    ];
    run_all(cases);
}

// ------------------------------------------------------------------------ error cases

/// A map over the files of `tree` opening, reading and checksumming each, with an
/// accumulator and a local register; the files listed in `missing` do not exist.
fn map_of_files(missing: &[usize], mode: ErrorMode) -> Compound {
    let mut c = Builder::new();
    c.mode(mode);
    let files: Vec<String> = (0..20)
        .map(|i| {
            if missing.contains(&i) {
                format!("tree/missing{i}")
            } else {
                format!("tree/f{i:02}")
            }
        })
        .collect();
    let buf = c.local_buffer("buf", 1024);
    let total = c.value("total", 0);
    let sums = c.value("sums", 0);
    let last = c.reg("last");
    c.map_paths(files, |c, p| {
        let fd = c.openat(FdRef::Cwd, p, RDONLY, 0);
        let n = c.read(fd, buf);
        c.close(fd);
        let s = c.call("checksum", vec![Arg::Buf(buf.prefix(n))]);
        c.set(last, s);
        c.accumulate(total, n);
        c.accumulate(sums, s);
    });
    c.set(last, 0);
    c.output("total", total);
    c.output("sums", sums);
    c.output("last", last);
    c.finish()
}

#[test]
fn failures_inside_maps() {
    let mut cases = Vec::new();
    for mode in [ErrorMode::Stop, ErrorMode::Continue] {
        for missing in [
            vec![],
            vec![0],
            vec![7],
            vec![19],
            vec![3, 11],
            vec![1, 2, 3],
        ] {
            let m = missing.clone();
            cases.push(case(
                format!("map of files {mode:?} {missing:?}"),
                move |_| map_of_files(&m, mode),
            ));
        }
    }
    // Division by zero in one iteration, a range error in another.
    for bad in [0i64, 5, 19] {
        cases.push(case(format!("arith in iteration {bad}"), move |_| {
            let mut c = Builder::new();
            let total = c.value("total", 0);
            let buf = c.local_buffer("b", 16);
            c.map_range(0, 20, 1, |c, i| {
                c.nop();
                let d = c.arith(BinOp::Sub, i, bad);
                let q = c.arith(BinOp::Div, 100, d);
                c.pread(FdRef::Std(0), buf, 0);
                c.accumulate(total, q);
            });
            c.output("total", total);
            c.finish()
        }));
        cases.push(case(format!("range in iteration {bad}"), move |_| {
            let mut c = Builder::new();
            let total = c.value("total", 0);
            let buf = c.local_buffer("b", 16);
            let p = c.path("big");
            let fd = c.openat(FdRef::Cwd, p, RDONLY, 0);
            c.map_range(0, 20, 1, |c, i| {
                let n = c.pread(fd, buf, i);
                c.accumulate(total, n);
                let end = c.arith(BinOp::Sub, 30, i);
                let e2 = c.arith(BinOp::Add, end, bad);
                let s = c.call("checksum", vec![Arg::Buf(buf.slice(0, e2))]);
                c.accumulate(total, s);
            });
            c.close(fd);
            c.output("total", total);
            c.finish()
        }));
    }
    // The loop bound inside iterations, EBADF on a closed slot, paths out of the root.
    cases.push(case("loop bound in an iteration", |_| {
        let mut c = Builder::new();
        let total = c.value("total", 0);
        c.map_range(0, 10, 1, |c, i| {
            let j = c.value("j", 0);
            c.do_while(4, |c| {
                c.push(Op::Arith {
                    dst: j,
                    op: BinOp::Add,
                    a: j.into(),
                    b: 1.into(),
                });
                c.nop();
                c.accumulate(total, 1);
                cond(j, BinOp::Lt, i)
            });
        });
        c.output("total", total);
        c.finish()
    }));
    for mode in [ErrorMode::Stop, ErrorMode::Continue] {
        cases.push(case(format!("closed slot {mode:?}"), move |_| {
            let mut c = Builder::new();
            c.mode(mode);
            let p = c.path("a");
            let buf = c.buffer("buf", 64);
            let fd = c.openat(FdRef::Cwd, p, RDONLY, 0);
            let n1 = c.read(fd, buf);
            c.close(fd);
            let n2 = c.read(fd, buf);
            let n3 = c.pread(fd, buf, 0);
            c.close(fd);
            let k = c.nop();
            c.output("n1", n1);
            c.output("n2", n2);
            c.output("n3", n3);
            c.output("k", k);
            c.finish()
        }));
        cases.push(case(format!("escapes {mode:?}"), move |_| {
            let mut c = Builder::new();
            c.mode(mode);
            let buf = c.buffer("buf", 256);
            let mut outs = Vec::new();
            for p in ["../x", "/etc/passwd", "dir/../../x", "link", "dir/../a"] {
                let p = c.path(p);
                let fd = c.openat(FdRef::Cwd, p, RDONLY, 0);
                let n = c.read(fd, buf);
                c.close(fd);
                outs.push(n);
                let r = c.statx(FdRef::Cwd, p, 0, i64::from(libc::STATX_SIZE), buf);
                outs.push(r);
            }
            let q = c.path("../evil");
            let r = c.mkdirat(FdRef::Cwd, q, 0o755);
            outs.push(r);
            for (i, r) in outs.into_iter().enumerate() {
                c.output(&format!("r{i}"), r);
            }
            c.finish()
        }));
        cases.push(case(format!("writes in order {mode:?}"), move |_| {
            let mut c = Builder::new();
            c.mode(mode);
            let p = c.path("log");
            let buf = c.local_buffer("b", 8);
            let fd = c.openat(FdRef::Cwd, p, CREATE, 0o644);
            let total = c.value("total", 0);
            c.map_range(0, 30, 1, |c, i| {
                c.store(Width::U64, buf, 0, i);
                let w = c.write(fd, buf);
                c.accumulate(total, w);
                let m = c.path("dir/made");
                let r = c.mkdirat(FdRef::Cwd, m, 0o755);
                c.accumulate(total, r);
            });
            c.close(fd);
            c.output("total", total);
            c.finish()
        }));
    }
    cases.push(case("time limit zero", |_| {
        let mut c = Builder::new();
        c.nop();
        let p = c.path("a");
        c.openat(FdRef::Cwd, p, RDONLY, 0);
        c.finish()
    }));
    run_all(cases);
    // A time limit of zero: the first call is refused.
    let mut c = Builder::new();
    c.getpid();
    let v = cosy_verify::verify(c.finish(), &{
        let mut p = Policy::trusted();
        p.time = Duration::ZERO;
        p
    })
    .unwrap();
    on_every_executor(&RunOptions::default(), |name, o| {
        let out = cosy_exec::run(&v, &o);
        assert_eq!(
            out.error,
            Some(Error::Time {
                op: 0,
                limit: Duration::ZERO
            }),
            "{name}"
        );
    });
}

/// Fuel cut at every operation of a run: the stop point, the outputs and the files agree.
#[test]
fn fuel_cut_everywhere() {
    let compounds: Vec<(&str, Make)> = vec![
        (
            "map of files",
            Box::new(|| map_of_files(&[], ErrorMode::Stop)),
        ),
        (
            "map of files, continue",
            Box::new(|| map_of_files(&[4, 9], ErrorMode::Continue)),
        ),
        (
            "nop map",
            Box::new(|| {
                let mut c = Builder::new();
                let count = c.value("count", 0);
                c.map_range(0, 12, 1, |c, _| {
                    c.nop();
                    c.accumulate(count, 1);
                });
                c.output("count", count);
                c.finish()
            }),
        ),
        ("thesis", Box::new(|| thesis_loop(b"big", 4096))),
        ("grep", Box::new(|| grep_count(b"tree", b"cosy"))),
    ];
    for (name, make) in compounds {
        // How much fuel the whole run takes.
        let dir = scratch();
        fixture(dir.path());
        let v = cosy_verify::verify(make(), &untrusted(dir.path())).unwrap();
        let full = cosy_exec::run(
            &v,
            &RunOptions {
                backend: cosy_exec::Backend::Direct,
                ..RunOptions::default()
            },
        )
        .stats
        .ops;
        assert!(full > 10, "{name}: {full}");
        let step = (full / 60).max(1);
        let mut fuel = 0;
        while fuel <= full + 1 {
            let c = make();
            let f = fuel;
            let case = Case {
                name: format!("{name} with fuel {fuel}"),
                build: Box::new(move |d| {
                    let mut p = untrusted(d);
                    p.fuel = f;
                    Some((c.clone(), p))
                }),
                opts: RunOptions::default(),
            };
            assert!(differential(&case), "{}", case.name);
            fuel += if fuel < 40 { 1 } else { step };
        }
    }
}

// ------------------------------------------------------------------------ generated

fn generated(cases: u32, fuel: Option<u64>) {
    // COSY_CASES=N runs N times as many (a longer hunt).
    let cases = cases
        * std::env::var("COSY_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
    let ran = std::cell::Cell::new(0u32);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: std::env::var("COSY_SHRINK")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        ..ProptestConfig::default()
    });
    let result = runner.run(&cosy_format::testing::valid_compound(), |c| {
        let case = Case {
            name: format!(
                "generated (fuel {fuel:?})\n{}",
                cosy_format::text::print(&c)
            ),
            build: Box::new(move |d| {
                let mut p = untrusted(d);
                p.std_streams = true;
                if let Some(f) = fuel {
                    p.fuel = f;
                }
                let out = format!("{}/stdout", d.display());
                Some((
                    redirect_std(nonblocking_pipes(c.clone()), out.as_bytes()),
                    p,
                ))
            }),
            opts: RunOptions::default(),
        };
        if differential(&case) {
            ran.set(ran.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let ran = ran.get();
    eprintln!("generated compounds: {ran} of {cases} verified and ran on every executor");
    assert!(
        ran * 4 >= cases,
        "too few generated compounds verify: {ran} of {cases}"
    );
}

#[test]
fn generated_compounds() {
    generated(200, None);
}

#[test]
fn generated_compounds_short_of_fuel() {
    generated(150, Some(25));
}

/// Replays the compound in the file named by `COSY_REPLAY` (text format) like a generated
/// case, printing every executor's outcome and trace (for debugging a failure).
#[test]
fn replay() {
    let Some(path) = std::env::var_os("COSY_REPLAY") else {
        return;
    };
    let src = std::fs::read_to_string(path).unwrap();
    let c = cosy_format::text::parse(&src).unwrap().compound;
    let fuel: Option<u64> = std::env::var("COSY_REPLAY_FUEL")
        .ok()
        .and_then(|v| v.parse().ok());
    on_every_executor(&RunOptions::default(), |name, o| {
        let dir = scratch();
        fixture(dir.path());
        let mut p = untrusted(dir.path());
        if let Some(f) = fuel {
            p.fuel = f;
        }
        let out = format!("{}/stdout", dir.path().display());
        let v = cosy_verify::verify(
            redirect_std(nonblocking_pipes(c.clone()), out.as_bytes()),
            &p,
        )
        .unwrap();
        let o = RunOptions { trace: true, ..o };
        let out = cosy_exec::run(&v, &o);
        eprintln!("===== {name}\n{}\n{:?}", show(&out), digest(dir.path()));
    });
}
