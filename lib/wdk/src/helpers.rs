//! The routines wdm.h defines inline or as macros (they are not ntoskrnl
//! exports): stack location navigation, completion routines, pending marks,
//! cancel routines, and the IRP initialisation the I/O manager itself uses.
//!
//! An IRP is followed in memory by its `StackCount` stack locations.
//! `CurrentLocation` counts from 1 (the lowest driver's location) to
//! `StackCount`; a fresh IRP has `CurrentLocation == StackCount + 1` and
//! `CurrentStackLocation` one past the last location, and `IoCallDriver`
//! moves both down by one before calling the driver.

use crate::base::*;
use crate::consts::*;
use crate::io::*;
use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// `IoSizeOfIrp`: bytes of an IRP with `stack_size` stack locations.
pub const fn IoSizeOfIrp(stack_size: i8) -> usize {
    size_of::<IRP>() + stack_size as usize * size_of::<IO_STACK_LOCATION>()
}

/// Initialises `irp` the way `IoInitializeIrp` does: zeroes `packet_size`
/// bytes, sets the type, size, stack count and the current location one
/// past the last stack location, and makes `ThreadListEntry` an empty list.
///
/// # Safety
/// `irp` must point at `packet_size >= IoSizeOfIrp(stack_size)` writable,
/// 8-byte aligned bytes.
pub unsafe fn initialize_irp(irp: *mut IRP, packet_size: u16, stack_size: i8) {
    // SAFETY: the caller guarantees the packet is writable and large enough.
    unsafe {
        ptr::write_bytes(irp as *mut u8, 0, packet_size as usize);
        (*irp).Type = IO_TYPE_IRP;
        (*irp).Size = packet_size;
        (*irp).StackCount = stack_size;
        (*irp).CurrentLocation = stack_size + 1;
        let head = ptr::addr_of_mut!((*irp).ThreadListEntry);
        (*head).Flink = head;
        (*head).Blink = head;
        (*irp).Tail.Overlay.CurrentStackLocation =
            (irp.add(1) as *mut IO_STACK_LOCATION).add(stack_size as usize);
    }
}

/// `IoGetCurrentIrpStackLocation`.
///
/// # Safety
/// `irp` must point at an initialised IRP.
#[inline]
pub unsafe fn IoGetCurrentIrpStackLocation(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller guarantees `irp` is an IRP.
    unsafe { (*irp).Tail.Overlay.CurrentStackLocation }
}

/// `IoGetNextIrpStackLocation`: the location of the driver the IRP goes to next.
///
/// # Safety
/// `irp` must point at an initialised IRP whose `CurrentLocation > 1`.
#[inline]
pub unsafe fn IoGetNextIrpStackLocation(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller guarantees there is a location below the current one.
    unsafe { (*irp).Tail.Overlay.CurrentStackLocation.sub(1) }
}

/// `IoSetNextIrpStackLocation`: moves the IRP down one location (what
/// `IoCallDriver` does before calling the driver).
///
/// # Safety
/// `irp` must point at an initialised IRP whose `CurrentLocation > 1`.
#[inline]
pub unsafe fn IoSetNextIrpStackLocation(irp: *mut IRP) {
    // SAFETY: the caller guarantees there is a location below the current one.
    unsafe {
        (*irp).CurrentLocation -= 1;
        (*irp).Tail.Overlay.CurrentStackLocation = (*irp).Tail.Overlay.CurrentStackLocation.sub(1);
    }
}

/// `IoSkipCurrentIrpStackLocation`: the next driver gets this driver's
/// location unchanged (and no completion routine of this driver runs).
///
/// # Safety
/// `irp` must point at an initialised IRP that is at a driver's location.
#[inline]
pub unsafe fn IoSkipCurrentIrpStackLocation(irp: *mut IRP) {
    // SAFETY: the caller guarantees the IRP is at a valid location, so one up is in range.
    unsafe {
        (*irp).CurrentLocation += 1;
        (*irp).Tail.Overlay.CurrentStackLocation = (*irp).Tail.Overlay.CurrentStackLocation.add(1);
    }
}

/// `IoCopyCurrentIrpStackLocationToNext`: copies this driver's location to
/// the next one, without the completion routine and its context, and with
/// `Control` cleared.
///
/// # Safety
/// `irp` must point at an initialised IRP whose `CurrentLocation > 1`.
#[inline]
pub unsafe fn IoCopyCurrentIrpStackLocationToNext(irp: *mut IRP) {
    // SAFETY: the caller guarantees both locations exist; they do not overlap.
    unsafe {
        let cur = IoGetCurrentIrpStackLocation(irp);
        let next = IoGetNextIrpStackLocation(irp);
        ptr::copy_nonoverlapping(
            cur as *const u8,
            next as *mut u8,
            core::mem::offset_of!(IO_STACK_LOCATION, CompletionRoutine),
        );
        (*next).Control = 0;
    }
}

