//! `lseek` + `read`/`write` → `pread`/`pwrite`.
//!
//! ```text
//! lseek f OFF SEEK_SET          n = pread f buf OFF
//! n = read f buf           →
//! ```
//!
//! The rewrite applies when:
//!
//! - the compound stops at the first failure (mode `stop`: in mode `continue` a failing
//!   `lseek` would record one error more);
//! - `f` is an fd slot only ever filled by `openat`/`openat2` without `O_PATH` (a standard
//!   stream's position is shared with other processes, so moving it is observable), and `f`
//!   certainly holds a descriptor at the `lseek` (opened on every path to it, not closed
//!   since): so `lseek` cannot fail with `EBADF` where `pread` would report it at the read;
//! - the whence is the immediate `SEEK_SET` and the offset is an immediate `>= 0` or a
//!   register that no operation between the two writes;
//! - the `lseek`'s result is discarded or its register is never read;
//! - the `read`/`write` follows in the same basic block, with no use of `f` in between;
//! - the file position is never observed afterwards: on every path from the `read`/`write`,
//!   the next operation that depends on the position of `f` (`read`, `write`, `getdents64`,
//!   `lseek` other than `SEEK_SET`, `copy_file_range`/`splice`/`sendfile` with a `-1` offset on
//!   it) comes after an `lseek f _ SEEK_SET`, a `close f` or a new open into `f` — or the path
//!   ends.
//!
//! The `pread`/`pwrite` takes the place (and the origin) of the `read`/`write`. The `lseek`
//! goes; with a register offset it stays behind a guard, `if off >= 0` skipping it, so that a
//! negative offset still fails with `EINVAL` at the `lseek`. One rewrite is one pair.
//!
//! What remains different: a file that cannot seek (a FIFO opened by path) fails with
//! `ESPIPE` at the read instead of at the `lseek`.

use std::collections::{BTreeMap, BTreeSet};

use cosy_model::{Arg, BinOp, Cond, FdSlot, Op, Reg, Ret, Sys, Value};

use crate::analysis::{
    Cfg, Edits, NewOp, Program, SlotInfo, imm_of, mentions_slot, must_open, read_counts,
    slot_infos, slot_of,
};

/// What an operation does with the position of a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Position {
    /// Does not look at it.
    Neutral,
    /// Depends on it (or might).
    Observes,
    /// Replaces it without looking at it (`lseek SEEK_SET`, `close`, a new open).
    Resets,
}

fn offset_observes(args: &[Arg], off: usize) -> bool {
    !matches!(imm_of(args.get(off)), Some(v) if v >= 0)
}

/// What operation `op` does with the position of slot `s`.
fn position_use(op: &Op, s: FdSlot) -> Position {
    let Op::Sys { call, args, ret } = op else {
        return Position::Neutral;
    };
    let on = |i: usize| slot_of(args.get(i)) == Some(s);
    let mut result = Position::Neutral;
    let mut observe = |cond: bool| {
        if cond {
            result = Position::Observes;
        }
    };
    match call {
        Sys::Lseek => {
            if on(0) {
                if imm_of(args.get(2)) == Some(i64::from(libc::SEEK_SET)) {
                    return Position::Resets;
                }
                observe(true)
            }
        }
        Sys::Close => {
            if on(0) {
                return Position::Resets;
            }
        }
        // The offsets say whether the positions are used.
        Sys::CopyFileRange | Sys::Splice => {
            observe(on(0) && offset_observes(args, 1));
            observe(on(2) && offset_observes(args, 3));
        }
        Sys::Sendfile => {
            observe(on(0));
            observe(on(1) && offset_observes(args, 2));
        }
        // A new pipe end in the slot; conservatively an observation.
        Sys::Pipe2 => observe(on(0) || on(1)),
        // Otherwise the table's `position` column: the first descriptor's position.
        _ => observe(call.spec().position && on(0)),
    }
    if result == Position::Neutral && *ret == Ret::Fd(s) {
        // A new open into the slot closes the old descriptor first.
        return Position::Resets;
    }
    result
}

