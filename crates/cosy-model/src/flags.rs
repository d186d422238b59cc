//! Flags: the typed flags the [`Builder`](crate::Builder) takes, and the symbolic names of
//! flag and constant values (`O_RDONLY|O_DIRECTORY`, `AT_REMOVEDIR`, `0o644`, `DT_REG`) the
//! text format reads and prints.
//!
//! The typed flags are rustix's ([`OFlags`], [`AtFlags`], [`Mode`], [`StatxFlags`],
//! [`RenameFlags`], [`ResolveFlags`], [`Access`], [`XattrFlags`], [`PipeFlags`],
//! [`SpliceFlags`]), re-exported so that a program needs neither `rustix` nor `libc`, plus
//! [`Whence`] (rustix's `SeekFrom` carries the offset, which a compound may compute) and
//! [`DirentType`] (a `d_type` to compare with). The builder turns them into the operands'
//! integer bits; the name tables below give the text format the same values by name (a test
//! checks that both agree). One difference: rustix's [`OFlags::DSYNC`] is `O_SYNC` (data and
//! metadata synchronized), while the text format's `O_DSYNC` is the kernel's (data only); a
//! compound that needs the weaker, cheaper `O_DSYNC` passes
//! `OFlags::from_bits_retain(0o10000)`.

pub use rustix::fs::{
    Access, AtFlags, Mode, OFlags, RenameFlags, ResolveFlags, StatxFlags, XattrFlags,
};
pub use rustix::pipe::{PipeFlags, SpliceFlags};

use crate::compound::Value;

/// The `whence` of lseek(2): where an offset counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Whence {
    /// `SEEK_SET`: from the start of the file.
    Set,
    /// `SEEK_CUR`: from the current position.
    Cur,
    /// `SEEK_END`: from the end of the file.
    End,
    /// `SEEK_DATA`: the next data at or after the offset.
    Data,
    /// `SEEK_HOLE`: the next hole at or after the offset.
    Hole,
}

impl Whence {
    /// The `SEEK_*` value.
    pub fn raw(self) -> i64 {
        i64::from(match self {
            Whence::Set => libc::SEEK_SET,
            Whence::Cur => libc::SEEK_CUR,
            Whence::End => libc::SEEK_END,
            Whence::Data => libc::SEEK_DATA,
            Whence::Hole => libc::SEEK_HOLE,
        })
    }
}

/// The type of a directory entry (`d_type` of getdents64(2)), to compare
/// [`Dirent::kind`](crate::Dirent::kind) with: `e.kind.eq(DirentType::Dir)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DirentType {
    /// `DT_UNKNOWN`: the file system does not say (statx(2) tells).
    Unknown,
    /// `DT_FIFO`: a named pipe.
    Fifo,
    /// `DT_CHR`: a character device.
    Char,
    /// `DT_DIR`: a directory.
    Dir,
    /// `DT_BLK`: a block device.
    Block,
    /// `DT_REG`: a regular file.
    Reg,
    /// `DT_LNK`: a symbolic link.
    Link,
    /// `DT_SOCK`: a socket.
    Sock,
}

impl DirentType {
    /// The `DT_*` value.
    pub fn raw(self) -> i64 {
        i64::from(match self {
            DirentType::Unknown => libc::DT_UNKNOWN,
            DirentType::Fifo => libc::DT_FIFO,
            DirentType::Char => libc::DT_CHR,
            DirentType::Dir => libc::DT_DIR,
            DirentType::Block => libc::DT_BLK,
            DirentType::Reg => libc::DT_REG,
            DirentType::Link => libc::DT_LNK,
            DirentType::Sock => libc::DT_SOCK,
        })
    }
}

impl From<DirentType> for Value {
    fn from(t: DirentType) -> Self {
        Value::Imm(t.raw())
    }
}

