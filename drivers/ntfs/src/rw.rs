//! `IRP_MJ_READ`, `IRP_MJ_WRITE` and `IRP_MJ_FLUSH_BUFFERS`: cached I/O
//! through the cache manager, non-cached I/O, and the cache manager's and
//! memory manager's paging I/O (*Windows Internals* 7th ed., Part 2 ch. 11,
//! "Cache manager", "File system drivers": the three kinds of read and
//! write a file system sees).
//!
//! - Cached (neither `IRP_NOCACHE` nor `IRP_PAGING_IO`, and the file object
//!   not opened `FILE_NO_INTERMEDIATE_BUFFERING`): the first one on a file
//!   object calls `CcInitializeCacheMap` with the SCB's sizes; the data
//!   then moves with `CcCopyRead`/`CcCopyWrite` (after `CcCanIWrite`, which
//!   may wait for the lazy writer). A write past the end of file extends
//!   the stream on disk first (lib/ntfs allocates and zeroes the clusters),
//!   then tells the cache manager (`CcSetFileSizes`). Once a file object is
//!   cached, `NtReadFile`/`NtWriteFile` reach `FsRtlCopyRead`/
//!   `FsRtlCopyWrite` through the driver's `FAST_IO_DISPATCH` without an
//!   IRP (writes inside the file size only).
//! - Non-cached: the cached pages of the range are flushed first
//!   (`CcFlushCache`), the transfer goes to lib/ntfs, and after a write the
//!   range is purged from the cache (`CcPurgeCacheSection`) so the next
//!   cached read sees the disk.
//! - Paging I/O (`IRP_PAGING_IO`, from the cache manager's lazy writer and
//!   flushes and from the memory manager's page faults): reads go to
//!   lib/ntfs; writes are clipped at the end of file (paging I/O never
//!   extends a file) and written in place (`Volume::write_in_place`: data
//!   clusters only, the record untouched). Paging I/O for a deleted file is
//!   dropped (reads return zeros).
//!
//! The volume lock is held only around lib/ntfs calls: the cache manager's
//! copies fault pages in with paging reads that come back to this driver
//! on the same thread.

use crate::vcb::*;
use core::ffi::c_void;
use nt::status::*;
use nt::NtStatus;
use ntfs::device::BlockDevice;
use rt::wdk::*;

/// The lazy writer's and read-ahead's acquire callbacks: the volume lock
/// is taken per paging request, so there is nothing to acquire here.
unsafe extern "system" fn acquire(_context: *mut c_void, _wait: u8) -> u8 {
    1
}
unsafe extern "system" fn release(_context: *mut c_void) {}

static CALLBACKS: CACHE_MANAGER_CALLBACKS = CACHE_MANAGER_CALLBACKS {
    AcquireForLazyWrite: Some(acquire),
    ReleaseFromLazyWrite: Some(release),
    AcquireForReadAhead: Some(acquire),
    ReleaseFromReadAhead: Some(release),
};

/// Fast I/O read: `FsRtlCopyRead` (the cache manager's copy, clipped at
/// the file size).
unsafe extern "system" fn fast_read(
    fo: *mut FILE_OBJECT,
    offset: *mut LARGE_INTEGER,
    length: u32,
    wait: u8,
    key: u32,
    buffer: *mut c_void,
    iosb: *mut IO_STATUS_BLOCK,
    dev: *mut DEVICE_OBJECT,
) -> u8 {
    // SAFETY: the I/O manager's arguments, passed on.
    unsafe { FsRtlCopyRead(fo, offset, length, wait, key, buffer, iosb, dev) }
}

/// Fast I/O write: `FsRtlCopyWrite` (inside the file size only; an
/// extending write takes the IRP path).
unsafe extern "system" fn fast_write(
    fo: *mut FILE_OBJECT,
    offset: *mut LARGE_INTEGER,
    length: u32,
    wait: u8,
    key: u32,
    buffer: *mut c_void,
    iosb: *mut IO_STATUS_BLOCK,
    dev: *mut DEVICE_OBJECT,
) -> u8 {
    // SAFETY: as above.
    unsafe { FsRtlCopyWrite(fo, offset, length, wait, key, buffer, iosb, dev) }
}

/// The driver's `FAST_IO_DISPATCH` (`DRIVER_OBJECT.FastIoDispatch`).
pub static FAST_IO: FAST_IO_DISPATCH = {
    let mut t = FAST_IO_DISPATCH::empty();
    t.FastIoRead = Some(fast_read);
    t.FastIoWrite = Some(fast_write);
    t
};

