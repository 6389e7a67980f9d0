//! The routines drivers import from ntoskrnl.exe (feature `driver`), linked
//! by name against the import library the kernel build produces. Each is
//! implemented in ntos by a `#[no_mangle] extern "system"` shim of the same
//! name, listed in `ntos/exports/*.txt`.

use crate::base::*;
use crate::io::*;
use core::ffi::c_void;
use nt::NtStatus;

#[link(name = "ntoskrnl")]
extern "system" {
    // Devices and drivers.
    pub fn IoCreateDevice(
        DriverObject: *mut DRIVER_OBJECT,
        DeviceExtensionSize: u32,
        DeviceName: *mut UNICODE_STRING,
        DeviceType: DEVICE_TYPE,
        DeviceCharacteristics: u32,
        Exclusive: BOOLEAN,
        DeviceObject: *mut *mut DEVICE_OBJECT,
    ) -> NtStatus;
    pub fn IoDeleteDevice(DeviceObject: *mut DEVICE_OBJECT);
    pub fn IoCreateSymbolicLink(
        SymbolicLinkName: *mut UNICODE_STRING,
        DeviceName: *mut UNICODE_STRING,
    ) -> NtStatus;
    pub fn IoDeleteSymbolicLink(SymbolicLinkName: *mut UNICODE_STRING) -> NtStatus;
    pub fn IoAttachDeviceToDeviceStack(
        SourceDevice: *mut DEVICE_OBJECT,
        TargetDevice: *mut DEVICE_OBJECT,
    ) -> *mut DEVICE_OBJECT;
    pub fn IoDetachDevice(TargetDevice: *mut DEVICE_OBJECT);
    pub fn IoGetAttachedDevice(DeviceObject: *mut DEVICE_OBJECT) -> *mut DEVICE_OBJECT;
    pub fn IoGetAttachedDeviceReference(DeviceObject: *mut DEVICE_OBJECT) -> *mut DEVICE_OBJECT;
    pub fn IoGetDeviceObjectPointer(
        ObjectName: *mut UNICODE_STRING,
        DesiredAccess: ACCESS_MASK,
        FileObject: *mut *mut FILE_OBJECT,
        DeviceObject: *mut *mut DEVICE_OBJECT,
    ) -> NtStatus;
    pub fn ObfReferenceObject(Object: *mut c_void) -> isize;
    pub fn ObfDereferenceObject(Object: *mut c_void) -> isize;

    // IRPs.
    pub fn IoAllocateIrp(StackSize: i8, ChargeQuota: BOOLEAN) -> *mut IRP;
    pub fn IoFreeIrp(Irp: *mut IRP);
    pub fn IoInitializeIrp(Irp: *mut IRP, PacketSize: u16, StackSize: i8);
    pub fn IoReuseIrp(Irp: *mut IRP, Iostatus: NtStatus);
    pub fn IoBuildDeviceIoControlRequest(
        IoControlCode: u32,
        DeviceObject: *mut DEVICE_OBJECT,
        InputBuffer: *mut c_void,
        InputBufferLength: u32,
        OutputBuffer: *mut c_void,
        OutputBufferLength: u32,
        InternalDeviceIoControl: BOOLEAN,
        Event: *mut KEVENT,
        IoStatusBlock: *mut IO_STATUS_BLOCK,
    ) -> *mut IRP;
    pub fn IoBuildSynchronousFsdRequest(
        MajorFunction: u32,
        DeviceObject: *mut DEVICE_OBJECT,
        Buffer: *mut c_void,
        Length: u32,
        StartingOffset: *mut LARGE_INTEGER,
        Event: *mut KEVENT,
        IoStatusBlock: *mut IO_STATUS_BLOCK,
    ) -> *mut IRP;
    pub fn IoBuildAsynchronousFsdRequest(
        MajorFunction: u32,
        DeviceObject: *mut DEVICE_OBJECT,
        Buffer: *mut c_void,
        Length: u32,
        StartingOffset: *mut LARGE_INTEGER,
        IoStatusBlock: *mut IO_STATUS_BLOCK,
    ) -> *mut IRP;
    pub fn IofCallDriver(DeviceObject: *mut DEVICE_OBJECT, Irp: *mut IRP) -> NtStatus;
    pub fn IofCompleteRequest(Irp: *mut IRP, PriorityBoost: i8);
    pub fn IoCancelIrp(Irp: *mut IRP) -> BOOLEAN;
    pub fn IoAcquireCancelSpinLock(Irql: *mut KIRQL);
    pub fn IoReleaseCancelSpinLock(Irql: KIRQL);

    // Cancel-safe queues.
    pub fn IoCsqInitialize(
        Csq: *mut IO_CSQ,
        CsqInsertIrp: IO_CSQ_INSERT_IRP,
        CsqRemoveIrp: IO_CSQ_REMOVE_IRP,
        CsqPeekNextIrp: IO_CSQ_PEEK_NEXT_IRP,
        CsqAcquireLock: IO_CSQ_ACQUIRE_LOCK,
        CsqReleaseLock: IO_CSQ_RELEASE_LOCK,
        CsqCompleteCanceledIrp: IO_CSQ_COMPLETE_CANCELED_IRP,
    ) -> NtStatus;
    pub fn IoCsqInsertIrp(Csq: *mut IO_CSQ, Irp: *mut IRP, Context: *mut IO_CSQ_IRP_CONTEXT);
    pub fn IoCsqRemoveNextIrp(Csq: *mut IO_CSQ, PeekContext: *mut c_void) -> *mut IRP;
    pub fn IoCsqRemoveIrp(Csq: *mut IO_CSQ, Context: *mut IO_CSQ_IRP_CONTEXT) -> *mut IRP;

    // File systems (ntos/exports/fs.txt).
    pub fn IoRegisterFileSystem(DeviceObject: *mut DEVICE_OBJECT);
    pub fn IoUnregisterFileSystem(DeviceObject: *mut DEVICE_OBJECT);
    pub fn IoAcquireVpbSpinLock(Irql: *mut u8);
    pub fn IoReleaseVpbSpinLock(Irql: u8);
    pub fn IoGetRelatedDeviceObject(FileObject: *mut FILE_OBJECT) -> *mut DEVICE_OBJECT;
    pub fn FsRtlIsNameInExpression(
        Expression: *const UNICODE_STRING,
        Name: *const UNICODE_STRING,
        IgnoreCase: BOOLEAN,
        UpcaseTable: *const u16,
    ) -> BOOLEAN;

    // Share access.
    pub fn IoCheckShareAccess(
        DesiredAccess: ACCESS_MASK,
        DesiredShareAccess: u32,
        FileObject: *mut FILE_OBJECT,
        ShareAccess: *mut SHARE_ACCESS,
        Update: BOOLEAN,
    ) -> NtStatus;
    pub fn IoSetShareAccess(
        DesiredAccess: ACCESS_MASK,
        DesiredShareAccess: u32,
        FileObject: *mut FILE_OBJECT,
        ShareAccess: *mut SHARE_ACCESS,
    );
    pub fn IoRemoveShareAccess(FileObject: *mut FILE_OBJECT, ShareAccess: *mut SHARE_ACCESS);

    // MDLs.
    pub fn IoAllocateMdl(
        VirtualAddress: *mut c_void,
        Length: u32,
        SecondaryBuffer: BOOLEAN,
        ChargeQuota: BOOLEAN,
        Irp: *mut IRP,
    ) -> *mut MDL;
    pub fn IoFreeMdl(Mdl: *mut MDL);
    pub fn MmProbeAndLockPages(
        MemoryDescriptorList: *mut MDL,
        AccessMode: KPROCESSOR_MODE,
        Operation: u32,
    );
    pub fn MmUnlockPages(MemoryDescriptorList: *mut MDL);
    pub fn MmBuildMdlForNonPagedPool(MemoryDescriptorList: *mut MDL);
    pub fn MmMapLockedPagesSpecifyCache(
        MemoryDescriptorList: *mut MDL,
        AccessMode: KPROCESSOR_MODE,
        CacheType: u32,
        RequestedAddress: *mut c_void,
        BugCheckOnFailure: u32,
        Priority: u32,
    ) -> *mut c_void;
    pub fn MmUnmapLockedPages(BaseAddress: *mut c_void, MemoryDescriptorList: *mut MDL);

    // Events drivers own.
    pub fn KeInitializeEvent(Event: *mut KEVENT, Type: u32, State: BOOLEAN);
    pub fn KeSetEvent(Event: *mut KEVENT, Increment: KPRIORITY, Wait: BOOLEAN) -> i32;
    pub fn KeResetEvent(Event: *mut KEVENT) -> i32;
    pub fn KeClearEvent(Event: *mut KEVENT);
    pub fn KeReadStateEvent(Event: *mut KEVENT) -> i32;
    pub fn KeWaitForSingleObject(
        Object: *mut c_void,
        WaitReason: u32,
        WaitMode: KPROCESSOR_MODE,
        Alertable: BOOLEAN,
        Timeout: *mut LARGE_INTEGER,
    ) -> NtStatus;

    // Timers drivers own (ntos/src/ke/timer_export.rs).
    pub fn KeInitializeTimer(Timer: *mut KTIMER);
    pub fn KeInitializeTimerEx(Timer: *mut KTIMER, Type: u32);
    pub fn KeSetTimer(Timer: *mut KTIMER, DueTime: LARGE_INTEGER, Dpc: *mut KDPC) -> BOOLEAN;
    pub fn KeSetTimerEx(
        Timer: *mut KTIMER,
        DueTime: LARGE_INTEGER,
        Period: i32,
        Dpc: *mut KDPC,
    ) -> BOOLEAN;
    pub fn KeCancelTimer(Timer: *mut KTIMER) -> BOOLEAN;
    pub fn KeReadStateTimer(Timer: *mut KTIMER) -> BOOLEAN;

    // Device queues and StartIo.
    pub fn KeInitializeDeviceQueue(DeviceQueue: *mut KDEVICE_QUEUE);
    pub fn KeInsertDeviceQueue(
        DeviceQueue: *mut KDEVICE_QUEUE,
        DeviceQueueEntry: *mut KDEVICE_QUEUE_ENTRY,
    ) -> BOOLEAN;
    pub fn KeInsertByKeyDeviceQueue(
        DeviceQueue: *mut KDEVICE_QUEUE,
        DeviceQueueEntry: *mut KDEVICE_QUEUE_ENTRY,
        SortKey: u32,
    ) -> BOOLEAN;
    pub fn KeRemoveDeviceQueue(DeviceQueue: *mut KDEVICE_QUEUE) -> *mut KDEVICE_QUEUE_ENTRY;
    pub fn KeRemoveByKeyDeviceQueue(
        DeviceQueue: *mut KDEVICE_QUEUE,
        SortKey: u32,
    ) -> *mut KDEVICE_QUEUE_ENTRY;
    pub fn KeRemoveEntryDeviceQueue(
        DeviceQueue: *mut KDEVICE_QUEUE,
        DeviceQueueEntry: *mut KDEVICE_QUEUE_ENTRY,
    ) -> BOOLEAN;
    pub fn IoStartPacket(
        DeviceObject: *mut DEVICE_OBJECT,
        Irp: *mut IRP,
        Key: *const u32,
        CancelFunction: Option<DRIVER_CANCEL>,
    );
    pub fn IoStartNextPacket(DeviceObject: *mut DEVICE_OBJECT, Cancelable: BOOLEAN);
    pub fn IoStartNextPacketByKey(DeviceObject: *mut DEVICE_OBJECT, Cancelable: BOOLEAN, Key: u32);
}

