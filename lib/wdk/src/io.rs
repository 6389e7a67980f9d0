//! The I/O system's driver-visible structures (wdm.h) in their x64 layouts:
//! `IRP`, `IO_STACK_LOCATION`, `DEVICE_OBJECT`, `DRIVER_OBJECT`,
//! `FILE_OBJECT`, `DEVOBJ_EXTENSION`, `VPB`, `SHARE_ACCESS`, the cancel-safe
//! queue, and the driver routine types.

use crate::base::*;
use core::ffi::c_void;
use nt::NtStatus;

/// `DRIVER_INITIALIZE` (`DriverEntry`).
pub type DRIVER_INITIALIZE =
    unsafe extern "system" fn(*mut DRIVER_OBJECT, *mut UNICODE_STRING) -> NtStatus;
/// `DRIVER_DISPATCH`.
pub type DRIVER_DISPATCH = unsafe extern "system" fn(*mut DEVICE_OBJECT, *mut IRP) -> NtStatus;
/// `IO_COMPLETION_ROUTINE`.
pub type IO_COMPLETION_ROUTINE =
    unsafe extern "system" fn(*mut DEVICE_OBJECT, *mut IRP, *mut c_void) -> NtStatus;
/// `DRIVER_UNLOAD`.
pub type DRIVER_UNLOAD = unsafe extern "system" fn(*mut DRIVER_OBJECT);
/// `DRIVER_CANCEL`.
pub type DRIVER_CANCEL = unsafe extern "system" fn(*mut DEVICE_OBJECT, *mut IRP);
/// `DRIVER_STARTIO`.
pub type DRIVER_STARTIO = unsafe extern "system" fn(*mut DEVICE_OBJECT, *mut IRP);
/// `DRIVER_ADD_DEVICE`.
pub type DRIVER_ADD_DEVICE =
    unsafe extern "system" fn(*mut DRIVER_OBJECT, *mut DEVICE_OBJECT) -> NtStatus;
/// `PIO_APC_ROUTINE`: the user APC of an asynchronous `NtReadFile`/`NtWriteFile`/...
pub type IO_APC_ROUTINE = unsafe extern "system" fn(*mut c_void, *mut IO_STATUS_BLOCK, u32);

/// `IRP_MJ_MAXIMUM_FUNCTION + 1`: the size of `DRIVER_OBJECT.MajorFunction`.
pub const IRP_MJ_COUNT: usize = 28;

/// `DRIVER_EXTENSION`: the documented part (0x28 bytes). The kernel keeps
/// its own fields after it in the same allocation.
#[repr(C)]
#[derive(Debug)]
pub struct DRIVER_EXTENSION {
    pub DriverObject: *mut DRIVER_OBJECT,
    pub AddDevice: Option<DRIVER_ADD_DEVICE>,
    pub Count: u32,
    pub ServiceKeyName: UNICODE_STRING,
}

/// `DRIVER_OBJECT` (0x150 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct DRIVER_OBJECT {
    /// `IO_TYPE_DRIVER`.
    pub Type: i16,
    pub Size: i16,
    /// The first of the driver's device objects (linked through `NextDevice`).
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub Flags: u32,
    pub DriverStart: *mut c_void,
    pub DriverSize: u32,
    pub DriverSection: *mut c_void,
    pub DriverExtension: *mut DRIVER_EXTENSION,
    pub DriverName: UNICODE_STRING,
    pub HardwareDatabase: *mut UNICODE_STRING,
    /// The driver's fast I/O table (`crate::fastio`), or null.
    pub FastIoDispatch: *mut crate::fastio::FAST_IO_DISPATCH,
    pub DriverInit: Option<DRIVER_INITIALIZE>,
    pub DriverStartIo: Option<DRIVER_STARTIO>,
    pub DriverUnload: Option<DRIVER_UNLOAD>,
    pub MajorFunction: [Option<DRIVER_DISPATCH>; IRP_MJ_COUNT],
}

/// `DRVO_UNLOAD_INVOKED`.
pub const DRVO_UNLOAD_INVOKED: u32 = 0x0000_0001;
/// `DRVO_LEGACY_DRIVER`.
pub const DRVO_LEGACY_DRIVER: u32 = 0x0000_0002;
/// `DRVO_BUILTIN_DRIVER`.
pub const DRVO_BUILTIN_DRIVER: u32 = 0x0000_0004;
/// `DRVO_INITIALIZED`.
pub const DRVO_INITIALIZED: u32 = 0x0000_0010;

