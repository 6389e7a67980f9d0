//! The volume: the block device over the volume's device stack, the
//! volume control block (VCB) with its FCB table, mounting, and the
//! per-request dispatch of a volume device.
//!
//! The structures as NT's NTFS keeps them (*Windows Internals*, Part 2
//! ch. 11, "NTFS file system driver", figure "NTFS data structures"):
//! one `Vcb` per mounted volume (in the volume device's extension), one
//! `Fcb` per open file (keyed by its MFT record number, shared by every
//! open of the file), one `Scb` per open stream of the file (the unnamed
//! `$DATA`, a named stream `file:ads`, or a directory's `$I30` index;
//! `FILE_OBJECT.FsContext` points at it and it holds the stream's share
//! access and `SECTION_OBJECT_POINTERS`), one `Ccb` per file object
//! (`FsContext2`: the handle's own state, a directory enumeration's
//! position and expression, delete-on-close).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ptr;
use nt::status::*;
use nt::NtStatus;
use ntfs::device::{BlockDevice, SectorIo, Sectored};
use ntfs::Volume;
use rt::request::PassiveLock;
use rt::wdk::disk::*;
use rt::wdk::*;

/// Largest transfer one IRP carries (the block device splits longer ones).
const MAX_TRANSFER: usize = 64 * 1024;

/// The volume as lib/ntfs sees it: whole sectors read and written with
/// `IRP_MJ_READ`/`IRP_MJ_WRITE` sent to the top of the volume's stack
/// (`Vpb->RealDevice`'s attached device, given at mount).
pub struct VolumeIo {
    target: *mut DEVICE_OBJECT,
    sector_size: u32,
    sectors: u64,
}

impl VolumeIo {
    fn transfer(&mut self, write: bool, lba: u64, buf: &mut [u8]) -> ntfs::Result<()> {
        let ss = self.sector_size as u64;
        let mut done = 0usize;
        while done < buf.len() {
            let n = (buf.len() - done).min(MAX_TRANSFER);
            let off = (lba * ss + done as u64) as i64;
            // SAFETY: the target device is referenced by the volume (the
            // VPB's real device lives while mounted); the buffer is ours.
            let (s, got) =
                unsafe { rt::request::transfer(self.target, write, off, &mut buf[done..done + n]) };
            if !s.is_success() || got != n {
                return Err(ntfs::Error::Io);
            }
            done += n;
        }
        Ok(())
    }
}