/// Sets up caching on `fo` (`CcInitializeCacheMap`) if it is not yet;
/// false when the cache manager refused (the caller goes non-cached).
///
/// # Safety
/// `fo` a file object of ours whose SCB is `scb`; no volume lock held.
unsafe fn ensure_cached(fo: *mut FILE_OBJECT, scb: *mut Scb) -> bool {
    // SAFETY: per the contract.
    unsafe {
        if (*fo).PrivateCacheMap.is_null() {
            let sizes = (*scb).cc_sizes();
            CcInitializeCacheMap(fo, &sizes, 0, &CALLBACKS, scb.cast());
        }
        !(*fo).PrivateCacheMap.is_null()
    }
}

/// Writes the cached pages of a range back (before a non-cached
/// transfer); no-op for a stream with no cache map or section.
///
/// # Safety
/// `scb` a live SCB; no volume lock held.
unsafe fn flush_range(scb: *mut Scb, off: i64, len: u32) -> NtStatus {
    // SAFETY: per the contract.
    unsafe {
        let sop = &mut (*scb).section;
        if sop.SharedCacheMap.is_null() && sop.DataSectionObject.is_null() {
            return STATUS_SUCCESS;
        }
        let mut iosb = IO_STATUS_BLOCK::zeroed();
        CcFlushCache(sop, &off, len, &mut iosb);
        iosb.Status
    }
}

/// The request's offset: `FILE_USE_FILE_POINTER_POSITION` is the file
/// object's position.
///
/// # Safety
/// `fo` live.
unsafe fn offset(fo: *mut FILE_OBJECT, given: i64) -> i64 {
    if given == wdk::fs::FILE_USE_FILE_POINTER_POSITION {
        // SAFETY: per the contract.
        unsafe { (*fo).CurrentByteOffset }
    } else {
        given
    }
}

/// Whether the request bypasses the cache (`IRP_NOCACHE`, or a file
/// object opened with `FILE_NO_INTERMEDIATE_BUFFERING`).
///
/// # Safety
/// `irp`, `fo` live.
unsafe fn non_cached(irp: *mut IRP, fo: *mut FILE_OBJECT) -> bool {
    // SAFETY: per the contract.
    unsafe {
        (*irp).Flags & (IRP_NOCACHE | IRP_PAGING_IO) != 0
            || (*fo).Flags & FO_NO_INTERMEDIATE_BUFFERING != 0
    }
}

/// `IRP_MJ_READ`. At or past the end of file: STATUS_END_OF_FILE; a
/// directory: STATUS_INVALID_DEVICE_REQUEST; bytes past the initialized
/// size and in sparse ranges read as zero; compressed streams are
/// decompressed (lib/ntfs).
///
/// # Safety
/// A read request we own on one of our file objects.
pub unsafe fn read(vcb: &Vcb, irp: *mut IRP, sl: *mut IO_STACK_LOCATION) -> (NtStatus, usize) {
    // SAFETY: per the contract.
    unsafe {
        let fo = (*sl).FileObject;
        let Some((scb, ccb)) = contexts(fo) else {
            return (STATUS_INVALID_DEVICE_REQUEST, 0);
        };
        let n = (*ccb).fcb;
        let p = (*sl).Parameters.Read;
        let paging = (*irp).Flags & IRP_PAGING_IO != 0;
        let off = offset(fo, p.ByteOffset);
        if off < 0 {
            return (STATUS_INVALID_PARAMETER, 0);
        }
        if p.Length == 0 {
            return (STATUS_SUCCESS, 0);
        }
        let buf = request_buffer(irp);
        if buf.is_null() {
            return (STATUS_INSUFFICIENT_RESOURCES, 0);
        }
        if paging {
            let out = core::slice::from_raw_parts_mut(buf, p.Length as usize);
            let mut st = vcb.state.lock();
            if fcb_of_scb(&mut st, n, scb).is_none() {
                // A deleted file: its pages read as zeros.
                out.fill(0);
                return (STATUS_SUCCESS, out.len());
            }
            let r = read_disk(&mut st, n, scb, off, out);
            if !r.0.is_success() && r.0 != STATUS_END_OF_FILE {
                rt::kprintln!("ntfs: paging read at {off} of record {n} failed: {:?}", r.0);
            }
            return r;
        }
        let size = {
            let mut st = vcb.state.lock();
            match fcb_of_scb(&mut st, n, scb) {
                Some(f) if f.is_dir && (*scb).stream.is_empty() => {
                    return (STATUS_INVALID_DEVICE_REQUEST, 0)
                }
                Some(_) => (*scb).header.Common.FileSize,
                None => return (STATUS_FILE_DELETED, 0),
            }
        };
        if off >= size {
            return (STATUS_END_OF_FILE, 0);
        }
        let len = (p.Length as i64).min(size - off) as u32;
        let r = if !non_cached(irp, fo) && ensure_cached(fo, scb) {
            let mut iosb = IO_STATUS_BLOCK::zeroed();
            if CcCopyRead(fo, &off, len, 1, buf.cast(), &mut iosb) == 0 {
                (STATUS_INSUFFICIENT_RESOURCES, 0)
            } else {
                (iosb.Status, iosb.Information)
            }
        } else {
            let s = flush_range(scb, off, len);
            if !s.is_success() {
                return (s, 0);
            }
            let out = core::slice::from_raw_parts_mut(buf, len as usize);
            let mut st = vcb.state.lock();
            read_disk(&mut st, n, scb, off, out)
        };
        if r.0.is_success() && (*fo).Flags & FO_SYNCHRONOUS_IO != 0 {
            (*fo).CurrentByteOffset = off + r.1 as i64;
        }
        r
    }
}

