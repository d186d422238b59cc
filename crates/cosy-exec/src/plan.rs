//! What the executor works out before a run: a structural check of the compound (a safety net
//! under the verifier — the executor relies on these facts to index without panicking and to
//! never touch a descriptor it does not own) and, for every map, the facts its iterations need.

use cosy_model::{
    Arg, ArgKind, BinOp, BufId, BufRange, Compound, FdRef, FdSlot, MapSource, Op, PathRef, Policy,
    Reg, Ret, RetKind, Sys, Value,
};

use crate::funcs::Functions;

/// Facts about one map, computed once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapInfo {
    /// Index of the `MapBegin`.
    pub begin: usize,
    /// Index of the matching `MapEnd`.
    pub end: usize,
    /// Registers written in the body (nested maps included) that are the iteration's own:
    /// restored to their value at the map's start before each iteration.
    pub locals: Vec<Reg>,
    /// Accumulators: registers that may hold a value when the map starts and that the body
    /// writes only as `r = r + x` (`Add` with `a == r`). They add up across iterations.
    pub accumulators: Vec<Reg>,
    /// Fd slots the body opens into (closed at the end of each iteration).
    pub fd_slots: Vec<FdSlot>,
    /// Jumps in the body (their loop counters restart with each iteration).
    pub jumps: Vec<usize>,
    /// Whether the body makes calls with `Effect::Write`.
    pub writes: bool,
    /// Whether the iterations may run at once: the body (nested maps included) changes no
    /// file ([`cosy_model::may_write`]), moves the position only of descriptors the iteration opened,
    /// closes only those, and calls only built-in functions (a user function may keep state
    /// between calls). The one rule for every executor ([`crate::interp::maps`]).
    pub concurrent: bool,
    /// The local buffers private to each iteration: used in the body (nested maps included)
    /// and used directly by no enclosing map's body (whose copy nested iterations share). Each
    /// iteration starts with them zeroed (docs/semantics.md).
    pub zero_bufs: Vec<BufId>,
}

/// The executor's plan of a compound.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The maps, in order of their `MapBegin`.
    maps: Vec<MapInfo>,
    enclosing: Vec<Option<usize>>,
    /// Per operation: the index of a jump among the jumps (for loop counters).
    jump_index: Vec<u32>,
    jumps: usize,
}

impl Plan {
    /// Checks `c` against what the executor relies on and computes the map facts. The error
    /// says which operation is malformed.
    pub fn new(c: &Compound, policy: &Policy, funcs: &Functions) -> Result<Plan, String> {
        let mut allowed = [false; Sys::COUNT];
        for call in &policy.allowed {
            if let Some(x) = allowed.get_mut(call.index()) {
                *x = true;
            }
        }
        let ck = Check { c, policy, allowed };
        ck.declarations()?;
        let enclosing = ck.nesting()?;
        for (i, op) in c.ops.iter().enumerate() {
            ck.op(i, op, funcs, &enclosing).map_err(|m| {
                format!(
                    "op {i}: {m} (the compound is malformed; the verifier should have rejected it)"
                )
            })?;
        }
        let defined = defined_before(c);
        let mut maps = Vec::new();
        for (i, op) in c.ops.iter().enumerate() {
            if let Op::MapBegin { end, .. } = op {
                maps.push(map_info(c, i, *end as usize, &defined[i]));
            }
        }
        zero_bufs(c, &enclosing, &mut maps);
        let mut jumps = 0;
        let jump_index = c
            .ops
            .iter()
            .map(|op| {
                if matches!(op, Op::Jump { .. }) {
                    jumps += 1;
                    (jumps - 1) as u32
                } else {
                    u32::MAX
                }
            })
            .collect();
        Ok(Plan {
            maps,
            enclosing,
            jump_index,
            jumps,
        })
    }

    /// The facts of the map beginning at `begin`.
    pub fn map(&self, begin: usize) -> Option<&MapInfo> {
        self.maps
            .binary_search_by_key(&begin, |m| m.begin)
            .ok()
            .and_then(|i| self.maps.get(i))
    }

