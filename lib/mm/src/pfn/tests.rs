use super::*;
use alloc::vec;
use proptest::prelude::*;

fn desc(memory_type: MemoryType, base_page: u64, page_count: u64) -> MemoryDescriptor {
    MemoryDescriptor {
        memory_type,
        _pad: 0,
        base_page,
        page_count,
    }
}

fn sample() -> PfnDatabase {
    PfnDatabase::from_descriptors(&[
        desc(MemoryType::FirmwarePermanent, 0, 16),
        desc(MemoryType::Free, 16, 32),
        desc(MemoryType::Bad, 48, 2),
        desc(MemoryType::SystemCode, 64, 8),
        desc(MemoryType::LoadedProgram, 72, 8),
        desc(MemoryType::OsloaderHeap, 80, 4),
    ])
    .unwrap()
}

#[test]
fn built_from_descriptors() {
    let db = sample();
    db.verify().unwrap();
    let c = db.counts();
    assert_eq!(c.free, 40);
    assert_eq!(c.bad, 2);
    assert_eq!(c.active, 16 + 8 + 4);
    assert_eq!(c.zeroed, 0);
    assert_eq!(c.total, 16 + 32 + 2 + 8 + 8 + 4);
    assert_eq!(db.len(), 84);
    assert_eq!(db.entry(50).unwrap().state, PageState::NotPresent);
    assert_eq!(db.entry(48).unwrap().state, PageState::Bad);
    assert_eq!(db.entry(3).unwrap().share_count, 1);
    assert_eq!(db.list(PageState::Free)[0], 16);
    assert!(db.dump(16).unwrap().contains("Free"));
    assert!(db.dump(1000).is_none());
}

#[test]
fn bad_descriptors_rejected() {
    assert!(matches!(
        PfnDatabase::from_descriptors(&[
            desc(MemoryType::Free, 0, 4),
            desc(MemoryType::Free, 3, 4)
        ]),
        Err(PfnError::Overlap { pfn: 3 })
    ));
    assert!(matches!(
        PfnDatabase::from_descriptors(&[desc(MemoryType::Free, u64::MAX, 2)]),
        Err(PfnError::TooLarge { .. })
    ));
    assert!(matches!(
        PfnDatabase::from_descriptors(&[desc(MemoryType::Free, MAX_PFN_DATABASE_PAGES, 1)]),
        Err(PfnError::TooLarge { .. })
    ));
}

#[test]
fn allocation_order_and_zeroing() {
    let mut db = PfnDatabase::from_descriptors(&[desc(MemoryType::Free, 0, 4)]).unwrap();
    // Zero page thread zeroes page 0 and 1.
    let a = db.take_free_for_zeroing().unwrap();
    let b = db.take_free_for_zeroing().unwrap();
    assert_eq!((a, b), (0, 1));
    assert!(db.allocate_page(1, AllocationPreference::Any).is_ok()); // takes free page 2
    db.insert_zeroed(a).unwrap();
    db.insert_zeroed(b).unwrap();
    assert_eq!(
        db.insert_zeroed(b),
        Err(PfnError::WrongState {
            pfn: 1,
            state: PageState::Zeroed
        })
    );
    db.verify().unwrap();
    let p = db
        .allocate_page(0x100, AllocationPreference::Zeroed)
        .unwrap();
    assert_eq!(
        p,
        AllocatedPage {
            pfn: 0,
            needs_zeroing: false,
            repurposed: None
        }
    );
    // Any prefers free (page 3) over zeroed.
    let p = db.allocate_page(0x200, AllocationPreference::Any).unwrap();
    assert_eq!((p.pfn, p.needs_zeroing), (3, true));
    let p = db.allocate_page(0x300, AllocationPreference::Any).unwrap();
    assert_eq!((p.pfn, p.needs_zeroing), (1, false));
    assert_eq!(
        db.allocate_page(0, AllocationPreference::Any),
        Err(PfnError::NoPages)
    );
    db.verify().unwrap();
}