/// `WAIT_CONTEXT_BLOCK` (0x48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WAIT_CONTEXT_BLOCK {
    /// `WaitQueueEntry` (or `DmaWaitEntry`, `NumberOfChannels`, flags).
    pub WaitQueueEntry: KDEVICE_QUEUE_ENTRY,
    pub DeviceRoutine: *mut c_void,
    pub DeviceContext: *mut c_void,
    pub NumberOfMapRegisters: u32,
    pub DeviceObject: *mut c_void,
    pub CurrentIrp: *mut c_void,
    pub BufferChainingDpc: *mut KDPC,
}

/// `DEVICE_OBJECT.Queue`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union DEVICE_OBJECT_QUEUE {
    pub ListEntry: LIST_ENTRY,
    pub Wcb: WAIT_CONTEXT_BLOCK,
}

/// `DEVICE_OBJECT` (0x150 bytes, 16-byte aligned like
/// `DECLSPEC_ALIGN(MEMORY_ALLOCATION_ALIGNMENT)`).
#[repr(C, align(16))]
pub struct DEVICE_OBJECT {
    /// `IO_TYPE_DEVICE`.
    pub Type: i16,
    /// `sizeof(DEVICE_OBJECT)` plus the device extension.
    pub Size: u16,
    pub ReferenceCount: i32,
    pub DriverObject: *mut DRIVER_OBJECT,
    pub NextDevice: *mut DEVICE_OBJECT,
    /// The device attached directly above this one.
    pub AttachedDevice: *mut DEVICE_OBJECT,
    pub CurrentIrp: *mut IRP,
    pub Timer: *mut c_void,
    /// `DO_*`.
    pub Flags: u32,
    /// `FILE_*` device characteristics.
    pub Characteristics: u32,
    pub Vpb: *mut VPB,
    pub DeviceExtension: *mut c_void,
    pub DeviceType: DEVICE_TYPE,
    /// Stack locations an IRP sent to this device needs.
    pub StackSize: i8,
    pub Queue: DEVICE_OBJECT_QUEUE,
    pub AlignmentRequirement: u32,
    pub DeviceQueue: KDEVICE_QUEUE,
    pub Dpc: KDPC,
    pub ActiveThreadCount: u32,
    pub SecurityDescriptor: *mut c_void,
    pub DeviceLock: KEVENT,
    pub SectorSize: u16,
    pub Spare1: u16,
    pub DeviceObjectExtension: *mut DEVOBJ_EXTENSION,
    pub Reserved: *mut c_void,
}

/// `DEVOBJ_EXTENSION`: the documented head (`Type`, `Size`, `DeviceObject`)
/// and the I/O manager's fields ntrs uses, at the offsets Windows x64 has
/// them (`AttachedTo` at 0x30: the device this one is attached to).
#[repr(C)]
#[derive(Debug)]
pub struct DEVOBJ_EXTENSION {
    /// `IO_TYPE_DEVICE_OBJECT_EXTENSION`.
    pub Type: i16,
    pub Size: u16,
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub PowerFlags: u32,
    pub Dope: *mut c_void,
    pub ExtensionFlags: u32,
    pub DeviceNode: *mut c_void,
    pub AttachedTo: *mut DEVICE_OBJECT,
    pub StartIoCount: i32,
    pub StartIoKey: i32,
    pub StartIoFlags: u32,
    pub Vpb: *mut VPB,
}

/// `VPB` (0x60 bytes): the volume parameter block linking a volume device
/// to the file system device that mounted it.
#[repr(C)]
#[derive(Debug)]
pub struct VPB {
    /// `IO_TYPE_VPB`.
    pub Type: i16,
    pub Size: i16,
    pub Flags: u16,
    pub VolumeLabelLength: u16,
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub RealDevice: *mut DEVICE_OBJECT,
    pub SerialNumber: u32,
    pub ReferenceCount: u32,
    pub VolumeLabel: [u16; 32],
}

/// `VPB_MOUNTED`.
pub const VPB_MOUNTED: u16 = 0x0001;
/// `VPB_LOCKED`.
pub const VPB_LOCKED: u16 = 0x0002;

/// `SECTION_OBJECT_POINTERS` (0x18 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct SECTION_OBJECT_POINTERS {
    pub DataSectionObject: *mut c_void,
    pub SharedCacheMap: *mut c_void,
    pub ImageSectionObject: *mut c_void,
}

/// `IO_COMPLETION_CONTEXT` (0x10 bytes): the completion port a file object
/// is associated with and the key its completions carry.
#[repr(C)]
#[derive(Debug)]
pub struct IO_COMPLETION_CONTEXT {
    pub Port: *mut c_void,
    pub Key: *mut c_void,
}

