//! storahci.sys: the AHCI port driver (*Windows Internals* 7th ed., Part 1
//! ch. 6, "Storage": the port driver under the disk class driver), a
//! Plug and Play function driver in the manner of Windows' storahci
//! miniport with storport:
//!
//! - `AddDevice` attaches an FDO (`\Device\RaidPort<n>`, n from
//!   `IoGetConfigurationInformation()->ScsiPortCount`) to the AHCI
//!   controller's PCI PDO.
//! - `IRP_MN_START_DEVICE` goes to the PCI PDO first (it turns on memory
//!   decoding and bus mastering), then the translated `CM_RESOURCE_LIST`
//!   gives ABAR (the memory resource) and the interrupt (message-signalled
//!   or line): ABAR is mapped with `MmMapIoSpace`; every implemented port
//!   (`PI`) whose link shows a device gets a page of contiguous DMA memory
//!   (`MmAllocateContiguousMemorySpecifyCache`), `lib/storage`'s port logic
//!   brings it up and IDENTIFY DEVICE describes the disk; then the
//!   interrupt is connected with `IoConnectInterruptEx`
//!   (`CONNECT_FULLY_SPECIFIED` from the resource) and enabled.
//! - `IRP_MN_QUERY_DEVICE_RELATIONS(BusRelations)` reports one PDO per
//!   disk; a disk PDO answers `IRP_MN_QUERY_ID` with storport's IDs
//!   (`SCSI\Disk&Ven_..`, `GenDisk`, ...; `lib/storage::scsi::disk_ids`).
//! - `IRP_MJ_SCSI` on a disk PDO carries a `SCSI_REQUEST_BLOCK`: its CDB is
//!   translated to ATA (`lib/storage::scsi::translate`); answers from the
//!   IDENTIFY data complete at once, ATA commands are issued into a free
//!   command slot (`lib/storage::ahci::engine`, several in flight, a queue
//!   behind them) and the IRP pends. The ISR claims the interrupt when a
//!   port's bit is set in IS, acknowledges PxIS then IS, keeps the PxIS
//!   bits for the port logic and queues the DPC; the DPC completes the
//!   finished slots (errors: recovery and retries, SRB status and sense)
//!   and the IRPs, outside the adapter lock.
//! - `SRB_FUNCTION_RESET_DEVICE` / `_RESET_BUS` reset the disk's port
//!   (COMRESET, the commands in flight issued again): disk.sys sends it for
//!   `IOCTL_STORAGE_RESET_DEVICE`.
#![no_std]
#![no_main]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{compiler_fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use nt::status::*;
use nt::NtStatus;
use rt::request::{complete, complete_as_is, forward_irp_synchronously};
use rt::wdk::scsi::*;
use rt::wdk::*;
use storage::ahci::engine::{Command, Completion, Engine};
use storage::ahci::{reg, Hba, Identify, Port, PortError, PortMemory, Segment};
use storage::scsi::{self, Action};

const POOL_FLAG_NON_PAGED: u64 = 0x40;
/// `STATUS_DEVICE_CONFIGURATION_ERROR`: no usable ABAR in the resources.
const STATUS_DEVICE_CONFIGURATION_ERROR: NtStatus = NtStatus::from_u32(0xC000_0182);
/// `FILE_WORD_ALIGNMENT`.
const FILE_WORD_ALIGNMENT: u32 = 1;
const TAG: u32 = u32::from_le_bytes(*b"Ahci");
/// Largest transfer one SRB may ask for: 31 pages, so that any buffer
/// alignment fits the 32 PRDT entries of a command table.
pub const MAX_TRANSFER: u32 = (storage::ahci::layout::PRDT_ENTRIES as u32 - 1) * 4096;

// ---- hardware access ----

/// The parts the ISR shares with everyone else (no lock: MMIO and atomics).
struct Shared {
    /// ABAR's mapping.
    va: usize,
    /// Bytes mapped.
    len: usize,
    /// Per port: PxIS bits the ISR acknowledged that the port logic has
    /// not consumed yet.
    pending: [AtomicU32; 32],
    /// Interrupts claimed.
    interrupts: AtomicU64,
    /// The interrupt is connected: requests complete from the DPC.
    connected: AtomicBool,
    dpc: UnsafeCell<KDPC>,
}

impl Shared {
    fn read(&self, off: u32) -> u32 {
        debug_assert!((off as usize) + 4 <= self.len);
        // SAFETY: `va` maps `len` bytes of HBA registers uncached for the
        // adapter's lifetime; offsets are dword-aligned register offsets
        // below `len` (ports beyond the mapping are never used).
        unsafe { ptr::read_volatile((self.va + off as usize) as *const u32) }
    }
    fn write(&self, off: u32, v: u32) {
        compiler_fence(Ordering::SeqCst);
        // SAFETY: as for `read`.
        unsafe { ptr::write_volatile((self.va + off as usize) as *mut u32, v) }
    }
}

/// One port's register access for `lib/storage`'s port logic: PxIS reads
/// include what the ISR already acknowledged.
struct Mmio {
    shared: &'static Shared,
    port: u32,
}

