//! Pagefile-backed section objects (*Windows Internals* 7th ed., Part 1,
//! ch. 5, "Shared memory and mapped files", "Section objects",
//! "Copy-on-write"): `NtCreateSection` without a file, `NtMapViewOfSection`,
//! `NtUnmapViewOfSection`.
//!
//! A [`Section`] keeps one prototype PTE per page (here: the frame, if any)
//! shared by every view, so a page written through one view is seen through
//! all others. A view mapped `PAGE_WRITECOPY` gets a private copy of a page
//! on its first write ([`FaultResolution::CopyOnWrite`](crate::vm::FaultResolution)).
//! Section pages are charged to the commit limit when the section is created
//! (`SEC_COMMIT`) and owned by the section until it is deleted; each view
//! mapping a page holds one share of it.
//!
//! Not done: file-backed and image sections (need the I/O manager),
//! `SEC_RESERVE`, `ViewUnmap` inheritance, trimming of section pages.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use nt::status::*;

use crate::pagefile::PagingFile;
use crate::pfn::{AllocationPreference, PfnDatabase, Repurposed};
use crate::vad::SearchDirection;
use crate::vm::{
    section_allows, zero_bits_limit, AddressSpace, CommitCharge, FreedFrame, Region, RegionKind,
};
use crate::*;

/// `SEC_COMMIT`.
pub const SEC_COMMIT: u32 = 0x800_0000;
/// `SEC_RESERVE`.
pub const SEC_RESERVE: u32 = 0x400_0000;
/// `SEC_IMAGE`.
pub const SEC_IMAGE: u32 = 0x100_0000;
/// `SEC_NOCACHE`.
pub const SEC_NOCACHE: u32 = 0x1000_0000;
/// `SEC_LARGE_PAGES`.
pub const SEC_LARGE_PAGES: u32 = 0x8000_0000;

/// Owner cookie ntrs puts in `PfnEntry::pte_address` for section pages
/// (the prototype PTE's address in NT): `SECTION_OWNER | id << 32 | page`.
pub const SECTION_OWNER: u64 = 1 << 63;

/// The section object (`SECTION` + `CONTROL_AREA` + `SEGMENT` collapsed).
#[derive(Clone, Debug)]
pub struct Section {
    /// Size in bytes, rounded up to pages.
    pub size: u64,
    /// `SectionPageProtection`: the most a view may use.
    pub protect: u32,
    /// Prototype PTEs: the frame of each page once touched.
    prototypes: Vec<Option<Pfn>>,
    /// `NumberOfMappedViews`.
    pub views: u32,
    /// The object was closed; it goes away with its last view.
    closed: bool,
    /// A data section of a file: the control area id (`::mm::control`)
    /// whose prototype PTEs back the pages (the kernel supplies their frames
    /// through [`FaultHost::file_page`](crate::fault::FaultHost::file_page));
    /// `None` for a pagefile-backed section.
    pub file: Option<u32>,
    /// An image section (`SEC_IMAGE`): where it wants to be mapped and
    /// each page's protection.
    pub image: Option<ImageView>,
}

/// What a view of an image section needs from the image's layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageView {
    /// `ImageBase`.
    pub image_base: u64,
    /// Per-page protection runs (`ImageLayout::protection_runs`).
    pub runs: Vec<(u64, u64, u32)>,
    /// The image may be mapped elsewhere (it has relocations).
    pub relocatable: bool,
}

impl Section {
    /// Number of pages.
    pub fn pages(&self) -> u64 {
        self.size / PAGE_SIZE
    }
    /// The frame behind page `i`, if it has been touched.
    pub fn prototype(&self, i: u64) -> Option<Pfn> {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.prototypes.get(i).copied().flatten())
    }
}

/// What [`SectionTable::resolve_fault`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionPageFrame {
    pub pfn: Pfn,
    /// The frame was just allocated and is not known to be zero: zero it.
    pub needs_zeroing: bool,
    /// A standby page of some process was repurposed for it.
    pub repurposed: Option<Repurposed>,
}

/// All section objects of the system, by id (the kernel's object manager
/// holds the ids in its section objects).
#[derive(Clone, Debug, Default)]
pub struct SectionTable {
    sections: BTreeMap<u32, Section>,
    next_id: u32,
    deleted_files: Vec<u32>,
}

