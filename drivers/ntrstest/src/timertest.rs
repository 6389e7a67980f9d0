//! `IOCTL_NTRSTEST_TIMERS` on `\Device\NtrsTestFile`: exercises the
//! `KTIMER` exports the way a driver uses them (a periodic timer with a
//! DPC, then cancelled; a one-shot timer with a DPC; a one-shot cancelled
//! before it fires) and returns what it observed as a [`TimerReport`]; the
//! kernel boot test `io.driver.ktimer` judges it.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};
use nt::status::*;
use rt::wdk::*;

/// `CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)`.
pub const IOCTL_NTRSTEST_TIMERS: u32 = 0x0022_2000;

/// What the driver saw (every field filled by an observation). Shared with
/// the kernel test, which declares the same layout.
#[repr(C)]
#[derive(Default)]
pub struct TimerReport {
    /// `KeReadStateTimer` right after `KeInitializeTimerEx`.
    pub state_initial: u32,
    /// `KeSetTimerEx` on a fresh timer (FALSE expected).
    pub set_was_set: u32,
    /// Status of waiting (5 s at most) for the periodic DPC's 3rd run.
    pub periodic_wait: u32,
    /// The periodic DPC's runs when the wait ended.
    pub periodic_runs: u32,
    /// IRQL the DPC ran at (bits of every run's IRQL, 1 << irql).
    pub dpc_irqls: u32,
    /// `KeReadStateTimer` after the expiries.
    pub state_after: u32,
    /// `KeCancelTimer` of the periodic timer (TRUE expected).
    pub cancel_periodic: u32,
    /// Runs counted right after the cancel and again 60 ms later.
    pub runs_at_cancel: u32,
    pub runs_later: u32,
    /// A second `KeCancelTimer` (FALSE expected).
    pub cancel_again: u32,
    /// One-shot with DPC: wait status, runs 60 ms after, `KeCancelTimer`
    /// after it fired (FALSE expected), `KeReadStateTimer` (TRUE expected).
    pub oneshot_wait: u32,
    pub oneshot_runs: u32,
    pub oneshot_cancel: u32,
    pub oneshot_state: u32,
    /// One-shot cancelled before its due time: `KeCancelTimer` (TRUE
    /// expected), `KeReadStateTimer` and the DPC's runs 60 ms after the due
    /// time (0 expected).
    pub early_cancel: u32,
    pub early_state: u32,
    pub early_runs: u32,
    /// `KeSetTimer` on the one-shot timer while it was still set (TRUE).
    pub reset_was_set: u32,
}

/// Nonpaged storage for a kernel object the driver owns, 8-byte aligned.
#[repr(C, align(16))]
struct Obj<T>(UnsafeCell<T>);

// SAFETY: the kernel objects inside are only touched through the kernel's
// routines, which synchronize them; one IOCTL runs the test at a time
// (BUSY below).
unsafe impl<T> Sync for Obj<T> {}