/// Flags as the integer operand of a system call (the IR keeps every operand as an `i64`).
pub trait FlagBits: Copy {
    /// The bits, as the kernel reads them (zero-extended).
    fn to_operand(self) -> i64;
}

macro_rules! flag_bits {
    ($($t:ty),*) => {$(
        impl FlagBits for $t {
            fn to_operand(self) -> i64 {
                i64::from(self.bits())
            }
        }
    )*};
}

flag_bits!(
    Access,
    AtFlags,
    Mode,
    OFlags,
    RenameFlags,
    StatxFlags,
    XattrFlags,
    PipeFlags,
    SpliceFlags
);

impl FlagBits for ResolveFlags {
    fn to_operand(self) -> i64 {
        // open_how.resolve is a u64 the kernel reads bit for bit; every defined bit is low.
        self.bits() as i64
    }
}

impl FlagBits for Whence {
    fn to_operand(self) -> i64 {
        self.raw()
    }
}

/// A family of flags an operand takes; decides how the text format prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlagSet {
    /// `O_*` open flags (the access mode is always printed).
    Open,
    /// A file mode, printed in octal.
    Mode,
    /// `AT_*` flags.
    At,
    /// `RESOLVE_*` flags of openat2.
    Resolve,
    /// `STATX_*` mask bits.
    StatxMask,
    /// `SEEK_*` whence values (not bits).
    Whence,
    /// `RENAME_*` flags.
    Rename,
    /// `SPLICE_F_*` flags.
    Splice,
    /// `XATTR_CREATE` / `XATTR_REPLACE` of fsetxattr(2).
    Xattr,
    /// Access modes of faccessat2(2): `F_OK` (0) or bits of `R_OK`, `W_OK`, `X_OK`.
    Access,
}

/// `RESOLVE_NO_XDEV` (openat2(2)).
pub const RESOLVE_NO_XDEV: i64 = 0x01;
/// `RESOLVE_NO_MAGICLINKS`.
pub const RESOLVE_NO_MAGICLINKS: i64 = 0x02;
/// `RESOLVE_NO_SYMLINKS`.
pub const RESOLVE_NO_SYMLINKS: i64 = 0x04;
/// `RESOLVE_BENEATH`.
pub const RESOLVE_BENEATH: i64 = 0x08;
/// `RESOLVE_IN_ROOT`.
pub const RESOLVE_IN_ROOT: i64 = 0x10;
/// `RESOLVE_CACHED`.
pub const RESOLVE_CACHED: i64 = 0x20;

const OPEN: &[(&str, i64)] = &[
    ("O_TMPFILE", libc::O_TMPFILE as i64),
    ("O_WRONLY", libc::O_WRONLY as i64),
    ("O_RDWR", libc::O_RDWR as i64),
    ("O_CREAT", libc::O_CREAT as i64),
    ("O_EXCL", libc::O_EXCL as i64),
    ("O_NOCTTY", libc::O_NOCTTY as i64),
    ("O_TRUNC", libc::O_TRUNC as i64),
    ("O_APPEND", libc::O_APPEND as i64),
    ("O_NONBLOCK", libc::O_NONBLOCK as i64),
    ("O_SYNC", libc::O_SYNC as i64),
    ("O_DSYNC", libc::O_DSYNC as i64),
    ("O_DIRECT", libc::O_DIRECT as i64),
    ("O_LARGEFILE", libc::O_LARGEFILE as i64),
    ("O_DIRECTORY", libc::O_DIRECTORY as i64),
    ("O_NOFOLLOW", libc::O_NOFOLLOW as i64),
    ("O_NOATIME", libc::O_NOATIME as i64),
    ("O_CLOEXEC", libc::O_CLOEXEC as i64),
    ("O_PATH", libc::O_PATH as i64),
];

