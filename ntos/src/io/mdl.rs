//! Memory descriptor lists (`IoAllocateMdl`, `IoFreeMdl`,
//! `MmProbeAndLockPages`, `MmUnlockPages`, `MmBuildMdlForNonPagedPool`,
//! `MmMapLockedPagesSpecifyCache`, `MmUnmapLockedPages`): the physical
//! pages of a buffer, for direct I/O.
//!
//! ntrs does not page kernel memory out yet and has no user buffers (issue
//! 15), so "locking" a page is recording its frame: `MmProbeAndLockPages`
//! translates every page of the buffer and fails with
//! STATUS_ACCESS_VIOLATION on one that is not mapped (NT raises that
//! exception; a Rust driver cannot catch it, so the kernel routine returns
//! it and the export leaves the MDL unlocked — see docs/io.md).

use super::*;
use crate::mm::map;
use crate::mm::pte;
use core::ffi::c_void;
use core::ptr;

/// `IoAllocateMdl`: an MDL for `[va, va+length)`; with `irp`, it becomes
/// the IRP's `MdlAddress` (or, `secondary`, the end of its chain). Null
/// without memory or for a zero or too large length.
///
/// # Safety
/// `irp` must be null or an IRP the caller owns.
pub unsafe fn io_allocate_mdl(
    va: *mut c_void,
    length: u32,
    secondary: bool,
    irp: *mut IRP,
) -> *mut MDL {
    if length == 0 || length > 0x7FFF_F000 {
        return ptr::null_mut();
    }
    let size = mm_size_of_mdl(va as usize, length as usize);
    let Ok(m) = xpool::allocate(PoolType::NonPaged, size as u64, TAG_MDL, false) else {
        return ptr::null_mut();
    };
    let mdl = m as *mut MDL;
    // SAFETY: a fresh block of the MDL's size; the IRP is the caller's.
    unsafe {
        MmInitializeMdl(mdl, va, length as usize);
        if !irp.is_null() {
            if secondary {
                let mut link: *mut *mut MDL = ptr::addr_of_mut!((*irp).MdlAddress);
                while !(*link).is_null() {
                    link = ptr::addr_of_mut!((**link).Next);
                }
                *link = mdl;
            } else {
                (*irp).MdlAddress = mdl;
            }
        }
    }
    mdl
}

/// `IoFreeMdl` (an MDL still mapped is unmapped first).
///
/// # Safety
/// `mdl` must be from `io_allocate_mdl` and unused.
pub unsafe fn io_free_mdl(mdl: *mut MDL) {
    // SAFETY: the caller guarantees the MDL is ours.
    unsafe {
        unmap_if_mapped(mdl);
        let _ = xpool::free(mdl as u64, TAG_MDL);
    }
}

/// `MmProbeAndLockPages`: records the frame of every page of the buffer.
/// STATUS_ACCESS_VIOLATION for a page that is not mapped (or not writable
/// for `IoWriteAccess`/`IoModifyAccess`).
///
/// # Safety
/// `mdl` must be an initialised MDL with room for its PFN array.
pub unsafe fn mm_probe_and_lock_pages(mdl: *mut MDL, operation: u32) -> Result<(), NtStatus> {
    // SAFETY: the caller guarantees the MDL and its array.
    unsafe {
        let start = (*mdl).StartVa as u64;
        let pages = address_and_size_to_span_pages(
            (*mdl).StartVa as usize + (*mdl).ByteOffset as usize,
            (*mdl).ByteCount as usize,
        );
        let pfns = MmGetMdlPfnArray(mdl);
        for i in 0..pages {
            let va = start + (i * PAGE_SIZE) as u64;
            let Some(pa) = pte::physical_address(va) else {
                return Err(STATUS_ACCESS_VIOLATION);
            };
            if operation != IO_READ_ACCESS && !writable(va) {
                return Err(STATUS_ACCESS_VIOLATION);
            }
            *pfns.add(i) = pa >> 12;
        }
        (*mdl).MdlFlags |= MDL_PAGES_LOCKED;
        if operation != IO_READ_ACCESS {
            (*mdl).MdlFlags |= MDL_WRITE_OPERATION;
        }
        Ok(())
    }
}

fn writable(va: u64) -> bool {
    let w = pte::walk(va);
    w.iter()
        .filter_map(|&(_, e)| e)
        .all(|e| e & pte::PTE_VALID == 0 || e & pte::PTE_WRITE != 0)
}