/// `FILE_OBJECT` (0xD8 bytes).
#[repr(C)]
pub struct FILE_OBJECT {
    /// `IO_TYPE_FILE`.
    pub Type: i16,
    pub Size: i16,
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub Vpb: *mut VPB,
    pub FsContext: *mut c_void,
    pub FsContext2: *mut c_void,
    pub SectionObjectPointer: *mut SECTION_OBJECT_POINTERS,
    pub PrivateCacheMap: *mut c_void,
    pub FinalStatus: NtStatus,
    pub RelatedFileObject: *mut FILE_OBJECT,
    pub LockOperation: BOOLEAN,
    pub DeletePending: BOOLEAN,
    pub ReadAccess: BOOLEAN,
    pub WriteAccess: BOOLEAN,
    pub DeleteAccess: BOOLEAN,
    pub SharedRead: BOOLEAN,
    pub SharedWrite: BOOLEAN,
    pub SharedDelete: BOOLEAN,
    /// `FO_*`.
    pub Flags: u32,
    /// The path left after the device's name (`\x` of `\Device\HarddiskVolume2\x`).
    pub FileName: UNICODE_STRING,
    pub CurrentByteOffset: LARGE_INTEGER,
    pub Waiters: u32,
    pub Busy: u32,
    pub LastLock: *mut c_void,
    pub Lock: KEVENT,
    pub Event: KEVENT,
    pub CompletionContext: *mut IO_COMPLETION_CONTEXT,
    pub IrpListLock: KSPIN_LOCK,
    pub IrpList: LIST_ENTRY,
    pub FileObjectExtension: *mut c_void,
}

/// `SHARE_ACCESS` (0x1C bytes): the counts `IoCheckShareAccess` keeps per file.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SHARE_ACCESS {
    pub OpenCount: u32,
    pub Readers: u32,
    pub Writers: u32,
    pub Deleters: u32,
    pub SharedRead: u32,
    pub SharedWrite: u32,
    pub SharedDelete: u32,
}

/// `IO_SECURITY_CONTEXT` (0x18 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct IO_SECURITY_CONTEXT {
    pub SecurityQos: *mut c_void,
    pub AccessState: *mut c_void,
    pub DesiredAccess: ACCESS_MASK,
    pub FullCreateOptions: u32,
}

// ---------------------------------------------------------------------------
// IRP

/// `IRP.AssociatedIrp`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IRP_ASSOCIATED {
    pub MasterIrp: *mut IRP,
    pub IrpCount: i32,
    /// The system-space buffer of buffered I/O.
    pub SystemBuffer: *mut c_void,
}

/// `IRP.Overlay.AsynchronousParameters`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IRP_ASYNC_PARAMETERS {
    /// `UserApcRoutine` (or `IssuingProcess`).
    pub UserApcRoutine: *mut c_void,
    /// `UserApcContext` (or `IoRing`).
    pub UserApcContext: *mut c_void,
}

/// `IRP.Overlay`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IRP_OVERLAY {
    pub AsynchronousParameters: IRP_ASYNC_PARAMETERS,
    pub AllocationSize: LARGE_INTEGER,
}

/// The device queue entry or four pointers of driver context at the start
/// of `IRP.Tail.Overlay`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IRP_TAIL_QUEUE {
    pub DeviceQueueEntry: KDEVICE_QUEUE_ENTRY,
    pub DriverContext: [*mut c_void; 4],
}

/// `IRP.Tail.Overlay`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IRP_TAIL_OVERLAY {
    pub Queue: IRP_TAIL_QUEUE,
    /// The thread that issued the request (thread-queued IRPs).
    pub Thread: *mut c_void,
    pub AuxiliaryBuffer: *mut i8,
    pub ListEntry: LIST_ENTRY,
    /// `CurrentStackLocation` (a union with `PacketType`).
    pub CurrentStackLocation: *mut IO_STACK_LOCATION,
    pub OriginalFileObject: *mut FILE_OBJECT,
    pub IrpExtension: *mut c_void,
}

/// `IRP.Tail`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IRP_TAIL {
    pub Overlay: IRP_TAIL_OVERLAY,
    pub Apc: KAPC,
    pub CompletionKey: *mut c_void,
}

