//! The storage stack (*Windows Internals* 7th ed., Part 1 ch. 6 "I/O
//! system"/"Storage" and Part 2 ch. 11 "The mount manager") — interim form,
//! built into the kernel (with built-in `\Driver\disk` and `\Driver\volmgr`
//! objects, [`devices`]) rather than loaded `.sys` images; docs/storage.md
//! lists every difference:
//!
//! - **storahci** ([`storahci`]): the AHCI port driver for port 0 of the
//!   ICH9 controller, running `lib/storage`'s port logic;
//! - **disk** (class driver): `\Device\Harddisk0\DR0`, its geometry and
//!   layout IOCTLs, sector-checked reads and writes. Once DR0 exists, the
//!   disk class's upper filters (partmgr.sys) attach above it and the stack
//!   gets `IRP_MN_START_DEVICE`, as the PnP manager does for a disk stack:
//!   partmgr.sys, volmgr.sys and mountmgr.sys (loaded drivers, `drivers/`)
//!   then make the partitions, volumes and drive letters.
//!
//! The request interface between the class layer and the port is a direct
//! call (`Port::transfer`) under the port's fast mutex, in place of
//! `IRP_MJ_SCSI` with an SRB.

pub mod devices;
pub mod storahci;
pub mod tests;
pub mod tests_volume;

use crate::dbg_println;
use crate::ob::object::Mode;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use nt::status::*;
use nt::NtStatus;
use once_cell::race::OnceBox;
use storage::ahci::{Identify, Port, Segment};
use storage::disk::{self as dk, as_bytes};
use storage::gpt::{self, Gpt, SectorSource};
use storage::mountmgr;
use storage::request;
use storahci::{DmaPage, Mmio, PortGuard, PortLock};

/// A device of the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// `\Device\Harddisk<n>\DR<n>`.
    Disk(u32),
}

/// The disk class driver's state for disk 0.
pub struct Disk {
    /// N of HarddiskN.
    pub number: u32,
    /// What IDENTIFY DEVICE said.
    pub identify: Identify,
    /// The partition table (None: not a GPT disk, or corrupt).
    pub gpt: Option<Gpt>,
    /// Set by a surprise removal: every request fails with STATUS_NO_SUCH_DEVICE.
    pub removed: AtomicBool,
}

/// The storage stack of the boot disk.
pub struct Stack {
    /// The AHCI controller.
    pub controller: storahci::Controller,
    port: PortLock,
    /// Disk 0.
    pub disk: Disk,
    /// The connected interrupt's vector (None: polled).
    pub interrupt: Option<u8>,
}

static STACK: OnceBox<Stack> = OnceBox::new();

/// The stack, once [`initialize`] succeeded.
pub fn stack() -> Option<&'static Stack> {
    STACK.get()
}

/// Largest transfer handed to the port at once: what 32 PRDT entries of
/// (at worst) one page each describe.
const MAX_CHUNK: usize = storage::ahci::layout::PRDT_ENTRIES * 4096;

/// Builds the PRDT segments of `len` bytes at kernel address `va`
/// (`MmGetPhysicalAddress` page by page, physically adjacent pages merged).
fn segments(va: u64, len: usize) -> Result<Vec<Segment>, NtStatus> {
    let mut segs: Vec<Segment> = crate::ex::pool::try_vec_with_capacity(8)?;
    let mut off = 0usize;
    while off < len {
        let v = va + off as u64;
        let n = (4096 - (v & 0xFFF) as usize).min(len - off);
        let pa = crate::mm::pte::physical_address(v).ok_or(STATUS_INVALID_PARAMETER)?;
        match segs.last_mut() {
            Some(s) if s.phys + s.len as u64 == pa && s.len as usize + n <= 1 << 22 => {
                s.len += n as u32
            }
            _ => crate::ex::pool::try_push(
                &mut segs,
                Segment {
                    phys: pa,
                    len: n as u32,
                },
            )?,
        }
        off += n;
    }
    Ok(segs)
}

