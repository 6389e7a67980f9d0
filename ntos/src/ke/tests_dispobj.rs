//! Boot tests of semaphores and mutexes in caller memory and of
//! `KeWaitForSingleObject` / `KeWaitForMultipleObjects` on them and on
//! `KEVENT`s, through the exported entry points drivers call.

use super::dispobj::*;
use super::event::{KeInitializeEvent, KeSetEvent, KeWaitForSingleObject};
use super::{sched, thread};
use crate::ktest::{check, wait_until, Test, TestResult};
use core::ffi::c_void;
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU32, Ordering};
use nt::status::*;
use wdk::*;

const WAIT_ALL: u32 = 0;
const WAIT_ANY: u32 = 1;

fn detached(h: &DISPATCHER_HEADER) -> bool {
    let head = &h.WaitListHead as *const LIST_ENTRY as *mut LIST_ENTRY;
    h.WaitListHead.Flink == head
}

/// Waits with a zero timeout (a poll).
fn poll(o: *mut c_void) -> NtStatus {
    let mut zero = 0i64;
    // SAFETY: `o` is an initialised dispatcher object of the test.
    unsafe { KeWaitForSingleObject(o, 0, 0, 0, &mut zero) }
}

fn t_semaphore() -> TestResult {
    let mut s = core::mem::MaybeUninit::<KSEMAPHORE>::zeroed();
    let sp = s.as_mut_ptr();
    // SAFETY: sp is the test's memory for the whole test; no other thread
    // uses it.
    unsafe {
        KeInitializeSemaphore(sp, 2, 3);
        check(
            poll(sp.cast()) == STATUS_SUCCESS && poll(sp.cast()) == STATUS_SUCCESS,
            "two acquisitions of a count of 2",
        )?;
        check(
            poll(sp.cast()) == STATUS_TIMEOUT,
            "a third did not time out",
        )?;
        check(
            KeReleaseSemaphore(sp, 0, 1, 0) == 0,
            "release: previous count",
        )?;
        check(
            KeReleaseSemaphore(sp, 0, 5, 0) == STATUS_SEMAPHORE_LIMIT_EXCEEDED.as_u32() as i32
                && KeReadStateSemaphore(sp) == 1,
            "a release past the limit was not refused with the state unchanged",
        )?;
        check(
            KeReleaseSemaphore(sp, 0, 2, 0) == 1 && KeReadStateSemaphore(sp) == 3,
            "a release up to the limit",
        )?;
        check(
            detached(&(*sp).Header),
            "the semaphore kept a dispatcher object",
        )?;
    }
    Ok(())
}

static mut SEM: core::mem::MaybeUninit<KSEMAPHORE> = core::mem::MaybeUninit::zeroed();
static mut MTX: core::mem::MaybeUninit<KMUTEX> = core::mem::MaybeUninit::zeroed();
static WOKEN: AtomicU32 = AtomicU32::new(0);
static B_STATUS: AtomicU32 = AtomicU32::new(u32::MAX);

fn sem() -> *mut KSEMAPHORE {
    addr_of_mut!(SEM).cast()
}

fn mtx() -> *mut KMUTEX {
    addr_of_mut!(MTX).cast()
}

fn sem_waiter(_: usize) {
    // SAFETY: the semaphore is initialised before the thread starts.
    let s = unsafe { KeWaitForSingleObject(sem().cast(), 0, 0, 0, core::ptr::null_mut()) };
    if s == STATUS_SUCCESS {
        WOKEN.fetch_add(1, Ordering::SeqCst);
    }
}

fn mutex_contender(_: usize) {
    // SAFETY: the mutex is initialised before the thread starts.
    let s = unsafe { KeWaitForSingleObject(mtx().cast(), 0, 0, 0, core::ptr::null_mut()) };
    B_STATUS.store(s.as_u32(), Ordering::SeqCst);
    if s == STATUS_SUCCESS {
        // SAFETY: this thread owns the mutex.
        unsafe { KeReleaseMutex(mtx(), 0) };
    }
}

