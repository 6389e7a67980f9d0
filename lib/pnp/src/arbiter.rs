//! Range arbiters (*Windows Internals*, ch. 6, "Resource arbitration"):
//! one per resource type, each knowing the windows devices may be placed
//! in (the root bus's apertures) and the ranges already taken (boot
//! configurations of devices that keep them, RAM, firmware and ECAM
//! reservations, assignments). [`assign`] satisfies one device from its
//! requirement lists.
//!
//! Policy (as Windows' arbiters in spirit, simpler in detail):
//! - alternative lists are tried in order; inside a list, descriptors come
//!   in groups (a descriptor and the `IO_RESOURCE_ALTERNATIVE`s after it),
//!   and each group gets exactly one range;
//! - a group whose boot configuration (what firmware programmed, from
//!   `IRP_MN_QUERY_RESOURCES`) fits one of its descriptors and is free keeps
//!   it, so with no conflict the assignment equals firmware's;
//! - otherwise the lowest address that is aligned, inside the descriptor's
//!   minimum/maximum and inside one of the arbiter's windows, and overlaps
//!   nothing taken (shared ranges may overlap other shared ranges of the
//!   same kind) is chosen;
//! - if a list cannot be completed its tentative ranges are released and
//!   the next list is tried; if none completes the device gets nothing and
//!   [`Conflict`] names the group that failed.
//!
//! Message-signaled interrupts are not ranges of the interrupt (line)
//! arbiter: they come back as [`Assigned`] with `message = true` for the
//! caller's interrupt translation to give vectors to.

use crate::reslist::{IoDescriptor, Requirements};
use crate::ResourceKind;
use alloc::vec::Vec;

/// Who holds a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A device (its device node's address).
    Device(u64),
    /// Not for devices: RAM, firmware, the ECAM window, an explicit
    /// reservation (the tag says which, for `!arbiter`).
    Reserved(u32),
}

/// One taken range (inclusive bounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub start: u64,
    pub end: u64,
    pub owner: Owner,
    pub shared: bool,
}

impl Allocation {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start <= end && start <= self.end
    }
}

/// A range arbiter for one resource type.
#[derive(Clone, Debug)]
pub struct RangeArbiter {
    pub kind: ResourceKind,
    /// Where searches may place a range (inclusive, sorted, disjoint).
    windows: Vec<(u64, u64)>,
    /// Taken ranges, sorted by start.
    taken: Vec<Allocation>,
}

impl RangeArbiter {
    pub fn new(kind: ResourceKind) -> Self {
        RangeArbiter {
            kind,
            windows: Vec::new(),
            taken: Vec::new(),
        }
    }

    /// Adds a window searches may allocate from (`start..=end`).
    pub fn add_window(&mut self, start: u64, end: u64) {
        if start <= end {
            self.windows.push((start, end));
            self.windows.sort_unstable();
        }
    }

    pub fn windows(&self) -> &[(u64, u64)] {
        &self.windows
    }

    /// The taken ranges, sorted by start.
    pub fn allocations(&self) -> &[Allocation] {
        &self.taken
    }

    /// Whether `start..=end` may be given with `shared`: it overlaps no
    /// taken range, or only shared ranges when `shared`.
    pub fn is_free(&self, start: u64, end: u64, shared: bool) -> bool {
        start <= end
            && self
                .taken
                .iter()
                .filter(|a| a.overlaps(start, end))
                .all(|a| shared && a.shared)
    }

    /// Takes `start..=end` for `owner`; `false` (nothing changed) if it is
    /// not free.
    pub fn take(&mut self, start: u64, end: u64, owner: Owner, shared: bool) -> bool {
        if !self.is_free(start, end, shared) {
            return false;
        }
        let at = self.taken.partition_point(|a| a.start <= start);
        self.taken.insert(
            at,
            Allocation {
                start,
                end,
                owner,
                shared,
            },
        );
        true
    }

