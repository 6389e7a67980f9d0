//! Device objects (`IoCreateDevice`, `IoDeleteDevice`), device stacks
//! (`IoAttachDeviceToDeviceStack`, `IoDetachDevice`, `IoGetAttachedDevice`)
//! and symbolic links to devices (`IoCreateSymbolicLink`).
//!
//! A device object's allocation holds the `DEVICE_OBJECT`, the driver's
//! device extension and the `DEVOBJ_EXTENSION`, as NT lays them out.

use super::*;
use crate::ob::object::ob_reference_object;
use core::ptr;

/// `DOE_UNLOAD_PENDING`, `DOE_DELETE_PENDING`, `DOE_REMOVE_PENDING`,
/// `DOE_REMOVE_PROCESSED` (`DEVOBJ_EXTENSION.ExtensionFlags`): the PnP
/// manager sets the last two on every device of a stack being removed
/// (a query-remove that succeeded, a surprise removal; then the remove
/// IRP); new opens of such a device fail with STATUS_NO_SUCH_DEVICE.
pub const DOE_UNLOAD_PENDING: u32 = 0x1;
pub const DOE_DELETE_PENDING: u32 = 0x2;
pub const DOE_REMOVE_PENDING: u32 = 0x4;
pub const DOE_REMOVE_PROCESSED: u32 = 0x8;

/// The devices of the stack whose bottom is `pdo`, bottom first (under the
/// database lock, so the walk sees a consistent stack).
///
/// # Safety
/// `pdo` is a live device object.
pub unsafe fn stack_of(pdo: *mut DEVICE_OBJECT) -> alloc::vec::Vec<*mut DEVICE_OBJECT> {
    DATABASE_LOCK.with(|_| {
        let mut v = alloc::vec::Vec::new();
        let mut d = pdo;
        // SAFETY: attached devices are live while attached (under the lock).
        unsafe {
            while !d.is_null() && v.len() < 64 {
                v.push(d);
                d = (*d).AttachedDevice;
            }
        }
        v
    })
}

/// Sets (`set`) or clears `flags` in `ExtensionFlags` of every device of
/// `pdo`'s stack.
///
/// # Safety
/// `pdo` is a live device object.
pub unsafe fn set_stack_flags(pdo: *mut DEVICE_OBJECT, flags: u32, set: bool) {
    DATABASE_LOCK.with(|_| {
        let mut d = pdo;
        // SAFETY: as in stack_of.
        unsafe {
            while !d.is_null() {
                let doe = (*d).DeviceObjectExtension;
                if set {
                    (*doe).ExtensionFlags |= flags;
                } else {
                    (*doe).ExtensionFlags &= !flags;
                }
                d = (*d).AttachedDevice;
            }
        }
    })
}

/// Clears a PDO's removal flags (a PDO its bus reports again).
///
/// # Safety
/// `pdo` is a live device object.
pub unsafe fn clear_remove_flags(pdo: *mut DEVICE_OBJECT) {
    DATABASE_LOCK.with(|_| {
        // SAFETY: per the contract.
        unsafe {
            (*(*pdo).DeviceObjectExtension).ExtensionFlags &=
                !(DOE_REMOVE_PENDING | DOE_REMOVE_PROCESSED)
        }
    })
}

/// `IopDatabaseLock`: device stacks and drivers' device lists change under it.
pub(super) static DATABASE_LOCK: SpinLocked<(), { crate::ke::DISPATCH_LEVEL }> =
    SpinLocked::new(());

const fn align16(n: usize) -> usize {
    (n + 15) & !15
}

