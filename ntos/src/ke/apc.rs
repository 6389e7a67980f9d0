//! Asynchronous procedure calls (*Windows Internals*, Part 2, ch. 8,
//! "Asynchronous procedure call interrupts").
//!
//! Each thread has a kernel-mode and a user-mode APC queue. Special kernel
//! APCs (no normal routine) go after the special APCs already queued and
//! before every normal kernel APC; normal kernel and user APCs go at the
//! tail. Kernel APCs are delivered by the APC_LEVEL software interrupt (a
//! self-IPI at vector 0x1F, held by the APIC until IRQL drops to PASSIVE):
//! special ones unless the thread is in a guarded region
//! (`SpecialApcDisable`), normal ones only at PASSIVE_LEVEL outside critical
//! regions (`KernelApcDisable`) and not while another normal kernel APC runs.
//! A kernel APC aborts a wait at PASSIVE_LEVEL with STATUS_KERNEL_APC (the
//! wait restarts after delivery); a user APC aborts an alertable user-mode
//! wait with STATUS_USER_APC and runs before the wait returns (ntrs has no
//! user mode yet: "returning to user mode" is the return from the wait).

use super::sched::{self, DispatcherState};
use super::thread::{self, KThread, ThreadState};
use super::{APC_LEVEL, PASSIVE_LEVEL};
use crate::hal::apic;
use alloc::collections::VecDeque;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// `KPROCESSOR_MODE` of an APC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApcMode {
    KernelMode = 0,
    UserMode = 1,
}

/// `PKNORMAL_ROUTINE`: (NormalContext, SystemArgument1, SystemArgument2).
pub type NormalRoutine = fn(usize, usize, usize);
/// `PKKERNEL_ROUTINE`: runs at APC_LEVEL first; may change or cancel the normal routine.
pub type KernelRoutine = fn(&KApc, &mut Option<NormalRoutine>, &mut usize);

/// `KAPC`.
pub struct KApc {
    pub kernel_routine: KernelRoutine,
    pub normal_routine: Option<NormalRoutine>,
    pub normal_context: usize,
    pub mode: ApcMode,
    thread: AtomicU32,
    inserted: AtomicBool,
    args: UnsafeCell<(usize, usize)>,
}

// SAFETY: `args` is written by the inserter that won `inserted` under the
// dispatcher lock and read by the target thread after removing the APC.
unsafe impl Sync for KApc {}

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
            thread: AtomicU32::new(0),
            inserted: AtomicBool::new(false),
            args: UnsafeCell::new((0, 0)),
        }
    }

    /// Whether the APC is queued.
    pub fn is_inserted(&self) -> bool {
        self.inserted.load(Ordering::Acquire)
    }

    fn special(&self) -> bool {
        self.mode == ApcMode::KernelMode && self.normal_routine.is_none()
    }
}

/// `KAPC_STATE` plus the disable counts of `KTHREAD`.
pub struct ApcState {
    pub kernel: VecDeque<&'static KApc>,
    pub user: VecDeque<&'static KApc>,
    /// `KernelApcPending`.
    pub kernel_apc_pending: bool,
    /// `UserApcPending`.
    pub user_apc_pending: bool,
    /// `KernelApcDisable` (critical regions; negative counts in NT, positive here).
    pub kernel_apc_disable: u16,
    /// `SpecialApcDisable` (guarded regions).
    pub special_apc_disable: u16,
    /// `KernelApcInProgress`.
    pub kernel_apc_in_progress: bool,
    /// `ApcQueueable`.
    pub queueable: bool,
}

impl ApcState {
    pub const fn new() -> Self {
        ApcState {
            kernel: VecDeque::new(),
            user: VecDeque::new(),
            kernel_apc_pending: false,
            user_apc_pending: false,
            kernel_apc_disable: 0,
            special_apc_disable: 0,
            kernel_apc_in_progress: false,
            queueable: true,
        }
    }
}

impl Default for ApcState {
    fn default() -> Self {
        Self::new()
    }
}

/// Requests the APC interrupt on the processor running `t`.
fn request_apc_interrupt(t: &KThread) {
    let p = t.next_processor;
    if p == super::current_processor_number() {
        apic::request_software_interrupt(apic::APC_VECTOR);
    } else if let Some(id) = super::apic_id_of(p) {
        apic::send_ipi(id, apic::APC_VECTOR);
    }
}

