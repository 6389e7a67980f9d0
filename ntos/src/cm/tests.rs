//! Boot tests of the configuration manager.

use crate::cm::*;
use crate::ex::event::*;
use crate::ktest::{check, wait_until, Test, TestResult, MS};
use crate::ob::handle::nt_close;
use crate::ob::object::Mode;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use nt::status::*;

const U: Mode = Mode::UserMode;

/// Deletes `path` and every key below it (the hives are on the disk: a
/// previous boot's test run leaves its keys for the next one).
fn delete_tree(path: &str) {
    let Ok(h) = nt_open_key(path, KEY_ALL_ACCESS, Mode::KernelMode) else {
        return;
    };
    let names: alloc::vec::Vec<_> = (0..)
        .map_while(|i| nt_enumerate_key(h, i, Mode::KernelMode).ok())
        .collect();
    for n in names {
        delete_tree(&alloc::format!("{path}\\{n}"));
    }
    nt_delete_key(h, Mode::KernelMode);
    nt_close(h);
}

fn t_keys_and_values() -> TestResult {
    delete_tree("\\REGISTRY\\MACHINE\\SOFTWARE\\Ntrs");
    let (h, d) = nt_create_key("\\REGISTRY\\MACHINE\\SOFTWARE\\Ntrs", KEY_ALL_ACCESS, 0, U)
        .map_err(|_| "NtCreateKey")?;
    check(d == REG_CREATED_NEW_KEY, "disposition of a new key")?;
    let (h2, d2) = nt_create_key("\\Registry\\Machine\\Software\\NTRS", KEY_ALL_ACCESS, 0, U)
        .map_err(|_| "reopen")?;
    check(
        d2 == REG_OPENED_EXISTING_KEY,
        "disposition of an existing key (case-insensitive)",
    )?;
    nt_close(h2);
    check(
        nt_create_key(
            "\\REGISTRY\\MACHINE\\SOFTWARE\\Missing\\Child",
            KEY_ALL_ACCESS,
            0,
            U,
        )
        .err()
            == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "create under a missing parent",
    )?;
    check(
        nt_create_key(
            "\\REGISTRY\\MACHINE\\HARDWARE\\Stable",
            KEY_ALL_ACCESS,
            0,
            U,
        )
        .err()
            == Some(STATUS_CHILD_MUST_BE_VOLATILE),
        "stable key under a volatile one",
    )?;
    check(
        nt_set_value_key(h, "Name", REG_SZ, &[b'n', 0, b't', 0, 0, 0], U) == STATUS_SUCCESS,
        "set REG_SZ",
    )?;
    check(
        nt_set_value_key(h, "Count", REG_DWORD, &7u32.to_le_bytes(), U) == STATUS_SUCCESS,
        "set REG_DWORD",
    )?;
    check(
        nt_query_value_key(h, "count", U) == Ok((REG_DWORD, 7u32.to_le_bytes().to_vec())),
        "query value",
    )?;
    check(
        nt_query_value_key(h, "nope", U).err() == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "missing value",
    )?;
    for name in ["Zeta", "alpha", "Mid"] {
        let (k, _) = nt_create_key(
            &alloc::format!("\\REGISTRY\\MACHINE\\SOFTWARE\\Ntrs\\{name}"),
            KEY_ALL_ACCESS,
            0,
            U,
        )
        .map_err(|_| "subkey")?;
        nt_close(k);
    }
    let names: alloc::vec::Vec<_> = (0..3)
        .filter_map(|i| nt_enumerate_key(h, i, U).ok())
        .collect();
    check(
        names == ["alpha", "Mid", "Zeta"],
        "NtEnumerateKey is not in name order",
    )?;
    check(
        nt_enumerate_key(h, 3, U).err() == Some(STATUS_NO_MORE_ENTRIES),
        "enumeration end",
    )?;
    check(
        nt_enumerate_value_key(h, 1, U)
            .map(|v| v.name)
            .ok()
            .as_deref()
            == Some("Count"),
        "NtEnumerateValueKey",
    )?;
    let info = nt_query_key(h, U).map_err(|_| "NtQueryKey")?;
    check(
        info.subkeys == 3 && info.values == 2 && !info.volatile,
        "NtQueryKey counts",
    )?;
    // Opening by name goes through the object manager's parse procedure.
    let o = nt_open_key("\\registry\\machine\\software\\ntrs\\MID", KEY_READ, U)
        .map_err(|_| "NtOpenKey")?;
    check(
        nt_query_key(o, U).map(|i| i.name).ok().as_deref() == Some("Mid"),
        "opened the wrong key",
    )?;
    check(
        nt_set_value_key(o, "x", REG_DWORD, &[0; 4], U) == STATUS_ACCESS_DENIED,
        "KEY_READ handle could set a value",
    )?;
    check(
        nt_open_key("\\REGISTRY\\MACHINE\\SOFTWARE\\Ntrs\\Nope", KEY_READ, U).err()
            == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "open missing key",
    )?;
    // Delete rules.
    check(
        nt_delete_key(h, U) == STATUS_CANNOT_DELETE,
        "deleted a key with subkeys",
    )?;
    let mid = nt_open_key(
        "\\REGISTRY\\MACHINE\\SOFTWARE\\Ntrs\\Mid",
        KEY_ALL_ACCESS,
        U,
    )
    .map_err(|_| "open Mid")?;
    check(nt_delete_key(mid, U) == STATUS_SUCCESS, "NtDeleteKey")?;
    check(
        nt_query_key(o, U).err() == Some(STATUS_KEY_DELETED),
        "a handle to a deleted key still works",
    )?;
    check(
        nt_enumerate_key(h, 2, U).err() == Some(STATUS_NO_MORE_ENTRIES),
        "deleted key still enumerated",
    )?;
    check(
        nt_delete_value_key(h, "Name", U) == STATUS_SUCCESS,
        "NtDeleteValueKey",
    )?;
    check(nt_flush_key(h, U) == STATUS_SUCCESS, "NtFlushKey")?;
    for x in [o, mid, h] {
        nt_close(x);
    }
    Ok(())
}

fn new_event() -> Result<u64, &'static str> {
    nt_create_event(
        EVENT_ALL_ACCESS,
        None,
        0,
        EventType::NotificationEvent,
        false,
        U,
    )
    .map(|(h, _)| h)
    .map_err(|_| "NtCreateEvent")
}

fn signalled(event: u64) -> bool {
    nt_wait_for_single_object(event, false, Some(0), Mode::KernelMode) == STATUS_SUCCESS
}

