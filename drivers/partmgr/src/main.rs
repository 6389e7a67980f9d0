//! partmgr.sys, the partition manager: an upper filter of every disk
//! (the disk class's `UpperFilters` in `Control\Class\{4d36e967-...}`, as
//! on Windows). Its `AddDevice` attaches a filter device above disk.sys's
//! FDO; every request passes through to the disk. When the disk's
//! `IRP_MN_START_DEVICE` completes, partmgr reads the partition table with
//! reads sent down the stack and validates it with `lib/storage::gpt` (the
//! host-tested parser), then reports each partition to the volume manager
//! (`IOCTL_VOLMGR_NTRS_PARTITION_ARRIVAL` to `\Device\VolMgrControl`, ntrs's
//! own interface, `wdk::volmgr`), naming its own filter device as the
//! device to send volume I/O to.
//!
//! Not done: MBR disks, partition table changes (`IOCTL_DISK_SET_DRIVE_LAYOUT_EX`,
//! `IOCTL_DISK_UPDATE_PROPERTIES`), removal of partitions; partmgr has no
//! `DriverUnload` (it stays loaded, like Windows').
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;
use rt::request::{forward_irp_synchronously, ioctl, transfer, unicode};
use rt::wdk::disk::*;
use rt::wdk::volmgr::*;
use rt::wdk::*;
use storage::gpt::{self, SectorSource};

/// The filter device's extension.
#[repr(C)]
struct Filter {
    /// The device below (disk.sys's FDO, or whatever the stack had on top).
    lower: *mut DEVICE_OBJECT,
    /// This filter device.
    me: *mut DEVICE_OBJECT,
}

/// # Safety
/// `dev` is one of partmgr's filter devices.
unsafe fn filter(dev: *mut DEVICE_OBJECT) -> &'static Filter {
    // SAFETY: every partmgr device carries a Filter written in AddDevice
    // before the device could receive a request; it is never changed.
    unsafe { &*((*dev).DeviceExtension as *const Filter) }
}

/// Everything but PnP: straight down to the disk.
unsafe extern "system" fn pass_through(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the I/O manager hands us the IRP; `dev` is our filter device.
    unsafe {
        IoSkipCurrentIrpStackLocation(irp);
        IoCallDriver(filter(dev).lower, irp)
    }
}

/// `IRP_MJ_PNP`: `IRP_MN_START_DEVICE` goes down first (the disk starts),
/// then the partitions are read and reported; other minor codes pass through.
unsafe extern "system" fn dispatch_pnp(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: as above; the completion routine hands the IRP back to us.
    unsafe {
        let sl = IoGetCurrentIrpStackLocation(irp);
        if (*sl).MinorFunction != IRP_MN_START_DEVICE {
            return pass_through(dev, irp);
        }
        let f = filter(dev);
        let status = forward_irp_synchronously(f.lower, irp);
        if status.is_success() {
            if let Err(e) = enumerate_partitions(f) {
                rt::kprintln!("partmgr: partitions not reported: {e:?}");
            }
        }
        IoCompleteRequest(irp, IO_NO_INCREMENT);
        status
    }
}

/// The disk read through the stack below, sector by sector range.
struct Below {
    dev: *mut DEVICE_OBJECT,
    ss: u32,
}

impl SectorSource for Below {
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), NtStatus> {
        let off = lba
            .checked_mul(self.ss as u64)
            .filter(|&o| o <= i64::MAX as u64)
            .ok_or(STATUS_INVALID_PARAMETER)?;
        // SAFETY: `dev` is the device below our filter (referenced by the stack).
        let (s, n) = unsafe { transfer(self.dev, false, off as i64, buf) };
        match s {
            s if s.is_success() && n == buf.len() => Ok(()),
            s if s.is_success() => Err(STATUS_END_OF_FILE),
            s => Err(s),
        }
    }
}

/// Reads the GPT below `f` and reports every partition to volmgr.
fn enumerate_partitions(f: &Filter) -> Result<(), NtStatus> {
    let mut geo = [0u8; core::mem::size_of::<DISK_GEOMETRY_EX>()];
    // SAFETY: the lower device is referenced by the stack.
    let (s, n) = unsafe {
        ioctl(
            f.lower,
            IOCTL_DISK_GET_DRIVE_GEOMETRY_EX,
            &[],
            &mut geo,
            false,
        )
    };
    if !s.is_success() || n < DISK_GEOMETRY_EX_DATA_OFFSET {
        return Err(if s.is_success() {
            STATUS_DEVICE_DATA_ERROR
        } else {
            s
        });
    }
    let ss = u32::from_le_bytes([geo[20], geo[21], geo[22], geo[23]]);
    let size = u64::from_le_bytes(
        geo[24..32]
            .try_into()
            .map_err(|_| STATUS_DEVICE_DATA_ERROR)?,
    );
    if ss == 0 || !ss.is_power_of_two() {
        return Err(STATUS_DEVICE_DATA_ERROR);
    }
    let mut num = [0u8; 12];
    // SAFETY: as above.
    let (s, _) = unsafe {
        ioctl(
            f.lower,
            IOCTL_STORAGE_GET_DEVICE_NUMBER,
            &[],
            &mut num,
            false,
        )
    };
    if !s.is_success() {
        return Err(s);
    }
    let disk_number = u32::from_le_bytes([num[4], num[5], num[6], num[7]]);
    let mut src = Below { dev: f.lower, ss };
    let table = gpt::read(&mut src, ss, size / ss as u64).map_err(|e| {
        rt::kprintln!("partmgr: disk {disk_number}: no usable GPT: {e}");
        e.status()
    })?;
    if let Some(e) = &table.primary_error {
        rt::kprintln!("partmgr: disk {disk_number}: primary GPT bad ({e}), using the backup");
    }
    if let Some(e) = &table.backup_error {
        rt::kprintln!("partmgr: disk {disk_number}: backup GPT bad ({e})");
    }
    let reports: Vec<VOLMGR_NTRS_PARTITION> = table
        .partitions
        .iter()
        .map(|p| VOLMGR_NTRS_PARTITION {
            Size: core::mem::size_of::<VOLMGR_NTRS_PARTITION>() as u32,
            DiskNumber: disk_number,
            PartitionNumber: p.number,
            BytesPerSector: ss,
            StartingOffset: (p.first_lba * ss as u64) as i64,
            PartitionLength: (p.sectors() * ss as u64) as i64,
            PartitionType: p.type_guid.into(),
            PartitionId: p.unique_guid.into(),
            DiskId: table.header.disk_guid.into(),
            Attributes: p.attributes,
            Name: p.name,
            DiskDevice: f.me,
        })
        .collect();
    rt::kprintln!(
        "partmgr: disk {disk_number}: {} GPT partitions",
        reports.len()
    );
    report(&reports)
}

