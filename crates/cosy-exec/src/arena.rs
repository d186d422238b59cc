//! The arena: one zeroed, 4 KiB-aligned allocation holding every buffer of a compound.
//!
//! A buffer is placed at an aligned offset (4 KiB for buffers of at least 4 KiB, so they suit
//! `O_DIRECT`; 64 bytes otherwise). A `local` buffer has one copy per *lane* (running map
//! iteration), each copy aligned the same way. Operands name buffers by index and byte ranges by
//! values computed at run time; [`Arena::resolve`] turns such a range into a [`Span`] only if
//! `0 <= start <= end <= size`, and every access through a span is bounds-checked again, so
//! nothing outside the allocation can be named. This module and `sys` are the only ones with
//! `unsafe` code.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

use cosy_model::{BufId, Buffer};

/// Alignment of the arena's allocation.
pub const ARENA_ALIGN: usize = 4096;

/// Alignment of buffers smaller than [`ARENA_ALIGN`].
const SMALL_ALIGN: usize = 64;

/// A resolved, in-bounds byte range of the arena (absolute offset and length).
///
/// Only [`Arena::resolve`] makes spans; accesses check them again against the arena's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    off: usize,
    len: usize,
}

impl Span {
    /// Offset from the start of the arena.
    pub fn offset(self) -> usize {
        self.off
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        self.len
    }

    /// Whether the span is empty.
    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// One past the last byte (absolute).
    pub fn end(self) -> usize {
        self.off + self.len
    }

    /// Whether the two spans share a byte (empty spans share none).
    pub fn overlaps(self, other: Span) -> bool {
        !self.is_empty() && !other.is_empty() && self.off < other.end() && other.off < self.end()
    }

    /// The first `n` bytes of the span (all of it if shorter).
    pub fn prefix(self, n: usize) -> Span {
        Span {
            off: self.off,
            len: self.len.min(n),
        }
    }
}

/// A range that does not fit its buffer: the values evaluated and the buffer's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeError {
    /// Start value.
    pub start: i64,
    /// End value.
    pub end: i64,
    /// Size of the buffer.
    pub size: u64,
}

/// Why an arena cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArenaError {
    /// The buffers (local ones counted once per lane) exceed the policy's limit.
    #[error("the arena needs {bytes} bytes ({lanes} lane(s)), more than the policy's {limit}")]
    TooLarge {
        /// Bytes needed.
        bytes: u64,
        /// The limit.
        limit: u64,
        /// Lanes asked for.
        lanes: usize,
    },
    /// The allocation failed or its size does not fit the address space.
    #[error("cannot allocate an arena of {0} bytes")]
    Alloc(u64),
}

#[derive(Clone, Copy, Debug)]
struct Place {
    offset: usize,
    size: usize,
    stride: usize,
    copies: usize,
}

/// The memory of every buffer of one run.
pub struct Arena {
    ptr: NonNull<u8>,
    len: usize,
    layout: Option<Layout>,
    places: Vec<Place>,
    lanes: usize,
}

// SAFETY: the arena owns its allocation exclusively (like a `Box<[u8]>`); no interior
// mutability, so sharing `&Arena` or moving it between threads is sound.
unsafe impl Send for Arena {}
// SAFETY: see above; `&Arena` only gives shared reads.
unsafe impl Sync for Arena {}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("len", &self.len)
            .field("buffers", &self.places.len())
            .field("lanes", &self.lanes)
            .finish()
    }
}

fn align_for(size: usize) -> usize {
    if size >= ARENA_ALIGN {
        ARENA_ALIGN
    } else {
        SMALL_ALIGN
    }
}

fn round_up(v: usize, align: usize) -> Option<usize> {
    v.checked_add(align - 1).map(|x| x & !(align - 1))
}

/// Bytes the policy counts for `buffers` with `lanes` lanes: sizes summed, local buffers once
/// per lane.
pub fn counted_bytes(buffers: &[Buffer], lanes: usize) -> u64 {
    buffers
        .iter()
        .map(|b| {
            let copies = if b.local { lanes.max(1) as u64 } else { 1 };
            u64::from(b.size).saturating_mul(copies)
        })
        .fold(0u64, u64::saturating_add)
}

