extern crate std;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::bcd::*;
use crate::regtext::*;
use crate::*;

fn clean(b: &[u8]) {
    let p = check(b);
    assert!(p.is_empty(), "check problems: {:#?}", p);
}

#[test]
fn empty_hive_roundtrip() {
    let h = Hive::new_empty("ROOT").unwrap();
    let b = h.to_bytes();
    assert_eq!(&b[0..4], b"regf");
    assert_eq!(b.len(), 8192);
    clean(&b);
    let h2 = Hive::from_bytes(&b).unwrap();
    assert_eq!(h2.key_name(h2.root()).unwrap(), "ROOT");
    assert_eq!(base_checksum(&b[..4096]), rd32(&b, 508).unwrap());
}

#[test]
fn keys_values_roundtrip() {
    let mut h = Hive::new_empty("ROOT").unwrap();
    h.set_time(132_000_000_000_000_000);
    let k = h.create_key_path("Software\\Vendor\\App").unwrap();
    h.set_value(k, "", REG_SZ, &utf16z("default")).unwrap();
    h.set_value(k, "Count", REG_DWORD, &7u32.to_le_bytes())
        .unwrap();
    h.set_value(k, "Big", REG_BINARY, &alloc::vec![0xAB; 40000])
        .unwrap();
    h.set_value(k, "Mid", REG_BINARY, &alloc::vec![1; 100])
        .unwrap();
    h.set_value(k, "Empty", REG_NONE, &[]).unwrap();
    h.set_value(k, "Q", REG_QWORD, &u64::MAX.to_le_bytes())
        .unwrap();
    h.set_value(k, "Ünïcode名", REG_MULTI_SZ, &utf16z("a"))
        .unwrap();
    let b = h.to_bytes();
    clean(&b);
    let h2 = Hive::from_bytes(&b).unwrap();
    let k2 = h2.open_key("SOFTWARE\\vendor\\APP").unwrap();
    assert_eq!(h2.query_value(k2, "big").unwrap().data.len(), 40000);
    assert_eq!(
        h2.query_value(k2, "count").unwrap().data,
        7u32.to_le_bytes()
    );
    assert_eq!(h2.query_value(k2, "ünïcode名").unwrap().ty, REG_MULTI_SZ);
    assert_eq!(h2.key_last_write(k2).unwrap(), 132_000_000_000_000_000);
    assert_eq!(h.dump().unwrap(), h2.dump().unwrap());
    assert_eq!(h2.key_max_lengths(k2).unwrap().3, 40000);
}

#[test]
fn delete_semantics() {
    let mut h = Hive::new_empty("R").unwrap();
    let a = h.create_key_path("A\\B").unwrap();
    let pa = h.open_key("A").unwrap();
    assert_eq!(h.delete_key(pa).unwrap_err().status(), STATUS_CANNOT_DELETE);
    assert_eq!(
        h.delete_key(h.root()).unwrap_err().status(),
        STATUS_CANNOT_DELETE
    );
    h.delete_key(a).unwrap();
    assert_eq!(h.key_name(a).unwrap_err().status(), STATUS_KEY_DELETED);
    assert_eq!(
        h.open_key("A\\B").unwrap_err().status(),
        STATUS_OBJECT_NAME_NOT_FOUND
    );
    assert_eq!(
        h.delete_value(pa, "x").unwrap_err().status(),
        STATUS_OBJECT_NAME_NOT_FOUND
    );
    h.delete_key(pa).unwrap();
    clean(&h.to_bytes());
    // Everything freed and coalesced: one free cell fills the bin again.
    assert_eq!(h.to_bytes().len(), 8192);
}

#[test]
fn many_subkeys_use_ri_and_stay_sorted() {
    let mut h = Hive::new_empty("R").unwrap();
    let root = h.root();
    for i in (0..1200).rev() {
        h.create_key(root, &std::format!("key{:05}", i)).unwrap();
    }
    let b = h.to_bytes();
    clean(&b);
    let h2 = Hive::from_bytes(&b).unwrap();
    let subs = h2.enum_subkeys(h2.root()).unwrap();
    assert_eq!(subs.len(), 1200);
    assert_eq!(h2.key_name(subs[0]).unwrap(), "key00000");
    assert_eq!(h2.key_name(subs[1199]).unwrap(), "key01199");
    assert!(h2.open_key("KEY00777").is_ok());
}

#[test]
fn volatile_keys_are_not_written() {
    let mut h = Hive::new_empty("R").unwrap();
    let root = h.root();
    let (v, created) = h.create_key_ex(root, "Vol", None, true).unwrap();
    assert!(created);
    assert!(v & VOLATILE_BIT != 0);
    h.set_value(v, "x", REG_DWORD, &1u32.to_le_bytes()).unwrap();
    assert_eq!(
        h.create_key_ex(v, "Stable", None, false)
            .unwrap_err()
            .status(),
        STATUS_CHILD_MUST_BE_VOLATILE
    );
    h.create_key_ex(v, "Sub", None, true).unwrap();
    assert!(h.open_key("Vol\\Sub").is_ok());
    let b = h.to_bytes();
    clean(&b);
    let h2 = Hive::from_bytes(&b).unwrap();
    assert!(h2.open_key("Vol").is_err());
}

#[test]
fn symbolic_link_and_class_and_security_sharing() {
    let mut h = Hive::new_empty("R").unwrap();
    let root = h.root();
    h.create_key(root, "ControlSet001").unwrap();
    let l = h
        .create_link(
            root,
            "CurrentControlSet",
            "\\Registry\\Machine\\System\\ControlSet001",
            false,
        )
        .unwrap();
    assert_eq!(
        h.link_target(l).unwrap().unwrap(),
        "\\Registry\\Machine\\System\\ControlSet001"
    );
    let (c, _) = h
        .create_key_ex(root, "WithClass", Some("MyClass"), false)
        .unwrap();
    assert_eq!(h.key_class(c).unwrap().unwrap(), "MyClass");
    let mut sd = DEFAULT_SD.to_vec();
    sd[76] = 0x3F;
    h.set_key_security(c, &sd).unwrap();
    let c2 = h.create_key(root, "Other").unwrap();
    h.set_key_security(c2, &sd).unwrap();
    assert_eq!(h.key_security(c2).unwrap(), sd);
    assert_eq!(h.nk(c).unwrap().sk, h.nk(c2).unwrap().sk);
    let b = h.to_bytes();
    clean(&b);
    h.delete_key(c).unwrap();
    h.delete_key(c2).unwrap();
    clean(&h.to_bytes());
}

