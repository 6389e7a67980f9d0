//! MBR partition tables: the four-entry table in sector 0 of a disk that has no GPT, with
//! logical partitions in a chain of extended boot records (EBRs) inside an extended partition
//! (*Windows Internals* 7th ed., Part 1 ch. 6, "Partition manager": MBR-style and GPT disks).
//!
//! Numbering: primary partitions keep their slot (1-4), logical partitions follow the EBR chain
//! from 5, the order `fdisk` and The Sleuth Kit users know. (Windows' `PartitionN` links count
//! the used partitions in table order instead; ntrs's partition manager reads GPT disks only.)

use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;

use crate::gpt::SectorSource;

/// Partition type of a GPT disk's protective MBR entry.
pub const PARTITION_GPT_PROTECTIVE: u8 = 0xEE;
/// Partition type of an NTFS (or exFAT) volume (`PARTITION_IFS`).
pub const PARTITION_IFS: u8 = 0x07;

/// Extended partition types (`PARTITION_EXTENDED`, `PARTITION_XINT13_EXTENDED`, Linux's).
fn is_extended(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0F | 0x85)
}

/// Longest EBR chain followed (a loop or a damaged chain ends there).
const MAX_LOGICAL: usize = 128;

/// What is wrong with an MBR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MbrError {
    /// The device could not be read.
    Device(NtStatus),
    /// No 0x55 0xAA boot signature in sector 0 (or in an EBR of the chain).
    NoSignature,
    /// The table is a GPT disk's protective MBR: read the GPT instead.
    Protective,
    /// A partition (its number) lies beyond the disk or overlaps another.
    OutOfRange(u32),
    /// The EBR chain loops or is longer than 128 logical partitions.
    BadChain,
}

impl MbrError {
    /// The NTSTATUS for this table.
    pub fn status(&self) -> NtStatus {
        match self {
            MbrError::Device(s) => *s,
            MbrError::NoSignature | MbrError::Protective => STATUS_UNRECOGNIZED_MEDIA,
            MbrError::OutOfRange(_) | MbrError::BadChain => STATUS_BAD_MASTER_BOOT_RECORD,
        }
    }
}

impl core::fmt::Display for MbrError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MbrError::Device(s) => write!(f, "read failed ({s})"),
            MbrError::NoSignature => write!(f, "no MBR boot signature (0x55 0xAA)"),
            MbrError::Protective => write!(f, "protective MBR of a GPT disk"),
            MbrError::OutOfRange(n) => {
                write!(
                    f,
                    "MBR partition {n} lies beyond the disk or overlaps another"
                )
            }
            MbrError::BadChain => {
                write!(f, "the extended partition's EBR chain loops or is too long")
            }
        }
    }
}

/// A used MBR partition (extended containers are not listed; their logical partitions are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MbrPartition {
    /// 1-4 for primary partitions (the slot), 5 and up for logical ones in chain order.
    pub number: u32,
    /// The active (boot) flag, 0x80.
    pub active: bool,
    /// Partition type (`PARTITION_IFS` = 7 for NTFS, ...).
    pub kind: u8,
    /// First sector.
    pub first_lba: u64,
    /// Length in sectors.
    pub sectors: u64,
}

/// One 16-byte table entry: (active, type, relative start, sectors).
fn entry(sector: &[u8], i: usize) -> (bool, u8, u64, u64) {
    let e = &sector[446 + 16 * i..462 + 16 * i];
    let le32 = |o: usize| u32::from_le_bytes([e[o], e[o + 1], e[o + 2], e[o + 3]]) as u64;
    (e[0] == 0x80, e[4], le32(8), le32(12))
}

fn read_sector(
    src: &mut dyn SectorSource,
    lba: u64,
    sector_size: u32,
) -> Result<Vec<u8>, MbrError> {
    let mut s = alloc::vec![0u8; sector_size as usize];
    src.read(lba, &mut s).map_err(MbrError::Device)?;
    if s[510] != 0x55 || s[511] != 0xAA {
        return Err(MbrError::NoSignature);
    }
    Ok(s)
}