fn t_notify() -> TestResult {
    let (h, _) = nt_create_key(
        "\\REGISTRY\\MACHINE\\SOFTWARE\\NtrsNotify",
        KEY_ALL_ACCESS,
        0,
        U,
    )
    .map_err(|_| "create")?;
    let (sub, _) = nt_create_key(
        "\\REGISTRY\\MACHINE\\SOFTWARE\\NtrsNotify\\Sub",
        KEY_ALL_ACCESS,
        0,
        U,
    )
    .map_err(|_| "sub")?;
    let ev = new_event()?;
    check(
        nt_notify_change_key(h, ev, REG_NOTIFY_CHANGE_LAST_SET, true, U) == STATUS_PENDING,
        "NtNotifyChangeKey did not pend",
    )?;
    check(!signalled(ev), "notification fired before any change")?;
    nt_set_value_key(sub, "v", REG_DWORD, &1u32.to_le_bytes(), U);
    let s = nt_wait_for_single_object(ev, false, Some(10_000_000), Mode::KernelMode);
    check(
        s == STATUS_SUCCESS,
        "a change below a watched tree did not signal",
    )?;
    // A notification fires once.
    nt_reset_event(ev, Mode::KernelMode).map_err(|_| "reset")?;
    nt_set_value_key(sub, "v", REG_DWORD, &2u32.to_le_bytes(), U);
    check(!signalled(ev), "a fired notification fired again")?;
    for x in [ev, sub, h] {
        nt_close(x);
    }
    Ok(())
}

/// A notification keeps its event object referenced (F14): the event's
/// handle is closed and a new event created (on the old code it got the
/// closed event's dispatcher slot); the change must not signal the new one.
fn t_notify_keeps_its_event() -> TestResult {
    let (h, _) = nt_create_key(
        "\\REGISTRY\\MACHINE\\SOFTWARE\\NtrsNotifyRef",
        KEY_ALL_ACCESS,
        0,
        U,
    )
    .map_err(|_| "create")?;
    let first = new_event()?;
    check(
        nt_notify_change_key(h, first, REG_NOTIFY_CHANGE_LAST_SET, false, U) == STATUS_PENDING,
        "NtNotifyChangeKey did not pend",
    )?;
    nt_close(first);
    let second = new_event()?;
    let watch = new_event()?;
    check(
        nt_notify_change_key(h, watch, REG_NOTIFY_CHANGE_LAST_SET, false, U) == STATUS_PENDING,
        "second NtNotifyChangeKey did not pend",
    )?;
    check(
        nt_set_value_key(h, "v", REG_DWORD, &1u32.to_le_bytes(), U) == STATUS_SUCCESS,
        "set value",
    )?;
    check(signalled(watch), "the live notification did not fire")?;
    check(
        !signalled(second),
        "the change signalled an event that was never registered",
    )?;
    // Closing the key cancels what is still pending and drops its references.
    check(
        nt_notify_change_key(h, second, REG_NOTIFY_CHANGE_NAME, false, U) == STATUS_PENDING,
        "third NtNotifyChangeKey did not pend",
    )?;
    nt_close(h);
    check(
        !signalled(second),
        "closing the key signalled its notification",
    )?;
    for x in [second, watch] {
        nt_close(x);
    }
    Ok(())
}

static WAITER_DONE_AT: AtomicU64 = AtomicU64::new(0);
static WAITER_STATUS: AtomicU32 = AtomicU32::new(u32::MAX);

/// Registry services run at PASSIVE_LEVEL under a push lock (item 7): a
/// holder of the registry lock can sleep, another thread's service waits for
/// it (a blocking wait, not a spin at DISPATCH_LEVEL), and the services'
/// lock holders ran at PASSIVE_LEVEL.
fn t_registry_work_runs_at_passive() -> TestResult {
    let (h, _) = nt_create_key(
        "\\REGISTRY\\MACHINE\\SOFTWARE\\NtrsPassive",
        KEY_ALL_ACCESS,
        0,
        U,
    )
    .map_err(|_| "create")?;
    check(
        nt_set_value_key(h, "v", REG_DWORD, &3u32.to_le_bytes(), U) == STATUS_SUCCESS,
        "set value",
    )?;
    check(
        lock::LAST_HOLDER_IRQL.load(Ordering::Relaxed) == crate::ke::PASSIVE_LEVEL,
        "NtSetValueKey held the registry lock above PASSIVE_LEVEL",
    )?;
    WAITER_DONE_AT.store(0, Ordering::SeqCst);
    WAITER_STATUS.store(u32::MAX, Ordering::SeqCst);
    let t = crate::ke::thread::create_system_thread(
        "cm-test",
        8,
        u64::MAX,
        |h| {
            let r = nt_query_value_key(h as u64, "v", U);
            WAITER_DONE_AT.store(
                crate::ke::clock::ke_query_interrupt_time(),
                Ordering::SeqCst,
            );
            WAITER_STATUS.store(
                if r == Ok((REG_DWORD, 3u32.to_le_bytes().to_vec())) {
                    0
                } else {
                    1
                },
                Ordering::SeqCst,
            );
        },
        h as usize,
    );
    // The waiter is started once this thread holds the lock (started
    // before, it could finish on another processor before the lock is
    // taken) and this thread sleeps with the lock held. The release time is
    // read under the lock: read after it, a preemption could let the waiter
    // finish first and look as if it ran inside.
    let start = crate::ke::clock::ke_query_interrupt_time();
    let t = t.map_err(|_| "cannot create the waiter thread")?;
    let mut started = Err(());
    let (irql, released) = cm_hold_registry_for_test(30, || {
        started = crate::ke::sched::ready_thread(t).map_err(|_| ())
    });
    started.map_err(|_| "cannot start the waiter thread")?;
    check(
        irql == crate::ke::PASSIVE_LEVEL,
        "the registry lock is held above PASSIVE_LEVEL",
    )?;
    check(released - start >= 30 * MS, "the lock holder did not sleep")?;
    check(
        wait_until(2000, || WAITER_STATUS.load(Ordering::SeqCst) != u32::MAX),
        "the waiting service never finished",
    )?;
    check(
        WAITER_STATUS.load(Ordering::SeqCst) == 0,
        "the waiting service failed",
    )?;
    check(
        WAITER_DONE_AT.load(Ordering::SeqCst) >= released,
        "a service ran while another thread held the registry lock",
    )?;
    check(
        lock::LAST_HOLDER_IRQL.load(Ordering::Relaxed) == crate::ke::PASSIVE_LEVEL,
        "NtQueryValueKey held the registry lock above PASSIVE_LEVEL",
    )?;
    nt_close(h);
    Ok(())
}