    /// Every map, in order of their `MapBegin`.
    pub fn maps(&self) -> impl Iterator<Item = &MapInfo> {
        self.maps.iter()
    }

    /// The index of jump `op` among the compound's jumps (`None` for other operations).
    pub fn jump_index(&self, op: usize) -> Option<usize> {
        self.jump_index
            .get(op)
            .copied()
            .filter(|&j| j != u32::MAX)
            .map(|j| j as usize)
    }

    /// Number of jumps.
    pub fn jumps(&self) -> usize {
        self.jumps
    }

    /// The innermost map whose body (`begin+1 ..= end`) holds operation `op`.
    pub fn enclosing(&self, op: usize) -> Option<usize> {
        self.enclosing.get(op).copied().flatten()
    }
}

/// Fills [`MapInfo::zero_bufs`] of every map.
fn zero_bufs(c: &Compound, enclosing: &[Option<usize>], maps: &mut [MapInfo]) {
    let local = |b: &BufId| c.buffers.get(b.index()).is_some_and(|x| x.local);
    // Local buffers each map's body uses directly (not inside a nested map's body).
    let mut direct: Vec<Vec<BufId>> = vec![Vec::new(); c.ops.len()];
    for (i, op) in c.ops.iter().enumerate() {
        if let Some(m) = enclosing.get(i).copied().flatten() {
            direct[m].extend(op.buffers().into_iter().filter(local));
        }
    }
    for info in maps.iter_mut() {
        let m = info.begin;
        let mut used: Vec<BufId> = c.ops[info.begin + 1..info.end]
            .iter()
            .flat_map(Op::buffers)
            .filter(local)
            .collect();
        used.sort();
        used.dedup();
        let mut up = enclosing.get(m).copied().flatten();
        while let Some(a) = up {
            used.retain(|b| !direct[a].contains(b));
            up = enclosing.get(a).copied().flatten();
        }
        info.zero_bufs = used;
    }
}

/// The register `op` accumulates into, if it is `r = r + x` (`Add` with `a == r`).
fn accumulation(op: &Op) -> Option<Reg> {
    match op {
        Op::Arith {
            dst,
            op: BinOp::Add,
            a: Value::Reg(r),
            ..
        } if r == dst => Some(*dst),
        _ => None,
    }
}

/// The operations control can go to from `i` (`ops.len()` is left out: the end), as an array
/// and how many of it are used.
fn successors(c: &Compound, i: usize) -> ([usize; 2], usize) {
    let next = i + 1;
    let (xs, k) = match &c.ops[i] {
        Op::Jump {
            cond: None, target, ..
        } => ([*target as usize, 0], 1),
        Op::Jump {
            cond: Some(_),
            target,
            ..
        } => ([next, *target as usize], 2),
        // The body, or past the map when it has no items.
        Op::MapBegin { end, .. } => ([next, *end as usize + 1], 2),
        // The next iteration, or past the map.
        Op::MapEnd { begin } => ([*begin as usize + 1, next], 2),
        _ => ([next, 0], 1),
    };
    let mut out = [0; 2];
    let mut n = 0;
    for &j in &xs[..k] {
        if j < c.ops.len() {
            out[n] = j;
            n += 1;
        }
    }
    (out, n)
}

