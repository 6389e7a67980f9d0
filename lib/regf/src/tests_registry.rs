//! Host tests of the registry over hives (KCB cache, mounting, links, notification, security
//! caching, failures).

extern crate std;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::log::{LoggedHive, MemFiles};
use crate::registry::*;
use crate::*;

fn refs(n: usize) -> &'static [AtomicU32] {
    (0..n).map(|_| AtomicU32::new(0)).collect::<Vec<_>>().leak()
}

static PARSES: AtomicUsize = AtomicUsize::new(0);

fn parse(b: &[u8]) -> Option<Vec<u8>> {
    PARSES.fetch_add(1, Ordering::Relaxed);
    (b.len() >= 20).then(|| b.to_vec())
}

type Reg = Registry<Vec<u8>, u32>;

/// `\REGISTRY` with MACHINE, USER, a SYSTEM hive in files (ControlSet001\Services\Beep,
/// Select\Current = 1, a volatile CurrentControlSet link) and a memory-only HARDWARE hive.
fn registry() -> Reg {
    let mut r = Reg::new("REGISTRY", refs(1 << 14), parse).unwrap();
    let (machine, _, _) = r.create_key(ROOT_KCB, "MACHINE", true).unwrap();
    r.create_key(ROOT_KCB, "USER", true).unwrap();
    let mut sys = Hive::new_empty("SYSTEM").unwrap();
    let b = sys
        .create_key_path("ControlSet001\\Services\\Beep")
        .unwrap();
    sys.set_value(b, "Start", REG_DWORD, &1u32.to_le_bytes())
        .unwrap();
    let sel = sys.create_key_path("Select").unwrap();
    sys.set_value(sel, "Current", REG_DWORD, &1u32.to_le_bytes())
        .unwrap();
    let root = sys.root();
    sys.create_link(
        root,
        "CurrentControlSet",
        "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001",
        true,
    )
    .unwrap();
    let mut files = MemFiles::default();
    let logged = LoggedHive::create(&mut files, sys).unwrap();
    r.mount(
        machine,
        "SYSTEM",
        Storage::Files {
            logged,
            files: Box::new(files),
        },
        "\\SystemRoot\\System32\\Config\\SYSTEM",
    )
    .unwrap();
    let mut hw = Hive::new_empty("HARDWARE").unwrap();
    let hr = hw.root();
    hw.set_key_flags(hr, KEY_IS_VOLATILE).unwrap();
    r.mount(machine, "HARDWARE", Storage::Memory(hw), "")
        .unwrap();
    r.release(machine);
    r
}

#[test]
fn mounted_hives_are_reached_through_their_link_nodes() {
    let mut r = registry();
    let k = r
        .lookup(ROOT_KCB, "MACHINE\\SYSTEM\\ControlSet001\\Services\\Beep")
        .unwrap();
    assert_eq!(
        r.full_name(k),
        "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\Beep"
    );
    assert_eq!(
        r.query_value(k, "start").unwrap(),
        (REG_DWORD, 1u32.to_le_bytes().to_vec())
    );
    // MACHINE lists its link nodes by name.
    let m = r.lookup(ROOT_KCB, "machine").unwrap();
    let names: Vec<String> = (0..).map_while(|i| r.enumerate_key(m, i).ok()).collect();
    assert_eq!(names, ["HARDWARE", "SYSTEM"]);
    assert_eq!(r.query_key(m).unwrap().subkeys, 2);
    let s = r.lookup(ROOT_KCB, "MACHINE\\System").unwrap();
    let info = r.query_key(s).unwrap();
    assert_eq!(info.name, "SYSTEM");
    assert!(!info.volatile);
    // The hive root's KCB is the one the mount created.
    assert_eq!(r.hives().nth(1).unwrap().root, s);
    assert_eq!(
        r.delete_key(s).err(),
        Some(Error::Status(STATUS_CANNOT_DELETE))
    );
    assert_eq!(
        r.lookup(ROOT_KCB, "MACHINE\\SYSTEM\\Nope").err(),
        Some(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))
    );
}

