//! Host tests of saving a subtree as a new hive (`Hive::save_subtree`), read back by regf and
//! by hivex (`hivexregedit`, Debian's libwin-hivex-perl, which `cargo xtask` installs).
extern crate std;

use alloc::string::String;
use alloc::vec::Vec;

use crate::*;

const T0: u64 = 133_000_000_000_000_000;

/// A hive with a subtree to save (`Software\Vendor`), a sibling that must not be saved,
/// volatile keys, a link, a class, a big value, non-ASCII names and a descriptor of its own.
fn source() -> (Hive, KeyRef) {
    let mut h = Hive::new_empty("ROOT").unwrap();
    h.set_time(T0);
    let vendor = h.create_key_path("Software\\Vendor").unwrap();
    let app = h.create_key_path("Software\\Vendor\\App").unwrap();
    h.set_value(app, "", REG_SZ, &utf16z("default")).unwrap();
    h.set_value(app, "Count", REG_DWORD, &7u32.to_le_bytes())
        .unwrap();
    h.set_value(app, "Big", REG_BINARY, &alloc::vec![0xAB; 40000])
        .unwrap();
    h.set_value(vendor, "Name", REG_SZ, &utf16z("Vendor Inc"))
        .unwrap();
    let (c, _) = h
        .create_key_ex(vendor, "Classy", Some("MyClass"), false)
        .unwrap();
    h.create_key(c, "Ünïcödé").unwrap();
    for i in 0..700 {
        // More than one leaf: an ri index.
        h.create_key(vendor, &alloc::format!("Many{i:04}")).unwrap();
    }
    h.create_link(
        vendor,
        "Link",
        "\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor\\App",
        false,
    )
    .unwrap();
    let (v, _) = h.create_key_ex(vendor, "Volatile", None, true).unwrap();
    h.set_value(v, "x", REG_DWORD, &1u32.to_le_bytes()).unwrap();
    h.create_key_path("Software\\Other").unwrap();
    let mut sd = DEFAULT_SD.to_vec();
    sd[76] = 0x3F; // Everyone gets more than KEY_READ on App
    h.set_key_security(app, &sd).unwrap();
    h.set_time(T0 + 1_000);
    let late = h.create_key(app, "Later").unwrap();
    h.set_value(late, "v", REG_QWORD, &5u64.to_le_bytes())
        .unwrap();
    (h, vendor)
}

fn expected(h: &Hive, key: KeyRef) -> std::collections::BTreeMap<String, Vec<Value>> {
    // The source's dump below `key`, without volatile keys.
    let path = h.key_path(key).unwrap();
    h.dump()
        .unwrap()
        .into_iter()
        .filter_map(|(p, v)| {
            let rest = if p == path {
                String::new()
            } else if path.is_empty() {
                p.clone()
            } else {
                p.strip_prefix(&alloc::format!("{path}\\"))?.into()
            };
            (!rest.contains("Volatile")).then_some((rest, v))
        })
        .collect()
}

#[test]
fn saved_subtree_holds_the_stable_keys_values_security_and_times() {
    let (h, vendor) = source();
    for (format, minor) in [(REG_LATEST_FORMAT, 5), (REG_STANDARD_FORMAT, 3)] {
        let bytes = h.save_subtree_bytes(vendor, format).unwrap();
        let problems = check(&bytes);
        assert!(problems.is_empty(), "format {format}: {problems:#?}");
        let s = Hive::from_bytes(&bytes).unwrap();
        assert_eq!(s.base_info().minor, minor);
        assert_eq!(s.key_name(s.root()).unwrap(), "Vendor");
        assert_eq!(s.dump().unwrap(), expected(&h, vendor), "format {format}");
        assert!(s.open_key("Volatile").is_err());
        let app = s.open_key("App").unwrap();
        let src_app = h.open_key("Software\\Vendor\\App").unwrap();
        assert_eq!(
            s.key_security(app).unwrap(),
            h.key_security(src_app).unwrap()
        );
        assert_eq!(
            s.key_last_write(app).unwrap(),
            h.key_last_write(src_app).unwrap()
        );
        assert_eq!(s.key_last_write(app).unwrap(), T0 + 1_000);
        assert!(s.open_key("Other").is_err());
        assert_eq!(
            s.key_class(s.open_key("Classy").unwrap())
                .unwrap()
                .as_deref(),
            Some("MyClass")
        );
        assert_eq!(
            s.link_target(s.open_key("Link").unwrap())
                .unwrap()
                .as_deref(),
            Some("\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor\\App")
        );
        let root_flags = s.key_flags(s.root()).unwrap();
        assert_ne!(root_flags & KEY_HIVE_ENTRY, 0);
        // The leaves are of the format's kind.
        let sig = |kind: &[u8; 2]| bytes.windows(2).filter(|w| w == kind).count();
        if minor == 3 {
            assert!(sig(b"lf") > 0);
            assert_eq!(sig(b"db"), 0, "no big data records in version 1.3");
        } else {
            assert!(sig(b"lh") > 0);
        }
        assert_eq!(
            s.query_value(app, "Big").unwrap().data,
            alloc::vec![0xAB; 40000]
        );
    }
    // Other formats are refused.
    for bad in [0, REG_NO_COMPRESSION, 3, 8] {
        assert_eq!(
            h.save_subtree(vendor, bad).unwrap_err(),
            Error::Status(STATUS_INVALID_PARAMETER)
        );
    }
}

