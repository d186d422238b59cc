//! The file-tool calls of the operation table (linkat, symlinkat, readlinkat, fchmodat,
//! fchownat, utimensat, fgetxattr, fsetxattr, flistxattr, faccessat2), issued for real on
//! every executor, unconfined (absolute paths) and under a policy root (relative paths); each
//! test checks the effect with `std::fs` (or rustix for extended attributes).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;
use cosy_exec::{Error, Outcome, RunOptions};
use cosy_model::flags::{Access, AtFlags, Mode, OFlags, XattrFlags};
use cosy_model::{Builder, Compound, FdRef, PathRef, Policy, Sys, Width};

const NOFOLLOW: AtFlags = AtFlags::SYMLINK_NOFOLLOW;
const FOLLOW: AtFlags = AtFlags::SYMLINK_FOLLOW;

/// A directory with a file `a` ("hello", mode 0o600) and a symbolic link `l` to it.
fn dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a"), b"hello").unwrap();
    std::fs::set_permissions(d.path().join("a"), PermissionsExt::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("a", d.path().join("l")).unwrap();
    d
}

/// The two ways every test runs: no root and absolute paths, or `d` as the root and paths
/// relative to it.
#[derive(Clone, Copy, Debug)]
enum Where {
    Trusted,
    Root,
}

const BOTH: [Where; 2] = [Where::Trusted, Where::Root];

impl Where {
    fn path(self, c: &mut Builder, d: &Path, name: &str) -> PathRef {
        match self {
            Where::Trusted => c.path(bytes(&d.join(name))),
            Where::Root => c.path(name),
        }
    }

    fn run(self, d: &Path, c: Compound) -> Outcome {
        let policy = match self {
            Where::Trusted => Policy::trusted(),
            Where::Root => Policy::untrusted(d),
        };
        run_with(c, &policy, RunOptions::default())
    }
}

/// The result of the compound's only call, output as `r`, or its errno.
fn result(out: &Outcome) -> Result<i64, i32> {
    match &out.error {
        None => Ok(out.output("r").expect("output r")),
        Some(Error::Call { errno, .. }) => Err(*errno),
        Some(e) => panic!("{e}"),
    }
}

/// Runs one call built by `f` (its result output as `r`) in `d`, `w`-style.
fn one(
    w: Where,
    d: &Path,
    f: impl FnOnce(&mut Builder, &dyn Fn(&mut Builder, &str) -> PathRef) -> cosy_model::Reg,
) -> Result<i64, i32> {
    let mut c = Builder::new();
    let p = |c: &mut Builder, name: &str| w.path(c, d, name);
    let r = f(&mut c, &p);
    c.output("r", r);
    result(&w.run(d, c.finish()))
}

#[test]
fn linkat_adds_a_name_to_a_file_or_to_a_link() {
    each_executor(|| {
        for w in BOTH {
            let d = dir();
            let d = d.path();
            let r = one(w, d, |c, p| {
                let (a, b) = (p(c, "a"), p(c, "b"));
                c.linkat(FdRef::Cwd, a, FdRef::Cwd, b, AtFlags::empty())
            });
            assert_eq!(r, Ok(0), "{w:?}");
            let a = std::fs::metadata(d.join("a")).unwrap();
            assert_eq!(a.nlink(), 2);
            assert_eq!(std::fs::metadata(d.join("b")).unwrap().ino(), a.ino());
            // Without AT_SYMLINK_FOLLOW the link itself gets the new name.
            let r = one(w, d, |c, p| {
                let (l, n) = (p(c, "l"), p(c, "ln"));
                c.linkat(FdRef::Cwd, l, FdRef::Cwd, n, AtFlags::empty())
            });
            assert_eq!(r, Ok(0), "{w:?}");
            assert!(
                std::fs::symlink_metadata(d.join("ln"))
                    .unwrap()
                    .is_symlink()
            );
            // With it, the file the link points to.
            let r = one(w, d, |c, p| {
                let (l, n) = (p(c, "l"), p(c, "lf"));
                c.linkat(FdRef::Cwd, l, FdRef::Cwd, n, FOLLOW)
            });
            assert_eq!(r, Ok(0), "{w:?}");
            let lf = std::fs::symlink_metadata(d.join("lf")).unwrap();
            assert!(lf.is_file());
            assert_eq!(lf.ino(), a.ino());
            assert_eq!(std::fs::metadata(d.join("a")).unwrap().nlink(), 3);
            // An existing new name: EEXIST.
            let r = one(w, d, |c, p| {
                let (a, b) = (p(c, "a"), p(c, "b"));
                c.linkat(FdRef::Cwd, a, FdRef::Cwd, b, FOLLOW)
            });
            assert_eq!(r, Err(libc::EEXIST), "{w:?}");
        }
    });
}

