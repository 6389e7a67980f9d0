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

/// The MCFG's ECAM windows, set once by the PnP manager.
static WINDOWS: once_cell::race::OnceBox<alloc::vec::Vec<Ecam>> = once_cell::race::OnceBox::new();

/// Publishes the ECAM windows (once).
pub fn set_windows(w: alloc::vec::Vec<Ecam>) -> Result<(), nt::NtStatus> {
    WINDOWS
        .set(crate::ex::pool::try_box(w)?)
        .map_err(|_| nt::status::STATUS_UNSUCCESSFUL)
}

/// The ECAM windows (empty before the PnP manager read the MCFG).
pub fn windows() -> &'static [Ecam] {
    WINDOWS.get().map_or(&[], |w| &w[..])
}

/// The window holding `segment`:`bus`.
pub fn window_for(segment: u16, bus: u8) -> Option<&'static Ecam> {
    windows().iter().find(|w| {
        w.entry.segment == segment && (w.entry.start_bus..=w.entry.end_bus).contains(&bus)
    })
}

/// The configuration space of every window (an address outside all of
/// them reads as all ones: no function answers there).
pub struct AllWindows;

impl ConfigSpace for AllWindows {
    fn read32(&self, a: Address, offset: u16) -> u32 {
        window_for(a.segment, a.bus).map_or(u32::MAX, |w| w.read32(a, offset))
    }
    fn write32(&self, a: Address, offset: u16, value: u32) {
        if let Some(w) = window_for(a.segment, a.bus) {
            w.write32(a, offset, value)
        }
    }
}

/// `PCI_SLOT_NUMBER` (device in bits 4:0, function in 7:5) to an address
/// on segment 0.
fn slot_address(bus: u32, slot: u32) -> Option<Address> {
    let bus = u8::try_from(bus).ok()?;
    if slot >> 8 != 0 {
        return None;
    }
    Some(Address::new(
        0,
        bus,
        (slot & 0x1F) as u8,
        ((slot >> 5) & 7) as u8,
    ))
}

/// `HalGetBusDataByOffset` / `HalSetBusDataByOffset` for
/// `PCIConfiguration`: `length` bytes at `offset` of the function's
/// configuration space, through the ECAM mapping (bytes moved one dword
/// read-modify-write at a time). Returns the bytes transferred: 0 for
/// another bus data type, a bus no window covers, or a range beyond the
/// 4 KiB of the function; for an absent function a read returns 2 with
/// the vendor ID `PCI_INVALID_VENDORID` (0xFFFF) in the buffer, as the
/// routine is documented to.
fn bus_data(
    bus_data_type: u32,
    bus: u32,
    slot: u32,
    buf: &mut [u8],
    offset: u32,
    write: bool,
) -> u32 {
    if bus_data_type != wdk::pnp::PCIConfiguration {
        return 0;
    }
    let Some(a) = slot_address(bus, slot) else {
        return 0;
    };
    let Some(w) = window_for(0, a.bus) else {
        return 0;
    };
    let len = buf.len() as u32;
    if offset.checked_add(len).is_none_or(|e| e > 4096) {
        return 0;
    }
    if !write && w.read32(a, 0) as u16 == 0xFFFF {
        for b in buf.iter_mut().take(2) {
            *b = 0xFF;
        }
        return 2.min(len);
    }
    // Whole aligned dwords as one access (a register's bytes change
    // together); the ragged edges one byte at a time.
    let mut i = 0usize;
    while i < buf.len() {
        let off = offset + i as u32;
        let dw = (off & !3) as u16;
        if off & 3 == 0 && buf.len() - i >= 4 {
            if write {
                let v = u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
                w.write32(a, dw, v);
            } else {
                buf[i..i + 4].copy_from_slice(&w.read32(a, dw).to_le_bytes());
            }
            i += 4;
            continue;
        }
        let shift = (off & 3) * 8;
        let cur = w.read32(a, dw);
        if write {
            let new = (cur & !(0xFF << shift)) | ((buf[i] as u32) << shift);
            w.write32(a, dw, new);
        } else {
            buf[i] = (cur >> shift) as u8;
        }
        i += 1;
    }
    len
}

/// `HalGetBusDataByOffset` (exported; the PCI bus driver's configuration
/// access: see `bus_data`).
///
/// # Safety
/// `buffer` is valid for `length` bytes of writes.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn HalGetBusDataByOffset(
    BusDataType: u32,
    BusNumber: u32,
    SlotNumber: u32,
    Buffer: *mut core::ffi::c_void,
    Offset: u32,
    Length: u32,
) -> u32 {
    if Buffer.is_null() || Length == 0 {
        return 0;
    }
    // SAFETY: per the contract, the caller's buffer of `Length` bytes.
    let buf = unsafe { core::slice::from_raw_parts_mut(Buffer.cast::<u8>(), Length as usize) };
    bus_data(BusDataType, BusNumber, SlotNumber, buf, Offset, false)
}

/// `HalSetBusDataByOffset` (exported; see `bus_data`).
///
/// # Safety
/// `buffer` is valid for `length` bytes of reads.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn HalSetBusDataByOffset(
    BusDataType: u32,
    BusNumber: u32,
    SlotNumber: u32,
    Buffer: *mut core::ffi::c_void,
    Offset: u32,
    Length: u32,
) -> u32 {
    if Buffer.is_null() || Length == 0 {
        return 0;
    }
    // SAFETY: per the contract, the caller's buffer of `Length` bytes;
    // copied so the writes below never alias it.
    let src = unsafe { core::slice::from_raw_parts(Buffer.cast::<u8>(), Length as usize) };
    let Ok(mut copy) = crate::ex::pool::try_vec_with_capacity(src.len()) else {
        return 0;
    };
    copy.extend_from_slice(src);
    bus_data(BusDataType, BusNumber, SlotNumber, &mut copy, Offset, true)
}
