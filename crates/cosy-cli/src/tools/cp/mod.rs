//! `cosy cp`: GNU cp's copies (`-a`, `-r`/`-R`, `-p`, `-L`, `-P`, `-T`) and its messages, the
//! file work done by a session (the walk, statx, mkdirat) and by one compound per directory
//! for the files in it (copy_file_range into a temporary, metadata, renameat2): a file
//! appears under its name only once it is complete. A temporary left by a run that was
//! killed is named `.NAME.cosy-tmp.PID`.

mod batch;
mod meta;
mod parallel;
mod prog;
mod tree;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use clap::{Arg, ArgAction, Command};
use cosy_exec::Backend;
use cosy_exec::session::{BufHandle, Call, Fd, Session};
use cosy_model::Policy;
use cosy_model::flags::{Mode, OFlags};

use batch::{Batch, DirFds, DirPaths, Item, What, stat_at};
use tree::{Frame, Tree, open_dir};

use super::common::{Diag, quote};
use super::stat::{STATX_LEN, Stat};
use super::walk::{self, Options};

/// What a run preserves and follows.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Directories are copied (`-r`, `-R`, `-a`).
    pub recursive: bool,
    /// Modes preserved (`-p`, `-a`).
    pub mode: bool,
    /// Owners preserved where permitted (`-p`, `-a`).
    pub owner: bool,
    /// Access and modification times preserved (`-p`, `-a`).
    pub times: bool,
    /// Extended attributes preserved (`-a`).
    pub xattrs: bool,
    /// Hard links within the copy kept (`-a`).
    pub links: bool,
    /// Symbolic links in the tree followed (`-L`).
    pub follow: bool,
    /// Symbolic links given as sources followed (`-L`, or not recursive without `-P`).
    pub follow_top: bool,
    /// The process's umask.
    pub umask: u32,
    /// Effective user.
    pub euid: u32,
    /// Effective group.
    pub egid: u32,
    /// Running as root: ownership is always set, its failures reported.
    pub root: bool,
    /// The process id (in temporary names).
    pub pid: u32,
}

fn command() -> Command {
    let flag = |name: &'static str, short: char, help: &'static str| {
        Arg::new(name)
            .short(short)
            .long(name)
            .action(ArgAction::SetTrue)
            .help(help)
    };
    Command::new("cp")
        .about("Copy SOURCE to DEST, or multiple SOURCE(s) to DIRECTORY.")
        .override_usage(
            "cp [OPTION]... [-T] SOURCE DEST\n       cp [OPTION]... SOURCE... DIRECTORY",
        )
        .disable_version_flag(true)
        .args_override_self(true)
        .arg(flag("archive", 'a', "same as -dR --preserve=all"))
        .arg(
            Arg::new("recursive")
                .short('r')
                .short_alias('R')
                .long("recursive")
                .action(ArgAction::SetTrue)
                .help("copy directories recursively"),
        )
        .arg(
            Arg::new("preserve")
                .short('p')
                .action(ArgAction::SetTrue)
                .help("preserve mode, ownership and timestamps"),
        )
        .arg(flag(
            "dereference",
            'L',
            "always follow symbolic links in SOURCE",
        ))
        .arg(
            Arg::new("no-dereference")
                .short('P')
                .long("no-dereference")
                .action(ArgAction::SetTrue)
                .overrides_with("dereference")
                .help("never follow symbolic links in SOURCE"),
        )
        .arg(flag(
            "no-target-directory",
            'T',
            "treat DEST as a normal file",
        ))
        .arg(
            Arg::new("files")
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(OsString))
                .num_args(0..),
        )
}

