//! A process address space and the virtual memory system services
//! (*Windows Internals* 7th ed., Part 1, ch. 5, "Reserving and committing
//! pages", "Commit charge and the system commit limit", "Page fault
//! handling"): `NtAllocateVirtualMemory`, `NtFreeVirtualMemory`,
//! `NtProtectVirtualMemory`, `NtQueryVirtualMemory` and the decision part of
//! `MmAccessFault`.
//!
//! The address space is a [`VadTree`] whose payload ([`Region`]) keeps the
//! per-page state compactly: runs of identical protection (0 = reserved, not
//! committed) and a sparse map of pages that have a physical frame (valid or
//! in transition). The kernel mirrors the frames into real PTEs: after every
//! call that returns frames or VPNs it rewrites those PTEs (see
//! [`AddressSpace::hardware_pte`]) and flushes the TLB.
//!
//! Fault protocol: the kernel calls [`AddressSpace::access`] and acts on the
//! [`FaultResolution`] (allocate a zero page and [`AddressSpace::map_page`], take a
//! page back from standby and `map_page`, copy a page and
//! [`AddressSpace::complete_copy_on_write`], or raise the exception), then
//! retries until it gets [`FaultResolution::AlreadyValid`] — like NT, which
//! simply re-executes the faulting instruction.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicU64, Ordering};

use nt::status::*;

use crate::vad::{SearchDirection, Vad, VadTree};
use crate::*;

/// The system-wide commit charge (`MmTotalCommittedPages`) against the commit
/// limit (`MmTotalCommitLimit`), in pages. Shared by every address space
/// (and by sections); lock-free so the kernel can keep it in a static.
#[derive(Debug)]
pub struct CommitCharge {
    limit: AtomicU64,
    used: AtomicU64,
}

impl CommitCharge {
    /// A counter with `limit_pages` of commit limit and nothing charged.
    pub const fn new(limit_pages: u64) -> Self {
        CommitCharge {
            limit: AtomicU64::new(limit_pages),
            used: AtomicU64::new(0),
        }
    }

    /// `MiChargeCommitment`: charges `pages` or fails with
    /// `STATUS_COMMITMENT_LIMIT` leaving the charge unchanged.
    pub fn charge(&self, pages: u64) -> Result<(), NtStatus> {
        let limit = self.limit.load(Ordering::Relaxed);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(pages).filter(|&n| n <= limit)
            })
            .map(|_| ())
            .map_err(|_| STATUS_COMMITMENT_LIMIT)
    }

    /// `MiReturnCommitment`.
    pub fn uncharge(&self, pages: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(pages))
            });
    }

    /// Pages charged.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The commit limit in pages.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Acquire)
    }

    /// Changes the limit (a paging file was added or grew).
    pub fn set_limit(&self, pages: u64) {
        self.limit.store(pages, Ordering::Release)
    }
}

/// Runs of a per-page `u32` attribute over `[0, len)`: key = first page of
/// a run, value = the attribute up to the next key. Adjacent runs always differ.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Runs {
    map: BTreeMap<u64, u32>,
    len: u64,
}

impl Runs {
    fn new(len: u64, value: u32) -> Self {
        let mut map = BTreeMap::new();
        map.insert(0, value);
        Runs { map, len }
    }

    fn get(&self, i: u64) -> u32 {
        self.map.range(..=i).next_back().map_or(0, |(_, &v)| v)
    }

    /// Exclusive end of the run containing `i`.
    fn run_end(&self, i: u64) -> u64 {
        self.map
            .range(i.saturating_add(1)..)
            .next()
            .map_or(self.len, |(&k, _)| k)
    }

    /// Sets `[a, b)` to `value`.
    fn set(&mut self, a: u64, b: u64, value: u32) {
        if a >= b || b > self.len {
            return;
        }
        let tail = self.get(b);
        let keys: Vec<u64> = self.map.range(a..b).map(|(&k, _)| k).collect();
        for k in keys {
            self.map.remove(&k);
        }
        self.map.insert(a, value);
        if b < self.len && !self.map.contains_key(&b) {
            self.map.insert(b, tail);
        }
        if b < self.len && self.map.get(&b) == Some(&value) {
            self.map.remove(&b);
        }
        if a > 0 && self.get(a - 1) == value {
            self.map.remove(&a);
        }
    }

    /// Pages in `[a, b)` whose value satisfies `pred`.
    fn count(&self, a: u64, b: u64, pred: impl Fn(u32) -> bool) -> u64 {
        let mut n = 0;
        let mut i = a;
        while i < b {
            let end = self.run_end(i).min(b);
            if pred(self.get(i)) {
                n += end - i;
            }
            i = end;
        }
        n
    }

    /// The runs of `[a, b)` re-based to 0.
    fn slice(&self, a: u64, b: u64) -> Runs {
        let mut r = Runs::new(b - a, self.get(a));
        for (&k, &v) in self.map.range(a.saturating_add(1)..b) {
            r.map.insert(k - a, v);
        }
        r
    }
}

/// A physical frame behind a virtual page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Valid PTE. `private` is false for a section page shared through
    /// the section's prototype PTE, true for private memory and
    /// copy-on-write copies.
    Valid {
        pfn: Pfn,
        private: bool,
        dirty: bool,
    },
    /// Transition PTE: the page was trimmed and is on the standby or
    /// modified list; a soft fault brings it back. `slot` is the paging-file
    /// slot holding an up-to-date copy (set by [`AddressSpace::page_written`]).
    Transition {
        pfn: Pfn,
        dirty: bool,
        slot: Option<u64>,
    },
    /// Paging-file PTE: the frame was repurposed; the contents are in `slot`
    /// and an access is a hard fault.
    PagedOut { slot: u64 },
}

