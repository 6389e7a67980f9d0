//! volmgr.sys, the volume manager for basic disks. `DriverEntry` creates
//! `\Device\VolMgrControl`; partmgr reports each partition there
//! (`IOCTL_VOLMGR_NTRS_PARTITION_ARRIVAL`, ntrs's own interface,
//! `wdk::volmgr`). For each, volmgr creates the volume's PDO
//! `\Device\HarddiskVolumeN` (N in arrival order; `FILE_DEVICE_DISK`,
//! `DO_DIRECT_IO`), the links `\Device\HarddiskK\PartitionP` and
//! `\GLOBAL??\HarddiskKPartitionP` to it (Windows 10's layout), registers and
//! enables its `GUID_DEVINTERFACE_VOLUME` interface (= mountmgr.h's
//! `MOUNTDEV_MOUNTED_DEVICE_GUID`: the mount manager hears of it).
//!
//! A volume forwards reads and writes to the disk stack partmgr named,
//! after checking them against the partition's extent and adding its
//! starting offset (`lib/storage::volume::translate`), and answers
//! `IOCTL_MOUNTDEV_QUERY_DEVICE_NAME`, `IOCTL_MOUNTDEV_QUERY_UNIQUE_ID`
//! (`DMIO:ID:` + the GPT partition GUID), `IOCTL_MOUNTDEV_QUERY_STABLE_GUID`
//! (the partition GUID), `IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS`,
//! `IOCTL_DISK_GET_LENGTH_INFO`, `IOCTL_DISK_GET_PARTITION_INFO_EX`,
//! `IOCTL_STORAGE_GET_DEVICE_NUMBER`; flushes go to the disk; anything else
//! is `STATUS_INVALID_DEVICE_REQUEST`. As a PDO it answers `IRP_MN_QUERY_ID`
//! (`STORAGE\Volume`, `{disk GUID}#<offset>`), `IRP_MN_QUERY_CAPABILITIES`
//! (`UniqueID`: the instance path is `STORAGE\Volume\<instance ID>`, as on
//! Windows; `RawDeviceOK`) and `IRP_MN_START_DEVICE`.
//!
//! As a bus driver: `AddDevice` puts volmgr's FDO on the root-enumerated
//! `ROOT\VOLMGR\0000` device, whose `BusRelations` are the volume PDOs
//! (so each volume is a device node under it, as `!devnode` shows on
//! Windows); a volume made later invalidates those relations.
//!
//! Differences from Windows (docs/storage.md): `\Device\VolMgrControl` is
//! made in `DriverEntry` (Windows' volmgr makes it in that `AddDevice`);
//! volumes have no volume stack (no volsnap/fvevol/volume.sys FDO above
//! them: their nodes start raw, `RawDeviceOK`); no removal (the removal
//! IRPs keep STATUS_NOT_SUPPORTED, so an orderly removal is vetoed), no
//! dynamic disks; no `DriverUnload`.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use nt::status::*;
use nt::NtStatus;
use rt::request::{complete, dispatch_raw_create_close, unicode};
use rt::wdk::disk::*;
use rt::wdk::mountdev::*;
use rt::wdk::volmgr::*;
use rt::wdk::*;
use storage::guid::Guid;
use storage::volume;

const MAGIC_CONTROL: u32 = u32::from_le_bytes(*b"VmCt");
const MAGIC_VOLUME: u32 = u32::from_le_bytes(*b"VmVo");
const MAGIC_FDO: u32 = u32::from_le_bytes(*b"VmFd");

/// The FDO on `ROOT\VOLMGR\0000` and the device below it (0 until
/// `AddDevice`).
static FDO: AtomicU64 = AtomicU64::new(0);
static FDO_LOWER: AtomicU64 = AtomicU64::new(0);
/// The root device's PDO (for `IoInvalidateDeviceRelations`).
static BUS_PDO: AtomicU64 = AtomicU64::new(0);
/// Every volume PDO made, in arrival order (the bus relations).
static VOLUMES: [AtomicU64; MAX_VOLUMES] = [const { AtomicU64::new(0) }; MAX_VOLUMES];

/// Every volmgr device's extension starts with its magic.
#[repr(C)]
struct Volume {
    magic: u32,
    /// N of HarddiskVolumeN.
    number: u32,
    /// What partmgr reported (`DiskDevice` is referenced by us).
    part: VOLMGR_NTRS_PARTITION,
}

