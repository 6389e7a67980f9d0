//! ntfs.sys: the NTFS file system driver (*Windows Internals* 7th ed.,
//! Part 2 ch. 11, "NTFS file system driver"), over the `ntfs` crate
//! (lib/ntfs), which it reads and writes through a block device that sends
//! `IRP_MJ_READ`/`IRP_MJ_WRITE` to the volume (`vcb::VolumeIo`).
//!
//! `DriverEntry` creates the file system's control device `\Ntfs`
//! (`FILE_DEVICE_DISK_FILE_SYSTEM`) and registers it with
//! `IoRegisterFileSystem`; the I/O manager then offers it every disk
//! volume on its first open (`IRP_MN_MOUNT_VOLUME`). A volume whose boot
//! sector lib/ntfs accepts gets an unnamed volume device object whose
//! extension points at the volume control block (`Vcb`), and
//! `Vpb->DeviceObject` names it. What the driver handles and what it
//! returns STATUS_NOT_IMPLEMENTED for is listed in docs/ntfs.md ("The
//! driver").
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]
// Information classes keep their Windows names (FileBasicInformation, ...).
#![allow(non_upper_case_globals)]

extern crate alloc;

mod create;
mod dir;
mod fsctl;
mod info;
mod rw;
mod vcb;

use core::sync::atomic::{AtomicUsize, Ordering};
use nt::status::*;
use nt::NtStatus;
use rt::wdk::*;
use vcb::Vcb;

static NAME: [u16; 6] = rt::utf16("\\Ntfs\0");

/// The control device `\Ntfs`.
static CONTROL: AtomicUsize = AtomicUsize::new(0);
/// The driver object (volume devices are created on it).
static DRIVER: AtomicUsize = AtomicUsize::new(0);

/// Completes `irp` with `status` and `information`.
///
/// # Safety
/// We own `irp`.
pub(crate) unsafe fn complete(irp: *mut IRP, status: NtStatus, information: usize) -> NtStatus {
    // SAFETY: per the contract.
    unsafe {
        (*irp).IoStatus.Status = status;
        (*irp).IoStatus.Information = information;
        IoCompleteRequest(irp, IO_DISK_INCREMENT);
    }
    status
}

/// Every request to the control device or a volume device.
unsafe extern "system" fn dispatch(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the I/O manager passes a live device of ours and an IRP whose
    // current stack location is ours; we own the IRP until completed.
    unsafe {
        let sl = IoGetCurrentIrpStackLocation(irp);
        let major = (*sl).MajorFunction;
        if dev as usize == CONTROL.load(Ordering::Acquire) {
            let (s, i) = match major {
                IRP_MJ_FILE_SYSTEM_CONTROL if (*sl).MinorFunction == IRP_MN_MOUNT_VOLUME => {
                    (vcb::mount(sl), 0)
                }
                // Opening \Ntfs itself (FileName empty), cleanup, close.
                IRP_MJ_CREATE => {
                    if (*(*sl).FileObject).FileName.Length == 0 {
                        (STATUS_SUCCESS, FILE_OPENED)
                    } else {
                        (STATUS_OBJECT_PATH_NOT_FOUND, 0)
                    }
                }
                IRP_MJ_CLEANUP | IRP_MJ_CLOSE => (STATUS_SUCCESS, 0),
                _ => (STATUS_INVALID_DEVICE_REQUEST, 0),
            };
            return complete(irp, s, i);
        }
        let vcb = *((*dev).DeviceExtension as *mut *mut Vcb);
        if vcb.is_null() {
            return complete(irp, STATUS_VOLUME_DISMOUNTED, 0);
        }
        let (status, info) = vcb::dispatch_volume(&*vcb, irp, sl);
        complete(irp, status, info)
    }
}

/// `DriverEntry`: the control device `\Ntfs`, the dispatch table, and
/// `IoRegisterFileSystem`.
///
/// # Safety
/// Called by the I/O manager with a valid driver object.
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    _registry_path: *mut UNICODE_STRING,
) -> NtStatus {
    let mut name = rt::unicode_string(&NAME);
    let mut device: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: valid driver object, name and out pointer.
    let status = unsafe {
        IoCreateDevice(
            driver,
            0,
            &mut name,
            FILE_DEVICE_DISK_FILE_SYSTEM,
            0,
            0,
            &mut device,
        )
    };
    if !status.is_success() {
        return status;
    }
    DRIVER.store(driver as usize, Ordering::Release);
    CONTROL.store(device as usize, Ordering::Release);
    // SAFETY: the driver object is ours during DriverEntry; the device was
    // just created.
    unsafe {
        for mj in [
            IRP_MJ_CREATE,
            IRP_MJ_CLOSE,
            IRP_MJ_CLEANUP,
            IRP_MJ_READ,
            IRP_MJ_WRITE,
            IRP_MJ_QUERY_INFORMATION,
            IRP_MJ_SET_INFORMATION,
            IRP_MJ_FLUSH_BUFFERS,
            IRP_MJ_QUERY_VOLUME_INFORMATION,
            IRP_MJ_DIRECTORY_CONTROL,
            IRP_MJ_FILE_SYSTEM_CONTROL,
        ] {
            (*driver).MajorFunction[mj as usize] = Some(dispatch);
        }
        (*driver).FastIoDispatch = core::ptr::addr_of!(rw::FAST_IO).cast_mut();
        IoRegisterFileSystem(device);
    }
    STATUS_SUCCESS
}

/// The driver object (for `IoCreateDevice` at mount).
pub(crate) fn driver() -> *mut DRIVER_OBJECT {
    DRIVER.load(Ordering::Acquire) as *mut DRIVER_OBJECT
}
