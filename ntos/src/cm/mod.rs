//! The configuration manager (*Windows Internals*, Part 2, ch. 10, "The
//! registry"): the key tree under `\REGISTRY`, key objects opened through
//! the object manager's parse procedure, the native registry services, change
//! notification, and the volatile `HARDWARE` key filled at boot.
//!
//! ntrs today: keys live in memory (as a volatile hive does in NT). Loading
//! the SYSTEM and SOFTWARE hives from disk and flushing them back arrives
//! with the regf format crate; until then `\REGISTRY\MACHINE\SYSTEM` and
//! `SOFTWARE` exist empty, and `NtFlushKey` has nothing to write.

pub mod kd;

use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use crate::ob::object::*;
use alloc::string::String;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;

/// Value types (`REG_*`).
pub const REG_NONE: u32 = 0;
pub const REG_SZ: u32 = 1;
pub const REG_EXPAND_SZ: u32 = 2;
pub const REG_BINARY: u32 = 3;
pub const REG_DWORD: u32 = 4;
pub const REG_LINK: u32 = 6;
pub const REG_MULTI_SZ: u32 = 7;
pub const REG_QWORD: u32 = 11;
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
/// `REG_NOTIFY_CHANGE_NAME`, `REG_NOTIFY_CHANGE_LAST_SET`.
pub const REG_NOTIFY_CHANGE_NAME: u32 = 1;
pub const REG_NOTIFY_CHANGE_LAST_SET: u32 = 4;

/// A value (`CM_KEY_VALUE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    pub name: String,
    pub value_type: u32,
    pub data: Vec<u8>,
}

/// A key (`CM_KEY_NODE`).
pub struct Key {
    pub name: String,
    pub parent: Option<usize>,
    pub subkeys: Vec<usize>,
    pub values: Vec<Value>,
    pub volatile: bool,
    pub last_write_time: u64,
    pub deleted: bool,
    /// Open key objects (`!reg openkeys`).
    pub open_count: u32,
    /// Pending `NtNotifyChangeKey` requests: (filter, watch subtree, event object id).
    pub notify: Vec<(u32, bool, u32)>,
    /// A symbolic link key (`KEY_SYM_LINK`): lookups continue at this key.
    pub link: Option<usize>,
    /// The key's security descriptor (self-relative), from the hive's `sk` cell.
    pub sd: Option<Vec<u8>>,
}

pub struct Registry {
    pub keys: Vec<Key>,
    /// Hives loaded from files: (mount point key, file name, stable length).
    pub hives: Vec<(usize, String, usize)>,
}

impl Registry {
    fn child(&self, k: usize, name: &str) -> Option<usize> {
        self.keys[k]
            .subkeys
            .iter()
            .copied()
            .find(|&c| !self.keys[c].deleted && self.keys[c].name.eq_ignore_ascii_case(name))
    }

    /// Walks `path` (relative, backslash-separated) from key `from`.
    pub fn walk(&self, from: usize, path: &str) -> Result<usize, NtStatus> {
        let mut k = from;
        for part in path.split('\\').filter(|p| !p.is_empty()) {
            k = self.child(k, part).ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
            // Symbolic link keys (CurrentControlSet) are followed.
            let mut hops = 0;
            while let Some(t) = self.keys[k].link {
                k = t;
                hops += 1;
                if hops > 16 {
                    return Err(STATUS_REPARSE_POINT_NOT_RESOLVED);
                }
            }
        }
        Ok(k)
    }

    /// The full name (`\REGISTRY\...`).
    pub fn full_name(&self, mut k: usize) -> String {
        let mut parts = Vec::new();
        loop {
            parts.push(self.keys[k].name.clone());
            match self.keys[k].parent {
                Some(p) => k = p,
                None => break,
            }
        }
        parts.reverse();
        let mut s = String::new();
        for p in parts {
            s.push('\\');
            s.push_str(&p);
        }
        s
    }

    fn add(&mut self, parent: usize, name: &str, volatile: bool) -> usize {
        self.keys.push(Key {
            name: name.into(),
            parent: Some(parent),
            subkeys: Vec::new(),
            values: Vec::new(),
            volatile,
            last_write_time: crate::ke::clock::ke_query_system_time(),
            deleted: false,
            open_count: 0,
            notify: Vec::new(),
            link: None,
            sd: None,
        });
        let id = self.keys.len() - 1;
        self.keys[parent].subkeys.push(id);
        id
    }

