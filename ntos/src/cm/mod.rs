//! The configuration manager (*Windows Internals*, Part 2, ch. 10, "The
//! registry"): the hives mounted under `\REGISTRY`, key objects opened
//! through the object manager's parse procedure, the native registry
//! services, change notification, lazy flushing, and the volatile `HARDWARE`
//! hive filled at boot.
//!
//! The registry is the host-tested `regf::registry::Registry`: every key is
//! a cell of a mounted hive (the master hive for `\REGISTRY`, `MACHINE` and
//! `USER`; the SYSTEM and SOFTWARE hives the loader handed over; the
//! memory-only HARDWARE hive), reached through a cache of key control blocks.
//! There is no second key tree: a service that cannot change the hive (it
//! cannot grow, memory is short) fails with that status and nothing changes.
//! Volatile keys (`CurrentControlSet`, `HARDWARE\...`) live in the volatile
//! storage of their hive. SYSTEM and SOFTWARE are flushed log-first to their
//! files under `\SystemRoot\System32\Config` (`hivefile.rs`), bound once the
//! system volume is mounted; before that they live on memory files.
//!
//! This file is the kernel glue: the registry lock (a push lock at
//! PASSIVE_LEVEL, `lock.rs`), key objects and their procedures, the `Nt*`
//! services, notification events, the lazy flush worker and `CmInitSystem1`.

pub mod hivefile;
pub mod kd;
pub mod loadkey;
pub mod lock;
/// Boot tests (`/TESTS`) of this component.
pub mod tests;
pub mod zw;

pub use loadkey::{
    nt_load_key, nt_load_key2, nt_load_key_ex, nt_restore_key, nt_save_key, nt_save_key_ex,
    nt_unload_key, nt_unload_key2, REG_FORCE_UNLOAD, REG_LATEST_FORMAT, REG_LOAD_HIVE_OPEN_HANDLE,
    REG_NO_COMPRESSION, REG_STANDARD_FORMAT,
};

use crate::ob::object::*;
use ::ob::namespace::ObjectId;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use lock::RegistryLock;
use nt::status::*;
use nt::NtStatus;
use regf::registry::{KcbIndex, Registry, Storage, ROOT_KCB};
use security::sd::SecurityDescriptor;

pub use regf::registry::{
    KeyInformation, REG_NOTIFY_CHANGE_ATTRIBUTES, REG_NOTIFY_CHANGE_LAST_SET,
    REG_NOTIFY_CHANGE_NAME, REG_NOTIFY_CHANGE_SECURITY,
};

/// Value types (`REG_*`).
pub const REG_NONE: u32 = regf::REG_NONE;
pub const REG_SZ: u32 = regf::REG_SZ;
pub const REG_EXPAND_SZ: u32 = regf::REG_EXPAND_SZ;
pub const REG_BINARY: u32 = regf::REG_BINARY;
pub const REG_DWORD: u32 = regf::REG_DWORD;
pub const REG_LINK: u32 = regf::REG_LINK;
pub const REG_MULTI_SZ: u32 = regf::REG_MULTI_SZ;
pub const REG_QWORD: u32 = regf::REG_QWORD;
/// `REG_OPTION_VOLATILE`.
pub const REG_OPTION_VOLATILE: u32 = 1;
/// `REG_CREATED_NEW_KEY`, `REG_OPENED_EXISTING_KEY`.
pub const REG_CREATED_NEW_KEY: u32 = 1;
pub const REG_OPENED_EXISTING_KEY: u32 = 2;
/// Access rights.
pub const KEY_QUERY_VALUE: u32 = 0x0001;
pub const KEY_SET_VALUE: u32 = 0x0002;
pub const KEY_CREATE_SUB_KEY: u32 = 0x0004;
pub const KEY_ENUMERATE_SUB_KEYS: u32 = 0x0008;
pub const KEY_NOTIFY: u32 = 0x0010;
pub const KEY_READ: u32 = 0x0002_0019;
pub const KEY_ALL_ACCESS: u32 = 0x000F_003F;
/// `DELETE`.
const DELETE: u32 = 0x0001_0000;
/// `EVENT_MODIFY_STATE`.
const EVENT_MODIFY_STATE: u32 = 0x0002;

/// A value (`KEY_VALUE_FULL_INFORMATION` essentials).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    pub name: String,
    pub value_type: u32,
    pub data: Vec<u8>,
}

/// A pending `NtNotifyChangeKey`: the event to set and the key object it was
/// posted through, both referenced until the notification fires or the key's
/// last handle closes (so neither can be deleted and its id reused meanwhile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotifyPost {
    pub event: ObjectId,
    pub key_object: ObjectId,
}

