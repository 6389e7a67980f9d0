//! The capability list (PCI Local Bus 3.0, 6.7) and the capabilities the
//! PnP manager uses: MSI (to give a device a message-signaled interrupt),
//! MSI-X (reported), PCI Express (the port type, reported).

use crate::header::Header;
use crate::{reg, Address, ConfigSpace};
use alloc::vec::Vec;

pub const CAP_ID_POWER_MANAGEMENT: u8 = 0x01;
pub const CAP_ID_MSI: u8 = 0x05;
pub const CAP_ID_VENDOR: u8 = 0x09;
pub const CAP_ID_PCI_EXPRESS: u8 = 0x10;
pub const CAP_ID_MSIX: u8 = 0x11;
pub const CAP_ID_SATA: u8 = 0x12;

/// One entry of the capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    pub id: u8,
    pub offset: u8,
}

/// Walks the capability list of `addr`. A list that loops or points into
/// the predefined header ends the walk (at most 48 entries fit in the
/// 192 bytes after the header).
pub fn capabilities(cs: &dyn ConfigSpace, addr: Address, hdr: &Header) -> Vec<Capability> {
    let mut caps = Vec::new();
    if !hdr.has_capabilities() {
        return caps;
    }
    let mut ptr = cs.read8(addr, reg::CAPABILITIES_PTR) & 0xFC;
    while ptr >= 0x40 && caps.len() < 48 {
        if caps.iter().any(|c: &Capability| c.offset == ptr) {
            break;
        }
        let dw = cs.read32(addr, ptr as u16);
        caps.push(Capability {
            id: dw as u8,
            offset: ptr,
        });
        ptr = ((dw >> 8) as u8) & 0xFC;
    }
    caps
}

/// The power management capability's facts (PCI Bus Power Management
/// Interface 1.2, 3.2.3: PMC bits 9 and 10 = D1/D2 support, bits 15:11 =
/// the D0, D1, D2, D3hot, D3cold states PME# can be asserted from).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerManagement {
    pub offset: u8,
    pub d1: bool,
    pub d2: bool,
    /// PME support, bit 0 = D0 ... bit 4 = D3cold.
    pub pme_support: u8,
}

impl PowerManagement {
    pub fn read(cs: &dyn ConfigSpace, addr: Address, offset: u8) -> PowerManagement {
        let pmc = cs.read16(addr, offset as u16 + 2);
        PowerManagement {
            offset,
            d1: pmc & (1 << 9) != 0,
            d2: pmc & (1 << 10) != 0,
            pme_support: (pmc >> 11) as u8 & 0x1F,
        }
    }
}

/// The MSI capability's fixed facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msi {
    pub offset: u8,
    /// The message address has an upper dword.
    pub is_64bit: bool,
    /// Per-vector mask and pending registers exist.
    pub per_vector_mask: bool,
    /// Messages the function can ask for (1, 2, 4, ... 32).
    pub messages_capable: u8,
}

impl Msi {
    /// Reads the MSI capability at `offset`.
    pub fn read(cs: &dyn ConfigSpace, addr: Address, offset: u8) -> Msi {
        let control = cs.read16(addr, offset as u16 + 2);
        Msi {
            offset,
            is_64bit: control & (1 << 7) != 0,
            per_vector_mask: control & (1 << 8) != 0,
            messages_capable: 1 << ((control >> 1) & 7).min(5),
        }
    }

    fn data_offset(&self) -> u16 {
        self.offset as u16 + if self.is_64bit { 0xC } else { 8 }
    }

    /// Programs one message (`address`, `data`) and enables MSI with a
    /// single message; INTx is disabled in the command register, as the
    /// PCI spec requires once MSI is on. An address above 4 GiB on a 32-bit
    /// capability is refused (`false`).
    pub fn enable(&self, cs: &dyn ConfigSpace, addr: Address, address: u64, data: u16) -> bool {
        if !self.is_64bit && address > u32::MAX as u64 {
            return false;
        }
        let base = self.offset as u16;
        // Off while the message changes.
        let control = cs.read16(addr, base + 2) & !(1 | (7 << 4));
        cs.write16(addr, base + 2, control);
        cs.write32(addr, base + 4, address as u32);
        if self.is_64bit {
            cs.write32(addr, base + 8, (address >> 32) as u32);
        }
        let d = self.data_offset();
        // The data register is 16 bits; the dword's upper half is reserved
        // (or extended data, left zero).
        cs.write32(addr, d, data as u32);
        if self.per_vector_mask {
            cs.write32(addr, d + 4, 0);
        }
        let command = cs.read16(addr, reg::COMMAND);
        cs.write32(
            addr,
            reg::COMMAND,
            (command | reg::COMMAND_INTX_DISABLE) as u32,
        );
        cs.write16(addr, base + 2, control | 1);
        true
    }