    /// Fires notifications on `k` and (subtree watchers) its ancestors.
    fn changed(&mut self, k: usize, filter: u32) -> Vec<u32> {
        self.keys[k].last_write_time = crate::ke::clock::ke_query_system_time();
        let mut events = Vec::new();
        let mut cur = Some(k);
        let mut direct = true;
        while let Some(c) = cur {
            let key = &mut self.keys[c];
            key.notify.retain(|&(f, subtree, ev)| {
                if f & filter != 0 && (direct || subtree) {
                    events.push(ev);
                    false
                } else {
                    true
                }
            });
            direct = false;
            cur = key.parent;
        }
        events
    }
}

/// The SYSTEM hive as a regf hive bound to its files (`CMHIVE` +
/// `HvSyncHive`): changes to stable SYSTEM keys are written through to it,
/// and flushes go log-first into the files. Until the I/O manager can write
/// `\Windows\System32\config\SYSTEM`, the files are in memory.
pub struct SystemHive {
    pub logged: regf::log::LoggedHive,
    pub files: regf::log::MemFiles,
    pub dirty: bool,
    pub flushes: u64,
}

pub static SYSTEM_HIVE: SpinLocked<Option<SystemHive>, DISPATCH_LEVEL> = SpinLocked::new(None);

/// The SYSTEM mount point's key id (set when the hive is mounted).
static SYSTEM_KEY: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(usize::MAX);

/// The path of key `k` inside the SYSTEM hive, if it is a stable key there.
fn system_relative(r: &Registry, k: usize) -> Option<String> {
    let mount = SYSTEM_KEY.load(core::sync::atomic::Ordering::Relaxed);
    let mut parts = Vec::new();
    let mut cur = k;
    loop {
        if cur == mount {
            parts.reverse();
            return Some(parts.join("\\"));
        }
        let key = &r.keys[cur];
        if key.volatile {
            return None;
        }
        parts.push(key.name.clone());
        cur = key.parent?;
    }
}

/// Applies a change to the SYSTEM hive (write-through) and marks it dirty.
fn hive_write(f: impl FnOnce(&mut regf::Hive) -> regf::Result<()>) {
    SYSTEM_HIVE.with(|h| {
        if let Some(h) = h.as_mut() {
            // A key the in-memory tree has but the hive lacks (or a full
            // hive) leaves the hive as it was; the tree stays authoritative.
            if f(&mut h.logged.hive).is_ok() {
                h.dirty = true;
            }
        }
    });
}

/// `HvSyncHive` for the SYSTEM hive: log first, then the primary.
pub fn flush_system_hive() -> NtStatus {
    SYSTEM_HIVE.with(|h| match h.as_mut() {
        Some(h) if h.dirty => match h.logged.flush(&mut h.files) {
            Ok(()) => {
                h.dirty = false;
                h.flushes += 1;
                STATUS_SUCCESS
            }
            Err(e) => e.status(),
        },
        _ => STATUS_SUCCESS,
    })
}

static LAZY_TIMER: crate::ke::timer::KTimer = crate::ke::timer::KTimer::new();
static LAZY_DPC: crate::ke::dpc::KDpc = crate::ke::dpc::KDpc::new(
    |_, _, _, _| {
        crate::ex::worker::ex_queue_work_item(
            crate::ex::worker::WorkQueueItem {
                routine: |_| {
                    flush_system_hive();
                },
                parameter: 0,
            },
            crate::ex::worker::WorkQueueType::DelayedWorkQueue,
        );
    },
    0,
);

/// The registry (`CmpRegistryLock`-style single lock).
pub static REGISTRY: SpinLocked<Option<Registry>, DISPATCH_LEVEL> = SpinLocked::new(None);

fn with_reg<R>(f: impl FnOnce(&mut Registry) -> R) -> Result<R, NtStatus> {
    let _tag = crate::ex::pool::PoolTag::enter_paged(*b"CMkb");
    REGISTRY
        .with(|r| r.as_mut().map(f))
        .ok_or(STATUS_UNSUCCESSFUL)
}

