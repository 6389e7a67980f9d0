use super::*;
use crate::guid::types;
use std::io::Cursor;
use std::vec::Vec;

const MIB: u64 = 1 << 20;

/// Builds an image laid out like xtask's (ESP then basic data, 1 MiB free
/// before, 1 MiB after) with the `gpt` crate, smaller partitions.
pub(crate) fn build_image() -> (Vec<u8>, Vec<gpt::partition::Partition>, uuid::Uuid) {
    let size = MIB + 4 * MIB + 8 * MIB + MIB;
    let mut dev = Cursor::new(std::vec![0u8; size as usize]);
    let mbr = gpt::mbr::ProtectiveMBR::with_lb_size(((size / 512) - 1) as u32);
    mbr.overwrite_lba0(&mut dev).unwrap();
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(dev, None)
        .unwrap();
    disk.add_partition(
        "EFI system partition",
        4 * MIB,
        gpt::partition_types::EFI,
        0,
        None,
    )
    .unwrap();
    disk.add_partition(
        "Basic data partition",
        8 * MIB,
        gpt::partition_types::BASIC,
        0,
        None,
    )
    .unwrap();
    let parts: Vec<_> = disk.partitions().values().cloned().collect();
    let disk_guid = *disk.guid();
    let dev = disk.write().unwrap();
    (dev.into_inner(), parts, disk_guid)
}

fn guid_of(u: &uuid::Uuid) -> Guid {
    Guid::from_bytes(&u.to_bytes_le())
}

fn parse(img: &[u8]) -> Result<Gpt, GptError> {
    let mut src = SliceSource {
        data: img,
        sector_size: 512,
    };
    read(&mut src, 512, img.len() as u64 / 512)
}

/// Recomputes the entry array CRC and the header CRC of the header at `lba`.
fn fix_crcs(img: &mut [u8], lba: u64) {
    let h = lba as usize * 512;
    let entries = u64::from_le_bytes(img[h + 72..h + 80].try_into().unwrap()) as usize;
    let n = u32::from_le_bytes(img[h + 80..h + 84].try_into().unwrap()) as usize;
    let es = u32::from_le_bytes(img[h + 84..h + 88].try_into().unwrap()) as usize;
    if let Some(arr) = img.get(entries * 512..entries * 512 + n * es) {
        let c = crc32(arr);
        img[h + 88..h + 92].copy_from_slice(&c.to_le_bytes());
    }
    img[h + 16..h + 20].fill(0);
    let c = crc32(&img[h..h + 92]);
    img[h + 16..h + 20].copy_from_slice(&c.to_le_bytes());
}

#[test]
fn parses_what_the_gpt_crate_writes() {
    let (img, parts, disk_guid) = build_image();
    let g = parse(&img).unwrap();
    assert_eq!(g.primary_error, None);
    assert_eq!(g.backup_error, None);
    assert_eq!(g.header.my_lba, 1);
    assert_eq!(g.header.alternate_lba, img.len() as u64 / 512 - 1);
    assert_eq!(g.header.disk_guid, guid_of(&disk_guid));
    assert_eq!(g.partitions.len(), 2);
    assert_eq!(g.partitions[0].type_guid, types::EFI_SYSTEM);
    assert_eq!(g.partitions[1].type_guid, types::BASIC_DATA);
    assert_eq!(g.partitions[1].number, 2);
    assert_eq!(g.partitions[1].name_string(), "Basic data partition");
    for (p, q) in g.partitions.iter().zip(&parts) {
        assert_eq!(p.unique_guid, guid_of(&q.part_guid));
        assert_eq!(p.first_lba, q.first_lba);
        assert_eq!(p.last_lba, q.last_lba);
    }
    assert_eq!(g.partitions[1].sectors() * 512, 8 * MIB);
}

#[test]
fn bad_primary_header_crc_falls_back_to_backup() {
    let (mut img, _, _) = build_image();
    img[512 + 40] ^= 1; // FirstUsableLBA, CRC now wrong
    let g = parse(&img).unwrap();
    assert!(matches!(g.primary_error, Some(GptError::HeaderCrc(_, _))));
    assert_eq!(g.header.my_lba, img.len() as u64 / 512 - 1);
    assert_eq!(g.partitions.len(), 2);
}

#[test]
fn both_headers_bad_is_a_clear_error() {
    let (mut img, _, _) = build_image();
    let last = img.len() - 512;
    img[512 + 40] ^= 1;
    img[last + 40] ^= 1;
    let e = parse(&img).unwrap_err();
    assert!(matches!(e, GptError::HeaderCrc(_, _)), "{e}");
    assert_eq!(e.status(), STATUS_DISK_CORRUPT_ERROR);
    assert!(std::format!("{e}").contains("CRC32 mismatch"));
}

#[test]
fn bad_entry_crc() {
    let (mut img, _, _) = build_image();
    img[2 * 512 + 16] ^= 0xFF; // first entry's unique GUID in the primary array
    let g = parse(&img).unwrap();
    assert!(matches!(g.primary_error, Some(GptError::EntriesCrc(_, _))));
    // The backup array is intact and wins.
    assert_eq!(g.partitions.len(), 2);
}

