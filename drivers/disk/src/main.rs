//! disk.sys: the disk class driver (*Windows Internals* 7th ed., Part 1
//! ch. 6, "Storage": the class driver over a port driver's disk PDO), as
//! Windows' disk.sys with classpnp:
//!
//! - `AddDevice(DriverObject, Pdo)` numbers the disk from
//!   `IoGetConfigurationInformation()->DiskCount` (and counts it), creates
//!   the directory `\Device\Harddisk<n>` (`ZwCreateDirectoryObject`,
//!   permanent) and the FDO `\Device\Harddisk<n>\DR<n>` (`DO_DIRECT_IO`),
//!   attaches it to the PDO's stack, and links
//!   `\Device\Harddisk<n>\Partition0` and `\GLOBAL??\PhysicalDrive<n>` to it.
//! - `IRP_MN_START_DEVICE` goes to the PDO first; then the adapter's
//!   `STORAGE_ADAPTER_DESCRIPTOR` (largest transfer, alignment), INQUIRY
//!   (standard data and the serial-number page), READ CAPACITY (16 when the
//!   10-byte form overflows) and the GPT (`lib/storage::gpt`), all as SRBs.
//! - `IRP_MJ_READ`/`IRP_MJ_WRITE`: the sector checks of `lib/storage::request`,
//!   then READ(16)/WRITE(16) SRBs of at most the adapter's transfer length,
//!   one after the other from the completion routine; the IRP pends and
//!   completes when the last piece did (errors: SRB status and sense →
//!   NTSTATUS, `lib/storage::scsi::srb_ntstatus`).
//! - `IRP_MJ_FLUSH_BUFFERS` → SYNCHRONIZE CACHE(10).
//! - `IRP_MJ_DEVICE_CONTROL`: `lib/storage::class::DiskInfo::ioctl`
//!   (geometry, length, partition and layout information, device number,
//!   the device descriptor).
//! - `IOCTL_STORAGE_RESET_DEVICE` / `IOCTL_STORAGE_RESET_BUS`: an
//!   `SRB_FUNCTION_RESET_DEVICE` / `_RESET_BUS` to the port, as classpnp
//!   sends it (storahci resets the port: COMRESET).
//! - `IRP_MJ_SCSI` from above passes to the port driver unchanged.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr;
use nt::status::*;
use nt::NtStatus;
use rt::request::{complete, dispatch_raw_create_close, forward_irp_synchronously, send_and_wait};
use rt::wdk::scsi::*;
use rt::wdk::*;
use storage::class::DiskInfo;
use storage::gpt::{self, SectorSource};
use storage::scsi::{srb_ntstatus, Sense};

const MAGIC: u32 = u32::from_le_bytes(*b"DskF");
/// Transfer length when the adapter does not say (64 KiB).
const DEFAULT_MAX_TRANSFER: u32 = 0x1_0000;

/// The FDO's extension.
#[repr(C)]
struct Ext {
    magic: u32,
    number: u32,
    lower: *mut DEVICE_OBJECT,
    /// Set at START_DEVICE.
    info: *const DiskInfo,
    max_transfer: u32,
}

/// UTF-16 of `s` for a `UNICODE_STRING` (the vector owns the buffer).
fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn us(v: &mut [u16]) -> UNICODE_STRING {
    UNICODE_STRING {
        Length: (v.len() * 2) as u16,
        MaximumLength: (v.len() * 2) as u16,
        Buffer: v.as_mut_ptr(),
    }
}

/// Our extension of `dev`, if it is one of our FDOs.
///
/// # Safety
/// `dev` is a live device object of this driver.
unsafe fn ext(dev: *mut DEVICE_OBJECT) -> Option<&'static mut Ext> {
    // SAFETY: our devices carry an Ext; the magic tells a started one.
    unsafe {
        let e = (*dev).DeviceExtension as *mut Ext;
        (!e.is_null() && (*e).magic == MAGIC).then(|| &mut *e)
    }
}

