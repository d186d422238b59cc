//! Counted loops with independent iterations → maps.
//!
//! ```text
//! i = 0                               i = 0
//! L:                                  map i.map in range(0, END, 1) {
//! pid = getpid                   →        pid = getpid
//! calls = calls + 1                       calls = calls + 1
//! i = i + 1                           }
//! if i < END goto L bound B           i = …   # only if i is read afterwards
//! ```
//!
//! A map's iterations may run at once (the ring executor runs them as bursts), so a loop is
//! converted only when its iterations are independent and the map gives exactly the loop's
//! results:
//!
//! - the loop is at the top level: `i = START` (an immediate), then, entered only by falling
//!   through, `L: BODY; i = i + STEP; if i < END goto L bound B` with `STEP > 0` an immediate
//!   and `END` an immediate or a register the body does not write;
//! - the body is entered only at `L`, and its jumps go forward inside it (a jump to the
//!   increment is a `continue`);
//! - the body makes only calls that neither write memory nor touch descriptors (`nop`,
//!   `getpid`, `getppid`), calls built-in functions, and computes (moves, arithmetic, loads;
//!   no stores, no nested map);
//! - registers: `i` is only read; an *accumulator* `r = r + x` is the only use of `r` in the
//!   body; every other register the body writes is written before it is read in each
//!   iteration (no value flows from one iteration to the next).
//!
//! Map semantics differ from a loop's in what a register written in the body holds afterwards
//! and in the do-while running at least once; so:
//!
//! - when a register written in the body is read outside the loop, the last iteration is
//!   peeled: the map runs all but the last iteration and the body runs once more after it
//!   (such a register must be written on every path through the body);
//! - when `i` is read afterwards, it receives its final value;
//! - with an immediate `END` the number of iterations is known (at least one) and the loop is
//!   converted only if the bound `B` is not exceeded; with a register `END` the number of
//!   iterations is computed before the map (`max(END, START + 1)`, rounded up to the step) and
//!   a guard `if END > START + STEP * (B + 1)` runs the original loop instead, which then
//!   stops at its bound as before.
//!
//! The map binds a register of its own (`i.map`, which the body then reads instead of `i`):
//! the verifier wants a map's variable to hold nothing before the map, and likewise every
//! register the body writes other than accumulators — a loop whose body writes a register
//! that something before the loop writes too is left alone.
//!
//! New operations have the loop's jump as origin (the final value of `i`, the increment). One
//! rewrite is one loop.

use std::collections::{BTreeMap, BTreeSet};

use cosy_model::{ArgKind, BUILTINS, BinOp, Cond, Effect, MapSource, Op, Reg, RetKind, Sys, Value};

use crate::analysis::{Cfg, Edits, NewOp, Program, fresh_reg, read_outside, rename_reads};

/// A loop found convertible.
#[derive(Clone, Debug)]
struct Plan {
    head: usize,
    inc: usize,
    jmp: usize,
    i: Reg,
    start: i64,
    step: i64,
    end: Value,
    bound: u32,
    /// Registers written in the body are read after it: run the last iteration after the map.
    peel: bool,
    /// `i` is read outside the loop.
    i_live: bool,
}

/// Calls a converted body may make.
fn harmless_call(call: Sys) -> bool {
    let spec = call.spec();
    spec.effect == Effect::Read
        && spec.ret == RetKind::Value
        && !matches!(call, Sys::Close | Sys::Lseek)
        && spec.args.iter().all(|a| {
            !matches!(
                a.kind,
                ArgKind::BufOut
                    | ArgKind::NewFd
                    | ArgKind::Fd
                    | ArgKind::DirFd
                    | ArgKind::Path
                    | ArgKind::Str
            )
        })
}

/// `r = r + x` with `x != r`: the accumulated register.
fn accumulation(op: &Op) -> Option<Reg> {
    match op {
        Op::Arith {
            dst,
            op: BinOp::Add,
            a,
            b,
        } if *a == Value::Reg(*dst) && *b != Value::Reg(*dst) => Some(*dst),
        _ => None,
    }
}

