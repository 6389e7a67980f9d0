//! Asynchronous procedure calls (*Windows Internals*, Part 2, ch. 8,
//! "Asynchronous procedure call interrupts").
//!
//! The queues and their rules are the host-tested `ke::apc::ApcState` in
//! each thread's entry of the thread table (under the dispatcher lock):
//! special kernel APCs (no normal routine) go after the special APCs
//! already queued and before every normal kernel APC; normal kernel and
//! user APCs at the tail. Kernel APCs are delivered by the APC_LEVEL
//! software interrupt (a self-IPI at vector 0x1F, held by the APIC until
//! IRQL drops to PASSIVE): special ones unless the thread is in a guarded
//! region (`SpecialApcDisable`), normal ones only at PASSIVE_LEVEL outside
//! critical regions (`KernelApcDisable`, which includes the kernel mutexes
//! the thread owns) and not while another normal kernel APC runs. A kernel
//! APC aborts a wait at PASSIVE_LEVEL with STATUS_KERNEL_APC (the wait
//! restarts after delivery); a user APC aborts an alertable user-mode wait
//! with STATUS_USER_APC and runs before the wait returns (ntrs has no user
//! mode yet: "returning to user mode" is the return from the wait, and
//! `NtContinue`'s test-alert between user APCs is `ke_test_alert_thread`).

use super::sched::{self, DispatcherState, QueuedApc};
use super::thread::{self, ThreadState};
use super::{APC_LEVEL, PASSIVE_LEVEL};
use crate::hal::apic;
use ::ke::apc::{ApcKind, ApcTarget, ProcessorMode};
use ::ke::objects::ThreadId;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// `KPROCESSOR_MODE` of an APC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApcMode {
    KernelMode = 0,
    UserMode = 1,
}

impl ApcMode {
    fn processor_mode(self) -> ProcessorMode {
        match self {
            ApcMode::KernelMode => ProcessorMode::KernelMode,
            ApcMode::UserMode => ProcessorMode::UserMode,
        }
    }
}

/// `PKNORMAL_ROUTINE`: (NormalContext, SystemArgument1, SystemArgument2).
pub type NormalRoutine = fn(usize, usize, usize);
/// `PKKERNEL_ROUTINE`: runs at APC_LEVEL first; may change or cancel the normal routine.
pub type KernelRoutine = fn(&KApc, &mut Option<NormalRoutine>, &mut usize);
/// `PKRUNDOWN_ROUTINE`: called instead of the routines for an APC flushed
/// from a terminating thread's queue (it may free the APC's memory).
pub type RundownRoutine = fn(&KApc);

/// `KAPC`. The system arguments of an insertion travel in the queue entry.
pub struct KApc {
    pub kernel_routine: KernelRoutine,
    pub normal_routine: Option<NormalRoutine>,
    pub normal_context: usize,
    pub mode: ApcMode,
    /// `RundownRoutine`.
    pub rundown_routine: Option<RundownRoutine>,
    /// A user-mode APC's `NormalRoutine` when it is a user address (queued
    /// by `NtQueueApcThread`): delivered through `KiUserApcDispatcher` on
    /// the way back to user mode instead of being called in the kernel.
    pub user_routine: u64,
    /// The APC was allocated by [`KApc::new_user`] and the kernel frees it
    /// once it ran or was flushed (NT's `PspQueueApcSpecialApc` frees its APC).
    pool_allocated: bool,
    /// `Thread`: the thread it was last queued to.
    thread: AtomicU32,
    /// `Inserted`.
    inserted: AtomicBool,
}

impl KApc {
    /// `KeInitializeApc` (the target thread is given at insertion).
    pub const fn new(
        kernel_routine: KernelRoutine,
        normal_routine: Option<NormalRoutine>,
        normal_context: usize,
        mode: ApcMode,
    ) -> Self {
        KApc {
            kernel_routine,
            normal_routine,
            normal_context,
            mode,
            rundown_routine: None,
            user_routine: 0,
            pool_allocated: false,
            thread: AtomicU32::new(0),
            inserted: AtomicBool::new(false),
        }
    }

