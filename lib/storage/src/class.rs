//! The disk class driver's IOCTL answers for a whole disk
//! (`\Device\HarddiskN\DR N`), what disk.sys runs: geometry, length,
//! partition and layout information from the GPT read at start, the device
//! number, and `IOCTL_STORAGE_QUERY_PROPERTY`'s device descriptor built from
//! INQUIRY data (vendor, product, revision) and the unit serial number. All
//! METHOD_BUFFERED: `input` and `out` are the system buffer's views.

use crate::disk::{self as dk, as_bytes};
use crate::gpt::Gpt;
use alloc::vec::Vec;
use core::mem::size_of;
use nt::status::*;
use nt::NtStatus;
use wdk::scsi::*;

/// What the class driver knows about its disk.
pub struct DiskInfo {
    /// N of HarddiskN.
    pub number: u32,
    /// Sectors (READ CAPACITY's last LBA + 1).
    pub sectors: u64,
    /// Bytes per sector.
    pub sector_size: u32,
    /// The partition table read at start (None: not GPT, or unreadable).
    pub gpt: Option<Gpt>,
    /// Standard INQUIRY data.
    pub inquiry: [u8; INQUIRYDATABUFFERSIZE],
    /// VPD page 0x80's serial number (may be empty).
    pub serial: Vec<u8>,
}

/// Copies as much of `answer` as fits when `out` holds at least `fixed`
/// bytes, else `STATUS_BUFFER_TOO_SMALL`.
pub fn answer_fixed(answer: &[u8], fixed: usize, out: &mut [u8]) -> (NtStatus, usize) {
    match dk::fit(answer, fixed, out.len()) {
        Err(s) => (s, 0),
        Ok((n, _)) => {
            out[..n].copy_from_slice(&answer[..n]);
            (STATUS_SUCCESS, n)
        }
    }
}

/// `STORAGE_DEVICE_DESCRIPTOR` with NUL-terminated vendor, product,
/// revision and serial strings after it (bus type SATA, fixed, no queueing).
pub fn device_descriptor(inquiry: &[u8; INQUIRYDATABUFFERSIZE], serial: &[u8]) -> Vec<u8> {
    let head = size_of::<STORAGE_DEVICE_DESCRIPTOR>();
    let mut strings: Vec<u8> = Vec::new();
    let mut put = |s: &[u8]| {
        let off = (head + strings.len()) as u32;
        strings.extend_from_slice(s);
        strings.push(0);
        off
    };
    let vendor = put(&inquiry[8..16]);
    let product = put(&inquiry[16..32]);
    let rev = put(&inquiry[32..36]);
    let ser = if serial.is_empty() { 0 } else { put(serial) };
    let d = STORAGE_DEVICE_DESCRIPTOR {
        Version: head as u32,
        Size: (head + strings.len()) as u32,
        DeviceType: inquiry[0] & 0x1F,
        DeviceTypeModifier: inquiry[1] & 0x7F,
        RemovableMedia: (inquiry[1] & 0x80 != 0) as u8,
        CommandQueueing: 0,
        VendorIdOffset: vendor,
        ProductIdOffset: product,
        ProductRevisionOffset: rev,
        SerialNumberOffset: ser,
        BusType: BusTypeSata,
        RawPropertiesLength: 0,
        RawDeviceProperties: [0],
    };
    let mut v = as_bytes(&d).to_vec();
    v.truncate(head);
    v.extend_from_slice(&strings);
    v
}

/// `STORAGE_ADAPTER_DESCRIPTOR` of an AHCI port: the largest transfer and
/// scatter/gather pages, word alignment, DMA, SATA.
pub fn adapter_descriptor(max_transfer: u32, max_pages: u32) -> STORAGE_ADAPTER_DESCRIPTOR {
    STORAGE_ADAPTER_DESCRIPTOR {
        Version: size_of::<STORAGE_ADAPTER_DESCRIPTOR>() as u32,
        Size: size_of::<STORAGE_ADAPTER_DESCRIPTOR>() as u32,
        MaximumTransferLength: max_transfer,
        MaximumPhysicalPages: max_pages,
        AlignmentMask: 1,
        AdapterUsesPio: 0,
        AdapterScansDown: 0,
        CommandQueueing: 0,
        AcceleratedTransfer: 0,
        BusType: BusTypeSata as u8,
        BusMajorVersion: 0,
        BusMinorVersion: 0,
        SrbType: 0,
        AddressType: 0,
    }
}