const ROOT: usize = 0;

/// `CmKeyObjectType`.
pub static CM_KEY_OBJECT_TYPE: crate::ob::types::ObjectTypeRef =
    crate::ob::types::ObjectTypeRef::new();

/// The key object's body: the key it refers to.
fn key_of(
    handle: u64,
    desired: u32,
    mode: Mode,
) -> Result<(crate::ob::handle::ObjectRef, usize), NtStatus> {
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
    let deleted = with_reg(|reg| reg.keys.get(k).is_none_or(|x| x.deleted))?;
    if deleted {
        return Err(STATUS_KEY_DELETED);
    }
    Ok((r, k))
}

/// A new unnamed key object for key `k`, referenced once.
fn key_object(k: usize) -> Result<::ob::namespace::ObjectId, NtStatus> {
    let (id, _) = ob_create_object(CreateSpec {
        object_type: &CM_KEY_OBJECT_TYPE,
        name: None,
        attributes: 0,
        body: ObjectBody::Key(k),
        sd: None,
    })?;
    with_reg(|r| r.keys[k].open_count += 1)?;
    Ok(id)
}

/// The Key type's parse procedure (`CmpParseKey`): the object manager
/// reached `\REGISTRY`; the rest of the path names a key.
fn parse_key(
    _object: ::ob::namespace::ObjectId,
    remaining: &str,
    ctx: &crate::ob::types::ParseContext,
) -> Result<(::ob::namespace::ObjectId, u32), NtStatus> {
    let (k, sd) = with_reg(|r| r.walk(ROOT, remaining).map(|k| (k, r.keys[k].sd.clone())))??;
    // Key security (`CmpCheckKeyAccess` through `SeAccessCheck`).
    let sd = match sd {
        Some(b) => {
            Some(security::sd::SecurityDescriptor::parse(&b).map_err(|_| STATUS_REGISTRY_CORRUPT)?)
        }
        None => None,
    };
    let granted = ob_check_object_access(
        sd.as_ref(),
        &CM_KEY_OBJECT_TYPE,
        ctx.desired,
        ctx.mode,
        ctx.attributes,
        ctx.token,
    )?;
    Ok((key_object(k)?, granted))
}