impl SectionTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A section by id.
    pub fn get(&self, id: u32) -> Option<&Section> {
        self.sections.get(&id)
    }

    /// Number of live sections.
    pub fn len(&self) -> usize {
        self.sections.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    /// `NtCreateSection(..., MaximumSize, SectionPageProtection,
    /// AllocationAttributes, FileHandle = NULL)`: a pagefile-backed
    /// `SEC_COMMIT` section of `size` bytes (rounded up to pages), charged to
    /// the commit limit. Size 0 → `STATUS_INVALID_PARAMETER_4`; a bad
    /// protection (or `PAGE_GUARD`) → `STATUS_INVALID_PAGE_PROTECTION`;
    /// unknown attributes → `STATUS_INVALID_PARAMETER_6`; `SEC_RESERVE`,
    /// `SEC_IMAGE`, `SEC_LARGE_PAGES` → `STATUS_NOT_IMPLEMENTED`.
    pub fn create_section(
        &mut self,
        commit: &CommitCharge,
        size: u64,
        protect: u32,
        attributes: u32,
    ) -> Result<u32, NtStatus> {
        let known = SEC_COMMIT | SEC_RESERVE | SEC_IMAGE | SEC_NOCACHE | SEC_LARGE_PAGES;
        if attributes & !known != 0 {
            return Err(STATUS_INVALID_PARAMETER_6);
        }
        if size == 0 {
            return Err(STATUS_INVALID_PARAMETER_4);
        }
        if !is_valid_protection(protect) || protect & PAGE_GUARD != 0 {
            return Err(STATUS_INVALID_PAGE_PROTECTION);
        }
        if attributes & (SEC_RESERVE | SEC_IMAGE | SEC_LARGE_PAGES) != 0 {
            return Err(STATUS_NOT_IMPLEMENTED);
        }
        let pages = size
            .checked_add(PAGE_SIZE - 1)
            .ok_or(STATUS_SECTION_TOO_BIG)?
            / PAGE_SIZE;
        let len = usize::try_from(pages).map_err(|_| STATUS_SECTION_TOO_BIG)?;
        let mut prototypes = Vec::new();
        prototypes
            .try_reserve_exact(len)
            .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        prototypes.resize(len, None);
        commit.charge(pages)?;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.sections.insert(
            id,
            Section {
                size: pages * PAGE_SIZE,
                protect,
                prototypes,
                views: 0,
                closed: false,
                file: None,
                image: None,
            },
        );
        Ok(id)
    }

    /// `NtCreateSection(..., FileHandle)` for a data file: a section of
    /// `size` bytes (the kernel checked it against the file) over control
    /// area `control_area`. Not charged to the commit limit (the file backs
    /// it). Size 0 → `STATUS_MAPPED_FILE_SIZE_ZERO`; a bad protection →
    /// `STATUS_INVALID_PAGE_PROTECTION`.
    pub fn create_file_section(
        &mut self,
        control_area: u32,
        size: u64,
        protect: u32,
    ) -> Result<u32, NtStatus> {
        if size == 0 {
            return Err(STATUS_MAPPED_FILE_SIZE_ZERO);
        }
        if !is_valid_protection(protect) || protect & PAGE_GUARD != 0 {
            return Err(STATUS_INVALID_PAGE_PROTECTION);
        }
        let pages = size.div_ceil(PAGE_SIZE);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.sections.insert(
            id,
            Section {
                size: pages * PAGE_SIZE,
                protect,
                prototypes: Vec::new(),
                views: 0,
                closed: false,
                file: Some(control_area),
                image: None,
            },
        );
        Ok(id)
    }

    /// `NtCreateSection(..., SEC_IMAGE, FileHandle)`: a section over the
    /// image control area `control_area` whose (validated) layout is
    /// `layout`. Its page protection is `PAGE_EXECUTE_WRITECOPY` (the most
    /// any image page allows); not charged to commit (the file backs it;
    /// NT charges the writable pages, ntrs charges their copies only when
    /// they are made — a deviation).
    pub fn create_image_section(
        &mut self,
        control_area: u32,
        layout: &crate::image::ImageLayout,
    ) -> Result<u32, NtStatus> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.sections.insert(
            id,
            Section {
                size: layout.pages * PAGE_SIZE,
                protect: PAGE_EXECUTE_WRITECOPY,
                prototypes: Vec::new(),
                views: 0,
                closed: false,
                file: Some(control_area),
                image: Some(ImageView {
                    image_base: layout.image_base,
                    runs: layout.protection_runs(),
                    relocatable: !layout.relocs_stripped,
                }),
            },
        );
        Ok(id)
    }

    /// `NtMapViewOfSection` of an image section (`MiMapViewOfImageSection`):
    /// the whole image, each page with its subsection's protection (the
    /// caller's protection is ignored, as NT ignores it for images). With
    /// `*base` 0 the view goes at the image's `ImageBase`; if that range is
    /// taken (or not in the user range) a relocatable image goes at the
    /// lowest free range and the result is `Ok(false)` (the caller returns
    /// `STATUS_IMAGE_NOT_AT_BASE`; ntrs does not apply the relocations —
    /// the loader does), an image without relocations fails with
    /// `STATUS_CONFLICTING_ADDRESSES`. A base given must be 64 KiB aligned
    /// (`STATUS_MAPPED_ALIGNMENT`) and free. `Ok(true)`: mapped at
    /// `ImageBase`.
    pub fn map_image_view(
        &mut self,
        id: u32,
        space: &mut AddressSpace,
        base: &mut u64,
        zero_bits: u64,
        view_size: &mut u64,
    ) -> Result<bool, NtStatus> {
        let s = self.sections.get_mut(&id).ok_or(STATUS_INVALID_HANDLE)?;
        let img = s.image.as_ref().ok_or(STATUS_INVALID_PARAMETER)?;
        let highest = zero_bits_limit(zero_bits).map_err(|_| STATUS_INVALID_PARAMETER_4)?;
        let pages = s.size / PAGE_SIZE;
        let fits = |start: u64| {
            start >= MM_LOWEST_USER_ADDRESS
                && start.checked_add(s.size - 1).is_some_and(|e| e <= highest)
                && space.range_is_free(start / PAGE_SIZE, start / PAGE_SIZE + pages - 1)
        };
        let start = if *base != 0 {
            if !(*base).is_multiple_of(ALLOCATION_GRANULARITY) {
                return Err(STATUS_MAPPED_ALIGNMENT);
            }
            if !fits(*base) {
                return Err(STATUS_CONFLICTING_ADDRESSES);
            }
            *base
        } else if fits(img.image_base) {
            img.image_base
        } else if img.relocatable {
            space
                .find_free_range(pages, highest, SearchDirection::BottomUp)
                .ok_or(STATUS_NO_MEMORY)?
                * PAGE_SIZE
        } else {
            return Err(STATUS_CONFLICTING_ADDRESSES);
        };
        let vpn = start / PAGE_SIZE;
        space.insert_view(
            vpn,
            vpn + pages - 1,
            Region::image_view(id, pages, &img.runs),
        )?;
        s.views += 1;
        *base = start;
        *view_size = s.size;
        Ok(start == img.image_base)
    }

    /// Control areas of file sections deleted since the last call: the
    /// kernel drops each one's section reference.
    pub fn take_deleted_files(&mut self) -> Vec<u32> {
        core::mem::take(&mut self.deleted_files)
    }

    /// The last handle to the section was closed. Like `MiSectionDelete`, the
    /// section is deleted once its last view is unmapped: its pages go back
    /// to the free list and its commitment is returned.
    pub fn close_section(
        &mut self,
        id: u32,
        commit: &CommitCharge,
        pfn_db: &mut PfnDatabase,
    ) -> Result<(), NtStatus> {
        let s = self.sections.get_mut(&id).ok_or(STATUS_INVALID_HANDLE)?;
        s.closed = true;
        if s.views == 0 {
            self.delete(id, commit, pfn_db);
        }
        Ok(())
    }

    fn delete(&mut self, id: u32, commit: &CommitCharge, pfn_db: &mut PfnDatabase) {
        if let Some(s) = self.sections.remove(&id) {
            if let Some(ca) = s.file {
                self.deleted_files.push(ca);
                return;
            }
            for pfn in s.prototypes.iter().flatten() {
                let _ = pfn_db.free_page(*pfn);
            }
            commit.uncharge(s.pages());
        }
    }

    /// Resolves [`FaultResolution::SectionPage`](crate::vm::FaultResolution)
    /// (`MiResolveProtoPteFault`): the frame of page `page`, allocated (zeroed)
    /// on first touch; either way the faulting view takes one share. The
    /// kernel then calls [`AddressSpace::map_page`].
    pub fn resolve_fault(
        &mut self,
        pfn_db: &mut PfnDatabase,
        id: u32,
        page: u64,
    ) -> Result<SectionPageFrame, NtStatus> {
        let s = self.sections.get_mut(&id).ok_or(STATUS_INVALID_HANDLE)?;
        let slot = usize::try_from(page)
            .ok()
            .and_then(|i| s.prototypes.get_mut(i))
            .ok_or(STATUS_INVALID_PARAMETER)?;
        if let Some(pfn) = *slot {
            pfn_db.add_share(pfn).map_err(|_| STATUS_INTERNAL_ERROR)?;
            return Ok(SectionPageFrame {
                pfn,
                needs_zeroing: false,
                repurposed: None,
            });
        }
        let owner = SECTION_OWNER | (u64::from(id) << 32) | (page & 0xFFFF_FFFF);
        let p = pfn_db
            .allocate_page(owner, AllocationPreference::Zeroed)
            .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        pfn_db.add_share(p.pfn).map_err(|_| STATUS_INTERNAL_ERROR)?;
        *slot = Some(p.pfn);
        Ok(SectionPageFrame {
            pfn: p.pfn,
            needs_zeroing: p.needs_zeroing,
            repurposed: p.repurposed,
        })
    }

    /// `NtMapViewOfSection(Section, Process, BaseAddress, ZeroBits,
    /// CommitSize, SectionOffset, ViewSize, InheritDisposition,
    /// AllocationType, Win32Protect)` for a pagefile-backed section.
    ///
    /// With a base address, it and the offset must agree modulo 64 KiB
    /// (`STATUS_MAPPED_ALIGNMENT`); both are rounded down to 64 KiB and the
    /// view grows by the difference. `view_size` 0 maps to the end of the
    /// section; a view beyond the end is `STATUS_INVALID_VIEW_SIZE`. The
    /// protection must be valid (`STATUS_INVALID_PAGE_PROTECTION`) and
    /// allowed by the section (`STATUS_SECTION_PROTECTION`). `base`,
    /// `section_offset` and `view_size` receive the rounded values.
    #[allow(clippy::too_many_arguments)]
    pub fn map_view_of_section(
        &mut self,
        id: u32,
        space: &mut AddressSpace,
        base: &mut u64,
        zero_bits: u64,
        section_offset: &mut u64,
        view_size: &mut u64,
        allocation_type: u32,
        protect: u32,
    ) -> Result<(), NtStatus> {
        let s = self.sections.get_mut(&id).ok_or(STATUS_INVALID_HANDLE)?;
        let highest = zero_bits_limit(zero_bits).map_err(|_| STATUS_INVALID_PARAMETER_4)?;
        if allocation_type & !(MEM_TOP_DOWN | MEM_RESERVE) != 0 {
            return Err(STATUS_INVALID_PARAMETER_9);
        }
        if !is_valid_protection(protect) {
            return Err(STATUS_INVALID_PAGE_PROTECTION);
        }
        if !section_allows(s.protect, protect) {
            return Err(STATUS_SECTION_PROTECTION);
        }
        let (b, off, vs) = (*base, *section_offset, *view_size);
        if b != 0 && b % ALLOCATION_GRANULARITY != off % ALLOCATION_GRANULARITY {
            return Err(STATUS_MAPPED_ALIGNMENT);
        }
        let delta = off % ALLOCATION_GRANULARITY;
        let off = off - delta;
        if off >= s.size {
            return Err(STATUS_INVALID_VIEW_SIZE);
        }
        let size = if vs == 0 {
            s.size - off
        } else {
            let size = vs.checked_add(delta).ok_or(STATUS_INVALID_VIEW_SIZE)?;
            let size = size
                .checked_add(PAGE_SIZE - 1)
                .ok_or(STATUS_INVALID_VIEW_SIZE)?
                & !(PAGE_SIZE - 1);
            if size > s.size - off {
                return Err(STATUS_INVALID_VIEW_SIZE);
            }
            size
        };
        let pages = size / PAGE_SIZE;
        let start = if b == 0 {
            let dir = if allocation_type & MEM_TOP_DOWN != 0 {
                SearchDirection::TopDown
            } else {
                SearchDirection::BottomUp
            };
            space
                .find_free_range(pages, highest, dir)
                .ok_or(STATUS_NO_MEMORY)?
        } else {
            let start = b - delta;
            if start < MM_LOWEST_USER_ADDRESS
                || start.checked_add(size - 1).is_none_or(|e| e > highest)
            {
                return Err(STATUS_INVALID_PARAMETER_3);
            }
            start / PAGE_SIZE
        };
        let end = start + pages - 1;
        if !space.range_is_free(start, end) {
            return Err(STATUS_CONFLICTING_ADDRESSES);
        }
        space.insert_view(
            start,
            end,
            Region::view(id, off / PAGE_SIZE, s.protect, pages, protect),
        )?;
        s.views += 1;
        *base = start * PAGE_SIZE;
        *section_offset = off;
        *view_size = size;
        Ok(())
    }

    /// `NtUnmapViewOfSection(Process, BaseAddress)`: `va` may be anywhere in
    /// the view; otherwise `STATUS_NOT_MAPPED_VIEW`. The view's frames are
    /// released here (`vm::release_frames`: shared pages lose a share,
    /// copy-on-write copies are freed, paging-file slots released) and
    /// returned so the kernel clears the PTEs. Deletes a closed section with
    /// its last view.
    pub fn unmap_view_of_section(
        &mut self,
        space: &mut AddressSpace,
        va: u64,
        commit: &CommitCharge,
        pfn_db: &mut PfnDatabase,
        paging_file: &mut PagingFile,
    ) -> Result<Vec<FreedFrame>, NtStatus> {
        if va > MM_HIGHEST_USER_ADDRESS {
            return Err(STATUS_NOT_MAPPED_VIEW);
        }
        let vad = space.remove_view(va / PAGE_SIZE)?;
        let frames: Vec<FreedFrame> = vad
            .data
            .frames()
            .map(|(k, frame)| FreedFrame {
                vpn: vad.start + k,
                frame,
            })
            .collect();
        crate::vm::release_frames(pfn_db, paging_file, &frames)
            .map_err(|_| STATUS_INTERNAL_ERROR)?;
        if let RegionKind::Mapped { section, .. } = vad.data.kind {
            if let Some(s) = self.sections.get_mut(&section) {
                s.views = s.views.saturating_sub(1);
                if s.views == 0 && s.closed {
                    self.delete(section, commit, pfn_db);
                }
            }
        }
        Ok(frames)
    }
}

