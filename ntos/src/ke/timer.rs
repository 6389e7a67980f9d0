//! Timer objects (`KTIMER`) and their expiry (*Windows Internals*, Part 2,
//! ch. 8, "Timer processing", "Timer expiration"). The timer table is the
//! host-tested `ke::timer::TimerTable` (256 list heads hashed by due tick,
//! each sorted by due time) in the dispatcher state: `KTIMER`s and every
//! thread's wait timeout (NT's `KTHREAD.Timer`, under the thread's id)
//! hang in it. Processor 0's clock tick notices that the earliest due time
//! has passed and requests the dispatch interrupt, which expires timers at
//! DISPATCH_LEVEL: waits time out, timer objects are signaled (satisfying
//! their waiters), their DPCs are queued, and periodic timers re-enter the
//! table one period later.

use super::dpc::{self, DpcRef, KDpc};
use super::sched::{self, DispatcherState};
use super::thread::MAX_THREADS;
use ::ke::timer::{DueTime, TimerId};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use nt::status::{STATUS_SUCCESS, STATUS_TIMEOUT};

/// `KTIMER` slots the table has room for at boot (it grows beyond).
pub const INITIAL_KTIMERS: usize = 256;

/// `KTIMER` (notification or synchronization timer with an optional DPC).
/// Its due time, period and DPC live in the timer table while it is set.
pub struct KTimer {
    /// Its id in the timer table (0: none yet; ids from `MAX_THREADS` on),
    /// given on first set under the dispatcher lock.
    slot: AtomicU32,
    /// `Header.SignalState` as a flag (`KeReadStateTimer`).
    signaled: AtomicBool,
    /// Expirations so far.
    pub fired: AtomicU64,
    /// The timer as a waitable dispatcher object.
    object: super::wait::TimerObject,
}

impl KTimer {
    /// `KeInitializeTimer`.
    pub const fn new() -> Self {
        KTimer {
            slot: AtomicU32::new(0),
            signaled: AtomicBool::new(false),
            fired: AtomicU64::new(0),
            object: super::wait::TimerObject::new(),
        }
    }

    /// `KeInitializeTimerEx(SynchronizationTimer)`.
    pub const fn new_synchronization() -> Self {
        KTimer {
            slot: AtomicU32::new(0),
            signaled: AtomicBool::new(false),
            fired: AtomicU64::new(0),
            object: super::wait::TimerObject::synchronization(),
        }
    }

    /// Releases the timer's dispatcher object (after `ke_cancel_timer`).
    pub fn destroy(&self) {
        self.object.destroy();
    }

    /// `KeReadStateTimer`.
    pub fn signaled(&self) -> bool {
        self.signaled.load(Ordering::Acquire)
    }
}

impl super::wait::Waitable for KTimer {
    fn object_id(&self, st: &mut DispatcherState) -> ::ke::objects::ObjectId {
        let fresh = self.object.existing().is_none();
        let id = self.object.object_id(st);
        if fresh && self.signaled() {
            let _ = st.db.signal_timer(id, &mut st.unwaits);
        }
        id
    }
}

impl Default for KTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for KTimer {
    /// A timer that goes away (a freed timer object) leaves the table and
    /// gives its slot back. Never dropped with the dispatcher lock held.
    fn drop(&mut self) {
        let slot = *self.slot.get_mut();
        if slot != 0 {
            let mut g = sched::lock();
            let st = &mut *g;
            let _ = st.timers.cancel(TimerId(slot));
            if let Some(s) = st.ktimers.get_mut(slot as usize - MAX_THREADS) {
                *s = None;
            }
            st.free_timer_slots.push(slot);
        }
    }
}

/// A `KTIMER` registered in the table's slot map.
#[derive(Clone, Copy)]
pub struct TimerPtr(NonNull<KTimer>);

// SAFETY: KTimer's fields are atomics or the dispatcher object id; the
// pointer is only followed under the dispatcher lock while registered.
unsafe impl Send for TimerPtr {}

