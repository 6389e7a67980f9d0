//! Device removal (*Windows Internals* 7th ed., Part 1, ch. 6, "Plug and
//! Play": device removal; MS docs "Removing a Device", "Handling an
//! IRP_MN_SURPRISE_REMOVAL Request"). The order and the veto rules are
//! `lib/pnp`'s `removal` (host-tested); this file sends the IRPs and keeps
//! the device nodes' states.
//!
//! - **Orderly removal** ([`query_and_remove_device`], what
//!   `CM_Query_And_Remove_SubTree` asks of the PnP manager):
//!   `IRP_MN_QUERY_REMOVE_DEVICE` to the node's subtree, children first
//!   (`DeviceNodeQueryRemoved`, `DOE_REMOVE_PENDING` on every device of the
//!   stack: new opens fail); a failure sends `IRP_MN_CANCEL_REMOVE_DEVICE`
//!   back over what was queried and returns the veto; else
//!   `IRP_MN_REMOVE_DEVICE` to each (`DeviceNodeRemoved`).
//! - **Surprise removal** ([`surprise_remove`]): a bus that stops reporting
//!   a child (its answer to `BusRelations` after
//!   [`io_invalidate_device_relations`]) makes the PnP manager send
//!   `IRP_MN_SURPRISE_REMOVAL` to the child's subtree, children first;
//!   `IRP_MN_REMOVE_DEVICE` follows for each node whose stack has no open
//!   file and whose children had theirs. The others wait in
//!   `DeviceNodeDeletePendingCloses`; the close of the last file on such a
//!   stack (`io/file.rs`, [`handles_closed`]) lets them go. Removed nodes
//!   end `DeviceNodeDeleted`.
//!
//! Every IRP goes to the top of the node's stack, synchronously, at
//! PASSIVE_LEVEL; the devices of the stack are referenced across the
//! remove IRP (drivers detach and delete them while handling it). Device
//! actions are serialized by one lock (`PiEnumerationLock`'s role); the
//! asynchronous ones (relations invalidated, handles closed) run on a
//! delayed worker thread, as Windows runs them in its PnP worker.

use super::{DeviceNode, DeviceTree};
use crate::io::device::{set_stack_flags, stack_of, DOE_REMOVE_PENDING, DOE_REMOVE_PROCESSED};
use crate::ke::irql::SpinLocked;
use crate::ke::wait::{ke_set_event, ke_wait_for_single_object, KEvent};
use crate::ke::DISPATCH_LEVEL;
use ::pnp::removal::{self, PendingRemoval, RemovalIrp};
use alloc::vec::Vec;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};
use nt::status::*;
use nt::NtStatus;
use wdk::*;

/// The device-action lock: a synchronization event, signalled when free
/// (taken and released at PASSIVE_LEVEL; the holder sends PnP IRPs and
/// waits for them).
static LOCK: KEvent = KEvent::new(false, true);

struct Held;

impl Drop for Held {
    fn drop(&mut self) {
        ke_set_event(&LOCK, 0);
    }
}

fn lock() -> Held {
    ke_wait_for_single_object(
        &LOCK,
        crate::ke::thread::WaitReason::Executive,
        false,
        false,
        None,
    );
    Held
}

/// Surprise removals whose remove IRPs wait for handles to close.
static PENDING: SpinLocked<Vec<PendingRemoval>, DISPATCH_LEVEL> = SpinLocked::new(Vec::new());

/// Device actions queued and finished (tests wait for them to match).
static QUEUED: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);

/// Whether every queued device action has run.
pub fn actions_idle() -> bool {
    DONE.load(Ordering::Acquire) == QUEUED.load(Ordering::Acquire)
}

fn queue(routine: fn(usize), parameter: usize) {
    QUEUED.fetch_add(1, Ordering::AcqRel);
    crate::ex::worker::ex_queue_work_item(
        crate::ex::worker::WorkQueueItem { routine, parameter },
        crate::ex::worker::WorkQueueType::DelayedWorkQueue,
    );
}

fn no_params() -> IO_STACK_LOCATION_PARAMETERS {
    IO_STACK_LOCATION_PARAMETERS {
        Others: OthersParameters {
            Argument1: ptr::null_mut(),
            Argument2: ptr::null_mut(),
            Argument3: ptr::null_mut(),
            Argument4: ptr::null_mut(),
        },
    }
}

