//! A processor's DPC queue (*Windows Internals*, Part 2, ch. 8, "Deferred
//! procedure call interrupts"): the `KDPC_DATA` list of one processor, the
//! importance ordering, and the rules deciding whether queuing a DPC
//! requests a DISPATCH_LEVEL software interrupt on that processor (an IPI
//! when the DPC was queued from another processor).
//!
//! The kernel keeps one [`DpcQueue`] per processor behind that processor's
//! DPC lock (NT's `DpcData.DpcLock`), over its own name for a DPC (`T`: a
//! reference to its `KDPC`; the host tests use [`DpcId`]). Whether a DPC
//! sits in some queue already is the kernel's interlocked `KDPC.DpcData`
//! flag: [`DpcQueue::insert`] is only called for a DPC in no queue.
//!
//! Interrupt rules (the book's "DPC interrupt generation rules" table):
//!
//! | importance  | on the current processor                  | on another processor                      |
//! |-------------|-------------------------------------------|-------------------------------------------|
//! | High        | always                                    | always                                    |
//! | Medium-high | always                                    | always                                    |
//! | Medium      | always                                    | queue deeper than the maximum, or target idle |
//! | Low         | queue deeper than the maximum, or low DPC rate | queue deeper than the maximum, or target idle |
//!
//! Simplification: NT measures the DPC request rate over clock ticks
//! (`MinimumDpcRate`); here [`DpcQueue::clock_tick`] requests the interrupt
//! whenever DPCs wait and none is requested, so a low-importance DPC waits
//! at most one clock tick. No request is made while one is pending or the
//! queue is being drained (`DpcInterruptRequested`, `DpcRoutineActive`).

use alloc::collections::VecDeque;

/// `MaximumDpcQueueDepth` (NT's default is 4).
pub const MAXIMUM_DPC_QUEUE_DEPTH: usize = 4;

/// A DPC object (the host tests' name for one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DpcId(pub u32);

/// `KDPC_IMPORTANCE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Importance {
    Low,
    Medium,
    MediumHigh,
    High,
}

/// A queued DPC: what was queued and the insertion's system arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedDpc<T> {
    pub dpc: T,
    pub importance: Importance,
    pub arg1: usize,
    pub arg2: usize,
}

/// One processor's DPC queue (`KDPC_DATA` and the flags beside it in the PRCB).
#[derive(Clone, Debug)]
pub struct DpcQueue<T> {
    queue: VecDeque<QueuedDpc<T>>,
    /// `DpcInterruptRequested`.
    interrupt_requested: bool,
    /// `DpcRoutineActive`.
    routine_active: bool,
    /// DPCs run on this processor (`DpcCount`).
    dpc_count: u64,
}

impl<T: Copy + PartialEq> Default for DpcQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + PartialEq> DpcQueue<T> {
    pub const fn new() -> Self {
        DpcQueue {
            queue: VecDeque::new(),
            interrupt_requested: false,
            routine_active: false,
            dpc_count: 0,
        }
    }

    /// Pre-sizes the queue (so interrupt service routines do not allocate).
    pub fn reserve(&mut self, n: usize) {
        self.queue.reserve(n);
    }

    /// `KeInsertQueueDpc` onto this processor's queue: high importance at
    /// the head, the others at the tail. `remote`: queued from another
    /// processor; `idle`: this processor runs its idle thread. Returns
    /// whether to request the DISPATCH_LEVEL interrupt here (an IPI when
    /// `remote`), by the table above.
    pub fn insert(
        &mut self,
        dpc: T,
        importance: Importance,
        arg1: usize,
        arg2: usize,
        remote: bool,
        idle: bool,
    ) -> bool {
        let q = QueuedDpc {
            dpc,
            importance,
            arg1,
            arg2,
        };
        if importance == Importance::High {
            self.queue.push_front(q);
        } else {
            self.queue.push_back(q);
        }
        let deep = self.queue.len() > MAXIMUM_DPC_QUEUE_DEPTH;
        let wanted = match importance {
            Importance::High | Importance::MediumHigh => true,
            Importance::Medium => !remote || deep || idle,
            Importance::Low => deep || (remote && idle),
        };
        let request = wanted && !self.interrupt_requested && !self.routine_active;
        if request {
            self.interrupt_requested = true;
        }
        request
    }

