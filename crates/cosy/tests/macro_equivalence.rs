//! The macro versions of `examples/*.cosy`: each compiles to the same compound as the
//! hand-written text (up to the names of registers, fd slots, path variables and buffers) and
//! runs with the same results on every executor.

use std::path::{Path, PathBuf};

use cosy::{Backend, Compound, Policy, RunOptions};

cosy::compound! {
    /// examples/cat.cosy: copy a file to standard output, 64 KiB at a time.
    fn cat(#[default("README.md")] file: &Path) -> Cat {
        let mut buf = [0u8; 65536];
        let f = openat(cwd, file, O_RDONLY, 0)?;
        let mut bytes = 0;
        #[bound(10_000_000)]
        loop {
            let n = read(f, &mut buf)?;
            if n == 0 {
                break;
            }
            write(stdout, &buf[..n])?;
            bytes += n;
        }
        close(f)?;
        Cat { bytes }
    }
}

cosy::compound! {
    /// examples/copy.cosy: copy one file to another (created or truncated).
    fn copy(#[default("README.md")] src: &Path, #[default("README.md.copy")] dst: &Path) -> Copy {
        let mut buf = [0u8; 65536];
        let from = openat(cwd, src, O_RDONLY, 0)?;
        let to = openat(cwd, dst, O_WRONLY | O_CREAT | O_TRUNC, 0o644)?;
        let mut copied = 0;
        #[bound(10_000_000)]
        loop {
            let n = read(from, &mut buf)?;
            if n == 0 {
                break;
            }
            let w = write(to, &buf[..n])?;
            copied += w;
        }
        close(from)?;
        close(to)?;
        Copy { copied }
    }
}

cosy::compound! {
    /// examples/dirsize.cosy: the sum of the sizes of a directory's entries.
    fn dirsize(#[default("examples")] dir: &Path) -> Dirsize {
        let mut ents = [0u8; 65536];
        let d = openat(cwd, dir, O_RDONLY | O_DIRECTORY, 0)?;
        let mut total = 0;
        let mut entries = 0;
        for e in dirents(d, &mut ents) {
            let mut st = [0u8; 256];
            statx(d, e, AT_SYMLINK_NOFOLLOW, STATX_SIZE, &mut st)?;
            let size = load_u64(&st, STATX_SIZE_OFFSET);
            total += size;
            entries += 1;
        }
        close(d)?;
        Dirsize { total, entries }
    }
}

cosy::compound! {
    /// examples/getpid.cosy: a loop of N trivial system calls.
    fn getpid_loop(#[default(256)] count: i64) -> Getpid {
        let mut i = 0;
        let pid;
        #[bound(100_000_000)]
        loop {
            pid = getpid()?;
            i += 1;
            if i >= count {
                break;
            }
        }
        Getpid { pid, calls: i }
    }
}

cosy::compound! {
    /// examples/thesis.cosy: the thesis's read loop.
    fn thesis(#[default("Cargo.toml")] name: &Path) -> Thesis {
        let mut bf = [0u8; 4096];
        let fd = openat(cwd, name, O_RDONLY, 0)?;
        let mut total = 0;
        #[bound(10_000_000)]
        loop {
            let rln = read(fd, &mut bf)?;
            total += rln;
            if rln != 4096 {
                break;
            }
        }
        close(fd)?;
        Thesis { total }
    }
}

cosy::compound! {
    /// examples/wordcount.cosy: occurrences of a word in the regular files of a directory.
    fn wordcount(#[default("examples")] dir: &Path, #[default("openat")] word: &[u8]) -> Wordcount {
        let mut ents = [0u8; 65536];
        let d = openat(cwd, dir, O_RDONLY | O_DIRECTORY, 0)?;
        let mut count = 0;
        let mut files = 0;
        for e in dirents(d, &mut ents) {
            let mut data = [0u8; 1 << 20];
            if e.kind != DT_REG {
                continue;
            }
            let f = openat(d, e, O_RDONLY, 0)?;
            let r = read(f, &mut data)?;
            close(f)?;
            let c = find(&data[..r], word);
            count += c;
            files += 1;
        }
        close(d)?;
        Wordcount { count, files }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The compound of `examples/NAME.cosy`.
fn example(name: &str) -> Compound {
    let path = repo().join("examples").join(format!("{name}.cosy"));
    let text = std::fs::read_to_string(&path).unwrap();
    cosy::text::parse(&text).unwrap().compound
}

/// The canonical text of `c` with registers, fd slots, path variables and buffers renamed by
/// their index (`r0`, `f0`, `p0`, `b0`; inputs and outputs keep their names, which are the
/// compound's interface): what a macro compound and a hand-written one must share.
fn canonical(mut c: Compound) -> String {
    // Inputs are renamed too where they name a register, so `input int count` stays
    // `input int count` on both sides.
    for (i, r) in c.regs.iter_mut().enumerate() {
        *r = format!("r{i}");
    }
    for (i, f) in c.fds.iter_mut().enumerate() {
        *f = format!("f{i}");
    }
    for (i, p) in c.paths.iter_mut().enumerate() {
        *p = format!("p{i}");
    }
    for (i, b) in c.buffers.iter_mut().enumerate() {
        b.name = format!("b{i}");
    }
    cosy::text::print(&c)
}

#[test]
fn macro_compounds_print_as_the_examples() {
    let cases: [(&str, &str); 6] = [
        ("cat", cat::TEXT),
        ("copy", copy::TEXT),
        ("dirsize", dirsize::TEXT),
        ("getpid", getpid_loop::TEXT),
        ("thesis", thesis::TEXT),
        ("wordcount", wordcount::TEXT),
    ];
    for (name, text) in cases {
        let ours = cosy::text::parse(text).unwrap().compound;
        assert_eq!(
            canonical(ours),
            canonical(example(name)),
            "the macro's {name} differs from examples/{name}.cosy"
        );
    }
}

fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Direct, Backend::Auto];
    if !cosy_uring::skip_without_uring("the macro compounds on the ring executor") {
        b.push(Backend::Ring);
    }
    b
}

