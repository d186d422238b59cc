//! What every tool shares: names quoted as GNU coreutils quotes them in messages, errno text,
//! diagnostics that remember the exit status, and a progress spinner on long runs.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// `name` as GNU coreutils quotes a file name in a message (`quoteaf`: the
/// `shell-escape-always` style of `ls --quoting-style`, C locale): `'a b'`, `"it's"`,
/// `'a'$'\n''b'`. A name with a single quote and nothing the shell treats specially inside
/// double quotes is double-quoted; bytes that are not printable ASCII are escaped as `$'…'`.
pub fn quote(name: impl AsRef<OsStr>) -> String {
    let b = name.as_ref().as_bytes();
    let printable = |c: u8| (0x20..0x7f).contains(&c);
    let has_quote = b.contains(&b'\'');
    let double_ok = b
        .iter()
        .all(|&c| printable(c) && !matches!(c, b'"' | b'$' | b'`' | b'\\' | b'!'));
    if has_quote && double_ok {
        let mut s = String::with_capacity(b.len() + 2);
        s.push('"');
        s.extend(b.iter().map(|&c| c as char));
        s.push('"');
        return s;
    }
    let mut s = String::with_capacity(b.len() + 2);
    s.push('\'');
    // Inside `$'…'` after an escaped byte: the next plain byte closes it and reopens `'`.
    let mut in_escape = false;
    for &c in b {
        if printable(c) {
            if in_escape {
                s.push_str("''");
                in_escape = false;
            }
            if c == b'\'' {
                s.push_str("'\\''");
            } else {
                s.push(c as char);
            }
            continue;
        }
        if !in_escape {
            s.push_str("'$'");
            in_escape = true;
        }
        match c {
            0x07 => s.push_str("\\a"),
            0x08 => s.push_str("\\b"),
            0x0c => s.push_str("\\f"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x0b => s.push_str("\\v"),
            _ => s.push_str(&format!("\\{c:03o}")),
        }
    }
    s.push('\'');
    s
}

/// The text of errno `e` as strerror(3) gives it in the C locale (`Permission denied`).
pub fn errno_text(e: i32) -> String {
    let text = std::io::Error::from_raw_os_error(e).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A tool's diagnostics: `tool: message` on standard error, and whether any was an error
/// (the tool then exits with its failure status).
pub struct Diag {
    tool: &'static str,
    failed: bool,
}

impl Diag {
    /// Diagnostics of `tool` (its name starts every message).
    pub fn new(tool: &'static str) -> Self {
        Diag {
            tool,
            failed: false,
        }
    }

    /// Reports an error and remembers it: `tool: message`.
    pub fn error(&mut self, message: impl std::fmt::Display) {
        eprintln!("{}: {message}", self.tool);
        self.failed = true;
    }

    /// Reports `what` failing with errno `e`: `tool: what: Permission denied`.
    pub fn errno(&mut self, what: impl std::fmt::Display, e: i32) {
        self.error(format_args!("{what}: {}", errno_text(e)));
    }

    /// Whether an error was reported.
    pub fn failed(&self) -> bool {
        self.failed
    }
}

/// The run's progress: the directory entries every walk of the process has read, shown as a
/// spinner on standard error only when it is a terminal and the run has lasted a second
/// (short runs and redirected runs print nothing). One for the whole process, so that walks
/// on several threads make one line.
mod progress {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    static SEEN: AtomicU64 = AtomicU64::new(0);
    static ON: AtomicBool = AtomicBool::new(false);
    static STARTED: OnceLock<Instant> = OnceLock::new();
    static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

    /// Entries between two looks at the clock.
    const EVERY: u64 = 4096;

    /// Starts counting (a tool's start).
    pub fn start() {
        use std::io::IsTerminal;
        STARTED.get_or_init(Instant::now);
        ON.store(std::io::stderr().is_terminal(), Ordering::Relaxed);
    }

    /// Counts `n` more entries read.
    pub fn add(n: u64) {
        let before = SEEN.fetch_add(n, Ordering::Relaxed);
        if !ON.load(Ordering::Relaxed) || before / EVERY == (before + n) / EVERY {
            return;
        }
        let Some(t) = STARTED.get() else { return };
        if t.elapsed() < Duration::from_secs(1) {
            return;
        }
        let Ok(mut bar) = BAR.lock() else { return };
        let b = bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::new_spinner().with_elapsed(t.elapsed());
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {pos} entries {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        b.set_position(before + n);
    }

    /// Clears the spinner (a tool's end).
    pub fn end() {
        if let Ok(mut bar) = BAR.lock()
            && let Some(b) = bar.take()
        {
            b.finish_and_clear();
        }
    }
}

pub use progress::{add as progress, end as progress_end, start as progress_start};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_as_coreutils_quotes_them() {
        assert_eq!(quote("x"), "'x'");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "\"it's\"");
        assert_eq!(quote("it's $x"), "'it'\\''s $x'");
        assert_eq!(quote("a\nb"), "'a'$'\\n''b'");
        assert_eq!(quote(OsStr::from_bytes(b"\xff")), "''$'\\377'");
    }

    #[test]
    fn quoting_matches_ls_when_ls_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let names: &[&[u8]] = &[
            b"plain", b"a b", b"it's", b"it's $x", b"a\nb", b"\xffz", b"-x", b"tab\tq'", b"\"q\"",
        ];
        for n in names {
            std::fs::write(dir.path().join(OsStr::from_bytes(n)), b"").unwrap();
        }
        let Ok(out) = std::process::Command::new("ls")
            .args(["--quoting-style=shell-escape-always", "-1"])
            .current_dir(dir.path())
            .env("LC_ALL", "C")
            .output()
        else {
            eprintln!("ls missing, skipping the comparison with it");
            return;
        };
        let listed: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
        let mut ours: Vec<String> = names.iter().map(|n| quote(OsStr::from_bytes(n))).collect();
        let mut theirs: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs);
    }
}