impl Hba for Mmio {
    fn read32(&mut self, off: u32) -> u32 {
        let v = self.shared.read(off);
        if off == reg::port(self.port) + reg::PXIS {
            v | self.shared.pending[self.port as usize].load(Ordering::Acquire)
        } else {
            v
        }
    }
    fn write32(&mut self, off: u32, v: u32) {
        if off == reg::port(self.port) + reg::PXIS {
            self.shared.pending[self.port as usize].fetch_and(!v, Ordering::AcqRel);
        }
        self.shared.write(off, v)
    }
    fn stall(&mut self, us: u32) {
        // SAFETY: a busy wait.
        unsafe { KeStallExecutionProcessor(us) }
    }
}

/// A page of contiguous, cached DMA memory (AHCI DMA is cache-coherent on
/// x86) and its physical address.
struct DmaPage {
    va: usize,
    pa: u64,
}

impl DmaPage {
    fn allocate(s64a: bool) -> Result<DmaPage, NtStatus> {
        let high = if s64a { i64::MAX } else { 0xFFFF_FFFF };
        // SAFETY: plain allocation; MmCached = 1.
        let va = unsafe { MmAllocateContiguousMemorySpecifyCache(4096, 0, high, 0, 1) };
        if va.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        // SAFETY: a mapped address we just got.
        let pa = unsafe { MmGetPhysicalAddress(va) } as u64;
        Ok(DmaPage {
            va: va as usize,
            pa,
        })
    }
}

impl PortMemory for DmaPage {
    fn phys(&self) -> u64 {
        self.pa
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= 4096);
        // SAFETY: the page is ours and mapped for the adapter's lifetime; the
        // range is inside it; the HBA reads it only after the PxCI write.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), (self.va + off) as *mut u8, data.len()) };
        compiler_fence(Ordering::SeqCst);
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        assert!(off + out.len() <= 4096);
        compiler_fence(Ordering::SeqCst);
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: inside the page; volatile: the HBA writes by DMA.
            *b = unsafe { ptr::read_volatile((self.va + off + i) as *const u8) };
        }
    }
}

// ---- the adapter ----

/// A disk on a port.
struct Disk {
    port: Port<Mmio, DmaPage>,
    engine: Engine<*mut IRP>,
    identify: Identify,
    pdo: *mut DEVICE_OBJECT,
}

/// State behind the adapter's spin lock.
struct Inner {
    disks: Vec<Disk>,
}

struct Adapter {
    shared: &'static Shared,
    lock: UnsafeCell<KSPIN_LOCK>,
    inner: UnsafeCell<Inner>,
    interrupt: UnsafeCell<PKINTERRUPT>,
}

impl Adapter {
    /// Runs `f` with the adapter's state, holding its spin lock at
    /// DISPATCH_LEVEL.
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // SAFETY: the lock lives as long as the adapter.
        let irql = unsafe { KeAcquireSpinLockRaiseToDpc(self.lock.get()) };
        // SAFETY: the spin lock is held: this is the only reference.
        let r = f(unsafe { &mut *self.inner.get() });
        // SAFETY: acquired above.
        unsafe { KeReleaseSpinLock(self.lock.get(), irql) };
        r
    }
}

const KIND_FDO: u32 = u32::from_le_bytes(*b"AhcF");
const KIND_PDO: u32 = u32::from_le_bytes(*b"AhcP");

/// Device extension of both kinds of device.
#[repr(C)]
struct Ext {
    kind: u32,
    /// PDO: index of its disk.
    disk: u32,
    /// FDO: the device below (the PCI PDO's stack).
    lower: *mut DEVICE_OBJECT,
    /// FDO: the PCI PDO.
    pci_pdo: *mut DEVICE_OBJECT,
    /// Set at START_DEVICE (the FDO's; a PDO's points at its parent's).
    adapter: *const Adapter,
    /// PDO: the FDO.
    fdo: *mut DEVICE_OBJECT,
}

/// The extension of one of our devices.
///
/// # Safety
/// `dev` is a device storahci created.
unsafe fn ext(dev: *mut DEVICE_OBJECT) -> *mut Ext {
    // SAFETY: per the contract every device of ours has an Ext.
    unsafe { (*dev).DeviceExtension.cast() }
}

// ---- interrupt and DPC ----

/// The ISR (device IRQL): claims the interrupt when a port bit is set in
/// IS, acknowledges each such port's PxIS and then IS (AHCI 10.7.2.1),
/// keeps the PxIS bits for the port logic, queues the DPC.
unsafe extern "system" fn isr(_interrupt: PKINTERRUPT, context: *mut c_void) -> BOOLEAN {
    // SAFETY: the context is the adapter's Shared, which is never freed
    // while the interrupt is connected.
    let s = unsafe { &*(context as *const Shared) };
    let is = s.read(reg::IS);
    if is == 0 {
        return 0;
    }
    for p in 0..32u32 {
        if is & (1 << p) != 0 && (reg::port(p) + 0x80) as usize <= s.len {
            let off = reg::port(p) + reg::PXIS;
            let pxis = s.read(off);
            s.write(off, pxis);
            s.pending[p as usize].fetch_or(pxis, Ordering::AcqRel);
        }
    }
    s.write(reg::IS, is);
    s.interrupts.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the DPC was initialized at START and lives with the adapter.
    unsafe { KeInsertQueueDpc(s.dpc.get(), ptr::null_mut(), ptr::null_mut()) };
    1
}

