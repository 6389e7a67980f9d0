//! Unit tests on in-memory volumes.

extern crate std;

use crate::attr::*;
use crate::runlist::{self, Run};
use crate::*;
use alloc::format;
use alloc::vec::Vec;
use std::boxed::Box;
use std::string::String;
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
    assert_eq!(
        v.volume_version().unwrap(),
        (3, 1, VOLUME_DISABLE_SHORT_NAMES)
    );
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

/// Splits a file's `$DATA` into two extents, the second in an extension
/// record named by a new `$ATTRIBUTE_LIST`, reads it back and rewrites it.
#[test]
fn attribute_list_and_extension_records_are_read() {
    use crate::record::{Attr, Body, Record, MFT_RECORD_IN_USE};
    let mut v = fresh(8);
    let data: Vec<u8> = (0..20000u32).map(|i| (i % 251) as u8).collect();
    let n = v.write_file("/split", &data).unwrap();
    let mut base = v.read_record(n).unwrap();
    let d = base.find(AT_DATA, &[]).unwrap().clone();
    let nr = d.nonres().unwrap().clone();
    assert_eq!(nr.runs.len(), 1);
    let r0 = nr.runs[0];
    let mut first = nr.clone();
    first.runs = vec![Run {
        vcn: 0,
        len: 2,
        lcn: r0.lcn,
    }];
    first.last_vcn = 1;
    let mut second = nr.clone();
    second.start_vcn = 2;
    second.last_vcn = r0.len - 1;
    second.runs = vec![Run {
        vcn: 2,
        len: r0.len - 2,
        lcn: r0.lcn.map(|l| l + 2),
    }];
    second.allocated_size = 0;
    second.data_size = 0;
    second.initialized_size = 0;
    let (en, eseq) = v.alloc_record().unwrap();
    let mut ext = Record::new(en, eseq);
    ext.flags = MFT_RECORD_IN_USE;
    ext.base = make_ref(n, base.seq);
    ext.add(Attr {
        ty: AT_DATA,
        name: vec![],
        flags: 0,
        instance: 0,
        body: Body::NonResident(second),
    });
    base.find_mut(AT_DATA, &[]).unwrap().body = Body::NonResident(first);
    // The list: one entry per attribute, in type order.
    let mut list = Vec::new();
    let mut entry = |ty: u32, vcn: u64, fref: u64, inst: u16| {
        let mut e = vec![0u8; 0x20];
        e[0..4].copy_from_slice(&ty.to_le_bytes());
        e[4..6].copy_from_slice(&0x20u16.to_le_bytes());
        e[7] = 0x1a;
        e[8..16].copy_from_slice(&vcn.to_le_bytes());
        e[16..24].copy_from_slice(&fref.to_le_bytes());
        e[24..26].copy_from_slice(&inst.to_le_bytes());
        list.extend_from_slice(&e);
    };
    let bref = make_ref(n, base.seq);
    entry(
        AT_STANDARD_INFORMATION,
        0,
        bref,
        base.find(AT_STANDARD_INFORMATION, &[]).unwrap().instance,
    );
    entry(
        AT_FILE_NAME,
        0,
        bref,
        base.find(AT_FILE_NAME, &[]).unwrap().instance,
    );
    entry(AT_DATA, 0, bref, d.instance);
    entry(AT_DATA, 2, make_ref(en, eseq), 0);
    base.add(Attr::resident(AT_ATTRIBUTE_LIST, &[], list));
    v.write_record(&ext).unwrap();
    v.write_record(&base).unwrap();
    v.flush().unwrap();
    assert_eq!(v.read_file("/split").unwrap(), data);
    assert!(v.stat(n).unwrap().has_attr_list);
    assert!(
        check(&mut v).unwrap().is_empty(),
        "{:?}",
        check(&mut v).unwrap()
    );
    // Written again: the whole file fits in its base record, so the list
    // and the extension record go.
    v.write_file("/split", b"x").unwrap();
    assert_eq!(v.read_file("/split").unwrap(), b"x");
    assert!(!v.stat(n).unwrap().has_attr_list);
    assert!(!v.read_record(en).unwrap().in_use());
    assert_clean(&mut v);
}

