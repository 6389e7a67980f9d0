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
    crate::hal::invlpg(va);
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

/// Clears the PTE of `va` in the current address space and returns the
/// frame it mapped, without flushing other processors (the caller flushes
/// before it reuses the frame).
fn clear_pte(va: u64) -> Option<u64> {
    PT_LOCK.with(|_| {
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
        Some((e & 0x000F_FFFF_FFFF_F000) >> 12)
    })
}

/// Clears the PTE of system address `va` and returns the entry it held
/// (frame and the hardware's accessed/dirty bits), without flushing: the
/// caller flushes every processor before it reuses the frame or trusts the
/// dirty bit (the system cache's view unmap).
pub fn take_system_pte(va: u64) -> Option<u64> {
    PT_LOCK.with(|_| {
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
        Some(e)
    })
}

/// Clears the hardware dirty bit of the valid PTE of system address `va`
/// and says whether it was set (`MiCaptureDirtyBit`-style harvesting for a
/// flush). The caller flushes every processor's TB for `va` before it
/// reads the page, so a later write sets the bit again.
pub fn clear_system_pte_dirty(va: u64) -> bool {
    PT_LOCK.with(|_| {
        let levels = [pxe_address(va), ppe_address(va), pde_address(va)];
        if levels
            .iter()
            .any(|&a| read(a) & PTE_VALID == 0 || (a != levels[0] && read(a) & PTE_LARGE != 0))
        {
            return false;
        }
        let a = pte_address(va);
        let e = read(a);
        if e & PTE_VALID == 0 || e & PTE_DIRTY == 0 {
            return false;
        }
        write(a, e & !PTE_DIRTY);
        true
    })
}

/// Points the debugger's one-page window at `va` (a system PTE the
/// debugger reserved and mapped once, so its page tables exist) to physical
/// page `frame`, read-only and not executable, and flushes this processor's
/// translation of it. Takes no lock, so kd can read memory while a frozen
/// processor holds the PT lock: no other code writes this PTE, and the
/// debugger serializes its own uses (`mm::dbg`). Other processors never
/// touch the window, so no other processor's TB needs a flush; the caller
/// reads through the window with interrupts disabled on this processor.
pub fn set_debugger_window(va: u64, frame: u64) {
    write(pte_address(va), (frame << 12) | PTE_NX | PTE_VALID);
    invlpg(va);
}

/// Unmaps `va` and returns the frame it mapped (`MiDeletePte`): the PTE is
/// cleared, then every processor flushes the translation and acknowledges
/// (`KeFlushSingleTb`) before this returns, so the caller may free the frame.
pub fn unmap_page(va: u64) -> Option<u64> {
    let frame = clear_pte(va)?;
    crate::ke::mp::ke_flush_single_tb(va);
    Some(frame)
}

/// Unmaps `pages` pages from `va` and hands each frame they mapped to
/// `freed`, in chunks of up to `FLUSH_MULTIPLE_MAXIMUM` pages: the chunk's
/// PTEs are cleared, every processor flushes them and acknowledges
/// (`KeFlushMultipleTb`), and only then are its frames handed over. No heap
/// allocation: the executive pool itself frees its pages through here.
fn unmap_range(va: u64, pages: u64, mut freed: impl FnMut(u64)) {
    const CHUNK: usize = crate::ke::mp::FLUSH_MULTIPLE_MAXIMUM;
    let mut done = 0;
    while done < pages {
        let mut vas = [0u64; CHUNK];
        let mut frames = [0u64; CHUNK];
        let mut n = 0;
        let end = (done + CHUNK as u64).min(pages);
        for i in done..end {
            let v = va + i * 4096;
            if let Some(f) = clear_pte(v) {
                vas[n] = v;
                frames[n] = f;
                n += 1;
            }
        }
        if n > 0 {
            crate::ke::mp::ke_flush_multiple_tb(&vas[..n]);
            frames[..n].iter().for_each(|&f| freed(f));
        }
        done = end;
    }
}

/// Unmaps `pages` pages from `va`, then frees their frames (after the flush).
fn unmap_and_free(va: u64, pages: u64) {
    unmap_range(va, pages, |f| {
        let _ = pfn::mm_free_page(f);
    });
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
            unmap_range(va, i, |_| {});
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
    unmap_range(first, pages, |_| {});
    release_system_ptes(first, pages);
}