#[test]
fn symlinkat_creates_a_link_holding_its_target() {
    each_executor(|| {
        for w in BOTH {
            let d = dir();
            let d = d.path();
            let r = one(w, d, |c, p| {
                let (t, s) = (c.path("a"), p(c, "s"));
                c.symlinkat(t, FdRef::Cwd, s)
            });
            assert_eq!(r, Ok(0), "{w:?}");
            assert_eq!(std::fs::read_link(d.join("s")).unwrap(), Path::new("a"));
            assert_eq!(std::fs::read(d.join("s")).unwrap(), b"hello");
            // A target that does not exist (yet) is fine: it is only a string.
            let r = one(w, d, |c, p| {
                let (t, s) = (c.path("not/yet"), p(c, "dangling"));
                c.symlinkat(t, FdRef::Cwd, s)
            });
            assert_eq!(r, Ok(0), "{w:?}");
            assert_eq!(
                std::fs::read_link(d.join("dangling")).unwrap(),
                Path::new("not/yet")
            );
        }
    });
}

#[test]
fn symlinkat_under_a_root_refuses_targets_that_point_out() {
    each_executor(|| {
        let d = dir();
        let d = d.path();
        for target in ["/etc/passwd", "../a", "x/../../a", ".."] {
            let r = one(Where::Root, d, |c, p| {
                let (t, s) = (c.path(target), p(c, "s"));
                c.symlinkat(t, FdRef::Cwd, s)
            });
            assert_eq!(r, Err(libc::EXDEV), "{target}");
            assert!(std::fs::symlink_metadata(d.join("s")).is_err(), "{target}");
        }
        // Without a root they are only strings.
        let r = one(Where::Trusted, d, |c, p| {
            let (t, s) = (c.path("/etc/passwd"), p(c, "s"));
            c.symlinkat(t, FdRef::Cwd, s)
        });
        assert_eq!(r, Ok(0));
    });
}