fn analyse(p: &Program, g: &Cfg, jmp: usize) -> Option<Plan> {
    let ops = &p.c.ops;
    let Op::Jump {
        cond: Some(cond),
        target,
        bound: Some(bound),
    } = &ops[jmp]
    else {
        return None;
    };
    let head = *target as usize;
    if head == 0 || head + 1 >= jmp || g.map_of[jmp].is_some() {
        return None;
    }
    let inc = jmp - 1;
    let (i, end) = match (cond.op, cond.a, cond.b) {
        (BinOp::Lt, Value::Reg(i), end) | (BinOp::Gt, end, Value::Reg(i)) => (i, end),
        _ => return None,
    };
    if end == Value::Reg(i) {
        return None;
    }
    let step = match &ops[inc] {
        Op::Arith {
            dst,
            op: BinOp::Add,
            a,
            b,
        } if *dst == i => match (a, b) {
            (Value::Reg(r), Value::Imm(s)) | (Value::Imm(s), Value::Reg(r)) if *r == i => *s,
            _ => return None,
        },
        _ => return None,
    };
    if step <= 0 {
        return None;
    }
    // Entered only at the head, by falling through.
    let mut head_preds = g.pred[head].clone();
    head_preds.sort_unstable();
    if head_preds != [head - 1, jmp] {
        return None;
    }
    for t in head + 1..=jmp {
        if g.pred[t].iter().any(|&q| q < head || q >= t) {
            return None;
        }
    }
    // The start value: the last write of `i` before the head, in straight-line code.
    let mut q = head - 1;
    let start = loop {
        match &ops[q] {
            Op::Mov {
                dst,
                src: Value::Imm(v),
            } if *dst == i => break *v,
            Op::Jump { .. } | Op::MapBegin { .. } | Op::MapEnd { .. } => return None,
            op if op.writes().contains(&i) => return None,
            _ => {}
        }
        if q == 0 || head - q > 64 || g.pred[q] != [q - 1] {
            return None;
        }
        q -= 1;
    };
    // The body's operations.
    for (t, op) in ops.iter().enumerate().take(inc).skip(head) {
        let ok = match op {
            Op::Sys { call, .. } => harmless_call(*call),
            Op::Call { func, .. } => BUILTINS.contains(&func.as_str()),
            Op::Arith { .. } | Op::Mov { .. } | Op::Load { .. } => true,
            Op::Jump { target, .. } => {
                let target = *target as usize;
                target > t && target <= inc
            }
            Op::Store { .. } | Op::MapBegin { .. } | Op::MapEnd { .. } => false,
        };
        if !ok {
            return None;
        }
    }
    // Accumulators: `r = r + x` and no other use of `r` in the body.
    let mut acc: BTreeSet<Reg> = (head..inc).filter_map(|t| accumulation(&ops[t])).collect();
    acc.retain(|r| {
        (head..inc).all(|t| {
            let op = &ops[t];
            let touches = op.writes().contains(r) || op.reads().contains(r);
            !touches || accumulation(op) == Some(*r)
        })
    });
    let written: BTreeSet<Reg> = (head..inc)
        .filter(|&t| accumulation(&ops[t]).is_none_or(|r| !acc.contains(&r)))
        .flat_map(|t| ops[t].writes())
        .collect();
    if written.contains(&i) || acc.contains(&i) {
        return None;
    }
    // A map body may write only registers that hold no value when the map starts (else only
    // accumulate into them), and its variable must be such a register too (a fresh one is
    // used): nothing may flow around the loop from after it, and nothing before it writes
    // what the body writes.
    if g.in_cycle(q) {
        return None;
    }
    let inputs: BTreeSet<Reg> =
        p.c.inputs
            .iter()
            .filter_map(|input| match input.kind {
                cosy_model::InputKind::Int { reg, .. } => Some(reg),
                cosy_model::InputKind::Path(_) => None,
            })
            .collect();
    if written
        .iter()
        .any(|r| inputs.contains(r) || ops[..head].iter().any(|op| op.writes().contains(r)))
    {
        return None;
    }
    if let Value::Reg(e) = end
        && (written.contains(&e) || acc.contains(&e))
    {
        return None;
    }
    // Each register written in the body is written before it is read, in every iteration.
    let mut def_out: BTreeMap<usize, BTreeSet<Reg>> = BTreeMap::new();
    let def_in = |t: usize, def_out: &BTreeMap<usize, BTreeSet<Reg>>| -> BTreeSet<Reg> {
        if t == head {
            return BTreeSet::new();
        }
        let mut sets = g.pred[t].iter().filter_map(|q| def_out.get(q));
        let Some(first) = sets.next() else {
            return BTreeSet::new();
        };
        sets.fold(first.clone(), |a, b| a.intersection(b).copied().collect())
    };
    for (t, op) in ops.iter().enumerate().take(inc).skip(head) {
        let mut d = def_in(t, &def_out);
        if op
            .reads()
            .iter()
            .any(|r| written.contains(r) && !d.contains(r))
        {
            return None;
        }
        d.extend(op.writes());
        def_out.insert(t, d);
    }
    let at_inc = def_in(inc, &def_out);
    let loop_ops = head..jmp + 1;
    let live_out: Vec<Reg> = written
        .iter()
        .copied()
        .filter(|r| read_outside(&p.c, *r, loop_ops.clone()))
        .collect();
    if live_out.iter().any(|r| !at_inc.contains(r)) {
        return None;
    }
    Some(Plan {
        head,
        inc,
        jmp,
        i,
        start,
        step,
        end,
        bound: *bound,
        peel: !live_out.is_empty(),
        i_live: read_outside(&p.c, i, loop_ops),
    })
}