#[test]
fn saved_hive_is_compact() {
    // Keys and values created and deleted under the saved key leave free cells in the source;
    // the saved hive is the same size as before they existed.
    let (mut h, vendor) = source();
    let before = h.save_subtree_bytes(vendor, REG_LATEST_FORMAT).unwrap();
    for i in 0..300 {
        let k = h.create_key(vendor, &alloc::format!("Junk{i:04}")).unwrap();
        h.set_value(k, "junk", REG_BINARY, &[7; 3000]).unwrap();
    }
    for i in 0..300 {
        let k = h
            .open_key(&alloc::format!("Software\\Vendor\\Junk{i:04}"))
            .unwrap();
        h.delete_value(k, "junk").unwrap();
        h.delete_key(k).unwrap();
    }
    let after = h.save_subtree_bytes(vendor, REG_LATEST_FORMAT).unwrap();
    assert!(h.to_bytes().len() > before.len() + 900_000);
    assert_eq!(after.len(), before.len());
    assert_eq!(
        Hive::from_bytes(&after).unwrap().dump().unwrap(),
        Hive::from_bytes(&before).unwrap().dump().unwrap()
    );
}

#[test]
fn saving_the_root_of_a_hive_copies_the_whole_hive() {
    let (h, _) = source();
    let bytes = h.save_subtree_bytes(h.root(), REG_LATEST_FORMAT).unwrap();
    let s = Hive::from_bytes(&bytes).unwrap();
    assert_eq!(s.dump().unwrap(), expected(&h, h.root()));
}

/// hivex (libhivex through `hivexregedit --export`) reads both formats: every key and value.
#[test]
fn hivex_reads_saved_hives() {
    let (h, vendor) = source();
    let dir = std::env::temp_dir();
    for format in [REG_LATEST_FORMAT, REG_STANDARD_FORMAT] {
        let bytes = h.save_subtree_bytes(vendor, format).unwrap();
        let path = dir.join(std::format!(
            "regf-save-{}-{format}.hive",
            std::process::id()
        ));
        std::fs::write(&path, &bytes).unwrap();
        let out = std::process::Command::new("hivexregedit")
            .arg("--export")
            .arg("--prefix")
            .arg("HKEY_LOCAL_MACHINE\\X")
            .arg(&path)
            .arg("\\")
            .output();
        let _ = std::fs::remove_file(&path);
        let out = out.expect(
            "hivexregedit (Debian libwin-hivex-perl; `cargo xtask run` installs it) must be present",
        );
        assert!(
            out.status.success(),
            "hivexregedit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let keys = text.lines().filter(|l| l.starts_with('[')).count();
        // Vendor, App, Later, Classy, Ünïcödé, 700 Many, Link (no Volatile).
        assert_eq!(keys, 706, "format {format}: {text:.2000}");
        assert!(text.contains("[HKEY_LOCAL_MACHINE\\X\\App]"), "{format}");
        assert!(text.contains("\"Count\"=dword:00000007"), "{format}");
        assert!(text.contains("\"Name\"=hex(1):56,00,65,00"), "{format}");
        assert!(!text.contains("Volatile"), "{format}");
        assert!(text.contains("Many0699"), "{format}");
        // The big value is there in full: 40,000 bytes of "ab,".
        assert_eq!(text.matches("ab").count(), 40000, "{format}");
    }
}
