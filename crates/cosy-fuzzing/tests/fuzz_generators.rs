//! The fuzz targets' generators and checks (`fuzz/`), run from proptest: proptest draws byte
//! vectors, which go through the same `Unstructured` generator and the same checking
//! functions as the targets' inputs. Also what the fuzzers found, each a regression test named
//! after what it reproduces: inputs replayed through their target's check
//! (`tests/data/TARGET/`), compounds the harness must accept (`tests/data/harness/`), and
//! the ring executor bugs it found, fixed since (`tests/data/fixed/`).
//!
//! `PROPTEST_CASES` sets the number of cases of each property (default 256 for the formats, a
//! quarter of that for the runs, which run each compound on every executor several times).

use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use cosy_fuzzing::formats;
use cosy_fuzzing::generate::{self, Origin};
use cosy_fuzzing::run::{Harness, Ran};
use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..1500)
}

/// Words of the text format (docs/text-format.md) and operands.
const WORDS: &str = "(x|n|fd|b|buf|=|\\+|<|==|if|goto|L1|L1:|bound|3|0|-1|0x10|0o644|\\$p|\
    \"a\"|\"dir/b\"|cwd|stdin|buffer|local|reg|var|data|input|path|int|output|mode|continue|\
    map|in|paths\\(\\$p\\)|range\\(0, 4, 1\\)|\\{|\\}|openat|read|close|statx|\
    O_RDONLY|O_CREAT\\|O_RDWR|b\\[0\\.\\.n\\]|load|store|u8|u32|call|count_lines|#)";

/// The bytes of `path`, read while no check runs (a check counts the process's descriptors).
fn read(path: &Path) -> Vec<u8> {
    let _guard = Harness::lock();
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files of `dir`, listed while no check runs; none if it does not exist.
fn list(dir: &Path) -> Vec<std::path::PathBuf> {
    let _guard = Harness::lock();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    files.sort();
    files
}

/// A text file of `path`.
fn read_text(path: &Path) -> String {
    String::from_utf8(read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| Harness::new().expect("a scratch directory"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), failure_persistence: None, ..ProptestConfig::default() })]

    /// What the `text_parse` target checks, on arbitrary bytes and on arbitrary strings.
    #[test]
    fn text_parse_round_trips(data in bytes(), s in ".{0,200}") {
        formats::text_round_trip(&data).map_err(TestCaseError::fail)?;
        formats::text_str(&s).map_err(TestCaseError::fail)?;
    }

    /// What the `text_parse` target checks, on lines made of the grammar's words, which
    /// parse far more often than arbitrary strings.
    #[test]
    fn text_parse_round_trips_on_words(lines in proptest::collection::vec(
        proptest::collection::vec(WORDS, 0..8).prop_map(|w| w.join(" ")), 0..12))
    {
        let src = lines.join("\n");
        formats::text_str(&src).map_err(TestCaseError::fail)?;
    }

    /// What the `binary_decode` target checks, on arbitrary bytes.
    #[test]
    fn binary_decode_round_trips(data in bytes()) {
        formats::binary_round_trip(&data).map_err(TestCaseError::fail)?;
    }

    /// Generated compounds round trip through both formats, and print to text and encode to
    /// bytes that the `text_parse` and `binary_decode` checks accept. Mutated compounds may be
    /// malformed (a jump past the end after an operation is deleted), which the formats need
    /// not carry: of those, only what decodes must round trip.
    #[test]
    fn generated_compounds_round_trip_both_formats(data in bytes()) {
        let mut u = Unstructured::new(&data);
        if let Some(g) = generate::compound(&mut u) {
            if g.origin != Origin::Mutated {
                formats::binary_of(&g.compound).map_err(TestCaseError::fail)?;
            }
            formats::binary_round_trip(&cosy_format::binary::encode(&g.compound))
                .map_err(TestCaseError::fail)?;
            formats::text_str(&cosy_format::text::print(&g.compound))
                .map_err(TestCaseError::fail)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256) / 4, failure_persistence: None, ..ProptestConfig::default() })]

    /// What the `run` target checks: a generated compound that verifies runs alike on every
    /// executor, leaves no descriptor open and changes nothing outside its directory.
    #[test]
    fn run_agrees_on_every_executor(data in bytes()) {
        let mut u = Unstructured::new(&data);
        if let Some(g) = generate::compound(&mut u) {
            harness().check(g.compound).map_err(|e| TestCaseError::fail(format!("{:?}: {e}", g.origin)))?;
        }
    }
}

/// The generator serves the `run` target: most compounds meant to verify do, under the
/// harness's strict policy, so the fuzzer spends its time in the executors.
#[test]
fn valid_generated_compounds_mostly_verify() {
    let policy = harness().policy();
    let (mut valid, mut verified) = (0, 0);
    let mut x: u64 = 1;
    for _ in 0..300 {
        let data: Vec<u8> = (0..600)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut u = Unstructured::new(&data);
        let Some(g) = generate::compound(&mut u) else {
            continue;
        };
        if g.origin == Origin::Valid {
            valid += 1;
            let c = Harness::prepare(g.compound);
            if cosy_verify::verify(c, &policy).is_ok() {
                verified += 1;
            }
        }
    }
    eprintln!("{verified} of {valid} valid compounds verify");
    assert!(
        valid >= 100,
        "only {valid} of 300 compounds were meant to verify"
    );
    assert!(
        verified * 10 >= valid * 7,
        "only {verified} of {valid} valid compounds verify under the harness's policy"
    );
}

