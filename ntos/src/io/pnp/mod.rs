//! The Plug and Play manager (*Windows Internals*, Part 1, ch. 6, "Plug
//! and Play"): device enumeration, the device tree of device nodes,
//! identification, driver matching through the registry, resource
//! arbitration and assignment, interrupts. See docs/pnp.md for where ntrs
//! differs.
//!
//! At boot (`pnp_initialize`, after the registry is up and the boot-start
//! drivers, pci.sys among them, are loaded):
//! 1. the root device node `HTREE\ROOT\0` is made;
//! 2. each ECAM window of the ACPI MCFG table becomes a PCI root bus node
//!    `ACPI\PNP0A08\<n>` (the ID ACPI gives a PCI Express root bridge),
//!    whose PDO `\Driver\PnpManager` owns (ACPI's role on Windows) and whose
//!    boot configuration is the window's bus-number range;
//! 3. the arbiters are set up from the memory map and the MCFG (`arb.rs`);
//! 4. `devices.rs` adds and starts every node whose driver is loaded:
//!    pci.sys attaches to a root bus, and its answer to
//!    `IRP_MN_QUERY_DEVICE_RELATIONS(BusRelations)` gives PDOs from which
//!    the PnP manager builds child nodes with `IRP_MN_QUERY_ID`,
//!    `QUERY_CAPABILITIES`, `QUERY_DEVICE_TEXT`, `QUERY_BUS_INFORMATION`,
//!    `QUERY_RESOURCES` and `QUERY_RESOURCE_REQUIREMENTS`;
//! 5. each node's key is written under `CurrentControlSet\Enum` and its
//!    driver (`Service`) is found in the Enum key or the critical device
//!    database; nodes with a driver get resources from the arbiters
//!    (raw and translated `CM_RESOURCE_LIST`s for `IRP_MN_START_DEVICE`).

pub mod arb;
pub mod devices;
pub mod ecam;
pub mod filters;
pub mod interface;
pub mod interrupt;
pub mod kd;
pub mod registry;
pub mod remove;
pub mod resource;
pub mod tests;
pub mod tests_interface;
pub mod tests_remove;

use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
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
pub const DEVICE_NODE_QUERY_STOPPED: u32 = 0x309;
pub const DEVICE_NODE_STOPPED: u32 = 0x30A;
pub const DEVICE_NODE_ENUMERATE_COMPLETION: u32 = 0x30D;
pub const DEVICE_NODE_AWAITING_QUEUED_REMOVAL: u32 = 0x30F;
pub const DEVICE_NODE_QUERY_REMOVED: u32 = 0x310;
pub const DEVICE_NODE_REMOVE_PENDING_CLOSES: u32 = 0x311;
pub const DEVICE_NODE_REMOVED: u32 = 0x312;
pub const DEVICE_NODE_DELETE_PENDING_CLOSES: u32 = 0x313;
pub const DEVICE_NODE_DELETED: u32 = 0x314;

/// `STATUS_DEVICE_CONFIGURATION_ERROR`: a damaged MCFG table.
pub const STATUS_DEVICE_CONFIGURATION_ERROR: NtStatus = NtStatus::from_u32(0xC000_0182);
/// `STATUS_CONFLICTING_ADDRESSES`: the arbiters could not satisfy a device.
pub const STATUS_CONFLICTING_ADDRESSES: NtStatus = NtStatus::from_u32(0xC000_0018);

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

/// `CM_PROB_FAILED_START` (10).
pub const CM_PROB_FAILED_START: u32 = 0x0A;
/// `CM_PROB_NORMAL_CONFLICT` (12): the arbiters could not satisfy the
/// device's requirements.
pub const CM_PROB_NORMAL_CONFLICT: u32 = 0x0C;
/// `CM_PROB_FAILED_INSTALL` (28): no driver is installed for the device.
pub const CM_PROB_FAILED_INSTALL: u32 = 0x1C;

/// WinDbg's name for a device problem code.
pub fn problem_name(p: u32) -> &'static str {
    match p {
        CM_PROB_FAILED_INSTALL => "CM_PROB_FAILED_INSTALL",
        CM_PROB_FAILED_START => "CM_PROB_FAILED_START",
        CM_PROB_NORMAL_CONFLICT => "CM_PROB_NORMAL_CONFLICT",
        _ => "?",
    }
}