#[test]
fn entries_beyond_the_disk() {
    let (mut img, _, _) = build_image();
    let total = img.len() as u64 / 512;
    img[512 + 72..512 + 80].copy_from_slice(&(total - 2).to_le_bytes());
    fix_crcs(&mut img, 1);
    let mut src = SliceSource {
        data: &img,
        sector_size: 512,
    };
    let mut s = std::vec![0u8; 512];
    src.read(1, &mut s).unwrap();
    assert_eq!(
        Header::parse(&s, 1, 512, total),
        Err(GptError::EntriesOutOfRange)
    );
}

#[test]
fn partition_beyond_last_usable_lba() {
    let (mut img, _, _) = build_image();
    let total = img.len() as u64 / 512;
    for lba in [1, total - 1] {
        let h = lba as usize * 512;
        let entries = u64::from_le_bytes(img[h + 72..h + 80].try_into().unwrap()) as usize;
        // Second entry's EndingLBA past LastUsableLBA.
        let e = entries * 512 + 128 + 40;
        img[e..e + 8].copy_from_slice(&(total - 2).to_le_bytes());
        fix_crcs(&mut img, lba);
    }
    assert_eq!(parse(&img).unwrap_err(), GptError::PartitionOutOfRange(2));
}

#[test]
fn overlapping_partitions() {
    let (mut img, _, _) = build_image();
    let total = img.len() as u64 / 512;
    for lba in [1, total - 1] {
        let h = lba as usize * 512;
        let entries = u64::from_le_bytes(img[h + 72..h + 80].try_into().unwrap()) as usize;
        let first0 = u64::from_le_bytes(img[entries * 512 + 32..][..8].try_into().unwrap());
        let e = entries * 512 + 128 + 32;
        img[e..e + 8].copy_from_slice(&(first0 + 1).to_le_bytes());
        fix_crcs(&mut img, lba);
    }
    assert_eq!(parse(&img).unwrap_err(), GptError::PartitionOutOfRange(2));
}

#[test]
fn not_a_gpt_disk_and_tiny_disks() {
    let img = std::vec![0u8; 1 << 20];
    let e = parse(&img).unwrap_err();
    assert_eq!(e, GptError::NoSignature);
    assert_eq!(e.status(), STATUS_UNRECOGNIZED_MEDIA);
    assert_eq!(parse(&img[..512 * 10]).unwrap_err(), GptError::DiskTooSmall);
}

#[test]
fn truncated_disk_alternate_beyond_end() {
    let (img, _, _) = build_image();
    // Present only the first half: the primary's AlternateLBA is past the end.
    let half = &img[..img.len() / 2];
    assert!(matches!(
        parse(half).unwrap_err(),
        GptError::BadAlternateLba(_)
    ));
}

#[test]
fn backup_disagreeing_is_reported() {
    let (mut img, _, _) = build_image();
    let total = img.len() as u64 / 512;
    let h = (total - 1) as usize * 512;
    img[h + 56] ^= 1; // backup DiskGUID
    fix_crcs(&mut img, total - 1);
    let g = parse(&img).unwrap();
    assert_eq!(g.backup_error, Some(GptError::BackupMismatch));
    assert_eq!(g.primary_error, None);
}

#[test]
fn bad_sizes() {
    let (mut img, _, _) = build_image();
    img[512 + 84..512 + 88].copy_from_slice(&100u32.to_le_bytes());
    fix_crcs(&mut img, 1);
    let mut s = [0u8; 512];
    s.copy_from_slice(&img[512..1024]);
    let total = img.len() as u64 / 512;
    assert_eq!(
        Header::parse(&s, 1, 512, total),
        Err(GptError::BadEntrySize(100, 128))
    );
    s[12..16].copy_from_slice(&600u32.to_le_bytes());
    assert_eq!(
        Header::parse(&s, 1, 512, total),
        Err(GptError::BadHeaderSize(600))
    );
    let mut s2 = [0u8; 512];
    s2.copy_from_slice(&img[512..1024]);
    assert!(matches!(
        Header::parse(&s2, 5, 512, total),
        Err(GptError::HeaderCrc(..)) | Err(GptError::WrongMyLba(1))
    ));
}

/// The image `cargo xtask image` builds (or `NTRS_IMAGE`), when one is there: two partitions,
/// ESP then basic data, valid primary and backup.
#[test]
fn the_xtask_image_when_built() {
    let root = std::env::var_os("NTRS_IMAGE").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/ntrs.img"),
        std::path::PathBuf::from,
    );
    let Ok(img) = std::fs::read(&root) else {
        std::eprintln!("no {} (run cargo xtask image); skipped", root.display());
        return;
    };
    let g = parse(&img).unwrap();
    assert_eq!((g.primary_error, g.backup_error), (None, None));
    assert_eq!(g.partitions.len(), 2);
    assert_eq!(g.partitions[0].type_guid, types::EFI_SYSTEM);
    assert_eq!(g.partitions[1].type_guid, types::BASIC_DATA);
    let start = g.partitions[1].first_lba as usize * 512;
    assert_eq!(&img[start + 3..start + 11], b"NTFS    ");
}