/// `MmMapIoSpace` for drivers: `CacheType` (MmNonCached 0, MmCached 1,
/// MmWriteCombined 2) is accepted and every mapping is uncached (device
/// registers are what drivers map). Returns NULL on failure.
#[no_mangle]
#[allow(non_snake_case)]
pub extern "system" fn MmMapIoSpace(
    physical_address: u64,
    number_of_bytes: usize,
    _cache_type: u32,
) -> *mut core::ffi::c_void {
    if number_of_bytes == 0
        || physical_address
            .checked_add(number_of_bytes as u64)
            .is_none()
    {
        return core::ptr::null_mut();
    }
    mm_map_io_space(physical_address, number_of_bytes as u64)
        .map_or(core::ptr::null_mut(), |va| va as *mut core::ffi::c_void)
}

/// `MmUnmapIoSpace` for drivers: `base`/`number_of_bytes` as mapped.
#[no_mangle]
#[allow(non_snake_case)]
pub extern "system" fn MmUnmapIoSpace(base: *mut core::ffi::c_void, number_of_bytes: usize) {
    if !base.is_null() && number_of_bytes != 0 {
        mm_unmap_io_space(base as u64, number_of_bytes as u64);
    }
}

/// Maps `pages` fresh zeroed frames read/write, non-executable and global
/// at `va` (reserved system PTEs); on failure nothing stays mapped.
fn map_fresh_pages(va: u64, pages: u64) -> Result<(), NtStatus> {
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
            return Err(e);
        }
    }
    Ok(())
}

/// `MmAllocateMappingAddress` + pages: `pages` fresh zeroed pages mapped
/// read/write, non-executable in system PTEs (pool pages and buffers).
pub fn mm_allocate_system_pages(pages: u64) -> Result<u64, NtStatus> {
    let va = reserve_system_ptes(pages).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    map_fresh_pages(va, pages).inspect_err(|_| release_system_ptes(va, pages))?;
    Ok(va)
}

/// Frees what `mm_allocate_system_pages` mapped.
pub fn mm_free_system_pages(va: u64, pages: u64) {
    unmap_and_free(va, pages);
    release_system_ptes(va, pages);
}

/// `MmCreateKernelStack`: `pages` pages of kernel stack in system PTEs with
/// one unmapped guard page below them (`KERNEL_STACK_GUARD`), so an overflow
/// faults instead of running into the neighbour; returns the stack top
/// (`InitialStack`).
pub fn mm_create_kernel_stack(pages: u64) -> Result<u64, NtStatus> {
    let va = reserve_system_ptes(pages + 1).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    map_fresh_pages(va + 4096, pages).inspect_err(|_| release_system_ptes(va, pages + 1))?;
    Ok(va + (pages + 1) * 4096)
}

/// `MmDeleteKernelStack`: frees a stack `mm_create_kernel_stack` made
/// (`top` is the value it returned).
pub fn mm_delete_kernel_stack(top: u64, pages: u64) {
    let va = top - (pages + 1) * 4096;
    unmap_and_free(va + 4096, pages);
    release_system_ptes(va, pages + 1);
}

/// Sets the protection bits (`flags`: `PTE_WRITE`, `PTE_NX`, `PTE_GLOBAL`,
/// ...) of `pages` mapped system pages from `va`, keeping their frames, then
/// has every processor flush them (`KeFlushMultipleTb`) before returning.
/// Pages not mapped are skipped. Used by the image loader for W^X.
pub fn protect_system_pages(va: u64, pages: u64, flags: u64) {
    const CHUNK: usize = crate::ke::mp::FLUSH_MULTIPLE_MAXIMUM;
    let mut done = 0;
    while done < pages {
        let mut vas = [0u64; CHUNK];
        let mut n = 0;
        let end = (done + CHUNK as u64).min(pages);
        PT_LOCK.with(|_| {
            for i in done..end {
                let v = va + i * 4096;
                let levels = [pxe_address(v), ppe_address(v), pde_address(v)];
                if levels
                    .iter()
                    .enumerate()
                    .any(|(l, &a)| read(a) & PTE_VALID == 0 || (l > 0 && read(a) & PTE_LARGE != 0))
                {
                    continue;
                }
                let a = pte_address(v);
                let e = read(a);
                if e & PTE_VALID == 0 {
                    continue;
                }
                write(a, (e & 0x000F_FFFF_FFFF_F000) | flags | PTE_VALID);
                vas[n] = v;
                n += 1;
            }
        });
        if n > 0 {
            crate::ke::mp::ke_flush_multiple_tb(&vas[..n]);
        }
        done = end;
    }
}

