//! ntdddisk.h / ntddstor.h / mountmgr.h structures and IOCTL codes in their
//! Windows x64 layouts (sizes and offsets from the public headers, asserted
//! at compile time), and the builders the disk class driver and partition
//! manager use to answer disk IOCTLs. These move to `lib/wdk/src/disk.rs`
//! once lib/wdk exists (they are the driver-visible shapes).

use crate::gpt::{Gpt, Partition};
use crate::guid::Guid;
use alloc::vec::Vec;
use core::mem::{offset_of, size_of};

/// `CTL_CODE(DeviceType, Function, Method, Access)`.
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}
/// `FILE_DEVICE_DISK` (IOCTL_DISK_BASE).
pub const FILE_DEVICE_DISK: u32 = 0x07;
/// `FILE_DEVICE_MASS_STORAGE` (IOCTL_STORAGE_BASE).
pub const FILE_DEVICE_MASS_STORAGE: u32 = 0x2D;
/// `MOUNTDEVCONTROLTYPE` ('M').
pub const MOUNTDEVCONTROLTYPE: u32 = 0x4D;
/// `IOCTL_VOLUME_BASE` ('V').
pub const IOCTL_VOLUME_BASE: u32 = 0x56;
const METHOD_BUFFERED: u32 = 0;
const FILE_ANY_ACCESS: u32 = 0;
const FILE_READ_ACCESS: u32 = 1;

/// `IOCTL_DISK_GET_DRIVE_GEOMETRY` (0x70000).
pub const IOCTL_DISK_GET_DRIVE_GEOMETRY: u32 =
    ctl_code(FILE_DEVICE_DISK, 0x0000, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// `IOCTL_DISK_GET_PARTITION_INFO_EX` (0x70048).
pub const IOCTL_DISK_GET_PARTITION_INFO_EX: u32 =
    ctl_code(FILE_DEVICE_DISK, 0x0012, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// `IOCTL_DISK_GET_DRIVE_LAYOUT_EX` (0x70050).
pub const IOCTL_DISK_GET_DRIVE_LAYOUT_EX: u32 =
    ctl_code(FILE_DEVICE_DISK, 0x0014, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// `IOCTL_DISK_GET_LENGTH_INFO` (0x7405C).
pub const IOCTL_DISK_GET_LENGTH_INFO: u32 =
    ctl_code(FILE_DEVICE_DISK, 0x0017, METHOD_BUFFERED, FILE_READ_ACCESS);
/// `IOCTL_DISK_GET_DRIVE_GEOMETRY_EX` (0x700A0).
pub const IOCTL_DISK_GET_DRIVE_GEOMETRY_EX: u32 =
    ctl_code(FILE_DEVICE_DISK, 0x0028, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// `IOCTL_STORAGE_GET_DEVICE_NUMBER` (0x2D1080).
pub const IOCTL_STORAGE_GET_DEVICE_NUMBER: u32 = ctl_code(
    FILE_DEVICE_MASS_STORAGE,
    0x0420,
    METHOD_BUFFERED,
    FILE_ANY_ACCESS,
);
/// `IOCTL_MOUNTDEV_QUERY_UNIQUE_ID` (0x4D0000).
pub const IOCTL_MOUNTDEV_QUERY_UNIQUE_ID: u32 =
    ctl_code(MOUNTDEVCONTROLTYPE, 0, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// `IOCTL_MOUNTDEV_QUERY_DEVICE_NAME` (0x4D0008).
pub const IOCTL_MOUNTDEV_QUERY_DEVICE_NAME: u32 =
    ctl_code(MOUNTDEVCONTROLTYPE, 2, METHOD_BUFFERED, FILE_ANY_ACCESS);
/// `IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS` (0x560000).
pub const IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS: u32 =
    ctl_code(IOCTL_VOLUME_BASE, 0, METHOD_BUFFERED, FILE_ANY_ACCESS);

/// `PARTITION_STYLE_MBR`.
pub const PARTITION_STYLE_MBR: u32 = 0;
/// `PARTITION_STYLE_GPT`.
pub const PARTITION_STYLE_GPT: u32 = 1;
/// `PARTITION_STYLE_RAW`.
pub const PARTITION_STYLE_RAW: u32 = 2;
/// `MEDIA_TYPE::FixedMedia`.
pub const FIXED_MEDIA: u32 = 12;
/// `FILE_DEVICE_DISK` as `STORAGE_DEVICE_NUMBER.DeviceType`.
pub const DEVICE_TYPE_DISK: u32 = FILE_DEVICE_DISK;

/// `DISK_GEOMETRY` (0x18 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskGeometry {
    /// `Cylinders` (LARGE_INTEGER).
    pub cylinders: i64,
    /// `MediaType`.
    pub media_type: u32,
    /// `TracksPerCylinder`.
    pub tracks_per_cylinder: u32,
    /// `SectorsPerTrack`.
    pub sectors_per_track: u32,
    /// `BytesPerSector`.
    pub bytes_per_sector: u32,
}

/// `DISK_PARTITION_INFO` (0x18 bytes), GPT arm.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskPartitionInfo {
    /// `SizeOfPartitionInfo`.
    pub size_of_partition_info: u32,
    /// `PartitionStyle`.
    pub partition_style: u32,
    /// `Gpt.DiskId` (the MBR arm's Signature/CheckSum overlay its first 8 bytes).
    pub disk_id: Guid,
}

/// `DISK_DETECTION_INFO` (0x38 bytes). ntrs reports `DetectNone` (0): there
/// is no BIOS INT 13 on a UEFI machine.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskDetectionInfo {
    /// `SizeOfDetectInfo`.
    pub size_of_detect_info: u32,
    /// `DetectionType`.
    pub detection_type: u32,
    /// The `DISK_INT13_INFO` + `DISK_EX_INT13_INFO` union, zero.
    pub int13: [u64; 6],
}

/// `DISK_GEOMETRY_EX` with its variable `Data` as disk.sys fills it:
/// `DISK_PARTITION_INFO` then `DISK_DETECTION_INFO` (0x70 bytes in all;
/// `sizeof(DISK_GEOMETRY_EX)` in the header is 0x28 because `Data` is
/// declared as one byte).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskGeometryEx {
    /// `Geometry`.
    pub geometry: DiskGeometry,
    /// `DiskSize` in bytes.
    pub disk_size: i64,
    /// `Data`: partition info.
    pub partition: DiskPartitionInfo,
    /// `Data`: detection info.
    pub detection: DiskDetectionInfo,
}

/// `FIELD_OFFSET(DISK_GEOMETRY_EX, Data)`: the least output buffer.
pub const DISK_GEOMETRY_EX_DATA_OFFSET: usize = 0x20;

/// `PARTITION_INFORMATION_GPT` (0x70 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionInformationGpt {
    /// `PartitionType`.
    pub partition_type: Guid,
    /// `PartitionId`.
    pub partition_id: Guid,
    /// `Attributes`.
    pub attributes: u64,
    /// `Name[36]`.
    pub name: [u16; 36],
}