    /// A user APC calling the user-mode `routine(context, arg1, arg2)`
    /// (the system arguments come with the insertion), allocated from the
    /// heap and freed by the kernel after delivery or flush.
    pub fn new_user(routine: u64, context: usize) -> &'static KApc {
        let mut a = KApc::new(user_apc_kernel_routine, None, context, ApcMode::UserMode);
        a.user_routine = routine;
        a.pool_allocated = true;
        alloc::boxed::Box::leak(alloc::boxed::Box::new(a))
    }

    /// The APC with a rundown routine (`KeInitializeApc`'s `RundownRoutine`).
    pub const fn with_rundown(mut self, rundown: RundownRoutine) -> Self {
        self.rundown_routine = Some(rundown);
        self
    }

    /// Whether the APC is queued.
    pub fn is_inserted(&self) -> bool {
        self.inserted.load(Ordering::Acquire)
    }

    /// The APC left its queue without running (flushed at thread exit).
    pub(super) fn mark_removed(&self) {
        self.inserted.store(false, Ordering::Release);
    }

    fn kind(&self) -> ApcKind {
        match (self.mode, self.normal_routine) {
            (ApcMode::UserMode, _) => ApcKind::User,
            (ApcMode::KernelMode, None) => ApcKind::SpecialKernel,
            (ApcMode::KernelMode, Some(_)) => ApcKind::NormalKernel,
        }
    }
}

/// Requests the APC interrupt on processor `p`.
fn request_apc_interrupt(p: u32) {
    if p == super::current_processor_number() {
        apic::request_software_interrupt(apic::APC_VECTOR);
    } else if let Some(id) = super::apic_id_of(p) {
        apic::send_ipi(id, apic::APC_VECTOR);
    }
}

/// What an inserter knows about thread `tid` (lock held).
fn target_of(st: &DispatcherState, tid: u32) -> Option<ApcTarget> {
    let e = st.thread_table.get(tid)?;
    let s = st.sched.thread(ThreadId(tid)).ok()?;
    let t = &e.thread;
    let waiting = s.state == ThreadState::Waiting;
    Some(ApcTarget {
        running: s.state == ThreadState::Running,
        waiting,
        wait_irql: e.wait.irql,
        wait_mode: e.wait.mode,
        alertable: waiting && e.wait.alertable,
        special_apc_disable: t.special_apc_disable() != 0,
        kernel_apc_disable: t.kernel_apc_disable() != 0
            || st.db.mutex_apc_disable(ThreadId(tid)) != 0,
        kernel_apc_in_progress: t.kernel_apc_in_progress.load(Ordering::Relaxed),
    })
}

/// `KeInsertQueueApc`: queues `apc` to thread `tid` with the system
/// arguments; FALSE if it is already queued or the thread takes no APCs
/// (terminating, or not a schedulable thread). Kicks the thread: an APC
/// interrupt where it runs, or an aborted wait (see the module note), with
/// the priority `increment` if the wait ends.
pub fn ke_insert_queue_apc(
    apc: &'static KApc,
    tid: u32,
    arg1: usize,
    arg2: usize,
    increment: u8,
) -> bool {
    let mut g = sched::lock();
    let st = &mut *g;
    let Some(target) = target_of(st, tid) else {
        return false;
    };
    if apc.inserted.swap(true, Ordering::AcqRel) {
        return false;
    }
    let Some(e) = st.thread_table.get_mut(tid) else {
        apc.inserted.store(false, Ordering::Release);
        return false;
    };
    let r = e
        .apc
        .insert(QueuedApc { apc, arg1, arg2 }, apc.kind(), &target);
    if !r.inserted {
        apc.inserted.store(false, Ordering::Release);
        return false;
    }
    apc.thread.store(tid, Ordering::Relaxed);
    e.thread
        .kernel_apc_pending
        .store(e.apc.kernel_apc_pending(), Ordering::Relaxed);
    if r.request_interrupt {
        if let Ok(s) = st.sched.thread(ThreadId(tid)) {
            request_apc_interrupt(s.last_processor);
        }
    }
    if let Some(status) = r.unwait {
        sched::unwait_thread(st, tid, status, increment);
    }
    true
}

