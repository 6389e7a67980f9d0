//! The whole of `MmAccessFault` for user addresses, and the modified page
//! writer (*Windows Internals* 7th ed., Part 1, ch. 5, "Page fault
//! handling", "Modified page writer"): the fault protocol of
//! [`AddressSpace::access`] driven to completion against the PFN database,
//! the sections and the paging file, with memory-pressure relief (write
//! modified pages, trim the faulting process's working set) when no page is
//! available. The kernel supplies the hardware side through [`FaultHost`].
//!
//! Owners: every page a process gets is tagged with
//! [`owner_cookie`]`(process, vpn)` in its PFN entry, so a repurposed standby
//! page or a written modified page can be traced back to its address space.
//! For the faulting process this is done here; for another process the
//! kernel is called back ([`FaultHost::foreign_repurposed`],
//! [`FaultHost::foreign_page_written`]) and must update that process's
//! [`AddressSpace`] (lock ordering is the kernel's business).

use nt::status::*;

use crate::pagefile::PagingFile;
use crate::pfn::{AllocationPreference, PfnDatabase, Repurposed};
use crate::section::{SectionTable, SECTION_OWNER};
use crate::vm::{AccessKind, AddressSpace, FaultResolution, HardwarePte};
use crate::ws::{trim_working_set, WorkingSet};
use crate::{Pfn, Vpn, PAGE_SIZE};

/// Pages trimmed from the faulting process per pressure-relief round.
pub const TRIM_BATCH: u64 = 16;
/// Modified pages written per pressure-relief round.
pub const WRITE_BATCH: u64 = 16;

/// The PFN owner cookie of a process page: process id in bits 40..63
/// (23 bits), VPN in bits 0..40. 0 means "system".
pub fn owner_cookie(process: u32, vpn: Vpn) -> u64 {
    (u64::from(process & 0x7F_FFFF) << 40) | (vpn & ((1 << 40) - 1))
}

/// Inverse of [`owner_cookie`]; `None` for section pages and system pages.
pub fn decode_owner(cookie: u64) -> Option<(u32, Vpn)> {
    if cookie & SECTION_OWNER != 0 || cookie == 0 {
        return None;
    }
    Some(((cookie >> 40) as u32, cookie & ((1 << 40) - 1)))
}

/// What the kernel does for the fault handler.
pub trait FaultHost {
    /// Fills physical page `pfn` with zeros.
    fn zero_page(&mut self, pfn: Pfn);
    /// Copies physical page `src` to `dst`.
    fn copy_page(&mut self, dst: Pfn, src: Pfn);
    /// Reads paging-file `slot` into `pfn` (`STATUS_IN_PAGE_ERROR`-style failure).
    fn read_paging_file(&mut self, slot: u64, pfn: Pfn) -> Result<(), NtStatus>;
    /// Writes `pfn` to paging-file `slot`.
    fn write_paging_file(&mut self, slot: u64, pfn: Pfn) -> Result<(), NtStatus>;
    /// A transition page of another process was repurposed: call
    /// `page_repurposed(vpn)` on that process's address space.
    fn foreign_repurposed(&mut self, process: u32, vpn: Vpn);
    /// A modified page of another process was written: call
    /// `page_written(vpn, pfn, slot)` on that process's address space.
    fn foreign_page_written(
        &mut self,
        process: u32,
        vpn: Vpn,
        pfn: Pfn,
        slot: u64,
    ) -> Result<(), NtStatus>;
    /// Sets the faulting process's hardware PTE for `vpn` (`None`: not
    /// present) and invalidates the TLB entry as needed.
    fn set_pte(&mut self, vpn: Vpn, pte: Option<HardwarePte>);
    /// The resident frame of page `page` of the file-backed control area
    /// `control_area` (the kernel reads the page in with a paging read
    /// before it takes the locks the fault runs under). `None` when the
    /// page is not resident, which fails the fault with
    /// `STATUS_IN_PAGE_ERROR`. Hosts without file sections keep the default.
    fn file_page(&mut self, control_area: u32, page: u64) -> Option<Pfn> {
        let _ = (control_area, page);
        None
    }
}

