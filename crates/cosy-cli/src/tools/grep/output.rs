//! What one file's search prints, as ripgrep prints it (`--no-heading --color never`).

use memchr::{memchr, memchr_iter};

use super::args::Mode;
use super::binary::{BUFFER, searched_before};
use super::matcher::Matcher;

/// How the output is shaped.
#[derive(Clone, Copy, Debug)]
pub struct Format {
    /// What to print.
    pub mode: Mode,
    /// Select the lines that do not match (`-v`).
    pub invert: bool,
    /// Line numbers (`-n`).
    pub line_number: bool,
    /// File names (not `-h`).
    pub with_filename: bool,
}

/// How a file's NUL bytes are treated, as ripgrep treats them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// A file found in a directory: the search quits at the read holding a NUL byte.
    Quit,
    /// A file given on the command line, searched whole (ripgrep maps a few given files
    /// into memory): a NUL byte in the first 64 KiB or in a matching line ends the search at
    /// that match.
    Whole,
    /// Standard input, or one of many given files (read through ripgrep's line buffer):
    /// NUL bytes end lines, and a match in or after the read holding the first one ends
    /// the search.
    Convert,
}

/// Appends to `out` what the search of `data` (the file `path`) prints; whether it counts as
/// a match for the exit status.
pub fn search(
    m: &Matcher,
    f: &Format,
    binary: Binary,
    path: &[u8],
    data: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    let nul = memchr(0, data);
    match (binary, nul) {
        (_, None) => plain(m, f, path, data, out),
        (Binary::Quit, Some(p)) => {
            let upto = searched_before(data, p);
            match f.mode {
                // ripgrep's counts and names do not report a binary file, unless a name was
                // found before the NUL byte.
                Mode::Count => false,
                Mode::FilesWith => plain(m, f, path, &data[..upto], out),
                Mode::FilesWithout => {
                    let mut any = false;
                    m.selected_lines(&data[..upto], f.invert, |_, _| {
                        any = true;
                        false
                    });
                    !any
                }
                Mode::Lines => {
                    let n = lines(m, f, path, &data[..upto], usize::MAX, out);
                    if n > 0 {
                        prefix(f, path, out);
                        out.extend_from_slice(
                            format!(
                                "WARNING: stopped searching binary file after match (found \
                                 \"\\0\" byte around offset {p})\n"
                            )
                            .as_bytes(),
                        );
                    }
                    n > 0
                }
            }
        }
        (Binary::Whole, Some(p)) => {
            if f.mode != Mode::Lines {
                return plain(m, f, path, data, out);
            }
            let early = (p < BUFFER.min(data.len())).then_some(p);
            let mut found = early;
            let mut n = 0u64;
            let mut line_no = Lines::default();
            let mut body = Vec::new();
            m.selected_lines(data, f.invert, |s, e| {
                n += 1;
                if found.is_some() {
                    return false;
                }
                if let Some(i) = memchr(0, &data[s..e]) {
                    found = Some(s + i);
                    return false;
                }
                line(f, path, data, s, e, &mut line_no, &mut body);
                true
            });
            out.extend_from_slice(&body);
            if let (Some(off), true) = (found, n > 0) {
                binary_message(f, path, off, out);
            }
            n > 0
        }
        (Binary::Convert, Some(p)) => {
            let conv: Vec<u8> = data
                .iter()
                .map(|&b| if b == 0 { b'\n' } else { b })
                .collect();
            if f.mode != Mode::Lines {
                return plain(m, f, path, &conv, out);
            }
            let upto = searched_before(&conv, p);
            let mut n = lines(m, f, path, &conv[..upto], usize::MAX, out) as u64;
            let mut more = false;
            m.selected_lines(&conv[upto..], f.invert, |_, _| {
                more = true;
                false
            });
            n += u64::from(more);
            if n > 0 {
                binary_message(f, path, p, out);
            }
            n > 0
        }
    }
}

fn binary_message(f: &Format, path: &[u8], off: usize, out: &mut Vec<u8>) {
    prefix(f, path, out);
    out.extend_from_slice(
        format!("binary file matches (found \"\\0\" byte around offset {off})\n").as_bytes(),
    );
}

fn prefix(f: &Format, path: &[u8], out: &mut Vec<u8>) {
    if f.with_filename {
        out.extend_from_slice(path);
        out.extend_from_slice(b": ");
    }
}

/// The search of a text (no NUL byte to care about) in every mode.
fn plain(m: &Matcher, f: &Format, path: &[u8], data: &[u8], out: &mut Vec<u8>) -> bool {
    match f.mode {
        Mode::Lines => lines(m, f, path, data, usize::MAX, out) > 0,
        Mode::Count => {
            let mut n = 0u64;
            m.selected_lines(data, f.invert, |_, _| {
                n += 1;
                true
            });
            if n > 0 {
                if f.with_filename {
                    out.extend_from_slice(path);
                    out.push(b':');
                }
                out.extend_from_slice(n.to_string().as_bytes());
                out.push(b'\n');
            }
            n > 0
        }
        Mode::FilesWith | Mode::FilesWithout => {
            let mut any = false;
            m.selected_lines(data, f.invert, |_, _| {
                any = true;
                false
            });
            let print = any == (f.mode == Mode::FilesWith);
            if print {
                out.extend_from_slice(path);
                out.push(b'\n');
            }
            print
        }
    }
}

/// Line numbers counted as far as needed.
#[derive(Default)]
struct Lines {
    number: u64,
    counted: usize,
}

/// Prints up to `max` selected lines; how many.
fn lines(
    m: &Matcher,
    f: &Format,
    path: &[u8],
    data: &[u8],
    max: usize,
    out: &mut Vec<u8>,
) -> usize {
    let mut n = 0;
    let mut ln = Lines::default();
    m.selected_lines(data, f.invert, |s, e| {
        line(f, path, data, s, e, &mut ln, out);
        n += 1;
        n < max
    });
    n
}

fn line(
    f: &Format,
    path: &[u8],
    data: &[u8],
    s: usize,
    e: usize,
    ln: &mut Lines,
    out: &mut Vec<u8>,
) {
    if f.with_filename {
        out.extend_from_slice(path);
        out.push(b':');
    }
    if f.line_number {
        ln.number += memchr_iter(b'\n', &data[ln.counted..s]).count() as u64;
        ln.counted = s;
        out.extend_from_slice((ln.number + 1).to_string().as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(&data[s..e]);
    out.push(b'\n');
}
