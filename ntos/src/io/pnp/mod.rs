//! The Plug and Play manager (*Windows Internals*, Part 1, ch. 6, "Plug
//! and Play"): device enumeration, the device tree of device nodes,
//! identification, driver matching through the registry, resource
//! assignment and interrupts. See docs/pnp.md for where ntrs differs.
//!
//! At boot (`pnp_initialize`, after the registry is up):
//! 1. the root device node `HTREE\ROOT\0` is made;
//! 2. each ECAM window of the ACPI MCFG table becomes a PCI root bus node
//!    `ACPI\PNP0A08\<segment>` (the ID ACPI gives a PCI Express root
//!    bridge); the built-in PCI bus driver (lib/pci over the ECAM mapping)
//!    enumerates it, bridges included, and every function becomes a node
//!    with its hardware and compatible IDs and its instance path
//!    `PCI\VEN_v&DEV_d&SUBSYS_sn&REV_r\<ParentIdPrefix>&<devfn>`;
//! 3. each node's key is written under `CurrentControlSet\Enum`, and its
//!    driver (`Service`) is found in the Enum key or, failing that, in the
//!    critical device database (`Control\CriticalDeviceDatabase`) by
//!    hardware ID then compatible ID;
//! 4. devices with a driver get their resources: the BARs as memory and
//!    port descriptors, and an interrupt (MSI when the function has the
//!    capability, else its INTx line through the I/O APIC), as raw and
//!    translated `CM_RESOURCE_LIST`s.

pub mod devices;
pub mod ecam;
pub mod filters;
pub mod interface;
pub mod interrupt;
pub mod kd;
pub mod registry;
pub mod resource;
pub mod tests;
pub mod tests_interface;

use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ecam::Ecam;
use interrupt::InterruptAssignment;
use nt::status::*;
use nt::NtStatus;
use resource::{CmPartialResourceDescriptor, CmResourceList};

/// `PNP_DEVNODE_STATE` values (the ones ntrs passes through).
pub const DEVICE_NODE_UNINITIALIZED: u32 = 0x301;
pub const DEVICE_NODE_INITIALIZED: u32 = 0x302;
pub const DEVICE_NODE_DRIVERS_ADDED: u32 = 0x303;
pub const DEVICE_NODE_RESOURCES_ASSIGNED: u32 = 0x304;
pub const DEVICE_NODE_START_PENDING: u32 = 0x305;
pub const DEVICE_NODE_STARTED: u32 = 0x308;
pub const DEVICE_NODE_ENUMERATE_COMPLETION: u32 = 0x30D;

/// `STATUS_DEVICE_CONFIGURATION_ERROR`: a damaged MCFG table.
pub const STATUS_DEVICE_CONFIGURATION_ERROR: NtStatus = NtStatus::from_u32(0xC000_0182);

/// WinDbg's name for a `PNP_DEVNODE_STATE`.
pub fn state_name(s: u32) -> &'static str {
    match s {
        0x301 => "DeviceNodeUninitialized",
        0x302 => "DeviceNodeInitialized",
        0x303 => "DeviceNodeDriversAdded",
        0x304 => "DeviceNodeResourcesAssigned",
        0x305 => "DeviceNodeStartPending",
        0x306 => "DeviceNodeStartCompletion",
        0x307 => "DeviceNodeStartPostWork",
        0x308 => "DeviceNodeStarted",
        0x309 => "DeviceNodeQueryStopped",
        0x30A => "DeviceNodeStopped",
        0x30B => "DeviceNodeRestartCompletion",
        0x30C => "DeviceNodeEnumeratePending",
        0x30D => "DeviceNodeEnumerateCompletion",
        0x30E => "DeviceNodeAwaitingQueuedDeletion",
        0x30F => "DeviceNodeAwaitingQueuedRemoval",
        0x310 => "DeviceNodeQueryRemoved",
        0x311 => "DeviceNodeRemovePendingCloses",
        0x312 => "DeviceNodeRemoved",
        0x313 => "DeviceNodeDeletePendingCloses",
        0x314 => "DeviceNodeDeleted",
        _ => "?",
    }
}

/// `CM_PROB_FAILED_INSTALL` (28): no driver is installed for the device.
pub const CM_PROB_FAILED_INSTALL: u32 = 0x1C;

/// WinDbg's name for a device problem code.
pub fn problem_name(p: u32) -> &'static str {
    match p {
        CM_PROB_FAILED_INSTALL => "CM_PROB_FAILED_INSTALL",
        0x0A => "CM_PROB_FAILED_START",
        _ => "?",
    }
}