/// For each `MapBegin`, the registers that may hold a value when it starts: integer inputs
/// and registers written by an operation on some path from the start to the `MapBegin`.
fn defined_before(c: &Compound) -> Vec<Vec<bool>> {
    let n = c.ops.len();
    if !c.ops.iter().any(|o| matches!(o, Op::MapBegin { .. })) {
        return vec![Vec::new(); n];
    }
    let mut preds = vec![Vec::new(); n];
    let mut reachable = vec![false; n];
    let mut stack = Vec::new();
    if n > 0 {
        reachable[0] = true;
        stack.push(0);
    }
    while let Some(i) = stack.pop() {
        let (succ, k) = successors(c, i);
        for &j in &succ[..k] {
            if !reachable[j] {
                reachable[j] = true;
                stack.push(j);
            }
        }
    }
    for i in 0..n {
        let (succ, k) = successors(c, i);
        for &j in &succ[..k] {
            preds[j].push(i);
        }
    }
    let mut inputs = vec![false; c.regs.len()];
    for input in &c.inputs {
        if let cosy_model::InputKind::Int { reg, .. } = input.kind
            && let Some(x) = inputs.get_mut(reg.index())
        {
            *x = true;
        }
    }
    let mut out = vec![Vec::new(); n];
    for (m, op) in c.ops.iter().enumerate() {
        if !matches!(op, Op::MapBegin { .. }) {
            continue;
        }
        let mut defined = inputs.clone();
        let mut seen = vec![false; n];
        let mut stack: Vec<usize> = preds[m].clone();
        while let Some(k) = stack.pop() {
            if seen[k] || !reachable[k] {
                continue;
            }
            seen[k] = true;
            for r in c.ops[k].writes() {
                if let Some(x) = defined.get_mut(r.index()) {
                    *x = true;
                }
            }
            stack.extend(preds[k].iter().copied());
        }
        out[m] = defined;
    }
    out
}

fn map_info(c: &Compound, begin: usize, end: usize, defined: &[bool]) -> MapInfo {
    let body = c.ops.get(begin + 1..end).unwrap_or(&[]);
    let mut plain: Vec<Reg> = Vec::new();
    let mut acc: Vec<Reg> = Vec::new();
    let mut fd_slots: Vec<FdSlot> = Vec::new();
    let mut jumps = Vec::new();
    let mut writes = false;
    for (k, op) in body.iter().enumerate() {
        let acc_reg = accumulation(op);
        for r in op.writes() {
            let before = defined.get(r.index()).copied().unwrap_or(false);
            if Some(r) == acc_reg && before {
                acc.push(r);
            } else {
                plain.push(r);
            }
        }
        match op {
            Op::Sys { call, args, ret } => {
                if call.spec().effect == cosy_model::Effect::Write {
                    writes = true;
                }
                if let Ret::Fd(s) = ret {
                    fd_slots.push(*s);
                }
                for (a, spec) in args.iter().zip(call.spec().args) {
                    if let (ArgKind::NewFd, Arg::Fd(FdRef::Slot(s))) = (spec.kind, a) {
                        fd_slots.push(*s);
                    }
                }
            }
            Op::Jump { .. } => jumps.push(begin + 1 + k),
            _ => {}
        }
    }
    plain.sort();
    plain.dedup();
    acc.sort();
    acc.dedup();
    acc.retain(|r| !plain.contains(r));
    fd_slots.sort();
    fd_slots.dedup();
    let own = |a: Option<&Arg>| matches!(a, Some(Arg::Fd(FdRef::Slot(s))) if fd_slots.contains(s));
    let concurrent = body.iter().all(|op| match op {
        Op::Sys { call, args, .. } => {
            !cosy_model::may_write(*call, args)
                && !((call.spec().position || *call == Sys::Close) && !own(args.first()))
        }
        Op::Call { func, .. } => cosy_model::BUILTINS.contains(&func.as_str()),
        _ => true,
    });
    MapInfo {
        begin,
        end,
        locals: plain,
        accumulators: acc,
        fd_slots,
        jumps,
        writes,
        concurrent,
        zero_bufs: Vec::new(),
    }
}

struct Check<'a> {
    c: &'a Compound,
    policy: &'a Policy,
    /// The calls the policy allows, by code.
    allowed: [bool; Sys::COUNT],
}

type Res = Result<(), String>;