/// Next N of HarddiskVolumeN.
static NEXT_VOLUME: AtomicU32 = AtomicU32::new(1);
/// (disk << 32 | partition) + 1 of each volume made, to refuse repeats.
const MAX_VOLUMES: usize = 64;
static MADE: [AtomicU64; MAX_VOLUMES] = [const { AtomicU64::new(0) }; MAX_VOLUMES];

/// # Safety
/// `dev` is a volmgr device.
unsafe fn magic(dev: *mut DEVICE_OBJECT) -> u32 {
    // SAFETY: every volmgr device has an extension starting with the magic,
    // written before the device could receive requests.
    unsafe { *((*dev).DeviceExtension as *const u32) }
}

/// # Safety
/// `dev` is a volume device (magic checked by the caller).
unsafe fn volume_of(dev: *mut DEVICE_OBJECT) -> &'static Volume {
    // SAFETY: per the contract; the extension is never changed after creation.
    unsafe { &*((*dev).DeviceExtension as *const Volume) }
}

fn utf16_bytes(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// `IRP_MJ_READ`/`IRP_MJ_WRITE` on a volume: checked, offset, passed to the disk stack.
unsafe extern "system" fn read_write(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the I/O manager's IRP; a volume device has StackSize = the
    // disk stack's + 1, so the next location exists for the disk.
    unsafe {
        if magic(dev) != MAGIC_VOLUME {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0, IO_DISK_INCREMENT);
        }
        let v = volume_of(dev);
        let sl = IoGetCurrentIrpStackLocation(irp);
        let len = (*sl).Parameters.Read.Length as u64;
        let off = (*sl).Parameters.Read.ByteOffset;
        let disk_off = match volume::translate(
            off,
            len,
            v.part.BytesPerSector,
            v.part.StartingOffset,
            v.part.PartitionLength,
        ) {
            Ok(o) => o,
            Err(s) => return complete(irp, s, 0, IO_DISK_INCREMENT),
        };
        if len == 0 {
            return complete(irp, STATUS_SUCCESS, 0, IO_DISK_INCREMENT);
        }
        IoCopyCurrentIrpStackLocationToNext(irp);
        let next = IoGetNextIrpStackLocation(irp);
        (*next).Parameters.Read.ByteOffset = disk_off;
        IoCallDriver(v.part.DiskDevice, irp)
    }
}

/// `IRP_MJ_FLUSH_BUFFERS`: to the disk.
unsafe extern "system" fn flush(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: as in read_write.
    unsafe {
        if magic(dev) != MAGIC_VOLUME {
            return complete(irp, STATUS_SUCCESS, 0, IO_DISK_INCREMENT);
        }
        IoSkipCurrentIrpStackLocation(irp);
        IoCallDriver(volume_of(dev).part.DiskDevice, irp)
    }
}

/// A fixed-size structure's answer: all of it or `STATUS_BUFFER_TOO_SMALL`.
fn answer<T: Copy>(v: &T, out: &mut [u8]) -> (NtStatus, usize) {
    let b = storage::disk::as_bytes(v);
    if out.len() < b.len() {
        return (STATUS_BUFFER_TOO_SMALL, 0);
    }
    out[..b.len()].copy_from_slice(b);
    (STATUS_SUCCESS, b.len())
}

