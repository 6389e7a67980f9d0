//! ntrstest.sys: the driver the kernel's boot tests load and unload. Its
//! DriverEntry allocates a tagged pool block (tag 'Ntst') it frees in
//! DriverUnload, so a leak after unload shows in the tag's usage, and
//! prints a line the tests and the boot log can see. It also serves
//! `\Device\NtrsTestFile` (module `testfile`), an in-memory file device for
//! the memory and cache managers' boot tests, and runs the `KTIMER` test
//! of `timertest` on a device control.
#![no_std]
#![warn(clippy::undocumented_unsafe_blocks)]
#![no_main]

extern crate alloc;

mod testfile;
mod timertest;

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
    testfile::delete_device();
    rt::kprintln!("ntrstest: DriverUnload");
}

/// "wide" as a NUL-terminated UTF-16 string, for `%S`.
const WIDE: [u16; 5] = rt::utf16("wide\0");

/// DbgPrint/DbgPrintEx with format arguments, as C drivers use them; the
/// boot test `io.dbgprint.driver_arguments` captures and checks the text
/// (and that the trace-level line is filtered unless its bit is set).
fn print_with_arguments(registry_path: *const UNICODE_STRING) {
    use nt::dpfltr::*;
    // SAFETY: every conversion has an argument of its C type (int, unsigned,
    // pointer-sized, 64-bit, NUL-terminated strings, a UNICODE_STRING the
    // I/O manager passed).
    unsafe {
        DbgPrintEx(
            DPFLTR_IHVDRIVER_ID,
            DPFLTR_ERROR_LEVEL,
            c"ntrstest: %s %d %u %#x %05i %-3c| %p %I64d %.3s %S %wZ %%\n"
                .as_ptr()
                .cast(),
            c"args".as_ptr(),
            -42i32,
            42u32,
            255u32,
            7i32,
            b'k' as i32,
            0xFFFF_F800_1234_5678usize,
            i64::MIN,
            c"abcdef".as_ptr(),
            WIDE.as_ptr(),
            registry_path,
        );
        DbgPrintEx(
            DPFLTR_IHVDRIVER_ID,
            DPFLTR_TRACE_LEVEL,
            c"ntrstest: trace level %d\n".as_ptr().cast(),
            2i32,
        );
        DbgPrint(
            c"ntrstest: DbgPrint %s %lu\n".as_ptr().cast(),
            c"default".as_ptr(),
            7u32,
        );
    }
}

/// Blocks of 64- and 4096-byte alignment from the rt allocator (which
/// over-allocates pool for them): each must be aligned and fully writable,
/// and free again (a wrong pool address would stop the system). DriverEntry
/// fails with STATUS_DATATYPE_MISALIGNMENT otherwise, which the load tests
/// see.
fn aligned_allocations_work() -> bool {
    #[repr(C, align(64))]
    struct A64([u8; 100]);
    #[repr(C, align(4096))]
    struct A4096([u8; 5000]);
    let a = alloc::boxed::Box::new(A64([0x64; 100]));
    let b = alloc::boxed::Box::new(A4096([0x40; 5000]));
    let mut v: alloc::vec::Vec<A64> = alloc::vec::Vec::new();
    for i in 0..9u8 {
        v.push(A64([i; 100]));
    }
    let ok = (&*a as *const A64 as usize).is_multiple_of(64)
        && (&*b as *const A4096 as usize).is_multiple_of(4096)
        && (v.as_ptr() as usize).is_multiple_of(64)
        && a.0.iter().all(|&x| x == 0x64)
        && b.0.iter().all(|&x| x == 0x40)
        && v.iter().enumerate().all(|(i, e)| e.0[99] == i as u8);
    drop((a, b, v));
    ok
}

/// `DriverEntry(DriverObject, RegistryPath)`.
///
/// # Safety
/// Called by the I/O manager with a valid driver object.
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    registry_path: *mut UNICODE_STRING,
) -> nt::NtStatus {
    if !aligned_allocations_work() {
        rt::kprintln!("ntrstest: an aligned allocation was misaligned or corrupt");
        return nt::status::STATUS_DATATYPE_MISALIGNMENT;
    }
    // SAFETY: plain call; returns null on failure.
    let p = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 200, TAG) };
    if p.is_null() {
        return nt::status::STATUS_INSUFFICIENT_RESOURCES;
    }
    BLOCK.store(p, Ordering::Release);
    // SAFETY: the driver object is ours during DriverEntry.
    let status = unsafe { testfile::create_device(driver) };
    if !status.is_success() {
        BLOCK.store(core::ptr::null_mut(), Ordering::Release);
        // SAFETY: p came from ExAllocatePool2 with TAG just above.
        unsafe { ExFreePoolWithTag(p, TAG) };
        return status;
    }
    // SAFETY: the I/O manager passes a valid DRIVER_OBJECT it owns for the
    // driver's lifetime.
    unsafe { (*driver).DriverUnload = Some(driver_unload) };
    // SAFETY: plain calls.
    let (irql, increment) = unsafe { (KeGetCurrentIrql(), KeQueryTimeIncrement()) };
    rt::kprintln!("ntrstest: DriverEntry at IRQL {irql}, time increment {increment}");
    print_with_arguments(registry_path);
    nt::status::STATUS_SUCCESS
}
