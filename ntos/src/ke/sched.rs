//! The scheduler (*Windows Internals*, Part 1, ch. 4, "Thread scheduling"):
//! the kernel runs the host-tested policy of `ke::sched::Scheduler`
//! (per-processor ready queues with the ready summary, processor selection,
//! standby preemption, quantum end with round robin and decay, yields,
//! priority and affinity changes, idle processors taking work from other
//! queues) and carries out what it answers: context switches, dispatch
//! interrupts and IPIs.
//!
//! ntrs keeps one dispatcher lock at SYNCH_LEVEL (as NT did before the
//! per-PRCB locks of Windows 7). It guards [`DispatcherState`]: the
//! scheduler, the dispatcher database, the timer table and the thread table
//! with each thread's APC queues and current wait. A thread that switches
//! away holds the lock across `KiSwapContext`; whichever thread resumes
//! releases it (`after_switch`, or the guard of the code it returns to), so
//! every switch is atomic with the state change that caused it.
//!
//! The clock interrupt charges the running thread's quantum without the
//! lock, in a per-processor counter that is handed to the scheduler around
//! each decision (`sync_quantum`).

use super::irql::{self, SpinLocked, SYNCH_LEVEL};
use super::thread::{self, KThread, ThreadRef, ThreadState, WaitReason, MAX_THREADS};
use super::{current_processor_number, APC_LEVEL, PASSIVE_LEVEL};
use crate::hal::{apic, MAX_PROCESSORS};
use ::ke::apc::{ApcState, ProcessorMode};
use ::ke::objects::ThreadId;
use ::ke::sched::{SchedError, Scheduler, Switch};
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use nt::status::*;
use nt::NtStatus;

/// The wait a thread is in (or was last in): what `!thread` shows and what
/// the waker leaves for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitRecord {
    /// `WaitReason`.
    pub reason: WaitReason,
    /// `WaitMode`.
    pub mode: ProcessorMode,
    /// `Alertable`.
    pub alertable: bool,
    /// `WaitIrql`: the IRQL the wait was entered at.
    pub irql: u8,
    /// `WaitTime`: the tick count when the thread blocked.
    pub start_tick: u64,
    /// `WaitStatus`: what the satisfied (or aborted) wait returns.
    pub status: NtStatus,
}

impl WaitRecord {
    const NONE: WaitRecord = WaitRecord {
        reason: WaitReason::Executive,
        mode: ProcessorMode::KernelMode,
        alertable: false,
        irql: PASSIVE_LEVEL,
        start_tick: 0,
        status: STATUS_SUCCESS,
    };
}

/// A queued APC: the `KAPC` and the insertion's system arguments (two
/// entries are the same APC when they name the same `KAPC`).
#[derive(Clone, Copy)]
pub struct QueuedApc {
    pub apc: &'static super::apc::KApc,
    pub arg1: usize,
    pub arg2: usize,
}

impl PartialEq for QueuedApc {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::eq(self.apc, other.apc)
    }
}

/// A thread in the thread table: the table's reference and the state the
/// dispatcher lock guards.
pub struct ThreadEntry {
    pub thread: ThreadRef,
    /// `ApcState` and the alert flags (host-tested `ke::apc`).
    pub apc: ApcState<QueuedApc>,
    pub wait: WaitRecord,
    /// `KTHREAD.Queue`: the queue (`ke/queue.rs` gate) the thread is
    /// associated with, and whether it now waits on that queue itself.
    pub queue: Option<u32>,
    pub queue_wait: bool,
}

/// The thread table: thread id -> thread (NT's `PspCidTable` for threads,
/// plus the per-thread state the dispatcher lock guards).
pub struct ThreadTable {
    slots: Vec<Option<ThreadEntry>>,
    free: Vec<u32>,
    next: u32,
}

impl ThreadTable {
    fn new() -> Self {
        let mut slots = Vec::with_capacity(MAX_THREADS);
        slots.resize_with(MAX_THREADS, || None);
        ThreadTable {
            slots,
            free: Vec::with_capacity(MAX_THREADS),
            // Id 0 names no thread.
            next: 1,
        }
    }

    /// A free id (reused ids first, as client ids are).
    pub(super) fn allocate_id(&mut self) -> Result<u32, NtStatus> {
        if let Some(id) = self.free.pop() {
            return Ok(id);
        }
        if (self.next as usize) < MAX_THREADS {
            self.next += 1;
            return Ok(self.next - 1);
        }
        Err(STATUS_INSUFFICIENT_RESOURCES)
    }

    pub(super) fn release_id(&mut self, id: u32) {
        self.free.push(id);
    }

    pub(super) fn insert(&mut self, id: u32, thread: ThreadRef) {
        if let Some(s) = self.slots.get_mut(id as usize) {
            *s = Some(ThreadEntry {
                thread,
                apc: ApcState::new(),
                wait: WaitRecord::NONE,
                queue: None,
                queue_wait: false,
            });
        }
    }

    fn remove(&mut self, id: u32) -> Option<ThreadEntry> {
        let e = self.slots.get_mut(id as usize)?.take()?;
        self.free.push(id);
        Some(e)
    }

