//! The compounds the benchmark builds with the Builder (crates/cosy-bench/src/workloads),
//! written with `compound!`: each prints to the same canonical text, up to names and the order
//! of the declaration tables, and the small ones run with the same results.

use cosy::{Backend, Compound, Policy, RunOptions};
use cosy_bench::workloads::{bonnie, burst, cp, database, du, grep, ls};

/// The canonical text of `c` up to names: registers, fd slots, path variables and buffers are
/// renamed by index and the tables put in the order the operations first mention them (the
/// Builder creates a register where it is declared, the macro where it is first written).
/// Inputs and outputs keep their names: they are the compound's interface.
fn canonical(mut c: Compound) -> String {
    fn rename(c: &mut Compound) {
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
    }
    rename(&mut c);
    // Without its table declarations, the text makes the tables in order of first mention.
    let text: String = cosy::text::print(&c)
        .lines()
        .filter(|l| {
            !["reg ", "fd ", "var ", "data "]
                .iter()
                .any(|d| l.starts_with(d))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    // Buffers are declared, not made on first mention: order their declarations by first use.
    let lines: Vec<&str> = text.lines().collect();
    let first_use = |decl: &str| {
        let name = decl.split(' ').nth(1).unwrap_or("");
        lines
            .iter()
            .position(|l| {
                !l.starts_with("buffer ")
                    && l.split(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '.'))
                        .any(|w| w == name)
            })
            .unwrap_or(usize::MAX)
    };
    let mut buffers: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("buffer "))
        .collect();
    buffers.sort_by_key(|d| first_use(d));
    let at = lines
        .iter()
        .position(|l| l.starts_with("buffer "))
        .unwrap_or(0);
    let mut reordered: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.starts_with("buffer "))
        .collect();
    for (k, d) in buffers.into_iter().enumerate() {
        reordered.insert(at + k, d);
    }
    let text: String = reordered.iter().map(|l| format!("{l}\n")).collect();
    let mut c = cosy::text::parse(&text).unwrap().compound;
    rename(&mut c);
    cosy::text::print(&c)
}

fn same(name: &str, ours: &str, theirs: Compound) -> Option<String> {
    let ours = canonical(cosy::text::parse(ours).unwrap().compound);
    let theirs = canonical(theirs);
    (ours != theirs)
        .then(|| format!("the macro's {name} differs from the bench's:\n{ours}\n---\n{theirs}"))
}

cosy::compound! {
    fn bonnie_write(#[default("f")] file: &Path) -> Written {
        let mut block = [0u8; 4096];
        let fd = openat(cwd, file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)?;
        let mut blocks = 0;
        #[bound(256)]
        loop {
            let n = write(fd, &block)?;
            blocks += 1;
            if blocks >= 256 {
                break;
            }
        }
        let rc = close(fd)?;
        Written { blocks }
    }
}

cosy::compound! {
    fn bonnie_rewrite(#[default("f")] file: &Path) -> Rewritten {
        let mut block = [0u8; 4096];
        let fd = openat(cwd, file, O_RDWR, 0)?;
        let mut bytes = 0;
        #[bound(257)]
        loop {
            let n = read(fd, &mut block)?;
            let back = 0 - n;
            let pos = lseek(fd, back, SEEK_CUR)?;
            let w = write(fd, &block[..n])?;
            bytes += w;
            if n != 4096 {
                break;
            }
        }
        let rc = close(fd)?;
        Rewritten { bytes }
    }
}

cosy::compound! {
    fn bonnie_read(#[default("f")] file: &Path) -> Read {
        let mut block = [0u8; 4096];
        let fd = openat(cwd, file, O_RDONLY, 0)?;
        let mut bytes = 0;
        #[bound(257)]
        loop {
            let n = read(fd, &mut block)?;
            bytes += n;
            if n != 4096 {
                break;
            }
        }
        let rc = close(fd)?;
        Read { bytes }
    }
}

cosy::compound! {
    fn burst_nop() -> Nops {
        let mut ops = 0;
        for i in 0..1000 {
            let rc = nop()?;
            ops += 1;
        }
        Nops { ops }
    }
}

cosy::compound! {
    fn burst_pread(#[default("f")] file: &Path) -> Preads {
        let mut ops = 0;
        let mut sum = 0;
        let fd = openat(cwd, file, O_RDONLY, 0)?;
        for i in 0..1000 {
            let mut b = [0u8; 1];
            let off = i * 4099 % (1 << 20);
            let n = pread(fd, &mut b, off)?;
            sum += load_u8(&b, 0);
            ops += n;
        }
        let rc = close(fd)?;
        Preads { ops, sum }
    }
}

