//! Every kind of skeleton `suggest` writes parses and passes the verifier under the policy
//! `cosy check` uses for files (`Policy::untrusted`), and keeps the sequence's calls.

use cosy_trace::bursts::Sequence;
use cosy_trace::suggest::{Defaults, skeleton};

fn sequence(calls: &[&str], per_turn: &[f64], after_listing: bool) -> Sequence {
    Sequence {
        calls: calls.iter().map(|c| c.to_string()).collect(),
        nrs: calls
            .iter()
            .map(|c| {
                syscalls::Sysno::iter()
                    .find(|s| s.name() == *c)
                    .map_or(0, |s| s.id() as u32)
            })
            .collect(),
        per_turn: per_turn.to_vec(),
        count: 100,
        runs: 2,
        longest_run: 50,
        time_ns: 1_000_000,
        kernel_ns: 800_000,
        transitions_saved: 398,
        after: Some("getdents64".into()),
        after_listing,
        saving_ns: 12_345.0,
    }
}

fn check(seq: &Sequence) -> String {
    let text = skeleton(seq, &Defaults::default());
    let loaded = cosy_format::load(text.as_bytes())
        .unwrap_or_else(|e| panic!("{:?}: does not parse: {e}\n{text}", seq.calls));
    let root = std::env::current_dir().expect("cwd");
    if let Err(problems) =
        cosy_verify::verify(loaded.compound, &cosy_model::Policy::untrusted(root))
    {
        panic!("{:?}: does not verify:\n{problems}\n{text}", seq.calls);
    }
    text
}

/// The operation lines of a skeleton (comments and blank lines dropped).
fn ops(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn grep_per_file_becomes_a_map_over_entries() {
    let text = check(&sequence(
        &["openat", "newfstatat", "read", "close"],
        &[1.0, 1.0, 1.9, 1.0],
        true,
    ));
    let ops = ops(&text);
    assert!(
        ops.iter().any(|l| l.starts_with("map e in dirents(")),
        "{text}"
    );
    for op in [
        "f = openat d e O_RDONLY 0",
        "fstat f st",
        "r = read f data",
        "close f",
    ] {
        assert!(ops.contains(&op), "no `{op}` in\n{text}");
    }
    assert!(text.contains("read (×1.9)"), "{text}");
}

#[test]
fn a_stat_per_entry_after_getdents_becomes_the_dirsize_shape() {
    let text = check(&sequence(
        &["getdents64", "newfstatat"],
        &[1.0, 30.0],
        false,
    ));
    let ops = ops(&text);
    assert!(
        ops.iter().any(|l| l.starts_with("map e in dirents(")),
        "{text}"
    );
    assert!(
        ops.contains(&"statx d e AT_SYMLINK_NOFOLLOW STATX_SIZE st"),
        "{text}"
    );
}

#[test]
fn calls_after_the_directory_is_closed_are_the_map_body() {
    // du: the listing, the directory closed, a newfstatat per entry.
    let text = check(&sequence(
        &["getdents64", "close", "newfstatat", "ioctl"],
        &[2.0, 1.0, 50.0, 1.0],
        false,
    ));
    let ops = ops(&text);
    assert!(
        ops.iter().any(|l| l.starts_with("map e in dirents(")),
        "{text}"
    );
    assert!(
        ops.contains(&"statx d e AT_SYMLINK_NOFOLLOW STATX_SIZE st"),
        "{text}"
    );
    assert!(!ops.iter().any(|l| l.starts_with("fstat")), "{text}");
}

#[test]
fn calls_outside_the_table_stay_comments() {
    let text = check(&sequence(
        &["statx", "lgetxattr", "getxattr"],
        &[1.0; 3],
        true,
    ));
    assert!(
        text.contains("# lgetxattr(2) is not among cosy's calls"),
        "{text}"
    );
    assert!(
        text.contains("# getxattr(2) is not among cosy's calls"),
        "{text}"
    );
}

#[test]
fn paths_without_a_listing_become_a_map_over_paths() {
    let text = check(&sequence(&["openat", "read", "close"], &[1.0; 3], false));
    assert!(
        ops(&text).iter().any(|l| l.starts_with("map p in paths(")),
        "{text}"
    );
}

#[test]
fn work_on_a_descriptor_becomes_a_counted_loop() {
    let text = check(&sequence(&["read", "write"], &[1.0; 2], false));
    let ops = ops(&text);
    assert!(ops.contains(&"r = read g data"), "{text}");
    assert!(ops.contains(&"write stdout data[0..r]"), "{text}");
    assert!(
        ops.iter().any(|l| l.starts_with("if i < 50 goto again")),
        "{text}"
    );
    check(&sequence(
        &["lseek", "read", "close", "getpid"],
        &[1.0; 4],
        false,
    ));
}
