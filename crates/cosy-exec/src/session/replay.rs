//! Replaying a compound one call at a time: what a program that sends its calls one by one
//! does, for comparing a session with the executors.
//!
//! The compound runs first on the direct executor (one thread), through an issuer that records
//! every call it makes with its operands as issued — values, descriptors, paths, and the bytes
//! of the ranges the kernel reads. The calls are then sent, in that order, through a session on
//! the backend asked for: descriptors become the handles of the opens that made them, ranges
//! the same ranges of session buffers of the compound's buffers' sizes (their bytes set to the
//! recorded ones wherever the interpreter, not a call, changed them: stores, functions,
//! zeroing between iterations). Each call's result must be the recorded one.

use cosy_model::flags::{Mode, OFlags};
use std::collections::HashMap;

use super::*;
use crate::arena::Span;
use crate::direct::{DirectExecutor, DirectIssuer};
use crate::interp::{At, Issued, Issuer};
use crate::outcome::Recorder;
use crate::sys::{Resolved, ResolvedArgs};

/// A call the direct executor made.
#[derive(Clone)]
struct Made {
    call: Sys,
    args: Vec<Resolved>,
    /// The bytes of the ranges the kernel reads (by operand index).
    inputs: Vec<(usize, Vec<u8>)>,
    /// What it wrote of the arena: the range, and its bytes if the call succeeded.
    output: Option<(Span, Option<Vec<u8>>)>,
    result: i64,
}

/// The direct issuer, recording every call.
struct Recording {
    inner: DirectIssuer,
    made: Vec<Made>,
}

impl Issuer for Recording {
    fn issue(&mut self, at: At, call: Sys, args: &mut ResolvedArgs, rec: &mut Recorder) -> Issued {
        let inputs = call
            .spec()
            .args
            .iter()
            .zip(&args.items)
            .enumerate()
            .filter_map(|(k, (spec, r))| match (spec.kind, r) {
                (ArgKind::BufIn, Resolved::Buf(s)) => {
                    Some((k, self.inner.bytes(*s).unwrap_or(&[]).to_vec()))
                }
                _ => None,
            })
            .collect();
        let issued = self.inner.issue(at, call, args, rec);
        let result = match issued {
            Issued::Ready(r) => r,
            // The direct issuer is always ready.
            _ => -i64::from(libc::EIO),
        };
        let output = crate::interp::written(call, args, result).map(|s| {
            // A failed call may have written some of its range, or none: unknown bytes.
            let bytes = (result >= 0).then(|| self.inner.bytes(s).unwrap_or(&[]).to_vec());
            (s, bytes)
        });
        self.made.push(Made {
            call,
            args: args.items.clone(),
            inputs,
            output,
            result,
        });
        issued
    }

    fn close(&mut self, at: At, fd: i32, rec: &mut Recorder) -> Issued {
        let issued = self.inner.close(at, fd, rec);
        let result = match issued {
            Issued::Ready(r) => r,
            _ => -i64::from(libc::EIO),
        };
        self.made.push(Made {
            call: Sys::Close,
            args: vec![Resolved::Fd(fd)],
            inputs: Vec::new(),
            output: None,
            result,
        });
        issued
    }

    fn bytes(&self, span: Span) -> Option<&[u8]> {
        self.inner.bytes(span)
    }

    fn bytes_mut(&mut self, span: Span) -> Option<&mut [u8]> {
        self.inner.bytes_mut(span)
    }

    fn whole_mut(&mut self) -> Option<&mut [u8]> {
        self.inner.whole_mut()
    }
}

/// Why a replay did not agree, or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The compound makes a call a session cannot send (pipe2's new descriptors), or did not
    /// run on the direct executor.
    #[error("replay: {0}")]
    Unsupported(String),
    /// The session refused to be set up or a send.
    #[error("replay: {0}")]
    Session(#[from] SessionError),
    /// Call `index` (of the recorded ones) gave another result through the session.
    #[error("replay: call {index} ({}) gave {got} through the session, {want} directly", call.name())]
    Differs {
        /// Its index among the calls made.
        index: usize,
        /// The call.
        call: Sys,
        /// Its result on the direct executor.
        want: i64,
        /// Its result through the session (`-errno` for a failure).
        got: i64,
    },
}