/// The system-wide state the fault handler needs (each behind its lock in the kernel).
pub struct MmGlobals<'a> {
    pub pfn: &'a mut PfnDatabase,
    pub sections: &'a mut SectionTable,
    pub paging_file: &'a mut PagingFile,
}

/// The faulting process.
pub struct FaultingProcess<'a> {
    pub id: u32,
    pub space: &'a mut AddressSpace,
    pub ws: &'a mut WorkingSet,
}

fn repurposed(r: Repurposed, process: &mut FaultingProcess<'_>, host: &mut dyn FaultHost) {
    if let Some((pid, vpn)) = decode_owner(r.pte_address) {
        if pid == process.id & 0x7F_FFFF {
            process.space.page_repurposed(vpn);
        } else {
            host.foreign_repurposed(pid, vpn);
        }
    }
}

/// Modified page writer (`MiModifiedPageWriter`, one batch): writes up to
/// `max` modified pages to the paging file and moves them to the standby
/// list. Returns the number written. Stops when the paging file is full.
pub fn write_modified_pages(
    g: &mut MmGlobals<'_>,
    process: &mut FaultingProcess<'_>,
    host: &mut dyn FaultHost,
    max: u64,
) -> u64 {
    let mut written = 0;
    while written < max && g.paging_file.used() < g.paging_file.size() {
        let Some(pfn) = g.pfn.begin_write() else {
            break;
        };
        let owner = g.pfn.entry(pfn).map_or(0, |e| e.pte_address);
        let Some(slot) = g.paging_file.allocate_slot() else {
            let _ = g.pfn.abort_write(pfn);
            break;
        };
        let ok = host.write_paging_file(slot, pfn).is_ok()
            && match decode_owner(owner) {
                Some((pid, vpn)) if pid == process.id & 0x7F_FFFF => {
                    process.space.page_written(vpn, pfn, slot).is_ok()
                }
                Some((pid, vpn)) => host.foreign_page_written(pid, vpn, pfn, slot).is_ok(),
                None => false,
            };
        if ok {
            let _ = g.pfn.complete_write(pfn, slot);
            written += 1;
        } else {
            g.paging_file.free_slot(slot);
            let _ = g.pfn.abort_write(pfn);
            break;
        }
    }
    written
}

/// Makes sure at least one page is available (zeroed, free or standby):
/// writes modified pages, else trims the faulting process's working set.
/// `STATUS_INSUFFICIENT_RESOURCES` when neither helps: other processes
/// hold the memory, so the kernel must run its balance set manager
/// (`ws::trim_working_set` on other processes) and retry, as NT's faulting
/// thread waits for it.
pub fn ensure_available(
    g: &mut MmGlobals<'_>,
    process: &mut FaultingProcess<'_>,
    host: &mut dyn FaultHost,
) -> Result<(), NtStatus> {
    for _ in 0..64 {
        if g.pfn.available_pages() > 0 {
            return Ok(());
        }
        if g.pfn.counts().modified > 0 && write_modified_pages(g, process, host, WRITE_BATCH) > 0 {
            continue;
        }
        let trimmed = trim_working_set(process.ws, process.space, g.pfn, TRIM_BATCH, |_| false)
            .map_err(|_| STATUS_INTERNAL_ERROR)?;
        if trimmed.is_empty() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        for t in trimmed {
            host.set_pte(t.vpn, None);
        }
    }
    Err(STATUS_INSUFFICIENT_RESOURCES)
}

