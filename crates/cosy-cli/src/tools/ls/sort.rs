//! The orders of `ls`: by name in byte order (the C locale), `-S` largest first, `-t` newest
//! first, ties by name; `-r` reverses the whole order.

use std::cmp::Ordering;
use std::os::unix::ffi::OsStrExt;

use super::args::Sort;
use super::format::File;

fn by_name(a: &File, b: &File) -> Ordering {
    a.name.as_bytes().cmp(b.name.as_bytes())
}

fn compare(key: Sort, a: &File, b: &File) -> Ordering {
    let primary = match key {
        Sort::Name => Ordering::Equal,
        Sort::Size => {
            let size = |f: &File| f.stat.map_or(0, |s| s.size);
            size(b).cmp(&size(a))
        }
        Sort::Time => {
            let time = |f: &File| f.stat.map(|s| s.mtime).unwrap_or_default();
            time(b).cmp(&time(a))
        }
    };
    primary.then_with(|| by_name(a, b))
}

/// Sorts `files` by `key`, reversed if `reverse`.
pub fn sort(files: &mut [File], key: Sort, reverse: bool) {
    if reverse {
        files.sort_by(|a, b| compare(key, b, a));
    } else {
        files.sort_by(|a, b| compare(key, a, b));
    }
}