/// The DPC: services every port and completes what finished.
unsafe extern "system" fn dpc(
    _dpc: *mut KDPC,
    context: *mut c_void,
    _a1: *mut c_void,
    _a2: *mut c_void,
) {
    // SAFETY: the context is the adapter (never freed while connected).
    let a = unsafe { &*(context as *const Adapter) };
    service(a);
}

/// Runs the port logic of every disk and completes finished requests
/// (outside the lock: completion routines may send new requests).
fn service(a: &Adapter) {
    let mut done: Vec<(usize, Completion<*mut IRP>)> = Vec::new();
    a.with(|inner| {
        for (i, d) in inner.disks.iter_mut().enumerate() {
            let mut out = Vec::new();
            d.engine.service(&mut d.port, &mut out);
            done.extend(out.into_iter().map(|c| (i, c)));
        }
    });
    for (_, (irp, r)) in done {
        // SAFETY: the IRP pended in our dispatch routine and is ours to complete.
        unsafe { finish(irp, r) };
    }
}

// ---- SRBs ----

/// Completes an SRB's IRP with `srb_status` (and sense), moving
/// `transferred` bytes.
///
/// # Safety
/// The caller owns `irp`, whose current location holds the SRB.
unsafe fn complete_srb(
    irp: *mut IRP,
    srb_status: u8,
    sense: Option<scsi::Sense>,
    transferred: u32,
) -> NtStatus {
    // SAFETY: per the contract; the SRB and its sense buffer are the
    // class driver's, valid until the IRP completes.
    unsafe {
        let srb =
            (*IoGetCurrentIrpStackLocation(irp)).Parameters.Scsi.Srb as *mut SCSI_REQUEST_BLOCK;
        let mut st = srb_status;
        (*srb).ScsiStatus = SCSISTAT_GOOD;
        if let Some(s) = sense {
            (*srb).ScsiStatus = SCSISTAT_CHECK_CONDITION;
            let n = ((*srb).SenseInfoBufferLength as usize).min(SENSE_BUFFER_SIZE);
            if (*srb).SrbFlags & SRB_FLAGS_DISABLE_AUTOSENSE == 0
                && !(*srb).SenseInfoBuffer.is_null()
                && n > 0
            {
                let b = s.to_bytes();
                ptr::copy_nonoverlapping(b.as_ptr(), (*srb).SenseInfoBuffer.cast::<u8>(), n);
                (*srb).SenseInfoBufferLength = n as u8;
                st |= SRB_STATUS_AUTOSENSE_VALID;
            }
        }
        (*srb).SrbStatus = st;
        (*srb).DataTransferLength = transferred;
        let status = if SRB_STATUS(st) == SRB_STATUS_SUCCESS {
            STATUS_SUCCESS
        } else {
            scsi::srb_ntstatus(st, sense)
        };
        complete(irp, status, transferred as usize, IO_DISK_INCREMENT)
    }
}

/// Completes a pended SRB with the port's result.
///
/// # Safety
/// As [`complete_srb`].
unsafe fn finish(irp: *mut IRP, r: Result<u32, PortError>) {
    // SAFETY: forwarded.
    unsafe {
        match r {
            Ok(n) => {
                complete_srb(irp, SRB_STATUS_SUCCESS, None, n);
            }
            Err(e) => {
                let (st, sense) = scsi::port_error(&e);
                complete_srb(irp, st, sense, 0);
            }
        }
    }
}

/// The physical pieces of `len` bytes at `va` inside the locked MDL
/// `mdl` (as storport builds the scatter/gather list from the request's
/// MDL: the page frames the MDL recorded, no page-table walk, no system
/// mapping); `None` when the range is not inside the MDL or needs more
/// PRDT entries than a command table has.
///
/// # Safety
/// `mdl` is a locked MDL (its PFN array filled).
unsafe fn mdl_segments(mdl: *mut MDL, va: usize, len: usize) -> Option<Vec<Segment>> {
    // SAFETY: per the contract.
    let (start, count, pfns, first, flags) = unsafe {
        (
            MmGetMdlVirtualAddress(mdl) as usize,
            MmGetMdlByteCount(mdl) as usize,
            MmGetMdlPfnArray(mdl),
            (*mdl).ByteOffset as usize,
            (*mdl).MdlFlags,
        )
    };
    let rel = va.checked_sub(start)?;
    if rel.checked_add(len)? > count
        || flags & (MDL_PAGES_LOCKED | MDL_SOURCE_IS_NONPAGED_POOL) == 0
    {
        return None;
    }
    let mut segs: Vec<Segment> = Vec::new();
    segs.try_reserve(storage::ahci::layout::PRDT_ENTRIES).ok()?;
    let mut pos = first + rel;
    let end = pos + len;
    while pos < end {
        let n = (4096 - (pos & 0xFFF)).min(end - pos);
        // SAFETY: `pos` is inside the MDL's pages (checked above).
        let pa = unsafe { *pfns.add(pos >> 12) } * 4096 + (pos & 0xFFF) as u64;
        match segs.last_mut() {
            Some(s) if s.phys + s.len as u64 == pa => s.len += n as u32,
            _ => {
                if segs.len() == storage::ahci::layout::PRDT_ENTRIES {
                    return None;
                }
                segs.push(Segment {
                    phys: pa,
                    len: n as u32,
                })
            }
        }
        pos += n;
    }
    Some(segs)
}

