//! The constructs of `compound!` beyond the examples, each run and checked against the same
//! computation in plain Rust (or the file system), on every executor.

use std::collections::BTreeSet;

use cosy::{Backend, Policy, RunOptions};

fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Direct, Backend::Auto];
    if !cosy_uring::skip_without_uring("the macro compounds on the ring executor") {
        b.push(Backend::Ring);
    }
    b
}

fn opts(backend: Backend) -> RunOptions {
    RunOptions {
        backend,
        ..RunOptions::default()
    }
}

cosy::compound! {
    /// Integer arithmetic, `if`/`else` chains, `while`, `&&`/`||`, min/max, shadowing.
    fn arith(n: i64) -> Arith {
        let mut i = 0;
        let mut evens = 0;
        let mut odds = 0;
        let mut big = 0;
        let mut acc = 1;
        #[bound(1000)]
        while i < n {
            if i % 2 == 0 {
                evens += 1;
            } else if i % 3 == 0 {
                odds += 10;
            } else {
                odds += 1;
            }
            if (i > 5 && i < 10) || i == 42 {
                big += 1;
            }
            if !(i < 3) {
                acc = (acc * 3 + i) % 1_000_003;
            }
            i += 1;
        }
        let clamped = acc.min(500).max(100);
        let x = 5;
        {
            let x = x * 100;
            acc += x;
        }
        let sign = if n > 10 { -1 } else { 1 };
        Arith { evens, odds, big, acc, clamped, x, sign, neg: -n, shifted: (n << 4) | 3 }
    }
}

fn arith_in_rust(n: i64) -> [i64; 9] {
    let (mut evens, mut odds, mut big, mut acc) = (0, 0, 0, 1i64);
    for i in 0..n {
        if i % 2 == 0 {
            evens += 1;
        } else if i % 3 == 0 {
            odds += 10;
        } else {
            odds += 1;
        }
        if (i > 5 && i < 10) || i == 42 {
            big += 1;
        }
        if i >= 3 {
            acc = (acc * 3 + i) % 1_000_003;
        }
    }
    let clamped = acc.clamp(100, 500);
    acc += 500;
    let sign = if n > 10 { -1 } else { 1 };
    [evens, odds, big, acc, clamped, 5, sign, -n, (n << 4) | 3]
}

#[test]
fn arithmetic_and_control_flow_match_rust() {
    for b in backends() {
        for n in [0, 1, 7, 11, 50, 100] {
            let o = arith::run(&Policy::trusted(), &opts(b), n).unwrap();
            assert_eq!(
                [
                    o.evens, o.odds, o.big, o.acc, o.clamped, o.x, o.sign, o.neg, o.shifted
                ],
                arith_in_rust(n),
                "n = {n} on {b:?}"
            );
        }
    }
}

cosy::compound! {
    /// `for` over a stepped range, a list of offsets, a list of paths; `load`/`store`.
    fn maps(file: &Path) -> Maps {
        let f = openat(cwd, file, O_RDONLY, 0)?;
        let mut sum = 0;
        let mut blocks = 0;
        for off in (0..10_000).step_by(4096) {
            let mut b = [0u8; 16];
            let n = pread(f, &mut b, off)?;
            sum += load_u8(&b, 0);
            blocks += n;
        }
        let mut picked = 0;
        for off in [1, 4097, 8193] {
            let mut b = [0u8; 8];
            pread(f, &mut b, off)?;
            store_u16(&mut b, 2, 0x0102);
            picked += load_u32(&b, 0);
        }
        close(f)?;
        let mut present = 0;
        for p in [file, "/nonexistent-cosy-macro-test"] {
            let mut st = [0u8; 256];
            statx(cwd, p, 0, STATX_SIZE, &mut st)?;
            present += 1;
        }
        let mut squares = 0;
        for i in 1..=4 {
            squares += i * i;
        }
        Maps { sum, blocks, picked, squares, present }
    }
}

#[test]
fn maps_over_ranges_offsets_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    for b in backends() {
        // The list of paths holds one that does not exist: stop mode stops there.
        let e = maps::run(&Policy::trusted(), &opts(b), &file).unwrap_err();
        assert!(matches!(e, maps::Error::Run(_)), "{e}");
    }
}

