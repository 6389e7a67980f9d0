//! The PFN database (*Windows Internals* 7th ed., Part 1, ch. 5, "Page frame
//! number database"): one [`PfnEntry`] per physical page, recording its state,
//! share and reference counts and its owner (the PTE that maps it), and the
//! page lists (zeroed, free, standby, modified, modified-no-write, bad) kept as
//! doubly-linked lists threaded through the entries by index, exactly as NT
//! threads `MMPFN.u1.Flink` / `MMPFN.u2.Blink`.
//!
//! The database is pure bookkeeping: it never touches the pages. The kernel
//! zeroes pages, writes PTEs and, when a standby page is repurposed, uses the
//! [`Repurposed`] report to turn the previous owner's transition PTE back
//! into a demand-zero/paging-file PTE.
//!
//! State diagram as implemented (see docs/mm.md):
//!
//! ```text
//!  Free ──take_free_for_zeroing──► (Active, being zeroed) ──insert_zeroed──► Zeroed
//!  Zeroed/Free/Standby ──allocate_page──► Active
//!  Active ──free_page──► Free
//!  Active ──make_standby──► Standby ──soft_fault──► Active
//!  Active ──make_modified──► Modified ──soft_fault──► Active
//!  Modified ──begin_write──► Transition ──complete_write──► Standby
//!  Active (no file) ──make_modified_no_write──► ModifiedNoWrite ──soft_fault──► Active
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use nt::arc::{MemoryDescriptor, MemoryType};

use crate::Pfn;

/// Largest database ntrs builds (2^28 pages = 1 TiB of physical memory);
/// descriptors beyond this are rejected rather than allocating absurd tables.
pub const MAX_PFN_DATABASE_PAGES: u64 = 1 << 28;

const NIL: u32 = u32::MAX;

/// `MMLISTS`: where a page is (the `PageLocation` field of `MMPFN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PageState {
    /// `ZeroedPageList`: free and known to be zero.
    Zeroed,
    /// `FreePageList`: free, contents undefined.
    Free,
    /// `StandbyPageList`: removed from a working set, clean; can be soft
    /// faulted back or repurposed.
    Standby,
    /// `ModifiedPageList`: removed from a working set, dirty; must be written
    /// to its backing store before reuse.
    Modified,
    /// `ModifiedNoWritePageList`: dirty, but must not be written yet.
    ModifiedNoWrite,
    /// `BadPageList`: failed or firmware-reserved memory, never used.
    Bad,
    /// `ActiveAndValid`: in use (mapped by a valid PTE, or owned by the system).
    Active,
    /// `TransitionPage`: in-flight paging I/O (here: modified page being written).
    Transition,
    /// ntrs addition: a PFN inside the database's range that no descriptor
    /// describes (a hole in physical memory). Never allocated.
    NotPresent,
}

impl PageState {
    /// The name WinDbg's `!pfn` prints.
    pub fn name(self) -> &'static str {
        match self {
            PageState::Zeroed => "Zeroed",
            PageState::Free => "Free",
            PageState::Standby => "Standby",
            PageState::Modified => "Modified",
            PageState::ModifiedNoWrite => "ModifiedNoWrite",
            PageState::Bad => "Bad",
            PageState::Active => "Active",
            PageState::Transition => "Transition",
            PageState::NotPresent => "NotPresent",
        }
    }

    fn list_index(self) -> Option<usize> {
        match self {
            PageState::Zeroed => Some(0),
            PageState::Free => Some(1),
            PageState::Standby => Some(2),
            PageState::Modified => Some(3),
            PageState::ModifiedNoWrite => Some(4),
            PageState::Bad => Some(5),
            _ => None,
        }
    }
}

const LIST_STATES: [PageState; 6] = [
    PageState::Zeroed,
    PageState::Free,
    PageState::Standby,
    PageState::Modified,
    PageState::ModifiedNoWrite,
    PageState::Bad,
];

