//! The storage stack (*Windows Internals* 7th ed., Part 1 ch. 6 "I/O
//! system"/"Storage" and Part 2 ch. 11 "The mount manager") is loaded
//! drivers on PnP device stacks (docs/storage.md): storahci.sys (the AHCI
//! controller's FDO, one PDO per disk, `IRP_MJ_SCSI`), disk.sys
//! (`\Device\Harddisk0\DR0`, the FDO on storahci's disk PDO) with
//! partmgr.sys as the disk class's upper filter, volmgr.sys and
//! mountmgr.sys. What stays here is the kernel's own use of the disk: the
//! boot device record mountmgr reads, and [`Stack`], which opens
//! `\Device\Harddisk0\DR0` and sends it IRPs (for the boot tests and the
//! benchmarks).

pub mod tests;
pub mod tests_srb;
pub mod tests_volume;

use crate::dbg_println;
use crate::ob::object::Mode;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, Ordering};
use nt::status::*;
use nt::NtStatus;
use once_cell::race::OnceBox;
use storage::disk as dk;
use storage::gpt::{self, Gpt, SectorSource};
use storage::mountmgr;
use storage::request;
use wdk::{DEVICE_OBJECT, IO_STATUS_BLOCK, KEVENT};

/// A device of the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// `\Device\Harddisk<n>\DR<n>`.
    Disk(u32),
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

/// The storage stack of the boot disk.
pub struct Stack {
    /// The top of `\Device\Harddisk0\DR0`'s device stack.
    dr0: usize,
    /// The file object that keeps DR0 referenced (never closed).
    _dr0_file: usize,
    /// Disk 0.
    pub disk: Disk,
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
        crate::io::irp::iof_call_driver_and_wait(dev, irp, &mut ev);
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
        crate::io::irp::iof_call_driver_and_wait(dev, irp, &mut ev);
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

impl Stack {
    /// Sector size of the disk.
    pub fn sector_size(&self) -> u32 {
        self.disk.sector_size
    }

    /// Bytes on the disk.
    pub fn disk_bytes(&self) -> u64 {
        self.disk.sectors * self.sector_size() as u64
    }

    /// (first LBA, bytes) of a device.
    fn extent(&self, dev: Device) -> Result<(u64, u64), NtStatus> {
        match dev {
            Device::Disk(0) => Ok((0, self.disk_bytes())),
            Device::Disk(_) => Err(STATUS_NO_SUCH_DEVICE),
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

    /// `IRP_MJ_DEVICE_CONTROL` with a METHOD_BUFFERED output buffer to DR0
    /// (disk.sys answers): the status and `IoStatus.Information`.
    pub fn ioctl(&self, dev: Device, code: u32, out: &mut [u8]) -> (NtStatus, usize) {
        if self.disk.removed.load(Ordering::Acquire) {
            return (STATUS_NO_SUCH_DEVICE, 0);
        }
        match dev {
            Device::Disk(0) => dr0_ioctl(self.dr0, code, &[], out),
            Device::Disk(_) => (STATUS_NO_SUCH_DEVICE, 0),
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

/// Where Windows records the ARC name of the boot partition.
const CONTROL_KEY: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Control";

/// Records the loader's ARC boot device name
/// (`multi(0)disk(0)rdisk(0)partition(N)`) as `Control\SystemBootDevice`
/// (REG_SZ), as Windows does; mountmgr.sys reads it to find the system
/// volume. Runs before the boot drivers load.
pub fn record_boot_device() -> NtStatus {
    use crate::cm::*;
    // SAFETY: the loader string lives in MemoryData pages that stay mapped.
    let arc = unsafe { crate::rtl::loader_block().arc_boot_device_name.as_str() };
    let (h, _) = match nt_create_key(CONTROL_KEY, KEY_ALL_ACCESS, 0, Mode::KernelMode) {
        Ok(v) => v,
        Err(s) => return s,
    };
    let s = nt_set_value_key(
        h,
        "SystemBootDevice",
        REG_SZ,
        &crate::io::pnp::registry::reg_sz(arc),
        Mode::KernelMode,
    );
    crate::ob::handle::nt_close(h);
    s
}

/// Opens `\\Device\\Harddisk0\\DR0` once disk.sys started it (the PnP
/// manager built the disk's stack: storahci's PDO, disk's FDO, partmgr
/// above) and reads its geometry, length (disk.sys's IOCTLs) and partition
/// table (reads through DR0), for the kernel's tests and benchmarks.
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
    let gpt = match gpt::read(&mut Dr0Source { dr0, ss }, ss, sectors) {
        Ok(g) => Some(g),
        Err(e) => {
            dbg_println!("storage: no usable partition table: {e}");
            None
        }
    };
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
    };
    let boxed = crate::ex::pool::try_box(stack)?;
    let _ = STACK.set(boxed);
    STACK.get().ok_or(STATUS_UNSUCCESSFUL)
}