/// `IoCallDriver` (a macro for `IofCallDriver`).
///
/// # Safety
/// As `IofCallDriver`: a valid device object and an IRP with a free stack location.
#[inline]
pub unsafe fn IoCallDriver(DeviceObject: *mut DEVICE_OBJECT, Irp: *mut IRP) -> NtStatus {
    // SAFETY: forwarded caller guarantee.
    unsafe { IofCallDriver(DeviceObject, Irp) }
}

/// `IoCompleteRequest` (a macro for `IofCompleteRequest`).
///
/// # Safety
/// As `IofCompleteRequest`: the caller owns the IRP and gives it up.
#[inline]
pub unsafe fn IoCompleteRequest(Irp: *mut IRP, PriorityBoost: i8) {
    // SAFETY: forwarded caller guarantee.
    unsafe { IofCompleteRequest(Irp, PriorityBoost) }
}

/// `MmGetSystemAddressForMdlSafe`: the system-space address of a locked
/// MDL's buffer, mapping it if it is not mapped yet (null on failure).
///
/// # Safety
/// `mdl` must describe locked pages (or nonpaged pool).
#[inline]
pub unsafe fn MmGetSystemAddressForMdlSafe(mdl: *mut MDL, priority: u32) -> *mut c_void {
    // SAFETY: the caller guarantees `mdl` is a locked MDL.
    unsafe {
        if (*mdl).MdlFlags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
            (*mdl).MappedSystemVa
        } else {
            MmMapLockedPagesSpecifyCache(
                mdl,
                KERNEL_MODE,
                MM_CACHED,
                core::ptr::null_mut(),
                0,
                priority,
            )
        }
    }
}
