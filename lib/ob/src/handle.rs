//! Handle tables (`HANDLE_TABLE`) as NT builds them (*Windows Internals*,
//! Part 2, ch. 8, "Object handles and the process handle table"): 16-byte
//! `HANDLE_TABLE_ENTRY`s in 4 KiB pages of 256, under mid- and top-level
//! pages of 512 pointers (`PagedArray`). Handle values are multiples of 4
//! (the low two bits are tag bits and ignored on lookup), value 0 is never
//! handed out, and freed entries are reused last-in, first-out.
//!
//! The table takes no lock. Each entry is two atomic words: the object with
//! the attributes and a lock bit (`HANDLE_TABLE_ENTRY.ObjectPointerBits`
//! with `Unlocked`), and the granted access (`GrantedAccessBits`), which
//! holds the next free index while the entry is free. Referencing by handle
//! locks only its entry (`ExpLockHandleTableEntry`) so that a concurrent
//! close cannot drop the handle's object reference before the caller has
//! taken its own; create and close pop and push a free list whose head
//! carries a sequence number against ABA (`HANDLE_TABLE.FirstFree`).
//! The caller keeps the holder of an entry lock from being preempted by a
//! spinner on the same processor (the kernel raises to DISPATCH_LEVEL).

use crate::paged::PagedArray;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use nt::status::*;
use nt::NtStatus;

/// Entries in one level-0 table page (4096 / 16).
pub const LOWLEVEL_COUNT: usize = 256;
/// Pointers in one mid/top-level page (4096 / 8).
pub const MIDLEVEL_COUNT: usize = crate::paged::FANOUT;
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
    #[inline]
    fn index(self) -> usize {
        (self.0 >> 2) as usize
    }
    #[inline]
    fn from_index(i: usize) -> Self {
        Handle((i as u64) << 2)
    }
}

/// What a handle entry can point to: a value that fits the entry's 56
/// object bits (an object id or an aligned address shifted down).
pub trait HandleObject: Copy {
    fn to_bits(self) -> u64;
    fn from_bits(bits: u64) -> Self;
}

impl HandleObject for u64 {
    #[inline]
    fn to_bits(self) -> u64 {
        self
    }
    #[inline]
    fn from_bits(bits: u64) -> Self {
        bits
    }
}
impl HandleObject for usize {
    #[inline]
    fn to_bits(self) -> u64 {
        self as u64
    }
    #[inline]
    fn from_bits(bits: u64) -> Self {
        bits as usize
    }
}
impl HandleObject for u32 {
    #[inline]
    fn to_bits(self) -> u64 {
        self as u64
    }
    #[inline]
    fn from_bits(bits: u64) -> Self {
        bits as u32
    }
}

/// `HANDLE_TABLE_ENTRY`: the object, the access granted at open, attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleEntry<O> {
    pub object: O,
    pub granted_access: u32,
    pub attributes: u8,
}

/// Entry word: lock bit, three attribute bits, in-use bit, object bits.
const LOCKED: u64 = 1;
const ATTR_SHIFT: u32 = 1;
const ATTR_MASK: u64 = 0x7;
const IN_USE: u64 = 1 << 4;
const OBJECT_SHIFT: u32 = 8;
/// The largest object value an entry holds.
pub const MAX_OBJECT: u64 = u64::MAX >> OBJECT_SHIFT;

/// One 16-byte entry.
#[derive(Default)]
pub struct Entry {
    /// 0 while free; else object bits, attributes, IN_USE and the lock bit.
    value: AtomicU64,
    /// The granted access while in use; the next free index while free.
    access: AtomicU64,
}

#[inline]
fn encode<O: HandleObject>(e: &HandleEntry<O>) -> u64 {
    (e.object.to_bits() << OBJECT_SHIFT)
        | ((e.attributes as u64 & ATTR_MASK) << ATTR_SHIFT)
        | IN_USE
}

#[inline]
fn decode<O: HandleObject>(value: u64, access: u64) -> HandleEntry<O> {
    HandleEntry {
        object: O::from_bits(value >> OBJECT_SHIFT),
        granted_access: access as u32,
        attributes: ((value >> ATTR_SHIFT) & ATTR_MASK) as u8,
    }
}

impl Entry {
    /// `ExpLockHandleTableEntry`: sets the lock bit of a used entry and
    /// returns its value (unlocked form); STATUS_INVALID_HANDLE if free.
    #[inline]
    fn lock(&self) -> Result<u64, NtStatus> {
        loop {
            let v = self.value.load(Ordering::Relaxed);
            if v == 0 {
                return Err(STATUS_INVALID_HANDLE);
            }
            if v & LOCKED != 0 {
                core::hint::spin_loop();
                continue;
            }
            if self
                .value
                .compare_exchange_weak(v, v | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(v);
            }
        }
    }

