//! The I/O manager's ntoskrnl exports: thin `extern "system"` shims with
//! Windows' names over the routines of this module (listed in
//! `ntos/exports/io.txt`).
#![allow(non_snake_case)]

use super::device::*;
use super::irp::*;
use super::mdl::*;
use super::*;
use core::ffi::c_void;
use core::ptr;

/// # Safety
/// `s` null or a readable `UNICODE_STRING`.
unsafe fn name_of(s: *const UNICODE_STRING) -> Option<String> {
    // SAFETY: the caller guarantees `s`.
    unsafe { s.as_ref().map(|s| unicode_to_string(s)) }
}

/// `IoCreateDevice`.
///
/// # Safety
/// Driver-supplied pointers must be valid.
#[no_mangle]
pub unsafe extern "system" fn IoCreateDevice(
    driver: *mut DRIVER_OBJECT,
    extension_size: u32,
    name: *mut UNICODE_STRING,
    device_type: u32,
    characteristics: u32,
    exclusive: u8,
    out: *mut *mut DEVICE_OBJECT,
) -> NtStatus {
    if out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let name = name_of(name);
        match io_create_device(
            driver,
            extension_size,
            name.as_deref(),
            device_type,
            characteristics,
            exclusive != 0,
        ) {
            Ok(d) => {
                *out = d;
                STATUS_SUCCESS
            }
            Err(e) => {
                *out = ptr::null_mut();
                e
            }
        }
    }
}

/// `IoDeleteDevice`.
///
/// # Safety
/// A device object of the caller's.
#[no_mangle]
pub unsafe extern "system" fn IoDeleteDevice(dev: *mut DEVICE_OBJECT) {
    // SAFETY: forwarded caller guarantee.
    unsafe { io_delete_device(dev) }
}

/// `IoCreateSymbolicLink`.
///
/// # Safety
/// Both strings readable.
#[no_mangle]
pub unsafe extern "system" fn IoCreateSymbolicLink(
    link: *mut UNICODE_STRING,
    target: *mut UNICODE_STRING,
) -> NtStatus {
    // SAFETY: forwarded caller guarantees.
    let (Some(l), Some(t)) = (unsafe { name_of(link) }, unsafe { name_of(target) }) else {
        return STATUS_INVALID_PARAMETER;
    };
    match io_create_symbolic_link(&l, &t) {
        Ok(()) => STATUS_SUCCESS,
        Err(e) => e,
    }
}

/// `IoDeleteSymbolicLink`.
///
/// # Safety
/// The string readable.
#[no_mangle]
pub unsafe extern "system" fn IoDeleteSymbolicLink(link: *mut UNICODE_STRING) -> NtStatus {
    // SAFETY: forwarded caller guarantee.
    let Some(l) = (unsafe { name_of(link) }) else {
        return STATUS_INVALID_PARAMETER;
    };
    match io_delete_symbolic_link(&l) {
        Ok(()) => STATUS_SUCCESS,
        Err(e) => e,
    }
}

/// `IoAttachDeviceToDeviceStack`.
///
/// # Safety
/// Live device objects.
#[no_mangle]
pub unsafe extern "system" fn IoAttachDeviceToDeviceStack(
    source: *mut DEVICE_OBJECT,
    target: *mut DEVICE_OBJECT,
) -> *mut DEVICE_OBJECT {
    // SAFETY: forwarded caller guarantee.
    unsafe { io_attach_device_to_device_stack(source, target) }
}

/// `IoDetachDevice`.
///
/// # Safety
/// A live device object.
#[no_mangle]
pub unsafe extern "system" fn IoDetachDevice(target: *mut DEVICE_OBJECT) {
    // SAFETY: forwarded caller guarantee.
    unsafe { io_detach_device(target) }
}

/// `IoGetAttachedDevice`.
///
/// # Safety
/// A live device object.
#[no_mangle]
pub unsafe extern "system" fn IoGetAttachedDevice(dev: *mut DEVICE_OBJECT) -> *mut DEVICE_OBJECT {
    // SAFETY: forwarded caller guarantee.
    unsafe { io_get_attached_device(dev) }
}

