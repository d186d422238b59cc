//! The fd slots of one interpreter lane.

use cosy_model::FdSlot;

use crate::sys;

/// The fd slots; `-1` is empty. A table owns what it holds: dropping it closes what is still
/// open (a safety net: the interpreter closes everything itself, counted, before it ends),
/// except in a table made with [`FdTable::borrowed`], which holds descriptors of another.
#[derive(Debug)]
pub(crate) struct FdTable {
    slots: Vec<i32>,
    owned: bool,
}

impl FdTable {
    /// `n` empty slots.
    pub fn new(n: usize) -> Self {
        FdTable {
            slots: vec![-1; n],
            owned: true,
        }
    }

    /// A table holding the descriptors of another (`slots`) without owning them: dropping it
    /// closes nothing. The slots a map iteration opens into are emptied before it ends.
    pub fn borrowed(slots: &[i32]) -> Self {
        FdTable {
            slots: slots.to_vec(),
            owned: false,
        }
    }

    /// The descriptor in slot `s` (`-1` when empty).
    #[inline]
    pub fn get(&self, s: FdSlot) -> i32 {
        self.slots.get(s.index()).copied().unwrap_or(-1)
    }

    /// Puts `fd` in slot `s`, returning what was there.
    #[inline]
    pub fn replace(&mut self, s: FdSlot, fd: i32) -> i32 {
        match self.slots.get_mut(s.index()) {
            Some(x) => std::mem::replace(x, fd),
            None => -1,
        }
    }

    /// Adds empty slots up to `n` in all (a compound that grows, [`crate::session`]).
    pub fn grow(&mut self, n: usize) {
        if self.slots.len() < n {
            self.slots.resize(n, -1);
        }
    }

    /// The descriptor numbers of every slot.
    pub fn slots(&self) -> &[i32] {
        &self.slots
    }

    /// Copies the descriptors of `slots` in (a borrowed table starting another iteration).
    pub fn set_all(&mut self, slots: &[i32]) {
        self.slots.clear();
        self.slots.extend_from_slice(slots);
    }

    /// Slots that hold a descriptor, in order.
    pub fn open(&self) -> Vec<FdSlot> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i] >= 0)
            .map(|i| FdSlot(i as u16))
            .collect()
    }
}

impl Drop for FdTable {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        for fd in &mut self.slots {
            // Direct descriptors of a ring have no number to close here; the ring closes them.
            if (0..crate::DIRECT_FD_BASE).contains(fd) {
                let _ = sys::close(*fd);
            }
            *fd = -1;
        }
    }
}