impl SectorIo for VolumeIo {
    fn sector_size(&self) -> u32 {
        self.sector_size
    }
    fn sectors(&self) -> u64 {
        self.sectors
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> ntfs::Result<()> {
        self.transfer(false, lba, buf)
    }
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> ntfs::Result<()> {
        let mut copy: Vec<u8> = Vec::new();
        copy.try_reserve_exact(buf.len())
            .map_err(|_| ntfs::Error::Unsupported("out of pool"))?;
        copy.extend_from_slice(buf);
        self.transfer(true, lba, &mut copy)
    }
}

/// The lib/ntfs volume of a mount.
pub type Vol = Volume<Sectored<VolumeIo>>;

/// A stream control block: one per open stream of a file.
pub struct Scb {
    /// The stream's name (empty: the unnamed `$DATA`, or the directory's
    /// index for a directory).
    pub stream: Vec<u16>,
    pub share: SHARE_ACCESS,
    /// File objects on this stream.
    pub refs: u32,
    /// What the memory manager and cache manager find through
    /// `FILE_OBJECT.SectionObjectPointer` (no section or cache map yet).
    pub section: SECTION_OBJECT_POINTERS,
}

/// A file control block: one per open file.
pub struct Fcb {
    /// The path from the root (`\Windows\System32\ntoskrnl.exe`), with
    /// each component as stored on disk.
    pub path: Vec<u16>,
    pub is_dir: bool,
    /// Handles (cleanups not yet seen).
    pub opens: u32,
    /// File objects (closes not yet seen).
    pub refs: u32,
    /// Delete when the last handle goes (disposition or delete-on-close).
    pub delete_pending: bool,
    /// Boxed: `FILE_OBJECT.FsContext` points at an SCB, which must not
    /// move when the vector grows.
    #[allow(clippy::vec_box)]
    pub scbs: Vec<Box<Scb>>,
}

/// A context control block: one per file object.
pub struct Ccb {
    pub fcb: u64,
    pub delete_on_close: bool,
    /// Directory enumeration: the matching entries, and the next to return.
    pub dir: Option<crate::dir::Enumeration>,
}

/// What the volume lock protects.
pub struct VcbState {
    pub vol: Vol,
    pub fcbs: BTreeMap<u64, Box<Fcb>>,
}

/// The volume control block.
pub struct Vcb {
    pub vdo: *mut DEVICE_OBJECT,
    pub target: *mut DEVICE_OBJECT,
    pub serial: u64,
    pub state: PassiveLock<VcbState>,
}

/// The volume's size in bytes (`IOCTL_DISK_GET_LENGTH_INFO`).
///
/// # Safety
/// `target` is a live device.
unsafe fn volume_length(target: *mut DEVICE_OBJECT) -> Option<u64> {
    let mut out = [0u8; 8];
    // SAFETY: per the contract; the buffers are ours.
    let (s, n) =
        unsafe { rt::request::ioctl(target, IOCTL_DISK_GET_LENGTH_INFO, &[], &mut out, false) };
    if !s.is_success() || n < 8 {
        return None;
    }
    Some(u64::from_le_bytes(out))
}

/// The system time (100 ns since 1601) for timestamps lib/ntfs writes.
fn now() -> u64 {
    let mut t: LARGE_INTEGER = 0;
    // SAFETY: a valid out pointer.
    unsafe { KeQuerySystemTimePrecise(&mut t) };
    t as u64
}

/// `IRP_MN_MOUNT_VOLUME`: lib/ntfs validates the boot sector and reads the
/// MFT's own record and `$UpCase`; a volume it refuses is
/// `STATUS_UNRECOGNIZED_VOLUME`. Otherwise the volume device object
/// (unnamed, `FILE_DEVICE_DISK_FILE_SYSTEM`, stack size one more than the
/// target's) is created with its VCB and named in the VPB.
///
/// # Safety
/// `sl` is the current stack location of a mount request.
pub unsafe fn mount(sl: *mut IO_STACK_LOCATION) -> NtStatus {
    // SAFETY: per the contract; the I/O manager's VPB and target device
    // are live for the mount.
    unsafe {
        let p = (*sl).Parameters.MountVolume;
        let (vpb, target) = (p.Vpb, p.DeviceObject);
        let ss = match (*target).SectorSize {
            0 => 512,
            s => s as u32,
        };
        let Some(len) = volume_length(target) else {
            return STATUS_UNRECOGNIZED_VOLUME;
        };
        let io = VolumeIo {
            target,
            sector_size: ss,
            sectors: len / ss as u64,
        };
        let mut vol = match Volume::open(Sectored::new(io)) {
            Ok(v) => v,
            Err(_) => return STATUS_UNRECOGNIZED_VOLUME,
        };
        vol.clock = now;
        let serial = vol.boot.serial;
        let label: Vec<u16> = vol
            .volume_name()
            .map(|n| n.encode_utf16().take(32).collect())
            .unwrap_or_default();
        let mut vdo: *mut DEVICE_OBJECT = ptr::null_mut();
        let s = IoCreateDevice(
            crate::driver(),
            core::mem::size_of::<usize>() as u32,
            ptr::null_mut(),
            FILE_DEVICE_DISK_FILE_SYSTEM,
            0,
            0,
            &mut vdo,
        );
        if !s.is_success() {
            return s;
        }
        let vcb = Box::new(Vcb {
            vdo,
            target,
            serial,
            state: PassiveLock::new(VcbState {
                vol,
                fcbs: BTreeMap::new(),
            }),
        });
        vcb.state.init();
        *((*vdo).DeviceExtension as *mut *mut Vcb) = Box::into_raw(vcb);
        (*vdo).StackSize = (*target).StackSize + 1;
        (*vdo).SectorSize = ss as u16;
        (*vdo).Flags &= !DO_DEVICE_INITIALIZING;
        let mut irql = 0u8;
        IoAcquireVpbSpinLock(&mut irql);
        (*vpb).SerialNumber = serial as u32;
        (*vpb).VolumeLabelLength = (label.len() * 2) as u16;
        let vl = &mut (*vpb).VolumeLabel;
        vl[..label.len()].copy_from_slice(&label);
        (*vpb).DeviceObject = vdo;
        IoReleaseVpbSpinLock(irql);
        rt::kprintln!(
            "ntfs: mounted volume {:04X}-{:04X} ({} MiB)",
            (serial >> 16) as u16,
            serial as u16,
            len >> 20
        );
        STATUS_SUCCESS
    }
}

/// The buffer of a read, write or query: the MDL's system address, else
/// the system buffer (buffered requests), else the caller's buffer.
///
/// # Safety
/// `irp` is a request we own.
pub unsafe fn request_buffer(irp: *mut IRP) -> *mut u8 {
    // SAFETY: per the contract.
    unsafe {
        if !(*irp).MdlAddress.is_null() {
            MmGetSystemAddressForMdlSafe((*irp).MdlAddress, NORMAL_PAGE_PRIORITY).cast()
        } else if !(*irp).AssociatedIrp.SystemBuffer.is_null() {
            (*irp).AssociatedIrp.SystemBuffer.cast()
        } else {
            (*irp).UserBuffer.cast()
        }
    }
}

/// The FCB, SCB and CCB of a file object of this volume.
///
/// # Safety
/// `fo` is a file object opened on this volume.
pub unsafe fn contexts(fo: *mut FILE_OBJECT) -> Option<(*mut Scb, *mut Ccb)> {
    // SAFETY: per the contract.
    unsafe {
        let scb = (*fo).FsContext as *mut Scb;
        let ccb = (*fo).FsContext2 as *mut Ccb;
        if scb.is_null() || ccb.is_null() {
            None
        } else {
            Some((scb, ccb))
        }
    }
}

/// A request to a volume device: (status, information); the caller
/// completes the IRP.
///
/// # Safety
/// `irp` and `sl` are a request to `vcb`'s volume device we own.
pub unsafe fn dispatch_volume(
    vcb: &Vcb,
    irp: *mut IRP,
    sl: *mut IO_STACK_LOCATION,
) -> (NtStatus, usize) {
    let mut st = vcb.state.lock();
    // SAFETY: per the contract.
    unsafe {
        let fo = (*sl).FileObject;
        match (*sl).MajorFunction {
            IRP_MJ_CREATE => crate::create::create(vcb, &mut st, irp, sl),
            IRP_MJ_CLEANUP => crate::create::cleanup(&mut st, fo),
            IRP_MJ_CLOSE => crate::create::close(&mut st, fo),
            IRP_MJ_READ => read(&mut st, irp, sl),
            IRP_MJ_WRITE => crate::create::write(&mut st, irp, sl),
            IRP_MJ_QUERY_INFORMATION => crate::info::query(&mut st, irp, sl),
            IRP_MJ_SET_INFORMATION => crate::info::set(&mut st, irp, sl),
            IRP_MJ_QUERY_VOLUME_INFORMATION => crate::info::query_volume(vcb, &mut st, irp, sl),
            IRP_MJ_DIRECTORY_CONTROL => crate::dir::control(&mut st, irp, sl),
            IRP_MJ_FLUSH_BUFFERS => match st.vol.device().flush() {
                Ok(()) => (STATUS_SUCCESS, 0),
                Err(e) => (e.status(), 0),
            },
            // Dismount, lock and the other FSCTLs: not yet.
            IRP_MJ_FILE_SYSTEM_CONTROL => (STATUS_INVALID_DEVICE_REQUEST, 0),
            _ => (STATUS_INVALID_DEVICE_REQUEST, 0),
        }
    }
}

/// The FCB of record `n`.
pub fn fcb(st: &mut VcbState, n: u64) -> Option<&mut Fcb> {
    st.fcbs.get_mut(&n).map(|b| &mut **b)
}

/// `IRP_MJ_READ`, non-cached: the stream's bytes at `ByteOffset` through
/// lib/ntfs (sparse ranges and bytes past the initialized size read as
/// zero, compressed streams are decompressed). A read at or past the end
/// of file is STATUS_END_OF_FILE; a directory is STATUS_INVALID_DEVICE_REQUEST.
///
/// # Safety
/// A read request we own on one of our file objects.
unsafe fn read(st: &mut VcbState, irp: *mut IRP, sl: *mut IO_STACK_LOCATION) -> (NtStatus, usize) {
    // SAFETY: per the contract.
    unsafe {
        let fo = (*sl).FileObject;
        let Some((scb, ccb)) = contexts(fo) else {
            return (STATUS_INVALID_DEVICE_REQUEST, 0);
        };
        let n = (*ccb).fcb;
        let is_dir = fcb(st, n).map(|f| f.is_dir).unwrap_or(true);
        if is_dir && (*scb).stream.is_empty() {
            return (STATUS_INVALID_DEVICE_REQUEST, 0);
        }
        let p = (*sl).Parameters.Read;
        let mut off = p.ByteOffset;
        if off == wdk::fs::FILE_USE_FILE_POINTER_POSITION {
            off = (*fo).CurrentByteOffset;
        }
        if off < 0 {
            return (STATUS_INVALID_PARAMETER, 0);
        }
        if p.Length == 0 {
            return (STATUS_SUCCESS, 0);
        }
        let stream = match st.vol.open_stream(n, ntfs::attr::AT_DATA, &(*scb).stream) {
            Ok(s) => s,
            Err(e) => return (e.status(), 0),
        };
        let size = stream.data_size;
        if off as u64 >= size {
            return (STATUS_END_OF_FILE, 0);
        }
        let len = (p.Length as u64).min(size - off as u64) as usize;
        let buf = request_buffer(irp);
        if buf.is_null() {
            return (STATUS_INSUFFICIENT_RESOURCES, 0);
        }
        let out = core::slice::from_raw_parts_mut(buf, len);
        match st.vol.read_stream_at(&stream, off as u64, out) {
            Ok(got) => {
                if (*fo).Flags & FO_SYNCHRONOUS_IO != 0 {
                    (*fo).CurrentByteOffset = off + got as i64;
                }
                (STATUS_SUCCESS, got)
            }
            Err(e) => (e.status(), 0),
        }
    }
}
