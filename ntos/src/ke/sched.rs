//! The scheduler (*Windows Internals*, Part 1, ch. 4, "Thread scheduling"):
//! per-processor ready queues with the ready summary (the host-tested
//! `ke::ready::ReadyQueues`), processor selection, quantum end, preemption,
//! idle threads, delays and yields.
//!
//! ntrs keeps one dispatcher lock at SYNCH_LEVEL (as NT did before the
//! per-PRCB locks of Windows 7). A thread that switches away holds the lock
//! across `KiSwapContext`; whichever thread resumes releases it
//! (`after_switch`), so every switch is atomic with the state change that
//! caused it.

use super::irql::{self, SpinLocked, SYNCH_LEVEL};
use super::thread::{self, KThread, ThreadState, WaitReason};
use super::{current_processor_number, DISPATCH_LEVEL, PASSIVE_LEVEL};
use crate::hal::{apic, MAX_PROCESSORS};
use ::ke::ready::ReadyQueues;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// State the dispatcher lock protects.
pub struct DispatcherState {
    /// `Prcb->DispatcherReadyListHead` of each processor.
    pub ready: [ReadyQueues<u32>; MAX_PROCESSORS],
    /// Threads in a timed wait (`KeDelayExecutionThread` or a wait with a timeout).
    pub timed: Vec<u32>,
    /// The dispatcher database: objects and wait blocks (host-tested).
    pub db: ::ke::objects::Dispatcher,
    /// Scratch list of threads whose waits were just satisfied.
    pub unwaits: Vec<::ke::objects::Unwait>,
}

pub static DISPATCHER: SpinLocked<Option<DispatcherState>, SYNCH_LEVEL> = SpinLocked::new(None);

/// Per-processor scheduler flags touched from interrupts.
pub struct ProcessorSched {
    /// A thread that terminated on this processor and waits to be reaped by
    /// the next thread switched in here.
    pub dead_thread: AtomicU32,
    pub quantum_end: AtomicBool,
    pub idle_thread: AtomicU32,
    pub active: AtomicBool,
    pub dispatch_interrupts: AtomicU64,
    pub ticks: AtomicU64,
    pub idle_ticks: AtomicU64,
}

pub static PROCESSOR_SCHED: [ProcessorSched; MAX_PROCESSORS] = [const {
    ProcessorSched {
        dead_thread: AtomicU32::new(0),
        quantum_end: AtomicBool::new(false),
        idle_thread: AtomicU32::new(0),
        active: AtomicBool::new(false),
        dispatch_interrupts: AtomicU64::new(0),
        ticks: AtomicU64::new(0),
        idle_ticks: AtomicU64::new(0),
    }
}; MAX_PROCESSORS];

/// Set once the scheduler runs (threads exist, the clock ticks).
pub static SCHEDULER_RUNNING: AtomicBool = AtomicBool::new(false);

/// Creates the dispatcher state (phase 0, before any thread is readied).
pub fn initialize() {
    DISPATCHER.with(|d| {
        *d = Some(DispatcherState {
            ready: core::array::from_fn(|_| ReadyQueues::new()),
            timed: Vec::with_capacity(64),
            db: ::ke::objects::Dispatcher::with_capacity(1024, 1024),
            unwaits: Vec::with_capacity(64),
        })
    });
}

/// Takes the dispatcher lock (`KiAcquireDispatcherLock`), returning the old IRQL.
pub fn lock() -> (u8, &'static mut DispatcherState) {
    let old = DISPATCHER.raw().acquire_raise(SYNCH_LEVEL);
    // SAFETY: the lock is held; `initialize` ran in phase 0.
    let st = unsafe { DISPATCHER.get_locked() }
        .as_mut()
        .expect("dispatcher");
    (old, st)
}

/// Releases the dispatcher lock and returns to `old` IRQL.
pub fn unlock(old: u8) {
    DISPATCHER.raw().release(old);
}

/// Called by a thread that has just been switched in: it owns the lock the
/// previous thread held across the switch, and releases it (the IRQL stays
/// at SYNCH_LEVEL until the thread's own path lowers it).
pub fn after_switch() {
    reap_dead_thread();
    kick_pending_apcs();
    DISPATCHER.raw().release_from_dpc_level();
}

