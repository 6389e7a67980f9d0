use super::*;
use alloc::vec;

/// Builds a small PE32+ file: one section at RVA 0x1000 holding `body`,
/// with the given data directories.
fn build(body: &[u8], dirs: &[(usize, u32, u32)]) -> Vec<u8> {
    tests_build(body, dirs)
}

/// [`build`], for the other test modules.
pub(crate) fn tests_build(body: &[u8], dirs: &[(usize, u32, u32)]) -> Vec<u8> {
    let mut f = vec![0u8; 0x400];
    f[0..2].copy_from_slice(b"MZ");
    f[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    f[0x80..0x84].copy_from_slice(b"PE\0\0");
    let fh = 0x84;
    f[fh..fh + 2].copy_from_slice(&IMAGE_FILE_MACHINE_AMD64.to_le_bytes());
    f[fh + 2..fh + 4].copy_from_slice(&1u16.to_le_bytes());
    f[fh + 16..fh + 18].copy_from_slice(&240u16.to_le_bytes());
    let oh = fh + 20;
    f[oh..oh + 2].copy_from_slice(&IMAGE_NT_OPTIONAL_HDR64_MAGIC.to_le_bytes());
    f[oh + 16..oh + 20].copy_from_slice(&0x1000u32.to_le_bytes());
    f[oh + 24..oh + 32].copy_from_slice(&0x1_4000_0000u64.to_le_bytes());
    f[oh + 32..oh + 36].copy_from_slice(&0x1000u32.to_le_bytes());
    f[oh + 56..oh + 60].copy_from_slice(&0x3000u32.to_le_bytes());
    f[oh + 60..oh + 64].copy_from_slice(&0x400u32.to_le_bytes());
    f[oh + 108..oh + 112].copy_from_slice(&16u32.to_le_bytes());
    for &(i, rva, size) in dirs {
        f[oh + 112 + i * 8..oh + 116 + i * 8].copy_from_slice(&rva.to_le_bytes());
        f[oh + 116 + i * 8..oh + 120 + i * 8].copy_from_slice(&size.to_le_bytes());
    }
    let sh = oh + 240;
    f[sh..sh + 5].copy_from_slice(b".text");
    f[sh + 8..sh + 12].copy_from_slice(&0x2000u32.to_le_bytes());
    f[sh + 12..sh + 16].copy_from_slice(&0x1000u32.to_le_bytes());
    f[sh + 16..sh + 20].copy_from_slice(&(body.len() as u32).to_le_bytes());
    f[sh + 20..sh + 24].copy_from_slice(&0x400u32.to_le_bytes());
    f[sh + 36..sh + 40]
        .copy_from_slice(&(IMAGE_SCN_MEM_READ | IMAGE_SCN_MEM_EXECUTE).to_le_bytes());
    f.extend_from_slice(body);
    f
}

#[test]
fn parses_headers_and_sections() {
    let f = build(&[0xC3; 16], &[]);
    let pe = PeFile::parse(&f).unwrap();
    assert_eq!(pe.image_base, 0x1_4000_0000);
    assert_eq!(pe.address_of_entry_point, 0x1000);
    assert_eq!(pe.sections.len(), 1);
    assert_eq!(pe.sections[0].name(), ".text");
    let mut img = vec![0u8; pe.size_of_image as usize];
    pe.map_into(&mut img).unwrap();
    assert_eq!(&img[0x1000..0x1010], &[0xC3; 16]);
    assert_eq!(&img[0..2], b"MZ");
}

#[test]
fn rejects_bad_images() {
    assert_eq!(PeFile::parse(b"").unwrap_err(), STATUS_INVALID_IMAGE_NOT_MZ);
    assert_eq!(
        PeFile::parse(b"ZM\0\0").unwrap_err(),
        STATUS_INVALID_IMAGE_NOT_MZ
    );
    let f = build(&[0; 16], &[]);
    for cut in [0x40, 0x84, 0x100, 0x200] {
        assert!(PeFile::parse(&f[..cut]).is_err(), "truncated at {cut:#x}");
    }
    let mut g = f.clone();
    g[0x84] = 0x4C; // i386
    g[0x85] = 0x01;
    assert_eq!(
        PeFile::parse(&g).unwrap_err(),
        STATUS_IMAGE_MACHINE_TYPE_MISMATCH
    );
    let mut g = f.clone();
    g[0x3C] = 0xF0;
    g[0x3D] = 0xFF;
    assert_eq!(PeFile::parse(&g).unwrap_err(), STATUS_INVALID_IMAGE_FORMAT);
    // Section raw data past the end of the file.
    let mut g = f;
    let sh = 0x84 + 20 + 240;
    g[sh + 16..sh + 20].copy_from_slice(&0x10_0000u32.to_le_bytes());
    assert_eq!(PeFile::parse(&g).unwrap_err(), STATUS_INVALID_IMAGE_FORMAT);
}

#[test]
fn never_panics_on_mutations() {
    let f = build(&[0x11; 64], &[(5, 0x1020, 12)]);
    for i in 0..f.len() {
        for v in [0u8, 0xFF, 0x80] {
            let mut g = f.clone();
            g[i] = v;
            if let Ok(pe) = PeFile::parse(&g) {
                let mut img = vec![0u8; pe.size_of_image as usize];
                let _ = pe.load(&mut img, 0xFFFF_F800_0000_0000);
                let _ = exports(&img, pe.directory(0));
                let _ = imports(&img, pe.directory(1));
            }
        }
    }
}

#[test]
fn applies_dir64_relocations() {
    let mut body = vec![0u8; 0x40];
    body[0..8].copy_from_slice(&0x1_4000_1234u64.to_le_bytes());
    // Relocation block at RVA 0x1020: page 0x1000, entries DIR64@0 and ABSOLUTE padding.
    body[0x20..0x24].copy_from_slice(&0x1000u32.to_le_bytes());
    body[0x24..0x28].copy_from_slice(&12u32.to_le_bytes());
    body[0x28..0x2A].copy_from_slice(&(IMAGE_REL_BASED_DIR64 << 12).to_le_bytes());
    let f = build(&body, &[(IMAGE_DIRECTORY_ENTRY_BASERELOC, 0x1020, 12)]);
    let pe = PeFile::parse(&f).unwrap();
    let mut img = vec![0u8; 0x3000];
    pe.load(&mut img, 0xFFFF_F800_0040_0000).unwrap();
    assert_eq!(rd64(&img, 0x1000).unwrap(), 0xFFFF_F800_0040_1234);
    // An unknown relocation type is rejected.
    let mut bad = body.clone();
    bad[0x28..0x2A].copy_from_slice(&(7u16 << 12).to_le_bytes());
    let f = build(&bad, &[(IMAGE_DIRECTORY_ENTRY_BASERELOC, 0x1020, 12)]);
    let pe = PeFile::parse(&f).unwrap();
    assert_eq!(
        pe.load(&mut img, 0x1000).unwrap_err(),
        STATUS_INVALID_IMAGE_FORMAT
    );
}

#[test]
fn exports_and_imports() {
    let mut body = vec![0u8; 0x200];
    // Export directory at RVA 0x1000: base 1, 2 functions, 1 name.
    let put =
        |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    put(&mut body, 16, 1);
    put(&mut body, 20, 2);
    put(&mut body, 24, 1);
    put(&mut body, 28, 0x1050);
    put(&mut body, 32, 0x1060);
    put(&mut body, 36, 0x1070);
    put(&mut body, 0x50, 0x1100);
    put(&mut body, 0x54, 0x1108);
    put(&mut body, 0x60, 0x1080);
    body[0x70] = 1; // name ordinal index 1
    body[0x80..0x8C].copy_from_slice(b"KeBugCheckEx");
    // Import descriptor at RVA 0x1090 -> ILT 0x10C0, name 0x10E0, IAT 0x10D0.
    put(&mut body, 0x90, 0x10C0);
    put(&mut body, 0x90 + 12, 0x10E0);
    put(&mut body, 0x90 + 16, 0x10D0);
    body[0xC0..0xC8].copy_from_slice(&0x10F0u64.to_le_bytes());
    body[0xD0..0xD8].copy_from_slice(&0x10F0u64.to_le_bytes());
    body[0xE0..0xEC].copy_from_slice(b"ntoskrnl.exe");
    body[0xF2..0xFE].copy_from_slice(b"KeBugCheckEx");
    let f = build(&body, &[(0, 0x1000, 0x90), (1, 0x1090, 40)]);
    let pe = PeFile::parse(&f).unwrap();
    let mut img = vec![0u8; 0x3000];
    pe.load(&mut img, pe.image_base).unwrap();
    assert_eq!(mapped_directory(&img, 0).unwrap(), pe.directory(0));
    assert_eq!(mapped_directory(&img, 1).unwrap(), pe.directory(1));
    assert_eq!(
        mapped_directory(&img[..0x100], 0).unwrap_err(),
        STATUS_INVALID_IMAGE_FORMAT
    );
    let ex = exports(&img, pe.directory(0)).unwrap();
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[1].names, vec![&b"KeBugCheckEx"[..]]);
    assert_eq!(ex[1].ordinal, 2);
    assert_eq!(
        find_export(&img, pe.directory(0), b"KeBugCheckEx").unwrap(),
        ExportTarget::Code(0x1108)
    );
    assert_eq!(
        find_export(&img, pe.directory(0), b"Nope").unwrap_err(),
        STATUS_ENTRYPOINT_NOT_FOUND
    );
    let im = imports(&img, pe.directory(1)).unwrap();
    assert_eq!(im.len(), 1);
    assert_eq!(im[0].dll, b"ntoskrnl.exe");
    assert_eq!(im[0].name, Some(&b"KeBugCheckEx"[..]));
    bind_imports(&mut img, pe.directory(1), |_| Ok(0xFFFF_F800_0000_1108)).unwrap();
    assert_eq!(rd64(&img, 0x10D0).unwrap(), 0xFFFF_F800_0000_1108);
}

