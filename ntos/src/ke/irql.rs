//! IRQL and spin locks (*Windows Internals*, Part 2, ch. 8, "Interrupt
//! request levels" and "Low-IRQL synchronization"/"Spinlocks").
//!
//! On x64 the IRQL *is* CR8, the APIC task-priority class: raising it masks
//! every vector whose `vector >> 4` is at or below the new level, and
//! lowering it lets pending ones (including the DPC and APC software
//! interrupts, which ntrs requests as self-IPIs) fire at once.

use super::{DISPATCH_LEVEL, HIGH_LEVEL};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

/// `SYNCH_LEVEL` on x64: the dispatcher lock's level.
pub const SYNCH_LEVEL: u8 = 12;

fn write_cr8(v: u8) {
    // SAFETY: CR8 only changes which interrupt classes are masked.
    unsafe { core::arch::asm!("mov cr8, {}", in(reg) v as u64, options(nomem, nostack)) };
    if super::gs_ready() {
        // SAFETY: GS:[0x50] is KPCR.Irql of this processor, an AtomicU8 that
        // other processors load (kd); a byte store is atomic on x86. CR8
        // stays authoritative.
        unsafe { core::arch::asm!("mov gs:[0x50], {}", in(reg_byte) v, options(nostack)) };
    }
}

/// `KeRaiseIrql`: raises to `new` and returns the old IRQL; raising to a lower
/// level is IRQL_NOT_GREATER_OR_EQUAL.
pub fn ke_raise_irql(new: u8) -> u8 {
    let old = super::irql();
    if new < old {
        super::bugcheck::ke_bug_check_ex(
            nt::bugcheck::IRQL_NOT_GREATER_OR_EQUAL,
            old as u64,
            new as u64,
            0,
            0,
        );
    }
    write_cr8(new);
    old
}

/// `KeLowerIrql`: lowering to a higher level is IRQL_NOT_LESS_OR_EQUAL.
pub fn ke_lower_irql(new: u8) {
    let cur = super::irql();
    if new > cur || new > HIGH_LEVEL {
        super::bugcheck::ke_bug_check_ex(
            nt::bugcheck::IRQL_NOT_LESS_OR_EQUAL,
            cur as u64,
            new as u64,
            0,
            0,
        );
    }
    write_cr8(new);
}

/// Sets CR8 without the checks (trap and context-switch paths restore a saved level).
pub fn set_irql(v: u8) {
    write_cr8(v);
}

/// `KSPIN_LOCK`: zero when free, the owner's processor number + 1 when held
/// (so `!locks` and deadlock checks can name the owner).
#[repr(transparent)]
#[derive(Default)]
pub struct KSpinLock(AtomicU64);

impl KSpinLock {
    pub const fn new() -> Self {
        KSpinLock(AtomicU64::new(0))
    }

    /// `KeAcquireSpinLockAtDpcLevel`: the caller is already at >= DISPATCH_LEVEL.
    pub fn acquire_at_dpc_level(&self) {
        let me = super::current_processor_number() as u64 + 1;
        if self.0.load(Ordering::Relaxed) == me {
            super::bugcheck::ke_bug_check_ex(
                nt::bugcheck::SPIN_LOCK_ALREADY_OWNED,
                self as *const _ as u64,
                0,
                0,
                0,
            );
        }
        loop {
            if self
                .0
                .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
            while self.0.load(Ordering::Relaxed) != 0 {
                core::hint::spin_loop();
            }
        }
    }

