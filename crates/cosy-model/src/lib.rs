//! The compound model of cosy: pure data, no system calls.
//!
//! A [`Compound`] is a sealed program: named inputs, a data section (paths, byte strings), an
//! arena of fixed-size buffers, value registers, fd slots, and a list of operations — system
//! calls with typed operands ([`Op::Sys`], rows of the [operation table](ops)), arithmetic and
//! comparison, bounded jumps, calls of user functions, and maps (loops whose iterations are
//! independent). Operands never hold pointers: a buffer operand is a range of an arena buffer,
//! a descriptor is a slot, so a verified compound cannot name memory outside its arena.
//!
//! The [`Builder`] writes compounds from Rust; `cosy-format` reads and writes them as text and
//! binary; `cosy-verify` checks them against a [`Policy`]; `cosy-exec` runs them.
//!
//! ```
//! use cosy_model::{Builder, FdRef, flags::{Mode, OFlags}};
//! // The thesis's example: open; do { n = read(fd, buf, len) } while (n == len); close.
//! let mut c = Builder::new();
//! let name = c.input_path("name", "/etc/passwd");
//! let buf = c.buffer("buf", 4096);
//! let fd = c.openat(FdRef::Cwd, name, OFlags::RDONLY, Mode::empty());
//! let total = c.value("total", 0);
//! c.do_while(1 << 20, |c| {
//!     let n = c.read(fd, buf);
//!     c.accumulate(total, n);
//!     n.eq(buf.len())
//! });
//! c.close(fd);
//! c.output("total", total);
//! let compound = c.finish();
//! assert_eq!(compound.outputs[0].name, "total");
//! ```

pub mod builder;
pub mod compound;
pub mod flags;
pub mod ops;
pub mod policy;

pub use builder::{
    Buf, Builder, CmpOp, Comparison, Dirent, FlagOperand, FnOperand, IntoFnArgs, Loop,
};
pub use compound::*;
pub use flags::FlagSet;
pub use ops::{
    ArgKind, ArgSpec, BUILTINS, Confine, CostClass, Effect, RetKind, Sys, SysSpec, UringOp,
    may_write,
};
pub use policy::Policy;
