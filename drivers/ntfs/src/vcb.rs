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
use ntfs::device::{SectorIo, Sectored};
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

/// `NodeTypeCode` of an SCB's header (an ntrs value: NT's NTFS node type
/// codes are not documented).
pub const NODE_TYPE_SCB: i16 = 0x0705;

/// A stream control block: one per open stream of a file. It starts with
/// the `FSRTL_ADVANCED_FCB_HEADER` that `FILE_OBJECT.FsContext` points at,
/// where the cache manager, the memory manager and the fast I/O routines
/// (`FsRtlCopyRead`/`FsRtlCopyWrite`) read the stream's sizes. `FileSize`
/// is always the size on disk (a cached write that extends the stream
/// extends it on disk first); `ValidDataLength` equals it (lib/ntfs zeroes
/// what an extension allocates); `AllocationSize` is the allocated size.
#[repr(C)]
pub struct Scb {
    pub header: FSRTL_ADVANCED_FCB_HEADER,
    /// The stream's name (empty: the unnamed `$DATA`, or the directory's
    /// index for a directory).
    pub stream: Vec<u16>,
    pub share: SHARE_ACCESS,
    /// File objects on this stream.
    pub refs: u32,
    /// What the memory manager and cache manager find through
    /// `FILE_OBJECT.SectionObjectPointer`.
    pub section: SECTION_OBJECT_POINTERS,
}

impl Scb {
    /// A new SCB; `sizes` (allocation, file size) for a data stream, None
    /// for a directory's index (no fast I/O, no caching).
    pub fn new(stream: Vec<u16>, sizes: Option<(u64, u64)>) -> Scb {
        let (alloc, size) = sizes.unwrap_or((0, 0));
        Scb {
            header: FSRTL_ADVANCED_FCB_HEADER {
                Common: FSRTL_COMMON_FCB_HEADER {
                    NodeTypeCode: NODE_TYPE_SCB,
                    NodeByteSize: core::mem::size_of::<Scb>() as i16,
                    Flags: 0,
                    IsFastIoPossible: if sizes.is_some() {
                        FastIoIsPossible
                    } else {
                        FastIoIsNotPossible
                    },
                    Flags2: FSRTL_FLAG2_ADVANCED_FCB,
                    Reserved: FSRTL_FCB_HEADER_V2 << 4,
                    Resource: ptr::null_mut(),
                    PagingIoResource: ptr::null_mut(),
                    AllocationSize: alloc as i64,
                    FileSize: size as i64,
                    ValidDataLength: size as i64,
                },
                FastMutex: ptr::null_mut(),
                FilterContexts: LIST_ENTRY {
                    Flink: ptr::null_mut(),
                    Blink: ptr::null_mut(),
                },
                PushLock: 0,
                FileContextSupportPointer: ptr::null_mut(),
                Oplock: ptr::null_mut(),
            },
            stream,
            share: SHARE_ACCESS::default(),
            refs: 0,
            section: SECTION_OBJECT_POINTERS {
                DataSectionObject: ptr::null_mut(),
                SharedCacheMap: ptr::null_mut(),
                ImageSectionObject: ptr::null_mut(),
            },
        }
    }

    /// The sizes as `CcInitializeCacheMap`/`CcSetFileSizes` take them.
    pub fn cc_sizes(&self) -> CC_FILE_SIZES {
        let h = &self.header.Common;
        CC_FILE_SIZES {
            AllocationSize: h.AllocationSize,
            FileSize: h.FileSize,
            ValidDataLength: h.ValidDataLength,
        }
    }

    /// Records new on-disk sizes of the stream.
    pub fn set_sizes(&mut self, alloc: u64, size: u64) {
        let h = &mut self.header.Common;
        h.AllocationSize = alloc as i64;
        h.FileSize = size as i64;
        h.ValidDataLength = size as i64;
    }
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
    /// USN reasons gathered since the file's last close record (NTFS
    /// keeps them in the FCB; `fsctl::usn_post`).
    pub usn_reasons: u32,
    /// Boxed: `FILE_OBJECT.FsContext` points at an SCB, which must not
    /// move when the vector grows.
    #[allow(clippy::vec_box)]
    pub scbs: Vec<Box<Scb>>,
}

/// A context control block: one per file object.
pub struct Ccb {
    pub fcb: u64,
    pub delete_on_close: bool,
    /// `FILE_DISPOSITION_POSIX_SEMANTICS`: the name goes when this handle
    /// closes, even while other handles keep the file open.
    pub posix_delete: bool,
    /// Directory enumeration: the matching entries, and the next to return.
    pub dir: Option<crate::dir::Enumeration>,
}

/// What the volume lock protects.
pub struct VcbState {
    pub vol: Vol,
    pub fcbs: BTreeMap<u64, Box<Fcb>>,
    /// FCBs of deleted files that still have file objects (a data section
    /// or cache map keeps one referenced): out of the table so that a new
    /// file in the same record gets its own; paging I/O on them is dropped.
    #[allow(clippy::vec_box)]
    pub orphans: Vec<Box<Fcb>>,
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
pub fn now() -> u64 {
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
                orphans: Vec::new(),
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
    // SAFETY: per the contract.
    unsafe {
        let fo = (*sl).FileObject;
        // Requests that call the cache manager take the volume lock
        // themselves: what the cache manager does may send paging I/O back
        // to this driver on the same thread.
        match (*sl).MajorFunction {
            IRP_MJ_READ => return crate::rw::read(vcb, irp, sl),
            IRP_MJ_WRITE => return crate::rw::write(vcb, irp, sl),
            IRP_MJ_CLEANUP => return crate::create::cleanup(vcb, fo),
            IRP_MJ_FLUSH_BUFFERS => return crate::rw::flush(vcb, fo),
            _ => {}
        }
        let mut st = vcb.state.lock();
        match (*sl).MajorFunction {
            IRP_MJ_CREATE => crate::create::create(vcb, &mut st, irp, sl),
            IRP_MJ_CLOSE => crate::create::close(&mut st, fo),
            IRP_MJ_QUERY_INFORMATION => crate::info::query(&mut st, irp, sl),
            IRP_MJ_SET_INFORMATION => crate::info::set(&mut st, irp, sl),
            IRP_MJ_QUERY_VOLUME_INFORMATION => crate::info::query_volume(vcb, &mut st, irp, sl),
            IRP_MJ_DIRECTORY_CONTROL => crate::dir::control(&mut st, irp, sl),
            // The USN journal FSCTLs; dismount, lock and the others: not yet.
            IRP_MJ_FILE_SYSTEM_CONTROL => crate::fsctl::control(&mut st, irp, sl),
            _ => (STATUS_INVALID_DEVICE_REQUEST, 0),
        }
    }
}

/// The FCB of record `n`.
pub fn fcb(st: &mut VcbState, n: u64) -> Option<&mut Fcb> {
    st.fcbs.get_mut(&n).map(|b| &mut **b)
}

/// The FCB of `scb` when `scb` belongs to the live file of record `n`
/// (not to a deleted file's orphaned FCB).
pub fn fcb_of_scb(st: &mut VcbState, n: u64, scb: *const Scb) -> Option<&mut Fcb> {
    let f = fcb(st, n)?;
    f.scbs.iter().any(|s| ptr::eq(&**s, scb)).then_some(f)
}
