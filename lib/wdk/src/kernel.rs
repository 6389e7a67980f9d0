//! The kernel, executive-pool, run-time library and HAL routines drivers
//! import from ntoskrnl.exe (feature `driver`; listed in ntos/exports/ke.txt,
//! ex.txt, rtl.txt, hal.txt). Added by the driver-loading work beside io's
//! `ntoskrnl.rs`.

use crate::base::*;
use core::ffi::c_void;

#[link(name = "ntoskrnl")]
extern "system" {
    // Bug checks, IRQL, spin locks, time.
    pub fn KeBugCheckEx(BugCheckCode: u32, P1: usize, P2: usize, P3: usize, P4: usize) -> !;
    pub fn KeGetCurrentIrql() -> KIRQL;
    pub fn KeAcquireSpinLockRaiseToDpc(SpinLock: *mut KSPIN_LOCK) -> KIRQL;
    pub fn KeReleaseSpinLock(SpinLock: *mut KSPIN_LOCK, NewIrql: KIRQL);
    pub fn KeAcquireSpinLockAtDpcLevel(SpinLock: *mut KSPIN_LOCK);
    pub fn KeReleaseSpinLockFromDpcLevel(SpinLock: *mut KSPIN_LOCK);
    pub fn KeQuerySystemTimePrecise(CurrentTime: *mut LARGE_INTEGER);
    pub fn KeQueryInterruptTimePrecise(QpcTimeStamp: *mut u64) -> u64;
    pub fn KeQueryTimeIncrement() -> u32;
    pub fn KeStallExecutionProcessor(MicroSeconds: u32);

    // HAL bus data (PCI configuration space: BusDataType PCIConfiguration).
    pub fn HalGetBusDataByOffset(
        BusDataType: u32,
        BusNumber: u32,
        SlotNumber: u32,
        Buffer: *mut c_void,
        Offset: u32,
        Length: u32,
    ) -> u32;
    pub fn HalSetBusDataByOffset(
        BusDataType: u32,
        BusNumber: u32,
        SlotNumber: u32,
        Buffer: *mut c_void,
        Offset: u32,
        Length: u32,
    ) -> u32;

    // Pool.
    pub fn ExAllocatePool2(Flags: u64, NumberOfBytes: usize, Tag: u32) -> *mut c_void;
    pub fn ExAllocatePoolWithTag(PoolType: u32, NumberOfBytes: usize, Tag: u32) -> *mut c_void;
    pub fn ExFreePoolWithTag(P: *mut c_void, Tag: u32);
    pub fn ExFreePool(P: *mut c_void);

    // Debug output and run-time library.
    pub fn DbgPrint(Format: *const u8, ...) -> u32;
    pub fn DbgPrintEx(ComponentId: u32, Level: u32, Format: *const u8, ...) -> u32;
    pub fn RtlInitUnicodeString(DestinationString: *mut UNICODE_STRING, SourceString: *const u16);
    pub fn RtlCopyMemory(Destination: *mut c_void, Source: *const c_void, Length: usize);
    pub fn RtlMoveMemory(Destination: *mut c_void, Source: *const c_void, Length: usize);
    pub fn RtlFillMemory(Destination: *mut c_void, Length: usize, Fill: u8);
    pub fn RtlZeroMemory(Destination: *mut c_void, Length: usize);
    pub fn RtlCompareMemory(Source1: *const c_void, Source2: *const c_void, Length: usize)
        -> usize;
}
