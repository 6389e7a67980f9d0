//! `KeInitializeDpc` / `KeInsertQueueDpc` for drivers: a driver's `KDPC`
//! (0x40 bytes of its own nonpaged memory, opaque to it as on Windows)
//! holds the kernel's [`KDpc`] followed by the driver's deferred routine
//! and context; the kernel DPC's routine is a trampoline that calls the
//! driver's `extern "system"` routine with (Dpc, DeferredContext,
//! SystemArgument1, SystemArgument2).

use super::dpc::{ke_insert_queue_dpc, KDpc};
use core::ffi::c_void;

/// What a driver's `KDPC` holds in ntrs.
#[repr(C)]
struct DriverDpc {
    dpc: KDpc,
    routine: wdk::KDEFERRED_ROUTINE,
    context: *mut c_void,
}

const _: () = assert!(
    core::mem::size_of::<DriverDpc>() <= core::mem::size_of::<wdk::KDPC>()
        && core::mem::align_of::<DriverDpc>() <= core::mem::align_of::<wdk::KDPC>()
);

fn trampoline(dpc: &KDpc, context: usize, a1: usize, a2: usize) {
    let d = context as *const DriverDpc;
    debug_assert!(core::ptr::eq(dpc, d.cast()));
    // SAFETY: `context` is the DriverDpc the kernel DPC is the first field
    // of (set by ke_initialize_driver_dpc); the driver keeps it valid
    // while it is queued (the WDM contract for a KDPC).
    unsafe { ((*d).routine)(d as *mut wdk::KDPC, (*d).context, a1 as _, a2 as _) }
}

/// The kernel DPC inside a driver's `KDPC` (for `KeSetTimer(Ex)`).
///
/// # Safety
/// `dpc` was initialized by `KeInitializeDpc` and stays valid while it
/// can be queued (the driver's contract), which is what the 'static
/// lifetime stands for.
pub(super) unsafe fn kernel_dpc(dpc: *mut wdk::KDPC) -> &'static KDpc {
    // SAFETY: per the contract a DriverDpc lives at `dpc`.
    unsafe { &(*dpc.cast::<DriverDpc>()).dpc }
}

/// `KeInitializeDpc` of a driver's `KDPC`.
///
/// # Safety
/// `dpc` points to a writable, 8-byte-aligned `KDPC` that is not queued.
pub unsafe fn ke_initialize_driver_dpc(
    dpc: *mut wdk::KDPC,
    routine: wdk::KDEFERRED_ROUTINE,
    context: *mut c_void,
) {
    let d = dpc.cast::<DriverDpc>();
    // SAFETY: per the contract the memory is ours to (re)initialize; a
    // DriverDpc fits a KDPC (checked above).
    unsafe {
        d.write(DriverDpc {
            dpc: KDpc::new(trampoline, d as usize),
            routine,
            context,
        })
    };
}

/// `KeInitializeDpc` export.
///
/// # Safety
/// As [`ke_initialize_driver_dpc`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeInitializeDpc(
    Dpc: *mut wdk::KDPC,
    DeferredRoutine: wdk::KDEFERRED_ROUTINE,
    DeferredContext: *mut c_void,
) {
    if Dpc.is_null() || (Dpc as usize) & 7 != 0 {
        return;
    }
    // SAFETY: non-null and aligned; the caller owns the memory.
    unsafe { ke_initialize_driver_dpc(Dpc, DeferredRoutine, DeferredContext) }
}

/// `KeInsertQueueDpc` export: queues a DPC `KeInitializeDpc` set up; FALSE
/// if it is already queued.
///
/// # Safety
/// `Dpc` was initialized by `KeInitializeDpc` and stays valid until its
/// routine has run (the driver's contract on Windows too).
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeInsertQueueDpc(
    Dpc: *mut wdk::KDPC,
    SystemArgument1: *mut c_void,
    SystemArgument2: *mut c_void,
) -> u8 {
    if Dpc.is_null() {
        return 0;
    }
    // SAFETY: per the contract the KDPC holds an initialized DriverDpc
    // that outlives its time in the queue, which is what the 'static
    // lifetime stands for here.
    let dpc: &'static KDpc = unsafe { &(*Dpc.cast::<DriverDpc>()).dpc };
    ke_insert_queue_dpc(dpc, SystemArgument1 as usize, SystemArgument2 as usize) as u8
}