/// A hive that cannot grow fails the service with its status and nothing
/// changes (no key half-created, the next create works once it may grow).
fn t_failed_hive_write_fails_the_service() -> TestResult {
    const BASE: &str = "\\REGISTRY\\MACHINE\\SOFTWARE\\NtrsFull";
    let (h, _) = nt_create_key(BASE, KEY_ALL_ACCESS, 0, U).map_err(|_| "create")?;
    let len = cm_hive_stable_len(BASE).ok_or("hive size")?;
    check(
        cm_set_hive_size_limit(BASE, len as u32) == STATUS_SUCCESS,
        "set the hive size limit",
    )?;
    let mut failed = None;
    for i in 0..5000 {
        let path = alloc::format!("{BASE}\\Key{i:04}");
        match nt_create_key(&path, KEY_ALL_ACCESS, 0, U) {
            Ok((k, _)) => {
                let s = nt_set_value_key(k, "data", REG_BINARY, &[0x5A; 2000], U);
                nt_close(k);
                if s != STATUS_SUCCESS {
                    failed = Some((s, path, true));
                    break;
                }
            }
            Err(e) => {
                failed = Some((e, path, false));
                break;
            }
        }
    }
    let (s, path, key_created) = failed.ok_or("the hive never ran out of room")?;
    check(
        s == STATUS_INSUFFICIENT_RESOURCES,
        "the failure is not STATUS_INSUFFICIENT_RESOURCES",
    )?;
    match nt_open_key(&path, KEY_READ, U) {
        Ok(k) => {
            check(key_created, "a key whose creation failed exists")?;
            let q = nt_query_value_key(k, "data", U);
            nt_close(k);
            check(
                q.err() == Some(STATUS_OBJECT_NAME_NOT_FOUND),
                "a value whose write failed exists",
            )?;
        }
        Err(e) => check(
            !key_created && e == STATUS_OBJECT_NAME_NOT_FOUND,
            "a created key cannot be opened",
        )?,
    }
    check(
        cm_set_hive_size_limit(BASE, u32::MAX) == STATUS_SUCCESS,
        "lift the limit",
    )?;
    let (k, _) = nt_create_key(&alloc::format!("{BASE}\\AfterLimit"), KEY_ALL_ACCESS, 0, U)
        .map_err(|_| "create after the limit was lifted")?;
    nt_close(k);
    nt_close(h);
    Ok(())
}

fn t_hardware_key() -> TestResult {
    let h = nt_open_key(
        "\\REGISTRY\\MACHINE\\HARDWARE\\DESCRIPTION\\System\\CentralProcessor\\0",
        KEY_READ,
        U,
    )
    .map_err(|_| "open CentralProcessor\\0")?;
    let (t, d) =
        nt_query_value_key(h, "ProcessorNameString", U).map_err(|_| "ProcessorNameString")?;
    nt_close(h);
    check(t == REG_SZ && d.len() > 2, "processor name missing")
}

// ---- NtSaveKey / NtLoadKey / NtUnloadKey ----

const K: Mode = Mode::KernelMode;
const SAVE_SRC: &str = "\\REGISTRY\\MACHINE\\SOFTWARE\\NtrsSaveSource";
const SAVE_FILE: &str = "\\??\\C:\\NtrsSaved.hiv";
const LOADED: &str = "\\REGISTRY\\MACHINE\\NtrsLoaded";

/// A file for a saved hive, created or truncated (a kernel handle).
fn hive_file(path: &str) -> Result<u64, &'static str> {
    let h = crate::cm::hivefile::open_hive_file(path, true).map_err(|_| "create the hive file")?;
    crate::cm::hivefile::set_end_of_file(h, 0).map_err(|_| "truncate the hive file")?;
    Ok(h)
}

/// A token like `base` with `luid` enabled (`NtAdjustPrivilegesToken`).
fn with_privilege(base: &security::token::Token, luid: u32) -> security::token::Token {
    let mut t = base.clone();
    t.adjust_privileges(Some(&[security::token::Privilege {
        luid,
        attributes: security::token::SE_PRIVILEGE_ENABLED,
    }]));
    t
}

/// `SOFTWARE\NtrsSaveSource` saved with `NtSaveKeyEx` to a file: the file is
/// a hive holding the key's stable subtree (volatile keys left out).
fn save_source() -> Result<(), &'static str> {
    delete_tree(SAVE_SRC);
    let (h, _) = nt_create_key(SAVE_SRC, KEY_ALL_ACCESS, 0, U).map_err(|_| "create")?;
    let (sub, _) = nt_create_key(&alloc::format!("{SAVE_SRC}\\Sub"), KEY_ALL_ACCESS, 0, U)
        .map_err(|_| "create Sub")?;
    check(
        nt_set_value_key(sub, "Answer", REG_DWORD, &42u32.to_le_bytes(), U) == STATUS_SUCCESS,
        "set Answer",
    )?;
    let big = alloc::vec![0x5Au8; 20_000];
    check(
        nt_set_value_key(sub, "Big", regf::REG_BINARY, &big, U) == STATUS_SUCCESS,
        "set Big",
    )?;
    let (v, _) = nt_create_key(
        &alloc::format!("{SAVE_SRC}\\Vol"),
        KEY_ALL_ACCESS,
        REG_OPTION_VOLATILE,
        U,
    )
    .map_err(|_| "create Vol")?;
    nt_close(v);
    nt_close(sub);
    let f = hive_file(SAVE_FILE)?;
    let s = nt_save_key_ex(h, f, REG_LATEST_FORMAT, K);
    nt_close(f);
    nt_close(h);
    check(s == STATUS_SUCCESS, "NtSaveKeyEx failed")
}