/// `PARTITION_INFORMATION_EX` (0x90 bytes), GPT arm of the union.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionInformationEx {
    /// `PartitionStyle`.
    pub partition_style: u32,
    /// Padding before `StartingOffset`.
    pub _pad: u32,
    /// `StartingOffset` in bytes.
    pub starting_offset: i64,
    /// `PartitionLength` in bytes.
    pub partition_length: i64,
    /// `PartitionNumber`.
    pub partition_number: u32,
    /// `RewritePartition`.
    pub rewrite_partition: u8,
    /// `IsServicePartition`.
    pub is_service_partition: u8,
    /// Padding before the union.
    pub _pad2: [u8; 2],
    /// `Gpt`.
    pub gpt: PartitionInformationGpt,
}

/// `DRIVE_LAYOUT_INFORMATION_GPT` (0x28 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriveLayoutInformationGpt {
    /// `DiskId`.
    pub disk_id: Guid,
    /// `StartingUsableOffset`.
    pub starting_usable_offset: i64,
    /// `UsableLength`.
    pub usable_length: i64,
    /// `MaxPartitionCount`.
    pub max_partition_count: u32,
    /// Padding.
    pub _pad: u32,
}

/// The fixed part of `DRIVE_LAYOUT_INFORMATION_EX` (0x30 bytes);
/// `PartitionEntry[PartitionCount]` follows.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriveLayoutInformationExHeader {
    /// `PartitionStyle`.
    pub partition_style: u32,
    /// `PartitionCount`.
    pub partition_count: u32,
    /// `Gpt`.
    pub gpt: DriveLayoutInformationGpt,
}

/// `GET_LENGTH_INFORMATION` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetLengthInformation {
    /// `Length` in bytes.
    pub length: i64,
}

/// `STORAGE_DEVICE_NUMBER` (0xC bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageDeviceNumber {
    /// `DeviceType`.
    pub device_type: u32,
    /// `DeviceNumber` (the N of HarddiskN).
    pub device_number: u32,
    /// `PartitionNumber` (0 for the whole disk).
    pub partition_number: u32,
}

