//! The differential harness: every compound of the test corpus runs on every executor
//! (`common::executors`: direct, direct on two threads, ring, ring with SQPOLL, ring without
//! io_uring, ring with a kernel probe lacking opcodes, ring with its optimisations off, auto;
//! and, its calls recorded on direct and sent one by one, as a session replay on direct and
//! on the ring: `session_replays_agree_with_direct`), each in a fresh copy
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
//! `COSY_GEN_FLAGS=all` makes the generator also produce what the ring executor is known to
//! get wrong (`cosy_format::testing::ENV_GEN_FLAGS` says what), for hunting those failures.
//!
//! Some compounds observe their environment (inode numbers, timestamps from `statx`,
//! `getdents64` records): the direct executor runs such a case three times in three fixture
//! copies, and only what those runs agree on is compared.
//!
//! Every compound also goes through the optimizer (`cosy_opt`, its default passes, as
//! `cosy run` applies them): the rewritten compound must verify under the same policy and,
//! on the executors, agree with the original compound on direct in what the optimizer
//! promises to keep — outputs, files, and the kind, errno and operation (mapped back through
//! `origin`) of the errors (see `seen_across`). The corpus adds compounds that each pass
//! rewrites (`REWRITTEN`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use cosy_exec::{Error, Outcome, RunOptions};
use cosy_model::flags::{AtFlags, Mode, StatxFlags};
use cosy_model::{
    Arg, BinOp, Builder, Compound, ErrorMode, FdRef, FdSlot, Op, Policy, Ret, Sys, Width,
};
use cosy_opt::{Optimized, Passes};
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
    /// The errors of `continue` mode: operation, call (`None` where it is not compared), errno.
    errors: Vec<(u32, Option<Sys>, i32)>,
    files: BTreeMap<String, String>,
}

/// Everything an executor must reproduce of the direct executor's run of the same compound.
fn seen(out: &Outcome, dir: &Path, files: BTreeMap<String, String>) -> Seen {
    let root = dir.to_string_lossy().into_owned();
    Seen {
        outputs: out.outputs.clone(),
        // Setup messages may name the fixture directory, which differs from run to run.
        error: out
            .error
            .as_ref()
            .map(|e| format!("{e:?}").replace(&root, "<dir>")),
        errors: out
            .errors
            .iter()
            .map(|e| (e.op, Some(e.call), e.errno))
            .collect(),
        files,
    }
}

