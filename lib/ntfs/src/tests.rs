//! Unit tests on in-memory volumes.

extern crate std;

use crate::attr::*;
use crate::runlist::{self, Run};
use crate::*;
use alloc::format;
use alloc::vec::Vec;
use std::boxed::Box;
use std::vec;

fn fresh(mib: usize) -> Volume<MemDevice> {
    format(
        MemDevice::new(mib << 20),
        &FormatOptions {
            label: "T".into(),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn runlist_roundtrip_with_sparse_and_negative_deltas() {
    let runs = vec![
        Run {
            vcn: 0,
            len: 16,
            lcn: Some(1000),
        },
        Run {
            vcn: 16,
            len: 5,
            lcn: None,
        },
        Run {
            vcn: 21,
            len: 300,
            lcn: Some(20),
        },
        Run {
            vcn: 321,
            len: 1,
            lcn: Some(0x1_0000_0000),
        },
    ];
    let enc = runlist::encode(&runs);
    assert_eq!(runlist::decode(&enc, 0).unwrap(), runs);
    assert_eq!(runlist::lookup(&runs, 17), Some((None, 4)));
    assert_eq!(runlist::lookup(&runs, 22), Some((Some(21), 299)));
}

#[test]
fn runlist_rejects_garbage() {
    assert!(runlist::decode(&[0x11, 0x05], 0).is_err());
    assert!(runlist::decode(&[0x91, 1, 2], 0).is_err());
    assert!(runlist::decode(&[0x11, 1, 0x80, 0], 0).is_err()); // negative LCN
}

#[test]
fn fixups_detect_torn_writes() {
    let mut r = record::Record::new(30, 1);
    r.add(record::Attr::resident(AT_DATA, &[], vec![7; 100]));
    let mut b = r.build(1024).unwrap();
    record::fixup(&mut b).unwrap();
    let mut ok = b.clone();
    record::unfixup(&mut ok, b"FILE").unwrap();
    assert_eq!(record::Record::parse(&ok, 30).unwrap().attrs, r.attrs);
    b[1022] ^= 1;
    assert!(record::unfixup(&mut b, b"FILE").is_err());
}

#[test]
fn format_then_mount() {
    let mut v = fresh(16);
    assert_eq!(v.volume_name().unwrap(), "T");
    assert_eq!(v.volume_version().unwrap(), (3, 1, 0));
    let names: Vec<_> = v.read_dir(5).unwrap().into_iter().map(|d| d.name).collect();
    for n in [
        "$MFT", "$MFTMirr", "$LogFile", "$Volume", "$AttrDef", ".", "$Bitmap", "$Boot", "$BadClus",
        "$Secure", "$UpCase", "$Extend",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    let ext: Vec<_> = v
        .read_dir(11)
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(ext, ["$ObjId", "$Quota", "$Reparse"]);
    assert!(v.security_descriptor(5).unwrap().is_some());
    assert!(check(&mut v).unwrap().is_empty());
}

#[test]
fn write_read_small_and_large() {
    let mut v = fresh(16);
    v.create_dir_all("/x/y").unwrap();
    v.write_file("/x/y/small", b"abc").unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    v.write_file("/x/big", &big).unwrap();
    assert_eq!(v.read_file("/x/y/small").unwrap(), b"abc");
    assert_eq!(v.read_file("/X/BIG").unwrap(), big);
    // Extend a resident file past the resident limit, then truncate.
    let n = v.lookup("/x/y/small").unwrap();
    v.write_at(n, &[], 5000, b"tail").unwrap();
    let d = v.read_file("/x/y/small").unwrap();
    assert_eq!(d.len(), 5004);
    assert_eq!(&d[..3], b"abc");
    assert!(d[3..5000].iter().all(|b| *b == 0));
    v.set_len(n, &[], 2).unwrap();
    assert_eq!(v.read_file("/x/y/small").unwrap(), b"ab");
    assert!(check(&mut v).unwrap().is_empty());
}

#[test]
fn named_streams() {
    let mut v = fresh(16);
    v.write_file("/f", b"main").unwrap();
    v.write_file("/f:alt", b"side").unwrap();
    assert_eq!(v.read_file("/f").unwrap(), b"main");
    assert_eq!(v.read_file("/f:alt").unwrap(), b"side");
    assert_eq!(v.read_file("/f:nope"), Err(Error::NotFound));
}

#[test]
fn many_files_force_index_allocation_and_splits() {
    let mut v = fresh(32);
    let d = v.create("/d", true).unwrap();
    let mut names = Vec::new();
    for i in 0..600 {
        let name = format!("file-{:04}-{}", (i * 7919) % 600, "x".repeat(i % 40));
        v.write_file(&format!("/d/{name}"), name.as_bytes())
            .unwrap();
        names.push(name);
    }
    let listed: Vec<_> = v.read_dir(d).unwrap().into_iter().map(|e| e.name).collect();
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| {
        let a: Vec<u16> = a.encode_utf16().collect();
        let b: Vec<u16> = b.encode_utf16().collect();
        upcase::collate_names(v.upcase(), &a, &b)
    });
    assert_eq!(listed, sorted);
    for n in names.iter().step_by(37) {
        assert_eq!(v.read_file(&format!("/d/{n}")).unwrap(), n.as_bytes());
    }
    // Delete most of them; the tree shrinks back.
    for n in names.iter().skip(5) {
        v.remove(&format!("/d/{n}")).unwrap();
    }
    assert_eq!(v.read_dir(d).unwrap().len(), 5);
    assert!(
        check(&mut v).unwrap().is_empty(),
        "{:?}",
        check(&mut v).unwrap()
    );
}

#[test]
fn errors_map_to_status() {
    let mut v = fresh(16);
    v.create("/a", true).unwrap();
    v.write_file("/a/f", b"1").unwrap();
    assert_eq!(v.create("/a/f", false), Err(Error::NameCollision));
    assert_eq!(v.remove("/a"), Err(Error::DirectoryNotEmpty));
    assert_eq!(v.lookup("/nope/x"), Err(Error::PathNotFound));
    assert_eq!(v.lookup("/a/nope"), Err(Error::NotFound));
    assert_eq!(v.create("/a/b:c", false), Err(Error::InvalidName));
    assert_eq!(Error::DiskFull.status(), nt::status::STATUS_DISK_FULL);
    assert_eq!(
        Error::NotFound.status(),
        nt::status::STATUS_OBJECT_NAME_NOT_FOUND
    );
    let mut small = fresh(2);
    let big = vec![1u8; 4 << 20];
    assert_eq!(small.write_file("/big", &big), Err(Error::DiskFull));
}

#[test]
fn rename_link_remove() {
    let mut v = fresh(16);
    v.create_dir_all("/a/b").unwrap();
    v.write_file("/a/f", b"data").unwrap();
    v.rename("/a/f", "/a/b/g").unwrap();
    assert_eq!(v.lookup("/a/f"), Err(Error::NotFound));
    assert_eq!(v.read_file("/a/b/g").unwrap(), b"data");
    v.link("/a/b/g", "/h").unwrap();
    assert_eq!(v.read_file("/h").unwrap(), b"data");
    let n = v.lookup("/h").unwrap();
    assert_eq!(v.stat(n).unwrap().link_count, 2);
    v.remove("/a/b/g").unwrap();
    assert_eq!(v.read_file("/h").unwrap(), b"data");
    v.remove("/h").unwrap();
    assert_eq!(v.lookup("/h"), Err(Error::NotFound));
    assert_eq!(
        v.rename("/a", "/a/b/c"),
        Err(Error::InvalidParameter("move into own subtree"))
    );
    assert!(check(&mut v).unwrap().is_empty());
}

#[test]
fn mft_grows() {
    let mut v = fresh(32);
    let before = v.mft_records();
    for i in 0..300 {
        v.write_file(&format!("/f{i}"), b"x").unwrap();
    }
    assert!(v.mft_records() > before);
    let mut v = Volume::open(v.into_device()).unwrap();
    assert_eq!(v.read_file("/f299").unwrap(), b"x");
    assert_eq!(v.read_dir(5).unwrap().len(), 12 + 300);
    assert!(check(&mut v).unwrap().is_empty());
}

#[test]
fn lznt1_roundtrip() {
    let data: Vec<u8> = (0..20000u32).map(|i| ((i / 13) % 7) as u8 + b'a').collect();
    let c = lznt1::compress(&data);
    assert!(c.len() < data.len() / 2);
    let mut out = vec![0u8; data.len()];
    assert_eq!(lznt1::decompress(&c, &mut out).unwrap(), data.len());
    assert_eq!(out, data);
    assert!(lznt1::decompress(&[0x05, 0xB0, 0x01, 0xff, 0xff], &mut out).is_err());
}

#[test]
fn corrupt_boot_sector_rejected() {
    let v = fresh(4);
    let mut d = v.into_device();
    d.data[0x40] = 0; // clusters per record = 0
    assert!(matches!(Volume::open(d.clone()), Err(Error::NotNtfs(_))));
    d.data[3] = b'X';
    assert!(matches!(Volume::open(d), Err(Error::NotNtfs(_))));
}

fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/volume")
}

/// Replays the committed fuzz corpus through `fuzz_one`.
#[test]
fn fuzz_corpus_replays_without_panic() {
    let mut n = 0;
    for e in std::fs::read_dir(corpus_dir()).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        fuzz_one(&data);
        n += 1;
    }
    assert!(n >= 6, "corpus has only {n} files");
}

#[test]
fn sparse_image_roundtrip() {
    let mut v = fresh(2);
    v.write_file("/x", &[5u8; 3000]).unwrap();
    let img = v.into_device().data;
    let enc = fuzz::encode_image(&img);
    assert!(enc.len() < img.len() / 8);
    assert_eq!(fuzz::decode_image(&enc).unwrap(), img);
}

/// Deterministic byte flips over the metadata of a small volume.
#[test]
fn corrupted_volumes_never_panic() {
    let mut v = fresh(2);
    v.create_dir_all("/a/b").unwrap();
    for i in 0..40 {
        v.write_file(&format!("/a/b/file{i}"), &[i as u8; 700])
            .unwrap();
    }
    let mft = v.boot.mft_lcn * v.cluster_size();
    let img = v.into_device().data;
    let mut x = 0x1234_5678u32;
    for _ in 0..120 {
        let mut m = img.clone();
        for _ in 0..8 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let off = mft as usize + (x as usize % (64 * 1024));
            m[off] ^= (x >> 24) as u8 | 1;
        }
        fuzz_one(&m);
    }
}

