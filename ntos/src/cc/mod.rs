//! The cache manager (*Windows Internals* 7th ed., Part 2, ch. 11): file data
//! cached in 256 KiB views of the files' data sections in the system cache
//! range, `CcCopyRead`/`CcCopyWrite` through them, read-ahead on a system
//! worker thread, the lazy writer, and write throttling.
//!
//! The policy is `lib/cc` ([`::cc::manager::CacheManager`]); this module
//! holds it under one guarded mutex (`CcMasterLock`'s role) and does the
//! rest with the memory manager's section API (`mm::file`): the data section
//! of a file (`MmCreateSection` on the file object), views mapped and
//! unmapped in the system cache (`MmMapViewInSystemCache`), pages made
//! resident (in-page reads by paging I/O), dirty pages written
//! (`MmFlushSection`) and discarded (`MmPurgeSection`).
//!
//! Locking: the cache lock is held while views are mapped or unmapped (no
//! I/O happens there) and never across a copy, a page fault or a write:
//! copies run on referenced views (an active view is never reused).

pub mod exports;
pub mod pin;
/// Boot tests (`/TESTS`) of the cache manager.
pub mod tests;
/// Boot tests (`/TESTS`) of cached I/O through ntfs.sys.
pub mod tests_fs;

use crate::ex::sync::GuardedMutex;
use crate::ke::thread::WaitReason;
use crate::ke::wait::{ke_wait_for_single_object, KEvent};
use crate::mm::file::{self as mmf, DataSection};
use ::cc::manager::{CacheManager, CcError, MapId, PrivId, Teardown};
use ::cc::throttle::{DeferredWrite, Throttle};
use ::cc::vacb::{VacbId, VacbMapping, ViewGrant, VACB_MAPPING_GRANULARITY};
use ::cc::FileSizes;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use nt::status::*;
use nt::NtStatus;
use wdk::{
    CACHE_MANAGER_CALLBACKS, CACHE_UNINITIALIZE_EVENT, CC_FILE_SIZES, FILE_OBJECT,
    FO_RANDOM_ACCESS, FO_SEQUENTIAL_ONLY, FO_WRITE_THROUGH, PCC_POST_DEFERRED_WRITE,
    SECTION_OBJECT_POINTERS,
};

/// What `SECTION_OBJECT_POINTERS.SharedCacheMap` points at: a nonpaged
/// block naming the stream's shared cache map.
#[repr(C)]
struct SharedCacheMapBlock {
    map: u32,
}

/// What `FILE_OBJECT.PrivateCacheMap` points at.
#[repr(C)]
struct PrivateCacheMapBlock {
    private: u32,
    map: u32,
}

/// The kernel half of a shared cache map.
struct Stream {
    section: DataSection,
    sop: u64,
    /// The file object of the first `CcInitializeCacheMap` (the data
    /// section holds a reference on it).
    file: u64,
    callbacks: Option<CACHE_MANAGER_CALLBACKS>,
    lazy_write_context: u64,
    /// `CACHE_UNINITIALIZE_EVENT`s to signal when the map is deleted.
    uninit_events: Vec<u64>,
    block: *mut SharedCacheMapBlock,
}

/// How a deferred write is completed.
enum Deferred {
    /// `CcDeferWrite`: call the post routine.
    Post(PCC_POST_DEFERRED_WRITE, u64, u64),
    /// A `CcCanIWrite(Wait = TRUE)` caller waiting on this event.
    Wake(*const KEvent),
}

struct CcState {
    cc: CacheManager,
    streams: BTreeMap<u32, Stream>,
    /// System cache address of each VACB's view.
    vacb_va: Vec<u64>,
    deferred: BTreeMap<u64, Deferred>,
    next_token: u64,
    /// Live buffer control blocks (`pin.rs`).
    bcbs: ::cc::bcb::Bcbs,
}

struct CcLock {
    mutex: GuardedMutex,
    state: UnsafeCell<Option<CcState>>,
}

// SAFETY: the state is only reached through `with`, which holds the mutex.
unsafe impl Sync for CcLock {}

static CC: CcLock = CcLock {
    mutex: GuardedMutex::new(),
    state: UnsafeCell::new(None),
};

/// `CcDirtyPageThreshold` until the first use sets it from memory size.
static THRESHOLD_OVERRIDE: AtomicU64 = AtomicU64::new(0);
static LAZY_STARTED: AtomicBool = AtomicBool::new(false);
/// Wakes the lazy writer when there is something to write.
static LAZY_EVENT: KEvent = KEvent::new(false, false);
/// Lazy writer passes that wrote something (tests, `!defwrites`).
pub static LAZY_WRITES: AtomicU64 = AtomicU64::new(0);
/// Read-aheads issued and pages they made resident (tests).
pub static READ_AHEADS: AtomicU64 = AtomicU64::new(0);

/// The default dirty page threshold (ntrs's choice): one eighth of the
/// physical pages, at least 256 pages.
fn default_threshold() -> u64 {
    crate::mm::pfn::counts().map_or(4096, |c| (c.total / 8).max(256))
}

