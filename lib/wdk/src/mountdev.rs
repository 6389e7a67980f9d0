//! mountdev.h, mountmgr.h and ntddvol.h: what the mount manager and the
//! volume devices exchange (the `IOCTL_MOUNTDEV_*` queries a volume
//! answers, `IOCTL_MOUNTMGR_QUERY_POINTS`, `IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS`),
//! and the device interface class GUIDs of disks and volumes, in the
//! Windows x64 layouts (facts from the MS documentation of each structure
//! and control code; sizes, offsets and code values asserted below).
//!
//! `IOCTL_MOUNTDEV_QUERY_UNIQUE_ID`, `IOCTL_MOUNTDEV_QUERY_DEVICE_NAME` and
//! `IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS` are in [`crate::disk`], where the
//! disk class code already used them.

use crate::consts::{
    CTL_CODE, FILE_ANY_ACCESS, FILE_READ_ACCESS, FILE_WRITE_ACCESS, METHOD_BUFFERED,
};
use crate::disk::{GUID, MOUNTDEVCONTROLTYPE};
use core::mem::{offset_of, size_of};

/// `MOUNTMGRCONTROLTYPE` ('m').
pub const MOUNTMGRCONTROLTYPE: u32 = 0x6D;

/// `IOCTL_MOUNTDEV_QUERY_SUGGESTED_LINK_NAME` (0x4D000C).
pub const IOCTL_MOUNTDEV_QUERY_SUGGESTED_LINK_NAME: u32 =
    CTL_CODE(MOUNTDEVCONTROLTYPE, 3, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// `IOCTL_MOUNTDEV_QUERY_STABLE_GUID` (0x4D0018).
pub const IOCTL_MOUNTDEV_QUERY_STABLE_GUID: u32 =
    CTL_CODE(MOUNTDEVCONTROLTYPE, 6, METHOD_BUFFERED, FILE_ANY_ACCESS);

/// `IOCTL_MOUNTMGR_CREATE_POINT` (0x6DC000).
pub const IOCTL_MOUNTMGR_CREATE_POINT: u32 = CTL_CODE(
    MOUNTMGRCONTROLTYPE,
    0,
    METHOD_BUFFERED,
    FILE_READ_ACCESS | FILE_WRITE_ACCESS,
);
/// `IOCTL_MOUNTMGR_QUERY_POINTS` (0x6D0008).
pub const IOCTL_MOUNTMGR_QUERY_POINTS: u32 =
    CTL_CODE(MOUNTMGRCONTROLTYPE, 2, METHOD_BUFFERED, FILE_ANY_ACCESS);

/// `MOUNTDEV_STABLE_GUID`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MOUNTDEV_STABLE_GUID {
    pub StableGuid: GUID,
}

/// `MOUNTMGR_MOUNT_POINT` (0x18 bytes): the input of
/// `IOCTL_MOUNTMGR_QUERY_POINTS` (criteria; offsets from the start of this
/// structure, zero lengths match anything) and each element of its answer
/// (offsets from the start of the output buffer). Names are not
/// NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MOUNTMGR_MOUNT_POINT {
    pub SymbolicLinkNameOffset: u32,
    pub SymbolicLinkNameLength: u16,
    pub Reserved1: u16,
    pub UniqueIdOffset: u32,
    pub UniqueIdLength: u16,
    pub Reserved2: u16,
    pub DeviceNameOffset: u32,
    pub DeviceNameLength: u16,
    pub Reserved3: u16,
}

/// The fixed part of `MOUNTMGR_MOUNT_POINTS` (`Size`: the bytes the whole
/// answer needs; `NumberOfMountPoints`); `MountPoints[]` follows at
/// [`MOUNTMGR_MOUNT_POINTS_ENTRIES_OFFSET`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MOUNTMGR_MOUNT_POINTS_HEADER {
    pub Size: u32,
    pub NumberOfMountPoints: u32,
}

/// `FIELD_OFFSET(MOUNTMGR_MOUNT_POINTS, MountPoints)`.
pub const MOUNTMGR_MOUNT_POINTS_ENTRIES_OFFSET: usize = 8;
/// `sizeof(MOUNTMGR_MOUNT_POINTS)` (one element declared): the smallest
/// output buffer `IOCTL_MOUNTMGR_QUERY_POINTS` accepts.
pub const MOUNTMGR_MOUNT_POINTS_SIZE: usize = 0x20;