/// `IoCreateDevice`: a device object of `driver` with a zeroed extension of
/// `extension_size` bytes, named `name` (a full path such as
/// `\Device\Null`) or unnamed, `DO_DEVICE_INITIALIZING` until the driver
/// clears it (the I/O manager does for devices created in `DriverEntry`).
/// STATUS_OBJECT_NAME_COLLISION if the name exists.
///
/// # Safety
/// `driver` must be a driver object (checked against the live objects).
pub unsafe fn io_create_device(
    driver: *mut DRIVER_OBJECT,
    extension_size: u32,
    name: Option<&str>,
    device_type: u32,
    characteristics: u32,
    exclusive: bool,
) -> Result<*mut DEVICE_OBJECT, NtStatus> {
    let driver_id = object_of(driver as u64, IoKind::Driver).ok_or(STATUS_INVALID_PARAMETER)?;
    let dev_size = core::mem::size_of::<DEVICE_OBJECT>();
    let ext_size = align16(extension_size as usize);
    let total = dev_size + ext_size + core::mem::size_of::<DEVOBJ_EXTENSION>();
    if total > u16::MAX as usize {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let body = allocate_body(IoKind::Device, total, TAG_DEVICE)?;
    let dev = body as *mut DEVICE_OBJECT;
    // SAFETY: a fresh zeroed allocation of `total` bytes.
    unsafe {
        let doe = (body as usize + dev_size + ext_size) as *mut DEVOBJ_EXTENSION;
        (*dev).Type = IO_TYPE_DEVICE;
        (*dev).Size = (dev_size + extension_size as usize) as u16;
        (*dev).DriverObject = driver;
        (*dev).DeviceType = device_type;
        (*dev).Characteristics = characteristics;
        (*dev).StackSize = 1;
        (*dev).Flags = DO_DEVICE_INITIALIZING
            | if exclusive { DO_EXCLUSIVE } else { 0 }
            | if name.is_some() {
                DO_DEVICE_HAS_NAME
            } else {
                0
            };
        if extension_size != 0 {
            (*dev).DeviceExtension = (body as usize + dev_size) as *mut core::ffi::c_void;
        }
        (*dev).SectorSize = match device_type {
            FILE_DEVICE_DISK | FILE_DEVICE_DISK_FILE_SYSTEM | FILE_DEVICE_VIRTUAL_DISK => 512,
            FILE_DEVICE_CD_ROM | FILE_DEVICE_CD_ROM_FILE_SYSTEM => 2048,
            _ => 0,
        };
        InitializeListHead(ptr::addr_of_mut!((*dev).Queue.ListEntry));
        ::io::devqueue::initialize(ptr::addr_of_mut!((*dev).DeviceQueue));
        crate::ke::event::ke_initialize_event(
            ptr::addr_of_mut!((*dev).DeviceLock),
            SYNCHRONIZATION_EVENT,
            true,
        );
        (*doe).Type = IO_TYPE_DEVICE_OBJECT_EXTENSION;
        (*doe).Size = core::mem::size_of::<DEVOBJ_EXTENSION>() as u16;
        (*doe).DeviceObject = dev;
        (*dev).DeviceObjectExtension = doe;
    }
    // Disk-type devices get a VPB (IopCreateVpb), for the mount path.
    if super::fs::needs_vpb(device_type) {
        // SAFETY: the device is ours until inserted.
        if let Err(e) = unsafe { super::fs::create_vpb(dev) } {
            free_body(body, TAG_DEVICE);
            return Err(e);
        }
    }
    // SAFETY: the device is ours until inserted.
    let vpb = unsafe { (*dev).Vpb };
    if let Err(e) = insert_object(
        &IO_DEVICE_OBJECT_TYPE,
        IoKind::Device,
        body,
        TAG_DEVICE,
        name,
        ::ob::OBJ_CASE_INSENSITIVE,
    ) {
        // insert_object freed the body; the VPB is ours to free.
        if !vpb.is_null() {
            let _ = xpool::free(vpb as u64, super::fs::TAG_VPB);
        }
        return Err(e);
    }
    // The device keeps its driver object.
    let _ = ob_reference_object(driver_id);
    DATABASE_LOCK.with(|_| {
        // SAFETY: the driver's device list changes only under the database lock.
        unsafe {
            (*dev).NextDevice = (*driver).DeviceObject;
            (*driver).DeviceObject = dev;
        }
    });
    Ok(dev)
}

/// `IoDeleteDevice`: the device leaves its driver's list and the
/// namespace; the object goes when its last reference does (open files
/// keep it). A device still attached to a stack should be detached first.
///
/// # Safety
/// `dev` must be a device object (checked against the live objects).
pub unsafe fn io_delete_device(dev: *mut DEVICE_OBJECT) {
    let Some(id) = object_of(dev as u64, IoKind::Device) else {
        return;
    };
    DATABASE_LOCK.with(|_| {
        // SAFETY: the device is live; lists change only under the database lock.
        unsafe {
            (*(*dev).DeviceObjectExtension).ExtensionFlags |= DOE_DELETE_PENDING;
            let driver = (*dev).DriverObject;
            let mut link: *mut *mut DEVICE_OBJECT = ptr::addr_of_mut!((*driver).DeviceObject);
            while !(*link).is_null() {
                if *link == dev {
                    *link = (*dev).NextDevice;
                    break;
                }
                link = ptr::addr_of_mut!((**link).NextDevice);
            }
            (*dev).NextDevice = ptr::null_mut();
        }
    });
    let _ = crate::ob::with_namespace(|ns| ns.make_temporary(id));
    ob_dereference_object(id);
}

/// The device's delete procedure: its reference on the driver object goes.
pub(super) fn delete_device(body: u64) {
    let dev = body as *mut DEVICE_OBJECT;
    // SAFETY: the last reference went: nothing reaches the device or its VPB.
    unsafe { super::fs::free_vpb(dev) };
    // SAFETY: the last reference went; the driver object outlives its devices.
    let driver = unsafe { (*dev).DriverObject };
    if let Some(id) = object_of(driver as u64, IoKind::Driver) {
        ob_dereference_object(id);
    }
}

/// The device this one is attached to (`DEVOBJ_EXTENSION.AttachedTo`).
///
/// # Safety
/// `dev` must be a live device object.
pub unsafe fn attached_to(dev: *mut DEVICE_OBJECT) -> *mut DEVICE_OBJECT {
    // SAFETY: the caller guarantees `dev` is live.
    unsafe { (*(*dev).DeviceObjectExtension).AttachedTo }
}

/// `IoGetAttachedDevice`: the top of the stack `dev` is in.
///
/// # Safety
/// `dev` must be a live device object.
pub unsafe fn io_get_attached_device(mut dev: *mut DEVICE_OBJECT) -> *mut DEVICE_OBJECT {
    // SAFETY: attached devices are live while attached.
    unsafe {
        while !(*dev).AttachedDevice.is_null() {
            dev = (*dev).AttachedDevice;
        }
    }
    dev
}

/// `IoAttachDeviceToDeviceStack`: puts `source` on top of the stack
/// `target` is in and returns the device it now sits on (null if that
/// device is being deleted). The source's `StackSize` becomes one more than
/// the device below; alignment and sector size are inherited.
///
/// # Safety
/// Both must be live device objects; `source` must not be in a stack.
pub unsafe fn io_attach_device_to_device_stack(
    source: *mut DEVICE_OBJECT,
    target: *mut DEVICE_OBJECT,
) -> *mut DEVICE_OBJECT {
    DATABASE_LOCK.with(|_| {
        // SAFETY: the caller guarantees both are live; stacks change under the lock.
        unsafe {
            let top = io_get_attached_device(target);
            if (*(*top).DeviceObjectExtension).ExtensionFlags
                & (DOE_DELETE_PENDING | DOE_UNLOAD_PENDING)
                != 0
            {
                return ptr::null_mut();
            }
            (*top).AttachedDevice = source;
            (*source).StackSize = (*top).StackSize.saturating_add(1);
            (*source).AlignmentRequirement = (*top).AlignmentRequirement;
            if (*source).SectorSize == 0 {
                (*source).SectorSize = (*top).SectorSize;
            }
            (*(*source).DeviceObjectExtension).AttachedTo = top;
            top
        }
    })
}

/// `IoDetachDevice`: removes the device attached directly above `target`.
///
/// # Safety
/// `target` must be a live device object.
pub unsafe fn io_detach_device(target: *mut DEVICE_OBJECT) {
    DATABASE_LOCK.with(|_| {
        // SAFETY: the caller guarantees `target` is live; stacks change under the lock.
        unsafe {
            let above = (*target).AttachedDevice;
            if !above.is_null() {
                (*(*above).DeviceObjectExtension).AttachedTo = ptr::null_mut();
                (*target).AttachedDevice = ptr::null_mut();
            } else {
                // Called on the upper device itself: detach it from below.
                let below = attached_to(target);
                if !below.is_null() {
                    (*below).AttachedDevice = ptr::null_mut();
                    (*(*target).DeviceObjectExtension).AttachedTo = ptr::null_mut();
                }
            }
        }
    });
}

/// `IoCreateSymbolicLink`: a permanent symbolic link `link` to `target`.
pub fn io_create_symbolic_link(link: &str, target: &str) -> Result<(), NtStatus> {
    let (id, status) = crate::ob::with_namespace(|ns| {
        ns.insert(
            link,
            ::ob::OBJ_PERMANENT | ::ob::OBJ_CASE_INSENSITIVE,
            ::ob::namespace::TYPE_SYMBOLIC_LINK,
            ::ob::namespace::Body::SymbolicLink(target.into()),
        )
    })?;
    // A permanent object keeps its creation reference until it is made
    // temporary (`IoDeleteSymbolicLink`).
    if status != STATUS_SUCCESS {
        ob_dereference_object(id);
        return Err(STATUS_OBJECT_NAME_COLLISION);
    }
    Ok(())
}

/// `IoDeleteSymbolicLink`.
pub fn io_delete_symbolic_link(link: &str) -> Result<(), NtStatus> {
    let id = crate::ob::with_namespace(|ns| {
        match ns.lookup(link, ::ob::OBJ_CASE_INSENSITIVE | ::ob::OBJ_OPENLINK, None)? {
            ::ob::namespace::Lookup::Found(id)
                if ns.header(id).is_some_and(|h| {
                    h.type_index == ::ob::namespace::TYPE_SYMBOLIC_LINK && h.permanent
                }) =>
            {
                ns.make_temporary(id).map(|_| id)
            }
            _ => Err(STATUS_OBJECT_NAME_NOT_FOUND),
        }
    })?;
    ob_dereference_object(id);
    Ok(())
}
