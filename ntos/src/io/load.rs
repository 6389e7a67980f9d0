//! Driver loading (*Windows Internals*, Part 1, ch. 6, "Driver loading";
//! `IopLoadDriver`, `IopInitializeBootDrivers`, `IopInitializeSystemDrivers`,
//! `NtLoadDriver`, `NtUnloadDriver`).
//!
//! At boot the I/O manager walks `CurrentControlSet\Services`: boot-start
//! drivers (Start = 0) first, then system-start drivers (Start = 1), each
//! set in `ServiceGroupOrder`/`GroupOrderList`/`Tag` order (the policy is
//! the host-tested `drvload` crate). Each driver's image is mapped by
//! `MmLoadSystemImage` (mm/ldr.rs), its driver object (`\Driver\<name>`, or
//! `\FileSystem\<name>` for file system drivers) is created by the I/O
//! manager's `create_driver_object`, which calls
//! `DriverEntry(DriverObject, RegistryPath)`. A driver that fails is
//! logged with its status and the boot goes on, unless its `ErrorControl`
//! is critical (then `IO1_INITIALIZATION_FAILED`).
//!
//! ntrs differences: the kernel cannot read files before its storage stack
//! and file system exist, so winload reads every driver service's image
//! file and hands the bytes over in the loader block (`BootDriverFile`);
//! the registry walk here still decides what starts and in which order,
//! and `NtLoadDriver` takes its image from the same list. An `ImagePath`
//! outside the system root (`\??\C:\...`) is `STATUS_NOT_IMPLEMENTED` for
//! now.

use super::driver::{create_driver_object, unload_driver, DriverHandle};
use crate::cm::{nt_enumerate_key, nt_open_key, nt_query_value_key, KEY_READ};
use crate::dbg_println;
use crate::ex::sync::EResource;
use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use crate::mm::ldr::{mm_load_system_image, mm_unload_system_image};
use crate::ob::handle::nt_close;
use crate::ob::object::Mode;
use alloc::string::String;
use alloc::vec::Vec;
use drvload::{FailureAction, Service};
use nt::status::*;
use nt::NtStatus;

/// Where `CurrentControlSet`'s services live.
pub const SERVICES_KEY: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services";
const CONTROL_KEY: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Control";

/// A driver the I/O manager loaded from an image.
struct LoadedDriver {
    service: String,
    handle: DriverHandle,
    image_base: u64,
}

/// The drivers loaded from images (the I/O manager's view of
/// `PsLoadedModuleList`, with their driver objects).
static LOADED_DRIVERS: SpinLocked<Vec<LoadedDriver>, DISPATCH_LEVEL> = SpinLocked::new(Vec::new());

/// `IopDriverLoadResource`: one load or unload at a time, held across
/// `DriverEntry`/`DriverUnload` (an ERESOURCE does not raise the IRQL: the
/// driver runs at PASSIVE_LEVEL; a driver loading another from its
/// DriverEntry re-acquires it recursively).
static DRIVER_LOAD_RESOURCE: EResource = EResource::new("IopDriverLoadResource");

fn serialized<R>(f: impl FnOnce() -> R) -> R {
    DRIVER_LOAD_RESOURCE.register();
    DRIVER_LOAD_RESOURCE.acquire_exclusive();
    let r = f();
    DRIVER_LOAD_RESOURCE.release();
    r
}

/// The boot load results, for the log and the boot tests: (service,
/// status).
static BOOT_RESULTS: SpinLocked<Vec<(String, NtStatus)>, DISPATCH_LEVEL> =
    SpinLocked::new(Vec::new());

/// The status the boot gave `service` (case-insensitive), if it tried it.
pub fn boot_result(service: &str) -> Option<NtStatus> {
    BOOT_RESULTS.with(|r| {
        r.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(service))
            .map(|(_, s)| *s)
    })
}