fn opts(backend: Backend) -> RunOptions {
    RunOptions {
        backend,
        ..RunOptions::default()
    }
}

/// Runs the hand-written example with `inputs` set, giving its outputs by name.
fn run_example(name: &str, inputs: &[(&str, &str)], backend: Backend) -> Vec<(String, i64)> {
    let mut c = example(name);
    for (k, v) in inputs {
        c.set_input(k, v).unwrap();
    }
    let v = cosy::verify(c, &Policy::trusted()).unwrap();
    let out = cosy::run(&v, &opts(backend)).unwrap();
    out.iter().map(|(n, v)| (n.to_string(), v)).collect()
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "openat openat and more openat\n").unwrap();
    std::fs::write(dir.path().join("b.txt"), vec![b'x'; 10_000]).unwrap();
    std::fs::write(dir.path().join("c.txt"), vec![b'y'; 4096]).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn macro_compounds_run_like_the_examples_on_every_executor() {
    let dir = fixture();
    let d = dir.path();
    let p = Policy::trusted();
    for b in backends() {
        let o = opts(b);
        let file = d.join("b.txt");
        let exact = d.join("c.txt");

        let t = thesis::run(&p, &o, &file).unwrap();
        assert_eq!(
            run_example("thesis", &[("name", s(&file))], b),
            [("total".into(), t.total)]
        );
        assert_eq!(t.total, 10_000);
        let t = thesis::run(&p, &o, &exact).unwrap();
        assert_eq!(t.total, 4096);

        let dst = d.join(format!("copy-{b:?}"));
        let c = copy::run(&p, &o, &file, &dst).unwrap();
        assert_eq!(c.copied, 10_000);
        assert_eq!(std::fs::read(&dst).unwrap(), std::fs::read(&file).unwrap());
        let dst2 = d.join(format!("copy2-{b:?}"));
        assert_eq!(
            run_example("copy", &[("src", s(&file)), ("dst", s(&dst2))], b),
            [("copied".into(), c.copied)]
        );

        let g = getpid_loop::run(&p, &o, 1000).unwrap();
        assert_eq!(g.calls, 1000);
        assert_eq!(g.pid, i64::from(std::process::id()));
        assert_eq!(
            run_example("getpid", &[("count", "1000")], b),
            [("pid".into(), g.pid), ("calls".into(), g.calls)]
        );

        let z = dirsize::run(&p, &o, d).unwrap();
        assert_eq!(
            run_example("dirsize", &[("dir", s(d))], b),
            [("total".into(), z.total), ("entries".into(), z.entries)]
        );
        assert!(z.entries >= 4, "{} entries", z.entries);

        let w = wordcount::run(&p, &o, d, "openat").unwrap();
        assert_eq!(
            run_example("wordcount", &[("dir", s(d)), ("word", "openat")], b),
            [("count".into(), w.count), ("files".into(), w.files)]
        );
        assert_eq!(w.count, 3);
    }
}

#[test]
fn cat_writes_the_file_to_stdout() {
    // Standard output is the test harness's: a small file keeps it short.
    let dir = fixture();
    let f = dir.path().join("a.txt");
    for b in backends() {
        let out = cat::run(&Policy::trusted(), &opts(b), &f).unwrap();
        assert_eq!(out.bytes, 30);
        assert_eq!(
            run_example("cat", &[("file", s(&f))], b),
            [("bytes".into(), out.bytes)]
        );
    }
}