#[test]
fn readlinkat_writes_the_target_into_the_buffer() {
    each_executor(|| {
        for w in BOTH {
            let d = dir();
            let d = d.path();
            std::os::unix::fs::symlink("some/target", d.join("s")).unwrap();
            // Read the link, then write what was read into a new file.
            let mut c = Builder::new();
            let (s, out) = (w.path(&mut c, d, "s"), w.path(&mut c, d, "out"));
            let buf = c.buffer("buf", 64);
            let n = c.readlinkat(FdRef::Cwd, s, buf);
            let f = c.openat(FdRef::Cwd, out, CREATE, Mode::from_raw_mode(0o644));
            c.write(f, buf.slice(0, n));
            c.close(f);
            c.output("r", n);
            assert_eq!(result(&w.run(d, c.finish())), Ok(11), "{w:?}");
            assert_eq!(std::fs::read(d.join("out")).unwrap(), b"some/target");
            // Not a link: EINVAL; the range's length bounds the bytes written.
            let r = one(w, d, |c, p| {
                let a = p(c, "a");
                let buf = c.buffer("buf", 64);
                c.readlinkat(FdRef::Cwd, a, buf)
            });
            assert_eq!(r, Err(libc::EINVAL), "{w:?}");
            let r = one(w, d, |c, p| {
                let s = p(c, "s");
                let buf = c.buffer("buf", 64);
                c.readlinkat(FdRef::Cwd, s, buf.slice(0, 4))
            });
            assert_eq!(r, Ok(4), "{w:?}");
        }
    });
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn fchmodat_sets_the_mode() {
    each_executor(|| {
        for w in BOTH {
            let d = dir();
            let d = d.path();
            let r = one(w, d, |c, p| {
                let a = p(c, "a");
                c.fchmodat(FdRef::Cwd, a, Mode::from_raw_mode(0o640), AtFlags::empty())
            });
            assert_eq!(r, Ok(0), "{w:?}");
            assert_eq!(mode(&d.join("a")), 0o640);
            // Through the link, to the file.
            let r = one(w, d, |c, p| {
                let l = p(c, "l");
                c.fchmodat(FdRef::Cwd, l, Mode::from_raw_mode(0o604), AtFlags::empty())
            });
            assert_eq!(r, Ok(0), "{w:?}");
            assert_eq!(mode(&d.join("a")), 0o604);
            // The link itself has no mode to change: what the kernel says, root or not.
            let r = one(w, d, |c, p| {
                let l = p(c, "l");
                c.fchmodat(FdRef::Cwd, l, Mode::from_raw_mode(0o600), NOFOLLOW)
            });
            assert_eq!(r, Err(libc::EOPNOTSUPP), "{w:?}");
            // A regular file with AT_SYMLINK_NOFOLLOW (fchmodat2).
            let r = one(w, d, |c, p| {
                let a = p(c, "a");
                c.fchmodat(FdRef::Cwd, a, Mode::from_raw_mode(0o600), NOFOLLOW)
            });
            assert_eq!(r, Ok(0), "{w:?}");
            assert_eq!(mode(&d.join("a")), 0o600);
        }
    });
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn fchownat_sets_the_owner() {
    if !is_root() {
        eprintln!("skipping: changing a file's owner needs root");
        return;
    }
    each_executor(|| {
        for w in BOTH {
            let d = dir();
            let d = d.path();
            let r = one(w, d, |c, p| {
                let a = p(c, "a");
                c.fchownat(FdRef::Cwd, a, 65534, 65534, AtFlags::empty())
            });
            assert_eq!(r, Ok(0), "{w:?}");
            let m = std::fs::metadata(d.join("a")).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 65534));
            // -1 leaves the owner, sets the group.
            let r = one(w, d, |c, p| {
                let a = p(c, "a");
                c.fchownat(FdRef::Cwd, a, -1, 0, AtFlags::empty())
            });
            assert_eq!(r, Ok(0), "{w:?}");
            let m = std::fs::metadata(d.join("a")).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 0));
            // AT_SYMLINK_NOFOLLOW: the link's owner, not the file's.
            let r = one(w, d, |c, p| {
                let l = p(c, "l");
                c.fchownat(FdRef::Cwd, l, 4242, 4242, NOFOLLOW)
            });
            assert_eq!(r, Ok(0), "{w:?}");
            let l = std::fs::symlink_metadata(d.join("l")).unwrap();
            assert_eq!((l.uid(), l.gid()), (4242, 4242));
            let m = std::fs::metadata(d.join("a")).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 0));
        }
    });
}

/// A compound setting the times of `name` from `[(atime s, ns), (mtime s, ns)]`.
fn utimes(
    w: Where,
    d: &Path,
    name: &str,
    times: [(i64, i64); 2],
    flags: AtFlags,
) -> Result<i64, i32> {
    one(w, d, |c, p| {
        let path = p(c, name);
        let t = c.buffer("times", 32);
        for (i, (s, ns)) in times.iter().enumerate() {
            c.store(Width::U64, t, (i * 16) as i64, *s);
            c.store(Width::U64, t, (i * 16 + 8) as i64, *ns);
        }
        c.utimensat(FdRef::Cwd, path, t, flags)
    })
}