/// The physical pieces of `len` bytes at kernel address `va`
/// (`MmGetPhysicalAddress` page by page, adjacent frames merged).
fn segments(va: usize, len: usize) -> Option<Vec<Segment>> {
    let mut segs: Vec<Segment> = Vec::new();
    segs.try_reserve(storage::ahci::layout::PRDT_ENTRIES).ok()?;
    let mut off = 0;
    while off < len {
        let v = va + off;
        let n = (4096 - (v & 0xFFF)).min(len - off);
        // SAFETY: a query of the page tables.
        let pa = unsafe { MmGetPhysicalAddress(v as *mut c_void) } as u64;
        if pa == 0 {
            return None;
        }
        match segs.last_mut() {
            Some(s) if s.phys + s.len as u64 == pa => s.len += n as u32,
            _ => {
                if segs.len() == storage::ahci::layout::PRDT_ENTRIES {
                    return None;
                }
                segs.push(Segment {
                    phys: pa,
                    len: n as u32,
                })
            }
        }
        off += n;
    }
    Some(segs)
}

/// `IRP_MJ_SCSI` on a disk PDO.
unsafe extern "system" fn dispatch_scsi(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the I/O manager hands us the IRP; our devices carry an Ext.
    unsafe {
        let e = ext(dev);
        if (*e).kind != KIND_PDO || (*e).adapter.is_null() {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0, IO_DISK_INCREMENT);
        }
        let a = &*(*e).adapter;
        let index = (*e).disk as usize;
        let srb =
            (*IoGetCurrentIrpStackLocation(irp)).Parameters.Scsi.Srb as *mut SCSI_REQUEST_BLOCK;
        if srb.is_null() {
            return complete(irp, STATUS_INVALID_PARAMETER, 0, IO_DISK_INCREMENT);
        }
        if (*srb).Length as usize != SCSI_REQUEST_BLOCK_SIZE {
            (*srb).SrbStatus = SRB_STATUS_BAD_SRB_BLOCK_LENGTH;
            return complete(irp, STATUS_INVALID_PARAMETER, 0, IO_DISK_INCREMENT);
        }
        match (*srb).Function {
            SRB_FUNCTION_EXECUTE_SCSI => {}
            // The class driver claims/releases the device and flushes the
            // adapter's queue: nothing to hold here (no adapter cache).
            SRB_FUNCTION_CLAIM_DEVICE
            | SRB_FUNCTION_RELEASE_DEVICE
            | SRB_FUNCTION_FLUSH
            | SRB_FUNCTION_SHUTDOWN
            | SRB_FUNCTION_RELEASE_QUEUE
            | SRB_FUNCTION_FLUSH_QUEUE => {
                if (*srb).Function == SRB_FUNCTION_CLAIM_DEVICE {
                    (*srb).DataBuffer = dev.cast();
                }
                return complete_srb(irp, SRB_STATUS_SUCCESS, None, 0);
            }
            SRB_FUNCTION_RESET_DEVICE | SRB_FUNCTION_RESET_BUS => {
                return reset_port(a, index, irp);
            }
            _ => {
                return complete_srb(irp, SRB_STATUS_INVALID_REQUEST, None, 0);
            }
        }
        let cdb_len = ((*srb).CdbLength as usize).min(16);
        let cdb = (*srb).Cdb;
        let transfer = (*srb).DataTransferLength;
        let Some(action) = a.with(|inner| {
            inner
                .disks
                .get(index)
                .map(|d| scsi::translate(&cdb[..cdb_len], &d.identify, transfer))
        }) else {
            return complete_srb(irp, SRB_STATUS_NO_DEVICE, None, 0);
        };
        let buf = (*srb).DataBuffer as usize;
        match action {
            Action::Good => complete_srb(irp, SRB_STATUS_SUCCESS, None, 0),
            Action::Check(s) => complete_srb(irp, SRB_STATUS_ERROR, Some(s), 0),
            Action::Reject(st) => complete_srb(irp, st, None, 0),
            Action::Data(d) => {
                let n = d.len().min(transfer as usize);
                if n > 0 && buf == 0 {
                    return complete_srb(irp, SRB_STATUS_INVALID_REQUEST, None, 0);
                }
                ptr::copy_nonoverlapping(d.as_ptr(), buf as *mut u8, n);
                complete_srb(irp, SRB_STATUS_SUCCESS, None, n as u32)
            }
            Action::Ata { fis, write, bytes } => {
                if bytes > MAX_TRANSFER || (bytes > 0 && (buf == 0 || buf & 1 != 0)) {
                    return complete_srb(irp, SRB_STATUS_INVALID_REQUEST, None, 0);
                }
                let segs = if (*irp).MdlAddress.is_null() {
                    segments(buf, bytes as usize)
                } else {
                    mdl_segments((*irp).MdlAddress, buf, bytes as usize)
                };
                let Some(segments) = segs else {
                    return complete_srb(irp, SRB_STATUS_INVALID_REQUEST, None, 0);
                };
                (*srb).SrbStatus = SRB_STATUS_PENDING;
                IoMarkIrpPending(irp);
                let cmd = Command {
                    fis,
                    write,
                    segments,
                    tag: irp,
                    failures: 0,
                };
                let mut done = Vec::new();
                a.with(|inner| {
                    if let Some(d) = inner.disks.get_mut(index) {
                        d.engine.submit(&mut d.port, cmd, &mut done);
                    }
                });
                for (irp, r) in done {
                    finish(irp, r);
                }
                if !a.shared.connected.load(Ordering::Acquire) {
                    poll_until_done(a, irp);
                }
                STATUS_PENDING
            }
        }
    }
}

