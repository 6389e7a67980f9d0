//! Boot tests of the PnP manager and pci.sys.

use super::interrupt::{self, InterruptAssignment};
use super::resource::*;
use super::*;
use crate::ktest::{check, wait_until, Test, TestResult};
use ::pci::ConfigSpace;
use core::sync::atomic::AtomicU64;

pub const TESTS: &[Test] = &[
    ("pnp.mcfg_ecam_window", t_mcfg),
    ("pnp.pci_sys_loaded", t_pci_sys),
    ("pnp.ahci_found_with_abar", t_ahci),
    ("pnp.ahci_requirements_match_bars", t_ahci_requirements),
    ("pnp.pdo_capabilities_bus_info_text", t_capabilities),
    ("pnp.tree_matches_brute_force", t_brute_force),
    ("pnp.enum_keys_written", t_enum_keys),
    ("pnp.ahci_msi_and_resources", t_ahci_msi),
    ("pnp.arbiter_keeps_firmware_assignment", t_arbiter_firmware),
    ("pnp.intx_interrupt_through_ioapic", t_intx),
    ("pnp.connect_checks_vector", t_connect_checks),
    ("pnp.bus_relations_give_pdos", t_bus_relations),
    ("pnp.add_device_and_start_device", t_add_device),
    ("pnp.arbiter_conflict_moves_then_fails", t_conflict),
];

fn ahci() -> Result<&'static DeviceNode, &'static str> {
    find_pci_device(0x8086, 0x2922).ok_or("the ICH9 AHCI controller 8086:2922 was not enumerated")
}

/// Configuration space as the tests read it (through the ECAM windows,
/// independently of pci.sys).
const CS: ecam::AllWindows = ecam::AllWindows;

fn t_mcfg() -> TestResult {
    let m = read_mcfg().map_err(|_| "no MCFG table")?;
    check(!m.is_empty(), "MCFG has no allocation")?;
    let e = m[0];
    check(
        e.base != 0 && e.base & 0xF_FFFF == 0,
        "ECAM base not 1 MiB aligned",
    )?;
    check(e.start_bus == 0, "first window does not start at bus 0")?;
    let w = ecam::windows();
    check(w.len() == m.len(), "a window was not used")?;
    check(
        w[0].mapped_buses() >= 1,
        "the root bus of the window is not mapped",
    )
}

/// pci.sys is a loaded image (`lm` lists it), `\Driver\pci` is its
/// driver object, its FDO sits on the root bus PDO and owns every PCI PDO;
/// the kernel has no built-in PCI driver.
fn t_pci_sys() -> TestResult {
    use wdk::*;
    let m = crate::mm::ldr::loaded_modules();
    let pci = m
        .iter()
        .find(|e| e.base_dll_name.eq_ignore_ascii_case("pci.sys"))
        .ok_or("pci.sys is not in the loaded module list")?;
    check(
        pci.full_dll_name.ends_with("\\drivers\\pci.sys"),
        "pci.sys's path",
    )?;
    let drv = crate::io::driver::find_driver("\\Driver\\pci").ok_or("no \\Driver\\pci")?;
    // SAFETY: a live driver object; its DriverStart is its image's base.
    let start = unsafe { (*drv).DriverStart } as u64;
    check(
        start == pci.dll_base,
        "\\Driver\\pci does not belong to the pci.sys image",
    )?;
    let tree = device_tree().ok_or("no tree")?;
    let bus = tree.children(0).next().ok_or("no root bus")?;
    let bus_pdo = bus.pdo.load(Ordering::Acquire) as *mut DEVICE_OBJECT;
    // SAFETY: device objects of live device nodes stay allocated.
    unsafe {
        let fdo = (*bus_pdo).AttachedDevice;
        check(
            !fdo.is_null() && (*fdo).DriverObject == drv,
            "no pci.sys FDO over the root bus PDO",
        )?;
    }
    for n in tree.pci_nodes() {
        let pdo = n.pdo.load(Ordering::Acquire) as *mut DEVICE_OBJECT;
        check(!pdo.is_null(), "a PCI function has no PDO")?;
        // SAFETY: as above.
        let owner = unsafe { (*pdo).DriverObject };
        check(owner == drv, "a PCI PDO not owned by pci.sys")?;
    }
    Ok(())
}

/// BAR `index` as firmware (or pci.sys at START) programmed it, read
/// from configuration space: (base, is_io).
fn bar_register(a: ::pci::Address, index: u8) -> (u64, bool) {
    let v = CS.read32(a, 0x10 + 4 * index as u16);
    if v & 1 == 1 {
        ((v & !3) as u64, true)
    } else {
        let mut b = (v & !0xF) as u64;
        if (v >> 1) & 3 == 2 {
            b |= (CS.read32(a, 0x14 + 4 * index as u16) as u64) << 32;
        }
        (b, false)
    }
}

