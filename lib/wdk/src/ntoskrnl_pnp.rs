//! ntoskrnl imports (feature `driver`) of the storage drivers' work:
//! device interfaces and PnP notifications (`ntos/exports/pnp-interface.txt`)
//! and the registry's `Zw*` routines (`ntos/exports/cm-zw.txt`).

use crate::base::*;
use crate::disk::GUID;
use crate::io::*;
use crate::pnpnotify::DRIVER_NOTIFICATION_CALLBACK_ROUTINE;
use crate::registry::OBJECT_ATTRIBUTES;
use core::ffi::c_void;
use nt::NtStatus;

#[link(name = "ntoskrnl")]
extern "system" {
    /// `IoInvalidateDeviceRelations` (only `BusRelations` is acted on).
    pub fn IoInvalidateDeviceRelations(DeviceObject: *mut DEVICE_OBJECT, Type: u32);
    pub fn IoRegisterDeviceInterface(
        PhysicalDeviceObject: *mut DEVICE_OBJECT,
        InterfaceClassGuid: *const GUID,
        ReferenceString: *mut UNICODE_STRING,
        SymbolicLinkName: *mut UNICODE_STRING,
    ) -> NtStatus;
    pub fn IoSetDeviceInterfaceState(
        SymbolicLinkName: *mut UNICODE_STRING,
        Enable: BOOLEAN,
    ) -> NtStatus;
    pub fn IoGetDeviceInterfaces(
        InterfaceClassGuid: *const GUID,
        PhysicalDeviceObject: *mut DEVICE_OBJECT,
        Flags: u32,
        SymbolicLinkList: *mut *mut u16,
    ) -> NtStatus;
    pub fn IoRegisterPlugPlayNotification(
        EventCategory: u32,
        EventCategoryFlags: u32,
        EventCategoryData: *mut c_void,
        DriverObject: *mut DRIVER_OBJECT,
        CallbackRoutine: DRIVER_NOTIFICATION_CALLBACK_ROUTINE,
        Context: *mut c_void,
        NotificationEntry: *mut *mut c_void,
    ) -> NtStatus;
    pub fn IoUnregisterPlugPlayNotificationEx(NotificationEntry: *mut c_void) -> NtStatus;
    pub fn RtlFreeUnicodeString(UnicodeString: *mut UNICODE_STRING);

    pub fn ZwCreateKey(
        KeyHandle: *mut HANDLE,
        DesiredAccess: ACCESS_MASK,
        ObjectAttributes: *mut OBJECT_ATTRIBUTES,
        TitleIndex: u32,
        Class: *mut UNICODE_STRING,
        CreateOptions: u32,
        Disposition: *mut u32,
    ) -> NtStatus;
    pub fn ZwOpenKey(
        KeyHandle: *mut HANDLE,
        DesiredAccess: ACCESS_MASK,
        ObjectAttributes: *mut OBJECT_ATTRIBUTES,
    ) -> NtStatus;
    pub fn ZwSetValueKey(
        KeyHandle: HANDLE,
        ValueName: *mut UNICODE_STRING,
        TitleIndex: u32,
        Type: u32,
        Data: *mut c_void,
        DataSize: u32,
    ) -> NtStatus;
    pub fn ZwQueryValueKey(
        KeyHandle: HANDLE,
        ValueName: *mut UNICODE_STRING,
        KeyValueInformationClass: u32,
        KeyValueInformation: *mut c_void,
        Length: u32,
        ResultLength: *mut u32,
    ) -> NtStatus;
    pub fn ZwEnumerateValueKey(
        KeyHandle: HANDLE,
        Index: u32,
        KeyValueInformationClass: u32,
        KeyValueInformation: *mut c_void,
        Length: u32,
        ResultLength: *mut u32,
    ) -> NtStatus;
    pub fn ZwClose(Handle: HANDLE) -> NtStatus;
}
