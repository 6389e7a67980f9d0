//! Driver objects (`\Driver\X`, `\FileSystem\X`): created for built-in
//! drivers and for every loaded driver image by [`create_driver_object`]
//! (`IoCreateDriver` / the object half of `IopLoadDriver`), which calls the
//! driver's `DriverEntry`.

use super::*;
use core::ptr;

/// What the I/O manager keeps after the documented `DRIVER_EXTENSION`.
#[repr(C)]
pub struct DriverExtensionEx {
    pub public: DRIVER_EXTENSION,
    /// The registry path handed to `DriverEntry` (`\Registry\Machine\System\...\Services\X`).
    pub registry_path: UNICODE_STRING,
    /// The image the I/O manager loaded for the driver (its base), unloaded
    /// when the driver object's last reference goes (`IopDeleteDriver`'s
    /// `MmUnloadSystemImage`); 0 while `DriverEntry` runs and for built-in
    /// drivers.
    unload_image: u64,
}

/// The driver object and its extension, allocated together.
#[repr(C)]
struct DriverBlock {
    driver: DRIVER_OBJECT,
    ext: DriverExtensionEx,
}

/// `IopInvalidDeviceRequest`: the dispatch routine of every major function
/// a driver does not handle; completes with STATUS_INVALID_DEVICE_REQUEST.
///
/// # Safety
/// Called by `IofCallDriver` with the IRP it owns.
pub unsafe extern "system" fn invalid_device_request(
    _device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
) -> NtStatus {
    // SAFETY: the dispatch routine owns the IRP.
    unsafe {
        (*irp).IoStatus.Status = STATUS_INVALID_DEVICE_REQUEST;
        (*irp).IoStatus.Information = 0;
        super::irp::iof_complete_request(irp, IO_NO_INCREMENT);
    }
    STATUS_INVALID_DEVICE_REQUEST
}

/// A driver object created by [`create_driver_object`]: its address and
/// object id. The object is permanent (in `\Driver` or `\FileSystem`) until
/// [`unload_driver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverHandle {
    pub driver: *mut DRIVER_OBJECT,
    pub id: ObjectId,
}

// SAFETY: the driver object is pool memory shared by every processor; the
// handle is just its address.
unsafe impl Send for DriverHandle {}

/// `IoCreateDriver` / `IopLoadDriver`'s object half: creates the driver
/// object `name` (a full path, `\Driver\Null` or `\FileSystem\Ntfs`) with
/// every major function set to `invalid_device_request`, and calls `init`
/// (`DriverEntry`) with it and `registry_path`. `image` is the loaded
/// image's base and size (`DriverStart`/`DriverSize`; 0 for built-in
/// drivers) and `section` its loader entry (`DriverSection`).
///
/// If `DriverEntry` fails, every device object the driver created is
/// deleted, the object is removed from the namespace and the status is
/// returned. STATUS_OBJECT_NAME_COLLISION if a driver of that name exists.
pub fn create_driver_object(
    name: &str,
    init: DRIVER_INITIALIZE,
    registry_path: &str,
    image: (u64, u32),
    section: *mut core::ffi::c_void,
) -> Result<DriverHandle, NtStatus> {
    let body = allocate_body(
        IoKind::Driver,
        core::mem::size_of::<DriverBlock>(),
        TAG_DRIVER,
    )?;
    let block = body as *mut DriverBlock;
    let mut driver_name = alloc_unicode(name)?;
    let mut reg = match alloc_unicode(registry_path) {
        Ok(r) => r,
        Err(e) => {
            free_unicode(&mut driver_name);
            free_body(body, TAG_DRIVER);
            return Err(e);
        }
    };
    let service = registry_path.rsplit('\\').next().unwrap_or("");
    // SAFETY: `block` is a fresh zeroed allocation of a DriverBlock.
    unsafe {
        let d = ptr::addr_of_mut!((*block).driver);
        let ext = ptr::addr_of_mut!((*block).ext);
        (*d).Type = IO_TYPE_DRIVER;
        (*d).Size = core::mem::size_of::<DRIVER_OBJECT>() as i16;
        (*d).DriverStart = image.0 as *mut core::ffi::c_void;
        (*d).DriverSize = image.1;
        (*d).DriverSection = section;
        (*d).DriverExtension = ext as *mut DRIVER_EXTENSION;
        (*d).DriverName = driver_name;
        (*d).DriverInit = Some(init);
        (*d).MajorFunction = [Some(invalid_device_request as DRIVER_DISPATCH); IRP_MJ_COUNT];
        if image.0 == 0 {
            (*d).Flags |= DRVO_BUILTIN_DRIVER;
        }
        (*ext).public.DriverObject = d;
        (*ext).registry_path = reg;
        // ServiceKeyName: the registry path's last component, inside the same buffer.
        let units = service.encode_utf16().count();
        if units > 0 {
            let total = reg.Length as usize / 2;
            (*ext).public.ServiceKeyName = UNICODE_STRING {
                Length: (units * 2) as u16,
                MaximumLength: (units * 2) as u16,
                Buffer: reg.Buffer.add(total - units),
            };
        }
    }
    let id = match insert_object(
        &IO_DRIVER_OBJECT_TYPE,
        IoKind::Driver,
        body,
        TAG_DRIVER,
        Some(name),
        ::ob::OBJ_PERMANENT | ::ob::OBJ_CASE_INSENSITIVE,
    ) {
        Ok(id) => id,
        Err(e) => {
            free_unicode(&mut driver_name);
            free_unicode(&mut reg);
            return Err(e);
        }
    };
    let driver = body as *mut DRIVER_OBJECT;
    // SAFETY: `reg` stays allocated with the driver object; DriverEntry
    // gets the object it now owns.
    let status = unsafe {
        let reg_ptr = ptr::addr_of_mut!((*block).ext.registry_path);
        init(driver, reg_ptr)
    };
    if !status.is_success() {
        crate::dbg_println!("io: DriverEntry of {name} failed with {status:?}");
        delete_all_devices(driver);
        let _ = crate::ob::with_namespace(|ns| ns.make_temporary(id));
        ob_dereference_object(id);
        return Err(status);
    }
    // `IopReadyDeviceObjects`: devices created in DriverEntry are ready.
    device::DATABASE_LOCK.with(|_| {
        // SAFETY: the driver object is live (permanent); its device list
        // changes only under the database lock.
        unsafe {
            (*driver).Flags |= DRVO_INITIALIZED;
            let mut dev = (*driver).DeviceObject;
            while !dev.is_null() {
                (*dev).Flags &= !DO_DEVICE_INITIALIZING;
                dev = (*dev).NextDevice;
            }
        }
    });
    Ok(DriverHandle { driver, id })
}