/// The registry with security descriptors parsed into the kernel's form.
pub type CmRegistry = Registry<Arc<SecurityDescriptor>, NotifyPost>;

/// The most KCBs that can exist at once.
pub const MAX_KCBS: usize = 1 << 16;

/// KCB reference counts. A key object's delete procedure runs under the
/// object manager's spin lock (DISPATCH_LEVEL), where the registry lock cannot
/// be taken; it only decrements its KCB's count here.
static KCB_REFS: [AtomicU32; MAX_KCBS] = [const { AtomicU32::new(0) }; MAX_KCBS];

/// The registry and its lock.
pub static REGISTRY: RegistryLock<Option<CmRegistry>> = RegistryLock::new(None);

fn parse_sd(b: &[u8]) -> Option<Arc<SecurityDescriptor>> {
    SecurityDescriptor::parse(b).ok().map(Arc::new)
}

fn status_of(e: regf::Error) -> NtStatus {
    e.status()
}

/// Runs `f` on the registry with the lock held exclusively.
fn with_exclusive<R>(
    f: impl FnOnce(&mut CmRegistry) -> Result<R, NtStatus>,
) -> Result<R, NtStatus> {
    // KCBs and hive growth are the registry's paged-pool memory.
    let _tag = crate::ex::pool::PoolTag::enter_paged(*b"CMkb");
    let mut g = REGISTRY.exclusive();
    let r = g.as_mut().ok_or(STATUS_UNSUCCESSFUL)?;
    f(r)
}

/// [`with_exclusive`] for a change: the keys it touches get the current
/// system time as their last write time.
fn with_change<R>(f: impl FnOnce(&mut CmRegistry) -> Result<R, NtStatus>) -> Result<R, NtStatus> {
    with_exclusive(|r| {
        r.set_time(crate::ke::clock::ke_query_system_time());
        f(r)
    })
}

/// Runs `f` on the registry with the lock held shared.
fn with_shared<R>(f: impl FnOnce(&CmRegistry) -> Result<R, NtStatus>) -> Result<R, NtStatus> {
    let g = REGISTRY.shared();
    let r = g.as_ref().ok_or(STATUS_UNSUCCESSFUL)?;
    f(r)
}

/// The delete procedure of a key object (`CmpDeleteKeyObject`): drops the
/// object's KCB reference. Called by the object manager with its lock held, so
/// it takes no lock; the KCB stays cached until the cache frees it.
pub fn cm_delete_key_object(kcb: usize) {
    CmRegistry::release_ref(&KCB_REFS, kcb as KcbIndex);
}

/// `CmKeyObjectType`, created by `cm_initialize`.
pub static CM_KEY_OBJECT_TYPE: crate::ob::types::ObjectTypeRef =
    crate::ob::types::ObjectTypeRef::new();

/// The KCB of a key handle, checked for type and access.
fn key_of(
    handle: u64,
    desired: u32,
    mode: Mode,
) -> Result<(crate::ob::handle::ObjectRef, KcbIndex), NtStatus> {
    let r = crate::ob::handle::ob_reference_object_by_handle(
        handle,
        desired,
        Some(&CM_KEY_OBJECT_TYPE),
        mode,
    )?;
    let k = with_body(r.id, |b| match b.body {
        ObjectBody::Key(k) => Some(k),
        _ => None,
    })
    .flatten()
    .ok_or(STATUS_OBJECT_TYPE_MISMATCH)?;
    Ok((r, k as KcbIndex))
}

/// A new unnamed key object for KCB `k`, which the caller referenced for it
/// (on failure the reference is dropped).
fn key_object(k: KcbIndex) -> Result<ObjectId, NtStatus> {
    match ob_create_object(CreateSpec {
        object_type: &CM_KEY_OBJECT_TYPE,
        name: None,
        attributes: 0,
        body: ObjectBody::Key(k as usize),
        sd: None,
    }) {
        Ok((id, _)) => Ok(id),
        Err(e) => {
            CmRegistry::release_ref(&KCB_REFS, k);
            Err(e)
        }
    }
}

