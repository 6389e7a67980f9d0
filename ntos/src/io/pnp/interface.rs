//! Device interfaces and interface-change notifications (*Windows
//! Internals* 7th ed., Part 1, ch. 6, "Plug and Play": device interfaces,
//! "PnP notifications"): `IoRegisterDeviceInterface`,
//! `IoSetDeviceInterfaceState`, `IoGetDeviceInterfaces`,
//! `IoRegisterPlugPlayNotification(EventCategoryDeviceInterfaceChange)`,
//! `IoUnregisterPlugPlayNotification(Ex)`.
//!
//! An interface of class `{c}` on a PDO whose device instance path is
//! `A\B\C` (the device node's, or for a PDO without a device node what its
//! bus driver answers to `IRP_MN_QUERY_ID`) is named `A#B#C#{c}` (plus
//! `\<reference string>`), as Windows names it; the driver receives
//! `\??\A#B#C#{c}`. Registering writes `Control\DeviceClasses\{c}\##?#A#B#C#{c}`
//! (`DeviceInstance`) and its `#[<reference string>]` subkey (`SymbolicLink`
//! = `\\?\A#B#C#{c}`). Enabling creates `\GLOBAL??\A#B#C#{c}` → the PDO's
//! name, sets the volatile `#\Control` `Linked` = 1, and calls every
//! driver registered for the class with `GUID_DEVICE_INTERFACE_ARRIVAL`;
//! disabling undoes that and reports `GUID_DEVICE_INTERFACE_REMOVAL`.
//!
//! Differences from Windows: callbacks run synchronously in the thread
//! that enabled or disabled the interface (and, for
//! `PNPNOTIFY_DEVICE_INTERFACE_INCLUDE_EXISTING_INTERFACES`, in the
//! registering thread before `IoRegisterPlugPlayNotification` returns),
//! not from the PnP manager's notification worker; the callers are at
//! `PASSIVE_LEVEL` in both. Only `EventCategoryDeviceInterfaceChange` is
//! implemented (the other categories are `STATUS_NOT_IMPLEMENTED`).
#![allow(non_snake_case)]

use super::devices::query_ids;
use crate::cm::*;
use crate::io::{object_of, unicode_to_string, IoKind};
use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use crate::ob::handle::nt_close;
use crate::ob::object::Mode;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_void;
use nt::status::*;
use nt::NtStatus;
use wdk::disk::GUID;
use wdk::pnpnotify::*;
use wdk::*;

const K: Mode = Mode::KernelMode;
/// Where interface classes are recorded.
pub const DEVICE_CLASSES: &str =
    "\\Registry\\Machine\\System\\CurrentControlSet\\Control\\DeviceClasses";

/// A registered interface.
#[derive(Clone)]
struct Interface {
    class: GUID,
    /// `A#B#C#{c}` (no reference string): the `\GLOBAL??` leaf.
    base: String,
    /// `\<reference string>` or empty.
    reference: String,
    /// The PDO (address) and its name.
    pdo: u64,
    target: String,
    enabled: bool,
}

impl Interface {
    /// The name drivers see: `\??\A#B#C#{c}[\ref]`.
    fn name(&self) -> String {
        format!("\\??\\{}{}", self.base, self.reference)
    }
}

/// A driver's registration for interface changes of one class.
#[derive(Clone, Copy)]
struct Registration {
    /// The opaque `NotificationEntry` handed to the driver (a pool block).
    entry: u64,
    class: GUID,
    callback: DRIVER_NOTIFICATION_CALLBACK_ROUTINE,
    context: u64,
    driver: u64,
}

static INTERFACES: SpinLocked<Vec<Interface>, DISPATCH_LEVEL> = SpinLocked::new(Vec::new());
static REGISTRATIONS: SpinLocked<Vec<Registration>, DISPATCH_LEVEL> = SpinLocked::new(Vec::new());

