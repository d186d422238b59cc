//! `cosy du` against GNU du, byte for byte (standard output, standard error, exit code), on
//! generated trees, as an unprivileged user (uid 65534) under `ulimit -n 64`.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const COSY: &str = env!("CARGO_BIN_EXE_cosy");

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether the peers and setpriv are there (and we can switch user); says why not.
fn ready() -> bool {
    if !have("du") || !have("setpriv") {
        eprintln!("skipping: GNU du or setpriv missing");
        return false;
    }
    let ok = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipping: cannot run as uid 65534 (not root?)");
    }
    ok
}

/// Runs `program args` in `dir` as uid 65534 with at most 64 descriptors.
fn run(dir: &Path, program: &[&str], args: &[OsString]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["sh", "-c", "ulimit -n 64 && exec \"$@\"", "sh"])
        .args(program)
        .args(args)
        .current_dir(dir)
        .env("LC_ALL", "C")
        .env_remove("DU_BLOCK_SIZE")
        .env_remove("BLOCK_SIZE")
        .env_remove("BLOCKSIZE")
        .env_remove("POSIXLY_CORRECT")
        .output()
        .expect("runs")
}

/// Asserts `cosy du args` and `du args` print the same bytes and exit alike.
fn same(dir: &Path, args: &[&str]) {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    same_os(dir, &args);
}

fn same_os(dir: &Path, args: &[OsString]) {
    let ours = run(dir, &[COSY, "du"], args);
    let theirs = run(dir, &["du"], args);
    let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert_eq!(
        show(&ours.stdout),
        show(&theirs.stdout),
        "stdout of du {args:?}"
    );
    assert_eq!(
        show(&ours.stderr),
        show(&theirs.stderr),
        "stderr of du {args:?}"
    );
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "exit of du {args:?}"
    );
    assert_eq!(ours.stdout, theirs.stdout, "stdout bytes of du {args:?}");
}

/// A directory under /tmp that uid 65534 can reach.
fn scratch() -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("cosy-du-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    t
}

fn write(p: &Path, len: usize) {
    std::fs::write(p, vec![b'x'; len]).unwrap();
}

