//! The cache manager's state: shared cache maps, private cache maps, the
//! view pool, the dirty page counters and the deferred write queue.
//!
//! *Windows Internals* 7th ed., Part 2, ch. 11, "Cache data structures":
//! one shared cache map (`SHARED_CACHE_MAP`) per cached stream, reached from
//! the stream's `SECTION_OBJECT_POINTERS.SharedCacheMap`, holds the file
//! sizes, the VACB index and the dirty page information; one private cache
//! map (`PRIVATE_CACHE_MAP`) per file object (`FILE_OBJECT.PrivateCacheMap`)
//! holds that handle's read history for read-ahead. The kernel keeps one
//! [`CacheManager`] under its lock and performs what it decides: mapping and
//! unmapping views, copying, and writing the page runs it hands out.

use crate::dirty::{DirtyRuns, PageRun};
use crate::readahead::{PrivateCacheMap, ReadAhead};
use crate::throttle::{
    self, DeferredWrite, DeferredWrites, StreamThrottle, Throttle, ThrottleState,
};
use crate::vacb::{VacbId, VacbIndexArray, VacbMapping, ViewGrant, ViewPool};
use crate::vacb::{VACB_MAPPING_GRANULARITY, VACB_OFFSET_SHIFT};
use crate::{FileSizes, PAGE_SHIFT, PAGE_SIZE};
use alloc::vec::Vec;

/// A shared cache map's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MapId(pub u32);

/// A private cache map's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrivId(pub u32);

/// Why a cache operation cannot be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CcError {
    /// Every view of the system cache is in use (NT waits for one; ntrs
    /// returns STATUS_INSUFFICIENT_RESOURCES).
    NoViews,
    /// The offset is beyond the stream's section.
    BeyondSection,
    /// A view in the range is in use (`CcPurgeCacheSection` returns FALSE).
    Busy,
    /// No such map.
    BadId,
}

/// A stream's shared cache map (`SHARED_CACHE_MAP`).
#[derive(Clone, Debug)]
pub struct SharedCacheMap {
    /// `FileSize`, `ValidDataLength` and the allocation size.
    pub sizes: FileSizes,
    /// `SectionSize`: the data section's size (the largest allocation size
    /// seen, rounded up to a view).
    pub section_size: u64,
    /// The VACB index (`Vacbs`).
    pub vacbs: VacbIndexArray,
    /// Dirty pages (the bitmap ranges).
    pub dirty: DirtyRuns,
    /// Private cache maps open on it (`OpenCount`).
    pub open_count: u32,
    /// `CcSetDirtyPageThreshold` (pages, 0 for none).
    pub dirty_threshold: u64,
    /// Where the lazy writer continues in this stream (page number).
    pub lazy_cursor: u64,
    /// Pages handed out for writing and not yet completed.
    pub pages_in_flight: u64,
    /// `FILE_ATTRIBUTE_TEMPORARY` / `DisableWriteBehind`: the lazy writer
    /// leaves the stream alone unless the system is over its threshold.
    pub disable_write_behind: bool,
    /// Pages written by the lazy writer and by flushes.
    pub pages_written: u64,
    /// The kernel's cookie for the stream (the `SECTION_OBJECT_POINTERS`
    /// address), for `!filecache` and callbacks.
    pub key: u64,
}

/// What the kernel must do when a handle's caching ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Teardown {
    /// Other handles still use the stream.
    StillOpen,
    /// The last handle closed with dirty pages: the map stays until the
    /// lazy writer has written them (NT's lazy delete), then the lazy pass
    /// returns it in [`LazyPlan::teardown`].
    AfterLazyWrite,
    /// The map is gone: unmap these views.
    Now(Vec<(VacbId, VacbMapping)>),
}

/// One lazy writer pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LazyPlan {
    /// Runs to write, per stream (already removed from the dirty counts;
    /// call [`CacheManager::write_done`] after each).
    pub writes: Vec<(MapId, Vec<PageRun>)>,
    /// Streams closed and now clean: delete with
    /// [`CacheManager::delete_map`] once their writes are done.
    pub teardown: Vec<MapId>,
}

