//! The cache manager's and FsRtl's fast I/O ntoskrnl exports: thin
//! `extern "system"` shims with Windows' names (`ntos/exports/cc.txt`).
//!
//! Where NT raises an exception (`ExRaiseStatus`) from a `Cc*` routine,
//! ntrs, which has no structured exception handling for drivers, reports the
//! status instead: `CcCopyRead` returns TRUE with the error in `IoStatus`,
//! `CcCopyWrite` returns FALSE. `Wait = FALSE` callers of `CcCopyRead` /
//! `CcCopyWrite` get FALSE (ntrs cannot yet tell whether the pages are
//! resident without touching them), so they take the IRP path.
#![allow(non_snake_case)]

use super::*;
use nt::status::{STATUS_END_OF_FILE, STATUS_SUCCESS};
use wdk::{
    FastIoIsPossible, DEVICE_OBJECT, FO_FILE_FAST_IO_READ, FO_FILE_MODIFIED,
    FSRTL_COMMON_FCB_HEADER, IO_STATUS_BLOCK,
};

/// # Safety
/// `p` null or a readable `LARGE_INTEGER`.
unsafe fn offset_of(p: *const i64) -> Option<u64> {
    // SAFETY: the caller guarantees `p`.
    unsafe { p.as_ref() }.map(|&o| o.max(0) as u64)
}

/// # Safety
/// `io` null or writable.
unsafe fn set_status(io: *mut IO_STATUS_BLOCK, status: NtStatus, info: u64) {
    // SAFETY: the caller guarantees `io`.
    if let Some(io) = unsafe { io.as_mut() } {
        io.Status = status;
        io.Information = info as usize;
    }
}

/// `CcInitializeCacheMap`. NT raises on failure; ntrs leaves
/// `PrivateCacheMap` null, which the file system sees.
///
/// # Safety
/// Driver-supplied pointers must be valid.
#[no_mangle]
pub unsafe extern "system" fn CcInitializeCacheMap(
    FileObject: *mut FILE_OBJECT,
    FileSizes: *const CC_FILE_SIZES,
    _PinAccess: u8,
    Callbacks: *const CACHE_MANAGER_CALLBACKS,
    LazyWriteContext: *mut c_void,
) {
    if FileObject.is_null() || FileSizes.is_null() {
        return;
    }
    // SAFETY: forwarded caller guarantees.
    let _ = unsafe {
        cc_initialize_cache_map(FileObject, &*FileSizes, Callbacks, LazyWriteContext as u64)
    };
}

/// `CcUninitializeCacheMap`.
///
/// # Safety
/// Driver-supplied pointers must be valid.
#[no_mangle]
pub unsafe extern "system" fn CcUninitializeCacheMap(
    FileObject: *mut FILE_OBJECT,
    TruncateSize: *const i64,
    UninitializeEvent: *mut CACHE_UNINITIALIZE_EVENT,
) -> u8 {
    if FileObject.is_null() {
        return 0;
    }
    // SAFETY: forwarded caller guarantees.
    unsafe {
        cc_uninitialize_cache_map(FileObject, offset_of(TruncateSize), UninitializeEvent) as u8
    }
}

/// `CcCopyRead`.
///
/// # Safety
/// Driver-supplied pointers must be valid; `Buffer` has `Length` bytes.
#[no_mangle]
pub unsafe extern "system" fn CcCopyRead(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *const i64,
    Length: u32,
    Wait: u8,
    Buffer: *mut c_void,
    IoStatus: *mut IO_STATUS_BLOCK,
) -> u8 {
    if Wait == 0 {
        return 0;
    }
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let (Some(off), false) = (offset_of(FileOffset), FileObject.is_null()) else {
            set_status(IoStatus, STATUS_INVALID_PARAMETER, 0);
            return 1;
        };
        match cc_copy_read(FileObject, off, Length as u64, Buffer as *mut u8) {
            Ok(n) => set_status(IoStatus, STATUS_SUCCESS, n),
            Err(s) => set_status(IoStatus, s, 0),
        }
    }
    1
}

/// `CcCopyWrite`.
///
/// # Safety
/// Driver-supplied pointers must be valid; `Buffer` has `Length` bytes.
#[no_mangle]
pub unsafe extern "system" fn CcCopyWrite(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *const i64,
    Length: u32,
    Wait: u8,
    Buffer: *const c_void,
) -> u8 {
    if Wait == 0 || FileObject.is_null() {
        return 0;
    }
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let Some(off) = offset_of(FileOffset) else {
            return 0;
        };
        cc_copy_write(FileObject, off, Length as u64, Buffer as *const u8).is_ok() as u8
    }
}

/// `CcFastCopyRead`: `CcCopyRead` for offsets below 4 GiB that always waits.
///
/// # Safety
/// As [`CcCopyRead`].
#[no_mangle]
pub unsafe extern "system" fn CcFastCopyRead(
    FileObject: *mut FILE_OBJECT,
    FileOffset: u32,
    Length: u32,
    _PageCount: u32,
    Buffer: *mut c_void,
    IoStatus: *mut IO_STATUS_BLOCK,
) {
    let off = FileOffset as i64;
    // SAFETY: forwarded caller guarantees.
    unsafe { CcCopyRead(FileObject, &off, Length, 1, Buffer, IoStatus) };
}

