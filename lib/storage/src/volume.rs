//! What volmgr.sys answers for a basic volume (one GPT partition): the
//! `MOUNTDEV_NAME`/`MOUNTDEV_UNIQUE_ID` buffers (a u16 length then the
//! bytes), `VOLUME_DISK_EXTENTS`, the volume's PnP instance ID, and the
//! read/write translation from a volume offset to a disk offset.

use crate::guid::Guid;
use crate::request;
use alloc::format;
use alloc::string::String;
use nt::status::*;
use nt::NtStatus;
use wdk::disk::GUID;
use wdk::mountdev::{DISK_EXTENT, VOLUME_DISK_EXTENTS};

impl From<GUID> for Guid {
    fn from(g: GUID) -> Guid {
        Guid {
            data1: g.Data1,
            data2: g.Data2,
            data3: g.Data3,
            data4: g.Data4,
        }
    }
}

/// A `MOUNTDEV_NAME` / `MOUNTDEV_UNIQUE_ID` / `MOUNTDEV_SUGGESTED_LINK_NAME`
/// style answer into `out`: the u16 length then `data`. A buffer that holds
/// only the length gets it with `STATUS_BUFFER_OVERFLOW` (the mount manager
/// asks again with the size), one too small for the length is
/// `STATUS_INVALID_PARAMETER`, as the WDK's volume samples answer.
/// Returns (status, `Information`).
pub fn mountdev_answer(data: &[u8], out: &mut [u8]) -> (NtStatus, usize) {
    if out.len() < 2 {
        return (STATUS_INVALID_PARAMETER, 0);
    }
    let Ok(len) = u16::try_from(data.len()) else {
        return (STATUS_INVALID_PARAMETER, 0);
    };
    out[..2].copy_from_slice(&len.to_le_bytes());
    if out.len() < 2 + data.len() {
        return (STATUS_BUFFER_OVERFLOW, 2);
    }
    out[2..2 + data.len()].copy_from_slice(data);
    (STATUS_SUCCESS, 2 + data.len())
}

/// `VOLUME_DISK_EXTENTS` of a volume that is one extent of disk `disk`.
pub fn disk_extents(disk: u32, offset: i64, length: i64) -> VOLUME_DISK_EXTENTS {
    VOLUME_DISK_EXTENTS {
        NumberOfDiskExtents: 1,
        _Pad: 0,
        Extents: [DISK_EXTENT {
            DiskNumber: disk,
            _Pad: 0,
            StartingOffset: offset,
            ExtentLength: length,
        }],
    }
}

/// The PnP device ID of volumes volmgr enumerates.
pub const VOLUME_DEVICE_ID: &str = "STORAGE\\Volume";

/// A basic volume's instance ID: `{<disk GUID>}#<starting offset as 16 hex
/// digits>` (the shape of Windows' `STORAGE\Volume` instance IDs; which
/// GUID Windows puts there is not documented, ntrs uses the GPT disk GUID).
pub fn volume_instance_id(disk_guid: &Guid, offset: u64) -> String {
    format!("{{{disk_guid}}}#{offset:016X}")
}

