//! Process address spaces in the kernel (*Windows Internals*, Part 1, ch. 5,
//! "Virtual address space layouts", "Page fault handling", "Working sets"):
//! each has its own PML4 (kernel half shared, self-map pointing at itself),
//! a host-tested `::mm::vm::AddressSpace` (VADs, commit, page states) and a
//! working set. Page faults on user addresses are resolved by the host-tested
//! `::mm::fault::mm_access_fault`; this module is its hardware side
//! (`FaultHost`): zeroing and copying frames through the direct map, the
//! paging file, and PTE writes through the self-map.
//!
//! ntrs deviation: until a storage driver exists the paging file is a set of
//! physical pages reserved at boot (so "paging" moves dirty pages into it and
//! back; the trimming, modified writing and soft/hard fault paths are the
//! real ones).

use super::pfn::PFN_DB;
use super::pte::*;
use crate::ke::irql::SpinLocked;
use crate::ke::{sched, thread, DISPATCH_LEVEL};
use ::mm::fault::{FaultHost, FaultingProcess, MmGlobals};
use ::mm::pagefile::PagingFile;
use ::mm::section::SectionTable;
use ::mm::vm::{AccessKind, AddressSpace, CommitCharge, HardwarePte, MemoryBasicInformation};
use ::mm::ws::WorkingSet;
use ::mm::{Pfn, Vpn};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use nt::status::*;
use nt::NtStatus;

/// Pages reserved as the paging file (16 MiB).
pub const PAGING_FILE_PAGES: u64 = 4096;

/// One process's memory state (`EPROCESS.Vm`, `VadRoot`, `DirectoryTableBase`).
pub struct MmProcess {
    pub id: u32,
    /// Physical address of the PML4 (`DirectoryTableBase`).
    pub cr3: u64,
    pub space: AddressSpace,
    pub ws: WorkingSet,
}

pub struct MmState {
    processes: Vec<MmProcess>,
    sections: SectionTable,
    paging_file: PagingFile,
    /// Backing frames of the paging file, one per slot.
    paging_frames: Vec<Pfn>,
    next_id: u32,
}

/// The memory manager's process list, sections and paging file (its lock
/// comes before the PFN lock).
static MM: SpinLocked<Option<MmState>, DISPATCH_LEVEL> = SpinLocked::new(None);
/// `MmTotalCommitLimit` / `MmTotalCommittedPages`.
pub static COMMIT: CommitCharge = CommitCharge::new(0);

/// Fault counters (`!vm`, tests, benchmarks).
pub static DEMAND_ZERO_FAULTS: AtomicU64 = AtomicU64::new(0);
pub static PAGE_FAULTS: AtomicU64 = AtomicU64::new(0);
pub static PAGES_WRITTEN: AtomicU64 = AtomicU64::new(0);
pub static PAGES_READ: AtomicU64 = AtomicU64::new(0);
pub static PAGES_TRIMMED: AtomicU64 = AtomicU64::new(0);

fn system_cr3() -> u64 {
    crate::rtl::loader_block().pml4_physical
}

/// `MmInitSystem` (process part): reserves the paging file's frames and
/// sets the commit limit to available memory plus the paging file.
pub fn initialize() -> Result<(), NtStatus> {
    let frames = PFN_DB
        .with(|d| {
            d.as_mut()
                // Above 16 MiB: low memory stays for the processor start-up
                // trampoline and anything else that needs it.
                .map(|db| db.allocate_pages_for_mdl(0x1000, u64::MAX >> 12, PAGING_FILE_PAGES, 0))
        })
        .ok_or(STATUS_INSUFFICIENT_RESOURCES)?
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    let available = super::pfn::counts().map_or(0, |c| c.available());
    COMMIT.set_limit(available + frames.len() as u64);
    MM.with(|m| {
        *m = Some(MmState {
            processes: Vec::new(),
            sections: SectionTable::new(),
            paging_file: PagingFile::new(frames.len() as u64),
            paging_frames: frames.iter().map(|f| f.0).collect(),
            next_id: 8,
        })
    });
    Ok(())
}

fn with_mm<R>(f: impl FnOnce(&mut MmState) -> R) -> Result<R, NtStatus> {
    let _tag = crate::ex::pool::PoolTag::enter(*b"Mm  ");
    MM.with(|m| m.as_mut().map(f)).ok_or(STATUS_UNSUCCESSFUL)
}

/// `MmCreateProcessAddressSpace`: a PML4 with the kernel half of the system's,
/// its own self-map entry, and an empty user half. Returns the process id.
pub fn mm_create_process_address_space() -> Result<u32, NtStatus> {
    let pml4 = super::pfn::mm_allocate_zeroed_page(0).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    let new = crate::hal::phys_to_virt(pml4 << 12) as *mut u64;
    let sys = crate::hal::phys_to_virt(system_cr3()) as *const u64;
    // SAFETY: both PML4 pages are reached through the direct map; the new one is ours.
    unsafe {
        for i in 256..512 {
            new.add(i).write(sys.add(i).read());
        }
        new.add(nt::arc::SELF_MAP_PML4_INDEX)
            .write((pml4 << 12) | PTE_VALID | PTE_WRITE | PTE_NX);
    }
    with_mm(|st| {
        let id = st.next_id;
        st.next_id += 4;
        st.processes.push(MmProcess {
            id,
            cr3: pml4 << 12,
            space: AddressSpace::new(),
            ws: WorkingSet::new(32, 1 << 20),
        });
        id
    })
}

/// The physical address of address space `pid`'s PML4 (`DirectoryTableBase`).
pub fn directory_table_base(pid: u32) -> Option<u64> {
    with_mm(|st| st.processes.iter().find(|p| p.id == pid).map(|p| p.cr3))
        .ok()
        .flatten()
}