/// Resources assigned to a device (what `IRP_MN_START_DEVICE` carries).
pub struct Resources {
    pub raw: CmResourceList,
    pub translated: CmResourceList,
    pub interrupt: Option<InterruptAssignment>,
}

/// A device node (`DEVICE_NODE`): one device in the device tree.
pub struct DeviceNode {
    /// Index in the tree (the node's own position; parents and children
    /// refer to each other by index).
    pub index: usize,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// Depth below the root (the root is 0).
    pub level: u32,
    /// `InstancePath`: `<enumerator>\<device ID>\<instance ID>`.
    pub instance_path: String,
    pub hardware_ids: Vec<String>,
    pub compatible_ids: Vec<String>,
    /// `ServiceName`: the function driver matched through the registry.
    pub service: Option<String>,
    pub class_guid: Option<String>,
    /// The PCI function this node stands for (None for the root and buses).
    pub pci: Option<::pci::enumerate::Function>,
    /// The ECAM window (index into the tree's windows) of a PCI node.
    pub window: Option<usize>,
    state: AtomicU32,
    previous_state: AtomicU32,
    problem: AtomicU32,
    /// `PhysicalDeviceObject` (0 until its bus driver reported it).
    pub pdo: AtomicU64,
    /// Whether `AddDevice` was called for the node.
    pub added: core::sync::atomic::AtomicBool,
    resources: SpinLocked<Option<&'static Resources>, DISPATCH_LEVEL>,
}

impl DeviceNode {
    fn new(index: usize, parent: Option<usize>, level: u32, instance_path: String) -> Self {
        DeviceNode {
            index,
            parent,
            children: Vec::new(),
            level,
            instance_path,
            hardware_ids: Vec::new(),
            compatible_ids: Vec::new(),
            service: None,
            class_guid: None,
            pci: None,
            window: None,
            state: AtomicU32::new(DEVICE_NODE_UNINITIALIZED),
            previous_state: AtomicU32::new(DEVICE_NODE_UNINITIALIZED),
            problem: AtomicU32::new(0),
            pdo: AtomicU64::new(0),
            added: core::sync::atomic::AtomicBool::new(false),
            resources: SpinLocked::new(None),
        }
    }

    /// The node's address (what `!devnode` prints and accepts).
    pub fn address(&self) -> u64 {
        self as *const DeviceNode as u64
    }

    pub fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }

    pub fn previous_state(&self) -> u32 {
        self.previous_state.load(Ordering::Acquire)
    }

    /// `PipSetDevNodeState`: the old state becomes the previous state.
    pub fn set_state(&self, s: u32) {
        let old = self.state.swap(s, Ordering::AcqRel);
        self.previous_state.store(old, Ordering::Release);
    }

    /// The problem code (0 = none).
    pub fn problem(&self) -> u32 {
        self.problem.load(Ordering::Acquire)
    }

    /// The resources assigned, if any.
    pub fn resources(&self) -> Option<&'static Resources> {
        self.resources.with(|r| *r)
    }

    /// Service name in the form `!devnode` prints.
    pub fn service_name(&self) -> Option<&str> {
        self.service.as_deref()
    }
}

/// The device tree: every node, the root first, and the ECAM windows.
pub struct DeviceTree {
    pub nodes: Vec<Box<DeviceNode>>,
    pub windows: Vec<Ecam>,
}

impl DeviceTree {
    /// `IopRootDeviceNode`.
    pub fn root(&self) -> &DeviceNode {
        &self.nodes[0]
    }

    /// The node at `address`, if it is one.
    pub fn by_address(&self, address: u64) -> Option<&DeviceNode> {
        self.nodes
            .iter()
            .map(|n| &**n)
            .find(|n| n.address() == address)
    }

    /// The node whose instance path is `path` (case-insensitive).
    pub fn by_instance_path(&self, path: &str) -> Option<&DeviceNode> {
        self.nodes
            .iter()
            .map(|n| &**n)
            .find(|n| n.instance_path.eq_ignore_ascii_case(path))
    }

    /// Every node standing for a PCI function, in enumeration order.
    pub fn pci_nodes(&self) -> impl Iterator<Item = &DeviceNode> {
        self.nodes.iter().map(|n| &**n).filter(|n| n.pci.is_some())
    }