/// Reads the stream's bytes at `off` from the disk (lib/ntfs); a short
/// read leaves the rest of `out` zero.
///
/// # Safety
/// `scb` a live SCB of record `n`.
unsafe fn read_disk(
    st: &mut VcbState,
    n: u64,
    scb: *mut Scb,
    off: i64,
    out: &mut [u8],
) -> (NtStatus, usize) {
    // SAFETY: per the contract.
    let name = unsafe { &(*scb).stream };
    let stream = match st.vol.open_stream(n, ntfs::attr::AT_DATA, name) {
        Ok(s) => s,
        Err(e) => return (e.status(), 0),
    };
    if off as u64 >= stream.data_size {
        out.fill(0);
        return (STATUS_END_OF_FILE, 0);
    }
    match st.vol.read_stream_at(&stream, off as u64, out) {
        Ok(got) => {
            out[got..].fill(0);
            (STATUS_SUCCESS, got)
        }
        Err(e) => (e.status(), 0),
    }
}

/// `IRP_MJ_WRITE`: cached, non-cached or paging (see the module note).
/// `ByteOffset` = `FILE_WRITE_TO_END_OF_FILE` (-1) appends. A directory:
/// STATUS_INVALID_DEVICE_REQUEST.
///
/// # Safety
/// A write request we own on one of our file objects.
pub unsafe fn write(vcb: &Vcb, irp: *mut IRP, sl: *mut IO_STACK_LOCATION) -> (NtStatus, usize) {
    // SAFETY: per the contract.
    unsafe {
        let fo = (*sl).FileObject;
        let Some((scb, ccb)) = contexts(fo) else {
            return (STATUS_INVALID_DEVICE_REQUEST, 0);
        };
        let n = (*ccb).fcb;
        let p = (*sl).Parameters.Write;
        let paging = (*irp).Flags & IRP_PAGING_IO != 0;
        if p.Length == 0 {
            return (STATUS_SUCCESS, 0);
        }
        let buf = request_buffer(irp);
        if buf.is_null() {
            return (STATUS_INSUFFICIENT_RESOURCES, 0);
        }
        let mut off = offset(fo, p.ByteOffset);
        if paging {
            if off < 0 {
                return (STATUS_INVALID_PARAMETER, 0);
            }
            let mut st = vcb.state.lock();
            if fcb_of_scb(&mut st, n, scb).is_none() {
                // A deleted file: nothing to write back.
                return (STATUS_SUCCESS, p.Length as usize);
            }
            // Paging I/O never extends the file.
            let size = (*scb).header.Common.FileSize;
            if off >= size {
                return (STATUS_SUCCESS, 0);
            }
            let len = (p.Length as i64).min(size - off) as usize;
            let data = core::slice::from_raw_parts(buf, len);
            return match st.vol.write_in_place(n, &(*scb).stream, off as u64, data) {
                Ok(()) => (STATUS_SUCCESS, len),
                Err(e) => {
                    rt::kprintln!("ntfs: paging write at {off} of record {n} failed: {e}");
                    (e.status(), 0)
                }
            };
        }
        let cached = !non_cached(irp, fo);
        let len = p.Length;
        let data = core::slice::from_raw_parts(buf, len as usize);
        // Resolve the offset, extend the stream for a cached write past
        // the end, or do the whole non-cached write, under the lock.
        let extended = {
            let mut guard = vcb.state.lock();
            let st = &mut *guard;
            match fcb_of_scb(st, n, scb) {
                Some(f) if f.is_dir && (*scb).stream.is_empty() => {
                    return (STATUS_INVALID_DEVICE_REQUEST, 0)
                }
                Some(_) => {}
                None => return (STATUS_FILE_DELETED, 0),
            }
            let size = (*scb).header.Common.FileSize;
            if off == -1 {
                off = size;
            }
            if off < 0 {
                return (STATUS_INVALID_PARAMETER, 0);
            }
            let end = off + len as i64;
            // The write's USN reason: extend past the end, else overwrite.
            crate::fsctl::usn_post(
                st,
                n,
                crate::fsctl::data_reason(&(*scb).stream, end > size, false),
            );
            if cached {
                if end > size {
                    if let Err(e) = st.vol.set_len(n, &(*scb).stream, end as u64) {
                        return (e.status(), 0);
                    }
                }
            } else {
                drop(guard);
                let s = flush_range(scb, off, len);
                if !s.is_success() {
                    rt::kprintln!("ntfs: flush before a non-cached write failed: {s:?}");
                    return (s, 0);
                }
                let mut st = vcb.state.lock();
                if let Err(e) = st.vol.write_at(n, &(*scb).stream, off as u64, data) {
                    rt::kprintln!("ntfs: non-cached write at {off} failed: {e}");
                    return (e.status(), 0);
                }
                refresh_sizes(&mut st, n, scb);
                drop(st);
                // The disk is newer than what the cache holds of the range.
                if !(*scb).section.SharedCacheMap.is_null()
                    || !(*scb).section.DataSectionObject.is_null()
                {
                    CcPurgeCacheSection(&mut (*scb).section, &off, len, 0);
                }
                if end > size {
                    set_cache_sizes(scb);
                }
                if (*fo).Flags & FO_SYNCHRONOUS_IO != 0 {
                    (*fo).CurrentByteOffset = end;
                }
                return (STATUS_SUCCESS, len as usize);
            }
            if end > size {
                refresh_sizes(st, n, scb);
                true
            } else {
                false
            }
        };
        if !ensure_cached(fo, scb) {
            // The cache manager refused: write through lib/ntfs.
            let mut st = vcb.state.lock();
            if let Err(e) = st.vol.write_at(n, &(*scb).stream, off as u64, data) {
                return (e.status(), 0);
            }
        } else {
            if extended {
                set_cache_sizes(scb);
            }
            CcCanIWrite(fo, len, 1, 0);
            if CcCopyWrite(fo, &off, len, 1, buf.cast()) == 0 {
                rt::kprintln!(
                    "ntfs: CcCopyWrite of {len} bytes at {off} failed (file size {})",
                    (*scb).header.Common.FileSize
                );
                return (STATUS_INSUFFICIENT_RESOURCES, 0);
            }
            (*fo).Flags |= FO_FILE_MODIFIED;
        }
        if (*fo).Flags & FO_SYNCHRONOUS_IO != 0 {
            (*fo).CurrentByteOffset = off + len as i64;
        }
        (STATUS_SUCCESS, len as usize)
    }
}