/// `IoSetCompletionRoutine`: `routine` runs with `context` when the driver
/// below completes the IRP with success, error or cancellation as chosen.
///
/// # Safety
/// `irp` must point at an initialised IRP whose `CurrentLocation > 1`.
#[inline]
pub unsafe fn IoSetCompletionRoutine(
    irp: *mut IRP,
    routine: IO_COMPLETION_ROUTINE,
    context: *mut c_void,
    invoke_on_success: bool,
    invoke_on_error: bool,
    invoke_on_cancel: bool,
) {
    let mut control = 0;
    if invoke_on_success {
        control |= SL_INVOKE_ON_SUCCESS;
    }
    if invoke_on_error {
        control |= SL_INVOKE_ON_ERROR;
    }
    if invoke_on_cancel {
        control |= SL_INVOKE_ON_CANCEL;
    }
    // SAFETY: the caller guarantees the next location exists.
    unsafe {
        let next = IoGetNextIrpStackLocation(irp);
        (*next).CompletionRoutine = Some(routine);
        (*next).Context = context;
        (*next).Control = control;
    }
}

/// `IoMarkIrpPending`: the driver will return `STATUS_PENDING` for this IRP.
///
/// # Safety
/// `irp` must point at an initialised IRP at a driver's location.
#[inline]
pub unsafe fn IoMarkIrpPending(irp: *mut IRP) {
    // SAFETY: the caller guarantees the current location exists.
    unsafe { (*IoGetCurrentIrpStackLocation(irp)).Control |= SL_PENDING_RETURNED }
}

/// `IoSetCancelRoutine`: atomically installs `routine` (or `None`) and
/// returns the previous one. A driver that gets `None` back after clearing
/// it knows the cancel routine has been (or is being) called.
///
/// # Safety
/// `irp` must point at an initialised IRP.
#[inline]
pub unsafe fn IoSetCancelRoutine(
    irp: *mut IRP,
    routine: Option<DRIVER_CANCEL>,
) -> Option<DRIVER_CANCEL> {
    let new = routine.map_or(ptr::null_mut(), |r| r as *mut c_void);
    // SAFETY: `CancelRoutine` is a pointer-sized, pointer-aligned field of the
    // IRP; all concurrent accesses to it go through this atomic view.
    let old = unsafe {
        let slot = &*(ptr::addr_of_mut!((*irp).CancelRoutine) as *const AtomicPtr<c_void>);
        slot.swap(new, Ordering::AcqRel)
    };
    if old.is_null() {
        None
    } else {
        // SAFETY: a non-null value in the slot was stored from a `DRIVER_CANCEL`.
        Some(unsafe { core::mem::transmute::<*mut c_void, DRIVER_CANCEL>(old) })
    }
}

/// `IoGetFunctionCodeFromCtlCode`.
pub const fn IoGetFunctionCodeFromCtlCode(code: u32) -> u32 {
    FUNCTION_FROM_CTL_CODE(code)
}

/// `InitializeListHead`.
///
/// # Safety
/// `head` must point at a writable `LIST_ENTRY`.
pub unsafe fn InitializeListHead(head: *mut LIST_ENTRY) {
    // SAFETY: the caller guarantees `head` is writable.
    unsafe {
        (*head).Flink = head;
        (*head).Blink = head;
    }
}

/// `IsListEmpty`.
///
/// # Safety
/// `head` must point at an initialised list head.
pub unsafe fn IsListEmpty(head: *const LIST_ENTRY) -> bool {
    // SAFETY: the caller guarantees `head` is a list head.
    unsafe { core::ptr::eq((*head).Flink, head) }
}

/// `InsertTailList`.
///
/// # Safety
/// `head` must be an initialised list head and `entry` a writable entry not on any list.
pub unsafe fn InsertTailList(head: *mut LIST_ENTRY, entry: *mut LIST_ENTRY) {
    // SAFETY: the caller guarantees both are valid; links stay consistent.
    unsafe {
        let blink = (*head).Blink;
        (*entry).Flink = head;
        (*entry).Blink = blink;
        (*blink).Flink = entry;
        (*head).Blink = entry;
    }
}

/// `RemoveEntryList`: unlinks `entry`; true if the list is now empty.
///
/// # Safety
/// `entry` must be on a well-formed list.
pub unsafe fn RemoveEntryList(entry: *mut LIST_ENTRY) -> bool {
    // SAFETY: the caller guarantees `entry` is linked in a well-formed list.
    unsafe {
        let flink = (*entry).Flink;
        let blink = (*entry).Blink;
        (*blink).Flink = flink;
        (*flink).Blink = blink;
        flink == blink
    }
}

/// `RemoveHeadList`: unlinks and returns the first entry (the head itself if empty).
///
/// # Safety
/// `head` must be an initialised list head of a well-formed list.
pub unsafe fn RemoveHeadList(head: *mut LIST_ENTRY) -> *mut LIST_ENTRY {
    // SAFETY: the caller guarantees a well-formed list.
    unsafe {
        let entry = (*head).Flink;
        if entry != head {
            RemoveEntryList(entry);
        }
        entry
    }
}