/// Runs `cp` with `argv` (its name first); the exit code.
pub fn main(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let m = match command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let invalid = match e.get(clap::error::ContextKind::InvalidArg) {
                Some(clap::error::ContextValue::String(a)) => Some(a.clone()),
                _ => None,
            };
            match invalid {
                // getopt's words for an unknown option.
                Some(a) if e.kind() == ErrorKind::UnknownArgument && a.starts_with("--") => {
                    let name = a.split('=').next().unwrap_or(&a);
                    eprintln!("cp: unrecognized option '{name}'");
                }
                Some(a) if e.kind() == ErrorKind::UnknownArgument && a.starts_with('-') => {
                    let c = a.chars().nth(1).unwrap_or('-');
                    eprintln!("cp: invalid option -- '{c}'");
                }
                _ => {
                    let text = e.to_string();
                    let first = text.lines().next().unwrap_or("invalid arguments");
                    eprintln!("cp: {}", first.trim_start_matches("error: "));
                }
            }
            eprintln!("Try 'cp --help' for more information.");
            return ExitCode::from(1);
        }
    };
    let on = |n: &str| m.get_flag(n);
    let archive = on("archive");
    let preserve = archive || on("preserve");
    let recursive = archive || on("recursive");
    // The last of -L and -P wins (clap's override); -a implies -P unless -L is given.
    let deref = on("dereference");
    let noderef = on("no-dereference") || (archive && !deref);
    let euid = ids::euid();
    let mut set = Settings {
        recursive,
        mode: preserve,
        owner: preserve,
        times: preserve,
        xattrs: archive,
        links: archive,
        follow: deref,
        follow_top: deref || (!recursive && !noderef),
        umask: ids::umask(),
        euid,
        egid: ids::egid(),
        root: euid == 0,
        pid: std::process::id(),
    };
    if noderef {
        set.follow = false;
    }
    let files: Vec<OsString> = m
        .get_many::<OsString>("files")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    let mut diag = Diag::new("cp");
    match files.len() {
        0 => {
            diag.error("missing file operand");
            eprintln!("Try 'cp --help' for more information.");
            return ExitCode::from(1);
        }
        1 => {
            diag.error(format_args!(
                "missing destination file operand after {}",
                quote(&files[0])
            ));
            eprintln!("Try 'cp --help' for more information.");
            return ExitCode::from(1);
        }
        _ => {}
    }
    let Ok(mut s) = Session::new(Backend::Direct, &Policy::trusted()) else {
        diag.error("cannot set up a session");
        return ExitCode::from(1);
    };
    let Ok(stbuf) = s.buffer(STATX_LEN) else {
        diag.error("cannot set up a session");
        return ExitCode::from(1);
    };
    let (srcs, dst) = files.split_at(files.len() - 1);
    let dst = PathBuf::from(&dst[0]);
    let dst_st = stat_at(&mut s, Fd::Cwd, dst.as_os_str(), true, stbuf);
    let dst_is_dir = matches!(dst_st, Ok(st) if st.is_dir());
    let no_target = on("no-target-directory");
    if no_target && srcs.len() > 1 {
        diag.error(format_args!("extra operand {}", quote(&files[2])));
        eprintln!("Try 'cp --help' for more information.");
        return ExitCode::from(1);
    }
    if !no_target && !dst_is_dir && srcs.len() > 1 {
        let errno = dst_st.err().unwrap_or(libc::ENOTDIR);
        diag.errno(format_args!("target {}", quote(&dst)), errno);
        return ExitCode::from(1);
    }
    let mut run = Run {
        set: &set,
        s: &mut s,
        stbuf,
        diag: &mut diag,
        links: Mutex::default(),
        late: Mutex::default(),
        failed: false,
    };
    for src in srcs {
        let src = Path::new(src);
        let target = if dst_is_dir && !no_target {
            dst.join(last_component(src))
        } else {
            dst.clone()
        };
        run.copy(src, &target);
    }
    let late = std::mem::take(&mut *run.late.lock().unwrap_or_else(|e| e.into_inner()));
    parallel::late_links(&set, late, run.diag);
    let failed = run.failed;
    drop(run);
    if diag.failed() || failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The last name of `p`, trailing slashes ignored (`a/b/` is `b`).
fn last_component(p: &Path) -> &OsStr {
    let b = p.as_os_str().as_bytes();
    let end = b.iter().rposition(|&c| c != b'/').map_or(0, |i| i + 1);
    let start = b[..end]
        .iter()
        .rposition(|&c| c == b'/')
        .map_or(0, |i| i + 1);
    OsStr::from_bytes(&b[start..end])
}

/// The directory part of `p` (`.` when it has none) and its last name.
fn split(p: &Path) -> (PathBuf, OsString) {
    let name = last_component(p).to_os_string();
    let b = p.as_os_str().as_bytes();
    let end = b.iter().rposition(|&c| c != b'/').map_or(0, |i| i + 1);
    let dir = match b[..end].iter().rposition(|&c| c == b'/') {
        Some(0) => PathBuf::from("/"),
        Some(i) => PathBuf::from(OsStr::from_bytes(&b[..i])),
        None => PathBuf::new(),
    };
    (dir, name)
}

/// The process's attributes the copy needs (ids, umask): no file work.
mod ids {
    /// The effective user id.
    pub fn euid() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    /// The effective group id.
    pub fn egid() -> u32 {
        rustix::process::getegid().as_raw()
    }

    /// The umask (read by setting it and setting it back).
    pub fn umask() -> u32 {
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        rustix::process::umask(old);
        old.as_raw_mode()
    }
}

/// One run over its sources.
struct Run<'a> {
    set: &'a Settings,
    s: &'a mut Session,
    stbuf: BufHandle,
    diag: &'a mut Diag,
    links: Mutex<HashMap<tree::Id, PathBuf>>,
    late: Mutex<Vec<parallel::Late>>,
    /// A thread reported an error (on its own diagnostics).
    failed: bool,
}