cosy::compound! {
    /// The same maps without the missing path, checked value by value.
    fn maps_ok(file: &Path) -> MapsOk {
        let f = openat(cwd, file, O_RDONLY, 0)?;
        let mut sum = 0;
        let mut blocks = 0;
        for off in (0..10_000).step_by(4096) {
            let mut b = [0u8; 16];
            let n = pread(f, &mut b, off)?;
            sum += load_u8(&b, 0);
            blocks += n;
        }
        let mut picked = 0;
        for off in [1, 4097, 8193] {
            let mut b = [0u8; 8];
            pread(f, &mut b, off)?;
            store_u16(&mut b, 2, 0x0102);
            picked += load_u32(&b, 0);
        }
        close(f)?;
        let mut present = 0;
        for p in [file, file] {
            let mut st = [0u8; 256];
            statx(cwd, p, 0, STATX_SIZE, &mut st)?;
            present += load_u64(&st, STATX_SIZE_OFFSET);
        }
        let mut squares = 0;
        for i in 1..=4 {
            squares += i * i;
        }
        MapsOk { sum, blocks, picked, squares, present }
    }
}

#[test]
fn map_results_match_rust() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let sum: i64 = (0..10_000).step_by(4096).map(|o| i64::from(data[o])).sum();
    let blocks: i64 = (0..10_000usize)
        .step_by(4096)
        .map(|o| (data.len() - o).min(16) as i64)
        .sum();
    let picked: i64 = [1usize, 4097, 8193]
        .iter()
        .map(|&o| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&data[o..o + 4]);
            b[2..4].copy_from_slice(&0x0102u16.to_le_bytes());
            i64::from(u32::from_le_bytes(b))
        })
        .sum();
    for b in backends() {
        let o = maps_ok::run(&Policy::trusted(), &opts(b), &file).unwrap();
        assert_eq!((o.sum, o.blocks, o.picked), (sum, blocks, picked), "{b:?}");
        assert_eq!(o.squares, 1 + 4 + 9 + 16);
        assert_eq!(o.present, 2 * 10_000);
    }
}

cosy::compound! {
    /// Continue mode: each call's failure is matched; `errno` is the error number.
    fn sizes(a: &Path, b: &Path) -> Sizes {
        let mut st = [0u8; 256];
        let mut found = 0;
        let mut missing = 0;
        let mut last_errno = 0;
        let mut total = 0;
        for p in [a, b] {
            let mut st = [0u8; 256];
            match statx(cwd, p, 0, STATX_SIZE, &mut st) {
                Ok(_) => {
                    found += 1;
                    total += load_u64(&st, STATX_SIZE_OFFSET);
                }
                Err(_) => missing += 1,
            }
        }
        let r = match statx(cwd, b, 0, STATX_SIZE, &mut st) {
            Ok(r) => r,
            Err(errno) => errno,
        };
        last_errno = r;
        Sizes { found, missing, total, last_errno }
    }
}

#[test]
fn continue_mode_matches_failures() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, [7u8; 123]).unwrap();
    let gone = dir.path().join("gone");
    for b in backends() {
        let o = sizes::run(&Policy::trusted(), &opts(b), &file, &gone).unwrap();
        assert_eq!((o.found, o.missing, o.total), (1, 1, 123), "{b:?}");
        assert_eq!(o.last_errno, 2, "ENOENT");
        assert_eq!(
            o.errors.len(),
            2,
            "two failed calls recorded: {:?}",
            o.errors
        );
        let o = sizes::run(&Policy::trusted(), &opts(b), &file, &file).unwrap();
        assert_eq!((o.found, o.missing, o.last_errno), (2, 0, 0));
        assert!(o.errors.is_empty());
    }
}

cosy::compound! {
    /// A user function: a closure of the program, registered by name.
    #[functions(weigh)]
    fn weighed(file: &Path, factor: i64) -> Weighed {
        let mut buf = [0u8; 4096];
        let f = openat(cwd, file, O_RDONLY, 0)?;
        let n = read(f, &mut buf)?;
        close(f)?;
        let w = weigh(&buf[..n], factor);
        Weighed { w, lines: count_lines(&buf[..n]) }
    }
}