/// The volume's IOCTL answers (METHOD_BUFFERED).
fn volume_ioctl(v: &Volume, code: u32, out: &mut [u8]) -> (NtStatus, usize) {
    let p = &v.part;
    let id = Guid::from(p.PartitionId);
    match code {
        IOCTL_MOUNTDEV_QUERY_DEVICE_NAME => volume::mountdev_answer(
            &utf16_bytes(&storage::mountmgr::volume_device_name(v.number)),
            out,
        ),
        IOCTL_MOUNTDEV_QUERY_UNIQUE_ID => {
            volume::mountdev_answer(&storage::mountmgr::gpt_unique_id(&id), out)
        }
        IOCTL_MOUNTDEV_QUERY_STABLE_GUID => answer(
            &MOUNTDEV_STABLE_GUID {
                StableGuid: p.PartitionId,
            },
            out,
        ),
        IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS => answer(
            &volume::disk_extents(p.DiskNumber, p.StartingOffset, p.PartitionLength),
            out,
        ),
        IOCTL_DISK_GET_LENGTH_INFO => answer(
            &GET_LENGTH_INFORMATION {
                Length: p.PartitionLength,
            },
            out,
        ),
        IOCTL_DISK_GET_PARTITION_INFO_EX => {
            let ss = p.BytesPerSector as u64;
            let first = p.StartingOffset as u64 / ss;
            let part = storage::gpt::Partition {
                number: p.PartitionNumber,
                entry_index: 0,
                type_guid: p.PartitionType.into(),
                unique_guid: id,
                first_lba: first,
                last_lba: first + p.PartitionLength as u64 / ss - 1,
                attributes: p.Attributes,
                name: p.Name,
            };
            answer(&storage::disk::partition_info(&part, p.BytesPerSector), out)
        }
        IOCTL_STORAGE_GET_DEVICE_NUMBER => answer(
            &STORAGE_DEVICE_NUMBER {
                DeviceType: FILE_DEVICE_DISK,
                DeviceNumber: p.DiskNumber,
                PartitionNumber: p.PartitionNumber,
            },
            out,
        ),
        _ => (STATUS_INVALID_DEVICE_REQUEST, 0),
    }
}

/// `IRP_MJ_DEVICE_CONTROL` on a volume.
unsafe extern "system" fn device_control(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the I/O manager's IRP; the system buffer holds max(in, out) bytes.
    unsafe {
        if magic(dev) != MAGIC_VOLUME {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0, IO_DISK_INCREMENT);
        }
        let sl = IoGetCurrentIrpStackLocation(irp);
        let code = (*sl).Parameters.DeviceIoControl.IoControlCode;
        if METHOD_FROM_CTL_CODE(code) != METHOD_BUFFERED {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0, IO_DISK_INCREMENT);
        }
        let len = (*sl).Parameters.DeviceIoControl.OutputBufferLength as usize;
        let sys = (*irp).AssociatedIrp.SystemBuffer as *mut u8;
        let out: &mut [u8] = if len == 0 || sys.is_null() {
            &mut []
        } else {
            core::slice::from_raw_parts_mut(sys, len)
        };
        let (s, n) = volume_ioctl(volume_of(dev), code, out);
        complete(irp, s, n, IO_DISK_INCREMENT)
    }
}

/// `IRP_MJ_INTERNAL_DEVICE_CONTROL` on `\Device\VolMgrControl`: partition arrivals.
unsafe extern "system" fn internal_control(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the I/O manager's IRP (METHOD_BUFFERED: input in the system buffer).
    unsafe {
        let sl = IoGetCurrentIrpStackLocation(irp);
        let p = &(*sl).Parameters.DeviceIoControl;
        if magic(dev) != MAGIC_CONTROL || p.IoControlCode != IOCTL_VOLMGR_NTRS_PARTITION_ARRIVAL {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0, IO_DISK_INCREMENT);
        }
        let size = core::mem::size_of::<VOLMGR_NTRS_PARTITION>();
        let sys = (*irp).AssociatedIrp.SystemBuffer as *const VOLMGR_NTRS_PARTITION;
        if (p.InputBufferLength as usize) < size || sys.is_null() {
            return complete(irp, STATUS_INVALID_PARAMETER, 0, IO_DISK_INCREMENT);
        }
        let part = sys.read_unaligned();
        let s = partition_arrival((*dev).DriverObject, part);
        complete(irp, s, 0, IO_DISK_INCREMENT)
    }
}

/// Checks a report and makes its volume.
fn partition_arrival(driver: *mut DRIVER_OBJECT, p: VOLMGR_NTRS_PARTITION) -> NtStatus {
    let ss = p.BytesPerSector as i64;
    if p.Size as usize != core::mem::size_of::<VOLMGR_NTRS_PARTITION>()
        || p.DiskDevice.is_null()
        || p.PartitionNumber == 0
        || ss <= 0
        || (ss & (ss - 1)) != 0
        || p.StartingOffset <= 0
        || p.PartitionLength <= 0
        || p.StartingOffset % ss != 0
        || p.PartitionLength % ss != 0
        || p.StartingOffset.checked_add(p.PartitionLength).is_none()
    {
        return STATUS_INVALID_PARAMETER;
    }
    let key = ((p.DiskNumber as u64) << 32 | p.PartitionNumber as u64) + 1;
    let mut slot = None;
    for (i, m) in MADE.iter().enumerate() {
        match m.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                slot = Some(i);
                break;
            }
            Err(k) if k == key => return STATUS_OBJECT_NAME_COLLISION,
            Err(_) => {}
        }
    }
    let Some(slot) = slot else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    let s = make_volume(driver, p);
    if !s.is_success() {
        MADE[slot].store(0, Ordering::Release);
    }
    s
}

