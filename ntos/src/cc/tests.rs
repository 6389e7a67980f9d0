//! Boot tests of the cache manager (`cc.*`) over ntrstest.sys's
//! `\Device\NtrsTestFile`, the test playing the file system's part (it
//! calls `CcInitializeCacheMap` and friends on the file objects). The
//! device's own READ/WRITE requests go straight to the file's data, so they
//! are the "non-cached" path the cached data is compared against.

use super::*;
use crate::io::file::{nt_create_file, nt_read_file, nt_write_file, OpenPacket, RequestArgs};
use crate::io::load::{nt_load_driver, nt_unload_driver};
use crate::ktest::{check, wait_until, Test, TestResult};
use crate::ob::handle::{nt_close, ob_reference_object_by_handle};
use crate::ob::object::Mode;
use alloc::vec;
use core::sync::atomic::AtomicU32;
use wdk::*;

const KEY: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\ntrstest";

fn open(name: &str) -> Result<u64, NtStatus> {
    let path = alloc::format!("\\Device\\NtrsTestFile{name}");
    nt_create_file(
        &path,
        &OpenPacket {
            desired: FILE_READ_DATA | FILE_WRITE_DATA,
            share: FILE_SHARE_VALID_FLAGS,
            disposition: FILE_OVERWRITE_IF,
            options: 0,
            file_attributes: 0,
            attributes: ::ob::OBJ_CASE_INSENSITIVE,
            mode: Mode::KernelMode,
        },
    )
    .map(|(h, _)| h)
}

/// A request through the device (not the cache).
fn io(h: u64, buf: &mut [u8], offset: i64, write: bool) -> Result<usize, NtStatus> {
    let mut iosb = IO_STATUS_BLOCK::zeroed();
    let args = RequestArgs {
        event: None,
        apc_context: 0,
        apc_routine: None,
        iosb: &mut iosb,
        mode: Mode::KernelMode,
    };
    let p = buf.as_mut_ptr() as *mut c_void;
    let s = if write {
        nt_write_file(h, &args, p, buf.len() as u32, Some(offset), 0)?
    } else {
        nt_read_file(h, &args, p, buf.len() as u32, Some(offset), 0)?
    };
    if !s.is_success() {
        return Err(s);
    }
    Ok(iosb.Information)
}

fn file_object(h: u64) -> Result<*mut FILE_OBJECT, &'static str> {
    let r = ob_reference_object_by_handle(
        h,
        0,
        Some(&crate::io::IO_FILE_OBJECT_TYPE),
        Mode::KernelMode,
    )
    .map_err(|_| "no file object behind the handle")?;
    // The handle keeps the file object alive once `r` drops.
    crate::io::file::file_of(r.id).ok_or("not a file object")
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i / 4096) as u8)
        .collect()
}

fn sizes(n: u64) -> CC_FILE_SIZES {
    CC_FILE_SIZES {
        AllocationSize: n as i64,
        FileSize: n as i64,
        ValidDataLength: n as i64,
    }
}

