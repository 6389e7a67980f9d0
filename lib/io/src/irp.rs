//! IRP stack-location traffic. An IRP carries one stack location per
//! driver in the device stack; `IoCallDriver` moves it one location down
//! and calls the driver of the device it is sent to, `IoCompleteRequest`
//! walks it back up, calling the completion routine each upper driver set
//! in the location below its own.

use core::ptr;
use nt::status::*;
use nt::NtStatus;
use wdk::*;

/// Why an IRP cannot move as asked; the kernel stops the system with the
/// matching bugcheck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrpError {
    /// `NO_MORE_IRP_STACK_LOCATIONS` (0x35): `IoCallDriver` with no location left.
    NoMoreStackLocations,
    /// `MULTIPLE_IRP_COMPLETE_REQUESTS` (0x44): completed when already complete.
    MultipleCompleteRequests,
    /// `IoCompleteRequest` with `STATUS_PENDING` in `IoStatus.Status`.
    PendingStatus,
}

/// `IofCallDriver`: moves `irp` to the next stack location, records
/// `device` there and calls the dispatch routine of the device's driver
/// for the location's major function (`invalid` when the driver has none).
///
/// # Safety
/// `device` must be a device object whose `DriverObject` is valid, and
/// `irp` an initialised IRP the caller owns.
pub unsafe fn call_driver(
    device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    invalid: DRIVER_DISPATCH,
) -> Result<NtStatus, IrpError> {
    // SAFETY: the caller guarantees `irp` and `device` are valid.
    unsafe {
        if (*irp).CurrentLocation <= 1 {
            return Err(IrpError::NoMoreStackLocations);
        }
        IoSetNextIrpStackLocation(irp);
        let stack = IoGetCurrentIrpStackLocation(irp);
        (*stack).DeviceObject = device;
        let driver = (*device).DriverObject;
        let major = (*stack).MajorFunction as usize;
        let routine = if major < IRP_MJ_COUNT {
            (*driver).MajorFunction[major].unwrap_or(invalid)
        } else {
            invalid
        };
        Ok(routine(device, irp))
    }
}

/// How the completion walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// Every location is done: the IRP goes on to the I/O manager's own
    /// completion (copying results back, the event, the APC, the port, or
    /// freeing it).
    Completed,
    /// A completion routine returned `STATUS_MORE_PROCESSING_REQUIRED`: the
    /// IRP belongs to that driver again; the I/O manager must not touch it.
    MoreProcessingRequired,
}

/// The completion walk of `IofCompleteRequest`: from the current location
/// up, each location's `SL_PENDING_RETURNED` becomes `PendingReturned`, the
/// IRP moves up one location, and the completion routine stored in the
/// location just left runs — with the device of the driver that set it (the
/// one now current, or null above the top) — if the IRP's outcome matches
/// its `SL_INVOKE_ON_*` bits. Where no routine runs, a pending return is
/// propagated to the location above (`IoMarkIrpPending` on its behalf). The
/// locations passed are cleared.
///
/// # Safety
/// `irp` must be an initialised IRP the caller owns; completion routines
/// stored in it must be callable with it.
pub unsafe fn complete_walk(irp: *mut IRP) -> Result<Walk, IrpError> {
    // SAFETY: the caller guarantees `irp` is a live IRP it owns.
    unsafe {
        let top = (*irp).StackCount + 1;
        if (*irp).CurrentLocation > top {
            return Err(IrpError::MultipleCompleteRequests);
        }
        if (*irp).IoStatus.Status == STATUS_PENDING {
            return Err(IrpError::PendingStatus);
        }
        while (*irp).CurrentLocation <= (*irp).StackCount {
            let stack = IoGetCurrentIrpStackLocation(irp);
            let control = (*stack).Control;
            (*irp).PendingReturned = (control & SL_PENDING_RETURNED != 0) as u8;
            let routine = (*stack).CompletionRoutine;
            let context = (*stack).Context;
            // Clear the location (`IopClearStackLocation`) and move up.
            (*stack).Control = 0;
            (*stack).CompletionRoutine = None;
            (*stack).Context = ptr::null_mut();
            IoSkipCurrentIrpStackLocation(irp);
            let status = (*irp).IoStatus.Status;
            let invoke = (status.is_success() && control & SL_INVOKE_ON_SUCCESS != 0)
                || (!status.is_success() && control & SL_INVOKE_ON_ERROR != 0)
                || ((*irp).Cancel != 0 && control & SL_INVOKE_ON_CANCEL != 0);
            match routine {
                Some(routine) if invoke => {
                    let device = if (*irp).CurrentLocation <= (*irp).StackCount {
                        (*IoGetCurrentIrpStackLocation(irp)).DeviceObject
                    } else {
                        ptr::null_mut()
                    };
                    if routine(device, irp, context) == STATUS_MORE_PROCESSING_REQUIRED {
                        return Ok(Walk::MoreProcessingRequired);
                    }
                }
                _ => {
                    if (*irp).PendingReturned != 0 && (*irp).CurrentLocation <= (*irp).StackCount {
                        IoMarkIrpPending(irp);
                    }
                }
            }
        }
        Ok(Walk::Completed)
    }
}