impl TimerPtr {
    fn get(&self) -> &KTimer {
        // SAFETY: a registered timer is allocated: it unregisters itself in
        // `Drop` (under the dispatcher lock, which every user of this
        // pointer holds) before its memory goes away; statics never go away.
        unsafe { self.0.as_ref() }
    }
}

/// The timer's id in the table, registering it on first use (lock held).
fn slot_of(st: &mut DispatcherState, timer: &'static KTimer) -> u32 {
    let s = timer.slot.load(Ordering::Relaxed);
    if s != 0 {
        return s;
    }
    let slot = st.free_timer_slots.pop().unwrap_or_else(|| {
        let s = (MAX_THREADS + st.ktimers.len()) as u32;
        st.ktimers.push(None);
        st.timers.grow(s + 1);
        s
    });
    if let Some(x) = st.ktimers.get_mut(slot as usize - MAX_THREADS) {
        *x = Some(TimerPtr(NonNull::from(timer)));
    }
    timer.slot.store(slot, Ordering::Relaxed);
    slot
}

/// Earliest due time in the table (the clock checks it every tick).
static NEXT_DUE: AtomicU64 = AtomicU64::new(u64::MAX);

/// A timer was set for `due`: the clock must look no later than then.
pub(super) fn note_due(due: u64) {
    NEXT_DUE.fetch_min(due, Ordering::Relaxed);
}

/// `KeSetTimerEx`: `due` is negative for relative 100 ns units, positive for
/// absolute interrupt time (ntrs has no absolute system-time timers yet);
/// `period_ms` rearms it. Returns whether it was already set.
pub fn ke_set_timer_ex(
    timer: &'static KTimer,
    due: i64,
    period_ms: u32,
    dpc: Option<&'static KDpc>,
) -> bool {
    let now = super::clock::ke_query_interrupt_time();
    let due = if due < 0 {
        DueTime::Relative(due.unsigned_abs())
    } else {
        DueTime::Absolute(due as u64)
    };
    let mut g = sched::lock();
    let st = &mut *g;
    if let Some(id) = timer.object.existing() {
        let _ = st.db.reset_timer(id);
    }
    timer.signaled.store(false, Ordering::Release);
    let slot = slot_of(st, timer);
    let was = st
        .timers
        .set(TimerId(slot), now, due, period_ms, dpc.map(DpcRef))
        .unwrap_or(false);
    note_due(match due {
        DueTime::Relative(r) => now.saturating_add(r),
        DueTime::Absolute(a) => a,
    });
    was
}

/// Gives the timer's slot back when the table no longer holds it (after a
/// cancel or a one-shot expiry; lock held), so that a timer in memory a
/// driver frees without a destructor leaves nothing registered behind.
fn release_slot(st: &mut DispatcherState, timer: &KTimer) {
    let slot = timer.slot.load(Ordering::Relaxed);
    if slot == 0 || st.timers.is_inserted(TimerId(slot)) {
        return;
    }
    if let Some(s) = st.ktimers.get_mut(slot as usize - MAX_THREADS) {
        *s = None;
    }
    st.free_timer_slots.push(slot);
    timer.slot.store(0, Ordering::Relaxed);
}

/// `KeCancelTimer`: true if the timer was set.
pub fn ke_cancel_timer(timer: &'static KTimer) -> bool {
    if timer.slot.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let mut g = sched::lock();
    let st = &mut *g;
    // Read again under the lock: an expiry may have given the slot back.
    let slot = timer.slot.load(Ordering::Relaxed);
    if slot == 0 {
        return false;
    }
    let was = st.timers.cancel(TimerId(slot)).unwrap_or(false);
    release_slot(st, timer);
    was
}

/// Whether a timer is due at `now` (the clock interrupt asks).
pub fn due(now: u64) -> bool {
    NEXT_DUE.load(Ordering::Relaxed) <= now
}

/// TSC of the clock interrupt that last found a timer due (latency benchmarks).
pub static LAST_EXPIRY_TSC: AtomicU64 = AtomicU64::new(0);