/// Runs `f` on the cache manager's state under its lock.
fn with<R>(f: impl FnOnce(&mut CcState) -> R) -> R {
    CC.mutex.acquire();
    // SAFETY: the mutex is held, so this is the only reference to the
    // state until it is released below; `f` cannot keep it (the borrow
    // ends with the call).
    let st = unsafe { &mut *CC.state.get() };
    let st = st.get_or_insert_with(|| {
        let t = THRESHOLD_OVERRIDE.load(Ordering::Relaxed);
        CcState {
            cc: CacheManager::new(
                mmf::SYSTEM_CACHE_VIEWS as u32,
                if t != 0 { t } else { default_threshold() },
            ),
            streams: BTreeMap::new(),
            vacb_va: Vec::new(),
            deferred: BTreeMap::new(),
            next_token: 1,
            bcbs: ::cc::bcb::Bcbs::new(),
        }
    });
    let r = f(st);
    CC.mutex.release();
    r
}

fn err_status(e: CcError) -> NtStatus {
    match e {
        CcError::NoViews => STATUS_INSUFFICIENT_RESOURCES,
        CcError::BeyondSection => STATUS_INVALID_PARAMETER,
        CcError::Busy => STATUS_UNSUCCESSFUL,
        CcError::BadId => STATUS_INVALID_PARAMETER,
    }
}

fn mm_available() -> (u64, u64) {
    crate::mm::pfn::counts().map_or((u64::MAX, 0), |c| {
        (c.zeroed + c.free + c.standby, c.modified)
    })
}

/// The shared cache map of a file object's stream.
///
/// # Safety
/// `file` must be a live file object.
unsafe fn map_of_file(file: *mut FILE_OBJECT) -> Option<MapId> {
    // SAFETY: the caller guarantees `file`.
    let sop = unsafe { (*file).SectionObjectPointer };
    // SAFETY: as above: the file's section object pointers.
    unsafe { map_of_sop(sop) }
}

/// # Safety
/// `sop` null or a live `SECTION_OBJECT_POINTERS`.
unsafe fn map_of_sop(sop: *mut SECTION_OBJECT_POINTERS) -> Option<MapId> {
    if sop.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees `sop`.
    let b = unsafe { (*sop).SharedCacheMap } as *const SharedCacheMapBlock;
    if b.is_null() {
        return None;
    }
    // SAFETY: `SharedCacheMap` is only set by this module to a live block
    // (cleared before the block is freed).
    Some(MapId(unsafe { (*b).map }))
}

/// # Safety
/// `file` must be a live file object.
unsafe fn private_of(file: *mut FILE_OBJECT) -> Option<(PrivId, MapId)> {
    // SAFETY: the caller guarantees `file`.
    let b = unsafe { (*file).PrivateCacheMap } as *const PrivateCacheMapBlock;
    if b.is_null() {
        return None;
    }
    // SAFETY: `PrivateCacheMap` is only set by this module to a live block.
    let b = unsafe { &*b };
    Some((PrivId(b.private), MapId(b.map)))
}

fn sizes_of(s: &CC_FILE_SIZES) -> FileSizes {
    FileSizes {
        allocation_size: s.AllocationSize.max(0) as u64,
        file_size: s.FileSize.max(0) as u64,
        valid_data_length: s.ValidDataLength.max(0) as u64,
    }
}

fn start_lazy_writer() {
    if LAZY_STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    let r = crate::ke::thread::create_system_thread(
        "CcLazyWriter",
        12,
        u64::MAX,
        lazy_writer_thread,
        0,
    )
    .and_then(|t| crate::ke::sched::ready_thread(t).map_err(|_| STATUS_UNSUCCESSFUL));
    if r.is_err() {
        LAZY_STARTED.store(false, Ordering::Release);
    }
}

fn wake_lazy_writer() {
    crate::ke::wait::ke_set_event(&LAZY_EVENT, 0);
}