#[test]
fn checker_reports_problems() {
    let mut h = Hive::new_empty("R").unwrap();
    let root = h.root();
    for n in ["a", "b", "c"] {
        h.create_key(root, n).unwrap();
    }
    let mut b = h.to_bytes();
    // Bump the root's subkey count (nk at root+4, count at +20).
    let off = 4096 + h.root() as usize + 4 + 20;
    b[off] = 4;
    let p = check(&b);
    assert!(
        p.iter()
            .any(|p| p.message.contains("subkey count 4 but list has 3")),
        "{:?}",
        p
    );
    assert!(!p.iter().any(|p| p.message.contains("checksum")));
    // Break the checksum.
    b[100] ^= 1;
    assert!(check(&b).iter().any(|p| p.message.contains("checksum")));
    assert!(Hive::from_bytes(&b).is_err());
}

#[test]
fn regtext_import_export() {
    let text = "Windows Registry Editor Version 5.00\r\n\r\n\
[HKEY_LOCAL_MACHINE\\SYSTEM\\Select]\r\n\
\"Current\"=dword:00000001\r\n\
@=\"def \\\"q\\\" \\\\ x\"\r\n\
\"Bin\"=hex:01,02,\\\r\n  03,04,05\r\n\
\"Multi\"=hex(7):61,00,00,00,62,00,00,00,00,00\r\n\
\"Gone\"=dword:2\r\n\
\"Gone\"=-\r\n\
[HKEY_LOCAL_MACHINE\\SYSTEM\\Tmp\\Deep]\r\n\
[-HKEY_LOCAL_MACHINE\\SYSTEM\\Tmp]\r\n";
    let mut h = Hive::new_empty("SYSTEM").unwrap();
    import_reg_text(&mut h, text).unwrap();
    let k = h.open_key("Select").unwrap();
    assert_eq!(
        h.query_value(k, "current").unwrap().data,
        1u32.to_le_bytes()
    );
    assert_eq!(
        from_utf16z(&h.query_value(k, "").unwrap().data),
        "def \"q\" \\ x"
    );
    assert_eq!(h.query_value(k, "Bin").unwrap().data, [1, 2, 3, 4, 5]);
    assert!(h.query_value(k, "Gone").is_err());
    assert!(h.open_key("Tmp").is_err());
    let out = export_reg_text(&h, h.root(), "HKEY_LOCAL_MACHINE\\SYSTEM").unwrap();
    let mut h2 = Hive::new_empty("SYSTEM").unwrap();
    import_reg_text(&mut h2, &out).unwrap();
    assert_eq!(h.dump().unwrap(), h2.dump().unwrap());
    // UTF-16 with BOM decodes.
    let enc = encode_utf16_bom(&out);
    assert_eq!(decode_reg_file(&enc).unwrap(), out);
    // REGEDIT4 strings are widened.
    let mut h3 = Hive::new_empty("X").unwrap();
    import_reg_text(&mut h3, "REGEDIT4\n[\\K]\n\"e\"=hex(2):41,42,00\n").unwrap();
    let k3 = h3.open_key("K").unwrap();
    assert_eq!(
        h3.query_value(k3, "e").unwrap().data,
        [0x41, 0, 0x42, 0, 0, 0]
    );
    // Errors carry line numbers.
    let e = import_reg_text(&mut h3, "REGEDIT4\n[\\K]\n\"e\"=dword:xyz\n").unwrap_err();
    assert_eq!(e.line, 3);
}

#[test]
fn bcd_roundtrip() {
    let spec = BcdSpec {
        key_name: "BCD00000001".to_string(),
        bootmgr_path: "\\EFI\\Microsoft\\Boot\\bootmgfw.efi".to_string(),
        bootmgr_device: alloc::vec![1, 2, 3],
        timeout: 5,
        default: 1,
        entries: alloc::vec![
            BcdEntrySpec {
                guid: "{11111111-2222-3333-4444-555555555555}".to_string(),
                description: "ntrs".to_string(),
                path: "\\Windows\\system32\\winload.efi".to_string(),
                systemroot: "\\Windows".to_string(),
                load_options: None,
                device: alloc::vec![9; 16],
            },
            BcdEntrySpec {
                guid: "{00000000-2222-3333-4444-555555555555}".to_string(),
                description: "ntrs (test)".to_string(),
                path: "\\Windows\\system32\\winload.efi".to_string(),
                systemroot: "\\Windows".to_string(),
                load_options: Some("/TESTMODE".to_string()),
                device: Vec::new(),
            },
        ],
    };
    let h = build_bcd(&spec).unwrap();
    let b = h.to_bytes();
    clean(&b);
    let h2 = Hive::from_bytes(&b).unwrap();
    let st = read_bcd(&h2).unwrap();
    assert_eq!(st.timeout, Some(5));
    assert_eq!(
        st.default.as_deref(),
        Some("{00000000-2222-3333-4444-555555555555}")
    );
    assert_eq!(st.entries.len(), 2);
    assert_eq!(st.entries[0].description.as_deref(), Some("ntrs"));
    assert_eq!(st.entries[1].load_options.as_deref(), Some("/TESTMODE"));
    assert_eq!(st.entries[0].device.as_deref(), Some(&[9u8; 16][..]));
    assert_eq!(st.bootmgr.unwrap().object_type, BCD_TYPE_BOOTMGR);
    let d = h2
        .open_key("Objects\\{9dea862c-5cdd-4e70-acc1-f32b344d4795}\\Elements\\25000004")
        .unwrap();
    assert_eq!(
        h2.query_value(d, "Element").unwrap().data,
        5u64.to_le_bytes()
    );
}

#[test]
fn corrupt_inputs_never_panic() {
    let mut h = Hive::new_empty("R").unwrap();
    let k = h.create_key_path("A\\B").unwrap();
    h.set_value(k, "v", REG_BINARY, &alloc::vec![5; 20000])
        .unwrap();
    let b = h.to_bytes();
    for cut in [0, 100, 4096, 5000, b.len() - 1] {
        fuzz_one(&b[..cut]);
    }
    let mut x = b.clone();
    for i in (4096..x.len()).step_by(7) {
        x[i] = x[i].wrapping_add(0x5B);
        let sum = base_checksum(&x[..4096]);
        x[508..512].copy_from_slice(&sum.to_le_bytes());
        fuzz_one(&x);
    }
}