#[test]
fn utimensat_sets_the_times_from_the_buffer() {
    each_executor(|| {
        for w in BOTH {
            let d = dir();
            let d = d.path();
            let r = utimes(
                w,
                d,
                "a",
                [(1_000_000_000, 5), (1_234_567_890, 0)],
                AtFlags::empty(),
            );
            assert_eq!(r, Ok(0), "{w:?}");
            let m = std::fs::metadata(d.join("a")).unwrap();
            assert_eq!((m.atime(), m.atime_nsec()), (1_000_000_000, 5));
            assert_eq!((m.mtime(), m.mtime_nsec()), (1_234_567_890, 0));
            // UTIME_OMIT keeps a time, UTIME_NOW sets it to now.
            let r = utimes(
                w,
                d,
                "l",
                [(0, libc::UTIME_OMIT), (0, libc::UTIME_NOW)],
                AtFlags::empty(),
            );
            assert_eq!(r, Ok(0), "{w:?}");
            let m = std::fs::metadata(d.join("a")).unwrap();
            assert_eq!(m.atime(), 1_000_000_000);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            assert!((now - m.mtime()).abs() < 60, "{} vs {now}", m.mtime());
            // AT_SYMLINK_NOFOLLOW: the link's times.
            let r = utimes(w, d, "l", [(7, 0), (8, 0)], NOFOLLOW);
            assert_eq!(r, Ok(0), "{w:?}");
            let l = std::fs::symlink_metadata(d.join("l")).unwrap();
            assert_eq!((l.atime(), l.mtime()), (7, 8));
            assert_eq!(
                std::fs::metadata(d.join("a")).unwrap().atime(),
                1_000_000_000
            );
            // A nanosecond field out of range: EINVAL.
            let r = utimes(w, d, "a", [(0, 2_000_000_000), (0, 0)], AtFlags::empty());
            assert_eq!(r, Err(libc::EINVAL), "{w:?}");
        }
    });
}

/// Whether the file system of `dir` keeps `user.*` attributes.
fn user_xattrs(dir: &Path) -> bool {
    let f = dir.join("probe");
    std::fs::write(&f, b"").unwrap();
    let ok = rustix::fs::setxattr(&f, "user.cosy-probe", b"1", rustix::fs::XattrFlags::empty());
    std::fs::remove_file(&f).unwrap();
    ok.is_ok()
}

#[test]
fn extended_attributes_are_set_got_and_listed() {
    let probe = tempfile::tempdir().unwrap();
    if !user_xattrs(probe.path()) {
        eprintln!("skipping: the file system of the temporary directory refuses user.* xattrs");
        return;
    }
    each_executor(|| {
        for w in BOTH {
            let d = dir();
            let d = d.path();
            let mut c = Builder::new();
            let a = w.path(&mut c, d, "a");
            let name = c.path("user.cosy");
            let value = constant_buffer(&mut c, "value", b"value!");
            let got = c.buffer("got", 64);
            let list = c.buffer("list", 64);
            let f = c.openat(FdRef::Cwd, a, OFlags::RDWR, Mode::empty());
            let set = c.fsetxattr(f, name, value, XattrFlags::CREATE);
            let len = c.fgetxattr(f, name, got.prefix(0));
            let n = c.fgetxattr(f, name, got);
            let listed = c.flistxattr(f, list);
            let listed_len = c.flistxattr(f, list.prefix(0));
            // Write what was got and listed into files, to compare.
            let o1 = w.path(&mut c, d, "got");
            let o2 = w.path(&mut c, d, "list");
            let g = c.openat(FdRef::Cwd, o1, CREATE, Mode::from_raw_mode(0o644));
            c.write(g, got.slice(0, n));
            c.close(g);
            let g = c.openat(FdRef::Cwd, o2, CREATE, Mode::from_raw_mode(0o644));
            c.write(g, list.slice(0, listed));
            c.close(g);
            c.close(f);
            for (k, r) in [("set", set), ("len", len), ("n", n), ("listed", listed)] {
                c.output(k, r);
            }
            c.output("listed_len", listed_len);
            let out = w.run(d, c.finish());
            assert!(out.is_ok(), "{w:?}: {}", show(&out));
            assert_eq!(out.output("set"), Some(0));
            assert_eq!(out.output("len"), Some(6));
            assert_eq!(out.output("n"), Some(6));
            assert_eq!(std::fs::read(d.join("got")).unwrap(), b"value!");
            let names = std::fs::read(d.join("list")).unwrap();
            assert!(
                names.split(|&b| b == 0).any(|n| n == b"user.cosy"),
                "{names:?}"
            );
            assert_eq!(out.output("listed"), Some(names.len() as i64));
            assert_eq!(out.output("listed_len"), Some(names.len() as i64));
            let mut v = [0u8; 16];
            let k = rustix::fs::getxattr(d.join("a"), "user.cosy", &mut v).unwrap();
            assert_eq!(&v[..k], b"value!");
            // XATTR_CREATE of an existing attribute: EEXIST; a missing one: ENODATA.
            let mut c = Builder::new();
            let a = w.path(&mut c, d, "a");
            let name = c.path("user.cosy");
            let value = constant_buffer(&mut c, "value", b"x");
            let f = c.openat(FdRef::Cwd, a, OFlags::RDWR, Mode::empty());
            let r = c.fsetxattr(f, name, value, XattrFlags::CREATE);
            c.output("r", r);
            assert_eq!(result(&w.run(d, c.finish())), Err(libc::EEXIST), "{w:?}");
            let mut c = Builder::new();
            let a = w.path(&mut c, d, "a");
            let name = c.path("user.cosy-missing");
            let got = c.buffer("got", 8);
            let f = c.openat(FdRef::Cwd, a, RDONLY, Mode::empty());
            let r = c.fgetxattr(f, name, got);
            c.output("r", r);
            assert_eq!(result(&w.run(d, c.finish())), Err(libc::ENODATA), "{w:?}");
        }
    });
}