#[test]
fn user_functions_are_closures_registered_by_name() {
    assert_eq!(weighed::FUNCTIONS, ["weigh"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, "a\nbb\nccc\n").unwrap();
    let mut policy = Policy::trusted();
    // Not allowed by the policy: the run-time verification refuses it.
    let e = weighed::run(&policy, &RunOptions::default(), &file, 3).unwrap_err();
    assert!(matches!(e, weighed::Error::Verify(_)), "{e}");
    policy.functions = weighed::FUNCTIONS
        .iter()
        .map(|f| f.to_string())
        .collect::<BTreeSet<_>>();
    for b in backends() {
        let mut o = opts(b);
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let s2 = seen.clone();
        o.functions.register("weigh", move |a| {
            s2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let bytes = a.bytes(0)?;
            Ok(bytes.iter().filter(|&&c| c != b'\n').count() as i64 * a.int(1)?)
        });
        let out = weighed::run(&policy, &o, &file, 3).unwrap();
        assert_eq!(out.w, 6 * 3);
        assert_eq!(out.lines, 3);
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}

#[test]
fn the_run_time_policy_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inside"), "x").unwrap();
    let policy = Policy::untrusted(dir.path());
    // A path input leaving the policy's root fails at run time, not at compile time.
    let e = maps_ok::run(&policy, &RunOptions::default(), "../../../../../etc/passwd");
    assert!(e.is_err());
    let ok = maps_ok::run(&policy, &RunOptions::default(), "inside").unwrap();
    assert_eq!(ok.present, 2);
    // Verification is cached for the last policy and inputs, and redone for others.
    let v1 = maps_ok::verify(&policy, "inside").unwrap();
    let v2 = maps_ok::verify(&Policy::trusted(), "inside").unwrap();
    assert_eq!(v1.policy(), &policy);
    assert_eq!(v2.policy(), &Policy::trusted());
}

cosy::compound! {
    /// Names the text format gives a meaning by position only, `while` with `continue`,
    /// nested bounded loops, `break` out of an inner loop, values of `if` and blocks.
    fn names(n: i64) -> Names {
        let mut map = 0;
        let mut output = 0;
        let mut input = 0;
        let mut goto = 0;
        let mut store = 0;
        let mut mode = 0;
        let mut i = 0;
        #[bound(100)]
        while i < n {
            i += 1;
            if i % 3 == 0 {
                continue;
            }
            map += i;
            let mut j = 0;
            // A bound counts the rounds of the whole run: 1000 covers every entry.
            #[bound(1000)]
            loop {
                j += 1;
                if j > i {
                    break;
                }
                output += 1;
            }
            input += if i > 4 { 2 } else { 1 };
            goto += {
                let t = i * 2;
                t + 1
            };
        }
        store = map.max(output);
        mode = -store;
        Names { map, output, input, goto, store, mode }
    }
}

#[test]
fn names_continue_and_nested_loops_match_rust() {
    let n = 20;
    let (mut map, mut output, mut input, mut goto) = (0i64, 0i64, 0i64, 0i64);
    for i in 1..=n {
        if i % 3 == 0 {
            continue;
        }
        map += i;
        output += i;
        input += if i > 4 { 2 } else { 1 };
        goto += i * 2 + 1;
    }
    let store = map.max(output);
    let o = names::run(&Policy::trusted(), &RunOptions::default(), n).unwrap();
    assert_eq!(
        [o.map, o.output, o.input, o.goto, o.store, o.mode],
        [map, output, input, goto, store, -store]
    );
}

#[test]
fn a_compound_declared_inside_a_function_with_no_outputs() {
    cosy::compound! {
        fn touch(path: &Path) -> Nothing {
            let fd = openat(cwd, path, O_WRONLY | O_CREAT, 0o600)?;
            close(fd)?;
            Nothing {}
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("touched");
    let out: touch::Nothing = touch::run(&Policy::trusted(), &RunOptions::default(), &p).unwrap();
    assert!(p.exists());
    assert_eq!(out.stats.syscalls, 2);
    // The compound's text is there to read, and is what `compound()` parses.
    assert_eq!(cosy::text::print(touch::compound()), touch::TEXT);
    assert!(touch::TEXT.contains("openat cwd $path O_WRONLY|O_CREAT 0o600"));
}

cosy::compound! {
    /// The other spellings docs/macro.md lists.
    fn spellings(path: &Path, k: i64) -> Spellings {
        let fd = openat(cwd, path, OFlags::RDONLY | OFlags::CLOEXEC, 0)?;
        let mut b = [0u8; 16];
        store_u64(&mut b, 8, k * 3);
        let small = min(k, 7) as i64;
        let large = max(k as usize, 7);
        let back = load_u64(&b, 8);
        let pos = lseek(fd, 2, SEEK_SET)?;
        let n = read(fd, &mut b[4..])?;
        let first = load_u8(&b, 4);
        close(fd)?;
        Spellings { small, large, back, pos, n, first }
    }
}

#[test]
fn other_spellings_work() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, "abcdefghijklmnopqrstuvwxyz").unwrap();
    let o = spellings::run(&Policy::trusted(), &RunOptions::default(), &p, 10).unwrap();
    assert_eq!((o.small, o.large, o.back, o.pos), (7, 10, 30, 2));
    assert_eq!((o.n, o.first), (12, i64::from(b'c')));
    assert!(
        spellings::TEXT.contains("O_RDONLY|O_CLOEXEC"),
        "{}",
        spellings::TEXT
    );
}
