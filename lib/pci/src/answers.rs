//! pci.sys's answers for a function's PDO (*Windows Internals*, ch. 6,
//! "Resource arbitration" and "Device enumeration"; the structures are
//! wdm.h's) and the configuration-space work of `IRP_MN_START_DEVICE`.
//!
//! - [`requirements`]: the `IO_RESOURCE_REQUIREMENTS_LIST` for
//!   `IRP_MN_QUERY_RESOURCE_REQUIREMENTS`: each BAR as a memory or port
//!   range (length = alignment = the BAR's size, 32-bit memory below
//!   4 GiB, 64-bit anywhere, prefetchable flag), then the interrupt: one
//!   message when the function has MSI, with its INTx line as the
//!   alternative when it has a routed pin, else the line alone;
//! - [`boot_config`]: the `CM_RESOURCE_LIST` for `IRP_MN_QUERY_RESOURCES`,
//!   the BARs as firmware programmed them;
//! - [`capabilities`], [`description`], [`location`];
//! - [`start_plan`], [`program_bar`], [`enable_decoding`],
//!   [`disable_decoding`].

use crate::bar::{Bar, BarKind};
use crate::enumerate::Function;
use crate::{reg, Address, ConfigSpace};
use alloc::string::String;
use alloc::vec::Vec;
use pnp::reslist::{CmFull, IoDescriptor, Requirements};
use wdk::pnp::*;

/// `PCI_SLOT_NUMBER.u.AsULONG`: device in bits 4:0, function in 7:5.
pub fn slot_number(a: Address) -> u32 {
    (a.device as u32 & 0x1F) | (a.function as u32 & 7) << 5
}

/// The BARs pci.sys reports (a BAR of 4 GiB or more would need
/// `CmResourceTypeMemoryLarge`, which ntrs does not produce: left out).
pub fn reported_bars(f: &Function) -> impl Iterator<Item = &Bar> {
    f.bars.iter().filter(|b| b.size <= u32::MAX as u64)
}

/// Whether the function's INTx pin is routed (Interrupt Line 1..254 as
/// firmware wrote it).
pub fn routed_line(f: &Function) -> Option<u8> {
    let l = f.header.interrupt_line;
    (f.header.interrupt_pin != 0 && l != 0 && l != 0xFF).then_some(l)
}

/// The requirements list pci.sys answers for `f`.
pub fn requirements(f: &Function) -> Requirements {
    let mut list = Vec::new();
    for b in reported_bars(f) {
        let (ty, flags, max) = match b.kind {
            BarKind::Io => (
                CmResourceTypePort,
                CM_RESOURCE_PORT_IO | CM_RESOURCE_PORT_16_BIT_DECODE,
                0xFFFF,
            ),
            BarKind::Memory32 | BarKind::Memory64 => (
                CmResourceTypeMemory,
                if b.prefetchable {
                    CM_RESOURCE_MEMORY_PREFETCHABLE
                } else {
                    CM_RESOURCE_MEMORY_READ_WRITE
                },
                if b.kind == BarKind::Memory32 {
                    0xFFFF_FFFF
                } else {
                    u64::MAX
                },
            ),
        };
        list.push(IoDescriptor {
            option: 0,
            ty,
            share: CmResourceShareDeviceExclusive,
            flags,
            length: b.size,
            alignment: b.size,
            min: 0,
            max,
        });
    }
    let line = routed_line(f);
    if f.msi.is_some() {
        list.push(IoDescriptor {
            option: 0,
            ty: CmResourceTypeInterrupt,
            share: CmResourceShareDeviceExclusive,
            flags: CM_RESOURCE_INTERRUPT_LATCHED | CM_RESOURCE_INTERRUPT_MESSAGE,
            length: 1,
            alignment: 1,
            // One message: MinimumVector..MaximumVector count down from the token.
            min: CM_RESOURCE_INTERRUPT_MESSAGE_TOKEN as u64,
            max: CM_RESOURCE_INTERRUPT_MESSAGE_TOKEN as u64,
        });
    }
    if let Some(l) = line {
        list.push(IoDescriptor {
            option: if f.msi.is_some() {
                IO_RESOURCE_ALTERNATIVE
            } else {
                0
            },
            ty: CmResourceTypeInterrupt,
            share: CmResourceShareShared,
            flags: CM_RESOURCE_INTERRUPT_LEVEL_SENSITIVE,
            length: 1,
            alignment: 1,
            min: l as u64,
            max: l as u64,
        });
    }
    Requirements {
        interface_type: PCIBus,
        bus_number: f.address.bus as u32,
        slot_number: slot_number(f.address),
        lists: alloc::vec![list],
    }
}