/// `IoGetAttachedDeviceReference`: the top of the stack, referenced.
///
/// # Safety
/// A live device object.
#[no_mangle]
pub unsafe extern "system" fn IoGetAttachedDeviceReference(
    dev: *mut DEVICE_OBJECT,
) -> *mut DEVICE_OBJECT {
    DATABASE_LOCK.with(|_| {
        // SAFETY: forwarded caller guarantee; stacks are stable under the lock.
        let top = unsafe { io_get_attached_device(dev) };
        if let Some(id) = object_of(top as u64, IoKind::Device) {
            let _ = crate::ob::object::ob_reference_object(id);
        }
        top
    })
}

/// `IoGetDeviceObjectPointer`.
///
/// # Safety
/// The name readable; the out pointers writable.
#[no_mangle]
pub unsafe extern "system" fn IoGetDeviceObjectPointer(
    name: *mut UNICODE_STRING,
    desired: u32,
    file_out: *mut *mut FILE_OBJECT,
    dev_out: *mut *mut DEVICE_OBJECT,
) -> NtStatus {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let Some(n) = name_of(name) else {
            return STATUS_INVALID_PARAMETER;
        };
        if file_out.is_null() || dev_out.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        match super::file::io_get_device_object_pointer(&n, desired) {
            Ok((f, d)) => {
                *file_out = f;
                *dev_out = d;
                STATUS_SUCCESS
            }
            Err(e) => e,
        }
    }
}

/// The object id of any I/O object body (drivers pass device, file and
/// driver objects to `ObfReferenceObject`/`ObfDereferenceObject`).
fn io_object_id(p: *mut c_void) -> Option<ObjectId> {
    [
        IoKind::Device,
        IoKind::File,
        IoKind::Driver,
        IoKind::Completion,
    ]
    .into_iter()
    .find_map(|k| object_of(p as u64, k))
    .or_else(|| crate::ps::exports::object_of_pointer(p as u64))
}

/// `ObfReferenceObject` for I/O objects (the objects drivers hold pointers
/// to); returns the new pointer count (0 for a pointer that is not one).
#[no_mangle]
pub extern "system" fn ObfReferenceObject(object: *mut c_void) -> isize {
    match io_object_id(object) {
        Some(id) => {
            let _ = crate::ob::object::ob_reference_object(id);
            crate::ob::OB_HEADERS.pointer_count(id) as isize
        }
        None => 0,
    }
}

/// `ObfDereferenceObject` for I/O objects.
#[no_mangle]
pub extern "system" fn ObfDereferenceObject(object: *mut c_void) -> isize {
    match io_object_id(object) {
        Some(id) => {
            let left = crate::ob::OB_HEADERS.pointer_count(id).saturating_sub(1) as isize;
            ob_dereference_object(id);
            left
        }
        None => 0,
    }
}

/// `IoAllocateIrp`.
#[no_mangle]
pub extern "system" fn IoAllocateIrp(stack_size: i8, charge_quota: u8) -> *mut IRP {
    io_allocate_irp(stack_size, charge_quota != 0)
}

/// `IoFreeIrp`.
///
/// # Safety
/// An IRP from `IoAllocateIrp` nobody uses.
#[no_mangle]
pub unsafe extern "system" fn IoFreeIrp(irp: *mut IRP) {
    // SAFETY: forwarded caller guarantee.
    unsafe { io_free_irp(irp) }
}

/// `IoInitializeIrp` (an IRP from `IoAllocateIrp` keeps its ntrs extension).
///
/// # Safety
/// `irp` writable for `packet_size` bytes.
#[no_mangle]
pub unsafe extern "system" fn IoInitializeIrp(irp: *mut IRP, packet_size: u16, stack_size: i8) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        let ours =
            (*irp).AllocationFlags & IRP_ALLOCATED_BY_IO != 0 && (*irp).StackCount == stack_size;
        initialize_irp(irp, packet_size, stack_size);
        if ours {
            (*irp).AllocationFlags = IRP_ALLOCATED_BY_IO;
        }
    }
}

