//! Deferred procedure calls (*Windows Internals*, Part 2, ch. 8, "Deferred
//! procedure call interrupts"): per-processor DPC queues drained by the
//! DISPATCH_LEVEL software interrupt.

use super::irql::{SpinLocked, SYNCH_LEVEL};
use super::{current_processor_number, HIGH_LEVEL};
use crate::hal::MAX_PROCESSORS;
use alloc::collections::VecDeque;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// `KDPC_IMPORTANCE`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpcImportance {
    Low = 0,
    Medium = 1,
    High = 2,
    MediumHigh = 3,
}

/// `PKDEFERRED_ROUTINE`: (Dpc, DeferredContext, SystemArgument1, SystemArgument2).
pub type DeferredRoutine = fn(&KDpc, usize, usize, usize);

/// `KDPC`.
pub struct KDpc {
    pub routine: DeferredRoutine,
    pub context: usize,
    pub importance: DpcImportance,
    /// Target processor (`KeSetTargetProcessorDpc`); `None` = the inserting processor.
    pub target: Option<u32>,
    inserted: AtomicBool,
    args: UnsafeCell<(usize, usize)>,
}

// SAFETY: `args` is written only by the inserter that won `inserted`, and read
// by the draining processor after it removed the DPC from the queue.
unsafe impl Sync for KDpc {}

impl KDpc {
    /// `KeInitializeDpc`.
    pub const fn new(routine: DeferredRoutine, context: usize) -> Self {
        KDpc {
            routine,
            context,
            importance: DpcImportance::Medium,
            target: None,
            inserted: AtomicBool::new(false),
            args: UnsafeCell::new((0, 0)),
        }
    }

    /// `KeSetTargetProcessorDpc` (at initialization).
    pub const fn with_target(mut self, processor: u32) -> Self {
        self.target = Some(processor);
        self
    }

    /// `KeSetImportanceDpc` (at initialization).
    pub const fn with_importance(mut self, importance: DpcImportance) -> Self {
        self.importance = importance;
        self
    }

    /// Whether the DPC sits in a queue now.
    pub fn is_inserted(&self) -> bool {
        self.inserted.load(Ordering::Acquire)
    }
}

/// Low-importance DPCs request the interrupt only once this many are queued
/// (NT's `MaximumDpcQueueDepth` default is 4); otherwise the next clock tick drains them.
pub const MAXIMUM_DPC_QUEUE_DEPTH: usize = 4;

pub struct DpcData {
    pub queue: VecDeque<&'static KDpc>,
    pub count: u64,
}

/// `Prcb->DpcData`, one per processor, taken at HIGH_LEVEL (ISRs insert).
pub static DPC_DATA: [SpinLocked<DpcData, HIGH_LEVEL>; MAX_PROCESSORS] = [const {
    SpinLocked::new(DpcData {
        queue: VecDeque::new(),
        count: 0,
    })
}; MAX_PROCESSORS];

/// DPC routines run per processor (for `!dpcs` and tests).
pub static DPCS_RUN: [AtomicU64; MAX_PROCESSORS] = [const { AtomicU64::new(0) }; MAX_PROCESSORS];

/// Pre-sizes the queues so ISRs never allocate.
pub fn initialize() {
    for d in DPC_DATA.iter() {
        d.with(|d| d.queue.reserve(256));
    }
}

/// `KeInsertQueueDpc`: queues the DPC on its target processor (high
/// importance at the head) and requests the dispatch interrupt there;
/// returns false if it was already queued.
pub fn ke_insert_queue_dpc(dpc: &'static KDpc, arg1: usize, arg2: usize) -> bool {
    if dpc.inserted.swap(true, Ordering::AcqRel) {
        return false;
    }
    // SAFETY: this inserter won `inserted`; nobody reads args until it is dequeued.
    unsafe { *dpc.args.get() = (arg1, arg2) };
    let me = current_processor_number();
    let target = dpc.target.unwrap_or(me).min(MAX_PROCESSORS as u32 - 1);
    let depth = DPC_DATA[target as usize].with(|d| {
        if dpc.importance == DpcImportance::High {
            d.queue.push_front(dpc);
        } else {
            d.queue.push_back(dpc);
        }
        d.count += 1;
        d.queue.len()
    });
    let request =
        target != me || dpc.importance != DpcImportance::Low || depth >= MAXIMUM_DPC_QUEUE_DEPTH;
    if request {
        super::sched::request_dispatch(target);
    }
    true
}

/// `KeRemoveQueueDpc`: true if the DPC was queued and is now removed.
pub fn ke_remove_queue_dpc(dpc: &'static KDpc) -> bool {
    for d in DPC_DATA.iter() {
        let removed = d.with(|d| {
            if let Some(i) = d.queue.iter().position(|q| core::ptr::eq(*q, dpc)) {
                d.queue.remove(i);
                true
            } else {
                false
            }
        });
        if removed {
            dpc.inserted.store(false, Ordering::Release);
            return true;
        }
    }
    false
}

/// Whether this processor has DPCs waiting (the clock requests a drain).
pub fn pending() -> bool {
    let me = current_processor_number() as usize;
    DPC_DATA[me].with(|d| !d.queue.is_empty())
}

/// `KiRetireDpcList`: runs every queued DPC at DISPATCH_LEVEL.
pub fn drain_dpc_queue() {
    let me = current_processor_number() as usize;
    while let Some(dpc) = DPC_DATA[me].with(|d| d.queue.pop_front()) {
        // SAFETY: the DPC was dequeued by this processor; its args were set before queueing.
        let (a1, a2) = unsafe { *dpc.args.get() };
        dpc.inserted.store(false, Ordering::Release);
        (dpc.routine)(dpc, dpc.context, a1, a2);
        DPCS_RUN[me].fetch_add(1, Ordering::Relaxed);
    }
    let _ = SYNCH_LEVEL;
}

/// `!dpcs`: every processor's queue.
pub fn kd_dpcs() {
    for (p, d) in DPC_DATA.iter().enumerate() {
        if !super::sched::PROCESSOR_SCHED[p]
            .active
            .load(Ordering::Relaxed)
        {
            continue;
        }
        let (n, list): (usize, alloc::vec::Vec<(u64, u64, DpcImportance)>) = d.with(|d| {
            (
                d.queue.len(),
                d.queue
                    .iter()
                    .map(|q| {
                        (
                            *q as *const KDpc as u64,
                            q.routine as *const () as u64,
                            q.importance,
                        )
                    })
                    .collect(),
            )
        });
        crate::dbg_println!(
            "CPU {p}: {n} queued, {} run",
            DPCS_RUN[p].load(Ordering::Relaxed)
        );
        if n > 0 {
            crate::dbg_println!("CPU Type      KDPC             Function");
        }
        for (k, f, imp) in list {
            crate::dbg_println!(" {p}: {imp:?}  {k:016x} {f:016x}");
        }
    }
}
