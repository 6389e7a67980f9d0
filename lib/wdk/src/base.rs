//! Basic kernel structures drivers embed in their own memory (ntdef.h,
//! wdm.h): lists, counted strings, I/O status blocks, dispatcher headers
//! and events, DPCs, APCs, device queues and MDLs, in their x64 layouts.

use core::ffi::c_void;
use core::ptr;

/// `KIRQL`.
pub type KIRQL = u8;
/// `KSPIN_LOCK`.
pub type KSPIN_LOCK = usize;
/// `KPROCESSOR_MODE` (`KernelMode` 0, `UserMode` 1).
pub type KPROCESSOR_MODE = i8;
/// `KPRIORITY`.
pub type KPRIORITY = i32;
/// `BOOLEAN`.
pub type BOOLEAN = u8;
/// `ACCESS_MASK`.
pub type ACCESS_MASK = u32;
/// `DEVICE_TYPE`.
pub type DEVICE_TYPE = u32;
/// `HANDLE`.
pub type HANDLE = *mut c_void;
/// `LARGE_INTEGER` (its `QuadPart`; the layout is an 8-byte aligned i64).
pub type LARGE_INTEGER = i64;

/// `KernelMode`.
pub const KERNEL_MODE: KPROCESSOR_MODE = 0;
/// `UserMode`.
pub const USER_MODE: KPROCESSOR_MODE = 1;
/// `TRUE`.
pub const TRUE: BOOLEAN = 1;
/// `FALSE`.
pub const FALSE: BOOLEAN = 0;

/// `LIST_ENTRY`: a doubly linked list link (0x10 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LIST_ENTRY {
    pub Flink: *mut LIST_ENTRY,
    pub Blink: *mut LIST_ENTRY,
}

impl LIST_ENTRY {
    /// An unlinked entry (both links null); `InitializeListHead` makes it a head.
    pub const fn zeroed() -> Self {
        LIST_ENTRY {
            Flink: ptr::null_mut(),
            Blink: ptr::null_mut(),
        }
    }
}

/// `SINGLE_LIST_ENTRY`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SINGLE_LIST_ENTRY {
    pub Next: *mut SINGLE_LIST_ENTRY,
}

/// `UNICODE_STRING`: a counted UTF-16 string; `Length` and `MaximumLength`
/// are in bytes (0x10 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UNICODE_STRING {
    pub Length: u16,
    pub MaximumLength: u16,
    pub Buffer: *mut u16,
}

impl UNICODE_STRING {
    /// The empty string.
    pub const fn empty() -> Self {
        UNICODE_STRING {
            Length: 0,
            MaximumLength: 0,
            Buffer: ptr::null_mut(),
        }
    }
    /// A string describing `s` (which must outlive every use of the result).
    pub fn from_slice(s: &[u16]) -> Self {
        let bytes = (s.len() * 2).min(0xFFFE) as u16;
        UNICODE_STRING {
            Length: bytes,
            MaximumLength: bytes,
            Buffer: s.as_ptr() as *mut u16,
        }
    }
    /// The characters.
    ///
    /// # Safety
    /// `Buffer` must point at `Length` readable bytes (or `Length` be 0) that
    /// stay valid and unchanged for the returned lifetime.
    pub unsafe fn as_slice<'a>(&self) -> &'a [u16] {
        if self.Length == 0 || self.Buffer.is_null() {
            return &[];
        }
        // SAFETY: the caller guarantees `Buffer` covers `Length` bytes.
        unsafe { core::slice::from_raw_parts(self.Buffer, self.Length as usize / 2) }
    }
}

/// `IO_STATUS_BLOCK` (0x10 bytes): the final status and the information
/// (bytes transferred, or a create disposition) of a request.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IO_STATUS_BLOCK {
    /// `Status` (a union with `Pointer` in wdm.h; only the status is used).
    pub Status: nt::NtStatus,
    pub Information: usize,
}

impl IO_STATUS_BLOCK {
    /// Status 0, information 0.
    pub const fn zeroed() -> Self {
        IO_STATUS_BLOCK {
            Status: nt::NtStatus(0),
            Information: 0,
        }
    }
}

/// `DISPATCHER_HEADER` (0x18 bytes): the start of every waitable kernel object.
/// `Type` is the `KOBJECTS` value (event: `NotificationEvent` 0 or
/// `SynchronizationEvent` 1), `Size` its size in dwords.
#[repr(C)]
#[derive(Debug)]
pub struct DISPATCHER_HEADER {
    pub Type: u8,
    pub Signalling: u8,
    pub Size: u8,
    pub Reserved1: u8,
    pub SignalState: i32,
    pub WaitListHead: LIST_ENTRY,
}

