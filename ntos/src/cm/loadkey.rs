//! Saving keys to files and loading and unloading hives (*Windows Internals*,
//! Part 2, ch. 10, "Hive reorganization"/"Registry internals": `NtSaveKey`,
//! `NtLoadKey`, `NtUnloadKey`): `CmSaveKey` writes a fresh, compact hive of
//! a key's subtree to a file handle (regf's `Hive::save_subtree`); `CmLoadKey`
//! opens a hive file with its `.LOG1`/`.LOG2`, recovers it from the logs and
//! mounts it at `\REGISTRY\MACHINE\<name>` or `\REGISTRY\USER\<name>`;
//! `CmUnloadKey` flushes it and takes it away (regf's `Registry::unmount`).
//! A loaded hive is flushed like SYSTEM: `NtFlushKey`, the lazy flush and
//! `CmShutdownSystem`.
//!
//! Privileges as NT checks them for the previous mode: saving needs
//! `SeBackupPrivilege`, loading and unloading `SeRestorePrivilege`
//! (enabled); kernel-mode callers need none. Missing:
//! `STATUS_PRIVILEGE_NOT_HELD`.

use super::*;
use crate::cm::hivefile::DiskFiles;
use security::token::{privilege, Token};

pub use regf::{REG_LATEST_FORMAT, REG_NO_COMPRESSION, REG_STANDARD_FORMAT};

/// `REG_FORCE_UNLOAD` (`NtUnloadKey2`): unload even with keys open.
pub const REG_FORCE_UNLOAD: u32 = 1;
/// `REG_LOAD_HIVE_OPEN_HANDLE` (`NtLoadKeyEx`): return a handle to the
/// loaded hive's root.
pub const REG_LOAD_HIVE_OPEN_HANDLE: u32 = 0x800;

/// `SeSinglePrivilegeCheck(privilege, PreviousMode)` against `token`.
fn privilege_check(luid: u32, mode: Mode, token: &Token) -> Result<(), NtStatus> {
    if mode == Mode::KernelMode || token.has_privilege(luid) {
        Ok(())
    } else {
        Err(STATUS_PRIVILEGE_NOT_HELD)
    }
}

/// `NtSaveKey`: [`nt_save_key_ex`] in `REG_STANDARD_FORMAT`.
pub fn nt_save_key(key: u64, file: u64, mode: Mode) -> NtStatus {
    nt_save_key_ex(key, file, REG_STANDARD_FORMAT, mode)
}

/// `NtSaveKeyEx`: writes a fresh hive holding the key and its stable
/// subtree (volatile keys are left out) to the file `file` from offset 0,
/// and sets the file's end there. `format` is `REG_STANDARD_FORMAT`
/// (hive version 1.3) or `REG_LATEST_FORMAT` (1.5); another value is
/// `STATUS_INVALID_PARAMETER`, and `REG_NO_COMPRESSION` (save a hive root
/// as it is) is `STATUS_NOT_IMPLEMENTED` in ntrs. The caller's token must
/// hold `SeBackupPrivilege` enabled (user mode), the key handle must be a
/// key's, the file handle must grant `FILE_WRITE_DATA`.
pub fn nt_save_key_ex(key: u64, file: u64, format: u32, mode: Mode) -> NtStatus {
    let subject = crate::se::se_capture_subject_context();
    nt_save_key_ex_as(key, file, format, mode, subject.effective_token())
}

/// [`nt_save_key_ex`] for a caller with `token`.
pub fn nt_save_key_ex_as(key: u64, file: u64, format: u32, mode: Mode, token: &Token) -> NtStatus {
    match save_key(key, file, format, mode, token) {
        Ok(()) => STATUS_SUCCESS,
        Err(s) => s,
    }
}