/// `KiTimerExpiration` (processor 0, DISPATCH_LEVEL): expires every timer
/// due at `now` — wait timeouts end their waits (STATUS_TIMEOUT, a delay
/// STATUS_SUCCESS), timer objects become signaled — and then queues the
/// expired timers' DPCs.
pub fn expire(now: u64) {
    if !due(now) {
        return;
    }
    let mut dpcs: [Option<&'static KDpc>; 16] = [None; 16];
    let mut more = true;
    while more {
        let mut n = 0;
        {
            let mut g = sched::lock();
            let st = &mut *g;
            if st.expired.is_empty() {
                st.timers.expire(now, &mut st.expired);
                // Handled from the end: earliest due first.
                st.expired.reverse();
            }
            while n < dpcs.len() {
                let Some(x) = st.expired.pop() else { break };
                if (x.timer.0 as usize) < MAX_THREADS {
                    let tid = x.timer.0;
                    let delay = st.thread_table.get(tid).is_some_and(|e| {
                        e.wait.reason == ::ke::objects::WaitReason::DelayExecution
                    });
                    let status = if delay {
                        STATUS_SUCCESS
                    } else {
                        STATUS_TIMEOUT
                    };
                    sched::unwait_thread(st, tid, status, 0);
                    continue;
                }
                let Some(t) = st
                    .ktimers
                    .get(x.timer.0 as usize - MAX_THREADS)
                    .copied()
                    .flatten()
                else {
                    continue;
                };
                let t = t.get();
                t.signaled.store(true, Ordering::Release);
                t.fired.fetch_add(1, Ordering::Relaxed);
                if let Some(id) = t.object.existing() {
                    let _ = st.db.signal_timer(id, &mut st.unwaits);
                }
                if let Some(d) = x.dpc {
                    dpcs[n] = Some(d.0);
                    n += 1;
                }
                if x.period == 0 {
                    release_slot(st, t);
                }
            }
            super::wait::process_unwaits(st);
            more = !st.expired.is_empty();
            if !more {
                NEXT_DUE.store(st.timers.next_due().unwrap_or(u64::MAX), Ordering::Relaxed);
            }
        }
        for d in dpcs.iter_mut().take(n) {
            if let Some(d) = d.take() {
                dpc::ke_insert_queue_dpc(d, now as usize, 0);
            }
        }
    }
}

/// `!timer`: the timer table, in due order.
pub fn kd_timer(_args: &str) {
    let now = super::clock::ke_query_interrupt_time();
    let Some(g) = sched::try_lock(1 << 20) else {
        crate::dbg_println!("The dispatcher lock is held (by a stopped processor): no timer dump");
        return;
    };
    let list = g.timers.dump();
    let lines: alloc::vec::Vec<(u64, u64, u64, u64, usize, &'static str)> = list
        .iter()
        .map(|i| {
            let (obj, kind) = if (i.timer.0 as usize) < MAX_THREADS {
                (
                    g.thread_table
                        .get(i.timer.0)
                        .map_or(0, |e| e.thread.address()),
                    "wait timeout of thread",
                )
            } else {
                (
                    g.ktimers
                        .get(i.timer.0 as usize - MAX_THREADS)
                        .copied()
                        .flatten()
                        .map_or(0, |t| t.0.as_ptr() as u64),
                    "",
                )
            };
            (
                obj,
                i.due,
                i.period / 10_000,
                i.dpc.map_or(0, |d| d.0 as *const KDpc as u64),
                i.hand,
                kind,
            )
        })
        .collect();
    drop(g);
    crate::dbg_println!("Dump system timers (interrupt time {now:#x})");
    crate::dbg_println!("Hand Timer            Interrupt Due        Period DPC");
    for (obj, due, period, dpc, hand, kind) in &lines {
        let dpc = if *dpc == 0 {
            alloc::string::String::from("-")
        } else {
            alloc::format!("{dpc:016x}")
        };
        crate::dbg_println!("{hand:>4} {obj:016x} {due:016x} {period:>6} {dpc} {kind}");
    }
    crate::dbg_println!("Total timers: {}", lines.len());
}