fn start(name: &str, f: thread::StartRoutine) -> TestResult {
    let t = thread::create_system_thread(name, 8, u64::MAX, f, 0).map_err(|_| "thread")?;
    sched::ready_thread(t).map_err(|_| "thread not started")
}

fn t_semaphore_blocking() -> TestResult {
    WOKEN.store(0, Ordering::SeqCst);
    // SAFETY: no thread uses SEM yet.
    unsafe { KeInitializeSemaphore(sem(), 0, 2) };
    start("sem-waiter-1", sem_waiter)?;
    start("sem-waiter-2", sem_waiter)?;
    crate::ktest::sleep_ms(20);
    check(
        WOKEN.load(Ordering::SeqCst) == 0,
        "a waiter passed a zero count",
    )?;
    // SAFETY: initialised above.
    unsafe {
        check(
            !detached(&(*sem()).Header),
            "waiters are blocked but no dispatcher object is attached",
        )?;
        KeReleaseSemaphore(sem(), 1, 1, 0);
    }
    check(
        wait_until(1000, || WOKEN.load(Ordering::SeqCst) == 1),
        "a release of 1 did not wake exactly one waiter",
    )?;
    crate::ktest::sleep_ms(10);
    check(WOKEN.load(Ordering::SeqCst) == 1, "a release of 1 woke two")?;
    // SAFETY: initialised above.
    unsafe { KeReleaseSemaphore(sem(), 1, 1, 0) };
    check(
        wait_until(1000, || WOKEN.load(Ordering::SeqCst) == 2),
        "the second waiter did not wake",
    )?;
    // SAFETY: initialised above; both waiters are gone.
    check(
        wait_until(1000, || unsafe { detached(&(*sem()).Header) }),
        "the semaphore kept its dispatcher object after the waiters left",
    )
}

fn t_mutex() -> TestResult {
    B_STATUS.store(u32::MAX, Ordering::SeqCst);
    let me = sched::current_thread().address();
    // SAFETY: no thread uses MTX yet; this thread owns it between the
    // waits and releases below.
    unsafe {
        KeInitializeMutex(mtx(), 0);
        check(poll(mtx().cast()) == STATUS_SUCCESS, "acquire a free mutex")?;
        check(
            (*mtx()).Header.SignalState == 0 && (*mtx()).OwnerThread as u64 == me,
            "the header does not show the owner",
        )?;
        check(
            poll(mtx().cast()) == STATUS_SUCCESS,
            "recursive acquisition",
        )?;
        check(KeReadStateMutex(mtx()) == -1, "recursion count")?;
        start("mutex-contender", mutex_contender)?;
        crate::ktest::sleep_ms(20);
        check(
            B_STATUS.load(Ordering::SeqCst) == u32::MAX,
            "another thread got an owned mutex",
        )?;
        check(
            KeReleaseMutex(mtx(), 0) == -1,
            "first release: previous state",
        )?;
        crate::ktest::sleep_ms(10);
        check(
            B_STATUS.load(Ordering::SeqCst) == u32::MAX,
            "the mutex was handed over before the last release",
        )?;
        check(
            KeReleaseMutex(mtx(), 0) == 0,
            "last release: previous state",
        )?;
    }
    check(
        wait_until(1000, || B_STATUS.load(Ordering::SeqCst) == 0),
        "the waiting thread did not get the released mutex",
    )?;
    // SAFETY: the contender released it.
    unsafe {
        check(
            wait_until(1000, || detached(&(*mtx()).Header)),
            "a free mutex kept its dispatcher object",
        )?;
        check(
            (*mtx()).Header.SignalState == 1 && (*mtx()).OwnerThread.is_null(),
            "the free mutex's header",
        )?;
        check(
            KeReleaseMutex(mtx(), 0) == STATUS_MUTANT_NOT_OWNED.as_u32() as i32,
            "releasing a mutex not owned was not STATUS_MUTANT_NOT_OWNED",
        )
    }
}

