//! ntdddisk.h / ntddstor.h / mountmgr.h / ntddvol.h: the disk, storage,
//! mount-device and volume IOCTL codes and the structures their buffers
//! hold, in the Windows x64 layouts (sizes and offsets from the public
//! headers, asserted at compile time). Owner: the storage stack (lib/storage
//! builds these answers; storahci/disk/partmgr/volmgr/mountmgr use them).

use crate::consts::{
    CTL_CODE, FILE_ANY_ACCESS, FILE_DEVICE_DISK, FILE_READ_ACCESS, METHOD_BUFFERED,
};
use core::mem::{offset_of, size_of};

/// `GUID` (16 bytes: `Data1` u32, `Data2`/`Data3` u16, `Data4` 8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GUID {
    pub Data1: u32,
    pub Data2: u16,
    pub Data3: u16,
    pub Data4: [u8; 8],
}

/// `IOCTL_DISK_BASE`.
pub const IOCTL_DISK_BASE: u32 = FILE_DEVICE_DISK;
/// `IOCTL_STORAGE_BASE` (`FILE_DEVICE_MASS_STORAGE`).
pub const IOCTL_STORAGE_BASE: u32 = 0x2D;
/// `MOUNTDEVCONTROLTYPE` ('M').
pub const MOUNTDEVCONTROLTYPE: u32 = 0x4D;
/// `IOCTL_VOLUME_BASE` ('V').
pub const IOCTL_VOLUME_BASE: u32 = 0x56;

