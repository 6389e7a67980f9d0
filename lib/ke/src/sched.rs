//! Scheduler policy across processors (*Windows Internals*, Part 1, ch. 4,
//! "Thread states", "Context switching", "Scheduling scenarios",
//! "Multiprocessor systems"): thread states, processor selection for a
//! readied thread (`KiSelectProcessor`), preemption through the standby
//! slot, quantum end with round robin and boost decay, `NtYieldExecution`,
//! waits, and idle processors finding work in other processors' queues
//! (`KiSearchForNewThread`).
//!
//! The kernel holds one [`Scheduler`] under its dispatcher lock, calls it on
//! each event, and carries out what it answers (send an IPI, request the
//! dispatch interrupt, switch contexts). A processor is idle when it has
//! neither a running nor a standby thread (its idle thread runs).

use crate::objects::ThreadId;
use crate::priority::{boosted_priority, decayed_priority, Quantum};
use crate::ready::ReadyQueues;
use alloc::vec::Vec;
use core::fmt;
use nt::status::{STATUS_NO_YIELD_PERFORMED, STATUS_SUCCESS};
use nt::NtStatus;

/// Processors supported (one affinity word; no processor groups).
pub const MAX_PROCESSORS: u32 = 64;

/// `KTHREAD_STATE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    Initialized,
    Ready,
    Running,
    Standby,
    Terminated,
    Waiting,
    Transition,
    DeferredReady,
    GateWaitObsolete,
    WaitingForProcessInSwap,
}

/// The scheduling part of a `KTHREAD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedThread {
    pub state: ThreadState,
    /// Current (possibly boosted) priority.
    pub priority: u8,
    pub base_priority: u8,
    /// Processors it may run on (bit n = processor n).
    pub affinity: u64,
    pub ideal_processor: u32,
    /// The processor it last ran on or was queued for (`NextProcessor`).
    pub last_processor: u32,
    pub quantum: Quantum,
}

/// What `ready_thread` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadyAction {
    /// The processor was idle: the thread is its standby thread. `ipi` when
    /// it is not the current processor (wake it).
    RunIdle { processor: u32, ipi: bool },
    /// The thread outranks what the processor runs: it is the standby
    /// thread there; request the dispatch interrupt (IPI if `ipi`).
    Preempt { processor: u32, ipi: bool },
    /// Queued in the processor's ready queue.
    Queued { processor: u32 },
}

/// A context switch the kernel must perform on a processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    /// The thread switched out (None: the idle thread).
    pub old: Option<ThreadId>,
    /// The thread switched in (None: the idle thread).
    pub new: Option<ThreadId>,
}

/// Errors of the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    BadThread(ThreadId),
    BadProcessor(u32),
    /// The thread is not in a state the operation applies to.
    WrongState(ThreadId, ThreadState),
    /// An affinity with no configured processor.
    BadAffinity(u64),
    BadPriority(u8),
}

impl fmt::Display for SchedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedError::BadThread(t) => write!(f, "thread {} unknown", t.0),
            SchedError::BadProcessor(p) => write!(f, "processor {p} does not exist"),
            SchedError::WrongState(t, s) => write!(f, "thread {} is {:?}", t.0, s),
            SchedError::BadAffinity(a) => write!(f, "affinity {a:#x} names no processor"),
            SchedError::BadPriority(p) => write!(f, "priority {p} outside 0..=31"),
        }
    }
}

#[derive(Clone, Debug)]
struct Prcb {
    ready: ReadyQueues<ThreadId>,
    running: Option<ThreadId>,
    standby: Option<ThreadId>,
}

/// Scheduler state of every processor and thread.
#[derive(Clone, Debug)]
pub struct Scheduler {
    threads: Vec<Option<SchedThread>>,
    prcbs: Vec<Prcb>,
    active: u64,
}

impl Scheduler {
    /// `processors` processors (at most 64) and thread ids `0..threads`.
    pub fn with_capacity(processors: u32, threads: u32) -> Result<Self, SchedError> {
        if processors == 0 || processors > MAX_PROCESSORS {
            return Err(SchedError::BadProcessor(processors));
        }
        Ok(Scheduler {
            threads: alloc::vec![None; threads as usize],
            prcbs: (0..processors)
                .map(|_| Prcb {
                    ready: ReadyQueues::new(),
                    running: None,
                    standby: None,
                })
                .collect(),
            active: if processors == 64 {
                u64::MAX
            } else {
                (1u64 << processors) - 1
            },
        })
    }

