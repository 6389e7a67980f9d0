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

/// The most processors a [`Scheduler`] takes: one 64-bit affinity word (no
/// processor groups). The kernel configures as many as its processor
/// blocks allow (`hal::MAX_PROCESSORS`).
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

impl ThreadState {
    /// The name `!thread` prints.
    pub fn name(self) -> &'static str {
        match self {
            ThreadState::Initialized => "INITIALIZED",
            ThreadState::Ready => "READY",
            ThreadState::Running => "RUNNING",
            ThreadState::Standby => "STANDBY",
            ThreadState::Terminated => "TERMINATED",
            ThreadState::Waiting => "WAIT",
            ThreadState::Transition => "TRANSITION",
            ThreadState::DeferredReady => "DEFERREDREADY",
            ThreadState::GateWaitObsolete => "GATEWAIT",
            ThreadState::WaitingForProcessInSwap => "WAITINGFORPROCESSINSWAP",
        }
    }
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

impl ReadyAction {
    /// The processor whose dispatch interrupt must run (None: queued only).
    pub fn interrupt(self) -> Option<u32> {
        match self {
            ReadyAction::RunIdle { processor, .. } | ReadyAction::Preempt { processor, .. } => {
                Some(processor)
            }
            ReadyAction::Queued { .. } => None,
        }
    }
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
    /// An affinity with no active processor.
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

impl SchedError {
    /// A number for the error kind (bugcheck parameters).
    pub fn code(&self) -> u64 {
        match self {
            SchedError::BadThread(_) => 1,
            SchedError::BadProcessor(_) => 2,
            SchedError::WrongState(..) => 3,
            SchedError::BadAffinity(_) => 4,
            SchedError::BadPriority(_) => 5,
        }
    }

