//! File-system-visible structures shared by file systems, the cache
//! manager and the memory manager: `FSRTL_COMMON_FCB_HEADER` (what a file
//! object's `FsContext` starts with) and the file information classes'
//! buffers (position, end-of-file, allocation; basic and standard are in
//! `fastio`),
//! in the Windows x64 layouts.

use crate::base::*;
use core::ffi::c_void;

/// `FSRTL_COMMON_FCB_HEADER` (0x30 bytes on x64): the start of every
/// `FsContext` the cache manager and the memory manager read sizes from.
#[repr(C)]
#[derive(Debug)]
pub struct FSRTL_COMMON_FCB_HEADER {
    pub NodeTypeCode: i16,
    pub NodeByteSize: i16,
    /// `FSRTL_FLAG_*`.
    pub Flags: u8,
    /// `FAST_IO_POSSIBLE` values.
    pub IsFastIoPossible: u8,
    /// `FSRTL_FLAG2_*`.
    pub Flags2: u8,
    /// `Reserved : 4`, `Version : 4`.
    pub Reserved: u8,
    /// `PERESOURCE`.
    pub Resource: *mut c_void,
    /// `PERESOURCE`.
    pub PagingIoResource: *mut c_void,
    pub AllocationSize: LARGE_INTEGER,
    pub FileSize: LARGE_INTEGER,
    pub ValidDataLength: LARGE_INTEGER,
}

/// `FSRTL_FLAG2_ADVANCED_FCB`: the header is an [`FSRTL_ADVANCED_FCB_HEADER`].
pub const FSRTL_FLAG2_ADVANCED_FCB: u8 = 0x02;
/// `FSRTL_FCB_HEADER_V2` (Windows 8: the advanced header has `Oplock`).
pub const FSRTL_FCB_HEADER_V2: u8 = 0x02;

/// `FSRTL_ADVANCED_FCB_HEADER` (0x60 bytes on x64, version 2): the common
/// header, then the fast mutex guarding the sizes, the filter contexts,
/// the push lock, the file context support pointer and the oplock.
#[repr(C)]
#[derive(Debug)]
pub struct FSRTL_ADVANCED_FCB_HEADER {
    pub Common: FSRTL_COMMON_FCB_HEADER,
    /// `PFAST_MUTEX`.
    pub FastMutex: *mut c_void,
    pub FilterContexts: crate::base::LIST_ENTRY,
    /// `EX_PUSH_LOCK`.
    pub PushLock: usize,
    pub FileContextSupportPointer: *mut *mut c_void,
    /// `OPLOCK` (`ReservedForRemote`).
    pub Oplock: *mut c_void,
}

/// `FILE_POSITION_INFORMATION` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FILE_POSITION_INFORMATION {
    pub CurrentByteOffset: LARGE_INTEGER,
}

/// `FILE_END_OF_FILE_INFORMATION` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FILE_END_OF_FILE_INFORMATION {
    pub EndOfFile: LARGE_INTEGER,
}

/// `FILE_ALLOCATION_INFORMATION` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FILE_ALLOCATION_INFORMATION {
    pub AllocationSize: LARGE_INTEGER,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<FSRTL_COMMON_FCB_HEADER>() == 0x30);
    assert!(offset_of!(FSRTL_COMMON_FCB_HEADER, Resource) == 0x08);
    assert!(offset_of!(FSRTL_COMMON_FCB_HEADER, AllocationSize) == 0x18);
    assert!(offset_of!(FSRTL_COMMON_FCB_HEADER, FileSize) == 0x20);
    assert!(offset_of!(FSRTL_COMMON_FCB_HEADER, ValidDataLength) == 0x28);
    assert!(size_of::<FSRTL_ADVANCED_FCB_HEADER>() == 0x60);
    assert!(offset_of!(FSRTL_ADVANCED_FCB_HEADER, FastMutex) == 0x30);
    assert!(offset_of!(FSRTL_ADVANCED_FCB_HEADER, FilterContexts) == 0x38);
    assert!(offset_of!(FSRTL_ADVANCED_FCB_HEADER, PushLock) == 0x48);
    assert!(offset_of!(FSRTL_ADVANCED_FCB_HEADER, Oplock) == 0x58);
    assert!(size_of::<FILE_POSITION_INFORMATION>() == 8);
    assert!(size_of::<FILE_END_OF_FILE_INFORMATION>() == 8);
    assert!(size_of::<FILE_ALLOCATION_INFORMATION>() == 8);
};
