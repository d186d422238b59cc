//! The generator of `compound()`: anything well-formed.

use cosy_model::{
    Arg, ArgKind, BUILTINS, BinOp, BufId, BufRange, Cond, DataId, FdRef, FdSlot, MapSource, Op,
    PathRef, PathVar, Reg, Ret, RetKind, Sys, Value, Width,
};

use super::{FUNC_WORDS, Gen};

impl Gen<'_> {
    pub(super) fn reg(&mut self) -> Reg {
        Reg(self.t.below(self.c.regs.len()) as u16)
    }

    pub(super) fn fd_slot(&mut self) -> FdSlot {
        FdSlot(self.t.below(self.c.fds.len()) as u16)
    }

    pub(super) fn path_var(&mut self) -> PathVar {
        PathVar(self.t.below(self.c.paths.len()) as u16)
    }

    pub(super) fn data_id(&mut self) -> DataId {
        DataId(self.t.below(self.c.data.len()) as u16)
    }

    pub(super) fn value(&mut self) -> Value {
        if self.t.chance(50) {
            Value::Reg(self.reg())
        } else {
            Value::Imm(self.t.int())
        }
    }

    pub(super) fn range(&mut self) -> BufRange {
        let buf = BufId(self.t.below(self.c.buffers.len()) as u16);
        match self.t.below(3) {
            0 => BufRange::whole(buf),
            1 => BufRange {
                buf,
                start: self.value(),
                end: None,
            },
            _ => BufRange {
                buf,
                start: self.value(),
                end: Some(self.value()),
            },
        }
    }

    pub(super) fn fd_ref(&mut self, kind: ArgKind) -> FdRef {
        match (kind, self.t.below(5)) {
            (ArgKind::NewFd, _) | (_, 0 | 1) => FdRef::Slot(self.fd_slot()),
            (ArgKind::DirFd, _) | (_, 2) => FdRef::Cwd,
            _ => FdRef::Std(self.t.below(3) as u8),
        }
    }

    pub(super) fn operand(&mut self, kind: ArgKind) -> Arg {
        match kind {
            ArgKind::Fd | ArgKind::DirFd | ArgKind::NewFd => Arg::Fd(self.fd_ref(kind)),
            ArgKind::Path | ArgKind::Str => Arg::Path(if self.t.chance(30) {
                PathRef::Var(self.path_var())
            } else {
                PathRef::Data(self.data_id())
            }),
            ArgKind::BufIn | ArgKind::BufOut => Arg::Buf(self.range()),
            ArgKind::Int | ArgKind::Flags(_) => Arg::Value(self.value()),
        }
    }

    pub(super) fn arbitrary_op(&mut self) -> Op {
        match self.t.below(8) {
            0 | 1 => {
                let call = *self.t.pick(Sys::ALL);
                let spec = call.spec();
                let args = spec.args.iter().map(|a| self.operand(a.kind)).collect();
                let ret = if self.t.chance(20) {
                    Ret::None
                } else {
                    match spec.ret {
                        RetKind::Value => Ret::Reg(self.reg()),
                        RetKind::Fd => Ret::Fd(self.fd_slot()),
                    }
                };
                Op::Sys { call, args, ret }
            }
            2 => Op::Arith {
                dst: self.reg(),
                op: *self.t.pick(&BinOp::ALL),
                a: self.value(),
                b: self.value(),
            },
            3 => Op::Mov {
                dst: self.reg(),
                src: self.value(),
            },
            4 => Op::Load {
                dst: self.reg(),
                width: *self.t.pick(&Width::ALL),
                buf: BufId(self.t.below(self.c.buffers.len()) as u16),
                off: self.value(),
            },
            5 => Op::Store {
                width: *self.t.pick(&Width::ALL),
                buf: BufId(self.t.below(self.c.buffers.len()) as u16),
                off: self.value(),
                src: self.value(),
            },
            6 => {
                let cond = self.t.chance(70).then(|| Cond {
                    op: *self.t.pick(&BinOp::ALL),
                    a: self.value(),
                    b: self.value(),
                });
                let bound = self.t.chance(50).then(|| self.t.next() as u32);
                let aim = self.t.next();
                self.aims.push((self.c.ops.len(), aim));
                Op::Jump {
                    cond,
                    target: 0,
                    bound,
                }
            }
            _ => {
                let dst = self.t.chance(70).then(|| self.reg());
                let func = if self.t.chance(70) {
                    self.t.pick(BUILTINS).to_string()
                } else {
                    self.t.pick(FUNC_WORDS).to_string()
                };
                let n = self.t.below(4);
                let args = (0..n)
                    .map(|_| match self.t.below(5) {
                        0 | 1 => Arg::Value(self.value()),
                        2 | 3 => Arg::Buf(self.range()),
                        _ => Arg::Path(PathRef::Data(self.data_id())),
                    })
                    .collect();
                Op::Call { dst, func, args }
            }
        }
    }

    pub(super) fn source(&mut self) -> MapSource {
        match self.t.below(4) {
            0 => {
                let n = self.t.below(4);
                MapSource::Paths {
                    list: (0..n).map(|_| self.data_id()).collect(),
                    var: self.path_var(),
                }
            }
            1 => {
                let n = self.t.below(5);
                MapSource::Offsets {
                    list: (0..n).map(|_| self.t.int()).collect(),
                    var: self.reg(),
                }
            }
            2 => MapSource::Range {
                var: self.reg(),
                start: self.value(),
                end: self.value(),
                step: self.value(),
            },
            _ => MapSource::Dirents {
                name: self.path_var(),
                kind: self.reg(),
                ino: self.reg(),
                buf: self.range(),
            },
        }
    }

    pub(super) fn arbitrary_ops(&mut self) {
        let mut open: Vec<usize> = Vec::new();
        let mut steps = 0;
        while self.t.more() && steps < 64 {
            steps += 1;
            match self.t.below(10) {
                0 if open.len() < 3 => {
                    let source = self.source();
                    open.push(self.c.ops.len());
                    self.c.ops.push(Op::MapBegin { source, end: 0 });
                }
                1 => self.close_map(&mut open),
                _ => {
                    let op = self.arbitrary_op();
                    self.c.ops.push(op);
                }
            }
        }
        while !open.is_empty() {
            self.close_map(&mut open);
        }
        let len = self.c.ops.len() as u64;
        for (op, aim) in std::mem::take(&mut self.aims) {
            if let Some(Op::Jump { target, .. }) = self.c.ops.get_mut(op) {
                *target = (aim % (len + 1)) as u32;
            }
        }
    }

    pub(super) fn close_map(&mut self, open: &mut Vec<usize>) {
        if let Some(begin) = open.pop() {
            let end = self.c.ops.len();
            self.c.ops.push(Op::MapEnd {
                begin: begin as u32,
            });
            if let Some(Op::MapBegin { end: e, .. }) = self.c.ops.get_mut(begin) {
                *e = end as u32;
            }
        }
    }
}
