//! The arena: one zeroed, 4 KiB-aligned block holding every buffer of a compound.
//!
//! A buffer is placed at an aligned offset (4 KiB for buffers of at least 4 KiB, so they suit
//! `O_DIRECT`; 64 bytes otherwise). A `local` buffer has one copy per *lane* (running map
//! iteration), each copy aligned the same way. Operands name buffers by index and byte ranges by
//! values computed at run time; [`Layout::resolve`] turns such a range into a [`Span`] only if
//! `0 <= start <= end <= size`, and every access through a span is bounds-checked again, so
//! nothing outside the block can be named.
//!
//! The block is a [`cosy_uring::IoBuf`]: the direct executor owns it inside an [`Arena`]; the
//! ring executor hands it to its ring as the ring's *region* (registered as a fixed buffer), so
//! the kernel reads and writes the very bytes the interpreter sees, and the interpreter borrows
//! them back from the ring ([`cosy_uring::Ring::region_mut`]) when no operation is in flight.
//! The placement ([`Layout`]) and the record of written bytes ([`Dirty`]) are separate from the
//! memory for that reason; the functions of this module that touch bytes take the block as a
//! slice.
//!
//! **Local buffers start every iteration zeroed** (docs/semantics.md): [`Dirty`] keeps, per
//! buffer copy, the range of bytes written since it was last cleared (by calls, `store` and
//! functions; marked when a write is issued), and [`Dirty::clear`] zeroes just that range at
//! the start of an iteration. The same record lets a block be reused for another run after
//! zeroing only what the last run wrote ([`Dirty::clear_all`]).
//!
//! This module holds no `unsafe` code: the memory is an `IoBuf`, whose few `unsafe` blocks live
//! in cosy-uring.

use cosy_model::{BufId, Buffer};
use cosy_uring::IoBuf;

/// Alignment of the arena's block.
pub const ARENA_ALIGN: usize = 4096;

/// Alignment of buffers smaller than [`ARENA_ALIGN`].
const SMALL_ALIGN: usize = 64;

/// A resolved, in-bounds byte range of the arena (absolute offset and length).
///
/// Only [`Layout::resolve`] makes spans; accesses check them again against the block's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    off: usize,
    len: usize,
}

impl Span {
    /// The same bytes, counted from `base` (a view of the arena starting there).
    pub fn rebased(self, base: usize) -> Span {
        Span {
            off: self.off.saturating_sub(base),
            len: self.len,
        }
    }

    /// The bytes of a span counted from `base`, counted from the arena's start again (the
    /// inverse of [`Span::rebased`]).
    pub fn moved(self, base: usize) -> Span {
        Span {
            off: self.off.saturating_add(base),
            len: self.len,
        }
    }

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

    /// The span as a range of offsets.
    pub fn range(self) -> std::ops::Range<usize> {
        self.off..self.end()
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
    /// Index of this buffer's first copy in [`Dirty`].
    first: usize,
}

/// Where every buffer of one run lives in the block: offsets, sizes, lanes.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    places: Vec<Place>,
    lanes: usize,
    len: usize,
    copies: usize,
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

/// The most lanes (at most `want`, at least 1) whose arena stays within `limit` bytes.
pub fn lanes_within(buffers: &[Buffer], want: usize, limit: u64) -> usize {
    let sum = |local: bool| -> u64 {
        buffers
            .iter()
            .filter(|b| b.local == local)
            .map(|b| u64::from(b.size))
            .sum()
    };
    let (shared, local) = (sum(false), sum(true));
    if local == 0 {
        return want.max(1);
    }
    let room = limit.saturating_sub(shared) / local;
    (room.min(want as u64) as usize).max(1)
}

impl Layout {
    /// Places `buffers` (local ones `lanes` times); fails if the counted size exceeds `limit`
    /// bytes.
    pub fn new(buffers: &[Buffer], lanes: usize, limit: u64) -> Result<Layout, ArenaError> {
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
        let mut first = 0usize;
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
                first,
            });
            first += copies;
        }
        let len = round_up(len, ARENA_ALIGN).ok_or(ArenaError::Alloc(counted))?;
        Ok(Layout {
            places,
            lanes,
            len,
            copies: first,
        })
    }

    /// Total bytes of the block (with alignment padding).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of lanes (copies of each local buffer).
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// Size of buffer `buf` (0 for an index the layout does not have).
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
        if start < 0 || start > end_v || end_v as u64 > size {
            return Err(RangeError {
                start,
                end: end_v,
                size,
            });
        }
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

    /// Which buffer copy holds the start of `span`: its index in [`Dirty`] and the offset of
    /// the copy. Spans are always inside one copy (they are made by `resolve`).
    fn locate(&self, span: Span) -> Option<(usize, usize)> {
        let i = self
            .places
            .partition_point(|p| p.offset <= span.off)
            .checked_sub(1)?;
        let p = self.places.get(i)?;
        let copy = (span.off - p.offset) / p.stride.max(1);
        if copy >= p.copies {
            return None;
        }
        Some((p.first + copy, p.offset + copy * p.stride))
    }
}

