//! GUIDs in their Windows memory layout (`Data1` little-endian u32, `Data2`,
//! `Data3` little-endian u16, `Data4` 8 bytes), which is also how GPT stores
//! them on disk.

use core::fmt;

/// `GUID`, 16 bytes, as Windows and GPT lay it out.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash, PartialOrd, Ord)]
pub struct Guid {
    /// `Data1`.
    pub data1: u32,
    /// `Data2`.
    pub data2: u16,
    /// `Data3`.
    pub data3: u16,
    /// `Data4`.
    pub data4: [u8; 8],
}

const _: () = assert!(core::mem::size_of::<Guid>() == 16);

impl Guid {
    /// The all-zero GUID (`GUID_NULL`; an unused GPT entry's type).
    pub const NULL: Guid = Guid {
        data1: 0,
        data2: 0,
        data3: 0,
        data4: [0; 8],
    };

    /// From the 16 bytes in Windows/GPT ("mixed-endian") order.
    pub fn from_bytes(b: &[u8; 16]) -> Guid {
        let mut data4 = [0u8; 8];
        data4.copy_from_slice(&b[8..]);
        Guid {
            data1: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            data2: u16::from_le_bytes([b[4], b[5]]),
            data3: u16::from_le_bytes([b[6], b[7]]),
            data4,
        }
    }

    /// The 16 bytes in Windows/GPT order.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&self.data1.to_le_bytes());
        b[4..6].copy_from_slice(&self.data2.to_le_bytes());
        b[6..8].copy_from_slice(&self.data3.to_le_bytes());
        b[8..].copy_from_slice(&self.data4);
        b
    }

    /// Parses the registry form's inner text `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`
    /// (no braces), any case.
    pub fn parse(s: &str) -> Option<Guid> {
        let s = s.as_bytes();
        if s.len() != 36 || s[8] != b'-' || s[13] != b'-' || s[18] != b'-' || s[23] != b'-' {
            return None;
        }
        let hex = |r: core::ops::Range<usize>| -> Option<u64> {
            let mut v = 0u64;
            for &c in &s[r] {
                v = v << 4 | (c as char).to_digit(16)? as u64;
            }
            Some(v)
        };
        let d4a = hex(19..23)?;
        let d4b = hex(24..36)?;
        let mut data4 = [0u8; 8];
        data4[..2].copy_from_slice(&(d4a as u16).to_be_bytes());
        data4[2..].copy_from_slice(&d4b.to_be_bytes()[2..]);
        Some(Guid {
            data1: hex(0..8)? as u32,
            data2: hex(9..13)? as u16,
            data3: hex(14..18)? as u16,
            data4,
        })
    }
}

/// Lower-case `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as the mount manager
/// writes volume GUIDs.
impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.data4;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            self.data1, self.data2, self.data3, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{self}}}")
    }
}

/// Well-known GPT partition type GUIDs (UEFI spec and Microsoft docs for
/// `PARTITION_INFORMATION_GPT`).
pub mod types {
    use super::Guid;
    /// `PARTITION_SYSTEM_GUID`: EFI system partition.
    pub const EFI_SYSTEM: Guid = Guid {
        data1: 0xC12A7328,
        data2: 0xF81F,
        data3: 0x11D2,
        data4: [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B],
    };
    /// `PARTITION_BASIC_DATA_GUID`.
    pub const BASIC_DATA: Guid = Guid {
        data1: 0xEBD0A0A2,
        data2: 0xB9E5,
        data3: 0x4433,
        data4: [0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7],
    };
    /// `PARTITION_MSFT_RESERVED_GUID`.
    pub const MSFT_RESERVED: Guid = Guid {
        data1: 0xE3C9E316,
        data2: 0x0B5C,
        data3: 0x4DB8,
        data4: [0x81, 0x7D, 0xF9, 0x2D, 0xF0, 0x02, 0x15, 0xAE],
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn text_and_bytes_round_trip() {
        let g = types::BASIC_DATA;
        assert_eq!(g.to_string(), "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7");
        assert_eq!(Guid::parse("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"), Some(g));
        // On-disk bytes of the basic data type GUID (UEFI spec order).
        let b = g.to_bytes();
        assert_eq!(&b[..4], &[0xA2, 0xA0, 0xD0, 0xEB]);
        assert_eq!(Guid::from_bytes(&b), g);
        assert_eq!(Guid::parse("ebd0a0a2-b9e5-4433-87c0-68b6b72699c"), None);
        assert_eq!(Guid::parse("ebd0a0a2xb9e5-4433-87c0-68b6b72699c7"), None);
    }
}