impl Arena {
    /// Places `buffers` (local ones `lanes` times) in one zeroed allocation; fails if the
    /// counted size exceeds `limit` bytes.
    pub fn new(buffers: &[Buffer], lanes: usize, limit: u64) -> Result<Arena, ArenaError> {
        let lanes = lanes.max(1);
        let counted = counted_bytes(buffers, lanes);
        if counted > limit {
            return Err(ArenaError::TooLarge {
                bytes: counted,
                limit,
                lanes,
            });
        }
        let mut places = Vec::with_capacity(buffers.len());
        let mut len = 0usize;
        for b in buffers {
            let size = b.size as usize;
            let align = align_for(size);
            let stride = round_up(size, align).ok_or(ArenaError::Alloc(counted))?;
            let copies = if b.local { lanes } else { 1 };
            let offset = round_up(len, align).ok_or(ArenaError::Alloc(counted))?;
            len = stride
                .checked_mul(copies)
                .and_then(|n| n.checked_add(offset))
                .ok_or(ArenaError::Alloc(counted))?;
            places.push(Place {
                offset,
                size,
                stride,
                copies,
            });
        }
        let len = round_up(len, ARENA_ALIGN).ok_or(ArenaError::Alloc(counted))?;
        if len == 0 {
            return Ok(Arena {
                ptr: NonNull::dangling(),
                len: 0,
                layout: None,
                places,
                lanes,
            });
        }
        let layout =
            Layout::from_size_align(len, ARENA_ALIGN).map_err(|_| ArenaError::Alloc(len as u64))?;
        // SAFETY: `layout` has a non-zero size (checked above).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or(ArenaError::Alloc(len as u64))?;
        Ok(Arena {
            ptr,
            len,
            layout: Some(layout),
            places,
            lanes,
        })
    }

    /// Total bytes allocated (with alignment padding).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is allocated.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of lanes (copies of each local buffer).
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// Size of buffer `buf` (0 for an index the arena does not have).
    pub fn size(&self, buf: BufId) -> u64 {
        self.places.get(buf.index()).map_or(0, |p| p.size as u64)
    }

    /// Resolves `buf[start..end]` (`end` defaults to the size) in lane `lane` (ignored for
    /// shared buffers): `0 <= start <= end <= size` or an error.
    pub fn resolve(
        &self,
        buf: BufId,
        lane: usize,
        start: i64,
        end: Option<i64>,
    ) -> Result<Span, RangeError> {
        let Some(place) = self.places.get(buf.index()) else {
            return Err(RangeError {
                start,
                end: end.unwrap_or(0),
                size: 0,
            });
        };
        let size = place.size as u64;
        let end_v = end.unwrap_or(size as i64);
        let err = RangeError {
            start,
            end: end_v,
            size,
        };
        if start < 0 || start > end_v || end_v as u64 > size {
            return Err(err);
        }
        debug_assert!(lane < place.copies || place.copies == 1);
        let copy = lane % place.copies.max(1);
        let base = place.offset + copy * place.stride;
        Ok(Span {
            off: base + start as usize,
            len: (end_v - start) as usize,
        })
    }

    /// The whole of buffer `buf` in lane `lane`.
    pub fn whole(&self, buf: BufId, lane: usize) -> Result<Span, RangeError> {
        self.resolve(buf, lane, 0, None)
    }

    fn in_bounds(&self, span: Span) -> bool {
        span.off
            .checked_add(span.len)
            .is_some_and(|e| e <= self.len)
    }

