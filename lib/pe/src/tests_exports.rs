//! Export lookups (forwarders, ordinal bounds, several names per function,
//! hints), delay-load imports, and the loader's reader checked against the
//! inspector over Debian's Wine DLLs.

use super::*;
use alloc::string::String;
use alloc::vec;

extern crate std;

#[derive(Clone, Copy, Debug)]
enum F {
    Code(u32),
    Fwd(&'static str),
    Gap,
}

const DIR: u32 = 0x1000;
const DIR_SIZE: u32 = 0x800;

/// A PE32+ file whose export directory (RVA 0x1000, 0x800 bytes) has the
/// functions `funcs` from ordinal `base` and the name table `names`
/// ((name, function index), in the order given).
fn export_image(base: u32, funcs: &[F], names: &[(&[u8], u16)]) -> Vec<u8> {
    let mut b = vec![0u8; 0x900];
    let put =
        |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    put(&mut b, 12, DIR + 0x400); // module name
    put(&mut b, 16, base);
    put(&mut b, 20, funcs.len() as u32);
    put(&mut b, 24, names.len() as u32);
    put(&mut b, 28, DIR + 0x40);
    put(&mut b, 32, DIR + 0x200);
    put(&mut b, 36, DIR + 0x300);
    b[0x400..0x40C].copy_from_slice(b"TESTMOD.dll\0");
    let mut strings = 0x410usize;
    let mut string = |b: &mut Vec<u8>, s: &[u8]| {
        let at = strings;
        b[at..at + s.len()].copy_from_slice(s);
        strings += s.len() + 1;
        DIR + at as u32
    };
    for (i, f) in funcs.iter().enumerate() {
        let rva = match f {
            F::Code(r) => *r,
            F::Fwd(t) => string(&mut b, t.as_bytes()),
            F::Gap => 0,
        };
        put(&mut b, 0x40 + i * 4, rva);
    }
    for (h, (n, idx)) in names.iter().enumerate() {
        let r = string(&mut b, n);
        put(&mut b, 0x200 + h * 4, r);
        b[0x300 + h * 2..0x302 + h * 2].copy_from_slice(&idx.to_le_bytes());
    }
    super::tests_build(&b, &[(IMAGE_DIRECTORY_ENTRY_EXPORT, DIR, DIR_SIZE)])
}

fn mapped(f: &[u8]) -> (Vec<u8>, DataDirectory) {
    let pe = PeFile::parse(f).unwrap();
    let mut img = vec![0u8; pe.size_of_image as usize];
    pe.load(&mut img, pe.image_base).unwrap();
    let d = pe.directory(IMAGE_DIRECTORY_ENTRY_EXPORT);
    (img, d)
}

#[test]
fn forwarders_are_returned_as_forwarders_not_code() {
    let f = export_image(
        1,
        &[
            F::Fwd("NTDLL.RtlAcquireSRWLockExclusive"),
            F::Code(0x1880),
            F::Fwd("MSVCRT.#12"),
        ],
        &[(b"AcquireSRWLockExclusive", 0), (b"Beep", 1), (b"Cexit", 2)],
    );
    let (img, d) = mapped(&f);
    let t = ExportTable::parse(&img, d).unwrap();
    assert_eq!(t.name, b"TESTMOD.dll");
    let ExportTarget::Forwarder(fw) = t.by_name(b"AcquireSRWLockExclusive", 0).unwrap() else {
        panic!("a forwarder resolved as code");
    };
    assert_eq!(fw.dll, b"NTDLL");
    assert_eq!(fw.target, ForwardedTo::Name(b"RtlAcquireSRWLockExclusive"));
    assert_eq!(fw.text, b"NTDLL.RtlAcquireSRWLockExclusive");
    assert_eq!(t.by_name(b"Beep", 1).unwrap(), ExportTarget::Code(0x1880));
    let ExportTarget::Forwarder(fw) = t.by_ordinal(3).unwrap() else {
        panic!("ordinal 3 is a forwarder");
    };
    assert_eq!(
        (fw.dll, fw.target),
        (&b"MSVCRT"[..], ForwardedTo::Ordinal(12))
    );
    let ex = exports(&img, d).unwrap();
    assert!(ex[0].forwarder.is_some() && ex[2].forwarder.is_some());
    assert_eq!(ex[1].target(), Some(ExportTarget::Code(0x1880)));
    // The kernel loader does not follow forwarders.
    let imp = Import {
        dll: b"TESTMOD.dll",
        name: Some(b"AcquireSRWLockExclusive"),
        ordinal: 0,
        iat_rva: 0,
    };
    assert_eq!(
        resolve_import(&ex, d, &imp),
        Err(STATUS_DRIVER_ENTRYPOINT_NOT_FOUND)
    );
    assert!(matches!(
        find_export(&img, d, b"AcquireSRWLockExclusive"),
        Ok(ExportTarget::Forwarder(_))
    ));
}

#[test]
fn malformed_forwarders_are_errors() {
    for bad in [
        &b"NoDot"[..],
        b".Name",
        b"DLL.",
        b"DLL.#",
        b"DLL.#65536",
        b"DLL.#1a",
        b"DLL.#123456",
    ] {
        assert_eq!(
            Forwarder::parse(bad),
            Err(STATUS_INVALID_IMAGE_FORMAT),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(
        Forwarder::parse(b"api-ms-win-core-synch-l1-2-0.Sleep")
            .unwrap()
            .dll,
        b"api-ms-win-core-synch-l1-2-0"
    );
    assert_eq!(
        Forwarder::parse(b"A.#65535").unwrap().target,
        ForwardedTo::Ordinal(65535)
    );
    // In a table, a bad forwarder fails its own lookup and the listing.
    let f = export_image(
        1,
        &[F::Fwd("NoDot"), F::Code(0x1880)],
        &[(b"A", 0), (b"B", 1)],
    );
    let (img, d) = mapped(&f);
    let t = ExportTable::parse(&img, d).unwrap();
    assert_eq!(t.by_name(b"A", 0), Err(STATUS_INVALID_IMAGE_FORMAT));
    assert_eq!(t.by_name(b"B", 0), Ok(ExportTarget::Code(0x1880)));
    assert_eq!(exports(&img, d), Err(STATUS_INVALID_IMAGE_FORMAT));
}

#[test]
fn ordinal_base_overflow_is_an_error() {
    for (base, n) in [
        (0xFFFF_FFFF, 1),
        (0xFFFF_FFFF, 3),
        (0xFFFF, 2),
        (0x1_0000, 0),
    ] {
        let funcs = vec![F::Code(0x1880); n];
        let f = export_image(base, &funcs, &[]);
        let (img, d) = mapped(&f);
        assert_eq!(
            exports(&img, d).unwrap_err(),
            STATUS_INVALID_IMAGE_FORMAT,
            "base {base:#x} count {n}"
        );
        assert!(ExportTable::parse(&img, d).is_err());
        fuzz_one(&f);
        image::fuzz_inspect(&f);
    }
    // The largest table that fits: ordinals 0xFFFE and 0xFFFF.
    let f = export_image(0xFFFE, &[F::Code(0x1880), F::Code(0x1890)], &[]);
    let (img, d) = mapped(&f);
    let ex = exports(&img, d).unwrap();
    assert_eq!(ex[1].ordinal, 0xFFFF);
    let t = ExportTable::parse(&img, d).unwrap();
    assert_eq!(t.by_ordinal(0xFFFF), Ok(ExportTarget::Code(0x1890)));
    assert_eq!(t.by_ordinal(0xFFFD), Err(STATUS_ORDINAL_NOT_FOUND));
    assert_eq!(t.by_ordinal(u32::MAX), Err(STATUS_ORDINAL_NOT_FOUND));
    // The inspector, which shows what the loader refuses, still does not wrap.
    let f = export_image(0xFFFF_FFFF, &[F::Code(0x1880), F::Code(0x1890)], &[]);
    assert!(image::Image::parse(&f).unwrap().exports().is_err());
}

#[test]
fn every_name_of_a_function_is_kept() {
    // Two names for function 0 (sorted table: Alias < Main < Other).
    let f = export_image(
        5,
        &[F::Code(0x1880), F::Code(0x1890), F::Gap],
        &[(b"Alias", 0), (b"Main", 0), (b"Other", 1)],
    );
    let (img, d) = mapped(&f);
    let ex = exports(&img, d).unwrap();
    assert_eq!(ex[0].names, vec![&b"Alias"[..], &b"Main"[..]]);
    assert_eq!(ex[1].names, vec![&b"Other"[..]]);
    assert!(ex[2].names.is_empty() && ex[2].target().is_none());
    assert_eq!(ex[0].ordinal, 5);
    let t = ExportTable::parse(&img, d).unwrap();
    for n in [&b"Alias"[..], b"Main"] {
        assert_eq!(t.by_name(n, 0), Ok(ExportTarget::Code(0x1880)));
    }
    // An unused slot is not an entry point.
    assert_eq!(t.by_ordinal(7), Err(STATUS_ORDINAL_NOT_FOUND));
}

#[test]
fn name_lookup_uses_the_hint_then_binary_search() {
    let names: Vec<Vec<u8>> = (0..40u32)
        .map(|i| alloc::format!("Fn{i:03}").into_bytes())
        .collect();
    let table: Vec<(&[u8], u16)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (&n[..], i as u16))
        .collect();
    let funcs: Vec<F> = (0..40).map(|i| F::Code(0x1900 + i * 4)).collect();
    let f = export_image(1, &funcs, &table);
    let (img, d) = mapped(&f);
    let t = ExportTable::parse(&img, d).unwrap();
    for (i, n) in names.iter().enumerate() {
        let want = Ok(i as u32);
        assert_eq!(t.index_of_name(n, i as u16), want, "right hint");
        assert_eq!(t.index_of_name(n, 0), want, "wrong hint");
        assert_eq!(t.index_of_name(n, 9999), want, "hint past the table");
    }
    for missing in [&b"Fn"[..], b"Fn0400", b"", b"A", b"Zz"] {
        assert_eq!(
            t.index_of_name(missing, 0),
            Err(STATUS_ENTRYPOINT_NOT_FOUND)
        );
    }
    // A hint that names another function is not trusted blindly.
    assert_eq!(t.index_of_name(b"Fn007", 8), Ok(7));
}

#[test]
fn truncated_tables_are_errors() {
    let f = export_image(1, &[F::Code(0x1880)], &[(b"A", 0)]);
    let (mut img, d) = mapped(&f);
    // Name table pointing past the image.
    img[0x1000 + 32..0x1000 + 36].copy_from_slice(&0x2FFEu32.to_le_bytes());
    assert_eq!(
        ExportTable::parse(&img, d).unwrap_err(),
        STATUS_INVALID_IMAGE_FORMAT
    );
    // A name whose function index is outside the address table.
    let f = export_image(1, &[F::Code(0x1880)], &[(b"A", 3)]);
    let (img, d) = mapped(&f);
    assert_eq!(exports(&img, d).unwrap_err(), STATUS_INVALID_IMAGE_FORMAT);
    assert_eq!(
        ExportTable::parse(&img, d).unwrap().by_name(b"A", 0),
        Err(STATUS_INVALID_IMAGE_FORMAT)
    );
    // Code RVA outside the image.
    let f = export_image(1, &[F::Code(0x10_0000)], &[(b"A", 0)]);
    let (img, d) = mapped(&f);
    assert_eq!(
        ExportTable::parse(&img, d).unwrap().by_name(b"A", 0),
        Err(STATUS_INVALID_IMAGE_FORMAT)
    );
}

/// A delay-load directory at RVA 0x1000: descriptor 0 for `USER32.dll`
/// (a name and an ordinal), then the terminator.
fn delay_image(attributes: u32, terminate: bool) -> Vec<u8> {
    let mut b = vec![0u8; 0x200];
    let put =
        |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    put(&mut b, 0, attributes);
    put(&mut b, 4, 0x1100); // DLL name
    put(&mut b, 8, 0x1110); // module handle
    put(&mut b, 12, 0x1120); // IAT
    put(&mut b, 16, 0x1140); // INT
    put(&mut b, 28, 0x1234_5678);
    if !terminate {
        b[32..64].fill(0xEE);
    }
    b[0x100..0x10B].copy_from_slice(b"USER32.dll\0");
    b[0x140..0x148].copy_from_slice(&0x1160u64.to_le_bytes());
    b[0x148..0x150].copy_from_slice(&((1u64 << 63) | 7).to_le_bytes());
    b[0x160..0x162].copy_from_slice(&3u16.to_le_bytes());
    b[0x162..0x16E].copy_from_slice(b"MessageBoxW\0");
    super::tests_build(&b, &[(IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT, 0x1000, 64)])
}

#[test]
fn delay_load_imports() {
    let f = delay_image(DELAYLOAD_RVA_BASED, true);
    let pe = PeFile::parse(&f).unwrap();
    let mut img = vec![0u8; pe.size_of_image as usize];
    pe.load(&mut img, pe.image_base).unwrap();
    let dl = delay_imports(&img, pe.directory(IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT)).unwrap();
    assert_eq!(dl.len(), 1);
    let d = &dl[0];
    assert_eq!(d.dll, b"USER32.dll");
    assert_eq!(
        (d.module_handle_rva, d.iat_rva, d.name_table_rva),
        (0x1110, 0x1120, 0x1140)
    );
    assert_eq!(d.time_date_stamp, 0x1234_5678);
    assert_eq!(
        d.functions,
        vec![
            Import {
                dll: b"USER32.dll",
                name: Some(b"MessageBoxW"),
                ordinal: 3,
                iat_rva: 0x1120
            },
            Import {
                dll: b"USER32.dll",
                name: None,
                ordinal: 7,
                iat_rva: 0x1128
            },
        ]
    );
    // The inspector reads the same directory from the file.
    let ins = image::Image::parse(&f).unwrap().delay_imports().unwrap();
    assert_eq!(ins.len(), 1);
    assert_eq!(ins[0].functions.len(), 2);
    assert_eq!(ins[0].iat_rva, d.iat_rva);
    // The old VA form and a missing terminator are errors, not panics.
    for f in [
        delay_image(0, true),
        delay_image(DELAYLOAD_RVA_BASED, false),
    ] {
        let pe = PeFile::parse(&f).unwrap();
        let mut img = vec![0u8; pe.size_of_image as usize];
        pe.load(&mut img, pe.image_base).unwrap();
        assert_eq!(
            delay_imports(&img, pe.directory(IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT)),
            Err(STATUS_INVALID_IMAGE_FORMAT)
        );
        fuzz_one(&f);
    }
}

/// Writes the corpus files these images seed (kept in git) and replays them.
#[test]
fn export_corpus_files_match_builders() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pe_load");
    let files = [
        (
            "exports-forwarders.bin",
            export_image(
                1,
                &[
                    F::Fwd("NTDLL.RtlAcquireSRWLockExclusive"),
                    F::Code(0x1880),
                    F::Fwd("MSVCRT.#12"),
                ],
                &[(b"A", 0), (b"B", 1), (b"B2", 1)],
            ),
        ),
        (
            "exports-ordinal-base-max.bin",
            export_image(0xFFFF_FFFF, &[F::Code(0x1880); 2], &[(b"A", 1)]),
        ),
        ("delay-imports.bin", delay_image(DELAYLOAD_RVA_BASED, true)),
    ];
    for (name, data) in files {
        let p = dir.join(name);
        if std::env::var_os("NTRS_WRITE_CORPUS").is_some() {
            std::fs::write(&p, &data).unwrap();
        }
        let on_disk = std::fs::read(&p)
            .unwrap_or_else(|e| panic!("{}: {e} (NTRS_WRITE_CORPUS=1 writes it)", p.display()));
        assert_eq!(on_disk, data, "{name} differs from its builder");
        fuzz_one(&data);
    }
}

proptest::proptest! {
    /// A random export table (sorted distinct names, each naming a random
    /// function; code, forwarders and gaps) reads back exactly: every name
    /// finds its function with any hint, every ordinal its target.
    #[test]
    fn random_export_tables_read_back(
        base in 0u32..0xFF00,
        kinds in proptest::collection::vec(0u8..3, 1..30),
        name_set in proptest::collection::btree_set("[A-Za-z_][A-Za-z0-9_]{0,10}", 0..30),
        picks in proptest::collection::vec(proptest::num::u16::ANY, 30),
        hint in proptest::num::u16::ANY,
    ) {
        let funcs: Vec<F> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| match k {
                0 => F::Code(0x1880 + i as u32 * 8),
                1 => F::Fwd(if i % 2 == 0 { "OTHER.Target" } else { "OTHER.#9" }),
                _ => F::Gap,
            })
            .collect();
        let names: Vec<(&[u8], u16)> = name_set
            .iter()
            .zip(&picks)
            .map(|(n, p)| (n.as_bytes(), p % funcs.len() as u16))
            .collect();
        let f = export_image(base, &funcs, &names);
        let (img, d) = mapped(&f);
        let t = ExportTable::parse(&img, d).unwrap();
        let ex = exports(&img, d).unwrap();
        proptest::prop_assert_eq!(ex.len(), funcs.len());
        for (i, (e, k)) in ex.iter().zip(&funcs).enumerate() {
            proptest::prop_assert_eq!(e.ordinal, base + i as u32);
            let want = match k {
                F::Code(r) => Some(ExportTarget::Code(*r)),
                F::Fwd(s) => Some(ExportTarget::Forwarder(Forwarder::parse(s.as_bytes()).unwrap())),
                F::Gap => None,
            };
            proptest::prop_assert_eq!(e.target(), want);
            proptest::prop_assert_eq!(t.by_ordinal(e.ordinal).ok(), want);
            let mine: Vec<&[u8]> = names.iter().filter(|n| n.1 as usize == i).map(|n| n.0).collect();
            proptest::prop_assert_eq!(&e.names, &mine);
        }
        for (n, idx) in &names {
            proptest::prop_assert_eq!(t.index_of_name(n, hint), Ok(*idx as u32));
        }
    }
}

