//! The policy root: paths cannot leave it.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use cosy_exec::{Error, Outcome, RunOptions};
use cosy_model::flags::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags, StatxFlags};
use cosy_model::{Arg, Builder, Compound, FdRef, Policy, Sys, Width, flags};

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
    let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
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
        let fd = c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
        c.close(fd);
        let out = run_in(&t, c.finish());
        assert!(out.is_ok(), "{}", show(&out));
        assert_eq!(out.stats.by_call.get("openat2"), Some(&1));
        assert!(!out.stats.by_call.contains_key("openat"));

        let mut c = Builder::new();
        let p = c.path("/etc/passwd");
        c.openat(FdRef::Cwd, p, RDONLY, Mode::empty());
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
        c.openat2(FdRef::Cwd, p, RDONLY, Mode::empty(), ResolveFlags::empty());
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
        let fd = c.openat2(
            FdRef::Cwd,
            p,
            RDONLY,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS,
        );
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
        let d = c.openat(FdRef::Cwd, sub, DIR, Mode::empty());
        let f = c.openat(d, deep, RDONLY, Mode::empty());
        c.close(f);
        c.openat(d, out_path, RDONLY, Mode::empty());
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

fn statx_under(t: &Tree, path: &[u8], at: AtFlags) -> (Option<Error>, i64, i64) {
    let mut c = Builder::new();
    let p = c.path(path);
    let st = c.buffer("st", 256);
    c.statx(FdRef::Cwd, p, at, StatxFlags::BASIC_STATS, st);
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
        let (e, size, _) = statx_under(&t, b"in.txt", AtFlags::empty());
        assert_eq!((e, size), (None, 6));
        let (e, size, _) = statx_under(&t, b"ok-link", AtFlags::empty());
        assert_eq!((e, size), (None, 6));
        let (e, _, mode) = statx_under(&t, b"ok-link", AtFlags::SYMLINK_NOFOLLOW);
        assert_eq!(e, None);
        assert_eq!(mode as u32 & libc::S_IFMT, libc::S_IFLNK);
        // The link that points outside can be looked at, but not followed.
        let (e, _, mode) = statx_under(&t, b"escape", AtFlags::SYMLINK_NOFOLLOW);
        assert_eq!(e, None);
        assert_eq!(mode as u32 & libc::S_IFMT, libc::S_IFLNK);
        for p in [
            &b"escape"[..],
            b"abs",
            b"../secret.txt",
            b"/etc/passwd",
            b"outdir",
        ] {
            let (e, _, _) = statx_under(&t, p, AtFlags::empty());
            assert_eq!(
                e.and_then(|e| e.errno()),
                Some(libc::EXDEV),
                "{}",
                String::from_utf8_lossy(p)
            );
        }
        // The root itself, by an empty path or its absolute name.
        let (e, _, mode) = statx_under(&t, b"", AtFlags::EMPTY_PATH);
        assert_eq!(e, None);
        assert_eq!(mode as u32 & libc::S_IFMT, libc::S_IFDIR);
        let (e, _, mode) = statx_under(&t, &bytes(&t.root), AtFlags::empty());
        assert_eq!(e, None);
        assert_eq!(mode as u32 & libc::S_IFMT, libc::S_IFDIR);
    });
}