    /// Disables MSI and lets INTx through again.
    pub fn disable(&self, cs: &dyn ConfigSpace, addr: Address) {
        let base = self.offset as u16;
        let control = cs.read16(addr, base + 2) & !1;
        cs.write16(addr, base + 2, control);
        let command = cs.read16(addr, reg::COMMAND);
        cs.write32(
            addr,
            reg::COMMAND,
            (command & !reg::COMMAND_INTX_DISABLE) as u32,
        );
    }

    /// Whether MSI is enabled now, with the programmed (address, data).
    pub fn current(&self, cs: &dyn ConfigSpace, addr: Address) -> Option<(u64, u16)> {
        let base = self.offset as u16;
        if cs.read16(addr, base + 2) & 1 == 0 {
            return None;
        }
        let lo = cs.read32(addr, base + 4) as u64;
        let hi = if self.is_64bit {
            cs.read32(addr, base + 8) as u64
        } else {
            0
        };
        Some((hi << 32 | lo, cs.read16(addr, self.data_offset())))
    }
}

/// The MSI-X capability's facts (reported; ntrs programs MSI only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiX {
    pub offset: u8,
    /// Table entries (1..2048).
    pub table_size: u16,
    pub table_bar: u8,
    pub table_offset: u32,
    pub pba_bar: u8,
    pub pba_offset: u32,
}

impl MsiX {
    pub fn read(cs: &dyn ConfigSpace, addr: Address, offset: u8) -> MsiX {
        let control = cs.read16(addr, offset as u16 + 2);
        let table = cs.read32(addr, offset as u16 + 4);
        let pba = cs.read32(addr, offset as u16 + 8);
        MsiX {
            offset,
            table_size: (control & 0x7FF) + 1,
            table_bar: (table & 7) as u8,
            table_offset: table & !7,
            pba_bar: (pba & 7) as u8,
            pba_offset: pba & !7,
        }
    }
}

/// PCI Express device/port types (capability register bits 7:4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcieType {
    Endpoint,
    LegacyEndpoint,
    RootPort,
    UpstreamSwitchPort,
    DownstreamSwitchPort,
    PcieToPciBridge,
    PciToPcieBridge,
    RootComplexIntegratedEndpoint,
    RootComplexEventCollector,
    Reserved(u8),
}

/// The PCI Express capability's facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciExpress {
    pub offset: u8,
    pub version: u8,
    pub port_type: PcieType,
}

impl PciExpress {
    pub fn read(cs: &dyn ConfigSpace, addr: Address, offset: u8) -> PciExpress {
        let caps = cs.read16(addr, offset as u16 + 2);
        let t = ((caps >> 4) & 0xF) as u8;
        PciExpress {
            offset,
            version: (caps & 0xF) as u8,
            port_type: match t {
                0 => PcieType::Endpoint,
                1 => PcieType::LegacyEndpoint,
                4 => PcieType::RootPort,
                5 => PcieType::UpstreamSwitchPort,
                6 => PcieType::DownstreamSwitchPort,
                7 => PcieType::PcieToPciBridge,
                8 => PcieType::PciToPcieBridge,
                9 => PcieType::RootComplexIntegratedEndpoint,
                10 => PcieType::RootComplexEventCollector,
                o => PcieType::Reserved(o),
            },
        }
    }
}

/// The x86 MSI message address for a fixed interrupt to the local APIC
/// `apic_id` (physical destination mode, no redirection hint): 0xFEE00000
/// with the destination in bits 19:12.
pub const fn x86_msi_address(apic_id: u8) -> u64 {
    0xFEE0_0000 | ((apic_id as u64) << 12)
}

/// The x86 MSI message data for `vector`: fixed delivery, edge triggered.
pub const fn x86_msi_data(vector: u8) -> u16 {
    vector as u16
}