/// `CcInitializeCacheMap`: caches the file object's stream. The first
/// file object of a stream creates the data section and the shared cache
/// map (`SECTION_OBJECT_POINTERS.SharedCacheMap`); every file object gets
/// a private cache map (`FILE_OBJECT.PrivateCacheMap`). Calling it again
/// for a cached file object only updates the sizes.
///
/// # Safety
/// `file` must be a live file object whose `SectionObjectPointer` the file
/// system owns; `callbacks` null or valid for the stream's lifetime.
pub unsafe fn cc_initialize_cache_map(
    file: *mut FILE_OBJECT,
    sizes: &CC_FILE_SIZES,
    callbacks: *const CACHE_MANAGER_CALLBACKS,
    lazy_write_context: u64,
) -> Result<(), NtStatus> {
    start_lazy_writer();
    let sizes = sizes_of(sizes);
    // SAFETY: the caller guarantees `file`.
    let (sop, flags, has_private) = unsafe {
        (
            (*file).SectionObjectPointer,
            (*file).Flags,
            !(*file).PrivateCacheMap.is_null(),
        )
    };
    if sop.is_null() {
        return Err(STATUS_INVALID_PARAMETER);
    }
    // SAFETY: as above.
    let existing = unsafe { map_of_sop(sop) };
    if has_private {
        if let Some(m) = existing {
            // SAFETY: the caller guarantees `file`.
            return unsafe { cc_set_file_sizes_map(m, sop, sizes) };
        }
    }
    let map = match existing {
        Some(m) => m,
        None => {
            let section_size = sizes.allocation_size.max(sizes.file_size);
            let section = mmf::mm_create_data_section(file, Some(section_size.max(1)))?;
            let block =
                match crate::ex::pool::try_box_tagged(SharedCacheMapBlock { map: 0 }, *b"CcSc") {
                    Ok(b) => Box::into_raw(b),
                    Err(s) => {
                        mmf::mm_dereference_data_section(section);
                        return Err(s);
                    }
                };
            // SAFETY: a valid callbacks pointer or null (caller).
            let callbacks = unsafe { callbacks.as_ref().copied() };
            let m = with(|st| {
                let m = st.cc.create_map(sizes, sop as u64);
                st.streams.insert(
                    m.0,
                    Stream {
                        section,
                        sop: sop as u64,
                        file: file as u64,
                        callbacks,
                        lazy_write_context,
                        uninit_events: Vec::new(),
                        block,
                    },
                );
                m
            });
            // SAFETY: `block` is ours and live; `sop` is the file system's
            // structure, which the cache manager owns the
            // `SharedCacheMap` field of.
            unsafe {
                (*block).map = m.0;
                (*sop).SharedCacheMap = block as *mut c_void;
            }
            m
        }
    };
    let private = with(|st| {
        let p = st.cc.open_private(map)?;
        if let Some(pm) = st.cc.private_mut(p) {
            pm.sequential_only = flags & FO_SEQUENTIAL_ONLY != 0;
            pm.disabled = flags & FO_RANDOM_ACCESS != 0;
        }
        Ok::<_, CcError>(p)
    })
    .map_err(err_status)?;
    let block = crate::ex::pool::try_box_tagged(
        PrivateCacheMapBlock {
            private: private.0,
            map: map.0,
        },
        *b"CcPc",
    );
    match block {
        Ok(b) => {
            // SAFETY: the caller guarantees `file`; the field is the cache
            // manager's.
            unsafe { (*file).PrivateCacheMap = Box::into_raw(b) as *mut c_void };
            Ok(())
        }
        Err(s) => {
            with(|st| st.cc.close_private(private)).ok();
            Err(s)
        }
    }
}

/// Unmaps views the policy gave up (evicted, purged or torn down).
fn unmap_views(views: &[(u64, VacbMapping)]) {
    for &(va, _) in views {
        if va != 0 {
            let _ = mmf::mm_unmap_view_in_system_cache(va);
        }
    }
}

/// Takes the view addresses of VACBs being freed (under the lock).
fn take_vas(st: &mut CcState, v: &[(VacbId, VacbMapping)]) -> Vec<(u64, VacbMapping)> {
    v.iter()
        .map(|&(id, m)| {
            let va = st.vacb_va.get_mut(id.0 as usize).map_or(0, core::mem::take);
            (va, m)
        })
        .collect()
}

/// Deletes a shared cache map the policy let go: unmaps its views, drops
/// the data section, clears `SharedCacheMap`, signals uninitialize events.
fn delete_stream(map: MapId, views: Vec<(u64, VacbMapping)>) {
    unmap_views(&views);
    let Some(s) = with(|st| st.streams.remove(&map.0)) else {
        return;
    };
    // SAFETY: `sop` is the file system's structure, live while the data
    // section holds the file object; `block` is ours.
    unsafe {
        let sop = s.sop as *mut SECTION_OBJECT_POINTERS;
        if (*sop).SharedCacheMap == s.block as *mut c_void {
            (*sop).SharedCacheMap = core::ptr::null_mut();
        }
        drop(Box::from_raw(s.block));
    }
    mmf::mm_dereference_data_section(s.section);
    for e in s.uninit_events {
        // SAFETY: the file system keeps a `CACHE_UNINITIALIZE_EVENT` alive
        // until it is signaled.
        unsafe {
            crate::ke::event::ke_set_event(
                core::ptr::addr_of_mut!((*(e as *mut CACHE_UNINITIALIZE_EVENT)).Event),
                0,
            );
        }
    }
}

/// `CcUninitializeCacheMap`: ends caching for the file object. A
/// `truncate_size` first truncates the stream (purging beyond it). With the
/// last file object the shared cache map goes now if nothing is dirty, or
/// after the lazy writer has written it; `event` is signaled when it is
/// gone. Returns false if the file object was not cached.
///
/// # Safety
/// `file` a live file object; `event` null or valid until signaled.
pub unsafe fn cc_uninitialize_cache_map(
    file: *mut FILE_OBJECT,
    truncate_size: Option<u64>,
    event: *mut CACHE_UNINITIALIZE_EVENT,
) -> bool {
    // SAFETY: the caller guarantees `file`.
    let Some((private, map)) = (unsafe { private_of(file) }) else {
        if !event.is_null() {
            // SAFETY: the caller guarantees `event`.
            unsafe { crate::ke::event::ke_set_event(core::ptr::addr_of_mut!((*event).Event), 0) };
        }
        return false;
    };
    if let Some(t) = truncate_size {
        // SAFETY: the caller guarantees `file`.
        let sop = unsafe { (*file).SectionObjectPointer };
        let mut sizes = with(|st| st.cc.map(map).map(|m| m.sizes)).unwrap_or_default();
        sizes.file_size = t;
        sizes.valid_data_length = sizes.valid_data_length.min(t);
        // SAFETY: as above.
        let _ = unsafe { cc_set_file_sizes_map(map, sop, sizes) };
    }
    // SAFETY: the caller guarantees `file`; the block is ours.
    unsafe {
        let b = (*file).PrivateCacheMap as *mut PrivateCacheMapBlock;
        (*file).PrivateCacheMap = core::ptr::null_mut();
        drop(Box::from_raw(b));
    }
    let r = with(|st| {
        let r = st.cc.close_private(private);
        match r {
            Ok((_, Teardown::Now(v))) => Some(take_vas(st, &v)),
            Ok((_, Teardown::AfterLazyWrite)) => {
                if !event.is_null() {
                    if let Some(s) = st.streams.get_mut(&map.0) {
                        s.uninit_events.push(event as u64);
                    }
                }
                None
            }
            _ => None,
        }
    });
    match r {
        Some(views) => {
            delete_stream(map, views);
            if !event.is_null() {
                // SAFETY: the caller guarantees `event`.
                unsafe {
                    crate::ke::event::ke_set_event(core::ptr::addr_of_mut!((*event).Event), 0)
                };
            }
        }
        None => wake_lazy_writer(),
    }
    true
}

