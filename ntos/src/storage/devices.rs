//! The built-in volume manager's device objects and dispatch routines:
//! `\Driver\volmgr` (a built-in driver object made with the I/O manager's
//! `IoCreateDriver` path) owns `\Device\HarddiskVolumeN`, `DO_DIRECT_IO`.
//! `IRP_MJ_READ`/`IRP_MJ_WRITE` map the MDL and run
//! [`Stack::read`]/[`Stack::write`] (a request to disk.sys's
//! `\Device\Harddisk0\DR0` at the partition's offset),
//! `IRP_MJ_DEVICE_CONTROL` runs [`Stack::ioctl`] on the METHOD_BUFFERED
//! system buffer, `IRP_MJ_FLUSH_BUFFERS` flushes DR0. Requests complete
//! synchronously with `IO_DISK_INCREMENT`. (`\Device\Harddisk0\DR0` itself
//! is disk.sys's.)

use super::*;
use wdk::*;

/// The device extension: which device of the stack this is.
#[repr(C)]
struct Extension {
    kind: u32,
    number: u32,
}

const KIND_DISK: u32 = 1;
const KIND_VOLUME: u32 = 2;

/// The stack device behind a device object.
///
/// # Safety
/// `dev` is one of this module's device objects.
unsafe fn device_of(dev: *mut DEVICE_OBJECT) -> Option<Device> {
    // SAFETY: our devices carry an `Extension` (IoCreateDevice's extension).
    let e = unsafe { &*((*dev).DeviceExtension as *const Extension) };
    match e.kind {
        KIND_DISK => Some(Device::Disk(e.number)),
        KIND_VOLUME => Some(Device::Volume(e.number)),
        _ => None,
    }
}

/// Completes `irp` with `status` and `information`.
///
/// # Safety
/// The dispatch routine owns `irp`.
unsafe fn complete(irp: *mut IRP, status: NtStatus, information: usize) -> NtStatus {
    // SAFETY: forwarded ownership.
    unsafe {
        (*irp).IoStatus.Status = status;
        (*irp).IoStatus.Information = information;
        crate::io::irp::iof_complete_request(irp, IO_DISK_INCREMENT);
    }
    status
}

/// `IRP_MJ_CREATE`/`CLEANUP`/`CLOSE`: the raw device opens; a name below it
/// (`\GLOBAL??\C:\x`) needs a file system, which is not mounted yet.
unsafe extern "system" fn create_close(_dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the I/O manager hands us the IRP with a current stack location.
    unsafe {
        let stack = IoGetCurrentIrpStackLocation(irp);
        let named = (*stack).MajorFunction == IRP_MJ_CREATE
            && !(*stack).FileObject.is_null()
            && (*(*stack).FileObject).FileName.Length != 0;
        let status = if named {
            STATUS_OBJECT_NAME_NOT_FOUND
        } else {
            STATUS_SUCCESS
        };
        complete(irp, status, 0)
    }
}

/// `IRP_MJ_READ` / `IRP_MJ_WRITE`.
unsafe extern "system" fn read_write(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: as above; the MDL (DO_DIRECT_IO) describes `Length` locked bytes.
    unsafe {
        let Some(s) = stack() else {
            return complete(irp, STATUS_NO_SUCH_DEVICE, 0);
        };
        let Some(d) = device_of(dev) else {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0);
        };
        let stack = IoGetCurrentIrpStackLocation(irp);
        let len = (*stack).Parameters.Read.Length as usize;
        let off = (*stack).Parameters.Read.ByteOffset;
        let write = (*stack).MajorFunction == IRP_MJ_WRITE;
        let buf = if len == 0 {
            core::ptr::NonNull::<u8>::dangling().as_ptr()
        } else if (*irp).MdlAddress.is_null() {
            return complete(irp, STATUS_INVALID_PARAMETER, 0);
        } else {
            let va = crate::io::mdl::system_address((*irp).MdlAddress) as *mut u8;
            if va.is_null() {
                return complete(irp, STATUS_INSUFFICIENT_RESOURCES, 0);
            }
            va
        };
        let r = if write {
            s.write(d, off, core::slice::from_raw_parts(buf, len))
        } else {
            s.read(d, off, core::slice::from_raw_parts_mut(buf, len))
        };
        match r {
            Ok(n) => complete(irp, STATUS_SUCCESS, n),
            Err(e) => complete(irp, e, 0),
        }
    }
}

