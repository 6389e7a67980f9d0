//! Host tests against the simulated q35 configuration space.

use crate::bar::BarKind;
use crate::cap::{PcieType, CAP_ID_MSI, CAP_ID_SATA};
use crate::enumerate::{brute_force_count, enumerate, Function};
use crate::header::HeaderType;
use crate::sim::{q35, SimConfig, SimFn};
use crate::{ids, mcfg, reg, Address, ConfigSpace};
use alloc::string::String;
use alloc::vec::Vec;

fn find(list: &[Function], vendor: u16, device: u16) -> &Function {
    list.iter()
        .find(|f| f.header.vendor_id == vendor && f.header.device_id == device)
        .expect("function not enumerated")
}

#[test]
fn enumerates_q35_with_bridge() {
    let cs = q35();
    let list = enumerate(&cs, 0, 0, 255);
    let addrs: Vec<String> = list
        .iter()
        .map(|f| alloc::format!("{}", f.address))
        .collect();
    assert_eq!(
        addrs,
        [
            "0000:00:00.0",
            "0000:00:1c.0",
            "0000:01:00.0",
            "0000:00:1f.0",
            "0000:00:1f.2",
            "0000:00:1f.3"
        ]
    );
    assert_eq!(list.len(), brute_force_count(&cs, 0, 0, 255));
    // Parents: the virtio function sits behind the root port.
    let port = list.iter().position(|f| f.header.is_bridge()).unwrap();
    assert_eq!(list[2].parent, Some(port));
    assert!(list
        .iter()
        .enumerate()
        .all(|(i, f)| i == 2 || f.parent.is_none()));
    let p = &list[port].header;
    assert_eq!(p.header_type, HeaderType::Bridge);
    assert_eq!(
        (p.primary_bus, p.secondary_bus, p.subordinate_bus),
        (0, 1, 1)
    );
    assert_eq!(list[port].pcie.unwrap().port_type, PcieType::RootPort);
}

#[test]
fn ahci_header_bars_and_capabilities() {
    let cs = q35();
    let list = enumerate(&cs, 0, 0, 255);
    let ahci = find(&list, 0x8086, 0x2922);
    assert_eq!(ahci.address, Address::new(0, 0, 0x1F, 2));
    assert_eq!(ahci.address.devfn(), 0xFA);
    assert_eq!(ahci.header.class_code(), 0x010601);
    assert_eq!(ahci.header.revision_id, 2);
    assert!(ahci.header.multi_function);
    assert_eq!(ahci.header.interrupt_pin, 1);
    assert_eq!(ahci.bars.len(), 2);
    let abar = ahci.bar(5).unwrap();
    assert_eq!(abar.kind, BarKind::Memory32);
    assert_eq!(
        (abar.base, abar.size, abar.prefetchable),
        (0x8100_0000, 0x1000, false)
    );
    let io = ahci.bar(4).unwrap();
    assert_eq!((io.kind, io.base, io.size), (BarKind::Io, 0xC040, 0x20));
    let ids: Vec<u8> = ahci.capabilities.iter().map(|c| c.id).collect();
    assert_eq!(ids, [CAP_ID_MSI, CAP_ID_SATA]);
    let msi = ahci.msi.unwrap();
    assert!(msi.is_64bit);
    assert_eq!(msi.messages_capable, 1);
    assert!(ahci.msix.is_none());
    // Sizing restored the BARs and the command register.
    let f = cs.get(0, 0x1F, 2);
    assert_eq!(f.cfg[4 + 5], 0x8100_0000);
    assert_eq!(f.cfg[4 + 4], 0xC041);
    assert_eq!(f.cfg[1] & 0xFFFF, 0x0007);
}