/// Runs one SRB synchronously: (NTSTATUS from SRB status and sense, bytes).
///
/// # Safety
/// `lower` is the port's device; `buf` holds `len` bytes (even address).
unsafe fn scsi_sync(
    lower: *mut DEVICE_OBJECT,
    cdb: &[u8],
    buf: *mut u8,
    len: u32,
    out: bool,
) -> (NtStatus, u32) {
    let mut srb = SCSI_REQUEST_BLOCK::new();
    let mut sense = [0u8; SENSE_BUFFER_SIZE];
    srb.Function = SRB_FUNCTION_EXECUTE_SCSI;
    srb.CdbLength = cdb.len() as u8;
    srb.Cdb[..cdb.len()].copy_from_slice(cdb);
    srb.DataBuffer = buf.cast();
    srb.DataTransferLength = len;
    srb.SrbFlags = if len == 0 {
        SRB_FLAGS_NO_DATA_TRANSFER
    } else if out {
        SRB_FLAGS_DATA_OUT
    } else {
        SRB_FLAGS_DATA_IN
    };
    srb.SenseInfoBuffer = sense.as_mut_ptr().cast();
    srb.SenseInfoBufferLength = SENSE_BUFFER_SIZE as u8;
    srb.TimeOutValue = 10;
    let params = IO_STACK_LOCATION_PARAMETERS {
        Scsi: ScsiParameters {
            Srb: (&raw mut srb).cast(),
        },
    };
    // SAFETY: per the contract; the SRB and sense live until the IRP is back.
    let (s, _) = unsafe { send_and_wait(lower, IRP_MJ_SCSI, 0, params, ptr::null_mut()) };
    let st = srb_status_of(&srb, &sense);
    if s.is_success() && st.is_success() {
        (STATUS_SUCCESS, srb.DataTransferLength)
    } else if !st.is_success() {
        (st, 0)
    } else {
        (s, 0)
    }
}

/// `SRB_FUNCTION_RESET_DEVICE` (or `_RESET_BUS`) to the port, waited for.
///
/// # Safety
/// `lower` is the port's device; PASSIVE_LEVEL.
unsafe fn reset(lower: *mut DEVICE_OBJECT, bus: bool) -> NtStatus {
    let mut srb = SCSI_REQUEST_BLOCK::new();
    srb.Function = if bus {
        SRB_FUNCTION_RESET_BUS
    } else {
        SRB_FUNCTION_RESET_DEVICE
    };
    srb.SrbFlags = SRB_FLAGS_NO_DATA_TRANSFER;
    srb.TimeOutValue = 10;
    let params = IO_STACK_LOCATION_PARAMETERS {
        Scsi: ScsiParameters {
            Srb: (&raw mut srb).cast(),
        },
    };
    // SAFETY: per the contract; the SRB lives until the IRP is back.
    let (s, _) = unsafe { send_and_wait(lower, IRP_MJ_SCSI, 0, params, ptr::null_mut()) };
    let st = srb_status_of(&srb, &[]);
    if !st.is_success() {
        st
    } else {
        s
    }
}

/// The NTSTATUS a completed SRB stands for.
fn srb_status_of(srb: &SCSI_REQUEST_BLOCK, sense: &[u8]) -> NtStatus {
    let s = if srb.SrbStatus & SRB_STATUS_AUTOSENSE_VALID != 0 {
        Sense::from_bytes(sense)
    } else {
        None
    };
    srb_ntstatus(srb.SrbStatus, s)
}

fn cdb16(op: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// The disk read by sectors through SRBs, for the GPT parser.
struct SrbSource {
    lower: *mut DEVICE_OBJECT,
    sector_size: u32,
    max_transfer: u32,
}

impl SectorSource for SrbSource {
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), NtStatus> {
        let ss = self.sector_size as usize;
        let chunk = (self.max_transfer as usize / ss).max(1) * ss;
        let mut done = 0;
        // The buffer must be even for the port (PRDT); bounce if not.
        let mut bounce = Vec::new();
        let odd = buf.as_ptr() as usize & 1 != 0;
        if odd {
            bounce
                .try_reserve_exact(buf.len())
                .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
            bounce.resize(buf.len(), 0u8);
        }
        let base = if odd {
            bounce.as_mut_ptr()
        } else {
            buf.as_mut_ptr()
        };
        while done < buf.len() {
            let n = (buf.len() - done).min(chunk);
            let cdb = cdb16(SCSIOP_READ16, lba + (done / ss) as u64, (n / ss) as u32);
            // SAFETY: `base + done` holds `n` writable bytes.
            let (s, moved) =
                unsafe { scsi_sync(self.lower, &cdb, base.add(done), n as u32, false) };
            if !s.is_success() {
                return Err(s);
            }
            if moved as usize != n {
                return Err(STATUS_IO_DEVICE_ERROR);
            }
            done += n;
        }
        if odd {
            buf.copy_from_slice(&bounce);
        }
        Ok(())
    }
}

