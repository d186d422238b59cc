//! The policy a compound runs under: which calls it may make, the directory its paths cannot
//! leave, and its limits. Compounds loaded from files are untrusted data and always run under a
//! policy; [`Policy::untrusted`] is the default for them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::ops::{Effect, Sys};

/// What a compound may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The calls it may make.
    pub allowed: BTreeSet<Sys>,
    /// A directory that path operations cannot escape: every path resolves beneath it
    /// (openat2 with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`), `cwd` means this directory, and
    /// an absolute path is accepted only if it names something inside it. `None`: paths
    /// resolve as in any program (for trusted compounds built in Rust).
    pub root: Option<PathBuf>,
    /// Whether the standard streams (fds 0, 1, 2) may be used.
    pub std_streams: bool,
    /// Largest number of operations executed (fuel).
    pub fuel: u64,
    /// Largest wall time of one run.
    pub time: Duration,
    /// Largest arena (sum of buffer sizes, map-local buffers counted once per lane).
    pub arena_bytes: u64,
    /// Largest number of fds open at once.
    pub open_fds: u32,
    /// Largest number of bytes the compound's calls write to descriptors, in all (write,
    /// pwrite, copy_file_range, splice, sendfile: every call of the operation table that
    /// changes files and moves bytes to a descriptor; the standard streams included). A call
    /// that could pass it is refused before it is issued.
    pub written_bytes: u64,
    /// Largest number of bytes written to the standard streams (fds 1 and 2, and 0), in all;
    /// counted in `written_bytes` too.
    pub output_bytes: u64,
    /// User functions the compound may call besides the built-ins ([`crate::BUILTINS`]);
    /// the program registers them with the executor under these names.
    pub functions: BTreeSet<String>,
}

impl Policy {
    /// The default for compounds loaded from files: every call allowed, paths confined to
    /// `root`, ten million operations, ten seconds, 64 MiB of arena, 256 open fds, 1 GiB
    /// written, 64 MiB of output.
    pub fn untrusted(root: impl Into<PathBuf>) -> Self {
        Policy {
            allowed: Sys::ALL.iter().copied().collect(),
            root: Some(root.into()),
            std_streams: true,
            fuel: 10_000_000,
            time: Duration::from_secs(10),
            arena_bytes: 64 << 20,
            open_fds: 256,
            written_bytes: 1 << 30,
            output_bytes: 64 << 20,
            functions: BTreeSet::new(),
        }
    }

    /// Like [`Policy::untrusted`], with only the calls that change nothing on disk (so
    /// nothing written: `written_bytes` and `output_bytes` are 0).
    pub fn read_only(root: impl Into<PathBuf>) -> Self {
        Policy {
            allowed: Sys::ALL
                .iter()
                .copied()
                .filter(|s| s.spec().effect == Effect::Read)
                .collect(),
            written_bytes: 0,
            output_bytes: 0,
            ..Self::untrusted(root)
        }
    }

    /// For compounds the program builds itself: everything allowed, no root, generous limits
    /// (a billion operations, an hour, 1 GiB of arena, 4096 fds, no limit on bytes written).
    pub fn trusted() -> Self {
        Policy {
            allowed: Sys::ALL.iter().copied().collect(),
            root: None,
            std_streams: true,
            fuel: 1_000_000_000,
            time: Duration::from_secs(3600),
            arena_bytes: 1 << 30,
            open_fds: 4096,
            written_bytes: u64::MAX,
            output_bytes: u64::MAX,
            functions: BTreeSet::new(),
        }
    }

    /// Whether `sys` is allowed.
    pub fn allows(&self, sys: Sys) -> bool {
        self.allowed.contains(&sys)
    }
}

impl Default for Policy {
    /// [`Policy::untrusted`] rooted at the current directory (`.`).
    fn default() -> Self {
        Self::untrusted(".")
    }
}
