//! Per-processor DPC queues (*Windows Internals*, Part 2, ch. 8, "Deferred
//! procedure call interrupts"): `KDPC` objects with an importance and an
//! optional target processor, queued on a processor's `DpcData` list, and
//! the rules deciding whether queuing one requests a DISPATCH_LEVEL software
//! interrupt (or an IPI when it targets another processor).
//!
//! A DPC is named by a [`DpcId`] the kernel chooses (the index of its
//! `KDPC`); the queues are an arena indexed by it. The kernel calls these
//! under its DPC lock and acts on the returned [`DpcRequest`].
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
//! (`MinimumDpcRate`). Here the "low DPC rate" case is the clock tick
//! itself: [`DpcQueues::clock_tick`] requests the interrupt for any queue
//! that still holds DPCs and has none requested, so a low-importance DPC
//! runs at the latest one tick later. No interrupt is requested while one is
//! already pending or the queue is being drained (`DpcInterruptRequested`,
//! `DpcRoutineActive`).

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;

/// `MaximumDpcQueueDepth` (NT's default is 4).
pub const MAXIMUM_DPC_QUEUE_DEPTH: usize = 4;

/// A DPC object.
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

/// What the caller must do after queuing a DPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpcRequest {
    /// Nothing: the DPC runs when the queue next drains.
    None,
    /// Request a DISPATCH_LEVEL software interrupt on the current processor.
    SoftwareInterrupt,
    /// Send an IPI (at the DPC vector) to this processor.
    Ipi(u32),
}

/// A queued DPC as the drain returns it: routine id and its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedDpc {
    pub dpc: DpcId,
    pub arg1: usize,
    pub arg2: usize,
}

/// Errors of the DPC queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpcError {
    /// The DPC id is beyond the arena's capacity.
    BadDpc(DpcId),
    /// The processor number is beyond the processors configured.
    BadProcessor(u32),
}

