//! The lines `ls` prints: long lines (`-l`) with their columns as wide as the widest value of
//! the listing, one name per line (`-1`), and columns (`-C`, the terminal's default).

use std::ffi::OsString;

use super::args::{Format, Options};
use super::clock::Clock;
use super::human::{blocks, human};
use super::ids::Names;
use super::names::Quoting;
use crate::tools::stat::Stat;
use crate::tools::walk::Kind;

/// A file of a listing.
#[derive(Debug)]
pub struct File {
    /// The name printed: an entry's name, or an operand as given.
    pub name: OsString,
    /// What getdents64 (or the stat) says it is.
    pub kind: Kind,
    /// Its inode as getdents64 gave it (0: not known).
    pub ino: u64,
    /// Its status, when it was asked for and could be had.
    pub stat: Option<Stat>,
    /// Its target, for a symbolic link in a long listing.
    pub link: Option<OsString>,
}

impl File {
    /// Whether it is a directory (by its status, else by its entry's type).
    pub fn is_dir(&self) -> bool {
        match &self.stat {
            Some(s) => s.is_dir(),
            None => self.kind == Kind::Dir,
        }
    }

    /// Its inode number as printed.
    fn inode(&self) -> String {
        match (&self.stat, self.ino) {
            (Some(s), _) => Digits::of(s.ino).as_str().to_string(),
            (None, 0) => "?".into(),
            (None, i) => i.to_string(),
        }
    }
}

/// The type letter of a mode (`-`, `d`, `l`, …), or of an entry's type.
fn type_letter(mode: Option<u32>, kind: Kind) -> u8 {
    let k = match mode {
        Some(m) => match m & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFCHR => Kind::Char,
            libc::S_IFBLK => Kind::Block,
            _ => Kind::Unknown,
        },
        None => kind,
    };
    match k {
        Kind::File => b'-',
        Kind::Dir => b'd',
        Kind::Symlink => b'l',
        Kind::Fifo => b'p',
        Kind::Socket => b's',
        Kind::Char => b'c',
        Kind::Block => b'b',
        Kind::Unknown => b'?',
    }
}

/// The ten-letter mode string (`drwxr-sr-t`), as filemodestring(3) gives it.
pub fn mode_string(mode: u32) -> [u8; 10] {
    let mut s = *b"?---------";
    s[0] = type_letter(Some(mode), Kind::Unknown);
    let bit = |b: u32| mode & b != 0;
    let rwx = [
        (
            libc::S_IRUSR,
            libc::S_IWUSR,
            libc::S_IXUSR,
            libc::S_ISUID,
            b's',
        ),
        (
            libc::S_IRGRP,
            libc::S_IWGRP,
            libc::S_IXGRP,
            libc::S_ISGID,
            b's',
        ),
        (
            libc::S_IROTH,
            libc::S_IWOTH,
            libc::S_IXOTH,
            libc::S_ISVTX,
            b't',
        ),
    ];
    for (k, (r, w, x, special, letter)) in rwx.into_iter().enumerate() {
        let at = 1 + 3 * k;
        if bit(r) {
            s[at] = b'r';
        }
        if bit(w) {
            s[at + 1] = b'w';
        }
        s[at + 2] = match (bit(x), bit(special)) {
            (true, true) => letter,
            (false, true) => letter.to_ascii_uppercase(),
            (true, false) => b'x',
            (false, false) => b'-',
        };
    }
    s
}

/// What long lines need besides the files: names of owners and groups, the clock.
pub struct Context<'a> {
    /// The options.
    pub opts: &'a Options,
    /// Owner names (empty with `-n`).
    pub users: &'a Names,
    /// Group names (empty with `-n`).
    pub groups: &'a Names,
    /// The clock.
    pub clock: &'a mut Clock,
    /// How names are quoted.
    pub quoting: Quoting,
    /// The width of the terminal's lines, for columns.
    pub line: usize,
}

/// The widths of a listing's columns.
#[derive(Debug, Default)]
pub struct Widths {
    inode: usize,
    nlink: usize,
    owner: usize,
    group: usize,
    size: usize,
    major: usize,
    minor: usize,
}

/// A number's decimal digits, without allocating (a long line has several).
pub struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    /// The digits of `n`.
    pub fn of(mut n: u64) -> Digits {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Digits { buf, start }
    }

    /// The digits.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The digits as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.bytes()).unwrap_or("")
    }
}

/// An owner or group as printed: its name (left-aligned), or its number (right-aligned).
enum Id<'a> {
    Name(&'a [u8]),
    Number(Digits),
}