fn save_key(key: u64, file: u64, format: u32, mode: Mode, token: &Token) -> Result<(), NtStatus> {
    match format {
        REG_STANDARD_FORMAT | REG_LATEST_FORMAT => {}
        REG_NO_COMPRESSION => return Err(STATUS_NOT_IMPLEMENTED),
        _ => return Err(STATUS_INVALID_PARAMETER),
    }
    privilege_check(privilege::BACKUP, mode, token)?;
    let (_key, k) = key_of(key, 0, mode)?;
    // The file: the caller's handle, with the right to write.
    let _file = crate::ob::handle::ob_reference_object_by_handle(
        file,
        wdk::FILE_WRITE_DATA,
        Some(&crate::io::IO_FILE_OBJECT_TYPE),
        mode,
    )?;
    let image = {
        let _tag = crate::ex::pool::PoolTag::enter_paged(*b"CMsv");
        with_shared(|r| r.save_key(k, format).map_err(status_of))?
    };
    hivefile::write_at(file, 0, &image)?;
    hivefile::set_end_of_file(file, image.len() as u64)?;
    let mut iosb = wdk::IO_STATUS_BLOCK::zeroed();
    crate::io::file::nt_flush_buffers_file(file, &mut iosb, Mode::KernelMode).and_then(|s| {
        if s.is_success() {
            Ok(())
        } else {
            Err(s)
        }
    })
}

/// The mount point a hive may be loaded at: `\REGISTRY\MACHINE\<name>` or
/// `\REGISTRY\USER\<name>` (`STATUS_INVALID_PARAMETER` elsewhere; a path not
/// below `\REGISTRY` is `STATUS_OBJECT_PATH_SYNTAX_BAD`). Returns (parent,
/// name) below the root.
fn mount_point(target: &str) -> Result<(&str, &str), NtStatus> {
    let rel = below_root(target)?.trim_end_matches('\\');
    let (parent, name) = rel.split_once('\\').ok_or(STATUS_INVALID_PARAMETER)?;
    let ok_parent = parent.eq_ignore_ascii_case("MACHINE") || parent.eq_ignore_ascii_case("USER");
    if !ok_parent || name.is_empty() || name.contains('\\') {
        return Err(STATUS_INVALID_PARAMETER);
    }
    Ok((parent, name))
}

/// `NtLoadKey`: [`nt_load_key_ex`] without flags.
pub fn nt_load_key(target: &str, file: &str, mode: Mode) -> NtStatus {
    match nt_load_key_ex(target, file, 0, mode) {
        Ok(_) => STATUS_SUCCESS,
        Err(s) => s,
    }
}

/// `NtLoadKey2`: [`nt_load_key_ex`] with `flags`.
pub fn nt_load_key2(target: &str, file: &str, flags: u32, mode: Mode) -> NtStatus {
    match nt_load_key_ex(target, file, flags, mode) {
        Ok(_) => STATUS_SUCCESS,
        Err(s) => s,
    }
}

/// `NtLoadKeyEx`: mounts the hive file `file` (an object name such as
/// `\??\C:\x.hiv`) at `target` (`\REGISTRY\MACHINE\<name>` or
/// `\REGISTRY\USER\<name>`). The file and its `.LOG1` / `.LOG2` (created
/// when missing) are opened for the hive's lifetime, read/write and shared
/// for reading only; a primary left inconsistent by an interrupted flush is
/// recovered from the logs and rewritten by the next flush. With
/// `REG_LOAD_HIVE_OPEN_HANDLE` the result is a handle (`KEY_ALL_ACCESS`) to
/// the hive's root. Other flags are `STATUS_NOT_IMPLEMENTED` in ntrs.
/// Errors: `STATUS_PRIVILEGE_NOT_HELD` (no `SeRestorePrivilege`),
/// `STATUS_INVALID_PARAMETER` (mount point), `STATUS_OBJECT_NAME_COLLISION`
/// (something is mounted there), the file's open status
/// (`STATUS_OBJECT_NAME_NOT_FOUND`, `STATUS_SHARING_VIOLATION` for a file
/// loaded already), `STATUS_REGISTRY_CORRUPT` (not a hive, or one the logs
/// cannot repair).
pub fn nt_load_key_ex(
    target: &str,
    file: &str,
    flags: u32,
    mode: Mode,
) -> Result<Option<u64>, NtStatus> {
    let subject = crate::se::se_capture_subject_context();
    nt_load_key_ex_as(target, file, flags, mode, subject.effective_token())
}