/// The harness runs what verifies and reports a refusal as such: a compound that creates a
/// file in its scratch directory runs on every executor; one that opens a path through the
/// fixture's symlink to the outside directory is refused or fails alike on every executor, and
/// the outside directory stays as it was (the harness checks it after each run).
#[test]
fn harness_runs_writes_and_confines_escapes() {
    let write = cosy_format::text::parse(
        "buffer b 16\nfd = openat cwd \"new\" O_CREAT|O_RDWR 0o644\nn = write fd b\nrc = close fd\noutput n\n",
    )
    .unwrap()
    .compound;
    assert_eq!(harness().check(write), Ok(Ran::Agreed));
    let escape = cosy_format::text::parse(
        "fd = openat cwd \"escape/f\" O_CREAT|O_RDWR|O_TRUNC 0o644\nrc = close fd\n",
    )
    .unwrap()
    .compound;
    let r = harness().check(escape);
    assert!(r.is_ok(), "{r:?}");
    let outside = cosy_format::text::parse("fd = openat cwd \"../outside/f\" O_RDONLY 0\n")
        .unwrap()
        .compound;
    assert!(harness().check(outside).is_ok());
}

/// A compound that truncates a file to 4 GiB (sparse) is checked without reading the file into
/// memory (the `run` target ran out of memory on it: the digest of the files left read each
/// file whole).
#[test]
fn harness_digests_a_sparse_4gib_file_in_bounded_memory() {
    let c = cosy_format::text::parse(
        "fd = openat cwd \"new\" O_CREAT|O_RDWR 0o644\nrc = ftruncate fd 4294967296\nrc = close fd\n",
    )
    .unwrap()
    .compound;
    let before = rss_kib();
    assert_eq!(harness().check(c), Ok(Ran::Agreed));
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 256 << 10,
        "the check grew the resident set by {grown} KiB"
    );
}

/// This process's peak resident set (`VmHWM` of /proc/self/status), in KiB.
fn rss_kib() -> u64 {
    let status = read_text(Path::new("/proc/self/status"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Runs every input kept under `tests/data/TARGET/` through that target's check.
fn replay(target: &str, check: impl Fn(&[u8]) -> Result<(), String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(target);
    let mut n = 0;
    for path in list(&dir) {
        if let Err(msg) = check(&read(&path)) {
            panic!("{}: {msg}", path.display());
        }
        n += 1;
    }
    eprintln!("{target}: {n} inputs replayed");
}

/// The fuzzers' inputs of `tests/data/` (findings and samples of their corpora) still pass.
#[test]
fn fuzz_inputs_replay() {
    replay("text_parse", formats::text_round_trip);
    replay("binary_decode", formats::binary_round_trip);
    replay("run", |data| {
        let mut u = Unstructured::new(data);
        match generate::compound(&mut u) {
            Some(g) => harness().check(g.compound).map(|_| ()),
            None => Ok(()),
        }
    });
}

/// Runs a compound of `tests/data/DIR/` on every executor with the harness.
fn data(dir: &str, name: &str) -> Result<Ran, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir)
        .join(name);
    let text = read_text(&path);
    let c = cosy_format::text::parse(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .compound;
    harness().check(c)
}

/// The ring executor kept a slot's old descriptor when an open into the slot failed; direct
/// closes it and empties the slot (docs/semantics.md). Found by the `run` target, fixed in the
/// interpreter's retire.
#[test]
fn ring_failed_open_keeps_old_descriptor() {
    for name in [
        "ring-failed-open-keeps-old-descriptor.cosy",
        "ring-failed-open-keeps-old-descriptor-found.cosy",
    ] {
        if let Err(e) = data("fixed", name) {
            panic!("{name}: {e}");
        }
    }
    // The fuzzer's input itself, through the generator.
    let input = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fixed/ring-failed-open-keeps-old-descriptor.input");
    let data = read(&input);
    let g = generate::compound(&mut Unstructured::new(&data)).unwrap();
    if let Err(e) = harness().check(g.compound) {
        panic!("the fuzzer's input: {e}");
    }
}

/// In a map whose body loops past its bound, the ring executor stopped with a setup error
/// ("the map's iterations cannot go on with nothing in flight") where direct stops with
/// `LoopBound`: closes queued before the map were still in flight on lane 0. Found by the
/// `run` target, fixed in the interpreter's maps.
#[test]
fn ring_map_loop_bound_nothing_in_flight() {
    for name in [
        "ring-map-loop-bound-nothing-in-flight.cosy",
        "ring-map-loop-bound-nothing-in-flight-found.cosy",
    ] {
        if let Err(e) = data("fixed", name) {
            panic!("{name}: {e}");
        }
    }
}

/// After opens into a slot failed, the ring executor closed a direct descriptor that was not
/// open (`EBADF`: a later open had taken the pending one's descriptor as its old one) and gave
/// one direct descriptor to two opens. Found by the `run` target's trace check, fixed in the
/// interpreter's retire.
#[test]
fn ring_direct_descriptor_reused_after_failed_open() {
    let name = "ring-direct-descriptor-reused-after-failed-open-found.cosy";
    if let Err(e) = data("fixed", name) {
        panic!("{name}: {e}");
    }
}

/// Compounds of `tests/data/harness/` whose outcome the environment decides (found by the
/// `run` target as false differences) are accepted, run after run: the harness compares only
/// what direct runs that stopped the same way agree on.
#[test]
fn harness_accepts_environment_dependent_branches() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/harness");
    let files = list(&dir);
    assert!(!files.is_empty(), "no compounds in {}", dir.display());
    for path in files {
        let c = cosy_format::text::parse(&read_text(&path))
            .unwrap()
            .compound;
        for _ in 0..10 {
            if let Err(msg) = harness().check(c.clone()) {
                panic!("{}: {msg}", path.display());
            }
        }
    }
}