#[test]
fn fuzz_corpus_replays() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/hive");
    if std::env::var("REGF_WRITE_CORPUS").is_ok() {
        let mut h = Hive::new_empty("R").unwrap();
        std::fs::write(std::format!("{}/empty", dir), h.to_bytes()).unwrap();
        let k = h.create_key_path("A\\B").unwrap();
        h.set_value(k, "s", REG_SZ, &utf16z("text")).unwrap();
        h.set_value(k, "d", REG_DWORD, &1u32.to_le_bytes()).unwrap();
        h.create_link(h.root(), "L", "\\Registry\\Machine\\X", false)
            .unwrap();
        let b = h.to_bytes();
        std::fs::write(std::format!("{}/small", dir), &b).unwrap();
        std::fs::write(std::format!("{}/small_trunc", dir), &b[..b.len() - 2000]).unwrap();
        h.set_value(k, "big", REG_BINARY, &alloc::vec![7; 17000])
            .unwrap();
        let root = h.root();
        for i in 0..40 {
            h.create_key(root, &std::format!("k{}", i)).unwrap();
        }
        std::fs::write(std::format!("{}/bigdata", dir), h.to_bytes()).unwrap();
        // An interrupted flush: primary (seq1 != seq2) + its log, padded to equal halves.
        let mut files = crate::log::MemFiles::default();
        let mut lh = crate::log::LoggedHive::create(&mut files, h.clone()).unwrap();
        let k = lh.hive.create_key_path("Recovered").unwrap();
        lh.hive
            .set_value(k, "x", REG_DWORD, &5u32.to_le_bytes())
            .unwrap();
        files.writes = 0;
        files.fail_after = Some(4);
        assert!(lh.flush(&mut files).is_err());
        let (mut p, mut l) = (files.files[0].clone(), files.files[1].clone());
        let n = p.len().max(l.len());
        p.resize(n, 0);
        l.resize(n, 0);
        p.extend_from_slice(&l);
        std::fs::write(std::format!("{}/primary_and_log", dir), p).unwrap();
    }
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        fuzz_one(&data);
        n += 1;
    }
    assert!(n >= 3, "corpus has {} files", n);
    let pl = std::fs::read(std::format!("{}/primary_and_log", dir)).unwrap();
    let (a, b) = pl.split_at(pl.len() / 2);
    let (h, r) = crate::log::load_with_logs(a, b, &[]).unwrap();
    assert!(matches!(r, crate::log::Recovery::Recovered(_)));
    assert!(h.open_key("Recovered").is_ok());
}

#[derive(Debug, Clone)]
enum Op {
    Create(u8, u8),
    Set(u8, u8, u16),
    DelValue(u8, u8),
    DelKey(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, 0u8..6).prop_map(|(a, b)| Op::Create(a, b)),
        (0u8..6, 0u8..4, 0u16..20000).prop_map(|(a, b, c)| Op::Set(a, b, c)),
        (0u8..6, 0u8..4).prop_map(|(a, b)| Op::DelValue(a, b)),
        (0u8..6).prop_map(Op::DelKey),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("REGF_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)))]
    #[test]
    fn model_matches(batches in proptest::collection::vec(proptest::collection::vec(op(), 1..20), 1..5)) {
        let mut h = Hive::new_empty("R").unwrap();
        let mut model: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
        model.insert(String::new(), BTreeMap::new());
        let kname = |a: u8| std::format!("K{}", a);
        for batch in batches {
            for o in batch {
                match o {
                    Op::Create(a, b) => {
                        let p = std::format!("{}\\S{}", kname(a), b);
                        h.create_key_path(&p).unwrap();
                        model.entry(kname(a).to_uppercase()).or_default();
                        model.entry(p.to_uppercase()).or_default();
                    }
                    Op::Set(a, b, len) => {
                        let k = h.create_key_path(&kname(a)).unwrap();
                        let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ b).collect();
                        h.set_value(k, &std::format!("v{}", b), REG_BINARY, &data).unwrap();
                        model.entry(kname(a).to_uppercase()).or_default().insert(std::format!("V{}", b), data);
                    }
                    Op::DelValue(a, b) => {
                        let r = h.open_key(&kname(a)).and_then(|k| h.delete_value(k, &std::format!("V{}", b)));
                        let m = model.get_mut(&kname(a).to_uppercase()).and_then(|m| m.remove(&std::format!("V{}", b)));
                        prop_assert_eq!(r.is_ok(), m.is_some());
                    }
                    Op::DelKey(a) => {
                        let r = h.open_key(&kname(a)).and_then(|k| h.delete_key(k));
                        let ka = kname(a).to_uppercase();
                        let has_children = model.keys().any(|k| k.starts_with(&std::format!("{}\\", ka)));
                        let exists = model.contains_key(&ka);
                        prop_assert_eq!(r.is_ok(), exists && !has_children);
                        if exists && !has_children { model.remove(&ka); }
                    }
                }
            }
            let b = h.to_bytes();
            let p = check(&b);
            prop_assert!(p.is_empty(), "{:?}", p);
            let h2 = Hive::from_bytes(&b).unwrap();
            let dump: BTreeMap<String, BTreeMap<String, Vec<u8>>> = h2.dump().unwrap().into_iter()
                .map(|(k, v)| (k.to_uppercase(), v.into_iter().map(|v| (v.name.to_uppercase(), v.data)).collect()))
                .collect();
            prop_assert_eq!(&dump, &model);
            h = h2;
        }
    }
}

mod logs {
    use super::*;
    use crate::log::*;

    fn state(h: &mut Hive, step: u32) {
        let root = h.root();
        match step {
            0 => {
                let k = h.create_key_path("Services\\disk").unwrap();
                h.set_value(k, "Start", REG_DWORD, &0u32.to_le_bytes())
                    .unwrap();
            }
            1 => {
                // Growth (new bins) and big data.
                for i in 0..120 {
                    let k = h.create_key(root, &std::format!("Grow{:03}", i)).unwrap();
                    h.set_value(k, "v", REG_BINARY, &alloc::vec![i as u8; 300])
                        .unwrap();
                }
                let k = h.open_key("Services\\disk").unwrap();
                h.set_value(k, "Big", REG_BINARY, &alloc::vec![3; 30000])
                    .unwrap();
            }
            _ => {
                // Deletions and rewrites.
                for i in 0..60 {
                    let k = h.open_key(&std::format!("Grow{:03}", i)).unwrap();
                    h.delete_key(k).unwrap();
                }
                let k = h.open_key("Services\\disk").unwrap();
                h.set_value(k, "Start", REG_DWORD, &3u32.to_le_bytes())
                    .unwrap();
                h.delete_value(k, "Big").unwrap();
            }
        }
    }

    #[test]
    fn marvin32_properties() {
        assert_eq!(marvin32(MARVIN_SEED, b"abc"), marvin32(MARVIN_SEED, b"abc"));
        assert_ne!(marvin32(MARVIN_SEED, b"abc"), marvin32(MARVIN_SEED, b"abd"));
        assert_ne!(marvin32(MARVIN_SEED, b""), marvin32(1, b""));
        // Different lengths of zeros hash differently (the length-dependent final block).
        let hs: Vec<u64> = (0..9)
            .map(|n| marvin32(MARVIN_SEED, &alloc::vec![0u8; n]))
            .collect();
        for i in 0..hs.len() {
            for j in 0..i {
                assert_ne!(hs[i], hs[j]);
            }
        }
    }

