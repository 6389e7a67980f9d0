//! The ntoskrnl.exe routines the storage drivers (storahci.sys, disk.sys)
//! import beyond the I/O manager's and the PnP interface's (pnp.rs:
//! interrupts, `MmMapIoSpace`): contiguous DMA memory and physical
//! addresses (ntos/exports/mm.txt), DPCs (ntos/exports/ke-dpc.txt),
//! `IoGetConfigurationInformation` (ntos/exports/io-config.txt) and
//! `ZwCreateDirectoryObject` (ntos/exports/ob-directory.txt; `ZwClose` is
//! cm-zw.txt's).

use crate::base::*;
use crate::registry::OBJECT_ATTRIBUTES;
use crate::scsi::CONFIGURATION_INFORMATION;
use core::ffi::c_void;

#[link(name = "ntoskrnl")]
extern "system" {
    pub fn MmAllocateContiguousMemorySpecifyCache(
        NumberOfBytes: usize,
        LowestAcceptableAddress: i64,
        HighestAcceptableAddress: i64,
        BoundaryAddressMultiple: i64,
        CacheType: u32,
    ) -> *mut c_void;
    pub fn MmFreeContiguousMemory(BaseAddress: *mut c_void);
    pub fn MmGetPhysicalAddress(BaseAddress: *mut c_void) -> i64;

    pub fn KeInitializeDpc(
        Dpc: *mut KDPC,
        DeferredRoutine: KDEFERRED_ROUTINE,
        DeferredContext: *mut c_void,
    );
    pub fn KeInsertQueueDpc(
        Dpc: *mut KDPC,
        SystemArgument1: *mut c_void,
        SystemArgument2: *mut c_void,
    ) -> BOOLEAN;

    pub fn IoGetConfigurationInformation() -> *mut CONFIGURATION_INFORMATION;

    pub fn ZwCreateDirectoryObject(
        DirectoryHandle: *mut HANDLE,
        DesiredAccess: ACCESS_MASK,
        ObjectAttributes: *mut OBJECT_ATTRIBUTES,
    ) -> nt::NtStatus;
}