/// A referenced view: its address and VACB.
struct View {
    va: u64,
    vacb: VacbId,
}

/// References (mapping if needed) the view holding `offset`.
fn get_view(map: MapId, offset: u64) -> Result<View, NtStatus> {
    let stream_section = with(|st| st.streams.get(&map.0).map(|s| s.section));
    let Some(section) = stream_section else {
        return Err(STATUS_INVALID_PARAMETER);
    };
    with(|st| {
        let grant = st.cc.get_view(map, offset).map_err(err_status)?;
        let vacb = grant.vacb();
        if st.vacb_va.len() <= vacb.0 as usize {
            st.vacb_va.resize(vacb.0 as usize + 1, 0);
        }
        match grant {
            ViewGrant::Hit(_) => {}
            ViewGrant::Map(_) | ViewGrant::Reuse { .. } => {
                let old = core::mem::take(&mut st.vacb_va[vacb.0 as usize]);
                if old != 0 {
                    let _ = mmf::mm_unmap_view_in_system_cache(old);
                }
                let base = offset & !(VACB_MAPPING_GRANULARITY - 1);
                match mmf::mm_map_view_in_system_cache(section, base) {
                    Ok((va, _)) => st.vacb_va[vacb.0 as usize] = va,
                    Err(s) => {
                        // Give the VACB back: unreferenced and unmapped.
                        st.cc.abandon_view(vacb);
                        return Err(s);
                    }
                }
            }
        }
        Ok(View {
            va: st.vacb_va[vacb.0 as usize],
            vacb,
        })
    })
}

fn release_view(v: View) {
    with(|st| st.cc.release_view(v.vacb));
}

/// Copies between the stream and `buf` (`write`: into the stream), view by
/// view, faulting pages in first so an in-page error becomes a status.
fn copy(map: MapId, offset: u64, buf: *mut u8, length: u64, write: bool) -> Result<(), NtStatus> {
    let mut done = 0u64;
    for (view, in_view, n) in ::cc::manager::view_chunks(offset, length) {
        let v = get_view(map, view * VACB_MAPPING_GRANULARITY)?;
        let at = v.va + in_view;
        let r = mmf::mm_prefault_system_cache(at, n);
        if r.is_ok() {
            // SAFETY: `[at, at + n)` lies in a referenced view whose pages
            // were just made valid; the caller guarantees `buf` has
            // `length` bytes.
            unsafe {
                if write {
                    core::ptr::copy(buf.add(done as usize), at as *mut u8, n as usize);
                } else {
                    core::ptr::copy(at as *const u8, buf.add(done as usize), n as usize);
                }
            }
        }
        release_view(v);
        r?;
        done += n;
    }
    Ok(())
}

/// `CcCopyRead`: copies `length` bytes at `offset` of the cached file to
/// `buf`, then schedules read-ahead if the handle's reads form a pattern.
///
/// # Safety
/// `file` a cached, live file object; `buf` writable for `length` bytes.
pub unsafe fn cc_copy_read(
    file: *mut FILE_OBJECT,
    offset: u64,
    length: u64,
    buf: *mut u8,
) -> Result<u64, NtStatus> {
    // SAFETY: the caller guarantees `file`.
    let Some((private, map)) = (unsafe { private_of(file) }) else {
        return Err(STATUS_INVALID_PARAMETER);
    };
    copy(map, offset, buf, length, false)?;
    let ra = with(|st| st.cc.record_read(private, offset, length));
    if let Some(ra) = ra {
        schedule_read_ahead(map, ra.offset, ra.length);
    }
    Ok(length)
}

/// `CcCopyWrite`: copies `length` bytes from `buf` to `offset` of the
/// cached file and marks the pages dirty for the lazy writer. A
/// write-through file object (`FO_WRITE_THROUGH`) is flushed at once.
///
/// # Safety
/// `file` a cached, live file object; `buf` readable for `length` bytes.
pub unsafe fn cc_copy_write(
    file: *mut FILE_OBJECT,
    offset: u64,
    length: u64,
    buf: *const u8,
) -> Result<(), NtStatus> {
    // SAFETY: the caller guarantees `file`.
    let Some((_, map)) = (unsafe { private_of(file) }) else {
        return Err(STATUS_INVALID_PARAMETER);
    };
    copy(map, offset, buf as *mut u8, length, true)?;
    let first = with(|st| {
        let before = st.cc.total_dirty;
        let _ = st.cc.mark_dirty(map, offset, length);
        before == 0
    });
    if first {
        wake_lazy_writer();
    }
    // SAFETY: the caller guarantees `file`.
    let (flags, sop) = unsafe { ((*file).Flags, (*file).SectionObjectPointer) };
    if flags & FO_WRITE_THROUGH != 0 {
        // SAFETY: the file's section object pointers.
        unsafe { cc_flush_cache(sop, Some((offset, length))) }?;
    }
    Ok(())
}