/// `CcFastCopyWrite`.
///
/// # Safety
/// As [`CcCopyWrite`].
#[no_mangle]
pub unsafe extern "system" fn CcFastCopyWrite(
    FileObject: *mut FILE_OBJECT,
    FileOffset: u32,
    Length: u32,
    Buffer: *const c_void,
) {
    let off = FileOffset as i64;
    // SAFETY: forwarded caller guarantees.
    unsafe { CcCopyWrite(FileObject, &off, Length, 1, Buffer) };
}

/// `CcFlushCache`.
///
/// # Safety
/// Driver-supplied pointers must be valid.
#[no_mangle]
pub unsafe extern "system" fn CcFlushCache(
    SectionObjectPointer: *mut SECTION_OBJECT_POINTERS,
    FileOffset: *const i64,
    Length: u32,
    IoStatus: *mut IO_STATUS_BLOCK,
) {
    if SectionObjectPointer.is_null() {
        // SAFETY: forwarded caller guarantee.
        unsafe { set_status(IoStatus, STATUS_INVALID_PARAMETER, 0) };
        return;
    }
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let range = offset_of(FileOffset).map(|o| (o, Length as u64));
        match cc_flush_cache(SectionObjectPointer, range) {
            Ok(n) => set_status(IoStatus, STATUS_SUCCESS, n),
            Err(s) => set_status(IoStatus, s, 0),
        }
    }
}

/// `CcPurgeCacheSection`.
///
/// # Safety
/// Driver-supplied pointers must be valid.
#[no_mangle]
pub unsafe extern "system" fn CcPurgeCacheSection(
    SectionObjectPointer: *mut SECTION_OBJECT_POINTERS,
    FileOffset: *const i64,
    Length: u32,
    _UninitializeCacheMaps: u8,
) -> u8 {
    if SectionObjectPointer.is_null() {
        return 0;
    }
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let range = offset_of(FileOffset).map(|o| (o, Length as u64));
        cc_purge_cache_section(SectionObjectPointer, range) as u8
    }
}

/// `CcSetFileSizes`.
///
/// # Safety
/// Driver-supplied pointers must be valid.
#[no_mangle]
pub unsafe extern "system" fn CcSetFileSizes(
    FileObject: *mut FILE_OBJECT,
    FileSizes: *const CC_FILE_SIZES,
) {
    if FileObject.is_null() || FileSizes.is_null() {
        return;
    }
    // SAFETY: forwarded caller guarantees.
    let _ = unsafe { cc_set_file_sizes(FileObject, &*FileSizes) };
}

/// `CcCanIWrite`.
///
/// # Safety
/// `FileObject` must be a live file object.
#[no_mangle]
pub unsafe extern "system" fn CcCanIWrite(
    FileObject: *mut FILE_OBJECT,
    BytesToWrite: u32,
    Wait: u8,
    Retrying: u8,
) -> u8 {
    if FileObject.is_null() {
        return 1;
    }
    // SAFETY: forwarded caller guarantee.
    unsafe { cc_can_i_write(FileObject, BytesToWrite as u64, Wait != 0, Retrying != 0) as u8 }
}

/// `CcDeferWrite`.
///
/// # Safety
/// `FileObject` live; `PostRoutine` callable with the contexts.
#[no_mangle]
pub unsafe extern "system" fn CcDeferWrite(
    FileObject: *mut FILE_OBJECT,
    PostRoutine: PCC_POST_DEFERRED_WRITE,
    Context1: *mut c_void,
    Context2: *mut c_void,
    BytesToWrite: u32,
    Retrying: u8,
) {
    if FileObject.is_null() {
        return;
    }
    // SAFETY: forwarded caller guarantees.
    unsafe {
        cc_defer_write(
            FileObject,
            PostRoutine,
            Context1 as u64,
            Context2 as u64,
            BytesToWrite as u64,
            Retrying != 0,
        )
    }
}

/// `CcSetDirtyPageThreshold`.
///
/// # Safety
/// `FileObject` must be a live file object.
#[no_mangle]
pub unsafe extern "system" fn CcSetDirtyPageThreshold(
    FileObject: *mut FILE_OBJECT,
    DirtyPageThreshold: u32,
) {
    if !FileObject.is_null() {
        // SAFETY: forwarded caller guarantee.
        unsafe { cc_set_dirty_page_threshold(FileObject, DirtyPageThreshold as u64) };
    }
}

/// `CcSetReadAheadGranularity`.
///
/// # Safety
/// `FileObject` must be a live file object.
#[no_mangle]
pub unsafe extern "system" fn CcSetReadAheadGranularity(
    FileObject: *mut FILE_OBJECT,
    Granularity: u32,
) {
    if !FileObject.is_null() {
        // SAFETY: forwarded caller guarantee.
        unsafe { cc_set_read_ahead_granularity(FileObject, Granularity as u64) };
    }
}

