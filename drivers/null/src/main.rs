//! null.sys: the `\Device\Null` device with Windows' semantics: opens,
//! cleanups and closes succeed, a read returns `STATUS_END_OF_FILE` with
//! nothing transferred, a write succeeds with every byte "written"
//! (`Information` = the length), a flush succeeds. Other requests get the
//! I/O manager's default (`STATUS_INVALID_DEVICE_REQUEST`). It has no
//! `DriverUnload`: like a system driver it stays loaded.
#![no_std]
#![warn(clippy::undocumented_unsafe_blocks)]
#![no_main]

use nt::status::*;
use rt::wdk::*;

static NAME: [u16; 13] = rt::utf16("\\Device\\Null\0");

/// The dispatch routine of every request null.sys handles.
unsafe extern "system" fn dispatch(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> nt::NtStatus {
    // SAFETY: the I/O manager passes an IRP whose current stack location
    // is ours; we own the IRP until we complete it.
    unsafe {
        let sl = IoGetCurrentIrpStackLocation(irp);
        let (status, information) = match (*sl).MajorFunction {
            IRP_MJ_READ => (STATUS_END_OF_FILE, 0),
            IRP_MJ_WRITE => (STATUS_SUCCESS, (*sl).Parameters.Write.Length as usize),
            _ => (STATUS_SUCCESS, 0),
        };
        (*irp).IoStatus.Status = status;
        (*irp).IoStatus.Information = information;
        IoCompleteRequest(irp, IO_NO_INCREMENT);
        status
    }
}

/// `DriverEntry`: creates `\Device\Null`.
///
/// # Safety
/// Called by the I/O manager with a valid driver object.
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    _registry_path: *mut UNICODE_STRING,
) -> nt::NtStatus {
    let mut name = rt::unicode_string(&NAME);
    let mut device: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: valid driver object, name and out pointer.
    let status = unsafe {
        IoCreateDevice(
            driver,
            0,
            &mut name,
            FILE_DEVICE_NULL,
            FILE_DEVICE_SECURE_OPEN,
            0,
            &mut device,
        )
    };
    if !status.is_success() {
        return status;
    }
    // SAFETY: the driver object is ours during DriverEntry; the device was
    // just created.
    unsafe {
        for mj in [
            IRP_MJ_CREATE,
            IRP_MJ_CLOSE,
            IRP_MJ_CLEANUP,
            IRP_MJ_READ,
            IRP_MJ_WRITE,
            IRP_MJ_FLUSH_BUFFERS,
        ] {
            (*driver).MajorFunction[mj as usize] = Some(dispatch);
        }
        (*device).Flags &= !DO_DEVICE_INITIALIZING;
    }
    STATUS_SUCCESS
}
