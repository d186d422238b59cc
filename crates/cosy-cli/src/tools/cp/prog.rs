//! Compounds written operation by operation, with forward labels and reused registers and
//! descriptor slots: a directory of a thousand files is one compound of a few registers and
//! four slots (the policy bounds the slots a compound declares, not the files it opens).

use std::sync::{Arc, Mutex};

use cosy_exec::{FnArgs, Functions, Outcome, RunOptions};
use cosy_model::{
    Arg, BinOp, BufId, BufRange, Buffer, Compound, Cond, DataId, ErrorMode, FdRef, FdSlot, Op,
    PathRef, Policy, Reg, Ret, Sys, Value, Width,
};

/// The user function that hands bytes of the arena back to the program: `keep(tag, range)`.
pub const KEEP: &str = "keep";

/// A place in the operation list, bound once.
#[derive(Clone, Copy, Debug)]
pub struct Label(usize);

/// Bytes handed back by [`KEEP`], each with its tag.
pub type Kept = Vec<(i64, Vec<u8>)>;

/// A compound being written, in `continue` mode (a failed call is a result the program
/// branches on, and is listed in the outcome with its operation's index).
pub struct Prog {
    c: Compound,
    labels: Vec<Option<u32>>,
    patches: Vec<(usize, Label)>,
    empty: Option<PathRef>,
}

impl Prog {
    /// An empty compound.
    pub fn new() -> Self {
        Prog {
            c: Compound {
                mode: ErrorMode::Continue,
                ..Compound::default()
            },
            labels: Vec::new(),
            patches: Vec::new(),
            empty: None,
        }
    }

    /// Index of the next operation.
    pub fn here(&self) -> u32 {
        self.c.ops.len() as u32
    }

    /// A register.
    pub fn reg(&mut self) -> Reg {
        let r = Reg(self.c.regs.len() as u16);
        self.c.regs.push(format!("r{}", r.0));
        r
    }

    /// A descriptor slot.
    pub fn slot(&mut self) -> FdRef {
        let s = FdSlot(self.c.fds.len() as u16);
        self.c.fds.push(format!("f{}", s.0));
        FdRef::Slot(s)
    }

    /// A buffer of `size` bytes.
    pub fn buffer(&mut self, size: u32) -> BufId {
        let b = BufId(self.c.buffers.len() as u16);
        self.c.buffers.push(Buffer {
            name: format!("b{}", b.0),
            size,
            local: false,
        });
        b
    }

    /// A path or string constant (not deduplicated: names in a directory are distinct).
    pub fn path(&mut self, bytes: &[u8]) -> PathRef {
        let d = DataId(self.c.data.len() as u16);
        self.c.data.push(bytes.to_vec());
        PathRef::Data(d)
    }

    /// The empty path (for calls made on a descriptor with `AT_EMPTY_PATH`).
    pub fn empty(&mut self) -> PathRef {
        match self.empty {
            Some(p) => p,
            None => {
                let p = self.path(b"");
                self.empty = Some(p);
                p
            }
        }
    }

    /// A system call with its result into `ret`; returns the operation's index.
    pub fn sys(&mut self, call: Sys, args: Vec<Arg>, ret: Ret) -> u32 {
        let at = self.here();
        self.c.ops.push(Op::Sys { call, args, ret });
        at
    }

    /// openat(2) into `slot`.
    pub fn openat(&mut self, slot: FdRef, dir: FdRef, path: PathRef, flags: i32, mode: u32) -> u32 {
        let FdRef::Slot(s) = slot else {
            return self.here();
        };
        self.sys(
            Sys::Openat,
            vec![
                Arg::Fd(dir),
                Arg::Path(path),
                Arg::Value(Value::Imm(i64::from(flags))),
                Arg::Value(Value::Imm(i64::from(mode))),
            ],
            Ret::Fd(s),
        )
    }

    /// close(2), the result discarded.
    pub fn close(&mut self, fd: FdRef) -> u32 {
        self.sys(Sys::Close, vec![Arg::Fd(fd)], Ret::None)
    }

