//! Cancel-safe IRP queues (`IoCsqInitialize`, `IoCsqInsertIrp`,
//! `IoCsqRemoveNextIrp`, `IoCsqRemoveIrp`): the driver keeps the queue and
//! its lock (the `IO_CSQ` callbacks); these routines pair every queue change
//! with the IRP's cancel routine, so an IRP is either taken out by the
//! driver or completed as cancelled, never both.
//!
//! `Tail.Overlay.DriverContext[3]` of a queued IRP points at its
//! `IO_CSQ_IRP_CONTEXT` (or at the `IO_CSQ` when the driver gave none), as
//! in Windows. The kernel supplies the cancel routine, which releases the
//! cancel spin lock and calls [`cancel`].

use core::ffi::c_void;
use core::ptr;
use nt::status::*;
use nt::NtStatus;
use wdk::*;

/// `IoCsqInitialize`.
///
/// # Safety
/// `csq` must be writable.
#[allow(clippy::too_many_arguments)]
pub unsafe fn initialize(
    csq: *mut IO_CSQ,
    insert: IO_CSQ_INSERT_IRP,
    remove: IO_CSQ_REMOVE_IRP,
    peek: IO_CSQ_PEEK_NEXT_IRP,
    acquire: IO_CSQ_ACQUIRE_LOCK,
    release: IO_CSQ_RELEASE_LOCK,
    complete_canceled: IO_CSQ_COMPLETE_CANCELED_IRP,
) -> NtStatus {
    // SAFETY: the caller guarantees `csq` is writable.
    unsafe {
        csq.write(IO_CSQ {
            Type: IO_TYPE_CSQ,
            CsqInsertIrp: Some(insert),
            CsqRemoveIrp: Some(remove),
            CsqPeekNextIrp: Some(peek),
            CsqAcquireLock: Some(acquire),
            CsqReleaseLock: Some(release),
            CsqCompleteCanceledIrp: Some(complete_canceled),
            ReservePointer: ptr::null_mut(),
        });
    }
    STATUS_SUCCESS
}

/// # Safety
/// `csq` initialised.
unsafe fn lock(csq: *mut IO_CSQ) -> KIRQL {
    let mut irql = 0;
    // SAFETY: the caller guarantees `csq`; its callbacks are the driver's.
    unsafe {
        if let Some(a) = (*csq).CsqAcquireLock {
            a(csq, &mut irql);
        }
    }
    irql
}

/// # Safety
/// `csq` initialised and locked.
unsafe fn unlock(csq: *mut IO_CSQ, irql: KIRQL) {
    // SAFETY: as above.
    unsafe {
        if let Some(r) = (*csq).CsqReleaseLock {
            r(csq, irql);
        }
    }
}

/// # Safety
/// `irp` a live IRP.
unsafe fn context_slot(irp: *mut IRP) -> *mut *mut c_void {
    // SAFETY: the caller guarantees `irp`.
    unsafe { ptr::addr_of_mut!((*irp).Tail.Overlay.Queue.DriverContext[3]) }
}

/// Forgets a queued IRP's context (the IRP left the queue).
///
/// # Safety
/// `irp` live; its slot holds a context or the csq.
unsafe fn clear_context(irp: *mut IRP) {
    // SAFETY: the caller guarantees `irp`.
    unsafe {
        let slot = context_slot(irp);
        let ctx = *slot as *mut IO_CSQ_IRP_CONTEXT;
        if !ctx.is_null() && (*ctx).Type == IO_TYPE_CSQ_IRP_CONTEXT {
            (*ctx).Irp = ptr::null_mut();
        }
        *slot = ptr::null_mut();
    }
}

/// The queue a queued IRP is in.
///
/// # Safety
/// `irp` live and queued by [`insert`].
unsafe fn csq_of(irp: *mut IRP) -> *mut IO_CSQ {
    // SAFETY: the caller guarantees `irp`.
    unsafe {
        let p = *context_slot(irp);
        if (*(p as *mut u32)) == IO_TYPE_CSQ_IRP_CONTEXT {
            (*(p as *mut IO_CSQ_IRP_CONTEXT)).Csq
        } else {
            p as *mut IO_CSQ
        }
    }
}

