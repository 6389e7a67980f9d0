//! The storage stack's upper half (*Windows Internals* 7th ed., Part 1
//! ch. 6 "I/O system"/"Storage" and Part 2 ch. 11 "The mount manager").
//! The port and class drivers are loaded images on a PnP device stack:
//! storahci.sys (the AHCI controller's FDO, one PDO per disk, `IRP_MJ_SCSI`)
//! and disk.sys (`\Device\Harddisk0\DR0`, an FDO on storahci's disk PDO);
//! see drivers/storahci and drivers/disk. What is still built into the
//! kernel (interim, docs/storage.md lists every difference) works over
//! `\Device\Harddisk0\DR0` by sending it IRPs:
//!
//! - **partmgr**: the GPT, read through DR0 and validated by
//!   `lib/storage::gpt`, one partition per used entry
//!   (`\Device\Harddisk0\PartitionN` links);
//! - **volmgr**: `\Device\HarddiskVolumeN` for partition N (reads and
//!   writes become DR0 requests at the partition's offset);
//! - **mountmgr**: `\GLOBAL??\C:` and `\GLOBAL??\Volume{guid}` links and
//!   the `MountedDevices` values.

pub mod devices;
pub mod tests;

use crate::dbg_println;
use crate::ob::object::Mode;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use nt::status::*;
use nt::NtStatus;
use once_cell::race::OnceBox;
use storage::disk::{self as dk, as_bytes};
use storage::gpt::{self, Gpt, SectorSource};
use storage::mountmgr::{self, Plan};
use storage::request;
use wdk::{DEVICE_OBJECT, IO_STATUS_BLOCK, KEVENT};

/// A device of the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// `\Device\Harddisk<n>\DR<n>`.
    Disk(u32),
    /// `\Device\HarddiskVolume<n>`.
    Volume(u32),
}

/// Disk 0 as the upper half sees it (from disk.sys's answers).
pub struct Disk {
    /// N of HarddiskN.
    pub number: u32,
    /// Sectors (`IOCTL_DISK_GET_LENGTH_INFO` / sector size).
    pub sectors: u64,
    /// Bytes per sector (`IOCTL_DISK_GET_DRIVE_GEOMETRY`).
    pub sector_size: u32,
    /// The partition table (None: not a GPT disk, or corrupt).
    pub gpt: Option<Gpt>,
    /// Set by a simulated surprise removal: every request through the
    /// built-in layers fails with STATUS_NO_SUCH_DEVICE.
    pub removed: AtomicBool,
}

/// A volume (one GPT partition).
pub struct Volume {
    /// N of HarddiskVolumeN (= the partition number).
    pub number: u32,
    /// Its partition entry.
    pub partition: gpt::Partition,
}

/// The storage stack of the boot disk.
pub struct Stack {
    /// The top of `\Device\Harddisk0\DR0`'s device stack.
    dr0: usize,
    /// The file object that keeps DR0 referenced (never closed).
    _dr0_file: usize,
    /// Disk 0.
    pub disk: Disk,
    /// Its volumes.
    pub volumes: Vec<Volume>,
    /// What the mount manager created.
    pub mount: Plan,
}

// SAFETY: the raw pointers name a device and file object that stay
// referenced (and so alive) for the system's lifetime.
unsafe impl Sync for Stack {}
// SAFETY: as above.
unsafe impl Send for Stack {}

static STACK: OnceBox<Stack> = OnceBox::new();

/// The stack, once [`initialize`] succeeded.
pub fn stack() -> Option<&'static Stack> {
    STACK.get()
}