    /// `dst = a OP b`.
    pub fn arith(&mut self, dst: Reg, op: BinOp, a: impl Into<Value>, b: impl Into<Value>) {
        self.c.ops.push(Op::Arith {
            dst,
            op,
            a: a.into(),
            b: b.into(),
        });
    }

    /// `dst = v`.
    pub fn mov(&mut self, dst: Reg, v: impl Into<Value>) {
        self.c.ops.push(Op::Mov { dst, src: v.into() });
    }

    /// Stores the 8 bytes of `v` at `off` of `buf`.
    pub fn store64(&mut self, buf: BufId, off: i64, v: i64) {
        self.c.ops.push(Op::Store {
            width: Width::U64,
            buf,
            off: Value::Imm(off),
            src: Value::Imm(v),
        });
    }

    /// A label not bound yet.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `l` to the next operation.
    pub fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.here());
    }

    /// `if a OP b goto l` (`l` bound later or earlier: a jump back carries `bound`).
    pub fn jump_if(&mut self, a: impl Into<Value>, op: BinOp, b: impl Into<Value>, l: Label) {
        let cond = Cond {
            op,
            a: a.into(),
            b: b.into(),
        };
        self.jump(Some(cond), l);
    }

    /// `goto l`.
    pub fn goto(&mut self, l: Label) {
        self.jump(None, l);
    }

    fn jump(&mut self, cond: Option<Cond>, l: Label) {
        let at = self.c.ops.len();
        let (target, bound) = match self.labels[l.0] {
            // A loop: taken at most once per byte-sized step of a file of a terabyte.
            Some(t) => (t, Some(1 << 30)),
            None => {
                self.patches.push((at, l));
                (0, None)
            }
        };
        self.c.ops.push(Op::Jump {
            cond,
            target,
            bound,
        });
    }

    /// `keep(tag, buf[0..n])`: the bytes handed back in the run's [`Kept`].
    pub fn keep(&mut self, tag: i64, buf: BufId, n: Reg) {
        self.c.ops.push(Op::Call {
            dst: None,
            func: KEEP.into(),
            args: vec![
                Arg::Value(Value::Imm(tag)),
                Arg::Buf(BufRange {
                    buf,
                    start: Value::Imm(0),
                    end: Some(Value::Reg(n)),
                }),
            ],
        });
    }

    /// Verifies and runs the compound on the direct executor; the outcome and what [`KEEP`]
    /// handed back. `None` when the verifier refuses it (a bug of ours, reported as `EINVAL`
    /// by the callers).
    pub fn run(mut self) -> Option<(Outcome, Kept)> {
        for (at, l) in std::mem::take(&mut self.patches) {
            let t = self.labels[l.0]?;
            if let Some(Op::Jump { target, .. }) = self.c.ops.get_mut(at) {
                *target = t;
            }
        }
        let mut policy = Policy::trusted();
        policy.functions.insert(KEEP.into());
        let v = match cosy_verify::verify(self.c, &policy) {
            Ok(v) => v,
            Err(p) => {
                if std::env::var_os("COSY_CP_DEBUG").is_some() {
                    eprintln!("cp: compound refused: {p}");
                }
                return None;
            }
        };
        let kept: Arc<Mutex<Kept>> = Arc::default();
        let sink = Arc::clone(&kept);
        let mut functions = Functions::new();
        functions.register(KEEP, move |a: &FnArgs<'_>| {
            let tag = a.int(0)?;
            let bytes = a.bytes(1)?.to_vec();
            if let Ok(mut k) = sink.lock() {
                k.push((tag, bytes));
            }
            Ok(0)
        });
        let opts = RunOptions {
            functions,
            backend: cosy_exec::Backend::Direct,
            ..RunOptions::default()
        };
        let out = cosy_exec::run(&v, &opts);
        let kept = kept
            .lock()
            .map(|mut k| std::mem::take(&mut *k))
            .unwrap_or_default();
        Some((out, kept))
    }
}

/// `/proc/self/fd/N`: the path by which a compound opens a directory the session holds
/// (a compound names only descriptors it opened itself).
pub fn fd_path(fd: i64) -> Vec<u8> {
    format!("/proc/self/fd/{fd}").into_bytes()
}