    fn prcb(&self, p: u32) -> Result<&Prcb, SchedError> {
        self.prcbs
            .get(p as usize)
            .ok_or(SchedError::BadProcessor(p))
    }

    fn prcb_mut(&mut self, p: u32) -> Result<&mut Prcb, SchedError> {
        self.prcbs
            .get_mut(p as usize)
            .ok_or(SchedError::BadProcessor(p))
    }

    /// The thread's scheduling state.
    pub fn thread(&self, t: ThreadId) -> Result<&SchedThread, SchedError> {
        self.threads
            .get(t.0 as usize)
            .and_then(|x| x.as_ref())
            .ok_or(SchedError::BadThread(t))
    }

    fn thread_mut(&mut self, t: ThreadId) -> Result<&mut SchedThread, SchedError> {
        self.threads
            .get_mut(t.0 as usize)
            .and_then(|x| x.as_mut())
            .ok_or(SchedError::BadThread(t))
    }

    /// `KeInitializeThread` (scheduling part): the thread is Initialized;
    /// `ready_thread` starts it.
    pub fn create_thread(
        &mut self,
        t: ThreadId,
        base_priority: u8,
        affinity: u64,
        ideal_processor: u32,
        quantum: u8,
    ) -> Result<(), SchedError> {
        if base_priority > 31 {
            return Err(SchedError::BadPriority(base_priority));
        }
        if affinity & self.active == 0 {
            return Err(SchedError::BadAffinity(affinity));
        }
        self.prcb(ideal_processor)?;
        let slot = self
            .threads
            .get_mut(t.0 as usize)
            .ok_or(SchedError::BadThread(t))?;
        *slot = Some(SchedThread {
            state: ThreadState::Initialized,
            priority: base_priority,
            base_priority,
            affinity,
            ideal_processor,
            last_processor: ideal_processor,
            quantum: Quantum::new(quantum),
        });
        Ok(())
    }

    /// Forgets a terminated (or never started) thread.
    pub fn delete_thread(&mut self, t: ThreadId) -> Result<(), SchedError> {
        let s = self.thread(t)?.state;
        if !matches!(s, ThreadState::Terminated | ThreadState::Initialized) {
            return Err(SchedError::WrongState(t, s));
        }
        self.threads[t.0 as usize] = None;
        Ok(())
    }

    /// The running thread of processor `p` (None: idle thread).
    pub fn running(&self, p: u32) -> Option<ThreadId> {
        self.prcbs.get(p as usize).and_then(|c| c.running)
    }

    /// The standby thread of processor `p`.
    pub fn standby(&self, p: u32) -> Option<ThreadId> {
        self.prcbs.get(p as usize).and_then(|c| c.standby)
    }

    /// Processor `p`'s ready queue (kd `!ready`), highest priority first.
    pub fn ready_list(&self, p: u32) -> Vec<(ThreadId, u8)> {
        let mut v = Vec::new();
        if let Some(c) = self.prcbs.get(p as usize) {
            for prio in (0..32u8).rev() {
                v.extend(c.ready.queue(prio).map(|&t| (t, prio)));
            }
        }
        v
    }

    fn is_idle(&self, p: u32) -> bool {
        self.prcbs
            .get(p as usize)
            .is_some_and(|c| c.running.is_none() && c.standby.is_none() && c.ready.is_empty())
    }

    /// The priority a thread must beat to preempt processor `p`: its
    /// standby thread's, else its running thread's (-1 when idle).
    fn occupant_priority(&self, p: u32) -> i16 {
        let Some(c) = self.prcbs.get(p as usize) else {
            return i16::MAX;
        };
        c.standby
            .or(c.running)
            .and_then(|t| self.thread(t).ok())
            .map_or(-1, |t| i16::from(t.priority))
    }

    /// `KiSelectProcessor`: the ideal processor if idle, else the last
    /// processor if idle, else any idle processor in the affinity (lowest
    /// number first), else the ideal processor (or, outside the affinity,
    /// the lowest processor in it).
    pub fn select_processor(&self, t: ThreadId) -> Result<u32, SchedError> {
        let th = self.thread(t)?;
        let allowed = th.affinity & self.active;
        let ok = |p: u32| p < 64 && allowed & (1u64 << p) != 0;
        for p in [th.ideal_processor, th.last_processor] {
            if ok(p) && self.is_idle(p) {
                return Ok(p);
            }
        }
        if let Some(p) = (0..self.prcbs.len() as u32).find(|&p| ok(p) && self.is_idle(p)) {
            return Ok(p);
        }
        if ok(th.ideal_processor) {
            Ok(th.ideal_processor)
        } else {
            Ok(allowed.trailing_zeros())
        }
    }