/// Ticks (TSC) requesters spent blocked waiting for a pended DR0 read or
/// write to complete (the device's time), for the benchmarks.
pub static WAIT_TICKS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Sends a read or write of `len` bytes at byte `offset` of DR0 (the top of
/// its stack) and waits: `IoBuildSynchronousFsdRequest`, `IoCallDriver`,
/// the event. `buf` must be even (the port's PRDT); [`transfer`] bounces
/// odd buffers.
fn dr0_rw(
    dr0: usize,
    write: bool,
    offset: i64,
    buf: *mut u8,
    len: usize,
) -> Result<usize, NtStatus> {
    let major = if write {
        wdk::IRP_MJ_WRITE
    } else {
        wdk::IRP_MJ_READ
    };
    // SAFETY: DR0 stays referenced; the event and status block live on this
    // stack until the I/O manager signalled the event; `buf` holds `len` bytes.
    unsafe {
        let mut ev: KEVENT = core::mem::zeroed();
        crate::ke::event::ke_initialize_event(&mut ev, wdk::NOTIFICATION_EVENT, false);
        let mut iosb: IO_STATUS_BLOCK = core::mem::zeroed();
        let dev = dr0 as *mut DEVICE_OBJECT;
        let irp = crate::io::irp::build_request(
            major,
            dev,
            buf.cast(),
            len as u32,
            Some(offset),
            &mut ev,
            &mut iosb,
            true,
        );
        if irp.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        let s = crate::io::irp::iof_call_driver(dev, irp);
        if s == STATUS_PENDING {
            let t0 = crate::hal::rdtsc();
            crate::ke::event::ke_wait_for_event(
                &mut ev,
                ::ke::objects::WaitReason::Executive,
                false,
                false,
                None,
            );
            WAIT_TICKS.fetch_add(crate::hal::rdtsc() - t0, Ordering::Relaxed);
        } else if !s.is_success() && iosb.Status == STATUS_SUCCESS {
            return Err(s);
        }
        if iosb.Status.is_success() {
            Ok(iosb.Information)
        } else {
            Err(iosb.Status)
        }
    }
}

/// Reads or writes DR0, through a bounce buffer when `buf` is at an odd
/// address (the device's alignment requirement), in pieces of at most 1 MiB.
fn transfer(
    dr0: usize,
    write: bool,
    offset: i64,
    buf: *mut u8,
    len: usize,
) -> Result<usize, NtStatus> {
    if len == 0 {
        return dr0_rw(dr0, write, offset, buf, 0);
    }
    if (buf as u64) & 1 == 0 {
        return dr0_rw(dr0, write, offset, buf, len);
    }
    let pages = len.div_ceil(4096) as u64;
    let bounce = crate::mm::map::mm_allocate_system_pages(pages)?;
    if write {
        // SAFETY: `buf` holds `len` readable bytes and the bounce pages at
        // least `len`.
        unsafe { core::ptr::copy_nonoverlapping(buf, bounce as *mut u8, len) };
    }
    let r = dr0_rw(dr0, write, offset, bounce as *mut u8, len);
    if !write && r.is_ok() {
        // SAFETY: as above, in the other direction; `buf` is writable.
        unsafe { core::ptr::copy_nonoverlapping(bounce as *const u8, buf, len) };
    }
    crate::mm::map::mm_free_system_pages(bounce, pages);
    r
}

/// Sends a METHOD_BUFFERED `IRP_MJ_DEVICE_CONTROL` to DR0 and waits.
fn dr0_ioctl(dr0: usize, code: u32, input: &[u8], out: &mut [u8]) -> (NtStatus, usize) {
    // SAFETY: as in dr0_rw; the buffers live across the wait.
    unsafe {
        let mut ev: KEVENT = core::mem::zeroed();
        crate::ke::event::ke_initialize_event(&mut ev, wdk::NOTIFICATION_EVENT, false);
        let mut iosb: IO_STATUS_BLOCK = core::mem::zeroed();
        let dev = dr0 as *mut DEVICE_OBJECT;
        let irp = crate::io::irp::io_build_device_io_control_request(
            code,
            dev,
            input.as_ptr() as *mut _,
            input.len() as u32,
            out.as_mut_ptr().cast(),
            out.len() as u32,
            false,
            &mut ev,
            &mut iosb,
        );
        if irp.is_null() {
            return (STATUS_INSUFFICIENT_RESOURCES, 0);
        }
        if crate::io::irp::iof_call_driver(dev, irp) == STATUS_PENDING {
            crate::ke::event::ke_wait_for_event(
                &mut ev,
                ::ke::objects::WaitReason::Executive,
                false,
                false,
                None,
            );
        }
        (iosb.Status, iosb.Information)
    }
}

/// `IRP_MJ_FLUSH_BUFFERS` to DR0.
fn dr0_flush(dr0: usize) -> NtStatus {
    // SAFETY: as in dr0_rw.
    unsafe {
        let mut ev: KEVENT = core::mem::zeroed();
        crate::ke::event::ke_initialize_event(&mut ev, wdk::NOTIFICATION_EVENT, false);
        let mut iosb: IO_STATUS_BLOCK = core::mem::zeroed();
        let dev = dr0 as *mut DEVICE_OBJECT;
        let irp = crate::io::irp::build_request(
            wdk::IRP_MJ_FLUSH_BUFFERS,
            dev,
            core::ptr::null_mut(),
            0,
            None,
            &mut ev,
            &mut iosb,
            true,
        );
        if irp.is_null() {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        if crate::io::irp::iof_call_driver(dev, irp) == STATUS_PENDING {
            crate::ke::event::ke_wait_for_event(
                &mut ev,
                ::ke::objects::WaitReason::Executive,
                false,
                false,
                None,
            );
        }
        iosb.Status
    }
}

/// The disk read by sectors through DR0, for the GPT parser.
struct Dr0Source {
    dr0: usize,
    ss: u32,
}

impl SectorSource for Dr0Source {
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), NtStatus> {
        let off = lba
            .checked_mul(self.ss as u64)
            .ok_or(STATUS_INVALID_PARAMETER)?;
        let len = buf.len();
        transfer(self.dr0, false, off as i64, buf.as_mut_ptr(), len).map(|_| ())
    }
}

/// Writes `out` with as much of `answer` as fits when `out` holds at least
/// `fixed` bytes; `STATUS_BUFFER_TOO_SMALL` otherwise.
fn answer_fixed(answer: &[u8], fixed: usize, out: &mut [u8]) -> (NtStatus, usize) {
    match dk::fit(answer, fixed, out.len()) {
        Err(s) => (s, 0),
        Ok((n, _)) => {
            out[..n].copy_from_slice(&answer[..n]);
            (STATUS_SUCCESS, n)
        }
    }
}

/// A `MOUNTDEV_NAME`/`MOUNTDEV_UNIQUE_ID` answer: u16 length then the bytes;
/// a buffer that holds only the header gets the length and
/// `STATUS_BUFFER_OVERFLOW`, as the mount manager expects.
fn answer_mountdev(data: &[u8], out: &mut [u8]) -> (NtStatus, usize) {
    if out.len() < 2 {
        return (STATUS_BUFFER_TOO_SMALL, 0);
    }
    out[..2].copy_from_slice(&(data.len() as u16).to_le_bytes());
    if out.len() < 2 + data.len() {
        return (STATUS_BUFFER_OVERFLOW, 2);
    }
    out[2..2 + data.len()].copy_from_slice(data);
    (STATUS_SUCCESS, 2 + data.len())
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|c| c.to_le_bytes()).collect()
}

