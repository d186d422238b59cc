//! The corpus: files and trees the workloads run on, written once per benchmark into a
//! temporary directory (removed at the end) and shared by the workloads that use the same
//! one (`grep`, `du` and `cp` all run on one tree).
//!
//! Contents are pseudo-random but deterministic ([`Rng`]), so every variant and every run sees
//! the same bytes, and expected answers (the matches placed for `grep`) are known in advance.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// xorshift64 (Marsaglia): the generator of the corpus and of the database workload's
/// offsets. `x` must not be 0.
pub fn xorshift64(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// A deterministic pseudo-random generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 is replaced by a fixed non-zero value).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = xorshift64(self.0);
        self.0
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// Fills `buf` with lower-case words, spaces and newlines (text without upper case).
    pub fn fill_text(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            for (b, r) in chunk.iter_mut().zip(v) {
                *b = match r % 32 {
                    0..=25 => b'a' + r % 32,
                    26..=30 => b' ',
                    _ => b'\n',
                };
            }
        }
    }
}

/// The shape of a directory tree: `dirs` directories under the root, each holding `files`
/// regular files of `file_size` bytes of text; every `match_every`-th file holds one to three
/// copies of `pattern` (none when `match_every` is 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeSpec {
    /// Name of the tree's directory in the corpus.
    pub name: String,
    /// Directories under the root.
    pub dirs: usize,
    /// Files per directory.
    pub files: usize,
    /// Size of each file.
    pub file_size: usize,
    /// The string placed in some files.
    pub pattern: Vec<u8>,
    /// Which files hold it.
    pub match_every: usize,
}

/// The corpus shapes the tools (`cosy grep`, `du`, `ls`, `cp`) are measured on, each against
/// its peers: [`Corpus::shape`] writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shape {
    /// 10 directories of 1,000 files of 8 KiB (the `grep` tree).
    Wide,
    /// 100,000 files of 0–512 bytes in a 3-level tree (10 × 10 × 10 directories of 100
    /// files).
    Many,
    /// 5,000 files of mixed sizes up to 256 KiB (log-uniform: most small, some large) in 50
    /// directories of 100 files.
    Mixed,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 3] = [Shape::Wide, Shape::Many, Shape::Mixed];

    /// Its name in records (`wide`, `many`, `mixed`).
    pub fn name(self) -> &'static str {
        match self {
            Shape::Wide => "wide",
            Shape::Many => "many",
            Shape::Mixed => "mixed",
        }
    }

    /// What it is, in words.
    pub fn about(self) -> &'static str {
        match self {
            Shape::Wide => "10,000 files of 8 KiB in 10 directories",
            Shape::Many => "100,000 files of 0-512 bytes in a 3-level tree",
            Shape::Mixed => "5,000 files of up to 256 KiB",
        }
    }

    /// Directory fan-out per level and files per leaf directory, at `scale`.
    fn layout(self, scale: f64) -> (Vec<usize>, usize) {
        let files = |base: f64| ((base * scale).round() as usize).max(1);
        match self {
            Shape::Wide => (vec![10], files(1000.0)),
            Shape::Many => (vec![10, 10, 10], files(100.0)),
            Shape::Mixed => (vec![50], files(100.0)),
        }
    }

    /// The size of file `serial`.
    fn size(self, rng: &mut Rng) -> usize {
        match self {
            Shape::Wide => 8192,
            Shape::Many => (rng.next_u64() % 513) as usize,
            Shape::Mixed => {
                // log-uniform over 1 B .. 256 KiB, and a few empty files.
                let bits = rng.next_u64() % 19;
                if bits == 0 {
                    0
                } else {
                    let hi = 1u64 << bits;
                    (hi / 2 + rng.next_u64() % (hi / 2).max(1)) as usize
                }
            }
        }
    }
}

/// A tree written by [`Corpus::tree`] or [`Corpus::shape`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    /// Its root.
    pub root: PathBuf,
    /// Regular files in it.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Copies of the pattern placed in them.
    pub matches: u64,
}

/// The temporary directory the corpus lives in, and what was written there.
#[derive(Debug)]
pub struct Corpus {
    dir: tempfile::TempDir,
    trees: BTreeMap<String, Tree>,
    made: BTreeMap<String, PathBuf>,
}

impl Corpus {
    /// A new empty corpus directory under `parent` (the system's temporary directory if
    /// `None`).
    pub fn new(parent: Option<&Path>) -> io::Result<Self> {
        let mut b = tempfile::Builder::new();
        b.prefix("cosy-bench-");
        let dir = match parent {
            Some(p) => b.tempdir_in(p)?,
            None => b.tempdir()?,
        };
        Ok(Corpus {
            dir,
            trees: BTreeMap::new(),
            made: BTreeMap::new(),
        })
    }