fn t_ahci() -> TestResult {
    let n = ahci()?;
    let a = n
        .pci_address()
        .ok_or("no PCI address from the bus's answers")?;
    check(
        (a.device, a.function) == (0x1F, 2),
        "QEMU's AHCI is at 00:1f.2",
    )?;
    check(CS.read32(a, 8) >> 8 == 0x010601, "class code is not 010601")?;
    let (abar, io) = bar_register(a, 5);
    check(
        !io && abar != 0 && abar & 0xFFF == 0,
        "BAR5 (ABAR) not memory/aligned",
    )?;
    let r = n.resources().ok_or("no resources")?;
    check(
        r.raw.descriptors().iter().any(|d| {
            d.Type == CM_RESOURCE_TYPE_MEMORY && d.Start() == abar && d.Length() == 0x1000
        }),
        "the assigned memory range is not BAR5",
    )?;
    check(
        n.instance_path
            .starts_with("PCI\\VEN_8086&DEV_2922&SUBSYS_")
            && n.instance_path
                .ends_with(&alloc::format!("&{:02X}", a.devfn())),
        "instance path shape",
    )?;
    check(
        n.hardware_ids.get(2).map(String::as_str) == Some("PCI\\VEN_8086&DEV_2922&CC_010601"),
        "hardware ID with class code",
    )?;
    check(
        n.service_name() == Some("storahci"),
        "service not matched to storahci",
    )?;
    let tree = device_tree().ok_or("no tree")?;
    let parent = tree
        .node(n.parent.ok_or("no parent")?)
        .ok_or("no parent node")?;
    check(
        parent.instance_path.starts_with("ACPI\\PNP0A08\\"),
        "parent is not the PCI root bus",
    )?;
    check(
        parent.service_name() == Some("pci"),
        "the root bus's service is not pci",
    )
}

/// pci.sys's IO_RESOURCE_REQUIREMENTS_LIST for the AHCI function: BAR4
/// (32 I/O ports) and BAR5 (4 KiB of 32-bit memory, QEMU's ICH9 model
/// sizes) with alignment = size, then one MSI message with the INTx line
/// from the Interrupt Line register as its alternative. Its boot
/// configuration is the BARs' current values.
fn t_ahci_requirements() -> TestResult {
    use wdk::pnp::*;
    let n = ahci()?;
    let a = n.pci_address().ok_or("no address")?;
    let req = n.bus.requirements.as_ref().ok_or("no requirements list")?;
    check(req.lists.len() == 1, "one alternative list")?;
    check(
        req.interface_type == PCIBus && req.slot_number == 0x1F | 2 << 5,
        "interface type / slot number",
    )?;
    let l = &req.lists[0];
    let port = l
        .iter()
        .find(|d| d.ty == CmResourceTypePort)
        .ok_or("no port range")?;
    let mem = l
        .iter()
        .find(|d| d.ty == CmResourceTypeMemory)
        .ok_or("no memory range")?;
    check(
        port.length == 0x20 && port.alignment == 0x20 && port.max == 0xFFFF,
        "BAR4 requirement",
    )?;
    check(
        mem.length == 0x1000 && mem.alignment == 0x1000 && mem.max == 0xFFFF_FFFF,
        "BAR5 requirement",
    )?;
    check(
        mem.flags & CM_RESOURCE_MEMORY_PREFETCHABLE == 0,
        "ABAR is not prefetchable",
    )?;
    let ints: Vec<_> = l
        .iter()
        .filter(|d| d.ty == CmResourceTypeInterrupt)
        .collect();
    check(ints.len() == 2, "MSI and line alternatives")?;
    check(
        ints[0].is_message_interrupt() && !ints[0].is_alternative(),
        "first interrupt choice is a message",
    )?;
    let line = CS.read32(a, 0x3C) as u8;
    check(
        ints[1].is_alternative() && ints[1].min == line as u64 && ints[1].max == line as u64,
        "the line alternative is the Interrupt Line register",
    )?;
    let boot = &n.bus.boot_config;
    let (b4, _) = bar_register(a, 4);
    let (b5, _) = bar_register(a, 5);
    check(
        boot.iter()
            .any(|d| d.Type == CmResourceTypePort && d.Start() == b4 && d.Length() == 0x20)
            && boot
                .iter()
                .any(|d| d.Type == CmResourceTypeMemory && d.Start() == b5 && d.Length() == 0x1000),
        "boot configuration is not the BARs",
    )
}