    /// `KiReadyThread` / `KiDeferredReadyThread` from processor `current`:
    /// the thread goes to an idle processor's standby slot, or preempts the
    /// chosen processor when its priority is strictly higher than the
    /// standby or running thread there (a displaced standby thread goes back
    /// to the head of the ready queue), or is queued at the tail.
    pub fn ready_thread(&mut self, t: ThreadId, current: u32) -> Result<ReadyAction, SchedError> {
        self.ready_thread_at(t, current, false)
    }

    fn ready_thread_at(
        &mut self,
        t: ThreadId,
        current: u32,
        at_head: bool,
    ) -> Result<ReadyAction, SchedError> {
        self.prcb(current)?;
        let s = self.thread(t)?.state;
        if !matches!(
            s,
            ThreadState::Initialized
                | ThreadState::Waiting
                | ThreadState::DeferredReady
                | ThreadState::Transition
        ) {
            return Err(SchedError::WrongState(t, s));
        }
        let p = self.select_processor(t)?;
        let idle = self.is_idle(p);
        let occupant = self.occupant_priority(p);
        let th = self.thread_mut(t)?;
        th.last_processor = p;
        let prio = th.priority;
        let ipi = p != current;
        if idle || i16::from(prio) > occupant {
            th.state = ThreadState::Standby;
            let old = self.prcb_mut(p)?.standby.replace(t);
            if let Some(o) = old {
                let op = self.thread(o)?.priority;
                self.thread_mut(o)?.state = ThreadState::Ready;
                self.prcb_mut(p)?.ready.insert(o, op, true);
            }
            return Ok(if idle {
                ReadyAction::RunIdle { processor: p, ipi }
            } else {
                ReadyAction::Preempt { processor: p, ipi }
            });
        }
        th.state = ThreadState::Ready;
        self.prcb_mut(p)?.ready.insert(t, prio, at_head);
        Ok(ReadyAction::Queued { processor: p })
    }

    /// `KiUnwaitThread` → `KiReadyThread`: a satisfied wait boosts the
    /// thread by `increment` (see [`crate::objects::Unwait`]) and readies it.
    pub fn unwait_thread(
        &mut self,
        t: ThreadId,
        increment: u8,
        current: u32,
    ) -> Result<ReadyAction, SchedError> {
        let th = self.thread_mut(t)?;
        if th.state != ThreadState::Waiting {
            return Err(SchedError::WrongState(t, th.state));
        }
        th.priority = boosted_priority(th.base_priority, th.priority, increment);
        self.ready_thread(t, current)
    }

    /// `KiSearchForNewThread` / `KiSelectReadyThread`: takes the best thread
    /// for processor `p`: its standby thread, else the highest-priority
    /// thread in its own queue, else (idle search) the highest-priority
    /// thread in another processor's queue whose affinity includes `p`.
    pub fn find_ready_thread(&mut self, p: u32) -> Result<Option<ThreadId>, SchedError> {
        if let Some(t) = self.prcb_mut(p)?.standby.take() {
            return Ok(Some(t));
        }
        if let Some((t, _)) = self.prcb_mut(p)?.ready.select(0) {
            return Ok(Some(t));
        }
        let mut best: Option<(u8, u32, ThreadId)> = None;
        for (q, c) in self.prcbs.iter().enumerate() {
            for prio in (0..32u8).rev() {
                if best.is_some_and(|b| b.0 >= prio) {
                    break;
                }
                let found = c.ready.queue(prio).copied().find(|&t| {
                    self.thread(t)
                        .is_ok_and(|th| p < 64 && th.affinity & (1u64 << p) != 0)
                });
                if let Some(t) = found {
                    best = Some((prio, q as u32, t));
                    break;
                }
            }
        }
        Ok(best.map(|(prio, q, t)| {
            self.prcbs[q as usize].ready.remove(t, prio);
            t
        }))
    }

