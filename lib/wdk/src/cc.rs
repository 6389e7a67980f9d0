//! The cache manager's and FsRtl's structures file systems see (ntifs.h):
//! `CC_FILE_SIZES`, `CACHE_MANAGER_CALLBACKS`, `CACHE_UNINITIALIZE_EVENT`,
//! the deferred-write post routine and the `FAST_IO_POSSIBLE` values, in
//! their Windows x64 layouts.

use crate::base::*;
use core::ffi::c_void;
use core::mem::{offset_of, size_of};

/// `CC_FILE_SIZES` (0x18 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CC_FILE_SIZES {
    pub AllocationSize: LARGE_INTEGER,
    pub FileSize: LARGE_INTEGER,
    pub ValidDataLength: LARGE_INTEGER,
}

/// `PUBLIC_BCB` (0x10 bytes): the part of a buffer control block that the
/// mapping and pinning routines' callers may read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PUBLIC_BCB {
    pub NodeTypeCode: i16,
    pub NodeByteSize: i16,
    pub MappedLength: u32,
    pub MappedFileOffset: LARGE_INTEGER,
}

/// `CACHE_NTC_BCB`: `PUBLIC_BCB.NodeTypeCode` of a BCB.
pub const CACHE_NTC_BCB: i16 = 0x2FD;

const _: () = assert!(size_of::<PUBLIC_BCB>() == 0x10);
const _: () = assert!(offset_of!(PUBLIC_BCB, MappedFileOffset) == 8);

/// `PACQUIRE_FOR_LAZY_WRITE`.
pub type PACQUIRE_FOR_LAZY_WRITE =
    unsafe extern "system" fn(Context: *mut c_void, Wait: BOOLEAN) -> BOOLEAN;
/// `PRELEASE_FROM_LAZY_WRITE`.
pub type PRELEASE_FROM_LAZY_WRITE = unsafe extern "system" fn(Context: *mut c_void);
/// `PACQUIRE_FOR_READ_AHEAD`.
pub type PACQUIRE_FOR_READ_AHEAD =
    unsafe extern "system" fn(Context: *mut c_void, Wait: BOOLEAN) -> BOOLEAN;
/// `PRELEASE_FROM_READ_AHEAD`.
pub type PRELEASE_FROM_READ_AHEAD = unsafe extern "system" fn(Context: *mut c_void);

/// `CACHE_MANAGER_CALLBACKS` (0x20 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CACHE_MANAGER_CALLBACKS {
    pub AcquireForLazyWrite: Option<PACQUIRE_FOR_LAZY_WRITE>,
    pub ReleaseFromLazyWrite: Option<PRELEASE_FROM_LAZY_WRITE>,
    pub AcquireForReadAhead: Option<PACQUIRE_FOR_READ_AHEAD>,
    pub ReleaseFromReadAhead: Option<PRELEASE_FROM_READ_AHEAD>,
}

/// `CACHE_UNINITIALIZE_EVENT` (0x20 bytes): `CcUninitializeCacheMap`
/// signals `Event` when the shared cache map is gone.
#[repr(C)]
pub struct CACHE_UNINITIALIZE_EVENT {
    pub Next: *mut CACHE_UNINITIALIZE_EVENT,
    pub Event: KEVENT,
}

/// `PCC_POST_DEFERRED_WRITE`: `CcDeferWrite`'s post routine.
pub type PCC_POST_DEFERRED_WRITE =
    unsafe extern "system" fn(Context1: *mut c_void, Context2: *mut c_void);

// `FAST_IO_POSSIBLE` values of `FSRTL_COMMON_FCB_HEADER.IsFastIoPossible`
// (the header itself is in `fsrtl`).
#[allow(non_upper_case_globals)]
/// `FastIoIsNotPossible`.
pub const FastIoIsNotPossible: u8 = 0;
#[allow(non_upper_case_globals)]
/// `FastIoIsPossible`.
pub const FastIoIsPossible: u8 = 1;
#[allow(non_upper_case_globals)]
/// `FastIoIsQuestionable`.
pub const FastIoIsQuestionable: u8 = 2;

const _: () = {
    assert!(size_of::<CC_FILE_SIZES>() == 0x18);
    assert!(size_of::<CACHE_MANAGER_CALLBACKS>() == 0x20);
    assert!(size_of::<CACHE_UNINITIALIZE_EVENT>() == 0x20);
    assert!(offset_of!(CACHE_UNINITIALIZE_EVENT, Event) == 0x8);
};
