extern crate std;

use crate::*;
use core::ffi::c_void;
use core::ptr;
use nt::status::*;
use nt::NtStatus;
use std::vec;
use std::vec::Vec;

/// An IRP with `n` stack locations in 8-byte aligned host memory.
fn irp(n: i8) -> (Vec<u64>, *mut IRP) {
    let size = IoSizeOfIrp(n);
    let mut mem = vec![0xAAu64; size.div_ceil(8)];
    let irp = mem.as_mut_ptr() as *mut IRP;
    // SAFETY: `mem` is 8-byte aligned and `size` bytes long.
    unsafe { initialize_irp(irp, size as u16, n) };
    (mem, irp)
}

fn stack(irp: *mut IRP, i: usize) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller passes an index below StackCount.
    unsafe { (irp.add(1) as *mut IO_STACK_LOCATION).add(i) }
}

#[test]
fn sizes_match_windows_x64() {
    use core::mem::size_of;
    assert_eq!(size_of::<IRP>(), 0xD0);
    assert_eq!(size_of::<IO_STACK_LOCATION>(), 0x48);
    assert_eq!(size_of::<DEVICE_OBJECT>(), 0x150);
    assert_eq!(size_of::<DRIVER_OBJECT>(), 0x150);
    assert_eq!(size_of::<FILE_OBJECT>(), 0xD8);
    assert_eq!(size_of::<MDL>(), 0x30);
    assert_eq!(size_of::<KEVENT>(), 0x18);
    assert_eq!(core::mem::align_of::<DEVICE_OBJECT>(), 16);
    assert_eq!(IoSizeOfIrp(3), 0xD0 + 3 * 0x48);
}

#[test]
fn initialize_irp_points_past_the_last_location() {
    let (_m, irp) = irp(4);
    // SAFETY: `irp` was just initialised in live memory.
    unsafe {
        assert_eq!((*irp).Type, IO_TYPE_IRP);
        assert_eq!((*irp).Size as usize, IoSizeOfIrp(4));
        assert_eq!((*irp).StackCount, 4);
        assert_eq!((*irp).CurrentLocation, 5);
        assert_eq!(IoGetCurrentIrpStackLocation(irp), stack(irp, 4));
        assert_eq!(IoGetNextIrpStackLocation(irp), stack(irp, 3));
        let head = ptr::addr_of_mut!((*irp).ThreadListEntry);
        assert!(IsListEmpty(head));
        assert!((*irp).MdlAddress.is_null() && (*irp).CancelRoutine.is_none());
        assert_eq!((*irp).IoStatus.Status, STATUS_SUCCESS);
    }
}

#[test]
fn set_next_and_skip_move_together() {
    let (_m, irp) = irp(3);
    // SAFETY: the IRP has 3 locations and we stay inside them.
    unsafe {
        IoSetNextIrpStackLocation(irp);
        assert_eq!((*irp).CurrentLocation, 3);
        assert_eq!(IoGetCurrentIrpStackLocation(irp), stack(irp, 2));
        IoSetNextIrpStackLocation(irp);
        assert_eq!((*irp).CurrentLocation, 2);
        assert_eq!(IoGetCurrentIrpStackLocation(irp), stack(irp, 1));
        IoSkipCurrentIrpStackLocation(irp);
        assert_eq!((*irp).CurrentLocation, 3);
        assert_eq!(IoGetCurrentIrpStackLocation(irp), stack(irp, 2));
        // After a skip the next driver's location is this driver's own.
        assert_eq!(IoGetNextIrpStackLocation(irp), stack(irp, 1));
    }
}

unsafe extern "system" fn done(_d: *mut DEVICE_OBJECT, _i: *mut IRP, _c: *mut c_void) -> NtStatus {
    STATUS_SUCCESS
}

#[test]
fn copy_to_next_leaves_out_the_completion_routine_and_control() {
    let (_m, irp) = irp(2);
    // SAFETY: the IRP has 2 locations; the filter is at location 2, the next is 1.
    unsafe {
        IoSetNextIrpStackLocation(irp);
        let cur = IoGetCurrentIrpStackLocation(irp);
        (*cur).MajorFunction = IRP_MJ_READ;
        (*cur).MinorFunction = IRP_MN_NORMAL;
        (*cur).Flags = SL_KEY_SPECIFIED;
        (*cur).Control = SL_PENDING_RETURNED | SL_INVOKE_ON_SUCCESS;
        (*cur).Parameters.Read.Length = 512;
        (*cur).Parameters.Read.ByteOffset = 0x1000;
        (*cur).FileObject = 0x1234 as *mut FILE_OBJECT;
        (*cur).DeviceObject = 0x5678 as *mut DEVICE_OBJECT;
        (*cur).CompletionRoutine = Some(done);
        (*cur).Context = 0x99 as *mut c_void;
        let next = IoGetNextIrpStackLocation(irp);
        (*next).CompletionRoutine = None;
        (*next).Context = ptr::null_mut();
        IoCopyCurrentIrpStackLocationToNext(irp);
        assert_eq!((*next).MajorFunction, IRP_MJ_READ);
        assert_eq!((*next).Flags, SL_KEY_SPECIFIED);
        assert_eq!((*next).Control, 0);
        assert_eq!((*next).Parameters.Read.Length, 512);
        assert_eq!((*next).Parameters.Read.ByteOffset, 0x1000);
        assert_eq!((*next).FileObject as usize, 0x1234);
        assert_eq!((*next).DeviceObject as usize, 0x5678);
        assert!((*next).CompletionRoutine.is_none());
        assert!((*next).Context.is_null());
    }
}

