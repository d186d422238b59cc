//! The command line of `ls`, in GNU's conventions: combined short flags, `--`, and the flags
//! that choose one of several things (format, sort key, which dot files) deciding by the last
//! one given, as GNU ls does (`ls -l1` lists one name per line, `ls -1l` long).

use std::ffi::OsString;

use clap::{Arg, ArgAction, ArgMatches, Command};

/// How entries are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `-l`: one line of details per entry.
    Long,
    /// `-1`: one name per line (the default when standard output is not a terminal).
    OnePerLine,
    /// `-C`: names in columns (the default on a terminal).
    Columns,
}

/// The sort key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    /// By name, in byte order (the C locale).
    Name,
    /// `-S`: largest first.
    Size,
    /// `-t`: newest modification first.
    Time,
}

/// Which names starting with `.` are listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dots {
    /// None (the default).
    Hide,
    /// `-A`: all but `.` and `..`.
    AlmostAll,
    /// `-a`: all, `.` and `..` too.
    All,
}

/// What the command line asks for.
#[derive(Clone, Debug)]
pub struct Options {
    /// The output format.
    pub format: Format,
    /// Which dot files.
    pub dots: Dots,
    /// `-R`.
    pub recursive: bool,
    /// `-h`: sizes in powers of 1024 with a suffix.
    pub human: bool,
    /// `-i`.
    pub inode: bool,
    /// The sort key.
    pub sort: Sort,
    /// `-r`.
    pub reverse: bool,
    /// `-d`: directories listed as themselves.
    pub directory: bool,
    /// `-n`: numeric owners and groups.
    pub numeric: bool,
    /// The operands (empty: `.`).
    pub paths: Vec<OsString>,
}

/// What parsing the command line gives: options, or the exit code after `--help` or an
/// error (already printed).
pub enum Parsed {
    /// Run with these options.
    Run(Box<Options>),
    /// Exit at once with this code.
    Exit(u8),
}

fn command() -> Command {
    let flag = |id: &'static str, short: char, long: Option<&'static str>, help: &'static str| {
        let a = Arg::new(id)
            .short(short)
            .action(ArgAction::Count)
            .help(help);
        match long {
            Some(l) => a.long(l),
            None => a,
        }
    };
    Command::new("ls")
        .about("List information about the FILEs (the current directory by default).")
        .override_usage("ls [OPTION]... [FILE]...")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args([
            flag(
                "all",
                'a',
                Some("all"),
                "do not ignore entries starting with .",
            ),
            flag(
                "almost-all",
                'A',
                Some("almost-all"),
                "do not list implied . and ..",
            ),
            flag(
                "directory",
                'd',
                Some("directory"),
                "list directories themselves, not their contents",
            ),
            flag(
                "human-readable",
                'h',
                Some("human-readable"),
                "with -l, print sizes like 1K 234M 2G etc.",
            ),
            flag(
                "inode",
                'i',
                Some("inode"),
                "print the index number of each file",
            ),
            flag("long", 'l', None, "use a long listing format"),
            flag(
                "numeric-uid-gid",
                'n',
                Some("numeric-uid-gid"),
                "like -l, but list numeric user and group IDs",
            ),
            flag(
                "reverse",
                'r',
                Some("reverse"),
                "reverse order while sorting",
            ),
            flag(
                "recursive",
                'R',
                Some("recursive"),
                "list subdirectories recursively",
            ),
            flag("size-sort", 'S', None, "sort by file size, largest first"),
            flag("time-sort", 't', None, "sort by time, newest first"),
            flag("columns", 'C', None, "list entries by columns"),
            flag("one", '1', None, "list one file per line"),
            Arg::new("help")
                .long("help")
                .action(ArgAction::Help)
                .help("display this help and exit"),
            Arg::new("paths")
                .value_name("FILE")
                .num_args(0..)
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(OsString)),
        ])
}