fn t_save_load_unload() -> TestResult {
    save_source()?;
    check(
        nt_load_key(LOADED, SAVE_FILE, K) == STATUS_SUCCESS,
        "NtLoadKey of the saved file failed",
    )?;
    let want = alloc::format!(
        "{}\\NtrsSaved.hiv",
        crate::storage::symbolic_link_target("\\??\\C:").map_err(|_| "no C:")?
    );
    check(
        hivelist_value(LOADED).is_some_and(|v| v.eq_ignore_ascii_case(&want)),
        "the loaded hive is not in the hive list with its device path",
    )?;
    let sub_path = alloc::format!("{LOADED}\\Sub");
    let sub = nt_open_key(&sub_path, KEY_ALL_ACCESS, U).map_err(|_| "open the loaded Sub")?;
    let (t, d) = nt_query_value_key(sub, "Answer", U).map_err(|_| "query Answer")?;
    check(t == REG_DWORD && d == 42u32.to_le_bytes(), "Answer differs")?;
    let (_, big) = nt_query_value_key(sub, "Big", U).map_err(|_| "query Big")?;
    check(big == alloc::vec![0x5Au8; 20_000], "Big differs")?;
    check(
        nt_open_key(&alloc::format!("{LOADED}\\Vol"), KEY_READ, U).err()
            == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "the volatile key was saved",
    )?;
    // A change to the loaded hive is flushed to its file.
    check(
        nt_set_value_key(sub, "Changed", REG_DWORD, &7u32.to_le_bytes(), U) == STATUS_SUCCESS,
        "set Changed",
    )?;
    check(nt_flush_key(sub, U) == STATUS_SUCCESS, "NtFlushKey")?;
    let files = hive_file_images(LOADED).ok_or("the loaded hive has no files")?;
    let (hive, _) =
        regf::log::load_with_logs(&files[0], &[], &[]).map_err(|_| "primary unreadable")?;
    let k = hive.open_key("Sub").map_err(|_| "Sub not in the file")?;
    check(
        hive.query_value(k, "Changed").map(|v| v.data) == Ok(7u32.to_le_bytes().to_vec()),
        "the flushed value is not in the primary file",
    )?;
    // Open keys keep it loaded; then it unloads, and a change made since the
    // last flush reaches the file.
    check(
        nt_set_value_key(sub, "Late", REG_DWORD, &8u32.to_le_bytes(), U) == STATUS_SUCCESS,
        "set Late",
    )?;
    check(
        nt_unload_key(LOADED, K) == STATUS_CANNOT_DELETE,
        "NtUnloadKey with a key open is not STATUS_CANNOT_DELETE",
    )?;
    nt_close(sub);
    check(nt_unload_key(LOADED, K) == STATUS_SUCCESS, "NtUnloadKey")?;
    check(
        nt_open_key(LOADED, KEY_READ, U).err() == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "the unloaded hive is still there",
    )?;
    check(
        hive_file_images(LOADED).is_none() && hivelist_value(LOADED).is_none(),
        "the unloaded hive is still in the hive list",
    )?;
    // Loaded again (at \REGISTRY\USER this time): the late change is there.
    let user = "\\REGISTRY\\USER\\NtrsLoaded";
    let root = nt_load_key_ex(user, SAVE_FILE, loadkey::REG_LOAD_HIVE_OPEN_HANDLE, K)
        .map_err(|_| "NtLoadKeyEx again")?
        .ok_or("no root handle")?;
    let sub = nt_open_key(&alloc::format!("{user}\\Sub"), KEY_READ, U).map_err(|_| "reopen")?;
    let (_, d) = nt_query_value_key(sub, "Late", U).map_err(|_| "Late was not flushed")?;
    check(d == 8u32.to_le_bytes(), "Late differs")?;
    check(
        nt_enumerate_key(root, 0, U).as_deref() == Ok("Sub"),
        "the root handle does not enumerate Sub",
    )?;
    // Forced unload with handles open: they see STATUS_KEY_DELETED.
    check(
        nt_unload_key2(user, loadkey::REG_FORCE_UNLOAD, K) == STATUS_SUCCESS,
        "forced NtUnloadKey2",
    )?;
    check(
        nt_query_value_key(sub, "Late", U).err() == Some(STATUS_KEY_DELETED),
        "a handle into a force-unloaded hive still reads it",
    )?;
    nt_close(sub);
    nt_close(root);
    Ok(())
}