/// What the optimizer keeps of a run (see `cosy_opt`): the outputs, the files, and of the
/// error that stopped it and of the errors of `continue` mode their kind, errno and operation,
/// mapped back to the original compound by `original`. The rest of an error describes the
/// operation that failed, which a rewrite may replace, so is not compared: a rewritten call
/// fails under its new name (`pread` for `lseek` + `read`, `copy_file_range` for `read` +
/// `write`). Neither are the trace and the statistics (not compared between executors
/// either), which the rewrites exist to change.
fn seen_across(
    out: &Outcome,
    dir: &Path,
    files: BTreeMap<String, String>,
    original: impl Fn(u32) -> u32,
) -> Seen {
    let root = dir.to_string_lossy().into_owned();
    Seen {
        outputs: out.outputs.clone(),
        error: out.error.as_ref().map(|e| match e {
            Error::Setup(m) => format!("Setup({})", m.replace(&root, "<dir>")),
            e => {
                let debug = format!("{e:?}");
                let kind = debug.split([' ', '{', '(']).next().unwrap_or_default();
                format!(
                    "{kind} at op {:?}, errno {:?}",
                    e.op().map(&original),
                    e.errno()
                )
            }
        }),
        errors: out
            .errors
            .iter()
            .map(|e| (original(e.op), None, e.errno))
            .collect(),
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

/// Which form of a case's compound runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// As built.
    Original,
    /// As the optimizer's default passes rewrite it (what `cosy run` executes).
    Optimized,
}

/// One run of a case.
struct Run {
    /// What the executors are compared on (see [`seen`]).
    exact: Seen,
    /// What the optimized compound is compared on (see [`seen_across`]).
    across: Seen,
    /// Whether the optimizer rewrites the case's compound.
    rewritten: bool,
    /// The optimization, when the optimized form ran.
    optimized: Option<Optimized>,
    out: Outcome,
}

fn direct() -> RunOptions {
    RunOptions {
        backend: cosy_exec::Backend::Direct,
        ..RunOptions::default()
    }
}

/// Runs `case` in `form` in a fresh fixture on the executor `name` (`opts`); `None` if the
/// compound does not verify. The optimized compound must verify again under the same policy,
/// as `cosy run` requires: a rewrite never makes a compound the policy would refuse.
fn run_once(case: &Case<'_>, (name, opts): (&str, &RunOptions), form: Form) -> Option<Run> {
    let dir = scratch();
    fixture(dir.path());
    let (c, policy) = (case.build)(dir.path())?;
    let v = cosy_verify::verify(c, &policy).ok()?;
    let opt = cosy_opt::optimize(v.compound(), &Passes::default());
    let rewritten = opt.compound != *v.compound();
    let (v, optimized) = match form {
        Form::Original => (v, None),
        Form::Optimized => {
            let again = cosy_verify::verify(opt.compound.clone(), &policy).unwrap_or_else(|p| {
                panic!(
                    "the optimizer produced a compound the verifier refuses: {p:?}\ncase {}\n\
                     --- optimized:\n{}",
                    case.name,
                    cosy_format::text::print(&opt.compound)
                )
            });
            (again, Some(opt))
        }
    };
    let opts = RunOptions {
        trace: true,
        functions: case.opts.functions.clone(),
        ..opts.clone()
    };
    let out = cosy_exec::run(&v, &opts);
    if let Err(e) = trace_closes(&out) {
        let optimized = optimized.as_ref().map_or_else(String::new, |o| {
            format!(
                "\n--- optimized:\n{}",
                cosy_format::text::print(&o.compound)
            )
        });
        panic!("on {name}, {form:?}: {e}\ncase {}{optimized}", case.name);
    }
    let files = digest(dir.path());
    let exact = seen(&out, dir.path(), files.clone());
    let across = seen_across(&out, dir.path(), files, |op| {
        optimized.as_ref().map_or(op, |o| o.original_op(op))
    });
    Some(Run {
        exact,
        across,
        rewritten,
        optimized,
        out,
    })
}

/// What [`differential`] made of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ran {
    /// The compound does not verify: nothing ran.
    Refused,
    /// It ran on every executor; the optimizer leaves it as it is, so its optimized form is
    /// what already ran.
    Unchanged,
    /// It ran on every executor, and its optimized form ran too, with the observable outcome
    /// of the original on direct.
    Optimized,
    /// It ran on every executor; its optimized form is not compared because the original or
    /// the optimized compound ran out of fuel.
    OutOfFuel,
}

impl Ran {
    fn verified(self) -> bool {
        self != Ran::Refused
    }
}

fn out_of_fuel(out: &Outcome) -> bool {
    matches!(out.error, Some(Error::Fuel { .. }))
}

/// Runs `case` on every executor and compares with the direct executor; then, when the
/// optimizer rewrites the compound, runs the optimized compound on every executor and
/// compares with the original on direct, on what the optimizer keeps.
fn differential(case: &Case<'_>) -> Ran {
    let Some(reference) = run_once(case, ("direct", &direct()), Form::Original) else {
        return Ran::Refused;
    };
    // What the environment decides: what two more direct runs disagree on is not compared.
    let mut stable = Stable::all();
    let mut stable_across = Stable::all();
    for _ in 0..2 {
        let again = run_once(case, ("direct", &direct()), Form::Original).expect("verified before");
        stable.keep_agreeing(&reference.exact, &again.exact);
        stable_across.keep_agreeing(&reference.across, &again.across);
    }
    for (name, opts) in executors() {
        if name == "direct" {
            continue;
        }
        let got = run_once(case, (name, &opts), Form::Original).expect("verified before");
        agree(case, name, &opts, &reference, &stable, got, |r| &r.exact);
    }
    if !reference.rewritten {
        return Ran::Unchanged;
    }
    // The optimizer changes the number of operations executed (a directory opened once, a
    // map's begin and ends instead of a loop's jumps), so a run cut short by its fuel stops
    // at a different point, with different outputs and files: not comparable.
    if out_of_fuel(&reference.out) {
        return Ran::OutOfFuel;
    }
    let first = run_once(case, ("direct", &direct()), Form::Optimized).expect("verified before");
    if out_of_fuel(&first.out) {
        return Ran::OutOfFuel;
    }
    let across: fn(&Run) -> &Seen = |r| &r.across;
    agree(
        case,
        "direct",
        &direct(),
        &reference,
        &stable_across,
        first,
        across,
    );
    for (name, opts) in executors() {
        if name == "direct" {
            continue;
        }
        let got = run_once(case, (name, &opts), Form::Optimized).expect("verified before");
        agree(case, name, &opts, &reference, &stable_across, got, across);
    }
    Ran::Optimized
}