/// The position of the last occurrence of flag `id`, if it was given.
fn last(m: &ArgMatches, id: &str) -> Option<usize> {
    if m.get_count(id) == 0 {
        return None;
    }
    m.indices_of(id).and_then(|i| i.max())
}

/// Of the flags `ids`, the one given last (its place in `ids`).
fn last_of(m: &ArgMatches, ids: &[&str]) -> Option<usize> {
    ids.iter()
        .enumerate()
        .filter_map(|(k, id)| last(m, id).map(|at| (at, k)))
        .max()
        .map(|(_, k)| k)
}

/// Parses `argv` (the tool's name first). `terminal`: whether standard output is a terminal
/// (the default format).
pub fn parse(argv: impl IntoIterator<Item = OsString>, terminal: bool) -> Parsed {
    let m = match command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => {
            let help = matches!(e.kind(), clap::error::ErrorKind::DisplayHelp);
            let _ = e.print();
            return Parsed::Exit(if help { 0 } else { 2 });
        }
    };
    let set = |id: &str| m.get_count(id) > 0;
    // Every format flag in command-line order: `-1` has no effect after `-l` (GNU).
    let mut given: Vec<(usize, Format)> = Vec::new();
    for (id, f) in [
        ("long", Format::Long),
        ("numeric-uid-gid", Format::Long),
        ("one", Format::OnePerLine),
        ("columns", Format::Columns),
    ] {
        if m.get_count(id) > 0 {
            given.extend(m.indices_of(id).into_iter().flatten().map(|i| (i, f)));
        }
    }
    given.sort_by_key(|g| g.0);
    let format = given
        .into_iter()
        .fold(None, |now, (_, f)| match (now, f) {
            (Some(Format::Long), Format::OnePerLine) => now,
            _ => Some(f),
        })
        .unwrap_or(if terminal {
            Format::Columns
        } else {
            Format::OnePerLine
        });
    let dots = match last_of(&m, &["all", "almost-all"]) {
        Some(0) => Dots::All,
        Some(_) => Dots::AlmostAll,
        None => Dots::Hide,
    };
    let sort = match last_of(&m, &["size-sort", "time-sort"]) {
        Some(0) => Sort::Size,
        Some(_) => Sort::Time,
        None => Sort::Name,
    };
    let paths = m
        .get_many::<OsString>("paths")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    Parsed::Run(Box::new(Options {
        format,
        dots,
        recursive: set("recursive"),
        human: set("human-readable"),
        inode: set("inode"),
        sort,
        reverse: set("reverse"),
        directory: set("directory"),
        numeric: set("numeric-uid-gid"),
        paths,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        let argv = std::iter::once("ls")
            .chain(args.iter().copied())
            .map(OsString::from);
        match parse(argv, false) {
            Parsed::Run(o) => *o,
            Parsed::Exit(c) => panic!("exit {c}"),
        }
    }

    #[test]
    fn the_last_of_competing_flags_wins() {
        assert_eq!(opts(&["-l1"]).format, Format::Long);
        assert_eq!(opts(&["-lC"]).format, Format::Columns);
        assert_eq!(opts(&["-C1"]).format, Format::OnePerLine);
        assert_eq!(opts(&["-1l"]).format, Format::Long);
        assert_eq!(opts(&["-n"]).format, Format::Long);
        assert_eq!(opts(&[]).format, Format::OnePerLine);
        assert_eq!(opts(&["-aA"]).dots, Dots::AlmostAll);
        assert_eq!(opts(&["-A", "-a"]).dots, Dots::All);
        assert_eq!(opts(&["-tS"]).sort, Sort::Size);
        assert_eq!(opts(&["-St"]).sort, Sort::Time);
        let o = opts(&["-lhR", "--", "-x", "y"]);
        assert!(o.human && o.recursive);
        assert_eq!(o.paths, [OsString::from("-x"), OsString::from("y")]);
    }
}
