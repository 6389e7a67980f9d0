//! The rules of `ProbeForRead` and `ProbeForWrite` (wdm.h; *Windows
//! Internals*, Part 2, ch. 8, "System service dispatching": user buffers are
//! probed before a service touches them): what each checks, in the order
//! Microsoft documents, as pure functions the kernel calls.
//!
//! - A zero length checks nothing: no alignment, no range.
//! - The start must be a multiple of `Alignment` (1, 2, 4, 8 or 16; any
//!   other value is used as a mask of `Alignment - 1`, as NT's free build
//!   does): otherwise STATUS_DATATYPE_MISALIGNMENT.
//! - The range must end at or below `MM_USER_PROBE_ADDRESS` without wrapping
//!   past the top of the address space: otherwise STATUS_ACCESS_VIOLATION.
//! - `ProbeForWrite` then accesses (reads and writes back) one byte in every
//!   page of the buffer: the first byte, then the first byte of each
//!   following page up to the page holding the last byte
//!   ([`write_probe_addresses`]). `ProbeForRead` touches nothing.

use crate::status::{STATUS_ACCESS_VIOLATION, STATUS_DATATYPE_MISALIGNMENT};
use crate::user::MM_USER_PROBE_ADDRESS;
use crate::NtStatus;

const PAGE_SIZE: u64 = 0x1000;

/// `ProbeForRead`'s checks of `length` bytes at `address` aligned to
/// `alignment`.
pub fn probe_for_read(address: u64, length: u64, alignment: u32) -> Result<(), NtStatus> {
    if length == 0 {
        return Ok(());
    }
    if address & u64::from(alignment).wrapping_sub(1) != 0 {
        return Err(STATUS_DATATYPE_MISALIGNMENT);
    }
    match address.checked_add(length) {
        Some(end) if end <= MM_USER_PROBE_ADDRESS => Ok(()),
        _ => Err(STATUS_ACCESS_VIOLATION),
    }
}

/// `ProbeForWrite`'s checks (the same as `ProbeForRead`'s), then the
/// addresses it must access, one per page (empty for a zero length).
pub fn write_probe_addresses(
    address: u64,
    length: u64,
    alignment: u32,
) -> Result<WriteProbe, NtStatus> {
    probe_for_read(address, length, alignment)?;
    Ok(WriteProbe {
        next: address,
        last: if length == 0 {
            None
        } else {
            Some(address + length - 1)
        },
    })
}

/// The bytes `ProbeForWrite` touches, in address order.
#[derive(Clone, Debug)]
pub struct WriteProbe {
    next: u64,
    last: Option<u64>,
}

impl Iterator for WriteProbe {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let last = self.last?;
        let at = self.next;
        if at > last {
            return None;
        }
        // The range ends below MM_USER_PROBE_ADDRESS, so this cannot wrap.
        self.next = (at & !(PAGE_SIZE - 1)) + PAGE_SIZE;
        if self.next > last {
            self.last = None;
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn zero_length_checks_nothing() {
        assert_eq!(probe_for_read(0xFFFF_8000_0000_0001, 0, 8), Ok(()));
        assert_eq!(probe_for_read(u64::MAX, 0, 4), Ok(()));
        let w = write_probe_addresses(0xFFFF_F780_0000_0003, 0, 16).unwrap();
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn alignment_before_range() {
        assert_eq!(probe_for_read(0x1001, 8, 1), Ok(()));
        assert_eq!(
            probe_for_read(0x1001, 8, 2),
            Err(STATUS_DATATYPE_MISALIGNMENT)
        );
        assert_eq!(probe_for_read(0x1004, 8, 4), Ok(()));
        assert_eq!(
            probe_for_read(0x1004, 8, 8),
            Err(STATUS_DATATYPE_MISALIGNMENT)
        );
        assert_eq!(probe_for_read(0x1010, 8, 16), Ok(()));
        // A misaligned kernel address is a misalignment, checked first.
        assert_eq!(
            probe_for_read(0xFFFF_8000_0000_0002, 8, 4),
            Err(STATUS_DATATYPE_MISALIGNMENT)
        );
        assert_eq!(
            write_probe_addresses(0x2003, 4, 4).map(|w| w.count()),
            Err(STATUS_DATATYPE_MISALIGNMENT)
        );
    }

    #[test]
    fn range_ends_at_the_probe_address() {
        let top = MM_USER_PROBE_ADDRESS;
        assert_eq!(probe_for_read(top - 8, 8, 8), Ok(()));
        assert_eq!(probe_for_read(top - 8, 9, 8), Err(STATUS_ACCESS_VIOLATION));
        assert_eq!(probe_for_read(top, 1, 1), Err(STATUS_ACCESS_VIOLATION));
        assert_eq!(
            probe_for_read(0xFFFF_F780_0000_0000, 8, 8),
            Err(STATUS_ACCESS_VIOLATION)
        );
        // Wrapping past the top of the address space.
        assert_eq!(
            probe_for_read(0x1000, u64::MAX, 1),
            Err(STATUS_ACCESS_VIOLATION)
        );
        // NULL is inside the user range: the access, not the probe, fails.
        assert_eq!(probe_for_read(0, 8, 8), Ok(()));
    }

    #[test]
    fn write_probe_touches_one_byte_per_page() {
        let v: Vec<u64> = write_probe_addresses(0x1_0FF8, 16, 8).unwrap().collect();
        assert_eq!(v, [0x1_0FF8, 0x1_1000]);
        let v: Vec<u64> = write_probe_addresses(0x2_0000, 0x1000, 1)
            .unwrap()
            .collect();
        assert_eq!(v, [0x2_0000]);
        let v: Vec<u64> = write_probe_addresses(0x2_0000, 0x1001, 1)
            .unwrap()
            .collect();
        assert_eq!(v, [0x2_0000, 0x2_1000]);
        let v: Vec<u64> = write_probe_addresses(0x3_0123, 0x3000, 1)
            .unwrap()
            .collect();
        assert_eq!(v, [0x3_0123, 0x3_1000, 0x3_2000, 0x3_3000]);
        let top = MM_USER_PROBE_ADDRESS;
        let v: Vec<u64> = write_probe_addresses(top - 0x1800, 0x1800, 1)
            .unwrap()
            .collect();
        assert_eq!(v, [top - 0x1800, top - 0x1000]);
        assert_eq!(
            write_probe_addresses(top - 0x10, 0x11, 1).map(|w| w.count()),
            Err(STATUS_ACCESS_VIOLATION)
        );
    }
}