/// The boot configuration: every reported BAR firmware gave an address.
pub fn boot_config(f: &Function) -> CmFull {
    let descriptors = reported_bars(f)
        .filter(|b| b.base != 0)
        .map(|b| {
            if b.is_memory() {
                CM_PARTIAL_RESOURCE_DESCRIPTOR::memory(b.base, b.size as u32, b.prefetchable)
            } else {
                CM_PARTIAL_RESOURCE_DESCRIPTOR::port(b.base, b.size as u32)
            }
        })
        .collect();
    CmFull {
        interface_type: PCIBus,
        bus_number: f.address.bus as u32,
        descriptors,
    }
}

/// Fills `caps` (which the PnP manager initialized: Size, Version,
/// Address and UINumber = 0xFFFFFFFF) for `f`: the address
/// (device << 16 | function), D1/D2 support and the states PME# wakes
/// from (the power management capability; none without it), D0 in the
/// working state and D3 in every sleeping state. UINumber stays unknown
/// (ntrs has no ACPI `_SUN` and reads no slot numbers).
pub fn capabilities(f: &Function, caps: &mut DEVICE_CAPABILITIES) {
    caps.Address = (f.address.device as u32) << 16 | f.address.function as u32;
    let mut bits = 0;
    if let Some(pm) = f.pm {
        if pm.d1 {
            bits |= caps::DeviceD1;
        }
        if pm.d2 {
            bits |= caps::DeviceD2;
        }
        for (i, b) in [
            caps::WakeFromD0,
            caps::WakeFromD1,
            caps::WakeFromD2,
            caps::WakeFromD3,
        ]
        .into_iter()
        .enumerate()
        {
            if pm.pme_support & (1 << i) != 0 {
                bits |= b;
            }
        }
    }
    caps.Bits = bits;
    caps.DeviceState = [PowerDeviceUnspecified; POWER_SYSTEM_MAXIMUM];
    caps.DeviceState[PowerSystemWorking as usize] = PowerDeviceD0;
    for s in PowerSystemSleeping1..=PowerSystemShutdown {
        caps.DeviceState[s as usize] = PowerDeviceD3;
    }
}

/// The description for `IRP_MN_QUERY_DEVICE_TEXT(DeviceTextDescription)`:
/// the class's name from the PCI Code and ID Assignment specification
/// (pci.sys's own strings are not documented).
pub fn description(f: &Function) -> &'static str {
    let h = &f.header;
    match (h.base_class, h.subclass, h.prog_if) {
        (0x01, 0x06, 0x01) => "SATA controller (AHCI)",
        (0x01, 0x06, _) => "SATA controller",
        (0x01, 0x08, _) => "Non-volatile memory controller",
        (0x01, 0x01, _) => "IDE controller",
        (0x01, _, _) => "Mass storage controller",
        (0x02, 0x00, _) => "Ethernet controller",
        (0x02, _, _) => "Network controller",
        (0x03, _, _) => "Display controller",
        (0x04, _, _) => "Multimedia device",
        (0x05, _, _) => "Memory controller",
        (0x06, 0x00, _) => "Host bridge",
        (0x06, 0x01, _) => "ISA bridge",
        (0x06, 0x04, _) => "PCI-to-PCI bridge",
        (0x06, _, _) => "Bridge device",
        (0x07, _, _) => "Communication controller",
        (0x08, _, _) => "Base system peripheral",
        (0x09, _, _) => "Input device",
        (0x0C, 0x03, _) => "USB controller",
        (0x0C, 0x05, _) => "SMBus controller",
        (0x0C, _, _) => "Serial bus controller",
        _ => "PCI device",
    }
}

