//! Every pass, run for real: each compound runs as written and as optimized, with the direct
//! executor, on its own copy of the same files; the outputs, the error (its kind, its errno and
//! its operation mapped back through `origin`), the errors of mode `continue` and the files
//! left behind must be the same.
//!
//! Compounds are written in the text format with `$D` standing for the directory of the run.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use cosy_exec::{Outcome, RunOptions};
use cosy_model::{Compound, Policy};
use cosy_opt::{Optimized, Passes, optimize};

/// Every file and directory under `dir`: relative path → contents (`None` for a directory).
fn tree(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for entry in fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let rel = path
                .strip_prefix(base)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                out.insert(rel, None);
                walk(base, &path, out);
            } else {
                out.insert(rel, Some(fs::read(&path).expect("read")));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn build(text: &str, dir: &Path, inputs: &[(&str, &str)]) -> Compound {
    let d = dir.to_str().expect("utf-8 temp dir");
    let text = text.replace("$D", d);
    let mut c = cosy_format::text::parse(&text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .compound;
    for (name, value) in inputs {
        c.set_input(name, &value.replace("$D", d))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    c
}

fn run(c: &Compound) -> Outcome {
    let v = cosy_verify::verify(c.clone(), &Policy::trusted())
        .unwrap_or_else(|p| panic!("does not verify: {p:?}\n{}", cosy_format::text::print(c)));
    cosy_exec::run(&v, &RunOptions::default())
}

/// Runs `text` as written and optimized by `passes` in two directories prepared by `setup`,
/// checks that nothing observable differs, and returns the original's outcome and the
/// optimization.
fn differential(
    text: &str,
    passes: &Passes,
    setup: impl Fn(&Path),
    inputs: &[(&str, &str)],
) -> (Outcome, Optimized) {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    setup(a.path());
    setup(b.path());
    let original = build(text, a.path(), inputs);
    let opt = optimize(&build(text, b.path(), inputs), passes);
    let printed = cosy_format::text::print(&opt.compound);
    let oa = run(&original);
    let ob = run(&opt.compound);
    assert_eq!(
        oa.outputs, ob.outputs,
        "outputs differ; optimized:\n{printed}"
    );
    match (&oa.error, &ob.error) {
        (None, None) => {}
        (Some(x), Some(y)) => {
            assert_eq!(
                std::mem::discriminant(x),
                std::mem::discriminant(y),
                "{x} vs {y}; optimized:\n{printed}"
            );
            assert_eq!(
                x.op(),
                y.op().map(|op| opt.original_op(op)),
                "{x} vs {y}; optimized:\n{printed}"
            );
            assert_eq!(x.errno(), y.errno(), "{x} vs {y}");
        }
        (x, y) => panic!("errors differ: {x:?} vs {y:?}; optimized:\n{printed}"),
    }
    let ea: Vec<_> = oa.errors.iter().map(|e| (e.op, e.errno)).collect();
    let eb: Vec<_> = ob
        .errors
        .iter()
        .map(|e| (opt.original_op(e.op), e.errno))
        .collect();
    assert_eq!(ea, eb, "continue-mode errors differ");
    assert_eq!(tree(a.path()), tree(b.path()), "files differ");
    (oa, opt)
}

fn only(name: &str) -> Passes {
    Passes::only(name).expect("a pass")
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn db(dir: &Path) {
    fs::write(dir.join("db"), pattern(65536, 7)).expect("write");
}

// ---------------------------------------------------------------------------------------------
// pread

const SEEKS: &str = r#"
buffer page 4096
buffer small 100
f = openat cwd "$D/db" O_RDWR 0
lseek f 8192 SEEK_SET
n1 = read f page[0..100]
c1 = call checksum page[0..n1]
lseek f 0 SEEK_SET
w1 = write f page[0..n1]
lseek f 65500 SEEK_SET
n2 = read f small
c2 = call checksum small[0..n2]
close f
output n1
output c1
output w1
output n2
output c2
"#;

const SEEK_LOOP: &str = r#"
input int pages = 8
buffer page 4096
f = openat cwd "$D/db" O_RDWR 0
off = 0
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
"#;

#[test]
fn pread_random_access_matches() {
    let (out, opt) = differential(SEEKS, &only("pread"), db, &[]);
    assert!(out.is_ok(), "{:?}", out.error);
    assert_eq!(opt.count("pread"), 3);
    let (out, opt) = differential(SEEK_LOOP, &only("pread"), db, &[]);
    assert!(out.is_ok(), "{:?}", out.error);
    assert_eq!(out.output("total"), Some(8 * 4096));
    assert_eq!(opt.count("pread"), 2);
}

#[test]
fn pread_error_is_reported_at_the_read() {
    // A directory: lseek works, read fails with EISDIR, and so does pread.
    let text = r#"
buffer b 64
d = openat cwd "$D" O_RDONLY|O_DIRECTORY 0
lseek d 0 SEEK_SET
n = read d b
output n
"#;
    let (out, opt) = differential(text, &only("pread"), |_| {}, &[]);
    assert_eq!(opt.count("pread"), 1);
    assert_eq!(out.error.as_ref().and_then(|e| e.op()), Some(2));
    assert_eq!(
        out.error.as_ref().and_then(|e| e.errno()),
        Some(libc::EISDIR)
    );
}

// ---------------------------------------------------------------------------------------------
// zero_copy

const COPY: &str = r#"
input path src = "$D/src"
input path dst = "$D/dst"
buffer buf 65536
from = openat cwd $src O_RDONLY 0
to = openat cwd $dst O_WRONLY|O_CREAT|O_TRUNC 0o644
copied = 0
again:
n = read from buf
if n == 0 goto done
w = write to buf[0..n]
copied = copied + w
goto again bound 10000000
done:
close from
close to
output copied
"#;

#[test]
fn zero_copy_file_copy_matches() {
    for len in [0, 1, 65536, 200_000] {
        let setup = |d: &Path| fs::write(d.join("src"), pattern(len, 3)).expect("write");
        let (out, opt) = differential(COPY, &only("zero_copy"), setup, &[]);
        assert!(out.is_ok(), "{:?}", out.error);
        assert_eq!(out.output("copied"), Some(len as i64));
        assert_eq!(opt.count("zero_copy"), 1);
    }
}

#[test]
fn zero_copy_errors_match() {
    // The source is a directory: read and copy_file_range both fail with EISDIR at the read.
    let setup = |d: &Path| fs::create_dir(d.join("src")).expect("mkdir");
    let (out, opt) = differential(COPY, &only("zero_copy"), setup, &[]);
    assert_eq!(opt.count("zero_copy"), 1);
    assert_eq!(out.error.as_ref().and_then(|e| e.op()), Some(3));
}

#[test]
fn zero_copy_with_offsets_matches() {
    let text = r#"
buffer buf 1000
a = openat cwd "$D/db" O_RDONLY 0
b = openat cwd "$D/out" O_RDWR|O_CREAT 0o600
n = pread a buf[0..1000] 5000
w = pwrite b buf[0..n] 300
output n
output w
"#;
    let (out, opt) = differential(text, &only("zero_copy"), db, &[]);
    assert!(out.is_ok(), "{:?}", out.error);
    assert_eq!(out.output("w"), Some(1000));
    assert_eq!(opt.count("zero_copy"), 1);
}

// ---------------------------------------------------------------------------------------------
// dir_prefix

fn tree_d(dir: &Path) {
    fs::create_dir(dir.join("d")).expect("mkdir");
    fs::write(dir.join("d/x"), b"hello, world").expect("write");
    fs::write(dir.join("d/y"), pattern(5000, 1)).expect("write");
    for name in ["a", "b", "c"] {
        fs::write(dir.join("d").join(name), pattern(100, name.as_bytes()[0])).expect("write");
    }
}

const DIR_OPS: &str = r#"
buffer st 256
buffer data 64
mkdirat cwd "$D/d/sub" 0o755
f = openat cwd "$D/d/x" O_RDONLY 0
n = read f data
close f
statx cwd "$D/d/y" 0 STATX_SIZE st
size = load u64 st STATX_SIZE_OFFSET
g = openat cwd "$D/d/new" O_WRONLY|O_CREAT|O_TRUNC 0o644
w = write g data[0..n]
close g
unlinkat cwd "$D/d/y" 0
renameat2 cwd "$D/d/x" cwd "$D/d/x2" 0
output n
output size
output w
"#;

const DIR_MAP: &str = r#"
buffer st 256 local
total = 0
map p in paths("$D/d/a", "$D/d/b", "$D/d/c") {
    statx cwd p 0 STATX_SIZE st
    s = load u64 st STATX_SIZE_OFFSET
    total = total + s
}
output total
"#;

#[test]
fn dir_prefix_matches() {
    let (out, opt) = differential(DIR_OPS, &only("dir_prefix"), tree_d, &[]);
    assert!(out.is_ok(), "{:?}", out.error);
    assert_eq!(opt.count("dir_prefix"), 7);
    let (out, opt) = differential(DIR_MAP, &only("dir_prefix"), tree_d, &[]);
    assert!(out.is_ok(), "{:?}", out.error);
    assert_eq!(out.output("total"), Some(300));
    assert_eq!(opt.count("dir_prefix"), 1);
}

#[test]
fn dir_prefix_missing_directory_fails_where_it_did() {
    // A file is created first; then the directory is missing: ENOENT at the first statx.
    let text = r#"
buffer st 256
g = openat cwd "$D/before" O_WRONLY|O_CREAT 0o644
statx cwd "$D/missing/x" 0 STATX_SIZE st
statx cwd "$D/missing/y" 0 STATX_SIZE st
statx cwd "$D/missing/z" 0 STATX_SIZE st
"#;
    let (out, opt) = differential(text, &only("dir_prefix"), |_| {}, &[]);
    assert_eq!(opt.count("dir_prefix"), 3);
    assert_eq!(out.error.as_ref().and_then(|e| e.op()), Some(1));
    assert_eq!(
        out.error.as_ref().and_then(|e| e.errno()),
        Some(libc::ENOENT)
    );
    // A file where the directory should be: ENOTDIR, at the first statx too.
    let setup = |d: &Path| fs::write(d.join("missing"), b"").expect("write");
    let (out, _) = differential(text, &only("dir_prefix"), setup, &[]);
    assert_eq!(
        out.error.as_ref().and_then(|e| e.errno()),
        Some(libc::ENOTDIR)
    );
}

// ---------------------------------------------------------------------------------------------
// loop_to_map

const GETPID: &str = include_str!("../../../examples/getpid.cosy");

#[test]
fn loop_to_map_getpid_matches_for_every_count() {
    for count in ["0", "1", "2", "5", "256"] {
        let (out, opt) = differential(GETPID, &only("loop_to_map"), |_| {}, &[("count", count)]);
        assert!(out.is_ok(), "{:?}", out.error);
        assert_eq!(opt.count("loop_to_map"), 1);
        assert_eq!(
            out.output("pid"),
            Some(i64::from(std::process::id() as i32))
        );
    }
}

#[test]
fn loop_to_map_keeps_the_loop_bound_error() {
    let text = GETPID.replace("bound 100000000", "bound 10");
    for count in ["11", "12", "100"] {
        let (out, opt) = differential(&text, &only("loop_to_map"), |_| {}, &[("count", count)]);
        assert_eq!(opt.count("loop_to_map"), 1);
        if count == "11" {
            assert!(out.is_ok(), "{:?}", out.error);
        } else {
            assert!(matches!(
                out.error,
                Some(cosy_exec::Error::LoopBound { .. })
            ));
        }
    }
}

#[test]
fn loop_to_map_with_loads_and_accumulators_matches() {
    let text = r#"
buffer b 64
store u64 b 0 0x0102030405060708
sum = 0
n = 0
i = 3
again:
v = load u8 b 5
t = v * i
c = call checksum b[0..8]
sum = sum + t
n = n + c
i = i + 2
if i < 20 goto again bound 100
output sum
output n
output i
output t
"#;
    let (out, opt) = differential(text, &only("loop_to_map"), |_| {}, &[]);
    assert!(out.is_ok(), "{:?}", out.error);
    assert_eq!(opt.count("loop_to_map"), 1);
}

// ---------------------------------------------------------------------------------------------
// dead_results

#[test]
fn dead_results_matches() {
    let text = r#"
mode continue
buffer buf 4096
f = openat cwd "$D/db" O_RDONLY 0
total = 0
junk = 0
again:
n = read f buf
junk = junk + n
t = n * 3
u = t / 7
total = total + n
if n == 4096 goto again bound 1000
r = close f
r2 = close f
output total
"#;
    let (out, opt) = differential(text, &only("dead_results"), db, &[]);
    assert!(out.is_ok(), "{:?}", out.error);
    assert_eq!(out.output("total"), Some(65536));
    assert_eq!(out.errors.len(), 1, "the second close fails");
    assert!(opt.count("dead_results") >= 5);
}

// ---------------------------------------------------------------------------------------------
// Everything together, on the examples.

fn example(name: &str) -> String {
    fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(name),
    )
    .expect("example")
}

#[test]
fn all_passes_on_the_examples() {
    let all = Passes::default();
    let setup = |d: &Path| {
        db(d);
        tree_d(d);
        fs::write(d.join("src"), pattern(150_000, 9)).expect("write");
    };
    let (out, opt) = differential(
        &example("copy.cosy"),
        &all,
        setup,
        &[("src", "$D/src"), ("dst", "$D/dst")],
    );
    assert!(out.is_ok(), "{:?}", out.error);
    assert_eq!(opt.count("zero_copy"), 1);
    let (out, _) = differential(&example("thesis.cosy"), &all, setup, &[("name", "$D/db")]);
    assert_eq!(out.output("total"), Some(65536));
    let (out, opt) = differential(&example("getpid.cosy"), &all, setup, &[("count", "300")]);
    assert_eq!(out.output("calls"), Some(300));
    assert_eq!(opt.count("loop_to_map"), 1);
    for name in ["dirsize.cosy", "wordcount.cosy"] {
        let text = example(name);
        // The examples belong to the formats and the verifier; a problem is theirs to report.
        match cosy_format::text::parse(&text) {
            Err(e) => {
                eprintln!("skipping {name}: {e}");
                continue;
            }
            Ok(parsed) => {
                if let Err(e) = cosy_verify::verify(parsed.compound, &Policy::trusted()) {
                    eprintln!("skipping {name}: {e:?}");
                    continue;
                }
            }
        }
        let (out, _) = differential(&text, &all, setup, &[("dir", "$D/d")]);
        assert!(out.is_ok(), "{name}: {:?}", out.error);
    }
    for text in [SEEKS, SEEK_LOOP, DIR_OPS, DIR_MAP, COPY] {
        let (out, _) = differential(text, &all, setup, &[]);
        assert!(out.is_ok(), "{:?}", out.error);
    }
}