/// IRP_MN_QUERY_CAPABILITIES, QUERY_BUS_INFORMATION and QUERY_DEVICE_TEXT
/// sent to the AHCI PDO now answer as the node recorded them.
fn t_capabilities() -> TestResult {
    use wdk::pnp::*;
    use wdk::*;
    let n = ahci()?;
    let pdo = n.pdo.load(Ordering::Acquire) as *mut DEVICE_OBJECT;
    check(!pdo.is_null(), "no PDO")?;
    let mut caps = DEVICE_CAPABILITIES {
        Size: core::mem::size_of::<DEVICE_CAPABILITIES>() as u16,
        Version: 1,
        Address: u32::MAX,
        UINumber: u32::MAX,
        ..Default::default()
    };
    let p = IO_STACK_LOCATION_PARAMETERS {
        DeviceCapabilities: DeviceCapabilitiesParameters {
            Capabilities: (&raw mut caps).cast(),
        },
    };
    // SAFETY: a live PDO; `caps` outlives the synchronous IRP.
    let (s, _) = unsafe { devices::send_pnp_irp(pdo, IRP_MN_QUERY_CAPABILITIES, p) };
    check(s == STATUS_SUCCESS, "QUERY_CAPABILITIES failed")?;
    check(
        caps.Address == 0x1F << 16 | 2,
        "Address is not device << 16 | function",
    )?;
    check(
        caps.Size == 64 && caps.Version == 1 && caps.UINumber == u32::MAX,
        "Size/Version/UINumber changed",
    )?;
    check(
        caps.DeviceState[PowerSystemWorking as usize] == PowerDeviceD0
            && caps.DeviceState[PowerSystemShutdown as usize] == PowerDeviceD3,
        "DeviceState mapping",
    )?;
    // ICH9 AHCI in QEMU has no power management capability: no D1/D2.
    let a = n.pci_address().ok_or("no address")?;
    let hdr = ::pci::header::Header::read(&CS, a).ok_or("no header")?;
    let has_pm = ::pci::cap::capabilities(&CS, a, &hdr)
        .iter()
        .any(|c| c.id == ::pci::cap::CAP_ID_POWER_MANAGEMENT);
    check(
        has_pm || caps.Bits & (caps::DeviceD1 | caps::DeviceD2) == 0,
        "D1/D2 claimed without a PM capability",
    )?;
    check(
        Some(caps) == n.bus.capabilities,
        "the node recorded other capabilities",
    )?;
    let bi = n.bus.bus_information.ok_or("no bus information")?;
    check(
        bi.BusTypeGuid == GUID_BUS_TYPE_PCI && bi.LegacyBusType == PCIBus && bi.BusNumber == 0,
        "PNP_BUS_INFORMATION",
    )?;
    check(
        n.bus.location.as_deref() == Some("PCI bus 0, device 31, function 2"),
        "LocationInformation text",
    )?;
    check(
        n.bus.description.as_deref() == Some("SATA controller (AHCI)"),
        "description text",
    )
}

fn t_brute_force() -> TestResult {
    let mut expected = 0;
    for w in ecam::windows() {
        expected += ecam::brute_force_count(&w.entry).map_err(|_| "cannot map a bus")?;
    }
    let found = pci_devices().len();
    crate::dbg_println!("pnp: {found} PCI functions in the tree, {expected} by brute force");
    check(found > 0, "no PCI functions")?;
    check(
        found == expected,
        "tree device count differs from a brute-force scan",
    )
}

fn t_enum_keys() -> TestResult {
    use crate::cm::*;
    let n = ahci()?;
    let key = alloc::format!("{}\\{}", registry::ENUM_ROOT, n.instance_path);
    let h = nt_open_key(&key, KEY_READ, crate::ob::object::Mode::KernelMode)
        .map_err(|_| "the instance key is missing")?;
    let hw = nt_query_value_key(h, "HardwareID", crate::ob::object::Mode::KernelMode);
    let compat = nt_query_value_key(h, "CompatibleIDs", crate::ob::object::Mode::KernelMode);
    let svc = nt_query_value_key(h, "Service", crate::ob::object::Mode::KernelMode);
    let loc = nt_query_value_key(
        h,
        "LocationInformation",
        crate::ob::object::Mode::KernelMode,
    );
    crate::ob::handle::nt_close(h);
    check(
        hw == Ok((REG_MULTI_SZ, ::pci::ids::multi_sz(&n.hardware_ids))),
        "HardwareID is not the REG_MULTI_SZ of the hardware IDs",
    )?;
    check(
        compat == Ok((REG_MULTI_SZ, ::pci::ids::multi_sz(&n.compatible_ids))),
        "CompatibleIDs value",
    )?;
    check(
        svc == Ok((REG_SZ, registry::reg_sz("storahci"))),
        "Service value",
    )?;
    check(
        loc == Ok((REG_SZ, registry::reg_sz("PCI bus 0, device 31, function 2"))),
        "LocationInformation value",
    )
}