/// START_DEVICE after the PDO started: adapter limits, INQUIRY, capacity,
/// the partition table.
///
/// # Safety
/// `e` is the FDO's extension.
unsafe fn start(e: &mut Ext) -> NtStatus {
    let lower = e.lower;
    // The adapter's limits (IOCTL_STORAGE_QUERY_PROPERTY, adapter property).
    let mut buf = [0u8; 64];
    buf[0..4].copy_from_slice(&StorageAdapterProperty.to_le_bytes());
    let params = IO_STACK_LOCATION_PARAMETERS {
        DeviceIoControl: IoControlParameters {
            OutputBufferLength: core::mem::size_of::<STORAGE_ADAPTER_DESCRIPTOR>() as u32,
            Reserved0: 0,
            InputBufferLength: 12,
            Reserved1: 0,
            IoControlCode: IOCTL_STORAGE_QUERY_PROPERTY,
            Reserved2: 0,
            Type3InputBuffer: ptr::null_mut(),
        },
    };
    // SAFETY: a METHOD_BUFFERED request with a system buffer of 64 bytes.
    let (s, n) = unsafe {
        send_and_wait(
            lower,
            IRP_MJ_DEVICE_CONTROL,
            0,
            params,
            buf.as_mut_ptr().cast(),
        )
    };
    e.max_transfer = DEFAULT_MAX_TRANSFER;
    if s.is_success() && n >= 12 {
        let max = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
        if max >= 512 {
            e.max_transfer = max;
        }
    }
    // INQUIRY (standard, then the unit serial number page).
    let mut data = vec![0u8; 256];
    let mut inquiry = [0u8; INQUIRYDATABUFFERSIZE];
    // SAFETY: `data` holds 256 bytes (pool memory: even address).
    let (s, n) = unsafe {
        scsi_sync(
            lower,
            &[SCSIOP_INQUIRY, 0, 0, 0, 36, 0],
            data.as_mut_ptr(),
            36,
            false,
        )
    };
    if !s.is_success() {
        return s;
    }
    inquiry[..(n as usize).min(36)].copy_from_slice(&data[..(n as usize).min(36)]);
    // SAFETY: as above.
    let (s, n) = unsafe {
        scsi_sync(
            lower,
            &[SCSIOP_INQUIRY, 1, 0x80, 0, 255, 0],
            data.as_mut_ptr(),
            255,
            false,
        )
    };
    let serial = if s.is_success() && n >= 4 {
        let len = (data[3] as usize).min(n as usize - 4);
        data[4..4 + len]
            .iter()
            .copied()
            .filter(|&b| b != b' ')
            .collect()
    } else {
        Vec::new()
    };
    // READ CAPACITY (10), (16) when it overflows.
    let mut rc = [0u8; 10];
    rc[0] = SCSIOP_READ_CAPACITY;
    // SAFETY: as above.
    let (s, n) = unsafe { scsi_sync(lower, &rc, data.as_mut_ptr(), 8, false) };
    if !s.is_success() || n < 8 {
        return if s.is_success() {
            STATUS_IO_DEVICE_ERROR
        } else {
            s
        };
    }
    let mut last = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as u64;
    let mut ss = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    if last == 0xFFFF_FFFF {
        let mut c = [0u8; 16];
        c[0] = SCSIOP_READ_CAPACITY16;
        c[1] = SERVICE_ACTION_READ_CAPACITY16;
        c[13] = 32;
        // SAFETY: as above.
        let (s, n) = unsafe { scsi_sync(lower, &c, data.as_mut_ptr(), 32, false) };
        if !s.is_success() || n < 12 {
            return if s.is_success() {
                STATUS_IO_DEVICE_ERROR
            } else {
                s
            };
        }
        last = u64::from_be_bytes(data[..8].try_into().unwrap_or_default());
        ss = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
    }
    if ss < 512 || !ss.is_power_of_two() || last == u64::MAX {
        return STATUS_UNRECOGNIZED_MEDIA;
    }
    let sectors = last + 1;
    let mut src = SrbSource {
        lower,
        sector_size: ss,
        max_transfer: e.max_transfer,
    };
    let g = match gpt::read(&mut src, ss, sectors) {
        Ok(g) => {
            if let Some(err) = &g.primary_error {
                rt::kprintln!("disk: primary GPT bad ({err}), using the backup");
            }
            Some(g)
        }
        Err(err) => {
            rt::kprintln!("disk: no usable partition table: {err}");
            None
        }
    };
    let info = Box::new(DiskInfo {
        number: e.number,
        sectors,
        sector_size: ss,
        gpt: g,
        inquiry,
        serial,
    });
    rt::kprintln!(
        "disk: \\Device\\Harddisk{}\\DR{}: {} sectors of {} bytes, transfers up to {:#x} bytes",
        e.number,
        e.number,
        sectors,
        ss,
        e.max_transfer
    );
    e.info = Box::into_raw(info);
    STATUS_SUCCESS
}