    /// Marks `start..=end` as not available to devices whatever is there
    /// (RAM, firmware, a test reservation). Overlaps are allowed.
    pub fn reserve(&mut self, start: u64, end: u64, tag: u32) {
        if start > end {
            return;
        }
        let at = self.taken.partition_point(|a| a.start <= start);
        self.taken.insert(
            at,
            Allocation {
                start,
                end,
                owner: Owner::Reserved(tag),
                shared: false,
            },
        );
    }

    /// Releases every range `owner` holds.
    pub fn release(&mut self, owner: Owner) {
        self.taken.retain(|a| a.owner != owner);
    }

    /// The lowest `alignment`-aligned start of `length` units inside
    /// `min..=max` and a window that is free for `shared`.
    pub fn find(
        &self,
        length: u64,
        alignment: u64,
        min: u64,
        max: u64,
        shared: bool,
    ) -> Option<u64> {
        if length == 0 {
            return None;
        }
        let align = alignment.max(1);
        if !align.is_power_of_two() {
            return None;
        }
        for &(ws, we) in &self.windows {
            let lo = ws.max(min);
            let hi = we.min(max);
            if lo > hi {
                continue;
            }
            let mut cand = align_up(lo, align)?;
            loop {
                let end = cand.checked_add(length - 1)?;
                if end > hi {
                    break;
                }
                // The first taken range in the way, if any.
                let blocker = self
                    .taken
                    .iter()
                    .filter(|a| a.overlaps(cand, end) && !(shared && a.shared))
                    .map(|a| a.end)
                    .max();
                match blocker {
                    None => return Some(cand),
                    Some(e) => {
                        let Some(next) = e.checked_add(1).and_then(|n| align_up(n, align)) else {
                            break;
                        };
                        cand = next;
                    }
                }
            }
        }
        None
    }
}

fn align_up(v: u64, align: u64) -> Option<u64> {
    v.checked_add(align - 1).map(|x| x & !(align - 1))
}

/// The arbiters of the root of the tree (ntrs has one set: every bus
/// shares its parent's, as bridges forward their parent's windows).
#[derive(Clone, Debug)]
pub struct Arbiters {
    pub memory: RangeArbiter,
    pub port: RangeArbiter,
    /// Interrupt lines (raw: the bus-relative IRQ a line-based requirement
    /// names).
    pub interrupt: RangeArbiter,
    pub bus_number: RangeArbiter,
}

impl Default for Arbiters {
    fn default() -> Self {
        Self::new()
    }
}

impl Arbiters {
    pub fn new() -> Self {
        Arbiters {
            memory: RangeArbiter::new(ResourceKind::Memory),
            port: RangeArbiter::new(ResourceKind::Port),
            interrupt: RangeArbiter::new(ResourceKind::Interrupt),
            bus_number: RangeArbiter::new(ResourceKind::BusNumber),
        }
    }

    pub fn get(&self, kind: ResourceKind) -> &RangeArbiter {
        match kind {
            ResourceKind::Memory => &self.memory,
            ResourceKind::Port => &self.port,
            ResourceKind::Interrupt => &self.interrupt,
            ResourceKind::BusNumber => &self.bus_number,
        }
    }

    pub fn get_mut(&mut self, kind: ResourceKind) -> &mut RangeArbiter {
        match kind {
            ResourceKind::Memory => &mut self.memory,
            ResourceKind::Port => &mut self.port,
            ResourceKind::Interrupt => &mut self.interrupt,
            ResourceKind::BusNumber => &mut self.bus_number,
        }
    }

    /// Releases everything `owner` holds in every arbiter.
    pub fn release(&mut self, owner: Owner) {
        for k in [
            ResourceKind::Memory,
            ResourceKind::Port,
            ResourceKind::Interrupt,
            ResourceKind::BusNumber,
        ] {
            self.get_mut(k).release(owner);
        }
    }
}

/// One assigned resource (raw, bus-relative).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assigned {
    pub kind: ResourceKind,
    pub start: u64,
    pub length: u64,
    /// `CmResourceShare*` of the descriptor that was satisfied.
    pub share: u8,
    /// The descriptor's flags (memory: prefetchable, ...; interrupts:
    /// latched, message).
    pub flags: u16,
    /// A message-signaled interrupt: `length` messages, no range.
    pub message: bool,
}

