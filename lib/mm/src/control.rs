//! File-backed sections: control areas, segments and prototype PTEs
//! (*Windows Internals* 7th ed., Part 1, ch. 5, "Section objects",
//! "Prototype PTEs", "Page fault handling" (in-paging I/O), "Mapped page
//! writer"), and the system cache's view slots (Part 2, ch. 11, "Cache
//! virtual memory management": 256 KiB views, `MmMapViewInSystemCache`).
//!
//! One [`ControlArea`] exists per file stream (the file's
//! `SECTION_OBJECT_POINTERS.DataSectionObject` names it); every section
//! object, user view and system cache view of the file shares it and its
//! segment of prototype PTEs, so a page written through one mapping is seen
//! through every other. A prototype PTE is one of NT's three states
//! collapsed to what ntrs keeps:
//!
//! - [`Proto::File`]: not resident; its contents are in the file at
//!   `page * PAGE_SIZE` (NT's prototype PTE pointing at the subsection);
//! - [`Proto::InPage`]: a read is in progress into that frame (NT's
//!   transition PTE with `ReadInProgress` and the in-page support block);
//! - [`Proto::Valid`]: resident in that frame, with a modified bit.
//!
//! The kernel does the I/O (a paging read IRP for [`PageIn::Read`], a paging
//! write for each page [`ControlArea::take_dirty`] returns) with no lock
//! held, and reports the result back. This module does no I/O and touches no
//! memory.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use nt::status::*;

use crate::{Pfn, PAGE_SIZE};

/// One prototype PTE of a file-backed segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// Not resident: read from the file on first touch.
    File,
    /// A paging read into this frame is in progress.
    InPage(Pfn),
    /// Resident; `dirty` = the frame differs from the file (`MMPFN.Modified`).
    Valid { pfn: Pfn, dirty: bool },
}

/// What a fault on a page of the segment must do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageIn {
    /// The page is resident in this frame: map it.
    Resident(Pfn),
    /// Read the file at `offset` (one page) into `pfn` with a paging read,
    /// then call [`ControlArea::complete_page_in`]. Only the first `length`
    /// bytes of the page belong to it (an image page: the rest of the
    /// frame must be zero after the read); a data page has 4096.
    Read { pfn: Pfn, offset: u64, length: u64 },
    /// Another thread's read of this page is in progress: wait and retry
    /// (NT waits on the in-page support block's event).
    Busy,
}

/// `CONTROL_AREA` + `SEGMENT` of a data (file) section.
#[derive(Clone, Debug)]
pub struct ControlArea {
    /// The file object the section was created from (`FilePointer`, an
    /// opaque address the kernel keeps a reference on).
    pub file: u64,
    /// `Segment->SizeOfSegment` in bytes: the file size when the section
    /// was created or last extended (not rounded).
    pub size: u64,
    /// `NumberOfSectionReferences`: section objects and kernel references
    /// (the cache manager's) on this control area.
    pub section_references: u32,
    /// `NumberOfMappedViews`: user views and system cache views.
    pub mapped_views: u32,
    /// `NumberOfSystemCacheViews`.
    pub system_cache_views: u32,
    /// `NumberOfUserReferences`: section objects made by `NtCreateSection`.
    pub user_references: u32,
    /// `Flags.BeingDeleted`.
    pub being_deleted: bool,
    /// `Segment->PrototypePte[]`.
    protos: Vec<Proto>,
    /// An image section's layout (`SEC_IMAGE`: subsections, per-page file
    /// offsets and protections); `None` for a data section.
    pub image: Option<alloc::boxed::Box<crate::image::ImageLayout>>,
}

