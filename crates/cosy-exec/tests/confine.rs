//! The policy root: paths cannot leave it.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use cosy_exec::{Error, Outcome, RunOptions};
use cosy_model::{Builder, Compound, FdRef, Policy, Sys, Width, flags};

struct Tree {
    _outer: tempfile::TempDir,
    outer: PathBuf,
    root: PathBuf,
}

fn tree() -> Tree {
    let outer = tempfile::tempdir().unwrap();
    let o = outer.path().to_path_buf();
    let root = o.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("in.txt"), b"inside").unwrap();
    std::fs::write(root.join("sub/deep.txt"), b"deep").unwrap();
    std::fs::write(o.join("secret.txt"), b"secret").unwrap();
    let link =
        |target: &Path, name: &str| std::os::unix::fs::symlink(target, root.join(name)).unwrap();
    link(Path::new("../secret.txt"), "escape");
    link(&o.join("secret.txt"), "abs");
    link(Path::new("in.txt"), "ok-link");
    link(&o, "outdir");
    Tree {
        _outer: outer,
        outer: o,
        root,
    }
}

fn run_in(t: &Tree, c: Compound) -> Outcome {
    run_with(c, &Policy::untrusted(&t.root), RunOptions::default())
}

/// Opens `path` under the root, reads it: the bytes read or the error.
fn read_under(t: &Tree, path: &[u8]) -> Result<i64, Error> {
    let mut c = Builder::new();
    let p = c.path(path);
    let buf = c.buffer("buf", 64);
    let fd = c.openat(FdRef::Cwd, p, RDONLY, 0);
    let n = c.read(fd, buf);
    c.close(fd);
    c.output("n", n);
    let out = run_in(t, c.finish());
    match out.error {
        Some(e) => Err(e),
        None => Ok(out.output("n").unwrap()),
    }
}

fn exdev(op: u32, call: Sys) -> Result<i64, Error> {
    Err(Error::Call {
        op,
        call,
        errno: libc::EXDEV,
    })
}

#[test]
fn opens_stay_beneath_the_root() {
    each_executor(|| {
        let t = tree();
        let abs = |p: &Path| bytes(p);
        assert_eq!(read_under(&t, b"in.txt"), Ok(6));
        assert_eq!(read_under(&t, b"sub/deep.txt"), Ok(4));
        assert_eq!(read_under(&t, b"sub/../in.txt"), Ok(6));
        assert_eq!(read_under(&t, &abs(&t.root.join("sub/deep.txt"))), Ok(4));
        assert_eq!(read_under(&t, b"ok-link"), Ok(6));
        assert_eq!(read_under(&t, b"../secret.txt"), exdev(0, Sys::Openat));
        assert_eq!(
            read_under(&t, &abs(&t.outer.join("secret.txt"))),
            exdev(0, Sys::Openat)
        );
        assert_eq!(read_under(&t, b"/etc/passwd"), exdev(0, Sys::Openat));
        assert_eq!(read_under(&t, b"escape"), exdev(0, Sys::Openat));
        assert_eq!(read_under(&t, b"abs"), exdev(0, Sys::Openat));
        assert_eq!(read_under(&t, b"outdir/secret.txt"), exdev(0, Sys::Openat));
        let mut up = abs(&t.root);
        up.extend_from_slice(b"/../secret.txt");
        assert_eq!(read_under(&t, &up), exdev(0, Sys::Openat));
    });
}

#[test]
fn opens_under_a_root_are_openat2_and_refusals_issue_nothing() {
    each_executor(|| {
        let t = tree();
        let mut c = Builder::new();
        let p = c.path("in.txt");
        let fd = c.openat(FdRef::Cwd, p, RDONLY, 0);
        c.close(fd);
        let out = run_in(&t, c.finish());
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(out.stats.by_call.get("openat2"), Some(&1));
        assert!(!out.stats.by_call.contains_key("openat"));

        let mut c = Builder::new();
        let p = c.path("/etc/passwd");
        c.openat(FdRef::Cwd, p, RDONLY, 0);
        let out = run_in(&t, c.finish());
        assert_eq!(out.error.unwrap().errno(), Some(libc::EXDEV));
        assert_eq!(out.stats.syscalls, 0);
        assert_eq!(out.trace.len(), 1);
    });
}

#[test]
fn openat2_gets_resolve_beneath_too() {
    each_executor(|| {
        let t = tree();
        let mut c = Builder::new();
        let p = c.path("../secret.txt");
        c.openat2(FdRef::Cwd, p, RDONLY, 0, 0);
        assert_eq!(
            run_in(&t, c.finish()).error,
            Some(Error::Call {
                op: 0,
                call: Sys::Openat2,
                errno: libc::EXDEV
            })
        );
        let mut c = Builder::new();
        let p = c.path("sub/deep.txt");
        let fd = c.openat2(FdRef::Cwd, p, RDONLY, 0, flags::RESOLVE_NO_SYMLINKS);
        c.close(fd);
        assert!(run_in(&t, c.finish()).is_ok());
    });
}

#[test]
fn directory_slots_stay_beneath_the_root() {
    each_executor(|| {
        let t = tree();
        let mut c = Builder::new();
        let sub = c.path("sub");
        let deep = c.path("deep.txt");
        let out_path = c.path("../../secret.txt");
        let d = c.openat(FdRef::Cwd, sub, DIR, 0);
        let f = c.openat(d, deep, RDONLY, 0);
        c.close(f);
        c.openat(d, out_path, RDONLY, 0);
        let out = run_in(&t, c.finish());
        assert_eq!(
            out.error,
            Some(Error::Call {
                op: 3,
                call: Sys::Openat,
                errno: libc::EXDEV
            })
        );
    });
}