/// Checks that `got`, a run of `case` on the executor `name` (`opts`), agrees with
/// `reference`, the original compound's run on direct, on what `view` picks of a run and
/// `stable` says the environment does not decide; panics if not.
fn agree(
    case: &Case<'_>,
    name: &str,
    opts: &RunOptions,
    reference: &Run,
    stable: &Stable,
    got: Run,
    view: fn(&Run) -> &Seen,
) {
    let form = if got.optimized.is_some() {
        Form::Optimized
    } else {
        Form::Original
    };
    let Some(diff) = stable.differ(view(reference), view(&got)) else {
        return;
    };
    // The environment may decide (a branch on a timestamp): accept what the direct executor
    // itself produces in some fixtures — compared on what those runs, which stopped the same
    // way, agree on.
    let mut same: Vec<Run> = Vec::new();
    for _ in 0..40 {
        if let Some(again) = run_once(case, ("direct", &direct()), Form::Original)
            && view(&again).error == view(&got).error
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
            st.keep_agreeing(view(&same[0]), view(other));
        }
        if st.differ(view(&same[0]), view(&got)).is_none() {
            return;
        }
    }
    // Or the other way round: run again, this executor produces the direct one's outcome (a
    // rare branch on a timestamp or an inode number taken once).
    let again = (0..20).any(|_| {
        run_once(case, (name, opts), form)
            .is_some_and(|again| stable.differ(view(reference), view(&again)).is_none())
    });
    if again {
        return;
    }
    let optimized = match &got.optimized {
        Some(o) => format!(
            " (optimized: {:?}, origin {:?})\n{}",
            o.applied,
            o.origin,
            cosy_format::text::print(&o.compound)
        ),
        None => String::new(),
    };
    panic!(
        "DIFFERENT on {name}{}: {diff}\ncase {}\n--- direct:\n{}\n--- {name}{optimized}:\n{}",
        if optimized.is_empty() {
            ""
        } else {
            ", optimized"
        },
        case.name,
        show(&reference.out),
        show(&got.out)
    );
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

