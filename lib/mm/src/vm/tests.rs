use super::*;
use crate::pagefile::PagingFile;
use crate::pfn::{AllocationPreference, PfnDatabase};
use alloc::vec;
use nt::arc::{MemoryDescriptor, MemoryType};
use proptest::prelude::*;

/// A tiny machine: PFN database, page contents (one u64 per frame), a
/// paging file with its "disk", resolving faults the way the kernel will:
/// when no page is available it runs the modified page writer, and if that
/// is not enough it trims a valid page.
struct Machine {
    pfn: PfnDatabase,
    mem: BTreeMap<Pfn, u64>,
    commit: CommitCharge,
    pf: PagingFile,
    disk: BTreeMap<u64, u64>,
    hard_faults: u64,
    soft_faults: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum Access {
    Value(u64),
    Raised(NtStatus),
}

impl Machine {
    fn new(pages: u64, commit_limit: u64) -> Self {
        let pfn = PfnDatabase::from_descriptors(&[MemoryDescriptor {
            memory_type: MemoryType::Free,
            _pad: 0,
            base_page: 0,
            page_count: pages,
        }])
        .unwrap();
        Machine {
            pfn,
            mem: BTreeMap::new(),
            commit: CommitCharge::new(commit_limit),
            pf: PagingFile::new(1024),
            disk: BTreeMap::new(),
            hard_faults: 0,
            soft_faults: 0,
        }
    }

    /// The modified page writer: every modified page goes to the paging file.
    fn write_modified(&mut self, a: &mut AddressSpace) {
        while let Some(pfn) = self.pfn.begin_write() {
            let owner = self.pfn.entry(pfn).unwrap().pte_address;
            let slot = self.pf.allocate_slot().expect("paging file full");
            self.disk.insert(slot, *self.mem.get(&pfn).unwrap_or(&0));
            a.page_written(owner, pfn, slot).unwrap();
            self.pfn.complete_write(pfn, slot).unwrap();
        }
    }

    fn trim_one(&mut self, a: &mut AddressSpace) -> bool {
        let victim = a.vads().iter().find_map(|v| {
            v.data.frames().find_map(|(k, f)| match f {
                Frame::Valid { private: true, .. } => Some(v.start + k),
                _ => None,
            })
        });
        let Some(vpn) = victim else { return false };
        let (pfn, dirty) = a.trim_page(vpn, false).unwrap();
        if dirty {
            self.pfn.make_modified(pfn, vpn).unwrap();
        } else {
            self.pfn.make_standby(pfn, vpn).unwrap();
        }
        true
    }

    fn new_page(&mut self, owner: Vpn, a: &mut AddressSpace) -> Pfn {
        let p = loop {
            match self.pfn.allocate_page(owner, AllocationPreference::Zeroed) {
                Ok(p) => break p,
                Err(crate::pfn::PfnError::NoPages) => {
                    if self.pfn.counts().modified > 0 {
                        self.write_modified(a);
                    } else {
                        assert!(self.trim_one(a), "out of memory with nothing to trim");
                    }
                }
                Err(e) => panic!("{e}"),
            }
        };
        if let Some(r) = p.repurposed {
            assert!(a.page_repurposed(r.pte_address));
        }
        if p.needs_zeroing {
            self.mem.insert(p.pfn, 0);
        }
        p.pfn
    }

    fn mapped(&mut self, slot: Option<u64>) {
        if let Some(s) = slot {
            assert!(self.pf.free_slot(s));
            self.disk.remove(&s);
        }
    }

    /// Touches `va`; `write` stores a value. Resolves faults until the access
    /// completes or raises.
    fn touch(&mut self, a: &mut AddressSpace, va: u64, kind: AccessKind, write: u64) -> Access {
        for _ in 0..4 {
            match a.access(va, kind) {
                FaultResolution::AlreadyValid { pfn } => {
                    let hw = a
                        .hardware_pte(va / PAGE_SIZE)
                        .expect("valid page has a PTE");
                    assert_eq!(hw.pfn, pfn);
                    if kind == AccessKind::Write {
                        assert!(hw.writable);
                        self.mem.insert(pfn, write);
                    }
                    return Access::Value(*self.mem.get(&pfn).unwrap_or(&0));
                }
                FaultResolution::DemandZero { vpn } => {
                    let pfn = self.new_page(vpn, a);
                    let slot = a.map_page(vpn, pfn).unwrap();
                    assert_eq!(slot, None);
                }
                FaultResolution::SoftFault { vpn, pfn } => {
                    self.soft_faults += 1;
                    self.pfn.soft_fault(pfn).unwrap();
                    let slot = a.map_page(vpn, pfn).unwrap();
                    self.mapped(slot);
                }
                FaultResolution::HardFault { vpn, slot } => {
                    self.hard_faults += 1;
                    let pfn = self.new_page(vpn, a);
                    let data = self.disk[&slot];
                    self.mem.insert(pfn, data);
                    let freed = a.map_page(vpn, pfn).unwrap();
                    assert_eq!(freed, Some(slot));
                    self.mapped(freed);
                }
                FaultResolution::GuardPage => return Access::Raised(STATUS_GUARD_PAGE_VIOLATION),
                FaultResolution::AccessViolation => return Access::Raised(STATUS_ACCESS_VIOLATION),
                other => panic!("unexpected {other:?} for private memory"),
            }
        }
        panic!("fault not resolved");
    }

