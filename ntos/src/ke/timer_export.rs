//! `KTIMER` in memory drivers own (`KeInitializeTimer`,
//! `KeInitializeTimerEx`, `KeSetTimer`, `KeSetTimerEx`, `KeCancelTimer`,
//! `KeReadStateTimer`; *Windows Internals*, Part 2, ch. 8, "Timer
//! processing"). A driver's 0x40-byte `KTIMER` (opaque to it, as on
//! Windows) holds a `DISPATCHER_HEADER` with the timer's type
//! (`TimerNotificationObject` / `TimerSynchronizationObject`) followed by
//! the kernel's [`KTimer`], which the timer table (`ke/timer.rs`) links
//! while the timer is set. On expiry the timer becomes signaled and the
//! driver's `KDPC` (set up by `KeInitializeDpc`) is queued; a periodic
//! timer re-arms one period later.
//!
//! The driver's contract is Windows': the `KTIMER` (and its `KDPC`) stay
//! valid while the timer is set, and a timer is cancelled (or has expired,
//! if one-shot) before its memory goes. The kernel timer gives its table
//! slot back on cancel and on one-shot expiry, so freed driver memory
//! leaves nothing registered.
//!
//! Where ntrs differs: waiting on a `KTIMER` (`KeWaitForSingleObject`) is
//! STATUS_NOT_IMPLEMENTED (`ke/dispobj.rs`): a driver is told of expiry by
//! its DPC or polls `KeReadStateTimer`. The header's `SignalState` is not
//! kept; `KeReadStateTimer` reads the kernel timer's state.

use super::clock::ke_query_system_time;
use super::timer::{ke_cancel_timer, ke_set_timer_ex, KTimer};
use wdk::{
    DISPATCHER_HEADER, KDPC, KTIMER, LIST_ENTRY, SYNCHRONIZATION_TIMER, TIMER_NOTIFICATION_OBJECT,
    TIMER_SYNCHRONIZATION_OBJECT,
};

/// What a driver's `KTIMER` holds in ntrs.
#[repr(C)]
struct DriverTimer {
    header: DISPATCHER_HEADER,
    timer: KTimer,
}

const _: () = assert!(
    core::mem::size_of::<DriverTimer>() <= core::mem::size_of::<KTIMER>()
        && core::mem::align_of::<DriverTimer>() <= core::mem::align_of::<KTIMER>()
);

/// The kernel timer inside a driver's `KTIMER`.
///
/// # Safety
/// `t` was initialized by [`ke_initialize_driver_timer`] and stays valid
/// while the timer is set (the driver's contract), which is what the
/// 'static lifetime stands for.
unsafe fn kernel_timer(t: *mut KTIMER) -> &'static KTimer {
    // SAFETY: per the contract, a DriverTimer lives at `t`.
    unsafe { &(*t.cast::<DriverTimer>()).timer }
}

/// `KeInitializeTimerEx`: a notification or synchronization timer, not set,
/// not signaled.
///
/// # Safety
/// `t` points to a writable, 8-byte-aligned `KTIMER` that is not set.
pub unsafe fn ke_initialize_driver_timer(t: *mut KTIMER, timer_type: u32) {
    let synchronization = timer_type == SYNCHRONIZATION_TIMER;
    let d = t.cast::<DriverTimer>();
    // SAFETY: per the contract the memory is ours to (re)initialize; a
    // DriverTimer fits a KTIMER (checked above). `write` drops nothing.
    unsafe {
        d.write(DriverTimer {
            header: DISPATCHER_HEADER {
                Type: if synchronization {
                    TIMER_SYNCHRONIZATION_OBJECT
                } else {
                    TIMER_NOTIFICATION_OBJECT
                },
                Signalling: 0,
                Size: (core::mem::size_of::<KTIMER>() / 4) as u8,
                Reserved1: 0,
                SignalState: 0,
                WaitListHead: LIST_ENTRY::zeroed(),
            },
            timer: if synchronization {
                KTimer::new_synchronization()
            } else {
                KTimer::new()
            },
        });
        let head = core::ptr::addr_of_mut!((*d).header.WaitListHead);
        (*head).Flink = head;
        (*head).Blink = head;
    }
}