impl Stack {
    /// Sector size of the disk.
    pub fn sector_size(&self) -> u32 {
        self.disk.sector_size
    }

    /// Bytes on the disk.
    pub fn disk_bytes(&self) -> u64 {
        self.disk.sectors * self.sector_size() as u64
    }

    fn volume(&self, n: u32) -> Result<&Volume, NtStatus> {
        self.volumes
            .iter()
            .find(|v| v.number == n)
            .ok_or(STATUS_NO_SUCH_DEVICE)
    }

    /// (first LBA, bytes) of a device.
    fn extent(&self, dev: Device) -> Result<(u64, u64), NtStatus> {
        match dev {
            Device::Disk(0) => Ok((0, self.disk_bytes())),
            Device::Disk(_) => Err(STATUS_NO_SUCH_DEVICE),
            Device::Volume(n) => {
                let v = self.volume(n)?;
                Ok((
                    v.partition.first_lba,
                    v.partition.sectors() * self.sector_size() as u64,
                ))
            }
        }
    }

    fn rw(
        &self,
        dev: Device,
        write: bool,
        offset: i64,
        buf: *mut u8,
        len: usize,
    ) -> Result<usize, NtStatus> {
        let (start, bytes) = self.extent(dev)?;
        let ss = self.sector_size();
        let t = request::check(
            offset,
            len as u64,
            ss,
            start,
            bytes,
            self.disk.removed.load(Ordering::Acquire),
        )?;
        let off = t
            .lba
            .checked_mul(ss as u64)
            .ok_or(STATUS_INVALID_PARAMETER)?;
        let n = transfer(self.dr0, write, off as i64, buf, len)?;
        if n != len {
            return Err(STATUS_IO_DEVICE_ERROR);
        }
        Ok(len)
    }

