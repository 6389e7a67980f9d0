//! GUID partition table (UEFI spec 2.x ch. 5.3): header and entry array
//! parsing and validation, as the partition manager does before it creates
//! partition devices. The primary table (LBA 1) is used when it is valid;
//! otherwise the backup (last LBA) is, as Windows does, and the result says
//! which copies were good.

use crate::crc32::crc32;
use crate::guid::Guid;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use nt::status::*;
use nt::NtStatus;

/// "EFI PART".
pub const SIGNATURE: [u8; 8] = *b"EFI PART";
/// Revision 1.0.
pub const REVISION_1_0: u32 = 0x0001_0000;
/// The header's defined size.
pub const HEADER_SIZE: u32 = 92;
/// The smallest (and usual) entry size.
pub const ENTRY_SIZE: u32 = 128;
/// Upper bound on the entry array accepted (bytes): 128 entries of 128
/// bytes is the spec minimum; larger tables exist, 1 MiB bounds allocation.
pub const MAX_ENTRY_ARRAY: u64 = 1 << 20;

/// Why a table was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GptError {
    /// The device could not be read.
    Device(NtStatus),
    /// The sector size or disk size cannot hold a GPT.
    DiskTooSmall,
    /// No "EFI PART" signature (not a GPT disk).
    NoSignature,
    /// Header size outside 92..=sector size, or unknown revision.
    BadHeaderSize(u32),
    /// The header's CRC32 does not match: (stored, computed).
    HeaderCrc(u32, u32),
    /// MyLBA is not where the header was read.
    WrongMyLba(u64),
    /// First/last usable LBAs are inverted or beyond the disk.
    BadUsableRange,
    /// The alternate header LBA is beyond the disk.
    BadAlternateLba(u64),
    /// Entry size is not 128 * 2^n, or the array is too large.
    BadEntrySize(u32, u32),
    /// The entry array lies (partly) beyond the disk or overlaps the usable area.
    EntriesOutOfRange,
    /// The entry array's CRC32 does not match: (stored, computed).
    EntriesCrc(u32, u32),
    /// A partition lies outside the usable range, is inverted, or overlaps
    /// another (its 1-based entry index).
    PartitionOutOfRange(u32),
    /// Primary and backup headers disagree about the disk.
    BackupMismatch,
}

impl GptError {
    /// The NTSTATUS a driver completes with for this table.
    pub fn status(&self) -> NtStatus {
        match self {
            GptError::Device(s) => *s,
            GptError::NoSignature | GptError::DiskTooSmall => STATUS_UNRECOGNIZED_MEDIA,
            _ => STATUS_DISK_CORRUPT_ERROR,
        }
    }
}

impl fmt::Display for GptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GptError::Device(s) => write!(f, "device read failed: {s:?}"),
            GptError::DiskTooSmall => write!(f, "disk too small for a GPT"),
            GptError::NoSignature => write!(f, "no EFI PART signature"),
            GptError::BadHeaderSize(s) => write!(f, "bad header size or revision ({s})"),
            GptError::HeaderCrc(a, b) => {
                write!(
                    f,
                    "header CRC32 mismatch: stored {a:#010x}, computed {b:#010x}"
                )
            }
            GptError::WrongMyLba(l) => write!(f, "MyLBA {l} is not where the header is"),
            GptError::BadUsableRange => write!(f, "bad first/last usable LBA"),
            GptError::BadAlternateLba(l) => write!(f, "alternate LBA {l} beyond the disk"),
            GptError::BadEntrySize(s, n) => write!(f, "bad entry array: {n} entries of {s} bytes"),
            GptError::EntriesOutOfRange => write!(f, "partition entry array beyond the disk"),
            GptError::EntriesCrc(a, b) => {
                write!(
                    f,
                    "entry array CRC32 mismatch: stored {a:#010x}, computed {b:#010x}"
                )
            }
            GptError::PartitionOutOfRange(i) => {
                write!(
                    f,
                    "partition entry {i} outside the usable range or overlapping"
                )
            }
            GptError::BackupMismatch => write!(f, "primary and backup headers disagree"),
        }
    }
}

/// Reads whole sectors from the disk (the class driver's own read path).
pub trait SectorSource {
    /// Reads `buf.len()` bytes (a multiple of the sector size) at `lba`.
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), NtStatus>;
}

/// A parsed, validated GPT header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Revision (0x00010000).
    pub revision: u32,
    /// HeaderSize.
    pub header_size: u32,
    /// HeaderCRC32 as stored.
    pub header_crc32: u32,
    /// MyLBA.
    pub my_lba: u64,
    /// AlternateLBA.
    pub alternate_lba: u64,
    /// FirstUsableLBA.
    pub first_usable_lba: u64,
    /// LastUsableLBA.
    pub last_usable_lba: u64,
    /// DiskGUID.
    pub disk_guid: Guid,
    /// PartitionEntryLBA.
    pub entries_lba: u64,
    /// NumberOfPartitionEntries.
    pub entry_count: u32,
    /// SizeOfPartitionEntry.
    pub entry_size: u32,
    /// PartitionEntryArrayCRC32.
    pub entries_crc32: u32,
}

