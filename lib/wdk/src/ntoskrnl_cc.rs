//! ntoskrnl imports (feature `driver`) of the cache manager and the FsRtl
//! fast I/O helpers (`ntos/exports/cc.txt`).

use crate::base::*;
use crate::cc::*;
use crate::io::*;
use core::ffi::c_void;

#[link(name = "ntoskrnl")]
extern "system" {
    pub fn CcInitializeCacheMap(
        FileObject: *mut FILE_OBJECT,
        FileSizes: *const CC_FILE_SIZES,
        PinAccess: BOOLEAN,
        Callbacks: *const CACHE_MANAGER_CALLBACKS,
        LazyWriteContext: *mut c_void,
    );
    pub fn CcUninitializeCacheMap(
        FileObject: *mut FILE_OBJECT,
        TruncateSize: *const LARGE_INTEGER,
        UninitializeEvent: *mut CACHE_UNINITIALIZE_EVENT,
    ) -> BOOLEAN;
    pub fn CcCopyRead(
        FileObject: *mut FILE_OBJECT,
        FileOffset: *const LARGE_INTEGER,
        Length: u32,
        Wait: BOOLEAN,
        Buffer: *mut c_void,
        IoStatus: *mut IO_STATUS_BLOCK,
    ) -> BOOLEAN;
    pub fn CcCopyWrite(
        FileObject: *mut FILE_OBJECT,
        FileOffset: *const LARGE_INTEGER,
        Length: u32,
        Wait: BOOLEAN,
        Buffer: *const c_void,
    ) -> BOOLEAN;
    pub fn CcFastCopyRead(
        FileObject: *mut FILE_OBJECT,
        FileOffset: u32,
        Length: u32,
        PageCount: u32,
        Buffer: *mut c_void,
        IoStatus: *mut IO_STATUS_BLOCK,
    );
    pub fn CcFastCopyWrite(
        FileObject: *mut FILE_OBJECT,
        FileOffset: u32,
        Length: u32,
        Buffer: *const c_void,
    );
    pub fn CcFlushCache(
        SectionObjectPointer: *mut SECTION_OBJECT_POINTERS,
        FileOffset: *const LARGE_INTEGER,
        Length: u32,
        IoStatus: *mut IO_STATUS_BLOCK,
    );
    pub fn CcPurgeCacheSection(
        SectionObjectPointer: *mut SECTION_OBJECT_POINTERS,
        FileOffset: *const LARGE_INTEGER,
        Length: u32,
        UninitializeCacheMaps: BOOLEAN,
    ) -> BOOLEAN;
    pub fn CcSetFileSizes(FileObject: *mut FILE_OBJECT, FileSizes: *const CC_FILE_SIZES);
    pub fn CcCanIWrite(
        FileObject: *mut FILE_OBJECT,
        BytesToWrite: u32,
        Wait: BOOLEAN,
        Retrying: BOOLEAN,
    ) -> BOOLEAN;
    pub fn CcDeferWrite(
        FileObject: *mut FILE_OBJECT,
        PostRoutine: PCC_POST_DEFERRED_WRITE,
        Context1: *mut c_void,
        Context2: *mut c_void,
        BytesToWrite: u32,
        Retrying: BOOLEAN,
    );
    pub fn CcSetDirtyPageThreshold(FileObject: *mut FILE_OBJECT, DirtyPageThreshold: u32);
    pub fn CcSetReadAheadGranularity(FileObject: *mut FILE_OBJECT, Granularity: u32);
    pub fn CcGetFileObjectFromSectionPtrs(
        SectionObjectPointer: *mut SECTION_OBJECT_POINTERS,
    ) -> *mut FILE_OBJECT;
    pub fn FsRtlCopyRead(
        FileObject: *mut FILE_OBJECT,
        FileOffset: *const LARGE_INTEGER,
        Length: u32,
        Wait: BOOLEAN,
        LockKey: u32,
        Buffer: *mut c_void,
        IoStatus: *mut IO_STATUS_BLOCK,
        DeviceObject: *mut DEVICE_OBJECT,
    ) -> BOOLEAN;
    pub fn FsRtlCopyWrite(
        FileObject: *mut FILE_OBJECT,
        FileOffset: *const LARGE_INTEGER,
        Length: u32,
        Wait: BOOLEAN,
        LockKey: u32,
        Buffer: *const c_void,
        IoStatus: *mut IO_STATUS_BLOCK,
        DeviceObject: *mut DEVICE_OBJECT,
    ) -> BOOLEAN;
}
