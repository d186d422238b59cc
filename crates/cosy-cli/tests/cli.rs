//! `cosy run` end to end: every example against an independent computation, and every kind of
//! bad input against its exit code and message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/cosy-cli lies two levels below the workspace")
        .to_path_buf()
}

fn cosy(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cosy"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("cosy runs")
}

/// Standard output as text, cut to its last 2000 bytes (enough for the results).
fn stdout(o: &Output) -> String {
    let start = o.stdout.len().saturating_sub(2000);
    String::from_utf8_lossy(&o.stdout[start..]).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The value of `name = value` in the output.
fn result(o: &Output, name: &str) -> i64 {
    let text = stdout(o);
    text.lines()
        .filter_map(|l| l.split_once(" = "))
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no result `{name}` in {text:?} (stderr {})", stderr(o)))
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout {}\nstderr {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

fn fails(o: &Output, code: i32, words: &[&str]) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout {}\nstderr {}",
        stdout(o),
        stderr(o)
    );
    let err = stderr(o);
    for w in words {
        assert!(err.contains(w), "`{w}` not in stderr: {err}");
    }
}

#[test]
fn cat_prints_the_file_and_counts_its_bytes() {
    let readme = std::fs::read(workspace().join("README.md")).expect("README");
    let o = cosy(&workspace(), &["run", "examples/cat.cosy"]);
    ok(&o);
    assert!(o.stdout.starts_with(&readme), "stdout is not README.md");
    assert_eq!(result(&o, "bytes"), readme.len() as i64);
}

#[test]
fn cat_reads_a_file_larger_than_its_buffer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("big"), &data).expect("write");
    let o = cosy(
        dir.path(),
        &[
            "run",
            &workspace().join("examples/cat.cosy").to_string_lossy(),
            "file=big",
        ],
    );
    ok(&o);
    assert!(o.stdout.starts_with(&data), "stdout is not the file");
    let rest = String::from_utf8_lossy(&o.stdout[data.len()..]).into_owned();
    assert_eq!(rest, format!("bytes = {}\n", data.len()));
}

/// `cosy run examples/cat.cosy` with stdout appended to a file (`>> log`, stdout `O_APPEND`)
/// and on a FIFO and `/proc/self/status` as its input: the optimizer turns its read + write
/// loop into sendfile, which the kernel refuses there (EINVAL); the output is what `--no-opt`
/// writes.
#[test]
fn cat_writes_the_same_with_and_without_the_optimizer_where_sendfile_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = workspace().join("examples/cat.cosy");
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success(),
        "mkfifo"
    );
    // Runs `cosy run --root / cat.cosy [--no-opt] file=INPUT >> log` (the root the whole file
    // system, for /proc) through a shell, feeding the FIFO
    // when it is the input; the log's bytes.
    let run = |input: &str, opt: bool, n: usize| {
        let log = dir.path().join(format!("log{n}"));
        std::fs::write(&log, b"first line\n").expect("log");
        let feed = if input == "fifo" {
            "(printf 'through a fifo\\n' > fifo) & "
        } else {
            ""
        };
        let script = format!(
            "{feed}'{}' run --root / {} '{}' file={} >> '{}'; s=$?; wait; exit $s",
            env!("CARGO_BIN_EXE_cosy"),
            if opt { "" } else { "--no-opt" },
            cat.display(),
            dir.path().join(input).display(),
            log.display()
        );
        let o = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(dir.path())
            .output()
            .expect("sh");
        assert!(
            o.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::read(&log).expect("log")
    };
    std::fs::write(dir.path().join("plain"), b"a regular file\n").expect("write");
    for (i, input) in ["plain", "fifo", "/proc/self/status"].iter().enumerate() {
        let with = run(input, true, 2 * i);
        let without = run(input, false, 2 * i + 1);
        let text = String::from_utf8_lossy(&with).into_owned();
        assert!(
            text.starts_with("first line\n") && text.contains("bytes = "),
            "{text}"
        );
        if *input == "/proc/self/status" {
            // Each run is another process: compare the shape, not the numbers.
            let keys = |b: &[u8]| -> Vec<String> {
                String::from_utf8_lossy(b)
                    .lines()
                    .map(|l| l.split(':').next().unwrap_or("").to_string())
                    .collect()
            };
            assert_eq!(keys(&with), keys(&without), "{input}");
        } else {
            assert_eq!(with, without, "{input}");
        }
    }
}

