//! Deferred procedure calls (*Windows Internals*, Part 2, ch. 8, "Deferred
//! procedure call interrupts"): each processor's DPC queue is the
//! host-tested `ke::dpc::DpcQueue` (importance ordering and the interrupt
//! request rules) behind that processor's DPC lock, taken at HIGH_LEVEL
//! because interrupt service routines queue DPCs. The queue is drained by
//! the DISPATCH_LEVEL software interrupt, a self-IPI at vector 0x2F that
//! the APIC holds until CR8 drops below 2 (NT's "request a DISPATCH_LEVEL
//! interrupt"); a DPC queued for another processor interrupts it with an
//! IPI at that vector.

use super::irql::SpinLocked;
use super::{current_processor_number, HIGH_LEVEL};
use crate::hal::MAX_PROCESSORS;
use ::ke::dpc::DpcQueue;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

pub use ::ke::dpc::Importance as DpcImportance;

/// `PKDEFERRED_ROUTINE`: (Dpc, DeferredContext, SystemArgument1, SystemArgument2).
pub type DeferredRoutine = fn(&KDpc, usize, usize, usize);

/// `KDPC`. The system arguments of an insertion travel in the queue entry.
pub struct KDpc {
    pub routine: DeferredRoutine,
    pub context: usize,
    pub importance: DpcImportance,
    /// Target processor (`KeSetTargetProcessorDpc`); `None` = the inserting processor.
    pub target: Option<u32>,
    /// `DpcData != NULL`: the DPC sits in a queue (set by the one inserter
    /// that wins it, cleared when it is dequeued).
    inserted: AtomicBool,
    /// The processor whose queue holds it while `inserted`.
    queued_on: AtomicU32,
}

impl KDpc {
    /// `KeInitializeDpc`.
    pub const fn new(routine: DeferredRoutine, context: usize) -> Self {
        KDpc {
            routine,
            context,
            importance: DpcImportance::Medium,
            target: None,
            inserted: AtomicBool::new(false),
            queued_on: AtomicU32::new(0),
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

/// A queued DPC (the same DPC when it is the same `KDPC`).
#[derive(Clone, Copy)]
pub struct DpcRef(pub &'static KDpc);

impl PartialEq for DpcRef {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::eq(self.0, other.0)
    }
}

/// `Prcb->DpcData`, one per processor, taken at HIGH_LEVEL.
static DPC_QUEUES: [SpinLocked<DpcQueue<DpcRef>, HIGH_LEVEL>; MAX_PROCESSORS] =
    [const { SpinLocked::new(DpcQueue::new()) }; MAX_PROCESSORS];

/// Pre-sizes the queues so ISRs never allocate.
pub fn initialize() {
    for d in DPC_QUEUES.iter() {
        d.with(|d| d.reserve(256));
    }
}

/// `KeInsertQueueDpc`: queues the DPC on its target processor (the
/// inserting one if it has none or names no running processor) and
/// requests the dispatch interrupt there when the importance rules say so;
/// returns false if it was already queued.
pub fn ke_insert_queue_dpc(dpc: &'static KDpc, arg1: usize, arg2: usize) -> bool {
    if dpc.inserted.swap(true, Ordering::AcqRel) {
        return false;
    }
    // At HIGH_LEVEL (as NT inserts) the processor number stays ours.
    let old = super::irql::ke_raise_irql(HIGH_LEVEL.max(super::irql()));
    let me = current_processor_number();
    let target = match dpc.target {
        Some(t) if t < super::processor_count() => t,
        _ => me,
    };
    dpc.queued_on.store(target, Ordering::Release);
    let idle = super::sched::PROCESSOR_SCHED[target as usize]
        .idle
        .load(Ordering::Relaxed);
    let request = DPC_QUEUES[target as usize]
        .with(|q| q.insert(DpcRef(dpc), dpc.importance, arg1, arg2, target != me, idle));
    if request {
        super::sched::request_dispatch(target);
    }
    super::irql::ke_lower_irql(old);
    true
}

/// `KeRemoveQueueDpc`: true if the DPC was queued and is now removed.
pub fn ke_remove_queue_dpc(dpc: &'static KDpc) -> bool {
    if !dpc.is_inserted() {
        return false;
    }
    let p = dpc.queued_on.load(Ordering::Acquire) as usize;
    let removed = DPC_QUEUES[p.min(MAX_PROCESSORS - 1)].with(|q| q.remove(DpcRef(dpc)));
    if removed {
        dpc.inserted.store(false, Ordering::Release);
    }
    removed
}

/// The clock tick's DPC check on this processor: true when DPCs wait for
/// a drain nobody requested (the caller requests the dispatch interrupt).
pub fn clock_tick() -> bool {
    DPC_QUEUES[current_processor_number() as usize].with(|q| q.clock_tick())
}

/// `DpcRoutineActive` of this processor: a DPC routine is running here.
/// Below DISPATCH_LEVEL none can be (and the processor number could change
/// under the caller, so it is not read there).
pub fn dpc_routine_active() -> bool {
    if super::irql() < super::DISPATCH_LEVEL {
        return false;
    }
    DPC_QUEUES[current_processor_number() as usize].with(|q| q.routine_active())
}

/// `KiRetireDpcList`: runs every queued DPC at DISPATCH_LEVEL, the queue
/// lock dropped around each routine (DPCs queued meanwhile run in the same
/// drain).
pub fn drain_dpc_queue() {
    let me = current_processor_number() as usize;
    while let Some(q) = DPC_QUEUES[me].with(|d| d.retire_next()) {
        let dpc = q.dpc.0;
        dpc.inserted.store(false, Ordering::Release);
        (dpc.routine)(dpc, dpc.context, q.arg1, q.arg2);
    }
}

/// DPC routines run on processor `p` (`!prcb`).
pub fn dpcs_run(p: u32) -> u64 {
    DPC_QUEUES
        .get(p as usize)
        .map_or(0, |d| d.with(|d| d.dpc_count()))
}

/// `!dpcs`: every processor's queue.
pub fn kd_dpcs(_args: &str) {
    for (p, d) in DPC_QUEUES.iter().enumerate() {
        if !super::sched::PROCESSOR_SCHED[p]
            .active
            .load(Ordering::Relaxed)
        {
            continue;
        }
        let Some(g) = d.try_lock(1 << 20) else {
            crate::dbg_println!("CPU {p}: DPC queue locked (held by a stopped processor)");
            continue;
        };
        let (n, run, list): (usize, u64, alloc::vec::Vec<(u64, u64, DpcImportance)>) = (
            g.len(),
            g.dpc_count(),
            g.queued()
                .map(|q| {
                    (
                        q.dpc.0 as *const KDpc as u64,
                        q.dpc.0.routine as *const () as u64,
                        q.importance,
                    )
                })
                .collect(),
        );
        drop(g);
        crate::dbg_println!("CPU {p}: {n} queued, {run} run");
        if n > 0 {
            crate::dbg_println!("CPU Type      KDPC             Function");
        }
        for (k, f, imp) in list {
            crate::dbg_println!(" {p}: {imp:?}  {k:016x} {f:016x}");
        }
    }
}
