//! Boot tests of executive support: named dispatcher objects across
//! threads, executive synchronization, worker threads.

use crate::ex::event::*;
use crate::ex::sync::*;
use crate::ex::worker::*;
use crate::ke::{self, clock, sched};
use crate::ktest::{check, sleep_ms, wait_until, Test, TestResult, MS};
use crate::ob::object::Mode;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use nt::status::*;

fn spawn(priority: u8, f: fn(usize), ctx: usize) -> u32 {
    sched::start_system_thread("ex-test", priority, u64::MAX, f, ctx).unwrap_or(0)
}

static OPENER_STATUS: AtomicU32 = AtomicU32::new(u32::MAX);
const EVENT_NAME: &str = "\\BaseNamedObjects\\KtNamedEvent";

/// A named event created by one thread, opened by name and waited on by
/// another, set by the first; both close and the name goes away.
fn t_named_event_across_threads() -> TestResult {
    OPENER_STATUS.store(u32::MAX, Ordering::SeqCst);
    let (h, st) = nt_create_event(
        EVENT_ALL_ACCESS,
        Some(EVENT_NAME),
        0,
        EventType::SynchronizationEvent,
        false,
        Mode::UserMode,
    )
    .map_err(|_| "NtCreateEvent failed")?;
    check(st == STATUS_SUCCESS, "create status")?;
    spawn(
        8,
        |_| {
            let s = match nt_open_event(
                SYNCHRONIZE | EVENT_QUERY_STATE,
                EVENT_NAME,
                ::ob::OBJ_CASE_INSENSITIVE,
                Mode::UserMode,
            ) {
                Ok(h2) => {
                    let s = nt_wait_for_single_object(h2, false, Some(2000 * MS), Mode::UserMode);
                    crate::ob::handle::nt_close(h2);
                    s
                }
                Err(e) => e,
            };
            OPENER_STATUS.store(s.0 as u32, Ordering::SeqCst);
        },
        0,
    );
    sleep_ms(40);
    check(
        OPENER_STATUS.load(Ordering::SeqCst) == u32::MAX,
        "waiter finished before the event was set",
    )?;
    check(nt_set_event(h, Mode::UserMode) == Ok(0), "NtSetEvent")?;
    check(
        wait_until(2000, || OPENER_STATUS.load(Ordering::SeqCst) != u32::MAX),
        "waiter never woke",
    )?;
    check(
        OPENER_STATUS.load(Ordering::SeqCst) == 0,
        "waiter did not get STATUS_SUCCESS",
    )?;
    // OBJ_OPENIF finds the existing event; a plain create collides; the wrong type mismatches.
    let (h3, st) = nt_create_event(
        EVENT_ALL_ACCESS,
        Some(EVENT_NAME),
        ::ob::OBJ_OPENIF,
        EventType::NotificationEvent,
        false,
        Mode::UserMode,
    )
    .map_err(|_| "OPENIF create failed")?;
    check(
        st == STATUS_OBJECT_NAME_EXISTS,
        "OBJ_OPENIF did not report STATUS_OBJECT_NAME_EXISTS",
    )?;
    check(
        nt_create_event(
            EVENT_ALL_ACCESS,
            Some(EVENT_NAME),
            0,
            EventType::NotificationEvent,
            false,
            Mode::UserMode,
        )
        .err()
            == Some(STATUS_OBJECT_NAME_COLLISION),
        "duplicate name was not STATUS_OBJECT_NAME_COLLISION",
    )?;
    check(
        nt_open_mutant(MUTANT_ALL_ACCESS, EVENT_NAME, 0, Mode::UserMode).err()
            == Some(STATUS_OBJECT_TYPE_MISMATCH),
        "opening an event as a mutant was not STATUS_OBJECT_TYPE_MISMATCH",
    )?;
    // Access: a query-only handle cannot set or wait from user mode.
    let hq = nt_open_event(EVENT_QUERY_STATE, EVENT_NAME, 0, Mode::UserMode)
        .map_err(|_| "open query-only")?;
    check(
        nt_set_event(hq, Mode::UserMode) == Err(STATUS_ACCESS_DENIED),
        "set without EVENT_MODIFY_STATE",
    )?;
    check(
        nt_wait_for_single_object(hq, false, Some(0), Mode::UserMode) == STATUS_ACCESS_DENIED,
        "wait without SYNCHRONIZE",
    )?;
    for x in [hq, h3, h] {
        check(crate::ob::handle::nt_close(x) == STATUS_SUCCESS, "close")?;
    }
    check(
        nt_open_event(EVENT_ALL_ACCESS, EVENT_NAME, 0, Mode::UserMode).err()
            == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "the name outlived its last handle",
    )
}