/// The two blocking cases of a compound under `--time-limit`: the open of a FIFO without a
/// writer, and a read of standard input from a pipe that gets no data. On every backend the
/// run ends within the limit plus 100 ms (with exit 1 and the time-limit error or, for the
/// FIFO on io_uring, which opens it without waiting, at once).
#[test]
fn blocking_calls_end_at_the_time_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(
        Command::new("mkfifo")
            .arg(dir.path().join("fifo"))
            .status()
            .expect("mkfifo")
            .success()
    );
    let fifo = compound_file(
        dir.path(),
        "fifo.cosy",
        "f = openat cwd \"fifo\" O_RDONLY 0\nclose f\n",
    );
    let stdin = compound_file(
        dir.path(),
        "stdin.cosy",
        "buffer b 16\nn = read stdin b\noutput n\n",
    );
    for backend in ["direct", "ring", "auto"] {
        for f in [&fifo, &stdin] {
            // Standard input is a pipe whose write end stays open here and gets no data.
            let t = std::time::Instant::now();
            let mut child = Command::new(env!("CARGO_BIN_EXE_cosy"))
                .args(["run", "--backend", backend, "--time-limit", "0.5"])
                .arg(f)
                .current_dir(dir.path())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("cosy runs");
            // Kept until cosy ends (wait_with_output would close it: end of file).
            let _writer = child.stdin.take();
            let o = child.wait_with_output().expect("cosy ends");
            let took = t.elapsed();
            let err = String::from_utf8_lossy(&o.stderr);
            let what = format!("{} on {backend}", f.display());
            assert!(took.as_millis() < 600, "{what}: {took:?}");
            if o.status.success() {
                assert!(
                    f == &fifo && backend != "direct",
                    "{what} did not stop: {err}"
                );
            } else {
                assert!(
                    err.contains("time limit of 500ms exceeded"),
                    "{what}: {err}"
                );
            }
        }
    }
}

/// A run that fails prints no results on standard output (a script reading it would take
/// `count = 0` for the answer): they go to standard error, after the error's place.
#[test]
fn a_failed_run_prints_no_results_on_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = compound_file(
        dir.path(),
        "fail.cosy",
        "count = 0\nf = openat cwd \"missing\" O_RDONLY 0\ncount = count + 1\noutput count\n",
    );
    let o = cosy(dir.path(), &["run", &f.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ENOENT") && err.contains("count = 0"), "{err}");
}

#[test]
fn copy_makes_an_identical_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: Vec<u8> = (0..200_001u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(dir.path().join("src"), &data).expect("write");
    let example = workspace().join("examples/copy.cosy");
    let o = cosy(
        dir.path(),
        &["run", &example.to_string_lossy(), "src=src", "dst=dst"],
    );
    ok(&o);
    assert_eq!(std::fs::read(dir.path().join("dst")).expect("dst"), data);
    assert_eq!(result(&o, "copied"), data.len() as i64);
}

#[test]
fn copy_runs_with_its_defaults() {
    let o = cosy(&workspace(), &["run", "examples/copy.cosy"]);
    ok(&o);
    let readme = std::fs::read(workspace().join("README.md")).expect("README");
    assert_eq!(result(&o, "copied"), readme.len() as i64);
}

fn entries_size(dir: &Path) -> (i64, i64) {
    let mut total = 0;
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let m = e
            .expect("entry")
            .path()
            .symlink_metadata()
            .expect("metadata");
        total += m.len() as i64;
        n += 1;
    }
    (total, n)
}

#[test]
fn dirsize_sums_what_std_fs_sums() {
    let o = cosy(&workspace(), &["run", "examples/dirsize.cosy"]);
    ok(&o);
    let (total, n) = entries_size(&workspace().join("examples"));
    assert_eq!(result(&o, "total"), total);
    assert_eq!(result(&o, "entries"), n);

    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..300 {
        std::fs::write(dir.path().join(format!("f{i}")), vec![b'x'; i * 13]).expect("write");
    }
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    let example = workspace().join("examples/dirsize.cosy");
    let o = cosy(dir.path(), &["run", &example.to_string_lossy(), "dir=."]);
    ok(&o);
    let (total, n) = entries_size(dir.path());
    assert_eq!(result(&o, "total"), total);
    assert_eq!(result(&o, "entries"), n);
}

#[test]
fn dirsize_on_several_threads_sums_the_same_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..2000 {
        std::fs::write(dir.path().join(format!("f{i}")), vec![b'x'; i % 97]).expect("write");
    }
    let example = workspace().join("examples/dirsize.cosy");
    let (total, n) = entries_size(dir.path());
    for workers in ["1", "3"] {
        let o = cosy(
            dir.path(),
            &[
                "run",
                &example.to_string_lossy(),
                "dir=.",
                "--backend",
                "direct",
                "--workers",
                workers,
                "--stats",
            ],
        );
        ok(&o);
        assert_eq!(result(&o, "total"), total, "--workers {workers}");
        assert_eq!(result(&o, "entries"), n, "--workers {workers}");
        assert_eq!(
            stderr(&o).contains("threads "),
            workers != "1",
            "--workers {workers}: {}",
            stderr(&o)
        );
    }
}