/// `IoCsqInsertIrp`: queues the IRP (marked pending) with `cancel_routine`
/// as its cancel routine. If the IRP was cancelled before that, it comes
/// straight out again and goes to `CsqCompleteCanceledIrp`.
///
/// # Safety
/// `csq` initialised; `irp` the driver's; `context` null or writable.
pub unsafe fn insert(
    csq: *mut IO_CSQ,
    irp: *mut IRP,
    context: *mut IO_CSQ_IRP_CONTEXT,
    cancel_routine: DRIVER_CANCEL,
) {
    // SAFETY: the caller guarantees the queue, the IRP and the context.
    unsafe {
        let irql = lock(csq);
        if context.is_null() {
            *context_slot(irp) = csq as *mut c_void;
        } else {
            (*context).Type = IO_TYPE_CSQ_IRP_CONTEXT;
            (*context).Irp = irp;
            (*context).Csq = csq;
            *context_slot(irp) = context as *mut c_void;
        }
        if let Some(ins) = (*csq).CsqInsertIrp {
            ins(csq, irp);
        }
        IoMarkIrpPending(irp);
        IoSetCancelRoutine(irp, Some(cancel_routine));
        if (*irp).Cancel != 0 && IoSetCancelRoutine(irp, None).is_some() {
            if let Some(rm) = (*csq).CsqRemoveIrp {
                rm(csq, irp);
            }
            clear_context(irp);
            unlock(csq, irql);
            if let Some(done) = (*csq).CsqCompleteCanceledIrp {
                done(csq, irp);
            }
            return;
        }
        unlock(csq, irql);
    }
}

/// The body of the cancel routine of a queued IRP (the kernel's routine
/// releases the cancel spin lock first): takes it out of its queue and
/// hands it to `CsqCompleteCanceledIrp`.
///
/// # Safety
/// `irp` queued by [`insert`] and handed to its cancel routine.
pub unsafe fn cancel(irp: *mut IRP) {
    // SAFETY: the cancel routine owns the IRP.
    unsafe {
        let csq = csq_of(irp);
        let irql = lock(csq);
        if let Some(rm) = (*csq).CsqRemoveIrp {
            rm(csq, irp);
        }
        clear_context(irp);
        unlock(csq, irql);
        if let Some(done) = (*csq).CsqCompleteCanceledIrp {
            done(csq, irp);
        }
    }
}

/// `IoCsqRemoveNextIrp`: the first queued IRP (`CsqPeekNextIrp` from the
/// start, with `peek_context`) whose cancel routine the driver gets back;
/// IRPs being cancelled are skipped. Null if none.
///
/// # Safety
/// `csq` initialised.
pub unsafe fn remove_next(csq: *mut IO_CSQ, peek_context: *mut c_void) -> *mut IRP {
    // SAFETY: the caller guarantees the queue; queued IRPs are live.
    unsafe {
        let irql = lock(csq);
        let Some(peek) = (*csq).CsqPeekNextIrp else {
            unlock(csq, irql);
            return ptr::null_mut();
        };
        let mut irp = peek(csq, ptr::null_mut(), peek_context);
        while !irp.is_null() {
            if IoSetCancelRoutine(irp, None).is_some() {
                if let Some(rm) = (*csq).CsqRemoveIrp {
                    rm(csq, irp);
                }
                clear_context(irp);
                break;
            }
            irp = peek(csq, irp, peek_context);
        }
        unlock(csq, irql);
        irp
    }
}

/// `IoCsqRemoveIrp`: takes out the IRP `context` was queued with, unless it
/// is already gone or being cancelled (null then).
///
/// # Safety
/// `csq` initialised; `context` from an [`insert`].
pub unsafe fn remove(csq: *mut IO_CSQ, context: *mut IO_CSQ_IRP_CONTEXT) -> *mut IRP {
    // SAFETY: the caller guarantees the queue and the context.
    unsafe {
        let irql = lock(csq);
        let mut irp = (*context).Irp;
        if !irp.is_null() {
            if IoSetCancelRoutine(irp, None).is_some() {
                if let Some(rm) = (*csq).CsqRemoveIrp {
                    rm(csq, irp);
                }
                clear_context(irp);
            } else {
                irp = ptr::null_mut();
            }
        }
        unlock(csq, irql);
        irp
    }
}
