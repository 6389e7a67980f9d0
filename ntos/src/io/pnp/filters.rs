//! Filter drivers in device stacks (*Windows Internals* 7th ed., Part 1,
//! ch. 6, "Driver loading, initialization, and installation": the order in
//! which the PnP manager builds a device stack). Around the function
//! driver's `AddDevice` the PnP manager calls, bottom to top:
//!
//! 1. the device's lower filters (`LowerFilters` in its `Enum` key),
//! 2. the class's lower filters (`LowerFilters` in
//!    `Control\Class\{class GUID}`),
//! 3. the function driver,
//! 4. the device's upper filters (`UpperFilters` in the `Enum` key),
//! 5. the class's upper filters (`UpperFilters` in the class key) —
//!    `partmgr` for disk drives (`{4d36e967-e325-11ce-bfc1-08002be10318}`),
//!    as Windows ships it.
//!
//! Each filter is a service name whose driver must be loaded (boot- or
//! system-start); its `AddDevice` gets the PDO and attaches above the
//! stack. Difference from Windows: a filter whose driver is not loaded or
//! whose `AddDevice` fails is logged and skipped (Windows fails the
//! device's start with a problem code).

use super::registry::ENUM_ROOT;
use crate::cm::*;
use crate::io::driver::find_driver;
use crate::ob::handle::nt_close;
use crate::ob::object::Mode;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use nt::NtStatus;
use wdk::*;

/// `CurrentControlSet\Control\Class`.
pub const CLASS_ROOT: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Control\\Class";

/// The strings of a `REG_MULTI_SZ` value's data.
pub fn multi_sz(data: &[u8]) -> Vec<String> {
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    units
        .split(|&u| u == 0)
        .filter(|s| !s.is_empty())
        .map(String::from_utf16_lossy)
        .collect()
}

/// A `REG_MULTI_SZ` (or `REG_SZ`) value of the key at `path` as strings.
fn query_multi(path: &str, name: &str) -> Vec<String> {
    let Ok(h) = nt_open_key(path, KEY_READ, Mode::KernelMode) else {
        return Vec::new();
    };
    let v = nt_query_value_key(h, name, Mode::KernelMode);
    nt_close(h);
    match v {
        Ok((REG_MULTI_SZ, d)) | Ok((REG_SZ, d)) => multi_sz(&d),
        _ => Vec::new(),
    }
}

/// The filter services of a device, in attach order: the device's then
/// the class's (`upper` picks `UpperFilters` or `LowerFilters`).
pub fn filter_services(
    instance_path: Option<&str>,
    class_guid: Option<&str>,
    upper: bool,
) -> Vec<String> {
    let value = if upper {
        "UpperFilters"
    } else {
        "LowerFilters"
    };
    let mut out = Vec::new();
    if let Some(p) = instance_path {
        out.extend(query_multi(&format!("{ENUM_ROOT}\\{p}"), value));
    }
    if let Some(g) = class_guid {
        out.extend(query_multi(&format!("{CLASS_ROOT}\\{g}"), value));
    }
    out
}

/// Calls the `AddDevice` of each upper or lower filter of the device on
/// `pdo` (see the module text); returns how many attached.
///
/// # Safety
/// `pdo` is a live PDO whose stack is being built.
pub unsafe fn add_filters(
    instance_path: Option<&str>,
    class_guid: Option<&str>,
    pdo: *mut DEVICE_OBJECT,
    upper: bool,
) -> usize {
    let mut n = 0;
    for svc in filter_services(instance_path, class_guid, upper) {
        let Some(driver) = find_driver(&format!("\\Driver\\{svc}")) else {
            crate::dbg_println!("PnP: filter {svc} is not loaded; stack built without it");
            continue;
        };
        // SAFETY: a live driver object (found by name).
        let Some(add) = (unsafe { (*(*driver).DriverExtension).AddDevice }) else {
            crate::dbg_println!("PnP: filter {svc} has no AddDevice");
            continue;
        };
        // SAFETY: the filter's AddDevice with its driver object and the PDO.
        let s: NtStatus = unsafe { add(driver, pdo) };
        if s.is_success() {
            n += 1;
        } else {
            crate::dbg_println!("PnP: filter {svc}'s AddDevice failed: {s:?}");
        }
    }
    n
}
