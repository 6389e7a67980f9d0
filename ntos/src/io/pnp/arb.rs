//! The PnP manager's arbiters (*Windows Internals*, ch. 6, "Resource
//! arbitration"): lib/pnp's range arbiters, one set for the machine (every
//! bus shares its root's, as bridges forward their parent's windows),
//! set up from what ntrs knows of the platform:
//!
//! - memory: every range of the firmware memory map (RAM, tag `Ram `;
//!   memory-mapped firmware regions, `Firm`) and each ECAM window
//!   (`Ecam`) are reserved, as
//!   is the platform area 0xFEC00000..4 GiB (I/O APIC, local APIC,
//!   flash: `Plat`); searches place ranges between the top of RAM below
//!   4 GiB and 0xFEC00000, or between the top of RAM above 4 GiB and
//!   2^39 (ntrs has no ACPI `_CRS` for the root bus's apertures);
//! - I/O ports: searches use 0x1000..0xFFFF (below is the ISA range);
//! - interrupt lines: the I/O APIC inputs;
//! - bus numbers: each MCFG window's range, taken by its root bus.
//!
//! Boot configurations are preferred: a device keeps what firmware gave it
//! unless that is taken (`pnp::arbiter::assign`).

use super::{DeviceNode, Resources};
use crate::ke::irql::SpinLocked;
use crate::ke::DISPATCH_LEVEL;
use ::pnp::arbiter::{Arbiters, Assigned, BootRange, Owner};
use ::pnp::reslist::Requirements;
use ::pnp::ResourceKind;
use alloc::vec::Vec;
use nt::status::*;
use nt::NtStatus;

/// Reservation tags (`!arbiter` prints them).
pub const TAG_RAM: u32 = u32::from_le_bytes(*b"Ram ");
/// Memory-mapped ranges the firmware's memory map reports
/// (`LoaderSpecialMemory`).
pub const TAG_FIRMWARE: u32 = u32::from_le_bytes(*b"Firm");
pub const TAG_ECAM: u32 = u32::from_le_bytes(*b"Ecam");
pub const TAG_PLATFORM: u32 = u32::from_le_bytes(*b"Plat");
pub const TAG_TEST: u32 = u32::from_le_bytes(*b"Test");

// The arbiters' vectors grow under the lock: nonpaged pool, which ntrs's
// pool serves at DISPATCH_LEVEL. kd reads them with `try_with`.
static ARBITERS: SpinLocked<Option<Arbiters>, DISPATCH_LEVEL> = SpinLocked::new(None);

/// Sets the arbiters up (see the module comment).
pub fn initialize(mcfg: &[::pci::mcfg::McfgEntry]) -> Result<(), NtStatus> {
    let mut a = Arbiters::new();
    let lb = crate::rtl::loader_block();
    // SAFETY: the loader's descriptor array stays mapped.
    let descs = unsafe { lb.memory_descriptors() };
    let mut top_low = 0u64;
    let mut top_high = 1u64 << 32;
    // Adjacent descriptors of one kind are one reservation.
    let mut runs: Vec<(u64, u64, u32)> = Vec::new();
    let mut sorted: Vec<_> = descs.to_vec();
    sorted.sort_unstable_by_key(|d| d.base_page);
    for d in &sorted {
        let start = d.base_page << 12;
        let Some(end) = (d.base_page + d.page_count)
            .checked_shl(12)
            .and_then(|e| e.checked_sub(1))
        else {
            continue;
        };
        let firmware = d.memory_type == nt::arc::MemoryType::SpecialMemory;
        let tag = if firmware { TAG_FIRMWARE } else { TAG_RAM };
        match runs.last_mut() {
            Some(r) if r.2 == tag && r.1.checked_add(1) == Some(start) => r.1 = end,
            _ => runs.push((start, end, tag)),
        }
        if !firmware {
            if end < 1 << 32 {
                top_low = top_low.max(end + 1);
            } else {
                top_high = top_high.max(end + 1);
            }
        }
    }
    for (s, e, tag) in runs {
        a.memory.reserve(s, e, tag);
    }
    for e in mcfg {
        let size = ((e.end_bus as u64 - e.start_bus as u64) + 1) << 20;
        let base = e.base + ((e.start_bus as u64) << 20);
        a.memory.reserve(base, base + size - 1, TAG_ECAM);
        a.bus_number
            .add_window(e.start_bus as u64, e.end_bus as u64);
    }
    a.memory.reserve(0xFEC0_0000, 0xFFFF_FFFF, TAG_PLATFORM);
    a.memory.add_window(top_low.max(0x10_0000), 0xFEBF_FFFF);
    a.memory.add_window(top_high, (1 << 39) - 1);
    a.port.add_window(0x1000, 0xFFFF);
    let lines = crate::hal::apic::ioapic_entries().max(16);
    a.interrupt.add_window(0, lines as u64 - 1);
    ARBITERS.with(|x| *x = Some(a));
    Ok(())
}