    fn run(&mut self, p: u32, new: Option<ThreadId>) -> Result<(), SchedError> {
        if let Some(n) = new {
            let th = self.thread_mut(n)?;
            th.state = ThreadState::Running;
            th.last_processor = p;
        }
        self.prcb_mut(p)?.running = new;
        Ok(())
    }

    /// Starts processor `p`'s first thread (or after idle): the standby or
    /// best ready thread becomes running. None when nothing is ready.
    pub fn dispatch_idle(&mut self, p: u32) -> Result<Option<Switch>, SchedError> {
        if self.prcb(p)?.running.is_some() {
            return Ok(None);
        }
        let new = self.find_ready_thread(p)?;
        self.run(p, new)?;
        Ok(new.map(|n| Switch {
            old: None,
            new: Some(n),
        }))
    }

    /// The dispatch interrupt on `p` with a standby thread (preemption):
    /// the running thread is preempted and re-enters its ready queue at the
    /// head (it keeps the rest of its quantum), the standby thread runs.
    pub fn preempt(&mut self, p: u32) -> Result<Option<Switch>, SchedError> {
        let Some(new) = self.prcb_mut(p)?.standby.take() else {
            return Ok(None);
        };
        let old = self.prcb(p)?.running;
        if let Some(o) = old {
            let prio = self.thread(o)?.priority;
            self.thread_mut(o)?.state = ThreadState::Ready;
            self.prcb_mut(p)?.ready.insert(o, prio, true);
        }
        self.run(p, Some(new))?;
        Ok(Some(Switch {
            old,
            new: Some(new),
        }))
    }

    /// The clock tick on `p` (`KiUpdateRunTime`): charges the running
    /// thread one tick of quantum; true when its quantum has ended (the
    /// kernel requests the dispatch interrupt and calls `quantum_end`).
    pub fn clock_tick(&mut self, p: u32) -> Result<bool, SchedError> {
        match self.prcb(p)?.running {
            Some(t) => Ok(self.thread_mut(t)?.quantum.tick()),
            None => Ok(false),
        }
    }

    /// Quantum end on `p` (`KiQuantumEnd`): the quantum is refilled, a
    /// boosted priority decays one level, and if a thread of at least the
    /// (new) priority is ready, the running thread goes to the tail of its
    /// queue and that thread runs (round robin). Returns the switch, if any.
    pub fn quantum_end(&mut self, p: u32) -> Result<Option<Switch>, SchedError> {
        let Some(old) = self.prcb(p)?.running else {
            return Ok(None);
        };
        let th = self.thread_mut(old)?;
        th.quantum.replenish();
        th.priority = decayed_priority(th.base_priority, th.priority);
        let prio = th.priority;
        let c = self.prcb_mut(p)?;
        if c.standby.is_none() && c.ready.highest_priority().is_none_or(|h| h < prio) {
            return Ok(None);
        }
        self.thread_mut(old)?.state = ThreadState::Ready;
        self.prcb_mut(p)?.ready.insert(old, prio, false);
        let new = self.find_ready_thread(p)?;
        self.run(p, new)?;
        Ok(Some(Switch {
            old: Some(old),
            new,
        }))
    }

    /// `NtYieldExecution` on `p`: if another thread is ready (on this
    /// processor, or one it could take from another), the running thread
    /// goes to the tail of its ready queue with a fresh quantum and the best
    /// ready thread runs (`STATUS_SUCCESS`); else `STATUS_NO_YIELD_PERFORMED`.
    pub fn yield_execution(&mut self, p: u32) -> Result<(NtStatus, Option<Switch>), SchedError> {
        let Some(old) = self.prcb(p)?.running else {
            return Ok((STATUS_NO_YIELD_PERFORMED, None));
        };
        let Some(new) = self.find_ready_thread(p)? else {
            return Ok((STATUS_NO_YIELD_PERFORMED, None));
        };
        let th = self.thread_mut(old)?;
        th.quantum.replenish();
        th.state = ThreadState::Ready;
        let prio = th.priority;
        self.prcb_mut(p)?.ready.insert(old, prio, false);
        self.run(p, Some(new))?;
        Ok((
            STATUS_SUCCESS,
            Some(Switch {
                old: Some(old),
                new: Some(new),
            }),
        ))
    }

    /// The running thread of `p` blocks (`KeWaitForSingleObject` →
    /// `KiSwapThread`): it becomes Waiting and the next thread runs.
    pub fn wait(&mut self, p: u32) -> Result<Switch, SchedError> {
        self.leave(p, ThreadState::Waiting)
    }