/// `SRB_FUNCTION_RESET_DEVICE` / `SRB_FUNCTION_RESET_BUS` (storport calls
/// the miniport's `HwResetBus`): the disk's port is reset under the adapter
/// lock (`lib/storage::ahci::engine::Engine::reset`: engine stopped,
/// COMRESET, errors cleared, engine started, the commands that were in
/// flight issued again). A port whose device does not come back fails the
/// reset with SRB_STATUS_NO_DEVICE and its commands with the port error.
///
/// # Safety
/// The caller owns `irp`, an SRB request for disk `index` of `a`.
unsafe fn reset_port(a: &Adapter, index: usize, irp: *mut IRP) -> NtStatus {
    let mut done = Vec::new();
    let r = a.with(|inner| {
        inner
            .disks
            .get_mut(index)
            .map(|d| d.engine.reset(&mut d.port, &mut done))
    });
    for (i, r) in done {
        // SAFETY: pended IRPs of ours.
        unsafe { finish(i, r) };
    }
    let st = match r {
        Some(Ok(())) => SRB_STATUS_SUCCESS,
        _ => SRB_STATUS_NO_DEVICE,
    };
    rt::kprintln!("storahci: port of disk {index} reset: srb status {st:#x}");
    // SAFETY: per the contract.
    unsafe { complete_srb(irp, st, None, 0) }
}

/// Without a connected interrupt: polls the ports until `irp` completed
/// (5 s, then every outstanding command fails with a timeout).
fn poll_until_done(a: &Adapter, irp: *mut IRP) {
    for _ in 0..5_000_000u32 {
        let mut done: Vec<Completion<*mut IRP>> = Vec::new();
        a.with(|inner| {
            for d in inner.disks.iter_mut() {
                d.engine.service(&mut d.port, &mut done);
            }
        });
        let mine = done.iter().any(|c| c.0 == irp);
        for (i, r) in done {
            // SAFETY: pended IRPs of ours.
            unsafe { finish(i, r) };
        }
        if mine {
            return;
        }
        // SAFETY: a busy wait.
        unsafe { KeStallExecutionProcessor(1) };
    }
    let mut done = Vec::new();
    a.with(|inner| {
        for d in inner.disks.iter_mut() {
            d.engine
                .fail_all(&mut d.port, PortError::Timeout, &mut done);
        }
    });
    for (i, r) in done {
        // SAFETY: pended IRPs of ours.
        unsafe { finish(i, r) };
    }
}

// ---- PnP ----

/// Brings up every implemented port with a device: DMA page, port init,
/// IDENTIFY DEVICE (polled, at PASSIVE_LEVEL).
fn bring_up_ports(shared: &'static Shared) -> Vec<Disk> {
    let cap = shared.read(reg::CAP);
    let pi = shared.read(reg::PI);
    let ghc = shared.read(reg::GHC);
    shared.write(reg::GHC, ghc | reg::GHC_AE);
    let mut disks = Vec::new();
    for p in 0..32u32 {
        if pi & (1 << p) == 0 || (reg::port(p) + 0x80) as usize > shared.len {
            continue;
        }
        // A port whose link shows no device is left alone.
        if shared.read(reg::port(p) + reg::PXSSTS) & 0xF != reg::SSTS_DET_PRESENT {
            continue;
        }
        let Ok(page) = DmaPage::allocate(cap & reg::CAP_S64A != 0) else {
            rt::kprintln!("storahci: port {p}: no DMA memory");
            continue;
        };
        let mut port = Port::new(Mmio { shared, port: p }, p, page);
        if let Err(e) = port.init() {
            rt::kprintln!("storahci: port {p}: {e:?}");
            continue;
        }
        let Ok(buf) = DmaPage::allocate(false) else {
            continue;
        };
        let r = port.identify(Segment {
            phys: buf.pa,
            len: 512,
        });
        let mut data = [0u8; 512];
        buf.read(0, &mut data);
        // SAFETY: the page came from MmAllocateContiguousMemorySpecifyCache.
        unsafe { MmFreeContiguousMemory(buf.va as *mut c_void) };
        let id = match r
            .map_err(|e| e.status())
            .and_then(|_| Identify::parse(&data))
        {
            Ok(id) => id,
            Err(s) => {
                rt::kprintln!("storahci: port {p}: IDENTIFY failed {:#x}", s.as_u32());
                continue;
            }
        };
        rt::kprintln!(
            "storahci: port {p}: {} ({} sectors of {} bytes)",
            id.model,
            id.sectors,
            id.sector_size
        );
        disks.push(Disk {
            port,
            engine: Engine::new(),
            identify: id,
            pdo: ptr::null_mut(),
        });
    }
    disks
}

