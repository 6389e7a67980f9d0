//! Fast I/O (ntifs.h/wdm.h): `FAST_IO_DISPATCH`, the table a file system
//! (or a filter) hangs off `DRIVER_OBJECT.FastIoDispatch` so the I/O manager
//! can call it directly, without an IRP, for cached reads and writes and
//! for the common information queries (*Windows Internals* 7th ed., Part 1,
//! ch. 6, "Fast I/O"), and the file information structures those queries
//! fill (`FILE_BASIC_INFORMATION`, `FILE_STANDARD_INFORMATION`,
//! `FILE_NETWORK_OPEN_INFORMATION`). Layouts are the Windows x64 ones
//! (checked at compile time below).
//!
//! A routine returns `TRUE` (1) when it did the operation (the result is in
//! the `IO_STATUS_BLOCK` it was given) and `FALSE` (0) when the I/O manager
//! must build an IRP instead. A null entry is the same as `FALSE`.
#![allow(non_upper_case_globals)]

use crate::base::*;
use crate::io::{DEVICE_OBJECT, FILE_OBJECT};
use core::ffi::c_void;
use nt::NtStatus;

/// `FAST_IO_CHECK_IF_POSSIBLE`.
pub type FAST_IO_CHECK_IF_POSSIBLE = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *mut LARGE_INTEGER,
    Length: u32,
    Wait: BOOLEAN,
    LockKey: u32,
    CheckForReadOperation: BOOLEAN,
    IoStatus: *mut IO_STATUS_BLOCK,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_READ` (also `FAST_IO_WRITE`).
pub type FAST_IO_READ = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *mut LARGE_INTEGER,
    Length: u32,
    Wait: BOOLEAN,
    LockKey: u32,
    Buffer: *mut c_void,
    IoStatus: *mut IO_STATUS_BLOCK,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_WRITE`.
pub type FAST_IO_WRITE = FAST_IO_READ;
/// `FAST_IO_QUERY_BASIC_INFO`.
pub type FAST_IO_QUERY_BASIC_INFO = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    Wait: BOOLEAN,
    Buffer: *mut FILE_BASIC_INFORMATION,
    IoStatus: *mut IO_STATUS_BLOCK,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_QUERY_STANDARD_INFO`.
pub type FAST_IO_QUERY_STANDARD_INFO = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    Wait: BOOLEAN,
    Buffer: *mut FILE_STANDARD_INFORMATION,
    IoStatus: *mut IO_STATUS_BLOCK,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_LOCK`.
pub type FAST_IO_LOCK = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *mut LARGE_INTEGER,
    Length: *mut LARGE_INTEGER,
    ProcessId: *mut c_void,
    Key: u32,
    FailImmediately: BOOLEAN,
    ExclusiveLock: BOOLEAN,
    IoStatus: *mut IO_STATUS_BLOCK,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_UNLOCK_SINGLE`.
pub type FAST_IO_UNLOCK_SINGLE = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *mut LARGE_INTEGER,
    Length: *mut LARGE_INTEGER,
    ProcessId: *mut c_void,
    Key: u32,
    IoStatus: *mut IO_STATUS_BLOCK,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_UNLOCK_ALL`.
pub type FAST_IO_UNLOCK_ALL = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    ProcessId: *mut c_void,
    IoStatus: *mut IO_STATUS_BLOCK,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_UNLOCK_ALL_BY_KEY`.
pub type FAST_IO_UNLOCK_ALL_BY_KEY = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    ProcessId: *mut c_void,
    Key: u32,
    IoStatus: *mut IO_STATUS_BLOCK,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_DEVICE_CONTROL`.
pub type FAST_IO_DEVICE_CONTROL = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    Wait: BOOLEAN,
    InputBuffer: *mut c_void,
    InputBufferLength: u32,
    OutputBuffer: *mut c_void,
    OutputBufferLength: u32,
    IoControlCode: u32,
    IoStatus: *mut IO_STATUS_BLOCK,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_ACQUIRE_FILE` / `FAST_IO_RELEASE_FILE`
/// (`AcquireFileForNtCreateSection`, `ReleaseFileForNtCreateSection`).
pub type FAST_IO_ACQUIRE_FILE = unsafe extern "system" fn(FileObject: *mut FILE_OBJECT);
/// `FAST_IO_RELEASE_FILE`.
pub type FAST_IO_RELEASE_FILE = FAST_IO_ACQUIRE_FILE;
/// `FAST_IO_DETACH_DEVICE`.
pub type FAST_IO_DETACH_DEVICE =
    unsafe extern "system" fn(SourceDevice: *mut DEVICE_OBJECT, TargetDevice: *mut DEVICE_OBJECT);
/// `FAST_IO_QUERY_NETWORK_OPEN_INFO`.
pub type FAST_IO_QUERY_NETWORK_OPEN_INFO = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    Wait: BOOLEAN,
    Buffer: *mut FILE_NETWORK_OPEN_INFORMATION,
    IoStatus: *mut IO_STATUS_BLOCK,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_ACQUIRE_FOR_MOD_WRITE` (`ResourceToRelease` is a `PERESOURCE*`).