impl Id<'_> {
    fn len(&self) -> usize {
        match self {
            Id::Name(n) => n.len(),
            Id::Number(d) => d.bytes().len(),
        }
    }
}

fn id_text(names: &Names, numeric: bool, id: u32) -> Id<'_> {
    match names.get(id) {
        Some(n) if !numeric => Id::Name(n),
        _ => Id::Number(Digits::of(u64::from(id))),
    }
}

fn size_text(s: &Stat, human_sizes: bool) -> String {
    if human_sizes {
        human(u128::from(s.size))
    } else {
        s.size.to_string()
    }
}

fn is_device(s: &Stat) -> bool {
    matches!(s.kind(), libc::S_IFCHR | libc::S_IFBLK)
}

impl Widths {
    /// The widths over `files` (their stat'ed ones for the long columns).
    pub fn of(files: &[File], cx: &Context<'_>) -> Widths {
        let mut w = Widths::default();
        let long = cx.opts.format == Format::Long;
        for f in files {
            if cx.opts.inode {
                w.inode = w.inode.max(f.inode().len());
            }
            let (true, Some(s)) = (long, &f.stat) else {
                continue;
            };
            let digits = |n: u32| Digits::of(u64::from(n)).bytes().len();
            w.nlink = w.nlink.max(digits(s.nlink));
            w.owner = w.owner.max(id_text(cx.users, cx.opts.numeric, s.uid).len());
            w.group = w
                .group
                .max(id_text(cx.groups, cx.opts.numeric, s.gid).len());
            if is_device(s) {
                w.major = w.major.max(digits(s.rdev.0));
                w.minor = w.minor.max(digits(s.rdev.1));
                w.size = w.size.max(w.major + 2 + w.minor);
            } else if !cx.opts.human {
                w.size = w.size.max(Digits::of(s.size).bytes().len());
            } else {
                w.size = w.size.max(size_text(s, true).len());
            }
        }
        w
    }
}

fn pad_left(out: &mut Vec<u8>, text: &[u8], width: usize) {
    out.resize(out.len() + width.saturating_sub(text.len()), b' ');
    out.extend_from_slice(text);
}

fn pad_right(out: &mut Vec<u8>, text: &[u8], width: usize) {
    out.extend_from_slice(text);
    out.resize(out.len() + width.saturating_sub(text.len()), b' ');
}

/// The `total` line of a directory's long listing: the blocks of its stat'ed files in KiB
/// (rounded up), or as `-h` prints sizes.
pub fn total_line(files: &[File], human_sizes: bool, out: &mut Vec<u8>) {
    let n: u64 = files.iter().filter_map(|f| f.stat.map(|s| s.blocks)).sum();
    let text = if human_sizes {
        human(u128::from(n) * 512)
    } else {
        blocks(n, 512, 1024)
    };
    out.extend_from_slice(b"total ");
    out.extend_from_slice(text.as_bytes());
    out.push(b'\n');
}

/// Appends `f`'s long line.
pub fn long_line(f: &File, w: &Widths, cx: &mut Context<'_>, some_quoted: bool, out: &mut Vec<u8>) {
    if cx.opts.inode {
        pad_left(out, f.inode().as_bytes(), w.inode);
        out.push(b' ');
    }
    let Some(s) = &f.stat else {
        out.push(type_letter(None, f.kind));
        out.extend_from_slice(b"????????? ");
        pad_left(out, b"?", w.nlink);
        out.push(b' ');
        pad_right(out, b"?", w.owner);
        out.push(b' ');
        pad_right(out, b"?", w.group);
        out.push(b' ');
        pad_left(out, b"?", w.size);
        out.push(b' ');
        pad_left(out, b"?", 12);
        out.push(b' ');
        cx.quoting.name(&f.name, some_quoted, out);
        out.push(b'\n');
        return;
    };
    out.extend_from_slice(&mode_string(s.mode));
    out.push(b' ');
    pad_left(out, Digits::of(u64::from(s.nlink)).bytes(), w.nlink);
    out.push(b' ');
    for (names, id, width) in [(cx.users, s.uid, w.owner), (cx.groups, s.gid, w.group)] {
        match id_text(names, cx.opts.numeric, id) {
            Id::Name(t) => pad_right(out, t, width),
            Id::Number(d) => pad_left(out, d.bytes(), width),
        }
        out.push(b' ');
    }
    if is_device(s) {
        let blanks = w.size.saturating_sub(w.major + 2 + w.minor);
        pad_left(
            out,
            Digits::of(u64::from(s.rdev.0)).bytes(),
            w.major + blanks,
        );
        out.extend_from_slice(b", ");
        pad_left(out, Digits::of(u64::from(s.rdev.1)).bytes(), w.minor);
    } else if cx.opts.human {
        pad_left(out, size_text(s, true).as_bytes(), w.size);
    } else {
        pad_left(out, Digits::of(s.size).bytes(), w.size);
    }
    out.push(b' ');
    cx.clock.format(s.mtime, out);
    out.push(b' ');
    cx.quoting.name(&f.name, some_quoted, out);
    if let Some(t) = &f.link {
        out.extend_from_slice(b" -> ");
        cx.quoting.name(t, false, out);
    }
    out.push(b'\n');
}

