//! The page cache: warm or cold runs, and dropping it before a cold one.

use std::io::Write;
use std::path::Path;

/// The state of the page cache a case runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cache {
    /// Whatever earlier runs left in it (the corpus, just written or just read, is cached).
    Warm,
    /// Dropped before every timed run (`sync; echo 3 > /proc/sys/vm/drop_caches`): the run
    /// reads inodes, directories and data from the disk.
    Cold,
}

impl Cache {
    /// `warm` or `cold`.
    pub fn name(self) -> &'static str {
        match self {
            Cache::Warm => "warm",
            Cache::Cold => "cold",
        }
    }
}

/// Writes back dirty pages and drops the clean page cache, dentries and inodes
/// (`sync` then `3` into `/proc/sys/vm/drop_caches`; needs root and a writable `/proc`).
///
/// The error is the reason, in words (`Permission denied (os error 13)`), for the records.
pub fn drop_caches() -> Result<(), String> {
    drop_caches_at(Path::new("/proc/sys/vm/drop_caches"))
}

/// [`drop_caches`] writing to `control` instead of `/proc/sys/vm/drop_caches`.
fn drop_caches_at(control: &Path) -> Result<(), String> {
    rustix::fs::sync();
    std::fs::OpenOptions::new()
        .write(true)
        .open(control)
        .and_then(|mut f| f.write_all(b"3\n"))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_to_drop_is_a_reason_in_words() {
        let why = drop_caches_at(Path::new("/nonexistent/drop_caches")).unwrap_err();
        assert!(why.contains("No such file"), "{why}");
        assert_eq!(Cache::Cold.name(), "cold");
    }
}