pub type FAST_IO_ACQUIRE_FOR_MOD_WRITE = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    EndingOffset: *mut LARGE_INTEGER,
    ResourceToRelease: *mut *mut c_void,
    DeviceObject: *mut DEVICE_OBJECT,
) -> NtStatus;
/// `FAST_IO_MDL_READ` (also `FAST_IO_PREPARE_MDL_WRITE`).
pub type FAST_IO_MDL_READ = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *mut LARGE_INTEGER,
    Length: u32,
    LockKey: u32,
    MdlChain: *mut *mut MDL,
    IoStatus: *mut IO_STATUS_BLOCK,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_MDL_READ_COMPLETE`.
pub type FAST_IO_MDL_READ_COMPLETE = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    MdlChain: *mut MDL,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_PREPARE_MDL_WRITE`.
pub type FAST_IO_PREPARE_MDL_WRITE = FAST_IO_MDL_READ;
/// `FAST_IO_MDL_WRITE_COMPLETE`.
pub type FAST_IO_MDL_WRITE_COMPLETE = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *mut LARGE_INTEGER,
    MdlChain: *mut MDL,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_READ_COMPRESSED` (also `FAST_IO_WRITE_COMPRESSED`;
/// `CompressedDataInfo` is a `PCOMPRESSED_DATA_INFO`).
pub type FAST_IO_READ_COMPRESSED = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    FileOffset: *mut LARGE_INTEGER,
    Length: u32,
    LockKey: u32,
    Buffer: *mut c_void,
    MdlChain: *mut *mut MDL,
    IoStatus: *mut IO_STATUS_BLOCK,
    CompressedDataInfo: *mut c_void,
    CompressedDataInfoLength: u32,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_WRITE_COMPRESSED`.
pub type FAST_IO_WRITE_COMPRESSED = FAST_IO_READ_COMPRESSED;
/// `FAST_IO_MDL_READ_COMPLETE_COMPRESSED`.
pub type FAST_IO_MDL_READ_COMPLETE_COMPRESSED = FAST_IO_MDL_READ_COMPLETE;
/// `FAST_IO_MDL_WRITE_COMPLETE_COMPRESSED`.
pub type FAST_IO_MDL_WRITE_COMPLETE_COMPRESSED = FAST_IO_MDL_WRITE_COMPLETE;
/// `FAST_IO_QUERY_OPEN`.
pub type FAST_IO_QUERY_OPEN = unsafe extern "system" fn(
    Irp: *mut crate::io::IRP,
    NetworkInformation: *mut FILE_NETWORK_OPEN_INFORMATION,
    DeviceObject: *mut DEVICE_OBJECT,
) -> BOOLEAN;
/// `FAST_IO_RELEASE_FOR_MOD_WRITE`.
pub type FAST_IO_RELEASE_FOR_MOD_WRITE = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    ResourceToRelease: *mut c_void,
    DeviceObject: *mut DEVICE_OBJECT,
) -> NtStatus;
/// `FAST_IO_ACQUIRE_FOR_CCFLUSH` (also `FAST_IO_RELEASE_FOR_CCFLUSH`).
pub type FAST_IO_ACQUIRE_FOR_CCFLUSH = unsafe extern "system" fn(
    FileObject: *mut FILE_OBJECT,
    DeviceObject: *mut DEVICE_OBJECT,
) -> NtStatus;
/// `FAST_IO_RELEASE_FOR_CCFLUSH`.
pub type FAST_IO_RELEASE_FOR_CCFLUSH = FAST_IO_ACQUIRE_FOR_CCFLUSH;