const _: () = {
    assert!(size_of::<DiskGeometry>() == 0x18);
    assert!(size_of::<DiskPartitionInfo>() == 0x18);
    assert!(size_of::<DiskDetectionInfo>() == 0x38);
    assert!(offset_of!(DiskGeometryEx, disk_size) == 0x18);
    assert!(offset_of!(DiskGeometryEx, partition) == DISK_GEOMETRY_EX_DATA_OFFSET);
    assert!(size_of::<DiskGeometryEx>() == 0x70);
    assert!(size_of::<PartitionInformationGpt>() == 0x70);
    assert!(offset_of!(PartitionInformationEx, starting_offset) == 0x08);
    assert!(offset_of!(PartitionInformationEx, partition_number) == 0x18);
    assert!(offset_of!(PartitionInformationEx, is_service_partition) == 0x1D);
    assert!(offset_of!(PartitionInformationEx, gpt) == 0x20);
    assert!(size_of::<PartitionInformationEx>() == 0x90);
    assert!(size_of::<DriveLayoutInformationGpt>() == 0x28);
    assert!(size_of::<DriveLayoutInformationExHeader>() == 0x30);
    assert!(size_of::<StorageDeviceNumber>() == 0xC);
};

/// The disk geometry disk.sys reports for a disk of `sectors` sectors: a
/// made-up CHS with 255 heads and 63 sectors per track, cylinders rounded
/// down, as Windows reports for fixed disks with no BIOS geometry.
pub fn geometry(sectors: u64, bytes_per_sector: u32) -> DiskGeometry {
    DiskGeometry {
        cylinders: (sectors / (255 * 63)) as i64,
        media_type: FIXED_MEDIA,
        tracks_per_cylinder: 255,
        sectors_per_track: 63,
        bytes_per_sector,
    }
}

/// `DISK_GEOMETRY_EX` for a GPT disk (or raw when `gpt` is `None`).
pub fn geometry_ex(sectors: u64, bytes_per_sector: u32, gpt: Option<&Gpt>) -> DiskGeometryEx {
    DiskGeometryEx {
        geometry: geometry(sectors, bytes_per_sector),
        disk_size: (sectors * bytes_per_sector as u64) as i64,
        partition: DiskPartitionInfo {
            size_of_partition_info: size_of::<DiskPartitionInfo>() as u32,
            partition_style: if gpt.is_some() {
                PARTITION_STYLE_GPT
            } else {
                PARTITION_STYLE_RAW
            },
            disk_id: gpt.map(|g| g.header.disk_guid).unwrap_or_default(),
        },
        detection: DiskDetectionInfo {
            size_of_detect_info: size_of::<DiskDetectionInfo>() as u32,
            detection_type: 0,
            int13: [0; 6],
        },
    }
}

/// `PARTITION_INFORMATION_EX` of one GPT partition.
pub fn partition_info(p: &Partition, sector_size: u32) -> PartitionInformationEx {
    PartitionInformationEx {
        partition_style: PARTITION_STYLE_GPT,
        _pad: 0,
        starting_offset: (p.first_lba * sector_size as u64) as i64,
        partition_length: (p.sectors() * sector_size as u64) as i64,
        partition_number: p.number,
        rewrite_partition: 0,
        is_service_partition: 0,
        _pad2: [0; 2],
        gpt: PartitionInformationGpt {
            partition_type: p.type_guid,
            partition_id: p.unique_guid,
            attributes: p.attributes,
            name: p.name,
        },
    }
}

/// `PARTITION_INFORMATION_EX` of the whole disk (partition 0), as disk.sys
/// answers it on `DR0`: offset 0, the disk's length.
pub fn whole_disk_info(gpt: Option<&Gpt>, length: u64) -> PartitionInformationEx {
    PartitionInformationEx {
        partition_style: if gpt.is_some() {
            PARTITION_STYLE_GPT
        } else {
            PARTITION_STYLE_RAW
        },
        _pad: 0,
        starting_offset: 0,
        partition_length: length as i64,
        partition_number: 0,
        rewrite_partition: 0,
        is_service_partition: 0,
        _pad2: [0; 2],
        gpt: PartitionInformationGpt {
            partition_type: Guid::NULL,
            partition_id: Guid::NULL,
            attributes: 0,
            name: [0; 36],
        },
    }
}

/// Views a plain-old-data `repr(C)` value as its bytes.
pub fn as_bytes<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: every T here is a repr(C) struct of integers and byte arrays
    // with explicit padding fields, so all size_of::<T>() bytes are
    // initialized; the slice borrows `v`.
    unsafe { core::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
}

