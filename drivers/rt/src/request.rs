//! Synchronous requests a driver sends to another device (what drivers
//! write around `IoBuildDeviceIoControlRequest` /
//! `IoBuildSynchronousFsdRequest` and a `KEVENT`), a name helper, and a
//! passive-level lock over a synchronization event. Callers are at
//! `PASSIVE_LEVEL`.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ops::{Deref, DerefMut};
use nt::status::*;
use nt::NtStatus;
use wdk::*;

/// Waits for `irp` sent to `dev` when it pends; returns the final status
/// and `Information`.
///
/// # Safety
/// `irp` was built with `event`/`iosb` (I/O manager thread request).
unsafe fn call_and_wait(
    dev: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    event: &mut KEVENT,
    iosb: &mut IO_STATUS_BLOCK,
) -> (NtStatus, usize) {
    // SAFETY: per the contract; the event and status block outlive the request.
    unsafe {
        let mut s = IoCallDriver(dev, irp);
        if s == STATUS_PENDING {
            KeWaitForSingleObject(
                (event as *mut KEVENT).cast(),
                EXECUTIVE,
                KERNEL_MODE,
                0,
                core::ptr::null_mut(),
            );
            s = iosb.Status;
        }
        (
            s,
            if s.is_success() || s == STATUS_BUFFER_OVERFLOW {
                iosb.Information
            } else {
                0
            },
        )
    }
}

/// Sends a METHOD_BUFFERED I/O control (internal: `IRP_MJ_INTERNAL_DEVICE_CONTROL`)
/// to `dev` and waits: (status, bytes returned).
///
/// # Safety
/// `dev` is a device object the caller holds a reference to.
pub unsafe fn ioctl(
    dev: *mut DEVICE_OBJECT,
    code: u32,
    input: &[u8],
    output: &mut [u8],
    internal: bool,
) -> (NtStatus, usize) {
    let mut event = KEVENT::zeroed();
    let mut iosb = IO_STATUS_BLOCK {
        Status: STATUS_SUCCESS,
        Information: 0,
    };
    // SAFETY: locals outlive the request (we wait for it); buffers valid.
    unsafe {
        KeInitializeEvent(&mut event, NOTIFICATION_EVENT, 0);
        let irp = IoBuildDeviceIoControlRequest(
            code,
            dev,
            input.as_ptr() as *mut c_void,
            input.len() as u32,
            output.as_mut_ptr().cast(),
            output.len() as u32,
            internal as u8,
            &mut event,
            &mut iosb,
        );
        if irp.is_null() {
            return (STATUS_INSUFFICIENT_RESOURCES, 0);
        }
        call_and_wait(dev, irp, &mut event, &mut iosb)
    }
}

/// Reads (or, `write`, writes) `buf` at byte `offset` of `dev` and waits.
///
/// # Safety
/// `dev` is a device object the caller holds a reference to.
pub unsafe fn transfer(
    dev: *mut DEVICE_OBJECT,
    write: bool,
    offset: i64,
    buf: &mut [u8],
) -> (NtStatus, usize) {
    let mut event = KEVENT::zeroed();
    let mut iosb = IO_STATUS_BLOCK {
        Status: STATUS_SUCCESS,
        Information: 0,
    };
    let mut off = offset;
    // SAFETY: as in `ioctl`.
    unsafe {
        KeInitializeEvent(&mut event, NOTIFICATION_EVENT, 0);
        let irp = IoBuildSynchronousFsdRequest(
            if write { IRP_MJ_WRITE } else { IRP_MJ_READ } as u32,
            dev,
            buf.as_mut_ptr().cast(),
            buf.len() as u32,
            &mut off,
            &mut event,
            &mut iosb,
        );
        if irp.is_null() {
            return (STATUS_INSUFFICIENT_RESOURCES, 0);
        }
        call_and_wait(dev, irp, &mut event, &mut iosb)
    }
}

/// A `UNICODE_STRING` over a UTF-16 slice (no NUL needed; it must live as
/// long as the string is used).
pub fn unicode(s: &[u16]) -> UNICODE_STRING {
    UNICODE_STRING {
        Length: (s.len() * 2) as u16,
        MaximumLength: (s.len() * 2) as u16,
        Buffer: s.as_ptr() as *mut u16,
    }
}

/// A lock for `PASSIVE_LEVEL` code (registry work, requests to other
/// drivers while held) over a `SynchronizationEvent`: one holder at a time,
/// waiters block. Must be [`PassiveLock::init`]ialized before first use.
pub struct PassiveLock<T> {
    event: UnsafeCell<KEVENT>,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through a guard, and one guard exists
// at a time (the event is a synchronization event, signalled = free).
unsafe impl<T: Send> Sync for PassiveLock<T> {}

impl<T> PassiveLock<T> {
    /// An uninitialized lock holding `v`.
    pub const fn new(v: T) -> Self {
        PassiveLock {
            event: UnsafeCell::new(KEVENT::zeroed()),
            data: UnsafeCell::new(v),
        }
    }

    /// `KeInitializeEvent(SynchronizationEvent, signalled)`: call once
    /// (DriverEntry) before any `lock`.
    pub fn init(&self) {
        // SAFETY: the event is ours; called before any waiter exists.
        unsafe { KeInitializeEvent(self.event.get(), SYNCHRONIZATION_EVENT, 1) };
    }

    /// Waits for the lock.
    pub fn lock(&self) -> PassiveGuard<'_, T> {
        // SAFETY: an initialized event in a static; a synchronization event
        // lets one waiter through and resets.
        unsafe {
            KeWaitForSingleObject(
                self.event.get().cast(),
                EXECUTIVE,
                KERNEL_MODE,
                0,
                core::ptr::null_mut(),
            )
        };
        PassiveGuard { lock: self }
    }
}

/// Holds a [`PassiveLock`]; releases it when dropped.
pub struct PassiveGuard<'a, T> {
    lock: &'a PassiveLock<T>,
}

impl<T> Deref for PassiveGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard is the only holder.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for PassiveGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard is the only holder.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for PassiveGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the event is initialized; signalling releases one waiter.
        unsafe { KeSetEvent(self.lock.event.get(), 0, 0) };
    }
}