/// [`nt_load_key_ex`] for a caller with `token`.
pub fn nt_load_key_ex_as(
    target: &str,
    file: &str,
    flags: u32,
    mode: Mode,
    token: &Token,
) -> Result<Option<u64>, NtStatus> {
    if flags & !REG_LOAD_HIVE_OPEN_HANDLE != 0 {
        return Err(STATUS_NOT_IMPLEMENTED);
    }
    privilege_check(privilege::RESTORE, mode, token)?;
    let (parent, name) = mount_point(target)?;
    let _tag = crate::ex::pool::PoolTag::enter_paged(*b"CMld");
    // The files and the hive are read before the registry lock is taken.
    let files = DiskFiles::open(file)?;
    let (logged, recovery) = regf::log::LoggedHive::open(&files).map_err(status_of)?;
    let storage = Storage::Files {
        logged,
        files: alloc::boxed::Box::new(files),
    };
    let (k, full) = with_change(|r| {
        let p = r.lookup(ROOT_KCB, parent).map_err(status_of)?;
        let res = r.mount(p, name, storage, file).map_err(status_of);
        r.release(p);
        let k = res?;
        r.reference(k);
        Ok((k, r.full_name(k)))
    })?;
    if recovery != regf::log::Recovery::Clean {
        hive_changed();
    }
    hivelist_set(&full, file);
    if flags & REG_LOAD_HIVE_OPEN_HANDLE == 0 {
        with_shared(|r| {
            r.release(k);
            Ok(())
        })?;
        return Ok(None);
    }
    let id = key_object(k)?;
    crate::ob::handle::ob_insert_object_handle(id, KEY_ALL_ACCESS, 0, mode).map(Some)
}

/// `NtUnloadKey`: [`nt_unload_key2`] without flags.
pub fn nt_unload_key(target: &str, mode: Mode) -> NtStatus {
    nt_unload_key2(target, 0, mode)
}

/// `NtUnloadKey2`: flushes the hive loaded at `target` and unloads it,
/// closing its files. A key of the hive still open (a handle other than
/// the caller's lookup, a pending notification) makes it
/// `STATUS_CANNOT_DELETE` unless `REG_FORCE_UNLOAD`, which deletes those
/// keys under their handles (they then get `STATUS_KEY_DELETED`) and sets
/// the events of their notifications. `target` must be the root of a hive
/// loaded by `NtLoadKey` (`STATUS_INVALID_PARAMETER` for another key,
/// `STATUS_ACCESS_DENIED` for the hives the system loaded at boot);
/// `STATUS_PRIVILEGE_NOT_HELD` without `SeRestorePrivilege`.
pub fn nt_unload_key2(target: &str, flags: u32, mode: Mode) -> NtStatus {
    let subject = crate::se::se_capture_subject_context();
    nt_unload_key2_as(target, flags, mode, subject.effective_token())
}

/// [`nt_unload_key2`] for a caller with `token`.
pub fn nt_unload_key2_as(target: &str, flags: u32, mode: Mode, token: &Token) -> NtStatus {
    match unload_key(target, flags, mode, token) {
        Ok(()) => STATUS_SUCCESS,
        Err(s) => s,
    }
}

fn unload_key(target: &str, flags: u32, mode: Mode, token: &Token) -> Result<(), NtStatus> {
    if flags & !REG_FORCE_UNLOAD != 0 {
        return Err(STATUS_INVALID_PARAMETER);
    }
    privilege_check(privilege::RESTORE, mode, token)?;
    let rel = below_root(target)?;
    let mut full = String::new();
    let (storage, fired) = with_exclusive(|r| {
        let k = r.lookup(ROOT_KCB, rel).map_err(status_of)?;
        full = r.full_name(k);
        let res = match r.hive_of(k) {
            Ok(h) if h.root == k && is_boot_hive(&h.file_name) => Err(STATUS_ACCESS_DENIED),
            Ok(_) => r
                .unmount(k, 1, flags & REG_FORCE_UNLOAD != 0)
                .map_err(status_of),
            Err(e) => Err(status_of(e)),
        };
        r.release(k);
        res
    })?;
    signal(fired);
    // Closes the hive's files, outside the registry lock.
    drop(storage);
    hivelist_remove(&full);
    Ok(())
}