    /// The ECAM configuration space a PCI node lives in.
    pub fn config_space(&self, node: &DeviceNode) -> Option<&Ecam> {
        self.windows.get(node.window?)
    }
}

/// The tree, published once `pnp_initialize` built it.
static TREE: once_cell::race::OnceBox<DeviceTree> = once_cell::race::OnceBox::new();

/// The device tree, once the PnP manager built it.
pub fn device_tree() -> Option<&'static DeviceTree> {
    TREE.get()
}

/// Every PCI function the PnP manager found (for drivers and tests that
/// need a device before device objects exist: the node carries its BARs,
/// capabilities, instance path and, for devices with a driver, their
/// resources and interrupt).
pub fn pci_devices() -> Vec<&'static DeviceNode> {
    device_tree().map_or(Vec::new(), |t| t.pci_nodes().collect())
}

/// The first PCI function with `vendor`:`device`.
pub fn find_pci_device(vendor: u16, device: u16) -> Option<&'static DeviceNode> {
    device_tree()?.pci_nodes().find(|n| {
        n.pci
            .as_ref()
            .is_some_and(|f| f.header.vendor_id == vendor && f.header.device_id == device)
    })
}

/// The ACPI MCFG table's ECAM windows, through the HAL's table lookup.
pub fn read_mcfg() -> Result<Vec<::pci::mcfg::McfgEntry>, NtStatus> {
    let rsdp = crate::rtl::loader_block().acpi_rsdp;
    let table = crate::hal::acpi_find_table(rsdp, b"MCFG").ok_or(STATUS_NO_SUCH_DEVICE)?;
    let len = crate::hal::phys_u32(table + 4) as usize;
    if !(44..=64 * 1024).contains(&len) {
        return Err(STATUS_DEVICE_CONFIGURATION_ERROR);
    }
    let mut bytes = crate::ex::pool::try_vec_with_capacity(len)?;
    for i in 0..len {
        bytes.push(crate::hal::phys_read::<1>(table + i as u64)[0]);
    }
    ::pci::mcfg::parse(&bytes).map_err(|_| STATUS_DEVICE_CONFIGURATION_ERROR)
}

/// `IopInitializePlugPlayServices` + the first enumeration of the root
/// (phase 1, after the registry): builds the device tree, writes the Enum
/// keys, matches drivers and assigns resources. A machine without an MCFG
/// table gets a tree with the root alone.
pub fn pnp_initialize() -> Result<(), NtStatus> {
    let _tag = crate::ex::pool::PoolTag::enter(*b"PpDn");
    let tree = build_tree()?;
    for node in &tree.nodes {
        registry::write_enum_key(node);
    }
    // Resources for every PCI device that has a driver.
    for node in tree.nodes.iter().filter(|n| n.pci.is_some()) {
        if node.service.is_some() {
            if let Some(cs) = tree.config_space(node) {
                match assign_resources(node, cs) {
                    Ok(()) => node.set_state(DEVICE_NODE_RESOURCES_ASSIGNED),
                    Err(s) => crate::dbg_println!(
                        "PnP: no resources for {}: {:#x}",
                        node.instance_path,
                        s.as_u32()
                    ),
                }
            }
        }
    }
    let pci = tree.nodes.iter().filter(|n| n.pci.is_some()).count();
    crate::dbg_println!(
        "PnP: {} device nodes, {} PCI functions on {} ECAM windows",
        tree.nodes.len(),
        pci,
        tree.windows.len()
    );
    TREE.set(Box::new(tree)).map_err(|_| STATUS_UNSUCCESSFUL)?;
    // Device objects: PDOs, AddDevice, IRP_MN_START_DEVICE, bus relations.
    let tree = device_tree().ok_or(STATUS_UNSUCCESSFUL)?;
    devices::initialize(tree)
}

/// Adds and starts the devices whose drivers were loaded since the last
/// pass (after the system-start drivers: `devices::start_devices`).
pub fn pnp_start_devices() {
    if let Some(tree) = device_tree() {
        devices::start_devices(tree);
    }
}