/// Every refusal of the three services, with NT's status.
fn t_save_load_unload_errors() -> TestResult {
    save_source()?;
    let key = nt_open_key(SAVE_SRC, KEY_READ, U).map_err(|_| "open source")?;
    let f = hive_file(SAVE_FILE)?;
    let system = security::token::Token::system();
    let backup = with_privilege(&system, security::token::privilege::BACKUP);
    let restore = with_privilege(&system, security::token::privilege::RESTORE);
    let cases_save = [
        (key, f, 0, K, &system, STATUS_INVALID_PARAMETER, "format 0"),
        (key, f, 3, K, &system, STATUS_INVALID_PARAMETER, "format 3"),
        (
            key,
            f,
            REG_NO_COMPRESSION,
            K,
            &system,
            STATUS_NOT_IMPLEMENTED,
            "REG_NO_COMPRESSION",
        ),
        (
            key,
            f,
            REG_LATEST_FORMAT,
            U,
            &system,
            STATUS_PRIVILEGE_NOT_HELD,
            "no SeBackupPrivilege",
        ),
        (
            0x7FF0,
            f,
            REG_LATEST_FORMAT,
            K,
            &system,
            STATUS_INVALID_HANDLE,
            "bad key handle",
        ),
        (
            f,
            f,
            REG_LATEST_FORMAT,
            K,
            &system,
            STATUS_OBJECT_TYPE_MISMATCH,
            "file as key",
        ),
        (
            key,
            key,
            REG_LATEST_FORMAT,
            K,
            &system,
            STATUS_OBJECT_TYPE_MISMATCH,
            "key as file",
        ),
        // With the privilege, user mode reaches the handles: the file's is a kernel handle.
        (
            key,
            f,
            REG_LATEST_FORMAT,
            U,
            &backup,
            STATUS_INVALID_HANDLE,
            "kernel file handle",
        ),
    ];
    for (k, file, format, mode, token, want, what) in cases_save {
        let got = loadkey::nt_save_key_ex_as(k, file, format, mode, token);
        if got != want {
            crate::dbg_println!("NtSaveKeyEx {what}: {got}, expected {want}");
            return Err("NtSaveKeyEx returned the wrong status");
        }
    }
    check(nt_save_key(key, f, K) == STATUS_SUCCESS, "NtSaveKey")?;
    nt_close(f);
    nt_close(key);
    // A file that is not a hive.
    let junk_path = "\\??\\C:\\NtrsJunk.hiv";
    let junk = hive_file(junk_path)?;
    crate::cm::hivefile::write_at(junk, 0, &[0x55; 8192]).map_err(|_| "write junk")?;
    nt_close(junk);
    let cases_load: [(
        &str,
        &str,
        u32,
        Mode,
        &security::token::Token,
        NtStatus,
        &str,
    ); 9] = [
        (
            LOADED,
            SAVE_FILE,
            0,
            U,
            &system,
            STATUS_PRIVILEGE_NOT_HELD,
            "no SeRestorePrivilege",
        ),
        (
            "\\REGISTRY\\MACHINE",
            SAVE_FILE,
            0,
            K,
            &system,
            STATUS_INVALID_PARAMETER,
            "MACHINE",
        ),
        (
            "\\REGISTRY\\MACHINE\\SOFTWARE\\X",
            SAVE_FILE,
            0,
            K,
            &system,
            STATUS_INVALID_PARAMETER,
            "below SOFTWARE",
        ),
        (
            "\\REGISTRY\\X\\Y",
            SAVE_FILE,
            0,
            K,
            &system,
            STATUS_INVALID_PARAMETER,
            "not MACHINE or USER",
        ),
        (
            "\\Device\\X",
            SAVE_FILE,
            0,
            K,
            &system,
            STATUS_OBJECT_PATH_SYNTAX_BAD,
            "not \\REGISTRY",
        ),
        (
            "\\REGISTRY\\MACHINE\\SOFTWARE",
            SAVE_FILE,
            0,
            K,
            &system,
            STATUS_OBJECT_NAME_COLLISION,
            "SOFTWARE",
        ),
        (
            LOADED,
            "\\??\\C:\\NtrsMissing.hiv",
            0,
            K,
            &system,
            STATUS_OBJECT_NAME_NOT_FOUND,
            "missing file",
        ),
        (
            LOADED,
            junk_path,
            0,
            K,
            &system,
            STATUS_REGISTRY_CORRUPT,
            "not a hive",
        ),
        (
            LOADED,
            SAVE_FILE,
            0x4,
            K,
            &restore,
            STATUS_NOT_IMPLEMENTED,
            "REG_NO_LAZY_FLUSH",
        ),
    ];
    for (target, file, flags, mode, token, want, what) in cases_load {
        let got = loadkey::nt_load_key_ex_as(target, file, flags, mode, token).err();
        if got != Some(want) {
            crate::dbg_println!("NtLoadKeyEx {what}: {got:?}, expected {want}");
            return Err("NtLoadKeyEx returned the wrong status");
        }
    }
    // User mode with the privilege loads; the same file twice is a sharing violation.
    check(
        loadkey::nt_load_key_ex_as(LOADED, SAVE_FILE, 0, U, &restore) == Ok(None),
        "NtLoadKey with SeRestorePrivilege",
    )?;
    check(
        nt_load_key2("\\REGISTRY\\USER\\NtrsTwice", SAVE_FILE, 0, K) == STATUS_SHARING_VIOLATION,
        "loading a loaded file again is not STATUS_SHARING_VIOLATION",
    )?;
    let cases_unload: [(&str, u32, Mode, &security::token::Token, NtStatus, &str); 7] = [
        (
            LOADED,
            0,
            U,
            &system,
            STATUS_PRIVILEGE_NOT_HELD,
            "no SeRestorePrivilege",
        ),
        (LOADED, 2, K, &system, STATUS_INVALID_PARAMETER, "flags 2"),
        (
            "\\REGISTRY\\MACHINE\\SYSTEM",
            0,
            K,
            &system,
            STATUS_ACCESS_DENIED,
            "SYSTEM",
        ),
        (
            "\\REGISTRY\\MACHINE\\HARDWARE",
            0,
            K,
            &system,
            STATUS_ACCESS_DENIED,
            "HARDWARE",
        ),
        (
            "\\REGISTRY\\MACHINE\\NtrsLoaded\\Sub",
            0,
            K,
            &system,
            STATUS_INVALID_PARAMETER,
            "not a root",
        ),
        (
            "\\REGISTRY\\MACHINE",
            0,
            K,
            &system,
            STATUS_INVALID_PARAMETER,
            "MACHINE",
        ),
        (
            "\\REGISTRY\\MACHINE\\NtrsNotLoaded",
            0,
            K,
            &system,
            STATUS_OBJECT_NAME_NOT_FOUND,
            "missing",
        ),
    ];
    for (target, flags, mode, token, want, what) in cases_unload {
        let got = loadkey::nt_unload_key2_as(target, flags, mode, token);
        if got != want {
            crate::dbg_println!("NtUnloadKey2 {what}: {got}, expected {want}");
            return Err("NtUnloadKey2 returned the wrong status");
        }
    }
    check(
        loadkey::nt_unload_key2_as(LOADED, 0, U, &restore) == STATUS_SUCCESS,
        "NtUnloadKey with SeRestorePrivilege",
    )
}

/// The value `mount` has in the hive list, if any.
fn hivelist_value(mount: &str) -> Option<alloc::string::String> {
    let h = nt_open_key(loadkey::HIVELIST, KEY_READ, K).ok()?;
    let v = nt_query_value_key(h, mount, K);
    nt_close(h);
    let (t, d) = v.ok()?;
    (t == REG_SZ).then(|| regf::from_utf16z(&d))
}

/// SAM, SECURITY and DEFAULT are loaded from `\Windows\System32\config` at
/// boot, listed with SYSTEM, SOFTWARE and HARDWARE in the hive list by
/// device path, flushed to their files, and SAM's keys are closed to users.
fn t_system_hives() -> TestResult {
    let volume = crate::storage::symbolic_link_target("\\??\\C:").map_err(|_| "no C:")?;
    for (mount, file) in [
        ("\\REGISTRY\\MACHINE\\SYSTEM", "SYSTEM"),
        ("\\REGISTRY\\MACHINE\\SOFTWARE", "SOFTWARE"),
        ("\\REGISTRY\\MACHINE\\SAM", "SAM"),
        ("\\REGISTRY\\MACHINE\\SECURITY", "SECURITY"),
        ("\\REGISTRY\\USER\\.DEFAULT", "DEFAULT"),
    ] {
        let want = alloc::format!("{volume}\\Windows\\System32\\Config\\{file}");
        let got = hivelist_value(mount);
        if got.as_deref().map(|g| g.eq_ignore_ascii_case(&want)) != Some(true) {
            crate::dbg_println!("hivelist {mount}: {got:?}, expected {want}");
            return Err("a hive is missing from the hive list or has the wrong file");
        }
        check(
            hive_file_images(mount).is_some(),
            "a system hive is not bound to its files",
        )?;
    }
    check(
        hivelist_value("\\REGISTRY\\MACHINE\\HARDWARE").as_deref() == Some(""),
        "HARDWARE is not in the hive list with an empty file name",
    )?;
    // Their contents, from the image builder's .reg sources.
    let h = nt_open_key(
        "\\REGISTRY\\USER\\.DEFAULT\\Keyboard Layout\\Preload",
        KEY_READ,
        U,
    )
    .map_err(|_| "open .DEFAULT\\Keyboard Layout\\Preload")?;
    let (_, d) = nt_query_value_key(h, "1", U).map_err(|_| "Preload 1")?;
    nt_close(h);
    check(regf::from_utf16z(&d) == "00000409", "Preload 1 differs")?;
    for path in [
        "\\REGISTRY\\MACHINE\\SAM\\SAM\\Domains\\Account\\Users",
        "\\REGISTRY\\MACHINE\\SECURITY\\Policy\\Secrets",
    ] {
        let user = security::sddl::parse_sid("S-1-5-21-1-2-3-1001").map_err(|_| "sid")?;
        let token = security::token::Token::standard_user(user);
        check(
            nt_open_key_as(path, KEY_READ, U, &token).err() == Some(STATUS_ACCESS_DENIED),
            "a standard user opened a SAM/SECURITY key",
        )?;
        let h = nt_open_key_as(path, KEY_ALL_ACCESS, U, &security::token::Token::system())
            .map_err(|_| "SYSTEM cannot open a SAM/SECURITY key")?;
        nt_close(h);
    }
    // A change to SECURITY reaches its primary file with NtFlushKey.
    let (h, _) = nt_create_key(
        "\\REGISTRY\\MACHINE\\SECURITY\\Policy\\NtrsFlushTest",
        KEY_ALL_ACCESS,
        0,
        K,
    )
    .map_err(|_| "create under SECURITY")?;
    check(
        nt_set_value_key(h, "v", REG_DWORD, &0x5EC0u32.to_le_bytes(), K) == STATUS_SUCCESS,
        "set under SECURITY",
    )?;
    check(nt_flush_key(h, K) == STATUS_SUCCESS, "NtFlushKey SECURITY")?;
    nt_delete_key(h, K);
    nt_close(h);
    let files = hive_file_images("\\REGISTRY\\MACHINE\\SECURITY").ok_or("SECURITY files")?;
    let (hive, _) =
        regf::log::load_with_logs(&files[0], &[], &[]).map_err(|_| "SECURITY primary")?;
    let k = hive
        .open_key("Policy\\NtrsFlushTest")
        .map_err(|_| "the key did not reach the SECURITY file")?;
    check(
        hive.query_value(k, "v").map(|v| v.data) == Ok(0x5EC0u32.to_le_bytes().to_vec()),
        "the value did not reach the SECURITY file",
    )
}