/// `MMPFN`: one physical page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PfnEntry {
    /// `u3.e1.PageLocation`.
    pub state: PageState,
    /// `u2.ShareCount`: number of PTEs mapping the page (active pages).
    pub share_count: u32,
    /// `u3.e2.ReferenceCount`: 1 while the page is active, plus I/O or lock references.
    pub reference_count: u32,
    /// `PteAddress`: the PTE (or an opaque owner cookie chosen by the kernel)
    /// that maps or last mapped this page. 0 = system page with no PTE owner.
    pub pte_address: u64,
    /// `OriginalPte`: for standby/modified/transition pages, the PTE contents
    /// to restore in the owner when the page is repurposed.
    pub original_pte: u64,
    /// `u3.e1.Modified`: the page is dirty with respect to its backing store.
    pub modified: bool,
    /// The zero page thread has removed the page from the free list and is
    /// zeroing it (between `take_free_for_zeroing` and `insert_zeroed`).
    pub being_zeroed: bool,
    /// `u1.Flink` (list successor), `NIL` when not on a list.
    flink: u32,
    /// `u2.Blink` (list predecessor).
    blink: u32,
}

impl PfnEntry {
    const fn new(state: PageState) -> Self {
        PfnEntry {
            state,
            share_count: 0,
            reference_count: 0,
            pte_address: 0,
            original_pte: 0,
            modified: false,
            being_zeroed: false,
            flink: NIL,
            blink: NIL,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ListHead {
    count: u64,
    head: u32,
    tail: u32,
}

/// Page-list counts, as `!memusage` / `!vm` print them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListCounts {
    pub zeroed: u64,
    pub free: u64,
    pub standby: u64,
    pub modified: u64,
    pub modified_no_write: u64,
    pub bad: u64,
    pub active: u64,
    pub transition: u64,
    /// Pages described by a descriptor (everything but `NotPresent`).
    pub total: u64,
}

impl ListCounts {
    /// `MmAvailablePages`: zeroed + free + standby.
    pub fn available(&self) -> u64 {
        self.zeroed + self.free + self.standby
    }
}

impl fmt::Display for ListCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  Zeroed:            {:>8} ({:>8} kb)",
            self.zeroed,
            self.zeroed * 4
        )?;
        writeln!(
            f,
            "  Free:              {:>8} ({:>8} kb)",
            self.free,
            self.free * 4
        )?;
        writeln!(
            f,
            "  Standby:           {:>8} ({:>8} kb)",
            self.standby,
            self.standby * 4
        )?;
        writeln!(
            f,
            "  Modified:          {:>8} ({:>8} kb)",
            self.modified,
            self.modified * 4
        )?;
        writeln!(
            f,
            "  ModifiedNoWrite:   {:>8} ({:>8} kb)",
            self.modified_no_write,
            self.modified_no_write * 4
        )?;
        writeln!(
            f,
            "  Active/Valid:      {:>8} ({:>8} kb)",
            self.active,
            self.active * 4
        )?;
        writeln!(
            f,
            "  Transition:        {:>8} ({:>8} kb)",
            self.transition,
            self.transition * 4
        )?;
        writeln!(
            f,
            "  Bad:               {:>8} ({:>8} kb)",
            self.bad,
            self.bad * 4
        )?;
        write!(
            f,
            "  TOTAL:             {:>8} ({:>8} kb)",
            self.total,
            self.total * 4
        )
    }
}

/// Errors of PFN database operations. In the kernel most of these are
/// `PFN_LIST_CORRUPT` (0x4E) bug checks; the host returns them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PfnError {
    /// A descriptor reaches beyond [`MAX_PFN_DATABASE_PAGES`] or overflows.
    TooLarge { base_page: u64, page_count: u64 },
    /// Two descriptors describe the same page.
    Overlap { pfn: Pfn },
    /// The PFN is outside the database.
    InvalidPfn(Pfn),
    /// The page is not in the state the operation requires.
    WrongState { pfn: Pfn, state: PageState },
    /// No page is available (zeroed, free and standby lists are empty).
    NoPages,
    /// Low/high limits are inverted or outside the database.
    InvalidRange,
}