    /// `KeRemoveQueueDpc`: returns whether `dpc` was queued here.
    pub fn remove(&mut self, dpc: T) -> bool {
        match self.queue.iter().position(|q| q.dpc == dpc) {
            Some(i) => {
                self.queue.remove(i);
                true
            }
            None => false,
        }
    }

    /// The clock tick (`KiUpdateRunTime`'s DPC check): true when DPCs wait
    /// and no interrupt is requested or running — the "low DPC rate" case.
    pub fn clock_tick(&mut self) -> bool {
        let want = !self.queue.is_empty() && !self.interrupt_requested && !self.routine_active;
        if want {
            self.interrupt_requested = true;
        }
        want
    }

    /// Whether DPCs are queued.
    pub fn pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// DPCs queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// `KiRetireDpcList`, one step: the next DPC to run, in queue order.
    /// The first call of a drain clears `DpcInterruptRequested` and sets
    /// `DpcRoutineActive`; when the queue is empty it clears
    /// `DpcRoutineActive` and returns None. The kernel drops its lock around
    /// each routine, so DPCs queued meanwhile run in the same drain.
    pub fn retire_next(&mut self) -> Option<QueuedDpc<T>> {
        self.interrupt_requested = false;
        match self.queue.pop_front() {
            Some(q) => {
                self.routine_active = true;
                self.dpc_count = self.dpc_count.wrapping_add(1);
                Some(q)
            }
            None => {
                self.routine_active = false;
                None
            }
        }
    }

    /// `DpcRoutineActive`: a drain is running DPC routines on this processor.
    pub fn routine_active(&self) -> bool {
        self.routine_active
    }

    /// The `!dpcs` dump: queued DPCs in run order.
    pub fn queued(&self) -> impl Iterator<Item = &QueuedDpc<T>> {
        self.queue.iter()
    }