/// The Key type's parse procedure (`CmpParseKey`): the object manager
/// reached `\REGISTRY`; the rest of the path names a key. The access check
/// uses the key's security descriptor, parsed once per security cell.
fn parse_key(
    _object: ObjectId,
    remaining: &str,
    ctx: &crate::ob::types::ParseContext,
) -> Result<(ObjectId, u32), NtStatus> {
    let (k, granted) = with_exclusive(|r| {
        let k = r.lookup(ROOT_KCB, remaining).map_err(status_of)?;
        let checked =
            if ctx.mode == Mode::KernelMode && ctx.attributes & OBJ_FORCE_ACCESS_CHECK == 0 {
                // Kernel-mode opens are granted what they ask for: no descriptor needed.
                ob_check_object_access(
                    None,
                    &CM_KEY_OBJECT_TYPE,
                    ctx.desired,
                    ctx.mode,
                    ctx.attributes,
                    ctx.token,
                )
            } else {
                r.security(k).map_err(status_of).and_then(|sd| {
                    ob_check_object_access(
                        sd.as_deref(),
                        &CM_KEY_OBJECT_TYPE,
                        ctx.desired,
                        ctx.mode,
                        ctx.attributes,
                        ctx.token,
                    )
                })
            };
        match checked {
            Ok(g) => Ok((k, g)),
            Err(e) => {
                r.release(k);
                Err(e)
            }
        }
    })?;
    Ok((key_object(k)?, granted))
}

/// The Key type's close procedure (`CmpCloseKeyObject`): when the last
/// handle goes, the notifications posted through the key are cancelled and
/// their references dropped.
fn close_key(id: ObjectId, handles_left: u64) {
    if handles_left != 0 || POSTED.load(Ordering::Acquire) == 0 {
        return;
    }
    let posts =
        with_exclusive(|r| Ok(r.cancel_notifications(|p| p.key_object == id))).unwrap_or_default();
    POSTED.fetch_sub(posts.len(), Ordering::AcqRel);
    for p in posts {
        ob_dereference_object(p.event);
        ob_dereference_object(p.key_object);
    }
}

/// Notifications posted and not yet fired or cancelled.
static POSTED: AtomicUsize = AtomicUsize::new(0);

/// Sets the events of fired notifications and drops their references.
fn signal(posts: Vec<NotifyPost>) {
    POSTED.fetch_sub(posts.len(), Ordering::AcqRel);
    for p in posts {
        if let Some(Some(i)) = with_body(p.event, |b| match b.body {
            ObjectBody::Dispatcher(i) => Some(i),
            _ => None,
        }) {
            crate::ke::wait::with_db(|st| {
                let _ = st.db.set_event(
                    ::ke::objects::ObjectId(i),
                    ::ke::priority::EVENT_INCREMENT,
                    &mut st.unwaits,
                );
            });
        }
        ob_dereference_object(p.event);
        ob_dereference_object(p.key_object);
    }
}

/// Splits `\REGISTRY\...` into the path below the root.
fn below_root(path: &str) -> Result<&str, NtStatus> {
    regf::registry::below_root(path, "REGISTRY").ok_or(STATUS_OBJECT_PATH_SYNTAX_BAD)
}

// ---- lazy flushing ----

/// A lazy flush is queued (`CmpLazyFlushPending`).
static LAZY_ARMED: AtomicBool = AtomicBool::new(false);
static LAZY_TIMER: crate::ke::timer::KTimer = crate::ke::timer::KTimer::new();
static LAZY_DPC: crate::ke::dpc::KDpc = crate::ke::dpc::KDpc::new(
    |_, _, _, _| {
        crate::ex::worker::ex_queue_work_item(
            crate::ex::worker::WorkQueueItem {
                routine: |_| cm_lazy_flush_worker(),
                parameter: 0,
            },
            crate::ex::worker::WorkQueueType::DelayedWorkQueue,
        );
    },
    0,
);

/// `CmpLazyFlush`: a change arms a one-shot 5-second timer whose DPC queues
/// the flush worker.
fn hive_changed() {
    if NO_WRITE.load(Ordering::Acquire) {
        return;
    }
    if !LAZY_ARMED.swap(true, Ordering::AcqRel) {
        crate::ke::timer::ke_set_timer_ex(&LAZY_TIMER, -50_000_000, 0, Some(&LAZY_DPC));
    }
}

/// `CmpLazyFlushWorker`: flushes every dirty hive (log first) at
/// PASSIVE_LEVEL under the registry lock.
fn cm_lazy_flush_worker() {
    LAZY_ARMED.store(false, Ordering::Release);
    if NO_WRITE.load(Ordering::Acquire) {
        return;
    }
    if let Err(s) = with_exclusive(|r| r.flush_all().map_err(status_of)) {
        crate::dbg_println!("cm: lazy flush failed ({s})");
    }
}

/// Set by `CmShutdownSystem`: the hives were flushed for the last time and
/// the volumes are going away; nothing is written any more (`CmpNoWrite`).
static NO_WRITE: AtomicBool = AtomicBool::new(false);