    pub fn get(&self, id: u32) -> Option<&ThreadEntry> {
        self.slots.get(id as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut ThreadEntry> {
        self.slots.get_mut(id as usize)?.as_mut()
    }

    /// Every thread's id, in id order.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as u32)
    }

    /// The id of the thread object at `address`.
    pub fn find_by_address(&self, address: u64) -> Option<u32> {
        self.ids()
            .find(|&i| self.get(i).is_some_and(|e| e.thread.address() == address))
    }
}

/// State the dispatcher lock protects.
pub struct DispatcherState {
    /// The scheduling policy (host-tested `ke::sched`).
    pub sched: Scheduler,
    /// The dispatcher database: objects and wait blocks (host-tested).
    pub db: ::ke::objects::Dispatcher,
    /// Scratch list of threads whose waits were just satisfied.
    pub unwaits: Vec<::ke::objects::Unwait>,
    /// The timer table (host-tested `ke::timer`): wait timeouts under the
    /// thread's id, `KTIMER`s under ids from `MAX_THREADS` on.
    pub timers: ::ke::timer::TimerTable<super::dpc::DpcRef>,
    /// `KTIMER`s by timer id - `MAX_THREADS` (see `timer.rs`).
    pub(super) ktimers: Vec<Option<super::timer::TimerPtr>>,
    pub(super) free_timer_slots: Vec<u32>,
    pub(super) expired: Vec<::ke::timer::Expired<super::dpc::DpcRef>>,
    pub thread_table: ThreadTable,
    /// `KQUEUE` concurrency accounting (`ke/queue.rs`).
    pub queues: ::ke::queue::Gates<::ke::objects::ObjectId>,
    /// References of reaped threads, dropped once the lock is released
    /// (dropping the last one takes the lock again).
    reaped: Vec<ThreadRef>,
}

static DISPATCHER: SpinLocked<Option<DispatcherState>, SYNCH_LEVEL> = SpinLocked::new(None);

/// Per-processor scheduler state touched from interrupts, without the lock.
pub struct ProcessorSched {
    /// A thread that terminated on this processor and waits to be reaped by
    /// the next thread switched in here.
    dead_thread: AtomicU32,
    /// The clock ended the running thread's quantum.
    quantum_end: AtomicBool,
    /// Quantum units the running thread has left (the clock charges them).
    quantum: AtomicU8,
    /// The processor runs its idle thread.
    pub idle: AtomicBool,
    pub active: AtomicBool,
    pub dispatch_interrupts: AtomicU64,
    pub ticks: AtomicU64,
    pub idle_ticks: AtomicU64,
    /// Time stamp at which the idle loop last halted this processor, 0 when
    /// it is not halted: the first interrupt out of the halt closes the
    /// interval ([`note_halt_end`]).
    halt_start: AtomicU64,
    /// Time stamp counter ticks this processor spent halted in the idle
    /// loop since boot (for benchmarks that report a request's busy
    /// instructions under `-icount`, where QEMU's clock jumps over a halt).
    pub halted_tsc: AtomicU64,
}

impl ProcessorSched {
    /// One clock tick of the running thread's quantum (`KiUpdateRunTime`,
    /// at CLOCK_LEVEL on this processor): true when the quantum has ended
    /// (the quantum-end flag is then set for the dispatch interrupt).
    pub(super) fn charge_quantum(&self) -> bool {
        let mut q = ::ke::priority::Quantum {
            reset: u8::MAX,
            remaining: self.quantum.load(Ordering::Relaxed),
        };
        if q.remaining == 0 {
            return false;
        }
        let end = q.tick();
        self.quantum.store(q.remaining, Ordering::Relaxed);
        if end {
            self.quantum_end.store(true, Ordering::Relaxed);
        }
        end
    }
}

pub static PROCESSOR_SCHED: [ProcessorSched; MAX_PROCESSORS] = [const {
    ProcessorSched {
        dead_thread: AtomicU32::new(0),
        quantum_end: AtomicBool::new(false),
        quantum: AtomicU8::new(0),
        idle: AtomicBool::new(true),
        active: AtomicBool::new(false),
        dispatch_interrupts: AtomicU64::new(0),
        ticks: AtomicU64::new(0),
        idle_ticks: AtomicU64::new(0),
        halt_start: AtomicU64::new(0),
        halted_tsc: AtomicU64::new(0),
    }
}; MAX_PROCESSORS];

/// Closes this processor's halted interval, if the idle loop halted it
/// (called on entry to every interrupt).
#[inline]
pub(super) fn note_halt_end(me: usize) {
    let p = &PROCESSOR_SCHED[me];
    if p.halt_start.load(Ordering::Relaxed) != 0 {
        let start = p.halt_start.swap(0, Ordering::Relaxed);
        let now = crate::hal::rdtsc();
        p.halted_tsc
            .fetch_add(now.saturating_sub(start), Ordering::Relaxed);
    }
}

/// Time stamp counter ticks processor `cpu` has spent halted in its idle
/// loop since boot.
pub fn halted_tsc(cpu: usize) -> u64 {
    PROCESSOR_SCHED
        .get(cpu)
        .map_or(0, |p| p.halted_tsc.load(Ordering::Relaxed))
}

/// Set once the scheduler runs (threads exist, the clock ticks).
pub static SCHEDULER_RUNNING: AtomicBool = AtomicBool::new(false);

/// Creates the dispatcher state (phase 0, before any thread exists): the
/// scheduler knows `MAX_PROCESSORS` processors, of which only the boot
/// processor is active until the others run their idle threads.
pub fn initialize() {
    let sched = match Scheduler::with_capacity(MAX_PROCESSORS as u32, MAX_THREADS as u32) {
        Ok(s) => s,
        Err(e) => scheduler_error(e, 0),
    };
    let mut st = DispatcherState {
        sched,
        db: ::ke::objects::Dispatcher::with_capacity(1024, MAX_THREADS),
        unwaits: Vec::with_capacity(64),
        timers: ::ke::timer::TimerTable::with_capacity(
            (MAX_THREADS + super::timer::INITIAL_KTIMERS) as u32,
        ),
        ktimers: Vec::with_capacity(super::timer::INITIAL_KTIMERS),
        free_timer_slots: Vec::new(),
        expired: Vec::with_capacity(64),
        thread_table: ThreadTable::new(),
        queues: ::ke::queue::Gates::new(),
        reaped: Vec::with_capacity(2 * MAX_PROCESSORS),
    };
    for p in 1..MAX_PROCESSORS as u32 {
        if let Err(e) = st.sched.set_active(p, false) {
            scheduler_error(e, 0);
        }
    }
    DISPATCHER.with(|d| *d = Some(st));
}

/// The scheduler answered an error for a request the kernel's own
/// bookkeeping considered valid: the dispatcher database is inconsistent.
/// Stops with KERNEL_SECURITY_CHECK_FAILURE (0x139) as NT does for a
/// corrupted list, parameter 1 = 3 (LIST_ENTRY corruption), parameter 2 =
/// the kind of error (`SchedError::code`), 3 = the thread id, processor,
/// affinity or priority it names, 4 = which kernel operation asked.
pub(super) fn scheduler_error(e: SchedError, site: u64) -> ! {
    super::bugcheck::ke_bug_check_ex(
        nt::bugcheck::KERNEL_SECURITY_CHECK_FAILURE,
        3,
        e.code(),
        e.subject(),
        site,
    )
}

/// The held dispatcher lock (`KiAcquireDispatcherLock`): derefs to the
/// state; dropping it releases the lock and returns to the IRQL it was
/// taken at. Not `Send`.
pub struct DispatcherGuard {
    state: NonNull<DispatcherState>,
    old_irql: u8,
    _not_send: core::marker::PhantomData<*const ()>,
}

impl DispatcherGuard {
    /// The IRQL the lock was taken at (`WaitIrql` of a wait).
    pub fn old_irql(&self) -> u8 {
        self.old_irql
    }
}

impl core::ops::Deref for DispatcherGuard {
    type Target = DispatcherState;
    fn deref(&self) -> &DispatcherState {
        // SAFETY: the pointer came from the initialized state in the static
        // (never moved, never set back to None). Whenever code holding the
        // guard runs, its processor holds the lock: the lock is only handed
        // from the thread switched out to the one switched in, so a guard
        // on a switched-out thread's stack is not used until the lock comes
        // back with it. The reference borrows the guard.
        unsafe { self.state.as_ref() }
    }
}

impl core::ops::DerefMut for DispatcherGuard {
    fn deref_mut(&mut self) -> &mut DispatcherState {
        // SAFETY: as for `deref`; the mutable borrow of the guard makes it unique.
        unsafe { self.state.as_mut() }
    }
}

/// Takes up to a few reaped threads' references out of the state, so they
/// are dropped after the lock is released.
fn take_reaped(st: &mut DispatcherState) -> [Option<ThreadRef>; 4] {
    core::array::from_fn(|_| st.reaped.pop())
}

impl Drop for DispatcherGuard {
    fn drop(&mut self) {
        let dead = take_reaped(self);
        DISPATCHER.raw().release(self.old_irql);
        drop(dead);
    }
}

fn guard_from_locked(old_irql: u8) -> DispatcherGuard {
    // SAFETY: the caller holds the lock.
    let st = unsafe { DISPATCHER.get_locked() };
    match st.as_mut() {
        Some(s) => DispatcherGuard {
            state: NonNull::from(s),
            old_irql,
            _not_send: core::marker::PhantomData,
        },
        // Used before `initialize`: a phase-0 ordering bug.
        None => super::bugcheck::ke_bug_check_ex(
            nt::bugcheck::PHASE0_INITIALIZATION_FAILED,
            u64::from_le_bytes(*b"KeDisptc"),
            0,
            0,
            0,
        ),
    }
}

/// Takes the dispatcher lock (`KiAcquireDispatcherLock`).
pub fn lock() -> DispatcherGuard {
    let old = DISPATCHER.raw().acquire_raise(SYNCH_LEVEL);
    guard_from_locked(old)
}

/// Takes the dispatcher lock unless this processor holds it or it stays
/// held for `spins` attempts (the debugger must not deadlock on a lock held
/// by a stopped or interrupted processor).
pub fn try_lock(spins: u32) -> Option<DispatcherGuard> {
    let me = current_processor_number() as u64 + 1;
    if DISPATCHER.raw().owner() == me {
        return None;
    }
    let old = irql::ke_raise_irql(SYNCH_LEVEL.max(super::irql()));
    for _ in 0..spins.max(1) {
        if DISPATCHER.raw().try_acquire_at_dpc_level() {
            return Some(guard_from_locked(old));
        }
        core::hint::spin_loop();
    }
    irql::ke_lower_irql(old);
    None
}

/// Called by a thread that has just been switched in for the first time: it
/// owns the lock the previous thread held across the switch, and releases it
/// (the IRQL stays at SYNCH_LEVEL until the thread's own path lowers it).
pub fn after_switch() {
    let dead = {
        let mut g = guard_from_locked(PASSIVE_LEVEL);
        reap_dead_thread(&mut g);
        kick_pending_apcs();
        let dead = take_reaped(&mut g);
        core::mem::forget(g);
        dead
    };
    DISPATCHER.raw().release_from_dpc_level();
    drop(dead);
}

/// Deletes the thread that terminated on this processor, if any (lock held:
/// it ran its last instruction before the switch that got us here): it
/// leaves the scheduler, the thread table and its process; the table's
/// reference is dropped once the lock is released.
fn reap_dead_thread(st: &mut DispatcherState) {
    let me = current_processor_number() as usize;
    let dead = PROCESSOR_SCHED[me].dead_thread.swap(0, Ordering::AcqRel);
    if dead == 0 {
        return;
    }
    if let Err(e) = st.sched.delete_thread(ThreadId(dead)) {
        scheduler_error(e, 1);
    }
    if let Some(e) = st.thread_table.remove(dead) {
        e.thread.process.remove_thread(dead);
        st.reaped.push(e.thread);
    }
}

/// Id of the thread running on this processor (0 before the scheduler runs).
pub fn current_thread_id() -> u32 {
    thread::try_current_thread().map_or(0, |t| t.id)
}

/// `KeGetCurrentThread`. Before the scheduler has made the boot path a
/// thread there is none: that is a phase-0 ordering bug.
pub fn current_thread() -> thread::CurrentThread {
    match thread::try_current_thread() {
        Some(t) => t,
        None => super::bugcheck::ke_bug_check_ex(
            nt::bugcheck::PHASE0_INITIALIZATION_FAILED,
            u64::from_le_bytes(*b"KeCurThr"),
            0,
            0,
            0,
        ),
    }
}

/// Asks processor `p` to run its dispatch interrupt (a self software
/// interrupt, or an IPI at the DPC vector for another processor). Callers
/// run at DISPATCH_LEVEL or above, so "self" is where they stay.
pub fn request_dispatch(p: u32) {
    if p == current_processor_number() {
        apic::request_software_interrupt(apic::DPC_VECTOR);
    } else if let Some(id) = super::apic_id_of(p) {
        apic::send_ipi(id, apic::DPC_VECTOR);
    }
}

fn kick(p: Option<u32>) {
    if let Some(p) = p {
        request_dispatch(p);
    }
}

/// Hands the running thread's quantum, as the clock charged it, to the
/// scheduler (before a decision that may switch or refill it).
fn sync_quantum_out(st: &mut DispatcherState, p: u32) {
    if let Some(r) = st.sched.running(p) {
        let left = PROCESSOR_SCHED[p as usize].quantum.load(Ordering::Relaxed);
        if let Err(e) = st.sched.set_quantum(r, left) {
            scheduler_error(e, 2);
        }
    }
}

/// Loads the running thread's quantum into the clock's counter.
fn sync_quantum_in(st: &DispatcherState, p: u32) {
    let left = st
        .sched
        .running(p)
        .and_then(|r| st.sched.thread(r).ok())
        .map_or(0, |t| t.quantum.remaining);
    PROCESSOR_SCHED[p as usize]
        .quantum
        .store(left, Ordering::Relaxed);
}

/// Records the standby thread in `Prcb.NextThread` (for `!running`).
fn publish_next_thread(st: &DispatcherState, p: u32) {
    let next = st
        .sched
        .standby(p)
        .and_then(|t| st.thread_table.get(t.0))
        .map_or(0, |e| e.thread.address());
    if p == current_processor_number() {
        super::current_prcb()
            .next_thread
            .store(next, Ordering::Relaxed);
    } else if let Some(pcr) = super::pcr_of(p) {
        pcr.prcb.next_thread.store(next, Ordering::Relaxed);
    }
}

/// Carries out a ready decision: the dispatch interrupt where the thread
/// went, if it must preempt or wake that processor.
fn act(st: &DispatcherState, a: ::ke::sched::ReadyAction) {
    if let Some(p) = a.interrupt() {
        publish_next_thread(st, p);
        request_dispatch(p);
    }
}

/// `KiReadyThread` (lock held) for an Initialized thread.
pub fn ready_thread_locked(st: &mut DispatcherState, tid: u32) -> Result<(), NtStatus> {
    let me = current_processor_number();
    match st.sched.ready_thread(ThreadId(tid), me) {
        Ok(a) => {
            act(st, a);
            Ok(())
        }
        Err(SchedError::BadThread(_)) => Err(STATUS_INVALID_PARAMETER),
        Err(SchedError::WrongState(..)) => Err(STATUS_INVALID_PARAMETER),
        Err(e) => scheduler_error(e, 3),
    }
}

/// Starts a created thread (`KeReadyThread` after `PsCreateSystemThread`):
/// STATUS_INVALID_PARAMETER if `tid` names no thread that waits to start.
pub fn ready_thread(tid: u32) -> Result<(), NtStatus> {
    let mut g = lock();
    ready_thread_locked(&mut g, tid)
}

/// `PsCreateSystemThread`: creates a System-process thread running
/// `routine(context)` (see `thread::create_system_thread`) and starts it.
pub fn start_system_thread(
    name: &str,
    priority: u8,
    affinity: u64,
    routine: thread::StartRoutine,
    context: usize,
) -> Result<u32, NtStatus> {
    let tid = thread::create_system_thread(name, priority, affinity, routine, context)?;
    ready_thread(tid)?;
    Ok(tid)
}

/// `KiUnwaitThread` (lock held): ends `tid`'s wait with `status` and readies
/// it with the priority `increment`; its wait blocks and timeout go away.
/// Nothing happens if the thread does not wait (someone ended it first).
pub fn unwait_thread(st: &mut DispatcherState, tid: u32, status: NtStatus, increment: u8) {
    let waiting = st
        .sched
        .thread(ThreadId(tid))
        .is_ok_and(|t| t.state == ThreadState::Waiting);
    if !waiting {
        return;
    }
    if let Some(q) = end_wait(st, tid, status) {
        super::queue::thread_wakes(st, q);
    }
    match st
        .sched
        .unwait_thread(ThreadId(tid), increment, current_processor_number())
    {
        Ok(a) => act(st, a),
        Err(e) => scheduler_error(e, 4),
    }
}

/// Ends thread `tid`'s recorded wait with `status` (lock held): leaves
/// its wait blocks and its timeout, and returns the queue it is associated
/// with when it was not waiting on that queue (whose concurrency count then
/// takes it back).
fn end_wait(st: &mut DispatcherState, tid: u32, status: NtStatus) -> Option<u32> {
    st.db.cancel_wait(ThreadId(tid));
    let _ = st.timers.cancel(::ke::timer::TimerId(tid));
    let e = st.thread_table.get_mut(tid)?;
    e.wait.status = status;
    e.queue.filter(|_| !e.queue_wait)
}

/// The idle thread of processor `p`.
fn idle_thread_of(p: u32) -> *const KThread {
    let addr = if p == current_processor_number() {
        super::current_prcb().idle_thread.load(Ordering::Relaxed)
    } else {
        super::pcr_of(p).map_or(0, |pcr| pcr.prcb.idle_thread.load(Ordering::Relaxed))
    };
    addr as *const KThread
}

/// Performs a switch the scheduler decided on this processor (lock held):
/// from the current thread to `sw.new` (or the idle thread). Returns when
/// the current thread runs again, still holding the lock.
fn switch_to(g: &mut DispatcherGuard, sw: Switch) {
    let me = current_processor_number();
    let ps = &PROCESSOR_SCHED[me as usize];
    ps.quantum_end.store(false, Ordering::Relaxed);
    sync_quantum_in(g, me);
    publish_next_thread(g, me);
    let new: *const KThread = match sw.new {
        Some(t) => match g.thread_table.get(t.0) {
            Some(e) => e.thread.as_ptr(),
            None => scheduler_error(SchedError::BadThread(t), 5),
        },
        None => idle_thread_of(me),
    };
    ps.idle.store(sw.new.is_none(), Ordering::Relaxed);
    let cur = super::current_prcb().current_thread.load(Ordering::Relaxed) as *const KThread;
    if new.is_null() || core::ptr::eq(cur, new) {
        return;
    }
    // SAFETY: the lock is held (the guard), `cur` is this processor's
    // current thread and `new` a switched-out thread in the thread table (or
    // this processor's idle thread, which never goes away); no reference
    // into the dispatcher state is live across the call (only the guard,
    // which holds a pointer).
    unsafe { thread::swap_context(cur, new) };
    reap_dead_thread(g);
    kick_pending_apcs();
}

/// A thread that was switched in with kernel APCs queued asks for the APC
/// interrupt (it fires once its IRQL drops to PASSIVE_LEVEL).
fn kick_pending_apcs() {
    if thread::try_current_thread().is_some_and(|t| t.kernel_apc_pending.load(Ordering::Relaxed)) {
        apic::request_software_interrupt(apic::APC_VECTOR);
    }
}

/// Blocks the current thread (`KiSwapThread`): it must already be recorded
/// wherever its wake-up comes from. Lock held on entry and on return; the
/// wait's status is in the thread's `WaitRecord` afterwards.
pub fn block_current(g: &mut DispatcherGuard) {
    let tid = current_thread_id();
    if kernel_apc_deliverable_in_wait(g, tid) {
        // A kernel APC was queued while this thread ran on its way into the
        // wait: the APC interrupt asked for then cannot fire until the IRQL
        // drops, and would find another thread if this one blocked. As NT's
        // wait does, the wait ends at once with STATUS_KERNEL_APC; the
        // caller drops the lock (the APC is delivered) and waits again.
        // The thread never blocked, so its queue's count never dropped.
        let _ = end_wait(g, tid, STATUS_KERNEL_APC);
        apic::request_software_interrupt(apic::APC_VECTOR);
        return;
    }
    if let Some(q) = g
        .thread_table
        .get(tid)
        .and_then(|e| e.queue.filter(|_| !e.queue_wait))
    {
        super::queue::thread_blocks(g, q);
    }
    let me = current_processor_number();
    sync_quantum_out(g, me);
    match g.sched.wait(me) {
        Ok(sw) => switch_to(g, sw),
        Err(e) => scheduler_error(e, 6),
    }
}

/// Whether thread `tid`, about to block in the wait recorded for it, has a
/// kernel APC it could run at the wait's IRQL (lock held).
fn kernel_apc_deliverable_in_wait(st: &DispatcherState, tid: u32) -> bool {
    let Some(e) = st.thread_table.get(tid) else {
        return false;
    };
    let t = &e.thread;
    e.apc
        .next_deliverable(
            e.wait.irql,
            t.special_apc_disable() != 0,
            t.kernel_apc_disable() != 0 || st.db.mutex_apc_disable(ThreadId(tid)) != 0,
            t.kernel_apc_in_progress.load(Ordering::Relaxed),
            ProcessorMode::KernelMode,
        )
        .is_some()
}

/// The DISPATCH_LEVEL software interrupt (`KiDispatchInterrupt`): expires
/// timers (processor 0), drains the DPC queue, then asks the scheduler what
/// runs next here (quantum end, preemption, an idle processor picking up
/// work, a thread whose affinity no longer allows this processor).
pub fn dispatch_interrupt() {
    let me = current_processor_number();
    let ps = &PROCESSOR_SCHED[me as usize];
    ps.dispatch_interrupts.fetch_add(1, Ordering::Relaxed);
    if me == 0 {
        super::timer::expire(interrupt_time());
    }
    super::dpc::drain_dpc_queue();
    if !SCHEDULER_RUNNING.load(Ordering::Relaxed) {
        return;
    }
    let mut g = lock();
    let quantum_end = ps.quantum_end.swap(false, Ordering::Relaxed);
    sync_quantum_out(&mut g, me);
    match g.sched.migrate(me) {
        Ok(Some((sw, moved))) => {
            kick(moved);
            switch_to(&mut g, sw);
            return;
        }
        Ok(None) => {}
        Err(e) => scheduler_error(e, 7),
    }
    match g.sched.dispatch(me, quantum_end) {
        Ok(Some(sw)) => switch_to(&mut g, sw),
        Ok(None) => sync_quantum_in(&g, me),
        Err(e) => scheduler_error(e, 8),
    }
}

/// Interrupt time in 100 ns units (`KeQueryInterruptTime`).
pub fn interrupt_time() -> u64 {
    super::clock::ke_query_interrupt_time()
}

/// The check NT makes before a thread gives up its processor (a wait with
/// a timeout other than zero, a delay, a yield): not inside a DPC routine
/// (ATTEMPTED_SWITCH_FROM_DPC, 0xB8: the current thread, no new thread,
/// the stack pointer), and at most APC_LEVEL (IRQL_NOT_LESS_OR_EQUAL, 0xA:
/// no address, the current IRQL, 0, the routine that was called).
pub fn check_switch_allowed(routine: u64) {
    if super::dpc::dpc_routine_active() {
        let sp: u64;
        // SAFETY: reads the stack pointer.
        unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack)) };
        super::bugcheck::ke_bug_check_ex(
            nt::bugcheck::ATTEMPTED_SWITCH_FROM_DPC,
            thread::try_current_thread().map_or(0, |t| t.address()),
            0,
            sp,
            0,
        );
    }
    let irql = super::irql();
    if irql > APC_LEVEL {
        super::bugcheck::ke_bug_check_ex(
            nt::bugcheck::IRQL_NOT_LESS_OR_EQUAL,
            0,
            irql as u64,
            0,
            routine,
        );
    }
}