fn build_tree() -> Result<DeviceTree, NtStatus> {
    let mut nodes: Vec<Box<DeviceNode>> = Vec::new();
    let root = DeviceNode::new(0, None, 0, "HTREE\\ROOT\\0".into());
    nodes.push(crate::ex::pool::try_box(root)?);
    let windows: Vec<Ecam> = match read_mcfg() {
        Ok(entries) => entries.into_iter().map(Ecam::new).collect(),
        Err(s) => {
            crate::dbg_println!(
                "PnP: no usable MCFG table ({:#x}); no PCI enumeration",
                s.as_u32()
            );
            Vec::new()
        }
    };
    for (w, ecam) in windows.iter().enumerate() {
        let e = ecam.entry;
        let bus_index = nodes.len();
        let mut bus = DeviceNode::new(bus_index, Some(0), 1, format!("ACPI\\PNP0A08\\{w}"));
        bus.hardware_ids = alloc::vec!["ACPI\\PNP0A08".into(), "*PNP0A08".into()];
        bus.compatible_ids = alloc::vec!["ACPI\\PNP0A03".into(), "*PNP0A03".into()];
        bus.window = Some(w);
        registry::match_driver(&mut bus);
        nodes.push(crate::ex::pool::try_box(bus)?);
        nodes[0].children.push(bus_index);
        // The built-in PCI bus driver enumerates the root bus
        // (IRP_MN_QUERY_DEVICE_RELATIONS / BusRelations).
        let functions = ::pci::enumerate::enumerate(ecam, e.segment, e.start_bus, e.end_bus);
        let first = nodes.len();
        for f in functions {
            let parent = match f.parent {
                Some(i) => first + i,
                None => bus_index,
            };
            let level = nodes[parent].level + 1;
            let prefix = ::pci::ids::parent_id_prefix(level, &nodes[parent].instance_path, 0);
            let path = format!(
                "PCI\\{}\\{}&{}",
                ::pci::ids::device_id(&f.header)
                    .strip_prefix("PCI\\")
                    .unwrap_or_default(),
                prefix,
                ::pci::ids::instance_id(f.address.devfn())
            );
            let index = nodes.len();
            let mut n = DeviceNode::new(index, Some(parent), level, path);
            n.hardware_ids = ::pci::ids::hardware_ids(&f.header);
            n.compatible_ids = ::pci::ids::compatible_ids(&f.header);
            n.window = Some(w);
            n.pci = Some(f);
            registry::match_driver(&mut n);
            n.set_state(DEVICE_NODE_INITIALIZED);
            if n.service.is_none() {
                n.problem.store(CM_PROB_FAILED_INSTALL, Ordering::Release);
            }
            nodes.push(crate::ex::pool::try_box(n)?);
            nodes[parent].children.push(index);
        }
        nodes[bus_index].set_state(DEVICE_NODE_INITIALIZED);
    }
    nodes[0].set_state(DEVICE_NODE_ENUMERATE_COMPLETION);
    nodes[0].set_state(DEVICE_NODE_STARTED);
    Ok(DeviceTree { nodes, windows })
}

/// Assigns a PCI node's resources (`IopAssignResourcesToDevices` with the
/// arbiters' work reduced to keeping firmware's BAR assignment): memory and
/// port descriptors from the BARs and an interrupt (MSI if offered, else
/// the INTx line). Resources are assigned once; a second call is a no-op.
pub fn assign_resources(node: &DeviceNode, cs: &Ecam) -> Result<(), NtStatus> {
    let Some(f) = node.pci.as_ref() else {
        return Err(STATUS_INVALID_PARAMETER);
    };
    if node.resources().is_some() {
        return Ok(());
    }
    let mut raw = Vec::new();
    let mut translated = Vec::new();
    for b in &f.bars {
        // Memory ranges of 4 GiB and more need CmResourceTypeMemoryLarge,
        // which ntrs does not produce: such a BAR is left out.
        let Ok(len) = u32::try_from(b.size) else {
            continue;
        };
        let d = if b.is_memory() {
            CmPartialResourceDescriptor::memory(b.base, len, b.prefetchable)
        } else {
            CmPartialResourceDescriptor::port(b.base, len)
        };
        // x86: bus addresses are CPU physical addresses, ports are ports.
        raw.push(d);
        translated.push(d);
    }
    let intr = interrupt::assign(f, cs)?;
    if let Some(i) = &intr {
        let (r, t) = i.descriptors();
        raw.push(r);
        translated.push(t);
    }
    let bus = f.address.bus as u32;
    let res = Box::leak(crate::ex::pool::try_box(Resources {
        raw: CmResourceList::new(resource::PCI_BUS, bus, &raw),
        translated: CmResourceList::new(resource::PCI_BUS, bus, &translated),
        interrupt: intr,
    })?);
    node.resources.with(|r| *r = Some(res));
    Ok(())
}
