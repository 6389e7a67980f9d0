//! ntrstest.sys: the driver the kernel's boot tests load and unload. Its
//! DriverEntry allocates a tagged pool block (tag 'Ntst') it frees in
//! DriverUnload, so a leak after unload shows in the tag's usage, and
//! prints a line the tests and the boot log can see.
#![no_std]
#![warn(clippy::undocumented_unsafe_blocks)]
#![no_main]

use core::sync::atomic::{AtomicPtr, Ordering};
use rt::wdk::*;

/// The pool tag, 'Ntst' as the bytes appear in memory.
const TAG: u32 = u32::from_le_bytes(*b"Ntst");
/// `POOL_FLAG_NON_PAGED`.
const POOL_FLAG_NON_PAGED: u64 = 0x40;

static BLOCK: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(core::ptr::null_mut());

unsafe extern "system" fn driver_unload(_driver: *mut DRIVER_OBJECT) {
    let p = BLOCK.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !p.is_null() {
        // SAFETY: p came from ExAllocatePool2 with TAG and is freed once.
        unsafe { ExFreePoolWithTag(p, TAG) };
    }
    rt::kprintln!("ntrstest: DriverUnload");
}

/// `DriverEntry(DriverObject, RegistryPath)`.
///
/// # Safety
/// Called by the I/O manager with a valid driver object.
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    _registry_path: *mut UNICODE_STRING,
) -> nt::NtStatus {
    // SAFETY: plain call; returns null on failure.
    let p = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 200, TAG) };
    if p.is_null() {
        return nt::status::STATUS_INSUFFICIENT_RESOURCES;
    }
    BLOCK.store(p, Ordering::Release);
    // SAFETY: the I/O manager passes a valid DRIVER_OBJECT it owns for the
    // driver's lifetime.
    unsafe { (*driver).DriverUnload = Some(driver_unload) };
    // SAFETY: plain calls.
    let (irql, increment) = unsafe { (KeGetCurrentIrql(), KeQueryTimeIncrement()) };
    rt::kprintln!("ntrstest: DriverEntry at IRQL {irql}, time increment {increment}");
    nt::status::STATUS_SUCCESS
}
