//! Tests of the whole-store BCD reader, bcdedit's text and the edits (`bcdedit.rs`), and that
//! the boot manager's reader (`bcd::read_bcd`, what bootmgfw runs) reads edited stores.

extern crate std;

use crate::bcd::*;
use crate::bcdedit::*;
use crate::*;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use proptest::prelude::*;

const A: &str = "{11111111-2222-3333-4444-555555555555}";
const B: &str = "{00000000-2222-3333-4444-555555555555}";
const C: &str = "{abcdef00-2222-3333-4444-555555555555}";

/// A store as xtask's image builder makes it (two OS loaders, the second the default).
pub(crate) fn sample_store() -> Hive {
    let entry = |guid: &str, d: &str, lo: Option<&str>| BcdEntrySpec {
        guid: guid.to_string(),
        description: d.to_string(),
        path: "\\Windows\\System32\\winload.efi".to_string(),
        systemroot: "\\Windows".to_string(),
        load_options: lo.map(str::to_string),
        device: Vec::new(),
    };
    build_bcd(&BcdSpec {
        key_name: "BCD00000001".to_string(),
        bootmgr_path: "\\EFI\\Microsoft\\Boot\\bootmgfw.efi".to_string(),
        bootmgr_device: boot_device(),
        timeout: 3,
        default: 1,
        entries: alloc::vec![
            entry(A, "ntrs", None),
            entry(B, "ntrs (kernel tests)", Some("/TESTS"))
        ],
    })
    .unwrap()
}

fn reload(h: &Hive) -> Hive {
    let b = h.to_bytes();
    let p = check(&b);
    assert!(p.is_empty(), "{:?}", p);
    Hive::from_bytes(&b).unwrap()
}

fn enum_all(h: &Hive, verbose: bool) -> String {
    let mut objs = read_objects(h).unwrap();
    objs.sort_by_key(|o| (type_rank(o.ty), o.guid.clone()));
    let shown: Vec<&Object> = objs.iter().collect();
    enum_text(&objs, &shown, verbose)
}

#[test]
fn enum_shows_objects_and_elements_as_bcdedit() {
    let h = sample_store();
    let t = enum_all(&h, false);
    let want_bm = "Windows Boot Manager\n--------------------\n\
identifier              {bootmgr}\n\
device                  boot\n\
path                    \\EFI\\Microsoft\\Boot\\bootmgfw.efi\n\
description             Windows Boot Manager\n\
default                 {default}\n\
displayorder            {11111111-2222-3333-4444-555555555555}\n\
\x20                       {default}\n\
timeout                 3\n";
    assert!(t.starts_with(want_bm), "{}", t);
    assert!(t.contains(
        "\nWindows Boot Loader\n-------------------\nidentifier              {default}\n"
    ));
    assert!(t.contains("loadoptions             /TESTS\n"));
    assert!(t.contains("systemroot              \\Windows\n"));
    // Both loaders, after the boot manager.
    assert_eq!(t.matches("Windows Boot Loader").count(), 2);
    // /v: GUIDs instead of names.
    let v = enum_all(&h, true);
    assert!(v.contains("identifier              {9dea862c-5cdd-4e70-acc1-f32b344d4795}\n"));
    assert!(v.contains(&std::format!("default                 {}\n", B)));
    assert!(!v.contains("{default}") && !v.contains("{bootmgr}"));
}