/// Sends the partitions to `\Device\VolMgrControl`.
fn report(parts: &[VOLMGR_NTRS_PARTITION]) -> Result<(), NtStatus> {
    let name: Vec<u16> = VOLMGR_CONTROL_DEVICE_NAME.encode_utf16().collect();
    let mut u = unicode(&name);
    let mut file: *mut FILE_OBJECT = core::ptr::null_mut();
    let mut dev: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: valid name and out pointers.
    let s = unsafe { IoGetDeviceObjectPointer(&mut u, 0, &mut file, &mut dev) };
    if !s.is_success() {
        return Err(s);
    }
    let mut status = STATUS_SUCCESS;
    for p in parts {
        // SAFETY: the struct is plain data; its bytes are the IOCTL input.
        let bytes = unsafe {
            core::slice::from_raw_parts(
                (p as *const VOLMGR_NTRS_PARTITION).cast::<u8>(),
                core::mem::size_of::<VOLMGR_NTRS_PARTITION>(),
            )
        };
        let mut none = vec![0u8; 0];
        // SAFETY: `dev` is referenced through `file`.
        let (s, _) = unsafe {
            ioctl(
                dev,
                IOCTL_VOLMGR_NTRS_PARTITION_ARRIVAL,
                bytes,
                &mut none,
                true,
            )
        };
        if !s.is_success() {
            rt::kprintln!(
                "partmgr: volmgr refused partition {} of disk {}: {s:?}",
                p.PartitionNumber,
                p.DiskNumber
            );
            status = s;
        }
    }
    // SAFETY: the reference IoGetDeviceObjectPointer gave us.
    unsafe { ObfDereferenceObject(file.cast()) };
    if status.is_success() {
        Ok(())
    } else {
        Err(status)
    }
}

/// `AddDevice`: a filter device above the disk's stack.
unsafe extern "system" fn add_device(
    driver: *mut DRIVER_OBJECT,
    pdo: *mut DEVICE_OBJECT,
) -> NtStatus {
    let mut dev: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: our driver object and a valid out pointer.
    let s = unsafe {
        IoCreateDevice(
            driver,
            core::mem::size_of::<Filter>() as u32,
            core::ptr::null_mut(),
            FILE_DEVICE_DISK,
            0,
            0,
            &mut dev,
        )
    };
    if !s.is_success() {
        return s;
    }
    // SAFETY: a fresh device with a Filter-sized extension; `pdo` is live.
    unsafe {
        let lower = IoAttachDeviceToDeviceStack(dev, pdo);
        if lower.is_null() {
            IoDeleteDevice(dev);
            return STATUS_NO_SUCH_DEVICE;
        }
        (*dev)
            .DeviceExtension
            .cast::<Filter>()
            .write(Filter { lower, me: dev });
        // A filter looks like the device it filters.
        (*dev).Flags |= (*lower).Flags & (DO_DIRECT_IO | DO_BUFFERED_IO | DO_POWER_PAGABLE);
        (*dev).DeviceType = (*lower).DeviceType;
        (*dev).Characteristics = (*lower).Characteristics;
        (*dev).AlignmentRequirement = (*lower).AlignmentRequirement;
        (*dev).Flags &= !DO_DEVICE_INITIALIZING;
    }
    STATUS_SUCCESS
}

/// `DriverEntry`: dispatch routines and `AddDevice`.
///
/// # Safety
/// Called by the I/O manager with a valid driver object.
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    _registry_path: *mut UNICODE_STRING,
) -> NtStatus {
    // SAFETY: the driver object is ours during DriverEntry.
    unsafe {
        for mj in (*driver).MajorFunction.iter_mut() {
            *mj = Some(pass_through);
        }
        (*driver).MajorFunction[IRP_MJ_PNP as usize] = Some(dispatch_pnp);
        (*(*driver).DriverExtension).AddDevice = Some(add_device);
    }
    STATUS_SUCCESS
}
