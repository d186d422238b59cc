//! The handles of a session: values and descriptors of calls sent, buffers, and the operands
//! they make.

use super::*;

/// The handle of a call whose result is a value (a count, an offset, 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ValueHandle {
    pub(super) session: u64,
    pub(super) index: u32,
    pub(super) call: Sys,
}

/// The handle of a call whose result is a descriptor the session owns (an open): an operand
/// of later calls; closed by a [`Call::close`] or when the session ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FdHandle {
    pub(super) session: u64,
    pub(super) index: u32,
    pub(super) call: Sys,
}

/// A handle of either kind, as [`Session::get`] takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AnyHandle {
    pub(super) session: u64,
    pub(super) index: u32,
    pub(super) call: Sys,
}

impl From<ValueHandle> for AnyHandle {
    fn from(h: ValueHandle) -> Self {
        AnyHandle {
            session: h.session,
            index: h.index,
            call: h.call,
        }
    }
}

impl From<FdHandle> for AnyHandle {
    fn from(h: FdHandle) -> Self {
        AnyHandle {
            session: h.session,
            index: h.index,
            call: h.call,
        }
    }
}

impl ValueHandle {
    /// The call's index in its session (the order of sends, from 0).
    pub fn index(self) -> u32 {
        self.index
    }
}

impl FdHandle {
    /// The call's index in its session (the order of sends, from 0).
    pub fn index(self) -> u32 {
        self.index
    }
}

/// What a send returns: a [`ValueHandle`] or an [`FdHandle`].
pub trait Handle: Copy + private::Sealed {
    /// The result kind of the calls giving this handle.
    #[doc(hidden)]
    const RET: RetKind;
    #[doc(hidden)]
    fn make(session: u64, index: u32, call: Sys) -> Self;
}

mod private {
    pub trait Sealed {}
    impl Sealed for super::ValueHandle {}
    impl Sealed for super::FdHandle {}
}

impl Handle for ValueHandle {
    const RET: RetKind = RetKind::Value;
    fn make(session: u64, index: u32, call: Sys) -> Self {
        ValueHandle {
            session,
            index,
            call,
        }
    }
}

impl Handle for FdHandle {
    const RET: RetKind = RetKind::Fd;
    fn make(session: u64, index: u32, call: Sys) -> Self {
        FdHandle {
            session,
            index,
            call,
        }
    }
}

/// A descriptor operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fd {
    /// `AT_FDCWD` (the policy root under a root).
    Cwd,
    /// A standard stream: 0, 1 or 2 (if the policy allows them).
    Std(u8),
    /// A descriptor the session opened.
    Handle(FdHandle),
}

impl From<FdHandle> for Fd {
    fn from(h: FdHandle) -> Self {
        Fd::Handle(h)
    }
}

/// An integer operand: an immediate, or the result of an earlier call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Val {
    /// A value given now.
    Imm(i64),
    /// The result of a call sent before.
    Handle(ValueHandle),
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Imm(v)
    }
}

impl From<i32> for Val {
    fn from(v: i32) -> Self {
        Val::Imm(i64::from(v))
    }
}

impl From<ValueHandle> for Val {
    fn from(h: ValueHandle) -> Self {
        Val::Handle(h)
    }
}

/// A buffer of a session ([`Session::buffer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufHandle {
    pub(super) session: u64,
    pub(super) buf: BufId,
    pub(super) size: u32,
}

impl BufHandle {
    /// Its size in bytes.
    pub fn len(self) -> usize {
        self.size as usize
    }

    /// Whether it has no bytes.
    pub fn is_empty(self) -> bool {
        self.size == 0
    }

    /// Bytes `start..end` of it.
    pub fn range(self, start: i64, end: impl Into<Val>) -> Buf {
        Buf {
            buf: self,
            start,
            end: Some(end.into()),
        }
    }

    /// Its first `n` bytes (`n` may be the result of a read: what it read).
    pub fn prefix(self, n: impl Into<Val>) -> Buf {
        self.range(0, n)
    }
}

/// A range of a session's buffer, as an operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Buf {
    pub(super) buf: BufHandle,
    pub(super) start: i64,
    pub(super) end: Option<Val>,
}

impl From<BufHandle> for Buf {
    fn from(b: BufHandle) -> Self {
        Buf {
            buf: b,
            start: 0,
            end: None,
        }
    }
}