impl fmt::Display for PfnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PfnError::TooLarge {
                base_page,
                page_count,
            } => write!(
                f,
                "memory descriptor {base_page:#x}+{page_count:#x} pages is out of range"
            ),
            PfnError::Overlap { pfn } => write!(f, "memory descriptors overlap at PFN {pfn:#x}"),
            PfnError::InvalidPfn(p) => write!(f, "PFN {p:#x} is outside the PFN database"),
            PfnError::WrongState { pfn, state } => {
                write!(f, "PFN {pfn:#x} is in state {}", state.name())
            }
            PfnError::NoPages => write!(f, "no physical pages available"),
            PfnError::InvalidRange => write!(f, "invalid physical page range"),
        }
    }
}

/// What the previous owner of a repurposed standby page must be told: write
/// `original_pte` into the PTE at `pte_address` (the transition PTE becomes a
/// demand-zero or paging-file PTE again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repurposed {
    pub pte_address: u64,
    pub original_pte: u64,
}

/// Result of [`PfnDatabase::allocate_page`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocatedPage {
    pub pfn: Pfn,
    /// The page came from the free or standby list: the kernel must zero it
    /// before handing it to anyone who was promised a zero page.
    pub needs_zeroing: bool,
    /// Set when a standby page was taken from its previous owner.
    pub repurposed: Option<Repurposed>,
}

/// Which list `allocate_page` should try first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocationPreference {
    /// `MiRemoveZeroPage`: zeroed, then free, then standby.
    Zeroed,
    /// `MiRemoveAnyPage`: free, then zeroed, then standby (the caller
    /// overwrites the page anyway, so zeroed pages are spared).
    Any,
}

/// How [`PfnDatabase::from_descriptors`] treats a loader memory type.
pub fn initial_state(memory_type: MemoryType) -> PageState {
    if memory_type == MemoryType::Bad {
        PageState::Bad
    } else if memory_type.is_reclaimable() {
        PageState::Free
    } else {
        PageState::Active
    }
}

/// `MmPfnDatabase` plus the list heads (`MmZeroedPageListHead`,
/// `MmFreePageListHead`, `MmStandbyPageListHead`, `MmModifiedPageListHead`,
/// `MmModifiedNoWritePageListHead`, `MmBadPageListHead`).
#[derive(Clone, Debug)]
pub struct PfnDatabase {
    entries: Vec<PfnEntry>,
    lists: [ListHead; 6],
    active: u64,
    transition: u64,
    present: u64,
}

impl PfnDatabase {
    /// `MiInitializePfnDatabase`: one entry per page from PFN 0 to the highest
    /// described page. Reclaimable loader memory ([`MemoryType::is_reclaimable`]:
    /// `LoaderFree`, `LoaderLoadedProgram`, `LoaderFirmwareTemporary`,
    /// `LoaderOsloaderStack`) goes to the free list, `LoaderBad` to the bad
    /// list, everything else (firmware, kernel image, loader data) is active
    /// with share and reference count 1 and no PTE owner. Holes are `NotPresent`.
    pub fn from_descriptors(descriptors: &[MemoryDescriptor]) -> Result<Self, PfnError> {
        let mut highest: u64 = 0;
        for d in descriptors {
            let end = d
                .base_page
                .checked_add(d.page_count)
                .filter(|&e| e <= MAX_PFN_DATABASE_PAGES)
                .ok_or(PfnError::TooLarge {
                    base_page: d.base_page,
                    page_count: d.page_count,
                })?;
            highest = highest.max(end);
        }
        let mut entries = Vec::new();
        entries
            .try_reserve_exact(highest as usize)
            .map_err(|_| PfnError::TooLarge {
                base_page: 0,
                page_count: highest,
            })?;
        entries.resize(highest as usize, PfnEntry::new(PageState::NotPresent));
        let mut db = PfnDatabase {
            entries,
            lists: [ListHead {
                count: 0,
                head: NIL,
                tail: NIL,
            }; 6],
            active: 0,
            transition: 0,
            present: 0,
        };
        for d in descriptors {
            let state = initial_state(d.memory_type);
            for pfn in d.base_page..d.base_page + d.page_count {
                let i = pfn as usize;
                if db.entries[i].state != PageState::NotPresent {
                    return Err(PfnError::Overlap { pfn });
                }
                db.present += 1;
                match state {
                    PageState::Active => {
                        let e = &mut db.entries[i];
                        e.state = PageState::Active;
                        e.share_count = 1;
                        e.reference_count = 1;
                        db.active += 1;
                    }
                    s => db.insert_tail(s, i as u32),
                }
            }
        }
        Ok(db)
    }