/// `FAST_IO_DISPATCH` (0xE0 bytes on x64). `SizeOfFastIoDispatch` is
/// `sizeof(FAST_IO_DISPATCH)`; a `None` entry means "not supported".
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FAST_IO_DISPATCH {
    pub SizeOfFastIoDispatch: u32,
    pub FastIoCheckIfPossible: Option<FAST_IO_CHECK_IF_POSSIBLE>,
    pub FastIoRead: Option<FAST_IO_READ>,
    pub FastIoWrite: Option<FAST_IO_WRITE>,
    pub FastIoQueryBasicInfo: Option<FAST_IO_QUERY_BASIC_INFO>,
    pub FastIoQueryStandardInfo: Option<FAST_IO_QUERY_STANDARD_INFO>,
    pub FastIoLock: Option<FAST_IO_LOCK>,
    pub FastIoUnlockSingle: Option<FAST_IO_UNLOCK_SINGLE>,
    pub FastIoUnlockAll: Option<FAST_IO_UNLOCK_ALL>,
    pub FastIoUnlockAllByKey: Option<FAST_IO_UNLOCK_ALL_BY_KEY>,
    pub FastIoDeviceControl: Option<FAST_IO_DEVICE_CONTROL>,
    pub AcquireFileForNtCreateSection: Option<FAST_IO_ACQUIRE_FILE>,
    pub ReleaseFileForNtCreateSection: Option<FAST_IO_RELEASE_FILE>,
    pub FastIoDetachDevice: Option<FAST_IO_DETACH_DEVICE>,
    pub FastIoQueryNetworkOpenInfo: Option<FAST_IO_QUERY_NETWORK_OPEN_INFO>,
    pub AcquireForModWrite: Option<FAST_IO_ACQUIRE_FOR_MOD_WRITE>,
    pub MdlRead: Option<FAST_IO_MDL_READ>,
    pub MdlReadComplete: Option<FAST_IO_MDL_READ_COMPLETE>,
    pub PrepareMdlWrite: Option<FAST_IO_PREPARE_MDL_WRITE>,
    pub MdlWriteComplete: Option<FAST_IO_MDL_WRITE_COMPLETE>,
    pub FastIoReadCompressed: Option<FAST_IO_READ_COMPRESSED>,
    pub FastIoWriteCompressed: Option<FAST_IO_WRITE_COMPRESSED>,
    pub MdlReadCompleteCompressed: Option<FAST_IO_MDL_READ_COMPLETE_COMPRESSED>,
    pub MdlWriteCompleteCompressed: Option<FAST_IO_MDL_WRITE_COMPLETE_COMPRESSED>,
    pub FastIoQueryOpen: Option<FAST_IO_QUERY_OPEN>,
    pub ReleaseForModWrite: Option<FAST_IO_RELEASE_FOR_MOD_WRITE>,
    pub AcquireForCcFlush: Option<FAST_IO_ACQUIRE_FOR_CCFLUSH>,
    pub ReleaseForCcFlush: Option<FAST_IO_RELEASE_FOR_CCFLUSH>,
}

impl FAST_IO_DISPATCH {
    /// A table with every entry `None` and the size set.
    pub const fn empty() -> Self {
        Self {
            SizeOfFastIoDispatch: core::mem::size_of::<FAST_IO_DISPATCH>() as u32,
            FastIoCheckIfPossible: None,
            FastIoRead: None,
            FastIoWrite: None,
            FastIoQueryBasicInfo: None,
            FastIoQueryStandardInfo: None,
            FastIoLock: None,
            FastIoUnlockSingle: None,
            FastIoUnlockAll: None,
            FastIoUnlockAllByKey: None,
            FastIoDeviceControl: None,
            AcquireFileForNtCreateSection: None,
            ReleaseFileForNtCreateSection: None,
            FastIoDetachDevice: None,
            FastIoQueryNetworkOpenInfo: None,
            AcquireForModWrite: None,
            MdlRead: None,
            MdlReadComplete: None,
            PrepareMdlWrite: None,
            MdlWriteComplete: None,
            FastIoReadCompressed: None,
            FastIoWriteCompressed: None,
            MdlReadCompleteCompressed: None,
            MdlWriteCompleteCompressed: None,
            FastIoQueryOpen: None,
            ReleaseForModWrite: None,
            AcquireForCcFlush: None,
            ReleaseForCcFlush: None,
        }
    }

    /// Whether the table is long enough to hold the field at byte
    /// `offset` (`FIELD_OFFSET`): the check NT makes with
    /// `SizeOfFastIoDispatch` before calling entries added in later
    /// versions (`FastIoQueryOpen` and after).
    pub fn has(&self, offset: usize) -> bool {
        self.SizeOfFastIoDispatch as usize >= offset + core::mem::size_of::<usize>()
    }
}

/// `FILE_INFORMATION_CLASS` values (the ones `NtQueryInformationFile`
/// knows the sizes of; `FileBasicInformation`, `FileStandardInformation`
/// and `FileNetworkOpenInformation` have fast I/O routines).
pub const FileBasicInformation: u32 = 4;
pub const FileStandardInformation: u32 = 5;
pub const FileInternalInformation: u32 = 6;
pub const FileEaInformation: u32 = 7;
pub const FileAccessInformation: u32 = 8;
pub const FileNameInformation: u32 = 9;
pub const FilePositionInformation: u32 = 14;
pub const FileModeInformation: u32 = 16;
pub const FileAlignmentInformation: u32 = 17;
pub const FileAllInformation: u32 = 18;
pub const FileStreamInformation: u32 = 22;
pub const FileNetworkOpenInformation: u32 = 34;
pub const FileAttributeTagInformation: u32 = 35;