impl fmt::Display for DpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DpcError::BadDpc(d) => write!(f, "DPC {} outside the DPC table", d.0),
            DpcError::BadProcessor(p) => write!(f, "processor {p} does not exist"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Dpc {
    importance: Importance,
    target: Option<u32>,
    /// `DpcData`: the processor whose queue holds it.
    queued_on: Option<u32>,
    arg1: usize,
    arg2: usize,
}

#[derive(Clone, Debug, Default)]
struct Processor {
    queue: VecDeque<DpcId>,
    interrupt_requested: bool,
    routine_active: bool,
    idle: bool,
    /// DPCs run on this processor (`DpcCount`).
    dpc_count: u64,
}

/// The DPC queues of every processor.
#[derive(Clone, Debug)]
pub struct DpcQueues {
    dpcs: Vec<Dpc>,
    processors: Vec<Processor>,
}

impl DpcQueues {
    /// Queues for `processors` processors and DPC ids `0..dpcs`.
    pub fn with_capacity(processors: u32, dpcs: u32) -> Self {
        let blank = Dpc {
            importance: Importance::Medium,
            target: None,
            queued_on: None,
            arg1: 0,
            arg2: 0,
        };
        DpcQueues {
            dpcs: alloc::vec![blank; dpcs as usize],
            processors: (0..processors)
                .map(|_| Processor {
                    queue: VecDeque::with_capacity(dpcs as usize),
                    ..Processor::default()
                })
                .collect(),
        }
    }

    fn dpc(&self, d: DpcId) -> Result<&Dpc, DpcError> {
        self.dpcs.get(d.0 as usize).ok_or(DpcError::BadDpc(d))
    }

    fn dpc_mut(&mut self, d: DpcId) -> Result<&mut Dpc, DpcError> {
        self.dpcs.get_mut(d.0 as usize).ok_or(DpcError::BadDpc(d))
    }

    fn cpu(&mut self, p: u32) -> Result<&mut Processor, DpcError> {
        self.processors
            .get_mut(p as usize)
            .ok_or(DpcError::BadProcessor(p))
    }

    /// `KeInitializeDpc` (medium importance, no target).
    pub fn initialize(&mut self, d: DpcId) -> Result<(), DpcError> {
        let x = self.dpc_mut(d)?;
        if x.queued_on.is_none() {
            x.importance = Importance::Medium;
            x.target = None;
        }
        Ok(())
    }

    /// `KeSetImportanceDpc`.
    pub fn set_importance(&mut self, d: DpcId, importance: Importance) -> Result<(), DpcError> {
        self.dpc_mut(d)?.importance = importance;
        Ok(())
    }

    /// `KeSetTargetProcessorDpc`.
    pub fn set_target(&mut self, d: DpcId, processor: u32) -> Result<(), DpcError> {
        if processor as usize >= self.processors.len() {
            return Err(DpcError::BadProcessor(processor));
        }
        self.dpc_mut(d)?.target = Some(processor);
        Ok(())
    }

    /// Tells the queues whether processor `p` runs its idle thread (it
    /// decides whether medium/low DPCs targeted at it interrupt it).
    pub fn set_idle(&mut self, p: u32, idle: bool) -> Result<(), DpcError> {
        self.cpu(p)?.idle = idle;
        Ok(())
    }

    /// Whether `d` is queued (`KDPC.DpcData != NULL`).
    pub fn is_inserted(&self, d: DpcId) -> bool {
        self.dpc(d).is_ok_and(|x| x.queued_on.is_some())
    }

    /// `KeInsertQueueDpc` from processor `current`: `Ok(None)` if it was
    /// already queued (NT returns FALSE), else the interrupt to request.
    /// High importance goes to the head of the queue, the others to the tail.
    pub fn insert(
        &mut self,
        d: DpcId,
        current: u32,
        arg1: usize,
        arg2: usize,
    ) -> Result<Option<DpcRequest>, DpcError> {
        if current as usize >= self.processors.len() {
            return Err(DpcError::BadProcessor(current));
        }
        let x = *self.dpc(d)?;
        if x.queued_on.is_some() {
            return Ok(None);
        }
        let target = x.target.unwrap_or(current);
        let cpu = self.cpu(target)?;
        if x.importance == Importance::High {
            cpu.queue.push_front(d);
        } else {
            cpu.queue.push_back(d);
        }
        let deep = cpu.queue.len() > MAXIMUM_DPC_QUEUE_DEPTH;
        let remote = target != current;
        let wanted = match x.importance {
            Importance::High | Importance::MediumHigh => true,
            Importance::Medium => !remote || deep || cpu.idle,
            Importance::Low => deep || (remote && cpu.idle),
        };
        let request = if wanted && !cpu.interrupt_requested && !cpu.routine_active {
            cpu.interrupt_requested = true;
            if remote {
                DpcRequest::Ipi(target)
            } else {
                DpcRequest::SoftwareInterrupt
            }
        } else {
            DpcRequest::None
        };
        let x = self.dpc_mut(d)?;
        x.queued_on = Some(target);
        x.arg1 = arg1;
        x.arg2 = arg2;
        Ok(Some(request))
    }

    /// `KeRemoveQueueDpc`: returns whether it was queued.
    pub fn remove(&mut self, d: DpcId) -> Result<bool, DpcError> {
        let Some(p) = self.dpc(d)?.queued_on else {
            return Ok(false);
        };
        let cpu = self.cpu(p)?;
        if let Some(i) = cpu.queue.iter().position(|&q| q == d) {
            cpu.queue.remove(i);
        }
        self.dpc_mut(d)?.queued_on = None;
        Ok(true)
    }

    /// The clock tick on processor `p` (`KiUpdateRunTime`'s DPC check):
    /// requests the DISPATCH_LEVEL interrupt if DPCs wait and none is
    /// requested — the "low DPC rate" case of the rules above.
    pub fn clock_tick(&mut self, p: u32) -> Result<bool, DpcError> {
        let cpu = self.cpu(p)?;
        let want = !cpu.queue.is_empty() && !cpu.interrupt_requested && !cpu.routine_active;
        if want {
            cpu.interrupt_requested = true;
        }
        Ok(want)
    }

    /// Whether processor `p` has DPCs queued.
    pub fn pending(&self, p: u32) -> bool {
        self.processors
            .get(p as usize)
            .is_some_and(|c| !c.queue.is_empty())
    }

    /// `KiRetireDpcList` on processor `p` (the DISPATCH_LEVEL interrupt):
    /// dequeues every DPC in order into `out` (the kernel calls each
    /// routine; in NT the lock is dropped per DPC, so DPCs queued meanwhile
    /// run in the same drain — call again until it returns 0).
    pub fn drain(&mut self, p: u32, out: &mut Vec<QueuedDpc>) -> Result<usize, DpcError> {
        let cpu = self.cpu(p)?;
        cpu.interrupt_requested = false;
        let taken: Vec<DpcId> = cpu.queue.drain(..).collect();
        cpu.dpc_count = cpu.dpc_count.wrapping_add(taken.len() as u64);
        for &d in &taken {
            let x = self.dpc_mut(d)?;
            x.queued_on = None;
            out.push(QueuedDpc {
                dpc: d,
                arg1: x.arg1,
                arg2: x.arg2,
            });
        }
        Ok(taken.len())
    }

    /// Marks processor `p` as running its DPC routines (`DpcRoutineActive`).
    pub fn set_routine_active(&mut self, p: u32, active: bool) -> Result<(), DpcError> {
        self.cpu(p)?.routine_active = active;
        Ok(())
    }

    /// The `!dpcs` dump of processor `p`: queued DPCs in run order with
    /// importance and target.
    pub fn dump(&self, p: u32) -> Vec<(DpcId, Importance, Option<u32>)> {
        self.processors.get(p as usize).map_or(Vec::new(), |c| {
            c.queue
                .iter()
                .filter_map(|&d| self.dpc(d).ok().map(|x| (d, x.importance, x.target)))
                .collect()
        })
    }

    /// DPCs run on processor `p` so far.
    pub fn dpc_count(&self, p: u32) -> u64 {
        self.processors.get(p as usize).map_or(0, |c| c.dpc_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(out: &[QueuedDpc]) -> Vec<u32> {
        out.iter().map(|q| q.dpc.0).collect()
    }

    #[test]
    fn high_at_head_others_at_tail_and_double_insert_is_false() {
        let mut q = DpcQueues::with_capacity(1, 8);
        q.set_importance(DpcId(3), Importance::High).unwrap();
        q.set_importance(DpcId(4), Importance::Low).unwrap();
        assert_eq!(
            q.insert(DpcId(1), 0, 10, 11),
            Ok(Some(DpcRequest::SoftwareInterrupt))
        );
        assert_eq!(
            q.insert(DpcId(1), 0, 0, 0),
            Ok(None),
            "KeInsertQueueDpc returns FALSE when queued"
        );
        assert_eq!(
            q.insert(DpcId(2), 0, 0, 0),
            Ok(Some(DpcRequest::None)),
            "already requested"
        );
        q.insert(DpcId(4), 0, 0, 0).unwrap();
        q.insert(DpcId(3), 0, 0, 0).unwrap();
        assert_eq!(
            q.dump(0).iter().map(|d| d.0 .0).collect::<Vec<_>>(),
            [3, 1, 2, 4]
        );
        let mut out = Vec::new();
        assert_eq!(q.drain(0, &mut out), Ok(4));
        assert_eq!(ids(&out), [3, 1, 2, 4]);
        assert_eq!(
            (out[1].arg1, out[1].arg2),
            (10, 11),
            "first insert's arguments kept"
        );
        assert!(!q.is_inserted(DpcId(1)));
        assert!(!q.pending(0));
        assert_eq!(q.dpc_count(0), 4);
    }

    #[test]
    fn low_importance_waits_for_depth_or_tick() {
        let mut q = DpcQueues::with_capacity(1, 8);
        for i in 0..8 {
            q.set_importance(DpcId(i), Importance::Low).unwrap();
        }
        for i in 0..MAXIMUM_DPC_QUEUE_DEPTH as u32 {
            assert_eq!(q.insert(DpcId(i), 0, 0, 0), Ok(Some(DpcRequest::None)));
        }
        assert_eq!(
            q.insert(DpcId(4), 0, 0, 0),
            Ok(Some(DpcRequest::SoftwareInterrupt)),
            "deeper than MaximumDpcQueueDepth"
        );
        let mut out = Vec::new();
        q.drain(0, &mut out).unwrap();
        assert_eq!(q.insert(DpcId(5), 0, 0, 0), Ok(Some(DpcRequest::None)));
        assert_eq!(q.clock_tick(0), Ok(true), "the tick requests it");
        assert_eq!(q.clock_tick(0), Ok(false), "only once");
        out.clear();
        q.drain(0, &mut out).unwrap();
        assert_eq!(q.clock_tick(0), Ok(false), "empty queue");
    }

    #[test]
    fn targeted_dpcs_ipi_the_target_by_importance() {
        let mut q = DpcQueues::with_capacity(4, 8);
        q.set_target(DpcId(0), 2).unwrap();
        q.set_importance(DpcId(0), Importance::High).unwrap();
        assert_eq!(q.insert(DpcId(0), 0, 0, 0), Ok(Some(DpcRequest::Ipi(2))));
        assert!(q.pending(2) && !q.pending(0));
        q.set_target(DpcId(1), 3).unwrap();
        assert_eq!(
            q.insert(DpcId(1), 0, 0, 0),
            Ok(Some(DpcRequest::None)),
            "medium to a busy processor waits"
        );
        q.remove(DpcId(1)).unwrap();
        q.set_idle(3, true).unwrap();
        assert_eq!(
            q.insert(DpcId(1), 0, 0, 0),
            Ok(Some(DpcRequest::Ipi(3))),
            "medium to an idle processor interrupts it"
        );
        q.set_target(DpcId(2), 1).unwrap();
        q.set_importance(DpcId(2), Importance::MediumHigh).unwrap();
        assert_eq!(q.insert(DpcId(2), 0, 0, 0), Ok(Some(DpcRequest::Ipi(1))));
        assert_eq!(q.set_target(DpcId(2), 4), Err(DpcError::BadProcessor(4)));
        assert_eq!(q.insert(DpcId(9), 0, 0, 0), Err(DpcError::BadDpc(DpcId(9))));
        assert_eq!(q.insert(DpcId(5), 7, 0, 0), Err(DpcError::BadProcessor(7)));
    }

    #[test]
    fn remove_and_routine_active() {
        let mut q = DpcQueues::with_capacity(1, 4);
        assert_eq!(q.remove(DpcId(0)), Ok(false));
        q.insert(DpcId(0), 0, 0, 0).unwrap();
        assert_eq!(q.remove(DpcId(0)), Ok(true));
        assert!(!q.pending(0));
        q.set_routine_active(0, true).unwrap();
        let mut out = Vec::new();
        q.drain(0, &mut out).unwrap();
        assert_eq!(
            q.insert(DpcId(1), 0, 0, 0),
            Ok(Some(DpcRequest::None)),
            "queued while the routines run: picked up by the same drain"
        );
        assert_eq!(q.drain(0, &mut out), Ok(1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Every inserted DPC is drained exactly once, in an order where
        /// high-importance ones precede the others.
        #[test]
        fn every_dpc_runs_once(ops in proptest::collection::vec((0u32..8, 0u8..4, any::<bool>()), 1..100)) {
            let mut q = DpcQueues::with_capacity(1, 8);
            let mut queued = [false; 8];
            for (d, imp, drain) in ops {
                if drain {
                    let mut out = Vec::new();
                    q.drain(0, &mut out).unwrap();
                    let n = out.len();
                    for x in &out {
                        prop_assert!(core::mem::replace(&mut queued[x.dpc.0 as usize], false));
                    }
                    prop_assert!(queued.iter().all(|q| !q));
                    let highs = out.iter().take_while(|x| q.dpc(x.dpc).unwrap().importance == Importance::High).count();
                    prop_assert!(out[highs..n].iter().all(|x| q.dpc(x.dpc).unwrap().importance != Importance::High));
                } else {
                    let imp = [Importance::Low, Importance::Medium, Importance::MediumHigh, Importance::High][imp as usize];
                    if !queued[d as usize] {
                        q.set_importance(DpcId(d), imp).unwrap();
                    }
                    let r = q.insert(DpcId(d), 0, 0, 0).unwrap();
                    prop_assert_eq!(r.is_some(), !queued[d as usize]);
                    queued[d as usize] = true;
                }
                prop_assert_eq!(q.pending(0), queued.iter().any(|&x| x));
            }
        }
    }
}
