//! Names as `ls` prints them: raw bytes to a file or a pipe; on a terminal, GNU's
//! `shell-escape` style (quoted only when the shell would need it), with the unquoted names
//! of a listing that has quoted ones shifted by a space so that they line up.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::tools::common::quote;

/// How names are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quoting {
    /// As they are (standard output is not a terminal).
    Literal,
    /// `shell-escape` (standard output is a terminal).
    ShellEscape,
}

impl Quoting {
    /// Whether `name` is printed in quotes.
    pub fn needs_quotes(self, name: &OsStr) -> bool {
        self == Quoting::ShellEscape && shell_special(name.as_bytes())
    }

    /// Appends `name`; `align`: some name of the listing is quoted.
    pub fn name(self, name: &OsStr, align: bool, out: &mut Vec<u8>) {
        match self {
            Quoting::Literal => out.extend_from_slice(name.as_bytes()),
            Quoting::ShellEscape if shell_special(name.as_bytes()) => {
                out.extend_from_slice(quote(name).as_bytes())
            }
            Quoting::ShellEscape => {
                if align {
                    out.push(b' ');
                }
                out.extend_from_slice(name.as_bytes());
            }
        }
    }
}

/// Whether the shell would need `b` quoted (gnulib quotearg's shell style).
fn shell_special(b: &[u8]) -> bool {
    if b.is_empty() {
        return true;
    }
    if matches!(b[0], b'#' | b'~') {
        return true;
    }
    if b == b"{" || b == b"}" {
        return true;
    }
    b.iter().any(|&c| {
        !(0x20..0x7f).contains(&c)
            || matches!(
                c,
                b' ' | b'!'
                    | b'"'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b';'
                    | b'<'
                    | b'='
                    | b'>'
                    | b'?'
                    | b'['
                    | b'\\'
                    | b'^'
                    | b'`'
                    | b'|'
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_the_shell_needs_quoted_are_quoted() {
        let q = Quoting::ShellEscape;
        let show = |n: &[u8], align| {
            let mut out = Vec::new();
            q.name(OsStr::from_bytes(n), align, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(show(b"plain", false), "plain");
        assert_eq!(show(b"plain", true), " plain");
        assert_eq!(show(b"a b", true), "'a b'");
        assert_eq!(show(b"a\nb", false), "'a'$'\\n''b'");
        assert_eq!(show(b"-x", false), "-x");
        let mut raw = Vec::new();
        Quoting::Literal.name(OsStr::from_bytes(b"a\nb"), true, &mut raw);
        assert_eq!(raw, b"a\nb");
    }
}