/// A single name with `AT_SYMLINK_NOFOLLOW` is statx'd with one call (no `O_PATH` open and
/// close around it); what that call can reach is still only inside the root: a link pointing
/// out is seen as a link, and a name with a trailing slash, `..` or a second component goes
/// the general way (and is refused where it leads out).
#[test]
fn a_single_name_not_followed_is_one_call_and_stays_inside() {
    each_executor(|| {
        let t = tree();
        let nofollow = AtFlags::SYMLINK_NOFOLLOW;
        for link in [&b"outdir"[..], b"escape", b"abs"] {
            let (e, _, mode) = statx_under(&t, link, nofollow);
            assert_eq!(e, None, "{}", String::from_utf8_lossy(link));
            assert_eq!(mode as u32 & libc::S_IFMT, libc::S_IFLNK);
        }
        for out in [
            &b"outdir/"[..],
            b"..",
            b"outdir/secret.txt",
            b"sub/../../secret.txt",
        ] {
            let (e, _, _) = statx_under(&t, out, nofollow);
            assert_eq!(
                e.and_then(|e| e.errno()),
                Some(libc::EXDEV),
                "{}",
                String::from_utf8_lossy(out)
            );
        }
        // One call per entry of a directory the compound opened beneath the root.
        let mut c = Builder::new();
        let sub = c.path("sub");
        let ents = c.buffer("ents", 4096);
        let st = c.local_buffer("st", 256);
        let d = c.openat(
            FdRef::Cwd,
            sub,
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        );
        let n = c.getdents64(d, ents);
        c.map_dirents(ents.prefix(n), |c, e| {
            c.statx(d, e.name, nofollow, StatxFlags::BASIC_STATS, st);
        });
        c.close(d);
        let out = run_in(&t, c.finish());
        assert!(out.error.is_none(), "{:?}", out.error);
        let statx = out.stats.by_call.get("statx").copied().unwrap_or(0);
        assert_eq!(statx, 1, "sub holds one file");
        // openat2 of `sub` only: no O_PATH open per entry.
        assert_eq!(
            out.stats.by_call.get("openat2").copied(),
            Some(1),
            "{}",
            out.stats
        );
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
                c.mkdirat(FdRef::Cwd, p, Mode::from_raw_mode(0o755));
            }),
            ex
        );
        assert_eq!(
            op_result(&|c| {
                let p = c.path("outdir/evil");
                c.mkdirat(FdRef::Cwd, p, Mode::from_raw_mode(0o755));
            }),
            ex
        );
        assert!(!t.outer.join("evil").exists());
        assert_eq!(
            op_result(&|c| {
                let p = c.path("outdir/secret.txt");
                c.unlinkat(FdRef::Cwd, p, AtFlags::empty());
            }),
            ex
        );
        assert_eq!(
            op_result(&|c| {
                let p = c.path("sub/..");
                c.unlinkat(FdRef::Cwd, p, AtFlags::REMOVEDIR);
            }),
            ex
        );
        assert!(t.outer.join("secret.txt").exists());
        assert_eq!(
            op_result(&|c| {
                let a = c.path("in.txt");
                let b = c.path("../stolen.txt");
                c.renameat2(FdRef::Cwd, a, FdRef::Cwd, b, RenameFlags::empty());
            }),
            ex
        );
        assert!(!t.outer.join("stolen.txt").exists());
        assert_eq!(
            op_result(&|c| {
                let a = c.path("outdir/secret.txt");
                let b = c.path("mine.txt");
                c.renameat2(FdRef::Cwd, a, FdRef::Cwd, b, RenameFlags::empty());
            }),
            ex
        );
        assert!(t.outer.join("secret.txt").exists());

        // Inside, they work; a symlink as the last component is acted on itself.
        let root = t.root.clone();
        assert_eq!(
            op_result(&|c| {
                let a = c.path("newdir");
                c.mkdirat(FdRef::Cwd, a, Mode::from_raw_mode(0o755));
                let b = c.path("sub/newer/");
                c.mkdirat(FdRef::Cwd, b, Mode::from_raw_mode(0o755));
                let from = c.path("in.txt");
                let mut abs = bytes(&root);
                abs.extend_from_slice(b"/sub/newer/moved.txt");
                let to = c.path(abs);
                c.renameat2(FdRef::Cwd, from, FdRef::Cwd, to, RenameFlags::empty());
                let l = c.path("escape");
                c.unlinkat(FdRef::Cwd, l, AtFlags::empty());
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

/// Everything under `outer` except `root`, as text: kinds, contents, link targets, modes,
/// owners, link counts, sizes, modification times.
fn outside_world(outer: &Path, root: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![outer.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p == root {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let what = if m.is_symlink() {
                format!("link {:?}", std::fs::read_link(&p).unwrap())
            } else if m.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else {
                format!("file {:?}", std::fs::read(&p).unwrap())
            };
            let meta = format!(
                "{what} mode {:o} owner {}:{} nlink {} size {} mtime {}.{}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.nlink(),
                m.len(),
                m.mtime(),
                m.mtime_nsec()
            );
            out.insert(p, meta);
        }
    }
    out
}

/// A root with ways out: `outdir` (an absolute link to a directory outside), `up` (a relative
/// link to it, through `..`), `outfile` (an absolute link to a file outside); outside, a
/// directory `outside` with a file `x` and a file `x` beside the root.
fn escape_tree() -> Tree {
    let outer = tempfile::tempdir().unwrap();
    let o = outer.path().to_path_buf();
    let root = o.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("in.txt"), b"inside").unwrap();
    std::fs::create_dir_all(o.join("outside/sub")).unwrap();
    std::fs::write(o.join("outside/x"), b"secret").unwrap();
    std::fs::write(o.join("x"), b"beside").unwrap();
    let link = |target: &Path, name: &str| std::os::unix::fs::symlink(target, root.join(name));
    link(&o.join("outside"), "outdir").unwrap();
    link(Path::new("../outside"), "up").unwrap();
    link(&o.join("outside/x"), "outfile").unwrap();
    Tree {
        _outer: outer,
        outer: o,
        root,
    }
}

/// The spellings of a way out: each must fail with `EXDEV` (`strict`), or, for a last
/// component that is a link pointing out, at least leave the outside as it was (calls that do
/// not follow it act on the link, inside).
fn escapes(t: &Tree) -> Vec<(Vec<u8>, bool)> {
    let mut abs = bytes(&t.outer.join("outside/x"));
    let beside = bytes(&t.outer.join("x"));
    let strict = [
        b"../outside/x".to_vec(),
        b"../x".to_vec(),
        std::mem::take(&mut abs),
        beside,
        b"outdir/x".to_vec(),
        b"up/x".to_vec(),
        b"sub/../../x".to_vec(),
        b"..".to_vec(),
    ];
    let mut out: Vec<(Vec<u8>, bool)> = strict.into_iter().map(|p| (p, true)).collect();
    out.push((b"outfile".to_vec(), false));
    out
}

/// The operands of `call` for one attempt: `bad` at operand `at`, the other operands
/// harmless but with a visible effect if the call escaped (create and truncate, mode 0o777,
/// owner 65534, times 0, write access). Derived from the row's operand kinds and
/// confinement kind only, so that every path-taking row, present or future, is tried.
fn escape_args(c: &mut Builder, call: Sys, at: usize, bad: &[u8], at_flags: i64) -> Vec<Arg> {
    use cosy_model::{ArgKind, Confine, FlagSet, Value};
    let spec = call.spec();
    let mut paths_seen = 0;
    let mut args = Vec::new();
    for (k, a) in spec.args.iter().enumerate() {
        // An existing file for a path a call reads or moves, a new name for one it creates.
        let benign_path = |n: usize| match (spec.confine, n) {
            (Confine::Symlink, _) | (_, 1..) => "new-name",
            _ => "in.txt",
        };
        args.push(match a.kind {
            ArgKind::DirFd => Arg::Fd(FdRef::Cwd),
            ArgKind::Path => {
                let p = if k == at {
                    c.path(bad)
                } else {
                    c.path(benign_path(paths_seen))
                };
                paths_seen += 1;
                Arg::Path(p)
            }
            ArgKind::Str => match spec.confine {
                // A link's target is where the link will point.
                Confine::Symlink => Arg::Path(if k == at {
                    c.path(bad)
                } else {
                    c.path("in.txt")
                }),
                Confine::NoPath
                | Confine::Open
                | Confine::Object
                | Confine::Parent
                | Confine::TwoParents
                | Confine::Link => Arg::Path(c.path("user.cosy")),
            },
            ArgKind::BufIn | ArgKind::BufOut => {
                let b = c.buffer("buf", spec.min_buf.max(64) as u32);
                Arg::Buf(b.into())
            }
            ArgKind::Int => Arg::Value(Value::Imm(65534)),
            ArgKind::Flags(set) => Arg::Value(Value::Imm(match set {
                FlagSet::Open => (libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as i64,
                FlagSet::Mode => 0o777,
                FlagSet::At => at_flags,
                FlagSet::StatxMask => libc::STATX_BASIC_STATS as i64,
                FlagSet::Access => libc::W_OK as i64,
                FlagSet::Resolve
                | FlagSet::Whence
                | FlagSet::Rename
                | FlagSet::Splice
                | FlagSet::Xattr => 0,
            })),
            ArgKind::Fd | ArgKind::NewFd => panic!(
                "{call:?} takes a path and a descriptor operand `{}`: give this test a \
                 descriptor for it",
                a.name
            ),
        });
    }
    args
}

#[test]
fn no_path_taking_row_reaches_outside_the_root() {
    use cosy_model::{ArgKind, Confine, FlagSet, Ret};
    each_executor(|| {
        let mut tried = Vec::new();
        for &call in Sys::ALL {
            let spec = call.spec();
            if spec.confine == Confine::NoPath {
                assert!(
                    !spec.takes_path(),
                    "{call:?} takes a path but is not confined"
                );
                continue;
            }
            // The operands a way out can be spelled in: the paths, and a link's target.
            let targets: Vec<usize> = spec
                .args
                .iter()
                .enumerate()
                .filter(|(_, a)| {
                    a.kind == ArgKind::Path
                        || (a.kind == ArgKind::Str && spec.confine == Confine::Symlink)
                })
                .map(|(k, _)| k)
                .collect();
            let at_flags: &[i64] = if spec
                .args
                .iter()
                .any(|a| a.kind == ArgKind::Flags(FlagSet::At))
            {
                &[
                    0,
                    libc::AT_SYMLINK_NOFOLLOW as i64,
                    libc::AT_SYMLINK_FOLLOW as i64,
                ]
            } else {
                &[0]
            };
            for &at in &targets {
                for &flags in at_flags {
                    let n = escapes(&escape_tree()).len();
                    for i in 0..n {
                        let t = escape_tree();
                        let (bad, strict) = escapes(&t).swap_remove(i);
                        let before = outside_world(&t.outer, &t.root);
                        let mut c = Builder::new();
                        let args = escape_args(&mut c, call, at, &bad, flags);
                        if let Ret::Fd(s) = c.sys(call, args) {
                            c.close(FdRef::Slot(s));
                        }
                        let out = run_in(&t, c.finish());
                        let what = format!(
                            "{call:?} with operand {at} = {:?}, flags {flags:#x}",
                            String::from_utf8_lossy(&bad)
                        );
                        // A link's target is refused by its spelling (absolute, or with a `..`
                        // component); one through a link inside the root is only a string
                        // until it is resolved, beneath the root.
                        let spelled_out =
                            bad.starts_with(b"/") || bad.split(|&b| b == b'/').any(|c| c == b"..");
                        let strict = if spec.args[at].kind == ArgKind::Str {
                            spelled_out
                        } else {
                            strict
                        };
                        if strict {
                            assert!(
                                matches!(
                                    out.error,
                                    Some(Error::Call {
                                        errno: libc::EXDEV,
                                        ..
                                    })
                                ),
                                "{what}: {:?}",
                                out.error
                            );
                        }
                        assert_eq!(
                            outside_world(&t.outer, &t.root),
                            before,
                            "{what} changed the outside"
                        );
                        tried.push(call);
                    }
                }
            }
        }
        for &call in Sys::ALL {
            if call.spec().takes_path() {
                assert!(tried.contains(&call), "{call:?}: no way out tried");
            }
        }
        eprintln!(
            "{}: {} escape attempts over {} path-taking calls, all held",
            current(),
            tried.len(),
            Sys::ALL.iter().filter(|s| s.spec().takes_path()).count()
        );
    });
}

/// The tests above, again as an unprivileged user (as root, permission bits stop nothing).
#[test]
fn rerun_unprivileged() {
    rerun_as_nobody(8);
}
