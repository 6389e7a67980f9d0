//! `ProbeForRead` and `ProbeForWrite`, the ntoskrnl exports drivers call to
//! check a user buffer before touching it (wdm.h; *Windows Internals*,
//! Part 2, ch. 8). The checks are `nt::probe`'s (host-tested), the page
//! accesses of `ProbeForWrite` go through the kernel's fault-protected user
//! copy (`ke::user::probe_for_write`).
//!
//! NT raises the failure as an exception (STATUS_DATATYPE_MISALIGNMENT for
//! a misaligned start, STATUS_ACCESS_VIOLATION for a range outside user
//! space or, for `ProbeForWrite`, a page that is not writable) that the
//! driver catches with `__try`/`__except`. ntrs has no structured exception
//! handling in kernel mode yet, so a raised probe failure is always an
//! unhandled kernel-mode exception: `KMODE_EXCEPTION_NOT_HANDLED` (0x1E)
//! with the status, the address of the raising routine, 0, 0. The kernel's
//! own services use the `Result`-returning routines instead.

#![allow(non_snake_case)]

use core::ffi::c_void;
use nt::NtStatus;

/// `ExRaiseStatus` as ntrs can do it today: no kernel-mode handler can
/// catch it, so it ends as an unhandled kernel-mode exception at `at`.
fn raise_unhandled(status: NtStatus, at: u64) -> ! {
    crate::ke::bugcheck::ke_bug_check_ex(
        nt::bugcheck::KMODE_EXCEPTION_NOT_HANDLED,
        status.as_u32() as u64,
        at,
        0,
        0,
    )
}

/// `ProbeForRead`: raises STATUS_DATATYPE_MISALIGNMENT or
/// STATUS_ACCESS_VIOLATION (see the module note); a zero `Length` checks
/// nothing.
#[no_mangle]
pub extern "system" fn ProbeForRead(Address: *const c_void, Length: usize, Alignment: u32) {
    if let Err(e) = crate::ke::user::probe_for_read(Address as u64, Length as u64, Alignment) {
        raise_unhandled(e, ProbeForRead as *const () as u64);
    }
}

/// `ProbeForWrite`: `ProbeForRead`'s checks, then one byte of every page
/// read and written back; raises as `ProbeForRead` (see the module note).
#[no_mangle]
pub extern "system" fn ProbeForWrite(Address: *mut c_void, Length: usize, Alignment: u32) {
    if let Err(e) = crate::ke::user::probe_for_write(Address as u64, Length as u64, Alignment) {
        raise_unhandled(e, ProbeForWrite as *const () as u64);
    }
}

/// Crash test `PROBEMISALIGNED`: `ProbeForRead` of a user address that is
/// not 4-byte aligned raises STATUS_DATATYPE_MISALIGNMENT, which nothing
/// handles in kernel mode.
pub fn crash_probe_misaligned() {
    ProbeForRead(0x1_0002 as *const c_void, 8, 4);
}

/// Crash test `PROBEKERNELWRITE`: `ProbeForWrite` of a kernel address
/// raises STATUS_ACCESS_VIOLATION without touching it.
pub fn crash_probe_kernel_write() {
    ProbeForWrite(nt::user::KI_USER_SHARED_DATA as *mut c_void, 8, 8);
}