    /// `IRP_MJ_READ`: reads `buf.len()` bytes at byte `offset` of the device.
    pub fn read(&self, dev: Device, offset: i64, buf: &mut [u8]) -> Result<usize, NtStatus> {
        self.rw(dev, false, offset, buf.as_mut_ptr(), buf.len())
    }

    /// `IRP_MJ_WRITE`.
    pub fn write(&self, dev: Device, offset: i64, buf: &[u8]) -> Result<usize, NtStatus> {
        self.rw(dev, true, offset, buf.as_ptr() as *mut u8, buf.len())
    }

    /// `IRP_MJ_FLUSH_BUFFERS` to DR0 (disk.sys: SYNCHRONIZE CACHE).
    pub fn flush(&self) -> NtStatus {
        if self.disk.removed.load(Ordering::Acquire) {
            return STATUS_NO_SUCH_DEVICE;
        }
        dr0_flush(self.dr0)
    }

    /// The top of DR0's device stack.
    pub fn dr0(&self) -> *mut DEVICE_OBJECT {
        self.dr0 as *mut DEVICE_OBJECT
    }

    /// `IRP_MJ_DEVICE_CONTROL` with a METHOD_BUFFERED output buffer: the
    /// status and `IoStatus.Information`.
    pub fn ioctl(&self, dev: Device, code: u32, out: &mut [u8]) -> (NtStatus, usize) {
        if self.disk.removed.load(Ordering::Acquire) {
            return (STATUS_NO_SUCH_DEVICE, 0);
        }
        let ss = self.sector_size();
        match (dev, code) {
            // The whole disk: disk.sys answers.
            (Device::Disk(0), _) => dr0_ioctl(self.dr0, code, &[], out),
            (Device::Volume(n), dk::IOCTL_DISK_GET_PARTITION_INFO_EX) => match self.volume(n) {
                Ok(v) => {
                    let p = dk::partition_info(&v.partition, ss);
                    answer_fixed(as_bytes(&p), as_bytes(&p).len(), out)
                }
                Err(s) => (s, 0),
            },
            (_, dk::IOCTL_DISK_GET_LENGTH_INFO) => match self.extent(dev) {
                Ok((_, bytes)) => {
                    let l = dk::GET_LENGTH_INFORMATION {
                        Length: bytes as i64,
                    };
                    answer_fixed(as_bytes(&l), 8, out)
                }
                Err(s) => (s, 0),
            },
            (_, dk::IOCTL_STORAGE_GET_DEVICE_NUMBER) => {
                let n = dk::STORAGE_DEVICE_NUMBER {
                    DeviceType: wdk::consts::FILE_DEVICE_DISK,
                    DeviceNumber: self.disk.number,
                    PartitionNumber: match dev {
                        Device::Disk(_) => 0,
                        Device::Volume(n) => n,
                    },
                };
                answer_fixed(as_bytes(&n), 12, out)
            }
            (Device::Volume(n), dk::IOCTL_MOUNTDEV_QUERY_UNIQUE_ID) => match self.volume(n) {
                Ok(v) => answer_mountdev(&mountmgr::gpt_unique_id(&v.partition.unique_guid), out),
                Err(s) => (s, 0),
            },
            (Device::Volume(n), dk::IOCTL_MOUNTDEV_QUERY_DEVICE_NAME) => {
                answer_mountdev(&utf16(&mountmgr::volume_device_name(n)), out)
            }
            _ => (STATUS_INVALID_DEVICE_REQUEST, 0),
        }
    }

    /// Surprise removal (`IRP_MN_SURPRISE_REMOVAL` as the class driver sees
    /// it) or its undoing, for tests: requests fail with STATUS_NO_SUCH_DEVICE.
    pub fn set_removed(&self, removed: bool) {
        self.disk.removed.store(removed, Ordering::Release);
    }

    /// The device a name denotes: a device name of the stack, or a symbolic
    /// link (followed, at most `MAX_REPARSE` times) that leads to one.
    pub fn resolve(&self, name: &str) -> Result<Device, NtStatus> {
        let mut path = String::from(name);
        for _ in 0..::ob::namespace::MAX_REPARSE {
            if path.eq_ignore_ascii_case(&mountmgr::disk_device_name(self.disk.number)) {
                return Ok(Device::Disk(self.disk.number));
            }
            if let Some(v) = self
                .volumes
                .iter()
                .find(|v| path.eq_ignore_ascii_case(&mountmgr::volume_device_name(v.number)))
            {
                return Ok(Device::Volume(v.number));
            }
            path = symbolic_link_target(&path)?;
        }
        Err(STATUS_REPARSE_POINT_NOT_RESOLVED)
    }
}