/// `IRP_MJ_DEVICE_CONTROL` (METHOD_BUFFERED codes).
unsafe extern "system" fn device_control(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: as above; the system buffer holds max(in, out) bytes.
    unsafe {
        let (Some(s), Some(d)) = (stack(), device_of(dev)) else {
            return complete(irp, STATUS_NO_SUCH_DEVICE, 0);
        };
        let stack = IoGetCurrentIrpStackLocation(irp);
        let code = (*stack).Parameters.DeviceIoControl.IoControlCode;
        let out_len = (*stack).Parameters.DeviceIoControl.OutputBufferLength as usize;
        if METHOD_FROM_CTL_CODE(code) != METHOD_BUFFERED {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0);
        }
        let sys = (*irp).AssociatedIrp.SystemBuffer as *mut u8;
        let mut empty = [0u8; 0];
        let out = if out_len == 0 || sys.is_null() {
            &mut empty[..]
        } else {
            core::slice::from_raw_parts_mut(sys, out_len)
        };
        let (status, info) = s.ioctl(d, code, out);
        complete(irp, status, info)
    }
}

/// `IRP_MJ_FLUSH_BUFFERS`.
unsafe extern "system" fn flush(_dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    let status = stack().map_or(STATUS_NO_SUCH_DEVICE, |s| s.flush());
    // SAFETY: we own the IRP.
    unsafe { complete(irp, status, 0) }
}

fn set_dispatch(driver: *mut DRIVER_OBJECT) {
    // SAFETY: called from DriverEntry with the driver object being initialized.
    unsafe {
        let mf = &mut (*driver).MajorFunction;
        mf[IRP_MJ_CREATE as usize] = Some(create_close);
        mf[IRP_MJ_CLEANUP as usize] = Some(create_close);
        mf[IRP_MJ_CLOSE as usize] = Some(create_close);
        mf[IRP_MJ_READ as usize] = Some(read_write);
        mf[IRP_MJ_WRITE as usize] = Some(read_write);
        mf[IRP_MJ_DEVICE_CONTROL as usize] = Some(device_control);
        mf[IRP_MJ_FLUSH_BUFFERS as usize] = Some(flush);
    }
}

/// Creates one device with its extension.
fn create_device(driver: *mut DRIVER_OBJECT, name: &str, kind: u32, number: u32) -> NtStatus {
    // SAFETY: `driver` is the driver object DriverEntry was given.
    let dev = match unsafe {
        crate::io::device::io_create_device(
            driver,
            core::mem::size_of::<Extension>() as u32,
            Some(name),
            FILE_DEVICE_DISK,
            0,
            false,
        )
    } {
        Ok(d) => d,
        Err(s) => return s,
    };
    // SAFETY: a fresh device object with an Extension-sized extension.
    unsafe {
        (*dev).Flags |= DO_DIRECT_IO;
        // Ready for requests (as a driver does once its device is set up).
        (*dev).Flags &= !DO_DEVICE_INITIALIZING;
        (*dev).AlignmentRequirement = 1; // FILE_WORD_ALIGNMENT: PRDT addresses are even
        (*((*dev).DeviceExtension as *mut Extension)) = Extension { kind, number };
    }
    STATUS_SUCCESS
}

/// volmgr.sys's `DriverEntry` (built in): `\Device\HarddiskVolumeN` per partition.
unsafe extern "system" fn volmgr_entry(
    driver: *mut DRIVER_OBJECT,
    _: *mut UNICODE_STRING,
) -> NtStatus {
    set_dispatch(driver);
    let Some(s) = stack() else {
        return STATUS_NO_SUCH_DEVICE;
    };
    for v in &s.volumes {
        let st = create_device(
            driver,
            &mountmgr::volume_device_name(v.number),
            KIND_VOLUME,
            v.number,
        );
        if st != STATUS_SUCCESS {
            return st;
        }
    }
    STATUS_SUCCESS
}

const SERVICES: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\";

/// Creates the built-in volmgr driver object and its devices.
pub fn create_devices() -> Result<(), NtStatus> {
    crate::io::driver::create_driver_object(
        "\\Driver\\volmgr",
        volmgr_entry,
        &alloc::format!("{SERVICES}volmgr"),
        (0, 0),
        core::ptr::null_mut(),
    )?;
    Ok(())
}
