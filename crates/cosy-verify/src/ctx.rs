//! The state of one verification: the compound, the policy, the problems found so far, and
//! how to name things in messages without trusting any index.

use std::collections::HashSet;

use cosy_model::{BufId, Buffer, Compound, FdSlot, PathVar, Policy, Reg, Value};

use crate::problem::{Problem, Rule};

pub(crate) struct Ctx<'a> {
    pub c: &'a Compound,
    pub policy: &'a Policy,
    problems: Vec<Problem>,
}

/// An operation index as reported (saturating: a compound cannot hold 2^32 operations anyway).
pub(crate) fn op_index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// A declared name for messages: escaped, so a hostile name cannot forge lines.
fn quoted(name: Option<&String>, index: usize) -> String {
    match name {
        Some(n) => format!("`{}`", n.escape_debug()),
        None => format!("#{index}"),
    }
}

impl<'a> Ctx<'a> {
    pub fn new(c: &'a Compound, policy: &'a Policy) -> Self {
        Ctx {
            c,
            policy,
            problems: Vec::new(),
        }
    }

    /// A problem in operation `op`.
    pub fn at(&mut self, op: usize, rule: Rule, message: impl Into<String>) {
        self.problems.push(Problem {
            op: Some(op_index(op)),
            line: None,
            rule,
            message: message.into(),
        });
    }

    /// A problem outside the operations (declarations, outputs, limits).
    pub fn global(&mut self, rule: Rule, message: impl Into<String>) {
        self.problems.push(Problem {
            op: None,
            line: None,
            rule,
            message: message.into(),
        });
    }

    /// The problems, declarations first then by operation, without repeats.
    pub fn finish(self) -> Vec<Problem> {
        let mut seen = HashSet::new();
        let mut out: Vec<Problem> = self
            .problems
            .into_iter()
            .filter(|p| seen.insert((p.op, p.rule, p.message.clone())))
            .collect();
        out.sort_by_key(|p| p.op.map_or(0, |o| u64::from(o) + 1));
        out
    }

    pub fn buffer(&self, b: BufId) -> Option<&'a Buffer> {
        self.c.buffers.get(b.index())
    }

    pub fn reg(&self, r: Reg) -> String {
        quoted(self.c.regs.get(r.index()), r.index())
    }

    pub fn fd(&self, s: FdSlot) -> String {
        quoted(self.c.fds.get(s.index()), s.index())
    }

    pub fn path_var(&self, v: PathVar) -> String {
        quoted(self.c.paths.get(v.index()), v.index())
    }

    pub fn buf(&self, b: BufId) -> String {
        quoted(self.buffer(b).map(|b| &b.name), b.index())
    }

    /// A value as the text format would print it (registers by name, unquoted).
    pub fn value(&self, v: &Value) -> String {
        match v {
            Value::Imm(i) => i.to_string(),
            Value::Reg(r) => match self.c.regs.get(r.index()) {
                Some(n) => n.escape_debug().to_string(),
                None => format!("#{}", r.index()),
            },
        }
    }
}

/// A standard stream's name in the text format.
pub(crate) fn std_name(n: u8) -> String {
    match n {
        0 => "stdin".into(),
        1 => "stdout".into(),
        2 => "stderr".into(),
        n => format!("standard stream {n}"),
    }
}