/// The target of the symbolic link object `path`.
pub fn symbolic_link_target(path: &str) -> Result<String, NtStatus> {
    use ::ob::namespace::{Body, Lookup};
    crate::ob::with_namespace(|ns| {
        match ns.lookup(path, ::ob::OBJ_CASE_INSENSITIVE | ::ob::OBJ_OPENLINK, None)? {
            Lookup::Found(id) => match ns.header(id).map(|h| &h.body) {
                Some(Body::SymbolicLink(t)) => Ok(t.clone()),
                _ => Err(STATUS_OBJECT_TYPE_MISMATCH),
            },
            Lookup::Parse { .. } => Err(STATUS_OBJECT_TYPE_MISMATCH),
        }
    })
}

/// Creates a permanent directory or symbolic link object (an existing one
/// of the same kind is kept).
fn create_object(path: &str, link: Option<&str>) -> Result<(), NtStatus> {
    use ::ob::namespace::{Body, TYPE_DIRECTORY, TYPE_SYMBOLIC_LINK};
    let (ty, body) = match link {
        Some(t) => (TYPE_SYMBOLIC_LINK, Body::SymbolicLink(String::from(t))),
        None => (TYPE_DIRECTORY, Body::Directory(Vec::new())),
    };
    crate::ob::with_namespace(|ns| {
        let (id, st) = ns.insert(
            path,
            ::ob::OBJ_PERMANENT | ::ob::OBJ_CASE_INSENSITIVE | ::ob::OBJ_OPENIF,
            ty,
            body,
        )?;
        if st == STATUS_OBJECT_NAME_EXISTS {
            // OBJ_OPENIF referenced the existing object; ours is not needed.
            let _ = ns.dereference(id, true);
        }
        Ok(())
    })
}

/// The system partition number from the loader's ARC boot device name
/// (`multi(0)disk(0)rdisk(0)partition(N)`).
fn boot_partition_number() -> Option<u32> {
    // SAFETY: the loader string lives in MemoryData pages that stay mapped.
    let arc = unsafe { crate::rtl::loader_block().arc_boot_device_name.as_str() };
    let lower = arc.to_ascii_lowercase();
    let rest = &lower[lower.find("partition(")? + "partition(".len()..];
    rest[..rest.find(')')?].parse().ok()
}

const MOUNTED_DEVICES: &str = "\\REGISTRY\\MACHINE\\SYSTEM\\MountedDevices";

/// The mount manager: reads its database (`MountedDevices`), plans the
/// names for the volumes, creates the `\GLOBAL??` links and writes the values.
fn mount_volumes(volumes: &[Volume], system: Option<u32>) -> Result<Plan, NtStatus> {
    use crate::cm::*;
    let (h, _) = nt_create_key(MOUNTED_DEVICES, KEY_ALL_ACCESS, 0, Mode::KernelMode)?;
    let mut existing = Vec::new();
    let mut i = 0;
    while let Ok(v) = nt_enumerate_value_key(h, i, Mode::KernelMode) {
        if v.value_type == REG_BINARY {
            existing.push((v.name, v.data));
        }
        i += 1;
    }
    let vols: Vec<mountmgr::Volume> = volumes
        .iter()
        .map(|v| mountmgr::Volume {
            device: mountmgr::volume_device_name(v.number),
            unique_id: mountmgr::gpt_unique_id(&v.partition.unique_guid).to_vec(),
            partition_guid: Some(v.partition.unique_guid),
            partition_type: v.partition.type_guid,
            attributes: v.partition.attributes,
            system: Some(v.number) == system,
        })
        .collect();
    let plan = mountmgr::plan(&vols, &existing);
    let mut status = STATUS_SUCCESS;
    for (leaf, target) in &plan.links {
        if let Err(s) = create_object(&alloc::format!("\\GLOBAL??\\{leaf}"), Some(target)) {
            status = s;
        }
    }
    for (name, data) in &plan.values {
        let s = nt_set_value_key(h, name, REG_BINARY, data, Mode::KernelMode);
        if s != STATUS_SUCCESS {
            status = s;
        }
    }
    crate::ob::handle::nt_close(h);
    if status != STATUS_SUCCESS {
        return Err(status);
    }
    Ok(plan)
}