const TAG_NOTIFY: u32 = u32::from_le_bytes(*b"PnpN");
const TAG_LIST: u32 = u32::from_le_bytes(*b"PnpL");

/// `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}` in lower case, as Windows
/// writes interface class GUIDs in names and keys.
pub fn guid_string(g: &GUID) -> String {
    let d = &g.Data4;
    format!(
        "{{{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}}}",
        g.Data1, g.Data2, g.Data3, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
    )
}

/// The device instance path of a PDO: its device node's, or, for a PDO a
/// bus driver reported without a device node (volmgr's volumes), the bus
/// driver's `IRP_MN_QUERY_ID` answers `<device ID>\<instance ID>`.
fn instance_path_of(pdo: *mut DEVICE_OBJECT) -> Result<String, NtStatus> {
    if let Some(n) = super::device_tree().and_then(|t| t.by_pdo(pdo as u64)) {
        return Ok(n.instance_path.clone());
    }
    // SAFETY: the caller checked that `pdo` is a live device object.
    let (dev, inst) = unsafe {
        (
            query_ids(pdo, BUS_QUERY_DEVICE_ID),
            query_ids(pdo, BUS_QUERY_INSTANCE_ID),
        )
    };
    match (dev, inst) {
        (Some(d), Some(i)) if d.len() == 1 && i.len() == 1 && !d[0].is_empty() => {
            Ok(format!("{}\\{}", d[0], i[0]))
        }
        _ => Err(STATUS_INVALID_DEVICE_REQUEST),
    }
}

/// Creates `path` and every missing key above it below `DEVICE_CLASSES`'s
/// parent; returns a handle to it.
fn create_path(path: &str, volatile_leaf: bool) -> Result<u64, NtStatus> {
    let rel = path
        .strip_prefix("\\Registry\\Machine\\System\\CurrentControlSet\\Control")
        .ok_or(STATUS_OBJECT_PATH_SYNTAX_BAD)?;
    let mut at = String::from("\\Registry\\Machine\\System\\CurrentControlSet\\Control");
    let parts: Vec<&str> = rel.split('\\').filter(|p| !p.is_empty()).collect();
    let mut h = nt_create_key(&at, KEY_ALL_ACCESS, 0, K)?.0;
    for (i, part) in parts.iter().enumerate() {
        at.push('\\');
        at.push_str(part);
        nt_close(h);
        let opts = if volatile_leaf && i + 1 == parts.len() {
            REG_OPTION_VOLATILE
        } else {
            0
        };
        h = nt_create_key(&at, KEY_ALL_ACCESS, opts, K)?.0;
    }
    Ok(h)
}

fn reg_sz(s: &str) -> Vec<u8> {
    super::registry::reg_sz(s)
}

/// The interface's key: `DeviceClasses\{c}\##?#A#B#C#{c}`.
fn interface_key(i: &Interface) -> String {
    format!(
        "{DEVICE_CLASSES}\\{}\\##?#{}",
        guid_string(&i.class),
        i.base
    )
}

/// `#` + the reference string (without its backslash).
fn reference_key(i: &Interface) -> String {
    format!("#{}", i.reference.trim_start_matches('\\'))
}