/// Why a device got nothing: the first group of the last list tried that
/// could not be satisfied (`CM_PROB_NORMAL_CONFLICT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub kind: Option<ResourceKind>,
    pub length: u64,
    /// The requirement list was empty or held no group at all.
    pub empty: bool,
}

/// A boot configuration entry (what firmware programmed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootRange {
    pub kind: ResourceKind,
    pub start: u64,
    pub length: u64,
}

/// Splits a list into groups: each non-alternative descriptor starts one.
fn groups(list: &[IoDescriptor]) -> Vec<&[IoDescriptor]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=list.len() {
        if i == list.len() || !list[i].is_alternative() {
            if start < i {
                out.push(&list[start..i]);
            }
            start = i;
        }
    }
    out
}

/// Satisfies `req` for `owner`, preferring `boot` where it fits and is
/// free. On success the ranges are taken in `arb` and returned in group
/// order; on failure `arb` is unchanged.
pub fn assign(
    arb: &mut Arbiters,
    req: &Requirements,
    boot: &[BootRange],
    owner: Owner,
) -> Result<Vec<Assigned>, Conflict> {
    let mut last = Conflict {
        kind: None,
        length: 0,
        empty: true,
    };
    if req.lists.is_empty() {
        return Ok(Vec::new());
    }
    for list in &req.lists {
        let mut trial = arb.clone();
        let mut out = Vec::new();
        let mut failed = None;
        for g in groups(list) {
            match satisfy(&mut trial, g, boot, owner) {
                Some(Some(a)) => out.push(a),
                // A group of types the arbiters do not handle.
                Some(None) => {}
                None => {
                    failed = Some(Conflict {
                        kind: ResourceKind::from_cm_type(g[0].ty),
                        length: g[0].length,
                        empty: false,
                    });
                    break;
                }
            }
        }
        match failed {
            None => {
                *arb = trial;
                return Ok(out);
            }
            Some(c) => last = c,
        }
    }
    Err(last)
}

/// One group: `Some(Some(_))` assigned, `Some(None)` nothing to arbitrate,
/// `None` no descriptor of the group can be satisfied.
fn satisfy(
    arb: &mut Arbiters,
    group: &[IoDescriptor],
    boot: &[BootRange],
    owner: Owner,
) -> Option<Option<Assigned>> {
    let mut any = false;
    for d in group {
        let Some(kind) = ResourceKind::from_cm_type(d.ty) else {
            continue;
        };
        any = true;
        let shared = d.share == wdk::pnp::CmResourceShareShared;
        let a = Assigned {
            kind,
            start: 0,
            length: d.length,
            share: d.share,
            flags: d.flags,
            message: d.is_message_interrupt(),
        };
        if a.message {
            // Messages: MinimumVector..MaximumVector count them down from
            // CM_RESOURCE_INTERRUPT_MESSAGE_TOKEN.
            let count = d.max.saturating_sub(d.min) + 1;
            return Some(Some(Assigned { length: count, ..a }));
        }
        if d.length == 0 || d.min > d.max {
            continue;
        }
        let r = arb.get_mut(kind);
        // Firmware's choice first.
        let fits = |b: &&BootRange| {
            b.kind == kind
                && b.length == d.length
                && b.start >= d.min
                && b.start
                    .checked_add(d.length - 1)
                    .is_some_and(|e| e <= d.max)
                && (d.alignment <= 1 || b.start.is_multiple_of(d.alignment))
        };
        if let Some(b) = boot.iter().find(fits) {
            if r.take(b.start, b.start + b.length - 1, owner, shared) {
                return Some(Some(Assigned {
                    start: b.start,
                    ..a
                }));
            }
        }
        if let Some(s) = r.find(d.length, d.alignment, d.min, d.max, shared) {
            if r.take(s, s + d.length - 1, owner, shared) {
                return Some(Some(Assigned { start: s, ..a }));
            }
        }
    }
    if any {
        None
    } else {
        Some(None)
    }
}