/// Brings the built-in upper half up once disk.sys started DR0: opens
/// `\Device\Harddisk0\DR0`, reads its geometry and length (disk.sys's
/// IOCTLs) and the partition table (reads through DR0), and creates the
/// partition and volume names and the mount manager's.
pub fn initialize() -> Result<&'static Stack, NtStatus> {
    let _tag = crate::ex::pool::PoolTag::enter(*b"Disk");
    let dr0_name = mountmgr::disk_device_name(0);
    // FILE_READ_DATA | FILE_WRITE_DATA.
    let (file, dev) = crate::io::file::io_get_device_object_pointer(&dr0_name, 0x3)?;
    // SAFETY: the file object keeps the device referenced.
    let dr0 = unsafe { crate::io::device::io_get_attached_device(dev) } as usize;
    let mut geo = [0u8; 24];
    let (st, n) = dr0_ioctl(dr0, dk::IOCTL_DISK_GET_DRIVE_GEOMETRY, &[], &mut geo);
    if !st.is_success() || n < 24 {
        return Err(if st.is_success() {
            STATUS_IO_DEVICE_ERROR
        } else {
            st
        });
    }
    let ss = u32::from_le_bytes([geo[20], geo[21], geo[22], geo[23]]);
    let mut len = [0u8; 8];
    let (st, n) = dr0_ioctl(dr0, dk::IOCTL_DISK_GET_LENGTH_INFO, &[], &mut len);
    if !st.is_success() || n < 8 || ss < 512 {
        return Err(if st.is_success() {
            STATUS_IO_DEVICE_ERROR
        } else {
            st
        });
    }
    let sectors = u64::from_le_bytes(len) / ss as u64;
    let gpt = gpt::read(&mut Dr0Source { dr0, ss }, ss, sectors);
    let gpt = match gpt {
        Ok(g) => {
            if let Some(e) = &g.primary_error {
                dbg_println!("storage: primary GPT bad ({e}), using the backup");
            }
            if let Some(e) = &g.backup_error {
                dbg_println!("storage: backup GPT bad ({e})");
            }
            Some(g)
        }
        Err(e) => {
            dbg_println!("storage: no usable partition table: {e}");
            None
        }
    };
    let volumes: Vec<Volume> = gpt
        .as_ref()
        .map(|g| {
            g.partitions
                .iter()
                .map(|p| Volume {
                    number: p.number,
                    partition: p.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    // partmgr's names (disk.sys made \Device\Harddisk0, Partition0 and
    // \GLOBAL??\PhysicalDrive0): PartitionN -> HarddiskVolumeN and
    // \GLOBAL??\Harddisk0PartitionN.
    for v in &volumes {
        let vol = mountmgr::volume_device_name(v.number);
        create_object(&mountmgr::partition_device_name(0, v.number), Some(&vol))?;
        create_object(
            &alloc::format!("\\GLOBAL??\\Harddisk0Partition{}", v.number),
            Some(&vol),
        )?;
    }
    let system = boot_partition_number();
    let mount = match mount_volumes(&volumes, system) {
        Ok(p) => p,
        Err(s) => {
            dbg_println!("storage: mount manager: {s:?}");
            Plan::default()
        }
    };
    for (leaf, target) in mount.links.iter().filter(|l| l.0.len() == 2) {
        dbg_println!("storage: \\GLOBAL??\\{leaf} -> {target}");
    }
    let stack = Stack {
        dr0,
        _dr0_file: file as usize,
        disk: Disk {
            number: 0,
            sectors,
            sector_size: ss,
            gpt,
            removed: AtomicBool::new(false),
        },
        volumes,
        mount,
    };
    let boxed = crate::ex::pool::try_box(stack)?;
    let _ = STACK.set(boxed);
    let s = STACK.get().ok_or(STATUS_UNSUCCESSFUL)?;
    // \Driver\volmgr and its volume devices.
    if let Err(e) = devices::create_devices() {
        dbg_println!("storage: device objects: {e:?}");
    }
    Ok(s)
}
