//! Compound skeletons for recurring sequences, in cosy's text format (docs/text-format.md).
//!
//! A skeleton is a starting point that `cosy check` accepts and `cosy run` runs, to be edited:
//! the calls of the sequence translated to cosy's operations, inside
//!
//! - a map over a directory's entries (getdents64, then `map e in dirents(...)`), when the
//!   sequence starts with a call on a path and its runs follow a getdents64;
//! - a map over a list of paths, when it starts with a call on a path otherwise;
//! - a counted loop on one open file, when it works on a descriptor only.
//!
//! Descriptors flow as in the program: a call on a descriptor uses the one the last `openat`
//! of the sequence opened (a `newfstatat` then becomes `fstat`, as glibc's fstat is a
//! `newfstatat(fd, "", AT_EMPTY_PATH)`). Calls outside cosy's operation table stay comments.

use std::fmt::Write as _;

use crate::bursts::Sequence;

/// Where the skeleton's inputs point by default.
#[derive(Clone, Debug)]
pub struct Defaults {
    /// The directory of a map over entries (default `.`).
    pub dir: String,
    /// The file of a map over paths or a loop on a descriptor (default `.`).
    pub file: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            dir: ".".into(),
            file: ".".into(),
        }
    }
}

impl Defaults {
    /// Defaults taken from a traced command's arguments: the last one naming a directory, the
    /// last one naming a regular file.
    pub fn from_args<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Defaults {
        let mut d = Defaults::default();
        for a in args.iter().skip(1) {
            let a = a.as_ref();
            let Ok(meta) = std::fs::metadata(a) else {
                continue;
            };
            let Some(text) = a.to_str() else { continue };
            if meta.is_dir() {
                d.dir = text.to_string();
            } else if meta.is_file() {
                d.file = text.to_string();
            }
        }
        d
    }
}

/// Whether a call's first operand is a path (the sequence can be mapped over paths).
fn on_path(call: &str) -> bool {
    matches!(
        call,
        "openat" | "open" | "openat2" | "newfstatat" | "statx" | "stat" | "lstat"
    )
}

fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if (' '..='~').contains(&c) => q.push(c),
            c => {
                let mut b = [0; 4];
                for byte in c.encode_utf8(&mut b).bytes() {
                    let _ = write!(q, "\\x{byte:02x}");
                }
            }
        }
    }
    q.push('"');
    q
}

/// Translates the calls of `seq` to operations, one line each, on the path operand `path`
/// relative to the directory operand `dir`; `fd` is a descriptor opened outside the body.
struct Body {
    lines: Vec<String>,
    open: Vec<String>,
    opened: usize,
    reads: usize,
    last_read: Option<String>,
}

impl Body {
    fn translate(calls: &[String], dir: &str, path: &str, outer_fd: Option<&str>) -> Body {
        let mut b = Body {
            lines: Vec::new(),
            open: Vec::new(),
            opened: 0,
            reads: 0,
            last_read: None,
        };
        for call in calls {
            let fd = b.open.last().cloned().or(outer_fd.map(str::to_string));
            let line = match (call.as_str(), fd) {
                ("openat" | "open" | "openat2", _) => {
                    let name = if b.opened == 0 {
                        "f".to_string()
                    } else {
                        format!("f{}", b.opened)
                    };
                    b.opened += 1;
                    b.open.push(name.clone());
                    format!("{name} = openat {dir} {path} O_RDONLY 0")
                }
                // On a descriptor the sequence opened: glibc's fstat.
                ("newfstatat" | "statx", Some(fd)) if !b.open.is_empty() => {
                    format!("fstat {fd} st")
                }
                ("fstat", Some(fd)) => format!("fstat {fd} st"),
                ("newfstatat" | "fstat" | "statx" | "stat" | "lstat", _) => {
                    format!("statx {dir} {path} AT_SYMLINK_NOFOLLOW STATX_SIZE st")
                }
                ("read", Some(fd)) => b.read(format!("read {fd} data")),
                ("pread64", Some(fd)) => b.read(format!("pread {fd} data 0")),
                ("lseek", Some(fd)) => format!("lseek {fd} 0 SEEK_SET"),
                ("fsync", Some(fd)) => format!("fsync {fd}"),
                ("fdatasync", Some(fd)) => format!("fdatasync {fd}"),
                ("write", _) => match &b.last_read {
                    Some(r) => format!("write stdout data[0..{r}]"),
                    None => "write stdout data[0..0]".into(),
                },
                ("close", Some(_)) if !b.open.is_empty() => {
                    let fd = b.open.pop().unwrap_or_default();
                    format!("close {fd}")
                }
                ("close", _) => "# close: of a descriptor the program opened elsewhere".into(),
                ("getpid" | "getppid", _) => call.clone(),
                ("getdents64", Some(fd)) => format!("n = getdents64 {fd} ents"),
                (other @ ("read" | "pread64" | "lseek" | "fsync" | "fdatasync"), None) => {
                    format!("# {other}: of a descriptor the program opened elsewhere")
                }
                (other, _) => {
                    format!("# {other}(2) is not among cosy's calls: keep it in the program")
                }
            };
            b.lines.push(line);
        }
        // Leave nothing open.
        while let Some(fd) = b.open.pop() {
            b.lines.push(format!("close {fd}"));
        }
        b
    }

