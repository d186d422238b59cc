//! `cosy ls`: GNU `ls` (C locale) for `-l -a -A -R -h -1 -C -i -S -t -r -d -n`, its file work
//! done through a session.
//!
//! A directory is read with getdents64; when the listing needs the files' status (`-l`, `-S`,
//! `-t`, or a type getdents64 does not give), the statx of every entry, relative to the
//! directory's descriptor and without following symbolic links, is sent in one batch before
//! the first result is looked at; the targets of the symbolic links of a long listing are
//! read by one compound per directory. `-R` walks the tree with [`crate::tools::walk`]
//! (any depth, a bounded number of open directories).
//!
//! Exit status as GNU ls: 0, 1 for a problem below the operands (a file that cannot be
//! stat'ed, a subdirectory that cannot be opened), 2 for an operand that cannot be accessed
//! or opened, and for a wrong command line.

mod args;
mod clock;
mod format;
mod human;
mod ids;
mod io;
mod names;
mod sort;

use std::ffi::{OsStr, OsString};
use std::io::{IsTerminal, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::ExitCode;

use cosy_exec::session::{BufHandle, Fd, FdHandle, Session};

use args::{Dots, Format, Options, Parsed, Sort};
use clock::{Clock, Source, Zone};
use format::{Context, File, Widths};
use ids::Names;
use io::Io;
use names::Quoting;

use crate::tools::common::{errno_text, quote};
use crate::tools::stat::Stat;
use crate::tools::walk::{self, Dir, Entry, Failed, Kind, Visitor};

/// Bytes of output gathered before they are written.
const FLUSH: usize = 256 << 10;

/// Exit status of a minor problem.
const MINOR: u8 = 1;
/// Exit status of a serious problem.
const SERIOUS: u8 = 2;

/// Runs `ls` with `argv` (its name first); the exit code.
pub fn main(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let terminal = std::io::stdout().is_terminal();
    let opts = match args::parse(argv, terminal) {
        Parsed::Run(o) => o,
        Parsed::Exit(code) => return ExitCode::from(code),
    };
    let Some(mut io) = Io::new(false) else {
        eprintln!("ls: cannot start a session");
        return ExitCode::from(SERIOUS);
    };
    let mut p = Printer::new(&opts, &mut io, terminal);
    p.run(&mut io);
    p.flush(true);
    ExitCode::from(p.status)
}

/// Everything but the session: what is printed, and how.
struct Printer<'o> {
    opts: &'o Options,
    users: Names,
    groups: Names,
    clock: Clock,
    quoting: Quoting,
    line: usize,
    out: Vec<u8>,
    status: u8,
    /// No directory heading printed yet.
    first: bool,
    /// Print `dir:` before each directory's listing.
    headings: bool,
    /// Writing standard output failed: stop.
    broken: bool,
}

fn is_dir_kind(st: &Stat) -> Kind {
    match st.kind() {
        libc::S_IFREG => Kind::File,
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        libc::S_IFIFO => Kind::Fifo,
        libc::S_IFSOCK => Kind::Socket,
        libc::S_IFCHR => Kind::Char,
        libc::S_IFBLK => Kind::Block,
        _ => Kind::Unknown,
    }
}

/// The width of the terminal: `TIOCGWINSZ`, else `COLUMNS`, else 80.
fn line_width() -> usize {
    if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stdout())
        && ws.ws_col > 0
    {
        return usize::from(ws.ws_col);
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|&c| c > 0)
        .unwrap_or(80)
}

/// `dir/name` as GNU ls names a file in its messages (`name` alone in `.`).
fn child_path(dir: &Path, name: &OsStr) -> OsString {
    let d = dir.as_os_str().as_bytes();
    if d == b"." {
        return name.to_os_string();
    }
    let mut p = d.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name.as_bytes());
    OsString::from_vec(p)
}