static MUTANT_WAITER: AtomicU32 = AtomicU32::new(u32::MAX);
static MUTANT_HANDLE: AtomicU64 = AtomicU64::new(0);

fn t_named_mutant_and_semaphore() -> TestResult {
    let (m, _) = nt_create_mutant(
        MUTANT_ALL_ACCESS,
        Some("\\BaseNamedObjects\\KtMutant"),
        0,
        true,
        Mode::UserMode,
    )
    .map_err(|_| "NtCreateMutant")?;
    MUTANT_HANDLE.store(m, Ordering::SeqCst);
    MUTANT_WAITER.store(u32::MAX, Ordering::SeqCst);
    spawn(
        8,
        |_| {
            let h = MUTANT_HANDLE.load(Ordering::SeqCst);
            let poll = nt_wait_for_single_object(h, false, Some(0), Mode::UserMode);
            if poll != STATUS_TIMEOUT {
                MUTANT_WAITER.store(0xBAD, Ordering::SeqCst);
                return;
            }
            let not_owner = nt_release_mutant(h, Mode::UserMode);
            if not_owner != Err(STATUS_MUTANT_NOT_OWNED) {
                MUTANT_WAITER.store(0xBAD1, Ordering::SeqCst);
                return;
            }
            let s = nt_wait_for_single_object(h, false, Some(2000 * MS), Mode::UserMode);
            let _ = nt_release_mutant(h, Mode::UserMode);
            MUTANT_WAITER.store(s.0 as u32, Ordering::SeqCst);
        },
        0,
    );
    sleep_ms(40);
    check(
        MUTANT_WAITER.load(Ordering::SeqCst) == u32::MAX,
        "the owned mutant did not block another thread",
    )?;
    check(
        nt_release_mutant(m, Mode::UserMode) == Ok(0),
        "NtReleaseMutant by the owner",
    )?;
    check(
        wait_until(2000, || MUTANT_WAITER.load(Ordering::SeqCst) != u32::MAX),
        "waiter never got the mutant",
    )?;
    check(
        MUTANT_WAITER.load(Ordering::SeqCst) == 0,
        "mutant wait status",
    )?;
    crate::ob::handle::nt_close(m);
    check(
        nt_create_semaphore(SEMAPHORE_ALL_ACCESS, None, 0, 3, 2, Mode::UserMode).err()
            == Some(STATUS_INVALID_PARAMETER),
        "semaphore with count above the limit",
    )?;
    let (s, _) = nt_create_semaphore(
        SEMAPHORE_ALL_ACCESS,
        Some("\\BaseNamedObjects\\KtSem"),
        0,
        0,
        2,
        Mode::UserMode,
    )
    .map_err(|_| "NtCreateSemaphore")?;
    check(
        nt_release_semaphore(s, 3, Mode::UserMode) == Err(STATUS_SEMAPHORE_LIMIT_EXCEEDED),
        "limit",
    )?;
    check(
        nt_release_semaphore(s, 2, Mode::UserMode) == Ok(0),
        "release 2",
    )?;
    let s2 = nt_open_semaphore(
        SYNCHRONIZE,
        "\\basenamedobjects\\ktsem",
        ::ob::OBJ_CASE_INSENSITIVE,
        Mode::UserMode,
    )
    .map_err(|_| "NtOpenSemaphore")?;
    check(
        nt_wait_for_single_object(s2, false, Some(0), Mode::UserMode) == STATUS_SUCCESS,
        "take 1",
    )?;
    check(
        nt_wait_for_single_object(s2, false, Some(0), Mode::UserMode) == STATUS_SUCCESS,
        "take 2",
    )?;
    check(
        nt_wait_for_single_object(s2, false, Some(0), Mode::UserMode) == STATUS_TIMEOUT,
        "take 3",
    )?;
    crate::ob::handle::nt_close(s2);
    crate::ob::handle::nt_close(s);
    Ok(())
}

static FMUTEX: FastMutex = FastMutex::new();
static GMUTEX: GuardedMutex = GuardedMutex::new();
static SHARED_COUNTER: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU32 = AtomicU32::new(0);
static IRQL_IN_FAST: AtomicU8 = AtomicU8::new(0xFF);

