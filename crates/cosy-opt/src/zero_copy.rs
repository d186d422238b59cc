//! `read` + `write` of the same bytes → `copy_file_range` or `sendfile` (zero copy).
//!
//! ```text
//! n = read A buf                n = copy_file_range A -1 B -1 LEN 0
//! if n == 0 goto done      →    if n == 0 goto done
//! w = write B buf[0..n]         w = n
//! ```
//!
//! and `n = sendfile B A -1 LEN` when `B` is `stdout` or `stderr`. `pread`/`pwrite` with
//! immediate offsets `>= 0` are handled the same way, the offsets passed to the call (the
//! `pwrite` side only towards an fd slot). The rewrite applies when:
//!
//! - the compound stops at the first failure (mode `stop`; the read's result is then `>= 0`
//!   when the write runs);
//! - the read fills the buffer from byte 0, over a length known before the run (the whole
//!   buffer or an immediate end): `LEN`;
//! - the write writes `buf[0..n]`, `n` being the read's result register;
//! - the buffer is touched by no other operation of the compound (no load, no function, no
//!   other read or write), so its bytes are never observed;
//! - the write is reached only from the read, through moves, arithmetic that cannot fail and
//!   forward jumps: a jump that skips the write is taken only when `n == 0` (`if n == 0 goto`,
//!   `if n <= 0 goto`, `if n < 1 goto`), and nothing between writes `n`;
//! - `A` is an fd slot only ever filled by `openat`/`openat2`; for `copy_file_range`, `B` too:
//!   another slot, certainly open at the read, every open into it for writing (`O_WRONLY` or
//!   `O_RDWR`, immediate flags) without `O_APPEND` (which `copy_file_range` refuses), and not
//!   with the same constant path as `A` — so the write side cannot fail with `EBADF` where
//!   the read did not.
//!
//! The copy takes the place and origin of the read; the write becomes `w = n` (its origin the
//! write's) when `w` is read, and disappears otherwise. One rewrite is one pair.
//!
//! Where the kernel cannot make the transfer (`copy_file_range` between two file systems or from
//! `/proc`, `sendfile` to an `O_APPEND` output or from a FIFO) the executors make it by a read
//! and a write of the same bytes (docs/semantics.md), so the rewrite gives the loop's result in
//! every environment the loop worked in; an error of the write side is reported at the read.

use std::collections::{BTreeMap, BTreeSet};

use cosy_model::{Arg, BinOp, BufRange, Cond, ErrorMode, FdRef, FdSlot, Op, Reg, Ret, Sys, Value};

use crate::analysis::{
    Cfg, Edits, NewOp, Program, SlotInfo, access_mode_in, buffer_size, imm_of, may_trap, must_open,
    read_counts, slot_infos, slot_of,
};

/// Whether `c` can be true with `n >= 0` only when `n == 0`.
fn only_when_zero(c: &Cond, n: Reg) -> bool {
    let (op, k) = match (c.a, c.b) {
        (Value::Reg(r), Value::Imm(k)) if r == n => (c.op, k),
        (Value::Imm(k), Value::Reg(r)) if r == n => (
            match c.op {
                BinOp::Lt => BinOp::Gt,
                BinOp::Le => BinOp::Ge,
                BinOp::Gt => BinOp::Lt,
                BinOp::Ge => BinOp::Le,
                other => other,
            },
            k,
        ),
        _ => return false,
    };
    match op {
        BinOp::Eq => k <= 0,
        BinOp::Le => k <= 0,
        BinOp::Lt => k <= 1,
        _ => false,
    }
}

