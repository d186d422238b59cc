//! Replaying a straight-line compound one call at a time.

use super::*;

/// Replays the calls of `v`, a straight-line compound (system calls only: no jumps, maps,
/// functions or arena operations), one by one through a session on `backend` under `v`'s
/// policy, and returns its outputs as the direct executor reports them: each register holds
/// the result of the last call into it — `-errno` for a call that failed in `continue` mode —
/// up to the call that ends the run: the first failure in `stop` mode (nothing is sent after
/// it), a refusal before issuing (a range outside its buffer, the fuel) in both modes. Every
/// call is issued as the session issues it, so the outputs of a compound are the same on both
/// backends.
pub fn replay(backend: Backend, v: &Verified) -> Result<Vec<(String, i64)>, SessionError> {
    let c = v.compound();
    let mut s = Session::new(backend, v.policy())?;
    let not = |what: &str| SessionError::Setup(format!("replay: {what}"));
    let mut bufs = Vec::with_capacity(c.buffers.len());
    for b in &c.buffers {
        if b.local {
            return Err(not("a local buffer"));
        }
        bufs.push(s.buffer(b.size as usize)?);
    }
    // A slot used where a direct descriptor will not do is opened plain.
    let mut plain = vec![false; c.fds.len()];
    for op in &c.ops {
        if let Op::Sys { call, args, .. } = op {
            for (k, (a, spec)) in args.iter().zip(call.spec().args).enumerate() {
                if let Arg::Fd(FdRef::Slot(x)) = a
                    && !(spec.kind == ArgKind::Fd && slot_capable(*call, k))
                    && let Some(p) = plain.get_mut(x.index())
                {
                    *p = true;
                }
            }
        }
    }
    let mut regs: Vec<Option<ValueHandle>> = vec![None; c.regs.len()];
    let mut slots: Vec<Option<FdHandle>> = vec![None; c.fds.len()];
    let mut init = vec![0i64; c.regs.len()];
    for input in &c.inputs {
        if let cosy_model::InputKind::Int { reg, default } = input.kind
            && let Some(x) = init.get_mut(reg.index())
        {
            *x = default;
        }
    }
    let val = |v: &Value, regs: &[Option<ValueHandle>]| match v {
        Value::Imm(x) => Val::Imm(*x),
        Value::Reg(r) => match regs.get(r.index()).copied().flatten() {
            Some(h) => Val::Handle(h),
            None => Val::Imm(init.get(r.index()).copied().unwrap_or(0)),
        },
    };
    let stop = c.mode == ErrorMode::Stop;
    let mut sent = Vec::with_capacity(c.ops.len());
    for op in &c.ops {
        let Op::Sys { call, args, ret } = op else {
            return Err(not("not a straight-line compound of system calls"));
        };
        let mut operands = Vec::with_capacity(args.len());
        for a in args {
            operands.push(match a {
                Arg::Fd(FdRef::Cwd) => Operand::Fd(Fd::Cwd),
                Arg::Fd(FdRef::Std(n)) => Operand::Fd(Fd::Std(*n)),
                Arg::Fd(FdRef::Slot(x)) => match slots.get(x.index()).copied().flatten() {
                    Some(h) => Operand::Fd(Fd::Handle(h)),
                    None => return Err(not("a slot used before it is opened")),
                },
                Arg::Value(v) => Operand::Int(val(v, &regs)),
                Arg::Path(PathRef::Data(d)) => {
                    Operand::Path(c.data.get(d.index()).cloned().unwrap_or_default())
                }
                Arg::Path(PathRef::Var(_)) => return Err(not("a path variable")),
                Arg::Buf(r) => {
                    let Some(&buf) = bufs.get(r.buf.index()) else {
                        return Err(not("an unknown buffer"));
                    };
                    let start = match val(&r.start, &regs) {
                        Val::Imm(x) => x,
                        Val::Handle(_) => return Err(not("a range starting at a result")),
                    };
                    Operand::Buf(Buf {
                        buf,
                        start,
                        end: r.end.as_ref().map(|e| val(e, &regs)),
                    })
                }
            });
        }
        let (reg, h): (Option<Reg>, AnyHandle) = match ret {
            cosy_model::Ret::Fd(x) => {
                let mut open = Call::<FdHandle>::new(*call, operands);
                open.plain = plain.get(x.index()).copied().unwrap_or(false);
                let h = s.send(open)?;
                if let Some(sl) = slots.get_mut(x.index()) {
                    *sl = Some(h);
                }
                (None, h.into())
            }
            cosy_model::Ret::Reg(r) => {
                let h = s.send(Call::<ValueHandle>::new(*call, operands))?;
                if let Some(x) = regs.get_mut(r.index()) {
                    *x = Some(h);
                }
                (Some(*r), h.into())
            }
            cosy_model::Ret::None => (
                None,
                s.send(Call::<ValueHandle>::new(*call, operands))?.into(),
            ),
        };
        sent.push((reg, h));
        // In `stop` mode nothing runs after a failure.
        if stop && s.get(h).is_err() {
            break;
        }
    }
    s.barrier();
    // The registers as the direct executor leaves them: results in order, up to the call
    // that stopped the run (a failure in `stop` mode, a refusal in either mode).
    let mut values = init;
    for (reg, h) in sent {
        let v = match s.get(h) {
            Ok(v) => v,
            Err(_) if stop => break,
            Err(e) => match e.result {
                Some(r) => r,
                None => break,
            },
        };
        if let Some(x) = reg.and_then(|r| values.get_mut(r.index())) {
            *x = v;
        }
    }
    let out = c
        .outputs
        .iter()
        .map(|o| {
            (
                o.name.clone(),
                values.get(o.reg.index()).copied().unwrap_or(0),
            )
        })
        .collect();
    Ok(out)
}
