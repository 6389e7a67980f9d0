//! The clock (*Windows Internals*, Part 2, ch. 8, "Timer processing"): the
//! local APIC timer interrupts every processor each tick at CLOCK_LEVEL;
//! processor 0 owns time keeping, every processor charges its running
//! thread's quantum. Work beyond counting is deferred to the dispatch interrupt.

use super::current_processor_number;
use super::sched::{self, PROCESSOR_SCHED};
use core::sync::atomic::{AtomicU64, Ordering};

/// `KeMaximumIncrement`: 15.625 ms in 100 ns units (64 Hz, Windows' default).
pub const TIME_INCREMENT: u64 = 156_250;

static TICK_COUNT: AtomicU64 = AtomicU64::new(0);
static INTERRUPT_TIME: AtomicU64 = AtomicU64::new(0);
static BOOT_SYSTEM_TIME: AtomicU64 = AtomicU64::new(0);

/// Records the RTC time at boot (`KeBootTime`).
pub fn initialize(system_time: u64) {
    BOOT_SYSTEM_TIME.store(system_time, Ordering::Relaxed);
}

/// `KeQueryInterruptTime`: 100 ns units since boot, advanced each tick.
pub fn ke_query_interrupt_time() -> u64 {
    INTERRUPT_TIME.load(Ordering::Relaxed)
}

/// `KeQueryTickCount`.
pub fn ke_query_tick_count() -> u64 {
    TICK_COUNT.load(Ordering::Relaxed)
}

/// `KeQuerySystemTime`: 100 ns units since 1601-01-01 UTC.
pub fn ke_query_system_time() -> u64 {
    BOOT_SYSTEM_TIME.load(Ordering::Relaxed) + ke_query_interrupt_time()
}

/// `KeQueryTimeIncrement`.
pub fn ke_query_time_increment() -> u32 {
    TIME_INCREMENT as u32
}

/// `KeUpdateSystemTime` / `KeUpdateRunTime`, at CLOCK_LEVEL with interrupts
/// off: processor 0 advances time and notices due timers; every processor
/// charges its running thread a tick of time and of quantum (the counter
/// the scheduler hands over at each decision) and requests the dispatch
/// interrupt at quantum end or when DPCs wait for a drain.
pub fn clock_interrupt() {
    let me = current_processor_number();
    let mut dispatch = false;
    if me == 0 {
        let ticks = TICK_COUNT.fetch_add(1, Ordering::Relaxed) + 1;
        let now = INTERRUPT_TIME.fetch_add(TIME_INCREMENT, Ordering::Relaxed) + TIME_INCREMENT;
        super::user::update_shared_data(now, BOOT_SYSTEM_TIME.load(Ordering::Relaxed) + now, ticks);
        if super::timer::due(now) {
            super::timer::LAST_EXPIRY_TSC.store(crate::hal::rdtsc(), Ordering::Relaxed);
            dispatch = true;
        }
    }
    let ps = &PROCESSOR_SCHED[me as usize];
    ps.ticks.fetch_add(1, Ordering::Relaxed);
    if sched::SCHEDULER_RUNNING.load(Ordering::Relaxed) {
        if ps.idle.load(Ordering::Relaxed) {
            ps.idle_ticks.fetch_add(1, Ordering::Relaxed);
        } else {
            if let Some(t) = super::thread::try_current_thread() {
                t.charge_tick();
            }
            if ps.charge_quantum() {
                dispatch = true;
            }
        }
    }
    if super::dpc::clock_tick() {
        dispatch = true;
    }
    if dispatch {
        sched::request_dispatch(me);
    }
}

/// `KeQuerySystemTimePrecise`, exported for drivers (`KeQuerySystemTime` is
/// a macro over KUSER_SHARED_DATA on x64, not an export). ntrs's system
/// time advances by the tick, so "precise" is tick-precise here.
///
/// # Safety
/// `time` points to a writable `LARGE_INTEGER`.
#[no_mangle]
pub unsafe extern "system" fn KeQuerySystemTimePrecise(time: *mut i64) {
    // SAFETY: the caller passes a writable LARGE_INTEGER.
    unsafe { time.write_unaligned(ke_query_system_time() as i64) }
}

/// `KeQueryInterruptTimePrecise`, exported for drivers: the interrupt
/// time; `qpc` (optional) receives the TSC, ntrs's performance counter.
///
/// # Safety
/// `qpc` is null or points to a writable `ULONG64`.
#[no_mangle]
pub unsafe extern "system" fn KeQueryInterruptTimePrecise(qpc: *mut u64) -> u64 {
    if !qpc.is_null() {
        // SAFETY: the caller passes a writable ULONG64 or null.
        unsafe { qpc.write_unaligned(crate::hal::rdtsc()) }
    }
    ke_query_interrupt_time()
}

/// `KeQueryTimeIncrement`, exported for drivers.
#[no_mangle]
pub extern "system" fn KeQueryTimeIncrement() -> u32 {
    ke_query_time_increment()
}