/// `IoReuseIrp`: reinitialises an IRP for another request with `status`.
///
/// # Safety
/// An IRP the caller owns.
#[no_mangle]
pub unsafe extern "system" fn IoReuseIrp(irp: *mut IRP, status: NtStatus) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        let flags = (*irp).AllocationFlags;
        let (size, count) = ((*irp).Size, (*irp).StackCount);
        initialize_irp(irp, size, count);
        (*irp).AllocationFlags = flags;
        (*irp).IoStatus.Status = status;
    }
}

/// `IoBuildDeviceIoControlRequest`.
///
/// # Safety
/// As `io_build_device_io_control_request`.
#[no_mangle]
pub unsafe extern "system" fn IoBuildDeviceIoControlRequest(
    code: u32,
    device: *mut DEVICE_OBJECT,
    input: *mut c_void,
    input_length: u32,
    output: *mut c_void,
    output_length: u32,
    internal: u8,
    event: *mut KEVENT,
    iosb: *mut IO_STATUS_BLOCK,
) -> *mut IRP {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        io_build_device_io_control_request(
            code,
            device,
            input,
            input_length,
            output,
            output_length,
            internal != 0,
            event,
            iosb,
        )
    }
}

/// `IoBuildSynchronousFsdRequest`: a thread's read, write, flush or
/// shutdown request; the I/O manager frees the IRP on completion after
/// storing the status block and signalling `event`.
///
/// # Safety
/// As `build_request`.
#[no_mangle]
pub unsafe extern "system" fn IoBuildSynchronousFsdRequest(
    major: u32,
    device: *mut DEVICE_OBJECT,
    buffer: *mut c_void,
    length: u32,
    offset: *mut i64,
    event: *mut KEVENT,
    iosb: *mut IO_STATUS_BLOCK,
) -> *mut IRP {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        build_request(
            major as u8,
            device,
            buffer,
            length,
            offset.as_ref().copied(),
            event,
            iosb,
            true,
        )
    }
}

/// `IoBuildAsynchronousFsdRequest`: the caller's completion routine frees
/// the IRP (`IoFreeIrp`) and returns STATUS_MORE_PROCESSING_REQUIRED.
///
/// # Safety
/// As `build_request`.
#[no_mangle]
pub unsafe extern "system" fn IoBuildAsynchronousFsdRequest(
    major: u32,
    device: *mut DEVICE_OBJECT,
    buffer: *mut c_void,
    length: u32,
    offset: *mut i64,
    iosb: *mut IO_STATUS_BLOCK,
) -> *mut IRP {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        build_request(
            major as u8,
            device,
            buffer,
            length,
            offset.as_ref().copied(),
            ptr::null_mut(),
            iosb,
            false,
        )
    }
}

/// `IofCallDriver`.
///
/// # Safety
/// As `iof_call_driver`.
#[no_mangle]
pub unsafe extern "system" fn IofCallDriver(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: forwarded caller guarantees.
    unsafe { iof_call_driver(device, irp) }
}

/// `IofCompleteRequest`.
///
/// # Safety
/// As `iof_complete_request`.
#[no_mangle]
pub unsafe extern "system" fn IofCompleteRequest(irp: *mut IRP, boost: i8) {
    // SAFETY: forwarded caller guarantees.
    unsafe { iof_complete_request(irp, boost) }
}

/// `IoCancelIrp`.
///
/// # Safety
/// A live IRP.
#[no_mangle]
pub unsafe extern "system" fn IoCancelIrp(irp: *mut IRP) -> u8 {
    // SAFETY: forwarded caller guarantee.
    unsafe { io_cancel_irp(irp) as u8 }
}

/// `IoAcquireCancelSpinLock`.
///
/// # Safety
/// `irql` writable.
#[no_mangle]
pub unsafe extern "system" fn IoAcquireCancelSpinLock(irql: *mut u8) {
    let old = io_acquire_cancel_spin_lock();
    // SAFETY: forwarded caller guarantee.
    unsafe { *irql = old };
}

/// `IoReleaseCancelSpinLock`.
#[no_mangle]
pub extern "system" fn IoReleaseCancelSpinLock(irql: u8) {
    io_release_cancel_spin_lock(irql)
}

