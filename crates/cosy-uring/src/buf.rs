//! [`IoBuf`]: the block of memory a [`Ring`](crate::Ring) lends to the kernel.

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::Range;
use std::ptr::NonNull;

/// Alignment of an [`IoBuf`]: a page, so the region suits `O_DIRECT` and registration.
pub const IOBUF_ALIGN: usize = 4096;

/// A zero-initialised, page-aligned block of bytes (the arena of a compound).
///
/// On its own an `IoBuf` is an ordinary owned byte buffer. Given to a
/// [`RingBuilder::region`](crate::RingBuilder::region), it becomes the ring's *region*: the only
/// memory that read, write and statx operations may target, named by ranges that are
/// bounds-checked when an operation is pushed. The ring keeps the block alive until every
/// operation referencing it has completed, and lends it out only for ranges no operation in
/// flight uses (see [`Ring::buf`](crate::Ring::buf)).
pub struct IoBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: an `IoBuf` uniquely owns its allocation, like a `Box<[u8]>`; it has no interior
// mutability reachable through `&IoBuf` (only `&mut IoBuf` writes).
unsafe impl Send for IoBuf {}
// SAFETY: see `Send`; `&IoBuf` only reads.
unsafe impl Sync for IoBuf {}

impl IoBuf {
    /// A block of `len` zero bytes.
    ///
    /// # Panics
    ///
    /// If the allocation fails or `len` is too large for a `Layout`.
    pub fn zeroed(len: usize) -> IoBuf {
        if len == 0 {
            return IoBuf {
                ptr: NonNull::<u8>::dangling(),
                len: 0,
            };
        }
        let layout = Self::layout(len);
        // SAFETY: `layout` has a non-zero size (checked above).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        IoBuf { ptr, len }
    }

    /// A block of `len` zero bytes, or `None` if it cannot be allocated (too large for the
    /// address space, or out of memory).
    pub fn try_zeroed(len: usize) -> Option<IoBuf> {
        if len == 0 {
            return Some(IoBuf::zeroed(0));
        }
        let layout = Layout::from_size_align(len, IOBUF_ALIGN).ok()?;
        // SAFETY: `layout` has a non-zero size (checked above).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        NonNull::new(raw).map(|ptr| IoBuf { ptr, len })
    }

    /// A block holding a copy of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> IoBuf {
        let mut buf = IoBuf::zeroed(bytes.len());
        buf.as_mut_slice().copy_from_slice(bytes);
        buf
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` initialised bytes (zeroed at allocation, or dangling
        // with `len == 0`), and `&self` excludes writers for the borrow's lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// A copy of the bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_slice().to_vec()
    }

    /// The base pointer (for SQEs and sub-slices); never turned into a reference to the whole
    /// block by the ring.
    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Whether `range` lies inside the block.
    pub(crate) fn contains(&self, range: &Range<usize>) -> bool {
        range.start <= range.end && range.end <= self.len
    }

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len, IOBUF_ALIGN).expect("IoBuf too large")
    }
}

impl Drop for IoBuf {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: allocated in `zeroed` with this very layout, and freed only here.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
        }
    }
}

impl fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoBuf").field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_aligned_and_writable() {
        let mut b = IoBuf::zeroed(10_000);
        assert_eq!(b.len(), 10_000);
        assert_eq!(b.base() as usize % IOBUF_ALIGN, 0);
        assert!(b.as_slice().iter().all(|&x| x == 0));
        b.as_mut_slice()[9_999] = 7;
        assert_eq!(b.to_vec()[9_999], 7);
        let e = IoBuf::zeroed(0);
        assert!(e.is_empty());
        assert_eq!(e.as_slice(), b"");
        assert_eq!(IoBuf::from_bytes(b"abc").as_slice(), b"abc");
    }
}
