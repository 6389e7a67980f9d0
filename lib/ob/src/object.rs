//! The counted part of `OBJECT_HEADER` (*Windows Internals*, Part 2, ch. 8,
//! "Object headers and bodies" and "Object retention"): the pointer count,
//! the handle count, the type index and the flags, in a stable table indexed
//! by object id that every processor reads and updates with atomic
//! operations and no lock, as NT's `ObReferenceObject` /
//! `ObDereferenceObject` and `ObpIncrementHandleCount` do.
//!
//! Rules the callers keep (as in NT):
//! - `reference` and `open_handle` need a reference the caller already
//!   holds (or a locked handle entry that holds one): a count at zero is
//!   never raised again, so an object whose count reached zero stays dead
//!   until its id is reused by a new object.
//! - Code that finds an object by name (under the namespace's lock) uses
//!   `reference_if_alive`, which refuses a dying object.
//! - The processor whose `dereference` returns `true` deletes the object
//!   (the namespace's `object_dead`), once.

use crate::namespace::{ObjectId, TypeIndex};
use crate::paged::PagedArray;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use nt::status::*;
use nt::NtStatus;

/// The object is linked into a directory (has a name).
pub const FLAG_NAMED: u32 = 1;
/// `OBJ_PERMANENT`: keeps its name without handles.
pub const FLAG_PERMANENT: u32 = 2;

/// One object's counted header fields (32 bytes).
#[derive(Default)]
pub struct HeaderSlot {
    pointer_count: AtomicU64,
    handle_count: AtomicU64,
    type_index: AtomicU32,
    flags: AtomicU32,
    _reserved: u64,
}

impl HeaderSlot {
    /// `TypeIndex`.
    #[inline]
    pub fn type_index(&self) -> TypeIndex {
        self.type_index.load(Ordering::Relaxed) as TypeIndex
    }

    /// `ObReferenceObject` (the caller holds a reference already).
    #[inline]
    pub fn reference(&self) {
        self.pointer_count.fetch_add(1, Ordering::Relaxed);
    }

    /// `ObDereferenceObject`: `Ok(true)` for the last reference.
    #[inline]
    pub fn dereference(&self) -> Result<bool, NtStatus> {
        let mut c = self.pointer_count.load(Ordering::Relaxed);
        loop {
            if c == 0 {
                return Err(STATUS_INVALID_PARAMETER);
            }
            match self.pointer_count.compare_exchange_weak(
                c,
                c - 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(c == 1),
                Err(now) => c = now,
            }
        }
    }
}

/// Objects per table page (4096 / 32).
pub const SLOTS_PER_PAGE: usize = 128;

/// What closing a handle left to do (`ObpDecrementHandleCount`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleClosed {
    /// The last handle of a named temporary object went: its name must be
    /// removed under the namespace lock (`ObpDeleteNameCheck`).
    pub name_check: bool,
}

/// The table of counted object headers, indexed by `ObjectId`.
pub struct ObjectHeaders {
    slots: PagedArray<HeaderSlot, SLOTS_PER_PAGE>,
}

impl Default for ObjectHeaders {
    fn default() -> Self {
        Self::new()
    }
}

impl ObjectHeaders {
    pub const fn new() -> Self {
        ObjectHeaders {
            slots: PagedArray::new(),
        }
    }

    #[inline]
    fn slot(&self, id: ObjectId) -> Result<&HeaderSlot, NtStatus> {
        self.slots.get(id).ok_or(STATUS_INVALID_PARAMETER)
    }

    /// The counted header of object `id` (one lookup for several uses on
    /// a hot path).
    #[inline]
    pub fn header(&self, id: ObjectId) -> Option<&HeaderSlot> {
        self.slots.get(id)
    }

    /// Prepares the slot of a new object (one pointer reference, the
    /// creator's). The namespace calls it under its lock, before anyone
    /// else can know the id.
    pub fn init(&self, id: ObjectId, type_index: TypeIndex, flags: u32) -> Result<(), NtStatus> {
        let s = self.slots.get_or_alloc(id)?;
        s.type_index.store(type_index as u32, Ordering::Relaxed);
        s.flags.store(flags, Ordering::Relaxed);
        s.handle_count.store(0, Ordering::Relaxed);
        s.pointer_count.store(1, Ordering::Release);
        Ok(())
    }

    /// `ObReferenceObject`: one more pointer reference to an object the
    /// caller holds a reference to.
    #[inline]
    pub fn reference(&self, id: ObjectId) -> Result<(), NtStatus> {
        self.slot(id)?.reference();
        Ok(())
    }