/// The driver object of the loaded driver `service`, if it is loaded.
pub fn loaded_driver(service: &str) -> Option<DriverHandle> {
    LOADED_DRIVERS.with(|l| {
        l.iter()
            .find(|d| d.service.eq_ignore_ascii_case(service))
            .map(|d| d.handle)
    })
}

fn dword(v: &[u8]) -> Option<u32> {
    v.get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn utf16z(v: &[u8]) -> String {
    let units: Vec<u16> = v
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// Reads one value of an open key (None if absent).
fn value(h: u64, name: &str) -> Option<Vec<u8>> {
    nt_query_value_key(h, name, Mode::KernelMode)
        .ok()
        .map(|(_, d)| d)
}

/// Reads the service key at `path` (its last component is the name).
pub fn read_service(path: &str) -> Result<Service, NtStatus> {
    let name = path.rsplit('\\').next().unwrap_or("");
    if name.is_empty() {
        return Err(STATUS_OBJECT_NAME_INVALID);
    }
    let h = nt_open_key(path, KEY_READ, Mode::KernelMode)?;
    let s = Service {
        name: String::from(name),
        service_type: value(h, "Type").and_then(|v| dword(&v)).unwrap_or(0),
        start: value(h, "Start")
            .and_then(|v| dword(&v))
            .unwrap_or(drvload::SERVICE_DISABLED),
        error_control: value(h, "ErrorControl")
            .and_then(|v| dword(&v))
            .unwrap_or(1),
        group: value(h, "Group").map(|v| utf16z(&v)),
        tag: value(h, "Tag").and_then(|v| dword(&v)),
        image_path: value(h, "ImagePath").map(|v| utf16z(&v)),
    };
    let _ = nt_close(h);
    Ok(s)
}

/// Every service key, in registry enumeration order.
fn all_services() -> Result<Vec<Service>, NtStatus> {
    let h = nt_open_key(SERVICES_KEY, KEY_READ, Mode::KernelMode)?;
    let mut out = Vec::new();
    for i in 0.. {
        match nt_enumerate_key(h, i, Mode::KernelMode) {
            Ok(name) => {
                if let Ok(s) = read_service(&alloc::format!("{SERVICES_KEY}\\{name}")) {
                    out.push(s);
                }
            }
            Err(_) => break,
        }
    }
    let _ = nt_close(h);
    Ok(out)
}

/// `ServiceGroupOrder\List`.
fn group_order() -> Vec<String> {
    let Ok(h) = nt_open_key(
        &alloc::format!("{CONTROL_KEY}\\ServiceGroupOrder"),
        KEY_READ,
        Mode::KernelMode,
    ) else {
        return Vec::new();
    };
    let list = value(h, "List")
        .map(|v| drvload::parse_multi_sz(&v))
        .unwrap_or_default();
    let _ = nt_close(h);
    list
}

/// `GroupOrderList\<group>`'s tags.
fn group_tags(group: &str) -> Vec<u32> {
    let Ok(h) = nt_open_key(
        &alloc::format!("{CONTROL_KEY}\\GroupOrderList"),
        KEY_READ,
        Mode::KernelMode,
    ) else {
        return Vec::new();
    };
    let tags = value(h, group)
        .map(|v| drvload::parse_group_order_list(&v))
        .unwrap_or_default();
    let _ = nt_close(h);
    tags
}

/// The bytes of the image file `rel` (relative to the system root) from
/// the files winload handed over; `STATUS_OBJECT_NAME_NOT_FOUND` as
/// opening a missing file would be.
fn image_file(rel: &str) -> Result<&'static [u8], NtStatus> {
    // SAFETY: the boot driver array and the file bytes live in loader pages
    // (MemoryData, BootDriver) the kernel never frees.
    let files = unsafe { crate::rtl::loader_block().boot_driver_files() };
    files
        .iter()
        // SAFETY: as above.
        .find(|f| unsafe { f.file_path.as_str() }.eq_ignore_ascii_case(rel))
        // SAFETY: as above.
        .map(|f| unsafe { f.bytes() })
        .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)
}