/// Records the wait the current thread is about to block in (lock held).
pub(super) fn record_wait(
    st: &mut DispatcherState,
    tid: u32,
    reason: WaitReason,
    mode: ProcessorMode,
    alertable: bool,
    irql: u8,
) {
    if let Some(e) = st.thread_table.get_mut(tid) {
        e.wait = WaitRecord {
            reason,
            mode,
            alertable,
            irql,
            start_tick: super::clock::ke_query_tick_count(),
            status: STATUS_SUCCESS,
        };
    }
}

/// Arms the current wait's timeout (the thread's own timer, NT's
/// `KTHREAD.Timer`) for interrupt time `due` (lock held).
pub(super) fn arm_timeout(st: &mut DispatcherState, tid: u32, due: u64) {
    let now = interrupt_time();
    if let Err(e) = st.timers.set(
        ::ke::timer::TimerId(tid),
        now,
        ::ke::timer::DueTime::Absolute(due),
        0,
        None,
    ) {
        super::bugcheck::ke_bug_check_ex(
            nt::bugcheck::KERNEL_SECURITY_CHECK_FAILURE,
            3,
            0x10,
            u64::from(match e {
                ::ke::timer::TimerError::BadTimer(t) => t.0,
            }),
            9,
        );
    }
    super::timer::note_due(due);
}