#[test]
fn bar_sizing_64bit_prefetchable_and_msix() {
    let cs = q35();
    let list = enumerate(&cs, 0, 0, 255);
    let v = find(&list, 0x1AF4, 0x1041);
    assert_eq!(v.bars.len(), 2);
    let b = v.bar(4).unwrap();
    assert_eq!(b.kind, BarKind::Memory64);
    assert!(b.prefetchable);
    assert_eq!((b.base, b.size), (0x8_0000_0000, 0x4000));
    assert!(v.bar(5).is_none(), "the upper half is not a BAR of its own");
    let x = v.msix.unwrap();
    assert_eq!((x.table_size, x.table_bar, x.table_offset), (3, 1, 0));
    assert_eq!(v.pcie.unwrap().port_type, PcieType::Endpoint);
}

#[test]
fn bar_sizing_turns_decoding_off_while_probing() {
    // A config space that records the command register at every BAR probe.
    struct Watch<'a>(&'a SimConfig, core::cell::RefCell<Vec<u32>>);
    impl ConfigSpace for Watch<'_> {
        fn read32(&self, a: Address, o: u16) -> u32 {
            self.0.read32(a, o)
        }
        fn write32(&self, a: Address, o: u16, v: u32) {
            if (0x10..0x28).contains(&o) && v == u32::MAX {
                self.1.borrow_mut().push(self.0.read32(a, reg::COMMAND) & 3);
            }
            self.0.write32(a, o, v)
        }
    }
    let sim = q35();
    let w = Watch(&sim, Default::default());
    let f = Function::probe(&w, Address::new(0, 0, 0x1F, 2), None).unwrap();
    assert_eq!(f.bars.len(), 2);
    let seen = w.1.borrow();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|&c| c == 0),
        "decoding was on during a probe"
    );
}

#[test]
fn hardware_and_compatible_ids_in_windows_format() {
    let cs = q35();
    let list = enumerate(&cs, 0, 0, 255);
    let h = &find(&list, 0x8086, 0x2922).header;
    assert_eq!(
        ids::hardware_ids(h),
        [
            "PCI\\VEN_8086&DEV_2922&SUBSYS_11001AF4&REV_02",
            "PCI\\VEN_8086&DEV_2922&SUBSYS_11001AF4",
            "PCI\\VEN_8086&DEV_2922&CC_010601",
            "PCI\\VEN_8086&DEV_2922&CC_0106",
        ]
    );
    assert_eq!(
        ids::compatible_ids(h),
        [
            "PCI\\VEN_8086&DEV_2922&REV_02",
            "PCI\\VEN_8086&DEV_2922",
            "PCI\\VEN_8086&CC_010601",
            "PCI\\VEN_8086&CC_0106",
            "PCI\\VEN_8086",
            "PCI\\CC_010601",
            "PCI\\CC_0106",
        ]
    );
    assert_eq!(
        ids::device_id(h),
        "PCI\\VEN_8086&DEV_2922&SUBSYS_11001AF4&REV_02"
    );
    assert_eq!(ids::instance_id(0xFA), "FA");
    assert_eq!(ids::instance_id(0x00), "00");
    assert_eq!(ids::critical_device_key("PCI\\CC_010601"), "pci#cc_010601");
    assert_eq!(
        ids::location_information(0, 31, 2),
        "PCI bus 0, device 31, function 2"
    );
    let lpc = &find(&list, 0x8086, 0x2918).header;
    assert_eq!(ids::hardware_ids(lpc)[3], "PCI\\VEN_8086&DEV_2918&CC_0601");
}

#[test]
fn multi_sz_and_parent_prefix() {
    let v = ids::multi_sz(&["AB".into(), "C".into()]);
    assert_eq!(v, [b'A', 0, b'B', 0, 0, 0, b'C', 0, 0, 0, 0, 0]);
    assert_eq!(ids::multi_sz(&[]), [0, 0]);
    // CRC-32 check value.
    assert_eq!(ids::crc32(b"123456789"), 0xCBF4_3926);
    let p = ids::parent_id_prefix(2, "acpi\\pnp0a08\\0", 0);
    assert_eq!(p, ids::parent_id_prefix(2, "ACPI\\PNP0A08\\0", 0));
    assert!(p.starts_with("2&") && p.ends_with("&0"));
    assert_ne!(p, ids::parent_id_prefix(2, "ACPI\\PNP0A08\\1", 0));
}