/// `KeRemoveQueueApc`: takes `apc` off its thread's queue before it runs;
/// false if it is not queued.
pub fn ke_remove_queue_apc(apc: &'static KApc) -> bool {
    let mut g = sched::lock();
    if !apc.is_inserted() {
        return false;
    }
    let tid = apc.thread.load(Ordering::Relaxed);
    let Some(e) = g.thread_table.get_mut(tid) else {
        return false;
    };
    let removed = e.apc.remove(QueuedApc {
        apc,
        arg1: 0,
        arg2: 0,
    });
    if removed {
        e.thread
            .kernel_apc_pending
            .store(e.apc.kernel_apc_pending(), Ordering::Relaxed);
        apc.inserted.store(false, Ordering::Release);
    }
    removed
}

/// `KeFlushQueueApc(Thread, UserMode)` followed by the rundown routines, as
/// thread exit does (`PspExitThread`): takes every user APC off `tid`'s
/// queue and calls each one's rundown routine (outside the dispatcher
/// lock). Returns how many were flushed.
pub fn ke_flush_user_apcs(tid: u32) -> usize {
    let mut flushed: alloc::vec::Vec<&'static KApc> = alloc::vec::Vec::new();
    {
        let mut g = sched::lock();
        let Some(e) = g.thread_table.get_mut(tid) else {
            return 0;
        };
        let user: alloc::vec::Vec<QueuedApc> = e
            .apc
            .queued()
            .filter(|(_, k)| *k == ApcKind::User)
            .map(|(q, _)| q)
            .collect();
        for q in user {
            if e.apc.remove(q) {
                q.apc.inserted.store(false, Ordering::Release);
                flushed.push(q.apc);
            }
        }
    }
    let n = flushed.len();
    for a in flushed {
        if let Some(r) = a.rundown_routine {
            r(a);
        }
        free_user_apc(a as *const KApc);
    }
    n
}

/// The APCs queued to thread `tid` in delivery order, with their system
/// arguments (kd `!apc`, tests): (APC, kind, SystemArgument1, SystemArgument2).
pub fn ke_queued_apcs(tid: u32) -> alloc::vec::Vec<(&'static KApc, ApcKind, usize, usize)> {
    let g = sched::lock();
    g.thread_table
        .get(tid)
        .map(|e| {
            e.apc
                .queued()
                .map(|(q, k)| (q.apc, k, q.arg1, q.arg2))
                .collect()
        })
        .unwrap_or_default()
}

/// Takes the next APC the current thread may run now (`KiDeliverApc`'s
/// choice), `mode` being where it returns to.
fn next_apc(previous_irql: u8, mode: ProcessorMode) -> Option<(QueuedApc, ApcKind)> {
    let tid = sched::current_thread_id();
    let mut g = sched::lock();
    let st = &mut *g;
    let mutexes = st.db.mutex_apc_disable(ThreadId(tid));
    let e = st.thread_table.get_mut(tid)?;
    let t = &e.thread;
    let next = e.apc.deliver(
        previous_irql,
        t.special_apc_disable() != 0,
        t.kernel_apc_disable() != 0 || mutexes != 0,
        t.kernel_apc_in_progress.load(Ordering::Relaxed),
        mode,
    );
    t.kernel_apc_pending
        .store(e.apc.kernel_apc_pending(), Ordering::Relaxed);
    next
}

/// `KiDeliverApc` for kernel mode: runs the current thread's deliverable
/// kernel APCs. `previous_irql` is the level the APC interrupt came from.
pub fn ki_deliver_kernel_apcs(previous_irql: u8) {
    while let Some((q, kind)) = next_apc(previous_irql, ProcessorMode::KernelMode) {
        run_apc(q, kind != ApcKind::User);
    }
}

