//! Real tools as variants (`rg`, GNU `grep`, `du`, `ls`, `cp`): run as a child process, their
//! output parsed into an [`Answer`]. A tool that is not installed is skipped with a note.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::framework::{Answer, Entry, Variant, VariantError};

/// The full path of `program` found in `$PATH` or in the peers' directory that
/// `scripts/peers.sh` installs into (`$COSY_PEERS/bin`, default `~/.cache/cosy-peers/bin`), if
/// it is installed.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let peers = std::env::var_os("COSY_PEERS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/cosy-peers")))
        .map(|p| p.join("bin"));
    std::env::split_paths(&path)
        .chain(peers)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Parses a tool's standard output into an answer.
pub type Parse = fn(&str) -> Result<Answer, String>;

/// A tool run as a child process.
pub struct Tool {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    parse: Parse,
    ok_codes: Vec<i32>,
}

impl Variant for Tool {
    fn name(&self) -> &str {
        &self.name
    }

    /// A tool's failure (another version, other options) skips it.
    fn lenient(&self) -> bool {
        true
    }

    fn run(&mut self) -> Result<Answer, VariantError> {
        let out = Command::new(&self.program)
            .args(&self.args)
            .env("LC_ALL", "C")
            .output()
            .map_err(|e| VariantError::Fail(format!("cannot run {}: {e}", self.name)))?;
        let code = out.status.code().unwrap_or(-1);
        if !self.ok_codes.contains(&code) {
            return Err(VariantError::Fail(format!(
                "{} exited with {}: {}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        (self.parse)(&String::from_utf8_lossy(&out.stdout)).map_err(VariantError::Fail)
    }
}

/// The variant `name` running `program args…` (exit status 0 expected), or a skipped slot if
/// `program` is not installed.
pub fn tool(name: &str, program: &str, args: &[&dyn AsRefOs], parse: Parse) -> Entry {
    tool_with_codes(name, program, args, parse, &[0])
}

/// Like [`tool`], accepting the exit statuses `ok_codes` (grep exits 1 when nothing matched).
pub fn tool_with_codes(
    name: &str,
    program: &str,
    args: &[&dyn AsRefOs],
    parse: Parse,
    ok_codes: &[i32],
) -> Entry {
    match find_program(program) {
        None => Entry::Skipped {
            name: name.to_string(),
            reason: format!("`{program}` is not installed"),
        },
        Some(p) => Entry::Ready(Box::new(Tool {
            name: name.to_string(),
            program: p,
            args: args.iter().map(|a| a.os()).collect(),
            parse,
            ok_codes: ok_codes.to_vec(),
        })),
    }
}

/// An argument of a tool: a string or a path.
pub trait AsRefOs {
    /// The argument as an `OsString`.
    fn os(&self) -> OsString;
}

impl AsRefOs for &str {
    fn os(&self) -> OsString {
        (*self).into()
    }
}

impl AsRefOs for &Path {
    fn os(&self) -> OsString {
        self.as_os_str().to_owned()
    }
}

impl AsRefOs for PathBuf {
    fn os(&self) -> OsString {
        self.as_os_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::answer;

    #[test]
    fn a_missing_tool_is_skipped_with_a_note() {
        let e = tool("nope", "cosy-no-such-tool", &[], |_| Ok(Answer::new()));
        match e {
            Entry::Skipped { reason, .. } => assert!(reason.contains("not installed")),
            Entry::Ready(_) => panic!("found a tool that does not exist"),
        }
    }

    #[test]
    fn an_installed_tool_runs_and_is_parsed() {
        let Entry::Ready(mut v) = tool("echo", "echo", &[&"42"], |s| {
            s.trim()
                .parse()
                .map(|n| answer(&[("n", n)]))
                .map_err(|e| e.to_string())
        }) else {
            eprintln!("skipping: no echo");
            return;
        };
        assert_eq!(v.run().unwrap(), answer(&[("n", 42)]));
    }
}