/// The process the current thread is attached to (0 = none: system space).
pub fn current_process() -> u32 {
    sched::current_thread().attached_process()
}

/// `KeStackAttachProcess`: the current thread runs in `pid`'s address space
/// until `ke_unstack_detach_process`.
pub fn ke_stack_attach_process(pid: u32) -> Result<(), NtStatus> {
    let cr3 = with_mm(|st| st.processes.iter().find(|p| p.id == pid).map(|p| p.cr3))?
        .ok_or(STATUS_INVALID_PARAMETER)?;
    let t = sched::current_thread();
    let f = crate::hal::disable_interrupts();
    t.set_address_space(pid, cr3);
    thread::load_cr3(cr3);
    crate::hal::restore_interrupts(f);
    Ok(())
}

/// `KeUnstackDetachProcess`.
pub fn ke_unstack_detach_process() {
    let t = sched::current_thread();
    let f = crate::hal::disable_interrupts();
    t.set_address_space(0, 0);
    thread::load_cr3(system_cr3());
    crate::hal::restore_interrupts(f);
}

/// The hardware side of the fault handler, for the current address space.
struct Host {
    others: *mut MmProcess,
    count: usize,
    current: usize,
    paging_frames: *const Pfn,
    paging_count: usize,
}

impl Host {
    fn other(&mut self, pid: u32) -> Option<&mut MmProcess> {
        (0..self.count)
            .filter(|&i| i != self.current)
            // SAFETY: `others` points at the process list, which the MM lock
            // keeps alive; the faulting process (index `current`) is excluded.
            .map(|i| unsafe { &mut *self.others.add(i) })
            .find(|p| p.id == pid)
    }
    fn frame(&self, slot: u64) -> Option<Pfn> {
        // SAFETY: `paging_frames` has `paging_count` entries (MM lock held).
        (slot < self.paging_count as u64).then(|| unsafe { *self.paging_frames.add(slot as usize) })
    }
}

fn page_va(pfn: Pfn) -> *mut u8 {
    crate::hal::phys_to_virt(pfn << 12) as *mut u8
}

