//! `bonnie`: the block phases of the Bonnie benchmark (§4.3) on one file in 4 KiB blocks —
//! `bonnie-write` (create the file block by block), `bonnie-rewrite` (read each block, seek
//! back, write it again) and `bonnie-read` (read it block by block). Bonnie's per-character
//! phases (putc/getc) are buffered in libc and left out, as in the thesis.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cosy_exec::Functions;
use cosy_model::flags::{Mode, OFlags, Whence};
use cosy_model::{BinOp, Builder, Compound, FdRef};

use super::{Ctx, Workload, bytes};
use crate::framework::{Answer, Case, VariantError, answer, variant};

/// The Bonnie workload.
pub const WORKLOAD: Workload = Workload {
    name: "bonnie",
    parts: &["bonnie-write", "bonnie-rewrite", "bonnie-read"],
    about: "Bonnie's block write, rewrite and read of one file in 4 KiB blocks",
    build,
};

const BLOCK: i64 = 4096;

/// `fd = open(O_CREAT|O_TRUNC); do { write(fd, block); i += 1 } while i < blocks; close`.
pub fn write_compound(file: &[u8], blocks: i64) -> Compound {
    let mut c = Builder::new();
    let path = c.input_path("file", file);
    let buf = c.buffer("block", BLOCK as u32);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC;
    let fd = c.openat(FdRef::Cwd, path, flags, Mode::from_raw_mode(0o644));
    let i = c.value("blocks", 0);
    c.do_while(blocks.max(1) as u32, |c| {
        c.write(fd, buf);
        c.accumulate(i, 1);
        i.lt(blocks)
    });
    c.close(fd);
    c.output("blocks", i);
    c.finish()
}

/// `fd = open(O_RDWR); do { n = read(fd, block); lseek(fd, -n, SEEK_CUR);
/// w = write(fd, block[0..n]); bytes += w } while n == 4096; close`.
pub fn rewrite_compound(file: &[u8], blocks: i64) -> Compound {
    let mut c = Builder::new();
    let path = c.input_path("file", file);
    let buf = c.buffer("block", BLOCK as u32);
    let fd = c.openat(FdRef::Cwd, path, OFlags::RDWR, Mode::empty());
    let total = c.value("bytes", 0);
    c.do_while(blocks as u32 + 1, |c| {
        let n = c.read(fd, buf);
        let back = c.arith(BinOp::Sub, 0, n);
        c.lseek(fd, back, Whence::Cur);
        let w = c.write(fd, buf.prefix(n));
        c.accumulate(total, w);
        n.eq(BLOCK)
    });
    c.close(fd);
    c.output("bytes", total);
    c.finish()
}

/// `fd = open(O_RDONLY); do { n = read(fd, block); bytes += n } while n == 4096; close`.
pub fn read_compound(file: &[u8], blocks: i64) -> Compound {
    let mut c = Builder::new();
    let path = c.input_path("file", file);
    let buf = c.buffer("block", BLOCK as u32);
    let fd = c.openat(FdRef::Cwd, path, OFlags::RDONLY, Mode::empty());
    let total = c.value("bytes", 0);
    c.do_while(blocks as u32 + 1, |c| {
        let n = c.read(fd, buf);
        c.accumulate(total, n);
        n.eq(BLOCK)
    });
    c.close(fd);
    c.output("bytes", total);
    c.finish()
}

fn vanilla_write(path: &Path, blocks: i64) -> Result<Answer, VariantError> {
    let mut f = File::create(path)?;
    let block = [0u8; BLOCK as usize];
    let mut n = 0;
    while n < blocks {
        f.write_all(&block)?;
        n += 1;
    }
    Ok(answer(&[("blocks", n)]))
}

fn vanilla_rewrite(path: &Path) -> Result<Answer, VariantError> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let mut block = [0u8; BLOCK as usize];
    let mut total = 0i64;
    loop {
        let n = f.read(&mut block)?;
        f.seek(SeekFrom::Current(-(n as i64)))?;
        let w = f.write(&block[..n])?;
        total += w as i64;
        if n as i64 != BLOCK {
            break;
        }
    }
    Ok(answer(&[("bytes", total)]))
}

fn vanilla_read(path: &Path) -> Result<Answer, VariantError> {
    let mut f = File::open(path)?;
    let mut block = [0u8; BLOCK as usize];
    let mut total = 0i64;
    loop {
        let n = f.read(&mut block)?;
        total += n as i64;
        if n as i64 != BLOCK {
            break;
        }
    }
    Ok(answer(&[("bytes", total)]))
}

fn build(ctx: &mut Ctx<'_>, part: &str) -> io::Result<Vec<Case>> {
    let size = ctx.scaled(64.0 * 1024.0 * 1024.0, 64 * 1024) / BLOCK as u64 * BLOCK as u64;
    let blocks = size as i64 / BLOCK;
    let case = Case::new(part).param("file_bytes", size);
    let case = match part {
        "bonnie-write" => {
            let out: PathBuf = ctx.corpus.scratch("bonnie-write.dat");
            let (o1, o2, o3) = (out.clone(), out.clone(), out.clone());
            let mut case = case
                .reset(move || match fs::remove_file(&o1) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                })
                .check(move || Ok(answer(&[("bytes", fs::metadata(&o2)?.len() as i64)])))
                .expect(answer(&[("bytes", size as i64), ("blocks", blocks)]))
                .variant(variant("vanilla", move || vanilla_write(&o3, blocks)));
            let entries =
                crate::exec::variants(write_compound(&bytes(&out), blocks), Functions::new());
            for e in entries {
                case = case.entry(e);
            }
            case
        }
        "bonnie-rewrite" | "bonnie-read" => {
            let path = ctx.corpus.file("bonnie.dat", size, 3)?;
            let p = path.clone();
            let (mut case, c) = if part == "bonnie-read" {
                (
                    case.variant(variant("vanilla", move || vanilla_read(&p))),
                    read_compound(&bytes(&path), blocks),
                )
            } else {
                (
                    case.variant(variant("vanilla", move || vanilla_rewrite(&p))),
                    rewrite_compound(&bytes(&path), blocks),
                )
            };
            case = case.expect(answer(&[("bytes", size as i64)]));
            let entries = crate::exec::variants(c, Functions::new());
            for e in entries {
                case = case.entry(e);
            }
            case
        }
        other => return Err(io::Error::other(format!("no part {other} in bonnie"))),
    };
    Ok(vec![case])
}