/// `KEVENT` (0x18 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct KEVENT {
    pub Header: DISPATCHER_HEADER,
}

impl KEVENT {
    /// An all-zero event (what `RtlZeroMemory` leaves); `KeInitializeEvent` must run before use.
    pub const fn zeroed() -> Self {
        KEVENT {
            Header: DISPATCHER_HEADER {
                Type: 0,
                Signalling: 0,
                Size: 0,
                Reserved1: 0,
                SignalState: 0,
                WaitListHead: LIST_ENTRY::zeroed(),
            },
        }
    }
}

/// `KOBJECTS` values of `DISPATCHER_HEADER.Type` for the other dispatcher
/// objects drivers embed.
pub const MUTANT_OBJECT: u8 = 2;
pub const SEMAPHORE_OBJECT: u8 = 5;
pub const TIMER_NOTIFICATION_OBJECT: u8 = 8;
pub const TIMER_SYNCHRONIZATION_OBJECT: u8 = 9;

/// `KSEMAPHORE` (0x20 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct KSEMAPHORE {
    pub Header: DISPATCHER_HEADER,
    pub Limit: i32,
}

/// `KMUTANT` / `KMUTEX` (0x38 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct KMUTANT {
    pub Header: DISPATCHER_HEADER,
    pub MutantListEntry: LIST_ENTRY,
    pub OwnerThread: *mut core::ffi::c_void,
    /// `MutantFlags` (bit 0: `Abandoned`).
    pub MutantFlags: u8,
    pub ApcDisable: u8,
}

/// `KMUTEX` is a `KMUTANT`.
pub type KMUTEX = KMUTANT;

/// `KTIMER` (0x40 bytes; opaque to drivers, which only pass its address).
#[repr(C)]
#[derive(Debug)]
pub struct KTIMER {
    pub Header: DISPATCHER_HEADER,
    /// `ULARGE_INTEGER DueTime`.
    pub DueTime: u64,
    pub TimerListEntry: LIST_ENTRY,
    pub Dpc: *mut KDPC,
    pub Processor: u32,
    pub Period: u32,
}

/// `TIMER_TYPE`: `NotificationTimer`.
pub const NOTIFICATION_TIMER: u32 = 0;
/// `TIMER_TYPE`: `SynchronizationTimer`.
pub const SYNCHRONIZATION_TIMER: u32 = 1;

/// `EVENT_TYPE`: `NotificationEvent`.
pub const NOTIFICATION_EVENT: u32 = 0;
/// `EVENT_TYPE`: `SynchronizationEvent`.
pub const SYNCHRONIZATION_EVENT: u32 = 1;
/// `KWAIT_REASON` `Executive`.
pub const EXECUTIVE: u32 = 0;

/// `KDEFERRED_ROUTINE`.
pub type KDEFERRED_ROUTINE =
    unsafe extern "system" fn(*mut KDPC, *mut c_void, *mut c_void, *mut c_void);

/// `KDPC` (0x40 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct KDPC {
    /// `Type`, `Importance` and `Number` (`TargetInfoAsUlong`).
    pub Type: u8,
    pub Importance: u8,
    pub Number: u16,
    pub DpcListEntry: SINGLE_LIST_ENTRY,
    pub ProcessorHistory: usize,
    pub DeferredRoutine: Option<KDEFERRED_ROUTINE>,
    pub DeferredContext: *mut c_void,
    pub SystemArgument1: *mut c_void,
    pub SystemArgument2: *mut c_void,
    pub DpcData: *mut c_void,
}

/// `KAPC` (0x58 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KAPC {
    pub Type: u8,
    pub SpareByte0: u8,
    pub Size: u8,
    pub SpareByte1: u8,
    pub SpareLong0: u32,
    pub Thread: *mut c_void,
    pub ApcListEntry: LIST_ENTRY,
    /// `KernelRoutine`, `RundownRoutine`, `NormalRoutine` (or `Reserved[3]`).
    pub Routines: [*mut c_void; 3],
    pub NormalContext: *mut c_void,
    pub SystemArgument1: *mut c_void,
    pub SystemArgument2: *mut c_void,
    pub ApcStateIndex: i8,
    pub ApcMode: KPROCESSOR_MODE,
    pub Inserted: BOOLEAN,
}

/// `KDEVICE_QUEUE_ENTRY` (0x18 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KDEVICE_QUEUE_ENTRY {
    pub DeviceListEntry: LIST_ENTRY,
    pub SortKey: u32,
    pub Inserted: BOOLEAN,
}