/// Replays the committed fuzz corpus (`fuzz/corpus/pe_load`) through the parsers.
#[test]
fn fuzz_corpus_replays_without_panic() {
    extern crate std;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pe_load");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        fuzz_one(&data);
        n += 1;
    }
    assert!(n >= 4, "corpus at {} has only {n} files", dir.display());
}

/// Writes the seed corpus from the synthetic images above (kept in git).
#[test]
fn seed_corpus_matches_builder() {
    extern crate std;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pe_load");
    let seed = build(&[0xC3; 16], &[]);
    let on_disk = std::fs::read(dir.join("seed-minimal.bin")).unwrap();
    assert_eq!(
        on_disk, seed,
        "regenerate seed-minimal.bin if the builder changed"
    );
}

/// Rewrites the characteristics of the single section of a `build` image.
fn with_section_flags(mut f: Vec<u8>, flags: u32) -> Vec<u8> {
    let sh = 0x84 + 20 + 240;
    f[sh + 36..sh + 40].copy_from_slice(&flags.to_le_bytes());
    f
}

#[test]
fn kernel_page_protections_are_w_xor_x() {
    use PageProtection::*;
    // Headers page, the 2-page .text section (RX), nothing else.
    let f = build(&[0xC3; 16], &[]);
    let pe = PeFile::parse(&f).unwrap();
    assert_eq!(
        pe.kernel_page_protections().unwrap(),
        [ReadOnly, ReadExecute, ReadExecute]
    );
    let rw = with_section_flags(f.clone(), IMAGE_SCN_MEM_READ | IMAGE_SCN_MEM_WRITE);
    assert_eq!(
        PeFile::parse(&rw)
            .unwrap()
            .kernel_page_protections()
            .unwrap(),
        [ReadOnly, ReadWrite, ReadWrite]
    );
    let ro = with_section_flags(f.clone(), IMAGE_SCN_MEM_READ);
    assert_eq!(
        PeFile::parse(&ro)
            .unwrap()
            .kernel_page_protections()
            .unwrap(),
        [ReadOnly, ReadOnly, ReadOnly]
    );
    let disc = with_section_flags(f.clone(), IMAGE_SCN_MEM_READ | IMAGE_SCN_MEM_DISCARDABLE);
    assert_eq!(
        PeFile::parse(&disc)
            .unwrap()
            .kernel_page_protections()
            .unwrap(),
        [ReadOnly, Discard, Discard]
    );
    // Writable and executable at once is refused.
    let wx = with_section_flags(
        f,
        IMAGE_SCN_MEM_READ | IMAGE_SCN_MEM_WRITE | IMAGE_SCN_MEM_EXECUTE,
    );
    assert_eq!(
        PeFile::parse(&wx)
            .unwrap()
            .kernel_page_protections()
            .unwrap_err(),
        STATUS_INVALID_IMAGE_PROTECT
    );
}