#[test]
fn set_completion_routine_fills_the_next_location() {
    let (_m, irp) = irp(2);
    // SAFETY: the IRP has 2 locations.
    unsafe {
        IoSetNextIrpStackLocation(irp);
        IoSetCompletionRoutine(irp, done, 0x42 as *mut c_void, true, false, true);
        let next = stack(irp, 0);
        assert!((*next).CompletionRoutine.is_some());
        assert_eq!((*next).Context as usize, 0x42);
        assert_eq!((*next).Control, SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_CANCEL);
        IoMarkIrpPending(irp);
        assert_eq!(
            (*stack(irp, 1)).Control & SL_PENDING_RETURNED,
            SL_PENDING_RETURNED
        );
    }
}

unsafe extern "system" fn cancel(_d: *mut DEVICE_OBJECT, _i: *mut IRP) {}

#[test]
fn set_cancel_routine_returns_the_previous_one() {
    let (_m, irp) = irp(1);
    // SAFETY: a live IRP.
    unsafe {
        assert!(IoSetCancelRoutine(irp, Some(cancel)).is_none());
        assert!(IoSetCancelRoutine(irp, None).is_some());
        assert!(IoSetCancelRoutine(irp, None).is_none());
    }
}

#[test]
fn ctl_codes_match_the_headers() {
    // IOCTL_DISK_GET_DRIVE_GEOMETRY_EX = CTL_CODE(IOCTL_DISK_BASE, 0x28, METHOD_BUFFERED, FILE_ANY_ACCESS)
    assert_eq!(
        CTL_CODE(FILE_DEVICE_DISK, 0x28, METHOD_BUFFERED, FILE_ANY_ACCESS),
        0x0007_00A0
    );
    // FSCTL_LOCK_VOLUME = CTL_CODE(FILE_DEVICE_FILE_SYSTEM, 6, METHOD_BUFFERED, FILE_ANY_ACCESS)
    assert_eq!(
        CTL_CODE(FILE_DEVICE_FILE_SYSTEM, 6, METHOD_BUFFERED, FILE_ANY_ACCESS),
        0x0009_0018
    );
    // IOCTL_MOUNTMGR_QUERY_POINTS = CTL_CODE('m', 2, METHOD_BUFFERED, FILE_ANY_ACCESS)
    assert_eq!(
        CTL_CODE(0x6D, 2, METHOD_BUFFERED, FILE_ANY_ACCESS),
        0x006D_0008
    );
    let c = CTL_CODE(
        FILE_DEVICE_UNKNOWN,
        0x801,
        METHOD_OUT_DIRECT,
        FILE_READ_ACCESS,
    );
    assert_eq!(METHOD_FROM_CTL_CODE(c), METHOD_OUT_DIRECT);
    assert_eq!(DEVICE_TYPE_FROM_CTL_CODE(c), FILE_DEVICE_UNKNOWN);
    assert_eq!(ACCESS_FROM_CTL_CODE(c), FILE_READ_ACCESS);
    assert_eq!(FUNCTION_FROM_CTL_CODE(c), 0x801);
    assert_eq!(IRP_MJ_NAMES[IRP_MJ_PNP as usize], "IRP_MJ_PNP");
    assert_eq!(
        IRP_MJ_NAMES[IRP_MJ_DEVICE_CONTROL as usize],
        "IRP_MJ_DEVICE_CONTROL"
    );
}

#[test]
fn mdl_initialisation_splits_offset_and_counts_pages() {
    let mut mem = vec![0u64; 16];
    let mdl = mem.as_mut_ptr() as *mut MDL;
    let va = 0x1_0000_0ff0usize as *mut c_void;
    assert_eq!(address_and_size_to_span_pages(0xff0, 0x20), 2);
    assert_eq!(address_and_size_to_span_pages(0x1000, 0x1000), 1);
    assert_eq!(address_and_size_to_span_pages(0x1000, 0), 0);
    // SAFETY: `mem` is 128 bytes, more than a 2-page MDL needs.
    unsafe {
        MmInitializeMdl(mdl, va, 0x20);
        assert_eq!((*mdl).StartVa as usize, 0x1_0000_0000);
        assert_eq!((*mdl).ByteOffset, 0xff0);
        assert_eq!((*mdl).ByteCount, 0x20);
        assert_eq!((*mdl).Size as usize, 0x30 + 2 * 8);
        assert_eq!(MmGetMdlVirtualAddress(mdl), va);
        assert_eq!(MmGetMdlPfnArray(mdl) as usize, mdl as usize + 0x30);
    }
}

#[test]
fn list_helpers() {
    let mut head = LIST_ENTRY::zeroed();
    let mut a = LIST_ENTRY::zeroed();
    let mut b = LIST_ENTRY::zeroed();
    // SAFETY: all entries live on this stack frame for the whole test.
    unsafe {
        InitializeListHead(&mut head);
        assert!(IsListEmpty(&head));
        InsertTailList(&mut head, &mut a);
        InsertTailList(&mut head, &mut b);
        assert_eq!(RemoveHeadList(&mut head), &mut a as *mut _);
        assert!(!IsListEmpty(&head));
        assert!(RemoveEntryList(&mut b));
        assert!(IsListEmpty(&head));
        assert_eq!(RemoveHeadList(&mut head), &mut head as *mut _);
    }
}