fn t_multiple() -> TestResult {
    let mut e = KEVENT::zeroed();
    let mut s = core::mem::MaybeUninit::<KSEMAPHORE>::zeroed();
    let mut m = core::mem::MaybeUninit::<KMUTEX>::zeroed();
    let (ep, sp, mp) = (addr_of_mut!(e), s.as_mut_ptr(), m.as_mut_ptr());
    let mut zero = 0i64;
    let mut short = -(10 * crate::ktest::MS as i64);
    // SAFETY: the objects live on this stack for the whole test; only this
    // thread uses them.
    unsafe {
        KeInitializeEvent(ep, NOTIFICATION_EVENT, 0);
        KeInitializeSemaphore(sp, 0, 1);
        KeInitializeMutex(mp, 0);
        let mut any: [*mut c_void; 3] = [ep.cast(), sp.cast(), mp.cast()];
        let w = |list: &mut [*mut c_void], ty: u32, t: *mut i64| {
            KeWaitForMultipleObjects(
                list.len() as u32,
                list.as_mut_ptr(),
                ty,
                0,
                0,
                0,
                t,
                core::ptr::null_mut(),
            )
        };
        check(
            w(&mut any, WAIT_ANY, &mut zero) == STATUS_WAIT_2,
            "wait-any did not pick the free mutex (STATUS_WAIT_2)",
        )?;
        check(KeReleaseMutex(mp, 0) == 0, "release the mutex")?;
        let mut two: [*mut c_void; 2] = [ep.cast(), sp.cast()];
        check(
            w(&mut two, WAIT_ALL, &mut zero) == STATUS_TIMEOUT,
            "wait-all with nothing signaled did not time out",
        )?;
        KeSetEvent(ep, 0, 0);
        check(
            w(&mut two, WAIT_ALL, &mut short) == STATUS_TIMEOUT,
            "wait-all was satisfied by one of two objects",
        )?;
        KeReleaseSemaphore(sp, 0, 1, 0);
        check(
            w(&mut two, WAIT_ALL, &mut zero) == STATUS_SUCCESS,
            "wait-all with both signaled",
        )?;
        check(
            KeReadStateSemaphore(sp) == 0 && (*ep).Header.SignalState == 1,
            "wait-all took the semaphore's count and left the notification event set",
        )?;
        check(
            w(&mut [sp.cast()], WAIT_ANY, &mut short) == STATUS_TIMEOUT,
            "the semaphore's count was not consumed",
        )?;
        check(
            detached(&(*ep).Header) && detached(&(*sp).Header) && detached(&(*mp).Header),
            "an object kept a dispatcher object after the waits",
        )?;
        let mut timer_like = KEVENT::zeroed();
        timer_like.Header.Type = TIMER_NOTIFICATION_OBJECT;
        let mut bad: [*mut c_void; 2] = [ep.cast(), addr_of_mut!(timer_like).cast()];
        check(
            w(&mut bad, WAIT_ANY, &mut zero) == STATUS_NOT_IMPLEMENTED && detached(&(*ep).Header),
            "a wait on a KTIMER was not refused cleanly (STATUS_NOT_IMPLEMENTED)",
        )?;
        (*bad[1].cast::<KEVENT>()).Header.Type = 0x7F;
        check(
            w(&mut bad, WAIT_ANY, &mut zero) == STATUS_INVALID_PARAMETER && detached(&(*ep).Header),
            "an unknown object type was not refused cleanly",
        )?;
        let mut many = [ep.cast::<c_void>(); 65];
        check(
            w(&mut many, WAIT_ANY, &mut zero) == STATUS_INVALID_PARAMETER,
            "65 objects were not refused",
        )?;
    }
    Ok(())
}

/// Boot tests of dispatcher objects in caller memory.
pub const TESTS: &[Test] = &[
    ("ke.wait.semaphore_caller_memory", t_semaphore),
    ("ke.wait.semaphore_blocking_release", t_semaphore_blocking),
    ("ke.wait.mutex_caller_memory", t_mutex),
    ("ke.wait.multiple_objects_caller_memory", t_multiple),
];