/// `IOCTL_DISK_GET_DRIVE_GEOMETRY` (0x70000).
pub const IOCTL_DISK_GET_DRIVE_GEOMETRY: u32 =
    CTL_CODE(IOCTL_DISK_BASE, 0x0000, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// `IOCTL_DISK_GET_PARTITION_INFO_EX` (0x70048).
pub const IOCTL_DISK_GET_PARTITION_INFO_EX: u32 =
    CTL_CODE(IOCTL_DISK_BASE, 0x0012, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// `IOCTL_DISK_GET_DRIVE_LAYOUT_EX` (0x70050).
pub const IOCTL_DISK_GET_DRIVE_LAYOUT_EX: u32 =
    CTL_CODE(IOCTL_DISK_BASE, 0x0014, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// `IOCTL_DISK_GET_LENGTH_INFO` (0x7405C).
pub const IOCTL_DISK_GET_LENGTH_INFO: u32 =
    CTL_CODE(IOCTL_DISK_BASE, 0x0017, METHOD_BUFFERED, FILE_READ_ACCESS);
/// `IOCTL_DISK_GET_DRIVE_GEOMETRY_EX` (0x700A0).
pub const IOCTL_DISK_GET_DRIVE_GEOMETRY_EX: u32 =
    CTL_CODE(IOCTL_DISK_BASE, 0x0028, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// `IOCTL_STORAGE_GET_DEVICE_NUMBER` (0x2D1080).
pub const IOCTL_STORAGE_GET_DEVICE_NUMBER: u32 =
    CTL_CODE(IOCTL_STORAGE_BASE, 0x0420, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// `IOCTL_STORAGE_RESET_BUS` (0x2D5000).
pub const IOCTL_STORAGE_RESET_BUS: u32 = CTL_CODE(
    IOCTL_STORAGE_BASE,
    0x0400,
    METHOD_BUFFERED,
    FILE_READ_ACCESS,
);
/// `IOCTL_STORAGE_RESET_DEVICE` (0x2D5004).
pub const IOCTL_STORAGE_RESET_DEVICE: u32 = CTL_CODE(
    IOCTL_STORAGE_BASE,
    0x0401,
    METHOD_BUFFERED,
    FILE_READ_ACCESS,
);
/// `IOCTL_MOUNTDEV_QUERY_UNIQUE_ID` (0x4D0000).
pub const IOCTL_MOUNTDEV_QUERY_UNIQUE_ID: u32 =
    CTL_CODE(MOUNTDEVCONTROLTYPE, 0, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// `IOCTL_MOUNTDEV_QUERY_DEVICE_NAME` (0x4D0008).
pub const IOCTL_MOUNTDEV_QUERY_DEVICE_NAME: u32 =
    CTL_CODE(MOUNTDEVCONTROLTYPE, 2, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// `IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS` (0x560000).
pub const IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS: u32 =
    CTL_CODE(IOCTL_VOLUME_BASE, 0, METHOD_BUFFERED, FILE_ANY_ACCESS);

/// `PARTITION_STYLE_MBR`.
pub const PARTITION_STYLE_MBR: u32 = 0;
/// `PARTITION_STYLE_GPT`.
pub const PARTITION_STYLE_GPT: u32 = 1;
/// `PARTITION_STYLE_RAW`.
pub const PARTITION_STYLE_RAW: u32 = 2;
/// `MEDIA_TYPE` `FixedMedia`.
#[allow(non_upper_case_globals)]
pub const FixedMedia: u32 = 12;
/// `DETECTION_TYPE` `DetectNone`.
#[allow(non_upper_case_globals)]
pub const DetectNone: u32 = 0;

/// `DISK_GEOMETRY` (0x18 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DISK_GEOMETRY {
    pub Cylinders: i64,
    pub MediaType: u32,
    pub TracksPerCylinder: u32,
    pub SectorsPerTrack: u32,
    pub BytesPerSector: u32,
}

/// `DISK_PARTITION_INFO` (0x18 bytes), GPT arm (`Gpt.DiskId`; the MBR arm's
/// Signature/CheckSum overlay its first 8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DISK_PARTITION_INFO {
    pub SizeOfPartitionInfo: u32,
    pub PartitionStyle: u32,
    pub DiskId: GUID,
}

/// `DISK_DETECTION_INFO` (0x38 bytes); the `DISK_INT13_INFO` +
/// `DISK_EX_INT13_INFO` union as raw quadwords.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DISK_DETECTION_INFO {
    pub SizeOfDetectInfo: u32,
    pub DetectionType: u32,
    pub Int13: [u64; 6],
}

/// `DISK_GEOMETRY_EX` with its variable `Data` as disk.sys fills it
/// (`DISK_PARTITION_INFO` then `DISK_DETECTION_INFO`, 0x70 bytes in all;
/// the header's `sizeof(DISK_GEOMETRY_EX)` is 0x28, `Data` declared as 1 byte).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DISK_GEOMETRY_EX {
    pub Geometry: DISK_GEOMETRY,
    pub DiskSize: i64,
    pub Partition: DISK_PARTITION_INFO,
    pub Detection: DISK_DETECTION_INFO,
}

/// `FIELD_OFFSET(DISK_GEOMETRY_EX, Data)`.
pub const DISK_GEOMETRY_EX_DATA_OFFSET: usize = 0x20;

/// `PARTITION_INFORMATION_GPT` (0x70 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PARTITION_INFORMATION_GPT {
    pub PartitionType: GUID,
    pub PartitionId: GUID,
    pub Attributes: u64,
    pub Name: [u16; 36],
}

impl Default for PARTITION_INFORMATION_GPT {
    fn default() -> Self {
        PARTITION_INFORMATION_GPT {
            PartitionType: GUID::default(),
            PartitionId: GUID::default(),
            Attributes: 0,
            Name: [0; 36],
        }
    }
}

/// `PARTITION_INFORMATION_EX` (0x90 bytes), GPT arm of the union.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PARTITION_INFORMATION_EX {
    pub PartitionStyle: u32,
    pub _Pad: u32,
    pub StartingOffset: i64,
    pub PartitionLength: i64,
    pub PartitionNumber: u32,
    pub RewritePartition: u8,
    pub IsServicePartition: u8,
    pub _Pad2: [u8; 2],
    pub Gpt: PARTITION_INFORMATION_GPT,
}

/// `DRIVE_LAYOUT_INFORMATION_GPT` (0x28 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DRIVE_LAYOUT_INFORMATION_GPT {
    pub DiskId: GUID,
    pub StartingUsableOffset: i64,
    pub UsableLength: i64,
    pub MaxPartitionCount: u32,
    pub _Pad: u32,
}

