//! `cosy cp` against GNU cp: the same trees (every stat field that cp -a keeps, contents,
//! symlink targets, hard links, extended attributes), the same messages and exit codes, and
//! no partial file under a final name when a write fails or the copy is killed.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const COSY: &str = env!("CARGO_BIN_EXE_cosy");

fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

fn root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A scratch directory readable by everyone (for the runs as uid 65534).
fn scratch() -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("cosy-cp-")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    t
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) -> bool {
    let p = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and a buffer of the given length.
    unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        ) == 0
    }
}

fn xattrs(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut list = vec![0u8; 65536];
    // SAFETY: buffers of the lengths given.
    let n = unsafe { libc::llistxattr(c.as_ptr(), list.as_mut_ptr().cast(), list.len()) };
    let mut out = BTreeMap::new();
    if n <= 0 {
        return out;
    }
    for name in list[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let cn = CString::new(name).unwrap();
        let mut v = vec![0u8; 65536];
        // SAFETY: as above.
        let m = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        if m >= 0 {
            v.truncate(m as usize);
            out.insert(name.to_vec(), v);
        }
    }
    out
}

/// Everything cp -a keeps of a tree, by path relative to its root; and its hard-link groups.
fn snapshot(root: &Path) -> (BTreeMap<PathBuf, String>, BTreeSet<Vec<PathBuf>>) {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let p = root.join(&rel);
        let m = fs::symlink_metadata(&p).unwrap();
        let mut d = format!(
            "mode={:o} uid={} gid={} mtime={}.{:09}",
            m.mode(),
            m.uid(),
            m.gid(),
            m.mtime(),
            m.mtime_nsec()
        );
        let ft = m.file_type();
        if ft.is_symlink() {
            d += &format!(" -> {:?}", fs::read_link(&p).unwrap());
        } else if ft.is_file() {
            // Links are compared as groups (a part of a tree may hold one name of several).
            d += &format!(" size={}", m.size());
            // Unreadable files: their copies are compared by size only.
            if let Ok(bytes) = fs::read(&p) {
                d += &format!(" sum={:x}", fnv(&bytes));
            }
            inodes.entry(m.ino()).or_default().push(rel.clone());
        } else if ft.is_dir()
            && let Ok(rd) = fs::read_dir(&p)
        {
            for e in rd {
                todo.push(rel.join(e.unwrap().file_name()));
            }
        }
        if !ft.is_symlink() {
            d += &format!(" xattrs={:?}", xattrs(&p));
        }
        out.insert(rel, d);
    }
    let groups = inodes
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    (out, groups)
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x100000001b3)
    })
}

/// Runs `prog args` in `dir` (as uid 65534 when `nobody`).
fn run(dir: &Path, nobody: bool, prog: &str, args: &[&OsStr]) -> Output {
    let mut c = if nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", prog]);
        c
    } else {
        Command::new(prog)
    };
    c.args(args)
        .current_dir(dir)
        .env("LC_ALL", "C")
        .output()
        .unwrap()
}

fn cosy_cp(dir: &Path, nobody: bool, args: &[&str]) -> Output {
    let mut a: Vec<&OsStr> = vec![OsStr::new("cp")];
    a.extend(args.iter().map(OsStr::new));
    run(dir, nobody, COSY, &a)
}

fn gnu_cp(dir: &Path, nobody: bool, args: &[&str]) -> Output {
    let a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    run(dir, nobody, "cp", &a)
}

