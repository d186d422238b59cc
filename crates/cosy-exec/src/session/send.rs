//! Sending a call: its operands checked and turned into an operation of the session's
//! compound, its result a new register or descriptor slot, the lane stepped.

use super::*;

impl Session {
    pub(super) fn check_buf(&self, buf: BufHandle, what: &'static str) -> Result<(), SessionError> {
        if buf.session != self.id || buf.buf.index() >= self.c.buffers.len() {
            return Err(SessionError::Foreign(what));
        }
        Ok(())
    }

    /// Sends `call`: on `direct` it runs now; on `ring` it is queued (and submitted at the
    /// next barrier or get). Returns its handle at once. Refused (nothing sent) when the
    /// policy does not allow the call, an operand is of another session, or a range or path
    /// is invalid.
    pub fn send<H: Handle>(&mut self, call: Call<H>) -> Result<H, SessionError> {
        let sys = call.sys;
        let name = sys.name();
        if !self.policy.allows(sys) {
            return Err(SessionError::NotAllowed(name));
        }
        self.compact();
        let spec = sys.spec();
        let index = u32::try_from(self.entries.len())
            .map_err(|_| SessionError::Limit("too many calls in one session".into()))?;
        let mut deps = Vec::new();
        let mut args = Vec::with_capacity(call.args.len());
        let mut data = Vec::new();
        for (k, (a, aspec)) in call.args.iter().zip(spec.args).enumerate() {
            args.push(match a {
                Operand::Fd(Fd::Cwd) => Arg::Fd(FdRef::Cwd),
                Operand::Fd(Fd::Std(n)) => {
                    if !self.policy.std_streams || *n > 2 {
                        return Err(SessionError::StdStream { call: name, fd: *n });
                    }
                    Arg::Fd(FdRef::Std(*n))
                }
                Operand::Fd(Fd::Handle(h)) => {
                    let e = self.entry_of(h.session, h.index, name)?;
                    let Some((slot, plain)) = e.slot else {
                        return Err(SessionError::Foreign(name));
                    };
                    let usable = plain || (aspec.kind == ArgKind::Fd && slot_capable(sys, k));
                    if !usable {
                        return Err(SessionError::NeedsPlain {
                            call: name,
                            operand: k,
                            opened_by: h.index,
                        });
                    }
                    deps.push(h.index);
                    Arg::Fd(FdRef::Slot(slot))
                }
                Operand::Int(v) => Arg::Value(self.value_of(v, name, &mut deps)?),
                Operand::Path(p) => {
                    if p.contains(&0) {
                        return Err(SessionError::Path(name));
                    }
                    let id = self.c.data.len() + data.len();
                    if id >= usize::from(u16::MAX) {
                        return Err(SessionError::Limit(format!(
                            "a session has at most {} paths",
                            u16::MAX
                        )));
                    }
                    data.push(p.clone());
                    Arg::Path(PathRef::Data(cosy_model::DataId(id as u16)))
                }
                Operand::Buf(b) => {
                    self.check_buf(b.buf, name)?;
                    let end = match b.end {
                        None => None,
                        Some(v) => Some(self.value_of(&v, name, &mut deps)?),
                    };
                    // Bounds given now are checked now; a result is checked when the call
                    // is issued (the same on every backend).
                    let imm_end = match b.end {
                        None => Some(i64::from(b.buf.size)),
                        Some(Val::Imm(e)) => Some(e),
                        Some(Val::Handle(_)) => None,
                    };
                    let bad = b.start < 0
                        || b.start > i64::from(b.buf.size)
                        || imm_end.is_some_and(|e| e < b.start || e > i64::from(b.buf.size));
                    if bad {
                        return Err(SessionError::Range {
                            call: name,
                            start: b.start,
                            end: imm_end.unwrap_or(b.start),
                            size: b.buf.size,
                        });
                    }
                    Arg::Buf(BufRange {
                        buf: b.buf.buf,
                        start: Value::Imm(b.start),
                        end,
                    })
                }
            });
        }
        // The result: a new register or fd slot.
        let (ret, reg, slot) = match H::RET {
            RetKind::Fd => {
                if self.open >= self.policy.open_fds {
                    return Err(SessionError::Limit(format!(
                        "{name}: the policy allows {} open descriptors",
                        self.policy.open_fds
                    )));
                }
                let n = self.c.fds.len();
                if n >= usize::from(u16::MAX) {
                    return Err(SessionError::Limit(format!(
                        "a session opens at most {} descriptors",
                        u16::MAX
                    )));
                }
                let flags = match args.get(2) {
                    Some(Arg::Value(Value::Imm(f))) => *f,
                    _ => 0,
                };
                let plain = call.plain || flags & i64::from(libc::O_DIRECTORY | libc::O_PATH) != 0;
                let s = FdSlot(n as u16);
                (cosy_model::Ret::Fd(s), None, Some((s, plain)))
            }
            RetKind::Value => {
                let n = self.c.regs.len();
                if n >= usize::from(u16::MAX) {
                    return Err(SessionError::Limit(format!(
                        "a session has at most {} value results",
                        u16::MAX
                    )));
                }
                let r = Reg(n as u16);
                (cosy_model::Ret::Reg(r), Some(r), None)
            }
        };
        // Everything checked: the operation is appended.
        self.c.data.extend(data);
        if reg.is_some() {
            // Unnamed (no allocation per call): a session's compound is never printed.
            self.c.regs.push(String::new());
            self.lane.regs.push(0);
        }
        if let Some((_, plain)) = slot {
            self.c.fds.push(String::new());
            self.lane.fds.grow(self.c.fds.len());
            self.open += 1;
            if let Exec::Ring(r) = &mut self.exec {
                let fixed = !plain && ring_capable(sys, &r.caps()) && r.caps().files;
                r.plan.fixed.push(fixed);
                r.plan.fixed_slots += usize::from(fixed);
            }
        }
        if sys == Sys::Close
            && let Some(&d) = deps.first()
            && let Some(e) = self.entries.get_mut(d as usize)
            && !e.closed
        {
            e.closed = true;
            self.open = self.open.saturating_sub(1);
        }
        if let Exec::Ring(r) = &mut self.exec {
            let route = if ring_capable(sys, &r.caps()) {
                Route::Ring
            } else {
                Route::Direct
            };
            r.plan.any_ring |= route == Route::Ring;
            r.plan.route.push(route);
        }
        self.c.ops.push(Op::Sys {
            call: sys,
            args,
            ret,
        });
        self.lane.counters.push(0);
        self.entries.push(Entry {
            call: sys,
            reg,
            slot,
            deps,
            fd: None,
            result: None,
            regval: 0,
            failed_dep: None,
            closed: false,
        });
        self.advance(false);
        Ok(H::make(self.id, index, sys))
    }

    fn entry_of(
        &self,
        session: u64,
        index: u32,
        name: &'static str,
    ) -> Result<&Entry, SessionError> {
        if session != self.id {
            return Err(SessionError::Foreign(name));
        }
        self.entries
            .get(index as usize)
            .ok_or(SessionError::Foreign(name))
    }

    fn value_of(
        &self,
        v: &Val,
        name: &'static str,
        deps: &mut Vec<u32>,
    ) -> Result<Value, SessionError> {
        match v {
            Val::Imm(x) => Ok(Value::Imm(*x)),
            Val::Handle(h) => {
                let e = self.entry_of(h.session, h.index, name)?;
                let r = e.reg.ok_or(SessionError::Foreign(name))?;
                deps.push(h.index);
                if (h.index as usize) < self.base {
                    // Completed, its register compacted away: the value it held.
                    return Ok(Value::Imm(e.regval));
                }
                Ok(Value::Reg(r))
            }
        }
    }
}