/// The (PropertyId, QueryType) of a `STORAGE_PROPERTY_QUERY` input.
pub fn property_query(input: &[u8]) -> Option<(u32, u32)> {
    if input.len() < 8 {
        return None;
    }
    Some((
        u32::from_le_bytes(input[0..4].try_into().ok()?),
        u32::from_le_bytes(input[4..8].try_into().ok()?),
    ))
}

impl DiskInfo {
    /// Bytes on the disk.
    pub fn bytes(&self) -> u64 {
        self.sectors * self.sector_size as u64
    }

    /// `IRP_MJ_DEVICE_CONTROL` on the disk: status and `Information`.
    pub fn ioctl(&self, code: u32, input: &[u8], out: &mut [u8]) -> (NtStatus, usize) {
        let ss = self.sector_size;
        let gpt = self.gpt.as_ref();
        match code {
            dk::IOCTL_DISK_GET_DRIVE_GEOMETRY => {
                let g = dk::geometry(self.sectors, ss);
                answer_fixed(as_bytes(&g), as_bytes(&g).len(), out)
            }
            dk::IOCTL_DISK_GET_DRIVE_GEOMETRY_EX => {
                let g = dk::geometry_ex(self.sectors, ss, gpt);
                answer_fixed(as_bytes(&g), dk::DISK_GEOMETRY_EX_DATA_OFFSET, out)
            }
            dk::IOCTL_DISK_GET_PARTITION_INFO_EX => {
                let p = dk::whole_disk_info(gpt, self.bytes());
                answer_fixed(as_bytes(&p), as_bytes(&p).len(), out)
            }
            dk::IOCTL_DISK_GET_DRIVE_LAYOUT_EX => match gpt {
                Some(g) => {
                    let l = dk::drive_layout_ex(g);
                    answer_fixed(&l, l.len(), out)
                }
                None => (STATUS_UNRECOGNIZED_MEDIA, 0),
            },
            dk::IOCTL_DISK_GET_LENGTH_INFO => {
                let l = dk::GET_LENGTH_INFORMATION {
                    Length: self.bytes() as i64,
                };
                answer_fixed(as_bytes(&l), 8, out)
            }
            dk::IOCTL_STORAGE_GET_DEVICE_NUMBER => {
                let n = dk::STORAGE_DEVICE_NUMBER {
                    DeviceType: wdk::consts::FILE_DEVICE_DISK,
                    DeviceNumber: self.number,
                    PartitionNumber: 0,
                };
                answer_fixed(as_bytes(&n), 12, out)
            }
            IOCTL_STORAGE_QUERY_PROPERTY => match property_query(input) {
                Some((id, q)) if id == StorageDeviceProperty && q == PropertyExistsQuery => {
                    (STATUS_SUCCESS, 0)
                }
                Some((id, q)) if id == StorageDeviceProperty && q == PropertyStandardQuery => {
                    let d = device_descriptor(&self.inquiry, &self.serial);
                    // At least the header (Version, Size) or nothing.
                    answer_fixed(&d, 8, out)
                }
                Some(_) => (STATUS_NOT_SUPPORTED, 0),
                None => (STATUS_INVALID_PARAMETER, 0),
            },
            _ => (STATUS_INVALID_DEVICE_REQUEST, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> DiskInfo {
        let id = crate::ahci::Identify {
            model: "QEMU HARDDISK".into(),
            serial: "QM00001".into(),
            firmware: "2.5+".into(),
            lba48: true,
            sectors: 2048,
            sector_size: 512,
        };
        DiskInfo {
            number: 3,
            sectors: 2048,
            sector_size: 512,
            gpt: None,
            inquiry: crate::scsi::inquiry_data(&id),
            serial: b"QM00001".to_vec(),
        }
    }

    #[test]
    fn lengths_numbers_and_unknown_codes() {
        let d = info();
        let mut out = [0u8; 64];
        assert_eq!(
            d.ioctl(dk::IOCTL_DISK_GET_LENGTH_INFO, &[], &mut out),
            (STATUS_SUCCESS, 8)
        );
        assert_eq!(i64::from_le_bytes(out[..8].try_into().unwrap()), 2048 * 512);
        assert_eq!(
            d.ioctl(dk::IOCTL_STORAGE_GET_DEVICE_NUMBER, &[], &mut out),
            (STATUS_SUCCESS, 12)
        );
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()), 3);
        assert_eq!(
            d.ioctl(dk::IOCTL_DISK_GET_DRIVE_LAYOUT_EX, &[], &mut out).0,
            STATUS_UNRECOGNIZED_MEDIA
        );
        assert_eq!(
            d.ioctl(dk::IOCTL_DISK_GET_LENGTH_INFO, &[], &mut out[..4])
                .0,
            STATUS_BUFFER_TOO_SMALL
        );
        assert_eq!(
            d.ioctl(0x1234, &[], &mut out).0,
            STATUS_INVALID_DEVICE_REQUEST
        );
    }

    #[test]
    fn device_descriptor_strings() {
        let d = info();
        let mut q = [0u8; 12];
        q[0..4].copy_from_slice(&StorageDeviceProperty.to_le_bytes());
        let mut out = [0u8; 256];
        let (s, n) = d.ioctl(IOCTL_STORAGE_QUERY_PROPERTY, &q, &mut out);
        assert_eq!(s, STATUS_SUCCESS);
        let size = u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize;
        assert_eq!(n, size);
        let at = |off: usize| {
            let o = u32::from_le_bytes(out[off..off + 4].try_into().unwrap()) as usize;
            let end = out[o..].iter().position(|&b| b == 0).unwrap();
            alloc::string::String::from_utf8_lossy(&out[o..o + end]).into_owned()
        };
        assert_eq!(at(12), "QEMU    ");
        assert_eq!(at(16), "HARDDISK        ");
        assert_eq!(at(20), "2.5+");
        assert_eq!(at(24), "QM00001");
        assert_eq!(
            u32::from_le_bytes(out[28..32].try_into().unwrap()),
            BusTypeSata
        );
        // Header-only buffer: Version and Size, the caller learns the size.
        let mut small = [0u8; 8];
        assert_eq!(
            d.ioctl(IOCTL_STORAGE_QUERY_PROPERTY, &q, &mut small),
            (STATUS_SUCCESS, 8)
        );
        assert_eq!(
            u32::from_le_bytes(small[4..8].try_into().unwrap()) as usize,
            size
        );
        assert_eq!(
            d.ioctl(IOCTL_STORAGE_QUERY_PROPERTY, &q, &mut small[..4]).0,
            STATUS_BUFFER_TOO_SMALL
        );
        // Exists query, another property, a short input.
        q[4..8].copy_from_slice(&PropertyExistsQuery.to_le_bytes());
        assert_eq!(
            d.ioctl(IOCTL_STORAGE_QUERY_PROPERTY, &q, &mut out),
            (STATUS_SUCCESS, 0)
        );
        q[0..4].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(
            d.ioctl(IOCTL_STORAGE_QUERY_PROPERTY, &q, &mut out).0,
            STATUS_NOT_SUPPORTED
        );
        assert_eq!(
            d.ioctl(IOCTL_STORAGE_QUERY_PROPERTY, &q[..4], &mut out).0,
            STATUS_INVALID_PARAMETER
        );
        let a = adapter_descriptor(31 * 4096, 32);
        assert_eq!((a.MaximumTransferLength, a.AlignmentMask), (31 * 4096, 1));
    }
}