fn new_page(
    g: &mut MmGlobals<'_>,
    process: &mut FaultingProcess<'_>,
    host: &mut dyn FaultHost,
    vpn: Vpn,
    zero: bool,
) -> Result<Pfn, NtStatus> {
    ensure_available(g, process, host)?;
    let preference = if zero {
        AllocationPreference::Zeroed
    } else {
        AllocationPreference::Any
    };
    let p = g
        .pfn
        .allocate_page(owner_cookie(process.id, vpn), preference)
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    if let Some(r) = p.repurposed {
        repurposed(r, process, host);
    }
    if zero && p.needs_zeroing {
        host.zero_page(p.pfn);
    }
    Ok(p.pfn)
}

/// `MmAccessFault` for a user-mode address of `process`: resolves the fault
/// completely (demand zero, soft, hard, section and copy-on-write faults),
/// updates the working set, and has the host write the final PTE. Returns
/// the frame now mapped, or the exception to raise
/// (`STATUS_ACCESS_VIOLATION`, `STATUS_GUARD_PAGE_VIOLATION`,
/// `STATUS_IN_PAGE_ERROR`) or `STATUS_INSUFFICIENT_RESOURCES`.
pub fn mm_access_fault(
    g: &mut MmGlobals<'_>,
    process: &mut FaultingProcess<'_>,
    va: u64,
    kind: AccessKind,
    host: &mut dyn FaultHost,
) -> Result<Pfn, NtStatus> {
    let vpn = va / PAGE_SIZE;
    for _ in 0..8 {
        match process.space.access(va, kind) {
            FaultResolution::AlreadyValid { pfn } => {
                host.set_pte(vpn, process.space.hardware_pte(vpn));
                if !process.ws.contains(vpn) {
                    process.ws.insert(vpn);
                }
                return Ok(pfn);
            }
            FaultResolution::DemandZero { vpn } => {
                let pfn = new_page(g, process, host, vpn, true)?;
                process.space.map_page(vpn, pfn)?;
            }
            FaultResolution::SoftFault { vpn, pfn } => {
                g.pfn.soft_fault(pfn).map_err(|_| STATUS_INTERNAL_ERROR)?;
                if let Some(slot) = process.space.map_page(vpn, pfn)? {
                    g.paging_file.free_slot(slot);
                }
            }
            FaultResolution::HardFault { vpn, slot } => {
                let pfn = new_page(g, process, host, vpn, false)?;
                if host.read_paging_file(slot, pfn).is_err() {
                    let _ = g.pfn.free_page(pfn);
                    return Err(STATUS_IN_PAGE_ERROR);
                }
                if let Some(s) = process.space.map_page(vpn, pfn)? {
                    g.paging_file.free_slot(s);
                }
            }
            FaultResolution::SectionPage { vpn, section, page } => {
                if let Some(ca) = g.sections.get(section).and_then(|s| s.file) {
                    // A file's page: the control area's frame, one more share.
                    let pfn = host.file_page(ca, page).ok_or(STATUS_IN_PAGE_ERROR)?;
                    g.pfn.add_share(pfn).map_err(|_| STATUS_INTERNAL_ERROR)?;
                    process.space.map_page(vpn, pfn)?;
                    continue;
                }
                ensure_available(g, process, host)?;
                let f = g.sections.resolve_fault(g.pfn, section, page)?;
                if let Some(r) = f.repurposed {
                    repurposed(r, process, host);
                }
                if f.needs_zeroing {
                    host.zero_page(f.pfn);
                }
                process.space.map_page(vpn, f.pfn)?;
            }
            FaultResolution::CopyOnWrite { vpn, shared_pfn } => {
                let pfn = new_page(g, process, host, vpn, false)?;
                host.copy_page(pfn, shared_pfn);
                let old = process.space.complete_copy_on_write(vpn, pfn)?;
                let _ = g.pfn.remove_share(old);
            }
            FaultResolution::GuardPage => {
                host.set_pte(vpn, process.space.hardware_pte(vpn));
                return Err(STATUS_GUARD_PAGE_VIOLATION);
            }
            FaultResolution::AccessViolation => return Err(STATUS_ACCESS_VIOLATION),
        }
    }
    Err(STATUS_INTERNAL_ERROR)
}

#[cfg(test)]
mod tests;