/// `MmUnlockPages` (unmapping a system mapping made for the MDL).
///
/// # Safety
/// `mdl` must be a locked MDL.
pub unsafe fn mm_unlock_pages(mdl: *mut MDL) {
    // SAFETY: the caller guarantees the MDL.
    unsafe {
        unmap_if_mapped(mdl);
        (*mdl).MdlFlags &= !(MDL_PAGES_LOCKED | MDL_WRITE_OPERATION);
    }
}

/// `MmBuildMdlForNonPagedPool`: fills the PFN array of an MDL describing
/// nonpaged memory; its system address is the buffer itself.
///
/// # Safety
/// `mdl` must describe mapped nonpaged memory.
pub unsafe fn mm_build_mdl_for_non_paged_pool(mdl: *mut MDL) {
    // SAFETY: the caller guarantees the MDL.
    unsafe {
        if mm_probe_and_lock_pages(mdl, IO_READ_ACCESS).is_ok() {
            (*mdl).MdlFlags &= !MDL_PAGES_LOCKED;
        }
        (*mdl).MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL;
        (*mdl).MappedSystemVa = MmGetMdlVirtualAddress(mdl);
    }
}

/// `MmMapLockedPagesSpecifyCache` into system space (the only mode ntrs
/// has): maps the MDL's frames at fresh system PTEs; returns the address
/// of the buffer's first byte, or null without PTEs. `MmNonCached` maps
/// uncached.
///
/// # Safety
/// `mdl` must be locked (or built for nonpaged pool).
pub unsafe fn mm_map_locked_pages(mdl: *mut MDL, cache: u32) -> *mut c_void {
    // SAFETY: the caller guarantees the MDL.
    unsafe {
        if (*mdl).MdlFlags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
            return (*mdl).MappedSystemVa;
        }
        if (*mdl).MdlFlags & MDL_PAGES_LOCKED == 0 {
            return ptr::null_mut();
        }
        let pages = address_and_size_to_span_pages(
            (*mdl).StartVa as usize + (*mdl).ByteOffset as usize,
            (*mdl).ByteCount as usize,
        ) as u64;
        let Some(va) = map::reserve_system_ptes(pages) else {
            return ptr::null_mut();
        };
        let mut flags = pte::PTE_WRITE | pte::PTE_NX | pte::PTE_GLOBAL;
        if cache == MM_NON_CACHED {
            flags |= pte::PTE_CACHE_DISABLE;
        }
        let pfns = MmGetMdlPfnArray(mdl);
        for i in 0..pages {
            if map::map_page(va + i * 4096, *pfns.add(i as usize), flags).is_err() {
                for j in 0..i {
                    map::unmap_page(va + j * 4096);
                }
                map::release_system_ptes(va, pages);
                return ptr::null_mut();
            }
        }
        (*mdl).MappedSystemVa = (va + (*mdl).ByteOffset as u64) as *mut c_void;
        (*mdl).MdlFlags |= MDL_MAPPED_TO_SYSTEM_VA;
        (*mdl).MappedSystemVa
    }
}

/// `MmUnmapLockedPages` of a system mapping.
///
/// # Safety
/// `mdl` must be an MDL mapped by `mm_map_locked_pages`.
unsafe fn unmap_if_mapped(mdl: *mut MDL) {
    // SAFETY: the caller guarantees the MDL.
    unsafe {
        if (*mdl).MdlFlags & MDL_MAPPED_TO_SYSTEM_VA == 0 {
            return;
        }
        let pages = address_and_size_to_span_pages(
            (*mdl).StartVa as usize + (*mdl).ByteOffset as usize,
            (*mdl).ByteCount as usize,
        ) as u64;
        let va = (*mdl).MappedSystemVa as u64 & !0xFFF;
        for i in 0..pages {
            map::unmap_page(va + i * 4096);
        }
        map::release_system_ptes(va, pages);
        (*mdl).MdlFlags &= !MDL_MAPPED_TO_SYSTEM_VA;
        (*mdl).MappedSystemVa = ptr::null_mut();
    }
}

/// `MmGetSystemAddressForMdlSafe`.
///
/// # Safety
/// As [`mm_map_locked_pages`].
pub unsafe fn system_address(mdl: *mut MDL) -> *mut c_void {
    // SAFETY: forwarded caller guarantee.
    unsafe { mm_map_locked_pages(mdl, MM_CACHED) }
}

/// `MmUnmapLockedPages`.
///
/// # Safety
/// `mdl` must be mapped at `base` by `mm_map_locked_pages`.
pub unsafe fn mm_unmap_locked_pages(base: *mut c_void, mdl: *mut MDL) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        if (*mdl).MappedSystemVa == base {
            unmap_if_mapped(mdl);
        }
    }
}