impl Check<'_> {
    fn reg(&self, r: Reg) -> Res {
        if r.index() < self.c.regs.len() {
            Ok(())
        } else {
            Err(format!("register {} does not exist", r.0))
        }
    }

    fn value(&self, v: &Value) -> Res {
        match v {
            Value::Imm(_) => Ok(()),
            Value::Reg(r) => self.reg(*r),
        }
    }

    fn slot(&self, s: FdSlot) -> Res {
        if s.index() < self.c.fds.len() {
            Ok(())
        } else {
            Err(format!("fd slot {} does not exist", s.0))
        }
    }

    fn std(&self, n: u8) -> Res {
        if n > 2 {
            return Err(format!("standard stream {n} does not exist"));
        }
        if !self.policy.std_streams {
            return Err("the policy forbids the standard streams".into());
        }
        Ok(())
    }

    fn range(&self, r: &BufRange) -> Res {
        if r.buf.index() >= self.c.buffers.len() {
            return Err(format!("buffer {} does not exist", r.buf.0));
        }
        self.value(&r.start)?;
        if let Some(e) = &r.end {
            self.value(e)?;
        }
        Ok(())
    }

    fn data_path(&self, d: cosy_model::DataId) -> Res {
        match self.c.data.get(d.index()) {
            None => Err(format!("data constant {} does not exist", d.0)),
            Some(bytes) if bytes.contains(&0) => Err(format!(
                "data constant {} is used as a path but holds a NUL byte",
                d.0
            )),
            Some(_) => Ok(()),
        }
    }

    fn path(&self, p: &PathRef) -> Res {
        match p {
            PathRef::Data(d) => self.data_path(*d),
            PathRef::Var(v) if v.index() < self.c.paths.len() => Ok(()),
            PathRef::Var(v) => Err(format!("path variable {} does not exist", v.0)),
        }
    }

    fn declarations(&self) -> Res {
        for input in &self.c.inputs {
            match &input.kind {
                cosy_model::InputKind::Path(d) => self.data_path(*d),
                cosy_model::InputKind::Int { reg, .. } => self.reg(*reg),
            }
            .map_err(|m| format!("input `{}`: {m}", input.name))?;
        }
        for o in &self.c.outputs {
            self.reg(o.reg)
                .map_err(|m| format!("output `{}`: {m}", o.name))?;
        }
        if self.c.fds.len() as u64 > u64::from(self.policy.open_fds) {
            return Err(format!(
                "the compound has {} fd slots, more than the policy's {} open fds",
                self.c.fds.len(),
                self.policy.open_fds
            ));
        }
        Ok(())
    }

    /// Checks that maps nest and returns, for each op, its innermost enclosing map.
    fn nesting(&self) -> Result<Vec<Option<usize>>, String> {
        let n = self.c.ops.len();
        let mut stack: Vec<(usize, usize)> = Vec::new();
        let mut enclosing = vec![None; n];
        for (i, op) in self.c.ops.iter().enumerate() {
            enclosing[i] = stack.last().map(|&(b, _)| b);
            match op {
                Op::MapBegin { end, .. } => {
                    let end = *end as usize;
                    let matches = matches!(self.c.ops.get(end), Some(Op::MapEnd { begin }) if *begin as usize == i);
                    let nested = stack.last().is_none_or(|&(_, outer)| end < outer);
                    if end <= i || !matches || !nested {
                        return Err(format!("op {i}: map end {end} does not match"));
                    }
                    stack.push((i, end));
                }
                Op::MapEnd { begin } => match stack.pop() {
                    Some((b, e)) if b == *begin as usize && e == i => {}
                    _ => return Err(format!("op {i}: map end without its begin")),
                },
                _ => {}
            }
        }
        if let Some((b, _)) = stack.last() {
            return Err(format!("op {b}: map without an end"));
        }
        Ok(enclosing)
    }

    fn op(&self, i: usize, op: &Op, funcs: &Functions, enclosing: &[Option<usize>]) -> Res {
        match op {
            Op::Sys { call, args, ret } => self.sys(*call, args, ret),
            Op::Arith { dst, a, b, .. } => {
                self.reg(*dst)?;
                self.value(a)?;
                self.value(b)
            }
            Op::Mov { dst, src } => {
                self.reg(*dst)?;
                self.value(src)
            }
            Op::Load { dst, buf, off, .. } => {
                self.reg(*dst)?;
                self.range(&BufRange::whole(*buf))?;
                self.value(off)
            }
            Op::Store { buf, off, src, .. } => {
                self.range(&BufRange::whole(*buf))?;
                self.value(off)?;
                self.value(src)
            }
            Op::Jump {
                cond,
                target,
                bound,
            } => {
                if let Some(c) = cond {
                    self.value(&c.a)?;
                    self.value(&c.b)?;
                }
                let t = *target as usize;
                let n = self.c.ops.len();
                if t > n {
                    return Err(format!("jump target {t} is past the end"));
                }
                if t <= i && bound.is_none() {
                    return Err("backward jump without a bound".into());
                }
                if t < n && enclosing[t] != enclosing[i] {
                    return Err(format!("jump to {t} crosses a map boundary"));
                }
                Ok(())
            }
            Op::Call { dst, func, args } => {
                if let Some(d) = dst {
                    self.reg(*d)?;
                }
                let builtin = cosy_model::BUILTINS.contains(&func.as_str());
                if !builtin && !self.policy.functions.contains(func) {
                    return Err(format!("function `{func}` is not allowed by the policy"));
                }
                if !funcs.contains(func) {
                    return Err(format!("function `{func}` is not registered"));
                }
                for a in args {
                    match a {
                        Arg::Value(v) => self.value(v)?,
                        Arg::Fd(FdRef::Slot(s)) => self.slot(*s)?,
                        Arg::Fd(FdRef::Std(n)) => self.std(*n)?,
                        Arg::Fd(FdRef::Cwd) => {}
                        Arg::Path(p) => match p {
                            PathRef::Data(d) if d.index() < self.c.data.len() => {}
                            PathRef::Data(d) => {
                                return Err(format!("data constant {} does not exist", d.0));
                            }
                            PathRef::Var(_) => self.path(p)?,
                        },
                        Arg::Buf(r) => self.range(r)?,
                    }
                }
                Ok(())
            }
            Op::MapBegin { source, .. } => match source {
                MapSource::Paths { list, var } => {
                    for d in list {
                        self.data_path(*d)?;
                    }
                    self.path(&PathRef::Var(*var))
                }
                MapSource::Offsets { var, .. } => self.reg(*var),
                MapSource::Range {
                    start,
                    end,
                    step,
                    var,
                } => {
                    self.value(start)?;
                    self.value(end)?;
                    self.value(step)?;
                    self.reg(*var)
                }
                MapSource::Dirents {
                    buf,
                    name,
                    kind,
                    ino,
                } => {
                    self.range(buf)?;
                    self.path(&PathRef::Var(*name))?;
                    self.reg(*kind)?;
                    self.reg(*ino)
                }
            },
            Op::MapEnd { .. } => Ok(()),
        }
    }

    fn sys(&self, call: Sys, args: &[Arg], ret: &Ret) -> Res {
        let spec = call.spec();
        if !self.allowed.get(call.index()).copied().unwrap_or(false) {
            return Err(format!("{} is not allowed by the policy", spec.name));
        }
        if args.len() != spec.args.len() {
            return Err(format!(
                "{} takes {} operands, not {}",
                spec.name,
                spec.args.len(),
                args.len()
            ));
        }
        for (a, s) in args.iter().zip(spec.args) {
            let ok = match (s.kind, a) {
                (ArgKind::Fd, Arg::Fd(FdRef::Slot(x))) => self.slot(*x),
                (ArgKind::Fd, Arg::Fd(FdRef::Std(n))) => self.std(*n),
                // Never a standard stream: a directory on stdin would escape the root.
                (ArgKind::DirFd, Arg::Fd(FdRef::Cwd)) => Ok(()),
                (ArgKind::DirFd, Arg::Fd(FdRef::Slot(x))) => self.slot(*x),
                (ArgKind::NewFd, Arg::Fd(FdRef::Slot(x))) => self.slot(*x),
                (ArgKind::Path | ArgKind::Str, Arg::Path(p)) => self.path(p),
                (ArgKind::BufIn | ArgKind::BufOut, Arg::Buf(r)) => self.range(r),
                (ArgKind::Int | ArgKind::Flags(_), Arg::Value(v)) => self.value(v),
                _ => Err(format!(
                    "operand `{}` of {} must be {:?}, not {:?}",
                    s.name, spec.name, s.kind, a
                )),
            };
            ok?;
        }
        if call == Sys::Close && matches!(args.first(), Some(Arg::Fd(FdRef::Std(_)))) {
            return Err("close of a standard stream (they belong to the host process)".into());
        }
        let new: Vec<FdSlot> = args
            .iter()
            .zip(spec.args)
            .filter_map(|(a, s)| match (s.kind, a) {
                (ArgKind::NewFd, Arg::Fd(FdRef::Slot(x))) => Some(*x),
                _ => None,
            })
            .collect();
        if new.iter().enumerate().any(|(k, s)| new[..k].contains(s)) {
            return Err(format!("{} fills one fd slot twice", spec.name));
        }
        match (spec.ret, ret) {
            (RetKind::Fd, Ret::Fd(s)) => self.slot(*s),
            (RetKind::Value, Ret::Reg(r)) => self.reg(*r),
            (RetKind::Value, Ret::None) => Ok(()),
            (RetKind::Fd, _) => Err(format!("{} must return into an fd slot", spec.name)),
            (RetKind::Value, Ret::Fd(_)) => {
                Err(format!("{} returns a value, not a descriptor", spec.name))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cosy_model::{Builder, builder::cond};

    fn plan(c: &Compound) -> Result<Plan, String> {
        Plan::new(c, &Policy::trusted(), &Functions::new())
    }

    #[test]
    fn map_facts() {
        let mut b = Builder::new();
        let total = b.value("total", 0);
        let buf = b.local_buffer("buf", 64);
        b.map_paths(["a", "b"], |b, p| {
            let fd = b.openat(FdRef::Cwd, p, 0, 0);
            let n = b.read(fd, buf);
            b.accumulate(total, n);
            b.do_while(3, |_| cond(n, BinOp::Eq, 1));
            b.close(fd);
        });
        let c = b.finish();
        let p = plan(&c).unwrap();
        let m = p.maps().next().unwrap();
        assert_eq!(m.accumulators, vec![total]);
        assert!(m.locals.contains(&c.reg("n").unwrap()));
        assert!(!m.locals.contains(&total));
        assert_eq!(m.fd_slots.len(), 1);
        assert_eq!(m.jumps.len(), 1);
        assert!(!m.writes);
        assert_eq!(m.zero_bufs, vec![buf]);
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
        let c = b.finish();
        let p = plan(&c).unwrap();
        let maps: Vec<_> = p.maps().collect();
        assert_eq!(maps[0].zero_bufs, vec![outer_buf, inner_buf]);
        assert_eq!(maps[1].zero_bufs, vec![inner_buf]);
    }

    #[test]
    fn malformed_compounds_are_refused() {
        let mut b = Builder::new();
        b.push(Op::Jump {
            cond: None,
            target: 0,
            bound: None,
        });
        assert!(plan(&b.finish()).unwrap_err().contains("without a bound"));

        let mut b = Builder::new();
        b.push(Op::Sys {
            call: Sys::Read,
            args: vec![Arg::Fd(FdRef::Std(7)), Arg::Value(Value::Imm(0))],
            ret: Ret::None,
        });
        assert!(plan(&b.finish()).is_err());

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
        assert!(plan(&b.finish()).unwrap_err().contains("fd slot"));

        let mut b = Builder::new();
        b.close(FdRef::Std(1));
        assert!(plan(&b.finish()).unwrap_err().contains("standard stream"));

        let mut b = Builder::new();
        b.push(Op::MapEnd { begin: 0 });
        assert!(plan(&b.finish()).is_err());

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
        assert!(plan(&b.finish()).unwrap_err().contains("map boundary"));
    }
}