const AT: &[(&str, i64)] = &[
    ("AT_SYMLINK_NOFOLLOW", libc::AT_SYMLINK_NOFOLLOW as i64),
    ("AT_REMOVEDIR", libc::AT_REMOVEDIR as i64),
    ("AT_SYMLINK_FOLLOW", libc::AT_SYMLINK_FOLLOW as i64),
    ("AT_NO_AUTOMOUNT", libc::AT_NO_AUTOMOUNT as i64),
    ("AT_EMPTY_PATH", libc::AT_EMPTY_PATH as i64),
    ("AT_STATX_FORCE_SYNC", libc::AT_STATX_FORCE_SYNC as i64),
    ("AT_STATX_DONT_SYNC", libc::AT_STATX_DONT_SYNC as i64),
];

const RESOLVE: &[(&str, i64)] = &[
    ("RESOLVE_NO_XDEV", RESOLVE_NO_XDEV),
    ("RESOLVE_NO_MAGICLINKS", RESOLVE_NO_MAGICLINKS),
    ("RESOLVE_NO_SYMLINKS", RESOLVE_NO_SYMLINKS),
    ("RESOLVE_BENEATH", RESOLVE_BENEATH),
    ("RESOLVE_IN_ROOT", RESOLVE_IN_ROOT),
    ("RESOLVE_CACHED", RESOLVE_CACHED),
];

const STATX: &[(&str, i64)] = &[
    ("STATX_BASIC_STATS", libc::STATX_BASIC_STATS as i64),
    ("STATX_TYPE", libc::STATX_TYPE as i64),
    ("STATX_MODE", libc::STATX_MODE as i64),
    ("STATX_NLINK", libc::STATX_NLINK as i64),
    ("STATX_UID", libc::STATX_UID as i64),
    ("STATX_GID", libc::STATX_GID as i64),
    ("STATX_ATIME", libc::STATX_ATIME as i64),
    ("STATX_MTIME", libc::STATX_MTIME as i64),
    ("STATX_CTIME", libc::STATX_CTIME as i64),
    ("STATX_INO", libc::STATX_INO as i64),
    ("STATX_SIZE", libc::STATX_SIZE as i64),
    ("STATX_BLOCKS", libc::STATX_BLOCKS as i64),
    ("STATX_BTIME", libc::STATX_BTIME as i64),
];

const WHENCE: &[(&str, i64)] = &[
    ("SEEK_SET", libc::SEEK_SET as i64),
    ("SEEK_CUR", libc::SEEK_CUR as i64),
    ("SEEK_END", libc::SEEK_END as i64),
    ("SEEK_DATA", libc::SEEK_DATA as i64),
    ("SEEK_HOLE", libc::SEEK_HOLE as i64),
];

const RENAME: &[(&str, i64)] = &[
    ("RENAME_NOREPLACE", libc::RENAME_NOREPLACE as i64),
    ("RENAME_EXCHANGE", libc::RENAME_EXCHANGE as i64),
    ("RENAME_WHITEOUT", libc::RENAME_WHITEOUT as i64),
];

const SPLICE: &[(&str, i64)] = &[
    ("SPLICE_F_MOVE", libc::SPLICE_F_MOVE as i64),
    ("SPLICE_F_NONBLOCK", libc::SPLICE_F_NONBLOCK as i64),
    ("SPLICE_F_MORE", libc::SPLICE_F_MORE as i64),
];

const XATTR: &[(&str, i64)] = &[
    ("XATTR_CREATE", libc::XATTR_CREATE as i64),
    ("XATTR_REPLACE", libc::XATTR_REPLACE as i64),
];

const ACCESS: &[(&str, i64)] = &[
    ("R_OK", libc::R_OK as i64),
    ("W_OK", libc::W_OK as i64),
    ("X_OK", libc::X_OK as i64),
    ("F_OK", libc::F_OK as i64),
];