    /// `KeTryToAcquireSpinLockAtDpcLevel`.
    pub fn try_acquire_at_dpc_level(&self) -> bool {
        let me = super::current_processor_number() as u64 + 1;
        self.0
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// `KeReleaseSpinLockFromDpcLevel`; releasing a free lock is SPIN_LOCK_NOT_OWNED.
    pub fn release_from_dpc_level(&self) {
        if self.0.swap(0, Ordering::Release) == 0 {
            super::bugcheck::ke_bug_check_ex(
                nt::bugcheck::SPIN_LOCK_NOT_OWNED,
                self as *const _ as u64,
                0,
                0,
                0,
            );
        }
    }

    /// `KeAcquireSpinLock`: raises to DISPATCH_LEVEL and returns the old IRQL.
    pub fn acquire(&self) -> u8 {
        let old = ke_raise_irql(DISPATCH_LEVEL.max(super::irql()));
        self.acquire_at_dpc_level();
        old
    }

    /// `KeAcquireSpinLockRaiseToSynch` style: raise to `level` first.
    pub fn acquire_raise(&self, level: u8) -> u8 {
        let old = ke_raise_irql(level.max(super::irql()));
        self.acquire_at_dpc_level();
        old
    }

    /// `KeReleaseSpinLock`.
    pub fn release(&self, old_irql: u8) {
        self.release_from_dpc_level();
        ke_lower_irql(old_irql);
    }

    /// Owner processor + 1, or 0 (for `!locks`).
    pub fn owner(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Data guarded by a spin lock taken at `LEVEL` (a Rust wrapper over `KSPIN_LOCK`).
pub struct SpinLocked<T, const LEVEL: u8> {
    lock: KSpinLock,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached with the lock held.
unsafe impl<T: Send, const L: u8> Sync for SpinLocked<T, L> {}

impl<T, const LEVEL: u8> SpinLocked<T, LEVEL> {
    pub const fn new(v: T) -> Self {
        SpinLocked {
            lock: KSpinLock::new(),
            data: UnsafeCell::new(v),
        }
    }

    /// Raises to `LEVEL`, takes the lock, runs `f`, releases and lowers.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut g = self.lock();
        f(&mut g)
    }

    /// Raises to `LEVEL` and takes the lock; the guard releases it and
    /// returns to the previous IRQL when dropped.
    pub fn lock(&self) -> SpinGuard<'_, T, LEVEL> {
        let old = self.lock.acquire_raise(LEVEL);
        SpinGuard {
            owner: self,
            old_irql: old,
            _not_send: core::marker::PhantomData,
        }
    }

    /// Like [`SpinLocked::lock`], but gives up (returning None, IRQL
    /// unchanged) when the lock is held by this processor or stays held
    /// for `spins` attempts — for the debugger, which must not deadlock on
    /// a lock a frozen or interrupted processor holds.
    pub fn try_lock(&self, spins: u32) -> Option<SpinGuard<'_, T, LEVEL>> {
        let me = super::current_processor_number() as u64 + 1;
        if self.lock.owner() == me {
            return None;
        }
        let old = ke_raise_irql(LEVEL.max(super::irql()));
        for _ in 0..spins.max(1) {
            if self.lock.try_acquire_at_dpc_level() {
                return Some(SpinGuard {
                    owner: self,
                    old_irql: old,
                    _not_send: core::marker::PhantomData,
                });
            }
            core::hint::spin_loop();
        }
        ke_lower_irql(old);
        None
    }

    /// The raw lock (the dispatcher keeps it held across a context switch).
    pub fn raw(&self) -> &KSpinLock {
        &self.lock
    }

    /// The data, for a caller that holds `raw()`.
    ///
    /// # Safety
    /// The caller must hold the lock and not alias the reference.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_locked(&self) -> &mut T {
        // SAFETY: per the contract above.
        unsafe { &mut *self.data.get() }
    }
}

/// A held [`SpinLocked`]: derefs to the data; dropping it releases the lock
/// and lowers IRQL to where `lock` found it. Not `Send`: a spin lock is
/// released on the processor (and by the thread) that took it.
pub struct SpinGuard<'a, T, const LEVEL: u8> {
    owner: &'a SpinLocked<T, LEVEL>,
    old_irql: u8,
    _not_send: core::marker::PhantomData<*const ()>,
}

impl<T, const LEVEL: u8> SpinGuard<'_, T, LEVEL> {
    /// The IRQL the lock was taken at.
    pub fn old_irql(&self) -> u8 {
        self.old_irql
    }
}

impl<T, const LEVEL: u8> core::ops::Deref for SpinGuard<'_, T, LEVEL> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this processor holds the lock,
        // and the returned reference borrows the guard.
        unsafe { &*self.owner.data.get() }
    }
}

impl<T, const LEVEL: u8> core::ops::DerefMut for SpinGuard<'_, T, LEVEL> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; the mutable borrow of the guard makes it unique.
        unsafe { &mut *self.owner.data.get() }
    }
}

impl<T, const LEVEL: u8> Drop for SpinGuard<'_, T, LEVEL> {
    fn drop(&mut self) {
        self.owner.lock.release(self.old_irql);
    }
}

/// `KSPIN_LOCK_QUEUE`: one waiter's node in a queued (MCS) spin lock.
#[repr(C)]
pub struct KSpinLockQueue {
    next: core::sync::atomic::AtomicPtr<KSpinLockQueue>,
    locked: core::sync::atomic::AtomicBool,
}

/// `KLOCK_QUEUE_HANDLE`: lives on the acquirer's stack.
#[repr(C)]
pub struct KLockQueueHandle {
    pub lock_queue: KSpinLockQueue,
    pub old_irql: u8,
}

impl KLockQueueHandle {
    pub const fn new() -> Self {
        KLockQueueHandle {
            lock_queue: KSpinLockQueue {
                next: core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()),
                locked: core::sync::atomic::AtomicBool::new(false),
            },
            old_irql: 0,
        }
    }
}

impl Default for KLockQueueHandle {
    fn default() -> Self {
        Self::new()
    }
}

/// A queued spin lock: the lock word points at the last waiter, and each
/// waiter spins on its own node, so processors acquire in FIFO order and
/// never hammer one shared cache line (*Windows Internals*, Part 2, ch. 8,
/// "Queued spinlocks").
#[derive(Default)]
pub struct KQueuedSpinLock {
    tail: core::sync::atomic::AtomicPtr<KSpinLockQueue>,
}