/// `REG_WHOLE_HIVE_VOLATILE`, `REG_REFRESH_HIVE`, `REG_NO_LAZY_FLUSH`:
/// `NtRestoreKey` flags ntrs does not implement.
const RESTORE_UNSUPPORTED: u32 = 0x1 | 0x2 | 0x4;
/// `REG_FORCE_RESTORE` (`NtRestoreKey`): restore even with keys below open.
pub const REG_FORCE_RESTORE: u32 = 0x8;

/// `NtRestoreKey`: replaces the values and subkeys of the key with those of
/// the root of the hive file `file` (read from offset 0; the handle must
/// grant `FILE_READ_DATA`); the key keeps its name. A key below it still
/// open is `STATUS_CANNOT_DELETE` unless `REG_FORCE_RESTORE` (those keys are
/// then deleted under their handles). `REG_WHOLE_HIVE_VOLATILE`,
/// `REG_REFRESH_HIVE` and `REG_NO_LAZY_FLUSH` are `STATUS_NOT_IMPLEMENTED` in
/// ntrs, other flags `STATUS_INVALID_PARAMETER`; a file that is not a
/// consistent hive is `STATUS_REGISTRY_CORRUPT`; a volatile key
/// `STATUS_CHILD_MUST_BE_VOLATILE`; without `SeRestorePrivilege`
/// `STATUS_PRIVILEGE_NOT_HELD`. Nothing changes on an error.
pub fn nt_restore_key(key: u64, file: u64, flags: u32, mode: Mode) -> NtStatus {
    let subject = crate::se::se_capture_subject_context();
    nt_restore_key_as(key, file, flags, mode, subject.effective_token())
}

/// [`nt_restore_key`] for a caller with `token`.
pub fn nt_restore_key_as(key: u64, file: u64, flags: u32, mode: Mode, token: &Token) -> NtStatus {
    match restore_key(key, file, flags, mode, token) {
        Ok(()) => STATUS_SUCCESS,
        Err(s) => s,
    }
}

fn restore_key(key: u64, file: u64, flags: u32, mode: Mode, token: &Token) -> Result<(), NtStatus> {
    if flags & RESTORE_UNSUPPORTED != 0 {
        return Err(STATUS_NOT_IMPLEMENTED);
    }
    if flags & !REG_FORCE_RESTORE != 0 {
        return Err(STATUS_INVALID_PARAMETER);
    }
    privilege_check(privilege::RESTORE, mode, token)?;
    let (_key, k) = key_of(key, 0, mode)?;
    let _file = crate::ob::handle::ob_reference_object_by_handle(
        file,
        wdk::FILE_READ_DATA,
        Some(&crate::io::IO_FILE_OBJECT_TYPE),
        mode,
    )?;
    let _tag = crate::ex::pool::PoolTag::enter_paged(*b"CMrs");
    let len = hivefile::file_size(file)?;
    let bytes = hivefile::read_at(file, 0, len as usize)?;
    let source = regf::Hive::from_bytes(&bytes).map_err(status_of)?;
    drop(bytes);
    let fired = with_change(|r| {
        r.restore_key(k, &source, flags & REG_FORCE_RESTORE != 0)
            .map_err(status_of)
    })?;
    hive_changed();
    signal(fired);
    Ok(())
}

// ---- the hives loaded at boot and the hive list ----

/// The hives `CmpInitializeHiveList` loads from `\SystemRoot\System32\Config`
/// besides SYSTEM and SOFTWARE (which the loader hands over), and where.
const BOOT_FILE_HIVES: [(&str, &str); 3] = [
    ("SAM", "\\REGISTRY\\MACHINE\\SAM"),
    ("SECURITY", "\\REGISTRY\\MACHINE\\SECURITY"),
    ("DEFAULT", "\\REGISTRY\\USER\\.DEFAULT"),
];