/// The fixed part of `DRIVE_LAYOUT_INFORMATION_EX` (0x30 bytes);
/// `PartitionEntry[PartitionCount]` follows.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DRIVE_LAYOUT_INFORMATION_EX_HEADER {
    pub PartitionStyle: u32,
    pub PartitionCount: u32,
    pub Gpt: DRIVE_LAYOUT_INFORMATION_GPT,
}

/// `FIELD_OFFSET(DRIVE_LAYOUT_INFORMATION_EX, PartitionEntry)`.
pub const DRIVE_LAYOUT_INFORMATION_EX_ENTRIES_OFFSET: usize = 0x30;

/// `GET_LENGTH_INFORMATION` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GET_LENGTH_INFORMATION {
    pub Length: i64,
}

/// `STORAGE_DEVICE_NUMBER` (0xC bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct STORAGE_DEVICE_NUMBER {
    pub DeviceType: u32,
    pub DeviceNumber: u32,
    pub PartitionNumber: u32,
}

/// The fixed part of `MOUNTDEV_UNIQUE_ID` / `MOUNTDEV_NAME` (a u16 length
/// then that many bytes).
pub const MOUNTDEV_HEADER: usize = 2;

const _: () = {
    assert!(size_of::<GUID>() == 16);
    assert!(size_of::<DISK_GEOMETRY>() == 0x18);
    assert!(size_of::<DISK_PARTITION_INFO>() == 0x18);
    assert!(size_of::<DISK_DETECTION_INFO>() == 0x38);
    assert!(offset_of!(DISK_GEOMETRY_EX, DiskSize) == 0x18);
    assert!(offset_of!(DISK_GEOMETRY_EX, Partition) == DISK_GEOMETRY_EX_DATA_OFFSET);
    assert!(size_of::<DISK_GEOMETRY_EX>() == 0x70);
    assert!(size_of::<PARTITION_INFORMATION_GPT>() == 0x70);
    assert!(offset_of!(PARTITION_INFORMATION_EX, StartingOffset) == 0x08);
    assert!(offset_of!(PARTITION_INFORMATION_EX, PartitionLength) == 0x10);
    assert!(offset_of!(PARTITION_INFORMATION_EX, PartitionNumber) == 0x18);
    assert!(offset_of!(PARTITION_INFORMATION_EX, IsServicePartition) == 0x1D);
    assert!(offset_of!(PARTITION_INFORMATION_EX, Gpt) == 0x20);
    assert!(size_of::<PARTITION_INFORMATION_EX>() == 0x90);
    assert!(size_of::<DRIVE_LAYOUT_INFORMATION_GPT>() == 0x28);
    assert!(
        size_of::<DRIVE_LAYOUT_INFORMATION_EX_HEADER>()
            == DRIVE_LAYOUT_INFORMATION_EX_ENTRIES_OFFSET
    );
    assert!(size_of::<STORAGE_DEVICE_NUMBER>() == 0xC);
    assert!(IOCTL_DISK_GET_DRIVE_GEOMETRY == 0x0007_0000);
    assert!(IOCTL_DISK_GET_PARTITION_INFO_EX == 0x0007_0048);
    assert!(IOCTL_DISK_GET_DRIVE_LAYOUT_EX == 0x0007_0050);
    assert!(IOCTL_DISK_GET_LENGTH_INFO == 0x0007_405C);
    assert!(IOCTL_DISK_GET_DRIVE_GEOMETRY_EX == 0x0007_00A0);
    assert!(IOCTL_STORAGE_GET_DEVICE_NUMBER == 0x002D_1080);
    assert!(IOCTL_STORAGE_RESET_BUS == 0x002D_5000);
    assert!(IOCTL_STORAGE_RESET_DEVICE == 0x002D_5004);
    assert!(IOCTL_MOUNTDEV_QUERY_UNIQUE_ID == 0x004D_0000);
    assert!(IOCTL_MOUNTDEV_QUERY_DEVICE_NAME == 0x004D_0008);
    assert!(IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS == 0x0056_0000);
};
