//! Boot tests of the memory manager in the kernel.

use crate::ktest::{check, Test, TestResult};
use crate::mm::pfn;
use core::sync::atomic::Ordering;

fn t_pfn_database() -> TestResult {
    let ok = pfn::PFN_DB.with(|d| d.as_ref().map(|db| db.verify().is_ok()));
    check(
        ok == Some(true),
        "PFN database invariants broken after boot",
    )?;
    // The early pool and the kernel image are active, never on a list.
    let (base, _) = crate::ex::pool::region();
    let kernel = crate::rtl::loader_block();
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
    // Other processors (the zero page thread, pool growth) move a few pages
    // meanwhile; a leak of the 64 pages would show far beyond that.
    check(
        after.zeroed + after.free + 16 >= before.zeroed + before.free,
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

use crate::mm::process::*;
use ::mm::{
    MEM_COMMIT, MEM_RELEASE, MEM_RESERVE, PAGE_GUARD, PAGE_READONLY, PAGE_READWRITE, PAGE_WRITECOPY,
};
use nt::status::*;

/// Runs `f` attached to a fresh process, then deletes the process.
fn in_new_process(f: impl FnOnce() -> TestResult) -> TestResult {
    let pid = mm_create_process_address_space().map_err(|_| "create address space")?;
    ke_stack_attach_process(pid).map_err(|_| "attach")?;
    let r = f();
    ke_unstack_detach_process();
    check(
        mm_delete_process_address_space(pid) == STATUS_SUCCESS,
        "delete address space",
    )?;
    r
}

fn probe(write: bool, va: u64) -> (u64, u64) {
    use crate::ke::trap::*;
    KI_PROBE_VECTOR.store(u64::MAX, Ordering::SeqCst);
    KI_PROBE_STATUS.store(0, Ordering::SeqCst);
    // SAFETY: a fault at `va` is absorbed by the probe and reported.
    unsafe {
        if write {
            crate::ke::probe::KiProbeWrite(va)
        } else {
            crate::ke::probe::KiProbeRead(va)
        }
    }
    (
        KI_PROBE_VECTOR.load(Ordering::SeqCst),
        KI_PROBE_STATUS.load(Ordering::SeqCst),
    )
}

const TOUCH_PAGES: u64 = 2000;
const LEFT_AVAILABLE: u64 = 600;

/// Touches more memory than is available: demand-zero faults, working-set
/// trimming, modified pages written to the paging file, and faults that
/// bring them back (soft from standby/modified, hard from the paging file);
/// every page keeps its contents.
fn t_more_than_available() -> TestResult {
    let start_avail = pfn::counts().ok_or("no PFN database")?.available();
    let written0 = PAGES_WRITTEN.load(Ordering::SeqCst);
    let read0 = PAGES_READ.load(Ordering::SeqCst);
    let dz0 = DEMAND_ZERO_FAULTS.load(Ordering::SeqCst);
    let balloon = {
        let avail = pfn::counts().ok_or("no PFN database")?.available();
        let take = avail.saturating_sub(LEFT_AVAILABLE);
        pfn::PFN_DB
            .with(|d| {
                d.as_mut()
                    .map(|db| db.allocate_pages_for_mdl(0, u64::MAX >> 12, take, 0))
            })
            .ok_or("PFN database")?
            .map_err(|_| "balloon")?
    };
    let r = in_new_process(|| {
        let mut base = 0;
        let mut size = TOUCH_PAGES * 4096;
        check(
            nt_allocate_virtual_memory(
                &mut base,
                &mut size,
                MEM_RESERVE | MEM_COMMIT,
                PAGE_READWRITE,
            ) == STATUS_SUCCESS,
            "NtAllocateVirtualMemory",
        )?;
        check(
            base >= 0x10000 && base.is_multiple_of(0x10000),
            "allocation base not 64 KiB aligned",
        )?;
        for i in 0..TOUCH_PAGES {
            // SAFETY: committed read/write memory of the attached process.
            unsafe {
                ((base + i * 4096 + 8 * (i % 500)) as *mut u64).write_volatile(0x5EED_0000_0000 ^ i)
            };
        }
        for i in 0..TOUCH_PAGES {
            // SAFETY: as above.
            let v = unsafe { ((base + i * 4096 + 8 * (i % 500)) as *const u64).read_volatile() };
            if v != 0x5EED_0000_0000 ^ i {
                return Err("a page lost its contents after being paged out");
            }
        }
        let info = nt_query_virtual_memory(base).map_err(|_| "query")?;
        check(
            info.state == MEM_COMMIT && info.region_size == TOUCH_PAGES * 4096,
            "NtQueryVirtualMemory",
        )?;
        let mut fbase = base;
        let mut fsize = 0;
        check(
            nt_free_virtual_memory(&mut fbase, &mut fsize, MEM_RELEASE) == STATUS_SUCCESS,
            "NtFreeVirtualMemory",
        )?;
        Ok(())
    });
    pfn::PFN_DB.with(|d| {
        if let Some(db) = d.as_mut() {
            for (p, _) in &balloon {
                let _ = db.free_page(*p);
            }
        }
    });
    r?;
    check(
        DEMAND_ZERO_FAULTS.load(Ordering::SeqCst) - dz0 >= TOUCH_PAGES,
        "demand-zero faults missing",
    )?;
    check(
        PAGES_WRITTEN.load(Ordering::SeqCst) > written0,
        "no modified page was written to the paging file",
    )?;
    check(
        PAGES_READ.load(Ordering::SeqCst) > read0,
        "no page came back from the paging file",
    )?;
    let end_avail = pfn::counts().ok_or("no PFN database")?.available();
    check(
        end_avail + 64 >= start_avail,
        "pages leaked after the process went away",
    )
}

/// Guard pages raise STATUS_GUARD_PAGE_VIOLATION once; writes to read-only
/// pages and touches of reserved memory raise STATUS_ACCESS_VIOLATION.
fn t_protection_faults() -> TestResult {
    in_new_process(|| {
        let (mut g, mut gs) = (0, 4096);
        check(
            nt_allocate_virtual_memory(
                &mut g,
                &mut gs,
                MEM_RESERVE | MEM_COMMIT,
                PAGE_READWRITE | PAGE_GUARD,
            ) == STATUS_SUCCESS,
            "allocate guard page",
        )?;
        check(
            probe(false, g) == (14, STATUS_GUARD_PAGE_VIOLATION.as_u32() as u64),
            "first touch of a guard page",
        )?;
        check(probe(false, g).0 == u64::MAX, "the guard was not one-shot")?;
        let (mut r, mut rs) = (0, 4096);
        check(
            nt_allocate_virtual_memory(&mut r, &mut rs, MEM_RESERVE | MEM_COMMIT, PAGE_READONLY)
                == STATUS_SUCCESS,
            "allocate read-only page",
        )?;
        check(
            probe(false, r).0 == u64::MAX,
            "reading a read-only page faulted",
        )?;
        check(
            probe(true, r) == (14, STATUS_ACCESS_VIOLATION.as_u32() as u64),
            "write to a read-only page",
        )?;
        let (mut v, mut vs) = (0, 0x10000);
        check(
            nt_allocate_virtual_memory(&mut v, &mut vs, MEM_RESERVE, PAGE_READWRITE)
                == STATUS_SUCCESS,
            "reserve",
        )?;
        check(
            probe(false, v + 0x3000) == (14, STATUS_ACCESS_VIOLATION.as_u32() as u64),
            "touching reserved memory",
        )?;
        // Protect the read-only page read/write: the write then works.
        let (mut pb, mut ps) = (r, 4096);
        check(
            nt_protect_virtual_memory(&mut pb, &mut ps, PAGE_READWRITE) == Ok(PAGE_READONLY),
            "NtProtectVirtualMemory",
        )?;
        check(
            probe(true, r).0 == u64::MAX,
            "write after re-protection faulted",
        )?;
        let (mut fb, mut fs) = (v, 0);
        check(
            nt_free_virtual_memory(&mut fb, &mut fs, MEM_RELEASE) == STATUS_SUCCESS,
            "free",
        )?;
        check(
            probe(false, v).1 == STATUS_ACCESS_VIOLATION.as_u32() as u64,
            "freed memory still readable",
        )
    })
}

/// A pagefile-backed section mapped into two address spaces: shared views
/// see each other's writes; a copy-on-write view gets a private copy on its
/// first write.
fn t_section_copy_on_write() -> TestResult {
    let sec = nt_create_section(4 * 4096, PAGE_READWRITE).map_err(|_| "NtCreateSection")?;
    let a = mm_create_process_address_space().map_err(|_| "create A")?;
    let b = mm_create_process_address_space().map_err(|_| "create B")?;
    let rw = |pid: u32, f: &dyn Fn(u64) -> TestResult, protect: u32| -> TestResult {
        ke_stack_attach_process(pid).map_err(|_| "attach")?;
        let (mut base, mut size) = (0, 0);
        let r = if nt_map_view_of_section(sec, &mut base, &mut size, protect) == STATUS_SUCCESS {
            let r = f(base);
            let _ = nt_unmap_view_of_section(base);
            r
        } else {
            Err("NtMapViewOfSection")
        };
        ke_unstack_detach_process();
        r
    };
    let rd = |va: u64| -> u64 {
        // SAFETY: a mapped view of the attached process.
        unsafe { (va as *const u64).read_volatile() }
    };
    let wr = |va: u64, v: u64| {
        // SAFETY: as above (writable view).
        unsafe { (va as *mut u64).write_volatile(v) }
    };
    let r = (|| {
        rw(
            a,
            &|v| {
                wr(v + 0x1000, 0xAAAA);
                Ok(())
            },
            PAGE_READWRITE,
        )?;
        rw(
            b,
            &|v| {
                check(
                    rd(v + 0x1000) == 0xAAAA,
                    "B does not see A's write through the section",
                )?;
                wr(v + 0x1000, 0xBBBB);
                check(
                    rd(v + 0x1000) == 0xBBBB,
                    "B's copy-on-write page lost its write",
                )
            },
            PAGE_WRITECOPY,
        )?;
        rw(
            a,
            &|v| {
                check(
                    rd(v + 0x1000) == 0xAAAA,
                    "B's private write leaked into the section",
                )
            },
            PAGE_READWRITE,
        )
    })();
    check(
        mm_delete_process_address_space(a) == STATUS_SUCCESS,
        "delete A",
    )?;
    check(
        mm_delete_process_address_space(b) == STATUS_SUCCESS,
        "delete B",
    )?;
    r
}

fn t_pool() -> TestResult {
    use crate::ex::xpool::*;
    use ::mm::pool::{POOL_FLAG_NON_PAGED, POOL_FLAG_PAGED, POOL_FLAG_UNINITIALIZED};
    let tag = u32::from_le_bytes(*b"KtPl");
    let (b0, n0) = nonpaged_usage(tag);
    let mut blocks = alloc::vec::Vec::new();
    for i in 0..200u64 {
        let size = 16 + (i * 37) % 3000;
        let p = ex_allocate_pool2(POOL_FLAG_NON_PAGED, size, tag);
        check(
            p != 0 && p.is_multiple_of(16),
            "ExAllocatePool2 failed or misaligned",
        )?;
        // SAFETY: a fresh block of `size` bytes.
        let zero = unsafe { core::slice::from_raw_parts(p as *const u8, size as usize) }
            .iter()
            .all(|&b| b == 0);
        check(
            zero,
            "ExAllocatePool2 without POOL_FLAG_UNINITIALIZED is not zeroed",
        )?;
        // SAFETY: as above.
        unsafe { core::ptr::write_bytes(p as *mut u8, 0x5A, size as usize) };
        blocks.push(p);
    }
    let big = ex_allocate_pool2(POOL_FLAG_NON_PAGED | POOL_FLAG_UNINITIALIZED, 5 * 4096, tag);
    check(
        big != 0 && big.is_multiple_of(4096),
        "big allocation not page aligned",
    )?;
    let paged = ex_allocate_pool2(POOL_FLAG_PAGED, 100, tag);
    check(paged != 0, "paged pool allocation")?;
    check(
        nonpaged_usage(tag).1 == n0 + 201,
        "per-tag allocation count",
    )?;
    check(
        ex_allocate_pool2(POOL_FLAG_NON_PAGED | POOL_FLAG_PAGED, 16, tag) == 0,
        "two pool types accepted",
    )?;
    for p in blocks {
        ex_free_pool_with_tag(p, tag);
    }
    ex_free_pool_with_tag(big, tag);
    ex_free_pool_with_tag(paged, tag);
    check(
        nonpaged_usage(tag) == (b0, n0),
        "per-tag usage did not return to where it started",
    )
}

/// State shared with the TB-shootdown reader thread.
static TB_VA: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static TB_READING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
static TB_UNMAPPING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
static TB_REUSED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
static TB_STALE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static TB_FAULTED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
static TB_DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

const TB_OLD: u64 = 0xAAAA_AAAA_0000_0001;
const TB_NEW: u64 = 0x5555_5555_0000_0002;

/// One fault-safe read of `va`: `Some(value)`, or `None` if it faulted.
fn tb_probe_read(va: u64) -> Option<u64> {
    use crate::ke::trap::KI_PROBE_VECTOR;
    KI_PROBE_VECTOR.store(u64::MAX, Ordering::SeqCst);
    let v: u64;
    // SAFETY: KiProbeRead reads `va` with the trap dispatcher armed to resume
    // after a fault; it returns the value read in RAX and clobbers only RAX
    // and the flags (win64 ABI: volatile registers may change).
    unsafe {
        core::arch::asm!(
            "call {f}",
            f = sym crate::ke::probe::KiProbeRead,
            in("rcx") va,
            out("rax") v,
            clobber_abi("win64"),
        )
    };
    (KI_PROBE_VECTOR.load(Ordering::SeqCst) == u64::MAX).then_some(v)
}

/// The reader on processor 1: it caches the translation, then keeps
/// reading with interrupts off until the frame was reused or 50 ms passed
/// (so a sender that does not wait for the flush acknowledgement reuses the
/// frame while this processor still holds the stale translation), then
/// with interrupts on until the read faults.
fn tb_reader(_: usize) {
    let va = TB_VA.load(Ordering::SeqCst);
    let tsc_ms = crate::rtl::loader_block().tsc_frequency.max(1_000_000) / 1000;
    let flags = crate::hal::disable_interrupts();
    let look = |v: Option<u64>| match v {
        Some(TB_NEW) => {
            TB_STALE.fetch_add(1, Ordering::SeqCst);
            true
        }
        Some(_) => true,
        None => {
            TB_FAULTED.store(true, Ordering::SeqCst);
            false
        }
    };
    look(tb_probe_read(va));
    TB_READING.store(true, Ordering::SeqCst);
    while !TB_UNMAPPING.load(Ordering::SeqCst) {
        look(tb_probe_read(va));
    }
    let t0 = crate::hal::rdtsc();
    let mut live = true;
    while live && !TB_REUSED.load(Ordering::SeqCst) && crate::hal::rdtsc() - t0 < 50 * tsc_ms {
        live = look(tb_probe_read(va));
    }
    if live {
        live = look(tb_probe_read(va));
    }
    crate::hal::restore_interrupts(flags);
    let t1 = crate::hal::rdtsc();
    while live && crate::hal::rdtsc() - t1 < 1000 * tsc_ms {
        live = look(tb_probe_read(va));
    }
    TB_DONE.store(true, Ordering::SeqCst);
}

/// TB shootdown (`KeFlushSingleTb`): processor 0 unmaps a pool page that
/// processor 1 keeps reading, then reuses the frame; processor 1 must fault
/// afterwards and never read the reused frame's new contents.
fn t_tb_shootdown() -> TestResult {
    use crate::mm::map;
    let va = map::mm_allocate_system_pages(1).map_err(|_| "allocate a system page")?;
    // SAFETY: the page was just mapped read/write at `va`.
    unsafe { (va as *mut u64).write_volatile(TB_OLD) };
    for f in [
        &TB_READING,
        &TB_UNMAPPING,
        &TB_REUSED,
        &TB_FAULTED,
        &TB_DONE,
    ] {
        f.store(false, Ordering::SeqCst);
    }
    TB_STALE.store(0, Ordering::SeqCst);
    TB_VA.store(va, Ordering::SeqCst);
    let two = crate::ke::processor_count() >= 2;
    if two {
        crate::ke::sched::start_system_thread("TbReader", 9, 1 << 1, tb_reader, 0)
            .map_err(|_| "cannot start the reader thread")?;
        check(
            crate::ktest::wait_until(2000, || TB_READING.load(Ordering::SeqCst)),
            "the reader on processor 1 did not start",
        )?;
    }
    TB_UNMAPPING.store(true, Ordering::SeqCst);
    let frame = map::unmap_page(va).ok_or("the page was not mapped")?;
    // Reuse the frame at once: new contents through the direct map.
    // SAFETY: the frame is ours (unmapped above, not yet freed).
    unsafe { (crate::hal::phys_to_virt(frame << 12) as *mut u64).write_volatile(TB_NEW) };
    TB_REUSED.store(true, Ordering::SeqCst);
    if two {
        check(
            crate::ktest::wait_until(3000, || TB_DONE.load(Ordering::SeqCst)),
            "the reader on processor 1 did not finish",
        )?;
    }
    // Probes share one resume slot: processor 0 probes only after the reader is done.
    let local_fault = tb_probe_read(va).is_none();
    pfn::mm_free_page(frame).map_err(|_| "free the frame")?;
    map::release_system_ptes(va, 1);
    check(local_fault, "processor 0 still reads the unmapped page")?;
    check(
        TB_STALE.load(Ordering::SeqCst) == 0,
        "another processor read the reused frame through a stale translation",
    )?;
    check(
        !two || TB_FAULTED.load(Ordering::SeqCst),
        "the reader never faulted on the unmapped page",
    )
}

/// Kernel mappings made after a process was created are visible in it:
/// every kernel PML4 entry exists from boot on and all address spaces share them.
fn t_kernel_top_level_shared() -> TestResult {
    use crate::mm::map;
    use crate::mm::pte::{PTE_NX, PTE_WRITE};
    let pid = mm_create_process_address_space().map_err(|_| "create address space")?;
    // A PML4 slot nothing else uses (0x1F6), mapped only now.
    let va = 0xFFFF_FB00_0000_0000u64 + 0x1234_5000;
    let frame = pfn::mm_allocate_zeroed_page(0).ok_or("no page")?;
    // SAFETY: the frame is ours; written through the direct map.
    unsafe { (crate::hal::phys_to_virt(frame << 12) as *mut u64).write_volatile(0x600D_F00D) };
    map::map_page(va, frame, PTE_WRITE | PTE_NX).map_err(|_| "map the page")?;
    let r = (|| {
        ke_stack_attach_process(pid).map_err(|_| "attach")?;
        let v = tb_probe_read(va);
        ke_unstack_detach_process();
        check(
            v == Some(0x600D_F00D),
            "a kernel mapping made after the process was created is missing in it",
        )
    })();
    let f = map::unmap_page(va);
    if let Some(f) = f {
        let _ = pfn::mm_free_page(f);
    }
    check(
        mm_delete_process_address_space(pid) == STATUS_SUCCESS,
        "delete address space",
    )?;
    r
}

/// The loader's identity map is gone: nothing is mapped at 0 (or anywhere
/// in the low 4 GiB) in the system address space, and the first 64 KiB of
/// a process stay unmapped.
fn t_no_identity_map() -> TestResult {
    for va in [0u64, 0x1000, 0x9_F000, 0x10_0000, 0x4000_0000, 0xFFFF_F000] {
        check(
            crate::mm::pte::physical_address(va).is_none(),
            "a low address is still mapped in the system address space",
        )?;
        check(
            tb_probe_read(va).is_none(),
            "a read of a low address did not fault",
        )?;
    }
    let sys = crate::rtl::loader_block().pml4_physical;
    let pml4 = crate::hal::phys_to_virt(sys) as *const u64;
    // SAFETY: the system PML4 through the direct map.
    let user_half = (0..256).all(|i| unsafe { pml4.add(i).read_volatile() } == 0);
    check(user_half, "the system PML4's user half is not empty")?;
    let mut base = 0u64;
    let mut size = 0x1000u64;
    let pid = mm_create_process_address_space().map_err(|_| "create address space")?;
    ke_stack_attach_process(pid).map_err(|_| "attach")?;
    let mut b = 0x1000u64;
    let low =
        nt_allocate_virtual_memory(&mut b, &mut size, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    size = 0x1000;
    let any = nt_allocate_virtual_memory(
        &mut base,
        &mut size,
        MEM_COMMIT | MEM_RESERVE,
        PAGE_READWRITE,
    );
    ke_unstack_detach_process();
    let _ = mm_delete_process_address_space(pid);
    check(
        low != STATUS_SUCCESS,
        "memory was allocated inside the first 64 KiB",
    )?;
    check(
        any == STATUS_SUCCESS && base >= 0x1_0000,
        "an allocation anywhere landed below 64 KiB",
    )
}

/// The kernel heap is the executive pool: `Box`/`Vec` blocks are pool
/// blocks charged to the allocation scope's tag (thread scope below
/// DISPATCH_LEVEL, processor scope at DISPATCH_LEVEL, paged scopes from the
/// paged pool), and a big block's pages go back to the memory manager when
/// it is freed.
fn t_heap_is_pool() -> TestResult {
    use crate::ex::pool::PoolTag;
    use crate::ex::xpool::{pool_stats, tag_usage};
    use ::mm::pool::PoolType::{NonPaged, Paged};
    let t = |s: &[u8; 4]| u32::from_le_bytes(*s);
    let b = {
        let _tag = PoolTag::enter(*b"KtSc");
        alloc::boxed::Box::new([7u8; 100])
    };
    let addr = &*b as *const _ as u64;
    let base = crate::mm::map::SYSTEM_PTE_BASE;
    check(
        (base..base + crate::mm::map::SYSTEM_PTE_PAGES * 4096).contains(&addr),
        "a Box is not a pool block in system PTEs",
    )?;
    let u = tag_usage(NonPaged, t(b"KtSc"));
    // 100 bytes + header = 8 units, or 9 when the block absorbed a
    // remainder too small to stay free.
    check(
        u.outstanding() == 1 && (128..=144).contains(&u.bytes),
        "the thread scope's tag was not charged 1 block of 128 bytes",
    )?;
    drop(b);
    check(
        tag_usage(NonPaged, t(b"KtSc")).bytes == 0,
        "freeing the Box did not uncharge its tag",
    )?;
    // A processor scope at DISPATCH_LEVEL wins over the thread's.
    let old = crate::ke::irql::ke_raise_irql(crate::ke::DISPATCH_LEVEL);
    let (v, w) = {
        let _outer = PoolTag::enter(*b"KtTh");
        let v: alloc::vec::Vec<u8> = alloc::vec![1; 300];
        let _inner = PoolTag::enter(*b"KtDp");
        (v, alloc::vec![2u8; 300])
    };
    crate::ke::irql::ke_lower_irql(old);
    check(
        tag_usage(NonPaged, t(b"KtTh")).outstanding() == 1
            && tag_usage(NonPaged, t(b"KtDp")).outstanding() == 1,
        "scopes at DISPATCH_LEVEL were not charged",
    )?;
    drop((v, w));
    // A paged scope allocates from the paged pool.
    let p = {
        let _tag = PoolTag::enter_paged(*b"KtPg");
        alloc::vec![3u8; 1000]
    };
    check(
        tag_usage(Paged, t(b"KtPg")).outstanding() == 1
            && tag_usage(NonPaged, t(b"KtPg")).outstanding() == 0,
        "a paged scope did not use the paged pool",
    )?;
    drop(p);
    // Kernel components are charged under their own tags.
    for (tag, why) in [
        (b"Thre", "no thread memory under Thre"),
        (b"ObjT", "no object types under ObjT"),
        (b"Obj ", "no object manager memory under Obj "),
        (b"Obtb", "no handle table memory under Obtb"),
    ] {
        check(tag_usage(NonPaged, t(tag)).bytes > 0, why)?;
    }
    check(
        tag_usage(NonPaged, t(b"CMhv")).bytes + tag_usage(Paged, t(b"CMhv")).bytes > 0,
        "no registry memory under CMhv",
    )?;
    // A big block (256 pages) is really freed: its pages leave the pool.
    let before = pool_stats(NonPaged);
    let big = alloc::vec![0u8; 1 << 20];
    let during = pool_stats(NonPaged);
    drop(big);
    let after = pool_stats(NonPaged);
    check(
        during.big_pages >= before.big_pages + 256,
        "a 1 MiB Vec is not a big pool allocation",
    )?;
    check(
        after.pages + 256 <= during.pages,
        "freeing a 1 MiB Vec did not return its pages",
    )
}

/// Messages of the exhaustion test's thread (index + 2 in `EXHAUST`).
const EXHAUST_FAILURES: [&str; 5] = [
    "NtCreateEvent did not return STATUS_INSUFFICIENT_RESOURCES with the nonpaged pool exhausted",
    "NtCreateEvent failed after the pool blocks were freed",
    "the exhausting blocks were not all freed",
    "the pool did not run out within the lowered maximum",
    "ExAllocatePool2 succeeded again while the pool was exhausted",
];
static EXHAUST: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Exhausts the nonpaged pool (its maximum lowered to 64 pages above what it
/// holds) with `ExAllocatePool2`, then calls `NtCreateEvent`, which must
/// fail with STATUS_INSUFFICIENT_RESOURCES while the rest of the kernel
/// keeps running; then frees the blocks, and the service works again.
/// Runs on one processor, whose lookaside lists the fill drains.
fn t_pool_exhaustion() -> TestResult {
    EXHAUST.store(0, Ordering::SeqCst);
    let me = crate::ke::current_processor_number();
    crate::ke::sched::start_system_thread(
        "PoolExhaust",
        16,
        1 << me,
        |_| {
            let r = exhaust_nonpaged_pool();
            EXHAUST.store(r.map_or_else(|i| i + 2, |_| 1), Ordering::SeqCst);
        },
        0,
    )
    .map_err(|_| "cannot start the exhaustion thread")?;
    check(
        crate::ktest::wait_until(60_000, || EXHAUST.load(Ordering::SeqCst) != 0),
        "the exhaustion thread did not finish",
    )?;
    match EXHAUST.load(Ordering::SeqCst) {
        1 => Ok(()),
        i => Err(EXHAUST_FAILURES[i - 2]),
    }
}

fn exhaust_nonpaged_pool() -> Result<(), usize> {
    use crate::ex::event::{nt_create_event, EventType, EVENT_ALL_ACCESS};
    use crate::ex::xpool::*;
    use crate::ob::object::Mode;
    use ::mm::pool::{PoolType::NonPaged, POOL_FLAG_NON_PAGED, POOL_FLAG_UNINITIALIZED};
    let tag = u32::from_le_bytes(*b"KtEx");
    let create = || {
        nt_create_event(
            EVENT_ALL_ACCESS,
            None,
            0,
            EventType::NotificationEvent,
            false,
            Mode::KernelMode,
        )
    };
    // Room for every block, reserved before the pool is lowered.
    let mut blocks: alloc::vec::Vec<u64> = alloc::vec::Vec::with_capacity(64 * 256 + 1024);
    flush_current_lookasides();
    let old_max = ex_set_pool_maximum(NonPaged, pool_stats(NonPaged).pages + 64);
    let mut refused = false;
    // Whole pages first, then every lookaside size down to the smallest
    // block, each until the pool refuses: nothing is left that fits.
    let fill = |blocks: &mut alloc::vec::Vec<u64>| {
        for bytes in [4 * 4096, 4096]
            .into_iter()
            .chain((2..=32u64).rev().map(|u| (u - 1) * 16))
        {
            while blocks.len() < blocks.capacity() {
                let p =
                    ex_allocate_pool2(POOL_FLAG_NON_PAGED | POOL_FLAG_UNINITIALIZED, bytes, tag);
                if p == 0 {
                    break;
                }
                blocks.push(p);
            }
        }
        blocks.len() < blocks.capacity()
    };
    // Another processor may free a block of the service's size meanwhile:
    // fill again and retry a few times.
    let mut status: Result<(), usize> = Ok(());
    for _ in 0..4 {
        if !fill(&mut blocks) {
            status = Err(3);
            break;
        }
        if ex_allocate_pool2(POOL_FLAG_NON_PAGED, 16, tag) != 0 {
            status = Err(4);
            break;
        }
        match create() {
            Err(STATUS_INSUFFICIENT_RESOURCES) => {
                refused = true;
                break;
            }
            Ok((h, _)) => {
                crate::ob::handle::nt_close(h);
            }
            Err(_) => break,
        }
    }
    for p in blocks.drain(..) {
        ex_free_pool_with_tag(p, tag);
    }
    ex_set_pool_maximum(NonPaged, old_max);
    status?;
    if !refused {
        return Err(0);
    }
    match create() {
        Ok((h, _)) => {
            crate::ob::handle::nt_close(h);
        }
        Err(_) => return Err(1),
    }
    if nonpaged_usage(tag) != (0, 0) {
        return Err(2);
    }
    Ok(())
}

pub const TESTS: &[Test] = &[
    ("mm.tb.shootdown_before_frame_reuse", t_tb_shootdown),
    ("mm.map.kernel_top_level_shared", t_kernel_top_level_shared),
    ("mm.map.no_identity_map", t_no_identity_map),
    ("mm.pool.tags_zeroing_big_pages", t_pool),
    ("mm.pool.kernel_heap_is_the_pool", t_heap_is_pool),
    (
        "mm.pool.exhaustion_fails_services_then_recovers",
        t_pool_exhaustion,
    ),
    ("mm.vm.touch_more_than_available", t_more_than_available),
    (
        "mm.vm.guard_readonly_and_reserved_faults",
        t_protection_faults,
    ),
    (
        "mm.section.copy_on_write_between_processes",
        t_section_copy_on_write,
    ),
    ("mm.map.system_ptes_and_io_space", t_system_ptes),
    ("mm.pfn.database_consistent", t_pfn_database),
    ("mm.pfn.allocate_zeroed_pages", t_allocate_zeroed_pages),
    ("mm.pfn.zero_page_thread", t_zero_page_thread),
];

/// Crash test `NULLREAD`: a kernel read of address 0 on a system thread
/// (no user address space) stops with PAGE_FAULT_IN_NONPAGED_AREA.
pub fn crash_null_read() {
    let p = core::hint::black_box(0usize) as *const u64;
    // SAFETY: not safe at all: the read of address 0 must fault and stop
    // the system; nothing is mapped there since the identity map is gone.
    let v = unsafe { p.read_volatile() };
    crate::dbg_println!("crash test: read {v:#x} at address 0");
}

/// The user address `USERFAULTATDISPATCH` writes.
pub const DISPATCH_FAULT_VA: u64 = 0x20_0000;

/// Crash test `USERFAULTATDISPATCH`: a write to committed but untouched
/// user memory (a demand-zero fault the memory manager would resolve at
/// PASSIVE_LEVEL) at DISPATCH_LEVEL stops with IRQL_NOT_LESS_OR_EQUAL.
pub fn crash_user_fault_at_dispatch() {
    let Ok(pid) = mm_create_process_address_space() else {
        return;
    };
    if ke_stack_attach_process(pid).is_err() {
        return;
    }
    let mut base = DISPATCH_FAULT_VA;
    let mut size = 0x1000u64;
    if nt_allocate_virtual_memory(
        &mut base,
        &mut size,
        MEM_COMMIT | MEM_RESERVE,
        PAGE_READWRITE,
    ) != STATUS_SUCCESS
        || base != DISPATCH_FAULT_VA
    {
        return;
    }
    let _old = crate::ke::irql::ke_raise_irql(crate::ke::DISPATCH_LEVEL);
    // SAFETY: the page is committed user memory of the attached process;
    // the write faults at DISPATCH_LEVEL, which must stop the system.
    unsafe { (base as *mut u64).write_volatile(1) };
}

#[inline(never)]
fn overflow(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 64]);
    if depth < u64::MAX {
        overflow(depth + 1).wrapping_add(frame[7])
    } else {
        frame[0]
    }
}

/// Crash test `STACKOVERFLOW`: a thread recurses without bound; its stack's
/// guard page makes the overflow a double fault (UNEXPECTED_KERNEL_MODE_TRAP
/// with EXCEPTION_DOUBLE_FAULT) instead of silent corruption.
pub fn crash_stack_overflow() {
    let started = crate::ke::sched::start_system_thread(
        "Overflow",
        9,
        1,
        |_| {
            core::hint::black_box(overflow(0));
        },
        0,
    );
    if started.is_err() {
        return;
    }
    crate::ktest::sleep_ms(2000);
}