    #[test]
    fn flush_and_reopen() {
        let mut files = MemFiles::default();
        let mut lh = LoggedHive::create(&mut files, Hive::new_empty("SYSTEM").unwrap()).unwrap();
        for step in 0..3 {
            state(&mut lh.hive, step);
            lh.flush(&mut files).unwrap();
            clean(&files.files[0]);
            let (h2, r) = LoggedHive::open(&files).unwrap();
            assert_eq!(r, Recovery::Clean);
            assert_eq!(h2.hive.dump().unwrap(), lh.hive.dump().unwrap());
            assert_eq!(h2.sequence(), step + 2);
        }
        assert!(!files.files[1].is_empty() && !files.files[2].is_empty());
    }

    #[test]
    fn crash_at_every_write_boundary() {
        let mut files = MemFiles::default();
        let mut lh = LoggedHive::create(&mut files, Hive::new_empty("SYSTEM").unwrap()).unwrap();
        for step in 0..3 {
            let old = lh.hive.dump().unwrap();
            let mut next = lh.clone();
            state(&mut next.hive, step);
            let new = next.hive.dump().unwrap();
            // Count the writes of an uninterrupted flush.
            let mut probe = files.clone();
            probe.writes = 0;
            next.clone().flush(&mut probe).unwrap();
            let total = probe.writes;
            let mut seen_new = false;
            for k in 0..=total {
                let mut f = files.clone();
                f.writes = 0;
                f.fail_after = Some(k);
                let r = next.clone().flush(&mut f);
                assert_eq!(r.is_ok(), k == total, "k={}", k);
                f.fail_after = None;
                let (got, rec) =
                    LoggedHive::open(&f).unwrap_or_else(|e| panic!("k={} of {}: {}", k, total, e));
                let d = got.hive.dump().unwrap();
                assert!(
                    d == old || d == new,
                    "step {} k={}: neither old nor new",
                    step,
                    k
                );
                if d == new {
                    seen_new = true;
                }
                if k == 0 {
                    assert!(d == old);
                }
                if k == total {
                    assert!(d == new);
                    assert_eq!(rec, Recovery::Clean);
                }
                // What a recovered hive would write is clean.
                clean(&got.hive.to_bytes());
                if rec == Recovery::Clean {
                    clean(&f.files[0]);
                }
                // Flushing the recovered hive yields a consistent primary again.
                let (mut again, _) = LoggedHive::open(&f).unwrap();
                again.flush(&mut f).unwrap();
                clean(&f.files[0]);
            }
            assert!(seen_new);
            lh = next;
            lh.flush(&mut files).unwrap();
        }
    }

    #[test]
    fn corrupt_log_entry_is_not_replayed() {
        let mut files = MemFiles::default();
        let mut lh = LoggedHive::create(&mut files, Hive::new_empty("R").unwrap()).unwrap();
        state(&mut lh.hive, 0);
        // Crash right after the primary's first base block write (log complete).
        let mut f = files.clone();
        f.writes = 0;
        f.fail_after = Some(4);
        assert!(lh.clone().flush(&mut f).is_err());
        let (_, r) = load_with_logs(&f.files[0], &f.files[1], &f.files[2]).unwrap();
        assert_eq!(r, Recovery::Recovered(2));
        // Damage the entry: its hash no longer matches, so recovery fails cleanly.
        f.files[1][LOG_ENTRIES_OFFSET + 100] ^= 0xFF;
        let e = load_with_logs(&f.files[0], &f.files[1], &f.files[2]).unwrap_err();
        assert_eq!(e.status(), STATUS_REGISTRY_CORRUPT);
    }
    /// A clean hive file made dirty as Windows leaves a primary whose flush did not finish:
    /// primary sequence number one ahead of the secondary, checksum recomputed.
    pub(crate) fn make_dirty(mut b: Vec<u8>) -> Vec<u8> {
        let s2 = rd32(&b, 8).unwrap();
        wr32(&mut b, 4, s2 + 1);
        let sum = base_checksum(&b[..PAGE]);
        wr32(&mut b, 508, sum);
        b
    }

    fn sample() -> Hive {
        let mut h = Hive::new_empty("SOFTWARE").unwrap();
        let k = h.create_key_path("Vendor\\App").unwrap();
        h.set_value(k, "Version", REG_SZ, &utf16z("1.2")).unwrap();
        h
    }

    #[test]
    fn dirty_hive_without_logs_is_read_as_is_unless_strict() {
        let b = make_dirty(sample().to_bytes());
        // The configuration manager's behaviour (and the default options): refused.
        let e = load_with_logs(&b, &[], &[]).unwrap_err();
        assert_eq!(e.status(), STATUS_REGISTRY_CORRUPT);
        let e = open(&b, &[], &[], OpenOptions::default()).unwrap_err();
        assert_eq!(e.status(), STATUS_REGISTRY_CORRUPT);
        assert!(Hive::from_bytes(&b).is_err());
        // Forensic reading: as it is, reported dirty.
        let lax = OpenOptions {
            apply_logs: true,
            strict: false,
        };
        let (h, r) = open(&b, &[], &[], lax).unwrap();
        assert_eq!(r, Recovery::Dirty { seq1: 2, seq2: 1 });
        let k = h.open_key("Vendor\\App").unwrap();
        assert_eq!(h.query_value(k, "Version").unwrap().data, utf16z("1.2"));
        // What it writes back is consistent.
        clean(&h.to_bytes());
        // A clean hive opens Clean in every mode; a damaged base block is not "dirty".
        let c = sample().to_bytes();
        assert_eq!(open(&c, &[], &[], lax).unwrap().1, Recovery::Clean);
        let mut bad = b.clone();
        bad[508] ^= 1;
        assert!(open(&bad, &[], &[], lax).is_err());
    }