/// `KDEVICE_QUEUE` (0x28 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct KDEVICE_QUEUE {
    pub Type: i16,
    pub Size: i16,
    pub DeviceListHead: LIST_ENTRY,
    pub Lock: KSPIN_LOCK,
    /// `Busy` (its low byte; x64 packs `Reserved:8, Hint:56` with it).
    pub Busy: usize,
}

/// `MDL` (0x30 bytes): describes the physical pages of a virtual buffer;
/// the page frame numbers (`PFN_NUMBER`, u64) follow it in memory.
#[repr(C)]
#[derive(Debug)]
pub struct MDL {
    pub Next: *mut MDL,
    /// Bytes of this MDL including its PFN array.
    pub Size: i16,
    pub MdlFlags: i16,
    pub AllocationProcessorNumber: u16,
    pub Reserved: u16,
    pub Process: *mut c_void,
    pub MappedSystemVa: *mut c_void,
    /// The page-aligned start of the buffer.
    pub StartVa: *mut c_void,
    pub ByteCount: u32,
    pub ByteOffset: u32,
}

/// `PFN_NUMBER`.
pub type PFN_NUMBER = u64;

/// `PAGE_SIZE` on x64.
pub const PAGE_SIZE: usize = 0x1000;

/// `ADDRESS_AND_SIZE_TO_SPAN_PAGES`: pages the buffer `[va, va+size)` touches.
pub const fn address_and_size_to_span_pages(va: usize, size: usize) -> usize {
    ((va & (PAGE_SIZE - 1)) + size).div_ceil(PAGE_SIZE)
}

/// `MmSizeOfMdl`: bytes of an MDL (header plus PFN array) for the buffer.
pub const fn mm_size_of_mdl(va: usize, size: usize) -> usize {
    core::mem::size_of::<MDL>()
        + address_and_size_to_span_pages(va, size) * core::mem::size_of::<PFN_NUMBER>()
}

/// `MmInitializeMdl`: initialises the header of an MDL for `[va, va+length)`.
///
/// # Safety
/// `mdl` must point at writable memory of at least `mm_size_of_mdl(va, length)` bytes.
pub unsafe fn MmInitializeMdl(mdl: *mut MDL, va: *mut c_void, length: usize) {
    let size = mm_size_of_mdl(va as usize, length);
    // SAFETY: the caller guarantees `mdl` is writable for the header.
    unsafe {
        mdl.write(MDL {
            Next: ptr::null_mut(),
            Size: size as i16,
            MdlFlags: 0,
            AllocationProcessorNumber: 0,
            Reserved: 0,
            Process: ptr::null_mut(),
            MappedSystemVa: ptr::null_mut(),
            StartVa: (va as usize & !(PAGE_SIZE - 1)) as *mut c_void,
            ByteCount: length as u32,
            ByteOffset: (va as usize & (PAGE_SIZE - 1)) as u32,
        });
    }
}

/// `MmGetMdlPfnArray`: the PFN array following the header.
///
/// # Safety
/// `mdl` must point at an MDL.
pub unsafe fn MmGetMdlPfnArray(mdl: *mut MDL) -> *mut PFN_NUMBER {
    // SAFETY: the PFN array directly follows the header (same allocation).
    unsafe { mdl.add(1) as *mut PFN_NUMBER }
}

/// `MmGetMdlVirtualAddress`.
///
/// # Safety
/// `mdl` must point at an MDL.
pub unsafe fn MmGetMdlVirtualAddress(mdl: *const MDL) -> *mut c_void {
    // SAFETY: the caller guarantees `mdl` is an MDL.
    unsafe { ((*mdl).StartVa as usize + (*mdl).ByteOffset as usize) as *mut c_void }
}

/// `MmGetMdlByteCount`.
///
/// # Safety
/// `mdl` must point at an MDL.
pub unsafe fn MmGetMdlByteCount(mdl: *const MDL) -> u32 {
    // SAFETY: the caller guarantees `mdl` is an MDL.
    unsafe { (*mdl).ByteCount }
}

