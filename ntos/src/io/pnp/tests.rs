//! Boot tests of the PnP manager.

use super::interrupt::{self, InterruptAssignment};
use super::resource::*;
use super::*;
use crate::ktest::{check, wait_until, Test, TestResult};
use core::sync::atomic::AtomicU64;

pub const TESTS: &[Test] = &[
    ("pnp.mcfg_ecam_window", t_mcfg),
    ("pnp.ahci_found_with_abar", t_ahci),
    ("pnp.tree_matches_brute_force", t_brute_force),
    ("pnp.enum_keys_written", t_enum_keys),
    ("pnp.ahci_msi_and_resources", t_ahci_msi),
    ("pnp.intx_interrupt_through_ioapic", t_intx),
    ("pnp.connect_checks_vector", t_connect_checks),
    ("pnp.bus_relations_give_pdos", t_bus_relations),
    ("pnp.add_device_and_start_device", t_add_device),
];

fn ahci() -> Result<&'static DeviceNode, &'static str> {
    find_pci_device(0x8086, 0x2922).ok_or("the ICH9 AHCI controller 8086:2922 was not enumerated")
}

fn t_mcfg() -> TestResult {
    let m = read_mcfg().map_err(|_| "no MCFG table")?;
    check(!m.is_empty(), "MCFG has no allocation")?;
    let e = m[0];
    check(
        e.base != 0 && e.base & 0xF_FFFF == 0,
        "ECAM base not 1 MiB aligned",
    )?;
    check(e.start_bus == 0, "first window does not start at bus 0")?;
    let tree = device_tree().ok_or("no device tree")?;
    check(tree.windows.len() == m.len(), "a window was not used")?;
    check(
        tree.windows[0].mapped_buses() >= 1,
        "the root bus of the window is not mapped",
    )
}

fn t_ahci() -> TestResult {
    let n = ahci()?;
    let f = n.pci.as_ref().ok_or("no PCI function")?;
    check(
        f.header.class_code() == 0x010601,
        "class code is not 010601",
    )?;
    let abar = f.bar(5).ok_or("no BAR5 (ABAR)")?;
    check(
        abar.is_memory() && !abar.prefetchable,
        "ABAR is not non-prefetchable memory",
    )?;
    // ICH9's ABAR decodes 4 KiB (QEMU's model: 0x1000); sizing must find it.
    check(abar.size == 0x1000, "ABAR size is not 0x1000")?;
    check(
        abar.base != 0 && abar.base & 0xFFF == 0,
        "ABAR base not assigned/aligned",
    )?;
    // The value the sizing probe left must be the original.
    let cs = device_tree()
        .and_then(|t| t.config_space(n))
        .ok_or("no config space")?;
    use ::pci::ConfigSpace;
    check(
        (cs.read32(f.address, 0x24) & !0xF) as u64 == abar.base,
        "BAR5 not restored after sizing",
    )?;
    check(
        n.instance_path
            .starts_with("PCI\\VEN_8086&DEV_2922&SUBSYS_")
            && n.instance_path
                .ends_with(&alloc::format!("&{:02X}", f.address.devfn())),
        "instance path shape",
    )?;
    check(
        n.hardware_ids[2] == "PCI\\VEN_8086&DEV_2922&CC_010601",
        "hardware ID with class code",
    )?;
    check(
        n.service_name() == Some("storahci"),
        "service not matched to storahci",
    )?;
    let parent = &device_tree().ok_or("no tree")?.nodes[n.parent.ok_or("no parent")?];
    check(
        parent.instance_path.starts_with("ACPI\\PNP0A08\\"),
        "parent is not the PCI root bus",
    )?;
    check(
        parent.service_name() == Some("pci"),
        "the root bus's service is not pci",
    )
}

fn t_brute_force() -> TestResult {
    let tree = device_tree().ok_or("no tree")?;
    let mut expected = 0;
    for w in &tree.windows {
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
        registry::query_sz(
            &alloc::format!("{}\\HTREE\\ROOT\\0", registry::ENUM_ROOT),
            "Service",
        )
        .is_none()
            && nt_open_key(
                &alloc::format!("{}\\HTREE\\ROOT\\0", registry::ENUM_ROOT),
                KEY_READ,
                crate::ob::object::Mode::KernelMode,
            )
            .map(crate::ob::handle::nt_close)
            .is_ok(),
        "the root's key",
    )
}