cosy::compound! {
    fn ls_l(#[default("d")] dir: &Path) -> Listing {
        let mut ents = [0u8; 65536];
        let mut entries = 0;
        let mut bytes = 0;
        let d = openat(cwd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)?;
        #[bound(1_048_576)]
        loop {
            let len = getdents64(d, &mut ents)?;
            if len > 0 {
                for e in dirents(&ents[..len]) {
                    let mut st = [0u8; 256];
                    let rc = statx(d, e, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &mut st)?;
                    bytes += load_u64(&st, STATX_SIZE_OFFSET);
                    entries += 1;
                }
            }
            if len <= 0 {
                break;
            }
        }
        let rc = close(d)?;
        Listing { entries, bytes }
    }
}

cosy::compound! {
    fn du_tree(#[default("d")] root: &Path) -> Usage {
        let mut rents = [0u8; 65536];
        let mut st0 = [0u8; 256];
        let mut tree_bytes = 0;
        let mut files = 0;
        let mut bytes = 0;
        let rc = statx(cwd, root, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &mut st0)?;
        tree_bytes += load_u64(&st0, STATX_SIZE_OFFSET);
        let top = openat(cwd, root, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)?;
        #[bound(1_048_576)]
        loop {
            let len = getdents64(top, &mut rents)?;
            if len > 0 {
                for e in dirents(&rents[..len]) {
                    let mut st1 = [0u8; 256];
                    let rc = statx(top, e, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &mut st1)?;
                    let size = load_u64(&st1, STATX_SIZE_OFFSET);
                    tree_bytes += size;
                    if e.kind == DT_REG {
                        files += 1;
                        bytes += size;
                    }
                    if e.kind == DT_DIR {
                        let mut ents = [0u8; 65536];
                        let d = openat(top, e, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)?;
                        #[bound(1_048_576)]
                        loop {
                            let len = getdents64(d, &mut ents)?;
                            if len > 0 {
                                for f in dirents(&ents[..len]) {
                                    let mut st2 = [0u8; 256];
                                    let rc = statx(d, f, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &mut st2)?;
                                    let size = load_u64(&st2, STATX_SIZE_OFFSET);
                                    tree_bytes += size;
                                    if f.kind == DT_REG {
                                        files += 1;
                                        bytes += size;
                                    }
                                }
                            }
                            if len <= 0 {
                                break;
                            }
                        }
                        let rc = close(d)?;
                    }
                }
            }
            if len <= 0 {
                break;
            }
        }
        let rc = close(top)?;
        Usage { tree_bytes, files, bytes }
    }
}

cosy::compound! {
    #[functions(xorshift)]
    fn database_txn(#[default("f")] file: &Path, #[default(100)] transactions: i64, #[default(2685821657736338717)] seed: i64) -> Db {
        let mut page = [0u8; 4096];
        let fd = openat(cwd, file, O_RDWR, 0)?;
        let mut i = 0;
        let mut sum = 0;
        let mut bytes = 0;
        #[bound(100)]
        loop {
            seed = xorshift(seed);
            let off = (seed & 0x7fff_ffff_ffff_ffff) % 64 * 4096;
            let pos = lseek(fd, off, SEEK_SET)?;
            let r = read(fd, &mut page)?;
            bytes += r;
            sum += load_u64(&page, 0);
            if i % 2 == 0 {
                let pos = lseek(fd, off, SEEK_SET)?;
                let w = write(fd, &page[..r])?;
            }
            i += 1;
            if i >= transactions {
                break;
            }
        }
        let rc = close(fd)?;
        Db { sum, bytes }
    }
}

