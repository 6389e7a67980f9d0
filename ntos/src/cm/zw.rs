//! The configuration manager's `Zw*` exports for drivers (wdm.h):
//! `ZwCreateKey`, `ZwOpenKey`, `ZwSetValueKey`, `ZwQueryValueKey`,
//! `ZwEnumerateValueKey`, `ZwClose`, over the `Nt*` services with a
//! kernel-mode previous mode (what a `Zw` call from a driver means).
//! `KeyValueBasicInformation`, `KeyValueFullInformation` and
//! `KeyValuePartialInformation` answers are laid out as Windows does
//! (`wdk::registry`); a buffer smaller than the fixed header is
//! `STATUS_BUFFER_TOO_SMALL`, one that holds the header but not the rest
//! gets the header and `STATUS_BUFFER_OVERFLOW`, both with the length
//! needed in `ResultLength`.
//!
//! Not implemented (`STATUS_NOT_IMPLEMENTED`): names relative to a
//! `RootDirectory` handle, other information classes, and `Class` strings
//! on new keys (ignored, as ntrs keys have no class).
#![allow(non_snake_case, non_upper_case_globals)]

use super::*;
use crate::ob::object::Mode;
use core::ffi::c_void;
use wdk::registry::*;
use wdk::{HANDLE, UNICODE_STRING};

const K: Mode = Mode::KernelMode;

/// The absolute key name in `OBJECT_ATTRIBUTES`.
///
/// # Safety
/// `oa` null or readable, its `ObjectName` null or a readable string.
unsafe fn name_of(oa: *const OBJECT_ATTRIBUTES) -> Result<String, NtStatus> {
    // SAFETY: the caller guarantees the pointers.
    unsafe {
        let oa = oa.as_ref().ok_or(STATUS_INVALID_PARAMETER)?;
        if !oa.RootDirectory.is_null() {
            return Err(STATUS_NOT_IMPLEMENTED);
        }
        let n = oa.ObjectName.as_ref().ok_or(STATUS_OBJECT_NAME_INVALID)?;
        Ok(String::from_utf16_lossy(n.as_slice()))
    }
}

/// # Safety
/// `s` null or readable.
unsafe fn value_name(s: *const UNICODE_STRING) -> String {
    // SAFETY: the caller guarantees `s`.
    unsafe { s.as_ref() }
        // SAFETY: a readable UNICODE_STRING describes readable memory.
        .map(|s| String::from_utf16_lossy(unsafe { s.as_slice() }))
        .unwrap_or_default()
}

/// `ZwCreateKey`.
///
/// # Safety
/// Driver-supplied pointers valid (`Disposition` may be null).
#[no_mangle]
pub unsafe extern "system" fn ZwCreateKey(
    KeyHandle: *mut HANDLE,
    DesiredAccess: u32,
    ObjectAttributes: *mut OBJECT_ATTRIBUTES,
    _TitleIndex: u32,
    _Class: *mut UNICODE_STRING,
    CreateOptions: u32,
    Disposition: *mut u32,
) -> NtStatus {
    if KeyHandle.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let name = match name_of(ObjectAttributes) {
            Ok(n) => n,
            Err(s) => return s,
        };
        match nt_create_key(&name, DesiredAccess, CreateOptions, K) {
            Ok((h, d)) => {
                *KeyHandle = h as HANDLE;
                if let Some(d2) = Disposition.as_mut() {
                    *d2 = d;
                }
                STATUS_SUCCESS
            }
            Err(s) => s,
        }
    }
}

/// `ZwOpenKey`.
///
/// # Safety
/// Driver-supplied pointers valid.
#[no_mangle]
pub unsafe extern "system" fn ZwOpenKey(
    KeyHandle: *mut HANDLE,
    DesiredAccess: u32,
    ObjectAttributes: *mut OBJECT_ATTRIBUTES,
) -> NtStatus {
    if KeyHandle.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let name = match name_of(ObjectAttributes) {
            Ok(n) => n,
            Err(s) => return s,
        };
        match nt_open_key(&name, DesiredAccess, K) {
            Ok(h) => {
                *KeyHandle = h as HANDLE;
                STATUS_SUCCESS
            }
            Err(s) => s,
        }
    }
}

/// `ZwSetValueKey`.
///
/// # Safety
/// `ValueName` null or readable; `Data` holds `DataSize` readable bytes.
#[no_mangle]
pub unsafe extern "system" fn ZwSetValueKey(
    KeyHandle: HANDLE,
    ValueName: *mut UNICODE_STRING,
    _TitleIndex: u32,
    Type: u32,
    Data: *mut c_void,
    DataSize: u32,
) -> NtStatus {
    if Data.is_null() && DataSize != 0 {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let name = value_name(ValueName);
        let data: &[u8] = if DataSize == 0 {
            &[]
        } else {
            core::slice::from_raw_parts(Data as *const u8, DataSize as usize)
        };
        nt_set_value_key(KeyHandle as u64, &name, Type, data, K)
    }
}