/// What a VAD describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// `MEM_PRIVATE` (`VadNone`, `PrivateMemory = 1`).
    Private,
    /// `MEM_MAPPED`: a view of section `section` starting at page
    /// `first_page` of the section; `section_protect` is the section's
    /// page protection (the maximum a view may use).
    Mapped {
        section: u32,
        first_page: u64,
        section_protect: u32,
        /// A view of an image section (`MEM_IMAGE`, `VadImageMap`).
        image: bool,
    },
}

/// The VAD payload (`MMVAD` fields ntrs needs plus per-page state).
#[derive(Clone, Debug)]
pub struct Region {
    pub kind: RegionKind,
    /// `AllocationProtect` as `NtQueryVirtualMemory` reports it.
    pub allocation_protect: u32,
    protect: Runs,
    frames: BTreeMap<u64, Frame>,
}

impl Region {
    fn new(kind: RegionKind, pages: u64, allocation_protect: u32, protect: u32) -> Self {
        Region {
            kind,
            allocation_protect,
            protect: Runs::new(pages, protect),
            frames: BTreeMap::new(),
        }
    }

    /// Committed pages (`CommitCharge` of the VAD for private memory).
    pub fn committed_pages(&self) -> u64 {
        self.protect.count(0, self.protect.len, |p| p != 0)
    }

    /// Pages with a frame (valid or transition).
    pub fn resident_pages(&self) -> u64 {
        self.frames.len() as u64
    }

    fn slice(&self, a: u64, b: u64) -> Region {
        let frames = self
            .frames
            .range(a..b)
            .map(|(&k, &f)| (k - a, f))
            .collect::<BTreeMap<_, _>>();
        Region {
            kind: self.kind,
            allocation_protect: self.allocation_protect,
            protect: self.protect.slice(a, b),
            frames,
        }
    }
}

/// `!vm`: physical memory by list and the commit charge.
pub fn format_vm(pfn_db: &crate::pfn::PfnDatabase, commit: &CommitCharge) -> String {
    let c = pfn_db.counts();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Physical Memory:      {:>10} ({:>10} Kb)",
        c.total,
        c.total * 4
    );
    let _ = writeln!(
        s,
        "Available Pages:      {:>10} ({:>10} Kb)",
        c.available(),
        c.available() * 4
    );
    let _ = writeln!(
        s,
        "Modified Pages:       {:>10} ({:>10} Kb)",
        c.modified,
        c.modified * 4
    );
    let _ = writeln!(
        s,
        "Committed pages:      {:>10} ({:>10} Kb)",
        commit.used(),
        commit.used() * 4
    );
    let _ = write!(
        s,
        "Commit limit:         {:>10} ({:>10} Kb)",
        commit.limit(),
        commit.limit() * 4
    );
    s
}

/// `MEMORY_BASIC_INFORMATION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBasicInformation {
    pub base_address: u64,
    pub allocation_base: u64,
    pub allocation_protect: u32,
    pub region_size: u64,
    /// `MEM_COMMIT`, `MEM_RESERVE` or `MEM_FREE`.
    pub state: u32,
    pub protect: u32,
    /// `MEM_PRIVATE`, `MEM_MAPPED` (or `MEM_IMAGE`), 0 for free memory.
    pub type_: u32,
}

/// A frame released by decommit, release or unmap: the kernel clears the
/// PTE (if valid), flushes the TLB and returns the frame to the PFN database
/// (`free_page` for private valid pages, `free_transition_page` for
/// trimmed ones, a share-count decrement for shared section pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreedFrame {
    pub vpn: Vpn,
    pub frame: Frame,
}

/// Returns released frames to the PFN database and the paging file:
/// private valid pages are freed, transition pages leave the
/// standby/modified list, shared section pages lose one share (the section
/// keeps the page), paging-file slots are released.
pub fn release_frames(
    pfn_db: &mut crate::pfn::PfnDatabase,
    paging_file: &mut crate::pagefile::PagingFile,
    frames: &[FreedFrame],
) -> Result<(), crate::pfn::PfnError> {
    for f in frames {
        match f.frame {
            Frame::Valid {
                pfn, private: true, ..
            } => pfn_db.free_page(pfn)?,
            Frame::Valid {
                pfn,
                private: false,
                ..
            } => {
                pfn_db.remove_share(pfn)?;
            }
            Frame::Transition { pfn, slot, .. } => {
                pfn_db.free_transition_page(pfn)?;
                if let Some(s) = slot {
                    paging_file.free_slot(s);
                }
            }
            Frame::PagedOut { slot } => {
                paging_file.free_slot(slot);
            }
        }
    }
    Ok(())
}

/// Kind of memory access that faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    Read,
    Write,
    Execute,
}

/// What `MmAccessFault` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultResolution {
    /// The page is valid and the access allowed (another thread resolved
    /// it, or the PTE is just stale in this TLB): retry the instruction.
    AlreadyValid { pfn: Pfn },
    /// `MiResolveDemandZeroFault`: allocate a zeroed page and call
    /// [`AddressSpace::map_page`].
    DemandZero { vpn: Vpn },
    /// `MiResolvePageFileFault`: allocate a page, read paging-file `slot`
    /// into it and call [`AddressSpace::map_page`].
    HardFault { vpn: Vpn, slot: u64 },
    /// `MiResolveTransitionFault`: the page is on the standby/modified list;
    /// `PfnDatabase::soft_fault(pfn)`, then [`AddressSpace::map_page`].
    SoftFault { vpn: Vpn, pfn: Pfn },
    /// `MiResolveProtoPteFault`: the page of a mapped view has no frame in
    /// this address space; get the section's page (allocating it on first
    /// touch) and call [`AddressSpace::map_page`].
    SectionPage { vpn: Vpn, section: u32, page: u64 },
    /// `MiCopyOnWrite`: allocate a page, copy `shared_pfn` into it and call
    /// [`AddressSpace::complete_copy_on_write`].
    CopyOnWrite { vpn: Vpn, shared_pfn: Pfn },
    /// The page was a guard page; the guard is now removed. Raise
    /// `STATUS_GUARD_PAGE_VIOLATION`.
    GuardPage,
    /// Raise `STATUS_ACCESS_VIOLATION`.
    AccessViolation,
}