/// `IRP` (0xD0 bytes); its `StackCount` stack locations follow it.
#[repr(C)]
pub struct IRP {
    /// `IO_TYPE_IRP`.
    pub Type: i16,
    /// Bytes of the IRP with its stack locations.
    pub Size: u16,
    pub AllocationProcessorNumber: u16,
    pub Reserved: u16,
    pub MdlAddress: *mut MDL,
    /// `IRP_*` flags.
    pub Flags: u32,
    pub AssociatedIrp: IRP_ASSOCIATED,
    pub ThreadListEntry: LIST_ENTRY,
    pub IoStatus: IO_STATUS_BLOCK,
    pub RequestorMode: KPROCESSOR_MODE,
    pub PendingReturned: BOOLEAN,
    pub StackCount: i8,
    /// 1-based index of the current stack location (`StackCount + 1` before the first `IoCallDriver`).
    pub CurrentLocation: i8,
    pub Cancel: BOOLEAN,
    pub CancelIrql: KIRQL,
    pub ApcEnvironment: i8,
    /// `IRP_ALLOCATED_*`, `IRP_QUOTA_CHARGED`, `IRP_LOOKASIDE_ALLOCATION`.
    pub AllocationFlags: u8,
    /// `UserIosb` (a union with `IoStatusBlock`).
    pub UserIosb: *mut IO_STATUS_BLOCK,
    pub UserEvent: *mut KEVENT,
    pub Overlay: IRP_OVERLAY,
    pub CancelRoutine: Option<DRIVER_CANCEL>,
    pub UserBuffer: *mut c_void,
    pub Tail: IRP_TAIL,
}

// ---------------------------------------------------------------------------
// IO_STACK_LOCATION

/// `Parameters.Create`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CreateParameters {
    pub SecurityContext: *mut IO_SECURITY_CONTEXT,
    pub Options: u32,
    pub Reserved0: u32,
    /// `POINTER_ALIGNMENT` (8 on x64).
    pub FileAttributes: u16,
    pub ShareAccess: u16,
    pub Reserved1: u32,
    /// `POINTER_ALIGNMENT`.
    pub EaLength: u32,
}

/// `Parameters.Read` and `Parameters.Write`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ReadWriteParameters {
    pub Length: u32,
    pub Reserved0: u32,
    /// `POINTER_ALIGNMENT` (8 on x64).
    pub Key: u32,
    pub Flags: u32,
    pub ByteOffset: LARGE_INTEGER,
}

/// `Parameters.DeviceIoControl` and `Parameters.FileSystemControl`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IoControlParameters {
    pub OutputBufferLength: u32,
    pub Reserved0: u32,
    /// `POINTER_ALIGNMENT` (8 on x64).
    pub InputBufferLength: u32,
    pub Reserved1: u32,
    /// `IoControlCode` (`FsControlCode` for `FileSystemControl`); `POINTER_ALIGNMENT`.
    pub IoControlCode: u32,
    pub Reserved2: u32,
    pub Type3InputBuffer: *mut c_void,
}

/// `Parameters.QueryFile`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct QueryFileParameters {
    pub Length: u32,
    pub Reserved0: u32,
    /// `POINTER_ALIGNMENT` (8 on x64).
    pub FileInformationClass: u32,
}

/// `Parameters.SetFile`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SetFileParameters {
    pub Length: u32,
    pub Reserved0: u32,
    /// `POINTER_ALIGNMENT` (8 on x64).
    pub FileInformationClass: u32,
    pub Reserved1: u32,
    pub FileObject: *mut FILE_OBJECT,
    /// `ReplaceIfExists`/`AdvanceOnly` bytes, `ClusterCount` or `DeleteHandle`.
    pub ReplaceIfExists: usize,
}

/// `Parameters.QueryVolume`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct QueryVolumeParameters {
    pub Length: u32,
    pub Reserved0: u32,
    /// `POINTER_ALIGNMENT` (8 on x64).
    pub FsInformationClass: u32,
}

/// `Parameters.MountVolume` / `VerifyVolume`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MountVolumeParameters {
    pub Vpb: *mut VPB,
    pub DeviceObject: *mut DEVICE_OBJECT,
}

/// `Parameters.StartDevice` (`IRP_MN_START_DEVICE`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StartDeviceParameters {
    /// `PCM_RESOURCE_LIST` (raw resources).
    pub AllocatedResources: *mut c_void,
    /// `PCM_RESOURCE_LIST` (translated resources).
    pub AllocatedResourcesTranslated: *mut c_void,
}

/// `Parameters.QueryDeviceRelations` (`IRP_MN_QUERY_DEVICE_RELATIONS`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct QueryDeviceRelationsParameters {
    /// `DEVICE_RELATION_TYPE`.
    pub Type: u32,
}

/// `Parameters.QueryId` (`IRP_MN_QUERY_ID`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct QueryIdParameters {
    /// `BUS_QUERY_ID_TYPE`.
    pub IdType: u32,
}

/// `Parameters.DeviceCapabilities` (`IRP_MN_QUERY_CAPABILITIES`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DeviceCapabilitiesParameters {
    /// `PDEVICE_CAPABILITIES`.
    pub Capabilities: *mut c_void,
}