/// START_DEVICE of the FDO, after the PCI PDO started.
///
/// # Safety
/// `fdo` is our FDO; `irp` its START_DEVICE IRP.
unsafe fn start_fdo(fdo: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the START parameters point at the PnP manager's resource
    // lists, valid during the IRP.
    let list = unsafe {
        (*IoGetCurrentIrpStackLocation(irp))
            .Parameters
            .StartDevice
            .AllocatedResourcesTranslated
    } as *const CM_RESOURCE_LIST;
    // SAFETY: as above.
    let descs = unsafe { partial_descriptors(list) };
    let mem = descs.iter().rev().find(|d| d.Type == CmResourceTypeMemory);
    let irq = descs.iter().find(|d| d.Type == CmResourceTypeInterrupt);
    let Some(mem) = mem else {
        return STATUS_DEVICE_CONFIGURATION_ERROR;
    };
    let len = (mem.Length() as usize).min(0x1100);
    if len < 0x100 {
        return STATUS_DEVICE_CONFIGURATION_ERROR;
    }
    // SAFETY: ABAR, the device's memory resource; MmNonCached = 0.
    let va = unsafe { MmMapIoSpace(mem.Start() as i64, len, 0) } as usize;
    if va == 0 {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        va,
        len,
        pending: [const { AtomicU32::new(0) }; 32],
        interrupts: AtomicU64::new(0),
        connected: AtomicBool::new(false),
        // SAFETY: a KDPC is plain data until KeInitializeDpc.
        dpc: UnsafeCell::new(unsafe { core::mem::zeroed() }),
    }));
    let disks = bring_up_ports(shared);
    let adapter: &'static Adapter = Box::leak(Box::new(Adapter {
        shared,
        lock: UnsafeCell::new(0),
        inner: UnsafeCell::new(Inner { disks }),
        interrupt: UnsafeCell::new(ptr::null_mut()),
    }));
    // SAFETY: the DPC and the adapter live as long as the driver.
    unsafe {
        KeInitializeDpc(
            shared.dpc.get(),
            dpc,
            adapter as *const Adapter as *mut c_void,
        );
        (*ext(fdo)).adapter = adapter;
    }
    // The interrupt from the translated resource (MSI or line).
    if let Some(d) = irq {
        let latched = d.Flags & CM_RESOURCE_INTERRUPT_LATCHED != 0;
        let mut params = IO_CONNECT_INTERRUPT_PARAMETERS {
            Version: CONNECT_FULLY_SPECIFIED,
            u: IO_CONNECT_INTERRUPT_PARAMETERS_u {
                FullySpecified: IO_CONNECT_INTERRUPT_FULLY_SPECIFIED_PARAMETERS {
                    // SAFETY: set at AddDevice.
                    PhysicalDeviceObject: unsafe { (*ext(fdo)).pci_pdo }.cast(),
                    InterruptObject: adapter.interrupt.get(),
                    ServiceRoutine: Some(isr),
                    ServiceContext: shared as *const Shared as *mut c_void,
                    SpinLock: ptr::null_mut(),
                    SynchronizeIrql: d.Level() as u8,
                    FloatingSave: 0,
                    ShareVector: (d.ShareDisposition == CmResourceShareShared) as u8,
                    Vector: d.Vector(),
                    Irql: d.Level() as u8,
                    InterruptMode: if latched { Latched } else { LevelSensitive },
                    ProcessorEnableMask: d.Affinity() as usize,
                    Group: 0,
                },
            },
        };
        // SAFETY: a complete parameter block; the ISR's context outlives it.
        let s = unsafe { IoConnectInterruptEx(&mut params) };
        if s.is_success() {
            shared.connected.store(true, Ordering::Release);
            adapter.with(|inner| {
                for d in inner.disks.iter_mut() {
                    d.port.enable_interrupts();
                }
            });
            rt::kprintln!(
                "storahci: ABAR {:#x}, interrupt vector {:#x} ({}), {} disk(s)",
                mem.Start(),
                d.Vector(),
                if d.Flags & CM_RESOURCE_INTERRUPT_MESSAGE != 0 {
                    "MSI"
                } else {
                    "line"
                },
                adapter.with(|i| i.disks.len())
            );
        } else {
            rt::kprintln!("storahci: no interrupt ({:#x}): polling", s.as_u32());
        }
    } else {
        rt::kprintln!("storahci: no interrupt resource: polling");
    }
    STATUS_SUCCESS
}

/// A pool-allocated `DEVICE_RELATIONS` holding `pdos`, each referenced.
fn relations(pdos: &[*mut DEVICE_OBJECT]) -> *mut DEVICE_RELATIONS {
    let size = 8 + 8 * pdos.len().max(1);
    // SAFETY: plain allocation; the receiver frees it with ExFreePool.
    let r = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, size, TAG) } as *mut DEVICE_RELATIONS;
    if r.is_null() {
        return r;
    }
    // SAFETY: a fresh allocation of `size` bytes: Count, then the pointers.
    unsafe {
        (*r).Count = pdos.len() as u32;
        let arr = (&raw mut (*r).Objects).cast::<*mut DEVICE_OBJECT>();
        for (i, &p) in pdos.iter().enumerate() {
            ObfReferenceObject(p.cast());
            arr.add(i).write(p);
        }
    }
    r
}

