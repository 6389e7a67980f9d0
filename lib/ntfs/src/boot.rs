//! The NTFS boot sector (`$Boot`, LCN 0; a backup copy sits in the last sector
//! of the volume).

use crate::error::{Error, Result};
use crate::util::*;

/// The fields of the boot sector that locate everything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootSector {
    /// Bytes per sector (512..=4096, a power of two).
    pub bytes_per_sector: u32,
    /// Bytes per cluster.
    pub cluster_size: u32,
    /// Sectors in the volume (excluding the backup boot sector).
    pub total_sectors: u64,
    /// LCN of `$MFT`'s data.
    pub mft_lcn: u64,
    /// LCN of `$MFTMirr`'s data.
    pub mftmirr_lcn: u64,
    /// Bytes per MFT file record.
    pub record_size: u32,
    /// Bytes per index record (INDX block).
    pub index_record_size: u32,
    /// Volume serial number.
    pub serial: u64,
    /// Sectors before the volume (`hidden sectors`; the partition start).
    pub hidden_sectors: u32,
}

/// Decodes the "clusters per record" byte: positive = clusters, negative =
/// 2^-n bytes.
fn decode_size(v: u8, cluster: u32) -> Result<u32> {
    let s = v as i8;
    if s > 0 {
        (s as u32)
            .checked_mul(cluster)
            .ok_or(Error::NotNtfs("record size"))
    } else if s < 0 {
        let sh = (-(s as i32)) as u32;
        if !(9..=16).contains(&sh) {
            return Err(Error::NotNtfs("record size exponent"));
        }
        Ok(1u32 << sh)
    } else {
        Err(Error::NotNtfs("zero record size"))
    }
}

/// Encodes a record size the way [`decode_size`] reads it.
pub(crate) fn encode_size(size: u32, cluster: u32) -> u8 {
    if size >= cluster {
        (size / cluster) as u8
    } else {
        (-(size.trailing_zeros() as i32)) as i8 as u8
    }
}

impl BootSector {
    /// Parses and validates a boot sector.
    pub fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < 512 {
            return Err(Error::NotNtfs("short boot sector"));
        }
        if sub(b, 3, 8)? != b"NTFS    " {
            return Err(Error::NotNtfs("no NTFS OEM id"));
        }
        if u16_at(b, 510)? != 0xAA55 {
            return Err(Error::NotNtfs("no 55AA signature"));
        }
        let bps = u16_at(b, 11)? as u32;
        if !(256..=4096).contains(&bps) || !bps.is_power_of_two() {
            return Err(Error::NotNtfs("bytes per sector"));
        }
        let spc_raw = u8_at(b, 13)?;
        // Values above 0x80 encode 2^(256-n) sectors (large clusters).
        let spc: u32 = if spc_raw <= 0x80 {
            spc_raw as u32
        } else {
            let sh = 256 - spc_raw as u32;
            if sh > 12 {
                return Err(Error::NotNtfs("sectors per cluster"));
            }
            1 << sh
        };
        if spc == 0 || !spc.is_power_of_two() {
            return Err(Error::NotNtfs("sectors per cluster"));
        }
        let cluster_size = bps.checked_mul(spc).ok_or(Error::NotNtfs("cluster size"))?;
        if cluster_size > 2 * 1024 * 1024 {
            return Err(Error::NotNtfs("cluster size"));
        }
        let record_size = decode_size(u8_at(b, 0x40)?, cluster_size)?;
        let index_record_size = decode_size(u8_at(b, 0x44)?, cluster_size)?;
        if !record_size.is_power_of_two() || !(512..=65536).contains(&record_size) {
            return Err(Error::NotNtfs("file record size"));
        }
        if !index_record_size.is_power_of_two() || !(512..=65536).contains(&index_record_size) {
            return Err(Error::NotNtfs("index record size"));
        }
        Ok(BootSector {
            bytes_per_sector: bps,
            cluster_size,
            total_sectors: u64_at(b, 0x28)?,
            mft_lcn: u64_at(b, 0x30)?,
            mftmirr_lcn: u64_at(b, 0x38)?,
            record_size,
            index_record_size,
            serial: u64_at(b, 0x48)?,
            hidden_sectors: u32_at(b, 0x1c)?,
        })
    }

    /// Number of clusters in the volume.
    pub fn total_clusters(&self) -> u64 {
        self.total_sectors / (self.cluster_size / self.bytes_per_sector) as u64
    }

    /// Builds a 512-byte boot sector (the rest of `$Boot` is zero).
    pub fn build(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[0..3].copy_from_slice(&[0xEB, 0x52, 0x90]);
        b[3..11].copy_from_slice(b"NTFS    ");
        put16(&mut b, 11, self.bytes_per_sector as u16);
        b[13] = (self.cluster_size / self.bytes_per_sector) as u8;
        b[0x15] = 0xF8; // media descriptor: fixed disk
        put16(&mut b, 0x18, 63); // sectors per track
        put16(&mut b, 0x1a, 255); // heads
        put32(&mut b, 0x1c, self.hidden_sectors);
        b[0x24] = 0x80; // BIOS drive number
        b[0x26] = 0x80; // extended boot signature
        put64(&mut b, 0x28, self.total_sectors);
        put64(&mut b, 0x30, self.mft_lcn);
        put64(&mut b, 0x38, self.mftmirr_lcn);
        b[0x40] = encode_size(self.record_size, self.cluster_size);
        b[0x44] = encode_size(self.index_record_size, self.cluster_size);
        put64(&mut b, 0x48, self.serial);
        // Boot code: print a message and halt (the volume is not BIOS-bootable).
        let msg = b"ntrs NTFS volume: not bootable\r\n\0";
        // mov si, msg; lodsb; or al,al; jz $; mov ah,0Eh; int 10h; jmp loop
        let code: [u8; 16] = [
            0xBE, 0x00, 0x00, 0xAC, 0x08, 0xC0, 0x74, 0xFE, 0xB4, 0x0E, 0xCD, 0x10, 0xEB, 0xF5, 0,
            0,
        ];
        let code_at = 0x54usize;
        let msg_at = code_at + code.len();
        b[code_at..code_at + code.len()].copy_from_slice(&code);
        let addr = (0x7C00 + msg_at) as u16;
        b[code_at + 1..code_at + 3].copy_from_slice(&addr.to_le_bytes());
        b[msg_at..msg_at + msg.len()].copy_from_slice(msg);
        put16(&mut b, 510, 0xAA55);
        b
    }
}