    /// The corpus directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path in the corpus for something a workload writes itself (nothing is created).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A file of `size` random bytes (generated from `seed`), written once.
    pub fn file(&mut self, name: &str, size: u64, seed: u64) -> io::Result<PathBuf> {
        let key = format!("file:{name}:{size}:{seed}");
        if let Some(p) = self.made.get(&key) {
            return Ok(p.clone());
        }
        let path = self.dir.path().join(name);
        let mut f = io::BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let mut rng = Rng::new(seed);
        let mut block = vec![0u8; 1 << 16];
        let mut left = size;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            rng.fill(&mut block[..n]);
            f.write_all(&block[..n])?;
            left -= n as u64;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        self.made.insert(key, path.clone());
        Ok(path)
    }

    /// A directory of `files` files named `f000000`…, file `i` of size `i % 4096` bytes
    /// (sparse: the sizes are set, not written), written once. Returns the directory and the
    /// total size.
    pub fn flat_dir(&mut self, name: &str, files: usize) -> io::Result<(PathBuf, u64)> {
        let path = self.dir.path().join(name);
        let key = format!("flat:{name}:{files}");
        let total = (0..files as u64).map(|i| i % 4096).sum();
        if self.made.contains_key(&key) {
            return Ok((path, total));
        }
        fs::create_dir(&path)?;
        for i in 0..files {
            let f = File::create(path.join(format!("f{i:06}")))?;
            f.set_len(i as u64 % 4096)?;
        }
        rustix::fs::sync();
        self.made.insert(key, path.clone());
        Ok((path, total))
    }

    /// The tree `spec`, written once.
    pub fn tree(&mut self, spec: &TreeSpec) -> io::Result<Tree> {
        if let Some(t) = self.trees.get(&spec.name) {
            return Ok(t.clone());
        }
        let root = self.dir.path().join(&spec.name);
        fs::create_dir(&root)?;
        let mut rng = Rng::new(0x5EED ^ spec.files as u64);
        let mut buf = vec![0u8; spec.file_size];
        let (mut files, mut bytes, mut matches) = (0u64, 0u64, 0u64);
        for d in 0..spec.dirs {
            let dir = root.join(format!("d{d:02}"));
            fs::create_dir(&dir)?;
            for i in 0..spec.files {
                rng.fill_text(&mut buf);
                let serial = d * spec.files + i;
                if spec.match_every > 0 && serial.is_multiple_of(spec.match_every) {
                    matches += place(&mut buf, &spec.pattern, 1 + serial / spec.match_every % 3);
                }
                fs::write(dir.join(format!("f{i:05}.txt")), &buf)?;
                files += 1;
                bytes += buf.len() as u64;
            }
        }
        rustix::fs::sync();
        let tree = Tree {
            root,
            files,
            bytes,
            matches,
        };
        self.trees.insert(spec.name.clone(), tree.clone());
        Ok(tree)
    }
}

impl Corpus {
    /// The tree of `shape` at `scale` (file counts × scale), written once, named after the
    /// shape. Every seventh file holds one to three copies of `pattern` where it fits.
    pub fn shape(&mut self, shape: Shape, scale: f64, pattern: &[u8]) -> io::Result<Tree> {
        let name = format!("shape-{}", shape.name());
        if let Some(t) = self.trees.get(&name) {
            return Ok(t.clone());
        }
        let root = self.dir.path().join(&name);
        fs::create_dir(&root)?;
        let (fanout, per_dir) = shape.layout(scale);
        let mut rng = Rng::new(0xC05E ^ shape as u64);
        let mut buf = Vec::new();
        let (mut files, mut bytes, mut matches, mut serial) = (0u64, 0u64, 0u64, 0usize);
        // Every leaf directory: its index in each level, as `d0/d3/d7`.
        let leaves: usize = fanout.iter().product();
        for leaf in 0..leaves {
            let mut dir = root.clone();
            let mut rest = leaf;
            let mut parts = Vec::with_capacity(fanout.len());
            for &f in fanout.iter().rev() {
                parts.push(rest % f);
                rest /= f;
            }
            for p in parts.iter().rev() {
                dir.push(format!("d{p:02}"));
            }
            fs::create_dir_all(&dir)?;
            for i in 0..per_dir {
                buf.resize(shape.size(&mut rng), 0);
                rng.fill_text(&mut buf);
                if serial.is_multiple_of(7) {
                    matches += place(&mut buf, pattern, 1 + serial / 7 % 3);
                }
                fs::write(dir.join(format!("f{i:05}.txt")), &buf)?;
                files += 1;
                bytes += buf.len() as u64;
                serial += 1;
            }
        }
        rustix::fs::sync();
        let tree = Tree {
            root,
            files,
            bytes,
            matches,
        };
        self.trees.insert(name, tree.clone());
        Ok(tree)
    }
}