fn sorted_lines(b: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(b)
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// The tree the issue lists: empty, large and sparse files, symlinks of every kind, a loop,
/// hard links, odd names, deep nesting, user.* attributes.
fn make_tree(src: &Path) -> bool {
    fs::create_dir_all(src.join("sub/inner")).unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    fs::write(src.join("small"), b"hello\n").unwrap();
    let big: Vec<u8> = (0..(3 << 20) + 123).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(src.join("sub/big"), &big).unwrap();
    let f = fs::File::create(src.join("sparse")).unwrap();
    f.set_len(8 << 20).unwrap();
    drop(f);
    {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new()
            .write(true)
            .open(src.join("sparse"))
            .unwrap();
        f.write_all_at(b"data in the middle", 4 << 20).unwrap();
    }
    symlink("small", src.join("to-file")).unwrap();
    symlink("sub", src.join("to-dir")).unwrap();
    symlink("nowhere", src.join("dangling")).unwrap();
    symlink("loop-b", src.join("loop-a")).unwrap();
    symlink("loop-a", src.join("loop-b")).unwrap();
    fs::write(src.join("linked"), b"one inode, two names").unwrap();
    fs::hard_link(src.join("linked"), src.join("sub/inner/linked-too")).unwrap();
    for name in [
        &b"with space"[..],
        b"new\nline",
        b"-leading-dash",
        b"\xff\xfenot-utf8",
        b"it's",
    ] {
        fs::write(src.join(OsStr::from_bytes(name)), name).unwrap();
    }
    let mut deep = src.join("deep");
    for i in 0..300 {
        deep.push(format!("d{}", i % 10));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("bottom"), b"bottom").unwrap();
    fs::set_permissions(src.join("sub/inner"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(src.join("small"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(src.join("it's"), fs::Permissions::from_mode(0o400)).unwrap();
    let x = set_xattr(&src.join("small"), "user.colour", b"blue")
        && set_xattr(&src.join("sub"), "user.kind", b"directory");
    if !x {
        eprintln!("the file system refuses user.* attributes: not compared");
    }
    // Old times, to the nanosecond.
    let mut times = Command::new("touch");
    times.args(["-h", "-d", "2001-02-03 04:05:06.123456789"]);
    for p in ["small", "to-file", "sub/big", "sub", "deep"] {
        times.arg(src.join(p));
    }
    assert!(times.status().unwrap().success());
    x
}

fn assert_same_trees(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "diff -r: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (sa, ga) = snapshot(a);
    let (sb, gb) = snapshot(b);
    for (k, v) in &sa {
        assert_eq!(Some(v), sb.get(k), "{k:?}");
    }
    assert_eq!(sa.len(), sb.len());
    assert_eq!(ga, gb, "hard links");
}

#[test]
fn archive_copy_is_what_cp_a_makes() {
    let t = scratch();
    let src = t.path().join("src");
    make_tree(&src);
    let ours = cosy_cp(t.path(), false, &["-a", "src", "ours"]);
    let theirs = gnu_cp(t.path(), false, &["-a", "src", "theirs"]);
    assert_eq!(
        String::from_utf8_lossy(&ours.stderr),
        String::from_utf8_lossy(&theirs.stderr)
    );
    assert_eq!(ours.status.code(), theirs.status.code());
    assert_same_trees(&t.path().join("theirs"), &t.path().join("ours"));
    assert_same_trees(&src, &t.path().join("ours"));
    // The sparse file stays sparse.
    let blocks = fs::metadata(t.path().join("ours/sparse")).unwrap().blocks();
    assert!(blocks < 64, "{blocks} blocks");
    // Into an existing directory, and several sources at once.
    fs::create_dir(t.path().join("into")).unwrap();
    let o = cosy_cp(t.path(), false, &["-a", "src/small", "src/sub", "into"]);
    assert!(o.status.success(), "{o:?}");
    assert_same_trees(&src.join("sub"), &t.path().join("into/sub"));
    assert_eq!(fs::read(t.path().join("into/small")).unwrap(), b"hello\n");
    // -T: the destination is the copy itself, merged into.
    let o = cosy_cp(t.path(), false, &["-a", "-T", "src/sub", "into"]);
    assert!(o.status.success(), "{o:?}");
    assert!(t.path().join("into/inner/linked-too").is_file());
    // A file to a new name.
    let o = cosy_cp(t.path(), false, &["-p", "src/small", "renamed"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(fs::read(t.path().join("renamed")).unwrap(), b"hello\n");
}

#[test]
fn plain_and_recursive_copies_match_cp() {
    let t = scratch();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    fs::write(src.join("d/g"), b"y").unwrap();
    symlink("f", src.join("l")).unwrap();
    for args in [
        &["src/f", "a1"][..],
        &["src/l", "a2"],
        &["-P", "src/l", "a3"],
        &["src", "a4"],
        &["-r", "src", "a5"],
        &["-R", "-L", "src", "a6"],
        &["nope", "a7"],
        &["src/f"],
        &[],
        &["src/f", "src/d", "src/f"],
        &["-z", "src/f", "a8"],
        &["--bogus", "src/f", "a9"],
        &["-T", "src/f", "src/d", "a10"],
    ] {
        let ours = cosy_cp(t.path(), false, args);
        let mut theirs_args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        for a in theirs_args.iter_mut() {
            if a.starts_with('a') {
                *a = format!("gnu-{a}");
            }
        }
        let ta: Vec<&str> = theirs_args.iter().map(String::as_str).collect();
        let theirs = gnu_cp(t.path(), false, &ta);
        let norm = |b: &[u8]| String::from_utf8_lossy(b).replace("gnu-", "");
        assert_eq!(norm(&ours.stderr), norm(&theirs.stderr), "{args:?}");
        assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
        for (o, g) in args.iter().zip(&ta) {
            let (o, g) = (t.path().join(o), t.path().join(g));
            if fs::symlink_metadata(&g).is_ok() && o != g {
                let out = Command::new("diff")
                    .args(["-r", "--no-dereference"])
                    .arg(&g)
                    .arg(&o)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{args:?}: {out:?}");
                let (mo, mg) = (
                    fs::symlink_metadata(&o).unwrap(),
                    fs::symlink_metadata(&g).unwrap(),
                );
                assert_eq!(mo.mode(), mg.mode(), "{args:?}");
            }
        }
    }
}

#[test]
fn unreadable_files_and_directories_as_nobody_match_cp() {
    if !root() || !have("setpriv") {
        eprintln!("needs root and setpriv to run as uid 65534: skipped");
        return;
    }
    let t = scratch();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("ok")).unwrap();
    fs::write(src.join("ok/f"), b"fine").unwrap();
    fs::write(src.join("unreadable"), b"secret").unwrap();
    fs::create_dir_all(src.join("no-read")).unwrap();
    fs::write(src.join("no-read/x"), b"x").unwrap();
    fs::create_dir_all(src.join("no-search")).unwrap();
    fs::write(src.join("no-search/y"), b"y").unwrap();
    let out = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(t.path())
        .status()
        .unwrap();
    assert!(out.success());
    fs::set_permissions(src.join("unreadable"), fs::Permissions::from_mode(0o0)).unwrap();
    fs::set_permissions(src.join("no-read"), fs::Permissions::from_mode(0o311)).unwrap();
    fs::set_permissions(src.join("no-search"), fs::Permissions::from_mode(0o644)).unwrap();
    let ours = cosy_cp(t.path(), true, &["-a", "src", "ours"]);
    let theirs = gnu_cp(t.path(), true, &["-a", "src", "theirs"]);
    let norm = |b: &[u8]| {
        sorted_lines(b)
            .into_iter()
            .map(|l| l.replace("'ours", "'DST").replace("'theirs", "'DST"))
            .collect::<Vec<_>>()
    };
    assert_eq!(norm(&ours.stderr), norm(&theirs.stderr));
    assert_eq!(ours.status.code(), Some(1));
    assert_eq!(ours.status.code(), theirs.status.code());
    // The trees hold the same names with the same modes.
    let (a, _) = snapshot(&t.path().join("theirs"));
    let (b, _) = snapshot(&t.path().join("ours"));
    let modes = |m: &BTreeMap<PathBuf, String>| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.split(' ').next().unwrap_or("").to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(modes(&a), modes(&b));
    assert!(!t.path().join("ours/unreadable").exists());
}

#[test]
fn a_write_failure_mid_file_leaves_no_partial_file() {
    let t = scratch();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("big"), vec![7u8; 3 << 20]).unwrap();
    fs::write(src.join("small"), b"fits").unwrap();
    // Writes past 1 MiB fail with EFBIG (SIGXFSZ ignored).
    let script = format!("trap '' XFSZ; ulimit -f 1024; exec {COSY} cp -a src dst; ");
    let o = Command::new("sh")
        .args(["-c", &script])
        .current_dir(t.path())
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "cp: error copying 'src/big' to 'dst/big': File too large\n"
    );
    let names: Vec<OsString> = fs::read_dir(t.path().join("dst"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [OsString::from("small")], "no big, no temporary");
}

#[test]
fn a_copy_killed_mid_file_leaves_only_complete_files() {
    let t = scratch();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let big = vec![1u8; 256 << 20];
    for i in 0..4 {
        fs::write(src.join(format!("big{i}")), &big).unwrap();
    }
    let mut child = Command::new(COSY)
        .args(["cp", "-a", "src", "dst"])
        .current_dir(t.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a temporary holds some bytes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let partial = fs::read_dir(t.path().join("dst")).ok().and_then(|rd| {
            rd.filter_map(Result::ok).find(|e| {
                e.metadata()
                    .is_ok_and(|m| m.len() > 0 && m.len() < big.len() as u64)
            })
        });
        if partial.is_some() || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for e in fs::read_dir(t.path().join("dst")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        let name = name.to_string_lossy();
        let len = e.metadata().unwrap().len();
        if name.starts_with(".big") && name.contains(".cosy-tmp.") {
            continue; // a temporary, named as the documentation says
        }
        assert!(name.starts_with("big"), "{name}");
        assert_eq!(len, big.len() as u64, "{name} is complete");
    }
}

#[test]
fn works_under_a_limit_of_64_descriptors() {
    let t = scratch();
    let src = t.path().join("src");
    // Two deep chains: the two threads walk one each.
    for chain in ["a", "b"] {
        let mut deep = src.join(chain);
        for i in 0..100 {
            deep.push(format!("level{i}"));
            fs::create_dir_all(&deep).unwrap();
            fs::write(deep.join("f"), format!("{i}")).unwrap();
        }
    }
    let script = format!("ulimit -n 64; exec {COSY} cp -a src dst");
    let o = Command::new("sh")
        .args(["-c", &script])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_trees(&src, &t.path().join("dst"));
}

#[test]
fn a_fifo_is_reported_and_never_opened() {
    let t = scratch();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(src.join("pipe"))
            .status()
            .unwrap()
            .success()
    );
    let o = cosy_cp(t.path(), false, &["-a", "src", "dst"]);
    // cp -a makes the FIFO with mknod; the operation table has no mknodat.
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "cp: cannot create fifo 'dst/pipe': Operation not supported\n"
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(fs::read(t.path().join("dst/f")).unwrap(), b"x");
}

#[test]
fn across_file_systems_the_bytes_are_read_and_written() {
    // copy_file_range(2) between a tmpfs and another file system says EXDEV.
    let Ok(shm) = tempfile::Builder::new()
        .prefix("cosy-cp-")
        .tempdir_in("/dev/shm")
    else {
        eprintln!("no /dev/shm: skipped");
        return;
    };
    let t = scratch();
    let src = shm.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), vec![3u8; 300 << 10]).unwrap();
    fs::write(src.join("b"), b"short").unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    let dst = t.path().join("dst");
    let o = Command::new(COSY)
        .args(["cp", "-a"])
        .arg(&src)
        .arg(&dst)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_trees(&src, &dst);
}

#[test]
fn many_subdirectories_and_many_sources() {
    let t = scratch();
    let src = t.path().join("src");
    for i in 0..40 {
        fs::create_dir_all(src.join(format!("d{i}/e"))).unwrap();
        fs::write(src.join(format!("d{i}/e/f")), format!("{i}")).unwrap();
    }
    let o = cosy_cp(t.path(), false, &["-a", "src", "dst"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_trees(&src, &t.path().join("dst"));
    fs::create_dir(t.path().join("into")).unwrap();
    let mut args: Vec<String> = (0..40).map(|i| format!("src/d{i}")).collect();
    args.insert(0, "-a".into());
    args.push("into".into());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = cosy_cp(t.path(), false, &a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for i in 0..40 {
        let d = format!("d{i}");
        assert_same_trees(&src.join(&d), &t.path().join("into").join(&d));
    }
}