impl<T> Obj<T> {
    fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// An all-zero object: KTIMER, KDPC and KEVENT are plain data until their
/// KeInitialize* routine runs.
const fn zeroed<T>() -> Obj<T> {
    // SAFETY: used only for those plain-data structures (all-zero is a
    // valid bit pattern for their integer and pointer fields).
    Obj(UnsafeCell::new(unsafe { core::mem::zeroed() }))
}

static PERIODIC: Obj<KTIMER> = zeroed();
static ONESHOT: Obj<KTIMER> = zeroed();
static PERIODIC_DPC: Obj<KDPC> = zeroed();
static ONESHOT_DPC: Obj<KDPC> = zeroed();
static PERIODIC_DONE: Obj<KEVENT> = zeroed();
static ONESHOT_DONE: Obj<KEVENT> = zeroed();
static NEVER: Obj<KEVENT> = zeroed();

static PERIODIC_RUNS: AtomicU32 = AtomicU32::new(0);
static ONESHOT_RUNS: AtomicU32 = AtomicU32::new(0);
static IRQLS: AtomicU32 = AtomicU32::new(0);
static BUSY: AtomicU32 = AtomicU32::new(0);

/// 1 ms in the 100 ns units of a relative due time.
const MS: i64 = 10_000;

unsafe extern "system" fn periodic_dpc(
    _d: *mut KDPC,
    _c: *mut c_void,
    _a: *mut c_void,
    _b: *mut c_void,
) {
    // SAFETY: plain call.
    IRQLS.fetch_or(1 << unsafe { KeGetCurrentIrql() }, Ordering::Relaxed);
    if PERIODIC_RUNS.fetch_add(1, Ordering::AcqRel) + 1 == 3 {
        // SAFETY: the event is initialized before the timer is set.
        unsafe { KeSetEvent(PERIODIC_DONE.get(), 0, 0) };
    }
}

unsafe extern "system" fn oneshot_dpc(
    _d: *mut KDPC,
    _c: *mut c_void,
    _a: *mut c_void,
    _b: *mut c_void,
) {
    // SAFETY: plain call.
    IRQLS.fetch_or(1 << unsafe { KeGetCurrentIrql() }, Ordering::Relaxed);
    ONESHOT_RUNS.fetch_add(1, Ordering::AcqRel);
    // SAFETY: the event is initialized before the timer is set.
    unsafe { KeSetEvent(ONESHOT_DONE.get(), 0, 0) };
}

/// Waits on `ev` for at most `ms` milliseconds.
fn wait(ev: *mut KEVENT, ms: i64) -> NtStatus {
    let mut timeout: i64 = -ms * MS;
    // SAFETY: an initialized event and a readable timeout.
    unsafe { KeWaitForSingleObject(ev.cast(), EXECUTIVE, 0, 0, &mut timeout) }
}

fn run(r: &mut TimerReport) {
    PERIODIC_RUNS.store(0, Ordering::Relaxed);
    ONESHOT_RUNS.store(0, Ordering::Relaxed);
    IRQLS.store(0, Ordering::Relaxed);
    // SAFETY: the objects are ours and not in use (BUSY); every call gets
    // initialized objects that outlive the time they are set or queued
    // (statics, and every timer is cancelled or has expired on return).
    unsafe {
        KeInitializeEvent(PERIODIC_DONE.get(), NOTIFICATION_EVENT, 0);
        KeInitializeEvent(ONESHOT_DONE.get(), NOTIFICATION_EVENT, 0);
        KeInitializeEvent(NEVER.get(), NOTIFICATION_EVENT, 0);
        KeInitializeDpc(PERIODIC_DPC.get(), periodic_dpc, ptr::null_mut());
        KeInitializeDpc(ONESHOT_DPC.get(), oneshot_dpc, ptr::null_mut());

        // Periodic: first expiry in 10 ms, then every 10 ms.
        KeInitializeTimerEx(PERIODIC.get(), NOTIFICATION_TIMER);
        r.state_initial = KeReadStateTimer(PERIODIC.get()) as u32;
        r.set_was_set = KeSetTimerEx(PERIODIC.get(), -10 * MS, 10, PERIODIC_DPC.get()) as u32;
        r.periodic_wait = wait(PERIODIC_DONE.get(), 5000).0 as u32;
        r.periodic_runs = PERIODIC_RUNS.load(Ordering::Acquire);
        r.state_after = KeReadStateTimer(PERIODIC.get()) as u32;
        r.cancel_periodic = KeCancelTimer(PERIODIC.get()) as u32;
        r.runs_at_cancel = PERIODIC_RUNS.load(Ordering::Acquire);
        // A DPC queued just before the cancel may still run: let it.
        wait(NEVER.get(), 60);
        r.runs_at_cancel = r.runs_at_cancel.max(PERIODIC_RUNS.load(Ordering::Acquire));
        wait(NEVER.get(), 60);
        r.runs_later = PERIODIC_RUNS.load(Ordering::Acquire);
        r.cancel_again = KeCancelTimer(PERIODIC.get()) as u32;

        // One-shot with a DPC, reset once while set.
        KeInitializeTimer(ONESHOT.get());
        KeSetTimer(ONESHOT.get(), -1000 * MS, ONESHOT_DPC.get());
        r.reset_was_set = KeSetTimer(ONESHOT.get(), -10 * MS, ONESHOT_DPC.get()) as u32;
        r.oneshot_wait = wait(ONESHOT_DONE.get(), 5000).0 as u32;
        wait(NEVER.get(), 60);
        r.oneshot_runs = ONESHOT_RUNS.load(Ordering::Acquire);
        r.oneshot_cancel = KeCancelTimer(ONESHOT.get()) as u32;
        r.oneshot_state = KeReadStateTimer(ONESHOT.get()) as u32;

        // One-shot cancelled before it is due.
        ONESHOT_RUNS.store(0, Ordering::Relaxed);
        KeInitializeTimerEx(ONESHOT.get(), SYNCHRONIZATION_TIMER);
        KeSetTimer(ONESHOT.get(), -30 * MS, ONESHOT_DPC.get());
        r.early_cancel = KeCancelTimer(ONESHOT.get()) as u32;
        wait(NEVER.get(), 90);
        r.early_state = KeReadStateTimer(ONESHOT.get()) as u32;
        r.early_runs = ONESHOT_RUNS.load(Ordering::Acquire);
    }
    r.dpc_irqls = IRQLS.load(Ordering::Relaxed);
}

/// Handles the IOCTL: runs the test into the METHOD_BUFFERED output
/// buffer. Returns the bytes written.
///
/// # Safety
/// `irp` is a device-control IRP whose current location is ours.
pub unsafe fn ioctl(irp: *mut IRP, sl: *mut IO_STACK_LOCATION) -> Result<usize, NtStatus> {
    let n = core::mem::size_of::<TimerReport>();
    // SAFETY: the caller guarantees the IRP and its stack location.
    let (len, buf) = unsafe {
        (
            (*sl).Parameters.DeviceIoControl.OutputBufferLength as usize,
            (*irp).AssociatedIrp.SystemBuffer as *mut TimerReport,
        )
    };
    if len < n || buf.is_null() {
        return Err(STATUS_BUFFER_TOO_SMALL);
    }
    if BUSY.swap(1, Ordering::AcqRel) != 0 {
        return Err(STATUS_DEVICE_BUSY);
    }
    let mut r = TimerReport::default();
    run(&mut r);
    BUSY.store(0, Ordering::Release);
    // SAFETY: the system buffer holds at least `n` bytes (checked); the
    // I/O manager's pool buffer is 16-byte aligned.
    unsafe { buf.write(r) };
    Ok(n)
}