impl FaultResolution {
    /// The exception code to raise, or `STATUS_SUCCESS` when the fault is resolvable.
    pub fn status(&self) -> NtStatus {
        match self {
            FaultResolution::GuardPage => STATUS_GUARD_PAGE_VIOLATION,
            FaultResolution::AccessViolation => STATUS_ACCESS_VIOLATION,
            _ => STATUS_SUCCESS,
        }
    }
}

/// Caching of a hardware PTE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheType {
    Cached,
    NonCached,
    WriteCombined,
}

/// What the kernel must write into the hardware PTE of a valid page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HardwarePte {
    pub pfn: Pfn,
    pub writable: bool,
    pub executable: bool,
    pub cache: CacheType,
}

/// A summary line of `!vad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VadSummary {
    pub start: Vpn,
    pub end: Vpn,
    pub kind: RegionKind,
    pub allocation_protect: u32,
    pub committed_pages: u64,
}

fn round_up_page(x: u64) -> Option<u64> {
    x.checked_add(PAGE_SIZE - 1).map(|v| v & !(PAGE_SIZE - 1))
}

/// Highest address allowed by `ZeroBits` (`NtAllocateVirtualMemory`
/// parameter 3): 0 = no limit; 1..=21 = that many high bits of a 32-bit
/// address must be zero; >= 32 = a mask whose leading zeros must be zero
/// (x64); 22..=31 = `STATUS_INVALID_PARAMETER_3`.
pub fn zero_bits_limit(zero_bits: u64) -> Result<u64, NtStatus> {
    let limit = match zero_bits {
        0 => MM_HIGHEST_VAD_ADDRESS,
        1..=21 => (1u64 << (32 - zero_bits)) - 1,
        22..=31 => return Err(STATUS_INVALID_PARAMETER_3),
        z => u64::MAX >> z.leading_zeros(),
    };
    Ok(limit.min(MM_HIGHEST_VAD_ADDRESS))
}

/// `MMSUPPORT` + `VadRoot` of a process: its virtual address space.
#[derive(Clone, Debug, Default)]
pub struct AddressSpace {
    vads: VadTree<Region>,
    /// Private pages committed (`EPROCESS.CommitCharge`).
    commit_pages: u64,
}

impl AddressSpace {
    /// An empty address space.
    pub fn new() -> Self {
        Self::default()
    }

    /// `EPROCESS.CommitCharge` in pages.
    pub fn commit_charge(&self) -> u64 {
        self.commit_pages
    }

    /// The VAD tree (read-only), for `!vad`.
    pub fn vads(&self) -> &VadTree<Region> {
        &self.vads
    }

    /// `!vad`: one line per VAD.
    pub fn vad_summary(&self) -> Vec<VadSummary> {
        self.vads
            .iter()
            .map(|v| VadSummary {
                start: v.start,
                end: v.end,
                kind: v.data.kind,
                allocation_protect: v.data.allocation_protect,
                committed_pages: v.data.committed_pages(),
            })
            .collect()
    }

    /// `!vad` text in WinDbg's column layout.
    pub fn format_vads(&self) -> String {
        let mut s = String::from(
            "VPN              StartingVpn      EndingVpn        Commit  Type     Protect\n",
        );
        for v in self.vad_summary() {
            let kind = match v.kind {
                RegionKind::Private => "Private",
                RegionKind::Mapped { image: true, .. } => "Image  ",
                RegionKind::Mapped { .. } => "Mapped ",
            };
            let _ = writeln!(
                s,
                "{:016x} {:016x} {:016x} {:>6}  {}  {:#x}",
                v.start, v.start, v.end, v.committed_pages, kind, v.allocation_protect
            );
        }
        s
    }

    /// `!address`: every region from address 0 to `MM_HIGHEST_USER_ADDRESS`,
    /// as successive `NtQueryVirtualMemory` calls would report them.
    pub fn regions(&self) -> Vec<MemoryBasicInformation> {
        let mut out = Vec::new();
        let mut at = 0u64;
        while let Ok(info) = self.query_virtual_memory(at) {
            out.push(info);
            match at.checked_add(info.region_size) {
                Some(next) if info.region_size != 0 => at = next,
                _ => break,
            }
        }
        out
    }