    #[test]
    fn dirty_hive_with_logs_is_recovered_or_read_as_is() {
        let mut files = MemFiles::default();
        let mut lh = LoggedHive::create(&mut files, Hive::new_empty("R").unwrap()).unwrap();
        let old = lh.hive.dump().unwrap();
        state(&mut lh.hive, 0);
        let new = lh.hive.dump().unwrap();
        // Crash right after the primary's first base block write: log complete, primary dirty.
        let mut f = files.clone();
        f.writes = 0;
        f.fail_after = Some(4);
        assert!(lh.clone().flush(&mut f).is_err());
        let [p, l1, l2] = &f.files;
        let (h, r) = open(p, l1, l2, OpenOptions::default()).unwrap();
        assert_eq!(r, Recovery::Recovered(2));
        assert_eq!(h.dump().unwrap(), new);
        // Logs not applied: strict refuses, lax reads the primary's old state.
        let no_logs = OpenOptions {
            apply_logs: false,
            strict: true,
        };
        assert!(open(p, l1, l2, no_logs).is_err());
        let (h, r) = open(
            p,
            l1,
            l2,
            OpenOptions {
                strict: false,
                ..no_logs
            },
        )
        .unwrap();
        assert_eq!(r, Recovery::Dirty { seq1: 2, seq2: 1 });
        assert_eq!(h.dump().unwrap(), old);
        // Logs that do not continue the primary: lax falls back to reading it as it is.
        let (_, r) = open(
            p,
            &files.files[1],
            &files.files[2],
            OpenOptions {
                apply_logs: true,
                strict: false,
            },
        )
        .unwrap();
        assert!(matches!(r, Recovery::Dirty { .. }));
    }
}

#[test]
fn marvin32_reference_vectors() {
    // Published Marvin32 test vectors (seed 0x004FB61A001BDBCC).
    let seed = 0x004F_B61A_001B_DBCC;
    let cases: [(&[u8], u64); 3] = [
        (&[0xAF], 0x48E7_3FC7_7D75_DDC1),
        (&[0xE7, 0x0F], 0xB5F6_E1FC_485D_BFF8),
        (&[0x37, 0xF4, 0x95], 0xF0B0_7C78_9B8C_F7E8),
    ];
    for (data, want) in cases {
        assert_eq!(crate::log::marvin32(seed, data), want, "{:x?}", data);
    }
}

#[test]
fn image_registry_sources_build() {
    let sys =
        hive_from_reg_text("ROOT", include_str!("../../../image/registry/SYSTEM.reg")).unwrap();
    let b = sys.to_bytes();
    clean(&b);
    let h = Hive::from_bytes(&b).unwrap();
    let sel = h.open_key("Select").unwrap();
    assert_eq!(
        h.query_value(sel, "Current").unwrap().data,
        1u32.to_le_bytes()
    );
    assert!(
        h.open_key("CurrentControlSet").is_err(),
        "CurrentControlSet must not be stored"
    );
    let services = h.open_key("ControlSet001\\Services").unwrap();
    let mut boot = Vec::new();
    for s in h.enum_subkeys(services).unwrap() {
        if h.query_value(s, "Start").unwrap().data == 0u32.to_le_bytes() {
            boot.push(h.key_name(s).unwrap());
        }
        for v in ["Type", "ErrorControl", "ImagePath"] {
            h.query_value(s, v).unwrap();
        }
    }
    assert_eq!(
        boot,
        ["disk", "mountmgr", "Ntfs", "partmgr", "pci", "storahci", "volmgr"]
    );
    let sw =
        hive_from_reg_text("ROOT", include_str!("../../../image/registry/SOFTWARE.reg")).unwrap();
    clean(&sw.to_bytes());
    let cv = sw
        .open_key("Microsoft\\Windows NT\\CurrentVersion")
        .unwrap();
    assert_eq!(
        from_utf16z(&sw.query_value(cv, "SystemRoot").unwrap().data),
        "C:\\Windows"
    );
}

#[test]
fn large_flat_key_insert_delete() {
    let mut h = Hive::new_empty("R").unwrap();
    let root = h.root();
    let n = 20_000u32;
    // A scrambled insertion order.
    let names: Vec<String> = (0..n)
        .map(|i| std::format!("k{:06}", (i * 7919) % n))
        .collect();
    for nm in &names {
        h.create_key(root, nm).unwrap();
    }
    for nm in names.iter().step_by(2) {
        let k = h.open_key(nm).unwrap();
        h.delete_key(k).unwrap();
    }
    let b = h.to_bytes();
    clean(&b);
    let h2 = Hive::from_bytes(&b).unwrap();
    let subs = h2.enum_subkeys(h2.root()).unwrap();
    assert_eq!(subs.len(), (n / 2) as usize);
    for nm in names.iter().skip(1).step_by(2) {
        assert!(h2.open_key(nm).is_ok(), "{}", nm);
    }
    assert!(h2.open_key(&names[0]).is_err());
}

#[test]
fn old_format_dirt_log_recovers() {
    use crate::log::*;
    let mut files = MemFiles::default();
    let mut lh = LoggedHive::create(&mut files, Hive::new_empty("R").unwrap()).unwrap();
    let k = lh.hive.create_key_path("Old\\Format").unwrap();
    lh.hive.set_value(k, "v", REG_SZ, &utf16z("dirt")).unwrap();
    let want = lh.hive.dump().unwrap();
    // Build an old-format log by hand: base block (type 1, seq 2/2), DIRT + bitmap, sectors.
    let bins = lh.hive.stable_image();
    let old_bins = &files.files[0][4096..];
    let mut base = lh.hive.base_block(2, 2, 1);
    base.truncate(512);
    let sectors = bins.len() / 512;
    let mut bitmap = alloc::vec![0u8; sectors.div_ceil(8)];
    let mut pages = Vec::new();
    for i in 0..sectors {
        let s = &bins[i * 512..i * 512 + 512];
        if old_bins.get(i * 512..i * 512 + 512) != Some(s) {
            bitmap[i / 8] |= 1 << (i % 8);
            pages.extend_from_slice(s);
        }
    }
    let mut log = base;
    log.extend_from_slice(b"DIRT");
    log.extend_from_slice(&bitmap);
    log.resize(log.len().div_ceil(512) * 512, 0);
    log.extend_from_slice(&pages);
    // The primary was interrupted after its first base block write (seq1 = 2, seq2 = 1).
    let mut primary = files.files[0].clone();
    let pb = lh.hive.base_block(2, 1, 0);
    primary[..4096].copy_from_slice(&pb);
    assert!(Hive::from_bytes(&primary).is_err());
    let (h, r) = load_with_logs(&primary, &log, &[]).unwrap();
    assert_eq!(r, Recovery::Recovered(2));
    assert_eq!(h.dump().unwrap(), want);
    clean(&h.to_bytes());
}