impl<'o> Printer<'o> {
    fn new(opts: &'o Options, io: &mut Io, terminal: bool) -> Printer<'o> {
        let long = opts.format == Format::Long;
        let (mut users, mut groups) = (Names::default(), Names::default());
        let mut zone = Zone::utc();
        if long {
            if !opts.numeric {
                users = io
                    .read_file("/etc/passwd")
                    .map(|t| Names::parse(&t))
                    .unwrap_or_default();
                groups = io
                    .read_file("/etc/group")
                    .map(|t| Names::parse(&t))
                    .unwrap_or_default();
            }
            let tz = std::env::var("TZ").ok();
            zone = match clock::source(tz.as_deref()) {
                Source::Zone(z) => z,
                Source::File(path, fallback) => io
                    .read_file(&path)
                    .and_then(|b| Zone::parse_tzif(&b))
                    .unwrap_or(fallback),
            };
        }
        Printer {
            opts,
            users,
            groups,
            clock: Clock::new(zone, clock::now()),
            quoting: if terminal {
                Quoting::ShellEscape
            } else {
                Quoting::Literal
            },
            line: if opts.format == Format::Columns {
                line_width()
            } else {
                80
            },
            out: Vec::with_capacity(FLUSH + 4096),
            status: 0,
            first: true,
            headings: true,
            broken: false,
        }
    }

    fn fail(&mut self, status: u8, message: impl std::fmt::Display) {
        self.flush(true);
        eprintln!("ls: {message}");
        self.status = self.status.max(status);
    }

    fn flush(&mut self, all: bool) {
        if self.out.is_empty() || (!all && self.out.len() < FLUSH) || self.broken {
            return;
        }
        let r = std::io::stdout().lock().write_all(&self.out);
        self.out.clear();
        if let Err(e) = r {
            self.broken = true;
            eprintln!(
                "ls: write error: {}",
                errno_text(e.raw_os_error().unwrap_or(libc::EIO))
            );
            self.status = SERIOUS;
        }
    }

    fn context(&mut self) -> Context<'_> {
        Context {
            opts: self.opts,
            users: &self.users,
            groups: &self.groups,
            clock: &mut self.clock,
            quoting: self.quoting,
            line: self.line,
        }
    }

    /// The operands: files listed first, then each directory.
    fn run(&mut self, io: &mut Io) {
        let opts = self.opts;
        let long = opts.format == Format::Long;
        let dot = [OsString::from(".")];
        let operands: &[OsString] = if opts.paths.is_empty() {
            &dot
        } else {
            &opts.paths
        };
        let mut files = Vec::new();
        if opts.paths.is_empty() && !opts.directory {
            files.push(File {
                name: ".".into(),
                kind: Kind::Dir,
                ino: 0,
                stat: None,
                link: None,
            });
        } else {
            // With -l or -d an operand that is a symbolic link is listed as itself; else a
            // link to a directory is that directory.
            let nofollow = long || opts.directory;
            let results = io.stat_all(Fd::Cwd, operands.iter().map(OsString::as_os_str), nofollow);
            let mut again = Vec::new();
            for (k, r) in results.iter().enumerate() {
                let retry = match r {
                    Err(e) => *e == libc::ENOENT || *e == libc::ELOOP,
                    Ok(s) => !s.is_dir(),
                };
                if !nofollow && retry {
                    again.push(k);
                }
            }
            let mut results = results;
            if !again.is_empty() {
                let names = again.iter().map(|&k| operands[k].as_os_str());
                let lstats = io.stat_all(Fd::Cwd, names, true);
                for (k, r) in again.into_iter().zip(lstats) {
                    results[k] = r;
                }
            }
            for (name, r) in operands.iter().zip(results) {
                match r {
                    Ok(s) => files.push(File {
                        name: name.clone(),
                        kind: is_dir_kind(&s),
                        ino: s.ino,
                        stat: Some(s),
                        link: None,
                    }),
                    Err(e) => self.fail(
                        SERIOUS,
                        format_args!("cannot access {}: {}", quote(name), errno_text(e)),
                    ),
                }
            }
            if long {
                let paths: Vec<Vec<u8>> = files
                    .iter()
                    .filter(|f| f.kind == Kind::Symlink)
                    .map(|f| f.name.as_bytes().to_vec())
                    .collect();
                self.attach_links(&mut files, paths, |f| f.name.clone());
            }
        }
        sort::sort(&mut files, opts.sort, opts.reverse);
        let (dirs, plain): (Vec<&File>, Vec<&File>) = if opts.directory {
            (Vec::new(), files.iter().collect())
        } else {
            files.iter().partition(|f| f.is_dir())
        };
        if !plain.is_empty() {
            let w = Widths::of(&files, &self.context());
            let mut out = std::mem::take(&mut self.out);
            format::listing(&plain, &w, &mut self.context(), &mut out);
            self.out = out;
            if !dirs.is_empty() {
                self.out.push(b'\n');
            }
        } else if opts.paths.len() <= 1 && dirs.len() == 1 {
            self.headings = false;
        }
        let dirs: Vec<OsString> = dirs.iter().map(|f| f.name.clone()).collect();
        for d in dirs {
            if self.broken {
                return;
            }
            if opts.recursive {
                self.walk(&d);
            } else {
                self.list_operand(io, &d);
            }
        }
    }

