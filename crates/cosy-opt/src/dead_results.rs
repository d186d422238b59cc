//! Results nobody reads are dropped.
//!
//! ```text
//! n = close f              close f
//! t = a + 1           →    (removed)
//! ```
//!
//! A register is *dead* when no output reports it and no operation reads it, except
//! operations that only compute it from itself (`r = r + 1`) and can be removed. Then:
//!
//! - a system call writing it has its result discarded (`Ret::None`; errors still count), and
//!   a function call writing it has no destination;
//! - a move, arithmetic or load writing it is removed — unless it could stop the run: a
//!   division or remainder by a register or by zero, a load whose offset is not an immediate
//!   inside the buffer.
//!
//! Removal repeats until nothing changes (removing `t = a + 1` can make `a` dead). Jumps to a
//! removed operation go to the next one; map indices and origins follow. Registers written by
//! maps (their variables) are never touched. One rewrite is one result dropped or one
//! operation removed.

use std::collections::{BTreeMap, BTreeSet};

use cosy_model::{Op, Reg, Ret};

use crate::analysis::{Edits, Program, may_trap};

/// Whether operation `op` is a pure computation into a register that can be removed.
fn removable(p: &Program, op: &Op) -> Option<Reg> {
    match op {
        Op::Arith { dst, .. } | Op::Mov { dst, .. } | Op::Load { dst, .. } => {
            (!may_trap(&p.c, op)).then_some(*dst)
        }
        _ => None,
    }
}

/// Runs the pass; returns the number of results dropped and operations removed.
pub(crate) fn run(p: &mut Program) -> usize {
    let n = p.c.ops.len();
    let mut removed = vec![false; n];
    let mut count = 0;
    loop {
        // Reads of each register by live operations other than its own removable updates.
        let mut real_reads: BTreeMap<Reg, usize> = BTreeMap::new();
        for o in &p.c.outputs {
            *real_reads.entry(o.reg).or_insert(0) += 1;
        }
        for (t, op) in p.c.ops.iter().enumerate() {
            if removed[t] {
                continue;
            }
            let own = removable(p, op);
            let reads: BTreeSet<Reg> = op.reads().into_iter().collect();
            for r in reads {
                if own != Some(r) {
                    *real_reads.entry(r).or_insert(0) += 1;
                }
            }
        }
        let dead = |r: &Reg| real_reads.get(r).copied().unwrap_or(0) == 0;
        let mut changed = false;
        for (t, gone) in removed.iter_mut().enumerate() {
            if *gone {
                continue;
            }
            if let Some(r) = removable(p, &p.c.ops[t]) {
                if dead(&r) {
                    *gone = true;
                    changed = true;
                    count += 1;
                }
                continue;
            }
            match &mut p.c.ops[t] {
                Op::Sys { ret, .. } if matches!(*ret, Ret::Reg(r) if dead(&r)) => {
                    *ret = Ret::None;
                    changed = true;
                    count += 1;
                }
                Op::Call { dst, .. } if dst.as_ref().is_some_and(dead) => {
                    *dst = None;
                    changed = true;
                    count += 1;
                }
                _ => {}
            }
        }
        if !changed {
            break;
        }
    }
    if removed.iter().any(|&r| r) {
        let backup = p.clone();
        let mut edits = Edits::new(p);
        for (t, &r) in removed.iter().enumerate() {
            if r {
                edits.remove(t);
            }
        }
        if !edits.apply(p) {
            *p = backup;
            return 0;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use cosy_model::flags::{Mode, OFlags};
    use cosy_model::{BinOp, Builder, FdRef, Op, Ret, Sys, Value, Width};

    use crate::analysis::testing::only;

    #[test]
    fn unread_results_are_dropped_and_dead_computations_removed() {
        let mut b = Builder::new();
        let buf = b.buffer("buf", 64);
        let path = b.path("f");
        let f = b.openat(FdRef::Cwd, path, OFlags::RDONLY, Mode::empty()); // 0
        let n = b.read(f, buf); // 1
        let t = b.add(n, 1); // 2: dead
        let u = b.arith(BinOp::Mul, t, 2); // 3: dead once 4 is gone... u unread
        let _ = u;
        let v = b.load(Width::U8, buf, 3); // 4: dead, in range
        let _ = v;
        let top = b.here();
        let k = b.value("k", 0); // 5: read by the loop
        b.if_(n.eq(0), |b| {
            b.getpid(); // 7: result unread
        });
        b.accumulate(k, 1); // 8: k only feeds itself and the jump
        b.push(Op::Jump {
            cond: Some(k.lt(0).into()),
            target: top,
            bound: Some(3),
        }); // 9
        b.close(f); // 10: result unread
        b.output("n", n);
        let c = b.finish();
        let o = only(&c, "dead_results");
        let ops = &o.compound.ops;
        // t, u and v are removed (3 removals); getpid's and close's results are dropped (2).
        assert_eq!(o.applied, [("dead_results", 5)]);
        assert_eq!(o.origin, [0, 1, 5, 6, 7, 8, 9, 10]);
        assert!(matches!(
            ops[4],
            Op::Sys {
                call: Sys::Getpid,
                ret: Ret::None,
                ..
            }
        ));
        assert!(matches!(
            ops[7],
            Op::Sys {
                call: Sys::Close,
                ret: Ret::None,
                ..
            }
        ));
        assert!(matches!(
            ops[1],
            Op::Sys {
                call: Sys::Read,
                ret: Ret::Reg(_),
                ..
            }
        ));
        // The forward jump of the `if` and the loop's jump follow the removals.
        assert!(matches!(ops[3], Op::Jump { target: 5, .. }));
        assert!(matches!(ops[6], Op::Jump { target: 2, .. }));
    }

    #[test]
    fn self_updates_of_an_unread_register_go_too() {
        let mut b = Builder::new();
        let r = b.value("r", 0);
        b.accumulate(r, 5);
        b.accumulate(r, 6);
        b.nop();
        let c = b.finish();
        let o = only(&c, "dead_results");
        assert_eq!(o.compound.ops.len(), 1);
        assert_eq!(o.origin, [3]);
    }

    #[test]
    fn operations_that_can_stop_the_run_stay() {
        let mut b = Builder::new();
        let buf = b.buffer("buf", 8);
        let d = b.input_int("d", 0);
        b.arith(BinOp::Div, 10, d); // division by a register: may stop the run
        b.arith(BinOp::Rem, 10, 0); // by zero: stops it
        b.load(Width::U64, buf, 4); // out of the buffer: stops it
        let i = b.value("i", 1);
        b.load(Width::U8, buf, i); // offset in a register
        let c = b.finish();
        let o = only(&c, "dead_results");
        assert_eq!(o.compound, c);
        assert_eq!(o.applied, [("dead_results", 0)]);
    }

    #[test]
    fn outputs_keep_their_registers() {
        let mut b = Builder::new();
        let x = b.value("x", 7);
        let p = b.getpid();
        b.output("x", x);
        b.output("pid", p);
        let c = b.finish();
        let o = only(&c, "dead_results");
        assert_eq!(o.compound, c);
        assert!(matches!(
            &o.compound.ops[0],
            Op::Mov {
                src: Value::Imm(7),
                ..
            }
        ));
    }
}