    /// Number of entries (highest PFN + 1).
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Whether the database has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for `pfn` (`MI_PFN_ELEMENT`), for `!pfn`.
    pub fn entry(&self, pfn: Pfn) -> Option<&PfnEntry> {
        usize::try_from(pfn).ok().and_then(|i| self.entries.get(i))
    }

    /// `!pfn <pfn>`: a one-line dump in the spirit of WinDbg's.
    pub fn dump(&self, pfn: Pfn) -> Option<String> {
        let e = self.entry(pfn)?;
        Some(alloc::format!(
            "    PFN {:08X} at address {:016X}\n    flink       {:08X}  blink / share count {:08X}  pteaddress {:016X}\n    reference count {:04X}    {:<16} original PTE {:016X}{}{}",
            pfn,
            pfn * core::mem::size_of::<PfnEntry>() as u64,
            if e.flink == NIL { 0 } else { e.flink },
            if e.state == PageState::Active { e.share_count } else if e.blink == NIL { 0 } else { e.blink },
            e.pte_address,
            e.reference_count,
            e.state.name(),
            e.original_pte,
            if e.modified { " Modified" } else { "" },
            if e.being_zeroed { " BeingZeroed" } else { "" },
        ))
    }

    /// Page counts per list (`!memusage`).
    pub fn counts(&self) -> ListCounts {
        ListCounts {
            zeroed: self.lists[0].count,
            free: self.lists[1].count,
            standby: self.lists[2].count,
            modified: self.lists[3].count,
            modified_no_write: self.lists[4].count,
            bad: self.lists[5].count,
            active: self.active,
            transition: self.transition,
            total: self.present,
        }
    }

    /// `MmAvailablePages`.
    pub fn available_pages(&self) -> u64 {
        self.counts().available()
    }

    /// The PFNs on a list, head first (for `!memusage` details and tests).
    pub fn list(&self, state: PageState) -> Vec<Pfn> {
        let mut out = Vec::new();
        if let Some(li) = state.list_index() {
            let mut cur = self.lists[li].head;
            while cur != NIL && out.len() as u64 <= self.lists[li].count {
                out.push(cur as Pfn);
                cur = self.entries[cur as usize].flink;
            }
        }
        out
    }

    fn index(&self, pfn: Pfn) -> Result<usize, PfnError> {
        usize::try_from(pfn)
            .ok()
            .filter(|&i| i < self.entries.len())
            .ok_or(PfnError::InvalidPfn(pfn))
    }

    fn expect(&self, pfn: Pfn, states: &[PageState]) -> Result<usize, PfnError> {
        let i = self.index(pfn)?;
        let state = self.entries[i].state;
        if states.contains(&state) && !self.entries[i].being_zeroed {
            Ok(i)
        } else {
            Err(PfnError::WrongState { pfn, state })
        }
    }