fn count_word(dir: &Path, word: &[u8]) -> (i64, i64) {
    let mut count = 0;
    let mut files = 0;
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        if !e.file_type().expect("type").is_file() {
            continue;
        }
        files += 1;
        let mut data = std::fs::read(e.path()).expect("read");
        data.truncate(1 << 20);
        let mut i = 0;
        while i + word.len() <= data.len() {
            if &data[i..i + word.len()] == word {
                count += 1;
                i += word.len();
            } else {
                i += 1;
            }
        }
    }
    (count, files)
}

#[test]
fn wordcount_counts_what_rust_counts() {
    let o = cosy(&workspace(), &["run", "examples/wordcount.cosy"]);
    ok(&o);
    let (count, files) = count_word(&workspace().join("examples"), b"openat");
    assert!(count > 0);
    assert_eq!(result(&o, "count"), count);
    assert_eq!(result(&o, "files"), files);

    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..50 {
        let text = "the cat sat on the mat; the end\n".repeat(i);
        std::fs::write(dir.path().join(format!("t{i}.txt")), text).expect("write");
    }
    std::fs::create_dir(dir.path().join("a_dir")).expect("mkdir");
    let example = workspace().join("examples/wordcount.cosy");
    let o = cosy(
        dir.path(),
        &["run", &example.to_string_lossy(), "dir=.", "word=the"],
    );
    ok(&o);
    let (count, files) = count_word(dir.path(), b"the");
    assert_eq!(result(&o, "count"), count);
    assert_eq!(result(&o, "files"), files);
}

#[test]
fn thesis_example_reads_the_whole_file() {
    let o = cosy(&workspace(), &["run", "examples/thesis.cosy", "--stats"]);
    ok(&o);
    let len = std::fs::metadata(workspace().join("Cargo.toml"))
        .expect("meta")
        .len();
    assert_eq!(result(&o, "total"), len as i64);
}

#[test]
fn getpid_returns_the_pid_of_the_process() {
    let child = Command::new(env!("CARGO_BIN_EXE_cosy"))
        .current_dir(workspace())
        .args(["run", "examples/getpid.cosy", "count=1000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let o = child.wait_with_output().expect("wait");
    ok(&o);
    assert_eq!(result(&o, "pid"), i64::from(pid));
    assert_eq!(result(&o, "calls"), 1000);
}

fn compound_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write compound");
    p
}

#[test]
fn malformed_text_names_the_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = compound_file(
        dir.path(),
        "bad.cosy",
        "buffer b 16\nn = opneat cwd \"x\" 0 0\n",
    );
    let o = cosy(dir.path(), &["run", &f.to_string_lossy()]);
    fails(&o, 2, &["bad.cosy", "line 2", "opneat"]);
    let f = compound_file(
        dir.path(),
        "str.cosy",
        "f = openat cwd \"unterminated O_RDONLY 0\n",
    );
    fails(
        &cosy(dir.path(), &["run", &f.to_string_lossy()]),
        2,
        &["line 1"],
    );
}

#[test]
fn truncated_and_random_binary_are_rejected_with_an_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("thesis.bin");
    ok(&cosy(
        &workspace(),
        &["encode", "examples/thesis.cosy", &bin.to_string_lossy()],
    ));
    let bytes = std::fs::read(&bin).expect("binary");
    // The whole file runs like the text.
    let o = cosy(&workspace(), &["run", &bin.to_string_lossy()]);
    ok(&o);
    for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        let t = dir.path().join(format!("cut{cut}.bin"));
        std::fs::write(&t, &bytes[..cut]).expect("write");
        let o = cosy(dir.path(), &["run", &t.to_string_lossy()]);
        fails(&o, 2, &["byte"]);
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..20 {
        let mut junk = bytes[..8.min(bytes.len())].to_vec();
        for _ in 0..(i * 13 + 5) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push(seed as u8);
        }
        let t = dir.path().join(format!("junk{i}.bin"));
        std::fs::write(&t, &junk).expect("write");
        let o = cosy(dir.path(), &["run", &t.to_string_lossy()]);
        assert_ne!(
            o.status.code(),
            Some(101),
            "panic on random binary: {}",
            stderr(&o)
        );
        assert_ne!(o.status.code(), Some(0), "random binary ran");
    }
}