/// Loads ntrstest, opens `\name` with `size` bytes of zeros, caches it,
/// runs `f`, then uninitializes the cache map (waiting for the shared cache
/// map to go), closes and unloads.
fn with_cached_file(
    name: &str,
    size: usize,
    f: impl FnOnce(u64, *mut FILE_OBJECT) -> TestResult,
) -> TestResult {
    check(
        nt_load_driver(KEY, Mode::KernelMode) == STATUS_SUCCESS,
        "NtLoadDriver(ntrstest)",
    )?;
    let r = (|| {
        let h = open(name).map_err(|_| "open \\Device\\NtrsTestFile")?;
        let r = (|| {
            let mut zeros = vec![0u8; size];
            check(io(h, &mut zeros, 0, true) == Ok(size), "sizing write")?;
            let fo = file_object(h)?;
            // SAFETY: the handle keeps the file object; the test is its
            // file system for caching purposes.
            unsafe { cc_initialize_cache_map(fo, &sizes(size as u64), core::ptr::null(), 0) }
                .map_err(|_| "CcInitializeCacheMap failed")?;
            // SAFETY: as above.
            let private = unsafe { (*fo).PrivateCacheMap };
            check(!private.is_null(), "no PrivateCacheMap")?;
            let r = f(h, fo);
            let mut ev = CACHE_UNINITIALIZE_EVENT {
                Next: core::ptr::null_mut(),
                Event: KEVENT::zeroed(),
            };
            // SAFETY: `ev` outlives the wait below; the file object is live.
            unsafe {
                crate::ke::event::ke_initialize_event(&mut ev.Event, 0, false);
                cc_uninitialize_cache_map(fo, None, &mut ev);
            }
            // SAFETY: the handle keeps the section object pointers.
            let sop = unsafe { (*fo).SectionObjectPointer };
            let evp = core::ptr::addr_of_mut!(ev.Event);
            let gone = wait_until(10_000, || {
                // SAFETY: the handle keeps the section object pointers;
                // `ev` lives until the end of this function.
                unsafe {
                    core::ptr::read_volatile(core::ptr::addr_of!((*sop).SharedCacheMap)).is_null()
                        && crate::ke::event::ke_read_state_event(evp) != 0
                }
            });
            r?;
            check(
                gone,
                "shared cache map not deleted after the last uninitialize",
            )
        })();
        nt_close(h);
        r
    })();
    let unloaded = nt_unload_driver(KEY, Mode::KernelMode) == STATUS_SUCCESS;
    r?;
    check(unloaded, "NtUnloadDriver(ntrstest)")
}

fn cached_read(fo: *mut FILE_OBJECT, off: u64, len: usize) -> Result<Vec<u8>, &'static str> {
    let mut b = vec![0u8; len];
    // SAFETY: a cached file object; `b` has `len` bytes.
    let n = unsafe { cc_copy_read(fo, off, len as u64, b.as_mut_ptr()) }
        .map_err(|_| "CcCopyRead failed")?;
    check(n == len as u64, "CcCopyRead short")?;
    Ok(b)
}

fn cached_write(fo: *mut FILE_OBJECT, off: u64, data: &[u8]) -> TestResult {
    // SAFETY: a cached file object; `data` is readable.
    unsafe { cc_copy_write(fo, off, data.len() as u64, data.as_ptr()) }
        .map_err(|_| "CcCopyWrite failed")
}

fn device_read(h: u64, off: u64, len: usize) -> Result<Vec<u8>, &'static str> {
    let mut b = vec![0u8; len];
    check(io(h, &mut b, off as i64, false) == Ok(len), "device read")?;
    Ok(b)
}

/// Cached write then cached read, across a view boundary (256 KiB).
fn t_write_read() -> TestResult {
    with_cached_file("\\cc1", 512 * 1024, |_, fo| {
        let data = pattern(1, 16 * 1024);
        let off = 256 * 1024 - 8 * 1024 + 5;
        cached_write(fo, off, &data)?;
        check(
            cached_read(fo, off, data.len())? == data,
            "cached read differs from the cached write",
        )?;
        // SAFETY: the handle keeps the file object.
        let dirty = unsafe { stream_dirty_pages(fo) }.unwrap_or(0);
        check(dirty == 5, "dirty pages of the stream")?;
        check(cached_read(fo, 0, 8)? == [0u8; 8], "untouched data")
    })
}

/// Cached write, CcFlushCache, then the device (non-cached) sees the data.
fn t_flush() -> TestResult {
    with_cached_file("\\cc2", 128 * 1024, |h, fo| {
        let data = pattern(2, 10_000);
        cached_write(fo, 4096 + 100, &data)?;
        check(
            device_read(h, 4096 + 100, data.len())? != data,
            "data on the device before the flush",
        )?;
        // SAFETY: the file's section object pointers.
        let n = unsafe { cc_flush_cache((*fo).SectionObjectPointer, None) }
            .map_err(|_| "CcFlushCache failed")?;
        check(n >= data.len() as u64, "CcFlushCache wrote too little")?;
        check(
            device_read(h, 4096 + 100, data.len())? == data,
            "device read after the flush differs",
        )?;
        // SAFETY: as above.
        check(
            unsafe { stream_dirty_pages(fo) } == Some(0),
            "pages still dirty after the flush",
        )
    })
}

