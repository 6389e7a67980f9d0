//! PCI configuration space as the PCI bus driver (pci.sys) works with it
//! (*Windows Internals*, Part 1, ch. 6, "Plug and Play": "Device
//! enumeration", "Device identification"), free of hardware so it is tested
//! on the host against a simulated q35 machine. The kernel's PnP manager
//! (`ntos/src/io/pnp`) runs this code over the ECAM window the ACPI MCFG
//! table describes; it has no second implementation.
//!
//! - [`ConfigSpace`]: 32-bit reads and writes at (bus, device, function,
//!   offset), the only access the crate needs;
//! - [`header`]: type 0 (device) and type 1 (PCI-to-PCI bridge) headers;
//! - [`bar`]: base address registers, decoded and sized;
//! - [`cap`]: the capability list (MSI, MSI-X, PCI Express) and MSI
//!   programming;
//! - [`enumerate`]: a depth-first scan of every bus reachable from a root
//!   bus through bridges, giving each function its parent bridge;
//! - [`ids`]: hardware IDs, compatible IDs and instance-ID pieces in the
//!   formats Windows' PCI bus driver reports;
//! - [`mcfg`]: the ACPI MCFG table (ECAM base, segment, bus range);
//! - [`answers`]: what pci.sys answers for a function's PDO (resource
//!   requirements, boot configuration, capabilities, device text) and how
//!   it applies assigned resources at `IRP_MN_START_DEVICE`.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod answers;
pub mod bar;
pub mod cap;
pub mod enumerate;
pub mod header;
pub mod ids;
pub mod mcfg;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

/// Access to PCI configuration space: dword reads and writes at a
/// function's `offset` (dword aligned, below 4096 for ECAM, 256 for the
/// legacy mechanism). A read of a function that does not exist returns
/// all ones, as the hardware does (a master abort).
pub trait ConfigSpace {
    /// Reads the dword at `offset` of bus/device/function.
    fn read32(&self, addr: Address, offset: u16) -> u32;
    /// Writes the dword at `offset` of bus/device/function.
    fn write32(&self, addr: Address, offset: u16, value: u32);

    /// Reads the word at `offset` (2-byte aligned) through a dword read.
    fn read16(&self, addr: Address, offset: u16) -> u16 {
        (self.read32(addr, offset & !3) >> ((offset & 2) * 8)) as u16
    }
    /// Reads the byte at `offset` through a dword read.
    fn read8(&self, addr: Address, offset: u16) -> u8 {
        (self.read32(addr, offset & !3) >> ((offset & 3) * 8)) as u8
    }
    /// Writes the word at `offset` (2-byte aligned) as a read-modify-write
    /// of its dword.
    ///
    /// Careful with registers whose bits are write-1-to-clear (the status
    /// word beside the command word): this writes back what it read.
    fn write16(&self, addr: Address, offset: u16, value: u16) {
        let shift = (offset & 2) * 8;
        let old = self.read32(addr, offset & !3);
        let new = (old & !(0xFFFF << shift)) | ((value as u32) << shift);
        self.write32(addr, offset & !3, new);
    }
}

/// A PCI function's address: segment (ECAM window), bus, device, function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    pub segment: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl Address {
    pub const fn new(segment: u16, bus: u8, device: u8, function: u8) -> Self {
        Address {
            segment,
            bus,
            device,
            function,
        }
    }

    /// The device/function number as one byte (`device << 3 | function`),
    /// the last field of a PCI device's instance ID on Windows.
    pub const fn devfn(&self) -> u8 {
        (self.device << 3) | (self.function & 7)
    }

    /// Byte offset of this function's 4 KiB configuration space inside an
    /// ECAM window that starts at bus `start_bus`.
    pub const fn ecam_offset(&self, start_bus: u8) -> u64 {
        (((self.bus - start_bus) as u64) << 20)
            | ((self.device as u64) << 15)
            | ((self.function as u64) << 12)
    }
}

impl core::fmt::Display for Address {
    /// `segment:bus:device.function` in hex, as `!pci` and lspci show it.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

/// Configuration-space register offsets (PCI Local Bus 3.0, ch. 6).
pub mod reg {
    pub const VENDOR_ID: u16 = 0x00;
    pub const DEVICE_ID: u16 = 0x02;
    pub const COMMAND: u16 = 0x04;
    pub const STATUS: u16 = 0x06;
    pub const REVISION_ID: u16 = 0x08;
    pub const PROG_IF: u16 = 0x09;
    pub const SUBCLASS: u16 = 0x0A;
    pub const CLASS: u16 = 0x0B;
    pub const HEADER_TYPE: u16 = 0x0E;
    pub const BAR0: u16 = 0x10;
    /// Type 0: subsystem vendor ID / subsystem ID.
    pub const SUBSYSTEM_VENDOR_ID: u16 = 0x2C;
    pub const SUBSYSTEM_ID: u16 = 0x2E;
    pub const CAPABILITIES_PTR: u16 = 0x34;
    pub const INTERRUPT_LINE: u16 = 0x3C;
    pub const INTERRUPT_PIN: u16 = 0x3D;
    /// Type 1: primary, secondary and subordinate bus numbers.
    pub const PRIMARY_BUS: u16 = 0x18;
    pub const SECONDARY_BUS: u16 = 0x19;
    pub const SUBORDINATE_BUS: u16 = 0x1A;

    /// Command register bits.
    pub const COMMAND_IO: u16 = 1 << 0;
    pub const COMMAND_MEMORY: u16 = 1 << 1;
    pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
    pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
    /// Status register: the function has a capability list.
    pub const STATUS_CAPABILITIES: u16 = 1 << 4;
}