#[test]
fn msi_programming() {
    let cs = q35();
    let a = Address::new(0, 0, 0x1F, 2);
    let f = Function::probe(&cs, a, None).unwrap();
    let msi = f.msi.unwrap();
    assert_eq!(msi.current(&cs, a), None);
    let addr = crate::cap::x86_msi_address(3);
    assert_eq!(addr, 0xFEE0_3000);
    assert!(msi.enable(&cs, a, addr, crate::cap::x86_msi_data(0x51)));
    assert_eq!(msi.current(&cs, a), Some((0xFEE0_3000, 0x51)));
    assert_ne!(cs.read16(a, reg::COMMAND) & reg::COMMAND_INTX_DISABLE, 0);
    // Single message: multiple-message enable stays 0.
    assert_eq!((cs.read16(a, msi.offset as u16 + 2) >> 4) & 7, 0);
    msi.disable(&cs, a);
    assert_eq!(msi.current(&cs, a), None);
    assert_eq!(cs.read16(a, reg::COMMAND) & reg::COMMAND_INTX_DISABLE, 0);
    // A 32-bit capability refuses an address above 4 GiB.
    let s = SimConfig::default();
    s.add(
        0,
        3,
        0,
        SimFn::new(0x1234, 0x5678, 0x0, 0).cap(
            CAP_ID_MSI,
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0x0071_0000, 0xFFFF_FFFC, 0xFFFF],
        ),
    );
    let b = Address::new(0, 0, 3, 0);
    let m = Function::probe(&s, b, None).unwrap().msi.unwrap();
    assert!(!m.is_64bit);
    assert!(!m.enable(&s, b, 1 << 32, 0x40));
    assert!(m.enable(&s, b, 0xFEE0_0000, 0x40));
    assert_eq!(m.current(&s, b), Some((0xFEE0_0000, 0x40)));
}

#[test]
fn looping_capability_list_and_bridge_loops_end() {
    let s = SimConfig::default();
    let mut f = SimFn::new(0x1234, 0x0001, 0x0, 0).msi64();
    // Point the MSI capability's next pointer back at itself.
    f.cfg[0x40 / 4] |= 0x40 << 8;
    s.add(0, 0, 0, f);
    // A bridge whose secondary bus is its own bus, and one that points
    // back at bus 0 from bus 2.
    s.add(
        0,
        1,
        0,
        SimFn::new(0x1234, 0x0002, 0x060400, 0).bridge(0, 0, 0),
    );
    s.add(
        0,
        2,
        0,
        SimFn::new(0x1234, 0x0003, 0x060400, 0).bridge(0, 2, 2),
    );
    s.add(
        2,
        0,
        0,
        SimFn::new(0x1234, 0x0004, 0x060400, 0).bridge(2, 0, 0),
    );
    let list = enumerate(&s, 0, 0, 255);
    assert_eq!(list.len(), 4);
    assert_eq!(list[0].capabilities.len(), 1);
    assert_eq!(list.len(), brute_force_count(&s, 0, 0, 255));
}

#[test]
fn bus_range_limits_bridges_and_absent_functions() {
    let cs = q35();
    // Bus 1 is outside a window covering bus 0 only.
    let list = enumerate(&cs, 0, 0, 0);
    assert_eq!(list.len(), 5);
    assert!(crate::header::Header::read(&cs, Address::new(0, 0, 5, 0)).is_none());
}

fn mcfg_table(entries: &[(u64, u16, u8, u8)]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"MCFG");
    t.extend_from_slice(&((44 + 16 * entries.len()) as u32).to_le_bytes());
    t.push(1); // revision
    t.push(0); // checksum, fixed below
    t.extend_from_slice(b"BOCHS BXPC    \x01\x00\x00\x00BXPC\x01\x00\x00\x00");
    t.extend_from_slice(&[0; 8]);
    for &(base, seg, s, e) in entries {
        t.extend_from_slice(&base.to_le_bytes());
        t.extend_from_slice(&seg.to_le_bytes());
        t.push(s);
        t.push(e);
        t.extend_from_slice(&[0; 4]);
    }
    assert_eq!(t.len(), 44 + 16 * entries.len());
    let sum = t.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    t[9] = 0u8.wrapping_sub(sum);
    t
}