/// `IoAllocateMdl`.
///
/// # Safety
/// `irp` null or an IRP of the caller's.
#[no_mangle]
pub unsafe extern "system" fn IoAllocateMdl(
    va: *mut c_void,
    length: u32,
    secondary: u8,
    _charge_quota: u8,
    irp: *mut IRP,
) -> *mut MDL {
    // SAFETY: forwarded caller guarantee.
    unsafe { io_allocate_mdl(va, length, secondary != 0, irp) }
}

/// `IoFreeMdl`.
///
/// # Safety
/// An MDL from `IoAllocateMdl`.
#[no_mangle]
pub unsafe extern "system" fn IoFreeMdl(mdl: *mut MDL) {
    // SAFETY: forwarded caller guarantee.
    unsafe { io_free_mdl(mdl) }
}

/// `MmProbeAndLockPages`: on failure the MDL stays unlocked
/// (`MDL_PAGES_LOCKED` clear) instead of raising an exception.
///
/// # Safety
/// An initialised MDL.
#[no_mangle]
pub unsafe extern "system" fn MmProbeAndLockPages(mdl: *mut MDL, _mode: i8, operation: u32) {
    // SAFETY: forwarded caller guarantee.
    let _ = unsafe { mm_probe_and_lock_pages(mdl, operation) };
}

/// `MmUnlockPages`.
///
/// # Safety
/// A locked MDL.
#[no_mangle]
pub unsafe extern "system" fn MmUnlockPages(mdl: *mut MDL) {
    // SAFETY: forwarded caller guarantee.
    unsafe { mm_unlock_pages(mdl) }
}

/// `MmBuildMdlForNonPagedPool`.
///
/// # Safety
/// An MDL of nonpaged memory.
#[no_mangle]
pub unsafe extern "system" fn MmBuildMdlForNonPagedPool(mdl: *mut MDL) {
    // SAFETY: forwarded caller guarantee.
    unsafe { mm_build_mdl_for_non_paged_pool(mdl) }
}

/// `MmMapLockedPagesSpecifyCache` (kernel mode only; other modes get null).
///
/// # Safety
/// A locked MDL.
#[no_mangle]
pub unsafe extern "system" fn MmMapLockedPagesSpecifyCache(
    mdl: *mut MDL,
    mode: i8,
    cache: u32,
    _requested: *mut c_void,
    _bugcheck: u32,
    _priority: u32,
) -> *mut c_void {
    if mode != KERNEL_MODE {
        return ptr::null_mut();
    }
    // SAFETY: forwarded caller guarantee.
    unsafe { mm_map_locked_pages(mdl, cache) }
}

/// `MmUnmapLockedPages`.
///
/// # Safety
/// A mapping from `MmMapLockedPagesSpecifyCache`.
#[no_mangle]
pub unsafe extern "system" fn MmUnmapLockedPages(base: *mut c_void, mdl: *mut MDL) {
    // SAFETY: forwarded caller guarantee.
    unsafe { mm_unmap_locked_pages(base, mdl) }
}

/// # Safety
/// `file` a live file object.
unsafe fn open_access(file: *mut FILE_OBJECT) -> ::io::share::OpenAccess {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        ::io::share::OpenAccess {
            read: (*file).ReadAccess != 0,
            write: (*file).WriteAccess != 0,
            delete: (*file).DeleteAccess != 0,
            shared_read: (*file).SharedRead != 0,
            shared_write: (*file).SharedWrite != 0,
            shared_delete: (*file).SharedDelete != 0,
        }
    }
}

/// # Safety
/// `file` a live file object.
unsafe fn record_access(file: *mut FILE_OBJECT, a: &::io::share::OpenAccess) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        (*file).ReadAccess = a.read as u8;
        (*file).WriteAccess = a.write as u8;
        (*file).DeleteAccess = a.delete as u8;
        (*file).SharedRead = a.shared_read as u8;
        (*file).SharedWrite = a.shared_write as u8;
        (*file).SharedDelete = a.shared_delete as u8;
    }
}

/// `IoCheckShareAccess`: records the open's access in the file object and
/// checks (and with `update`, counts) it against `share_access`.
///
/// # Safety
/// A live file object and a writable `SHARE_ACCESS` the caller serialises.
#[no_mangle]
pub unsafe extern "system" fn IoCheckShareAccess(
    desired: u32,
    share: u32,
    file: *mut FILE_OBJECT,
    share_access: *mut SHARE_ACCESS,
    update: u8,
) -> NtStatus {
    let a = ::io::share::OpenAccess::new(desired, share);
    // SAFETY: forwarded caller guarantees.
    unsafe {
        record_access(file, &a);
        ::io::share::check_share_access(&a, &mut *share_access, update != 0)
    }
}

