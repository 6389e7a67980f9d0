//! Boot tests of the configuration manager.

use crate::cm::*;
use crate::ktest::{check, Test, TestResult};
use crate::ob::handle::nt_close;
use crate::ob::object::Mode;
use nt::status::*;

const U: Mode = Mode::UserMode;

fn t_keys_and_values() -> TestResult {
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

static NOTIFY: crate::ke::wait::KEvent = crate::ke::wait::KEvent::new(true, false);

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
    crate::ke::wait::ke_reset_event(&NOTIFY);
    check(
        nt_notify_change_key(h, &NOTIFY, REG_NOTIFY_CHANGE_LAST_SET, true, U) == STATUS_PENDING,
        "NtNotifyChangeKey did not pend",
    )?;
    let s = crate::ke::wait::ke_wait_for_single_object(
        &NOTIFY,
        crate::ke::thread::WaitReason::Executive,
        false,
        false,
        Some(0),
    );
    check(s == STATUS_TIMEOUT, "notification fired before any change")?;
    crate::ke::sched::ke_delay_execution_thread(10_000);
    nt_set_value_key(sub, "v", REG_DWORD, &1u32.to_le_bytes(), U);
    let s = crate::ke::wait::ke_wait_for_single_object(
        &NOTIFY,
        crate::ke::thread::WaitReason::Executive,
        false,
        false,
        Some(10_000_000),
    );
    check(
        s == STATUS_SUCCESS,
        "a change below a watched tree did not signal",
    )?;
    nt_close(sub);
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

pub const TESTS: &[Test] = &[
    ("cm.keys_values_enumeration_delete", t_keys_and_values),
    ("cm.notify_change_key", t_notify),
    ("cm.hardware_description", t_hardware_key),
    ("cm.system_hive_flush_and_recovery", t_system_hive_flush),
    ("cm.key_security", t_key_security),
];

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
    let files = SYSTEM_HIVE
        .with(|s| s.as_ref().map(|s| (s.files.clone(), s.logged.clone())))
        .ok_or("the SYSTEM hive is not bound to files")?;
    // The primary alone has the change (the flush completed).
    let (hive, _) =
        regf::log::load_with_logs(&files.0.files[0], &[], &[]).map_err(|_| "primary unreadable")?;
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
    // A crash after the log write: the primary is stale, the log recovers it.
    let (mut mem, mut logged) = files;
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