/// Lays out a value as `class` asks into `out`: (status, length needed).
fn value_information(
    class: u32,
    name: &str,
    ty: u32,
    data: &[u8],
    out: &mut [u8],
) -> (NtStatus, usize) {
    let name16: Vec<u8> = name.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let (fixed, bytes) = match class {
        KeyValueBasicInformation => {
            let mut b = Vec::new();
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&(name16.len() as u32).to_le_bytes());
            b.extend_from_slice(&name16);
            (KEY_VALUE_BASIC_INFORMATION_NAME_OFFSET, b)
        }
        KeyValueFullInformation => {
            // Data after the name, 8-byte aligned as Windows places it.
            let data_offset =
                (KEY_VALUE_FULL_INFORMATION_NAME_OFFSET + name16.len()).next_multiple_of(8);
            let mut b = Vec::new();
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&(data_offset as u32).to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(&(name16.len() as u32).to_le_bytes());
            b.extend_from_slice(&name16);
            b.resize(data_offset, 0);
            b.extend_from_slice(data);
            (KEY_VALUE_FULL_INFORMATION_NAME_OFFSET, b)
        }
        KeyValuePartialInformation => {
            let mut b = Vec::new();
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(data);
            (KEY_VALUE_PARTIAL_INFORMATION_DATA_OFFSET, b)
        }
        _ => return (STATUS_NOT_IMPLEMENTED, 0),
    };
    if out.len() < fixed {
        return (STATUS_BUFFER_TOO_SMALL, bytes.len());
    }
    if out.len() < bytes.len() {
        out[..fixed].copy_from_slice(&bytes[..fixed]);
        return (STATUS_BUFFER_OVERFLOW, bytes.len());
    }
    out[..bytes.len()].copy_from_slice(&bytes);
    (STATUS_SUCCESS, bytes.len())
}

/// # Safety
/// `buf` holds `len` writable bytes (or is null with `len` 0);
/// `result` null or writable.
unsafe fn answer(
    r: Result<(String, u32, Vec<u8>), NtStatus>,
    class: u32,
    buf: *mut c_void,
    len: u32,
    result: *mut u32,
) -> NtStatus {
    let (name, ty, data) = match r {
        Ok(v) => v,
        Err(s) => return s,
    };
    if buf.is_null() && len != 0 {
        return STATUS_INVALID_PARAMETER;
    }
    let out: &mut [u8] = if len == 0 {
        &mut []
    } else {
        // SAFETY: per the contract, `buf` holds `len` writable bytes.
        unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, len as usize) }
    };
    let (s, need) = value_information(class, &name, ty, &data, out);
    // SAFETY: per the contract.
    if let Some(r) = unsafe { result.as_mut() } {
        *r = need as u32;
    }
    s
}

/// `ZwQueryValueKey`.
///
/// # Safety
/// `ValueName` null or readable; `KeyValueInformation` holds `Length`
/// writable bytes; `ResultLength` writable.
#[no_mangle]
pub unsafe extern "system" fn ZwQueryValueKey(
    KeyHandle: HANDLE,
    ValueName: *mut UNICODE_STRING,
    KeyValueInformationClass: u32,
    KeyValueInformation: *mut c_void,
    Length: u32,
    ResultLength: *mut u32,
) -> NtStatus {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        let name = value_name(ValueName);
        let r = nt_query_value_key(KeyHandle as u64, &name, K).map(|(t, d)| (name.clone(), t, d));
        answer(
            r,
            KeyValueInformationClass,
            KeyValueInformation,
            Length,
            ResultLength,
        )
    }
}

/// `ZwEnumerateValueKey`.
///
/// # Safety
/// As `ZwQueryValueKey`.
#[no_mangle]
pub unsafe extern "system" fn ZwEnumerateValueKey(
    KeyHandle: HANDLE,
    Index: u32,
    KeyValueInformationClass: u32,
    KeyValueInformation: *mut c_void,
    Length: u32,
    ResultLength: *mut u32,
) -> NtStatus {
    let r =
        nt_enumerate_value_key(KeyHandle as u64, Index, K).map(|v| (v.name, v.value_type, v.data));
    // SAFETY: forwarded caller guarantees.
    unsafe {
        answer(
            r,
            KeyValueInformationClass,
            KeyValueInformation,
            Length,
            ResultLength,
        )
    }
}

/// `ZwClose`.
#[no_mangle]
pub extern "system" fn ZwClose(Handle: HANDLE) -> NtStatus {
    crate::ob::handle::nt_close(Handle as u64)
}