/// The status the current thread's last wait returned (lock held).
pub(super) fn wait_status(st: &DispatcherState, tid: u32) -> NtStatus {
    st.thread_table
        .get(tid)
        .map_or(STATUS_SUCCESS, |e| e.wait.status)
}

/// `KeDelayExecutionThread` (kernel mode, non-alertable) for `interval` in
/// 100 ns units (relative). A zero interval yields to ready threads of the
/// same or higher priority.
pub fn ke_delay_execution_thread(interval: u64) -> NtStatus {
    ke_delay_execution_thread_ex(false, false, interval)
}

/// `KeDelayExecutionThread(WaitMode, Alertable, Interval)`: an alertable
/// delay returns STATUS_ALERTED when the thread is alerted, and (user mode)
/// STATUS_USER_APC after running queued user APCs; a kernel APC interrupts
/// the delay, is delivered, and the delay resumes for the time left.
/// Callers must be at IRQL <= APC_LEVEL and not in a DPC routine (see
/// [`check_switch_allowed`]).
pub fn ke_delay_execution_thread_ex(user_mode: bool, alertable: bool, interval: u64) -> NtStatus {
    check_switch_allowed(ke_delay_execution_thread_ex as *const () as u64);
    if interval == 0 && !alertable {
        yield_at_least(true);
        return STATUS_SUCCESS;
    }
    let mode = if user_mode {
        ProcessorMode::UserMode
    } else {
        ProcessorMode::KernelMode
    };
    let due = interrupt_time().saturating_add(interval);
    let tid = current_thread_id();
    loop {
        let mut g = lock();
        let st = &mut *g;
        let early = st
            .thread_table
            .get_mut(tid)
            .and_then(|e| e.apc.check_alertability(mode, alertable));
        if let Some(s) = early {
            drop(g);
            if s == STATUS_USER_APC {
                super::apc::ki_deliver_user_apcs();
            }
            return s;
        }
        if interval == 0 || interrupt_time() >= due {
            return STATUS_SUCCESS;
        }
        let irql = g.old_irql();
        record_wait(
            &mut g,
            tid,
            WaitReason::DelayExecution,
            mode,
            alertable,
            irql,
        );
        arm_timeout(&mut g, tid, due);
        block_current(&mut g);
        let status = wait_status(&g, tid);
        drop(g);
        // Lowering the IRQL delivered any kernel APC that ended the wait.
        if status == STATUS_KERNEL_APC {
            continue;
        }
        if status == STATUS_USER_APC {
            super::apc::ki_deliver_user_apcs();
        }
        return status;
    }
}