impl Run<'_> {
    /// Copies the source `src` to `dst` (its final name).
    fn copy(&mut self, src: &Path, dst: &Path) {
        let st = match stat_at(
            self.s,
            Fd::Cwd,
            src.as_os_str(),
            self.set.follow_top,
            self.stbuf,
        ) {
            Ok(st) => st,
            Err(e) => {
                self.diag
                    .errno(format_args!("cannot stat {}", quote(src)), e);
                return;
            }
        };
        let existing = stat_at(self.s, Fd::Cwd, dst.as_os_str(), true, self.stbuf).ok();
        if let Some(d) = existing
            && d.id() == st.id()
        {
            self.diag.error(format_args!(
                "{} and {} are the same file",
                quote(src),
                quote(dst)
            ));
            return;
        }
        if st.is_dir() {
            if !self.set.recursive {
                self.diag.error(format_args!(
                    "-r not specified; omitting directory {}",
                    quote(src)
                ));
                return;
            }
            self.copy_dir(src, dst, st);
            return;
        }
        if existing.is_some_and(|d| d.is_dir()) {
            self.diag.error(format_args!(
                "cannot overwrite directory {} with non-directory",
                quote(dst)
            ));
            return;
        }
        self.copy_entry(src, dst, st);
    }

    /// A source that is not a directory: a batch of one in the two parent directories.
    fn copy_entry(&mut self, src: &Path, dst: &Path, st: Stat) {
        let what = match st.kind() {
            libc::S_IFREG => What::File,
            libc::S_IFLNK => What::Symlink,
            kind => {
                let what = if kind == libc::S_IFIFO {
                    "fifo"
                } else {
                    "special file"
                };
                self.diag.errno(
                    format_args!("cannot create {what} {}", quote(dst)),
                    libc::EOPNOTSUPP,
                );
                return;
            }
        };
        let (sdir, sname) = split(src);
        let (ddir, dname) = split(dst);
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
        let dot = |p: &Path| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        };
        let open =
            |s: &mut Session, p: &Path| -> Result<(cosy_exec::session::FdHandle, i64), i32> {
                let h = s
                    .send(Call::openat(
                        Fd::Cwd,
                        dot(p),
                        OFlags::from_bits_retain(flags as u32),
                        Mode::empty(),
                    ))
                    .map_err(|_| libc::EMFILE)?;
                s.get(h)
                    .map(|fd| (h, fd))
                    .map_err(|e| e.errno().unwrap_or(libc::EIO))
            };
        let (sh, sfd) = match open(self.s, &sdir) {
            Ok(x) => x,
            Err(e) => {
                self.diag
                    .errno(format_args!("cannot stat {}", quote(src)), e);
                return;
            }
        };
        let (dh, dfd) = match open(self.s, &ddir) {
            Ok(x) => x,
            Err(e) => {
                self.diag
                    .errno(format_args!("cannot create regular file {}", quote(dst)), e);
                let _ = self.s.send(Call::close(sh));
                return;
            }
        };
        let item = Item {
            name: sname,
            to: dname,
            st,
            what,
        };
        // A source given by name is opened as it was stated (followed unless -P or -r).
        let set = Settings {
            follow: self.set.follow_top,
            ..self.set.clone()
        };
        let batch = Batch {
            set: &set,
            fds: DirFds {
                src: sfd,
                dst: dfd,
                fresh: false,
            },
            paths: DirPaths {
                src: &sdir,
                dst: &ddir,
            },
        };
        batch.copy(std::slice::from_ref(&item), self.diag);
        let _ = self.s.send(Call::close(sh));
        let _ = self.s.send(Call::close(dh));
    }

    /// Whether `dst` would be inside the directory `st` (one of its parent directories is
    /// it).
    fn inside(&mut self, dst: &Path, st: &Stat) -> bool {
        let mut p = split(dst).0;
        loop {
            let at = if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.clone()
            };
            if matches!(stat_at(self.s, Fd::Cwd, at.as_os_str(), true, self.stbuf), Ok(d) if d.id() == st.id())
            {
                return true;
            }
            if p.as_os_str().is_empty() || p == Path::new("/") {
                return false;
            }
            p = split(&p).0;
        }
    }

    /// A source directory: made (or merged into) at `dst`, then walked.
    fn copy_dir(&mut self, src: &Path, dst: &Path, st: Stat) {
        if self.inside(dst, &st) {
            self.diag.error(format_args!(
                "cannot copy a directory, {}, into itself, {}",
                quote(src),
                quote(dst)
            ));
            return;
        }
        let h = match self.s.send(Call::mkdirat(
            Fd::Cwd,
            dst,
            Mode::from_raw_mode(meta::MADE_MODE),
        )) {
            Ok(h) => h,
            Err(_) => return self.diag.errno("cannot create directory", libc::EINVAL),
        };
        let fresh = match self.s.get(h) {
            Ok(_) => true,
            Err(e) => {
                let errno = e.errno().unwrap_or(libc::EIO);
                let is_dir = errno == libc::EEXIST
                    && matches!(stat_at(self.s, Fd::Cwd, dst.as_os_str(), true, self.stbuf), Ok(d) if d.is_dir());
                if !is_dir {
                    if errno == libc::EEXIST {
                        self.diag.error(format_args!(
                            "cannot overwrite non-directory {} with directory {}",
                            quote(dst),
                            quote(src)
                        ));
                    } else {
                        self.diag.errno(
                            format_args!("cannot create directory {}", quote(dst)),
                            errno,
                        );
                    }
                    return;
                }
                false
            }
        };
        // A walk takes buffers of its session for good: each walk gets a session of its own.
        let Some((mut ws, wbuf)) = walk_session() else {
            return self.diag.error("cannot set up a session");
        };
        let handle = match open_dir(&mut ws, Fd::Cwd, dst.as_os_str()) {
            Ok(x) => x,
            Err(e) => {
                self.diag
                    .errno(format_args!("cannot create directory {}", quote(dst)), e);
                return;
            }
        };
        let dst_root = stat_at(&mut ws, Fd::Cwd, dst.as_os_str(), true, wbuf)
            .ok()
            .map(|d| d.id());
        let root = Frame {
            path: dst.to_path_buf(),
            handle: Some(handle),
            st,
            fresh,
            broken: false,
            pending: HashMap::new(),
        };
        let threads = parallel::threads();
        let split = threads > 1;
        let shared = Shared {
            set: self.set,
            links: &self.links,
            late: split.then_some(&self.late),
            dst_root,
            src_root: src.to_path_buf(),
        };
        let mut tree = walk_tree(&shared, &mut ws, wbuf, self.diag, src, root, split);
        if split {
            // The subdirectories of the root, copied by several threads (one session each).
            let mut parts: Vec<_> = tree.frames[0].pending.drain().collect();
            parts.sort_by(|a, b| a.0.cmp(&b.0));
            self.failed |= parallel::copy_parts(&shared, src, dst, parts, threads);
        }
        finish_root(&mut tree, &mut ws, src);
    }
}