fn t_ahci_msi() -> TestResult {
    let n = ahci()?;
    let a = n.pci_address().ok_or("no address")?;
    let r = n
        .resources()
        .ok_or("no resources assigned to the AHCI controller")?;
    let Some(InterruptAssignment::Message {
        vector,
        apic_id,
        address,
        data,
        ..
    }) = r.interrupt
    else {
        return Err("the AHCI controller did not get a message-signaled interrupt");
    };
    check(
        interrupt::msi_state(a) == Some((address, data)),
        "the MSI capability does not hold the assigned message",
    )?;
    check(
        address == 0xFEE0_0000 | (apic_id as u64) << 12 && data == vector as u16,
        "MSI address/data do not target the vector",
    )?;
    // Raw and translated lists: ABAR memory, then the message interrupt.
    let raw = r.raw.descriptors();
    let tr = r.translated.descriptors();
    let (abar, _) = bar_register(a, 5);
    check(
        tr.iter().any(|d| {
            d.Type == CM_RESOURCE_TYPE_MEMORY && d.Start() == abar && d.Length() == 0x1000
        }),
        "translated list lacks the ABAR",
    )?;
    let ti = tr
        .iter()
        .find(|d| d.Type == CM_RESOURCE_TYPE_INTERRUPT)
        .ok_or("no interrupt")?;
    let ri = raw
        .iter()
        .find(|d| d.Type == CM_RESOURCE_TYPE_INTERRUPT)
        .ok_or("no raw interrupt")?;
    check(
        ti.Vector() == vector as u32
            && ti.Level() as u8 == vector >> 4
            && ti.Flags & CM_RESOURCE_INTERRUPT_MESSAGE != 0,
        "translated interrupt descriptor",
    )?;
    check(
        ri.Vector() == CM_RESOURCE_INTERRUPT_MESSAGE_TOKEN,
        "raw message descriptor's vector is not the message token",
    )?;
    check(
        r.raw.byte_len() == 20 + 20 * raw.len(),
        "CM_RESOURCE_LIST size",
    )?;
    check(
        n.state() == DEVICE_NODE_RESOURCES_ASSIGNED || n.state() == DEVICE_NODE_STARTED,
        "AHCI node state",
    )
}

/// With no conflict the arbiters give every device what firmware
/// programmed (its boot configuration), and hold exactly those ranges for
/// it; no two devices' exclusive ranges overlap.
fn t_arbiter_firmware() -> TestResult {
    use ::pnp::arbiter::Owner;
    use ::pnp::ResourceKind;
    let tree = device_tree().ok_or("no tree")?;
    let mut checked = 0;
    for n in tree.pci_nodes() {
        let Some(r) = n.resources() else { continue };
        for d in r.raw.descriptors() {
            let kind = match d.Type {
                CM_RESOURCE_TYPE_MEMORY => ResourceKind::Memory,
                CM_RESOURCE_TYPE_PORT => ResourceKind::Port,
                _ => continue,
            };
            check(
                n.bus.boot_config.iter().any(|b| {
                    b.Type == d.Type && b.Start() == d.Start() && b.Length() == d.Length()
                }),
                "an assigned range differs from the boot configuration",
            )?;
            let held = arb::with(|a| {
                a.get(kind).allocations().iter().any(|x| {
                    x.owner == Owner::Device(n.address())
                        && x.start == d.Start()
                        && x.end == d.Start() + d.Length() as u64 - 1
                })
            });
            check(
                held == Some(true),
                "the arbiter does not hold the range for the device",
            )?;
            checked += 1;
        }
    }
    check(checked >= 2, "no device ranges to compare")?;
    for kind in [ResourceKind::Memory, ResourceKind::Port] {
        let ok = arb::with(|a| {
            let v = a.get(kind).allocations();
            v.iter().enumerate().all(|(i, x)| {
                v[i + 1..].iter().all(|y| {
                    !matches!((x.owner, y.owner), (Owner::Device(_), Owner::Device(_)))
                        || x.end < y.start
                        || y.end < x.start
                        || (x.shared && y.shared)
                })
            })
        });
        check(ok == Some(true), "two devices' ranges overlap")?;
    }
    Ok(())
}