/// The cache manager's state.
#[derive(Clone, Debug)]
pub struct CacheManager {
    maps: Vec<Option<SharedCacheMap>>,
    privs: Vec<Option<(MapId, PrivateCacheMap)>>,
    /// The system cache's views.
    pub views: ViewPool,
    /// `CcTotalDirtyPages`.
    pub total_dirty: u64,
    /// `CcDirtyPageThreshold`.
    pub threshold: u64,
    /// `CcDeferredWrites`.
    pub deferred: DeferredWrites,
    lazy_map_cursor: u32,
    /// Lazy writer passes run.
    pub lazy_passes: u64,
    /// Pages the lazy writer has taken for writing.
    pub lazy_pages_written: u64,
}

/// Splits `[offset, offset + length)` at view boundaries: (view number,
/// offset in the view, bytes).
pub fn view_chunks(offset: u64, length: u64) -> impl Iterator<Item = (u64, u64, u64)> {
    let end = offset.saturating_add(length);
    let mut at = offset;
    core::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let view = at >> VACB_OFFSET_SHIFT;
        let in_view = at & (VACB_MAPPING_GRANULARITY - 1);
        let n = (VACB_MAPPING_GRANULARITY - in_view).min(end - at);
        at += n;
        Some((view, in_view, n))
    })
}

fn section_size_for(sizes: &FileSizes) -> u64 {
    sizes
        .allocation_size
        .max(sizes.file_size)
        .div_ceil(VACB_MAPPING_GRANULARITY)
        .max(1)
        * VACB_MAPPING_GRANULARITY
}

impl CacheManager {
    /// A cache of at most `view_budget` views with a dirty page threshold
    /// of `threshold` pages.
    pub fn new(view_budget: u32, threshold: u64) -> Self {
        CacheManager {
            maps: Vec::new(),
            privs: Vec::new(),
            views: ViewPool::new(view_budget),
            total_dirty: 0,
            threshold,
            deferred: DeferredWrites::new(),
            lazy_map_cursor: 0,
            lazy_passes: 0,
            lazy_pages_written: 0,
        }
    }

    /// A shared cache map.
    pub fn map(&self, id: MapId) -> Option<&SharedCacheMap> {
        self.maps.get(id.0 as usize)?.as_ref()
    }

    fn map_mut(&mut self, id: MapId) -> Result<&mut SharedCacheMap, CcError> {
        self.maps
            .get_mut(id.0 as usize)
            .and_then(|m| m.as_mut())
            .ok_or(CcError::BadId)
    }