    /// `ExUnlockHandleTableEntry` (storing `v`, which may carry new attributes).
    #[inline]
    fn unlock(&self, v: u64) {
        self.value.store(v & !LOCKED, Ordering::Release);
    }
}

/// A process's (or the kernel's) handle table. Every operation takes
/// `&self`: the table is shared by all processors without a lock.
pub struct HandleTable<O> {
    entries: PagedArray<Entry, LOWLEVEL_COUNT>,
    /// Free-list head: sequence number (high 32 bits) and index (low 32; 0 = empty).
    first_free: AtomicU64,
    /// Next never-used index.
    next: AtomicUsize,
    count: AtomicUsize,
    _object: PhantomData<fn() -> O>,
}

impl<O: HandleObject> Default for HandleTable<O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<O: HandleObject> HandleTable<O> {
    /// `ExCreateHandleTable`: empty; index 0 is reserved, so the first
    /// handle is 4. Pages come with the first handles.
    pub const fn new() -> Self {
        HandleTable {
            entries: PagedArray::new(),
            first_free: AtomicU64::new(0),
            next: AtomicUsize::new(1),
            count: AtomicUsize::new(0),
            _object: PhantomData,
        }
    }

    /// Number of live handles (`HandleCount`).
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Entries the table has pages for.
    pub fn capacity(&self) -> usize {
        self.entries.pages() * LOWLEVEL_COUNT
    }

    /// The entry at index `i` (a valid handle's index).
    #[inline]
    fn entry(&self, h: Handle) -> Result<&Entry, NtStatus> {
        let i = h.index();
        if i == 0 {
            return Err(STATUS_INVALID_HANDLE);
        }
        self.entries.get(i).ok_or(STATUS_INVALID_HANDLE)
    }

    /// The address of a handle's entry (`!handle` prints it as `Entry:`).
    pub fn entry_address(&self, h: Handle) -> Option<usize> {
        self.entry(h).ok().map(|e| e as *const Entry as usize)
    }

    #[inline]
    fn pop_free(&self) -> Option<usize> {
        let mut head = self.first_free.load(Ordering::Acquire);
        loop {
            let i = (head & 0xFFFF_FFFF) as usize;
            if i == 0 {
                return None;
            }
            // The entry was used once, so its page exists. If another
            // processor pops it first, its link may be stale, but the
            // sequence number in the head has moved and the exchange fails.
            let next = self.entries.get(i)?.access.load(Ordering::Acquire) & 0xFFFF_FFFF;
            let new = (((head >> 32).wrapping_add(1)) << 32) | next;
            match self.first_free.compare_exchange_weak(
                head,
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(i),
                Err(h) => head = h,
            }
        }
    }

