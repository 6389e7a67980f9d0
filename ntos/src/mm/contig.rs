//! Physically contiguous nonpaged memory and physical address queries for
//! drivers' DMA (`MmAllocateContiguousMemorySpecifyCache`,
//! `MmFreeContiguousMemory`, `MmGetPhysicalAddress`), with their ntoskrnl
//! exports (`MmMapIoSpace` lives in map.rs)
//! (*Windows Internals* Part 1 ch. 5, "Physical memory"; Part 1 ch. 6 for
//! drivers' use).

use super::map::{map_page, release_system_ptes, reserve_system_ptes, unmap_page};
use super::pfn;
use super::pte::*;
use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use alloc::vec::Vec;
use core::ffi::c_void;
use nt::status::*;
use nt::NtStatus;

/// `MEMORY_CACHING_TYPE`: `MmNonCached`.
pub const MM_NON_CACHED: u32 = 0;
/// `MmCached`.
pub const MM_CACHED: u32 = 1;
/// `MmWriteCombined` (mapped uncached: ntrs programs no write-combining PAT entry).
pub const MM_WRITE_COMBINED: u32 = 2;

/// Tries before giving up on finding a contiguous run.
const ATTEMPTS: usize = 64;

/// Live contiguous allocations: (virtual address, pages), so
/// `MmFreeContiguousMemory` needs only the address, as on NT.
static ALLOCATIONS: SpinLocked<Vec<(u64, u64)>, DISPATCH_LEVEL> = SpinLocked::new(Vec::new());

/// Takes `n` frames `first..first+n` if all are free; else takes none.
fn take_run(first: u64, n: u64) -> bool {
    let Some(got) = (first..first + n)
        .try_fold(
            Vec::new(),
            |mut v, f| match pfn::mm_allocate_page_in_range(f, f) {
                Some(p) => {
                    v.push(p);
                    Ok(v)
                }
                None => Err(v),
            },
        )
        .map_err(|taken| {
            for p in taken {
                let _ = pfn::mm_free_page(p);
            }
        })
        .ok()
    else {
        return false;
    };
    got.len() as u64 == n
}

/// `MmAllocateContiguousMemorySpecifyCache`: `size` bytes of zeroed,
/// physically contiguous nonpaged memory whose physical range lies in
/// `[low, high]` and does not cross a multiple of `boundary` (0: no
/// boundary), mapped with `cache`. A candidate run starts at a free frame
/// in range; up to `ATTEMPTS` candidates are tried.
pub fn mm_allocate_contiguous_memory(
    size: u64,
    low: u64,
    high: u64,
    boundary: u64,
    cache: u32,
) -> Result<u64, NtStatus> {
    if size == 0
        || high < low
        || cache > MM_WRITE_COMBINED
        || (boundary != 0 && !boundary.is_power_of_two())
    {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let n = size.div_ceil(4096);
    if boundary != 0 && n * 4096 > boundary {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let (lo, hi) = (low.div_ceil(4096), high / 4096);
    if hi < lo || hi - lo + 1 < n {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    let mut first = None;
    for _ in 0..ATTEMPTS {
        let Some(f) = pfn::mm_allocate_page_in_range(lo, hi + 1 - n) else {
            break;
        };
        let crosses = boundary != 0 && (f * 4096) / boundary != ((f + n) * 4096 - 1) / boundary;
        if !crosses && (n == 1 || take_run(f + 1, n - 1)) {
            first = Some(f);
            break;
        }
        let _ = pfn::mm_free_page(f);
    }
    let f = first.ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    let free_frames = || {
        for i in 0..n {
            let _ = pfn::mm_free_page(f + i);
        }
    };
    let Some(va) = reserve_system_ptes(n) else {
        free_frames();
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    };
    let flags = PTE_WRITE
        | PTE_NX
        | PTE_GLOBAL
        | if cache == MM_CACHED {
            0
        } else {
            PTE_CACHE_DISABLE
        };
    for i in 0..n {
        if let Err(e) = map_page(va + i * 4096, f + i, flags) {
            for j in 0..i {
                unmap_page(va + j * 4096);
            }
            release_system_ptes(va, n);
            free_frames();
            return Err(e);
        }
    }
    // SAFETY: the n pages were just mapped writable at va and belong to this allocation.
    unsafe { core::ptr::write_bytes(va as *mut u8, 0, (n * 4096) as usize) };
    if ALLOCATIONS
        .with(|a| a.try_reserve(1).map(|()| a.push((va, n))))
        .is_err()
    {
        free_contiguous(va, n);
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    Ok(va)
}

fn free_contiguous(va: u64, n: u64) {
    for i in 0..n {
        if let Some(f) = unmap_page(va + i * 4096) {
            let _ = pfn::mm_free_page(f);
        }
    }
    release_system_ptes(va, n);
}

/// `MmFreeContiguousMemory`: an address that is not a live contiguous
/// allocation is ignored (NT bugchecks; ntrs reports it with the status).
pub fn mm_free_contiguous_memory(va: u64) -> NtStatus {
    let Some(n) = ALLOCATIONS.with(|a| {
        let i = a.iter().position(|&(v, _)| v == va)?;
        Some(a.swap_remove(i).1)
    }) else {
        return STATUS_INVALID_PARAMETER;
    };
    free_contiguous(va, n);
    STATUS_SUCCESS
}

/// `MmAllocateContiguousMemorySpecifyCache` export; NULL on failure.
#[no_mangle]
#[allow(non_snake_case)]
pub extern "system" fn MmAllocateContiguousMemorySpecifyCache(
    NumberOfBytes: usize,
    LowestAcceptableAddress: i64,
    HighestAcceptableAddress: i64,
    BoundaryAddressMultiple: i64,
    CacheType: u32,
) -> *mut c_void {
    mm_allocate_contiguous_memory(
        NumberOfBytes as u64,
        LowestAcceptableAddress as u64,
        HighestAcceptableAddress as u64,
        BoundaryAddressMultiple as u64,
        CacheType,
    )
    .map_or(core::ptr::null_mut(), |va| va as *mut c_void)
}

/// `MmFreeContiguousMemory` export.
#[no_mangle]
#[allow(non_snake_case)]
pub extern "system" fn MmFreeContiguousMemory(BaseAddress: *mut c_void) {
    let _ = mm_free_contiguous_memory(BaseAddress as u64);
}

/// `MmGetPhysicalAddress` export (`PHYSICAL_ADDRESS` is returned in RAX);
/// 0 for an unmapped address, as NT returns.
#[no_mangle]
#[allow(non_snake_case)]
pub extern "system" fn MmGetPhysicalAddress(BaseAddress: *mut c_void) -> i64 {
    physical_address(BaseAddress as u64).unwrap_or(0) as i64
}