/// A hive that cannot grow fails every change that needs a new cell with
/// `STATUS_INSUFFICIENT_RESOURCES` and is left exactly as it was (no leaked or half-linked cells).
#[test]
fn growth_failure_is_an_error_and_changes_nothing() {
    let mut h = Hive::new_empty("R").unwrap();
    let root = h.root();
    // Fill most of the first bins, then cap the hive at its current size.
    let parent = h.create_key(root, "Flat").unwrap();
    for i in 0..400 {
        let k = h.create_key(parent, &std::format!("k{:04}", i)).unwrap();
        h.set_value(k, "v", REG_DWORD, &(i as u32).to_le_bytes())
            .unwrap();
    }
    h.set_size_limit(h.stable_len() as u32);
    let before = h.dump().unwrap();
    let image = h.to_bytes();
    let mut failures = 0;
    for i in 0..2000 {
        let name = std::format!("new{:05}", i);
        match h.create_key(parent, &name) {
            Ok(k) => {
                // Fits in a free cell: undo it so the state stays comparable.
                h.delete_key(k).unwrap();
            }
            Err(e) => {
                assert_eq!(e, Error::Status(STATUS_INSUFFICIENT_RESOURCES));
                failures += 1;
            }
        }
        let big = alloc::vec![i as u8; 40_000];
        let k = h.open_key("Flat\\k0001").unwrap();
        match h.set_value(k, "big", REG_BINARY, &big) {
            Ok(()) => h.delete_value(k, "big").unwrap(),
            Err(e) => {
                assert_eq!(e, Error::Status(STATUS_INSUFFICIENT_RESOURCES));
                failures += 1;
            }
        }
        match h.set_value(k, &std::format!("n{:05}", i), REG_SZ, &utf16z("some text")) {
            Ok(()) => h.delete_value(k, &std::format!("n{:05}", i)).unwrap(),
            Err(e) => {
                assert_eq!(e, Error::Status(STATUS_INSUFFICIENT_RESOURCES));
                failures += 1;
            }
        }
    }
    assert!(failures > 0, "the size limit never made an allocation fail");
    assert_eq!(h.dump().unwrap(), before);
    let after = h.to_bytes();
    clean(&after);
    assert_eq!(after.len(), image.len());
    // Raising the limit lets the same changes succeed.
    h.set_size_limit(u32::MAX);
    let k = h.create_key(parent, "now fits").unwrap();
    h.set_value(k, "big", REG_BINARY, &alloc::vec![7; 40_000])
        .unwrap();
    clean(&h.to_bytes());
}

/// Splitting a full leaf needs three new cells; when the hive cannot grow the split fails as a
/// whole and the list is unchanged.
#[test]
fn leaf_split_failure_leaves_the_list_intact() {
    let mut h = Hive::new_empty("R").unwrap();
    let root = h.root();
    for i in 0..MAX_LEAF {
        h.create_key(root, &std::format!("k{:04}", i)).unwrap();
    }
    h.set_size_limit(h.stable_len() as u32);
    let before = h.dump().unwrap();
    let mut n = 0;
    loop {
        match h.create_key(root, &std::format!("z{:04}", n)) {
            Ok(_) => n += 1,
            Err(e) => {
                assert_eq!(e, Error::Status(STATUS_INSUFFICIENT_RESOURCES));
                break;
            }
        }
        assert!(n < 10_000);
    }
    let b = h.to_bytes();
    clean(&b);
    let h2 = Hive::from_bytes(&b).unwrap();
    assert_eq!(h2.enum_subkeys(h2.root()).unwrap().len(), MAX_LEAF + n);
    for (k, v) in before {
        assert_eq!(h2.dump().unwrap().get(&k), Some(&v));
    }
}

/// A flush writes only the pages that changed, and the primary then equals the serialized hive.
#[test]
fn flush_writes_the_dirty_pages_only() {
    use crate::log::*;
    let mut files = MemFiles::default();
    let mut h = Hive::new_empty("R").unwrap();
    for i in 0..300 {
        let k = h.create_key_path(&std::format!("A\\k{:03}", i)).unwrap();
        h.set_value(k, "v", REG_BINARY, &[i as u8; 100]).unwrap();
    }
    let mut lh = LoggedHive::create(&mut files, h).unwrap();
    assert!(!lh.is_dirty());
    assert!(lh.hive.stable_len() > 8 * PAGE);
    let k = lh.hive.open_key("A\\k150").unwrap();
    lh.hive.set_value(k, "v", REG_BINARY, &[0xEE; 100]).unwrap();
    let pages = lh.hive.dirty_pages();
    assert!(!pages.is_empty() && pages.len() <= 2, "{:?}", pages);
    files.writes = 0;
    lh.flush(&mut files).unwrap();
    assert!(!lh.is_dirty());
    // Log (set_len, entry, base) + primary (base, set_len, pages, base).
    assert_eq!(files.writes, 3 + 3 + pages.len());
    let image = lh.hive.to_bytes();
    assert_eq!(files.files[0][PAGE..], image[PAGE..]);
    clean(&files.files[0]);
    // Nothing changed: a flush writes nothing.
    files.writes = 0;
    lh.flush(&mut files).unwrap();
    assert_eq!(files.writes, 0);
}

/// Volatile keys under stable keys never reach stable storage, so every stable page equals the
/// file image without any clearing pass.
#[test]
fn volatile_subkeys_of_stable_keys_stay_out_of_stable_storage() {
    let mut h = Hive::new_empty("R").unwrap();
    let root = h.root();
    let s = h.create_key(root, "Stable").unwrap();
    let image = h.stable_image();
    let v = h.create_key_ex(s, "Vol", None, true).unwrap().0;
    h.create_link(root, "Link", "\\Registry\\Machine\\X", true)
        .unwrap();
    assert_eq!(h.stable_image().len(), image.len());
    assert_eq!(h.key_info(s).unwrap().volatile_subkeys, 1);
    assert_eq!(h.key_info(root).unwrap().volatile_subkeys, 1);
    assert_eq!(h.subkey_at(s, 0).unwrap(), Some(v));
    assert_eq!(h.subkey_at(s, 1).unwrap(), None);
    // The nk cells of Stable and R still say "no volatile subkeys".
    let b = h.to_bytes();
    clean(&b);
    let d = h.cell(s).unwrap();
    assert_eq!(rd32(d, NK_VSUBKEYS), Some(0));
    assert_eq!(rd32(d, NK_VLIST), Some(NIL));
    h.delete_key(v).unwrap();
    assert_eq!(h.key_info(s).unwrap().volatile_subkeys, 0);
}

