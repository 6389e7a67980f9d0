//! PnP notifications and device interfaces as drivers see them (wdm.h,
//! wdmguid.h): `IoRegisterPlugPlayNotification`'s categories and flags,
//! `DEVICE_INTERFACE_CHANGE_NOTIFICATION` and its event GUIDs, and
//! `IoGetDeviceInterfaces`' flag. Layouts from the MS documentation,
//! asserted below.

use crate::base::UNICODE_STRING;
use crate::disk::GUID;
use core::mem::{offset_of, size_of};

/// `IO_NOTIFICATION_EVENT_CATEGORY::EventCategoryHardwareProfileChange`.
#[allow(non_upper_case_globals)]
pub const EventCategoryHardwareProfileChange: u32 = 1;
/// `EventCategoryDeviceInterfaceChange`.
#[allow(non_upper_case_globals)]
pub const EventCategoryDeviceInterfaceChange: u32 = 2;
/// `EventCategoryTargetDeviceChange`.
#[allow(non_upper_case_globals)]
pub const EventCategoryTargetDeviceChange: u32 = 3;

/// `PNPNOTIFY_DEVICE_INTERFACE_INCLUDE_EXISTING_INTERFACES`: also call back
/// for every interface of the class already enabled.
pub const PNPNOTIFY_DEVICE_INTERFACE_INCLUDE_EXISTING_INTERFACES: u32 = 1;

/// `DEVICE_INTERFACE_INCLUDE_NONACTIVE` (`IoGetDeviceInterfaces`).
pub const DEVICE_INTERFACE_INCLUDE_NONACTIVE: u32 = 1;

/// `DRIVER_NOTIFICATION_CALLBACK_ROUTINE`.
pub type DRIVER_NOTIFICATION_CALLBACK_ROUTINE = unsafe extern "system" fn(
    NotificationStructure: *mut core::ffi::c_void,
    Context: *mut core::ffi::c_void,
) -> nt::NtStatus;

/// `DEVICE_INTERFACE_CHANGE_NOTIFICATION` (0x30 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DEVICE_INTERFACE_CHANGE_NOTIFICATION {
    /// 1.
    pub Version: u16,
    /// `sizeof(DEVICE_INTERFACE_CHANGE_NOTIFICATION)`.
    pub Size: u16,
    /// [`GUID_DEVICE_INTERFACE_ARRIVAL`] or [`GUID_DEVICE_INTERFACE_REMOVAL`].
    pub Event: GUID,
    pub InterfaceClassGuid: GUID,
    /// `\??\<instance path with # for \>#{<class GUID>}[\<reference string>]`.
    pub SymbolicLinkName: *mut UNICODE_STRING,
}

/// `GUID_DEVICE_INTERFACE_ARRIVAL` {cb3a4004-46f0-11d0-b08f-00609713053f}.
pub const GUID_DEVICE_INTERFACE_ARRIVAL: GUID = GUID {
    Data1: 0xcb3a_4004,
    Data2: 0x46f0,
    Data3: 0x11d0,
    Data4: [0xb0, 0x8f, 0x00, 0x60, 0x97, 0x13, 0x05, 0x3f],
};
/// `GUID_DEVICE_INTERFACE_REMOVAL` {cb3a4005-46f0-11d0-b08f-00609713053f}.
pub const GUID_DEVICE_INTERFACE_REMOVAL: GUID = GUID {
    Data1: 0xcb3a_4005,
    Data2: 0x46f0,
    Data3: 0x11d0,
    Data4: [0xb0, 0x8f, 0x00, 0x60, 0x97, 0x13, 0x05, 0x3f],
};

const _: () = {
    assert!(offset_of!(DEVICE_INTERFACE_CHANGE_NOTIFICATION, Event) == 4);
    assert!(offset_of!(DEVICE_INTERFACE_CHANGE_NOTIFICATION, InterfaceClassGuid) == 20);
    assert!(offset_of!(DEVICE_INTERFACE_CHANGE_NOTIFICATION, SymbolicLinkName) == 40);
    assert!(size_of::<DEVICE_INTERFACE_CHANGE_NOTIFICATION>() == 48);
};