/// `KeInsertQueueApc`: queues `apc` to thread `tid`; FALSE if it is already
/// queued or the thread takes no APCs (terminating). Kicks the thread:
/// an APC interrupt where it runs, or an aborted wait (see the module note).
pub fn ke_insert_queue_apc(
    apc: &'static KApc,
    tid: u32,
    arg1: usize,
    arg2: usize,
    increment: u8,
) -> bool {
    let (old, st) = sched::lock();
    let r = insert_locked(st, apc, tid, arg1, arg2, increment);
    sched::unlock(old);
    r
}

fn insert_locked(
    st: &mut DispatcherState,
    apc: &'static KApc,
    tid: u32,
    arg1: usize,
    arg2: usize,
    increment: u8,
) -> bool {
    let Some(t) = thread::thread(tid) else {
        return false;
    };
    if !t.apc.queueable
        || t.state == ThreadState::Terminated
        || apc.inserted.swap(true, Ordering::AcqRel)
    {
        return false;
    }
    apc.thread.store(tid, Ordering::Relaxed);
    // SAFETY: this inserter won `inserted`.
    unsafe { *apc.args.get() = (arg1, arg2) };
    match apc.mode {
        ApcMode::KernelMode => {
            if apc.special() {
                let at = t.apc.kernel.iter().take_while(|a| a.special()).count();
                t.apc.kernel.insert(at, apc);
            } else {
                t.apc.kernel.push_back(apc);
            }
            t.apc.kernel_apc_pending = true;
            match t.state {
                ThreadState::Running => request_apc_interrupt(t),
                ThreadState::Waiting
                    if t.wait_irql == PASSIVE_LEVEL
                        && t.apc.special_apc_disable == 0
                        && (apc.special()
                            || (t.apc.kernel_apc_disable == 0
                                && !t.apc.kernel_apc_in_progress)) =>
                {
                    unwait_locked(st, tid, nt::status::STATUS_KERNEL_APC.0, increment);
                }
                _ => {}
            }
        }
        ApcMode::UserMode => {
            t.apc.user.push_back(apc);
            if t.state == ThreadState::Waiting && t.alertable && t.wait_mode_user {
                t.apc.user_apc_pending = true;
                unwait_locked(st, tid, nt::status::STATUS_USER_APC.0, increment);
            }
        }
    }
    true
}

/// Ends `tid`'s wait with `status` and readies it (lock held): its timed
/// wait and wait blocks are dropped, and the wait boost applies.
pub fn unwait_locked(st: &mut DispatcherState, tid: u32, status: i32, increment: u8) {
    let Some(t) = thread::thread(tid) else { return };
    if t.state != ThreadState::Waiting {
        return;
    }
    t.wait_status = status;
    sched::disarm_timeout_locked(st, tid);
    super::wait::abort_wait_locked(st, tid);
    t.priority = ::ke::priority::boosted_priority(t.base_priority, t.priority, increment);
    sched::ready_thread_locked(st, tid, false);
}

/// Removes the next deliverable kernel APC of the current thread (lock held).
fn next_kernel_apc(t: &mut KThread, irql: u8) -> Option<&'static KApc> {
    if t.apc.special_apc_disable != 0 {
        return None;
    }
    let first = *t.apc.kernel.front()?;
    if !first.special()
        && (irql != PASSIVE_LEVEL || t.apc.kernel_apc_disable != 0 || t.apc.kernel_apc_in_progress)
    {
        return None;
    }
    t.apc.kernel.pop_front();
    if t.apc.kernel.is_empty() {
        t.apc.kernel_apc_pending = false;
    }
    Some(first)
}

/// `KiDeliverApc` for kernel mode: runs the current thread's deliverable
/// kernel APCs. `previous_irql` is the level the APC interrupt came from.
pub fn ki_deliver_kernel_apcs(previous_irql: u8) {
    loop {
        let (old, _st) = sched::lock();
        let t = sched::current_thread();
        let apc = next_kernel_apc(t, previous_irql);
        sched::unlock(old);
        let Some(apc) = apc else { return };
        run_apc(apc, true);
    }
}

