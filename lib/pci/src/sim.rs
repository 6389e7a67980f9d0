//! A simulated configuration space for the host tests: functions with
//! per-bit write masks, so BAR sizing, the command register and MSI
//! programming behave as hardware does (read-only bits keep their value,
//! BAR address bits below the size read back as zero).

use crate::{Address, ConfigSpace};
use alloc::collections::BTreeMap;
use core::cell::RefCell;

#[derive(Clone)]
pub struct SimFn {
    pub cfg: [u32; 1024],
    pub writable: [u32; 1024],
    next_cap: u16,
    last_cap: u16,
}

impl SimFn {
    /// A type 0 function with the given identity (class code is 24-bit).
    pub fn new(vendor: u16, device: u16, class_code: u32, rev: u8) -> SimFn {
        let mut f = SimFn {
            cfg: [0; 1024],
            writable: [0; 1024],
            next_cap: 0x40,
            last_cap: 0,
        };
        f.cfg[0] = (device as u32) << 16 | vendor as u32;
        f.cfg[2] = class_code << 8 | rev as u32;
        // Command: I/O, memory, bus master, INTx disable are writable.
        f.writable[1] = 0x0000_0407;
        f.writable[0x3C / 4] = 0xFF; // interrupt line
        f
    }

    pub fn subsys(mut self, vendor: u16, id: u16) -> SimFn {
        self.cfg[0x2C / 4] = (id as u32) << 16 | vendor as u32;
        self
    }

    pub fn multi(mut self) -> SimFn {
        self.cfg[3] |= 0x80 << 16;
        self
    }

    pub fn pin(mut self, pin: u8, line: u8) -> SimFn {
        self.cfg[0x3C / 4] = (pin as u32) << 8 | line as u32;
        self
    }

    pub fn command(mut self, v: u16) -> SimFn {
        self.cfg[1] = (self.cfg[1] & 0xFFFF_0000) | v as u32;
        self
    }

    pub fn bar_mem32(mut self, i: usize, base: u32, size: u32, prefetch: bool) -> SimFn {
        let flags = if prefetch { 8 } else { 0 };
        self.cfg[4 + i] = base | flags;
        self.writable[4 + i] = !(size - 1) & !0xF;
        self
    }

    pub fn bar_mem64(mut self, i: usize, base: u64, size: u64, prefetch: bool) -> SimFn {
        let flags = 4 | if prefetch { 8 } else { 0 };
        self.cfg[4 + i] = base as u32 | flags;
        self.cfg[5 + i] = (base >> 32) as u32;
        let mask = !(size - 1);
        self.writable[4 + i] = mask as u32 & !0xF;
        self.writable[5 + i] = (mask >> 32) as u32;
        self
    }

    pub fn bar_io(mut self, i: usize, base: u16, size: u16) -> SimFn {
        self.cfg[4 + i] = base as u32 | 1;
        // 16-bit decode: the upper half is hard-wired to zero.
        self.writable[4 + i] = (!(size as u32 - 1)) & 0xFFFC;
        self
    }

    /// Makes this a type 1 header with the given bus numbers.
    pub fn bridge(mut self, primary: u8, secondary: u8, subordinate: u8) -> SimFn {
        self.cfg[3] = (self.cfg[3] & !(0x7F << 16)) | (1 << 16);
        self.cfg[0x2C / 4] = 0; // I/O base/limit upper in type 1, not SSID
        self.cfg[0x18 / 4] = (subordinate as u32) << 16 | (secondary as u32) << 8 | primary as u32;
        self.writable[0x18 / 4] = 0x00FF_FFFF;
        self
    }

    /// Appends a capability with `body` (bytes after the ID/next pair)
    /// and the given writable mask for its dwords.
    pub fn cap(mut self, id: u8, body: &[u8], writable: &[u32]) -> SimFn {
        let off = self.next_cap;
        let mut bytes = alloc::vec![id, 0];
        bytes.extend_from_slice(body);
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        for (i, chunk) in bytes.chunks(4).enumerate() {
            self.cfg[off as usize / 4 + i] = u32::from_le_bytes(chunk.try_into().unwrap());
            self.writable[off as usize / 4 + i] = writable.get(i).copied().unwrap_or(0);
        }
        if self.last_cap == 0 {
            self.cfg[0x34 / 4] = off as u32;
            self.cfg[1] |= 1 << 20; // status: capability list
        } else {
            let l = self.last_cap as usize;
            self.cfg[l / 4] |= (off as u32) << 8;
        }
        self.last_cap = off;
        self.next_cap = off + bytes.len() as u16;
        self
    }

    /// A 64-bit MSI capability with one message (QEMU's ICH9 AHCI layout).
    pub fn msi64(self) -> SimFn {
        // control (64-bit capable), address lo, address hi, data.
        self.cap(
            crate::cap::CAP_ID_MSI,
            &[0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0x0071_0000, 0xFFFF_FFFC, 0xFFFF_FFFF, 0x0000_FFFF],
        )
    }