cosy::compound! {
    fn cp_tree(#[default("s")] src: &Path, #[default("d")] dst: &Path) -> Copied {
        let mut rents = [0u8; 65536];
        let mut copied = 0;
        let rc = mkdirat(cwd, dst, 0o755)?;
        let sroot = openat(cwd, src, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)?;
        let droot = openat(cwd, dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)?;
        #[bound(1_048_576)]
        loop {
            let len = getdents64(sroot, &mut rents)?;
            if len > 0 {
                for e in dirents(&rents[..len]) {
                    let mut ents = [0u8; 65536];
                    if e.kind == DT_DIR {
                        let rc = mkdirat(droot, e, 0o755)?;
                        let s = openat(sroot, e, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)?;
                        let t = openat(droot, e, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)?;
                        #[bound(1_048_576)]
                        loop {
                            let len = getdents64(s, &mut ents)?;
                            if len > 0 {
                                for f in dirents(&ents[..len]) {
                                    let mut data = [0u8; 65536];
                                    if f.kind == DT_REG {
                                        let from = openat(s, f, O_RDONLY, 0)?;
                                        let to = openat(t, f, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)?;
                                        #[bound(1_048_576)]
                                        loop {
                                            let r = read(from, &mut data)?;
                                            let w = write(to, &data[..r])?;
                                            copied += w;
                                            if r != 65536 {
                                                break;
                                            }
                                        }
                                        let rc = close(from)?;
                                        let rc = close(to)?;
                                    }
                                }
                            }
                            if len <= 0 {
                                break;
                            }
                        }
                        let rc = close(s)?;
                        let rc = close(t)?;
                    }
                }
            }
            if len <= 0 {
                break;
            }
        }
        let rc = close(sroot)?;
        let rc = close(droot)?;
        Copied { copied }
    }
}

cosy::compound! {
    /// The bench's grep with the pattern `openat`, stored into the arena byte by byte.
    fn grep_tree(#[default("d")] root: &Path) -> Matches {
        let mut needle = [0u8; 6];
        store_u8(&mut needle, 0, 111);
        store_u8(&mut needle, 1, 112);
        store_u8(&mut needle, 2, 101);
        store_u8(&mut needle, 3, 110);
        store_u8(&mut needle, 4, 97);
        store_u8(&mut needle, 5, 116);
        let mut rents = [0u8; 65536];
        let mut matches = 0;
        let top = openat(cwd, root, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)?;
        #[bound(1_048_576)]
        loop {
            let len = getdents64(top, &mut rents)?;
            if len > 0 {
                for e in dirents(&rents[..len]) {
                    let mut ents = [0u8; 65536];
                    if e.kind == DT_DIR {
                        let d = openat(top, e, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)?;
                        #[bound(1_048_576)]
                        loop {
                            let len = getdents64(d, &mut ents)?;
                            if len > 0 {
                                for f in dirents(&ents[..len]) {
                                    let mut data = [0u8; 65536];
                                    if f.kind == DT_REG {
                                        let fd = openat(d, f, O_RDONLY, 0)?;
                                        #[bound(1_048_576)]
                                        loop {
                                            let r = read(fd, &mut data)?;
                                            matches += find(&data[..r], &needle);
                                            if r != 65536 {
                                                break;
                                            }
                                        }
                                        let rc = close(fd)?;
                                    }
                                }
                            }
                            if len <= 0 {
                                break;
                            }
                        }
                        let rc = close(d)?;
                    }
                }
            }
            if len <= 0 {
                break;
            }
        }
        let rc = close(top)?;
        Matches { matches }
    }
}

#[test]
fn bench_compounds_print_as_the_builders() {
    let diffs: Vec<String> = [
        same(
            "bonnie write",
            bonnie_write::TEXT,
            bonnie::write_compound(b"f", 256),
        ),
        same(
            "bonnie rewrite",
            bonnie_rewrite::TEXT,
            bonnie::rewrite_compound(b"f", 256),
        ),
        same(
            "bonnie read",
            bonnie_read::TEXT,
            bonnie::read_compound(b"f", 256),
        ),
        same("burst nop", burst_nop::TEXT, burst::nop_compound(1000)),
        same(
            "burst pread",
            burst_pread::TEXT,
            burst::pread_compound(b"f", 1000),
        ),
        same("ls", ls_l::TEXT, ls::compound(b"d")),
        same("du", du_tree::TEXT, du::compound(b"d")),
        same(
            "database",
            database_txn::TEXT,
            database::compound(b"f", 64, 100),
        ),
        same("cp", cp_tree::TEXT, cp::compound(b"s", b"d")),
        same("grep", grep_tree::TEXT, grep::compound(b"d", b"openat")),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(diffs.is_empty(), "{}", diffs.join("\n\n"));
}

fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Direct, Backend::Auto];
    if !cosy_uring::skip_without_uring("the macro's bench compounds on the ring executor") {
        b.push(Backend::Ring);
    }
    b
}

/// Runs `c` with `inputs` set, giving its outputs by name.
fn run_builder(
    c: Compound,
    inputs: &[(&str, &str)],
    opts: &RunOptions,
    policy: &Policy,
) -> Vec<(String, i64)> {
    let mut c = c;
    for (k, v) in inputs {
        c.set_input(k, v).unwrap();
    }
    let v = cosy::verify(c, policy).unwrap();
    let out = cosy::run(&v, opts).unwrap();
    out.iter().map(|(n, v)| (n.to_string(), v)).collect()
}

