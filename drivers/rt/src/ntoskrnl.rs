//! The ntoskrnl.exe routines the drivers here import, declared with their
//! Windows signatures (until lib/wdk's `driver` feature carries them all).
#![allow(non_snake_case)]

#[link(name = "ntoskrnl")]
extern "system" {
    pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
    pub fn DbgPrint(format: *const u8, ...) -> u32;
    pub fn ExAllocatePool2(flags: u64, bytes: usize, tag: u32) -> *mut u8;
    pub fn ExFreePoolWithTag(p: *mut u8, tag: u32);
    pub fn KeGetCurrentIrql() -> u8;
    pub fn KeQueryTimeIncrement() -> u32;
}
