//! The `OBJ_*` attribute flags (with `OBJECT_ATTRIBUTES` from `registry`)
//! and directory access, for the object routines drivers call
//! (`ZwCreateDirectoryObject`).

pub use crate::registry::{OBJECT_ATTRIBUTES, OBJ_CASE_INSENSITIVE, OBJ_KERNEL_HANDLE};

pub const OBJ_INHERIT: u32 = 0x0000_0002;
pub const OBJ_PERMANENT: u32 = 0x0000_0010;
pub const OBJ_EXCLUSIVE: u32 = 0x0000_0020;
pub const OBJ_OPENIF: u32 = 0x0000_0080;
pub const OBJ_OPENLINK: u32 = 0x0000_0100;

/// `DIRECTORY_ALL_ACCESS`.
pub const DIRECTORY_ALL_ACCESS: u32 = 0x000F_000F;
