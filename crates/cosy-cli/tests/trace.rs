//! `cosy trace` end to end: its counts against `strace -f -c` on the same runs of `grep -r`,
//! `du` and `ls -l` over a generated corpus, with both mechanisms; the suggestion for
//! `grep -r` against `cosy check` and `cosy run`; exit statuses, errors and interrupts.
//!
//! Tests that need strace, perf_event or ptrace permissions skip, and say so, where they are
//! missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A corpus of 260 files: 200 at the top, 30 in each of two subdirectories; every seventh
/// mentions "needle".
fn corpus() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("corpus");
    std::fs::create_dir(&root).expect("mkdir");
    let mut n = 0;
    let mut write = |path: PathBuf| {
        let mut text = String::new();
        for line in 0..(n % 5 + 1) * 8 {
            text.push_str(&format!("line {line} of file {n}\n"));
        }
        if n % 7 == 0 {
            text.push_str("a needle in it\n");
        }
        std::fs::write(path, text).expect("write");
        n += 1;
    };
    for i in 0..200 {
        write(root.join(format!("f{i:03}.txt")));
    }
    for sub in ["sub_a", "sub_b"] {
        std::fs::create_dir(root.join(sub)).expect("mkdir");
        for i in 0..30 {
            write(root.join(sub).join(format!("g{i:02}.txt")));
        }
    }
    (dir, root)
}

const PROGRAMS: [&[&str]; 3] = [
    &["grep", "-r", "needle", "corpus"],
    &["du", "corpus"],
    &["ls", "-l", "corpus"],
];

type Counts = BTreeMap<String, (u64, u64)>;

/// The rows of a `strace -c` style table: name → (calls, errors). The table lies between
/// the first two rules; the name is the last column, the calls the `calls_at`-th, and errors
/// the one after it when the row has `with_errors` columns.
fn table(text: &str, calls_at: usize, with_errors: usize) -> Counts {
    let mut rows = Counts::new();
    let mut rules = 0;
    for line in text.lines() {
        if line.starts_with("------") {
            rules += 1;
            continue;
        }
        if rules != 1 {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(calls)) = (cols.last(), cols.get(calls_at)) else {
            continue;
        };
        let calls: u64 = calls.parse().unwrap_or_else(|_| panic!("bad row {line:?}"));
        let errors = if cols.len() == with_errors {
            cols[calls_at + 1].parse().unwrap_or(0)
        } else {
            0
        };
        rows.insert(name.to_string(), (calls, errors));
    }
    rows
}

fn have_strace() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `strace -f -c` of `argv` run in `dir`: name → (calls, errors).
fn strace_counts(dir: &Path, argv: &[&str]) -> Counts {
    strace_counts_of(dir, argv, None)
}

/// `strace -f -c` of `argv` run in `dir`, tracing only `calls` if given.
fn strace_counts_of(dir: &Path, argv: &[&str], calls: Option<&str>) -> Counts {
    let out = dir.join("strace.txt");
    let mut strace = Command::new("strace");
    if let Some(calls) = calls {
        strace.arg("-e").arg(format!("trace={calls}"));
    }
    let status = strace
        .current_dir(dir)
        .args(["-f", "-c", "-o"])
        .arg(&out)
        .arg("--")
        .args(argv)
        .stdout(Stdio::null())
        .status()
        .expect("strace runs");
    assert!(status.success(), "strace {argv:?}: {status}");
    // % time, seconds, usecs/call, calls, errors, syscall
    table(
        &std::fs::read_to_string(&out).expect("strace's table"),
        3,
        6,
    )
}