/// Copies of the body and the increment, jumps retargeted to the copies (which will sit at
/// offset `base` of the group of the increment).
fn copy_body(p: &Program, plan: &Plan, base: usize) -> Vec<NewOp> {
    (plan.head..=plan.inc)
        .map(|t| {
            let mut new = Edits::original(p, t);
            if let Op::Jump { target, .. } = &new.op {
                let off = (*target as usize).saturating_sub(plan.head);
                new.target = Some((plan.inc, base + off));
            }
            new
        })
        .collect()
}

fn fits(v: i128) -> Option<i64> {
    i64::try_from(v).ok()
}

fn emit(p: &mut Program, plan: &Plan) -> bool {
    let (start, step) = (i128::from(plan.start), i128::from(plan.step));
    let o_jmp = p.origin[plan.jmp];
    let o_inc = p.origin[plan.inc];
    let i = plan.i;
    // The map binds a register of its own; the body reads it instead of `i`.
    let base = p.c.regs.get(i.index()).map_or("i", String::as_str);
    let base = format!("{base}.map");
    let Some(var) = fresh_reg(&mut p.c, &base) else {
        return false;
    };
    let imm = Value::Imm;
    let map_begin = |end: Value| {
        NewOp::plain(
            Op::MapBegin {
                source: MapSource::Range {
                    start: imm(plan.start),
                    end,
                    step: imm(plan.step),
                    var,
                },
                end: 0,
            },
            o_jmp,
        )
    };
    let map_end = NewOp::plain(Op::MapEnd { begin: 0 }, o_jmp);
    let arith =
        |dst: Reg, op: BinOp, a: Value, b: Value| NewOp::plain(Op::Arith { dst, op, a, b }, o_jmp);
    let mut before: Vec<NewOp> = Vec::new();
    let mut after: Vec<NewOp> = vec![map_end];
    match plan.end {
        Value::Imm(end) => {
            let end = i128::from(end);
            let n = if end > start {
                (end - start + step - 1) / step
            } else {
                1
            };
            if n - 1 > i128::from(plan.bound) {
                return false;
            }
            let (Some(last), Some(last1), Some(fin)) = (
                fits(start + (n - 1) * step),
                fits(start + (n - 1) * step + 1),
                fits(start + n * step),
            ) else {
                return false;
            };
            if plan.peel {
                before.push(map_begin(imm(last)));
                after.push(NewOp::plain(
                    Op::Mov {
                        dst: i,
                        src: imm(last),
                    },
                    o_inc,
                ));
                let base = after.len();
                after.extend(copy_body(p, plan, base));
            } else {
                before.push(map_begin(imm(last1)));
                if plan.i_live {
                    after.push(NewOp::plain(
                        Op::Mov {
                            dst: i,
                            src: imm(fin),
                        },
                        o_inc,
                    ));
                }
            }
        }
        Value::Reg(end) => {
            let bound = i128::from(plan.bound);
            let (Some(limit), Some(_), Some(start1)) = (
                fits(start + step * (bound + 1)),
                fits(start + step * (bound + 2)),
                fits(start + 1),
            ) else {
                return false;
            };
            let Some(last) = fresh_reg(&mut p.c, "opt.last") else {
                return false;
            };
            let r = Value::Reg(last);
            // `if END > LIMIT goto SLOW` (target filled in below).
            before.push(NewOp::jump(
                Some(Cond {
                    op: BinOp::Gt,
                    a: Value::Reg(end),
                    b: imm(limit),
                }),
                None,
                (plan.inc, 0),
                o_jmp,
            ));
            // last = START + STEP * ((max(END, START + 1) - (START + 1)) / STEP)
            // (operations that would not change the value are left out)
            before.push(arith(last, BinOp::Max, Value::Reg(end), imm(start1)));
            if start1 != 0 {
                before.push(arith(last, BinOp::Sub, r, imm(start1)));
            }
            if plan.step != 1 {
                before.push(arith(last, BinOp::Div, r, imm(plan.step)));
                before.push(arith(last, BinOp::Mul, r, imm(plan.step)));
            }
            if plan.start != 0 {
                before.push(arith(last, BinOp::Add, r, imm(plan.start)));
            }
            if plan.peel {
                before.push(map_begin(r));
                after.push(NewOp::plain(Op::Mov { dst: i, src: r }, o_inc));
                let base = after.len();
                after.extend(copy_body(p, plan, base));
            } else {
                before.push(arith(last, BinOp::Add, r, imm(1)));
                before.push(map_begin(r));
                if plan.i_live {
                    let mut fin = arith(i, BinOp::Add, r, imm(plan.step - 1));
                    fin.origin = o_inc;
                    after.push(fin);
                }
            }
            after.push(NewOp::jump(None, None, (plan.jmp + 1, 0), o_jmp));
            let slow = after.len();
            before[0].target = Some((plan.inc, slow));
            after.extend(copy_body(p, plan, slow));
            let mut back = Edits::original(p, plan.jmp);
            back.target = Some((plan.inc, slow));
            after.push(back);
        }
    }
    let mut edits = Edits::new(p);
    for t in plan.head..plan.inc {
        if p.c.ops[t].reads().contains(&i) {
            let mut new = Edits::original(p, t);
            new.op = rename_reads(&new.op, i, var);
            edits.replace(t, vec![new]);
        }
    }
    edits.insert_before(plan.head, before);
    edits.replace(plan.inc, after);
    edits.remove(plan.jmp);
    edits.apply(p)
}