    /// The thread, processor, affinity or priority the error names.
    pub fn subject(&self) -> u64 {
        match *self {
            SchedError::BadThread(t) | SchedError::WrongState(t, _) => u64::from(t.0),
            SchedError::BadProcessor(p) => u64::from(p),
            SchedError::BadAffinity(a) => a,
            SchedError::BadPriority(p) => u64::from(p),
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

fn bit(p: u32) -> u64 {
    if p < 64 {
        1u64 << p
    } else {
        0
    }
}

impl Scheduler {
    /// `processors` processors (at most 64), all active, and thread ids
    /// `0..threads`.
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

    /// Processor `p` starts or stops taking threads (`KeActiveProcessors`):
    /// the kernel activates each processor once it runs its idle thread.
    /// Threads already placed on an inactive processor stay there.
    pub fn set_active(&mut self, p: u32, active: bool) -> Result<(), SchedError> {
        self.prcb(p)?;
        if active {
            self.active |= bit(p);
        } else {
            self.active &= !bit(p);
        }
        Ok(())
    }

    /// `KeActiveProcessors`.
    pub fn active_processors(&self) -> u64 {
        self.active
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
    /// `ready_thread` starts it. The quantum is in units
    /// ([`crate::priority::CLIENT_QUANTUM`]).
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

    /// The standby thread of processor `p` (`Prcb->NextThread`).
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
    fn select_processor(&self, t: ThreadId) -> Result<u32, SchedError> {
        let th = self.thread(t)?;
        let allowed = th.affinity & self.active;
        if allowed == 0 {
            return Err(SchedError::BadAffinity(th.affinity));
        }
        let ok = |p: u32| allowed & bit(p) != 0;
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
    /// of at least `min_priority` for processor `p`: its standby thread or
    /// the highest-priority thread in its own queue, whichever ranks higher
    /// (the standby thread on a tie), else, if `steal` (idle search), the
    /// highest-priority thread in another processor's queue whose affinity
    /// includes `p`.
    fn find_ready_thread(
        &mut self,
        p: u32,
        min_priority: u8,
        steal: bool,
    ) -> Result<Option<ThreadId>, SchedError> {
        let queued = self.prcb(p)?.ready.highest_priority();
        if let Some(t) = self.prcb(p)?.standby {
            let sp = self.thread(t)?.priority;
            if sp >= min_priority && queued.is_none_or(|q| sp >= q) {
                self.prcb_mut(p)?.standby = None;
                return Ok(Some(t));
            }
        }
        if let Some((t, _)) = self.prcb_mut(p)?.ready.select(min_priority) {
            return Ok(Some(t));
        }
        if !steal {
            return Ok(None);
        }
        let mut best: Option<(u8, u32, ThreadId)> = None;
        for (q, c) in self.prcbs.iter().enumerate() {
            for prio in (min_priority..32u8).rev() {
                if best.is_some_and(|b| b.0 >= prio) {
                    break;
                }
                let found = c
                    .ready
                    .queue(prio)
                    .copied()
                    .find(|&t| self.thread(t).is_ok_and(|th| th.affinity & bit(p) != 0));
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

    /// `KiDispatchInterrupt` on `p` (the DISPATCH_LEVEL software interrupt
    /// after DPCs): quantum end if the clock said so; else an idle
    /// processor takes the best ready thread it may run (its standby thread
    /// first); else the standby thread or a thread of the processor's own
    /// queue that strictly outranks the running thread preempts it (the
    /// preempted thread keeps its turn at the head of its queue). Returns
    /// the context switch to make, if any.
    pub fn dispatch(&mut self, p: u32, quantum_end: bool) -> Result<Option<Switch>, SchedError> {
        if quantum_end {
            if let Some(sw) = self.quantum_end(p)? {
                return Ok(Some(sw));
            }
        }
        let Some(old) = self.prcb(p)?.running else {
            let new = self.find_ready_thread(p, 0, true)?;
            self.run(p, new)?;
            return Ok(new.map(|n| Switch {
                old: None,
                new: Some(n),
            }));
        };
        let prio = self.thread(old)?.priority;
        if prio == 31 {
            return Ok(None);
        }
        let Some(new) = self.find_ready_thread(p, prio + 1, false)? else {
            return Ok(None);
        };
        self.thread_mut(old)?.state = ThreadState::Ready;
        self.prcb_mut(p)?.ready.insert(old, prio, true);
        self.run(p, Some(new))?;
        Ok(Some(Switch {
            old: Some(old),
            new: Some(new),
        }))
    }

    /// The running thread's quantum as the kernel's clock charged it
    /// (the clock interrupt counts without the dispatcher lock and the
    /// kernel hands the count back here before each scheduling decision).
    pub fn set_quantum(&mut self, t: ThreadId, remaining: u8) -> Result<(), SchedError> {
        let th = self.thread_mut(t)?;
        th.quantum.remaining = remaining.min(th.quantum.reset);
        Ok(())
    }

    /// Quantum end on `p` (`KiQuantumEnd`): the quantum is refilled, a
    /// boosted priority decays one level, and if a thread of at least the
    /// (new) priority is ready, the running thread goes to the tail of its
    /// queue and that thread runs (round robin). Returns the switch, if any.
    fn quantum_end(&mut self, p: u32) -> Result<Option<Switch>, SchedError> {
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
        let new = self.find_ready_thread(p, 0, true)?;
        self.run(p, new)?;
        Ok(Some(Switch {
            old: Some(old),
            new,
        }))
    }

    /// A voluntary yield on `p` (`NtYieldExecution`, and
    /// `KeDelayExecutionThread` with a zero interval): if a thread of at
    /// least `min_priority` is ready (on this processor, or one it could
    /// take from another), the running thread goes to the tail of its ready
    /// queue with a fresh quantum and that thread runs (`STATUS_SUCCESS`);
    /// else `STATUS_NO_YIELD_PERFORMED`.
    pub fn yield_execution(
        &mut self,
        p: u32,
        min_priority: u8,
    ) -> Result<(NtStatus, Option<Switch>), SchedError> {
        let Some(old) = self.prcb(p)?.running else {
            return Ok((STATUS_NO_YIELD_PERFORMED, None));
        };
        let Some(new) = self.find_ready_thread(p, min_priority, true)? else {
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
        let new = self.find_ready_thread(p, 0, true)?;
        self.run(p, new)?;
        Ok(Switch { old, new })
    }

    /// `KeSetPriorityThread`: sets the base and current priority. A ready
    /// or standby thread is readied again at its new priority (it may
    /// preempt where it goes); a running thread whose own processor now has
    /// a higher-priority thread ready must be preempted. Returns the
    /// processor whose dispatch interrupt must run, if any.
    pub fn set_priority(
        &mut self,
        t: ThreadId,
        priority: u8,
        current: u32,
    ) -> Result<Option<u32>, SchedError> {
        if priority > 31 {
            return Err(SchedError::BadPriority(priority));
        }
        let th = *self.thread(t)?;
        let p = th.last_processor;
        match th.state {
            ThreadState::Ready => {
                self.prcb_mut(p)?.ready.remove(t, th.priority);
            }
            ThreadState::Standby => {
                self.prcb_mut(p)?.standby = None;
            }
            _ => {}
        }
        let x = self.thread_mut(t)?;
        x.priority = priority;
        x.base_priority = priority;
        match th.state {
            ThreadState::Ready | ThreadState::Standby => {
                self.thread_mut(t)?.state = ThreadState::DeferredReady;
                Ok(self.ready_thread(t, current)?.interrupt())
            }
            ThreadState::Running => {
                let c = self.prcb(p)?;
                let outranked =
                    c.standby.is_none() && c.ready.highest_priority().is_some_and(|h| h > priority);
                Ok(outranked.then_some(p))
            }
            _ => Ok(None),
        }
    }

    /// `KeSetSystemAffinityThreadEx` / `KeSetAffinityThread`: sets the
    /// processors `t` may run on. A ready or standby thread queued on a
    /// processor outside the new set is readied again (returns the processor
    /// to interrupt, if any); a running thread outside it stays until the
    /// kernel calls [`Scheduler::migrate`] for its processor.
    pub fn set_affinity(
        &mut self,
        t: ThreadId,
        affinity: u64,
        current: u32,
    ) -> Result<Option<u32>, SchedError> {
        if affinity & self.active == 0 {
            return Err(SchedError::BadAffinity(affinity));
        }
        let th = *self.thread(t)?;
        let p = th.last_processor;
        self.thread_mut(t)?.affinity = affinity;
        if affinity & bit(p) != 0 {
            return Ok(None);
        }
        match th.state {
            ThreadState::Ready => {
                self.prcb_mut(p)?.ready.remove(t, th.priority);
            }
            ThreadState::Standby => {
                self.prcb_mut(p)?.standby = None;
            }
            ThreadState::Running => return Ok(Some(p)),
            _ => return Ok(None),
        }
        self.thread_mut(t)?.state = ThreadState::DeferredReady;
        Ok(self.ready_thread(t, current)?.interrupt())
    }

    /// The running thread of `p` may no longer run there (its affinity
    /// changed): it is readied on a processor it may use, and `p` runs its
    /// best ready thread. Returns the switch on `p` and the processor whose
    /// dispatch interrupt must run for the moved thread, or None when the
    /// running thread may stay.
    pub fn migrate(&mut self, p: u32) -> Result<Option<(Switch, Option<u32>)>, SchedError> {
        let Some(old) = self.prcb(p)?.running else {
            return Ok(None);
        };
        if self.thread(old)?.affinity & bit(p) != 0 {
            return Ok(None);
        }
        self.thread_mut(old)?.state = ThreadState::DeferredReady;
        self.prcb_mut(p)?.running = None;
        let new = self.find_ready_thread(p, 0, true)?;
        self.run(p, new)?;
        let kick = self.ready_thread(old, p)?.interrupt();
        Ok(Some((
            Switch {
                old: Some(old),
                new,
            },
            kick,
        )))
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

    /// One clock tick charged to `p`'s running thread, as the kernel's
    /// clock interrupt does: true when the quantum ended.
    fn tick(s: &mut Scheduler, p: u32) -> bool {
        let Some(r) = s.running(p) else {
            return false;
        };
        let mut q = s.thread(r).unwrap().quantum;
        let end = q.tick();
        s.set_quantum(r, q.remaining).unwrap();
        end
    }

    impl Scheduler {
        /// A dispatch interrupt on an idle processor.
        fn dispatch_test(&mut self, p: u32) -> Result<Option<Switch>, SchedError> {
            assert!(self.running(p).is_none());
            self.dispatch(p, false)
        }
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
        s.dispatch_test(2).unwrap();
        s.create_thread(t(2), 8, 0b1111, 2, Q).unwrap();
        assert_eq!(
            s.ready_thread(t(2), 0),
            Ok(ReadyAction::RunIdle {
                processor: 0,
                ipi: false
            }),
            "ideal busy: lowest idle processor"
        );
        s.dispatch_test(0).unwrap();
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
        s.dispatch_test(0).unwrap();
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
            s.dispatch(0, false),
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
        assert_eq!(s.dispatch(0, false), Ok(None));
    }

    #[test]
    fn round_robin_on_quantum_end() {
        let mut s = sched(1);
        for i in 1..=3 {
            s.create_thread(t(i), 8, 1, 0, Q).unwrap();
            s.ready_thread(t(i), 0).unwrap();
        }
        s.dispatch_test(0).unwrap();
        let mut order = Vec::new();
        for _ in 0..6 {
            order.push(s.running(0).unwrap().0);
            assert!(!tick(&mut s, 0));
            assert!(tick(&mut s, 0), "2 ticks per client quantum");
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
        s.dispatch_test(0).unwrap();
        assert_eq!(s.quantum_end(0), Ok(None), "only a lower thread is ready");
        assert_eq!(s.running(0), Some(t(1)));
    }

    #[test]
    fn boost_then_decay() {
        let mut s = sched(1);
        s.create_thread(t(1), 8, 1, 0, Q).unwrap();
        s.create_thread(t(2), 8, 1, 0, Q).unwrap();
        s.ready_thread(t(1), 0).unwrap();
        s.dispatch_test(0).unwrap();
        s.wait(0).unwrap();
        s.ready_thread(t(2), 0).unwrap();
        s.dispatch_test(0).unwrap();
        assert_eq!(s.running(0), Some(t(2)));
        // An event set with IO_KEYBOARD_INCREMENT (6) boosts t1 to 14: preempts.
        assert!(matches!(
            s.unwait_thread(t(1), 6, 0),
            Ok(ReadyAction::Preempt { .. })
        ));
        s.dispatch(0, false).unwrap();
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
        s.dispatch_test(0).unwrap();
        assert_eq!(
            s.yield_execution(0, 0).unwrap().0,
            STATUS_NO_YIELD_PERFORMED
        );
        s.create_thread(t(2), 4, 0b01, 0, Q).unwrap();
        s.ready_thread(t(2), 0).unwrap();
        assert_eq!(
            s.yield_execution(0, 8).unwrap(),
            (STATUS_NO_YIELD_PERFORMED, None),
            "only a lower-priority thread is ready"
        );
        let (st, sw) = s.yield_execution(0, 0).unwrap();
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
        s.dispatch_test(0).unwrap();
        s.ready_thread(t(2), 0).unwrap();
        // t3's ideal is 0 (busy); processor 1 is idle: goes there directly.
        assert_eq!(
            s.ready_thread(t(3), 0),
            Ok(ReadyAction::RunIdle {
                processor: 1,
                ipi: true
            })
        );
        s.dispatch_test(1).unwrap();
        assert_eq!(s.running(1), Some(t(3)));
        s.wait(1).unwrap();
        assert_eq!(s.running(1), None, "t2 is bound to processor 0: not stolen");
        // Put t3 on processor 0's queue by hand, as if readied while 1 was busy.
        s.thread_mut(t(3)).unwrap().state = ThreadState::Ready;
        s.prcbs[0].ready.insert(t(3), 6, false);
        assert_eq!(s.dispatch_test(1).unwrap().unwrap().new, Some(t(3)));
        assert_eq!(s.ready_list(0), [(t(2), 9)]);
    }

    #[test]
    fn priority_changes_preempt_where_they_should() {
        let mut s = sched(1);
        s.create_thread(t(1), 10, 1, 0, Q).unwrap();
        s.create_thread(t(2), 8, 1, 0, Q).unwrap();
        s.ready_thread(t(1), 0).unwrap();
        s.dispatch_test(0).unwrap();
        s.ready_thread(t(2), 0).unwrap();
        // Raising a ready thread above the running one preempts it.
        assert_eq!(s.set_priority(t(2), 12, 0), Ok(Some(0)));
        assert_eq!(s.thread(t(2)).unwrap().state, ThreadState::Standby);
        assert_eq!(
            s.dispatch(0, false),
            Ok(Some(Switch {
                old: Some(t(1)),
                new: Some(t(2))
            }))
        );
        // Lowering the running thread below a ready one: its processor reschedules.
        assert_eq!(s.set_priority(t(2), 9, 0), Ok(Some(0)));
        assert_eq!(
            s.running(0),
            Some(t(2)),
            "not before the dispatch interrupt"
        );
        assert_eq!(
            s.dispatch(0, false),
            Ok(Some(Switch {
                old: Some(t(2)),
                new: Some(t(1))
            }))
        );
        assert_eq!(s.ready_list(0), [(t(2), 9)]);
        assert_eq!(s.set_priority(t(1), 11, 0), Ok(None), "raising the runner");
        assert_eq!(
            s.set_priority(t(1), 32, 0),
            Err(SchedError::BadPriority(32))
        );
        assert_eq!(
            (
                s.thread(t(1)).unwrap().priority,
                s.thread(t(1)).unwrap().base_priority
            ),
            (11, 11)
        );
    }

    #[test]
    fn affinity_change_moves_a_running_thread() {
        let mut s = sched(2);
        s.create_thread(t(1), 8, 0b11, 0, Q).unwrap();
        s.create_thread(t(2), 8, 0b01, 0, Q).unwrap();
        s.ready_thread(t(1), 0).unwrap();
        s.dispatch_test(0).unwrap();
        s.ready_thread(t(2), 0).unwrap();
        assert_eq!(s.ready_list(0), [(t(2), 8)]);
        assert_eq!(
            s.set_affinity(t(1), 0b100, 0),
            Err(SchedError::BadAffinity(0b100))
        );
        // The running thread of processor 0 may only use processor 1 now.
        assert_eq!(s.set_affinity(t(1), 0b10, 0), Ok(Some(0)));
        assert_eq!(
            s.migrate(0),
            Ok(Some((
                Switch {
                    old: Some(t(1)),
                    new: Some(t(2))
                },
                Some(1)
            )))
        );
        assert_eq!(s.standby(1), Some(t(1)));
        assert_eq!(s.dispatch_test(1).unwrap().unwrap().new, Some(t(1)));
        assert_eq!(s.migrate(1), Ok(None), "allowed where it runs");
        // A ready thread queued outside its new affinity is readied again.
        s.create_thread(t(3), 4, 0b01, 0, Q).unwrap();
        s.ready_thread(t(3), 0).unwrap();
        assert_eq!(s.ready_list(0), [(t(3), 4)]);
        s.set_active(1, true).unwrap();
        assert_eq!(s.set_affinity(t(3), 0b10, 0), Ok(None));
        assert_eq!(s.ready_list(1), [(t(3), 4)]);
        assert!(s.ready_list(0).is_empty());
    }

    #[test]
    fn inactive_processors_get_no_threads() {
        let mut s = sched(2);
        s.set_active(1, false).unwrap();
        assert_eq!(s.active_processors(), 0b01);
        assert_eq!(
            s.create_thread(t(1), 8, 0b10, 1, Q),
            Err(SchedError::BadAffinity(0b10))
        );
        s.create_thread(t(1), 8, 0b11, 1, Q).unwrap();
        assert_eq!(
            s.ready_thread(t(1), 0),
            Ok(ReadyAction::RunIdle {
                processor: 0,
                ipi: false
            }),
            "its ideal processor is not running yet"
        );
        assert_eq!(s.set_active(5, true), Err(SchedError::BadProcessor(5)));
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
        s.dispatch_test(0).unwrap();
        s.terminate(0).unwrap();
        assert_eq!(s.delete_thread(t(1)), Ok(()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Random readies, ticks, waits, yields, priority and affinity
        /// changes and dispatches on 3 processors: every thread is in
        /// exactly one place matching its state, affinity is respected, and
        /// no processor runs a thread of lower priority than one in its own
        /// ready queue after its dispatch interrupt.
        #[test]
        fn invariants(ops in proptest::collection::vec((0u8..9, 0u32..8, 0u32..3), 1..200)) {
            let mut s = Scheduler::with_capacity(3, 8).unwrap();
            for i in 0..8u32 {
                let aff = [0b001, 0b010, 0b100, 0b011, 0b111][i as usize % 5];
                s.create_thread(t(i), 4 + (i as u8 % 5) * 2, aff, aff.trailing_zeros(), Q).unwrap();
            }
            for (op, th, p) in ops {
                match op {
                    0 => { let _ = s.ready_thread(t(th), p); }
                    1 => { let _ = s.unwait_thread(t(th), 2, p); }
                    2 => { if tick(&mut s, p) { s.dispatch(p, true).unwrap(); } }
                    3 => { if s.running(p).is_some() { s.wait(p).unwrap(); } }
                    4 => { s.yield_execution(p, 0).unwrap(); }
                    5 => {
                        s.dispatch(p, false).unwrap();
                        if let Some(r) = s.running(p) {
                            let prio = s.thread(r).unwrap().priority;
                            prop_assert!(s.ready_list(p).first().is_none_or(|&(_, q)| q <= prio),
                                "processor {} runs priority {} below its queue {:?}", p, prio, s.ready_list(p));
                        }
                    }
                    6 => {
                        let prio = ((th * 7 + p * 3) % 32) as u8;
                        if let Some(q) = s.set_priority(t(th), prio, p).unwrap() {
                            s.dispatch(q, false).unwrap();
                        }
                    }
                    7 => {
                        let aff = [0b001, 0b010, 0b100, 0b110, 0b111][(th + p) as usize % 5];
                        if let Some(q) = s.set_affinity(t(th), aff, p).unwrap() {
                            if let Some((_, kick)) = s.migrate(q).unwrap() {
                                if let Some(k) = kick {
                                    s.dispatch(k, false).unwrap();
                                }
                            } else {
                                s.dispatch(q, false).unwrap();
                            }
                        }
                    }
                    _ => {
                        if let Some(r) = s.running(p) {
                            let min = s.thread(r).unwrap().priority;
                            let (st, sw) = s.yield_execution(p, min).unwrap();
                            if let Some(sw) = sw {
                                prop_assert_eq!(st, STATUS_SUCCESS);
                                let n = s.thread(sw.new.unwrap()).unwrap().priority;
                                prop_assert!(n >= min, "yielded to a lower priority");
                            }
                        }
                    }
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