/// The lazy writer writes dirty data within a few seconds, unasked.
fn t_lazy_writer() -> TestResult {
    with_cached_file("\\cc3", 64 * 1024, |h, fo| {
        let data = pattern(3, 20_000);
        let passes = LAZY_WRITES.load(Ordering::Relaxed);
        cached_write(fo, 0, &data)?;
        let written = wait_until(8_000, || {
            device_read(h, 0, data.len()).is_ok_and(|d| d == data)
        });
        check(
            written,
            "the lazy writer did not write the dirty data within 8 s",
        )?;
        check(
            LAZY_WRITES.load(Ordering::Relaxed) > passes,
            "no lazy writer pass wrote",
        )?;
        // SAFETY: the handle keeps the file object.
        check(
            unsafe { stream_dirty_pages(fo) } == Some(0),
            "pages still dirty",
        )
    })
}

/// Sequential cached reads schedule read-ahead, which makes the next pages
/// resident before they are asked for.
fn t_read_ahead() -> TestResult {
    with_cached_file("\\cc4", 512 * 1024, |_, fo| {
        let before = READ_AHEADS.load(Ordering::Relaxed);
        cached_read(fo, 0, 4096)?;
        cached_read(fo, 4096, 4096)?;
        check(
            wait_until(5_000, || READ_AHEADS.load(Ordering::Relaxed) > before),
            "no read-ahead after two sequential reads",
        )?;
        // The read-ahead made the following 64 KiB resident: reading them
        // now issues no paging read.
        let reads = mmf::PAGING_READS.load(Ordering::Relaxed);
        cached_read(fo, 8192, 32 * 1024)?;
        check(
            mmf::PAGING_READS.load(Ordering::Relaxed) == reads,
            "pages after the read-ahead were not resident",
        )?;
        // Random reads schedule nothing.
        let ra = READ_AHEADS.load(Ordering::Relaxed);
        for off in [400 * 1024u64, 200 * 1024, 300 * 1024] {
            cached_read(fo, off, 100)?;
        }
        crate::ktest::sleep_ms(50);
        check(
            READ_AHEADS.load(Ordering::Relaxed) == ra,
            "random reads were read ahead",
        )
    })
}

/// CcPurgeCacheSection drops the cached pages: data changed on the device
/// underneath is seen only after the purge.
fn t_purge() -> TestResult {
    with_cached_file("\\cc5", 64 * 1024, |h, fo| {
        let old = cached_read(fo, 0, 4096)?;
        let mut new = pattern(5, 4096);
        check(io(h, &mut new, 0, true) == Ok(4096), "device write")?;
        check(
            cached_read(fo, 0, 4096)? == old,
            "cache did not hold the old data",
        )?;
        // SAFETY: the file's section object pointers.
        let purged = unsafe { cc_purge_cache_section((*fo).SectionObjectPointer, None) };
        check(purged, "CcPurgeCacheSection failed")?;
        check(
            cached_read(fo, 0, 4096)? == new,
            "stale data after the purge",
        )
    })
}

static POSTED: AtomicU32 = AtomicU32::new(0);

unsafe extern "system" fn post(c1: *mut c_void, c2: *mut c_void) {
    POSTED.store((c1 as u32) + (c2 as u32), Ordering::SeqCst);
}

/// CcCanIWrite refuses writes past the stream's dirty page threshold and
/// past the global one; a deferred write is posted once the lazy writer has
/// written enough.
fn t_throttle() -> TestResult {
    with_cached_file("\\cc6", 256 * 1024, |_, fo| {
        // SAFETY: the handle keeps the file object.
        unsafe { cc_set_dirty_page_threshold(fo, 4) };
        cached_write(fo, 0, &pattern(6, 4 * 4096))?;
        // SAFETY: as above.
        unsafe {
            check(
                !cc_can_i_write(fo, 4096, false, false),
                "write past the stream threshold allowed",
            )?;
            check(
                cc_throttle(fo, 4096, false) == Some(Throttle::StreamThreshold),
                "throttle reason",
            )?;
            POSTED.store(0, Ordering::SeqCst);
            cc_defer_write(fo, post, 40 as *mut c_void as u64, 2, 4096, false);
        }
        check(
            POSTED.load(Ordering::SeqCst) == 0,
            "deferred write posted while over the threshold",
        )?;
        check(
            wait_until(8_000, || POSTED.load(Ordering::SeqCst) == 42),
            "the deferred write was not posted after the lazy writer ran",
        )?;
        // SAFETY: as above.
        unsafe { cc_set_dirty_page_threshold(fo, 0) };
        // The global threshold.
        let old = set_dirty_page_threshold(total_dirty_pages() + 2);
        // SAFETY: as above.
        let (small, big) = unsafe {
            (
                cc_can_i_write(fo, 4096, false, false),
                cc_can_i_write(fo, 6 * 4096, false, false),
            )
        };
        set_dirty_page_threshold(old);
        check(small, "a write under the global threshold was refused")?;
        check(!big, "a write past the global threshold was allowed")
    })
}