/// Runs the pass; returns the number of loops converted.
pub(crate) fn run(p: &mut Program) -> usize {
    let mut count = 0;
    let mut done: BTreeSet<u32> = BTreeSet::new();
    'outer: for _ in 0..p.c.ops.len() {
        let Some(g) = Cfg::new(&p.c) else { break };
        for jmp in 0..g.n {
            if done.contains(&p.origin[jmp]) {
                continue;
            }
            let Some(plan) = analyse(p, &g, jmp) else {
                continue;
            };
            done.insert(p.origin[jmp]);
            let backup = p.clone();
            if emit(p, &plan) {
                count += 1;
                continue 'outer;
            }
            *p = backup;
        }
        break;
    }
    count
}

#[cfg(test)]
mod tests {
    use cosy_model::flags::{Mode, OFlags};
    use cosy_model::{BinOp, Builder, Compound, FdRef, MapSource, Op, Reg, Sys, Value};

    use crate::analysis::testing::{calls, only};

    /// `i = 0; do { pid = getpid; calls += 1; i += 1 } while (i < end)`, then `after`.
    fn getpid_loop(
        end: impl Into<Value>,
        bound: u32,
        after: impl FnOnce(&mut Builder, Reg, Reg),
    ) -> Compound {
        let mut b = Builder::new();
        let end = end.into();
        let calls = b.value("calls", 0);
        let i = b.value("i", 0);
        let mut pid = Reg(0);
        b.do_while(bound, |b| {
            pid = b.getpid();
            b.accumulate(calls, 1);
            b.accumulate(i, 1);
            i.lt(end)
        });
        b.output("calls", calls);
        after(&mut b, i, pid);
        b.finish()
    }

