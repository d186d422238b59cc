//! The binary format: compact, versioned, table-driven.
//!
//! ```text
//! file     = MAGIC version:u16-le mode:u8
//!            data     (count, (len, bytes)*)
//!            regs     (count, string*)
//!            fds      (count, string*)
//!            paths    (count, string*)
//!            buffers  (count, (string, size, local:u8)*)
//!            inputs   (count, (string, 0 data | 1 reg zigzag-default)*)
//!            ops      (count, op*)
//!            outputs  (count, (string, reg)*)
//! string   = len bytes                  (UTF-8)
//! op       = 0 code ret operand*         system call, one operand per row of the table
//!          | 1 code ret count arg*       system call not matching its row (tagged operands)
//!          | 2 binop dst value value     arithmetic
//!          | 3 dst value                 move
//!          | 4 width dst buf value       load
//!          | 5 width buf value value     store
//!          | 6 flags [binop value value] target [bound]   (flags: 1 = cond, 2 = bound)
//!          | 7 dst? string count arg*    call (dst? = 0 or 1 + register)
//!          | 8 end source                map begin
//!          | 9 begin                     map end
//! source   = 0 var count data* | 1 var count zigzag* | 2 var value value value
//!          | 3 pathvar reg reg range
//! ret      = 0 | 1 reg | 2 fdslot
//! value    = 0 zigzag | 1 reg
//! fd       = 0 (cwd) | 1 u8 (standard stream) | 2 + slot
//! path     = 2 * data | 2 * pathvar + 1
//! range    = buf value (0 | 1 value)
//! arg      = 0 value | 1 fd | 2 path | 3 range
//! ```
//!
//! Every number not marked otherwise is an unsigned LEB128 varint; signed integers are
//! zigzag-encoded varints. System calls are named by their code in the operation table
//! ([`cosy_model::SysSpec::code`]), operators by [`cosy_model::BinOp::code`], widths by their
//! position in [`cosy_model::Width::ALL`].
//!
//! `decode(&encode(&c)) == Ok(c)` for every compound whose indices are in range of its tables
//! (registers, fd slots, path variables, data, buffers; jump targets at most `ops.len()`; map
//! `end`/`begin` below `ops.len()`) and whose tables have at most 65536 entries. Anything else
//! is a [`DecodeError`], never a panic.

mod decode;
mod encode;

use cosy_model::{Arg, ArgKind, Ret, RetKind, Sys};

/// The first bytes of every binary compound. It starts with a NUL byte, which text never
/// contains, so [`crate::load`] tells the formats apart by it.
pub const MAGIC: &[u8] = b"\0COSY";

/// The version of the binary format [`encode`] writes and [`decode`] reads.
pub const VERSION: u16 = 1;

/// Bytes that are not a binary compound: where, and what was expected there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("byte {offset}: expected {expected}")]
pub struct DecodeError {
    /// Offset of the byte where decoding failed.
    pub offset: usize,
    /// What should have been there.
    pub expected: String,
}

/// Encodes a compound in the binary format.
///
/// ```
/// use cosy_format::binary;
/// let c = cosy_format::text::parse("x = 1\noutput x\n")?.compound;
/// let bytes = binary::encode(&c);
/// assert!(bytes.starts_with(binary::MAGIC));
/// assert_eq!(binary::decode(&bytes)?, c);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode(compound: &cosy_model::Compound) -> Vec<u8> {
    encode::encode(compound)
}

/// Decodes a compound from the binary format; any malformed input is a [`DecodeError`].
pub fn decode(bytes: &[u8]) -> Result<cosy_model::Compound, DecodeError> {
    decode::decode(bytes)
}

/// Whether a system call's operands and result have the kinds of its table row (such calls
/// are encoded compactly, without operand tags).
pub(crate) fn conforms(call: Sys, args: &[Arg], ret: Ret) -> bool {
    let spec = call.spec();
    let ret_ok = matches!(
        (ret, spec.ret),
        (Ret::None, _) | (Ret::Reg(_), RetKind::Value) | (Ret::Fd(_), RetKind::Fd)
    );
    ret_ok
        && args.len() == spec.args.len()
        && spec.args.iter().zip(args).all(|(s, a)| {
            matches!(
                (s.kind, a),
                (ArgKind::Fd | ArgKind::DirFd | ArgKind::NewFd, Arg::Fd(_))
                    | (ArgKind::Path | ArgKind::Str, Arg::Path(_))
                    | (ArgKind::BufIn | ArgKind::BufOut, Arg::Buf(_))
                    | (ArgKind::Int | ArgKind::Flags(_), Arg::Value(_))
            )
        })
}

/// Operation tags.
mod tag {
    pub const SYS: u8 = 0;
    pub const SYS_RAW: u8 = 1;
    pub const ARITH: u8 = 2;
    pub const MOV: u8 = 3;
    pub const LOAD: u8 = 4;
    pub const STORE: u8 = 5;
    pub const JUMP: u8 = 6;
    pub const CALL: u8 = 7;
    pub const MAP_BEGIN: u8 = 8;
    pub const MAP_END: u8 = 9;
}