/// The bytes of the block written since they were last cleared: one range per buffer copy.
#[derive(Clone, Debug, Default)]
pub struct Dirty {
    ranges: Vec<(u32, u32)>,
    any: bool,
}

impl Dirty {
    /// Nothing written, for `layout`.
    pub fn new(layout: &Layout) -> Dirty {
        Dirty {
            ranges: vec![(u32::MAX, 0); layout.copies],
            any: false,
        }
    }

    /// Records that `span` (of `layout`) is (or may be) written.
    pub fn mark(&mut self, layout: &Layout, span: Span) {
        if span.is_empty() {
            return;
        }
        let Some((i, base)) = layout.locate(span) else {
            return;
        };
        let lo = (span.off - base) as u32;
        let hi = (span.end() - base) as u32;
        if let Some(r) = self.ranges.get_mut(i) {
            r.0 = r.0.min(lo);
            r.1 = r.1.max(hi);
            self.any = true;
        }
    }

    /// What was written of buffer `buf`'s copy in lane `lane` (`None`: nothing).
    pub fn written(&self, layout: &Layout, buf: BufId, lane: usize) -> Option<Span> {
        let p = layout.places.get(buf.index())?;
        let copy = lane % p.copies.max(1);
        let r = self.ranges.get(p.first + copy)?;
        (r.0 < r.1).then(|| Span {
            off: p.offset + copy * p.stride + r.0 as usize,
            len: (r.1 - r.0) as usize,
        })
    }

    /// Forgets what was written of buffer `buf`'s copy in lane `lane` (it has been zeroed).
    pub fn forget(&mut self, layout: &Layout, buf: BufId, lane: usize) {
        if let Some(p) = layout.places.get(buf.index()) {
            let copy = lane % p.copies.max(1);
            if let Some(r) = self.ranges.get_mut(p.first + copy) {
                *r = (u32::MAX, 0);
            }
        }
    }

    /// Zeroes in `mem` what was written of buffer `buf`'s copy in lane `lane`, and forgets it.
    pub fn clear(&mut self, layout: &Layout, mem: &mut [u8], buf: BufId, lane: usize) {
        let Some(p) = layout.places.get(buf.index()) else {
            return;
        };
        let copy = lane % p.copies.max(1);
        let Some(r) = self.ranges.get_mut(p.first + copy) else {
            return;
        };
        if r.0 < r.1 {
            let base = p.offset + copy * p.stride;
            if let Some(bytes) = mem.get_mut(base + r.0 as usize..base + r.1 as usize) {
                bytes.fill(0);
            }
        }
        *r = (u32::MAX, 0);
    }

    /// Zeroes in `mem` everything written, and forgets it: the block is all zeros again.
    pub fn clear_all(&mut self, layout: &Layout, mem: &mut [u8]) {
        if !self.any {
            return;
        }
        for (b, p) in layout.places.iter().enumerate() {
            for lane in 0..p.copies {
                self.clear(layout, mem, BufId(b as u16), lane);
            }
        }
        self.any = false;
    }
}

/// The bytes of `span` in `mem` (empty if the span is not inside it).
pub fn bytes(mem: &[u8], span: Span) -> &[u8] {
    mem.get(span.off..span.end()).unwrap_or(&[])
}