/// Frees the thread that terminated on this processor, if any (lock held:
/// it ran its last instruction before the switch that got us here).
fn reap_dead_thread() {
    let me = current_processor_number() as usize;
    let dead = PROCESSOR_SCHED[me].dead_thread.swap(0, Ordering::AcqRel);
    if dead != 0 {
        let obj = thread::thread(dead).map_or(0, |t| t.dispatcher_object);
        // SAFETY: every caller holds the dispatcher lock (it runs right after a switch).
        if let Some(st) = unsafe { DISPATCHER.get_locked() }.as_mut() {
            super::wait::thread_reaped_locked(st, obj);
        }
        thread::reap(dead);
    }
}

/// `KeGetCurrentThread`.
pub fn current_thread() -> &'static mut KThread {
    let p = super::current_prcb().current_thread;
    // SAFETY: CurrentThread always points at a live, leaked KThread once the scheduler runs.
    unsafe { &mut *(p as *mut KThread) }
}

/// Id of the thread running on this processor.
pub fn current_thread_id() -> u32 {
    current_thread().id
}

fn is_idle(p: u32, tid: u32) -> bool {
    PROCESSOR_SCHED[p as usize]
        .idle_thread
        .load(Ordering::Relaxed)
        == tid
}

/// Priority the processor is running at: its current thread's, or -1 when idle.
fn running_priority(p: u32) -> i32 {
    let Some(pcr) = super::pcr_of(p) else {
        return i32::MAX;
    };
    let cur = pcr.prcb.current_thread;
    if cur == 0 {
        return i32::MAX;
    }
    // SAFETY: CurrentThread points at a live thread.
    let t = unsafe { &*(cur as *const KThread) };
    if is_idle(p, t.id) {
        -1
    } else {
        t.priority as i32
    }
}

/// Asks processor `p` to run its dispatch interrupt (a self software
/// interrupt, or an IPI at the DPC vector for another processor).
pub fn request_dispatch(p: u32) {
    if p == current_processor_number() {
        apic::request_software_interrupt(apic::DPC_VECTOR);
    } else if let Some(id) = super::apic_id_of(p) {
        apic::send_ipi(id, apic::DPC_VECTOR);
    }
}

fn active_mask() -> u64 {
    (0..MAX_PROCESSORS)
        .filter(|&i| PROCESSOR_SCHED[i].active.load(Ordering::Relaxed))
        .fold(0, |m, i| m | 1 << i)
}

/// `KiSelectProcessor`: an idle processor (ideal, then last, then any) in
/// the affinity; otherwise the ideal processor (or the first allowed one).
pub fn select_processor(st: &DispatcherState, t: &KThread) -> u32 {
    let allowed = t.affinity & active_mask();
    if allowed == 0 {
        return current_processor_number();
    }
    let idle = |p: u32| {
        allowed & (1 << p) != 0 && running_priority(p) < 0 && st.ready[p as usize].is_empty()
    };
    for p in [t.ideal_processor, t.next_processor] {
        if (p as usize) < MAX_PROCESSORS && idle(p) {
            return p;
        }
    }
    if let Some(p) = (0..MAX_PROCESSORS as u32).find(|&p| idle(p)) {
        return p;
    }
    if allowed & (1 << t.ideal_processor) != 0 {
        t.ideal_processor
    } else {
        allowed.trailing_zeros()
    }
}

/// `KiReadyThread` (lock held): queues `tid` on the processor chosen for it
/// and requests a dispatch there if it should preempt what runs now.
pub fn ready_thread_locked(st: &mut DispatcherState, tid: u32, at_head: bool) {
    let Some(t) = thread::thread(tid) else { return };
    let p = select_processor(st, t);
    t.state = ThreadState::Ready;
    t.next_processor = p;
    st.ready[p as usize].insert(tid, t.priority, at_head);
    if t.priority as i32 > running_priority(p) {
        request_dispatch(p);
    }
}

/// Readies a thread (takes the dispatcher lock).
pub fn ready_thread(tid: u32) {
    let (old, st) = lock();
    ready_thread_locked(st, tid, false);
    unlock(old);
}