/// Yields this processor to a ready thread of at least the current
/// thread's priority (`same_or_higher`) or of any priority.
fn yield_at_least(same_or_higher: bool) -> NtStatus {
    let mut g = lock();
    // Only now (at SYNCH_LEVEL) is the processor number stable.
    let me = current_processor_number();
    sync_quantum_out(&mut g, me);
    let min = match g.sched.running(me) {
        Some(r) if same_or_higher => g.sched.thread(r).map_or(0, |t| t.priority),
        _ => 0,
    };
    match g.sched.yield_execution(me, min) {
        Ok((status, Some(sw))) => {
            switch_to(&mut g, sw);
            status
        }
        Ok((status, None)) => status,
        Err(e) => scheduler_error(e, 10),
    }
}

/// `NtYieldExecution`: gives the processor to a ready thread of the same or
/// higher priority (ntrs does not yield to lower priorities; the
/// zero-page thread would otherwise take every yield); returns
/// STATUS_NO_YIELD_PERFORMED when there is none. Same IRQL rule as a delay.
pub fn ke_yield_execution() -> NtStatus {
    check_switch_allowed(ke_yield_execution as *const () as u64);
    yield_at_least(true)
}

/// `KeSetPriorityThread`: sets base and current priority (clamped to 31),
/// requeues a ready thread and lets a now higher-priority thread preempt.
/// Returns the previous priority (0 if `tid` names no schedulable thread).
pub fn ke_set_priority_thread(tid: u32, priority: u8) -> u8 {
    let mut g = lock();
    let Ok(prev) = g.sched.thread(ThreadId(tid)).map(|t| t.priority) else {
        return 0;
    };
    match g
        .sched
        .set_priority(ThreadId(tid), priority.min(31), current_processor_number())
    {
        Ok(p) => {
            if let Some(p) = p {
                publish_next_thread(&g, p);
            }
            kick(p)
        }
        Err(e) => scheduler_error(e, 11),
    }
    prev
}