/// Writes `count` copies of `pattern` into `buf` at evenly spread places; returns how many
/// fit.
fn place(buf: &mut [u8], pattern: &[u8], count: usize) -> u64 {
    if pattern.is_empty() || buf.len() < pattern.len() {
        return 0;
    }
    let stride = buf.len() / count;
    let mut placed = 0;
    for k in 0..count {
        let at = k * stride + stride / 3;
        if stride >= pattern.len() && at + pattern.len() <= buf.len() {
            buf[at..at + pattern.len()].copy_from_slice(pattern);
            placed += 1;
        }
    }
    placed
}

/// What file system `path` is on, in words, with what matters to the benchmark: `ext4`,
/// `ext4 without a journal (…)`, `tmpfs (…)`.
pub fn describe_fs(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let kind = match rustix::fs::statfs(path) {
        Ok(s) => match s.f_type as u64 {
            0xEF53 => "ext4",
            0x0102_1994 => "tmpfs",
            0x5846_5342 => "xfs",
            0x9123_683E => "btrfs",
            0x794C_7630 => "overlayfs",
            _ => "another file system",
        },
        Err(_) => "an unknown file system",
    };
    if kind == "tmpfs" {
        return "tmpfs (in memory: cold-cache runs cannot read from a disk)".into();
    }
    if kind != "ext4" {
        return kind.into();
    }
    // ext4 with a journal has an entry `DEV-8` in /proc/fs/jbd2.
    let dev = fs::metadata(path).map(|m| m.dev()).unwrap_or(0);
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let name = fs::read_link(format!("/sys/dev/block/{major}:{minor}"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let journaled = match (&name, fs::read_dir("/proc/fs/jbd2")) {
        (Some(n), Ok(dir)) => dir.filter_map(Result::ok).any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{n}-"))
        }),
        _ => return kind.into(),
    };
    if journaled {
        kind.into()
    } else {
        "ext4 without a journal (inodes freed in the last minutes are not reused: creating \
         files soon after deleting many is slow)"
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_have_their_layout_and_sizes() {
        let mut c = Corpus::new(None).unwrap();
        let t = c.shape(Shape::Mixed, 0.1, b"NEEDLE").unwrap();
        assert_eq!(t.files, 500);
        let mut on_disk = (0u64, 0u64, 0u64);
        for d in fs::read_dir(&t.root).unwrap() {
            for f in fs::read_dir(d.unwrap().path()).unwrap() {
                let f = f.unwrap().path();
                let len = fs::metadata(&f).unwrap().len();
                assert!(len <= 256 << 10, "{} is {len} bytes", f.display());
                let text = fs::read(&f).unwrap();
                let n = text.windows(6).filter(|w| w == b"NEEDLE").count() as u64;
                on_disk = (on_disk.0 + 1, on_disk.1 + len, on_disk.2 + n);
            }
        }
        assert_eq!(on_disk, (t.files, t.bytes, t.matches));
        assert!(t.matches > 0);
        let many = c.shape(Shape::Many, 0.01, b"NEEDLE").unwrap();
        assert_eq!(many.files, 1000);
        assert!(many.root.join("d09/d09/d09/f00000.txt").is_file());
        assert_eq!(c.shape(Shape::Many, 0.01, b"NEEDLE").unwrap(), many);
    }

    #[test]
    fn trees_hold_the_placed_matches_and_are_made_once() {
        let mut c = Corpus::new(None).unwrap();
        let spec = TreeSpec {
            name: "t".into(),
            dirs: 2,
            files: 5,
            file_size: 1000,
            pattern: b"NEEDLE".to_vec(),
            match_every: 2,
        };
        let t = c.tree(&spec).unwrap();
        assert_eq!((t.files, t.bytes), (10, 10_000));
        let mut found = 0;
        for d in fs::read_dir(&t.root).unwrap() {
            for f in fs::read_dir(d.unwrap().path()).unwrap() {
                let data = fs::read(f.unwrap().path()).unwrap();
                found += memchr::memmem::find_iter(&data, b"NEEDLE").count() as u64;
            }
        }
        assert_eq!(found, t.matches);
        assert!(t.matches >= 5);
        assert_eq!(c.tree(&spec).unwrap(), t);
    }

    #[test]
    fn files_and_flat_dirs_have_their_sizes() {
        let mut c = Corpus::new(None).unwrap();
        let p = c.file("x", 100_000, 1).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().len(), 100_000);
        let (d, total) = c.flat_dir("flat", 10).unwrap();
        assert_eq!(fs::read_dir(&d).unwrap().count(), 10);
        assert_eq!(total, (0..10).sum::<u64>());
    }
}