impl FaultHost for Host {
    fn zero_page(&mut self, pfn: Pfn) {
        // SAFETY: a frame the PFN database just gave the fault handler.
        unsafe { core::ptr::write_bytes(page_va(pfn), 0, 4096) };
    }
    fn copy_page(&mut self, dst: Pfn, src: Pfn) {
        // SAFETY: distinct frames reached through the direct map.
        unsafe { core::ptr::copy_nonoverlapping(page_va(src), page_va(dst), 4096) };
    }
    fn read_paging_file(&mut self, slot: u64, pfn: Pfn) -> Result<(), NtStatus> {
        let f = self.frame(slot).ok_or(STATUS_IN_PAGE_ERROR)?;
        self.copy_page(pfn, f);
        PAGES_READ.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn write_paging_file(&mut self, slot: u64, pfn: Pfn) -> Result<(), NtStatus> {
        let f = self.frame(slot).ok_or(STATUS_IN_PAGE_ERROR)?;
        self.copy_page(f, pfn);
        PAGES_WRITTEN.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn foreign_repurposed(&mut self, process: u32, vpn: Vpn) {
        if let Some(p) = self.other(process) {
            p.space.page_repurposed(vpn);
        }
    }
    fn foreign_page_written(
        &mut self,
        process: u32,
        vpn: Vpn,
        pfn: Pfn,
        slot: u64,
    ) -> Result<(), NtStatus> {
        self.other(process)
            .ok_or(STATUS_INVALID_PARAMETER)?
            .space
            .page_written(vpn, pfn, slot)
    }
    fn file_page(&mut self, control_area: u32, page: u64) -> Option<Pfn> {
        super::file::resident_frame(control_area, page)
    }
    fn set_pte(&mut self, vpn: Vpn, pte: Option<HardwarePte>) {
        if pte.is_none() {
            PAGES_TRIMMED.fetch_add(1, Ordering::Relaxed);
        }
        // A trimmed or replaced translation is flushed everywhere before
        // the fault handler can hand its frame to anyone else.
        if write_user_pte(vpn, pte) {
            crate::ke::mp::ke_flush_single_tb(vpn << 12);
        }
    }
}

/// `MmAccessFault` for a user address of the current process. Returns the
/// exception status when the access is not allowed.
pub fn mm_access_fault(va: u64, write: bool, execute: bool) -> Result<(), NtStatus> {
    let pid = current_process();
    if pid == 0 {
        return Err(STATUS_ACCESS_VIOLATION);
    }
    PAGE_FAULTS.fetch_add(1, Ordering::Relaxed);
    // A page of a file view not mapped yet: make the control area's page
    // resident first (a paging read, with no lock held), as NT's fault
    // handler drops its locks around `IoPageRead`.
    if let Some((ca, page)) = file_view_page(pid, va >> 12)? {
        super::file::page_in(ca, page)?;
    }
    let kind = if execute {
        AccessKind::Execute
    } else if write {
        AccessKind::Write
    } else {
        AccessKind::Read
    };
    MM.with(|m| {
        let st = m.as_mut().ok_or(STATUS_UNSUCCESSFUL)?;
        let idx = st
            .processes
            .iter()
            .position(|p| p.id == pid)
            .ok_or(STATUS_ACCESS_VIOLATION)?;
        {
            // Page tables first (they may repurpose a standby page: its owner is told).
            let procs = &mut st.processes;
            let mut alloc = |owner: u64| {
                let (pfn, rep) = super::pfn::mm_allocate_zeroed_page_any(owner)?;
                if let Some(r) = rep {
                    if let Some((pid, vpn)) = ::mm::fault::decode_owner(r.pte_address) {
                        if let Some(p) = procs.iter_mut().find(|p| p.id & 0x7F_FFFF == pid) {
                            p.space.page_repurposed(vpn);
                        }
                    }
                }
                Some(pfn)
            };
            super::map::ensure_user_tables(va & !0xFFF, &mut alloc)?;
        }
        let mut host = Host {
            others: st.processes.as_mut_ptr(),
            count: st.processes.len(),
            current: idx,
            paging_frames: st.paging_frames.as_ptr(),
            paging_count: st.paging_frames.len(),
        };
        let proc_ptr = host.others;
        // SAFETY: element `idx` is borrowed alone here; the host only touches
        // the other elements (see `Host::other`).
        let p = unsafe { &mut *proc_ptr.add(idx) };

        let before = DEMAND_ZERO_FAULTS.load(Ordering::Relaxed);
        // A page without a frame yet is a demand-zero fault (if it succeeds).
        let zero_fault = p.space.frame(va >> 12).is_none();
        let r = PFN_DB.with(|d| {
            let db = d.as_mut().ok_or(STATUS_UNSUCCESSFUL)?;
            let mut g = MmGlobals {
                pfn: db,
                sections: &mut st.sections,
                paging_file: &mut st.paging_file,
            };
            let mut fp = FaultingProcess {
                id: p.id,
                space: &mut p.space,
                ws: &mut p.ws,
            };
            ::mm::fault::mm_access_fault(&mut g, &mut fp, va, kind, &mut host)
        });
        if r.is_ok() && zero_fault {
            DEMAND_ZERO_FAULTS.store(before + 1, Ordering::Relaxed);
        }
        // A file page mapped writable is found dirty through its PTE's
        // hardware dirty bit (`harvest_user_dirty`, unmap, process exit).
        r.map(|_| ())
    })
}

/// What one address-space operation asks of the hardware side: pages whose
/// PTEs must be rewritten from the model, and frames to release once no
/// processor can reach them any more.
struct Change<R> {
    result: R,
    rewrite: Vec<Vpn>,
    freed: Vec<::mm::vm::FreedFrame>,
}

impl<R> Change<R> {
    fn only(result: R) -> Self {
        Change {
            result,
            rewrite: Vec::new(),
            freed: Vec::new(),
        }
    }
}

/// Runs `f` on the current process's address space; then, still under the
/// memory manager's lock, rewrites the PTEs it names, flushes every
/// processor's TB for the translations that changed (`KeFlushMultipleTb`,
/// acknowledged before it returns), and only then releases the frames the
/// operation freed (`MiDeletePte` order: clear, flush, free).
fn with_current<R>(
    f: impl FnOnce(&mut MmProcess, &mut MmStateParts) -> Result<Change<R>, NtStatus>,
) -> Result<R, NtStatus> {
    let pid = current_process();
    if pid == 0 {
        return Err(STATUS_INVALID_PARAMETER);
    }
    with_mm(|st| {
        let MmState {
            processes,
            sections,
            paging_file,
            ..
        } = st;
        let p = processes
            .iter_mut()
            .find(|p| p.id == pid)
            .ok_or(STATUS_INVALID_PARAMETER)?;
        let mut parts = MmStateParts {
            sections,
            paging_file,
        };
        let c = f(p, &mut parts)?;
        let mut stale = Vec::new();
        for &vpn in &c.rewrite {
            if write_user_pte(vpn, p.space.hardware_pte(vpn)) {
                stale.push(vpn << 12);
            }
        }
        flush_user_translations(&stale);
        if !c.freed.is_empty() {
            PFN_DB.with(|d| {
                if let Some(db) = d.as_mut() {
                    let _ = ::mm::vm::release_frames(db, parts.paging_file, &c.freed);
                }
            });
        }
        Ok(c.result)
    })?
}

/// Flushes `vas` (user addresses whose valid translations changed) on every
/// processor, waiting for all of them; nothing to do for an empty list.
fn flush_user_translations(vas: &[u64]) {
    if vas.len() > crate::ke::mp::FLUSH_MULTIPLE_MAXIMUM {
        crate::ke::mp::ke_flush_entire_tb();
    } else if !vas.is_empty() {
        crate::ke::mp::ke_flush_multiple_tb(vas);
    }
}

/// Writes the hardware PTE for user page `vpn` of the current address space
/// as the model describes it (`None`: not present). Returns whether a valid
/// translation changed, so other processors' TBs must be flushed.
fn write_user_pte(vpn: Vpn, pte: Option<HardwarePte>) -> bool {
    let va = vpn << 12;
    match pte {
        Some(p) => {
            let mut flags = PTE_USER;
            if p.writable {
                flags |= PTE_WRITE;
            }
            if !p.executable {
                flags |= PTE_NX;
            }
            super::map::set_user_pte(va, p.pfn, flags).unwrap_or(false)
        }
        None => super::map::clear_user_pte(va),
    }
}

struct MmStateParts<'a> {
    sections: &'a mut SectionTable,
    paging_file: &'a mut PagingFile,
}

/// `NtAllocateVirtualMemory` in the current process.
pub fn nt_allocate_virtual_memory(
    base: &mut u64,
    size: &mut u64,
    allocation_type: u32,
    protect: u32,
) -> NtStatus {
    let (mut b, mut s) = (*base, *size);
    let r = with_current(|p, _| {
        p.space
            .allocate_virtual_memory(&COMMIT, &mut b, 0, &mut s, allocation_type, protect)
            .map(Change::only)
    });
    if r.is_ok() {
        *base = b;
        *size = s;
    }
    r.err().unwrap_or(STATUS_SUCCESS)
}

/// `NtFreeVirtualMemory` in the current process: the PTEs are cleared and
/// every processor flushed before the frames go back to the PFN database
/// (and paging-file slots are released).
pub fn nt_free_virtual_memory(base: &mut u64, size: &mut u64, free_type: u32) -> NtStatus {
    let (mut b, mut s) = (*base, *size);
    let r = with_current(|p, _| {
        let freed = p
            .space
            .free_virtual_memory(&COMMIT, &mut b, &mut s, free_type)?;
        let vpns: Vec<Vpn> = freed.iter().map(|f| f.vpn).collect();
        for v in &vpns {
            p.ws.remove(*v);
        }
        Ok(Change {
            result: (),
            rewrite: vpns,
            freed,
        })
    });
    if r.is_ok() {
        *base = b;
        *size = s;
    }
    r.err().unwrap_or(STATUS_SUCCESS)
}

/// `NtProtectVirtualMemory` in the current process; returns the old protection.
pub fn nt_protect_virtual_memory(
    base: &mut u64,
    size: &mut u64,
    new_protect: u32,
) -> Result<u32, NtStatus> {
    let (mut b, mut s) = (*base, *size);
    let mut old = 0;
    with_current(|p, _| {
        let vpns = p
            .space
            .protect_virtual_memory(&mut b, &mut s, new_protect, &mut old)?;
        Ok(Change {
            result: (),
            rewrite: vpns,
            freed: Vec::new(),
        })
    })?;
    *base = b;
    *size = s;
    Ok(old)
}

/// `NtQueryVirtualMemory(MemoryBasicInformation)` in the current process.
pub fn nt_query_virtual_memory(address: u64) -> Result<MemoryBasicInformation, NtStatus> {
    with_current(|p, _| Ok(Change::only(p.space.query_virtual_memory(address)?)))
}

/// `NtCreateSection` (pagefile-backed, `SEC_COMMIT`): returns the section id.
pub fn nt_create_section(size: u64, protect: u32) -> Result<u32, NtStatus> {
    with_mm(|st| {
        st.sections
            .create_section(&COMMIT, size, protect, ::mm::section::SEC_COMMIT)
    })?
}

/// The (control area, page) behind `vpn` of a view of a file section.
fn file_view_page_of(
    sections: &SectionTable,
    space: &AddressSpace,
    vpn: Vpn,
) -> Option<(u32, u64)> {
    let vad = space.vads().find(vpn)?;
    let ::mm::vm::RegionKind::Mapped {
        section,
        first_page,
        ..
    } = vad.data.kind
    else {
        return None;
    };
    let ca = sections.get(section)?.file?;
    Some((ca, first_page + (vpn - vad.start)))
}

/// For the fault pre-pass: the (control area, page) of a file view page of
/// process `pid` that has no frame yet.
fn file_view_page(pid: u32, vpn: Vpn) -> Result<Option<(u32, u64)>, NtStatus> {
    with_mm(|st| {
        let p = st.processes.iter().find(|p| p.id == pid)?;
        if p.space.frame(vpn).is_some() {
            return None;
        }
        file_view_page_of(&st.sections, &p.space, vpn)
    })
}

/// `NtCreateSection(&Section, DesiredAccess, NULL, MaximumSize,
/// SectionPageProtection, AllocationAttributes, FileHandle)` for a data
/// file (`SEC_COMMIT` semantics: the file backs every page): returns the
/// section id. The handle must be a file handle (`STATUS_INVALID_HANDLE`,
/// `STATUS_OBJECT_TYPE_MISMATCH`) opened with read access, and with write
/// access for a writable protection (`STATUS_ACCESS_DENIED`). The size is
/// the file's (`maximum_size` 0) or `maximum_size`, which may not exceed
/// the file (`STATUS_SECTION_TOO_BIG`; ntrs does not extend the file for a
/// writable section as NT does). An empty file is
/// `STATUS_MAPPED_FILE_SIZE_ZERO`; a file object with no section object
/// pointers `STATUS_INVALID_FILE_FOR_SECTION`; `SEC_IMAGE` makes an image
/// section (`nt_create_image_section_from_file`); `SEC_RESERVE` and
/// `SEC_LARGE_PAGES` are invalid for files (`STATUS_INVALID_PARAMETER_6`).
pub fn nt_create_section_from_file(
    file_handle: u64,
    maximum_size: u64,
    protect: u32,
    attributes: u32,
    mode: crate::ob::object::Mode,
) -> Result<u32, NtStatus> {
    use ::mm::section::*;
    let known = SEC_COMMIT | SEC_RESERVE | SEC_IMAGE | SEC_NOCACHE | SEC_LARGE_PAGES;
    if attributes & !known != 0 || attributes & (SEC_RESERVE | SEC_LARGE_PAGES) != 0 {
        return Err(STATUS_INVALID_PARAMETER_6);
    }
    if !::mm::is_valid_protection(protect) || protect & ::mm::PAGE_GUARD != 0 {
        return Err(STATUS_INVALID_PAGE_PROTECTION);
    }
    if attributes & SEC_IMAGE != 0 {
        return nt_create_image_section_from_file(file_handle, protect, mode);
    }
    let base = protect & 0xFF;
    let mut access = wdk::FILE_READ_DATA;
    if matches!(base, ::mm::PAGE_READWRITE | ::mm::PAGE_EXECUTE_READWRITE) {
        access |= wdk::FILE_WRITE_DATA;
    }
    let r = crate::ob::handle::ob_reference_object_by_handle(
        file_handle,
        access,
        Some(&crate::io::IO_FILE_OBJECT_TYPE),
        mode,
    )?;
    // The handle's granted access decides, for kernel-mode callers too
    // (whose references skip the access check): a read-only handle gives no
    // writable section.
    if r.granted_access & access != access {
        return Err(STATUS_ACCESS_DENIED);
    }
    let file = crate::io::file::file_of(r.id).ok_or(STATUS_OBJECT_TYPE_MISMATCH)?;
    let ds = super::file::mm_create_data_section(file, None)?;
    let size = super::file::mm_section_size(ds).unwrap_or(0);
    let size = match maximum_size {
        0 => size,
        m if m > size => {
            super::file::mm_dereference_data_section(ds);
            return Err(STATUS_SECTION_TOO_BIG);
        }
        m => m,
    };
    let id = with_mm(|st| st.sections.create_file_section(ds.id(), size, protect));
    match id {
        Ok(Ok(id)) => {
            super::file::add_user_reference(ds);
            Ok(id)
        }
        Ok(Err(e)) | Err(e) => {
            super::file::mm_dereference_data_section(ds);
            Err(e)
        }
    }
}

/// `NtCreateSection(..., SectionPageProtection, SEC_IMAGE, FileHandle)`:
/// an image section of the PE file (see [`mm_create_image_section`]). The
/// handle needs the access the protection implies (NT's rule):
/// `FILE_EXECUTE` for an executable protection, `FILE_READ_DATA` for a
/// readable one (`STATUS_ACCESS_DENIED` otherwise; `PAGE_EXECUTE` with a
/// handle opened for `FILE_EXECUTE` alone is what loaders use).
fn nt_create_image_section_from_file(
    file_handle: u64,
    protect: u32,
    mode: crate::ob::object::Mode,
) -> Result<u32, NtStatus> {
    let mut access = 0;
    if ::mm::protection_executable(protect) {
        access |= wdk::FILE_EXECUTE;
    }
    if ::mm::protection_readable(protect) && protect & 0xFF != ::mm::PAGE_EXECUTE {
        access |= wdk::FILE_READ_DATA;
    }
    if ::mm::protection_writable(protect) && !::mm::protection_copy_on_write(protect) {
        access |= wdk::FILE_WRITE_DATA;
    }
    let r = crate::ob::handle::ob_reference_object_by_handle(
        file_handle,
        access,
        Some(&crate::io::IO_FILE_OBJECT_TYPE),
        mode,
    )?;
    if r.granted_access & access != access {
        return Err(STATUS_ACCESS_DENIED);
    }
    let file = crate::io::file::file_of(r.id).ok_or(STATUS_OBJECT_TYPE_MISMATCH)?;
    mm_create_image_section(file)
}

/// Kernel API (`MmCreateSection(SEC_IMAGE)` with a file object, what
/// `NtCreateUserProcess` and the loader use): an image section object over
/// the file's image control area (one per file, shared by every image
/// section of it: two mappings of an image share its pages). The caller
/// keeps its own reference on `file` for the call; the control area takes
/// one. Returns the section id for [`mm_map_image_section`],
/// [`nt_query_section_image_information`] and [`mm_close_section`].
/// Statuses: see `file::mm_create_image_control_area`.
pub fn mm_create_image_section(file: *mut wdk::FILE_OBJECT) -> Result<u32, NtStatus> {
    let (ca, layout) = super::file::mm_create_image_control_area(file)?;
    let id = with_mm(|st| st.sections.create_image_section(ca.id(), &layout));
    match id {
        Ok(Ok(id)) => {
            super::file::add_user_reference(ca);
            Ok(id)
        }
        Ok(Err(e)) | Err(e) => {
            super::file::mm_dereference_data_section(ca);
            Err(e)
        }
    }
}

/// Kernel API (`MmMapViewOfSection` of an image section into a given
/// process, e.g. the new process of `NtCreateUserProcess`): maps the
/// whole image into address space `pid` (no attach needed) at `base` (0:
/// the image's `ImageBase`, or the lowest free range if that is taken and
/// the image has relocations). Returns `(base, view size, status)` where
/// status is `STATUS_SUCCESS`, or `STATUS_IMAGE_NOT_AT_BASE` when the view
/// is not at `ImageBase` (the relocations are NOT applied: the loader
/// does that, as NT's user-mode loader did before Vista). Errors:
/// `STATUS_INVALID_HANDLE` (not a section), `STATUS_INVALID_PARAMETER`
/// (not an image section, or no such process), `STATUS_MAPPED_ALIGNMENT`,
/// `STATUS_CONFLICTING_ADDRESSES`, `STATUS_NO_MEMORY`.
pub fn mm_map_image_section(
    section: u32,
    pid: u32,
    base: u64,
) -> Result<(u64, u64, NtStatus), NtStatus> {
    let (mut b, mut size) = (base, 0);
    let (at_base, ca) = with_mm(|st| {
        let p = st
            .processes
            .iter_mut()
            .find(|p| p.id == pid)
            .ok_or(STATUS_INVALID_PARAMETER)?;
        let at_base = st
            .sections
            .map_image_view(section, &mut p.space, &mut b, 0, &mut size)?;
        Ok::<_, NtStatus>((at_base, st.sections.get(section).and_then(|s| s.file)))
    })??;
    if let Some(ca) = ca {
        super::file::user_view_mapped(ca);
    }
    let status = if at_base {
        STATUS_SUCCESS
    } else {
        STATUS_IMAGE_NOT_AT_BASE
    };
    Ok((b, size, status))
}

/// `NtQuerySection(Section, SectionImageInformation, ...)`:
/// `SECTION_IMAGE_INFORMATION` of an image section
/// (`::mm::image::SectionImageInformation::to_bytes` gives the 0x40 bytes
/// user mode sees). A section that is not an image:
/// `STATUS_SECTION_NOT_IMAGE`; not a section: `STATUS_INVALID_HANDLE`.
pub fn nt_query_section_image_information(
    section: u32,
) -> Result<::mm::image::SectionImageInformation, NtStatus> {
    let ca = with_mm(|st| {
        let s = st.sections.get(section).ok_or(STATUS_INVALID_HANDLE)?;
        s.image.as_ref().ok_or(STATUS_SECTION_NOT_IMAGE)?;
        s.file.ok_or(STATUS_SECTION_NOT_IMAGE)
    })??;
    super::file::image_layout(ca)
        .map(|l| l.info)
        .ok_or(STATUS_SECTION_NOT_IMAGE)
}

/// The section's last handle was closed (`MiSectionDelete` once its views
/// are gone): a file section drops its control area reference.
pub fn mm_close_section(section: u32) -> NtStatus {
    let r = with_mm(|st| {
        let r = PFN_DB.with(|d| {
            let db = d.as_mut().ok_or(STATUS_UNSUCCESSFUL)?;
            st.sections.close_section(section, &COMMIT, db)
        });
        (r, st.sections.take_deleted_files())
    });
    match r {
        Ok((r, deleted)) => {
            for ca in deleted {
                super::file::release_user_reference(ca);
            }
            r.err().unwrap_or(STATUS_SUCCESS)
        }
        Err(e) => e,
    }
}

/// `NtMapViewOfSection` into the current process. An image section maps
/// whole (the protection is ignored, each page gets its subsection's) and
/// returns `STATUS_IMAGE_NOT_AT_BASE` when it is not at its `ImageBase`
/// (see [`mm_map_image_section`]).
pub fn nt_map_view_of_section(
    section: u32,
    base: &mut u64,
    view_size: &mut u64,
    protect: u32,
) -> NtStatus {
    let (mut b, mut v) = (*base, *view_size);
    let mut not_at_base = false;
    let r = with_current(|p, parts| {
        if parts
            .sections
            .get(section)
            .is_some_and(|s| s.image.is_some())
        {
            // An image: the whole image, per-section protections.
            not_at_base =
                !parts
                    .sections
                    .map_image_view(section, &mut p.space, &mut b, 0, &mut v)?;
            if let Some(ca) = parts.sections.get(section).and_then(|s| s.file) {
                super::file::user_view_mapped(ca);
            }
            return Ok(Change::only(()));
        }
        let mut off = 0;
        parts.sections.map_view_of_section(
            section,
            &mut p.space,
            &mut b,
            0,
            &mut off,
            &mut v,
            0,
            protect,
        )?;
        if let Some(ca) = parts.sections.get(section).and_then(|s| s.file) {
            super::file::user_view_mapped(ca);
        }
        Ok(Change::only(()))
    });
    if r.is_ok() {
        *base = b;
        *view_size = v;
    }
    match r {
        Ok(()) if not_at_base => STATUS_IMAGE_NOT_AT_BASE,
        Ok(()) => STATUS_SUCCESS,
        Err(e) => e,
    }
}

/// `NtUnmapViewOfSection` in the current process: the view's PTEs are
/// cleared and every processor flushed before the section code releases
/// the frames.
pub fn nt_unmap_view_of_section(base: u64) -> NtStatus {
    let r = with_current(|p, parts| {
        // A file view: its writable pages go back to the file at the next
        // flush; the control area loses a mapped view after the unmap.
        let file_view = p.space.vads().find(base >> 12).and_then(|v| {
            let ::mm::vm::RegionKind::Mapped { section, .. } = v.data.kind else {
                return None;
            };
            parts.sections.get(section).and_then(|s| s.file)?;
            Some((v.start, v.end))
        });
        if let Some((start, end)) = file_view {
            for vpn in start..=end {
                if p.space.hardware_pte(vpn).is_some_and(|h| h.writable)
                    && user_pte_dirty(p.cr3, vpn << 12, false)
                {
                    if let Some((ca, page)) = file_view_page_of(parts.sections, &p.space, vpn) {
                        if matches!(
                            p.space.frame(vpn),
                            Some(::mm::vm::Frame::Valid { private: false, .. })
                        ) {
                            super::file::mark_dirty(ca, page);
                        }
                    }
                }
            }
        }
        let file_ca = file_view
            .and_then(|(start, _)| file_view_page_of(parts.sections, &p.space, start))
            .map(|(ca, _)| ca);
        if let Some((start, end)) = p.space.vads().find(base >> 12).map(|v| (v.start, v.end)) {
            let stale: Vec<u64> = (start..=end)
                .filter(|&v| write_user_pte(v, None))
                .map(|v| v << 12)
                .collect();
            flush_user_translations(&stale);
        }
        let freed = PFN_DB.with(|d| {
            let db = d.as_mut().ok_or(STATUS_UNSUCCESSFUL)?;
            parts
                .sections
                .unmap_view_of_section(&mut p.space, base, &COMMIT, db, parts.paging_file)
        })?;
        for f in &freed {
            p.ws.remove(f.vpn);
        }
        Ok(Change::only((file_ca, parts.sections.take_deleted_files())))
    });
    match r {
        Ok((file_ca, deleted)) => {
            if let Some(ca) = file_ca {
                super::file::user_view_unmapped(ca);
            }
            for ca in deleted {
                super::file::release_user_reference(ca);
            }
            STATUS_SUCCESS
        }
        Err(e) => e,
    }
}

/// `MmDeleteProcessAddressSpace`: frees every view and private page, the
/// user page tables and the PML4. The caller is not attached to it.
pub fn mm_delete_process_address_space(pid: u32) -> NtStatus {
    if current_process() == pid {
        return STATUS_INVALID_PARAMETER;
    }
    let r = with_mm(|st| {
        let Some(i) = st.processes.iter().position(|p| p.id == pid) else {
            return (Err(STATUS_INVALID_PARAMETER), Vec::new(), Vec::new());
        };
        let mut p = st.processes.swap_remove(i);
        // File views: writable pages go back to the file at the next flush;
        // their control areas lose the mapped view afterwards.
        let mut file_views = Vec::new();
        for v in p.space.vads().iter() {
            if let Some((ca, _)) = file_view_page_of(&st.sections, &p.space, v.start) {
                file_views.push(ca);
                for vpn in v.start..=v.end {
                    if p.space.hardware_pte(vpn).is_some_and(|h| h.writable)
                        && user_pte_dirty(p.cr3, vpn << 12, false)
                        && matches!(
                            p.space.frame(vpn),
                            Some(::mm::vm::Frame::Valid { private: false, .. })
                        )
                    {
                        if let Some((ca, page)) = file_view_page_of(&st.sections, &p.space, vpn) {
                            super::file::mark_dirty(ca, page);
                        }
                    }
                }
            }
        }
        let r = PFN_DB.with(|d| {
            let db = d.as_mut().ok_or(STATUS_UNSUCCESSFUL)?;
            let freed =
                st.sections
                    .delete_address_space(&mut p.space, &COMMIT, db, &mut st.paging_file)?;
            // No processor runs in this address space (the caller is not
            // attached to it); flush every TB anyway before its frames and
            // page-table pages can be reused, so no stale translation or
            // paging-structure cache entry survives them.
            crate::ke::mp::ke_flush_entire_tb();
            let _ = ::mm::vm::release_frames(db, &mut st.paging_file, &freed);
            // User page tables: PML4 0..256 and everything below them.
            free_table(db, p.cr3 >> 12, 4);
            Ok::<(), NtStatus>(())
        });
        (r, file_views, st.sections.take_deleted_files())
    });
    match r {
        Ok((r, file_views, deleted)) => {
            for ca in file_views {
                super::file::user_view_unmapped(ca);
            }
            for ca in deleted {
                super::file::release_user_reference(ca);
            }
            r.err().unwrap_or(STATUS_SUCCESS)
        }
        Err(e) => e,
    }
}

/// Frees a page-table page and (for the user half) the tables under it.
fn free_table(db: &mut ::mm::pfn::PfnDatabase, table: Pfn, level: u32) {
    let va = crate::hal::phys_to_virt(table << 12) as *const u64;
    let entries = if level == 4 { 256 } else { 512 };
    if level > 1 {
        for i in 0..entries {
            // SAFETY: a page-table page of the deleted process (direct map).
            let e = unsafe { va.add(i).read() };
            if e & PTE_VALID != 0 && e & PTE_LARGE == 0 {
                free_table(db, (e & 0x000F_FFFF_FFFF_F000) >> 12, level - 1);
            }
        }
    }
    let _ = db.free_page(table);
}

/// The paging file's size and slots in use, in pages (`!vm`).
pub fn paging_file_usage() -> Option<(u64, u64)> {
    with_mm(|st| (st.paging_file.size(), st.paging_file.used())).ok()
}

/// Fault statistics line for `!vm`.
pub fn kd_stats() {
    crate::dbg_println!(
        "Page faults: {}  demand-zero: {}  pages written to the paging file: {}  read back: {}  trimmed: {}",
        PAGE_FAULTS.load(Ordering::Relaxed),
        DEMAND_ZERO_FAULTS.load(Ordering::Relaxed),
        PAGES_WRITTEN.load(Ordering::Relaxed),
        PAGES_READ.load(Ordering::Relaxed),
        PAGES_TRIMMED.load(Ordering::Relaxed)
    );
    crate::dbg_println!("Commit: {} of {} pages", COMMIT.used(), COMMIT.limit());
}

fn pid_arg(arg: Option<&str>) -> Option<u32> {
    match arg {
        Some(a) => nt::kd::parse_u32(a).ok(),
        None => Some(current_process()).filter(|&p| p != 0),
    }
}

/// `!vad [pid]`: a process's VADs (default: the attached process; with no
/// process, the list of address spaces).
pub fn kd_vad(arg: Option<&str>) {
    let pid = pid_arg(arg);
    let text = with_mm(
        |st| match pid.and_then(|p| st.processes.iter().find(|x| x.id == p)) {
            Some(p) => p.space.format_vads(),
            None => {
                let mut s = alloc::string::String::from(
                    "Address spaces (pid, DirectoryTableBase, working set pages):\n",
                );
                for p in &st.processes {
                    s += &alloc::format!("  {:04x}  {:016x}  {}\n", p.id, p.cr3, p.ws.len());
                }
                s
            }
        },
    )
    .unwrap_or_default();
    crate::dbg_println!("{text}");
}

/// `!address [pid]`: every region of a process's user address space.
pub fn kd_address(arg: Option<&str>) {
    let Some(pid) = pid_arg(arg) else {
        crate::dbg_println!("usage: !address <pid>   (see !vad for the address spaces)");
        return;
    };
    let regions = with_mm(|st| {
        st.processes
            .iter()
            .find(|x| x.id == pid)
            .map(|p| p.space.regions())
    })
    .ok()
    .flatten();
    let Some(regions) = regions else {
        crate::dbg_println!("no address space {pid:x}");
        return;
    };
    crate::dbg_println!("        BaseAddress      EndAddress+1        RegionSize     Type       State                 Protect");
    for r in regions {
        let state = match r.state {
            ::mm::MEM_COMMIT => "MEM_COMMIT",
            ::mm::MEM_RESERVE => "MEM_RESERVE",
            _ => "MEM_FREE",
        };
        let ty = match r.type_ {
            ::mm::MEM_PRIVATE => "MEM_PRIVATE",
            ::mm::MEM_MAPPED => "MEM_MAPPED",
            ::mm::MEM_IMAGE => "MEM_IMAGE",
            _ => "",
        };
        crate::dbg_println!(
            "+ {:016x} {:016x} {:016x} {:<10} {:<21} {:#x}",
            r.base_address,
            r.base_address + r.region_size,
            r.region_size,
            ty,
            state,
            r.protect
        );
    }
}

/// The frame mapped (valid) at user address `va` of address space `pid`
/// (tests: two mappings of one image page share a frame).
pub fn user_page_frame(pid: u32, va: u64) -> Option<Pfn> {
    with_mm(|st| {
        let p = st.processes.iter().find(|p| p.id == pid)?;
        match p.space.frame(va >> 12)? {
            ::mm::vm::Frame::Valid { pfn, .. } => Some(pfn),
            _ => None,
        }
    })
    .ok()
    .flatten()
}

/// The control area behind a file or image section (tests, `!ca`).
pub fn section_control_area(section: u32) -> Option<u32> {
    with_mm(|st| st.sections.get(section).and_then(|s| s.file))
        .ok()
        .flatten()
}

/// The hardware dirty bit of user page `va` in the address space whose
/// PML4 is at physical `cr3`, read through the direct map (any process,
/// attached or not); with `clear` the bit is cleared atomically (the
/// caller flushes the TBs before it reads the page). False when the page
/// is not mapped. Memory manager lock held (user page tables are guarded
/// by it).
fn user_pte_dirty(cr3: u64, va: u64, clear: bool) -> bool {
    use core::sync::atomic::AtomicU64;
    const ADDR: u64 = 0x000F_FFFF_FFFF_F000;
    let index = |shift: u32| ((va >> shift) & 511) as usize;
    let mut table = cr3 & ADDR;
    for shift in [39, 30, 21] {
        let t = crate::hal::phys_to_virt(table) as *const u64;
        // SAFETY: a page-table page of a live address space through the
        // direct map; the MM lock keeps it from being freed.
        let e = unsafe { t.add(index(shift)).read_volatile() };
        if e & PTE_VALID == 0 || e & PTE_LARGE != 0 {
            return false;
        }
        table = e & ADDR;
    }
    let pt = crate::hal::phys_to_virt(table) as *const AtomicU64;
    // SAFETY: as above; the processor sets the dirty bit with a locked
    // update, so the PTE is accessed atomically here too.
    let pte = unsafe { &*pt.add(index(12)) };
    let e = pte.load(Ordering::Acquire);
    if e & PTE_VALID == 0 || e & PTE_DIRTY == 0 {
        return false;
    }
    if clear {
        pte.fetch_and(!PTE_DIRTY, Ordering::AcqRel);
    }
    true
}

/// The mapped page writer's and flushes' view of user mappings
/// (`MiFlushSectionInternal` / the mapped writer reading `MMPFN.Modified`
/// set from the PTEs): for every process's shared, writable pages of data
/// control area `ca` in pages `[first, end)`, takes the PTE's hardware
/// dirty bit (clears it), then flushes every processor's TB for those
/// pages before returning them, so a write after this sets the bit again
/// and is written by the next flush.
pub fn harvest_user_dirty(ca: u32, first: u64, end: u64) -> Vec<u64> {
    with_mm(|st| {
        let mut pages = Vec::new();
        let mut stale = Vec::new();
        for p in &st.processes {
            for v in p.space.vads().iter() {
                let ::mm::vm::RegionKind::Mapped {
                    section,
                    first_page,
                    image: false,
                    ..
                } = v.data.kind
                else {
                    continue;
                };
                if st.sections.get(section).and_then(|s| s.file) != Some(ca) {
                    continue;
                }
                for (k, frame) in v.data.frames() {
                    let page = first_page + k;
                    if page < first || page >= end {
                        continue;
                    }
                    if !matches!(frame, ::mm::vm::Frame::Valid { private: false, .. }) {
                        continue;
                    }
                    let va = (v.start + k) << 12;
                    if user_pte_dirty(p.cr3, va, true) {
                        stale.push(va);
                        pages.push(page);
                    }
                }
            }
        }
        flush_user_translations(&stale);
        pages
    })
    .unwrap_or_default()
}

/// `NtFlushVirtualMemory(Process, &BaseAddress, &RegionSize, &IoStatus)`
/// in the current process: writes the dirty pages of the mapped data file
/// view holding `base` in `[base, base + size)` (size 0: to the end of the
/// view) back to the file with paging writes, and waits. Returns the
/// rounded base and size and the bytes written. Statuses: no view at the
/// address `STATUS_NOT_MAPPED_VIEW`; private memory or an image view
/// `STATUS_NOT_MAPPED_DATA`; a pagefile-backed section's view succeeds with
/// nothing to write; a failed write's status.
pub fn nt_flush_virtual_memory(base: u64, size: u64) -> Result<(u64, u64, u64), NtStatus> {
    let (ca, first, count, b, s) = with_current(|p, parts| {
        let vad = p
            .space
            .vads()
            .find(base >> 12)
            .ok_or(STATUS_NOT_MAPPED_VIEW)?;
        let ::mm::vm::RegionKind::Mapped {
            section,
            first_page,
            image,
            ..
        } = vad.data.kind
        else {
            return Err(STATUS_NOT_MAPPED_DATA);
        };
        if image {
            return Err(STATUS_NOT_MAPPED_DATA);
        }
        let start = base >> 12;
        let end = if size == 0 {
            vad.end
        } else {
            (base.checked_add(size - 1).ok_or(STATUS_INVALID_PARAMETER)? >> 12).min(vad.end)
        };
        let ca = parts.sections.get(section).and_then(|s| s.file);
        Ok(Change::only((
            ca,
            first_page + (start - vad.start),
            end - start + 1,
            start << 12,
            (end - start + 1) << 12,
        )))
    })?;
    let written = match ca {
        Some(ca) => super::file::flush_control_area(ca, first, count)?,
        None => 0,
    };
    Ok((b, s, written))
}