#[test]
fn standby_repurpose_and_soft_fault() {
    let mut db = PfnDatabase::from_descriptors(&[desc(MemoryType::Free, 0, 2)]).unwrap();
    let a = db
        .allocate_page(0xA000, AllocationPreference::Zeroed)
        .unwrap()
        .pfn;
    let b = db
        .allocate_page(0xB000, AllocationPreference::Zeroed)
        .unwrap()
        .pfn;
    db.make_standby(a, 0x1111).unwrap();
    db.make_modified(b, 0x2222).unwrap();
    assert_eq!(db.available_pages(), 1);
    db.soft_fault(a).unwrap();
    assert_eq!(db.entry(a).unwrap().pte_address, 0xA000);
    db.make_standby(a, 0x1111).unwrap();
    // Only the standby page can be repurposed; the modified one must be written first.
    let p = db
        .allocate_page(0xC000, AllocationPreference::Zeroed)
        .unwrap();
    assert_eq!(p.pfn, a);
    assert!(p.needs_zeroing);
    assert_eq!(
        p.repurposed,
        Some(Repurposed {
            pte_address: 0xA000,
            original_pte: 0x1111
        })
    );
    assert_eq!(
        db.soft_fault(a),
        Err(PfnError::WrongState {
            pfn: a,
            state: PageState::Active
        })
    );
    assert_eq!(
        db.allocate_page(0, AllocationPreference::Any),
        Err(PfnError::NoPages)
    );
    // Modified page writer.
    assert_eq!(db.begin_write(), Some(b));
    assert_eq!(db.counts().transition, 1);
    db.verify().unwrap();
    db.complete_write(b, 0x3333).unwrap();
    assert_eq!(db.entry(b).unwrap().state, PageState::Standby);
    let p = db.allocate_page(0xD000, AllocationPreference::Any).unwrap();
    assert_eq!(
        p.repurposed,
        Some(Repurposed {
            pte_address: 0xB000,
            original_pte: 0x3333
        })
    );
    db.verify().unwrap();
}

#[test]
fn mdl_allocation_respects_limits() {
    let mut db = PfnDatabase::from_descriptors(&[desc(MemoryType::Free, 0, 64)]).unwrap();
    let pages = db.allocate_pages_for_mdl(10, 19, 100, 0).unwrap();
    assert_eq!(pages.len(), 10);
    assert!(pages.iter().all(|&(p, z)| (10..=19).contains(&p) && z));
    let pages = db.allocate_pages_for_mdl(0, 63, 5, 0).unwrap();
    assert_eq!(pages.len(), 5);
    assert_eq!(
        db.allocate_pages_for_mdl(5, 4, 1, 0),
        Err(PfnError::InvalidRange)
    );
    assert_eq!(
        db.allocate_pages_for_mdl(64, 70, 1, 0),
        Err(PfnError::InvalidRange)
    );
    for (p, _) in pages {
        db.free_page(p).unwrap();
    }
    assert_eq!(db.counts().free, 54);
    db.verify().unwrap();
}

#[test]
fn claim_specific_pages() {
    let mut db = PfnDatabase::from_descriptors(&[desc(MemoryType::Free, 0, 8)]).unwrap();
    assert_eq!(db.claim_page(5, 0), Ok(false));
    assert_eq!(
        db.claim_page(5, 0),
        Err(PfnError::WrongState {
            pfn: 5,
            state: PageState::Active
        })
    );
    assert_eq!(db.claim_page(8, 0), Err(PfnError::InvalidPfn(8)));
    let z = db.take_free_for_zeroing().unwrap();
    db.insert_zeroed(z).unwrap();
    assert_eq!(db.claim_page(z, 0), Ok(true));
    assert!(!db.list(PageState::Free).contains(&5));
    assert_eq!(db.counts().active, 2);
    db.verify().unwrap();
}

#[test]
fn shares_and_reclaim() {
    let descs = [
        desc(MemoryType::OsloaderHeap, 0, 4),
        desc(MemoryType::Free, 4, 4),
    ];
    let mut db = PfnDatabase::from_descriptors(&descs).unwrap();
    let p = db.allocate_page(1, AllocationPreference::Any).unwrap().pfn;
    assert_eq!(db.add_share(p), Ok(2));
    assert_eq!(db.remove_share(p), Ok(1));
    assert_eq!(db.remove_share(p), Ok(0));
    db.free_page(p).unwrap();
    assert_eq!(
        db.free_page(p),
        Err(PfnError::WrongState {
            pfn: p,
            state: PageState::Free
        })
    );
    assert_eq!(db.free_page(99), Err(PfnError::InvalidPfn(99)));
    assert_eq!(
        db.reclaim_descriptors(&descs, |t| t == MemoryType::OsloaderHeap),
        4
    );
    assert_eq!(db.counts().free, 8);
    db.verify().unwrap();
}