/// A sparse run reads as zeros; a compression unit stored LZNT1-compressed
/// decompresses.
#[test]
fn sparse_and_compressed_streams_are_read() {
    use crate::record::Body;
    let mut v = fresh(8);
    let cs = v.cluster_size();
    let data: Vec<u8> = (0..5 * cs as u32).map(|i| (i % 13) as u8 + 1).collect();
    let n = v.write_file("/sparse", &data).unwrap();
    let mut r = v.read_record(n).unwrap();
    let a = r.find_mut(AT_DATA, &[]).unwrap();
    a.flags |= ATTR_SPARSE;
    let Body::NonResident(nr) = &mut a.body else {
        panic!()
    };
    let l = nr.runs[0].lcn.unwrap();
    nr.runs = vec![
        Run {
            vcn: 0,
            len: 2,
            lcn: Some(l),
        },
        Run {
            vcn: 2,
            len: 1,
            lcn: None,
        },
        Run {
            vcn: 3,
            len: 2,
            lcn: Some(l + 3),
        },
    ];
    nr.compressed_size = Some(4 * cs);
    v.write_record(&r).unwrap();
    v.free_clusters(l + 2, 1).unwrap();
    v.flush().unwrap();
    let got = v.read_file("/sparse").unwrap();
    let mut want = data.clone();
    want[2 * cs as usize..3 * cs as usize].fill(0);
    assert_eq!(got, want);
    assert!(check(&mut v).unwrap().is_empty());

    // Compressed: one 16-cluster unit stored in fewer clusters.
    let unit: Vec<u8> = (0..16 * cs as u32)
        .map(|i| b"compressible text "[(i % 18) as usize])
        .collect();
    let c = lznt1::compress(&unit);
    let k = (c.len() as u64).div_ceil(cs);
    assert!(k < 16);
    let n = v
        .write_file("/comp", &vec![0u8; (k * cs) as usize])
        .unwrap();
    let mut r = v.read_record(n).unwrap();
    let a = r.find_mut(AT_DATA, &[]).unwrap();
    a.flags |= ATTR_COMPRESSED;
    let Body::NonResident(nr) = &mut a.body else {
        panic!()
    };
    let l = nr.runs[0].lcn.unwrap();
    nr.runs = vec![
        Run {
            vcn: 0,
            len: k,
            lcn: Some(l),
        },
        Run {
            vcn: k,
            len: 16 - k,
            lcn: None,
        },
    ];
    nr.compression_unit = 4;
    nr.last_vcn = 15;
    nr.allocated_size = 16 * cs;
    nr.data_size = 16 * cs;
    nr.initialized_size = 16 * cs;
    nr.compressed_size = Some(k * cs);
    v.write_record(&r).unwrap();
    v.device().write_at(l * cs, &c).unwrap();
    assert_eq!(v.read_file("/comp").unwrap(), unit);
    assert!(matches!(
        v.write_file("/comp", b"x"),
        Err(Error::Unsupported(_))
    ));
}

#[test]
fn security_descriptors_are_shared_through_secure() {
    let mut v = fresh(8);
    let a = v.write_file("/a", b"1").unwrap();
    let b = v.write_file("/b", b"2").unwrap();
    let default = v.security_descriptor(a).unwrap().unwrap();
    let mut sd = format::default_security_descriptor();
    sd[2] |= 0x10; // a different control word makes a different descriptor
    let id = v.set_security(a, &sd).unwrap();
    assert!(id > 0x100);
    assert_eq!(v.security_descriptor(a).unwrap().unwrap(), sd);
    assert_eq!(v.set_security(b, &sd).unwrap(), id);
    assert_eq!(v.add_security_descriptor(&default).unwrap(), 0x100);
    // Many distinct descriptors: the $SII/$SDH roots overflow into blocks.
    for i in 0..200u32 {
        let mut d = format::default_security_descriptor();
        let m = d.windows(4).position(|w| w == [0xA9, 0, 0x12, 0]).unwrap();
        d[m..m + 4].copy_from_slice(&(0x0012_0000u32 | i).to_le_bytes());
        let n = v.write_file(&format!("/f{i}"), b"x").unwrap();
        v.set_security(n, &d).unwrap();
        assert_eq!(v.security_descriptor(n).unwrap().unwrap(), d);
    }
    assert_eq!(v.security_descriptor(b).unwrap().unwrap(), sd);
    assert!(v.set_security(a, &[1, 0]).is_err());
    assert!(
        check(&mut v).unwrap().is_empty(),
        "{:?}",
        check(&mut v).unwrap()
    );
}

#[test]
fn symlinks_are_surfaced_not_followed() {
    let mut v = fresh(8);
    v.create_dir_all("/target").unwrap();
    let n = v.write_file("/link", b"").unwrap();
    let data = reparse::ReparsePoint::symlink("\\??\\C:\\target", "C:\\target", false);
    v.set_reparse_point(n, &data).unwrap();
    assert_eq!(
        v.reparse_point(n).unwrap(),
        Some(reparse::ReparsePoint::Symlink {
            target: "\\??\\C:\\target".into(),
            print: "C:\\target".into(),
            relative: false
        })
    );
    assert!(v.stat(n).unwrap().std_info.file_attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0);
    assert_eq!(v.lookup("/link").unwrap(), n); // not followed
    let r = v.lookup("/$Extend/$Reparse").unwrap();
    let ctx = v
        .index_ctx(r, &"$R".encode_utf16().collect::<Vec<_>>())
        .unwrap();
    assert_eq!(v.index_all(&ctx).unwrap().len(), 1);
    assert!(matches!(
        v.set_reparse_point(n, &data),
        Err(Error::Unsupported(_))
    ));
    assert!(check(&mut v).unwrap().is_empty());
}