/// Appends the listing of `files` (widths `w`) in the format asked for.
pub fn listing(files: &[&File], w: &Widths, cx: &mut Context<'_>, out: &mut Vec<u8>) {
    let some_quoted = files.iter().any(|f| cx.quoting.needs_quotes(&f.name));
    match cx.opts.format {
        Format::Long => {
            for f in files {
                long_line(f, w, cx, some_quoted, out);
            }
        }
        Format::OnePerLine => {
            for f in files {
                prefix(f, w, cx, out);
                cx.quoting.name(&f.name, some_quoted, out);
                out.push(b'\n');
            }
        }
        Format::Columns => columns(files, w, cx, some_quoted, out),
    }
}

fn prefix(f: &File, w: &Widths, cx: &Context<'_>, out: &mut Vec<u8>) {
    if cx.opts.inode {
        pad_left(out, f.inode().as_bytes(), w.inode);
        out.push(b' ');
    }
}

/// Narrowest column `ls` makes (a name of one byte and two spaces).
const MIN_COLUMN: usize = 3;

/// Names in columns, filled down then across, as many columns as fit the line (GNU ls's
/// `calculate_columns`), padded with tabs at every eighth column and spaces.
fn columns(files: &[&File], w: &Widths, cx: &mut Context<'_>, quoted: bool, out: &mut Vec<u8>) {
    let n = files.len();
    if n == 0 {
        return;
    }
    let texts: Vec<Vec<u8>> = files
        .iter()
        .map(|f| {
            let mut t = Vec::new();
            prefix(f, w, cx, &mut t);
            cx.quoting.name(&f.name, quoted, &mut t);
            t
        })
        .collect();
    let lens: Vec<usize> = texts.iter().map(|t| display_width(t)).collect();
    let max_cols = (cx.line / MIN_COLUMN).clamp(1, n);
    let mut best = (1, vec![lens.iter().copied().max().unwrap_or(0)]);
    for cols in (2..=max_cols).rev() {
        let rows = n.div_ceil(cols);
        let mut widths = vec![MIN_COLUMN; cols];
        for (j, &len) in lens.iter().enumerate() {
            let c = j / rows;
            let real = len + if c == cols - 1 { 0 } else { 2 };
            widths[c] = widths[c].max(real);
        }
        if widths.iter().sum::<usize>() < cx.line {
            best = (cols, widths);
            break;
        }
    }
    let (cols, widths) = best;
    let rows = n.div_ceil(cols);
    for row in 0..rows {
        let (mut col, mut j, mut pos) = (0, row, 0);
        loop {
            out.extend_from_slice(&texts[j]);
            let len = lens[j];
            let max = widths[col];
            col += 1;
            j += rows;
            if j >= n {
                break;
            }
            indent(pos + len, pos + max, out);
            pos += max;
        }
        out.push(b'\n');
    }
}

/// Columns a name takes in the C locale: its printable bytes (mbsnwidth(3) counts others as
/// nothing).
fn display_width(t: &[u8]) -> usize {
    t.iter().filter(|&&c| (0x20..0x7f).contains(&c)).count()
}

fn indent(mut from: usize, to: usize, out: &mut Vec<u8>) {
    const TAB: usize = 8;
    while from < to {
        if to / TAB > (from + 1) / TAB {
            out.push(b'\t');
            from += TAB - from % TAB;
        } else {
            out.push(b' ');
            from += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings_show_the_special_bits() {
        assert_eq!(&mode_string(libc::S_IFREG | 0o644), b"-rw-r--r--");
        assert_eq!(&mode_string(libc::S_IFDIR | 0o1777), b"drwxrwxrwt");
        assert_eq!(&mode_string(libc::S_IFREG | 0o4644), b"-rwSr--r--");
        assert_eq!(&mode_string(libc::S_IFREG | 0o6755), b"-rwsr-sr-x");
        assert_eq!(&mode_string(libc::S_IFDIR | 0o1770), b"drwxrwx--T");
        assert_eq!(&mode_string(libc::S_IFLNK | 0o777), b"lrwxrwxrwx");
    }
}
