//! Attacks on the policy root while a compound runs: the tree changes under it (a symlink
//! swapped in during a map, a directory renamed out of the root or inside it while its
//! descriptor is open), hard links, `O_PATH` descriptors, magic links. Each compound is run on
//! every executor under `Policy::untrusted(root)`; the changes are made by registered functions
//! the compound calls, so they happen between two of its calls. What is asserted is the promise
//! of docs/semantics.md: no byte from outside the root is read, nothing outside it changes, and
//! every refusal is a clean error. The kernel's own permission checks stand: run as root and as
//! an unprivileged user (`rerun_unprivileged`), cosy sees what the kernel says to a plain
//! program.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use cosy_exec::{Functions, Outcome, RunOptions};
use cosy_model::Policy;

const SECRET: &[u8] = b"SECRET-OUTSIDE-THE-ROOT";

struct Tree {
    _outer: tempfile::TempDir,
    outer: PathBuf,
    root: PathBuf,
}

/// `outer/{secret.txt, root/}`; the root holds `in.txt`, `sub/deep.txt`, `sub/inner/x.txt`,
/// `f0..f3`.
fn tree() -> Tree {
    let outer = tempfile::tempdir().unwrap();
    let o = outer.path().to_path_buf();
    let root = o.join("root");
    std::fs::create_dir_all(root.join("sub/inner")).unwrap();
    std::fs::write(root.join("in.txt"), b"inside").unwrap();
    std::fs::write(root.join("sub/deep.txt"), b"deep").unwrap();
    std::fs::write(root.join("sub/inner/x.txt"), b"x").unwrap();
    for i in 0..4 {
        std::fs::write(root.join(format!("f{i}")), b"plain").unwrap();
    }
    std::fs::write(o.join("secret.txt"), SECRET).unwrap();
    Tree {
        _outer: outer,
        outer: o,
        root,
    }
}

/// Every file outside the root with its contents (symlinks as their targets).
fn outside(t: &Tree) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p == skip {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                out.insert(p.clone(), b"dir".to_vec());
                walk(&p, skip, out);
            } else if m.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.insert(p, target.into_os_string().into_encoded_bytes());
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&t.outer, &t.root, &mut out);
    out
}

/// Runs `src` under the root with `functions` (each allowed by the policy), and the function
/// `saw` that records whether any bytes it is given hold the secret.
fn run_attack(t: &Tree, src: &str, mut functions: Functions, names: &[&str]) -> (Outcome, bool) {
    let leaked = Arc::new(AtomicBool::new(false));
    let l = leaked.clone();
    functions.register("saw", move |a| {
        for b in a.bufs() {
            if b.windows(SECRET.len()).any(|w| w == SECRET) {
                l.store(true, Ordering::SeqCst);
            }
        }
        Ok(0)
    });
    let mut policy = Policy::untrusted(&t.root);
    policy.functions = names.iter().map(|s| s.to_string()).collect();
    policy.functions.insert("saw".into());
    let out = run_with(
        parse(src),
        &policy,
        RunOptions {
            functions,
            ..RunOptions::default()
        },
    );
    (out, leaked.load(Ordering::SeqCst))
}