/// Whether a file is open on any device of the node's stack
/// (`DEVICE_OBJECT.ReferenceCount`, the I/O manager's open count).
fn has_open_files(n: &DeviceNode) -> bool {
    let pdo = n.pdo.load(Ordering::Acquire) as *mut DEVICE_OBJECT;
    if pdo.is_null() {
        return false;
    }
    // SAFETY: a node's PDO is live until its remove IRP; stack devices are
    // live while attached.
    unsafe { stack_of(pdo).iter().any(|&d| (*d).ReferenceCount != 0) }
}

/// The tree's parent table and which nodes are still in the tree.
fn shape(tree: &DeviceTree) -> (Vec<Option<usize>>, Vec<bool>) {
    let n = tree.len();
    let mut parents = Vec::with_capacity(n);
    let mut live = Vec::with_capacity(n);
    for i in 0..n {
        let node = tree.node(i);
        parents.push(node.and_then(|x| x.parent));
        live.push(node.is_some_and(|x| !x.is_gone() && x.pdo.load(Ordering::Acquire) != 0));
    }
    (parents, live)
}

/// Sends one removal IRP to the top of the node's stack and records what
/// it did to the node. Returns the IRP's status.
fn send(n: &DeviceNode, irp: RemovalIrp) -> NtStatus {
    let pdo = n.pdo.load(Ordering::Acquire) as *mut DEVICE_OBJECT;
    if pdo.is_null() {
        return STATUS_SUCCESS;
    }
    // The stack's devices stay allocated across the IRP even when their
    // drivers delete them while handling it.
    // SAFETY: the node's PDO is live until its remove IRP completes.
    let stack = unsafe { stack_of(pdo) };
    let ids: Vec<_> = stack
        .iter()
        .filter_map(|&d| crate::io::object_of(d as u64, crate::io::IoKind::Device))
        .collect();
    for &id in &ids {
        let _ = crate::ob::object::ob_reference_object(id);
    }
    if irp == RemovalIrp::Remove {
        // SAFETY: as above.
        unsafe { set_stack_flags(pdo, DOE_REMOVE_PROCESSED, true) };
    }
    // SAFETY: as above.
    let (s, _) = unsafe { super::devices::send_pnp_irp(pdo, irp.minor(), no_params()) };
    match irp {
        RemovalIrp::QueryRemove if s.is_success() => {
            // SAFETY: as above.
            unsafe { set_stack_flags(pdo, DOE_REMOVE_PENDING, true) };
            n.set_state(super::DEVICE_NODE_QUERY_REMOVED);
        }
        RemovalIrp::QueryRemove => {}
        RemovalIrp::CancelRemove => {
            // SAFETY: as above.
            unsafe { set_stack_flags(pdo, DOE_REMOVE_PENDING, false) };
            if n.state() == super::DEVICE_NODE_QUERY_REMOVED {
                n.set_state(n.previous_state());
            }
        }
        RemovalIrp::SurpriseRemoval => {
            // SAFETY: as above.
            unsafe { set_stack_flags(pdo, DOE_REMOVE_PENDING, true) };
            n.set_state(super::DEVICE_NODE_AWAITING_QUEUED_REMOVAL);
        }
        RemovalIrp::Remove => {
            let surprise = n.state() != super::DEVICE_NODE_QUERY_REMOVED;
            // The node leaves the tree: its ranges go back to the arbiters.
            super::arb::release(n);
            super::clear_resources(n);
            n.pdo.store(0, Ordering::Release);
            n.set_state(if surprise {
                super::DEVICE_NODE_DELETED
            } else {
                super::DEVICE_NODE_REMOVED
            });
        }
    }
    for id in ids {
        crate::ob::object::ob_dereference_object(id);
    }
    s
}

