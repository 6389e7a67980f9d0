//! Device identification strings as Windows' PCI bus driver reports them
//! (MS docs, "Identifiers for PCI Devices"; the lists as Windows 10 and
//! later split them, where the revision-less and subsystem-less forms moved
//! from the hardware IDs to the compatible IDs):
//!
//! Hardware IDs, most specific first:
//! `PCI\VEN_v&DEV_d&SUBSYS_sn&REV_r`, `PCI\VEN_v&DEV_d&SUBSYS_sn`,
//! `PCI\VEN_v&DEV_d&CC_ccsspp`, `PCI\VEN_v&DEV_d&CC_ccss`.
//!
//! Compatible IDs, in decreasing compatibility:
//! `PCI\VEN_v&DEV_d&REV_r`, `PCI\VEN_v&DEV_d`, `PCI\VEN_v&CC_ccsspp`,
//! `PCI\VEN_v&CC_ccss`, `PCI\VEN_v`, `PCI\CC_ccsspp`, `PCI\CC_ccss`.
//!
//! Hex digits are upper case; the subsystem field is the subsystem ID
//! followed by the subsystem vendor ID (`SUBSYS_11001AF4` for QEMU's
//! 1af4:1100). The device ID (the first part of the device instance path)
//! is the first hardware ID.

use crate::header::Header;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

fn ven_dev(h: &Header) -> String {
    format!("PCI\\VEN_{:04X}&DEV_{:04X}", h.vendor_id, h.device_id)
}

fn subsys(h: &Header) -> String {
    format!("SUBSYS_{:04X}{:04X}", h.subsystem_id, h.subsystem_vendor_id)
}

fn cc6(h: &Header) -> String {
    format!("CC_{:02X}{:02X}{:02X}", h.base_class, h.subclass, h.prog_if)
}

fn cc4(h: &Header) -> String {
    format!("CC_{:02X}{:02X}", h.base_class, h.subclass)
}

/// The hardware IDs, most specific first.
pub fn hardware_ids(h: &Header) -> Vec<String> {
    let vd = ven_dev(h);
    vec![
        format!("{vd}&{}&REV_{:02X}", subsys(h), h.revision_id),
        format!("{vd}&{}", subsys(h)),
        format!("{vd}&{}", cc6(h)),
        format!("{vd}&{}", cc4(h)),
    ]
}

/// The compatible IDs, most compatible first.
pub fn compatible_ids(h: &Header) -> Vec<String> {
    let vd = ven_dev(h);
    let v = format!("PCI\\VEN_{:04X}", h.vendor_id);
    vec![
        format!("{vd}&REV_{:02X}", h.revision_id),
        vd,
        format!("{v}&{}", cc6(h)),
        format!("{v}&{}", cc4(h)),
        v,
        format!("PCI\\{}", cc6(h)),
        format!("PCI\\{}", cc4(h)),
    ]
}

/// The device ID (`BusQueryDeviceID`): the first hardware ID, which names
/// the device's key under `Enum` (`Enum\PCI\VEN_..&DEV_..&SUBSYS_..&REV_..`).
pub fn device_id(h: &Header) -> String {
    format!("{}&{}&REV_{:02X}", ven_dev(h), subsys(h), h.revision_id)
}

/// The device's own part of its instance ID (`BusQueryInstanceID`): PCI
/// functions have no serial number, so pci.sys reports the slot as two hex
/// digits of `device << 3 | function`; the PnP manager prefixes it with the
/// parent's `ParentIdPrefix` because the ID is not unique system-wide.
pub fn instance_id(devfn: u8) -> String {
    format!("{devfn:02X}")
}

/// The `REG_MULTI_SZ` form of a list of strings: UTF-16LE, each string
/// NUL-terminated, one more NUL at the end.
pub fn multi_sz(list: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in list {
        for u in s.encode_utf16() {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out.extend_from_slice(&[0, 0]);
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// The `LocationInformation` text Windows writes for a PCI function.
pub fn location_information(bus: u8, device: u8, function: u8) -> String {
    format!("PCI bus {bus}, device {device}, function {function}")
}

/// The key name a hardware or compatible ID has in a critical device
/// database (`Control\CriticalDeviceDatabase`): backslashes become `#`,
/// letters lower case (`PCI\CC_0106` → `pci#cc_0106`).
pub fn critical_device_key(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c == '\\' {
                '#'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// The `ParentIdPrefix` ntrs gives a bus's children: `<depth>&<hash>&<n>`
/// in lower-case hex, where `depth` is the children's depth in the device
/// tree, `hash` a CRC-32 of the parent's instance path in upper case, and
/// `n` the parent's ordinal among the devices with that hash (0 unless two
/// instance paths collide). Windows documents the shape (`3&267a616a&0`)
/// but not the hash it uses, so the middle field differs from Windows'.
pub fn parent_id_prefix(child_depth: u32, parent_instance_path: &str, ordinal: u32) -> String {
    let upper: String = parent_instance_path
        .chars()
        .map(|c| c.to_ascii_uppercase())
        .collect();
    format!("{child_depth:x}&{:x}&{ordinal:x}", crc32(upper.as_bytes()))
}

/// CRC-32 (IEEE 802.3, reflected, as RtlComputeCrc32 computes it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