#[test]
fn out_of_bounds_buffers_are_refused_before_or_during_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("data"), vec![1u8; 100]).expect("write");
    let f = compound_file(
        dir.path(),
        "static.cosy",
        "buffer b 16\nf = openat cwd \"data\" O_RDONLY 0\nn = read f b[0..64]\nclose f\n",
    );
    fails(
        &cosy(dir.path(), &["run", &f.to_string_lossy()]),
        2,
        &["static.cosy", "line 3"],
    );
    let f = compound_file(
        dir.path(),
        "dynamic.cosy",
        "input int len = 64\nbuffer b 16\nf = openat cwd \"data\" O_RDONLY 0\nn = read f b[0..len]\nclose f\n",
    );
    fails(
        &cosy(dir.path(), &["run", &f.to_string_lossy()]),
        1,
        &["dynamic.cosy:4"],
    );
    ok(&cosy(dir.path(), &["run", &f.to_string_lossy(), "len=16"]));
}

#[test]
fn paths_cannot_escape_the_root() {
    let outer = tempfile::tempdir().expect("tempdir");
    let root = outer.path().join("root");
    std::fs::create_dir(&root).expect("mkdir");
    std::fs::write(outer.path().join("secret"), b"secret").expect("write");
    std::fs::write(root.join("inside"), b"inside").expect("write");
    std::os::unix::fs::symlink("../secret", root.join("link_out")).expect("symlink");
    std::os::unix::fs::symlink(outer.path().join("secret"), root.join("abs_link"))
        .expect("symlink");
    std::os::unix::fs::symlink("inside", root.join("link_in")).expect("symlink");
    let f = compound_file(
        outer.path(),
        "open.cosy",
        &std::fs::read_to_string(workspace().join("examples/cat.cosy")).expect("cat"),
    );
    let secret = outer.path().join("secret");
    let run = |file: &str| {
        cosy(
            &root,
            &["run", &f.to_string_lossy(), &format!("file={file}")],
        )
    };
    for escape in [
        "../secret",
        "link_out",
        "abs_link",
        &secret.to_string_lossy(),
    ] {
        let o = run(escape);
        // What happened and where, the errno kept: `open.cosy:4: openat "../secret": the path
        // leads outside the root ROOT (EXDEV)`.
        let want = format!(
            "open.cosy:4: openat {escape:?}: the path leads outside the root {}",
            root.canonicalize().expect("root").display()
        );
        fails(&o, 1, &["(EXDEV)", &want]);
        assert!(!stdout(&o).contains("secret"), "{escape} leaked the file");
    }
    for inside in ["inside", "link_in", &root.join("inside").to_string_lossy()] {
        let o = run(inside);
        ok(&o);
        assert!(stdout(&o).starts_with("inside"));
    }
}

#[test]
fn an_endless_loop_stops_at_the_time_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = compound_file(
        dir.path(),
        "spin.cosy",
        "i = 0\nagain:\ni = i + 1\nx = getppid\ngoto again bound 4000000000\noutput i\n",
    );
    let start = Instant::now();
    let o = cosy(
        dir.path(),
        &[
            "run",
            &f.to_string_lossy(),
            "--time-limit",
            "0.5",
            "--fuel",
            "100000000000",
        ],
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    fails(&o, 1, &["spin.cosy:"]);
    assert!(stderr(&o).to_lowercase().contains("time"), "{}", stderr(&o));
    let o = cosy(dir.path(), &["run", &f.to_string_lossy(), "--fuel", "1000"]);
    fails(&o, 1, &["fuel"]);
}

#[test]
fn a_loop_without_a_bound_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = compound_file(
        dir.path(),
        "loop.cosy",
        "i = 0\nagain:\ni = i + 1\ngoto again\n",
    );
    fails(
        &cosy(dir.path(), &["run", &f.to_string_lossy()]),
        2,
        &["line 4", "bound"],
    );
}

#[test]
fn a_failing_call_names_the_line_and_errno() {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = workspace().join("examples/cat.cosy");
    let o = cosy(
        dir.path(),
        &["run", &example.to_string_lossy(), "file=missing"],
    );
    fails(&o, 1, &["cat.cosy:4", "openat", "ENOENT"]);
}

#[test]
fn unknown_inputs_and_bad_values_are_usage_errors() {
    let o = cosy(&workspace(), &["run", "examples/getpid.cosy", "nope=1"]);
    fails(&o, 2, &["nope"]);
    let o = cosy(&workspace(), &["run", "examples/getpid.cosy", "count=many"]);
    fails(&o, 2, &["count", "many"]);
    let o = cosy(
        &workspace(),
        &["run", "examples/getpid.cosy", "--backend", "warp"],
    );
    fails(&o, 2, &["warp"]);
    let o = cosy(&workspace(), &["run", "no/such/file.cosy"]);
    fails(&o, 2, &["no/such/file.cosy"]);
}