/// Reads the MBR partition table of a disk of `total` sectors: the used primary partitions and
/// the logical partitions of an extended partition, checked to lie on the disk without overlaps.
pub fn read(
    src: &mut dyn SectorSource,
    sector_size: u32,
    total: u64,
) -> Result<Vec<MbrPartition>, MbrError> {
    if sector_size < 512 || !sector_size.is_power_of_two() {
        return Err(MbrError::Device(STATUS_INVALID_PARAMETER));
    }
    let mbr = read_sector(src, 0, sector_size)?;
    if (0..4).any(|i| entry(&mbr, i).1 == PARTITION_GPT_PROTECTIVE) {
        return Err(MbrError::Protective);
    }
    let mut parts = Vec::new();
    // (number, first, sectors) of everything that must not overlap: partitions and containers.
    let mut extents: Vec<(u32, u64, u64)> = Vec::new();
    let mut extended = None;
    for i in 0..4 {
        let (active, kind, first, sectors) = entry(&mbr, i);
        let number = i as u32 + 1;
        if kind == 0 || sectors == 0 {
            continue;
        }
        if first == 0 || first.checked_add(sectors).is_none_or(|e| e > total) {
            return Err(MbrError::OutOfRange(number));
        }
        extents.push((number, first, sectors));
        if is_extended(kind) {
            if extended.is_none() {
                extended = Some((first, sectors));
            }
            continue;
        }
        parts.push(MbrPartition {
            number,
            active,
            kind,
            first_lba: first,
            sectors,
        });
    }
    for (k, &(n, a, la)) in extents.iter().enumerate() {
        if extents[k + 1..]
            .iter()
            .any(|&(_, b, lb)| a < b + lb && b < a + la)
        {
            return Err(MbrError::OutOfRange(n));
        }
    }
    if let Some((ext_first, ext_sectors)) = extended {
        let ext_end = ext_first + ext_sectors;
        let mut ebr = ext_first;
        let mut seen = Vec::new();
        let mut logical: Vec<MbrPartition> = Vec::new();
        loop {
            if seen.contains(&ebr) || seen.len() >= MAX_LOGICAL {
                return Err(MbrError::BadChain);
            }
            seen.push(ebr);
            let s = read_sector(src, ebr, sector_size)?;
            let (active, kind, rel, sectors) = entry(&s, 0);
            if kind != 0 && sectors != 0 {
                let number = 5 + logical.len() as u32;
                let first = ebr + rel;
                if rel == 0
                    || first.checked_add(sectors).is_none_or(|e| e > ext_end)
                    || logical
                        .iter()
                        .any(|p| first < p.first_lba + p.sectors && p.first_lba < first + sectors)
                {
                    return Err(MbrError::OutOfRange(number));
                }
                logical.push(MbrPartition {
                    number,
                    active,
                    kind,
                    first_lba: first,
                    sectors,
                });
            }
            // The next EBR, relative to the extended partition's start.
            let (_, next_kind, next_rel, _) = entry(&s, 1);
            if !is_extended(next_kind) || next_rel == 0 {
                break;
            }
            ebr = ext_first + next_rel;
            if ebr >= ext_end {
                return Err(MbrError::BadChain);
            }
        }
        parts.extend(logical);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::SliceSource;
    use alloc::vec;

    fn put(disk: &mut [u8], lba: u64, i: usize, active: bool, kind: u8, first: u32, n: u32) {
        let o = lba as usize * 512 + 446 + 16 * i;
        disk[o] = if active { 0x80 } else { 0 };
        disk[o + 4] = kind;
        disk[o + 8..o + 12].copy_from_slice(&first.to_le_bytes());
        disk[o + 12..o + 16].copy_from_slice(&n.to_le_bytes());
        let s = lba as usize * 512;
        disk[s + 510] = 0x55;
        disk[s + 511] = 0xAA;
    }

    fn parse(disk: &[u8]) -> Result<Vec<MbrPartition>, MbrError> {
        let mut src = SliceSource {
            data: disk,
            sector_size: 512,
        };
        read(&mut src, 512, (disk.len() / 512) as u64)
    }

    #[test]
    fn primary_partitions_keep_their_slots() {
        let mut d = vec![0u8; 4096 * 512];
        put(&mut d, 0, 0, true, PARTITION_IFS, 128, 1000);
        put(&mut d, 0, 2, false, 0x83, 2048, 2048);
        let p = parse(&d).unwrap();
        assert_eq!(
            p,
            [
                MbrPartition {
                    number: 1,
                    active: true,
                    kind: 7,
                    first_lba: 128,
                    sectors: 1000
                },
                MbrPartition {
                    number: 3,
                    active: false,
                    kind: 0x83,
                    first_lba: 2048,
                    sectors: 2048
                },
            ]
        );
    }

    #[test]
    fn logical_partitions_follow_the_ebr_chain_from_5() {
        let mut d = vec![0u8; 8192 * 512];
        put(&mut d, 0, 0, false, PARTITION_IFS, 64, 936);
        put(&mut d, 0, 1, false, 0x0F, 1000, 7000);
        // EBR 1 at 1000: logical at +10 for 990; next EBR at ext+2000.
        put(&mut d, 1000, 0, false, PARTITION_IFS, 10, 990);
        put(&mut d, 1000, 1, false, 0x05, 2000, 3000);
        // EBR 2 at 3000: logical at +1 for 1500; end of chain.
        put(&mut d, 3000, 0, false, 0x0B, 1, 1500);
        let p = parse(&d).unwrap();
        let got: Vec<(u32, u8, u64, u64)> = p
            .iter()
            .map(|p| (p.number, p.kind, p.first_lba, p.sectors))
            .collect();
        assert_eq!(
            got,
            [(1, 7, 64, 936), (5, 7, 1010, 990), (6, 0x0B, 3001, 1500)]
        );
    }

    #[test]
    fn bad_tables_are_errors() {
        // No signature.
        assert_eq!(parse(&vec![0u8; 1024 * 512]), Err(MbrError::NoSignature));
        // A GPT disk's protective MBR.
        let mut d = vec![0u8; 1024 * 512];
        put(&mut d, 0, 0, false, PARTITION_GPT_PROTECTIVE, 1, 1023);
        assert_eq!(parse(&d), Err(MbrError::Protective));
        // Beyond the disk; overlapping.
        let mut d = vec![0u8; 1024 * 512];
        put(&mut d, 0, 0, false, 7, 100, 2000);
        assert_eq!(parse(&d), Err(MbrError::OutOfRange(1)));
        let mut d = vec![0u8; 1024 * 512];
        put(&mut d, 0, 0, false, 7, 100, 200);
        put(&mut d, 0, 1, false, 7, 250, 100);
        assert_eq!(parse(&d), Err(MbrError::OutOfRange(1)));
        // An EBR chain that loops back to itself.
        let mut d = vec![0u8; 4096 * 512];
        put(&mut d, 0, 0, false, 0x05, 1000, 2000);
        put(&mut d, 1000, 0, false, 7, 1, 10);
        put(&mut d, 1000, 1, false, 0x05, 500, 100);
        put(&mut d, 1500, 0, false, 7, 1, 10);
        put(&mut d, 1500, 1, false, 0x05, 0x200, 100);
        put(&mut d, 1512, 1, false, 0x05, 500, 100);
        assert_eq!(
            parse(&d).unwrap_err().status(),
            STATUS_BAD_MASTER_BOOT_RECORD
        );
        // Every error maps to a status; none panics on a short or garbage image.
        for len in [0usize, 100, 511, 512, 513] {
            let d = vec![0xAAu8; len];
            let _ = parse(&d);
        }
    }
}