/// Wine's PE DLLs (Debian's libwine, x86_64-windows): the loader's export
/// reader agrees with the inspector on every function, forwarder and name,
/// finds every name by binary search, and reads every import directory.
#[test]
fn wine_dlls_exports_agree_with_the_inspector() {
    let dir = std::path::Path::new("/usr/lib/x86_64-linux-gnu/wine/x86_64-windows");
    let Ok(rd) = std::fs::read_dir(dir) else {
        if std::env::var("NTRS_REQUIRE_INTEROP").as_deref() == Ok("1") {
            panic!("{} is missing and NTRS_REQUIRE_INTEROP=1", dir.display());
        }
        std::eprintln!("SKIP: {} is missing (libwine)", dir.display());
        return;
    };
    let (mut files, mut forwarders, mut multi_named) = (0, 0, 0);
    let mut kernel32_checked = false;
    for e in rd {
        let p = e.unwrap().path();
        let data = std::fs::read(&p).unwrap();
        let Ok(pe) = PeFile::parse(&data) else {
            continue;
        };
        files += 1;
        let mut img = vec![0u8; pe.size_of_image as usize];
        pe.load(&mut img, pe.image_base).unwrap();
        let d = pe.directory(IMAGE_DIRECTORY_ENTRY_EXPORT);
        let who = p.display();
        let ex = exports(&img, d).unwrap_or_else(|s| panic!("{who}: {s:?}"));
        let t = ExportTable::parse(&img, d).unwrap();
        imports(&img, pe.directory(IMAGE_DIRECTORY_ENTRY_IMPORT))
            .unwrap_or_else(|s| panic!("{who}: imports {s:?}"));
        delay_imports(&img, pe.directory(IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT)).unwrap();
        let ins = image::Image::parse(&data).unwrap().exports().unwrap();
        let Some(ins) = ins else {
            assert!(ex.is_empty());
            continue;
        };
        assert_eq!(ex.len(), ins.functions.len(), "{who}");
        for (a, b) in ex.iter().zip(&ins.functions) {
            assert_eq!((a.ordinal, a.rva), (b.ordinal, b.rva), "{who}");
            assert_eq!(a.forwarder.map(|f| f.text), b.forwarder, "{who}");
            forwarders += a.forwarder.is_some() as usize;
            multi_named += (a.names.len() > 1) as usize;
        }
        for n in &ins.names {
            assert!(ex[n.index as usize].has_name(n.name), "{who}");
            assert_eq!(
                t.index_of_name(n.name, 0),
                Ok(n.index),
                "{who}: {}",
                String::from_utf8_lossy(n.name)
            );
            assert_eq!(t.index_of_name(n.name, n.hint as u16), Ok(n.index), "{who}");
        }
        if p.file_name().unwrap() == "kernel32.dll" {
            let ExportTarget::Forwarder(f) = t.by_name(b"AcquireSRWLockExclusive", 0).unwrap()
            else {
                panic!("kernel32!AcquireSRWLockExclusive resolved as code");
            };
            assert!(
                f.dll.eq_ignore_ascii_case(b"ntdll"),
                "{}",
                String::from_utf8_lossy(f.text)
            );
            assert_eq!(f.target, ForwardedTo::Name(b"RtlAcquireSRWLockExclusive"));
            kernel32_checked = true;
        }
    }
    std::eprintln!(
        "{files} Wine DLLs, {forwarders} forwarders, {multi_named} functions with several names"
    );
    assert!(files > 100 && forwarders > 100 && kernel32_checked);
}