    /// A reference to an object found by name: refused (`false`) if its
    /// pointer count already reached zero (it is being deleted).
    pub fn reference_if_alive(&self, id: ObjectId) -> bool {
        let Ok(s) = self.slot(id) else { return false };
        let mut c = s.pointer_count.load(Ordering::Relaxed);
        loop {
            if c == 0 {
                return false;
            }
            match s.pointer_count.compare_exchange_weak(
                c,
                c + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
    }

    /// `ObDereferenceObject`: `Ok(true)` when this was the last reference
    /// (the caller deletes the object). STATUS_INVALID_PARAMETER for a
    /// count already at zero (the count is left alone).
    #[inline]
    pub fn dereference(&self, id: ObjectId) -> Result<bool, NtStatus> {
        self.slot(id)?.dereference()
    }

    /// `ObpIncrementHandleCount`: a new handle (one more handle and one more
    /// pointer reference); the caller holds a reference.
    #[inline]
    pub fn open_handle(&self, id: ObjectId) -> Result<(), NtStatus> {
        let s = self.slot(id)?;
        s.pointer_count.fetch_add(1, Ordering::Relaxed);
        s.handle_count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The handle-count half of `ObpDecrementHandleCount`. The handle's
    /// pointer reference is still held; the caller drops it with
    /// `dereference` after any name check. STATUS_INVALID_HANDLE for a
    /// handle count already at zero.
    #[inline]
    pub fn close_handle(&self, id: ObjectId) -> Result<HandleClosed, NtStatus> {
        let s = self.slot(id)?;
        let mut c = s.handle_count.load(Ordering::Relaxed);
        loop {
            if c == 0 {
                return Err(STATUS_INVALID_HANDLE);
            }
            match s.handle_count.compare_exchange_weak(
                c,
                c - 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => c = now,
            }
        }
        let flags = s.flags.load(Ordering::Acquire);
        Ok(HandleClosed {
            name_check: c == 1 && flags & FLAG_NAMED != 0 && flags & FLAG_PERMANENT == 0,
        })
    }

    /// `PointerCount`.
    pub fn pointer_count(&self, id: ObjectId) -> u64 {
        self.slot(id)
            .map_or(0, |s| s.pointer_count.load(Ordering::Relaxed))
    }

    /// `HandleCount`.
    pub fn handle_count(&self, id: ObjectId) -> u64 {
        self.slot(id)
            .map_or(0, |s| s.handle_count.load(Ordering::Relaxed))
    }

    /// `TypeIndex` of a live object.
    #[inline]
    pub fn type_index(&self, id: ObjectId) -> Option<TypeIndex> {
        self.slot(id).ok().map(|s| s.type_index())
    }

    /// `FLAG_*` bits.
    pub fn flags(&self, id: ObjectId) -> u32 {
        self.slot(id).map_or(0, |s| s.flags.load(Ordering::Relaxed))
    }

    /// Sets or clears flag bits (the namespace, under its lock).
    pub fn set_flag(&self, id: ObjectId, flag: u32, on: bool) {
        if let Ok(s) = self.slot(id) {
            if on {
                s.flags.fetch_or(flag, Ordering::Release);
            } else {
                s.flags.fetch_and(!flag, Ordering::Release);
            }
        }
    }

    /// The address of an object's header (what kd shows as the object).
    pub fn address_of(&self, id: ObjectId) -> Option<usize> {
        self.slot(id).ok().map(|s| s as *const HeaderSlot as usize)
    }

    /// The object whose header is at `addr`, if any.
    pub fn id_of_address(&self, addr: usize) -> Option<ObjectId> {
        self.slots.index_of_address(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_nt_rules() {
        let h = ObjectHeaders::new();
        h.init(7, 3, FLAG_NAMED).unwrap();
        assert_eq!(h.type_index(7), Some(3));
        assert_eq!(h.pointer_count(7), 1);
        h.open_handle(7).unwrap();
        assert_eq!((h.pointer_count(7), h.handle_count(7)), (2, 1));
        // The last handle of a named temporary object asks for a name check.
        assert_eq!(h.close_handle(7), Ok(HandleClosed { name_check: true }));
        assert_eq!(h.close_handle(7), Err(STATUS_INVALID_HANDLE));
        assert_eq!(h.dereference(7), Ok(false));
        assert!(h.reference_if_alive(7));
        assert_eq!(h.dereference(7), Ok(false));
        assert_eq!(h.dereference(7), Ok(true));
        // Dead stays dead.
        assert!(!h.reference_if_alive(7));
        assert_eq!(h.dereference(7), Err(STATUS_INVALID_PARAMETER));
        assert_eq!(h.pointer_count(7), 0);
        // A permanent object keeps its name.
        h.init(8, 3, FLAG_NAMED | FLAG_PERMANENT).unwrap();
        h.open_handle(8).unwrap();
        assert_eq!(h.close_handle(8), Ok(HandleClosed { name_check: false }));
        let a = h.address_of(8).unwrap();
        assert_eq!(h.id_of_address(a), Some(8));
        assert_eq!(h.dereference(99), Err(STATUS_INVALID_PARAMETER));
    }
}