/// The best ready thread for processor `me` (`KiSelectNextThread` /
/// `KiSearchForNewThread`): its own queue, else the highest-priority thread
/// another processor has queued that may run here.
fn find_ready_thread(st: &mut DispatcherState, me: u32, min_priority: u8) -> Option<u32> {
    let own = st.ready[me as usize].highest_priority();
    let mut best: Option<(u32, u8)> = own.map(|p| (me, p));
    for p in 0..MAX_PROCESSORS as u32 {
        if p == me {
            continue;
        }
        if let Some(pri) = st.ready[p as usize].highest_priority() {
            if best.is_none_or(|(_, b)| pri > b) {
                // Only steal a thread whose affinity includes this processor.
                let stealable = st.ready[p as usize]
                    .queue(pri)
                    .any(|&id| thread::thread(id).is_some_and(|t| t.affinity & (1 << me) != 0));
                if stealable {
                    best = Some((p, pri));
                }
            }
        }
    }
    let (from, pri) = best?;
    if pri < min_priority {
        return None;
    }
    let q = &mut st.ready[from as usize];
    let id = if from == me {
        q.select(min_priority)?.0
    } else {
        let id = *q
            .queue(pri)
            .find(|&&id| thread::thread(id).is_some_and(|t| t.affinity & (1 << me) != 0))?;
        q.remove(id, pri);
        id
    };
    Some(id)
}

/// Switches from the current thread (whose new state the caller set) to
/// `next`, with the lock held; returns with the lock held when the current
/// thread runs again.
fn switch_to(next: u32) {
    let me = current_processor_number();
    let cur = current_thread();
    if cur.id == next {
        cur.state = ThreadState::Running;
        return;
    }
    let Some(n) = thread::thread(next) else {
        return;
    };
    n.state = ThreadState::Running;
    n.next_processor = me;
    n.quantum.remaining = n.quantum.remaining.max(1);
    // SAFETY: lock held, both threads live; see `thread::swap_context`.
    unsafe { thread::swap_context(cur, n) };
    reap_dead_thread();
    kick_pending_apcs();
}

/// A thread that was switched in with kernel APCs queued asks for the APC
/// interrupt (it fires once its IRQL drops to PASSIVE_LEVEL).
fn kick_pending_apcs() {
    if current_thread().apc.kernel_apc_pending {
        apic::request_software_interrupt(apic::APC_VECTOR);
    }
}

/// Picks the next thread for this processor (or its idle thread) and switches.
fn swap_thread_locked(st: &mut DispatcherState) {
    let me = current_processor_number();
    let next = find_ready_thread(st, me, 0).unwrap_or_else(|| {
        PROCESSOR_SCHED[me as usize]
            .idle_thread
            .load(Ordering::Relaxed)
    });
    switch_to(next);
}

/// Blocks the current thread (`KiSwapThread`): it must already be recorded
/// wherever its wake-up comes from. Lock held on entry and on return.
pub fn block_current_locked(st: &mut DispatcherState, reason: WaitReason) {
    let cur = current_thread();
    cur.state = ThreadState::Waiting;
    cur.wait_reason = reason;
    swap_thread_locked(st);
}

/// The DISPATCH_LEVEL software interrupt (`KiDispatchInterrupt`): drains
/// the DPC queue, expires timed waits, and performs quantum end or
/// preemption by a higher-priority ready thread.
pub fn dispatch_interrupt() {
    let me = current_processor_number();
    PROCESSOR_SCHED[me as usize]
        .dispatch_interrupts
        .fetch_add(1, Ordering::Relaxed);
    if me == 0 {
        super::timer::expire(interrupt_time());
    }
    super::dpc::drain_dpc_queue();
    if !SCHEDULER_RUNNING.load(Ordering::Relaxed) {
        return;
    }
    let (old, st) = lock();
    if me == 0 {
        expire_timed_waits(st);
    }
    let cur = current_thread();
    let quantum_end = PROCESSOR_SCHED[me as usize]
        .quantum_end
        .swap(false, Ordering::Relaxed);
    if is_idle(me, cur.id) {
        if let Some(next) = find_ready_thread(st, me, 0) {
            cur.state = ThreadState::Ready;
            switch_to(next);
        }
    } else if cur.state == ThreadState::Running {
        if quantum_end {
            // KiQuantumEnd: decay a boosted priority, refill, and round-robin
            // with any ready thread of at least the same priority.
            cur.priority = ::ke::priority::decayed_priority(cur.base_priority, cur.priority);
            cur.quantum.replenish();
            if let Some(next) = find_ready_thread(st, me, cur.priority) {
                cur.state = ThreadState::Ready;
                st.ready[me as usize].insert(cur.id, cur.priority, false);
                switch_to(next);
            }
        } else if let Some(next) = find_ready_thread(st, me, cur.priority.saturating_add(1)) {
            // Preempted before its quantum ended: it keeps its turn at the head.
            cur.state = ThreadState::Ready;
            st.ready[me as usize].insert(cur.id, cur.priority, true);
            switch_to(next);
        }
    }
    unlock(old);
}