impl KQueuedSpinLock {
    pub const fn new() -> Self {
        KQueuedSpinLock {
            tail: core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// `KeAcquireInStackQueuedSpinLock`: raises to DISPATCH_LEVEL; `handle`
    /// must stay where it is until the matching release.
    pub fn acquire(&self, handle: &mut KLockQueueHandle) {
        handle.old_irql = ke_raise_irql(DISPATCH_LEVEL.max(super::irql()));
        self.acquire_at_dpc_level(handle);
    }

    /// `KeAcquireInStackQueuedSpinLockAtDpcLevel`.
    pub fn acquire_at_dpc_level(&self, handle: &mut KLockQueueHandle) {
        let node = &handle.lock_queue as *const KSpinLockQueue as *mut KSpinLockQueue;
        handle
            .lock_queue
            .next
            .store(core::ptr::null_mut(), Ordering::Relaxed);
        handle.lock_queue.locked.store(true, Ordering::Relaxed);
        let prev = self.tail.swap(node, Ordering::AcqRel);
        if !prev.is_null() {
            // SAFETY: `prev` is a live handle: its owner cannot release (and
            // return from its frame) before handing the lock to its successor.
            unsafe { (*prev).next.store(node, Ordering::Release) };
            while handle.lock_queue.locked.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
        }
    }

    /// `KeReleaseInStackQueuedSpinLockFromDpcLevel`.
    pub fn release_from_dpc_level(&self, handle: &mut KLockQueueHandle) {
        let node = &handle.lock_queue as *const KSpinLockQueue as *mut KSpinLockQueue;
        let mut next = handle.lock_queue.next.load(Ordering::Acquire);
        if next.is_null() {
            if self
                .tail
                .compare_exchange(
                    node,
                    core::ptr::null_mut(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                return;
            }
            // A successor is linking itself in.
            loop {
                next = handle.lock_queue.next.load(Ordering::Acquire);
                if !next.is_null() {
                    break;
                }
                core::hint::spin_loop();
            }
        }
        // SAFETY: `next` is the successor's live node, spinning on `locked`.
        unsafe { (*next).locked.store(false, Ordering::Release) };
    }

    /// `KeReleaseInStackQueuedSpinLock`.
    pub fn release(&self, handle: &mut KLockQueueHandle) {
        self.release_from_dpc_level(handle);
        ke_lower_irql(handle.old_irql);
    }

    /// Whether someone holds it.
    pub fn is_held(&self) -> bool {
        !self.tail.load(Ordering::Relaxed).is_null()
    }
}

/// `KeAcquireSpinLockRaiseToDpc` (what `KeAcquireSpinLock` expands to on
/// x64), exported for drivers: raises to DISPATCH_LEVEL, takes the lock and
/// returns the old IRQL.
///
/// # Safety
/// `lock` points to a `KSPIN_LOCK` (a pointer-sized word) that stays valid.
#[no_mangle]
pub unsafe extern "system" fn KeAcquireSpinLockRaiseToDpc(lock: *mut u64) -> u8 {
    // SAFETY: KSpinLock is repr(transparent) over an AtomicU64, the layout
    // of KSPIN_LOCK; the caller passes a valid one.
    unsafe { &*(lock as *const KSpinLock) }.acquire()
}

/// `KeReleaseSpinLock`, exported for drivers.
///
/// # Safety
/// `lock` points to a `KSPIN_LOCK` this processor holds.
#[no_mangle]
pub unsafe extern "system" fn KeReleaseSpinLock(lock: *mut u64, old_irql: u8) {
    // SAFETY: as in KeAcquireSpinLockRaiseToDpc.
    unsafe { &*(lock as *const KSpinLock) }.release(old_irql)
}

/// `KeAcquireSpinLockAtDpcLevel`, exported for drivers.
///
/// # Safety
/// `lock` points to a valid `KSPIN_LOCK`; the caller is at DISPATCH_LEVEL.
#[no_mangle]
pub unsafe extern "system" fn KeAcquireSpinLockAtDpcLevel(lock: *mut u64) {
    // SAFETY: as in KeAcquireSpinLockRaiseToDpc.
    unsafe { &*(lock as *const KSpinLock) }.acquire_at_dpc_level()
}

/// `KeReleaseSpinLockFromDpcLevel`, exported for drivers.
///
/// # Safety
/// `lock` points to a `KSPIN_LOCK` this processor holds.
#[no_mangle]
pub unsafe extern "system" fn KeReleaseSpinLockFromDpcLevel(lock: *mut u64) {
    // SAFETY: as in KeAcquireSpinLockRaiseToDpc.
    unsafe { &*(lock as *const KSpinLock) }.release_from_dpc_level()
}