#[test]
fn element_names_round_trip_for_each_object_type() {
    for (obj, name, ty) in [
        (0x1010_0002, "timeout", 0x2500_0004),
        (0x1010_0002, "toolsdisplayorder", 0x2400_0010),
        (TYPE_OSLOADER, "osdevice", 0x2100_0001),
        (TYPE_OSLOADER, "nx", 0x2500_0020),
        (TYPE_OSLOADER, "bootmenupolicy", 0x2500_00c2),
        (0x2020_0003, "systemroot", 0x2200_0002), // {bootloadersettings}
        (TYPE_RESUME, "filepath", 0x2200_0002),
        (0x1020_0005, "passcount", 0x2500_0001),
        (0x3000_0000, "ramdisksdipath", 0x3200_0004),
        (0x2010_0000, "inherit", 0x1400_0006),
    ] {
        assert_eq!(element_name(obj, ty), name);
        assert_eq!(element_type(obj, name), Some(ty), "{}", name);
    }
    // Application elements are named by the application they belong to.
    assert_eq!(element_name(0x1010_0002, 0x2100_0001), "custom:21000001");
    assert_eq!(element_type(0x1010_0002, "osdevice"), None);
    assert_eq!(
        element_type(TYPE_OSLOADER, "custom:26000027"),
        Some(0x2600_0027)
    );
    assert_eq!(element_type(TYPE_OSLOADER, "custom:zz"), None);
    assert_eq!(element_type(TYPE_OSLOADER, "custom:00000001"), None);
}

fn gpt_device() -> Vec<u8> {
    let mut d = boot_device();
    d[0x10] = 6;
    for (i, b) in d[0x20..0x30].iter_mut().enumerate() {
        *b = i as u8;
    }
    d[0x34] = 0;
    for (i, b) in d[0x38..0x48].iter_mut().enumerate() {
        *b = 0xa0 + i as u8;
    }
    d
}

#[test]
fn devices_decode_by_type() {
    assert_eq!(decode_device(&boot_device()), "boot");
    assert_eq!(
        decode_device(&gpt_device()),
        "partition=(GPT disk {a3a2a1a0-a5a4-a7a6-a8a9-aaabacadaeaf} partition {03020100-0504-0706-0809-0a0b0c0d0e0f})"
    );
    let mut mbr = gpt_device();
    mbr[0x34] = 1;
    mbr[0x20..0x28].copy_from_slice(&0x15f0_0000u64.to_le_bytes());
    mbr[0x38..0x3c].copy_from_slice(&0xb3eb_a8f1u32.to_le_bytes());
    assert_eq!(
        decode_device(&mbr),
        "partition=(MBR disk signature b3eba8f1, partition at byte 368050176)"
    );
    let mut ram = boot_device();
    ram[0] = 0xc8;
    assert_eq!(
        decode_device(&ram),
        "boot,{000000c8-0000-0000-0000-000000000000}"
    );
    assert_eq!(decode_device(&[1, 2, 3]), "unknown");
    let mut odd = boot_device();
    odd[0x10] = 0x42;
    assert_eq!(decode_device(&odd), "unknown (device type 66)");
}

#[test]
fn edits_are_read_by_the_boot_manager() {
    let mut h = sample_store();
    // /create {C} /d "Test" /application osloader
    create_object(&mut h, C, TYPE_OSLOADER, Some("Test entry")).unwrap();
    assert!(matches!(
        create_object(&mut h, C, TYPE_OSLOADER, None),
        Err(Error::Status(s)) if s == STATUS_OBJECT_NAME_COLLISION
    ));
    let ty = object_type(&h, C).unwrap();
    for (name, val) in [
        ("path", &["\\Windows\\System32\\winload.efi"][..]),
        ("systemroot", &["\\Windows"][..]),
        ("loadoptions", &["/DEBUG", "/X"][..]),
        ("device", &["boot"][..]),
        ("nx", &["OptOut"][..]),
        ("detecthal", &["yes"][..]),
    ] {
        let et = element_type(ty, name).unwrap();
        let (rt, d) = encode_value(&h, ty, et, val).unwrap();
        put_element(&mut h, C, et, rt, &d).unwrap();
    }
    // /displayorder {C} /addfirst, /default {C}, /timeout 7
    edit_list(
        &mut h,
        BOOTMGR_GUID,
        0x2400_0001,
        &[C.to_string()],
        ListEdit::AddFirst,
    )
    .unwrap();
    let (rt, d) = encode_value(&h, 0x1010_0002, 0x2300_0003, &[C]).unwrap();
    put_element(&mut h, BOOTMGR_GUID, 0x2300_0003, rt, &d).unwrap();
    let (rt, d) = encode_value(&h, 0x1010_0002, 0x2500_0004, &["7"]).unwrap();
    put_element(&mut h, BOOTMGR_GUID, 0x2500_0004, rt, &d).unwrap();

    let h = reload(&h);
    let st = read_bcd(&h).unwrap();
    assert_eq!(st.default.as_deref(), Some(C));
    assert_eq!(st.timeout, Some(7));
    assert_eq!(st.display_order, [C, A, B]);
    assert_eq!(st.entries[0].guid, C);
    assert_eq!(st.entries[0].description.as_deref(), Some("Test entry"));
    assert_eq!(st.entries[0].load_options.as_deref(), Some("/DEBUG /X"));
    assert_eq!(st.entries[0].device.as_deref(), Some(&boot_device()[..]));
    let t = enum_all(&h, false);
    assert!(t.contains("nx                      OptOut\n"), "{}", t);
    assert!(t.contains("detecthal               Yes\n"));
    assert!(t.contains("timeout                 7\n"));
    assert!(t.contains("displayorder            {default}\n"));

    // /delete {C}: gone from the display order and the default.
    let mut h = h;
    delete_object(&mut h, C).unwrap();
    let h = reload(&h);
    let st = read_bcd(&h).unwrap();
    assert_eq!(st.display_order, [A, B]);
    assert_eq!(st.default, None);
    assert_eq!(st.entries.len(), 2);
}