    /// `MiInsertPageInList` (at the tail).
    fn insert_tail(&mut self, state: PageState, i: u32) {
        let li = state.list_index().expect("list state");
        let tail = self.lists[li].tail;
        {
            let e = &mut self.entries[i as usize];
            e.state = state;
            e.flink = NIL;
            e.blink = tail;
        }
        if tail == NIL {
            self.lists[li].head = i;
        } else {
            self.entries[tail as usize].flink = i;
        }
        self.lists[li].tail = i;
        self.lists[li].count += 1;
    }

    /// `MiUnlinkPageFromList`. The caller sets the new state.
    fn unlink(&mut self, i: u32) {
        let state = self.entries[i as usize].state;
        let li = state.list_index().expect("page on a list");
        let (fl, bl) = (
            self.entries[i as usize].flink,
            self.entries[i as usize].blink,
        );
        if bl == NIL {
            self.lists[li].head = fl;
        } else {
            self.entries[bl as usize].flink = fl;
        }
        if fl == NIL {
            self.lists[li].tail = bl;
        } else {
            self.entries[fl as usize].blink = bl;
        }
        self.lists[li].count -= 1;
        let e = &mut self.entries[i as usize];
        e.flink = NIL;
        e.blink = NIL;
    }

    fn remove_head(&mut self, state: PageState) -> Option<u32> {
        let li = state.list_index()?;
        let h = self.lists[li].head;
        if h == NIL {
            return None;
        }
        self.unlink(h);
        Some(h)
    }

    /// Turns an unlinked page into an active one owned by `pte_address`
    /// (`MiInitializePfn`).
    fn activate(&mut self, i: u32, pte_address: u64) {
        let e = &mut self.entries[i as usize];
        e.state = PageState::Active;
        e.share_count = 1;
        e.reference_count = 1;
        e.pte_address = pte_address;
        e.original_pte = 0;
        e.modified = false;
        self.active += 1;
    }

    /// `MiRemoveZeroPage` / `MiRemoveAnyPage` followed by `MiInitializePfn`:
    /// takes a page for `pte_address` (the PTE that will map it, or an owner
    /// cookie). Standby pages are repurposed last; the report tells the caller
    /// which PTE to fix up.
    pub fn allocate_page(
        &mut self,
        pte_address: u64,
        preference: AllocationPreference,
    ) -> Result<AllocatedPage, PfnError> {
        let order: [PageState; 3] = match preference {
            AllocationPreference::Zeroed => {
                [PageState::Zeroed, PageState::Free, PageState::Standby]
            }
            AllocationPreference::Any => [PageState::Free, PageState::Zeroed, PageState::Standby],
        };
        for state in order {
            if let Some(i) = self.remove_head(state) {
                let repurposed = if state == PageState::Standby {
                    let e = &self.entries[i as usize];
                    Some(Repurposed {
                        pte_address: e.pte_address,
                        original_pte: e.original_pte,
                    })
                } else {
                    None
                };
                self.activate(i, pte_address);
                return Ok(AllocatedPage {
                    pfn: i as Pfn,
                    needs_zeroing: state != PageState::Zeroed,
                    repurposed,
                });
            }
        }
        Err(PfnError::NoPages)
    }

    /// `MiUnlinkFreeOrZeroedPage` + `MiInitializePfn`: takes a specific page
    /// off the zeroed or free list (for memory the kernel used before the
    /// database existed, e.g. the pages holding the database itself, or a
    /// page a device requires). Returns whether it was zeroed.
    pub fn claim_page(&mut self, pfn: Pfn, pte_address: u64) -> Result<bool, PfnError> {
        let i = self.expect(pfn, &[PageState::Zeroed, PageState::Free])?;
        let zeroed = self.entries[i].state == PageState::Zeroed;
        self.unlink(i as u32);
        self.activate(i as u32, pte_address);
        Ok(zeroed)
    }