fn t_fast_and_guarded_mutex() -> TestResult {
    SHARED_COUNTER.store(0, Ordering::SeqCst);
    DONE.store(0, Ordering::SeqCst);
    let n = 4;
    for i in 0..n {
        spawn(
            8 + (i % 3) as u8,
            |i| {
                for k in 0..300 {
                    if (i + k) % 2 == 0 {
                        FMUTEX.acquire();
                        IRQL_IN_FAST.store(ke::irql(), Ordering::SeqCst);
                        let v = SHARED_COUNTER.load(Ordering::Relaxed);
                        if k % 50 == 0 {
                            sched::ke_yield_execution();
                        }
                        SHARED_COUNTER.store(v + 1, Ordering::Relaxed);
                        FMUTEX.release();
                    } else {
                        // Both mutexes guard the counter (fixed order).
                        GMUTEX.acquire();
                        FMUTEX.acquire();
                        let v = SHARED_COUNTER.load(Ordering::Relaxed);
                        SHARED_COUNTER.store(v + 1, Ordering::Relaxed);
                        FMUTEX.release();
                        GMUTEX.release();
                    }
                }
                DONE.fetch_add(1, Ordering::SeqCst);
            },
            i,
        );
    }
    check(
        wait_until(10_000, || DONE.load(Ordering::SeqCst) == n as u32),
        "mutex threads did not finish",
    )?;
    check(
        SHARED_COUNTER.load(Ordering::SeqCst) == n as u64 * 300,
        "an update under a mutex was lost",
    )?;
    check(
        IRQL_IN_FAST.load(Ordering::SeqCst) == ke::APC_LEVEL,
        "a fast mutex does not hold APC_LEVEL",
    )?;
    check(FMUTEX.owner() == 0, "fast mutex left owned")
}

static RESOURCE: EResource = EResource::new("KtResource");
static READERS_IN: AtomicU32 = AtomicU32::new(0);
static MAX_READERS: AtomicU32 = AtomicU32::new(0);
static WRITER_IN: AtomicBool = AtomicBool::new(false);
static VIOLATION: AtomicBool = AtomicBool::new(false);
static LATE_READER_ORDER: AtomicU32 = AtomicU32::new(0);
static ORDER: AtomicU32 = AtomicU32::new(0);

