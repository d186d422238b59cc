//! `struct statx` (statx(2)) as the tools read it out of a session's buffer.

/// Bytes a `struct statx` takes: the size of every statx buffer.
pub const STATX_LEN: usize = 256;

/// A timestamp: seconds and nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds.
    pub nsec: u32,
}

/// The fields of a `struct statx` the tools use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// `stx_mask`: which fields the kernel filled.
    pub mask: u32,
    /// `stx_blksize`.
    pub blksize: u32,
    /// `stx_nlink`.
    pub nlink: u32,
    /// `stx_uid`.
    pub uid: u32,
    /// `stx_gid`.
    pub gid: u32,
    /// `stx_mode`: file type and permission bits.
    pub mode: u32,
    /// `stx_ino`.
    pub ino: u64,
    /// `stx_size`.
    pub size: u64,
    /// `stx_blocks`: 512-byte blocks allocated.
    pub blocks: u64,
    /// `stx_atime`.
    pub atime: Time,
    /// `stx_btime`.
    pub btime: Time,
    /// `stx_ctime`.
    pub ctime: Time,
    /// `stx_mtime`.
    pub mtime: Time,
    /// `stx_rdev_major`, `stx_rdev_minor`.
    pub rdev: (u32, u32),
    /// `stx_dev_major`, `stx_dev_minor`.
    pub dev: (u32, u32),
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}

fn time_at(b: &[u8], o: usize) -> Time {
    Time {
        sec: u64_at(b, o) as i64,
        nsec: u32_at(b, o + 8),
    }
}

impl Stat {
    /// Parses the first [`STATX_LEN`] bytes of `b` (a buffer statx(2) filled); `None` if `b`
    /// is shorter.
    pub fn parse(b: &[u8]) -> Option<Stat> {
        if b.len() < STATX_LEN {
            return None;
        }
        Some(Stat {
            mask: u32_at(b, 0),
            blksize: u32_at(b, 4),
            nlink: u32_at(b, 16),
            uid: u32_at(b, 20),
            gid: u32_at(b, 24),
            mode: u32::from(u16_at(b, 28)),
            ino: u64_at(b, 32),
            size: u64_at(b, 40),
            blocks: u64_at(b, 48),
            atime: time_at(b, 64),
            btime: time_at(b, 80),
            ctime: time_at(b, 96),
            mtime: time_at(b, 112),
            rdev: (u32_at(b, 128), u32_at(b, 132)),
            dev: (u32_at(b, 136), u32_at(b, 140)),
        })
    }

    /// The file type bits (`S_IFMT`).
    pub fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }

    /// A symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.kind() == libc::S_IFLNK
    }

    /// The device and inode: the file's identity.
    pub fn id(&self) -> (u32, u32, u64) {
        (self.dev.0, self.dev.1, self.ino)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cosy_exec::Backend;
    use cosy_exec::session::{Call, Fd, Session};
    use cosy_model::Policy;
    use cosy_model::flags::{AtFlags, StatxFlags};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn parse_gives_what_std_metadata_gives() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b"twelve bytes").unwrap();
        let m = std::fs::metadata(f.path()).unwrap();
        let mut s = Session::new(Backend::Direct, &Policy::trusted()).unwrap();
        let buf = s.buffer(STATX_LEN).unwrap();
        let n = s
            .send(Call::statx(
                Fd::Cwd,
                f.path(),
                AtFlags::empty(),
                StatxFlags::BASIC_STATS,
                buf,
            ))
            .unwrap();
        assert_eq!(s.get(n), Ok(0));
        let buf = s.bytes(buf).unwrap().to_vec();
        let s = Stat::parse(&buf).unwrap();
        assert_eq!(s.size, 12);
        assert_eq!(u64::from(s.mode), u64::from(m.mode()));
        assert_eq!(s.ino, m.ino());
        assert_eq!(u64::from(s.nlink), m.nlink());
        assert_eq!(s.blocks, m.blocks());
        assert_eq!(s.mtime.sec, m.mtime());
        assert_eq!(i64::from(s.mtime.nsec), m.mtime_nsec());
        assert!(s.kind() == libc::S_IFREG && !s.is_dir());
        assert_eq!(
            libc::makedev(s.dev.0, s.dev.1),
            m.dev(),
            "the device from major and minor"
        );
        assert!(Stat::parse(&buf[..100]).is_none());
    }
}