/// Orderly removal of a device and its subtree (`CM_Query_And_Remove_
/// SubTree`: query-remove, then remove; a veto cancels). `Err` names the
/// node whose stack failed the query and its status. At PASSIVE_LEVEL.
pub fn query_and_remove_device(node: &DeviceNode) -> Result<(), (usize, NtStatus)> {
    let tree = super::device_tree().ok_or((node.index, STATUS_NO_SUCH_DEVICE))?;
    let _held = lock();
    if node.index == 0 || node.is_gone() || node.pdo.load(Ordering::Acquire) == 0 {
        return Err((node.index, STATUS_INVALID_DEVICE_STATE));
    }
    let (parents, live) = shape(tree);
    let order = removal::removal_order(&parents, &live, node.index);
    removal::orderly(&order, |i, irp| match tree.node(i) {
        Some(n) => send(n, irp).as_u32(),
        None => 0,
    })
    .map_err(|(i, s)| (i, NtStatus::from_u32(s)))
}

/// Surprise removal of `node`'s subtree: the bus no longer reports it.
/// Called with the device-action lock held (from enumeration).
pub(super) fn surprise_remove(tree: &DeviceTree, node: &DeviceNode) {
    let (parents, live) = shape(tree);
    let order = removal::removal_order(&parents, &live, node.index);
    for &i in &order {
        if let Some(n) = tree.node(i) {
            send(n, RemovalIrp::SurpriseRemoval);
        }
    }
    let mut p = PendingRemoval::new(&order, &parents);
    remove_ready(tree, &mut p);
    if !p.is_done() {
        PENDING.with(|q| q.push(p));
    }
}

/// Sends the remove IRPs that can go now and marks the waiting nodes.
fn remove_ready(tree: &DeviceTree, p: &mut PendingRemoval) {
    let ready = p.take_ready(|i| tree.node(i).is_some_and(has_open_files));
    for i in ready {
        if let Some(n) = tree.node(i) {
            send(n, RemovalIrp::Remove);
        }
    }
    for i in p.waiting() {
        if let Some(n) = tree.node(i) {
            if n.state() != super::DEVICE_NODE_DELETE_PENDING_CLOSES {
                n.set_state(super::DEVICE_NODE_DELETE_PENDING_CLOSES);
            }
        }
    }
}

/// A file on a stack being removed closed: the removes waiting for it may
/// go (on a worker thread).
pub fn handles_closed() {
    queue(run_pending, 0);
}

fn run_pending(_: usize) {
    if let Some(tree) = super::device_tree() {
        let _held = lock();
        let mut all = PENDING.with(core::mem::take);
        for p in all.iter_mut() {
            remove_ready(tree, p);
        }
        all.retain(|p| !p.is_done());
        PENDING.with(|q| q.extend(all));
    }
    DONE.fetch_add(1, Ordering::AcqRel);
}

/// Nodes waiting for their remove IRP until handles close.
pub fn pending_nodes() -> Vec<usize> {
    PENDING.with(|q| q.iter().flat_map(|p| p.waiting()).collect())
}

/// `IoInvalidateDeviceRelations(DeviceObject, BusRelations)`: the bus
/// below `pdo` reports a change; the PnP manager asks it for its children
/// again on a worker thread, makes and starts nodes for new ones and
/// surprise-removes the ones it no longer reports. Other relation types
/// are ignored (ntrs keeps no removal, ejection or power relations).
/// Callable up to DISPATCH_LEVEL.
pub fn io_invalidate_device_relations(pdo: *mut DEVICE_OBJECT, ty: u32) {
    if ty != BUS_RELATIONS || pdo.is_null() {
        return;
    }
    queue(run_enumerate, pdo as usize);
}

fn run_enumerate(pdo: usize) {
    if let Some(tree) = super::device_tree() {
        let _held = lock();
        if let Some(n) = tree.by_pdo(pdo as u64) {
            if n.state() == super::DEVICE_NODE_STARTED {
                super::devices::enumerate(tree, n, pdo as *mut DEVICE_OBJECT);
            }
        }
        // New children get their drivers and start.
        super::devices::start_devices(tree);
    }
    DONE.fetch_add(1, Ordering::AcqRel);
}

/// `IoInvalidateDeviceRelations` (export).
///
/// # Safety
/// `DeviceObject` is a PDO the caller's bus driver owns.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn IoInvalidateDeviceRelations(
    DeviceObject: *mut DEVICE_OBJECT,
    Type: u32,
) {
    io_invalidate_device_relations(DeviceObject, Type);
}