// ---- INTx through the I/O APIC: the ICH9 SMBus controller ----

static SMBUS_BASE: AtomicU64 = AtomicU64::new(0);
static SMBUS_ISR_IRQL: AtomicU64 = AtomicU64::new(0);

const HST_STS: u16 = 0;
const HST_CNT: u16 = 2;
const XMIT_SLVA: u16 = 4;

fn smbus_isr(_: usize) -> bool {
    let base = SMBUS_BASE.load(Ordering::SeqCst) as u16;
    let sts = crate::hal::inb(base + HST_STS);
    if sts & 0x1E == 0 {
        return false;
    }
    SMBUS_ISR_IRQL.store(crate::ke::irql() as u64, Ordering::SeqCst);
    // Write-1-to-clear the completion/error bits: the line deasserts.
    crate::hal::outb(base + HST_STS, sts & 0x1E);
    true
}

/// A quick command to an absent SMBus address with INTREN set ends in a
/// device error and the controller raises INTx, which reaches the service
/// routine through the I/O APIC route the PnP manager set up.
fn t_intx() -> TestResult {
    let n = find_pci_device(0x8086, 0x2930).ok_or("no ICH9 SMBus controller")?;
    let addr = n.pci_address().ok_or("no address")?;
    assign_resources(n).map_err(|_| "resource assignment failed")?;
    let io = smbus_port(n)?;
    let a = n
        .resources()
        .and_then(|r| r.interrupt)
        .ok_or("the SMBus controller got no interrupt (no INTx line from firmware)")?;
    check(!a.is_message(), "SMBus has no MSI capability")?;
    let cs = &CS;
    // I/O decoding on, host controller enabled (HOSTC.HST_EN, offset 0x40).
    let cmd = cs.read16(addr, 4);
    cs.write32(addr, 4, (cmd | 1) as u32);
    let hostc = cs.read32(addr, 0x40);
    cs.write32(addr, 0x40, hostc | 1);
    let base = io as u16;
    SMBUS_BASE.store(base as u64, Ordering::SeqCst);
    SMBUS_ISR_IRQL.store(0, Ordering::SeqCst);
    let conn = interrupt::connect_kernel(n, smbus_isr, 0).map_err(|_| "connect failed")?;
    crate::hal::outb(base + HST_STS, 0xFE);
    crate::hal::outb(base + XMIT_SLVA, (0x5A << 1) | 1);
    crate::hal::outb(base + HST_CNT, 0x40 | 0x01); // START, quick command, INTREN
    let ok = wait_until(2000, || conn.interrupt().count() >= 1);
    let count = conn.interrupt().count();
    let irql = SMBUS_ISR_IRQL.load(Ordering::SeqCst);
    crate::hal::outb(base + HST_CNT, 0);
    drop(conn);
    cs.write32(addr, 0x40, hostc);
    cs.write32(addr, 4, cmd as u32);
    check(ok, "no SMBus interrupt reached the service routine")?;
    check(count >= 1, "interrupt count")?;
    check(
        irql == a.irql() as u64,
        "the service routine did not run at the device IRQL",
    )
}

