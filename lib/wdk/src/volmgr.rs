//! The partition manager → volume manager interface. **ntrs's own**:
//! Windows' partmgr.sys reports partitions to volmgr.sys through an
//! undocumented internal interface, so ntrs defines one: partmgr sends
//! `IRP_MJ_INTERNAL_DEVICE_CONTROL` with [`IOCTL_VOLMGR_NTRS_PARTITION_ARRIVAL`]
//! (METHOD_BUFFERED, a [`VOLMGR_NTRS_PARTITION`] as input) to
//! `\Device\VolMgrControl` once per partition it found on a disk. The
//! function code is in the customer range (0x800 and up) of the volume
//! device type, so it cannot collide with a Windows control code.

use crate::consts::{CTL_CODE, FILE_ANY_ACCESS, METHOD_BUFFERED};
use crate::disk::{GUID, IOCTL_VOLUME_BASE};
use crate::io::DEVICE_OBJECT;
use core::mem::{offset_of, size_of};

/// A partition arrived (input: [`VOLMGR_NTRS_PARTITION`]). volmgr answers
/// `STATUS_SUCCESS` once the volume device exists, `STATUS_OBJECT_NAME_COLLISION`
/// if the partition was reported before, `STATUS_INVALID_PARAMETER` for a
/// malformed report.
pub const IOCTL_VOLMGR_NTRS_PARTITION_ARRIVAL: u32 =
    CTL_CODE(IOCTL_VOLUME_BASE, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS);

/// Name of the volume manager's control device.
pub const VOLMGR_CONTROL_DEVICE_NAME: &str = "\\Device\\VolMgrControl";

/// One partition as partmgr reports it (0xC0 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VOLMGR_NTRS_PARTITION {
    /// `size_of::<VOLMGR_NTRS_PARTITION>()` (a version check).
    pub Size: u32,
    /// N of `\Device\HarddiskN` (`IOCTL_STORAGE_GET_DEVICE_NUMBER` of the disk).
    pub DiskNumber: u32,
    /// 1-based partition number (GPT: used entries in entry order).
    pub PartitionNumber: u32,
    /// Bytes per sector of the disk.
    pub BytesPerSector: u32,
    /// Byte offset of the partition on the disk.
    pub StartingOffset: i64,
    /// Its length in bytes.
    pub PartitionLength: i64,
    /// GPT partition type GUID.
    pub PartitionType: GUID,
    /// GPT unique partition GUID.
    pub PartitionId: GUID,
    /// GPT disk GUID.
    pub DiskId: GUID,
    /// GPT attributes.
    pub Attributes: u64,
    /// GPT partition name (UTF-16, NUL-padded).
    pub Name: [u16; 36],
    /// The device volume I/O is sent to: the top of the disk's stack
    /// (partmgr's filter above disk.sys). volmgr references it while the
    /// volume exists.
    pub DiskDevice: *mut DEVICE_OBJECT,
}

const _: () = {
    assert!(offset_of!(VOLMGR_NTRS_PARTITION, StartingOffset) == 0x10);
    assert!(offset_of!(VOLMGR_NTRS_PARTITION, PartitionType) == 0x20);
    assert!(offset_of!(VOLMGR_NTRS_PARTITION, Attributes) == 0x50);
    assert!(offset_of!(VOLMGR_NTRS_PARTITION, Name) == 0x58);
    assert!(offset_of!(VOLMGR_NTRS_PARTITION, DiskDevice) == 0xA0);
    assert!(size_of::<VOLMGR_NTRS_PARTITION>() == 0xA8);
    assert!(IOCTL_VOLMGR_NTRS_PARTITION_ARRIVAL == 0x0056_2000);
};