/// Runs every case, and its optimized form, on every executor: what each case gave, by name.
/// Every case must verify.
fn run_all(cases: Vec<Case<'_>>) -> BTreeMap<String, Ran> {
    let mut out = BTreeMap::new();
    for c in &cases {
        let ran = differential(c);
        assert!(ran.verified(), "case {} does not verify", c.name);
        out.insert(c.name.clone(), ran);
    }
    out
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
    let ran = run_all(cases);
    // The examples run with all the fuel they need, so every rewritten one is compared.
    assert!(
        ran.values()
            .all(|r| matches!(r, Ran::Unchanged | Ran::Optimized)),
        "{ran:#?}"
    );
    assert!(ran.values().any(|r| *r == Ran::Optimized), "{ran:#?}");
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
        let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
        let n = c.read(fd, buf);
        c.close(fd);
        let s = c.call("checksum", buf.prefix(n));
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
            let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
            c.map_range(0, 20, 1, |c, i| {
                let n = c.pread(fd, buf, i);
                c.accumulate(total, n);
                let end = c.arith(BinOp::Sub, 30, i);
                let e2 = c.arith(BinOp::Add, end, bad);
                let s = c.call("checksum", buf.slice(0, e2));
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
                j.lt(i)
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
            let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
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
                let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
                let n = c.read(fd, buf);
                c.close(fd);
                outs.push(n);
                let r = c.statx(FdRef::Cwd, p, AtFlags::empty(), StatxFlags::SIZE, buf);
                outs.push(r);
            }
            let q = c.path("../evil");
            let r = c.mkdirat(FdRef::Cwd, q, Mode::from_raw_mode(0o755));
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
            let fd = c.openat(FdRef::Cwd, p, CREATE, Mode::from_raw_mode(0o644));
            let total = c.value("total", 0);
            c.map_range(0, 30, 1, |c, i| {
                c.store(Width::U64, buf, 0, i);
                let w = c.write(fd, buf);
                c.accumulate(total, w);
                let m = c.path("dir/made");
                let r = c.mkdirat(FdRef::Cwd, m, Mode::from_raw_mode(0o755));
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
        c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
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
/// (The optimized form is compared only where neither it nor the original runs out of fuel:
/// the optimizer does not keep the number of operations executed.)
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
            let ran = differential(&case);
            assert!(ran.verified(), "{}", case.name);
            fuel += if fuel < 40 { 1 } else { step };
        }
    }
}

// ------------------------------------------------------------------------ optimizer rewrites

/// A compound in the text format: its name, its text, and input overrides each giving a
/// variant.
type Text = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Compounds that each pass of the optimizer rewrites, with variants that make them fail
/// (negative offsets, missing files, loop bounds, range errors in an iteration): paths
/// relative to the fixture, which is the policy's root.
const REWRITTEN: &[Text] = &[
    (
        "seeks",
        r#"
buffer page 4096
buffer small 100
f = openat cwd "big" O_RDWR 0
lseek f 8192 SEEK_SET
n1 = read f page[0..100]
c1 = call checksum page[0..n1]
lseek f 0 SEEK_SET
w1 = write f page[0..n1]
lseek f 99990 SEEK_SET
n2 = read f small
c2 = call checksum small[0..n2]
close f
output n1
output c1
output w1
output n2
output c2
"#,
        &[],
    ),
    (
        "seek loop",
        r#"
input int pages = 8
input int start = 0
buffer page 4096
f = openat cwd "big" O_RDWR 0
off = start
total = 0
sum = 0
i = 0
again:
lseek f off SEEK_SET
n = read f page
c = call checksum page[0..n]
sum = sum ^ c
store u8 page 0 i
lseek f off SEEK_SET
w = write f page[0..n]
total = total + w
off = off + 8192
i = i + 1
if i < pages goto again bound 100
close f
output total
output sum
"#,
        &[("pages", "20"), ("start", "-1")],
    ),
    (
        "copy from an offset",
        r#"
input path src = "big"
buffer buf 65536
i = openat cwd $src O_RDONLY 0
o = openat cwd "dir/out" O_WRONLY|O_CREAT|O_TRUNC 0o644
copied = 0
lseek i 4000 SEEK_SET
again:
n = read i buf
if n == 0 goto done
w = write o buf[0..n]
copied = copied + w
goto again bound 100
done:
close i
close o
output copied
"#,
        &[("src", "empty"), ("src", "missing"), ("src", "dir")],
    ),
    (
        "directory operations",
        r#"
buffer st 256
buffer data 64
mkdirat cwd "dir/sub" 0o755
f = openat cwd "dir/b" O_RDONLY 0
n = read f data
close f
statx cwd "dir/b" 0 STATX_SIZE st
size = load u64 st STATX_SIZE_OFFSET
g = openat cwd "dir/new" O_WRONLY|O_CREAT|O_TRUNC 0o644
w = write g data[0..n]
close g
unlinkat cwd "dir/new" 0
renameat2 cwd "dir/b" cwd "dir/b2" 0
output n
output size
output w
"#,
        &[],
    ),
    (
        "missing directory",
        r#"
buffer st 256
g = openat cwd "before" O_WRONLY|O_CREAT 0o644
close g
statx cwd "nodir/x" 0 STATX_SIZE st
statx cwd "nodir/y" 0 STATX_SIZE st
statx cwd "nodir/z" 0 STATX_SIZE st
"#,
        &[],
    ),
    (
        "file for a directory",
        r#"
mode stop
buffer st 256
statx cwd "a/x" 0 STATX_SIZE st
statx cwd "a/y" 0 STATX_SIZE st
statx cwd "a/z" 0 STATX_SIZE st
"#,
        &[],
    ),
    (
        "map over paths",
        r#"
buffer st 256 local
total = 0
map p in paths("tree/f01", "tree/f02", "tree/f03", "tree/f04") {
    statx cwd p 0 STATX_SIZE st
    s = load u64 st STATX_SIZE_OFFSET
    total = total + s
}
output total
"#,
        &[],
    ),
    (
        "counted loop",
        r#"
input int count = 5
buffer b 64
store u64 b 0 0x0102030405060708
calls = 0
sum = 0
i = 0
again:
pid = getpid
v = load u8 b 5
t = v * i
c = call checksum b[0..8]
sum = sum + t
calls = calls + c
i = i + 1
if i < count goto again bound 10
output calls
output sum
output i
"#,
        &[
            ("count", "0"),
            ("count", "11"),
            ("count", "12"),
            ("count", "100"),
        ],
    ),
    (
        "counted loop with a range error",
        r#"
input int count = 6
buffer b 64
store u64 b 8 1000
store u64 b 56 7
total = 0
i = 0
again:
off = i * 8
v = load u64 b off
total = total + v
i = i + 1
if i < count goto again bound 100
output total
"#,
        &[("count", "9"), ("count", "8")],
    ),
];

/// The compounds of [`REWRITTEN`] (with each variant's input) run, rewritten by the optimizer,
/// on every executor, and agree with the original on direct; every pass rewrites at least one
/// of them.
#[test]
fn optimized_compounds() {
    let mut cases = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for &(name, text, variants) in REWRITTEN {
        let parsed = cosy_format::text::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        // As written, then with each variant's input.
        let mut inputs: Vec<Option<(&str, &str)>> = vec![None];
        inputs.extend(variants.iter().copied().map(Some));
        for input in inputs {
            let mut c = parsed.compound.clone();
            if let Some((k, v)) = input {
                c.set_input(k, v).unwrap();
            }
            for (pass, n) in cosy_opt::optimize(&c, &Passes::default()).applied {
                *counts.entry(pass).or_default() += n;
            }
            cases.push(case(format!("{name} {input:?}"), move |_| c.clone()));
        }
    }
    for pass in cosy_opt::PASS_NAMES {
        assert!(
            counts.get(pass).is_some_and(|n| *n > 0),
            "no compound is rewritten by {pass}: {counts:?}"
        );
    }
    let ran = run_all(cases);
    for (name, r) in &ran {
        assert_eq!(*r, Ran::Optimized, "{name}");
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
    let optimized = std::cell::Cell::new(0u32);
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
                    redirect_std(
                        cosy_format::testing::nonblocking_pipes(c.clone()),
                        out.as_bytes(),
                    ),
                    p,
                ))
            }),
            opts: RunOptions::default(),
        };
        let r = differential(&case);
        if r.verified() {
            ran.set(ran.get() + 1);
        }
        if r == Ran::Optimized {
            optimized.set(optimized.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let ran = ran.get();
    eprintln!(
        "generated compounds: {ran} of {cases} verified and ran on every executor, {} of them \
         rewritten by the optimizer and compared",
        optimized.get()
    );
    assert!(
        ran * 4 >= cases,
        "too few generated compounds verify: {ran} of {cases}"
    );
    // Most are rewritten (by dead_results at least), and even short of fuel about four in ten
    // run to their end: far more than one in six is compared optimized.
    let optimized = optimized.get();
    assert!(
        optimized * 6 >= ran,
        "too few generated compounds compared optimized: {optimized} of {ran}"
    );
}

/// Compounds the generator once found a bug with (tests/regressions/*.cosy, each file's header
/// says which), run like generated cases: every executor, original and optimized, same results,
/// same files, no descriptor left open.
#[test]
fn regressions() {
    let dir = repo().join("crates/cosy-exec/tests/regressions");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cosy"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no regression cases in {dir:?}");
    for path in &names {
        let src = std::fs::read_to_string(path).unwrap();
        let c = cosy_format::text::parse(&src)
            .unwrap_or_else(|e| panic!("{path:?}: {e}"))
            .compound;
        let case = Case {
            name: format!("{}", path.display()),
            build: Box::new(move |d| {
                let mut p = untrusted(d);
                p.std_streams = true;
                let out = format!("{}/stdout", d.display());
                Some((
                    redirect_std(
                        cosy_format::testing::nonblocking_pipes(c.clone()),
                        out.as_bytes(),
                    ),
                    p,
                ))
            }),
            opts: RunOptions::default(),
        };
        assert!(differential(&case).verified(), "{path:?} does not verify");
    }
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
/// case, printing every executor's outcome and trace (for debugging a failure); with
/// `COSY_REPLAY_OPT=1`, the compound as the optimizer rewrites it (its operations numbered
/// anew: the printed `origin` maps them to the original's).
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
    let optimized = std::env::var_os("COSY_REPLAY_OPT").is_some_and(|v| v == "1");
    on_every_executor(&RunOptions::default(), |name, o| {
        let dir = scratch();
        fixture(dir.path());
        let mut p = untrusted(dir.path());
        p.std_streams = true;
        if let Some(f) = fuel {
            p.fuel = f;
        }
        let out = format!("{}/stdout", dir.path().display());
        let mut v = cosy_verify::verify(
            redirect_std(
                cosy_format::testing::nonblocking_pipes(c.clone()),
                out.as_bytes(),
            ),
            &p,
        )
        .unwrap();
        if optimized {
            let opt = cosy_opt::optimize(v.compound(), &Passes::default());
            eprintln!(
                "===== optimized ({:?}, origin {:?}):\n{}",
                opt.applied,
                opt.origin,
                cosy_format::text::print(&opt.compound)
            );
            v = cosy_verify::verify(opt.compound, &p).unwrap();
        }
        let o = RunOptions { trace: true, ..o };
        let out = cosy_exec::run(&v, &o);
        eprintln!("===== {name}\n{}\n{:?}", show(&out), digest(dir.path()));
    });
}

