//! `OBJECT_ATTRIBUTES` (wdm.h, 0x30 bytes on x64) and the `OBJ_*`
//! attribute flags, for the object routines drivers call
//! (`ZwCreateDirectoryObject`).

use crate::base::{HANDLE, UNICODE_STRING};
use core::ffi::c_void;

/// `OBJECT_ATTRIBUTES`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OBJECT_ATTRIBUTES {
    pub Length: u32,
    pub RootDirectory: HANDLE,
    pub ObjectName: *mut UNICODE_STRING,
    pub Attributes: u32,
    pub SecurityDescriptor: *mut c_void,
    pub SecurityQualityOfService: *mut c_void,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<OBJECT_ATTRIBUTES>() == 0x30);
    assert!(offset_of!(OBJECT_ATTRIBUTES, ObjectName) == 0x10);
    assert!(offset_of!(OBJECT_ATTRIBUTES, Attributes) == 0x18);
    assert!(offset_of!(OBJECT_ATTRIBUTES, SecurityDescriptor) == 0x20);
};

pub const OBJ_INHERIT: u32 = 0x0000_0002;
pub const OBJ_PERMANENT: u32 = 0x0000_0010;
pub const OBJ_EXCLUSIVE: u32 = 0x0000_0020;
pub const OBJ_CASE_INSENSITIVE: u32 = 0x0000_0040;
pub const OBJ_OPENIF: u32 = 0x0000_0080;
pub const OBJ_OPENLINK: u32 = 0x0000_0100;
pub const OBJ_KERNEL_HANDLE: u32 = 0x0000_0200;

/// `DIRECTORY_ALL_ACCESS`.
pub const DIRECTORY_ALL_ACCESS: u32 = 0x000F_000F;
