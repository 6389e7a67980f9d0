//! The heap exports (`RtlCreateHeap` ... `RtlGetProcessHeaps`) over
//! lib/heap, whose virtual memory is `NtAllocateVirtualMemory` /
//! `NtFreeVirtualMemory` on the current process. Signatures as MS docs
//! (ntifs.h) and phnt declare them.
//!
//! Failures: a heap request that does not fit returns NULL, or with
//! HEAP_GENERATE_EXCEPTIONS (heap's or call's flags) raises STATUS_NO_MEMORY
//! (`RtlRaiseStatus`). Heap corruption (a double free, an overwritten
//! header, a pointer that is not a block) ends the process with
//! STATUS_HEAP_CORRUPTION, as 64-bit Windows does by default
//! (`HeapEnableTerminationOnCorruption`). A handle that is not a heap of
//! this process is refused (NULL / FALSE / STATUS_INVALID_PARAMETER).
#![allow(non_snake_case)]

use crate::except::raise_status;
use crate::syscalls::{
    NtAllocateVirtualMemory, NtFreeVirtualMemory, NtTerminateProcess, NtYieldExecution,
};
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};
use heap::{Heap, VirtualMemory, WalkEntry, HEAP_GENERATE_EXCEPTIONS, HEAP_NO_SERIALIZE};
use nt::status::{NtStatus, STATUS_HEAP_CORRUPTION, STATUS_INVALID_PARAMETER};

const NT_CURRENT_PROCESS: u64 = u64::MAX;
const MEM_COMMIT: u32 = 0x1000;
const MEM_RESERVE: u32 = 0x2000;
const MEM_DECOMMIT: u32 = 0x4000;
const MEM_RELEASE: u32 = 0x8000;
const PAGE_READWRITE: u32 = 0x04;

/// The process's virtual memory, through the system services.
pub struct NtVm;

fn status(s: i32) -> Result<(), NtStatus> {
    NtStatus(s).ok()
}

// SAFETY: reservations come from NtAllocateVirtualMemory in this process
// and belong to the heap alone; committed pages are read-write.
unsafe impl VirtualMemory for NtVm {
    fn reserve(&self, size: usize) -> Result<usize, NtStatus> {
        let mut base = 0u64;
        let mut size = size as u64;
        // SAFETY: both in/out arguments are locals.
        status(unsafe {
            NtAllocateVirtualMemory(
                NT_CURRENT_PROCESS,
                &mut base,
                0,
                &mut size,
                MEM_RESERVE,
                PAGE_READWRITE,
            )
        })?;
        Ok(base as usize)
    }
    fn commit(&self, address: usize, size: usize) -> Result<(), NtStatus> {
        let mut base = address as u64;
        let mut size = size as u64;
        // SAFETY: as in `reserve`.
        status(unsafe {
            NtAllocateVirtualMemory(
                NT_CURRENT_PROCESS,
                &mut base,
                0,
                &mut size,
                MEM_COMMIT,
                PAGE_READWRITE,
            )
        })
    }
    fn decommit(&self, address: usize, size: usize) -> Result<(), NtStatus> {
        let mut base = address as u64;
        let mut size = size as u64;
        // SAFETY: as in `reserve`.
        status(unsafe {
            NtFreeVirtualMemory(NT_CURRENT_PROCESS, &mut base, &mut size, MEM_DECOMMIT)
        })
    }
    fn release(&self, address: usize) -> Result<(), NtStatus> {
        let mut base = address as u64;
        let mut size = 0u64;
        // SAFETY: as in `reserve`.
        status(unsafe {
            NtFreeVirtualMemory(NT_CURRENT_PROCESS, &mut base, &mut size, MEM_RELEASE)
        })
    }
    fn current_thread(&self) -> usize {
        let id: usize;
        // SAFETY: GS holds the TEB in user mode; TEB.ClientId.UniqueThread
        // is at 0x48 (x64).
        unsafe {
            core::arch::asm!("mov {}, gs:[0x48]", out(reg) id, options(nostack, readonly, preserves_flags))
        };
        // Thread ids are never 0; keep 0 free as "unowned" regardless.
        id | 1 << 63
    }
    fn yield_processor(&self) {
        // SAFETY: no arguments.
        unsafe { NtYieldExecution() };
    }
}