/// Writes the seed corpus (run by hand: `cargo test -p ntfs -- --ignored gen_seeds`).
/// `NTFS_SEED_IMAGE` may name an extra image (e.g. a small mkntfs volume).
#[test]
#[ignore]
fn gen_seeds() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut v = fresh(2);
    v.create_dir_all("/a/b/c").unwrap();
    for i in 0..30 {
        v.write_file(&format!("/a/file number {i}"), &[i as u8; 100])
            .unwrap();
    }
    v.write_file("/a/b/c/big", &[9u8; 20000]).unwrap();
    v.write_file("/a/b/c/big:alt", b"stream").unwrap();
    let img = v.into_device().data;
    let mut images = vec![("ours-2m", img.clone())];
    if let Ok(p) = std::env::var("NTFS_SEED_IMAGE") {
        images.push(("ntfs3g-2m", std::fs::read(p).unwrap()));
    }
    let base = images.clone();
    for (name, img) in &base {
        let bs = crate::boot::BootSector::parse(img).unwrap();
        let mft = (bs.mft_lcn * bs.cluster_size as u64) as usize;
        let mut m = img.clone();
        m[mft + 5 * 1024 + 0x100] ^= 0xFF; // root directory's index root
        images.push((Box::leak(format!("{name}-bad-root").into_boxed_str()), m));
        let mut m = img.clone();
        m[mft + 0x40 + 0x58] ^= 0x7F; // $MFT's run list
        images.push((
            Box::leak(format!("{name}-bad-mft-runs").into_boxed_str()),
            m,
        ));
        let mut m = img.clone();
        m[mft + 1022] ^= 1; // torn write in record 0
        images.push((Box::leak(format!("{name}-torn-mft").into_boxed_str()), m));
    }
    for (name, img) in images {
        std::fs::write(dir.join(format!("{name}.ntfz")), fuzz::encode_image(&img)).unwrap();
    }
    std::fs::write(dir.join("garbage.bin"), b"NTFS    \x00\x02").unwrap();
    std::fs::write(
        dir.join("bad-sparse.ntfz"),
        b"NTFZ\x00\x00\x10\x00\x00\xff\xff\xff\xff\x10\x00",
    )
    .unwrap();
}