impl ControlArea {
    /// A control area for a file of `size` bytes (`MiCreateDataFileMap`);
    /// the segment has a prototype PTE for every page of the file.
    /// Size 0 is `STATUS_MAPPED_FILE_SIZE_ZERO` (as `NtCreateSection` with
    /// no maximum size on an empty file).
    pub fn new(file: u64, size: u64) -> Result<Self, NtStatus> {
        if size == 0 {
            return Err(STATUS_MAPPED_FILE_SIZE_ZERO);
        }
        let mut ca = ControlArea {
            file,
            size: 0,
            section_references: 0,
            mapped_views: 0,
            system_cache_views: 0,
            user_references: 0,
            being_deleted: false,
            protos: Vec::new(),
            image: None,
        };
        ca.extend(size)?;
        Ok(ca)
    }

    /// The control area of an image section (`MiCreateImageFileMap`): one
    /// prototype PTE per page of the mapped image (`SizeOfImage`), filled
    /// from the file as `layout` says. Its pages are never dirty (writes go
    /// to private copy-on-write copies), so nothing is ever written back.
    pub fn new_image(file: u64, layout: crate::image::ImageLayout) -> Result<Self, NtStatus> {
        let len = usize::try_from(layout.pages).map_err(|_| STATUS_SECTION_TOO_BIG)?;
        let mut protos = Vec::new();
        protos
            .try_reserve_exact(len)
            .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        protos.resize(len, Proto::File);
        Ok(ControlArea {
            file,
            size: layout.pages * PAGE_SIZE,
            section_references: 0,
            mapped_views: 0,
            system_cache_views: 0,
            user_references: 0,
            being_deleted: false,
            protos,
            image: Some(alloc::boxed::Box::new(layout)),
        })
    }

    /// Whether this is an image section's control area (`Flags.Image`).
    pub fn is_image(&self) -> bool {
        self.image.is_some()
    }

    /// Pages in the segment.
    pub fn pages(&self) -> u64 {
        self.protos.len() as u64
    }

    /// The prototype PTE of `page`.
    pub fn proto(&self, page: u64) -> Option<Proto> {
        usize::try_from(page)
            .ok()
            .and_then(|i| self.protos.get(i))
            .copied()
    }

    /// `MmExtendSection`: the segment grows to cover `size` bytes (never
    /// shrinks; a smaller size is ignored, as NT keeps the segment).
    /// `STATUS_SECTION_TOO_BIG` when the page count does not fit.
    pub fn extend(&mut self, size: u64) -> Result<(), NtStatus> {
        if size <= self.size || self.image.is_some() {
            return Ok(());
        }
        let pages = size.div_ceil(PAGE_SIZE);
        let len = usize::try_from(pages).map_err(|_| STATUS_SECTION_TOO_BIG)?;
        if len > self.protos.len() {
            self.protos
                .try_reserve_exact(len - self.protos.len())
                .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
            self.protos.resize(len, Proto::File);
        }
        self.size = size;
        Ok(())
    }

    fn slot(&mut self, page: u64) -> Result<&mut Proto, NtStatus> {
        usize::try_from(page)
            .ok()
            .and_then(|i| self.protos.get_mut(i))
            .ok_or(STATUS_INVALID_PARAMETER)
    }

    /// A fault on `page` (`MiResolveProtoPteFault`): resident → its frame;
    /// not resident → `allocate` gives a frame, the prototype becomes
    /// [`Proto::InPage`] and the kernel reads the page; a read in progress
    /// → [`PageIn::Busy`]. No frame → `STATUS_INSUFFICIENT_RESOURCES`; a
    /// page beyond the segment → `STATUS_INVALID_PARAMETER`. An image
    /// page reads from its subsection's file range; an image page with no
    /// file bytes (`.bss`, a section's uninitialized tail) is demand-zero:
    /// `allocate` must give a zeroed frame, which becomes valid at once.
    pub fn begin_fault(
        &mut self,
        page: u64,
        allocate: impl FnOnce() -> Option<Pfn>,
    ) -> Result<PageIn, NtStatus> {
        let source = match &self.image {
            Some(l) => l.page_source(page).ok_or(STATUS_INVALID_PARAMETER)?,
            None => (page * PAGE_SIZE, PAGE_SIZE),
        };
        let slot = self.slot(page)?;
        match *slot {
            Proto::Valid { pfn, .. } => Ok(PageIn::Resident(pfn)),
            Proto::InPage(_) => Ok(PageIn::Busy),
            Proto::File => {
                let pfn = allocate().ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
                if source.1 == 0 {
                    *slot = Proto::Valid { pfn, dirty: false };
                    return Ok(PageIn::Resident(pfn));
                }
                *slot = Proto::InPage(pfn);
                Ok(PageIn::Read {
                    pfn,
                    offset: source.0,
                    length: source.1,
                })
            }
        }
    }