/// `Parameters.QueryDeviceText` (`IRP_MN_QUERY_DEVICE_TEXT`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct QueryDeviceTextParameters {
    /// `DEVICE_TEXT_TYPE`: `DeviceTextDescription` (0) or
    /// `DeviceTextLocationInformation` (1).
    pub DeviceTextType: u32,
    /// `LCID`.
    pub LocaleId: u32,
}

/// `Parameters.Scsi`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ScsiParameters {
    /// `PSCSI_REQUEST_BLOCK`.
    pub Srb: *mut c_void,
}

/// `Parameters.Others`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OthersParameters {
    pub Argument1: *mut c_void,
    pub Argument2: *mut c_void,
    pub Argument3: *mut c_void,
    pub Argument4: *mut c_void,
}

/// `Parameters.QueryDirectory` (`IRP_MN_QUERY_DIRECTORY`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct QueryDirectoryParameters {
    pub Length: u32,
    pub Reserved0: u32,
    /// The search expression (`*.sys`), or null: every entry.
    pub FileName: *mut UNICODE_STRING,
    /// `POINTER_ALIGNMENT` (8 on x64).
    pub FileInformationClass: u32,
    pub Reserved1: u32,
    /// `POINTER_ALIGNMENT`.
    pub FileIndex: u32,
}

/// `IO_STACK_LOCATION.Parameters` (0x20 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub union IO_STACK_LOCATION_PARAMETERS {
    pub Create: CreateParameters,
    pub Read: ReadWriteParameters,
    pub Write: ReadWriteParameters,
    pub QueryFile: QueryFileParameters,
    pub SetFile: SetFileParameters,
    pub QueryDirectory: QueryDirectoryParameters,
    pub QueryVolume: QueryVolumeParameters,
    pub FileSystemControl: IoControlParameters,
    pub DeviceIoControl: IoControlParameters,
    pub MountVolume: MountVolumeParameters,
    pub VerifyVolume: MountVolumeParameters,
    pub Scsi: ScsiParameters,
    pub QueryDeviceRelations: QueryDeviceRelationsParameters,
    pub QueryId: QueryIdParameters,
    pub DeviceCapabilities: DeviceCapabilitiesParameters,
    pub QueryDeviceText: QueryDeviceTextParameters,
    pub StartDevice: StartDeviceParameters,
    pub Others: OthersParameters,
}

/// `IO_STACK_LOCATION` (0x48 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_STACK_LOCATION {
    pub MajorFunction: u8,
    pub MinorFunction: u8,
    /// `SL_*` request flags.
    pub Flags: u8,
    /// `SL_PENDING_RETURNED`, `SL_INVOKE_ON_*`.
    pub Control: u8,
    pub Parameters: IO_STACK_LOCATION_PARAMETERS,
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub FileObject: *mut FILE_OBJECT,
    pub CompletionRoutine: Option<IO_COMPLETION_ROUTINE>,
    pub Context: *mut c_void,
}

impl IO_STACK_LOCATION {
    /// An all-zero stack location.
    pub const fn zeroed() -> Self {
        IO_STACK_LOCATION {
            MajorFunction: 0,
            MinorFunction: 0,
            Flags: 0,
            Control: 0,
            Parameters: IO_STACK_LOCATION_PARAMETERS {
                Others: OthersParameters {
                    Argument1: core::ptr::null_mut(),
                    Argument2: core::ptr::null_mut(),
                    Argument3: core::ptr::null_mut(),
                    Argument4: core::ptr::null_mut(),
                },
            },
            DeviceObject: core::ptr::null_mut(),
            FileObject: core::ptr::null_mut(),
            CompletionRoutine: None,
            Context: core::ptr::null_mut(),
        }
    }
}

// ---------------------------------------------------------------------------
// Cancel-safe queue and device relations

/// `PIO_CSQ_INSERT_IRP`.
pub type IO_CSQ_INSERT_IRP = unsafe extern "system" fn(*mut IO_CSQ, *mut IRP);
/// `PIO_CSQ_REMOVE_IRP`.
pub type IO_CSQ_REMOVE_IRP = unsafe extern "system" fn(*mut IO_CSQ, *mut IRP);
/// `PIO_CSQ_PEEK_NEXT_IRP`.
pub type IO_CSQ_PEEK_NEXT_IRP =
    unsafe extern "system" fn(*mut IO_CSQ, *mut IRP, *mut c_void) -> *mut IRP;