/// `IopLoadDriver`: maps the service's image, creates its driver object
/// and calls its `DriverEntry`. On any failure nothing of it stays: the
/// I/O manager deletes the driver object and the devices it made, and the
/// image is unloaded.
pub fn iop_load_driver(service: &Service) -> Result<DriverHandle, NtStatus> {
    serialized(|| load_locked(service))
}

fn load_locked(service: &Service) -> Result<DriverHandle, NtStatus> {
    if loaded_driver(&service.name).is_some() {
        return Err(STATUS_IMAGE_ALREADY_LOADED);
    }
    let rel = service.image_file().ok_or(STATUS_NOT_IMPLEMENTED)?;
    let full = service.full_image_name().ok_or(STATUS_NOT_IMPLEMENTED)?;
    let bytes = image_file(&rel)?;
    let img = mm_load_system_image(bytes, &full)?;
    if img.entry_point == 0 {
        let _ = mm_unload_system_image(img.base);
        return Err(STATUS_INVALID_IMAGE_FORMAT);
    }
    // SAFETY: the entry point lies in the image's executable code (the
    // loader checked it is on a ReadExecute page of the image) and, as on
    // Windows, a driver's entry point has DriverEntry's signature.
    let init: wdk::DRIVER_INITIALIZE = unsafe { core::mem::transmute(img.entry_point as usize) };
    let registry_path = alloc::format!("{SERVICES_KEY}\\{}", service.name);
    let handle = match create_driver_object(
        &service.driver_object_name(),
        init,
        &registry_path,
        (img.base, img.size_of_image),
        core::ptr::null_mut(),
    ) {
        Ok(h) => h,
        Err(e) => {
            let _ = mm_unload_system_image(img.base);
            return Err(e);
        }
    };
    super::driver::unload_image_on_delete(handle, img.base);
    LOADED_DRIVERS.with(|l| {
        l.push(LoadedDriver {
            service: service.name.clone(),
            handle,
            image_base: img.base,
        })
    });
    Ok(handle)
}

/// `IopUnloadDriver`: calls the driver's `DriverUnload` (a driver without
/// one cannot be unloaded: `STATUS_INVALID_DEVICE_REQUEST`), deletes the
/// device objects it left, removes its driver object and unloads its
/// image. `STATUS_OBJECT_NAME_NOT_FOUND` if it is not loaded.
///
/// The image is unmapped when the driver object's last reference goes
/// (`driver::delete_driver`), as NT's: at once if nothing else refers to
/// the driver, else when the last file open on one of its (deleted)
/// devices closes. Until then `lm` lists it and a reload is
/// STATUS_IMAGE_ALREADY_LOADED.
pub fn iop_unload_driver(service: &str) -> Result<(), NtStatus> {
    serialized(|| unload_locked(service))
}

fn unload_locked(service: &str) -> Result<(), NtStatus> {
    let (handle, base) = LOADED_DRIVERS
        .with(|l| {
            l.iter()
                .find(|d| d.service.eq_ignore_ascii_case(service))
                .map(|d| (d.handle, d.image_base))
        })
        .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
    unload_driver(handle)?;
    LOADED_DRIVERS.with(|l| l.retain(|d| d.image_base != base));
    Ok(())
}

/// Checks a caller's right to load or unload drivers: kernel-mode callers
/// may; a user-mode caller needs SeLoadDriverPrivilege.
fn check_privilege(mode: Mode) -> Result<(), NtStatus> {
    if mode == Mode::KernelMode {
        return Ok(());
    }
    let subject = crate::se::se_capture_subject_context();
    if subject
        .effective_token()
        .has_privilege(security::token::privilege::LOAD_DRIVER)
    {
        Ok(())
    } else {
        Err(STATUS_PRIVILEGE_NOT_HELD)
    }
}