/// Runs one dequeued APC: its kernel routine at APC_LEVEL, then its normal
/// routine (kernel normal APCs at PASSIVE_LEVEL with KernelApcInProgress).
fn run_apc(q: QueuedApc, kernel: bool) {
    let apc = q.apc;
    apc.inserted.store(false, Ordering::Release);
    let mut normal = apc.normal_routine;
    let mut ctx = apc.normal_context;
    let saved = super::irql();
    super::irql::set_irql(APC_LEVEL.max(saved));
    (apc.kernel_routine)(apc, &mut normal, &mut ctx);
    super::irql::set_irql(saved);
    if let Some(n) = normal {
        let t = sched::current_thread();
        if kernel {
            t.kernel_apc_in_progress.store(true, Ordering::Relaxed);
            super::irql::set_irql(PASSIVE_LEVEL);
        }
        n(ctx, q.arg1, q.arg2);
        if kernel {
            super::irql::set_irql(saved);
            t.kernel_apc_in_progress.store(false, Ordering::Relaxed);
        }
    }
}

/// The kernel routine of [`KApc::new_user`] APCs: nothing to do (the
/// kernel frees the APC after delivery).
fn user_apc_kernel_routine(_: &KApc, _: &mut Option<NormalRoutine>, _: &mut usize) {}

/// Frees an APC from [`KApc::new_user`] once no reference to it is used
/// any more; other APCs are left alone.
fn free_user_apc(apc: *const KApc) {
    // SAFETY: `apc` points at a live KApc (the caller's queue entry, off
    // every queue now).
    if unsafe { (*apc).pool_allocated } {
        // SAFETY: pool-allocated APCs come from `Box::leak` in `new_user`;
        // the APC left its queue and its last user is done with it.
        drop(unsafe { alloc::boxed::Box::from_raw(apc as *mut KApc) });
    }
}

/// Frees a [`KApc::new_user`] APC that `ke_insert_queue_apc` refused.
pub fn ke_free_unqueued_user_apc(apc: &'static KApc) {
    if !apc.is_inserted() {
        free_user_apc(apc as *const KApc);
    }
}

/// Whether the next user APC of the current thread is a user-mode routine
/// (then the in-kernel delivery below stops and the system-service exit
/// delivers it to user mode).
fn next_is_user_routine() -> bool {
    let tid = sched::current_thread_id();
    let g = sched::lock();
    g.thread_table.get(tid).is_some_and(|e| {
        e.apc
            .next_deliverable(PASSIVE_LEVEL, true, true, true, ProcessorMode::UserMode)
            .is_some_and(|(q, k)| k == ApcKind::User && q.apc.user_routine != 0)
    })
}

/// `KiDeliverApc(UserMode)` for an APC with a user-mode routine, at the
/// system-service exit: dequeues the current thread's next user APC if
/// `UserApcPending` is set and it has a user routine, runs its kernel
/// routine and returns (routine, NormalContext, SystemArgument1,
/// SystemArgument2); the APC is freed if the kernel allocated it.
pub fn ki_take_user_mode_apc() -> Option<(u64, usize, usize, usize)> {
    if !next_is_user_routine() {
        return None;
    }
    let (q, kind) = next_apc(PASSIVE_LEVEL, ProcessorMode::UserMode)?;
    let apc = q.apc;
    apc.inserted.store(false, Ordering::Release);
    if kind != ApcKind::User || apc.user_routine == 0 {
        // Raced with another delivery: run it the in-kernel way.
        run_apc(q, kind != ApcKind::User);
        return None;
    }
    let mut normal = None;
    let mut ctx = apc.normal_context;
    let saved = super::irql();
    super::irql::set_irql(APC_LEVEL.max(saved));
    (apc.kernel_routine)(apc, &mut normal, &mut ctx);
    super::irql::set_irql(saved);
    let routine = apc.user_routine;
    free_user_apc(apc as *const KApc);
    Some((routine, ctx, q.arg1, q.arg2))
}