/// A sector-only device for testing [`Sectored`].
struct Sectors {
    ss: usize,
    data: Vec<u8>,
}

impl SectorIo for Sectors {
    fn sector_size(&self) -> u32 {
        self.ss as u32
    }
    fn sectors(&self) -> u64 {
        (self.data.len() / self.ss) as u64
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<()> {
        assert_eq!(buf.len() % self.ss, 0, "partial sector read");
        let o = lba as usize * self.ss;
        buf.copy_from_slice(self.data.get(o..o + buf.len()).ok_or(Error::OutOfRange)?);
        Ok(())
    }
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<()> {
        assert_eq!(buf.len() % self.ss, 0, "partial sector write");
        let o = lba as usize * self.ss;
        self.data
            .get_mut(o..o + buf.len())
            .ok_or(Error::OutOfRange)?
            .copy_from_slice(buf);
        Ok(())
    }
}

#[test]
fn sectored_device_matches_byte_device() {
    for ss in [512usize, 4096] {
        let mut s = Sectored::new(Sectors {
            ss,
            data: vec![0; 64 * 1024],
        });
        let mut m = MemDevice::new(64 * 1024);
        let mut x = 99u32;
        for _ in 0..300 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let off = (x >> 8) as u64 % 60_000;
            let len = (x % 5000) as usize;
            let data: Vec<u8> = (0..len).map(|i| (i as u32 ^ x) as u8).collect();
            s.write_at(off, &data).unwrap();
            m.write_at(off, &data).unwrap();
            let mut a = vec![0u8; len];
            let mut b = vec![0u8; len];
            s.read_at(off / 3, &mut a).unwrap();
            m.read_at(off / 3, &mut b).unwrap();
            assert_eq!(a, b);
        }
        assert_eq!(s.inner.data, m.data);
        assert_eq!(
            s.read_at(64 * 1024 - 10, &mut [0u8; 11]),
            Err(Error::OutOfRange)
        );
    }
    // A whole volume on 4 KiB sectors.
    let mut v = format(
        Sectored::new(Sectors {
            ss: 4096,
            data: vec![0; 8 << 20],
        }),
        &FormatOptions::default(),
    )
    .unwrap();
    v.write_file("/x", &[3u8; 10_000]).unwrap();
    let mut v = Volume::open(v.into_device()).unwrap();
    assert_eq!(v.read_file("/x").unwrap(), vec![3u8; 10_000]);
}

#[test]
fn huge_sizes_fail_cleanly() {
    let mut v = fresh(4);
    let n = v.write_file("/f", b"abc").unwrap();
    assert_eq!(v.write_at(n, &[], 1 << 40, b"x"), Err(Error::DiskFull));
    assert_eq!(v.set_len(n, &[], 1 << 40), Err(Error::DiskFull));
    assert_eq!(
        v.write_at(n, &[], u64::MAX, b"xy"),
        Err(Error::InvalidParameter("offset"))
    );
    assert_eq!(v.read_file("/f").unwrap(), b"abc");
    assert!(check(&mut v).unwrap().is_empty());
}

/// A record filled by links and resident streams: new names push the
/// largest resident stream out to clusters; truncating stays resident.
#[test]
fn full_records_move_streams_out() {
    let mut v = fresh(8);
    v.write_file("/file-2", &[7]).unwrap();
    v.link("/file-2", "/file-1").unwrap();
    v.link("/file-1", "/file-5").unwrap();
    v.write_file("/file-1:s1", &[1; 26]).unwrap();
    v.write_file("/file-1:s0", &[2; 202]).unwrap();
    for i in 0..2 {
        v.link("/file-1", &format!("/link {i}")).unwrap();
    }
    v.write_file("/file-1", &[]).unwrap();
    assert_eq!(v.read_file("/file-5:s0").unwrap(), vec![2; 202]);
    assert_eq!(v.read_file("/file-2:s1").unwrap(), vec![1; 26]);
    assert_eq!(v.read_file("/link 1").unwrap(), b"");
    let n = v.lookup("/file-1").unwrap();
    assert_eq!(v.stat(n).unwrap().link_count, 5);
    let streams = v.stat(n).unwrap().streams;
    assert!(streams.iter().any(|s| s.name == "s0" && !s.resident));
    assert!(check(&mut v).unwrap().is_empty());
}