    fn range_of(c: &Compound) -> Option<(Value, Value, Value)> {
        c.ops.iter().find_map(|op| match op {
            Op::MapBegin {
                source:
                    MapSource::Range {
                        start, end, step, ..
                    },
                ..
            } => Some((*start, *end, *step)),
            _ => None,
        })
    }

    #[test]
    fn a_counted_getpid_loop_becomes_a_map() {
        let c = getpid_loop(10, 100, |_, _, _| {});
        let o = only(&c, "loop_to_map");
        assert_eq!(o.applied, [("loop_to_map", 1)]);
        let ops = &o.compound.ops;
        // calls = 0; i = 0; map i in range(0, 10, 1) { pid = getpid; calls += 1 }
        assert_eq!(ops.len(), 6);
        assert_eq!(
            range_of(&o.compound),
            Some((Value::Imm(0), Value::Imm(10), Value::Imm(1)))
        );
        assert!(matches!(ops[2], Op::MapBegin { end: 5, .. }));
        assert!(matches!(
            ops[3],
            Op::Sys {
                call: Sys::Getpid,
                ..
            }
        ));
        assert!(matches!(ops[5], Op::MapEnd { begin: 2 }));
        assert_eq!(o.origin, [0, 1, 5, 2, 3, 5]);
        assert!(!ops.iter().any(|op| matches!(op, Op::Jump { .. })));
    }

    #[test]
    fn the_final_counter_and_the_last_result_survive() {
        // output i and pid: i gets its final value; the last iteration is peeled for pid.
        let c = getpid_loop(10, 100, |b, i, pid| {
            b.output("i", i);
            b.output("pid", pid);
        });
        let o = only(&c, "loop_to_map");
        assert_eq!(o.applied, [("loop_to_map", 1)]);
        // The map runs 9 iterations, then the body once more with i = 9.
        assert_eq!(
            range_of(&o.compound),
            Some((Value::Imm(0), Value::Imm(9), Value::Imm(1)))
        );
        assert_eq!(calls(&o.compound), [Sys::Getpid, Sys::Getpid]);
        let i = c.reg("i").expect("i");
        let tail = &o.compound.ops[o.compound.ops.len() - 4..];
        assert_eq!(
            tail[0],
            Op::Mov {
                dst: i,
                src: Value::Imm(9)
            }
        );
        assert!(matches!(tail[3], Op::Arith { dst, op: BinOp::Add, .. } if dst == i));

        // Only i read afterwards: no peeling, i = 10 after the map.
        let c = getpid_loop(10, 100, |b, i, _| b.output("i", i));
        let o = only(&c, "loop_to_map");
        let i = c.reg("i").expect("i");
        assert_eq!(
            o.compound.ops.last(),
            Some(&Op::Mov {
                dst: i,
                src: Value::Imm(10)
            })
        );
    }

