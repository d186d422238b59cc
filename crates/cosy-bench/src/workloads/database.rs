//! `database`: the thesis's database simulation (§4.3) — transactions at random 4 KiB-aligned
//! offsets of a file larger than the arena, reads and writes 2:1 (pgmeter's ratio: every
//! second transaction writes back the page it read, so the file never changes).
//!
//! The offsets come from a seeded xorshift64, registered with the executor as the user
//! function `xorshift` (the thesis's "function to generate a random number"); vanilla uses the
//! same generator. Both are written the naive way, `lseek` then `read`/`write`: the
//! optimizer's `lseek` → `pread` rewrite is what cosy gains (`direct-unopt` runs the compound
//! as written, to show it). The answer is the sum of the first 8 bytes of every page read.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use cosy_exec::{Backend, Functions};
use cosy_model::flags::{Mode, OFlags, Whence};
use cosy_model::{Arg, BinOp, Builder, Compound, FdRef, Op, Value, Width};

use super::{Ctx, Workload, bytes};
use crate::corpus::xorshift64;
use crate::exec::{Compiled, CosyVariant};
use crate::framework::{Answer, Case, Entry, VariantError, answer, variant};

/// The database workload.
pub const WORKLOAD: Workload = Workload {
    name: "database",
    parts: &["database"],
    about: "random 4 KiB page reads and writes (2:1) at offsets from a user function",
    build,
};

const PAGE: i64 = 4096;
const SEED: i64 = 0x2545_F491_4F6C_DD1D;

/// The user function: one xorshift64 step.
pub fn functions() -> Functions {
    let mut f = Functions::new();
    f.register("xorshift", |a| Ok(xorshift64(a.int(0)? as u64) as i64));
    f
}

/// The page offset drawn from generator state `x`.
fn offset(x: i64, pages: i64) -> i64 {
    (x & i64::MAX) % pages * PAGE
}

/// The compound: `x = seed; do { x = xorshift(x); off = (x & MAX) % pages * 4096;
/// lseek(fd, off, SEEK_SET); r = read(fd, page); sum += page[0..8]; if i % 2 == 0 {
/// lseek(fd, off, SEEK_SET); write(fd, page[0..r]) } i += 1 } while i < transactions`.
pub fn compound(file: &[u8], pages: i64, transactions: i64) -> Compound {
    let mut c = Builder::new();
    let path = c.input_path("file", file);
    let n = c.input_int("transactions", transactions);
    let x = c.input_int("seed", SEED);
    let page = c.buffer("page", PAGE as u32);
    let fd = c.openat(FdRef::Cwd, path, OFlags::RDWR, Mode::empty());
    let i = c.value("i", 0);
    let sum = c.value("sum", 0);
    let read = c.value("bytes", 0);
    c.do_while(transactions.max(1) as u32, |c| {
        c.push(Op::Call {
            dst: Some(x),
            func: "xorshift".into(),
            args: vec![Arg::Value(Value::Reg(x))],
        });
        let m = c.arith(BinOp::And, x, i64::MAX);
        let p = c.arith(BinOp::Rem, m, pages);
        let off = c.arith(BinOp::Mul, p, PAGE);
        c.lseek(fd, off, Whence::Set);
        let r = c.read(fd, page);
        c.accumulate(read, r);
        let v = c.load(Width::U64, page, 0);
        c.accumulate(sum, v);
        let odd = c.arith(BinOp::Rem, i, 2);
        c.if_(odd.eq(0), |c| {
            c.lseek(fd, off, Whence::Set);
            c.write(fd, page.prefix(r));
        });
        c.accumulate(i, 1);
        i.lt(n)
    });
    c.close(fd);
    c.output("sum", sum);
    c.output("bytes", read);
    c.finish()
}

/// The same with libc: lseek + read, every second transaction lseek + write.
fn vanilla(path: &std::path::Path, pages: i64, transactions: i64) -> Result<Answer, VariantError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let fd = f.as_raw_fd();
    let mut page = vec![0u8; PAGE as usize];
    let (mut x, mut sum, mut read) = (SEED, 0i64, 0i64);
    for i in 0..transactions {
        x = xorshift64(x as u64) as i64;
        let off = offset(x, pages);
        // SAFETY: plain calls on our open fd; `page` is valid for PAGE bytes.
        let r = unsafe {
            libc::lseek(fd, off, libc::SEEK_SET);
            libc::read(fd, page.as_mut_ptr().cast(), PAGE as usize)
        };
        if r < 0 {
            return Err(io::Error::last_os_error().into());
        }
        read += r as i64;
        sum = sum.wrapping_add(i64::from_le_bytes(page[..8].try_into().unwrap_or([0; 8])));
        if i % 2 == 0 {
            // SAFETY: as above; the first r bytes of `page` are initialised.
            let w = unsafe {
                libc::lseek(fd, off, libc::SEEK_SET);
                libc::write(fd, page.as_ptr().cast(), r as usize)
            };
            if w < 0 {
                return Err(io::Error::last_os_error().into());
            }
        }
    }
    Ok(answer(&[("sum", sum), ("bytes", read)]))
}

fn build(ctx: &mut Ctx<'_>, _part: &str) -> io::Result<Vec<Case>> {
    let size = ctx.scaled(64.0 * 1024.0 * 1024.0, 64 * 1024) / PAGE as u64 * PAGE as u64;
    let transactions = ctx.scaled(200_000.0, 30) as i64;
    let path = ctx.corpus.file("database.dat", size, 7)?;
    let pages = (size / PAGE as u64) as i64;
    let c = compound(&bytes(&path), pages, transactions);

    let p = path.clone();
    let mut case = Case::new("database")
        .param("file_bytes", size)
        .param("transactions", transactions)
        .variant(variant("vanilla", move || vanilla(&p, pages, transactions)));
    let entries = crate::exec::variants(c.clone(), functions());
    for e in entries {
        case = case.entry(e);
    }
    match Compiled::new(c, functions(), false) {
        Ok(plain) => {
            case = case.variant(Box::new(CosyVariant::new(
                "direct-unopt",
                Arc::new(plain),
                Backend::Direct,
            )))
        }
        Err(why) => {
            case = case.entry(Entry::Skipped {
                name: "direct-unopt".into(),
                reason: why,
            })
        }
    }
    Ok(vec![case])
}