/// The FDO's bus relations: a PDO per disk (created the first time).
///
/// # Safety
/// `fdo` is our started FDO.
unsafe fn bus_relations(fdo: *mut DEVICE_OBJECT) -> Result<*mut DEVICE_RELATIONS, NtStatus> {
    // SAFETY: per the contract.
    let a = unsafe { (*ext(fdo)).adapter };
    if a.is_null() {
        return Err(STATUS_DEVICE_NOT_READY);
    }
    // SAFETY: the adapter lives as long as the FDO.
    let a = unsafe { &*a };
    let n = a.with(|i| i.disks.len());
    let mut pdos = Vec::new();
    for k in 0..n {
        let mut pdo = a.with(|i| i.disks[k].pdo);
        if pdo.is_null() {
            // SAFETY: our driver object; an unnamed PDO with an Ext.
            let s = unsafe {
                IoCreateDevice(
                    (*fdo).DriverObject,
                    core::mem::size_of::<Ext>() as u32,
                    ptr::null_mut(),
                    FILE_DEVICE_DISK,
                    0,
                    0,
                    &mut pdo,
                )
            };
            if !s.is_success() {
                return Err(s);
            }
            // SAFETY: the fresh device and its Ext-sized extension.
            unsafe {
                ext(pdo).write(Ext {
                    kind: KIND_PDO,
                    disk: k as u32,
                    lower: ptr::null_mut(),
                    pci_pdo: ptr::null_mut(),
                    adapter: a,
                    fdo,
                });
                (*pdo).Flags |= DO_BUS_ENUMERATED_DEVICE | DO_DIRECT_IO;
                // PRDT data addresses must be even.
                (*pdo).AlignmentRequirement = FILE_WORD_ALIGNMENT;
                (*pdo).Flags &= !DO_DEVICE_INITIALIZING;
            }
            a.with(|i| i.disks[k].pdo = pdo);
        }
        pdos.push(pdo);
    }
    let r = relations(&pdos);
    if r.is_null() {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    Ok(r)
}

/// A string (or, `multi`, a REG_MULTI_SZ list) in pool for `IRP_MN_QUERY_ID`.
fn pool_strings(items: &[&str], multi: bool) -> *mut u16 {
    let units: usize = items.iter().map(|s| s.len() + 1).sum::<usize>() + multi as usize;
    // SAFETY: plain allocation; the PnP manager frees it with ExFreePool.
    let p = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, units * 2, TAG) } as *mut u16;
    if p.is_null() {
        return p;
    }
    let mut i = 0;
    for s in items {
        for b in s.bytes() {
            // SAFETY: within the `units` counted above.
            unsafe { p.add(i).write(b as u16) };
            i += 1;
        }
        // SAFETY: as above.
        unsafe { p.add(i).write(0) };
        i += 1;
    }
    if multi {
        // SAFETY: as above.
        unsafe { p.add(i).write(0) };
    }
    p
}

/// `IRP_MN_QUERY_ID` for a disk PDO.
fn query_id(a: &Adapter, disk: usize, id_type: u32) -> Option<*mut u16> {
    let (v, p, r, port) = a.with(|i| {
        i.disks.get(disk).map(|d| {
            let (v, p, r) = scsi::inquiry_strings(&d.identify);
            (v, p, r, d.port.port)
        })
    })?;
    let (device, hw, compat) = scsi::disk_ids(&v, &p, &r);
    Some(match id_type {
        BUS_QUERY_DEVICE_ID => pool_strings(&[&device], false),
        BUS_QUERY_HARDWARE_IDS => {
            pool_strings(&hw.iter().map(|s| s.as_str()).collect::<Vec<_>>(), true)
        }
        BUS_QUERY_COMPATIBLE_IDS => {
            pool_strings(&compat.iter().map(|s| s.as_str()).collect::<Vec<_>>(), true)
        }
        BUS_QUERY_INSTANCE_ID => pool_strings(&[&scsi::instance_id(port as u8, 0, 0)], false),
        _ => return None,
    })
}

unsafe extern "system" fn dispatch_pnp(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the I/O manager hands us the IRP; our devices carry an Ext.
    unsafe {
        let e = ext(dev);
        let sl = IoGetCurrentIrpStackLocation(irp);
        let minor = (*sl).MinorFunction;
        if (*e).kind == KIND_FDO {
            let lower = (*e).lower;
            match minor {
                IRP_MN_START_DEVICE => {
                    let mut s = forward_irp_synchronously(lower, irp);
                    if s.is_success() {
                        s = start_fdo(dev, irp);
                    }
                    return complete(irp, s, 0, IO_DISK_INCREMENT);
                }
                IRP_MN_QUERY_DEVICE_RELATIONS
                    if (*sl).Parameters.QueryDeviceRelations.Type == BUS_RELATIONS =>
                {
                    match bus_relations(dev) {
                        Ok(r) => {
                            (*irp).IoStatus.Status = STATUS_SUCCESS;
                            (*irp).IoStatus.Information = r as usize;
                        }
                        Err(s) => return complete(irp, s, 0, IO_DISK_INCREMENT),
                    }
                }
                _ => {}
            }
            IoSkipCurrentIrpStackLocation(irp);
            return IoCallDriver(lower, irp);
        }
        // A disk PDO: the bus driver's answers.
        let a = (*e).adapter;
        match minor {
            IRP_MN_START_DEVICE => complete(irp, STATUS_SUCCESS, 0, IO_DISK_INCREMENT),
            IRP_MN_QUERY_ID if !a.is_null() => {
                match query_id(&*a, (*e).disk as usize, (*sl).Parameters.QueryId.IdType) {
                    Some(p) if p.is_null() => {
                        complete(irp, STATUS_INSUFFICIENT_RESOURCES, 0, IO_DISK_INCREMENT)
                    }
                    Some(p) => complete(irp, STATUS_SUCCESS, p as usize, IO_DISK_INCREMENT),
                    None => complete_as_is(irp),
                }
            }
            IRP_MN_QUERY_DEVICE_RELATIONS
                if (*sl).Parameters.QueryDeviceRelations.Type == TARGET_DEVICE_RELATION =>
            {
                let r = relations(&[dev]);
                if r.is_null() {
                    complete(irp, STATUS_INSUFFICIENT_RESOURCES, 0, IO_DISK_INCREMENT)
                } else {
                    complete(irp, STATUS_SUCCESS, r as usize, IO_DISK_INCREMENT)
                }
            }
            _ => complete_as_is(irp),
        }
    }
}

