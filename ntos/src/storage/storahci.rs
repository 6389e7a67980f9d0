//! storahci: the AHCI port driver's hardware side. Takes the ICH9 AHCI
//! controller (PCI 8086:2922) from the PnP manager's device tree (ABAR =
//! BAR5 and its message-signaled interrupt), or, with no tree, scans bus 0
//! through configuration mechanism #1; maps ABAR with `MmMapIoSpace`, gives
//! port 0 one DMA page, and runs `lib/storage`'s [`storage::ahci::Port`]
//! over them. Once the interrupt is connected, a waiting request blocks on
//! an event the ISR's DPC sets; before that (and without an interrupt) it
//! polls.

use crate::ex::sync::FastMutex;
use crate::hal;
use crate::ke::dpc::{ke_insert_queue_dpc, KDpc};
use crate::ke::wait::{ke_set_event, ke_wait_for_single_object, KEvent};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{compiler_fence, AtomicU32, AtomicU64, Ordering};
use nt::status::*;
use nt::NtStatus;
use storage::ahci::{Hba, Port, PortMemory};

const PCI_CONFIG_ADDRESS: u16 = 0xCF8;
const PCI_CONFIG_DATA: u16 = 0xCFC;

/// Reads a configuration dword of bus 0 (mechanism #1).
fn pci_read(dev: u8, func: u8, off: u8) -> u32 {
    hal::outl(
        PCI_CONFIG_ADDRESS,
        0x8000_0000 | (dev as u32) << 11 | (func as u32) << 8 | (off as u32 & 0xFC),
    );
    hal::inl(PCI_CONFIG_DATA)
}

fn pci_write(dev: u8, func: u8, off: u8, v: u32) {
    hal::outl(
        PCI_CONFIG_ADDRESS,
        0x8000_0000 | (dev as u32) << 11 | (func as u32) << 8 | (off as u32 & 0xFC),
    );
    hal::outl(PCI_CONFIG_DATA, v);
}

/// The AHCI controller found on bus 0.
#[derive(Clone, Copy, Debug)]
pub struct Controller {
    /// Device number.
    pub device: u8,
    /// Function number.
    pub function: u8,
    /// Vendor and device ID (`DEV << 16 | VEN`).
    pub id: u32,
    /// ABAR, the physical address of the HBA registers.
    pub abar: u64,
}

/// The controller as the PnP manager enumerated it: its device node (for
/// the interrupt) and ABAR, the memory range the arbiters assigned (BAR5,
/// the function's only memory BAR) in the node's raw resources.
pub fn pnp_controller() -> Option<(&'static crate::io::pnp::DeviceNode, Controller)> {
    let node = crate::io::pnp::find_pci_device(0x8086, 0x2922)?;
    let a = node.pci_address()?;
    let abar = node
        .resources()?
        .raw
        .descriptors()
        .into_iter()
        .find(|d| d.Type == wdk::pnp::CmResourceTypeMemory && d.Start() != 0)?;
    Some((
        node,
        Controller {
            device: a.device,
            function: a.function,
            id: 0x2922_8086,
            abar: abar.Start(),
        },
    ))
}

/// Finds the first AHCI function on bus 0 and enables its memory space and
/// bus mastering (DMA).
pub fn find_controller() -> Option<Controller> {
    for device in 0..32u8 {
        for function in 0..8u8 {
            let id = pci_read(device, function, 0);
            if id & 0xFFFF == 0xFFFF {
                if function == 0 {
                    break;
                }
                continue;
            }
            let class = pci_read(device, function, 8) >> 8;
            if id == 0x2922_8086 || class == 0x01_06_01 {
                let bar5 = pci_read(device, function, 0x24);
                if bar5 & 1 != 0 {
                    continue; // an I/O BAR is not ABAR
                }
                let mut abar = (bar5 & !0xF) as u64;
                if (bar5 >> 1) & 3 == 2 {
                    abar |= (pci_read(device, function, 0x28) as u64) << 32;
                }
                let cmd = pci_read(device, function, 4);
                pci_write(device, function, 4, (cmd & 0xFFFF) | 0x6);
                return Some(Controller {
                    device,
                    function,
                    id,
                    abar,
                });
            }
        }
    }
    None
}