/// Deletes every device object still on the driver's list (`IoDeleteDevice`).
fn delete_all_devices(driver: *mut DRIVER_OBJECT) {
    loop {
        // SAFETY: the driver object is live; its device list is ours to walk.
        let dev = unsafe { (*driver).DeviceObject };
        if dev.is_null() {
            break;
        }
        // SAFETY: a device on the driver's list is live until deleted here.
        unsafe {
            if !(*dev).AttachedDevice.is_null() || !device::attached_to(dev).is_null() {
                device::io_detach_device(dev);
            }
        }
        // SAFETY: a device object from the driver's list.
        unsafe { device::io_delete_device(dev) };
    }
}

/// Unloads a driver (the object half of `IopUnloadDriver`): calls
/// `DriverUnload` if it has one (STATUS_INVALID_DEVICE_REQUEST if not),
/// deletes the device objects it left, and makes the object temporary so
/// it goes with its last reference.
pub fn unload_driver(h: DriverHandle) -> Result<(), NtStatus> {
    // SAFETY: the handle names a live, permanent driver object.
    let unload = unsafe { (*h.driver).DriverUnload };
    let Some(unload) = unload else {
        return Err(STATUS_INVALID_DEVICE_REQUEST);
    };
    // SAFETY: the driver object is live; its unload routine gets it.
    unsafe {
        (*h.driver).Flags |= DRVO_UNLOAD_INVOKED;
        unload(h.driver);
    }
    delete_all_devices(h.driver);
    crate::ob::with_namespace(|ns| ns.make_temporary(h.id))?;
    ob_dereference_object(h.id);
    Ok(())
}

/// Makes the driver's image go with the driver object's last reference
/// (the load succeeded: from now on the object owns the image).
pub(super) fn unload_image_on_delete(h: DriverHandle, base: u64) {
    let block = h.driver as *mut DriverBlock;
    // SAFETY: the handle names a live driver object, allocated as a
    // DriverBlock by create_driver_object; only its loader writes this.
    unsafe { (*block).ext.unload_image = base };
}

/// The driver object's delete procedure (`IopDeleteDriver`): its strings,
/// and its image if the I/O manager loaded one. Devices hold a reference on
/// their driver object, so the image stays mapped while any of its devices
/// (a deleted one with files still open on it included) can still receive
/// a request.
pub(super) fn delete_driver(body: u64) {
    let block = body as *mut DriverBlock;
    // SAFETY: the last reference went: nothing else uses the object.
    let image = unsafe {
        free_unicode(&mut (*block).driver.DriverName);
        free_unicode(&mut (*block).ext.registry_path);
        (*block).ext.unload_image
    };
    if image != 0 {
        if let Err(e) = crate::mm::ldr::mm_unload_system_image(image) {
            crate::dbg_println!("io: driver image at {image:#x} did not unload: {e:?}");
        }
    }
}

/// The driver object named `name` (`\Driver\X`), if one exists.
pub fn find_driver(name: &str) -> Option<*mut DRIVER_OBJECT> {
    let id = match crate::ob::with_namespace(|ns| ns.lookup(name, ::ob::OBJ_CASE_INSENSITIVE, None))
    {
        Ok(::ob::namespace::Lookup::Found(id)) => id,
        _ => return None,
    };
    match body_of(id) {
        Some((b, IoKind::Driver)) => Some(b as *mut DRIVER_OBJECT),
        _ => None,
    }
}
