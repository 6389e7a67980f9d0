//! The clock (*Windows Internals*, Part 2, ch. 8, "Timer processing"): the
//! local APIC timer interrupts every processor each tick at CLOCK_LEVEL;
//! processor 0 owns time keeping, every processor charges its running
//! thread's quantum. Work beyond counting is deferred to the dispatch interrupt.

use super::current_processor_number;
use super::sched::{self, PROCESSOR_SCHED};
use crate::hal::MAX_PROCESSORS;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

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
pub fn clock_interrupt(interrupted_irql: u8) {
    let me = current_processor_number();
    let mut dispatch = false;
    watchdogs(me, interrupted_irql);
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

/// How many ticks (about 30 s) a processor may stay at DISPATCH_LEVEL or
/// above before the DPC watchdog stops the system. NT's cumulative DPC
/// watchdog period is 120 s; ntrs's is shorter so that a hang in a boot
/// test stops within the test harness's time limit.
pub const DPC_WATCHDOG_TICKS: u32 = 30 * 64;
/// How many of its own ticks (about 30 s) a processor waits for the
/// processor it watches to take a clock interrupt before the clock
/// watchdog stops the system. NT allows a few ticks; under emulation a
/// virtual processor can be descheduled for far longer than that.
pub const CLOCK_WATCHDOG_TICKS: u32 = 30 * 64;

/// Per processor: consecutive clock ticks that found it, outside its idle
/// loop, at DISPATCH_LEVEL or above (`DpcWatchdogCount`).
static DPC_WATCHDOG: [AtomicU32; MAX_PROCESSORS] = [const { AtomicU32::new(0) }; MAX_PROCESSORS];
/// Per processor: the tick count of the next processor (the one it
/// watches) it last saw, and for how many of its own ticks it stayed.
static CLOCK_WATCH: [(AtomicU64, AtomicU32); MAX_PROCESSORS] =
    [const { (AtomicU64::new(0), AtomicU32::new(0)) }; MAX_PROCESSORS];
/// Per processor: the instruction and stack pointers the last clock
/// interrupt interrupted (what the DPC watchdog reports).
static INTERRUPTED: [(AtomicU64, AtomicU64); MAX_PROCESSORS] =
    [const { (AtomicU64::new(0), AtomicU64::new(0)) }; MAX_PROCESSORS];
/// Set while the watchdogs must not fire: the kernel debugger holds a
/// processor at a raised IRQL waiting for input, or the system has shut down
/// and its processors halt.
static WATCHDOGS_OFF: AtomicBool = AtomicBool::new(false);

/// The trap dispatcher's note of what the clock interrupt interrupted on
/// this processor.
pub fn note_interrupted(rip: u64, rsp: u64) {
    let me = current_processor_number() as usize % MAX_PROCESSORS;
    INTERRUPTED[me].0.store(rip, Ordering::Relaxed);
    INTERRUPTED[me].1.store(rsp, Ordering::Relaxed);
}

/// Turns the DPC and clock watchdogs off (`on` false) or on again: the
/// kernel debugger while it waits for input at a raised IRQL, shutdown
/// before its processors halt.
pub fn set_watchdogs_enabled(on: bool) {
    WATCHDOGS_OFF.store(!on, Ordering::SeqCst);
    if on {
        for p in 0..MAX_PROCESSORS {
            DPC_WATCHDOG[p].store(0, Ordering::Relaxed);
            CLOCK_WATCH[p].1.store(0, Ordering::Relaxed);
        }
    }
}

/// The two watchdogs, at each clock tick of processor `me` (CLOCK_LEVEL):
/// - the DPC watchdog (`KiUpdateTime`'s DPC watchdog check): a processor
///   found at DISPATCH_LEVEL or above (not in its idle loop) for
///   [`DPC_WATCHDOG_TICKS`] consecutive ticks stops the system with
///   DPC_WATCHDOG_VIOLATION (1, the period in ticks, 0, 0): code that
///   never lowers the IRQL (a spin on a lock that is never released, a DPC
///   that never returns) starves the processor's threads;
/// - the clock watchdog: each processor watches the next one's tick count;
///   a processor that takes no clock interrupt for [`CLOCK_WATCHDOG_TICKS`]
///   (it spins with interrupts disabled) stops the system with
///   CLOCK_WATCHDOG_TIMEOUT (the period, 0, 0, its number), as NT does for
///   a processor that stops answering.
///
/// The stop screen then shows where every processor was (the freeze NMI),
/// so a hang names its place instead of timing out silently.
fn watchdogs(me: u32, interrupted_irql: u8) {
    if WATCHDOGS_OFF.load(Ordering::Relaxed) || !sched::SCHEDULER_RUNNING.load(Ordering::Relaxed) {
        return;
    }
    let i = me as usize % MAX_PROCESSORS;
    let ps = &PROCESSOR_SCHED[i];
    if interrupted_irql >= super::DISPATCH_LEVEL && !ps.idle.load(Ordering::Relaxed) {
        let n = DPC_WATCHDOG[i].fetch_add(1, Ordering::Relaxed) + 1;
        if n >= DPC_WATCHDOG_TICKS {
            crate::dbg_println!(
                "DPC watchdog: processor {me} at irql {interrupted_irql} or above for {n} ticks, interrupted at rip {:016x} rsp {:016x}",
                INTERRUPTED[i].0.load(Ordering::Relaxed),
                INTERRUPTED[i].1.load(Ordering::Relaxed)
            );
            super::mp::current_stack_code_words(
                INTERRUPTED[i].1.load(Ordering::Relaxed),
                32,
                |a, w| {
                    crate::dbg_println!("    {a:016x}  {w:016x}");
                },
            );
            super::bugcheck::ke_bug_check_ex(
                nt::bugcheck::DPC_WATCHDOG_VIOLATION,
                1,
                DPC_WATCHDOG_TICKS as u64,
                0,
                0,
            );
        }
    } else {
        DPC_WATCHDOG[i].store(0, Ordering::Relaxed);
    }
    let count = super::processor_count();
    if count < 2 {
        return;
    }
    let next = (me + 1) % count;
    let target = &PROCESSOR_SCHED[next as usize % MAX_PROCESSORS];
    if !target.active.load(Ordering::Relaxed) {
        return;
    }
    let seen = target.ticks.load(Ordering::Relaxed);
    let (last, stale) = &CLOCK_WATCH[i];
    if last.swap(seen, Ordering::Relaxed) != seen {
        stale.store(0, Ordering::Relaxed);
    } else if stale.fetch_add(1, Ordering::Relaxed) + 1 >= CLOCK_WATCHDOG_TICKS {
        crate::dbg_println!(
            "clock watchdog: processor {next} took no clock interrupt for {CLOCK_WATCHDOG_TICKS} ticks of processor {me}"
        );
        super::bugcheck::ke_bug_check_ex(
            nt::bugcheck::CLOCK_WATCHDOG_TIMEOUT,
            CLOCK_WATCHDOG_TICKS as u64,
            0,
            0,
            next as u64,
        );
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