/// Filling a small volume until it is full leaves no leaked clusters or
/// orphan records: failed operations undo their allocations.
#[test]
fn disk_full_leaves_a_consistent_volume() {
    let mut v = fresh(2);
    let mut full = 0;
    for i in 0..400 {
        let data = vec![i as u8; 3000 + (i * 37) % 9000];
        match v.write_file(&format!("/file number {i}"), &data) {
            Ok(_) => {}
            Err(Error::DiskFull) => full += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(full > 0, "volume never filled");
    let problems = check(&mut v).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    let mut v = Volume::open(v.into_device()).unwrap();
    assert!(check(&mut v).unwrap().is_empty());
}

#[test]
fn attributes_and_sizes_reach_every_file_name_copy() {
    let mut v = fresh(8);
    v.create("/d", true).unwrap();
    let n = v.write_file("/d/f", &[1u8; 5000]).unwrap();
    v.link("/d/f", "/g").unwrap();
    v.set_attributes(n, FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM)
        .unwrap();
    v.write_at(n, &[], 9000, b"!").unwrap();
    let info = v.stat(n).unwrap();
    assert_eq!(
        info.std_info.file_attributes,
        FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM
    );
    for f in &info.names {
        assert_eq!(f.data_size, 9001);
        assert_eq!(f.flags, FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM);
    }
    for (dir, name) in [(v.lookup("/d").unwrap(), "f"), (5, "g")] {
        let e = v
            .read_dir(dir)
            .unwrap()
            .into_iter()
            .find(|e| e.name == name)
            .unwrap();
        assert_eq!(e.file_name.data_size, 9001);
        assert_eq!(
            e.file_name.flags,
            FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM
        );
    }
    assert_eq!(
        v.set_attributes(n, 0x4000),
        Err(Error::InvalidParameter(
            "only read-only, hidden, system, archive and normal can be set"
        ))
    );
    assert!(check(&mut v).unwrap().is_empty());
}

/// Deleting runs of neighbouring names empties leaves: they borrow from or
/// merge with their siblings (and the tree stays ordered and consistent).
#[test]
fn emptied_leaves_borrow_and_merge() {
    for order in 0..3 {
        let mut v = fresh(16);
        let d = v.create("/d", true).unwrap();
        let names: Vec<String> = (0..400)
            .map(|i| format!("name {i:04} {}", "y".repeat(i % 50)))
            .collect();
        for n in &names {
            v.create(&format!("/d/{n}"), false).unwrap();
        }
        let mut gone: Vec<usize> = match order {
            0 => (0..380).collect(),
            1 => (20..400).rev().collect(),
            _ => (0..400)
                .filter(|i| (i / 25) % 2 == 0 || i % 7 == 0)
                .collect(),
        };
        for (k, &i) in gone.iter().enumerate() {
            v.remove(&format!("/d/{}", names[i])).unwrap();
            if k % 50 == 0 {
                assert!(check(&mut v).unwrap().is_empty(), "order {order} after {k}");
            }
        }
        gone.sort();
        let want: Vec<&String> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| gone.binary_search(i).is_err())
            .map(|(_, n)| n)
            .collect();
        let got: Vec<String> = v.read_dir(d).unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(got.iter().collect::<Vec<_>>(), want);
        assert!(check(&mut v).unwrap().is_empty());
    }
}

fn names_of(v: &mut Volume<MemDevice>, n: u64) -> Vec<(String, u8)> {
    let mut x: Vec<(String, u8)> = v
        .stat(n)
        .unwrap()
        .names
        .iter()
        .map(|f| (f.name_string(), f.namespace))
        .collect();
    x.sort();
    x
}

fn assert_clean(v: &mut Volume<MemDevice>) {
    let p = check(v).unwrap();
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn names_get_windows_namespaces_and_short_names() {
    let mut v = fresh(16);
    assert!(!v.short_name_creation());
    // 8.3 creation off (the default): long names are POSIX, 8.3 names Win32&DOS.
    let a = v.write_file("/lower case.txt", b"a").unwrap();
    let b = v.write_file("/UP.TXT", b"b").unwrap();
    assert_eq!(names_of(&mut v, a), [("lower case.txt".into(), NS_POSIX)]);
    assert_eq!(names_of(&mut v, b), [("UP.TXT".into(), NS_WIN32_AND_DOS)]);
    // On: Win32 + generated DOS name; the setting is kept in $Volume.
    v.set_short_name_creation(true).unwrap();
    let mut v = Volume::open(v.into_device()).unwrap();
    assert!(v.short_name_creation());
    let mut files = Vec::new();
    for i in 0..7 {
        files.push(
            v.write_file(&format!("/Some Stuff {i}.aspx"), b"x")
                .unwrap(),
        );
    }
    assert_eq!(
        names_of(&mut v, files[0]),
        [
            ("SOMEST~1.ASP".into(), NS_DOS),
            ("Some Stuff 0.aspx".into(), NS_WIN32)
        ]
    );
    assert_eq!(names_of(&mut v, files[3])[0].0, "SOMEST~4.ASP");
    let h = format!(
        "{:04X}",
        names::checksum(&"Some Stuff 4.aspx".encode_utf16().collect::<Vec<_>>())
    );
    assert_eq!(names_of(&mut v, files[4])[0].0, format!("SO{h}~1.ASP"));
    // Lookups match either name, case-insensitively; listings hide DOS names.
    assert_eq!(v.lookup("/somest~2.asp").unwrap(), files[1]);
    assert_eq!(v.lookup("/SOME STUFF 1.ASPX").unwrap(), files[1]);
    let listed: Vec<String> = v.read_dir(5).unwrap().into_iter().map(|d| d.name).collect();
    assert!(!listed.iter().any(|n| n.contains('~')), "{listed:?}");
    assert_clean(&mut v);
    // Rename keeps the pair: a new short name for the new long name.
    v.rename("/Some Stuff 0.aspx", "/Other name.html").unwrap();
    assert_eq!(
        names_of(&mut v, files[0]),
        [
            ("OTHERN~1.HTM".into(), NS_DOS),
            ("Other name.html".into(), NS_WIN32)
        ]
    );
    assert!(v.lookup("/SOMEST~1.ASP").is_err());
    // Renamed to its own short name: one Win32&DOS name.
    v.rename("/Other name.html", "/OTHERN~1.HTM").unwrap();
    assert_eq!(
        names_of(&mut v, files[0]),
        [("OTHERN~1.HTM".into(), NS_WIN32_AND_DOS)]
    );
    // A case change of a long name.
    v.rename("/Some Stuff 1.aspx", "/some stuff 1.aspx")
        .unwrap();
    assert_eq!(names_of(&mut v, files[1])[1].0, "some stuff 1.aspx");
    assert_clean(&mut v);
    // Delete through the short name removes both names.
    v.remove("/SOMEST~3.ASP").unwrap();
    assert!(v.lookup("/Some Stuff 2.aspx").is_err());
    // Hard links are POSIX names; removing the Win32 name keeps the link.
    v.link("/Some Stuff 3.aspx", "/hard link").unwrap();
    v.remove("/Some Stuff 3.aspx").unwrap();
    assert_eq!(names_of(&mut v, files[3]), [("hard link".into(), NS_POSIX)]);
    // A directory with a long name gets a short name too.
    let d = v.create("/Program Files", true).unwrap();
    assert_eq!(names_of(&mut v, d)[0].0, "PROGRA~1");
    v.write_file("/Program Files/readme.txt", b"r").unwrap();
    // A lower-case name that fits 8.3 is its own short name.
    let rd = v.lookup("/Program Files/readme.txt").unwrap();
    assert_eq!(
        names_of(&mut v, rd),
        [("readme.txt".into(), NS_WIN32_AND_DOS)]
    );
    assert_eq!(v.read_file("/PROGRA~1/README.TXT").unwrap(), b"r");
    assert_clean(&mut v);
}

/// A fresh volume's metadata files laid out as Windows' format writes them
/// (field by field, from Microsoft's and the libyal NTFS documentation and
/// the tables mkntfs copies from Windows).
#[test]
fn format_matches_windows_layout() {
    let mut v = fresh(16);
    // $MFT:$BITMAP: records 0-15 and $Extend's 24-26 in use, 16-23 free.
    let bm = v.read_stream_all(0, AT_BITMAP, &[]).unwrap();
    assert_eq!(&bm[..4], &[0xFF, 0xFF, 0x00, 0x07]);
    for n in 16..24 {
        assert!(!v.read_record(n).unwrap().in_use(), "record {n}");
    }
    // $AttrDef: Windows' table, row by row (name, type, display rule,
    // collation rule, flags, min, max).
    let want: &[(&str, u32, u32, u32, i64, i64)] = &[
        ("$STANDARD_INFORMATION", 0x10, 0, 0x40, 0x30, 0x48),
        ("$ATTRIBUTE_LIST", 0x20, 0, 0x80, 0, -1),
        ("$FILE_NAME", 0x30, 0, 0x42, 0x44, 0x242),
        ("$OBJECT_ID", 0x40, 0, 0x40, 0, 0x100),
        ("$SECURITY_DESCRIPTOR", 0x50, 0, 0x80, 0, -1),
        ("$VOLUME_NAME", 0x60, 0, 0x40, 2, 0x100),
        ("$VOLUME_INFORMATION", 0x70, 0, 0x40, 0xC, 0xC),
        ("$DATA", 0x80, 0, 0, 0, -1),
        ("$INDEX_ROOT", 0x90, 0, 0x40, 0, -1),
        ("$INDEX_ALLOCATION", 0xA0, 0, 0x80, 0, -1),
        ("$BITMAP", 0xB0, 0, 0x80, 0, -1),
        ("$REPARSE_POINT", 0xC0, 0, 0x80, 0, 0x4000),
        ("$EA_INFORMATION", 0xD0, 0, 0x40, 8, 8),
        ("$EA", 0xE0, 0, 0, 0, 0x10000),
        ("$LOGGED_UTILITY_STREAM", 0x100, 0, 0x80, 0, 0x10000),
    ];
    let ad = v.read_stream_all(4, AT_DATA, &[]).unwrap();
    assert_eq!(ad.len(), 2560);
    let u32at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let i64at = |b: &[u8], o: usize| i64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    for (i, (name, ty, coll, flags, min, max)) in want.iter().enumerate() {
        let e = &ad[i * 160..(i + 1) * 160];
        let got: Vec<u16> = e[..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|c| *c != 0)
            .collect();
        assert_eq!(String::from_utf16(&got).unwrap(), *name);
        assert_eq!(
            (
                u32at(e, 0x80),
                u32at(e, 0x84),
                u32at(e, 0x88),
                u32at(e, 0x8C)
            ),
            (*ty, 0, *coll, *flags),
            "{name}"
        );
        assert_eq!((i64at(e, 0x90), i64at(e, 0x98)), (*min, *max), "{name}");
    }
    assert!(ad[want.len() * 160..].iter().all(|b| *b == 0));
    // $Volume: a security descriptor (owner SYSTEM, group Administrators).
    // The bytes of Windows' descriptor (as mkntfs writes it): O:SY G:BA
    // D:(A;;0x12019f;;;SY)(A;;0x12019f;;;BA), DACL first.
    let hex = "010004804800000054000000000000001400000002003400020000000000\
               14009f011200010100000000000512000000000018009f011200010200\
               0000000005200000002002000001010000000000051200000001020000\
               000000052000000020020000";
    let want: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let r3 = v.read_record(3).unwrap();
    assert_eq!(
        r3.find(AT_SECURITY_DESCRIPTOR, &[])
            .unwrap()
            .value()
            .unwrap(),
        want
    );
    assert_eq!(v.security_descriptor(3).unwrap().unwrap(), want);
    // $UpCase:$Info: length 32, CRC-64 of the table, version fields 0.
    let info = v.read_file("/$UpCase:$Info").unwrap();
    let up = v.read_file("/$UpCase").unwrap();
    assert_eq!(info.len(), 32);
    assert_eq!(u32at(&info, 0), 32);
    assert_eq!(
        u64::from_le_bytes(info[8..16].try_into().unwrap()),
        format::crc64(&up)
    );
    assert!(info[16..].iter().all(|b| *b == 0));
    // $Secure:$SDH entries end in "I\0I\0".
    let r9 = v.read_record(9).unwrap();
    let sdh = r9
        .find(AT_INDEX_ROOT, &"$SDH".encode_utf16().collect::<Vec<_>>())
        .unwrap()
        .value()
        .unwrap()
        .to_vec();
    let e0 = 32; // root header 16 + node header 16
    assert_eq!(u16::from_le_bytes([sdh[e0 + 8], sdh[e0 + 9]]), 0x30);
    assert_eq!(u16::from_le_bytes([sdh[e0 + 2], sdh[e0 + 3]]), 20);
    assert_eq!(&sdh[e0 + 0x2C..e0 + 0x30], b"I\0I\0");
    // $Extend\$Quota: $O maps Administrators to owner 0x100; $Q has the
    // defaults entry (owner 1) and owner 0x100 with its SID.
    let q = v.lookup("/$Extend/$Quota").unwrap();
    let rq = v.read_record(q).unwrap();
    let root = |r: &record::Record, n: &str| {
        let (_, e, _) = index::parse_root(
            r.find(AT_INDEX_ROOT, &n.encode_utf16().collect::<Vec<_>>())
                .unwrap()
                .value()
                .unwrap(),
        )
        .unwrap();
        e
    };
    let o = root(&rq, "$O");
    assert_eq!(o.len(), 2);
    assert_eq!(o[0].key, format::administrators_sid());
    assert_eq!(o[0].data, 0x100u32.to_le_bytes());
    let qe = root(&rq, "$Q");
    assert_eq!(qe.len(), 3);
    assert_eq!(qe[0].key, 1u32.to_le_bytes());
    assert_eq!(qe[0].data.len(), 48);
    assert_eq!(qe[1].key, 0x100u32.to_le_bytes());
    assert_eq!(&qe[1].data[48..], format::administrators_sid());
    for e in &qe[..2] {
        assert_eq!((u32at(&e.data, 0), u32at(&e.data, 4)), (2, 1)); // version, default limits
        assert_eq!(i64at(&e.data, 24), -1); // threshold
        assert_eq!(i64at(&e.data, 32), -1); // limit
    }
    // The serial comes from the format time: two volumes differ.
    let s1 = v.boot.serial;
    let v2 = format(
        MemDevice::new(16 << 20),
        &FormatOptions {
            time: volume::fixed_clock() + 1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_ne!(s1, v2.boot.serial);
    assert_ne!(s1, 0);
    assert_clean(&mut v);
}

fn has_list(v: &mut Volume<MemDevice>, n: u64) -> bool {
    v.stat(n).unwrap().has_attr_list
}

/// Files whose attributes outgrow their record get an `$ATTRIBUTE_LIST`
/// and extension records (many hard links, many named streams, a run list
/// longer than a record, a directory whose index root moves out); they
/// shrink back, and deleting them frees every record and cluster.
#[test]
fn attribute_lists_are_written_when_a_record_overflows() {
    let mut v = fresh(32);
    v.create_dir_all("/d").unwrap();
    let body = pattern_bytes(1, 3000);
    let f = v.write_file("/d/file", &body).unwrap();
    let link = |i: u32| format!("/d/hard link with a long name to fill the record {i:03}");
    for i in 0..40 {
        v.link("/d/file", &link(i)).unwrap();
    }
    assert!(has_list(&mut v, f));
    assert_eq!(v.stat(f).unwrap().names.len(), 41);
    assert_clean(&mut v);
    for i in 0..40 {
        assert_eq!(v.read_file(&link(i)).unwrap(), body);
    }
    // Written through a link after the split: data and sizes stay right.
    let more = pattern_bytes(2, 9000);
    v.write_file(&link(7), &more).unwrap();
    assert_eq!(v.read_file("/d/file").unwrap(), more);
    for i in 0..38 {
        v.remove(&link(i)).unwrap();
    }
    assert!(!has_list(&mut v, f), "back in one record");
    assert_clean(&mut v);
    // Named streams.
    let g = v.write_file("/d/streams", b"main").unwrap();
    for i in 0..40 {
        v.write_file(
            &format!("/d/streams:stream number {i}"),
            &pattern_bytes(i, 1500),
        )
        .unwrap();
    }
    assert!(has_list(&mut v, g));
    assert_clean(&mut v);
    for i in 0..40 {
        assert_eq!(
            v.read_file(&format!("/d/streams:stream number {i}"))
                .unwrap(),
            pattern_bytes(i, 1500)
        );
    }
    // A run list longer than a record: every other cluster of two files.
    let a = v.write_file("/d/frag a", b"").unwrap();
    let b = v.write_file("/d/frag b", b"").unwrap();
    let cs = v.cluster_size() as usize;
    let mut want_a = Vec::new();
    for i in 0..300 {
        let chunk = pattern_bytes(100 + i, cs);
        v.write_at(a, &[], (i as usize * cs) as u64, &chunk)
            .unwrap();
        want_a.extend_from_slice(&chunk);
        v.write_at(b, &[], (i as usize * cs) as u64, &chunk)
            .unwrap();
    }
    assert!(v
        .stat(a)
        .unwrap()
        .streams
        .iter()
        .any(|s| s.runs.len() > 150));
    assert!(has_list(&mut v, a));
    assert_eq!(v.read_file("/d/frag a").unwrap(), want_a);
    assert_clean(&mut v);
    // A directory with its index root in an extension record.
    let dir = v.create_dir_all("/spill").unwrap();
    for i in 0..30 {
        v.write_at(
            dir,
            &"s".repeat(i + 1).encode_utf16().collect::<Vec<_>>(),
            0,
            &pattern_bytes(i as u32, 800),
        )
        .unwrap();
    }
    for i in 0..200 {
        v.write_file(&format!("/spill/entry {i:04}"), b"e").unwrap();
    }
    assert!(has_list(&mut v, dir));
    assert_eq!(v.read_dir(dir).unwrap().len(), 200);
    for i in (0..200).step_by(3) {
        v.remove(&format!("/spill/entry {i:04}")).unwrap();
    }
    assert_clean(&mut v);
    // Deleting frees everything: the volume's free space comes back.
    let free_before = free_clusters(&mut v);
    for p in ["/d/frag a", "/d/frag b", "/d/streams", &link(38), &link(39)] {
        v.remove(p).unwrap();
    }
    assert!(free_clusters(&mut v) > free_before);
    assert_clean(&mut v);
}

fn pattern_bytes(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn free_clusters(v: &mut Volume<MemDevice>) -> u64 {
    (0..v.total_clusters())
        .filter(|c| !v.cluster_in_use(*c).unwrap())
        .count() as u64
}

/// Writes the attribute-list and `$UpCase:$Info` seeds of the fuzz corpus
/// (run by hand: `cargo test -p ntfs -- --ignored gen_attr_list_seeds`).
/// `NTFS_ATTRLIST_IMAGE` may name an ntfs-3g volume with a directory whose
/// index root is in an extension record (see the interop tests).
#[test]
#[ignore]
fn gen_attr_list_seeds() {
    let dir = corpus_dir();
    let mut v = fresh(4);
    v.create_dir_all("/d").unwrap();
    v.write_file("/d/file", &pattern_bytes(1, 5000)).unwrap();
    for i in 0..30 {
        v.link(
            "/d/file",
            &format!("/d/link with a long name number {i:03}"),
        )
        .unwrap();
    }
    let s = v.write_file("/d/s", b"m").unwrap();
    for i in 0..30 {
        v.write_at(
            s,
            &format!("stream {i}").encode_utf16().collect::<Vec<_>>(),
            0,
            &[i as u8; 700],
        )
        .unwrap();
    }
    let n = v.lookup("/d/file").unwrap();
    assert!(has_list(&mut v, n) && has_list(&mut v, s));
    // Byte offset on the device of attribute `ty`'s value in record `rn`.
    let mut value_at = |rn: u64, ty: u32| {
        let raw = v.read_record_raw(rn).unwrap();
        let mut o = u16::from_le_bytes([raw[0x14], raw[0x15]]) as usize;
        loop {
            let t = u32::from_le_bytes(raw[o..o + 4].try_into().unwrap());
            let len = u32::from_le_bytes(raw[o + 4..o + 8].try_into().unwrap()) as usize;
            if t == ty {
                let vo = u16::from_le_bytes([raw[o + 0x14], raw[o + 0x15]]) as usize;
                return v.boot.mft_lcn * v.cluster_size()
                    + rn * v.record_size() as u64
                    + (o + vo) as u64;
            }
            assert!(t != 0xFFFF_FFFF);
            o += len;
        }
    };
    let list_at = value_at(n, AT_ATTRIBUTE_LIST);
    // $UpCase:$Info: found by its CRC (bytes 8..16 of the value).
    let info_at = {
        let raw = v.read_record_raw(10).unwrap();
        let up: Vec<u8> = v.upcase().iter().flat_map(|u| u.to_le_bytes()).collect();
        let crc = format::crc64(&up).to_le_bytes();
        let pos = raw.windows(8).position(|w| w == crc).unwrap();
        v.boot.mft_lcn * v.cluster_size() + 10 * v.record_size() as u64 + pos as u64 - 8
    };
    let img = v.into_device().data;
    let mut images: Vec<(String, Vec<u8>)> = vec![("ours-4m-attr-lists".into(), img.clone())];
    let mut m = img.clone();
    m[info_at as usize + 9] ^= 0x5A; // $Info CRC
    images.push(("ours-4m-bad-upcase-info".into(), m));
    for off in [0x20usize, 0x30, 0x40, 0x48] {
        let mut m = img.clone();
        m[list_at as usize + off] ^= 0x77 ^ off as u8; // inside the list value
        images.push((format!("ours-4m-bad-attr-list-{off:x}"), m));
    }
    if let Ok(p) = std::env::var("NTFS_ATTRLIST_IMAGE") {
        let img = std::fs::read(p).unwrap();
        images.push(("ntfs3g-4m-attr-list-dir".into(), img));
    }
    for (name, img) in images {
        std::fs::write(dir.join(format!("{name}.ntfz")), fuzz::encode_image(&img)).unwrap();
    }
}

/// The attribute-list seeds are in the corpus (and replayed by
/// `fuzz_corpus_replays_without_panic`); the clean ones check clean and
/// the damaged ones are reported, not panicked on.
#[test]
fn attribute_list_seeds_check_as_expected() {
    for (name, clean) in [
        ("ours-4m-attr-lists", true),
        ("ntfs3g-4m-attr-list-dir", true),
        ("ours-4m-bad-upcase-info", false),
    ] {
        let data = std::fs::read(corpus_dir().join(format!("{name}.ntfz"))).unwrap();
        let mut v = Volume::open(MemDevice::from_vec(fuzz::decode_image(&data).unwrap())).unwrap();
        let p = check(&mut v).unwrap();
        assert_eq!(p.is_empty(), clean, "{name}: {p:?}");
    }
}

#[test]
fn write_in_place_leaves_the_record_and_falls_back_outside_the_data() {
    let mut v = fresh(8);
    let n = v
        .create_in(
            crate::volume::rec::ROOT,
            &"f.bin".encode_utf16().collect::<Vec<_>>(),
            false,
        )
        .unwrap();
    v.set_len(n, &[], 64 * 1024).unwrap();
    let before = v.stat(n).unwrap();
    let page = vec![0xA5u8; 4096];
    v.write_in_place(n, &[], 8192, &page).unwrap();
    let after = v.stat(n).unwrap();
    // Only the data clusters were written: times and sizes as they were.
    assert_eq!(before.std_info.modification, after.std_info.modification);
    let data = v.read_file("/f.bin").unwrap();
    assert_eq!(data.len(), 64 * 1024);
    assert!(data[8192..12288].iter().all(|&b| b == 0xA5));
    assert!(data[..8192].iter().all(|&b| b == 0));
    // Past the end: the ordinary write path (which extends).
    v.write_in_place(n, &[], 64 * 1024, &page).unwrap();
    assert_eq!(v.read_file("/f.bin").unwrap().len(), 68 * 1024);
    // Resident streams too.
    let r = v
        .create_in(
            crate::volume::rec::ROOT,
            &"small".encode_utf16().collect::<Vec<_>>(),
            false,
        )
        .unwrap();
    v.write_in_place(r, &[], 0, b"abc").unwrap();
    assert_eq!(v.read_file("/small").unwrap(), b"abc");
    assert!(crate::check::check(&mut v).unwrap().is_empty());
}