#[test]
fn one_kcb_per_key_and_references_count() {
    let mut r = registry();
    let a = r
        .lookup(ROOT_KCB, "MACHINE\\SYSTEM\\ControlSet001\\Services")
        .unwrap();
    let b = r
        .lookup(ROOT_KCB, "machine\\system\\CONTROLSET001\\services")
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(r.kcb_refs(a), 2);
    let beep = r.lookup(a, "Beep").unwrap();
    // Beep's KCB references Services.
    assert_eq!(r.kcb_refs(a), 3);
    assert_eq!(r.kcb(beep).unwrap().parent, a);
    assert!(r.kcb_address(a).is_some());
    assert_ne!(r.kcb_address(a), r.kcb_address(beep));
}

#[test]
fn symbolic_links_resolve_and_creation_goes_through_them() {
    let mut r = registry();
    let via = r
        .lookup(ROOT_KCB, "MACHINE\\SYSTEM\\CurrentControlSet\\Services")
        .unwrap();
    let direct = r
        .lookup(ROOT_KCB, "MACHINE\\SYSTEM\\ControlSet001\\Services")
        .unwrap();
    assert_eq!(via, direct);
    let (k, created, _) = r
        .create_key(
            ROOT_KCB,
            "MACHINE\\SYSTEM\\CurrentControlSet\\Services\\New",
            false,
        )
        .unwrap();
    assert!(created);
    assert_eq!(
        r.full_name(k),
        "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\New"
    );
    let (k2, created2, _) = r
        .create_key(
            ROOT_KCB,
            "MACHINE\\SYSTEM\\ControlSet001\\Services\\NEW",
            false,
        )
        .unwrap();
    assert!(!created2);
    assert_eq!(k, k2);
    let h = r.storage(1).unwrap().hive();
    assert!(h.open_key("ControlSet001\\Services\\New").is_ok());
}

#[test]
fn create_rules_and_volatility() {
    let mut r = registry();
    assert_eq!(
        r.create_key(ROOT_KCB, "MACHINE\\SYSTEM\\Missing\\Child", false)
            .err(),
        Some(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))
    );
    assert_eq!(
        r.create_key(ROOT_KCB, "MACHINE\\HARDWARE\\Stable", false)
            .err(),
        Some(Error::Status(STATUS_CHILD_MUST_BE_VOLATILE))
    );
    let (v, _, _) = r
        .create_key(ROOT_KCB, "MACHINE\\HARDWARE\\Vol", true)
        .unwrap();
    assert!(r.query_key(v).unwrap().volatile);
    assert_eq!(
        r.create_key(ROOT_KCB, "MACHINE\\SYSTEM\\bad\\", false)
            .err(),
        Some(Error::Status(STATUS_OBJECT_NAME_INVALID))
    );
}

#[test]
fn deleted_keys_fail_their_handles() {
    let mut r = registry();
    let (k, _, _) = r
        .create_key(ROOT_KCB, "MACHINE\\SYSTEM\\Gone", false)
        .unwrap();
    let (c, _, _) = r
        .create_key(ROOT_KCB, "MACHINE\\SYSTEM\\Gone\\Child", false)
        .unwrap();
    assert_eq!(
        r.delete_key(k).err(),
        Some(Error::Status(STATUS_CANNOT_DELETE))
    );
    r.delete_key(c).unwrap();
    let other = r.lookup(ROOT_KCB, "MACHINE\\SYSTEM\\Gone").unwrap();
    assert_eq!(other, k);
    r.delete_key(k).unwrap();
    assert_eq!(
        r.query_key(other).err(),
        Some(Error::Status(STATUS_KEY_DELETED))
    );
    assert_eq!(
        r.set_value(other, "x", REG_DWORD, &[0; 4]).err(),
        Some(Error::Status(STATUS_KEY_DELETED))
    );
    assert_eq!(
        r.lookup(ROOT_KCB, "MACHINE\\SYSTEM\\Gone").err(),
        Some(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))
    );
    // A new key of the same name gets a new KCB.
    let (n, created, _) = r
        .create_key(ROOT_KCB, "MACHINE\\SYSTEM\\Gone", false)
        .unwrap();
    assert!(created);
    assert_ne!(n, k);
}

