//! The policy's limits on what a run writes (`written_bytes`, `output_bytes`), and on the
//! descriptors (`open_fds`) and arena copies (`arena_bytes`) its concurrent map iterations
//! hold at once.
//!
//! Bytes written are counted by a rule on the operation table, not a list of calls: a call
//! *writes data* when its row changes files ([`Effect::Write`]), returns a count, names no path
//! or string (so not `fsetxattr`'s value or `utimensat`'s times, which are metadata) and has a
//! data operand — a range the kernel reads ([`ArgKind::BufIn`]: `write`, `pwrite`) or a length
//! operand (`len`, `count`: `copy_file_range`, `splice`, `sendfile`). Its destination is its
//! descriptor operand named for output (`fd_out`, `out_fd`), else its first one; a destination
//! that is a standard stream counts against `output_bytes` too.
//!
//! A call is charged the length it asks for *before* it is issued and refused
//! ([`Error::Limit`]) if that could pass a limit; when its result is known (at once on
//! `direct`, when it retires on the ring) the charge is reconciled to the bytes it wrote. So a
//! queued call counts in full while in flight, and every executor refuses the same call.

use cosy_model::{Arg, ArgKind, Compound, Effect, FdRef, Op, Policy, RetKind, Sys};

use crate::outcome::{Error, Limit};
use crate::plan::MapInfo;
use crate::sys::{Resolved, ResolvedArgs};

/// What a call was charged before it was issued.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Charge {
    asked: u64,
    output: bool,
}

/// The limits of one run (or session) and what has been counted against them.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    written: u64,
    output: u64,
    max_written: u64,
    max_output: u64,
    /// The policy's `open_fds`.
    pub open_fds: u32,
    /// The policy's `arena_bytes`.
    pub arena_bytes: u64,
}

impl Default for Limits {
    /// No limit.
    fn default() -> Self {
        Limits {
            written: 0,
            output: 0,
            max_written: u64::MAX,
            max_output: u64::MAX,
            open_fds: u32::MAX,
            arena_bytes: u64::MAX,
        }
    }
}

/// The bytes a data call (see the module documentation) asks to write, and whether its
/// destination is a standard stream; `None` for every other call.
fn asked(call: Sys, args: &[Arg], rargs: &ResolvedArgs) -> Option<(u64, bool)> {
    let spec = call.spec();
    if spec.effect != Effect::Write
        || spec.ret != RetKind::Value
        || spec
            .args
            .iter()
            .any(|a| matches!(a.kind, ArgKind::Path | ArgKind::Str))
    {
        return None;
    }
    let mut asked = None;
    for (a, r) in spec.args.iter().zip(&rargs.items) {
        match (a.kind, r) {
            (ArgKind::BufIn, Resolved::Buf(s)) => asked = Some(s.len() as u64),
            // A negative length is what the kernel sees as a huge size_t.
            (ArgKind::Int, Resolved::Int(n)) if matches!(a.name, "len" | "count") => {
                asked = Some(*n as u64);
            }
            _ => {}
        }
    }
    let fds = || {
        spec.args
            .iter()
            .enumerate()
            .filter(|(_, a)| a.kind == ArgKind::Fd)
    };
    let dest = fds()
        .find(|(_, a)| a.name.contains("out"))
        .or_else(|| fds().next())
        .map(|(i, _)| i);
    let output = dest.is_some_and(|i| matches!(args.get(i), Some(Arg::Fd(FdRef::Std(_)))));
    asked.map(|n| (n, output))
}

impl Limits {
    /// The limits of `policy`, nothing counted yet.
    pub fn of(policy: &Policy) -> Self {
        Limits {
            max_written: policy.written_bytes,
            max_output: policy.output_bytes,
            open_fds: policy.open_fds,
            arena_bytes: policy.arena_bytes,
            ..Limits::default()
        }
    }

    /// Charges `call` (operation `op`, operands `args` resolved as `rargs`) what it asks to
    /// write, or refuses it.
    pub fn charge(
        &mut self,
        op: usize,
        call: Sys,
        args: &[Arg],
        rargs: &ResolvedArgs,
    ) -> Result<Charge, Error> {
        let Some((asked, output)) = asked(call, args, rargs) else {
            return Ok(Charge::default());
        };
        let refuse = |limit, value, used| Error::Limit {
            op: op as u32,
            call,
            limit,
            value,
            used,
            asked,
        };
        if self.written.saturating_add(asked) > self.max_written {
            return Err(refuse(Limit::WrittenBytes, self.max_written, self.written));
        }
        if output && self.output.saturating_add(asked) > self.max_output {
            return Err(refuse(Limit::OutputBytes, self.max_output, self.output));
        }
        self.written = self.written.saturating_add(asked);
        if output {
            self.output = self.output.saturating_add(asked);
        }
        Ok(Charge { asked, output })
    }

    /// Reconciles a charge with the call's result `r`: only the bytes it wrote stay counted.
    pub fn settle(&mut self, charge: Charge, r: i64) {
        let wrote = u64::try_from(r).unwrap_or(0).min(charge.asked);
        let back = charge.asked - wrote;
        self.written = self.written.saturating_sub(back);
        if charge.output {
            self.output = self.output.saturating_sub(back);
        }
    }

    /// How many threads may run a map, each with its own copy of an arena of `len` bytes,
    /// besides the run's own, within `arena_bytes`.
    pub fn map_threads(&self, len: usize) -> usize {
        let copies = self.arena_bytes / (len.max(1) as u64);
        usize::try_from(copies.saturating_sub(1)).unwrap_or(usize::MAX)
    }

    /// How many iterations of the map `info` may hold their descriptors at once within
    /// `open_fds`: one holds every slot of the compound at most (the plan checks that they fit
    /// the limit); each further one the slots its body opens into.
    pub fn map_lanes(&self, c: &Compound, info: &MapInfo) -> usize {
        let mut local: Vec<u16> = Vec::new();
        for op in c.ops.get(info.begin + 1..info.end).unwrap_or(&[]) {
            let Op::Sys { call, args, ret } = op else {
                continue;
            };
            if let cosy_model::Ret::Fd(s) = ret {
                local.push(s.0);
            }
            for (a, spec) in args.iter().zip(call.spec().args) {
                if let (ArgKind::NewFd, Arg::Fd(FdRef::Slot(s))) = (spec.kind, a) {
                    local.push(s.0);
                }
            }
        }
        local.sort_unstable();
        local.dedup();
        if local.is_empty() {
            return usize::MAX;
        }
        let spare = u64::from(self.open_fds).saturating_sub(c.fds.len() as u64);
        usize::try_from(1 + spare / local.len() as u64).unwrap_or(usize::MAX)
    }
}
