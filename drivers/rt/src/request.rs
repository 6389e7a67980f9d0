//! What every storage driver would otherwise write for itself: completing
//! an IRP, the raw-device `IRP_MJ_CREATE`/`CLEANUP`/`CLOSE` answer,
//! forwarding an IRP down and waiting for it (`IoForwardIrpSynchronously`),
//! sending a new IRP down and waiting for it, synchronous requests to
//! another device (around `IoBuildDeviceIoControlRequest` /
//! `IoBuildSynchronousFsdRequest` and a `KEVENT`), a name helper, and a
//! passive-level lock over a synchronization event. The waiting helpers
//! are for callers at `PASSIVE_LEVEL`.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ops::{Deref, DerefMut};
use nt::status::*;
use nt::NtStatus;
use wdk::*;

/// Sets `irp`'s status block and completes it with priority `boost`
/// (`IO_DISK_INCREMENT`, `IO_NO_INCREMENT`, ...); returns `status`.
///
/// # Safety
/// The caller owns `irp`.
pub unsafe fn complete(irp: *mut IRP, status: NtStatus, info: usize, boost: i8) -> NtStatus {
    // SAFETY: per the contract.
    unsafe {
        (*irp).IoStatus.Status = status;
        (*irp).IoStatus.Information = info;
        IoCompleteRequest(irp, boost);
    }
    status
}

/// Completes `irp` with the status and `Information` already in it (a PnP
/// request a bus driver does not handle keeps what the drivers above set).
///
/// # Safety
/// The caller owns `irp`.
pub unsafe fn complete_as_is(irp: *mut IRP) -> NtStatus {
    // SAFETY: per the contract.
    unsafe {
        let s = (*irp).IoStatus.Status;
        IoCompleteRequest(irp, IO_NO_INCREMENT);
        s
    }
}

/// `IRP_MJ_CREATE`/`IRP_MJ_CLEANUP`/`IRP_MJ_CLOSE` of a device opened raw
/// (a disk, a partition, a volume with no file system, a control device):
/// an open of the device itself succeeds; a name below it
/// (`\Device\HarddiskVolume2\x` reaching the device) needs a file system:
/// STATUS_OBJECT_NAME_NOT_FOUND. Cleanup and close succeed.
///
/// # Safety
/// Called by the I/O manager as a dispatch routine.
pub unsafe extern "system" fn dispatch_raw_create_close(
    _dev: *mut DEVICE_OBJECT,
    irp: *mut IRP,
) -> NtStatus {
    // SAFETY: the I/O manager hands us the IRP with a current location.
    unsafe {
        let sl = IoGetCurrentIrpStackLocation(irp);
        let named = (*sl).MajorFunction == IRP_MJ_CREATE
            && !(*sl).FileObject.is_null()
            && (*(*sl).FileObject).FileName.Length != 0;
        let s = if named {
            STATUS_OBJECT_NAME_NOT_FOUND
        } else {
            STATUS_SUCCESS
        };
        complete(irp, s, 0, IO_NO_INCREMENT)
    }
}

/// The completion routine of the waiting helpers: signals the waiter's
/// event and keeps the IRP for it.
unsafe extern "system" fn signal_waiter(
    _d: *mut DEVICE_OBJECT,
    _i: *mut IRP,
    ev: *mut c_void,
) -> NtStatus {
    // SAFETY: the context is the waiter's event, alive until signalled.
    unsafe { KeSetEvent(ev.cast(), 0, 0) };
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Calls `lower` with `irp` (its next location set up) with a completion
/// routine that hands it back, and waits for it: the IRP's final status.
///
/// # Safety
/// The caller owns `irp`; `lower` is live.
unsafe fn call_and_take_back(lower: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: per the contract; the event lives on this stack until the
    // completion routine signalled it (we wait for it when the call pends).
    unsafe {
        let mut ev = KEVENT::zeroed();
        KeInitializeEvent(&mut ev, NOTIFICATION_EVENT, 0);
        IoSetCompletionRoutine(irp, signal_waiter, (&raw mut ev).cast(), true, true, true);
        if IoCallDriver(lower, irp) == STATUS_PENDING {
            KeWaitForSingleObject(
                (&raw mut ev).cast(),
                EXECUTIVE,
                KERNEL_MODE,
                0,
                core::ptr::null_mut(),
            );
        }
        (*irp).IoStatus.Status
    }
}

/// `IoForwardIrpSynchronously`: copies the current stack location to the
/// next, sends `irp` to `lower` and waits until the drivers below completed
/// it (a PnP start goes to the bus driver first). Returns the IRP's status;
/// the IRP is the caller's again, to finish and complete. (Windows'
/// routine returns a BOOLEAN and leaves the status in the IRP.)
///
/// # Safety
/// The caller owns `irp`, which has a next stack location; `lower` is live.
pub unsafe fn forward_irp_synchronously(lower: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: per the contract.
    unsafe {
        IoCopyCurrentIrpStackLocationToNext(irp);
        call_and_take_back(lower, irp)
    }
}

/// Allocates an IRP for `lower`'s stack with one request (`major`, `minor`,
/// `params`, the system buffer), sends it and waits: the status and
/// `Information`. The IRP is freed here.
///
/// # Safety
/// `lower` is live; `params` (and what they point to) and `system_buffer`
/// are valid for `major` until this returns.
pub unsafe fn send_and_wait(
    lower: *mut DEVICE_OBJECT,
    major: u8,
    minor: u8,
    params: IO_STACK_LOCATION_PARAMETERS,
    system_buffer: *mut c_void,
) -> (NtStatus, usize) {
    // SAFETY: per the contract.
    unsafe {
        let irp = IoAllocateIrp((*lower).StackSize, 0);
        if irp.is_null() {
            return (STATUS_INSUFFICIENT_RESOURCES, 0);
        }
        (*irp).AssociatedIrp.SystemBuffer = system_buffer;
        let sl = IoGetNextIrpStackLocation(irp);
        (*sl).MajorFunction = major;
        (*sl).MinorFunction = minor;
        (*sl).Parameters = params;
        let s = call_and_take_back(lower, irp);
        let info = (*irp).IoStatus.Information;
        IoFreeIrp(irp);
        (s, info)
    }
}

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