/// Interrupt time in 100 ns units (`KeQueryInterruptTime`).
pub fn interrupt_time() -> u64 {
    super::clock::ke_query_interrupt_time()
}

fn expire_timed_waits(st: &mut DispatcherState) {
    let now = interrupt_time();
    let mut i = 0;
    while i < st.timed.len() {
        let tid = st.timed[i];
        let due = thread::thread(tid).map(|t| t.wake_time).unwrap_or(0);
        if due <= now {
            st.timed.swap_remove(i);
            if let Some(t) = thread::thread(tid) {
                t.wake_time = 0;
                if t.state == ThreadState::Waiting {
                    t.wait_status = if t.wait_reason == WaitReason::DelayExecution {
                        nt::status::STATUS_SUCCESS.0
                    } else {
                        nt::status::STATUS_TIMEOUT.0
                    };
                    super::wait::timeout_locked(st, tid);
                    ready_thread_locked(st, tid, false);
                }
            }
        } else {
            i += 1;
        }
    }
}

/// Earliest wake time of a timed wait (the clock checks it every tick).
pub static NEXT_WAKE: AtomicU64 = AtomicU64::new(u64::MAX);

fn recompute_next_wake(st: &DispatcherState) {
    let min = st
        .timed
        .iter()
        .filter_map(|&id| thread::thread(id).map(|t| t.wake_time))
        .min()
        .unwrap_or(u64::MAX);
    NEXT_WAKE.store(min, Ordering::Relaxed);
}

/// Arms a timed wait for the current thread (lock held).
pub fn arm_timeout_locked(st: &mut DispatcherState, due: u64) {
    let cur = current_thread();
    cur.wake_time = due.max(1);
    st.timed.push(cur.id);
    recompute_next_wake(st);
}

/// Removes a thread's timed wait (lock held).
pub fn disarm_timeout_locked(st: &mut DispatcherState, tid: u32) {
    if let Some(i) = st.timed.iter().position(|&t| t == tid) {
        st.timed.swap_remove(i);
    }
    if let Some(t) = thread::thread(tid) {
        t.wake_time = 0;
    }
    recompute_next_wake(st);
}

/// `KeDelayExecutionThread` (kernel mode, non-alertable) for `interval` in
/// 100 ns units (relative). A zero interval yields (`NtYieldExecution`).
pub fn ke_delay_execution_thread(interval: u64) -> nt::status::NtStatus {
    ke_delay_execution_thread_ex(false, false, interval)
}

/// `KeDelayExecutionThread(WaitMode, Alertable, Interval)`: an alertable
/// delay returns STATUS_ALERTED when the thread is alerted, and (user mode)
/// STATUS_USER_APC after running queued user APCs; a kernel APC interrupts
/// the delay, is delivered, and the delay resumes for the time left.
pub fn ke_delay_execution_thread_ex(
    user_mode: bool,
    alertable: bool,
    interval: u64,
) -> nt::status::NtStatus {
    use nt::status::*;
    if interval == 0 && !alertable {
        ke_yield_execution();
        return STATUS_SUCCESS;
    }
    let due = interrupt_time() + interval;
    loop {
        let (old, st) = lock();
        let cur = current_thread();
        if alertable {
            if let Some(s) = super::apc::alertable_wait_status(cur, user_mode) {
                unlock(old);
                if s == STATUS_USER_APC.0 {
                    super::apc::ki_deliver_user_apcs();
                }
                return NtStatus(s);
            }
        }
        if interval == 0 || interrupt_time() >= due {
            unlock(old);
            return STATUS_SUCCESS;
        }
        arm_timeout_locked(st, due);
        cur.wait_irql = old;
        cur.alertable = alertable;
        cur.wait_mode_user = user_mode;
        block_current_locked(st, WaitReason::DelayExecution);
        recompute_next_wake(st);
        let cur = current_thread();
        cur.alertable = false;
        let status = cur.wait_status;
        unlock(old);
        // Lowering the IRQL delivered any kernel APC that ended the wait.
        if status == STATUS_KERNEL_APC.0 {
            continue;
        }
        if status == STATUS_USER_APC.0 {
            super::apc::ki_deliver_user_apcs();
        }
        return NtStatus(status);
    }
}

