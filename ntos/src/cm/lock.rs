//! The registry lock (`CmpRegistryLock`, *Windows Internals* Part 2, ch. 10, "Registry
//! internals"): registry work runs at PASSIVE_LEVEL under an executive push lock, inside a
//! critical region (normal kernel APCs off, as `CmpLockRegistry` does), never under a spin lock.
//! Readers share it; changes, opens (which may add KCBs) and flushes take it exclusively. A
//! waiter blocks in `KeWaitForSingleObject`, so the holder may itself wait or be preempted.

use crate::ex::sync::PushLock;
use crate::ke::apc::{ke_enter_critical_region, ke_leave_critical_region};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

/// The IRQL the last registry-lock holder ran at (read by the boot test that proves registry
/// services run at PASSIVE_LEVEL).
pub static LAST_HOLDER_IRQL: AtomicU8 = AtomicU8::new(0xFF);

/// Data guarded by a push lock taken at PASSIVE_LEVEL.
pub struct RegistryLock<T> {
    lock: PushLock,
    /// Holders: the exclusive owner counts `EXCLUSIVE`, each shared owner 1 (for kd).
    holders: AtomicU32,
    data: UnsafeCell<T>,
}

const EXCLUSIVE: u32 = 1 << 31;

// SAFETY: the data is reached only through the guards: `Shared` (many readers, `&T`, needs
// `T: Sync`) while the push lock is held shared, `Exclusive` (`&mut T`, needs `T: Send`) while it
// is held exclusively.
unsafe impl<T: Send + Sync> Sync for RegistryLock<T> {}

impl<T> RegistryLock<T> {
    /// A lock around `v`.
    pub const fn new(v: T) -> Self {
        RegistryLock {
            lock: PushLock::new(),
            holders: AtomicU32::new(0),
            data: UnsafeCell::new(v),
        }
    }

    /// Whether some thread holds the lock (kd refuses to wait for it: after a bugcheck the
    /// holder may be frozen on another processor).
    pub fn is_held(&self) -> bool {
        self.holders.load(Ordering::Acquire) != 0
    }

    /// `CmpLockRegistry`: shared access.
    pub fn shared(&self) -> Shared<'_, T> {
        ke_enter_critical_region();
        self.lock.acquire_shared();
        self.holders.fetch_add(1, Ordering::AcqRel);
        LAST_HOLDER_IRQL.store(crate::ke::irql(), Ordering::Relaxed);
        Shared { lock: self }
    }

    /// `CmpLockRegistryExclusive`: exclusive access.
    pub fn exclusive(&self) -> Exclusive<'_, T> {
        ke_enter_critical_region();
        self.lock.acquire_exclusive();
        self.holders.fetch_add(EXCLUSIVE, Ordering::AcqRel);
        LAST_HOLDER_IRQL.store(crate::ke::irql(), Ordering::Relaxed);
        Exclusive { lock: self }
    }
}

/// Shared access to the registry; released on drop.
pub struct Shared<'a, T> {
    lock: &'a RegistryLock<T>,
}

impl<T> Deref for Shared<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the push lock is held shared for the guard's lifetime, so no `Exclusive`
        // guard (the only source of `&mut T`) exists.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Drop for Shared<'_, T> {
    fn drop(&mut self) {
        self.lock.holders.fetch_sub(1, Ordering::AcqRel);
        self.lock.lock.release_shared();
        ke_leave_critical_region();
    }
}

/// Exclusive access to the registry; released on drop.
pub struct Exclusive<'a, T> {
    lock: &'a RegistryLock<T>,
}

impl<T> Deref for Exclusive<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the push lock is held exclusively for the guard's lifetime.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for Exclusive<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the push lock is held exclusively for the guard's lifetime, and the guard is
        // borrowed mutably, so this is the only reference.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for Exclusive<'_, T> {
    fn drop(&mut self) {
        self.lock.holders.fetch_sub(EXCLUSIVE, Ordering::AcqRel);
        self.lock.lock.release_exclusive();
        ke_leave_critical_region();
    }
}