/// Writes runs the policy handed out; tells it how each went. Returns the
/// bytes written or the first failure.
fn write_runs(map: MapId, sop: u64, runs: &[::cc::dirty::PageRun]) -> Result<u64, NtStatus> {
    let mut total = 0u64;
    let mut first_err = None;
    for r in runs {
        // SAFETY: `sop` is the stream's section object pointers, live
        // while the cache map holds the data section (and so the file).
        let res = unsafe {
            mmf::mm_flush_section(
                sop as *mut SECTION_OBJECT_POINTERS,
                Some(r.first << 12),
                r.count << 12,
            )
        };
        with(|st| st.cc.write_done(map, *r, res.is_ok())).ok();
        match res {
            Ok(n) => total += n,
            Err(s) => {
                first_err.get_or_insert(s);
            }
        }
    }
    match first_err {
        Some(s) => Err(s),
        None => Ok(total),
    }
}

/// `CcFlushCache`: writes the stream's dirty data in the range (`None`: the
/// whole stream). A stream that is not cached has its mapped section
/// flushed. Returns the bytes written.
///
/// # Safety
/// `sop` a live `SECTION_OBJECT_POINTERS`.
pub unsafe fn cc_flush_cache(
    sop: *mut SECTION_OBJECT_POINTERS,
    range: Option<(u64, u64)>,
) -> Result<u64, NtStatus> {
    // SAFETY: the caller guarantees `sop`.
    let Some(map) = (unsafe { map_of_sop(sop) }) else {
        return match range {
            // SAFETY: the caller guarantees `sop`.
            Some((o, l)) => unsafe { mmf::mm_flush_section(sop, Some(o), l) },
            // SAFETY: as above.
            None => unsafe { mmf::mm_flush_section(sop, None, 0) },
        };
    };
    let runs = with(|st| st.cc.take_for_flush(map, range)).map_err(err_status)?;
    let r = write_runs(map, sop as u64, &runs);
    post_deferred_writes();
    // Writes the lazy writer took before this flush may still be on their
    // way: the caller (a non-cached read after it, a FLUSH) must find them
    // on disk, so wait for them (NT waits on the pages being written).
    for _ in 0..1_000_000 {
        if with(|st| st.cc.map(map).map_or(0, |m| m.pages_in_flight)) == 0 {
            break;
        }
        crate::ke::sched::ke_delay_execution_thread(0);
    }
    // Pages dirtied through mapped views (not through the cache manager)
    // in the range go too, as NT's CcFlushCache reaches them through
    // MmFlushSection.
    // SAFETY: the caller guarantees `sop`.
    let mapped = unsafe {
        match range {
            Some((o, l)) => mmf::mm_flush_section(sop, Some(o), l),
            None => mmf::mm_flush_section(sop, None, 0),
        }
    };
    let n = r?;
    Ok(n + mapped?)
}

/// `CcPurgeCacheSection`: discards the cached data of the range (`None`:
/// all). False if a view over it is in use or the memory manager could not
/// drop the pages (ntrs: dirty pages it still holds, see `docs/cc.md`).
///
/// # Safety
/// `sop` a live `SECTION_OBJECT_POINTERS`.
pub unsafe fn cc_purge_cache_section(
    sop: *mut SECTION_OBJECT_POINTERS,
    range: Option<(u64, u64)>,
) -> bool {
    // SAFETY: the caller guarantees `sop`.
    if let Some(map) = unsafe { map_of_sop(sop) } {
        let r = with(|st| st.cc.purge(map, range).map(|v| take_vas(st, &v)));
        match r {
            Ok(views) => unmap_views(&views),
            Err(_) => return false,
        }
        // The memory manager purges only a section no view maps: the
        // stream's other idle views go too (they are mapped again on next
        // use; their pages stay resident and dirty pages stay dirty).
        let idle = with(|st| {
            let views: Vec<u64> = st
                .cc
                .map(map)
                .map(|m| m.vacbs.entries().into_iter().map(|(v, _)| v).collect())
                .unwrap_or_default();
            let freed: Vec<_> = views
                .into_iter()
                .filter_map(|v| st.cc.unmap_idle_view(map, v))
                .collect();
            take_vas(st, &freed)
        });
        unmap_views(&idle);
    }
    match range {
        // SAFETY: the caller guarantees `sop`.
        Some((o, l)) => unsafe { mmf::mm_purge_section(sop, Some(o), l) },
        // SAFETY: as above.
        None => unsafe { mmf::mm_purge_section(sop, None, 0) },
    }
}