/// `FILE_BASIC_INFORMATION` (0x28 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FILE_BASIC_INFORMATION {
    pub CreationTime: LARGE_INTEGER,
    pub LastAccessTime: LARGE_INTEGER,
    pub LastWriteTime: LARGE_INTEGER,
    pub ChangeTime: LARGE_INTEGER,
    pub FileAttributes: u32,
}

/// `FILE_STANDARD_INFORMATION` (0x18 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FILE_STANDARD_INFORMATION {
    pub AllocationSize: LARGE_INTEGER,
    pub EndOfFile: LARGE_INTEGER,
    pub NumberOfLinks: u32,
    pub DeletePending: BOOLEAN,
    pub Directory: BOOLEAN,
}

/// `FILE_NETWORK_OPEN_INFORMATION` (0x38 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FILE_NETWORK_OPEN_INFORMATION {
    pub CreationTime: LARGE_INTEGER,
    pub LastAccessTime: LARGE_INTEGER,
    pub LastWriteTime: LARGE_INTEGER,
    pub ChangeTime: LARGE_INTEGER,
    pub AllocationSize: LARGE_INTEGER,
    pub EndOfFile: LARGE_INTEGER,
    pub FileAttributes: u32,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<FAST_IO_DISPATCH>() == 0xE0);
    assert!(offset_of!(FAST_IO_DISPATCH, FastIoCheckIfPossible) == 0x08);
    assert!(offset_of!(FAST_IO_DISPATCH, FastIoRead) == 0x10);
    assert!(offset_of!(FAST_IO_DISPATCH, FastIoWrite) == 0x18);
    assert!(offset_of!(FAST_IO_DISPATCH, FastIoQueryBasicInfo) == 0x20);
    assert!(offset_of!(FAST_IO_DISPATCH, FastIoQueryStandardInfo) == 0x28);
    assert!(offset_of!(FAST_IO_DISPATCH, FastIoLock) == 0x30);
    assert!(offset_of!(FAST_IO_DISPATCH, FastIoDeviceControl) == 0x50);
    assert!(offset_of!(FAST_IO_DISPATCH, AcquireFileForNtCreateSection) == 0x58);
    assert!(offset_of!(FAST_IO_DISPATCH, FastIoDetachDevice) == 0x68);
    assert!(offset_of!(FAST_IO_DISPATCH, FastIoQueryNetworkOpenInfo) == 0x70);
    assert!(offset_of!(FAST_IO_DISPATCH, AcquireForModWrite) == 0x78);
    assert!(offset_of!(FAST_IO_DISPATCH, MdlRead) == 0x80);
    assert!(offset_of!(FAST_IO_DISPATCH, MdlWriteComplete) == 0x98);
    assert!(offset_of!(FAST_IO_DISPATCH, FastIoReadCompressed) == 0xA0);
    assert!(offset_of!(FAST_IO_DISPATCH, FastIoQueryOpen) == 0xC0);
    assert!(offset_of!(FAST_IO_DISPATCH, ReleaseForModWrite) == 0xC8);
    assert!(offset_of!(FAST_IO_DISPATCH, AcquireForCcFlush) == 0xD0);
    assert!(offset_of!(FAST_IO_DISPATCH, ReleaseForCcFlush) == 0xD8);
    assert!(size_of::<FILE_BASIC_INFORMATION>() == 0x28);
    assert!(offset_of!(FILE_BASIC_INFORMATION, FileAttributes) == 0x20);
    assert!(size_of::<FILE_STANDARD_INFORMATION>() == 0x18);
    assert!(offset_of!(FILE_STANDARD_INFORMATION, NumberOfLinks) == 0x10);
    assert!(offset_of!(FILE_STANDARD_INFORMATION, DeletePending) == 0x14);
    assert!(offset_of!(FILE_STANDARD_INFORMATION, Directory) == 0x15);
    assert!(size_of::<FILE_NETWORK_OPEN_INFORMATION>() == 0x38);
    assert!(offset_of!(FILE_NETWORK_OPEN_INFORMATION, FileAttributes) == 0x30);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_has_its_size_and_no_entries() {
        let t = FAST_IO_DISPATCH::empty();
        assert_eq!(t.SizeOfFastIoDispatch, 0xE0);
        assert!(t.FastIoRead.is_none() && t.ReleaseForCcFlush.is_none());
        assert!(t.has(core::mem::offset_of!(FAST_IO_DISPATCH, ReleaseForCcFlush)));
        let old = FAST_IO_DISPATCH {
            SizeOfFastIoDispatch: 0xC0,
            ..t
        };
        assert!(old.has(core::mem::offset_of!(
            FAST_IO_DISPATCH,
            MdlWriteCompleteCompressed
        )));
        assert!(!old.has(core::mem::offset_of!(FAST_IO_DISPATCH, FastIoQueryOpen)));
    }
}
