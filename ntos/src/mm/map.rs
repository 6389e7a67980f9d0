//! Page-table writes (*Windows Internals*, Part 1, ch. 5, "Address
//! translation"): mapping and unmapping 4 KiB pages in the current address
//! space through the self-map, with page-table pages from the PFN database,
//! and the system PTE range for dynamic kernel mappings (`MiReserveSystemPtes`).

use super::pfn;
use super::pte::*;
use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use nt::status::*;
use nt::NtStatus;

/// Serializes page-table edits of the system address space.
static PT_LOCK: SpinLocked<(), DISPATCH_LEVEL> = SpinLocked::new(());

/// Start of the system PTE range: PML4 slot 0x1F4 (0xFFFFFA00'00000000), 1 GiB.
pub const SYSTEM_PTE_BASE: u64 = 0xFFFF_FA00_0000_0000;
pub const SYSTEM_PTE_PAGES: u64 = 1 << 18;

fn read(a: u64) -> u64 {
    // SAFETY: callers only read entries whose parent levels are present.
    unsafe { (a as *const u64).read_volatile() }
}

fn write(a: u64, v: u64) {
    // SAFETY: as for `read`; the PT lock serializes writers.
    unsafe { (a as *mut u64).write_volatile(v) }
}

fn invlpg(va: u64) {
    // SAFETY: invalidating a TLB entry has no other effect.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) va, options(nostack)) };
}

/// Makes sure the PXE, PPE and PDE for `va` are present, allocating zeroed
/// page-table pages (`MiMakeSystemAddressValid` for paging structures).
fn ensure_tables(va: u64, user: bool) -> Result<(), NtStatus> {
    ensure_tables_with(va, user, &mut |a| pfn::mm_allocate_zeroed_page(a))
}

/// `ensure_tables` with a caller-chosen page allocator (the fault path
/// allocates under the memory manager's lock so repurposed standby pages can
/// be reported to their owners).
pub fn ensure_tables_with(
    va: u64,
    user: bool,
    alloc: &mut dyn FnMut(u64) -> Option<u64>,
) -> Result<(), NtStatus> {
    let levels = [pxe_address(va), ppe_address(va), pde_address(va)];
    for (i, &a) in levels.iter().enumerate() {
        let e = read(a);
        if e & PTE_VALID != 0 {
            if e & PTE_LARGE != 0 && i > 0 {
                return Err(STATUS_CONFLICTING_ADDRESSES);
            }
            continue;
        }
        let p = alloc(a).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        let mut v = (p << 12) | PTE_VALID | PTE_WRITE;
        if user {
            v |= PTE_USER;
        }
        write(a, v);
        // The new table is visible through the self-map at the next level's address.
        let next = if i + 1 < 3 {
            levels[i + 1]
        } else {
            pte_address(va)
        };
        invlpg(next & !0xFFF);
    }
    Ok(())
}

/// Maps physical page `pfn` at `va` with `flags` (PTE bits besides the frame).
/// STATUS_CONFLICTING_ADDRESSES if something is mapped there already.
pub fn map_page(va: u64, frame: u64, flags: u64) -> Result<(), NtStatus> {
    PT_LOCK.with(|_| {
        ensure_tables(va, flags & PTE_USER != 0)?;
        let a = pte_address(va);
        if read(a) & PTE_VALID != 0 {
            return Err(STATUS_CONFLICTING_ADDRESSES);
        }
        write(a, (frame << 12) | flags | PTE_VALID);
        invlpg(va);
        Ok(())
    })
}

/// Unmaps `va` and returns the frame it mapped (`MiDeletePte`); other
/// processors flush their TLBs (`KeFlushEntireTb`-style shootdown).
pub fn unmap_page(va: u64) -> Option<u64> {
    let frame = PT_LOCK.with(|_| {
        let levels = [pxe_address(va), ppe_address(va), pde_address(va)];
        if levels
            .iter()
            .any(|&a| read(a) & PTE_VALID == 0 || (a != levels[0] && read(a) & PTE_LARGE != 0))
        {
            return None;
        }
        let a = pte_address(va);
        let e = read(a);
        if e & PTE_VALID == 0 {
            return None;
        }
        write(a, 0);
        invlpg(va);
        Some((e & 0x000F_FFFF_FFFF_F000) >> 12)
    })?;
    if crate::ke::processor_count() > 1 {
        crate::ke::mp::ke_flush_entire_tb();
    }
    Some(frame)
}

/// The system PTE range (`MiSystemPteInfo`), over the host-tested allocator.
static SYSTEM_PTES: SpinLocked<Option<::mm::syspte::SystemPtes>, DISPATCH_LEVEL> =
    SpinLocked::new(None);

fn with_system_ptes<R>(f: impl FnOnce(&mut ::mm::syspte::SystemPtes) -> R) -> R {
    SYSTEM_PTES.with(|p| {
        f(
            p.get_or_insert_with(|| {
                ::mm::syspte::SystemPtes::new(SYSTEM_PTE_BASE, SYSTEM_PTE_PAGES)
            }),
        )
    })
}