#[test]
fn kernel_page_protections_reject_sections_outside_the_image() {
    let mut f = build(&[0xC3; 16], &[]);
    let sh = 0x84 + 20 + 240;
    // Virtual size 0x3000 at RVA 0x1000 in a 0x3000-byte image.
    f[sh + 8..sh + 12].copy_from_slice(&0x3000u32.to_le_bytes());
    let pe = PeFile::parse(&f).unwrap();
    assert_eq!(
        pe.kernel_page_protections().unwrap_err(),
        STATUS_INVALID_IMAGE_FORMAT
    );
    // SizeOfImage far beyond the last section.
    let mut f = build(&[0xC3; 16], &[]);
    let oh = 0x84 + 20;
    f[oh + 56..oh + 60].copy_from_slice(&0x10_0000u32.to_le_bytes());
    let pe = PeFile::parse(&f).unwrap();
    assert_eq!(
        pe.kernel_page_protections().unwrap_err(),
        STATUS_INVALID_IMAGE_FORMAT
    );
}

#[test]
fn resolves_imports_with_kernel_statuses() {
    let dir = DataDirectory {
        virtual_address: 0x5000,
        size: 0x100,
    };
    let ex = [
        Export {
            names: vec![&b"IoCreateDevice"[..], &b"IoCreateDeviceAlias"[..]],
            ordinal: 1,
            rva: 0x1000,
            forwarder: None,
        },
        Export {
            names: vec![],
            ordinal: 2,
            rva: 0x1100,
            forwarder: None,
        },
        Export {
            names: vec![&b"Forwarded"[..]],
            ordinal: 3,
            rva: 0x5010,
            forwarder: Some(Forwarder::parse(b"HAL.KeStallExecutionProcessor").unwrap()),
        },
        Export {
            names: vec![&b"Gap"[..]],
            ordinal: 4,
            rva: 0,
            forwarder: None,
        },
    ];
    let imp = |name: Option<&'static [u8]>, ordinal: u16| Import {
        dll: b"ntoskrnl.exe",
        name,
        ordinal,
        iat_rva: 0,
    };
    assert_eq!(
        resolve_import(&ex, dir, &imp(Some(b"IoCreateDevice"), 0)),
        Ok(0x1000)
    );
    assert_eq!(
        resolve_import(&ex, dir, &imp(Some(b"IoCreateDeviceAlias"), 0)),
        Ok(0x1000)
    );
    assert_eq!(resolve_import(&ex, dir, &imp(None, 2)), Ok(0x1100));
    assert_eq!(
        resolve_import(&ex, dir, &imp(Some(b"IoCreateDevic"), 0)),
        Err(STATUS_DRIVER_ENTRYPOINT_NOT_FOUND)
    );
    assert_eq!(
        resolve_import(&ex, dir, &imp(None, 9)),
        Err(STATUS_DRIVER_ORDINAL_NOT_FOUND)
    );
    assert_eq!(
        resolve_import(&ex, dir, &imp(Some(b"Forwarded"), 0)),
        Err(STATUS_DRIVER_ENTRYPOINT_NOT_FOUND)
    );
    assert_eq!(
        resolve_import(&ex, dir, &imp(Some(b"Gap"), 0)),
        Err(STATUS_DRIVER_ENTRYPOINT_NOT_FOUND)
    );
}