/// The hive file of the two-boot test of `NtSaveKey`/`NtLoadKey` (the
/// volume's root, `C:\NtrsPersist.hiv`) and where it is loaded.
const PERSIST_HIVE_FILE: &str = "\\??\\C:\\NtrsPersist.hiv";
const PERSIST_HIVE: &str = "\\REGISTRY\\MACHINE\\NtrsPersistHive";

/// A hive made with `NtSaveKey` survives a reboot: with `/CMEXPECT=<token>`
/// the file the previous boot left is loaded and its root's `Token` must
/// hold the token (the harness's second boot); otherwise the file is made
/// anew by saving an empty key. Then `Token` is set to `/CMSET=`'s token
/// and the hive unloaded, which flushes it; the harness reads it with hivex.
fn t_persist_loaded_hive() -> TestResult {
    let opt = |name: &str| {
        crate::rtl::load_options()
            .split_whitespace()
            .find_map(|o| o.strip_prefix(name))
    };
    let expect = opt("/CMEXPECT=");
    if expect.is_none() {
        let src = "\\REGISTRY\\MACHINE\\SOFTWARE\\NtrsPersistHiveSource";
        delete_tree(src);
        let (h, _) = nt_create_key(src, KEY_ALL_ACCESS, 0, K).map_err(|_| "create source")?;
        let f = hive_file(PERSIST_HIVE_FILE)?;
        let s = nt_save_key(h, f, K);
        nt_close(f);
        nt_delete_key(h, K);
        nt_close(h);
        check(s == STATUS_SUCCESS, "NtSaveKey")?;
    }
    check(
        nt_load_key(PERSIST_HIVE, PERSIST_HIVE_FILE, K) == STATUS_SUCCESS,
        "NtLoadKey of C:\\NtrsPersist.hiv",
    )?;
    let h = nt_open_key(PERSIST_HIVE, KEY_ALL_ACCESS, K).map_err(|_| "open the loaded hive")?;
    if let Some(want) = expect {
        let got = nt_query_value_key(h, "Token", K).ok();
        if !got.is_some_and(|(t, d)| t == REG_SZ && regf::from_utf16z(&d) == want) {
            nt_close(h);
            nt_unload_key(PERSIST_HIVE, K);
            return Err("the token the previous boot set is not in the loaded hive");
        }
    }
    let token = match opt("/CMSET=") {
        Some(t) => alloc::string::String::from(t),
        None => alloc::format!("time-{}", crate::ke::clock::ke_query_system_time()),
    };
    let set = nt_set_value_key(h, "Token", REG_SZ, &regf::utf16z(&token), K);
    nt_close(h);
    check(set == STATUS_SUCCESS, "set Token")?;
    check(
        nt_unload_key(PERSIST_HIVE, K) == STATUS_SUCCESS,
        "NtUnloadKey",
    )
}

/// `NtRestoreKey`: a key's subtree replaced by a saved hive's, refused while
/// a key below is open unless forced, and every refusal's status.
fn t_restore_key() -> TestResult {
    save_source()?;
    let target = "\\REGISTRY\\MACHINE\\SOFTWARE\\NtrsRestoreTarget";
    delete_tree(target);
    let (h, _) = nt_create_key(target, KEY_ALL_ACCESS, 0, U).map_err(|_| "create target")?;
    check(
        nt_set_value_key(h, "Old", REG_DWORD, &1u32.to_le_bytes(), U) == STATUS_SUCCESS,
        "set Old",
    )?;
    let (old, _) = nt_create_key(&alloc::format!("{target}\\OldSub"), KEY_ALL_ACCESS, 0, U)
        .map_err(|_| "create OldSub")?;
    let f = crate::cm::hivefile::open_hive_file(SAVE_FILE, false).map_err(|_| "open file")?;
    let system = security::token::Token::system();
    let restore = with_privilege(&system, security::token::privilege::RESTORE);
    let cases = [
        (
            h,
            f,
            0,
            U,
            &system,
            STATUS_PRIVILEGE_NOT_HELD,
            "no SeRestorePrivilege",
        ),
        (
            h,
            f,
            1,
            K,
            &system,
            STATUS_NOT_IMPLEMENTED,
            "REG_WHOLE_HIVE_VOLATILE",
        ),
        (
            h,
            f,
            0x100,
            K,
            &system,
            STATUS_INVALID_PARAMETER,
            "flags 0x100",
        ),
        (
            0x7FF0,
            f,
            0,
            K,
            &system,
            STATUS_INVALID_HANDLE,
            "bad key handle",
        ),
        (
            h,
            h,
            0,
            K,
            &system,
            STATUS_OBJECT_TYPE_MISMATCH,
            "key as file",
        ),
        (
            h,
            f,
            0,
            U,
            &restore,
            STATUS_INVALID_HANDLE,
            "kernel file handle",
        ),
        (h, f, 0, K, &system, STATUS_CANNOT_DELETE, "OldSub open"),
    ];
    for (k, file, flags, mode, token, want, what) in cases {
        let got = loadkey::nt_restore_key_as(k, file, flags, mode, token);
        if got != want {
            crate::dbg_println!("NtRestoreKey {what}: {got}, expected {want}");
            nt_close(f);
            return Err("NtRestoreKey returned the wrong status");
        }
    }
    nt_close(old);
    let s = nt_restore_key(h, f, 0, K);
    nt_close(f);
    check(s == STATUS_SUCCESS, "NtRestoreKey")?;
    check(
        nt_query_value_key(h, "Old", U).err() == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "the old value survived the restore",
    )?;
    check(
        nt_open_key(&alloc::format!("{target}\\OldSub"), KEY_READ, U).err()
            == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "the old subkey survived the restore",
    )?;
    let sub = nt_open_key(&alloc::format!("{target}\\Sub"), KEY_READ, U)
        .map_err(|_| "the restored Sub is missing")?;
    let (_, d) = nt_query_value_key(sub, "Answer", U).map_err(|_| "restored Answer")?;
    check(d == 42u32.to_le_bytes(), "restored Answer differs")?;
    // Forced over the open Sub: its handle sees the key deleted.
    let f = crate::cm::hivefile::open_hive_file(SAVE_FILE, false).map_err(|_| "reopen file")?;
    let forced = nt_restore_key(h, f, REG_FORCE_RESTORE_FLAG, K);
    nt_close(f);
    check(forced == STATUS_SUCCESS, "forced NtRestoreKey")?;
    check(
        nt_query_value_key(sub, "Answer", U).err() == Some(STATUS_KEY_DELETED),
        "a handle below a forced restore still reads its key",
    )?;
    nt_close(sub);
    // Not a hive.
    let junk = crate::cm::hivefile::open_hive_file("\\??\\C:\\NtrsJunk.hiv", true)
        .map_err(|_| "open junk")?;
    crate::cm::hivefile::write_at(junk, 0, &[0x55; 8192]).map_err(|_| "write junk")?;
    let s = nt_restore_key(h, junk, 0, K);
    nt_close(junk);
    nt_close(h);
    check(
        s == STATUS_REGISTRY_CORRUPT,
        "a junk file is not STATUS_REGISTRY_CORRUPT",
    )?;
    delete_tree(target);
    Ok(())
}