    /// The running thread of `p` terminates (`KeTerminateThread`).
    pub fn terminate(&mut self, p: u32) -> Result<Switch, SchedError> {
        self.leave(p, ThreadState::Terminated)
    }

    fn leave(&mut self, p: u32, state: ThreadState) -> Result<Switch, SchedError> {
        let old = self.prcb(p)?.running;
        if let Some(o) = old {
            self.thread_mut(o)?.state = state;
        }
        let new = self.find_ready_thread(p)?;
        self.run(p, new)?;
        Ok(Switch { old, new })
    }

    /// `KeSetPriorityThread` (ready queue bookkeeping only; the kernel
    /// re-readies a running thread's processor if it should be preempted).
    pub fn set_priority(&mut self, t: ThreadId, priority: u8) -> Result<(), SchedError> {
        if priority > 31 {
            return Err(SchedError::BadPriority(priority));
        }
        let th = *self.thread(t)?;
        if th.state == ThreadState::Ready {
            let p = th.last_processor;
            self.prcb_mut(p)?.ready.remove(t, th.priority);
            self.prcb_mut(p)?.ready.insert(t, priority, false);
        }
        let th = self.thread_mut(t)?;
        th.priority = priority;
        th.base_priority = priority;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const Q: u8 = crate::priority::CLIENT_QUANTUM;

    fn t(n: u32) -> ThreadId {
        ThreadId(n)
    }

    fn sched(processors: u32) -> Scheduler {
        Scheduler::with_capacity(processors, 16).unwrap()
    }

    #[test]
    fn idle_ideal_then_last_then_any_idle_then_ideal() {
        let mut s = sched(4);
        s.create_thread(t(1), 8, 0b1111, 2, Q).unwrap();
        assert_eq!(
            s.ready_thread(t(1), 0),
            Ok(ReadyAction::RunIdle {
                processor: 2,
                ipi: true
            })
        );
        s.dispatch_idle(2).unwrap();
        s.create_thread(t(2), 8, 0b1111, 2, Q).unwrap();
        assert_eq!(
            s.ready_thread(t(2), 0),
            Ok(ReadyAction::RunIdle {
                processor: 0,
                ipi: false
            }),
            "ideal busy: lowest idle processor"
        );
        s.dispatch_idle(0).unwrap();
        s.create_thread(t(3), 8, 0b1111, 1, Q).unwrap();
        s.thread_mut(t(3)).unwrap().last_processor = 3;
        // Ideal 1 idle: chosen over last 3.
        assert_eq!(s.select_processor(t(3)), Ok(1));
        s.create_thread(t(4), 4, 0b0100, 2, Q).unwrap();
        assert_eq!(
            s.ready_thread(t(4), 0),
            Ok(ReadyAction::Queued { processor: 2 }),
            "affinity to a busy processor: queued behind equal-or-higher"
        );
        assert_eq!(s.ready_list(2), [(t(4), 4)]);
    }

    #[test]
    fn strict_priority_preemption_via_standby() {
        let mut s = sched(1);
        s.create_thread(t(1), 8, 1, 0, Q).unwrap();
        s.create_thread(t(2), 8, 1, 0, Q).unwrap();
        s.create_thread(t(3), 12, 1, 0, Q).unwrap();
        s.ready_thread(t(1), 0).unwrap();
        s.dispatch_idle(0).unwrap();
        assert_eq!(s.running(0), Some(t(1)));
        assert_eq!(
            s.ready_thread(t(2), 0),
            Ok(ReadyAction::Queued { processor: 0 }),
            "equal priority does not preempt"
        );
        assert_eq!(
            s.ready_thread(t(3), 0),
            Ok(ReadyAction::Preempt {
                processor: 0,
                ipi: false
            })
        );
        assert_eq!(s.thread(t(3)).unwrap().state, ThreadState::Standby);
        assert_eq!(
            s.preempt(0),
            Ok(Some(Switch {
                old: Some(t(1)),
                new: Some(t(3))
            }))
        );
        assert_eq!(
            s.ready_list(0),
            [(t(1), 8), (t(2), 8)],
            "preempted thread keeps its turn at the head"
        );
        assert_eq!(s.preempt(0), Ok(None));
    }

    #[test]
    fn round_robin_on_quantum_end() {
        let mut s = sched(1);
        for i in 1..=3 {
            s.create_thread(t(i), 8, 1, 0, Q).unwrap();
            s.ready_thread(t(i), 0).unwrap();
        }
        s.dispatch_idle(0).unwrap();
        let mut order = Vec::new();
        for _ in 0..6 {
            order.push(s.running(0).unwrap().0);
            assert!(!s.clock_tick(0).unwrap());
            assert!(s.clock_tick(0).unwrap(), "2 ticks per client quantum");
            s.quantum_end(0).unwrap();
        }
        assert_eq!(order, [1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn quantum_end_alone_keeps_running() {
        let mut s = sched(1);
        s.create_thread(t(1), 8, 1, 0, Q).unwrap();
        s.create_thread(t(2), 7, 1, 0, Q).unwrap();
        s.ready_thread(t(1), 0).unwrap();
        s.ready_thread(t(2), 0).unwrap();
        s.dispatch_idle(0).unwrap();
        assert_eq!(s.quantum_end(0), Ok(None), "only a lower thread is ready");
        assert_eq!(s.running(0), Some(t(1)));
    }

    #[test]
    fn boost_then_decay() {
        let mut s = sched(1);
        s.create_thread(t(1), 8, 1, 0, Q).unwrap();
        s.create_thread(t(2), 8, 1, 0, Q).unwrap();
        s.ready_thread(t(1), 0).unwrap();
        s.dispatch_idle(0).unwrap();
        s.wait(0).unwrap();
        s.ready_thread(t(2), 0).unwrap();
        s.dispatch_idle(0).unwrap();
        assert_eq!(s.running(0), Some(t(2)));
        // An event set with IO_KEYBOARD_INCREMENT (6) boosts t1 to 14: preempts.
        assert!(matches!(
            s.unwait_thread(t(1), 6, 0),
            Ok(ReadyAction::Preempt { .. })
        ));
        s.preempt(0).unwrap();
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(s.thread(t(1)).unwrap().priority);
            assert_eq!(s.quantum_end(0), Ok(None), "still above t2");
        }
        assert_eq!(seen, [14, 13, 12, 11, 10]);
        // The sixth quantum end decays 9 to base 8: t2 (8) gets its round-robin turn.
        assert!(s.quantum_end(0).unwrap().is_some());
        assert_eq!(s.thread(t(1)).unwrap().priority, 8);
        assert_eq!(s.running(0), Some(t(2)));
        assert_eq!(
            s.unwait_thread(t(2), 1, 0),
            Err(SchedError::WrongState(t(2), ThreadState::Running))
        );
    }

    #[test]
    fn yield_with_nothing_ready() {
        let mut s = sched(2);
        s.create_thread(t(1), 8, 0b11, 0, Q).unwrap();
        s.ready_thread(t(1), 0).unwrap();
        s.dispatch_idle(0).unwrap();
        assert_eq!(s.yield_execution(0).unwrap().0, STATUS_NO_YIELD_PERFORMED);
        s.create_thread(t(2), 4, 0b01, 0, Q).unwrap();
        s.ready_thread(t(2), 0).unwrap();
        let (st, sw) = s.yield_execution(0).unwrap();
        assert_eq!(st, STATUS_SUCCESS);
        assert_eq!(sw.unwrap().new, Some(t(2)));
        assert_eq!(s.ready_list(0), [(t(1), 8)]);
    }

    #[test]
    fn idle_processor_steals_within_affinity() {
        let mut s = sched(2);
        // Processor 0 busy with t1; t2, t3 queued on 0; t3 may run on 1 only via its affinity.
        s.create_thread(t(1), 10, 0b01, 0, Q).unwrap();
        s.create_thread(t(2), 9, 0b01, 0, Q).unwrap();
        s.create_thread(t(3), 6, 0b11, 0, Q).unwrap();
        s.ready_thread(t(1), 0).unwrap();
        s.dispatch_idle(0).unwrap();
        s.ready_thread(t(2), 0).unwrap();
        // t3's ideal is 0 (busy); processor 1 is idle: goes there directly.
        assert_eq!(
            s.ready_thread(t(3), 0),
            Ok(ReadyAction::RunIdle {
                processor: 1,
                ipi: true
            })
        );
        s.dispatch_idle(1).unwrap();
        assert_eq!(s.running(1), Some(t(3)));
        s.wait(1).unwrap();
        assert_eq!(s.running(1), None, "t2 is bound to processor 0: not stolen");
        // Put t3 on processor 0's queue by hand, as if readied while 1 was busy.
        s.thread_mut(t(3)).unwrap().state = ThreadState::Ready;
        s.prcbs[0].ready.insert(t(3), 6, false);
        assert_eq!(s.dispatch_idle(1).unwrap().unwrap().new, Some(t(3)));
        assert_eq!(s.ready_list(0), [(t(2), 9)]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(Scheduler::with_capacity(0, 1).is_err());
        assert!(Scheduler::with_capacity(65, 1).is_err());
        let mut s = sched(2);
        assert_eq!(
            s.create_thread(t(1), 32, 1, 0, Q),
            Err(SchedError::BadPriority(32))
        );
        assert_eq!(
            s.create_thread(t(1), 8, 0b100, 0, Q),
            Err(SchedError::BadAffinity(0b100))
        );
        assert_eq!(
            s.create_thread(t(99), 8, 1, 0, Q),
            Err(SchedError::BadThread(t(99)))
        );
        assert_eq!(
            s.create_thread(t(1), 8, 1, 5, Q),
            Err(SchedError::BadProcessor(5))
        );
        assert_eq!(s.ready_thread(t(2), 0), Err(SchedError::BadThread(t(2))));
        s.create_thread(t(1), 8, 1, 0, Q).unwrap();
        s.ready_thread(t(1), 0).unwrap();
        assert_eq!(
            s.ready_thread(t(1), 0),
            Err(SchedError::WrongState(t(1), ThreadState::Standby))
        );
        assert_eq!(
            s.delete_thread(t(1)),
            Err(SchedError::WrongState(t(1), ThreadState::Standby))
        );
        s.dispatch_idle(0).unwrap();
        s.terminate(0).unwrap();
        assert_eq!(s.delete_thread(t(1)), Ok(()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Random readies, ticks, waits, yields and dispatches on 3
        /// processors: every thread is in exactly one place matching its
        /// state, affinity is respected, and no processor runs a thread of
        /// lower priority than one in its own ready queue at a dispatch point.
        #[test]
        fn invariants(ops in proptest::collection::vec((0u8..6, 0u32..8, 0u32..3), 1..200)) {
            let mut s = Scheduler::with_capacity(3, 8).unwrap();
            for i in 0..8u32 {
                let aff = [0b001, 0b010, 0b100, 0b011, 0b111][i as usize % 5];
                s.create_thread(t(i), 4 + (i as u8 % 5) * 2, aff, aff.trailing_zeros(), Q).unwrap();
            }
            for (op, th, p) in ops {
                match op {
                    0 => { let _ = s.ready_thread(t(th), p); }
                    1 => { let _ = s.unwait_thread(t(th), 2, p); }
                    2 => { if s.clock_tick(p).unwrap() { s.quantum_end(p).unwrap(); } }
                    3 => { if s.running(p).is_some() { s.wait(p).unwrap(); } }
                    4 => { s.yield_execution(p).unwrap(); }
                    _ => { s.preempt(p).unwrap(); s.dispatch_idle(p).unwrap(); }
                }
                let mut seen = [0u8; 8];
                for q in 0..3u32 {
                    for (x, prio) in s.ready_list(q) {
                        seen[x.0 as usize] += 1;
                        let th = s.thread(x).unwrap();
                        prop_assert_eq!(th.state, ThreadState::Ready);
                        prop_assert_eq!(th.priority, prio);
                        prop_assert!(th.affinity & (1 << q) != 0, "queued outside affinity");
                    }
                    for (x, st) in [(s.running(q), ThreadState::Running), (s.standby(q), ThreadState::Standby)] {
                        if let Some(x) = x {
                            seen[x.0 as usize] += 1;
                            let th = s.thread(x).unwrap();
                            prop_assert_eq!(th.state, st);
                            prop_assert!(th.affinity & (1 << q) != 0, "affinity");
                        }
                    }
                }
                for i in 0..8u32 {
                    let st = s.thread(t(i)).unwrap().state;
                    let placed = matches!(st, ThreadState::Ready | ThreadState::Running | ThreadState::Standby);
                    prop_assert_eq!(seen[i as usize], placed as u8, "thread {} {:?}", i, st);
                }
            }
        }
    }
}