#[derive(Clone, Debug)]
enum Op {
    Alloc(bool),
    Free(usize),
    Standby(usize),
    Modified(usize),
    SoftFault(usize),
    Zero,
    FinishZero(usize),
    Write,
    CompleteWrite(usize),
    Mdl(u64, u64, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<bool>().prop_map(Op::Alloc),
        any::<usize>().prop_map(Op::Free),
        any::<usize>().prop_map(Op::Standby),
        any::<usize>().prop_map(Op::Modified),
        any::<usize>().prop_map(Op::SoftFault),
        Just(Op::Zero),
        any::<usize>().prop_map(Op::FinishZero),
        Just(Op::Write),
        any::<usize>().prop_map(Op::CompleteWrite),
        (0u64..80, 0u64..80, 0u64..8).prop_map(|(a, b, c)| Op::Mdl(a, b, c)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_operations_keep_invariants(ops in proptest::collection::vec(op(), 1..200)) {
        let mut db = sample();
        let mut live: Vec<Pfn> = vec![];
        let mut out: Vec<Pfn> = vec![];
        let mut zeroing: Vec<Pfn> = vec![];
        let mut writing: Vec<Pfn> = vec![];
        let pick = |v: &Vec<Pfn>, i: usize| if v.is_empty() { None } else { Some(v[i % v.len()]) };
        for op in ops {
            let before = db.counts();
            match op {
                Op::Alloc(z) => {
                    let pref = if z { AllocationPreference::Zeroed } else { AllocationPreference::Any };
                    match db.allocate_page(7, pref) {
                        Ok(p) => {
                            if let Some(r) = p.repurposed { prop_assert!(r.pte_address == 7 || r.pte_address == 9); }
                            out.retain(|&x| x != p.pfn);
                            live.push(p.pfn);
                        }
                        Err(e) => {
                            prop_assert_eq!(e, PfnError::NoPages);
                            prop_assert_eq!(before.available(), 0);
                        }
                    }
                }
                Op::Free(i) => if let Some(p) = pick(&live, i) {
                    db.free_page(p).unwrap();
                    live.retain(|&x| x != p);
                },
                Op::Standby(i) => if let Some(p) = pick(&live, i) {
                    db.make_standby(p, 1).unwrap();
                    live.retain(|&x| x != p);
                    out.push(p);
                },
                Op::Modified(i) => if let Some(p) = pick(&live, i) {
                    db.make_modified(p, 1).unwrap();
                    live.retain(|&x| x != p);
                    out.push(p);
                },
                Op::SoftFault(i) => if let Some(p) = pick(&out, i) {
                    match db.entry(p).unwrap().state {
                        PageState::Standby | PageState::Modified => {
                            db.soft_fault(p).unwrap();
                            out.retain(|&x| x != p);
                            live.push(p);
                        }
                        s => prop_assert!(db.soft_fault(p).is_err(), "{s:?}"),
                    }
                },
                Op::Zero => if let Some(p) = db.take_free_for_zeroing() { zeroing.push(p) },
                Op::FinishZero(i) => if let Some(p) = pick(&zeroing, i) {
                    db.insert_zeroed(p).unwrap();
                    zeroing.retain(|&x| x != p);
                },
                Op::Write => if let Some(p) = db.begin_write() {
                    out.retain(|&x| x != p);
                    writing.push(p);
                },
                Op::CompleteWrite(i) => if let Some(p) = pick(&writing, i) {
                    db.complete_write(p, 2).unwrap();
                    writing.retain(|&x| x != p);
                    out.push(p);
                },
                Op::Mdl(lo, hi, n) => match db.allocate_pages_for_mdl(lo, hi, n, 9) {
                    Ok(pages) => {
                        prop_assert!(pages.len() as u64 <= n);
                        for (p, _) in pages {
                            prop_assert!(p >= lo && p <= hi);
                            live.push(p);
                        }
                    }
                    Err(e) => prop_assert_eq!(e, PfnError::InvalidRange),
                },
            }
            db.verify().map_err(TestCaseError::fail)?;
            let c = db.counts();
            prop_assert_eq!(c.total, before.total);
            prop_assert_eq!(c.zeroed + c.free + c.standby + c.modified + c.modified_no_write + c.bad + c.active + c.transition, c.total);
        }
    }
}