#[test]
fn mcfg_parse() {
    let t = mcfg_table(&[(0xB000_0000, 0, 0, 255)]);
    let e = mcfg::parse(&t).unwrap();
    assert_eq!(
        e,
        [mcfg::McfgEntry {
            base: 0xB000_0000,
            segment: 0,
            start_bus: 0,
            end_bus: 255
        }]
    );
    assert_eq!(e[0].window_size(), 256 << 20);
    let two = mcfg::parse(&mcfg_table(&[
        (0xB000_0000, 0, 0, 63),
        (0xE000_0000, 1, 16, 31),
    ]))
    .unwrap();
    assert_eq!(two[1].window_base(), 0xE000_0000 + (16 << 20));
    assert_eq!(two[1].window_size(), 16 << 20);
    assert_eq!(
        Address::new(1, 17, 2, 3).ecam_offset(16),
        (1 << 20) | (2 << 15) | (3 << 12)
    );
    // Damaged tables.
    let mut bad = t.clone();
    bad[50] ^= 1;
    assert_eq!(mcfg::parse(&bad), Err(mcfg::McfgError::BadChecksum));
    assert_eq!(mcfg::parse(&t[..40]), Err(mcfg::McfgError::Truncated));
    assert_eq!(mcfg::parse(&t[..50]), Err(mcfg::McfgError::Truncated));
    let mut sig = t.clone();
    sig[0] = b'X';
    assert_eq!(mcfg::parse(&sig), Err(mcfg::McfgError::BadSignature));
    assert_eq!(
        mcfg::parse(&mcfg_table(&[(0xB000_0000, 0, 9, 3)])),
        Err(mcfg::McfgError::BadBusRange)
    );
}

// ---- pci.sys's answers ----

#[test]
fn one_bus_scan_stops_at_bridges() {
    let cs = q35();
    let root = crate::enumerate::scan_one_bus(&cs, 0, 0);
    assert!(root
        .iter()
        .all(|f| f.address.bus == 0 && f.parent.is_none()));
    assert_eq!(root.len(), 5);
    let behind = crate::enumerate::scan_one_bus(&cs, 0, 1);
    assert_eq!(behind.len(), 1);
    assert_eq!(behind[0].header.vendor_id, 0x1AF4);
}

#[test]
fn ahci_requirements_match_its_bars() {
    use crate::answers::*;
    use wdk::pnp::*;
    let cs = q35();
    let list = enumerate(&cs, 0, 0, 255);
    let ahci = find(&list, 0x8086, 0x2922);
    let r = requirements(ahci);
    assert_eq!(r.slot_number, 0x1F | 2 << 5);
    let l = &r.lists[0];
    assert_eq!(l.len(), 4);
    // BAR4: 32 ports anywhere below 64 KiB, aligned to their size.
    assert_eq!(
        (l[0].ty, l[0].length, l[0].alignment, l[0].max),
        (CmResourceTypePort, 0x20, 0x20, 0xFFFF)
    );
    // BAR5 (ABAR): 4 KiB of 32-bit memory.
    assert_eq!(
        (l[1].ty, l[1].length, l[1].alignment, l[1].max),
        (CmResourceTypeMemory, 0x1000, 0x1000, 0xFFFF_FFFF)
    );
    // MSI, with the INTx line (10) as the alternative.
    assert!(l[2].is_message_interrupt() && !l[2].is_alternative());
    assert!(l[3].is_alternative() && l[3].min == 10 && l[3].max == 10);
    assert_eq!(l[3].share, CmResourceShareShared);
    // Round trip through the binary form the PnP manager parses.
    let b = pnp::reslist::encode_requirements(&r);
    assert_eq!(pnp::reslist::parse_requirements(&b).unwrap(), r);
    // Boot configuration = firmware's BARs.
    let boot = boot_config(ahci);
    assert_eq!(boot.descriptors.len(), 2);
    assert_eq!(boot.descriptors[1].Start(), 0x8100_0000);
    // The 64-bit prefetchable BAR of the device behind the bridge.
    let v = find(&list, 0x1AF4, 0x1041);
    let r = requirements(v);
    let m64 = r.lists[0].iter().find(|d| d.length == 0x4000).unwrap();
    assert_eq!(m64.max, u64::MAX);
    assert_eq!(m64.flags, CM_RESOURCE_MEMORY_PREFETCHABLE);
    // No MSI (only MSI-X) and no pin: no interrupt requirement.
    assert!(r.lists[0].iter().all(|d| d.ty != CmResourceTypeInterrupt));
}

