//! Handle tables (`HANDLE_TABLE`), multi-level as NT builds them: a level-0
//! page holds 256 16-byte `HANDLE_TABLE_ENTRY`s; a level-1 page points to 512
//! level-0 pages; a level-2 page to 512 level-1 pages. Handle values are
//! multiples of 4 (the low two bits are tag bits and ignored on lookup),
//! value 0 is never handed out, and freed entries are reused first-in,
//! last-out like NT's free list. Lookup is two or three index operations.

use alloc::boxed::Box;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;

/// Entries in one level-0 table page (4096 / 16).
pub const LOWLEVEL_COUNT: usize = 256;
/// Pointers in one mid/top-level page (4096 / 8).
pub const MIDLEVEL_COUNT: usize = 512;
/// Largest number of entries a three-level table can hold.
pub const MAX_HANDLES: usize = LOWLEVEL_COUNT * MIDLEVEL_COUNT * MIDLEVEL_COUNT;

/// Per-handle attribute: inherited by child processes (`OBJ_INHERIT`).
pub const HANDLE_INHERIT: u8 = 0x02;
/// Per-handle attribute: `NtClose` refuses with `STATUS_HANDLE_NOT_CLOSABLE`.
pub const HANDLE_PROTECT_FROM_CLOSE: u8 = 0x01;
/// Per-handle attribute: audit on close.
pub const HANDLE_AUDIT_ON_CLOSE: u8 = 0x04;

/// A handle value (`HANDLE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Handle(pub u64);

impl Handle {
    fn index(self) -> usize {
        (self.0 >> 2) as usize
    }
    fn from_index(i: usize) -> Self {
        Handle((i as u64) << 2)
    }
}

/// `HANDLE_TABLE_ENTRY`: the object, the access granted at open, attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleEntry<O> {
    pub object: O,
    pub granted_access: u32,
    pub attributes: u8,
}

type Low<O> = Box<[Option<HandleEntry<O>>; LOWLEVEL_COUNT]>;
type Mid<O> = Box<[Option<Low<O>>]>;

enum Levels<O> {
    One(Low<O>),
    Two(Mid<O>),
    Three(Box<[Option<Mid<O>>]>),
}

/// A process's (or the kernel's) handle table.
pub struct HandleTable<O> {
    levels: Levels<O>,
    /// Entries the table has room for without growing.
    capacity: usize,
    /// Freed indices, most recent last.
    free: Vec<usize>,
    /// Next never-used index.
    next: usize,
    count: usize,
}

fn new_low<O: Copy>() -> Low<O> {
    Box::new([None; LOWLEVEL_COUNT])
}

fn new_mid<O>() -> Mid<O> {
    (0..MIDLEVEL_COUNT).map(|_| None).collect()
}

impl<O: Copy> Default for HandleTable<O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<O: Copy> HandleTable<O> {
    /// `ExCreateHandleTable`: one level-0 page; index 0 is reserved, so the
    /// first handle is 4.
    pub fn new() -> Self {
        HandleTable {
            levels: Levels::One(new_low()),
            capacity: LOWLEVEL_COUNT,
            free: Vec::new(),
            next: 1,
            count: 0,
        }
    }

    /// Number of live handles (`HandleCount`).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Table depth: 1, 2 or 3 levels.
    pub fn levels(&self) -> u32 {
        match self.levels {
            Levels::One(_) => 1,
            Levels::Two(_) => 2,
            Levels::Three(_) => 3,
        }
    }

    fn slot(&self, i: usize) -> Option<&Option<HandleEntry<O>>> {
        match &self.levels {
            Levels::One(l) => l.get(i),
            Levels::Two(m) => m.get(i / LOWLEVEL_COUNT)?.as_ref()?.get(i % LOWLEVEL_COUNT),
            Levels::Three(t) => {
                let per_mid = LOWLEVEL_COUNT * MIDLEVEL_COUNT;
                t.get(i / per_mid)?
                    .as_ref()?
                    .get((i % per_mid) / LOWLEVEL_COUNT)?
                    .as_ref()?
                    .get(i % LOWLEVEL_COUNT)
            }
        }
    }