    /// Reads the targets of symbolic links `paths` (one per file that `which` names) and
    /// attaches them; reports those that cannot be read.
    fn attach_links(
        &mut self,
        files: &mut [File],
        paths: Vec<Vec<u8>>,
        shown: impl Fn(&File) -> OsString,
    ) {
        if paths.is_empty() {
            return;
        }
        let targets = io::read_links(&paths);
        let links = files
            .iter_mut()
            .filter(|f| f.stat.is_some_and(|s| s.is_symlink()));
        for (f, t) in links.zip(targets) {
            match t {
                Ok(t) => f.link = Some(t),
                Err(e) => {
                    let name = shown(f);
                    self.fail(
                        MINOR,
                        format_args!(
                            "cannot read symbolic link {}: {}",
                            quote(name),
                            errno_text(e)
                        ),
                    );
                }
            }
        }
    }

    /// Lists the operand directory `name` (not recursive).
    fn list_operand(&mut self, io: &mut Io, name: &OsStr) {
        let h = match io.open_dir(name) {
            Ok(h) => h,
            Err(e) => {
                return self.fail(
                    SERIOUS,
                    format_args!("cannot open directory {}: {}", quote(name), errno_text(e)),
                );
            }
        };
        let (entries, err) = io.read_dir(h);
        let path = Path::new(name);
        let stats = io_stats(io);
        self.directory(&mut io.s, stats, h, path, entries, false);
        if let Some(e) = err {
            self.fail(
                SERIOUS,
                format_args!("reading directory {}: {}", quote(name), errno_text(e)),
            );
        }
        io.close(h);
    }

    /// Lists `root` and every directory below it (`-R`), in a session of its own (the walker
    /// takes its buffers from the session's arena).
    fn walk(&mut self, root: &OsStr) {
        let Some(mut io) = Io::new(true) else {
            return self.fail(SERIOUS, "cannot start a session");
        };
        let stats = io_stats(&io);
        let mut v = Recurse { p: self, stats };
        walk::walk(
            &mut io.s,
            Path::new(root),
            &walk::Options::default(),
            &mut v,
        );
    }