/// The heaps of this process (`PEB.ProcessHeaps` on Windows), for
/// `RtlGetProcessHeaps` and handle checks.
static HEAPS: [AtomicUsize; 64] = [const { AtomicUsize::new(0) }; 64];

fn known(handle: usize) -> Option<&'static Heap<NtVm>> {
    if handle == 0 || !HEAPS.iter().any(|h| h.load(Ordering::Acquire) == handle) {
        return None;
    }
    // SAFETY: `handle` is a live heap of this process (registered by
    // `RtlCreateHeap`, removed by `RtlDestroyHeap`).
    unsafe { Heap::from_handle(handle) }
}

fn corruption() -> ! {
    loop {
        // SAFETY: ending the current process takes no pointers.
        unsafe { NtTerminateProcess(NT_CURRENT_PROCESS, STATUS_HEAP_CORRUPTION.0) };
    }
}

/// A failed request: corruption ends the process, anything else raises
/// with HEAP_GENERATE_EXCEPTIONS or returns.
fn failed(h: &Heap<NtVm>, flags: u32, s: NtStatus) {
    if s == STATUS_HEAP_CORRUPTION {
        corruption();
    }
    if (flags | h.flags()) & HEAP_GENERATE_EXCEPTIONS != 0 {
        raise_status(s);
    }
}

/// `RtlCreateHeap`. A caller-provided `HeapBase`, `Lock` or `Parameters`
/// is not supported (NULL).
///
/// # Safety
/// None beyond the C contract (the pointers are not dereferenced).
#[no_mangle]
pub unsafe extern "system" fn RtlCreateHeap(
    Flags: u32,
    HeapBase: *mut u8,
    ReserveSize: usize,
    CommitSize: usize,
    Lock: *mut u8,
    Parameters: *mut u8,
) -> *mut u8 {
    if !HeapBase.is_null() || !Lock.is_null() || !Parameters.is_null() {
        return ptr::null_mut();
    }
    let cookie: u64;
    // SAFETY: rdtsc has no memory effects.
    unsafe {
        core::arch::asm!("rdtsc", "shl rdx, 32", "or rax, rdx", out("rax") cookie, out("rdx") _, options(nomem, nostack))
    };
    let h = match Heap::create(
        NtVm,
        Flags,
        ReserveSize,
        CommitSize,
        cookie as u32 ^ (cookie >> 32) as u32,
    ) {
        Ok(h) => h,
        Err(s) => {
            if Flags & HEAP_GENERATE_EXCEPTIONS != 0 {
                raise_status(s);
            }
            return ptr::null_mut();
        }
    };
    for slot in HEAPS.iter() {
        if slot
            .compare_exchange(0, h as usize, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return h as *mut u8;
        }
    }
    // SAFETY: not registered, not handed out.
    let _ = unsafe { Heap::destroy(h) };
    ptr::null_mut()
}

/// `RtlDestroyHeap`: NULL on success, else the handle.
///
/// # Safety
/// The heap is not used afterwards (C contract).
#[no_mangle]
pub unsafe extern "system" fn RtlDestroyHeap(HeapHandle: *mut u8) -> *mut u8 {
    let handle = HeapHandle as usize;
    if known(handle).is_none() {
        return HeapHandle;
    }
    for slot in HEAPS.iter() {
        if slot
            .compare_exchange(handle, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            // SAFETY: a live heap, now unregistered; the caller no longer
            // uses it.
            return match unsafe { Heap::destroy(handle as *mut Heap<NtVm>) } {
                Ok(()) => ptr::null_mut(),
                Err(_) => HeapHandle,
            };
        }
    }
    HeapHandle
}

