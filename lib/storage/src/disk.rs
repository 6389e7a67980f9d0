//! The answers the disk class driver and partition manager give to disk
//! IOCTLs, built as the ntdddisk.h structures of `wdk::disk` (their layouts
//! and IOCTL codes live there).

use crate::gpt::{Gpt, Partition};
use crate::guid::Guid;
use alloc::vec::Vec;
use core::mem::size_of;
pub use wdk::disk::*;

impl From<Guid> for GUID {
    fn from(g: Guid) -> GUID {
        GUID {
            Data1: g.data1,
            Data2: g.data2,
            Data3: g.data3,
            Data4: g.data4,
        }
    }
}

/// The disk geometry disk.sys reports for a fixed disk of `sectors`
/// sectors: 255 heads, 63 sectors per track, cylinders rounded down.
pub fn geometry(sectors: u64, bytes_per_sector: u32) -> DISK_GEOMETRY {
    DISK_GEOMETRY {
        Cylinders: (sectors / (255 * 63)) as i64,
        MediaType: FixedMedia,
        TracksPerCylinder: 255,
        SectorsPerTrack: 63,
        BytesPerSector: bytes_per_sector,
    }
}

/// `DISK_GEOMETRY_EX` for a GPT disk (raw when `gpt` is `None`). Detection
/// info is `DetectNone`: a UEFI machine has no INT 13 drive parameters.
pub fn geometry_ex(sectors: u64, bytes_per_sector: u32, gpt: Option<&Gpt>) -> DISK_GEOMETRY_EX {
    DISK_GEOMETRY_EX {
        Geometry: geometry(sectors, bytes_per_sector),
        DiskSize: (sectors * bytes_per_sector as u64) as i64,
        Partition: DISK_PARTITION_INFO {
            SizeOfPartitionInfo: size_of::<DISK_PARTITION_INFO>() as u32,
            PartitionStyle: if gpt.is_some() {
                PARTITION_STYLE_GPT
            } else {
                PARTITION_STYLE_RAW
            },
            DiskId: gpt.map(|g| g.header.disk_guid.into()).unwrap_or_default(),
        },
        Detection: DISK_DETECTION_INFO {
            SizeOfDetectInfo: size_of::<DISK_DETECTION_INFO>() as u32,
            DetectionType: DetectNone,
            Int13: [0; 6],
        },
    }
}

/// `PARTITION_INFORMATION_EX` of one GPT partition.
pub fn partition_info(p: &Partition, sector_size: u32) -> PARTITION_INFORMATION_EX {
    PARTITION_INFORMATION_EX {
        PartitionStyle: PARTITION_STYLE_GPT,
        StartingOffset: (p.first_lba * sector_size as u64) as i64,
        PartitionLength: (p.sectors() * sector_size as u64) as i64,
        PartitionNumber: p.number,
        Gpt: PARTITION_INFORMATION_GPT {
            PartitionType: p.type_guid.into(),
            PartitionId: p.unique_guid.into(),
            Attributes: p.attributes,
            Name: p.name,
        },
        ..Default::default()
    }
}

/// `PARTITION_INFORMATION_EX` of the whole disk (partition 0), as disk.sys
/// answers it on `DR0`: offset 0, the disk's length, no GPT entry.
pub fn whole_disk_info(gpt: Option<&Gpt>, length: u64) -> PARTITION_INFORMATION_EX {
    PARTITION_INFORMATION_EX {
        PartitionStyle: if gpt.is_some() {
            PARTITION_STYLE_GPT
        } else {
            PARTITION_STYLE_RAW
        },
        PartitionLength: length as i64,
        ..Default::default()
    }
}

/// Views a plain-old-data `repr(C)` value as its bytes.
pub fn as_bytes<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: the types passed are the wdk::disk repr(C) structs, made of
    // integers and byte arrays with explicit padding fields, so all
    // size_of::<T>() bytes are initialized; the slice borrows `v`.
    unsafe { core::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
}

/// The bytes of `DRIVE_LAYOUT_INFORMATION_EX` for a GPT disk (header then
/// one `PARTITION_INFORMATION_EX` per used entry).
pub fn drive_layout_ex(gpt: &Gpt) -> Vec<u8> {
    let ss = gpt.sector_size as u64;
    let h = DRIVE_LAYOUT_INFORMATION_EX_HEADER {
        PartitionStyle: PARTITION_STYLE_GPT,
        PartitionCount: gpt.partitions.len() as u32,
        Gpt: DRIVE_LAYOUT_INFORMATION_GPT {
            DiskId: gpt.header.disk_guid.into(),
            StartingUsableOffset: (gpt.header.first_usable_lba * ss) as i64,
            UsableLength: ((gpt.header.last_usable_lba - gpt.header.first_usable_lba + 1) * ss)
                as i64,
            MaxPartitionCount: gpt.header.entry_count,
            _Pad: 0,
        },
    };
    let mut out = Vec::from(as_bytes(&h));
    for p in &gpt.partitions {
        out.extend_from_slice(as_bytes(&partition_info(p, gpt.sector_size)));
    }
    out
}

/// How much of a variable-size answer fits an output buffer of `out_len`:
/// `STATUS_BUFFER_TOO_SMALL` when the fixed part (`fixed` bytes) does not;
/// otherwise the bytes to copy and whether all of it fit (when not, the
/// request completes with `STATUS_BUFFER_OVERFLOW`).
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
        // Second entry: PartitionNumber 2, PartitionId at entry + 0x30.
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
        assert_eq!(ge.DiskSize as u64, img.len() as u64);
        assert_eq!(
            as_bytes(&ge.Partition.DiskId),
            &g.header.disk_guid.to_bytes()
        );
        assert_eq!(fit(&l, 0x30, 0x30 + 0x90), Ok((0xC0, false)));
        assert_eq!(
            fit(&l, 0x30, 0x10),
            Err(nt::status::STATUS_BUFFER_TOO_SMALL)
        );
        assert_eq!(fit(&l, 0x30, 0x1000), Ok((l.len(), true)));
        let w = whole_disk_info(Some(&g), img.len() as u64);
        assert_eq!(
            (w.PartitionNumber, w.PartitionLength as usize),
            (0, img.len())
        );
    }
}