    /// The paging read of `page` finished. Success: the page is valid and
    /// clean. Failure: the prototype goes back to [`Proto::File`] and the
    /// frame is returned for the kernel to free (the fault fails with
    /// `STATUS_IN_PAGE_ERROR`, NT's in-page error).
    pub fn complete_page_in(&mut self, page: u64, ok: bool) -> Option<Pfn> {
        let slot = self.slot(page).ok()?;
        let Proto::InPage(pfn) = *slot else {
            return None;
        };
        if ok {
            *slot = Proto::Valid { pfn, dirty: false };
            None
        } else {
            *slot = Proto::File;
            Some(pfn)
        }
    }

    /// A mapping wrote the page (the hardware dirty bit was seen, or a
    /// write fault on it): it must be written back.
    /// Image pages are never written back: ignored for them.
    pub fn mark_dirty(&mut self, page: u64) {
        if self.image.is_some() {
            return;
        }
        if let Ok(Proto::Valid { dirty, .. }) = self.slot(page) {
            *dirty = true;
        }
    }

    /// `MmFlushSection` / the mapped page writer's pick: the dirty resident
    /// pages in `[first, first + count)`, marked clean (a write seen after
    /// this marks them dirty again). The kernel writes each; a failed
    /// write is handed back with [`ControlArea::mark_dirty`].
    pub fn take_dirty(&mut self, first: u64, count: u64) -> Vec<(u64, Pfn)> {
        let end = first.saturating_add(count).min(self.pages());
        let mut out = Vec::new();
        for page in first..end {
            if let Some(Proto::Valid { pfn, dirty }) = self.protos.get_mut(page as usize) {
                if *dirty {
                    *dirty = false;
                    out.push((page, *pfn));
                }
            }
        }
        out
    }

    /// Resident frames (valid or being read) in page order.
    pub fn resident(&self) -> impl Iterator<Item = (u64, Proto)> + '_ {
        self.protos
            .iter()
            .enumerate()
            .filter(|(_, p)| !matches!(p, Proto::File))
            .map(|(i, p)| (i as u64, *p))
    }

    /// Counts for `!ca`: (valid, dirty, in-page) prototype PTEs.
    pub fn counts(&self) -> (u64, u64, u64) {
        let mut c = (0, 0, 0);
        for p in &self.protos {
            match p {
                Proto::Valid { dirty, .. } => {
                    c.0 += 1;
                    if *dirty {
                        c.1 += 1;
                    }
                }
                Proto::InPage(_) => c.2 += 1,
                Proto::File => {}
            }
        }
        c
    }

    /// `MmPurgeSection`: drops the clean resident pages in `[first, first +
    /// count)` (their frames are returned to be freed), so the next access
    /// reads the file again. Refused while views are mapped
    /// (`STATUS_USER_MAPPED_FILE` for user views; ntrs also refuses with
    /// system cache views, whose PTEs would still name the frames) or when
    /// a page in the range is dirty or being read (`STATUS_UNSUCCESSFUL`).
    pub fn purge(&mut self, first: u64, count: u64) -> Result<Vec<Pfn>, NtStatus> {
        if self.mapped_views != 0 {
            return Err(STATUS_USER_MAPPED_FILE);
        }
        let end = first.saturating_add(count).min(self.pages());
        let range = first.min(end) as usize..end as usize;
        if self.protos[range.clone()]
            .iter()
            .any(|p| matches!(p, Proto::InPage(_) | Proto::Valid { dirty: true, .. }))
        {
            return Err(STATUS_UNSUCCESSFUL);
        }
        let mut freed = Vec::new();
        for p in &mut self.protos[range] {
            if let Proto::Valid { pfn, .. } = *p {
                freed.push(pfn);
                *p = Proto::File;
            }
        }
        Ok(freed)
    }

    /// Whether nothing references the control area any more
    /// (`MiCheckControlArea`): it can be deleted once its dirty pages are
    /// written.
    pub fn unreferenced(&self) -> bool {
        self.section_references == 0 && self.mapped_views == 0 && self.user_references == 0
    }

    /// Deletion: every frame the segment holds (the caller has written the
    /// dirty ones; in-page frames cannot exist while unreferenced).
    pub fn into_frames(self) -> Vec<Pfn> {
        self.protos
            .into_iter()
            .filter_map(|p| match p {
                Proto::Valid { pfn, .. } | Proto::InPage(pfn) => Some(pfn),
                Proto::File => None,
            })
            .collect()
    }
}

