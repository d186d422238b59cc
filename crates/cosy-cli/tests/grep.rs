//! `cosy grep` against ripgrep (`rg --no-ignore --hidden --no-heading --with-filename --sort
//! path --color never`), byte for byte on standard output, message for message on standard
//! error (ours start with `grep: `), and exit code, on a generated tree of edge cases. Tests
//! skip, saying so, when `rg` is not installed.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const COSY: &str = env!("CARGO_BIN_EXE_cosy");

const RG_FLAGS: &[&str] = &[
    "--no-ignore",
    "--hidden",
    "--no-heading",
    "--with-filename",
    "--sort",
    "path",
    "--color",
    "never",
];

fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let peers = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/cosy-peers/bin"));
    std::env::split_paths(&path)
        .chain(peers)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn rg() -> Option<PathBuf> {
    let r = find("rg");
    if r.is_none() {
        eprintln!("rg is not installed: skipping the comparison with it");
    }
    r
}

/// Runs as uid 65534 when root (root ignores permission bits) and setpriv is there.
fn unprivileged() -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    find("setpriv")
}

struct Run {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    code: i32,
}

/// Runs `program args` in `dir` (as uid 65534 when possible), failing the test after 30 s
/// (a FIFO opened would hang).
fn run(program: &Path, args: &[&OsStr], dir: &Path, stdin: Option<&Path>) -> Run {
    let mut c = match unprivileged() {
        Some(sp) => {
            let mut c = Command::new(sp);
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(program);
            c
        }
        None => Command::new(program),
    };
    c.args(args)
        .current_dir(dir)
        .env("LC_ALL", "C")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match stdin {
        Some(p) => c.stdin(fs::File::open(p).unwrap()),
        None => c.stdin(Stdio::null()),
    };
    let child = c.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) of the child this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{program:?} {args:?} did not finish in 30 s");
        }
    };
    Run {
        stdout: out.stdout,
        stderr: out.stderr,
        code: out.status.code().unwrap_or(-1),
    }
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Our arguments as ripgrep spells them: `-L` is `--files-without-match`, `-h`
/// `--no-filename`, `-j N` dropped (`--sort path` searches in order anyway).
fn rg_args<'a>(ours: &[&'a OsStr]) -> Vec<&'a OsStr> {
    let mut v: Vec<&OsStr> = RG_FLAGS.iter().map(|s| os(s)).collect();
    let mut skip = false;
    for a in ours {
        if skip {
            skip = false;
            continue;
        }
        match a.as_bytes() {
            b"-L" => v.push(os("--files-without-match")),
            b"-h" => v.push(os("--no-filename")),
            b"-j" => skip = true,
            b"-j1" | b"-j2" | b"-j3" => {}
            _ => v.push(a),
        }
    }
    v
}

/// Runs ours and rg with the same arguments in `dir` and compares them.
fn same(rg: &Path, dir: &Path, ours: &[&OsStr], stdin: Option<&Path>) {
    let mut cosy: Vec<&OsStr> = vec![os("grep")];
    cosy.extend_from_slice(ours);
    let a = run(Path::new(COSY), &cosy, dir, stdin);
    let b = run(rg, &rg_args(ours), dir, stdin);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert_eq!(
        text(&a.stdout),
        text(&b.stdout),
        "standard output of {ours:?}"
    );
    assert_eq!(a.stdout, b.stdout, "standard output bytes of {ours:?}");
    let ours_err: Vec<&[u8]> = a
        .stderr
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix(b"grep: ").unwrap_or(l))
        .collect();
    let rg_err: Vec<&[u8]> = b
        .stderr
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        ours_err.iter().map(|l| text(l)).collect::<Vec<_>>(),
        rg_err.iter().map(|l| text(l)).collect::<Vec<_>>(),
        "standard error of {ours:?}"
    );
    assert_eq!(a.code, b.code, "exit code of {ours:?}");
}