#[test]
fn faccessat2_checks_access() {
    each_executor(|| {
        for w in BOTH {
            let d = dir();
            let d = d.path();
            std::fs::write(d.join("x"), b"#!/bin/sh\n").unwrap();
            std::fs::set_permissions(d.join("x"), PermissionsExt::from_mode(0o755)).unwrap();
            let access = |name: &str, mode: i32, flags: AtFlags| {
                one(w, d, |c, p| {
                    let path = p(c, name);
                    c.faccessat2(
                        FdRef::Cwd,
                        path,
                        Access::from_bits_retain(mode as u32),
                        flags,
                    )
                })
            };
            assert_eq!(access("a", libc::F_OK, AtFlags::empty()), Ok(0), "{w:?}");
            assert_eq!(
                access("missing", libc::F_OK, AtFlags::empty()),
                Err(libc::ENOENT),
                "{w:?}"
            );
            assert_eq!(
                access("a", libc::R_OK | libc::W_OK, AtFlags::empty()),
                Ok(0),
                "{w:?}"
            );
            // No execute bit at all: refused even to root.
            assert_eq!(
                access("a", libc::X_OK, AtFlags::empty()),
                Err(libc::EACCES),
                "{w:?}"
            );
            assert_eq!(access("x", libc::X_OK, AtFlags::empty()), Ok(0), "{w:?}");
            assert_eq!(
                access("l", libc::X_OK, AtFlags::empty()),
                Err(libc::EACCES),
                "{w:?}"
            );
            // A dangling link exists with AT_SYMLINK_NOFOLLOW only.
            std::os::unix::fs::symlink("missing", d.join("dangling")).unwrap();
            assert_eq!(
                access("dangling", libc::F_OK, AtFlags::empty()),
                Err(libc::ENOENT),
                "{w:?}"
            );
            assert_eq!(access("dangling", libc::F_OK, NOFOLLOW), Ok(0), "{w:?}");
        }
    });
}

#[test]
fn the_new_calls_are_counted_by_name() {
    let d = dir();
    let d = d.path();
    let mut c = Builder::new();
    let a = c.path(bytes(&d.join("a")));
    let r = c.faccessat2(FdRef::Cwd, a, Access::empty(), AtFlags::empty());
    c.output("r", r);
    let out = Where::Trusted.run(d, c.finish());
    assert!(out.is_ok(), "{}", show(&out));
    assert_eq!(out.stats.by_call.get(Sys::Faccessat2.name()), Some(&1));
}