/// `CcGetFileObjectFromSectionPtrs`.
///
/// # Safety
/// `SectionObjectPointer` null or live.
#[no_mangle]
pub unsafe extern "system" fn CcGetFileObjectFromSectionPtrs(
    SectionObjectPointer: *mut SECTION_OBJECT_POINTERS,
) -> *mut FILE_OBJECT {
    if SectionObjectPointer.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: forwarded caller guarantee.
    unsafe { cc_get_file_object_from_section_ptrs(SectionObjectPointer) }
}

/// The FCB header fast I/O needs, if fast I/O is plainly possible.
/// `FastIoIsQuestionable` takes the IRP path (ntrs does not call the file
/// system's `FastIoCheckIfPossible` from here), and so does an FCB with a
/// `Resource`: ntrs exports no `ERESOURCE` routines to drivers yet, so a
/// file system that has one synchronises on the IRP path.
///
/// # Safety
/// `file` a live, cached file object whose `FsContext` is an FCB starting
/// with `FSRTL_COMMON_FCB_HEADER`.
unsafe fn fast_header(file: *mut FILE_OBJECT) -> Option<*mut FSRTL_COMMON_FCB_HEADER> {
    // SAFETY: the caller guarantees `file` and its FCB.
    unsafe {
        if (*file).PrivateCacheMap.is_null() {
            return None;
        }
        let h = (*file).FsContext as *mut FSRTL_COMMON_FCB_HEADER;
        if h.is_null() {
            return None;
        }
        ((*h).IsFastIoPossible == FastIoIsPossible && (*h).Resource.is_null()).then_some(h)
    }
}

/// `FsRtlCopyRead`: the fast I/O read a file system puts in its
/// `FAST_IO_DISPATCH`: clips the read at `FileSize`, copies through the
/// cache and moves the file position. FALSE sends the caller to the IRP
/// path.
///
/// # Safety
/// Driver-supplied pointers must be valid (`Buffer` may be a user buffer
/// of `Length` bytes, probed by the I/O manager).
#[no_mangle]
pub unsafe extern "system" fn FsRtlCopyRead(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *const i64,
    Length: u32,
    Wait: u8,
    _LockKey: u32,
    Buffer: *mut c_void,
    IoStatus: *mut IO_STATUS_BLOCK,
    _DeviceObject: *mut DEVICE_OBJECT,
) -> u8 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        if Length == 0 {
            set_status(IoStatus, STATUS_SUCCESS, 0);
            return 1;
        }
        if FileObject.is_null() || Wait == 0 {
            return 0;
        }
        let Some(off) = offset_of(FileOffset) else {
            return 0;
        };
        let Some(h) = fast_header(FileObject) else {
            return 0;
        };
        let size = (*h).FileSize.max(0) as u64;
        if off >= size {
            set_status(IoStatus, STATUS_END_OF_FILE, 0);
            return 1;
        }
        let len = (Length as u64).min(size - off);
        match cc_copy_read(FileObject, off, len, Buffer as *mut u8) {
            Ok(n) => {
                set_status(IoStatus, STATUS_SUCCESS, n);
                (*FileObject).CurrentByteOffset = (off + n) as i64;
                (*FileObject).Flags |= FO_FILE_FAST_IO_READ;
                1
            }
            Err(_) => 0,
        }
    }
}

/// `FsRtlCopyWrite`: the fast I/O write. Only writes inside the file's
/// size and valid data that `CcCanIWrite` lets through now go this way;
/// anything that would extend the file or wait takes the IRP path (FALSE).
///
/// # Safety
/// As [`FsRtlCopyRead`].
#[no_mangle]
pub unsafe extern "system" fn FsRtlCopyWrite(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *const i64,
    Length: u32,
    Wait: u8,
    _LockKey: u32,
    Buffer: *const c_void,
    IoStatus: *mut IO_STATUS_BLOCK,
    _DeviceObject: *mut DEVICE_OBJECT,
) -> u8 {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        if FileObject.is_null() || Wait == 0 {
            return 0;
        }
        let Some(&raw) = FileOffset.as_ref() else {
            return 0;
        };
        if raw < 0 {
            // FILE_WRITE_TO_END_OF_FILE / FILE_USE_FILE_POINTER_POSITION.
            return 0;
        }
        let off = raw as u64;
        let Some(h) = fast_header(FileObject) else {
            return 0;
        };
        let end = off + Length as u64;
        if end > (*h).FileSize.max(0) as u64 || off > (*h).ValidDataLength.max(0) as u64 {
            return 0;
        }
        if cc_throttle(FileObject, Length as u64, false).is_some() {
            return 0;
        }
        match cc_copy_write(FileObject, off, Length as u64, Buffer as *const u8) {
            Ok(()) => {
                if end > (*h).ValidDataLength as u64 {
                    (*h).ValidDataLength = end as i64;
                }
                set_status(IoStatus, STATUS_SUCCESS, Length as u64);
                (*FileObject).CurrentByteOffset = end as i64;
                (*FileObject).Flags |= FO_FILE_MODIFIED;
                1
            }
            Err(_) => 0,
        }
    }
}