    #[test]
    fn a_register_end_gets_a_guard_and_the_original_loop_as_fallback() {
        let mut b = Builder::new();
        let count = b.input_int("count", 256);
        let i = b.value("i", 0);
        let mut pid = Reg(0);
        b.do_while(100_000, |b| {
            pid = b.getpid();
            b.accumulate(i, 1);
            i.lt(count)
        });
        b.output("pid", pid);
        b.output("calls", i);
        let c = b.finish();
        let o = only(&c, "loop_to_map");
        assert_eq!(o.applied, [("loop_to_map", 1)]);
        let ops = &o.compound.ops;
        // The guard: if count > 0 + 1 * (100000 + 1) goto the original loop.
        assert!(matches!(
            &ops[1],
            Op::Jump { cond: Some(c), .. } if c.a == Value::Reg(count) && c.b == Value::Imm(100_001)
        ));
        // The original loop is still there, with its bound, after the fast path.
        let back = ops.iter().rposition(|op| {
            matches!(
                op,
                Op::Jump {
                    bound: Some(100_000),
                    ..
                }
            )
        });
        assert!(back.is_some());
        assert_eq!(calls(&o.compound), [Sys::Getpid, Sys::Getpid, Sys::Getpid]);
    }

    #[test]
    fn not_when_iterations_depend_on_each_other() {
        // prev = cur; cur = getpid: each iteration reads the previous one's value.
        let mut b = Builder::new();
        let i = b.value("i", 0);
        let cur = b.value("cur", 0);
        let prev = b.value("prev", 0);
        b.do_while(100, |b| {
            b.set(prev, cur);
            let p = b.getpid();
            b.set(cur, p);
            b.accumulate(i, 1);
            i.lt(10)
        });
        b.output("prev", prev);
        let c = b.finish();
        let o = only(&c, "loop_to_map");
        assert_eq!(o.compound, c);
        assert_eq!(o.applied, [("loop_to_map", 0)]);
    }

    #[test]
    fn not_with_buffer_outputs_descriptors_or_writes() {
        // A read into a shared buffer in the body.
        let mut b = Builder::new();
        let buf = b.buffer("buf", 16);
        let path = b.path("f");
        let f = b.openat(FdRef::Cwd, path, OFlags::RDONLY, Mode::empty());
        let i = b.value("i", 0);
        b.do_while(100, |b| {
            b.pread(f, buf, 0);
            b.accumulate(i, 1);
            i.lt(10)
        });
        let c = b.finish();
        assert_eq!(only(&c, "loop_to_map").compound, c);

        // An open in the body.
        let mut b = Builder::new();
        let path = b.path("f");
        let i = b.value("i", 0);
        b.do_while(100, |b| {
            let f = b.openat(FdRef::Cwd, path, OFlags::RDONLY, Mode::empty());
            b.close(f);
            b.accumulate(i, 1);
            i.lt(10)
        });
        let c = b.finish();
        assert_eq!(only(&c, "loop_to_map").compound, c);
    }

    #[test]
    fn not_when_the_bound_would_stop_the_loop() {
        // 10 iterations take the back jump 9 times; a bound of 5 stops the original.
        let c = getpid_loop(10, 5, |_, _, _| {});
        assert_eq!(only(&c, "loop_to_map").compound, c);
        // A bound of exactly 9 is enough.
        let c = getpid_loop(10, 9, |_, _, _| {});
        assert_eq!(only(&c, "loop_to_map").applied, [("loop_to_map", 1)]);
    }

    #[test]
    fn a_loop_that_runs_once_even_if_the_end_is_below_the_start() {
        // do-while with end 0: one iteration.
        let c = getpid_loop(0, 100, |b, i, _| b.output("i", i));
        let o = only(&c, "loop_to_map");
        assert_eq!(
            range_of(&o.compound),
            Some((Value::Imm(0), Value::Imm(1), Value::Imm(1)))
        );
        let i = c.reg("i").expect("i");
        assert_eq!(
            o.compound.ops.last(),
            Some(&Op::Mov {
                dst: i,
                src: Value::Imm(1)
            })
        );
    }
}