/// Ticks (TSC) spent waiting for the device (stalls between polls and
/// blocked interrupt waits), for the benchmarks.
pub static WAIT_TICKS: AtomicU64 = AtomicU64::new(0);

/// Bytes of ABAR mapped: QEMU's ICH9 decodes 4 KiB (the generic registers
/// and ports 0-29).
pub const ABAR_SIZE: u64 = 0x1000;

const PORT0_IS: u32 = storage::ahci::reg::port(0) + storage::ahci::reg::PXIS;

fn mmio_read(va: u64, offset: u32) -> u32 {
    debug_assert!((offset as u64) < ABAR_SIZE);
    // SAFETY: `va` maps ABAR_SIZE bytes of HBA registers uncached
    // (mm_map_io_space) for the stack's lifetime (never unmapped); offsets
    // are dword-aligned register offsets below ABAR_SIZE.
    unsafe { core::ptr::read_volatile((va + offset as u64) as *const u32) }
}

fn mmio_write(va: u64, offset: u32, value: u32) {
    compiler_fence(Ordering::SeqCst);
    // SAFETY: as for mmio_read.
    unsafe { core::ptr::write_volatile((va + offset as u64) as *mut u32, value) }
}

/// The port's interrupt state: the PxIS bits the ISR acknowledged (the port
/// logic still has to see them), the event its DPC sets, and counters.
pub struct Irq {
    /// PxIS bits taken by the ISR and not yet consumed by the port logic.
    pending: AtomicU32,
    event: KEvent,
    dpc: KDpc,
    /// Interrupts serviced.
    pub count: AtomicU64,
}

fn irq_dpc(_: &KDpc, _: usize, _: usize, _: usize) {
    ke_set_event(&IRQ.event, 0);
}

/// Port 0's interrupt.
pub static IRQ: Irq = Irq {
    pending: AtomicU32::new(0),
    event: KEvent::new(false, false),
    dpc: KDpc::new(irq_dpc, 0),
    count: AtomicU64::new(0),
};

/// The interrupt service routine (device IRQL), context = ABAR's mapping:
/// claims the interrupt when port 0's bit is set in IS, acknowledges PxIS
/// then IS (write-1-to-clear, port first as AHCI 10.7.2.1 orders it), hands
/// the bits to the port logic and queues the DPC that wakes the waiter.
pub fn ahci_isr(va: usize) -> bool {
    let va = va as u64;
    let is = mmio_read(va, storage::ahci::reg::IS);
    if is & 1 == 0 {
        return false;
    }
    let pxis = mmio_read(va, PORT0_IS);
    mmio_write(va, PORT0_IS, pxis);
    mmio_write(va, storage::ahci::reg::IS, 1);
    IRQ.pending.fetch_or(pxis, Ordering::AcqRel);
    IRQ.count.fetch_add(1, Ordering::Relaxed);
    ke_insert_queue_dpc(&IRQ.dpc, 0, 0);
    true
}

/// ABAR mapped uncached.
pub struct Mmio {
    va: u64,
    /// The interrupt is connected and enabled: waits block on [`IRQ`].
    pub interrupts: bool,
}

impl Mmio {
    /// Maps `abar`.
    pub fn map(abar: u64) -> Result<Mmio, NtStatus> {
        Ok(Mmio {
            va: crate::mm::map::mm_map_io_space(abar, ABAR_SIZE)?,
            interrupts: false,
        })
    }
    /// The mapping (the ISR's context).
    pub fn va(&self) -> u64 {
        self.va
    }
}