impl SectionTable {
    /// Process exit (`MmCleanProcessAddressSpace`): unmaps every view of
    /// `space` (so the sections' view counts drop and closed sections are
    /// deleted), then deletes the private memory. All frames are released
    /// to the PFN database and the paging file; the list is returned so the
    /// kernel can tear down the page tables.
    pub fn delete_address_space(
        &mut self,
        space: &mut AddressSpace,
        commit: &CommitCharge,
        pfn_db: &mut PfnDatabase,
        paging_file: &mut PagingFile,
    ) -> Result<Vec<FreedFrame>, NtStatus> {
        let views: Vec<u64> = space
            .vads()
            .iter()
            .filter(|v| matches!(v.data.kind, RegionKind::Mapped { .. }))
            .map(|v| v.start * PAGE_SIZE)
            .collect();
        let mut freed = Vec::new();
        for va in views {
            freed.extend(self.unmap_view_of_section(space, va, commit, pfn_db, paging_file)?);
        }
        let private = space.delete_all(commit);
        crate::vm::release_frames(pfn_db, paging_file, &private)
            .map_err(|_| STATUS_INTERNAL_ERROR)?;
        freed.extend(private);
        Ok(freed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::{AccessKind, FaultResolution};
    use nt::arc::{MemoryDescriptor, MemoryType};

    struct Sys {
        pfn: PfnDatabase,
        mem: BTreeMap<Pfn, u64>,
        commit: CommitCharge,
        sections: SectionTable,
    }

    impl Sys {
        fn new() -> Self {
            Sys {
                pfn: PfnDatabase::from_descriptors(&[MemoryDescriptor {
                    memory_type: MemoryType::Free,
                    _pad: 0,
                    base_page: 0,
                    page_count: 64,
                }])
                .unwrap(),
                mem: BTreeMap::new(),
                commit: CommitCharge::new(100),
                sections: SectionTable::new(),
            }
        }

        fn touch(
            &mut self,
            a: &mut AddressSpace,
            va: u64,
            kind: AccessKind,
            value: u64,
        ) -> Result<u64, NtStatus> {
            for _ in 0..4 {
                match a.access(va, kind) {
                    FaultResolution::AlreadyValid { pfn } => {
                        if kind == AccessKind::Write {
                            self.mem.insert(pfn, value);
                        }
                        return Ok(*self.mem.get(&pfn).unwrap_or(&0));
                    }
                    FaultResolution::SectionPage { vpn, section, page } => {
                        let f = self.sections.resolve_fault(&mut self.pfn, section, page)?;
                        if f.needs_zeroing {
                            self.mem.insert(f.pfn, 0);
                        }
                        a.map_page(vpn, f.pfn)?;
                    }
                    FaultResolution::CopyOnWrite { vpn, shared_pfn } => {
                        let p = self
                            .pfn
                            .allocate_page(vpn, AllocationPreference::Any)
                            .unwrap();
                        let v = *self.mem.get(&shared_pfn).unwrap_or(&0);
                        self.mem.insert(p.pfn, v);
                        let old = a.complete_copy_on_write(vpn, p.pfn)?;
                        assert_eq!(old, shared_pfn);
                        self.pfn.remove_share(old).unwrap();
                    }
                    FaultResolution::DemandZero { vpn } => {
                        let p = self
                            .pfn
                            .allocate_page(vpn, AllocationPreference::Zeroed)
                            .unwrap();
                        self.mem.insert(p.pfn, 0);
                        a.map_page(vpn, p.pfn)?;
                    }
                    other => return Err(other.status()),
                }
            }
            panic!("unresolved");
        }
    }

    fn map(
        sys: &mut Sys,
        id: u32,
        a: &mut AddressSpace,
        base: u64,
        off: u64,
        size: u64,
        prot: u32,
    ) -> Result<(u64, u64, u64), NtStatus> {
        let (mut b, mut o, mut s) = (base, off, size);
        sys.sections
            .map_view_of_section(id, a, &mut b, 0, &mut o, &mut s, 0, prot)
            .map(|_| (b, o, s))
    }

    #[test]
    fn image_views() {
        use crate::image::tests::build_pe;
        let f = build_pe(
            &[
                (".text", 0x1000, 0x1000, 0x200, 0x6000_0020),
                (".rdata", 0x2000, 0x100, 0x200, 0x4000_0040),
                (".data", 0x3000, 0x100, 0x200, 0xC000_0040),
            ],
            0x4000,
        );
        let layout = crate::image::ImageLayout::from_headers(&f, f.len() as u64).unwrap();
        let mut t = SectionTable::new();
        let id = t.create_image_section(9, &layout).unwrap();
        assert_eq!(t.get(id).unwrap().file, Some(9));
        let mut a = AddressSpace::new();
        let (mut base, mut size) = (0, 0);
        assert_eq!(
            t.map_image_view(id, &mut a, &mut base, 0, &mut size),
            Ok(true)
        );
        assert_eq!((base, size), (0x1_4000_0000, 0x4000));
        let q = |a: &AddressSpace, rva: u64| a.query_virtual_memory(0x1_4000_0000 + rva).unwrap();
        assert_eq!(q(&a, 0).type_, MEM_IMAGE);
        assert_eq!(q(&a, 0).allocation_protect, PAGE_EXECUTE_WRITECOPY);
        assert_eq!(
            [0, 0x1000, 0x2000, 0x3000].map(|r| q(&a, r).protect),
            [
                PAGE_READONLY,
                PAGE_EXECUTE_READ,
                PAGE_READONLY,
                PAGE_WRITECOPY
            ]
        );
        // The base is taken now: a second view is relocated.
        let (mut b2, mut s2) = (0, 0);
        assert_eq!(t.map_image_view(id, &mut a, &mut b2, 0, &mut s2), Ok(false));
        assert_ne!(b2, base);
        assert_eq!(t.get(id).unwrap().views, 2);
        let (mut b3, mut s3) = (0x1_4000_1000, 0);
        assert_eq!(
            t.map_image_view(id, &mut a, &mut b3, 0, &mut s3),
            Err(STATUS_MAPPED_ALIGNMENT)
        );
        // Writes to image pages: copy-on-write, never to the section's frame.
        let data = 0x1_4000_3000;
        assert!(matches!(
            a.access(data, AccessKind::Write),
            FaultResolution::SectionPage { page: 3, .. }
        ));
        a.map_page(data >> 12, 77).unwrap();
        assert_eq!(
            a.access(data, AccessKind::Write),
            FaultResolution::CopyOnWrite {
                vpn: data >> 12,
                shared_pfn: 77
            }
        );
        assert_eq!(
            a.access(0x1_4000_1000, AccessKind::Write),
            FaultResolution::AccessViolation
        );
        assert!(matches!(
            a.access(0x1_4000_1000, AccessKind::Execute),
            FaultResolution::SectionPage { page: 1, .. }
        ));
        // VirtualProtect(PAGE_READWRITE) on an image page is copy-on-write.
        let (mut pb, mut ps, mut old) = (0x1_4000_2000, 0x1000, 0);
        a.protect_virtual_memory(&mut pb, &mut ps, PAGE_READWRITE, &mut old)
            .unwrap();
        assert_eq!(old, PAGE_READONLY);
        assert_eq!(q(&a, 0x2000).protect, PAGE_WRITECOPY);
        // An image without relocations cannot move.
        let mut stripped = layout.clone();
        stripped.relocs_stripped = true;
        let id2 = t.create_image_section(10, &stripped).unwrap();
        let (mut b4, mut s4) = (0, 0);
        assert_eq!(
            t.map_image_view(id2, &mut a, &mut b4, 0, &mut s4),
            Err(STATUS_CONFLICTING_ADDRESSES)
        );
    }

    #[test]
    fn shared_memory_and_copy_on_write() {
        let mut sys = Sys::new();
        let id = sys
            .sections
            .create_section(&sys.commit, 0x3000, PAGE_READWRITE, SEC_COMMIT)
            .unwrap();
        assert_eq!(sys.commit.used(), 3);
        let mut a = AddressSpace::new();
        let mut b = AddressSpace::new();
        let mut c = AddressSpace::new();
        let (va, _, vs) = map(&mut sys, id, &mut a, 0, 0, 0, PAGE_READWRITE).unwrap();
        assert_eq!(vs, 0x3000);
        let (vb, _, _) = map(&mut sys, id, &mut b, 0, 0, 0x3000, PAGE_READWRITE).unwrap();
        let (vc, _, _) = map(&mut sys, id, &mut c, 0, 0, 0, PAGE_WRITECOPY).unwrap();
        let info = a.query_virtual_memory(va).unwrap();
        assert_eq!(
            (info.type_, info.state, info.region_size),
            (MEM_MAPPED, MEM_COMMIT, 0x3000)
        );

        // Two address spaces share data.
        assert_eq!(
            sys.touch(&mut a, va + 0x1000, AccessKind::Write, 11),
            Ok(11)
        );
        assert_eq!(sys.touch(&mut b, vb + 0x1000, AccessKind::Read, 0), Ok(11));
        assert_eq!(sys.touch(&mut c, vc + 0x1000, AccessKind::Read, 0), Ok(11));
        // The copy-on-write view gets a private copy on its first write.
        assert!(!c.hardware_pte(vc / PAGE_SIZE + 1).unwrap().writable);
        assert_eq!(
            sys.touch(&mut c, vc + 0x1000, AccessKind::Write, 22),
            Ok(22)
        );
        assert!(c.hardware_pte(vc / PAGE_SIZE + 1).unwrap().writable);
        assert_eq!(
            c.query_virtual_memory(vc + 0x1000).unwrap().protect,
            PAGE_READWRITE
        );
        assert_eq!(c.query_virtual_memory(vc).unwrap().protect, PAGE_WRITECOPY);
        assert_eq!(sys.touch(&mut a, va + 0x1000, AccessKind::Read, 0), Ok(11));
        assert_eq!(
            sys.touch(&mut b, vb + 0x1000, AccessKind::Write, 33),
            Ok(33)
        );
        assert_eq!(sys.touch(&mut a, va + 0x1000, AccessKind::Read, 0), Ok(33));
        assert_eq!(sys.touch(&mut c, vc + 0x1000, AccessKind::Read, 0), Ok(22));
        let shared = sys.sections.get(id).unwrap().prototype(1).unwrap();
        assert_eq!(sys.pfn.entry(shared).unwrap().share_count, 3); // section + a + b

        // Views cannot be freed with NtFreeVirtualMemory.
        let (mut fb, mut fs) = (va, 0);
        assert_eq!(
            a.free_virtual_memory(&sys.commit, &mut fb, &mut fs, MEM_RELEASE),
            Err(STATUS_UNABLE_TO_DELETE_SECTION)
        );
        // Unmap everything; closing the section frees its pages.
        sys.sections
            .close_section(id, &sys.commit, &mut sys.pfn)
            .unwrap();
        assert!(sys.sections.get(id).is_some());
        for (space, v) in [(&mut a, va + 0x2000), (&mut b, vb), (&mut c, vc + 0x1fff)] {
            sys.sections
                .unmap_view_of_section(space, v, &sys.commit, &mut sys.pfn, &mut PagingFile::new(0))
                .unwrap();
        }
        assert!(sys.sections.is_empty());
        assert_eq!(sys.commit.used(), 0);
        assert_eq!(sys.pfn.counts().active, 0);
        sys.pfn.verify().unwrap();
        assert_eq!(
            sys.sections.unmap_view_of_section(
                &mut a,
                va,
                &sys.commit,
                &mut sys.pfn,
                &mut PagingFile::new(0)
            ),
            Err(STATUS_NOT_MAPPED_VIEW)
        );
    }

    #[test]
    fn process_exit_unmaps_views() {
        let mut sys = Sys::new();
        let id = sys
            .sections
            .create_section(&sys.commit, 0x2000, PAGE_READWRITE, SEC_COMMIT)
            .unwrap();
        let mut a = AddressSpace::new();
        let (va, _, _) = map(&mut sys, id, &mut a, 0, 0, 0, PAGE_WRITECOPY).unwrap();
        let (mut pb, mut ps) = (0u64, 0x3000u64);
        a.allocate_virtual_memory(
            &sys.commit,
            &mut pb,
            0,
            &mut ps,
            MEM_RESERVE | MEM_COMMIT,
            PAGE_READWRITE,
        )
        .unwrap();
        sys.touch(&mut a, va, AccessKind::Write, 1).unwrap();
        sys.touch(&mut a, va + 0x1000, AccessKind::Read, 0).unwrap();
        sys.touch(&mut a, pb, AccessKind::Write, 2).unwrap();
        sys.sections
            .close_section(id, &sys.commit, &mut sys.pfn)
            .unwrap();
        assert_eq!(sys.sections.get(id).unwrap().views, 1);
        let freed = sys
            .sections
            .delete_address_space(&mut a, &sys.commit, &mut sys.pfn, &mut PagingFile::new(0))
            .unwrap();
        assert_eq!(freed.len(), 3);
        assert!(sys.sections.is_empty());
        assert!(a.vads().is_empty());
        assert_eq!(sys.commit.used(), 0);
        assert_eq!(sys.pfn.counts().active, 0);
        sys.pfn.verify().unwrap();
    }

    #[test]
    fn map_view_statuses() {
        let mut sys = Sys::new();
        assert_eq!(
            sys.sections
                .create_section(&sys.commit, 0, PAGE_READWRITE, SEC_COMMIT),
            Err(STATUS_INVALID_PARAMETER_4)
        );
        assert_eq!(
            sys.sections
                .create_section(&sys.commit, 0x1000, 0, SEC_COMMIT),
            Err(STATUS_INVALID_PAGE_PROTECTION)
        );
        assert_eq!(
            sys.sections
                .create_section(&sys.commit, 0x1000, PAGE_READWRITE, 0x1),
            Err(STATUS_INVALID_PARAMETER_6)
        );
        assert_eq!(
            sys.sections
                .create_section(&sys.commit, 0x1000_0000, PAGE_READWRITE, SEC_COMMIT),
            Err(STATUS_COMMITMENT_LIMIT)
        );
        let ro = sys
            .sections
            .create_section(&sys.commit, 0x20000, PAGE_READONLY, SEC_COMMIT)
            .unwrap();
        let mut a = AddressSpace::new();
        assert_eq!(
            map(&mut sys, ro, &mut a, 0, 0, 0, PAGE_READWRITE),
            Err(STATUS_SECTION_PROTECTION)
        );
        assert_eq!(
            map(&mut sys, ro, &mut a, 0, 0, 0, PAGE_EXECUTE_READ),
            Err(STATUS_SECTION_PROTECTION)
        );
        assert_eq!(
            map(&mut sys, ro, &mut a, 0, 0, 0, PAGE_READONLY | PAGE_EXECUTE),
            Err(STATUS_INVALID_PAGE_PROTECTION)
        );
        assert_eq!(
            map(&mut sys, 99, &mut a, 0, 0, 0, PAGE_READONLY),
            Err(STATUS_INVALID_HANDLE)
        );
        assert_eq!(
            map(&mut sys, ro, &mut a, 0, 0x20000, 0, PAGE_READONLY),
            Err(STATUS_INVALID_VIEW_SIZE)
        );
        assert_eq!(
            map(&mut sys, ro, &mut a, 0, 0x10000, 0x10001, PAGE_READONLY),
            Err(STATUS_INVALID_VIEW_SIZE)
        );
        assert_eq!(
            map(
                &mut sys,
                ro,
                &mut a,
                0x500000,
                0x1000,
                0x1000,
                PAGE_READONLY
            ),
            Err(STATUS_MAPPED_ALIGNMENT)
        );
        // Offset not on 64 KiB: rounded down, view grows by the difference.
        assert_eq!(
            map(&mut sys, ro, &mut a, 0, 0x11000, 0x1000, PAGE_READONLY),
            Ok((0x10000, 0x10000, 0x2000))
        );
        assert_eq!(
            map(
                &mut sys,
                ro,
                &mut a,
                0x501000,
                0x11000,
                0x1000,
                PAGE_READONLY
            ),
            Ok((0x500000, 0x10000, 0x2000))
        );
        assert_eq!(
            map(&mut sys, ro, &mut a, 0x500000, 0, 0x1000, PAGE_READONLY),
            Err(STATUS_CONFLICTING_ADDRESSES)
        );
        // Read-only view: a write is an access violation.
        assert_eq!(
            sys.touch(&mut a, 0x500000, AccessKind::Write, 1),
            Err(STATUS_ACCESS_VIOLATION)
        );
        assert_eq!(sys.touch(&mut a, 0x500000, AccessKind::Read, 0), Ok(0));
        let mut old = 0;
        let (mut pb, mut ps) = (0x500000, 0x1000);
        assert_eq!(
            a.protect_virtual_memory(&mut pb, &mut ps, PAGE_READWRITE, &mut old),
            Err(STATUS_SECTION_PROTECTION)
        );
        assert!(a
            .protect_virtual_memory(&mut pb, &mut ps, PAGE_WRITECOPY, &mut old)
            .is_ok());
        assert_eq!(sys.touch(&mut a, 0x500000, AccessKind::Write, 5), Ok(5));
    }

    #[test]
    fn file_sections_use_the_control_area() {
        let mut sys = Sys::new();
        assert_eq!(
            sys.sections.create_file_section(5, 0, PAGE_READWRITE),
            Err(STATUS_MAPPED_FILE_SIZE_ZERO)
        );
        let id = sys
            .sections
            .create_file_section(5, 0x2001, PAGE_READWRITE)
            .unwrap();
        // Not charged: the file backs it.
        assert_eq!(sys.commit.used(), 0);
        let s = sys.sections.get(id).unwrap();
        assert_eq!((s.file, s.pages(), s.size), (Some(5), 3, 0x3000));
        let mut a = AddressSpace::new();
        let mut b = AddressSpace::new();
        let (va, _, vs) = map(&mut sys, id, &mut a, 0, 0, 0, PAGE_READWRITE).unwrap();
        assert_eq!(vs, 0x3000);
        let (vb, _, _) = map(&mut sys, id, &mut b, 0, 0, 0, PAGE_WRITECOPY).unwrap();
        // A fault names the section page; the kernel supplies the control
        // area's frame (FaultHost::file_page), shared by both views.
        assert_eq!(
            a.access(va + 0x2000, AccessKind::Read),
            FaultResolution::SectionPage {
                vpn: va / PAGE_SIZE + 2,
                section: id,
                page: 2
            }
        );
        let p = sys
            .pfn
            .allocate_page(0, AllocationPreference::Zeroed)
            .unwrap()
            .pfn;
        for (space, v) in [(&mut a, va), (&mut b, vb)] {
            sys.pfn.add_share(p).unwrap();
            space.map_page(v / PAGE_SIZE + 2, p).unwrap();
        }
        assert_eq!(sys.pfn.entry(p).unwrap().share_count, 3);
        // Closing with views mapped keeps it; the last unmap deletes it and
        // reports the control area, whose frame keeps the control area's share.
        sys.sections
            .close_section(id, &sys.commit, &mut sys.pfn)
            .unwrap();
        assert!(sys.sections.take_deleted_files().is_empty());
        for (space, v) in [(&mut a, va), (&mut b, vb)] {
            sys.sections
                .unmap_view_of_section(space, v, &sys.commit, &mut sys.pfn, &mut PagingFile::new(0))
                .unwrap();
        }
        assert!(sys.sections.is_empty());
        assert_eq!(sys.sections.take_deleted_files(), alloc::vec![5]);
        assert_eq!(sys.pfn.entry(p).unwrap().share_count, 1);
        sys.pfn.verify().unwrap();
    }
}