/// # Safety
/// `sop` the stream's live section object pointers.
unsafe fn cc_set_file_sizes_map(
    map: MapId,
    sop: *mut SECTION_OBJECT_POINTERS,
    sizes: FileSizes,
) -> Result<(), NtStatus> {
    let (section, old) = with(|st| {
        (
            st.streams.get(&map.0).map(|s| s.section),
            st.cc.map(map).map(|m| m.sizes),
        )
    });
    let (Some(section), Some(old)) = (section, old) else {
        return Err(STATUS_INVALID_PARAMETER);
    };
    let want = sizes.allocation_size.max(sizes.file_size);
    let had = mmf::mm_section_size(section).unwrap_or(0);
    if want > had {
        mmf::mm_extend_section(section, want)?;
        // The view holding the old end was mapped short (views end at the
        // segment's end): unmap it so its next use maps all 256 KiB.
        if !had.is_multiple_of(VACB_MAPPING_GRANULARITY) {
            let view = had / VACB_MAPPING_GRANULARITY;
            let freed = with(|st| {
                st.cc
                    .unmap_idle_view(map, view)
                    .map(|v| take_vas(st, &[v]))
                    .unwrap_or_default()
            });
            unmap_views(&freed);
        }
    }
    with(|st| st.cc.set_file_sizes(map, sizes)).map_err(err_status)?;
    if sizes.file_size < old.file_size {
        // Truncation: the views and pages past the new end go (whole
        // pages only; the partial last page stays).
        let from = sizes.file_size.div_ceil(4096) * 4096;
        if from < old.file_size {
            // SAFETY: the caller guarantees `sop`.
            unsafe { cc_purge_cache_section(sop, Some((from, old.file_size - from))) };
        }
    }
    Ok(())
}

/// `CcSetFileSizes`.
///
/// # Safety
/// `file` a cached, live file object.
pub unsafe fn cc_set_file_sizes(
    file: *mut FILE_OBJECT,
    sizes: &CC_FILE_SIZES,
) -> Result<(), NtStatus> {
    // SAFETY: the caller guarantees `file`.
    let Some(map) = (unsafe { map_of_file(file) }) else {
        return Err(STATUS_INVALID_PARAMETER);
    };
    // SAFETY: as above.
    unsafe { cc_set_file_sizes_map(map, (*file).SectionObjectPointer, sizes_of(sizes)) }
}

/// `CcCanIWrite`'s decision for the file object (`None`: go ahead).
///
/// # Safety
/// `file` a live file object.
pub unsafe fn cc_throttle(file: *mut FILE_OBJECT, bytes: u64, retrying: bool) -> Option<Throttle> {
    // SAFETY: the caller guarantees `file`.
    let (map, flags) = unsafe { (map_of_file(file), (*file).Flags) };
    let map = map?;
    let (avail, _) = mm_available();
    with(|st| {
        st.cc.can_i_write(
            map,
            0,
            bytes,
            flags & FO_WRITE_THROUGH != 0,
            retrying,
            avail,
            0,
        )
    })
}

/// `CcCanIWrite`: may a cached write of `bytes` proceed now? With `wait`,
/// a throttled caller is queued and blocks until the lazy writer lets it
/// go (then TRUE); without, it gets FALSE and should `CcDeferWrite`.
///
/// # Safety
/// `file` a live file object.
pub unsafe fn cc_can_i_write(
    file: *mut FILE_OBJECT,
    bytes: u64,
    wait: bool,
    retrying: bool,
) -> bool {
    // SAFETY: the caller guarantees `file`.
    if unsafe { cc_throttle(file, bytes, retrying) }.is_none() {
        return true;
    }
    if !wait {
        return false;
    }
    let event = KEvent::new(true, false);
    // SAFETY: the caller guarantees `file`.
    let map = unsafe { map_of_file(file) };
    let Some(map) = map else { return true };
    let token = with(|st| {
        let t = st.next_token;
        st.next_token += 1;
        st.deferred
            .insert(t, Deferred::Wake(&event as *const KEvent));
        st.cc.defer_write(
            DeferredWrite {
                token: t,
                map: map.0,
                pages: ::cc::throttle::pages_spanned(0, bytes),
                bytes,
            },
            retrying,
        );
        t
    });
    wake_lazy_writer();
    ke_wait_for_single_object(&event, WaitReason::Executive, false, false, None);
    let _ = token;
    true
}

/// `CcDeferWrite`: queues `post(context1, context2)` to run when a write
/// of `bytes` fits under the thresholds (at once if it fits now).
///
/// # Safety
/// `file` a live file object; `post` callable with the contexts.
pub unsafe fn cc_defer_write(
    file: *mut FILE_OBJECT,
    post: PCC_POST_DEFERRED_WRITE,
    context1: u64,
    context2: u64,
    bytes: u64,
    retrying: bool,
) {
    // SAFETY: the caller guarantees `file`.
    let map = unsafe { map_of_file(file) };
    // SAFETY: as above.
    let fits = unsafe { cc_throttle(file, bytes, retrying) }.is_none();
    let Some(map) = map.filter(|_| !fits) else {
        // SAFETY: the caller's routine and contexts.
        unsafe { post(context1 as *mut c_void, context2 as *mut c_void) };
        return;
    };
    with(|st| {
        let t = st.next_token;
        st.next_token += 1;
        st.deferred
            .insert(t, Deferred::Post(post, context1, context2));
        st.cc.defer_write(
            DeferredWrite {
                token: t,
                map: map.0,
                pages: ::cc::throttle::pages_spanned(0, bytes),
                bytes,
            },
            retrying,
        );
    });
    wake_lazy_writer();
}