/// `PIO_CSQ_ACQUIRE_LOCK`.
pub type IO_CSQ_ACQUIRE_LOCK = unsafe extern "system" fn(*mut IO_CSQ, *mut KIRQL);
/// `PIO_CSQ_RELEASE_LOCK`.
pub type IO_CSQ_RELEASE_LOCK = unsafe extern "system" fn(*mut IO_CSQ, KIRQL);
/// `PIO_CSQ_COMPLETE_CANCELED_IRP`.
pub type IO_CSQ_COMPLETE_CANCELED_IRP = unsafe extern "system" fn(*mut IO_CSQ, *mut IRP);

/// `IO_CSQ` (0x40 bytes): a driver's cancel-safe queue callbacks.
#[repr(C)]
#[derive(Debug)]
pub struct IO_CSQ {
    /// `IO_TYPE_CSQ`.
    pub Type: u32,
    pub CsqInsertIrp: Option<IO_CSQ_INSERT_IRP>,
    pub CsqRemoveIrp: Option<IO_CSQ_REMOVE_IRP>,
    pub CsqPeekNextIrp: Option<IO_CSQ_PEEK_NEXT_IRP>,
    pub CsqAcquireLock: Option<IO_CSQ_ACQUIRE_LOCK>,
    pub CsqReleaseLock: Option<IO_CSQ_RELEASE_LOCK>,
    pub CsqCompleteCanceledIrp: Option<IO_CSQ_COMPLETE_CANCELED_IRP>,
    pub ReservePointer: *mut c_void,
}

/// `IO_CSQ_IRP_CONTEXT` (0x18 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct IO_CSQ_IRP_CONTEXT {
    /// `IO_TYPE_CSQ_IRP_CONTEXT`.
    pub Type: u32,
    pub Irp: *mut IRP,
    pub Csq: *mut IO_CSQ,
}

/// `IO_TYPE_CSQ_IRP_CONTEXT`.
pub const IO_TYPE_CSQ_IRP_CONTEXT: u32 = 1;
/// `IO_TYPE_CSQ`.
pub const IO_TYPE_CSQ: u32 = 2;