/// `RtlAllocateHeap`.
///
/// # Safety
/// HEAP_NO_SERIALIZE: the caller serializes (C contract).
#[no_mangle]
pub unsafe extern "system" fn RtlAllocateHeap(
    HeapHandle: *mut u8,
    Flags: u32,
    Size: usize,
) -> *mut u8 {
    let Some(h) = known(HeapHandle as usize) else {
        return ptr::null_mut();
    };
    // SAFETY: per the contract.
    match unsafe { h.allocate(Flags, Size) } {
        Ok(p) => p as *mut u8,
        Err(s) => {
            failed(h, Flags, s);
            ptr::null_mut()
        }
    }
}

/// `RtlFreeHeap` (`LOGICAL`): TRUE when freed; a NULL pointer is TRUE.
///
/// # Safety
/// As [`RtlAllocateHeap`].
#[no_mangle]
pub unsafe extern "system" fn RtlFreeHeap(
    HeapHandle: *mut u8,
    Flags: u32,
    BaseAddress: *mut u8,
) -> u32 {
    let Some(h) = known(HeapHandle as usize) else {
        return 0;
    };
    if BaseAddress.is_null() {
        return 1;
    }
    // SAFETY: per the contract.
    match unsafe { h.free(Flags, BaseAddress as usize) } {
        Ok(()) => 1,
        Err(s) => {
            failed(h, Flags & !HEAP_GENERATE_EXCEPTIONS, s);
            0
        }
    }
}

/// `RtlReAllocateHeap`.
///
/// # Safety
/// As [`RtlAllocateHeap`].
#[no_mangle]
pub unsafe extern "system" fn RtlReAllocateHeap(
    HeapHandle: *mut u8,
    Flags: u32,
    BaseAddress: *mut u8,
    Size: usize,
) -> *mut u8 {
    let Some(h) = known(HeapHandle as usize) else {
        return ptr::null_mut();
    };
    if BaseAddress.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: per the contract.
    match unsafe { h.reallocate(Flags, BaseAddress as usize, Size) } {
        Ok(p) => p as *mut u8,
        Err(s) => {
            failed(h, Flags, s);
            ptr::null_mut()
        }
    }
}

/// `RtlSizeHeap`: the requested size, or `(SIZE_T)-1`.
///
/// # Safety
/// As [`RtlAllocateHeap`].
#[no_mangle]
pub unsafe extern "system" fn RtlSizeHeap(
    HeapHandle: *mut u8,
    Flags: u32,
    BaseAddress: *mut u8,
) -> usize {
    let Some(h) = known(HeapHandle as usize) else {
        return usize::MAX;
    };
    // SAFETY: per the contract.
    match unsafe { h.size(Flags, BaseAddress as usize) } {
        Ok(n) => n,
        Err(s) => {
            failed(h, Flags & !HEAP_GENERATE_EXCEPTIONS, s);
            usize::MAX
        }
    }
}

/// `RtlLockHeap`.
#[no_mangle]
pub extern "system" fn RtlLockHeap(HeapHandle: *mut u8) -> u8 {
    match known(HeapHandle as usize) {
        Some(h) if h.flags() & HEAP_NO_SERIALIZE == 0 => {
            h.lock();
            1
        }
        _ => 0,
    }
}

/// `RtlUnlockHeap`.
#[no_mangle]
pub extern "system" fn RtlUnlockHeap(HeapHandle: *mut u8) -> u8 {
    match known(HeapHandle as usize) {
        Some(h) if h.flags() & HEAP_NO_SERIALIZE == 0 => h.unlock().is_ok() as u8,
        _ => 0,
    }
}