/// The bytes of `DRIVE_LAYOUT_INFORMATION_EX` for a GPT disk (header then
/// one `PARTITION_INFORMATION_EX` per used entry).
pub fn drive_layout_ex(gpt: &Gpt) -> Vec<u8> {
    let ss = gpt.sector_size as u64;
    let h = DriveLayoutInformationExHeader {
        partition_style: PARTITION_STYLE_GPT,
        partition_count: gpt.partitions.len() as u32,
        gpt: DriveLayoutInformationGpt {
            disk_id: gpt.header.disk_guid,
            starting_usable_offset: (gpt.header.first_usable_lba * ss) as i64,
            usable_length: ((gpt.header.last_usable_lba - gpt.header.first_usable_lba + 1) * ss)
                as i64,
            max_partition_count: gpt.header.entry_count,
            _pad: 0,
        },
    };
    let mut out = Vec::from(as_bytes(&h));
    for p in &gpt.partitions {
        out.extend_from_slice(as_bytes(&partition_info(p, gpt.sector_size)));
    }
    out
}

/// How much of a variable-size answer fits: Windows' disk IOCTLs fail with
/// `STATUS_BUFFER_TOO_SMALL` when the fixed part does not fit and complete
/// with `STATUS_BUFFER_OVERFLOW` (and the part that fits) when only the
/// array is cut short.
pub fn fit(answer: &[u8], fixed: usize, out_len: usize) -> Result<(usize, bool), nt::NtStatus> {
    if out_len < fixed {
        return Err(nt::status::STATUS_BUFFER_TOO_SMALL);
    }
    Ok((answer.len().min(out_len), out_len >= answer.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::{self, SliceSource};

    #[test]
    fn ioctl_codes_are_windows_values() {
        assert_eq!(IOCTL_DISK_GET_DRIVE_GEOMETRY, 0x0007_0000);
        assert_eq!(IOCTL_DISK_GET_PARTITION_INFO_EX, 0x0007_0048);
        assert_eq!(IOCTL_DISK_GET_DRIVE_LAYOUT_EX, 0x0007_0050);
        assert_eq!(IOCTL_DISK_GET_LENGTH_INFO, 0x0007_405C);
        assert_eq!(IOCTL_DISK_GET_DRIVE_GEOMETRY_EX, 0x0007_00A0);
        assert_eq!(IOCTL_STORAGE_GET_DEVICE_NUMBER, 0x002D_1080);
        assert_eq!(IOCTL_MOUNTDEV_QUERY_UNIQUE_ID, 0x004D_0000);
        assert_eq!(IOCTL_MOUNTDEV_QUERY_DEVICE_NAME, 0x004D_0008);
        assert_eq!(IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS, 0x0056_0000);
    }

    #[test]
    fn layout_of_a_gpt_disk() {
        let (img, _, _) = gpt::tests::build_image();
        let total = img.len() as u64 / 512;
        let g = gpt::read(
            &mut SliceSource {
                data: &img,
                sector_size: 512,
            },
            512,
            total,
        )
        .unwrap();
        let l = drive_layout_ex(&g);
        assert_eq!(l.len(), 0x30 + 2 * 0x90);
        assert_eq!(
            u32::from_le_bytes(l[0..4].try_into().unwrap()),
            PARTITION_STYLE_GPT
        );
        assert_eq!(u32::from_le_bytes(l[4..8].try_into().unwrap()), 2);
        assert_eq!(&l[8..24], &g.header.disk_guid.to_bytes());
        // Second entry: PartitionNumber 2, PartitionId at 0x30+0x90+0x30.
        let e = 0x30 + 0x90;
        assert_eq!(
            u32::from_le_bytes(l[e + 0x18..e + 0x1C].try_into().unwrap()),
            2
        );
        assert_eq!(
            &l[e + 0x30..e + 0x40],
            &g.partitions[1].unique_guid.to_bytes()
        );
        let start = i64::from_le_bytes(l[e + 8..e + 16].try_into().unwrap());
        assert_eq!(start as u64, g.partitions[1].first_lba * 512);
        let ge = geometry_ex(total, 512, Some(&g));
        assert_eq!(ge.disk_size as u64, img.len() as u64);
        assert_eq!(ge.partition.disk_id, g.header.disk_guid);
        assert_eq!(fit(&l, 0x30, 0x30 + 0x90), Ok((0xC0, false)));
        assert_eq!(
            fit(&l, 0x30, 0x10),
            Err(nt::status::STATUS_BUFFER_TOO_SMALL)
        );
        assert_eq!(fit(&l, 0x30, 0x1000), Ok((l.len(), true)));
    }
}