/// A real driver image (ntrstest.sys as the drivers workspace links it,
/// kept in the fuzz corpus): W^X pages per section, `.reloc` discarded,
/// every import from ntoskrnl.exe by name.
#[test]
fn real_driver_image() {
    extern crate std;
    use PageProtection::*;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pe_load");
    let data = std::fs::read(dir.join("driver-ntrstest.bin")).unwrap();
    let pe = PeFile::parse(&data).unwrap();
    assert_eq!(pe.subsystem, IMAGE_SUBSYSTEM_NATIVE);
    let prot = pe.kernel_page_protections().unwrap();
    assert_eq!(prot[0], ReadOnly, "headers");
    for s in &pe.sections {
        let p = prot[(s.virtual_address / PAGE_SIZE) as usize];
        let want = match s.name() {
            ".text" => ReadExecute,
            ".rdata" => ReadOnly,
            ".data" => ReadWrite,
            ".reloc" => Discard,
            _ => continue,
        };
        assert_eq!(p, want, "{}", s.name());
    }
    let mut img = vec![0u8; pe.size_of_image as usize];
    pe.load(&mut img, 0xFFFF_FA00_0010_0000).unwrap();
    let im = imports(&img, pe.directory(IMAGE_DIRECTORY_ENTRY_IMPORT)).unwrap();
    assert!(!im.is_empty());
    assert!(im
        .iter()
        .all(|i| i.dll == b"ntoskrnl.exe" && i.name.is_some()));
    // The copy with one import renamed fails to bind against the real names.
    let bad = std::fs::read(dir.join("driver-noimp.bin")).unwrap();
    let pe = PeFile::parse(&bad).unwrap();
    let mut img = vec![0u8; pe.size_of_image as usize];
    pe.load(&mut img, 0xFFFF_FA00_0010_0000).unwrap();
    let names: Vec<Vec<u8>> = imports(&img, pe.directory(IMAGE_DIRECTORY_ENTRY_IMPORT))
        .unwrap()
        .iter()
        .filter_map(|i| i.name.map(|n| n.to_vec()))
        .filter(|n| n != b"KeQueryTimeIncremenX")
        .chain([b"KeQueryTimeIncrement".to_vec()])
        .collect();
    let ex: Vec<Export<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Export {
            names: vec![n],
            ordinal: i as u32 + 1,
            rva: 0x1000 + i as u32,
            forwarder: None,
        })
        .collect();
    let r = bind_imports(&mut img, pe.directory(IMAGE_DIRECTORY_ENTRY_IMPORT), |i| {
        resolve_import(&ex, DataDirectory::default(), i).map(u64::from)
    });
    assert_eq!(r, Err(STATUS_DRIVER_ENTRYPOINT_NOT_FOUND));
}

#[path = "tests_exports.rs"]
mod exports_tests;