/// Other named constants usable as immediates in the text format.
const OTHER: &[(&str, i64)] = &[
    ("DT_UNKNOWN", libc::DT_UNKNOWN as i64),
    ("DT_FIFO", libc::DT_FIFO as i64),
    ("DT_CHR", libc::DT_CHR as i64),
    ("DT_DIR", libc::DT_DIR as i64),
    ("DT_BLK", libc::DT_BLK as i64),
    ("DT_REG", libc::DT_REG as i64),
    ("DT_LNK", libc::DT_LNK as i64),
    ("DT_SOCK", libc::DT_SOCK as i64),
    ("O_RDONLY", libc::O_RDONLY as i64),
    ("STATX_SIZE_OFFSET", STATX_SIZE_OFFSET as i64),
    ("STATX_MODE_OFFSET", STATX_MODE_OFFSET as i64),
    ("STATX_BLOCKS_OFFSET", STATX_BLOCKS_OFFSET as i64),
    ("STATX_INO_OFFSET", STATX_INO_OFFSET as i64),
    ("STATX_NLINK_OFFSET", STATX_NLINK_OFFSET as i64),
    ("STATX_MTIME_OFFSET", STATX_MTIME_OFFSET as i64),
    ("STATX_BYTES", STATX_BYTES as i64),
    ("TIMES_BYTES", TIMES_BYTES as i64),
    ("UTIME_NOW", libc::UTIME_NOW),
    ("UTIME_OMIT", libc::UTIME_OMIT),
];

/// Size of `struct statx`: a statx buffer must be at least this large.
pub const STATX_BYTES: usize = 256;
/// Size of the `struct timespec[2]` utimensat(2) reads (access time, then modification
/// time; `tv_sec` and `tv_nsec` as i64 each): a times buffer must be at least this large.
pub const TIMES_BYTES: usize = 32;

/// Whether open flags make an open change the file system: `O_CREAT`, `O_TRUNC` or
/// `O_TMPFILE` (the rule of [`crate::ops::may_write`] for opens).
pub fn open_may_write(flags: i64) -> bool {
    let tmpfile = i64::from(libc::O_TMPFILE);
    flags & i64::from(libc::O_CREAT | libc::O_TRUNC) != 0 || flags & tmpfile == tmpfile
}

/// Whether an open with these flags uses its mode operand (`O_CREAT` or `O_TMPFILE`); the
/// kernel ignores the mode otherwise.
pub fn open_uses_mode(flags: i64) -> bool {
    let tmpfile = i64::from(libc::O_TMPFILE);
    flags & i64::from(libc::O_CREAT) != 0 || flags & tmpfile == tmpfile
}

/// Offset of `stx_size` (u64) in `struct statx`.
pub const STATX_SIZE_OFFSET: usize = 40;
/// Offset of `stx_mode` (u16).
pub const STATX_MODE_OFFSET: usize = 28;
/// Offset of `stx_blocks` (u64, 512-byte units).
pub const STATX_BLOCKS_OFFSET: usize = 48;
/// Offset of `stx_ino` (u64).
pub const STATX_INO_OFFSET: usize = 32;
/// Offset of `stx_nlink` (u32).
pub const STATX_NLINK_OFFSET: usize = 16;
/// Offset of `stx_mtime.tv_sec` (i64).
pub const STATX_MTIME_OFFSET: usize = 112;