/// Runs `f` on the arbiters (`None` before `initialize`).
pub fn with<R>(f: impl FnOnce(&mut Arbiters) -> R) -> Option<R> {
    ARBITERS.with(|x| x.as_mut().map(f))
}

fn owner(n: &DeviceNode) -> Owner {
    Owner::Device(n.address())
}

/// The boot configuration of a node, as the arbiter takes it.
pub fn boot_ranges(n: &DeviceNode) -> Vec<BootRange> {
    n.bus
        .boot_config
        .iter()
        .filter_map(|d| {
            let kind = ResourceKind::from_cm_type(d.Type)?;
            matches!(kind, ResourceKind::Memory | ResourceKind::Port).then(|| BootRange {
                kind,
                start: d.Start(),
                length: d.Length() as u64,
            })
        })
        .collect()
}

/// Satisfies `req` for `n` (see `pnp::arbiter::assign`).
pub fn assign(n: &DeviceNode, req: &Requirements) -> Result<Vec<Assigned>, NtStatus> {
    let boot = boot_ranges(n);
    match with(|a| ::pnp::arbiter::assign(a, req, &boot, owner(n))) {
        Some(Ok(v)) => Ok(v),
        Some(Err(c)) => {
            crate::dbg_println!(
                "PnP: {}: resource conflict ({:?}, {:#x} units): CM_PROB_NORMAL_CONFLICT",
                n.instance_path,
                c.kind,
                c.length
            );
            Err(super::STATUS_CONFLICTING_ADDRESSES)
        }
        None => Err(STATUS_DEVICE_NOT_READY),
    }
}

/// Releases everything `n` holds.
pub fn release(n: &DeviceNode) {
    with(|a| a.release(owner(n)));
}

/// A root bus takes its window's bus numbers; they are its resources.
pub fn take_root_bus(n: &DeviceNode, e: &::pci::mcfg::McfgEntry) -> Result<(), NtStatus> {
    let (s, end) = (e.start_bus as u64, e.end_bus as u64);
    if with(|a| a.bus_number.take(s, end, owner(n), false)) != Some(true) {
        return Err(super::STATUS_CONFLICTING_ADDRESSES);
    }
    let d = super::resource::bus_number(s as u32, (end - s + 1) as u32);
    super::set_resources(
        n,
        Resources {
            raw: super::resource::CmResourceList::new(0, 0, &[d]),
            translated: super::resource::CmResourceList::new(0, 0, &[d]),
            interrupt: None,
        },
    )
}

/// Reserves `start..=end` of `kind` (tests force conflicts with it).
pub fn reserve(kind: ResourceKind, start: u64, end: u64, tag: u32) {
    with(|a| a.get_mut(kind).reserve(start, end, tag));
}

/// Drops every reservation tagged `tag` of `kind`.
pub fn unreserve(kind: ResourceKind, tag: u32) {
    with(|a| a.get_mut(kind).release(Owner::Reserved(tag)));
}

/// One arbiter's allocations and windows, copied for kd.
pub type Snapshot = (Vec<::pnp::arbiter::Allocation>, Vec<(u64, u64)>);

/// A copy of one arbiter's allocations and windows for kd (`None` if the
/// lock stays held or the arbiters are not set up).
pub fn try_snapshot(kind: ResourceKind) -> Option<Snapshot> {
    let g = ARBITERS.try_lock(100_000)?;
    let a = g.as_ref()?.get(kind);
    Some((a.allocations().to_vec(), a.windows().to_vec()))
}