impl Hba for Mmio {
    fn read32(&mut self, offset: u32) -> u32 {
        let v = mmio_read(self.va, offset);
        if offset == PORT0_IS {
            // What the ISR already acknowledged is still the port's status.
            v | IRQ.pending.load(Ordering::Acquire)
        } else {
            v
        }
    }
    fn write32(&mut self, offset: u32, value: u32) {
        if offset == PORT0_IS {
            IRQ.pending.fetch_and(!value, Ordering::AcqRel);
        }
        mmio_write(self.va, offset, value)
    }
    fn stall(&mut self, us: u32) {
        let t0 = hal::rdtsc();
        hal::stall_execution_processor(us as u64);
        WAIT_TICKS.fetch_add(hal::rdtsc() - t0, Ordering::Relaxed);
    }
    fn wait_interrupt(&mut self, max_us: u32) -> u32 {
        if !self.interrupts {
            let us = storage::ahci::POLL_US.min(max_us).max(1);
            self.stall(us);
            return us;
        }
        // Block (at most 10 ms at a time) until the DPC sets the event; a
        // completion that raced ahead left the event set, so this returns at once.
        let limit = max_us.clamp(1, 10_000);
        let t0 = hal::rdtsc();
        let i0 = crate::ke::clock::ke_query_interrupt_time();
        ke_wait_for_single_object(
            &IRQ.event,
            crate::ke::thread::WaitReason::Executive,
            false,
            false,
            Some(limit as u64 * 10),
        );
        WAIT_TICKS.fetch_add(hal::rdtsc() - t0, Ordering::Relaxed);
        let waited = (crate::ke::clock::ke_query_interrupt_time() - i0) / 10;
        (waited as u32).clamp(1, limit)
    }
}

/// The port's DMA page (command list, received FIS, command tables):
/// one nonpaged page and its physical address.
pub struct DmaPage {
    va: u64,
    pa: u64,
}

impl DmaPage {
    /// Allocates the zeroed page with `MmAllocateContiguousMemorySpecifyCache`
    /// (cached: AHCI DMA is cache-coherent on x86). Below 4 GiB unless the
    /// HBA does 64-bit DMA (`s64a`).
    pub fn allocate(s64a: bool) -> Result<DmaPage, NtStatus> {
        use crate::mm::contig::*;
        let high = if s64a { u64::MAX } else { 0xFFFF_FFFF };
        let va = mm_allocate_contiguous_memory(4096, 0, high, 0, MM_CACHED)?;
        let pa = crate::mm::pte::physical_address(va).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        Ok(DmaPage { va, pa })
    }
}

impl PortMemory for DmaPage {
    fn phys(&self) -> u64 {
        self.pa
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= 4096);
        // SAFETY: the page is mapped writable for the port's lifetime and the
        // range is inside it; the HBA only reads these bytes after the PxCI
        // write that follows (a volatile MMIO store after this copy).
        unsafe {
            core::ptr::copy_nonoverlapping(
                data.as_ptr(),
                (self.va + off as u64) as *mut u8,
                data.len(),
            )
        };
        compiler_fence(Ordering::SeqCst);
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        assert!(off + out.len() <= 4096);
        compiler_fence(Ordering::SeqCst);
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: inside the mapped page; volatile because the HBA writes
            // the received FIS and PRDBC by DMA.
            *b = unsafe { core::ptr::read_volatile((self.va + (off + i) as u64) as *const u8) };
        }
    }
}

/// The port, owned by whoever holds the fast mutex (requests are issued at
/// APC_LEVEL one at a time, the StartIo serialization storport gives a
/// miniport).
pub struct PortLock {
    mutex: FastMutex,
    port: UnsafeCell<Port<Mmio, DmaPage>>,
}

// SAFETY: the port is reached only through `PortGuard`, which exists only
// while the fast mutex is held.
unsafe impl Sync for PortLock {}
// SAFETY: the port's MMIO and DMA addresses are system-wide mappings, valid on any processor.
unsafe impl Send for PortLock {}

impl PortLock {
    /// Wraps an initialized port.
    pub fn new(port: Port<Mmio, DmaPage>) -> PortLock {
        PortLock {
            mutex: FastMutex::new(),
            port: UnsafeCell::new(port),
        }
    }
    /// Acquires the port.
    pub fn lock(&self) -> PortGuard<'_> {
        self.mutex.acquire();
        PortGuard { lock: self }
    }
}

/// Exclusive access to the port until dropped.
pub struct PortGuard<'a> {
    lock: &'a PortLock,
}

impl Deref for PortGuard<'_> {
    type Target = Port<Mmio, DmaPage>;
    fn deref(&self) -> &Self::Target {
        // SAFETY: the fast mutex is held for the guard's lifetime.
        unsafe { &*self.lock.port.get() }
    }
}

impl DerefMut for PortGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        // SAFETY: the fast mutex is held for the guard's lifetime and this is
        // the only guard.
        unsafe { &mut *self.lock.port.get() }
    }
}

impl Drop for PortGuard<'_> {
    fn drop(&mut self) {
        self.lock.mutex.release();
    }
}
