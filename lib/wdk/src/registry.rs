//! What the `Zw*` registry routines take and return (wdm.h):
//! `OBJECT_ATTRIBUTES`, the `KEY_VALUE_INFORMATION_CLASS` values and the
//! `KEY_VALUE_*_INFORMATION` headers, in the Windows x64 layouts (asserted).

use crate::base::{HANDLE, UNICODE_STRING};
use core::ffi::c_void;
use core::mem::{offset_of, size_of};

/// `OBJECT_ATTRIBUTES` (0x30 bytes).
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

/// `OBJ_CASE_INSENSITIVE`.
pub const OBJ_CASE_INSENSITIVE: u32 = 0x40;
/// `OBJ_KERNEL_HANDLE`.
pub const OBJ_KERNEL_HANDLE: u32 = 0x200;

/// `KeyValueBasicInformation`.
#[allow(non_upper_case_globals)]
pub const KeyValueBasicInformation: u32 = 0;
/// `KeyValueFullInformation`.
#[allow(non_upper_case_globals)]
pub const KeyValueFullInformation: u32 = 1;
/// `KeyValuePartialInformation`.
#[allow(non_upper_case_globals)]
pub const KeyValuePartialInformation: u32 = 2;

/// `KEY_VALUE_BASIC_INFORMATION` header (`Name` follows at 0x0C).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KEY_VALUE_BASIC_INFORMATION {
    pub TitleIndex: u32,
    pub Type: u32,
    pub NameLength: u32,
}
/// `FIELD_OFFSET(KEY_VALUE_BASIC_INFORMATION, Name)`.
pub const KEY_VALUE_BASIC_INFORMATION_NAME_OFFSET: usize = 0x0C;

/// `KEY_VALUE_FULL_INFORMATION` header (`Name` at 0x14, the data at `DataOffset`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KEY_VALUE_FULL_INFORMATION {
    pub TitleIndex: u32,
    pub Type: u32,
    pub DataOffset: u32,
    pub DataLength: u32,
    pub NameLength: u32,
}
/// `FIELD_OFFSET(KEY_VALUE_FULL_INFORMATION, Name)`.
pub const KEY_VALUE_FULL_INFORMATION_NAME_OFFSET: usize = 0x14;

/// `KEY_VALUE_PARTIAL_INFORMATION` header (`Data` at 0x0C).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KEY_VALUE_PARTIAL_INFORMATION {
    pub TitleIndex: u32,
    pub Type: u32,
    pub DataLength: u32,
}
/// `FIELD_OFFSET(KEY_VALUE_PARTIAL_INFORMATION, Data)`.
pub const KEY_VALUE_PARTIAL_INFORMATION_DATA_OFFSET: usize = 0x0C;

/// `REG_OPTION_NON_VOLATILE`.
pub const REG_OPTION_NON_VOLATILE: u32 = 0;
/// `REG_OPTION_VOLATILE`.
pub const REG_OPTION_VOLATILE: u32 = 1;
/// `REG_SZ`.
pub const REG_SZ: u32 = 1;
/// `REG_BINARY`.
pub const REG_BINARY: u32 = 3;
/// `REG_DWORD`.
pub const REG_DWORD: u32 = 4;
/// `REG_MULTI_SZ`.
pub const REG_MULTI_SZ: u32 = 7;
/// `KEY_READ`.
pub const KEY_READ: u32 = 0x20019;
/// `KEY_ALL_ACCESS`.
pub const KEY_ALL_ACCESS: u32 = 0xF003F;

const _: () = {
    assert!(offset_of!(OBJECT_ATTRIBUTES, RootDirectory) == 0x08);
    assert!(offset_of!(OBJECT_ATTRIBUTES, ObjectName) == 0x10);
    assert!(offset_of!(OBJECT_ATTRIBUTES, Attributes) == 0x18);
    assert!(offset_of!(OBJECT_ATTRIBUTES, SecurityDescriptor) == 0x20);
    assert!(size_of::<OBJECT_ATTRIBUTES>() == 0x30);
    assert!(size_of::<KEY_VALUE_BASIC_INFORMATION>() == KEY_VALUE_BASIC_INFORMATION_NAME_OFFSET);
    assert!(size_of::<KEY_VALUE_FULL_INFORMATION>() == KEY_VALUE_FULL_INFORMATION_NAME_OFFSET);
    assert!(
        size_of::<KEY_VALUE_PARTIAL_INFORMATION>() == KEY_VALUE_PARTIAL_INFORMATION_DATA_OFFSET
    );
};