/// FsRtlCopyRead/FsRtlCopyWrite through the cache on an FCB that allows
/// fast I/O: clipped at end of file, file position moved.
fn t_fsrtl() -> TestResult {
    with_cached_file("\\cc7", 8192, |_, fo| {
        // SAFETY: the test is the file system: it owns the FCB header.
        let h = unsafe { (*fo).FsContext as *mut FSRTL_COMMON_FCB_HEADER };
        // SAFETY: as above.
        unsafe { (*h).IsFastIoPossible = FastIoIsPossible };
        let data = pattern(7, 1000);
        let mut iosb = IO_STATUS_BLOCK::zeroed();
        let off: i64 = 7500;
        // SAFETY: valid pointers for the call.
        let ok = unsafe {
            exports::FsRtlCopyWrite(
                fo,
                &off,
                1000,
                1,
                0,
                data.as_ptr() as *const c_void,
                &mut iosb,
                core::ptr::null_mut(),
            )
        };
        check(ok == 0, "FsRtlCopyWrite extended the file on the fast path")?;
        let off: i64 = 100;
        // SAFETY: as above.
        let ok = unsafe {
            exports::FsRtlCopyWrite(
                fo,
                &off,
                1000,
                1,
                0,
                data.as_ptr() as *const c_void,
                &mut iosb,
                core::ptr::null_mut(),
            )
        };
        check(ok == 1 && iosb.Information == 1000, "FsRtlCopyWrite")?;
        let mut buf = vec![0u8; 4096];
        let off: i64 = 8192 - 96;
        // SAFETY: as above.
        let ok = unsafe {
            exports::FsRtlCopyRead(
                fo,
                &off,
                4096,
                1,
                0,
                buf.as_mut_ptr() as *mut c_void,
                &mut iosb,
                core::ptr::null_mut(),
            )
        };
        check(
            ok == 1 && iosb.Information == 96,
            "FsRtlCopyRead not clipped at end of file",
        )?;
        // SAFETY: as above.
        check(unsafe { (*fo).CurrentByteOffset } == 8192, "file position")?;
        let off: i64 = 100;
        // SAFETY: as above.
        unsafe {
            exports::FsRtlCopyRead(
                fo,
                &off,
                1000,
                1,
                0,
                buf.as_mut_ptr() as *mut c_void,
                &mut iosb,
                core::ptr::null_mut(),
            )
        };
        check(buf[..1000] == data[..], "FsRtlCopyRead data")?;
        // SAFETY: as above.
        unsafe { (*h).IsFastIoPossible = FastIoIsNotPossible };
        Ok(())
    })
}