/// Creates the volume PDO, its links and its interface.
fn make_volume(driver: *mut DRIVER_OBJECT, p: VOLMGR_NTRS_PARTITION) -> NtStatus {
    let n = NEXT_VOLUME.fetch_add(1, Ordering::AcqRel);
    let name: Vec<u16> = storage::mountmgr::volume_device_name(n)
        .encode_utf16()
        .collect();
    let mut uname = unicode(&name);
    let mut dev: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: our driver object, a valid name and out pointer.
    let s = unsafe {
        IoCreateDevice(
            driver,
            core::mem::size_of::<Volume>() as u32,
            &mut uname,
            FILE_DEVICE_DISK,
            0,
            0,
            &mut dev,
        )
    };
    if !s.is_success() {
        return s;
    }
    // SAFETY: a fresh device with a Volume-sized extension; the disk
    // device is referenced for as long as the volume exists.
    unsafe {
        ObfReferenceObject(p.DiskDevice.cast());
        (*dev).DeviceExtension.cast::<Volume>().write(Volume {
            magic: MAGIC_VOLUME,
            number: n,
            part: p,
        });
        (*dev).Flags |= DO_DIRECT_IO | DO_BUS_ENUMERATED_DEVICE;
        (*dev).StackSize = (*p.DiskDevice).StackSize + 1;
        (*dev).AlignmentRequirement = (*p.DiskDevice).AlignmentRequirement;
        (*dev).Flags &= !DO_DEVICE_INITIALIZING;
    }
    if let Some(v) = VOLUMES.iter().find(|v| {
        v.compare_exchange(0, dev as u64, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }) {
        let _ = v;
        let bus = BUS_PDO.load(Ordering::Acquire);
        if bus != 0 {
            // SAFETY: the root device's PDO, live while our FDO is on it.
            unsafe { IoInvalidateDeviceRelations(bus as *mut DEVICE_OBJECT, BUS_RELATIONS) };
        }
    }
    // \Device\HarddiskK\PartitionP and \GLOBAL??\HarddiskKPartitionP.
    for link in [
        storage::mountmgr::partition_device_name(p.DiskNumber, p.PartitionNumber),
        format!(
            "\\GLOBAL??\\Harddisk{}Partition{}",
            p.DiskNumber, p.PartitionNumber
        ),
    ] {
        let l: Vec<u16> = link.encode_utf16().collect();
        let mut ul = unicode(&l);
        // SAFETY: valid strings.
        let s = unsafe { IoCreateSymbolicLink(&mut ul, &mut uname) };
        if !s.is_success() {
            rt::kprintln!("volmgr: cannot create {link}: {s:?}");
        }
    }
    // The volume interface: the mount manager's arrival.
    let mut iface = UNICODE_STRING {
        Length: 0,
        MaximumLength: 0,
        Buffer: core::ptr::null_mut(),
    };
    // SAFETY: our PDO, a static GUID and an out string.
    let s = unsafe {
        IoRegisterDeviceInterface(
            dev,
            &GUID_DEVINTERFACE_VOLUME,
            core::ptr::null_mut(),
            &mut iface,
        )
    };
    if !s.is_success() {
        rt::kprintln!("volmgr: HarddiskVolume{n}: no volume interface: {s:?}");
        return STATUS_SUCCESS;
    }
    rt::kprintln!(
        "volmgr: \\Device\\HarddiskVolume{n} = disk {} partition {} ({} bytes at {:#x})",
        p.DiskNumber,
        p.PartitionNumber,
        p.PartitionLength,
        p.StartingOffset
    );
    // SAFETY: the name the system returned; freed after use as documented.
    unsafe {
        let s = IoSetDeviceInterfaceState(&mut iface, 1);
        if !s.is_success() {
            rt::kprintln!("volmgr: HarddiskVolume{n}: interface not enabled: {s:?}");
        }
        RtlFreeUnicodeString(&mut iface);
    }
    STATUS_SUCCESS
}

/// A pool copy of `s` as a NUL-terminated (double for `multi`) UTF-16
/// string, for `IRP_MN_QUERY_ID` answers the receiver frees.
fn pool_string(s: &str, multi: bool) -> Option<*mut u16> {
    let mut u: Vec<u16> = s.encode_utf16().collect();
    u.push(0);
    if multi {
        u.push(0);
    }
    // SAFETY: a plain allocation; null on failure.
    let p = unsafe { ExAllocatePool2(0x40, u.len() * 2, u32::from_le_bytes(*b"VmId")) } as *mut u16;
    if p.is_null() {
        return None;
    }
    // SAFETY: a fresh block of u.len() u16s.
    unsafe { core::ptr::copy_nonoverlapping(u.as_ptr(), p, u.len()) };
    Some(p)
}

/// `IRP_MJ_PNP` on a volume PDO (the bus driver's part) or the control device.
unsafe extern "system" fn dispatch_pnp(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the I/O manager's IRP; we are the bottom of the volume's stack.
    unsafe {
        let sl = IoGetCurrentIrpStackLocation(irp);
        let keep = (*irp).IoStatus.Status;
        if magic(dev) == MAGIC_FDO {
            return fdo_pnp(irp);
        }
        if magic(dev) != MAGIC_VOLUME {
            return complete(irp, keep, (*irp).IoStatus.Information, IO_DISK_INCREMENT);
        }
        let v = volume_of(dev);
        match (*sl).MinorFunction {
            IRP_MN_START_DEVICE => complete(irp, STATUS_SUCCESS, 0, IO_DISK_INCREMENT),
            IRP_MN_QUERY_CAPABILITIES => {
                let c = (*sl).Parameters.DeviceCapabilities.Capabilities
                    as *mut rt::wdk::pnp::DEVICE_CAPABILITIES;
                if !c.is_null() {
                    (*c).Bits |= rt::wdk::pnp::caps::UniqueID | rt::wdk::pnp::caps::RawDeviceOK;
                }
                complete(irp, STATUS_SUCCESS, 0, IO_DISK_INCREMENT)
            }
            IRP_MN_QUERY_ID => {
                let id: Option<String> = match (*sl).Parameters.QueryId.IdType {
                    BUS_QUERY_DEVICE_ID | BUS_QUERY_HARDWARE_IDS => {
                        Some(volume::VOLUME_DEVICE_ID.into())
                    }
                    BUS_QUERY_INSTANCE_ID => Some(volume::volume_instance_id(
                        &Guid::from(v.part.DiskId),
                        v.part.StartingOffset as u64,
                    )),
                    _ => None,
                };
                let multi = (*sl).Parameters.QueryId.IdType == BUS_QUERY_HARDWARE_IDS;
                match id.map(|s| pool_string(&s, multi)) {
                    Some(Some(p)) => complete(irp, STATUS_SUCCESS, p as usize, IO_DISK_INCREMENT),
                    Some(None) => {
                        complete(irp, STATUS_INSUFFICIENT_RESOURCES, 0, IO_DISK_INCREMENT)
                    }
                    None => complete(irp, keep, (*irp).IoStatus.Information, IO_DISK_INCREMENT),
                }
            }
            _ => complete(irp, keep, (*irp).IoStatus.Information, IO_DISK_INCREMENT),
        }
    }
}

/// `IRP_MJ_PNP` on the FDO of `ROOT\VOLMGR\0000`: `BusRelations` are the
/// volumes (a pool `DEVICE_RELATIONS`, each referenced for the PnP
/// manager); everything goes down to the root device's PDO.
///
/// # Safety
/// The dispatch routine's IRP.
unsafe fn fdo_pnp(irp: *mut IRP) -> NtStatus {
    // SAFETY: the I/O manager's IRP; the FDO's lower device is live while
    // attached.
    unsafe {
        let sl = IoGetCurrentIrpStackLocation(irp);
        let lower = FDO_LOWER.load(Ordering::Acquire) as *mut DEVICE_OBJECT;
        match (*sl).MinorFunction {
            IRP_MN_QUERY_DEVICE_RELATIONS
                if (*sl).Parameters.QueryDeviceRelations.Type == BUS_RELATIONS =>
            {
                let vols: Vec<u64> = VOLUMES
                    .iter()
                    .map(|v| v.load(Ordering::Acquire))
                    .filter(|&v| v != 0)
                    .collect();
                let size = 8 + 8 * vols.len().max(1);
                let r = ExAllocatePool2(0x40, size, u32::from_le_bytes(*b"VmRl"))
                    as *mut DEVICE_RELATIONS;
                if r.is_null() {
                    return complete(irp, STATUS_INSUFFICIENT_RESOURCES, 0, IO_NO_INCREMENT);
                }
                (*r).Count = vols.len() as u32;
                let arr = core::ptr::addr_of_mut!((*r).Objects).cast::<*mut DEVICE_OBJECT>();
                for (i, &v) in vols.iter().enumerate() {
                    ObfReferenceObject(v as *mut core::ffi::c_void);
                    arr.add(i).write(v as *mut DEVICE_OBJECT);
                }
                (*irp).IoStatus.Status = STATUS_SUCCESS;
                (*irp).IoStatus.Information = r as usize;
            }
            IRP_MN_START_DEVICE => (*irp).IoStatus.Status = STATUS_SUCCESS,
            _ => {}
        }
        IoSkipCurrentIrpStackLocation(irp);
        IoCallDriver(lower, irp)
    }
}

/// `AddDevice` for `ROOT\VOLMGR\0000`: volmgr's FDO (one).
unsafe extern "system" fn add_device(
    driver: *mut DRIVER_OBJECT,
    pdo: *mut DEVICE_OBJECT,
) -> NtStatus {
    if FDO.load(Ordering::Acquire) != 0 {
        return STATUS_DEVICE_ALREADY_ATTACHED;
    }
    let mut dev: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: our driver object and the PnP manager's PDO; the extension
    // starts with the magic before the device is attached.
    unsafe {
        let s = IoCreateDevice(
            driver,
            core::mem::size_of::<Volume>() as u32,
            core::ptr::null_mut(),
            FILE_DEVICE_BUS_EXTENDER,
            0,
            0,
            &mut dev,
        );
        if !s.is_success() {
            return s;
        }
        *((*dev).DeviceExtension as *mut u32) = MAGIC_FDO;
        let lower = IoAttachDeviceToDeviceStack(dev, pdo);
        if lower.is_null() {
            IoDeleteDevice(dev);
            return STATUS_NO_SUCH_DEVICE;
        }
        FDO_LOWER.store(lower as u64, Ordering::Release);
        FDO.store(dev as u64, Ordering::Release);
        BUS_PDO.store(pdo as u64, Ordering::Release);
        (*dev).Flags &= !DO_DEVICE_INITIALIZING;
    }
    STATUS_SUCCESS
}

static CONTROL_NAME: [u16; 22] = rt::utf16("\\Device\\VolMgrControl\0");

/// `DriverEntry`: `\Device\VolMgrControl` and the dispatch routines.
///
/// # Safety
/// Called by the I/O manager with a valid driver object.
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    _registry_path: *mut UNICODE_STRING,
) -> NtStatus {
    let mut name = rt::unicode_string(&CONTROL_NAME);
    let mut dev: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: the driver object is ours during DriverEntry; valid pointers.
    unsafe {
        let s = IoCreateDevice(
            driver,
            core::mem::size_of::<Volume>() as u32,
            &mut name,
            FILE_DEVICE_UNKNOWN,
            FILE_DEVICE_SECURE_OPEN,
            0,
            &mut dev,
        );
        if !s.is_success() {
            return s;
        }
        *((*dev).DeviceExtension as *mut u32) = MAGIC_CONTROL;
        let mf = &mut (*driver).MajorFunction;
        mf[IRP_MJ_CREATE as usize] = Some(dispatch_raw_create_close);
        mf[IRP_MJ_CLEANUP as usize] = Some(dispatch_raw_create_close);
        mf[IRP_MJ_CLOSE as usize] = Some(dispatch_raw_create_close);
        mf[IRP_MJ_READ as usize] = Some(read_write);
        mf[IRP_MJ_WRITE as usize] = Some(read_write);
        mf[IRP_MJ_FLUSH_BUFFERS as usize] = Some(flush);
        mf[IRP_MJ_DEVICE_CONTROL as usize] = Some(device_control);
        mf[IRP_MJ_INTERNAL_DEVICE_CONTROL as usize] = Some(internal_control);
        mf[IRP_MJ_PNP as usize] = Some(dispatch_pnp);
        (*(*driver).DriverExtension).AddDevice = Some(add_device);
        (*dev).Flags &= !DO_DEVICE_INITIALIZING;
    }
    STATUS_SUCCESS
}