#[test]
fn the_cache_frees_unreferenced_kcbs_and_keeps_referenced_ones() {
    let mut r = registry();
    r.set_cache_limit(64);
    let (base, _, _) = r
        .create_key(ROOT_KCB, "MACHINE\\SYSTEM\\Many", false)
        .unwrap();
    let mut held = Vec::new();
    for i in 0..500 {
        let (k, _, _) = r
            .create_key(base, &std::format!("K{:03}", i), false)
            .unwrap();
        if i % 100 == 0 {
            held.push(k);
        } else {
            // The key object went away (as the kernel's delete procedure does it: no lock).
            Reg::release_ref(r.refs_table(), k);
        }
    }
    assert!(r.kcb_count() <= 64 + held.len() + 16, "{}", r.kcb_count());
    for &k in &held {
        assert!(r.kcb(k).is_ok());
        assert!(r.query_key(k).is_ok());
    }
    // Freed KCBs come back on the next lookup.
    let k = r.lookup(base, "K001").unwrap();
    assert_eq!(r.full_name(k), "\\REGISTRY\\MACHINE\\SYSTEM\\Many\\K001");
}

#[test]
fn notifications_fire_once_for_the_key_or_its_subtree() {
    let mut r = registry();
    let (w, _, _) = r
        .create_key(ROOT_KCB, "MACHINE\\SYSTEM\\Watch", false)
        .unwrap();
    let (s, _, _) = r.create_key(w, "Sub", false).unwrap();
    r.notify(w, REG_NOTIFY_CHANGE_LAST_SET, false, 1).unwrap();
    r.notify(w, REG_NOTIFY_CHANGE_LAST_SET, true, 2).unwrap();
    r.notify(w, REG_NOTIFY_CHANGE_NAME, false, 3).unwrap();
    assert_eq!(r.set_value(s, "v", REG_DWORD, &[1, 0, 0, 0]).unwrap(), [2]);
    assert_eq!(
        r.set_value(s, "v", REG_DWORD, &[1, 0, 0, 0]).unwrap(),
        Vec::<u32>::new()
    );
    let (_, _, fired) = r.create_key(w, "Sub2", false).unwrap();
    assert_eq!(fired, [3]);
    assert_eq!(r.notification_count(), 1);
    assert_eq!(r.cancel_notifications(|&t| t == 1), [1]);
    assert_eq!(r.notification_count(), 0);
}

#[test]
fn security_is_parsed_once_per_security_cell() {
    let mut r = registry();
    let before = PARSES.load(Ordering::Relaxed);
    let mut keys = Vec::new();
    for i in 0..20 {
        let (k, _, _) = r
            .create_key(ROOT_KCB, &std::format!("MACHINE\\SYSTEM\\Sec{}", i), false)
            .unwrap();
        keys.push(k);
    }
    for &k in &keys {
        assert!(r.security(k).unwrap().is_some());
        assert!(r.security(k).unwrap().is_some());
    }
    // All twenty share the SYSTEM root's sk cell (other tests may parse in parallel, so only
    // bound the count).
    let parses = PARSES.load(Ordering::Relaxed) - before;
    assert!(
        parses < 20,
        "{} parses for 20 keys sharing one descriptor",
        parses
    );
    let mut sd = DEFAULT_SD.to_vec();
    sd[76] = 0x3F;
    r.set_security(keys[0], &sd).unwrap();
    assert_eq!(r.security(keys[0]).unwrap().unwrap(), sd);
    assert_eq!(r.security(keys[1]).unwrap().unwrap(), DEFAULT_SD.to_vec());
    assert_eq!(
        r.set_security(keys[0], &[1, 2]).err(),
        Some(Error::Status(STATUS_INVALID_SECURITY_DESCR))
    );
}