/// `DISK_EXTENT` (0x18 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DISK_EXTENT {
    pub DiskNumber: u32,
    pub _Pad: u32,
    pub StartingOffset: i64,
    pub ExtentLength: i64,
}

/// `VOLUME_DISK_EXTENTS` with one extent (0x20 bytes, `sizeof` the
/// declared structure); more extents would follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VOLUME_DISK_EXTENTS {
    pub NumberOfDiskExtents: u32,
    pub _Pad: u32,
    pub Extents: [DISK_EXTENT; 1],
}

const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> GUID {
    GUID {
        Data1: d1,
        Data2: d2,
        Data3: d3,
        Data4: d4,
    }
}

/// `GUID_DEVINTERFACE_DISK` {53f56307-b6bf-11d0-94f2-00a0c91efb8b}.
pub const GUID_DEVINTERFACE_DISK: GUID = guid(
    0x53f5_6307,
    0xb6bf,
    0x11d0,
    [0x94, 0xf2, 0x00, 0xa0, 0xc9, 0x1e, 0xfb, 0x8b],
);
/// `GUID_DEVINTERFACE_PARTITION` {53f5630a-b6bf-11d0-94f2-00a0c91efb8b}.
pub const GUID_DEVINTERFACE_PARTITION: GUID = guid(
    0x53f5_630a,
    0xb6bf,
    0x11d0,
    [0x94, 0xf2, 0x00, 0xa0, 0xc9, 0x1e, 0xfb, 0x8b],
);
/// `GUID_DEVINTERFACE_VOLUME` {53f5630d-b6bf-11d0-94f2-00a0c91efb8b}.
pub const GUID_DEVINTERFACE_VOLUME: GUID = guid(
    0x53f5_630d,
    0xb6bf,
    0x11d0,
    [0x94, 0xf2, 0x00, 0xa0, 0xc9, 0x1e, 0xfb, 0x8b],
);
/// `MOUNTDEV_MOUNTED_DEVICE_GUID` (mountmgr.h): the same GUID as
/// `GUID_DEVINTERFACE_VOLUME`; the mount manager watches it.
pub const MOUNTDEV_MOUNTED_DEVICE_GUID: GUID = GUID_DEVINTERFACE_VOLUME;
/// The setup class of disk drives, `GUID_DEVCLASS_DISKDRIVE`
/// {4d36e967-e325-11ce-bfc1-08002be10318} (`Control\Class\{...}` holds
/// its `UpperFilters`, `partmgr` on Windows).
pub const GUID_DEVCLASS_DISKDRIVE: GUID = guid(
    0x4d36_e967,
    0xe325,
    0x11ce,
    [0xbf, 0xc1, 0x08, 0x00, 0x2b, 0xe1, 0x03, 0x18],
);

const _: () = {
    assert!(size_of::<MOUNTDEV_STABLE_GUID>() == 16);
    assert!(size_of::<MOUNTMGR_MOUNT_POINT>() == 0x18);
    assert!(offset_of!(MOUNTMGR_MOUNT_POINT, UniqueIdOffset) == 0x08);
    assert!(offset_of!(MOUNTMGR_MOUNT_POINT, DeviceNameOffset) == 0x10);
    assert!(offset_of!(MOUNTMGR_MOUNT_POINT, DeviceNameLength) == 0x14);
    assert!(size_of::<MOUNTMGR_MOUNT_POINTS_HEADER>() == MOUNTMGR_MOUNT_POINTS_ENTRIES_OFFSET);
    assert!(
        MOUNTMGR_MOUNT_POINTS_ENTRIES_OFFSET + size_of::<MOUNTMGR_MOUNT_POINT>()
            == MOUNTMGR_MOUNT_POINTS_SIZE
    );
    assert!(size_of::<DISK_EXTENT>() == 0x18);
    assert!(offset_of!(DISK_EXTENT, StartingOffset) == 0x08);
    assert!(offset_of!(DISK_EXTENT, ExtentLength) == 0x10);
    assert!(size_of::<VOLUME_DISK_EXTENTS>() == 0x20);
    assert!(offset_of!(VOLUME_DISK_EXTENTS, Extents) == 0x08);
    assert!(IOCTL_MOUNTDEV_QUERY_SUGGESTED_LINK_NAME == 0x004D_000C);
    assert!(IOCTL_MOUNTDEV_QUERY_STABLE_GUID == 0x004D_0018);
    assert!(IOCTL_MOUNTMGR_CREATE_POINT == 0x006D_C000);
    assert!(IOCTL_MOUNTMGR_QUERY_POINTS == 0x006D_0008);
};