/// The calls a run of a compound made on the direct executor, ready to be replayed.
#[derive(Debug)]
pub struct Recorded {
    made: Vec<Made>,
    /// Each buffer's range of the arena, and its size.
    buffers: Vec<(Span, usize)>,
    arena: usize,
    outcome: Outcome,
}

impl std::fmt::Debug for Made {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}(..) = {}", self.call.name(), self.result)
    }
}

/// Runs `v` on the direct executor (one thread), recording every call it makes.
pub fn record(v: &Verified) -> Result<Recorded, ReplayError> {
    let opts = crate::RunOptions {
        backend: Backend::Direct,
        ..crate::RunOptions::default()
    };
    let (outcome, rec) = DirectExecutor::run_through(v, &opts, 1, |inner| Recording {
        inner,
        made: Vec::new(),
    });
    let Some(rec) = rec else {
        return Err(ReplayError::Unsupported(format!(
            "the compound did not run: {:?}",
            outcome.error
        )));
    };
    if rec
        .made
        .iter()
        .any(|m| m.args.iter().any(|a| matches!(a, Resolved::NewFd(_))))
    {
        return Err(ReplayError::Unsupported(
            "pipe2: a session has no new-descriptor operands".into(),
        ));
    }
    let c = v.compound();
    let layout = crate::arena::Layout::new(&c.buffers, 1, v.policy().arena_bytes)
        .map_err(|e| ReplayError::Unsupported(e.to_string()))?;
    let mut buffers = Vec::with_capacity(c.buffers.len());
    for (i, b) in c.buffers.iter().enumerate() {
        let whole = layout
            .whole(cosy_model::BufId(i as u16), 0)
            .map_err(|_| ReplayError::Unsupported("a buffer outside the layout".into()))?;
        buffers.push((whole, b.size as usize));
    }
    Ok(Recorded {
        made: rec.made,
        buffers,
        arena: layout.len(),
        outcome,
    })
}

impl Recorded {
    /// The calls made.
    pub fn calls(&self) -> usize {
        self.made.len()
    }

    /// The outcome of the recorded run.
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// Sends the recorded calls one by one through a session on `backend` under `policy`
    /// (see the module documentation); the number of calls compared. Started from the state
    /// the recorded run started from (the same files under `policy`'s root), it leaves the
    /// files that run left.
    pub fn replay(&self, backend: Backend, policy: &Policy) -> Result<usize, ReplayError> {
        replay_on(self, backend, policy)
    }
}

