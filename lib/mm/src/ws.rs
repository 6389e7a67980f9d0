//! Working sets (*Windows Internals* 7th ed., Part 1, ch. 5, "Working
//! sets"): the list of a process's valid pages (`MMWSL`, one `MMWSLE` per
//! page with an age), the balance set manager's aging pass
//! (`MiAgeWorkingSet`) and trimming (`MiTrimWorkingSet`): when available
//! memory is low, the oldest pages leave the working set; clean ones go to
//! the standby list, dirty ones to the modified list, and a later access soft
//! faults them back (see [`FaultResolution::SoftFault`](crate::vm::FaultResolution)).
//!
//! Not done: working-set minimum/maximum enforcement on faults (the
//! kernel may call [`WorkingSet::over_maximum`]), the system and session
//! working sets, shared page trimming.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::pfn::{PfnDatabase, PfnError};
use crate::vm::AddressSpace;
use crate::{Pfn, Vpn};

/// Maximum age a page reaches (`MI_MAXIMUM_AGE`-like; NT uses 3 bits: 0..7).
pub const MAXIMUM_AGE: u8 = 7;

/// Default working set minimum/maximum of a process, in pages
/// (`PsMinimumWorkingSet`/`PsMaximumWorkingSet` defaults: 50/345).
pub const DEFAULT_MINIMUM: u64 = 50;
/// See [`DEFAULT_MINIMUM`].
pub const DEFAULT_MAXIMUM: u64 = 345;

/// `MMWSL` of one process.
#[derive(Clone, Debug)]
pub struct WorkingSet {
    entries: BTreeMap<Vpn, u8>,
    /// `MinimumWorkingSetSize`.
    pub minimum: u64,
    /// `MaximumWorkingSetSize`.
    pub maximum: u64,
    /// `PeakWorkingSetSize`.
    pub peak: u64,
    /// Pages trimmed so far.
    pub trimmed: u64,
}

impl Default for WorkingSet {
    fn default() -> Self {
        Self::new(DEFAULT_MINIMUM, DEFAULT_MAXIMUM)
    }
}

/// One page removed from a working set by [`trim_working_set`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrimmedPage {
    pub vpn: Vpn,
    pub pfn: Pfn,
    /// Went to the modified list (else standby).
    pub dirty: bool,
}

impl WorkingSet {
    /// An empty working set with the given limits (pages).
    pub fn new(minimum: u64, maximum: u64) -> Self {
        WorkingSet {
            entries: BTreeMap::new(),
            minimum,
            maximum,
            peak: 0,
            trimmed: 0,
        }
    }

    /// `MiAddValidPageToWorkingSet`: a fault made `vpn` valid (age 0).
    pub fn insert(&mut self, vpn: Vpn) {
        self.entries.insert(vpn, 0);
        self.peak = self.peak.max(self.entries.len() as u64);
    }

    /// `MiRemoveWsle`: `vpn` left the working set (freed or unmapped).
    pub fn remove(&mut self, vpn: Vpn) -> bool {
        self.entries.remove(&vpn).is_some()
    }

    /// Whether `vpn` is in the working set.
    pub fn contains(&self, vpn: Vpn) -> bool {
        self.entries.contains_key(&vpn)
    }

    /// `WorkingSetSize` in pages.
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Whether the working set is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The age of a page, if present.
    pub fn age_of(&self, vpn: Vpn) -> Option<u8> {
        self.entries.get(&vpn).copied()
    }

    /// Whether the working set is above its maximum.
    pub fn over_maximum(&self) -> bool {
        self.len() > self.maximum
    }

    /// `MiAgeWorkingSet`: pages whose accessed bit was set (the kernel
    /// reports and clears it through `accessed`) become age 0, the others
    /// grow older.
    pub fn age(&mut self, mut accessed: impl FnMut(Vpn) -> bool) {
        for (&vpn, age) in self.entries.iter_mut() {
            if accessed(vpn) {
                *age = 0;
            } else if *age < MAXIMUM_AGE {
                *age += 1;
            }
        }
    }

    /// The `count` oldest pages (highest age first, lower address first on ties).
    pub fn select_trim(&self, count: u64) -> Vec<Vpn> {
        let mut v: Vec<(u8, Vpn)> = self.entries.iter().map(|(&p, &a)| (a, p)).collect();
        v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        v.into_iter().take(count as usize).map(|(_, p)| p).collect()
    }