#[test]
fn find_subkey_and_subkey_at_follow_enumeration_order() {
    let mut h = Hive::new_empty("R").unwrap();
    let root = h.root();
    let mut names: Vec<String> = (0..1200)
        .map(|i| std::format!("Key{:05}", i * 7 % 1200))
        .collect();
    for n in &names {
        h.create_key(root, n).unwrap();
    }
    h.create_key_ex(root, "aVolatile", None, true).unwrap();
    names.sort_by_key(|n| upcase_name(n));
    for (i, n) in names.iter().enumerate() {
        let k = h.subkey_at(root, i).unwrap().unwrap();
        assert_eq!(&h.key_name(k).unwrap(), n);
        let lower = n.to_lowercase();
        let want = NameKey::new(&lower).unwrap();
        assert_eq!(h.find_subkey(root, &want).unwrap(), Some(k));
    }
    let last = h.subkey_at(root, names.len()).unwrap().unwrap();
    assert_eq!(h.key_name(last).unwrap(), "aVolatile");
    assert_eq!(h.subkey_at(root, names.len() + 1).unwrap(), None);
    assert_eq!(
        h.find_subkey(root, &NameKey::new("missing").unwrap())
            .unwrap(),
        None
    );
    for n in ["Key00001", "résumé", "ÄÖÜ straße", "x"] {
        let k = NameKey::new(n).unwrap();
        assert_eq!(k.hash(), lh_hash(n));
        assert_eq!(k.len(), n.encode_utf16().count());
        assert!(k.matches(&upcase_name(n)));
    }
    assert_eq!(
        NameKey::new("a\\b").err(),
        Some(Error::Status(STATUS_OBJECT_NAME_INVALID))
    );
    assert_eq!(
        NameKey::new(&"x".repeat(256)).err(),
        Some(Error::Status(STATUS_OBJECT_NAME_INVALID))
    );
    // Value lookups by index and data queries.
    let k = h.open_key("Key00001").unwrap();
    for i in 0..10u32 {
        h.set_value(k, &std::format!("v{}", i), REG_DWORD, &i.to_le_bytes())
            .unwrap();
    }
    h.delete_value(k, "V3").unwrap();
    assert_eq!(
        h.value_by_index(k, 3).unwrap().unwrap().name,
        "v4".to_string()
    );
    assert_eq!(h.value_by_index(k, 9).unwrap(), None);
    assert_eq!(
        h.query_value_data(k, "V9").unwrap(),
        (REG_DWORD, 9u32.to_le_bytes().to_vec())
    );
    let mut buf = [0u8; 8];
    assert_eq!(
        h.query_value_into(k, "v9", &mut buf).unwrap(),
        (REG_DWORD, 4)
    );
    assert_eq!(buf[..4], 9u32.to_le_bytes());
    h.set_value(k, "long", REG_BINARY, &[7u8; 100]).unwrap();
    h.set_value(k, "big", REG_BINARY, &alloc::vec![9u8; 40_000])
        .unwrap();
    assert_eq!(
        h.query_value_into(k, "long", &mut buf).unwrap(),
        (REG_BINARY, 100)
    );
    assert_eq!(buf, [7u8; 8]);
    assert_eq!(
        h.query_value_into(k, "big", &mut buf).unwrap(),
        (REG_BINARY, 40_000)
    );
    assert_eq!(buf, [9u8; 8]);
    assert_eq!(
        h.query_value_into(k, "none", &mut buf).err(),
        Some(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))
    );
    clean(&h.to_bytes());
}

/// `reg export` layout, byte for byte, for values whose wrapping is known from files Windows
/// wrote (a 32-byte `Wordness0` puts 21 bytes on its first line and 11 on the next; a 164-byte
/// `DigitalProductId` puts 18 on the first line, then 25 per line): UTF-16LE with a BOM, CRLF,
/// a blank line after the header and after each key.
#[test]
fn reg_export_matches_windows_layout() {
    let mut h = Hive::new_empty("SOFTWARE").unwrap();
    let k = h.create_key_path("Test").unwrap();
    h.set_value(k, "Wordness0", REG_BINARY, &[0; 32]).unwrap();
    h.set_value(k, "DigitalProductId", REG_BINARY, &[0; 164])
        .unwrap();
    h.set_value(k, "", REG_SZ, &utf16z("x \"y\" \\z")).unwrap();
    h.set_value(k, "Path", REG_EXPAND_SZ, &utf16z("%A%"))
        .unwrap();
    h.set_value(k, "D", REG_DWORD, &0x2au32.to_le_bytes())
        .unwrap();
    h.set_value(k, "Q", REG_QWORD, &0x0102030405060708u64.to_le_bytes())
        .unwrap();
    h.set_value(k, "Empty", REG_SZ, &[]).unwrap();
    h.set_value(k, "B", REG_BINARY, &[]).unwrap();
    h.create_key_path("Test\\Sub").unwrap();
    let zeros = |n: usize| alloc::vec!["00"; n].join(",");
    let mut want = String::new();
    want += "Windows Registry Editor Version 5.00\r\n\r\n";
    want += "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Test]\r\n";
    want += &std::format!("\"Wordness0\"=hex:{},\\\r\n  {}\r\n", zeros(21), zeros(11));
    want += &std::format!("\"DigitalProductId\"=hex:{},\\\r\n", zeros(18));
    for _ in 0..5 {
        want += &std::format!("  {},\\\r\n", zeros(25));
    }
    want += &std::format!("  {}\r\n", zeros(21));
    want += "@=\"x \\\"y\\\" \\\\z\"\r\n";
    want += "\"Path\"=hex(2):25,00,41,00,25,00,00,00\r\n";
    want += "\"D\"=dword:0000002a\r\n";
    want += "\"Q\"=hex(b):08,07,06,05,04,03,02,01\r\n";
    want += "\"Empty\"=\"\"\r\n";
    want += "\"B\"=hex:\r\n";
    want += "\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Test\\Sub]\r\n\r\n";
    // Every line stays within 80 characters, the backslash included.
    assert!(want.split("\r\n").all(|l| l.len() <= 80));
    let key = h.open_key("Test").unwrap();
    let got = export_reg_file(&h, key, "HKEY_LOCAL_MACHINE\\SOFTWARE").unwrap();
    let mut bytes = alloc::vec![0xFF, 0xFE];
    for u in want.encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    if got != bytes {
        let g = decode_reg_file(&got).unwrap();
        panic!("got:\n{}\nwant:\n{}", g, want);
    }
    // And it imports back to the same content (an empty REG_SZ comes back as "" with its NUL,
    // as regedit imports it).
    let mut h2 = Hive::new_empty("SOFTWARE").unwrap();
    import_reg_text(&mut h2, &decode_reg_file(&got).unwrap()).unwrap();
    let k2 = h2.open_key("Test").unwrap();
    let mut orig = h.enum_values(key).unwrap();
    orig.iter_mut()
        .filter(|v| v.name == "Empty")
        .for_each(|v| v.data = alloc::vec![0, 0]);
    assert_eq!(h2.enum_values(k2).unwrap(), orig);
}