    /// Prints the listing of the open directory `dir` (`path`, entries `entries`); returns
    /// its subdirectories in the order listed, if `recursive`.
    fn directory(
        &mut self,
        s: &mut Session,
        stats: BufHandle,
        dir: FdHandle,
        path: &Path,
        entries: Vec<Entry>,
        recursive: bool,
    ) -> Vec<OsString> {
        let opts = self.opts;
        if recursive || self.headings {
            if !self.first {
                self.out.push(b'\n');
            }
            self.first = false;
            self.quoting.name(path.as_os_str(), false, &mut self.out);
            self.out.extend_from_slice(b":\n");
        }
        let mut files: Vec<File> = Vec::with_capacity(entries.len() + 2);
        if opts.dots == Dots::All {
            for d in [".", ".."] {
                files.push(File {
                    name: d.into(),
                    kind: Kind::Dir,
                    ino: 0,
                    stat: None,
                    link: None,
                });
            }
        }
        for e in entries {
            if opts.dots == Dots::Hide && e.name.as_bytes().first() == Some(&b'.') {
                continue;
            }
            files.push(File {
                name: e.name,
                kind: e.kind,
                ino: e.ino,
                stat: None,
                link: None,
            });
        }
        let long = opts.format == Format::Long;
        let all = long || opts.sort != Sort::Name;
        let need: Vec<usize> = (0..files.len())
            .filter(|&k| {
                let f = &files[k];
                all || f.kind == Kind::Unknown || (opts.inode && f.ino == 0)
            })
            .collect();
        if !need.is_empty() {
            let names: Vec<&OsStr> = need.iter().map(|&k| files[k].name.as_os_str()).collect();
            let results = io::stat_dir(s, stats, dir, &names);
            for (&k, r) in need.iter().zip(results) {
                match r {
                    Ok(st) => {
                        files[k].kind = is_dir_kind(&st);
                        files[k].stat = Some(st);
                    }
                    Err(e) => {
                        let p = child_path(path, &files[k].name);
                        self.fail(
                            MINOR,
                            format_args!("cannot access {}: {}", quote(p), errno_text(e)),
                        );
                    }
                }
            }
        }
        if long {
            let links: Vec<&File> = files
                .iter()
                .filter(|f| f.stat.is_some_and(|st| st.is_symlink()))
                .collect();
            if !links.is_empty() {
                let base = match io::raw_fd(s, dir) {
                    Some(fd) => format!("/proc/self/fd/{fd}/").into_bytes(),
                    None => child_path(path, OsStr::new("")).into_vec(),
                };
                let paths = links
                    .iter()
                    .map(|f| [base.as_slice(), f.name.as_bytes()].concat())
                    .collect();
                self.attach_links(&mut files, paths, |f| child_path(path, &f.name));
            }
        }
        sort::sort(&mut files, opts.sort, opts.reverse);
        if long {
            format::total_line(&files, opts.human, &mut self.out);
        }
        let w = Widths::of(&files, &self.context());
        let shown: Vec<&File> = files.iter().collect();
        let mut out = std::mem::take(&mut self.out);
        format::listing(&shown, &w, &mut self.context(), &mut out);
        self.out = out;
        self.flush(false);
        if !recursive || self.broken {
            return Vec::new();
        }
        files
            .into_iter()
            .filter(|f| f.is_dir() && f.name != "." && f.name != "..")
            .map(|f| f.name)
            .collect()
    }
}

fn io_stats(io: &Io) -> BufHandle {
    io.stats_buffer()
}

/// The walker's visitor for `-R`: each directory listed when entered.
struct Recurse<'p, 'o> {
    p: &'p mut Printer<'o>,
    stats: BufHandle,
}

impl Visitor for Recurse<'_, '_> {
    fn enter(&mut self, s: &mut Session, dir: &Dir<'_>, entries: Vec<Entry>) -> Vec<OsString> {
        self.p
            .directory(s, self.stats, dir.handle, dir.path, entries, true)
    }

    fn error(&mut self, path: &Path, depth: usize, failed: Failed) {
        let status = if depth == 0 { SERIOUS } else { MINOR };
        let (what, e) = match failed {
            Failed::Open(e) | Failed::Reopen(e) => ("cannot open directory", e),
            Failed::Read(e) => ("reading directory", e),
        };
        self.p.fail(
            status,
            format_args!("{what} {}: {}", quote(path), errno_text(e)),
        );
    }
}
