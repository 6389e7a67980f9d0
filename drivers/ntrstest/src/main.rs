//! ntrstest.sys: the driver the kernel's boot tests load and unload. Its
//! DriverEntry allocates a tagged pool block (tag 'Ntst') it frees in
//! DriverUnload, so a leak after unload shows in the tag's usage, and
//! prints a line the tests and the boot log can see.
#![no_std]
#![warn(clippy::undocumented_unsafe_blocks)]
#![no_main]

use core::sync::atomic::{AtomicPtr, Ordering};
use rt::ntoskrnl::*;

/// The pool tag, 'Ntst' as the bytes appear in memory.
const TAG: u32 = u32::from_le_bytes(*b"Ntst");
/// `POOL_FLAG_NON_PAGED`.
const POOL_FLAG_NON_PAGED: u64 = 0x40;
/// Offset of `DRIVER_OBJECT.DriverUnload` (x64).
const DRIVER_UNLOAD_OFFSET: usize = 0x68;

static BLOCK: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());

extern "system" fn driver_unload(_driver: *mut u8) {
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
pub unsafe extern "system" fn DriverEntry(driver: *mut u8, _registry_path: *const u8) -> i32 {
    // SAFETY: plain call; returns null on failure.
    let p = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 200, TAG) };
    if p.is_null() {
        return 0xC000_009Au32 as i32; // STATUS_INSUFFICIENT_RESOURCES
    }
    BLOCK.store(p, Ordering::Release);
    // SAFETY: the I/O manager passes a DRIVER_OBJECT; DriverUnload is a
    // pointer-sized field at 0x68.
    unsafe {
        driver
            .add(DRIVER_UNLOAD_OFFSET)
            .cast::<usize>()
            .write_unaligned(driver_unload as *const () as usize)
    };
    // SAFETY: plain call.
    let irql = unsafe { KeGetCurrentIrql() };
    // SAFETY: plain call.
    let increment = unsafe { KeQueryTimeIncrement() };
    rt::kprintln!("ntrstest: DriverEntry at IRQL {irql}, time increment {increment}");
    0
}