const REG_FORCE_RESTORE_FLAG: u32 = loadkey::REG_FORCE_RESTORE;

pub const TESTS: &[Test] = &[
    ("cm.keys_values_enumeration_delete", t_keys_and_values),
    ("cm.notify_change_key", t_notify),
    (
        "cm.notify_keeps_its_event_referenced",
        t_notify_keeps_its_event,
    ),
    (
        "cm.registry_work_runs_at_passive",
        t_registry_work_runs_at_passive,
    ),
    (
        "cm.failed_hive_write_fails_the_service",
        t_failed_hive_write_fails_the_service,
    ),
    ("cm.software_hive_flush", t_software_hive_flush),
    ("cm.lazy_flush_writes_the_files", t_lazy_flush),
    ("cm.hardware_description", t_hardware_key),
    ("cm.system_hive_flush_and_recovery", t_system_hive_flush),
    ("cm.key_security", t_key_security),
    ("cm.persist.value_reaches_the_disk", t_persist),
    ("cm.save_load_unload_key", t_save_load_unload),
    ("cm.save_load_unload_errors", t_save_load_unload_errors),
    ("cm.system_hives_and_hivelist", t_system_hives),
    ("cm.restore_key", t_restore_key),
    ("cm.persist.saved_and_loaded_hive", t_persist_loaded_hive),
];

/// The value the two-boot harness test (`xtask`, `hive-persistence`) sets
/// and reads back: `SYSTEM\NtrsPersist` `Token`.
const PERSIST_KEY: &str = "\\REGISTRY\\MACHINE\\SYSTEM\\NtrsPersist";

/// A SYSTEM change reaches the primary file on the system volume: the
/// value is set, `NtFlushKey` writes it, and the primary read back from
/// the disk through the hive's file handle holds it. With
/// `/CMEXPECT=<token>` the value must first hold the token a previous boot
/// set (the harness's second boot); `/CMSET=<token>` names the value to set
/// (otherwise one made from the system time).
fn t_persist() -> TestResult {
    let opt = |name: &str| {
        crate::rtl::load_options()
            .split_whitespace()
            .find_map(|o| o.strip_prefix(name))
    };
    let (h, _) =
        nt_create_key(PERSIST_KEY, KEY_ALL_ACCESS, 0, U).map_err(|_| "create NtrsPersist")?;
    if let Some(want) = opt("/CMEXPECT=") {
        let got = nt_query_value_key(h, "Token", U).ok();
        let same = got
            .as_ref()
            .is_some_and(|(t, d)| *t == REG_SZ && regf::from_utf16z(d) == want);
        if !same {
            nt_close(h);
            return Err("the token the previous boot set is not in the SYSTEM hive");
        }
    }
    let token = match opt("/CMSET=") {
        Some(t) => alloc::string::String::from(t),
        None => alloc::format!("time-{}", crate::ke::clock::ke_query_system_time()),
    };
    let set = nt_set_value_key(h, "Token", REG_SZ, &regf::utf16z(&token), U);
    let flushed = nt_flush_key(h, U);
    nt_close(h);
    check(set == STATUS_SUCCESS, "set Token")?;
    check(flushed == STATUS_SUCCESS, "NtFlushKey")?;
    let files = hive_file_images("\\REGISTRY\\MACHINE\\SYSTEM")
        .ok_or("the SYSTEM hive is not bound to its files on the volume")?;
    let (hive, _) = regf::log::load_with_logs(&files[0], &[], &[])
        .map_err(|_| "the primary read from the disk is not a consistent hive")?;
    let v = hive
        .open_key("NtrsPersist")
        .and_then(|k| hive.query_value(k, "Token"))
        .map_err(|_| "Token is not in the primary on the disk")?;
    check(
        regf::from_utf16z(&v.data) == token,
        "the primary on the disk holds another Token",
    )
}