#[test]
fn a_hive_that_cannot_grow_fails_the_service_and_changes_nothing() {
    let mut r = registry();
    let s = r.lookup(ROOT_KCB, "MACHINE\\SYSTEM").unwrap();
    let len = r.storage(1).unwrap().hive().stable_len() as u32;
    r.set_hive_size_limit(s, len).unwrap();
    let mut failed = None;
    for i in 0..2000 {
        let before = r.storage(1).unwrap().hive().dump().unwrap();
        let kcbs = r.kcb_count();
        let r1 = r.create_key(s, &std::format!("Fill{:04}", i), false);
        let r2 = r1
            .as_ref()
            .map_err(|e| e.clone())
            .and_then(|(k, _, _)| r.set_value(*k, "big", REG_BINARY, &alloc::vec![7u8; 3000]));
        match (r1, r2) {
            (Ok(_), Ok(_)) => continue,
            (Err(e), _) => {
                assert_eq!(r.storage(1).unwrap().hive().dump().unwrap(), before);
                assert_eq!(r.kcb_count(), kcbs);
                assert_eq!(
                    r.lookup(s, &std::format!("Fill{:04}", i)).err(),
                    Some(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))
                );
                failed = Some(e);
            }
            (Ok((k, _, _)), Err(e)) => {
                assert_eq!(
                    r.query_value(k, "big").err(),
                    Some(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))
                );
                failed = Some(e);
            }
        }
        break;
    }
    assert_eq!(
        failed.expect("the limit never stopped the hive from growing"),
        Error::Status(STATUS_INSUFFICIENT_RESOURCES)
    );
    assert!(check(&r.storage(1).unwrap().hive().to_bytes()).is_empty());
}

#[test]
fn kcb_storage_exhaustion_is_a_status() {
    let mut r = Reg::new("REGISTRY", refs(40), parse).unwrap();
    r.set_cache_limit(16);
    let mut last = Ok(());
    let mut held = Vec::new();
    for i in 0..100 {
        match r.create_key(ROOT_KCB, &std::format!("K{}", i), true) {
            Ok((k, _, _)) => held.push(k),
            Err(e) => {
                last = Err(e);
                break;
            }
        }
    }
    assert_eq!(last, Err(Error::Status(STATUS_INSUFFICIENT_RESOURCES)));
    assert!(held.len() < 40);
}

#[test]
fn flushing_writes_the_hive_files() {
    let mut r = registry();
    assert!(!r.is_dirty());
    let (k, _, _) = r
        .create_key(
            ROOT_KCB,
            "MACHINE\\SYSTEM\\CurrentControlSet\\Flushed",
            false,
        )
        .unwrap();
    r.set_value(k, "v", REG_DWORD, &5u32.to_le_bytes()).unwrap();
    assert!(r.is_dirty());
    r.flush(k).unwrap();
    assert!(!r.is_dirty());
    assert_eq!(r.hives().nth(1).unwrap().flushes, 1);
    // Volatile keys (the link) are not in the files; the stable change is.
    let Some(Storage::Files { logged, .. }) = r.storage(1) else {
        panic!("SYSTEM is not file-backed");
    };
    let again = Hive::from_bytes(&logged.hive.to_bytes()).unwrap();
    assert!(again.open_key("ControlSet001\\Flushed").is_ok());
    assert!(again.open_key("CurrentControlSet").is_err());
    // Memory hives have nothing to flush.
    let hw = r.lookup(ROOT_KCB, "MACHINE\\HARDWARE").unwrap();
    r.flush(hw).unwrap();
}

