//! Boot tests of the memory manager in the kernel.

use crate::mm::pfn;
use core::sync::atomic::Ordering;

type TestResult = Result<(), &'static str>;
type Test = (&'static str, fn() -> TestResult);

fn check(cond: bool, why: &'static str) -> TestResult {
    if cond {
        Ok(())
    } else {
        Err(why)
    }
}

fn t_pfn_database() -> TestResult {
    let ok = pfn::PFN_DB.with(|d| d.as_ref().map(|db| db.verify().is_ok()));
    check(
        ok == Some(true),
        "PFN database invariants broken after boot",
    )?;
    // The early pool and the kernel image are active, never on a list.
    let (base, _) = crate::ex::pool::region();
    let kernel = crate::loader_block();
    // SAFETY: loader arrays stay mapped.
    let kpfn = unsafe { kernel.modules() }[0].physical_base / 4096;
    let states = pfn::PFN_DB.with(|d| {
        d.as_ref().map(|db| {
            (
                db.entry(base / 4096).map(|e| e.state),
                db.entry(kpfn).map(|e| e.state),
            )
        })
    });
    check(
        states
            == Some((
                Some(::mm::pfn::PageState::Active),
                Some(::mm::pfn::PageState::Active),
            )),
        "pool or kernel pages are not active in the PFN database",
    )
}

fn t_allocate_zeroed_pages() -> TestResult {
    let before = pfn::counts().ok_or("no PFN database")?;
    let mut pages = alloc::vec::Vec::new();
    for i in 0..64u64 {
        let p = pfn::mm_allocate_zeroed_page(0xC0DE_0000 + i).ok_or("no page")?;
        let va = crate::hal::phys_to_virt(p * 4096) as *mut u64;
        // SAFETY: the page is ours and mapped through the direct map.
        let zero = unsafe { core::slice::from_raw_parts(va, 512) }
            .iter()
            .all(|&q| q == 0);
        check(zero, "a page from MiRemoveZeroPage was not zero")?;
        // Dirty it so the zero page thread has work after the free.
        // SAFETY: as above.
        unsafe { va.write_volatile(0xDEAD_BEEF) };
        pages.push(p);
    }
    let mut sorted = pages.clone();
    sorted.sort_unstable();
    sorted.dedup();
    check(sorted.len() == 64, "the same page was handed out twice")?;
    for p in pages {
        pfn::mm_free_page(p).map_err(|_| "free failed")?;
    }
    check(
        pfn::mm_free_page(sorted[0]).is_err(),
        "freeing a free page was accepted",
    )?;
    let after = pfn::counts().ok_or("no PFN database")?;
    check(
        after.zeroed + after.free == before.zeroed + before.free,
        "available pages changed after freeing what was allocated",
    )
}

fn t_zero_page_thread() -> TestResult {
    let start = pfn::PAGES_ZEROED.load(Ordering::SeqCst);
    // The zero page thread runs at priority 0 whenever a processor is idle.
    crate::ke::sched::ke_delay_execution_thread(300 * 10_000);
    check(
        pfn::PAGES_ZEROED.load(Ordering::SeqCst) > start,
        "the zero page thread zeroed nothing while the system idled",
    )?;
    let c = pfn::counts().ok_or("no PFN database")?;
    check(c.zeroed > 0, "no zeroed pages")
}

fn t_system_ptes() -> TestResult {
    use crate::ke::probe::KiProbeRead;
    use crate::ke::trap::*;
    use crate::mm::map;
    let before = pfn::counts().ok_or("no PFN database")?;
    let va = map::mm_allocate_system_pages(4).map_err(|_| "allocate system pages")?;
    check(
        (map::SYSTEM_PTE_BASE..map::SYSTEM_PTE_BASE + map::SYSTEM_PTE_PAGES * 4096).contains(&va),
        "pages not in the system PTE range",
    )?;
    // SAFETY: four pages were just mapped read/write at `va`.
    unsafe {
        let p = va as *mut u64;
        check(p.add(1000).read_volatile() == 0, "fresh page not zero")?;
        p.add(1000).write_volatile(0x1234_5678);
    }
    let pa = crate::mm::pte::physical_address(va + 8000).ok_or("no translation")?;
    // SAFETY: the direct map shows the same frame.
    let through_direct = unsafe { (crate::hal::phys_to_virt(pa) as *const u64).read_volatile() };
    check(
        through_direct == 0x1234_5678,
        "system PTE and direct map disagree",
    )?;
    map::mm_free_system_pages(va, 4);
    // The page is gone: reading it faults (absorbed by the probe).
    KI_PROBE_VECTOR.store(u64::MAX, Ordering::SeqCst);
    // SAFETY: the read faults and the probe resumes.
    unsafe { KiProbeRead(va) };
    check(
        KI_PROBE_VECTOR.load(Ordering::SeqCst) == 14,
        "unmapped system PTE still readable",
    )?;
    let after = pfn::counts().ok_or("no PFN database")?;
    // Page-table pages stay; the four data pages came back.
    check(
        after.zeroed + after.free + 8 >= before.zeroed + before.free,
        "freed pages did not return to the lists",
    )?;
    // MmMapIoSpace of the local APIC: the version register reads the same.
    let lapic = crate::hal::apic::base_physical();
    let io = map::mm_map_io_space(lapic, 4096).map_err(|_| "MmMapIoSpace")?;
    // SAFETY: the APIC page is mapped uncached at `io`.
    let ver = unsafe { ((io + 0x30) as *const u32).read_volatile() };
    map::mm_unmap_io_space(io, 4096);
    check(
        ver == crate::hal::apic::version(),
        "APIC version through MmMapIoSpace differs",
    )
}

pub const TESTS: &[Test] = &[
    ("mm.map.system_ptes_and_io_space", t_system_ptes),
    ("mm.pfn.database_consistent", t_pfn_database),
    ("mm.pfn.allocate_zeroed_pages", t_allocate_zeroed_pages),
    ("mm.pfn.zero_page_thread", t_zero_page_thread),
];