/// Unmaps `pages` system pages from `va` and frees their frames, keeping
/// the system PTEs reserved (the image loader discards `.reloc`-like
/// sections this way; `mm_free_system_pages` later skips the holes).
pub fn mm_free_system_page_frames(va: u64, pages: u64) {
    unmap_and_free(va, pages);
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
/// `ensure_user_tables` first when the PFN lock is held). Returns whether a
/// valid translation was replaced by a different one, which other
/// processors may still cache (the caller flushes them).
pub fn set_user_pte(va: u64, frame: u64, flags: u64) -> Result<bool, NtStatus> {
    ensure_tables(va, true)?;
    let a = pte_address(va);
    let old = read(a);
    let mut new = (frame << 12) | flags | PTE_VALID | PTE_USER;
    // The same frame keeps its dirty bit: it is how a written page of a
    // mapped file is found (the mapped page writer, flushes, unmap).
    if old & PTE_VALID != 0 && (old & 0x000F_FFFF_FFFF_F000) >> 12 == frame {
        new |= old & PTE_DIRTY;
    }
    write(a, new);
    invlpg(va);
    Ok(old & PTE_VALID != 0 && old & !(PTE_ACCESSED | PTE_DIRTY) != new & !PTE_DIRTY)
}

/// Clears the user PTE for `va` in the current address space, if its
/// tables exist. Returns whether a valid translation was removed (other
/// processors may still cache it: the caller flushes them).
pub fn clear_user_pte(va: u64) -> bool {
    let levels = [pxe_address(va), ppe_address(va), pde_address(va)];
    if !levels.iter().all(|&a| read(a) & PTE_VALID != 0) {
        return false;
    }
    let a = pte_address(va);
    let old = read(a);
    write(a, 0);
    invlpg(va);
    old & PTE_VALID != 0
}

/// Every page-table page under a PXE's table (`table` at `level`: 3 for a
/// PDPT, 2 for a page directory, 1 for a page table), the table itself
/// included; data frames are not listed.
fn table_tree(table: u64, level: u32, out: &mut alloc::vec::Vec<u64>) {
    if level > 1 {
        let va = crate::hal::phys_to_virt(table << 12) as *const u64;
        for i in 0..512 {
            // SAFETY: a page-table page reached through the direct map; its
            // entries are plain u64 values.
            let e = unsafe { va.add(i).read_volatile() };
            if e & PTE_VALID != 0 && e & PTE_LARGE == 0 {
                table_tree((e & 0x000F_FFFF_FFFF_F000) >> 12, level - 1, out);
            }
        }
    }
    out.push(table);
}

/// Removes the loader's identity map from the system address space
/// (`MiInitializeBootProcess`-time cleanup): winload maps low memory at
/// VA == PA only for its switch to the kernel's page tables. Afterwards the
/// whole user half of the system PML4 is empty, so kernel NULL and
/// small-pointer dereferences fault and nothing maps a frame executable
/// behind the kernel's back. The loader's table pages stay loader memory.
pub fn mm_remove_boot_identity_map() {
    PT_LOCK.with(|_| {
        for i in 0..256u64 {
            write(pxe_address(i << 39), 0);
        }
    });
    crate::ke::mp::ke_flush_entire_tb();
}

/// Creates every kernel-half PML4 entry of the system address space now
/// (phase 0), as NT does, so the top level never changes afterwards and
/// every process, which copies the kernel half when it is created, sees
/// every later kernel mapping.
pub fn mm_create_kernel_top_level_tables() -> Result<(), NtStatus> {
    PT_LOCK.with(|_| {
        for i in 256..512u64 {
            if i == nt::arc::SELF_MAP_PML4_INDEX as u64 {
                continue;
            }
            let va = 0xFFFF_0000_0000_0000 | (i << 39);
            let a = pxe_address(va);
            if read(a) & PTE_VALID == 0 {
                let p = pfn::mm_allocate_zeroed_page(a).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
                write(a, (p << 12) | PTE_VALID | PTE_WRITE);
                invlpg(ppe_address(va) & !0xFFF);
            }
        }
        Ok(())
    })
}

/// Maps the processor start-up trampoline page at VA == PA (executable,
/// not global) for the application processors' switch to paging
/// (`KeStartAllProcessors`); `mm_unmap_startup_page` removes it again.
pub fn mm_map_startup_page(pa: u64) -> Result<(), NtStatus> {
    map_page(pa, pa >> 12, PTE_WRITE)
}

/// Removes the start-up trampoline's identity mapping and frees the page
/// tables it needed (after every processor flushed); the trampoline frame
/// itself stays with its owner.
pub fn mm_unmap_startup_page(pa: u64) {
    let tables = PT_LOCK.with(|_| {
        let a = pxe_address(pa);
        let e = read(a);
        let mut tables = alloc::vec::Vec::new();
        if e & PTE_VALID != 0 {
            write(a, 0);
            table_tree((e & 0x000F_FFFF_FFFF_F000) >> 12, 3, &mut tables);
        }
        tables
    });
    crate::ke::mp::ke_flush_entire_tb();
    for t in tables {
        let _ = pfn::mm_free_page(t);
    }
}