    /// DPCs run on this processor so far.
    pub fn dpc_count(&self) -> u64 {
        self.dpc_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn drain(q: &mut DpcQueue<DpcId>) -> Vec<QueuedDpc<DpcId>> {
        let mut out = Vec::new();
        while let Some(d) = q.retire_next() {
            out.push(d);
        }
        out
    }

    fn ids(out: &[QueuedDpc<DpcId>]) -> Vec<u32> {
        out.iter().map(|q| q.dpc.0).collect()
    }

    #[test]
    fn high_at_head_others_at_tail_and_one_request_per_drain() {
        let mut q = DpcQueue::new();
        assert!(q.insert(DpcId(1), Importance::Medium, 10, 11, false, false));
        assert!(
            !q.insert(DpcId(2), Importance::Medium, 0, 0, false, false),
            "already requested"
        );
        q.insert(DpcId(4), Importance::Low, 0, 0, false, false);
        q.insert(DpcId(3), Importance::High, 0, 0, false, false);
        assert_eq!(
            q.queued().map(|d| d.dpc.0).collect::<Vec<_>>(),
            [3, 1, 2, 4]
        );
        let out = drain(&mut q);
        assert_eq!(ids(&out), [3, 1, 2, 4]);
        assert_eq!((out[1].arg1, out[1].arg2), (10, 11), "arguments kept");
        assert!(!q.pending());
        assert!(!q.routine_active());
        assert_eq!(q.dpc_count(), 4);
        assert!(
            q.insert(DpcId(1), Importance::Medium, 0, 0, false, false),
            "the drain cleared the request"
        );
    }

    #[test]
    fn low_importance_waits_for_depth_or_tick() {
        let mut q = DpcQueue::new();
        for i in 0..MAXIMUM_DPC_QUEUE_DEPTH as u32 {
            assert!(!q.insert(DpcId(i), Importance::Low, 0, 0, false, false));
        }
        assert!(
            q.insert(DpcId(4), Importance::Low, 0, 0, false, false),
            "deeper than MaximumDpcQueueDepth"
        );
        drain(&mut q);
        assert!(!q.insert(DpcId(5), Importance::Low, 0, 0, false, false));
        assert!(q.clock_tick(), "the tick requests it");
        assert!(!q.clock_tick(), "only once");
        drain(&mut q);
        assert!(!q.clock_tick(), "empty queue");
    }

    #[test]
    fn remote_dpcs_interrupt_by_importance_and_idleness() {
        let mut q = DpcQueue::new();
        assert!(q.insert(DpcId(0), Importance::High, 0, 0, true, false));
        drain(&mut q);
        assert!(q.insert(DpcId(0), Importance::MediumHigh, 0, 0, true, false));
        drain(&mut q);
        assert!(
            !q.insert(DpcId(1), Importance::Medium, 0, 0, true, false),
            "medium to a busy processor waits"
        );
        assert!(q.remove(DpcId(1)));
        assert!(!q.remove(DpcId(1)));
        assert!(
            q.insert(DpcId(1), Importance::Medium, 0, 0, true, true),
            "medium to an idle processor interrupts it"
        );
        drain(&mut q);
        assert!(!q.insert(DpcId(2), Importance::Low, 0, 0, true, false));
        q.remove(DpcId(2));
        assert!(q.insert(DpcId(2), Importance::Low, 0, 0, true, true));
    }

    #[test]
    fn queued_while_draining_runs_in_the_same_drain() {
        let mut q = DpcQueue::new();
        q.insert(DpcId(0), Importance::Medium, 0, 0, false, false);
        assert_eq!(q.retire_next().map(|d| d.dpc), Some(DpcId(0)));
        assert!(q.routine_active());
        assert!(
            !q.insert(DpcId(1), Importance::High, 0, 0, false, false),
            "no new request while the routines run"
        );
        assert_eq!(q.retire_next().map(|d| d.dpc), Some(DpcId(1)));
        assert_eq!(q.retire_next(), None);
        assert!(!q.routine_active());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Every inserted DPC is drained exactly once, high-importance ones
        /// ahead of the others, and a request is outstanding whenever a
        /// DPC that asked for one waits.
        #[test]
        fn every_dpc_runs_once(ops in proptest::collection::vec((0u32..8, 0u8..4, any::<bool>(), any::<bool>()), 1..100)) {
            let mut q = DpcQueue::new();
            let mut queued = [false; 8];
            let imps = [Importance::Low, Importance::Medium, Importance::MediumHigh, Importance::High];
            for (d, imp, remote, drain_now) in ops {
                if drain_now {
                    let out = drain(&mut q);
                    for x in &out {
                        prop_assert!(core::mem::replace(&mut queued[x.dpc.0 as usize], false));
                    }
                    prop_assert!(queued.iter().all(|q| !q));
                    let highs = out.iter().take_while(|x| x.importance == Importance::High).count();
                    prop_assert!(out[highs..].iter().all(|x| x.importance != Importance::High));
                } else if !queued[d as usize] {
                    let imp = imps[imp as usize];
                    let asked = q.insert(DpcId(d), imp, 0, 0, remote, false);
                    prop_assert!(!asked || imp >= Importance::Medium || q.len() > MAXIMUM_DPC_QUEUE_DEPTH);
                    queued[d as usize] = true;
                    if imp >= Importance::MediumHigh {
                        prop_assert!(q.interrupt_requested, "high importance left without a request");
                    }
                }
                prop_assert_eq!(q.pending(), queued.iter().any(|&x| x));
            }
        }
    }
}
