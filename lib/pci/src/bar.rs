//! Base address registers: decoding (I/O, 32- or 64-bit memory,
//! prefetchable) and sizing by the standard write-ones-read-back probe,
//! done with the function's decoding turned off so the probe value never
//! claims addresses on the bus.

use crate::header::Header;
use crate::{reg, Address, ConfigSpace};
use alloc::vec::Vec;

/// What a BAR decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// I/O space (`CmResourceTypePort`).
    Io,
    /// 32-bit memory space (`CmResourceTypeMemory`).
    Memory32,
    /// 64-bit memory space: this BAR and the next one form the address.
    Memory64,
}

/// A decoded, sized BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// Register index 0..5 (the low register of a 64-bit pair).
    pub index: u8,
    pub kind: BarKind,
    pub prefetchable: bool,
    /// Address firmware assigned (bus address; equal to the CPU physical
    /// address on x86).
    pub base: u64,
    /// Size in bytes (a power of two).
    pub size: u64,
}

impl Bar {
    /// Whether this BAR lies in memory space.
    pub fn is_memory(&self) -> bool {
        self.kind != BarKind::Io
    }
}

/// Decodes and sizes every implemented BAR of `addr` (whose header is
/// `hdr`). Decoding is switched off in the command register while each BAR
/// holds the all-ones probe, and the original values are written back.
/// Unimplemented BARs (reading back zero) are skipped.
pub fn read_bars(cs: &dyn ConfigSpace, addr: Address, hdr: &Header) -> Vec<Bar> {
    let mut bars = Vec::new();
    let count = hdr.bar_count();
    let command = cs.read16(addr, reg::COMMAND);
    // The status half of the dword is written as zero: its bits are
    // read-only or write-1-to-clear, so zero leaves them as they are.
    let set_command = |v: u16| cs.write32(addr, reg::COMMAND, v as u32);
    set_command(command & !(reg::COMMAND_IO | reg::COMMAND_MEMORY));
    let mut i = 0u8;
    while i < count {
        let off = reg::BAR0 + 4 * i as u16;
        let orig = cs.read32(addr, off);
        cs.write32(addr, off, 0xFFFF_FFFF);
        let probe = cs.read32(addr, off);
        cs.write32(addr, off, orig);
        if orig & 1 == 1 {
            // I/O: bits 31..2 are the address; the upper 16 may be
            // hard-wired to zero, so size from the low 16 when they are.
            let mut mask = probe & !3;
            if mask & 0xFFFF_0000 == 0 && mask != 0 {
                mask |= 0xFFFF_0000;
            }
            if mask != 0 {
                bars.push(Bar {
                    index: i,
                    kind: BarKind::Io,
                    prefetchable: false,
                    base: (orig & !3) as u64,
                    size: (!mask).wrapping_add(1) as u64,
                });
            }
            i += 1;
            continue;
        }
        let kind_bits = (orig >> 1) & 3;
        let prefetchable = orig & 8 != 0;
        if kind_bits == 2 && i + 1 < count {
            let off_hi = off + 4;
            let orig_hi = cs.read32(addr, off_hi);
            cs.write32(addr, off_hi, 0xFFFF_FFFF);
            let probe_hi = cs.read32(addr, off_hi);
            cs.write32(addr, off_hi, orig_hi);
            let mask = ((probe_hi as u64) << 32) | (probe & !0xF) as u64;
            if mask != 0 {
                bars.push(Bar {
                    index: i,
                    kind: BarKind::Memory64,
                    prefetchable,
                    base: ((orig_hi as u64) << 32) | (orig & !0xF) as u64,
                    size: (!mask).wrapping_add(1),
                });
            }
            i += 2;
            continue;
        }
        let mask = probe & !0xF;
        if mask != 0 {
            bars.push(Bar {
                index: i,
                kind: BarKind::Memory32,
                prefetchable,
                base: (orig & !0xF) as u64,
                size: (!mask).wrapping_add(1) as u64,
            });
        }
        i += 1;
    }
    set_command(command);
    bars
}