/// The bytes of `span` in `mem`, writable (empty if the span is not inside it).
pub fn bytes_mut(mem: &mut [u8], span: Span) -> &mut [u8] {
    let end = span.end();
    mem.get_mut(span.off..end).unwrap_or(&mut [])
}

/// Shared views of `ins` and a writable view of `out` in `mem` at once, if `out` overlaps none
/// of them and all are inside `mem`.
pub fn split<'m>(
    mem: &'m mut [u8],
    ins: &[Span],
    out: Span,
) -> Option<(Vec<&'m [u8]>, &'m mut [u8])> {
    let inside = |s: &Span| s.end() <= mem.len();
    if !inside(&out) || ins.iter().any(|s| !inside(s) || s.overlaps(out)) {
        return None;
    }
    if out.is_empty() {
        let mem: &'m [u8] = mem;
        return Some((ins.iter().map(|s| bytes(mem, *s)).collect(), &mut []));
    }
    let (before, rest) = mem.split_at_mut(out.off);
    let (out_bytes, after) = rest.split_at_mut(out.len);
    let (before, after): (&'m [u8], &'m [u8]) = (before, after);
    let shared = ins
        .iter()
        .map(|s| {
            if s.is_empty() {
                &before[..0]
            } else if s.end() <= out.off {
                &before[s.off..s.end()]
            } else {
                let from = s.off - out.end();
                &after[from..from + s.len]
            }
        })
        .collect();
    Some((shared, out_bytes))
}

/// The memory of every buffer of one run, with its layout (the direct executor's arena).
pub struct Arena {
    layout: Layout,
    mem: IoBuf,
    dirty: Dirty,
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("len", &self.layout.len)
            .field("buffers", &self.layout.places.len())
            .field("lanes", &self.layout.lanes)
            .finish()
    }
}

impl std::ops::Deref for Arena {
    type Target = Layout;

    fn deref(&self) -> &Layout {
        &self.layout
    }
}

impl Arena {
    /// Places `buffers` (local ones `lanes` times) in one zeroed block; fails if the counted
    /// size exceeds `limit` bytes or the block cannot be allocated.
    pub fn new(buffers: &[Buffer], lanes: usize, limit: u64) -> Result<Arena, ArenaError> {
        let layout = Layout::new(buffers, lanes, limit)?;
        let mem = IoBuf::try_zeroed(layout.len).ok_or(ArenaError::Alloc(layout.len as u64))?;
        let dirty = Dirty::new(&layout);
        Ok(Arena { layout, mem, dirty })
    }

    /// The placement of the buffers.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The whole block.
    pub fn mem(&self) -> &[u8] {
        self.mem.as_slice()
    }

    /// The whole block, writable.
    pub fn mem_mut(&mut self) -> &mut [u8] {
        self.mem.as_mut_slice()
    }

    /// Splits the arena into its layout, its memory and its record of written bytes (the ring
    /// executor gives the memory to its ring).
    pub fn into_parts(self) -> (Layout, IoBuf, Dirty) {
        (self.layout, self.mem, self.dirty)
    }

    /// The bytes of `span` (empty if the span is not inside this arena).
    pub fn slice(&self, span: Span) -> &[u8] {
        bytes(self.mem.as_slice(), span)
    }

    /// The bytes of `span`, writable (empty if the span is not inside this arena). Does not
    /// mark them written (see [`Arena::mark`]).
    pub fn slice_mut(&mut self, span: Span) -> &mut [u8] {
        bytes_mut(self.mem.as_mut_slice(), span)
    }

    /// Records that `span` is written (by a call, a `store` or a function).
    pub fn mark(&mut self, span: Span) {
        self.dirty.mark(&self.layout, span);
    }

    /// Zeroes what was written of the local buffers `bufs` in lane `lane` (the start of a map
    /// iteration).
    pub fn clear_locals(&mut self, bufs: &[BufId], lane: usize) {
        for &b in bufs {
            self.dirty
                .clear(&self.layout, self.mem.as_mut_slice(), b, lane);
        }
    }

    /// A pointer and length for the kernel to read `span`; `(null, 0)` if the span is not
    /// inside this arena. Valid while the arena is neither dropped nor borrowed mutably.
    pub fn raw(&self, span: Span) -> (*const u8, usize) {
        let s = self.slice(span);
        if s.len() != span.len() {
            return (std::ptr::null(), 0);
        }
        (s.as_ptr(), s.len())
    }