/// `KeQueryPriorityThread`: the thread's current priority.
pub fn ke_query_priority_thread(tid: u32) -> Option<u8> {
    let g = lock();
    g.sched.thread(ThreadId(tid)).ok().map(|t| t.priority)
}

/// Thread `tid`'s current and base priority and its affinity, if it is
/// schedulable (`NtQueryInformationThread`).
pub fn thread_priorities(tid: u32) -> Option<(u8, u8, u64)> {
    let g = lock();
    g.sched
        .thread(ThreadId(tid))
        .ok()
        .map(|t| (t.priority, t.base_priority, t.affinity))
}

/// The scheduling state of thread `tid`, if it is schedulable (idle
/// threads and reaped threads are not).
pub fn thread_state(tid: u32) -> Option<ThreadState> {
    let g = lock();
    g.sched.thread(ThreadId(tid)).ok().map(|t| t.state)
}

/// `KeSetSystemAffinityThreadEx`: the current thread may run only on
/// `affinity` until `ke_revert_to_user_affinity_thread`; if this processor
/// is not in it, the thread moves at once. Returns the previous affinity.
/// An affinity with no active processor stops the system with
/// INVALID_AFFINITY_SET (0x02: the affinity, the active processors), as NT does.
pub fn ke_set_system_affinity_thread(affinity: u64) -> u64 {
    let tid = current_thread_id();
    let mut g = lock();
    let me = current_processor_number();
    let prev = match g.sched.thread(ThreadId(tid)) {
        Ok(t) => t.affinity,
        Err(e) => scheduler_error(e, 12),
    };
    match g.sched.set_affinity(ThreadId(tid), affinity, me) {
        Ok(Some(p)) if p == me => {
            sync_quantum_out(&mut g, me);
            match g.sched.migrate(me) {
                Ok(Some((sw, moved))) => {
                    kick(moved);
                    switch_to(&mut g, sw);
                }
                Ok(None) => {}
                Err(e) => scheduler_error(e, 13),
            }
        }
        Ok(p) => kick(p),
        Err(SchedError::BadAffinity(a)) => {
            let active = g.sched.active_processors();
            drop(g);
            super::bugcheck::ke_bug_check_ex(nt::bugcheck::INVALID_AFFINITY_SET, a, active, 0, 0)
        }
        Err(e) => scheduler_error(e, 14),
    }
    prev
}