/// `RTL_HEAP_WALK_ENTRY` (phnt).
#[repr(C)]
pub struct RtlHeapWalkEntry {
    pub data_address: usize,
    pub data_size: usize,
    pub overhead_bytes: u8,
    pub segment_index: u8,
    pub flags: u16,
    /// `Block` {Settable, TagIndex, AllocatorBackTraceIndex, Reserved[2]}
    /// or `Segment` {CommittedSize, UnCommittedSize, FirstEntry,
    /// LastEntry}.
    pub u: [usize; 3],
}

const RTL_HEAP_BUSY: u16 = 0x0001;
const RTL_HEAP_SEGMENT: u16 = 0x0002;
const RTL_HEAP_UNCOMMITTED_RANGE: u16 = 0x1000;
const RTL_HEAP_LARGE_ALLOC: u16 = 0x4000;
const RTL_HEAP_LFH_ALLOC: u16 = 0x8000;

/// `RtlWalkHeap`: `Entry->DataAddress` NULL starts; STATUS_NO_MORE_ENTRIES
/// after the last entry.
///
/// # Safety
/// `Entry` points to a writable `RTL_HEAP_WALK_ENTRY`.
#[no_mangle]
pub unsafe extern "system" fn RtlWalkHeap(
    HeapHandle: *mut u8,
    Entry: *mut RtlHeapWalkEntry,
) -> i32 {
    let Some(h) = known(HeapHandle as usize) else {
        return STATUS_INVALID_PARAMETER.0;
    };
    if Entry.is_null() {
        return STATUS_INVALID_PARAMETER.0;
    }
    // SAFETY: the caller passes a valid entry.
    let e = unsafe { &mut *Entry };
    // SAFETY: the walk takes the heap lock.
    let next = match unsafe { h.walk(e.data_address) } {
        Ok(n) => n,
        Err(s) => return s.0,
    };
    match next {
        WalkEntry::Segment {
            index,
            base,
            committed,
            uncommitted,
            first,
            last,
        } => {
            *e = RtlHeapWalkEntry {
                data_address: base,
                data_size: committed + uncommitted,
                overhead_bytes: 0,
                segment_index: index,
                flags: RTL_HEAP_SEGMENT,
                u: [
                    (committed as u32 as usize) | (uncommitted << 32),
                    first,
                    last,
                ],
            }
        }
        WalkEntry::Block {
            data,
            size,
            overhead,
            index,
            busy,
            large,
            lfh,
        } => {
            let mut flags = 0;
            if busy {
                flags |= RTL_HEAP_BUSY;
            }
            if large {
                flags |= RTL_HEAP_LARGE_ALLOC;
            }
            if lfh {
                flags |= RTL_HEAP_LFH_ALLOC;
            }
            *e = RtlHeapWalkEntry {
                data_address: data,
                data_size: size,
                overhead_bytes: overhead,
                segment_index: index,
                flags,
                u: [0; 3],
            }
        }
        WalkEntry::Uncommitted {
            address,
            size,
            index,
        } => {
            *e = RtlHeapWalkEntry {
                data_address: address,
                data_size: size,
                overhead_bytes: 0,
                segment_index: index,
                flags: RTL_HEAP_UNCOMMITTED_RANGE,
                u: [0; 3],
            }
        }
    }
    0
}

/// `RtlGetProcessHeaps`: stores up to `NumberOfHeaps` handles, returns how
/// many heaps exist.
///
/// # Safety
/// `ProcessHeaps` has room for `NumberOfHeaps` pointers.
#[no_mangle]
pub unsafe extern "system" fn RtlGetProcessHeaps(
    NumberOfHeaps: u32,
    ProcessHeaps: *mut *mut u8,
) -> u32 {
    let mut n = 0u32;
    for slot in HEAPS.iter() {
        let h = slot.load(Ordering::Acquire);
        if h != 0 {
            if n < NumberOfHeaps && !ProcessHeaps.is_null() {
                // SAFETY: `n` is below the caller's count.
                unsafe { *ProcessHeaps.add(n as usize) = h as *mut u8 };
            }
            n += 1;
        }
    }
    n
}
