//! What the executor works out before a run. The verifier has worked out the compound's
//! structure ([`cosy_verify::Structure`]: control flow, map nesting, the facts of every map);
//! the plan adds what only the executor knows — that every user function called is
//! registered, and that the compound's fd slots fit the policy's open files — and, in debug
//! builds, asserts the invariants of a verified compound that the interpreter indexes by.

use std::ffi::{CStr, CString};
use std::sync::Arc;

use cosy_model::{Arg, Compound, DataId, FdRef, Op, PathRef, Sys};
use cosy_verify::{Structure, Verified};

pub use cosy_verify::MapInfo;

use crate::funcs::Functions;

/// The executor's plan of a compound: the verifier's structure, and the operands it resolves
/// once for every run (the paths of data constants).
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The verifier's structure of the compound, shared with its [`Verified`].
    structure: Arc<Structure>,
    /// The data constants used as paths, as C strings (by [`DataId`] index): made once here,
    /// shared by every call that names them.
    paths: Vec<Option<Arc<CStr>>>,
    /// Whether a call of the compound can wait without end (the table's `blocks`): only then
    /// does a run arm the alarm that interrupts it at the time limit.
    blocks: bool,
}

impl Plan {
    /// The plan of `v` with the functions `funcs`; the error says what the executor cannot
    /// run.
    pub fn new(v: &Verified, funcs: &Functions) -> Result<Plan, String> {
        let c = v.compound();
        let policy = v.policy();
        // The verifier leaves `policy.open_fds` to the executor (its module doc): a compound
        // with more fd slots than the policy's open files is refused before anything runs.
        if c.fds.len() as u64 > u64::from(policy.open_fds) {
            return Err(format!(
                "the compound has {} fd slots, more than the policy's {} open fds",
                c.fds.len(),
                policy.open_fds
            ));
        }
        for (i, op) in c.ops.iter().enumerate() {
            if let Op::Call { func, .. } = op
                && !funcs.contains(func)
            {
                return Err(format!("op {i}: function `{func}` is not registered"));
            }
        }
        debug_assert!(
            invariants(c, v.structure()),
            "a verified compound and its structure disagree"
        );
        let mut paths = vec![None; c.data.len()];
        for op in &c.ops {
            let args = match op {
                Op::Sys { args, .. } | Op::Call { args, .. } => args,
                _ => continue,
            };
            for a in args {
                if let Arg::Path(PathRef::Data(d)) = a
                    && let Some(slot @ None) = paths.get_mut(d.index())
                    && let Ok(s) = CString::new(c.data[d.index()].clone())
                {
                    *slot = Some(Arc::from(s.as_c_str()));
                }
            }
        }
        let blocks = c
            .ops
            .iter()
            .any(|op| matches!(op, Op::Sys { call, .. } if call.spec().blocks));
        Ok(Plan {
            structure: Arc::clone(v.structure()),
            paths,
            blocks,
        })
    }

    /// Whether a call of the compound can wait without end.
    pub fn blocks(&self) -> bool {
        self.blocks
    }

    /// Data constant `d` as a C string, if an operation uses it as a path.
    pub fn path(&self, d: DataId) -> Option<&Arc<CStr>> {
        self.paths.get(d.index())?.as_ref()
    }

    /// The facts of the map beginning at `begin`.
    pub fn map(&self, begin: usize) -> Option<&MapInfo> {
        self.structure.map(begin)
    }

    /// Every map, in order of their `MapBegin`.
    pub fn maps(&self) -> impl Iterator<Item = &MapInfo> {
        self.structure.maps()
    }

    /// The index of jump `op` among the compound's jumps (`None` for other operations).
    pub fn jump_index(&self, op: usize) -> Option<usize> {
        self.structure.jump_index(op)
    }

    /// Number of jumps.
    pub fn jumps(&self) -> usize {
        self.structure.jumps()
    }

    /// The innermost map whose body (`begin+1 ..= end`) holds operation `op`.
    pub fn enclosing(&self, op: usize) -> Option<usize> {
        self.structure.enclosing(op)
    }
}

/// What the interpreter relies on and verification guarantees (the verifier's module doc):
/// every index names a declaration, jumps stay in range, the structure's maps are the
/// compound's, and no call closes a standard stream or returns a descriptor nowhere.
fn invariants(c: &Compound, s: &Structure) -> bool {
    let n = c.ops.len();
    let declared = c.ops.iter().all(|op| {
        op.reads()
            .iter()
            .chain(&op.writes())
            .all(|r| r.index() < c.regs.len())
            && op.fd_uses().iter().all(|f| f.index() < c.fds.len())
            && op.buffers().iter().all(|b| b.index() < c.buffers.len())
    });
    let ops = c.ops.iter().enumerate().all(|(i, op)| match op {
        Op::Jump { target, .. } => *target as usize <= n,
        Op::Sys { call, args, ret } => {
            !(*call == Sys::Close && matches!(args.first(), Some(Arg::Fd(FdRef::Std(_)))))
                && args.len() == call.spec().args.len()
                && (call.spec().ret != cosy_model::RetKind::Fd
                    || matches!(ret, cosy_model::Ret::Fd(f) if f.index() < c.fds.len()))
        }
        Op::MapBegin { end, .. } => s.map(i).is_some_and(|m| m.end == *end as usize),
        Op::MapEnd { begin } => {
            s.map(*begin as usize).is_some_and(|m| m.end == i)
                && s.enclosing(i) == Some(*begin as usize)
        }
        _ => true,
    });
    let maps = s.maps().count()
        == c.ops
            .iter()
            .filter(|op| matches!(op, Op::MapBegin { .. }))
            .count();
    declared && ops && maps
}