/// Whether the position of `s` can be observed on a path starting at the successors of `from`.
fn position_observed_after(p: &Program, g: &Cfg, from: usize, s: FdSlot) -> bool {
    let mut seen = vec![false; g.n + 1];
    let mut work: Vec<usize> = g.succ[from].clone();
    while let Some(t) = work.pop() {
        if t >= g.n || seen[t] {
            continue;
        }
        seen[t] = true;
        match position_use(&p.c.ops[t], s) {
            Position::Observes => return true,
            Position::Resets => {}
            Position::Neutral => work.extend(g.succ[t].iter().copied()),
        }
    }
    false
}

/// A candidate: the `lseek` at `seek`, the `read`/`write` at `io`, and the offset.
fn candidate(
    p: &Program,
    g: &Cfg,
    reads: &BTreeMap<Reg, usize>,
    infos: &BTreeMap<FdSlot, SlotInfo>,
    open: &[Option<BTreeSet<FdSlot>>],
    seek: usize,
) -> Option<(usize, Value)> {
    let Op::Sys {
        call: Sys::Lseek,
        args,
        ret,
    } = &p.c.ops[seek]
    else {
        return None;
    };
    let s = slot_of(args.first())?;
    if imm_of(args.get(2)) != Some(i64::from(libc::SEEK_SET)) {
        return None;
    }
    // A file `openat` opened without `O_PATH`, certainly open here: `lseek` cannot fail with
    // `EBADF` where the `pread` would report it at the read.
    let file = infos
        .get(&s)
        .is_some_and(|info| info.opened_with(|f| f & i64::from(libc::O_PATH) == 0));
    let is_open = open
        .get(seek)
        .and_then(Option::as_ref)
        .is_some_and(|set| set.contains(&s));
    if !file || !is_open {
        return None;
    }
    let off = match args.get(1) {
        Some(Arg::Value(Value::Imm(v))) if *v >= 0 => Value::Imm(*v),
        Some(Arg::Value(Value::Reg(r))) => Value::Reg(*r),
        _ => return None,
    };
    match ret {
        Ret::None => {}
        Ret::Reg(r) if reads.get(r).copied().unwrap_or(0) == 0 => {}
        _ => return None,
    }
    // The next operation mentioning the slot, in the same block; the offset register must
    // not change before it.
    let off_reg = match off {
        Value::Reg(r) => Some(r),
        Value::Imm(_) => None,
    };
    let mut io = seek + 1;
    loop {
        if !g.same_block(seek, io) {
            return None;
        }
        let op = &p.c.ops[io];
        if mentions_slot(op, s) {
            break;
        }
        if off_reg.is_some_and(|r| op.writes().contains(&r)) {
            return None;
        }
        io += 1;
    }
    match &p.c.ops[io] {
        Op::Sys {
            call: Sys::Read | Sys::Write,
            args,
            ..
        } if args.len() == 2 && slot_of(args.first()) == Some(s) => {}
        _ => return None,
    }
    if position_observed_after(p, g, io, s) {
        return None;
    }
    Some((io, off))
}

