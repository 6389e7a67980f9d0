//! Remove locks for drivers (`IoInitializeRemoveLockEx`,
//! `IoAcquireRemoveLockEx`, `IoReleaseRemoveLockEx`,
//! `IoReleaseRemoveLockAndWaitEx`, what wdm.h's `IoXxxRemoveLock` macros
//! call): the counting is `lib/io::remlock` (host-tested) on the driver's
//! `IO_REMOVE_LOCK`; its `RemoveEvent` (a notification event) is set when
//! the last count goes after the remove began. The allocation tag, the
//! watermarks and the tags of acquisitions (checked builds' tracking) are
//! accepted and ignored.

use core::sync::atomic::{AtomicI32, AtomicU8};
use nt::status::*;
use nt::NtStatus;
use wdk::{IO_REMOVE_LOCK, NOTIFICATION_EVENT};

/// The lock's counter fields as atomics.
///
/// # Safety
/// `l` points at a live, initialised `IO_REMOVE_LOCK`; all access to the
/// counters goes through these routines.
unsafe fn fields<'a>(l: *mut IO_REMOVE_LOCK) -> (&'a AtomicU8, &'a AtomicI32) {
    // SAFETY: per the contract; `Removed` and the 4-aligned `IoCount` are
    // plain integers in the caller's structure, used only atomically.
    unsafe {
        (
            AtomicU8::from_ptr(core::ptr::addr_of_mut!((*l).Removed)),
            AtomicI32::from_ptr(core::ptr::addr_of_mut!((*l).IoCount)),
        )
    }
}

/// `IoInitializeRemoveLockEx`.
///
/// # Safety
/// `Lock` points at writable memory of `RemlockSize` (at least 0x20) bytes.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn IoInitializeRemoveLockEx(
    Lock: *mut IO_REMOVE_LOCK,
    _AllocateTag: u32,
    _MaxLockedMinutes: u32,
    _HighWatermark: u32,
    RemlockSize: u32,
) {
    if Lock.is_null() || (RemlockSize as usize) < core::mem::size_of::<IO_REMOVE_LOCK>() {
        return;
    }
    // SAFETY: per the contract.
    unsafe {
        let (r, c) = fields(Lock);
        ::io::remlock::initialize(r, c);
        crate::ke::event::ke_initialize_event(
            core::ptr::addr_of_mut!((*Lock).RemoveEvent),
            NOTIFICATION_EVENT,
            false,
        );
    }
}

/// `IoAcquireRemoveLockEx`: STATUS_SUCCESS, or STATUS_DELETE_PENDING once
/// `IoReleaseRemoveLockAndWait` ran.
///
/// # Safety
/// `RemoveLock` was initialised by `IoInitializeRemoveLockEx`.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn IoAcquireRemoveLockEx(
    RemoveLock: *mut IO_REMOVE_LOCK,
    _Tag: *mut core::ffi::c_void,
    _File: *const u8,
    _Line: u32,
    _RemlockSize: u32,
) -> NtStatus {
    // SAFETY: per the contract.
    unsafe {
        let (r, c) = fields(RemoveLock);
        match ::io::remlock::acquire(r, c) {
            ::io::remlock::Acquire::Acquired => STATUS_SUCCESS,
            ::io::remlock::Acquire::DeletePending { signal } => {
                if signal {
                    crate::ke::event::ke_set_event(
                        core::ptr::addr_of_mut!((*RemoveLock).RemoveEvent),
                        0,
                    );
                }
                STATUS_DELETE_PENDING
            }
        }
    }
}

/// `IoReleaseRemoveLockEx`.
///
/// # Safety
/// As for `IoAcquireRemoveLockEx`; the caller holds an acquisition.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn IoReleaseRemoveLockEx(
    RemoveLock: *mut IO_REMOVE_LOCK,
    _Tag: *mut core::ffi::c_void,
    _RemlockSize: u32,
) {
    // SAFETY: per the contract.
    unsafe {
        let (_, c) = fields(RemoveLock);
        if ::io::remlock::release(c) {
            crate::ke::event::ke_set_event(core::ptr::addr_of_mut!((*RemoveLock).RemoveEvent), 0);
        }
    }
}

/// `IoReleaseRemoveLockAndWaitEx`: called by the remove handler holding
/// one acquisition; returns once every other holder released. At
/// PASSIVE_LEVEL.
///
/// # Safety
/// As for `IoReleaseRemoveLockEx`.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn IoReleaseRemoveLockAndWaitEx(
    RemoveLock: *mut IO_REMOVE_LOCK,
    _Tag: *mut core::ffi::c_void,
    _RemlockSize: u32,
) {
    // SAFETY: per the contract; the event lives in the caller's lock.
    unsafe {
        let (r, c) = fields(RemoveLock);
        if ::io::remlock::release_and_wait(r, c) {
            crate::ke::event::ke_wait_for_event(
                core::ptr::addr_of_mut!((*RemoveLock).RemoveEvent),
                crate::ke::thread::WaitReason::Executive,
                false,
                false,
                None,
            );
        }
    }
}
