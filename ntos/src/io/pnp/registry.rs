//! The PnP manager's registry work: each device node's instance key under
//! `\Registry\Machine\System\CurrentControlSet\Enum` (HardwareID and
//! CompatibleIDs as REG_MULTI_SZ, Service, ClassGUID, LocationInformation,
//! as Windows writes them), and driver matching: the Enum key's `Service`
//! value if the device was installed before (or pre-seeded in the SYSTEM
//! hive), else the critical device database (`Control\
//! CriticalDeviceDatabase\<id>` with `Service` and `ClassGUID`, keyed by
//! hardware ID then compatible ID with `\` as `#`, as Windows XP to 7 kept
//! it), whose match is then recorded in the Enum key as installation does.

use super::DeviceNode;
use crate::cm::*;
use crate::ob::handle::nt_close;
use crate::ob::object::Mode;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

const K: Mode = Mode::KernelMode;
pub const ENUM_ROOT: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Enum";
pub const CDDB_ROOT: &str =
    "\\Registry\\Machine\\System\\CurrentControlSet\\Control\\CriticalDeviceDatabase";

/// A REG_SZ value's bytes: UTF-16LE with the terminating NUL.
pub fn reg_sz(s: &str) -> Vec<u8> {
    let mut v: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    v.extend_from_slice(&[0, 0]);
    v
}

/// The string in a REG_SZ value (up to the first NUL).
pub fn from_reg_sz(d: &[u8]) -> String {
    let units: Vec<u16> = d
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// Reads the REG_SZ `name` of the key at `path`.
pub fn query_sz(path: &str, name: &str) -> Option<String> {
    let h = nt_open_key(path, KEY_READ, K).ok()?;
    let v = nt_query_value_key(h, name, K);
    nt_close(h);
    match v {
        Ok((REG_SZ, d)) | Ok((REG_EXPAND_SZ, d)) => Some(from_reg_sz(&d)),
        _ => None,
    }
}

/// Finds the node's driver: the Enum key's `Service` first, then the
/// critical device database by hardware ID, then by compatible ID.
pub fn match_driver(node: &mut DeviceNode) {
    let key = format!("{ENUM_ROOT}\\{}", node.instance_path);
    if let Some(s) = query_sz(&key, "Service").filter(|s| !s.is_empty()) {
        node.service = Some(s);
        node.class_guid = query_sz(&key, "ClassGUID");
        return;
    }
    for id in node.hardware_ids.iter().chain(node.compatible_ids.iter()) {
        let cddb = format!("{CDDB_ROOT}\\{}", ::pci::ids::critical_device_key(id));
        if let Some(s) = query_sz(&cddb, "Service").filter(|s| !s.is_empty()) {
            node.service = Some(s);
            node.class_guid = query_sz(&cddb, "ClassGUID");
            return;
        }
    }
}

/// Creates (or opens) `Enum` and every key of `rel` below it; returns a
/// handle to the last one.
fn create_enum_path(rel: &str) -> Result<u64, nt::NtStatus> {
    let mut at = String::from(ENUM_ROOT);
    let mut h = nt_create_key(&at, KEY_ALL_ACCESS, 0, K)?.0;
    for part in rel.split('\\').filter(|p| !p.is_empty()) {
        at.push('\\');
        at.push_str(part);
        nt_close(h);
        h = nt_create_key(&at, KEY_ALL_ACCESS, 0, K)?.0;
    }
    Ok(h)
}

/// Writes the node's instance key under Enum (`PiCreateDeviceInstanceKey`
/// and the values the PnP manager and installation store there).
pub fn write_enum_key(node: &DeviceNode) {
    let path = format!("{ENUM_ROOT}\\{}", node.instance_path);
    let h = match create_enum_path(&node.instance_path) {
        Ok(h) => h,
        Err(s) => {
            crate::dbg_println!("PnP: cannot create {path}: {:#x}", s.as_u32());
            return;
        }
    };
    let set = |name: &str, ty: u32, data: &[u8]| {
        let s = nt_set_value_key(h, name, ty, data, K);
        if !s.is_success() {
            crate::dbg_println!("PnP: cannot set {path}\\{name}: {:#x}", s.as_u32());
        }
    };
    if !node.hardware_ids.is_empty() {
        set(
            "HardwareID",
            REG_MULTI_SZ,
            &::pci::ids::multi_sz(&node.hardware_ids),
        );
    }
    if !node.compatible_ids.is_empty() {
        set(
            "CompatibleIDs",
            REG_MULTI_SZ,
            &::pci::ids::multi_sz(&node.compatible_ids),
        );
    }
    if let Some(s) = &node.service {
        set("Service", REG_SZ, &reg_sz(s));
    }
    if let Some(g) = &node.class_guid {
        set("ClassGUID", REG_SZ, &reg_sz(g));
    }
    if let Some(l) = &node.bus.location {
        set("LocationInformation", REG_SZ, &reg_sz(l));
    }
    nt_close(h);
}

/// Writes `Service` into the `Enum` key of the device instance `path`
/// (creating the key), as installing a device does.
pub fn write_service(path: &str, service: &str) -> Result<(), nt::NtStatus> {
    write_enum_value(path, "Service", REG_SZ, &reg_sz(service))
}

/// Writes one value into the `Enum` key of the device instance `path`
/// (creating the key).
pub fn write_enum_value(path: &str, name: &str, ty: u32, data: &[u8]) -> Result<(), nt::NtStatus> {
    let h = create_enum_path(path)?;
    let s = nt_set_value_key(h, name, ty, data, K);
    nt_close(h);
    if s.is_success() {
        Ok(())
    } else {
        Err(s)
    }
}
