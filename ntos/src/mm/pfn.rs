//! The PFN database in the kernel (*Windows Internals*, Part 1, ch. 5,
//! "Page frame number database"): the host-tested `::mm::pfn::PfnDatabase`
//! behind the PFN lock, built from the loader's descriptors in phase 0, plus
//! the zero page thread and the kd commands `!pfn` and `!memusage`.

use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use ::mm::pfn::{AllocationPreference, ListCounts, PfnDatabase};
use ::mm::Pfn;
use core::sync::atomic::{AtomicU64, Ordering};
use nt::arc::MemoryType;

/// The PFN database and its lists (`MmPfnDatabase` + `MmPfnLock`).
pub static PFN_DB: SpinLocked<Option<PfnDatabase>, DISPATCH_LEVEL> = SpinLocked::new(None);
/// Pages the zero page thread has zeroed.
pub static PAGES_ZEROED: AtomicU64 = AtomicU64::new(0);

fn with_db<R>(f: impl FnOnce(&mut PfnDatabase) -> R) -> Option<R> {
    PFN_DB.with(|d| d.as_mut().map(f))
}

/// `MiInitializePfnDatabase` (phase 0): one entry per page of RAM (memory-
/// mapped I/O ranges, `LoaderSpecialMemory`, are not in it, as in NT), then
/// the early pool's pages are claimed so the lists never hand them out.
pub fn mm_initialize_pfn_database(lb: &nt::arc::LoaderParameterBlock) -> Result<(), nt::NtStatus> {
    // SAFETY: the loader's descriptor array stays mapped.
    let descs = unsafe { lb.memory_descriptors() };
    let ram: alloc::vec::Vec<_> = descs
        .iter()
        .filter(|d| d.memory_type != MemoryType::SpecialMemory)
        .copied()
        .collect();
    let mut db = PfnDatabase::from_descriptors(&ram).map_err(|e| {
        crate::dbg_println!("ntrs kernel: PFN database: {e}");
        nt::status::STATUS_INSUFFICIENT_RESOURCES
    })?;
    let (base, size) = crate::ex::pool::region();
    let first = base / 4096;
    let n = size / 4096;
    let got = db
        .allocate_pages_for_mdl(first, first + n - 1, n, 0)
        .map_err(|_| nt::status::STATUS_INSUFFICIENT_RESOURCES)?;
    if got.len() as u64 != n {
        return Err(nt::status::STATUS_INSUFFICIENT_RESOURCES);
    }
    PFN_DB.with(|d| *d = Some(db));
    Ok(())
}

/// `MmAllocatePagesForMdl` for one page in `[low, high]` (e.g. below 1 MiB
/// for the processor start-up trampoline). The page is not zeroed.
pub fn mm_allocate_page_in_range(low: Pfn, high: Pfn) -> Option<Pfn> {
    with_db(|db| db.allocate_pages_for_mdl(low, high, 1, 0).ok())
        .flatten()
        .and_then(|v| v.first().map(|p| p.0))
}

/// `MiRemoveZeroPage` for the system: a zero-filled page owned by `owner`
/// (a PTE address or cookie), from the zeroed or free list only; standby
/// pages belong to processes and are repurposed only by the fault path,
/// which can tell their owners.
pub fn mm_allocate_zeroed_page(owner: u64) -> Option<Pfn> {
    let (pfn, dirty) = with_db(|db| {
        db.allocate_pages_for_mdl(0, db.len().saturating_sub(1), 1, owner)
            .ok()
    })
    .flatten()?
    .first()
    .copied()?;
    if dirty {
        zero_page(pfn);
    }
    Some(pfn)
}

/// Any zero-filled page, repurposing standby pages if needed; the report
/// says whose transition PTE must be forgotten (PFN lock not held).
pub fn mm_allocate_zeroed_page_any(owner: u64) -> Option<(Pfn, Option<::mm::pfn::Repurposed>)> {
    let p = with_db(|db| db.allocate_page(owner, AllocationPreference::Zeroed).ok()).flatten()?;
    if p.needs_zeroing {
        zero_page(p.pfn);
    }
    Some((p.pfn, p.repurposed))
}

/// Returns an active page to the free list.
pub fn mm_free_page(pfn: Pfn) -> Result<(), nt::NtStatus> {
    with_db(|db| db.free_page(pfn))
        .ok_or(nt::status::STATUS_UNSUCCESSFUL)?
        .map_err(|_| nt::status::STATUS_INVALID_PARAMETER)
}

fn zero_page(pfn: Pfn) {
    let va = crate::hal::phys_to_virt(pfn * 4096);
    // SAFETY: the page is owned by the caller (just allocated or being zeroed)
    // and reachable through the direct map.
    unsafe { core::ptr::write_bytes(va as *mut u8, 0, 4096) };
}

/// List counts (`!memusage`, `!vm`).
pub fn counts() -> Option<ListCounts> {
    with_db(|db| db.counts())
}