/// `KeRevertToUserAffinityThreadEx`: restores the affinity
/// `ke_set_system_affinity_thread` returned.
pub fn ke_revert_to_user_affinity_thread(previous: u64) {
    ke_set_system_affinity_thread(previous);
}

/// The executive's thread-exit routine (the kernel does not import the
/// executive): called with the exiting thread's id by
/// [`terminate_current_thread`] before the kernel's own part.
/// The executive's thread-exit routines (the process manager's, the I/O
/// manager's `IoCancelThreadIo`), called in registration order.
static THREAD_EXIT_ROUTINES: [crate::rtl::Once<fn(u32)>; 4] =
    [const { crate::rtl::Once::new() }; 4];

/// Registers a thread-exit routine of the executive (phase 0; at most four,
/// a fifth is ignored and false).
pub fn register_thread_exit_routine(routine: fn(u32)) -> bool {
    THREAD_EXIT_ROUTINES.iter().any(|o| o.set(routine))
}

/// `PsTerminateSystemThread` for the current thread (`KeTerminateThread`):
/// its mutants are abandoned, waiters on it released, its APC queues closed
/// and flushed, and it switches away for the last time; the next thread on
/// this processor reaps it.
pub fn terminate_current_thread() -> ! {
    let tid = current_thread_id();
    // The executive's part of thread exit (`PspExitThread`), while the
    // thread still runs at PASSIVE_LEVEL in its own context.
    for exit in THREAD_EXIT_ROUTINES.iter().filter_map(|o| o.get()) {
        exit(tid);
    }
    // `KeFlushQueueApc(UserMode)` with the rundown routines, as PspExitThread.
    super::apc::ke_flush_user_apcs(tid);
    let mut g = lock();
    let me = current_processor_number();
    {
        let st = &mut *g;
        let obj = st.thread_table.get(tid).map(|e| e.thread.dispatcher_object);
        let _ = st.db.thread_exit(ThreadId(tid), obj, &mut st.unwaits);
        let _ = st.timers.cancel(::ke::timer::TimerId(tid));
        super::queue::thread_exits(st, tid);
        if let Some(e) = st.thread_table.get_mut(tid) {
            for q in e.apc.close() {
                q.apc.mark_removed();
            }
            e.thread.kernel_apc_pending.store(false, Ordering::Relaxed);
        }
        super::wait::process_unwaits(st);
    }
    PROCESSOR_SCHED[me as usize]
        .dead_thread
        .store(tid, Ordering::Release);
    sync_quantum_out(&mut g, me);
    match g.sched.terminate(me) {
        Ok(sw) => switch_to(&mut g, sw),
        Err(e) => scheduler_error(e, 15),
    }
    // A terminated thread is never switched back in.
    super::bugcheck::ke_bug_check_ex(
        nt::bugcheck::KERNEL_SECURITY_CHECK_FAILURE,
        3,
        SchedError::WrongState(ThreadId(tid), ThreadState::Terminated).code(),
        u64::from(tid),
        16,
    )
}