    fn release(&mut self, freed: Vec<FreedFrame>) {
        release_frames(&mut self.pfn, &mut self.pf, &freed).unwrap();
    }
}

fn alloc(
    a: &mut AddressSpace,
    m: &Machine,
    base: u64,
    size: u64,
    ty: u32,
    prot: u32,
) -> Result<(u64, u64), NtStatus> {
    let (mut b, mut s) = (base, size);
    a.allocate_virtual_memory(&m.commit, &mut b, 0, &mut s, ty, prot)
        .map(|_| (b, s))
}

fn free(
    a: &mut AddressSpace,
    m: &mut Machine,
    base: u64,
    size: u64,
    ty: u32,
) -> Result<(u64, u64), NtStatus> {
    let (mut b, mut s) = (base, size);
    let freed = a.free_virtual_memory(&m.commit, &mut b, &mut s, ty)?;
    m.release(freed);
    Ok((b, s))
}

#[test]
fn reserve_rounds_to_granularity_and_conflicts() {
    let m = Machine::new(64, 1000);
    let mut a = AddressSpace::new();
    let (b, s) = alloc(
        &mut a,
        &m,
        0,
        0x1000,
        MEM_RESERVE | MEM_COMMIT,
        PAGE_EXECUTE_READWRITE,
    )
    .unwrap();
    assert_eq!((b, s), (0x10000, 0x1000));
    // Conflicts because of the 64 KiB rounding of the base.
    assert_eq!(
        alloc(
            &mut a,
            &m,
            b + 0x1000,
            0x1000,
            MEM_RESERVE | MEM_COMMIT,
            PAGE_READWRITE
        ),
        Err(STATUS_CONFLICTING_ADDRESSES)
    );
    let (b2, s2) = alloc(&mut a, &m, 0x123456, 0x2000, MEM_RESERVE, PAGE_READWRITE).unwrap();
    assert_eq!((b2, s2), (0x120000, 0x6000));
    let (b3, _) = alloc(
        &mut a,
        &m,
        0,
        0x1000,
        MEM_RESERVE | MEM_TOP_DOWN,
        PAGE_READWRITE,
    )
    .unwrap();
    assert_eq!(b3, MM_HIGHEST_VAD_ADDRESS + 1 - 0x10000);
    assert_eq!(a.commit_charge(), 1);
    assert_eq!(m.commit.used(), 1);
}

#[test]
fn parameter_statuses() {
    let m = Machine::new(64, 1000);
    let mut a = AddressSpace::new();
    let rc = MEM_RESERVE | MEM_COMMIT;
    assert_eq!(
        alloc(&mut a, &m, 0, 0x1000, 0, PAGE_READWRITE),
        Err(STATUS_INVALID_PARAMETER_5)
    );
    assert_eq!(
        alloc(&mut a, &m, 0, 0x1000, MEM_TOP_DOWN, PAGE_READWRITE),
        Err(STATUS_INVALID_PARAMETER_5)
    );
    assert_eq!(
        alloc(&mut a, &m, 0, 0x1000, rc | 0x40000000, PAGE_READWRITE),
        Err(STATUS_INVALID_PARAMETER_5)
    );
    assert_eq!(
        alloc(&mut a, &m, 0, 0x1000, MEM_DECOMMIT, PAGE_READWRITE),
        Err(STATUS_INVALID_PARAMETER_5)
    );
    assert_eq!(
        alloc(&mut a, &m, 0, 0x1000, rc, 0),
        Err(STATUS_INVALID_PAGE_PROTECTION)
    );
    assert_eq!(
        alloc(&mut a, &m, 0, 0x1000, rc, PAGE_READONLY | PAGE_EXECUTE),
        Err(STATUS_INVALID_PAGE_PROTECTION)
    );
    assert_eq!(
        alloc(&mut a, &m, 0, 0x1000, rc, PAGE_WRITECOPY),
        Err(STATUS_INVALID_PAGE_PROTECTION)
    );
    assert_eq!(
        alloc(&mut a, &m, 0, 0x1000, rc, PAGE_NOACCESS | PAGE_GUARD),
        Err(STATUS_INVALID_PAGE_PROTECTION)
    );
    assert_eq!(
        alloc(
            &mut a,
            &m,
            0,
            0x1000,
            rc,
            PAGE_READWRITE | PAGE_GUARD | PAGE_NOCACHE
        ),
        Err(STATUS_INVALID_PAGE_PROTECTION)
    );
    assert_eq!(
        alloc(&mut a, &m, 0, 0, rc, PAGE_READWRITE),
        Err(STATUS_INVALID_PARAMETER_4)
    );
    assert_eq!(
        alloc(&mut a, &m, 0x8000_0000_0000, 0x1000, rc, PAGE_READWRITE),
        Err(STATUS_INVALID_PARAMETER_2)
    );
    assert_eq!(
        alloc(&mut a, &m, 0x7FFF_FFFD_0000, 0x20000, rc, PAGE_READWRITE),
        Err(STATUS_INVALID_PARAMETER_4)
    );
    assert_eq!(
        alloc(&mut a, &m, 0x1000, 0x1000, rc, PAGE_READWRITE),
        Err(STATUS_INVALID_PARAMETER_2)
    );
    let (mut b, mut s) = (0, 0x1000);
    assert_eq!(
        a.allocate_virtual_memory(&m.commit, &mut b, 22, &mut s, rc, PAGE_READWRITE),
        Err(STATUS_INVALID_PARAMETER_3)
    );
    assert_eq!(
        a.allocate_virtual_memory(
            &m.commit,
            &mut b,
            1,
            &mut s,
            rc | MEM_TOP_DOWN,
            PAGE_READWRITE
        ),
        Ok(())
    );
    assert!(b + s - 1 <= 0x7FFF_FFFF, "{b:#x}");
    assert_eq!(
        alloc(&mut a, &m, 0, 0x1000, MEM_RESET, PAGE_READWRITE),
        Err(STATUS_NOT_IMPLEMENTED)
    );
    // Commit outside any reservation.
    assert_eq!(
        alloc(&mut a, &m, 0x500000, 0x1000, MEM_COMMIT, PAGE_READWRITE),
        Err(STATUS_CONFLICTING_ADDRESSES)
    );
}

#[test]
fn commit_decommit_release_like_windows() {
    let mut m = Machine::new(64, 1000);
    let mut a = AddressSpace::new();
    let rc = MEM_RESERVE | MEM_COMMIT;
    let (addr1, _) = alloc(&mut a, &m, 0, 0x10000, rc, PAGE_EXECUTE_READWRITE).unwrap();
    // Decommit 2 bytes straddling a page boundary: two pages.
    assert_eq!(
        free(&mut a, &mut m, addr1 + 0x1fff, 2, MEM_DECOMMIT),
        Ok((addr1 + 0x1000, 0x2000))
    );
    assert_eq!(
        free(&mut a, &mut m, addr1 + 0x1001, 0, MEM_DECOMMIT),
        Err(STATUS_FREE_VM_NOT_AT_BASE)
    );
    assert_eq!(
        free(&mut a, &mut m, addr1 + 0xffe, 0, MEM_DECOMMIT),
        Ok((addr1, 0))
    );
    assert_eq!(
        free(&mut a, &mut m, addr1 + 0x1001, 0, MEM_RELEASE),
        Err(STATUS_FREE_VM_NOT_AT_BASE)
    );
    assert_eq!(
        free(&mut a, &mut m, addr1 + 0xfff, 0, MEM_RELEASE),
        Ok((addr1, 0x10000))
    );
    assert_eq!(
        free(&mut a, &mut m, addr1, 0, MEM_RELEASE),
        Err(STATUS_MEMORY_NOT_ALLOCATED)
    );
    assert_eq!(
        free(&mut a, &mut m, addr1, 0, 0),
        Err(STATUS_INVALID_PARAMETER_4)
    );
    assert_eq!(
        free(&mut a, &mut m, addr1, 0, MEM_FREE),
        Err(STATUS_INVALID_PARAMETER_4)
    );
    assert_eq!(
        free(&mut a, &mut m, addr1, 0, MEM_RELEASE | MEM_DECOMMIT),
        Err(STATUS_INVALID_PARAMETER_4)
    );
    assert_eq!(
        free(&mut a, &mut m, 0x8000_0000_0000, 0, MEM_RELEASE),
        Err(STATUS_INVALID_PARAMETER_2)
    );
    assert_eq!(
        free(&mut a, &mut m, MM_HIGHEST_USER_ADDRESS, 0, MEM_RELEASE),
        Err(STATUS_INVALID_PARAMETER_2)
    );
    assert_eq!(
        free(&mut a, &mut m, 0x7FFF_FFFE_0000, 0x20000, MEM_RELEASE),
        Err(STATUS_INVALID_PARAMETER_3)
    );
    assert_eq!(m.commit.used(), 0);

    // Reserve, commit in the middle, query, protect.
    let (b, _) = alloc(&mut a, &m, 0, 0x10000, MEM_RESERVE, PAGE_NOACCESS).unwrap();
    let info = a.query_virtual_memory(b).unwrap();
    assert_eq!(
        info,
        MemoryBasicInformation {
            base_address: b,
            allocation_base: b,
            allocation_protect: PAGE_NOACCESS,
            region_size: 0x10000,
            state: MEM_RESERVE,
            protect: 0,
            type_: MEM_PRIVATE,
        }
    );
    assert_eq!(
        alloc(&mut a, &m, b + 0x1800, 0x1000, MEM_COMMIT, PAGE_READWRITE),
        Ok((b + 0x1000, 0x2000))
    );
    assert_eq!(m.commit.used(), 2);
    // Recommit overlapping: charges only the new page, applies protection to all.
    assert_eq!(
        alloc(&mut a, &m, b + 0x2000, 0x2000, MEM_COMMIT, PAGE_READONLY),
        Ok((b + 0x2000, 0x2000))
    );
    assert_eq!(m.commit.used(), 3);
    let q = |a: &AddressSpace, x| {
        let i = a.query_virtual_memory(x).unwrap();
        (i.base_address, i.region_size, i.state, i.protect)
    };
    assert_eq!(q(&a, b), (b, 0x1000, MEM_RESERVE, 0));
    assert_eq!(
        q(&a, b + 0x1fff),
        (b + 0x1000, 0x1000, MEM_COMMIT, PAGE_READWRITE)
    );
    assert_eq!(
        q(&a, b + 0x2000),
        (b + 0x2000, 0x2000, MEM_COMMIT, PAGE_READONLY)
    );
    assert_eq!(q(&a, b + 0x4000), (b + 0x4000, 0xc000, MEM_RESERVE, 0));
    let free_info = a.query_virtual_memory(b + 0x10000).unwrap();
    assert_eq!(
        (free_info.state, free_info.protect, free_info.type_),
        (MEM_FREE, PAGE_NOACCESS, 0)
    );
    assert_eq!(
        a.query_virtual_memory(0x8000_0000_0000),
        Err(STATUS_INVALID_PARAMETER)
    );

    // Protect: not fully committed → STATUS_NOT_COMMITTED.
    let mut old = 0;
    let (mut pb, mut ps) = (b, 0xfffc);
    assert_eq!(
        a.protect_virtual_memory(&mut pb, &mut ps, PAGE_READONLY, &mut old),
        Err(STATUS_NOT_COMMITTED)
    );
    let (mut pb, mut ps) = (b + 0x1000, 0x1000);
    assert_eq!(
        a.protect_virtual_memory(&mut pb, &mut ps, PAGE_READONLY, &mut old),
        Ok(vec![])
    );
    assert_eq!(old, PAGE_READWRITE);
    let (mut pb, mut ps) = (b + 0x1000, 0x1000);
    assert_eq!(
        a.protect_virtual_memory(&mut pb, &mut ps, PAGE_WRITECOPY, &mut old),
        Err(STATUS_INVALID_PAGE_PROTECTION)
    );
    assert_eq!(
        a.protect_virtual_memory(
            &mut pb,
            &mut ps,
            PAGE_READWRITE | PAGE_EXECUTE_WRITECOPY,
            &mut old
        ),
        Err(STATUS_INVALID_PAGE_PROTECTION)
    );
    let (mut pb, mut ps) = (b + 0x20000, 0x1000);
    assert_eq!(
        a.protect_virtual_memory(&mut pb, &mut ps, PAGE_READONLY, &mut old),
        Err(STATUS_CONFLICTING_ADDRESSES)
    );
    let (mut pb, mut ps) = (b, 0);
    assert_eq!(
        a.protect_virtual_memory(&mut pb, &mut ps, PAGE_READONLY, &mut old),
        Err(STATUS_INVALID_PARAMETER_3)
    );

    // Partial release splits the reservation.
    assert_eq!(
        free(&mut a, &mut m, b + 0x2000, 0x1000, MEM_RELEASE),
        Ok((b + 0x2000, 0x1000))
    );
    assert_eq!(m.commit.used(), 2);
    assert_eq!(a.query_virtual_memory(b + 0x2000).unwrap().state, MEM_FREE);
    let upper = a.query_virtual_memory(b + 0x3000).unwrap();
    assert_eq!(
        (upper.allocation_base, upper.protect),
        (b + 0x3000, PAGE_READONLY)
    );
    assert_eq!(
        free(&mut a, &mut m, b + 0x1000, 0x2000, MEM_RELEASE),
        Err(STATUS_UNABLE_TO_FREE_VM)
    );
    assert_eq!(a.vads().len(), 2);
}

#[test]
fn regions_cover_the_user_space() {
    let m = Machine::new(8, 100);
    let mut a = AddressSpace::new();
    let (b, _) = alloc(&mut a, &m, 0x200000, 0x4000, MEM_RESERVE, PAGE_READWRITE).unwrap();
    alloc(&mut a, &m, b + 0x1000, 0x1000, MEM_COMMIT, PAGE_READONLY).unwrap();
    let r = a.regions();
    let states: Vec<(u64, u64, u32)> = r
        .iter()
        .map(|i| (i.base_address, i.region_size, i.state))
        .collect();
    assert_eq!(
        states,
        [
            (0, b, MEM_FREE),
            (b, 0x1000, MEM_RESERVE),
            (b + 0x1000, 0x1000, MEM_COMMIT),
            (b + 0x2000, 0x2000, MEM_RESERVE),
            (
                b + 0x4000,
                MM_HIGHEST_USER_ADDRESS + 1 - b - 0x4000,
                MEM_FREE
            ),
        ]
    );
    assert!(a.format_vads().contains("Private"));
}

#[test]
fn commit_limit_enforced() {
    let m = Machine::new(64, 4);
    let mut a = AddressSpace::new();
    assert_eq!(
        alloc(
            &mut a,
            &m,
            0,
            0x5000,
            MEM_RESERVE | MEM_COMMIT,
            PAGE_READWRITE
        ),
        Err(STATUS_COMMITMENT_LIMIT)
    );
    assert!(a.vads().is_empty());
    let (b, _) = alloc(&mut a, &m, 0, 0x10000, MEM_RESERVE, PAGE_READWRITE).unwrap();
    assert!(alloc(&mut a, &m, b, 0x4000, MEM_COMMIT, PAGE_READWRITE).is_ok());
    assert_eq!(
        alloc(&mut a, &m, b + 0x3000, 0x2000, MEM_COMMIT, PAGE_READWRITE),
        Err(STATUS_COMMITMENT_LIMIT)
    );
    assert_eq!(m.commit.used(), 4);
    let vm = format_vm(&m.pfn, &m.commit);
    assert!(
        vm.contains("Committed pages:               4 (        16 Kb)"),
        "{vm}"
    );
    let freed = a.delete_all(&m.commit);
    assert!(freed.is_empty());
    assert_eq!(m.commit.used(), 0);
}

#[test]
fn faults_demand_zero_guard_and_access_violation() {
    let mut m = Machine::new(64, 100);
    let mut a = AddressSpace::new();
    let (b, _) = alloc(
        &mut a,
        &m,
        0,
        0x4000,
        MEM_RESERVE | MEM_COMMIT,
        PAGE_READWRITE,
    )
    .unwrap();
    assert_eq!(m.touch(&mut a, b, AccessKind::Read, 0), Access::Value(0));
    assert_eq!(m.touch(&mut a, b, AccessKind::Write, 7), Access::Value(7));
    assert_eq!(
        m.touch(&mut a, b + 8, AccessKind::Read, 0),
        Access::Value(7)
    );
    assert_eq!(
        m.touch(&mut a, b, AccessKind::Execute, 0),
        Access::Raised(STATUS_ACCESS_VIOLATION)
    );
    assert_eq!(
        m.touch(&mut a, b + 0x10000, AccessKind::Read, 0),
        Access::Raised(STATUS_ACCESS_VIOLATION)
    );
    assert_eq!(
        m.touch(&mut a, 0, AccessKind::Read, 0),
        Access::Raised(STATUS_ACCESS_VIOLATION)
    );
    let mut old = 0;
    let (mut pb, mut ps) = (b + 0x1000, 0x1000);
    a.protect_virtual_memory(&mut pb, &mut ps, PAGE_READONLY | PAGE_GUARD, &mut old)
        .unwrap();
    assert_eq!(
        m.touch(&mut a, b + 0x1000, AccessKind::Write, 1),
        Access::Raised(STATUS_GUARD_PAGE_VIOLATION)
    );
    assert_eq!(
        a.query_virtual_memory(b + 0x1000).unwrap().protect,
        PAGE_READONLY
    );
    assert_eq!(
        m.touch(&mut a, b + 0x1000, AccessKind::Write, 1),
        Access::Raised(STATUS_ACCESS_VIOLATION)
    );
    assert_eq!(
        m.touch(&mut a, b + 0x1000, AccessKind::Read, 1),
        Access::Value(0)
    );
    // Protecting a valid page reports it for a PTE rewrite.
    let (mut pb, mut ps) = (b, 0x2000);
    let touched = a
        .protect_virtual_memory(&mut pb, &mut ps, PAGE_NOACCESS, &mut old)
        .unwrap();
    assert_eq!(touched, vec![b / PAGE_SIZE, b / PAGE_SIZE + 1]);
    assert_eq!(old, PAGE_READWRITE);
    assert!(a.hardware_pte(b / PAGE_SIZE).is_none());
    assert_eq!(
        m.touch(&mut a, b, AccessKind::Read, 0),
        Access::Raised(STATUS_ACCESS_VIOLATION)
    );
    // Decommit hands back the frames.
    let (mut fb, mut fs) = (b, 0x4000);
    let freed = a
        .free_virtual_memory(&m.commit, &mut fb, &mut fs, MEM_DECOMMIT)
        .unwrap();
    assert_eq!(freed.len(), 2);
    m.release(freed);
    assert_eq!(
        m.touch(&mut a, b, AccessKind::Read, 0),
        Access::Raised(STATUS_ACCESS_VIOLATION)
    );
    m.pfn.verify().unwrap();
    assert_eq!(m.pfn.counts().active, 0);
}

#[test]
fn trim_and_soft_fault_keep_contents() {
    let mut m = Machine::new(64, 100);
    let mut a = AddressSpace::new();
    let (b, _) = alloc(
        &mut a,
        &m,
        0,
        0x2000,
        MEM_RESERVE | MEM_COMMIT,
        PAGE_READWRITE,
    )
    .unwrap();
    m.touch(&mut a, b, AccessKind::Write, 42);
    m.touch(&mut a, b + 0x1000, AccessKind::Read, 0);
    let (p0, d0) = a.trim_page(b / PAGE_SIZE, false).unwrap();
    let (p1, d1) = a.trim_page(b / PAGE_SIZE + 1, false).unwrap();
    assert!(d0 && !d1);
    m.pfn.make_modified(p0, 0).unwrap();
    m.pfn.make_standby(p1, 0).unwrap();
    assert!(a.hardware_pte(b / PAGE_SIZE).is_none());
    assert_eq!(
        a.access(b, AccessKind::Read),
        FaultResolution::SoftFault {
            vpn: b / PAGE_SIZE,
            pfn: p0
        }
    );
    assert_eq!(m.touch(&mut a, b, AccessKind::Read, 0), Access::Value(42));
    // Release while the second page sits on standby.
    let freed = {
        let (mut fb, mut fs) = (b, 0);
        a.free_virtual_memory(&m.commit, &mut fb, &mut fs, MEM_RELEASE)
            .unwrap()
    };
    assert!(freed.contains(&FreedFrame {
        vpn: b / PAGE_SIZE + 1,
        frame: Frame::Transition {
            pfn: p1,
            dirty: false,
            slot: None
        }
    }));
    m.release(freed);
    m.pfn.verify().unwrap();
    assert_eq!(m.pfn.counts().free + m.pfn.counts().zeroed, 64);
}

#[test]
fn repurposed_standby_page_demand_zeroes_again() {
    let mut m = Machine::new(1, 100);
    let mut a = AddressSpace::new();
    let (b, _) = alloc(
        &mut a,
        &m,
        0,
        0x2000,
        MEM_RESERVE | MEM_COMMIT,
        PAGE_READWRITE,
    )
    .unwrap();
    m.touch(&mut a, b, AccessKind::Read, 0);
    let (p, dirty) = a.trim_page(b / PAGE_SIZE, false).unwrap();
    assert!(!dirty);
    m.pfn.make_standby(p, 0).unwrap();
    // The only page is repurposed for the second virtual page.
    assert_eq!(
        m.touch(&mut a, b + 0x1000, AccessKind::Write, 5),
        Access::Value(5)
    );
    assert_eq!(a.frame(b / PAGE_SIZE), None);
    assert_eq!(
        a.access(b, AccessKind::Read),
        FaultResolution::DemandZero { vpn: b / PAGE_SIZE }
    );
}

#[test]
fn runs_set_and_slice() {
    let mut r = Runs::new(10, 0);
    r.set(2, 5, 4);
    r.set(5, 7, 4);
    assert_eq!(r.map.len(), 3);
    assert_eq!((r.get(1), r.get(2), r.get(6), r.get(7)), (0, 4, 4, 0));
    assert_eq!(r.run_end(2), 7);
    assert_eq!(r.count(0, 10, |v| v == 4), 5);
    let s = r.slice(3, 9);
    assert_eq!((s.get(0), s.get(3), s.get(4), s.len), (4, 4, 0, 6));
    r.set(0, 10, 4);
    assert_eq!(r.map.len(), 1);
}

// ---------------------------------------------------------------------------
// Property test: random service sequences against a per-page reference model.

#[derive(Clone, Copy, Debug)]
struct MPage {
    alloc_base: Vpn,
    protect: u32,
    content: u64,
}

#[derive(Default)]
struct Model {
    pages: BTreeMap<Vpn, MPage>,
    allocs: BTreeMap<Vpn, (Vpn, u32)>,
    charged: u64,
    limit: u64,
}

const HVAD_VPN: u64 = MM_HIGHEST_VAD_ADDRESS / PAGE_SIZE;
const LOW_VPN: u64 = MM_LOWEST_USER_ADDRESS / PAGE_SIZE;

impl Model {
    fn free_at(&self, s: Vpn, n: u64) -> bool {
        self.pages.range(s..s + n).next().is_none()
    }