    fn slot_mut(&mut self, i: usize) -> Option<&mut Option<HandleEntry<O>>> {
        match &mut self.levels {
            Levels::One(l) => l.get_mut(i),
            Levels::Two(m) => m
                .get_mut(i / LOWLEVEL_COUNT)?
                .as_mut()?
                .get_mut(i % LOWLEVEL_COUNT),
            Levels::Three(t) => {
                let per_mid = LOWLEVEL_COUNT * MIDLEVEL_COUNT;
                t.get_mut(i / per_mid)?
                    .as_mut()?
                    .get_mut((i % per_mid) / LOWLEVEL_COUNT)?
                    .as_mut()?
                    .get_mut(i % LOWLEVEL_COUNT)
            }
        }
    }

    /// Makes room for index `i` (`ExpAllocateHandleTableEntrySlow`): adds a
    /// level-0 page, and a level when the current top is full.
    fn grow_to(&mut self, i: usize) -> Result<(), NtStatus> {
        if i >= MAX_HANDLES {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        // Add a level when needed.
        if let Levels::One(_) = self.levels {
            if i >= LOWLEVEL_COUNT {
                let Levels::One(low) = core::mem::replace(&mut self.levels, Levels::Two(new_mid()))
                else {
                    unreachable!()
                };
                if let Levels::Two(m) = &mut self.levels {
                    m[0] = Some(low);
                }
            }
        }
        if let Levels::Two(_) = self.levels {
            if i >= LOWLEVEL_COUNT * MIDLEVEL_COUNT {
                let Levels::Two(mid) = core::mem::replace(
                    &mut self.levels,
                    Levels::Three((0..MIDLEVEL_COUNT).map(|_| None).collect()),
                ) else {
                    unreachable!()
                };
                if let Levels::Three(t) = &mut self.levels {
                    t[0] = Some(mid);
                }
            }
        }
        match &mut self.levels {
            Levels::One(_) => {}
            Levels::Two(m) => {
                let slot = &mut m[i / LOWLEVEL_COUNT];
                if slot.is_none() {
                    *slot = Some(new_low());
                    self.capacity += LOWLEVEL_COUNT;
                }
            }
            Levels::Three(t) => {
                let per_mid = LOWLEVEL_COUNT * MIDLEVEL_COUNT;
                let mid = t[i / per_mid].get_or_insert_with(new_mid);
                let slot = &mut mid[(i % per_mid) / LOWLEVEL_COUNT];
                if slot.is_none() {
                    *slot = Some(new_low());
                    self.capacity += LOWLEVEL_COUNT;
                }
            }
        }
        Ok(())
    }

    /// `ExCreateHandle`: stores an entry and returns its handle.
    pub fn create(&mut self, entry: HandleEntry<O>) -> Result<Handle, NtStatus> {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = self.next;
                if self.slot(i).is_none() {
                    self.grow_to(i)?;
                }
                self.next += 1;
                i
            }
        };
        *self.slot_mut(i).ok_or(STATUS_INSUFFICIENT_RESOURCES)? = Some(entry);
        self.count += 1;
        Ok(Handle::from_index(i))
    }

    /// `ExMapHandleToPointer`: the entry for a handle, ignoring its tag bits.
    pub fn lookup(&self, h: Handle) -> Result<&HandleEntry<O>, NtStatus> {
        let i = h.index();
        if i == 0 {
            return Err(STATUS_INVALID_HANDLE);
        }
        self.slot(i)
            .and_then(|e| e.as_ref())
            .ok_or(STATUS_INVALID_HANDLE)
    }

    /// Changes a handle's attributes (`ObSetHandleAttributes`).
    pub fn set_attributes(&mut self, h: Handle, attributes: u8) -> Result<(), NtStatus> {
        let i = h.index();
        if i == 0 {
            return Err(STATUS_INVALID_HANDLE);
        }
        let e = self
            .slot_mut(i)
            .and_then(|e| e.as_mut())
            .ok_or(STATUS_INVALID_HANDLE)?;
        e.attributes = attributes;
        Ok(())
    }

    /// `ExDestroyHandle` as `NtClose` uses it: refuses protected handles with
    /// `STATUS_HANDLE_NOT_CLOSABLE`; returns the entry so the caller drops its
    /// object reference.
    pub fn close(&mut self, h: Handle) -> Result<HandleEntry<O>, NtStatus> {
        let i = h.index();
        if i == 0 {
            return Err(STATUS_INVALID_HANDLE);
        }
        let slot = self.slot_mut(i).ok_or(STATUS_INVALID_HANDLE)?;
        match slot {
            None => Err(STATUS_INVALID_HANDLE),
            Some(e) if e.attributes & HANDLE_PROTECT_FROM_CLOSE != 0 => {
                Err(STATUS_HANDLE_NOT_CLOSABLE)
            }
            Some(_) => {
                let e = slot.take().unwrap();
                self.free.push(i);
                self.count -= 1;
                Ok(e)
            }
        }
    }

    /// Every live handle in index order (`ExEnumHandleTable`, used by `!handle`).
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &HandleEntry<O>)> + '_ {
        (1..self.next).filter_map(move |i| {
            self.slot(i)
                .and_then(|e| e.as_ref())
                .map(|e| (Handle::from_index(i), e))
        })
    }

    /// `ExDupHandleTable` for process creation: copies inheritable handles at
    /// the same values.
    pub fn duplicate_inheritable(&self) -> Result<HandleTable<O>, NtStatus> {
        let mut t = HandleTable::new();
        for (h, e) in self.iter() {
            if e.attributes & HANDLE_INHERIT != 0 {
                let i = h.index();
                t.grow_to(i)?;
                *t.slot_mut(i).ok_or(STATUS_INSUFFICIENT_RESOURCES)? = Some(*e);
                t.count += 1;
            }
        }
        t.next = self.next;
        for i in (1..t.next).rev() {
            if t.slot(i).is_none_or(|e| e.is_none()) {
                t.free.push(i);
            }
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(o: u32) -> HandleEntry<u32> {
        HandleEntry {
            object: o,
            granted_access: 0x1F0003,
            attributes: 0,
        }
    }

    #[test]
    fn handles_are_multiples_of_four_starting_at_four() {
        let mut t = HandleTable::new();
        assert_eq!(t.create(entry(1)).unwrap(), Handle(4));
        assert_eq!(t.create(entry(2)).unwrap(), Handle(8));
        assert_eq!(t.lookup(Handle(8)).unwrap().object, 2);
        // Tag bits are ignored, as NT does.
        assert_eq!(t.lookup(Handle(11)).unwrap().object, 2);
        assert_eq!(t.lookup(Handle(0)).unwrap_err(), STATUS_INVALID_HANDLE);
        assert_eq!(t.lookup(Handle(12)).unwrap_err(), STATUS_INVALID_HANDLE);
        assert_eq!(
            t.lookup(Handle(0x1000_0000)).unwrap_err(),
            STATUS_INVALID_HANDLE
        );
    }

    #[test]
    fn close_and_reuse_most_recent_first() {
        let mut t = HandleTable::new();
        let hs: Vec<_> = (0..5).map(|i| t.create(entry(i)).unwrap()).collect();
        t.close(hs[1]).unwrap();
        t.close(hs[3]).unwrap();
        assert_eq!(t.close(hs[3]).unwrap_err(), STATUS_INVALID_HANDLE);
        assert_eq!(t.count(), 3);
        assert_eq!(t.create(entry(9)).unwrap(), hs[3]);
        assert_eq!(t.create(entry(9)).unwrap(), hs[1]);
        assert_eq!(t.create(entry(9)).unwrap(), Handle(24));
    }

    #[test]
    fn protect_from_close() {
        let mut t = HandleTable::new();
        let h = t
            .create(HandleEntry {
                object: 1,
                granted_access: 1,
                attributes: HANDLE_PROTECT_FROM_CLOSE,
            })
            .unwrap();
        assert_eq!(t.close(h).unwrap_err(), STATUS_HANDLE_NOT_CLOSABLE);
        t.set_attributes(h, 0).unwrap();
        assert_eq!(t.close(h).unwrap().object, 1);
    }

    #[test]
    fn grows_past_two_levels() {
        let mut t = HandleTable::new();
        assert_eq!(t.levels(), 1);
        let n = LOWLEVEL_COUNT * MIDLEVEL_COUNT + 1000;
        let mut last = Handle(0);
        for i in 0..n {
            last = t.create(entry(i as u32)).unwrap();
            if i == LOWLEVEL_COUNT {
                assert_eq!(t.levels(), 2);
            }
        }
        assert_eq!(t.levels(), 3);
        assert_eq!(last, Handle(n as u64 * 4));
        assert_eq!(t.lookup(last).unwrap().object, n as u32 - 1);
        assert_eq!(t.lookup(Handle(4 * 300)).unwrap().object, 299);
        assert_eq!(t.count(), n);
        for (k, (h, e)) in t.iter().enumerate().take(1000) {
            assert_eq!(h, Handle((k as u64 + 1) * 4));
            assert_eq!(e.object, k as u32);
        }
    }

    #[test]
    fn inheritable_handles_keep_their_values() {
        let mut t = HandleTable::new();
        let a = t.create(entry(1)).unwrap();
        let b = t
            .create(HandleEntry {
                object: 2,
                granted_access: 3,
                attributes: HANDLE_INHERIT,
            })
            .unwrap();
        let c = t
            .create(HandleEntry {
                object: 3,
                granted_access: 3,
                attributes: HANDLE_INHERIT,
            })
            .unwrap();
        let mut child = t.duplicate_inheritable().unwrap();
        assert_eq!(child.count(), 2);
        assert_eq!(child.lookup(a).unwrap_err(), STATUS_INVALID_HANDLE);
        assert_eq!(child.lookup(b).unwrap().object, 2);
        assert_eq!(child.lookup(c).unwrap().object, 3);
        // The child's next handle reuses the hole left by the non-inherited one.
        assert_eq!(child.create(entry(7)).unwrap(), a);
    }

    mod model {
        use super::*;
        use proptest::prelude::*;
        extern crate std;
        use std::collections::BTreeMap;

        proptest! {
            #[test]
            fn matches_a_map(ops in proptest::collection::vec((0u8..3, 0usize..64), 1..400)) {
                let mut t = HandleTable::new();
                let mut model: BTreeMap<Handle, u32> = BTreeMap::new();
                let mut live: Vec<Handle> = Vec::new();
                for (n, (op, pick)) in ops.into_iter().enumerate() {
                    match op {
                        0 | 1 => {
                            let h = t.create(entry(n as u32)).unwrap();
                            prop_assert!(h.0 % 4 == 0 && h.0 != 0);
                            prop_assert!(model.insert(h, n as u32).is_none());
                            live.push(h);
                        }
                        _ if !live.is_empty() => {
                            let h = live.swap_remove(pick % live.len());
                            prop_assert_eq!(t.close(h).unwrap().object, model.remove(&h).unwrap());
                        }
                        _ => {}
                    }
                    prop_assert_eq!(t.count(), model.len());
                }
                for (h, o) in &model {
                    prop_assert_eq!(t.lookup(*h).unwrap().object, *o);
                }
                prop_assert_eq!(t.iter().count(), model.len());
            }
        }
    }
}