/// `MiReserveSystemPtes`: `pages` consecutive free system PTEs; returns the VA.
pub fn reserve_system_ptes(pages: u64) -> Option<u64> {
    // Big pool allocations (the kernel heap's large vectors) need long runs.
    if pages == 0 || pages > SYSTEM_PTE_PAGES / 4 {
        return None;
    }
    with_system_ptes(|p| p.reserve(pages, 1))
}

/// `MiReleaseSystemPtes`: releasing what was not reserved, or a run of
/// another size, is SYSTEM_PTE_MISUSE as on NT.
pub fn release_system_ptes(va: u64, pages: u64) {
    if with_system_ptes(|p| p.release(va, pages)).is_err() {
        crate::ke::bugcheck::ke_bug_check_ex(nt::bugcheck::SYSTEM_PTE_MISUSE, 0x100, va, pages, 0);
    }
}

/// `MmMapIoSpace`: maps `size` bytes of physical memory at `pa` uncached
/// into system PTEs; returns the virtual address of `pa`.
pub fn mm_map_io_space(pa: u64, size: u64) -> Result<u64, NtStatus> {
    let first = pa & !0xFFF;
    let pages = (pa + size - first).div_ceil(4096);
    let va = reserve_system_ptes(pages).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    for i in 0..pages {
        if let Err(e) = map_page(
            va + i * 4096,
            (first >> 12) + i,
            PTE_WRITE | PTE_CACHE_DISABLE | PTE_NX | PTE_GLOBAL,
        ) {
            for j in 0..i {
                unmap_page(va + j * 4096);
            }
            release_system_ptes(va, pages);
            return Err(e);
        }
    }
    Ok(va + (pa - first))
}

/// `MmUnmapIoSpace`.
pub fn mm_unmap_io_space(va: u64, size: u64) {
    let first = va & !0xFFF;
    let pages = (va + size - first).div_ceil(4096);
    for i in 0..pages {
        unmap_page(first + i * 4096);
    }
    release_system_ptes(first, pages);
}

/// `MmAllocateMappingAddress` + pages: `pages` fresh zeroed pages mapped
/// read/write, non-executable in system PTEs (for kernel stacks and buffers).
pub fn mm_allocate_system_pages(pages: u64) -> Result<u64, NtStatus> {
    let va = reserve_system_ptes(pages).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    for i in 0..pages {
        let v = va + i * 4096;
        let frame = pfn::mm_allocate_zeroed_page(pte_address(v));
        let r = frame.ok_or(STATUS_INSUFFICIENT_RESOURCES).and_then(|f| {
            map_page(v, f, PTE_WRITE | PTE_NX | PTE_GLOBAL).inspect_err(|_| {
                let _ = pfn::mm_free_page(f);
            })
        });
        if let Err(e) = r {
            unmap_and_free(va, i);
            release_system_ptes(va, pages);
            return Err(e);
        }
    }
    Ok(va)
}

fn unmap_and_free(va: u64, pages: u64) {
    for i in 0..pages {
        if let Some(f) = unmap_page(va + i * 4096) {
            let _ = pfn::mm_free_page(f);
        }
    }
}

/// Frees what `mm_allocate_system_pages` mapped.
pub fn mm_free_system_pages(va: u64, pages: u64) {
    unmap_and_free(va, pages);
    release_system_ptes(va, pages);
}

/// Whether this processor holds a lock that `mm_allocate_system_pages` or
/// `mm_free_system_pages` take (the executive pools then must not grow or
/// shrink: they would wait on themselves). Keep it in step with those paths.
pub fn system_page_locks_owned() -> bool {
    let me = crate::ke::current_processor_number() as u64 + 1;
    [PT_LOCK.raw(), SYSTEM_PTES.raw(), pfn::PFN_DB.raw()]
        .iter()
        .any(|l| l.owner() == me)
}

/// System PTEs reserved now (`!vm`, `!sysptes`).
pub fn system_ptes_in_use() -> u64 {
    with_system_ptes(|p| p.used())
}

/// Makes sure the page tables for user address `va` exist in the current
/// address space. User page tables are guarded by the memory manager's
/// lock (the caller holds it), not by the system PT lock; this may take the
/// PFN lock, so the caller must not hold that.
pub fn ensure_user_tables(
    va: u64,
    alloc: &mut dyn FnMut(u64) -> Option<u64>,
) -> Result<(), NtStatus> {
    ensure_tables_with(va, true, alloc)
}

/// Writes the user PTE for `va` in the current address space, replacing
/// whatever was there (memory manager lock held; tables made by
/// `ensure_user_tables` first when the PFN lock is held).
pub fn set_user_pte(va: u64, frame: u64, flags: u64) -> Result<(), NtStatus> {
    ensure_tables(va, true)?;
    write(
        pte_address(va),
        (frame << 12) | flags | PTE_VALID | PTE_USER,
    );
    invlpg(va);
    Ok(())
}

/// Clears the user PTE for `va` in the current address space, if its tables exist.
pub fn clear_user_pte(va: u64) {
    let levels = [pxe_address(va), ppe_address(va), pde_address(va)];
    if levels.iter().all(|&a| read(a) & PTE_VALID != 0) {
        write(pte_address(va), 0);
        invlpg(va);
    }
}