    /// An MSI-X capability with `entries` in BAR `bir` at `offset`.
    pub fn msix(self, entries: u16, bir: u8, offset: u32) -> SimFn {
        let control = (entries - 1).to_le_bytes();
        let table = (offset | bir as u32).to_le_bytes();
        let pba = ((offset + 0x800) | bir as u32).to_le_bytes();
        let mut body = alloc::vec![control[0], control[1]];
        body.extend_from_slice(&table);
        body.extend_from_slice(&pba);
        self.cap(crate::cap::CAP_ID_MSIX, &body, &[0xC000_0000])
    }

    /// A power management capability with PMC `pmc`.
    pub fn pm(self, pmc: u16) -> SimFn {
        let b = pmc.to_le_bytes();
        self.cap(
            crate::cap::CAP_ID_POWER_MANAGEMENT,
            &[b[0], b[1], 0, 0, 0, 0],
            &[],
        )
    }

    /// A PCI Express capability (version 2) of port type `t`.
    pub fn pcie(self, t: u8) -> SimFn {
        let caps = (2u16 | (t as u16) << 4).to_le_bytes();
        self.cap(
            crate::cap::CAP_ID_PCI_EXPRESS,
            &[caps[0], caps[1], 0, 0, 0, 0],
            &[],
        )
    }
}

/// The configuration space of a simulated machine.
#[derive(Default)]
pub struct SimConfig {
    pub fns: RefCell<BTreeMap<(u8, u8, u8), SimFn>>,
    pub reads: core::cell::Cell<u64>,
}

impl SimConfig {
    pub fn add(&self, bus: u8, dev: u8, func: u8, f: SimFn) {
        self.fns.borrow_mut().insert((bus, dev, func), f);
    }
    pub fn get(&self, bus: u8, dev: u8, func: u8) -> SimFn {
        self.fns.borrow()[&(bus, dev, func)].clone()
    }
}

impl ConfigSpace for SimConfig {
    fn read32(&self, a: Address, offset: u16) -> u32 {
        self.reads.set(self.reads.get() + 1);
        assert_eq!(offset % 4, 0, "unaligned config read");
        self.fns
            .borrow()
            .get(&(a.bus, a.device, a.function))
            .map_or(0xFFFF_FFFF, |f| f.cfg[offset as usize / 4])
    }
    fn write32(&self, a: Address, offset: u16, value: u32) {
        assert_eq!(offset % 4, 0, "unaligned config write");
        if let Some(f) = self
            .fns
            .borrow_mut()
            .get_mut(&(a.bus, a.device, a.function))
        {
            let i = offset as usize / 4;
            f.cfg[i] = (f.cfg[i] & !f.writable[i]) | (value & f.writable[i]);
        }
    }
}

/// QEMU's `-machine q35 -nodefaults` as ntrs boots it (host bridge, LPC,
/// AHCI, SMBus: values as QEMU's ICH9 models report them), plus a PCI
/// Express root port with a virtio device behind it and a 64-bit BAR
/// device, so bridges and 64-bit sizing are covered.
pub fn q35() -> SimConfig {
    let s = SimConfig::default();
    s.add(
        0,
        0,
        0,
        SimFn::new(0x8086, 0x29C0, 0x06_00_00, 0x00).subsys(0x1AF4, 0x1100),
    );
    s.add(
        0,
        0x1F,
        0,
        SimFn::new(0x8086, 0x2918, 0x06_01_00, 0x02)
            .subsys(0x1AF4, 0x1100)
            .multi(),
    );
    s.add(
        0,
        0x1F,
        2,
        SimFn::new(0x8086, 0x2922, 0x01_06_01, 0x02)
            .subsys(0x1AF4, 0x1100)
            .multi()
            .command(0x0007)
            .pin(1, 10)
            .bar_io(4, 0xC040, 0x20)
            .bar_mem32(5, 0x8100_0000, 0x1000, false)
            .msi64()
            .cap(
                crate::cap::CAP_ID_SATA,
                &[0x10, 0x00, 0x48, 0x00, 0, 0],
                &[],
            ),
    );
    s.add(
        0,
        0x1F,
        3,
        SimFn::new(0x8086, 0x2930, 0x0C_05_00, 0x02)
            .subsys(0x1AF4, 0x1100)
            .multi()
            .pin(1, 10)
            .bar_io(4, 0x0700, 0x40),
    );
    s.add(
        0,
        0x1C,
        0,
        SimFn::new(0x1B36, 0x000C, 0x06_04_00, 0x00)
            .bridge(0, 1, 1)
            .pcie(4)
            .msix(1, 0, 0x0),
    );
    s.add(
        1,
        0,
        0,
        SimFn::new(0x1AF4, 0x1041, 0x02_00_00, 0x01)
            .subsys(0x1AF4, 0x1100)
            .bar_mem32(1, 0x8120_0000, 0x1000, false)
            .bar_mem64(4, 0x8_0000_0000, 0x4000, true)
            .pm(0x4E03)
            .pcie(0)
            .msix(3, 1, 0),
    );
    s
}