/// A function that runs `change` the first time it is called (later calls do nothing).
fn once(
    change: impl Fn() + Send + Sync + 'static,
) -> impl Fn(&cosy_exec::FnArgs<'_>) -> cosy_exec::FnResult + Send + Sync + 'static {
    let done = AtomicBool::new(false);
    move |_| {
        if !done.swap(true, Ordering::SeqCst) {
            change();
        }
        Ok(0)
    }
}

fn errnos(out: &Outcome) -> Vec<i32> {
    out.errors.iter().map(|e| e.errno).collect()
}

#[test]
fn a_symlink_swapped_in_during_a_map_is_not_followed_out_of_the_root() {
    each_executor(|| {
        let t = tree();
        let before = outside(&t);
        let (root, outer) = (t.root.clone(), t.outer.clone());
        let mut f = Functions::new();
        // Every iteration calls `swap` before its open, so every open sees the swapped tree.
        f.register(
            "swap",
            once(move || {
                let swap = |name: &str, target: &Path| {
                    std::fs::remove_file(root.join(name)).unwrap();
                    std::os::unix::fs::symlink(target, root.join(name)).unwrap();
                };
                swap("f0", Path::new("in.txt"));
                swap("f1", Path::new("../secret.txt"));
                swap("f2", &outer.join("secret.txt"));
                std::os::unix::fs::symlink(&outer, root.join("outdir")).unwrap();
                swap("f3", Path::new("outdir/secret.txt"));
            }),
        );
        let src = r#"
mode continue
buffer buf 64 local
total = 0
map p in paths("f0", "f1", "f2", "f3") {
    call swap
    f = openat cwd p O_RDONLY 0o0
    n = read f buf
    n = n max 0
    call saw buf[0..n]
    total = total + n
    close f
}
output total
"#;
        let (out, leaked) = run_attack(&t, src, f, &["swap"]);
        assert!(!leaked, "the secret was read: {out}");
        assert!(out.is_ok(), "{out}");
        // f0 points inside and is read; the three that point out are refused.
        assert_eq!(out.output("total"), Some(b"inside".len() as i64), "{out}");
        let refused = errnos(&out)
            .iter()
            .filter(|&&e| e == libc::EXDEV || e == libc::ELOOP)
            .count();
        assert!(
            refused >= 3,
            "opens that lead out must fail: {:?}\n{out}",
            out.errors
        );
        assert_eq!(outside(&t), before, "something outside the root changed");
    });
}

#[test]
fn a_directory_moved_out_of_the_root_gives_no_way_further_up() {
    each_executor(|| {
        let t = tree();
        let (root, outer) = (t.root.clone(), t.outer.clone());
        let mut f = Functions::new();
        f.register(
            "move_out",
            once(move || std::fs::rename(root.join("sub"), outer.join("moved")).unwrap()),
        );
        // `d` stays open while its directory leaves the root; then every way up from it is
        // tried, reading and writing.
        let src = r#"
mode continue
buffer buf 64
buffer st 256
d = openat cwd "sub" O_RDONLY|O_DIRECTORY 0o0
call move_out
a = openat d "../secret.txt" O_RDONLY 0o0
n = read a buf
n = n max 0
call saw buf[0..n]
close a
b = openat2 d "../secret.txt" O_RDONLY 0o0 0
m = read b buf
m = m max 0
call saw buf[0..m]
close b
s = statx d "../secret.txt" 0 STATX_BASIC_STATS st
k = mkdirat d "../escaped" 0o755
l = linkat d "../secret.txt" d "stolen" 0
r = renameat2 d "../secret.txt" d "stolen2" 0
c = openat d "deep.txt" O_RDONLY 0o0
own = read c buf
close c
close d
output own
"#;
        let before = outside(&t);
        let (out, leaked) = run_attack(&t, src, f, &["move_out"]);
        assert!(!leaked, "the secret was read: {out}");
        assert!(out.is_ok(), "{out}");
        // The seven ways up all fail (the reads of the failed opens fail too).
        let up = errnos(&out).iter().filter(|&&e| e == libc::EXDEV).count();
        assert!(
            up >= 6,
            "every way up must be refused: {:?}\n{out}",
            out.errors
        );
        // What is beneath the descriptor itself is still its own (docs/semantics.md: a root
        // does not guard against a process that moves directories under it).
        assert_eq!(out.output("own"), Some(4), "{out}");
        let mut expected = before;
        expected.retain(|p, _| !p.starts_with(t.outer.join("moved")));
        let mut now = outside(&t);
        now.retain(|p, _| !p.starts_with(t.outer.join("moved")));
        assert_eq!(now, expected, "something outside the root changed");
        assert!(!t.outer.join("escaped").exists() && !t.outer.join("moved/stolen").exists());
    });
}

#[test]
fn dotdot_after_a_rename_inside_the_root_stays_beneath_the_descriptor() {
    each_executor(|| {
        let t = tree();
        let root = t.root.clone();
        let mut f = Functions::new();
        // `sub/inner` moves up to the root's top: `..` from it now is the root, `../..` the
        // outside.
        f.register(
            "move_up",
            once(move || std::fs::rename(root.join("sub/inner"), root.join("inner2")).unwrap()),
        );
        let src = r#"
mode continue
buffer buf 64
d = openat cwd "sub/inner" O_RDONLY|O_DIRECTORY 0o0
call move_up
a = openat d "../../secret.txt" O_RDONLY 0o0
n = read a buf
n = n max 0
call saw buf[0..n]
close a
b = openat d "../secret.txt" O_RDONLY 0o0
m = read b buf
m = m max 0
call saw buf[0..m]
close b
c = openat d "x.txt" O_RDONLY 0o0
x = read c buf
close c
e = openat cwd "inner2/x.txt" O_RDONLY 0o0
y = read e buf
close e
close d
output x
output y
"#;
        let (out, leaked) = run_attack(&t, src, f, &["move_up"]);
        assert!(!leaked, "the secret was read: {out}");
        assert!(out.is_ok(), "{out}");
        assert_eq!(
            (out.output("x"), out.output("y")),
            (Some(1), Some(1)),
            "{out}"
        );
        let up = errnos(&out).iter().filter(|&&e| e == libc::EXDEV).count();
        assert!(
            up >= 2,
            "`..` from the descriptor must be refused: {:?}\n{out}",
            out.errors
        );
    });
}

#[test]
fn hard_links_cannot_bring_an_outside_file_in() {
    each_executor(|| {
        let t = tree();
        std::os::unix::fs::symlink("../secret.txt", t.root.join("escape")).unwrap();
        std::os::unix::fs::symlink(t.outer.join("secret.txt"), t.root.join("abs")).unwrap();
        let before = outside(&t);
        let src = r#"
mode continue
buffer buf 64
a = linkat cwd "../secret.txt" cwd "stolen1" 0
b = linkat cwd "escape" cwd "stolen2" AT_SYMLINK_FOLLOW
c = linkat cwd "abs" cwd "stolen3" AT_SYMLINK_FOLLOW
s = linkat cwd "escape" cwd "copy-of-link" 0
f = openat cwd "copy-of-link" O_RDONLY 0o0
n = read f buf
n = n max 0
call saw buf[0..n]
close f
output s
"#;
        let (out, leaked) = run_attack(&t, src, Functions::new(), &[]);
        assert!(!leaked, "the secret was read: {out}");
        assert!(out.is_ok(), "{out}");
        for name in ["stolen1", "stolen2", "stolen3"] {
            assert!(
                std::fs::symlink_metadata(t.root.join(name)).is_err(),
                "{name} was linked in: {out}"
            );
        }
        // Linking the symlink itself (no AT_SYMLINK_FOLLOW) is a new name for the link, inside
        // the root; opening it is refused like the link.
        assert_eq!(out.output("s"), Some(0), "{out}");
        assert!(
            std::fs::symlink_metadata(t.root.join("copy-of-link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(errnos(&out).contains(&libc::EXDEV), "{:?}", out.errors);
        assert_eq!(outside(&t), before);
    });
}

#[test]
fn o_path_descriptors_and_magic_links_lead_nowhere_outside() {
    each_executor(|| {
        let t = tree();
        std::os::unix::fs::symlink(&t.outer, t.root.join("outdir")).unwrap();
        let before = outside(&t);
        // An O_PATH descriptor of the symlink itself, of a directory, and the /proc paths
        // that would turn a descriptor or the cwd into a way out.
        let src = r#"
mode continue
buffer buf 64
buffer st 256
p = openat cwd "outdir" O_PATH|O_NOFOLLOW 0o0
a = openat p "secret.txt" O_RDONLY 0o0
n = read a buf
n = n max 0
call saw buf[0..n]
close a
s = statx p "" AT_EMPTY_PATH|AT_SYMLINK_NOFOLLOW STATX_BASIC_STATS st
l = linkat p "" cwd "link-of-opath" AT_EMPTY_PATH
q = openat cwd "sub" O_PATH|O_DIRECTORY 0o0
b = openat q "../../secret.txt" O_RDONLY 0o0
m = read b buf
m = m max 0
call saw buf[0..m]
close b
c = openat cwd "/proc/self/cwd/../secret.txt" O_RDONLY 0o0
o = read c buf
o = o max 0
call saw buf[0..o]
close c
g = openat cwd "/proc/self/root/etc/hostname" O_RDONLY 0o0
close g
close p
close q
output s
"#;
        let (out, leaked) = run_attack(&t, src, Functions::new(), &[]);
        assert!(!leaked, "the secret was read: {out}");
        assert!(out.is_ok(), "{out}");
        // The O_PATH descriptor is the link itself: statx of it works, nothing goes through.
        assert_eq!(out.output("s"), Some(0), "{out}");
        let e = errnos(&out);
        assert!(
            e.iter().filter(|&&x| x == libc::EXDEV).count() >= 3,
            "the paths through /proc and `..` must be refused: {e:?}\n{out}"
        );
        assert!(
            e.contains(&libc::ENOTDIR),
            "opening beneath a symlink's O_PATH: {e:?}"
        );
        assert_eq!(outside(&t), before);
    });
}

/// What `std` says about reading `path` (as a plain program would see it): the length read or
/// the errno.
fn std_read(path: &Path) -> Result<i64, i32> {
    std::fs::read(path)
        .map(|b| b.len() as i64)
        .map_err(|e| e.raw_os_error().unwrap_or(0))
}

#[test]
fn the_kernels_permission_checks_stand_as_for_any_program() {
    each_executor(|| {
        let t = tree();
        std::fs::write(t.root.join("locked"), b"locked").unwrap();
        std::fs::set_permissions(
            t.root.join("locked"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        std::fs::create_dir(t.root.join("closed")).unwrap();
        std::fs::write(t.root.join("closed/x"), b"x").unwrap();
        std::fs::set_permissions(
            t.root.join("closed"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        for name in ["locked", "closed/x", "in.txt"] {
            let src = format!(
                "buffer buf 64\nf = openat cwd \"{name}\" O_RDONLY 0o0\nn = read f buf\nclose f\noutput n\n"
            );
            let (out, _) = run_attack(&t, &src, Functions::new(), &[]);
            let got = match &out.error {
                None => Ok(out.output("n").unwrap()),
                Some(cosy_exec::Error::Call { errno, .. }) => Err(*errno),
                Some(e) => panic!("{name}: {e}"),
            };
            assert_eq!(got, std_read(&t.root.join(name)), "{name} as uid {}", uid());
        }
        // Give the directory back its mode so the temporary tree can be removed.
        std::fs::set_permissions(
            t.root.join("closed"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    });
}

/// As root, permission bits stop nothing: the tests of this file run again as `nobody`, where
/// `locked` and `closed/x` give EACCES.
#[test]
fn rerun_unprivileged() {
    rerun_as_nobody(6);
}