/// `AddDevice`: an FDO on the controller's PCI PDO.
unsafe extern "system" fn add_device(
    driver: *mut DRIVER_OBJECT,
    pdo: *mut DEVICE_OBJECT,
) -> NtStatus {
    // SAFETY: the configuration record is the kernel's, written during
    // AddDevice (serialized by the PnP manager).
    let n = unsafe {
        let c = IoGetConfigurationInformation();
        let n = (*c).ScsiPortCount;
        (*c).ScsiPortCount += 1;
        n
    };
    let mut name_buf = [0u16; 32];
    let name = alloc::format!("\\Device\\RaidPort{n}");
    for (d, b) in name_buf.iter_mut().zip(name.bytes()) {
        *d = b as u16;
    }
    let mut us = UNICODE_STRING {
        Length: (name.len() * 2) as u16,
        MaximumLength: 64,
        Buffer: name_buf.as_mut_ptr(),
    };
    let mut fdo: *mut DEVICE_OBJECT = ptr::null_mut();
    // SAFETY: valid driver object, name and out pointer.
    let s = unsafe {
        IoCreateDevice(
            driver,
            core::mem::size_of::<Ext>() as u32,
            &mut us,
            FILE_DEVICE_CONTROLLER,
            0,
            0,
            &mut fdo,
        )
    };
    if !s.is_success() {
        return s;
    }
    // SAFETY: both device objects are live; the FDO is in no stack yet.
    unsafe {
        let lower = IoAttachDeviceToDeviceStack(fdo, pdo);
        if lower.is_null() {
            IoDeleteDevice(fdo);
            return STATUS_NO_SUCH_DEVICE;
        }
        ext(fdo).write(Ext {
            kind: KIND_FDO,
            disk: 0,
            lower,
            pci_pdo: pdo,
            adapter: ptr::null(),
            fdo,
        });
        (*fdo).Flags &= !DO_DEVICE_INITIALIZING;
    }
    STATUS_SUCCESS
}

/// `IRP_MJ_DEVICE_CONTROL`: a disk PDO answers
/// `IOCTL_STORAGE_QUERY_PROPERTY` for the adapter property (the largest
/// transfer, [`MAX_TRANSFER`], and the word alignment the PRDT needs), as
/// storport does for the class driver; anything else is
/// `STATUS_INVALID_DEVICE_REQUEST`.
unsafe extern "system" fn dispatch_ioctl(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: we own the IRP; METHOD_BUFFERED: the system buffer holds
    // max(in, out) bytes.
    unsafe {
        let sl = IoGetCurrentIrpStackLocation(irp);
        let p = (*sl).Parameters.DeviceIoControl;
        let sys = (*irp).AssociatedIrp.SystemBuffer as *mut u8;
        if (*ext(dev)).kind != KIND_PDO
            || p.IoControlCode != IOCTL_STORAGE_QUERY_PROPERTY
            || sys.is_null()
        {
            return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0, IO_DISK_INCREMENT);
        }
        let input = core::slice::from_raw_parts(sys, p.InputBufferLength as usize);
        match storage::class::property_query(input) {
            Some((id, q)) if id == StorageAdapterProperty && q == PropertyExistsQuery => {
                complete(irp, STATUS_SUCCESS, 0, IO_DISK_INCREMENT)
            }
            Some((id, q)) if id == StorageAdapterProperty && q == PropertyStandardQuery => {
                let d = storage::class::adapter_descriptor(
                    MAX_TRANSFER,
                    storage::ahci::layout::PRDT_ENTRIES as u32,
                );
                let out = core::slice::from_raw_parts_mut(sys, p.OutputBufferLength as usize);
                let (s, n) = storage::class::answer_fixed(storage::disk::as_bytes(&d), 8, out);
                complete(irp, s, n, IO_DISK_INCREMENT)
            }
            Some(_) => complete(irp, STATUS_NOT_SUPPORTED, 0, IO_DISK_INCREMENT),
            None => complete(irp, STATUS_INVALID_PARAMETER, 0, IO_DISK_INCREMENT),
        }
    }
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
        (*driver).MajorFunction[IRP_MJ_PNP as usize] = Some(dispatch_pnp);
        (*driver).MajorFunction[IRP_MJ_SCSI as usize] = Some(dispatch_scsi);
        (*driver).MajorFunction[IRP_MJ_DEVICE_CONTROL as usize] = Some(dispatch_ioctl);
        (*(*driver).DriverExtension).AddDevice = Some(add_device);
    }
    STATUS_SUCCESS
}