/// Runs the pass; returns the number of pairs rewritten.
pub(crate) fn run(p: &mut Program) -> usize {
    if p.c.mode != cosy_model::ErrorMode::Stop {
        return 0;
    }
    let Some(g) = Cfg::new(&p.c) else { return 0 };
    let reads = read_counts(&p.c);
    let infos = slot_infos(&p.c);
    let open = must_open(&p.c, &g);
    let mut edits = Edits::new(p);
    let mut count = 0;
    let mut used = vec![false; g.n];
    for seek in 0..g.n {
        if used[seek] {
            continue;
        }
        let Some((io, off)) = candidate(p, &g, &reads, &infos, &open, seek) else {
            continue;
        };
        let Op::Sys { call, args, ret } = &p.c.ops[io] else {
            continue;
        };
        let call = if *call == Sys::Read {
            Sys::Pread
        } else {
            Sys::Pwrite
        };
        let mut args = args.clone();
        args.push(Arg::Value(off));
        let op = Op::Sys {
            call,
            args,
            ret: *ret,
        };
        match off {
            // The lseek stays, behind a guard, for a negative offset: there it fails with
            // EINVAL, where the original failed.
            Value::Reg(r) => {
                let guard = NewOp::jump(
                    Some(Cond {
                        op: BinOp::Ge,
                        a: Value::Reg(r),
                        b: Value::Imm(0),
                    }),
                    None,
                    (seek + 1, 0),
                    p.origin[seek],
                );
                edits.replace(seek, vec![guard, Edits::original(p, seek)]);
            }
            Value::Imm(_) => edits.remove(seek),
        }
        edits.replace(io, vec![NewOp::plain(op, p.origin[io])]);
        used[io] = true;
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
    use cosy_model::flags::{Mode, OFlags, Whence};
    use cosy_model::{BinOp, Builder, ErrorMode, FdRef, Op, Sys, Value};

    use crate::analysis::testing::{calls, only};

    /// open; lseek 8192; n = read; lseek 0; write [0..n]; close.
    fn seek_read_seek_write() -> Builder {
        let mut b = Builder::new();
        let buf = b.buffer("buf", 512);
        let path = b.path("db");
        let f = b.openat(FdRef::Cwd, path, OFlags::RDWR, Mode::empty());
        b.lseek(f, 8192, Whence::Set);
        let n = b.read(f, buf);
        b.lseek(f, 0, Whence::Set);
        let w = b.write(f, buf.prefix(n));
        b.close(f);
        b.output("n", n);
        b.output("w", w);
        b
    }

    #[test]
    fn seek_then_read_and_seek_then_write_become_pread_and_pwrite() {
        let c = seek_read_seek_write().finish();
        let o = only(&c, "pread");
        assert_eq!(
            calls(&o.compound),
            [Sys::Openat, Sys::Pread, Sys::Pwrite, Sys::Close]
        );
        assert_eq!(o.origin, [0, 2, 4, 5]);
        assert_eq!(o.applied, [("pread", 2)]);
        match &o.compound.ops[1] {
            Op::Sys { args, .. } => assert_eq!(args[2], cosy_model::Arg::Value(Value::Imm(8192))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_register_offset_in_a_loop() {
        // off = 0; do { lseek f off; read f; off += 4096 } while off < 65536
        let mut b = Builder::new();
        let buf = b.buffer("buf", 4096);
        let path = b.path("db");
        let f = b.openat(FdRef::Cwd, path, OFlags::RDONLY, Mode::empty());
        let off = b.value("off", 0);
        let total = b.value("total", 0);
        b.do_while(100, |b| {
            b.lseek(f, off, Whence::Set);
            let n = b.read(f, buf);
            b.accumulate(total, n);
            b.accumulate(off, 4096);
            off.lt(65536)
        });
        b.close(f);
        b.output("total", total);
        let o = only(&b.finish(), "pread");
        // The lseek stays behind a guard, for negative offsets only.
        assert_eq!(
            calls(&o.compound),
            [Sys::Openat, Sys::Lseek, Sys::Pread, Sys::Close]
        );
        let ops = &o.compound.ops;
        let guard = ops
            .iter()
            .position(|op| matches!(op, Op::Jump { bound: None, .. }))
            .expect("the guard");
        assert!(matches!(
            &ops[guard],
            Op::Jump { cond: Some(c), target, .. }
                if c.op == BinOp::Ge && *target as usize == guard + 2
        ));
        assert!(matches!(
            ops[guard + 1],
            Op::Sys {
                call: Sys::Lseek,
                ..
            }
        ));
        assert!(matches!(
            ops[guard + 2],
            Op::Sys {
                call: Sys::Pread,
                ..
            }
        ));
        // The loop's jump goes back to the guard.
        assert!(ops.iter().any(
            |op| matches!(op, Op::Jump { bound: Some(_), target, .. } if *target as usize == guard)
        ));
    }

    #[test]
    fn not_when_the_slot_may_be_closed() {
        // close f; lseek f; read f: lseek fails with EBADF, at the lseek.
        let mut b = Builder::new();
        let buf = b.buffer("buf", 16);
        let path = b.path("db");
        let f = b.openat(FdRef::Cwd, path, OFlags::RDONLY, Mode::empty());
        b.close(f);
        b.lseek(f, 100, Whence::Set);
        b.read(f, buf);
        let c = b.finish();
        assert_eq!(only(&c, "pread").compound, c);
    }

    #[test]
    fn not_when_the_position_is_observed_later() {
        // lseek 100; read; read (continues where the first stopped).
        let mut b = Builder::new();
        let buf = b.buffer("buf", 16);
        let path = b.path("db");
        let f = b.openat(FdRef::Cwd, path, OFlags::RDONLY, Mode::empty());
        b.lseek(f, 100, Whence::Set);
        b.read(f, buf);
        b.read(f, buf);
        let c = b.finish();
        let o = only(&c, "pread");
        assert_eq!(o.compound, c);
        assert_eq!(o.applied, [("pread", 0)]);

        // lseek 100; read; lseek +0 SEEK_CUR (reports the position).
        let mut b = Builder::new();
        let buf = b.buffer("buf", 16);
        let path = b.path("db");
        let f = b.openat(FdRef::Cwd, path, OFlags::RDONLY, Mode::empty());
        b.lseek(f, 100, Whence::Set);
        b.read(f, buf);
        let pos = b.lseek(f, 0, Whence::Cur);
        b.output("pos", pos);
        let c = b.finish();
        assert_eq!(only(&c, "pread").compound, c);
    }

    #[test]
    fn not_when_the_seek_result_is_read_or_in_continue_mode_or_on_a_stream() {
        // The lseek's result is an output.
        let mut b = Builder::new();
        let buf = b.buffer("buf", 16);
        let path = b.path("db");
        let f = b.openat(FdRef::Cwd, path, OFlags::RDONLY, Mode::empty());
        let pos = b.lseek(f, 100, Whence::Set);
        b.read(f, buf);
        b.close(f);
        b.output("pos", pos);
        let c = b.finish();
        assert_eq!(only(&c, "pread").compound, c);

        // Mode continue.
        let mut b = seek_read_seek_write();
        b.mode(ErrorMode::Continue);
        let c = b.finish();
        assert_eq!(only(&c, "pread").compound, c);

        // Standard input: its position is shared with other processes.
        let mut b = Builder::new();
        let buf = b.buffer("buf", 16);
        b.lseek(FdRef::Std(0), 100, Whence::Set);
        b.read(FdRef::Std(0), buf);
        let c = b.finish();
        assert_eq!(only(&c, "pread").compound, c);
    }

    #[test]
    fn not_across_blocks_or_other_uses() {
        // lseek; fstat f (another use of f); read.
        let mut b = Builder::new();
        let buf = b.buffer("buf", 256);
        let path = b.path("db");
        let f = b.openat(FdRef::Cwd, path, OFlags::RDONLY, Mode::empty());
        b.lseek(f, 100, Whence::Set);
        b.fstat(f, buf);
        b.read(f, buf);
        b.close(f);
        let c = b.finish();
        assert_eq!(only(&c, "pread").compound, c);

        // The offset register changes between the lseek and the read.
        let mut b = Builder::new();
        let buf = b.buffer("buf", 256);
        let path = b.path("db");
        let f = b.openat(FdRef::Cwd, path, OFlags::RDONLY, Mode::empty());
        let off = b.value("off", 10);
        b.lseek(f, off, Whence::Set);
        b.set(off, 20);
        b.read(f, buf);
        b.close(f);
        b.output("off", off);
        let c = b.finish();
        assert_eq!(only(&c, "pread").compound, c);
    }
}