/// Paths are found through the cache whatever their case or script; non-ASCII names take the
/// component-by-component path and reach the same KCBs.
#[test]
fn cached_paths_match_case_insensitively_and_non_ascii_names_work() {
    let mut r = registry();
    let (a, _, _) = r
        .create_key(ROOT_KCB, "MACHINE\\SYSTEM\\Ünïcode", false)
        .unwrap();
    let (b, _, _) = r
        .create_key(ROOT_KCB, "MACHINE\\SYSTEM\\Ünïcode\\Sub", false)
        .unwrap();
    assert_eq!(r.lookup(ROOT_KCB, "machine\\system\\ÜNÏCODE").unwrap(), a);
    assert_eq!(
        r.lookup(ROOT_KCB, "MACHINE\\SYSTEM\\ünïcode\\SUB").unwrap(),
        b
    );
    assert_eq!(
        r.create_key(ROOT_KCB, "MACHINE\\SYSTEM\\Plain\\Deeper\\Deepest", false)
            .err(),
        Some(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))
    );
    let (p, _, _) = r
        .create_key(ROOT_KCB, "MACHINE\\SYSTEM\\Plain", false)
        .unwrap();
    let (d, _, _) = r.create_key(p, "Deeper", false).unwrap();
    // Same key by the whole path (one probe), by a prefix plus a walk, and from another start.
    assert_eq!(
        r.lookup(ROOT_KCB, "MACHINE\\SYSTEM\\PLAIN\\deeper")
            .unwrap(),
        d
    );
    assert_eq!(
        r.lookup(ROOT_KCB, "\\MACHINE\\\\SYSTEM\\Plain\\Deeper\\")
            .unwrap(),
        d
    );
    assert_eq!(r.lookup(p, "deeper").unwrap(), d);
    // A name that differs only after a prefix that is cached is not found.
    assert_eq!(
        r.lookup(ROOT_KCB, "MACHINE\\SYSTEM\\Plain\\Deepe").err(),
        Some(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))
    );
}

/// A memory hive (what the loader handed over) is not written until it is bound to its files;
/// then the changes made meanwhile reach the primary with the next flush, and a second bind is
/// refused.
#[test]
fn a_loader_hive_bound_to_its_files_is_flushed() {
    let mut r = registry();
    let mut soft = Hive::new_empty("SOFTWARE").unwrap();
    soft.create_key_path("Vendor").unwrap();
    let mut files = MemFiles::default();
    let disk = LoggedHive::create(&mut files, soft).unwrap();
    let image = files.files[0].clone();
    let machine = r.lookup(ROOT_KCB, "MACHINE").unwrap();
    let loaded = Hive::from_bytes(&image).unwrap();
    r.mount(
        machine,
        "SOFTWARE",
        Storage::Memory(loaded),
        "\\SystemRoot\\System32\\Config\\SOFTWARE",
    )
    .unwrap();
    let (k, _, _) = r
        .create_key(ROOT_KCB, "MACHINE\\SOFTWARE\\Vendor\\Early", false)
        .unwrap();
    r.set_value(k, "x", REG_DWORD, &5u32.to_le_bytes()).unwrap();
    r.flush_all().unwrap();
    let soft_k = r.lookup(ROOT_KCB, "MACHINE\\SOFTWARE").unwrap();
    r.bind_files(soft_k, Box::new(files), &image[..4096])
        .unwrap();
    assert!(r.is_dirty());
    r.flush(k).unwrap();
    assert!(!r.is_dirty());
    let hi = r.kcb(soft_k).unwrap().hive as usize;
    let Some(Storage::Files { files, .. }) = r.storage(hi) else {
        panic!("SOFTWARE is not bound to files");
    };
    let primary = files.read(crate::log::HiveFile::Primary);
    let h = Hive::from_bytes(&primary).unwrap();
    let e = h.open_key("Vendor\\Early").unwrap();
    assert_eq!(h.query_value(e, "x").unwrap().data, 5u32.to_le_bytes());
    assert_eq!(h.base_info().seq1, disk.sequence() + 1);
    assert_eq!(
        r.bind_files(soft_k, Box::new(MemFiles::default()), &image[..4096])
            .err(),
        Some(Error::Status(STATUS_INVALID_PARAMETER))
    );
}

/// Saves `MACHINE\SYSTEM\ControlSet001` (`NtSaveKey`) and mounts the file image at
/// `MACHINE\<name>` (`NtLoadKey`), recovering from its logs.
fn save_and_load(r: &mut Reg, name: &str) -> (KcbIndex, Vec<u8>) {
    let cs = r
        .lookup(ROOT_KCB, "MACHINE\\SYSTEM\\ControlSet001")
        .unwrap();
    let saved = r.save_key(cs, REG_LATEST_FORMAT).unwrap();
    r.release(cs);
    let files = MemFiles {
        files: [saved.clone(), Vec::new(), Vec::new()],
        ..Default::default()
    };
    let (logged, _) = LoggedHive::open(&files).unwrap();
    let machine = r.lookup(ROOT_KCB, "MACHINE").unwrap();
    let k = r
        .mount(
            machine,
            name,
            Storage::Files {
                logged,
                files: Box::new(files),
            },
            "\\??\\C:\\saved.hiv",
        )
        .unwrap();
    r.release(machine);
    (k, saved)
}