/// The mapping and pinning interface: `CcMapData` sees what was written,
/// its limits (one view, `MAP_WAIT`, `PIN_IF_BCB`), `CcPinMappedData` +
/// `CcSetDirtyPinnedData` and `CcPreparePinWrite(Zero)` reach the device
/// after a flush, and every BCB is gone after its `CcUnpinData`.
fn t_pin() -> TestResult {
    use super::pin::*;
    use ::cc::bcb::{MAP_WAIT, PIN_IF_BCB, PIN_WAIT};
    with_cached_file("\\cc9", 512 * 1024, |h, fo| {
        let data = pattern(9, 8192);
        cached_write(fo, 4096, &data)?;
        let mut bcb: *mut c_void = core::ptr::null_mut();
        let mut buf: *mut c_void = core::ptr::null_mut();
        let off: i64 = 4096;
        // SAFETY: a cached file object; the outputs are locals.
        let ok = unsafe { CcMapData(fo, &off, 8192, MAP_WAIT, &mut bcb, &mut buf) };
        check(
            ok == 1 && !bcb.is_null() && !buf.is_null(),
            "CcMapData failed",
        )?;
        // SAFETY: a mapped BCB keeps `[buf, buf + 8192)` mapped and resident.
        let seen = unsafe { core::slice::from_raw_parts(buf as *const u8, 8192) }.to_vec();
        check(
            seen == data,
            "CcMapData's buffer differs from what was written",
        )?;
        // SAFETY: the BCB pointer points at a PUBLIC_BCB.
        let public = unsafe { *(bcb as *const wdk::PUBLIC_BCB) };
        check(
            public.NodeTypeCode == wdk::CACHE_NTC_BCB
                && public.MappedLength == 8192
                && public.MappedFileOffset == 4096,
            "PUBLIC_BCB fields",
        )?;
        let (mut b2, mut p2) = (core::ptr::null_mut(), core::ptr::null_mut());
        let across: i64 = 256 * 1024 - 10;
        // SAFETY: as above.
        unsafe {
            check(
                CcMapData(fo, &across, 20, MAP_WAIT, &mut b2, &mut p2) == 0,
                "a range across a view boundary was mapped",
            )?;
            check(
                CcMapData(fo, &off, 16, 0, &mut b2, &mut p2) == 0,
                "a map without MAP_WAIT succeeded",
            )?;
            let inside: i64 = 5000;
            check(
                CcPinRead(fo, &inside, 100, PIN_WAIT | PIN_IF_BCB, &mut b2, &mut p2) == 1,
                "PIN_IF_BCB inside a live BCB failed",
            )?;
            check(
                p2 as u64 == buf as u64 + 904,
                "the pinned buffer is not in the same view",
            )?;
            CcUnpinData(b2);
            let outside: i64 = 128 * 1024;
            check(
                CcPinRead(fo, &outside, 100, PIN_WAIT | PIN_IF_BCB, &mut b2, &mut p2) == 0,
                "PIN_IF_BCB without a BCB succeeded",
            )?;
            // Pin the mapped range, modify it, mark it dirty.
            check(
                CcPinMappedData(fo, &off, 8192, PIN_WAIT, &mut bcb) == 1,
                "CcPinMappedData failed",
            )?;
            core::ptr::write_bytes(buf as *mut u8, 0xA5, 100);
            CcSetDirtyPinnedData(bcb, core::ptr::null());
            CcUnpinData(bcb);
            // CcPreparePinWrite with Zero: zeros, already dirty.
            let z: i64 = 64 * 1024;
            check(
                CcPreparePinWrite(fo, &z, 4096, 1, PIN_WAIT, &mut b2, &mut p2) == 1,
                "CcPreparePinWrite failed",
            )?;
            let zeroed = core::slice::from_raw_parts(p2 as *const u8, 4096)
                .iter()
                .all(|&b| b == 0);
            check(zeroed, "CcPreparePinWrite(Zero) did not zero")?;
            core::ptr::write_bytes(p2 as *mut u8, 0x5A, 10);
            CcUnpinData(b2);
            check(live_bcbs(fo) == 0, "a BCB outlived its CcUnpinData")?;
            cc_flush_cache((*fo).SectionObjectPointer, None).map_err(|_| "CcFlushCache failed")?;
        }
        let mut want = data.clone();
        want[..100].fill(0xA5);
        check(
            device_read(h, 4096, 8192)? == want,
            "the pinned, dirtied data did not reach the device",
        )?;
        let mut want = vec![0u8; 4096];
        want[..10].fill(0x5A);
        check(
            device_read(h, 64 * 1024, 4096)? == want,
            "CcPreparePinWrite's data did not reach the device",
        )
    })
}

/// The `cc.*` boot tests.
pub const TESTS: &[Test] = &[
    ("cc.copy.write_then_read", t_write_read),
    ("cc.flush.noncached_read_sees_data", t_flush),
    ("cc.lazy_writer.writes_unasked", t_lazy_writer),
    ("cc.read_ahead.sequential", t_read_ahead),
    ("cc.purge.drops_pages", t_purge),
    ("cc.throttle.can_i_write_and_defer", t_throttle),
    ("cc.fsrtl.copy_read_write", t_fsrtl),
    ("cc.pin.map_pin_dirty_unpin", t_pin),
];
