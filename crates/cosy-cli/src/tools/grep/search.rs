//! A search's results: what each file prints, on which stream, and whether it matched.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use super::files::{DirRef, Reader};
use super::matcher::Matcher;
use super::output::{Binary, Format, search};

/// Output of part of a search, in order: standard output, and messages for standard error.
#[derive(Default, Debug)]
pub struct Out {
    /// `(to standard error, bytes)`, in the order they are to be written.
    pub pieces: Vec<(bool, Vec<u8>)>,
    /// A file matched (for the exit status).
    pub matched: bool,
    /// An error was reported.
    pub failed: bool,
}

impl Out {
    /// The buffer for standard output at the end.
    pub fn stdout(&mut self) -> &mut Vec<u8> {
        if !matches!(self.pieces.last(), Some((false, _))) {
            self.pieces.push((false, Vec::new()));
        }
        let last = self.pieces.len() - 1;
        &mut self.pieces[last].1
    }

    /// Adds an error message (`grep: ` is prepended).
    pub fn error(&mut self, message: &[u8]) {
        let mut m = b"grep: ".to_vec();
        m.extend_from_slice(message);
        m.push(b'\n');
        self.pieces.push((true, m));
        self.failed = true;
    }

    /// Appends `other`.
    pub fn append(&mut self, other: Out) {
        self.matched |= other.matched;
        self.failed |= other.failed;
        for (err, b) in other.pieces {
            if !err {
                self.stdout().extend_from_slice(&b);
            } else {
                self.pieces.push((err, b));
            }
        }
    }
}

/// ripgrep's words for a file that cannot be read: `path: Permission denied (os error 13)`.
pub fn file_error(path: &[u8], e: i32) -> Vec<u8> {
    let mut m = path.to_vec();
    m.extend_from_slice(
        format!(": {} (os error {e})", crate::tools::common::errno_text(e)).as_bytes(),
    );
    m
}

/// ripgrep's words for a directory or a path given that cannot be opened.
pub fn walk_error(path: &[u8], e: i32) -> Vec<u8> {
    let p = String::from_utf8_lossy(path);
    format!(
        "{p}: IO error for operation on {p}: {} (os error {e})",
        crate::tools::common::errno_text(e)
    )
    .into_bytes()
}

/// The patterns and the output's shape, shared by the searching threads.
pub struct Searcher {
    /// The patterns.
    pub matcher: Matcher,
    /// The output's shape.
    pub format: Format,
}

impl Searcher {
    /// Reads and searches the files `names` of `dir` (printed as `shown` and the name), in batches of the
    /// reader's size.
    pub fn batch(
        &self,
        reader: &mut Reader,
        dir: &DirRef,
        names: &[OsString],
        shown: &[u8],
    ) -> Out {
        let mut out = Out::default();
        let mut path = shown.to_vec();
        let mut from = 0;
        while from < names.len() {
            let to = (from + reader.batch()).min(names.len());
            reader.read_dir_files(dir, &names[from..to], &mut |i, data| {
                path.truncate(shown.len());
                path.extend_from_slice(names[from + i].as_bytes());
                let path = &path[..];
                match data {
                    Ok(d) => {
                        let o = out.stdout();
                        let hit = search(&self.matcher, &self.format, Binary::Quit, path, d, o);
                        out.matched |= hit;
                    }
                    Err(e) => out.error(&file_error(path, e)),
                }
            });
            from = to;
        }
        out
    }

    /// Searches `data` of a file given on the command line.
    pub fn given(&self, path: &[u8], data: &[u8], binary: Binary, out: &mut Out) {
        let o = out.stdout();
        let hit = search(&self.matcher, &self.format, binary, path, data, o);
        out.matched |= hit;
    }
}