    fn allocate(
        &mut self,
        base: u64,
        size: u64,
        ty: u32,
        prot: u32,
    ) -> Result<(u64, u64), NtStatus> {
        let valid = MEM_COMMIT | MEM_RESERVE | MEM_TOP_DOWN;
        if ty & !valid != 0 || ty & (MEM_COMMIT | MEM_RESERVE) == 0 {
            return Err(STATUS_INVALID_PARAMETER_5);
        }
        if !is_valid_protection(prot) || protection_copy_on_write(prot) {
            return Err(STATUS_INVALID_PAGE_PROTECTION);
        }
        if base > MM_HIGHEST_VAD_ADDRESS {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
        if size == 0 || size > MM_HIGHEST_VAD_ADDRESS + 1 - base {
            return Err(STATUS_INVALID_PARAMETER_4);
        }
        if base != 0 && base < MM_LOWEST_USER_ADDRESS {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
        let commit = ty & MEM_COMMIT != 0;
        if ty & MEM_RESERVE != 0 || base == 0 {
            let (s, n) = if base == 0 {
                let n = size.div_ceil(PAGE_SIZE);
                let s = if ty & MEM_TOP_DOWN != 0 {
                    let mut s = (HVAD_VPN + 1 - n) / 16 * 16;
                    while !self.free_at(s, n) {
                        s -= 16;
                    }
                    s
                } else {
                    let mut s = LOW_VPN;
                    while !self.free_at(s, n) {
                        s += 16;
                    }
                    s
                };
                (s, n)
            } else {
                let s = base / 0x10000 * 16;
                let e = (base + size - 1) / PAGE_SIZE;
                (s, e - s + 1)
            };
            if !self.free_at(s, n) {
                return Err(STATUS_CONFLICTING_ADDRESSES);
            }
            if commit {
                if self.charged + n > self.limit {
                    return Err(STATUS_COMMITMENT_LIMIT);
                }
                self.charged += n;
            }
            for v in s..s + n {
                self.pages.insert(
                    v,
                    MPage {
                        alloc_base: s,
                        protect: if commit { prot } else { 0 },
                        content: 0,
                    },
                );
            }
            self.allocs.insert(s, (s + n - 1, prot));
            return Ok((s * PAGE_SIZE, n * PAGE_SIZE));
        }
        let s = base / PAGE_SIZE;
        let e = (base + size - 1) / PAGE_SIZE;
        let Some(first) = self.pages.get(&s) else {
            return Err(STATUS_CONFLICTING_ADDRESSES);
        };
        let ab = first.alloc_base;
        if (s..=e).any(|v| self.pages.get(&v).is_none_or(|p| p.alloc_base != ab)) {
            return Err(STATUS_CONFLICTING_ADDRESSES);
        }
        let new = (s..=e).filter(|v| self.pages[v].protect == 0).count() as u64;
        if self.charged + new > self.limit {
            return Err(STATUS_COMMITMENT_LIMIT);
        }
        self.charged += new;
        for v in s..=e {
            self.pages.get_mut(&v).unwrap().protect = prot;
        }
        Ok((s * PAGE_SIZE, (e - s + 1) * PAGE_SIZE))
    }

    fn free(&mut self, base: u64, size: u64, ty: u32) -> Result<(u64, u64), NtStatus> {
        if ty != MEM_RELEASE && ty != MEM_DECOMMIT {
            return Err(STATUS_INVALID_PARAMETER_4);
        }
        if base >= MM_HIGHEST_USER_ADDRESS {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
        if MM_HIGHEST_USER_ADDRESS - base < size {
            return Err(STATUS_INVALID_PARAMETER_3);
        }
        let s = base / PAGE_SIZE;
        let Some(p) = self.pages.get(&s) else {
            return Err(STATUS_MEMORY_NOT_ALLOCATED);
        };
        let ab = p.alloc_base;
        let (ae, aprot) = self.allocs[&ab];
        let e = if size == 0 {
            if s != ab {
                return Err(STATUS_FREE_VM_NOT_AT_BASE);
            }
            ae
        } else {
            let e = (base + size - 1) / PAGE_SIZE;
            if e > ae {
                return Err(STATUS_UNABLE_TO_FREE_VM);
            }
            e
        };
        let committed = (s..=e).filter(|v| self.pages[v].protect != 0).count() as u64;
        self.charged -= committed;
        if ty == MEM_DECOMMIT {
            for v in s..=e {
                let p = self.pages.get_mut(&v).unwrap();
                p.protect = 0;
                p.content = 0;
            }
            return Ok((
                s * PAGE_SIZE,
                if size == 0 {
                    0
                } else {
                    (e - s + 1) * PAGE_SIZE
                },
            ));
        }
        for v in s..=e {
            self.pages.remove(&v);
        }
        self.allocs.remove(&ab);
        if s > ab {
            self.allocs.insert(ab, (s - 1, aprot));
        }
        if e < ae {
            self.allocs.insert(e + 1, (ae, aprot));
            for v in e + 1..=ae {
                self.pages.get_mut(&v).unwrap().alloc_base = e + 1;
            }
        }
        Ok((s * PAGE_SIZE, (e - s + 1) * PAGE_SIZE))
    }

    fn protect(&mut self, base: u64, size: u64, prot: u32) -> Result<(u64, u64, u32), NtStatus> {
        if !is_valid_protection(prot) {
            return Err(STATUS_INVALID_PAGE_PROTECTION);
        }
        if base > MM_HIGHEST_USER_ADDRESS {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
        if size == 0 || MM_HIGHEST_USER_ADDRESS - base < size {
            return Err(STATUS_INVALID_PARAMETER_3);
        }
        let s = base / PAGE_SIZE;
        let e = (base + size - 1) / PAGE_SIZE;
        let Some(first) = self.pages.get(&s) else {
            return Err(STATUS_CONFLICTING_ADDRESSES);
        };
        let ab = first.alloc_base;
        if (s..=e).any(|v| self.pages.get(&v).is_none_or(|p| p.alloc_base != ab)) {
            return Err(STATUS_CONFLICTING_ADDRESSES);
        }
        if protection_copy_on_write(prot) {
            return Err(STATUS_INVALID_PAGE_PROTECTION);
        }
        if (s..=e).any(|v| self.pages[&v].protect == 0) {
            return Err(STATUS_NOT_COMMITTED);
        }
        let old = self.pages[&s].protect;
        for v in s..=e {
            self.pages.get_mut(&v).unwrap().protect = prot;
        }
        Ok((s * PAGE_SIZE, (e - s + 1) * PAGE_SIZE, old))
    }

    fn query(&self, addr: u64) -> Result<MemoryBasicInformation, NtStatus> {
        if addr > MM_HIGHEST_USER_ADDRESS {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let v = addr / PAGE_SIZE;
        if let Some(p) = self.pages.get(&v) {
            let mut n = 1;
            while self
                .pages
                .get(&(v + n))
                .is_some_and(|q| q.alloc_base == p.alloc_base && q.protect == p.protect)
            {
                n += 1;
            }
            return Ok(MemoryBasicInformation {
                base_address: v * PAGE_SIZE,
                allocation_base: p.alloc_base * PAGE_SIZE,
                allocation_protect: self.allocs[&p.alloc_base].1,
                region_size: n * PAGE_SIZE,
                state: if p.protect == 0 {
                    MEM_RESERVE
                } else {
                    MEM_COMMIT
                },
                protect: p.protect,
                type_: MEM_PRIVATE,
            });
        }
        let next = self
            .pages
            .range(v..)
            .next()
            .map_or(MM_HIGHEST_USER_ADDRESS + 1, |(&k, _)| k * PAGE_SIZE);
        Ok(MemoryBasicInformation {
            base_address: v * PAGE_SIZE,
            allocation_base: 0,
            allocation_protect: 0,
            region_size: next - v * PAGE_SIZE,
            state: MEM_FREE,
            protect: PAGE_NOACCESS,
            type_: 0,
        })
    }

    fn access(&mut self, va: u64, kind: AccessKind, value: u64) -> Access {
        if va > MM_HIGHEST_USER_ADDRESS {
            return Access::Raised(STATUS_ACCESS_VIOLATION);
        }
        let Some(p) = self.pages.get_mut(&(va / PAGE_SIZE)) else {
            return Access::Raised(STATUS_ACCESS_VIOLATION);
        };
        if p.protect == 0 {
            return Access::Raised(STATUS_ACCESS_VIOLATION);
        }
        if p.protect & PAGE_GUARD != 0 {
            p.protect &= !PAGE_GUARD;
            return Access::Raised(STATUS_GUARD_PAGE_VIOLATION);
        }
        let base = p.protect & 0xFF;
        let ok = match kind {
            AccessKind::Read => base != PAGE_NOACCESS,
            AccessKind::Write => matches!(base, PAGE_READWRITE | PAGE_EXECUTE_READWRITE),
            AccessKind::Execute => matches!(
                base,
                PAGE_EXECUTE | PAGE_EXECUTE_READ | PAGE_EXECUTE_READWRITE
            ),
        };
        if !ok {
            return Access::Raised(STATUS_ACCESS_VIOLATION);
        }
        if kind == AccessKind::Write {
            p.content = value;
        }
        Access::Value(p.content)
    }
}

#[derive(Clone, Debug)]
enum VmOp {
    Alloc(Addr, u64, u32, u32),
    Free(Addr, u64, u32),
    Protect(Addr, u64, u32),
    Query(Addr),
    Access(Addr, AccessKind, u64),
    Trim(Addr),
    WriteModified,
}

const WINDOW: u64 = 0x80000;

/// An address: raw, or relative to the n-th existing allocation (resolved
/// against the model when the operation runs, so most operations hit memory).
#[derive(Clone, Copy, Debug)]
enum Addr {
    Raw(u64),
    Alloc(usize, u64),
}

impl Addr {
    fn resolve(self, model: &Model) -> u64 {
        match self {
            Addr::Raw(x) => x,
            Addr::Alloc(i, off) => match model.allocs.keys().nth(i % model.allocs.len().max(1)) {
                Some(&k) => k * PAGE_SIZE + off,
                None => MM_LOWEST_USER_ADDRESS + off,
            },
        }
    }
}

fn addr() -> impl Strategy<Value = Addr> {
    prop_oneof![
        3 => (0..WINDOW).prop_map(|x| Addr::Raw(MM_LOWEST_USER_ADDRESS + x)),
        6 => (any::<usize>(), prop_oneof![0u64..0x6000, (0u64..18).prop_map(|p| p * PAGE_SIZE)])
            .prop_map(|(i, o)| Addr::Alloc(i, o)),
        1 => Just(Addr::Raw(0u64)),
        1 => prop::sample::select(vec![0x1000u64, 0x8000_0000_0000, MM_HIGHEST_VAD_ADDRESS - 0xFFFF, 0x10000, MM_HIGHEST_USER_ADDRESS])
            .prop_map(Addr::Raw),
    ]
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0u64..0x30000,
        3 => (1u64..5).prop_map(|p| p * PAGE_SIZE),
        1 => Just(0u64),
        1 => Just(0x7FFF_FFFF_FFFF_0000u64),
    ]
}

fn protect() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![
        PAGE_READWRITE,
        PAGE_READWRITE,
        PAGE_READWRITE,
        PAGE_READWRITE,
        PAGE_READONLY,
        PAGE_NOACCESS,
        PAGE_EXECUTE_READ,
        PAGE_EXECUTE_READWRITE,
        PAGE_READWRITE | PAGE_GUARD,
        PAGE_READONLY | PAGE_NOCACHE,
        PAGE_WRITECOPY,
        0,
        PAGE_NOACCESS | PAGE_GUARD,
        PAGE_READWRITE | PAGE_READONLY,
    ])
}

fn vm_op() -> impl Strategy<Value = VmOp> {
    let alloc_type = prop::sample::select(vec![
        MEM_RESERVE,
        MEM_COMMIT,
        MEM_COMMIT,
        MEM_COMMIT,
        MEM_RESERVE | MEM_COMMIT,
        MEM_RESERVE | MEM_COMMIT,
        MEM_RESERVE | MEM_COMMIT,
        MEM_RESERVE | MEM_COMMIT | MEM_TOP_DOWN,
        MEM_RESERVE | MEM_TOP_DOWN,
        0,
        MEM_DECOMMIT,
        0x4000_0000 | MEM_COMMIT,
    ]);
    let free_type = prop::sample::select(vec![
        MEM_DECOMMIT,
        MEM_DECOMMIT,
        MEM_RELEASE,
        MEM_RELEASE,
        0,
        MEM_RELEASE | MEM_DECOMMIT,
        0x10,
    ]);
    let kind = prop::sample::select(vec![
        AccessKind::Read,
        AccessKind::Write,
        AccessKind::Execute,
    ]);
    prop_oneof![
        4 => (addr(), size(), alloc_type, protect()).prop_map(|(a, s, t, p)| VmOp::Alloc(a, s, t, p)),
        2 => (addr(), size(), free_type).prop_map(|(a, s, t)| VmOp::Free(a, s, t)),
        2 => (addr(), size(), protect()).prop_map(|(a, s, p)| VmOp::Protect(a, s, p)),
        2 => addr().prop_map(VmOp::Query),
        4 => (addr(), kind, 1u64..1000).prop_map(|(a, k, v)| VmOp::Access(a, k, v)),
        1 => addr().prop_map(VmOp::Trim),
        1 => Just(VmOp::WriteModified),
    ]
}

/// Sequences per property test: 2048, or `MM_PROPTEST_CASES` from the environment.
fn cases() -> u32 {
    extern crate std;
    std::env::var("MM_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2048)
}

/// Runs one sequence on a machine with `phys` physical pages and the model;
/// returns (hard faults, soft faults).
fn run_sequence(ops: Vec<VmOp>, phys: u64) -> Result<(u64, u64), TestCaseError> {
    let mut m = Machine::new(phys, 96);
    let mut a = AddressSpace::new();
    let mut model = Model {
        limit: 96,
        ..Model::default()
    };
    for op in ops {
        match op {
            VmOp::Alloc(b, s, t, p) => {
                let b = b.resolve(&model);
                let got = alloc(&mut a, &m, b, s, t, p);
                prop_assert_eq!(
                    got,
                    model.allocate(b, s, t, p),
                    "alloc {:#x} {:#x} {:#x} {:#x}",
                    b,
                    s,
                    t,
                    p
                );
            }
            VmOp::Free(b, s, t) => {
                let b = b.resolve(&model);
                let got = free(&mut a, &mut m, b, s, t);
                prop_assert_eq!(got, model.free(b, s, t), "free {:#x} {:#x} {:#x}", b, s, t);
            }
            VmOp::Protect(b, s, p) => {
                let b = b.resolve(&model);
                let (mut pb, mut ps, mut old) = (b, s, 0);
                let got = a
                    .protect_virtual_memory(&mut pb, &mut ps, p, &mut old)
                    .map(|_| (pb, ps, old));
                prop_assert_eq!(
                    got,
                    model.protect(b, s, p),
                    "protect {:#x} {:#x} {:#x}",
                    b,
                    s,
                    p
                );
            }
            VmOp::Query(x) => {
                let x = x.resolve(&model);
                prop_assert_eq!(a.query_virtual_memory(x), model.query(x), "query {:#x}", x);
            }
            VmOp::Access(x, k, v) => {
                let x = x.resolve(&model);
                let got = m.touch(&mut a, x, k, v);
                prop_assert_eq!(got, model.access(x, k, v), "access {:#x} {:?}", x, k);
            }
            VmOp::Trim(x) => {
                let x = x.resolve(&model);
                let vpn = x / PAGE_SIZE;
                if let Some((pfn, dirty)) = a.trim_page(vpn, false) {
                    if dirty {
                        m.pfn.make_modified(pfn, vpn).unwrap()
                    } else {
                        m.pfn.make_standby(pfn, vpn).unwrap()
                    }
                }
            }
            VmOp::WriteModified => m.write_modified(&mut a),
        }
        prop_assert_eq!(m.commit.used(), model.charged);
        prop_assert_eq!(a.commit_charge(), model.charged);
        a.vads().verify().map_err(TestCaseError::fail)?;
    }
    m.pfn.verify().map_err(TestCaseError::fail)?;
    let freed = a.delete_all(&m.commit);
    m.release(freed);
    prop_assert_eq!(m.commit.used(), 0);
    prop_assert_eq!(m.pfn.counts().active, 0);
    prop_assert_eq!(m.pf.used(), 0);
    m.pfn.verify().map_err(TestCaseError::fail)?;
    Ok((m.hard_faults, m.soft_faults))
}

/// Valid operations only, concentrated on a few allocations: exercises
/// paging (trim, modified writes, repurposing, hard/soft faults) heavily.
fn paging_op() -> impl Strategy<Value = VmOp> {
    let at = (0usize..4, 0u64..8).prop_map(|(i, p)| Addr::Alloc(i, p * PAGE_SIZE + 8));
    let kind = prop::sample::select(vec![AccessKind::Read, AccessKind::Write, AccessKind::Write]);
    prop_oneof![
        1 => (1u64..8, prop::sample::select(vec![MEM_RESERVE | MEM_COMMIT, MEM_RESERVE | MEM_COMMIT | MEM_TOP_DOWN]))
            .prop_map(|(p, t)| VmOp::Alloc(Addr::Raw(0), p * PAGE_SIZE, t, PAGE_READWRITE)),
        1 => (at.clone(), 1u64..4, prop::sample::select(vec![MEM_DECOMMIT, MEM_RELEASE]))
            .prop_map(|(a, p, t)| VmOp::Free(a, p * PAGE_SIZE, t)),
        1 => (at.clone(), 1u64..4).prop_map(|(a, p)| VmOp::Alloc(a, p * PAGE_SIZE, MEM_COMMIT, PAGE_READWRITE)),
        1 => (at.clone(), prop::sample::select(vec![PAGE_READONLY, PAGE_READWRITE, PAGE_READWRITE | PAGE_GUARD]))
            .prop_map(|(a, p)| VmOp::Protect(a, PAGE_SIZE, p)),
        10 => (at.clone(), kind, 1u64..1000).prop_map(|(a, k, v)| VmOp::Access(a, k, v)),
        2 => at.clone().prop_map(VmOp::Trim),
        1 => Just(VmOp::WriteModified),
        1 => at.prop_map(VmOp::Query),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]
    #[test]
    fn services_match_page_model(ops in proptest::collection::vec(vm_op(), 1..120)) {
        run_sequence(ops, 16)?;
    }

    #[test]
    fn paging_under_pressure_matches_page_model(ops in proptest::collection::vec(paging_op(), 1..150)) {
        // 4 physical pages for up to 4 allocations of up to 8 pages.
        run_sequence(ops, 4)?;
    }
}

#[test]
fn dirty_pages_survive_paging_out() {
    // Fill 8x physical memory with dirty pages, then read them all back:
    // modified page writer, repurposing and hard faults.
    let mut m = Machine::new(4, 1000);
    let mut a = AddressSpace::new();
    let (b, _) = alloc(
        &mut a,
        &m,
        0,
        32 * PAGE_SIZE,
        MEM_RESERVE | MEM_COMMIT,
        PAGE_READWRITE,
    )
    .unwrap();
    for i in 0..32 {
        assert_eq!(
            m.touch(&mut a, b + i * PAGE_SIZE, AccessKind::Write, 100 + i),
            Access::Value(100 + i)
        );
    }
    for i in (0..32).rev() {
        assert_eq!(
            m.touch(&mut a, b + i * PAGE_SIZE + 8, AccessKind::Read, 0),
            Access::Value(100 + i)
        );
    }
    assert!(m.hard_faults >= 28, "{}", m.hard_faults);
    assert!(m.pf.used() > 0);
    m.pfn.verify().unwrap();
    let freed = a.delete_all(&m.commit);
    m.release(freed);
    assert_eq!(m.pf.used(), 0);
    assert_eq!(m.pfn.counts().active, 0);
    m.pfn.verify().unwrap();
}