    /// `MmAllocatePagesForMdl`: up to `count` pages with `low <= pfn <= high`,
    /// taken from the zeroed list, then the free list (no standby
    /// repurposing). Like NT it may return fewer pages than asked for; the
    /// boolean says whether the page still needs zeroing.
    pub fn allocate_pages_for_mdl(
        &mut self,
        low: Pfn,
        high: Pfn,
        count: u64,
        pte_address: u64,
    ) -> Result<Vec<(Pfn, bool)>, PfnError> {
        if low > high || low >= self.len() {
            return Err(PfnError::InvalidRange);
        }
        let mut out = Vec::new();
        for state in [PageState::Zeroed, PageState::Free] {
            let li = state.list_index().expect("list");
            let mut cur = self.lists[li].head;
            while cur != NIL && (out.len() as u64) < count {
                let next = self.entries[cur as usize].flink;
                let pfn = cur as Pfn;
                if pfn >= low && pfn <= high {
                    self.unlink(cur);
                    self.activate(cur, pte_address);
                    out.push((pfn, state != PageState::Zeroed));
                }
                cur = next;
            }
        }
        Ok(out)
    }

    /// `MmFreePagesFromMdl` / the last `MiDecrementShareCount` of a deleted
    /// page: an active page goes to the free list.
    pub fn free_page(&mut self, pfn: Pfn) -> Result<(), PfnError> {
        let i = self.expect(pfn, &[PageState::Active])?;
        let e = &mut self.entries[i];
        e.share_count = 0;
        e.reference_count = 0;
        e.pte_address = 0;
        e.original_pte = 0;
        e.modified = false;
        self.active -= 1;
        self.insert_tail(PageState::Free, i as u32);
        Ok(())
    }

    /// Another PTE maps this active page (`MiIncrementShareCount`-like: a
    /// shared section page mapped by a further view).
    pub fn add_share(&mut self, pfn: Pfn) -> Result<u32, PfnError> {
        let i = self.expect(pfn, &[PageState::Active])?;
        let e = &mut self.entries[i];
        e.share_count = e.share_count.saturating_add(1);
        Ok(e.share_count)
    }

    /// One PTE stopped mapping the page. Returns the remaining share count;
    /// at 0 the caller decides between [`Self::free_page`],
    /// [`Self::make_standby`] and [`Self::make_modified`]. Never goes below 1
    /// here: the last share is dropped by those transitions.
    pub fn remove_share(&mut self, pfn: Pfn) -> Result<u32, PfnError> {
        let i = self.expect(pfn, &[PageState::Active])?;
        let e = &mut self.entries[i];
        if e.share_count > 1 {
            e.share_count -= 1;
            Ok(e.share_count)
        } else {
            Ok(0)
        }
    }

    fn deactivate_to(
        &mut self,
        pfn: Pfn,
        original_pte: u64,
        state: PageState,
    ) -> Result<(), PfnError> {
        let i = self.expect(pfn, &[PageState::Active])?;
        let e = &mut self.entries[i];
        e.share_count = 0;
        e.reference_count = 0;
        e.original_pte = original_pte;
        e.modified = matches!(state, PageState::Modified | PageState::ModifiedNoWrite);
        self.active -= 1;
        self.insert_tail(state, i as u32);
        Ok(())
    }

    /// Working-set trim of a clean page: active → standby. `original_pte` is
    /// what the owner's PTE must become if the page is repurposed.
    pub fn make_standby(&mut self, pfn: Pfn, original_pte: u64) -> Result<(), PfnError> {
        self.deactivate_to(pfn, original_pte, PageState::Standby)
    }

    /// Working-set trim of a dirty page: active → modified.
    pub fn make_modified(&mut self, pfn: Pfn, original_pte: u64) -> Result<(), PfnError> {
        self.deactivate_to(pfn, original_pte, PageState::Modified)
    }