/// `IoRegisterDeviceInterface`: registers (or finds) the interface of
/// class `class` on `pdo` and returns its name (`\??\...`).
///
/// # Safety
/// `pdo` is a device object pointer (checked against the live ones).
pub unsafe fn io_register_device_interface(
    pdo: *mut DEVICE_OBJECT,
    class: &GUID,
    reference: Option<&str>,
) -> Result<String, NtStatus> {
    let id = object_of(pdo as u64, IoKind::Device).ok_or(STATUS_INVALID_DEVICE_REQUEST)?;
    // SAFETY: a live device object (found in the I/O object table).
    if unsafe { (*pdo).Flags } & DO_BUS_ENUMERATED_DEVICE == 0 {
        // Interfaces belong to PDOs (Windows bug checks for anything else).
        return Err(STATUS_INVALID_DEVICE_REQUEST);
    }
    let target = crate::ob::ob_query_name_string(id);
    if target.is_empty() {
        return Err(STATUS_INVALID_DEVICE_REQUEST);
    }
    if reference.is_some_and(|r| r.contains('\\') || r.contains('/')) {
        return Err(STATUS_INVALID_DEVICE_REQUEST);
    }
    let instance = instance_path_of(pdo)?;
    let base = format!("{}#{}", instance.replace('\\', "#"), guid_string(class));
    let i = Interface {
        class: *class,
        base,
        reference: reference
            .filter(|r| !r.is_empty())
            .map(|r| format!("\\{r}"))
            .unwrap_or_default(),
        pdo: pdo as u64,
        target,
        enabled: false,
    };
    let name = i.name();
    // The registry: DeviceInstance and the reference string's SymbolicLink.
    let key = interface_key(&i);
    let h = create_path(&key, false)?;
    let s = nt_set_value_key(h, "DeviceInstance", REG_SZ, &reg_sz(&instance), K);
    nt_close(h);
    if s != STATUS_SUCCESS {
        return Err(s);
    }
    let h = create_path(&format!("{key}\\{}", reference_key(&i)), false)?;
    let link = format!("\\\\?\\{}{}", i.base, i.reference);
    let s = nt_set_value_key(h, "SymbolicLink", REG_SZ, &reg_sz(&link), K);
    nt_close(h);
    if s != STATUS_SUCCESS {
        return Err(s);
    }
    INTERFACES.with(|v| {
        if !v.iter().any(|x| x.name().eq_ignore_ascii_case(&name)) {
            v.push(i);
        }
    });
    Ok(name)
}

/// The interface a `\??\...` (or `\\?\...`) name denotes.
fn find(name: &str) -> Option<Interface> {
    let rest = name
        .strip_prefix("\\??\\")
        .or_else(|| name.strip_prefix("\\\\?\\"))?;
    INTERFACES.with(|v| {
        v.iter()
            .find(|x| format!("{}{}", x.base, x.reference).eq_ignore_ascii_case(rest))
            .cloned()
    })
}

fn set_linked(i: &Interface, linked: bool) -> NtStatus {
    let key = format!("{}\\{}\\Control", interface_key(i), reference_key(i));
    match create_path(&key, true) {
        Ok(h) => {
            let s = nt_set_value_key(h, "Linked", REG_DWORD, &(linked as u32).to_le_bytes(), K);
            nt_close(h);
            s
        }
        Err(s) => s,
    }
}

/// Calls `r`'s callback for interface `name` of `class` with `event`.
fn deliver(r: &Registration, event: &GUID, class: &GUID, name: &str) {
    let Ok(mut u) = crate::io::alloc_unicode(name) else {
        crate::dbg_println!("PnP: no memory for an interface notification of {name}");
        return;
    };
    let mut n = DEVICE_INTERFACE_CHANGE_NOTIFICATION {
        Version: 1,
        Size: core::mem::size_of::<DEVICE_INTERFACE_CHANGE_NOTIFICATION>() as u16,
        Event: *event,
        InterfaceClassGuid: *class,
        SymbolicLinkName: &mut u,
    };
    // SAFETY: a driver's registered callback with its own context and a
    // notification structure that lives across the call.
    unsafe { (r.callback)((&raw mut n).cast(), r.context as *mut c_void) };
    crate::io::free_unicode(&mut u);
}

/// Calls every registration of `class` (snapshot taken outside the lock,
/// so callbacks may register, enable or query interfaces themselves).
fn notify_all(event: &GUID, class: &GUID, name: &str) {
    let regs: Vec<Registration> =
        REGISTRATIONS.with(|v| v.iter().filter(|r| r.class == *class).copied().collect());
    for r in &regs {
        // Skip one that was unregistered by an earlier callback.
        if REGISTRATIONS.with(|v| v.iter().any(|x| x.entry == r.entry)) {
            deliver(r, event, class, name);
        }
    }
}