// ---- reads and writes ----

/// One read/write IRP in progress.
struct Transfer {
    irp: *mut IRP,
    lower: *mut DEVICE_OBJECT,
    write: bool,
    /// Next disk LBA.
    lba: u64,
    /// System address of the next byte.
    va: usize,
    remaining: usize,
    done: usize,
    sector_size: u32,
    max_transfer: u32,
    srb: SCSI_REQUEST_BLOCK,
    sense: [u8; SENSE_BUFFER_SIZE],
}

/// Sends the next piece of `t` (an SRB in the original IRP's next stack
/// location; the port builds its PRDT from the IRP's MDL).
///
/// # Safety
/// `t` came from `Box::into_raw` and is owned by the transfer.
unsafe fn send_piece(t: *mut Transfer) -> NtStatus {
    // SAFETY: per the contract.
    unsafe {
        let tr = &mut *t;
        let ss = tr.sector_size as usize;
        let n = tr
            .remaining
            .min((tr.max_transfer as usize / ss).max(1) * ss);
        let op = if tr.write {
            SCSIOP_WRITE16
        } else {
            SCSIOP_READ16
        };
        tr.srb = SCSI_REQUEST_BLOCK::new();
        tr.srb.Function = SRB_FUNCTION_EXECUTE_SCSI;
        tr.srb.CdbLength = 16;
        tr.srb.Cdb = cdb16(op, tr.lba, (n / ss) as u32);
        tr.srb.DataBuffer = tr.va as *mut c_void;
        tr.srb.DataTransferLength = n as u32;
        tr.srb.SrbFlags = if tr.write {
            SRB_FLAGS_DATA_OUT
        } else {
            SRB_FLAGS_DATA_IN
        };
        tr.srb.SenseInfoBuffer = tr.sense.as_mut_ptr().cast();
        tr.srb.SenseInfoBufferLength = SENSE_BUFFER_SIZE as u8;
        tr.srb.OriginalRequest = tr.irp.cast();
        tr.srb.TimeOutValue = 10;
        // Each piece goes down in the original IRP's next stack location
        // (the completion routine takes the IRP back with
        // STATUS_MORE_PROCESSING_REQUIRED and sends the next piece in it or
        // completes it): no IRP is allocated per piece.
        let irp = tr.irp;
        let sl = IoGetNextIrpStackLocation(irp);
        *sl = core::mem::zeroed();
        (*sl).MajorFunction = IRP_MJ_SCSI;
        (*sl).Parameters.Scsi.Srb = (&raw mut tr.srb).cast();
        IoSetCompletionRoutine(irp, piece_done, t.cast(), true, true, true);
        IoCallDriver(tr.lower, irp)
    }
}

/// Completes the original IRP and frees the transfer.
///
/// # Safety
/// As [`send_piece`]; the transfer is not used afterwards.
unsafe fn finish(t: *mut Transfer, status: NtStatus) -> NtStatus {
    // SAFETY: per the contract.
    unsafe {
        let tr = Box::from_raw(t);
        let info = if status.is_success() { tr.done } else { 0 };
        complete(tr.irp, status, info, IO_DISK_INCREMENT)
    }
}