    /// Dirty page that must not be written yet: active → modified-no-write.
    pub fn make_modified_no_write(&mut self, pfn: Pfn, original_pte: u64) -> Result<(), PfnError> {
        self.deactivate_to(pfn, original_pte, PageState::ModifiedNoWrite)
    }

    /// Soft fault (`MiResolveTransitionFault`): a standby or modified page
    /// goes back into its owner's working set (active, share count 1). The
    /// modified flag is kept so a later trim puts it back on the modified list.
    pub fn soft_fault(&mut self, pfn: Pfn) -> Result<(), PfnError> {
        let i = self.expect(
            pfn,
            &[
                PageState::Standby,
                PageState::Modified,
                PageState::ModifiedNoWrite,
            ],
        )?;
        let modified = self.entries[i].modified;
        let pte = self.entries[i].pte_address;
        self.unlink(i as u32);
        self.activate(i as u32, pte);
        self.entries[i].modified = modified;
        Ok(())
    }

    /// `MiDeletePte` of a transition PTE: the page's owner is gone (decommit,
    /// release, process exit) while the page sat on the standby or modified
    /// list; it goes straight to the free list.
    pub fn free_transition_page(&mut self, pfn: Pfn) -> Result<(), PfnError> {
        let i = self.expect(
            pfn,
            &[
                PageState::Standby,
                PageState::Modified,
                PageState::ModifiedNoWrite,
            ],
        )?;
        self.unlink(i as u32);
        let e = &mut self.entries[i];
        e.pte_address = 0;
        e.original_pte = 0;
        e.modified = false;
        self.insert_tail(PageState::Free, i as u32);
        Ok(())
    }

    /// Modified page writer (`MiGatherPagefilePages`): takes the first page
    /// of the modified list for writing; it is in transition until the write
    /// completes.
    pub fn begin_write(&mut self) -> Option<Pfn> {
        let i = self.remove_head(PageState::Modified)?;
        self.entries[i as usize].state = PageState::Transition;
        self.entries[i as usize].reference_count = 1;
        self.transition += 1;
        Some(i as Pfn)
    }

    /// A paging write failed or could not start: the page goes back to the
    /// modified list, still dirty.
    pub fn abort_write(&mut self, pfn: Pfn) -> Result<(), PfnError> {
        let i = self.expect(pfn, &[PageState::Transition])?;
        self.transition -= 1;
        self.entries[i].reference_count = 0;
        self.entries[i].modified = true;
        self.insert_tail(PageState::Modified, i as u32);
        Ok(())
    }

    /// `MiWriteComplete`: the page is clean now; it goes to standby with the
    /// owner's new `original_pte` (the paging-file PTE).
    pub fn complete_write(&mut self, pfn: Pfn, original_pte: u64) -> Result<(), PfnError> {
        let i = self.expect(pfn, &[PageState::Transition])?;
        self.transition -= 1;
        let e = &mut self.entries[i];
        e.reference_count = 0;
        e.modified = false;
        e.original_pte = original_pte;
        self.insert_tail(PageState::Standby, i as u32);
        Ok(())
    }

    /// Zero page thread (`MmZeroPageThread`), step 1: remove a free page to
    /// zero it. The page is active (owned by the zero page thread) meanwhile.
    pub fn take_free_for_zeroing(&mut self) -> Option<Pfn> {
        let i = self.remove_head(PageState::Free)?;
        self.activate(i, 0);
        self.entries[i as usize].being_zeroed = true;
        Some(i as Pfn)
    }

    /// Zero page thread, step 2: the page is zero now; put it on the zeroed list.
    pub fn insert_zeroed(&mut self, pfn: Pfn) -> Result<(), PfnError> {
        let i = self.index(pfn)?;
        let e = self.entries[i];
        if e.state != PageState::Active || !e.being_zeroed {
            return Err(PfnError::WrongState {
                pfn,
                state: e.state,
            });
        }
        let e = &mut self.entries[i];
        e.being_zeroed = false;
        e.share_count = 0;
        e.reference_count = 0;
        self.active -= 1;
        self.insert_tail(PageState::Zeroed, i as u32);
        Ok(())
    }