/// `CcPostDeferredWrites`: runs the queued writes that fit now.
fn post_deferred_writes() {
    let (avail, _) = mm_available();
    let ready: Vec<Deferred> = with(|st| {
        let posted = st.cc.post_deferred_writes(avail, 0);
        posted
            .iter()
            .filter_map(|w| st.deferred.remove(&w.token))
            .collect()
    });
    for d in ready {
        match d {
            // SAFETY: the routine and contexts `CcDeferWrite` was given.
            Deferred::Post(f, a, b) => unsafe { f(a as *mut c_void, b as *mut c_void) },
            Deferred::Wake(e) => {
                // SAFETY: the waiter blocks on the event until it is set,
                // so it is live.
                crate::ke::wait::ke_set_event(unsafe { &*e }, 0);
            }
        }
    }
}

/// `CcSetDirtyPageThreshold`.
///
/// # Safety
/// `file` a live file object.
pub unsafe fn cc_set_dirty_page_threshold(file: *mut FILE_OBJECT, pages: u64) {
    // SAFETY: the caller guarantees `file`.
    if let Some(map) = unsafe { map_of_file(file) } {
        with(|st| st.cc.set_dirty_threshold(map, pages)).ok();
    }
}

/// `CcSetReadAheadGranularity`.
///
/// # Safety
/// `file` a live file object.
pub unsafe fn cc_set_read_ahead_granularity(file: *mut FILE_OBJECT, g: u64) {
    // SAFETY: the caller guarantees `file`.
    if let Some((p, _)) = unsafe { private_of(file) } {
        with(|st| st.cc.private_mut(p).map(|pm| pm.set_granularity(g)));
    }
}

/// `CcGetFileObjectFromSectionPtrs`.
///
/// # Safety
/// `sop` a live `SECTION_OBJECT_POINTERS`.
pub unsafe fn cc_get_file_object_from_section_ptrs(
    sop: *mut SECTION_OBJECT_POINTERS,
) -> *mut FILE_OBJECT {
    // SAFETY: the caller guarantees `sop`.
    let Some(map) = (unsafe { map_of_sop(sop) }) else {
        return core::ptr::null_mut();
    };
    with(|st| st.streams.get(&map.0).map_or(0, |s| s.file)) as *mut FILE_OBJECT
}

/// Sets the global dirty page threshold (tests; `CcDirtyPageThreshold`).
/// Returns the previous one.
pub fn set_dirty_page_threshold(pages: u64) -> u64 {
    THRESHOLD_OVERRIDE.store(pages, Ordering::Relaxed);
    with(|st| core::mem::replace(&mut st.cc.threshold, pages))
}

/// `CcTotalDirtyPages`.
pub fn total_dirty_pages() -> u64 {
    with(|st| st.cc.total_dirty)
}

/// Dirty pages of a file object's stream.
///
/// # Safety
/// `file` a live file object.
pub unsafe fn stream_dirty_pages(file: *mut FILE_OBJECT) -> Option<u64> {
    // SAFETY: the caller guarantees `file`.
    let map = unsafe { map_of_file(file) }?;
    with(|st| st.cc.map(map).map(|m| m.dirty.pages()))
}

struct ReadAheadRequest {
    map: MapId,
    sop: u64,
    offset: u64,
    length: u64,
}

fn schedule_read_ahead(map: MapId, offset: u64, length: u64) {
    let sop = with(|st| st.streams.get(&map.0).map(|s| s.sop));
    let Some(sop) = sop else { return };
    let Ok(req) = crate::ex::pool::try_box_tagged(
        ReadAheadRequest {
            map,
            sop,
            offset,
            length,
        },
        *b"CcRa",
    ) else {
        return;
    };
    crate::ex::worker::ex_queue_work_item(
        crate::ex::worker::WorkQueueItem {
            routine: read_ahead_worker,
            parameter: Box::into_raw(req) as usize,
        },
        crate::ex::worker::WorkQueueType::CriticalWorkQueue,
    );
}