/// Sets a key's security descriptor (`NtSetSecurityObject` on a key).
pub fn set_key_security(path: &str, sd: &security::sd::SecurityDescriptor) -> NtStatus {
    let Ok(rel) = below_root(path) else {
        return STATUS_OBJECT_PATH_SYNTAX_BAD;
    };
    let bytes = sd.to_bytes();
    match with_reg(|r| r.walk(ROOT, rel).map(|k| r.keys[k].sd = Some(bytes))) {
        Ok(Ok(())) => STATUS_SUCCESS,
        Ok(Err(e)) | Err(e) => e,
    }
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

/// `CmInitSystem1`: the `\REGISTRY` root object, `MACHINE`, `USER`, the
/// empty `SYSTEM`/`SOFTWARE` (until hives load), and the volatile
/// `HARDWARE\DESCRIPTION` tree from CPUID and the processor count.
pub fn cm_initialize() -> Result<(), NtStatus> {
    let _tag = crate::ex::pool::PoolTag::enter_paged(*b"CMhv");
    let mut reg = Registry {
        keys: alloc::vec![Key {
            name: "REGISTRY".into(),
            parent: None,
            subkeys: Vec::new(),
            values: Vec::new(),
            volatile: true,
            last_write_time: crate::ke::clock::ke_query_system_time(),
            deleted: false,
            open_count: 0,
            notify: Vec::new(),
            link: None,
            sd: None,
        }],
        hives: Vec::new(),
    };
    let machine = reg.add(ROOT, "MACHINE", true);
    reg.add(ROOT, "USER", true);
    let system_key = reg.add(machine, "SYSTEM", false);
    let software_key = reg.add(machine, "SOFTWARE", false);
    load_system_hive(&mut reg, system_key);
    load_software_hive(&mut reg, software_key);
    let hw = reg.add(machine, "HARDWARE", true);
    let desc = reg.add(hw, "DESCRIPTION", true);
    let system = reg.add(desc, "System", true);
    reg.keys[system].values.push(Value {
        name: "Identifier".into(),
        value_type: REG_SZ,
        data: regf::utf16z("AT/AT COMPATIBLE"),
    });
    let cpus = reg.add(system, "CentralProcessor", true);
    let brand = cpu_brand();
    let mhz = (crate::rtl::loader_block().tsc_frequency / 1_000_000) as u32;
    for n in 0..crate::ke::processor_count() {
        let c = reg.add(cpus, &alloc::format!("{n}"), true);
        reg.keys[c].values.push(Value {
            name: "ProcessorNameString".into(),
            value_type: REG_SZ,
            data: regf::utf16z(&brand),
        });
        reg.keys[c].values.push(Value {
            name: "~MHz".into(),
            value_type: REG_DWORD,
            data: mhz.to_le_bytes().to_vec(),
        });
    }
    reg.add(hw, "DEVICEMAP", true);
    reg.add(hw, "RESOURCEMAP", true);
    REGISTRY.with(|r| *r = Some(reg));
    // The key type's parse procedure and the \REGISTRY object.
    crate::ob::types::ob_create_object_type(
        "Key",
        crate::ob::types::TypeInitializer {
            generic_mapping: security::access::GenericMapping::KEY,
            parse: Some(parse_key),
            close: Some(|id, _| {
                if let Some(Some(k)) = with_body(id, |b| match b.body {
                    ObjectBody::Key(k) => Some(k),
                    _ => None,
                }) {
                    let _ =
                        with_reg(|r| r.keys[k].open_count = r.keys[k].open_count.saturating_sub(1));
                }
            }),
            ..Default::default()
        },
        &CM_KEY_OBJECT_TYPE,
    )?;
    ob_create_object(CreateSpec {
        object_type: &CM_KEY_OBJECT_TYPE,
        name: Some("\\REGISTRY"),
        attributes: ::ob::OBJ_PERMANENT,
        body: ObjectBody::Key(ROOT),
        sd: None,
    })?;
    // CmpLazyFlush: every 5 seconds a dirty SYSTEM hive is flushed by a worker.
    crate::ke::timer::ke_set_timer_ex(&LAZY_TIMER, -50_000_000, 5000, Some(&LAZY_DPC));
    Ok(())
}

/// Copies a hive's keys, values and security under key `into`.
fn copy_hive_into(reg: &mut Registry, hive: &regf::Hive, into: usize) {
    let mut stack = alloc::vec![(hive.root(), into)];
    while let Some((hk, rk)) = stack.pop() {
        if let Ok(values) = hive.enum_values(hk) {
            reg.keys[rk].values = values
                .into_iter()
                .map(|v| Value {
                    name: v.name,
                    value_type: v.ty,
                    data: v.data,
                })
                .collect();
        }
        if let Ok(subs) = hive.enum_subkeys(hk) {
            for s in subs {
                if let Ok(name) = hive.key_name(s) {
                    let child = reg.add(rk, &name, false);
                    reg.keys[child].sd = hive.key_security(s).ok().filter(|b| !b.is_empty());
                    stack.push((s, child));
                }
            }
        }
    }
}

/// Mounts the SOFTWARE hive the loader handed over at `\\REGISTRY\\MACHINE\\SOFTWARE`
/// (read-only mount: changes stay in memory).
fn load_software_hive(reg: &mut Registry, software_key: usize) {
    let lb = crate::rtl::loader_block();
    if lb.software_hive_base == 0 || lb.software_hive_length == 0 {
        return;
    }
    // SAFETY: as for the SYSTEM hive (RegistryData pages, direct map).
    let bytes = unsafe {
        core::slice::from_raw_parts(
            lb.software_hive_base as *const u8,
            lb.software_hive_length as usize,
        )
    };
    match regf::Hive::from_bytes(bytes) {
        Ok(h) => {
            copy_hive_into(reg, &h, software_key);
            reg.hives.push((
                software_key,
                String::from("\\SystemRoot\\System32\\Config\\SOFTWARE"),
                bytes.len(),
            ));
        }
        Err(e) => crate::dbg_println!("cm: the SOFTWARE hive is unusable ({e})"),
    }
}

/// `CmpInitializeSystemHive` + `CmpCreateControlSet`: the SYSTEM hive the
/// loader handed over (`LoaderBlock->RegistryBase`) is copied under
/// `\REGISTRY\MACHINE\SYSTEM`, and the volatile `CurrentControlSet` link is
/// created to the control set `Select\Current` names. A missing or corrupt
/// hive leaves SYSTEM empty (and says why on the debug port).
fn load_system_hive(reg: &mut Registry, system_key: usize) {
    let lb = crate::rtl::loader_block();
    if lb.registry_base == 0 || lb.registry_length == 0 {
        return;
    }
    // SAFETY: winload copied the hive into RegistryData pages, reachable
    // through the direct map for the whole boot.
    let bytes = unsafe {
        core::slice::from_raw_parts(lb.registry_base as *const u8, lb.registry_length as usize)
    };
    let hive = match regf::Hive::from_bytes(bytes) {
        Ok(h) => h,
        Err(e) => {
            crate::dbg_println!("cm: the SYSTEM hive is unusable ({e}); SYSTEM stays empty");
            return;
        }
    };
    copy_hive_into(reg, &hive, system_key);
    reg.hives.push((
        system_key,
        String::from("\\SystemRoot\\System32\\Config\\SYSTEM"),
        bytes.len(),
    ));
    SYSTEM_KEY.store(system_key, core::sync::atomic::Ordering::Relaxed);
    // CurrentControlSet -> ControlSet00n.
    let current = reg
        .walk(system_key, "Select")
        .ok()
        .and_then(|s| {
            reg.keys[s]
                .values
                .iter()
                .find(|v| v.name.eq_ignore_ascii_case("Current"))
                .cloned()
        })
        .and_then(|v| {
            v.data
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        });
    if let Some(n) = current {
        let name = alloc::format!("ControlSet{n:03}");
        if let Ok(target) = reg.walk(system_key, &name) {
            let link = reg.add(system_key, "CurrentControlSet", true);
            reg.keys[link].link = Some(target);
            reg.keys[link].values.push(Value {
                name: "SymbolicLinkValue".into(),
                value_type: REG_LINK,
                // REG_LINK data has no terminating NUL.
                data: alloc::format!("\\REGISTRY\\MACHINE\\SYSTEM\\{name}")
                    .encode_utf16()
                    .flat_map(|c| c.to_le_bytes())
                    .collect(),
            });
        }
    }
    let mut files = regf::log::MemFiles::default();
    match regf::log::LoggedHive::create(&mut files, hive) {
        Ok(logged) => SYSTEM_HIVE.with(|h| {
            *h = Some(SystemHive {
                logged,
                files,
                dirty: false,
                flushes: 0,
            })
        }),
        Err(e) => crate::dbg_println!("cm: the SYSTEM hive cannot be bound to its files ({e})"),
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

/// Splits `\REGISTRY\...` into the path below the root.
fn below_root(path: &str) -> Result<&str, NtStatus> {
    let p = path.trim_start_matches('\\');
    let (first, rest) = p.split_once('\\').unwrap_or((p, ""));
    if !first.eq_ignore_ascii_case("REGISTRY") {
        return Err(STATUS_OBJECT_PATH_SYNTAX_BAD);
    }
    Ok(rest)
}

/// `NtCreateKey`: opens or creates the key; returns the handle and the
/// disposition. The parent must exist (STATUS_OBJECT_NAME_NOT_FOUND), and a
/// stable key cannot go under a volatile one (STATUS_CHILD_MUST_BE_VOLATILE).
pub fn nt_create_key(
    path: &str,
    desired: u32,
    options: u32,
    mode: Mode,
) -> Result<(u64, u32), NtStatus> {
    let rel = below_root(path)?;
    let (parent_path, name) = rel.rsplit_once('\\').unwrap_or(("", rel));
    if name.is_empty() {
        return Err(STATUS_OBJECT_NAME_INVALID);
    }
    let volatile = options & REG_OPTION_VOLATILE != 0;
    let (k, disposition, events) = with_reg(|r| {
        let parent = r
            .walk(ROOT, parent_path)
            .map_err(|_| STATUS_OBJECT_NAME_NOT_FOUND)?;
        if let Some(k) = r.child(parent, name) {
            return Ok((k, REG_OPENED_EXISTING_KEY, Vec::new()));
        }
        if r.keys[parent].volatile && !volatile && parent != ROOT {
            return Err(STATUS_CHILD_MUST_BE_VOLATILE);
        }
        let k = r.add(parent, name, volatile);
        if let Some(rel) = system_relative(r, k) {
            hive_write(|h| h.create_key_path(&rel).map(|_| ()));
        }
        let ev = r.changed(parent, REG_NOTIFY_CHANGE_NAME);
        Ok((k, REG_CREATED_NEW_KEY, ev))
    })??;
    signal(events);
    let id = key_object(k)?;
    let h = crate::ob::handle::ob_insert_object_handle(id, desired, 0, mode)?;
    Ok((h, disposition))
}

/// `NtOpenKey` (through the object manager and the key parse procedure).
pub fn nt_open_key(path: &str, desired: u32, mode: Mode) -> Result<u64, NtStatus> {
    let subject = crate::se::se_capture_subject_context();
    nt_open_key_as(path, desired, mode, subject.effective_token())
}

fn signal(events: Vec<u32>) {
    for e in events {
        crate::ke::wait::with_db(|st| {
            let _ = st
                .db
                .set_event(::ke::objects::ObjectId(e), 1, &mut st.unwaits);
        });
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
    let events = with_reg(|r| {
        if let Some(rel) = system_relative(r, k) {
            hive_write(|h| {
                let hk = h.open_key(&rel)?;
                h.set_value(hk, name, value_type, data)
            });
        }
        let key = &mut r.keys[k];
        match key
            .values
            .iter_mut()
            .find(|v| v.name.eq_ignore_ascii_case(name))
        {
            Some(v) => {
                v.value_type = value_type;
                v.data = data.to_vec();
            }
            None => key.values.push(Value {
                name: name.into(),
                value_type,
                data: data.to_vec(),
            }),
        }
        r.changed(k, REG_NOTIFY_CHANGE_LAST_SET)
    });
    match events {
        Ok(ev) => {
            signal(ev);
            STATUS_SUCCESS
        }
        Err(e) => e,
    }
}

/// `NtQueryValueKey(KeyValuePartialInformation)`: (type, data).
pub fn nt_query_value_key(handle: u64, name: &str, mode: Mode) -> Result<(u32, Vec<u8>), NtStatus> {
    let (_r, k) = key_of(handle, KEY_QUERY_VALUE, mode)?;
    with_reg(|r| {
        r.keys[k]
            .values
            .iter()
            .find(|v| v.name.eq_ignore_ascii_case(name))
            .map(|v| (v.value_type, v.data.clone()))
            .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)
    })?
}

/// `NtDeleteValueKey`.
pub fn nt_delete_value_key(handle: u64, name: &str, mode: Mode) -> NtStatus {
    let (_r, k) = match key_of(handle, KEY_SET_VALUE, mode) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let r = with_reg(|r| {
        if let Some(rel) = system_relative(r, k) {
            hive_write(|h| {
                let hk = h.open_key(&rel)?;
                h.delete_value(hk, name)
            });
        }
        let before = r.keys[k].values.len();
        r.keys[k]
            .values
            .retain(|v| !v.name.eq_ignore_ascii_case(name));
        if r.keys[k].values.len() == before {
            Err(STATUS_OBJECT_NAME_NOT_FOUND)
        } else {
            Ok(r.changed(k, REG_NOTIFY_CHANGE_LAST_SET))
        }
    });
    match r {
        Ok(Ok(ev)) => {
            signal(ev);
            STATUS_SUCCESS
        }
        Ok(Err(e)) | Err(e) => e,
    }
}

/// `NtEnumerateKey(KeyBasicInformation)`: the name of subkey `index`, in
/// name order; STATUS_NO_MORE_ENTRIES past the end.
pub fn nt_enumerate_key(handle: u64, index: u32, mode: Mode) -> Result<String, NtStatus> {
    let (_r, k) = key_of(handle, KEY_ENUMERATE_SUB_KEYS, mode)?;
    with_reg(|r| {
        let mut names: Vec<String> = r.keys[k]
            .subkeys
            .iter()
            .filter(|&&c| !r.keys[c].deleted)
            .map(|&c| r.keys[c].name.clone())
            .collect();
        names.sort_by_key(|n| n.to_uppercase());
        names
            .get(index as usize)
            .cloned()
            .ok_or(STATUS_NO_MORE_ENTRIES)
    })?
}

/// `NtEnumerateValueKey(KeyValueFullInformation)`: value `index`.
pub fn nt_enumerate_value_key(handle: u64, index: u32, mode: Mode) -> Result<Value, NtStatus> {
    let (_r, k) = key_of(handle, KEY_QUERY_VALUE, mode)?;
    with_reg(|r| {
        r.keys[k]
            .values
            .get(index as usize)
            .cloned()
            .ok_or(STATUS_NO_MORE_ENTRIES)
    })?
}

/// `KEY_FULL_INFORMATION` essentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInformation {
    pub name: String,
    pub last_write_time: u64,
    pub subkeys: u32,
    pub values: u32,
    pub volatile: bool,
}

/// `NtQueryKey(KeyFullInformation)`.
pub fn nt_query_key(handle: u64, mode: Mode) -> Result<KeyInformation, NtStatus> {
    let (_r, k) = key_of(handle, KEY_QUERY_VALUE, mode)?;
    with_reg(|r| {
        let key = &r.keys[k];
        KeyInformation {
            name: key.name.clone(),
            last_write_time: key.last_write_time,
            subkeys: key.subkeys.iter().filter(|&&c| !r.keys[c].deleted).count() as u32,
            values: key.values.len() as u32,
            volatile: key.volatile,
        }
    })
}

/// `NtDeleteKey`: STATUS_CANNOT_DELETE while it has subkeys or for the
/// predefined roots; open handles then see STATUS_KEY_DELETED.
pub fn nt_delete_key(handle: u64, mode: Mode) -> NtStatus {
    let (_r, k) = match key_of(handle, 0x0001_0000, mode) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let r = with_reg(|r| {
        if k == ROOT
            || r.keys[k].parent == Some(ROOT)
            || r.keys[k].subkeys.iter().any(|&c| !r.keys[c].deleted)
        {
            return Err(STATUS_CANNOT_DELETE);
        }
        if let Some(rel) = system_relative(r, k) {
            hive_write(|h| {
                let hk = h.open_key(&rel)?;
                h.delete_key(hk)
            });
        }
        r.keys[k].deleted = true;
        let parent = r.keys[k].parent.unwrap_or(ROOT);
        Ok(r.changed(parent, REG_NOTIFY_CHANGE_NAME))
    });
    match r {
        Ok(Ok(ev)) => {
            signal(ev);
            STATUS_SUCCESS
        }
        Ok(Err(e)) | Err(e) => e,
    }
}

/// `NtFlushKey`: a key of the SYSTEM hive flushes the hive now (log first,
/// then the primary); other keys are volatile or not backed by a file.
pub fn nt_flush_key(handle: u64, mode: Mode) -> NtStatus {
    let (_r, k) = match key_of(handle, 0, mode) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let in_system = with_reg(|r| system_relative(r, k).is_some()).unwrap_or(false);
    if in_system {
        flush_system_hive()
    } else {
        STATUS_SUCCESS
    }
}

/// `NtNotifyChangeKey` with an event: the event is set when the key (or,
/// with `watch_tree`, anything below it) changes as `filter` asks.
pub fn nt_notify_change_key(
    handle: u64,
    event: &crate::ke::wait::KEvent,
    filter: u32,
    watch_tree: bool,
    mode: Mode,
) -> NtStatus {
    let (_r, k) = match key_of(handle, KEY_NOTIFY, mode) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let id = crate::ke::wait::with_db(|st| crate::ke::wait::Waitable::object_id(event, st));
    match with_reg(|r| r.keys[k].notify.push((filter, watch_tree, id.0))) {
        Ok(()) => STATUS_PENDING,
        Err(e) => e,
    }
}