    #[inline]
    fn push_free(&self, i: usize, e: &Entry) {
        let mut head = self.first_free.load(Ordering::Acquire);
        loop {
            e.access.store(head & 0xFFFF_FFFF, Ordering::Release);
            let new = (((head >> 32).wrapping_add(1)) << 32) | i as u64;
            match self.first_free.compare_exchange_weak(
                head,
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// `ExCreateHandle`: stores an entry and returns its handle.
    /// STATUS_INSUFFICIENT_RESOURCES when the table is full or a page
    /// cannot be allocated; STATUS_INVALID_PARAMETER for an object value
    /// wider than an entry holds.
    #[inline]
    pub fn create(&self, entry: HandleEntry<O>) -> Result<Handle, NtStatus> {
        if entry.object.to_bits() > MAX_OBJECT {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let (i, e) = match self.pop_free() {
            Some(i) => (i, self.entries.get(i).ok_or(STATUS_INSUFFICIENT_RESOURCES)?),
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed);
                if i >= MAX_HANDLES {
                    self.next.fetch_sub(1, Ordering::Relaxed);
                    return Err(STATUS_INSUFFICIENT_RESOURCES);
                }
                (i, self.entries.get_or_alloc(i)?)
            }
        };
        e.access
            .store(entry.granted_access as u64, Ordering::Relaxed);
        e.value.store(encode(&entry), Ordering::Release);
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(Handle::from_index(i))
    }

    /// Runs `f` on a handle's entry with the entry locked
    /// (`ExMapHandleToPointer` ... `ExUnlockHandleTableEntry`): while `f`
    /// runs, the handle cannot be closed, so the object it names keeps the
    /// handle's reference. STATUS_INVALID_HANDLE for a free entry.
    #[inline]
    pub fn with_entry<R>(
        &self,
        h: Handle,
        f: impl FnOnce(&HandleEntry<O>) -> R,
    ) -> Result<R, NtStatus> {
        let e = self.entry(h)?;
        let v = e.lock()?;
        let r = f(&decode(v, e.access.load(Ordering::Relaxed)));
        e.unlock(v);
        Ok(r)
    }

    /// `ExMapHandleToPointer`: a copy of the entry for a handle, ignoring
    /// its tag bits.
    pub fn lookup(&self, h: Handle) -> Result<HandleEntry<O>, NtStatus> {
        self.with_entry(h, |e| *e)
    }

    /// Changes a handle's attributes (`ObSetHandleAttributes`).
    pub fn set_attributes(&self, h: Handle, attributes: u8) -> Result<(), NtStatus> {
        self.update_attributes(h, |_| attributes)
    }

    /// Changes a handle's attributes from their current value, with the
    /// entry locked.
    pub fn update_attributes(&self, h: Handle, f: impl FnOnce(u8) -> u8) -> Result<(), NtStatus> {
        let e = self.entry(h)?;
        let v = e.lock()?;
        let a = f(((v >> ATTR_SHIFT) & ATTR_MASK) as u8);
        let v = (v & !(ATTR_MASK << ATTR_SHIFT)) | ((a as u64 & ATTR_MASK) << ATTR_SHIFT);
        e.unlock(v);
        Ok(())
    }

    /// `ExDestroyHandle` as `NtClose` uses it, with the entry locked while
    /// `okay` (the type's `OkayToCloseProcedure`) decides: refuses protected
    /// handles and those `okay` refuses with STATUS_HANDLE_NOT_CLOSABLE;
    /// returns the entry so the caller drops its object reference.
    #[inline]
    pub fn close_if(
        &self,
        h: Handle,
        okay: impl FnOnce(&HandleEntry<O>) -> bool,
    ) -> Result<HandleEntry<O>, NtStatus> {
        let e = self.entry(h)?;
        let v = e.lock()?;
        let entry = decode(v, e.access.load(Ordering::Relaxed));
        if entry.attributes & HANDLE_PROTECT_FROM_CLOSE != 0 || !okay(&entry) {
            e.unlock(v);
            return Err(STATUS_HANDLE_NOT_CLOSABLE);
        }
        e.value.store(0, Ordering::Release);
        self.push_free(h.index(), e);
        self.count.fetch_sub(1, Ordering::Relaxed);
        Ok(entry)
    }

    /// [`close_if`](Self::close_if) with no type procedure.
    pub fn close(&self, h: Handle) -> Result<HandleEntry<O>, NtStatus> {
        self.close_if(h, |_| true)
    }

    /// Every live handle in index order (`ExEnumHandleTable`, used by
    /// `!handle`): a snapshot of each entry as it was when read.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, HandleEntry<O>)> + '_ {
        (1..self.next.load(Ordering::Acquire)).filter_map(move |i| {
            let e = self.entries.get(i)?;
            let v = e.value.load(Ordering::Acquire);
            (v != 0).then(|| {
                (
                    Handle::from_index(i),
                    decode(v, e.access.load(Ordering::Relaxed)),
                )
            })
        })
    }

    /// `ExDupHandleTable` for process creation: copies inheritable handles at
    /// the same values.
    pub fn duplicate_inheritable(&self) -> Result<HandleTable<O>, NtStatus> {
        let t = HandleTable::new();
        let next = self.next.load(Ordering::Acquire);
        let mut used: Vec<bool> = Vec::new();
        used.try_reserve_exact(next)
            .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        used.resize(next, false);
        for (h, e) in self.iter() {
            if e.attributes & HANDLE_INHERIT != 0 {
                let slot = t.entries.get_or_alloc(h.index())?;
                slot.access
                    .store(e.granted_access as u64, Ordering::Relaxed);
                slot.value.store(encode(&e), Ordering::Release);
                t.count.fetch_add(1, Ordering::Relaxed);
                used[h.index()] = true;
            }
        }
        t.next.store(next, Ordering::Relaxed);
        // Holes go on the free list lowest-first.
        for i in (1..next).rev() {
            if !used[i] {
                let e = t.entries.get_or_alloc(i)?;
                t.push_free(i, e);
            }
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline]
    fn entry(o: u32) -> HandleEntry<u32> {
        HandleEntry {
            object: o,
            granted_access: 0x1F0003,
            attributes: 0,
        }
    }

    #[test]
    fn handles_are_multiples_of_four_starting_at_four() {
        let t = HandleTable::new();
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
        let t = HandleTable::new();
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
        let t = HandleTable::<u32>::new();
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
        let t = HandleTable::new();
        assert_eq!(t.capacity(), 0);
        let n = LOWLEVEL_COUNT * MIDLEVEL_COUNT + 1000;
        let mut last = Handle(0);
        for i in 0..n {
            last = t.create(entry(i as u32)).unwrap();
            if i == LOWLEVEL_COUNT {
                assert_eq!(t.capacity(), 2 * LOWLEVEL_COUNT);
            }
        }
        // Past one mid-level page's worth: the second top-level slot is in use.
        assert_eq!(
            t.capacity(),
            (n + 1).div_ceil(LOWLEVEL_COUNT) * LOWLEVEL_COUNT
        );
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
        let t = HandleTable::new();
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
        let child = t.duplicate_inheritable().unwrap();
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
                let t = HandleTable::new();
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
