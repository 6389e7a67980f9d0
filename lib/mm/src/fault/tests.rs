use super::*;
use crate::section::SEC_COMMIT;
use crate::vm::CommitCharge;
use crate::*;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use nt::arc::{MemoryDescriptor, MemoryType};

#[derive(Default)]
struct Host {
    mem: BTreeMap<Pfn, u64>,
    disk: BTreeMap<u64, u64>,
    ptes: BTreeMap<Vpn, Pfn>,
    others: BTreeMap<u32, AddressSpace>,
    reads: u64,
    writes: u64,
    foreign: u64,
}

impl FaultHost for Host {
    fn zero_page(&mut self, pfn: Pfn) {
        self.mem.insert(pfn, 0);
    }
    fn copy_page(&mut self, dst: Pfn, src: Pfn) {
        let v = *self.mem.get(&src).unwrap_or(&0);
        self.mem.insert(dst, v);
    }
    fn read_paging_file(&mut self, slot: u64, pfn: Pfn) -> Result<(), NtStatus> {
        self.reads += 1;
        let v = *self.disk.get(&slot).ok_or(STATUS_IN_PAGE_ERROR)?;
        self.mem.insert(pfn, v);
        Ok(())
    }
    fn write_paging_file(&mut self, slot: u64, pfn: Pfn) -> Result<(), NtStatus> {
        self.writes += 1;
        self.disk.insert(slot, *self.mem.get(&pfn).unwrap_or(&0));
        Ok(())
    }
    fn foreign_repurposed(&mut self, process: u32, vpn: Vpn) {
        self.foreign += 1;
        assert!(self.others.get_mut(&process).unwrap().page_repurposed(vpn));
    }
    fn foreign_page_written(
        &mut self,
        process: u32,
        vpn: Vpn,
        pfn: Pfn,
        slot: u64,
    ) -> Result<(), NtStatus> {
        self.foreign += 1 << 32;
        self.others
            .get_mut(&process)
            .unwrap()
            .page_written(vpn, pfn, slot)
    }
    fn set_pte(&mut self, vpn: Vpn, pte: Option<HardwarePte>) {
        match pte {
            Some(p) => self.ptes.insert(vpn, p.pfn),
            None => self.ptes.remove(&vpn),
        };
    }
}

struct World {
    pfn: PfnDatabase,
    sections: SectionTable,
    pf: PagingFile,
    commit: CommitCharge,
    host: Host,
    ws: BTreeMap<u32, WorkingSet>,
}

impl World {
    fn new(pages: u64) -> Self {
        World {
            pfn: PfnDatabase::from_descriptors(&[MemoryDescriptor {
                memory_type: MemoryType::Free,
                _pad: 0,
                base_page: 0,
                page_count: pages,
            }])
            .unwrap(),
            sections: SectionTable::new(),
            pf: PagingFile::new(256),
            commit: CommitCharge::new(10_000),
            host: Host::default(),
            ws: BTreeMap::new(),
        }
    }

    fn space(&mut self, pid: u32) -> &mut AddressSpace {
        self.host.others.entry(pid).or_default()
    }

    /// A user access from process `pid`; a write stores `value`.
    fn access(&mut self, pid: u32, va: u64, kind: AccessKind, value: u64) -> Result<u64, NtStatus> {
        let mut space = self.host.others.remove(&pid).unwrap_or_default();
        let mut ws = self.ws.remove(&pid).unwrap_or_default();
        let r = {
            let mut g = MmGlobals {
                pfn: &mut self.pfn,
                sections: &mut self.sections,
                paging_file: &mut self.pf,
            };
            let mut p = FaultingProcess {
                id: pid,
                space: &mut space,
                ws: &mut ws,
            };
            mm_access_fault(&mut g, &mut p, va, kind, &mut self.host)
        };
        self.host.others.insert(pid, space);
        self.ws.insert(pid, ws);
        let pfn = r?;
        if kind == AccessKind::Write {
            self.host.mem.insert(pfn, value);
        }
        Ok(*self.host.mem.get(&pfn).unwrap_or(&0))
    }

    fn reserve_commit(&mut self, pid: u32, pages: u64) -> u64 {
        let commit = &self.commit;
        let space = self.host.others.entry(pid).or_default();
        let (mut b, mut s) = (0, pages * PAGE_SIZE);
        space
            .allocate_virtual_memory(
                commit,
                &mut b,
                0,
                &mut s,
                MEM_RESERVE | MEM_COMMIT,
                PAGE_READWRITE,
            )
            .unwrap();
        b
    }
}

#[test]
fn one_process_pages_through_four_frames() {
    let mut w = World::new(4);
    let b = w.reserve_commit(1, 32);
    for i in 0..32 {
        assert_eq!(
            w.access(1, b + i * PAGE_SIZE, AccessKind::Write, 1000 + i),
            Ok(1000 + i)
        );
    }
    for i in (0..32).rev() {
        assert_eq!(
            w.access(1, b + i * PAGE_SIZE + 16, AccessKind::Read, 0),
            Ok(1000 + i)
        );
    }
    assert!(
        w.host.writes >= 28 && w.host.reads >= 28,
        "{} {}",
        w.host.writes,
        w.host.reads
    );
    // Every PTE the host holds matches the address space.
    let space = &w.host.others[&1];
    for (&vpn, &pfn) in &w.host.ptes {
        assert_eq!(space.hardware_pte(vpn).map(|p| p.pfn), Some(pfn));
    }
    assert!(w.ws[&1].len() <= 4);
    w.pfn.verify().unwrap();
}

