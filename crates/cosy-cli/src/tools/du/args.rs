//! du's command line, in GNU du's conventions: combined short flags, `--`, and the unit
//! flags (`-b`, `-h`, `-k`, `-m`, `--si`) and link flags (`-P`, `-L`, `-H`) decided by the
//! last one given, as du's option loop decides them.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, ArgMatches, Command};

use super::size::Units;

/// Which symbolic links are followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deref {
    /// None (`-P`, the default).
    None,
    /// Those given as arguments only (`-H`, `-D`).
    Args,
    /// Every one (`-L`).
    All,
}

/// What to measure and how to print it.
#[derive(Clone, Debug)]
pub struct Opts {
    /// `-a`: files too, not only directories.
    pub all: bool,
    /// `--apparent-size` (or `-b`): sizes, not blocks allocated.
    pub apparent: bool,
    /// How sizes are printed.
    pub units: Units,
    /// `-d N` (`-s`: 0): the deepest level printed.
    pub max_depth: usize,
    /// `-c`: a grand total.
    pub total: bool,
    /// `-P`, `-H`, `-L`.
    pub deref: Deref,
    /// `-x`: skip what is on another file system than its argument.
    pub one_fs: bool,
    /// `-0`: lines end with NUL, not newline.
    pub null: bool,
    /// The paths (`.` when none).
    pub paths: Vec<OsString>,
}

/// What parsing the command line ended with when it is not a run.
pub enum Exit {
    /// `--help`, `--version`: printed, exit 0.
    Done,
    /// A usage error, printed in du's words: exit 1.
    Usage,
}

fn flag(name: &'static str, short: Option<char>, long: &'static str, help: &'static str) -> Arg {
    let mut a = Arg::new(name).action(ArgAction::Count).help(help);
    if !long.is_empty() {
        a = a.long(long);
    }
    match short {
        Some(c) => a.short(c),
        None => a,
    }
}

fn command() -> Command {
    Command::new("du")
        .about("Summarize device usage of the set of FILEs, recursively for directories.")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_flag(true)
        .arg(
            Arg::new("help")
                .long("help")
                .action(ArgAction::Help)
                .help("display this help and exit"),
        )
        .arg(flag(
            "null",
            Some('0'),
            "null",
            "end each output line with NUL, not newline",
        ))
        .arg(flag(
            "all",
            Some('a'),
            "all",
            "write counts for all files, not just directories",
        ))
        .arg(flag(
            "apparent",
            None,
            "apparent-size",
            "print apparent sizes rather than device usage",
        ))
        .arg(flag(
            "bytes",
            Some('b'),
            "bytes",
            "equivalent to '--apparent-size --block-size=1'",
        ))
        .arg(flag("total", Some('c'), "total", "produce a grand total"))
        .arg(flag(
            "deref-args",
            Some('D'),
            "dereference-args",
            "dereference only symlinks that are listed on the command line",
        ))
        .arg(flag(
            "H",
            Some('H'),
            "",
            "equivalent to --dereference-args (-D)",
        ))
        .arg(
            Arg::new("max-depth")
                .short('d')
                .long("max-depth")
                .value_name("N")
                .action(ArgAction::Append)
                .help("print the total for a directory only if it is N or fewer levels below"),
        )
        .arg(flag(
            "human",
            Some('h'),
            "human-readable",
            "print sizes in powers of 1024 (e.g., 1023M)",
        ))
        .arg(flag(
            "si",
            None,
            "si",
            "like -h, but use powers of 1000 not 1024",
        ))
        .arg(flag("k", Some('k'), "", "like --block-size=1K"))
        .arg(flag("m", Some('m'), "", "like --block-size=1M"))
        .arg(flag(
            "deref",
            Some('L'),
            "dereference",
            "dereference all symbolic links",
        ))
        .arg(flag(
            "no-deref",
            Some('P'),
            "no-dereference",
            "don't follow any symbolic links (default)",
        ))
        .arg(flag(
            "summarize",
            Some('s'),
            "summarize",
            "display only a total for each argument",
        ))
        .arg(flag(
            "one-fs",
            Some('x'),
            "one-file-system",
            "skip directories on different file systems",
        ))
        .arg(
            Arg::new("paths")
                .value_name("FILE")
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(OsString)),
        )
}

/// Where the last of the flags `names` is on the command line, if any is.
fn last_of<'a>(m: &ArgMatches, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .filter_map(|n| {
            let i = m.indices_of(n)?.max()?;
            (m.get_count(n) > 0).then_some((i, *n))
        })
        .max()
        .map(|(_, n)| n)
}

fn usage(message: impl std::fmt::Display) -> Exit {
    eprintln!("du: {message}");
    eprintln!("Try 'du --help' for more information.");
    Exit::Usage
}

/// Parses du's command line (its name first).
pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Opts, Exit> {
    let m = match command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => return Err(clap_error(e)),
    };
    let count = |n: &str| m.get_count(n) > 0;
    let units = match last_of(&m, &["bytes", "human", "si", "k", "m"]) {
        Some("bytes") => Units::Blocks(1),
        Some("human") => Units::Human,
        Some("si") => Units::Si,
        Some("m") => Units::Blocks(1 << 20),
        _ => Units::Blocks(1024),
    };
    let deref = match last_of(&m, &["deref", "no-deref", "deref-args", "H"]) {
        Some("deref") => Deref::All,
        Some("deref-args") | Some("H") => Deref::Args,
        _ => Deref::None,
    };
    let mut max_depth = None;
    if let Some(vals) = m.get_many::<String>("max-depth") {
        for v in vals {
            match v.parse::<usize>() {
                Ok(n) => max_depth = Some(n),
                Err(_) => {
                    return Err(usage(format_args!(
                        "invalid maximum depth {}",
                        super::super::common::quote(v)
                    )));
                }
            }
        }
    }
    let summarize = count("summarize");
    let all = count("all");
    if summarize && all {
        return Err(usage("cannot both summarize and show all entries"));
    }
    if summarize {
        if let Some(d) = max_depth.filter(|&d| d != 0) {
            return Err(usage(format_args!(
                "warning: summarizing conflicts with --max-depth={d}"
            )));
        }
        max_depth = Some(0);
    }
    let mut paths: Vec<OsString> = m
        .get_many::<OsString>("paths")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    if paths.is_empty() {
        paths.push(".".into());
    }
    Ok(Opts {
        all,
        apparent: count("apparent") || count("bytes"),
        units,
        max_depth: max_depth.unwrap_or(usize::MAX),
        total: count("total"),
        deref,
        one_fs: count("one-fs"),
        null: count("null"),
        paths,
    })
}

/// A clap error in du's words (`du: invalid option -- 'q'`), or clap's help and version.
fn clap_error(e: clap::Error) -> Exit {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            Exit::Done
        }
        ErrorKind::UnknownArgument => {
            let arg = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            match arg.strip_prefix("--") {
                Some(_) => usage(format_args!("unrecognized option '{arg}'")),
                None => {
                    let c = arg.trim_start_matches('-');
                    usage(format_args!("invalid option -- '{c}'"))
                }
            }
        }
        ErrorKind::InvalidValue | ErrorKind::NoEquals => {
            let arg = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            match arg.strip_prefix("--") {
                Some(_) => usage(format_args!("option '{arg}' requires an argument")),
                None => usage(format_args!(
                    "option requires an argument -- '{}'",
                    arg.trim_start_matches('-')
                )),
            }
        }
        _ => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            usage(first)
        }
    }
}
