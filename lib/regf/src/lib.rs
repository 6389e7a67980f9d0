//! Windows NT registry hive files ("regf"), *Windows Internals* 7th ed. Part 2, ch. 10
//! ("The registry": hive structure, cell maps, key control blocks).
//!
//! A [`Hive`] holds the hive bins of a hive in memory (stable storage, written to the file) and
//! a second, volatile storage space (offsets with the top bit set, never written). Keys are
//! addressed by cell offset ([`KeyRef`]). Every read of hive data is bounds-checked: corrupt input
//! gives [`Error::Corrupt`] (`STATUS_REGISTRY_CORRUPT`), never a panic.
//!
//! Facts about the on-disk format follow the libyal "Windows NT Registry File (REGF) format"
//! document.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bcd;
pub mod bcdedit;
mod cells;
pub mod check;
mod codec;
pub mod deleted;
mod hive;
mod keys;
mod lists;
pub mod log;
pub mod registry;
pub mod regtext;
mod save;
mod security;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bcdedit;
#[cfg(test)]
mod tests_deleted;
#[cfg(test)]
mod tests_registry;
#[cfg(test)]
mod tests_save;
mod values;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub(crate) use cells::Space;
pub(crate) use codec::*;
pub use codec::{base_checksum, from_utf16z, utf16z};
pub use deleted::{DeletedKey, DeletedValue, Recovered};
pub use hive::{BaseInfo, Hive};
pub use keys::KeyInfo;
pub(crate) use keys::*;
pub use lists::{lh_hash, upcase_name, upcase_unit, NameKey, MAX_KEY_NAME};
pub use save::{REG_LATEST_FORMAT, REG_NO_COMPRESSION, REG_STANDARD_FORMAT};
pub use security::DEFAULT_SD;

use nt::status::*;

pub use check::{check, Problem};

/// Size of the base block and of one hive bin page.
pub const PAGE: usize = 4096;
/// Offset of the checksum in the base block.
const CHECKSUM_OFF: usize = 508;
/// Values with more data than this use a big data (`db`) record (hive version 1.4 and later).
pub const BIG_DATA_THRESHOLD: usize = 16344;
/// Maximum entries in one leaf subkey list we write (a larger list becomes an `ri` index).
pub const MAX_LEAF: usize = 500;
/// Top bit of a cell offset: the cell is in volatile storage.
pub const VOLATILE_BIT: u32 = 0x8000_0000;
/// "No cell" marker.
pub const NIL: u32 = 0xFFFF_FFFF;

/// nk flag: the key is volatile.
pub const KEY_IS_VOLATILE: u16 = 0x0001;
/// nk flag: mount point of another hive.
pub const KEY_HIVE_EXIT: u16 = 0x0002;
/// nk flag: the root key of the hive.
pub const KEY_HIVE_ENTRY: u16 = 0x0004;
/// nk flag: the key cannot be deleted.
pub const KEY_NO_DELETE: u16 = 0x0008;
/// nk flag: the key is a symbolic link.
pub const KEY_SYM_LINK: u16 = 0x0010;
/// nk flag: the key name is stored in compressed (one byte per character) form.
pub const KEY_COMP_NAME: u16 = 0x0020;
/// vk flag: the value name is stored compressed.
pub const VALUE_COMP_NAME: u16 = 0x0001;

/// Registry value types.
pub const REG_NONE: u32 = 0;
/// `REG_SZ`
pub const REG_SZ: u32 = 1;
/// `REG_EXPAND_SZ`
pub const REG_EXPAND_SZ: u32 = 2;
/// `REG_BINARY`
pub const REG_BINARY: u32 = 3;
/// `REG_DWORD`
pub const REG_DWORD: u32 = 4;
/// `REG_DWORD_BIG_ENDIAN`
pub const REG_DWORD_BIG_ENDIAN: u32 = 5;
/// `REG_LINK`
pub const REG_LINK: u32 = 6;
/// `REG_MULTI_SZ`
pub const REG_MULTI_SZ: u32 = 7;
/// `REG_RESOURCE_LIST`
pub const REG_RESOURCE_LIST: u32 = 8;
/// `REG_FULL_RESOURCE_DESCRIPTOR`
pub const REG_FULL_RESOURCE_DESCRIPTOR: u32 = 9;
/// `REG_RESOURCE_REQUIREMENTS_LIST`
pub const REG_RESOURCE_REQUIREMENTS_LIST: u32 = 10;
/// `REG_QWORD`
pub const REG_QWORD: u32 = 11;