    fn all(&self) -> &[u8] {
        // SAFETY: `ptr` points to `len` initialised (zeroed) bytes owned by `self` (or is
        // dangling with `len == 0`, which is valid for an empty slice); the shared borrow of
        // `self` keeps them from being written meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn all_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `all`, and the exclusive borrow of `self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes of `span` (empty if the span is not inside this arena).
    pub fn slice(&self, span: Span) -> &[u8] {
        self.all().get(span.off..span.end()).unwrap_or(&[])
    }

    /// The bytes of `span`, writable (empty if the span is not inside this arena).
    pub fn slice_mut(&mut self, span: Span) -> &mut [u8] {
        let end = span.end();
        self.all_mut().get_mut(span.off..end).unwrap_or(&mut [])
    }

    /// A pointer and length for the kernel to read `span`; `(null, 0)` if the span is not
    /// inside this arena. Valid while the arena is neither dropped nor borrowed mutably.
    pub fn raw(&self, span: Span) -> (*const u8, usize) {
        if !self.in_bounds(span) {
            return (std::ptr::null(), 0);
        }
        let s = self.slice(span);
        (s.as_ptr(), s.len())
    }

    /// A pointer and length for the kernel to write `span`; `(null, 0)` if the span is not
    /// inside this arena. Valid while the arena is neither dropped nor borrowed otherwise.
    pub fn raw_mut(&mut self, span: Span) -> (*mut u8, usize) {
        if !self.in_bounds(span) {
            return (std::ptr::null_mut(), 0);
        }
        let s = self.slice_mut(span);
        (s.as_mut_ptr(), s.len())
    }

    /// Shared views of `ins` and a writable view of `out` at once, if `out` overlaps none of
    /// them and all are inside the arena.
    pub fn split(&mut self, ins: &[Span], out: Span) -> Option<(Vec<&[u8]>, &mut [u8])> {
        if !self.in_bounds(out) || ins.iter().any(|s| !self.in_bounds(*s) || s.overlaps(out)) {
            return None;
        }
        let base = self.ptr.as_ptr();
        let shared = ins
            .iter()
            .map(|s| {
                // SAFETY: `s` is inside the allocation (checked above) and does not overlap
                // `out`, the only range handed out writable; all live for the borrow of `self`.
                unsafe { std::slice::from_raw_parts(base.add(s.off), s.len) }
            })
            .collect();
        // SAFETY: `out` is inside the allocation and disjoint from every shared slice above;
        // the exclusive borrow of `self` rules out any other access for the result's life.
        let out = unsafe { std::slice::from_raw_parts_mut(base.add(out.off), out.len) };
        Some((shared, out))
    }

    /// Zeroes the whole arena (for reuse between runs).
    pub fn zero(&mut self) {
        self.all_mut().fill(0);
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: `ptr` was allocated in `new` with exactly this layout and is freed once.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bufs(sizes: &[(u32, bool)]) -> Vec<Buffer> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &(size, local))| Buffer {
                name: format!("b{i}"),
                size,
                local,
            })
            .collect()
    }

    #[test]
    fn buffers_are_aligned_disjoint_and_zeroed() {
        let b = bufs(&[(10, false), (4096, false), (100, true), (8192, true)]);
        let arena = Arena::new(&b, 3, u64::MAX).unwrap();
        assert_eq!(arena.ptr.as_ptr() as usize % ARENA_ALIGN, 0);
        let mut spans = Vec::new();
        for (i, buf) in b.iter().enumerate() {
            for lane in 0..3 {
                let s = arena.whole(BufId(i as u16), lane).unwrap();
                assert_eq!(s.len(), buf.size as usize);
                assert_eq!(s.offset() % align_for(buf.size as usize), 0);
                if buf.local || lane == 0 {
                    spans.push(s);
                }
            }
        }
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                assert!(!a.overlaps(*b), "{a:?} {b:?}");
            }
        }
        assert!(arena.slice(spans[1]).iter().all(|&x| x == 0));
    }

    #[test]
    fn limit_counts_local_buffers_per_lane() {
        let b = bufs(&[(100, false), (100, true)]);
        assert!(Arena::new(&b, 1, 200).is_ok());
        assert!(matches!(
            Arena::new(&b, 2, 200),
            Err(ArenaError::TooLarge { bytes: 300, .. })
        ));
    }

    #[test]
    fn empty_arena_works() {
        let mut a = Arena::new(&[], 1, 0).unwrap();
        assert!(a.is_empty());
        assert_eq!(a.slice(Span::default()), &[] as &[u8]);
        assert!(a.resolve(BufId(0), 0, 0, None).is_err());
        a.zero();
    }

    #[test]
    fn split_refuses_overlap() {
        let b = bufs(&[(100, false)]);
        let mut a = Arena::new(&b, 1, u64::MAX).unwrap();
        let x = a.resolve(BufId(0), 0, 0, Some(50)).unwrap();
        let y = a.resolve(BufId(0), 0, 50, Some(100)).unwrap();
        let z = a.resolve(BufId(0), 0, 40, Some(60)).unwrap();
        assert!(a.split(&[x], y).is_some());
        assert!(a.split(&[x, y], z).is_none());
        let (ins, out) = a.split(&[x], y).unwrap();
        out[0] = 7;
        assert_eq!(ins[0].len(), 50);
        assert_eq!(a.slice(y)[0], 7);
    }

    proptest! {
        #[test]
        fn resolve_accepts_exactly_the_ranges_inside(size in 0u32..10_000, start in -20_000i64..20_000, end in proptest::option::of(-20_000i64..20_000)) {
            let b = bufs(&[(size, false)]);
            let a = Arena::new(&b, 1, u64::MAX).unwrap();
            let e = end.unwrap_or(i64::from(size));
            let ok = 0 <= start && start <= e && e <= i64::from(size);
            match a.resolve(BufId(0), 0, start, end) {
                Ok(s) => {
                    prop_assert!(ok);
                    prop_assert_eq!(s.len() as i64, e - start);
                    prop_assert_eq!(a.slice(s).len(), s.len());
                }
                Err(err) => {
                    prop_assert!(!ok);
                    prop_assert_eq!(err, RangeError { start, end: e, size: u64::from(size) });
                }
            }
        }
    }
}