fn mkfifo(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// The tree of the edge cases: every kind of file, odd names, links, unreadable parts.
fn tree(root: &Path) -> PathBuf {
    let t = root.join("t");
    for d in ["t/sub/deeper", "t/empty", "t/other/inner", "t/-dash"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    write(&t.join("empty-file"), 0);
    write(&t.join("small"), 100);
    write(&t.join("sub/big"), (1 << 20) + 12345);
    write(&t.join("sub/deeper/f"), 5000);
    let sparse = std::fs::File::create(t.join("sparse")).unwrap();
    sparse.set_len(10 << 20).unwrap();
    write(&t.join("with space"), 3);
    write(&t.join("new\nline"), 4);
    write(&t.join("-leading-dash"), 5);
    write(&t.join(OsStr::from_bytes(b"bad\xffutf8")), 6);
    write(&t.join("-dash/x"), 7);
    write(&t.join("unreadable-file"), 9000);
    std::fs::set_permissions(
        t.join("unreadable-file"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    for (mode, name) in [
        (0o000, "closed"),
        (0o444, "readonly"),
        (0o111, "searchonly"),
    ] {
        let d = t.join(name);
        std::fs::create_dir_all(d.join("in")).unwrap();
        write(&d.join("f"), 10);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::os::unix::fs::symlink("small", t.join("link-file")).unwrap();
    std::os::unix::fs::symlink("sub", t.join("link-dir")).unwrap();
    std::os::unix::fs::symlink("nowhere", t.join("dangling")).unwrap();
    std::os::unix::fs::symlink("loop-b", t.join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", t.join("loop-b")).unwrap();
    std::fs::hard_link(t.join("sub/big"), t.join("hard-big")).unwrap();
    std::fs::hard_link(t.join("sub/deeper/f"), t.join("other/inner/same")).unwrap();
    mkfifo(&t.join("fifo"));
    let _sock = std::os::unix::net::UnixListener::bind(t.join("sock")).unwrap();
    t
}

#[test]
fn every_flag_prints_what_gnu_du_prints() {
    if !ready() {
        return;
    }
    let s = scratch();
    tree(s.path());
    let flags: &[&[&str]] = &[
        &[],
        &["-a"],
        &["-s"],
        &["-b"],
        &["-k"],
        &["-m"],
        &["-h"],
        &["--si"],
        &["--apparent-size"],
        &["-x"],
        &["-ax"],
        &["-d1"],
        &["-d", "0"],
        &["--max-depth=2", "-a"],
        &["-c"],
        &["-L"],
        &["-aL"],
        &["-P"],
        &["-LP", "-a"],
        &["-H"],
        &["-sh"],
        &["-ab"],
        &["-d1", "-h"],
        &["-csb"],
        &["-h", "-b"],
        &["-b", "-h"],
        &["-ak"],
        &["-a0"],
        &["--apparent-size", "-ah"],
    ];
    for f in flags {
        let mut args: Vec<&str> = f.to_vec();
        args.push("t");
        same(s.path(), &args);
    }
    // No PATH: `.`.
    same(&s.path().join("t/sub"), &["-a"]);
    same(&s.path().join("t"), &["-a", "--", "-dash", "-leading-dash"]);
}

#[test]
fn several_paths_count_each_file_once() {
    if !ready() {
        return;
    }
    let s = scratch();
    tree(s.path());
    for args in [
        &["t/sub", "t"][..],
        &["t", "t/sub"],
        &["t", "t"],
        &["-a", "t/other", "t/sub"],
        &["-c", "t/hard-big", "t/sub"],
        &["-sc", "t/sub/big", "t/hard-big"],
        &["-L", "t/link-dir", "t/sub"],
        &["t/link-dir", "t/link-file", "t/dangling"],
        &["-L", "t/link-dir", "t/link-file", "t/dangling", "t/loop-a"],
        &["-H", "t/link-dir", "t/link-file"],
        &["t/fifo", "t/sock", "t/sparse", "t/unreadable-file"],
        &["t/", "t//sub//", "."],
    ] {
        same(s.path(), args);
    }
    // More directory arguments than one session's arena has walks for.
    let many: Vec<String> = (0..12).map(|i| format!("t/d{i:02}")).collect();
    let mut args: Vec<&str> = vec!["-c"];
    args.extend(many.iter().map(String::as_str));
    same(s.path(), &args);
}

#[test]
fn missing_and_unreadable_paths_are_reported_in_du_words() {
    if !ready() {
        return;
    }
    let s = scratch();
    tree(s.path());
    same(s.path(), &["missing"]);
    same(s.path(), &["-c", "missing", "t/small", "also missing"]);
    same(
        s.path(),
        &["t/closed", "t/readonly", "t/searchonly", "t/searchonly/f"],
    );
    same(s.path(), &["-a", "t/readonly/f", "t/closed/in"]);
    same(s.path(), &[""]);
    same(s.path(), &["-s", "-a", "t"]);
    same(s.path(), &["-s", "-d", "1", "t"]);
    same(s.path(), &["-d", "x", "t"]);
    same(s.path(), &["--no-such-option", "t"]);
    same(s.path(), &["-q", "t"]);
    same_os(
        s.path(),
        &[OsString::from(OsStr::from_bytes(b"no\xffsuch\nfile"))],
    );
}

/// Opens `name` below `dir` (a descriptor), creating it as a directory.
fn mkdir_in(dir: libc::c_int, name: &str) -> libc::c_int {
    let c = CString::new(name).unwrap();
    unsafe {
        assert_eq!(libc::mkdirat(dir, c.as_ptr(), 0o755), 0);
        let fd = libc::openat(dir, c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        assert!(fd >= 0);
        fd
    }
}

#[test]
fn a_tree_ten_thousand_deep_is_counted() {
    if !ready() {
        return;
    }
    let s = scratch();
    let root = CString::new(s.path().as_os_str().as_bytes()).unwrap();
    let mut fd = unsafe { libc::open(root.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    let top = mkdir_in(fd, "deep");
    unsafe { libc::close(fd) };
    fd = top;
    for _ in 0..10_000 {
        let next = mkdir_in(fd, "d");
        unsafe { libc::close(fd) };
        fd = next;
    }
    let leaf = CString::new("leaf").unwrap();
    let f = unsafe { libc::openat(fd, leaf.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644) };
    assert!(f >= 0);
    unsafe {
        assert_eq!(libc::write(f, b"data".as_ptr().cast(), 4), 4);
        libc::close(f);
        libc::close(fd);
    }
    same(s.path(), &["-s", "deep"]);
    same(s.path(), &["-sb", "deep"]);
    same(s.path(), &["-d", "3", "deep"]);
}

#[test]
fn an_empty_directory_and_a_large_one_match() {
    if !ready() {
        return;
    }
    let s = scratch();
    std::fs::create_dir(s.path().join("e")).unwrap();
    same(s.path(), &["e"]);
    same(s.path(), &["-a", "e"]);
    // Over 10,000 entries: fts sorts them by inode on file systems other than tmpfs.
    let big = s.path().join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..10_050 {
        std::fs::write(big.join(format!("f{i}")), b"").unwrap();
    }
    std::fs::create_dir(big.join("zdir")).unwrap();
    same(s.path(), &["-a", "big"]);
}

#[test]
fn totals_counted_on_threads_keep_du_messages_in_order() {
    if !ready() {
        return;
    }
    let s = scratch();
    let t = s.path().join("t");
    // More subdirectories than a counting thread walks with one session, each with an
    // unreadable directory and a hard link into the next one.
    for i in 0..30 {
        let d = t.join(format!("d{i:02}"));
        std::fs::create_dir_all(d.join("closed")).unwrap();
        write(&d.join("f"), 100 * i + 1);
        if i > 0 {
            std::fs::hard_link(d.join("f"), t.join(format!("d{:02}/link", i - 1))).unwrap();
        }
        std::fs::set_permissions(d.join("closed"), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    write(&t.join("top"), 10);
    for args in [
        &["-s", "t"][..],
        &["-sb", "t"],
        &["-csh", "t", "t/d03"],
        &["-s", "t/d01", "t"],
    ] {
        same(s.path(), args);
    }
    // More directory arguments than one session's arena has walks for.
    let many: Vec<String> = (0..12).map(|i| format!("t/d{i:02}")).collect();
    let mut args: Vec<&str> = vec!["-c"];
    args.extend(many.iter().map(String::as_str));
    same(s.path(), &args);
}

/// Unmounts on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn one_file_system_skips_what_is_mounted_below() {
    if !ready() {
        return;
    }
    let s = scratch();
    let t = tree(s.path());
    let mnt = t.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m,mode=0755", "cosy-du-test"])
        .arg(&mnt)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("skipping: cannot mount a tmpfs (not root?)");
        return;
    }
    let _m = Mount(mnt.clone());
    std::fs::create_dir(mnt.join("inside")).unwrap();
    write(&mnt.join("inside/f"), 20_000);
    for args in [
        &["t"][..],
        &["-x", "t"],
        &["-ax", "t"],
        &["-sx", "t"],
        &["-x", "t/mnt"],
    ] {
        same(s.path(), args);
    }
}