/// `IoSetShareAccess`.
///
/// # Safety
/// As `IoCheckShareAccess`.
#[no_mangle]
pub unsafe extern "system" fn IoSetShareAccess(
    desired: u32,
    share: u32,
    file: *mut FILE_OBJECT,
    share_access: *mut SHARE_ACCESS,
) {
    let a = ::io::share::OpenAccess::new(desired, share);
    // SAFETY: forwarded caller guarantees.
    unsafe {
        record_access(file, &a);
        ::io::share::set_share_access(&a, &mut *share_access);
    }
}

/// `IoRemoveShareAccess`.
///
/// # Safety
/// As `IoCheckShareAccess`.
#[no_mangle]
pub unsafe extern "system" fn IoRemoveShareAccess(
    file: *mut FILE_OBJECT,
    share_access: *mut SHARE_ACCESS,
) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let a = open_access(file);
        ::io::share::remove_share_access(&a, &mut *share_access);
    }
}

/// The cancel routine of IRPs in a cancel-safe queue: releases the cancel
/// spin lock and lets `lib/io::csq` take the IRP out and hand it to the
/// driver's `CsqCompleteCanceledIrp`.
///
/// # Safety
/// Called by `IoCancelIrp` with an IRP queued by `IoCsqInsertIrp`.
unsafe extern "system" fn csq_cancel_routine(_dev: *mut DEVICE_OBJECT, irp: *mut IRP) {
    // SAFETY: the cancel routine owns the IRP; the cancel lock is held.
    unsafe {
        io_release_cancel_spin_lock((*irp).CancelIrql);
        ::io::csq::cancel(irp);
    }
}

/// `IoCsqInitialize`.
///
/// # Safety
/// `csq` writable.
#[no_mangle]
pub unsafe extern "system" fn IoCsqInitialize(
    csq: *mut IO_CSQ,
    insert: IO_CSQ_INSERT_IRP,
    remove: IO_CSQ_REMOVE_IRP,
    peek: IO_CSQ_PEEK_NEXT_IRP,
    acquire: IO_CSQ_ACQUIRE_LOCK,
    release: IO_CSQ_RELEASE_LOCK,
    complete_canceled: IO_CSQ_COMPLETE_CANCELED_IRP,
) -> NtStatus {
    if csq.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: forwarded caller guarantee.
    unsafe {
        ::io::csq::initialize(
            csq,
            insert,
            remove,
            peek,
            acquire,
            release,
            complete_canceled,
        )
    }
}

/// `IoCsqInsertIrp`.
///
/// # Safety
/// An initialised queue, the driver's IRP, a writable context or null.
#[no_mangle]
pub unsafe extern "system" fn IoCsqInsertIrp(
    csq: *mut IO_CSQ,
    irp: *mut IRP,
    context: *mut IO_CSQ_IRP_CONTEXT,
) {
    // SAFETY: forwarded caller guarantees.
    unsafe { ::io::csq::insert(csq, irp, context, csq_cancel_routine) }
}

/// `IoCsqRemoveNextIrp`.
///
/// # Safety
/// An initialised queue.
#[no_mangle]
pub unsafe extern "system" fn IoCsqRemoveNextIrp(
    csq: *mut IO_CSQ,
    peek_context: *mut c_void,
) -> *mut IRP {
    // SAFETY: forwarded caller guarantee.
    unsafe { ::io::csq::remove_next(csq, peek_context) }
}

/// `IoCsqRemoveIrp`.
///
/// # Safety
/// An initialised queue and a context from `IoCsqInsertIrp`.
#[no_mangle]
pub unsafe extern "system" fn IoCsqRemoveIrp(
    csq: *mut IO_CSQ,
    context: *mut IO_CSQ_IRP_CONTEXT,
) -> *mut IRP {
    // SAFETY: forwarded caller guarantees.
    unsafe { ::io::csq::remove(csq, context) }
}