    /// Removes everything (process exit).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// `MiTrimWorkingSet`: removes up to `count` of the oldest pages of `ws`
/// from `space` and puts their frames on the standby (clean) or modified
/// (dirty) list. `hardware_dirty` reports (and the kernel clears) the PTE's
/// dirty bit. Shared section pages are skipped (left in the working set);
/// stale entries (page no longer valid) are dropped.
/// The kernel must invalidate the returned pages' PTEs and flush the TLB.
pub fn trim_working_set(
    ws: &mut WorkingSet,
    space: &mut AddressSpace,
    pfn_db: &mut PfnDatabase,
    count: u64,
    mut hardware_dirty: impl FnMut(Vpn) -> bool,
) -> Result<Vec<TrimmedPage>, PfnError> {
    let mut out = Vec::new();
    for vpn in ws.select_trim(ws.len()) {
        if out.len() as u64 >= count {
            break;
        }
        let Some((pfn, dirty)) = space.trim_page(vpn, hardware_dirty(vpn)) else {
            // Shared section pages stay; entries whose page is no longer
            // valid (freed, unmapped) are dropped.
            if !matches!(space.frame(vpn), Some(crate::vm::Frame::Valid { .. })) {
                ws.remove(vpn);
            }
            continue;
        };
        // Transition PTE contents the owner gets back if the page is repurposed:
        // ntrs uses the VPN as the "original PTE" (demand zero for that page).
        if dirty {
            pfn_db.make_modified(pfn, vpn)?;
        } else {
            pfn_db.make_standby(pfn, vpn)?;
        }
        ws.remove(vpn);
        ws.trimmed += 1;
        out.push(TrimmedPage { vpn, pfn, dirty });
    }
    Ok(out)
}

/// Whether the balance set manager should trim working sets:
/// `MmAvailablePages` (zeroed + free + standby) below `minimum_available`
/// (NT's `MmMinimumFreePages`-style threshold).
pub fn memory_is_low(pfn_db: &PfnDatabase, minimum_available: u64) -> bool {
    pfn_db.available_pages() < minimum_available
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pfn::{AllocationPreference, PfnError};
    use crate::vm::{AccessKind, CommitCharge, FaultResolution};
    use crate::*;
    use nt::arc::{MemoryDescriptor, MemoryType};

    fn pfn_db(pages: u64) -> PfnDatabase {
        PfnDatabase::from_descriptors(&[MemoryDescriptor {
            memory_type: MemoryType::Free,
            _pad: 0,
            base_page: 0,
            page_count: pages,
        }])
        .unwrap()
    }

    #[test]
    fn aging_and_selection() {
        let mut ws = WorkingSet::new(1, 3);
        for v in 10..14 {
            ws.insert(v);
        }
        assert!(ws.over_maximum());
        ws.age(|v| v == 11);
        ws.age(|v| v == 12);
        assert_eq!(ws.age_of(10), Some(2));
        assert_eq!(ws.age_of(12), Some(0));
        assert_eq!(ws.select_trim(2), [10, 13]);
        for _ in 0..20 {
            ws.age(|_| false);
        }
        assert_eq!(ws.age_of(12), Some(MAXIMUM_AGE));
        assert_eq!(ws.peak, 4);
        assert!(ws.remove(10));
        assert!(!ws.contains(10));
    }

    /// Touch far more pages than physical memory holds: faults trim the
    /// working set, repurpose standby pages, and soft faults find trimmed
    /// pages that were not yet reused.
    #[test]
    fn touching_more_than_physical_memory() {
        const PHYS: u64 = 16;
        let mut db = pfn_db(PHYS);
        let commit = CommitCharge::new(1000);
        let mut space = AddressSpace::new();
        let mut ws = WorkingSet::default();
        let (mut base, mut size) = (0u64, 64 * PAGE_SIZE);
        space
            .allocate_virtual_memory(
                &commit,
                &mut base,
                0,
                &mut size,
                MEM_RESERVE | MEM_COMMIT,
                PAGE_READWRITE,
            )
            .unwrap();
        let (mut soft, mut repurposed, mut demand_zero) = (0, 0, 0);
        for round in 0..3 {
            // A sequential sweep, then a walk back over recently used pages.
            for i in (0..64u64).chain((40..64).rev()) {
                let va = base + i * PAGE_SIZE;
                loop {
                    match space.access(va, AccessKind::Read) {
                        FaultResolution::AlreadyValid { .. } => break,
                        FaultResolution::DemandZero { vpn } => {
                            demand_zero += 1;
                            let p = loop {
                                match db.allocate_page(vpn, AllocationPreference::Zeroed) {
                                    Ok(p) => break p,
                                    Err(PfnError::NoPages) => {
                                        let t = trim_working_set(
                                            &mut ws,
                                            &mut space,
                                            &mut db,
                                            4,
                                            |_| false,
                                        )
                                        .unwrap();
                                        assert!(!t.is_empty(), "nothing to trim");
                                    }
                                    Err(e) => panic!("{e}"),
                                }
                            };
                            if let Some(r) = p.repurposed {
                                assert!(space.page_repurposed(r.pte_address));
                                repurposed += 1;
                            }
                            space.map_page(vpn, p.pfn).unwrap();
                            ws.insert(vpn);
                        }
                        FaultResolution::SoftFault { vpn, pfn } => {
                            soft += 1;
                            db.soft_fault(pfn).unwrap();
                            space.map_page(vpn, pfn).unwrap();
                            ws.insert(vpn);
                        }
                        other => panic!("round {round}: {other:?}"),
                    }
                }
                ws.age(|v| v == va / PAGE_SIZE);
                if memory_is_low(&db, 2) {
                    trim_working_set(&mut ws, &mut space, &mut db, 2, |_| false).unwrap();
                }
                db.verify().unwrap();
                assert!(ws.len() <= PHYS);
            }
        }
        assert!(
            repurposed > 0 && soft > 0 && demand_zero > 64,
            "{repurposed} {soft} {demand_zero}"
        );
        assert_eq!(db.counts().active, ws.len());
    }

    #[test]
    fn dirty_pages_go_to_modified_and_come_back() {
        let mut db = pfn_db(8);
        let commit = CommitCharge::new(100);
        let mut space = AddressSpace::new();
        let mut ws = WorkingSet::default();
        let (mut base, mut size) = (0u64, 2 * PAGE_SIZE);
        space
            .allocate_virtual_memory(
                &commit,
                &mut base,
                0,
                &mut size,
                MEM_RESERVE | MEM_COMMIT,
                PAGE_READWRITE,
            )
            .unwrap();
        for i in 0..2 {
            let vpn = base / PAGE_SIZE + i;
            assert_eq!(
                space.access(base + i * PAGE_SIZE, AccessKind::Write),
                FaultResolution::DemandZero { vpn }
            );
            let p = db.allocate_page(vpn, AllocationPreference::Zeroed).unwrap();
            space.map_page(vpn, p.pfn).unwrap();
            ws.insert(vpn);
        }
        // Only the first page was written (hardware dirty bit).
        let t =
            trim_working_set(&mut ws, &mut space, &mut db, 10, |v| v == base / PAGE_SIZE).unwrap();
        assert_eq!(t.iter().map(|t| t.dirty).collect::<Vec<_>>(), [true, false]);
        assert_eq!((db.counts().modified, db.counts().standby), (1, 1));
        assert!(ws.is_empty());
        let FaultResolution::SoftFault { pfn, .. } = space.access(base, AccessKind::Read) else {
            panic!("expected a soft fault");
        };
        assert_eq!(pfn, t[0].pfn);
        db.soft_fault(pfn).unwrap();
        space.map_page(base / PAGE_SIZE, pfn).unwrap();
        // A stale entry (page freed behind the working set's back) is dropped.
        ws.insert(base / PAGE_SIZE + 1);
        assert!(
            trim_working_set(&mut ws, &mut space, &mut db, 10, |_| false)
                .unwrap()
                .is_empty()
        );
        assert!(!ws.contains(base / PAGE_SIZE + 1));
        // Still dirty: trimming again sends it back to the modified list.
        let t = trim_working_set(&mut ws, &mut space, &mut db, 10, |_| false).unwrap();
        assert!(t.is_empty(), "not in the working set any more");
        ws.insert(base / PAGE_SIZE);
        let t = trim_working_set(&mut ws, &mut space, &mut db, 10, |_| false).unwrap();
        assert_eq!(
            t,
            [TrimmedPage {
                vpn: base / PAGE_SIZE,
                pfn,
                dirty: true
            }]
        );
        db.verify().unwrap();
    }
}