/// Resources assigned to a device (what `IRP_MN_START_DEVICE` carries).
pub struct Resources {
    pub raw: CmResourceList,
    pub translated: CmResourceList,
    pub interrupt: Option<InterruptAssignment>,
}

/// What the bus driver told the PnP manager about a device it enumerated.
#[derive(Default)]
pub struct BusAnswers {
    /// `IRP_MN_QUERY_CAPABILITIES`.
    pub capabilities: Option<wdk::pnp::DEVICE_CAPABILITIES>,
    /// `IRP_MN_QUERY_BUS_INFORMATION`.
    pub bus_information: Option<wdk::pnp::PNP_BUS_INFORMATION>,
    /// `IRP_MN_QUERY_DEVICE_TEXT`: description, location information.
    pub description: Option<String>,
    pub location: Option<String>,
    /// `IRP_MN_QUERY_RESOURCES`: the boot configuration (raw).
    pub boot_config: Vec<CmPartialResourceDescriptor>,
    /// `IRP_MN_QUERY_RESOURCE_REQUIREMENTS`, decoded.
    pub requirements: Option<::pnp::reslist::Requirements>,
}

/// A device node (`DEVICE_NODE`): one device in the device tree.
pub struct DeviceNode {
    /// Index in the tree (the node's own position; parents refer to
    /// children and back by index).
    pub index: usize,
    pub parent: Option<usize>,
    /// Depth below the root (the root is 0).
    pub level: u32,
    /// `InstancePath`: `<enumerator>\<device ID>\<instance ID>`.
    pub instance_path: String,
    pub hardware_ids: Vec<String>,
    pub compatible_ids: Vec<String>,
    /// `ServiceName`: the function driver matched through the registry.
    pub service: Option<String>,
    pub class_guid: Option<String>,
    /// The bus driver's answers (empty for the root and the root buses).
    pub bus: BusAnswers,
    /// For a PCI root bus: its ECAM window (index into `ecam::windows()`).
    pub window: Option<usize>,
    state: AtomicU32,
    previous_state: AtomicU32,
    problem: AtomicU32,
    /// `PhysicalDeviceObject` (0 until its bus driver reported it).
    pub pdo: AtomicU64,
    /// Whether `AddDevice` was called for the node.
    pub added: AtomicBool,
    resources: SpinLocked<Option<&'static Resources>, DISPATCH_LEVEL>,
    /// The interrupt translation last made for the node (kept across a
    /// rebalance, so the vector and MSI programming stay the same).
    translation: SpinLocked<Option<InterruptAssignment>, DISPATCH_LEVEL>,
}