fn replay_on(rec: &Recorded, backend: Backend, policy: &Policy) -> Result<usize, ReplayError> {
    let mut s = Session::new(backend, policy)?;
    let mut bufs = Vec::with_capacity(rec.buffers.len());
    for (whole, size) in &rec.buffers {
        bufs.push((*whole, s.buffer(*size)?));
    }
    let plain = needs_plain(&rec.made);
    // What the session's buffers hold, as far as calls wrote them (arena offsets; `None`:
    // unknown, what a failed call may have written).
    let mut shadow: Vec<Option<u8>> = vec![Some(0); rec.arena];
    let mut handles: HashMap<i32, FdHandle> = HashMap::new();
    let mut empty: Option<FdHandle> = None;
    let mut sent: Vec<(AnyHandle, bool)> = Vec::with_capacity(rec.made.len());
    for (i, m) in rec.made.iter().enumerate() {
        // Ranges whose bytes the interpreter changed since the calls wrote them: set them.
        for (k, bytes) in &m.inputs {
            let Some(Resolved::Buf(span)) = m.args.get(*k) else {
                continue;
            };
            let known = shadow[span.range()]
                .iter()
                .zip(bytes)
                .all(|(k, b)| *k == Some(*b));
            if !known {
                let (buf, off) = locate(&bufs, *span)?;
                let mem = s.bytes_mut(buf)?;
                mem[off..off + span.len()].copy_from_slice(bytes);
                for (k, b) in shadow[span.range()].iter_mut().zip(bytes) {
                    *k = Some(*b);
                }
            }
        }
        let mut operands = Vec::with_capacity(m.args.len());
        for r in &m.args {
            operands.push(match r {
                Resolved::Int(x) => Operand::Int(Val::Imm(*x)),
                Resolved::Path(p) => Operand::Path(p.to_bytes().to_vec()),
                Resolved::Buf(span) => {
                    let (buf, off) = locate(&bufs, *span)?;
                    Operand::Buf(Buf {
                        buf,
                        start: off as i64,
                        end: Some(Val::Imm((off + span.len()) as i64)),
                    })
                }
                Resolved::Fd(fd) => Operand::Fd(match handles.get(fd) {
                    Some(h) => Fd::Handle(*h),
                    None if *fd == crate::sys::AT_FDCWD => Fd::Cwd,
                    None if (0..=2).contains(fd) => Fd::Std(*fd as u8),
                    // An empty slot: the handle of an open that failed is an empty descriptor.
                    None => Fd::Handle(match empty {
                        Some(h) => h,
                        None => {
                            let h = s.send(
                                Call::openat(Fd::Cwd, "", OFlags::RDONLY, Mode::empty()).plain(),
                            )?;
                            empty = Some(h);
                            h
                        }
                    }),
                }),
                Resolved::NewFd(_) => {
                    return Err(ReplayError::Unsupported("pipe2".into()));
                }
            });
        }
        let fd_result = m.call.spec().ret == RetKind::Fd;
        let h: AnyHandle = if fd_result {
            let mut open = Call::<FdHandle>::new(m.call, operands);
            open.plain = plain[i];
            let h = s.send(open)?;
            if let Ok(fd) = i32::try_from(m.result)
                && fd >= 0
            {
                handles.insert(fd, h);
            }
            h.into()
        } else {
            if m.call == Sys::Close
                && let Some(Resolved::Fd(fd)) = m.args.first()
            {
                handles.remove(fd);
            }
            s.send(Call::<ValueHandle>::new(m.call, operands))?.into()
        };
        sent.push((h, fd_result));
        match &m.output {
            Some((span, Some(bytes))) => {
                for (k, b) in shadow[span.range()].iter_mut().zip(bytes) {
                    *k = Some(*b);
                }
            }
            Some((span, None)) => shadow[span.range()].fill(None),
            None => {}
        }
    }
    s.barrier();
    for (index, (m, (h, fd_result))) in rec.made.iter().zip(&sent).enumerate() {
        let got = match s.get(*h) {
            Ok(v) => v,
            Err(e) => e.result.unwrap_or(i64::MIN),
        };
        let agree = if *fd_result {
            (got >= 0) == (m.result >= 0) && (got >= 0 || got == m.result)
        } else {
            got == m.result
        };
        if !agree {
            return Err(ReplayError::Differs {
                index,
                call: m.call,
                want: m.result,
                got,
            });
        }
    }
    Ok(sent.len())
}

/// The session buffer holding arena range `span`, and the offset of `span` in it.
fn locate(bufs: &[(Span, BufHandle)], span: Span) -> Result<(BufHandle, usize), ReplayError> {
    bufs.iter()
        .find(|(w, _)| w.offset() <= span.offset() && span.end() <= w.end())
        .map(|(w, b)| (*b, span.offset() - w.offset()))
        .ok_or_else(|| ReplayError::Unsupported("a range outside every buffer".into()))
}

/// For each call made, whether its descriptor (if it opens one) is used, before it is
/// closed, where only a descriptor of the process will do: such opens are sent plain.
fn needs_plain(made: &[Made]) -> Vec<bool> {
    let mut plain = vec![false; made.len()];
    let mut opened_by: HashMap<i32, usize> = HashMap::new();
    for (i, m) in made.iter().enumerate() {
        for (k, (spec, r)) in m.call.spec().args.iter().zip(&m.args).enumerate() {
            if let Resolved::Fd(fd) = r
                && let Some(&o) = opened_by.get(fd)
                && !(spec.kind == ArgKind::Fd && slot_capable(m.call, k))
            {
                plain[o] = true;
            }
        }
        if m.call == Sys::Close
            && let Some(Resolved::Fd(fd)) = m.args.first()
        {
            opened_by.remove(fd);
        }
        if m.call.spec().ret == RetKind::Fd
            && let Ok(fd) = i32::try_from(m.result)
            && fd >= 0
        {
            opened_by.insert(fd, i);
        }
    }
    plain
}