/// `NtYieldExecution`: gives the processor to a ready thread of the same or
/// higher priority; STATUS_NO_YIELD_PERFORMED when there is none.
pub fn ke_yield_execution() -> nt::status::NtStatus {
    let me = current_processor_number();
    let (old, st) = lock();
    let cur = current_thread();
    let status = if let Some(next) = find_ready_thread(st, me, cur.priority) {
        cur.state = ThreadState::Ready;
        cur.quantum.replenish();
        st.ready[me as usize].insert(cur.id, cur.priority, false);
        switch_to(next);
        nt::status::STATUS_SUCCESS
    } else {
        nt::status::STATUS_NO_YIELD_PERFORMED
    };
    unlock(old);
    status
}

/// `KeSetPriorityThread`: sets base and current priority, requeues a ready
/// thread, and lets a now-higher-priority ready thread preempt.
pub fn ke_set_priority_thread(tid: u32, priority: u8) -> u8 {
    let priority = priority.min(31);
    let (old, st) = lock();
    let Some(t) = thread::thread(tid) else {
        unlock(old);
        return 0;
    };
    let prev = t.priority;
    if t.state == ThreadState::Ready {
        let p = t.next_processor as usize;
        st.ready[p].remove(tid, t.priority);
        t.priority = priority;
        t.base_priority = priority;
        ready_thread_locked(st, tid, false);
    } else {
        t.priority = priority;
        t.base_priority = priority;
        if t.state == ThreadState::Running {
            request_dispatch(t.next_processor);
        }
    }
    unlock(old);
    prev
}

/// `PsTerminateSystemThread` for the current thread: signals waiters and never returns.
pub fn terminate_current_thread() -> ! {
    let (_old, st) = lock();
    let cur = current_thread();
    super::wait::thread_terminated_locked(st, cur.id);
    cur.state = ThreadState::Terminated;
    let me = current_processor_number() as usize;
    PROCESSOR_SCHED[me]
        .dead_thread
        .store(cur.id, Ordering::Release);
    swap_thread_locked(st);
    unreachable!("a terminated thread was switched back in")
}

/// The idle loop (`KiIdleLoop`): halts until an interrupt; the dispatch
/// interrupt switches to any thread readied for this processor.
pub fn idle_loop() -> ! {
    irql::set_irql(PASSIVE_LEVEL);
    loop {
        // SAFETY: enabling interrupts then halting atomically (STI shadow).
        unsafe { core::arch::asm!("sti; hlt", options(nomem, nostack)) };
    }
}

/// Makes the code running now on processor `me` its first thread and creates
/// its idle thread (`KiInitializeKernel` for the scheduler).
pub fn start_processor_threads(me: u32, name: &str, priority: u8, stack_top: u64) -> u32 {
    let tid = thread::adopt_current(name, priority, stack_top, me);
    super::current_prcb_mut().current_thread =
        thread::thread(tid).expect("thread") as *mut KThread as u64;
    let idle = thread::create_system_thread("Idle", 0, 1 << me, |_| idle_loop(), 0);
    if let Some(t) = thread::thread(idle) {
        t.next_processor = me;
        t.ideal_processor = me;
        t.state = ThreadState::Ready;
        super::current_prcb_mut().idle_thread = t as *mut KThread as u64;
    }
    PROCESSOR_SCHED[me as usize]
        .idle_thread
        .store(idle, Ordering::Relaxed);
    PROCESSOR_SCHED[me as usize]
        .active
        .store(true, Ordering::Release);
    tid
}

/// Turns the current (AP startup) path into this processor's idle thread:
/// from here on the processor just runs what the scheduler gives it.
pub fn become_idle(me: u32, stack_top: u64) -> ! {
    let tid = thread::adopt_current("Idle", 0, stack_top, me);
    let t = thread::thread(tid).expect("thread");
    super::current_prcb_mut().current_thread = t as *mut KThread as u64;
    super::current_prcb_mut().idle_thread = t as *mut KThread as u64;
    PROCESSOR_SCHED[me as usize]
        .idle_thread
        .store(tid, Ordering::Relaxed);
    PROCESSOR_SCHED[me as usize]
        .active
        .store(true, Ordering::Release);
    let _ = DISPATCH_LEVEL;
    idle_loop()
}