/// `IoSetDeviceInterfaceState`.
pub fn io_set_device_interface_state(name: &str, enable: bool) -> NtStatus {
    let Some(i) = find(name) else {
        return STATUS_OBJECT_NAME_NOT_FOUND;
    };
    let link = format!("\\GLOBAL??\\{}", i.base);
    if enable {
        if i.enabled {
            return STATUS_OBJECT_NAME_EXISTS;
        }
        // Several reference strings of one PDO share the link.
        let shared = INTERFACES.with(|v| v.iter().any(|x| x.enabled && x.base == i.base));
        if !shared {
            if let Err(s) = crate::io::device::io_create_symbolic_link(&link, &i.target) {
                return s;
            }
        }
    } else if !i.enabled {
        return STATUS_OBJECT_NAME_NOT_FOUND;
    }
    INTERFACES.with(|v| {
        if let Some(x) = v.iter_mut().find(|x| x.name() == i.name()) {
            x.enabled = enable;
        }
    });
    if !enable {
        let shared = INTERFACES.with(|v| v.iter().any(|x| x.enabled && x.base == i.base));
        if !shared {
            let _ = crate::io::device::io_delete_symbolic_link(&link);
        }
    }
    let s = set_linked(&i, enable);
    if s != STATUS_SUCCESS {
        crate::dbg_println!("PnP: cannot record the state of {}: {s:?}", i.name());
    }
    let event = if enable {
        GUID_DEVICE_INTERFACE_ARRIVAL
    } else {
        GUID_DEVICE_INTERFACE_REMOVAL
    };
    notify_all(&event, &i.class, &i.name());
    STATUS_SUCCESS
}

/// `IoGetDeviceInterfaces`: the names of the class's interfaces (enabled
/// ones unless `DEVICE_INTERFACE_INCLUDE_NONACTIVE`), of `pdo` only when
/// it is not null.
pub fn io_get_device_interfaces(class: &GUID, pdo: u64, flags: u32) -> Vec<String> {
    INTERFACES.with(|v| {
        v.iter()
            .filter(|x| x.class == *class)
            .filter(|x| pdo == 0 || x.pdo == pdo)
            .filter(|x| x.enabled || flags & DEVICE_INTERFACE_INCLUDE_NONACTIVE != 0)
            .map(|x| x.name())
            .collect()
    })
}