    /// `MiFreeLoaderBlock`-style reclamation: the active pages of every
    /// descriptor whose type satisfies `reclaim` go to the free list (for
    /// loader heap/data once the kernel no longer needs it). Pages already
    /// reused are left alone. Returns the number of pages freed.
    pub fn reclaim_descriptors(
        &mut self,
        descriptors: &[MemoryDescriptor],
        reclaim: impl Fn(MemoryType) -> bool,
    ) -> u64 {
        let mut n = 0;
        for d in descriptors.iter().filter(|d| reclaim(d.memory_type)) {
            let Some(end) = d.base_page.checked_add(d.page_count) else {
                continue;
            };
            for pfn in d.base_page..end.min(self.len()) {
                let e = self.entries[pfn as usize];
                if e.state == PageState::Active && e.pte_address == 0 && !e.being_zeroed {
                    let _ = self.free_page(pfn);
                    n += 1;
                }
            }
        }
        n
    }

    /// Checks every invariant: list links are consistent both ways, list
    /// counts match, every listed page has its list's state, every entry in
    /// a list state is on that list, and the active/transition counters match.
    pub fn verify(&self) -> Result<(), String> {
        let mut seen = alloc::vec![false; self.entries.len()];
        for (li, state) in LIST_STATES.iter().enumerate() {
            let head = &self.lists[li];
            let mut prev = NIL;
            let mut cur = head.head;
            let mut n = 0u64;
            while cur != NIL {
                let i = cur as usize;
                let e = self
                    .entries
                    .get(i)
                    .ok_or_else(|| alloc::format!("{state:?}: link {cur} out of range"))?;
                if seen[i] {
                    return Err(alloc::format!("{state:?}: PFN {cur:#x} listed twice"));
                }
                seen[i] = true;
                if e.state != *state {
                    return Err(alloc::format!(
                        "PFN {cur:#x} on {state:?} list has state {:?}",
                        e.state
                    ));
                }
                if e.blink != prev {
                    return Err(alloc::format!(
                        "PFN {cur:#x}: blink {} != {}",
                        e.blink,
                        prev
                    ));
                }
                n += 1;
                prev = cur;
                cur = e.flink;
            }
            if head.tail != prev {
                return Err(alloc::format!("{state:?}: tail mismatch"));
            }
            if head.count != n {
                return Err(alloc::format!(
                    "{state:?}: count {} but {} linked",
                    head.count,
                    n
                ));
            }
        }
        let (mut active, mut transition, mut present) = (0u64, 0u64, 0u64);
        for (i, e) in self.entries.iter().enumerate() {
            if e.state != PageState::NotPresent {
                present += 1;
            }
            match e.state {
                PageState::Active => {
                    active += 1;
                    if e.share_count == 0 && !e.being_zeroed {
                        return Err(alloc::format!("active PFN {i:#x} has share count 0"));
                    }
                }
                PageState::Transition => transition += 1,
                s if s.list_index().is_some() => {
                    if !seen[i] {
                        return Err(alloc::format!(
                            "PFN {i:#x} in state {s:?} is not on its list"
                        ));
                    }
                    if e.share_count != 0 {
                        return Err(alloc::format!("listed PFN {i:#x} has share count"));
                    }
                }
                _ => {}
            }
            if e.being_zeroed && e.state != PageState::Active {
                return Err(alloc::format!("PFN {i:#x} being zeroed but {:?}", e.state));
            }
        }
        if active != self.active || transition != self.transition || present != self.present {
            return Err(alloc::format!(
                "counters: active {active}/{}, transition {transition}/{}, present {present}/{}",
                self.active,
                self.transition,
                self.present
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