unsafe extern "system" fn piece_done(
    _d: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    ctx: *mut c_void,
) -> NtStatus {
    let t = ctx as *mut Transfer;
    // SAFETY: the context is the transfer; the IRP is ours again (we return
    // STATUS_MORE_PROCESSING_REQUIRED).
    unsafe {
        let tr = &mut *t;
        let st = srb_status_of(&tr.srb, &tr.sense);
        let status = if !st.is_success() {
            st
        } else {
            (*irp).IoStatus.Status
        };
        let moved = tr.srb.DataTransferLength as usize;
        if !status.is_success() {
            finish(t, status);
        } else if moved == 0 {
            finish(t, STATUS_IO_DEVICE_ERROR);
        } else {
            tr.done += moved;
            tr.remaining -= moved.min(tr.remaining);
            tr.va += moved;
            tr.lba += (moved / tr.sector_size as usize) as u64;
            if tr.remaining == 0 {
                finish(t, STATUS_SUCCESS);
            } else {
                send_piece(t);
            }
        }
    }
    STATUS_MORE_PROCESSING_REQUIRED
}

unsafe extern "system" fn dispatch_read_write(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the I/O manager hands us the IRP with a current location.
    unsafe {
        let Some(e) = ext(dev) else {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0, IO_DISK_INCREMENT);
        };
        let Some(info) = e.info.as_ref() else {
            return complete(irp, STATUS_DEVICE_NOT_READY, 0, IO_DISK_INCREMENT);
        };
        let sl = IoGetCurrentIrpStackLocation(irp);
        let len = (*sl).Parameters.Read.Length as usize;
        let off = (*sl).Parameters.Read.ByteOffset;
        let write = (*sl).MajorFunction == IRP_MJ_WRITE;
        let t = match storage::request::check(
            off,
            len as u64,
            info.sector_size,
            0,
            info.bytes(),
            false,
        ) {
            Ok(t) => t,
            Err(s) => return complete(irp, s, 0, IO_DISK_INCREMENT),
        };
        if len == 0 {
            return complete(irp, STATUS_SUCCESS, 0, IO_DISK_INCREMENT);
        }
        if (*irp).MdlAddress.is_null() {
            return complete(irp, STATUS_INVALID_PARAMETER, 0, IO_DISK_INCREMENT);
        }
        // As classpnp: the SRB's DataBuffer is the MDL's virtual address
        // (not mapped into system space: the port builds its PRDT from the
        // MDL's page frames, which the pieces' IRPs carry).
        let va = MmGetMdlVirtualAddress((*irp).MdlAddress) as usize;
        if va & 1 != 0 {
            // The port needs even addresses (the device's alignment says so).
            return complete(irp, STATUS_DATATYPE_MISALIGNMENT, 0, IO_DISK_INCREMENT);
        }
        let t = Box::into_raw(Box::new(Transfer {
            irp,
            lower: e.lower,
            write,
            lba: t.lba,
            va,
            remaining: len,
            done: 0,
            sector_size: info.sector_size,
            max_transfer: e.max_transfer,
            srb: SCSI_REQUEST_BLOCK::new(),
            sense: [0; SENSE_BUFFER_SIZE],
        }));
        IoMarkIrpPending(irp);
        send_piece(t);
        STATUS_PENDING
    }
}

// ---- flush, IOCTLs, create ----

struct Flush {
    irp: *mut IRP,
    srb: SCSI_REQUEST_BLOCK,
    sense: [u8; SENSE_BUFFER_SIZE],
}

unsafe extern "system" fn flush_done(
    _d: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    ctx: *mut c_void,
) -> NtStatus {
    // SAFETY: the context is the Flush we boxed; the piece IRP is ours.
    unsafe {
        let f = Box::from_raw(ctx as *mut Flush);
        let st = srb_status_of(&f.srb, &f.sense);
        let s = if st.is_success() {
            (*irp).IoStatus.Status
        } else {
            st
        };
        IoFreeIrp(irp);
        complete(f.irp, s, 0, IO_DISK_INCREMENT);
    }
    STATUS_MORE_PROCESSING_REQUIRED
}