/// A session for one walk, and a statx buffer in it.
pub fn walk_session() -> Option<(Session, BufHandle)> {
    let mut s = Session::new(Backend::Direct, &Policy::trusted()).ok()?;
    let b = s.buffer(STATX_LEN).ok()?;
    Some((s, b))
}

/// What the threads copying one source share.
pub struct Shared<'a> {
    /// The settings.
    pub set: &'a Settings,
    /// First copies of files with several links.
    pub links: &'a Mutex<HashMap<tree::Id, PathBuf>>,
    /// Hard links made once every thread is done (a first copy may be another thread's).
    pub late: Option<&'a Mutex<Vec<parallel::Late>>>,
    /// The destination root's identity.
    pub dst_root: Option<tree::Id>,
    /// The source root as given.
    pub src_root: PathBuf,
}

/// Walks `src` into the destination directory `root`; with `split`, the root's
/// subdirectories are made but left in its frame's `pending` for other walks. Returns the
/// tree with the root's frame still to finish.
fn walk_tree<'a>(
    sh: &'a Shared<'a>,
    s: &mut Session,
    stbuf: BufHandle,
    diag: &'a mut Diag,
    src: &Path,
    root: Frame,
    split: bool,
) -> Tree<'a> {
    let mut tree = Tree {
        sh,
        diag,
        frames: vec![root],
        stbuf,
        split,
    };
    let opts = Options {
        max_open: 8,
        follow: sh.set.follow,
    };
    walk::walk(s, src, &opts, &mut tree);
    while tree.frames.len() > 1 {
        tree.pop(s, None);
    }
    tree
}

/// Sets the metadata of the tree's root: its source opened again by the path given (the
/// walk has closed it) for its attributes.
fn finish_root(tree: &mut Tree<'_>, s: &mut Session, src: &Path) {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    let again = s
        .send(Call::openat(
            Fd::Cwd,
            src,
            OFlags::from_bits_retain(flags as u32),
            Mode::empty(),
        ))
        .ok()
        .and_then(|h| s.get(h).ok().map(|fd| (h, fd)));
    tree.pop(s, again.map(|(_, fd)| fd));
    if let Some((h, _)) = again {
        let _ = s.send(Call::close(h));
    }
}
