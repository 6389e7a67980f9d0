//! Read/write request checks the disk class driver and partition devices
//! apply before a transfer reaches the port driver, with the NTSTATUS
//! Windows' class driver completes bad requests with: a byte offset or length
//! that is not a multiple of the sector size, or a transfer reaching past the
//! end of the partition/disk, is `STATUS_INVALID_PARAMETER`; a request to a
//! removed disk is `STATUS_NO_SUCH_DEVICE`.

use nt::status::*;
use nt::NtStatus;

/// A checked transfer: absolute disk LBA and sector count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// First LBA on the disk.
    pub lba: u64,
    /// Sectors.
    pub sectors: u64,
}

/// Checks a read/write of `length` bytes at `offset` within an extent that
/// starts at disk LBA `start_lba` and is `extent_bytes` long.
pub fn check(
    offset: i64,
    length: u64,
    sector_size: u32,
    start_lba: u64,
    extent_bytes: u64,
    removed: bool,
) -> Result<Transfer, NtStatus> {
    if removed {
        return Err(STATUS_NO_SUCH_DEVICE);
    }
    let ss = sector_size as u64;
    if offset < 0 || !(offset as u64).is_multiple_of(ss) || !length.is_multiple_of(ss) {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let end = (offset as u64)
        .checked_add(length)
        .ok_or(STATUS_INVALID_PARAMETER)?;
    if end > extent_bytes {
        return Err(STATUS_INVALID_PARAMETER);
    }
    Ok(Transfer {
        lba: start_lba
            .checked_add(offset as u64 / ss)
            .ok_or(STATUS_INVALID_PARAMETER)?,
        sectors: length / ss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        let ok = check(4096, 8192, 512, 2048, 1 << 20, false).unwrap();
        assert_eq!(
            ok,
            Transfer {
                lba: 2056,
                sectors: 16
            }
        );
        assert_eq!(
            check(100, 512, 512, 0, 1 << 20, false),
            Err(STATUS_INVALID_PARAMETER)
        );
        assert_eq!(
            check(0, 100, 512, 0, 1 << 20, false),
            Err(STATUS_INVALID_PARAMETER)
        );
        assert_eq!(
            check(-512, 512, 512, 0, 1 << 20, false),
            Err(STATUS_INVALID_PARAMETER)
        );
        assert_eq!(
            check((1 << 20) - 512, 1024, 512, 0, 1 << 20, false),
            Err(STATUS_INVALID_PARAMETER)
        );
        assert_eq!(
            check(i64::MAX - 511, u64::MAX - 511, 512, 0, u64::MAX, false),
            Err(STATUS_INVALID_PARAMETER)
        );
        assert!(check((1 << 20) - 512, 512, 512, 0, 1 << 20, false).is_ok());
        assert_eq!(
            check(0, 512, 512, 0, 1 << 20, true),
            Err(STATUS_NO_SUCH_DEVICE)
        );
        assert_eq!(
            check(1 << 20, 0, 512, 0, 1 << 20, false).unwrap().sectors,
            0
        );
    }
}