fn t_connect_checks() -> TestResult {
    unsafe extern "system" fn isr(_: wdk::pnp::PKINTERRUPT, _: *mut core::ffi::c_void) -> u8 {
        0
    }
    let mut obj: wdk::pnp::PKINTERRUPT = core::ptr::null_mut();
    // Vector 0xD1 is the clock; no device has it.
    // SAFETY: valid out pointer, a real routine.
    let s = unsafe {
        interrupt::IoConnectInterrupt(
            &mut obj,
            Some(isr),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            0xD1,
            0xD,
            0xD,
            0,
            0,
            1,
            0,
        )
    };
    check(
        s == STATUS_INVALID_PARAMETER,
        "a vector no device owns was connected",
    )?;
    // A device's vector at the wrong IRQL is refused too. (The SMBus
    // controller's, assigned by pnp.intx_interrupt_through_ioapic: the AHCI
    // controller's belongs to storahci once the storage stack is up.)
    let a = find_pci_device(0x8086, 0x2930)
        .ok_or("no ICH9 SMBus controller")?
        .resources()
        .and_then(|r| r.interrupt)
        .ok_or("no SMBus interrupt")?;
    // SAFETY: as above.
    let s = unsafe {
        interrupt::IoConnectInterrupt(
            &mut obj,
            Some(isr),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            a.vector() as u32,
            a.irql() - 1,
            a.irql(),
            0,
            0,
            1,
            0,
        )
    };
    check(s == STATUS_INVALID_PARAMETER, "wrong IRQL accepted")?;
    // The right one connects; KeSynchronizeExecution runs at the
    // synchronize IRQL; then it disconnects.
    // SAFETY: as above.
    let s = unsafe {
        interrupt::IoConnectInterrupt(
            &mut obj,
            Some(isr),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            a.vector() as u32,
            a.irql(),
            a.irql(),
            0,
            0,
            1,
            0,
        )
    };
    check(
        s == STATUS_SUCCESS && !obj.is_null(),
        "IoConnectInterrupt failed",
    )?;
    static SEEN: AtomicU64 = AtomicU64::new(0);
    unsafe extern "system" fn sync(_: *mut core::ffi::c_void) -> u8 {
        SEEN.store(crate::ke::irql() as u64, Ordering::SeqCst);
        1
    }
    // SAFETY: `obj` is connected.
    let r = unsafe { interrupt::KeSynchronizeExecution(obj, Some(sync), core::ptr::null_mut()) };
    // SAFETY: `obj` came from IoConnectInterrupt.
    unsafe { interrupt::IoDisconnectInterrupt(obj) };
    check(r == 1, "KeSynchronizeExecution result")?;
    check(
        SEEN.load(Ordering::SeqCst) == a.irql() as u64,
        "the synchronize routine did not run at the synchronize IRQL",
    )?;
    check(crate::ke::irql() == 0, "IRQL not restored")
}

fn t_bus_relations() -> TestResult {
    use wdk::*;
    let tree = device_tree().ok_or("no tree")?;
    let pnpmgr =
        crate::io::driver::find_driver("\\Driver\\PnpManager").ok_or("no \\Driver\\PnpManager")?;
    let root_pdo = tree.root().pdo.load(Ordering::Acquire) as *mut DEVICE_OBJECT;
    check(!root_pdo.is_null(), "the root has no PDO")?;
    // SAFETY: device objects of live device nodes stay allocated.
    let root_driver = unsafe { (*root_pdo).DriverObject };
    check(root_driver == pnpmgr, "root PDO's driver")?;
    let bus = tree.children(0).next().ok_or("no root bus")?;
    check(
        bus.state() == DEVICE_NODE_STARTED,
        "the PCI root bus is not started",
    )?;
    let bus_pdo = bus.pdo.load(Ordering::Acquire) as *mut DEVICE_OBJECT;
    // SAFETY: as above.
    let bus_driver = unsafe { (*bus_pdo).DriverObject };
    check(bus_driver == pnpmgr, "bus PDO's driver")?;
    for n in tree.pci_nodes() {
        let pdo = n.pdo.load(Ordering::Acquire) as *mut DEVICE_OBJECT;
        check(!pdo.is_null(), "a PCI function has no PDO")?;
        // The bus driver's IRP_MN_QUERY_ID answers are the node's IDs.
        // SAFETY: a live PDO.
        let (hw, compat, dev, inst) = unsafe {
            (
                devices::query_ids(pdo, BUS_QUERY_HARDWARE_IDS),
                devices::query_ids(pdo, BUS_QUERY_COMPATIBLE_IDS),
                devices::query_ids(pdo, BUS_QUERY_DEVICE_ID),
                devices::query_ids(pdo, BUS_QUERY_INSTANCE_ID),
            )
        };
        check(
            hw.as_ref() == Some(&n.hardware_ids),
            "QUERY_ID hardware IDs",
        )?;
        check(
            compat.as_ref() == Some(&n.compatible_ids),
            "QUERY_ID compatible IDs",
        )?;
        let (dev, inst) = (dev.ok_or("no device ID")?, inst.ok_or("no instance ID")?);
        check(
            n.instance_path.starts_with(&alloc::format!("{}\\", dev[0]))
                && n.instance_path.ends_with(&alloc::format!("&{}", inst[0])),
            "QUERY_ID device/instance ID do not form the instance path",
        )?;
        // The instance ID is the devfn (pci.sys's form).
        let a = n.pci_address().ok_or("no address")?;
        check(
            inst[0] == alloc::format!("{:02X}", a.devfn()),
            "instance ID is not the devfn",
        )?;
        // SAFETY: as above.
        unsafe {
            check(
                (*pdo).Flags & DO_BUS_ENUMERATED_DEVICE != 0
                    && (*pdo).Flags & DO_DEVICE_INITIALIZING == 0,
                "PDO flags",
            )?;
        }
    }
    Ok(())
}

