//! The ntoskrnl.exe routines the storage drivers (storahci.sys, disk.sys)
//! import beyond the I/O manager's: device memory and DMA (`MmMapIoSpace`,
//! contiguous memory, physical addresses; ntos/exports/mm.txt), interrupts
//! (ntos/exports/pnp.txt), DPCs (ntos/exports/ke-dpc.txt) and
//! `IoGetConfigurationInformation` (ntos/exports/io-config.txt).

use crate::base::*;
use crate::pnp::*;
use crate::scsi::CONFIGURATION_INFORMATION;
use core::ffi::c_void;
use nt::NtStatus;

#[link(name = "ntoskrnl")]
extern "system" {
    pub fn MmMapIoSpace(PhysicalAddress: u64, NumberOfBytes: usize, CacheType: u32) -> *mut c_void;
    pub fn MmUnmapIoSpace(BaseAddress: *mut c_void, NumberOfBytes: usize);
    pub fn MmAllocateContiguousMemorySpecifyCache(
        NumberOfBytes: usize,
        LowestAcceptableAddress: i64,
        HighestAcceptableAddress: i64,
        BoundaryAddressMultiple: i64,
        CacheType: u32,
    ) -> *mut c_void;
    pub fn MmFreeContiguousMemory(BaseAddress: *mut c_void);
    pub fn MmGetPhysicalAddress(BaseAddress: *mut c_void) -> i64;

    pub fn IoConnectInterruptEx(Parameters: *mut IO_CONNECT_INTERRUPT_PARAMETERS) -> NtStatus;
    pub fn IoDisconnectInterruptEx(Parameters: *mut IO_DISCONNECT_INTERRUPT_PARAMETERS);

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
}