impl DeviceNode {
    fn new(index: usize, parent: Option<usize>, level: u32, instance_path: String) -> Self {
        DeviceNode {
            index,
            parent,
            level,
            instance_path,
            hardware_ids: Vec::new(),
            compatible_ids: Vec::new(),
            service: None,
            class_guid: None,
            bus: BusAnswers::default(),
            window: None,
            state: AtomicU32::new(DEVICE_NODE_UNINITIALIZED),
            previous_state: AtomicU32::new(DEVICE_NODE_UNINITIALIZED),
            problem: AtomicU32::new(0),
            pdo: AtomicU64::new(0),
            added: AtomicBool::new(false),
            resources: SpinLocked::new(None),
            translation: SpinLocked::new(None),
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

    /// `PipSetDevNodeProblem` / `PipClearDevNodeProblem`.
    pub fn set_problem(&self, p: u32) {
        self.problem.store(p, Ordering::Release);
    }

    /// Whether the node left the tree: its stack had `IRP_MN_REMOVE_DEVICE`
    /// (`DeviceNodeRemoved` after an orderly removal, `DeviceNodeDeleted`
    /// after a surprise removal). ntrs keeps the record (nodes are never
    /// freed: `&DeviceNode` stays valid) but lists, looks up and starts it
    /// no more.
    pub fn is_gone(&self) -> bool {
        matches!(self.state(), DEVICE_NODE_REMOVED | DEVICE_NODE_DELETED)
    }

    /// The resources assigned, if any.
    pub fn resources(&self) -> Option<&'static Resources> {
        self.resources.with(|r| *r)
    }

    /// Service name in the form `!devnode` prints.
    pub fn service_name(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// Whether the node's bus is PCI (`GUID_BUS_TYPE_PCI`).
    pub fn is_pci(&self) -> bool {
        self.bus
            .bus_information
            .is_some_and(|b| b.BusTypeGuid == wdk::pnp::GUID_BUS_TYPE_PCI)
    }

    /// A PCI node's configuration-space address, from its bus number
    /// (`QUERY_BUS_INFORMATION`) and address (`QUERY_CAPABILITIES`:
    /// device << 16 | function). ntrs's PCI is segment 0.
    pub fn pci_address(&self) -> Option<::pci::Address> {
        if !self.is_pci() {
            return None;
        }
        let bus = self.bus.bus_information?.BusNumber;
        let a = self.bus.capabilities?.Address;
        Some(::pci::Address::new(
            0,
            u8::try_from(bus).ok()?,
            u8::try_from(a >> 16).ok().filter(|&d| d < 32)?,
            u8::try_from(a & 0xFFFF).ok().filter(|&f| f < 8)?,
        ))
    }

    /// The PCI vendor and device ID from the device ID
    /// (`PCI\VEN_vvvv&DEV_dddd...`).
    pub fn pci_ids(&self) -> Option<(u16, u16)> {
        let id = self.hardware_ids.first()?;
        let rest = id.strip_prefix("PCI\\VEN_")?;
        let v = u16::from_str_radix(rest.get(..4)?, 16).ok()?;
        let d = u16::from_str_radix(rest.get(4..)?.strip_prefix("&DEV_")?.get(..4)?, 16).ok()?;
        Some((v, d))
    }
}

/// Most device nodes the tree holds (a q35 machine has about ten).
pub const MAX_NODES: usize = 512;

/// The device tree: every node, the root first. Nodes are appended as bus
/// drivers report them; a removed node stays in its slot marked gone
/// (`DeviceNode::is_gone`, remove.rs), so a `&DeviceNode` stays valid for
/// the life of the system.
pub struct DeviceTree {
    slots: Vec<once_cell::race::OnceBox<DeviceNode>>,
    count: AtomicUsize,
    add_lock: SpinLocked<(), DISPATCH_LEVEL>,
}

impl DeviceTree {
    fn new() -> Result<Self, NtStatus> {
        let mut slots = crate::ex::pool::try_vec_with_capacity(MAX_NODES)?;
        slots.resize_with(MAX_NODES, once_cell::race::OnceBox::new);
        Ok(DeviceTree {
            slots,
            count: AtomicUsize::new(0),
            add_lock: SpinLocked::new(()),
        })
    }

    /// Appends a node made by `make(index)`.
    fn add(&self, node: DeviceNode) -> Result<&DeviceNode, NtStatus> {
        let b = crate::ex::pool::try_box(node)?;
        self.add_lock.with(|_| {
            let i = self.count.load(Ordering::Acquire);
            let slot = self.slots.get(i).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
            let mut b = b;
            b.index = i;
            slot.set(b).map_err(|_| STATUS_UNSUCCESSFUL)?;
            self.count.store(i + 1, Ordering::Release);
            slot.get().ok_or(STATUS_UNSUCCESSFUL)
        })
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The node at `index`.
    pub fn node(&self, index: usize) -> Option<&DeviceNode> {
        if index < self.len() {
            self.slots[index].get()
        } else {
            None
        }
    }

    /// Every node, in creation order (parents before children).
    pub fn nodes(&self) -> impl Iterator<Item = &DeviceNode> {
        (0..self.len()).filter_map(|i| self.slots[i].get())
    }

    /// The children of `index` still in the tree, in enumeration order.
    pub fn children(&self, index: usize) -> impl Iterator<Item = &DeviceNode> {
        self.nodes()
            .filter(move |n| n.parent == Some(index) && !n.is_gone())
    }

    /// `IopRootDeviceNode`.
    pub fn root(&self) -> &DeviceNode {
        self.slots[0].get().expect("the root node is made first")
    }

    /// The node at `address`, if it is one.
    pub fn by_address(&self, address: u64) -> Option<&DeviceNode> {
        self.nodes().find(|n| n.address() == address)
    }

    /// The node whose instance path is `path` (case-insensitive).
    pub fn by_instance_path(&self, path: &str) -> Option<&DeviceNode> {
        self.nodes()
            .find(|n| !n.is_gone() && n.instance_path.eq_ignore_ascii_case(path))
    }

    /// The node whose PDO is `pdo`.
    pub fn by_pdo(&self, pdo: u64) -> Option<&DeviceNode> {
        self.nodes()
            .find(|n| pdo != 0 && n.pdo.load(Ordering::Acquire) == pdo)
    }

    /// Every node on a PCI bus, in enumeration order.
    pub fn pci_nodes(&self) -> impl Iterator<Item = &DeviceNode> {
        self.nodes().filter(|n| n.is_pci())
    }
}

/// The tree, published once `pnp_initialize` made the root.
static TREE: once_cell::race::OnceBox<DeviceTree> = once_cell::race::OnceBox::new();

/// The device tree, once the PnP manager built it.
pub fn device_tree() -> Option<&'static DeviceTree> {
    TREE.get()
}

/// Every PCI function the PnP manager knows (for kernel components and
/// tests that look devices up before or beside device objects).
pub fn pci_devices() -> Vec<&'static DeviceNode> {
    device_tree().map_or(Vec::new(), |t| t.pci_nodes().collect())
}

/// The first PCI function with `vendor`:`device`.
pub fn find_pci_device(vendor: u16, device: u16) -> Option<&'static DeviceNode> {
    device_tree()?
        .pci_nodes()
        .find(|n| n.pci_ids() == Some((vendor, device)))
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
/// (phase 1, after the registry and the boot-start drivers): the root and
/// root bus nodes, the arbiters, then device objects, AddDevice, START and
/// bus relations for everything whose driver is loaded. A machine without
/// an MCFG table gets a tree with the root alone.
pub fn pnp_initialize() -> Result<(), NtStatus> {
    let _tag = crate::ex::pool::PoolTag::enter(*b"PpDn");
    let entries = match read_mcfg() {
        Ok(e) => e,
        Err(s) => {
            crate::dbg_println!(
                "PnP: no usable MCFG table ({:#x}); no PCI enumeration",
                s.as_u32()
            );
            Vec::new()
        }
    };
    ecam::set_windows(entries.iter().copied().map(ecam::Ecam::new).collect())?;
    arb::initialize(&entries)?;
    TREE.set(Box::new(DeviceTree::new()?))
        .map_err(|_| STATUS_UNSUCCESSFUL)?;
    let tree = device_tree().ok_or(STATUS_UNSUCCESSFUL)?;
    let root = tree.add(DeviceNode::new(0, None, 0, "HTREE\\ROOT\\0".into()))?;
    registry::write_enum_key(root);
    for (w, e) in entries.iter().enumerate() {
        let mut bus = DeviceNode::new(0, Some(0), 1, format!("ACPI\\PNP0A08\\{w}"));
        bus.hardware_ids = alloc::vec!["ACPI\\PNP0A08".into(), "*PNP0A08".into()];
        bus.compatible_ids = alloc::vec!["ACPI\\PNP0A03".into(), "*PNP0A03".into()];
        bus.window = Some(w);
        registry::match_driver(&mut bus);
        let bus = tree.add(bus)?;
        registry::write_enum_key(bus);
        // The root bus's resources are its bus numbers (ACPI's _CRS on
        // Windows; here the MCFG range), taken in the bus-number arbiter.
        arb::take_root_bus(bus, e)?;
        bus.set_state(DEVICE_NODE_INITIALIZED);
    }
    root.set_state(DEVICE_NODE_ENUMERATE_COMPLETION);
    root.set_state(DEVICE_NODE_STARTED);
    // Device objects: PDOs, AddDevice, IRP_MN_START_DEVICE, bus relations.
    devices::initialize(tree)?;
    crate::dbg_println!(
        "PnP: {} device nodes, {} PCI functions on {} ECAM windows",
        tree.len(),
        tree.pci_nodes().count(),
        entries.len()
    );
    Ok(())
}

/// Adds and starts the devices whose drivers were loaded since the last
/// pass (after the system-start drivers: `devices::start_devices`).
pub fn pnp_start_devices() {
    if let Some(tree) = device_tree() {
        devices::start_devices(tree);
        devices::create_volmgr_root_device(tree);
    }
}

/// Records a node's resources (once; a node whose resources are replaced
/// by a rebalance gets a new record, the old one stays allocated since
/// drivers may still hold pointers into it).
fn set_resources(node: &DeviceNode, r: Resources) -> Result<(), NtStatus> {
    let res = Box::leak(crate::ex::pool::try_box(r)?);
    if let Some(i) = res.interrupt {
        node.translation.with(|t| *t = Some(i));
    }
    node.resources.with(|x| *x = Some(res));
    Ok(())
}

/// Forgets a removed node's resources (the record stays allocated, as a
/// rebalance's old one does).
fn clear_resources(node: &DeviceNode) {
    node.resources.with(|x| *x = None);
}

/// Assigns a node's resources (`IopAssignResourcesToDevices`): the
/// arbiters satisfy its requirements (`arb::assign`), the interrupt is
/// translated (a vector, MSI programmed or the line routed), and the raw
/// and translated `CM_RESOURCE_LIST`s are recorded. A node that already
/// has resources keeps them. A device the arbiters cannot satisfy gets
/// `CM_PROB_NORMAL_CONFLICT` and `STATUS_CONFLICTING_ADDRESSES`; nothing
/// stays allocated for it.
pub fn assign_resources(node: &DeviceNode) -> Result<(), NtStatus> {
    if node.resources().is_some() {
        return Ok(());
    }
    let Some(req) = node.bus.requirements.as_ref() else {
        return Err(STATUS_INVALID_PARAMETER);
    };
    let assigned = match arb::assign(node, req) {
        Ok(a) => a,
        Err(s) => {
            node.set_problem(CM_PROB_NORMAL_CONFLICT);
            return Err(s);
        }
    };
    let r = match build_lists(node, req, &assigned, None) {
        Ok(r) => r,
        Err(s) => {
            arb::release(node);
            node.set_problem(CM_PROB_NORMAL_CONFLICT);
            return Err(s);
        }
    };
    set_resources(node, r)?;
    if node.problem() == CM_PROB_NORMAL_CONFLICT {
        node.set_problem(0);
    }
    Ok(())
}

/// Re-arbitrates a node whose resources must move (`IopRebalance` for one
/// device): its ranges are released, the arbiters assign again (a range
/// now taken by someone else moves), and the interrupt translation is
/// kept. The caller stops the device before and starts it after.
pub fn reassign_resources(node: &DeviceNode) -> Result<(), NtStatus> {
    let Some(req) = node.bus.requirements.as_ref() else {
        return Err(STATUS_INVALID_PARAMETER);
    };
    let kept = node.translation.with(|t| *t);
    arb::release(node);
    // Until the new assignment the device has no resources.
    node.resources.with(|x| *x = None);
    let assigned = match arb::assign(node, req) {
        Ok(a) => a,
        Err(s) => {
            node.set_problem(CM_PROB_NORMAL_CONFLICT);
            return Err(s);
        }
    };
    let r = match build_lists(node, req, &assigned, kept) {
        Ok(r) => r,
        Err(s) => {
            arb::release(node);
            node.set_problem(CM_PROB_NORMAL_CONFLICT);
            return Err(s);
        }
    };
    set_resources(node, r)?;
    node.set_problem(0);
    Ok(())
}

/// The raw and translated lists from the arbiters' assignment: memory and
/// ports as they are (x86: bus addresses are CPU physical addresses), the
/// interrupt through `interrupt::translate`.
fn build_lists(
    node: &DeviceNode,
    req: &::pnp::reslist::Requirements,
    assigned: &[::pnp::arbiter::Assigned],
    keep_interrupt: Option<InterruptAssignment>,
) -> Result<Resources, NtStatus> {
    use ::pnp::ResourceKind;
    let mut raw = Vec::new();
    let mut translated = Vec::new();
    let mut intr = None;
    for a in assigned {
        match a.kind {
            ResourceKind::Memory | ResourceKind::Port => {
                let len = u32::try_from(a.length).map_err(|_| STATUS_NOT_IMPLEMENTED)?;
                let mut d =
                    CmPartialResourceDescriptor::range(a.kind.cm_type(), a.flags, a.start, len);
                d.ShareDisposition = a.share;
                raw.push(d);
                translated.push(d);
            }
            ResourceKind::BusNumber => {
                let d = resource::bus_number(a.start as u32, a.length as u32);
                raw.push(d);
                translated.push(d);
            }
            ResourceKind::Interrupt => {
                let i = match keep_interrupt {
                    Some(k) if k.is_message() == a.message => k,
                    _ => interrupt::translate(node, a)?,
                };
                let (r, t) = i.descriptors();
                raw.push(r);
                translated.push(t);
                intr = Some(i);
            }
        }
    }
    Ok(Resources {
        raw: CmResourceList::new(req.interface_type as u32, req.bus_number, &raw),
        translated: CmResourceList::new(req.interface_type as u32, req.bus_number, &translated),
        interrupt: intr,
    })
}