/// The hives the loader hands over, with their files below `\SystemRoot`.
const LOADER_HIVES: [&str; 2] = ["SYSTEM", "SOFTWARE"];

/// `CmpInitializeHiveList`'s file part, run once the system volume can be
/// reached (NT runs it in phase 1, after the I/O manager mounted the boot
/// volume): opens `\SystemRoot\System32\Config\<hive>` and its `.LOG1` /
/// `.LOG2` for SYSTEM and SOFTWARE and binds the hives the loader handed over
/// to them (`regf::registry::Registry::bind_files`). Changes made since the
/// loader read a hive are dirty and written by the next (lazy) flush. A hive
/// whose files cannot be opened stays in memory (the debug port says why).
/// Returns how many hives are now on disk.
pub fn cm_initialize_hive_files() -> u32 {
    let _tag = crate::ex::pool::PoolTag::enter_paged(*b"CMhv");
    ensure_system_root_link();
    let mut bound = 0;
    for name in LOADER_HIVES {
        let path = alloc::format!("\\SystemRoot\\System32\\Config\\{name}");
        let files = match hivefile::DiskFiles::open(&path) {
            Ok(f) => f,
            Err(s) => {
                crate::dbg_println!("cm: {path} cannot be opened ({s}); {name} stays in memory");
                continue;
            }
        };
        let base = match hivefile::read_at(files.handle(regf::log::HiveFile::Primary), 0, 4096) {
            Ok(b) => b,
            Err(s) => {
                crate::dbg_println!("cm: {path} cannot be read ({s}); {name} stays in memory");
                continue;
            }
        };
        let mount = alloc::format!("MACHINE\\{name}");
        let r = with_exclusive(|r| {
            let k = r.lookup(ROOT_KCB, &mount).map_err(status_of)?;
            let res = r
                .bind_files(k, alloc::boxed::Box::new(files), &base)
                .map_err(status_of);
            r.release(k);
            res
        });
        match r {
            Ok(()) => bound += 1,
            Err(s) => crate::dbg_println!("cm: {name} cannot be bound to {path} ({s})"),
        }
    }
    if with_shared(|r| Ok(r.is_dirty())).unwrap_or(false) {
        hive_changed();
    }
    loadkey::cm_load_boot_hives();
    bound
}

/// `\SystemRoot`, the symbolic link NT creates at boot to the boot
/// partition's system directory (`\Windows`, from
/// `LoaderBlock->NtBootPathName`); ntrs points it through the drive letter
/// mountmgr gave the system volume (`\??\C:\Windows`). Created here if
/// nobody made it before.
fn ensure_system_root_link() {
    if crate::storage::symbolic_link_target("\\SystemRoot").is_ok() {
        return;
    }
    // SAFETY: the loader string lives in MemoryData pages that stay mapped.
    let dir = unsafe { crate::rtl::loader_block().nt_boot_path_name.as_str() };
    let dir = dir.trim_end_matches('\\');
    let dir = if dir.is_empty() { "\\Windows" } else { dir };
    let target = alloc::format!("\\??\\C:{dir}");
    if let Err(s) = crate::io::device::io_create_symbolic_link("\\SystemRoot", &target) {
        crate::dbg_println!("cm: \\SystemRoot cannot be created ({s})");
    }
}

/// `CmShutdownSystem`: flushes every dirty hive a last time (log first), then
/// stops hive writes (a later change stays in memory: the volumes are being
/// dismounted). Returns the flush's status.
pub fn cm_shutdown_system() -> NtStatus {
    let r = with_exclusive(|r| {
        let res = r.flush_all().map_err(status_of);
        NO_WRITE.store(true, Ordering::Release);
        res
    });
    match r {
        Ok(()) => STATUS_SUCCESS,
        Err(s) => s,
    }
}

// ---- initialization ----