#[cfg(test)]
mod tests {
    use super::*;
    use cosy_model::flags::{Mode, OFlags};
    use cosy_model::{Builder, Policy, Ret, Value};

    /// The plan of `c` verified under the trusted policy; the error is the verifier's or the
    /// plan's.
    fn plan_with(c: Compound, policy: &Policy, funcs: &Functions) -> Result<Plan, String> {
        let v = cosy_verify::verify(c, policy).map_err(|p| p.to_string())?;
        Plan::new(&v, funcs)
    }

    fn plan(c: Compound) -> Result<Plan, String> {
        plan_with(c, &Policy::trusted(), &Functions::new())
    }

    /// The plan hands on the verifier's facts (cosy-verify's `facts` tests check the facts).
    #[test]
    fn the_plan_gives_the_verifiers_facts() {
        let mut b = Builder::new();
        let total = b.value("total", 0);
        let buf = b.local_buffer("buf", 64);
        b.map_paths(["a", "b"], |b, p| {
            let fd = b.openat(FdRef::Cwd, p, OFlags::empty(), Mode::empty());
            let n = b.read(fd, buf);
            b.accumulate(total, n);
            b.do_while(3, |_| n.eq(1));
            b.close(fd);
        });
        let v = cosy_verify::verify(b.finish(), &Policy::trusted()).unwrap();
        let p = Plan::new(&v, &Functions::new()).unwrap();
        let s = v.structure();
        let m = p.maps().next().unwrap();
        assert_eq!(p.maps().collect::<Vec<_>>(), s.maps().collect::<Vec<_>>());
        assert_eq!(p.map(m.begin), s.map(m.begin));
        assert_eq!(p.enclosing(m.begin + 1), Some(m.begin));
        assert_eq!(p.jumps(), s.jumps());
        assert_eq!(p.jump_index(m.jumps[0]), Some(0));
    }

    #[test]
    fn nested_iterations_share_the_copy_their_enclosing_body_uses() {
        let mut b = Builder::new();
        let outer_buf = b.local_buffer("outer", 64);
        let inner_buf = b.local_buffer("inner", 64);
        b.map_range(0, 2, 1, |b, _| {
            b.store(cosy_model::Width::U8, outer_buf, 0, 1);
            b.map_range(0, 2, 1, |b, _| {
                b.load(cosy_model::Width::U8, outer_buf, 0);
                b.store(cosy_model::Width::U8, inner_buf, 0, 1);
            });
        });
        let p = plan(b.finish()).unwrap();
        let maps: Vec<_> = p.maps().collect();
        assert_eq!(maps[0].zero_bufs, vec![outer_buf.id(), inner_buf.id()]);
        assert_eq!(maps[1].zero_bufs, vec![inner_buf.id()]);
    }

    /// What the executor relies on never reaches it broken: the verifier refuses it.
    #[test]
    fn malformed_compounds_are_refused() {
        let mut b = Builder::new();
        b.push(Op::Jump {
            cond: None,
            target: 0,
            bound: None,
        });
        assert!(plan(b.finish()).unwrap_err().contains("without a bound"));

        let mut b = Builder::new();
        b.push(Op::Sys {
            call: Sys::Read,
            args: vec![Arg::Fd(FdRef::Std(7)), Arg::Value(Value::Imm(0))],
            ret: Ret::None,
        });
        assert!(plan(b.finish()).is_err());

        let mut b = Builder::new();
        let p = b.path("x");
        b.push(Op::Sys {
            call: Sys::Openat,
            args: vec![
                Arg::Fd(FdRef::Cwd),
                Arg::Path(p),
                Arg::Value(Value::Imm(0)),
                Arg::Value(Value::Imm(0)),
            ],
            ret: Ret::None,
        });
        assert!(plan(b.finish()).unwrap_err().contains("fd slot"));

        let mut b = Builder::new();
        b.close(FdRef::Std(1));
        assert!(plan(b.finish()).unwrap_err().contains("standard stream"));

        let mut b = Builder::new();
        b.push(Op::MapEnd { begin: 0 });
        assert!(plan(b.finish()).is_err());

        let mut b = Builder::new();
        b.map_offsets(vec![1], |b, _| {
            b.push(Op::Jump {
                cond: None,
                target: 5,
                bound: None,
            });
        });
        b.nop();
        b.nop();
        b.nop();
        assert!(plan(b.finish()).unwrap_err().contains("leaves the body"));
    }

    #[test]
    fn what_only_the_executor_knows_is_checked() {
        let mut b = Builder::new();
        b.call("mine", ());
        let mut policy = Policy::trusted();
        policy.functions.insert("mine".into());
        let e = plan_with(b.finish(), &policy, &Functions::new()).unwrap_err();
        assert!(e.contains("`mine` is not registered"), "{e}");

        let mut b = Builder::new();
        let p = b.path("x");
        for _ in 0..3 {
            let fd = b.openat(FdRef::Cwd, p, OFlags::empty(), Mode::empty());
            b.close(fd);
        }
        let policy = Policy {
            open_fds: 2,
            ..Policy::trusted()
        };
        let e = plan_with(b.finish(), &policy, &Functions::new()).unwrap_err();
        assert!(e.contains("3 fd slots"), "{e}");
    }
}