/// `DEVICE_RELATIONS` (header 0x10 bytes; `Count` objects follow from `Objects`).
#[repr(C)]
#[derive(Debug)]
pub struct DEVICE_RELATIONS {
    pub Count: u32,
    pub Objects: [*mut DEVICE_OBJECT; 1],
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<DRIVER_EXTENSION>() == 0x28);
    assert!(offset_of!(DRIVER_EXTENSION, ServiceKeyName) == 0x18);
    assert!(size_of::<DRIVER_OBJECT>() == 0x150);
    assert!(offset_of!(DRIVER_OBJECT, DeviceObject) == 0x08);
    assert!(offset_of!(DRIVER_OBJECT, Flags) == 0x10);
    assert!(offset_of!(DRIVER_OBJECT, DriverStart) == 0x18);
    assert!(offset_of!(DRIVER_OBJECT, DriverSize) == 0x20);
    assert!(offset_of!(DRIVER_OBJECT, DriverSection) == 0x28);
    assert!(offset_of!(DRIVER_OBJECT, DriverExtension) == 0x30);
    assert!(offset_of!(DRIVER_OBJECT, DriverName) == 0x38);
    assert!(offset_of!(DRIVER_OBJECT, HardwareDatabase) == 0x48);
    assert!(offset_of!(DRIVER_OBJECT, FastIoDispatch) == 0x50);
    assert!(offset_of!(DRIVER_OBJECT, DriverInit) == 0x58);
    assert!(offset_of!(DRIVER_OBJECT, DriverStartIo) == 0x60);
    assert!(offset_of!(DRIVER_OBJECT, DriverUnload) == 0x68);
    assert!(offset_of!(DRIVER_OBJECT, MajorFunction) == 0x70);
    assert!(size_of::<WAIT_CONTEXT_BLOCK>() == 0x48);
    assert!(size_of::<DEVICE_OBJECT>() == 0x150);
    assert!(offset_of!(DEVICE_OBJECT, ReferenceCount) == 0x04);
    assert!(offset_of!(DEVICE_OBJECT, DriverObject) == 0x08);
    assert!(offset_of!(DEVICE_OBJECT, NextDevice) == 0x10);
    assert!(offset_of!(DEVICE_OBJECT, AttachedDevice) == 0x18);
    assert!(offset_of!(DEVICE_OBJECT, CurrentIrp) == 0x20);
    assert!(offset_of!(DEVICE_OBJECT, Timer) == 0x28);
    assert!(offset_of!(DEVICE_OBJECT, Flags) == 0x30);
    assert!(offset_of!(DEVICE_OBJECT, Characteristics) == 0x34);
    assert!(offset_of!(DEVICE_OBJECT, Vpb) == 0x38);
    assert!(offset_of!(DEVICE_OBJECT, DeviceExtension) == 0x40);
    assert!(offset_of!(DEVICE_OBJECT, DeviceType) == 0x48);
    assert!(offset_of!(DEVICE_OBJECT, StackSize) == 0x4C);
    assert!(offset_of!(DEVICE_OBJECT, Queue) == 0x50);
    assert!(offset_of!(DEVICE_OBJECT, AlignmentRequirement) == 0x98);
    assert!(offset_of!(DEVICE_OBJECT, DeviceQueue) == 0xA0);
    assert!(offset_of!(DEVICE_OBJECT, Dpc) == 0xC8);
    assert!(offset_of!(DEVICE_OBJECT, ActiveThreadCount) == 0x108);
    assert!(offset_of!(DEVICE_OBJECT, SecurityDescriptor) == 0x110);
    assert!(offset_of!(DEVICE_OBJECT, DeviceLock) == 0x118);
    assert!(offset_of!(DEVICE_OBJECT, SectorSize) == 0x130);
    assert!(offset_of!(DEVICE_OBJECT, DeviceObjectExtension) == 0x138);
    assert!(offset_of!(DEVICE_OBJECT, Reserved) == 0x140);
    assert!(offset_of!(DEVOBJ_EXTENSION, DeviceObject) == 0x08);
    assert!(offset_of!(DEVOBJ_EXTENSION, PowerFlags) == 0x10);
    assert!(offset_of!(DEVOBJ_EXTENSION, Dope) == 0x18);
    assert!(offset_of!(DEVOBJ_EXTENSION, ExtensionFlags) == 0x20);
    assert!(offset_of!(DEVOBJ_EXTENSION, DeviceNode) == 0x28);
    assert!(offset_of!(DEVOBJ_EXTENSION, AttachedTo) == 0x30);
    assert!(offset_of!(DEVOBJ_EXTENSION, Vpb) == 0x48);
    assert!(size_of::<VPB>() == 0x60);
    assert!(offset_of!(VPB, SerialNumber) == 0x18);
    assert!(offset_of!(VPB, VolumeLabel) == 0x20);
    assert!(size_of::<FILE_OBJECT>() == 0xD8);
    assert!(offset_of!(FILE_OBJECT, DeviceObject) == 0x08);
    assert!(offset_of!(FILE_OBJECT, Vpb) == 0x10);
    assert!(offset_of!(FILE_OBJECT, FsContext) == 0x18);
    assert!(offset_of!(FILE_OBJECT, FsContext2) == 0x20);
    assert!(offset_of!(FILE_OBJECT, SectionObjectPointer) == 0x28);
    assert!(offset_of!(FILE_OBJECT, PrivateCacheMap) == 0x30);
    assert!(offset_of!(FILE_OBJECT, FinalStatus) == 0x38);
    assert!(offset_of!(FILE_OBJECT, RelatedFileObject) == 0x40);
    assert!(offset_of!(FILE_OBJECT, LockOperation) == 0x48);
    assert!(offset_of!(FILE_OBJECT, SharedDelete) == 0x4F);
    assert!(offset_of!(FILE_OBJECT, Flags) == 0x50);
    assert!(offset_of!(FILE_OBJECT, FileName) == 0x58);
    assert!(offset_of!(FILE_OBJECT, CurrentByteOffset) == 0x68);
    assert!(offset_of!(FILE_OBJECT, Waiters) == 0x70);
    assert!(offset_of!(FILE_OBJECT, Busy) == 0x74);
    assert!(offset_of!(FILE_OBJECT, LastLock) == 0x78);
    assert!(offset_of!(FILE_OBJECT, Lock) == 0x80);
    assert!(offset_of!(FILE_OBJECT, Event) == 0x98);
    assert!(offset_of!(FILE_OBJECT, CompletionContext) == 0xB0);
    assert!(offset_of!(FILE_OBJECT, IrpListLock) == 0xB8);
    assert!(offset_of!(FILE_OBJECT, IrpList) == 0xC0);
    assert!(offset_of!(FILE_OBJECT, FileObjectExtension) == 0xD0);
    assert!(size_of::<SHARE_ACCESS>() == 0x1C);
    assert!(size_of::<IO_SECURITY_CONTEXT>() == 0x18);
    assert!(size_of::<IO_COMPLETION_CONTEXT>() == 0x10);
    assert!(size_of::<IRP>() == 0xD0);
    assert!(offset_of!(IRP, MdlAddress) == 0x08);
    assert!(offset_of!(IRP, Flags) == 0x10);
    assert!(offset_of!(IRP, AssociatedIrp) == 0x18);
    assert!(offset_of!(IRP, ThreadListEntry) == 0x20);
    assert!(offset_of!(IRP, IoStatus) == 0x30);
    assert!(offset_of!(IRP, RequestorMode) == 0x40);
    assert!(offset_of!(IRP, PendingReturned) == 0x41);
    assert!(offset_of!(IRP, StackCount) == 0x42);
    assert!(offset_of!(IRP, CurrentLocation) == 0x43);
    assert!(offset_of!(IRP, Cancel) == 0x44);
    assert!(offset_of!(IRP, CancelIrql) == 0x45);
    assert!(offset_of!(IRP, ApcEnvironment) == 0x46);
    assert!(offset_of!(IRP, AllocationFlags) == 0x47);
    assert!(offset_of!(IRP, UserIosb) == 0x48);
    assert!(offset_of!(IRP, UserEvent) == 0x50);
    assert!(offset_of!(IRP, Overlay) == 0x58);
    assert!(offset_of!(IRP, CancelRoutine) == 0x68);
    assert!(offset_of!(IRP, UserBuffer) == 0x70);
    assert!(offset_of!(IRP, Tail) == 0x78);
    assert!(size_of::<IRP_TAIL>() == 0x58);
    assert!(offset_of!(IRP_TAIL_OVERLAY, Thread) == 0x20);
    assert!(offset_of!(IRP_TAIL_OVERLAY, AuxiliaryBuffer) == 0x28);
    assert!(offset_of!(IRP_TAIL_OVERLAY, ListEntry) == 0x30);
    assert!(offset_of!(IRP_TAIL_OVERLAY, CurrentStackLocation) == 0x40);
    assert!(offset_of!(IRP_TAIL_OVERLAY, OriginalFileObject) == 0x48);
    assert!(size_of::<IO_STACK_LOCATION>() == 0x48);
    assert!(size_of::<IO_STACK_LOCATION_PARAMETERS>() == 0x20);
    assert!(offset_of!(IO_STACK_LOCATION, Parameters) == 0x08);
    assert!(offset_of!(IO_STACK_LOCATION, DeviceObject) == 0x28);
    assert!(offset_of!(IO_STACK_LOCATION, FileObject) == 0x30);
    assert!(offset_of!(IO_STACK_LOCATION, CompletionRoutine) == 0x38);
    assert!(offset_of!(IO_STACK_LOCATION, Context) == 0x40);
    assert!(offset_of!(CreateParameters, Options) == 0x08);
    assert!(offset_of!(CreateParameters, FileAttributes) == 0x10);
    assert!(offset_of!(CreateParameters, ShareAccess) == 0x12);
    assert!(offset_of!(CreateParameters, EaLength) == 0x18);
    assert!(offset_of!(ReadWriteParameters, Key) == 0x08);
    assert!(offset_of!(ReadWriteParameters, Flags) == 0x0C);
    assert!(offset_of!(ReadWriteParameters, ByteOffset) == 0x10);
    assert!(offset_of!(IoControlParameters, InputBufferLength) == 0x08);
    assert!(offset_of!(IoControlParameters, IoControlCode) == 0x10);
    assert!(offset_of!(QueryFileParameters, FileInformationClass) == 0x08);
    assert!(offset_of!(QueryVolumeParameters, FsInformationClass) == 0x08);
    assert!(offset_of!(QueryDirectoryParameters, FileName) == 0x08);
    assert!(offset_of!(QueryDirectoryParameters, FileInformationClass) == 0x10);
    assert!(offset_of!(QueryDirectoryParameters, FileIndex) == 0x18);
    assert!(offset_of!(IoControlParameters, Type3InputBuffer) == 0x18);
    assert!(offset_of!(SetFileParameters, FileInformationClass) == 0x08);
    assert!(offset_of!(SetFileParameters, FileObject) == 0x10);
    assert!(offset_of!(SetFileParameters, ReplaceIfExists) == 0x18);
    assert!(size_of::<IO_CSQ>() == 0x40);
    assert!(size_of::<IO_CSQ_IRP_CONTEXT>() == 0x18);
};

/// `IO_REMOVE_LOCK_COMMON_BLOCK`: the whole `IO_REMOVE_LOCK` of a free
/// build (a checked build appends a debug block, which ntrs ignores).
#[repr(C)]
pub struct IO_REMOVE_LOCK {
    pub Removed: u8,
    pub Reserved: [u8; 3],
    pub IoCount: i32,
    pub RemoveEvent: KEVENT,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(IO_REMOVE_LOCK, IoCount) == 4);
    assert!(offset_of!(IO_REMOVE_LOCK, RemoveEvent) == 8);
    assert!(size_of::<IO_REMOVE_LOCK>() == 0x20);
};