/// Reads the stream's sizes back from lib/ntfs into the SCB header.
///
/// # Safety
/// `scb` a live SCB of record `n`.
pub unsafe fn refresh_sizes(st: &mut VcbState, n: u64, scb: *mut Scb) {
    // SAFETY: per the contract.
    unsafe {
        if let Ok(s) = st.vol.open_stream(n, ntfs::attr::AT_DATA, &(*scb).stream) {
            (*scb).set_sizes(s.allocated_size, s.data_size);
        }
    }
}

/// Tells the cache manager the SCB's sizes (`CcSetFileSizes`), if the
/// stream is cached.
///
/// # Safety
/// `scb` a live SCB; no volume lock held.
pub unsafe fn set_cache_sizes(scb: *mut Scb) {
    // SAFETY: per the contract.
    unsafe {
        if (*scb).section.SharedCacheMap.is_null() {
            return;
        }
        if let Some(cfo) = crate::create::cache_file_object(scb) {
            let sizes = (*scb).cc_sizes();
            CcSetFileSizes(cfo, &sizes);
        }
    }
}

/// `IRP_MJ_FLUSH_BUFFERS`: the file's cached pages are written
/// (`CcFlushCache`), then the volume's device is flushed.
///
/// # Safety
/// A file object of this volume.
pub unsafe fn flush(vcb: &Vcb, fo: *mut FILE_OBJECT) -> (NtStatus, usize) {
    // SAFETY: per the contract.
    unsafe {
        if let Some((scb, _)) = contexts(fo) {
            let sop = &mut (*scb).section;
            if !sop.SharedCacheMap.is_null() || !sop.DataSectionObject.is_null() {
                let mut iosb = IO_STATUS_BLOCK::zeroed();
                CcFlushCache(sop, core::ptr::null(), 0, &mut iosb);
                if !iosb.Status.is_success() {
                    return (iosb.Status, 0);
                }
            }
        }
        let mut st = vcb.state.lock();
        match st.vol.device().flush() {
            Ok(()) => (STATUS_SUCCESS, 0),
            Err(e) => (e.status(), 0),
        }
    }
}