impl Header {
    /// Parses and checks the header in `sector` read from `lba` of a disk of
    /// `total` sectors of `sector_size` bytes. The entry array is checked by
    /// [`check_entries`].
    pub fn parse(
        sector: &[u8],
        lba: u64,
        sector_size: u32,
        total: u64,
    ) -> Result<Header, GptError> {
        if sector.len() < HEADER_SIZE as usize || sector[..8] != SIGNATURE {
            return Err(GptError::NoSignature);
        }
        let u32_at = |o: usize| u32::from_le_bytes(sector[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(sector[o..o + 8].try_into().unwrap());
        let revision = u32_at(8);
        let header_size = u32_at(12);
        if revision != REVISION_1_0
            || header_size < HEADER_SIZE
            || header_size > sector_size
            || header_size as usize > sector.len()
        {
            return Err(GptError::BadHeaderSize(header_size));
        }
        let stored = u32_at(16);
        let mut copy = Vec::from(&sector[..header_size as usize]);
        copy[16..20].fill(0);
        let computed = crc32(&copy);
        if stored != computed {
            return Err(GptError::HeaderCrc(stored, computed));
        }
        let h = Header {
            revision,
            header_size,
            header_crc32: stored,
            my_lba: u64_at(24),
            alternate_lba: u64_at(32),
            first_usable_lba: u64_at(40),
            last_usable_lba: u64_at(48),
            disk_guid: Guid::from_bytes(sector[56..72].try_into().unwrap()),
            entries_lba: u64_at(72),
            entry_count: u32_at(80),
            entry_size: u32_at(84),
            entries_crc32: u32_at(88),
        };
        if h.my_lba != lba {
            return Err(GptError::WrongMyLba(h.my_lba));
        }
        if h.alternate_lba >= total || h.alternate_lba == h.my_lba {
            return Err(GptError::BadAlternateLba(h.alternate_lba));
        }
        if h.first_usable_lba > h.last_usable_lba
            || h.last_usable_lba >= total
            || h.first_usable_lba < 2
        {
            return Err(GptError::BadUsableRange);
        }
        let es = h.entry_size;
        if es < ENTRY_SIZE || !es.is_power_of_two() || h.array_bytes() > MAX_ENTRY_ARRAY {
            return Err(GptError::BadEntrySize(es, h.entry_count));
        }
        let end = h.entries_lba + h.array_bytes().div_ceil(sector_size as u64);
        let primary = lba < h.alternate_lba;
        let clear = if primary {
            h.entries_lba > lba && end <= h.first_usable_lba
        } else {
            h.entries_lba > h.last_usable_lba && end <= lba
        };
        if end > total || !clear {
            return Err(GptError::EntriesOutOfRange);
        }
        Ok(h)
    }

    /// Bytes of the partition entry array.
    pub fn array_bytes(&self) -> u64 {
        self.entry_count as u64 * self.entry_size as u64
    }
}

/// One used GPT partition entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// The partition number Windows gives it: 1-based, in entry-array order
    /// over the used entries.
    pub number: u32,
    /// The entry's index in the array (0-based).
    pub entry_index: u32,
    /// PartitionTypeGUID.
    pub type_guid: Guid,
    /// UniquePartitionGUID (the volume GUID the mount manager uses).
    pub unique_guid: Guid,
    /// StartingLBA.
    pub first_lba: u64,
    /// EndingLBA (inclusive).
    pub last_lba: u64,
    /// Attributes.
    pub attributes: u64,
    /// PartitionName, UTF-16, zero-padded.
    pub name: [u16; 36],
}

impl Partition {
    /// Number of sectors.
    pub fn sectors(&self) -> u64 {
        self.last_lba - self.first_lba + 1
    }
    /// The name as a string (up to the first NUL).
    pub fn name_string(&self) -> alloc::string::String {
        let end = self.name.iter().position(|&c| c == 0).unwrap_or(36);
        char::decode_utf16(self.name[..end].iter().copied())
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    }
}

/// Checks the entry array's CRC and the used entries against the header and
/// returns them.
pub fn check_entries(h: &Header, array: &[u8]) -> Result<Vec<Partition>, GptError> {
    let bytes = h.array_bytes() as usize;
    if array.len() < bytes {
        return Err(GptError::EntriesOutOfRange);
    }
    let computed = crc32(&array[..bytes]);
    if computed != h.entries_crc32 {
        return Err(GptError::EntriesCrc(h.entries_crc32, computed));
    }
    let mut parts: Vec<Partition> = Vec::new();
    for i in 0..h.entry_count {
        let e = &array[(i * h.entry_size) as usize..][..ENTRY_SIZE as usize];
        let type_guid = Guid::from_bytes(e[..16].try_into().unwrap());
        if type_guid == Guid::NULL {
            continue;
        }
        let u64_at = |o: usize| u64::from_le_bytes(e[o..o + 8].try_into().unwrap());
        let mut name = [0u16; 36];
        for (k, c) in name.iter_mut().enumerate() {
            *c = u16::from_le_bytes([e[56 + 2 * k], e[57 + 2 * k]]);
        }
        let p = Partition {
            number: parts.len() as u32 + 1,
            entry_index: i,
            type_guid,
            unique_guid: Guid::from_bytes(e[16..32].try_into().unwrap()),
            first_lba: u64_at(32),
            last_lba: u64_at(40),
            attributes: u64_at(48),
            name,
        };
        if p.first_lba > p.last_lba
            || p.first_lba < h.first_usable_lba
            || p.last_lba > h.last_usable_lba
            || parts
                .iter()
                .any(|q| p.first_lba <= q.last_lba && q.first_lba <= p.last_lba)
        {
            return Err(GptError::PartitionOutOfRange(i + 1));
        }
        parts.push(p);
    }
    Ok(parts)
}

/// Which copy of the table a [`Gpt`] came from and what was wrong with the other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpt {
    /// The header used (primary when valid).
    pub header: Header,
    /// The used partitions.
    pub partitions: Vec<Partition>,
    /// Sector size in bytes.
    pub sector_size: u32,
    /// Total sectors on the disk.
    pub total_sectors: u64,
    /// The primary table's problem, if any.
    pub primary_error: Option<GptError>,
    /// The backup table's problem, if any.
    pub backup_error: Option<GptError>,
}

