//! The ACPI MCFG table ("PCI Express memory-mapped configuration space
//! base address description table", PCI Firmware Specification 3.0, 4.1.2):
//! the standard 36-byte ACPI header, 8 reserved bytes, then one 16-byte
//! allocation per ECAM window: base address (u64), PCI segment group
//! (u16), start bus, end bus, 4 reserved bytes.

use alloc::vec::Vec;

/// One ECAM window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct McfgEntry {
    /// Physical address of bus 0's configuration space in this window
    /// (even when `start_bus` is above 0, per the specification).
    pub base: u64,
    pub segment: u16,
    pub start_bus: u8,
    pub end_bus: u8,
}

impl McfgEntry {
    /// Physical address of the first byte of `start_bus`'s space.
    pub fn window_base(&self) -> u64 {
        self.base + ((self.start_bus as u64) << 20)
    }
    /// Bytes the window covers (1 MiB per bus).
    pub fn window_size(&self) -> u64 {
        ((self.end_bus as u64 - self.start_bus as u64) + 1) << 20
    }
}

/// Why an MCFG table was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum McfgError {
    /// Shorter than its header or its own length field.
    Truncated,
    /// The signature is not `MCFG`.
    BadSignature,
    /// The bytes do not sum to zero.
    BadChecksum,
    /// An entry's end bus is below its start bus.
    BadBusRange,
}

/// Parses a complete MCFG table (`table` holds at least its `Length` bytes).
pub fn parse(table: &[u8]) -> Result<Vec<McfgEntry>, McfgError> {
    if table.len() < 44 {
        return Err(McfgError::Truncated);
    }
    if &table[0..4] != b"MCFG" {
        return Err(McfgError::BadSignature);
    }
    let len = u32::from_le_bytes([table[4], table[5], table[6], table[7]]) as usize;
    if len < 44 || table.len() < len {
        return Err(McfgError::Truncated);
    }
    let table = &table[..len];
    if table.iter().fold(0u8, |s, &b| s.wrapping_add(b)) != 0 {
        return Err(McfgError::BadChecksum);
    }
    table[44..]
        .chunks_exact(16)
        .map(|e| {
            let entry = McfgEntry {
                base: u64::from_le_bytes(e[0..8].try_into().unwrap_or([0; 8])),
                segment: u16::from_le_bytes([e[8], e[9]]),
                start_bus: e[10],
                end_bus: e[11],
            };
            if entry.end_bus < entry.start_bus {
                Err(McfgError::BadBusRange)
            } else {
                Ok(entry)
            }
        })
        .collect()
}