// ------------------------------------------------------------------------ session replays

/// Every generated compound run on the direct executor with its calls recorded
/// (`cosy_exec::session::record`), then those calls sent one by one through a session on
/// direct and on the ring — what a program sending its calls one at a time does — each in a
/// fresh copy of the fixture: every call gives the recorded result, and the files left are
/// those of the direct run. Cases whose direct runs disagree with each other (results that
/// depend on the fixture copy) are not compared.
#[test]
fn session_replays_agree_with_direct() {
    use cosy_exec::Backend;
    use cosy_exec::session::{ReplayError, record};
    let cases = 150
        * std::env::var("COSY_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 0,
        ..ProptestConfig::default()
    });
    let (replayed, calls) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0usize));
    let result = runner.run(&cosy_format::testing::valid_compound(), |c| {
        // The compound in a fresh fixture under its own root (standard streams redirected to
        // a file of the fixture, named relative to the root so that every copy has its own).
        let setup = || {
            let dir = scratch();
            fixture(dir.path());
            let mut p = untrusted(dir.path());
            p.std_streams = true;
            let c = redirect_std(
                cosy_format::testing::nonblocking_pipes(c.clone()),
                b"stdout",
            );
            cosy_verify::verify(c, &p).ok().map(|v| (dir, v, p))
        };
        let Some((dir, v, _)) = setup() else {
            return Ok(());
        };
        let rec = match record(&v) {
            Ok(r) => r,
            Err(ReplayError::Unsupported(_)) => return Ok(()),
            Err(e) => panic!("record: {e}"),
        };
        let want = digest(dir.path());
        let Some((again, v2, _)) = setup() else {
            return Ok(());
        };
        let o = RunOptions {
            backend: Backend::Direct,
            ..RunOptions::default()
        };
        if cosy_exec::run(&v2, &o).outputs != rec.outcome().outputs || digest(again.path()) != want
        {
            return Ok(());
        }
        for backend in [Backend::Direct, Backend::Ring] {
            if backend == Backend::Ring && cosy_uring::skip_without_uring("session replay") {
                continue;
            }
            let Some((dir, _, p)) = setup() else {
                return Ok(());
            };
            match rec.replay(backend, &p) {
                Ok(n) => calls.set(calls.get() + n),
                Err(ReplayError::Unsupported(_)) => return Ok(()),
                Err(e) => panic!(
                    "session replay on {backend}: {e}\n{:?}\n{}",
                    rec,
                    cosy_format::text::print(v.compound())
                ),
            }
            assert_eq!(
                digest(dir.path()),
                want,
                "files after the session replay on {backend}:\n{}",
                cosy_format::text::print(v.compound())
            );
        }
        replayed.set(replayed.get() + 1);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "session replays: {} of {cases} compared, {} calls",
        replayed.get(),
        calls.get()
    );
    assert!(
        replayed.get() > cases / 2,
        "too few replays compared: {}",
        replayed.get()
    );
}