/// A volume read or write of `length` bytes at volume byte `offset`,
/// checked against the volume's extent (`STATUS_INVALID_PARAMETER` for an
/// unaligned or out-of-extent request, as `request::check`): the disk
/// byte offset to send it to.
pub fn translate(
    offset: i64,
    length: u64,
    sector_size: u32,
    start: i64,
    extent: i64,
) -> Result<i64, NtStatus> {
    if start < 0
        || extent < 0
        || sector_size == 0
        || !(start as u64).is_multiple_of(sector_size as u64)
    {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let t = request::check(
        offset,
        length,
        sector_size,
        start as u64 / sector_size as u64,
        extent as u64,
        false,
    )?;
    t.lba
        .checked_mul(sector_size as u64)
        .filter(|&o| o <= i64::MAX as u64)
        .map(|o| o as i64)
        .ok_or(STATUS_INVALID_PARAMETER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountdev_buffers() {
        let mut out = [0u8; 10];
        assert_eq!(mountdev_answer(b"abcd", &mut out), (STATUS_SUCCESS, 6));
        assert_eq!(&out[..6], &[4, 0, b'a', b'b', b'c', b'd']);
        let mut short = [0u8; 3];
        assert_eq!(
            mountdev_answer(b"abcd", &mut short),
            (STATUS_BUFFER_OVERFLOW, 2)
        );
        assert_eq!(&short[..2], &[4, 0]);
        assert_eq!(
            mountdev_answer(b"abcd", &mut [0u8; 1]),
            (STATUS_INVALID_PARAMETER, 0)
        );
        assert_eq!(
            mountdev_answer(&[0u8; 70000], &mut out).0,
            STATUS_INVALID_PARAMETER
        );
    }

    #[test]
    fn extents_and_ids() {
        let e = disk_extents(0, 0x10_0000, 0x400_0000);
        assert_eq!(e.NumberOfDiskExtents, 1);
        assert_eq!(e.Extents[0].StartingOffset, 0x10_0000);
        let g = Guid::parse("01234567-89ab-cdef-0123-456789abcdef").unwrap();
        assert_eq!(
            volume_instance_id(&g, 0x10_0000),
            "{01234567-89ab-cdef-0123-456789abcdef}#0000000000100000"
        );
        let w: GUID = g.into();
        assert_eq!(Guid::from(w), g);
    }

    #[test]
    fn translation_is_checked() {
        // A 1 MiB volume at 2 MiB on a 512-byte-sector disk.
        let (start, len) = (2 << 20, 1 << 20);
        assert_eq!(translate(0, 512, 512, start, len), Ok(2 << 20));
        assert_eq!(translate(4096, 4096, 512, start, len), Ok((2 << 20) + 4096));
        assert_eq!(
            translate(len - 512, 512, 512, start, len),
            Ok(start + len - 512)
        );
        assert_eq!(
            translate(len, 512, 512, start, len),
            Err(STATUS_INVALID_PARAMETER)
        );
        assert_eq!(
            translate(len - 512, 1024, 512, start, len),
            Err(STATUS_INVALID_PARAMETER)
        );
        assert_eq!(
            translate(1, 512, 512, start, len),
            Err(STATUS_INVALID_PARAMETER)
        );
        assert_eq!(
            translate(0, 100, 512, start, len),
            Err(STATUS_INVALID_PARAMETER)
        );
        assert_eq!(
            translate(-512, 512, 512, start, len),
            Err(STATUS_INVALID_PARAMETER)
        );
        assert_eq!(
            translate(i64::MAX - 511, 512, 512, start, len),
            Err(STATUS_INVALID_PARAMETER)
        );
        assert_eq!(
            translate(0, 512, 0, start, len),
            Err(STATUS_INVALID_PARAMETER)
        );
        assert_eq!(translate(0, 0, 512, start, len), Ok(start));
    }
    #[test]
    fn well_known_guids_read_as_documented() {
        use alloc::string::ToString;
        use wdk::mountdev::*;
        use wdk::pnpnotify::*;
        let text = |g: GUID| Guid::from(g).to_string();
        assert_eq!(
            text(GUID_DEVINTERFACE_VOLUME),
            "53f5630d-b6bf-11d0-94f2-00a0c91efb8b"
        );
        assert_eq!(
            text(MOUNTDEV_MOUNTED_DEVICE_GUID),
            "53f5630d-b6bf-11d0-94f2-00a0c91efb8b"
        );
        assert_eq!(
            text(GUID_DEVINTERFACE_DISK),
            "53f56307-b6bf-11d0-94f2-00a0c91efb8b"
        );
        assert_eq!(
            text(GUID_DEVINTERFACE_PARTITION),
            "53f5630a-b6bf-11d0-94f2-00a0c91efb8b"
        );
        assert_eq!(
            text(GUID_DEVCLASS_DISKDRIVE),
            "4d36e967-e325-11ce-bfc1-08002be10318"
        );
        assert_eq!(
            text(GUID_DEVICE_INTERFACE_ARRIVAL),
            "cb3a4004-46f0-11d0-b08f-00609713053f"
        );
        assert_eq!(
            text(GUID_DEVICE_INTERFACE_REMOVAL),
            "cb3a4005-46f0-11d0-b08f-00609713053f"
        );
    }
}