static TEST_PDO: AtomicU64 = AtomicU64::new(0);
static TEST_LOWER: AtomicU64 = AtomicU64::new(0);
static TEST_START_PORT: AtomicU64 = AtomicU64::new(0);
static TEST_START_COUNTS: AtomicU64 = AtomicU64::new(0);

unsafe extern "system" fn test_entry(
    d: *mut wdk::DRIVER_OBJECT,
    _r: *mut wdk::UNICODE_STRING,
) -> NtStatus {
    // SAFETY: the I/O manager passes the new driver object.
    unsafe {
        (*(*d).DriverExtension).AddDevice = Some(test_add_device);
        (*d).MajorFunction[wdk::IRP_MJ_PNP as usize] = Some(test_pnp);
    }
    STATUS_SUCCESS
}

unsafe extern "system" fn test_add_device(
    d: *mut wdk::DRIVER_OBJECT,
    pdo: *mut wdk::DEVICE_OBJECT,
) -> NtStatus {
    TEST_PDO.store(pdo as u64, Ordering::SeqCst);
    // SAFETY: `d` is this driver's object, `pdo` a live PDO.
    unsafe {
        let fdo = match crate::io::device::io_create_device(d, 8, None, 0x22, 0, false) {
            Ok(f) => f,
            Err(s) => return s,
        };
        let lower = crate::io::device::io_attach_device_to_device_stack(fdo, pdo);
        TEST_LOWER.store(lower as u64, Ordering::SeqCst);
        (*fdo).Flags &= !wdk::DO_DEVICE_INITIALIZING;
    }
    STATUS_SUCCESS
}

unsafe extern "system" fn test_pnp(_dev: *mut wdk::DEVICE_OBJECT, irp: *mut wdk::IRP) -> NtStatus {
    // SAFETY: the dispatch routine owns the IRP.
    unsafe {
        let sl = wdk::IoGetCurrentIrpStackLocation(irp);
        if (*sl).MinorFunction == wdk::IRP_MN_START_DEVICE {
            let p = (*sl).Parameters.StartDevice;
            let raw = wdk::pnp::partial_descriptors(p.AllocatedResources.cast());
            let tr = wdk::pnp::partial_descriptors(p.AllocatedResourcesTranslated.cast());
            TEST_START_COUNTS.store((raw.len() as u64) << 32 | tr.len() as u64, Ordering::SeqCst);
            if let Some(d) = tr.iter().find(|d| d.Type == wdk::pnp::CmResourceTypePort) {
                TEST_START_PORT.store(d.Start(), Ordering::SeqCst);
            }
        }
        // A function driver passes PnP IRPs down to the bus driver's PDO.
        wdk::IoSkipCurrentIrpStackLocation(irp);
        crate::io::irp::iof_call_driver(
            TEST_LOWER.load(Ordering::SeqCst) as *mut wdk::DEVICE_OBJECT,
            irp,
        )
    }
}

/// A driver's AddDevice gets the node's PDO and its FDO receives
/// IRP_MN_START_DEVICE with the node's raw and translated resources; the
/// PCI PDO (pci.sys) below turns on decoding and bus mastering; the node is
/// started.
fn t_add_device() -> TestResult {
    let tree = device_tree().ok_or("no tree")?;
    let n = find_pci_device(0x8086, 0x2930).ok_or("no SMBus controller")?;
    let a = n.pci_address().ok_or("no address")?;
    let io = smbus_port(n)?;
    let h = crate::io::driver::create_driver_object(
        "\\Driver\\PnpTest",
        test_entry,
        "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\PnpTest",
        (0, 0),
        core::ptr::null_mut(),
    )
    .map_err(|_| "cannot create the test driver")?;
    TEST_DRIVER.store(h.driver as u64, Ordering::SeqCst);
    // SAFETY: a live driver object just created.
    unsafe { devices::add_and_start(tree, n, h.driver) }.map_err(|_| "add/start failed")?;
    check(
        TEST_PDO.load(Ordering::SeqCst) == n.pdo.load(Ordering::Acquire),
        "AddDevice did not get the node's PDO",
    )?;
    let counts = TEST_START_COUNTS.load(Ordering::SeqCst);
    let r = n.resources().ok_or("no resources")?;
    check(
        counts >> 32 == r.raw.descriptors().len() as u64
            && counts & 0xFFFF_FFFF == r.translated.descriptors().len() as u64
            && counts != 0,
        "START_DEVICE did not carry the node's resource lists",
    )?;
    check(
        TEST_START_PORT.load(Ordering::SeqCst) == io,
        "the translated port is not the SMBus BAR",
    )?;
    check(n.state() == DEVICE_NODE_STARTED, "node not started")?;
    let cmd = CS.read16(a, ::pci::reg::COMMAND);
    check(
        cmd & (::pci::reg::COMMAND_IO | ::pci::reg::COMMAND_BUS_MASTER)
            == (::pci::reg::COMMAND_IO | ::pci::reg::COMMAND_BUS_MASTER),
        "the PCI PDO did not enable I/O decoding and bus mastering",
    )?;
    // SAFETY: as above.
    check(
        unsafe { devices::add_and_start(tree, n, h.driver) }.is_err(),
        "AddDevice ran twice for one node",
    )
}