    fn read(&mut self, op: String) -> String {
        let r = if self.reads == 0 {
            "r".to_string()
        } else {
            format!("r{}", self.reads)
        };
        self.reads += 1;
        self.last_read = Some(r.clone());
        format!("{r} = {op}")
    }
}

/// The skeleton of a compound for `seq`, with inputs pointing at `defaults`.
pub fn skeleton(seq: &Sequence, defaults: &Defaults) -> String {
    let mut s = String::new();
    let arrow = seq.describe();
    let _ = writeln!(
        s,
        "# {arrow}: {} time{} in {} run{} (the longest {}), {:.3} ms;",
        seq.count,
        if seq.count == 1 { "" } else { "s" },
        seq.runs,
        if seq.runs == 1 { "" } else { "s" },
        seq.longest_run,
        seq.time_ns as f64 / 1e6
    );
    let saving = if seq.saving_ns > 0.0 {
        format!("estimated {:.3} ms here", seq.saving_ns / 1e6)
    } else {
        "no saving estimated here".into()
    };
    let _ = writeln!(
        s,
        "# a compound per run saves {} transitions ({saving}).",
        seq.transitions_saved,
    );
    let _ = writeln!(
        s,
        "# A skeleton from `cosy trace --suggest`: check the flags, the buffer sizes and what the"
    );
    let _ = writeln!(s, "# program does between the calls.");
    // A getdents64 then calls on its entries: the listing is the map's source.
    // A getdents64 then calls on its entries: the listing is the map's source, and the body
    // starts at the first call on a path (a close before it closes the directory, which the
    // skeleton does after the listing).
    let listed = seq
        .calls
        .iter()
        .position(|c| c == "getdents64")
        .and_then(|g| {
            let first = g + 1 + seq.calls[g + 1..].iter().position(|c| on_path(c))?;
            seq.calls[g + 1..first]
                .iter()
                .all(|c| c == "close" || c == "getdents64")
                .then_some(first)
        });
    let (calls, listing) = match listed {
        Some(first) => (&seq.calls[first..], true),
        None => (&seq.calls[..], seq.after_listing),
    };
    let first_on_path = calls.first().is_some_and(|c| on_path(c));
    let indent =
        |lines: &[String]| -> String { lines.iter().map(|l| format!("    {l}\n")).collect() };
    if first_on_path && listing {
        let body = Body::translate(calls, "d", "e", None);
        let _ = write!(
            s,
            "input path dir = {}\n\
             buffer ents 65536\n\
             buffer data 65536 local\n\
             buffer st 256 local\n\
             d = openat cwd $dir O_RDONLY|O_DIRECTORY 0\n\
             files = 0\n\
             more:\n\
             n = getdents64 d ents\n\
             if n == 0 goto done\n\
             map e in dirents(ents[0..n]) {{\n    \
                 if e.type != DT_REG goto next\n\
             {}    files = files + 1\n\
             next:\n\
             }}\n\
             goto more bound 1000000\n\
             done:\n\
             close d\n\
             output files\n",
            quote(&defaults.dir),
            indent(&body.lines),
        );
    } else if first_on_path {
        let body = Body::translate(calls, "cwd", "p", None);
        let _ = write!(
            s,
            "input path file = {}\n\
             buffer data 65536 local\n\
             buffer st 256 local\n\
             files = 0\n\
             map p in paths($file) {{\n\
             {}    files = files + 1\n\
             }}\n\
             output files\n",
            quote(&defaults.file),
            indent(&body.lines),
        );
    } else {
        let body = Body::translate(calls, "cwd", "$file", Some("g"));
        let turns = seq.longest_run.max(1);
        let _ = write!(
            s,
            "input path file = {}\n\
             buffer ents 65536\n\
             buffer data 65536\n\
             buffer st 256\n\
             g = openat cwd $file O_RDONLY 0\n\
             i = 0\n\
             again:\n\
             {}    i = i + 1\n\
             if i < {turns} goto again bound {turns}\n\
             close g\n\
             output i\n",
            quote(&defaults.file),
            indent(&body.lines),
        );
    }
    s
}