fn cosy(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cosy"))
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .output()
        .expect("cosy runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Why the mechanism cannot run here, from cosy's error, if that is why it failed.
fn unavailable(o: &Output) -> Option<String> {
    let e = stderr(o);
    (o.status.code() == Some(1)
        && [
            "no permission",
            "tracepoints are not visible",
            "perf_event_open",
        ]
        .iter()
        .any(|w| e.contains(w)))
    .then_some(e)
}

/// `cosy trace -f` of `argv` in `dir` with `mechanism`: the report, or why it cannot run.
fn cosy_report(
    dir: &Path,
    mechanism: &str,
    argv: &[&str],
    extra: &[&str],
) -> Result<String, String> {
    let report = dir.join(format!("cosy-{mechanism}.txt"));
    let report_arg = report.to_str().expect("utf-8 path");
    let mut args = vec!["trace", "-f", mechanism, "-o", report_arg];
    args.extend(extra);
    args.push("--");
    args.extend(argv);
    let o = cosy(dir, &args);
    if let Some(why) = unavailable(&o) {
        return Err(why);
    }
    assert!(
        o.status.success(),
        "cosy {args:?}: {:?}\n{}",
        o.status,
        stderr(&o)
    );
    let text = std::fs::read_to_string(&report).expect("the report");
    let named = match mechanism {
        "--perf" => "(perf_event tracepoints)",
        _ => "(ptrace)",
    };
    assert!(
        text.lines().next().is_some_and(|l| l.contains(named)),
        "the report names another mechanism than {mechanism}:\n{text}"
    );
    Ok(text)
}

fn counts_equal_strace(mechanism: &str) {
    if !have_strace() {
        eprintln!("skipping: strace is not installed");
        return;
    }
    let (tmp, _) = corpus();
    // cosy's own compounds too: the wordcount example over the corpus (plain calls, one
    // thread, so that both tracers see the same calls).
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/wordcount.cosy");
    let example = example.to_string_lossy().into_owned();
    let cosy_run: &[&str] = &[
        env!("CARGO_BIN_EXE_cosy"),
        "run",
        &example,
        "dir=corpus",
        "word=needle",
        "--backend",
        "direct",
        "--workers",
        "1",
    ];
    for argv in PROGRAMS.into_iter().chain([cosy_run]) {
        let expected = strace_counts(tmp.path(), argv);
        assert!(expected.contains_key("execve"), "{expected:?}");
        let report = match cosy_report(tmp.path(), mechanism, argv, &[]) {
            Ok(r) => r,
            Err(why) => {
                eprintln!("skipping {mechanism}: {why}");
                return;
            }
        };
        // % time, seconds, calls, [errors], min, avg, max, syscall
        let got = table(&report, 2, 8);
        assert_eq!(got, expected, "{argv:?} with {mechanism}:\n{report}");
    }
}

#[test]
fn counts_equal_strace_with_perf() {
    counts_equal_strace("--perf");
}

#[test]
fn counts_equal_strace_with_ptrace() {
    counts_equal_strace("--ptrace");
}

#[test]
fn counts_of_a_forking_program_equal_strace() {
    if !have_strace() {
        eprintln!("skipping: strace is not installed");
        return;
    }
    let (tmp, _) = corpus();
    let argv = [
        "sh",
        "-c",
        "ls corpus > /dev/null; cat corpus/f001.txt corpus/f002.txt",
    ];
    let expected = strace_counts(tmp.path(), &argv);
    assert!(
        expected.get("execve").is_some_and(|r| r.0 >= 3),
        "{expected:?}"
    );
    for mechanism in ["--perf", "--ptrace"] {
        match cosy_report(tmp.path(), mechanism, &argv, &[]) {
            Ok(report) => assert_eq!(table(&report, 2, 8), expected, "{mechanism}:\n{report}"),
            Err(why) => eprintln!("skipping {mechanism}: {why}"),
        }
    }
}

#[test]
fn counts_of_listed_calls_equal_strace() {
    if !have_strace() {
        eprintln!("skipping: strace is not installed");
        return;
    }
    let (tmp, _) = corpus();
    let calls = "openat,read,close,execve,wait4,vfork,clone,rt_sigreturn";
    let forking = [
        "sh",
        "-c",
        "ls corpus > /dev/null; cat corpus/f001.txt corpus/f002.txt",
    ];
    for argv in [PROGRAMS[0], &forking[..]] {
        let expected = strace_counts_of(tmp.path(), argv, Some(calls));
        assert!(expected.contains_key("openat"), "{expected:?}");
        // ptrace: under a seccomp filter that stops at these calls only.
        for mechanism in ["--perf", "--ptrace"] {
            match cosy_report(tmp.path(), mechanism, argv, &["--calls", calls]) {
                Ok(report) => {
                    assert_eq!(
                        table(&report, 2, 8),
                        expected,
                        "{argv:?} {mechanism}:\n{report}"
                    );
                    if mechanism == "--ptrace" {
                        assert!(
                            report.contains("a seccomp filter stops the program"),
                            "{report}"
                        );
                    }
                }
                Err(why) => eprintln!("skipping {mechanism}: {why}"),
            }
        }
    }
}

/// The suggestion blocks of a report: (first line, compound text).
fn suggestions(report: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in report.lines() {
        if line.starts_with("# --- suggestion") {
            out.extend(current.take());
            current = Some((line.to_string(), String::new()));
        } else if let Some((_, text)) = &mut current {
            if line.is_empty() {
                out.extend(current.take());
            } else {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    out.extend(current);
    out
}

/// Whether `names` appear in `line` in this order.
fn in_order(line: &str, names: &[&str]) -> bool {
    let calls: Vec<&str> = line
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    let mut at = 0;
    for name in names {
        match calls[at..].iter().position(|c| c == name) {
            Some(i) => at += i + 1,
            None => return false,
        }
    }
    true
}

#[test]
fn grep_suggestion_names_open_read_close_and_its_skeleton_checks_and_runs() {
    let (tmp, root) = corpus();
    let argv = PROGRAMS[0];
    let mut ran = false;
    for mechanism in ["--perf", "--ptrace"] {
        let report = match cosy_report(tmp.path(), mechanism, argv, &["--suggest"]) {
            Ok(r) => r,
            Err(why) => {
                eprintln!("skipping {mechanism}: {why}");
                continue;
            }
        };
        ran = true;
        let found = suggestions(&report);
        let (title, skeleton) = found
            .first()
            .unwrap_or_else(|| panic!("no suggestion in\n{report}"));
        assert!(
            in_order(title, &["openat", "read", "close"]),
            "the top suggestion is not openat … read … close: {title}\n{report}"
        );

        // What `cosy check` does, through the library.
        let loaded = cosy_format::load(skeleton.as_bytes())
            .unwrap_or_else(|e| panic!("the skeleton does not parse: {e}\n{skeleton}"));
        let policy = cosy_model::Policy::untrusted(tmp.path().canonicalize().expect("root"));
        if let Err(problems) = cosy_verify::verify(loaded.compound, &policy) {
            panic!("the skeleton does not verify:\n{problems}\n{skeleton}");
        }

        // And through the command line: check, then run. Its input points at the corpus
        // (the directory grep was given), relative to where grep ran.
        let file = tmp.path().join("suggestion.cosy");
        std::fs::write(&file, skeleton).expect("write");
        let check = Command::new(env!("CARGO_BIN_EXE_cosy"))
            .current_dir(tmp.path())
            .args(["check", "suggestion.cosy"])
            .output()
            .expect("cosy check");
        assert!(
            check.status.success(),
            "cosy check: {}\n{skeleton}",
            stderr(&check)
        );
        let run = Command::new(env!("CARGO_BIN_EXE_cosy"))
            .current_dir(tmp.path())
            .args(["run", "suggestion.cosy"])
            .output()
            .expect("cosy run");
        assert!(
            run.status.success(),
            "cosy run: {}\n{skeleton}",
            stderr(&run)
        );
        let regular = std::fs::read_dir(&root)
            .expect("read corpus")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_type().is_ok_and(|t| t.is_file()))
            })
            .count();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            stdout.lines().any(|l| l == format!("files = {regular}")),
            "the skeleton should visit the {regular} files of the corpus: {stdout}"
        );
    }
    if !ran {
        eprintln!("skipping: neither mechanism can trace here");
    }
}

/// Runs `cosy trace MECHANISM -- ARGV` and returns its exit code, or `None` when the
/// mechanism cannot run here.
fn traced_status(mechanism: &str, argv: &[&str]) -> Option<i32> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["trace", mechanism, "-o", "report.txt", "--"];
    args.extend(argv);
    let o = cosy(tmp.path(), &args);
    if let Some(why) = unavailable(&o) {
        eprintln!("skipping {mechanism}: {why}");
        return None;
    }
    o.status.code()
}