static TEST_DRIVER: AtomicU64 = AtomicU64::new(0);

/// The SMBus controller's assigned I/O range.
fn smbus_port(n: &DeviceNode) -> Result<u64, &'static str> {
    n.resources()
        .ok_or("no resources")?
        .raw
        .descriptors()
        .iter()
        .find(|d| d.Type == CM_RESOURCE_TYPE_PORT)
        .map(|d| d.Start())
        .ok_or("no I/O range")
}

/// A test reservation over the SMBus controller's I/O range makes a
/// rebalance move it (STOP, new assignment, START: pci.sys programs BAR4
/// to the new range, which the driver's START sees); reserving every
/// port makes it fail with CM_PROB_NORMAL_CONFLICT holding nothing; with
/// the reservations gone it returns to firmware's range.
fn t_conflict() -> TestResult {
    use ::pnp::arbiter::Owner;
    use ::pnp::ResourceKind;
    let n = find_pci_device(0x8086, 0x2930).ok_or("no SMBus controller")?;
    let a = n.pci_address().ok_or("no address")?;
    check(
        n.state() == DEVICE_NODE_STARTED,
        "run after add_device_and_start_device",
    )?;
    let firmware = smbus_port(n)?;
    let len = 0x20u64.max(
        n.resources()
            .ok_or("no resources")?
            .raw
            .descriptors()
            .iter()
            .find(|d| d.Type == CM_RESOURCE_TYPE_PORT)
            .map_or(0, |d| d.Length() as u64),
    );
    arb::reserve(
        ResourceKind::Port,
        firmware,
        firmware + len - 1,
        arb::TAG_TEST,
    );
    let moved = devices::restart_with_new_resources(n);
    let new = smbus_port(n).unwrap_or(0);
    let (bar, _) = bar_register(a, 4);
    let started_port = TEST_START_PORT.load(Ordering::SeqCst);
    // Everything reserved: the device cannot be satisfied.
    arb::reserve(ResourceKind::Port, 0, 0xFFFF, arb::TAG_TEST);
    let failed = devices::restart_with_new_resources(n);
    let problem = n.problem();
    let state = n.state();
    let left = n.resources().is_some();
    let holds = arb::with(|x| {
        x.port
            .allocations()
            .iter()
            .any(|r| r.owner == Owner::Device(n.address()))
    });
    arb::unreserve(ResourceKind::Port, arb::TAG_TEST);
    let back = devices::restart_with_new_resources(n);
    let (bar_back, _) = bar_register(a, 4);
    crate::dbg_println!(
        "pnp: SMBus I/O {firmware:#x} -> {new:#x} (BAR4 {bar:#x}) -> conflict -> {bar_back:#x}"
    );
    check(moved.is_ok(), "the rebalance with a reserved range failed")?;
    check(
        new != firmware && new.is_multiple_of(len),
        "the range did not move / misaligned",
    )?;
    check(
        (0x1000..=0xFFFF).contains(&new),
        "moved outside the port window",
    )?;
    check(
        bar == new,
        "pci.sys did not program BAR4 with the new range",
    )?;
    check(
        started_port == new,
        "the driver's START did not see the new range",
    )?;
    check(failed.is_err(), "a device with no possible range started")?;
    check(
        problem == CM_PROB_NORMAL_CONFLICT,
        "no CM_PROB_NORMAL_CONFLICT",
    )?;
    check(state != DEVICE_NODE_STARTED, "the failed device is started")?;
    check(
        holds == Some(false) && !left,
        "the failed device still holds resources",
    )?;
    check(
        back.is_ok(),
        "the device did not restart after the conflict",
    )?;
    check(
        n.problem() == 0 && n.state() == DEVICE_NODE_STARTED,
        "not started again",
    )?;
    check(
        bar_back == firmware && smbus_port(n)? == firmware,
        "not back at firmware's range",
    )
}