/// Runs one dequeued APC: its kernel routine at APC_LEVEL, then its normal
/// routine (kernel normal APCs at PASSIVE_LEVEL with KernelApcInProgress).
fn run_apc(apc: &'static KApc, kernel: bool) {
    // SAFETY: the APC was removed from the queue by this thread.
    let (mut a1, mut a2) = unsafe { *apc.args.get() };
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
            t.apc.kernel_apc_in_progress = true;
            super::irql::set_irql(PASSIVE_LEVEL);
        }
        n(ctx, core::mem::take(&mut a1), core::mem::take(&mut a2));
        if kernel {
            super::irql::set_irql(saved);
            sched::current_thread().apc.kernel_apc_in_progress = false;
        }
    }
}

/// Delivers the current thread's user APCs (ntrs's stand-in for the return
/// to user mode after a wait ended with STATUS_USER_APC: `KiDeliverApc(UserMode)`).
pub fn ki_deliver_user_apcs() -> usize {
    let mut n = 0;
    loop {
        let (old, _st) = sched::lock();
        let t = sched::current_thread();
        let apc = t.apc.user.pop_front();
        if t.apc.user.is_empty() {
            t.apc.user_apc_pending = false;
        }
        sched::unlock(old);
        let Some(apc) = apc else { return n };
        run_apc(apc, false);
        n += 1;
    }
}

/// `KeEnterCriticalRegion`: disables normal kernel APCs.
pub fn ke_enter_critical_region() {
    let t = sched::current_thread();
    t.apc.kernel_apc_disable += 1;
}

/// `KeLeaveCriticalRegion`: re-enables them and delivers any that are pending.
pub fn ke_leave_critical_region() {
    let t = sched::current_thread();
    t.apc.kernel_apc_disable = t.apc.kernel_apc_disable.saturating_sub(1);
    if t.apc.kernel_apc_disable == 0 && t.apc.kernel_apc_pending {
        apic::request_software_interrupt(apic::APC_VECTOR);
    }
}

/// `KeEnterGuardedRegion`: disables all kernel APCs.
pub fn ke_enter_guarded_region() {
    sched::current_thread().apc.special_apc_disable += 1;
}

/// `KeLeaveGuardedRegion`.
pub fn ke_leave_guarded_region() {
    let t = sched::current_thread();
    t.apc.special_apc_disable = t.apc.special_apc_disable.saturating_sub(1);
    if t.apc.special_apc_disable == 0 && t.apc.kernel_apc_pending {
        apic::request_software_interrupt(apic::APC_VECTOR);
    }
}

/// `KeAlertThread`: sets the thread's alert for `mode`; an alertable wait in
/// that mode (or a user-mode alert of a kernel-mode alertable wait) ends
/// with STATUS_ALERTED. Returns the previous alert state.
pub fn ke_alert_thread(tid: u32, mode: ApcMode) -> bool {
    let (old, st) = sched::lock();
    let Some(t) = thread::thread(tid) else {
        sched::unlock(old);
        return false;
    };
    let prev = t.alerted[mode as usize];
    if !prev {
        if t.state == ThreadState::Waiting
            && t.alertable
            && (mode == ApcMode::KernelMode || t.wait_mode_user)
        {
            unwait_locked(st, tid, nt::status::STATUS_ALERTED.0, 0);
        } else {
            t.alerted[mode as usize] = true;
        }
    }
    sched::unlock(old);
    prev
}

/// `KeTestAlertThread`: consumes the current thread's alert for `mode`.
pub fn ke_test_alert_thread(mode: ApcMode) -> bool {
    let (old, _st) = sched::lock();
    let t = sched::current_thread();
    let a = core::mem::replace(&mut t.alerted[mode as usize], false);
    if mode == ApcMode::UserMode && !t.apc.user.is_empty() {
        t.apc.user_apc_pending = true;
    }
    sched::unlock(old);
    a
}

/// The status an alertable wait returns at once, before blocking (lock held):
/// a pending alert (STATUS_ALERTED), or queued user APCs for a user-mode wait
/// (STATUS_USER_APC).
pub fn alertable_wait_status(t: &mut KThread, user_mode: bool) -> Option<i32> {
    if t.alerted[0] || (user_mode && t.alerted[1]) {
        t.alerted[0] = false;
        if user_mode {
            t.alerted[1] = false;
        }
        return Some(nt::status::STATUS_ALERTED.0);
    }
    if user_mode && !t.apc.user.is_empty() {
        t.apc.user_apc_pending = true;
        return Some(nt::status::STATUS_USER_APC.0);
    }
    None
}