/// Changes to SYSTEM keys reach the SYSTEM hive and its files: after
/// `NtFlushKey` the primary holds them; a flush interrupted after the log
/// write is recovered from the log.
fn t_system_hive_flush() -> TestResult {
    let h = nt_open_key(
        "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Control",
        KEY_ALL_ACCESS,
        U,
    )
    .map_err(|_| "open CurrentControlSet\\Control")?;
    check(
        nt_set_value_key(h, "NtrsFlushTest", REG_DWORD, &0x1234u32.to_le_bytes(), U)
            == STATUS_SUCCESS,
        "set value",
    )?;
    let (k, _) = nt_create_key(
        "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Control\\NtrsNewKey",
        KEY_ALL_ACCESS,
        0,
        U,
    )
    .map_err(|_| "create key")?;
    nt_close(k);
    check(nt_flush_key(h, U) == STATUS_SUCCESS, "NtFlushKey")?;
    let files = hive_file_images("\\REGISTRY\\MACHINE\\SYSTEM")
        .ok_or("the SYSTEM hive is not bound to files")?;
    // The primary alone has the change (the flush completed).
    let (hive, _) =
        regf::log::load_with_logs(&files[0], &[], &[]).map_err(|_| "primary unreadable")?;
    let key = hive
        .open_key("ControlSet001\\Control")
        .map_err(|_| "ControlSet001\\Control missing")?;
    let v = hive
        .query_value(key, "NtrsFlushTest")
        .map_err(|_| "value not flushed")?;
    check(v.data == 0x1234u32.to_le_bytes(), "flushed value differs")?;
    check(
        hive.open_key("ControlSet001\\Control\\NtrsNewKey").is_ok(),
        "a key created through CurrentControlSet did not reach ControlSet001 in the hive",
    )?;
    check(
        hive.open_key("CurrentControlSet").is_err(),
        "the volatile CurrentControlSet link reached the file",
    )?;
    // A crash after the log write: the primary is stale, the log recovers it.
    let mut mem = regf::log::MemFiles {
        files: files.clone(),
        ..Default::default()
    };
    let (mut logged, _) = regf::log::LoggedHive::open(&mem).map_err(|_| "reopen")?;
    let kk = logged
        .hive
        .open_key("ControlSet001\\Control")
        .map_err(|_| "key")?;
    logged
        .hive
        .set_value(kk, "NtrsCrash", REG_DWORD, &7u32.to_le_bytes())
        .map_err(|_| "set in copy")?;
    mem.writes = 0;
    mem.fail_after = Some(2);
    check(
        logged.flush(&mut mem).is_err(),
        "the simulated crash did not interrupt the flush",
    )?;
    let (rec, _) = regf::log::load_with_logs(&mem.files[0], &mem.files[1], &mem.files[2])
        .map_err(|_| "recovery failed")?;
    let rk = rec
        .open_key("ControlSet001\\Control")
        .map_err(|_| "key after recovery")?;
    let old = rec.query_value(rk, "NtrsFlushTest").is_ok();
    check(old, "recovery lost the previously flushed state")?;
    nt_close(h);
    Ok(())
}

/// Key security: a key whose DACL denies a user refuses that user's open and
/// grants SYSTEM's.
fn t_key_security() -> TestResult {
    let (h, _) = nt_create_key(
        "\\REGISTRY\\MACHINE\\SOFTWARE\\NtrsSecured",
        KEY_ALL_ACCESS,
        0,
        U,
    )
    .map_err(|_| "create")?;
    nt_close(h);
    let sd = security::sddl::parse("O:SYG:SYD:(D;;GA;;;S-1-5-21-1-2-3-1001)(A;;GA;;;WD)")
        .map_err(|_| "sddl")?;
    check(
        set_key_security("\\REGISTRY\\MACHINE\\SOFTWARE\\NtrsSecured", &sd) == STATUS_SUCCESS,
        "set key security",
    )?;
    let user = security::sddl::parse_sid("S-1-5-21-1-2-3-1001").map_err(|_| "sid")?;
    let user_token = security::token::Token::standard_user(user);
    check(
        nt_open_key_as(
            "\\REGISTRY\\MACHINE\\SOFTWARE\\NtrsSecured",
            KEY_READ,
            U,
            &user_token,
        )
        .err()
            == Some(STATUS_ACCESS_DENIED),
        "a denied user opened the key",
    )?;
    let system = security::token::Token::system();
    let h = nt_open_key_as(
        "\\REGISTRY\\MACHINE\\SOFTWARE\\NtrsSecured",
        KEY_READ,
        U,
        &system,
    )
    .map_err(|_| "SYSTEM was refused")?;
    nt_close(h);
    // Keys of the SYSTEM hive carry the hive's descriptors and open for SYSTEM.
    let h = nt_open_key_as(
        "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services",
        KEY_READ,
        U,
        &system,
    )
    .map_err(|_| "SYSTEM could not open Services")?;
    nt_close(h);
    Ok(())
}

/// SOFTWARE is flushed like SYSTEM: after `NtFlushKey` its primary file holds
/// the change (until the I/O manager exists, the files are in memory).
fn t_software_hive_flush() -> TestResult {
    let (h, _) = nt_create_key(
        "\\REGISTRY\\MACHINE\\SOFTWARE\\NtrsSoftwareFlush",
        KEY_ALL_ACCESS,
        0,
        U,
    )
    .map_err(|_| "create")?;
    check(
        nt_set_value_key(h, "v", REG_DWORD, &0xBEEFu32.to_le_bytes(), U) == STATUS_SUCCESS,
        "set value",
    )?;
    check(nt_flush_key(h, U) == STATUS_SUCCESS, "NtFlushKey")?;
    nt_close(h);
    let files = hive_file_images("\\REGISTRY\\MACHINE\\SOFTWARE")
        .ok_or("the SOFTWARE hive is not bound to files")?;
    let (hive, _) =
        regf::log::load_with_logs(&files[0], &[], &[]).map_err(|_| "primary unreadable")?;
    let k = hive
        .open_key("NtrsSoftwareFlush")
        .map_err(|_| "the key did not reach the SOFTWARE file")?;
    let v = hive.query_value(k, "v").map_err(|_| "value not flushed")?;
    check(v.data == 0xBEEFu32.to_le_bytes(), "flushed value differs")
}

/// `CmpLazyFlush`: a change reaches the hive's primary file within seconds
/// without `NtFlushKey` (the worker runs 5 s after the first unflushed change).
fn t_lazy_flush() -> TestResult {
    let (h, _) = nt_create_key(
        "\\REGISTRY\\MACHINE\\SOFTWARE\\NtrsLazyFlush",
        KEY_ALL_ACCESS,
        0,
        U,
    )
    .map_err(|_| "create")?;
    check(
        nt_set_value_key(h, "v", REG_DWORD, &0x1A2Bu32.to_le_bytes(), U) == STATUS_SUCCESS,
        "set value",
    )?;
    nt_close(h);
    let flushed = || {
        hive_file_images("\\REGISTRY\\MACHINE\\SOFTWARE")
            .and_then(|f| regf::log::load_with_logs(&f[0], &[], &[]).ok())
            .and_then(|(hive, _)| {
                let k = hive.open_key("NtrsLazyFlush").ok()?;
                hive.query_value(k, "v").ok()
            })
            .is_some_and(|v| v.data == 0x1A2Bu32.to_le_bytes())
    };
    check(
        wait_until(8000, flushed),
        "the change did not reach the SOFTWARE file within 8 s",
    )
}