/// `CmInitSystem1`: the master hive (`\REGISTRY`, `MACHINE`, `USER`), the
/// SYSTEM and SOFTWARE hives the loader handed over (with the volatile
/// `CurrentControlSet` link), the memory-only HARDWARE hive with
/// `DESCRIPTION\System` from CPUID and the processor count, the Key type's
/// procedures and the `\REGISTRY` object.
pub fn cm_initialize() -> Result<(), NtStatus> {
    let _tag = crate::ex::pool::PoolTag::enter_paged(*b"CMhv");
    let mut r = CmRegistry::new("REGISTRY", &KCB_REFS, parse_sd).map_err(status_of)?;
    r.set_time(crate::ke::clock::ke_query_system_time());
    let new_key = |r: &mut CmRegistry, path: &str, volatile: bool| -> Result<KcbIndex, NtStatus> {
        let (k, _, _) = r.create_key(ROOT_KCB, path, volatile).map_err(status_of)?;
        Ok(k)
    };
    let machine = new_key(&mut r, "MACHINE", true)?;
    let user = new_key(&mut r, "USER", true)?;
    for k in [machine, user] {
        r.set_key_flags(k, regf::KEY_NO_DELETE).map_err(status_of)?;
    }
    mount_loader_hive(&mut r, machine, "SYSTEM", true);
    mount_loader_hive(&mut r, machine, "SOFTWARE", false);
    // HARDWARE: a hive in memory only; its root is volatile, so every key below is.
    let mut hw = regf::Hive::new_empty("HARDWARE").map_err(status_of)?;
    let root = hw.root();
    hw.set_key_flags(root, regf::KEY_IS_VOLATILE)
        .map_err(status_of)?;
    let hwk = r
        .mount(machine, "HARDWARE", Storage::Memory(hw), "")
        .map_err(status_of)?;
    let desc = new_key(&mut r, "MACHINE\\HARDWARE\\DESCRIPTION", true)?;
    let system = new_key(&mut r, "MACHINE\\HARDWARE\\DESCRIPTION\\System", true)?;
    r.set_value(
        system,
        "Identifier",
        REG_SZ,
        &regf::utf16z("AT/AT COMPATIBLE"),
    )
    .map_err(status_of)?;
    let cpus = new_key(
        &mut r,
        "MACHINE\\HARDWARE\\DESCRIPTION\\System\\CentralProcessor",
        true,
    )?;
    let brand = cpu_brand();
    let mhz = (crate::rtl::loader_block().tsc_frequency / 1_000_000) as u32;
    for n in 0..crate::ke::processor_count() {
        let (c, _, _) = r
            .create_key(cpus, &alloc::format!("{n}"), true)
            .map_err(status_of)?;
        r.set_value(c, "ProcessorNameString", REG_SZ, &regf::utf16z(&brand))
            .map_err(status_of)?;
        r.set_value(c, "~MHz", REG_DWORD, &mhz.to_le_bytes())
            .map_err(status_of)?;
        r.release(c);
    }
    for k in ["DEVICEMAP", "RESOURCEMAP"] {
        let (x, _, _) = r.create_key(hwk, k, true).map_err(status_of)?;
        r.release(x);
    }
    // The KCBs created here were referenced for callers that do not exist.
    for k in [machine, user, desc, system, cpus] {
        r.release(k);
    }
    *REGISTRY.exclusive() = Some(r);
    // The key type's procedures and the \REGISTRY object (its body is the root KCB).
    crate::ob::types::ob_create_object_type(
        "Key",
        crate::ob::types::TypeInitializer {
            generic_mapping: security::access::GenericMapping::KEY,
            parse: Some(parse_key),
            close: Some(close_key),
            ..Default::default()
        },
        &CM_KEY_OBJECT_TYPE,
    )?;
    KCB_REFS[ROOT_KCB as usize].fetch_add(1, Ordering::AcqRel);
    ob_create_object(CreateSpec {
        object_type: &CM_KEY_OBJECT_TYPE,
        name: Some("\\REGISTRY"),
        attributes: ::ob::OBJ_PERMANENT,
        body: ObjectBody::Key(ROOT_KCB as usize),
        sd: None,
    })?;
    Ok(())
}

/// `CmpInitializeHiveList` for one hive the loader handed over
/// (`LoaderBlock->RegistryBase` for SYSTEM, the second pair for SOFTWARE):
/// parsed and mounted at
/// `\REGISTRY\MACHINE\<name>`. For SYSTEM, `CmpCreateControlSet` adds the
/// volatile `CurrentControlSet` link to the control set `Select\Current`
/// names. A missing or corrupt hive is left out (and the debug port says why).
fn mount_loader_hive(r: &mut CmRegistry, machine: KcbIndex, name: &str, system: bool) {
    let lb = crate::rtl::loader_block();
    let (base, len) = if system {
        (lb.registry_base, lb.registry_length)
    } else {
        (lb.software_hive_base, lb.software_hive_length)
    };
    if base == 0 || len == 0 {
        return;
    }
    // SAFETY: winload copied the hive into LoaderRegistryData pages, reachable
    // through the direct map for the whole boot and never reused by the kernel.
    let bytes = unsafe { core::slice::from_raw_parts(base as *const u8, len as usize) };
    let mut hive = match regf::Hive::from_bytes(bytes) {
        Ok(h) => h,
        Err(e) => {
            crate::dbg_println!("cm: the {name} hive is unusable ({e}); {name} is left out");
            return;
        }
    };
    hive.set_time(crate::ke::clock::ke_query_system_time());
    if system {
        create_control_set_link(&mut hive);
    }
    // In memory until `cm_initialize_hive_files` binds it to its files
    // on the system volume (changes made meanwhile stay dirty).
    let file = alloc::format!("\\SystemRoot\\System32\\Config\\{name}");
    let storage = Storage::Memory(hive);
    if let Err(e) = r.mount(machine, name, storage, &file) {
        crate::dbg_println!("cm: the {name} hive cannot be mounted ({e})");
    }
}