/// Name of the value holding a symbolic link's target.
pub const SYMBOLIC_LINK_VALUE: &str = "SymbolicLinkValue";

/// An error from hive parsing or a registry operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// An NT status (for example `STATUS_OBJECT_NAME_NOT_FOUND`, `STATUS_CANNOT_DELETE`).
    Status(NtStatus),
    /// The hive data is inconsistent at `offset` (a hive-bin relative offset, or a file offset for
    /// the base block); reported as `STATUS_REGISTRY_CORRUPT`.
    Corrupt {
        /// Where.
        offset: u32,
        /// What is wrong.
        what: String,
    },
}

impl Error {
    /// The NT status this error maps to.
    pub fn status(&self) -> NtStatus {
        match self {
            Error::Status(s) => *s,
            Error::Corrupt { .. } => STATUS_REGISTRY_CORRUPT,
        }
    }
}

impl From<NtStatus> for Error {
    fn from(s: NtStatus) -> Self {
        Error::Status(s)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Status(s) => write!(f, "{}", s),
            Error::Corrupt { offset, what } => {
                write!(f, "STATUS_REGISTRY_CORRUPT: cell 0x{:x}: {}", offset, what)
            }
        }
    }
}

/// Result alias.
pub type Result<T> = core::result::Result<T, Error>;

pub(crate) fn corrupt<T>(offset: u32, what: impl Into<String>) -> Result<T> {
    Err(Error::Corrupt {
        offset,
        what: what.into(),
    })
}

/// A key: the cell offset of its nk record (top bit set for volatile keys).
pub type KeyRef = u32;

/// A registry value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// Name ("" is the default value).
    pub name: String,
    /// `REG_*` type.
    pub ty: u32,
    /// Raw data.
    pub data: Vec<u8>,
}

/// Runs one fuzz input: parse, check, then walk and mutate; must never panic.
pub fn fuzz_one(data: &[u8]) {
    let _ = check(data);
    // The second half as a transaction log for the first.
    let half = data.len() / 2;
    let _ = log::load_with_logs(&data[..half], &data[half..], &[]);
    if let Ok(mut h) = Hive::from_bytes(data) {
        let _ = h.dump();
        let _ = h.recover_deleted();
        // BCD stores: the boot manager's reader, the whole-store reader and bcdedit's text.
        let _ = bcd::read_bcd(&h);
        if let Ok(objs) = bcdedit::read_objects(&h) {
            let shown: Vec<&bcdedit::Object> = objs.iter().collect();
            let _ = bcdedit::enum_text(&objs, &shown, false);
            if let Some(o) = objs.first() {
                let g = o.guid.clone();
                let _ = bcdedit::edit_list(
                    &mut h,
                    &g,
                    0x2400_0001,
                    core::slice::from_ref(&g),
                    bcdedit::ListEdit::AddLast,
                );
                let _ = bcdedit::delete_object(&mut h, &g);
            }
        }
        let root = h.root();
        let _ = h.create_key(root, "FuzzKey");
        if let Ok(subs) = h.enum_subkeys(root) {
            for s in subs.into_iter().take(8) {
                let _ = h.set_value(s, "v", REG_SZ, b"x\0y\0\0\0");
                let _ = h.enum_values(s);
                let _ = h.delete_value(s, "v");
                let _ = h.delete_key(s);
            }
        }
        let _ = h.recover_deleted();
        let _ = h.to_bytes();
    }
}