/// `CcPerformReadAhead` on a critical worker thread: makes the predicted
/// pages resident through the stream's views, bracketed by the file
/// system's read-ahead callbacks.
fn read_ahead_worker(p: usize) {
    // SAFETY: `schedule_read_ahead` passed a leaked box of this type.
    let req = unsafe { Box::from_raw(p as *mut ReadAheadRequest) };
    let cb = with(|st| {
        st.streams
            .get(&req.map.0)
            .filter(|s| s.sop == req.sop)
            .map(|s| (s.callbacks, s.lazy_write_context))
    });
    let Some((cb, ctx)) = cb else { return };
    if let Some(cb) = cb {
        if let Some(acq) = cb.AcquireForReadAhead {
            // SAFETY: the file system's callback and context.
            if unsafe { acq(ctx as *mut c_void, 1) } == 0 {
                return;
            }
        }
    }
    let size = with(|st| st.cc.map(req.map).map_or(0, |m| m.sizes.file_size));
    let end = (req.offset + req.length).min(size.div_ceil(4096) * 4096);
    if req.offset < end {
        for (view, in_view, n) in ::cc::manager::view_chunks(req.offset, end - req.offset) {
            let Ok(v) = get_view(req.map, view * VACB_MAPPING_GRANULARITY) else {
                break;
            };
            let ok = mmf::mm_prefault_system_cache(v.va + in_view, n).is_ok();
            release_view(v);
            if !ok {
                break;
            }
        }
        READ_AHEADS.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(cb) = cb {
        if let Some(rel) = cb.ReleaseFromReadAhead {
            // SAFETY: the file system's callback and context.
            unsafe { rel(ctx as *mut c_void) };
        }
    }
}

/// One lazy writer pass: writes the planned runs (under the file system's
/// lazy-write callbacks), deletes closed clean streams, posts deferred
/// writes. Returns whether work remains (dirty pages, queued writes or
/// streams waiting for teardown).
fn lazy_writer_pass() -> bool {
    let plan = with(|st| st.cc.lazy_pass());
    let mut wrote = false;
    for (map, runs) in &plan.writes {
        let s = with(|st| {
            st.streams
                .get(&map.0)
                .map(|s| (s.sop, s.callbacks, s.lazy_write_context))
        });
        let Some((sop, cb, ctx)) = s else { continue };
        let acquired = match cb.and_then(|c| c.AcquireForLazyWrite) {
            // SAFETY: the file system's callback and context.
            Some(acq) => (unsafe { acq(ctx as *mut c_void, 1) }) != 0,
            None => true,
        };
        if !acquired {
            for r in runs {
                with(|st| st.cc.write_done(*map, *r, false)).ok();
            }
            continue;
        }
        let _ = write_runs(*map, sop, runs);
        wrote = true;
        if let Some(rel) = cb.and_then(|c| c.ReleaseFromLazyWrite) {
            // SAFETY: the file system's callback and context.
            unsafe { rel(ctx as *mut c_void) };
        }
    }
    if wrote {
        LAZY_WRITES.fetch_add(1, Ordering::Relaxed);
    }
    for map in plan.teardown {
        let r = with(|st| st.cc.delete_map(map).map(|v| take_vas(st, &v)));
        if let Ok(views) = r {
            delete_stream(map, views);
        }
    }
    post_deferred_writes();
    with(|st| {
        st.cc.total_dirty > 0
            || !st.cc.deferred.is_empty()
            || st.cc.maps().any(|(_, m)| m.open_count == 0)
    })
}

/// The lazy writer (`CcLazyWriteScan` driven by its one-second timer):
/// sleeps until something is dirtied, then runs a pass each second while
/// work remains.
fn lazy_writer_thread(_: usize) {
    loop {
        ke_wait_for_single_object(&LAZY_EVENT, WaitReason::Executive, false, false, None);
        loop {
            crate::ke::sched::ke_delay_execution_thread(10_000_000);
            if !lazy_writer_pass() {
                break;
            }
        }
    }
}

/// `!defwrites`.
pub fn kd_defwrites() {
    let c = crate::mm::pfn::counts();
    let mm = ::cc::kd::MmCounters {
        available_pages: c.map(|c| c.zeroed + c.free + c.standby),
        throttle_top: None,
        throttle_bottom: None,
        modified_pages: c.map(|c| c.modified),
    };
    let text = with(|st| {
        ::cc::kd::format_defwrites(&st.cc, &mm, |t| match st.deferred.get(&t) {
            Some(Deferred::Post(_, a, _)) => *a,
            _ => 0,
        })
    });
    crate::dbg_print!("{}", text);
}

/// `!filecache`.
pub fn kd_filecache() {
    let text = with(|st| {
        ::cc::kd::format_filecache(&st.cc, |key| {
            let s = st.streams.values().find(|s| s.sop == key);
            let name = s.map_or(alloc::string::String::new(), |s| {
                // SAFETY: the data section holds the file object.
                unsafe { crate::io::unicode_to_string(&(*(s.file as *const FILE_OBJECT)).FileName) }
            });
            // The control area's address as `!ca` takes it.
            // SAFETY: the stream's section object pointers are live while
            // the data section holds the file object.
            let ca = s.map_or(key, |s| unsafe {
                (*(s.sop as *const SECTION_OBJECT_POINTERS)).DataSectionObject as u64
            });
            (ca, name)
        })
    });
    crate::dbg_print!("{}", text);
}

/// Writes the dirty data of every cached stream (the shutdown path: NT's
/// `PopGracefulShutdown` has the lazy writer flush everything and waits with
/// `CcWaitForCurrentLazyWriterActivity`; this is the same writing, done by
/// the caller). Returns the bytes written, or the first error after every
/// stream was tried.
pub fn cc_flush_all() -> Result<u64, NtStatus> {
    let maps: Vec<u32> = with(|st| st.streams.keys().copied().collect());
    let mut total = 0u64;
    let mut first_err = None;
    for id in maps {
        let map = MapId(id);
        // The stream's section object pointers and its dirty runs together,
        // as the lazy writer takes them.
        let planned = with(|st| {
            let sop = st.streams.get(&id)?.sop;
            Some((sop, st.cc.take_for_flush(map, None)))
        });
        let r = match planned {
            // Deleted since the list was taken: nothing left to write.
            None | Some((_, Err(CcError::BadId))) => continue,
            Some((sop, Ok(runs))) => write_runs(map, sop, &runs),
            Some((_, Err(e))) => Err(err_status(e)),
        };
        match r {
            Ok(n) => total += n,
            Err(s) => {
                first_err.get_or_insert(s);
            }
        }
    }
    post_deferred_writes();
    match first_err {
        Some(s) => Err(s),
        None => Ok(total),
    }
}