/// A `KeSetTimer(Ex)` due time as `ke_set_timer_ex` takes it: negative is
/// relative (100 ns units) as given; positive is an absolute system time,
/// turned into the time left from now (ntrs's timer table keeps interrupt
/// time), zero or past meaning "expire at the next tick".
fn due_from(due: i64) -> i64 {
    if due <= 0 {
        due
    } else {
        let left = (due as u64).saturating_sub(ke_query_system_time());
        -(left.min(i64::MAX as u64) as i64)
    }
}

/// `KeInitializeTimer` export: a notification timer.
///
/// # Safety
/// As [`ke_initialize_driver_timer`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeInitializeTimer(Timer: *mut KTIMER) {
    // SAFETY: forwarded caller guarantee.
    unsafe { KeInitializeTimerEx(Timer, wdk::NOTIFICATION_TIMER) }
}

/// `KeInitializeTimerEx` export.
///
/// # Safety
/// As [`ke_initialize_driver_timer`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeInitializeTimerEx(Timer: *mut KTIMER, Type: u32) {
    if Timer.is_null() || (Timer as usize) & 7 != 0 {
        return;
    }
    // SAFETY: non-null and aligned; the caller owns the memory.
    unsafe { ke_initialize_driver_timer(Timer, Type) }
}

/// `KeSetTimer` export: `KeSetTimerEx` with no period.
///
/// # Safety
/// As [`KeSetTimerEx`].
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeSetTimer(Timer: *mut KTIMER, DueTime: i64, Dpc: *mut KDPC) -> u8 {
    // SAFETY: forwarded caller guarantee.
    unsafe { KeSetTimerEx(Timer, DueTime, 0, Dpc) }
}

/// `KeSetTimerEx` export: sets (or resets) the timer to expire at
/// `DueTime` and then every `Period` ms if non-zero (a negative period is
/// taken as none), queuing `Dpc` at each expiry. TRUE if the timer was
/// already set.
///
/// # Safety
/// `Timer` was initialized by `KeInitializeTimer(Ex)`; `Dpc` is null or
/// was initialized by `KeInitializeDpc`; both stay valid while the timer
/// is set.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeSetTimerEx(
    Timer: *mut KTIMER,
    DueTime: i64,
    Period: i32,
    Dpc: *mut KDPC,
) -> u8 {
    if Timer.is_null() {
        return 0;
    }
    // SAFETY: per the contract both objects are initialized and outlive
    // the time the timer is set.
    let (timer, dpc) = unsafe {
        (
            kernel_timer(Timer),
            (!Dpc.is_null()).then(|| super::dpc_export::kernel_dpc(Dpc)),
        )
    };
    ke_set_timer_ex(timer, due_from(DueTime), Period.max(0) as u32, dpc) as u8
}

/// `KeCancelTimer` export: TRUE if the timer was set.
///
/// # Safety
/// `Timer` was initialized by `KeInitializeTimer(Ex)`.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeCancelTimer(Timer: *mut KTIMER) -> u8 {
    if Timer.is_null() {
        return 0;
    }
    // SAFETY: forwarded caller guarantee.
    ke_cancel_timer(unsafe { kernel_timer(Timer) }) as u8
}

/// `KeReadStateTimer` export: TRUE once the timer has expired, until it is
/// set again.
///
/// # Safety
/// `Timer` was initialized by `KeInitializeTimer(Ex)`.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "system" fn KeReadStateTimer(Timer: *mut KTIMER) -> u8 {
    if Timer.is_null() {
        return 0;
    }
    // SAFETY: forwarded caller guarantee.
    unsafe { kernel_timer(Timer) }.signaled() as u8
}
