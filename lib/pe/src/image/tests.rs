use super::*;
use alloc::vec;
use proptest::prelude::*;

extern crate std;

/// Builds an image file: headers in the first 0x400 bytes, one section
/// `.text` at RVA 0x1000 (file offset 0x400, 0x1000 bytes).
struct B {
    f: Vec<u8>,
    plus: bool,
}

const SEC: usize = 0x400;
const BASE64: u64 = 0x1_4000_0000;
const BASE32: u64 = 0x40_0000;

impl B {
    fn new(plus: bool) -> B {
        let mut f = vec![0u8; SEC + 0x1000];
        f[0..2].copy_from_slice(b"MZ");
        f[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        f[0x80..0x84].copy_from_slice(b"PE\0\0");
        let mut b = B { f, plus };
        let fh = 0x84;
        b.w16(fh, if plus { 0x8664 } else { 0x14C });
        b.w16(fh + 2, 1);
        b.w32(fh + 4, 0x63F1_4E2B);
        b.w16(fh + 16, if plus { 240 } else { 224 });
        b.w16(fh + 18, 0x2022);
        let oh = fh + 20;
        b.w16(oh, if plus { 0x20B } else { 0x10B });
        b.f[oh + 2] = 14;
        b.f[oh + 3] = 36;
        b.w32(oh + 16, 0x1800);
        if plus {
            b.w64(oh + 24, BASE64);
        } else {
            b.w32(oh + 24, 0x1000);
            b.w32(oh + 28, BASE32 as u32);
        }
        b.w32(oh + 32, 0x1000);
        b.w32(oh + 36, 0x200);
        b.w32(oh + 56, 0x2000);
        b.w32(oh + 60, 0x400);
        b.w16(oh + 68, 3);
        b.w16(oh + 70, 0x160);
        b.w32(oh + if plus { 108 } else { 92 }, 16);
        let sh = oh + if plus { 240 } else { 224 };
        b.f[sh..sh + 5].copy_from_slice(b".text");
        b.w32(sh + 8, 0x1000);
        b.w32(sh + 12, 0x1000);
        b.w32(sh + 16, 0x1000);
        b.w32(sh + 20, SEC as u32);
        b.w32(sh + 36, 0xE000_0020);
        b
    }
    fn base(&self) -> u64 {
        if self.plus {
            BASE64
        } else {
            BASE32
        }
    }
    fn w16(&mut self, off: usize, v: u16) {
        self.f[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn w32(&mut self, off: usize, v: u32) {
        self.f[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn w64(&mut self, off: usize, v: u64) {
        self.f[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn at(rva: u32) -> usize {
        SEC + (rva - 0x1000) as usize
    }
    fn r32(&mut self, rva: u32, v: u32) {
        self.w32(Self::at(rva), v);
    }
    fn r64(&mut self, rva: u32, v: u64) {
        self.w64(Self::at(rva), v);
    }
    /// A pointer-sized value.
    fn rp(&mut self, rva: u32, v: u64) {
        if self.plus {
            self.r64(rva, v)
        } else {
            self.r32(rva, v as u32)
        }
    }
    fn rs(&mut self, rva: u32, s: &[u8]) {
        let o = Self::at(rva);
        self.f[o..o + s.len()].copy_from_slice(s);
    }
    fn dir(&mut self, i: usize, rva: u32, size: u32) {
        let d = 0x84 + 20 + if self.plus { 112 } else { 96 } + i * 8;
        self.w32(d, rva);
        self.w32(d + 4, size);
    }
}

const GUID: [u8; 16] = [
    0x78, 0x56, 0x34, 0x12, 0xBC, 0x9A, 0xF0, 0xDE, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF,
];

/// An image with every directory ntrs-pe shows (the `pe_inspect` seed).
fn rich(plus: bool) -> Vec<u8> {
    let mut b = B::new(plus);
    let base = b.base();
    let ps = if plus { 8 } else { 4 };
    // Exports at 0x1000 (directory size 0x200 holds the forwarder strings).
    b.r32(0x1000 + 12, 0x1100);
    b.r32(0x1000 + 16, 5);
    b.r32(0x1000 + 20, 3);
    b.r32(0x1000 + 24, 3);
    b.r32(0x1000 + 28, 0x1040);
    b.r32(0x1000 + 32, 0x1050);
    b.r32(0x1000 + 36, 0x1060);
    b.r32(0x1040, 0x1800);
    b.r32(0x1044, 0x1120);
    b.r32(0x1048, 0x1140);
    for (i, (rva, name)) in [
        (0x1070, &b"Alpha"[..]),
        (0x1080, b"Beta"),
        (0x1090, b"Gamma"),
    ]
    .into_iter()
    .enumerate()
    {
        b.r32(0x1050 + i as u32 * 4, rva);
        b.rs(rva, name);
        b.w16(B::at(0x1060 + i as u32 * 2), i as u16);
    }
    b.rs(0x1100, b"rich.dll");
    b.rs(0x1120, b"NTDLL.RtlFoo");
    b.rs(0x1140, b"rich.Alpha");
    b.dir(0, 0x1000, 0x200);
    // Imports at 0x1200: KERNEL32.dll Sleep (hint 7) and ordinal 16.
    b.r32(0x1200, 0x1240);
    b.r32(0x1200 + 12, 0x1280);
    b.r32(0x1200 + 16, 0x1260);
    let ord = if plus { 1u64 << 63 } else { 1 << 31 } | 16;
    for t in [0x1240, 0x1260] {
        b.rp(t, 0x12A0);
        b.rp(t + ps, ord);
    }
    b.rs(0x1280, b"KERNEL32.dll");
    b.w16(B::at(0x12A0), 7);
    b.rs(0x12A2, b"Sleep");
    b.dir(1, 0x1200, 40);
    // Delay-load imports at 0x1300: user32.dll MessageBoxW (hint 3).
    b.r32(0x1300, 1);
    b.r32(0x1304, 0x1340);
    b.r32(0x1308, 0x1350);
    b.r32(0x130C, 0x1360);
    b.r32(0x1310, 0x1380);
    b.rs(0x1340, b"user32.dll");
    b.rp(0x1380, 0x13A0);
    b.w16(B::at(0x13A0), 3);
    b.rs(0x13A2, b"MessageBoxW");
    b.dir(13, 0x1300, 64);
    // Base relocations at 0x1400: page 0x1000, DIR64 (or HIGHLOW) at 8, padding.
    b.r32(0x1400, 0x1000);
    b.r32(0x1404, 12);
    b.w16(B::at(0x1408), (if plus { 10u16 } else { 3 }) << 12 | 8);
    b.dir(5, 0x1400, 12);
    // TLS at 0x1500 with one callback.
    b.rp(0x1500, base + 0x1600);
    b.rp(0x1500 + ps, base + 0x1610);
    b.rp(0x1500 + 2 * ps, base + 0x1620);
    b.rp(0x1500 + 3 * ps, base + 0x1630);
    b.r32(0x1500 + 4 * ps, 0x10);
    b.r32(0x1500 + 4 * ps + 4, 0x0030_0000);
    b.rp(0x1630, base + 0x1800);
    b.dir(9, 0x1500, 4 * ps + 8);
    // Exception directory at 0x1700 (x64 only matters), unwind info at 0x1900/0x1940.
    for (i, rf) in [(0x1800, 0x1820, 0x1900), (0x1820, 0x1840, 0x1940)]
        .into_iter()
        .enumerate()
    {
        let e = 0x1700 + i as u32 * 12;
        b.r32(e, rf.0);
        b.r32(e + 4, rf.1);
        b.r32(e + 8, rf.2);
    }
    b.dir(3, 0x1700, 24);
    let codes: [u16; 7] = [
        0x10 | 1 << 8,           // ALLOC_LARGE (info 0): next slot * 8
        0x30,                    //   -> 0x180
        0x09 | 4 << 8 | 3 << 12, // SAVE_NONVOL rbx
        0x10,                    //   -> offset 0x80
        0x05 | 3 << 8,           // SET_FPREG
        0x02 | 5 << 12,          // PUSH_NONVOL rbp
        0x01 | 2 << 8 | 3 << 12, // ALLOC_SMALL 0x20
    ];
    b.rs(0x1900, &[1 | (UNW_FLAG_EHANDLER << 3), 0x10, 7, 0x25]);
    for (i, c) in codes.iter().enumerate() {
        b.w16(B::at(0x1904 + i as u32 * 2), *c);
    }
    b.r32(0x1914, 0x1A00);
    b.rs(0x1940, &[1 | (UNW_FLAG_CHAININFO << 3), 0, 1, 0]);
    b.w16(B::at(0x1944), 10 << 8 | 1 << 12);
    b.r32(0x1948, 0x1800);
    b.r32(0x194C, 0x1820);
    b.r32(0x1950, 0x1900);
    // Load config at 0x1A40: Size covers up to GuardFlags.
    let lc_size = if plus { 148 } else { 92 };
    b.r32(0x1A40, lc_size);
    b.rp(0x1A40 + if plus { 88 } else { 60 }, base + 0x1B00);
    b.r32(0x1A40 + if plus { 144 } else { 88 }, 0x100);
    b.dir(10, 0x1A40, lc_size);
    // Debug directory at 0x1B40: CodeView RSDS at 0x1B60.
    let pdb = b"c:\\src\\rich.pdb\0";
    b.r32(0x1B40 + 12, IMAGE_DEBUG_TYPE_CODEVIEW);
    b.r32(0x1B40 + 16, 24 + pdb.len() as u32);
    b.r32(0x1B40 + 20, 0x1B60);
    b.r32(0x1B40 + 24, B::at(0x1B60) as u32);
    b.rs(0x1B60, b"RSDS");
    b.rs(0x1B64, &GUID);
    b.r32(0x1B74, 3);
    b.rs(0x1B78, pdb);
    b.dir(6, 0x1B40, 28);
    // Certificate table after the section: two WIN_CERTIFICATEs, 8-byte aligned.
    let cert_at = b.f.len();
    b.f.extend_from_slice(&13u32.to_le_bytes());
    b.f.extend_from_slice(&0x200u16.to_le_bytes());
    b.f.extend_from_slice(&2u16.to_le_bytes());
    b.f.extend_from_slice(b"hello\0\0\0");
    b.f.extend_from_slice(&16u32.to_le_bytes());
    b.f.extend_from_slice(&0x200u16.to_le_bytes());
    b.f.extend_from_slice(&1u16.to_le_bytes());
    b.f.extend_from_slice(b"certdata");
    b.dir(4, cert_at as u32, (b.f.len() - cert_at) as u32);
    // A correct checksum.
    let img = Image::parse(&b.f).unwrap();
    let (off, sum) = (img.checksum_offset(), img.computed_checksum());
    b.w32(off, sum);
    b.f
}

#[test]
fn parses_headers_of_pe32_plus_and_pe32() {
    for plus in [true, false] {
        let f = rich(plus);
        let img = Image::parse(&f).unwrap();
        assert_eq!(img.is_pe32_plus(), plus);
        assert_eq!(img.file.machine, if plus { 0x8664 } else { 0x14C });
        assert_eq!(img.file.time_date_stamp, 0x63F1_4E2B);
        assert_eq!(img.opt.image_base, if plus { BASE64 } else { BASE32 });
        assert_eq!(img.opt.base_of_data, if plus { None } else { Some(0x1000) });
        assert_eq!(img.opt.address_of_entry_point, 0x1800);
        assert_eq!(img.opt.major_linker_version, 14);
        assert_eq!(img.opt.subsystem, 3);
        assert_eq!(img.opt.dll_characteristics, 0x160);
        assert_eq!(img.directories.len(), 16);
        assert_eq!(img.directory(1).virtual_address, 0x1200);
        assert_eq!(img.sections.len(), 1);
        assert_eq!(img.sections[0].name, ".text");
        assert_eq!(img.sections[0].characteristics, 0xE000_0020);
        assert_eq!(img.opt.check_sum, img.computed_checksum());
    }
}

#[test]
fn imports_and_delay_imports() {
    for plus in [true, false] {
        let f = rich(plus);
        let img = Image::parse(&f).unwrap();
        let imps = img.imports().unwrap();
        assert_eq!(imps.len(), 1);
        assert_eq!(imps[0].dll, b"KERNEL32.dll");
        let fs = &imps[0].functions;
        assert_eq!(fs.len(), 2);
        assert_eq!((fs[0].name, fs[0].hint), (Some(&b"Sleep"[..]), 7));
        assert_eq!(fs[0].iat_rva, 0x1260);
        assert_eq!(fs[1].ordinal, Some(16));
        let delay = img.delay_imports().unwrap();
        assert_eq!(delay.len(), 1);
        assert_eq!(delay[0].dll, b"user32.dll");
        assert_eq!(delay[0].iat_rva, 0x1360);
        assert_eq!(delay[0].functions.len(), 1);
        assert_eq!(delay[0].functions[0].name, Some(&b"MessageBoxW"[..]));
        assert_eq!(delay[0].functions[0].hint, 3);
    }
}

#[test]
fn exports_with_forwarders_and_resolution() {
    let f = rich(true);
    let img = Image::parse(&f).unwrap();
    let x = img.exports().unwrap().unwrap();
    assert_eq!(x.name, b"rich.dll");
    assert_eq!(x.ordinal_base, 5);
    let ords: Vec<u32> = x.functions.iter().map(|f| f.ordinal).collect();
    assert_eq!(ords, [5, 6, 7]);
    assert_eq!(x.functions[0].forwarder, None);
    assert_eq!(x.functions[1].forwarder, Some(&b"NTDLL.RtlFoo"[..]));
    assert_eq!(x.name_of(2).unwrap().name, b"Gamma");
    assert_eq!(x.resolve(b"Alpha").unwrap(), ResolvedExport::Function(0));
    assert_eq!(
        x.resolve(b"Beta").unwrap(),
        ResolvedExport::Forwarder(b"NTDLL.RtlFoo")
    );
    // Gamma forwards to rich.Alpha, this same module.
    assert_eq!(x.resolve(b"Gamma").unwrap(), ResolvedExport::Function(0));
    assert_eq!(
        x.resolve(b"Nope").unwrap_err().status,
        STATUS_ENTRYPOINT_NOT_FOUND
    );
}

#[test]
fn forwarder_loops_are_an_error() {
    let mut f = rich(true);
    // Alpha -> rich.Gamma, Gamma -> rich.Alpha.
    let a = B::at(0x1040);
    f[a..a + 4].copy_from_slice(&0x1160u32.to_le_bytes());
    let s = B::at(0x1160);
    f[s..s + 10].copy_from_slice(b"RICH.Gamma");
    let img = Image::parse(&f).unwrap();
    let e = img.exports().unwrap_err();
    assert!(e.what.contains("loop"), "{e}");
    // A forwarder by ordinal to itself: Gamma -> rich.#7 (its own ordinal).
    let mut f = rich(true);
    let s = B::at(0x1140);
    f[s..s + 10].copy_from_slice(b"rich.#7\0\0\0");
    let e = Image::parse(&f).unwrap().exports().unwrap_err();
    assert!(e.what.contains("loop"), "{e}");
}

#[test]
fn relocations_tls_load_config() {
    for plus in [true, false] {
        let f = rich(plus);
        let img = Image::parse(&f).unwrap();
        let r = img.relocations().unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].page_rva, 0x1000);
        assert_eq!(r[0].entries, [(if plus { 10 } else { 3 }, 8), (0, 0)]);
        assert_eq!(
            relocation_type_name(r[0].entries[0].0, img.file.machine),
            if plus { "DIR64" } else { "HIGHLOW" }
        );
        let t = img.tls().unwrap().unwrap();
        assert_eq!(t.start_address_of_raw_data, img.opt.image_base + 0x1600);
        assert_eq!(t.size_of_zero_fill, 0x10);
        assert_eq!(t.characteristics, 0x0030_0000);
        assert_eq!(t.callbacks, [img.opt.image_base + 0x1800]);
        let lc = img.load_config().unwrap().unwrap();
        let get = |n: &str| lc.fields.iter().find(|f| f.0 == n).map(|f| f.1);
        assert_eq!(get("SecurityCookie"), Some(img.opt.image_base + 0x1B00));
        assert_eq!(get("GuardFlags"), Some(0x100));
        // Fields past Size are not shown.
        assert_eq!(get("CodeIntegrity.Flags"), None);
        assert_eq!(lc.fields.last().unwrap().0, "GuardFlags");
    }
}

#[test]
fn unwind_info_is_decoded() {
    let f = rich(true);
    let img = Image::parse(&f).unwrap();
    let funcs = img.runtime_functions().unwrap();
    assert_eq!(funcs.len(), 2);
    let u = img.unwind_info(funcs[0].unwind_info_address).unwrap();
    assert_eq!(
        (u.version, u.flags, u.size_of_prolog),
        (1, UNW_FLAG_EHANDLER, 0x10)
    );
    assert_eq!((u.frame_register, u.frame_offset), (5, 2));
    let ops: Vec<(u8, UnwindOp)> = u.codes.iter().map(|c| (c.code_offset, c.op)).collect();
    assert_eq!(
        ops,
        [
            (
                0x10,
                UnwindOp::Alloc {
                    size: 0x180,
                    large: true
                }
            ),
            (
                0x09,
                UnwindOp::SaveNonvol {
                    reg: 3,
                    offset: 0x80,
                    far: false
                }
            ),
            (0x05, UnwindOp::SetFpreg),
            (0x02, UnwindOp::PushNonvol { reg: 5 }),
            (
                0x01,
                UnwindOp::Alloc {
                    size: 0x20,
                    large: false
                }
            ),
        ]
    );
    assert_eq!(u.handler, Some(0x1A00));
    assert_eq!(u.chained, None);
    let c = img.unwind_info(funcs[1].unwind_info_address).unwrap();
    assert_eq!(c.codes[0].op, UnwindOp::PushMachframe { error_code: true });
    assert_eq!(
        c.chained,
        Some(RuntimeFunction {
            begin_address: 0x1800,
            end_address: 0x1820,
            unwind_info_address: 0x1900
        })
    );
    // PE32 (x86) has no x64 function table.
    let img32_file = rich(false);
    assert!(Image::parse(&img32_file)
        .unwrap()
        .runtime_functions()
        .unwrap()
        .is_empty());
    // A code whose operand slots are past the count is an error, not a panic.
    let mut g = f.clone();
    g[B::at(0x1902)] = 1; // one code: ALLOC_LARGE needs two slots
    let e = Image::parse(&g).unwrap().unwind_info(0x1900).unwrap_err();
    assert!(e.what.contains("slots"), "{e}");
}

#[test]
fn debug_directory_codeview() {
    let f = rich(true);
    let img = Image::parse(&f).unwrap();
    let d = img.debug_directory().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(debug_type_name(d[0].debug_type), "CODEVIEW");
    let cv = d[0].codeview.as_ref().unwrap();
    assert_eq!(cv.path(), b"c:\\src\\rich.pdb");
    let CodeView::Rsds { guid, age, .. } = cv else {
        panic!("not RSDS")
    };
    assert_eq!(*age, 3);
    assert_eq!(guid_string(guid), "{12345678-9ABC-DEF0-0123-456789ABCDEF}");
    assert_eq!(cv.symbol_server_key(), "123456789ABCDEF00123456789ABCDEF3");
    // NB10.
    let mut g = f.clone();
    let o = B::at(0x1B60);
    g[o..o + 4].copy_from_slice(b"NB10");
    let img = Image::parse(&g).unwrap();
    let d = img.debug_directory().unwrap();
    let cv = d[0].codeview.as_ref().unwrap();
    assert!(
        matches!(
            cv,
            CodeView::Nb10 {
                offset: 0x1234_5678,
                signature: 0xDEF0_9ABC,
                age: 0x6745_2301,
                ..
            }
        ),
        "{cv:?}"
    );
    // Garbage instead of a CodeView record.
    let mut g = f;
    g[o..o + 4].copy_from_slice(b"XXXX");
    let e = Image::parse(&g).unwrap().debug_directory().unwrap_err();
    assert!(e.what.contains("CodeView"), "{e}");
}

#[test]
fn certificate_table() {
    let f = rich(true);
    let img = Image::parse(&f).unwrap();
    let c = img.certificates().unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(
        (c[0].length, c[0].revision, c[0].certificate_type),
        (13, 0x200, 2)
    );
    assert_eq!(c[0].data, b"hello");
    assert_eq!(certificate_type_name(c[1].certificate_type), "X509");
    assert_eq!(c[1].offset, c[0].offset + 16);
    // A length past the table.
    let mut g = f.clone();
    let at = c[1].offset as usize;
    g[at..at + 4].copy_from_slice(&100u32.to_le_bytes());
    let e = Image::parse(&g).unwrap().certificates().unwrap_err();
    assert!(e.what.contains("length 100"), "{e}");
    // A table past the end of the file.
    let e = Image::parse(&f[..f.len() - 1])
        .unwrap()
        .certificates()
        .unwrap_err();
    assert!(e.what.contains("past the end"), "{e}");
}

#[test]
fn checksum_matches_the_word_by_word_definition() {
    let f = rich(true);
    let img = Image::parse(&f).unwrap();
    assert_eq!(
        img.computed_checksum(),
        pe_checksum_reference(&f, img.checksum_offset())
    );
    // Changing one byte changes the checksum; the stored field does not count.
    let mut g = f.clone();
    g[0x500] ^= 1;
    assert_ne!(
        Image::parse(&g).unwrap().computed_checksum(),
        img.computed_checksum()
    );
    let mut g = f.clone();
    let o = img.checksum_offset();
    g[o..o + 4].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
    assert_eq!(
        Image::parse(&g).unwrap().computed_checksum(),
        img.computed_checksum()
    );
    // Known value: 4 bytes 01 02 03 04, field outside: 0x0201 + 0x0403 + 4.
    assert_eq!(pe_checksum(&[1, 2, 3, 4], 100), 0x0604 + 4);
    // Carry folding: 0xFFFF + 0x0002 = 0x1_0001 -> 0x0002.
    assert_eq!(pe_checksum(&[0xFF, 0xFF, 0x02, 0x00], 100), 0x0002 + 4);
}

#[test]
fn long_section_names_come_from_the_string_table() {
    let mut b = B::new(true);
    let strtab = b.f.len();
    b.f.extend_from_slice(&16u32.to_le_bytes());
    b.f.extend_from_slice(b".debug_info\0");
    b.w32(0x84 + 8, strtab as u32); // PointerToSymbolTable
    b.w32(0x84 + 12, 0); // no symbols: the string table follows at once
    let sh = 0x84 + 20 + 240;
    b.f[sh..sh + 8].copy_from_slice(b"/4\0\0\0\0\0\0");
    let img = Image::parse(&b.f).unwrap();
    assert_eq!(img.sections[0].name, ".debug_info");
    // An offset past the file keeps the raw name.
    b.f[sh..sh + 8].copy_from_slice(b"/9999\0\0\0");
    assert_eq!(Image::parse(&b.f).unwrap().sections[0].name, "/9999");
}

#[test]
fn bad_images_name_the_problem() {
    let f = rich(true);
    assert_eq!(
        Image::parse(b"").unwrap_err().status,
        STATUS_INVALID_IMAGE_NOT_MZ
    );
    let e = Image::parse(&f[..0x90]).unwrap_err();
    assert!(
        e.what.contains("file header") || e.what.contains("optional header"),
        "{e}"
    );
    let e = Image::parse(&f[..0x100]).unwrap_err();
    assert!(e.what.contains("optional header"), "{e}");
    let e = Image::parse(&f[..0x1A0]).unwrap_err();
    assert!(e.what.contains("section table"), "{e}");
    let mut g = f.clone();
    g[0x3C..0x40].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let e = Image::parse(&g).unwrap_err();
    assert!(e.what.contains("e_lfanew"), "{e}");
    let mut g = f.clone();
    g[0x98..0x9A].copy_from_slice(&0x999u16.to_le_bytes());
    let e = Image::parse(&g).unwrap_err();
    assert!(e.what.contains("magic 0x999"), "{e}");
    // Import directory RVA out of range.
    let mut b = B {
        f: f.clone(),
        plus: true,
    };
    b.dir(1, 0x9000, 40);
    let e = Image::parse(&b.f).unwrap().imports().unwrap_err();
    assert!(
        e.what.contains("0x9000") && e.what.contains("outside"),
        "{e}"
    );
    // A DLL name that runs off the section without a NUL.
    let mut b = B {
        f: f.clone(),
        plus: true,
    };
    b.r32(0x1200 + 12, 0x1FFE);
    b.rs(0x1FFE, b"ab");
    let e = Image::parse(&b.f).unwrap().imports().unwrap_err();
    assert!(e.what.contains("DLL name"), "{e}");
    // A zero-sized relocation block.
    let mut b = B {
        f: f.clone(),
        plus: true,
    };
    b.r32(0x1404, 4);
    let e = Image::parse(&b.f).unwrap().relocations().unwrap_err();
    assert!(e.what.contains("size 4"), "{e}");
    // An export name whose ordinal index is past the address table.
    let mut b = B { f, plus: true };
    b.w16(B::at(0x1060), 9);
    let e = Image::parse(&b.f).unwrap().exports().unwrap_err();
    assert!(e.what.contains("ordinal index 9"), "{e}");
}

#[test]
fn every_truncation_and_mutation_is_handled() {
    let f = rich(true);
    for cut in 0..f.len() {
        fuzz_inspect(&f[..cut]);
    }
    for i in (0..f.len()).step_by(3) {
        for v in [0u8, 0xFF, 0x7F] {
            let mut g = f.clone();
            g[i] = v;
            fuzz_inspect(&g);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn checksum_equals_reference(data in proptest::collection::vec(any::<u8>(), 0..600), off in 0usize..700) {
        prop_assert_eq!(pe_checksum(&data, off), pe_checksum_reference(&data, off));
    }

    #[test]
    fn random_mutations_never_panic(
        plus in any::<bool>(),
        edits in proptest::collection::vec((0usize..0x1500, any::<u8>()), 1..24),
    ) {
        let mut f = rich(plus);
        for (at, v) in edits {
            let at = at % f.len();
            f[at] = v;
        }
        fuzz_inspect(&f);
    }
}

/// The `pe_inspect` fuzz corpus: the rich images and corrupt variants of them.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let r64 = rich(true);
    let patch = |f: &[u8], rva: u32, bytes: &[u8]| {
        let mut g = f.to_vec();
        let o = B::at(rva);
        g[o..o + bytes.len()].copy_from_slice(bytes);
        g
    };
    let mut loop_ = patch(&r64, 0x1040, &0x1160u32.to_le_bytes());
    loop_ = patch(&loop_, 0x1160, b"rich.Gamma\0");
    let cert_at = r64.len() - 32;
    let mut cert = r64.clone();
    cert[cert_at..cert_at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    vec![
        ("seed-rich64.bin", r64.clone()),
        ("seed-rich32.bin", rich(false)),
        ("forwarder-loop.bin", loop_),
        ("unwind-truncated-codes.bin", patch(&r64, 0x1902, &[1])),
        ("unwind-huge-count.bin", patch(&r64, 0x1902, &[0xFF])),
        ("cert-overlong.bin", cert),
        (
            "reloc-tiny-block.bin",
            patch(&r64, 0x1404, &4u32.to_le_bytes()),
        ),
        (
            "imports-no-terminator.bin",
            patch(&r64, 0x1240, &[0xAA; 0x40]),
        ),
        (
            "tls-callbacks-outside.bin",
            patch(&r64, 0x1518, &0xFFFF_0000u64.to_le_bytes()),
        ),
        ("truncated-half.bin", r64[..r64.len() / 2].to_vec()),
    ]
}

/// The committed corpus is what [`corpus`] builds (`NTRS_WRITE_CORPUS=1`
/// rewrites it).
#[test]
fn inspect_seed_corpus_matches_builder() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pe_inspect");
    for (name, f) in corpus() {
        if std::env::var("NTRS_WRITE_CORPUS").is_ok() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), &f).unwrap();
            continue;
        }
        let on_disk = std::fs::read(dir.join(name)).unwrap_or_default();
        assert_eq!(on_disk, f, "regenerate {name} with NTRS_WRITE_CORPUS=1");
    }
}

/// Replays the committed `pe_inspect` corpus through every parser.
#[test]
fn inspect_fuzz_corpus_replays_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pe_inspect");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        fuzz_inspect(&data);
        n += 1;
    }
    // The loader's corpus goes through the inspector too.
    let load = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pe_load");
    for entry in std::fs::read_dir(&load).unwrap() {
        fuzz_inspect(&std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(n >= 10, "corpus at {} has only {n} files", dir.display());
}

#[test]
fn partially_read_files_report_what_they_miss() {
    let f = rich(true);
    let full = Image::parse(&f).unwrap();
    // Only the headers were read: the section's bytes are zeros the parsers never see.
    let mut part = f.clone();
    part[SEC..SEC + 0x1000].fill(0);
    let img = Image::parse(&part)
        .unwrap()
        .with_loaded_ranges(vec![(0, SEC)]);
    assert!(!img.missed());
    assert!(img.imports().is_err());
    assert!(img.missed());
    // Headers and the section: everything but the certificate table and checksum.
    let img = Image::parse(&f)
        .unwrap()
        .with_loaded_ranges(vec![(0, SEC), (SEC, SEC + 0x1000)]);
    assert_eq!(img.imports().unwrap(), full.imports().unwrap());
    assert_eq!(img.exports().unwrap(), full.exports().unwrap());
    assert_eq!(
        img.debug_directory().unwrap(),
        full.debug_directory().unwrap()
    );
    assert!(!img.missed());
    assert!(img.certificates().is_err());
    assert!(img.missed());
    let img = Image::parse(&f)
        .unwrap()
        .with_loaded_ranges(vec![(0, SEC + 0x1000)]);
    let _ = img.computed_checksum();
    assert!(img.missed());
    let img = Image::parse(&f)
        .unwrap()
        .with_loaded_ranges(vec![(0, f.len())]);
    assert_eq!(img.computed_checksum(), full.computed_checksum());
    assert_eq!(img.certificates().unwrap(), full.certificates().unwrap());
    assert!(!img.missed());
}

/// An export directory of `n` functions `F0..F{n-1}` where each `Fi`
/// forwards to `self.F{i+1}`; the last goes to `last` (a name or `#ordinal`).
fn chain_directory(names: &[Vec<u8>], fwds: &[Vec<u8>]) -> ExportDirectory<'static> {
    let names: &'static [Vec<u8>] = Vec::leak(names.to_vec());
    let fwds: &'static [Vec<u8>] = Vec::leak(fwds.to_vec());
    ExportDirectory {
        characteristics: 0,
        time_date_stamp: 0,
        major_version: 0,
        minor_version: 0,
        name_rva: 0,
        name: b"self.dll",
        ordinal_base: 1,
        number_of_functions: names.len() as u32,
        number_of_names: names.len() as u32,
        address_of_functions: 0,
        address_of_names: 0,
        address_of_name_ordinals: 0,
        functions: fwds
            .iter()
            .enumerate()
            .map(|(i, f)| ExportedFunction {
                ordinal: 1 + i as u32,
                rva: 0x2000,
                forwarder: if f.is_empty() { None } else { Some(&f[..]) },
            })
            .collect(),
        names: names
            .iter()
            .enumerate()
            .map(|(i, n)| ExportName {
                hint: i as u32,
                name: &n[..],
                index: i as u32,
            })
            .collect(),
    }
}

#[test]
fn long_forwarder_chains_and_loops_cost_linear_time() {
    let n = 50_000;
    let names: Vec<Vec<u8>> = (0..n).map(|i| format!("F{i}").into_bytes()).collect();
    // F0 -> F1 -> ... -> F{n-1}, which is a real function.
    let mut fwds: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("SELF.F{}", i + 1).into_bytes())
        .collect();
    fwds[n - 1].clear();
    let d = chain_directory(&names, &fwds);
    d.check_forwarder_loops().unwrap();
    assert_eq!(
        d.resolve(b"F0").unwrap(),
        ResolvedExport::Function(n as u32 - 1)
    );
    // The last one forwards back to F0 by ordinal: one loop through every export.
    fwds[n - 1] = b"self.#1".to_vec();
    let d = chain_directory(&names, &fwds);
    let e = d.check_forwarder_loops().unwrap_err();
    assert!(e.what.contains("loop"), "{e}");
    assert!(d.resolve(b"F7").unwrap_err().what.contains("loop"));
    // Forwarding out of the module ends the chain.
    fwds[n - 1] = b"NTDLL.RtlX".to_vec();
    let d = chain_directory(&names, &fwds);
    d.check_forwarder_loops().unwrap();
    assert_eq!(
        d.resolve(b"F0").unwrap(),
        ResolvedExport::Forwarder(b"NTDLL.RtlX")
    );
}

#[test]
fn descriptors_sharing_one_long_lookup_table_hit_the_directory_budget() {
    let mut b = B::new(true);
    let size = 0x10_0000u32;
    b.f.resize(SEC + size as usize, 0);
    let sh = 0x84 + 20 + 240;
    b.w32(sh + 8, size);
    b.w32(sh + 16, size);
    // One 32768-entry lookup table at 0x11000, every entry naming "A" at 0x1800.
    b.rs(0x1802, b"A");
    for i in 0..0x8000u32 {
        b.r64(0x11000 + i * 8, 0x1800);
    }
    b.rs(0x1900, b"X.dll");
    // 40 descriptors all using it: 1.3 million imports from 1 MiB.
    for n in 0..40u32 {
        let d = 0x1000 + n * 20;
        b.r32(d, 0x11000);
        b.r32(d + 12, 0x1900);
        b.r32(d + 16, 0x11000);
    }
    b.dir(1, 0x1000, 41 * 20);
    let e = Image::parse(&b.f).unwrap().imports().unwrap_err();
    assert!(
        e.what.contains("more than 1048576 imported functions"),
        "{e}"
    );
    // 20 of them (655,360 imports) are fine.
    b.r32(0x1000 + 20 * 20 + 12, 0);
    b.r32(0x1000 + 20 * 20 + 16, 0);
    let imps = Image::parse(&b.f).unwrap().imports().unwrap();
    assert_eq!(imps.len(), 20);
    assert_eq!(imps[19].functions.len(), 0x8000);
}