/// `IRP_MN_QUERY_DEVICE_TEXT(DeviceTextLocationInformation)`, as pci.sys
/// words it ("PCI bus 0, device 31, function 2").
pub fn location(a: Address) -> String {
    alloc::format!(
        "PCI bus {}, device {}, function {}",
        a.bus,
        a.device,
        a.function
    )
}

/// Where each reported BAR goes for the raw resources of
/// `IRP_MN_START_DEVICE`: memory BARs take the memory descriptors and I/O
/// BARs the port descriptors, each in BAR order (the order of the
/// requirements). `None` if a descriptor is missing or its length is not
/// the BAR's size.
pub fn start_plan(f: &Function, raw: &[CM_PARTIAL_RESOURCE_DESCRIPTOR]) -> Option<Vec<(Bar, u64)>> {
    let mut mem = raw.iter().filter(|d| d.Type == CmResourceTypeMemory);
    let mut io = raw.iter().filter(|d| d.Type == CmResourceTypePort);
    let mut plan = Vec::new();
    for b in reported_bars(f) {
        let d = if b.is_memory() { mem.next() } else { io.next() }?;
        if d.Length() as u64 != b.size {
            return None;
        }
        plan.push((*b, d.Start()));
    }
    Some(plan)
}

/// Writes `base` into `bar` with decoding off (the command register is
/// restored afterwards); a 64-bit BAR gets both halves. A base the BAR
/// cannot hold (above 4 GiB for a 32-bit BAR, above 64 KiB for I/O,
/// not aligned to its size) is refused with `false`.
pub fn program_bar(cs: &dyn ConfigSpace, a: Address, bar: &Bar, base: u64) -> bool {
    let limit = match bar.kind {
        BarKind::Io => 0xFFFF,
        BarKind::Memory32 => 0xFFFF_FFFF,
        BarKind::Memory64 => u64::MAX,
    };
    if base.checked_add(bar.size - 1).is_none_or(|e| e > limit) || base & (bar.size - 1) != 0 {
        return false;
    }
    let off = reg::BAR0 + 4 * bar.index as u16;
    let command = cs.read16(a, reg::COMMAND);
    cs.write32(
        a,
        reg::COMMAND,
        (command & !(reg::COMMAND_IO | reg::COMMAND_MEMORY)) as u32,
    );
    let low_flags = cs.read32(a, off) & if bar.is_memory() { 0xF } else { 0x3 };
    cs.write32(a, off, (base as u32 & !0xF) | low_flags);
    if bar.kind == BarKind::Memory64 {
        cs.write32(a, off + 4, (base >> 32) as u32);
    }
    cs.write32(a, reg::COMMAND, command as u32);
    true
}

/// Turns on memory and I/O decoding for the BAR kinds `f` has, and bus
/// mastering.
pub fn enable_decoding(cs: &dyn ConfigSpace, f: &Function) {
    let cmd = cs.read16(f.address, reg::COMMAND);
    let mut on = reg::COMMAND_BUS_MASTER;
    if f.bars.iter().any(|b| b.is_memory()) {
        on |= reg::COMMAND_MEMORY;
    }
    if f.bars.iter().any(|b| !b.is_memory()) {
        on |= reg::COMMAND_IO;
    }
    cs.write32(f.address, reg::COMMAND, (cmd | on) as u32);
}

/// Turns decoding and bus mastering off (`IRP_MN_STOP_DEVICE`,
/// `IRP_MN_REMOVE_DEVICE`).
pub fn disable_decoding(cs: &dyn ConfigSpace, a: Address) {
    let cmd = cs.read16(a, reg::COMMAND);
    let off = reg::COMMAND_IO | reg::COMMAND_MEMORY | reg::COMMAND_BUS_MASTER;
    cs.write32(a, reg::COMMAND, (cmd & !off) as u32);
}