fn t_eresource() -> TestResult {
    RESOURCE.register();
    READERS_IN.store(0, Ordering::SeqCst);
    MAX_READERS.store(0, Ordering::SeqCst);
    VIOLATION.store(false, Ordering::SeqCst);
    DONE.store(0, Ordering::SeqCst);
    // Readers and writers mixing: readers overlap, writers exclude everyone.
    for i in 0..6 {
        spawn(
            8,
            |i| {
                for k in 0..60 {
                    if (i + k) % 3 == 0 {
                        RESOURCE.acquire_exclusive();
                        if READERS_IN.load(Ordering::SeqCst) != 0
                            || WRITER_IN.swap(true, Ordering::SeqCst)
                        {
                            VIOLATION.store(true, Ordering::SeqCst);
                        }
                        // Recursive exclusive acquisition.
                        RESOURCE.acquire_exclusive();
                        RESOURCE.release();
                        sched::ke_yield_execution();
                        WRITER_IN.store(false, Ordering::SeqCst);
                        RESOURCE.release();
                    } else {
                        RESOURCE.acquire_shared();
                        if WRITER_IN.load(Ordering::SeqCst) {
                            VIOLATION.store(true, Ordering::SeqCst);
                        }
                        let r = READERS_IN.fetch_add(1, Ordering::SeqCst) + 1;
                        MAX_READERS.fetch_max(r, Ordering::SeqCst);
                        sched::ke_delay_execution_thread(MS / 2);
                        READERS_IN.fetch_sub(1, Ordering::SeqCst);
                        RESOURCE.release();
                    }
                }
                DONE.fetch_add(1, Ordering::SeqCst);
            },
            i,
        );
    }
    check(
        wait_until(20_000, || DONE.load(Ordering::SeqCst) == 6),
        "resource threads did not finish",
    )?;
    check(
        !VIOLATION.load(Ordering::SeqCst),
        "exclusive and shared owners overlapped",
    )?;
    check(
        MAX_READERS.load(Ordering::SeqCst) >= 2,
        "shared owners never overlapped",
    )?;
    // Starvation rule: with the resource shared and a writer waiting, a new
    // reader waits behind the writer.
    ORDER.store(0, Ordering::SeqCst);
    LATE_READER_ORDER.store(0, Ordering::SeqCst);
    RESOURCE.acquire_shared();
    spawn(
        8,
        |_| {
            RESOURCE.acquire_exclusive();
            ORDER.fetch_add(1, Ordering::SeqCst);
            RESOURCE.release();
        },
        0,
    );
    sleep_ms(20);
    spawn(
        8,
        |_| {
            RESOURCE.acquire_shared();
            LATE_READER_ORDER.store(ORDER.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            RESOURCE.release();
        },
        0,
    );
    sleep_ms(20);
    check(
        LATE_READER_ORDER.load(Ordering::SeqCst) == 0,
        "a new reader bypassed a waiting writer",
    )?;
    RESOURCE.release();
    check(
        wait_until(2000, || LATE_READER_ORDER.load(Ordering::SeqCst) != 0),
        "late reader never ran",
    )?;
    check(
        LATE_READER_ORDER.load(Ordering::SeqCst) == 2,
        "the waiting writer did not go first",
    )
}

static RUNDOWN: RundownRef = RundownRef::new();
static RUNDOWN_DONE: AtomicBool = AtomicBool::new(false);

fn t_rundown_and_push_lock() -> TestResult {
    RUNDOWN.reinitialize();
    RUNDOWN_DONE.store(false, Ordering::SeqCst);
    check(RUNDOWN.acquire(), "acquire before rundown")?;
    spawn(
        9,
        |_| {
            RUNDOWN.wait_for_release();
            RUNDOWN_DONE.store(true, Ordering::SeqCst);
        },
        0,
    );
    sleep_ms(20);
    check(!RUNDOWN.acquire(), "a reference was granted during rundown")?;
    check(
        !RUNDOWN_DONE.load(Ordering::SeqCst),
        "rundown finished with a reference outstanding",
    )?;
    RUNDOWN.release();
    check(
        wait_until(1000, || RUNDOWN_DONE.load(Ordering::SeqCst)),
        "rundown never completed",
    )?;
    // Push lock: exclusion under contention.
    SHARED_COUNTER.store(0, Ordering::SeqCst);
    DONE.store(0, Ordering::SeqCst);
    for i in 0..4 {
        spawn(
            8,
            |i| {
                for k in 0..200 {
                    if (i + k) % 4 == 0 {
                        PUSH.acquire_shared();
                        let _ = SHARED_COUNTER.load(Ordering::Relaxed);
                        PUSH.release_shared();
                    } else {
                        PUSH.acquire_exclusive();
                        let v = SHARED_COUNTER.load(Ordering::Relaxed);
                        if k % 40 == 0 {
                            sched::ke_yield_execution();
                        }
                        SHARED_COUNTER.store(v + 1, Ordering::Relaxed);
                        PUSH.release_exclusive();
                    }
                }
                DONE.fetch_add(1, Ordering::SeqCst);
            },
            i,
        );
    }
    check(
        wait_until(10_000, || DONE.load(Ordering::SeqCst) == 4),
        "push lock threads did not finish",
    )?;
    check(
        SHARED_COUNTER.load(Ordering::SeqCst) == 600,
        "an update under a push lock was lost",
    )
}

static PUSH: PushLock = PushLock::new();
static WORK_PRIORITY: [AtomicU8; 3] = [const { AtomicU8::new(0) }; 3];
static WORK_IRQL: AtomicU8 = AtomicU8::new(0xFF);

fn t_worker_threads() -> TestResult {
    for q in [
        WorkQueueType::CriticalWorkQueue,
        WorkQueueType::DelayedWorkQueue,
        WorkQueueType::HyperCriticalWorkQueue,
    ] {
        WORK_PRIORITY[q as usize].store(0, Ordering::SeqCst);
        // Queue from DISPATCH_LEVEL, as drivers may.
        let old = ke::irql::ke_raise_irql(ke::DISPATCH_LEVEL);
        ex_queue_work_item(
            WorkQueueItem {
                routine: |q| {
                    WORK_IRQL.store(ke::irql(), Ordering::SeqCst);
                    WORK_PRIORITY[q].store(
                        sched::ke_query_priority_thread(sched::current_thread_id()).unwrap_or(0),
                        Ordering::SeqCst,
                    );
                },
                parameter: q as usize,
            },
            q,
        );
        ke::irql::ke_lower_irql(old);
    }
    check(
        wait_until(2000, || {
            WORK_PRIORITY.iter().all(|p| p.load(Ordering::SeqCst) != 0)
        }),
        "work items did not run",
    )?;
    check(
        WORK_PRIORITY[0].load(Ordering::SeqCst) >= 13
            && WORK_PRIORITY[1].load(Ordering::SeqCst) >= 12
            && WORK_PRIORITY[2].load(Ordering::SeqCst) >= 15,
        "worker threads run at the wrong priorities",
    )?;
    check(
        WORK_IRQL.load(Ordering::SeqCst) == ke::PASSIVE_LEVEL,
        "work item not at PASSIVE_LEVEL",
    )
}

/// An object whose last reference is dropped at DISPATCH_LEVEL is deleted
/// later by a worker thread.
/// The object the deferred-delete test dereferences, and where its delete
/// procedure ran: the thread id and IRQL (0 / 0xFF until it ran).
static DEFERRED_OBJECT: AtomicU64 = AtomicU64::new(u64::MAX);
static DEFERRED_DELETED_BY: AtomicU32 = AtomicU32::new(0);
static DEFERRED_DELETED_IRQL: AtomicU8 = AtomicU8::new(0xFF);

/// The last dereference of an object at DISPATCH_LEVEL does not delete it
/// there: its type's delete procedure runs later, at PASSIVE_LEVEL, in a
/// worker thread (`ObpDeferObjectDeletion`). Judged by where the delete
/// procedure ran, so a worker on another processor that deletes at once
/// does not make the test fail.
fn t_deferred_delete() -> TestResult {
    use crate::ob::object::*;
    use crate::ob::types::*;
    static KT_DEFERRED_TYPE: ObjectTypeRef = ObjectTypeRef::new();
    if KT_DEFERRED_TYPE.get().is_none() {
        let init = TypeInitializer {
            delete: Some(|id| {
                if id as u64 == DEFERRED_OBJECT.load(Ordering::SeqCst) {
                    DEFERRED_DELETED_IRQL.store(ke::irql(), Ordering::SeqCst);
                    DEFERRED_DELETED_BY.store(sched::current_thread_id(), Ordering::SeqCst);
                }
            }),
            ..Default::default()
        };
        ob_create_object_type("KtDeferredDelete", init, &KT_DEFERRED_TYPE)
            .map_err(|_| "ObCreateObjectType")?;
    }
    let (id, _) = ob_create_object(CreateSpec {
        object_type: &KT_DEFERRED_TYPE,
        name: None,
        attributes: 0,
        body: ObjectBody::Plain,
        sd: None,
    })
    .map_err(|_| "create")?;
    DEFERRED_DELETED_BY.store(0, Ordering::SeqCst);
    DEFERRED_DELETED_IRQL.store(0xFF, Ordering::SeqCst);
    DEFERRED_OBJECT.store(id as u64, Ordering::SeqCst);
    let before = crate::ob::with_ob(|st| st.deleted_total);
    let me = sched::current_thread_id();
    let old = ke::irql::ke_raise_irql(ke::DISPATCH_LEVEL);
    ob_dereference_object(id);
    ke::irql::ke_lower_irql(old);
    check(
        wait_until(2000, || DEFERRED_DELETED_BY.load(Ordering::SeqCst) != 0),
        "the deferred delete never ran",
    )?;
    check(
        DEFERRED_DELETED_BY.load(Ordering::SeqCst) != me,
        "a dereference at DISPATCH_LEVEL deleted in the dereferencing thread",
    )?;
    check(
        DEFERRED_DELETED_IRQL.load(Ordering::SeqCst) == ke::PASSIVE_LEVEL,
        "the delete procedure did not run at PASSIVE_LEVEL",
    )?;
    check(
        crate::ob::with_ob(|st| st.deleted_total) > before,
        "the object was not counted as deleted",
    )
}

fn t_named_timer() -> TestResult {
    let (h, _) = nt_create_timer(
        TIMER_ALL_ACCESS,
        Some("\\BaseNamedObjects\\KtTimer"),
        0,
        TimerType::NotificationTimer,
        Mode::UserMode,
    )
    .map_err(|_| "NtCreateTimer")?;
    let h2 = nt_open_timer(
        SYNCHRONIZE | TIMER_QUERY_STATE,
        "\\BaseNamedObjects\\KtTimer",
        0,
        Mode::UserMode,
    )
    .map_err(|_| "NtOpenTimer")?;
    check(
        nt_wait_for_single_object(h2, false, Some(0), Mode::UserMode) == STATUS_TIMEOUT,
        "unset timer signaled",
    )?;
    check(
        nt_set_timer(h2, -(30 * MS as i64), 0, Mode::UserMode) == Err(STATUS_ACCESS_DENIED),
        "set without TIMER_MODIFY_STATE",
    )?;
    // The start is read before the timer is set: a thread preempted between
    // the two would otherwise see less than the due time pass.
    let t0 = clock::ke_query_interrupt_time();
    nt_set_timer(h, -(30 * MS as i64), 0, Mode::UserMode).map_err(|_| "NtSetTimer")?;
    check(
        nt_wait_for_single_object(h2, false, Some(2000 * MS), Mode::UserMode) == STATUS_SUCCESS,
        "timer wait",
    )?;
    check(
        clock::ke_query_interrupt_time() - t0 >= 20 * MS,
        "timer fired early",
    )?;
    check(
        nt_cancel_timer(h, Mode::UserMode) == Ok(true),
        "NtCancelTimer state",
    )?;
    crate::ob::handle::nt_close(h2);
    crate::ob::handle::nt_close(h);
    check(
        nt_open_timer(
            TIMER_ALL_ACCESS,
            "\\BaseNamedObjects\\KtTimer",
            0,
            Mode::UserMode,
        )
        .err()
            == Some(STATUS_OBJECT_NAME_NOT_FOUND),
        "timer name outlived its handles",
    )
}

pub const TESTS: &[Test] = &[
    ("ex.named_timer", t_named_timer),
    (
        "ex.named_event_across_threads",
        t_named_event_across_threads,
    ),
    (
        "ex.named_mutant_and_semaphore",
        t_named_mutant_and_semaphore,
    ),
    ("ex.fast_and_guarded_mutex", t_fast_and_guarded_mutex),
    ("ex.eresource_shared_exclusive_starvation", t_eresource),
    ("ex.rundown_and_push_lock", t_rundown_and_push_lock),
    ("ex.worker_threads", t_worker_threads),
    ("ob.deferred_delete_in_worker", t_deferred_delete),
];

/// `/CRASHTEST=POOLPAGEDATDISPATCH`: `ExAllocatePool2` of paged pool at
/// DISPATCH_LEVEL stops with `BAD_POOL_CALLER` 0x08 (IRQL 2, `PagedPool`,
/// 64 bytes).
pub fn crash_paged_alloc_at_dispatch() {
    ke::irql::ke_raise_irql(ke::DISPATCH_LEVEL);
    let p = crate::ex::xpool::ex_allocate_pool2(
        ::mm::pool::POOL_FLAG_PAGED,
        64,
        u32::from_le_bytes(*b"KtPg"),
    );
    crate::dbg_println!("crash test: a paged allocation at DISPATCH_LEVEL returned {p:#x}");
}

/// `/CRASHTEST=POOLALLOCATCLOCK`: `ExAllocatePool2` of nonpaged pool above
/// DISPATCH_LEVEL (at CLOCK_LEVEL) stops with `BAD_POOL_CALLER` 0x08
/// (IRQL 13, `NonPagedPool`, 64 bytes).
pub fn crash_nonpaged_alloc_at_clock_level() {
    ke::irql::ke_raise_irql(ke::CLOCK_LEVEL);
    let p = crate::ex::xpool::ex_allocate_pool2(
        ::mm::pool::POOL_FLAG_NON_PAGED,
        64,
        u32::from_le_bytes(*b"KtNp"),
    );
    crate::dbg_println!("crash test: a nonpaged allocation at CLOCK_LEVEL returned {p:#x}");
}

/// `/CRASHTEST=POOLFREEPAGEDATDISPATCH`: `ExFreePoolWithTag` of a paged
/// block at DISPATCH_LEVEL stops with `BAD_POOL_CALLER` 0x09 (IRQL 2,
/// `PagedPool`, the block's address).
pub fn crash_paged_free_at_dispatch() {
    let tag = u32::from_le_bytes(*b"KtPg");
    let p = crate::ex::xpool::ex_allocate_pool2(::mm::pool::POOL_FLAG_PAGED, 64, tag);
    if p == 0 {
        crate::dbg_println!("crash test: the paged allocation failed");
        return;
    }
    crate::dbg_println!("crash test: freeing paged block {p:#x} at DISPATCH_LEVEL");
    ke::irql::ke_raise_irql(ke::DISPATCH_LEVEL);
    crate::ex::xpool::ex_free_pool_with_tag(p, tag);
    crate::dbg_println!("crash test: the free at DISPATCH_LEVEL returned");
}