/// `IoRegisterPlugPlayNotification` for `EventCategoryDeviceInterfaceChange`:
/// returns the notification entry. With
/// `PNPNOTIFY_DEVICE_INTERFACE_INCLUDE_EXISTING_INTERFACES` the callback
/// runs for each enabled interface of the class before this returns. The
/// driver object stays referenced until the registration is removed.
///
/// # Safety
/// `driver` is a driver object pointer (checked against the live ones);
/// `callback` is callable with `context` until unregistered.
pub unsafe fn io_register_plug_play_notification(
    category: u32,
    flags: u32,
    class: &GUID,
    driver: *mut DRIVER_OBJECT,
    callback: DRIVER_NOTIFICATION_CALLBACK_ROUTINE,
    context: u64,
    entry_out: &mut u64,
) -> NtStatus {
    if category != EventCategoryDeviceInterfaceChange {
        return STATUS_NOT_IMPLEMENTED;
    }
    let Some(did) = object_of(driver as u64, IoKind::Driver) else {
        return STATUS_INVALID_PARAMETER;
    };
    let Ok(entry) =
        crate::ex::xpool::allocate(::mm::pool::PoolType::NonPaged, 16, TAG_NOTIFY, true)
    else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    let _ = crate::ob::object::ob_reference_object(did);
    let r = Registration {
        entry,
        class: *class,
        callback,
        context,
        driver: driver as u64,
    };
    // Existing interfaces first (snapshot before this registration is
    // visible, so an interface enabled meanwhile is reported once).
    let existing = if flags & PNPNOTIFY_DEVICE_INTERFACE_INCLUDE_EXISTING_INTERFACES != 0 {
        io_get_device_interfaces(class, 0, 0)
    } else {
        Vec::new()
    };
    let pushed = REGISTRATIONS.with(|v| {
        v.try_reserve(1)?;
        v.push(r);
        Ok::<(), alloc::collections::TryReserveError>(())
    });
    if pushed.is_err() {
        crate::ob::object::ob_dereference_object(did);
        let _ = crate::ex::xpool::free(entry, TAG_NOTIFY);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    *entry_out = entry;
    for name in existing {
        deliver(&r, &GUID_DEVICE_INTERFACE_ARRIVAL, class, &name);
    }
    STATUS_SUCCESS
}

/// `IoUnregisterPlugPlayNotificationEx` (and `IoUnregisterPlugPlayNotification`):
/// no more callbacks for the entry; the driver object's reference is dropped.
pub fn io_unregister_plug_play_notification(entry: u64) -> NtStatus {
    let r = REGISTRATIONS.with(|v| {
        let i = v.iter().position(|r| r.entry == entry)?;
        Some(v.remove(i))
    });
    let Some(r) = r else {
        return STATUS_INVALID_PARAMETER;
    };
    if let Some(did) = object_of(r.driver, IoKind::Driver) {
        crate::ob::object::ob_dereference_object(did);
    }
    let _ = crate::ex::xpool::free(entry, TAG_NOTIFY);
    STATUS_SUCCESS
}

/// Registrations alive (for the tests).
pub fn registration_count() -> usize {
    REGISTRATIONS.with(|v| v.len())
}

// ---- exports ----

/// # Safety
/// `s` null or a readable `UNICODE_STRING`.
unsafe fn string_of(s: *const UNICODE_STRING) -> Option<String> {
    // SAFETY: the caller guarantees `s`.
    unsafe { s.as_ref().map(|s| unicode_to_string(s)) }
}

/// `IoRegisterDeviceInterface`.
///
/// # Safety
/// Driver-supplied pointers valid; `SymbolicLinkName` writable. The
/// returned string's buffer is pool the caller frees with
/// `RtlFreeUnicodeString`.
#[no_mangle]
pub unsafe extern "system" fn IoRegisterDeviceInterface(
    PhysicalDeviceObject: *mut DEVICE_OBJECT,
    InterfaceClassGuid: *const GUID,
    ReferenceString: *mut UNICODE_STRING,
    SymbolicLinkName: *mut UNICODE_STRING,
) -> NtStatus {
    if InterfaceClassGuid.is_null() || SymbolicLinkName.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let reference = string_of(ReferenceString);
        match io_register_device_interface(
            PhysicalDeviceObject,
            &*InterfaceClassGuid,
            reference.as_deref(),
        ) {
            Ok(name) => match crate::io::alloc_unicode(&name) {
                Ok(u) => {
                    *SymbolicLinkName = u;
                    STATUS_SUCCESS
                }
                Err(s) => s,
            },
            Err(s) => s,
        }
    }
}

/// `IoSetDeviceInterfaceState`.
///
/// # Safety
/// `SymbolicLinkName` readable.
#[no_mangle]
pub unsafe extern "system" fn IoSetDeviceInterfaceState(
    SymbolicLinkName: *mut UNICODE_STRING,
    Enable: BOOLEAN,
) -> NtStatus {
    // SAFETY: forwarded caller guarantee.
    match unsafe { string_of(SymbolicLinkName) } {
        Some(n) => io_set_device_interface_state(&n, Enable != 0),
        None => STATUS_INVALID_PARAMETER,
    }
}

