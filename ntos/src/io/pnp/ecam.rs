//! PCI Express enhanced configuration access (ECAM): the window the ACPI
//! MCFG table describes, mapped uncached through `MmMapIoSpace` one bus
//! (1 MiB) at a time, the first time a bus is touched, so a 256-bus window
//! does not take 64 Ki system PTEs for the one or two buses a machine has.

use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use ::pci::mcfg::McfgEntry;
use ::pci::{Address, ConfigSpace};

/// One ECAM window with its per-bus mappings.
pub struct Ecam {
    pub entry: McfgEntry,
    /// Virtual address of each bus's 1 MiB (0 = not mapped yet), indexed by
    /// bus number.
    buses: SpinLocked<[u64; 256], DISPATCH_LEVEL>,
}

const BUS_BYTES: u64 = 1 << 20;

impl Ecam {
    pub fn new(entry: McfgEntry) -> Ecam {
        Ecam {
            entry,
            buses: SpinLocked::new([0; 256]),
        }
    }

    /// The mapping of `bus`, made now if needed; `None` outside the
    /// window's bus range or when no system PTEs are left.
    fn bus_va(&self, bus: u8) -> Option<u64> {
        if bus < self.entry.start_bus || bus > self.entry.end_bus {
            return None;
        }
        let va = self.buses.with(|b| b[bus as usize]);
        if va != 0 {
            return Some(va);
        }
        // Map outside the lock (it allocates page tables); a racing mapper
        // loses and unmaps its copy.
        let pa = self.entry.base + ((bus as u64) << 20);
        let new = crate::mm::map::mm_map_io_space(pa, BUS_BYTES).ok()?;
        let winner = self.buses.with(|b| {
            if b[bus as usize] == 0 {
                b[bus as usize] = new;
            }
            b[bus as usize]
        });
        if winner != new {
            crate::mm::map::mm_unmap_io_space(new, BUS_BYTES);
        }
        Some(winner)
    }

    fn reg(&self, a: Address, offset: u16) -> Option<*mut u32> {
        if a.segment != self.entry.segment || a.device > 31 || a.function > 7 || offset >= 4096 {
            return None;
        }
        let va = self.bus_va(a.bus)?;
        let off = ((a.device as u64) << 15) | ((a.function as u64) << 12) | (offset & !3) as u64;
        Some((va + off) as *mut u32)
    }

    /// Buses mapped now (for `!pci`-style reporting and the tests).
    pub fn mapped_buses(&self) -> usize {
        self.buses.with(|b| b.iter().filter(|&&v| v != 0).count())
    }
}

impl ConfigSpace for Ecam {
    fn read32(&self, a: Address, offset: u16) -> u32 {
        match self.reg(a, offset) {
            // SAFETY: `reg` returns an aligned dword inside the bus's 1 MiB
            // ECAM mapping, which stays mapped as long as the Ecam lives
            // (never unmapped while published); a read of configuration
            // space has no side effects on memory the kernel owns.
            Some(p) => unsafe { p.read_volatile() },
            None => u32::MAX,
        }
    }

    fn write32(&self, a: Address, offset: u16, value: u32) {
        if let Some(p) = self.reg(a, offset) {
            // SAFETY: as for `read32`; writes change only the device's
            // configuration registers.
            unsafe { p.write_volatile(value) }
        }
    }
}

/// Counts the functions that answer on every bus of `entry` by mapping one
/// bus at a time and unmapping it again (the boot test's brute-force
/// reference; the enumerator's cached mappings are not used).
pub fn brute_force_count(entry: &McfgEntry) -> Result<usize, nt::NtStatus> {
    let mut n = 0;
    for bus in entry.start_bus..=entry.end_bus {
        let pa = entry.base + ((bus as u64) << 20);
        let va = crate::mm::map::mm_map_io_space(pa, BUS_BYTES)?;
        for devfn in 0..256u64 {
            // SAFETY: inside the 1 MiB just mapped; vendor ID dword reads
            // have no side effects.
            let id = unsafe { ((va + (devfn << 12)) as *const u32).read_volatile() } as u16;
            if id != 0xFFFF && id != 0 {
                n += 1;
            }
        }
        crate::mm::map::mm_unmap_io_space(va, BUS_BYTES);
    }
    Ok(n)
}