    /// A pointer and length for the kernel to write `span`; `(null, 0)` if the span is not
    /// inside this arena. Valid while the arena is neither dropped nor borrowed otherwise.
    pub fn raw_mut(&mut self, span: Span) -> (*mut u8, usize) {
        let s = self.slice_mut(span);
        if s.len() != span.len() {
            return (std::ptr::null_mut(), 0);
        }
        (s.as_mut_ptr(), s.len())
    }

    /// Shared views of `ins` and a writable view of `out` at once, if `out` overlaps none of
    /// them and all are inside the arena.
    pub fn split(&mut self, ins: &[Span], out: Span) -> Option<(Vec<&[u8]>, &mut [u8])> {
        split(self.mem.as_mut_slice(), ins, out)
    }

    /// Zeroes the whole arena (for reuse between runs).
    pub fn zero(&mut self) {
        self.mem.as_mut_slice().fill(0);
        self.dirty = Dirty::new(&self.layout);
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
        assert_eq!(arena.mem().as_ptr() as usize % ARENA_ALIGN, 0);
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
        assert_eq!(lanes_within(&b, 64, 1000), 9);
        assert_eq!(lanes_within(&b, 4, 1000), 4);
        assert_eq!(lanes_within(&b, 4, 10), 1);
        assert_eq!(lanes_within(&bufs(&[(100, false)]), 7, 10), 7);
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
        let w = a.resolve(BufId(0), 0, 60, Some(70)).unwrap();
        assert!(a.split(&[x], y).is_some());
        assert!(a.split(&[x, y], z).is_none());
        a.slice_mut(w)[0] = 9;
        let (ins, out) = a.split(&[x, w], z.prefix(0)).unwrap();
        assert_eq!((ins[0].len(), ins[1][0], out.len()), (50, 9, 0));
        let (ins, out) = a.split(&[x], y).unwrap();
        out[0] = 7;
        assert_eq!(ins[0].len(), 50);
        assert_eq!(a.slice(y)[0], 7);
        let (ins, _) = a.split(&[w, x], x.prefix(10).prefix(0)).unwrap();
        assert_eq!(ins[0][0], 9);
    }

    #[test]
    fn dirty_ranges_are_zeroed_per_lane() {
        let b = bufs(&[(100, false), (300, true)]);
        let mut a = Arena::new(&b, 3, u64::MAX).unwrap();
        for lane in 0..3 {
            let s = a.resolve(BufId(1), lane, 10, Some(20)).unwrap();
            a.slice_mut(s).fill(lane as u8 + 1);
            a.mark(s);
        }
        let shared = a.resolve(BufId(0), 0, 0, Some(5)).unwrap();
        a.slice_mut(shared).fill(5);
        a.mark(shared);
        a.clear_locals(&[BufId(1)], 1);
        let whole = |a: &Arena, lane| a.slice(a.whole(BufId(1), lane).unwrap()).to_vec();
        assert!(whole(&a, 1).iter().all(|&x| x == 0));
        assert_eq!(whole(&a, 2)[15], 3);
        assert_eq!(whole(&a, 0)[10], 1);
        let (layout, mut mem, mut dirty) = a.into_parts();
        dirty.clear_all(&layout, mem.as_mut_slice());
        assert!(mem.as_slice().iter().all(|&x| x == 0));
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

        #[test]
        fn marking_then_clearing_restores_zeros(writes in proptest::collection::vec((0usize..3, 0i64..200, 0i64..200), 0..20)) {
            let b = bufs(&[(50, false), (200, true), (7, true)]);
            let mut a = Arena::new(&b, 3, u64::MAX).unwrap();
            for (lane, x, y) in writes {
                let (s, e) = (x.min(y), x.max(y));
                let s = a.resolve(BufId(1), lane, s, Some(e)).unwrap();
                a.slice_mut(s).fill(0xff);
                a.mark(s);
            }
            for lane in 0..3 {
                a.clear_locals(&[BufId(1), BufId(2)], lane);
            }
            prop_assert!(a.mem().iter().all(|&x| x == 0));
        }
    }
}
