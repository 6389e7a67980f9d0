//! storahci: the AHCI port driver's hardware side. Finds the ICH9 AHCI
//! controller (PCI 8086:2922, or any class 01/06/01 function) on bus 0
//! through configuration mechanism #1, maps ABAR (BAR5) with
//! `MmMapIoSpace`, gives port 0 one DMA page, and runs `lib/storage`'s
//! [`storage::ahci::Port`] over them. Completion is polled (see docs/storage.md:
//! interrupts wait for the PnP manager's `IoConnectInterruptEx`).

use crate::ex::sync::FastMutex;
use crate::hal;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{compiler_fence, AtomicU64, Ordering};
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

/// Ticks (TSC) spent stalling in polls, for the benchmarks (device wait time).
pub static WAIT_TICKS: AtomicU64 = AtomicU64::new(0);

/// ABAR mapped uncached.
pub struct Mmio {
    va: u64,
}

/// Bytes of ABAR mapped: the generic registers and 32 port blocks.
pub const ABAR_SIZE: u64 = 0x1100;

impl Mmio {
    /// Maps `abar`.
    pub fn map(abar: u64) -> Result<Mmio, NtStatus> {
        Ok(Mmio {
            va: crate::mm::map::mm_map_io_space(abar, ABAR_SIZE)?,
        })
    }
}

impl Hba for Mmio {
    fn read32(&mut self, offset: u32) -> u32 {
        debug_assert!((offset as u64) < ABAR_SIZE);
        // SAFETY: `va` maps ABAR_SIZE bytes of HBA registers uncached
        // (mm_map_io_space) for the port's lifetime; offsets are register
        // offsets below ABAR_SIZE, dword aligned.
        unsafe { core::ptr::read_volatile((self.va + offset as u64) as *const u32) }
    }
    fn write32(&mut self, offset: u32, value: u32) {
        compiler_fence(Ordering::SeqCst);
        // SAFETY: as for read32.
        unsafe { core::ptr::write_volatile((self.va + offset as u64) as *mut u32, value) }
    }
    fn stall(&mut self, us: u32) {
        let t0 = hal::rdtsc();
        hal::stall_execution_processor(us as u64);
        WAIT_TICKS.fetch_add(hal::rdtsc() - t0, Ordering::Relaxed);
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