/// `MDL_MAPPED_TO_SYSTEM_VA`.
pub const MDL_MAPPED_TO_SYSTEM_VA: i16 = 0x0001;
/// `MDL_PAGES_LOCKED`.
pub const MDL_PAGES_LOCKED: i16 = 0x0002;
/// `MDL_SOURCE_IS_NONPAGED_POOL`.
pub const MDL_SOURCE_IS_NONPAGED_POOL: i16 = 0x0004;
/// `MDL_ALLOCATED_FIXED_SIZE`.
pub const MDL_ALLOCATED_FIXED_SIZE: i16 = 0x0008;
/// `MDL_PARTIAL`.
pub const MDL_PARTIAL: i16 = 0x0010;
/// `MDL_PARTIAL_HAS_BEEN_MAPPED`.
pub const MDL_PARTIAL_HAS_BEEN_MAPPED: i16 = 0x0020;
/// `MDL_IO_PAGE_READ`.
pub const MDL_IO_PAGE_READ: i16 = 0x0040;
/// `MDL_WRITE_OPERATION`.
pub const MDL_WRITE_OPERATION: i16 = 0x0080;
/// `MDL_IO_SPACE`.
pub const MDL_IO_SPACE: i16 = 0x0800;
/// `MDL_MAPPING_CAN_FAIL`.
pub const MDL_MAPPING_CAN_FAIL: i16 = 0x2000;
/// `MDL_INTERNAL`.
pub const MDL_INTERNAL: i16 = -0x8000;

/// `LOCK_OPERATION` `IoReadAccess`.
pub const IO_READ_ACCESS: u32 = 0;
/// `LOCK_OPERATION` `IoWriteAccess`.
pub const IO_WRITE_ACCESS: u32 = 1;
/// `LOCK_OPERATION` `IoModifyAccess`.
pub const IO_MODIFY_ACCESS: u32 = 2;
/// `MEMORY_CACHING_TYPE` `MmNonCached`.
pub const MM_NON_CACHED: u32 = 0;
/// `MEMORY_CACHING_TYPE` `MmCached`.
pub const MM_CACHED: u32 = 1;
/// `MM_PAGE_PRIORITY` `NormalPagePriority`.
pub const NORMAL_PAGE_PRIORITY: u32 = 16;
/// `MdlMappingNoExecute`, or-ed into the page priority.
pub const MDL_MAPPING_NO_EXECUTE: u32 = 0x4000_0000;

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<LIST_ENTRY>() == 0x10);
    assert!(size_of::<UNICODE_STRING>() == 0x10);
    assert!(offset_of!(UNICODE_STRING, Buffer) == 8);
    assert!(size_of::<IO_STATUS_BLOCK>() == 0x10);
    assert!(offset_of!(IO_STATUS_BLOCK, Information) == 8);
    assert!(size_of::<DISPATCHER_HEADER>() == 0x18);
    assert!(offset_of!(DISPATCHER_HEADER, SignalState) == 4);
    assert!(offset_of!(DISPATCHER_HEADER, WaitListHead) == 8);
    assert!(size_of::<KEVENT>() == 0x18);
    assert!(size_of::<KSEMAPHORE>() == 0x20);
    assert!(offset_of!(KSEMAPHORE, Limit) == 0x18);
    assert!(size_of::<KMUTANT>() == 0x38);
    assert!(offset_of!(KMUTANT, OwnerThread) == 0x28);
    assert!(offset_of!(KMUTANT, MutantFlags) == 0x30);
    assert!(offset_of!(KMUTANT, ApcDisable) == 0x31);
    assert!(size_of::<KTIMER>() == 0x40);
    assert!(offset_of!(KTIMER, Dpc) == 0x30);
    assert!(offset_of!(KTIMER, Period) == 0x3C);
    assert!(size_of::<KDPC>() == 0x40);
    assert!(offset_of!(KDPC, DeferredRoutine) == 0x18);
    assert!(offset_of!(KDPC, DpcData) == 0x38);
    assert!(size_of::<KAPC>() == 0x58);
    assert!(offset_of!(KAPC, ApcListEntry) == 0x10);
    assert!(offset_of!(KAPC, NormalContext) == 0x38);
    assert!(offset_of!(KAPC, ApcStateIndex) == 0x50);
    assert!(offset_of!(KAPC, Inserted) == 0x52);
    assert!(size_of::<KDEVICE_QUEUE_ENTRY>() == 0x18);
    assert!(offset_of!(KDEVICE_QUEUE_ENTRY, SortKey) == 0x10);
    assert!(size_of::<KDEVICE_QUEUE>() == 0x28);
    assert!(offset_of!(KDEVICE_QUEUE, Lock) == 0x18);
    assert!(offset_of!(KDEVICE_QUEUE, Busy) == 0x20);
    assert!(size_of::<MDL>() == 0x30);
    assert!(offset_of!(MDL, Size) == 8);
    assert!(offset_of!(MDL, MdlFlags) == 0xA);
    assert!(offset_of!(MDL, Process) == 0x10);
    assert!(offset_of!(MDL, MappedSystemVa) == 0x18);
    assert!(offset_of!(MDL, StartVa) == 0x20);
    assert!(offset_of!(MDL, ByteCount) == 0x28);
    assert!(offset_of!(MDL, ByteOffset) == 0x2C);
};