/// When the mapped page writer (`MiMappedPageWriter`) writes: it wakes
/// every tick, learns how many pages of mapped files are dirty, and writes
/// them all when there are at least `threshold` or when some have waited
/// `max_age_ticks` ticks (the book: the mapped page writer runs when the
/// modified list passes a threshold, and dirty mapped pages are written
/// within a bounded time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedWriterPolicy {
    pub threshold: u64,
    pub max_age_ticks: u32,
    age: u32,
}

impl MappedWriterPolicy {
    pub const fn new(threshold: u64, max_age_ticks: u32) -> Self {
        MappedWriterPolicy {
            threshold,
            max_age_ticks,
            age: 0,
        }
    }

    /// One tick with `dirty` dirty mapped pages: whether to write now.
    pub fn tick(&mut self, dirty: u64) -> bool {
        if dirty == 0 {
            self.age = 0;
            return false;
        }
        self.age += 1;
        if dirty >= self.threshold || self.age >= self.max_age_ticks {
            self.age = 0;
            return true;
        }
        false
    }
}

/// Size of a system cache view (`VACB_MAPPING_GRANULARITY`).
pub const SYSTEM_CACHE_VIEW_SIZE: u64 = 256 * 1024;
/// Pages per system cache view.
pub const SYSTEM_CACHE_VIEW_PAGES: u64 = SYSTEM_CACHE_VIEW_SIZE / PAGE_SIZE;

/// One mapped system cache view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheView {
    /// Control area id.
    pub control_area: u32,
    /// First segment page the view maps (offset / PAGE_SIZE, a multiple of
    /// [`SYSTEM_CACHE_VIEW_PAGES`]).
    pub first_page: u64,
    /// Pages mapped (up to [`SYSTEM_CACHE_VIEW_PAGES`]; fewer at the end
    /// of the segment).
    pub pages: u64,
}

/// The control areas of the system, by id, and the system cache's view
/// slots (NT's `MmSystemCacheWs` range carved into 256 KiB views).
#[derive(Clone, Debug, Default)]
pub struct FileMappings {
    areas: BTreeMap<u32, ControlArea>,
    next_id: u32,
    views: Vec<Option<CacheView>>,
}

impl FileMappings {
    /// `slots` system cache views of [`SYSTEM_CACHE_VIEW_SIZE`].
    pub fn new(slots: usize) -> Self {
        let mut views = Vec::new();
        views.resize(slots, None);
        FileMappings {
            areas: BTreeMap::new(),
            next_id: 1,
            views,
        }
    }

    /// Adds a control area; returns its id (never 0).
    pub fn insert(&mut self, ca: ControlArea) -> u32 {
        let mut id = self.next_id;
        while id == 0 || self.areas.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        self.areas.insert(id, ca);
        id
    }

