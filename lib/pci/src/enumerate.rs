//! Bus enumeration (what pci.sys answers to
//! `IRP_MN_QUERY_DEVICE_RELATIONS(BusRelations)`): every device number of a
//! bus, functions 1..7 of multi-function devices, and the buses behind
//! PCI-to-PCI bridges as firmware numbered them (ntrs does not renumber
//! buses or reassign resources: firmware's assignment is kept, as Windows
//! keeps a BIOS-configured hierarchy).

use crate::bar::{read_bars, Bar};
use crate::cap::CAP_ID_PCI_EXPRESS;
use crate::cap::{capabilities, Capability, Msi, MsiX, PciExpress, CAP_ID_MSI, CAP_ID_MSIX};
use crate::cap::{PowerManagement, CAP_ID_POWER_MANAGEMENT};
use crate::header::Header;
use crate::{Address, ConfigSpace};
use alloc::vec::Vec;

/// A function found by enumeration, with everything decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub address: Address,
    pub header: Header,
    pub bars: Vec<Bar>,
    pub capabilities: Vec<Capability>,
    pub msi: Option<Msi>,
    pub msix: Option<MsiX>,
    pub pcie: Option<PciExpress>,
    pub pm: Option<PowerManagement>,
    /// Index (in the enumeration's list) of the bridge this function sits
    /// behind; `None` on the root bus.
    pub parent: Option<usize>,
}

impl Function {
    /// Decodes the function at `addr`, if one answers there.
    pub fn probe(cs: &dyn ConfigSpace, addr: Address, parent: Option<usize>) -> Option<Function> {
        let header = Header::read(cs, addr)?;
        let bars = read_bars(cs, addr, &header);
        let caps = capabilities(cs, addr, &header);
        let find = |id| caps.iter().find(|c| c.id == id).map(|c| c.offset);
        let msi = find(CAP_ID_MSI).map(|o| Msi::read(cs, addr, o));
        let msix = find(CAP_ID_MSIX).map(|o| MsiX::read(cs, addr, o));
        let pcie = find(CAP_ID_PCI_EXPRESS).map(|o| PciExpress::read(cs, addr, o));
        let pm = find(CAP_ID_POWER_MANAGEMENT).map(|o| PowerManagement::read(cs, addr, o));
        Some(Function {
            address: addr,
            header,
            bars,
            capabilities: caps,
            msi,
            msix,
            pcie,
            pm,
            parent,
        })
    }

    /// The BAR with register index `index`, if implemented.
    pub fn bar(&self, index: u8) -> Option<&Bar> {
        self.bars.iter().find(|b| b.index == index)
    }
}

/// Enumerates root bus `root_bus` of `segment` and every bus below it
/// through bridges whose secondary bus lies in `root_bus..=max_bus` (the
/// MCFG entry's range). Functions come depth-first, in device/function
/// order, each bridge before the functions behind it. A bus is scanned at
/// most once, so a misprogrammed bridge cannot loop.
pub fn enumerate(cs: &dyn ConfigSpace, segment: u16, root_bus: u8, max_bus: u8) -> Vec<Function> {
    let mut out = Vec::new();
    let mut scanned = [false; 256];
    scan_bus(cs, segment, root_bus, max_bus, None, &mut scanned, &mut out);
    out
}

fn scan_bus(
    cs: &dyn ConfigSpace,
    segment: u16,
    bus: u8,
    max_bus: u8,
    parent: Option<usize>,
    scanned: &mut [bool; 256],
    out: &mut Vec<Function>,
) {
    if scanned[bus as usize] {
        return;
    }
    scanned[bus as usize] = true;
    for device in 0..32u8 {
        let Some(f0) = Function::probe(cs, Address::new(segment, bus, device, 0), parent) else {
            continue;
        };
        let functions = if f0.header.multi_function { 8 } else { 1 };
        let mut next = Some(f0);
        for function in 0..functions {
            let f = match next.take() {
                Some(f) => f,
                None => {
                    match Function::probe(cs, Address::new(segment, bus, device, function), parent)
                    {
                        Some(f) => f,
                        None => continue,
                    }
                }
            };
            let bridge = f.header.is_bridge().then_some(f.header.secondary_bus);
            let index = out.len();
            out.push(f);
            if let Some(secondary) = bridge {
                if secondary > bus && secondary <= max_bus {
                    scan_bus(cs, segment, secondary, max_bus, Some(index), scanned, out);
                }
            }
        }
    }
}

/// The functions of one bus, in device/function order, without going
/// behind bridges (what pci.sys's FDO of that bus answers to
/// `BusRelations`: each bridge gets its own FDO, which scans its secondary
/// bus).
pub fn scan_one_bus(cs: &dyn ConfigSpace, segment: u16, bus: u8) -> Vec<Function> {
    let mut out = Vec::new();
    for device in 0..32u8 {
        let Some(f0) = Function::probe(cs, Address::new(segment, bus, device, 0), None) else {
            continue;
        };
        let functions = if f0.header.multi_function { 8 } else { 1 };
        out.push(f0);
        for function in 1..functions {
            if let Some(f) = Function::probe(cs, Address::new(segment, bus, device, function), None)
            {
                out.push(f);
            }
        }
    }
    out
}

/// Counts the functions that answer on every bus/device/function of
/// `segment` in `start_bus..=end_bus`, by reading vendor IDs only (the
/// brute-force check the enumeration is tested against).
pub fn brute_force_count(cs: &dyn ConfigSpace, segment: u16, start_bus: u8, end_bus: u8) -> usize {
    let mut n = 0;
    for bus in start_bus..=end_bus {
        for device in 0..32u8 {
            for function in 0..8u8 {
                let v = cs.read32(Address::new(segment, bus, device, function), 0) as u16;
                if v != 0xFFFF && v != 0 {
                    n += 1;
                }
            }
        }
    }
    n
}