fn read_table(
    src: &mut dyn SectorSource,
    lba: u64,
    sector_size: u32,
    total: u64,
) -> Result<(Header, Vec<Partition>), GptError> {
    let mut sector = vec![0u8; sector_size as usize];
    src.read(lba, &mut sector).map_err(GptError::Device)?;
    let h = Header::parse(&sector, lba, sector_size, total)?;
    let sectors = h.array_bytes().div_ceil(sector_size as u64);
    let mut array = vec![0u8; (sectors * sector_size as u64) as usize];
    src.read(h.entries_lba, &mut array)
        .map_err(GptError::Device)?;
    let parts = check_entries(&h, &array)?;
    Ok((h, parts))
}

/// Reads and validates the partition table of a disk of `total` sectors.
/// Uses the primary table if valid, else the backup; fails with the primary's
/// error if neither is.
pub fn read(src: &mut dyn SectorSource, sector_size: u32, total: u64) -> Result<Gpt, GptError> {
    if sector_size < 512 || !sector_size.is_power_of_two() || total < 68 {
        return Err(GptError::DiskTooSmall);
    }
    let primary = read_table(src, 1, sector_size, total);
    let backup_lba = match &primary {
        Ok((h, _)) => h.alternate_lba,
        Err(_) => total - 1,
    };
    let backup = read_table(src, backup_lba, sector_size, total);
    let consistent = |p: &Header, b: &Header| {
        b.alternate_lba == p.my_lba
            && b.disk_guid == p.disk_guid
            && b.first_usable_lba == p.first_usable_lba
            && b.last_usable_lba == p.last_usable_lba
            && b.entries_crc32 == p.entries_crc32
    };
    match (primary, backup) {
        (Ok((h, parts)), Ok((b, _))) => {
            let backup_error = (!consistent(&h, &b)).then_some(GptError::BackupMismatch);
            Ok(Gpt {
                header: h,
                partitions: parts,
                sector_size,
                total_sectors: total,
                primary_error: None,
                backup_error,
            })
        }
        (Ok((h, parts)), Err(e)) => Ok(Gpt {
            header: h,
            partitions: parts,
            sector_size,
            total_sectors: total,
            primary_error: None,
            backup_error: Some(e),
        }),
        (Err(e), Ok((b, parts))) => Ok(Gpt {
            header: b,
            partitions: parts,
            sector_size,
            total_sectors: total,
            primary_error: Some(e),
            backup_error: None,
        }),
        (Err(e), Err(_)) => Err(e),
    }
}

/// A slice holding a whole disk image, as a [`SectorSource`] (host tests and
/// in-memory checks).
pub struct SliceSource<'a> {
    /// The image.
    pub data: &'a [u8],
    /// Sector size.
    pub sector_size: u32,
}

impl SectorSource for SliceSource<'_> {
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), NtStatus> {
        let start = lba
            .checked_mul(self.sector_size as u64)
            .ok_or(STATUS_INVALID_PARAMETER)? as usize;
        let src = self
            .data
            .get(start..start + buf.len())
            .ok_or(STATUS_INVALID_PARAMETER)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