#[test]
fn list_edits() {
    let mut h = sample_store();
    let list = |h: &Hive| read_bcd(h).unwrap().display_order;
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    edit_list(
        &mut h,
        BOOTMGR_GUID,
        0x2400_0001,
        &ids(&[A]),
        ListEdit::AddLast,
    )
    .unwrap();
    assert_eq!(list(&h), [B, A]);
    edit_list(
        &mut h,
        BOOTMGR_GUID,
        0x2400_0001,
        &ids(&[A]),
        ListEdit::Remove,
    )
    .unwrap();
    assert_eq!(list(&h), [B]);
    edit_list(
        &mut h,
        BOOTMGR_GUID,
        0x2400_0001,
        &ids(&[A, B]),
        ListEdit::Set,
    )
    .unwrap();
    assert_eq!(list(&h), [A, B]);
    // An id that names no object is refused, the list unchanged.
    assert!(edit_list(
        &mut h,
        BOOTMGR_GUID,
        0x2400_0001,
        &ids(&[C]),
        ListEdit::AddLast
    )
    .is_err());
    assert_eq!(list(&h), [A, B]);
}

#[test]
fn identifiers_resolve() {
    let h = sample_store();
    assert_eq!(resolve_id(&h, "{bootmgr}").unwrap(), BOOTMGR_GUID);
    assert_eq!(resolve_id(&h, "{BOOTMGR}").unwrap(), BOOTMGR_GUID);
    assert_eq!(resolve_id(&h, "{default}").unwrap(), B);
    assert_eq!(
        resolve_id(&h, "{legacy}").unwrap(),
        resolve_id(&h, "{ntldr}").unwrap()
    );
    assert_eq!(resolve_id(&h, &A.to_uppercase()).unwrap(), A);
    for bad in ["{current}", "bootmgr", "{1234}", ""] {
        assert!(resolve_id(&h, bad).is_err(), "{}", bad);
    }
}

#[test]
fn bad_values_are_refused_with_a_reason() {
    let h = sample_store();
    let ty = TYPE_OSLOADER;
    let e = |n: &str, v: &[&str]| encode_value(&h, ty, element_type(ty, n).unwrap(), v);
    assert!(e("nx", &["Sometimes"])
        .unwrap_err()
        .contains("not a number"));
    assert!(e("detecthal", &["maybe"]).unwrap_err().contains("boolean"));
    assert!(e("osdevice", &["partition=C:"])
        .unwrap_err()
        .contains("offline"));
    assert!(e("inherit", &["{nothing}"])
        .unwrap_err()
        .contains("identifier"));
    assert!(e("nx", &["1", "2"]).unwrap_err().contains("one value"));
}

