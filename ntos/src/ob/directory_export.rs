//! `ZwCreateDirectoryObject` for drivers (class drivers
//! create `\Device\Harddisk<n>` this way). Kernel-mode callers only: the
//! name is absolute (a `RootDirectory` is `STATUS_NOT_IMPLEMENTED`), the
//! attributes `OBJ_PERMANENT`, `OBJ_OPENIF`, `OBJ_CASE_INSENSITIVE` and
//! `OBJ_KERNEL_HANDLE` are honoured, and a security descriptor is not
//! applied (`STATUS_NOT_IMPLEMENTED` if one is given).

use super::object::Mode;
use alloc::string::String;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;
use wdk::{HANDLE, OBJECT_ATTRIBUTES, UNICODE_STRING};

/// The string of a `UNICODE_STRING`.
///
/// # Safety
/// `s` is null or a readable `UNICODE_STRING` with a readable buffer.
unsafe fn string_of(s: *const UNICODE_STRING) -> Option<String> {
    // SAFETY: per the contract.
    unsafe {
        if s.is_null() || (*s).Buffer.is_null() || !(*s).Length.is_multiple_of(2) {
            return None;
        }
        let units = core::slice::from_raw_parts((*s).Buffer, (*s).Length as usize / 2);
        Some(String::from_utf16_lossy(units))
    }
}

/// `NtCreateDirectoryObject` for kernel callers: creates (or, with
/// `OBJ_OPENIF`, opens) the directory `name` and returns a handle.
pub fn nt_create_directory_object(
    name: &str,
    desired: u32,
    attributes: u32,
) -> Result<(u64, NtStatus), NtStatus> {
    use ::ob::namespace::{Body, TYPE_DIRECTORY};
    let keep = ::ob::OBJ_PERMANENT | ::ob::OBJ_OPENIF | ::ob::OBJ_CASE_INSENSITIVE;
    let (id, st) = super::with_namespace(|ns| {
        ns.insert(
            name,
            attributes & keep,
            TYPE_DIRECTORY,
            Body::Directory(Vec::new()),
        )
    })?;
    if attributes & ::ob::OBJ_PERMANENT != 0 && st == STATUS_SUCCESS {
        // A new permanent object outlives its handles: the name keeps a
        // reference (as the kernel's own permanent directories do).
        let _ = super::object::ob_reference_object(id);
    }
    let h = super::handle::ob_insert_object_handle(id, desired, attributes, Mode::KernelMode)?;
    Ok((h, st))
}

/// `ZwCreateDirectoryObject` export.
///
/// # Safety
/// `DirectoryHandle` is writable; `ObjectAttributes` and its name readable.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn ZwCreateDirectoryObject(
    DirectoryHandle: *mut HANDLE,
    DesiredAccess: u32,
    ObjectAttributes: *mut OBJECT_ATTRIBUTES,
) -> NtStatus {
    if DirectoryHandle.is_null() || ObjectAttributes.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: per the contract.
    let oa = unsafe { *ObjectAttributes };
    if oa.Length as usize != core::mem::size_of::<OBJECT_ATTRIBUTES>() {
        return STATUS_INVALID_PARAMETER;
    }
    if !oa.RootDirectory.is_null() || !oa.SecurityDescriptor.is_null() {
        return STATUS_NOT_IMPLEMENTED;
    }
    // SAFETY: per the contract.
    let Some(name) = (unsafe { string_of(oa.ObjectName) }) else {
        return STATUS_OBJECT_NAME_INVALID;
    };
    match nt_create_directory_object(&name, DesiredAccess, oa.Attributes) {
        Ok((h, st)) => {
            // SAFETY: per the contract.
            unsafe { *DirectoryHandle = h as HANDLE };
            st
        }
        Err(e) => e,
    }
}
