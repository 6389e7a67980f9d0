//! The stack's device object and dispatch routines: `\Driver\disk` owns
//! `\Device\Harddisk0\DR0` (a built-in driver object made with the I/O
//! manager's `IoCreateDriver` path), `DO_DIRECT_IO`. The volumes are
//! volmgr.sys's (`drivers/volmgr`). `IRP_MJ_READ`/`IRP_MJ_WRITE` map the MDL and
//! run [`Stack::read`]/[`Stack::write`], `IRP_MJ_DEVICE_CONTROL` runs
//! [`Stack::ioctl`] on the METHOD_BUFFERED system buffer,
//! `IRP_MJ_FLUSH_BUFFERS` issues FLUSH CACHE EXT. Requests complete
//! synchronously with `IO_DISK_INCREMENT`.

use super::*;
use wdk::*;

/// The device extension: which device of the stack this is.
#[repr(C)]
struct Extension {
    kind: u32,
    number: u32,
}

const KIND_DISK: u32 = 1;

/// The stack device behind a device object.
///
/// # Safety
/// `dev` is one of this module's device objects.
unsafe fn device_of(dev: *mut DEVICE_OBJECT) -> Option<Device> {
    // SAFETY: our devices carry an `Extension` (IoCreateDevice's extension).
    let e = unsafe { &*((*dev).DeviceExtension as *const Extension) };
    match e.kind {
        KIND_DISK => Some(Device::Disk(e.number)),
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

/// `IRP_MJ_PNP`: disk.sys's part of `IRP_MN_START_DEVICE` (the built-in
/// disk is ready once the stack exists); other minor codes keep the status
/// the PnP manager set (the disk is the bottom of its stack here).
unsafe extern "system" fn pnp(_dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: we own the IRP; its current location is ours.
    unsafe {
        let stack = IoGetCurrentIrpStackLocation(irp);
        if (*stack).MinorFunction == IRP_MN_START_DEVICE {
            return complete(irp, STATUS_SUCCESS, 0);
        }
        let (s, i) = ((*irp).IoStatus.Status, (*irp).IoStatus.Information);
        complete(irp, s, i)
    }
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
        mf[IRP_MJ_PNP as usize] = Some(pnp);
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

/// disk.sys's `DriverEntry` (built in): `\Device\Harddisk0\DR0`.
unsafe extern "system" fn disk_entry(
    driver: *mut DRIVER_OBJECT,
    _: *mut UNICODE_STRING,
) -> NtStatus {
    set_dispatch(driver);
    let Some(s) = stack() else {
        return STATUS_NO_SUCH_DEVICE;
    };
    create_device(
        driver,
        &mountmgr::disk_device_name(s.disk.number),
        KIND_DISK,
        s.disk.number,
    )
}

const SERVICES: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\";

/// Creates the built-in disk driver object and DR0; returns DR0.
pub fn create_devices() -> Result<*mut DEVICE_OBJECT, NtStatus> {
    let h = crate::io::driver::create_driver_object(
        "\\Driver\\disk",
        disk_entry,
        &alloc::format!("{SERVICES}disk"),
        (0, 0),
        core::ptr::null_mut(),
    )?;
    // SAFETY: the driver object just created; DriverEntry made DR0 its
    // only device.
    let dr0 = unsafe { (*h.driver).DeviceObject };
    if dr0.is_null() {
        return Err(STATUS_NO_SUCH_DEVICE);
    }
    Ok(dr0)
}

/// Builds the rest of the disk's stack as the PnP manager builds a disk
/// stack: the disk class's upper filters (`Control\Class\{4d36e967-...}`
/// `UpperFilters` = partmgr) attach above DR0, then `IRP_MN_START_DEVICE`
/// goes to the top of the stack (partmgr passes it down, then reports the
/// partitions to volmgr.sys).
///
/// # Safety
/// `dr0` is the live DR0 device object.
pub unsafe fn start_disk_stack(dr0: *mut DEVICE_OBJECT) {
    let class = crate::io::pnp::interface::guid_string(&wdk::mountdev::GUID_DEVCLASS_DISKDRIVE);
    // SAFETY: DR0 is live (the caller's guarantee; disk never deletes it).
    let n = unsafe { crate::io::pnp::filters::add_filters(None, Some(&class), dr0, true) };
    if n == 0 {
        dbg_println!("storage: no upper filter on DR0 (partmgr not loaded?)");
    }
    let params = IO_STACK_LOCATION_PARAMETERS {
        StartDevice: StartDeviceParameters {
            AllocatedResources: core::ptr::null_mut(),
            AllocatedResourcesTranslated: core::ptr::null_mut(),
        },
    };
    // SAFETY: as above.
    let (s, _) = unsafe { crate::io::pnp::devices::send_pnp_irp(dr0, IRP_MN_START_DEVICE, params) };
    if !s.is_success() {
        dbg_println!("storage: the disk stack did not start: {s:?}");
    }
}