impl FlagSet {
    fn names(self) -> &'static [(&'static str, i64)] {
        match self {
            FlagSet::Open => OPEN,
            FlagSet::Mode => &[],
            FlagSet::At => AT,
            FlagSet::Resolve => RESOLVE,
            FlagSet::StatxMask => STATX,
            FlagSet::Whence => WHENCE,
            FlagSet::Rename => RENAME,
            FlagSet::Splice => SPLICE,
            FlagSet::Xattr => XATTR,
            FlagSet::Access => ACCESS,
        }
    }

    /// Prints `v` the canonical way for this set: names joined by `|`, bits without a name as
    /// a hexadecimal remainder, modes in octal, whence values by name.
    pub fn format(self, v: i64) -> String {
        match self {
            FlagSet::Mode => {
                if v >= 0 {
                    format!("0o{v:o}")
                } else {
                    v.to_string()
                }
            }
            FlagSet::Whence => WHENCE
                .iter()
                .find(|(_, x)| *x == v)
                .map(|(n, _)| (*n).to_string())
                .unwrap_or_else(|| v.to_string()),
            _ => {
                let mut parts: Vec<String> = Vec::new();
                let mut rest = v;
                if self == FlagSet::Open && v & (libc::O_ACCMODE as i64) == 0 {
                    parts.push("O_RDONLY".into());
                }
                if v < 0 {
                    return v.to_string();
                }
                for (name, bits) in self.names() {
                    if *bits != 0 && rest & bits == *bits {
                        parts.push((*name).into());
                        rest &= !bits;
                    }
                }
                if rest != 0 || parts.is_empty() {
                    parts.push(if rest == 0 {
                        "0".into()
                    } else {
                        format!("{rest:#x}")
                    });
                }
                parts.join("|")
            }
        }
    }
}

