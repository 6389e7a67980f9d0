//! The ntdll.dll the user workspace builds (user/ntdll): it exports a
//! system-call stub for every service of the one list
//! (`nt::syscalls::SERVICES`) under both Windows names (`NtX` and `ZwX`, one
//! address), each with Windows 10 x64's stub bytes and its number, on a
//! 32-byte boundary; and no `Nt`/`Zw` export the list does not have. The
//! DLL is read with lib/pe's loader reader (`ExportTable`). Without a built
//! DLL the test prints a skip message, unless NTRS_REQUIRE_INTEROP=1 (what
//! `cargo xtask test` sets, after building the user workspace) makes it fail.

use pe::{ExportTable, ExportTarget, PeFile, IMAGE_DIRECTORY_ENTRY_EXPORT};
use std::path::Path;

/// Windows' stub with the number `n` (little-endian imm32 of `mov eax`).
fn windows_stub(n: u32) -> Vec<u8> {
    let mut v = vec![0x4C, 0x8B, 0xD1, 0xB8];
    v.extend_from_slice(&n.to_le_bytes());
    v.extend_from_slice(&[0xF6, 0x04, 0x25, 0x08, 0x03, 0xFE, 0x7F, 0x01]);
    v.extend_from_slice(&[0x75, 0x03, 0x0F, 0x05, 0xC3, 0xCD, 0x2E, 0xC3]);
    v
}

#[test]
fn ntdll_exports_every_service_stub_with_windows_bytes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../user/target/x86_64-pc-windows-msvc/release/ntdll.dll");
    let Ok(data) = std::fs::read(&path) else {
        if std::env::var("NTRS_REQUIRE_INTEROP").as_deref() == Ok("1") {
            panic!("{} is not built and NTRS_REQUIRE_INTEROP=1", path.display());
        }
        eprintln!(
            "SKIP: {} is not built (cargo build --release in user/)",
            path.display()
        );
        return;
    };
    let pe = PeFile::parse(&data).expect("ntdll.dll parses");
    assert_ne!(pe.characteristics & pe::IMAGE_FILE_DLL, 0, "a DLL");
    assert_eq!(pe.subsystem, pe::IMAGE_SUBSYSTEM_NATIVE);
    assert_eq!(pe.address_of_entry_point, 0, "ntdll has no entry point");
    let mut img = vec![0u8; pe.size_of_image as usize];
    pe.load(&mut img, pe.image_base).unwrap();
    let dir = pe.directory(IMAGE_DIRECTORY_ENTRY_EXPORT);
    let t = ExportTable::parse(&img, dir).unwrap();
    let code = |name: &str| match t.by_name(name.as_bytes(), 0) {
        Ok(ExportTarget::Code(rva)) => rva,
        other => panic!("ntdll!{name}: {other:?}"),
    };
    for s in nt::syscalls::SERVICES {
        let nt_rva = code(s.name);
        let zw = format!("Zw{}", &s.name[2..]);
        assert_eq!(code(&zw), nt_rva, "{zw} and {} share one stub", s.name);
        assert_eq!(nt_rva % 32, 0, "{} starts on a 32-byte boundary", s.name);
        let at = nt_rva as usize;
        let want = windows_stub(s.number);
        assert_eq!(
            &img[at..at + want.len()],
            &want[..],
            "{} (number {:#x}) has Windows' stub bytes",
            s.name,
            s.number
        );
    }
    // The Rtl routines over lib/rtl and the C routines, by Windows' names.
    for name in [
        "RtlInitUnicodeString",
        "RtlInitUnicodeStringEx",
        "RtlInitAnsiString",
        "RtlCompareUnicodeString",
        "RtlEqualUnicodeString",
        "RtlPrefixUnicodeString",
        "RtlCompareString",
        "RtlUpcaseUnicodeChar",
        "RtlDowncaseUnicodeChar",
        "RtlUpcaseUnicodeString",
        "RtlUnicodeStringToAnsiString",
        "RtlAnsiStringToUnicodeString",
        "RtlNtStatusToDosError",
        "RtlDetermineDosPathNameType_U",
        "RtlTimeToTimeFields",
        "RtlTimeFieldsToTime",
        "RtlCreateHeap",
        "RtlAllocateHeap",
        "RtlFreeHeap",
        "RtlReAllocateHeap",
        "RtlSizeHeap",
        "RtlDestroyHeap",
        "RtlWalkHeap",
        "RtlLockHeap",
        "RtlUnlockHeap",
        "RtlGetProcessHeaps",
        "RtlCaptureContext",
        "RtlRaiseException",
        "RtlRaiseStatus",
        "RtlInitializeBitMap",
        "RtlSetBits",
        "RtlClearBits",
        "RtlSetAllBits",
        "RtlClearAllBits",
        "RtlAreBitsSet",
        "RtlAreBitsClear",
        "RtlFindClearBits",
        "RtlFindSetBits",
        "RtlFindClearBitsAndSet",
        "RtlFindSetBitsAndClear",
        "RtlNumberOfSetBits",
        "RtlNumberOfClearBits",
        "memcpy",
        "memmove",
        "memset",
        "memcmp",
        "strlen",
        "wcslen",
    ] {
        code(name);
    }
    // ntdll imports nothing.
    assert!(
        pe::imports(&img, pe.directory(pe::IMAGE_DIRECTORY_ENTRY_IMPORT))
            .unwrap()
            .is_empty()
    );
    // Every Nt/Zw export is a listed service.
    let listed = |n: &str| nt::syscalls::by_name(n).is_some();
    for e in pe::exports(&img, dir).unwrap() {
        for n in &e.names {
            let n = std::str::from_utf8(n).unwrap();
            if let Some(rest) = n.strip_prefix("Nt").or_else(|| n.strip_prefix("Zw")) {
                assert!(
                    listed(&format!("Nt{rest}")),
                    "ntdll exports {n}, not in the service list"
                );
            }
        }
    }
}