    /// Every shared cache map.
    pub fn maps(&self) -> impl Iterator<Item = (MapId, &SharedCacheMap)> {
        self.maps
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.as_ref().map(|m| (MapId(i as u32), m)))
    }

    /// A private cache map and its stream.
    pub fn private(&self, id: PrivId) -> Option<(MapId, &PrivateCacheMap)> {
        let (m, p) = self.privs.get(id.0 as usize)?.as_ref()?;
        Some((*m, p))
    }

    /// A private cache map, mutable.
    pub fn private_mut(&mut self, id: PrivId) -> Option<&mut PrivateCacheMap> {
        Some(&mut self.privs.get_mut(id.0 as usize)?.as_mut()?.1)
    }

    /// `CcInitializeCacheMap`, first handle: a shared cache map for a stream
    /// of the given sizes. `key` is the kernel's cookie for the stream.
    pub fn create_map(&mut self, sizes: FileSizes, key: u64) -> MapId {
        let section_size = section_size_for(&sizes);
        let m = SharedCacheMap {
            sizes,
            section_size,
            vacbs: VacbIndexArray::new(section_size),
            dirty: DirtyRuns::new(),
            open_count: 0,
            dirty_threshold: 0,
            lazy_cursor: 0,
            pages_in_flight: 0,
            disable_write_behind: false,
            pages_written: 0,
            key,
        };
        if let Some(i) = self.maps.iter().position(|m| m.is_none()) {
            self.maps[i] = Some(m);
            MapId(i as u32)
        } else {
            self.maps.push(Some(m));
            MapId(self.maps.len() as u32 - 1)
        }
    }

    /// `CcInitializeCacheMap` for a file object: a private cache map on the
    /// stream (`OpenCount` + 1).
    pub fn open_private(&mut self, map: MapId) -> Result<PrivId, CcError> {
        self.map_mut(map)?.open_count += 1;
        let p = Some((map, PrivateCacheMap::new()));
        if let Some(i) = self.privs.iter().position(|p| p.is_none()) {
            self.privs[i] = p;
            Ok(PrivId(i as u32))
        } else {
            self.privs.push(p);
            Ok(PrivId(self.privs.len() as u32 - 1))
        }
    }

    /// `CcUninitializeCacheMap`: the handle's private map goes; the last one
    /// takes the shared map with it if nothing is dirty and no view is in
    /// use.
    pub fn close_private(&mut self, id: PrivId) -> Result<(MapId, Teardown), CcError> {
        let (map, _) = self
            .privs
            .get_mut(id.0 as usize)
            .and_then(|p| p.take())
            .ok_or(CcError::BadId)?;
        let m = self.map_mut(map)?;
        m.open_count -= 1;
        if m.open_count > 0 {
            return Ok((map, Teardown::StillOpen));
        }
        if m.dirty.pages() > 0 || m.pages_in_flight > 0 {
            return Ok((map, Teardown::AfterLazyWrite));
        }
        match self.delete_map(map) {
            Ok(v) => Ok((map, Teardown::Now(v))),
            Err(CcError::Busy) => Ok((map, Teardown::AfterLazyWrite)),
            Err(e) => Err(e),
        }
    }

    /// Deletes a closed, clean shared cache map; returns its views to unmap.
    /// `Busy` if a view is still in use or pages are dirty or being written.
    pub fn delete_map(&mut self, id: MapId) -> Result<Vec<(VacbId, VacbMapping)>, CcError> {
        let m = self.map(id).ok_or(CcError::BadId)?;
        if m.open_count > 0 || m.dirty.pages() > 0 || m.pages_in_flight > 0 {
            return Err(CcError::Busy);
        }
        let entries = m.vacbs.entries();
        if entries.iter().any(|&(_, v)| self.views.vacb(v).active > 0) {
            return Err(CcError::Busy);
        }
        let mut out = Vec::new();
        for (view, v) in entries {
            self.views.free(v);
            out.push((v, VacbMapping { map: id.0, view }));
        }
        self.maps[id.0 as usize] = None;
        Ok(out)
    }

    /// `CcSetFileSizes`: new sizes. A larger allocation grows the section
    /// (the caller extends the data section to `section_size`); a smaller
    /// file size drops the dirty pages wholly beyond the new end. Returns
    /// the number of dirty pages dropped.
    pub fn set_file_sizes(&mut self, id: MapId, sizes: FileSizes) -> Result<u64, CcError> {
        let m = self.map_mut(id)?;
        let new_section = section_size_for(&sizes);
        if new_section > m.section_size {
            m.section_size = new_section;
            m.vacbs.extend(new_section);
        }
        let first_gone = sizes.file_size.div_ceil(PAGE_SIZE);
        let dropped = m.dirty.remove(first_gone, u64::MAX);
        m.sizes = sizes;
        self.total_dirty -= dropped;
        Ok(dropped)
    }

    /// Takes a reference on the view holding `offset` of the stream
    /// (`CcGetVirtualAddress`): a hit, a new VACB, or a reused one.
    pub fn get_view(&mut self, id: MapId, offset: u64) -> Result<ViewGrant, CcError> {
        let view = offset >> VACB_OFFSET_SHIFT;
        let m = self.map(id).ok_or(CcError::BadId)?;
        if offset >= m.section_size {
            return Err(CcError::BeyondSection);
        }
        if let Some(v) = m.vacbs.get(view) {
            self.views.reference(v);
            return Ok(ViewGrant::Hit(v));
        }
        let grant = self
            .views
            .allocate(VacbMapping { map: id.0, view })
            .ok_or(CcError::NoViews)?;
        if let ViewGrant::Reuse { vacb, evicted } = grant {
            if let Some(Some(old)) = self.maps.get_mut(evicted.map as usize) {
                let _ = old.vacbs.set(evicted.view, None);
            }
            let _ = vacb;
        }
        let m = self.map_mut(id)?;
        if m.vacbs.set(view, Some(grant.vacb())).is_err() {
            return Err(CcError::BeyondSection);
        }
        Ok(grant)
    }

    /// Gives back a VACB just granted whose view could not be mapped: it
    /// leaves the stream's index and the pool. False if someone else
    /// references it meanwhile.
    pub fn abandon_view(&mut self, v: VacbId) -> bool {
        let vacb = self.views.vacb(v);
        if vacb.active != 1 {
            return false;
        }
        let mapping = vacb.mapping;
        self.views.release(v);
        if let Some(mp) = mapping {
            if let Some(Some(m)) = self.maps.get_mut(mp.map as usize) {
                let _ = m.vacbs.set(mp.view, None);
            }
        }
        self.views.free(v)
    }

    /// `CcSetDirtyPageThreshold`: the stream's own threshold (0: none).
    pub fn set_dirty_threshold(&mut self, id: MapId, pages: u64) -> Result<(), CcError> {
        self.map_mut(id)?.dirty_threshold = pages;
        Ok(())
    }

    /// `CcSetAdditionalCacheAttributes(DisableWriteBehind)`.
    pub fn set_disable_write_behind(&mut self, id: MapId, disable: bool) -> Result<(), CcError> {
        self.map_mut(id)?.disable_write_behind = disable;
        Ok(())
    }

    /// Drops a view reference (`CcFreeVirtualAddress`).
    pub fn release_view(&mut self, v: VacbId) -> bool {
        self.views.release(v)
    }

    /// Records `[offset, offset + length)` as dirty (`CcSetDirtyInMask`);
    /// returns the pages newly dirtied.
    pub fn mark_dirty(&mut self, id: MapId, offset: u64, length: u64) -> Result<u64, CcError> {
        if length == 0 {
            return Ok(0);
        }
        let m = self.map_mut(id)?;
        let first = offset >> PAGE_SHIFT;
        let end = (offset + length).div_ceil(PAGE_SIZE);
        let n = m.dirty.insert(first, end);
        self.total_dirty += n;
        Ok(n)
    }

    /// `CcFlushCache`: takes the dirty runs in `[offset, offset + length)`
    /// (the whole stream for `None`) for writing. The caller writes them and
    /// calls [`Self::write_done`] for each.
    pub fn take_for_flush(
        &mut self,
        id: MapId,
        range: Option<(u64, u64)>,
    ) -> Result<Vec<PageRun>, CcError> {
        let m = self.map_mut(id)?;
        let (first, end) = match range {
            Some((o, l)) => (o >> PAGE_SHIFT, (o.saturating_add(l)).div_ceil(PAGE_SIZE)),
            None => (0, u64::MAX),
        };
        let runs = m.dirty.runs_in(first, end);
        let mut n = 0;
        for r in &runs {
            n += m.dirty.remove(r.first, r.end());
        }
        m.pages_in_flight += n;
        self.total_dirty -= n;
        Ok(runs)
    }

    /// A run handed out for writing is done: written (`ok`) or failed, in
    /// which case its pages are dirty again (pages redirtied meanwhile are
    /// counted once).
    pub fn write_done(&mut self, id: MapId, run: PageRun, ok: bool) -> Result<(), CcError> {
        let m = self.map_mut(id)?;
        m.pages_in_flight = m.pages_in_flight.saturating_sub(run.count);
        if ok {
            m.pages_written += run.count;
        } else {
            let n = m.dirty.insert(run.first, run.end());
            self.total_dirty += n;
        }
        Ok(())
    }

    /// `CcPurgeCacheSection`: drops the cached data of `[offset, offset +
    /// length)` (the whole stream for `None`) without writing it. Fails with
    /// `Busy` if a view over the range is in use; otherwise the dirty pages
    /// in the range are forgotten and the views wholly or partly in it are
    /// unmapped (returned for the kernel to unmap and to discard the pages).
    pub fn purge(
        &mut self,
        id: MapId,
        range: Option<(u64, u64)>,
    ) -> Result<Vec<(VacbId, VacbMapping)>, CcError> {
        let m = self.map(id).ok_or(CcError::BadId)?;
        let (first, end) = match range {
            Some((o, l)) if l > 0 => (o, o.saturating_add(l)),
            _ => (0, u64::MAX),
        };
        let views: Vec<(u64, VacbId)> = m
            .vacbs
            .entries()
            .into_iter()
            .filter(|&(view, _)| {
                let vs = view << VACB_OFFSET_SHIFT;
                vs < end && vs + VACB_MAPPING_GRANULARITY > first
            })
            .collect();
        if views.iter().any(|&(_, v)| self.views.vacb(v).active > 0) {
            return Err(CcError::Busy);
        }
        let m = self.map_mut(id)?;
        let dropped = m.dirty.remove(first >> PAGE_SHIFT, end.div_ceil(PAGE_SIZE));
        for &(view, _) in &views {
            let _ = m.vacbs.set(view, None);
        }
        self.total_dirty -= dropped;
        let mut out = Vec::new();
        for (view, v) in views {
            self.views.free(v);
            out.push((v, VacbMapping { map: id.0, view }));
        }
        Ok(out)
    }

    /// Unmaps the stream's view `view` (a view index) if it is mapped and
    /// idle, keeping its dirty pages (they are tracked per page, not per
    /// view). The file system grew the section: a view mapped while the
    /// section ended inside it covers only the old end, so it is mapped
    /// afresh at its full size on next use. Returns the freed VACB for the
    /// kernel to unmap; None when not mapped or in use (`Busy` is not an
    /// error here: the grown part is then reached when the view is
    /// reused).
    pub fn unmap_idle_view(&mut self, id: MapId, view: u64) -> Option<(VacbId, VacbMapping)> {
        let v = self.map(id)?.vacbs.get(view)?;
        if self.views.vacb(v).active > 0 {
            return None;
        }
        let _ = self.map_mut(id).ok()?.vacbs.set(view, None);
        self.views.free(v);
        Some((v, VacbMapping { map: id.0, view }))
    }

    /// The throttle inputs of a stream.
    pub fn stream_throttle(&self, id: MapId, write_through: bool) -> StreamThrottle {
        self.map(id)
            .map_or(StreamThrottle::default(), |m| StreamThrottle {
                dirty: m.dirty.pages() + m.pages_in_flight,
                threshold: m.dirty_threshold,
                write_through,
            })
    }

    /// The system-wide throttle inputs, given the memory manager's counts.
    pub fn throttle_state(&self, available_pages: u64, throttle_top: u64) -> ThrottleState {
        ThrottleState {
            total_dirty: self.total_dirty,
            threshold: self.threshold,
            available_pages,
            throttle_top,
        }
    }

    /// `CcCanIWrite` for `bytes` at `offset` of the stream.
    #[allow(clippy::too_many_arguments)]
    pub fn can_i_write(
        &self,
        id: MapId,
        offset: u64,
        bytes: u64,
        write_through: bool,
        retrying: bool,
        available_pages: u64,
        throttle_top: u64,
    ) -> Option<Throttle> {
        throttle::can_i_write(
            &self.throttle_state(available_pages, throttle_top),
            &self.stream_throttle(id, write_through),
            throttle::pages_spanned(offset, bytes),
            retrying,
            self.deferred.is_empty(),
        )
    }

    /// `CcDeferWrite`.
    pub fn defer_write(&mut self, w: DeferredWrite, retrying: bool) {
        self.deferred.push(w, retrying);
    }

    /// `CcPostDeferredWrites`: the queued writes that may go now.
    pub fn post_deferred_writes(
        &mut self,
        available_pages: u64,
        throttle_top: u64,
    ) -> Vec<DeferredWrite> {
        let g = self.throttle_state(available_pages, throttle_top);
        let maps: Vec<StreamThrottle> = (0..self.maps.len() as u32)
            .map(|i| self.stream_throttle(MapId(i), false))
            .collect();
        self.deferred
            .post(&g, |m| maps.get(m as usize).copied().unwrap_or_default())
    }

    /// One lazy writer pass (`CcLazyWriteScan`): the quota is
    /// [`throttle::pages_to_write`]; streams are visited round-robin from
    /// where the last pass stopped, each written from its own cursor, so
    /// every dirty page is reached in turn. Streams with write-behind
    /// disabled are skipped unless the system is over its threshold. Closed
    /// streams with nothing left to write are listed for teardown.
    pub fn lazy_pass(&mut self) -> LazyPlan {
        self.lazy_passes += 1;
        let mut plan = LazyPlan::default();
        let mut quota = throttle::pages_to_write(self.total_dirty, self.threshold);
        let over = self.total_dirty > self.threshold;
        let n = self.maps.len() as u32;
        let mut last_visited = None;
        for k in 0..n {
            let i = (self.lazy_map_cursor + k) % n;
            let Some(m) = self.maps[i as usize].as_mut() else {
                continue;
            };
            if m.dirty.pages() == 0 {
                if m.open_count == 0 && m.pages_in_flight == 0 {
                    plan.teardown.push(MapId(i));
                }
                continue;
            }
            if quota == 0 || (m.disable_write_behind && !over) {
                continue;
            }
            let runs = m.dirty.take_from(m.lazy_cursor, quota);
            let taken: u64 = runs.iter().map(|r| r.count).sum();
            if let Some(r) = runs.last() {
                m.lazy_cursor = r.end();
            }
            m.pages_in_flight += taken;
            self.total_dirty -= taken;
            self.lazy_pages_written += taken;
            quota -= taken;
            last_visited = Some(i);
            plan.writes.push((MapId(i), runs));
        }
        if let Some(i) = last_visited {
            self.lazy_map_cursor = (i + 1) % n.max(1);
        }
        plan
    }

    /// Records a cached read through a handle and returns the read-ahead to
    /// schedule (clipped to the stream's file size).
    pub fn record_read(&mut self, p: PrivId, offset: u64, length: u64) -> Option<ReadAhead> {
        let (map, _) = self.private(p)?;
        let size = self.map(map)?.sizes.file_size;
        self.private_mut(p)?.record_read(offset, length, size)
    }

    /// Checks cross-structure invariants (for tests): the dirty total is the
    /// sum of the streams', every index entry names a VACB that maps it, and
    /// every mapped VACB is in its stream's index.
    pub fn verify(&self) -> bool {
        let sum: u64 = self.maps().map(|(_, m)| m.dirty.pages()).sum();
        if sum != self.total_dirty {
            return false;
        }
        for (id, m) in self.maps() {
            if !m.dirty.verify() {
                return false;
            }
            for (view, v) in m.vacbs.entries() {
                if self.views.vacb(v).mapping != Some(VacbMapping { map: id.0, view }) {
                    return false;
                }
            }
        }
        self.views.iter_mapped().all(|(v, vacb)| {
            let Some(mp) = vacb.mapping else { return false };
            self.map(MapId(mp.map))
                .is_some_and(|m| m.vacbs.get(mp.view) == Some(v))
        })
    }
}