/// A tree of edge cases, readable by uid 65534 where intended.
fn tree(deep: usize) -> tempfile::TempDir {
    let t = tempfile::Builder::new().tempdir_in("/tmp").unwrap();
    let r = t.path();
    fs::set_permissions(r, fs::Permissions::from_mode(0o755)).unwrap();
    let w = |p: &str, data: &[u8]| fs::write(r.join(p), data).unwrap();
    w("empty", b"");
    w(
        "a.txt",
        b"one needle here\nnothing\nNeedle upper\nneed le\n",
    );
    w("noeol", b"last line needle");
    w("words", b"needles\nthe needle.\nneed-le\n_needle_\n");
    // Over 1 MiB, a match past the first MiB.
    let mut big = Vec::new();
    while big.len() < (1 << 20) + 4096 {
        big.extend_from_slice(b"filler line of text without the word\n");
    }
    big.extend_from_slice(b"late needle\n");
    w("big", &big);
    w("bin", b"needle\0binary\nneedle\n");
    let mut late = Vec::new();
    while late.len() < 200_000 {
        late.extend_from_slice(b"a needle in a binary file\nand other text\n");
    }
    late.extend_from_slice(b"\0needle after the NUL\n");
    w("binlate", &late);
    fs::create_dir_all(r.join("sub/inner")).unwrap();
    w("sub/f", b"needle in sub\n");
    w("sub/inner/g", b"inner needle\n");
    w("sub.txt", b"after sub: needle\n");
    w("with space", b"needle with space\n");
    w("new\nline", b"needle newline name\n");
    w("-dash", b"needle dash\n");
    fs::write(r.join(OsStr::from_bytes(b"bad\xffname")), b"needle bytes\n").unwrap();
    fs::hard_link(r.join("a.txt"), r.join("hard")).unwrap();
    std::os::unix::fs::symlink("a.txt", r.join("lfile")).unwrap();
    std::os::unix::fs::symlink("sub", r.join("ldir")).unwrap();
    std::os::unix::fs::symlink("nowhere", r.join("dangling")).unwrap();
    std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
    let fifo = std::ffi::CString::new(r.join("fifo").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let sock = std::os::unix::net::UnixListener::bind(r.join("sock")).unwrap();
    std::mem::forget(sock);
    w("secret", b"needle secret\n");
    fs::set_permissions(r.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::create_dir(r.join("locked")).unwrap();
    w("locked/f", b"needle locked\n");
    fs::set_permissions(r.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    if deep > 0 {
        let mut d = r.join("deep");
        for _ in 0..deep {
            d.push("d");
        }
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("leaf"), b"deep needle\n").unwrap();
    }
    t
}

/// Restores permissions so that the tree can be removed.
fn unlock(t: &tempfile::TempDir) {
    let _ = fs::set_permissions(t.path().join("locked"), fs::Permissions::from_mode(0o755));
}

#[test]
fn every_flag_and_combination_matches_ripgrep_on_a_tree_of_edge_cases() {
    let Some(rg) = rg() else { return };
    let t = tree(0);
    let cases: &[&[&str]] = &[
        &["needle"],
        &["-n", "needle"],
        &["-c", "needle"],
        &["-l", "needle"],
        &["-L", "needle"],
        &["-v", "needle"],
        &["-c", "-i", "needle"],
        &["-l", "-v", "needle"],
        &["-w", "-F", "needle"],
        &["-w", "need"],
        &["-e", "needle", "-e", "upper"],
        &["-F", "-e", "need le", "-e", "a.txt"],
        &["-i", "NEEDLE"],
        &["-h", "needle"],
        &["-H", "needle"],
        &["-n", "-v", "needle"],
        &["-c", "-v", "needle"],
        &["-nwi", "NEEDLE"],
        &["-j1", "needle"],
        &["-j", "3", "-n", "needle"],
        &["-F", "."],
        &["x{1000}"],
        &["$"],
        &["-c", "-v", "^"],
        &["-w", ""],
        &["nothing matches this"],
    ];
    for c in cases {
        let args: Vec<&OsStr> = c.iter().map(|s| os(s)).collect();
        same(&rg, t.path(), &args, None);
        let mut dot = args.clone();
        dot.push(os("."));
        same(&rg, t.path(), &dot, None);
    }
    unlock(&t);
}

#[test]
fn paths_given_stdin_and_exit_codes_match_ripgrep() {
    let Some(rg) = rg() else { return };
    let t = tree(0);
    let cases: &[&[&str]] = &[
        &["needle", "a.txt"],
        &["needle", "a.txt", "sub", "noeol"],
        &["needle", "does-not-exist", "a.txt"],
        &["needle", "secret"],
        &["needle", "locked", "sub"],
        &["needle", "bin"],
        &["needle", "binlate", "bin"],
        &["-c", "needle", "binlate", "bin"],
        &["needle", "lfile", "ldir"],
        &["needle", "sock"],
        &["needle", "loop"],
        &["needle", "dangling"],
        &["needle", "--", "-dash"],
        &["zzz", "a.txt"],
        &["-L", "zzz", "a.txt", "empty"],
        &["-e", "needle", "sub"],
    ];
    for c in cases {
        let args: Vec<&OsStr> = c.iter().map(|s| os(s)).collect();
        same(&rg, t.path(), &args, None);
    }
    same(
        &rg,
        t.path(),
        &[os("needle"), os("-")],
        Some(&t.path().join("a.txt")),
    );
    unlock(&t);
}

#[test]
fn a_tree_two_thousand_levels_deep_is_searched() {
    let Some(rg) = rg() else { return };
    let t = tree(2000);
    same(&rg, t.path(), &[os("needle"), os("deep")], None);
    same(&rg, t.path(), &[os("-c"), os("needle")], None);
    unlock(&t);
}

#[test]
fn sixty_four_descriptors_are_enough() {
    let Some(rg) = rg() else { return };
    let t = tree(100);
    let sh = |prog: &str| -> Run {
        let script = format!("ulimit -n 64; exec {prog} \"$@\"");
        let mut args = vec![os("-c"), OsStr::new(&script), os("sh")];
        if prog == COSY {
            args.push(os("grep"));
            args.push(os("-n"));
            // More threads than 64 descriptors can serve.
            args.push(os("-j64"));
        } else {
            args.extend(RG_FLAGS.iter().map(|s| os(s)));
            args.push(os("-n"));
        }
        args.push(os("needle"));
        run(Path::new("/bin/sh"), &args, t.path(), None)
    };
    let a = sh(COSY);
    let b = sh(rg.to_str().unwrap());
    assert_eq!(
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
    assert_eq!(a.code, b.code);
    unlock(&t);
}

#[test]
fn bad_patterns_and_usage_exit_2() {
    let t = tree(0);
    let r = run(Path::new(COSY), &[os("grep"), os("(")], t.path(), None);
    assert_eq!(r.code, 2);
    assert!(String::from_utf8_lossy(&r.stderr).starts_with("grep: "));
    let r = run(
        Path::new(COSY),
        &[os("grep"), os("--bogus")],
        t.path(),
        None,
    );
    assert_eq!(r.code, 2);
    let r = run(
        Path::new(COSY),
        &[os("grep"), os("-c"), os("-l"), os("x")],
        t.path(),
        None,
    );
    assert_eq!(r.code, 2);
    let r = run(Path::new(COSY), &[os("grep"), os("--help")], t.path(), None);
    assert_eq!(r.code, 0);
    assert!(String::from_utf8_lossy(&r.stdout).contains("--count"));
    unlock(&t);
}
