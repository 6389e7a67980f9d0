//! Device queues and `StartIo` (*Windows Internals* 7th ed., Part 1, ch. 6,
//! "Driver structure": a driver with a `DriverStartIo` routine lets the I/O
//! manager serialise its requests through the device's `KDEVICE_QUEUE`).
//!
//! - `KeInitializeDeviceQueue`, `KeInsertDeviceQueue`,
//!   `KeInsertByKeyDeviceQueue`, `KeRemoveDeviceQueue`,
//!   `KeRemoveByKeyDeviceQueue`, `KeRemoveEntryDeviceQueue`: `lib/io`'s
//!   `devqueue` under the queue's own spin lock (callers at DISPATCH_LEVEL,
//!   as in NT).
//! - `IoStartPacket(Device, Irp, Key, CancelFunction)`: at DISPATCH_LEVEL,
//!   with the cancel spin lock held when a cancel routine is given (which is
//!   set in the IRP first), the IRP's `Tail.Overlay.DeviceQueueEntry` is
//!   inserted (by key if `Key` is given). An idle device starts it at once:
//!   `CurrentIrp` = the IRP, the cancel lock is released, `DriverStartIo`
//!   runs. Otherwise it waits in the queue; if it was cancelled meanwhile,
//!   the cancel routine is called at once (NT's order).
//! - `IoStartNextPacket(Device, Cancelable)` /
//!   `IoStartNextPacketByKey(Device, Cancelable, Key)`: called by the driver
//!   (usually from its DPC) when the current request is done: `CurrentIrp`
//!   is cleared, the next queued IRP (by key) becomes current and goes to
//!   `DriverStartIo`; an empty queue goes idle.
//!
//! A driver's cancel routine for a queued IRP takes it out with
//! `KeRemoveEntryDeviceQueue` (if the IRP is not `CurrentIrp`) and
//! completes it. `IoSetStartIoAttributes` (deferred/non-cancelable
//! `StartIo`) is not implemented.

use crate::ke::irql::{ke_lower_irql, ke_raise_irql, KSpinLock};
use ::io::devqueue;
use core::ptr;
use wdk::*;

/// The queue's spin lock (`KDEVICE_QUEUE.Lock`, a `KSPIN_LOCK`).
///
/// # Safety
/// `q` must be an initialised device queue.
unsafe fn lock_of(q: *mut KDEVICE_QUEUE) -> &'static KSpinLock {
    // SAFETY: KSpinLock is repr(transparent) over a pointer-sized atomic,
    // the layout of KSPIN_LOCK; the queue outlives the caller's use.
    unsafe { &*(ptr::addr_of_mut!((*q).Lock) as *const KSpinLock) }
}

/// Runs `f` holding the queue's lock (the caller is at DISPATCH_LEVEL).
///
/// # Safety
/// `q` must be an initialised device queue.
unsafe fn locked<R>(q: *mut KDEVICE_QUEUE, f: impl FnOnce() -> R) -> R {
    // SAFETY: forwarded caller guarantee.
    let l = unsafe { lock_of(q) };
    l.acquire_at_dpc_level();
    let r = f();
    l.release_from_dpc_level();
    r
}

/// `KeInitializeDeviceQueue`.
///
/// # Safety
/// `q` must be writable.
#[no_mangle]
pub unsafe extern "system" fn KeInitializeDeviceQueue(q: *mut KDEVICE_QUEUE) {
    // SAFETY: forwarded caller guarantee.
    unsafe { devqueue::initialize(q) }
}

/// `KeInsertDeviceQueue`: false if the queue was idle (now busy; the
/// caller starts the entry), true if the entry was queued.
///
/// # Safety
/// `q` initialised, `e` on no queue; DISPATCH_LEVEL.
#[no_mangle]
pub unsafe extern "system" fn KeInsertDeviceQueue(
    q: *mut KDEVICE_QUEUE,
    e: *mut KDEVICE_QUEUE_ENTRY,
) -> BOOLEAN {
    // SAFETY: forwarded caller guarantees.
    unsafe { locked(q, || devqueue::insert(q, e)) as BOOLEAN }
}

/// `KeInsertByKeyDeviceQueue`.
///
/// # Safety
/// As [`KeInsertDeviceQueue`].
#[no_mangle]
pub unsafe extern "system" fn KeInsertByKeyDeviceQueue(
    q: *mut KDEVICE_QUEUE,
    e: *mut KDEVICE_QUEUE_ENTRY,
    key: u32,
) -> BOOLEAN {
    // SAFETY: forwarded caller guarantees.
    unsafe { locked(q, || devqueue::insert_by_key(q, e, key)) as BOOLEAN }
}

/// `KeRemoveDeviceQueue`.
///
/// # Safety
/// `q` initialised; DISPATCH_LEVEL.
#[no_mangle]
pub unsafe extern "system" fn KeRemoveDeviceQueue(
    q: *mut KDEVICE_QUEUE,
) -> *mut KDEVICE_QUEUE_ENTRY {
    // SAFETY: forwarded caller guarantees.
    unsafe { locked(q, || devqueue::remove(q)) }
}

/// `KeRemoveByKeyDeviceQueue`.
///
/// # Safety
/// `q` initialised; DISPATCH_LEVEL.
#[no_mangle]
pub unsafe extern "system" fn KeRemoveByKeyDeviceQueue(
    q: *mut KDEVICE_QUEUE,
    key: u32,
) -> *mut KDEVICE_QUEUE_ENTRY {
    // SAFETY: forwarded caller guarantees.
    unsafe { locked(q, || devqueue::remove_by_key(q, key)) }
}