fn statx_under(t: &Tree, path: &[u8], at: i32) -> (Option<Error>, i64, i64) {
    let mut c = Builder::new();
    let p = c.path(path);
    let st = c.buffer("st", 256);
    c.statx(
        FdRef::Cwd,
        p,
        i64::from(at),
        i64::from(libc::STATX_BASIC_STATS),
        st,
    );
    let size = c.load(Width::U64, st, flags::STATX_SIZE_OFFSET as i64);
    let mode = c.load(Width::U16, st, flags::STATX_MODE_OFFSET as i64);
    c.output("size", size);
    c.output("mode", mode);
    let out = run_in(t, c.finish());
    let (size, mode) = (out.output("size").unwrap(), out.output("mode").unwrap());
    (out.error, size, mode)
}

#[test]
fn statx_stays_beneath_the_root() {
    each_executor(|| {
        let t = tree();
        let (e, size, _) = statx_under(&t, b"in.txt", 0);
        assert_eq!((e, size), (None, 6));
        let (e, size, _) = statx_under(&t, b"ok-link", 0);
        assert_eq!((e, size), (None, 6));
        let (e, _, mode) = statx_under(&t, b"ok-link", libc::AT_SYMLINK_NOFOLLOW);
        assert_eq!(e, None);
        assert_eq!(mode as u32 & libc::S_IFMT, libc::S_IFLNK);
        // The link that points outside can be looked at, but not followed.
        let (e, _, mode) = statx_under(&t, b"escape", libc::AT_SYMLINK_NOFOLLOW);
        assert_eq!(e, None);
        assert_eq!(mode as u32 & libc::S_IFMT, libc::S_IFLNK);
        for p in [
            &b"escape"[..],
            b"abs",
            b"../secret.txt",
            b"/etc/passwd",
            b"outdir",
        ] {
            let (e, _, _) = statx_under(&t, p, 0);
            assert_eq!(
                e.and_then(|e| e.errno()),
                Some(libc::EXDEV),
                "{}",
                String::from_utf8_lossy(p)
            );
        }
        // The root itself, by an empty path or its absolute name.
        let (e, _, mode) = statx_under(&t, b"", libc::AT_EMPTY_PATH);
        assert_eq!(e, None);
        assert_eq!(mode as u32 & libc::S_IFMT, libc::S_IFDIR);
        let (e, _, mode) = statx_under(&t, &bytes(&t.root), 0);
        assert_eq!(e, None);
        assert_eq!(mode as u32 & libc::S_IFMT, libc::S_IFDIR);
    });
}

#[test]
fn directory_changes_stay_beneath_the_root() {
    each_executor(|| {
        let t = tree();
        let op_result = |build: &dyn Fn(&mut Builder)| -> Option<i32> {
            let mut c = Builder::new();
            build(&mut c);
            run_in(&t, c.finish()).error.and_then(|e| e.errno())
        };
        let ex = Some(libc::EXDEV);
        assert_eq!(
            op_result(&|c| {
                let p = c.path("../evil");
                c.mkdirat(FdRef::Cwd, p, 0o755);
            }),
            ex
        );
        assert_eq!(
            op_result(&|c| {
                let p = c.path("outdir/evil");
                c.mkdirat(FdRef::Cwd, p, 0o755);
            }),
            ex
        );
        assert!(!t.outer.join("evil").exists());
        assert_eq!(
            op_result(&|c| {
                let p = c.path("outdir/secret.txt");
                c.unlinkat(FdRef::Cwd, p, 0);
            }),
            ex
        );
        assert_eq!(
            op_result(&|c| {
                let p = c.path("sub/..");
                c.unlinkat(FdRef::Cwd, p, i64::from(libc::AT_REMOVEDIR));
            }),
            ex
        );
        assert!(t.outer.join("secret.txt").exists());
        assert_eq!(
            op_result(&|c| {
                let a = c.path("in.txt");
                let b = c.path("../stolen.txt");
                c.renameat2(FdRef::Cwd, a, FdRef::Cwd, b, 0);
            }),
            ex
        );
        assert!(!t.outer.join("stolen.txt").exists());
        assert_eq!(
            op_result(&|c| {
                let a = c.path("outdir/secret.txt");
                let b = c.path("mine.txt");
                c.renameat2(FdRef::Cwd, a, FdRef::Cwd, b, 0);
            }),
            ex
        );
        assert!(t.outer.join("secret.txt").exists());

        // Inside, they work; a symlink as the last component is acted on itself.
        let root = t.root.clone();
        assert_eq!(
            op_result(&|c| {
                let a = c.path("newdir");
                c.mkdirat(FdRef::Cwd, a, 0o755);
                let b = c.path("sub/newer/");
                c.mkdirat(FdRef::Cwd, b, 0o755);
                let from = c.path("in.txt");
                let mut abs = bytes(&root);
                abs.extend_from_slice(b"/sub/newer/moved.txt");
                let to = c.path(abs);
                c.renameat2(FdRef::Cwd, from, FdRef::Cwd, to, 0);
                let l = c.path("escape");
                c.unlinkat(FdRef::Cwd, l, 0);
            }),
            None
        );
        assert!(t.root.join("newdir").is_dir());
        assert_eq!(
            std::fs::read(t.root.join("sub/newer/moved.txt")).unwrap(),
            b"inside"
        );
        assert!(t.root.join("escape").symlink_metadata().is_err());
        assert!(t.outer.join("secret.txt").exists());
    });
}