/// Delivers the current thread's APCs on "the way back to user mode" after
/// a wait ended with STATUS_USER_APC (`KiDeliverApc(UserMode)`, one user
/// APC per return, with `NtContinue`'s test-alert re-arming the next).
/// APCs with a user-mode routine stay queued (with `UserApcPending`) for
/// the system-service exit, which enters `KiUserApcDispatcher` with them.
/// Returns how many user APCs ran.
pub fn ki_deliver_user_apcs() -> usize {
    let mut n = 0;
    while !next_is_user_routine() {
        let Some((q, kind)) = next_apc(PASSIVE_LEVEL, ProcessorMode::UserMode) else {
            break;
        };
        run_apc(q, kind != ApcKind::User);
        if kind == ApcKind::User {
            n += 1;
            ke_test_alert_thread(ApcMode::UserMode);
        }
    }
    n
}

/// Asks for the APC interrupt if kernel APCs wait (after a region ends).
fn deliver_pending(t: &thread::KThread) {
    if t.kernel_apc_pending.load(Ordering::Relaxed) {
        apic::request_software_interrupt(apic::APC_VECTOR);
    }
}

/// Asks for the APC interrupt if kernel APCs wait for the current thread
/// (after it gave up something that held them off, e.g. a kernel mutex).
pub fn ke_deliver_pending_kernel_apcs() {
    deliver_pending(&sched::current_thread());
}

/// `KeEnterCriticalRegion`: disables normal kernel APCs.
pub fn ke_enter_critical_region() {
    sched::current_thread()
        .kernel_apc_disable
        .fetch_add(1, Ordering::Relaxed);
}

/// `KeLeaveCriticalRegion`: re-enables them and delivers any that are pending.
pub fn ke_leave_critical_region() {
    let t = sched::current_thread();
    let prev = t
        .kernel_apc_disable
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(1))
        })
        .unwrap_or(0);
    if prev == 1 {
        deliver_pending(&t);
    }
}

/// `KeEnterGuardedRegion`: disables all kernel APCs.
pub fn ke_enter_guarded_region() {
    sched::current_thread()
        .special_apc_disable
        .fetch_add(1, Ordering::Relaxed);
}

/// `KeLeaveGuardedRegion`.
pub fn ke_leave_guarded_region() {
    let t = sched::current_thread();
    let prev = t
        .special_apc_disable
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(1))
        })
        .unwrap_or(0);
    if prev == 1 {
        deliver_pending(&t);
    }
}

/// `KeAlertThread`: sets the thread's alert for `mode`; an alertable wait
/// that the alert may end (a kernel-mode alert ends any, a user-mode alert
/// only a user-mode one) ends with STATUS_ALERTED instead. Returns the
/// previous alert state.
pub fn ke_alert_thread(tid: u32, mode: ApcMode) -> bool {
    let mut g = sched::lock();
    let st = &mut *g;
    let waiting = st
        .sched
        .thread(ThreadId(tid))
        .is_ok_and(|t| t.state == ThreadState::Waiting);
    let Some(e) = st.thread_table.get_mut(tid) else {
        return false;
    };
    let waiting_alertable = (waiting && e.wait.alertable).then_some(e.wait.mode);
    let (prev, end) = e.apc.alert(mode.processor_mode(), waiting_alertable);
    if let Some(status) = end {
        sched::unwait_thread(st, tid, status, 0);
    }
    prev
}

/// `KeTestAlertThread`: consumes the current thread's alert for `mode`
/// (for user mode with user APCs queued it sets `UserApcPending`).
pub fn ke_test_alert_thread(mode: ApcMode) -> bool {
    let tid = sched::current_thread_id();
    let mut g = sched::lock();
    g.thread_table
        .get_mut(tid)
        .is_some_and(|e| e.apc.test_alert(mode.processor_mode()))
}