#[test]
fn exit_status_is_the_programs() {
    for mechanism in ["--perf", "--ptrace"] {
        if let Some(code) = traced_status(mechanism, &["sh", "-c", "exit 7"]) {
            assert_eq!(code, 7, "{mechanism}");
        }
        if let Some(code) = traced_status(mechanism, &["sh", "-c", "kill -TERM $$"]) {
            assert_eq!(code, 128 + 15, "{mechanism}");
        }
    }
}

#[test]
fn errors_are_clear_and_exit_non_zero() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for mechanism in ["--perf", "--ptrace"] {
        let o = cosy(
            tmp.path(),
            &["trace", mechanism, "--", "no-such-program-here"],
        );
        if unavailable(&o).is_some() {
            eprintln!("skipping {mechanism}: cannot trace here");
            continue;
        }
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("no-such-program-here: command not found"),
            "{}",
            stderr(&o)
        );

        // A PID that no process has: that of a child that has been reaped.
        let mut gone = Command::new("true").spawn().expect("true");
        let pid = gone.id().to_string();
        gone.wait().expect("wait");
        let o = cosy(tmp.path(), &["trace", mechanism, "-p", &pid]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("no process with PID {pid}")),
            "{}",
            stderr(&o)
        );
    }
    let o = cosy(tmp.path(), &["trace"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing to trace"), "{}", stderr(&o));
}

/// Waits at most `limit` for `child` to end.
fn wait_for(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

/// Waits (at most 10 s) until `ready()`.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` has a child running `comm` (that child has exec'd).
fn has_child_running(pid: u32, comm: &str) -> bool {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .any(|c| std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.trim() == comm))
}

/// Whether `tracer` traces `program`: ptrace makes it the tracer in /proc/PID/status; perf
/// opens a pidfd once every event is open.
fn tracing(tracer: u32, program: u32, mechanism: &str) -> bool {
    if mechanism == "--ptrace" {
        return std::fs::read_to_string(format!("/proc/{program}/status"))
            .is_ok_and(|s| s.lines().any(|l| l == format!("TracerPid:\t{tracer}")));
    }
    std::fs::read_dir(format!("/proc/{tracer}/fd")).is_ok_and(|fds| {
        fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .any(|link| link.to_string_lossy().contains("pidfd"))
    })
}

fn interrupt(pid: u32) {
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn an_interrupt_ends_a_started_program() {
    for mechanism in ["--perf", "--ptrace"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut tracer = Command::new(env!("CARGO_BIN_EXE_cosy"))
            .current_dir(tmp.path())
            .args(["trace", mechanism, "-o", "report.txt", "--", "sleep", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cosy trace");
        let id = tracer.id();
        wait_until("sleep under the tracer", || {
            has_child_running(id, "sleep") || tracer.try_wait().is_ok_and(|s| s.is_some())
        });
        interrupt(tracer.id());
        let status = wait_for(&mut tracer, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{mechanism}: the tracer did not end after SIGINT"));
        if status.code() == Some(1) {
            eprintln!("skipping {mechanism}: cannot trace here");
            continue;
        }
        assert_eq!(
            status.code(),
            Some(128 + 2),
            "{mechanism}: sleep ends by SIGINT"
        );
        let report = std::fs::read_to_string(tmp.path().join("report.txt")).expect("report");
        assert!(report.contains("execve"), "{report}");
    }
}

#[test]
fn an_interrupt_detaches_from_an_attached_program_and_leaves_it_running() {
    for mechanism in ["--perf", "--ptrace"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut program = Command::new("sh")
            .args(["-c", "while :; do cat /dev/null; sleep 0.05; done"])
            .spawn()
            .expect("sh");
        let pid = program.id().to_string();
        let mut tracer = Command::new(env!("CARGO_BIN_EXE_cosy"))
            .current_dir(tmp.path())
            .args(["trace", mechanism, "-o", "report.txt", "-p", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cosy trace");
        let (id, traced) = (tracer.id(), program.id());
        wait_until("the tracer to attach", || {
            tracing(id, traced, mechanism) || tracer.try_wait().is_ok_and(|s| s.is_some())
        });
        // Long enough for the shell to wait for a few of its children.
        std::thread::sleep(Duration::from_millis(300));
        interrupt(tracer.id());
        let status = wait_for(&mut tracer, Duration::from_secs(10));
        let still_running = program.try_wait().expect("try_wait").is_none();
        let _ = program.kill();
        let _ = program.wait();
        let status =
            status.unwrap_or_else(|| panic!("{mechanism}: the tracer did not end after SIGINT"));
        if status.code() == Some(1) {
            eprintln!("skipping {mechanism}: cannot trace here");
            continue;
        }
        assert_eq!(status.code(), Some(0), "{mechanism}");
        assert!(
            still_running,
            "{mechanism}: the attached program should run on"
        );
        let report = std::fs::read_to_string(tmp.path().join("report.txt")).expect("report");
        assert!(
            report.contains("wait4"),
            "{mechanism}: the shell waits for its children:\n{report}"
        );
    }
}