fn t_ahci_msi() -> TestResult {
    let n = ahci()?;
    let f = n.pci.as_ref().ok_or("no function")?;
    check(f.msi.is_some(), "QEMU's AHCI has an MSI capability")?;
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
    let cs = device_tree()
        .and_then(|t| t.config_space(n))
        .ok_or("no config")?;
    check(
        interrupt::msi_state(cs, f) == Some((address, data)),
        "the MSI capability does not hold the assigned message",
    )?;
    check(
        address == 0xFEE0_0000 | (apic_id as u64) << 12 && data == vector as u16,
        "MSI address/data do not target the vector",
    )?;
    // Raw and translated lists: ABAR memory, then the message interrupt.
    let raw = r.raw.descriptors();
    let tr = r.translated.descriptors();
    let abar = f.bar(5).ok_or("no ABAR")?;
    check(
        tr.iter().any(|d| {
            d.Type == CM_RESOURCE_TYPE_MEMORY
                && d.Start() == abar.base
                && d.Length() as u64 == abar.size
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
    let f = n.pci.as_ref().ok_or("no function")?;
    let io = f.bar(4).ok_or("no SMBus I/O BAR")?;
    let tree = device_tree().ok_or("no tree")?;
    let cs = tree.config_space(n).ok_or("no config")?;
    assign_resources(n, cs).map_err(|_| "resource assignment failed")?;
    let a = n
        .resources()
        .and_then(|r| r.interrupt)
        .ok_or("the SMBus controller got no interrupt (no INTx line from firmware)")?;
    check(!a.is_message(), "SMBus has no MSI capability")?;
    use ::pci::ConfigSpace;
    // I/O decoding on, host controller enabled (HOSTC.HST_EN, offset 0x40).
    let cmd = cs.read16(f.address, 4);
    cs.write32(f.address, 4, (cmd | 1) as u32);
    let hostc = cs.read32(f.address, 0x40);
    cs.write32(f.address, 0x40, hostc | 1);
    let base = io.base as u16;
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
    cs.write32(f.address, 0x40, hostc);
    cs.write32(f.address, 4, cmd as u32);
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
    let pci = crate::io::driver::find_driver("\\Driver\\PCI").ok_or("no \\Driver\\PCI")?;
    let pnpmgr =
        crate::io::driver::find_driver("\\Driver\\PnpManager").ok_or("no \\Driver\\PnpManager")?;
    let root_pdo = tree.root().pdo.load(Ordering::Acquire) as *mut DEVICE_OBJECT;
    check(!root_pdo.is_null(), "the root has no PDO")?;
    // SAFETY: device objects of live device nodes stay allocated.
    let root_driver = unsafe { (*root_pdo).DriverObject };
    check(root_driver == pnpmgr, "root PDO's driver")?;
    let bus = &tree.nodes[tree.root().children[0]];
    check(
        bus.state() == DEVICE_NODE_STARTED,
        "the PCI root bus is not started",
    )?;
    let bus_pdo = bus.pdo.load(Ordering::Acquire) as *mut DEVICE_OBJECT;
    // SAFETY: as above; the stack is live.
    unsafe {
        check((*bus_pdo).DriverObject == pnpmgr, "bus PDO's driver")?;
        let fdo = (*bus_pdo).AttachedDevice;
        check(
            !fdo.is_null() && (*fdo).DriverObject == pci,
            "no PCI FDO over the bus PDO",
        )?;
    }
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
        // SAFETY: as above.
        unsafe {
            check(
                (*pdo).DriverObject == pci,
                "a PCI PDO not owned by \\Driver\\PCI",
            )?;
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
/// PCI PDO below turns on decoding and bus mastering; the node is started.
fn t_add_device() -> TestResult {
    let tree = device_tree().ok_or("no tree")?;
    let n = find_pci_device(0x8086, 0x2930).ok_or("no SMBus controller")?;
    let io = n
        .pci
        .as_ref()
        .and_then(|f| f.bar(4))
        .ok_or("no I/O BAR")?
        .base;
    let h = crate::io::driver::create_driver_object(
        "\\Driver\\PnpTest",
        test_entry,
        "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\PnpTest",
        (0, 0),
        core::ptr::null_mut(),
    )
    .map_err(|_| "cannot create the test driver")?;
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
    let cs = tree.config_space(n).ok_or("no config")?;
    use ::pci::ConfigSpace;
    let cmd = cs.read16(n.pci.as_ref().ok_or("no fn")?.address, ::pci::reg::COMMAND);
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
