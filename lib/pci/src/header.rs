//! The predefined header (the first 64 bytes of configuration space):
//! identification, class code, header type, and the fields that differ
//! between type 0 (a device) and type 1 (a PCI-to-PCI bridge).

use crate::{reg, Address, ConfigSpace};

/// Header layouts (`PCI_DEVICE_TYPE`, `PCI_BRIDGE_TYPE`, `PCI_CARDBUS_BRIDGE_TYPE` in wdm.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderType {
    Device,
    Bridge,
    CardBus,
    /// A layout PCI does not define (the function is reported, not decoded).
    Other(u8),
}

impl HeaderType {
    pub fn from_raw(v: u8) -> Self {
        match v & 0x7F {
            0 => HeaderType::Device,
            1 => HeaderType::Bridge,
            2 => HeaderType::CardBus,
            o => HeaderType::Other(o),
        }
    }
}

/// What the predefined header says about a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub vendor_id: u16,
    pub device_id: u16,
    pub command: u16,
    pub status: u16,
    pub revision_id: u8,
    pub prog_if: u8,
    pub subclass: u8,
    pub base_class: u8,
    pub header_type: HeaderType,
    /// Bit 7 of the header type: functions 1..7 may exist.
    pub multi_function: bool,
    /// Type 0 only (zero for bridges, which have no subsystem fields in the
    /// header; their SSID capability is not read).
    pub subsystem_vendor_id: u16,
    pub subsystem_id: u16,
    pub interrupt_line: u8,
    /// 0 = no INTx pin, 1..4 = INTA#..INTD#.
    pub interrupt_pin: u8,
    /// Type 1 only: bus numbers behind the bridge as firmware set them.
    pub primary_bus: u8,
    pub secondary_bus: u8,
    pub subordinate_bus: u8,
}

impl Header {
    /// Reads the header of `addr`; `None` if no function answers there
    /// (vendor ID 0xFFFF) or the vendor ID is the invalid 0x0000.
    pub fn read(cs: &dyn ConfigSpace, addr: Address) -> Option<Header> {
        let id = cs.read32(addr, reg::VENDOR_ID);
        let vendor_id = id as u16;
        if vendor_id == 0xFFFF || vendor_id == 0 {
            return None;
        }
        let cmd_status = cs.read32(addr, reg::COMMAND);
        let class = cs.read32(addr, reg::REVISION_ID);
        let bist_hdr = cs.read32(addr, 0x0C);
        let raw_type = (bist_hdr >> 16) as u8;
        let header_type = HeaderType::from_raw(raw_type);
        let (sub_vendor, sub_id) = if header_type == HeaderType::Device {
            let s = cs.read32(addr, reg::SUBSYSTEM_VENDOR_ID);
            (s as u16, (s >> 16) as u16)
        } else {
            (0, 0)
        };
        let (primary, secondary, subordinate) = if header_type == HeaderType::Bridge {
            let b = cs.read32(addr, reg::PRIMARY_BUS);
            (b as u8, (b >> 8) as u8, (b >> 16) as u8)
        } else {
            (0, 0, 0)
        };
        let int = cs.read32(addr, reg::INTERRUPT_LINE);
        Some(Header {
            vendor_id,
            device_id: (id >> 16) as u16,
            command: cmd_status as u16,
            status: (cmd_status >> 16) as u16,
            revision_id: class as u8,
            prog_if: (class >> 8) as u8,
            subclass: (class >> 16) as u8,
            base_class: (class >> 24) as u8,
            header_type,
            multi_function: raw_type & 0x80 != 0,
            subsystem_vendor_id: sub_vendor,
            subsystem_id: sub_id,
            interrupt_line: int as u8,
            interrupt_pin: (int >> 8) as u8,
            primary_bus: primary,
            secondary_bus: secondary,
            subordinate_bus: subordinate,
        })
    }

    /// The 24-bit class code (base class, subclass, programming interface).
    pub fn class_code(&self) -> u32 {
        (self.base_class as u32) << 16 | (self.subclass as u32) << 8 | self.prog_if as u32
    }

    /// Whether the function is a PCI-to-PCI bridge (type 1 header).
    pub fn is_bridge(&self) -> bool {
        self.header_type == HeaderType::Bridge
    }

    /// How many BARs the header layout has (6 for a device, 2 for a bridge).
    pub fn bar_count(&self) -> u8 {
        match self.header_type {
            HeaderType::Device => 6,
            HeaderType::Bridge => 2,
            _ => 0,
        }
    }

    /// Whether the function has a capability list.
    pub fn has_capabilities(&self) -> bool {
        self.status & reg::STATUS_CAPABILITIES != 0
    }
}