/// The idle loop (`KiIdleLoop`): halts until an interrupt; the dispatch
/// interrupt switches to any thread readied for this processor.
pub fn idle_loop() -> ! {
    irql::set_irql(PASSIVE_LEVEL);
    let me = current_processor_number() as usize;
    loop {
        // The halt's start is recorded with interrupts off, so the
        // interrupt that ends this halt is the one that closes it.
        crate::hal::disable_interrupts();
        PROCESSOR_SCHED[me]
            .halt_start
            .store(crate::hal::rdtsc().max(1), Ordering::Relaxed);
        // SAFETY: enabling interrupts then halting atomically (STI shadow).
        unsafe { core::arch::asm!("sti; hlt", options(nomem, nostack)) };
    }
}

/// Makes the code running now on processor `me` (the boot processor) its
/// first thread, of the System process at `priority`, running, and creates
/// its idle thread (`KiInitializeKernel` for the scheduler). A failure here
/// stops the boot (PHASE1_INITIALIZATION_FAILED: the status, 1).
pub fn start_processor_threads(me: u32, name: &str, priority: u8, stack_top: u64) -> u32 {
    let fail = |s: NtStatus| -> ! {
        super::bugcheck::ke_bug_check_ex(
            nt::bugcheck::PHASE1_INITIALIZATION_FAILED,
            s.as_u32() as u64,
            1,
            0,
            0,
        )
    };
    super::process::initialize(crate::rtl::loader_block().pml4_physical);
    let tid = thread::create_thread(
        name,
        &super::process::KI_SYSTEM_PROCESS,
        thread::Start::Adopt { stack_top },
        |st, id| {
            let t = ThreadId(id);
            st.sched
                .create_thread(t, priority, 1 << me, me, ::ke::priority::CLIENT_QUANTUM)
                .and_then(|_| st.sched.ready_thread(t, me))
                .and_then(|_| st.sched.dispatch(me, false))
                .map(|_| ())
                .map_err(|_| STATUS_INVALID_PARAMETER)
        },
    )
    .unwrap_or_else(|s| fail(s));
    {
        let g = lock();
        if let Some(e) = g.thread_table.get(tid) {
            super::current_prcb()
                .current_thread
                .store(e.thread.address(), Ordering::Relaxed);
        }
        sync_quantum_in(&g, me);
    }
    PROCESSOR_SCHED[me as usize]
        .idle
        .store(false, Ordering::Relaxed);
    let idle = thread::create_thread(
        "Idle",
        &super::process::KI_IDLE_PROCESS,
        thread::Start::Routine(|_| idle_loop(), 0),
        |_, _| Ok(()),
    )
    .unwrap_or_else(|s| fail(s));
    set_idle_thread(idle);
    PROCESSOR_SCHED[me as usize]
        .active
        .store(true, Ordering::Release);
    tid
}

fn set_idle_thread(tid: u32) {
    let g = lock();
    if let Some(e) = g.thread_table.get(tid) {
        super::current_prcb()
            .idle_thread
            .store(e.thread.address(), Ordering::Relaxed);
    }
}

/// Turns the current (AP startup) path into this processor's idle thread
/// and makes the processor available to the scheduler: from here on it
/// runs what the scheduler gives it.
pub fn become_idle(me: u32, stack_top: u64) -> ! {
    let idle = thread::create_thread(
        "Idle",
        &super::process::KI_IDLE_PROCESS,
        thread::Start::Adopt { stack_top },
        |_, _| Ok(()),
    );
    let tid = match idle {
        Ok(t) => t,
        Err(s) => super::bugcheck::ke_bug_check_ex(
            nt::bugcheck::PHASE1_INITIALIZATION_FAILED,
            s.as_u32() as u64,
            2,
            me as u64,
            0,
        ),
    };
    {
        let mut g = lock();
        if let Some(e) = g.thread_table.get(tid) {
            let a = e.thread.address();
            let prcb = super::current_prcb();
            prcb.current_thread.store(a, Ordering::Relaxed);
            prcb.idle_thread.store(a, Ordering::Relaxed);
        }
        if let Err(e) = g.sched.set_active(me, true) {
            scheduler_error(e, 17);
        }
    }
    PROCESSOR_SCHED[me as usize]
        .active
        .store(true, Ordering::Release);
    idle_loop()
}

/// The wait thread `tid` is blocked in (None when it does not wait): what
/// `!thread` shows.
pub fn wait_record(tid: u32) -> Option<WaitRecord> {
    let g = lock();
    let waiting = g
        .sched
        .thread(ThreadId(tid))
        .is_ok_and(|t| t.state == ThreadState::Waiting);
    waiting
        .then(|| g.thread_table.get(tid).map(|e| e.wait))
        .flatten()
}

/// Threads in the thread table (leak checks).
pub fn live_threads() -> usize {
    lock().thread_table.ids().count()
}

/// A counted reference to thread `tid` (`PsLookupThreadByThreadId`), if it
/// exists.
pub fn reference_thread(tid: u32) -> Option<ThreadRef> {
    let g = lock();
    g.thread_table.get(tid).map(|e| e.thread.clone())
}