unsafe extern "system" fn dispatch_flush(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: as for read/write.
    unsafe {
        let Some(e) = ext(dev) else {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0, IO_DISK_INCREMENT);
        };
        let f = Box::into_raw(Box::new(Flush {
            irp,
            srb: SCSI_REQUEST_BLOCK::new(),
            sense: [0; SENSE_BUFFER_SIZE],
        }));
        let fr = &mut *f;
        fr.srb.Function = SRB_FUNCTION_EXECUTE_SCSI;
        fr.srb.CdbLength = 10;
        fr.srb.Cdb[0] = SCSIOP_SYNCHRONIZE_CACHE;
        fr.srb.SenseInfoBuffer = fr.sense.as_mut_ptr().cast();
        fr.srb.SenseInfoBufferLength = SENSE_BUFFER_SIZE as u8;
        let piece = IoAllocateIrp((*e.lower).StackSize, 0);
        if piece.is_null() {
            drop(Box::from_raw(f));
            return complete(irp, STATUS_INSUFFICIENT_RESOURCES, 0, IO_DISK_INCREMENT);
        }
        let sl = IoGetNextIrpStackLocation(piece);
        (*sl).MajorFunction = IRP_MJ_SCSI;
        (*sl).Parameters.Scsi.Srb = (&raw mut fr.srb).cast();
        IoSetCompletionRoutine(piece, flush_done, f.cast(), true, true, true);
        IoMarkIrpPending(irp);
        IoCallDriver(e.lower, piece);
        STATUS_PENDING
    }
}

unsafe extern "system" fn dispatch_ioctl(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: as for read/write; the system buffer holds max(in, out) bytes.
    unsafe {
        let Some(e) = ext(dev) else {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0, IO_DISK_INCREMENT);
        };
        let Some(info) = e.info.as_ref() else {
            return complete(irp, STATUS_DEVICE_NOT_READY, 0, IO_DISK_INCREMENT);
        };
        let sl = IoGetCurrentIrpStackLocation(irp);
        let p = (*sl).Parameters.DeviceIoControl;
        if p.IoControlCode == rt::wdk::disk::IOCTL_STORAGE_RESET_DEVICE
            || p.IoControlCode == rt::wdk::disk::IOCTL_STORAGE_RESET_BUS
        {
            // As classpnp: the reset goes to the port as an SRB (storport
            // calls the miniport's HwResetBus; storahci resets the port).
            let s = reset(
                e.lower,
                p.IoControlCode == rt::wdk::disk::IOCTL_STORAGE_RESET_BUS,
            );
            return complete(irp, s, 0, IO_DISK_INCREMENT);
        }
        if METHOD_FROM_CTL_CODE(p.IoControlCode) != METHOD_BUFFERED {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0, IO_DISK_INCREMENT);
        }
        let sys = (*irp).AssociatedIrp.SystemBuffer as *mut u8;
        let (inl, outl) = (p.InputBufferLength as usize, p.OutputBufferLength as usize);
        if sys.is_null() && (inl | outl) != 0 {
            return complete(irp, STATUS_INVALID_PARAMETER, 0, IO_DISK_INCREMENT);
        }
        let whole: &mut [u8] = if sys.is_null() {
            &mut []
        } else {
            core::slice::from_raw_parts_mut(sys, inl.max(outl))
        };
        // The input is copied first: the answer is written over it.
        let input = whole[..inl].to_vec();
        let (s, n) = info.ioctl(p.IoControlCode, &input, &mut whole[..outl]);
        complete(irp, s, n, IO_DISK_INCREMENT)
    }
}

unsafe extern "system" fn dispatch_pass_down(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the IRP is ours to forward; our FDO has a lower device.
    unsafe {
        let Some(e) = ext(dev) else {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0, IO_DISK_INCREMENT);
        };
        IoSkipCurrentIrpStackLocation(irp);
        IoCallDriver(e.lower, irp)
    }
}

unsafe extern "system" fn dispatch_pnp(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: as above.
    unsafe {
        let Some(e) = ext(dev) else {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0, IO_DISK_INCREMENT);
        };
        let sl = IoGetCurrentIrpStackLocation(irp);
        if (*sl).MinorFunction != IRP_MN_START_DEVICE {
            IoSkipCurrentIrpStackLocation(irp);
            return IoCallDriver(e.lower, irp);
        }
        // The port's PDO first, then ours.
        let mut s = forward_irp_synchronously(e.lower, irp);
        if s.is_success() && e.info.is_null() {
            s = start(e);
            if !s.is_success() {
                rt::kprintln!("disk: DR{} did not start: {:#x}", e.number, s.as_u32());
            }
        }
        complete(irp, s, 0, IO_DISK_INCREMENT)
    }
}