/// `CmpCreateControlSet`: `CurrentControlSet` → `ControlSet00n`, n from `Select\Current`.
fn create_control_set_link(hive: &mut regf::Hive) {
    let current = hive
        .open_key("Select")
        .and_then(|s| hive.query_value_data(s, "Current"))
        .ok()
        .and_then(|(_, d)| {
            d.get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        });
    let Some(n) = current else { return };
    let set = alloc::format!("ControlSet{n:03}");
    if hive.open_key(&set).is_err() {
        return;
    }
    let root = hive.root();
    let target = alloc::format!("\\REGISTRY\\MACHINE\\SYSTEM\\{set}");
    if let Err(e) = hive.create_link(root, "CurrentControlSet", &target, true) {
        crate::dbg_println!("cm: CurrentControlSet cannot be created ({e})");
    }
}

fn cpu_brand() -> String {
    let max = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    if max < 0x8000_0004 {
        return String::from("Unknown x86-64 processor");
    }
    let mut b = Vec::new();
    for leaf in 0x8000_0002u32..=0x8000_0004 {
        let r = core::arch::x86_64::__cpuid(leaf);
        for v in [r.eax, r.ebx, r.ecx, r.edx] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    String::from_utf8_lossy(&b)
        .trim_matches(char::from(0))
        .trim()
        .into()
}

// ---- services ----

/// `NtCreateKey`: opens or creates the key; returns the handle and the
/// disposition. The parent must exist (STATUS_OBJECT_NAME_NOT_FOUND), and a
/// stable key cannot go under a volatile one (STATUS_CHILD_MUST_BE_VOLATILE);
/// a hive that cannot grow gives STATUS_INSUFFICIENT_RESOURCES.
pub fn nt_create_key(
    path: &str,
    desired: u32,
    options: u32,
    mode: Mode,
) -> Result<(u64, u32), NtStatus> {
    let rel = below_root(path)?;
    let volatile = options & REG_OPTION_VOLATILE != 0;
    let (k, created, fired) =
        with_change(|r| r.create_key(ROOT_KCB, rel, volatile).map_err(status_of))?;
    if created {
        hive_changed();
    }
    signal(fired);
    let id = key_object(k)?;
    let h = crate::ob::handle::ob_insert_object_handle(id, desired, 0, mode)?;
    Ok((
        h,
        if created {
            REG_CREATED_NEW_KEY
        } else {
            REG_OPENED_EXISTING_KEY
        },
    ))
}

/// `NtOpenKey` for a caller with its own token (user-mode opens are checked
/// against the key's security descriptor).
pub fn nt_open_key_as(
    path: &str,
    desired: u32,
    mode: Mode,
    token: &security::token::Token,
) -> Result<u64, NtStatus> {
    crate::ob::handle::ob_open_object_by_name_handle(
        path,
        None,
        ::ob::OBJ_CASE_INSENSITIVE,
        desired,
        mode,
        token,
    )
}

/// `NtOpenKey` (through the object manager and the key parse procedure),
/// checked against the caller's effective token.
pub fn nt_open_key(path: &str, desired: u32, mode: Mode) -> Result<u64, NtStatus> {
    let subject = crate::se::se_capture_subject_context();
    nt_open_key_as(path, desired, mode, subject.effective_token())
}

/// Sets a key's security descriptor (`NtSetSecurityObject` on a key).
pub fn set_key_security(path: &str, sd: &SecurityDescriptor) -> NtStatus {
    let Ok(rel) = below_root(path) else {
        return STATUS_OBJECT_PATH_SYNTAX_BAD;
    };
    let bytes = sd.to_bytes();
    let r = with_change(|r| {
        let k = r.lookup(ROOT_KCB, rel).map_err(status_of)?;
        let res = r.set_security(k, &bytes).map_err(status_of);
        r.release(k);
        res
    });
    match r {
        Ok(fired) => {
            hive_changed();
            signal(fired);
            STATUS_SUCCESS
        }
        Err(e) => e,
    }
}

/// `NtSetValueKey`.
pub fn nt_set_value_key(
    handle: u64,
    name: &str,
    value_type: u32,
    data: &[u8],
    mode: Mode,
) -> NtStatus {
    let (_r, k) = match key_of(handle, KEY_SET_VALUE, mode) {
        Ok(v) => v,
        Err(e) => return e,
    };
    match with_change(|r| r.set_value(k, name, value_type, data).map_err(status_of)) {
        Ok(fired) => {
            hive_changed();
            signal(fired);
            STATUS_SUCCESS
        }
        Err(e) => e,
    }
}

/// `NtQueryValueKey(KeyValuePartialInformation)`: (type, data).
pub fn nt_query_value_key(handle: u64, name: &str, mode: Mode) -> Result<(u32, Vec<u8>), NtStatus> {
    let (_r, k) = key_of(handle, KEY_QUERY_VALUE, mode)?;
    with_shared(|r| r.query_value(k, name).map_err(status_of))
}

/// `NtQueryValueKey(KeyValuePartialInformation)` into the caller's buffer:
/// (type, data length). A buffer too small for the data gets what fits and
/// `Err((STATUS_BUFFER_OVERFLOW, length needed))`, as NT returns the length
/// with that status.
pub fn nt_query_value_key_into(
    handle: u64,
    name: &str,
    buf: &mut [u8],
    mode: Mode,
) -> Result<(u32, usize), (NtStatus, usize)> {
    let (_r, k) = key_of(handle, KEY_QUERY_VALUE, mode).map_err(|e| (e, 0))?;
    let (ty, len) =
        with_shared(|r| r.query_value_into(k, name, buf).map_err(status_of)).map_err(|e| (e, 0))?;
    if len > buf.len() {
        return Err((STATUS_BUFFER_OVERFLOW, len));
    }
    Ok((ty, len))
}

/// `NtDeleteValueKey`.
pub fn nt_delete_value_key(handle: u64, name: &str, mode: Mode) -> NtStatus {
    let (_r, k) = match key_of(handle, KEY_SET_VALUE, mode) {
        Ok(v) => v,
        Err(e) => return e,
    };
    match with_change(|r| r.delete_value(k, name).map_err(status_of)) {
        Ok(fired) => {
            hive_changed();
            signal(fired);
            STATUS_SUCCESS
        }
        Err(e) => e,
    }
}

/// `NtEnumerateKey(KeyBasicInformation)`: the name of subkey `index`
/// (stable subkeys in name order, then volatile ones, as NT enumerates);
/// STATUS_NO_MORE_ENTRIES past the end.
pub fn nt_enumerate_key(handle: u64, index: u32, mode: Mode) -> Result<String, NtStatus> {
    let (_r, k) = key_of(handle, KEY_ENUMERATE_SUB_KEYS, mode)?;
    with_shared(|r| r.enumerate_key(k, index).map_err(status_of))
}

/// `NtEnumerateValueKey(KeyValueFullInformation)`: value `index`.
pub fn nt_enumerate_value_key(handle: u64, index: u32, mode: Mode) -> Result<Value, NtStatus> {
    let (_r, k) = key_of(handle, KEY_QUERY_VALUE, mode)?;
    with_shared(|r| {
        r.enumerate_value(k, index)
            .map(|v| Value {
                name: v.name,
                value_type: v.ty,
                data: v.data,
            })
            .map_err(status_of)
    })
}

/// `NtQueryKey(KeyFullInformation)`.
pub fn nt_query_key(handle: u64, mode: Mode) -> Result<KeyInformation, NtStatus> {
    let (_r, k) = key_of(handle, KEY_QUERY_VALUE, mode)?;
    with_shared(|r| r.query_key(k).map_err(status_of))
}

/// `NtDeleteKey`: STATUS_CANNOT_DELETE while it has subkeys, for hive roots
/// and the predefined keys; open handles then see STATUS_KEY_DELETED.
pub fn nt_delete_key(handle: u64, mode: Mode) -> NtStatus {
    let (_r, k) = match key_of(handle, DELETE, mode) {
        Ok(v) => v,
        Err(e) => return e,
    };
    match with_change(|r| r.delete_key(k).map_err(status_of)) {
        Ok(fired) => {
            hive_changed();
            signal(fired);
            STATUS_SUCCESS
        }
        Err(e) => e,
    }
}

/// `NtFlushKey`: flushes the key's hive now (log first, then the primary);
/// keys of memory-only hives have nothing to write.
pub fn nt_flush_key(handle: u64, mode: Mode) -> NtStatus {
    let (_r, k) = match key_of(handle, 0, mode) {
        Ok(v) => v,
        Err(e) => return e,
    };
    if NO_WRITE.load(Ordering::Acquire) {
        // After CmShutdownSystem nothing is written (the volumes are going).
        return STATUS_SUCCESS;
    }
    match with_exclusive(|r| r.flush(k).map_err(status_of)) {
        Ok(()) => STATUS_SUCCESS,
        Err(e) => e,
    }
}

/// `NtNotifyChangeKey` with an event: the event is set when the key (or,
/// with `watch_tree`, anything below it) changes as `filter` asks. The event
/// object and the key object stay referenced until then, or until the key's
/// last handle closes.
pub fn nt_notify_change_key(
    handle: u64,
    event: u64,
    filter: u32,
    watch_tree: bool,
    mode: Mode,
) -> NtStatus {
    let (key, k) = match key_of(handle, KEY_NOTIFY, mode) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let ev = match crate::ob::handle::ob_reference_object_by_handle(
        event,
        EVENT_MODIFY_STATE,
        Some(&crate::ex::event::EX_EVENT_OBJECT_TYPE),
        mode,
    ) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let post = NotifyPost {
        event: ev.id,
        key_object: key.id,
    };
    POSTED.fetch_add(1, Ordering::AcqRel);
    match with_exclusive(|r| r.notify(k, filter, watch_tree, post).map_err(status_of)) {
        Ok(()) => {
            // The notification owns both references now.
            core::mem::forget(ev);
            core::mem::forget(key);
            STATUS_PENDING
        }
        Err(e) => {
            POSTED.fetch_sub(1, Ordering::AcqRel);
            e
        }
    }
}

// ---- support for the boot tests and the kernel debugger ----

/// The primary, `.LOG1` and `.LOG2` files of the file-backed hive mounted at
/// `mount` (a full name such as `\REGISTRY\MACHINE\SYSTEM`).
pub fn hive_file_images(mount: &str) -> Option<[Vec<u8>; 3]> {
    use regf::log::HiveFile;
    with_shared(|r| {
        for h in r.hives() {
            if r.full_name(h.root).eq_ignore_ascii_case(mount) {
                if let Storage::Files { files, .. } = &h.storage {
                    return Ok(Some([
                        files.read(HiveFile::Primary),
                        files.read(HiveFile::Log1),
                        files.read(HiveFile::Log2),
                    ]));
                }
            }
        }
        Ok(None)
    })
    .ok()
    .flatten()
}

/// Limits the growth of the hive holding `path` (`\REGISTRY\...`) to `bytes`
/// per storage space (a quota; boot tests use it to make a hive unable to grow).
pub fn cm_set_hive_size_limit(path: &str, bytes: u32) -> NtStatus {
    let Ok(rel) = below_root(path) else {
        return STATUS_OBJECT_PATH_SYNTAX_BAD;
    };
    match with_exclusive(|r| {
        let k = r.lookup(ROOT_KCB, rel).map_err(status_of)?;
        let res = r.set_hive_size_limit(k, bytes).map_err(status_of);
        r.release(k);
        res
    }) {
        Ok(()) => STATUS_SUCCESS,
        Err(e) => e,
    }
}

/// Bytes of stable storage of the hive holding `path`.
pub fn cm_hive_stable_len(path: &str) -> Option<usize> {
    let rel = below_root(path).ok()?;
    with_exclusive(|r| {
        let k = r.lookup(ROOT_KCB, rel).map_err(status_of)?;
        let len = r.hive_of(k).map(|h| h.hive().stable_len());
        r.release(k);
        len.map_err(status_of)
    })
    .ok()
}

/// Holds the registry lock exclusively for `ms` milliseconds, sleeping
/// (`KeDelayExecutionThread`) while holding it, calls `on_held` once it holds
/// it, and returns the IRQL it ran at and the interrupt time read just before
/// the lock was released. Only legal because registry work runs at
/// PASSIVE_LEVEL under a push lock; the boot test that proves it uses this.
pub fn cm_hold_registry_for_test(ms: u64, on_held: impl FnOnce()) -> (u8, u64) {
    let g = REGISTRY.exclusive();
    let irql = crate::ke::irql();
    on_held();
    crate::ke::sched::ke_delay_execution_thread(ms * 10_000);
    let released = crate::ke::clock::ke_query_interrupt_time();
    drop(g);
    (irql, released)
}