    /// `NtAllocateVirtualMemory(Process, BaseAddress, ZeroBits, RegionSize,
    /// AllocationType, Protect)`. `base` and `size` are in/out as in NT: on
    /// success they receive the rounded region. Reservations start on a
    /// 64 KiB boundary (base rounded down) and end on a page boundary;
    /// commits are rounded to pages. `MEM_COMMIT` with a null base reserves
    /// too. Committing already-committed pages succeeds and applies the new
    /// protection; only newly committed pages are charged.
    ///
    /// `MEM_RESET`, `MEM_RESET_UNDO`, `MEM_PHYSICAL`, `MEM_LARGE_PAGES` and
    /// `MEM_WRITE_WATCH` are validated but return `STATUS_NOT_IMPLEMENTED`.
    pub fn allocate_virtual_memory(
        &mut self,
        commit: &CommitCharge,
        base: &mut u64,
        zero_bits: u64,
        size: &mut u64,
        allocation_type: u32,
        protect: u32,
    ) -> Result<(), NtStatus> {
        let highest = zero_bits_limit(zero_bits)?;
        const VALID: u32 = MEM_COMMIT
            | MEM_RESERVE
            | MEM_RESET
            | MEM_TOP_DOWN
            | MEM_WRITE_WATCH
            | MEM_PHYSICAL
            | MEM_RESET_UNDO
            | MEM_LARGE_PAGES;
        if allocation_type & !VALID != 0
            || allocation_type & (MEM_COMMIT | MEM_RESERVE | MEM_RESET | MEM_RESET_UNDO) == 0
        {
            return Err(STATUS_INVALID_PARAMETER_5);
        }
        let reset = allocation_type & (MEM_RESET | MEM_RESET_UNDO);
        if reset != 0
            && (reset == MEM_RESET | MEM_RESET_UNDO
                || allocation_type & !(reset | MEM_TOP_DOWN) != 0)
        {
            return Err(STATUS_INVALID_PARAMETER_5);
        }
        if allocation_type & MEM_LARGE_PAGES != 0 && allocation_type & MEM_COMMIT == 0 {
            return Err(STATUS_INVALID_PARAMETER_5);
        }
        if allocation_type & (MEM_WRITE_WATCH | MEM_PHYSICAL) != 0
            && allocation_type & MEM_RESERVE == 0
        {
            return Err(STATUS_INVALID_PARAMETER_5);
        }
        if !is_valid_protection(protect) || protection_copy_on_write(protect) {
            return Err(STATUS_INVALID_PAGE_PROTECTION);
        }
        if allocation_type
            & (MEM_RESET | MEM_RESET_UNDO | MEM_PHYSICAL | MEM_LARGE_PAGES | MEM_WRITE_WATCH)
            != 0
        {
            return Err(STATUS_NOT_IMPLEMENTED);
        }
        let (b, s) = (*base, *size);
        if b > MM_HIGHEST_VAD_ADDRESS {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
        if s == 0 || MM_HIGHEST_VAD_ADDRESS + 1 - b < s {
            return Err(STATUS_INVALID_PARAMETER_4);
        }
        if b != 0 && b < MM_LOWEST_USER_ADDRESS {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
        if b != 0 && b + s - 1 > highest {
            return Err(STATUS_INVALID_PARAMETER_3);
        }
        let commit_too = allocation_type & MEM_COMMIT != 0;
        if allocation_type & MEM_RESERVE != 0 || b == 0 {
            // MiReserve: find or check the range, then insert the VAD.
            let (start, end) = if b == 0 {
                let pages = round_up_page(s).ok_or(STATUS_INVALID_PARAMETER_4)? / PAGE_SIZE;
                let dir = if allocation_type & MEM_TOP_DOWN != 0 {
                    SearchDirection::TopDown
                } else {
                    SearchDirection::BottomUp
                };
                let start = self
                    .vads
                    .find_free(
                        pages,
                        GRANULARITY_PAGES,
                        MM_LOWEST_USER_ADDRESS / PAGE_SIZE,
                        highest / PAGE_SIZE,
                        dir,
                    )
                    .ok_or(STATUS_NO_MEMORY)?;
                (start, start + pages - 1)
            } else {
                let start = b & !(ALLOCATION_GRANULARITY - 1);
                let end = (b + s - 1) | (PAGE_SIZE - 1);
                if start < MM_LOWEST_USER_ADDRESS {
                    return Err(STATUS_INVALID_PARAMETER_2);
                }
                (start / PAGE_SIZE, end / PAGE_SIZE)
            };
            if self.vads.first_overlapping(start, end).is_some() {
                return Err(STATUS_CONFLICTING_ADDRESSES);
            }
            let pages = end - start + 1;
            if commit_too {
                commit.charge(pages)?;
                self.commit_pages += pages;
            }
            let region = Region::new(
                RegionKind::Private,
                pages,
                protect,
                if commit_too { protect } else { 0 },
            );
            self.vads
                .insert(start, end, region)
                .map_err(|_| STATUS_CONFLICTING_ADDRESSES)?;
            *base = start * PAGE_SIZE;
            *size = pages * PAGE_SIZE;
            return Ok(());
        }
        // MEM_COMMIT inside an existing reservation.
        let start = b / PAGE_SIZE;
        let end = (b + s - 1) / PAGE_SIZE;
        let vad = self
            .vads
            .find_mut(start)
            .ok_or(STATUS_CONFLICTING_ADDRESSES)?;
        if end > vad.end {
            return Err(STATUS_CONFLICTING_ADDRESSES);
        }
        let (a, z) = (start - vad.start, end - vad.start + 1);
        match vad.data.kind {
            RegionKind::Mapped {
                section_protect, ..
            } => {
                // Pagefile-backed sections are committed when created
                // (SEC_COMMIT); committing in a view only sets protection.
                if !section_allows(section_protect, protect) {
                    return Err(STATUS_SECTION_PROTECTION);
                }
            }
            RegionKind::Private => {
                let already = vad.data.protect.count(a, z, |p| p != 0);
                let new = (z - a) - already;
                commit.charge(new)?;
                self.commit_pages += new;
            }
        }
        vad.data.protect.set(a, z, protect);
        *base = start * PAGE_SIZE;
        *size = (end - start + 1) * PAGE_SIZE;
        Ok(())
    }

    /// `NtFreeVirtualMemory(Process, BaseAddress, RegionSize, FreeType)`.
    /// `MEM_RELEASE` with size 0 releases the whole reservation and requires
    /// `base` (rounded down to a page) to be its start
    /// (`STATUS_FREE_VM_NOT_AT_BASE`); with a size, the range must lie in
    /// one reservation (`STATUS_UNABLE_TO_FREE_VM`) and the VAD is trimmed
    /// or split, as the NT kernel allows (Win32 `VirtualFree` rejects
    /// `MEM_RELEASE` with a non-zero size before calling the kernel).
    /// `MEM_DECOMMIT` with size 0 decommits the whole reservation and
    /// returns a size of 0 (Windows 10 1803 and later). Views of sections
    /// are refused (`STATUS_UNABLE_TO_DELETE_SECTION`). Returns the frames
    /// the kernel must unmap and free.
    ///
    /// `MEM_COALESCE_PLACEHOLDERS` / `MEM_PRESERVE_PLACEHOLDER` return
    /// `STATUS_NOT_IMPLEMENTED`.
    pub fn free_virtual_memory(
        &mut self,
        commit: &CommitCharge,
        base: &mut u64,
        size: &mut u64,
        free_type: u32,
    ) -> Result<Vec<FreedFrame>, NtStatus> {
        let placeholder = MEM_COALESCE_PLACEHOLDERS | MEM_PRESERVE_PLACEHOLDER;
        if free_type & !(MEM_RELEASE | MEM_DECOMMIT | placeholder) != 0 {
            return Err(STATUS_INVALID_PARAMETER_4);
        }
        let op = free_type & (MEM_RELEASE | MEM_DECOMMIT);
        if op != MEM_RELEASE && op != MEM_DECOMMIT {
            return Err(STATUS_INVALID_PARAMETER_4);
        }
        if free_type & placeholder != 0 {
            if op != MEM_RELEASE {
                return Err(STATUS_INVALID_PARAMETER_4);
            }
            return Err(STATUS_NOT_IMPLEMENTED);
        }
        let (b, s) = (*base, *size);
        if b >= MM_HIGHEST_USER_ADDRESS {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
        if MM_HIGHEST_USER_ADDRESS - b < s {
            return Err(STATUS_INVALID_PARAMETER_3);
        }
        let start = b / PAGE_SIZE;
        let vad = self.vads.find(start).ok_or(STATUS_MEMORY_NOT_ALLOCATED)?;
        if matches!(vad.data.kind, RegionKind::Mapped { .. }) {
            return Err(STATUS_UNABLE_TO_DELETE_SECTION);
        }
        let (vstart, vend) = (vad.start, vad.end);
        let end = if s == 0 {
            if start != vstart {
                return Err(STATUS_FREE_VM_NOT_AT_BASE);
            }
            vend
        } else {
            let end = (b + s - 1) / PAGE_SIZE;
            if end > vend {
                return Err(STATUS_UNABLE_TO_FREE_VM);
            }
            end
        };
        let (a, z) = (start - vstart, end - vstart + 1);
        let mut freed = Vec::new();
        if op == MEM_DECOMMIT {
            let vad = self
                .vads
                .find_mut(start)
                .ok_or(STATUS_MEMORY_NOT_ALLOCATED)?;
            let uncharge = vad.data.protect.count(a, z, |p| p != 0);
            vad.data.protect.set(a, z, 0);
            let idx: Vec<u64> = vad.data.frames.range(a..z).map(|(&k, _)| k).collect();
            for k in idx {
                if let Some(frame) = vad.data.frames.remove(&k) {
                    freed.push(FreedFrame {
                        vpn: vstart + k,
                        frame,
                    });
                }
            }
            commit.uncharge(uncharge);
            self.commit_pages = self.commit_pages.saturating_sub(uncharge);
            *base = start * PAGE_SIZE;
            *size = if s == 0 { 0 } else { (z - a) * PAGE_SIZE };
            return Ok(freed);
        }
        // MEM_RELEASE: remove the VAD, put back what survives on either side.
        let vad = self
            .vads
            .remove(vstart)
            .ok_or(STATUS_MEMORY_NOT_ALLOCATED)?;
        let region = vad.data;
        let uncharge = region.protect.count(a, z, |p| p != 0);
        for (&k, &frame) in region.frames.range(a..z) {
            freed.push(FreedFrame {
                vpn: vstart + k,
                frame,
            });
        }
        let len = vend - vstart + 1;
        if a > 0 {
            self.vads
                .insert(vstart, vstart + a - 1, region.slice(0, a))
                .map_err(|_| STATUS_CONFLICTING_ADDRESSES)?;
        }
        if z < len {
            self.vads
                .insert(vstart + z, vend, region.slice(z, len))
                .map_err(|_| STATUS_CONFLICTING_ADDRESSES)?;
        }
        commit.uncharge(uncharge);
        self.commit_pages = self.commit_pages.saturating_sub(uncharge);
        *base = start * PAGE_SIZE;
        *size = (z - a) * PAGE_SIZE;
        Ok(freed)
    }

    /// `NtProtectVirtualMemory(Process, BaseAddress, RegionSize,
    /// NewProtect, OldProtect)`. The range (rounded to pages) must lie in one
    /// VAD (`STATUS_CONFLICTING_ADDRESSES`); private pages must all be
    /// committed (`STATUS_NOT_COMMITTED`) and cannot become copy-on-write
    /// (`STATUS_INVALID_PAGE_PROTECTION`); views are limited by the section's
    /// protection (`STATUS_SECTION_PROTECTION`). `old_protect` receives the
    /// first page's protection. Returns the valid pages whose hardware PTEs
    /// the kernel must rewrite.
    pub fn protect_virtual_memory(
        &mut self,
        base: &mut u64,
        size: &mut u64,
        mut new_protect: u32,
        old_protect: &mut u32,
    ) -> Result<Vec<Vpn>, NtStatus> {
        if !is_valid_protection(new_protect) {
            return Err(STATUS_INVALID_PAGE_PROTECTION);
        }
        let (b, s) = (*base, *size);
        if b > MM_HIGHEST_USER_ADDRESS {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
        if s == 0 || MM_HIGHEST_USER_ADDRESS - b < s {
            return Err(STATUS_INVALID_PARAMETER_3);
        }
        let start = b / PAGE_SIZE;
        let end = (b + s - 1) / PAGE_SIZE;
        let vad = self
            .vads
            .find_mut(start)
            .ok_or(STATUS_CONFLICTING_ADDRESSES)?;
        if end > vad.end {
            return Err(STATUS_CONFLICTING_ADDRESSES);
        }
        let (a, z) = (start - vad.start, end - vad.start + 1);
        match vad.data.kind {
            RegionKind::Private => {
                if protection_copy_on_write(new_protect) {
                    return Err(STATUS_INVALID_PAGE_PROTECTION);
                }
                if vad.data.protect.count(a, z, |p| p == 0) != 0 {
                    return Err(STATUS_NOT_COMMITTED);
                }
            }
            RegionKind::Mapped {
                section_protect,
                image,
                ..
            } => {
                // An image view's pages stay backed by the image file: a
                // writable protection becomes copy-on-write, as NT does.
                if image {
                    new_protect = match base_protection(new_protect) {
                        PAGE_READWRITE => (new_protect & !0xFF) | PAGE_WRITECOPY,
                        PAGE_EXECUTE_READWRITE => (new_protect & !0xFF) | PAGE_EXECUTE_WRITECOPY,
                        _ => new_protect,
                    };
                }
                if !section_allows(section_protect, new_protect) {
                    return Err(STATUS_SECTION_PROTECTION);
                }
            }
        }
        let old = vad.data.protect.get(a);
        vad.data.protect.set(a, z, new_protect);
        let vstart = vad.start;
        let touched = vad
            .data
            .frames
            .range(a..z)
            .filter(|(_, f)| matches!(f, Frame::Valid { .. }))
            .map(|(&k, _)| vstart + k)
            .collect();
        *old_protect = old;
        *base = start * PAGE_SIZE;
        *size = (end - start + 1) * PAGE_SIZE;
        Ok(touched)
    }

    /// `NtQueryVirtualMemory(..., MemoryBasicInformation, ...)`: the run of
    /// pages starting at `address`'s page with identical state, protection
    /// and allocation. Free memory reports `MEM_FREE`/`PAGE_NOACCESS` up to
    /// the next VAD. Addresses above `MM_HIGHEST_USER_ADDRESS` return
    /// `STATUS_INVALID_PARAMETER`.
    pub fn query_virtual_memory(&self, address: u64) -> Result<MemoryBasicInformation, NtStatus> {
        if address > MM_HIGHEST_USER_ADDRESS {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let vpn = address / PAGE_SIZE;
        if let Some(vad) = self.vads.find(vpn) {
            let i = vpn - vad.start;
            let protect = vad.data.protect.get(i);
            let run_end = vad.data.protect.run_end(i);
            let type_ = match vad.data.kind {
                RegionKind::Private => MEM_PRIVATE,
                RegionKind::Mapped { image: true, .. } => MEM_IMAGE,
                RegionKind::Mapped { .. } => MEM_MAPPED,
            };
            return Ok(MemoryBasicInformation {
                base_address: vpn * PAGE_SIZE,
                allocation_base: vad.start * PAGE_SIZE,
                allocation_protect: vad.data.allocation_protect,
                region_size: (run_end - i) * PAGE_SIZE,
                state: if protect == 0 {
                    MEM_RESERVE
                } else {
                    MEM_COMMIT
                },
                protect,
                type_,
            });
        }
        let next = self
            .vads
            .next_after(vpn)
            .map_or(MM_HIGHEST_USER_ADDRESS + 1, |v| v.start * PAGE_SIZE);
        Ok(MemoryBasicInformation {
            base_address: vpn * PAGE_SIZE,
            allocation_base: 0,
            allocation_protect: 0,
            region_size: next - vpn * PAGE_SIZE,
            state: MEM_FREE,
            protect: PAGE_NOACCESS,
            type_: 0,
        })
    }

    /// `MmAccessFault` (decision part) for a user-mode access to `va`.
    /// Order as NT: no VAD or not committed → access violation; a guard
    /// page loses its guard and raises `STATUS_GUARD_PAGE_VIOLATION`
    /// whatever the access; then the protection is checked (execute needs an
    /// `EXECUTE*` protection: NX is always on); then the PTE state decides.
    pub fn access(&mut self, va: u64, kind: AccessKind) -> FaultResolution {
        if va > MM_HIGHEST_USER_ADDRESS {
            return FaultResolution::AccessViolation;
        }
        let vpn = va / PAGE_SIZE;
        let Some(vad) = self.vads.find_mut(vpn) else {
            return FaultResolution::AccessViolation;
        };
        let i = vpn - vad.start;
        let protect = vad.data.protect.get(i);
        if protect == 0 {
            return FaultResolution::AccessViolation;
        }
        if protect & PAGE_GUARD != 0 {
            vad.data.protect.set(i, i + 1, protect & !PAGE_GUARD);
            return FaultResolution::GuardPage;
        }
        let allowed = match kind {
            AccessKind::Read => protection_readable(protect),
            AccessKind::Write => protection_writable(protect),
            AccessKind::Execute => protection_executable(protect),
        };
        if !allowed {
            return FaultResolution::AccessViolation;
        }
        match vad.data.frames.get_mut(&i) {
            Some(Frame::Valid {
                pfn,
                private,
                dirty,
            }) => {
                if kind == AccessKind::Write {
                    if protection_copy_on_write(protect) && !*private {
                        return FaultResolution::CopyOnWrite {
                            vpn,
                            shared_pfn: *pfn,
                        };
                    }
                    *dirty = true;
                }
                FaultResolution::AlreadyValid { pfn: *pfn }
            }
            Some(Frame::Transition { pfn, .. }) => FaultResolution::SoftFault { vpn, pfn: *pfn },
            Some(Frame::PagedOut { slot }) => FaultResolution::HardFault { vpn, slot: *slot },
            None => match vad.data.kind {
                RegionKind::Private => FaultResolution::DemandZero { vpn },
                RegionKind::Mapped {
                    section,
                    first_page,
                    ..
                } => FaultResolution::SectionPage {
                    vpn,
                    section,
                    page: first_page + i,
                },
            },
        }
    }

    /// Completes a demand-zero, soft, hard or section-page fault: `vpn` is
    /// now backed by `pfn` (valid). A soft fault must name the same frame.
    /// Returns the paging-file slot the kernel must now free: ntrs releases
    /// the paging-file copy as soon as the page is valid again, and treats
    /// the page as dirty from then on (NT keeps the copy until the page is
    /// next written). Fails with `STATUS_INVALID_PARAMETER` when the page
    /// is not committed or already valid, or `STATUS_CONFLICTING_ADDRESSES`
    /// when in transition to another frame.
    pub fn map_page(&mut self, vpn: Vpn, pfn: Pfn) -> Result<Option<u64>, NtStatus> {
        let vad = self.vads.find_mut(vpn).ok_or(STATUS_INVALID_PARAMETER)?;
        let i = vpn - vad.start;
        if vad.data.protect.get(i) == 0 {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let (dirty, slot) = match vad.data.frames.get(&i) {
            None => (false, None),
            Some(Frame::Transition {
                pfn: p,
                dirty,
                slot,
            }) if *p == pfn => (*dirty || slot.is_some(), *slot),
            Some(Frame::Transition { .. }) => return Err(STATUS_CONFLICTING_ADDRESSES),
            Some(Frame::PagedOut { slot }) => (true, Some(*slot)),
            Some(Frame::Valid { .. }) => return Err(STATUS_INVALID_PARAMETER),
        };
        // Only private frames are ever trimmed, so a frame coming back from
        // transition or the paging file in a view is a copy-on-write copy.
        let private = vad.data.kind == RegionKind::Private || vad.data.frames.contains_key(&i);
        vad.data.frames.insert(
            i,
            Frame::Valid {
                pfn,
                private,
                dirty,
            },
        );
        Ok(slot)
    }

    /// Modified page writer completion for one page (`MiWriteComplete`):
    /// the modified frame `pfn` of `vpn` was written to paging-file `slot`;
    /// the transition PTE records the slot and the page is clean. Call
    /// before `PfnDatabase::complete_write`. ntrs requires the write to
    /// complete before faults on the page are resolved (NT waits on the
    /// in-page event instead). `STATUS_INVALID_PARAMETER` if `vpn` is not a
    /// dirty transition page of frame `pfn`.
    pub fn page_written(&mut self, vpn: Vpn, pfn: Pfn, slot: u64) -> Result<(), NtStatus> {
        let vad = self.vads.find_mut(vpn).ok_or(STATUS_INVALID_PARAMETER)?;
        let i = vpn - vad.start;
        match vad.data.frames.get_mut(&i) {
            Some(Frame::Transition {
                pfn: p,
                dirty,
                slot: s,
            }) if *p == pfn && s.is_none() => {
                *dirty = false;
                *s = Some(slot);
                Ok(())
            }
            _ => Err(STATUS_INVALID_PARAMETER),
        }
    }

    /// Completes a copy-on-write fault: `new_pfn` holds the copy; the page
    /// becomes private and its protection `PAGE_READWRITE`
    /// (`PAGE_EXECUTE_READWRITE` for `PAGE_EXECUTE_WRITECOPY`), keeping
    /// modifiers. Returns the shared frame the view no longer maps.
    pub fn complete_copy_on_write(&mut self, vpn: Vpn, new_pfn: Pfn) -> Result<Pfn, NtStatus> {
        let vad = self.vads.find_mut(vpn).ok_or(STATUS_INVALID_PARAMETER)?;
        let i = vpn - vad.start;
        let old = match vad.data.frames.get(&i) {
            Some(Frame::Valid {
                pfn,
                private: false,
                ..
            }) => *pfn,
            _ => return Err(STATUS_INVALID_PARAMETER),
        };
        let protect = vad.data.protect.get(i);
        let new_protect = match base_protection(protect) {
            PAGE_WRITECOPY => PAGE_READWRITE,
            PAGE_EXECUTE_WRITECOPY => PAGE_EXECUTE_READWRITE,
            _ => return Err(STATUS_INVALID_PARAMETER),
        } | (protect & !0xFF);
        vad.data.protect.set(i, i + 1, new_protect);
        vad.data.frames.insert(
            i,
            Frame::Valid {
                pfn: new_pfn,
                private: true,
                dirty: true,
            },
        );
        Ok(old)
    }

    /// Working-set trim of one page (`MiFreeWsle` → transition PTE): a valid
    /// private page becomes a transition page. `hardware_dirty` is the PTE's
    /// dirty bit. Returns the frame and whether it is dirty (→ modified list)
    /// or clean (→ standby list). Shared section pages are not trimmed here
    /// (returns `None`).
    pub fn trim_page(&mut self, vpn: Vpn, hardware_dirty: bool) -> Option<(Pfn, bool)> {
        let vad = self.vads.find_mut(vpn)?;
        let i = vpn - vad.start;
        match vad.data.frames.get(&i).copied() {
            Some(Frame::Valid {
                pfn,
                private: true,
                dirty,
            }) => {
                let dirty = dirty || hardware_dirty;
                vad.data.frames.insert(
                    i,
                    Frame::Transition {
                        pfn,
                        dirty,
                        slot: None,
                    },
                );
                Some((pfn, dirty))
            }
            _ => None,
        }
    }

    /// The transition page at `vpn` was repurposed (standby page taken by
    /// `allocate_page`): the PTE becomes a paging-file PTE if the page was
    /// written to the paging file, else demand-zero again (a clean page that
    /// was never written holds zeros). Returns whether there was such a page.
    pub fn page_repurposed(&mut self, vpn: Vpn) -> bool {
        let Some(vad) = self.vads.find_mut(vpn) else {
            return false;
        };
        let i = vpn - vad.start;
        match vad.data.frames.get(&i).copied() {
            Some(Frame::Transition {
                slot: Some(slot), ..
            }) => {
                vad.data.frames.insert(i, Frame::PagedOut { slot });
                true
            }
            Some(Frame::Transition { slot: None, .. }) => {
                vad.data.frames.remove(&i);
                true
            }
            _ => false,
        }
    }

    /// The frame state of a page (for `!pte` and tests).
    pub fn frame(&self, vpn: Vpn) -> Option<Frame> {
        let vad = self.vads.find(vpn)?;
        vad.data.frames.get(&(vpn - vad.start)).copied()
    }

    /// What the hardware PTE of `vpn` must contain: `None` means not present
    /// (no frame, transition, guard page or `PAGE_NOACCESS`). Copy-on-write
    /// pages still shared are mapped read-only so the first write faults.
    pub fn hardware_pte(&self, vpn: Vpn) -> Option<HardwarePte> {
        let vad = self.vads.find(vpn)?;
        let i = vpn - vad.start;
        let protect = vad.data.protect.get(i);
        let Some(Frame::Valid { pfn, private, .. }) = vad.data.frames.get(&i) else {
            return None;
        };
        if protect & PAGE_GUARD != 0 || !protection_readable(protect) {
            return None;
        }
        let writable =
            protection_writable(protect) && (*private || !protection_copy_on_write(protect));
        Some(HardwarePte {
            pfn: *pfn,
            writable,
            executable: protection_executable(protect),
            cache: if protect & PAGE_NOCACHE != 0 {
                CacheType::NonCached
            } else if protect & PAGE_WRITECOMBINE != 0 {
                CacheType::WriteCombined
            } else {
                CacheType::Cached
            },
        })
    }

    /// Removes every VAD, uncharges private commitment and returns every
    /// frame. Views must be unmapped first (their sections count views):
    /// process exit should use `SectionTable::delete_address_space`.
    pub fn delete_all(&mut self, commit: &CommitCharge) -> Vec<FreedFrame> {
        let starts: Vec<Vpn> = self.vads.iter().map(|v| v.start).collect();
        let mut freed = Vec::new();
        for s in starts {
            if let Some(v) = self.vads.remove(s) {
                for (&k, &frame) in &v.data.frames {
                    freed.push(FreedFrame { vpn: s + k, frame });
                }
                if v.data.kind == RegionKind::Private {
                    commit.uncharge(v.data.committed_pages());
                }
            }
        }
        self.commit_pages = 0;
        freed
    }

    /// Inserts a view VAD (used by `section::map_view_of_section`).
    pub(crate) fn insert_view(
        &mut self,
        start: Vpn,
        end: Vpn,
        region: Region,
    ) -> Result<(), NtStatus> {
        self.vads
            .insert(start, end, region)
            .map_err(|_| STATUS_CONFLICTING_ADDRESSES)
    }

    /// Removes the view containing `vpn` (used by `section::unmap_view_of_section`).
    pub(crate) fn remove_view(&mut self, vpn: Vpn) -> Result<Vad<Region>, NtStatus> {
        let vad = self.vads.find(vpn).ok_or(STATUS_NOT_MAPPED_VIEW)?;
        if !matches!(vad.data.kind, RegionKind::Mapped { .. }) {
            return Err(STATUS_NOT_MAPPED_VIEW);
        }
        let start = vad.start;
        self.vads.remove(start).ok_or(STATUS_NOT_MAPPED_VIEW)
    }

    pub(crate) fn find_free_range(
        &self,
        pages: u64,
        highest: u64,
        dir: SearchDirection,
    ) -> Option<Vpn> {
        self.vads.find_free(
            pages,
            GRANULARITY_PAGES,
            MM_LOWEST_USER_ADDRESS / PAGE_SIZE,
            highest / PAGE_SIZE,
            dir,
        )
    }

    pub(crate) fn range_is_free(&self, start: Vpn, end: Vpn) -> bool {
        self.vads.first_overlapping(start, end).is_none()
    }
}

impl Region {
    /// A view region (all pages committed with `protect`).
    pub(crate) fn view(
        section: u32,
        first_page: u64,
        section_protect: u32,
        pages: u64,
        protect: u32,
    ) -> Self {
        Region::new(
            RegionKind::Mapped {
                section,
                first_page,
                section_protect,
                image: false,
            },
            pages,
            protect,
            protect,
        )
    }

    /// A view of a whole image section: `runs` gives each page's
    /// protection (`(first page, pages, protect)`, covering `pages`);
    /// `AllocationProtect` is `PAGE_EXECUTE_WRITECOPY` as NT reports for
    /// images.
    pub(crate) fn image_view(section: u32, pages: u64, runs: &[(u64, u64, u32)]) -> Self {
        let mut r = Region::new(
            RegionKind::Mapped {
                section,
                first_page: 0,
                section_protect: PAGE_EXECUTE_WRITECOPY,
                image: true,
            },
            pages,
            PAGE_EXECUTE_WRITECOPY,
            PAGE_NOACCESS,
        );
        for &(first, n, protect) in runs {
            let end = first.saturating_add(n).min(pages);
            if first < end {
                r.protect.set(first, end, protect);
            }
        }
        r
    }

    /// The frames of the region with their page index.
    pub fn frames(&self) -> impl Iterator<Item = (u64, Frame)> + '_ {
        self.frames.iter().map(|(&k, &f)| (k, f))
    }
}

/// `MiIsProtectionCompatible`: may a view of a section created with
/// `section_protect` use `protect`? Write needs a writable section (or a
/// copy-on-write request on a readable one), execute needs an executable
/// section.
pub fn section_allows(section_protect: u32, protect: u32) -> bool {
    let p = base_protection(protect);
    let sw = matches!(
        base_protection(section_protect),
        PAGE_READWRITE | PAGE_EXECUTE_READWRITE
    );
    let sx = protection_executable(section_protect);
    let writes = matches!(p, PAGE_READWRITE | PAGE_EXECUTE_READWRITE);
    let cow = protection_copy_on_write(p);
    (!writes || sw)
        && (!cow || protection_readable(section_protect))
        && (!protection_executable(p) || sx)
}

#[cfg(test)]
mod tests;