/// `KeRemoveEntryDeviceQueue`: raises to DISPATCH_LEVEL itself, as NT's.
///
/// # Safety
/// `q` initialised; `e` an entry last inserted into `q`.
#[no_mangle]
pub unsafe extern "system" fn KeRemoveEntryDeviceQueue(
    q: *mut KDEVICE_QUEUE,
    e: *mut KDEVICE_QUEUE_ENTRY,
) -> BOOLEAN {
    let old = ke_raise_irql(crate::ke::DISPATCH_LEVEL);
    // SAFETY: forwarded caller guarantees.
    let r = unsafe { locked(q, || devqueue::remove_entry(q, e)) };
    ke_lower_irql(old);
    r as BOOLEAN
}

/// The IRP owning a device queue entry (`Tail.Overlay.DeviceQueueEntry`).
fn irp_of(e: *mut KDEVICE_QUEUE_ENTRY) -> *mut IRP {
    let off = core::mem::offset_of!(IRP, Tail);
    (e as usize - off) as *mut IRP
}

/// # Safety
/// `irp` a live IRP.
unsafe fn entry_of(irp: *mut IRP) -> *mut KDEVICE_QUEUE_ENTRY {
    // SAFETY: forwarded caller guarantee; the entry is the first field of
    // Tail.Overlay (offset asserted in wdk).
    unsafe { ptr::addr_of_mut!((*irp).Tail.Overlay.Queue.DeviceQueueEntry) }
}

/// # Safety
/// `dev` a live device whose driver has a `DriverStartIo`.
unsafe fn start_io(dev: *mut DEVICE_OBJECT, irp: *mut IRP) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        if let Some(f) = (*(*dev).DriverObject).DriverStartIo {
            f(dev, irp);
        }
    }
}

/// `IoStartPacket` (see the module comment).
///
/// # Safety
/// `dev` a live device whose driver has a `DriverStartIo`; `irp` at the
/// driver's location (the dispatch routine marked it pending); `key` null
/// or readable.
pub unsafe fn io_start_packet(
    dev: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    key: *const u32,
    cancel: Option<DRIVER_CANCEL>,
) {
    let old = ke_raise_irql(crate::ke::DISPATCH_LEVEL);
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let cancel_irql = if cancel.is_some() {
            let i = super::irp::io_acquire_cancel_spin_lock();
            (*irp).CancelRoutine = cancel;
            Some(i)
        } else {
            None
        };
        let q = ptr::addr_of_mut!((*dev).DeviceQueue);
        let inserted = if key.is_null() {
            KeInsertDeviceQueue(q, entry_of(irp))
        } else {
            KeInsertByKeyDeviceQueue(q, entry_of(irp), *key)
        } != 0;
        if !inserted {
            (*dev).CurrentIrp = irp;
            if let Some(i) = cancel_irql {
                super::irp::io_release_cancel_spin_lock(i);
            }
            start_io(dev, irp);
        } else if let Some(i) = cancel_irql {
            if (*irp).Cancel != 0 {
                // Cancelled before it was queued: the routine takes it out
                // of the queue and releases the cancel lock.
                (*irp).CancelIrql = i;
                (*irp).CancelRoutine = None;
                if let Some(c) = cancel {
                    c(dev, irp);
                }
            } else {
                super::irp::io_release_cancel_spin_lock(i);
            }
        }
    }
    ke_lower_irql(old);
}

/// `IoStartNextPacket` / `IoStartNextPacketByKey` (`key` Some).
///
/// # Safety
/// `dev` a live device whose driver has a `DriverStartIo`; DISPATCH_LEVEL.
pub unsafe fn io_start_next_packet(dev: *mut DEVICE_OBJECT, cancelable: bool, key: Option<u32>) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let cancel_irql = cancelable.then(super::irp::io_acquire_cancel_spin_lock);
        (*dev).CurrentIrp = ptr::null_mut();
        let q = ptr::addr_of_mut!((*dev).DeviceQueue);
        let e = match key {
            Some(k) => KeRemoveByKeyDeviceQueue(q, k),
            None => KeRemoveDeviceQueue(q),
        };
        let irp = if e.is_null() {
            ptr::null_mut()
        } else {
            irp_of(e)
        };
        (*dev).CurrentIrp = irp;
        if let Some(i) = cancel_irql {
            super::irp::io_release_cancel_spin_lock(i);
        }
        if !irp.is_null() {
            start_io(dev, irp);
        }
    }
}

/// `IoStartPacket`.
///
/// # Safety
/// See [`io_start_packet`].
#[no_mangle]
pub unsafe extern "system" fn IoStartPacket(
    dev: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    key: *const u32,
    cancel: Option<DRIVER_CANCEL>,
) {
    // SAFETY: forwarded caller guarantees.
    unsafe { io_start_packet(dev, irp, key, cancel) }
}

/// `IoStartNextPacket`.
///
/// # Safety
/// See [`io_start_next_packet`].
#[no_mangle]
pub unsafe extern "system" fn IoStartNextPacket(dev: *mut DEVICE_OBJECT, cancelable: BOOLEAN) {
    // SAFETY: forwarded caller guarantees.
    unsafe { io_start_next_packet(dev, cancelable != 0, None) }
}

/// `IoStartNextPacketByKey`.
///
/// # Safety
/// See [`io_start_next_packet`].
#[no_mangle]
pub unsafe extern "system" fn IoStartNextPacketByKey(
    dev: *mut DEVICE_OBJECT,
    cancelable: BOOLEAN,
    key: u32,
) {
    // SAFETY: forwarded caller guarantees.
    unsafe { io_start_next_packet(dev, cancelable != 0, Some(key)) }
}