#[test]
fn saved_key_loads_as_a_hive_and_unloads_with_its_changes_flushed() {
    let mut r = registry();
    let (_, saved) = save_and_load(&mut r, "LOADED");
    assert!(check(&saved).is_empty());
    let beep = r
        .lookup(ROOT_KCB, "MACHINE\\LOADED\\Services\\Beep")
        .unwrap();
    assert_eq!(r.query_value(beep, "Start").unwrap().1, 1u32.to_le_bytes());
    r.set_value(beep, "Start", REG_DWORD, &4u32.to_le_bytes())
        .unwrap();
    // An open key keeps the hive loaded.
    let root = r.lookup(ROOT_KCB, "MACHINE\\LOADED").unwrap();
    assert_eq!(
        r.unmount(root, 1, false).err(),
        Some(Error::Status(STATUS_CANNOT_DELETE))
    );
    r.release(beep);
    let (storage, fired) = r.unmount(root, 1, false).unwrap();
    r.release(root);
    assert!(fired.is_empty());
    // Flushed before it went: the files hold the change.
    let Storage::Files { files, .. } = storage else {
        panic!("not file-backed")
    };
    let (h, _) = crate::log::load_with_logs(
        &files.read(crate::log::HiveFile::Primary),
        &files.read(crate::log::HiveFile::Log1),
        &files.read(crate::log::HiveFile::Log2),
    )
    .unwrap();
    let b = h.open_key("Services\\Beep").unwrap();
    assert_eq!(h.query_value(b, "Start").unwrap().data, 4u32.to_le_bytes());
    // Gone from the namespace and from the hive list; the name can be loaded again.
    assert_eq!(
        r.lookup(ROOT_KCB, "MACHINE\\LOADED\\Services").err(),
        Some(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))
    );
    assert!(!r.hives().any(|h| h.file_name == "\\??\\C:\\saved.hiv"));
    let hives = r.hives().count();
    save_and_load(&mut r, "LOADED");
    assert_eq!(r.hives().count(), hives + 1);
    let b = r
        .lookup(ROOT_KCB, "MACHINE\\LOADED\\Services\\Beep")
        .unwrap();
    assert_eq!(r.query_value(b, "Start").unwrap().1, 1u32.to_le_bytes());
    r.release(b);
}

#[test]
fn forced_unload_deletes_open_keys_and_ends_their_notifications() {
    let mut r = registry();
    let (_, _) = save_and_load(&mut r, "LOADED");
    let beep = r
        .lookup(ROOT_KCB, "MACHINE\\LOADED\\Services\\Beep")
        .unwrap();
    r.notify(beep, REG_NOTIFY_CHANGE_LAST_SET, false, 77)
        .unwrap();
    let root = r.lookup(ROOT_KCB, "MACHINE\\LOADED").unwrap();
    assert_eq!(
        r.unmount(root, 1, false).err(),
        Some(Error::Status(STATUS_CANNOT_DELETE))
    );
    let (_, fired) = r.unmount(root, 1, true).unwrap();
    assert_eq!(fired, [77]);
    assert_eq!(r.notification_count(), 0);
    assert_eq!(
        r.query_value(beep, "Start").err(),
        Some(Error::Status(STATUS_KEY_DELETED))
    );
    assert_eq!(
        r.set_value(beep, "x", REG_DWORD, &[0; 4]).err(),
        Some(Error::Status(STATUS_KEY_DELETED))
    );
    // While the deleted key is referenced its hive slot is not reused.
    let slots = r.hives.len();
    save_and_load(&mut r, "OTHER");
    assert_eq!(r.hives.len(), slots + 1);
    r.release(beep);
    r.release(root);
    let b = r
        .lookup(ROOT_KCB, "MACHINE\\OTHER\\Services\\Beep")
        .unwrap();
    r.release(b);
    // Now it is.
    save_and_load(&mut r, "THIRD");
    assert_eq!(r.hives.len(), slots + 1);
    let b = r
        .lookup(ROOT_KCB, "MACHINE\\THIRD\\Services\\Beep")
        .unwrap();
    assert_eq!(r.query_value(b, "Start").unwrap().1, 1u32.to_le_bytes());
    r.release(b);
}

