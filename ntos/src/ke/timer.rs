//! Timer objects (`KTIMER`) and their expiry (*Windows Internals*, Part 2,
//! ch. 8, "Timer processing"): processor 0's clock tick notices a due timer
//! and requests the dispatch interrupt, which expires timers at
//! DISPATCH_LEVEL, queues their DPCs and rearms periodic ones.

use super::dpc::{self, KDpc};
use super::irql::{SpinLocked, SYNCH_LEVEL};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// `KTIMER` (notification timer with an optional DPC).
pub struct KTimer {
    /// Absolute interrupt time it is due at.
    due: AtomicU64,
    /// Period in 100 ns units (0: one-shot).
    period: AtomicU64,
    dpc: core::cell::Cell<Option<&'static KDpc>>,
    signaled: AtomicBool,
    inserted: AtomicBool,
    pub fired: AtomicU64,
    /// The timer as a waitable dispatcher object.
    object: super::wait::TimerObject,
}

// SAFETY: `dpc` is only written by `ke_set_timer` before insertion under the table lock.
unsafe impl Sync for KTimer {}

impl KTimer {
    /// `KeInitializeTimer`.
    pub const fn new() -> Self {
        KTimer {
            due: AtomicU64::new(0),
            period: AtomicU64::new(0),
            dpc: core::cell::Cell::new(None),
            signaled: AtomicBool::new(false),
            inserted: AtomicBool::new(false),
            fired: AtomicU64::new(0),
            object: super::wait::TimerObject::new(),
        }
    }

    /// `KeInitializeTimerEx(SynchronizationTimer)`.
    pub const fn new_synchronization() -> Self {
        let mut t = Self::new();
        t.object = super::wait::TimerObject::synchronization();
        t
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
    fn object_id(&self, st: &mut super::sched::DispatcherState) -> ::ke::objects::ObjectId {
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

/// The timer table (`KiTimerTableListHead`): a list kept sorted by due time.
static TIMERS: SpinLocked<Vec<&'static KTimer>, SYNCH_LEVEL> = SpinLocked::new(Vec::new());
static NEXT_DUE: AtomicU64 = AtomicU64::new(u64::MAX);

fn refresh_next(t: &[&'static KTimer]) {
    NEXT_DUE.store(
        t.first()
            .map_or(u64::MAX, |t| t.due.load(Ordering::Relaxed)),
        Ordering::Relaxed,
    );
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
    let abs = if due < 0 {
        now + due.unsigned_abs()
    } else {
        due as u64
    };
    if let Some(id) = timer.object.existing() {
        super::wait::with_db(|st| {
            let _ = st.db.reset_timer(id);
        });
    }
    TIMERS.with(|list| {
        let was = if let Some(i) = list.iter().position(|t| core::ptr::eq(*t, timer)) {
            list.remove(i);
            true
        } else {
            false
        };
        timer.due.store(abs, Ordering::Relaxed);
        timer
            .period
            .store(period_ms as u64 * 10_000, Ordering::Relaxed);
        timer.dpc.set(dpc);
        timer.signaled.store(false, Ordering::Release);
        timer.inserted.store(true, Ordering::Relaxed);
        let at = list.partition_point(|t| t.due.load(Ordering::Relaxed) <= abs);
        list.insert(at, timer);
        refresh_next(list);
        was
    })
}

/// `KeCancelTimer`: true if the timer was set.
pub fn ke_cancel_timer(timer: &'static KTimer) -> bool {
    TIMERS.with(|list| {
        let r = if let Some(i) = list.iter().position(|t| core::ptr::eq(*t, timer)) {
            list.remove(i);
            true
        } else {
            false
        };
        timer.inserted.store(false, Ordering::Relaxed);
        refresh_next(list);
        r
    })
}

/// Whether a timer is due at `now` (the clock interrupt asks).
pub fn due(now: u64) -> bool {
    NEXT_DUE.load(Ordering::Relaxed) <= now
}

/// TSC of the clock interrupt that last found a timer due (latency benchmarks).
pub static LAST_EXPIRY_TSC: AtomicU64 = AtomicU64::new(0);

/// `KiExpireTimerTable`: signals due timers, queues their DPCs, rearms periodic ones.
pub fn expire(now: u64) {
    if !due(now) {
        return;
    }
    let mut fired: Vec<&'static KTimer> = Vec::new();
    TIMERS.with(|list| {
        while list
            .first()
            .is_some_and(|t| t.due.load(Ordering::Relaxed) <= now)
        {
            let t = list.remove(0);
            let period = t.period.load(Ordering::Relaxed);
            if period != 0 {
                let next = t.due.load(Ordering::Relaxed) + period;
                t.due.store(next.max(now + 1), Ordering::Relaxed);
                let at = list.partition_point(|x| x.due.load(Ordering::Relaxed) <= next);
                list.insert(at, t);
            } else {
                t.inserted.store(false, Ordering::Relaxed);
            }
            fired.push(t);
        }
        refresh_next(list);
    });
    for t in fired {
        t.signaled.store(true, Ordering::Release);
        if let Some(id) = t.object.existing() {
            super::wait::signal_timer(id);
        }
        t.fired.fetch_add(1, Ordering::Relaxed);
        if let Some(d) = t.dpc.get() {
            dpc::ke_insert_queue_dpc(d, now as usize, 0);
        }
    }
}

/// `!timer`: the timer table.
pub fn kd_timer() {
    let now = super::clock::ke_query_interrupt_time();
    crate::dbg_println!("Dump system timers (interrupt time {now:#x})");
    crate::dbg_println!("    Timer            Interrupt Low/High   Period  DPC");
    TIMERS.with(|list| {
        for t in list.iter() {
            crate::dbg_println!(
                "    {:016x} {:016x}  {:>6} {}",
                *t as *const KTimer as u64,
                t.due.load(Ordering::Relaxed),
                t.period.load(Ordering::Relaxed) / 10_000,
                t.dpc
                    .get()
                    .map_or(alloc::string::String::from("-"), |d| alloc::format!(
                        "{:016x}",
                        d as *const KDpc as u64
                    ))
            );
        }
        crate::dbg_println!("Total timers: {}", list.len());
    });
}