#[test]
fn two_processes_steal_each_others_pages() {
    let mut w = World::new(6);
    let a = w.reserve_commit(1, 8);
    let b = w.reserve_commit(2, 8);
    for round in 0..3u64 {
        for i in 0..8 {
            w.access(1, a + i * PAGE_SIZE, AccessKind::Write, 100 * round + i)
                .unwrap();
            w.access(
                2,
                b + i * PAGE_SIZE,
                AccessKind::Write,
                5000 + 100 * round + i,
            )
            .unwrap();
        }
        for i in 0..8 {
            assert_eq!(
                w.access(1, a + i * PAGE_SIZE, AccessKind::Read, 0),
                Ok(100 * round + i)
            );
            assert_eq!(
                w.access(2, b + i * PAGE_SIZE, AccessKind::Read, 0),
                Ok(5000 + 100 * round + i)
            );
        }
    }
    // Process 1 holds all memory; process 2 cannot get a page until the
    // balance set manager trims process 1.
    let c = w.reserve_commit(1, 6);
    let d = w.reserve_commit(2, 1);
    for i in 0..6 {
        w.access(1, c + i * PAGE_SIZE, AccessKind::Write, 77 + i)
            .unwrap();
    }
    let mut ws2 = w.ws.remove(&2).unwrap();
    let trimmed = trim_working_set(
        &mut ws2,
        w.host.others.get_mut(&2).unwrap(),
        &mut w.pfn,
        100,
        |_| false,
    )
    .unwrap();
    w.ws.insert(2, ws2);
    for t in trimmed {
        w.host.ptes.remove(&t.vpn);
    }
    // Process 2's fault finds only modified pages (process 1's, trimmed
    // while it faulted): it writes them to the paging file and takes one.
    assert!(w.access(2, d, AccessKind::Write, 1).is_ok());
    let mut ws1 = w.ws.remove(&1).unwrap();
    trim_working_set(
        &mut ws1,
        w.host.others.get_mut(&1).unwrap(),
        &mut w.pfn,
        100,
        |_| false,
    )
    .unwrap();
    w.ws.insert(1, ws1);
    for i in 0..8 {
        assert_eq!(
            w.access(2, b + i * PAGE_SIZE, AccessKind::Read, 0),
            Ok(5200 + i)
        );
    }
    for i in 0..6 {
        assert_eq!(
            w.access(1, c + i * PAGE_SIZE, AccessKind::Read, 0),
            Ok(77 + i)
        );
    }
    assert!(w.host.foreign & 0xFFFF_FFFF > 0, "no foreign repurposing");
    assert!(w.host.foreign >> 32 > 0, "no foreign page writes");
    w.pfn.verify().unwrap();
    // Tear everything down: no frame or paging-file slot leaks.
    for pid in [1, 2] {
        let mut space = w.host.others.remove(&pid).unwrap();
        w.sections
            .delete_address_space(&mut space, &w.commit, &mut w.pfn, &mut w.pf)
            .unwrap();
    }
    assert_eq!(w.pfn.counts().active, 0);
    assert_eq!(w.pf.used(), 0);
    assert_eq!(w.commit.used(), 0);
    w.pfn.verify().unwrap();
}

#[test]
fn exceptions_sections_and_copy_on_write() {
    let mut w = World::new(8);
    let b = w.reserve_commit(1, 2);
    let mut old = 0;
    let (mut pb, mut ps) = (b, PAGE_SIZE);
    w.space(1)
        .protect_virtual_memory(&mut pb, &mut ps, PAGE_READONLY | PAGE_GUARD, &mut old)
        .unwrap();
    assert_eq!(
        w.access(1, b, AccessKind::Read, 0),
        Err(STATUS_GUARD_PAGE_VIOLATION)
    );
    assert_eq!(
        w.access(1, b, AccessKind::Write, 1),
        Err(STATUS_ACCESS_VIOLATION)
    );
    assert_eq!(w.access(1, b, AccessKind::Read, 0), Ok(0));
    assert_eq!(
        w.access(1, 0x1234, AccessKind::Read, 0),
        Err(STATUS_ACCESS_VIOLATION)
    );
    assert_eq!(
        w.access(1, b + PAGE_SIZE, AccessKind::Execute, 0),
        Err(STATUS_ACCESS_VIOLATION)
    );

    let id = w
        .sections
        .create_section(&w.commit, 0x1000, PAGE_READWRITE, SEC_COMMIT)
        .unwrap();
    let mut views = Vec::new();
    for (pid, prot) in [
        (1, PAGE_READWRITE),
        (2, PAGE_READWRITE),
        (3, PAGE_WRITECOPY),
    ] {
        let space = w.host.others.entry(pid).or_default();
        let (mut base, mut off, mut size) = (0, 0, 0);
        w.sections
            .map_view_of_section(id, space, &mut base, 0, &mut off, &mut size, 0, prot)
            .unwrap();
        views.push(base);
    }
    assert_eq!(w.access(1, views[0], AccessKind::Write, 7), Ok(7));
    assert_eq!(w.access(2, views[1], AccessKind::Read, 0), Ok(7));
    assert_eq!(w.access(3, views[2], AccessKind::Write, 9), Ok(9));
    assert_eq!(w.access(1, views[0], AccessKind::Read, 0), Ok(7));
    assert_eq!(w.access(3, views[2], AccessKind::Read, 0), Ok(9));
    w.pfn.verify().unwrap();
}

#[test]
fn owner_cookies_round_trip() {
    assert_eq!(
        decode_owner(owner_cookie(7, 0x7_FFFF_FFFF)),
        Some((7, 0x7_FFFF_FFFF))
    );
    assert_eq!(decode_owner(0), None);
    assert_eq!(decode_owner(SECTION_OWNER | 5), None);
}