#[test]
fn only_roots_of_loaded_hives_unload() {
    let mut r = registry();
    let machine = r.lookup(ROOT_KCB, "MACHINE").unwrap();
    let services = r
        .lookup(ROOT_KCB, "MACHINE\\SYSTEM\\ControlSet001\\Services")
        .unwrap();
    for k in [ROOT_KCB, machine, services] {
        assert_eq!(
            r.unmount(k, 1, true).err(),
            Some(Error::Status(STATUS_INVALID_PARAMETER))
        );
    }
    r.release(machine);
    r.release(services);
}

#[test]
fn restore_replaces_a_keys_subtree_with_a_hive_file() {
    let mut r = registry();
    let cs = r
        .lookup(ROOT_KCB, "MACHINE\\SYSTEM\\ControlSet001")
        .unwrap();
    let saved = r.save_key(cs, REG_LATEST_FORMAT).unwrap();
    r.release(cs);
    let source = Hive::from_bytes(&saved).unwrap();
    let (t0, _, _) = r
        .create_key(ROOT_KCB, "MACHINE\\SYSTEM\\Target", false)
        .unwrap();
    r.release(t0);
    let (t, _, _) = r
        .create_key(ROOT_KCB, "MACHINE\\SYSTEM\\Target\\OldSub", false)
        .unwrap();
    let target = r.lookup(ROOT_KCB, "MACHINE\\SYSTEM\\Target").unwrap();
    r.set_value(target, "Old", REG_DWORD, &[1, 0, 0, 0])
        .unwrap();
    r.notify(target, REG_NOTIFY_CHANGE_NAME, false, 5).unwrap();
    // OldSub is open.
    assert_eq!(
        r.restore_key(target, &source, false).err(),
        Some(Error::Status(STATUS_CANNOT_DELETE))
    );
    r.release(t);
    let fired = r.restore_key(target, &source, false).unwrap();
    assert_eq!(fired, [5]);
    assert_eq!(
        r.query_value(target, "Old").err(),
        Some(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))
    );
    assert_eq!(
        r.lookup(ROOT_KCB, "MACHINE\\SYSTEM\\Target\\OldSub").err(),
        Some(Error::Status(STATUS_OBJECT_NAME_NOT_FOUND))
    );
    let beep = r
        .lookup(ROOT_KCB, "MACHINE\\SYSTEM\\Target\\Services\\Beep")
        .unwrap();
    assert_eq!(r.query_value(beep, "Start").unwrap().1, 1u32.to_le_bytes());
    // Forced over an open key: its handle sees the key deleted.
    assert_eq!(
        r.restore_key(target, &source, false).err(),
        Some(Error::Status(STATUS_CANNOT_DELETE))
    );
    r.restore_key(target, &source, true).unwrap();
    assert_eq!(
        r.query_value(beep, "Start").err(),
        Some(Error::Status(STATUS_KEY_DELETED))
    );
    r.release(beep);
    let beep = r
        .lookup(ROOT_KCB, "MACHINE\\SYSTEM\\Target\\Services\\Beep")
        .unwrap();
    assert_eq!(r.query_value(beep, "Start").unwrap().1, 1u32.to_le_bytes());
    r.release(beep);
    r.release(target);
    // The hive stays consistent.
    let sys = r.lookup(ROOT_KCB, "MACHINE\\SYSTEM").unwrap();
    let bytes = r.hive_of(sys).unwrap().hive().to_bytes();
    assert!(check(&bytes).is_empty());
    r.release(sys);
}