/// Whether the write at `j` is reached only from the read at `i` as described above.
fn straight_path(p: &Program, g: &Cfg, i: usize, j: usize, n: Reg) -> bool {
    for t in i + 1..=j {
        if g.pred[t].iter().any(|&q| q < i || q >= t) {
            return false;
        }
        if t == j {
            break;
        }
        let op = &p.c.ops[t];
        let ok = match op {
            Op::Mov { dst, .. } => *dst != n,
            Op::Arith { dst, .. } => *dst != n && !may_trap(&p.c, op),
            Op::Jump { cond, target, .. } => {
                let target = *target as usize;
                target > t && (target <= j || cond.as_ref().is_some_and(|c| only_when_zero(c, n)))
            }
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// The buffer range `buf[0..LEN]` of a read, with `LEN`.
fn read_len(p: &Program, r: &BufRange) -> Option<i64> {
    if r.start != Value::Imm(0) {
        return None;
    }
    let size = i64::from(buffer_size(&p.c, r.buf)?);
    match r.end {
        None => Some(size),
        Some(Value::Imm(e)) if (0..=size).contains(&e) => Some(e),
        _ => None,
    }
}

/// An offset operand of a `pread`/`pwrite` (an immediate `>= 0`) or `-1` for `read`/`write`.
fn offset(call: Sys, args: &[Arg]) -> Option<i64> {
    match call {
        Sys::Read | Sys::Write => Some(-1),
        _ => imm_of(args.get(2)).filter(|&v| v >= 0),
    }
}

/// The replacement call for the pair `(i, j)`, if it qualifies.
fn rewrite(
    p: &Program,
    g: &Cfg,
    infos: &BTreeMap<FdSlot, SlotInfo>,
    open: &[Option<BTreeSet<FdSlot>>],
    users: &BTreeMap<cosy_model::BufId, Vec<usize>>,
    i: usize,
) -> Option<(usize, Op)> {
    let Op::Sys {
        call: rcall @ (Sys::Read | Sys::Pread),
        args: rargs,
        ret: Ret::Reg(n),
    } = &p.c.ops[i]
    else {
        return None;
    };
    let a = slot_of(rargs.first())?;
    let a_info = infos.get(&a).filter(|info| info.opened_with(|_| true))?;
    let Some(Arg::Buf(range)) = rargs.get(1) else {
        return None;
    };
    let len = read_len(p, range)?;
    let off_in = offset(*rcall, rargs)?;
    let &[first, j] = users.get(&range.buf)?.as_slice() else {
        return None;
    };
    if first != i || j <= i {
        return None;
    }
    let Op::Sys {
        call: wcall @ (Sys::Write | Sys::Pwrite),
        args: wargs,
        ..
    } = &p.c.ops[j]
    else {
        return None;
    };
    let expected = BufRange {
        buf: range.buf,
        start: Value::Imm(0),
        end: Some(Value::Reg(*n)),
    };
    if wargs.get(1) != Some(&Arg::Buf(expected)) {
        return None;
    }
    let off_out = offset(*wcall, wargs)?;
    if !straight_path(p, g, i, j, *n) {
        return None;
    }
    let op = match wargs.first() {
        Some(Arg::Fd(FdRef::Slot(b))) => {
            let b_info = infos.get(b).filter(|info| {
                info.opened_with(|f| {
                    access_mode_in(f, &[libc::O_WRONLY, libc::O_RDWR])
                        && f & i64::from(libc::O_APPEND) == 0
                })
            })?;
            let b_open = open
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|set| set.contains(b));
            if *b == a || !b_open {
                return None;
            }
            let same_path = a_info
                .opens
                .iter()
                .any(|x| b_info.opens.iter().any(|y| x.get(..2) == y.get(..2)));
            if same_path {
                return None;
            }
            Op::Sys {
                call: Sys::CopyFileRange,
                args: vec![
                    Arg::Fd(FdRef::Slot(a)),
                    Arg::Value(Value::Imm(off_in)),
                    Arg::Fd(FdRef::Slot(*b)),
                    Arg::Value(Value::Imm(off_out)),
                    Arg::Value(Value::Imm(len)),
                    Arg::Value(Value::Imm(0)),
                ],
                ret: Ret::Reg(*n),
            }
        }
        Some(Arg::Fd(FdRef::Std(out @ (1 | 2)))) if *wcall == Sys::Write => Op::Sys {
            call: Sys::Sendfile,
            args: vec![
                Arg::Fd(FdRef::Std(*out)),
                Arg::Fd(FdRef::Slot(a)),
                Arg::Value(Value::Imm(off_in)),
                Arg::Value(Value::Imm(len)),
            ],
            ret: Ret::Reg(*n),
        },
        _ => return None,
    };
    Some((j, op))
}

/// Runs the pass; returns the number of read/write pairs rewritten.
pub(crate) fn run(p: &mut Program) -> usize {
    if p.c.mode != ErrorMode::Stop {
        return 0;
    }
    let Some(g) = Cfg::new(&p.c) else { return 0 };
    let infos = slot_infos(&p.c);
    let open = must_open(&p.c, &g);
    let mut users: BTreeMap<cosy_model::BufId, Vec<usize>> = BTreeMap::new();
    for (t, op) in p.c.ops.iter().enumerate() {
        let mut bufs = op.buffers();
        bufs.sort();
        bufs.dedup();
        for b in bufs {
            users.entry(b).or_default().push(t);
        }
    }
    let reads = read_counts(&p.c);
    let mut edits = Edits::new(p);
    let mut count = 0;
    for i in 0..g.n {
        let Some((j, op)) = rewrite(p, &g, &infos, &open, &users, i) else {
            continue;
        };
        edits.replace(i, vec![NewOp::plain(op, p.origin[i])]);
        match &p.c.ops[j] {
            Op::Sys {
                ret: Ret::Reg(w), ..
            } if reads.get(w).copied().unwrap_or(0) > 0 => {
                let Op::Sys {
                    ret: Ret::Reg(n), ..
                } = &p.c.ops[i]
                else {
                    continue;
                };
                let mov = Op::Mov {
                    dst: *w,
                    src: Value::Reg(*n),
                };
                edits.replace(j, vec![NewOp::plain(mov, p.origin[j])]);
            }
            _ => edits.remove(j),
        }
        count += 1;
    }
    if count > 0 && edits.apply(p) {
        count
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use cosy_model::flags::{Mode, OFlags};
    use cosy_model::{Arg, BinOp, Builder, Compound, FdRef, Op, Sys, Value};

    use crate::analysis::testing::{calls, only, set_target};

    /// copy.cosy: read a chunk, stop at 0, write it, count it; `out` is where it goes.
    fn copy_loop(
        out: Option<FdRef>,
        out_flags: OFlags,
        extra: impl FnOnce(&mut Builder),
    ) -> Compound {
        let mut b = Builder::new();
        let buf = b.buffer("buf", 65536);
        let src = b.path("src");
        let dst = b.path("dst");
        let from = b.openat(FdRef::Cwd, src, OFlags::RDONLY, Mode::empty());
        let to = match out {
            Some(fd) => fd,
            None => b.openat(FdRef::Cwd, dst, out_flags, Mode::from_raw_mode(0o644)),
        };
        let copied = b.value("copied", 0);
        let top = b.here();
        let n = b.read(from, buf);
        let skip = b.push(Op::Jump {
            cond: Some(n.eq(0).into()),
            target: 0,
            bound: None,
        });
        let w = b.write(to, buf.prefix(n));
        b.accumulate(copied, w);
        b.push(Op::Jump {
            cond: None,
            target: top,
            bound: Some(1_000_000),
        });
        let done = b.here();
        b.close(from);
        extra(&mut b);
        b.output("copied", copied);
        let mut c = b.finish();
        set_target(&mut c, skip, done);
        c
    }

    const TRUNC: OFlags = OFlags::WRONLY.union(OFlags::CREATE).union(OFlags::TRUNC);

    #[test]
    fn read_write_between_files_becomes_copy_file_range() {
        let c = copy_loop(None, TRUNC, |_| {});
        let o = only(&c, "zero_copy");
        assert_eq!(o.applied, [("zero_copy", 1)]);
        assert_eq!(
            calls(&o.compound),
            [Sys::Openat, Sys::Openat, Sys::CopyFileRange, Sys::Close]
        );
        let Op::Sys { args, ret, .. } = &o.compound.ops[3] else {
            panic!()
        };
        assert_eq!(args[1], Arg::Value(Value::Imm(-1)));
        assert_eq!(args[3], Arg::Value(Value::Imm(-1)));
        assert_eq!(args[4], Arg::Value(Value::Imm(65536)));
        let Op::Sys { ret: read_ret, .. } = &c.ops[3] else {
            panic!()
        };
        assert_eq!(ret, read_ret);
        // The write became `w = n`, with the write's origin.
        assert!(matches!(o.compound.ops[5], Op::Mov { .. }));
        assert_eq!(o.origin, (0..c.ops.len() as u32).collect::<Vec<_>>());
    }

    #[test]
    fn read_write_to_stdout_becomes_sendfile() {
        let c = copy_loop(Some(FdRef::Std(1)), OFlags::empty(), |_| {});
        let o = only(&c, "zero_copy");
        assert_eq!(calls(&o.compound), [Sys::Openat, Sys::Sendfile, Sys::Close]);
        let Op::Sys { args, .. } = &o.compound.ops[2] else {
            panic!()
        };
        assert_eq!(args[0], Arg::Fd(FdRef::Std(1)));
        assert_eq!(args[3], Arg::Value(Value::Imm(65536)));
    }

    #[test]
    fn an_unread_write_result_disappears() {
        // n = read a buf[0..100]; write b buf[0..n] (result unread); output n
        let mut b = Builder::new();
        let buf = b.buffer("buf", 4096);
        let (src, dst) = (b.path("src"), b.path("dst"));
        let a = b.openat(FdRef::Cwd, src, OFlags::RDONLY, Mode::empty());
        let out = b.openat(FdRef::Cwd, dst, TRUNC, Mode::from_raw_mode(0o644));
        let n = b.read(a, buf.prefix(100));
        b.sys_discard(Sys::Write, vec![Arg::Fd(out), Arg::Buf(buf.prefix(n))]);
        b.output("n", n);
        let c = b.finish();
        let o = only(&c, "zero_copy");
        assert_eq!(
            calls(&o.compound),
            [Sys::Openat, Sys::Openat, Sys::CopyFileRange]
        );
        assert_eq!(o.origin, [0, 1, 2]);
        let Op::Sys { args, .. } = &o.compound.ops[2] else {
            panic!()
        };
        assert_eq!(args[4], Arg::Value(Value::Imm(100)));
    }

    #[test]
    fn not_when_the_buffer_is_observed() {
        // A function reads the buffer.
        let c = copy_loop(None, TRUNC, |b| {
            let buf = b.compound().buffer("buf").expect("buf");
            b.call("checksum", buf);
        });
        let o = only(&c, "zero_copy");
        assert_eq!(o.compound, c);
        assert_eq!(o.applied, [("zero_copy", 0)]);

        // A load reads it.
        let c = copy_loop(None, TRUNC, |b| {
            let buf = b.compound().buffer("buf").expect("buf");
            b.load(cosy_model::Width::U8, buf, 0);
        });
        assert_eq!(only(&c, "zero_copy").compound, c);
    }

    #[test]
    fn not_when_preconditions_fail() {
        // The output is opened with O_APPEND (copy_file_range refuses it).
        let c = copy_loop(None, TRUNC | OFlags::APPEND, |_| {});
        assert_eq!(only(&c, "zero_copy").compound, c);

        // Mode continue.
        let mut c = copy_loop(None, TRUNC, |_| {});
        c.mode = cosy_model::ErrorMode::Continue;
        assert_eq!(only(&c, "zero_copy").compound, c);

        // The write does not write exactly what was read.
        let mut b = Builder::new();
        let buf = b.buffer("buf", 4096);
        let (src, dst) = (b.path("src"), b.path("dst"));
        let a = b.openat(FdRef::Cwd, src, OFlags::RDONLY, Mode::empty());
        let out = b.openat(FdRef::Cwd, dst, TRUNC, Mode::from_raw_mode(0o644));
        let n = b.read(a, buf);
        let half = b.arith(BinOp::Shr, n, 1);
        b.write(out, buf.prefix(half));
        let c = b.finish();
        assert_eq!(only(&c, "zero_copy").compound, c);

        // A call between the read and the write.
        let mut b = Builder::new();
        let buf = b.buffer("buf", 4096);
        let (src, dst) = (b.path("src"), b.path("dst"));
        let a = b.openat(FdRef::Cwd, src, OFlags::RDONLY, Mode::empty());
        let out = b.openat(FdRef::Cwd, dst, TRUNC, Mode::from_raw_mode(0o644));
        let n = b.read(a, buf);
        b.getpid();
        b.write(out, buf.prefix(n));
        let c = b.finish();
        assert_eq!(only(&c, "zero_copy").compound, c);

        // A jump skipping the write when n != 0.
        let mut b = Builder::new();
        let buf = b.buffer("buf", 4096);
        let (src, dst) = (b.path("src"), b.path("dst"));
        let a = b.openat(FdRef::Cwd, src, OFlags::RDONLY, Mode::empty());
        let out = b.openat(FdRef::Cwd, dst, TRUNC, Mode::from_raw_mode(0o644));
        let n = b.read(a, buf);
        b.if_(n.lt(10), |b| {
            b.write(out, buf.prefix(n));
        });
        let c = b.finish();
        assert_eq!(only(&c, "zero_copy").compound, c);

        // Reading from standard input.
        let c = {
            let mut b = Builder::new();
            let buf = b.buffer("buf", 4096);
            let n = b.read(FdRef::Std(0), buf);
            b.write(FdRef::Std(1), buf.prefix(n));
            b.finish()
        };
        assert_eq!(only(&c, "zero_copy").compound, c);
    }
}