fn pairs(o: &[(&str, i64)]) -> Vec<(String, i64)> {
    o.iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

#[test]
fn bench_compounds_run_like_the_builders() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let big = d.join("big");
    std::fs::write(
        &big,
        (0..1u32 << 20)
            .map(|i| (i % 253) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let tree = d.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a"), "aaaa").unwrap();
    std::fs::write(tree.join("sub/b"), vec![1u8; 5000]).unwrap();
    let p = Policy::trusted();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    for b in backends() {
        let o = RunOptions {
            backend: b,
            ..RunOptions::default()
        };
        let f = d.join(format!("bonnie-{b:?}"));
        let w = bonnie_write::run(&p, &o, &f).unwrap();
        assert_eq!(
            run_builder(
                bonnie::write_compound(b"x", 256),
                &[("file", &s(&f))],
                &o,
                &p
            ),
            pairs(&[("blocks", w.blocks)])
        );
        let r = bonnie_rewrite::run(&p, &o, &f).unwrap();
        assert_eq!(
            run_builder(
                bonnie::rewrite_compound(b"x", 256),
                &[("file", &s(&f))],
                &o,
                &p
            ),
            pairs(&[("bytes", r.bytes)])
        );
        let r = bonnie_read::run(&p, &o, &f).unwrap();
        assert_eq!(r.bytes, 256 * 4096);
        assert_eq!(
            run_builder(
                bonnie::read_compound(b"x", 256),
                &[("file", &s(&f))],
                &o,
                &p
            ),
            pairs(&[("bytes", r.bytes)])
        );

        let n = burst_nop::run(&p, &o).unwrap();
        assert_eq!(n.ops, 1000);
        let r = burst_pread::run(&p, &o, &big).unwrap();
        assert_eq!(
            run_builder(
                burst::pread_compound(b"x", 1000),
                &[("file", &s(&big))],
                &o,
                &p
            ),
            pairs(&[("ops", r.ops), ("sum", r.sum)])
        );

        let l = ls_l::run(&p, &o, &tree).unwrap();
        assert_eq!(
            run_builder(ls::compound(b"x"), &[("dir", &s(&tree))], &o, &p),
            pairs(&[("entries", l.entries), ("bytes", l.bytes)])
        );
        let u = du_tree::run(&p, &o, &tree).unwrap();
        assert_eq!(
            run_builder(du::compound(b"x"), &[("root", &s(&tree))], &o, &p),
            pairs(&[
                ("tree_bytes", u.tree_bytes),
                ("files", u.files),
                ("bytes", u.bytes)
            ])
        );
        assert_eq!((u.files, u.bytes), (2, 5004));

        std::fs::write(tree.join("sub/c"), "openat, openat").unwrap();
        let g = grep_tree::run(&p, &o, &tree).unwrap();
        assert_eq!(g.matches, 2);
        assert_eq!(
            run_builder(
                grep::compound(b"x", b"openat"),
                &[("root", &s(&tree))],
                &o,
                &p
            ),
            pairs(&[("matches", g.matches)])
        );
        let (to1, to2) = (d.join(format!("cp1-{b:?}")), d.join(format!("cp2-{b:?}")));
        let c = cp_tree::run(&p, &o, &tree, &to1).unwrap();
        assert_eq!(c.copied, 5000 + 14);
        assert_eq!(std::fs::read(to1.join("sub/b")).unwrap(), vec![1u8; 5000]);
        assert_eq!(
            run_builder(
                cp::compound(b"x", b"y"),
                &[("src", &s(&tree)), ("dst", &s(&to2))],
                &o,
                &p
            ),
            pairs(&[("copied", c.copied)])
        );
        std::fs::remove_file(tree.join("sub/c")).unwrap();

        let db = d.join(format!("db-{b:?}"));
        std::fs::write(&db, vec![3u8; 64 * 4096]).unwrap();
        let mut pf = p.clone();
        pf.functions.insert("xorshift".into());
        let of = RunOptions {
            backend: b,
            functions: database::functions(),
            ..RunOptions::default()
        };
        let x = database_txn::run(&pf, &of, &db, 100, 0x2545_F491_4F6C_DD1D).unwrap();
        assert_eq!(
            run_builder(
                database::compound(b"x", 64, 100),
                &[("file", &s(&db))],
                &of,
                &pf
            ),
            pairs(&[("sum", x.sum), ("bytes", x.bytes)])
        );
    }
}