    pub fn get(&self, id: u32) -> Option<&ControlArea> {
        self.areas.get(&id)
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut ControlArea> {
        self.areas.get_mut(&id)
    }

    pub fn remove(&mut self, id: u32) -> Option<ControlArea> {
        self.areas.remove(&id)
    }

    /// Data control areas mapped by at least one user view (the mapped
    /// page writer's candidates; files only in the system cache are the
    /// cache manager's lazy writer's).
    pub fn user_mapped_data_ids(&self) -> Vec<u32> {
        self.areas
            .iter()
            .filter(|(_, c)| !c.is_image() && !c.being_deleted)
            .filter(|(_, c)| c.mapped_views > c.system_cache_views)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Dirty pages of the control areas `ids`.
    pub fn dirty_pages(&self, ids: &[u32]) -> u64 {
        ids.iter()
            .filter_map(|id| self.areas.get(id))
            .map(|c| c.counts().1)
            .sum()
    }

    /// Every control area id.
    pub fn ids(&self) -> Vec<u32> {
        self.areas.keys().copied().collect()
    }

    /// `MmMapViewInSystemCache`: maps the 256 KiB-aligned view holding
    /// `offset` of control area `id` into a free slot. Returns the slot and
    /// the view; the control area counts one more mapped and system cache
    /// view. `offset` not 256 KiB aligned → `STATUS_MAPPED_ALIGNMENT`;
    /// beyond the segment → `STATUS_INVALID_VIEW_SIZE`; no free slot →
    /// `STATUS_NO_MEMORY` (the cache manager unmaps an unused view and
    /// retries).
    pub fn map_cache_view(&mut self, id: u32, offset: u64) -> Result<(usize, CacheView), NtStatus> {
        if !offset.is_multiple_of(SYSTEM_CACHE_VIEW_SIZE) {
            return Err(STATUS_MAPPED_ALIGNMENT);
        }
        let ca = self.areas.get_mut(&id).ok_or(STATUS_INVALID_PARAMETER)?;
        let first_page = offset / PAGE_SIZE;
        if first_page >= ca.pages() {
            return Err(STATUS_INVALID_VIEW_SIZE);
        }
        let slot = self
            .views
            .iter()
            .position(Option::is_none)
            .ok_or(STATUS_NO_MEMORY)?;
        let view = CacheView {
            control_area: id,
            first_page,
            pages: (ca.pages() - first_page).min(SYSTEM_CACHE_VIEW_PAGES),
        };
        ca.mapped_views += 1;
        ca.system_cache_views += 1;
        self.views[slot] = Some(view);
        Ok((slot, view))
    }

    /// `MmUnmapViewInSystemCache`: frees the slot; returns its view (the
    /// kernel has cleared the PTEs and harvested their dirty bits).
    /// `STATUS_NOT_MAPPED_VIEW` for a free or unknown slot.
    pub fn unmap_cache_view(&mut self, slot: usize) -> Result<CacheView, NtStatus> {
        let view = self
            .views
            .get_mut(slot)
            .and_then(Option::take)
            .ok_or(STATUS_NOT_MAPPED_VIEW)?;
        if let Some(ca) = self.areas.get_mut(&view.control_area) {
            ca.mapped_views = ca.mapped_views.saturating_sub(1);
            ca.system_cache_views = ca.system_cache_views.saturating_sub(1);
        }
        Ok(view)
    }

    /// The view in `slot`.
    pub fn cache_view(&self, slot: usize) -> Option<CacheView> {
        self.views.get(slot).copied().flatten()
    }

    /// Slots holding views of control area `id`.
    pub fn cache_views_of(&self, id: u32) -> Vec<(usize, CacheView)> {
        self.views
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.filter(|v| v.control_area == id).map(|v| (i, v)))
            .collect()
    }

    /// Mapped system cache views.
    pub fn cache_views_in_use(&self) -> usize {
        self.views.iter().filter(|v| v.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_size_and_extend() {
        assert_eq!(
            ControlArea::new(1, 0).err(),
            Some(STATUS_MAPPED_FILE_SIZE_ZERO)
        );
        let mut ca = ControlArea::new(1, 1).unwrap();
        assert_eq!(ca.pages(), 1);
        ca.extend(0x1001).unwrap();
        assert_eq!((ca.pages(), ca.size), (2, 0x1001));
        ca.extend(10).unwrap();
        assert_eq!((ca.pages(), ca.size), (2, 0x1001));
        assert!(ca.extend(u64::MAX).is_err());
        assert_eq!(ca.pages(), 2);
    }

    #[test]
    fn page_in_protocol() {
        let mut ca = ControlArea::new(7, 3 * PAGE_SIZE).unwrap();
        assert_eq!(
            ca.begin_fault(1, || None),
            Err(STATUS_INSUFFICIENT_RESOURCES)
        );
        assert_eq!(ca.proto(1), Some(Proto::File));
        assert_eq!(
            ca.begin_fault(1, || Some(40)),
            Ok(PageIn::Read {
                pfn: 40,
                offset: PAGE_SIZE,
                length: PAGE_SIZE
            })
        );
        // A second fault while the read runs waits; it never allocates.
        assert_eq!(
            ca.begin_fault(1, || panic!("second frame")),
            Ok(PageIn::Busy)
        );
        assert_eq!(ca.counts(), (0, 0, 1));
        assert_eq!(ca.complete_page_in(1, true), None);
        assert_eq!(ca.begin_fault(1, || None), Ok(PageIn::Resident(40)));
        // A failed read gives the frame back and leaves the page in the file.
        assert!(matches!(
            ca.begin_fault(2, || Some(41)),
            Ok(PageIn::Read { .. })
        ));
        assert_eq!(ca.complete_page_in(2, false), Some(41));
        assert_eq!(ca.proto(2), Some(Proto::File));
        assert_eq!(ca.complete_page_in(2, true), None);
        assert_eq!(ca.begin_fault(3, || Some(1)), Err(STATUS_INVALID_PARAMETER));
    }

    #[test]
    fn dirty_pages_flush_and_purge() {
        let mut ca = ControlArea::new(7, 4 * PAGE_SIZE).unwrap();
        for (page, pfn) in [(0, 10), (2, 12), (3, 13)] {
            ca.begin_fault(page, || Some(pfn)).unwrap();
            ca.complete_page_in(page, true);
        }
        ca.mark_dirty(0);
        ca.mark_dirty(3);
        ca.mark_dirty(1); // not resident: nothing to write
        assert_eq!(ca.counts(), (3, 2, 0));
        assert_eq!(ca.take_dirty(1, 100), alloc::vec![(3, 13)]);
        assert_eq!(ca.take_dirty(0, 4), alloc::vec![(0, 10)]);
        assert!(ca.take_dirty(0, 4).is_empty());
        ca.mark_dirty(2);
        assert_eq!(ca.purge(0, 4), Err(STATUS_UNSUCCESSFUL));
        ca.take_dirty(0, 4);
        ca.mapped_views = 1;
        assert_eq!(ca.purge(0, 4), Err(STATUS_USER_MAPPED_FILE));
        ca.mapped_views = 0;
        assert_eq!(ca.purge(2, 1), Ok(alloc::vec![12]));
        assert_eq!(ca.proto(2), Some(Proto::File));
        assert!(ca.unreferenced());
        let mut frames = ca.into_frames();
        frames.sort();
        assert_eq!(frames, alloc::vec![10, 13]);
    }

    #[test]
    fn image_control_area() {
        let f = crate::image::tests::build_pe(
            &[
                (".text", 0x1000, 0x1800, 0x1800, 0x6000_0020),
                (".data", 0x3000, 0x2000, 0x200, 0xC000_0040),
            ],
            0x5000,
        );
        let l = crate::image::ImageLayout::from_headers(&f, f.len() as u64).unwrap();
        let mut ca = ControlArea::new_image(3, l).unwrap();
        assert!(ca.is_image());
        assert_eq!(ca.pages(), 5);
        assert_eq!(
            ca.begin_fault(2, || Some(20)),
            Ok(PageIn::Read {
                pfn: 20,
                offset: 0x1400,
                length: 0x800
            })
        );
        assert_eq!(ca.complete_page_in(2, true), None);
        // .data's second page has no file bytes: valid at once, zero.
        assert_eq!(ca.begin_fault(4, || Some(21)), Ok(PageIn::Resident(21)));
        assert_eq!(
            ca.proto(4),
            Some(Proto::Valid {
                pfn: 21,
                dirty: false
            })
        );
        // Image pages are never dirty, never written back, never extended.
        ca.mark_dirty(2);
        assert!(ca.take_dirty(0, 5).is_empty());
        ca.extend(0x10_0000).unwrap();
        assert_eq!(ca.pages(), 5);
        assert_eq!(ca.begin_fault(5, || Some(1)), Err(STATUS_INVALID_PARAMETER));
    }

    #[test]
    fn mapped_writer_policy_and_candidates() {
        let mut p = MappedWriterPolicy::new(4, 3);
        assert!(!p.tick(0));
        assert!(!p.tick(1));
        assert!(!p.tick(1));
        assert!(p.tick(1), "dirty pages waited max_age_ticks");
        assert!(!p.tick(2));
        assert!(p.tick(4), "threshold reached");
        assert!(!p.tick(0));
        assert!(!p.tick(3), "age restarts after a clean tick");

        let mut m = FileMappings::new(1);
        let a = m.insert(ControlArea::new(1, 2 * PAGE_SIZE).unwrap());
        let b = m.insert(ControlArea::new(2, PAGE_SIZE).unwrap());
        m.get_mut(a).unwrap().mapped_views = 1;
        m.map_cache_view(b, 0).unwrap();
        assert_eq!(m.user_mapped_data_ids(), alloc::vec![a]);
        let ca = m.get_mut(a).unwrap();
        ca.begin_fault(1, || Some(5)).unwrap();
        ca.complete_page_in(1, true);
        ca.mark_dirty(1);
        assert_eq!(m.dirty_pages(&[a, b]), 1);
    }

    #[test]
    fn system_cache_views() {
        let mut m = FileMappings::new(2);
        let id = m.insert(ControlArea::new(5, SYSTEM_CACHE_VIEW_SIZE + 3 * PAGE_SIZE).unwrap());
        assert_eq!(
            m.map_cache_view(id, PAGE_SIZE),
            Err(STATUS_MAPPED_ALIGNMENT)
        );
        assert_eq!(
            m.map_cache_view(id, 2 * SYSTEM_CACHE_VIEW_SIZE),
            Err(STATUS_INVALID_VIEW_SIZE)
        );
        assert_eq!(m.map_cache_view(99, 0), Err(STATUS_INVALID_PARAMETER));
        let (s0, v0) = m.map_cache_view(id, 0).unwrap();
        assert_eq!((v0.first_page, v0.pages), (0, SYSTEM_CACHE_VIEW_PAGES));
        let (s1, v1) = m.map_cache_view(id, SYSTEM_CACHE_VIEW_SIZE).unwrap();
        assert_eq!((v1.first_page, v1.pages), (SYSTEM_CACHE_VIEW_PAGES, 3));
        assert_ne!(s0, s1);
        assert_eq!(m.map_cache_view(id, 0), Err(STATUS_NO_MEMORY));
        let ca = m.get(id).unwrap();
        assert_eq!((ca.mapped_views, ca.system_cache_views), (2, 2));
        assert_eq!(m.cache_views_of(id).len(), 2);
        assert_eq!(m.unmap_cache_view(s0), Ok(v0));
        assert_eq!(m.unmap_cache_view(s0), Err(STATUS_NOT_MAPPED_VIEW));
        assert_eq!(m.unmap_cache_view(9), Err(STATUS_NOT_MAPPED_VIEW));
        assert_eq!(m.cache_views_in_use(), 1);
        m.unmap_cache_view(s1).unwrap();
        assert!(m.get(id).unwrap().unreferenced());
        assert!(m.remove(id).is_some());
    }
}