/// Moves `len` bytes between the disk at `lba` and kernel memory at `va`
/// (even address), in chunks the PRDT can describe.
fn dma(
    port: &mut PortGuard,
    write: bool,
    lba: u64,
    va: u64,
    len: usize,
    ss: usize,
) -> Result<(), NtStatus> {
    let mut done = 0usize;
    while done < len {
        let v = va + done as u64;
        // Stay within 32 pages and a whole number of sectors.
        let room = MAX_CHUNK - (v & 0xFFF) as usize;
        let n = (len - done).min(room) / ss * ss;
        let n = if n == 0 { ss.min(len - done) } else { n };
        let segs = segments(v, n)?;
        if segs.len() > storage::ahci::layout::PRDT_ENTRIES {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        let sectors = (n / ss) as u16;
        let moved = port
            .transfer(write, lba + (done / ss) as u64, sectors, &segs)
            .map_err(|e| e.status())?;
        if moved as usize != n {
            return Err(STATUS_IO_DEVICE_ERROR);
        }
        done += n;
    }
    Ok(())
}

/// Reads or writes through a bounce buffer when `buf` is at an odd address
/// (PRDT data addresses must be even).
fn transfer(
    port: &mut PortGuard,
    write: bool,
    lba: u64,
    buf: *mut u8,
    len: usize,
    ss: usize,
) -> Result<(), NtStatus> {
    if len == 0 {
        return Ok(());
    }
    if (buf as u64) & 1 == 0 {
        return dma(port, write, lba, buf as u64, len, ss);
    }
    let pages = len.div_ceil(4096) as u64;
    let bounce = crate::mm::map::mm_allocate_system_pages(pages)?;
    if write {
        // SAFETY: `buf` holds `len` readable bytes (the caller's slice) and
        // the bounce pages are `pages` fresh pages, at least `len` bytes.
        unsafe { core::ptr::copy_nonoverlapping(buf, bounce as *mut u8, len) };
    }
    let r = dma(port, write, lba, bounce, len, ss);
    if !write && r.is_ok() {
        // SAFETY: as above, in the other direction; `buf` is writable.
        unsafe { core::ptr::copy_nonoverlapping(bounce as *const u8, buf, len) };
    }
    crate::mm::map::mm_free_system_pages(bounce, pages);
    r
}

/// The disk read by sectors for the GPT parser.
struct PortSource<'a, 'b> {
    port: &'a mut PortGuard<'b>,
    ss: usize,
}

impl SectorSource for PortSource<'_, '_> {
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), NtStatus> {
        let len = buf.len();
        transfer(self.port, false, lba, buf.as_mut_ptr(), len, self.ss)
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

impl Stack {
    /// Sector size of the disk.
    pub fn sector_size(&self) -> u32 {
        self.disk.identify.sector_size
    }

    /// Bytes on the disk.
    pub fn disk_bytes(&self) -> u64 {
        self.disk.identify.sectors * self.sector_size() as u64
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
        let mut port = self.port.lock();
        transfer(&mut port, write, t.lba, buf, len, ss as usize)?;
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

    /// `IRP_MJ_FLUSH_BUFFERS`: FLUSH CACHE EXT.
    pub fn flush(&self) -> NtStatus {
        if self.disk.removed.load(Ordering::Acquire) {
            return STATUS_NO_SUCH_DEVICE;
        }
        match self.port.lock().flush() {
            Ok(()) => STATUS_SUCCESS,
            Err(e) => e.status(),
        }
    }

    /// `IRP_MJ_DEVICE_CONTROL` with a METHOD_BUFFERED output buffer: the
    /// status and `IoStatus.Information`.
    pub fn ioctl(&self, dev: Device, code: u32, out: &mut [u8]) -> (NtStatus, usize) {
        if self.disk.removed.load(Ordering::Acquire) {
            return (STATUS_NO_SUCH_DEVICE, 0);
        }
        let ss = self.sector_size();
        let gpt = self.disk.gpt.as_ref();
        match (dev, code) {
            (Device::Disk(0), dk::IOCTL_DISK_GET_DRIVE_GEOMETRY) => {
                let g = dk::geometry(self.disk.identify.sectors, ss);
                answer_fixed(as_bytes(&g), as_bytes(&g).len(), out)
            }
            (Device::Disk(0), dk::IOCTL_DISK_GET_DRIVE_GEOMETRY_EX) => {
                let g = dk::geometry_ex(self.disk.identify.sectors, ss, gpt);
                answer_fixed(as_bytes(&g), dk::DISK_GEOMETRY_EX_DATA_OFFSET, out)
            }
            (Device::Disk(0), dk::IOCTL_DISK_GET_PARTITION_INFO_EX) => {
                let p = dk::whole_disk_info(gpt, self.disk_bytes());
                answer_fixed(as_bytes(&p), as_bytes(&p).len(), out)
            }
            (Device::Disk(0), dk::IOCTL_DISK_GET_DRIVE_LAYOUT_EX) => match gpt {
                Some(g) => {
                    let l = dk::drive_layout_ex(g);
                    answer_fixed(&l, l.len(), out)
                }
                None => (STATUS_UNRECOGNIZED_MEDIA, 0),
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
                    PartitionNumber: 0,
                };
                answer_fixed(as_bytes(&n), 12, out)
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

/// Brings the stack up at the end of phase 1: the port, IDENTIFY, the
/// partition table, the partition/volume names and the mount manager's.
pub fn initialize() -> Result<&'static Stack, NtStatus> {
    let _tag = crate::ex::pool::PoolTag::enter(*b"Disk");
    let pnp = storahci::pnp_controller();
    let c = match pnp {
        Some((_, c)) => c,
        None => storahci::find_controller().ok_or(STATUS_NO_SUCH_DEVICE)?,
    };
    let mut mmio = Mmio::map(c.abar)?;
    let (pi, cap) = {
        use storage::ahci::Hba;
        (
            mmio.read32(storage::ahci::reg::PI),
            mmio.read32(storage::ahci::reg::CAP),
        )
    };
    let page = DmaPage::allocate(cap & storage::ahci::reg::CAP_S64A != 0)?;
    let mut port = Port::new(mmio, 0, page);
    if pi & 1 == 0 {
        return Err(STATUS_NO_SUCH_DEVICE);
    }
    port.init().map_err(|e| e.status())?;
    let lock = PortLock::new(port);
    let (identify, gpt) = {
        let mut p = lock.lock();
        let buf = crate::mm::map::mm_allocate_system_pages(1)?;
        let pa = crate::mm::pte::physical_address(buf).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        let r = p.identify(Segment { phys: pa, len: 512 });
        let mut data = vec![0u8; 512];
        // SAFETY: `buf` is a mapped page; the HBA finished writing it
        // (the command completed) before this copy.
        unsafe { core::ptr::copy_nonoverlapping(buf as *const u8, data.as_mut_ptr(), 512) };
        crate::mm::map::mm_free_system_pages(buf, 1);
        r.map_err(|e| e.status())?;
        let id = Identify::parse(&data)?;
        let mut src = PortSource {
            port: &mut p,
            ss: id.sector_size as usize,
        };
        let g = gpt::read(&mut src, id.sector_size, id.sectors);
        (id, g)
    };
    dbg_println!(
        "storage: AHCI {:04x}:{:04x} at 00:{:02x}.{} ABAR {:#x} ({}); port 0: {} ({} sectors of {} bytes)",
        c.id & 0xFFFF,
        c.id >> 16,
        c.device,
        c.function,
        c.abar,
        if pnp.is_some() { "from the PnP manager" } else { "bus 0 scan" },
        identify.model,
        identify.sectors,
        identify.sector_size
    );
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
    // disk.sys's names: \Device\Harddisk0 with Partition0 -> DR0;
    // \GLOBAL??\PhysicalDrive0. (volmgr.sys links PartitionN to its volumes.)
    create_object("\\Device\\Harddisk0", None)?;
    let dr0 = mountmgr::disk_device_name(0);
    create_object(&mountmgr::partition_device_name(0, 0), Some(&dr0))?;
    create_object("\\GLOBAL??\\PhysicalDrive0", Some(&dr0))?;
    // The interrupt, once the port works polled: the PnP manager's
    // assignment (MSI on the ICH9), connected like IoConnectInterruptEx.
    // Without it requests keep polling.
    let interrupt = match pnp.map(|(node, _)| {
        let va = lock.lock().hba.va();
        crate::io::pnp::interrupt::connect_kernel(node, storahci::ahci_isr, va as usize)
    }) {
        Some(Ok(conn)) => {
            let vector = conn.interrupt().vector;
            // The stack lives as long as the system: the connection is never undone.
            core::mem::forget(conn);
            let mut p = lock.lock();
            p.hba.interrupts = true;
            p.enable_interrupts();
            Some(vector)
        }
        Some(Err(s)) => {
            dbg_println!("storage: no interrupt ({s:?}); polling");
            None
        }
        None => None,
    };
    match interrupt {
        Some(v) => dbg_println!("storage: port 0 interrupt connected (vector {v:#x})"),
        None => dbg_println!("storage: port 0 polled"),
    }
    let stack = Stack {
        controller: c,
        port: lock,
        disk: Disk {
            number: 0,
            identify,
            gpt,
            removed: AtomicBool::new(false),
        },
        interrupt,
    };
    let boxed = crate::ex::pool::try_box(stack)?;
    let _ = STACK.set(boxed);
    let s = STACK.get().ok_or(STATUS_UNSUCCESSFUL)?;
    // The device object (\Driver\disk: DR0); without it the stack still
    // serves kernel callers. Then the disk stack is built and started as the
    // PnP manager would: the disk class's upper filters (partmgr.sys) attach
    // above DR0 and IRP_MN_START_DEVICE goes to the top; partmgr reads the
    // partition table and reports the partitions to volmgr.sys.
    match devices::create_devices() {
        // SAFETY: DR0 was just created and the disk driver never deletes it.
        Ok(dr0) => unsafe { devices::start_disk_stack(dr0) },
        Err(e) => dbg_println!("storage: device objects: {e:?}"),
    }
    Ok(s)
}