proptest! {
    /// Any element type and data: decoding never panics and yields at least one line.
    #[test]
    fn decode_never_panics(ty in any::<u32>(), obj in any::<u32>(), rt in 0u32..12,
                           data in proptest::collection::vec(any::<u8>(), 0..120)) {
        let e = Element { ty, reg_type: rt, data };
        let lines = decode_value(obj, &e, &|g: &str| g.to_string());
        prop_assert!(element_format(ty) == FORMAT_OBJECT_LIST
            || element_format(ty) == FORMAT_INTEGER_LIST
            || !lines.is_empty());
        let _ = decode_device(&e.data);
        let _ = object_heading(obj, "{x}");
    }

    /// Integers and booleans written by `encode_value` read back as written.
    #[test]
    fn integers_and_booleans_round_trip(n in any::<u64>(), b in any::<bool>()) {
        let h = sample_store();
        let (_, d) = encode_value(&h, TYPE_OSLOADER, 0x2500_0061, &[&n.to_string()]).unwrap();
        let e = Element { ty: 0x2500_0061, reg_type: REG_BINARY, data: d };
        prop_assert_eq!(decode_value(TYPE_OSLOADER, &e, &|g: &str| g.to_string()), [n.to_string()]);
        let (_, d) = encode_value(&h, TYPE_OSLOADER, 0x2600_0010, &[if b { "on" } else { "off" }]).unwrap();
        let e = Element { ty: 0x2600_0010, reg_type: REG_BINARY, data: d };
        prop_assert_eq!(decode_value(TYPE_OSLOADER, &e, &|g: &str| g.to_string()),
            [if b { "Yes" } else { "No" }]);
    }

    /// Random element keys and values under a store's objects: reading and printing never
    /// panic, and the boot manager's reader either reads the store or fails with an error.
    #[test]
    fn random_elements_never_panic(els in proptest::collection::vec(
        (any::<u32>(), 0u32..12, proptest::collection::vec(any::<u8>(), 0..64)), 0..12)) {
        let mut h = sample_store();
        for (ty, rt, d) in &els {
            put_element(&mut h, B, *ty, *rt, d).unwrap();
        }
        let h = reload(&h);
        let _ = read_bcd(&h);
        let t = enum_all(&h, false);
        prop_assert!(t.contains("Windows Boot Manager"));
    }
}

/// Seeds for the fuzz corpus (written with `REGF_WRITE_CORPUS=1`): the image builder's store and
/// one with devices, lists, integers and custom elements. Replayed by `fuzz_corpus_replays`.
#[test]
fn bcd_corpus_seeds() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/hive");
    let mut h = sample_store();
    create_object(&mut h, C, 0x2020_0003, None).unwrap();
    put_element(
        &mut h,
        C,
        0x1700_000a,
        REG_BINARY,
        &[1, 0, 0, 0, 0, 0, 0, 0],
    )
    .unwrap();
    put_element(&mut h, C, 0x1100_0001, REG_BINARY, &gpt_device()).unwrap();
    put_element(&mut h, A, 0x1400_0006, REG_MULTI_SZ, &{
        let mut v = utf16z(C);
        v.extend_from_slice(&[0, 0]);
        v
    })
    .unwrap();
    put_element(&mut h, A, 0x2500_0020, REG_BINARY, &3u64.to_le_bytes()).unwrap();
    put_element(&mut h, A, 0x2600_0027, REG_BINARY, &[1]).unwrap();
    let seeds = [
        ("bcd_ntrs", sample_store().to_bytes()),
        ("bcd_full", h.to_bytes()),
    ];
    for (name, b) in &seeds {
        let path = std::format!("{}/{}", dir, name);
        if std::env::var("REGF_WRITE_CORPUS").is_ok() {
            std::fs::write(&path, b).unwrap();
        }
        // The committed seed still reads as a store with every object.
        let got = std::fs::read(&path).unwrap();
        let objs = read_objects(&Hive::from_bytes(&got).unwrap()).unwrap();
        assert!(objs.len() >= 3, "{}", name);
    }
}