/// `MmZeroPageThread`: at priority 0, takes free pages, zeroes them through
/// the direct map and puts them on the zeroed list; sleeps when none are left.
pub fn zero_page_thread(_: usize) {
    loop {
        let mut batch = 0;
        while batch < 64 {
            let Some(pfn) = with_db(|db| db.take_free_for_zeroing()).flatten() else {
                break;
            };
            zero_page(pfn);
            let _ = with_db(|db| db.insert_zeroed(pfn));
            PAGES_ZEROED.fetch_add(1, Ordering::Relaxed);
            batch += 1;
        }
        if batch == 0 {
            crate::ke::sched::ke_delay_execution_thread(1_000_000); // 100 ms
        } else {
            crate::ke::sched::ke_yield_execution();
        }
    }
}

/// Starts the zero page thread (phase 1).
pub fn start_zero_page_thread() {
    if let Err(s) =
        crate::ke::sched::start_system_thread("ZeroPage", 0, u64::MAX, zero_page_thread, 0)
    {
        crate::ke::bugcheck::ke_bug_check_ex(
            nt::bugcheck::PHASE1_INITIALIZATION_FAILED,
            s.as_u32() as u64,
            0x5A,
            0,
            0,
        );
    }
}

/// `!pfn <pfn>`.
pub fn kd_pfn(arg: Option<&str>) {
    let Some(pfn) = arg.and_then(|a| nt::kd::parse_number(a).ok()) else {
        crate::dbg_println!("usage: !pfn <page frame number (hex)>");
        return;
    };
    match with_db(|db| db.dump(pfn)).flatten() {
        Some(text) => crate::dbg_println!("{text}"),
        None => crate::dbg_println!("{pfn:x} is not a valid PFN"),
    }
}

/// The page-list part of `!memusage` / `!vm`.
pub fn kd_lists() {
    let Some(c) = counts() else { return };
    let (total, active) = with_db(|db| {
        let n = db.len();
        let act = (0..n)
            .filter(|&p| {
                db.entry(p)
                    .is_some_and(|e| e.state == ::mm::pfn::PageState::Active)
            })
            .count() as u64;
        (n, act)
    })
    .unwrap_or((0, 0));
    let kb = |p: u64| p * 4;
    crate::dbg_println!("  Zeroed:   {:>8} ({:>8} kb)", c.zeroed, kb(c.zeroed));
    crate::dbg_println!("  Free:     {:>8} ({:>8} kb)", c.free, kb(c.free));
    crate::dbg_println!("  Standby:  {:>8} ({:>8} kb)", c.standby, kb(c.standby));
    crate::dbg_println!("  Modified: {:>8} ({:>8} kb)", c.modified, kb(c.modified));
    crate::dbg_println!(
        "  ModifiedNoWrite: {:>8} ({:>8} kb)",
        c.modified_no_write,
        kb(c.modified_no_write)
    );
    crate::dbg_println!("  Active/Valid: {:>8} ({:>8} kb)", active, kb(active));
    crate::dbg_println!("  Bad:      {:>8} ({:>8} kb)", c.bad, kb(c.bad));
    crate::dbg_println!(
        "  PFN database entries: {total:x} (highest physical page {:x})",
        total.saturating_sub(1)
    );
}

/// `!vm`: physical memory and kernel memory usage in WinDbg's layout.
pub fn kd_vm() {
    let Some(c) = counts() else { return };
    let total = with_db(|db| {
        (0..db.len())
            .filter(|&p| {
                db.entry(p)
                    .is_some_and(|e| e.state != ::mm::pfn::PageState::NotPresent)
            })
            .count() as u64
    })
    .unwrap_or(0);
    let avail = c.zeroed + c.free + c.standby;
    let kb = |p: u64| p * 4;
    // ntrs's paging file is physical pages reserved at boot (no storage
    // driver yet), so it has no file name or minimum/maximum: only its size
    // and what is free.
    if let Some((size, used)) = super::process::paging_file_usage() {
        crate::dbg_println!("Page File: (physical pages reserved at boot; no file yet)");
        crate::dbg_println!(
            "  Current: {:>10} Kb  Free Space: {:>10} Kb",
            kb(size),
            kb(size.saturating_sub(used))
        );
    }
    crate::dbg_println!();
    crate::dbg_println!(
        "Physical Memory:          {:>10} (   {:>10} Kb)",
        total,
        kb(total)
    );
    crate::dbg_println!(
        "Available Pages:          {:>10} (   {:>10} Kb)",
        avail,
        kb(avail)
    );
    crate::dbg_println!(
        "ResAvail Pages:           {:>10} (   {:>10} Kb)",
        avail,
        kb(avail)
    );
    crate::dbg_println!(
        "Modified Pages:           {:>10} (   {:>10} Kb)",
        c.modified,
        kb(c.modified)
    );
    crate::dbg_println!(
        "Zeroed Pages:             {:>10} (   {:>10} Kb)",
        c.zeroed,
        kb(c.zeroed)
    );
    crate::ex::xpool::kd_vm_lines();
    crate::dbg_println!(
        "System PTEs in use:       {:>10} (   {:>10} Kb)",
        super::map::system_ptes_in_use(),
        kb(super::map::system_ptes_in_use())
    );
    crate::dbg_println!(
        "Threads:                  {:>10}",
        crate::ke::thread::live_threads()
    );
    super::process::kd_stats();
}