/// `NtLoadDriver(DriverServiceName)`: loads the driver whose service key is
/// `registry_path` (`\Registry\Machine\System\CurrentControlSet\Services\X`).
/// A missing key is `STATUS_OBJECT_NAME_NOT_FOUND`; a loaded driver
/// `STATUS_IMAGE_ALREADY_LOADED`; a failing image or DriverEntry its status.
pub fn nt_load_driver(registry_path: &str, mode: Mode) -> NtStatus {
    let r = check_privilege(mode)
        .and_then(|_| read_service(registry_path))
        .and_then(|s| iop_load_driver(&s));
    match r {
        Ok(_) => STATUS_SUCCESS,
        Err(e) => e,
    }
}

/// `NtUnloadDriver(DriverServiceName)`.
pub fn nt_unload_driver(registry_path: &str, mode: Mode) -> NtStatus {
    let r = check_privilege(mode).and_then(|_| {
        // The key must exist, as NT opens it to find the driver's name.
        let s = read_service(registry_path)?;
        iop_unload_driver(&s.name)
    });
    match r {
        Ok(()) => STATUS_SUCCESS,
        Err(e) => e,
    }
}

/// `IopInitializeBootDrivers`: loads the boot-start drivers (Start = 0) in
/// load order (before the PnP manager enumerates, so bus and storage
/// drivers are there for the devices it finds).
pub fn io_initialize_boot_drivers() {
    // The debug print filter comes from the registry before the first
    // driver can print (Windows reads it at boot too).
    crate::kd::print::kd_update_debug_filter_from_registry();
    initialize_drivers(drvload::SERVICE_BOOT_START);
}

/// `IopInitializeSystemDrivers`: loads the system-start drivers (Start = 1)
/// in load order, after PnP enumeration.
pub fn io_initialize_system_drivers() {
    initialize_drivers(drvload::SERVICE_SYSTEM_START);
}

/// The crash test CRITICALDRIVER: the boot's load path on the service
/// `ntrscrit` (ErrorControl 3, a corrupt image) must stop the system with
/// `IO1_INITIALIZATION_FAILED` (STATUS_INVALID_IMAGE_FORMAT, its start
/// type 3). Returns only if it did not.
pub fn crash_critical_driver_fails() {
    match read_service(&alloc::format!("{SERVICES_KEY}\\ntrscrit")) {
        Ok(s) => boot_load(&s),
        Err(e) => dbg_println!("io: no ntrscrit service: {e:?}"),
    }
}

/// Loads the drivers of one start type in load order; logs each failure
/// (ErrorControl 1 and 2) and goes on; a critical driver's failure stops
/// the system with `IO1_INITIALIZATION_FAILED` (parameters, ntrs's: the
/// status, the start type).
fn initialize_drivers(start: u32) {
    let services = match all_services() {
        Ok(s) => s,
        Err(e) => {
            dbg_println!("io: cannot read {SERVICES_KEY}: {e:?}; no drivers loaded");
            return;
        }
    };
    let order = group_order();
    for s in drvload::load_order(&services, start, &order, &group_tags) {
        boot_load(s);
    }
}

/// Loads one driver as the boot does: records the result, logs a failure
/// per `ErrorControl`, and stops the system for a critical driver.
fn boot_load(s: &Service) {
    {
        let r = iop_load_driver(s);
        let status = r.map(|_| STATUS_SUCCESS).unwrap_or_else(|e| e);
        BOOT_RESULTS.with(|b| b.push((s.name.clone(), status)));
        match r {
            Ok(_) => dbg_println!("io: loaded {} (Start={})", s.driver_object_name(), s.start),
            Err(e) => match drvload::failure_action(s.error_control) {
                FailureAction::Ignore => {}
                FailureAction::Log => dbg_println!(
                    "io: driver {} (Start={}) failed to load: {e:?}; boot continues",
                    s.name,
                    s.start
                ),
                FailureAction::BugCheck => {
                    dbg_println!("io: critical driver {} failed to load: {e:?}", s.name);
                    crate::ke::bugcheck::ke_bug_check_ex(
                        nt::bugcheck::IO1_INITIALIZATION_FAILED,
                        e.as_u32() as u64,
                        s.start as u64,
                        0,
                        0,
                    );
                }
            },
        }
    }
}