/// `IoGetDeviceInterfaces`: a `REG_MULTI_SZ`-style list in pool the caller
/// frees with `ExFreePool` (an empty list is one empty string).
///
/// # Safety
/// `InterfaceClassGuid` readable; `SymbolicLinkList` writable.
#[no_mangle]
pub unsafe extern "system" fn IoGetDeviceInterfaces(
    InterfaceClassGuid: *const GUID,
    PhysicalDeviceObject: *mut DEVICE_OBJECT,
    Flags: u32,
    SymbolicLinkList: *mut *mut u16,
) -> NtStatus {
    if InterfaceClassGuid.is_null() || SymbolicLinkList.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: forwarded caller guarantee.
    let names = io_get_device_interfaces(
        unsafe { &*InterfaceClassGuid },
        PhysicalDeviceObject as u64,
        Flags,
    );
    let mut units: Vec<u16> = Vec::new();
    for n in &names {
        units.extend(n.encode_utf16());
        units.push(0);
    }
    units.push(0);
    if names.is_empty() {
        units.push(0);
    }
    let Ok(p) = crate::ex::xpool::allocate(
        ::mm::pool::PoolType::Paged,
        (units.len() * 2) as u64,
        TAG_LIST,
        false,
    ) else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    // SAFETY: a fresh block of units.len() u16s; the out pointer is writable.
    unsafe {
        core::ptr::copy_nonoverlapping(units.as_ptr(), p as *mut u16, units.len());
        *SymbolicLinkList = p as *mut u16;
    }
    STATUS_SUCCESS
}

/// `IoRegisterPlugPlayNotification`.
///
/// # Safety
/// Driver-supplied pointers valid; `EventCategoryData` a `GUID` for
/// `EventCategoryDeviceInterfaceChange`.
#[no_mangle]
pub unsafe extern "system" fn IoRegisterPlugPlayNotification(
    EventCategory: u32,
    EventCategoryFlags: u32,
    EventCategoryData: *mut c_void,
    DriverObject: *mut DRIVER_OBJECT,
    CallbackRoutine: Option<DRIVER_NOTIFICATION_CALLBACK_ROUTINE>,
    Context: *mut c_void,
    NotificationEntry: *mut *mut c_void,
) -> NtStatus {
    let Some(cb) = CallbackRoutine else {
        return STATUS_INVALID_PARAMETER;
    };
    if NotificationEntry.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    if EventCategory != EventCategoryDeviceInterfaceChange {
        return STATUS_NOT_IMPLEMENTED;
    }
    if EventCategoryData.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let mut entry = 0u64;
    // SAFETY: forwarded caller guarantees; the data is the class GUID.
    unsafe {
        let class = *(EventCategoryData as *const GUID);
        let s = io_register_plug_play_notification(
            EventCategory,
            EventCategoryFlags,
            &class,
            DriverObject,
            cb,
            Context as u64,
            &mut entry,
        );
        if s == STATUS_SUCCESS {
            *NotificationEntry = entry as *mut c_void;
        }
        s
    }
}

/// `IoUnregisterPlugPlayNotificationEx`.
#[no_mangle]
pub extern "system" fn IoUnregisterPlugPlayNotificationEx(
    NotificationEntry: *mut c_void,
) -> NtStatus {
    io_unregister_plug_play_notification(NotificationEntry as u64)
}

/// `IoUnregisterPlugPlayNotification` (the pre-Windows 7 form; same here).
#[no_mangle]
pub extern "system" fn IoUnregisterPlugPlayNotification(
    NotificationEntry: *mut c_void,
) -> NtStatus {
    io_unregister_plug_play_notification(NotificationEntry as u64)
}

/// `RtlFreeUnicodeString`: frees a string the system allocated
/// (`IoRegisterDeviceInterface`'s name).
///
/// # Safety
/// `UnicodeString` null or a string whose buffer came from the I/O
/// manager's name pool.
#[no_mangle]
pub unsafe extern "system" fn RtlFreeUnicodeString(UnicodeString: *mut UNICODE_STRING) {
    // SAFETY: forwarded caller guarantee.
    if let Some(u) = unsafe { UnicodeString.as_mut() } {
        crate::io::free_unicode(u);
    }
}