/// `HKLM\SYSTEM\CurrentControlSet\Control\hivelist`: a volatile key with
/// one `REG_SZ` per mounted hive, its full key name → its primary file as
/// a device path (`\Device\HarddiskVolume2\Windows\System32\config\SAM`),
/// empty for a hive that lives in memory only.
pub const HIVELIST: &str = "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Control\\hivelist";

/// `CmpInitializeHiveList`'s second half, once the system volume is
/// mounted: loads SAM, SECURITY and DEFAULT from their files (with their
/// logs, as `NtLoadKey` does) and writes the hive list for every mounted
/// hive. A hive that cannot be loaded is left out (the debug port says
/// why). Returns how many were loaded.
pub fn cm_load_boot_hives() -> u32 {
    let mut loaded = 0;
    for (file, target) in BOOT_FILE_HIVES {
        let path = alloc::format!("\\SystemRoot\\System32\\Config\\{file}");
        match nt_load_key_ex(target, &path, 0, Mode::KernelMode) {
            Ok(_) => loaded += 1,
            Err(s) => crate::dbg_println!("cm: {path} cannot be loaded at {target} ({s})"),
        }
    }
    let hives: Vec<(String, String)> = with_shared(|r| {
        Ok(r.hives()
            .filter(|h| h.root != ROOT_KCB)
            .map(|h| (r.full_name(h.root), h.file_name.clone()))
            .collect())
    })
    .unwrap_or_default();
    for (mount, file) in hives {
        hivelist_set(&mount, &file);
    }
    loaded
}

/// `path` with its symbolic links resolved (`\SystemRoot\System32\x` →
/// `\Device\HarddiskVolume2\Windows\System32\x`): the longest prefix that
/// is a link is replaced by its target, until none is.
pub fn device_path(path: &str) -> String {
    let mut p = String::from(path);
    for _ in 0..8 {
        let mut ends: Vec<usize> = p
            .match_indices('\\')
            .map(|(i, _)| i)
            .filter(|&i| i > 0)
            .collect();
        ends.push(p.len());
        let resolved = ends.iter().rev().find_map(|&e| {
            crate::storage::symbolic_link_target(&p[..e])
                .ok()
                .map(|t| alloc::format!("{t}{}", &p[e..]))
        });
        match resolved {
            Some(n) => p = n,
            None => break,
        }
    }
    p
}

/// Records hive `mount` (a full key name) with its file in the hive list.
fn hivelist_set(mount: &str, file: &str) {
    let device = if file.is_empty() {
        String::new()
    } else {
        device_path(file)
    };
    match nt_create_key(
        HIVELIST,
        KEY_SET_VALUE,
        REG_OPTION_VOLATILE,
        Mode::KernelMode,
    ) {
        Ok((h, _)) => {
            let s = nt_set_value_key(h, mount, REG_SZ, &regf::utf16z(&device), Mode::KernelMode);
            if !s.is_success() {
                crate::dbg_println!("cm: hivelist {mount} cannot be set ({s})");
            }
            crate::ob::handle::nt_close(h);
        }
        Err(s) => crate::dbg_println!("cm: the hive list cannot be created ({s})"),
    }
}

/// Takes hive `mount` out of the hive list.
fn hivelist_remove(mount: &str) {
    if let Ok(h) = crate::cm::nt_open_key(HIVELIST, KEY_SET_VALUE, Mode::KernelMode) {
        let _ = nt_delete_value_key(h, mount, Mode::KernelMode);
        crate::ob::handle::nt_close(h);
    }
}

/// The hives the system mounts at boot (memory-only ones have no file
/// name), which `NtUnloadKey` refuses.
fn is_boot_hive(file_name: &str) -> bool {
    file_name.is_empty() || file_name.starts_with("\\SystemRoot\\")
}