#[test]
fn capabilities_from_power_management() {
    use wdk::pnp::*;
    let cs = q35();
    let list = enumerate(&cs, 0, 0, 255);
    let mut c = DEVICE_CAPABILITIES {
        UINumber: u32::MAX,
        ..Default::default()
    };
    crate::answers::capabilities(find(&list, 0x1AF4, 0x1041), &mut c);
    assert_eq!(c.Address, 0);
    assert_eq!(c.UINumber, u32::MAX);
    // PMC 0x4E03: D1, D2, PME from D0 and D3hot.
    assert_eq!(
        c.Bits,
        caps::DeviceD1 | caps::DeviceD2 | caps::WakeFromD0 | caps::WakeFromD3
    );
    assert_eq!(c.DeviceState[PowerSystemWorking as usize], PowerDeviceD0);
    assert_eq!(c.DeviceState[PowerSystemShutdown as usize], PowerDeviceD3);
    crate::answers::capabilities(find(&list, 0x8086, 0x2922), &mut c);
    assert_eq!(c.Address, 0x1F << 16 | 2);
    assert_eq!(c.Bits, 0, "no PM capability: no D1/D2, no wake");
    assert_eq!(
        crate::answers::location(find(&list, 0x8086, 0x2922).address),
        "PCI bus 0, device 31, function 2"
    );
}

#[test]
fn start_moves_a_bar_and_refuses_bad_plans() {
    use crate::answers::*;
    use wdk::pnp::CM_PARTIAL_RESOURCE_DESCRIPTOR as D;
    let cs = q35();
    let list = enumerate(&cs, 0, 0, 255);
    let ahci = find(&list, 0x8086, 0x2922).clone();
    let raw = [D::port(0xC040, 0x20), D::memory(0x8200_0000, 0x1000, false)];
    let plan = start_plan(&ahci, &raw).unwrap();
    assert_eq!(plan[1].1, 0x8200_0000);
    for (b, base) in &plan {
        assert!(program_bar(&cs, ahci.address, b, *base));
    }
    let again = Function::probe(&cs, ahci.address, None).unwrap();
    assert_eq!(again.bar(5).unwrap().base, 0x8200_0000);
    assert_eq!(again.bar(4).unwrap().base, 0xC040);
    assert_eq!(
        again.header.command, ahci.header.command,
        "command restored"
    );
    // Wrong length, missing descriptor, misaligned or out-of-range base.
    assert!(start_plan(
        &ahci,
        &[D::port(0xC040, 0x20), D::memory(0x8200_0000, 0x2000, false)]
    )
    .is_none());
    assert!(start_plan(&ahci, &[D::port(0xC040, 0x20)]).is_none());
    let abar = *ahci.bar(5).unwrap();
    assert!(!program_bar(&cs, ahci.address, &abar, 0x8200_0800));
    assert!(!program_bar(&cs, ahci.address, &abar, 0x1_0000_0000));
    enable_decoding(&cs, &ahci);
    disable_decoding(&cs, ahci.address);
    assert_eq!(cs.read16(ahci.address, crate::reg::COMMAND) & 7, 0);
}
