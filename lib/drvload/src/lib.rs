//! The I/O manager's driver-load policy (*Windows Internals*, Part 1, ch. 6,
//! "Driver loading" and Part 2, ch. 12 on `ErrorControl`), kept free of the
//! kernel so it is host-tested; ntos/src/io/load.rs runs it over the
//! registry's `Services` keys.
//!
//! - Which services start: boot-start drivers have `Start` = 0, system-start
//!   drivers `Start` = 1; only driver services (`Type` 1 kernel driver, 2 file
//!   system driver) are loaded by the I/O manager.
//! - Order: by the position of the service's `Group` in
//!   `Control\ServiceGroupOrder\List` (services of no group, or of a group
//!   not in the list, after all listed groups), then inside a group by the
//!   position of the service's `Tag` in `Control\GroupOrderList\<Group>`
//!   (untagged services, or tags not listed, after the listed ones), then in
//!   registry enumeration order.
//! - A failed load: `ErrorControl` 0 (ignore) continues silently, 1 (normal)
//!   logs and continues, 2 (severe) and 3 (critical) would switch to the
//!   LastKnownGood control set; ntrs has only one control set, so it logs
//!   and continues for severe and stops the system for critical (as
//!   Windows does when LastKnownGood is already in use).
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

/// `SERVICE_KERNEL_DRIVER`.
pub const SERVICE_KERNEL_DRIVER: u32 = 1;
/// `SERVICE_FILE_SYSTEM_DRIVER`.
pub const SERVICE_FILE_SYSTEM_DRIVER: u32 = 2;
/// `SERVICE_BOOT_START`.
pub const SERVICE_BOOT_START: u32 = 0;
/// `SERVICE_SYSTEM_START`.
pub const SERVICE_SYSTEM_START: u32 = 1;
/// `SERVICE_DEMAND_START`.
pub const SERVICE_DEMAND_START: u32 = 3;
/// `SERVICE_DISABLED`.
pub const SERVICE_DISABLED: u32 = 4;

/// One `Services\<name>` key, as far as loading is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// The key's name (`Null`).
    pub name: String,
    pub service_type: u32,
    pub start: u32,
    pub error_control: u32,
    pub group: Option<String>,
    pub tag: Option<u32>,
    pub image_path: Option<String>,
}

impl Service {
    /// Whether the I/O manager loads this service (a kernel or file
    /// system driver).
    pub fn is_driver(&self) -> bool {
        matches!(
            self.service_type,
            SERVICE_KERNEL_DRIVER | SERVICE_FILE_SYSTEM_DRIVER
        )
    }

    /// The driver object's name: `\FileSystem\<name>` for file system
    /// drivers, `\Driver\<name>` for the others.
    pub fn driver_object_name(&self) -> String {
        let dir = if self.service_type == SERVICE_FILE_SYSTEM_DRIVER {
            "\\FileSystem\\"
        } else {
            "\\Driver\\"
        };
        let mut s = String::from(dir);
        s.push_str(&self.name);
        s
    }

    /// The image file relative to the system root (`System32\drivers\null.sys`):
    /// `ImagePath` without a leading `\SystemRoot\` (or `\`), or by default
    /// `System32\drivers\<name>.sys`. `None` for a path outside the system
    /// root (`\??\C:\...`), which ntrs cannot read yet.
    pub fn image_file(&self) -> Option<String> {
        let Some(p) = self.image_path.as_deref().filter(|p| !p.is_empty()) else {
            let mut s = String::from("System32\\drivers\\");
            s.push_str(&self.name);
            s.push_str(".sys");
            return Some(s);
        };
        let strip = |s: &str, prefix: &str| {
            s.get(..prefix.len())
                .filter(|h| h.eq_ignore_ascii_case(prefix))
                .map(|_| String::from(&s[prefix.len()..]))
        };
        if let Some(rest) = strip(p, "\\SystemRoot\\") {
            return Some(rest);
        }
        if p.starts_with('\\') || p.contains(':') || p.contains('%') {
            return None;
        }
        Some(String::from(p))
    }

    /// `FullDllName` of the loaded image: `\SystemRoot\` + the image file.
    pub fn full_image_name(&self) -> Option<String> {
        let f = self.image_file()?;
        let mut s = String::from("\\SystemRoot\\");
        s.push_str(&f);
        Some(s)
    }
}

/// What to do after a driver failed to load (`ErrorControl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureAction {
    /// `SERVICE_ERROR_IGNORE` (0): continue, nothing logged.
    Ignore,
    /// `SERVICE_ERROR_NORMAL` (1) and `SERVICE_ERROR_SEVERE` (2, which
    /// would restart with LastKnownGood: ntrs has none): log, continue.
    Log,
    /// `SERVICE_ERROR_CRITICAL` (3): the system cannot start.
    BugCheck,
}

/// The action for `error_control` (values above 3 are treated as normal).
pub fn failure_action(error_control: u32) -> FailureAction {
    match error_control {
        0 => FailureAction::Ignore,
        3 => FailureAction::BugCheck,
        _ => FailureAction::Log,
    }
}

/// The strings of a `REG_MULTI_SZ` value (UTF-16LE, each NUL-terminated,
/// an empty string ends the list).
pub fn parse_multi_sz(data: &[u8]) -> Vec<String> {
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let mut out = Vec::new();
    for s in units.split(|&u| u == 0) {
        if s.is_empty() {
            break;
        }
        out.push(String::from_utf16_lossy(s));
    }
    out
}

/// The tags of a `GroupOrderList\<Group>` value (`REG_BINARY`: a count,
/// then that many DWORD tags). A count past the data is cut to the data.
pub fn parse_group_order_list(data: &[u8]) -> Vec<u32> {
    let dword = |i: usize| {
        data.get(i * 4..i * 4 + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let Some(n) = dword(0) else {
        return Vec::new();
    };
    (1..=n as usize).map_while(dword).collect()
}

/// The services to load for `start` (0 boot, 1 system), in load order.
/// `group_order` is `ServiceGroupOrder\List`; `tags_of(group)` the
/// group's `GroupOrderList` tags (empty if it has none). Group names
/// compare case-insensitively, as registry names do.
pub fn load_order<'a>(
    services: &'a [Service],
    start: u32,
    group_order: &[String],
    tags_of: &dyn Fn(&str) -> Vec<u32>,
) -> Vec<&'a Service> {
    let group_rank = |s: &Service| {
        s.group
            .as_deref()
            .and_then(|g| group_order.iter().position(|o| o.eq_ignore_ascii_case(g)))
            .unwrap_or(usize::MAX)
    };
    let mut picked: Vec<(usize, usize, usize, &Service)> = services
        .iter()
        .enumerate()
        .filter(|(_, s)| s.start == start && s.is_driver())
        .map(|(i, s)| {
            let tag_rank = match (s.group.as_deref(), s.tag) {
                (Some(g), Some(t)) => tags_of(g)
                    .iter()
                    .position(|&x| x == t)
                    .unwrap_or(usize::MAX),
                _ => usize::MAX,
            };
            (group_rank(s), tag_rank, i, s)
        })
        .collect();
    picked.sort_by_key(|&(g, t, i, _)| (g, t, i));
    picked.into_iter().map(|(_, _, _, s)| s).collect()
}

#[cfg(test)]
mod tests;