/// `AddDevice`: `\Device\Harddisk<n>\DR<n>` over the disk PDO.
unsafe extern "system" fn add_device(
    driver: *mut DRIVER_OBJECT,
    pdo: *mut DEVICE_OBJECT,
) -> NtStatus {
    // SAFETY: the kernel's record; AddDevice calls are serialized.
    let n = unsafe { (*IoGetConfigurationInformation()).DiskCount };
    // \Device\Harddisk<n>, permanent (as classpnp creates it).
    let mut dir = utf16(&format!("\\Device\\Harddisk{n}"));
    let mut dir_us = us(&mut dir);
    let mut oa = OBJECT_ATTRIBUTES {
        Length: core::mem::size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: ptr::null_mut(),
        ObjectName: &mut dir_us,
        Attributes: OBJ_PERMANENT | OBJ_CASE_INSENSITIVE | OBJ_OPENIF | OBJ_KERNEL_HANDLE,
        SecurityDescriptor: ptr::null_mut(),
        SecurityQualityOfService: ptr::null_mut(),
    };
    let mut h: HANDLE = ptr::null_mut();
    // SAFETY: valid attributes and out pointer.
    let s = unsafe { ZwCreateDirectoryObject(&mut h, DIRECTORY_ALL_ACCESS, &mut oa) };
    if !s.is_success() {
        rt::kprintln!("disk: \\Device\\Harddisk{n}: {:#x}", s.as_u32());
        return s;
    }
    // SAFETY: the handle we just got.
    unsafe { ZwClose(h) };
    let dr = format!("\\Device\\Harddisk{n}\\DR{n}");
    let mut name = utf16(&dr);
    let mut name_us = us(&mut name);
    let mut fdo: *mut DEVICE_OBJECT = ptr::null_mut();
    // SAFETY: valid driver object, name and out pointer.
    let s = unsafe {
        IoCreateDevice(
            driver,
            core::mem::size_of::<Ext>() as u32,
            &mut name_us,
            FILE_DEVICE_DISK,
            0,
            0,
            &mut fdo,
        )
    };
    if !s.is_success() {
        rt::kprintln!("disk: {dr}: {:#x}", s.as_u32());
        return s;
    }
    // SAFETY: both devices are live; the FDO is in no stack yet.
    unsafe {
        let lower = IoAttachDeviceToDeviceStack(fdo, pdo);
        if lower.is_null() {
            IoDeleteDevice(fdo);
            return STATUS_NO_SUCH_DEVICE;
        }
        ((*fdo).DeviceExtension as *mut Ext).write(Ext {
            magic: MAGIC,
            number: n,
            lower,
            info: ptr::null(),
            max_transfer: DEFAULT_MAX_TRANSFER,
        });
        (*fdo).Flags |= DO_DIRECT_IO;
        (*fdo).AlignmentRequirement = (*lower)
            .AlignmentRequirement
            .max((*fdo).AlignmentRequirement);
        (*fdo).Flags &= !DO_DEVICE_INITIALIZING;
        (*IoGetConfigurationInformation()).DiskCount += 1;
    }
    for link in [
        format!("\\Device\\Harddisk{n}\\Partition0"),
        format!("\\GLOBAL??\\PhysicalDrive{n}"),
    ] {
        let mut l = utf16(&link);
        let mut t = utf16(&dr);
        let (mut lu, mut tu) = (us(&mut l), us(&mut t));
        // SAFETY: valid strings.
        let s = unsafe { IoCreateSymbolicLink(&mut lu, &mut tu) };
        if !s.is_success() {
            rt::kprintln!("disk: {link}: {:#x}", s.as_u32());
        }
    }
    STATUS_SUCCESS
}

/// `DriverEntry`: the dispatch table and `AddDevice`.
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
        let mf = &mut (*driver).MajorFunction;
        mf[IRP_MJ_CREATE as usize] = Some(dispatch_raw_create_close);
        mf[IRP_MJ_CLEANUP as usize] = Some(dispatch_raw_create_close);
        mf[IRP_MJ_CLOSE as usize] = Some(dispatch_raw_create_close);
        mf[IRP_MJ_READ as usize] = Some(dispatch_read_write);
        mf[IRP_MJ_WRITE as usize] = Some(dispatch_read_write);
        mf[IRP_MJ_FLUSH_BUFFERS as usize] = Some(dispatch_flush);
        mf[IRP_MJ_DEVICE_CONTROL as usize] = Some(dispatch_ioctl);
        mf[IRP_MJ_SCSI as usize] = Some(dispatch_pass_down);
        mf[IRP_MJ_PNP as usize] = Some(dispatch_pnp);
        (*(*driver).DriverExtension).AddDevice = Some(add_device);
    }
    STATUS_SUCCESS
}
