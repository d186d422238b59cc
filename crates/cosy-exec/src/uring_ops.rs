//! The io_uring opcode numbers of the operation table's [`UringOp`](cosy_model::UringOp) column, from the io_uring
//! binding cosy-uring uses (`cosy_uring::io_uring::opcode`).

use cosy_model::UringOp;
use cosy_uring::io_uring::opcode;

/// The opcode number of `op` (`IORING_OP_*`, io_uring_enter(2)). The registered-buffer forms
/// (`READ_FIXED`, `WRITE_FIXED`) are chosen by the ring executor's plan, not here.
pub fn opcode(op: UringOp) -> u8 {
    match op {
        UringOp::Nop => opcode::Nop::CODE,
        UringOp::OpenAt => opcode::OpenAt::CODE,
        UringOp::OpenAt2 => opcode::OpenAt2::CODE,
        UringOp::Close => opcode::Close::CODE,
        UringOp::Read => opcode::Read::CODE,
        UringOp::Write => opcode::Write::CODE,
        UringOp::Statx => opcode::Statx::CODE,
        UringOp::MkDirAt => opcode::MkDirAt::CODE,
        UringOp::UnlinkAt => opcode::UnlinkAt::CODE,
        UringOp::RenameAt => opcode::RenameAt::CODE,
        UringOp::Fsync => opcode::Fsync::CODE,
        UringOp::Ftruncate => opcode::Ftruncate::CODE,
        UringOp::Splice => opcode::Splice::CODE,
        UringOp::LinkAt => opcode::LinkAt::CODE,
        UringOp::SymlinkAt => opcode::SymlinkAt::CODE,
        UringOp::FGetXattr => opcode::FGetXattr::CODE,
        UringOp::FSetXattr => opcode::FSetXattr::CODE,
    }
}

#[cfg(test)]
mod tests {
    use cosy_model::Sys;
    use cosy_uring::io_uring::opcode;

    use super::*;

    /// The request each call is issued as on the ring, written out per call (not from the
    /// table), as the ring executor builds it.
    fn issued_as(call: Sys) -> Option<u8> {
        Some(match call {
            Sys::Nop => opcode::Nop::CODE,
            Sys::Openat => opcode::OpenAt::CODE,
            Sys::Openat2 => opcode::OpenAt2::CODE,
            Sys::Close => opcode::Close::CODE,
            Sys::Read | Sys::Pread => opcode::Read::CODE,
            Sys::Write | Sys::Pwrite => opcode::Write::CODE,
            Sys::Statx | Sys::Fstat => opcode::Statx::CODE,
            Sys::Mkdirat => opcode::MkDirAt::CODE,
            Sys::Unlinkat => opcode::UnlinkAt::CODE,
            Sys::Renameat2 => opcode::RenameAt::CODE,
            Sys::Fsync | Sys::Fdatasync => opcode::Fsync::CODE,
            Sys::Ftruncate => opcode::Ftruncate::CODE,
            Sys::Splice => opcode::Splice::CODE,
            Sys::Linkat => opcode::LinkAt::CODE,
            Sys::Symlinkat => opcode::SymlinkAt::CODE,
            Sys::Fgetxattr => opcode::FGetXattr::CODE,
            Sys::Fsetxattr => opcode::FSetXattr::CODE,
            Sys::Getpid
            | Sys::Getppid
            | Sys::Lseek
            | Sys::Getdents64
            | Sys::CopyFileRange
            | Sys::Sendfile
            | Sys::Pipe2
            | Sys::Readlinkat
            | Sys::Fchmodat
            | Sys::Fchownat
            | Sys::Utimensat
            | Sys::Flistxattr
            | Sys::Faccessat2 => return None,
        })
    }

    #[test]
    fn every_rows_uring_column_is_the_opcode_it_is_issued_as() {
        for &call in Sys::ALL {
            assert_eq!(
                call.spec().uring.map(opcode),
                issued_as(call),
                "{call:?}: the table's io_uring opcode"
            );
        }
    }

    #[test]
    fn opcodes_are_distinct() {
        let ops: Vec<UringOp> = Sys::ALL.iter().filter_map(|c| c.spec().uring).collect();
        for a in &ops {
            for b in &ops {
                assert_eq!(a == b, opcode(*a) == opcode(*b), "{a:?} {b:?}");
            }
        }
    }
}