/// New-format entries split between `.LOG1` and `.LOG2` (the writer alternates logs): with a
/// valid primary base block both are replayed, the log holding the earlier entries first, whichever
/// file it is; the later log alone would leave the first change out.
#[test]
fn new_format_entries_split_between_both_logs_are_all_replayed() {
    use crate::log::*;
    let pages_of = |b: &[u8]| -> Vec<Vec<u8>> { b.chunks(4096).map(|c| c.to_vec()).collect() };
    let mut h = Hive::new_empty("R").unwrap();
    let k = h.create_key_path("Small").unwrap();
    h.set_value(k, "v", REG_DWORD, &1u32.to_le_bytes()).unwrap();
    let s0 = h.stable_image();
    // Change 1 adds pages (a large value); change 2 rewrites only the page of "Small".
    let big = h.create_key_path("Big").unwrap();
    h.set_value(big, "data", REG_BINARY, &[0x5A; 3 * 4096])
        .unwrap();
    let s1 = h.stable_image();
    h.set_value(k, "v", REG_DWORD, &2u32.to_le_bytes()).unwrap();
    let s2 = h.stable_image();
    let want = h.dump().unwrap();
    let changed = |from: &[u8], to: &[u8]| -> Vec<(u32, Vec<u8>)> {
        let old = pages_of(from);
        pages_of(to)
            .into_iter()
            .enumerate()
            .filter(|(i, p)| old.get(*i) != Some(p))
            .map(|(i, p)| ((i * 4096) as u32, p))
            .collect()
    };
    let (c1, c2) = (changed(&s0, &s1), changed(&s1, &s2));
    assert!(c1.iter().any(|(o, _)| c2.iter().all(|(o2, _)| o2 != o)));
    let log_file = |seq: u32, bins: &[u8], pages: &[(u32, Vec<u8>)]| {
        let mut f = h.base_block(seq, seq, HFILE_TYPE_LOG_NEW);
        f.truncate(512);
        let refs: Vec<(u32, &[u8])> = pages.iter().map(|(o, p)| (*o, &p[..])).collect();
        f.extend_from_slice(&build_log_entry(seq, bins.len() as u32, &refs));
        f
    };
    // The primary holds state 0 and was interrupted before its next write (seq 2/1).
    let mut primary = h.base_block(2, 1, 0);
    primary.extend_from_slice(&s0);
    let mut pb = primary[..4096].to_vec();
    wr32(&mut pb, 40, s0.len() as u32);
    let sum = base_checksum(&pb);
    wr32(&mut pb, 508, sum);
    primary[..4096].copy_from_slice(&pb);
    let early = log_file(1, &s1, &c1);
    let late = log_file(2, &s2, &c2);
    for (l1, l2) in [(&early, &late), (&late, &early)] {
        let (got, r) = load_with_logs(&primary, l1, l2).unwrap();
        assert_eq!(r, Recovery::Recovered(2));
        assert_eq!(got.dump().unwrap(), want);
        clean(&got.to_bytes());
    }
    // The later log alone does not give the final state: its entry does not continue the primary
    // and lacks change 1's pages.
    let alone = load_with_logs(&primary, &[], &late);
    assert!(alone.map_or(true, |(g, _)| g.dump().ok() != Some(want.clone())));
}

/// A hive the boot loader read from its primary (`Hive::from_bytes`) and that changed in memory
/// is bound to its files (`LoggedHive::attach`): the first flush writes only what changed, the
/// log is flushed before the primary is touched, and the primary is then the hive.
#[test]
fn attached_loader_hive_flushes_only_its_changes() {
    use crate::log::*;
    let mut files = MemFiles::default();
    let mut h = Hive::new_empty("SYSTEM").unwrap();
    for i in 0..200 {
        let k = h.create_key_path(&std::format!("S\\k{:03}", i)).unwrap();
        h.set_value(k, "v", REG_BINARY, &[i as u8; 100]).unwrap();
    }
    let mut lh = LoggedHive::create(&mut files, h).unwrap();
    let k = lh.hive.open_key("S\\k010").unwrap();
    lh.hive
        .set_value(k, "v", REG_DWORD, &1u32.to_le_bytes())
        .unwrap();
    lh.flush(&mut files).unwrap();
    // What winload reads and hands over.
    let mut loaded = Hive::from_bytes(&files.files[0]).unwrap();
    let k = loaded.open_key("S\\k150").unwrap();
    loaded
        .set_value(k, "new", REG_SZ, &utf16z("after boot"))
        .unwrap();
    let pages = loaded.dirty_pages().len();
    let mut bound = LoggedHive::attach(loaded, &files.files[0][..PAGE]);
    assert!(bound.is_dirty());
    assert_eq!(bound.sequence(), 2);
    files.writes = 0;
    files.flushes.clear();
    bound.flush(&mut files).unwrap();
    // Log (set_len, entry, base) + primary (base, set_len, pages, base).
    assert_eq!(files.writes, 3 + 3 + pages);
    // The log is flushed after its three writes, before the primary's first.
    assert_eq!(files.flushes.first(), Some(&(HiveFile::Log1, 3)));
    assert_eq!(
        files.flushes.last(),
        Some(&(HiveFile::Primary, files.writes))
    );
    clean(&files.files[0]);
    let (again, r) = LoggedHive::open(&files).unwrap();
    assert_eq!(r, Recovery::Clean);
    assert_eq!(again.sequence(), 3);
    assert_eq!(again.hive.dump().unwrap(), bound.hive.dump().unwrap());
}

/// A hive bound to a primary that does not hold the state it was read from (the loader
/// recovered it from the logs, or the file changed) is written whole by its next flush, with a
/// sequence number past the file's.
#[test]
fn attached_hive_over_a_dirty_primary_is_written_whole() {
    use crate::log::*;
    let mut files = MemFiles::default();
    let mut lh = LoggedHive::create(&mut files, Hive::new_empty("SOFTWARE").unwrap()).unwrap();
    let root = lh.hive.root();
    lh.hive.create_key(root, "A").unwrap();
    // A crash after the log and the primary's first base block.
    files.writes = 0;
    files.fail_after = Some(4);
    assert!(lh.flush(&mut files).is_err());
    files.fail_after = None;
    let (recovered, r) = load_with_logs(&files.files[0], &files.files[1], &files.files[2]).unwrap();
    assert!(matches!(r, Recovery::Recovered(2)));
    let base = files.files[0][..PAGE].to_vec();
    assert_ne!(rd32(&base, 4), rd32(&base, 8));
    let mut bound = LoggedHive::attach(recovered, &base);
    assert_eq!(bound.sequence(), 2);
    bound.flush(&mut files).unwrap();
    clean(&files.files[0]);
    let (again, r) = LoggedHive::open(&files).unwrap();
    assert_eq!(r, Recovery::Clean);
    assert!(again.hive.open_key("A").is_ok());
    assert_eq!(again.sequence(), 3);
}