/// The value of a named constant (any flag of any set, `DT_*`, `STATX_*_OFFSET`).
pub fn constant(name: &str) -> Option<i64> {
    [
        OPEN, AT, RESOLVE, STATX, WHENCE, RENAME, SPLICE, XATTR, ACCESS, OTHER,
    ]
    .iter()
    .flat_map(|t| t.iter())
    .find(|(n, _)| *n == name)
    .map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_formats_to_names_that_parse_back() {
        let sets = [
            FlagSet::Open,
            FlagSet::At,
            FlagSet::Resolve,
            FlagSet::StatxMask,
            FlagSet::Whence,
            FlagSet::Rename,
            FlagSet::Splice,
            FlagSet::Xattr,
            FlagSet::Access,
            FlagSet::Mode,
        ];
        for set in sets {
            for v in [
                0i64,
                1,
                2,
                3,
                0x41,
                0o644,
                0x10000,
                0x7ff,
                0x80000,
                0x1234_5678,
            ] {
                let text = set.format(v);
                let back = text
                    .split('|')
                    .map(|p| {
                        constant(p)
                            .or_else(|| {
                                p.strip_prefix("0x")
                                    .and_then(|h| i64::from_str_radix(h, 16).ok())
                            })
                            .or_else(|| {
                                p.strip_prefix("0o")
                                    .and_then(|o| i64::from_str_radix(o, 8).ok())
                            })
                            .or_else(|| p.parse().ok())
                            .unwrap_or_else(|| panic!("{p} in {text}"))
                    })
                    .fold(0, |a, b| a | b);
                assert_eq!(back, v, "{set:?} {v:#x} printed as {text}");
            }
        }
    }

    /// The text format's names and the builder's typed flags are two spellings of one
    /// value: every name of a table has the value rustix gives the same flag.
    #[test]
    fn name_tables_agree_with_the_typed_flags() {
        /// A name table, its names' prefix, and the typed flag of a name without it.
        type Typed = (
            &'static [(&'static str, i64)],
            &'static str,
            fn(&str) -> Option<i64>,
        );
        let typed: &[Typed] = &[
            (OPEN, "O_", |n| {
                let n = if n == "CREAT" { "CREATE" } else { n };
                OFlags::from_name(n).map(FlagBits::to_operand)
            }),
            (AT, "AT_", |n| {
                AtFlags::from_name(n).map(FlagBits::to_operand)
            }),
            (STATX, "STATX_", |n| {
                StatxFlags::from_name(n).map(FlagBits::to_operand)
            }),
            (RENAME, "RENAME_", |n| {
                RenameFlags::from_name(n).map(FlagBits::to_operand)
            }),
            (RESOLVE, "RESOLVE_", |n| {
                ResolveFlags::from_name(n).map(FlagBits::to_operand)
            }),
            (SPLICE, "SPLICE_F_", |n| {
                SpliceFlags::from_name(n).map(FlagBits::to_operand)
            }),
            (XATTR, "XATTR_", |n| {
                XattrFlags::from_name(n).map(FlagBits::to_operand)
            }),
        ];
        for (table, prefix, lookup) in typed {
            for (name, value) in *table {
                // rustix's `OFlags::DSYNC` is `O_SYNC` (the stronger guarantee; the kernel's
                // O_DSYNC has no typed name, module docs); libc's O_LARGEFILE is 0 on 64-bit
                // targets where the kernel's bit is implied, rustix's is the kernel's bit.
                if ["O_DSYNC", "O_LARGEFILE"].contains(name) {
                    continue;
                }
                let short = name.strip_prefix(prefix).expect("prefixed");
                assert_eq!(lookup(short), Some(*value), "{name}");
            }
        }
        let access = [
            ("R_OK", Access::READ_OK),
            ("W_OK", Access::WRITE_OK),
            ("X_OK", Access::EXEC_OK),
            ("F_OK", Access::EXISTS),
        ];
        for (name, flag) in access {
            assert_eq!(constant(name), Some(flag.to_operand()), "{name}");
        }
        for (name, w) in [
            ("SEEK_SET", Whence::Set),
            ("SEEK_CUR", Whence::Cur),
            ("SEEK_END", Whence::End),
            ("SEEK_DATA", Whence::Data),
            ("SEEK_HOLE", Whence::Hole),
        ] {
            assert_eq!(constant(name), Some(w.to_operand()), "{name}");
        }
        for (name, t) in [
            ("DT_UNKNOWN", DirentType::Unknown),
            ("DT_FIFO", DirentType::Fifo),
            ("DT_CHR", DirentType::Char),
            ("DT_DIR", DirentType::Dir),
            ("DT_BLK", DirentType::Block),
            ("DT_REG", DirentType::Reg),
            ("DT_LNK", DirentType::Link),
            ("DT_SOCK", DirentType::Sock),
        ] {
            assert_eq!(constant(name), Some(t.raw()), "{name}");
        }
        assert_eq!(constant("O_RDONLY"), Some(OFlags::RDONLY.to_operand()));
        assert_eq!(Mode::from_raw_mode(0o644).to_operand(), 0o644);
    }

    #[test]
    fn open_flags_print_the_access_mode() {
        let v = (libc::O_RDONLY | libc::O_DIRECTORY) as i64;
        assert_eq!(FlagSet::Open.format(v), "O_RDONLY|O_DIRECTORY");
        assert_eq!(FlagSet::Mode.format(0o644), "0o644");
    }

    #[test]
    fn access_modes_and_xattr_flags_print_by_name() {
        assert_eq!(FlagSet::Access.format(0), "0");
        assert_eq!(constant("F_OK"), Some(0));
        let rw = i64::from(libc::R_OK | libc::W_OK);
        assert_eq!(FlagSet::Access.format(rw), "R_OK|W_OK");
        let create = i64::from(libc::XATTR_CREATE);
        assert_eq!(FlagSet::Xattr.format(create), "XATTR_CREATE");
    }

    #[test]
    fn creating_and_truncating_opens_may_write() {
        let o = |f: i32| i64::from(f);
        assert!(!open_may_write(o(libc::O_RDONLY | libc::O_DIRECTORY)));
        assert!(!open_may_write(o(libc::O_WRONLY | libc::O_APPEND)));
        assert!(open_may_write(o(libc::O_WRONLY | libc::O_CREAT)));
        assert!(open_may_write(o(libc::O_WRONLY | libc::O_TRUNC)));
        assert!(open_may_write(o(libc::O_RDWR | libc::O_TMPFILE)));
        assert!(open_uses_mode(o(libc::O_TMPFILE | libc::O_RDWR)));
        assert!(!open_uses_mode(o(libc::O_TRUNC | libc::O_WRONLY)));
    }
}
